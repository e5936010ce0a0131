//! `changegate apply -f FILE`: policy as code. Every document in the file
//! is parsed and validated first (syntax, fields, the same engines the
//! server uses, references between documents and to what the server
//! holds, and the caller's rights), and only then applied, in dependency
//! order. Applying the same file twice changes nothing.

use changegate_core::board::BoardSpec;
use changegate_core::catalogue::{ConfigurationItem, Template};
use changegate_core::policy::PolicySpec;
use changegate_core::window::{CompiledWindow, WindowKind, WindowSpec};
use changegate_core::{Email, Role, Slug};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::ExitCode;

use super::client::{Client, ServerArgs};

#[derive(Args)]
pub struct ApplyArgs {
    /// A YAML file of one or more documents separated by `---`; `-` reads standard input.
    #[arg(short = 'f', long = "file")]
    file: PathBuf,
    /// Validate everything (also against the server) and apply nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// One document of an apply file.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind", deny_unknown_fields)]
enum Doc {
    Tenant {
        slug: String,
        name: String,
        #[serde(rename = "timeZone", default = "utc")]
        time_zone: String,
    },
    User {
        tenant: String,
        email: String,
        #[serde(default)]
        name: Option<String>,
        /// `client` (default) or `msp`.
        #[serde(default, rename = "userKind")]
        user_kind: Option<String>,
        roles: Vec<String>,
    },
    Board {
        tenant: String,
        name: String,
        spec: serde_json::Value,
    },
    Policy {
        tenant: String,
        spec: serde_json::Value,
    },
    Window {
        tenant: String,
        name: String,
        spec: serde_json::Value,
    },
    Template {
        tenant: String,
        name: String,
        spec: serde_json::Value,
    },
    ConfigurationItem {
        tenant: String,
        name: String,
        spec: serde_json::Value,
    },
    /// A Kubernetes user name of a cluster mapped to a user of the tenant:
    /// who a ChangeRequest's creator or editor is.
    ClusterIdentity {
        tenant: String,
        cluster: String,
        /// As the cluster's API server authenticates them.
        user: String,
        email: String,
    },
}

fn utc() -> String {
    "UTC".into()
}

impl Doc {
    fn tenant(&self) -> &str {
        match self {
            Doc::Tenant { slug, .. } => slug,
            Doc::User { tenant, .. }
            | Doc::Board { tenant, .. }
            | Doc::Policy { tenant, .. }
            | Doc::Window { tenant, .. }
            | Doc::Template { tenant, .. }
            | Doc::ConfigurationItem { tenant, .. }
            | Doc::ClusterIdentity { tenant, .. } => tenant,
        }
    }

    /// Dependency order: tenants, people, boards, then what refers to them.
    fn order(&self) -> u8 {
        match self {
            Doc::Tenant { .. } => 0,
            Doc::User { .. } => 1,
            Doc::Board { .. } => 2,
            Doc::Window { .. } | Doc::Template { .. } | Doc::ConfigurationItem { .. } => 3,
            Doc::Policy { .. } => 4,
            Doc::ClusterIdentity { .. } => 5,
        }
    }

    fn label(&self) -> String {
        match self {
            Doc::Tenant { slug, .. } => format!("tenant {slug}"),
            Doc::User { tenant, email, .. } => format!("user {email} in {tenant}"),
            Doc::Board { tenant, name, .. } => format!("board {tenant}/{name}"),
            Doc::Policy { tenant, .. } => format!("policy of {tenant}"),
            Doc::Window { tenant, name, .. } => format!("window {tenant}/{name}"),
            Doc::Template { tenant, name, .. } => format!("template {tenant}/{name}"),
            Doc::ConfigurationItem { tenant, name, .. } => {
                format!("configuration item {tenant}/{name}")
            }
            Doc::ClusterIdentity {
                tenant,
                cluster,
                user,
                ..
            } => format!("identity {user} of cluster {cluster} in {tenant}"),
        }
    }
}

/// A refusal naming the document, its first line, and the field.
#[derive(Debug)]
struct Refusal {
    doc: usize,
    line: usize,
    field: String,
    message: String,
}

fn spec<T: serde::de::DeserializeOwned>(v: &Value, prefix: &str) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(v.clone()).map_err(|e| {
        let p = e.path().to_string();
        let field = if p == "." {
            prefix.to_string()
        } else {
            format!("{prefix}.{p}")
        };
        (field, e.into_inner().to_string())
    })
}

