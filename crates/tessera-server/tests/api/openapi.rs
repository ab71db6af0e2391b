//! The OpenAPI document at `/openapi.json`: served, well-formed, and honest. Every route in the
//! source is documented, every documented operation is routed (and the methods it does not
//! list get 405), every `$ref` resolves, and real answers match what the document says.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// The files that declare the server's routes: `api_router` and `app`.
const ROUTE_SOURCES: [(&str, &str); 2] = [
    ("tessera-axum/src/routes/mod.rs", include_str!("../../../tessera-axum/src/routes/mod.rs")),
    ("tessera-server/src/app.rs", include_str!("../../src/app.rs")),
];

/// The HTTP methods an OpenAPI path item may hold, as its keys.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

/// Methods probed for 405 on every documented path that does not list them.
const PROBED: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn fetch_document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    assert_eq!(content_type, "application/json");
    serde_json::from_str(&response.text().await.unwrap()).expect("/openapi.json is JSON")
}

fn paths(doc: &Value) -> &serde_json::Map<String, Value> {
    doc["paths"].as_object().expect("paths is an object")
}

fn operations(item: &Value) -> Vec<&'static str> {
    METHODS.into_iter().filter(|m| item.get(*m).is_some()).collect()
}

/// Every path given to `.route(` in the source files.
fn routes_in_source() -> BTreeSet<String> {
    let mut routes = BTreeSet::new();
    for (file, source) in ROUTE_SOURCES {
        let mut found = 0;
        for (at, _) in source.match_indices(".route(") {
            let rest = source[at + ".route(".len()..].trim_start();
            let path = rest
                .strip_prefix('"')
                .and_then(|r| r.split_once('"'))
                .map(|(path, _)| path)
                .unwrap_or_else(|| panic!("{file}: a .route( without a literal path: {rest:.60}"));
            routes.insert(path.to_owned());
            found += 1;
        }
        assert!(found > 0, "{file}: no routes found; has the router moved?");
    }
    routes
}

/// A documented path with its parameters filled in.
fn concrete(path: &str) -> String {
    path.replace("{id}", "no-such-login").replace("{file}", "tessera.css")
}

/// The response object of `status` for `method path`, with `$ref`s followed.
fn documented_response<'d>(doc: &'d Value, path: &str, method: &str, status: u16) -> &'d Value {
    let response = &doc["paths"][path][method]["responses"][status.to_string()];
    assert!(!response.is_null(), "{method} {path}: {status} is not documented");
    resolve(doc, response)
}

fn resolve<'d>(doc: &'d Value, value: &'d Value) -> &'d Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("a local $ref");
            resolve(doc, doc.pointer(pointer).unwrap_or_else(|| panic!("{reference} is dangling")))
        }
        None => value,
    }
}

/// Checks `body` against the object schema in `response` for `media_type`: every required
/// property is present, no property is undocumented, and enums hold.
fn assert_body_matches(doc: &Value, response: &Value, media_type: &str, body: &Value) {
    let schema = resolve(doc, &response["content"][media_type]["schema"]);
    assert_eq!(schema["type"], "object", "{media_type}: {schema}");
    let object = body.as_object().unwrap_or_else(|| panic!("not an object: {body}"));
    for name in schema["required"].as_array().expect("required") {
        let name = name.as_str().unwrap();
        assert!(object.contains_key(name), "{name} is required by the document: {body}");
    }
    let properties = schema["properties"].as_object().expect("properties");
    for (name, value) in object {
        let property = resolve(
            doc,
            properties
                .get(name)
                .unwrap_or_else(|| panic!("{name} is returned but not documented: {body}")),
        );
        if let Some(allowed) = property.get("enum").and_then(Value::as_array) {
            assert!(allowed.contains(value), "{name} = {value} is not in the enum {allowed:?}");
        }
    }
}

#[tokio::test]
async fn the_document_is_served_as_openapi_3_1_json() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Tessera");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    assert_eq!(schemes["bearerAuth"]["scheme"], "bearer");
    assert_eq!(schemes["sessionCookie"]["name"], "__Host-tessera_session");
    assert_eq!(schemes["csrfHeader"]["name"], "X-CSRF-Token");
    let problem = &doc["components"]["schemas"]["Problem"];
    assert_eq!(problem["required"], json!(["type", "title", "status", "code", "detail"]));
}

#[tokio::test]
async fn every_route_in_the_source_is_documented_and_every_documented_path_is_a_route() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    let documented: BTreeSet<String> = paths(&doc).keys().cloned().collect();
    let routed = routes_in_source();
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(undocumented.is_empty(), "routes missing from openapi.json: {undocumented:?}");
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(unrouted.is_empty(), "openapi.json documents paths with no route: {unrouted:?}");
}

