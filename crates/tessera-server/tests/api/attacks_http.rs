//! An attack corpus over HTTP: forged, truncated, oversized, duplicated and misplaced
//! credentials; oversized and lying requests, slow clients and connection floods; hostile
//! usernames, passwords and JSON. Every case names its exact outcome (status and problem
//! `code`); none may be a 5xx, a panic or a connection left hanging (every wait is bounded).
//!
//! Decisions these tests pin down:
//! - Duplicated session cookies: the **first** non-empty one decides, whatever follows it (an
//!   empty one, `name=` or `name=""`, is skipped as no credential at all). A
//!   garbage cookie in front of a valid one fails closed (401); it is never skipped in favour of
//!   a later one, so one request costs one session lookup however many cookies it carries, and
//!   a planted cookie can at most log its victim out, never in as someone else. With secure
//!   cookies only the `__Host-` name counts, which a sibling subdomain cannot set.
//! - Any credential the client presents is judged on its own: a bad bearer token is a 401 even
//!   next to a valid session cookie, and no secret of one kind (cookie value, refresh token,
//!   CSRF token, public session id) works as another.
//! - A request body must be a JSON object: an array is not taken as positional fields. Depth
//!   costs no stack: a deep value where a string belongs stops the parser at once (422), an
//!   unknown field is skipped iteratively, a deep non-object body is a 422 (400 if unbalanced).
//! - A Content-Length over 16 KiB is a 413 at once, before any of the body is read.
//! - Slow clients: from its first byte a connection has `server.header_timeout` to complete its
//!   first request head, in HTTP/1.1 (hyper's own timer) and HTTP/2 alike, and is closed without
//!   an answer otherwise; a request whose body stalls or dribbles is answered 408 at
//!   `server.request_timeout` (the client's fault, not the server's) and its connection closed.
//!
//! Covered elsewhere and not repeated here: 413 for a Content-Length or single-chunk body over
//! 16 KiB and malformed/odd bodies never being a 5xx (`problems.rs`); the cookie value as a
//! bearer token and the public session id as a cookie (`users.rs`,
//! `me_with_unusable_credentials_is_401`); idle expiry on `GET /v1/me` and cookies after logout
//! (`session.rs`); case-insensitive login and 409 for `alice` after `Alice` (`users.rs`); silent
//! connections against a cap of one (`ops.rs`).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::helpers::*;

/// Bound on "the server answers or closes" in the slow-client cases (their timeouts are ≤ 2 s).
const CLOSE_BOUND: Duration = Duration::from_secs(10);

/// `bytes` pseudo-random bytes as base64url (SHA-256 chained from `seed` and the clock).
fn random_b64(seed: &str, bytes: usize) -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    let mut block = tessera::crypto::sha256(format!("{seed}/{nanos}").as_bytes());
    let mut out = Vec::with_capacity(bytes + 32);
    while out.len() < bytes {
        out.extend_from_slice(&block);
        block = tessera::crypto::sha256(&block);
    }
    out.truncate(bytes);
    b64url(out)
}

/// Reads until the server closes the connection (EOF or reset); panics after `bound`.
async fn read_until_closed(stream: &mut (impl AsyncReadExt + Unpin), bound: Duration) -> String {
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server did not close the connection within {bound:?}; received: {}",
                String::from_utf8_lossy(&received)
            ),
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}

/// Connects, writes `request` (write errors are ignored: the server may answer and close
/// before reading everything) and reads until the server closes.
async fn raw_exchange(app: &TestApp, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let _ = stream.write_all(request).await;
    read_until_closed(&mut stream, WAIT).await
}

/// The status codes of every HTTP/1.1 response in `text`, in order.
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(i, _)| text.get(i + 9..i + 12)?.parse().ok())
        .collect()
}

/// Asserts no response in `text` is a 5xx.
fn assert_no_server_error(text: &str) {
    assert!(statuses(text).iter().all(|s| *s < 500), "a 5xx answer to client input: {text}");
}

/// A JSON login request head for `/v1/session` announcing `content_length` bytes.
fn login_head(app: &TestApp, content_length: usize) -> String {
    format!(
        "POST /v1/session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {content_length}\r\n\r\n",
        app.addr
    )
}

/// Writes `bytes` one at a time, `gap` apart, until done or the server stops reading.
async fn dribble(mut writer: OwnedWriteHalf, bytes: Vec<u8>, gap: Duration) {
    for byte in bytes {
        if writer.write_all(&[byte]).await.is_err() {
            return;
        }
        tokio::time::sleep(gap).await;
    }
    // Done without being cut off: hold the connection open without sending anything more.
    tokio::time::sleep(WAIT).await;
}

/// The soft limit on open files of this process, from `/proc/self/limits`.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    match line.split_whitespace().nth(3)? {
        "unlimited" => Some(u64::MAX),
        soft => soft.parse().ok(),
    }
}

// --- session cookies ---------------------------------------------------------------------------

#[tokio::test]
async fn random_session_cookie_values_are_401_unauthorized() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    // The shape of a real id (32 bytes, 43 base64url characters), then other lengths.
    for i in 0..20 {
        let guess = random_b64(&format!("guess-{i}"), 32);
        assert_eq!(guess.len(), live.value.len());
        assert_problem(app.me_cookie(&app.session_cookie(&guess)).await, 401, "unauthorized").await;
    }
    for len in [1, 16, 31, 33, 48, 64, 300] {
        let guess = random_b64(&format!("len-{len}"), len);
        assert_problem(app.me_cookie(&app.session_cookie(&guess)).await, 401, "unauthorized").await;
    }
    assert_eq!(app.me_cookie(&live.cookie).await.status(), 200, "guessing does not disturb it");
}

