//! The changegate API on a real API server: the CRDs install, every example
//! applies, and invalid manifests are rejected with a message naming the field.

use crate::support::{TestNamespace, ensure_crds, kubectl};
use std::path::{Path, PathBuf};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(repo(dir))
        .expect("read dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML files in {dir}");
    files
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn the_crds_are_served_with_short_names_category_and_docs() {
    ensure_crds();
    let ns = TestNamespace::new("api-names").await;
    let out = kubectl(&["get", "changegate", "-n", &ns.name]);
    assert!(
        out.status.success(),
        "kubectl get changegate: {}",
        stderr(&out)
    );
    for short in ["chg", "rel", "mw", "cpol"] {
        let out = kubectl(&["get", short, "-n", &ns.name]);
        assert!(
            out.status.success(),
            "kubectl get {short}: {}",
            stderr(&out)
        );
    }
    let out = kubectl(&["explain", "changerequests.spec.targets.images"]);
    assert!(
        stdout(&out).contains("only container images this change may roll out"),
        "explain: {}",
        stdout(&out)
    );
}

#[tokio::test]
async fn every_example_applies() {
    ensure_crds();
    let ns = TestNamespace::new("api-examples").await;
    for file in yaml_files("examples") {
        let f = file.to_str().expect("utf-8 path");
        // Server-side dry run: full validation, without a cluster-wide policy
        // or window leaking into concurrently running tests.
        let out = kubectl(&["apply", "--dry-run=server", "-n", &ns.name, "-f", f]);
        assert!(
            out.status.success(),
            "{} was rejected: {}",
            file.display(),
            stderr(&out)
        );
    }
    // Namespaced examples are also created for real and read back.
    for name in [
        "change-normal",
        "change-standard",
        "change-emergency",
        "release",
    ] {
        let f = repo(&format!("examples/{name}.yaml"));
        let out = kubectl(&[
            "apply",
            "-n",
            &ns.name,
            "-f",
            f.to_str().expect("utf-8 path"),
        ]);
        assert!(
            out.status.success(),
            "{name} was rejected: {}",
            stderr(&out)
        );
    }
    let out = kubectl(&["get", "chg", "-n", &ns.name, "-o", "name"]);
    assert_eq!(
        stdout(&out).lines().collect::<Vec<_>>(),
        [
            "changerequest.changegate.dev/chg-0142",
            "changerequest.changegate.dev/chg-0143",
            "changerequest.changegate.dev/chg-0144"
        ]
    );
    let out = kubectl(&["get", "chg", "chg-0142", "-n", &ns.name]);
    let header = stdout(&out);
    for column in ["TYPE", "PHASE", "RISK", "APPROVALS", "WINDOW", "AGE"] {
        assert!(
            header.contains(column),
            "kubectl get chg lacks column {column}: {header}"
        );
    }
}

#[tokio::test]
async fn invalid_manifests_are_rejected_with_a_message_naming_the_field() {
    ensure_crds();
    let ns = TestNamespace::new("api-invalid").await;
    let mut failures = Vec::new();
    for file in yaml_files("tests/invalid") {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        let expect = text
            .lines()
            .find_map(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{} has no `# expect:` line", file.display()));
        let out = kubectl(&[
            "apply",
            "--dry-run=server",
            "-n",
            &ns.name,
            "-f",
            file.to_str().expect("utf-8 path"),
        ]);
        let err = stderr(&out);
        if out.status.success() {
            failures.push(format!(
                "{}: accepted, expected rejection with {expect:?}",
                file.display()
            ));
        } else if !err.contains(expect) {
            failures.push(format!(
                "{}: expected {expect:?} in:\n{err}",
                file.display()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} manifest(s) misjudged:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
