//! The administrator's side of the [`Authenticator`]: listing users, disabling, enabling and
//! deleting them, setting their password, and listing or ending any user's logins (what the
//! `tessera user` and `tessera sessions` commands call). Every change is audited.
//!
//! These run as often in another process than the server (the command line next to a running
//! `tessera serve`) as in the same one. Token revocations reach running servers through the
//! revocation feed like any other; so do the ids of ended sessions and of users whose every
//! login ended, so a server that caches sessions drops its copies (within the feed's delay:
//! about a quarter of a second on SQLite, at once on PostgreSQL or Redis).

use secrecy::{ExposeSecret, SecretString};

use super::{Authenticator, LoginInfo};
use crate::audit::{AuditEvent, AuditKind};
use crate::error::Error;
use crate::password::policy;
use crate::principal::AuthMethod;
use crate::store::{ClientInfo, UserRecord};

/// How many logins an administrative action ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EndedLogins {
    /// Server-side sessions deleted.
    pub sessions: usize,
    /// Refresh-token families deleted (their access tokens revoked).
    pub tokens: usize,
}

impl EndedLogins {
    /// Sessions and token families together.
    pub fn total(&self) -> usize {
        self.sessions + self.tokens
    }
}

/// Users read per store call by [`Authenticator::all_users`].
const USER_PAGE: usize = 1_000;

impl Authenticator {
    /// The user with this username (any case) or, failing that, this id;
    /// [`Error::NotFound`] if neither exists.
    pub async fn find_user(&self, username_or_id: &str) -> Result<UserRecord, Error> {
        let users = &self.inner.stores.users;
        let by_name = users.find_user_by_username(&username_or_id.to_ascii_lowercase()).await?;
        match by_name {
            Some(user) => Ok(user),
            None => users.find_user_by_id(username_or_id).await?.ok_or(Error::NotFound),
        }
    }

