//! `tessera doctor`: checks a configuration and the installation it points at, and says what to
//! fix. Each check gives one line: `OK`, `WARN` (works, but is risky or will break soon) or
//! `FAIL` (broken or unsafe), with a hint. It only reads: nothing is created, migrated or
//! written, and every store is given a short time to answer.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tessera::password::Argon2Params;

use crate::config::{Config, StoreKind};

/// How long a store gets to answer.
const STORE_TIMEOUT: Duration = Duration::from_secs(3);
/// A certificate expiring sooner than this is a warning.
const CERT_WARN_DAYS: i64 = 30;
/// A signing key older than this should be rotated.
const KEY_WARN_DAYS: i64 = 180;
/// OWASP's argon2id configurations (memory KiB, iterations), any of which is the floor.
const OWASP_ARGON2: [(u32, u32); 5] =
    [(47_104, 1), (19_456, 2), (12_288, 3), (9_216, 4), (7_168, 5)];

/// The verdict of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but is risky or will break soon.
    Warn,
    /// Broken or unsafe.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked (`config`, `cookie`, `tls`, ...).
    pub check: &'static str,
    /// The verdict.
    pub status: Status,
    /// What was found.
    pub message: String,
    /// What to do about it (none when all is well).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Every check's result, in order.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// The checks.
    pub checks: Vec<Check>,
}

impl Report {
    fn push(&mut self, check: &'static str, status: Status, message: impl Into<String>) {
        self.checks.push(Check { check, status, message: message.into(), fix: None });
    }

    fn push_fix(
        &mut self,
        check: &'static str,
        status: Status,
        message: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.checks.push(Check { check, status, message: message.into(), fix: Some(fix.into()) });
    }

    /// How many checks failed.
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.status == Status::Fail).count()
    }

    /// One line per check: `OK   tls: ...`, with `  fix: ...` after the problems.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            let status = match c.status {
                Status::Ok => "OK  ",
                Status::Warn => "WARN",
                Status::Fail => "FAIL",
            };
            // One line per check, whatever the message.
            let message: Vec<&str> =
                c.message.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let _ = write!(out, "{status} {}: {}", c.check, message.join(" "));
            if let Some(fix) = &c.fix {
                let _ = write!(out, " (fix: {fix})");
            }
            out.push('\n');
        }
        let warnings = self.checks.iter().filter(|c| c.status == Status::Warn).count();
        let _ = writeln!(
            out,
            "{} checks: {} failed, {warnings} warning(s)",
            self.checks.len(),
            self.failures()
        );
        out
    }

    /// `{"ok": bool, "failures": N, "warnings": N, "checks": [...]}`.
    pub fn json(&self) -> serde_json::Value {
        let warnings = self.checks.iter().filter(|c| c.status == Status::Warn).count();
        serde_json::json!({
            "ok": self.failures() == 0,
            "failures": self.failures(),
            "warnings": warnings,
            "checks": self.checks,
        })
    }
}

/// Runs every check on the configuration `loaded` (or the error loading it).
pub async fn run(loaded: anyhow::Result<Config>, now_unix: i64) -> Report {
    let mut report = Report::default();
    let config = match loaded {
        Ok(config) => {
            report.push("config", Status::Ok, "the configuration parses and validates");
            config
        }
        Err(e) => {
            report.push_fix(
                "config",
                Status::Fail,
                format!("{e:#}"),
                "correct the key named above (docs/configuration.md); `tessera config check` \
                 shows the effective configuration",
            );
            return report;
        }
    };
    let public = PublicUrl::of(&config);
    check_cookie(&mut report, &config, &public);
    check_exposure(&mut report, &config, &public);
    check_tls(&mut report, &config, now_unix);
    // The names only matter once the certificate itself is usable.
    if report.checks.last().is_some_and(|c| c.status != Status::Fail)
        && let Some(der) = config.tls.as_ref().and_then(|(cert, _)| first_certificate(cert))
    {
        check_cert_names(&mut report, &der, &public);
    }
    check_data_dir(&mut report, &config);
    check_keys(&mut report, &config, now_unix);
    check_stores(&mut report, &config).await;
    check_registration(&mut report, &config, &public);
    check_origins(&mut report, &config);
    check_argon2(&mut report, config.engine.password.params);
    report
}

