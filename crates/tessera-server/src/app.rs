//! [`Application`]: builds everything from a [`Config`], binds the listener (so tests can use
//! port 0 and ask which port they got), and runs until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use tessera::store::memory::MemoryStore;
use tessera::store::memory_throttle::MemoryThrottle;
use tessera::store::postgres::PostgresStore;
use tessera::store::postgres_keys::{PostgresKeyRing, SealedKeysError};
use tessera::store::redis::{RedisOptions, RedisStore};
use tessera::store::sqlite::SqliteStore;
use tessera::store::{
    AuditStore, RefreshStore, RevocationFeed, RevocationStore, SessionStore, Stores, ThrottleStore,
    UserStore,
};
use tessera::token::{KeyDir, KeyPolicy, KeyRing};
use tessera::{Authenticator, Clock, ServerSecret, SystemClock};
use tessera_axum::layers::ApiRules;
use tessera_axum::routes::api_routes;
use tessera_axum::{ApiError, HttpSettings, TesseraState};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::config::{Config, StoreKind};
use crate::edge::EdgeLayer;
use crate::http_metrics::HttpMetrics;
use crate::ops::{self, OpsState};
use crate::page;
use crate::serve::{ServeOptions, serve};

/// How often pending session renewals are written.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// How often expired state is purged.
const MAINTAIN_EVERY: Duration = Duration::from_secs(60);
/// How often the server checks whether its signing keys changed (a rotation by `tessera keys
/// rotate` or another instance) or are due to change (rotation, a retired key expiring).
pub const KEY_CHECK_EVERY: Duration = Duration::from_secs(2);
/// How much longer than `access_ttl + leeway` a retired key is kept: an instance that has not
/// noticed a rotation yet still signs with the old key for up to [`KEY_CHECK_EVERY`]; twice
/// that covers a check that ran late.
pub const KEY_PICKUP_MARGIN: Duration = Duration::from_secs(2 * KEY_CHECK_EVERY.as_secs());

/// A built server, bound and ready to run.
pub struct Application {
    listener: TcpListener,
    local_addr: SocketAddr,
    public_url: String,
    state: TesseraState,
    http_metrics: Arc<HttpMetrics>,
    options: ServeOptions,
    request_timeout: Duration,
    handles: StoreHandles,
    tls: Option<TlsAcceptor>,
    redirect: Option<TcpListener>,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("local_addr", &self.local_addr)
            .field("public_url", &self.public_url)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the stores, loads or creates keys, and binds the listener.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        tessera::fsutil::create_private_dir(&config.data_dir)?;
        if tessera::fsutil::is_shared_dir(&config.data_dir) {
            tracing::warn!(
                data_dir = %config.data_dir.display(),
                "the data directory is readable by other users; its files are private (0600), \
                 but consider `chmod 700` on the directory"
            );
        }
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr()?;
        let tls = match &config.tls {
            Some((cert, key)) => Some(crate::tls::acceptor(cert, key)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let public_url =
            config.public_url.clone().unwrap_or_else(|| format!("{scheme}://{local_addr}"));
        let redirect = match config.redirect_http {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("tls.redirect_http: cannot listen on {addr}"))?,
            ),
            None => None,
        };
        let (auth, handles) = open_engine(&config, &public_url).await?;