/// Check one document on its own, with the engines the server uses.
fn validate(doc: &Doc) -> Result<(), (String, String)> {
    let invalid = |field: &str, e: changegate_core::ids::InvalidValue| {
        let f = if e.field.is_empty() {
            field.to_string()
        } else {
            format!("{field}.{}", e.field)
        };
        (f, e.message)
    };
    Slug::parse(doc.tenant()).map_err(|e| ("tenant".to_string(), e.message))?;
    match doc {
        Doc::Tenant {
            name, time_zone, ..
        } => {
            if name.trim().is_empty() {
                return Err(("name".into(), "a tenant needs a name".into()));
            }
            time_zone.parse::<chrono_tz::Tz>().map_err(|_| {
                (
                    "timeZone".to_string(),
                    format!("{time_zone:?} is not an IANA time zone, e.g. Europe/Berlin"),
                )
            })?;
        }
        Doc::User {
            email,
            roles,
            user_kind,
            ..
        } => {
            Email::parse(email).map_err(|e| ("email".to_string(), e.message))?;
            if roles.is_empty() {
                return Err(("roles".into(), "grant at least one role".into()));
            }
            for (i, r) in roles.iter().enumerate() {
                r.parse::<Role>()
                    .map_err(|e| (format!("roles[{i}]"), e.message))?;
            }
            if let Some(k) = user_kind {
                k.parse::<changegate_core::UserKind>()
                    .map_err(|e| ("userKind".to_string(), e.message))?;
            }
        }
        Doc::Board { name, spec: s, .. } => {
            let mut v = s.clone();
            if let Some(o) = v.as_object_mut() {
                o.entry("name")
                    .or_insert_with(|| Value::String(name.clone()));
            }
            let b: BoardSpec = spec(&v, "spec")?;
            b.validate().map_err(|e| invalid("spec", e))?;
        }
        Doc::Policy { spec: s, .. } => {
            let _: PolicySpec = spec(s, "spec")?;
        }
        Doc::Window { name, spec: s, .. } => {
            let w: WindowSpec = spec(s, "spec")?;
            CompiledWindow::compile(name, &w).map_err(|e| {
                let field = e.field();
                let message = e.to_string();
                let message = message
                    .strip_prefix(&format!("{field}: "))
                    .unwrap_or(&message)
                    .to_string();
                (field, message)
            })?;
        }
        Doc::Template { spec: s, .. } => {
            let t: Template = spec(s, "spec")?;
            t.validate().map_err(|e| invalid("spec", e))?;
        }
        Doc::ConfigurationItem { spec: s, .. } => {
            let c: ConfigurationItem = spec(s, "spec")?;
            c.validate().map_err(|e| invalid("spec", e))?;
        }
        Doc::ClusterIdentity {
            cluster,
            user,
            email,
            ..
        } => {
            Slug::parse(cluster).map_err(|e| ("cluster".to_string(), e.message))?;
            if user.trim().is_empty() {
                return Err((
                    "user".into(),
                    "give the Kubernetes user name as the API server authenticates it".into(),
                ));
            }
            Email::parse(email).map_err(|e| ("email".to_string(), e.message))?;
        }
    }
    Ok(())
}

