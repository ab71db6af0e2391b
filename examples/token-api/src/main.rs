//! Run with: `cargo run -p example-token-api` (listens on `127.0.0.1:3000`, or `$LISTEN`).
//!
//! A JSON API of per-user notes that embeds Tessera's engine and accepts its bearer tokens:
//! register at `POST /auth/v1/users`, log in at `POST /auth/v1/token`, then call `/notes` with
//! `Authorization: Bearer <access_token>`. Users and logins live in memory: gone at restart.

use std::net::SocketAddr;

use tessera::store::Stores;
use tessera::{Authenticator, Settings};
use tessera_axum::HttpSettings;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let public_url = format!("http://{}", listener.local_addr()?);

    let mut settings = Settings::new();
    // Tokens name their issuer, and only tokens naming this one are accepted.
    settings.token.issuer = public_url.clone();
    let auth = Authenticator::builder(settings, Stores::memory()).build().await?;

    println!("listening on {public_url}");
    let app = example_token_api::app(auth, HttpSettings::new(&public_url));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