        let mut http = HttpSettings::new(&public_url);
        http.cookie_secure = config.cookie_secure;
        http.allowed_origins = config.allowed_origins;
        http.trusted_proxies = config.trusted_proxies.clone();
        // The edge layer (`edge.rs`) sets the security headers on every response.
        http.security_headers = false;
        if !http.cookie_secure {
            tracing::warn!(
                "cookie.secure = false: cookies are sent over plain HTTP and lose their __Host- \
                 prefix; use this for local development only"
            );
        }
        Ok(Application {
            listener,
            local_addr,
            public_url,
            state: TesseraState::new(auth, http),
            http_metrics: Arc::new(HttpMetrics::default()),
            options: ServeOptions {
                header_timeout: config.header_timeout,
                shutdown_timeout: config.shutdown_timeout,
                idle_timeout: config.idle_timeout,
                max_connections: config.max_connections,
            },
            request_timeout: config.request_timeout,
            handles,
            tls,
            redirect,
        })
    }

    /// The address of the plain-HTTP redirect listener, if `[tls] redirect_http` is set.
    pub fn redirect_addr(&self) -> Option<SocketAddr> {
        self.redirect.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// `http://ADDR` or `https://ADDR` for the bound address.
    pub fn local_url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.local_addr)
    }

    /// The URL the server considers its own.
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// The engine.
    pub fn authenticator(&self) -> &Authenticator {
        &self.state.auth
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests, writes pending
    /// session renewals and closes the stores.
    pub async fn run_until(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let router = app(self.state.clone(), self.http_metrics.clone(), self.request_timeout);
        let auth = self.state.auth.clone();
        let upkeep = tokio::spawn(upkeep(auth.clone()));
        let key_upkeep = tokio::spawn(key_upkeep(auth.clone()));
        let feed = {
            let auth = auth.clone();
            tokio::spawn(async move { auth.follow_revocation_feed().await })
        };
        // The redirector stops when the main server does.
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let redirector = self.redirect.map(|listener| {
            tracing::info!(
                addr = %listener.local_addr().map_or_else(|e| e.to_string(), |a| a.to_string()),
                "redirecting plain HTTP to {}", self.public_url
            );
            let router = crate::redirect::router(self.public_url.clone());
            let options = self.options;
            tokio::spawn(async move {
                let stop = async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                };
                serve(listener, router, None, options, stop).await;
            })
        });
        let shutdown = async move {
            shutdown.await;
            let _ = stop.send(true);
        };
        serve(self.listener, router, self.tls, self.options, shutdown).await;
        if let Some(redirector) = redirector {
            let _ = redirector.await;
        }
        upkeep.abort();
        key_upkeep.abort();
        feed.abort();
        // Wait until they have stopped, so nothing runs against a closing store.
        let _ = upkeep.await;
        let _ = key_upkeep.await;
        let _ = feed.await;
        match auth.flush().await {
            Ok(0) => {}
            Ok(n) => tracing::info!("wrote {n} pending session renewals"),
            Err(e) => tracing::error!("pending session renewals were not written: {e}"),
        }
        self.handles.close().await;
        Ok(())
    }
}

/// The engine as `serve` runs it: the configured stores, the shared signing keys and server
/// secret, and `public_url` as the default token issuer.
pub async fn open_engine(
    config: &Config,
    public_url: &str,
) -> anyhow::Result<(Authenticator, StoreHandles)> {
    let (stores, handles) = open_stores(config).await?;
    let (ring, secret) = load_keys(config, &handles).await?;
    let mut engine = config.engine.clone();
    if config.issuer.is_none() {
        engine.token.issuer = public_url.to_owned();
    }
    let auth = Authenticator::builder(engine, stores).key_ring(ring).secret(secret).build().await?;
    Ok((auth, handles))
}

/// The rules the signing keys are kept by: the configured algorithm (and HS256 secret), the
/// configured rotation, and retired keys kept while a token they signed may still be valid.
pub fn key_policy(config: &Config) -> KeyPolicy {
    let token = &config.engine.token;
    KeyPolicy {
        algorithm: config.algorithm,
        hs256_secret: config
            .hs256_secret
            .as_ref()
            .map(|s| secrecy::SecretSlice::from(secrecy::ExposeSecret::expose_secret(s).to_vec())),
        keep_retired: token.access_ttl + token.leeway + KEY_PICKUP_MARGIN,
        rotate_every: config.key_rotation,
    }
}

/// Where the signing keys are kept: sealed in PostgreSQL when users are there (`postgres`, the
/// open store), else in the data directory.
pub fn key_ring(
    config: &Config,
    postgres: Option<&Arc<PostgresStore>>,
) -> anyhow::Result<Arc<dyn KeyRing>> {
    if config.users_store != StoreKind::Postgres {
        return Ok(Arc::new(KeyDir::new(&config.data_dir, key_policy(config))));
    }
    let (Some(store), Some(kek)) = (postgres, &config.key_encryption_key) else {
        anyhow::bail!("store.key_encryption_key: required with store.users = \"postgres\"");
    };
    Ok(Arc::new(PostgresKeyRing::new(store.clone(), kek.clone(), key_policy(config))))
}

