//! The administration commands `tessera user list|disable|enable|delete|set-password` and
//! `tessera sessions list|revoke`: each opens the configured stores (as `serve` would), calls
//! the engine's administrator methods, and prints a table or a sentence for people, or JSON
//! (stable field names) for scripts with `--json`. Errors go to standard error with a non-zero
//! exit (`main.rs`).
//!
//! They may run next to a running server: what they end reaches it through the revocation
//! feed (within about a second on SQLite, at once on PostgreSQL or Redis).

use std::fmt::Write as _;

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::json;
use tessera::store::{ClientInfo, UserRecord};
use tessera::{Authenticator, EndedLogins, LoginInfo, Timestamp};

use crate::app::{self, StoreHandles};
use crate::cli::{ConfigArgs, SessionsCommand, UserCommand};
use crate::config::{Config, StoreKind};

/// Runs a `tessera user …` command other than `add`.
pub async fn user(command: UserCommand) -> anyhow::Result<()> {
    match command {
        UserCommand::Add { .. } => bail!("`tessera user add` is run by `tessera_server::run`"),
        UserCommand::List { json, config } => {
            let admin = Admin::open(&config, "tessera user list").await?;
            let users = admin.run(admin.auth.all_users()).await?;
            if json {
                let rows: Vec<_> = users.iter().map(user_json).collect();
                print_json(&rows)
            } else {
                print!("{}", users_table(&users));
                Ok(())
            }
        }
        UserCommand::Disable { user, json, config } => {
            let admin = Admin::open(&config, "tessera user disable").await?;
            let user = admin.find(&user).await?;
            let (user, ended) = admin.run(admin.auth.disable_user(&user, &admin.client)).await?;
            admin.finish().await?;
            if json {
                print_json(&with_ended(user_json(&user), ended))
            } else {
                println!("disabled user {} ({}); {}", user.username, user.id, describe(ended));
                Ok(())
            }
        }
        UserCommand::Enable { user, json, config } => {
            let admin = Admin::open(&config, "tessera user enable").await?;
            let user = admin.find(&user).await?;
            let user = admin.run(admin.auth.enable_user(&user, &admin.client)).await?;
            admin.finish().await?;
            if json {
                print_json(&user_json(&user))
            } else {
                println!("enabled user {} ({})", user.username, user.id);
                Ok(())
            }
        }
        UserCommand::Delete { user, yes, json, config } => {
            if !yes {
                bail!(
                    "refusing to delete {user:?} without --yes (it deletes the user and ends all \
                     their sessions and token logins; it cannot be undone)"
                );
            }
            let admin = Admin::open(&config, "tessera user delete").await?;
            let user = admin.find(&user).await?;
            let ended = admin.run(admin.auth.delete_user(&user, &admin.client)).await?;
            admin.finish().await?;
            if json {
                let mut out = with_ended(user_json(&user), ended);
                out["deleted"] = json!(true);
                print_json(&out)
            } else {
                println!("deleted user {} ({}); {}", user.username, user.id, describe(ended));
                Ok(())
            }
        }
        UserCommand::SetPassword { user, keep_sessions, json, config } => {
            let admin = Admin::open(&config, "tessera user set-password").await?;
            let user = admin.find(&user).await?;
            let password = crate::read_password()?;
            let end = !keep_sessions;
            let ended =
                admin.run(admin.auth.set_password(&user, &password, end, &admin.client)).await?;
            admin.finish().await?;
            if json {
                print_json(&with_ended(user_json(&user), ended))
            } else {
                let logins = if end { describe(ended) } else { "sessions kept".into() };
                println!("set the password of {} ({}); {logins}", user.username, user.id);
                Ok(())
            }
        }
    }
}

/// Runs a `tessera sessions …` command.
pub async fn sessions(command: SessionsCommand) -> anyhow::Result<()> {
    match command {
        SessionsCommand::List { user, json, config } => {
            let admin = Admin::open(&config, "tessera sessions list").await?;
            let user = admin.find(&user).await?;
            let logins = admin.run(admin.auth.user_logins(&user)).await?;
            if json {
                let rows: Vec<_> = logins.iter().map(login_json).collect();
                print_json(&rows)
            } else {
                print!("{}", logins_table(&user, &logins));
                Ok(())
            }
        }
        SessionsCommand::Revoke { user, session, json, config } => {
            let admin = Admin::open(&config, "tessera sessions revoke").await?;
            let user = admin.find(&user).await?;
            let result = admin.auth.end_user_logins(&user, session.as_deref(), &admin.client).await;
            let ended = match (result, &session) {
                (Err(tessera::Error::NotFound), Some(id)) => {
                    admin.handles.close().await;
                    bail!("{} has no session or token login with id {id:?}", user.username)
                }
                (result, _) => admin.run(async { result }).await?,
            };
            admin.finish().await?;
            if json {
                print_json(&with_ended(
                    json!({"user_id": user.id, "username": user.username}),
                    ended,
                ))
            } else {
                println!("{} of {} ({})", describe(ended), user.username, user.id);
                Ok(())
            }
        }
    }
}

/// The engine over the configured stores, for one command.
struct Admin {
    auth: Authenticator,
    handles: StoreHandles,
    /// How the audit log records the command.
    client: ClientInfo,
}

