//! The changegate server `make up` starts next to the agent
//! (`.cluster/server/`): the admin token it wrote, and the binary's client
//! and admin commands against it.

use super::cluster::repo_root;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;

pub struct Server {
    pub url: String,
    dir: PathBuf,
    admin: String,
}

/// The server of `make up`; panics saying what to run when it is not there.
pub fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let port = std::env::var("CHANGEGATE_SERVER_PORT").unwrap_or_else(|_| "9180".into());
        let url = format!("http://127.0.0.1:{port}");
        let dir = repo_root().join(".cluster/server");
        let admin = std::fs::read_to_string(dir.join("admin-token")).unwrap_or_else(|e| {
            panic!(
                "no admin token in {}: {e}; run `make up` (make test-e2e does)",
                dir.display()
            )
        });
        Server {
            url,
            dir,
            admin: admin.trim().to_string(),
        }
    })
}

impl Server {
    /// `changegate <args>` against this server, as `token` (the admin's
    /// when `None`); `admin` commands reach its database.
    pub fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_changegate"))
            .args(args)
            .env("CHANGEGATE_SERVER", &self.url)
            .env("CHANGEGATE_DATA_DIR", self.dir.join("data"))
            .env("CHANGEGATE_TOKEN", token.unwrap_or(&self.admin))
            .env_remove("CHANGEGATE_DATABASE")
            .env_remove("CHANGEGATE_TENANT")
            .output()
            .expect("run changegate")
    }

    /// As [`Server::run`], and it must succeed: its standard output.
    pub fn ok(&self, token: Option<&str>, args: &[&str]) -> String {
        let out = self.run(token, args);
        assert!(
            out.status.success(),
            "changegate {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `changegate apply` of `yaml` as the administrator.
    pub fn apply(&self, yaml: &str) {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), yaml).expect("write the YAML");
        self.ok(None, &["apply", "-f", &file.path().to_string_lossy()]);
    }

    /// An API token of `email` (minted on the database).
    pub fn token(&self, email: &str) -> String {
        self.ok(None, &["admin", "token", email]).trim().to_string()
    }
}
