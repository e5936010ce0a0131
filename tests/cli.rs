//! The `changegate` binary as people and scripts use it: a real server
//! on a free loopback port over a fresh embedded database, driven by the
//! admin and client commands.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_changegate");

struct Server {
    child: Child,
    url: String,
    dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `changegate serve` on port 0; the URL is read from its first line.
    fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("server starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("first line");
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {line:?}"))
            .to_string();
        Server { child, url, dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run a command against this server (and its database, for `admin`).
    fn run(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .env("CHANGEGATE_SERVER", &self.url)
            .env("CHANGEGATE_DATA_DIR", self.data());
        cmd.env_remove("CHANGEGATE_TOKEN")
            .env_remove("CHANGEGATE_DATABASE")
            .env_remove("CHANGEGATE_TENANT");
        if let Some(t) = token {
            cmd.env("CHANGEGATE_TOKEN", t);
        }
        cmd.output().expect("command runs")
    }

    fn ok(&self, token: Option<&str>, args: &[&str]) -> String {
        let out = self.run(token, args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    fn refused(&self, token: Option<&str>, args: &[&str]) -> String {
        let out = self.run(token, args);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{args:?} should be refused: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stderr).to_string()
    }

    fn admin_token(&self) -> String {
        self.ok(
            None,
            &[
                "admin",
                "create-user",
                "--email",
                "admin@msp.example",
                "--name",
                "Ada",
                "--admin",
            ],
        );
        self.ok(None, &["admin", "token", "admin@msp.example"])
            .trim()
            .to_string()
    }
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    let mut f = std::fs::File::create(&p).expect("file");
    f.write_all(text.as_bytes()).expect("written");
    p.to_string_lossy().to_string()
}

const MSP: &str = "\
kind: Tenant
slug: client-a
name: Client A
timeZone: Europe/Berlin
---
kind: User
tenant: client-a
email: carol@client-a.example
name: Carol
roles: [business-approver]
---
kind: Board
tenant: client-a
name: client
spec: { members: [role:business-approver], rule: any }
---
kind: Policy
tenant: client-a
spec:
  routing: { normal: [ { from: low, boards: [client] } ] }
  windowRequired: []
";

#[test]
fn apply_is_idempotent_and_a_bad_file_is_refused_whole() {
    let s = Server::start();
    let admin = s.admin_token();
    let file = write(s.dir.path(), "msp.yaml", MSP);
    let first = s.ok(Some(&admin), &["apply", "-f", &file]);
    assert!(
        first.contains("tenant client-a: created")
            && first.contains("policy of client-a: created (version 1)"),
        "{first}"
    );
    let second = s.ok(Some(&admin), &["apply", "-f", &file]);
    assert_eq!(second.matches("unchanged").count(), 4, "{second}");
    // The second document is bad: nothing of the first is applied.
    let bad = write(
        s.dir.path(),
        "bad.yaml",
        "kind: Tenant\nslug: client-z\nname: Z\n---\nkind: Board\ntenant: client-z\nname: b\nspec: { members: [role:boss], rule: any }\n",
    );
    let err = s.refused(Some(&admin), &["apply", "-f", &bad]);
    assert!(
        err.contains("document 2 (line 5)")
            && err.contains("spec.members")
            && err.contains("nothing was applied"),
        "{err}"
    );
    let listed = s.run(Some(&admin), &["change", "list", "--tenant", "client-z"]);
    assert_eq!(listed.status.code(), Some(1), "client-z must not exist");
    // A policy routing to a board that exists nowhere is refused before anything is written.
    let dangling = write(
        s.dir.path(),
        "dangling.yaml",
        "kind: Tenant\nslug: client-y\nname: Y\n---\nkind: Policy\ntenant: client-y\nspec: { routing: { emergency: [ecab] } }\n",
    );
    let err = s.refused(Some(&admin), &["apply", "-f", &dangling]);
    assert!(err.contains("routing.emergency"), "{err}");
    assert_eq!(
        s.run(Some(&admin), &["change", "list", "--tenant", "client-y"])
            .status
            .code(),
        Some(1)
    );
}

#[test]
fn a_change_goes_from_draft_to_approved_through_the_cli_and_the_chain_verifies() {
    let s = Server::start();
    let admin = s.admin_token();
    let file = write(s.dir.path(), "msp.yaml", MSP);
    s.ok(Some(&admin), &["apply", "-f", &file]);
    s.ok(
        None,
        &[
            "admin",
            "create-user",
            "--email",
            "eve@msp.example",
            "--name",
            "Eve",
            "--role",
            "client-a:requester",
        ],
    );
    let eve = s
        .ok(None, &["admin", "token", "eve@msp.example"])
        .trim()
        .to_string();
    let carol = s
        .ok(None, &["admin", "token", "carol@client-a.example"])
        .trim()
        .to_string();
    let created = s.ok(
        Some(&eve),
        &[
            "change",
            "create",
            "--tenant",
            "client-a",
            "--title",
            "Rotate certificates",
            "--risk",
            "production=no",
            "--risk",
            "outage=no",
            "--risk",
            "untested=no",
            "--risk",
            "no-backout=no",
        ],
    );
    let number = created
        .split_whitespace()
        .next()
        .expect("number")
        .to_string();
    assert!(number.starts_with("CHG-"), "{created}");
    let submitted = s.ok(
        Some(&eve),
        &["change", "submit", &number, "--tenant", "client-a"],
    );
    assert!(
        submitted.contains("awaiting-approval") && submitted.contains("carol@client-a.example"),
        "{submitted}"
    );
    let own = s.refused(
        Some(&eve),
        &["change", "approve", &number, "--tenant", "client-a"],
    );
    assert!(own.contains("403"), "{own}");
    // The CLI says which revision it decides on (the one it read), and an
    // older revision named on the command line is refused.
    assert!(own.contains("revision 1 (sha256:"), "{own}");
    let stale = s.refused(
        Some(&carol),
        &[
            "change",
            "approve",
            &number,
            "--tenant",
            "client-a",
            "--revision",
            "0",
        ],
    );
    assert!(
        stale.contains("409") && stale.contains("revision"),
        "{stale}"
    );
    let approved = s.ok(
        Some(&carol),
        &[
            "change", "approve", &number, "--tenant", "client-a", "-m", "fine",
        ],
    );
    assert!(approved.contains("approved"), "{approved}");
    let json = s.ok(
        Some(&carol),
        &["change", "show", &number, "--tenant", "client-a", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["state"], "approved");
    let audit = s.ok(Some(&carol), &["audit", "verify", "--tenant", "client-a"]);
    assert!(audit.contains("intact"), "{audit}");

    // The approved change, packaged into a release (the admin may act in
    // every tenant); its conflicts say it has no slot yet.
    let runbook = write(
        s.dir.path(),
        "runbook.yaml",
        "- { kind: deploy, title: Rotate the certificates, owner: eve@msp.example }\n",
    );
    let created = s.ok(
        Some(&admin),
        &[
            "release",
            "create",
            "--name",
            "Certificates",
            "--change",
            &format!("client-a/{number}"),
            "--runbook",
            &runbook,
        ],
    );
    assert!(
        created.starts_with("REL-1 [planning] Certificates"),
        "{created}"
    );
    assert!(
        created.contains("conflict slot:client-a (stands)"),
        "{created}"
    );
    assert!(
        created.contains("step 1 deploy [pending] Rotate the certificates"),
        "{created}"
    );
    let listed = s.ok(Some(&carol), &["release", "list"]);
    assert!(
        listed.contains("REL-1 [planning] Certificates (client-a/"),
        "{listed}"
    );
    let refused = s.refused(
        Some(&carol),
        &["release", "authorize", "REL-1", "--phase", "plan"],
    );
    assert!(refused.contains("403"), "{refused}");
    let bad = s.run(
        Some(&admin),
        &["release", "create", "--name", "x", "--change", "CHG-1"],
    );
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("<tenant>/<CHG-n>"));

    // The period's evidence as a bundle, verified offline: by changegate
    // and by the manifest alone with sha256sum, as the bundle's README says.
    let bundle = s.dir.path().join("evidence.tar.gz");
    let bundle = bundle.to_str().expect("a UTF-8 path");
    let wrote = s.ok(
        Some(&carol),
        &[
            "report", "evidence", "--tenant", "client-a", "--out", bundle,
        ],
    );
    assert!(wrote.contains("wrote"), "{wrote}");
    let verified = s.ok(None, &["report", "verify", bundle]);
    assert!(
        verified.contains("evidence.json: OK") && verified.contains("bundle verified"),
        "{verified}"
    );
    let unpacked = s.dir.path().join("unpacked");
    std::fs::create_dir_all(&unpacked).expect("a folder");
    let tar = Command::new("tar")
        .args(["-xzf", bundle, "-C"])
        .arg(&unpacked)
        .status()
        .expect("tar runs");
    assert!(tar.success());
    let folder = std::fs::read_dir(&unpacked)
        .expect("unpacked")
        .next()
        .expect("one folder")
        .expect("an entry")
        .path();
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&folder)
        .output()
        .expect("sha256sum runs");
    assert!(
        sums.status.success(),
        "{}",
        String::from_utf8_lossy(&sums.stdout)
    );
    // A changed byte is found by both.
    let csv = folder.join("changes.csv");
    let mut text = std::fs::read_to_string(&csv).expect("csv");
    text.push_str("CHG-999,forged\n");
    std::fs::write(&csv, text).expect("written");
    let sums = Command::new("sha256sum")
        .args(["-c", "SHA256SUMS"])
        .current_dir(&folder)
        .output()
        .expect("sha256sum runs");
    assert!(!sums.status.success());
    let repacked = s.dir.path().join("forged.tar.gz");
    let tar = Command::new("tar")
        .arg("-czf")
        .arg(&repacked)
        .arg("-C")
        .arg(&unpacked)
        .arg(folder.file_name().expect("a name"))
        .status()
        .expect("tar runs");
    assert!(tar.success());
    let forged = s.run(
        None,
        &["report", "verify", repacked.to_str().expect("UTF-8")],
    );
    assert_eq!(forged.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&forged.stdout).contains("changes.csv: FAILED"));
}

#[test]
fn a_pipeline_gate_check_exits_by_verdict_and_records_the_deployment() {
    let s = Server::start();
    let admin = s.admin_token();
    let catalogue = format!(
        "{MSP}---\nkind: ConfigurationItem\ntenant: client-a\nname: web-shop\n\
         spec: {{ kind: application, enforcement: {{ pipeline: {{ environment: production }} }} }}\n"
    );
    let file = write(s.dir.path(), "msp.yaml", &catalogue);
    s.ok(Some(&admin), &["apply", "-f", &file]);
    for (email, role) in [
        ("eve@msp.example", "client-a:requester"),
        ("ian@msp.example", "client-a:implementer"),
    ] {
        s.ok(
            None,
            &[
                "admin",
                "create-user",
                "--email",
                email,
                "--name",
                email,
                "--role",
                role,
            ],
        );
    }
    let token = |email: &str| s.ok(None, &["admin", "token", email]).trim().to_string();
    let (eve, ian, carol) = (
        token("eve@msp.example"),
        token("ian@msp.example"),
        token("carol@client-a.example"),
    );
    let created = s.ok(
        Some(&eve),
        &[
            "change",
            "create",
            "--tenant",
            "client-a",
            "--title",
            "Shop 2.0",
            "--ci",
            "web-shop",
            "--artifact",
            "shop@sha256:aa",
            "--risk",
            "production=no",
            "--risk",
            "outage=no",
            "--risk",
            "untested=no",
            "--risk",
            "no-backout=no",
        ],
    );
    let number = created
        .split_whitespace()
        .next()
        .expect("number")
        .to_string();
    s.ok(
        Some(&eve),
        &["change", "submit", &number, "--tenant", "client-a"],
    );

    let pipeline = s.ok(
        Some(&ian),
        &[
            "gate",
            "token",
            "--tenant",
            "client-a",
            "--name",
            "github-actions",
        ],
    );
    let pipeline = pipeline.trim();
    let gate = |artifact: &str, extra: &[&str]| {
        let mut args = vec![
            "gate",
            "check",
            "--tenant",
            "client-a",
            "--environment",
            "production",
            "--artifact",
            artifact,
        ];
        args.extend_from_slice(extra);
        s.run(Some(pipeline), &args)
    };
    let out = gate("shop@sha256:aa", &[]);
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.starts_with(&format!("deny: {number} awaits 1 approval from client")),
        "{said}"
    );
    // --wait: when the wait ends it denies, having said what it waited for.
    let out = gate("shop@sha256:aa", &["--wait", "1s"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains(&format!("waiting: {number} awaits 1 approval from client")),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Approved while it waits: it lets the pipeline go on at once.
    let mut waiting = Command::new(BIN)
        .args([
            "gate",
            "check",
            "--tenant",
            "client-a",
            "--environment",
            "production",
            "--artifact",
            "shop@sha256:aa",
            "--wait",
            "2m",
        ])
        .env("CHANGEGATE_SERVER", &s.url)
        .env("CHANGEGATE_TOKEN", pipeline)
        .env_remove("CHANGEGATE_TENANT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gate check --wait runs");
    let mut progress = std::io::BufReader::new(waiting.stderr.take().expect("stderr"));
    let mut line = String::new();
    std::io::BufRead::read_line(&mut progress, &mut line).expect("a progress line");
    assert!(line.starts_with("waiting: "), "{line}");
    s.ok(
        Some(&carol),
        &["change", "approve", &number, "--tenant", "client-a"],
    );
    let done = waiting.wait_with_output().expect("it ends");
    let said = String::from_utf8_lossy(&done.stdout).to_string();
    assert_eq!(done.status.code(), Some(0), "{said}");
    assert!(said.starts_with("allow: "), "{said}");
    assert_eq!(
        gate("shop@sha256:bb", &[]).status.code(),
        Some(1),
        "other content"
    );
    let out = gate(
        "shop@sha256:aa",
        &[
            "--record",
            "--run",
            "https://ci.example/1",
            "--status",
            "succeeded",
        ],
    );
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(0), "{said}");
    assert!(said.contains("recorded deployment.recorded"), "{said}");
    let json = s.ok(
        Some(&carol),
        &["change", "show", &number, "--tenant", "client-a", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["state"], "implemented");
    // Errors are 2, not a deny: a bad target, and the token outside the gate.
    let bad = s.run(
        Some(pipeline),
        &[
            "gate",
            "check",
            "--tenant",
            "client-a",
            "--workload",
            "prod/pay",
        ],
    );
    assert_eq!(bad.status.code(), Some(2));
    let outside = s.run(Some(pipeline), &["change", "list", "--tenant", "client-a"]);
    assert_eq!(outside.status.code(), Some(1), "a gate token lists nothing");
}

#[test]
fn commands_say_what_to_do_when_something_is_missing() {
    let s = Server::start();
    let no_token = s.run(None, &["change", "list"]);
    assert_eq!(no_token.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("changegate admin token"));
    let unknown = s.run(None, &["admin", "token", "nobody@msp.example"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("admin create-user"));
    let bad_token = s.run(Some("cg_0000"), &["change", "list"]);
    assert_eq!(bad_token.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad_token.stderr).contains("401"));
    let nowhere = Command::new(BIN)
        .args([
            "change",
            "list",
            "--server",
            "http://127.0.0.1:9",
            "--token",
            "cg_x",
        ])
        .output()
        .expect("runs");
    assert_eq!(nowhere.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("changegate serve"));
}

#[test]
fn an_online_backup_is_a_database_the_server_can_open() {
    let s = Server::start();
    let admin = s.admin_token();
    let file = write(s.dir.path(), "msp.yaml", MSP);
    s.ok(Some(&admin), &["apply", "-f", &file]);
    let backup = s.dir.path().join("backup.db");
    s.ok(None, &["admin", "backup", &backup.to_string_lossy()]);
    // Restore: a server on a directory holding the copy sees the same tenants.
    let restored = tempfile::tempdir().expect("dir");
    std::fs::copy(&backup, restored.path().join("changegate.db")).expect("copied");
    let out = Command::new(BIN)
        .args(["admin", "token", "carol@client-a.example", "--data-dir"])
        .arg(restored.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("cg_"));
    // Refuses to overwrite.
    s.refused(None, &["admin", "backup", &backup.to_string_lossy()]);
}

/// A client user created by `apply` has no password until an admin sets
/// one; then the portal's sign-in takes it, and only it.
#[test]
fn an_admin_sets_a_portal_password_and_the_user_signs_in_with_it() {
    let s = Server::start();
    let admin = s.admin_token();
    let file = write(s.dir.path(), "msp.yaml", MSP);
    s.ok(Some(&admin), &["apply", "-f", &file]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let sign_in = |password: &str| -> u16 {
        runtime.block_on(async {
            reqwest::Client::new()
                .post(format!("{}/api/v1/session", s.url))
                .json(
                    &serde_json::json!({ "email": "carol@client-a.example", "password": password }),
                )
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        })
    };
    assert_eq!(sign_in("carol's long password"), 401, "no password yet");
    let set = |var: Option<&str>| {
        let mut cmd = Command::new(BIN);
        cmd.args(["admin", "set-password", "carol@client-a.example"])
            .env("CHANGEGATE_DATA_DIR", s.data())
            .env_remove("CHANGEGATE_DATABASE")
            .env("CAROL_PASSWORD", "carol's long password");
        if let Some(var) = var {
            cmd.args(["--password-env", var]);
        }
        cmd.output().expect("runs")
    };
    let missing = set(None);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("--password-env"));
    let done = set(Some("CAROL_PASSWORD"));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(sign_in("carol's long password"), 200);
    assert_eq!(sign_in("not carol's password"), 401);
}

#[test]
fn the_operator_answers_to_its_former_name_agent() {
    for name in ["operator", "agent"] {
        let out = Command::new(env!("CARGO_BIN_EXE_changegate"))
            .args([name, "--help"])
            .output()
            .expect("run changegate");
        assert!(out.status.success(), "changegate {name} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--no-reconcile") && help.contains("--max-staleness"),
            "changegate {name} --help: {help}"
        );
    }
}
