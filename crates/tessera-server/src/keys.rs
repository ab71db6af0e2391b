//! `tessera keys list|rotate`: the signing keys as an operator sees them, and a rotation by
//! hand, made where the server keeps its keys (the data directory, or the PostgreSQL key
//! table with `store.users = "postgres"`). A running server notices within
//! [`KEY_CHECK_EVERY`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail};
use serde::Serialize;
use tessera::store::postgres::PostgresStore;
use tessera::token::keyring::HS256_NO_ROTATION;
use tessera::token::{Algorithm, KeyInfo, KeyRing, KeyState, Rotation};
use tessera::{Clock, SystemClock, Timestamp};

use crate::app::{KEY_CHECK_EVERY, key_ring};
use crate::cli::{ConfigArgs, KeysCommand};
use crate::config::{Config, StoreKind};

/// Runs `tessera keys …`; `load` reads the configuration.
pub async fn run(
    command: KeysCommand,
    load: impl Fn(&ConfigArgs) -> anyhow::Result<Config>,
) -> anyhow::Result<()> {
    match command {
        KeysCommand::List { json, config } => {
            let config = load(&config)?;
            let (ring, postgres) = open(&config).await?;
            let now = SystemClock.now();
            let entries = ring.entries(now).await;
            close(postgres).await;
            let entries = entries.map_err(engine_error)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list_json(&entries, now))?);
            } else if entries.is_empty() {
                println!(
                    "no signing keys yet in {} (the server creates one at its first start)",
                    where_kept(&config)
                );
            } else {
                print!("{}", table(&entries, now));
            }
            Ok(())
        }
        KeysCommand::Rotate { json, config } => {
            let config = load(&config)?;
            if config.algorithm == Algorithm::HS256 {
                bail!("cannot rotate: {HS256_NO_ROTATION}");
            }
            if config.users_store != StoreKind::Postgres && !config.data_dir.is_dir() {
                bail!(
                    "the data directory {} does not exist: pass the server's --data-dir (or \
                     server.data_dir in --config)",
                    config.data_dir.display()
                );
            }
            let (ring, postgres) = open(&config).await?;
            let now = SystemClock.now();
            let synced = ring.sync(Rotation::Now, now).await;
            close(postgres).await;
            let synced = synced.map_err(engine_error)?;
            let new = synced.keys.signing().public();
            let retired: Vec<&KeyInfo> =
                synced.entries.iter().filter(|e| synced.retired.contains(&e.kid)).collect();
            if json {
                let out = RotateJson {
                    kid: new.kid(),
                    alg: new.alg().name(),
                    created_at: now,
                    retired: retired
                        .iter()
                        .map(|e| RetiredJson { kid: &e.kid, verifies_until: until(e.state) })
                        .collect(),
                };
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!(
                    "new signing key {} ({}) in {}",
                    new.kid(),
                    new.alg(),
                    where_kept(&config)
                );
                for entry in &retired {
                    let until = until(entry.state).map_or_else(String::new, Timestamp::to_rfc3339);
                    println!(
                        "retired {}: it verifies the tokens it signed until {until}, then it is \
                         dropped",
                        entry.kid
                    );
                }
                println!(
                    "running servers sign with the new key within {}s",
                    KEY_CHECK_EVERY.as_secs()
                );
            }
            Ok(())
        }
    }
}

/// The ring the server uses, and the PostgreSQL store it lives in (to close).
async fn open(config: &Config) -> anyhow::Result<(Arc<dyn KeyRing>, Option<Arc<PostgresStore>>)> {
    let postgres = match (&config.postgres_url, config.users_store) {
        (Some(url), StoreKind::Postgres) => Some(Arc::new(
            PostgresStore::connect(secrecy::ExposeSecret::expose_secret(url))
                .await
                .map_err(|e| anyhow!("opening the PostgreSQL store (store.url): {e}"))?,
        )),
        _ => None,
    };
    Ok((key_ring(config, postgres.as_ref())?, postgres))
}

async fn close(postgres: Option<Arc<PostgresStore>>) {
    if let Some(store) = postgres {
        store.close().await;
    }
}

/// An engine error as the command line shows it (without the "internal error" prefix, which
/// means nothing to an operator here).
fn engine_error(e: tessera::Error) -> anyhow::Error {
    match e {
        tessera::Error::Internal(message) => anyhow!(message),
        other => anyhow!(other),
    }
}

fn where_kept(config: &Config) -> String {
    match config.users_store {
        StoreKind::Postgres => "the PostgreSQL database (store.url)".into(),
        _ => format!("{}", config.data_dir.join("keys").display()),
    }
}

