//! Crash safety of the embedded SQLite store, with the real binary: `tessera serve` is killed
//! with SIGKILL in the middle of concurrent load and restarted on the same data directory.
//! Whatever a client was told had succeeded must still be there, whatever was revoked must
//! stay revoked, and the database must pass `PRAGMA integrity_check`.
//!
//! How it works:
//! - [`WORKERS`] tokio tasks each own a [`Partition`] of the state (their users, sessions and
//!   refresh families) and do one request at a time: register, session login, token login,
//!   refresh, `GET /v1/me`, logout, password change. Only an answered 2xx changes the model;
//!   any other answered status while the server is alive is a failure.
//! - After [`KILL_AFTER`] answered writes (the other workers' requests still in flight), the
//!   server gets SIGKILL. A request without an answer has an unknown outcome; its worker records
//!   what it may have changed and stops. At most one unknown per worker and kill, so the
//!   ambiguity stays small and every other assertion is exact.
//! - A copy of the crashed database files passes `integrity_check` (the original files are left
//!   for the restarted server, which must recover the WAL itself).
//! - After the restart every confirmed user logs in with the latest confirmed password, every
//!   live session answers `GET /v1/me`, every logged-out or revoked session (and family) is
//!   still refused, every access token of a live family is accepted (the signing key survived),
//!   and the latest refresh token of every live family refreshes.
//! - Twice (kill during load, restart, check, more load, kill again), then a graceful stop and
//!   `integrity_check` on the real file.
//!
//! The refresh in flight at a kill: the server may have rotated `T(n)` to `T(n+1)` in the
//! database without the client ever seeing `T(n+1)`. The client's latest known token is then a
//! spent one, and presenting it again is indistinguishable from theft unless the retry grace
//! applies: a spent token presented within `refresh_reuse_grace` while its successor is unused
//! gets that same successor back. Successors are `HMAC(server key, token)`, so the answer is
//! `T(n+1)` whether or not the rotation had committed. The grace is set to its maximum (5m) so
//! that a slow restart cannot push the retry outside the window; the test runs far below that.
//! Whether an unanswered refresh had committed is up to the timing, so before each load one
//! refresh response is "lost" on purpose (the client keeps the spent token): after the restart
//! its retry must return exactly the successor the server had issued, every time. The count of
//! retries is read from `tessera_refreshes_total{result="retried"}`.
//!
//! Unknown outcomes, resolved after the restart without weakening the rest:
//! - registration: if the user logs in, it is adopted into the model, else forgotten;
//! - logout: the session works or not, either is fine (it then follows what it showed);
//! - password change: exactly one of the old and new passwords works. The user's other sessions
//!   and families may be revoked or not while the old password still works; once the new one
//!   works, none may survive (see [`REQUIRE_ATOMIC_PASSWORD_CHANGE`]).
//! - refresh: see above; the family's latest known token must refresh.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use reqwest::header::HeaderMap;
use reqwest::{Client, RequestBuilder};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::helpers::*;

const BIN: &str = env!("CARGO_BIN_EXE_tessera");
/// Concurrent clients.
const WORKERS: u64 = 12;
/// Answered writes before each SIGKILL.
const KILL_AFTER: [usize; 2] = [200, 150];
/// Refreshes per family during load: with the checks after each restart this stays well
/// under the engine's 30 per family and minute.
const MAX_REFRESHES: u32 = 8;
/// Requests per worker and load phase, should the kill never come.
const MAX_OPS: usize = 2000;
/// A fixed issuer: the default (the public URL) would change with the port at each restart.
const ISSUER: &str = "http://tessera-crash.test";
/// `cookie.secure = false`.
const SESSION_COOKIE: &str = "tessera_session";
/// The database in the data directory.
const DB_FILE: &str = "tessera.db";
/// Whether an unanswered password change that committed must also have ended the user's other
/// sessions and families. `API.md` says a password change ends them; the engine ends them
/// before it stores the new hash (and once more after), and deletes each family together with
/// its revocation in one transaction, so no SIGKILL can leave the new password with the old
/// logins alive. (This test found the earlier two-step version in about half the runs.)
const REQUIRE_ATOMIC_PASSWORD_CHANGE: bool = true;

/// `tessera serve` on a free loopback port with `dir` as data directory, a clean `TESSERA_*`
/// environment, cheap argon2, throttling out of the way and the longest refresh retry grace.
fn serve_command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    let dir = dir.to_str().expect("a UTF-8 temp dir");
    command.args(["serve", "--listen", "127.0.0.1:0", "--data-dir", dir]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TESSERA_") {
            command.env_remove(key);
        }
    }
    command.envs([
        ("TESSERA_PASSWORD__MEMORY_KIB", "64"),
        ("TESSERA_PASSWORD__ITERATIONS", "1"),
        ("TESSERA_PASSWORD__PARALLELISM", "1"),
        ("TESSERA_PASSWORD__WORKERS", "2"),
        ("TESSERA_LIMITS__IP_PER_MINUTE", "1000000"),
        ("TESSERA_LIMITS__REGISTRATIONS_PER_MINUTE", "1000000"),
        ("TESSERA_TOKEN__REFRESH_REUSE_GRACE", "5m"),
        ("TESSERA_TOKEN__ISSUER", ISSUER),
        ("TESSERA_COOKIE__SECURE", "false"),
        ("TESSERA_LOG__LEVEL", "warn"),
    ]);
    command
}

