//! `tessera bench`: measuring Tessera on the machine it runs on.
//!
//! - `tessera bench tokens`: many distinct valid access tokens for one login, for load tests
//!   that must defeat the verified-token cache (`scripts/bench-targets` feeds them to wrk).
//! - `tessera bench primitives`: the per-core signature-verification rate of the configured
//!   algorithm (the ceiling for requests that each carry a token never seen before) and the
//!   time of one argon2id hash (the ceiling for logins per second per password worker).

pub mod primitives;
pub mod tokens;
