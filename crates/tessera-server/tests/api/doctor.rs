//! `tessera doctor`, with the real binary: a sound configuration exits 0 with every check OK;
//! each kind of problem gives its FAIL (exit 1) or WARN line with a fix; `--json` has the
//! documented shape.

use std::path::Path;

use serde_json::Value;
use tessera::{Clock as _, SystemClock, Timestamp};

use crate::cli::tessera;
use crate::helpers::*;

/// Sound argon2 cost (the test default is cheap, which the doctor rightly warns about).
const OWASP_COST: [(&str, &str); 2] =
    [("TESSERA_PASSWORD__MEMORY_KIB", "19456"), ("TESSERA_PASSWORD__ITERATIONS", "2")];

struct Outcome {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// The line of check `name`.
    fn line(&self, name: &str) -> &str {
        let prefix = format!(" {name}: ");
        self.stdout
            .lines()
            .find(|l| l.get(4..).is_some_and(|rest| rest.starts_with(&prefix)))
            .unwrap_or_else(|| panic!("no `{name}` line:\n{}", self.stdout))
    }
}

fn doctor(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut args = vec!["doctor", "--data-dir", data_dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    let mut env = env.to_vec();
    env.extend_from_slice(&OWASP_COST);
    let output = run_command(tessera(&args, &env), None, WAIT).expect("tessera doctor runs");
    Outcome {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new().prefix("tessera-doctor-").tempdir().unwrap()
}

/// A self-signed certificate for localhost and 127.0.0.1 valid from `from` to `until` (days from today), and
/// its key, as PEM files in `dir`.
fn certificate(dir: &Path, name: &str, from: i64, until: i64) -> (String, String) {
    let day = |offset: i64| {
        let at = Timestamp::from_unix_millis(SystemClock.now().unix_millis() + offset * 86_400_000);
        let text = at.to_rfc3339();
        let n = |r: std::ops::Range<usize>| text[r].parse::<i32>().unwrap();
        rcgen::date_time_ymd(n(0..4), n(5..7) as u8, n(8..10) as u8)
    };
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    params.not_before = day(from);
    params.not_after = day(until);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.join(format!("{name}-cert.pem"));
    let key_path = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (cert_path.to_str().unwrap().to_owned(), key_path.to_str().unwrap().to_owned())
}

#[test]
fn a_sound_configuration_passes_every_check() {
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (cert, key) = certificate(dir.path(), "good", -1, 200);
    let tls = [("TESSERA_TLS__CERT", cert.as_str()), ("TESSERA_TLS__KEY", key.as_str())];
    let outcome = doctor(&data, &[], &tls);
    assert_eq!(outcome.code, Some(0), "{}\n{}", outcome.stdout, outcome.stderr);
    for line in outcome.stdout.lines().filter(|l| !l.contains(" checks: ")) {
        assert!(line.starts_with("OK "), "{line}\n{}", outcome.stdout);
    }
    assert!(outcome.line("tls").contains("the key matches"), "{}", outcome.stdout);
    assert!(outcome.line("tls_names").contains("covers 127.0.0.1"), "{}", outcome.stdout);
    assert!(outcome.stdout.contains("0 failed, 0 warning(s)"), "{}", outcome.stdout);
    assert!(!data.exists(), "the doctor creates nothing");

    // A data directory in use: keys, secret and database are checked where they are.
    let mut server = TesseraProcess::start(tessera(
        &["serve", "--listen", "127.0.0.1:0", "--data-dir", data.to_str().unwrap()],
        &[],
    ));
    assert!(server.terminate().success());
    let outcome = doctor(&data, &[], &[]);
    assert_eq!(outcome.code, Some(0), "{}\n{}", outcome.stdout, outcome.stderr);
    assert!(outcome.line("keys").contains("is 0 day(s) old"), "{}", outcome.stdout);
    assert!(outcome.line("sqlite").contains("opens and answers"), "{}", outcome.stdout);
    assert!(outcome.line("data_dir").starts_with("OK "), "{}", outcome.stdout);
}

#[test]
fn an_insecure_cookie_on_a_public_url_fails() {
    let dir = temp_dir();
    let outcome = doctor(
        dir.path(),
        &[],
        &[
            ("TESSERA_COOKIE__SECURE", "false"),
            ("TESSERA_SERVER__PUBLIC_URL", "http://auth.example.com"),
            ("TESSERA_SERVER__LISTEN", "0.0.0.0:8080"),
        ],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let cookie = outcome.line("cookie");
    assert!(
        cookie.starts_with("FAIL") && cookie.contains("fix: set cookie.secure = true"),
        "{cookie}"
    );
    assert!(outcome.line("public_url").starts_with("WARN"), "{}", outcome.stdout);
    assert!(outcome.line("listen").starts_with("WARN"), "{}", outcome.stdout);
    assert!(outcome.line("registration").starts_with("WARN"), "{}", outcome.stdout);
    assert!(outcome.stderr.contains("check(s) failed"), "{}", outcome.stderr);

    // The same on localhost is only a warning.
    let outcome = doctor(
        dir.path(),
        &[],
        &[
            ("TESSERA_COOKIE__SECURE", "false"),
            ("TESSERA_SERVER__PUBLIC_URL", "http://localhost:8080"),
        ],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stdout);
    assert!(outcome.line("cookie").starts_with("WARN"), "{}", outcome.stdout);
}

#[test]
fn tls_problems_fail_and_an_expiring_certificate_warns() {
    let dir = temp_dir();
    let (cert, key) = certificate(dir.path(), "a", -1, 200);
    let missing = dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();
    let outcome = doctor(
        dir.path(),
        &[],
        &[("TESSERA_TLS__CERT", missing), ("TESSERA_TLS__KEY", key.as_str())],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let tls = outcome.line("tls");
    assert!(tls.starts_with("FAIL") && tls.contains(missing), "{tls}");

    // A certificate for other names than the public host's.
    let outcome = doctor(
        dir.path(),
        &[],
        &[
            ("TESSERA_TLS__CERT", cert.as_str()),
            ("TESSERA_TLS__KEY", key.as_str()),
            ("TESSERA_SERVER__PUBLIC_URL", "https://auth.example.com"),
        ],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stdout);
    let names = outcome.line("tls_names");
    assert!(
        names.starts_with("WARN")
            && names.contains("localhost, 127.0.0.1, not for auth.example.com"),
        "{names}"
    );

    let (_, other_key) = certificate(dir.path(), "b", -1, 200);
    let outcome = doctor(
        dir.path(),
        &[],
        &[("TESSERA_TLS__CERT", cert.as_str()), ("TESSERA_TLS__KEY", other_key.as_str())],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    assert!(
        outcome.line("tls").starts_with("FAIL"),
        "a key of another certificate:\n{}",
        outcome.stdout
    );

    let (soon, soon_key) = certificate(dir.path(), "soon", -100, 10);
    let outcome = doctor(
        dir.path(),
        &[],
        &[("TESSERA_TLS__CERT", soon.as_str()), ("TESSERA_TLS__KEY", soon_key.as_str())],
    );
    assert_eq!(outcome.code, Some(0), "{}", outcome.stdout);
    let tls = outcome.line("tls");
    assert!(tls.starts_with("WARN") && tls.contains("expires in"), "{tls}");

    let (old, old_key) = certificate(dir.path(), "old", -100, -2);
    let outcome = doctor(
        dir.path(),
        &[],
        &[("TESSERA_TLS__CERT", old.as_str()), ("TESSERA_TLS__KEY", old_key.as_str())],
    );
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    assert!(outcome.line("tls").contains("has expired"), "{}", outcome.stdout);
}

#[test]
fn an_unreachable_postgres_fails_within_its_timeout() {
    let dir = temp_dir();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("postgres://tessera:hunter2-secret@127.0.0.1:{port}/tessera");
    let outcome = doctor(
        dir.path(),
        &["--json"],
        &[
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__SESSIONS", "postgres"),
            ("TESSERA_STORE__URL", url.as_str()),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
        ],
    );
    assert_eq!(outcome.code, Some(1), "{}\n{}", outcome.stdout, outcome.stderr);
    assert!(!outcome.stdout.contains("hunter2"), "the password leaked:\n{}", outcome.stdout);
    let report: Value = serde_json::from_str(&outcome.stdout).expect("one JSON object");
    assert_eq!(report["ok"], false);
    assert_eq!(report["failures"], 1, "{report:#}");
    let checks = report["checks"].as_array().expect("checks");
    let postgres = checks.iter().find(|c| c["check"] == "postgres").expect("a postgres check");
    assert_eq!(postgres["status"], "fail");
    assert!(postgres["fix"].as_str().is_some_and(|f| f.contains("store.url")), "{postgres}");
    for check in checks {
        assert!(check["check"].is_string() && check["message"].is_string(), "{check}");
        assert!(["ok", "warn", "fail"].contains(&check["status"].as_str().unwrap()), "{check}");
        assert_eq!(check["fix"].is_string(), check["status"] != "ok", "{check}");
    }
    assert!(report["warnings"].is_u64());
}

#[test]
fn a_reachable_postgres_passes() {
    let url = std::env::var("TESSERA_TEST_POSTGRES_URL").unwrap_or_else(|_| {
        panic!(
            "this test needs TESSERA_TEST_POSTGRES_URL: run it with scripts/test, which starts a \
             PostgreSQL server and sets it"
        )
    });
    let dir = temp_dir();
    let outcome = doctor(
        dir.path(),
        &[],
        &[
            ("TESSERA_STORE__USERS", "postgres"),
            ("TESSERA_STORE__URL", url.as_str()),
            ("TESSERA_STORE__KEY_ENCRYPTION_KEY", "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="),
        ],
    );
    assert_eq!(outcome.code, Some(0), "{}\n{}", outcome.stdout, outcome.stderr);
    assert!(outcome.line("postgres").contains("answers: PostgreSQL"), "{}", outcome.stdout);
}

#[test]
fn loose_permissions_old_keys_weak_argon2_and_bad_config_are_reported() {
    use std::os::unix::fs::PermissionsExt;

    let dir = temp_dir();
    let data = dir.path();
    let keys = data.join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let now = SystemClock.now().unix_millis();
    let day = 86_400_000;
    let index = serde_json::json!({"keys": [
        {"kid": "old-signing", "alg": "EdDSA", "created_at": now - 200 * day, "retired_at": null},
        {"kid": "older", "alg": "ES256", "created_at": now - 400 * day, "retired_at": now - 200 * day},
    ]});
    std::fs::write(keys.join("keys.json"), index.to_string()).unwrap();
    std::fs::set_permissions(keys.join("keys.json"), std::fs::Permissions::from_mode(0o600))
        .unwrap();
    std::fs::write(data.join("secret.key"), [7u8; 32]).unwrap();
    std::fs::set_permissions(data.join("secret.key"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    std::fs::set_permissions(data, std::fs::Permissions::from_mode(0o700)).unwrap();

    let outcome = doctor(data, &[], &[]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let data_dir = outcome.line("data_dir");
    assert!(data_dir.starts_with("FAIL") && data_dir.contains("secret.key"), "{data_dir}");
    let keys_line = outcome.line("keys");
    assert!(keys_line.starts_with("WARN"), "{keys_line}");
    assert!(
        keys_line.contains("old-signing") && keys_line.contains("200 day(s) old"),
        "{keys_line}"
    );
    assert!(keys_line.contains("older retired 200 day(s) ago"), "{keys_line}");

    // Cheap argon2 is a warning; a configuration that does not load is a failure of its own.
    let output =
        run_command(tessera(&["doctor", "--data-dir", data.to_str().unwrap()], &[]), None, WAIT)
            .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("WARN password: argon2id m=64 KiB")), "{stdout}");

    let outcome = doctor(data, &[], &[("TESSERA_SESSION__IDLE_TIMEOUT", "soon")]);
    assert_eq!(outcome.code, Some(1), "{}", outcome.stdout);
    let config = outcome.line("config");
    assert!(config.starts_with("FAIL") && config.contains("idle_timeout"), "{config}");
}

#[test]
fn doctor_help_has_an_example_and_the_exit_status() {
    let output = run_command(tessera(&["doctor", "--help"], &[]), None, WAIT).unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for needle in ["Example: tessera doctor", "Exit status", "--json", "--config", "--data-dir"] {
        assert!(help.contains(needle), "{needle} missing:\n{help}");
    }
}
