//! argon2id hashing and verification off the async workers, on a fixed pool of threads.
//!
//! Each worker owns one argon2 memory buffer (19 MiB at the default cost) and reuses it for
//! every job, so a login storm costs `workers × memory` and no more, and the allocator never
//! sees a 19 MiB allocation per login. Jobs queue on a bounded channel; when it is full,
//! callers wait, so authenticated traffic (which never hashes) keeps its async workers. On
//! Linux the workers run at a lower priority ([`WORKER_NICE`]), so they also leave the CPU to
//! the request workers when both want it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

use argon2::{Algorithm, Argon2, Block, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};

use super::phc::{Argon2Params, HASH_LEN, PhcHash, SALT_LEN};
use crate::crypto::{ct_eq, random_bytes};
use crate::error::Error;

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is right.
    pub matches: bool,
    /// The stored hash used other parameters than the configured ones: hash again and store.
    pub needs_rehash: bool,
}

/// How much argon2 work the pool has done: every computation, whatever it was for, and its
/// cost. A login for an unknown user and one with a wrong password must add the same here.
#[derive(Debug, Default)]
struct Work {
    computations: AtomicU64,
    kib_passes: AtomicU64,
}

/// A reading of the pool's argon2 work counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HashWork {
    /// argon2 computations run (hashes and verifications).
    pub computations: u64,
    /// Their summed cost: memory (KiB) × passes × lanes of each.
    pub kib_passes: u64,
}

enum Job {
    Hash { password: SecretString, reply: oneshot::Sender<Result<String, Error>> },
    Verify { password: SecretString, phc: String, reply: oneshot::Sender<Result<bool, Error>> },
}

/// A pool of argon2id workers. Cloning shares the pool.
#[derive(Clone)]
pub struct PasswordHasher {
    jobs: mpsc::Sender<Job>,
    params: Argon2Params,
    /// Verified against when the user does not exist, so the response takes as long.
    dummy_hash: Arc<str>,
    work: Arc<Work>,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher").field("params", &self.params).finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Starts `workers` threads hashing with `params`.
    pub fn new(params: Argon2Params, workers: usize) -> Result<Self, Error> {
        params.validate().map_err(Error::Internal)?;
        let workers = workers.max(1);
        let (jobs, queue) = mpsc::channel::<Job>(workers * 64);
        let queue = Arc::new(Mutex::new(queue));
        let work = Arc::new(Work::default());
        for index in 0..workers {
            let queue = Arc::clone(&queue);
            let work = Arc::clone(&work);
            thread::Builder::new()
                .name(format!("tessera-argon2-{index}"))
                .spawn(move || worker(&queue, params, &work))
                .map_err(|e| Error::internal(format!("starting a password worker: {e}")))?;
        }
        // A real hash with the configured cost, of a password nobody knows.
        let dummy =
            PhcHash { params, salt: random_bytes::<SALT_LEN>()?.to_vec(), hash: vec![0; HASH_LEN] };
        Ok(PasswordHasher { jobs, params, dummy_hash: dummy.encode().into(), work })
    }

    /// The argon2 work done so far.
    pub fn work(&self) -> HashWork {
        HashWork {
            computations: self.work.computations.load(Ordering::Relaxed),
            kib_passes: self.work.kib_passes.load(Ordering::Relaxed),
        }
    }

    /// The parameters new hashes are made with.
    pub fn params(&self) -> Argon2Params {
        self.params
    }

    /// Hashes `password` into a PHC string with a fresh salt.
    pub async fn hash(&self, password: &SecretString) -> Result<String, Error> {
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Hash { password: password.clone(), reply }).await?;
        answer.await.map_err(|_| Error::internal("password worker stopped"))?
    }

    /// Checks `password` against `stored`; with `None` (no such user) it checks against a dummy
    /// hash of the same cost and reports no match, so both cases take the same time.
    pub async fn verify(
        &self,
        password: &SecretString,
        stored: Option<&str>,
    ) -> Result<Verification, Error> {
        let phc = stored.unwrap_or(&self.dummy_hash).to_owned();
        let needs_rehash = stored
            .is_some_and(|s| PhcHash::parse(s).map(|p| p.params != self.params).unwrap_or(false));
        let (reply, answer) = oneshot::channel();
        self.submit(Job::Verify { password: password.clone(), phc, reply }).await?;
        let matches = answer.await.map_err(|_| Error::internal("password worker stopped"))??;
        Ok(Verification { matches: matches && stored.is_some(), needs_rehash })
    }

    async fn submit(&self, job: Job) -> Result<(), Error> {
        self.jobs.send(job).await.map_err(|_| Error::internal("password workers stopped"))
    }
}

