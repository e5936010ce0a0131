//! The changegate server `make up` starts next to the agent
//! (`.cluster/server/`), or a private one a test starts and stops: the
//! admin token, and the binary's client and admin commands against it.

use super::cluster::repo_root;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, OnceLock};

pub struct Server {
    pub url: String,
    dir: PathBuf,
    admin: String,
    /// A private server's process and directory.
    own: Mutex<Option<(Child, tempfile::TempDir)>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The server of `make up`; panics saying what to run when it is not there.
pub fn server() -> Arc<Server> {
    static SERVER: OnceLock<Arc<Server>> = OnceLock::new();
    SERVER
        .get_or_init(|| {
            let port = std::env::var("CHANGEGATE_SERVER_PORT").unwrap_or_else(|_| "9180".into());
            let url = format!("http://127.0.0.1:{port}");
            let dir = repo_root().join(".cluster/server");
            let admin = std::fs::read_to_string(dir.join("admin-token")).unwrap_or_else(|e| {
                panic!(
                    "no admin token in {}: {e}; run `make up` (make test-e2e does)",
                    dir.display()
                )
            });
            Arc::new(Server {
                url,
                dir,
                admin: admin.trim().to_string(),
                own: Mutex::new(None),
            })
        })
        .clone()
}

impl Server {
    /// A server of this test's own: `changegate serve` on port 0 over a
    /// fresh embedded database in a temporary directory, with an admin.
    pub fn private() -> Server {
        let tmp = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(env!("CARGO_BIN_EXE_changegate"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(tmp.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a server");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("the server's first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        let mut server = Server {
            url,
            dir: tmp.path().to_path_buf(),
            admin: String::new(),
            own: Mutex::new(Some((child, tmp))),
        };
        server.ok(
            None,
            &[
                "admin",
                "create-user",
                "--email",
                "admin@msp.example",
                "--name",
                "Admin",
                "--admin",
            ],
        );
        server.admin = server.token("admin@msp.example");
        server
    }

    /// Stops a private server (nothing for the shared one).
    pub fn stop(&self) {
        let mut own = self
            .own
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((child, _)) = own.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Registers cluster `name`: its agent token.
    pub fn register_cluster(&self, name: &str) -> String {
        let out = Command::new("curl")
            .args([
                "-fsS",
                "-X",
                "POST",
                &format!("{}/api/v1/clusters", self.url),
            ])
            .args(["-H", &format!("authorization: Bearer {}", self.admin)])
            .args(["-H", "content-type: application/json"])
            .args(["-d", &format!("{{\"name\": \"{name}\"}}")])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        v["token"].as_str().expect("the agent token").to_string()
    }

    /// `GET path` of the API as the administrator: the JSON answer.
    pub fn get(&self, path: &str) -> serde_json::Value {
        let out = Command::new("curl")
            .args(["-fsS", &format!("{}{path}", self.url)])
            .args(["-H", &format!("authorization: Bearer {}", self.admin)])
            .output()
            .expect("curl");
        assert!(
            out.status.success(),
            "GET {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("JSON")
    }

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
