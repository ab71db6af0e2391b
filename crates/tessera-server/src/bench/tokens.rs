//! `tessera bench tokens`: logs a user in once (one password check, one refresh family) and
//! prints that many access tokens for the login, one per line, each with its own `jti`.
//!
//! The tokens are signed with the keys `serve` uses (same configuration and data directory)
//! and carry its issuer, so set `server.public_url` to the URL the server will have.

use std::io::Write;

use anyhow::Context;
use secrecy::SecretString;
use tessera::AuthMethod;
use tessera::store::ClientInfo;

use crate::config::Config;

/// Prints `count` access tokens for `username`, whose password is `password`.
pub async fn run(
    config: &Config,
    username: &str,
    password: &SecretString,
    count: u32,
) -> anyhow::Result<()> {
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{}", config.listen));
    let (auth, handles) = crate::app::open_engine(config, &public_url).await?;
    let client = ClientInfo { ip: None, user_agent: Some("tessera bench tokens".into()) };
    let minted = async {
        let user = auth
            .login(AuthMethod::Token, username, password, &client)
            .await
            .map_err(|e| anyhow::anyhow!("logging {username} in: {e}"))?;
        let grant = auth.issue_tokens(&user, &client).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        writeln!(out, "{}", grant.access.token)?;
        for _ in 1..count {
            let access = auth.reissue_access_token(&grant).map_err(|e| anyhow::anyhow!("{e}"))?;
            writeln!(out, "{}", access.token)?;
        }
        out.flush().context("writing the tokens")
    }
    .await;
    auth.flush().await.ok();
    handles.close().await;
    minted
}
