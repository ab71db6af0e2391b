//! An attack corpus against access-token verification: every case is its own test and asserts
//! the exact answer of `GET /v1/me` with `Authorization: Bearer <token>` (a 401 problem with the
//! right code, never a 5xx, never a 200 for a forgery).
//!
//! Most cases need a token that is *validly signed* but wrong in form or content, so that only
//! the check under test can refuse it. The tests therefore read the server's private key from
//! its data directory (`keys/keys.json` and the PKCS#8 file it names) and sign whatever header
//! and claims they like. Signing goes through the aws-lc-rs signers that rustls exposes (a
//! dependency of the server already); foreign keys come from `tessera::token::keys`.
//! Every such test first checks that the harness's own signature over the unchanged token is
//! accepted, so a refusal is due to the change alone.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use tessera::token::keys::{Algorithm, KeySet, SigningKey};
use tokio::net::TcpListener;
use tokio_rustls::rustls::SignatureScheme;
use tokio_rustls::rustls::crypto::aws_lc_rs::sign::any_supported_type;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::rustls::sign::Signer;

use crate::helpers::*;

// --- the harness -------------------------------------------------------------------------------

/// A private key that signs JWS compact tokens with any header and claims.
#[derive(Debug)]
struct JwsKey {
    alg: Algorithm,
    kid: String,
    /// The public JWK as the JWKS would publish it.
    jwk: Value,
    /// The SubjectPublicKeyInfo DER of the public key (from rustls, to check ours against).
    spki: Vec<u8>,
    signer: Box<dyn Signer>,
}

impl JwsKey {
    fn from_pkcs8(alg: Algorithm, pkcs8: Vec<u8>) -> JwsKey {
        let engine_key = SigningKey::from_pkcs8(alg, &pkcs8).expect("a usable PKCS#8 key");
        let kid = engine_key.public().kid().to_owned();
        let set = KeySet::single(engine_key);
        let jwks: Value = serde_json::from_str(set.jwks_json()).expect("a JWKS");
        let jwk = jwks["keys"][0].clone();
        let scheme = match alg {
            Algorithm::EdDSA => SignatureScheme::ED25519,
            Algorithm::ES256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            Algorithm::RS256 => SignatureScheme::RSA_PKCS1_SHA256,
            Algorithm::HS256 => panic!("HS256 has no PKCS#8 key"),
        };
        let key = any_supported_type(&PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pkcs8)))
            .expect("rustls reads the key");
        let spki = key.public_key().expect("an SPKI").as_ref().to_vec();
        let signer = key.choose_scheme(&[scheme]).expect("the key signs with its scheme");
        JwsKey { alg, kid, jwk, spki, signer }
    }

    /// A fresh key nobody trusts.
    fn generate(alg: Algorithm) -> JwsKey {
        let (_, pkcs8) = SigningKey::generate(alg).expect("key generation");
        JwsKey::from_pkcs8(alg, pkcs8)
    }

    /// The JWS signature (ECDSA as the fixed-width `r || s` of RFC 7518 §3.4).
    fn signature(&self, input: &[u8]) -> Vec<u8> {
        let signature = self.signer.sign(input).expect("signing");
        if self.alg == Algorithm::ES256 { ecdsa_fixed(&signature) } else { signature }
    }

    /// Signs the two segments exactly as written (whatever their encoding).
    fn sign_segments(&self, header_b64: &str, payload_b64: &str) -> String {
        let input = format!("{header_b64}.{payload_b64}");
        let signature = self.signature(input.as_bytes());
        format!("{input}.{}", b64url(signature))
    }

    /// Signs two JSON texts as written (duplicate members and odd forms survive).
    fn sign_raw(&self, header: &str, claims: &str) -> String {
        self.sign_segments(&b64url(header), &b64url(claims))
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        self.sign_raw(&header.to_string(), &claims.to_string())
    }
}

/// A DER ECDSA signature (`SEQUENCE { r INTEGER, s INTEGER }`) as P-256 `r || s`.
fn ecdsa_fixed(der: &[u8]) -> Vec<u8> {
    assert_eq!(der[0], 0x30, "a DER sequence");
    let mut rest = &der[2..];
    let mut fixed = Vec::with_capacity(64);
    for _ in 0..2 {
        assert_eq!(rest[0], 0x02, "a DER integer");
        let len = usize::from(rest[1]);
        let int = &rest[2..2 + len];
        let int = &int[int.len().saturating_sub(32)..];
        fixed.extend(vec![0u8; 32 - int.len()]);
        fixed.extend_from_slice(int);
        rest = &rest[2 + len..];
    }
    fixed
}

/// The server's active signing key, read from its data directory.
fn server_key(data_dir: &Path) -> JwsKey {
    let keys = data_dir.join("keys");
    let index: Value = serde_json::from_slice(&std::fs::read(keys.join("keys.json")).unwrap())
        .expect("keys.json is JSON");
    let active = index["keys"]
        .as_array()
        .expect("a keys array")
        .iter()
        .find(|entry| entry["retired_at"].is_null())
        .unwrap_or_else(|| panic!("no active key in {index}"));
    let alg: Algorithm = serde_json::from_value(active["alg"].clone()).expect("an algorithm");
    let kid = active["kid"].as_str().expect("a kid");
    let stem = match alg {
        Algorithm::EdDSA => "ed25519",
        Algorithm::ES256 => "es256",
        Algorithm::RS256 => "rs256",
        Algorithm::HS256 => panic!("HS256 keys are not files"),
    };
    let pkcs8 = std::fs::read(keys.join(format!("{stem}-{kid}.pk8"))).expect("the key file");
    let key = JwsKey::from_pkcs8(alg, pkcs8);
    assert_eq!(key.kid, kid, "the key file holds the indexed key");
    key
}