#[tokio::test]
async fn a_truncated_or_altered_session_cookie_is_401_unauthorized() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let value = live.value.as_str();
    let last = value.chars().last().expect("a non-empty cookie");
    let flipped = format!("{}{}", &value[..value.len() - 1], if last == 'A' { 'B' } else { 'A' });
    for forged in [
        value[..value.len() - 1].to_owned(),
        value[..value.len() / 2].to_owned(),
        value[1..].to_owned(),
        format!("{value}A"),
        flipped,
        value.to_ascii_uppercase(),
    ] {
        assert_ne!(forged, value);
        let response = app.me_cookie(&app.session_cookie(&forged)).await;
        assert_problem(response, 401, "unauthorized").await;
    }
    assert_eq!(app.me_cookie(&live.cookie).await.status(), 200);
}

#[tokio::test]
async fn a_10_kib_session_cookie_is_401_unauthorized() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    // Under the 32 KiB header limit, so the application judges it: not a session.
    let padded = format!("{}{}", live.value, "A".repeat(10 * 1024));
    for value in ["A".repeat(10 * 1024), random_b64("huge", 7 * 1024), padded] {
        assert!(value.len() >= 9 * 1024);
        assert_problem(app.me_cookie(&app.session_cookie(&value)).await, 401, "unauthorized").await;
        let verify =
            app.get("/v1/verify").header("cookie", app.session_cookie(&value)).send().await;
        assert_problem(verify.unwrap(), 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_garbage_session_cookie_before_a_valid_one_in_one_header_fails_closed() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let cookie = format!("{}; {}", app.session_cookie("garbage"), live.cookie);
    assert_problem(app.me_cookie(&cookie).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_valid_session_cookie_before_a_garbage_one_in_one_header_authenticates() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let cookie = format!("{}; {}", live.cookie, app.session_cookie("garbage"));
    let me = json_body(app.me_cookie(&cookie).await, 200).await;
    assert_eq!(me["session_id"], live.session_id.as_str());
}

#[tokio::test]
async fn a_garbage_session_cookie_header_before_a_valid_one_fails_closed() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let response = app
        .get("/v1/me")
        .header("cookie", app.session_cookie("garbage"))
        .header("cookie", &live.cookie)
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_valid_session_cookie_header_before_a_garbage_one_authenticates() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let response = app
        .get("/v1/me")
        .header("cookie", &live.cookie)
        .header("cookie", app.session_cookie("garbage"))
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(response, 200).await["session_id"], live.session_id.as_str());
}

#[tokio::test]
async fn an_empty_session_cookie_before_a_valid_one_is_skipped() {
    // Empty values (a cleared cookie a browser still sends) are no credential at all.
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let name = app.session_cookie_name();
    for empty in [format!("{name}="), format!("{name}=\"\"")] {
        let cookie = format!("{empty}; {}", live.cookie);
        let me = json_body(app.me_cookie(&cookie).await, 200).await;
        assert_eq!(me["session_id"], live.session_id.as_str(), "{cookie}");
    }
}

#[tokio::test]
async fn of_two_valid_session_cookies_only_the_first_counts() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("mallory").await;
    let alice = app.session_login("alice", PASSWORD).await;
    let mallory = app.session_login("mallory", PASSWORD).await;
    let both = format!("{}; {}", mallory.cookie, alice.cookie);
    let me = json_body(app.me_cookie(&both).await, 200).await;
    assert_eq!(me["username"], "mallory");
    assert_eq!(me["session_id"], mallory.session_id.as_str());
    // The second session's CSRF token does not pass for the first one's unsafe requests.
    let response = app
        .delete("/v1/session")
        .header("cookie", &both)
        .header("x-csrf-token", &alice.csrf)
        .send()
        .await
        .unwrap();
    assert_problem(response, 403, "csrf_failed").await;
    assert_eq!(app.me_cookie(&alice.cookie).await.status(), 200);
    assert_eq!(app.me_cookie(&mallory.cookie).await.status(), 200);
}

