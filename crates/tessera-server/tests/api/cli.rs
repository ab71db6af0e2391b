//! The command line, with the real binary: help, `serve` (listening line, SIGTERM, environment
//! overlay, configuration errors), `user add` and `bench tokens` / `bench primitives`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

#[path = "cli/admin.rs"]
mod admin;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// `tessera ARGS` with a clean environment: no `TESSERA_*` from the caller, cheap argon2.
pub(crate) fn tessera(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(key);
        }
    }
    command.env("TESSERA_PASSWORD__MEMORY_KIB", "64");
    command.env("TESSERA_PASSWORD__ITERATIONS", "1");
    command.env("TESSERA_LOG__LEVEL", "info");
    command.envs(env.iter().copied());
    command
}

/// A `tessera serve` child, killed on drop.
struct Server {
    child: Child,
    base: String,
    client: reqwest::Client,
    stderr: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Server {
    /// Starts `tessera serve --listen 127.0.0.1:0 --data-dir DIR` and waits for its
    /// `listening on` line.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let dir = dir.to_str().expect("a UTF-8 temp dir");
        Server::spawn(tessera(&["serve", "--listen", "127.0.0.1:0", "--data-dir", dir], env))
    }

    /// Starts `command` (a `tessera serve`) and waits for its `listening on` line.
    fn spawn(mut command: Command) -> Server {
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().expect("the tessera binary starts");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = drain(child.stderr.take());
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + WAIT;
        let mut server =
            Server { child, base: String::new(), client: client(), stderr: Some(stderr) };
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) = line.strip_prefix("listening on ") {
                        let url = url.trim();
                        assert!(url.starts_with("http://127.0.0.1:"), "{line}");
                        let port: u16 = url["http://127.0.0.1:".len()..]
                            .parse()
                            .unwrap_or_else(|_| panic!("no port in {line:?}"));
                        assert_ne!(port, 0, "the line shows the port picked");
                        server.base = url.to_owned();
                        return server;
                    }
                }
                Err(_) => {
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    let stderr = server.stderr_text();
                    panic!("tessera serve printed no `listening on` line; stderr:\n{stderr}");
                }
            }
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Everything the child wrote to stderr (once it has exited or been killed).
    fn stderr_text(&mut self) -> String {
        let bytes = self.stderr.take().map(|h| h.join().unwrap_or_default()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Sends `signal` (`TERM`, `INT`) and waits (bounded) for the exit.
    fn signal(&mut self, signal: &str) -> ExitStatus {
        let pid = self.child.id().to_string();
        let flag = format!("-{signal}");
        let killed = Command::new("kill").args([flag.as_str(), &pid]).status().expect("kill runs");
        assert!(killed.success(), "kill {flag} {pid}");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for tessera") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                panic!("tessera did not stop within {WAIT:?} of SIG{signal}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Asserts `/healthz` answers 200.
    async fn healthy(&self) {
        let response = self.client.get(self.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    async fn register(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/users"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/v1/session"))
            .json(&json!({"username": username, "password": password}))
            .send()
            .await
            .unwrap()
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tessera-cli-").tempdir().unwrap()
}

fn run(command: Command, stdin: Option<&str>) -> std::process::Output {
    run_command(command, stdin, WAIT).expect("the tessera binary runs")
}

#[test]
fn help_lists_every_subcommand_and_serve_help_its_options() {
    let output = run(tessera(&["--help"], &[]), None);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    for subcommand in ["serve", "user", "config"] {
        assert!(help.contains(subcommand), "`tessera --help` lacks {subcommand}:\n{help}");
    }

    let output = run(tessera(&["serve", "--help"], &[]), None);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8_lossy(&output.stdout);
    for option in ["--config", "--listen", "--data-dir"] {
        assert!(help.contains(option), "`tessera serve --help` lacks {option}:\n{help}");
    }

    let output = run(tessera(&["user", "--help"], &[]), None);
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("add"));
}

#[tokio::test]
async fn serve_prints_its_address_answers_and_exits_0_on_sigterm() {
    let dir = temp_dir();
    let mut server = Server::start(dir.path(), &[]);
    let response = server.client.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(server.register("alice", PASSWORD).await.status(), 201);
    let login = server.login("alice", PASSWORD).await;
    assert_eq!(login.status(), 200);
    // Cookies are secure by default.
    let cookie = find_set_cookie(login.headers(), "__Host-tessera_session");
    assert!(cookie.attr("secure").is_some());

    let status = server.signal("TERM");
    assert!(status.success(), "SIGTERM must end with exit status 0, got {status}");

    // The data directory holds what a second start reuses; Ctrl-C stops it cleanly too.
    let mut server = Server::start(dir.path(), &[]);
    assert_eq!(server.login("alice", PASSWORD).await.status(), 200);
    let status = server.signal("INT");
    assert!(status.success(), "SIGINT must end with exit status 0, got {status}");
}

#[test]
fn sigterm_right_after_the_listening_line_exits_0() {
    // A supervisor may stop the server as soon as it has announced itself. A shell waiting
    // with its builtin `kill` sends SIGTERM within microseconds of the line.
    use std::io::Write as _;

    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    let mut command = tessera(&["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir], &[]);
    command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command.spawn().expect("the tessera binary starts");
    let mut server = Server { child, base: String::new(), client: client(), stderr: None };
    server.stderr = Some(drain(server.child.stderr.take()));
    let stdout = server.child.stdout.take().expect("stdout");
    let mut killer = Command::new("sh")
        .args(["-c", "read _ && kill -TERM \"$0\"", &server.child.id().to_string()])
        .stdin(Stdio::piped())
        .spawn()
        .expect("sh starts");
    let mut trigger = killer.stdin.take().expect("the shell's stdin");
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        let announced = lines.any(|l| l.is_ok_and(|l| l.starts_with("listening on ")));
        if announced {
            let _ = trigger.write_all(b"go\n");
        }
        announced
    });
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = server.child.try_wait().expect("waiting for tessera") {
            break status;
        }
        assert!(Instant::now() < deadline, "tessera did not stop within {WAIT:?}");
        std::thread::sleep(Duration::from_millis(5));
    };
    let _ = killer.kill();
    let _ = killer.wait();
    assert!(reader.join().unwrap(), "no `listening on` line");
    assert!(
        status.success(),
        "SIGTERM just after `listening on` must still be a graceful stop with exit status 0, \
         got {status}; stderr:\n{}",
        server.stderr_text()
    );
}

#[tokio::test]
async fn serve_keeps_its_data_in_tessera_data_by_default() {
    let dir = temp_dir();
    let mut command = tessera(&["serve", "--listen", "127.0.0.1:0"], &[]);
    command.current_dir(dir.path());
    let mut server = Server::spawn(command);
    assert_eq!(server.register("alice", PASSWORD).await.status(), 201);
    assert!(server.signal("TERM").success());
    let data = dir.path().join("tessera-data");
    assert!(data.join("tessera.db").is_file(), "no ./tessera-data/tessera.db");
    // A second start from the same directory reuses it.
    let mut command = tessera(&["serve", "--listen", "127.0.0.1:0"], &[]);
    command.current_dir(dir.path());
    let server = Server::spawn(command);
    assert_eq!(server.login("alice", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn environment_variables_overlay_the_configuration() {
    let dir = temp_dir();
    let server = Server::start(
        dir.path(),
        &[("TESSERA_LIMITS__IP_PER_MINUTE", "1"), ("TESSERA_COOKIE__SECURE", "false")],
    );
    assert_eq!(server.register("alice", PASSWORD).await.status(), 201);
    let first = server.login("alice", PASSWORD).await;
    assert_eq!(first.status(), 200);
    let cookie = find_set_cookie(first.headers(), "tessera_session");
    assert!(cookie.attr("secure").is_none(), "{cookie:?}");
    let second = server.login("alice", PASSWORD).await;
    assert!(second.headers().get("retry-after").is_some());
    assert_problem(second, 429, "rate_limited").await;
}

#[tokio::test]
async fn insecure_cookies_are_warned_about_at_start() {
    let dir = temp_dir();
    let mut server = Server::start(dir.path(), &[("TESSERA_COOKIE__SECURE", "false")]);
    server.healthy().await;
    assert!(server.signal("TERM").success());
    let stderr = server.stderr_text();
    let warning = stderr.lines().find(|l| l.contains("WARN") && l.contains("cookie.secure"));
    assert!(warning.is_some(), "a warning about cookie.secure = false:\n{stderr}");

    let mut server = Server::start(dir.path(), &[]);
    server.healthy().await;
    assert!(server.signal("TERM").success());
    let stderr = server.stderr_text();
    assert!(!stderr.contains("cookie.secure"), "no warning with secure cookies:\n{stderr}");
}

#[test]
fn a_bad_environment_value_stops_serve_naming_the_key() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    let output = run(
        tessera(
            &["serve", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            &[("TESSERA_SESSION__IDLE_TIMEOUT", "soon")],
        ),
        None,
    );
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("session.idle_timeout"), "stderr must name the key:\n{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("listening on"));
}

#[test]
fn an_unknown_key_in_the_config_file_stops_serve_naming_it() {
    let dir = temp_dir();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, "[session]\nidle_tmeout = \"10m\"\n").unwrap();
    let data_dir = dir.path().join("data");
    let output = run(
        tessera(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
            ],
            &[],
        ),
        None,
    );
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idle_tmeout"), "stderr must name the unknown key:\n{stderr}");
    assert!(stderr.contains("session.idle_tmeout"), "with its section:\n{stderr}");
}

#[tokio::test]
async fn user_add_creates_a_user_who_can_log_in_while_registration_is_closed() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    let output = run(
        tessera(
            &["user", "add", "Admin", "--data-dir", data_dir],
            &[("TESSERA_REGISTRATION__OPEN", "false")],
        ),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(output.status.success(), "{output:?}");

    let server = Server::start(
        dir.path(),
        &[("TESSERA_REGISTRATION__OPEN", "false"), ("TESSERA_COOKIE__SECURE", "false")],
    );
    assert_problem(server.register("mallory", PASSWORD).await, 403, "registration_closed").await;
    let login = server.login("admin", PASSWORD).await;
    let body = json_body(login, 200).await;
    assert_eq!(body["user"]["username"], "admin");

    // An existing name is refused.
    let output = run(
        tessera(&["user", "add", "ADMIN", "--data-dir", data_dir], &[]),
        Some(&format!("{OTHER_PASSWORD}\n")),
    );
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(server.login("admin", PASSWORD).await.status(), 200, "the password is unchanged");

    // A weak password is refused by `user add` too, naming the problem.
    let output =
        run(tessera(&["user", "add", "weak", "--data-dir", data_dir], &[]), Some("password1\n"));
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("password"), "{output:?}");
}

/// `tessera user add alice` with [`PASSWORD`] into `data_dir`.
fn add_alice(data_dir: &str) {
    let output = run(
        tessera(&["user", "add", "alice", "--data-dir", data_dir], &[]),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(output.status.success(), "{output:?}");
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn bench_tokens_prints_distinct_tokens_the_server_accepts_until_the_login_is_revoked() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    add_alice(data_dir);
    let listen = format!("127.0.0.1:{}", free_port());
    let public_url = format!("http://{listen}");
    let env = [("TESSERA_SERVER__PUBLIC_URL", public_url.as_str())];

    let output = run(
        tessera(&["bench", "tokens", "alice", "--count", "40", "--data-dir", data_dir], &env),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(output.status.success(), "{output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    let tokens: Vec<&str> = stdout.lines().collect();
    assert_eq!(tokens.len(), 40);
    let distinct: std::collections::HashSet<&&str> = tokens.iter().collect();
    assert_eq!(distinct.len(), 40, "every token is a different one");

    let server = Server::spawn(tessera(
        &["serve", "--listen", &listen, "--data-dir", data_dir],
        &[env[0], ("TESSERA_COOKIE__SECURE", "false")],
    ));
    for token in [tokens[0], tokens[17], tokens[39]] {
        let me = server.client.get(server.url("/v1/me")).bearer_auth(token).send().await.unwrap();
        let body = json_body(me, 200).await;
        assert_eq!(body["username"], "alice");
        assert_eq!(body["auth_method"], "token");
    }
    // They are one login: revoking it with any of them ends all of them.
    let revoked = server
        .client
        .post(server.url("/v1/token/revoke"))
        .json(&json!({"token": tokens[5]}))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    for token in [tokens[0], tokens[39]] {
        let me = server.client.get(server.url("/v1/me")).bearer_auth(token).send().await.unwrap();
        assert_eq!(me.status(), 401);
    }
}

#[test]
fn bench_tokens_refuses_a_wrong_password_and_a_zero_count() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    add_alice(data_dir);
    let output = run(
        tessera(&["bench", "tokens", "alice", "--data-dir", data_dir], &[]),
        Some(&format!("{OTHER_PASSWORD}\n")),
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(output.stdout.is_empty(), "no token for a wrong password");
    assert!(String::from_utf8_lossy(&output.stderr).contains("alice"), "{output:?}");
    let output = run(
        tessera(&["bench", "tokens", "alice", "--count", "0", "--data-dir", data_dir], &[]),
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--count"), "{output:?}");
}

#[test]
fn bench_primitives_reports_the_verify_rate_and_the_hash_time() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    let output = run(
        tessera(
            &["bench", "primitives", "--json", "--seconds", "0.2", "--data-dir", data_dir],
            &[],
        ),
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["algorithm"], "EdDSA");
    assert!(report["verifications_per_second"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["argon2_hash_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["password_workers"].as_u64().unwrap() >= 1, "{report}");

    let output = run(
        tessera(&["bench", "primitives", "--algorithm", "RS256", "--seconds", "0.2"], &[]),
        None,
    );
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("RS256: "), "{output:?}");

    for bad in [["--algorithm", "none"], ["--seconds", "0"]] {
        let output = run(tessera(&["bench", "primitives", bad[0], bad[1]], &[]), None);
        assert!(!output.status.success(), "{bad:?}: {output:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains(bad[0]), "{output:?}");
    }
}

#[test]
fn bench_measures_sessions_and_tokens_at_each_user_count_and_draws_the_chart() {
    let dir = temp_dir();
    let svg = dir.path().join("chart.svg");
    let svg_arg = svg.to_str().unwrap();
    let output = run(
        tessera(
            &[
                "bench",
                "--users",
                "40,300",
                "--duration",
                "1",
                "--connections",
                "4",
                "--svg",
                svg_arg,
                "--json",
            ],
            &[("TMPDIR", dir.path().to_str().unwrap())],
        ),
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let levels: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let levels = levels.as_array().unwrap();
    assert_eq!(levels.len(), 2);
    for (level, users) in levels.iter().zip([40, 300]) {
        assert_eq!(level["users"], users);
        for run in ["session_first", "session", "token_cached", "token_new"] {
            assert!(level[run]["per_second"].as_f64().unwrap() > 0.0, "{run}: {level}");
            // The store's own threads are counted apart from serving (zero is fine).
            assert!(level[run]["store_cpu_us"].as_f64().unwrap() >= 0.0, "{run}: {level}");
        }
        assert!(level["logins_per_second"].as_f64().unwrap() > 0.0, "{level}");
        assert!(level["db_bytes_per_user"].as_f64().unwrap() > 0.0, "{level}");
    }
    let chart = std::fs::read_to_string(&svg).unwrap();
    assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"), "{chart}");
    assert!(chart.contains("300 users") && !chart.contains("<script"), "{chart}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("tessera-bench-"))
        .collect();
    assert!(leftovers.is_empty(), "the scratch data directories are removed: {leftovers:?}");

    let output = run(tessera(&["bench", "--users", "0"], &[]), None);
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--users"), "{output:?}");

    // It measures the embedded store only, and says so rather than measuring something else.
    let output = run(
        tessera(
            &["bench", "--users", "10", "--duration", "1"],
            &[("TESSERA_STORE__SESSIONS", "memory")],
        ),
        None,
    );
    assert!(!output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("embedded SQLite"), "{output:?}");
}

#[test]
fn config_check_prints_the_effective_configuration_and_names_a_bad_key() {
    let dir = temp_dir();
    let data_dir = dir.path().to_str().unwrap();
    let output = run(
        tessera(
            &["config", "check", "--data-dir", data_dir, "--listen", "127.0.0.1:9999"],
            &[("TESSERA_SESSION__IDLE_TIMEOUT", "30m")],
        ),
        None,
    );
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8_lossy(&output.stdout);
    for line in ["server.listen = 127.0.0.1:9999", "session.idle_timeout = 30m"] {
        assert!(text.lines().any(|l| l.trim() == line), "no `{line}` in:\n{text}");
    }
    assert!(!dir.path().join("tessera.db").exists(), "checking must not create the database");

    let output = run(
        tessera(
            &["config", "check", "--data-dir", data_dir],
            &[("TESSERA_SESSION__IDLE_TIMEOUT", "banana")],
        ),
        None,
    );
    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("idle_timeout"), "the bad key is not named:\n{stderr}");
    assert!(output.stdout.is_empty(), "{output:?}");
}
