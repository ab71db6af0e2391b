//! [`Authenticator`]: the one entry point that ties users, passwords, sessions, tokens,
//! throttling and revocation together. Every HTTP route is a thin call into one of its methods.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use crate::audit::{AuditEvent, AuditFilter, AuditKind, FailureBudget};
use crate::clock::{Clock, SystemClock, Timestamp};
use crate::crypto::{Digest, ServerSecret, sha256};
use crate::csrf::CsrfTokens;
use crate::error::Error;
use crate::ids;
use crate::limit::LoginLimiter;
use crate::metrics::{AuthOutcome, LoginOutcome, Metrics, RefreshResult};
use crate::password::{PasswordHasher, policy};
use crate::principal::{AuthMethod, Principal};
use crate::session::{ActiveSession, NewSession, SessionManager};
use crate::settings::Settings;
use crate::store::{ClientInfo, RevocationFeed, StoreError, Stores, UserRecord};
use crate::token::keyring::{KeyRing, Rotation, SyncedKeys, next_change};
use crate::token::refresh::{IssuedRefreshToken, RefreshOutcome, RefreshTokens};
use crate::token::{AccessTokens, Algorithm, IssuedAccessToken, KeySet, RevocationSet, SigningKey};

mod admin;

pub use admin::EndedLogins;

/// Tokens handed out by a token login or a refresh.
pub struct TokenGrant {
    /// The access token (JWT).
    pub access: IssuedAccessToken,
    /// The refresh token and its family.
    pub refresh: IssuedRefreshToken,
    /// The CSRF token for cookie delivery (bound to the family).
    pub csrf_token: String,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access", &self.access)
            .field("refresh", &self.refresh)
            .field("csrf_token", &"[redacted]")
            .finish()
    }
}

/// One entry of a user's "where am I logged in" list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginInfo {
    /// Public handle (session id handle or refresh family `sid`).
    pub id: String,
    /// Session or token family.
    pub method: AuthMethod,
    /// Login time.
    pub created_at: Timestamp,
    /// Last use (session) or last refresh (token family).
    pub last_seen_at: Timestamp,
    /// When it ends if not used again.
    pub expires_at: Timestamp,
    /// Where the login came from.
    pub client: ClientInfo,
    /// It is the credential of the request asking.
    pub current: bool,
}

/// The authentication engine. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    settings: Settings,
    clock: Arc<dyn Clock>,
    stores: Stores,
    hasher: PasswordHasher,
    sessions: SessionManager,
    access: AccessTokens,
    refresh: RefreshTokens,
    revoked: Arc<RevocationSet>,
    /// The feed is connected and this process's revocation set is in sync with the store.
    feed_live: AtomicBool,
    /// Revocations the feed could not take yet (retried by [`Authenticator::flush`]).
    unpublished: Mutex<Vec<(String, Timestamp)>>,
    csrf: CsrfTokens,
    limiter: LoginLimiter,
    audit_failures: FailureBudget,
    metrics: Metrics,
    /// Where the signing keys are kept, if they can change while the process runs.
    key_ring: Option<Arc<dyn KeyRing>>,
    /// What this process last loaded from the ring.
    key_watch: Mutex<KeyWatch>,
}

/// What an authenticator last loaded from its [`KeyRing`], to tell when to load again.
#[derive(Debug, Default)]
struct KeyWatch {
    /// The ring's fingerprint then (empty: never loaded).
    fingerprint: Vec<u8>,
    /// When the keys change next without anyone asking (rotation due, a retired key expiring).
    next_change: Option<Timestamp>,
    /// When the signing key was created.
    signing_since: Option<Timestamp>,
    /// The signing key's `kid`.
    signing_kid: String,
}

impl KeyWatch {
    fn update(&mut self, synced: &SyncedKeys, ring: &dyn KeyRing) {
        self.fingerprint.clone_from(&synced.fingerprint);
        self.next_change = next_change(&synced.entries, ring.policy());
        self.signing_since = synced.signing_since();
        synced.keys.signing().public().kid().clone_into(&mut self.signing_kid);
    }
}

/// Builds an [`Authenticator`].
#[derive(Debug)]
pub struct AuthenticatorBuilder {
    settings: Settings,
    stores: Stores,
    keys: Option<KeySet>,
    secret: Option<ServerSecret>,
    data_dir: Option<PathBuf>,
    key_ring: Option<Arc<dyn KeyRing>>,
    clock: Arc<dyn Clock>,
}

impl AuthenticatorBuilder {
    /// Keeps the signing keys (`keys/`, Ed25519) and the server secret (`secret.key`) in
    /// `dir`, created with owner-only permissions on the first start, so access tokens, refresh
    /// tokens and CSRF tokens stay valid across restarts. The same layout as the server's data
    /// directory. Without it (and without [`keys`](Self::keys) and [`secret`](Self::secret)),
    /// both are fresh in memory and every token dies with the process.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// Signs tokens with `keys` (default: a fresh in-memory Ed25519 key).
    pub fn keys(mut self, keys: KeySet) -> Self {
        self.keys = Some(keys);
        self
    }

    /// Loads the signing keys from `ring` (instead of [`keys`](Self::keys) or the data
    /// directory) and follows it: [`maintain_keys`](Authenticator::maintain_keys) picks up
    /// rotations made by other processes and rotates when the ring's policy says it is due.
    pub fn key_ring(mut self, ring: Arc<dyn KeyRing>) -> Self {
        self.key_ring = Some(ring);
        self
    }

    /// Derives CSRF and refresh-successor keys from `secret` (default: a fresh random one,
    /// which does not survive a restart).
    pub fn secret(mut self, secret: ServerSecret) -> Self {
        self.secret = Some(secret);
        self
    }

