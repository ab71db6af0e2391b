//! Token authentication: `POST /v1/token`, refresh with rotation, retry grace and reuse
//! detection, revocation, verification of access tokens, cookie delivery, algorithms.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn token_login_returns_the_documented_body() {
    let app = spawn_app().await;
    app.user("alice").await;
    let response = app.post_token("alice", PASSWORD).await;
    assert!(response.headers().get("set-cookie").is_none(), "body delivery sets no cookie");
    let body = json_body(response, 200).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let refresh = body["refresh_token"].as_str().expect("refresh_token");
    assert!(!refresh.contains('.'), "the refresh token is opaque, not a JWT");
    assert!(b64url_decode(refresh).len() >= 32, "at least 256 bits");
    let refresh_expires_in = body["refresh_expires_in"].as_u64().expect("refresh_expires_in");
    assert!(
        refresh_expires_in > 13 * 86_400 && refresh_expires_in <= 14 * 86_400,
        "{refresh_expires_in}"
    );
    assert!(body["access_token"].is_string());
}

#[tokio::test]
async fn the_access_token_is_an_rfc_9068_jwt_with_the_documented_claims() {
    let app = spawn_app().await;
    let user = app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let header = jwt_header(&tokens.access);
    assert_eq!(header["alg"], "EdDSA");
    assert_eq!(header["typ"], "at+jwt");
    let kid = header["kid"].as_str().expect("a kid");
    assert!(app.jwks_kids().await.iter().any(|k| k == kid), "the kid is in the JWKS");

    let claims = jwt_claims(&tokens.access);
    assert_eq!(claims["iss"], app.base.as_str(), "default issuer: the public URL");
    assert_eq!(claims["sub"], user.id.as_str());
    let aud_ok = claims["aud"] == "tessera"
        || claims["aud"].as_array().is_some_and(|a| a.iter().any(|v| v == "tessera"));
    assert!(aud_ok, "aud: {}", claims["aud"]);
    let (exp, iat, nbf) = (
        claims["exp"].as_i64().expect("exp"),
        claims["iat"].as_i64().expect("iat"),
        claims["nbf"].as_i64().expect("nbf"),
    );
    assert_eq!(exp - iat, 300);
    assert!(nbf <= iat + 1, "nbf {nbf} iat {iat}");
    assert_near(iat, unix_now(), 60, "iat");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
    assert!(claims["sid"].as_str().is_some_and(|s| !s.is_empty()));
    assert_eq!(claims["username"], "alice");

    let again = app.token_login("alice", PASSWORD).await;
    let again_claims = jwt_claims(&again.access);
    assert_ne!(again_claims["jti"], claims["jti"], "jti is unique");
    assert_ne!(again_claims["sid"], claims["sid"], "every login is its own family");
}