/// The signing keys' ring and the server secret: sealed in PostgreSQL when users are there
/// (so every instance has the same), else in the data directory.
async fn load_keys(
    config: &Config,
    handles: &StoreHandles,
) -> anyhow::Result<(Arc<dyn KeyRing>, ServerSecret)> {
    let now = SystemClock.now();
    let ring = key_ring(config, handles.postgres.as_ref())?;
    if config.users_store != StoreKind::Postgres {
        let secret = ServerSecret::load_or_create(&config.data_dir.join("secret.key"))?;
        return Ok((ring, secret));
    }
    let (Some(store), Some(kek)) = (&handles.postgres, &config.key_encryption_key) else {
        anyhow::bail!("store.key_encryption_key: required with store.users = \"postgres\"");
    };
    let key_name = match &config.key_encryption_key_file {
        Some(path) => {
            if tessera::fsutil::others_can_read(path) {
                tracing::warn!(
                    path = %path.display(),
                    "store.key_encryption_key_file is readable by other users; \
                     consider `chmod 600` on it"
                );
            }
            "store.key_encryption_key_file"
        }
        None => "store.key_encryption_key",
    };
    // The secret and a first key are created together, so instances starting at once agree
    // on both; the ring then loads (and keeps following) the keys.
    let policy = ring.policy();
    let (_, secret) = store
        .load_or_create_keys(
            kek,
            config.algorithm,
            config.hs256_secret.as_ref(),
            now,
            policy.keep_retired,
        )
        .await
        .map_err(|e| match e {
            SealedKeysError::WrongKey { .. } => anyhow::anyhow!(
                "{key_name}: {e}; every instance must use the key-encryption key the database \
                 was first started with"
            ),
            other => anyhow::Error::new(other)
                .context("loading the signing keys and the server secret from PostgreSQL"),
        })?;
    Ok((ring, secret))
}

/// The backends behind [`Stores`], to close them at the end.
#[derive(Debug, Default)]
pub struct StoreHandles {
    sqlite: Option<SqliteStore>,
    postgres: Option<Arc<PostgresStore>>,
}

impl StoreHandles {
    /// Closes every connection (waiting for those in use).
    pub async fn close(&self) {
        if let Some(sqlite) = &self.sqlite {
            sqlite.close().await;
        }
        if let Some(postgres) = &self.postgres {
            postgres.close().await;
        }
    }
}

