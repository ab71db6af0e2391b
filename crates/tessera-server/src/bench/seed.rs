//! Seeding a fresh embedded store for `tessera bench`: N users who share one real argon2id
//! hash of a known password (hashing a million passwords would take hours and measure
//! nothing new), and one live session per user whose cookie values the benchmark keeps.

use std::path::Path;

use tessera::Clock;
use tessera::crypto::sha256;
use tessera::store::sqlite::SqliteStore;
use tessera::store::{ClientInfo, SessionRecord, UserRecord};

/// Rows per transaction.
const BATCH: usize = 50_000;

/// The cookie values of the seeded sessions, in user order (`bench-0`, `bench-1`, …).
#[derive(Debug)]
pub struct Seeded {
    /// One session cookie value per user.
    pub cookies: Vec<String>,
}

/// Creates `users` users named `bench-N` with `password_hash`, each with one session of the
/// given lifetimes, in `data_dir/tessera.db`; reports progress as a fraction.
pub async fn seed(
    data_dir: &Path,
    users: usize,
    password_hash: &str,
    absolute_lifetime: std::time::Duration,
    mut progress: impl FnMut(f64),
) -> anyhow::Result<Seeded> {
    let store = SqliteStore::open(&data_dir.join("tessera.db")).await?;
    let now = tessera::SystemClock.now();
    let client =
        ClientInfo { ip: Some("127.0.0.1".into()), user_agent: Some("tessera bench".into()) };
    let mut cookies = Vec::with_capacity(users);
    let mut done = 0;
    while done < users {
        let batch = BATCH.min(users - done);
        let mut user_rows = Vec::with_capacity(batch);
        let mut session_rows = Vec::with_capacity(batch);
        for n in done..done + batch {
            let user = UserRecord {
                id: tessera::ids::uuid_v7(now)?,
                username: format!("bench-{n}"),
                password_hash: password_hash.to_owned(),
                created_at: now,
                disabled_at: None,
            };
            let cookie = tessera::crypto::random_secret()?; // the form of a real session id
            session_rows.push(SessionRecord {
                token_hash: sha256(cookie.as_bytes()),
                sid: tessera::ids::uuid_v7(now)?,
                user_id: user.id.clone(),
                username: user.username.clone(),
                created_at: now,
                last_seen_at: now,
                expires_at: now.plus(absolute_lifetime),
                client: client.clone(),
            });
            user_rows.push(user);
            cookies.push(cookie);
        }
        // In index order, so each B-tree page is touched once per batch rather than per row.
        user_rows.sort_unstable_by(|a, b| a.username.cmp(&b.username));
        session_rows.sort_unstable_by_key(|s| s.token_hash);
        store.insert_in_bulk(&user_rows, &session_rows).await?;
        done += batch;
        progress(done as f64 / users as f64);
    }
    store.close().await;
    Ok(Seeded { cookies })
}
