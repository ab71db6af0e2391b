//! Configuration in two stages: [`RawConfig`] mirrors the TOML file (unknown keys are errors),
//! is overlaid with `TESSERA_<SECTION>__<KEY>` environment variables and command-line flags,
//! then converted into the validated [`Config`]. Every error names the key and says what was
//! expected.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::SecretSlice;
use serde::{Deserialize, Deserializer, Serialize};
use tessera::password::Argon2Params;
use tessera::store::redis::Topology;
use tessera::token::Algorithm;
use tessera::token::keys::HS256_MIN_SECRET;
use tessera::{KeyEncryptionKey, Settings};

/// How long audit events are kept unless `[audit] retention` says otherwise.
const DEFAULT_AUDIT_RETENTION_DAYS: u64 = 90;
use tessera_axum::client_ip::{ForwardingHeader, TrustedProxies};
use tessera_axum::state::normalize_origin;

/// A duration written as `90s`, `30m`, `12h`, `14d` (or a bare number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HumanDuration(#[serde(serialize_with = "serialize_duration")] pub Duration);

fn serialize_duration<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_duration(*d).to_string())
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as \"90s\", \"30m\", \"12h\" or \"14d\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v.trim())
                    .map(HumanDuration)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Ok(HumanDuration(Duration::from_secs(v)))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                u64::try_from(v)
                    .map(|v| HumanDuration(Duration::from_secs(v)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(Visitor)
    }
}

fn serialize_redacted<S: serde::Serializer>(
    value: &Option<secrecy::SecretString>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match value {
        Some(_) => s.serialize_some("[redacted]"),
        None => s.serialize_none(),
    }
}

/// A list written as a TOML array or as one comma-separated string (handy in env vars).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StringList(pub Vec<String>);

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            One(String),
            Many(Vec<String>),
        }
        Ok(StringList(match Either::deserialize(d)? {
            Either::One(s) => {
                s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
            }
            Either::Many(v) => v,
        }))
    }
}

/// The `[server]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: Option<String>,
    /// Where the SQLite database, keys and secrets live. Default `./tessera-data`.
    pub data_dir: Option<PathBuf>,
    /// The URL clients reach this server at. Default `http://<listen>`.
    pub public_url: Option<String>,
    /// Origins (besides the server's own) allowed to make unsafe requests. Default none.
    pub allowed_origins: Option<StringList>,
    /// Reverse proxies (IP addresses or CIDR ranges) whose `Forwarded` / `X-Forwarded-For`
    /// headers name the client. Default none: the socket's peer address is the client.
    pub trusted_proxies: Option<StringList>,
    /// The header trusted proxies name the client in: `x-forwarded-for` (default) or
    /// `forwarded` (RFC 7239). Only that one is read.
    pub client_ip_header: Option<String>,
    /// Longest a request may take. Default `30s`.
    pub request_timeout: Option<HumanDuration>,
    /// Longest a client may take to send the request headers. Default `10s`.
    pub header_timeout: Option<HumanDuration>,
    /// Longest to wait for in-flight requests at shutdown. Default `30s`.
    pub shutdown_timeout: Option<HumanDuration>,
    /// Close connections without traffic for this long. Default `60s`; more than
    /// `request_timeout`.
    pub idle_timeout: Option<HumanDuration>,
    /// Most connections open at once. Default 10000.
    pub max_connections: Option<usize>,
}

/// The `[tls]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTls {
    /// PEM certificate chain: serve HTTPS. Default none (plain HTTP, e.g. behind a proxy).
    pub cert: Option<PathBuf>,
    /// PEM private key for `cert`.
    pub key: Option<PathBuf>,
    /// Also listen on this address for plain HTTP and redirect every request to HTTPS.
    /// Default none.
    pub redirect_http: Option<String>,
}

/// The `[audit]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawAudit {
    /// Audit events older than this are deleted. Default `90d`.
    pub retention: Option<HumanDuration>,
}

/// The `[cookie]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCookie {
    /// `Secure` cookies with `__Host-` names. Default `true`; `false` only for plain-HTTP
    /// development.
    pub secure: Option<bool>,
}

/// The `[session]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSession {
    /// Default `30m`.
    pub idle_timeout: Option<HumanDuration>,
    /// Default `12h`.
    pub absolute_lifetime: Option<HumanDuration>,
    /// Sessions kept in the in-process cache in front of the SQLite store. Default 100000;
    /// `0` turns the cache off (every request reads the store).
    pub cache_capacity: Option<usize>,
}

/// The `[token]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawToken {
    /// `EdDSA` (default), `ES256`, `RS256` or `HS256`.
    pub algorithm: Option<String>,
    /// The HS256 shared secret (at least 32 bytes). Required for HS256 only.
    #[serde(serialize_with = "serialize_redacted")]
    pub secret: Option<secrecy::SecretString>,
    /// A file holding the HS256 secret (instead of `secret`).
    pub secret_file: Option<PathBuf>,
    /// Default: the public URL.
    pub issuer: Option<String>,
    /// Default `tessera`.
    pub audience: Option<String>,
    /// Default `5m`.
    pub access_ttl: Option<HumanDuration>,
    /// Default `14d`.
    pub refresh_ttl: Option<HumanDuration>,
    /// Default `30d`.
    pub refresh_family_lifetime: Option<HumanDuration>,
    /// Default `10s`; `0s` turns the retry grace off.
    pub refresh_reuse_grace: Option<HumanDuration>,
    /// Default `30s`, at most `60s`.
    pub leeway: Option<HumanDuration>,
    /// Replace the signing key once it is this old (`30d`, `90d`, …); default `off`. Longer
    /// than `access_ttl` + `leeway`; not with HS256.
    pub key_rotation: Option<KeyRotation>,
}