/// Split a YAML stream into documents with their first line numbers.
fn documents(text: &str) -> Result<Vec<(usize, Doc)>, Refusal> {
    let mut out = Vec::new();
    let mut starts = vec![1usize];
    for (i, line) in text.lines().enumerate() {
        if line.trim_end() == "---" && i > 0 {
            starts.push(i + 2);
        }
    }
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let line = starts.get(i).copied().unwrap_or(1);
        let value: serde_yaml_ng::Value =
            serde_yaml_ng::Value::deserialize(de).map_err(|e| Refusal {
                doc: i + 1,
                line: e.location().map(|l| l.line()).unwrap_or(line),
                field: String::new(),
                message: e.to_string(),
            })?;
        if value.is_null() {
            continue;
        }
        let doc: Doc = serde_path_to_error::deserialize(value).map_err(|e| Refusal {
            doc: i + 1,
            line,
            field: e.path().to_string().trim_start_matches('.').to_string(),
            message: e.into_inner().to_string(),
        })?;
        out.push((line, doc));
    }
    Ok(out)
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("changegate: {message}");
    ExitCode::from(code)
}

pub async fn run(args: ApplyArgs) -> ExitCode {
    let text = if args.file.as_os_str() == "-" {
        let mut s = String::new();
        match std::io::Read::read_to_string(&mut std::io::stdin(), &mut s) {
            Ok(_) => s,
            Err(e) => return fail(2, format!("cannot read standard input: {e}")),
        }
    } else {
        match std::fs::read_to_string(&args.file) {
            Ok(s) => s,
            Err(e) => return fail(2, format!("cannot read {}: {e}", args.file.display())),
        }
    };
    let file = args.file.display().to_string();
    let refuse = |r: Refusal| {
        let field = if r.field.is_empty() {
            String::new()
        } else {
            format!(", field {}", r.field)
        };
        fail(
            1,
            format!(
                "{file}: document {} (line {}){field}: {}\nnothing was applied",
                r.doc, r.line, r.message
            ),
        )
    };
    let mut docs = match documents(&text) {
        Ok(d) => d,
        Err(r) => return refuse(r),
    };
    if docs.is_empty() {
        return fail(1, format!("{file} holds no documents"));
    }
    for (i, (line, doc)) in docs.iter().enumerate() {
        if let Err((field, message)) = validate(doc) {
            return refuse(Refusal {
                doc: i + 1,
                line: *line,
                field,
                message,
            });
        }
    }
    let client = match args.server.client() {
        Ok(c) => c,
        Err(e) => return fail(e.exit_code(), e),
    };
    if let Err(r) = check_against_server(&client, &docs).await {
        return match r {
            Checked::Refused(r) => refuse(r),
            Checked::Unreachable(code, m) => fail(code, m),
        };
    }
    if args.dry_run {
        println!(
            "{file}: {} documents valid; nothing applied (--dry-run)",
            docs.len()
        );
        return ExitCode::SUCCESS;
    }
    docs.sort_by_key(|(_, d)| d.order());
    for (_, doc) in &docs {
        match apply_one(&client, doc).await {
            Ok(applied) => println!("{}: {applied}", doc.label()),
            Err(e) => {
                return fail(
                    e.exit_code(),
                    format!(
                        "{}: {e}\n(documents listed above were applied; fix this one and apply the file again)",
                        doc.label()
                    ),
                );
            }
        }
    }
    ExitCode::SUCCESS
}

enum Checked {
    Refused(Refusal),
    Unreachable(u8, String),
}