/// Until when a retired or expired key verifies.
fn until(state: KeyState) -> Option<Timestamp> {
    match state {
        KeyState::Signing => None,
        KeyState::Retired { verifies_until } => Some(verifies_until),
        KeyState::Expired { verified_until } => Some(verified_until),
    }
}

#[derive(Serialize)]
struct KeyJson<'a> {
    kid: &'a str,
    alg: &'static str,
    created_at: Timestamp,
    retired_at: Option<Timestamp>,
    state: &'static str,
    verifies_until: Option<Timestamp>,
    age_seconds: u64,
}

#[derive(Serialize)]
struct RotateJson<'a> {
    kid: &'a str,
    alg: &'static str,
    created_at: Timestamp,
    retired: Vec<RetiredJson<'a>>,
}

#[derive(Serialize)]
struct RetiredJson<'a> {
    kid: &'a str,
    verifies_until: Option<Timestamp>,
}

fn list_json(entries: &[KeyInfo], now: Timestamp) -> Vec<KeyJson<'_>> {
    entries
        .iter()
        .map(|e| KeyJson {
            kid: &e.kid,
            alg: e.alg.name(),
            created_at: e.created_at,
            retired_at: e.retired_at,
            state: e.state.name(),
            verifies_until: until(e.state),
            age_seconds: now.since(e.created_at).as_secs(),
        })
        .collect()
}

/// One line per key, oldest first, columns padded to their widest cell.
fn table(entries: &[KeyInfo], now: Timestamp) -> String {
    let header = ["KID", "ALG", "CREATED", "STATE", "AGE"];
    let rows: Vec<[String; 5]> = entries
        .iter()
        .map(|e| {
            let state = match e.state {
                KeyState::Signing => "signing".to_owned(),
                KeyState::Retired { verifies_until } => {
                    format!("retired, verifies until {}", verifies_until.to_rfc3339())
                }
                KeyState::Expired { .. } => "expired (dropped at the next check)".to_owned(),
            };
            [
                e.kid.clone(),
                e.alg.name().to_owned(),
                e.created_at.to_rfc3339(),
                state,
                age(now.since(e.created_at)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 5]| {
        for (i, cell) in cells.iter().enumerate() {
            if i == cells.len() - 1 {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    };
    line(header);
    for row in &rows {
        line(row.each_ref().map(String::as_str));
    }
    out
}

/// An age in its two largest units: `3d 4h`, `5h 12m`, `7m 3s`, `42s`.
fn age(age: Duration) -> String {
    let s = age.as_secs();
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_show_their_two_largest_units() {
        let s = Duration::from_secs;
        assert_eq!(age(s(0)), "0s");
        assert_eq!(age(s(42)), "42s");
        assert_eq!(age(s(7 * 60 + 3)), "7m 3s");
        assert_eq!(age(s(5 * 3600 + 12 * 60 + 9)), "5h 12m");
        assert_eq!(age(s(3 * 86_400 + 4 * 3600 + 59)), "3d 4h");
    }

    #[test]
    fn the_table_is_aligned_and_names_each_state() {
        let t = |secs| Timestamp::from_unix_seconds(1_800_000_000 + secs);
        let entry = |kid: &str, retired: Option<i64>, state| KeyInfo {
            kid: kid.into(),
            alg: Algorithm::EdDSA,
            created_at: t(0),
            retired_at: retired.map(t),
            state,
        };
        let entries = [
            entry("old-key", Some(10), KeyState::Expired { verified_until: t(20) }),
            entry("retired-key-id", Some(100), KeyState::Retired { verifies_until: t(500) }),
            entry("k", None, KeyState::Signing),
        ];
        let out = table(&entries, t(3600));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 4, "{out}");
        let column = |name: &str| lines[0].find(name).unwrap();
        for line in &lines[1..] {
            assert_eq!(line.find("EdDSA"), Some(column("ALG")), "{out}");
            assert_eq!(line.find("2027-"), Some(column("CREATED")), "{out}");
        }
        assert!(lines[1].contains("expired"), "{out}");
        assert!(lines[2].contains("retired, verifies until 2027-01-15T08:08:20Z"), "{out}");
        assert!(lines[3].contains("signing") && lines[3].ends_with("1h 0m"), "{out}");
        let json = serde_json::to_value(list_json(&entries, t(3600))).unwrap();
        assert_eq!(json[1]["state"], "retired");
        assert_eq!(json[1]["verifies_until"], "2027-01-15T08:08:20Z");
        assert_eq!(json[2]["verifies_until"], serde_json::Value::Null);
        assert_eq!(json[2]["age_seconds"], 3600);
    }
}
