//! `tessera dev-cert`: a self-signed certificate and key for local HTTPS (`localhost`,
//! `127.0.0.1`, `::1` and any extra names), valid for one year, so development can use the
//! same `__Host-` cookies and HSTS as production. Never for production: nothing trusts it
//! unless told to.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use rcgen::{CertificateParams, DnType, KeyPair};
use tessera::Timestamp;
use tessera::fsutil::{replace_private_file, write_private_file};

/// The files `dev-cert` wrote.
#[derive(Debug)]
pub struct DevCert {
    /// The PEM certificate.
    pub cert: PathBuf,
    /// The PEM private key (mode 0600).
    pub key: PathBuf,
}

/// Writes `dev-cert.pem` and `dev-key.pem` into `dir` for `localhost`, `127.0.0.1`, `::1` and
/// `extra_names`. Refuses to replace existing files unless `force`.
pub fn write(
    dir: &Path,
    extra_names: &[String],
    force: bool,
    now: Timestamp,
) -> anyhow::Result<DevCert> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    for name in extra_names {
        if name.is_empty()
            || name.len() > 253
            || name.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            bail!("--name: `{}` is not a host name or IP address", name.escape_debug());
        }
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let mut params = CertificateParams::new(names).context("certificate names")?;
    params.distinguished_name.push(DnType::CommonName, "Tessera development certificate");
    let (year, month, day) = ymd(now)?;
    params.not_before = rcgen::date_time_ymd(year, month, day);
    params.not_after = rcgen::date_time_ymd(year + 1, month, day.min(28));
    let key = KeyPair::generate().context("generating the key")?;
    let cert = params.self_signed(&key).context("signing the certificate")?;

    tessera::fsutil::create_private_dir(dir)?;
    let files = DevCert { cert: dir.join("dev-cert.pem"), key: dir.join("dev-key.pem") };
    if !force {
        for path in [&files.cert, &files.key] {
            if path.exists() {
                bail!("{} exists; pass --force to replace it", path.display());
            }
        }
    }
    let write = if force { replace_private_file } else { write_private_file };
    write(&files.key, key.serialize_pem().as_bytes())?;
    write(&files.cert, cert.pem().as_bytes())?;
    Ok(files)
}

/// The UTC calendar date of `now`.
fn ymd(now: Timestamp) -> anyhow::Result<(i32, u8, u8)> {
    let text = now.to_rfc3339();
    let parse = |range: std::ops::Range<usize>| text.get(range).and_then(|s| s.parse::<i32>().ok());
    match (parse(0..4), parse(5..7), parse(8..10)) {
        (Some(y), Some(m), Some(d)) => Ok((y, u8::try_from(m)?, u8::try_from(d)?)),
        _ => bail!("cannot read the date {text}"),
    }
}