/// The public URL as clients see it: configured, or derived from the listen address.
struct PublicUrl {
    url: String,
    /// The host, without brackets or port.
    host: String,
    https: bool,
    /// Whether its host is loopback (`localhost`, 127.0.0.0/8, ::1): local development.
    local: bool,
}

impl PublicUrl {
    fn of(config: &Config) -> PublicUrl {
        let url = config.public_url.clone().unwrap_or_else(|| {
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            format!("{scheme}://{}", config.listen)
        });
        PublicUrl::from_url(&url)
    }

    /// Scheme and host of `url`.
    fn from_url(url: &str) -> PublicUrl {
        let https = url.starts_with("https://");
        let rest = url.split_once("://").map_or("", |(_, rest)| rest);
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        let authority = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
        let host = match authority.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
        };
        let local = host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
        PublicUrl { url: url.to_owned(), host: host.to_owned(), https, local }
    }
}

fn check_cookie(report: &mut Report, config: &Config, public: &PublicUrl) {
    match (config.cookie_secure, public.local) {
        (true, _) => report.push("cookie", Status::Ok, "cookies are Secure with __Host- names"),
        (false, true) => report.push_fix(
            "cookie",
            Status::Warn,
            format!("cookie.secure = false (fine on {} for local development only)", public.url),
            "set cookie.secure = true anywhere but a developer's machine",
        ),
        (false, false) => report.push_fix(
            "cookie",
            Status::Fail,
            format!(
                "cookie.secure = false on the public URL {}: session cookies lose Secure and \
                 the __Host- prefix, so browsers also send them over plain HTTP",
                public.url
            ),
            "set cookie.secure = true, and serve HTTPS: server.public_url = \"https://...\"",
        ),
    }
}

fn check_exposure(report: &mut Report, config: &Config, public: &PublicUrl) {
    if !public.https && !public.local {
        report.push_fix(
            "public_url",
            Status::Warn,
            format!("{} is plain HTTP on a non-loopback host", public.url),
            "serve HTTPS: set [tls] cert and key, or terminate TLS at a proxy and set \
             server.public_url = \"https://...\"",
        );
    } else {
        report.push("public_url", Status::Ok, public.url.clone());
    }
    let listen_public = !config.listen.ip().is_loopback();
    match (listen_public, config.tls.is_some(), public.https) {
        (false, _, _) => report.push(
            "listen",
            Status::Ok,
            format!("{} is reachable from this machine only", config.listen),
        ),
        (true, true, _) => {
            report.push("listen", Status::Ok, format!("{} with TLS", config.listen));
        }
        (true, false, true) => report.push(
            "listen",
            Status::Ok,
            format!(
                "{} without TLS, behind a TLS proxy (public_url is https); make sure only the \
                 proxy can reach it",
                config.listen
            ),
        ),
        (true, false, false) => report.push_fix(
            "listen",
            Status::Warn,
            format!("{} is reachable from the network without TLS", config.listen),
            "listen on 127.0.0.1 behind a TLS proxy, or set [tls] cert and key",
        ),
    }
}

/// The first (the server's own) certificate of the PEM chain in `path`.
fn first_certificate(path: &Path) -> Option<Vec<u8>> {
    use tokio_rustls::rustls::pki_types::CertificateDer;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    let mut certs = CertificateDer::pem_file_iter(path).ok()?;
    certs.next()?.ok().map(|der| der.to_vec())
}

/// Whether the certificate is for the public URL's host (a warning only: a proxy in front may
/// present another certificate).
fn check_cert_names(report: &mut Report, der: &[u8], public: &PublicUrl) {
    let Some(names) = crate::cert_info::names(der) else {
        report.push_fix(
            "tls_names",
            Status::Warn,
            "the certificate names no host (no subject alternative names)",
            "use a certificate whose subject alternative names include the public host",
        );
        return;
    };
    if crate::cert_info::covers(&names, &public.host) {
        report.push("tls_names", Status::Ok, format!("the certificate covers {}", public.host));
    } else {
        report.push_fix(
            "tls_names",
            Status::Warn,
            format!(
                "the certificate is for {}, not for {} (the public URL's host)",
                names.join(", "),
                public.host
            ),
            "use a certificate for the public host, or set server.public_url to a name it covers",
        );
    }
}

