//! Request ids (`X-Request-Id`): the id a request is known by in every log line about it and in
//! its response's header. A sane incoming id (1 to 64 characters of `A-Z a-z 0-9 . _ -`, as
//! set by a proxy or a client that wants to correlate its own logs) is kept; anything else is
//! replaced by a fresh one.
//!
//! While a request is served its id is a task-local value ([`scope`], [`current`]): the log
//! formatters read it when, and only when, a line is written, so a request that logs nothing
//! pays nothing for it (a tracing span per request cost about 5 % of a `/healthz` in a
//! profile).
//!
//! Fresh ids are cheap: a random per-process prefix (from the OS CSPRNG, once) and a counter,
//! so minting one costs an atomic increment and a small copy, never a system call. They are
//! unique across restarts and instances (the prefix has 60 random bits) but not secret, and
//! must not be used as one.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use http_body::Body as _;

tokio::task_local! {
    /// The id of the request this task is serving.
    static CURRENT: HeaderValue;
}

/// Runs `future` as the serving of the request with `id`.
pub async fn scope<F: std::future::Future>(id: HeaderValue, future: F) -> F::Output {
    CURRENT.scope(id, future).await
}

/// The id of the request being served by the current task, if any.
pub fn current() -> Option<HeaderValue> {
    CURRENT.try_with(HeaderValue::clone).ok()
}

/// The header, request and response.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming id that is kept.
pub const MAX_LEN: usize = 64;

/// Characters of the per-process prefix.
const PREFIX_LEN: usize = 10;

/// Whether `id` is kept as it came: 1 to [`MAX_LEN`] characters of `A-Z a-z 0-9 . _ -`.
pub fn is_sane(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The id of a request with `headers`: the incoming `X-Request-Id` if it is sane (and the only
/// one), else a fresh one.
pub fn for_request(headers: &HeaderMap) -> HeaderValue {
    let mut incoming = headers.get_all(&X_REQUEST_ID).iter();
    match (incoming.next(), incoming.next()) {
        (Some(id), None) if is_sane(id.as_bytes()) => id.clone(),
        _ => fresh(),
    }
}

/// A new id: `PREFIX-COUNTER`, e.g. `Jq3v0xT9aB-1f`, the counter in hexadecimal.
pub fn fresh() -> HeaderValue {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut buf = [0u8; PREFIX_LEN + 1 + 16];
    buf[..PREFIX_LEN].copy_from_slice(prefix());
    buf[PREFIX_LEN] = b'-';
    let mut len = PREFIX_LEN + 1;
    let digits = (64 - n.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in (0..digits).rev() {
        buf[len] = b"0123456789abcdef"[((n >> (i * 4)) & 0xf) as usize];
        len += 1;
    }
    // Only base64url characters, '-' and hex digits: always a valid header value.
    HeaderValue::from_bytes(&buf[..len]).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `response` with `"request_id"` added to its body when it is a problem document
/// (`application/problem+json`, a JSON object of known size up to 16 KiB), so whoever got a
/// server error can quote the id. Anything else is returned as it was. Only called for 5xx
/// answers: the hot path never pays for it.
pub async fn into_problem(response: Response, id: &HeaderValue) -> Response {
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/problem+json"));
    let small = response.body().size_hint().exact().is_some_and(|n| n <= 16 * 1024);
    let Ok(id) = id.to_str() else { return response };
    if !is_problem || !small {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, 16 * 1024).await {
        Ok(bytes) => bytes,
        // A body of known size that fails to be read: nothing left to send but the status.
        Err(_) => return Response::from_parts(parts, Body::empty()),
    };
    let document = match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(mut problem)) => {
            problem.insert("request_id".into(), id.into());
            serde_json::to_vec(&problem).unwrap_or_else(|_| bytes.to_vec())
        }
        _ => bytes.to_vec(),
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(document))
}

/// The per-process prefix: base64url characters of fresh random bytes.
fn prefix() -> &'static [u8; PREFIX_LEN] {
    static PREFIX: OnceLock<[u8; PREFIX_LEN]> = OnceLock::new();
    PREFIX.get_or_init(|| {
        let mut prefix = [b'0'; PREFIX_LEN];
        // The OS CSPRNG failing is reported by every other user of it; the ids stay unique
        // within the process through the counter.
        if let Ok(secret) = tessera::crypto::random_secret() {
            prefix.copy_from_slice(&secret.as_bytes()[..PREFIX_LEN]);
        }
        prefix
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sane_ids_are_short_and_plain() {
        assert!(is_sane(b"a"));
        assert!(is_sane(b"req-1.2_3"));
        assert!(is_sane(&[b'x'; MAX_LEN]));
        assert!(!is_sane(b""));
        assert!(!is_sane(&[b'x'; MAX_LEN + 1]));
        assert!(!is_sane(b"a b"));
        assert!(!is_sane(b"a\"b"));
        assert!(!is_sane("é".as_bytes()));
        assert!(!is_sane(b"a/b"));
    }

    #[test]
    fn fresh_ids_are_sane_and_distinct() {
        let a = fresh();
        let b = fresh();
        assert_ne!(a, b);
        assert!(is_sane(a.as_bytes()), "{a:?}");
        assert_eq!(&a.as_bytes()[..PREFIX_LEN], &b.as_bytes()[..PREFIX_LEN]);
    }

    #[tokio::test]
    async fn server_error_problems_carry_the_id_and_other_bodies_are_untouched() {
        use axum::response::IntoResponse as _;

        let id = HeaderValue::from_static("req-7");
        let problem = tessera_axum::ApiError::Timeout.into_response();
        assert!(problem.status().is_server_error());
        let response = into_problem(problem, &id).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["request_id"], "req-7", "{body}");
        assert_eq!(body["code"], "timeout", "{body}");

        let plain = (http::StatusCode::BAD_GATEWAY, "not a problem").into_response();
        let response = into_problem(plain, &id).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        assert_eq!(&body[..], b"not a problem");
    }

    #[test]
    fn incoming_ids_are_kept_only_when_sane_and_single() {
        let mut headers = HeaderMap::new();
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("abc-123"));
        assert_eq!(for_request(&headers), "abc-123");
        headers.append(&X_REQUEST_ID, HeaderValue::from_static("def"));
        assert_ne!(for_request(&headers), "abc-123");
        headers.insert(&X_REQUEST_ID, HeaderValue::from_static("no spaces"));
        assert_ne!(for_request(&headers), "no spaces");
        assert!(is_sane(for_request(&HeaderMap::new()).as_bytes()));
    }
}
