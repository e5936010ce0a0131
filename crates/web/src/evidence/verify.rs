//! The offline check of a bundle: every file against `SHA256SUMS`, every
//! link of the chain in `audit.jsonl`, and its head against the one
//! `evidence.json` records. Read as it is checked, so a bundle of any
//! size fits.

use changegate_core::audit::{self, Event};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// What checking a bundle found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleCheck {
    /// Each file of the manifest and whether its hash matched.
    pub files: Vec<(String, bool)>,
    /// The audit chain re-hashed from `audit.jsonl`.
    pub chain: audit::Report,
    /// `evidence.json` names the same head hash and number of events: the
    /// chain in the bundle is the one the export was made from, not cut short.
    pub head_matches: bool,
    /// The tenant `evidence.json` names.
    pub tenant: Option<String>,
    /// When `evidence.json` says the bundle was made.
    pub generated_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The hash of each event asked for by sequence number (checkpoints).
    pub hashes_at: BTreeMap<i64, String>,
}

impl BundleCheck {
    pub fn intact(&self) -> bool {
        !self.files.is_empty()
            && self.files.iter().all(|(_, ok)| *ok)
            && self.chain.intact
            && self.head_matches
    }
}

/// Check a bundle offline: every file against `SHA256SUMS`, and every
/// link of the chain in `audit.jsonl`. An error says what is unreadable.
pub fn verify_bundle(gzipped: &[u8]) -> Result<BundleCheck, String> {
    verify_bundle_from(gzipped)
}

/// A reader that hashes what passes through it.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
}

impl<R: std::io::Read> std::io::Read for Hashing<R> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(out)?;
        self.hash.update(&out[..n]);
        Ok(n)
    }
}

/// What `evidence.json` says of the chain it was made from.
#[derive(serde::Deserialize)]
struct Stated {
    #[serde(default)]
    tenant: Option<String>,
    #[serde(default)]
    generated_at: Option<chrono::DateTime<chrono::Utc>>,
    chain: StatedChain,
}

#[derive(serde::Deserialize)]
struct StatedChain {
    head_hash: String,
    events: u64,
}

/// [`verify_bundle`] over a reader (a file): each file is hashed as it is
/// read and the chain verified a line at a time, so a bundle of any size
/// is checked without being held in memory.
pub fn verify_bundle_from(gzipped: impl std::io::Read) -> Result<BundleCheck, String> {
    verify_bundle_keeping(gzipped, &std::collections::BTreeSet::new())
}

/// [`verify_bundle_from`], keeping the hashes of the events numbered in
/// `wanted` (to check the chain against checkpoints kept elsewhere).
pub fn verify_bundle_keeping(
    gzipped: impl std::io::Read,
    wanted: &std::collections::BTreeSet<i64>,
) -> Result<BundleCheck, String> {
    use std::io::{BufRead, Read};
    let mut hashes_at = BTreeMap::new();
    let mut hashes: BTreeMap<String, String> = BTreeMap::new();
    let mut manifest: Option<String> = None;
    let mut stated: Option<Stated> = None;
    let mut chain: Option<audit::Report> = None;
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(gzipped));
    let entries = archive
        .entries()
        .map_err(|e| format!("not a .tar.gz bundle: {e}"))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("unreadable bundle entry: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("unreadable name in the bundle: {e}"))?
            .to_string_lossy()
            .to_string();
        let name = path.rsplit('/').next().unwrap_or(&path).to_string();
        let unreadable = |e: std::io::Error| format!("unreadable {name}: {e}");
        let mut body = Hashing {
            inner: entry,
            hash: Sha256::new(),
        };
        match name.as_str() {
            "SHA256SUMS" => {
                let mut text = Vec::new();
                body.read_to_end(&mut text).map_err(unreadable)?;
                manifest = Some(String::from_utf8_lossy(&text).into_owned());
            }
            "evidence.json" => {
                // Only the chain it names is kept; an unreadable file
                // states nothing (and its hash tells whether it was altered).
                stated = serde_json::from_reader(&mut body).ok();
                std::io::copy(&mut body, &mut std::io::sink()).map_err(unreadable)?;
            }
            "audit.jsonl" => {
                let mut verifier = audit::Verifier::links_only();
                // The file's own end: the links are checked here, where it
                // ends against the head evidence.json recorded.
                let mut lines = std::io::BufReader::new(&mut body);
                let mut line = Vec::new();
                let mut number = 0;
                loop {
                    line.clear();
                    if lines.read_until(b'\n', &mut line).map_err(unreadable)? == 0 {
                        break;
                    }
                    number += 1;
                    let text = String::from_utf8_lossy(&line);
                    if text.trim().is_empty() {
                        continue;
                    }
                    let e: Event = serde_json::from_str(&text)
                        .map_err(|e| format!("audit.jsonl line {number}: {e}"))?;
                    if wanted.contains(&e.body.seq) {
                        hashes_at.insert(e.body.seq, e.hash.clone());
                    }
                    verifier.push(&e);
                }
                drop(lines);
                chain = Some(verifier.finish());
            }
            _ => {
                std::io::copy(&mut body, &mut std::io::sink()).map_err(unreadable)?;
            }
        }
        hashes.insert(name, hex::encode(body.hash.finalize()));
    }
    let manifest = manifest.ok_or("the bundle has no SHA256SUMS manifest")?;
    let mut checked = Vec::new();
    for line in manifest.lines().filter(|l| !l.trim().is_empty()) {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| format!("SHA256SUMS has a line that is not `<hash>  <file>`: {line}"))?;
        checked.push((
            name.to_string(),
            hashes.get(name).is_some_and(|h| h == hash),
        ));
    }
    let chain = chain.ok_or("the bundle has no audit.jsonl")?;
    let head_matches = stated.as_ref().is_some_and(|s| {
        s.chain.head_hash == chain.head_hash && s.chain.events == chain.events as u64
    });
    Ok(BundleCheck {
        files: checked,
        chain,
        head_matches,
        generated_at: stated.as_ref().and_then(|s| s.generated_at),
        tenant: stated.and_then(|s| s.tenant),
        hashes_at,
    })
}