fn check_tls(report: &mut Report, config: &Config, now_unix: i64) {
    let Some((cert, key)) = &config.tls else {
        report.push("tls", Status::Ok, "not terminated here ([tls] not set)");
        return;
    };
    for (name, path) in [("tls.cert", cert), ("tls.key", key)] {
        if let Err(e) = std::fs::File::open(path) {
            report.push_fix(
                "tls",
                Status::Fail,
                format!("{name}: cannot read {}: {e}", path.display()),
                format!("check the path and that the server's user can read it ({name})"),
            );
            return;
        }
    }
    if let Err(e) = crate::tls::acceptor(cert, key) {
        report.push_fix(
            "tls",
            Status::Fail,
            format!("{e:#}"),
            "use the PEM certificate chain and the private key that belongs to it",
        );
        return;
    }
    let Some(validity) = first_certificate(cert).and_then(|der| crate::cert_info::validity(&der))
    else {
        report.push_fix(
            "tls",
            Status::Warn,
            format!("the key matches, but the validity of {} is unreadable", cert.display()),
            "check the certificate with `openssl x509 -noout -dates -in FILE`",
        );
        return;
    };
    let days_left = (validity.not_after - now_unix).div_euclid(86_400);
    let expires = format!("expires in {days_left} day(s)");
    if validity.not_after <= now_unix {
        report.push_fix(
            "tls",
            Status::Fail,
            format!("{} has expired", cert.display()),
            "renew the certificate",
        );
    } else if validity.not_before > now_unix {
        report.push_fix(
            "tls",
            Status::Fail,
            format!("{} is not valid yet", cert.display()),
            "check the clock, or the certificate's notBefore",
        );
    } else if days_left < CERT_WARN_DAYS {
        report.push_fix(
            "tls",
            Status::Warn,
            format!("{}: the key matches; {expires}", cert.display()),
            "renew the certificate (the server reads it at start: restart after renewing)",
        );
    } else {
        report.push("tls", Status::Ok, format!("{}: the key matches; {expires}", cert.display()));
    }
}

fn check_data_dir(report: &mut Report, config: &Config) {
    let dir = &config.data_dir;
    let Ok(meta) = std::fs::metadata(dir) else {
        report.push(
            "data_dir",
            Status::Ok,
            format!(
                "{} does not exist yet: it is created (0700) at the first start",
                dir.display()
            ),
        );
        return;
    };
    if !meta.is_dir() {
        report.push_fix(
            "data_dir",
            Status::Fail,
            format!("{} is not a directory", dir.display()),
            "point server.data_dir (or --data-dir) at a directory",
        );
        return;
    }
    let mut loose = Vec::new();
    let mut secrets = vec![dir.join("secret.key"), dir.join("keys").join("keys.json")];
    if let Ok(entries) = std::fs::read_dir(dir.join("keys")) {
        secrets.extend(
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "pk8")),
        );
    }
    for path in secrets.iter().chain([dir.join("tessera.db")].iter()) {
        if path.exists() && group_or_world_access(path) {
            loose.push(path.display().to_string());
        }
    }
    if !loose.is_empty() {
        report.push_fix(
            "data_dir",
            Status::Fail,
            format!("readable or writable by other users: {}", loose.join(", ")),
            "chmod 600 on each file (keys and secrets must be the server's alone)",
        );
    } else if group_or_world_access(dir) {
        report.push_fix(
            "data_dir",
            Status::Warn,
            format!("{} is open to other users (its files are private)", dir.display()),
            format!("chmod 700 {}", dir.display()),
        );
    } else {
        report.push(
            "data_dir",
            Status::Ok,
            format!("{}: private (0700, files 0600)", dir.display()),
        );
    }
}