/// References and rights, checked before anything is written: tenants
/// must exist (or be created by the file), routed boards must exist, and
/// the caller must hold the role each document needs.
async fn check_against_server(client: &Client, docs: &[(usize, Doc)]) -> Result<(), Checked> {
    let me = client
        .get("/api/v1/me")
        .await
        .map_err(|e| Checked::Unreachable(e.exit_code(), e.to_string()))?;
    let admin = me["admin"].as_bool().unwrap_or(false);
    let roles: BTreeMap<String, BTreeSet<String>> =
        serde_json::from_value(me["roles"].clone()).unwrap_or_default();
    let tenants = client
        .get("/api/v1/tenants")
        .await
        .map_err(|e| Checked::Unreachable(e.exit_code(), e.to_string()))?;
    let existing: BTreeSet<String> = tenants
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["slug"].as_str().map(str::to_string))
        .collect();
    let created: BTreeSet<&str> = docs
        .iter()
        .filter_map(|(_, d)| match d {
            Doc::Tenant { slug, .. } => Some(slug.as_str()),
            _ => None,
        })
        .collect();
    let mut boards: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (_, d) in docs {
        if let Doc::Board { tenant, name, .. } = d {
            boards
                .entry(tenant.clone())
                .or_default()
                .insert(name.clone());
        }
    }
    for (i, (line, doc)) in docs.iter().enumerate() {
        let refusal = |field: &str, message: String| {
            Checked::Refused(Refusal {
                doc: i + 1,
                line: *line,
                field: field.into(),
                message,
            })
        };
        let tenant = doc.tenant();
        let needed = match doc {
            Doc::Tenant { .. } => None,
            Doc::User { .. } => Some("tenant-admin"),
            Doc::Window { spec, .. } if spec["kind"] == json!("blackout") => {
                Some("change-manager or tenant-admin")
            }
            _ => Some("change-manager"),
        };
        match needed {
            None if !admin => {
                return Err(refusal(
                    "kind",
                    "creating or changing tenants needs an installation administrator".into(),
                ));
            }
            None => {}
            Some(_) if !existing.contains(tenant) && !created.contains(tenant) => {
                return Err(refusal(
                    "tenant",
                    format!("no tenant {tenant:?}; add a Tenant document or fix the slug"),
                ));
            }
            Some(needs) if !admin => {
                let held = roles.get(tenant).cloned().unwrap_or_default();
                if !needs.split(" or ").any(|r| held.contains(r)) {
                    return Err(refusal(
                        "tenant",
                        format!("this needs the {needs} role in {tenant}"),
                    ));
                }
            }
            Some(_) => {}
        }
        if let Doc::Policy { tenant, spec } = doc {
            let policy: PolicySpec = serde_json::from_value(spec.clone()).unwrap_or_default();
            let mut known = boards.get(tenant).cloned().unwrap_or_default();
            if existing.contains(tenant) {
                let list = client
                    .get(&format!("/api/v1/tenants/{tenant}/boards"))
                    .await
                    .map_err(|e| Checked::Unreachable(e.exit_code(), e.to_string()))?;
                known.extend(
                    list.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|b| b["name"].as_str().map(str::to_string)),
                );
            }
            if let Err(e) = policy.validate(|b| known.contains(b)) {
                return Err(refusal(&format!("spec.{}", e.field), e.message));
            }
        }
    }
    Ok(())
}

