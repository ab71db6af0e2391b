//! Many instances: two `tessera` processes share users, refresh families, revocations and
//! keys in PostgreSQL and sessions, throttling counters and the revocation feed in Redis (the
//! servers `scripts/test` starts). What one instance does, the other sees: a login works on
//! both, a logout on one is enforced by the other (sessions at once, access tokens as soon as
//! the feed message lands), refresh-token reuse is caught whichever instance sees it, and
//! throttling counts attempts on both.

use std::time::Duration;

use serde_json::json;

use crate::cluster::*;
use crate::helpers::*;

/// Two instances on one fresh PostgreSQL database and one Redis key prefix.
fn pair() -> (Instance, Instance) {
    let (a, b, _, _) = pair_on_redis();
    (a, b)
}

/// [`pair`], with the Redis URL and key prefix they use.
fn pair_on_redis() -> (Instance, Instance, String, String) {
    let postgres = shared_postgres_database();
    let (redis, prefix) = shared_redis();
    let env = scale_env(&postgres, &redis, &prefix);
    let a = Instance::start(&env);
    let b = Instance::start(&env);
    (a, b, redis, prefix)
}

/// Waits until an instance follows the revocation feed (it reports so in `/metrics`).
async fn feed_live(instance: &Instance) {
    eventually("the revocation feed is live", WAIT, async || {
        metric_sample(&instance.metrics().await, "tessera_revocation_feed_live") == Some(1.0)
    })
    .await;
}

#[tokio::test]
async fn a_login_on_one_instance_works_on_the_other_and_a_logout_on_either_ends_it_on_both() {
    let (a, b) = pair();
    a.user("alice").await;
    assert_eq!(a.jwks().await, b.jwks().await, "one signing key, one JWKS");

    // Session from A, used on B, renewed there, listed on both.
    let session = a.session_login("alice", PASSWORD).await;
    let me = json_body(b.me_cookie(&session.cookie).await, 200).await;
    assert_eq!(
        (me["username"].as_str(), me["auth_method"].as_str()),
        (Some("alice"), Some("session"))
    );
    let listing = a.get("/v1/sessions").header("cookie", &session.cookie).send().await.unwrap();
    assert_eq!(json_body(listing, 200).await["sessions"].as_array().unwrap().len(), 1);

    // Logout on B with A's CSRF token: the session is gone for A at once (no cache to expire).
    let logout = b
        .delete("/v1/session")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_problem(a.me_cookie(&session.cookie).await, 401, "unauthorized").await;
    assert_problem(b.me_cookie(&session.cookie).await, 401, "unauthorized").await;

    // Tokens from B work on A; a revocation on B reaches A through the feed.
    feed_live(&a).await;
    let tokens = b.token_login("alice", PASSWORD).await;
    assert_eq!(a.me_bearer(&tokens.access).await.status(), 200);
    assert_eq!(b.revoke(&tokens.access).await.status(), 200);
    let took =
        eventually("A refuses the revoked access token", Duration::from_secs(5), async || {
            a.me_bearer(&tokens.access).await.status() == 401
        })
        .await;
    eprintln!("revocation reached the other instance after {took:?} (polled every 5 ms)");
    assert_problem(b.me_bearer(&tokens.access).await, 401, "token_invalid").await;
}

#[tokio::test]
async fn revocation_reaches_the_other_instance_within_100_ms() {
    // Logout everywhere on A, then B's first request: for sessions there is nothing to wait
    // for; for access tokens, B must have the feed message. Counted from A's answer, with B
    // polled every 5 ms, over 10 rounds: the median must be within 100 ms. (One round may
    // take longer on a loaded machine without failing the test; none may take 2 s.)
    let (a, b) = pair();
    a.user("alice").await;
    feed_live(&b).await;
    let mut latencies = Vec::new();
    for _ in 0..10 {
        let session = a.session_login("alice", PASSWORD).await;
        let tokens = a.token_login("alice", PASSWORD).await;
        assert_eq!(b.me_bearer(&tokens.access).await.status(), 200);
        let everywhere = a
            .delete("/v1/sessions")
            .header("cookie", &session.cookie)
            .header("x-csrf-token", &session.csrf)
            .send()
            .await
            .unwrap();
        assert_eq!(everywhere.status(), 204);
        assert_eq!(b.me_cookie(&session.cookie).await.status(), 401, "the session at once");
        let took = eventually("B refuses the access token", Duration::from_secs(2), async || {
            b.me_bearer(&tokens.access).await.status() == 401
        })
        .await;
        latencies.push(took);
    }
    latencies.sort();
    let (median, max) = (latencies[5], latencies[9]);
    eprintln!("token revocation latency across instances: median {median:?}, max {max:?}");
    assert!(median <= Duration::from_millis(100), "median {median:?}: {latencies:?}");
}

