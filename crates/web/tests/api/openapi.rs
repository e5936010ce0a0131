//! The committed OpenAPI document: `docs/openapi.json` is what the code
//! generates, and every API route is in it. `make openapi` rewrites the
//! file (`CHANGEGATE_WRITE_OPENAPI=1` makes this test write it).

use std::path::PathBuf;

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
}

#[test]
fn the_committed_openapi_document_is_the_generated_one() {
    let generated = changegate_web::openapi::document_json();
    let path = committed_path();
    if std::env::var("CHANGEGATE_WRITE_OPENAPI").is_ok_and(|v| v == "1") {
        if let Err(e) = std::fs::write(&path, &generated) {
            panic!("cannot write {}: {e}", path.display());
        }
        eprintln!("wrote {}", path.display());
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "docs/openapi.json is out of date: run `make openapi`"
    );
}

#[test]
fn every_api_route_is_in_the_openapi_document() {
    let doc: serde_json::Value = serde_json::from_str(&changegate_web::openapi::document_json())
        .expect("the document is JSON");
    let missing: Vec<String> = changegate_web::route_table()
        .into_iter()
        .filter(|r| r.path.starts_with("/api/v1/") && r.path != "/api/v1/openapi.json")
        .filter(|r| doc["paths"][r.path][r.method.to_lowercase()].is_null())
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add them to `paths(...)` in crates/web/src/openapi.rs): {missing:?}"
    );
}
