//! `tessera bench` without a subcommand: the measured answer to "sessions or tokens, which
//! scales better?" on this machine.
//!
//! For each user count it seeds a fresh embedded store (N users, one live session each),
//! starts the real server in this process on a loopback port, warms the session cache with
//! every session, and drives it with the built-in load generator ([`super::load`]): session
//! checks rotating through all N cookies, token checks with a token seen before and with a new
//! token on every request, and logins. It reports requests per second, server CPU per
//! request, memory per active session, database bytes per session, logins per second and the
//! startup time on the seeded store, as a table and an SVG chart.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use secrecy::SecretString;
use tessera::password::PasswordHasher;
use tessera::store::ClientInfo;

use super::load::{self, Load};
use crate::app::Application;
use crate::config::{Config, Overrides, StoreKind};

/// The password every seeded user has.
const PASSWORD: &str = "bench-pw-9f8e7d6c5b41";

/// What to measure.
#[derive(Debug, Clone)]
pub struct Options {
    /// User counts, each measured on a fresh store.
    pub levels: Vec<usize>,
    /// Length of each load run.
    pub duration: Duration,
    /// Concurrent connections of the load generator.
    pub connections: usize,
    /// Where to write the chart.
    pub svg: PathBuf,
}

/// A measured load run.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct Run {
    /// Requests per second.
    pub per_second: f64,
    /// 99th percentile latency in milliseconds.
    pub p99_ms: f64,
    /// The server's CPU time per request in microseconds: the process minus the load
    /// generator and minus the store's worker threads (what serving the request costs).
    pub cpu_us: f64,
    /// The store's worker threads' CPU time per request in microseconds over the same run:
    /// work behind the requests, such as renewals written while they run.
    #[serde(default)]
    pub store_cpu_us: f64,
}

/// Everything measured at one user count.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Level {
    /// Users (each with one live session).
    pub users: usize,
    /// Session checks, each request with the next of the N sessions, each session used
    /// for the first time in a while (so with many users most requests record a renewal).
    pub session_first: Run,
    /// The same requests again once the first pass's renewals are written: the check itself.
    /// (With many users that flush outlasts the renewal interval, 30 s by default, so this
    /// pass records renewals again and the store writes them while it runs: that work is in
    /// [`Run::store_cpu_us`], not in [`Run::cpu_us`].)
    pub session: Run,
    /// Renewals written per second when the first pass's renewals were flushed.
    pub renewals_per_second: f64,
    /// Token checks with a token seen before (the verified-token cache answers).
    pub token_cached: Run,
    /// Token checks with a token never seen before on every request (a signature each).
    pub token_new: Run,
    /// Logins per second (argon2id each).
    pub logins_per_second: f64,
    /// Resident memory per cached session, in bytes.
    pub memory_per_session: f64,
    /// SQLite bytes per session (and its user).
    pub db_bytes_per_user: f64,
    /// Time from start to serving on the seeded store, in milliseconds.
    pub startup_ms: f64,
    /// Time to seed the store, in seconds.
    pub seed_seconds: f64,
}

/// Runs every level, each in a fresh `tessera bench --one-level` process (so one level's
/// freed memory cannot hide the next level's growth), prints the table and writes the chart.
pub async fn run(options: &Options, json: bool) -> anyhow::Result<Vec<Level>> {
    let exe = std::env::current_exe().context("finding the tessera binary")?;
    let mut levels = Vec::new();
    for (index, &users) in options.levels.iter().enumerate() {
        eprintln!("level {} of {}: {users} users", index + 1, options.levels.len());
        let mut command = std::process::Command::new(&exe);
        command
            .args(["bench", "--one-level", "--json", "--users", &users.to_string()])
            .args(["--duration", &options.duration.as_secs().to_string()])
            .args(["--connections", &options.connections.to_string()])
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .context("waiting for a benchmark process")?
            .context("starting a benchmark process")?;
        anyhow::ensure!(output.status.success(), "the {users}-user level failed");
        let mut measured: Vec<Level> = serde_json::from_slice(&output.stdout)
            .context("reading a benchmark process's results")?;
        levels.append(&mut measured);
    }
    std::fs::write(&options.svg, super::chart::svg(&levels))
        .with_context(|| format!("writing {}", options.svg.display()))?;
    if json {
        println!("{}", serde_json::to_string_pretty(&levels)?);
    } else {
        print!("{}", table(&levels));
        println!("chart: {}", options.svg.display());
    }
    Ok(levels)
}

