//! The demo page: `GET /` (the HTML, under a strict Content-Security-Policy: its own scripts,
//! styles and API only, nothing inline; `no-store` like every other answer) and its fixed set
//! of assets at `/assets/{file}`, all compiled into the binary. An asset carries a strong
//! `ETag` (from the SHA-256 of its content) with `Cache-Control: no-cache`, so browsers
//! revalidate cheaply (304) and a new binary never serves a stale script beside a new page;
//! any other asset name is a 404 problem.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::extract::rejection::PathRejection;
use axum::response::{Html, IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use tessera_axum::ApiError;

/// The page's Content-Security-Policy: its own scripts, styles and API only; no inline code,
/// no framing, no foreign form targets.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// Assets are revalidated on every use (the names carry no version); the `ETag` makes that a
/// 304 without a body.
const CACHE_CONTROL: &str = "no-cache";

/// The page itself.
const PAGE: &str = include_str!("../assets/index.html");

/// One file served from the binary.
struct Asset {
    /// The name under `/assets/`.
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

/// Every file under `/assets/`.
static FILES: [Asset; 6] = [
    Asset {
        name: "tessera.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../assets/tessera.css"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/api.js"),
    },
    Asset {
        name: "jwt.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/jwt.js"),
    },
    Asset {
        name: "view.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../assets/view.js"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../assets/favicon.svg"),
    },
];

/// A file with its `ETag`.
struct Served {
    asset: &'static Asset,
    etag: HeaderValue,
}

/// Every file of [`FILES`] with its `ETag` (computed once).
static SERVED: LazyLock<Vec<Served>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|asset| {
            let digest = tessera::crypto::sha256(asset.body);
            let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
            // Hex digits in quotes: always a valid header value.
            let etag = HeaderValue::from_str(&format!("\"{hex}\""))
                .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
            Served { asset, etag }
        })
        .collect()
});

/// `GET /`: the demo page.
pub async fn index() -> Response {
    ([(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP))], Html(PAGE))
        .into_response()
}

/// `GET /assets/{file}`: one of the page's files, else 404 `not_found` (a name that is not
/// even UTF-8 included).
pub async fn asset(path: Result<Path<String>, PathRejection>, headers: HeaderMap) -> Response {
    let Ok(Path(name)) = path else { return ApiError::NotFound.into_response() };
    match SERVED.iter().find(|served| served.asset.name == name) {
        Some(file) => serve(file, &headers),
        None => ApiError::NotFound.into_response(),
    }
}

/// `file`, or 304 when the request's `If-None-Match` names its `ETag`.
fn serve(file: &Served, request: &HeaderMap) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(file.asset.content_type)),
        (header::CACHE_CONTROL, HeaderValue::from_static(CACHE_CONTROL)),
        (header::ETAG, file.etag.clone()),
    ];
    if matches_etag(request, &file.etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, file.asset.body).into_response()
}

/// Whether `If-None-Match` lists `etag` (weakly compared, as RFC 9110 asks for this header)
/// or is `*`.
fn matches_etag(request: &HeaderMap, etag: &HeaderValue) -> bool {
    let etag = etag.as_bytes();
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|tag| tag.trim_ascii())
        .any(|tag| tag == b"*" || tag.strip_prefix(b"W/").unwrap_or(tag) == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn if_none_match(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::IF_NONE_MATCH, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn every_asset_name_is_distinct_and_referenced_by_the_page() {
        let page = PAGE;
        let scripts: String = FILES
            .iter()
            .filter(|f| f.name.ends_with(".js"))
            .map(|f| std::str::from_utf8(f.body).unwrap())
            .collect();
        for (i, file) in FILES.iter().enumerate() {
            assert!(FILES.iter().skip(i + 1).all(|other| other.name != file.name));
            let path = format!("/assets/{}", file.name);
            let import = format!("'./{}'", file.name);
            assert!(
                page.contains(&path) || scripts.contains(&import),
                "{} is served but nothing loads it",
                file.name
            );
        }
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let page = PAGE.to_ascii_lowercase();
        assert!(!page.contains("<style"), "inline <style>");
        assert!(!page.contains(" style="), "inline style attribute");
        for (at, _) in page.match_indices(" on") {
            let rest = &page[at + 3..];
            let name_len = rest.bytes().take_while(u8::is_ascii_lowercase).count();
            assert!(
                name_len == 0 || !rest[name_len..].starts_with('='),
                "an inline event handler: on{}=",
                &rest[..name_len]
            );
        }
        for (at, _) in page.match_indices("<script") {
            let tag = &page[at..at + page[at..].find('>').unwrap()];
            assert!(tag.contains(" src="), "an inline script: {tag}");
        }
    }

    #[test]
    fn if_none_match_is_compared_weakly_and_accepts_lists_and_star() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(matches_etag(&if_none_match("\"abc\""), &etag));
        assert!(matches_etag(&if_none_match("W/\"abc\""), &etag));
        assert!(matches_etag(&if_none_match("\"x\", \"abc\""), &etag));
        assert!(matches_etag(&if_none_match("*"), &etag));
        assert!(!matches_etag(&if_none_match("\"abcd\""), &etag));
        assert!(!matches_etag(&if_none_match("abc"), &etag));
        assert!(!matches_etag(&HeaderMap::new(), &etag));
    }
}