#[tokio::test]
async fn the_jwks_publishes_public_ed25519_keys_only() {
    let app = spawn_app().await;
    let response = app.get("/.well-known/jwks.json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    let content_type = header_str(response.headers(), "content-type").unwrap_or_default();
    assert!(content_type.contains("json"), "{content_type}");
    let jwks: Value = response.json().await.unwrap();
    let keys = jwks["keys"].as_array().expect("keys");
    assert!(!keys.is_empty());
    for key in keys {
        assert_eq!(key["kty"], "OKP", "{key}");
        assert_eq!(key["crv"], "Ed25519", "{key}");
        assert!(key["kid"].is_string() && key["x"].is_string(), "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "private member {private} published: {key}");
        }
    }
}

#[tokio::test]
async fn refresh_rotates_the_refresh_token_and_issues_a_new_access_token() {
    let app = spawn_app().await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    assert_ne!(second.refresh, first.refresh, "a new refresh token");
    assert_ne!(second.access, first.access);
    assert_eq!(second.sid, first.sid, "same family");
    assert_eq!(second.body["token_type"], "Bearer");
    assert_eq!(second.body["expires_in"], 300);
    assert!(second.body["refresh_expires_in"].as_u64().is_some_and(|s| s > 0));
    let me = json_body(app.me_bearer(&second.access).await, 200).await;
    assert_eq!(me["username"], "alice");
    // The new one rotates on in turn.
    app.refresh_ok(&second.refresh).await;
}

#[tokio::test]
async fn a_spent_token_retried_within_the_grace_gets_the_same_successor() {
    let app = spawn_app().await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    // The response was "lost": the client presents the spent token again.
    let retried = app.refresh_ok(&first.refresh).await;
    assert_eq!(retried.refresh, second.refresh, "the same successor, not a logout");
    assert_ne!(retried.access, second.access, "a fresh access token");
    assert_eq!(retried.sid, first.sid);
    assert_eq!(app.me_bearer(&retried.access).await.status(), 200);
    assert_eq!(app.me_bearer(&second.access).await.status(), 200);
    // The successor is still good.
    app.refresh_ok(&second.refresh).await;
}

#[tokio::test]
async fn reuse_after_the_successor_was_used_revokes_the_whole_family() {
    let app = spawn_app().await;
    app.user("alice").await;
    let other_family = app.token_login("alice", PASSWORD).await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    let third = app.refresh_ok(&second.refresh).await;

    assert_problem(app.refresh(&first.refresh).await, 401, "token_reused").await;

    assert_eq!(app.refresh(&third.refresh).await.status(), 401, "the live successor is dead");
    assert_eq!(app.refresh(&second.refresh).await.status(), 401);
    for access in [&first.access, &second.access, &third.access] {
        let response = app.me_bearer(access).await;
        assert_eq!(response.status(), 401, "access tokens of the family fail before exp");
    }
    assert_eq!(app.me_bearer(&other_family.access).await.status(), 200, "other families live");
    app.refresh_ok(&other_family.refresh).await;
}

#[tokio::test]
async fn with_zero_grace_an_immediate_second_use_is_token_reused() {
    let app = spawn_app_with(|c| c.token.refresh_reuse_grace = secs(0)).await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    assert_problem(app.refresh(&first.refresh).await, 401, "token_reused").await;
    assert_eq!(app.refresh(&second.refresh).await.status(), 401);
    assert_eq!(app.me_bearer(&second.access).await.status(), 401);
    assert_eq!(app.me_bearer(&first.access).await.status(), 401);
}

#[tokio::test]
async fn a_spent_token_after_the_grace_is_token_reused() {
    let app = spawn_app_with(|c| c.token.refresh_reuse_grace = secs(1)).await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_problem(app.refresh(&first.refresh).await, 401, "token_reused").await;
    assert_eq!(app.refresh(&second.refresh).await.status(), 401);
    assert_eq!(app.me_bearer(&second.access).await.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_refreshes_with_one_token_all_get_the_same_successor() {
    let app = spawn_app().await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    let token = first.refresh.as_str();
    let responses = tokio::join!(
        app.refresh(token),
        app.refresh(token),
        app.refresh(token),
        app.refresh(token),
        app.refresh(token),
    );
    let responses = [responses.0, responses.1, responses.2, responses.3, responses.4];
    let mut successors = Vec::new();
    for response in responses {
        let tokens = Tokens::from_body(json_body(response, 200).await);
        assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);
        successors.push(tokens.refresh);
    }
    assert!(successors.iter().all(|s| *s == successors[0]), "{successors:?}");
    assert_ne!(successors[0], first.refresh);
    app.refresh_ok(&successors[0]).await;
}

#[tokio::test]
async fn an_unknown_or_malformed_refresh_token_is_401_token_invalid() {
    let app = spawn_app().await;
    let unknown = b64url([7u8; 32]);
    for token in ["garbage", "", unknown.as_str(), "a.b.c"] {
        assert_problem(app.refresh(token).await, 401, "token_invalid").await;
    }
    // An access token is not a refresh token.
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_problem(app.refresh(&tokens.access).await, 401, "token_invalid").await;
}

#[tokio::test]
async fn revoke_answers_200_for_any_token_and_422_without_one() {
    let app = spawn_app().await;
    let huge = "x".repeat(9000);
    for token in ["garbage", "", "a.b.c", huge.as_str()] {
        assert_eq!(app.revoke(token).await.status(), 200, "{token:.20}");
    }
    let response = app.post("/v1/token/revoke").json(&json!({})).send().await.unwrap();
    assert_problem(response, 422, "validation_failed").await;
    let response = app.post("/v1/token/revoke").send().await.unwrap();
    assert_problem(response, 422, "validation_failed").await;
}

#[tokio::test]
async fn revoking_a_refresh_token_ends_its_family_and_access_tokens_at_once() {
    let app = spawn_app().await;
    app.user("alice").await;
    let other = app.token_login("alice", PASSWORD).await;
    let first = app.token_login("alice", PASSWORD).await;
    let second = app.refresh_ok(&first.refresh).await;
    assert_eq!(app.revoke(&second.refresh).await.status(), 200);
    assert_eq!(app.me_bearer(&first.access).await.status(), 401);
    assert_eq!(app.me_bearer(&second.access).await.status(), 401);
    assert_eq!(app.refresh(&second.refresh).await.status(), 401);
    assert_eq!(app.me_bearer(&other.access).await.status(), 200, "other families live");
    // Revoking twice is still 200.
    assert_eq!(app.revoke(&second.refresh).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_access_token_ends_its_family() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);
    assert_eq!(app.revoke(&tokens.access).await.status(), 200);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 401);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401);
}

