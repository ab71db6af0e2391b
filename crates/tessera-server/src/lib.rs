//! The `tessera` server: configuration, command line, and the application that serves the
//! HTTP API of `tessera-axum` with operations endpoints, metrics and graceful shutdown.
//!
//! The binary (`main.rs`) only parses arguments and calls [`run`]; tests start an
//! [`Application`] on port 0 the same way.

pub mod admin;
pub mod app;
pub mod audit;
pub mod bench;
pub mod cert_info;
pub mod cli;
pub mod config;
pub mod dev_cert;
pub mod doctor;
pub mod edge;
pub mod http_metrics;
pub mod idle;
pub mod json_log;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod page;
pub mod redirect;
pub mod request_id;
pub mod serve;
pub mod telemetry;
pub mod text_log;
pub mod time_limit;
pub mod tls;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::{Context, bail};
use secrecy::SecretString;
use tessera::Authenticator;

pub use app::Application;
use cli::{BenchArgs, BenchCommand, Cli, Command, ConfigArgs, ConfigCommand, UserCommand};
use config::{Config, Overrides};

/// Runs one command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let config = load(&args.config, args.listen)?;
            telemetry::init(&config)?;
            let app = Application::build(config).await?;
            // Signal handlers go in before the server announces itself, so a supervisor that
            // stops it right after the `listening on` line still gets a graceful stop.
            let shutdown = shutdown_signal()?;
            let mut stdout = std::io::stdout();
            writeln!(stdout, "listening on {}", app.local_url())?;
            stdout.flush()?;
            tracing::info!(public_url = app.public_url(), "tessera is serving");
            app.run_until(shutdown).await?;
            tracing::info!("stopped");
            Ok(())
        }
        Command::User(UserCommand::Add { username, json, config }) => {
            let config = load(&config, None)?;
            let password = read_password()?;
            let (stores, handles) = app::open_stores(&config).await?;
            let auth = Authenticator::builder(config.engine, stores).build().await?;
            let cli_client = tessera::store::ClientInfo {
                ip: None,
                user_agent: Some("tessera user add".into()),
            };
            let result = auth.create_user(&username, &password, &cli_client).await;
            handles.close().await;
            let user = result.map_err(|e| anyhow::anyhow!("{e}"))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&admin::user_json(&user))?);
            } else {
                println!("created user {} ({})", user.username, user.id);
            }
            Ok(())
        }
        Command::User(command) => admin::user(command).await,
        Command::Sessions(command) => admin::sessions(command).await,
        Command::DevCert(args) => {
            let now = tessera::Clock::now(&tessera::SystemClock);
            let files = dev_cert::write(&args.out, &args.names, args.force, now)?;
            println!(
                "wrote {} and {} (self-signed, for development only)",
                files.cert.display(),
                files.key.display()
            );
            println!("serve HTTPS with:");
            println!(
                "  TESSERA_TLS__CERT={} TESSERA_TLS__KEY={} tessera serve --listen 127.0.0.1:8443",
                files.cert.display(),
                files.key.display()
            );
            println!(
                "and trust it in clients, e.g. curl --cacert {} https://localhost:8443/healthz",
                files.cert.display()
            );
            Ok(())
        }
        Command::Audit(args) => {
            let config = load(&args.config, None)?;
            audit::run(&args, &config).await
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Tokens { username, count, config }),
            ..
        }) => {
            let config = load(&config, None)?;
            let password = read_password()?;
            bench::tokens::run(&config, &username, &password, count).await
        }
        Command::Bench(BenchArgs {
            command: Some(BenchCommand::Primitives { algorithm, seconds, json, config }),
            ..
        }) => {
            let config = load(&config, None)?;
            let algorithm = match algorithm {
                Some(name) => tessera::token::Algorithm::parse(&name).with_context(|| {
                    format!("--algorithm: unknown `{name}` (EdDSA, ES256, RS256 or HS256)")
                })?,
                None => config.algorithm,
            };
            if !(0.1..=600.0).contains(&seconds) {
                bail!("--seconds: must be between 0.1 and 600");
            }
            let duration = std::time::Duration::from_secs_f64(seconds);
            let rate = bench::primitives::verify_rate(algorithm, duration)?;
            let params = config.engine.password.params;
            let hash = bench::primitives::hash_time(params, 5).await?;
            let workers = config.engine.password.workers;
            if json {
                println!(
                    "{{\"algorithm\":\"{}\",\"verifications_per_second\":{:.0},\"argon2_hash_ms\":{:.2},\"password_workers\":{workers}}}",
                    rate.algorithm,
                    rate.per_second,
                    hash.as_secs_f64() * 1e3
                );
            } else {
                println!(
                    "{}: {:.0} signature verifications per second on one core",
                    rate.algorithm, rate.per_second
                );
                println!(
                    "argon2id m={} KiB t={} p={}: {:.1} ms per hash; {workers} password worker(s): \
                     at most {:.0} logins per second",
                    params.memory_kib,
                    params.iterations,
                    params.parallelism,
                    hash.as_secs_f64() * 1e3,
                    workers as f64 / hash.as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Bench(args) => {
            let options = bench::run::Options {
                levels: args.users.iter().map(|&n| n as usize).collect(),
                duration: std::time::Duration::from_secs(args.duration),
                connections: args.connections as usize,
                svg: args.svg,
            };
            if args.one_level {
                bench::run::run_here(&options).await
            } else {
                bench::run::run(&options, args.json).await.map(|_| ())
            }
        }
        Command::Doctor(args) => {
            let now = tessera::Clock::now(&tessera::SystemClock).unix_millis().div_euclid(1000);
            let report = doctor::run(load(&args.config, None), now).await;
            if args.json {
                println!("{}", report.json());
            } else {
                print!("{}", report.text());
            }
            match report.failures() {
                0 => Ok(()),
                n => bail!("{n} check(s) failed"),
            }
        }
        Command::Keys(command) => keys::run(command, |args| load(args, None)).await,
        Command::Config(ConfigCommand::Check { config, listen }) => {
            let config = load(&config, listen)?;
            print!("{}", telemetry::describe_config(&config));
            println!("configuration OK");
            Ok(())
        }
    }
}

pub(crate) fn load(args: &ConfigArgs, listen: Option<String>) -> anyhow::Result<Config> {
    Config::load(args.config.as_deref(), &Overrides { listen, data_dir: args.data_dir.clone() })
}

pub(crate) fn read_password() -> anyhow::Result<SecretString> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprint!("password (input is visible): ");
    }
    let mut line = String::new();
    stdin.lock().read_line(&mut line).context("reading the password from standard input")?;
    let password = line.trim_end_matches(['\r', '\n']).to_owned();
    if password.is_empty() {
        bail!(
            "no password on standard input (try: printf '%s\\n' \"$PASSWORD\" | tessera user add NAME)"
        );
    }
    Ok(SecretString::from(password))
}

/// Installs the SIGTERM and Ctrl-C handlers now and returns a future that completes on either.
pub fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    #[cfg(unix)]
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("installing the SIGINT handler")?;
    Ok(async move {
        #[cfg(unix)]
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = interrupt.recv() => tracing::info!("Ctrl-C: shutting down"),
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C: shutting down");
        }
    })
}
