//! Request bodies with API.md's error contract: over 16 KiB is 413, a wrong content type 415,
//! malformed JSON 400, a well-formed body with a missing or mistyped field 422; never a 500.
//!
//! [`ApiJson`] takes JSON; [`JsonOrForm`] also takes `application/x-www-form-urlencoded`
//! (plain HTML forms), for the login endpoints; [`RawBody`] is the bytes, for handlers whose
//! body is optional.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use http::{HeaderMap, header};
use http_body_util::BodyExt as _;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// The largest request body accepted.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// A JSON request body.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

/// A JSON or HTML-form request body.
#[derive(Debug, Clone)]
pub struct JsonOrForm<T>(pub T);

/// The raw request body (possibly empty), size-limited.
#[derive(Debug, Clone)]
pub struct RawBody(pub Bytes);

/// The media types a body can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// `application/json` or `application/*+json`.
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// Anything else, or no `Content-Type`.
    Other,
}

/// The kind of body the `Content-Type` header announces.
pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return BodyKind::Other;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    if essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
    {
        BodyKind::Json
    } else if essence == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// Parses a JSON body: syntax errors are 400, shape errors 422.
///
/// Every body of the API is an object. Anything else that is valid JSON is a 422: serde would
/// otherwise fill a struct from an array by position (`["alice", "password"]` as a login), a
/// reading no client means and no filter in front of the server would share.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    use serde_json::error::Category;
    let classify = |e: serde_json::Error| match e.classify() {
        Category::Data => ApiError::Validation(format!("body: {}", without_values(&e.to_string()))),
        Category::Syntax | Category::Eof | Category::Io => ApiError::InvalidJson(e.to_string()),
    };
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        // Malformed stays a 400. (Skipping a value is iterative: no depth to exhaust.)
        serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map_err(classify)?;
        return Err(ApiError::Validation("body: must be a JSON object".into()));
    }
    serde_json::from_slice(bytes).map_err(classify)
}

/// The body length the `Content-Length` header announces, if any.
fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

/// Parses a form body: shape errors are 422.
pub fn parse_form<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_urlencoded::from_bytes(bytes)
        .map_err(|e| ApiError::Validation(format!("form: {}", without_values(&e.to_string()))))
}

/// A deserialisation message without the submitted values it quotes (a mistyped password
/// must not come back in the response). Field names (`missing field `x``) are kept.
fn without_values(message: &str) -> String {
    let names_a_field = ["missing field", "unknown field", "duplicate field"]
        .iter()
        .any(|prefix| message.starts_with(prefix));
    if names_a_field {
        return message.to_owned();
    }
    let mut out = String::with_capacity(message.len());
    let mut quoted = false;
    for c in message.chars() {
        match (c, quoted) {
            ('`', false) => quoted = true,
            ('`', true) => quoted = false,
            (c, false) => out.push(c),
            (_, true) => {}
        }
    }
    out.replace("  ", " ").replace(" ,", ",")
}

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, ApiError> {
        // Refused before reading: a client announcing a large body and sending little would
        // otherwise hold the request open until the request timeout.
        if announced_length(req.headers()).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
            return Err(ApiError::PayloadTooLarge);
        }
        // The limit is applied here, while reading, so no layer has to announce it.
        let limited = http_body_util::Limited::new(req.into_body(), MAX_BODY_BYTES);
        match limited.collect().await {
            Ok(collected) => Ok(RawBody(collected.to_bytes())),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge),
            Err(_) => Err(ApiError::InvalidJson("the body could not be read".into())),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if body_kind(req.headers()) != BodyKind::Json {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonOrForm<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let kind = body_kind(req.headers());
        if kind == BodyKind::Other {
            return Err(ApiError::UnsupportedMediaType(
                "application/json or application/x-www-form-urlencoded",
            ));
        }
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        match kind {
            BodyKind::Form => parse_form(&bytes).map(JsonOrForm),
            _ => parse_json(&bytes).map(JsonOrForm),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[derive(Debug, serde::Deserialize)]
    struct Login {
        #[allow(dead_code)]
        username: String,
    }

    #[test]
    fn content_types_are_recognised() {
        let mut h = HeaderMap::new();
        assert_eq!(body_kind(&h), BodyKind::Other);
        for (value, kind) in [
            ("application/json", BodyKind::Json),
            ("Application/JSON; charset=utf-8", BodyKind::Json),
            ("application/merge-patch+json", BodyKind::Json),
            ("application/x-www-form-urlencoded", BodyKind::Form),
            ("text/plain", BodyKind::Other),
            ("multipart/form-data; boundary=x", BodyKind::Other),
        ] {
            h.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(body_kind(&h), kind, "{value}");
        }
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_422() {
        assert!(matches!(parse_json::<Login>(b"{"), Err(ApiError::InvalidJson(_))));
        assert!(matches!(parse_json::<Login>(b""), Err(ApiError::InvalidJson(_))));
        match parse_json::<Login>(b"{}") {
            Err(ApiError::Validation(why)) => assert!(why.contains("username"), "{why}"),
            other => panic!("{other:?}"),
        }
        match parse_json::<Login>(br#"{"username": 123456789}"#) {
            Err(ApiError::Validation(why)) => {
                assert!(!why.contains("123456789"), "the submitted value is not echoed: {why}");
                assert!(why.contains("invalid type"), "{why}");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_json::<Login>(br#"{"username": "a"}"#).is_ok());
        assert!(parse_json::<Login>(b" \r\n\t{\"username\": \"a\"}").is_ok());
        // Valid JSON that is not an object, even one serde could map onto the struct.
        let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
        for body in [&br#"["a"]"#[..], b"\"a\"", b"null", b"42", b" [] ", deep.as_bytes()] {
            match parse_json::<Login>(body) {
                Err(ApiError::Validation(why)) => assert!(why.contains("object"), "{why}"),
                other => panic!("{other:?}"),
            }
        }
        // Not JSON: still a syntax error.
        for body in [&b"[1,"[..], b"nope", "[".repeat(5000).as_bytes()] {
            assert!(matches!(parse_json::<Login>(body), Err(ApiError::InvalidJson(_))));
        }
        assert!(parse_form::<Login>(b"username=a%20b").is_ok());
        assert!(matches!(parse_form::<Login>(b"user=a"), Err(ApiError::Validation(_))));
    }
}
