//! Files that hold secrets: the data directory (mode 0700) and key files (mode 0600), written so
//! that a crash never leaves a half-written key and two processes starting at once agree on one.

use std::io::Write;
use std::path::Path;

use crate::error::Error;

/// Creates `dir` (and parents) if missing; a new directory gets mode 0700.
pub fn create_private_dir(dir: &Path) -> Result<(), Error> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| Error::internal(format!("creating data directory {}: {e}", dir.display())))
}

/// Options that open files with mode 0600.
fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
}

/// Creates an empty file at `path` with mode 0600 unless something is already there.
#[cfg(feature = "sqlite")]
pub(crate) fn create_private_file_if_missing(path: &Path) -> std::io::Result<()> {
    match private_options().create_new(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// How a fully written temporary file takes the place of `path`.
#[derive(Clone, Copy)]
enum Install {
    /// Only if `path` does not exist yet (`AlreadyExists` otherwise).
    New,
    /// Replacing whatever is there.
    Replace,
}

/// Writes `bytes` to a temporary file (mode 0600, synced) beside `path`, then installs it, so
/// readers see either the old content or all of the new, never half of it.
fn write_private(path: &Path, bytes: &[u8], install: Install) -> Result<(), Error> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut file = private_options().create(true).truncate(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match install {
            Install::New => std::fs::hard_link(&tmp, path),
            Install::Replace => std::fs::rename(&tmp, path),
        }
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))
}

/// Writes `bytes` to `path`, replacing it, with mode 0600.
pub fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_private(path, bytes, Install::Replace)
}

/// Writes `bytes` to a new file at `path` with mode 0600; fails if `path` exists (a concurrent
/// writer's file wins).
pub fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    write_private(path, bytes, Install::New)
}

/// Whether `dir` can be read by other users (group or world bits set).
pub fn is_shared_dir(dir: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(dir).is_ok_and(|m| m.permissions().mode() & 0o077 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        false
    }
}

/// Whether the file at `path` can be read by users other than its owner (group or world read
/// bits set). `false` when it cannot be inspected.
pub fn others_can_read(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o044 != 0)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Reads the secret file at `path`, or creates it with the bytes `generate` returns. When two
/// processes race to create the file, the loser reads the winner's.
pub(crate) fn load_or_create_private(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<Vec<u8>, Error> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = generate()?;
            match write_private_file(path, &bytes) {
                Ok(()) => Ok(bytes),
                Err(write_error) => std::fs::read(path).map_err(|_| write_error),
            }
        }
        Err(e) => Err(Error::internal(format!("reading {}: {e}", path.display()))),
    }
}

/// Opens (creating, mode 0600) the lock file at `path` and takes an exclusive `flock(2)` on
/// it, waiting for another holder; the lock ends when the returned file is dropped, also when
/// the process dies. Processes that change a file under the same lock never lose each
/// other's changes. (Without `flock`, on non-Unix systems, the file is opened but not locked.)
pub(crate) fn lock_exclusive(path: &Path) -> Result<std::fs::File, Error> {
    let file = private_options()
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| Error::internal(format!("opening the lock {}: {e}", path.display())))?;
    #[cfg(unix)]
    rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
        .map_err(|e| Error::internal(format!("locking {}: {e}", path.display())))?;
    Ok(file)
}