/// Header and claims of a real token, for forgeries.
fn parts(token: &str) -> (Value, Value) {
    (jwt_header(token), jwt_claims(token))
}

#[tokio::test]
async fn tampered_and_forged_access_tokens_are_rejected() {
    let app = spawn_app().await;
    app.user("alice").await;
    app.user("mallory").await;
    let tokens = app.token_login("mallory", PASSWORD).await;
    let alice_id = app.token_login("alice", PASSWORD).await;
    let alice_sub = jwt_claims(&alice_id.access)["sub"].clone();
    let (header, claims) = parts(&tokens.access);
    let segments: Vec<&str> = tokens.access.split('.').collect();
    let signature = b64url_decode(segments[2]);
    let jwks = app.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();

    let mut forged: Vec<(&str, String)> = Vec::new();
    // A payload character flipped in place.
    let mut payload: Vec<char> = segments[1].chars().collect();
    let middle = payload.len() / 2;
    payload[middle] = if payload[middle] == 'A' { 'B' } else { 'A' };
    let payload: String = payload.into_iter().collect();
    forged.push(("flipped payload", format!("{}.{payload}.{}", segments[0], segments[2])));
    // Claims changed, signature kept.
    let mut elevated = claims.clone();
    elevated["sub"] = alice_sub.clone();
    elevated["username"] = json!("alice");
    forged.push(("other subject", forge(&header, &elevated, &signature)));
    let mut longer = claims.clone();
    longer["exp"] = json!(claims["exp"].as_i64().unwrap() + 86_400);
    forged.push(("extended exp", forge(&header, &longer, &signature)));
    // alg none, with and without the kid.
    let mut none = header.clone();
    none["alg"] = json!("none");
    forged.push(("alg none", forge(&none, &elevated, b"")));
    forged.push((
        "alg none, no kid",
        forge(&json!({"alg": "none", "typ": "at+jwt"}), &elevated, b""),
    ));
    // Algorithm confusion: HS256 keyed with the public key.
    let mut hs = header.clone();
    hs["alg"] = json!("HS256");
    for secret in
        [b64url_decode(&x), x.as_bytes().to_vec(), jwks["keys"][0].to_string().into_bytes()]
    {
        let input = format!("{}.{}", b64url(hs.to_string()), b64url(elevated.to_string()));
        let mac = hmac_sha256(&secret, input.as_bytes());
        forged.push(("HS256 with the public key", format!("{input}.{}", b64url(mac))));
    }
    // Unknown kid, missing kid, wrong typ, signature stripped or truncated.
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("not-a-known-kid");
    forged.push(("unknown kid", forge(&unknown_kid, &claims, &signature)));
    let mut no_kid = header.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    forged.push(("no kid", forge(&no_kid, &claims, &signature)));
    let mut id_token = header.clone();
    id_token["typ"] = json!("JWT");
    forged.push(("typ JWT", forge(&id_token, &claims, &signature)));
    forged.push(("no signature", format!("{}.{}.", segments[0], segments[1])));
    forged.push(("two parts", format!("{}.{}", segments[0], segments[1])));
    forged.push((
        "truncated signature",
        format!("{}.{}.{}", segments[0], segments[1], &segments[2][..segments[2].len() - 4]),
    ));

    for (what, token) in &forged {
        let response = app.me_bearer(token).await;
        assert_eq!(response.status(), 401, "{what} must be rejected");
        assert_problem(response, 401, "token_invalid").await;
    }
    // The genuine token still works (nothing above revoked it).
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);
}

#[tokio::test]
async fn a_token_from_another_server_is_rejected() {
    let app = spawn_app().await;
    let elsewhere = spawn_app().await;
    elsewhere.user("alice").await;
    let foreign = elsewhere.token_login("alice", PASSWORD).await;
    assert_problem(app.me_bearer(&foreign.access).await, 401, "token_invalid").await;
}