    /// At most `limit` users in username order, after the username `after` (`None`: from the
    /// first): one page of the user list.
    pub async fn list_users(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<UserRecord>, Error> {
        Ok(self.inner.stores.users.list_users(after, limit).await?)
    }

    /// Every user, in username order (read a page at a time).
    pub async fn all_users(&self) -> Result<Vec<UserRecord>, Error> {
        let mut all: Vec<UserRecord> = Vec::new();
        loop {
            let after = all.last().map(|u| u.username.clone());
            let page = self.list_users(after.as_deref(), USER_PAGE).await?;
            let done = page.len() < USER_PAGE;
            all.extend(page);
            if done {
                return Ok(all);
            }
        }
    }

    /// Disables `user`: their password logins are refused with [`Error::UserDisabled`], and
    /// every session and token family they have ends now (their access tokens are revoked).
    /// Disabling a disabled user keeps the first date and ends any login again. Audited as
    /// `user_disable` from `client`; returns the user as now stored.
    pub async fn disable_user(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<(UserRecord, EndedLogins), Error> {
        let result = self.disable_inner(user).await;
        if let Some(event) = self.outcome_event(AuditKind::UserDisable, client, &result) {
            self.audit(event.user(user)).await;
        }
        result
    }

    async fn disable_inner(&self, user: &UserRecord) -> Result<(UserRecord, EndedLogins), Error> {
        let mut user = user.clone();
        if user.disabled_at.is_none() {
            let now = self.now();
            // Disabled first: a login racing this sees the flag once it has created its
            // session (see `still_enabled`), or is ended by the sweep below.
            if !self.inner.stores.users.set_user_disabled(&user.id, Some(now)).await? {
                return Err(Error::NotFound);
            }
            user.disabled_at = Some(now);
        }
        let ended = self.end_logins_everywhere(&user.id).await?;
        Ok((user, ended))
    }

    /// Enables a disabled `user` again (they can log in; nothing else changes). Audited as
    /// `user_enable` from `client`.
    pub async fn enable_user(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<UserRecord, Error> {
        let result = async {
            if !self.inner.stores.users.set_user_disabled(&user.id, None).await? {
                return Err(Error::NotFound);
            }
            Ok(UserRecord { disabled_at: None, ..user.clone() })
        }
        .await;
        if let Some(event) = self.outcome_event(AuditKind::UserEnable, client, &result) {
            self.audit(event.user(user)).await;
        }
        result
    }

    /// Deletes `user` and ends every session and token family they have (their access tokens
    /// are revoked). Their audit events stay. Audited as `user_delete` from `client`.
    pub async fn delete_user(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
    ) -> Result<EndedLogins, Error> {
        let result = async {
            // Disabled first, so a login racing the deletion cannot survive it.
            let (_, ended) = self.disable_inner(user).await?;
            if !self.inner.stores.users.delete_user(&user.id).await? {
                return Err(Error::NotFound);
            }
            Ok(ended)
        }
        .await;
        if let Some(event) = self.outcome_event(AuditKind::UserDelete, client, &result) {
            self.audit(event.user(user)).await;
        }
        result
    }

    /// Sets `user`'s password (the same policy as registration; stored as a fresh argon2id
    /// hash). With `end_logins`, every session and token family of the user ends as well, as
    /// after a password change. Audited as `password_reset` from `client`.
    pub async fn set_password(
        &self,
        user: &UserRecord,
        password: &SecretString,
        end_logins: bool,
        client: &ClientInfo,
    ) -> Result<EndedLogins, Error> {
        let result = self.set_password_inner(user, password, end_logins).await;
        if let Some(event) = self.outcome_event(AuditKind::PasswordReset, client, &result) {
            self.audit(event.user(user)).await;
        }
        result
    }

    async fn set_password_inner(
        &self,
        user: &UserRecord,
        password: &SecretString,
        end_logins: bool,
    ) -> Result<EndedLogins, Error> {
        policy::check_password("password", password.expose_secret(), &user.username)?;
        let hash = self.inner.hasher.hash(password).await?;
        // As for a password change: logins end before and after the new hash is stored, so
        // neither a crash nor a login with the old password racing it keeps one alive.
        let mut ended = EndedLogins::default();
        if end_logins {
            ended = self.end_logins_everywhere(&user.id).await?;
        }
        if !self.inner.stores.users.update_password_hash(&user.id, &hash).await? {
            return Err(Error::NotFound);
        }
        if end_logins {
            let late = self.end_logins_everywhere(&user.id).await?;
            ended.sessions += late.sessions;
            ended.tokens += late.tokens;
        }
        Ok(ended)
    }

    /// Every session and token family of `user`, oldest first (none marked current).
    pub async fn user_logins(&self, user: &UserRecord) -> Result<Vec<LoginInfo>, Error> {
        self.logins_of(&user.id, None).await
    }

    /// Ends `user`'s session or token family with public handle `id`, or with `None` every
    /// one of them (their access tokens are revoked); [`Error::NotFound`] if `id` is not one
    /// of theirs. Audited as `login_end` or `logout_everywhere` from `client`.
    pub async fn end_user_logins(
        &self,
        user: &UserRecord,
        id: Option<&str>,
        client: &ClientInfo,
    ) -> Result<EndedLogins, Error> {
        let Some(id) = id else {
            let ended = self.end_logins_everywhere(&user.id).await?;
            let event = AuditEvent::success(AuditKind::LogoutEverywhere, self.now(), client);
            self.audit(event.user(user)).await;
            return Ok(ended);
        };
        let (method, ended) = if self.inner.sessions.delete_for_user(&user.id, id).await?.is_some()
        {
            self.announce_ended(id).await;
            (AuthMethod::Session, EndedLogins { sessions: 1, tokens: 0 })
        } else if self.revoke_family(id, Some(&user.id)).await? {
            (AuthMethod::Token, EndedLogins { sessions: 0, tokens: 1 })
        } else {
            return Err(Error::NotFound);
        };
        let event = AuditEvent::success(AuditKind::LoginEnd, self.now(), client)
            .user(user)
            .method(method)
            .sid(id);
        self.audit(event).await;
        Ok(ended)
    }

    /// Ends every login of the user and tells the processes following the feed to drop any
    /// session of the user they cache.
    async fn end_logins_everywhere(&self, user_id: &str) -> Result<EndedLogins, Error> {
        let ended = self.end_other_logins(user_id, None).await?;
        self.announce_ended(user_id).await;
        Ok(ended)
    }

    /// Announces a session handle or a user id on the revocation feed (a follower drops cached
    /// sessions by either; no token carries it as its `sid`).
    async fn announce_ended(&self, id: &str) {
        let until = self.now().plus(self.inner.access.revocation_lifetime());
        self.announce(&[id.to_owned()], until).await;
    }
}
