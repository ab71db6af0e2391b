//! End-to-end tests of the HTTP contract (`API.md`) and the command line: each test starts its
//! own server (own port, data directory and login throttling) and talks to it over HTTP, or
//! runs the real `tessera` binary.
//!
//! One test binary on purpose: every extra one costs a link. Run with
//! `cargo test -p tessera-server --test api` (the JOSE cross-check needs PyJWT, the PostgreSQL
//! tests a server, the nginx test Debian's nginx, the browser test Node.js, the npm packages of
//! `tests/browser` and Debian's Chromium: `scripts/test` installs and starts what is needed
//! and sets `TESSERA_TEST_PYTHON` and `TESSERA_TEST_POSTGRES_URL`). `TEST_LOG=1` shows server
//! logs.

// `#[cfg(test)]` makes the helpers (functions outside `#[test]`) count as test code for
// clippy's allow-unwrap/expect/panic-in-tests settings.
#[cfg(test)]
#[path = "api/attacks_http.rs"]
mod attacks_http;
#[cfg(test)]
#[path = "api/attacks_jwt.rs"]
mod attacks_jwt;
#[cfg(test)]
#[path = "api/audit.rs"]
mod audit;
#[cfg(test)]
#[path = "api/browser.rs"]
mod browser;
#[cfg(test)]
#[path = "api/cli.rs"]
mod cli;
#[cfg(test)]
#[path = "api/cluster.rs"]
mod cluster;
#[cfg(test)]
#[path = "api/crash.rs"]
mod crash;
#[cfg(test)]
#[path = "api/csrf.rs"]
mod csrf;
#[cfg(test)]
#[path = "api/doctor.rs"]
mod doctor;
#[cfg(test)]
#[path = "api/faults.rs"]
mod faults;
#[cfg(test)]
#[path = "api/helpers.rs"]
mod helpers;
#[cfg(test)]
#[path = "api/jose.rs"]
mod jose;
#[cfg(test)]
#[path = "api/keys.rs"]
mod keys;
#[cfg(test)]
#[path = "api/nginx.rs"]
mod nginx;
#[cfg(test)]
#[path = "api/openapi.rs"]
mod openapi;
#[cfg(test)]
#[path = "api/ops.rs"]
mod ops;
#[cfg(test)]
#[path = "api/page.rs"]
mod page;
#[cfg(test)]
#[path = "api/postgres.rs"]
mod postgres;
#[cfg(test)]
#[path = "api/problems.rs"]
mod problems;
#[cfg(test)]
#[path = "api/proxy.rs"]
mod proxy;
#[cfg(test)]
#[path = "api/restart.rs"]
mod restart;
#[cfg(test)]
#[path = "api/scale.rs"]
mod scale;
#[cfg(test)]
#[path = "api/schemathesis.rs"]
mod schemathesis;
#[cfg(test)]
#[path = "api/session.rs"]
mod session;
#[cfg(test)]
#[path = "api/throttle.rs"]
mod throttle;
#[cfg(test)]
#[path = "api/tls.rs"]
mod tls;
#[cfg(test)]
#[path = "api/token.rs"]
mod token;
#[cfg(test)]
#[path = "api/users.rs"]
mod users;
#[cfg(test)]
#[path = "api/verify.rs"]
mod verify;
