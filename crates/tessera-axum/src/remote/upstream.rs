//! The HTTP client that talks to the Tessera server: one connection pool, a total timeout on
//! every request (connecting included), no redirects followed (a credential goes to the
//! configured server and nowhere else), no cookie store (cookies are set per request, never
//! remembered across users), and response bodies read only up to a limit.

use std::time::Duration;

use super::RemoteError;

/// The Tessera server, as reached from this application.
#[derive(Debug)]
pub(super) struct Upstream {
    client: reqwest::Client,
    /// `scheme://host[:port][/path]`, without a trailing slash.
    base: String,
}

impl Upstream {
    pub(super) fn new(base_url: &str, timeout: Duration) -> Result<Self, RemoteError> {
        let invalid = |why| RemoteError::InvalidUrl { url: base_url.to_owned(), why };
        let url = reqwest::Url::parse(base_url).map_err(|_| invalid("not an absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(invalid("there is no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("credentials do not belong in the URL"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a query or fragment is not allowed"));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tessera-axum/", env!("CARGO_PKG_VERSION"), " (remote mode)"))
            .build()
            .map_err(|e| RemoteError::Client(e.to_string()))?;
        Ok(Upstream { client, base: url.as_str().trim_end_matches('/').to_owned() })
    }

    /// The base URL, without a trailing slash.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// A `GET` of `path` (which starts with `/`) on the server.
    pub(super) fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.client.get(format!("{}{path}", self.base))
    }
}

/// The response body, if it is at most `limit` bytes.
pub(super) async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, String> {
    let too_large = || format!("the response body is larger than {limit} bytes");
    if response.content_length().is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}