#[tokio::test]
async fn every_documented_operation_is_answered_and_other_methods_are_405() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    for (path, item) in paths(&doc) {
        let documented = operations(item);
        assert!(!documented.is_empty(), "{path}: no operations");
        let any_method = item["x-tessera-any-method"] == true;
        for method in PROBED.into_iter().chain(documented.iter().copied()) {
            let verb = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let status =
                app.client.request(verb, app.url(&concrete(path))).send().await.unwrap().status();
            if documented.contains(&method) || any_method {
                assert!(
                    status != 404 && status != 405,
                    "{method} {path} is documented but answers {status}"
                );
            } else {
                assert_eq!(status, 405, "{method} {path} is not documented but answers {status}");
            }
        }
    }
}

#[tokio::test]
async fn every_ref_and_security_scheme_resolves() {
    fn walk(doc: &Value, value: &Value, at: &str, refs: &mut usize) {
        match value {
            Value::Object(map) => {
                if let Some(reference) = map.get("$ref") {
                    let pointer = reference.as_str().and_then(|r| r.strip_prefix('#'));
                    let target = pointer.and_then(|p| doc.pointer(p));
                    assert!(target.is_some(), "{at}: $ref {reference} does not resolve");
                    *refs += 1;
                }
                for (key, child) in map {
                    walk(doc, child, &format!("{at}/{key}"), refs);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    walk(doc, child, &format!("{at}/{i}"), refs);
                }
            }
            _ => {}
        }
    }
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;
    let mut refs = 0;
    walk(&doc, &doc, "#", &mut refs);
    assert!(refs > 20, "only {refs} $refs: is the document still using components?");

    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for (path, item) in paths(&doc) {
        for method in operations(item) {
            let operation = &item[method];
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()));
            for requirement in operation["security"].as_array().into_iter().flatten() {
                for name in requirement.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: no scheme {name}");
                }
            }
        }
    }
}

#[tokio::test]
async fn real_answers_match_the_documented_statuses_and_bodies() {
    let app = spawn_app().await;
    let doc = fetch_document(&app).await;

    let response = app.try_register("alice", PASSWORD).await;
    let documented = documented_response(&doc, "/v1/users", "post", 201);
    assert_body_matches(&doc, documented, "application/json", &json_body(response, 201).await);

    let response = app.get("/v1/me").send().await.unwrap();
    let documented = documented_response(&doc, "/v1/me", "get", 401);
    let problem = assert_problem(response, 401, "unauthorized").await;
    assert_body_matches(&doc, documented, "application/problem+json", &problem);

    let response = app.post_session("alice", PASSWORD).await;
    let session = app.session_login_from(response).await;
    let documented = documented_response(&doc, "/v1/session", "post", 200);
    assert_body_matches(&doc, documented, "application/json", &session.body);

    let response = app.me_cookie(&session.cookie).await;
    let documented = documented_response(&doc, "/v1/me", "get", 200);
    assert_body_matches(&doc, documented, "application/json", &json_body(response, 200).await);

    let response = app.get("/v1/sessions").header("cookie", &session.cookie).send().await.unwrap();
    let documented = documented_response(&doc, "/v1/sessions", "get", 200);
    let list = json_body(response, 200).await;
    assert_body_matches(&doc, documented, "application/json", &list);
    let login = resolve(
        &doc,
        &doc["components"]["schemas"]["LoginList"]["properties"]["sessions"]["items"],
    );
    for name in login["required"].as_array().unwrap() {
        assert!(list["sessions"][0].get(name.as_str().unwrap()).is_some(), "{name}: {list}");
    }

    let response = app.post_token("alice", PASSWORD).await;
    let grant = json_body(response, 200).await;
    let schema = resolve(&doc, &doc["components"]["schemas"]["TokenGrant"]);
    for name in schema["required"].as_array().unwrap() {
        assert!(grant.get(name.as_str().unwrap()).is_some(), "{name}: {grant}");
    }

    let response = app.post_session("alice", "wrong-password").await;
    let problem = assert_problem(response, 401, "invalid_credentials").await;
    let documented = documented_response(&doc, "/v1/session", "post", 401);
    assert_body_matches(&doc, documented, "application/problem+json", &problem);

    let response = app.post("/v1/users").json(&json!({"username": "alice"})).send().await.unwrap();
    let documented = documented_response(&doc, "/v1/users", "post", 422);
    let problem = assert_problem(response, 422, "validation_failed").await;
    assert_body_matches(&doc, documented, "application/problem+json", &problem);
}