/// `token.key_rotation`: `off`, or a duration such as `30d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyRotation(pub Option<Duration>);

impl Serialize for KeyRotation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(every) => serialize_duration(&every, s),
            None => s.serialize_str("off"),
        }
    }
}

impl<'de> Deserialize<'de> for KeyRotation {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KeyRotation;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"off\" or a duration such as \"30d\" or \"90d\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KeyRotation, E> {
                let v = v.trim();
                if v.eq_ignore_ascii_case("off") {
                    return Ok(KeyRotation(None));
                }
                humantime::parse_duration(v)
                    .map(|every| KeyRotation(Some(every)))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Str(v), &self))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KeyRotation, E> {
                Ok(KeyRotation(Some(Duration::from_secs(v))))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KeyRotation, E> {
                u64::try_from(v)
                    .map(|v| KeyRotation(Some(Duration::from_secs(v))))
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(v), &self))
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// The `[limits]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLimits {
    /// Default 5.
    pub max_failures: Option<u32>,
    /// Default `15m`.
    pub failure_window: Option<HumanDuration>,
    /// Default 30.
    pub ip_per_minute: Option<u32>,
    /// Registrations per source IP per minute. Default 60.
    pub registrations_per_minute: Option<u32>,
}

/// The `[registration]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRegistration {
    /// Default `true`.
    pub open: Option<bool>,
}

/// The `[store]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStore {
    /// Users, refresh families, revocations and the audit log: `sqlite` (default), `postgres`
    /// or `memory`.
    pub users: Option<String>,
    /// Sessions: `sqlite` (default), `postgres`, `redis` or `memory`.
    pub sessions: Option<String>,
    /// PostgreSQL URL (for `postgres` stores). Default none.
    pub url: Option<String>,
    /// Redis or Valkey URL (`redis://`, `rediss://`, `redis+unix://`), or several separated by
    /// commas: the nodes of a Redis Cluster (with `redis_cluster`) or the sentinels (with
    /// `redis_sentinel_master`). Required for `sessions = "redis"`; when set, throttling
    /// counters and the revocation feed between instances live there too. No default.
    pub redis_url: Option<String>,
    /// `redis_url` lists nodes of a Redis Cluster (any one that answers is enough to find the
    /// others). Default `false`.
    pub redis_cluster: Option<bool>,
    /// The name Redis Sentinel monitors the master under; `redis_url` then lists the
    /// sentinels, and the master is reached with the first URL's password, database and TLS
    /// mode. Default none.
    pub redis_sentinel_master: Option<String>,
    /// First part of every Redis key and of the feed's channel. Default `tessera`.
    pub redis_prefix: Option<String>,
    /// The key that seals signing keys and the server secret in PostgreSQL: base64 (standard
    /// or URL-safe) of exactly 32 bytes. Required with `users = "postgres"` unless
    /// `key_encryption_key_file` is set; refused otherwise. Default none.
    #[serde(serialize_with = "serialize_redacted")]
    pub key_encryption_key: Option<secrecy::SecretString>,
    /// A file holding `key_encryption_key` (a trailing newline is fine), instead of the value
    /// itself. Default none.
    pub key_encryption_key_file: Option<PathBuf>,
}

/// The `[password]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawPassword {
    /// argon2id memory in KiB. Default 19456.
    pub memory_kib: Option<u32>,
    /// argon2id passes. Default 2.
    pub iterations: Option<u32>,
    /// argon2id lanes. Default 1.
    pub parallelism: Option<u32>,
    /// Hashing threads. Default: one per CPU.
    pub workers: Option<usize>,
}

/// The `[log]` section.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawLog {
    /// A tracing filter: `info` (default), `debug`, `tessera=debug,info`...
    pub level: Option<String>,
    /// `text` (default) or `json`.
    pub format: Option<String>,
}

/// The configuration file as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    /// `[server]`
    pub server: RawServer,
    /// `[tls]`
    pub tls: RawTls,
    /// `[cookie]`
    pub cookie: RawCookie,
    /// `[session]`
    pub session: RawSession,
    /// `[token]`
    pub token: RawToken,
    /// `[limits]`
    pub limits: RawLimits,
    /// `[registration]`
    pub registration: RawRegistration,
    /// `[store]`
    pub store: RawStore,
    /// `[password]`
    pub password: RawPassword,
    /// `[log]`
    pub log: RawLog,
    /// `[audit]`
    pub audit: RawAudit,
}

/// Command-line overrides.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--listen`
    pub listen: Option<String>,
    /// `--data-dir`
    pub data_dir: Option<PathBuf>,
}