impl Admin {
    async fn open(args: &ConfigArgs, command: &str) -> anyhow::Result<Self> {
        let config = crate::load(args, None)?;
        refuse_memory(&config)?;
        let database = config.data_dir.join("tessera.db");
        let uses_sqlite = [config.users_store, config.sessions_store].contains(&StoreKind::Sqlite);
        if uses_sqlite && !database.exists() {
            // A mistyped --data-dir must not look like an empty user base.
            bail!(
                "no database at {} (is --data-dir or server.data_dir right? `tessera user add` \
                 creates it)",
                database.display()
            );
        }
        let (stores, handles) = app::open_stores(&config).await?;
        let auth = match Authenticator::builder(config.engine, stores).build().await {
            Ok(auth) => auth,
            Err(e) => {
                handles.close().await;
                return Err(e.into());
            }
        };
        let client = ClientInfo { ip: None, user_agent: Some(command.to_owned()) };
        Ok(Admin { auth, handles, client })
    }

    /// Awaits an engine call; on failure closes the stores and explains.
    async fn run<T>(
        &self,
        call: impl Future<Output = Result<T, tessera::Error>>,
    ) -> anyhow::Result<T> {
        match call.await {
            Ok(value) => Ok(value),
            Err(e) => {
                self.handles.close().await;
                Err(anyhow::Error::new(e))
            }
        }
    }

    /// The user named by a username or an id.
    async fn find(&self, user: &str) -> anyhow::Result<UserRecord> {
        match self.auth.find_user(user).await {
            Err(tessera::Error::NotFound) => {
                self.handles.close().await;
                bail!("no user has the username or id {user:?}")
            }
            other => self.run(async { other }).await,
        }
    }

    /// Retries announcing what ended to running servers, then closes the stores.
    async fn finish(self) -> anyhow::Result<()> {
        let flushed = self.auth.flush().await;
        self.handles.close().await;
        flushed.map(|_| ()).context(
            "the change is stored, but running servers could not be told through the \
             revocation feed (they refuse revoked access tokens within 10 s anyway; restart \
             them to drop cached sessions)",
        )
    }
}

/// A memory store lives inside the server process: a command cannot reach it.
fn refuse_memory(config: &Config) -> anyhow::Result<()> {
    for (key, kind) in
        [("store.users", config.users_store), ("store.sessions", config.sessions_store)]
    {
        if kind == StoreKind::Memory {
            bail!(
                "{key} = \"memory\": that store lives inside the server process, so there is \
                 nothing this command can reach (use the HTTP API, or a sqlite, postgres or \
                 redis store)"
            );
        }
    }
    Ok(())
}

/// A user as JSON: `id`, `username`, `created_at`, `disabled`, `disabled_at` (RFC 3339 or
/// null).
pub fn user_json(user: &UserRecord) -> serde_json::Value {
    json!({
        "id": user.id,
        "username": user.username,
        "created_at": user.created_at,
        "disabled": user.disabled_at.is_some(),
        "disabled_at": user.disabled_at,
    })
}

fn with_ended(mut value: serde_json::Value, ended: EndedLogins) -> serde_json::Value {
    value["sessions_ended"] = json!(ended.sessions);
    value["tokens_ended"] = json!(ended.tokens);
    value
}

fn login_json(login: &LoginInfo) -> serde_json::Value {
    json!({
        "id": login.id,
        "kind": login.method.as_str(),
        "created_at": login.created_at,
        "last_seen_at": login.last_seen_at,
        "expires_at": login.expires_at,
        "ip": login.client.ip,
        "user_agent": login.client.user_agent,
    })
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn describe(ended: EndedLogins) -> String {
    let plural =
        |n: usize, one: &str| if n == 1 { format!("1 {one}") } else { format!("{n} {one}s") };
    format!(
        "ended {} and {}",
        plural(ended.sessions, "session"),
        plural(ended.tokens, "token login")
    )
}

fn time(at: Timestamp) -> String {
    at.to_rfc3339()
}

fn users_table(users: &[UserRecord]) -> String {
    if users.is_empty() {
        return "no users\n".into();
    }
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.username.clone(),
                u.id.clone(),
                time(u.created_at),
                u.disabled_at.map_or_else(|| "-".into(), |at| format!("since {}", time(at))),
            ]
        })
        .collect::<Vec<_>>();
    table(&["USERNAME", "ID", "CREATED", "DISABLED"], &rows)
}

fn logins_table(user: &UserRecord, logins: &[LoginInfo]) -> String {
    if logins.is_empty() {
        return format!("{} has no sessions or token logins\n", user.username);
    }
    let dash = || "-".to_owned();
    let rows = logins
        .iter()
        .map(|l| {
            vec![
                l.id.clone(),
                l.method.as_str().to_owned(),
                time(l.created_at),
                time(l.last_seen_at),
                time(l.expires_at),
                l.client.ip.clone().unwrap_or_else(dash),
                l.client.user_agent.clone().unwrap_or_else(dash),
            ]
        })
        .collect::<Vec<_>>();
    table(&["ID", "KIND", "CREATED", "LAST USED", "EXPIRES", "IP", "USER AGENT"], &rows)
}

/// Columns padded to their widest cell, the last one unpadded (it is long and free-form).
/// Control characters are shown escaped, so a stored value cannot move the terminal's cursor.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| cell.escape_debug().to_string()).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    };
    line(header.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns_and_escape_control_characters() {
        let rows = vec![
            vec!["a".to_owned(), "long cell".to_owned(), "x".to_owned()],
            vec!["bbbb".to_owned(), "c".to_owned(), "evil\u{1b}[2J".to_owned()],
        ];
        let out = table(&["H1", "H2", "H3"], &rows);
        assert_eq!(
            out,
            "H1    H2         H3\na     long cell  x\nbbbb  c          evil\\u{1b}[2J\n"
        );
    }

    #[test]
    fn ended_logins_are_counted_in_words() {
        assert_eq!(
            describe(EndedLogins { sessions: 1, tokens: 0 }),
            "ended 1 session and 0 token logins"
        );
        assert_eq!(
            describe(EndedLogins { sessions: 2, tokens: 1 }),
            "ended 2 sessions and 1 token login"
        );
    }
}
