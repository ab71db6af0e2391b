//! Passwords: the rules a new username and password must meet ([`policy`]), the PHC string
//! format they are stored in ([`phc`]), and argon2id hashing on a bounded pool of worker threads
//! that reuse their memory ([`hasher`]).

pub mod hasher;
pub mod phc;
pub mod policy;

pub use hasher::{HashWork, PasswordHasher, Verification};
pub use phc::Argon2Params;