/// A storage backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// The SQLite file in the data directory.
    Sqlite,
    /// Process memory: nothing survives a restart.
    Memory,
    /// A PostgreSQL database (`store.url`).
    Postgres,
    /// A Redis or Valkey server (`store.redis_url`), for sessions only.
    Redis,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Config {
    /// Address to bind.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Public URL if configured (else derived from the bound address).
    pub public_url: Option<String>,
    /// Issuer if configured (else the public URL).
    pub issuer: Option<String>,
    /// Extra allowed origins (normalised).
    pub allowed_origins: Vec<String>,
    /// Secure cookies.
    pub cookie_secure: bool,
    /// Proxies whose forwarding headers are believed.
    pub trusted_proxies: TrustedProxies,
    /// Request timeout.
    pub request_timeout: Duration,
    /// Header read timeout.
    pub header_timeout: Duration,
    /// Graceful shutdown limit.
    pub shutdown_timeout: Duration,
    /// Idle connection limit.
    pub idle_timeout: Duration,
    /// Most connections open at once.
    pub max_connections: usize,
    /// TLS certificate chain and key files.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// Plain-HTTP address that redirects to HTTPS.
    pub redirect_http: Option<SocketAddr>,
    /// Token signing algorithm.
    pub algorithm: Algorithm,
    /// HS256 secret.
    pub hs256_secret: Option<SecretSlice<u8>>,
    /// Replace the signing key once it is this old (`None`: only by `tessera keys rotate`).
    pub key_rotation: Option<Duration>,
    /// Store for users, refresh families and revocations.
    pub users_store: StoreKind,
    /// Store for sessions.
    pub sessions_store: StoreKind,
    /// PostgreSQL URL for `postgres` stores (may hold a password).
    pub postgres_url: Option<secrecy::SecretString>,
    /// Redis URL: sessions if `sessions_store` is `Redis`, and throttling counters and the
    /// revocation feed whenever set (may hold a password).
    pub redis_url: Option<secrecy::SecretString>,
    /// What `redis_url` points at: one server, a cluster, or sentinels.
    pub redis_topology: Topology,
    /// Prefix of every Redis key.
    pub redis_prefix: String,
    /// The key sealing signing keys and the server secret in PostgreSQL (set exactly when
    /// users are in PostgreSQL).
    pub key_encryption_key: Option<std::sync::Arc<KeyEncryptionKey>>,
    /// The file `key_encryption_key` was read from, if it came from a file.
    pub key_encryption_key_file: Option<PathBuf>,
    /// Capacity of the session cache (0: none).
    pub session_cache_capacity: usize,
    /// Engine settings (issuer filled in at start).
    pub engine: Settings,
    /// Log filter.
    pub log_level: String,
    /// Log format.
    pub log_format: LogFormat,
}

