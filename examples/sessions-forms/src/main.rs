//! Run with: `cargo run -p example-sessions-forms` (listens on `127.0.0.1:3000`, or `$LISTEN`),
//! then open <http://127.0.0.1:3000/> in a browser.
//!
//! A server-rendered HTML app on Tessera sessions: a login form, a page of the user's items
//! with a form to add one (CSRF token in a hidden field), and logout. It starts with one user,
//! `alice` / `correct horse battery`; users and sessions live in memory, gone at restart.

use std::net::SocketAddr;

use tessera::secrecy::SecretString;
use tessera::store::{ClientInfo, Stores};
use tessera::{Authenticator, Settings};
use tessera_axum::{HttpSettings, TesseraState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".into());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    let public_url = format!("http://{}", listener.local_addr()?);

    let auth = Authenticator::builder(Settings::new(), Stores::memory()).build().await?;
    let password = SecretString::from("correct horse battery".to_owned());
    auth.register("alice", &password, &ClientInfo::default()).await?;
    // `Secure` cookies (and their `__Host-` names) need HTTPS; this demo serves plain HTTP.
    // Behind HTTPS, keep the default (`true`).
    let http = HttpSettings { cookie_secure: false, ..HttpSettings::new(&public_url) };
    let state = TesseraState::new(auth, http);

    println!("listening on {public_url} (log in as alice / correct horse battery)");
    let app = example_sessions_forms::app(state);
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