/// Opens the configured stores: users, refresh families, revocations and the audit log in one,
/// sessions in the other; a backend is opened once even when it fills both places. With a
/// Redis URL, throttling counters and the revocation feed live in Redis (shared by every
/// instance); without, throttling counters are kept in this process, and the revocation feed
/// runs over PostgreSQL when users are there.
pub async fn open_stores(config: &Config) -> anyhow::Result<(Stores, StoreHandles)> {
    let uses = |kind| config.users_store == kind || config.sessions_store == kind;
    let postgres = match (&config.postgres_url, uses(StoreKind::Postgres)) {
        (Some(url), true) => Some(Arc::new(
            PostgresStore::connect(secrecy::ExposeSecret::expose_secret(url))
                .await
                .context("opening the PostgreSQL store (store.url)")?,
        )),
        _ => None,
    };
    let sqlite = if uses(StoreKind::Sqlite) {
        tessera::fsutil::create_private_dir(&config.data_dir)?;
        let path = config.data_dir.join("tessera.db");
        Some(
            SqliteStore::open(&path)
                .await
                .with_context(|| format!("opening {}", path.display()))?,
        )
    } else {
        None
    };
    let redis = match &config.redis_url {
        Some(url) => {
            let mut options = RedisOptions::new(config.engine.session.idle_timeout);
            options.prefix = config.redis_prefix.clone();
            options.topology = config.redis_topology.clone();
            let url = secrecy::ExposeSecret::expose_secret(url);
            Some(Arc::new(
                RedisStore::connect(url, options)
                    .await
                    .context("opening the Redis store (store.redis_url)")?,
            ))
        }
        None => None,
    };
    let memory = Arc::new(MemoryStore::default());
    let sqlite_arc = sqlite.clone().map(Arc::new);
    let pick = |kind: StoreKind| -> Arc<dyn AllStores> {
        match (kind, &sqlite_arc, &postgres) {
            (StoreKind::Sqlite, Some(store), _) => store.clone(),
            (StoreKind::Postgres, _, Some(store)) => store.clone(),
            _ => memory.clone(),
        }
    };
    let users = pick(config.users_store);
    let sessions: Arc<dyn SessionStore> = match (config.sessions_store, &redis) {
        (StoreKind::Redis, Some(redis)) => redis.clone(),
        (kind, _) => pick(kind),
    };
    let throttle: Arc<dyn ThrottleStore> = match &redis {
        Some(redis) => redis.clone(),
        None => Arc::new(MemoryThrottle::default()),
    };
    // Revocations are announced where the instances meet: on Redis when there is one, else on
    // the PostgreSQL database holding them (LISTEN/NOTIFY), else in the SQLite file holding
    // them (a table the server polls), which is how the admin commands reach a running server.
    // A memory store lives in one process, which needs no feed.
    let feed: Option<Arc<dyn RevocationFeed>> = match (&redis, &postgres, &sqlite_arc) {
        (Some(redis), _, _) => Some(redis.clone()),
        (None, Some(postgres), _) if config.users_store == StoreKind::Postgres => {
            Some(postgres.clone())
        }
        (None, _, Some(sqlite)) if config.users_store == StoreKind::Sqlite => Some(sqlite.clone()),
        _ => None,
    };
    // Revocations live with the refresh families they revoke, so they survive together.
    // The audit log is kept with the users it is about.
    let stores = Stores {
        users: users.clone(),
        refresh: users.clone(),
        revocations: users.clone(),
        audit: users,
        sessions,
        throttle,
        feed,
    };
    // This process is the SQLite file's only server, so an in-process cache stays exact; the
    // admin commands' changes reach it through the feed.
    let stores = match config.sessions_store {
        StoreKind::Sqlite if config.session_cache_capacity > 0 => {
            stores.with_session_cache(config.session_cache_capacity)
        }
        _ => stores,
    };
    // Redis connections close when the last handle is dropped.
    Ok((stores, StoreHandles { sqlite, postgres }))
}

/// Background upkeep: frequent renewal flushes, periodic purges.
async fn upkeep(auth: Authenticator) {
    let mut flush = tokio::time::interval(FLUSH_EVERY);
    let mut maintain = tokio::time::interval(MAINTAIN_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    maintain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if let Err(e) = auth.flush().await {
                    tracing::warn!("writing session renewals failed (will retry): {e}");
                }
            }
            _ = maintain.tick() => {
                if let Err(e) = auth.maintain().await {
                    tracing::warn!("purging expired state failed (will retry): {e}");
                }
            }
        }
    }
}

/// Follows the signing keys: every [`KEY_CHECK_EVERY`], picks up a rotation made elsewhere,
/// rotates when `token.key_rotation` says it is due, and drops retired keys whose tokens have
/// all expired.
async fn key_upkeep(auth: Authenticator) {
    let mut check = tokio::time::interval(KEY_CHECK_EVERY);
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        check.tick().await;
        if let Err(e) = auth.maintain_keys().await {
            tracing::warn!("checking the signing keys failed (will retry): {e}");
        }
    }
}

/// The whole HTTP surface: the API, the operations routes, the OpenAPI document and the demo
/// page.
pub fn app(
    state: TesseraState,
    http_metrics: Arc<HttpMetrics>,
    request_timeout: Duration,
) -> Router {
    let ops_state = OpsState { api: state.clone(), http_metrics: http_metrics.clone() };
    let https = state.http.public_origin.starts_with("https://");
    let rules = ApiRules::new(&state);
    Router::new()
        .route("/", get(page::index))
        .route("/assets/{file}", get(page::asset))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(crate::openapi::document))
        .with_state(ops_state)
        // The API's rules (Origin rule, CORS) are applied by the edge, to every request: one
        // layer level fewer on every API request than `api_router`'s own layer.
        .merge(api_routes(state))
        .fallback(tessera_axum::routes::not_found)
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(EdgeLayer::new(http_metrics, request_timeout, https, rules))
}

/// A backend that implements every store trait, so one value can fill any slot.
trait AllStores: UserStore + SessionStore + RefreshStore + RevocationStore + AuditStore {}

impl<T: UserStore + SessionStore + RefreshStore + RevocationStore + AuditStore> AllStores for T {}