#[tokio::test]
async fn tokens_for_another_audience_or_issuer_are_rejected() {
    // The same key signs for a different audience, then for a different issuer.
    let app = spawn_app_with(|c| c.token.audience = Some("other-api".into())).await;
    app.user("alice").await;
    let other_audience = app.token_login("alice", PASSWORD).await;
    assert_eq!(jwt_claims(&other_audience.access)["aud"], "other-api");
    let kid = jwt_header(&other_audience.access)["kid"].clone();

    let app = app.restart(|c| c.token.issuer = Some("https://other-issuer.example".into())).await;
    let other_issuer = app.token_login("alice", PASSWORD).await;
    assert_eq!(jwt_claims(&other_issuer.access)["iss"], "https://other-issuer.example");

    let app = app.restart(|_| {}).await;
    let fresh = app.token_login("alice", PASSWORD).await;
    assert_eq!(jwt_header(&fresh.access)["kid"], kid, "one key signed all three");
    assert_eq!(app.me_bearer(&fresh.access).await.status(), 200);
    assert_problem(app.me_bearer(&other_audience.access).await, 401, "token_invalid").await;
    assert_problem(app.me_bearer(&other_issuer.access).await, 401, "token_invalid").await;
}

#[tokio::test]
async fn an_expired_access_token_is_401_token_expired() {
    let app = spawn_app_with(|c| {
        c.token.access_ttl = secs(2);
        c.token.leeway = secs(0);
    })
    .await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    assert_eq!(tokens.body["expires_in"], 2);
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let response = app.me_bearer(&tokens.access).await;
    assert_problem(response, 401, "token_expired").await;
    // The refresh token outlives it.
    let next = app.refresh_ok(&tokens.refresh).await;
    assert_eq!(app.me_bearer(&next.access).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_expired_access_token_still_ends_its_family() {
    let app = spawn_app_with(|c| {
        c.token.access_ttl = secs(1);
        c.token.leeway = secs(0);
    })
    .await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_problem(app.me_bearer(&tokens.access).await, 401, "token_expired").await;
    assert_eq!(app.revoke(&tokens.access).await.status(), 200);
    assert_eq!(app.refresh(&tokens.refresh).await.status(), 401, "the family is revoked");
}

#[tokio::test]
async fn tokens_over_8_kib_are_rejected() {
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let (header, mut claims) = parts(&tokens.access);
    claims["padding"] = json!("p".repeat(8 * 1024));
    let signature = b64url_decode(tokens.access.split('.').nth(2).unwrap());
    let big = forge(&header, &claims, &signature);
    assert!(big.len() > 8 * 1024);
    assert_problem(app.me_bearer(&big).await, 401, "token_invalid").await;
    let junk = format!("{}.{}.{}", "a".repeat(3000), "b".repeat(3000), "c".repeat(3000));
    assert_problem(app.me_bearer(&junk).await, 401, "token_invalid").await;
}

#[tokio::test]
async fn claims_are_checked_with_the_leeway_and_revocation() {
    // With HS256 the test knows the key, so it can sign any claims it likes.
    let app = spawn_app_with(|c| {
        c.token.algorithm = Some("HS256".into());
        c.token.secret = Some(HS256_SECRET.into());
    })
    .await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let revoked = app.token_login("alice", PASSWORD).await;
    assert_eq!(app.revoke(&revoked.refresh).await.status(), 200);
    let (header, claims) = parts(&tokens.access);
    let now = unix_now();
    let mut serial = 0;
    let mut sign = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims.clone();
        serial += 1;
        claims["jti"] = json!(format!("forged-{serial}"));
        change(&mut claims);
        let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
        let mac = hmac_sha256(HS256_SECRET.as_bytes(), input.as_bytes());
        format!("{input}.{}", b64url(mac))
    };
    let valid = sign(&|_| {});
    let within_leeway = sign(&|c| {
        c["iat"] = json!(now - 310);
        c["nbf"] = json!(now - 310);
        c["exp"] = json!(now - 10);
    });
    let expired = sign(&|c| {
        c["iat"] = json!(now - 420);
        c["nbf"] = json!(now - 420);
        c["exp"] = json!(now - 120);
    });
    let not_yet_valid = sign(&|c| c["nbf"] = json!(now + 3600));
    let wrong_issuer = sign(&|c| c["iss"] = json!("https://evil.example"));
    let wrong_audience = sign(&|c| c["aud"] = json!("another-api"));
    let no_subject = sign(&|c| {
        c.as_object_mut().unwrap().remove("sub");
    });
    let revoked_sid = sign(&|c| c["sid"] = json!(revoked.sid.clone()));

    assert_eq!(app.me_bearer(&valid).await.status(), 200, "the harness signs correctly");
    assert_eq!(app.me_bearer(&within_leeway).await.status(), 200, "30 s default leeway");
    assert_problem(app.me_bearer(&expired).await, 401, "token_expired").await;
    for (what, token) in [
        ("not yet valid", not_yet_valid),
        ("wrong iss", wrong_issuer),
        ("wrong aud", wrong_audience),
        ("no sub", no_subject),
        ("revoked sid", revoked_sid),
    ] {
        let response = app.me_bearer(&token).await;
        assert_eq!(response.status(), 401, "{what}");
        assert_problem(response, 401, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_refresh_token_unused_for_its_idle_lifetime_expires() {
    let app = spawn_app_with(|c| c.token.refresh_ttl = secs(3)).await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    assert!(first.body["refresh_expires_in"].as_u64().is_some_and(|s| s <= 3), "{}", first.body);
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let second = app.refresh_ok(&first.refresh).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    // 3.6 s after login, 1.8 s after the rotation: each rotation starts a new idle period.
    let third = app.refresh_ok(&second.refresh).await;
    tokio::time::sleep(Duration::from_millis(3200)).await;
    assert_eq!(app.refresh(&third.refresh).await.status(), 401);
}

#[tokio::test]
async fn a_refresh_family_ends_at_its_absolute_lifetime() {
    let app = spawn_app_with(|c| c.token.refresh_family_lifetime = secs(3)).await;
    app.user("alice").await;
    let first = app.token_login("alice", PASSWORD).await;
    assert!(first.body["refresh_expires_in"].as_u64().is_some_and(|s| s <= 3), "{}", first.body);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = app.refresh_ok(&first.refresh).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    assert_eq!(app.refresh(&second.refresh).await.status(), 401, "in use, but too old");
}

// --- cookie delivery ---------------------------------------------------------------------------

#[tokio::test]
async fn cookie_delivery_sets_host_and_path_limited_cookies_instead_of_returning_tokens() {
    let app = spawn_app_with(|c| c.cookie.secure = Some(true)).await;
    app.user("alice").await;
    let response = app
        .post("/v1/token?delivery=cookie")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let body = json_body(response, 200).await;
    assert!(body["csrf_token"].as_str().is_some_and(|s| !s.is_empty()), "{body}");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "{body}");

    let access = find_set_cookie(&headers, "__Host-tessera_access");
    assert_eq!(jwt_header(&access.value)["typ"], "at+jwt", "the cookie holds the JWT");
    for (name, value) in [("path", "/"), ("samesite", "Strict")] {
        assert_eq!(access.attr(name), Some(value), "{access:?}");
    }
    assert!(access.attr("httponly").is_some() && access.attr("secure").is_some(), "{access:?}");
    assert!(access.attr("domain").is_none(), "__Host- cookies have no Domain");

    let refresh = set_cookies(&headers)
        .iter()
        .map(|c| SetCookie::parse(c))
        .find(|c| c.name != access.name)
        .expect("a refresh cookie");
    assert!(refresh.name.contains("refresh"), "{refresh:?}");
    assert_eq!(refresh.attr("path"), Some("/v1/token"), "{refresh:?}");
    assert!(refresh.attr("httponly").is_some() && refresh.attr("secure").is_some());
    assert!(!refresh.value.is_empty() && !refresh.value.contains('.'));
}

#[tokio::test]
async fn cookie_delivered_tokens_authenticate_with_the_csrf_rule_and_refresh_by_cookie() {
    let app = spawn_app().await;
    app.user("alice").await;
    let response = app
        .post("/v1/token?delivery=cookie")
        .json(&json!({"username": "alice", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let body = json_body(response, 200).await;
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let access = find_set_cookie(&headers, "tessera_access");
    let refresh = find_set_cookie(&headers, "tessera_refresh");
    assert_eq!(refresh.attr("path"), Some("/v1/token"));
    let access_cookie = format!("tessera_access={}", access.value);
    let refresh_cookie = format!("tessera_refresh={}", refresh.value);

    let me = json_body(app.me_cookie(&access_cookie).await, 200).await;
    assert_eq!(me["auth_method"], "token");
    assert_eq!(me["username"], "alice");

    // Unsafe requests with the access cookie follow the CSRF rule.
    let session = app.session_login("alice", PASSWORD).await;
    let end_session = || {
        app.delete(&format!("/v1/sessions/{}", session.session_id)).header("cookie", &access_cookie)
    };
    assert_problem(end_session().send().await.unwrap(), 403, "csrf_failed").await;
    let wrong = end_session().header("x-csrf-token", &session.csrf).send().await.unwrap();
    assert_problem(wrong, 403, "csrf_failed").await;
    assert_eq!(app.me_cookie(&session.cookie).await.status(), 200);
    let foreign =
        end_session().header("x-csrf-token", &csrf).header("origin", EVIL_ORIGIN).send().await;
    assert_problem(foreign.unwrap(), 403, "csrf_failed").await;
    let response = end_session().header("x-csrf-token", &csrf).send().await.unwrap();
    assert_eq!(response.status(), 204);

    // Refresh by cookie needs the CSRF token too.
    let response =
        app.post("/v1/token/refresh").header("cookie", &refresh_cookie).send().await.unwrap();
    assert_problem(response, 403, "csrf_failed").await;
    let response = app
        .post("/v1/token/refresh")
        .header("cookie", &refresh_cookie)
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    let headers = response.headers().clone();
    let body = json_body(response, 200).await;
    assert!(body.get("refresh_token").is_none(), "cookie refresh keeps tokens out of the body");
    let new_access = find_set_cookie(&headers, "tessera_access");
    let new_refresh = find_set_cookie(&headers, "tessera_refresh");
    assert_ne!(new_access.value, access.value);
    assert_ne!(new_refresh.value, refresh.value);
    assert_eq!(new_refresh.attr("path"), Some("/v1/token"));
    let me = app.me_cookie(&format!("tessera_access={}", new_access.value)).await;
    assert_eq!(me.status(), 200);
}

// --- algorithms --------------------------------------------------------------------------------

async fn check_algorithm(algorithm: &str, kty: &str) {
    let app = spawn_app_with(|c| c.token.algorithm = Some(algorithm.into())).await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let header = jwt_header(&tokens.access);
    assert_eq!(header["alg"], algorithm);
    assert_eq!(header["typ"], "at+jwt");
    let jwks = app.jwks().await;
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == header["kid"])
        .unwrap_or_else(|| panic!("{algorithm}: kid {} not in {jwks}", header["kid"]));
    assert_eq!(key["kty"], kty, "{key}");
    assert_eq!(json_body(app.me_bearer(&tokens.access).await, 200).await["username"], "alice");
    let next = app.refresh_ok(&tokens.refresh).await;
    assert_eq!(jwt_header(&next.access)["alg"], algorithm);
}

#[tokio::test]
async fn es256_issues_es256_tokens_verifiable_by_the_jwks() {
    check_algorithm("ES256", "EC").await;
}

#[tokio::test]
async fn rs256_issues_rs256_tokens_verifiable_by_the_jwks() {
    check_algorithm("RS256", "RSA").await;
}

#[tokio::test]
async fn eddsa_is_the_default_and_uses_okp_keys() {
    check_algorithm("EdDSA", "OKP").await;
}

#[tokio::test]
async fn hs256_works_with_a_configured_secret_and_publishes_no_keys() {
    let app = spawn_app_with(|c| {
        c.token.algorithm = Some("HS256".into());
        c.token.secret = Some(HS256_SECRET.into());
    })
    .await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let header = jwt_header(&tokens.access);
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "at+jwt");
    assert!(header["kid"].is_string(), "{header}");
    assert_eq!(app.jwks().await, json!({"keys": []}));
    assert_eq!(app.me_bearer(&tokens.access).await.status(), 200);

    // A token signed with another secret is refused.
    let (header, claims) = parts(&tokens.access);
    let input = format!("{}.{}", b64url(header.to_string()), b64url(claims.to_string()));
    let mac = hmac_sha256(b"another-secret-another-secret-123", input.as_bytes());
    let forged = format!("{input}.{}", b64url(mac));
    assert_problem(app.me_bearer(&forged).await, 401, "token_invalid").await;
    // And one signed with the right secret by us verifies: HS256 is plain RFC 7518.
    let mac = hmac_sha256(HS256_SECRET.as_bytes(), input.as_bytes());
    assert_eq!(app.me_bearer(&format!("{input}.{}", b64url(mac))).await.status(), 200);
}

/// The HS256 secret used in tests (32+ bytes).
pub(crate) const HS256_SECRET: &str = "test-secret-0123456789-abcdefghij-klmnop";
