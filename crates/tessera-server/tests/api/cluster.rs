//! Real processes for the scale-out tests: `tessera serve` instances sharing their stores, and
//! a Redis or PostgreSQL server of a test's own that it may stop and start again mid-test
//! (the shared test servers of `scripts/test` must stay up for everyone else).
//!
//! Everything listens on 127.0.0.1 only and is killed on drop, so a failing test leaves no
//! process behind.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::helpers::*;

/// The key-encryption key of the tests' instances (base64 of 32 bytes).
pub(crate) const TEST_KEK: &str = "dGVzc2VyYS10ZXN0LWtleS1lbmNyeXB0aW9uLWtleSE=";

/// A port that was free a moment ago.
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `tessera serve` process, with the usual helpers to talk to it.
pub(crate) struct Instance {
    process: TesseraProcess,
    /// Talks to the process with the usual helpers.
    pub(crate) app: TestApp,
    _dir: TempDir,
}

impl Drop for Instance {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("TEST_LOG").is_some() {
            self.process.kill();
            eprintln!("--- {} stderr ---\n{}", self.app.base, self.process.stderr_text());
        }
    }
}

impl std::ops::Deref for Instance {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Instance {
    /// Starts `tessera serve` on a free port with a data directory of its own, a clean
    /// `TESSERA_*` environment, cheap argon2, `cookie.secure = false`, `env` on top, and
    /// waits (bounded) until it listens.
    pub(crate) fn start(env: &[(&str, String)]) -> Instance {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().to_str().expect("a UTF-8 temp dir");
        let args = ["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir];
        let mut command = crate::cli::tessera(&args, &[("TESSERA_COOKIE__SECURE", "false")]);
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str())));
        let process = TesseraProcess::start(command);
        let app = TestApp::remote(&process.base);
        Instance { process, app, _dir: dir }
    }
}

/// Polls `check` every 5 ms until it holds; panics after `bound`. Returns how long it took.
pub(crate) async fn eventually(
    what: &str,
    bound: Duration,
    mut check: impl AsyncFnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < bound, "not within {bound:?}: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// A Redis server of one test's own, with an append-only file so what it held survives a
/// stop and start (as a production Redis configured for sessions should).
pub(crate) struct OwnRedis {
    port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

impl OwnRedis {
    pub(crate) fn start() -> OwnRedis {
        let mut redis =
            OwnRedis { port: free_port(), dir: tempfile::tempdir().unwrap(), child: None };
        redis.resume();
        redis
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: no goodbye to the clients).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory, and waits until it answers.
    pub(crate) fn resume(&mut self) {
        let server = std::env::var("TESSERA_TEST_REDIS_SERVER").unwrap_or_else(|_| {
            panic!(
                "the fault tests need TESSERA_TEST_REDIS_SERVER (the redis-server binary): run \
                 them with scripts/test"
            )
        });
        let port = self.port.to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let mut child = Command::new(&server)
                .args(["--port", &port, "--bind", "127.0.0.1", "--save", ""])
                .args(["--appendonly", "yes", "--appendfsync", "always"])
                .arg("--dir")
                .arg(self.dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server starts");
            if wait_for_port(self.port, Duration::from_secs(5)) {
                self.child = Some(child);
                return;
            }
            // The port may linger after a kill: try again.
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "redis-server did not come up on {port}");
        }
    }
}

/// A PostgreSQL cluster of one test's own (initdb as the `postgres` user, like `scripts/test`).
pub(crate) struct OwnPostgres {
    port: u16,
    dir: TempDir,
    bin: PathBuf,
    running: bool,
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl(&["-m", "immediate", "stop"]);
        }
    }
}

impl OwnPostgres {
    pub(crate) fn start() -> OwnPostgres {
        let bin = PathBuf::from(std::env::var("TESSERA_TEST_PG_BIN").unwrap_or_else(|_| {
            panic!(
                "the fault tests need TESSERA_TEST_PG_BIN (PostgreSQL's bin directory): run \
                 them with scripts/test"
            )
        }));
        let dir = tempfile::tempdir().unwrap();
        let chown = Command::new("chown").arg("postgres").arg(dir.path()).status().unwrap();
        assert!(chown.success(), "chown postgres {}", dir.path().display());
        let data = dir.path().join("data");
        let initdb = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["-A", "trust", "-U", "tessera", "-D"])
            .arg(&data)
            .output()
            .unwrap();
        assert!(initdb.status.success(), "{}", String::from_utf8_lossy(&initdb.stderr));
        let mut pg = OwnPostgres { port: free_port(), dir, bin, running: false };
        pg.resume();
        pg
    }

    pub(crate) fn url(&self) -> String {
        format!("postgres://tessera@127.0.0.1:{}/postgres", self.port)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn pg_ctl(&self, args: &[&str]) -> std::process::Output {
        Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("pg_ctl"))
            .arg("-D")
            .arg(self.data())
            .args(args)
            .output()
            .unwrap()
    }

    /// Stops the server at once (open connections are cut).
    pub(crate) fn stop(&mut self) {
        let out = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        self.running = false;
    }

    /// Starts it again on the same port and data.
    pub(crate) fn resume(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log");
        let log = log.to_str().unwrap();
        let out = self.pg_ctl(&["-l", log, "-w", "-o", &options, "start"]);
        assert!(
            out.status.success(),
            "pg_ctl start: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
        self.running = true;
    }
}

/// Whether something accepts connections on 127.0.0.1:`port` within `bound`.
fn wait_for_port(port: u16, bound: Duration) -> bool {
    let deadline = Instant::now() + bound;
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// A fresh database on the shared PostgreSQL server of `scripts/test`; its URL.
pub(crate) fn shared_postgres_database() -> String {
    let admin = std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "the scale-out tests need TESSERA_TEST_POSTGRES_URL: run them with scripts/test, \
             which starts a PostgreSQL server and sets it"
        )
    });
    create_database(&admin)
}

/// Creates a database with a unique name on the server of `admin_url`; its URL.
pub(crate) fn create_database(admin_url: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "tessera_scale_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        unix_now()
    );
    let output = Command::new("psql")
        .args([admin_url, "-v", "ON_ERROR_STOP=1", "-qc", &format!("CREATE DATABASE {name}")])
        .output()
        .expect("psql runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

/// The shared Redis of `scripts/test`, and a key prefix no other test uses.
pub(crate) fn shared_redis() -> (String, String) {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let url = std::env::var("TESSERA_TEST_REDIS_URL").unwrap_or_else(|_| {
        panic!(
            "the scale-out tests need TESSERA_TEST_REDIS_URL: run them with scripts/test, \
             which starts a Redis server and sets it"
        )
    });
    let prefix = format!(
        "scale-{}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        unix_now()
    );
    (url, prefix)
}

/// The environment of an instance on PostgreSQL (users, families, revocations, audit, keys)
/// and Redis (sessions, throttling, revocation feed).
pub(crate) fn scale_env(
    postgres_url: &str,
    redis_url: &str,
    prefix: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("TESSERA_STORE__USERS", "postgres".into()),
        ("TESSERA_STORE__URL", postgres_url.into()),
        ("TESSERA_STORE__KEY_ENCRYPTION_KEY", TEST_KEK.into()),
        ("TESSERA_STORE__SESSIONS", "redis".into()),
        ("TESSERA_STORE__REDIS_URL", redis_url.into()),
        ("TESSERA_STORE__REDIS_PREFIX", prefix.into()),
        // Every instance has the same issuer (the default would be each one's own URL).
        ("TESSERA_TOKEN__ISSUER", "https://auth.tessera.test".into()),
    ]
}
