//! The demo page over HTTP: `/` under its strict CSP, every file it loads served from
//! `/assets/{file}` with the right type, `nosniff` and ETag revalidation, anything else under
//! `/assets/` a 404 problem, and every API call in the page's script a documented operation.
//! (What the page does in a browser is `browser.rs`.)

use std::collections::BTreeSet;

use serde_json::Value;

use crate::helpers::*;

/// The CSP the page is served with (API tests elsewhere see the API's own, stricter one).
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The page's script, where its API calls are.
const APP_JS: &str = include_str!("../../assets/app.js");

/// Every `/assets/...` path in `text` (attributes of the page), and every `'./x.js'` import
/// (of the scripts) as `/assets/x.js`.
fn referenced_assets(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("\"/assets/") {
        let rest = &text[at + 1..];
        found.insert(rest[..rest.find('"').unwrap()].to_owned());
    }
    for (at, _) in text.match_indices("from './") {
        let rest = &text[at + "from './".len()..];
        found.insert(format!("/assets/{}", &rest[..rest.find('\'').unwrap()]));
    }
    found
}

async fn assert_served(app: &TestApp, path: &str, content_type: &str) -> String {
    let response = app.get(path).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    let headers = response.headers().clone();
    assert_eq!(header_str(&headers, "content-type").as_deref(), Some(content_type), "{path}");
    assert_eq!(header_str(&headers, "x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header_str(&headers, "cache-control").as_deref(), Some("no-cache"), "{path}");
    let etag = header_str(&headers, "etag").unwrap_or_else(|| panic!("{path}: no ETag"));
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10, "{path}: {etag}");
    let body = response.text().await.unwrap();
    assert!(!body.is_empty(), "{path}");

    // Revalidation: the same ETag is a 304 without a body; another is the full answer.
    let response = app.get(path).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(response.status(), 304, "{path}");
    assert_eq!(header_str(response.headers(), "etag").as_deref(), Some(etag.as_str()));
    assert!(response.text().await.unwrap().is_empty());
    let weak = format!("\"other\", W/{etag}");
    let response = app.get(path).header("if-none-match", weak).send().await.unwrap();
    assert_eq!(response.status(), 304, "{path}: a weak match in a list");
    let response = app.get(path).header("if-none-match", "\"other\"").send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    body
}

#[tokio::test]
async fn the_page_is_html_under_a_strict_csp_with_no_inline_code() {
    let app = spawn_app().await;
    let response = app.get("/").send().await.unwrap();
    let headers = response.headers().clone();
    assert_eq!(header_str(&headers, "content-security-policy").as_deref(), Some(PAGE_CSP));
    assert_eq!(header_str(&headers, "x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(header_str(&headers, "content-type").as_deref(), Some("text/html; charset=utf-8"));
    assert_eq!(header_str(&headers, "x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(header_str(&headers, "cache-control").as_deref(), Some("no-store"));
    let html = response.text().await.unwrap();
    let lower = html.to_ascii_lowercase();
    assert!(lower.starts_with("<!doctype html>"));
    assert!(!lower.contains("<style") && !lower.contains(" style="), "inline style");
    assert!(!lower.contains("javascript:"), "a javascript: URL");
    for (at, _) in lower.match_indices("<script") {
        let tag = &lower[at..at + lower[at..].find('>').unwrap()];
        assert!(tag.contains(" src=\"/assets/"), "a script that is not one of the assets: {tag}");
    }
}

#[tokio::test]
async fn every_file_the_page_loads_is_served_with_its_type() {
    let app = spawn_app().await;
    let html = app.get("/").send().await.unwrap().text().await.unwrap();
    let mut pending: Vec<String> = referenced_assets(&html).into_iter().collect();
    let mut seen = BTreeSet::new();
    while let Some(path) = pending.pop() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let content_type = match path.rsplit_once('.').map(|(_, ext)| ext) {
            Some("css") => "text/css; charset=utf-8",
            Some("js") => "text/javascript; charset=utf-8",
            Some("svg") => "image/svg+xml",
            other => panic!("{path}: unexpected kind of asset {other:?}"),
        };
        let body = assert_served(&app, &path, content_type).await;
        if path.ends_with(".js") {
            pending.extend(referenced_assets(&body));
        }
    }
    let expected: BTreeSet<String> =
        ["tessera.css", "app.js", "api.js", "jwt.js", "view.js", "favicon.svg"]
            .iter()
            .map(|name| format!("/assets/{name}"))
            .collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn other_asset_names_are_404_problems_and_other_methods_405() {
    let app = spawn_app().await;
    for path in [
        "/assets/nope.js",
        "/assets/index.html",
        "/assets/APP.JS",
        "/assets/..%2Fsrc%2Fmain.rs",
        "/assets/%2e%2e%2fCargo.toml",
        "/assets/",
        "/assets/app.js/x",
        "/assets/%FF%FE.js",
    ] {
        assert_problem(app.get(path).send().await.unwrap(), 404, "not_found").await;
    }
    let response = app.post("/assets/app.js").send().await.unwrap();
    assert_eq!(response.status(), 405);
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    assert!(content_type.starts_with("application/problem+json"), "{content_type}");
}

/// Every `send('METHOD', 'PATH'` in the page's script, with `${...}` as `{id}` and without
/// the query.
fn api_calls(script: &str) -> Vec<(String, String)> {
    let mut calls = Vec::new();
    for (at, _) in script.match_indices("send('") {
        let rest = &script[at + "send('".len()..];
        let (method, rest) = rest.split_once('\'').unwrap();
        let rest = rest.trim_start_matches(',').trim_start();
        let quote = rest.chars().next().unwrap();
        assert!(quote == '\'' || quote == '`', "a call with a computed path: {rest:.60}");
        let path = &rest[1..1 + rest[1..].find(quote).unwrap()];
        let mut templated = String::new();
        let mut parts = path.split("${");
        templated.push_str(parts.next().unwrap());
        for part in parts {
            templated.push_str("{id}");
            templated.push_str(part.split_once('}').unwrap().1);
        }
        let path = templated.split('?').next().unwrap().to_owned();
        calls.push((method.to_ascii_lowercase(), path));
    }
    calls
}

#[tokio::test]
async fn every_call_the_page_makes_is_a_documented_operation() {
    let app = spawn_app().await;
    let doc: Value = app.get("/openapi.json").send().await.unwrap().json().await.unwrap();
    let calls = api_calls(APP_JS);
    assert!(calls.len() > 15, "only {} calls found: has app.js changed shape?", calls.len());
    let mut operations = BTreeSet::new();
    for (method, path) in &calls {
        assert!(
            doc["paths"][path.as_str()][method.as_str()].is_object(),
            "app.js calls {method} {path}, which openapi.json does not document"
        );
        operations.insert(format!("{method} {path}"));
    }
    // The page shows every flow of the contract it explains.
    for operation in [
        "post /v1/users",
        "get /v1/me",
        "post /v1/session",
        "get /v1/session",
        "delete /v1/session",
        "get /v1/sessions",
        "delete /v1/sessions",
        "delete /v1/sessions/{id}",
        "post /v1/token",
        "post /v1/token/refresh",
        "post /v1/token/revoke",
    ] {
        assert!(operations.contains(operation), "the page never calls {operation}");
    }
}
