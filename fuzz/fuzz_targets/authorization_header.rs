//! `authorization_header`: arbitrary `Authorization`, `Cookie`, `X-Forwarded-For`,
//! `Forwarded` and `User-Agent` headers through the credential lookup of every authenticated request
//! (`tessera_axum::extract::authenticate`: bearer parsing, then the session cookie, then the
//! access-token cookie, each verified for real) and through the `Client` extractor (client IP
//! from a trusted proxy's forwarding headers, user agent).
//!
//! Input: lines separated by `\n`, each starting with a tag: `A` Authorization, `C` Cookie,
//! `X` X-Forwarded-For, `F` Forwarded, `U` User-Agent (the rest of the line is the value; repeated tags
//! append further header lines; untagged lines and values `http` refuses are dropped).
//!
//! Invariants: every refusal is a 401 (never a 400 or 5xx for bad credentials); a bearer
//! credential that is presented (RFC 7235 syntax: the scheme, one or more spaces, a token) is
//! never treated as "no credentials"; an accepted bearer or cookie token is one the engine
//! verifies on its own and is a slice of the header it came from; with no credential headers
//! the caller is anonymous; no session cookie can succeed (the store holds no sessions); behind
//! the trusted proxy the client IP is always one well-formed address, and from any other peer
//! it is that peer whatever the headers say;
//! the user agent is a prefix of the header, at most 256 characters.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::extract::{ConnectInfo, FromRequestParts};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use libfuzzer_sys::fuzz_target;
use tessera_axum::cookies::find_cookie;
use tessera_axum::extract::authenticate;
use tessera_axum::{Client, CredentialSource, TesseraState};
use tessera_fuzz::{http_state, runtime};

struct Fixture {
    rt: tokio::runtime::Runtime,
    state: TesseraState,
}

static FIXTURE: OnceLock<Fixture> = OnceLock::new();

fn fx() -> &'static Fixture {
    FIXTURE.get_or_init(|| {
        let rt = runtime();
        let state = http_state(&rt);
        Fixture { rt, state }
    })
}

/// The token of a bearer credential in RFC 7235 syntax, if `value` is one.
fn bearer_token(value: &str) -> Option<&str> {
    let value = value.trim_matches([' ', '\t']);
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    (!token.is_empty()).then_some(token)
}

fn is_slice_of(part: &str, whole: &str) -> bool {
    let (start, end) = (whole.as_ptr() as usize, whole.as_ptr() as usize + whole.len());
    let p = part.as_ptr() as usize;
    p >= start && p + part.len() <= end
}

fuzz_target!(|data: &[u8]| {
    let fx = fx();
    let mut request = http::Request::builder();
    for line in data.split(|b| *b == b'\n').take(8) {
        let Some((tag, value)) = line.split_first() else { continue };
        let name: HeaderName = match tag {
            b'A' => header::AUTHORIZATION,
            b'C' => header::COOKIE,
            b'X' => HeaderName::from_static("x-forwarded-for"),
            b'F' => header::FORWARDED,
            b'U' => header::USER_AGENT,
            _ => continue,
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(()) else { return };
    let (mut parts, ()) = request.into_parts();
    let headers: &HeaderMap = &parts.headers;
    let state = &fx.state;

    let result = fx.rt.block_on(authenticate(headers, state));
    // `authenticate` reads the first Authorization line only.
    let authorization = headers.get(header::AUTHORIZATION);
    let bearer = authorization.and_then(|v| v.to_str().ok()).and_then(bearer_token);
    let session_cookie = find_cookie(headers, "__Host-tessera_session");
    let access_cookie = find_cookie(headers, "__Host-tessera_access");
    match &result {
        Err(e) => {
            let (status, code, ..) = e.parts();
            assert_eq!(status, StatusCode::UNAUTHORIZED, "refused with {status} {code}");
        }
        Ok(None) => {
            assert!(bearer.is_none(), "a bearer credential was treated as none");
            assert!(session_cookie.is_none() && access_cookie.is_none(), "a cookie was ignored");
            if let Some(value) = authorization {
                assert!(value.to_str().is_ok(), "an unreadable Authorization was ignored");
            }
        }
        Ok(Some(user)) => {
            let presented = match user.source {
                CredentialSource::BearerHeader => {
                    let value = authorization.and_then(|v| v.to_str().ok());
                    let token = bearer.expect("bearer success without a bearer credential");
                    assert!(value.is_some_and(|v| is_slice_of(token, v)));
                    token.trim_matches([' ', '\t'])
                }
                CredentialSource::AccessCookie => {
                    assert!(bearer.is_none() && session_cookie.is_none(), "wrong precedence");
                    access_cookie.expect("access-cookie success without the cookie")
                }
                CredentialSource::SessionCookie => panic!("a session cookie succeeded"),
            };
            let verdict = fx.rt.block_on(state.auth.authenticate_token(presented));
            let principal = verdict.expect("engine disagrees");
            assert_eq!(principal, user.principal);
            assert!(user.session.is_none());
        }
    }

    // Behind the trusted proxy, the client IP comes from the forwarding headers: whatever
    // they hold, it is one well-formed address.
    parts.extensions.insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 4711))));
    let Ok(Client(client)) = fx.rt.block_on(Client::from_request_parts(&mut parts, state));
    let ip = client.ip.as_deref().expect("a client IP when the peer is known");
    assert!(ip.parse::<std::net::IpAddr>().is_ok(), "client IP {ip:?} is not an address");
    // From any other peer the headers are ignored.
    parts.extensions.insert(ConnectInfo(SocketAddr::from(([192, 0, 2, 1], 4711))));
    let Ok(Client(direct)) = fx.rt.block_on(Client::from_request_parts(&mut parts, state));
    assert_eq!(direct.ip.as_deref(), Some("192.0.2.1"), "an untrusted peer's headers were used");
    if let Some(ua) = &client.user_agent {
        let header = parts.headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok());
        assert!(header.is_some_and(|h| h.starts_with(ua.as_str())), "user agent not a prefix");
        assert!(ua.chars().count() <= 256, "user agent longer than 256 characters");
    }
});