/// A server whose signing key the test holds, with alice logged in by token.
#[derive(Debug)]
struct Target {
    app: TestApp,
    /// The server's own signing key.
    key: JwsKey,
    /// Alice's genuine access token, its header and claims.
    token: String,
    refresh: String,
    header: Value,
    claims: Value,
}

impl Target {
    /// Signs the genuine header and claims after `edit` with the server's key.
    fn sign(&self, edit: impl FnOnce(&mut Value, &mut Value)) -> String {
        let (mut header, mut claims) = (self.header.clone(), self.claims.clone());
        edit(&mut header, &mut claims);
        self.key.sign(&header, &claims)
    }

    fn sign_claims(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.sign(|_, claims| edit(claims))
    }

    fn sign_header(&self, edit: impl FnOnce(&mut Value)) -> String {
        self.sign(|header, _| edit(header))
    }

    /// The genuine claims as JSON text with `member` (`"name":value`) appended, so members can
    /// be duplicated.
    fn claims_with(&self, member: &str) -> String {
        let text = self.claims.to_string();
        format!("{},{member}}}", &text[..text.len() - 1])
    }

    /// The genuine header as JSON text with `member` appended.
    fn header_with(&self, member: &str) -> String {
        let text = self.header.to_string();
        format!("{},{member}}}", &text[..text.len() - 1])
    }

    async fn rejected(&self, token: &str, code: &str) {
        assert_rejected(&self.app, token, code).await;
    }

    async fn accepted(&self, token: &str) {
        let me = json_body(self.app.me_bearer(token).await, 200).await;
        assert_eq!(me["username"], "alice", "{me}");
        assert_eq!(me["auth_method"], "token", "{me}");
    }
}

/// An EdDSA (default) server.
async fn target() -> Target {
    target_with(Algorithm::EdDSA).await
}

async fn target_with(alg: Algorithm) -> Target {
    let dir = tempfile::Builder::new().prefix("tessera-test-").tempdir().expect("a temp dir");
    let data_dir = dir.path().to_owned();
    let app = spawn_app_in(dir, None, |raw| {
        cheap_passwords(raw);
        raw.token.algorithm = Some(alg.name().into());
    })
    .await;
    let key = server_key(&data_dir);
    assert_eq!(key.alg, alg);
    app.user("alice").await;
    let tokens = app.token_login("alice", PASSWORD).await;
    let (header, claims) = (jwt_header(&tokens.access), jwt_claims(&tokens.access));
    assert_eq!(header["kid"], key.kid.as_str(), "the server signs with the key on disk");
    let target = Target { app, key, token: tokens.access, refresh: tokens.refresh, header, claims };
    // The control: the harness's signature over the unchanged token is accepted.
    target.accepted(&target.sign(|_, _| {})).await;
    target
}

/// Asserts a 401 problem with `code` and its `urn:tessera:problem:` type.
async fn assert_rejected(app: &TestApp, token: &str, code: &str) {
    let problem = assert_problem(app.me_bearer(token).await, 401, code).await;
    assert_eq!(problem["type"], format!("urn:tessera:problem:{code}"), "{problem}");
}

fn remove(value: &mut Value, member: &str) {
    value.as_object_mut().expect("a JSON object").remove(member);
}

/// A `kid` nobody has: the thumbprint-shaped form of a real one.
const UNKNOWN_KID: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

// --- alg: none ---------------------------------------------------------------------------------

/// `alg` spelled `spelling`, the server's `kid`; with `signed`, a valid signature of the server's
/// key over the token (so only the `alg` is wrong), else an empty signature.
async fn check_alg_none(spelling: &str, signed: bool) {
    let target = target().await;
    let mut header = target.header.clone();
    header["alg"] = json!(spelling);
    let token = if signed {
        target.key.sign(&header, &target.claims)
    } else {
        forge(&header, &target.claims, b"")
    };
    assert!(signed || token.ends_with('.'));
    target.rejected(&token, "token_invalid").await;
}

#[tokio::test]
async fn alg_none_with_an_empty_signature_is_rejected() {
    check_alg_none("none", false).await;
}

#[tokio::test]
async fn alg_none_with_a_valid_signature_is_rejected() {
    check_alg_none("none", true).await;
}

#[tokio::test]
async fn alg_none_capitalised_with_an_empty_signature_is_rejected() {
    check_alg_none("None", false).await;
}

#[tokio::test]
async fn alg_none_capitalised_with_a_valid_signature_is_rejected() {
    check_alg_none("None", true).await;
}

#[tokio::test]
async fn alg_none_upper_case_with_an_empty_signature_is_rejected() {
    check_alg_none("NONE", false).await;
}

#[tokio::test]
async fn alg_none_upper_case_with_a_valid_signature_is_rejected() {
    check_alg_none("NONE", true).await;
}

#[tokio::test]
async fn alg_none_mixed_case_with_an_empty_signature_is_rejected() {
    check_alg_none("nOnE", false).await;
}

#[tokio::test]
async fn alg_none_mixed_case_with_a_valid_signature_is_rejected() {
    check_alg_none("nOnE", true).await;
}

/// The `alg` must name the key's algorithm exactly: `eddsa` is not `EdDSA`.
#[tokio::test]
async fn a_lower_case_eddsa_alg_is_rejected_even_validly_signed() {
    let target = target().await;
    for alg in ["eddsa", "EDDSA", "Ed25519", "EdDSA ", ""] {
        let token = target.sign_header(|h| h["alg"] = json!(alg));
        target.rejected(&token, "token_invalid").await;
    }
}

