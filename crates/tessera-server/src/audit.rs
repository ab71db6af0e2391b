//! `tessera audit`: reads the audit log from the configured store and prints it as a table for
//! people or as JSON for scripts.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use serde::Serialize;
use tessera::Timestamp;
use tessera::audit::{AuditEvent, AuditFilter};

use crate::app;
use crate::cli::AuditArgs;
use crate::config::Config;

/// Runs `tessera audit` with an already loaded configuration.
pub async fn run(args: &AuditArgs, config: &Config) -> anyhow::Result<()> {
    let now = Timestamp::from_unix_millis(unix_millis(SystemTime::now()));
    let filter = AuditFilter {
        user: args.user.as_ref().map(|u| u.to_ascii_lowercase()),
        kind: args.event,
        outcome: args.outcome,
        ip: args.ip.clone(),
        since: args.since.as_deref().map(|w| parse_when(w, now)).transpose().context("--since")?,
        until: args.until.as_deref().map(|w| parse_when(w, now)).transpose().context("--until")?,
        limit: args.limit,
    };
    let (stores, handles) = app::open_stores(config).await?;
    let result = stores.audit.query_audit(&filter).await;
    handles.close().await;
    let mut events = result.context("reading the audit log")?;
    events.reverse();
    let out = if args.json { to_json(&events)? } else { to_table(&events) };
    print!("{out}");
    Ok(())
}

/// An RFC 3339 instant, or an age such as `24h` counted back from `now`.
fn parse_when(when: &str, now: Timestamp) -> anyhow::Result<Timestamp> {
    if let Ok(time) = humantime::parse_rfc3339_weak(when) {
        return Ok(Timestamp::from_unix_millis(unix_millis(time)));
    }
    match humantime::parse_duration(when) {
        Ok(age) if age <= Duration::from_secs(100 * 365 * 86_400) => Ok(now.minus(age)),
        _ => bail!("{when:?} is neither an RFC 3339 time (2026-11-27T10:00:00Z) nor an age (24h)"),
    }
}

fn unix_millis(time: SystemTime) -> i64 {
    match time.duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

#[derive(Serialize)]
struct JsonEvent<'a> {
    at: Timestamp,
    event: &'static str,
    outcome: &'static str,
    reason: Option<&'a str>,
    user_id: Option<&'a str>,
    username: Option<&'a str>,
    method: Option<&'static str>,
    session_id: Option<&'a str>,
    ip: Option<&'a str>,
    user_agent: Option<&'a str>,
}

fn to_json(events: &[AuditEvent]) -> anyhow::Result<String> {
    let rows: Vec<JsonEvent<'_>> = events
        .iter()
        .map(|e| JsonEvent {
            at: e.at,
            event: e.kind.as_str(),
            outcome: e.outcome.as_str(),
            reason: e.reason.as_deref(),
            user_id: e.user_id.as_deref(),
            username: e.username.as_deref(),
            method: e.method.map(|m| m.as_str()),
            session_id: e.sid.as_deref(),
            ip: e.client.ip.as_deref(),
            user_agent: e.client.user_agent.as_deref(),
        })
        .collect();
    let mut out = serde_json::to_string_pretty(&rows)?;
    out.push('\n');
    Ok(out)
}

/// One line per event, columns padded to their widest cell; the user agent comes last, as
/// it is long and free-form. Control characters are shown escaped, so a stored value cannot
/// move the terminal's cursor.
fn to_table(events: &[AuditEvent]) -> String {
    if events.is_empty() {
        return "no audit events match\n".into();
    }
    let header = ["TIME", "EVENT", "OUTCOME", "USER", "METHOD", "SESSION", "IP", "USER AGENT"];
    let dash = || "-".to_owned();
    let rows: Vec<[String; 8]> = events
        .iter()
        .map(|e| {
            let outcome = match &e.reason {
                Some(reason) => format!("{} ({reason})", e.outcome),
                None => e.outcome.to_string(),
            };
            [
                e.at.to_rfc3339(),
                e.kind.to_string(),
                outcome,
                e.username.clone().or_else(|| e.user_id.clone()).unwrap_or_else(dash),
                e.method.map_or_else(dash, |m| m.as_str().to_owned()),
                e.sid.clone().unwrap_or_else(dash),
                e.client.ip.clone().unwrap_or_else(dash),
                e.client.user_agent.clone().unwrap_or_else(dash),
            ]
            .map(|cell| cell.escape_debug().to_string())
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (i, cell) in cells.iter().enumerate() {
            if i == last {
                let _ = writeln!(out, "{cell}");
            } else {
                let _ = write!(out, "{cell:<width$}  ", width = widths[i]);
            }
        }
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn when_is_an_rfc3339_time_or_an_age() {
        let now = Timestamp::from_unix_seconds(1_000_000);
        assert_eq!(parse_when("1h", now).ok(), Some(Timestamp::from_unix_seconds(996_400)));
        assert_eq!(
            parse_when("1970-01-02T00:00:00Z", now).ok(),
            Some(Timestamp::from_unix_seconds(86_400))
        );
        assert!(parse_when("yesterday", now).is_err());
        assert!(parse_when("1000000y", now).is_err());
    }
}
