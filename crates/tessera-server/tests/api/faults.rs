//! Faults: the Redis or the PostgreSQL server of two running instances is stopped mid-test.
//! Whatever needs it fails closed (503 `store_unavailable`, `/readyz` 503, never a 200 for a
//! revoked or unknown credential, never a 500), what does not need it keeps working, and
//! everything comes back by itself once the server is back, without restarting Tessera.
//!
//! Each test runs a Redis or PostgreSQL server of its own (`cluster::OwnRedis`,
//! `cluster::OwnPostgres`), so stopping it disturbs no other test.

use std::time::Duration;

use crate::cluster::*;
use crate::helpers::*;

/// How long recovery may take: reconnection back-offs are at most a few seconds.
const RECOVERY: Duration = Duration::from_secs(20);

async fn status(response: reqwest::Response) -> u16 {
    response.status().as_u16()
}

async fn feed_live(instance: &Instance) -> Option<f64> {
    metric_sample(&instance.metrics().await, "tessera_revocation_feed_live")
}

async fn ready(instance: &Instance) -> u16 {
    status(instance.get("/readyz").send().await.unwrap()).await
}

#[tokio::test]
async fn redis_stopped_mid_test_fails_closed_and_recovers_by_itself() {
    let mut redis = OwnRedis::start();
    let postgres = shared_postgres_database();
    let env = scale_env(&postgres, &redis.url(), "fault");
    let (a, b) = (Instance::start(&env), Instance::start(&env));
    a.user("alice").await;
    let session = a.session_login("alice", PASSWORD).await;
    let kept = a.token_login("alice", PASSWORD).await;
    let doomed = a.token_login("alice", PASSWORD).await;
    for instance in [&a, &b] {
        eventually("the feed is live", WAIT, async || feed_live(instance).await == Some(1.0)).await;
    }

    redis.stop();
    // Sessions live in Redis: refused with 503, never let through, never a 500.
    assert_problem(b.me_cookie(&session.cookie).await, 503, "store_unavailable").await;
    // The answer names the request, in its header and its body, for the report of the fault.
    let readyz = a.get("/readyz").send().await.unwrap();
    let id = header_str(readyz.headers(), "x-request-id").expect("X-Request-Id");
    let problem = assert_problem(readyz, 503, "store_unavailable").await;
    assert_eq!(problem["request_id"], id.as_str(), "{problem}");
    assert_eq!(ready(&b).await, 503);
    // Throttling counters live in Redis too: no login can be counted, so none is checked.
    assert_problem(a.post_session("alice", PASSWORD).await, 503, "store_unavailable").await;
    assert_problem(b.post_token("alice", "a-wrong-guess-1").await, 503, "store_unavailable").await;

    // Each instance notices at once that its feed is gone, and from then on asks PostgreSQL
    // about every access token: a family revoked on A is refused by B without any message.
    eventually("B notices the lost feed", Duration::from_secs(5), async || {
        feed_live(&b).await == Some(0.0)
    })
    .await;
    assert_eq!(b.me_bearer(&kept.access).await.status(), 200, "tokens need no Redis");
    assert_eq!(a.revoke(&doomed.refresh).await.status(), 200, "stored in PostgreSQL");
    assert_problem(b.me_bearer(&doomed.access).await, 401, "token_invalid").await;
    assert_problem(a.me_bearer(&doomed.access).await, 401, "token_invalid").await;
    assert_problem(b.me_bearer("not.a.token").await, 401, "token_invalid").await;

    redis.resume();
    for instance in [&a, &b] {
        eventually("ready again", RECOVERY, async || ready(instance).await == 200).await;
        eventually("the feed is live again", RECOVERY, async || {
            feed_live(instance).await == Some(1.0)
        })
        .await;
    }
    // The session survived in Redis's append-only file; logins are counted again.
    assert_eq!(b.me_cookie(&session.cookie).await.status(), 200);
    assert_eq!(a.post_session("alice", PASSWORD).await.status(), 200);
    assert_problem(b.me_bearer(&doomed.access).await, 401, "token_invalid").await;
    // And the feed carries revocations again.
    assert_eq!(b.revoke(&kept.access).await.status(), 200);
    eventually("A refuses the token revoked on B", Duration::from_secs(5), async || {
        a.me_bearer(&kept.access).await.status() == 401
    })
    .await;
}

#[tokio::test]
async fn postgres_stopped_mid_test_fails_closed_and_recovers_by_itself() {
    let mut postgres = OwnPostgres::start();
    let (redis, prefix) = shared_redis();
    let env = scale_env(&postgres.url(), &redis, &prefix);
    let (a, b) = (Instance::start(&env), Instance::start(&env));
    a.user("alice").await;
    let session = a.session_login("alice", PASSWORD).await;
    let other_session = b.session_login("alice", PASSWORD).await;
    let tokens = a.token_login("alice", PASSWORD).await;
    for instance in [&a, &b] {
        eventually("the feed is live", WAIT, async || feed_live(instance).await == Some(1.0)).await;
    }

    postgres.stop();
    // Users, families and revocations live in PostgreSQL: logins, registrations and refreshes
    // fail closed.
    assert_problem(a.post_session("alice", PASSWORD).await, 503, "store_unavailable").await;
    assert_problem(b.refresh(&tokens.refresh).await, 503, "store_unavailable").await;
    assert_problem(b.try_register("bob", PASSWORD).await, 503, "store_unavailable").await;
    assert_problem(a.get("/readyz").send().await.unwrap(), 503, "store_unavailable").await;
    // What needs no PostgreSQL goes on: sessions in Redis, tokens by signature and the feed.
    assert_eq!(b.me_cookie(&session.cookie).await.status(), 200);
    assert_eq!(b.me_bearer(&tokens.access).await.status(), 200);
    // A logout still ends the session everywhere at once.
    let logout = b
        .delete("/v1/session")
        .header("cookie", &other_session.cookie)
        .header("x-csrf-token", &other_session.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(logout.status(), 204);
    assert_problem(a.me_cookie(&other_session.cookie).await, 401, "unauthorized").await;
    assert_problem(a.me_cookie("tessera_session=AAAA").await, 401, "unauthorized").await;

    postgres.resume();
    for instance in [&a, &b] {
        eventually("ready again", RECOVERY, async || ready(instance).await == 200).await;
    }
    eventually("logins work again", RECOVERY, async || {
        a.post_session("alice", PASSWORD).await.status() == 200
    })
    .await;
    let next = b.refresh_ok(&tokens.refresh).await;
    assert_eq!(a.me_bearer(&next.access).await.status(), 200);
    b.user("bob").await;
}