#[tokio::test]
async fn refresh_token_reuse_is_caught_across_instances() {
    let (a, b) = pair();
    a.user("alice").await;
    feed_live(&a).await;
    feed_live(&b).await;
    let first = a.token_login("alice", PASSWORD).await;
    let second = b.refresh_ok(&first.refresh).await;
    let third = a.refresh_ok(&second.refresh).await;
    assert_eq!(b.me_bearer(&third.access).await.status(), 200);
    // A thief replays the first refresh token on B: the whole family dies, on both.
    assert_problem(b.refresh(&first.refresh).await, 401, "token_reused").await;
    assert_problem(a.refresh(&third.refresh).await, 401, "token_invalid").await;
    eventually("A refuses the family's access token", Duration::from_secs(5), async || {
        a.me_bearer(&third.access).await.status() == 401
    })
    .await;
    assert_eq!(b.me_bearer(&third.access).await.status(), 401);
}

#[tokio::test]
async fn throttling_counts_attempts_on_every_instance() {
    let (a, b) = pair();
    a.user("alice").await;
    // Five failures spread over both instances lock the username on both.
    for i in 0..5 {
        let instance = if i % 2 == 0 { &a } else { &b };
        assert_problem(
            instance.post_session("alice", "wrong-password-1").await,
            401,
            "invalid_credentials",
        )
        .await;
    }
    for instance in [&a, &b] {
        let refused = instance.post_session("alice", PASSWORD).await;
        assert!(refused.headers().contains_key("retry-after"));
        assert_problem(refused, 429, "rate_limited").await;
    }
    // Concurrent guesses at a fresh username through both: no more than five get checked.
    a.user("bob").await;
    let guesses: Vec<_> = (0..12)
        .map(|i| {
            let request = if i % 2 == 0 { a.post("/v1/session") } else { b.post("/v1/session") };
            tokio::spawn(async move {
                request
                    .json(&json!({"username": "bob", "password": "wrong-password-2"}))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let mut checked = 0;
    for guess in guesses {
        match guess.await.unwrap() {
            401 => checked += 1,
            429 => {}
            other => panic!("unexpected {other}"),
        }
    }
    assert!(checked <= 5, "{checked} guesses were checked");
}

#[tokio::test]
async fn an_unreachable_redis_fails_the_start_without_showing_its_password() {
    use tessera_server::config::{Config, RawConfig};
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let mut raw = RawConfig::default();
    raw.server.listen = Some("127.0.0.1:0".into());
    raw.server.data_dir = Some(dir.path().to_owned());
    raw.store.sessions = Some("redis".into());
    raw.store.redis_url = Some(format!("redis://:pw-s3cret@127.0.0.1:{port}/0"));
    let config = Config::from_raw(raw).unwrap();
    let described = tessera_server::telemetry::describe_config(&config);
    assert!(described.contains("store.redis_url = redis://[redacted]@127.0.0.1:"), "{described}");
    assert!(described.contains("store.redis_prefix = tessera\n"), "{described}");
    assert!(!described.contains("pw-s3cret") && !format!("{config:?}").contains("pw-s3cret"));
    let started = std::time::Instant::now();
    let error = format!("{:#}", tessera_server::Application::build(config).await.unwrap_err());
    assert!(error.contains("store.redis_url"), "{error}");
    assert!(!error.contains("pw-s3cret"), "{error}");
    assert!(started.elapsed() < WAIT, "the start gives up instead of hanging");
}

#[tokio::test]
async fn a_logout_ends_its_own_session_even_without_the_users_session_index() {
    // The logout deletes the session by its cookie's digest, not only through the index
    // (which an operator's mistake, such as an evicting Redis, could lose).
    let (a, b, redis, prefix) = pair_on_redis();
    let user = a.user("alice").await;
    let session = a.session_login("alice", PASSWORD).await;
    let index = format!("{prefix}:user-sessions:{}", user.id);
    let deleted = std::process::Command::new("redis-cli")
        .args(["-u", &redis, "DEL", &index])
        .output()
        .expect("redis-cli runs");
    assert_eq!(String::from_utf8_lossy(&deleted.stdout).trim(), "1", "the index existed");
    let logout = b
        .delete("/v1/session")
        .header("cookie", &session.cookie)
        .header("x-csrf-token", &session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_problem(a.me_cookie(&session.cookie).await, 401, "unauthorized").await;
}
