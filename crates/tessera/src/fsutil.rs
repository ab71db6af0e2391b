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

/// Creates an empty file at `path` with mode 0600 unless something is already there.
pub(crate) fn create_private_file_if_missing(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes `bytes` to `path` (replacing it) through a temporary file with mode 0600.
pub(crate) fn replace_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))
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

/// Reads the secret file at `path`, or creates it with the bytes `generate` returns.
///
/// Returns the bytes and whether they were created now. When two processes race to create the
/// file, the loser reads the winner's.
pub(crate) fn load_or_create_private(
    path: &Path,
    generate: impl FnOnce() -> Result<Vec<u8>, Error>,
) -> Result<(Vec<u8>, bool), Error> {
    let read = |path: &Path| std::fs::read(path);
    match read(path) {
        Ok(bytes) => Ok((bytes, false)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let bytes = generate()?;
            match write_private_file(path, &bytes) {
                Ok(()) => Ok((bytes, true)),
                Err(write_error) => match read(path) {
                    Ok(existing) => Ok((existing, false)),
                    Err(_) => Err(write_error),
                },
            }
        }
        Err(e) => Err(Error::internal(format!("reading {}: {e}", path.display()))),
    }
}

/// Writes `bytes` to a new file at `path` with mode 0600.
///
/// The content goes to a temporary file first and is then linked into place, which fails if
/// `path` exists: a concurrent writer's file wins and this call reports `AlreadyExists`.
pub(crate) fn write_private_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let fail =
        |what: &str, e: std::io::Error| Error::internal(format!("{what} {}: {e}", path.display()));
    let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("key");
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = (|| {
        let mut file = options.open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(|e| fail("writing", e))
}