// --- the model ---------------------------------------------------------------------------------

#[derive(Debug)]
struct UserModel {
    username: String,
    id: String,
    /// The latest password whose change (or registration) got a 2xx.
    password: String,
    /// A password change without an answer.
    pending_password: Option<String>,
    /// Password changes so far (makes each new password unique).
    generation: u32,
    /// Whether an unanswered password change turned out to have committed.
    change_committed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    Live,
    /// `DELETE /v1/session` answered 204.
    LoggedOut,
    /// Ended by a password change that answered 204.
    Revoked,
    /// Logout without an answer.
    MaybeLoggedOut,
    /// Another session's password change without an answer.
    MaybeRevoked,
}

#[derive(Debug)]
struct SessionModel {
    user: usize,
    /// The cookie's value.
    cookie: String,
    csrf: String,
    session_id: String,
    state: SessionState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyState {
    Live,
    /// Ended by a password change that answered 204.
    Revoked,
    /// A password change of the user without an answer.
    MaybeRevoked,
    /// Out of the model (after a `MaybeRevoked` was probed).
    Dropped,
}

#[derive(Debug)]
struct FamilyModel {
    user: usize,
    sid: String,
    /// The refresh token of the last answered login or refresh.
    refresh: String,
    /// Every access token answered for this family.
    access: Vec<String>,
    refreshes: u32,
    /// A refresh of `refresh` got no answer: it may be spent already.
    rotation_unknown: bool,
    state: FamilyState,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stats {
    registrations: usize,
    session_logins: usize,
    token_logins: usize,
    refreshes: usize,
    logouts: usize,
    password_changes: usize,
    reads: usize,
    /// Requests without an answer (in flight at the kill).
    unanswered: usize,
}

impl Stats {
    fn writes(&self) -> usize {
        self.registrations
            + self.session_logins
            + self.token_logins
            + self.refreshes
            + self.logouts
            + self.password_changes
    }