/// Measures each level in this process and prints the results as JSON (`--one-level`).
pub async fn run_here(options: &Options) -> anyhow::Result<()> {
    let mut progress = super::progress::Progress::new(options.levels.len() * 8);
    let mut levels = Vec::new();
    for &users in &options.levels {
        levels.push(level(options, users, &mut progress).await?);
    }
    progress.finish();
    println!("{}", serde_json::to_string(&levels)?);
    Ok(())
}

/// A data directory removed on drop.
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn level(
    options: &Options,
    users: usize,
    progress: &mut super::progress::Progress,
) -> anyhow::Result<Level> {
    let label = |what: &str| format!("{users} users: {what}");
    let scratch =
        Scratch(std::env::temp_dir().join(format!("tessera-bench-{}-{users}", std::process::id())));
    let _ = std::fs::remove_dir_all(&scratch.0);
    tessera::fsutil::create_private_dir(&scratch.0)?;
    let overrides =
        Overrides { listen: Some("127.0.0.1:0".into()), data_dir: Some(scratch.0.clone()) };
    let mut config = Config::load(None, &overrides)?;
    anyhow::ensure!(
        config.users_store == StoreKind::Sqlite && config.sessions_store == StoreKind::Sqlite,
        "tessera bench measures the embedded SQLite store; unset the TESSERA_STORE__* variables"
    );
    config.session_cache_capacity = config.session_cache_capacity.max(users);
    config.engine.limits.ip_per_minute = u32::MAX / 2; // logins all come from 127.0.0.1

    progress.step(&label("hashing the shared password"));
    let hasher = PasswordHasher::new(config.engine.password.params, 1)?;
    let hash = hasher.hash(&SecretString::from(PASSWORD.to_owned())).await?;
    let started = Instant::now();
    let seeded = super::seed::seed(
        &scratch.0,
        users,
        &hash,
        config.engine.session.absolute_lifetime,
        |done| progress.fraction(&label("seeding users and sessions"), done),
    )
    .await?;
    let seed_seconds = started.elapsed().as_secs_f64();
    let db_bytes =
        file_size(&scratch.0.join("tessera.db")) + file_size(&scratch.0.join("tessera.db-wal"));

    progress.step(&label("starting the server"));
    let cookie_name =
        if config.cookie_secure { "__Host-tessera_session" } else { "tessera_session" };
    let started = Instant::now();
    let app = Application::build(config).await?;
    let startup = started.elapsed();
    let addr = app.local_addr();
    let auth = app.authenticator().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));

    progress.step(&label("warming the session cache"));
    let rss_before = super::rss_bytes();
    warm(&auth, &seeded.cookies).await?;
    // Renewals recorded while warming are written now, and their map freed.
    auth.flush().await.context("writing the renewals")?;
    let rss_after = super::rss_bytes();
    let memory_per_session = rss_after.saturating_sub(rss_before) as f64 / users as f64;

    let run = |requests: Arc<Vec<Vec<u8>>>, connections: usize| {
        measure(Load { addr, requests, connections, duration: options.duration })
    };
    let cookies: Arc<Vec<Vec<u8>>> = Arc::new(
        seeded
            .cookies
            .iter()
            .map(|c| load::get("/v1/me", &format!("Cookie: {cookie_name}={c}")))
            .collect(),
    );
    progress.step(&label("session checks, first use"));
    let session_first = run(Arc::clone(&cookies), options.connections).await?;
    progress.step(&label("session checks, again"));
    let started = Instant::now();
    let renewals = auth.flush().await.context("writing the renewals")?;
    let renewals_per_second = renewals as f64 / started.elapsed().as_secs_f64().max(1e-6);
    let session = run(cookies, options.connections).await?;
    auth.flush().await.context("writing the renewals")?;

    progress.step(&label("token checks"));
    let client = ClientInfo { ip: None, user_agent: Some("tessera bench".into()) };
    let user = auth
        .login(
            tessera::AuthMethod::Token,
            "bench-0",
            &SecretString::from(PASSWORD.to_owned()),
            &client,
        )
        .await
        .map_err(|e| anyhow::anyhow!("logging bench-0 in: {e}"))?;
    let grant = auth.issue_tokens(&user, &client).await.map_err(|e| anyhow::anyhow!("{e}"))?;
    let bearer = |token: &str| load::get("/v1/me", &format!("Authorization: Bearer {token}"));
    let token_cached =
        run(Arc::new(vec![bearer(&grant.access.token)]), options.connections).await?;
    // Enough new tokens that none repeats within the run at up to 40,000 requests a second,
    // capped at 400,000: six times what the verified-token cache holds, so even when a long
    // run wraps round the pool every request still misses the cache.
    let fresh = ((options.duration.as_secs_f64() * 40_000.0) as usize).clamp(1, 400_000);
    let mut tokens = Vec::with_capacity(fresh);
    for _ in 0..fresh {
        let access = auth.reissue_access_token(&grant).map_err(|e| anyhow::anyhow!("{e}"))?;
        tokens.push(bearer(&access.token));
    }
    let token_new = run(Arc::new(tokens), options.connections).await?;

    progress.step(&label("logins"));
    let logins = run(
        Arc::new(
            (0..users.min(1000))
                .map(|n| {
                    load::post_json(
                        "/v1/session",
                        &format!(r#"{{"username":"bench-{n}","password":"{PASSWORD}"}}"#),
                    )
                })
                .collect(),
        ),
        4,
    )
    .await?;

    let _ = stop.send(());
    server.await.context("the server task failed")??;
    Ok(Level {
        users,
        session_first,
        session,
        renewals_per_second,
        token_cached,
        token_new,
        logins_per_second: logins.per_second,
        memory_per_session,
        db_bytes_per_user: db_bytes as f64 / users as f64,
        startup_ms: startup.as_secs_f64() * 1e3,
        seed_seconds,
    })
}