impl Config {
    /// Loads `file` (if any), the `TESSERA_…` environment and `overrides`, and validates.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(RawConfig::default()));
        if let Some(file) = file {
            if !file.is_file() {
                bail!("config file {} does not exist or is not a file", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        let figment = figment
            .merge(Env::prefixed("TESSERA_").filter(|key| key.as_str().contains("__")).split("__"));
        let mut raw: RawConfig = figment.extract().map_err(|e| {
            let mut message = String::from("invalid configuration:");
            for error in e {
                message.push_str("\n  - ");
                message.push_str(&describe(&error));
            }
            anyhow!(message)
        })?;
        if let Some(listen) = &overrides.listen {
            raw.server.listen = Some(listen.clone());
        }
        if let Some(dir) = &overrides.data_dir {
            raw.server.data_dir = Some(dir.clone());
        }
        Config::from_raw(raw)
    }

    /// Validates a raw configuration.
    pub fn from_raw(raw: RawConfig) -> anyhow::Result<Config> {
        let listen_text = raw.server.listen.as_deref().unwrap_or("127.0.0.1:8080");
        let listen = parse_listen(listen_text).with_context(|| {
            format!(
                "server.listen: `{listen_text}` is not an address like 127.0.0.1:8080 or [::1]:8080"
            )
        })?;
        let public_url = raw.server.public_url.map(|u| u.trim_end_matches('/').to_owned());
        if let Some(url) = &public_url
            && normalize_origin(url).is_none()
        {
            bail!("server.public_url: `{url}` is not an http:// or https:// URL");
        }
        let mut allowed_origins = Vec::new();
        for origin in raw.server.allowed_origins.unwrap_or_default().0 {
            let normalized = normalize_origin(&origin).ok_or_else(|| {
                anyhow!("server.allowed_origins: `{origin}` is not an origin like https://app.example.com")
            })?;
            allowed_origins.push(normalized);
        }

        let tls = match (raw.tls.cert, raw.tls.key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => bail!("tls.key: required with tls.cert"),
            (None, Some(_)) => bail!("tls.cert: required with tls.key"),
        };
        let redirect_http = match raw.tls.redirect_http.as_deref() {
            None => None,
            Some(_) if tls.is_none() => bail!("tls.redirect_http: needs tls.cert and tls.key"),
            Some(_) if public_url.as_deref().is_some_and(|u| !u.starts_with("https://")) => {
                bail!("tls.redirect_http: redirects to server.public_url, which is not https://")
            }
            Some(_) if public_url.is_none() && listen.ip().is_unspecified() => bail!(
                "tls.redirect_http: set server.public_url (the redirect target); {listen} is not \
                 an address browsers can be sent to"
            ),
            Some(text) => Some(parse_listen(text).ok_or_else(|| {
                anyhow!("tls.redirect_http: `{text}` is not an address like 0.0.0.0:80")
            })?),
        };
        let trusted_proxies = TrustedProxies::parse(
            raw.server.trusted_proxies.unwrap_or_default().0.iter().map(String::as_str),
        )
        .map_err(|e| anyhow!("server.trusted_proxies: {e}"))?
        .with_header(
            ForwardingHeader::parse(
                raw.server.client_ip_header.as_deref().unwrap_or("x-forwarded-for"),
            )
            .map_err(|e| anyhow!("server.client_ip_header: {e}"))?,
        );

        let algorithm_name = raw.token.algorithm.as_deref().unwrap_or("EdDSA");
        let algorithm = Algorithm::parse(algorithm_name).ok_or_else(|| {
            anyhow!("token.algorithm: `{algorithm_name}` is not one of EdDSA, ES256, RS256, HS256")
        })?;
        let secret = match (&raw.token.secret, &raw.token.secret_file) {
            (Some(_), Some(_)) => bail!("token.secret and token.secret_file: set only one"),
            (Some(s), None) => Some(secrecy::ExposeSecret::expose_secret(s).as_bytes().to_vec()),
            (None, Some(path)) => Some(
                std::fs::read(path)
                    .with_context(|| format!("token.secret_file: cannot read {}", path.display()))?
                    .trim_ascii()
                    .to_vec(),
            ),
            (None, None) => None,
        };
        let hs256_secret = match (algorithm, secret) {
            (Algorithm::HS256, None) => {
                bail!(
                    "token.secret: HS256 needs a shared secret of at least {HS256_MIN_SECRET} bytes"
                )
            }
            (Algorithm::HS256, Some(s)) if s.len() < HS256_MIN_SECRET => bail!(
                "token.secret: the HS256 secret is {} bytes; it must be at least {HS256_MIN_SECRET}",
                s.len()
            ),
            (Algorithm::HS256, Some(s)) => Some(SecretSlice::from(s)),
            (_, Some(_)) => bail!("token.secret: only used with token.algorithm = \"HS256\""),
            (_, None) => None,
        };

        let store_kind = |key: &str, value: Option<&str>| -> anyhow::Result<StoreKind> {
            match value.unwrap_or("sqlite") {
                "sqlite" => Ok(StoreKind::Sqlite),
                "memory" => Ok(StoreKind::Memory),
                "postgres" => Ok(StoreKind::Postgres),
                "redis" => Ok(StoreKind::Redis),
                other => bail!("{key}: `{other}` is not one of sqlite, memory, postgres, redis"),
            }
        };
        let users_store = store_kind("store.users", raw.store.users.as_deref())?;
        if users_store == StoreKind::Redis {
            bail!(
                "store.users: Redis holds sessions, throttling counters and the revocation feed; \
                 users, refresh families and the audit log need `postgres` (or `sqlite`)"
            );
        }
        let sessions_store = store_kind("store.sessions", raw.store.sessions.as_deref())?;
        let postgres_url = match raw.store.url {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                Some(secrecy::SecretString::from(url))
            }
            Some(_) => bail!("store.url: not a postgres:// or postgresql:// URL"),
            None => None,
        };
        if postgres_url.is_none()
            && (users_store == StoreKind::Postgres || sessions_store == StoreKind::Postgres)
        {
            bail!("store.url: required for a `postgres` store (postgres://user:password@host/db)");
        }
        let (redis_url, redis_topology) = redis_target(
            raw.store.redis_url,
            raw.store.redis_cluster.unwrap_or(false),
            raw.store.redis_sentinel_master,
        )?;
        if redis_url.is_none() && sessions_store == StoreKind::Redis {
            bail!("store.redis_url: required for `sessions = \"redis\"` (redis://host:6379)");
        }
        let redis_prefix = raw.store.redis_prefix.unwrap_or_else(|| "tessera".to_owned());
        if redis_prefix.is_empty()
            || redis_prefix.len() > 64
            || !redis_prefix.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            bail!("store.redis_prefix: 1 to 64 characters of A-Z a-z 0-9 - _ . :");
        }
        let (key_encryption_key, key_encryption_key_file) = key_encryption_key(
            users_store,
            raw.store.key_encryption_key,
            raw.store.key_encryption_key_file,
        )?;

        let mut engine = Settings::new();
        let d = |v: Option<HumanDuration>, default: Duration| v.map_or(default, |h| h.0);
        engine.session.idle_timeout = d(raw.session.idle_timeout, engine.session.idle_timeout);
        engine.session.absolute_lifetime =
            d(raw.session.absolute_lifetime, engine.session.absolute_lifetime);
        let t = &mut engine.token;
        t.access_ttl = d(raw.token.access_ttl, t.access_ttl);
        t.refresh_ttl = d(raw.token.refresh_ttl, t.refresh_ttl);
        t.refresh_family_lifetime = d(raw.token.refresh_family_lifetime, t.refresh_family_lifetime);
        t.refresh_reuse_grace = d(raw.token.refresh_reuse_grace, t.refresh_reuse_grace);
        t.leeway = d(raw.token.leeway, t.leeway);
        if let Some(audience) = raw.token.audience {
            t.audience = audience;
        }
        let l = &mut engine.limits;
        l.max_failures = raw.limits.max_failures.unwrap_or(l.max_failures);
        l.failure_window = d(raw.limits.failure_window, l.failure_window);
        l.ip_per_minute = raw.limits.ip_per_minute.unwrap_or(l.ip_per_minute);
        l.registrations_per_minute =
            raw.limits.registrations_per_minute.unwrap_or(l.registrations_per_minute);
        engine.registration_open = raw.registration.open.unwrap_or(true);
        engine.audit_retention = Some(d(
            raw.audit.retention,
            Duration::from_secs(DEFAULT_AUDIT_RETENTION_DAYS * 86_400),
        ));
        let defaults = Argon2Params::default();
        engine.password.params = Argon2Params {
            memory_kib: raw.password.memory_kib.unwrap_or(defaults.memory_kib),
            iterations: raw.password.iterations.unwrap_or(defaults.iterations),
            parallelism: raw.password.parallelism.unwrap_or(defaults.parallelism),
        };
        if let Some(workers) = raw.password.workers {
            engine.password.workers = workers;
        }
        if let Some(issuer) = &raw.token.issuer {
            engine.token.issuer = issuer.clone();
        }
        engine.validate().map_err(|(key, message)| anyhow!("{key}: {message}"))?;
        let key_rotation = key_rotation(raw.token.key_rotation, algorithm, &engine)?;

        let log_format = match raw.log.format.as_deref().unwrap_or("text") {
            "text" => LogFormat::Text,
            "json" => LogFormat::Json,
            other => bail!("log.format: `{other}` is not one of text, json"),
        };
        let log_level = raw.log.level.unwrap_or_else(|| "info".into());
        tracing_subscriber::EnvFilter::try_new(&log_level)
            .map_err(|e| anyhow!("log.level: `{log_level}` is not a valid filter: {e}"))?;

        let timeout =
            |key: &str, v: Option<HumanDuration>, default: u64| -> anyhow::Result<Duration> {
                let value = v.map_or(Duration::from_secs(default), |h| h.0);
                if value < Duration::from_millis(100) {
                    bail!("{key}: must be at least 100ms");
                }
                Ok(value)
            };
        let request_timeout = timeout("server.request_timeout", raw.server.request_timeout, 30)?;
        let idle_timeout = timeout("server.idle_timeout", raw.server.idle_timeout, 60)?;
        if idle_timeout <= request_timeout {
            bail!("server.idle_timeout: must be longer than server.request_timeout");
        }
        let max_connections = raw.server.max_connections.unwrap_or(10_000);
        if max_connections == 0 {
            bail!("server.max_connections: must be at least 1");
        }
        Ok(Config {
            listen,
            data_dir: raw.server.data_dir.unwrap_or_else(|| PathBuf::from("tessera-data")),
            public_url,
            issuer: raw.token.issuer,
            allowed_origins,
            cookie_secure: raw.cookie.secure.unwrap_or(true),
            trusted_proxies,
            request_timeout,
            idle_timeout,
            max_connections,
            header_timeout: timeout("server.header_timeout", raw.server.header_timeout, 10)?,
            shutdown_timeout: timeout("server.shutdown_timeout", raw.server.shutdown_timeout, 30)?,
            tls,
            redirect_http,
            algorithm,
            hs256_secret,
            key_rotation,
            users_store,
            sessions_store,
            postgres_url,
            redis_url,
            redis_topology,
            redis_prefix,
            key_encryption_key: key_encryption_key.map(std::sync::Arc::new),
            key_encryption_key_file,
            session_cache_capacity: raw.session.cache_capacity.unwrap_or(100_000),
            engine,
            log_level,
            log_format,
        })
    }
}

