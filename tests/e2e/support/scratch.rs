//! A private scratch directory for files that hold credentials (keys,
//! kubeconfigs): under the gitignored `.cluster/`, mode 0700, removed when
//! dropped (kept, still private, when the test failed, for its logs).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(".cluster/scratch")
            .join(name);
        std::fs::create_dir_all(&dir).expect("scratch directory");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .expect("scratch directory mode");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `file` readable by its owner only; returns its path.
    pub fn write_private(&self, file: &str, contents: &str) -> PathBuf {
        use std::io::Write;
        let path = self.0.join(file);
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .and_then(|mut f| f.write_all(contents.as_bytes()))
            .expect("write a private file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // A failing test keeps its logs to read (still owner-only, under
        // the gitignored `.cluster/scratch`).
        if std::thread::panicking() {
            eprintln!("kept for a look: {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