/// Whether users other than the owner have any permission on `path`.
fn group_or_world_access(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// One entry of `keys/keys.json` (the engine's key index), as far as the doctor needs it.
#[derive(Debug, Deserialize)]
struct KeyEntry {
    kid: String,
    alg: String,
    created_at: i64,
    retired_at: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct KeyIndex {
    keys: Vec<KeyEntry>,
}

fn check_keys(report: &mut Report, config: &Config, now_unix: i64) {
    if config.users_store == StoreKind::Postgres {
        report.push(
            "keys",
            Status::Ok,
            "signing keys are kept sealed in PostgreSQL (store.users = \"postgres\"); not read here",
        );
        return;
    }
    let path = config.data_dir.join("keys").join("keys.json");
    let index = match std::fs::read(&path) {
        Ok(bytes) => match serde_json::from_slice::<KeyIndex>(&bytes) {
            Ok(index) => index,
            Err(e) => {
                report.push_fix(
                    "keys",
                    Status::Fail,
                    format!("{} is not a key index: {e}", path.display()),
                    "restore it from a backup; the server will not start with it",
                );
                return;
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            report.push("keys", Status::Ok, "no signing key yet: one is made at the first start");
            return;
        }
        Err(e) => {
            report.push_fix(
                "keys",
                Status::Fail,
                format!("cannot read {}: {e}", path.display()),
                "run the doctor as the server's user, and check the file's permissions",
            );
            return;
        }
    };
    let age_days = |millis: i64| (now_unix - millis.div_euclid(1000)).div_euclid(86_400);
    let retired: Vec<String> = index
        .keys
        .iter()
        .filter_map(|k| {
            k.retired_at.map(|at| format!("{} retired {} day(s) ago", k.kid, age_days(at)))
        })
        .collect();
    let retired = if retired.is_empty() {
        "no retired key".to_owned()
    } else {
        format!("retired: {}", retired.join(", "))
    };
    match index.keys.iter().filter(|k| k.retired_at.is_none()).max_by_key(|k| k.created_at) {
        None => report.push(
            "keys",
            Status::Ok,
            format!("no active signing key: one is made at the next start; {retired}"),
        ),
        Some(key) => {
            let age = age_days(key.created_at);
            let message =
                format!("signing key {} ({}) is {age} day(s) old; {retired}", key.kid, key.alg);
            if age > KEY_WARN_DAYS {
                report.push_fix(
                    "keys",
                    Status::Warn,
                    message,
                    format!("rotate the signing key (older than {KEY_WARN_DAYS} days)"),
                );
            } else {
                report.push("keys", Status::Ok, message);
            }
        }
    }
}

async fn check_stores(report: &mut Report, config: &Config) {
    let uses = |kind| config.users_store == kind || config.sessions_store == kind;
    if uses(StoreKind::Sqlite) {
        check_sqlite(report, &config.data_dir.join("tessera.db")).await;
    }
    if uses(StoreKind::Postgres) {
        let result = match &config.postgres_url {
            Some(url) => ping_postgres(secrecy::ExposeSecret::expose_secret(url)).await,
            None => Err("store.url is not set".into()),
        };
        match result {
            Ok(version) => report.push("postgres", Status::Ok, format!("answers: {version}")),
            Err(e) => report.push_fix(
                "postgres",
                Status::Fail,
                format!("unreachable: {e}"),
                "check store.url, that PostgreSQL runs and accepts this host, and the credentials",
            ),
        }
    }
    if let Some(url) = &config.redis_url {
        let mut options =
            tessera::store::redis::RedisOptions::new(config.engine.session.idle_timeout);
        options.prefix = config.redis_prefix.clone();
        options.topology = config.redis_topology.clone();
        let url = secrecy::ExposeSecret::expose_secret(url);
        match tokio::time::timeout(STORE_TIMEOUT, tessera::store::redis::RedisStore::connect(url, options)).await {
            Ok(Ok(_)) => report.push("redis", Status::Ok, "answers (version 7 or later)"),
            Ok(Err(e)) => report.push_fix(
                "redis",
                Status::Fail,
                format!("unusable: {e}"),
                "check store.redis_url, that Redis 7+ runs and accepts this host, and the credentials",
            ),
            Err(_) => report.push_fix(
                "redis",
                Status::Fail,
                format!("no answer within {}s", STORE_TIMEOUT.as_secs()),
                "check store.redis_url and the network path to Redis",
            ),
        }
    }
}

async fn check_sqlite(report: &mut Report, path: &Path) {
    if !path.exists() {
        report.push(
            "sqlite",
            Status::Ok,
            format!("{} does not exist yet: it is created at the first start", path.display()),
        );
        return;
    }
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(path).read_only(true);
    let ping = async {
        use sqlx::ConnectOptions as _;
        let mut conn = options.connect().await?;
        let tables: i64 =
            sqlx::query_scalar("SELECT count(*) FROM sqlite_master").fetch_one(&mut conn).await?;
        sqlx::Connection::close(conn).await?;
        Ok::<_, sqlx::Error>(tables)
    };
    match tokio::time::timeout(STORE_TIMEOUT, ping).await {
        Ok(Ok(_)) => {
            report.push("sqlite", Status::Ok, format!("{} opens and answers", path.display()))
        }
        Ok(Err(e)) => report.push_fix(
            "sqlite",
            Status::Fail,
            format!("{}: {e}", path.display()),
            "check that the file is a SQLite database the server's user can read and write",
        ),
        Err(_) => report.push_fix(
            "sqlite",
            Status::Fail,
            format!(
                "{} did not answer within {}s (locked?)",
                path.display(),
                STORE_TIMEOUT.as_secs()
            ),
            "check for a process holding a lock on it",
        ),
    }
}

/// Connects (no pool, no migration) and asks for the server version.
async fn ping_postgres(url: &str) -> Result<String, String> {
    use sqlx::ConnectOptions as _;
    let options: sqlx::postgres::PgConnectOptions =
        url.parse().map_err(|e: sqlx::Error| redact(&e.to_string(), url))?;
    let ping = async {
        let mut conn = options.connect().await?;
        let version: String =
            sqlx::query_scalar("SHOW server_version").fetch_one(&mut conn).await?;
        sqlx::Connection::close(conn).await?;
        Ok::<_, sqlx::Error>(format!("PostgreSQL {version}"))
    };
    match tokio::time::timeout(STORE_TIMEOUT, ping).await {
        Ok(result) => result.map_err(|e| redact(&e.to_string(), url)),
        Err(_) => Err(format!("no answer within {}s", STORE_TIMEOUT.as_secs())),
    }
}

/// `message` without the URL's password, should a driver quote it.
fn redact(message: &str, url: &str) -> String {
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('@').next().filter(|_| rest.contains('@')))
        .and_then(|userinfo| userinfo.split_once(':').map(|(_, p)| p))
        .filter(|p| !p.is_empty());
    match password {
        Some(password) => message.replace(password, "[redacted]"),
        None => message.to_owned(),
    }
}

fn check_registration(report: &mut Report, config: &Config, public: &PublicUrl) {
    match (config.engine.registration_open, public.local) {
        (false, _) => report.push(
            "registration",
            Status::Ok,
            "closed: users are made with `tessera user add`",
        ),
        (true, true) => report.push("registration", Status::Ok, "open (on a loopback URL)"),
        (true, false) => report.push_fix(
            "registration",
            Status::Warn,
            format!("open on {}: anyone who reaches it can make an account", public.url),
            "unless self-service sign-up is intended, set registration.open = false and make \
             users with `tessera user add`",
        ),
    }
}

fn check_origins(report: &mut Report, config: &Config) {
    let insecure: Vec<&String> = config
        .allowed_origins
        .iter()
        .filter(|o| o.starts_with("http://") && !PublicUrl::from_url(o).local)
        .collect();
    if config.allowed_origins.is_empty() {
        report.push("allowed_origins", Status::Ok, "only the server's own origin");
    } else if !insecure.is_empty() {
        report.push_fix(
            "allowed_origins",
            Status::Warn,
            format!(
                "plain-HTTP origins on the network: {}",
                insecure.iter().map(|o| o.as_str()).collect::<Vec<_>>().join(", ")
            ),
            "allow https:// origins only (a page served over HTTP can be altered in transit)",
        );
    } else {
        report.push("allowed_origins", Status::Ok, config.allowed_origins.join(", "));
    }
}

fn check_argon2(report: &mut Report, params: Argon2Params) {
    let text = format!(
        "argon2id m={} KiB, t={}, p={}",
        params.memory_kib, params.iterations, params.parallelism
    );
    if OWASP_ARGON2.iter().any(|&(m, t)| params.memory_kib >= m && params.iterations >= t) {
        report.push("password", Status::Ok, format!("{text}: at or above OWASP's floor"));
    } else {
        report.push_fix(
            "password",
            Status::Warn,
            format!("{text}: below OWASP's floor (e.g. m=19456 KiB with t=2)"),
            "raise password.memory_kib and password.iterations (`tessera bench primitives` \
             measures what a hash costs here)",
        );
    }
}