async fn apply_one(client: &Client, doc: &Doc) -> Result<String, super::client::ClientError> {
    let applied = |v: Value| v["applied"].as_str().unwrap_or("applied").to_string();
    Ok(match doc {
        Doc::Tenant {
            slug,
            name,
            time_zone,
        } => applied(
            client
                .put(
                    &format!("/api/v1/tenants/{slug}"),
                    &json!({ "name": name, "time_zone": time_zone }),
                )
                .await?,
        ),
        Doc::User {
            tenant,
            email,
            name,
            user_kind,
            roles,
        } => applied(
            client
                .post(
                    &format!("/api/v1/tenants/{tenant}/users"),
                    &json!({ "email": email, "name": name, "kind": user_kind, "roles": roles }),
                )
                .await?,
        ),
        Doc::Board { tenant, name, spec } => applied(
            client
                .put(&format!("/api/v1/tenants/{tenant}/boards/{name}"), spec)
                .await?,
        ),
        Doc::Policy { tenant, spec } => {
            let v = client
                .put(&format!("/api/v1/tenants/{tenant}/policy"), spec)
                .await?;
            format!("{} (version {})", applied(v.clone()), v["version"])
        }
        Doc::Window { tenant, name, spec } => {
            let kind = serde_json::from_value::<WindowSpec>(spec.clone())
                .map(|w| w.kind)
                .unwrap_or_default();
            let what = if kind == WindowKind::Blackout {
                "blackout"
            } else {
                "maintenance"
            };
            format!(
                "{} ({what})",
                applied(
                    client
                        .put(&format!("/api/v1/tenants/{tenant}/windows/{name}"), spec)
                        .await?
                )
            )
        }
        Doc::Template { tenant, name, spec } => applied(
            client
                .put(&format!("/api/v1/tenants/{tenant}/templates/{name}"), spec)
                .await?,
        ),
        Doc::ConfigurationItem { tenant, name, spec } => applied(
            client
                .put(
                    &format!("/api/v1/tenants/{tenant}/configuration-items/{name}"),
                    spec,
                )
                .await?,
        ),
        Doc::ClusterIdentity {
            tenant,
            cluster,
            user,
            email,
        } => applied(
            client
                .put(
                    &format!(
                        "/api/v1/tenants/{tenant}/clusters/{cluster}/identities/{}",
                        super::client::path_segment(user)
                    ),
                    &json!({ "email": email }),
                )
                .await?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KINDS: [&str; 8] = [
        "Tenant",
        "User",
        "Board",
        "Policy",
        "Window",
        "Template",
        "ConfigurationItem",
        "Bogus",
    ];
    const KEYS: [&str; 12] = [
        "kind", "slug", "name", "tenant", "email", "roles", "spec", "timeZone", "members", "rule",
        "schedule", "x",
    ];

    fn scalar() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![
            proptest::string::string_regex("[a-z@:. -]{0,12}").expect("regex"),
            proptest::num::i64::ANY.prop_map(|n| n.to_string()),
            proptest::sample::select(vec![
                "null".to_string(),
                "[]".into(),
                "{}".into(),
                "~".into(),
                "'0 2 * * SAT'".into()
            ]),
        ]
    }

    use proptest::prelude::*;

    proptest! {
        /// Whatever the file holds, apply answers with documents or a
        /// refusal naming a document: it never panics.
        #[test]
        fn any_text_is_parsed_or_refused(text in "\\PC{0,300}") {
            if let Ok(docs) = documents(&text) {
                for (_, d) in &docs {
                    let _ = validate(d);
                }
            }
        }

        /// Documents of known kinds with random fields and values are
        /// validated or refused with a document and line, never a panic.
        #[test]
        fn random_documents_are_validated_or_refused(
            docs in proptest::collection::vec(
                (proptest::sample::select(KINDS.to_vec()),
                 proptest::collection::vec((proptest::sample::select(KEYS.to_vec()), scalar()), 0..6)),
                1..4)
        ) {
            let text: Vec<String> = docs
                .iter()
                .map(|(kind, fields)| {
                    let mut d = format!("kind: {kind}\n");
                    for (k, v) in fields {
                        d.push_str(&format!("{k}: {v}\n"));
                    }
                    d
                })
                .collect();
            let text = text.join("---\n");
            match documents(&text) {
                Ok(parsed) => {
                    for (_, d) in &parsed {
                        let _ = validate(d);
                    }
                }
                Err(r) => prop_assert!(r.doc >= 1 && r.line >= 1, "{r:?}"),
            }
        }
    }

    #[test]
    fn documents_carry_their_first_line() {
        let docs =
            documents("kind: Tenant\nslug: a\nname: A\n---\nkind: Tenant\nslug: b\nname: B\n")
                .expect("parses");
        assert_eq!(docs.iter().map(|(l, _)| *l).collect::<Vec<_>>(), vec![1, 5]);
    }

    #[test]
    fn an_unknown_field_names_the_document_line_and_field() {
        let r = documents("kind: Tenant\nslug: a\nname: A\n---\nkind: Tenant\nslug: b\nnmae: B\n")
            .expect_err("refused");
        assert_eq!((r.doc, r.line), (2, 5));
        assert!(r.message.contains("nmae"), "{}", r.message);
    }

    #[test]
    fn a_bad_window_is_refused_before_anything_is_sent() {
        let docs = documents(
            "kind: Window\ntenant: client-a\nname: weekly\nspec:\n  timeZone: Mars/Olympus\n  schedule:\n    cron:\n      expr: '0 2 * * SAT'\n      duration: 4h\n",
        )
        .expect("parses");
        let (field, message) = validate(&docs[0].1).expect_err("refused");
        assert!(field.contains("timeZone"), "{field}: {message}");
    }
}