    fn add(&mut self, other: &Stats) {
        self.registrations += other.registrations;
        self.session_logins += other.session_logins;
        self.token_logins += other.token_logins;
        self.refreshes += other.refreshes;
        self.logouts += other.logouts;
        self.password_changes += other.password_changes;
        self.reads += other.reads;
        self.unanswered += other.unanswered;
    }
}

/// What the checks after a restart covered.
#[derive(Debug, Default, Clone, Copy)]
struct Checked {
    users: usize,
    live_sessions: usize,
    dead_sessions: usize,
    access_tokens: usize,
    live_families: usize,
    dead_families: usize,
    /// Unknown outcomes resolved.
    in_flight_registrations: usize,
    in_flight_logouts: usize,
    in_flight_password_changes: usize,
    in_flight_refreshes: usize,
}

impl Checked {
    fn add(&mut self, o: &Checked) {
        self.users += o.users;
        self.live_sessions += o.live_sessions;
        self.dead_sessions += o.dead_sessions;
        self.access_tokens += o.access_tokens;
        self.live_families += o.live_families;
        self.dead_families += o.dead_families;
        self.in_flight_registrations += o.in_flight_registrations;
        self.in_flight_logouts += o.in_flight_logouts;
        self.in_flight_password_changes += o.in_flight_password_changes;
        self.in_flight_refreshes += o.in_flight_refreshes;
    }
}

/// One worker's share of the state.
#[derive(Debug, Default)]
struct Partition {
    worker: u64,
    next_name: u64,
    users: Vec<UserModel>,
    /// Registrations without an answer: (username, password).
    maybe_users: Vec<(String, String)>,
    sessions: Vec<SessionModel>,
    families: Vec<FamilyModel>,
    stats: Stats,
    checked: Checked,
    /// Failed expectations.
    problems: Vec<String>,
    /// Observations worth reporting that are not failures.
    notes: Vec<String>,
}

/// What the workers of one phase share.
#[derive(Debug)]
struct Shared {
    base: String,
    client: Client,
    /// Answered writes that wake the killer.
    threshold: usize,
    writes: AtomicUsize,
    killed: AtomicBool,
    wake: Notify,
}

impl Shared {
    fn new(base: &str, threshold: usize) -> Arc<Shared> {
        Arc::new(Shared {
            base: base.to_owned(),
            client: client(),
            threshold,
            writes: AtomicUsize::new(0),
            killed: AtomicBool::new(false),
            wake: Notify::new(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn wrote(&self) {
        if self.writes.fetch_add(1, Ordering::SeqCst) + 1 == self.threshold {
            self.wake.notify_one();
        }
    }

    async fn login(&self, path: &str, username: &str, password: &str) -> Sent {
        send(
            self.client
                .post(self.url(path))
                .json(&json!({"username": username, "password": password})),
        )
        .await
    }

    async fn me_cookie(&self, cookie: &str) -> Sent {
        let cookie = format!("{SESSION_COOKIE}={cookie}");
        send(self.client.get(self.url("/v1/me")).header("cookie", cookie)).await
    }

    async fn me_bearer(&self, token: &str) -> Sent {
        send(self.client.get(self.url("/v1/me")).bearer_auth(token)).await
    }

    async fn refresh(&self, token: &str) -> Sent {
        send(self.client.post(self.url("/v1/token/refresh")).json(&json!({"refresh_token": token})))
            .await
    }
}

/// A request's outcome: an answer (status, headers and the whole body) or none.
#[derive(Debug)]
enum Sent {
    Answered { status: u16, headers: HeaderMap, body: String },
    Lost(String),
}

impl Sent {
    fn status(&self) -> Option<u16> {
        match self {
            Sent::Answered { status, .. } => Some(*status),
            Sent::Lost(_) => None,
        }
    }

    fn json(&self) -> Value {
        match self {
            Sent::Answered { body, .. } => serde_json::from_str(body)
                .unwrap_or_else(|e| panic!("a JSON body expected ({e}): {body}")),
            Sent::Lost(e) => panic!("no answer: {e}"),
        }
    }

    /// `status body` or `no answer: error`, for messages.
    fn describe(&self) -> String {
        match self {
            Sent::Answered { status, body, .. } => format!("{status} {body}"),
            Sent::Lost(e) => format!("no answer: {e}"),
        }
    }
}

async fn send(request: RequestBuilder) -> Sent {
    match request.send().await {
        Err(e) => Sent::Lost(format!("{e:?}")),
        Ok(response) => {
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            match response.text().await {
                Ok(body) => Sent::Answered { status, headers, body },
                Err(e) => Sent::Lost(format!("status {status}, body lost: {e:?}")),
            }
        }
    }
}

/// xorshift64*: a reproducible choice of operations per worker.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        (!items.is_empty()).then(|| items[self.below(items.len() as u64) as usize])
    }
}

// --- load --------------------------------------------------------------------------------------

/// Requests one at a time until the kill (or [`MAX_OPS`]); stops at the first request without
/// an answer.
async fn load(shared: Arc<Shared>, mut p: Partition, seed: u64) -> Partition {
    let mut rng = Rng(seed | 1);
    for _ in 0..MAX_OPS {
        if shared.killed.load(Ordering::SeqCst) {
            break;
        }
        let problems = p.problems.len();
        let lost = step(&shared, &mut p, &mut rng).await;
        if let Some(what) = lost {
            p.stats.unanswered += 1;
            if !shared.killed.load(Ordering::SeqCst) {
                p.problems.push(format!("worker {}: no answer before the kill: {what}", p.worker));
                shared.wake.notify_one();
            }
            break;
        }
        if p.problems.len() > problems {
            // Wake the main task: the threshold might never be reached.
            shared.wake.notify_one();
            break;
        }
    }
    p
}

/// One operation; `Some(what)` if its request got no answer.
async fn step(s: &Shared, p: &mut Partition, rng: &mut Rng) -> Option<String> {
    let roll = rng.below(100);
    if p.users.is_empty() || roll < 12 {
        return register(s, p).await;
    }
    let user = rng.below(p.users.len() as u64) as usize;
    let live_sessions: Vec<usize> =
        (0..p.sessions.len()).filter(|&i| p.sessions[i].state == SessionState::Live).collect();
    let live_families: Vec<usize> = (0..p.families.len())
        .filter(|&i| {
            let f = &p.families[i];
            f.state == FamilyState::Live && f.refreshes < MAX_REFRESHES
        })
        .collect();
    let session = rng.pick(&live_sessions);
    let family = rng.pick(&live_families);
    match (roll, session, family) {
        (35..52, _, _) => token_login(s, p, user).await,
        (52..75, _, Some(f)) => refresh(s, p, f).await,
        (75..80, Some(i), _) => read_session(s, p, i).await,
        (80..85, _, Some(f)) => read_token(s, p, f).await,
        (85..94, Some(i), _) => logout(s, p, i).await,
        (94..100, Some(i), _) => change_password(s, p, i).await,
        _ => session_login(s, p, user).await,
    }
}

impl Partition {
    fn unexpected(&mut self, what: &str, sent: &Sent) {
        self.problems.push(format!("worker {}: {what}: {}", self.worker, sent.describe()));
    }
}

async fn register(s: &Shared, p: &mut Partition) -> Option<String> {
    let n = p.next_name;
    p.next_name += 1;
    let username = format!("w{}-{n}", p.worker);
    let password = format!("crash-test-{}-{n}-0", p.worker);
    let request = s.client.post(s.url("/v1/users"));
    let sent = send(request.json(&json!({"username": username, "password": password}))).await;
    match sent.status() {
        Some(201) => {
            let body = sent.json();
            assert_eq!(body["username"], username.as_str());
            let id = body["id"].as_str().expect("id").to_owned();
            p.users.push(UserModel {
                username,
                id,
                password,
                pending_password: None,
                generation: 0,
                change_committed: false,
            });
            p.stats.registrations += 1;
            s.wrote();
        }
        Some(_) => p.unexpected(&format!("POST /v1/users {username}"), &sent),
        None => {
            p.maybe_users.push((username.clone(), password));
            return Some(format!("registration of {username}: {}", sent.describe()));
        }
    }
    None
}

/// Reads a 200 session login; returns the model's session.
fn session_from(sent: &Sent, user: usize) -> SessionModel {
    let Sent::Answered { headers, .. } = sent else { panic!("no answer") };
    let cookie = find_set_cookie(headers, SESSION_COOKIE).value;
    let body = sent.json();
    SessionModel {
        user,
        cookie,
        csrf: body["csrf_token"].as_str().expect("csrf_token").to_owned(),
        session_id: body["session_id"].as_str().expect("session_id").to_owned(),
        state: SessionState::Live,
    }
}

async fn session_login(s: &Shared, p: &mut Partition, user: usize) -> Option<String> {
    let u = &p.users[user];
    let sent = s.login("/v1/session", &u.username, &u.password).await;
    match sent.status() {
        Some(200) => {
            let session = session_from(&sent, user);
            p.sessions.push(session);
            p.stats.session_logins += 1;
            s.wrote();
            None
        }
        Some(_) => {
            let what = format!("POST /v1/session {}", p.users[user].username);
            p.unexpected(&what, &sent);
            None
        }
        None => Some(format!("session login: {}", sent.describe())),
    }
}

async fn token_login(s: &Shared, p: &mut Partition, user: usize) -> Option<String> {
    let u = &p.users[user];
    let sent = s.login("/v1/token", &u.username, &u.password).await;
    match sent.status() {
        Some(200) => {
            let tokens = Tokens::from_body(sent.json());
            p.families.push(FamilyModel {
                user,
                sid: tokens.sid,
                refresh: tokens.refresh,
                access: vec![tokens.access],
                refreshes: 0,
                rotation_unknown: false,
                state: FamilyState::Live,
            });
            p.stats.token_logins += 1;
            s.wrote();
            None
        }
        Some(_) => {
            let what = format!("POST /v1/token {}", p.users[user].username);
            p.unexpected(&what, &sent);
            None
        }
        None => Some(format!("token login: {}", sent.describe())),
    }
}

async fn refresh(s: &Shared, p: &mut Partition, family: usize) -> Option<String> {
    let sent = s.refresh(&p.families[family].refresh).await;
    match sent.status() {
        Some(200) => {
            let tokens = Tokens::from_body(sent.json());
            let f = &mut p.families[family];
            assert_eq!(tokens.sid, f.sid, "a refresh stays in its family");
            assert_ne!(tokens.refresh, f.refresh, "a new refresh token");
            f.refresh = tokens.refresh;
            f.access.push(tokens.access);
            f.refreshes += 1;
            p.stats.refreshes += 1;
            s.wrote();
            None
        }
        Some(_) => {
            let what = format!("refresh of family {}", p.families[family].sid);
            p.unexpected(&what, &sent);
            None
        }
        None => {
            p.families[family].rotation_unknown = true;
            Some(format!("refresh of family {}: {}", p.families[family].sid, sent.describe()))
        }
    }
}

async fn read_session(s: &Shared, p: &mut Partition, session: usize) -> Option<String> {
    let sent = s.me_cookie(&p.sessions[session].cookie).await;
    match sent.status() {
        Some(200) => {
            let me = sent.json();
            let expected = &p.users[p.sessions[session].user].id;
            assert_eq!(me["id"], expected.as_str());
            p.stats.reads += 1;
            None
        }
        Some(_) => {
            p.unexpected("GET /v1/me with a live session", &sent);
            None
        }
        None => Some(format!("GET /v1/me: {}", sent.describe())),
    }
}

async fn read_token(s: &Shared, p: &mut Partition, family: usize) -> Option<String> {
    let access = p.families[family].access.last().expect("an access token").clone();
    let sent = s.me_bearer(&access).await;
    match sent.status() {
        Some(200) => {
            assert_eq!(sent.json()["session_id"], p.families[family].sid.as_str());
            p.stats.reads += 1;
            None
        }
        Some(_) => {
            p.unexpected("GET /v1/me with a live access token", &sent);
            None
        }
        None => Some(format!("GET /v1/me: {}", sent.describe())),
    }
}

async fn logout(s: &Shared, p: &mut Partition, session: usize) -> Option<String> {
    let m = &p.sessions[session];
    let request = s
        .client
        .delete(s.url("/v1/session"))
        .header("cookie", format!("{SESSION_COOKIE}={}", m.cookie))
        .header("x-csrf-token", &m.csrf);
    let sent = send(request).await;
    match sent.status() {
        Some(204) => {
            p.sessions[session].state = SessionState::LoggedOut;
            p.stats.logouts += 1;
            s.wrote();
            None
        }
        Some(_) => {
            p.unexpected("DELETE /v1/session", &sent);
            None
        }
        None => {
            p.sessions[session].state = SessionState::MaybeLoggedOut;
            Some(format!("logout: {}", sent.describe()))
        }
    }
}

async fn change_password(s: &Shared, p: &mut Partition, session: usize) -> Option<String> {
    let user = p.sessions[session].user;
    let u = &p.users[user];
    let new =
        format!("{}-{}", u.password.rsplit_once('-').expect("a generation").0, u.generation + 1);
    let m = &p.sessions[session];
    let request = s
        .client
        .put(s.url("/v1/me/password"))
        .header("cookie", format!("{SESSION_COOKIE}={}", m.cookie))
        .header("x-csrf-token", &m.csrf)
        .json(&json!({"current_password": u.password, "new_password": new}));
    let sent = send(request).await;
    let (session_state, family_state) = match sent.status() {
        Some(204) => {
            let u = &mut p.users[user];
            u.password = new;
            u.generation += 1;
            p.stats.password_changes += 1;
            s.wrote();
            (SessionState::Revoked, FamilyState::Revoked)
        }
        Some(_) => {
            p.unexpected("PUT /v1/me/password", &sent);
            return None;
        }
        None => {
            let u = &mut p.users[user];
            u.pending_password = Some(new);
            u.generation += 1;
            (SessionState::MaybeRevoked, FamilyState::MaybeRevoked)
        }
    };
    // Every other session and every refresh family of the user.
    for (i, other) in p.sessions.iter_mut().enumerate() {
        if i != session && other.user == user && other.state == SessionState::Live {
            other.state = session_state;
        }
    }
    for family in &mut p.families {
        if family.user == user && family.state == FamilyState::Live {
            family.state = family_state;
        }
    }
    (sent.status().is_none()).then(|| format!("password change: {}", sent.describe()))
}

// --- checks after a restart --------------------------------------------------------------------

/// Checks the partition against the restarted server and resolves its unknown outcomes.
async fn verify(s: Arc<Shared>, mut p: Partition) -> Partition {
    let w = p.worker;
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let mut checked = Checked::default();

    // Registrations without an answer: either outcome is fine; adopt the user if it exists.
    for (username, password) in std::mem::take(&mut p.maybe_users) {
        checked.in_flight_registrations += 1;
        let sent = s.login("/v1/session", &username, &password).await;
        match sent.status() {
            Some(200) => {
                let id = sent.json()["user"]["id"].as_str().expect("user.id").to_owned();
                p.users.push(UserModel {
                    username,
                    id,
                    password,
                    pending_password: None,
                    generation: 0,
                    change_committed: false,
                });
                let session = session_from(&sent, p.users.len() - 1);
                p.sessions.push(session);
                notes.push(format!("worker {w}: the registration in flight had committed"));
            }
            Some(401) => notes.push(format!("worker {w}: the registration in flight was lost")),
            _ => {
                problems.push(format!("login of maybe-registered {username}: {}", sent.describe()))
            }
        }
    }

    // Password changes without an answer: exactly one of the two passwords works.
    for user in 0..p.users.len() {
        let Some(new) = p.users[user].pending_password.take() else { continue };
        checked.in_flight_password_changes += 1;
        let username = p.users[user].username.clone();
        let old = s.login("/v1/session", &username, &p.users[user].password).await;
        let sent = match old.status() {
            Some(200) => {
                notes.push(format!("worker {w}: the password change in flight was not committed"));
                old
            }
            Some(401) => {
                let sent = s.login("/v1/session", &username, &new).await;
                if sent.status() == Some(200) {
                    notes.push(format!("worker {w}: the password change in flight had committed"));
                    p.users[user].password = new;
                    p.users[user].change_committed = true;
                }
                sent
            }
            _ => old,
        };
        if sent.status() == Some(200) {
            let session = session_from(&sent, user);
            p.sessions.push(session);
        } else {
            problems.push(format!(
                "{username}: neither the old nor the new password works after an unanswered \
                 password change: {}",
                sent.describe()
            ));
        }
    }

    // Every user whose registration got 201 logs in with the latest confirmed password.
    for user in 0..p.users.len() {
        let u = &p.users[user];
        let sent = s.login("/v1/session", &u.username, &u.password).await;
        checked.users += 1;
        if sent.status() == Some(200) {
            assert_eq!(sent.json()["user"]["id"], u.id.as_str());
            let session = session_from(&sent, user);
            p.sessions.push(session);
        } else {
            problems.push(format!(
                "user {} (registered, latest password confirmed) cannot log in: {}",
                u.username,
                sent.describe()
            ));
        }
    }

    // Sessions.
    for session in &mut p.sessions {
        let sent = s.me_cookie(&session.cookie).await;
        let user = &p.users[session.user];
        let alive = sent.status() == Some(200);
        let dead = sent.status() == Some(401);
        match session.state {
            SessionState::Live => {
                checked.live_sessions += 1;
                if alive {
                    let me = sent.json();
                    if me["id"] != user.id.as_str()
                        || me["session_id"] != session.session_id.as_str()
                    {
                        problems.push(format!("session {} answers as {me}", session.session_id));
                    }
                } else {
                    problems.push(format!(
                        "session {} of {} (login 200, never logged out) is lost: {}",
                        session.session_id,
                        user.username,
                        sent.describe()
                    ));
                }
            }
            SessionState::LoggedOut | SessionState::Revoked => {
                checked.dead_sessions += 1;
                if !dead {
                    problems.push(format!(
                        "session {} of {} ({:?} with a 204) came back: {}",
                        session.session_id,
                        user.username,
                        session.state,
                        sent.describe()
                    ));
                }
            }
            SessionState::MaybeLoggedOut | SessionState::MaybeRevoked => {
                if session.state == SessionState::MaybeLoggedOut {
                    checked.in_flight_logouts += 1;
                }
                if alive {
                    if session.state == SessionState::MaybeRevoked && user.change_committed {
                        notes.push(format!(
                            "worker {w}: NOT ATOMIC: the password change of {} committed but \
                             session {} survived the crash",
                            user.username, session.session_id
                        ));
                    }
                    session.state = SessionState::Live;
                } else if dead {
                    session.state = if session.state == SessionState::MaybeLoggedOut {
                        SessionState::LoggedOut
                    } else {
                        SessionState::Revoked
                    };
                } else {
                    problems.push(format!("session {}: {}", session.session_id, sent.describe()));
                }
            }
        }
    }

    // Refresh families.
    for family in &mut p.families {
        let user = &p.users[family.user];
        match family.state {
            FamilyState::Live => {
                checked.live_families += 1;
                for access in &family.access {
                    checked.access_tokens += 1;
                    let sent = s.me_bearer(access).await;
                    let ok = sent.status() == Some(200)
                        && sent.json()["session_id"] == family.sid.as_str();
                    if !ok {
                        problems.push(format!(
                            "an access token of live family {} ({}) is refused: {}",
                            family.sid,
                            user.username,
                            sent.describe()
                        ));
                    }
                }
                if family.rotation_unknown {
                    checked.in_flight_refreshes += 1;
                }
                let sent = s.refresh(&family.refresh).await;
                if sent.status() == Some(200) {
                    let tokens = Tokens::from_body(sent.json());
                    if tokens.sid != family.sid {
                        problems
                            .push(format!("family {} refreshed into {}", family.sid, tokens.sid));
                    }
                    family.refresh = tokens.refresh;
                    family.access.push(tokens.access);
                    family.rotation_unknown = false;
                } else {
                    problems.push(format!(
                        "the latest refresh token of live family {} ({}{}) does not refresh: {}",
                        family.sid,
                        user.username,
                        if family.rotation_unknown {
                            ", refresh in flight at the kill"
                        } else {
                            ""
                        },
                        sent.describe()
                    ));
                }
            }
            FamilyState::Revoked => {
                checked.dead_families += 1;
                for access in &family.access {
                    checked.access_tokens += 1;
                    let sent = s.me_bearer(access).await;
                    if sent.status() != Some(401) {
                        problems.push(format!(
                            "an access token of revoked family {} came back: {}",
                            family.sid,
                            sent.describe()
                        ));
                    }
                }
                let sent = s.refresh(&family.refresh).await;
                if sent.status() != Some(401) {
                    problems.push(format!(
                        "the refresh token of revoked family {} came back: {}",
                        family.sid,
                        sent.describe()
                    ));
                }
            }
            FamilyState::MaybeRevoked => {
                // Probed for the report, then out of the model: which of its parts survive
                // depends on where the kill landed.
                let access = family.access.last().expect("an access token");
                let token = s.me_bearer(access).await.status();
                let refresh = s.refresh(&family.refresh).await.status();
                if user.change_committed && (token == Some(200) || refresh == Some(200)) {
                    notes.push(format!(
                        "worker {w}: NOT ATOMIC: the password change of {} committed but family \
                         {} survived the crash (access {token:?}, refresh {refresh:?})",
                        user.username, family.sid
                    ));
                }
                family.state = FamilyState::Dropped;
            }
            FamilyState::Dropped => {}
        }
    }

    if REQUIRE_ATOMIC_PASSWORD_CHANGE {
        let (broken, fine) = notes.into_iter().partition(|n: &String| n.contains("NOT ATOMIC"));
        problems.extend(broken);
        notes = fine;
    }
    p.problems.extend(problems.into_iter().map(|m| format!("worker {w}: {m}")));
    p.notes.extend(notes);
    p.checked.add(&checked);
    p
}

/// A refresh whose response the client "lost": it still holds the spent `spent` token, while
/// the server rotated it to `successor` just before the load that ends with SIGKILL.
#[derive(Debug)]
struct LostRefresh {
    spent: String,
    successor: String,
    sid: String,
}

/// Sets up a [`LostRefresh`] for user `grace-CYCLE`, so every restart exercises the retry
/// grace deterministically (the unanswered refreshes of the load may or may not have
/// committed).
async fn lose_a_refresh_response(s: &Shared, cycle: usize) -> LostRefresh {
    let username = format!("grace-{cycle}");
    let request = s.client.post(s.url("/v1/users"));
    let sent = send(request.json(&json!({"username": username, "password": PASSWORD}))).await;
    assert_eq!(sent.status(), Some(201), "{}", sent.describe());
    let sent = s.login("/v1/token", &username, PASSWORD).await;
    assert_eq!(sent.status(), Some(200), "{}", sent.describe());
    let first = Tokens::from_body(sent.json());
    let sent = s.refresh(&first.refresh).await;
    assert_eq!(sent.status(), Some(200), "{}", sent.describe());
    let second = Tokens::from_body(sent.json());
    LostRefresh { spent: first.refresh, successor: second.refresh, sid: first.sid }
}

impl LostRefresh {
    /// After the restart, the spent token is retried: the same successor comes back (not a
    /// `token_reused`), and that successor then rotates normally.
    async fn retry(&self, s: &Shared) {
        let sent = s.refresh(&self.spent).await;
        assert_eq!(
            sent.status(),
            Some(200),
            "a retry of a refresh whose response was lost before the crash, within \
             refresh_reuse_grace: {}",
            sent.describe()
        );
        let again = Tokens::from_body(sent.json());
        assert_eq!(again.refresh, self.successor, "the retry gets the same successor");
        assert_eq!(again.sid, self.sid);
        let sent = s.me_bearer(&again.access).await;
        assert_eq!(sent.status(), Some(200), "{}", sent.describe());
        let sent = s.refresh(&self.successor).await;
        assert_eq!(sent.status(), Some(200), "the successor rotates: {}", sent.describe());
        assert_ne!(Tokens::from_body(sent.json()).refresh, self.successor);
    }
}

// --- SQLite ------------------------------------------------------------------------------------

/// `PRAGMA integrity_check` and `PRAGMA foreign_key_check` of the database at `db`, opened
/// read-write (so a WAL left by a crash is recovered), and its user count.
async fn check_database(db: &Path) -> (Vec<String>, usize, i64) {
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions as _, Connection as _};

    let mut conn = SqliteConnectOptions::new()
        .filename(db)
        .create_if_missing(false)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("opening {}: {e}", db.display()));
    let integrity: Vec<String> =
        sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&mut conn).await.expect("check");
    let foreign = sqlx::query("PRAGMA foreign_key_check").fetch_all(&mut conn).await.expect("fk");
    let users: i64 =
        sqlx::query_scalar("SELECT count(*) FROM users").fetch_one(&mut conn).await.expect("count");
    conn.close().await.expect("closing the check connection");
    (integrity, foreign.len(), users)
}

/// Copies the database files (without the shared-memory index, which SQLite rebuilds) to a
/// new directory and checks the copy, so the crashed originals stay for the restarted server.
async fn check_crashed_copy(data_dir: &Path) -> (Vec<String>, usize, i64) {
    let copy = tempfile::Builder::new().prefix("tessera-crash-copy-").tempdir().unwrap();
    for suffix in ["", "-wal"] {
        let from = data_dir.join(format!("{DB_FILE}{suffix}"));
        if from.exists() {
            std::fs::copy(&from, copy.path().join(format!("{DB_FILE}{suffix}"))).unwrap();
        }
    }
    check_database(&copy.path().join(DB_FILE)).await
}

// --- the test ----------------------------------------------------------------------------------

#[tokio::test]
async fn committed_writes_survive_sigkill_under_load_and_the_database_stays_intact() {
    let started = Instant::now();
    let dir = tempfile::Builder::new().prefix("tessera-crash-").tempdir().unwrap();
    let db = dir.path().join(DB_FILE);
    let mut partitions: Vec<Partition> =
        (0..WORKERS).map(|worker| Partition { worker, ..Partition::default() }).collect();
    let mut server = TesseraProcess::start(serve_command(dir.path()));
    let mut report = Vec::new();

    for (cycle, &threshold) in KILL_AFTER.iter().enumerate() {
        // Load, and SIGKILL once `threshold` writes were answered.
        let phase = Instant::now();
        let shared = Shared::new(&server.base, threshold);
        let lost_refresh = lose_a_refresh_response(&shared, cycle).await;
        let before: Vec<Stats> = partitions.iter().map(|p| p.stats).collect();
        let workers: Vec<_> = partitions
            .drain(..)
            .map(|p| {
                let seed = 0x9e37_79b9_7f4a_7c15 ^ ((cycle as u64) << 32) ^ p.worker;
                tokio::spawn(load(Arc::clone(&shared), p, seed))
            })
            .collect();
        let woken = tokio::time::timeout(WAIT, shared.wake.notified()).await;
        shared.killed.store(true, Ordering::SeqCst);
        server.kill();
        let answered_at_kill = shared.writes.load(Ordering::SeqCst);
        let load_time = phase.elapsed();
        for worker in workers {
            let p = tokio::time::timeout(WAIT, worker)
                .await
                .expect("the workers stop once the server is gone")
                .expect("a worker panicked");
            partitions.push(p);
        }
        let problems: Vec<&String> = partitions.iter().flat_map(|p| &p.problems).collect();
        assert!(
            problems.is_empty(),
            "cycle {cycle}: unexpected answers during load:\n{problems:#?}\nserver stderr:\n{}",
            server.stderr_text()
        );
        assert!(woken.is_ok(), "cycle {cycle}: {threshold} writes not answered within {WAIT:?}");
        assert!(answered_at_kill >= threshold);
        let mut stats = Stats::default();
        for (p, before) in partitions.iter().zip(&before) {
            let mut delta = p.stats;
            delta.registrations -= before.registrations;
            delta.session_logins -= before.session_logins;
            delta.token_logins -= before.token_logins;
            delta.refreshes -= before.refreshes;
            delta.logouts -= before.logouts;
            delta.password_changes -= before.password_changes;
            delta.reads -= before.reads;
            delta.unanswered -= before.unanswered;
            stats.add(&delta);
        }

        // The crashed files, as the killed process left them.
        let (integrity, foreign, users) = check_crashed_copy(dir.path()).await;
        assert_eq!(integrity, ["ok"], "cycle {cycle}: integrity_check of the crashed database");
        assert_eq!(foreign, 0, "cycle {cycle}: foreign_key_check of the crashed database");
        let confirmed: usize = partitions.iter().map(|p| p.users.len()).sum();
        assert!(
            users >= confirmed as i64,
            "cycle {cycle}: {users} users in the crashed database, {confirmed} confirmed"
        );

        // Restart on the same data directory and check everything confirmed.
        let restart = Instant::now();
        server = TesseraProcess::start(serve_command(dir.path()));
        let startup = restart.elapsed();
        let shared = Shared::new(&server.base, usize::MAX);
        let before: Vec<Checked> = partitions.iter().map(|p| p.checked).collect();
        let checks: Vec<_> =
            partitions.drain(..).map(|p| tokio::spawn(verify(Arc::clone(&shared), p))).collect();
        for check in checks {
            let p = tokio::time::timeout(WAIT, check)
                .await
                .expect("the checks finish in time")
                .expect("a check panicked");
            partitions.push(p);
        }
        let problems: Vec<&String> = partitions.iter().flat_map(|p| &p.problems).collect();
        assert!(
            problems.is_empty(),
            "cycle {cycle}: data lost or resurrected by the SIGKILL ({} problems):\n{problems:#?}",
            problems.len()
        );
        let mut checked = Checked::default();
        for (p, before) in partitions.iter().zip(&before) {
            let c = p.checked;
            checked.add(&Checked {
                users: c.users - before.users,
                live_sessions: c.live_sessions - before.live_sessions,
                dead_sessions: c.dead_sessions - before.dead_sessions,
                access_tokens: c.access_tokens - before.access_tokens,
                live_families: c.live_families - before.live_families,
                dead_families: c.dead_families - before.dead_families,
                in_flight_registrations: c.in_flight_registrations - before.in_flight_registrations,
                in_flight_logouts: c.in_flight_logouts - before.in_flight_logouts,
                in_flight_password_changes: c.in_flight_password_changes
                    - before.in_flight_password_changes,
                in_flight_refreshes: c.in_flight_refreshes - before.in_flight_refreshes,
            });
        }
        lost_refresh.retry(&shared).await;
        let metrics = send(shared.client.get(shared.url("/metrics"))).await;
        let Sent::Answered { status: 200, body: metrics, .. } = metrics else {
            panic!("GET /metrics: {}", metrics.describe())
        };
        let retried =
            metric_sample(&metrics, "tessera_refreshes_total{result=\"retried\"}").unwrap_or(0.0);
        let reused =
            metric_sample(&metrics, "tessera_refreshes_total{result=\"reused\"}").unwrap_or(0.0);
        assert_eq!(reused, 0.0, "cycle {cycle}: a refresh after the restart was taken for reuse");
        // The deliberate lost response, plus the unanswered refreshes that had committed.
        assert!(retried >= 1.0, "cycle {cycle}: the grace retry was not counted");
        assert!(retried <= 1.0 + checked.in_flight_refreshes as f64);

        // The test has to have tested something.
        assert!(checked.users >= 10 && checked.live_sessions >= 10, "{checked:?}");
        assert!(checked.live_families >= 5 && checked.access_tokens >= 10, "{checked:?}");
        assert!(stats.refreshes >= 10 && stats.logouts >= 1, "{stats:?}");

        report.push(format!(
            "cycle {cycle}: SIGKILL after {answered_at_kill} answered writes in {load_time:?}, \
             {} answered in all ({stats:?}); crashed database: integrity ok, {users} users; \
             restart in {startup:?}; checked {checked:?}; grace retries after restart: \
             {retried} (1 deliberate)",
            stats.writes()
        ));
    }

    // A graceful stop, then the real file.
    let status = server.terminate();
    assert!(status.success(), "SIGTERM must end with exit 0, got {status}");
    let (integrity, foreign, _) = check_database(&db).await;
    assert_eq!(integrity, ["ok"], "integrity_check after the graceful stop");
    assert_eq!(foreign, 0, "foreign_key_check after the graceful stop");

    for line in &report {
        eprintln!("{line}");
    }
    for note in partitions.iter().flat_map(|p| &p.notes) {
        eprintln!("note: {note}");
    }
    eprintln!("total {:?}", started.elapsed());
}