/// `store.redis_url` and what it points at: one server, the nodes of a Redis Cluster
/// (`redis_cluster`), or the sentinels watching `redis_sentinel_master`; several URLs are
/// separated by commas.
fn redis_target(
    url: Option<String>,
    cluster: bool,
    sentinel_master: Option<String>,
) -> anyhow::Result<(Option<secrecy::SecretString>, Topology)> {
    const SCHEMES: [&str; 6] =
        ["redis://", "rediss://", "redis+unix://", "unix://", "valkey://", "valkeys://"];
    let topology = match (cluster, sentinel_master) {
        (true, Some(_)) => {
            bail!("store.redis_sentinel_master: not with `redis_cluster = true` (pick one)")
        }
        (true, None) => Topology::Cluster,
        (false, Some(master))
            if !master.is_empty()
                && master.len() <= 128
                && master.chars().all(|c| c.is_ascii_graphic()) =>
        {
            Topology::Sentinel { master }
        }
        (false, Some(_)) => {
            bail!("store.redis_sentinel_master: 1 to 128 visible ASCII characters, no spaces")
        }
        (false, None) => Topology::Single,
    };
    let Some(url) = url else {
        if topology != Topology::Single {
            bail!("store.redis_url: required with `redis_cluster` or `redis_sentinel_master`");
        }
        return Ok((None, topology));
    };
    let is_url = |url: &str| SCHEMES.iter().any(|scheme| url.trim().starts_with(scheme));
    let urls: Vec<&str> = url.split(',').collect();
    if topology == Topology::Single {
        // One URL, whose password may hold a comma; a list of URLs is a mistake.
        if urls.len() > 1 && urls.iter().all(|url| is_url(url)) {
            bail!(
                "store.redis_url: several URLs need `redis_cluster = true` (cluster nodes) or \
                 `redis_sentinel_master` (sentinels)"
            );
        }
        if !is_url(&url) {
            bail!("store.redis_url: not a redis://, rediss:// or redis+unix:// URL");
        }
    } else if !urls.iter().all(|url| is_url(url)) {
        bail!(
            "store.redis_url: not a comma-separated list of redis:// or rediss:// URLs (write a \
             comma in a password as %2C)"
        );
    }
    Ok((Some(secrecy::SecretString::from(url)), topology))
}

