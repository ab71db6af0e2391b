//! Records from SQL rows, written once for every SQL backend: each backend only says how to
//! read one typed column ([`Columns`]), and the mapping of columns to records lives here.

use super::{ClientInfo, FamilyRecord, RefreshTokenRecord, SessionRecord, StoreError, UserRecord};
use crate::audit::{AuditEvent, AuditKind, AuditOutcome};
use crate::clock::Timestamp;
use crate::crypto::Digest;
use crate::principal::AuthMethod;

/// Typed column access on one row of a backend.
pub(crate) trait Columns {
    /// A `TEXT NOT NULL` column.
    fn text(&self, column: &str) -> Result<String, StoreError>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, StoreError>;
    /// A nullable 64-bit integer column (the non-null case is [`Columns::int`]).
    fn opt_int(&self, column: &str) -> Result<Option<i64>, StoreError>;
    /// A binary column.
    fn bytes(&self, column: &str) -> Result<Vec<u8>, StoreError>;

    /// A 64-bit integer column.
    fn int(&self, column: &str) -> Result<i64, StoreError> {
        self.opt_int(column)?.ok_or_else(|| StoreError::Corrupt(format!("{column} is null")))
    }
}

pub(crate) fn digest(row: &impl Columns, column: &str) -> Result<Digest, StoreError> {
    row.bytes(column)?
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{column} is not a 32-byte digest")))
}

pub(crate) fn timestamp(row: &impl Columns, column: &str) -> Result<Timestamp, StoreError> {
    Ok(Timestamp::from_unix_millis(row.int(column)?))
}

fn client(row: &impl Columns) -> Result<ClientInfo, StoreError> {
    Ok(ClientInfo { ip: row.opt_text("ip")?, user_agent: row.opt_text("user_agent")? })
}

pub(crate) fn user(row: &impl Columns) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: row.text("id")?,
        username: row.text("username")?,
        password_hash: row.text("password_hash")?,
        created_at: timestamp(row, "created_at")?,
        disabled_at: row.opt_int("disabled_at")?.map(Timestamp::from_unix_millis),
    })
}

pub(crate) fn session(row: &impl Columns) -> Result<SessionRecord, StoreError> {
    Ok(SessionRecord {
        token_hash: digest(row, "token_hash")?,
        sid: row.text("sid")?,
        user_id: row.text("user_id")?,
        username: row.text("username")?,
        created_at: timestamp(row, "created_at")?,
        last_seen_at: timestamp(row, "last_seen_at")?,
        expires_at: timestamp(row, "expires_at")?,
        client: client(row)?,
    })
}

pub(crate) fn family(row: &impl Columns) -> Result<FamilyRecord, StoreError> {
    Ok(FamilyRecord {
        sid: row.text("sid")?,
        user_id: row.text("user_id")?,
        username: row.text("username")?,
        created_at: timestamp(row, "created_at")?,
        last_used_at: timestamp(row, "last_used_at")?,
        expires_at: timestamp(row, "expires_at")?,
        client: client(row)?,
    })
}

pub(crate) fn refresh_token(row: &impl Columns) -> Result<RefreshTokenRecord, StoreError> {
    Ok(RefreshTokenRecord {
        token_hash: digest(row, "token_hash")?,
        sid: row.text("sid")?,
        issued_at: timestamp(row, "issued_at")?,
        spent_at: row.opt_int("spent_at")?.map(Timestamp::from_unix_millis),
    })
}

pub(crate) fn audit_event(row: &impl Columns) -> Result<AuditEvent, StoreError> {
    let corrupt = |e: String| StoreError::Corrupt(format!("audit_events: {e}"));
    let method = match row.opt_text("method")?.as_deref() {
        None => None,
        Some("session") => Some(AuthMethod::Session),
        Some("token") => Some(AuthMethod::Token),
        Some(other) => return Err(corrupt(format!("unknown method {other:?}"))),
    };
    Ok(AuditEvent {
        at: timestamp(row, "at")?,
        kind: row.text("event")?.parse::<AuditKind>().map_err(corrupt)?,
        outcome: row.text("outcome")?.parse::<AuditOutcome>().map_err(corrupt)?,
        reason: row.opt_text("reason")?,
        user_id: row.opt_text("user_id")?,
        username: row.opt_text("username")?,
        method,
        sid: row.opt_text("sid")?,
        client: client(row)?,
    })
}
