//! Behind a proxy: the client IP (for throttling, the session list and the audit log) comes
//! from `Forwarded` / `X-Forwarded-For` only when the socket peer is a configured trusted
//! proxy, read from the right; otherwise the peer address counts and the headers are ignored.

use serde_json::json;
use tessera_server::config::{RawConfig, StringList};

use crate::helpers::*;

fn trust(list: &[&str]) -> impl Fn(&mut RawConfig) {
    let list: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    move |raw: &mut RawConfig| {
        raw.server.trusted_proxies = Some(StringList(list.clone()));
        raw.limits.ip_per_minute = Some(3);
    }
}

/// A token login with `headers`; returns the IP its login shows in the session list.
async fn login_ip(app: &TestApp, headers: &[(&str, &str)]) -> String {
    let mut request = app.post("/v1/token");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response =
        request.json(&json!({"username": "alice", "password": PASSWORD})).send().await.unwrap();
    let access = json_body(response, 200).await["access_token"].as_str().unwrap().to_owned();
    let list = app.get("/v1/sessions").bearer_auth(&access).send().await.unwrap();
    let list = json_body(list, 200).await;
    let current = list["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap_or_else(|| panic!("no current login in {list}"))
        .clone();
    current["ip"].as_str().unwrap_or_else(|| panic!("no ip in {current}")).to_owned()
}

/// Failed logins from the same socket with `headers` until the per-IP limit (3) bites.
async fn attempts_until_limited(app: &TestApp, forged: &[&[(&str, &str)]]) -> usize {
    for (n, headers) in forged.iter().enumerate() {
        let mut request = app.post("/v1/session");
        for (name, value) in *headers {
            request = request.header(*name, *value);
        }
        let response = request
            .json(&json!({"username": format!("user{n}"), "password": "wrong-password"}))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            return n;
        }
        assert_eq!(response.status(), 401);
    }
    forged.len()
}

#[tokio::test]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let app = spawn_app_with(|raw| raw.limits.ip_per_minute = Some(3)).await;
    app.user("alice").await;
    let ip =
        login_ip(&app, &[("x-forwarded-for", "203.0.113.7"), ("forwarded", "for=198.51.100.1")])
            .await;
    assert_eq!(ip, "127.0.0.1");
    // Each attempt claims another address; the socket's counts (one attempt used above).
    let forged: Vec<&[(&str, &str)]> = vec![
        &[("x-forwarded-for", "198.51.100.1")],
        &[("forwarded", "for=198.51.100.2")],
        &[("x-real-ip", "198.51.100.3")],
        &[("x-forwarded-for", "198.51.100.4")],
    ];
    assert_eq!(attempts_until_limited(&app, &forged).await, 2);
}

#[tokio::test]
async fn a_trusted_proxy_names_the_client_in_x_forwarded_for() {
    let app = spawn_app_with(trust(&["127.0.0.1"])).await;
    app.user("alice").await;
    assert_eq!(login_ip(&app, &[("x-forwarded-for", "203.0.113.7")]).await, "203.0.113.7");
    // The client's own forged entry is left of what the proxy appended: ignored.
    assert_eq!(login_ip(&app, &[("x-forwarded-for", "6.6.6.6, 203.0.113.8")]).await, "203.0.113.8");
    // No header: the proxy itself.
    assert_eq!(login_ip(&app, &[]).await, "127.0.0.1");
}

#[tokio::test]
async fn only_the_configured_header_is_read() {
    // nginx and Caddy append to X-Forwarded-For and pass a client's own Forwarded through.
    let app = spawn_app_with(trust(&["127.0.0.1"])).await;
    app.user("alice").await;
    let ip =
        login_ip(&app, &[("forwarded", "for=1.2.3.4"), ("x-forwarded-for", "203.0.113.7")]).await;
    assert_eq!(ip, "203.0.113.7");
    assert_eq!(login_ip(&app, &[("forwarded", "for=1.2.3.4")]).await, "127.0.0.1");
}