/// The nice value of a password worker thread (Linux), the lowest priority: a login storm then
/// takes only what the request workers leave (about 1.5 % of a core they saturate), so
/// authenticated traffic keeps its latency; with the CPU otherwise idle, hashing runs at full
/// speed. Measured against nice 10 on one core: the p99 of session checks during a storm went
/// from 5.5–7.7 ms to 3.5–3.7 ms (`docs/benchmarks.md`).
pub const WORKER_NICE: i32 = 19;

fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(None, WORKER_NICE) {
        tracing::debug!("could not lower the password worker's priority: {e}");
    }
}

fn worker(queue: &Mutex<mpsc::Receiver<Job>>, params: Argon2Params, work: &Work) {
    lower_priority();
    let mut memory = Memory { blocks: Vec::new(), work };
    loop {
        let job = match queue.lock() {
            Ok(mut queue) => queue.blocking_recv(),
            Err(_) => None,
        };
        let Some(job) = job else { return };
        match job {
            Job::Hash { password, reply } => {
                let result = hash(&mut memory, password.expose_secret().as_bytes(), params);
                let _ = reply.send(result);
            }
            Job::Verify { password, phc, reply } => {
                let result = verify(&mut memory, password.expose_secret().as_bytes(), &phc);
                let _ = reply.send(result);
            }
        }
    }
}

/// A worker's reusable argon2 memory, and the counters its computations add to.
struct Memory<'w> {
    blocks: Vec<Block>,
    work: &'w Work,
}

fn compute(
    memory: &mut Memory<'_>,
    password: &[u8],
    salt: &[u8],
    params: Argon2Params,
    out_len: usize,
) -> Result<Vec<u8>, Error> {
    params.validate().map_err(Error::Internal)?;
    let argon_params = argon2::Params::new(
        params.memory_kib,
        params.iterations,
        params.parallelism,
        Some(out_len),
    )
    .map_err(|e| Error::internal(format!("argon2: {e}")))?;
    memory.blocks.resize(argon_params.block_count(), Block::default());
    let mut out = vec![0u8; out_len];
    memory.work.computations.fetch_add(1, Ordering::Relaxed);
    let cost =
        u64::from(params.memory_kib) * u64::from(params.iterations) * u64::from(params.parallelism);
    memory.work.kib_passes.fetch_add(cost, Ordering::Relaxed);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory.blocks[..])
        .map_err(|e| Error::internal(format!("argon2: {e}")))?;
    Ok(out)
}

fn hash(memory: &mut Memory<'_>, password: &[u8], params: Argon2Params) -> Result<String, Error> {
    let salt = random_bytes::<SALT_LEN>()?.to_vec();
    let hash = compute(memory, password, &salt, params, HASH_LEN)?;
    Ok(PhcHash { params, salt, hash }.encode())
}