    /// Uses `clock` for every time-dependent rule (default: the system clock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Starts the password workers and loads the revocation set from the store.
    pub async fn build(self) -> Result<Authenticator, Error> {
        let AuthenticatorBuilder { settings, stores, keys, secret, data_dir, key_ring, clock } =
            self;
        settings
            .validate()
            .map_err(|(key, message)| Error::internal(format!("{key}: {message}")))?;
        if let Some(dir) = &data_dir {
            crate::fsutil::create_private_dir(dir)?;
        }
        let mut key_watch = KeyWatch::default();
        let keys = match (keys, &data_dir, &key_ring) {
            (_, _, Some(ring)) => {
                let synced = ring.sync(Rotation::IfDue, clock.now()).await?;
                key_watch.update(&synced, &**ring);
                synced.keys
            }
            (Some(keys), _, None) => keys,
            (None, Some(dir), None) => {
                // Retired keys verify until the last token they signed has expired.
                let keep = settings.token.access_ttl + settings.token.leeway;
                KeySet::load_or_create(dir, Algorithm::EdDSA, None, clock.now(), keep)?
            }
            (None, None, None) => KeySet::single(SigningKey::generate(Algorithm::EdDSA)?.0),
        };
        let secret = match (secret, &data_dir) {
            (Some(secret), _) => secret,
            (None, Some(dir)) => ServerSecret::load_or_create(&dir.join("secret.key"))?,
            (None, None) => ServerSecret::generate()?,
        };
        let revoked = Arc::new(RevocationSet::default());
        for (sid, until) in stores.revocations.active_revocations(clock.now()).await? {
            revoked.insert(&sid, until);
        }
        let hasher = PasswordHasher::new(settings.password.params, settings.password.workers)?;
        let inner = Inner {
            sessions: SessionManager::new(
                stores.sessions.clone(),
                settings.session.clone(),
                clock.clone(),
            ),
            access: AccessTokens::new(keys, settings.token.clone(), clock.clone(), revoked.clone()),
            refresh: RefreshTokens::new(
                stores.refresh.clone(),
                secret.derive("tessera refresh successor v1"),
                settings.token.clone(),
                clock.clone(),
            ),
            csrf: CsrfTokens::new(secret.derive("tessera csrf v1")),
            limiter: LoginLimiter::new(
                settings.limits.clone(),
                clock.clone(),
                stores.throttle.clone(),
            ),
            feed_live: AtomicBool::new(false),
            unpublished: Mutex::new(Vec::new()),
            audit_failures: FailureBudget::default(),
            metrics: Metrics::default(),
            key_ring,
            key_watch: Mutex::new(key_watch),
            hasher,
            revoked,
            stores,
            clock,
            settings,
        };
        Ok(Authenticator { inner: Arc::new(inner) })
    }
}

