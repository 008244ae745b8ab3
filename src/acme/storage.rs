//! The ACME task's files in `--state-dir`: `acme/account.json` (the account key and URL, for
//! one directory URL) and `acme/certificates/<host>.json` (chain and private key). Written
//! atomically (temp file, sync, rename) with mode 0600: they hold private keys.
//!
//! Without `--state-dir` nothing is written (the account and certificates live in memory).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The stored account: which directory it belongs to, and instant-acme's credentials.
#[derive(Serialize, Deserialize)]
pub(crate) struct StoredAccount {
    pub(crate) directory: String,
    pub(crate) credentials: serde_json::Value,
}

/// One stored certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredCertificate {
    pub(crate) host: String,
    /// PEM: the end-entity certificate first, then the intermediates.
    pub(crate) chain: String,
    /// PEM PKCS#8 private key.
    pub(crate) key: String,
}

/// `--state-dir`/acme, or nothing.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    dir: Option<PathBuf>,
}

impl Storage {
    /// Nothing is stored.
    pub(crate) fn memory() -> Storage {
        Storage { dir: None }
    }

    /// Creates `DIR/acme/certificates` when a directory is given. Errors name the path.
    pub(crate) fn open(state_dir: Option<&Path>) -> Result<Storage, String> {
        let Some(state_dir) = state_dir else {
            return Ok(Storage { dir: None });
        };
        let dir = state_dir.join("acme");
        std::fs::create_dir_all(dir.join("certificates"))
            .map_err(|error| format!("--state-dir: cannot create {}: {error}", dir.display()))?;
        Ok(Storage { dir: Some(dir) })
    }

    pub(crate) fn account(&self, directory: &str) -> Option<serde_json::Value> {
        let path = self.dir.as_ref()?.join("account.json");
        let text = std::fs::read(&path).ok()?;
        match serde_json::from_slice::<StoredAccount>(&text) {
            Ok(stored) if stored.directory == directory => Some(stored.credentials),
            Ok(_) => {
                tracing::info!(
                    "--state-dir: {} belongs to another ACME directory; a new account is made",
                    path.display()
                );
                None
            }
            Err(error) => {
                tracing::warn!(
                    "--state-dir: {} is not an ACME account ({error}); a new account is made",
                    path.display()
                );
                None
            }
        }
    }

    pub(crate) fn save_account(&self, account: &StoredAccount) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join("account.json");
        if let Err(error) = write_private(&path, account) {
            tracing::warn!(
                "--state-dir: cannot write {}: {error}; the ACME account is kept in memory",
                path.display()
            );
        }
    }

    /// Every stored certificate, by host; unreadable files are reported and skipped.
    pub(crate) fn certificates(&self) -> BTreeMap<String, StoredCertificate> {
        let mut found = BTreeMap::new();
        let Some(dir) = &self.dir else { return found };
        let Ok(entries) = std::fs::read_dir(dir.join("certificates")) else {
            return found;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| serde_json::from_slice::<StoredCertificate>(&text).map_err(|e| e.to_string()))
            {
                Ok(stored) => {
                    found.insert(stored.host.clone(), stored);
                }
                Err(error) => tracing::warn!("--state-dir: {} is not a stored certificate: {error}", path.display()),
            }
        }
        found
    }

    pub(crate) fn save_certificate(&self, certificate: &StoredCertificate) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join("certificates").join(format!("{}.json", certificate.host));
        if let Err(error) = write_private(&path, certificate) {
            tracing::warn!(
                "--state-dir: cannot write {}: {error}; the certificate of {} is kept in memory only",
                path.display(),
                certificate.host
            );
        }
    }
}

/// Writes `path.tmp` (mode 0600), syncs it, renames it over `path`.
fn write_private<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("json.tmp");
    let text = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&text)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
