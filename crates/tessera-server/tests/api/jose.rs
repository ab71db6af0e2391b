//! An independent JOSE implementation (PyJWT) verifies our access tokens from the JWKS alone
//! (or, for HS256, the shared secret): no code of ours is involved in the check.
//!
//! Python comes from `TESSERA_TEST_PYTHON` (set by `scripts/test`, which installs PyJWT into
//! `target/test-venv`), else `python3`.

use std::process::Command;

use serde_json::Value;

use crate::helpers::*;
use crate::token::HS256_SECRET;

const VERIFY: &str = r#"
import json, sys
try:
    import jwt
except ImportError as e:
    print("PyJWT is not importable: %s" % e, file=sys.stderr)
    sys.exit(3)
mode, token, issuer, alg = sys.argv[1:5]
if mode == "jwks":
    key = jwt.PyJWKClient(issuer + "/.well-known/jwks.json").get_signing_key_from_jwt(token).key
else:
    key = sys.argv[5].encode()
claims = jwt.decode(token, key, algorithms=[alg], audience="tessera", issuer=issuer)
print(json.dumps(claims))
"#;

/// Runs the PyJWT check; `Ok(claims)` or `Err(stderr)` when PyJWT refuses the token.
async fn pyjwt(args: Vec<String>) -> Result<Value, String> {
    let python = std::env::var("TESSERA_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let run = {
        let python = python.clone();
        move || {
            let mut command = Command::new(&python);
            command.arg("-c").arg(VERIFY).args(&args);
            run_command(command, None, WAIT)
        }
    };
    let output = tokio::task::spawn_blocking(run).await.expect("the python runner");
    let output = output.unwrap_or_else(|e| {
        panic!(
            "cannot run {python} ({e}): the JOSE cross-check needs Python with PyJWT; \
             run scripts/test (it installs PyJWT into target/test-venv and sets \
             TESSERA_TEST_PYTHON)"
        )
    });
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    if output.status.code() == Some(3) {
        panic!(
            "{python} has no PyJWT ({}): run scripts/test, which installs PyJWT into \
             target/test-venv and sets TESSERA_TEST_PYTHON",
            stderr.trim()
        );
    }
    if !output.status.success() {
        return Err(stderr);
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    Ok(serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("PyJWT printed no claims ({e}): {stdout} {stderr}")))
}

async fn check_with_jwks(algorithm: &str) {
    let app = spawn_app_with(|c| c.token.algorithm = Some(algorithm.into())).await;
    let user = app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let args = vec!["jwks".into(), tokens.access.clone(), app.base.clone(), algorithm.into()];
    let claims =
        pyjwt(args).await.unwrap_or_else(|e| panic!("PyJWT refused our {algorithm} token: {e}"));
    assert_eq!(claims, jwt_claims(&tokens.access), "PyJWT reads the same claims");
    assert_eq!(claims["sub"], user.id.as_str());
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["sid"], tokens.sid.as_str());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_eddsa_tokens_from_the_jwks() {
    check_with_jwks("EdDSA").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_es256_tokens_from_the_jwks() {
    check_with_jwks("ES256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_rs256_tokens_from_the_jwks() {
    check_with_jwks("RS256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyjwt_verifies_hs256_tokens_with_the_shared_secret() {
    let app = spawn_app_with(|c| {
        c.token.algorithm = Some("HS256".into());
        c.token.secret = Some(HS256_SECRET.into());
    })
    .await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let args = vec![
        "secret".into(),
        tokens.access.clone(),
        app.base.clone(),
        "HS256".into(),
        HS256_SECRET.into(),
    ];
    let claims = pyjwt(args).await.unwrap_or_else(|e| panic!("PyJWT refused our token: {e}"));
    assert_eq!(claims, jwt_claims(&tokens.access));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pyjwt_check_does_refuse_a_tampered_token() {
    // Guards the cross-check itself: it must fail when the signature does not match.
    let app = spawn_app().await;
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let mut claims = jwt_claims(&tokens.access);
    claims["username"] = "mallory".into();
    let segments: Vec<&str> = tokens.access.split('.').collect();
    let tampered = format!("{}.{}.{}", segments[0], b64url(claims.to_string()), segments[2]);
    let args = vec!["jwks".into(), tampered, app.base.clone(), "EdDSA".into()];
    let error = pyjwt(args).await.expect_err("PyJWT must refuse a tampered token");
    assert!(error.contains("Signature"), "{error}");
}
