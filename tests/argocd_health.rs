//! The Argo CD health checks the chart ships (`charts/changegate/argocd/`,
//! in the layout of Argo CD's own `resource_customizations`), run as Argo
//! CD runs them: Lua 5.1 (Argo CD embeds gopher-lua, a 5.1), the resource
//! as the global `obj`, the returned table's `status` and `message`. Each
//! kind's `health_test.yaml` is checked against its `testdata/`: objects
//! the operator wrote on the local control plane. And `argocd-cm.yaml`
//! embeds exactly these scripts (`CHANGEGATE_WRITE_ARGOCD=1` rewrites it).

use mlua::serde::SerializeOptions;
use mlua::{Lua, LuaSerdeExt, Value as LuaValue};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const KINDS: [&str; 3] = ["ChangeRequest", "Release", "MaintenanceWindow"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("charts/changegate/argocd")
}

#[derive(Deserialize)]
struct HealthTests {
    tests: Vec<HealthTest>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HealthTest {
    health_status: Health,
    input_path: String,
}

#[derive(Deserialize, Debug, PartialEq)]
struct Health {
    status: String,
    #[serde(default)]
    message: String,
}

/// The health `script` gives `object`, as Argo CD computes it.
fn health(script: &str, object: &serde_json::Value) -> Health {
    let lua = Lua::new();
    // A JSON null is nil in Argo CD's Lua, as here.
    let options = SerializeOptions::new()
        .serialize_none_to_null(false)
        .serialize_unit_to_null(false);
    let obj = lua
        .to_value_with(object, options)
        .expect("the object as a Lua table");
    lua.globals().set("obj", obj).expect("obj set");
    let hs: LuaValue = lua.load(script).eval().expect("the script runs");
    let LuaValue::Table(hs) = hs else {
        panic!("the script returns no table: {hs:?}");
    };
    Health {
        status: hs.get("status").expect("a status"),
        message: hs
            .get::<Option<String>>("message")
            .expect("a message")
            .unwrap_or_default(),
    }
}

#[test]
fn each_kinds_health_check_reads_the_operators_resources_as_its_tests_say() {
    let mut checked = 0;
    for kind in KINDS {
        let dir = root().join("changegate.dev").join(kind);
        let script = std::fs::read_to_string(dir.join("health.lua")).expect("health.lua");
        let tests: HealthTests = serde_yaml_ng::from_str(
            &std::fs::read_to_string(dir.join("health_test.yaml")).expect("health_test.yaml"),
        )
        .expect("health_test.yaml reads");
        assert!(tests.tests.len() >= 2, "{kind}: too few health tests");
        for t in tests.tests {
            let input = std::fs::read_to_string(dir.join(&t.input_path))
                .unwrap_or_else(|e| panic!("{kind}/{}: {e}", t.input_path));
            let object: serde_json::Value =
                serde_yaml_ng::from_str(&input).expect("a resource in YAML");
            assert_eq!(object["kind"], kind, "{kind}/{}", t.input_path);
            assert_eq!(
                health(&script, &object),
                t.health_status,
                "{kind}/{}",
                t.input_path
            );
            checked += 1;
        }
    }
    assert!(checked >= 9, "checked {checked}");
}

#[test]
fn a_resource_the_operator_has_not_written_yet_is_progressing() {
    for kind in KINDS {
        let script =
            std::fs::read_to_string(root().join("changegate.dev").join(kind).join("health.lua"))
                .expect("health.lua");
        let fresh = serde_json::json!({"apiVersion": "changegate.dev/v1", "kind": kind,
            "metadata": {"name": "new", "generation": 1}, "spec": {}});
        assert_eq!(health(&script, &fresh).status, "Progressing", "{kind}");
    }
}

/// The `argocd-cm` data that installs the three checks.
fn argocd_cm() -> String {
    let mut out = String::from(
        "# Generated from charts/changegate/argocd/changegate.dev/*/health.lua by\n\
         # tests/argocd_health.rs (CHANGEGATE_WRITE_ARGOCD=1); do not edit by hand.\n\
         # Merge into Argo CD's argocd-cm ConfigMap (or the argo-cd chart's\n\
         # configs.cm values) so Argo CD reads changegate's conditions.\n\
         data:\n",
    );
    for kind in KINDS {
        let script =
            std::fs::read_to_string(root().join("changegate.dev").join(kind).join("health.lua"))
                .expect("health.lua");
        out.push_str(&format!(
            "  resource.customizations.health.changegate.dev_{kind}: |\n"
        ));
        for line in script.lines() {
            if line.is_empty() {
                out.push('\n');
            } else {
                out.push_str(&format!("    {line}\n"));
            }
        }
    }
    out
}

#[test]
fn the_argocd_cm_snippet_embeds_exactly_the_scripts() {
    let path = root().join("argocd-cm.yaml");
    let wanted = argocd_cm();
    if std::env::var_os("CHANGEGATE_WRITE_ARGOCD").is_some() {
        std::fs::write(&path, &wanted).expect("write argocd-cm.yaml");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == wanted,
        "{} is not what the scripts make: run CHANGEGATE_WRITE_ARGOCD=1 cargo test --test argocd_health",
        path.display()
    );
    let parsed: serde_yaml_ng::Value = serde_yaml_ng::from_str(&committed).expect("YAML");
    for kind in KINDS {
        let key = format!("resource.customizations.health.changegate.dev_{kind}");
        assert!(
            parsed["data"][key.as_str()]
                .as_str()
                .is_some_and(|s| s.contains("local hs")),
            "{key}"
        );
    }
}