fn verify(memory: &mut Memory<'_>, password: &[u8], phc: &str) -> Result<bool, Error> {
    let stored = PhcHash::parse(phc)
        .map_err(|e| Error::internal(format!("stored password hash is unusable: {e}")))?;
    let computed = compute(memory, password, &stored.salt, stored.params, stored.hash.len())?;
    Ok(ct_eq(&computed, &stored.hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHEAP: Argon2Params = Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 };

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    /// The nice values of this process's password worker threads (`/proc`, Linux).
    #[cfg(target_os = "linux")]
    fn worker_nice_values() -> Vec<i32> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if !comm.starts_with("tessera-argon2") {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the parenthesised name: state is field 3, nice is field 19.
            let after_name = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or_default();
            if let Some(nice) = after_name.split(' ').nth(19 - 3).and_then(|n| n.parse().ok()) {
                found.push(nice);
            }
        }
        found
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn workers_run_at_a_lower_priority_than_request_threads() {
        let hasher = PasswordHasher::new(CHEAP, 2).unwrap();
        hasher.hash(&secret("a password")).await.unwrap(); // a worker has started and run
        // Other tests start pools too: a thread caught before its first instruction has not
        // lowered its priority yet, so look again for a while before failing.
        let mut nice = worker_nice_values();
        for _ in 0..100 {
            if !nice.is_empty() && nice.iter().all(|n| *n == WORKER_NICE) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            nice = worker_nice_values();
        }
        assert!(!nice.is_empty(), "no password worker thread found");
        assert!(nice.iter().all(|n| *n == WORKER_NICE), "{nice:?}");
        let this_thread = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
        let own: i32 =
            this_thread.rsplit_once(") ").unwrap().1.split(' ').nth(16).unwrap().parse().unwrap();
        assert!(own < WORKER_NICE, "the caller keeps its priority ({own})");
    }

    #[tokio::test]
    async fn hashes_verify_and_report_parameter_changes() {
        let hasher = PasswordHasher::new(CHEAP, 2).unwrap();
        let phc = hasher.hash(&secret("correct horse")).await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let ok = hasher.verify(&secret("correct horse"), Some(&phc)).await.unwrap();
        assert_eq!(ok, Verification { matches: true, needs_rehash: false });
        let wrong = hasher.verify(&secret("correct horsE"), Some(&phc)).await.unwrap();
        assert!(!wrong.matches);

        let stronger = PasswordHasher::new(Argon2Params { memory_kib: 128, ..CHEAP }, 1).unwrap();
        let old = stronger.verify(&secret("correct horse"), Some(&phc)).await.unwrap();
        assert_eq!(old, Verification { matches: true, needs_rehash: true });
    }

    #[tokio::test]
    async fn a_missing_user_never_matches() {
        let hasher = PasswordHasher::new(CHEAP, 1).unwrap();
        let v = hasher.verify(&secret(""), None).await.unwrap();
        assert!(!v.matches);
    }

    #[tokio::test]
    async fn salts_differ_per_hash() {
        let hasher = PasswordHasher::new(CHEAP, 1).unwrap();
        let a = hasher.hash(&secret("pw-pw-pw-pw")).await.unwrap();
        let b = hasher.hash(&secret("pw-pw-pw-pw")).await.unwrap();
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn verifies_hashes_made_by_an_independent_implementation() {
        // Made with Python's argon2-cffi (the reference C implementation) for the password
        // "correct horse battery staple" and salt "tessera-kat-salt".
        let cheap = "$argon2id$v=19$m=64,t=1,p=1$dGVzc2VyYS1rYXQtc2FsdA$\
                     FHa1kUrY7vVyyaUThtSnWEiDyRd1GkUNEsIRTlKhY1Y";
        let default = "$argon2id$v=19$m=19456,t=2,p=1$dGVzc2VyYS1rYXQtc2FsdA$\
                       o6gjF1QQJU7xEMIv/+iN1CH7IIbry22DCeZh2WL+eic";
        let hasher = PasswordHasher::new(Argon2Params::default(), 1).unwrap();
        let pw = secret("correct horse battery staple");
        assert_eq!(
            hasher.verify(&pw, Some(default)).await.unwrap(),
            Verification { matches: true, needs_rehash: false }
        );
        assert_eq!(
            hasher.verify(&pw, Some(cheap)).await.unwrap(),
            Verification { matches: true, needs_rehash: true }
        );
        assert!(
            !hasher
                .verify(&secret("correct horse battery stapler"), Some(cheap))
                .await
                .unwrap()
                .matches
        );
    }

    #[tokio::test]
    async fn a_corrupt_stored_hash_is_an_error_not_a_match() {
        let hasher = PasswordHasher::new(CHEAP, 1).unwrap();
        assert!(hasher.verify(&secret("x"), Some("$argon2id$garbage")).await.is_err());
    }
}
