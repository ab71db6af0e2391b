//! The command line: `tessera serve`, `tessera user …`, `tessera sessions …`, `tessera keys …`,
//! `tessera audit`, `tessera config check`, `tessera doctor`, `tessera dev-cert`, `tessera bench`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Tessera: an authentication server with sessions and JWTs side by side on one user base.
///
/// With no configuration at all, `tessera serve` listens on 127.0.0.1:8080 and keeps its SQLite
/// database, signing key and secrets in ./tessera-data. Every configuration key can also be
/// set in the environment as `TESSERA_<SECTION>__<KEY>`, e.g. `TESSERA_SESSION__IDLE_TIMEOUT=30m`.
#[derive(Debug, Parser)]
#[command(name = "tessera", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (prints `listening on http://ADDR` once it accepts connections; stops
    /// gracefully on SIGTERM or Ctrl-C).
    ///
    /// Example: tessera serve --listen 127.0.0.1:8080 --data-dir ./tessera-data
    Serve(ServeArgs),
    /// Manage users directly in the store (works while registration is closed, and next to a
    /// running server: see docs/operations.md, "Admin CLI").
    #[command(subcommand)]
    User(UserCommand),
    /// List or end any user's sessions and token logins (a running server refuses them within
    /// about a second).
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Read the audit log: logins and their failures, logouts, refreshes, reuse detections,
    /// revocations and password changes, newest last.
    ///
    /// Example: tessera audit --user alice --outcome failure --since 24h
    Audit(AuditArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List or rotate the keys that sign access tokens (in the data directory, or in
    /// PostgreSQL with store.users = "postgres"). Running servers pick changes up within
    /// seconds, without a restart.
    ///
    /// Example: tessera keys rotate && tessera keys list
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Write a self-signed certificate and key for local HTTPS (localhost, 127.0.0.1, ::1),
    /// valid for a year, and print the config that uses them. For development only.
    ///
    /// Example: tessera dev-cert --out ./tessera-data && curl --cacert
    /// ./tessera-data/dev-cert.pem https://localhost:8443/healthz
    DevCert(DevCertArgs),
    /// Measure Tessera on this machine: sessions against tokens at 1k, 100k and 1M users
    /// (requests per second, server CPU per request, memory per active user, logins per
    /// second, startup time), printed as a table and drawn as an SVG chart. See
    /// docs/benchmarks.md.
    ///
    /// Example: tessera bench --users 1000,100000 --duration 5
    Bench(BenchArgs),
    /// Check a configuration and the installation it points at, and say what to fix: one line
    /// per check, OK, WARN or FAIL, with a hint (configuration validity, cookie and TLS
    /// security, certificate expiry, data directory permissions, signing key ages, store
    /// reachability, open registration, allowed origins, argon2 cost). Reads only.
    ///
    /// Exit status: 0 when no check failed (warnings allowed), 1 when one did.
    ///
    /// Example: tessera doctor --config /etc/tessera/tessera.toml
    Doctor(DoctorArgs),
}

/// `tessera doctor`
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Configuration source.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Print one JSON object (`ok`, `failures`, `warnings`, `checks`: [{`check`, `status`,
    /// `message`, `fix`}]) instead of lines.
    #[arg(long)]
    pub json: bool,
}

/// `tessera bench`
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct BenchArgs {
    /// A helper instead of the benchmark.
    #[command(subcommand)]
    pub command: Option<BenchCommand>,
    /// User counts to measure, each on a fresh store (comma-separated, each 1 to 10,000,000).
    #[arg(long, value_name = "N,N,…", value_delimiter = ',', default_value = "1000,100000,1000000",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    pub users: Vec<u64>,
    /// Seconds per load run.
    #[arg(long, value_name = "SECS", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub duration: u64,
    /// Concurrent connections of the built-in load generator.
    #[arg(long, value_name = "N", default_value_t = 32, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub connections: u64,
    /// Where to write the SVG chart.
    #[arg(long, value_name = "FILE", default_value = "tessera-bench.svg")]
    pub svg: PathBuf,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Measure in this process and print JSON only (what `tessera bench` runs per level).
    #[arg(long, hide = true)]
    pub one_level: bool,
}

/// `tessera bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Log a user in once and print COUNT distinct access tokens for that login, one per line
    /// (for load tests that must miss the verified-token cache). The password is read from
    /// the first line of standard input. Set server.public_url to the URL the server will
    /// have: it is the tokens' issuer.
    ///
    /// Example: printf '%s\n' "$PASSWORD" | tessera bench tokens alice --count 100000 > tokens.txt
    Tokens {
        /// The user to log in.
        username: String,
        /// How many tokens.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000_000))]
        count: u32,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Measure on one core how many access-token signatures it verifies per second and how
    /// long one argon2id password hash takes, with the configured algorithm and cost (run it
    /// pinned to one CPU).
    ///
    /// Example: taskset -c 0 tessera bench primitives --seconds 3
    Primitives {
        /// The algorithm [default: token.algorithm of the configuration, EdDSA].
        #[arg(long, value_name = "ALG")]
        algorithm: Option<String>,
        /// How long to measure, in seconds.
        #[arg(long, default_value_t = 3.0)]
        seconds: f64,
        /// Print one JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `tessera dev-cert`
#[derive(Debug, Args)]
pub struct DevCertArgs {
    /// Directory to write dev-cert.pem and dev-key.pem into.
    #[arg(long, value_name = "DIR", default_value = "tessera-data")]
    pub out: PathBuf,
    /// Another host name or IP address to include (repeatable).
    #[arg(long = "name", value_name = "NAME")]
    pub names: Vec<String>,
    /// Replace existing files.
    #[arg(long)]
    pub force: bool,
}

/// `tessera audit`
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Configuration source.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Only events about this user (username or user id).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// Only events of this kind: register, user_create, login, logout, refresh,
    /// refresh_reuse, token_revoke, login_end, logout_everywhere, password_change,
    /// password_reset, user_disable, user_enable, user_delete.
    #[arg(long, value_name = "EVENT")]
    pub event: Option<tessera::audit::AuditKind>,
    /// Only successes or only failures.
    #[arg(long, value_name = "success|failure")]
    pub outcome: Option<tessera::audit::AuditOutcome>,
    /// Only events from this IP address.
    #[arg(long, value_name = "IP")]
    pub ip: Option<String>,
    /// Only events at or after this time: RFC 3339 (2026-11-27T10:00:00Z) or an age (90m, 24h,
    /// 7d).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only events before this time (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// At most this many events (the newest).
    #[arg(long, value_name = "N", default_value_t = 100,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub limit: u32,
    /// Print a JSON array (oldest first) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where the configuration comes from.
#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// TOML configuration file (keys: see docs/configuration.md).
    #[arg(long, short = 'c', value_name = "FILE", env = "TESSERA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory for the SQLite database, keys and secrets [default: ./tessera-data].
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `tessera serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration source.
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// `tessera user …`
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from the first line of standard input.
    ///
    /// Example: printf '%s\n' "$PASSWORD" | tessera user add alice
    Add {
        /// The username (3-64 characters of A-Z a-z 0-9 . _ -).
        username: String,
        /// Print the new user as a JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List every user: username, id, creation time, and whether and since when disabled.
    ///
    /// Example: tessera user list --json | jq -r '.[] | select(.disabled) | .username'
    List {
        /// Print a JSON array (username order) instead of a table.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Disable a user: their password logins are refused (403 `forbidden`), and every session
    /// and token login they have ends now, their access tokens included (a running server
    /// refuses them within about a second). `tessera user enable` undoes the first part.
    ///
    /// Example: tessera user disable alice
    Disable {
        /// The username or user id.
        user: String,
        /// Print the result as a JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Enable a disabled user again: they can log in with their password.
    ///
    /// Example: tessera user enable alice
    Enable {
        /// The username or user id.
        user: String,
        /// Print the result as a JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Delete a user and end every session and token login they have (their access tokens
    /// included). Their audit events stay. Cannot be undone, so it asks for --yes.
    ///
    /// Example: tessera user delete alice --yes
    Delete {
        /// The username or user id.
        user: String,
        /// Really delete (required).
        #[arg(long)]
        yes: bool,
        /// Print the result as a JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Set a user's password, read from the first line of standard input (the same rules as
    /// registration). Also ends every session and token login of the user, as a password
    /// change does, unless --keep-sessions.
    ///
    /// Example: printf '%s\n' "$NEW_PASSWORD" | tessera user set-password alice
    SetPassword {
        /// The username or user id.
        user: String,
        /// Leave the user's sessions and token logins alone.
        #[arg(long)]
        keep_sessions: bool,
        /// Print the result as a JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `tessera sessions …`
#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List a user's sessions (cookie logins) and token logins (refresh-token families), oldest
    /// first: id, kind, created, last used, expiry if unused, IP and user agent.
    ///
    /// Example: tessera sessions list --user alice
    List {
        /// The username or user id.
        #[arg(long, value_name = "USER")]
        user: String,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// End every session and token login of a user, or only one with --session (an id from
    /// `tessera sessions list`). Their access tokens are revoked too; a running server refuses
    /// them within about a second.
    ///
    /// Example: tessera sessions revoke --user alice --session 0193c1de-…
    Revoke {
        /// The username or user id.
        #[arg(long, value_name = "USER")]
        user: String,
        /// Only this session or token login.
        #[arg(long, value_name = "ID")]
        session: Option<String>,
        /// Print the result as a JSON object.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `tessera keys …`
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Show every signing key: its kid, algorithm, creation time, state (signing; retired,
    /// verifying the tokens it signed until a given time; expired, removed at the next check)
    /// and age.
    ///
    /// Example: tessera keys list --data-dir /var/lib/tessera
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// Generate a new key of the configured algorithm and make it the signer. The old key
    /// is retired: it stays in the JWKS and verifies the tokens it signed until they have
    /// expired (token.access_ttl + token.leeway, plus a margin), then it is dropped. Running
    /// servers sign with the new key within seconds. Not available with HS256 (change
    /// token.secret instead).
    ///
    /// Example: tessera keys rotate --config /etc/tessera.toml --json
    Rotate {
        /// Print a JSON object instead of a sentence.
        #[arg(long)]
        json: bool,
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `tessera config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration (file, environment, defaults) and print the result; secrets
    /// are not printed. Exits non-zero naming the first bad key.
    ///
    /// Example: TESSERA_SESSION__IDLE_TIMEOUT=30m tessera config check --config tessera.toml
    Check {
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on, as for `serve`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    /// Every command the binary has, as `tessera a b`, with its clap definition.
    fn leaves(command: &clap::Command, path: String, out: &mut Vec<(String, clap::Command)>) {
        let mut children = command.get_subcommands().peekable();
        if children.peek().is_none() {
            out.push((path, command.clone()));
            return;
        }
        for child in children {
            leaves(child, format!("{path} {}", child.get_name()), out);
        }
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_subcommand_says_what_it_does_and_shows_an_example() {
        let mut all = Vec::new();
        leaves(&Cli::command(), "tessera".into(), &mut all);
        assert!(all.len() >= 15, "{:?}", all.iter().map(|(p, _)| p).collect::<Vec<_>>());
        let mut missing = Vec::new();
        for (path, command) in &all {
            let about = command.get_about().map(|a| a.to_string()).unwrap_or_default();
            let long = command.get_long_about().map(|a| a.to_string()).unwrap_or_default();
            if about.trim().is_empty() || !format!("{about}\n{long}").contains("Example") {
                missing.push(path.clone());
            }
        }
        assert!(missing.is_empty(), "no help text or no example: {missing:?}");
    }
}
