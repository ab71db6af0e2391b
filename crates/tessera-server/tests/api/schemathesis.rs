//! Schemathesis (property-based API testing from the OpenAPI document) against a real server:
//! every operation of `GET /openapi.json` is exercised with generated valid and invalid
//! requests, authenticated (a bearer token, a session cookie and its CSRF token, so protected
//! operations are reached beyond 401), and every answer must be documented: no 5xx, a
//! documented status, content type, headers and body schema.
//!
//! Schemathesis comes from `TESSERA_TEST_PYTHON` (set by `scripts/test`, which installs it
//! into `target/test-venv`). Bounded: a fixed number of examples per operation and a wall-clock
//! limit on each run. `TESSERA_SCHEMATHESIS_SEED` replays a run (the seed is in the output of
//! a failure).

use std::process::Command;
use std::time::Duration;

use crate::helpers::*;

/// The checks every response must pass.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance";

/// The operations that end the caller's sessions, run last so they do not cut the others
/// short.
const LOGOUTS: &str = "^(sessionLogout|logoutEverywhere)$";

/// Bound on one schemathesis run (generation is bounded by the example count; this catches a
/// hang).
const RUN_LIMIT: Duration = Duration::from_secs(240);

/// Credentials of a fresh login of `fuzzer`: a bearer token, and a session cookie with its
/// CSRF token, as headers.
struct Credentials {
    bearer: Vec<String>,
    cookie: Vec<String>,
}

async fn credentials(app: &TestApp) -> Credentials {
    let login = app.session_login("fuzzer", PASSWORD).await;
    let tokens = app.token_login("fuzzer", PASSWORD).await;
    Credentials {
        bearer: vec![format!("Authorization: Bearer {}", tokens.access)],
        cookie: vec![format!("Cookie: {}", login.cookie), format!("X-CSRF-Token: {}", login.csrf)],
    }
}

/// Runs schemathesis against `app` with `filter` (arguments selecting operations) and the
/// `headers`; panics with its output unless every check passed.
async fn run(app: &TestApp, filter: &[&str], headers: Vec<String>, examples: u32) {
    let python = std::env::var("TESSERA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let schema = app.url("/openapi.json");
    let dir = tempfile::tempdir().unwrap();
    let command = || {
        let mut command = Command::new(&python);
        command
            .args(["-m", "schemathesis.cli", "run", &schema, "--checks", CHECKS, "--workers", "2"])
            .args(["--max-examples", &examples.to_string()])
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--generation-with-security-parameters", "false"])
            .args(["--generation-database", "none", "--request-timeout", "10", "--no-color"])
            .args(["--suppress-health-check", "all", "--warnings", "off"])
            .args(filter);
        if let Ok(seed) = std::env::var("TESSERA_SCHEMATHESIS_SEED") {
            command.args(["--seed", &seed]);
        }
        for header in &headers {
            command.args(["--header", header]);
        }
        // Nothing of the caller's: no proxies, no config file of theirs.
        command.env_remove("HTTP_PROXY").env_remove("HTTPS_PROXY").env_remove("ALL_PROXY");
        command.env("NO_PROXY", "127.0.0.1").env_remove("SCHEMATHESIS_HOOKS");
        command.current_dir(dir.path());
        command
    };
    let mut output = run_schemathesis(&python, command()).await;
    if !output.status.success() && crashed_without_failures(&output.stdout) {
        // Schemathesis itself crashed while generating cases (seen once: CPython 3.11's "AST
        // constructor recursion depth mismatch" inside hypothesis, in the coverage phase), and
        // every answer it did get was documented. Once more, with a new seed; a crash again,
        // or any failure, fails the test.
        eprintln!(
            "schemathesis crashed without finding a failure; running it once more:\n{}",
            String::from_utf8_lossy(&output.stdout)
        );
        output = run_schemathesis(&python, command()).await;
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if stderr.contains("No module named schemathesis") {
        panic!(
            "{python} has no schemathesis: run scripts/test, which installs it into \
             target/test-venv and sets TESSERA_TEST_PYTHON"
        );
    }
    assert!(
        output.status.success(),
        "schemathesis found responses the OpenAPI document does not describe ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // A run that tested nothing must not pass silently.
    assert!(stdout.contains(" passed"), "schemathesis ran no test case:\n{stdout}\n{stderr}");
}

async fn run_schemathesis(python: &str, command: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || run_command(command, None, RUN_LIMIT))
        .await
        .expect("the schemathesis runner")
        .unwrap_or_else(|e| {
            panic!("cannot run {python} ({e}): run scripts/test, which installs schemathesis")
        })
}

/// Whether a failed run's output shows only errors of schemathesis itself: a runtime error,
/// and no failure found in the answers (no failures section, no failed test case).
fn crashed_without_failures(stdout: &[u8]) -> bool {
    let stdout = String::from_utf8_lossy(stdout);
    let failed_cases = stdout
        .lines()
        .skip_while(|line| line.trim() != "Test cases:")
        .nth(1)
        .is_some_and(|counts| counts.contains("fail"));
    stdout.contains("Runtime Error")
        && !stdout.contains("FAILURES")
        && !stdout.contains("Failures:")
        && !failed_cases
}

#[cfg(test)]
mod crash_detection {
    use super::crashed_without_failures;

    #[test]
    fn only_a_crash_without_failures_is_retried() {
        let crash = "=== ERRORS ===\nRuntime Error\n\nErrors:\n  Runtime Error: 1\n\nTest cases:\n  480 generated, 480 passed\n";
        assert!(crashed_without_failures(crash.as_bytes()));
        let failure = "=== FAILURES ===\nTest cases:\n  20 generated, 1 found 1 unique failures\n";
        assert!(!crashed_without_failures(failure.as_bytes()));
        let both = format!("{crash}=== FAILURES ===\n");
        assert!(!crashed_without_failures(both.as_bytes()));
        let counted = "Runtime Error\nTest cases:\n  9 generated, 8 passed, 1 failed\n";
        assert!(!crashed_without_failures(counted.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_answers_as_the_openapi_document_says() {
    // Generous limits: a flood of 429s would hide what the operations answer.
    let app = spawn_app_with(|raw| {
        raw.limits.ip_per_minute = Some(1_000_000);
        raw.limits.registrations_per_minute = Some(1_000_000);
        raw.limits.max_failures = Some(1_000_000);
    })
    .await;
    app.register("fuzzer", PASSWORD).await;

    // The server prefers a bearer token: one run with the token, one with the cookie, each
    // with a login of its own (a run may end other logins: a password change, or a session
    // revoked by id from a listing).
    let others = ["--exclude-operation-id-regex", LOGOUTS];
    run(&app, &others, credentials(&app).await.bearer, 25).await;
    run(&app, &others, credentials(&app).await.cookie, 25).await;

    // The logouts with a fresh session and token (the first success ends them; what follows
    // must still be documented 401s).
    let Credentials { mut bearer, cookie } = credentials(&app).await;
    bearer.extend(cookie);
    run(&app, &["--include-operation-id-regex", LOGOUTS], bearer, 10).await;

    // Protected operations were reached beyond 401, with the cookie and with the token.
    let metrics = app.metrics().await;
    assert!(
        metric_sample(&metrics, "tessera_authentications_total{method=\"session\",outcome=\"ok\"}")
            .is_some_and(|n| n >= 5.0)
            && metric_sample(
                &metrics,
                "tessera_authentications_total{method=\"token\",outcome=\"ok\"}"
            )
            .is_some_and(|n| n >= 5.0),
        "no authenticated request reached the engine:\n{metrics}"
    );
}
