//! The bundle on disk: written after every answer of the server (a new
//! bundle or a confirmation), read once at start-up, so an agent restarted
//! while the server is down still decides, and still knows how old its
//! bundle is. Written to a temporary file and renamed: a crash leaves the
//! previous copy, never half of one.

use super::Bundle;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cached {
    pub etag: String,
    /// When the server last said this bundle was current.
    pub confirmed_at: DateTime<Utc>,
    pub bundle: Bundle,
}

pub fn file(dir: &Path) -> PathBuf {
    dir.join("bundle.json")
}

/// The cached bundle, `None` when there is none; an unreadable cache is
/// reported and ignored (the agent then waits for the server).
pub fn load(dir: &Path) -> Option<Cached> {
    let path = file(dir);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "cannot read the cached bundle; waiting for the server");
            return None;
        }
    };
    match serde_json::from_slice(&text) {
        Ok(cached) => Some(cached),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "the cached bundle does not parse; waiting for the server");
            None
        }
    }
}

/// What [`store`] writes: a [`Cached`] by reference, so writing after a
/// confirmation copies nothing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CachedRef<'a> {
    etag: &'a str,
    confirmed_at: DateTime<Utc>,
    bundle: &'a Bundle,
}

pub fn store(
    dir: &Path,
    etag: &str,
    confirmed_at: DateTime<Utc>,
    bundle: &Bundle,
) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let path = file(dir);
    let tmp = dir.join("bundle.json.tmp");
    let cached = CachedRef {
        etag,
        confirmed_at,
        bundle,
    };
    let json = serde_json::to_vec(&cached).map_err(std::io::Error::other)?;
    std::fs::write(&tmp, json)?;
    std::fs::rename(&tmp, &path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_bundle_loads_back_and_a_broken_one_is_ignored() {
        let dir = std::env::temp_dir().join(format!("changegate-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(load(&dir), None);
        let cached = Cached {
            etag: "\"abc\"".into(),
            confirmed_at: "2026-11-27T10:00:00Z".parse().expect("time"),
            bundle: Bundle {
                cluster: "prod-eu".into(),
                email_prefix: None,
                tenants: vec![],
            },
        };
        store(&dir, &cached.etag, cached.confirmed_at, &cached.bundle).expect("store");
        assert_eq!(load(&dir), Some(cached));
        std::fs::write(file(&dir), b"{not json").expect("write");
        assert_eq!(load(&dir), None);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