#[tokio::test]
async fn forwarded_is_read_per_rfc_7239_when_configured() {
    let app = spawn_app_with(|raw| {
        trust(&["127.0.0.0/8", "10.0.0.0/8"])(raw);
        raw.server.client_ip_header = Some("Forwarded".into());
    })
    .await;
    app.user("alice").await;
    let ip = login_ip(
        &app,
        &[
            ("x-forwarded-for", "198.51.100.99"),
            ("forwarded", "for=6.6.6.6, for=\"[2001:db8::7]:4711\";proto=https, for=10.1.2.3"),
        ],
    )
    .await;
    assert_eq!(ip, "2001:db8::7", "the inner proxy 10.1.2.3 is trusted and skipped");
    assert_eq!(login_ip(&app, &[("x-forwarded-for", "203.0.113.7")]).await, "127.0.0.1");
    // An obfuscated hop stops the walk: the last believable hop (here the peer) counts.
    assert_eq!(login_ip(&app, &[("forwarded", "for=6.6.6.6, for=_hidden")]).await, "127.0.0.1");
}

#[tokio::test]
async fn spoofed_chains_through_a_trusted_proxy_do_not_escape_throttling() {
    let app = spawn_app_with(trust(&["127.0.0.1"])).await;
    // The real client is 203.0.113.9 every time; it varies what it puts in front.
    let forged: Vec<&[(&str, &str)]> = vec![
        &[("x-forwarded-for", "1.1.1.1, 203.0.113.9")],
        &[("x-forwarded-for", "2.2.2.2"), ("x-forwarded-for", "203.0.113.9")],
        &[("x-forwarded-for", "127.0.0.1, 203.0.113.9")],
        &[("x-forwarded-for", "3.3.3.3, 203.0.113.9")],
        &[("x-forwarded-for", "4.4.4.4, 203.0.113.9")],
    ];
    assert_eq!(attempts_until_limited(&app, &forged).await, 3);
    // Another client behind the same proxy has its own budget.
    let other: Vec<&[(&str, &str)]> = vec![&[("x-forwarded-for", "203.0.113.10")]];
    assert_eq!(attempts_until_limited(&app, &other).await, 1);
    // Garbage appended by a client that bypasses the proxy's own entry cannot create fresh
    // budgets either: an unreadable last hop falls back to the proxy address.
    let garbage: Vec<&[(&str, &str)]> = vec![
        &[("x-forwarded-for", "junk-1")],
        &[("x-forwarded-for", "junk-2")],
        &[("x-forwarded-for", "junk-3")],
        &[("x-forwarded-for", "junk-4")],
    ];
    assert_eq!(attempts_until_limited(&app, &garbage).await, 3);
}

#[tokio::test]
async fn a_peer_outside_the_trusted_ranges_is_not_believed() {
    let app = spawn_app_with(trust(&["10.0.0.0/8", "::1"])).await;
    app.user("alice").await;
    assert_eq!(login_ip(&app, &[("x-forwarded-for", "203.0.113.7")]).await, "127.0.0.1");
}

#[tokio::test]
async fn an_unknown_client_ip_header_fails_at_start() {
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.client_ip_header = Some("x-real-ip".into());
    let error = tessera_server::config::Config::from_raw(raw).unwrap_err().to_string();
    assert!(error.starts_with("server.client_ip_header:"), "{error}");
}

#[tokio::test]
async fn bad_trusted_proxy_entries_fail_at_start_naming_the_key() {
    for bad in ["localhost", "10.0.0.0/33", "10.0.0.1/", "::/200"] {
        let mut raw = RawConfig::default();
        raw.server.listen = Some("127.0.0.1:0".into());
        raw.server.trusted_proxies = Some(StringList(vec![bad.into()]));
        let error = tessera_server::config::Config::from_raw(raw).unwrap_err().to_string();
        assert!(error.starts_with("server.trusted_proxies:"), "{bad}: {error}");
        assert!(error.contains(bad), "{bad}: {error}");
    }
}