// --- algorithm confusion: HS256 keyed with the public key ------------------------------------

/// DER: `tag`, definite length, `content`.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    match u8::try_from(content.len()) {
        Ok(len) if len < 0x80 => out.push(len),
        _ => {
            let len = content.len().to_be_bytes();
            let significant: Vec<u8> = len.iter().copied().skip_while(|b| *b == 0).collect();
            out.push(0x80 | u8::try_from(significant.len()).expect("a short length"));
            out.extend(significant);
        }
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER from unsigned big-endian bytes.
fn der_uint(bytes: &[u8]) -> Vec<u8> {
    let mut content = Vec::with_capacity(bytes.len() + 1);
    if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(bytes);
    der(0x02, &content)
}

/// SubjectPublicKeyInfo around `key` (the BIT STRING's content) with `algorithm` (DER).
fn spki(algorithm: &[u8], key: &[u8]) -> Vec<u8> {
    let mut bits = vec![0u8];
    bits.extend_from_slice(key);
    der(0x30, &[der(0x30, algorithm), der(0x03, &bits)].concat())
}

/// PEM with 64-character lines and `newline` as the line ending (also after the last line).
fn pem(label: &str, der: &[u8], newline: &str) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|chunk| std::str::from_utf8(chunk).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----{newline}{}{newline}-----END {label}-----{newline}",
        lines.join(newline)
    )
}

/// The public key as the JWKS publishes it: the JWK of `kid`.
async fn published_jwk(target: &Target) -> Value {
    let jwks = target.app.jwks().await;
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == target.key.kid.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the signing key is not in {jwks}"))
}

/// The Ed25519 public key from the JWKS: raw bytes and SPKI DER (built by hand, checked against
/// the key's real SPKI).
async fn ed25519_public(target: &Target) -> (Vec<u8>, Vec<u8>) {
    let jwk = published_jwk(target).await;
    let x = b64url_decode(jwk["x"].as_str().expect("x"));
    assert_eq!(x.len(), 32);
    let spki_der = spki(&der(0x06, &[0x2b, 0x65, 0x70]), &x); // id-Ed25519, RFC 8410
    assert_eq!(spki_der, target.key.spki, "the hand-built SPKI is the real one");
    (x, spki_der)
}

/// The RSA public key from the JWKS: PKCS#1 `RSAPublicKey` DER and SPKI DER.
async fn rsa_public(target: &Target) -> (Vec<u8>, Vec<u8>) {
    let jwk = published_jwk(target).await;
    let n = b64url_decode(jwk["n"].as_str().expect("n"));
    let e = b64url_decode(jwk["e"].as_str().expect("e"));
    let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
    // rsaEncryption (1.2.840.113549.1.1.1) with NULL parameters.
    let rsa_encryption = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let algorithm = [der(0x06, &rsa_encryption), vec![0x05, 0x00]].concat();
    let spki_der = spki(&algorithm, &pkcs1);
    assert_eq!(spki_der, target.key.spki, "the hand-built SPKI is the real one");
    (pkcs1, spki_der)
}

/// A token with the genuine claims and header but `alg: HS256`, keyed with each of `secrets`:
/// every one is refused.
async fn check_hs256_with(target: &Target, secrets: &[Vec<u8>]) {
    let mut header = target.header.clone();
    header["alg"] = json!("HS256");
    let input = format!("{}.{}", b64url(header.to_string()), b64url(target.claims.to_string()));
    for secret in secrets {
        let token = format!("{input}.{}", b64url(hmac_sha256(secret, input.as_bytes())));
        target.rejected(&token, "token_invalid").await;
    }
}

/// PEM texts of `der` as a confused verifier might have read it from a file.
fn pem_variants(label: &str, der: &[u8]) -> Vec<Vec<u8>> {
    let lf = pem(label, der, "\n");
    vec![
        lf.clone().into_bytes(),
        lf.trim_end().as_bytes().to_vec(),
        pem(label, der, "\r\n").into_bytes(),
    ]
}

#[tokio::test]
async fn hs256_keyed_with_the_ed25519_public_key_as_pem_is_rejected() {
    let target = target().await;
    let (_, der) = ed25519_public(&target).await;
    check_hs256_with(&target, &pem_variants("PUBLIC KEY", &der)).await;
}

#[tokio::test]
async fn hs256_keyed_with_the_ed25519_public_key_as_spki_der_is_rejected() {
    let target = target().await;
    let (_, der) = ed25519_public(&target).await;
    check_hs256_with(&target, &[der]).await;
}

#[tokio::test]
async fn hs256_keyed_with_the_raw_ed25519_public_key_is_rejected() {
    let target = target().await;
    let (x, _) = ed25519_public(&target).await;
    check_hs256_with(&target, &[x]).await;
}

#[tokio::test]
async fn rs256_server_rejects_hs256_keyed_with_its_public_key_as_pem() {
    let target = target_with(Algorithm::RS256).await;
    let (pkcs1, der) = rsa_public(&target).await;
    let mut secrets = pem_variants("PUBLIC KEY", &der);
    secrets.extend(pem_variants("RSA PUBLIC KEY", &pkcs1));
    check_hs256_with(&target, &secrets).await;
}

#[tokio::test]
async fn rs256_server_rejects_hs256_keyed_with_its_public_key_as_spki_der() {
    let target = target_with(Algorithm::RS256).await;
    let (_, der) = rsa_public(&target).await;
    check_hs256_with(&target, &[der]).await;
}

#[tokio::test]
async fn rs256_server_rejects_hs256_keyed_with_its_raw_public_key() {
    let target = target_with(Algorithm::RS256).await;
    let (pkcs1, _) = rsa_public(&target).await;
    let jwk = published_jwk(&target).await;
    let modulus = b64url_decode(jwk["n"].as_str().expect("n"));
    check_hs256_with(&target, &[pkcs1, modulus]).await;
}