#[tokio::test]
async fn a_session_id_inside_another_cookies_value_does_not_authenticate() {
    let app = spawn_app().await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    let name = app.session_cookie_name();
    for cookie in [
        format!("other={}", live.cookie),
        format!("x{name}={}", live.value),
        format!("{name}x={}", live.value),
        format!("{}={}", name.to_ascii_uppercase(), live.value),
    ] {
        assert_problem(app.me_cookie(&cookie).await, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn with_secure_cookies_an_unprefixed_session_cookie_is_ignored() {
    // A sibling subdomain can set `tessera_session` but not `__Host-tessera_session`.
    let app = spawn_app_with(|c| c.cookie.secure = Some(true)).await;
    app.user("alice").await;
    let live = app.session_login("alice", PASSWORD).await;
    assert!(live.cookie.starts_with("__Host-tessera_session="));
    let tossed = format!("tessera_session={}", live.value);
    assert_problem(app.me_cookie(&tossed).await, 401, "unauthorized").await;
    assert_eq!(app.me_cookie(&live.cookie).await.status(), 200);
}

#[tokio::test]
async fn an_expired_session_cookie_is_refused_by_every_cookie_endpoint() {
    let app = spawn_app_with(|c| c.session.idle_timeout = secs(1)).await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The first use reports the expiry (and ends the session)...
    let verify = app.get("/v1/verify").header("cookie", &login.cookie).send().await.unwrap();
    assert_problem(verify, 401, "session_expired").await;
    // ...after which the cookie is simply unknown, for reads and for unsafe requests alike.
    let current = app.get("/v1/session").header("cookie", &login.cookie).send().await.unwrap();
    assert_problem(current, 401, "unauthorized").await;
    let list = app.get("/v1/sessions").header("cookie", &login.cookie).send().await.unwrap();
    assert_problem(list, 401, "unauthorized").await;
    let logout = app
        .delete("/v1/sessions")
        .header("cookie", &login.cookie)
        .header("x-csrf-token", &login.csrf)
        .send()
        .await
        .unwrap();
    assert_problem(logout, 401, "unauthorized").await;
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn a_revoked_session_cookie_can_do_nothing_even_with_its_csrf_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let stolen = app.session_login("alice", PASSWORD).await;
    let owner = app.session_login("alice", PASSWORD).await;
    let revoke = app
        .delete(&format!("/v1/sessions/{}", stolen.session_id))
        .header("cookie", &owner.cookie)
        .header("x-csrf-token", &owner.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let verify = app.get("/v1/verify").header("cookie", &stolen.cookie).send().await.unwrap();
    assert_problem(verify, 401, "unauthorized").await;
    let change = app
        .put("/v1/me/password")
        .header("cookie", &stolen.cookie)
        .header("x-csrf-token", &stolen.csrf)
        .json(&json!({"current_password": PASSWORD, "new_password": OTHER_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_problem(change, 401, "unauthorized").await;
    let everywhere = app
        .delete("/v1/sessions")
        .header("cookie", &stolen.cookie)
        .header("x-csrf-token", &stolen.csrf)
        .send()
        .await
        .unwrap();
    assert_problem(everywhere, 401, "unauthorized").await;
    assert_eq!(app.me_cookie(&owner.cookie).await.status(), 200, "the owner is still in");
    app.session_login("alice", PASSWORD).await;
}

#[tokio::test]
async fn the_public_session_id_is_not_a_bearer_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    assert_problem(app.me_bearer(&login.session_id).await, 401, "token_invalid").await;
    let verify = app.get("/v1/verify").bearer_auth(&login.session_id).send().await.unwrap();
    assert_problem(verify, 401, "token_invalid").await;
}

#[tokio::test]
async fn the_csrf_token_is_neither_a_bearer_token_nor_a_session_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    assert_problem(app.me_bearer(&login.csrf).await, 401, "token_invalid").await;
    let as_cookie = app.me_cookie(&app.session_cookie(&login.csrf)).await;
    assert_problem(as_cookie, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_refresh_token_is_neither_a_bearer_token_nor_a_session_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_problem(app.me_bearer(&tokens.refresh).await, 401, "token_invalid").await;
    let as_cookie = app.me_cookie(&app.session_cookie(&tokens.refresh)).await;
    assert_problem(as_cookie, 401, "unauthorized").await;
    app.refresh_ok(&tokens.refresh).await;
}

#[tokio::test]
async fn an_access_token_in_the_session_cookie_is_401_unauthorized() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let as_cookie = app.me_cookie(&app.session_cookie(&tokens.access)).await;
    assert_problem(as_cookie, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_bad_bearer_token_is_not_rescued_by_a_valid_session_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let login = app.session_login("alice", PASSWORD).await;
    for bearer in ["garbage", "a.b.c", login.value.as_str()] {
        let response = app
            .get("/v1/me")
            .header("cookie", &login.cookie)
            .bearer_auth(bearer)
            .send()
            .await
            .unwrap();
        assert_problem(response, 401, "token_invalid").await;
    }
}

// --- HTTP framing and sizes --------------------------------------------------------------------

#[tokio::test]
async fn a_header_block_over_32_kib_is_431() {
    let app = spawn_app().await;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {}\r\nX-Padding: {}\r\nConnection: close\r\n\r\n",
        app.addr,
        "a".repeat(33 * 1024)
    );
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec![431], "{response}");
    // The server is fine afterwards.
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_30_kib_cookie_header_is_still_served() {
    // Just under the limit: the request reaches the application, which refuses the cookie.
    let app = spawn_app().await;
    let cookie = app.session_cookie(&"A".repeat(30 * 1024));
    assert_problem(app.me_cookie(&cookie).await, 401, "unauthorized").await;
}

#[tokio::test]
async fn more_than_100_header_fields_are_431() {
    let app = spawn_app().await;
    let mut request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", app.addr);
    for i in 0..150 {
        request.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    request.push_str("Connection: close\r\n\r\n");
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec![431], "{response}");
}

#[tokio::test]
async fn a_content_length_shorter_than_the_body_gives_400_and_the_rest_is_refused() {
    let app = spawn_app().await;
    app.user("alice").await;
    // The announced 20 bytes are a truncated JSON object; the other ~20 KiB follow on the
    // connection as if they were the next request.
    let body = format!(r#"{{"username": "alice", "password": "{}"}}"#, "x".repeat(20 * 1024));
    let request = format!("{}{body}", login_head(&app, 20));
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_no_server_error(&response);
    let codes = statuses(&response);
    assert_eq!(codes.first(), Some(&400), "{response}");
    assert!(response.contains("\"invalid_json\""), "{response}");
    assert!(codes.iter().all(|s| *s == 400), "the leftover bytes are no request: {response}");
}

#[tokio::test]
async fn a_content_length_over_the_limit_is_413_before_the_body_arrives() {
    // Announce 1 MB, send a few bytes and wait: the answer must not wait for the body.
    let app = spawn_app_with(|c| {
        c.server.request_timeout = secs(30);
        c.server.idle_timeout = secs(60);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("{}{{\"username\"", login_head(&app, 1_000_000));
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut stream, CLOSE_BOUND).await;
    assert_eq!(statuses(&response), vec![413], "{response}");
    assert!(response.contains("\"payload_too_large\""), "{response}");
}

#[tokio::test]
async fn a_content_length_longer_than_the_body_is_answered_at_the_request_timeout() {
    // 100 bytes announced, 10 sent, then silence: cut off at the request timeout with a 408
    // (the client did not finish its request), and the connection closed.
    let app = spawn_app_with(|c| {
        c.server.request_timeout = secs(1);
        c.server.idle_timeout = secs(3);
    })
    .await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let request = format!("{}{{\"username", login_head(&app, 100));
    stream.write_all(request.as_bytes()).await.unwrap();
    let response = read_until_closed(&mut stream, CLOSE_BOUND).await;
    assert_no_server_error(&response);
    assert_eq!(statuses(&response), vec![408], "{response}");
    assert!(response.contains("application/problem+json"), "{response}");
}

#[tokio::test]
async fn conflicting_content_length_headers_are_400() {
    let app = spawn_app().await;
    let body = r#"{"username": "alice", "password": "correct-horse-battery"}"#;
    let request = format!(
        "POST /v1/session HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nContent-Length: 5\r\n\r\n{body}",
        app.addr,
        body.len()
    );
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec![400], "{response}");
}

#[tokio::test]
async fn a_chunked_body_of_many_small_chunks_over_16_kib_is_413() {
    // `problems.rs` sends one big chunk; here no single chunk is large.
    let app = spawn_app().await;
    let mut request = format!(
        "POST /v1/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    let piece = "x".repeat(64);
    request.push_str("10\r\n{\"password\": \"xx\r\n");
    for _ in 0..300 {
        request.push_str(&format!("{:x}\r\n{piece}\r\n", piece.len()));
    }
    request.push_str("2\r\n\"}\r\n0\r\n\r\n");
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec![413], "{response}");
    assert!(response.contains("\"payload_too_large\""), "{response}");
}

#[tokio::test]
async fn a_chunk_size_over_the_limit_is_413() {
    // One chunk announcing 1 MB, with 20 KiB of it sent.
    let app = spawn_app().await;
    let request = format!(
        "POST /v1/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{}",
        app.addr,
        1_000_000,
        "x".repeat(20 * 1024)
    );
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_eq!(statuses(&response), vec![413], "{response}");
}

#[tokio::test]
async fn an_overflowing_chunk_size_is_refused_without_a_server_error() {
    let app = spawn_app().await;
    let request = format!(
        "POST /v1/users HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         ffffffffffffffffffff\r\n{{}}\r\n0\r\n\r\n",
        app.addr
    );
    let response = raw_exchange(&app, request.as_bytes()).await;
    assert_no_server_error(&response);
    assert_eq!(statuses(&response), vec![400], "{response}");
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

// --- slow clients and connection floods --------------------------------------------------------

#[tokio::test]
async fn a_client_dribbling_its_headers_is_cut_off_at_the_header_timeout() {
    // One byte every 100 ms keeps the idle timeout (60 s) from firing; the header timeout
    // (1 s) bounds the whole header block.
    let app = spawn_app_with(|c| c.server.header_timeout = secs(1)).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, writer) = stream.into_split();
    let mut bytes = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n", app.addr).into_bytes();
    bytes.extend(std::iter::repeat_n(b'a', 500));
    let started = Instant::now();
    let slow = tokio::spawn(dribble(writer, bytes, Duration::from_millis(100)));
    let response = read_until_closed(&mut reader, CLOSE_BOUND).await;
    eprintln!("closed after {:?}", started.elapsed());
    slow.abort();
    assert!(statuses(&response).is_empty(), "closed without an answer: {response}");
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_dribbling_the_http2_preface_is_cut_off_at_the_header_timeout() {
    // HTTP/2 prior knowledge, one byte every 200 ms: the preface, an empty SETTINGS frame and
    // the start of a HEADERS frame take ~10 s; the header timeout (1 s) must still apply.
    let app = spawn_app_with(|c| c.server.header_timeout = secs(1)).await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, writer) = stream.into_split();
    let mut bytes = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    bytes.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    bytes.extend_from_slice(&[0, 0, 64, 1, 4, 0, 0, 0, 1]);
    bytes.extend(std::iter::repeat_n(0u8, 64));
    let started = Instant::now();
    let slow = tokio::spawn(dribble(writer, bytes, Duration::from_millis(200)));
    read_until_closed(&mut reader, CLOSE_BOUND).await;
    eprintln!("closed after {:?}", started.elapsed());
    slow.abort();
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

/// An HTTP/2 frame: 24-bit length, type, flags, 31-bit stream id, payload.
fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = u32::try_from(payload.len()).expect("a small frame").to_be_bytes();
    let mut frame = vec![len[1], len[2], len[3], kind, flags];
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

/// A HEADERS frame (END_STREAM | END_HEADERS) for `GET path`, HPACK without the dynamic table.
fn h2_get(stream: u32, authority: &str, path: &str) -> Vec<u8> {
    // :method GET and :scheme http from the static table, then :path and :authority as
    // literals without indexing (name indices 4 and 1), no Huffman coding.
    let mut block = vec![0x82, 0x86, 0x04, u8::try_from(path.len()).expect("a short path")];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, u8::try_from(authority.len()).expect("a short authority")]);
    block.extend_from_slice(authority.as_bytes());
    h2_frame(1, 0x5, stream, &block)
}

/// Reads frames until the response HEADERS for `stream`; returns whether it says 200
/// (`:status 200` is static-table index 8). Acknowledges the server's SETTINGS.
async fn h2_response_status_is_200(connection: &mut TcpStream, stream: u32) -> bool {
    let read = async {
        loop {
            let mut head = [0u8; 9];
            connection.read_exact(&mut head).await.expect("a frame header");
            let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
            let mut payload = vec![0u8; len];
            connection.read_exact(&mut payload).await.expect("a frame payload");
            let id = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
            match (head[3], head[4]) {
                (4, flags) if flags & 1 == 0 => {
                    connection.write_all(&h2_frame(4, 1, 0, &[])).await.expect("SETTINGS ACK");
                }
                (1, _) if id == stream => return payload.first() == Some(&0x88),
                (7, _) => panic!("GOAWAY: {payload:?}"),
                _ => {}
            }
        }
    };
    tokio::time::timeout(WAIT, read).await.expect("an HTTP/2 response in time")
}

#[tokio::test]
async fn an_http2_connection_outlives_the_header_timeout_once_its_first_request_came() {
    // The first-request bound must not cut a working HTTP/2 connection later on.
    let app = spawn_app_with(|c| c.server.header_timeout = secs(1)).await;
    let authority = app.addr.to_string();
    let mut connection = TcpStream::connect(app.addr).await.unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend(h2_frame(4, 0, 0, &[]));
    hello.extend(h2_get(1, &authority, "/healthz"));
    connection.write_all(&hello).await.unwrap();
    assert!(h2_response_status_is_200(&mut connection, 1).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    connection.write_all(&h2_get(3, &authority, "/readyz")).await.unwrap();
    assert!(h2_response_status_is_200(&mut connection, 3).await);
}

#[tokio::test]
async fn a_client_stalling_mid_body_is_cut_off_at_the_request_timeout() {
    let app = spawn_app_with(|c| {
        c.server.request_timeout = secs(1);
        c.server.idle_timeout = secs(3);
    })
    .await;
    app.user("alice").await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, writer) = stream.into_split();
    // The body's first half, one byte every 100 ms (under the idle timeout), then nothing.
    let body = format!(r#"{{"username": "alice", "password": "{PASSWORD}"}}"#);
    let mut bytes = login_head(&app, body.len()).into_bytes();
    bytes.extend_from_slice(&body.as_bytes()[..body.len() / 2]);
    let slow = tokio::spawn(dribble(writer, bytes, Duration::from_millis(10)));
    let response = read_until_closed(&mut reader, CLOSE_BOUND).await;
    slow.abort();
    assert_no_server_error(&response);
    assert_eq!(statuses(&response), vec![408], "{response}");
}

#[tokio::test]
async fn a_client_dribbling_its_body_is_cut_off_at_the_request_timeout() {
    // Each byte comes before the idle timeout; the request as a whole takes too long.
    let app = spawn_app_with(|c| {
        c.server.request_timeout = secs(1);
        c.server.idle_timeout = secs(3);
    })
    .await;
    let stream = TcpStream::connect(app.addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let body = format!(r#"{{"username": "alice", "password": "{}"}}"#, "x".repeat(200));
    writer.write_all(login_head(&app, body.len()).as_bytes()).await.unwrap();
    let slow = tokio::spawn(dribble(writer, body.into_bytes(), Duration::from_millis(100)));
    let response = read_until_closed(&mut reader, CLOSE_BOUND).await;
    slow.abort();
    assert_no_server_error(&response);
    assert_eq!(statuses(&response), vec![408], "{response}");
}

#[tokio::test]
async fn a_thousand_idle_connections_do_not_stop_the_server_answering() {
    let app = spawn_app().await;
    // Each connection costs two descriptors here: the client's and the server's end.
    let limit = open_files_limit().unwrap_or(1024);
    let wanted = 1000;
    let count = usize::try_from(limit.saturating_sub(200) / 2).unwrap_or(wanted).min(wanted);
    if count < wanted {
        eprintln!(
            "open-files limit {limit}: holding {count} connections instead of {wanted} \
             (raise `ulimit -n` to {} for the full test)",
            2 * wanted + 200
        );
    }
    assert!(count >= 50, "the open-files limit ({limit}) is too low for this test");
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        held.push(TcpStream::connect(app.addr).await.expect("connect"));
    }
    let health = tokio::time::timeout(WAIT, app.get("/healthz").send()).await;
    let health = health.expect("answered while the connections are held").unwrap();
    assert_eq!(health.status(), 200);
    // The held connections are accepted and served too, not just parked.
    let last = held.last_mut().expect("at least one connection");
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", app.addr);
    last.write_all(request.as_bytes()).await.unwrap();
    let response = read_until_closed(last, WAIT).await;
    assert_eq!(statuses(&response), vec![200], "{response}");
    drop(held);
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn beyond_max_connections_new_clients_wait_and_are_served_once_slots_free() {
    let app = spawn_app_with(|c| {
        c.server.max_connections = Some(20);
        c.server.header_timeout = secs(60);
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(TcpStream::connect(app.addr).await.unwrap());
    }
    // The 21st connection is not accepted while every slot is taken...
    let mut waiting = TcpStream::connect(app.addr).await.unwrap();
    let request =
        format!("GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", app.addr);
    waiting.write_all(request.as_bytes()).await.unwrap();
    let mut buf = [0u8; 64];
    let early = tokio::time::timeout(Duration::from_millis(500), waiting.read(&mut buf)).await;
    assert!(early.is_err(), "answered beyond max_connections: {early:?}");
    // ...and is served as soon as they close.
    drop(held);
    let response = read_until_closed(&mut waiting, WAIT).await;
    assert_eq!(statuses(&response), vec![200], "{response}");
    for _ in 0..3 {
        assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
    }
}

// --- usernames ---------------------------------------------------------------------------------

/// Registering `username` is 422 naming the field; logging in with it (the ASCII look-alike
/// `alice` being registered) is 401 `invalid_credentials`.
async fn assert_refused_username(app: &TestApp, username: &str) {
    let problem =
        assert_problem(app.try_register(username, OTHER_PASSWORD).await, 422, "validation_failed")
            .await;
    let detail = problem["detail"].as_str().unwrap_or_default();
    assert!(detail.contains("username"), "{username:?}: the detail names the field: {detail}");
    for password in [PASSWORD, OTHER_PASSWORD] {
        let response = app.post_session(username, password).await;
        assert_problem(response, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn a_username_with_a_nul_byte_is_422_and_cannot_log_in() {
    let app = spawn_app().await;
    app.user("alice").await;
    for username in ["alice\0", "\0alice", "ali\0ce"] {
        assert_refused_username(&app, username).await;
    }
    // In a form body too.
    let response = app
        .post("/v1/session")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("username", "alice\0"), ("password", PASSWORD)]))
        .send()
        .await
        .unwrap();
    assert_problem(response, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn usernames_with_control_characters_are_422_and_cannot_log_in() {
    let app = spawn_app().await;
    app.user("alice").await;
    for username in
        ["ali\tce", "alice\n", "alice\r\n", "ali\u{7f}ce", "\u{1b}[31malice", "alice\u{85}"]
    {
        assert_refused_username(&app, username).await;
    }
}

#[tokio::test]
async fn a_cyrillic_look_alike_username_is_422_and_is_not_alice() {
    let app = spawn_app().await;
    app.user("alice").await;
    // U+0430 CYRILLIC SMALL LETTER A, U+0435 CYRILLIC SMALL LETTER IE.
    for username in ["\u{430}lice", "alic\u{435}", "\u{410}LICE"] {
        assert_refused_username(&app, username).await;
    }
}

#[tokio::test]
async fn fullwidth_usernames_are_422_and_are_not_alice() {
    let app = spawn_app().await;
    app.user("alice").await;
    for username in ["\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", "\u{ff21}lice", "alice\u{ff0e}x"] {
        assert_refused_username(&app, username).await;
    }
}

#[tokio::test]
async fn case_folding_look_alikes_are_422_and_do_not_fold_onto_ascii_users() {
    // ſ (U+017F) upper-cases to S, K (U+212A KELVIN SIGN) lower-cases to k, İ (U+0130)
    // lower-cases to i + U+0307, ı (U+0131) upper-cases to I: Unicode case mapping would
    // merge them with ASCII names; the ASCII-only rule refuses them.
    let app = spawn_app().await;
    for name in ["alice", "sam", "kim"] {
        app.user(name).await;
    }
    for username in ["\u{17f}am", "\u{212a}im", "AL\u{130}CE", "al\u{131}ce", "AL\u{131}CE"] {
        let problem = assert_problem(
            app.try_register(username, OTHER_PASSWORD).await,
            422,
            "validation_failed",
        )
        .await;
        assert!(problem["detail"].as_str().unwrap_or_default().contains("username"));
        assert_problem(app.post_session(username, PASSWORD).await, 401, "invalid_credentials")
            .await;
        assert_problem(app.post_token(username, PASSWORD).await, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn a_zero_width_character_in_a_username_is_422_and_is_not_alice() {
    let app = spawn_app().await;
    app.user("alice").await;
    // ZERO WIDTH JOINER, ZERO WIDTH SPACE, a BOM, a soft hyphen.
    for username in ["ali\u{200d}ce", "\u{200b}alice", "\u{feff}alice", "ali\u{ad}ce"] {
        assert_refused_username(&app, username).await;
    }
}

#[tokio::test]
async fn the_canonical_username_is_lowercase_ascii_in_every_answer() {
    let app = spawn_app().await;
    let user = app.register("MiXeD.Case_9", PASSWORD).await;
    assert_eq!(user.username, "mixed.case_9");
    let session = app.session_login("mIxEd.cAsE_9", PASSWORD).await;
    assert_eq!(session.body["user"]["username"], "mixed.case_9");
    assert_eq!(
        json_body(app.me_cookie(&session.cookie).await, 200).await["username"],
        "mixed.case_9"
    );
    let tokens = app.token_login("MIXED.CASE_9", PASSWORD).await;
    assert_eq!(jwt_claims(&tokens.access)["username"], "mixed.case_9");
    assert_eq!(jwt_claims(&tokens.access)["sub"], user.id.as_str());
    let verify = app.get("/v1/verify").bearer_auth(&tokens.access).send().await.unwrap();
    assert_eq!(header_str(verify.headers(), "x-auth-username").as_deref(), Some("mixed.case_9"));
}

// --- passwords ---------------------------------------------------------------------------------

#[tokio::test]
async fn a_password_of_128_four_byte_characters_is_accepted_and_logs_in() {
    let app = spawn_app().await;
    let password = "\u{1f600}".repeat(128);
    assert_eq!(password.len(), 512);
    app.register("emoji", &password).await;
    app.session_login("emoji", &password).await;
    app.token_login("emoji", &password).await;
    // One character short is another password.
    let shorter = "\u{1f600}".repeat(127);
    assert_problem(app.post_session("emoji", &shorter).await, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn a_password_of_129_four_byte_characters_is_422() {
    let app = spawn_app().await;
    let problem = assert_problem(
        app.try_register("emoji", &"\u{1f600}".repeat(129)).await,
        422,
        "validation_failed",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap_or_default().contains("password"));
    // Refused without creating the user.
    app.register("emoji", &"\u{1f600}".repeat(128)).await;
}

#[tokio::test]
async fn a_password_in_json_surrogate_escapes_equals_the_raw_utf8_one() {
    let app = spawn_app().await;
    let password = "\u{1f600}".repeat(10);
    app.register("emoji", &password).await;
    let escaped = "\\ud83d\\ude00".repeat(10);
    let body = format!(r#"{{"username": "emoji", "password": "{escaped}"}}"#);
    let response = app
        .post("/v1/session")
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    app.session_login_from(response).await;
}

#[tokio::test]
async fn a_lone_surrogate_in_json_is_400_invalid_json() {
    let app = spawn_app().await;
    app.user("alice").await;
    for password in ["\\ud800-correct-horse", "correct-horse\\udc00", "\\ud83d\\u0041bcdefgh"] {
        let body = format!(r#"{{"username": "alice", "password": "{password}"}}"#);
        for path in ["/v1/users", "/v1/session"] {
            let response = app
                .post(path)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            assert_problem(response, 400, "invalid_json").await;
        }
    }
}

// --- SQL-looking input -------------------------------------------------------------------------

const SQL_INJECTIONS: [&str; 5] = [
    "' OR 1=1 --",
    "alice'; DROP TABLE users;--",
    "admin'--",
    "\" OR \"\"=\"",
    "1; SELECT * FROM sessions",
];

#[tokio::test]
async fn sql_looking_usernames_are_422_by_the_charset() {
    let app = spawn_app().await;
    for username in SQL_INJECTIONS {
        let problem =
            assert_problem(app.try_register(username, PASSWORD).await, 422, "validation_failed")
                .await;
        assert!(problem["detail"].as_str().unwrap_or_default().contains("username"));
    }
}

#[tokio::test]
async fn sql_looking_passwords_are_accepted_and_work() {
    let app = spawn_app().await;
    for (i, password) in SQL_INJECTIONS.iter().enumerate() {
        let username = format!("user{i}");
        app.register(&username, password).await;
        app.session_login(&username, password).await;
        assert_problem(app.post_session(&username, PASSWORD).await, 401, "invalid_credentials")
            .await;
    }
}

#[tokio::test]
async fn sql_looking_logins_are_401_and_harm_nothing() {
    let app = spawn_app().await;
    app.user("alice").await;
    for username in SQL_INJECTIONS.iter().copied().chain(["alice' --", "alice\" --"]) {
        for password in ["' OR '1'='1", "x' OR 1=1; --"] {
            assert_problem(app.post_session(username, password).await, 401, "invalid_credentials")
                .await;
        }
    }
    assert_problem(app.post_token("alice", "' OR '1'='1").await, 401, "invalid_credentials").await;
    // Everything is still there.
    app.session_login("alice", PASSWORD).await;
    assert_problem(app.try_register("alice", PASSWORD).await, 409, "username_taken").await;
}

// --- hostile JSON ------------------------------------------------------------------------------

async fn post_json(app: &TestApp, path: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    app.post(path).header("content-type", "application/json").body(body).send().await.unwrap()
}

#[tokio::test]
async fn ten_thousand_nested_arrays_are_refused_without_exhausting_the_stack() {
    // Balanced, it is valid JSON but not an object: 422. Unbalanced, it is malformed: 400.
    let app = spawn_app().await;
    let deep = format!("{}{}", "[".repeat(8000), "]".repeat(8000));
    assert!(deep.len() < 16 * 1024);
    let unbalanced = "[".repeat(10_000);
    for path in ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh"] {
        assert_problem(post_json(&app, path, deep.clone()).await, 422, "validation_failed").await;
        assert_problem(post_json(&app, path, unbalanced.clone()).await, 400, "invalid_json").await;
    }
    let in_a_field = format!(r#"{{"username": "alice", "password": {deep}}}"#);
    let response = post_json(&app, "/v1/session", in_a_field).await;
    assert_problem(response, 422, "validation_failed").await;
    assert_eq!(app.get("/healthz").send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn deeply_nested_objects_in_a_known_field_are_422_at_the_first_level() {
    // The parser stops where a string was expected; it never descends.
    let app = spawn_app().await;
    let depth = 2500;
    let nested = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let body = format!(r#"{{"username": {nested}, "password": "correct-horse-battery"}}"#);
    assert!(body.len() < 16 * 1024);
    for path in ["/v1/users", "/v1/session"] {
        assert_problem(post_json(&app, path, body.clone()).await, 422, "validation_failed").await;
    }
}

#[tokio::test]
async fn deeply_nested_objects_in_an_unknown_field_are_skipped_harmlessly() {
    // Unknown fields are ignored; skipping one is iterative, so depth costs no stack.
    let app = spawn_app().await;
    let depth = 2500;
    let nested = format!("{}1{}", r#"{"a":"#.repeat(depth), "}".repeat(depth));
    let body = format!(r#"{{"username": "alice", "password": "{PASSWORD}", "extra": {nested}}}"#);
    assert!(body.len() < 16 * 1024);
    assert_eq!(
        json_body(post_json(&app, "/v1/users", body.clone()).await, 201).await["username"],
        "alice"
    );
    let response = post_json(&app, "/v1/session", body.clone()).await;
    app.session_login_from(response).await;
    let arrays = format!(
        r#"{{"username": "alice", "password": "{PASSWORD}", "extra": {}{}}}"#,
        "[".repeat(6000),
        "]".repeat(6000)
    );
    Tokens::from_body(json_body(post_json(&app, "/v1/token", arrays).await, 200).await);
}

#[tokio::test]
async fn duplicate_json_keys_are_422_not_first_or_last_wins() {
    // A proxy or WAF may read one copy and the server the other: refuse both readings.
    let app = spawn_app().await;
    app.user("alice").await;
    let login = r#"{"username": "mallory", "password": "x", "username": "alice", "password": "correct-horse-battery"}"#;
    for path in ["/v1/session", "/v1/token"] {
        let problem =
            assert_problem(post_json(&app, path, login).await, 422, "validation_failed").await;
        assert!(problem["detail"].as_str().unwrap_or_default().contains("duplicate"));
    }
    let register =
        r#"{"username": "bob", "password": "correct-horse-battery", "username": "carol"}"#;
    assert_problem(post_json(&app, "/v1/users", register).await, 422, "validation_failed").await;
    for name in ["bob", "carol"] {
        assert_problem(app.post_session(name, PASSWORD).await, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn duplicate_form_fields_are_422() {
    let app = spawn_app().await;
    app.user("alice").await;
    let body = form(&[("username", "mallory"), ("username", "alice"), ("password", PASSWORD)]);
    let response = app
        .post("/v1/session")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn huge_numbers_are_refused_without_a_server_error() {
    let app = spawn_app().await;
    for (body, status, code) in [
        (r#"{"username": 1e999999, "password": "correct-horse-battery"}"#, 400, "invalid_json"),
        (r#"{"username": -1e999999, "password": "correct-horse-battery"}"#, 400, "invalid_json"),
        (
            r#"{"username": 123456789012345678901234567890123456789, "password": "correct-horse-battery"}"#,
            422,
            "validation_failed",
        ),
        (r#"{"username": "alice", "password": 1e308}"#, 422, "validation_failed"),
    ] {
        for path in ["/v1/users", "/v1/session"] {
            let response = post_json(&app, path, body).await;
            assert_problem(response, status, code).await;
        }
    }
    // 15,000 digits: out of the parser's number range, a syntax error.
    let digits = format!(r#"{{"username": {}, "password": "x"}}"#, "9".repeat(15_000));
    assert_problem(post_json(&app, "/v1/users", digits).await, 400, "invalid_json").await;
}

#[tokio::test]
async fn a_body_that_is_a_json_string_number_or_null_is_422() {
    let app = spawn_app().await;
    for body in [r#""alice""#, "42", "null", "true"] {
        for path in ["/v1/users", "/v1/session", "/v1/token", "/v1/token/refresh"] {
            let response = post_json(&app, path, body).await;
            assert_problem(response, 422, "validation_failed").await;
        }
    }
}

#[tokio::test]
async fn a_json_array_body_is_not_taken_as_positional_fields() {
    let app = spawn_app().await;
    app.user("alice").await;
    let credentials = json!(["alice", PASSWORD]).to_string();
    for path in ["/v1/session", "/v1/token"] {
        let response = post_json(&app, path, credentials.clone()).await;
        assert_problem(response, 422, "validation_failed").await;
    }
    let new_user = json!(["bob", PASSWORD]).to_string();
    assert_problem(post_json(&app, "/v1/users", new_user).await, 422, "validation_failed").await;
    assert_problem(app.post_session("bob", PASSWORD).await, 401, "invalid_credentials").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let refresh = json!([tokens.refresh]).to_string();
    assert_problem(post_json(&app, "/v1/token/refresh", refresh).await, 422, "validation_failed")
        .await;
    app.refresh_ok(&tokens.refresh).await;
}
