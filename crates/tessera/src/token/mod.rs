//! Token authentication: signing keys and the JWKS ([`keys`]), where they are kept and how
//! they rotate ([`keyring`], [`key_dir`]), public keys read back from a
//! JWKS ([`jwk`]), the JWS compact format ([`jws`]), access tokens ([`access`]) with batched
//! Ed25519 checks ([`batch`]), rotating refresh-token families ([`refresh`]) and the set of
//! revoked `sid`s that makes revocation instant ([`revocation`]).

pub mod access;
pub mod batch;
mod batch_equation;
pub mod jwk;
pub mod jws;
pub mod key_dir;
pub mod keyring;
pub mod keys;
pub mod refresh;
pub mod revocation;

pub use access::{AccessClaims, AccessTokens, IssuedAccessToken};
pub use batch::{BatchStats, SignatureBatcher};
pub use jwk::{ClaimRules, JwkError, JwkSet, JwkVerifyError};
pub use key_dir::KeyDir;
pub use keyring::{KeyInfo, KeyPolicy, KeyRing, KeyState, Rotation, SyncedKeys};
pub use keys::{Algorithm, KeySet, SigningKey, VerifyingKey};
pub use refresh::{IssuedRefreshToken, RefreshOutcome, RefreshTokens};
pub use revocation::RevocationSet;