// --- other algorithms, other keys ------------------------------------------------------------

/// A token signed by a fresh `alg` key, naming the server's `kid` and then its own.
async fn check_foreign_algorithm(alg: Algorithm) {
    let target = target().await;
    let foreign = JwsKey::generate(alg);
    for kid in [target.key.kid.as_str(), foreign.kid.as_str()] {
        let mut header = target.header.clone();
        header["alg"] = json!(alg.name());
        header["kid"] = json!(kid);
        let token = foreign.sign(&header, &target.claims);
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn an_es256_token_is_rejected_by_an_eddsa_server() {
    check_foreign_algorithm(Algorithm::ES256).await;
}

#[tokio::test]
async fn an_rs256_token_is_rejected_by_an_eddsa_server() {
    check_foreign_algorithm(Algorithm::RS256).await;
}

/// Validly signed by the server's key, but naming a `kid` the server does not have.
#[tokio::test]
async fn an_unknown_kid_is_rejected_even_validly_signed() {
    let target = target().await;
    let kid = target.key.kid.clone();
    for unknown in [
        json!(UNKNOWN_KID),
        json!(kid.to_ascii_lowercase()),
        json!(format!("{kid} ")),
        json!(""),
        json!("../keys/keys.json"),
        json!(format!("ed25519-{kid}.pk8")),
        json!(null),
        json!(7),
        json!([kid]),
    ] {
        let token = target.sign_header(|h| h["kid"] = unknown.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

/// The server's `kid` and `alg`, signed by another Ed25519 key.
#[tokio::test]
async fn the_right_kid_with_a_foreign_key_of_the_same_algorithm_is_rejected() {
    let target = target().await;
    let foreign = JwsKey::generate(Algorithm::EdDSA);
    let token = foreign.sign(&target.header, &target.claims);
    target.rejected(&token, "token_invalid").await;
}

// --- keys by reference: jku, x5u, jwk ----------------------------------------------------------

/// A listener standing in for the attacker's key server; its URL base.
async fn attacker_server() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a listener");
    let url = format!("http://{}", listener.local_addr().expect("an address"));
    (listener, url)
}

/// Asserts nothing connected to the attacker's server (a fetch would have connected before the
/// response to `/v1/me` was sent).
async fn assert_never_contacted(listener: &TcpListener) {
    let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
    assert!(accepted.is_err(), "the server contacted the attacker's URL: {accepted:?}");
}

/// Tokens signed by the attacker's key with `member` in the header, naming the attacker's `kid`,
/// the server's `kid`, and no `kid`.
async fn check_attacker_key_by_reference(member: &str, value: impl Fn(&JwsKey, &str) -> Value) {
    let target = target().await;
    let (listener, url) = attacker_server().await;
    let attacker = JwsKey::generate(Algorithm::EdDSA);
    for kid in [Some(attacker.kid.as_str()), Some(target.key.kid.as_str()), None] {
        let mut header = target.header.clone();
        header[member] = value(&attacker, &url);
        match kid {
            Some(kid) => header["kid"] = json!(kid),
            None => remove(&mut header, "kid"),
        }
        let token = attacker.sign(&header, &target.claims);
        target.rejected(&token, "token_invalid").await;
    }
    assert_never_contacted(&listener).await;
}

#[tokio::test]
async fn a_jku_header_is_never_fetched_and_the_attackers_token_is_rejected() {
    check_attacker_key_by_reference("jku", |_, url| json!(format!("{url}/jwks.json"))).await;
}

#[tokio::test]
async fn an_x5u_header_is_never_fetched_and_the_attackers_token_is_rejected() {
    check_attacker_key_by_reference("x5u", |_, url| json!(format!("{url}/cert.pem"))).await;
}

#[tokio::test]
async fn an_embedded_jwk_with_the_attackers_key_is_rejected() {
    check_attacker_key_by_reference("jwk", |attacker, _| attacker.jwk.clone()).await;
}

/// The server ignores `jku`, `x5u`, `x5c` and `jwk` (RFC 7515 lets a recipient choose its key;
/// Tessera chooses by `kid` among its own keys only): a token the server's key really signed is
/// accepted with them, and nothing is fetched.
#[tokio::test]
async fn a_validly_signed_token_with_key_references_is_accepted_without_fetching() {
    let target = target().await;
    let (listener, url) = attacker_server().await;
    let attacker = JwsKey::generate(Algorithm::EdDSA);
    let token = target.sign_header(|h| {
        h["jku"] = json!(format!("{url}/jwks.json"));
        h["x5u"] = json!(format!("{url}/cert.pem"));
        h["x5c"] = json!([STANDARD.encode(&attacker.spki)]);
        h["jwk"] = attacker.jwk.clone();
    });
    target.accepted(&token).await;
    assert_never_contacted(&listener).await;
}

// --- crit ----------------------------------------------------------------------------------------

/// A critical extension the server does not understand, validly signed.
#[tokio::test]
async fn crit_with_an_unknown_extension_is_rejected_even_validly_signed() {
    let target = target().await;
    let token = target.sign_header(|h| {
        h["crit"] = json!(["https://attacker.example/skip-checks"]);
        h["https://attacker.example/skip-checks"] = json!(true);
    });
    target.rejected(&token, "token_invalid").await;
    let token = target.sign_header(|h| {
        h["crit"] = json!(["exp"]);
    });
    target.rejected(&token, "token_invalid").await;
}

/// RFC 7515 §4.1.11: `crit` is a non-empty array; an empty or null one is malformed.
#[tokio::test]
async fn an_empty_or_null_crit_is_rejected_even_validly_signed() {
    let target = target().await;
    for crit in [json!([]), json!(null), json!({}), json!("b64")] {
        let token = target.sign_header(|h| h["crit"] = crit.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

// --- tampering -----------------------------------------------------------------------------------

/// Every byte of segment `index` (decoded) with one bit flipped (bit `i % 8` of byte `i`),
/// re-encoded canonically: each is refused.
async fn check_flipped_bits(index: usize) {
    let target = target().await;
    let segments: Vec<String> = target.token.split('.').map(str::to_owned).collect();
    let decoded = b64url_decode(&segments[index]);
    for i in 0..decoded.len() {
        let mut bytes = decoded.clone();
        bytes[i] ^= 1 << (i % 8);
        let mut tampered = segments.clone();
        tampered[index] = b64url(&bytes);
        target.rejected(&tampered.join("."), "token_invalid").await;
    }
    target.accepted(&target.token).await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_header_is_rejected() {
    check_flipped_bits(0).await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_payload_is_rejected() {
    check_flipped_bits(1).await;
}

#[tokio::test]
async fn a_flipped_bit_in_the_signature_is_rejected() {
    check_flipped_bits(2).await;
}

// --- duplicate members (validly signed) ----------------------------------------------------------

/// Two `alg` members, in both orders, also with an escaped name: a first-wins and a last-wins
/// parser would disagree, so the header is refused.
#[tokio::test]
async fn duplicate_alg_in_the_header_is_rejected_even_validly_signed() {
    let target = target().await;
    let claims = target.claims.to_string();
    let kid = &target.key.kid;
    for header in [
        target.header_with(r#""alg":"none""#),
        target.header_with(r#""alg":"HS256""#),
        format!(r#"{{"alg":"none","alg":"EdDSA","kid":"{kid}","typ":"at+jwt"}}"#),
        target.header_with(r#""al\u0067":"none""#),
        target.header_with(r#""alg":"EdDSA""#),
    ] {
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn duplicate_kid_or_typ_in_the_header_is_rejected_even_validly_signed() {
    let target = target().await;
    let claims = target.claims.to_string();
    for member in [
        format!(r#""kid":"{UNKNOWN_KID}""#),
        format!(r#""kid":"{}""#, target.key.kid),
        r#""typ":"JWT""#.to_owned(),
        r#""typ":"at+jwt""#.to_owned(),
    ] {
        let token = target.key.sign_raw(&target.header_with(&member), &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

/// Two `sub` members (alice's and another id), either order, also with an escaped name.
#[tokio::test]
async fn duplicate_sub_in_the_claims_is_rejected_even_validly_signed() {
    let target = target().await;
    let header = target.header.to_string();
    let sub = target.claims["sub"].as_str().expect("sub").to_owned();
    let mut without_sub = target.claims.clone();
    remove(&mut without_sub, "sub");
    let text = without_sub.to_string();
    for claims in [
        target.claims_with(r#""sub":"someone-else""#),
        format!(r#"{{"sub":"someone-else","sub":"{sub}",{}"#, &text[1..]),
        target.claims_with(r#""s\u0075b":"someone-else""#),
        target.claims_with(&format!(r#""sub":"{sub}""#)),
    ] {
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

/// A second `exp`, `aud`, `iss` or `sid` after the genuine one.
#[tokio::test]
async fn other_duplicate_claims_are_rejected_even_validly_signed() {
    let target = target().await;
    let header = target.header.to_string();
    let exp = target.claims["exp"].as_i64().expect("exp");
    for member in [
        format!(r#""exp":{}"#, exp + 86_400),
        r#""exp":1"#.to_owned(),
        r#""aud":"another-api""#.to_owned(),
        r#""iss":"https://evil.example""#.to_owned(),
        r#""sid":"another-family""#.to_owned(),
        r#""username":"admin""#.to_owned(),
    ] {
        let token = target.key.sign_raw(&header, &target.claims_with(&member));
        target.rejected(&token, "token_invalid").await;
    }
}

// --- claim types and values (validly signed) -----------------------------------------------------

#[tokio::test]
async fn a_numeric_sub_is_rejected_even_validly_signed() {
    let target = target().await;
    for sub in [json!(1), json!(0), json!(-1), json!(1.5)] {
        let token = target.sign_claims(|c| c["sub"] = sub.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_null_sub_is_rejected_even_validly_signed() {
    let target = target().await;
    let token = target.sign_claims(|c| c["sub"] = Value::Null);
    target.rejected(&token, "token_invalid").await;
}

#[tokio::test]
async fn an_object_or_array_sub_is_rejected_even_validly_signed() {
    let target = target().await;
    let sub = target.claims["sub"].clone();
    for value in [json!({"id": sub}), json!([sub]), json!(true)] {
        let token = target.sign_claims(|c| c["sub"] = value.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_float_exp_is_rejected_even_validly_signed() {
    let target = target().await;
    let header = target.header.to_string();
    let exp = target.claims["exp"].as_i64().expect("exp");
    // Written by hand: `serde_json` would print 1.0e9-style floats differently.
    for exp in [format!("{exp}.5"), format!("{exp}.0"), format!("{exp}e0")] {
        let mut claims = target.claims.clone();
        remove(&mut claims, "exp");
        let text = claims.to_string();
        let claims = format!(r#"{},"exp":{exp}}}"#, &text[..text.len() - 1]);
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_string_exp_is_rejected_even_validly_signed() {
    let target = target().await;
    let exp = target.claims["exp"].as_i64().expect("exp");
    for value in [json!(exp.to_string()), json!(""), json!("never")] {
        let token = target.sign_claims(|c| c["exp"] = value.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

/// `exp` beyond any integer type the verifier keeps: 1e20 and u64::MAX + 1 (not i64 values).
#[tokio::test]
async fn a_huge_exp_is_rejected_even_validly_signed() {
    let target = target().await;
    let header = target.header.to_string();
    let mut claims = target.claims.clone();
    remove(&mut claims, "exp");
    let text = claims.to_string();
    for exp in [
        "1e20",
        "100000000000000000000",
        "18446744073709551616",
        "18446744073709551615",
        "9223372036854775808",
    ] {
        let claims = format!(r#"{},"exp":{exp}}}"#, &text[..text.len() - 1]);
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

/// The extremes of `i64` are well-formed claims: the server's own signature over them is
/// honoured and no time arithmetic overflows (no 5xx).
#[tokio::test]
async fn extreme_integer_times_do_not_overflow() {
    let target = target().await;
    let token = target.sign_claims(|c| {
        c["exp"] = json!(i64::MAX);
        c["iat"] = json!(i64::MIN);
        c["nbf"] = json!(i64::MIN);
    });
    target.accepted(&token).await;
    let token = target.sign_claims(|c| c["exp"] = json!(i64::MIN));
    target.rejected(&token, "token_expired").await;
    let token = target.sign_claims(|c| c["nbf"] = json!(i64::MAX));
    target.rejected(&token, "token_invalid").await;
}

#[tokio::test]
async fn a_negative_exp_is_token_expired() {
    let target = target().await;
    for exp in [-1, -1_000_000] {
        let token = target.sign_claims(|c| c["exp"] = json!(exp));
        target.rejected(&token, "token_expired").await;
    }
}

/// A validly signed token lacking `claim`.
async fn check_missing_claim(claim: &str) {
    let target = target().await;
    assert!(target.claims.get(claim).is_some(), "the server issues {claim}");
    let token = target.sign_claims(|c| remove(c, claim));
    target.rejected(&token, "token_invalid").await;
}

#[tokio::test]
async fn a_token_without_iss_is_rejected() {
    check_missing_claim("iss").await;
}

#[tokio::test]
async fn a_token_without_sub_is_rejected() {
    check_missing_claim("sub").await;
}

#[tokio::test]
async fn a_token_without_aud_is_rejected() {
    check_missing_claim("aud").await;
}

#[tokio::test]
async fn a_token_without_exp_is_rejected() {
    check_missing_claim("exp").await;
}

#[tokio::test]
async fn a_token_without_iat_is_rejected() {
    check_missing_claim("iat").await;
}

#[tokio::test]
async fn a_token_without_nbf_is_rejected() {
    check_missing_claim("nbf").await;
}

#[tokio::test]
async fn a_token_without_jti_is_rejected() {
    check_missing_claim("jti").await;
}

#[tokio::test]
async fn a_token_without_sid_is_rejected() {
    check_missing_claim("sid").await;
}

#[tokio::test]
async fn a_token_without_username_is_rejected() {
    check_missing_claim("username").await;
}

#[tokio::test]
async fn a_wrong_iss_is_rejected_even_validly_signed() {
    let target = target().await;
    let iss = target.claims["iss"].as_str().expect("iss").to_owned();
    assert_eq!(iss, target.app.base);
    for wrong in [
        json!("https://evil.example"),
        json!(format!("{iss}/")),
        json!(iss.to_ascii_uppercase()),
        json!(""),
        json!([iss]),
        json!(null),
    ] {
        let token = target.sign_claims(|c| c["iss"] = wrong.clone());
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn a_wrong_aud_is_rejected_even_validly_signed() {
    let target = target().await;
    assert_eq!(target.claims["aud"], "tessera");
    for wrong in [
        json!("another-api"),
        json!("Tessera"),
        json!("tessera "),
        json!(["another-api"]),
        json!([]),
        json!(""),
        json!(null),
        json!(1),
        json!([["tessera"]]),
    ] {
        let token = target.sign_claims(|c| c["aud"] = wrong.clone());
        target.rejected(&token, "token_invalid").await;
    }
    // An array that includes the audience is fine (RFC 7519 §4.1.3).
    target.accepted(&target.sign_claims(|c| c["aud"] = json!(["another-api", "tessera"]))).await;
}

/// RFC 9068: access tokens are `at+jwt`; a plain JWT (an ID token, say) is not one.
#[tokio::test]
async fn a_jwt_typ_is_rejected_even_validly_signed() {
    let target = target().await;
    let token = target.sign_header(|h| h["typ"] = json!("JWT"));
    target.rejected(&token, "token_invalid").await;
}

#[tokio::test]
async fn a_missing_or_other_typ_is_rejected_even_validly_signed() {
    let target = target().await;
    let token = target.sign_header(|h| remove(h, "typ"));
    target.rejected(&token, "token_invalid").await;
    for typ in [
        json!("jwt"),
        json!("application/jwt"),
        json!(""),
        json!("at+jwt "),
        json!("at+jwt+x"),
        json!("dpop+jwt"),
        json!(null),
        json!(["at+jwt"]),
    ] {
        let token = target.sign_header(|h| h["typ"] = typ.clone());
        target.rejected(&token, "token_invalid").await;
    }
    // The RFC 9068 spellings are accepted.
    target.accepted(&target.sign_header(|h| h["typ"] = json!("application/at+jwt"))).await;
}

/// A JOSE header and a claims set are JSON objects (RFC 7515 §4, RFC 7519 §7.2); the same
/// values as an array are refused even when validly signed.
#[tokio::test]
async fn a_header_that_is_not_a_json_object_is_rejected_even_validly_signed() {
    let target = target().await;
    let claims = target.claims.to_string();
    let kid = &target.key.kid;
    for header in [
        format!(r#"["EdDSA","{kid}","at+jwt",null]"#),
        format!(r#"["EdDSA","{kid}","at+jwt"]"#),
        "null".to_owned(),
        r#""EdDSA""#.to_owned(),
    ] {
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn claims_that_are_not_a_json_object_are_rejected_even_validly_signed() {
    let target = target().await;
    let header = target.header.to_string();
    let c = &target.claims;
    let as_array = json!([
        c["iss"],
        c["sub"],
        c["aud"],
        c["exp"],
        c["iat"],
        c["nbf"],
        c["jti"],
        c["sid"],
        c["username"]
    ]);
    for claims in [as_array.to_string(), "null".to_owned(), "[]".to_owned(), "1".to_owned()] {
        let token = target.key.sign_raw(&header, &claims);
        target.rejected(&token, "token_invalid").await;
    }
}

// --- encoding ------------------------------------------------------------------------------------

/// The signature with bytes appended: a verifier that reads only the first 64 bytes would pass.
#[tokio::test]
async fn a_signature_with_trailing_bytes_is_rejected() {
    let target = target().await;
    let (input, signature) = target.token.rsplit_once('.').expect("three parts");
    let signature = b64url_decode(signature);
    for extra in [vec![0u8], vec![0u8; 3], signature.clone(), b"\n".to_vec()] {
        let longer = [signature.clone(), extra].concat();
        let token = format!("{input}.{}", b64url(longer));
        target.rejected(&token, "token_invalid").await;
    }
    // And text appended to the segment, or a fourth segment.
    for token in [format!("{}A", target.token), format!("{}.", target.token)] {
        target.rejected(&token, "token_invalid").await;
    }
}

const URL_SAFE_ALPHABET: &[u8; 64] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// `segment` with the unused low bits of its last character set: the same bytes to a lenient
/// decoder, but not the canonical encoding.
fn with_trailing_bits(segment: &str) -> String {
    assert_ne!(segment.len() % 4, 0, "{segment} has no unused bits");
    let (head, last) = segment.split_at(segment.len() - 1);
    let value = URL_SAFE_ALPHABET
        .iter()
        .position(|c| *c == last.as_bytes()[0])
        .expect("a base64url character");
    assert_eq!(value & 1, 0, "canonical encodings leave the unused bits zero");
    let changed = format!("{head}{}", char::from(URL_SAFE_ALPHABET[value | 1]));
    let lenient = base64::engine::GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    assert_eq!(lenient.decode(&changed).ok(), Some(b64url_decode(segment)), "same bytes");
    changed
}

/// `value` (a JSON object) grown by a `pad` member until its text is not a multiple of 3 bytes
/// long, so its base64url form has unused bits and would need padding.
fn unaligned(mut value: Value) -> Value {
    let mut pad = String::new();
    while value.to_string().len().is_multiple_of(3) {
        pad.push('x');
        value["pad"] = json!(pad);
    }
    value
}

/// Header and payload segments (unaligned, so non-canonical forms exist) of a token the server
/// would accept, after checking that it does.
async fn unaligned_segments(target: &Target) -> (String, String) {
    let header = b64url(unaligned(target.header.clone()).to_string());
    let payload = b64url(unaligned(target.claims.clone()).to_string());
    target.accepted(&target.key.sign_segments(&header, &payload)).await;
    (header, payload)
}

/// Non-canonical header and payload are signed as written, so the signature is valid and only
/// the encoding is wrong.
#[tokio::test]
async fn base64_with_trailing_bits_set_is_rejected_even_validly_signed() {
    let target = target().await;
    let (header, payload) = unaligned_segments(&target).await;
    let key = &target.key;
    let genuine = key.sign_segments(&header, &payload);
    let signature = genuine.rsplit_once('.').expect("three parts").1;
    for token in [
        key.sign_segments(&with_trailing_bits(&header), &payload),
        key.sign_segments(&header, &with_trailing_bits(&payload)),
        format!("{header}.{payload}.{}", with_trailing_bits(signature)),
    ] {
        target.rejected(&token, "token_invalid").await;
    }
}

#[tokio::test]
async fn base64_padding_is_rejected_even_validly_signed() {
    let target = target().await;
    let (header, payload) = unaligned_segments(&target).await;
    let key = &target.key;
    let pad = |segment: &str| format!("{segment}{}", "=".repeat((4 - segment.len() % 4) % 4));
    let genuine = key.sign_segments(&header, &payload);
    let signature = genuine.rsplit_once('.').expect("three parts").1;
    assert_ne!(signature.len() % 4, 0);
    for token in [
        key.sign_segments(&pad(&header), &payload),
        key.sign_segments(&header, &pad(&payload)),
        format!("{header}.{payload}.{}", pad(signature)),
        format!("{header}.{payload}.{signature}="),
    ] {
        target.rejected(&token, "token_invalid").await;
    }
}

/// `+` and `/` instead of `-` and `_`. Five `?` in a row encode to `Pz8_` whatever their offset,
/// so the header and payload surely contain a `_`; the signature is re-made until it has one.
#[tokio::test]
async fn the_standard_base64_alphabet_is_rejected_even_validly_signed() {
    let target = target().await;
    let standard = |segment: &str| segment.replace('-', "+").replace('_', "/");
    let mut header = target.header.clone();
    header["q"] = json!("?????");
    let header = b64url(header.to_string());
    let mut claims = target.claims.clone();
    claims["q"] = json!("?????");
    let payload = b64url(claims.to_string());
    assert!(header.contains('_') && payload.contains('_'), "{header} {payload}");
    let key = &target.key;
    target.accepted(&key.sign_segments(&header, &payload)).await;
    let (signed_payload, signature) = (1..)
        .map(|n| {
            claims["q"] = json!(format!("?????{n}"));
            let payload = b64url(claims.to_string());
            let token = key.sign_segments(&header, &payload);
            let signature = token.rsplit_once('.').expect("three parts").1.to_owned();
            (payload, signature)
        })
        .find(|(_, signature)| signature.contains(['-', '_']))
        .expect("a signature with - or _");
    for token in [
        key.sign_segments(&standard(&header), &payload),
        key.sign_segments(&header, &standard(&payload)),
        format!("{header}.{signed_payload}.{}", standard(&signature)),
    ] {
        target.rejected(&token, "token_invalid").await;
    }
}

/// A space or tab inside a segment (the extractor trims only around the token).
#[tokio::test]
async fn whitespace_inside_a_segment_is_rejected_even_validly_signed() {
    let target = target().await;
    let key = &target.key;
    let (header, payload) = (b64url(target.header.to_string()), b64url(target.claims.to_string()));
    let signature = target.token.rsplit_once('.').expect("three parts").1;
    let split = |segment: &str, ws: &str| {
        let (a, b) = segment.split_at(segment.len() / 2);
        format!("{a}{ws}{b}")
    };
    for ws in [" ", "\t", "  "] {
        for token in [
            key.sign_segments(&split(&header, ws), &payload),
            key.sign_segments(&header, &split(&payload, ws)),
            format!("{header}.{payload}.{}", split(signature, ws)),
            format!("{header}.{payload}{ws}.{signature}"),
        ] {
            target.rejected(&token, "token_invalid").await;
        }
    }
}

// --- size ----------------------------------------------------------------------------------------

/// A token the server's key signed, grown to exactly `len` bytes with a `pad` claim (and, when
/// base64 lengths skip `len`, a `pad` header member).
fn token_of_length(target: &Target, len: usize) -> String {
    let signature_len = target.token.rsplit_once('.').expect("three parts").1.len();
    let encoded = |bytes: usize| (bytes * 4).div_ceil(3);
    for header_pad in ["", "x", "xx"] {
        let mut header = target.header.clone();
        if !header_pad.is_empty() {
            header["pad"] = json!(header_pad);
        }
        let header_len = encoded(header.to_string().len());
        let mut claims = target.claims.clone();
        claims["pad"] = json!("");
        let base = claims.to_string().len();
        let fits = (0..len).find(|n| header_len + 1 + encoded(base + n) + 1 + signature_len == len);
        if let Some(n) = fits {
            claims["pad"] = json!("p".repeat(n));
            let token = target.key.sign(&header, &claims);
            assert_eq!(token.len(), len);
            return token;
        }
    }
    panic!("no token of {len} bytes");
}

/// The limit is inclusive: 8 KiB is the largest token accepted.
#[tokio::test]
async fn a_validly_signed_token_of_exactly_8_kib_is_accepted() {
    let target = target().await;
    target.accepted(&token_of_length(&target, 8 * 1024)).await;
}

#[tokio::test]
async fn a_validly_signed_token_of_8_kib_plus_one_byte_is_rejected() {
    let target = target().await;
    target.rejected(&token_of_length(&target, 8 * 1024 + 1), "token_invalid").await;
}

// --- other kinds of token ------------------------------------------------------------------------

/// What an OpenID provider sharing the key might issue: `typ` JWT, `aud` a client id, a
/// `nonce`, no `sid`, `jti` or `username`.
fn id_token_claims(target: &Target) -> Value {
    let c = &target.claims;
    json!({
        "iss": c["iss"],
        "sub": c["sub"],
        "aud": "spa-client-1",
        "exp": c["exp"],
        "iat": c["iat"],
        "auth_time": c["iat"],
        "nonce": "n-0S6_WzA2Mj",
        "azp": "spa-client-1",
    })
}

#[tokio::test]
async fn an_id_token_signed_by_the_server_key_is_rejected() {
    let target = target().await;
    let claims = id_token_claims(&target);
    let token = target.sign(|h, c| {
        h["typ"] = json!("JWT");
        *c = claims;
    });
    target.rejected(&token, "token_invalid").await;
}

/// Even relabelled `at+jwt`, or given the right `aud`, an ID token lacks the access claims.
#[tokio::test]
async fn an_id_token_relabelled_as_an_access_token_is_still_rejected() {
    let target = target().await;
    let claims = id_token_claims(&target);
    let token = target.key.sign(&target.header, &claims);
    target.rejected(&token, "token_invalid").await;
    let mut with_aud = claims.clone();
    with_aud["aud"] = json!("tessera");
    let token = target.key.sign(&target.header, &with_aud);
    target.rejected(&token, "token_invalid").await;
}

/// An access token presented for refresh is refused, and the family it came from lives on.
#[tokio::test]
async fn an_access_token_is_not_a_refresh_token() {
    let target = target().await;
    let problem =
        assert_problem(target.app.refresh(&target.token).await, 401, "token_invalid").await;
    assert_eq!(problem["type"], "urn:tessera:problem:token_invalid");
    target.accepted(&target.token).await;
    target.app.refresh_ok(&target.refresh).await;
}

/// A refresh token presented as a bearer token is refused, and is not spent by it.
#[tokio::test]
async fn a_refresh_token_is_not_a_bearer_token() {
    let target = target().await;
    target.rejected(&target.refresh, "token_invalid").await;
    let next = target.app.refresh_ok(&target.refresh).await;
    target.accepted(&next.access).await;
}