/// `token.key_rotation`: off by default. Not with HS256, whose key is the configured secret;
/// longer than a token lives (otherwise the JWKS would hold several retired keys at once);
/// at most ten years like every other duration.
fn key_rotation(
    value: Option<KeyRotation>,
    algorithm: Algorithm,
    engine: &Settings,
) -> anyhow::Result<Option<Duration>> {
    let Some(every) = value.and_then(|v| v.0) else { return Ok(None) };
    if algorithm == Algorithm::HS256 {
        bail!(
            "token.key_rotation: not with token.algorithm = \"HS256\", which signs with the \
             configured token.secret (rotate it by changing token.secret); remove \
             token.key_rotation or set it to \"off\""
        );
    }
    let lifetime = engine.token.access_ttl + engine.token.leeway;
    if every <= lifetime {
        bail!(
            "token.key_rotation: must be longer than token.access_ttl + token.leeway ({}), so \
             a retired key has stopped verifying before the next rotation",
            humantime::format_duration(lifetime)
        );
    }
    if every > Duration::from_secs(315_576_000) {
        bail!("token.key_rotation: must be at most 10 years");
    }
    Ok(Some(every))
}

/// `store.key_encryption_key` or `store.key_encryption_key_file`: exactly one with users in
/// PostgreSQL (where the signing keys and the server secret are then kept, sealed), neither
/// otherwise (they are then in the data directory, and a key would silently do nothing).
fn key_encryption_key(
    users_store: StoreKind,
    inline: Option<secrecy::SecretString>,
    file: Option<PathBuf>,
) -> anyhow::Result<(Option<KeyEncryptionKey>, Option<PathBuf>)> {
    let key = match (inline, &file) {
        (Some(_), Some(_)) => {
            bail!("store.key_encryption_key and store.key_encryption_key_file: set only one")
        }
        (Some(text), None) => Some(
            KeyEncryptionKey::from_base64(secrecy::ExposeSecret::expose_secret(&text))
                .map_err(|e| anyhow!("store.key_encryption_key: {e}"))?,
        ),
        (None, Some(path)) => {
            let text =
                secrecy::SecretString::from(std::fs::read_to_string(path).with_context(|| {
                    format!("store.key_encryption_key_file: cannot read {}", path.display())
                })?);
            Some(
                KeyEncryptionKey::from_base64(secrecy::ExposeSecret::expose_secret(&text))
                    .map_err(|e| {
                        anyhow!("store.key_encryption_key_file: {}: {e}", path.display())
                    })?,
            )
        }
        (None, None) => None,
    };
    match (users_store, &key) {
        (StoreKind::Postgres, Some(_)) => Ok((key, file)),
        (StoreKind::Postgres, None) => bail!(
            "store.key_encryption_key: required with store.users = \"postgres\": the signing \
             keys and the server secret are kept in the database, sealed with this key, and \
             every instance needs the same one. Make one with `head -c 32 /dev/urandom | base64` \
             and set store.key_encryption_key_file to a file holding it (or \
             TESSERA_STORE__KEY_ENCRYPTION_KEY to it)"
        ),
        (_, Some(_)) => {
            let key = if file.is_some() {
                "store.key_encryption_key_file"
            } else {
                "store.key_encryption_key"
            };
            bail!(
                "{key}: only used with store.users = \"postgres\" (otherwise the signing keys \
                 and the server secret are in the data directory)"
            )
        }
        (_, None) => Ok((None, None)),
    }
}

fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    text.parse().ok().or_else(|| {
        let port = text.strip_prefix("localhost:")?.parse().ok()?;
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    })
}

/// One figment error as `key: problem (from source)`.
fn describe(error: &figment::Error) -> String {
    let key = if error.path.is_empty() { "config".to_owned() } else { error.path.join(".") };
    let source = error
        .metadata
        .as_ref()
        .map(|m| match &m.source {
            Some(figment::Source::File(path)) => format!(" (in {})", path.display()),
            _ if m.name.contains("environment") => {
                format!(" (from TESSERA_{} in the environment)", env_name(&error.path))
            }
            _ => String::new(),
        })
        .unwrap_or_default();
    format!("{key}: {}{source}", error.kind)
}