impl Authenticator {
    /// Starts building an authenticator over `stores`.
    pub fn builder(settings: Settings, stores: Stores) -> AuthenticatorBuilder {
        AuthenticatorBuilder {
            settings,
            stores,
            keys: None,
            secret: None,
            data_dir: None,
            key_ring: None,
            clock: Arc::new(SystemClock),
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// CSRF token derivation and checks.
    pub fn csrf(&self) -> &CsrfTokens {
        &self.inner.csrf
    }

    /// The keys in force.
    pub fn keys(&self) -> Arc<KeySet> {
        self.inner.access.keys()
    }

    /// The JWKS document.
    pub fn jwks_json(&self) -> Arc<str> {
        Arc::clone(self.inner.access.keys().jwks_json())
    }

    /// The engine's metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The current time by the engine's clock.
    pub fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    // --- users ------------------------------------------------------------------------------

    /// Self-service registration by `client`: refused with [`Error::RegistrationClosed`]
    /// unless open, and throttled per IP (each registration costs a password hash).
    pub async fn register(
        &self,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<UserRecord, Error> {
        let result = self.register_inner(username, password, client).await;
        if let Some(event) = self.outcome_event(AuditKind::Register, client, &result) {
            let event = match &result {
                Ok(user) => event.user(user),
                Err(_) => event.username(policy::normalize_username(username).ok()),
            };
            self.audit(event).await;
        }
        result
    }

    async fn register_inner(
        &self,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<UserRecord, Error> {
        if !self.inner.settings.registration_open {
            return Err(Error::RegistrationClosed);
        }
        self.inner.limiter.registration(client.ip.as_deref()).await?;
        self.insert_new_user(username, password).await
    }

    /// Creates a user whatever the registration setting (for administrators; audited as
    /// `user_create` from `client`).
    pub async fn create_user(
        &self,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<UserRecord, Error> {
        let result = self.insert_new_user(username, password).await;
        if let Some(event) = self.outcome_event(AuditKind::UserCreate, client, &result) {
            let event = match &result {
                Ok(user) => event.user(user),
                Err(_) => event.username(policy::normalize_username(username).ok()),
            };
            self.audit(event).await;
        }
        result
    }

    async fn insert_new_user(
        &self,
        username: &str,
        password: &SecretString,
    ) -> Result<UserRecord, Error> {
        let username = policy::normalize_username(username)?;
        policy::check_password("password", password.expose_secret(), &username)?;
        if self.inner.stores.users.find_user_by_username(&username).await?.is_some() {
            return Err(Error::UsernameTaken);
        }
        let now = self.now();
        let user = UserRecord {
            id: ids::uuid_v7(now)?,
            username,
            password_hash: self.inner.hasher.hash(password).await?,
            created_at: now,
            disabled_at: None,
        };
        // Two registrations racing past the check above meet the unique index here.
        self.inner
            .stores
            .users
            .insert_user(&user)
            .await
            .map_err(on_conflict(Error::UsernameTaken))?;
        self.inner.metrics.registration();
        Ok(user)
    }

    /// Checks a username and password for a login by `method`, with throttling by username
    /// and by the client's IP. The error is the same for an unknown user and a wrong password,
    /// and takes the same time.
    ///
    /// A failure is audited here; a success when the login's session or token family starts
    /// ([`start_session`](Self::start_session), [`issue_tokens`](Self::issue_tokens)), so the
    /// audit entry names it.
    pub async fn login(
        &self,
        method: AuthMethod,
        username: &str,
        password: &SecretString,
        client: &ClientInfo,
    ) -> Result<UserRecord, Error> {
        let started = Instant::now();
        let result = self.check_password(username, password, client.ip.as_deref()).await;
        if let Err(e) = &result {
            let tried = policy::normalize_username(username).ok();
            let event = AuditEvent::failure(AuditKind::Login, self.now(), client, e.code())
                .username(tried)
                .method(method);
            self.audit(event).await;
        }
        let outcome = match &result {
            Ok(_) => LoginOutcome::Success,
            // A disabled user's right password is refused credentials too.
            Err(Error::InvalidCredentials | Error::UserDisabled) => {
                LoginOutcome::InvalidCredentials
            }
            Err(Error::RateLimited { .. }) => LoginOutcome::RateLimited,
            Err(_) => LoginOutcome::Error,
        };
        self.inner.metrics.login(method, outcome, started.elapsed());
        result
    }

    async fn check_password(
        &self,
        username: &str,
        password: &SecretString,
        ip: Option<&str>,
    ) -> Result<UserRecord, Error> {
        let inner = &self.inner;
        let username = username.to_ascii_lowercase();
        let attempt = inner.limiter.begin_login(&username, ip).await?;
        let user = inner.stores.users.find_user_by_username(&username).await?;
        let verdict =
            inner.hasher.verify(password, user.as_ref().map(|u| u.password_hash.as_str())).await?;
        let Some(mut user) = user.filter(|_| verdict.matches) else {
            attempt.failed().await?;
            return Err(Error::InvalidCredentials);
        };
        if user.disabled_at.is_some() {
            // Only someone who knows the password learns that the account is disabled; it
            // counts as a failure, so the answer cannot test passwords faster than the limit.
            attempt.failed().await?;
            return Err(Error::UserDisabled);
        }
        attempt.succeeded().await?;
        if verdict.needs_rehash {
            match inner.hasher.hash(password).await {
                Ok(hash) => match inner.stores.users.update_password_hash(&user.id, &hash).await {
                    Ok(_) => user.password_hash = hash,
                    Err(e) => {
                        tracing::warn!(user_id = %user.id, "password re-hash not stored: {e}")
                    }
                },
                Err(e) => tracing::warn!(user_id = %user.id, "password re-hash failed: {e}"),
            }
        }
        Ok(user)
    }

    /// Changes the caller's password and ends every other session and token family.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let result = self.change_password_inner(principal, current, new, client).await;
        if let Some(event) = self.outcome_event(AuditKind::PasswordChange, client, &result) {
            self.audit(event.principal(principal)).await;
        }
        result
    }

    async fn change_password_inner(
        &self,
        principal: &Principal,
        current: &SecretString,
        new: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let ip = client.ip.as_deref();
        let inner = &self.inner;
        policy::check_password("new_password", new.expose_secret(), &principal.username)?;
        if new.expose_secret() == current.expose_secret() {
            return Err(Error::validation("new_password", "must differ from the current password"));
        }
        let attempt = inner.limiter.begin_login(&principal.username, ip).await?;
        let user = inner
            .stores
            .users
            .find_user_by_id(&principal.user_id)
            .await?
            .ok_or(Error::Unauthorized)?;
        if !inner.hasher.verify(current, Some(&user.password_hash)).await?.matches {
            attempt.failed().await?;
            return Err(Error::InvalidCredentials);
        }
        attempt.succeeded().await?;
        let hash = inner.hasher.hash(new).await?;
        // Other logins end before the new hash is stored, so a crash in between cannot leave
        // the password changed with a thief's session still alive; a login with the old
        // password racing the change is ended by the second sweep.
        self.end_other_logins(&user.id, Some(&principal.sid)).await?;
        if !inner.stores.users.update_password_hash(&user.id, &hash).await? {
            return Err(Error::Unauthorized);
        }
        self.end_other_logins(&user.id, Some(&principal.sid)).await.map(|_| ())
    }

    /// Whether the user still exists and is not disabled, asked after a login created its
    /// session or token family: an administrator who disabled or deleted the user while the
    /// password was being checked ended every login that existed then, and this one must not
    /// outlive that.
    async fn still_enabled(&self, user_id: &str) -> Result<bool, Error> {
        let user = self.inner.stores.users.find_user_by_id(user_id).await?;
        Ok(user.is_some_and(|u| u.disabled_at.is_none()))
    }

    // --- sessions ---------------------------------------------------------------------------

    /// Starts a session for a user who just logged in (audited as a successful login).
    pub async fn start_session(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<NewSession, Error> {
        let session = self.inner.sessions.create(&user.id, &user.username, client.clone()).await?;
        if !self.still_enabled(&user.id).await? {
            self.inner.sessions.delete(session.session.token_hash()).await?;
            return Err(Error::UserDisabled);
        }
        let event = AuditEvent::success(AuditKind::Login, self.now(), client)
            .user(user)
            .method(AuthMethod::Session)
            .sid(&session.session.sid());
        self.audit(event).await;
        Ok(session)
    }

    /// Authenticates a request by its session cookie value (and renews the session).
    pub async fn authenticate_session(
        &self,
        cookie_value: &SecretString,
    ) -> Result<(Principal, ActiveSession), Error> {
        self.authenticate_session_cookie(cookie_value.expose_secret()).await
    }

    /// [`authenticate_session`](Self::authenticate_session) for a cookie value as it arrived
    /// (no copy into a [`SecretString`] on the per-request path).
    pub async fn authenticate_session_cookie(
        &self,
        cookie_value: &str,
    ) -> Result<(Principal, ActiveSession), Error> {
        let started = Instant::now();
        let result = self.inner.sessions.authenticate(cookie_value).await;
        self.inner.metrics.authentication(
            AuthMethod::Session,
            auth_outcome(&result),
            started.elapsed(),
        );
        let session = result?;
        let principal = Principal {
            user_id: session.user_id(),
            username: session.username().to_owned(),
            method: AuthMethod::Session,
            sid: session.sid(),
            expires_at: session.idle_expires_at,
        };
        Ok((principal, session))
    }

    /// Ends the session a request came with (logout).
    pub async fn end_session(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.inner.sessions.delete_for_user(&principal.user_id, &principal.sid).await?;
        self.audit(AuditEvent::success(AuditKind::Logout, self.now(), client).principal(principal))
            .await;
        Ok(())
    }

    /// Ends the session whose secret id has this digest (the one a new login replaces).
    pub async fn end_session_by_digest(&self, digest: &Digest) -> Result<(), Error> {
        self.inner.sessions.delete(digest).await?;
        Ok(())
    }

    // --- tokens -----------------------------------------------------------------------------

    /// Issues an access token and starts a refresh family for a user who just logged in
    /// (audited as a successful login).
    pub async fn issue_tokens(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<TokenGrant, Error> {
        let refresh = self.inner.refresh.start(&user.id, &user.username, client.clone()).await?;
        if !self.still_enabled(&user.id).await? {
            self.revoke_family(&refresh.family.sid, None).await?;
            return Err(Error::UserDisabled);
        }
        let event = AuditEvent::success(AuditKind::Login, self.now(), client)
            .user(user)
            .method(AuthMethod::Token)
            .sid(&refresh.family.sid);
        let grant = self.grant(refresh)?;
        self.audit(event).await;
        Ok(grant)
    }

    fn grant(&self, refresh: IssuedRefreshToken) -> Result<TokenGrant, Error> {
        let family = &refresh.family;
        let access = self.inner.access.issue(&family.user_id, &family.username, &family.sid)?;
        let csrf_token = self.inner.csrf.token_for(&family.sid);
        Ok(TokenGrant { access, refresh, csrf_token })
    }

    /// Signs another access token for the login `grant` started: same user, same `sid`, a new
    /// `jti`. For load generators and tests that need many distinct valid tokens without a
    /// password hash each; revoking the login revokes every one of them.
    pub fn reissue_access_token(&self, grant: &TokenGrant) -> Result<IssuedAccessToken, Error> {
        let family = &grant.refresh.family;
        self.inner.access.issue(&family.user_id, &family.username, &family.sid)
    }

    /// Authenticates a request by its access token.
    ///
    /// Revocation is checked in this process's revocation set. While a configured revocation
    /// feed is down (this process might be missing revocations made elsewhere), the store is
    /// asked as well, and a store that cannot answer fails the request.
    pub async fn authenticate_token(&self, token: &str) -> Result<Principal, Error> {
        let started = Instant::now();
        let result = self.verify_access_token(token).await;
        self.inner.metrics.authentication(
            AuthMethod::Token,
            auth_outcome(&result),
            started.elapsed(),
        );
        let claims = result?;
        Ok(Principal {
            user_id: claims.sub.clone(),
            username: claims.username.clone(),
            method: AuthMethod::Token,
            sid: claims.sid.clone(),
            expires_at: Timestamp::from_unix_seconds(claims.exp),
        })
    }

    async fn verify_access_token(
        &self,
        token: &str,
    ) -> Result<Arc<crate::token::AccessClaims>, Error> {
        let claims = self.inner.access.verify(token).await?;
        let inner = &self.inner;
        if inner.stores.feed.is_some()
            && !inner.feed_live.load(Ordering::Acquire)
            && inner.stores.revocations.is_revoked(&claims.sid, self.now()).await?
        {
            return Err(Error::TokenInvalid("the token's session has been revoked"));
        }
        Ok(claims)
    }

    /// Exchanges a refresh token for a new access token and refresh token.
    ///
    /// A spent token presented again outside the retry grace revokes its whole family (the
    /// refresh tokens and every access token carrying its `sid`) and fails with
    /// [`Error::TokenReused`].
    pub async fn refresh(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<TokenGrant, Error> {
        let result = self.refresh_inner(token, client).await;
        let metric = match &result {
            Ok((_, retried)) if *retried => RefreshResult::Retried,
            Ok(_) => RefreshResult::Rotated,
            Err(Error::TokenReused) => RefreshResult::Reused,
            Err(Error::Store(_) | Error::Internal(_)) => RefreshResult::Error,
            Err(_) => RefreshResult::Rejected,
        };
        self.inner.metrics.refresh(metric);
        match &result {
            Ok((grant, _)) => {
                let family = &grant.refresh.family;
                let event = AuditEvent::success(AuditKind::Refresh, self.now(), client)
                    .principal(&family_principal(family.user_id.clone(), family));
                self.audit(event).await;
            }
            // Reuse is audited where the family is known.
            Err(Error::TokenReused) => {}
            Err(e) => {
                let event = AuditEvent::failure(AuditKind::Refresh, self.now(), client, e.code())
                    .method(AuthMethod::Token);
                self.audit(event).await;
            }
        }
        result.map(|(grant, _)| grant)
    }

    async fn refresh_inner(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<(TokenGrant, bool), Error> {
        let limiter = &self.inner.limiter;
        let admit = async |family: &crate::store::FamilyRecord| limiter.refresh(&family.sid).await;
        match self.inner.refresh.refresh(token, admit).await? {
            RefreshOutcome::Rotated(next) => Ok((self.grant(next)?, false)),
            RefreshOutcome::Retried(next) => Ok((self.grant(next)?, true)),
            RefreshOutcome::Reused(family) => {
                tracing::warn!(
                    user_id = %family.user_id,
                    sid = %family.sid,
                    "refresh token reuse: revoking the whole family"
                );
                let revoked = self.revoke_family(&family.sid, None).await;
                let event = AuditEvent::failure(
                    AuditKind::RefreshReuse,
                    self.now(),
                    client,
                    Error::TokenReused.code(),
                )
                .principal(&family_principal(family.user_id.clone(), &family));
                self.audit(event).await;
                revoked?;
                Err(Error::TokenReused)
            }
        }
    }

    /// Which family a refresh token belongs to, if it is a known token (for CSRF checks of
    /// cookie-delivered refresh tokens).
    pub async fn refresh_token_family(
        &self,
        token: &SecretString,
    ) -> Result<Option<String>, Error> {
        let hash = sha256(token.expose_secret().as_bytes());
        Ok(self.inner.stores.refresh.find_refresh_token(&hash).await?.map(|(_, family)| family.sid))
    }

    /// RFC 7009 revocation of a refresh token or an access token: its family is revoked.
    /// Unknown, malformed or foreign tokens are not an error (and are audited without a user).
    pub async fn revoke_token(
        &self,
        token: &SecretString,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let token = token.expose_secret();
        let sid = if token.contains('.') {
            match self.inner.access.verify_ignoring_expiry(token) {
                Ok(claims) => Some(claims.sid),
                Err(_) => None,
            }
        } else {
            let hash = sha256(token.as_bytes());
            self.inner.stores.refresh.find_refresh_token(&hash).await?.map(|(_, family)| family.sid)
        };
        let mut event = AuditEvent::success(AuditKind::TokenRevoke, self.now(), client)
            .method(AuthMethod::Token);
        if let Some(sid) = sid {
            if let Some(family) = self.inner.stores.refresh.find_family(&sid).await? {
                event = event.principal(&family_principal(family.user_id.clone(), &family));
            } else {
                event = event.sid(&sid);
            }
            self.revoke_family(&sid, None).await?;
        }
        self.audit(event).await;
        Ok(())
    }

    /// Deletes a refresh family and makes its access tokens fail at once. With `user_id`, only
    /// a family of that user; returns whether one was deleted.
    ///
    /// The `sid` is revoked in memory before the store is asked: if the store fails, the
    /// family's access tokens are refused by this process anyway (fail closed). The store
    /// deletes the family and records its revocation in one transaction, so a crash leaves
    /// both or neither.
    async fn revoke_family(&self, sid: &str, user_id: Option<&str>) -> Result<bool, Error> {
        let refresh = &self.inner.stores.refresh;
        if let Some(user_id) = user_id {
            // Only the caller's own family: never revoke someone else's tokens.
            match refresh.find_family(sid).await? {
                Some(family) if family.user_id == user_id => {}
                _ => return Ok(false),
            }
        }
        let sids = [sid.to_owned()];
        let until = self.revoke_in_memory(&sids);
        let deleted = refresh.delete_family(sid, user_id, until).await?.is_some();
        self.announce(&sids, until).await;
        Ok(deleted)
    }

    /// Puts `sids` in this process's revocation set; returns until when they stay there (the
    /// deadline to persist with them).
    fn revoke_in_memory(&self, sids: &[String]) -> Timestamp {
        let until = self.now().plus(self.inner.access.revocation_lifetime());
        for sid in sids {
            self.inner.revoked.insert(sid, until);
        }
        until
    }

    /// Tells the other instances about revocations that are now stored. A message the feed
    /// cannot take is kept and retried by [`flush`](Self::flush); until then the others see
    /// the revocation in the store when they reload it: after any reconnection, and every
    /// [`FEED_RELOAD_EVERY`] anyway.
    async fn announce(&self, sids: &[String], until: Timestamp) {
        let Some(feed) = &self.inner.stores.feed else { return };
        for (i, sid) in sids.iter().enumerate() {
            if let Err(e) = feed.publish(sid, until).await {
                tracing::warn!("revocation feed: publishing failed, will retry: {e}");
                let mut unpublished = lock(&self.inner.unpublished);
                // Bounded: past this, the others' periodic reload from the store carries them.
                let room = MAX_UNPUBLISHED.saturating_sub(unpublished.len());
                unpublished.extend(sids[i..].iter().take(room).map(|sid| (sid.clone(), until)));
                return;
            }
        }
    }

    /// Retries the revocations the feed could not take; returns how many went out.
    async fn republish(&self, feed: &Arc<dyn RevocationFeed>) -> Result<usize, StoreError> {
        let now = self.now();
        let mut pending = std::mem::take(&mut *lock(&self.inner.unpublished));
        // Past its deadline a revocation protects nothing any more.
        pending.retain(|(_, until)| *until > now);
        for (i, (sid, until)) in pending.iter().enumerate() {
            if let Err(e) = feed.publish(sid, *until).await {
                lock(&self.inner.unpublished).extend(pending[i..].iter().cloned());
                return Err(e);
            }
        }
        Ok(pending.len())
    }

    /// Follows the revocation feed for as long as the future is polled (spawn it once per
    /// process; it returns at once when no feed is configured).
    ///
    /// After every (re)connection it reloads the revocations in force from the store, so
    /// nothing published while it was away is missed; until then, and whenever the
    /// subscription is lost, token checks also ask the store (see
    /// [`authenticate_token`](Self::authenticate_token)).
    pub async fn follow_revocation_feed(&self) {
        let Some(feed) = self.inner.stores.feed.clone() else { return };
        let inner = &self.inner;
        // However this future ends (dropped, aborted, or a panic unwinding through it), the
        // feed is no longer followed: token checks must go back to asking the store.
        let _not_followed = NotLive(&inner.feed_live);
        let mut backoff = FEED_RETRY_MIN;
        loop {
            inner.feed_live.store(false, Ordering::Release);
            match self.resubscribe(&feed).await {
                Ok(mut subscription) => {
                    inner.feed_live.store(true, Ordering::Release);
                    inner.metrics.feed_connected();
                    tracing::info!("revocation feed: subscribed and in sync");
                    backoff = FEED_RETRY_MIN;
                    // Also reload now and then: a revocation whose instance could not publish it
                    // (cut off from the feed but not from the store) reaches this one anyway.
                    let mut reload = tokio::time::interval(FEED_RELOAD_EVERY);
                    reload.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    reload.tick().await;
                    let lost = loop {
                        tokio::select! {
                            message = subscription.next() => match message {
                                Ok((sid, until)) => {
                                    tracing::debug!(%sid, "revocation feed: message");
                                    inner.revoked.insert(&sid, until);
                                    // It may name a session (or a user whose sessions all
                                    // ended) that another process ended: drop cached copies.
                                    inner.sessions.store().forget_cached(&sid);
                                }
                                Err(e) => break e,
                            },
                            _ = reload.tick() => {
                                if let Err(e) = self.reload_revocations().await {
                                    tracing::warn!("revocation feed: periodic reload failed: {e}");
                                }
                            }
                        }
                    };
                    inner.feed_live.store(false, Ordering::Release);
                    tracing::warn!("revocation feed: subscription lost, resubscribing: {lost}");
                }
                Err(e) => {
                    tracing::warn!("revocation feed: cannot subscribe (retrying): {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(FEED_RETRY_MAX);
                }
            }
        }
    }

    /// Subscribes, then loads every revocation in force, so none published meanwhile is lost.
    async fn resubscribe(
        &self,
        feed: &Arc<dyn RevocationFeed>,
    ) -> Result<Box<dyn crate::store::FeedSubscription>, StoreError> {
        let subscription = feed.subscribe().await?;
        self.reload_revocations().await?;
        Ok(subscription)
    }

    /// Adds every revocation in force in the store to this process's set.
    async fn reload_revocations(&self) -> Result<(), StoreError> {
        for (sid, until) in self.inner.stores.revocations.active_revocations(self.now()).await? {
            self.inner.revoked.insert(&sid, until);
        }
        Ok(())
    }

    /// Whether this process follows a revocation feed that is connected and in sync (`None`
    /// when no feed is configured).
    pub fn feed_live(&self) -> Option<bool> {
        self.inner.stores.feed.as_ref().map(|_| self.inner.feed_live.load(Ordering::Acquire))
    }

    // --- both -------------------------------------------------------------------------------

    /// The user's sessions and token families.
    pub async fn list_logins(&self, principal: &Principal) -> Result<Vec<LoginInfo>, Error> {
        self.logins_of(&principal.user_id, Some(principal)).await
    }

    /// The sessions and token families of user `user_id`, marking `current` the credential of
    /// `asking`.
    async fn logins_of(
        &self,
        user_id: &str,
        asking: Option<&Principal>,
    ) -> Result<Vec<LoginInfo>, Error> {
        let now = self.now();
        let is_current = |method: AuthMethod, sid: &str| {
            asking.is_some_and(|p| p.method == method && p.sid == sid)
        };
        let refresh_ttl = self.inner.settings.token.refresh_ttl;
        let mut list: Vec<LoginInfo> = self
            .inner
            .sessions
            .list(user_id)
            .await?
            .into_iter()
            .map(|s| {
                let record = s.record();
                LoginInfo {
                    current: is_current(AuthMethod::Session, &record.sid),
                    id: record.sid,
                    method: AuthMethod::Session,
                    created_at: record.created_at,
                    last_seen_at: record.last_seen_at,
                    expires_at: s.idle_expires_at,
                    client: record.client,
                }
            })
            .collect();
        for family in self.inner.stores.refresh.list_user_families(user_id).await? {
            let expires_at = family.last_used_at.plus(refresh_ttl).min(family.expires_at);
            if expires_at <= now {
                continue;
            }
            list.push(LoginInfo {
                current: is_current(AuthMethod::Token, &family.sid),
                id: family.sid,
                method: AuthMethod::Token,
                created_at: family.created_at,
                last_seen_at: family.last_used_at,
                expires_at,
                client: family.client,
            });
        }
        list.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(list)
    }

    /// Ends one of the caller's own sessions or token families by its public handle;
    /// [`Error::NotFound`] if it is not theirs (or does not exist).
    pub async fn end_login(
        &self,
        principal: &Principal,
        id: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let ended = if self.inner.sessions.delete_for_user(&principal.user_id, id).await?.is_some()
        {
            Some(AuthMethod::Session)
        } else if self.revoke_family(id, Some(&principal.user_id)).await? {
            Some(AuthMethod::Token)
        } else {
            None
        };
        let method = ended.ok_or(Error::NotFound)?;
        // The event names the login that ended, not the one that asked.
        let event = AuditEvent::success(AuditKind::LoginEnd, self.now(), client)
            .principal(principal)
            .method(method)
            .sid(id);
        self.audit(event).await;
        Ok(())
    }

    /// Logout everywhere: every session and token family of the caller's user.
    pub async fn end_all_logins(
        &self,
        principal: &Principal,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        self.end_other_logins(&principal.user_id, None).await?;
        let event = AuditEvent::success(AuditKind::LogoutEverywhere, self.now(), client)
            .principal(principal);
        self.audit(event).await;
        Ok(())
    }

    /// Ends every session and token family of the user but `keep_sid`. Access tokens are
    /// revoked in memory before the store is asked (fail closed if it fails half-way); the
    /// store deletes the families and records their revocations in one transaction.
    async fn end_other_logins(
        &self,
        user_id: &str,
        keep_sid: Option<&str>,
    ) -> Result<EndedLogins, Error> {
        let refresh = &self.inner.stores.refresh;
        let doomed: Vec<String> = refresh
            .list_user_families(user_id)
            .await?
            .into_iter()
            .map(|f| f.sid)
            .filter(|sid| Some(sid.as_str()) != keep_sid)
            .collect();
        let until = self.revoke_in_memory(&doomed);
        // A family created between the listing and now is deleted (and revoked) too.
        let deleted = refresh.delete_user_families(user_id, keep_sid, until).await?;
        let tokens = deleted.len();
        let late: Vec<String> = deleted.into_iter().filter(|sid| !doomed.contains(sid)).collect();
        self.revoke_in_memory(&late);
        self.announce(&doomed, until).await;
        self.announce(&late, until).await;
        let sessions = self.inner.sessions.delete_all_for_user(user_id, keep_sid).await?;
        Ok(EndedLogins { sessions, tokens })
    }

    // --- audit ------------------------------------------------------------------------------

    /// Appends `event` to the audit log. A failed write is logged and counted, and does not
    /// fail the operation it records: by then the operation has happened. Failures of
    /// unauthenticated requests beyond [`FailureBudget`] are counted, not written.
    async fn audit(&self, event: AuditEvent) {
        if !self.inner.audit_failures.admit(&event, self.now()) {
            self.inner.metrics.audit_event_dropped();
            return;
        }
        if let Err(e) = self.inner.stores.audit.append_audit(&event).await {
            self.inner.metrics.audit_write_failed();
            tracing::error!(event = %event.kind, "audit event not stored: {e}");
        }
    }

    /// The audit event for the outcome of a `kind` operation, for the caller to say what it
    /// was about; `None` for a validation failure (nothing was attempted: not worth keeping).
    fn outcome_event<T>(
        &self,
        kind: AuditKind,
        client: &ClientInfo,
        result: &Result<T, Error>,
    ) -> Option<AuditEvent> {
        match result {
            Ok(_) => Some(AuditEvent::success(kind, self.now(), client)),
            Err(Error::Validation { .. }) => None,
            Err(e) => Some(AuditEvent::failure(kind, self.now(), client, e.code())),
        }
    }

    /// The newest audit events passing `filter`, newest first.
    pub async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>, Error> {
        Ok(self.inner.stores.audit.query_audit(filter).await?)
    }

    // --- operations -------------------------------------------------------------------------

    /// Answers whether every store is reachable.
    pub async fn ready(&self) -> Result<(), StoreError> {
        self.inner.stores.users.ping().await?;
        self.inner.stores.sessions.ping().await?;
        self.inner.stores.throttle.ping().await
    }

    /// Periodic upkeep: writes pending session renewals, deletes expired sessions, families,
    /// revocations and audit events past their retention, and forgets stale throttling state.
    pub async fn maintain(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        let now = self.now();
        if let Some(retention) = inner.settings.audit_retention {
            inner.stores.audit.delete_audit_before(now.minus(retention)).await?;
        }
        inner.limiter.sweep().await?;
        inner.revoked.purge(now);
        inner.sessions.purge_expired().await?;
        inner
            .stores
            .refresh
            .delete_expired_families(now, now.minus(inner.settings.token.refresh_ttl))
            .await?;
        inner.stores.revocations.delete_expired_revocations(now).await?;
        Ok(())
    }

    /// Writes pending session renewals and retries revocations the feed could not take yet
    /// (call often, and at shutdown); returns how many renewals were written.
    pub async fn flush(&self) -> Result<usize, StoreError> {
        // Independent: a feed that is down must not hold up renewals, nor the reverse.
        let renewals = self.inner.sessions.flush_renewals().await;
        if let Some(feed) = &self.inner.stores.feed
            && !lock(&self.inner.unpublished).is_empty()
        {
            let sent = self.republish(feed).await?;
            tracing::info!("revocation feed: {sent} delayed revocations published");
        }
        renewals
    }

    /// Follows the [`key_ring`](AuthenticatorBuilder::key_ring) (call every few seconds): when
    /// the stored keys changed (a rotation by another process) or a change is due (the signing
    /// key is old enough to rotate, a retired key's tokens have all expired), syncs with the
    /// ring and swaps the keys in force. Returns whether they were swapped; `false` without a
    /// ring. Tokens signed by a retired key keep verifying until they expire.
    pub async fn maintain_keys(&self) -> Result<bool, Error> {
        let Some(ring) = &self.inner.key_ring else { return Ok(false) };
        let now = self.now();
        let fingerprint = ring.fingerprint().await?;
        let due = {
            let watch = lock(&self.inner.key_watch);
            watch.fingerprint != fingerprint || watch.next_change.is_some_and(|at| at <= now)
        };
        if !due {
            return Ok(false);
        }
        let synced = ring.sync(Rotation::Follow, now).await?;
        let alg = synced.keys.signing().public().alg();
        if alg != ring.policy().algorithm {
            tracing::warn!(
                stored = %alg,
                configured = %ring.policy().algorithm,
                "another process signs with a key of another algorithm (token.algorithm \
                 changed there): signing with it too; restart this process to switch"
            );
        }
        if let Some(kid) = &synced.generated {
            tracing::info!(kid = %kid, retired = ?synced.retired, "rotated the signing key");
        }
        let mut watch = lock(&self.inner.key_watch);
        let previous = std::mem::take(&mut watch.signing_kid);
        watch.update(&synced, &**ring);
        let kid = synced.keys.signing().public().kid();
        if kid != previous && synced.generated.is_none() {
            tracing::info!(kid = %kid, "signing with the key another process rotated to");
        }
        self.inner.access.replace_keys(synced.keys);
        Ok(true)
    }

    /// Appends the engine's metrics and gauges in the Prometheus text format.
    pub fn render_metrics(&self, out: &mut String) {
        use std::fmt::Write as _;
        self.inner.metrics.render(out);
        crate::metrics::header(
            out,
            "tessera_revoked_sids",
            "gauge",
            "Revoked sids held in memory.",
        );
        let _ = writeln!(out, "tessera_revoked_sids {}", self.inner.revoked.len());
        let batches = self.inner.access.batch_stats();
        for (name, help, value) in [
            (
                "tessera_token_signature_batches_total",
                "Ed25519 access-token signature checks run together (a batch of one included).",
                batches.batches,
            ),
            (
                "tessera_token_signatures_batched_total",
                "Ed25519 signatures checked in those batches (÷ batches: the mean batch size).",
                batches.signatures,
            ),
            (
                "tessera_token_signature_batches_failed_total",
                "Batches holding a bad signature, whose signatures were then checked one by one.",
                batches.failed_batches,
            ),
        ] {
            crate::metrics::header(out, name, "counter", help);
            let _ = writeln!(out, "{name} {value}");
        }
        if let Some(live) = self.feed_live() {
            crate::metrics::header(
                out,
                "tessera_revocation_feed_live",
                "gauge",
                "1 while the revocation feed is connected and in sync, else 0 (token checks then \
                 also ask the store).",
            );
            let _ = writeln!(out, "tessera_revocation_feed_live {}", u8::from(live));
        }
        let signing_since = lock(&self.inner.key_watch).signing_since;
        if let Some(since) = signing_since {
            crate::metrics::header(
                out,
                "tessera_signing_key_age_seconds",
                "gauge",
                "Age of the key that signs new access tokens (since it was generated).",
            );
            let age = self.now().since(since).as_secs_f64();
            let _ = writeln!(out, "tessera_signing_key_age_seconds {age:.3}");
        }
        let work = self.password_work();
        crate::metrics::header(
            out,
            "tessera_argon2_computations_total",
            "counter",
            "argon2id computations (hashes, verifications, dummy verifications).",
        );
        let _ = writeln!(out, "tessera_argon2_computations_total {}", work.computations);
        crate::metrics::header(
            out,
            "tessera_argon2_kib_passes_total",
            "counter",
            "Summed argon2id cost: memory in KiB x passes x lanes of each computation.",
        );
        let _ = writeln!(out, "tessera_argon2_kib_passes_total {}", work.kib_passes);
    }

    /// The argon2 work the password pool has done (every login checks one hash, also for an
    /// unknown user).
    pub fn password_work(&self) -> crate::password::HashWork {
        self.inner.hasher.work()
    }
}

/// Marks the revocation feed as not followed when dropped.
struct NotLive<'a>(&'a AtomicBool);

impl Drop for NotLive<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

/// The first wait before resubscribing to a lost revocation feed, doubled up to
/// [`FEED_RETRY_MAX`].
const FEED_RETRY_MIN: Duration = Duration::from_millis(100);
const FEED_RETRY_MAX: Duration = Duration::from_secs(2);
/// Revocations kept for republishing at most (the others reload from the store anyway).
const MAX_UNPUBLISHED: usize = 10_000;
/// How often a process following the feed reloads every revocation in force from the store
/// anyway: the bound on how long a revocation whose publication failed can go unnoticed.
const FEED_RELOAD_EVERY: Duration = Duration::from_secs(10);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a store conflict to `error`, passing other errors through.
fn on_conflict(error: Error) -> impl FnOnce(StoreError) -> Error {
    move |e| match e {
        StoreError::Conflict => error,
        other => Error::Store(other),
    }
}

fn auth_outcome<T>(result: &Result<T, Error>) -> AuthOutcome {
    match result {
        Ok(_) => AuthOutcome::Ok,
        Err(Error::Store(_) | Error::Internal(_)) => AuthOutcome::Error,
        Err(_) => AuthOutcome::Rejected,
    }
}

/// The principal a refresh family stands for (to describe audit events about it).
fn family_principal(user_id: String, family: &crate::store::FamilyRecord) -> Principal {
    Principal {
        user_id,
        username: family.username.clone(),
        method: AuthMethod::Token,
        sid: family.sid.clone(),
        expires_at: family.expires_at,
    }
}
