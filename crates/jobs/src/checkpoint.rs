//! The checkpoint log: each tenant's audit head (sequence and hash),
//! signed with an Ed25519 key of the server's and appended to a file kept
//! apart from the database, whenever it moved. A chain that someone with
//! database access rewrote, its head included, still verifies on its own;
//! against a checkpoint it does not (`changegate report verify
//! --checkpoints`). The key is made at the first start, next to the log
//! (`<log>.key`, e.g. `heads.jsonl.key`, readable by its owner only); its
//! public half is written to `<log>.pub` for whoever verifies.

use changegate_core::TenantId;
use changegate_core::audit::Checkpoint;
use changegate_store::{Store, StoreError};
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    #[serde(flatten)]
    pub checkpoint: Checkpoint,
    /// Ed25519 over `Checkpoint::signed_bytes`, hex.
    pub signature: String,
}

/// The log and its key.
pub struct Checkpoints {
    key: SigningKey,
    file: PathBuf,
    /// The sequence last written per tenant.
    written: HashMap<TenantId, i64>,
}

/// The log's signing key: `<log>.key`.
pub fn key_path(log: &Path) -> PathBuf {
    beside(log, ".key")
}

/// The log's public key: `<log>.pub`.
pub fn public_key_path(log: &Path) -> PathBuf {
    beside(log, ".pub")
}

fn beside(log: &Path, suffix: &str) -> PathBuf {
    let mut name = log.as_os_str().to_owned();
    name.push(suffix);
    name.into()
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Database(format!("checkpoint log: {what} {}: {e}", path.display()))
}

impl Checkpoints {
    /// Open the log at `file`, making its key on first use.
    pub fn open(file: &Path) -> Result<Self, StoreError> {
        let key_path = key_path(file);
        let key = match std::fs::read_to_string(&key_path) {
            Ok(text) => {
                let bytes: [u8; 32] = hex::decode(text.trim())
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .ok_or_else(|| {
                        StoreError::Database(format!(
                            "checkpoint key {} is not 32 bytes of hex",
                            key_path.display()
                        ))
                    })?;
                SigningKey::from_bytes(&bytes)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut bytes = [0u8; 32];
                rand::RngCore::fill_bytes(&mut rand::rng(), &mut bytes);
                let key = SigningKey::from_bytes(&bytes);
                write_private(&key_path, &hex::encode(bytes))?;
                key
            }
            Err(e) => return Err(io("cannot read the key", &key_path, e)),
        };
        let public = public_key_path(file);
        std::fs::write(&public, hex::encode(key.verifying_key().to_bytes()) + "\n")
            .map_err(|e| io("cannot write the public key", &public, e))?;
        Ok(Checkpoints {
            key,
            file: file.to_path_buf(),
            written: HashMap::new(),
        })
    }

    /// The public key (hex) a verifier checks the lines with.
    pub fn public_key(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Append a signed checkpoint of every tenant whose head moved since
    /// the last one written; the lines written.
    pub async fn write_due(
        &mut self,
        store: &dyn Store,
        now: DateTime<Utc>,
    ) -> Result<Vec<Line>, StoreError> {
        let heads = store.audit_heads().await?;
        let moved: Vec<TenantId> = heads
            .iter()
            .filter(|(t, seq)| **seq > 0 && self.written.get(t) != Some(seq))
            .map(|(t, _)| *t)
            .collect();
        if moved.is_empty() {
            return Ok(Vec::new());
        }
        let tenants = store.tenants(None).await?;
        let mut lines = Vec::new();
        for t in moved {
            let Some(tenant) = tenants.iter().find(|x| x.id == t) else {
                continue;
            };
            let head = store.audit_chain_head(t).await?;
            let checkpoint = Checkpoint {
                tenant: tenant.slug.to_string(),
                seq: head.seq,
                hash: head.hash,
                at: now,
            };
            let signature = hex::encode(self.key.sign(&checkpoint.signed_bytes()).to_bytes());
            lines.push((
                t,
                Line {
                    checkpoint,
                    signature,
                },
            ));
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.file)
            .map_err(|e| io("cannot open", &self.file, e))?;
        let mut text = String::new();
        for (_, line) in &lines {
            text.push_str(
                &serde_json::to_string(line).map_err(|e| StoreError::Database(e.to_string()))?,
            );
            text.push('\n');
        }
        out.write_all(text.as_bytes())
            .and_then(|()| out.sync_data())
            .map_err(|e| io("cannot append to", &self.file, e))?;
        for (t, line) in &lines {
            self.written.insert(*t, line.checkpoint.seq);
        }
        Ok(lines.into_iter().map(|(_, l)| l).collect())
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), StoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut f = options
        .open(path)
        .map_err(|e| io("cannot create the key", path, e))?;
    f.write_all(text.as_bytes())
        .map_err(|e| io("cannot write the key", path, e))
}

/// Whether `line` is a checkpoint signed by `public_key` (hex).
pub fn signed_by(line: &Line, public_key: &str) -> bool {
    let Some(key) = hex::decode(public_key.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .and_then(|b| ed25519_dalek::VerifyingKey::from_bytes(&b).ok())
    else {
        return false;
    };
    let Some(signature) = hex::decode(&line.signature)
        .ok()
        .and_then(|b| <[u8; 64]>::try_from(b).ok())
        .map(|b| ed25519_dalek::Signature::from_bytes(&b))
    else {
        return false;
    };
    key.verify_strict(&line.checkpoint.signed_bytes(), &signature)
        .is_ok()
}

/// What checking a bundle's chain against the log found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Anchoring {
    /// One sentence per checkpoint the chain does not hold.
    pub problems: Vec<String>,
    /// Checkpoints the chain holds.
    pub held: usize,
    /// Checkpoints signed after the bundle was made: a newer bundle holds
    /// them, this one cannot.
    pub later: usize,
}

impl Anchoring {
    /// The chain holds every checkpoint signed before the bundle was made,
    /// and there was at least one: something was checked.
    pub fn anchored(&self) -> bool {
        self.problems.is_empty() && self.held > 0
    }
}

/// Check the chain of `tenant` in a bundle made at `made_at` (`events`
/// long, with the hashes of the events numbered in the log in
/// `hashes_at`) against the lines of a checkpoint log signed by
/// `public_key`: every checkpoint of the tenant signed by then must be
/// held, its event present with the hash signed.
pub fn check(
    lines: &[Line],
    public_key: &str,
    tenant: &str,
    made_at: DateTime<Utc>,
    events: i64,
    hashes_at: &std::collections::BTreeMap<i64, String>,
) -> Anchoring {
    let mut found = Anchoring::default();
    for l in lines.iter().filter(|l| l.checkpoint.tenant == tenant) {
        let c = &l.checkpoint;
        let at = c.at.format("%Y-%m-%d %H:%M:%S UTC");
        if !signed_by(l, public_key) {
            found.problems.push(format!(
                "checkpoint of {at} (event {}): not signed by the log's key",
                c.seq
            ));
        } else if c.at > made_at {
            found.later += 1;
        } else if c.seq > events {
            found.problems.push(format!(
                "checkpoint of {at}: the chain had {} events then; this one has {events}: events were removed",
                c.seq
            ));
        } else if hashes_at.get(&c.seq) != Some(&c.hash) {
            found.problems.push(format!(
                "checkpoint of {at}: event {} differs from the one signed then: history was rewritten",
                c.seq
            ));
        } else {
            found.held += 1;
        }
    }
    found
}
