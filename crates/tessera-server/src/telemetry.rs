//! Logging setup, and the human-readable summary of a configuration (`tessera config check`).

use std::fmt::Write as _;

use secrecy::ExposeSecret as _;
use tessera::store::redis::Topology;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global tracing subscriber: stderr, the configured filter and format.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_level)?;
    // Colour only for a terminal: journald and log files get plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match config.log_format {
        LogFormat::Text => builder
            .event_format(crate::text_log::WithRequestId(
                tracing_subscriber::fmt::format::Format::default().with_ansi(ansi),
            ))
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(crate::json_log::JsonLines)
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// The effective configuration, one `key = value` per line, secrets left out (or shown as
/// `[redacted]`).
pub fn describe_config(c: &Config) -> String {
    let e = &c.engine;
    let d = |d: std::time::Duration| humantime::format_duration(d).to_string();
    let mut out = String::new();
    let lines = [
        ("server.listen", c.listen.to_string()),
        ("server.data_dir", c.data_dir.display().to_string()),
        (
            "server.public_url",
            c.public_url.clone().unwrap_or_else(|| {
                if c.tls.is_some() { "https://<listen>" } else { "http://<listen>" }.into()
            }),
        ),
        ("server.allowed_origins", c.allowed_origins.join(", ")),
        (
            "server.trusted_proxies",
            c.trusted_proxies
                .networks()
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ),
        ("server.client_ip_header", c.trusted_proxies.header().as_str().to_owned()),
        ("server.request_timeout", d(c.request_timeout)),
        ("server.header_timeout", d(c.header_timeout)),
        ("server.shutdown_timeout", d(c.shutdown_timeout)),
        ("server.idle_timeout", d(c.idle_timeout)),
        ("server.max_connections", c.max_connections.to_string()),
        ("tls.cert", c.tls.as_ref().map_or("none".into(), |(c, _)| c.display().to_string())),
        ("tls.key", c.tls.as_ref().map_or("none".into(), |(_, k)| k.display().to_string())),
        ("tls.redirect_http", c.redirect_http.map_or("none".into(), |a| a.to_string())),
        ("cookie.secure", c.cookie_secure.to_string()),
        ("session.idle_timeout", d(e.session.idle_timeout)),
        ("session.absolute_lifetime", d(e.session.absolute_lifetime)),
        ("session.cache_capacity", c.session_cache_capacity.to_string()),
        ("token.algorithm", c.algorithm.to_string()),
        ("token.issuer", c.issuer.clone().unwrap_or_else(|| "<public_url>".into())),
        ("token.audience", e.token.audience.clone()),
        ("token.access_ttl", d(e.token.access_ttl)),
        ("token.refresh_ttl", d(e.token.refresh_ttl)),
        ("token.refresh_family_lifetime", d(e.token.refresh_family_lifetime)),
        ("token.refresh_reuse_grace", d(e.token.refresh_reuse_grace)),
        ("token.leeway", d(e.token.leeway)),
        ("token.key_rotation", c.key_rotation.map_or_else(|| "off".into(), d)),
        ("limits.max_failures", e.limits.max_failures.to_string()),
        ("limits.failure_window", d(e.limits.failure_window)),
        ("limits.ip_per_minute", e.limits.ip_per_minute.to_string()),
        ("limits.registrations_per_minute", e.limits.registrations_per_minute.to_string()),
        ("registration.open", e.registration_open.to_string()),
        ("store.users", format!("{:?}", c.users_store).to_lowercase()),
        ("store.sessions", format!("{:?}", c.sessions_store).to_lowercase()),
        (
            "store.url",
            c.postgres_url.as_ref().map_or("none".into(), |u| redact_url(u.expose_secret())),
        ),
        (
            "store.redis_url",
            c.redis_url.as_ref().map_or("none".into(), |u| match c.redis_topology {
                // One URL, whose password may hold a comma.
                Topology::Single => redact_url(u.expose_secret()),
                _ => u.expose_secret().split(',').map(redact_url).collect::<Vec<_>>().join(","),
            }),
        ),
        ("store.redis_cluster", (c.redis_topology == Topology::Cluster).to_string()),
        (
            "store.redis_sentinel_master",
            match &c.redis_topology {
                Topology::Sentinel { master } => master.clone(),
                _ => "none".into(),
            },
        ),
        ("store.redis_prefix", c.redis_prefix.clone()),
        (
            "store.key_encryption_key",
            match (&c.key_encryption_key, &c.key_encryption_key_file) {
                (Some(_), None) => "[redacted]".into(),
                _ => "none".into(),
            },
        ),
        (
            "store.key_encryption_key_file",
            c.key_encryption_key_file.as_ref().map_or("none".into(), |p| p.display().to_string()),
        ),
        ("password.memory_kib", e.password.params.memory_kib.to_string()),
        ("password.iterations", e.password.params.iterations.to_string()),
        ("password.parallelism", e.password.params.parallelism.to_string()),
        ("password.workers", e.password.workers.to_string()),
        ("log.level", c.log_level.clone()),
        ("log.format", format!("{:?}", c.log_format).to_lowercase()),
        ("audit.retention", e.audit_retention.map_or("forever".into(), d)),
    ];
    for (key, value) in lines {
        let _ = writeln!(out, "{key} = {value}");
    }
    out
}

/// A URL with its user information (user name and password) and its query (which may carry
/// credentials too: `?password=`, `?pass=`) hidden.
fn redact_url(url: &str) -> String {
    let (url, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?[redacted]"),
        None => (url, ""),
    };
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, _)), Some(at)) => {
            format!("{scheme}://[redacted]@{}{query}", &url[at + 1..])
        }
        _ => format!("{url}{query}"),
    }
}

#[cfg(test)]
mod tests {
    use super::redact_url;

    #[test]
    fn urls_lose_their_credentials_wherever_they_are() {
        assert_eq!(redact_url("redis://:pw@h:6379/0"), "redis://[redacted]@h:6379/0");
        assert_eq!(
            redact_url("redis+unix:///run/redis.sock?user=u&pass=pw"),
            "redis+unix:///run/redis.sock?[redacted]"
        );
        assert_eq!(
            redact_url("postgres://u:p@db/t?password=x"),
            "postgres://[redacted]@db/t?[redacted]"
        );
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }
}
