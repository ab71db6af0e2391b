//! `tessera bench`: measuring Tessera on the machine it runs on.
//!
//! - `tessera bench` ([`run`]): the in-process benchmark of sessions against tokens at several
//!   user counts, with its table and SVG chart;
//! - `tessera bench tokens` ([`tokens`]): many distinct valid access tokens for one login, for
//!   external load tests that must defeat the verified-token cache (`scripts/bench-targets`);
//! - `tessera bench primitives` ([`primitives`]): the per-core signature-verification rate of
//!   the configured algorithm (the ceiling for requests that each carry a new token) and the
//!   time of one argon2id hash (the ceiling for logins per second per password worker).

pub mod chart;
pub mod load;
pub mod primitives;
pub mod progress;
pub mod run;
pub mod seed;
pub mod tokens;

use std::time::Duration;

/// CPU time (user + system) of this whole process, from `/proc/self/stat` (zero elsewhere).
pub fn process_cpu() -> Duration {
    cpu_from_stat("/proc/self/stat")
}

/// CPU time of the calling thread, from `/proc/thread-self/stat` (zero elsewhere).
pub fn thread_cpu() -> Duration {
    cpu_from_stat("/proc/thread-self/stat")
}

/// CPU time of this process's SQLite worker threads (sqlx names them `sqlx-sqlite-worker-N`;
/// the kernel keeps 15 characters): the store's own work, such as renewals written behind the
/// requests. Zero elsewhere than Linux.
pub fn store_worker_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    tasks
        .flatten()
        .filter(|task| {
            std::fs::read_to_string(task.path().join("comm"))
                .is_ok_and(|name| name.starts_with("sqlx-sqlite"))
        })
        .map(|task| cpu_from_stat(&task.path().join("stat").to_string_lossy()))
        .sum()
}

fn cpu_from_stat(path: &str) -> Duration {
    let Ok(stat) = std::fs::read_to_string(path) else { return Duration::ZERO };
    // Fields after the parenthesised name start at field 3; utime and stime are 14 and 15.
    let Some((_, rest)) = stat.rsplit_once(") ") else { return Duration::ZERO };
    let mut fields = rest.split(' ').skip(14 - 3);
    let ticks: u64 = fields.by_ref().take(2).filter_map(|f| f.parse::<u64>().ok()).sum();
    // Linux reports in USER_HZ, 100 on every architecture Tessera builds for.
    Duration::from_millis(ticks * 10)
}

/// Resident memory of this process in bytes (`VmRSS` of `/proc/self/status`; zero elsewhere).
pub fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find_map(|line| {
                let kib = line.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim();
                kib.parse::<u64>().ok()
            })
        })
        .map_or(0, |kib| kib * 1024)
}
