//! Run with: `cargo run -p example-remote-app` (listens on `127.0.0.1:3000`, or `$LISTEN`)
//! next to a Tessera server at `$TESSERA_URL` (default `http://127.0.0.1:8080`, where
//! `cargo run -p tessera-server -- serve` listens).
//!
//! An application in remote mode: it checks the tokens and session cookies users got from that
//! server (tokens against its public keys, cookies by asking it) without embedding the engine.

use tessera_axum::remote::{RemoteSettings, RemoteVerifier};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let env = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let tessera_url = env("TESSERA_URL", "http://127.0.0.1:8080");
    // The only `iss` accepted: the server's `[token] issuer`, which defaults to its public URL.
    let issuer = env("TESSERA_ISSUER", &tessera_url);
    let verifier = RemoteVerifier::new(&tessera_url, RemoteSettings::new(issuer))?;
    // Optional: fetch the server's keys now, to learn at start if it cannot be reached.
    match verifier.fetch_keys().await {
        Ok(keys) => println!("{keys} signing key(s) fetched from {tessera_url}"),
        Err(e) => {
            eprintln!("warning: no keys from {tessera_url} yet ({e}); retrying at the first token")
        }
    }

    let listener = tokio::net::TcpListener::bind(env("LISTEN", "127.0.0.1:3000")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let app = example_remote_app::app(verifier);
    axum::serve(listener, app).await?;
    Ok(())
}
