//! The Ed25519 batch equation, for signatures that mostly share one key.
//!
//! A signature `(R, s)` by key `A` on message `M` is valid when `s·B = R + k·A`, with
//! `k = SHA-512(R ‖ A ‖ M)`. For *n* signatures and random 128-bit weights `z_i`, all are
//! valid (up to a 2⁻¹²⁸ chance) when
//!
//! ```text
//! (−Σ z_i·s_i)·B + Σ z_i·R_i + Σ_A (Σ_{i signed by A} z_i·k_i)·A = 0
//! ```
//!
//! ed25519-dalek's `verify_batch` computes the same equation with one `A` term per signature
//! (2n + 1 points in the multiscalar multiplication) and derives the weights by hashing the
//! whole batch through a Merlin transcript. Every access token is signed by the current key,
//! so here the `A` terms are summed per distinct key (n + 2 points for one key), and the
//! weights come from the CSPRNG: the same check for about two thirds of the work.
//!
//! The two points every batch has, `B` and the signing key, are multiplied with lookup tables
//! built once per key (curve25519-dalek's precomputed Straus), the `R_i` with tables built per
//! batch.
//!
//! Like dalek's, the check is cofactorless, so a batch of signatures that each pass the single
//! check always passes; a failed batch is rechecked one signature at a time by the caller.

use std::sync::{Arc, Mutex, PoisonError};

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, VartimeEdwardsPrecomputation};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimePrecomputedMultiscalarMul as _};
use ed25519_dalek::{Signature, VerifyingKey};
use sha2::{Digest as _, Sha512};

/// One signature to check: who signed, what, and the signature.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Signed<'a> {
    pub(crate) key: &'a VerifyingKey,
    pub(crate) message: &'a [u8],
    pub(crate) signature: &'a Signature,
}

/// Keys whose tables are kept: the current signing key and a few retiring ones.
const TABLES_KEPT: usize = 4;

/// The lookup tables of `B` and a signing key `A` (about 20 KiB per key), the two points every
/// batch by that key has: built once per key instead of once per batch. On a new token each
/// request this cut the instructions per request by 3 % (206,727 → 199,876, callgrind).
struct StaticTables {
    key: [u8; 32],
    tables: Arc<VartimeEdwardsPrecomputation>,
}

static TABLES: Mutex<Vec<StaticTables>> = Mutex::new(Vec::new());

/// The tables of `B` and `key`, built on first use (most recently used kept first).
fn static_tables(key: &VerifyingKey) -> Arc<VartimeEdwardsPrecomputation> {
    let mut kept = TABLES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(at) = kept.iter().position(|t| t.key == *key.as_bytes()) {
        let found = kept.remove(at);
        let tables = Arc::clone(&found.tables);
        kept.insert(0, found);
        return tables;
    }
    let tables =
        Arc::new(VartimeEdwardsPrecomputation::new([ED25519_BASEPOINT_POINT, key.to_edwards()]));
    kept.insert(0, StaticTables { key: *key.as_bytes(), tables: Arc::clone(&tables) });
    kept.truncate(TABLES_KEPT);
    tables
}

/// Whether every signature in `batch` is valid (`true` for an empty batch). `false` means at
/// least one is not (or, with probability 2⁻¹²⁸, bad luck): check them one by one to know which.
pub(crate) fn all_valid(batch: &[Signed<'_>]) -> bool {
    let Some(first) = batch.first() else { return true };
    let n = batch.len();
    let mut weights = vec![0u8; 16 * n];
    if aws_lc_rs::rand::fill(&mut weights).is_err() {
        return false;
    }
    // Static points (tables built once): B and the first signature's key. Dynamic points:
    // each R_i, then any other key in the batch (rare: a key rotation in flight).
    let mut scalars = Vec::with_capacity(n + 1);
    let mut points = Vec::with_capacity(n + 1);
    let mut keys: Vec<(&VerifyingKey, Scalar)> = vec![(first.key, Scalar::ZERO)];
    let mut b_coefficient = Scalar::ZERO;
    for (signed, weight) in batch.iter().zip(weights.chunks_exact(16)) {
        let Some(s) =
            Option::<Scalar>::from(Scalar::from_canonical_bytes(*signed.signature.s_bytes()))
        else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(*signed.signature.r_bytes()).decompress() else {
            return false;
        };
        let mut z = [0u8; 16];
        z.copy_from_slice(weight);
        let z = Scalar::from(u128::from_le_bytes(z));
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(signed.signature.r_bytes())
                .chain_update(signed.key.as_bytes())
                .chain_update(signed.message),
        );
        b_coefficient += z * s;
        scalars.push(z);
        points.push(r);
        match keys.iter_mut().find(|(key, _)| key.as_bytes() == signed.key.as_bytes()) {
            Some((_, sum)) => *sum += z * k,
            None => keys.push((signed.key, z * k)),
        }
    }
    let (first_key, first_sum) = keys[0];
    for &(key, sum) in &keys[1..] {
        scalars.push(sum);
        points.push(key.to_edwards());
    }
    static_tables(first_key)
        .vartime_mixed_multiscalar_mul([-b_coefficient, first_sum], &scalars, &points)
        .is_identity()
}

