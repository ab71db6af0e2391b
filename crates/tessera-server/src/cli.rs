//! The command line: `tessera serve`, `tessera user add`, `tessera config check`.

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
    Serve(ServeArgs),
    /// Manage users directly in the store (works while registration is closed).
    #[command(subcommand)]
    User(UserCommand),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
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
    Check {
        /// Configuration source.
        #[command(flatten)]
        config: ConfigArgs,
        /// Address to listen on, as for `serve`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}