/// Reads every session once through the engine (8 at a time), so the cache holds them all.
async fn warm(auth: &tessera::Authenticator, cookies: &[String]) -> anyhow::Result<()> {
    let chunk = cookies.len().div_ceil(8).max(1);
    let mut tasks = Vec::new();
    for part in cookies.chunks(chunk) {
        let auth = auth.clone();
        let part: Vec<String> = part.to_vec();
        tasks.push(tokio::spawn(async move {
            for cookie in part {
                auth.authenticate_session(&SecretString::from(cookie))
                    .await
                    .map_err(|e| anyhow::anyhow!("a seeded session did not authenticate: {e}"))?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await.context("warming failed")??;
    }
    Ok(())
}

async fn measure(load: Load) -> anyhow::Result<Run> {
    let cpu_before = super::process_cpu();
    let store_before = super::store_worker_cpu();
    let outcome = load::run(load).await?;
    let store_cpu = super::store_worker_cpu().saturating_sub(store_before);
    let server_cpu = super::process_cpu()
        .saturating_sub(cpu_before)
        .saturating_sub(outcome.generator_cpu)
        .saturating_sub(store_cpu);
    let per_request =
        |cpu: std::time::Duration| cpu.as_secs_f64() * 1e6 / outcome.requests.max(1) as f64;
    Ok(Run {
        per_second: outcome.per_second,
        p99_ms: outcome.p99.as_secs_f64() * 1e3,
        cpu_us: per_request(server_cpu),
        store_cpu_us: per_request(store_cpu),
    })
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown table of all levels.
pub fn table(levels: &[Level]) -> String {
    let mut out = String::from(
        "| users | session req/s | session µs CPU | + store µs | first use µs CPU | renewals written/s | token req/s (seen) | token µs CPU | token req/s (new each) | new-token µs CPU | logins/s | memory per session | DB bytes per user | startup |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for l in levels {
        out.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {:.1} | {} | {:.1} | {:.1} | {} B | {} B | {:.0} ms |\n",
            thousands(l.users as f64),
            thousands(l.session.per_second),
            l.session.cpu_us,
            l.session.store_cpu_us,
            l.session_first.cpu_us,
            thousands(l.renewals_per_second),
            thousands(l.token_cached.per_second),
            l.token_cached.cpu_us,
            thousands(l.token_new.per_second),
            l.token_new.cpu_us,
            l.logins_per_second,
            thousands(l.memory_per_session),
            thousands(l.db_bytes_per_user),
            l.startup_ms,
        ));
    }
    out
}