#[cfg(test)]
mod tests {
    use ed25519_dalek::{Signer as _, SigningKey, Verifier as _};

    use super::*;

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    struct Owned {
        key: VerifyingKey,
        message: Vec<u8>,
        signature: Signature,
    }

    fn sign(by: &SigningKey, i: usize) -> Owned {
        let message = format!("eyJhbGciOiJFZERTQSJ9.payload-{i}").into_bytes();
        Owned { key: by.verifying_key(), signature: by.sign(&message), message }
    }

    fn check(batch: &[Owned]) -> bool {
        let signed: Vec<Signed<'_>> = batch
            .iter()
            .map(|o| Signed { key: &o.key, message: &o.message, signature: &o.signature })
            .collect();
        all_valid(&signed)
    }

    #[test]
    fn valid_batches_pass_with_one_key_or_several() {
        assert!(check(&[]));
        for n in [1, 2, 7, 64] {
            let one_key: Vec<Owned> = (0..n).map(|i| sign(&key(1), i)).collect();
            assert!(check(&one_key), "{n} signatures by one key");
            let keys: Vec<Owned> = (0..n).map(|i| sign(&key(1 + (i % 3) as u8), i)).collect();
            assert!(check(&keys), "{n} signatures by three keys");
        }
    }

    #[test]
    fn tables_follow_the_keys_in_use_and_stay_bounded() {
        // More keys than tables kept, each leading its batch in turn, twice over: the tables
        // of a key that dropped out are rebuilt, never confused with another key's.
        for _ in 0..2 {
            for seed in 10..10 + 2 * TABLES_KEPT as u8 {
                let batch: Vec<Owned> = (0..3).map(|i| sign(&key(seed), i)).collect();
                assert!(check(&batch), "key {seed}");
                let mut forged: Vec<Owned> = (0..3).map(|i| sign(&key(seed), i)).collect();
                forged[1].signature = key(seed + 1).sign(&forged[1].message);
                assert!(!check(&forged), "key {seed}, one signed by the next key");
            }
        }
        assert!(TABLES.lock().unwrap().len() <= TABLES_KEPT);
    }

    #[test]
    fn any_single_fault_fails_the_batch() {
        let batch = || (0..16).map(|i| sign(&key(1 + (i % 2) as u8), i)).collect::<Vec<_>>();
        for victim in [0, 7, 15] {
            let mut b = batch();
            b[victim].message.push(b'!');
            assert!(!check(&b), "message changed at {victim}");

            let mut b = batch();
            b[victim].key = key(9).verifying_key();
            assert!(!check(&b), "another key at {victim}");

            let mut b = batch();
            b[victim].signature = key(9).sign(&b[victim].message);
            assert!(!check(&b), "signed by another key at {victim}");

            for byte in [0, 31, 32, 40] {
                let mut b = batch();
                let mut bytes = b[victim].signature.to_bytes();
                bytes[byte] ^= 0x01;
                b[victim].signature = Signature::from_bytes(&bytes);
                let single = b[victim].key.verify(&b[victim].message, &b[victim].signature);
                assert!(single.is_err());
                assert!(!check(&b), "signature byte {byte} flipped at {victim}");
            }

            let mut b = batch();
            b.swap(victim, (victim + 1) % 16);
            assert!(check(&b), "a reordered batch is still valid");
        }
    }

    #[test]
    fn a_non_canonical_s_is_refused_like_the_single_check_does() {
        let mut b: Vec<Owned> = (0..4).map(|i| sign(&key(1), i)).collect();
        let mut bytes = b[2].signature.to_bytes();
        bytes[63] |= 0xf0;
        b[2].signature = Signature::from_bytes(&bytes);
        assert!(b[2].key.verify(&b[2].message, &b[2].signature).is_err());
        assert!(!check(&b));
    }

    #[test]
    fn signatures_swapped_between_messages_are_refused() {
        // Each signature valid, but on the other message: both checks must refuse.
        let mut b: Vec<Owned> = (0..8).map(|i| sign(&key(1), i)).collect();
        let first = b[0].signature;
        b[0].signature = b[1].signature;
        b[1].signature = first;
        assert!(b[0].key.verify(&b[0].message, &b[0].signature).is_err());
        assert!(!check(&b));
    }

    #[test]
    fn random_batches_agree_with_the_single_check() {
        for round in 0..20u8 {
            let mut b: Vec<Owned> = (0..12).map(|i| sign(&key(1 + round % 2), i)).collect();
            let bad = usize::from(round) % 13; // 12: no fault this round
            if let Some(victim) = b.get_mut(bad) {
                victim.message[usize::from(round) % 10] ^= 0x20;
            }
            let singles = b.iter().all(|o| o.key.verify(&o.message, &o.signature).is_ok());
            assert_eq!(check(&b), singles, "round {round}");
        }
    }
}