fn env_name(path: &[String]) -> String {
    path.iter().map(|p| p.to_ascii_uppercase()).collect::<Vec<_>>().join("__")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> anyhow::Result<Config> {
        let raw: RawConfig = Figment::from(Toml::string(toml)).extract().map_err(|e| {
            anyhow!(e.into_iter().map(|e| describe(&e)).collect::<Vec<_>>().join("; "))
        })?;
        Config::from_raw(raw)
    }

    #[test]
    fn empty_config_gives_the_documented_defaults() {
        let c = parse("").unwrap();
        assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("tessera-data"));
        assert!(c.cookie_secure);
        assert_eq!(c.algorithm, Algorithm::EdDSA);
        assert_eq!(c.users_store, StoreKind::Sqlite);
        assert_eq!(c.engine.session.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.engine.token.audience, "tessera");
        assert!(c.engine.registration_open);
        assert!(c.public_url.is_none() && c.issuer.is_none());
    }

    #[test]
    fn every_documented_key_is_read() {
        let c = parse(
            r#"
            [server]
            listen = "[::1]:9000"
            data_dir = "/var/lib/tessera"
            public_url = "https://auth.example.com/"
            allowed_origins = ["https://app.example.com", "http://localhost:3000"]
            [cookie]
            secure = false
            [session]
            idle_timeout = "10m"
            absolute_lifetime = "8h"
            [token]
            algorithm = "ES256"
            issuer = "https://issuer.example.com"
            audience = "my-api"
            access_ttl = "2m"
            refresh_ttl = "7d"
            refresh_family_lifetime = "20d"
            refresh_reuse_grace = "0s"
            leeway = "45s"
            [limits]
            max_failures = 3
            failure_window = "5m"
            ip_per_minute = 100
            [registration]
            open = false
            [store]
            users = "memory"
            sessions = "sqlite"
            "#,
        )
        .unwrap();
        assert_eq!(c.listen, "[::1]:9000".parse().unwrap());
        assert_eq!(c.public_url.as_deref(), Some("https://auth.example.com"));
        assert_eq!(c.allowed_origins, vec!["https://app.example.com", "http://localhost:3000"]);
        assert!(!c.cookie_secure);
        assert_eq!(c.engine.session.absolute_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(c.algorithm, Algorithm::ES256);
        assert_eq!(c.engine.token.issuer, "https://issuer.example.com");
        assert_eq!(c.engine.token.audience, "my-api");
        assert_eq!(c.engine.token.refresh_family_lifetime, Duration::from_secs(20 * 86400));
        assert_eq!(c.engine.token.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(c.engine.limits.ip_per_minute, 100);
        assert!(!c.engine.registration_open);
        assert_eq!(c.users_store, StoreKind::Memory);
    }

    #[test]
    fn redis_url_lists_cluster_nodes_or_sentinels() {
        let c = parse("[store]\nredis_url = \"redis://h:6379\"").unwrap();
        assert_eq!(c.redis_topology, Topology::Single);
        let nodes = "redis://:pw@a:7000, redis://:pw@b:7001";
        let c = parse(&format!("[store]\nredis_url = \"{nodes}\"\nredis_cluster = true")).unwrap();
        assert_eq!(c.redis_topology, Topology::Cluster);
        assert_eq!(c.redis_url.as_ref().map(secrecy::ExposeSecret::expose_secret), Some(nodes));
        let described = crate::telemetry::describe_config(&c);
        let hidden = "store.redis_url = redis://[redacted]@a:7000, redis://[redacted]@b:7001\n";
        assert!(described.contains(hidden), "{described}");
        assert!(described.contains("store.redis_cluster = true\n"), "{described}");
        assert!(!described.contains("pw"), "{described}");
        // One URL may hold a comma in its password.
        let c = parse("[store]\nredis_url = \"redis://:p,w@h:6379\"").unwrap();
        assert_eq!(c.redis_topology, Topology::Single);
        let described = crate::telemetry::describe_config(&c);
        assert!(described.contains("store.redis_url = redis://[redacted]@h:6379\n"), "{described}");
        let c = parse(
            "[store]\nredis_url = \"redis://s1:26379,redis://s2:26379\"\n\
             redis_sentinel_master = \"mymaster\"",
        )
        .unwrap();
        assert_eq!(c.redis_topology, Topology::Sentinel { master: "mymaster".into() });
        let described = crate::telemetry::describe_config(&c);
        assert!(described.contains("store.redis_sentinel_master = mymaster\n"), "{described}");
    }

    #[test]
    fn errors_name_the_key() {
        for (toml, key) in [
            ("[session]\nidle_timeout = \"soon\"", "session.idle_timeout"),
            ("[session]\nidle_tmeout = \"1m\"", "session.idle_tmeout"),
            ("[sesion]\nidle_timeout = \"1m\"", "sesion"),
            ("[server]\nlisten = \"nowhere\"", "server.listen"),
            ("[token]\nalgorithm = \"none\"", "token.algorithm"),
            ("[token]\nalgorithm = \"HS256\"", "token.secret"),
            ("[token]\nalgorithm = \"HS256\"\nsecret = \"short\"", "token.secret"),
            ("[token]\nleeway = \"2m\"", "token.leeway"),
            ("[store]\nusers = \"postgres\"", "store.url"),
            ("[store]\nsessions = \"redis\"", "store.redis_url"),
            ("[store]\nusers = \"redis\"\nredis_url = \"redis://x\"", "store.users"),
            ("[store]\nredis_url = \"http://x\"", "store.redis_url"),
            ("[store]\nredis_prefix = \"a b\"", "store.redis_prefix"),
            ("[store]\nredis_url = \"redis://a:1,redis://b:2\"", "store.redis_url"),
            ("[store]\nredis_cluster = true", "store.redis_url"),
            (
                "[store]\nredis_url = \"redis://a,http://b\"\nredis_cluster = true",
                "store.redis_url",
            ),
            (
                "[store]\nredis_url = \"redis://a\"\nredis_cluster = true\nredis_sentinel_master = \"m\"",
                "store.redis_sentinel_master",
            ),
            (
                "[store]\nredis_url = \"redis://a\"\nredis_sentinel_master = \"a b\"",
                "store.redis_sentinel_master",
            ),
            ("[store]\nsessions = \"mongo\"", "store.sessions"),
            ("[server]\nallowed_origins = [\"not an origin\"]", "server.allowed_origins"),
            ("[limits]\nmax_failures = -1", "limits.max_failures"),
            ("[cookie]\nsecure = \"yes\"", "cookie.secure"),
        ] {
            let error = parse(toml).unwrap_err().to_string();
            assert!(
                error.starts_with(key) || error.contains(&format!("{key}:")),
                "{toml}: {error}"
            );
        }
    }

    #[test]
    fn the_key_encryption_key_is_required_with_postgres_users_and_refused_without() {
        const KEK: &str = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=";
        let pg = "[store]\nusers = \"postgres\"\nurl = \"postgres://h/d\"\n";
        let error = parse(pg).unwrap_err().to_string();
        assert!(error.starts_with("store.key_encryption_key: required"), "{error}");
        assert!(error.contains("head -c 32 /dev/urandom | base64"), "{error}");

        let c = parse(&format!("{pg}key_encryption_key = \"{KEK}\"")).unwrap();
        assert!(c.key_encryption_key.is_some() && c.key_encryption_key_file.is_none());
        assert!(!format!("{c:?}").contains(KEK));

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("kek");
        std::fs::write(&file, format!("{KEK}\n")).unwrap();
        let with_file = format!("{pg}key_encryption_key_file = {:?}", file.display().to_string());
        let c = parse(&with_file).unwrap();
        assert!(c.key_encryption_key.is_some());
        assert_eq!(c.key_encryption_key_file.as_deref(), Some(file.as_path()));
        let described = crate::telemetry::describe_config(&c);
        assert!(
            described.contains(&format!("store.key_encryption_key_file = {}\n", file.display()))
        );
        assert!(described.contains("store.key_encryption_key = none\n"), "{described}");

        for (toml, key) in [
            (
                format!("{with_file}\nkey_encryption_key = \"{KEK}\""),
                "store.key_encryption_key and",
            ),
            (format!("{pg}key_encryption_key = \"{}\"", &KEK[..40]), "store.key_encryption_key:"),
            (
                format!("{pg}key_encryption_key_file = \"/nonexistent\""),
                "store.key_encryption_key_file:",
            ),
            (format!("[store]\nkey_encryption_key = \"{KEK}\""), "store.key_encryption_key:"),
            (
                format!(
                    "[store]\nsessions = \"postgres\"\nurl = \"postgres://h/d\"\nkey_encryption_key_file = {:?}",
                    file.display().to_string()
                ),
                "store.key_encryption_key_file:",
            ),
        ] {
            let error = parse(&toml).unwrap_err().to_string();
            assert!(error.starts_with(key), "{toml}: {error}");
            assert!(!error.contains(KEK), "{error}");
        }
    }

    #[test]
    fn durations_and_lists_take_both_forms() {
        let c = parse("[session]\nidle_timeout = 90\n[server]\nallowed_origins = \"https://a.example, https://b.example\"").unwrap();
        assert_eq!(c.engine.session.idle_timeout, Duration::from_secs(90));
        assert_eq!(c.allowed_origins, vec!["https://a.example", "https://b.example"]);
        let hs =
            parse("[token]\nalgorithm = \"hs256\"\nsecret = \"0123456789abcdef0123456789abcdef\"")
                .unwrap();
        assert_eq!(hs.algorithm, Algorithm::HS256);
    }

    #[test]
    fn key_rotation_is_off_by_default_and_checked_against_the_token_lifetime() {
        assert_eq!(parse("").unwrap().key_rotation, None);
        assert_eq!(parse("[token]\nkey_rotation = \"off\"").unwrap().key_rotation, None);
        let c = parse("[token]\nkey_rotation = \"30d\"").unwrap();
        assert_eq!(c.key_rotation, Some(Duration::from_secs(30 * 86_400)));
        assert!(crate::telemetry::describe_config(&c).contains("token.key_rotation = 30days\n"));
        let short = "[token]\naccess_ttl = \"2s\"\nleeway = \"0s\"\nkey_rotation = \"3s\"";
        assert_eq!(parse(short).unwrap().key_rotation, Some(Duration::from_secs(3)));
        for (toml, message) in [
            ("[token]\nkey_rotation = \"soon\"", "token.key_rotation: invalid value"),
            ("[token]\nkey_rotation = \"5m\"", "must be longer than token.access_ttl"),
            ("[token]\nkey_rotation = \"5m30s\"", "must be longer than token.access_ttl"),
            ("[token]\nkey_rotation = \"11y\"", "at most 10 years"),
            (
                "[token]\nalgorithm = \"HS256\"\nsecret = \"0123456789abcdef0123456789abcdef\"\n\
                 key_rotation = \"30d\"",
                "token.key_rotation: not with token.algorithm = \"HS256\"",
            ),
        ] {
            let error = parse(toml).unwrap_err().to_string();
            assert!(error.starts_with("token.key_rotation"), "{toml}: {error}");
            assert!(error.contains(message), "{toml}: {error}");
        }
    }
}
