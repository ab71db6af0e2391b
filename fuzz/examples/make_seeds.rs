//! Writes the committed seed corpus, `fuzz/seeds/<target>/`, from the fixed fuzzing keys:
//! tokens that verify at the fuzzers' stopped clock, and near misses of every kind.
//! Deterministic: running it again gives the same files.
//!
//!     cargo run --manifest-path fuzz/Cargo.toml --example make_seeds

use std::fs;
use std::path::Path;

use base64::Engine as _;
use tessera::fuzzing::jws_sign;
use tessera_fuzz::{B64URL, NOW, REVOKED_SID, ed25519_key, fixture, hs256_key, valid_claims_json};

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds").join(target);
    fixture("seed dir", fs::create_dir_all(&dir));
    fixture("seed file", fs::write(dir.join(name), bytes));
}

fn with_header(token: &str, header: &str) -> String {
    let (_, rest) = token.split_once('.').unwrap_or_default();
    format!("{}.{rest}", B64URL.encode(header))
}

fn main() {
    let ed = ed25519_key();
    let hs = hs256_key();
    let kid = ed.public().kid().to_owned();
    let claims = valid_claims_json("family-1");
    let valid = fixture("sign", jws_sign(&ed, claims.as_bytes()));
    let revoked = fixture("sign", jws_sign(&ed, valid_claims_json(REVOKED_SID).as_bytes()));
    let expired_claims =
        claims.replace(&format!("\"exp\":{}", NOW + 300), &format!("\"exp\":{}", NOW - 100));
    let expired = fixture("sign", jws_sign(&ed, expired_claims.as_bytes()));
    let (unsigned, _) = valid.rsplit_once('.').unwrap_or_default();
    let alg_none = format!(
        "{}.",
        with_header(unsigned, &format!(r#"{{"alg":"none","kid":"{kid}","typ":"at+jwt"}}"#))
    );
    let hs_confusion =
        with_header(&valid, &format!(r#"{{"alg":"HS256","kid":"{kid}","typ":"at+jwt"}}"#));
    let wrong_typ = with_header(&valid, &format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"JWT"}}"#));
    let crit = with_header(
        &valid,
        &format!(r#"{{"alg":"EdDSA","kid":"{kid}","typ":"at+jwt","crit":["exp"]}}"#),
    );

    // token_verify: raw tokens, and structured inputs (a 0x00 byte, then the choices).
    write("token_verify", "valid.jwt", &valid);
    write("token_verify", "revoked.jwt", &revoked);
    write("token_verify", "expired.jwt", &expired);
    write("token_verify", "alg_none.jwt", &alg_none);
    write("token_verify", "alg_hs256_same_kid.jwt", &hs_confusion);
    write("token_verify", "typ_jwt.jwt", &wrong_typ);
    write("token_verify", "crit.jwt", &crit);
    write("token_verify", "padded.jwt", format!("{valid}=="));
    write("token_verify", "structured_zeros.bin", [0u8; 48]);
    write("token_verify", "structured_ones.bin", [[0u8].as_slice(), &[0xffu8; 48]].concat());
    write(
        "token_verify",
        "structured_mixed.bin",
        [[0u8].as_slice(), b"tessera fuzz 0123456789 abcdefghijklmnop"].concat(),
    );

    // jws: tokens from both keys, near misses, and payloads for the round trip.
    write("jws", "ed25519.jws", fixture("sign", jws_sign(&ed, br#"{"a":1}"#)));
    write("jws", "hs256.jws", fixture("sign", jws_sign(&hs, br#"{"a":1}"#)));
    write("jws", "alg_none.jws", &alg_none);
    write("jws", "alg_hs256_same_kid.jws", &hs_confusion);
    write("jws", "crit.jws", &crit);
    write("jws", "four_parts.jws", format!("{valid}.x"));
    write("jws", "payload.json", &claims);
    write("jws", "empty", "");

    // cookie_header: lines are separate Cookie headers.
    write("cookie_header", "session.txt", "__Host-tessera_session=abc123; theme=dark");
    write(
        "cookie_header",
        "duplicates.txt",
        "__Host-tessera_session=; __Host-tessera_session=second\n__Host-tessera_session=third",
    );
    write(
        "cookie_header",
        "empty_quoted.txt",
        "__Host-tessera_session=\"\"; __Host-tessera_session=real",
    );
    write("cookie_header", "quoted.txt", "tessera_access=\"a.b.c\";tessera_refresh=r");
    write(
        "cookie_header",
        "lines.txt",
        "a=1\n__Secure-tessera_refresh=tok; b=2\n\t__Host-tessera_access = x ;",
    );
    write(
        "cookie_header",
        "equals.txt",
        "name=value=more; =novalue; noequals; __Host-tessera_access=j.w.t",
    );
    // The minimised input of the `cookie_header` finding (see docs/fuzzing.md).
    write("cookie_header", "crash_quote_only.txt", "=\"");

    // authorization_header: tagged lines (A Authorization, C Cookie, X X-Forwarded-For,
    // U User-Agent).
    write("authorization_header", "bearer.txt", format!("ABearer {valid}"));
    write("authorization_header", "bearer_case_spaces.txt", format!("A  bEaReR   {valid}  "));
    write("authorization_header", "bearer_revoked.txt", format!("ABearer {revoked}"));
    write("authorization_header", "bearer_alg_none.txt", format!("ABearer {alg_none}"));
    write("authorization_header", "bearer_empty.txt", "ABearer \nC__Host-tessera_access=x");
    write(
        "authorization_header",
        "basic_then_cookie.txt",
        format!("ABasic dXNlcjpwYXNz\nC__Host-tessera_access={valid}"),
    );
    write(
        "authorization_header",
        "session_cookie.txt",
        "C__Host-tessera_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; __Host-tessera_access=x",
    );
    write(
        "authorization_header",
        "forwarded.txt",
        "X203.0.113.7, 10.0.0.1\nX198.51.100.2 , 2001:db8::1\nUMozilla/5.0 (X11)",
    );
    write(
        "authorization_header",
        "forwarded_rfc7239.txt",
        "Ffor=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https\nX203.0.113.9\nFfor=_hidden",
    );

    // body_decoders: the same bytes are sent as JSON and as a form to every endpoint.
    write(
        "body_decoders",
        "login.json",
        r#"{"username":"alice","password":"correct horse battery"}"#,
    );
    write("body_decoders", "login.form", "username=alice&password=correct+horse+battery");
    write(
        "body_decoders",
        "register_unicode.json",
        r#"{"username":"bob","password":"pässwörd lang genug ✓"}"#,
    );
    write(
        "body_decoders",
        "register_unicode.form",
        "username=bob&password=p%C3%A4ssw%C3%B6rd+lang+genug",
    );
    write(
        "body_decoders",
        "refresh.json",
        r#"{"refresh_token":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}"#,
    );
    write("body_decoders", "revoke.form", "token=abc.def.ghi");
    write("body_decoders", "mistyped.json", r#"{"username":123,"password":["pässwörd-secret"]}"#);
    write("body_decoders", "duplicate.json", r#"{"username":"a","username":"b","password":"x"}"#);
    write("body_decoders", "truncated.json", r#"{"username": "alice", "passw"#);
    write("body_decoders", "null_token.json", r#"{"refresh_token":null,"token":null}"#);
    write("body_decoders", "empty", "");
}
