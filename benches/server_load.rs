//! `make bench`, server part: the real `changegate serve` (release build)
//! on a loaded database, on SQLite and then on PostgreSQL. Prints figures;
//! asserts nothing about speed, only that every approval succeeded.
//!
//! 1. Load 100 tenants and 100,000 changes (`CHANGEGATE_BENCH_CHANGES`)
//!    through the `Store` trait, 20 per tenant submitted (awaiting one
//!    approver's decision), in id order interleaved across tenants as they
//!    arrive in production.
//! 2. Start `target/release/changegate serve` on that database and print
//!    its RSS.
//! 3. 16 clients for 10 s (`CHANGEGATE_BENCH_SECONDS`) reading change
//!    lists (`?limit=50`) and single changes of random tenants; then the
//!    portal's change list and change pages with 16 signed-in sessions
//!    (`server_load/portal.rs`), with the pages' weights.
//! 4. 16 clients approving the submitted changes (one decision approves
//!    each); every decision must answer 200 and leave its change approved.
//! 5. The gate API (`POST /api/v1/gate/check`, a pipeline target bound to
//!    each tenant's configuration item, the content its newest change
//!    approved) at 1,000 requests/s, open loop: a warm-up of 5 s
//!    (`CHANGEGATE_BENCH_GATE_WARMUP_SECONDS`; the approvals left every
//!    snapshot out of date) printed apart, then 60 s
//!    (`CHANGEGATE_BENCH_GATE_SECONDS`): p50/p99, errors and the slowest
//!    seconds.
//! 6. 1,000 simulated agents long-polling their clusters' bundles, idle
//!    and through a burst of 100 approvals (`server_load/fleet.rs`).
//! 7. Pipelines waiting on the gate (`wait`): 100, then 1,000 at once,
//!    until their changes are approved (`server_load/pipelines.rs`).
//! 8. RSS again, then the server is killed and its database removed.
//!
//! `CHANGEGATE_BENCH_DATABASES=sqlite` (or `postgres`) runs one of the two.

use changegate_core::approval::{self, ApprovalPlan};
use changegate_core::board::{BoardSpec, Member};
use changegate_core::change::{ChangeState, ChangeType, RiskLevel};
use changegate_core::policy::PolicySpec;
use changegate_core::{ChangeNumber, Email, Role, Slug, TenantId, UserId, UserKind};
use changegate_store::{
    ChangeContent, ChangeWrite, NewChange, NewEvent, NewTenant, NewUser, ObjectKind, Store,
    TokenScope,
};
use changegate_store_sqlite::SqliteStore;
use changegate_testkit::db::TestDb;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

#[path = "server_load/fleet.rs"]
mod fleet;
#[path = "server_load/pipelines.rs"]
mod pipelines;
#[path = "server_load/portal.rs"]
mod portal;

const TENANTS: usize = 100;
const CLIENTS: usize = 16;
/// Changes per tenant submitted at load time, to be approved in step 4.
const AWAITING_PER_TENANT: usize = 20;
/// Concurrent writers while loading.
const LOADERS: usize = 4;

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a whole number")),
        Err(_) => default,
    }
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let changes = env_number("CHANGEGATE_BENCH_CHANGES", 100_000) as usize;
    let seconds = env_number("CHANGEGATE_BENCH_SECONDS", 10);
    let bin = server_binary();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let wanted = std::env::var("CHANGEGATE_BENCH_DATABASES")
            .unwrap_or_else(|_| "sqlite,postgres".to_string());
        for backend in [Backend::Sqlite, Backend::Postgres] {
            if wanted.split(',').any(|w| w.trim() == backend.name()) {
                run(backend, &bin, changes, Duration::from_secs(seconds)).await;
            }
        }
    });
}

/// `CHANGEGATE_BIN`, else the workspace's release build; a missing binary
/// stops the bench with how to build it.
fn server_binary() -> PathBuf {
    let bin = std::env::var_os("CHANGEGATE_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/changegate"),
        PathBuf::from,
    );
    if !bin.is_file() {
        eprintln!(
            "server_load: {} does not exist; build it first with `cargo build --release --bin changegate` \
             (`make bench` does), or set CHANGEGATE_BIN to a changegate binary",
            bin.display()
        );
        std::process::exit(2);
    }
    bin
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The database under test, kept alive for the whole run.
struct Database {
    store: Arc<dyn Store>,
    /// How `changegate serve` opens it.
    server_args: Vec<String>,
    /// SQLite: the data directory (removed on drop).
    dir: Option<tempfile::TempDir>,
    /// PostgreSQL: the database in the harness's server (dropped on drop).
    pg: Option<TestDb>,
}

impl Database {
    async fn open(backend: Backend) -> Database {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::Builder::new()
                    .prefix("changegate-bench-")
                    .tempdir()
                    .expect("a temporary directory for SQLite");
                let store = SqliteStore::open_dir(dir.path())
                    .await
                    .expect("a SQLite store in the temporary directory");
                Database {
                    store: Arc::new(store),
                    server_args: vec!["--data-dir".into(), dir.path().display().to_string()],
                    dir: Some(dir),
                    pg: None,
                }
            }
            Backend::Postgres => {
                let db = TestDb::postgres().await;
                let url = db.postgres_url().expect("a PostgreSQL URL").to_string();
                Database {
                    store: db.store(),
                    server_args: vec!["--database".into(), url],
                    dir: None,
                    pg: Some(db),
                }
            }
        }
    }

    /// The database's size on disk (SQLite: the file and its WAL).
    async fn size(&self) -> String {
        const MIB: f64 = 1024.0 * 1024.0;
        match (&self.pg, &self.dir) {
            (Some(db), _) => {
                let bytes = db
                    .query_i64("SELECT pg_database_size(current_database())")
                    .await
                    .expect("database size");
                format!("{:.0} MiB", bytes as f64 / MIB)
            }
            (None, Some(dir)) => {
                let size = |file: &str| {
                    std::fs::metadata(dir.path().join(file)).map_or(0.0, |m| m.len() as f64 / MIB)
                };
                format!(
                    "{:.0} MiB (+ WAL {:.0} MiB)",
                    size("changegate.db"),
                    size("changegate.db-wal")
                )
            }
            (None, None) => String::new(),
        }
    }
}

/// One tenant as the clients see it.
struct Fixture {
    slug: String,
    id: TenantId,
    /// The approver's API token (the approver also reads).
    token: String,
    /// Every change number of the tenant.
    numbers: Vec<i64>,
    /// The submitted ones.
    awaiting: Vec<i64>,
    /// The token of the agents of the tenant's cluster.
    agent_token: String,
    /// A submitted change of the fleet phase's item, left awaiting until then.
    fleet_change: i64,
    /// Submitted changes of payments-api with the artifact each ships,
    /// left awaiting until the pipelines phase waits for them.
    pipeline_changes: Vec<(i64, String)>,
}

async fn run(backend: Backend, bin: &Path, changes: usize, seconds: Duration) {
    let name = backend.name();
    let db = Database::open(backend).await;
    let started = Instant::now();
    let (tenants, setup) = load(&db.store, changes).await;
    let took = started.elapsed().as_secs_f64();
    let awaiting: usize = tenants.iter().map(|t| t.awaiting.len()).sum();
    println!(
        "server_load {name}: loaded {} tenants / {changes} changes ({awaiting} awaiting approval) in {took:.1} s \
         ({:.0} changes/s; tenant setup {:.1} s, then {:.0} changes/s), database {}",
        tenants.len(),
        changes as f64 / took,
        setup.as_secs_f64(),
        changes as f64 / (took - setup.as_secs_f64()),
        db.size().await
    );

    let server = Server::start(bin, &db.server_args);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(CLIENTS * 2)
        .build()
        .expect("an HTTP client");
    server.wait_ready(&client).await;
    let after_start = server.memory();

    let tenants = Arc::new(tenants);
    let reads = read_load(&client, &server.url, &tenants, seconds).await;
    println!(
        "server_load {name}: reads {CLIENTS} clients {:.0} s: {:.0} req/s, {} errors; \
         list (limit 50) {:.0} req/s, p50 {}, p99 {}; show {:.0} req/s, p50 {}, p99 {}",
        reads.elapsed.as_secs_f64(),
        (reads.list.len() + reads.show.len()) as f64 / reads.elapsed.as_secs_f64(),
        reads.errors.len(),
        reads.list.len() as f64 / reads.elapsed.as_secs_f64(),
        ms(percentile(&mut reads.list.clone(), 0.50)),
        ms(percentile(&mut reads.list.clone(), 0.99)),
        reads.show.len() as f64 / reads.elapsed.as_secs_f64(),
        ms(percentile(&mut reads.show.clone(), 0.50)),
        ms(percentile(&mut reads.show.clone(), 0.99)),
    );
    print_errors(name, &reads.errors);
    portal::run(name, &db.store, &server.url, &tenants, seconds).await;

    let mut approvals = approve_all(&client, &server.url, &tenants).await;
    let still_open = not_approved(&db.store, &tenants).await;
    println!(
        "server_load {name}: approvals {CLIENTS} clients: {} decisions in {:.1} s, {:.0} req/s, p50 {}, p99 {}, \
         {} errors, {} changes not approved afterwards",
        approvals.latencies.len(),
        approvals.elapsed.as_secs_f64(),
        approvals.latencies.len() as f64 / approvals.elapsed.as_secs_f64(),
        ms(percentile(&mut approvals.latencies, 0.50)),
        ms(percentile(&mut approvals.latencies, 0.99)),
        approvals.errors.len(),
        still_open.len(),
    );
    print_errors(name, &approvals.errors);
    if let Some(first) = still_open.first() {
        println!("server_load {name}:   e.g. {first}");
    }

    let gate_seconds = Duration::from_secs(env_number("CHANGEGATE_BENCH_GATE_SECONDS", 60));
    let per_tenant = changes.div_ceil(TENANTS);
    // The approvals above left every tenant's gate snapshot out of date:
    // the first checks of each tenant wait for its rebuild. Shown apart,
    // as the cold start it is; the measured minute that follows is the
    // steady state.
    let warmup = Duration::from_secs(env_number("CHANGEGATE_BENCH_GATE_WARMUP_SECONDS", 5));
    let mut cold = gate_load(&client, &server.url, &tenants, per_tenant, warmup).await;
    println!(
        "server_load {name}: gate API warm-up (every tenant's snapshot rebuilt after the approvals) {GATE_RATE} req/s \
         for {:.0} s: p50 {}, p99 {}, slowest {}, {} errors",
        warmup.as_secs_f64(),
        ms(percentile(&mut cold.latencies, 0.50)),
        ms(percentile(&mut cold.latencies, 0.99)),
        ms(cold.latencies.iter().max().copied()),
        cold.errors.len(),
    );
    let mut gate = gate_load(&client, &server.url, &tenants, per_tenant, gate_seconds).await;
    println!(
        "server_load {name}: gate API {GATE_RATE} req/s offered for {:.0} s: {} answered ({:.0} req/s), \
         p50 {}, p99 {} (target <= 10 ms), {} errors, {} not allowed",
        gate_seconds.as_secs_f64(),
        gate.latencies.len(),
        gate.latencies.len() as f64 / gate.elapsed.as_secs_f64(),
        ms(percentile(&mut gate.latencies, 0.50)),
        ms(percentile(&mut gate.latencies, 0.99)),
        gate.errors.len(),
        gate.denied,
    );
    print_errors(name, &gate.errors);
    let mut worst: Vec<(usize, Duration)> = gate.slowest.iter().copied().enumerate().collect();
    worst.sort_by_key(|&(_, took)| std::cmp::Reverse(took));
    println!(
        "server_load {name}: gate API slowest seconds (second of the run: its slowest answer): {}",
        worst
            .iter()
            .take(5)
            .map(|(s, took)| format!("{s}: {}", ms(Some(*took))))
            .collect::<Vec<_>>()
            .join(", ")
    );

    fleet::run(name, &server, &tenants).await;
    pipelines::run(name, &db.store, &server, &tenants).await;

    let after_load = server.memory();
    println!(
        "server_load {name}: RSS after start on the loaded database {:.1} MiB, after the load test {:.1} MiB \
         (peak {:.1} MiB; target <= 150 MiB)",
        after_start.rss_mib, after_load.rss_mib, after_load.hwm_mib
    );
    drop(server);
    drop(db);
}

// ---------------------------------------------------------------- loading

/// Tenants with a requester, an approver (its board: that one person,
/// rule any) and a policy routing every normal change to that board;
/// then `changes` changes, the last `AWAITING_PER_TENANT` of each tenant
/// submitted. Returns them and how long the tenant setup took.
async fn load(store: &Arc<dyn Store>, changes: usize) -> (Vec<Fixture>, Duration) {
    let started = Instant::now();
    let per_tenant = changes.div_ceil(TENANTS);
    let mut people = Vec::with_capacity(TENANTS);
    let mut fixtures = Vec::with_capacity(TENANTS);
    for i in 0..TENANTS {
        let t = setup_tenant(store.as_ref(), i).await;
        fixtures.push(Fixture {
            slug: t.slug.clone(),
            id: t.id,
            token: t.token.clone(),
            numbers: Vec::with_capacity(per_tenant),
            awaiting: Vec::new(),
            agent_token: t.agent_token.clone(),
            fleet_change: 0,
            pipeline_changes: Vec::new(),
        });
        people.push(t);
    }
    let people = Arc::new(people);
    let setup = started.elapsed();
    // Change i goes to tenant i % TENANTS: ids interleave across tenants,
    // as they do when every client raises changes all day.
    let next = Arc::new(AtomicUsize::new(0));
    let mut loaders = Vec::new();
    for _ in 0..LOADERS {
        let (store, people, next) = (store.clone(), people.clone(), next.clone());
        loaders.push(tokio::spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= changes {
                    return made;
                }
                let (tenant, seq) = (i % TENANTS, i / TENANTS);
                let submit = seq + AWAITING_PER_TENANT >= per_tenant;
                let number =
                    create_change(store.as_ref(), &people[tenant], seq, submit, "payments-api")
                        .await;
                made.push((tenant, number, submit));
            }
        }));
    }
    for loader in loaders {
        for (tenant, number, submitted) in loader.await.expect("a loader finished") {
            fixtures[tenant].numbers.push(number);
            if submitted {
                fixtures[tenant].awaiting.push(number);
            }
        }
    }
    for (f, t) in fixtures.iter_mut().zip(people.iter()) {
        f.fleet_change = create_change(store.as_ref(), t, per_tenant, true, fleet::ITEM).await;
        for seq in [per_tenant + 1, per_tenant + 2] {
            let number = create_change(store.as_ref(), t, seq, true, "payments-api").await;
            f.pipeline_changes
                .push((number, format!("registry.example/payments:2.{seq}.1")));
        }
    }
    (fixtures, setup)
}

struct TenantSetup {
    slug: String,
    id: TenantId,
    requester: UserId,
    token: String,
    agent_token: String,
    policy_version: i64,
    plan: ApprovalPlan,
}

async fn setup_tenant(store: &dyn Store, i: usize) -> TenantSetup {
    let slug = format!("client-{i:03}");
    let tenant = store
        .create_tenant(
            NewTenant {
                slug: Slug::parse(&slug).expect("a valid slug"),
                name: format!("Client {i:03} Ltd"),
                time_zone: "Europe/Berlin".into(),
            },
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("tenant created");
    let mut ids = Vec::new();
    for (who, role) in [
        ("requester", Role::Requester),
        ("approver", Role::TechnicalApprover),
    ] {
        let email = format!("{who}-{i:03}@msp.example");
        let user = store
            .create_user(
                NewUser {
                    email: Email::parse(&email).expect("a valid e-mail"),
                    name: email.clone(),
                    kind: UserKind::Msp,
                    admin: false,
                    tenant: None,
                    password_hash: None,
                },
                &[(tenant.id, role)],
                "bench",
                chrono::Utc::now(),
            )
            .await
            .expect("user created");
        ids.push((email, user.id));
    }
    let (requester, approver) = (ids[0].1, ids[1].1);
    let board: BoardSpec =
        serde_json::from_value(json!({ "name": "tech", "members": [ids[1].0], "rule": "any" }))
            .expect("a board spec");
    store
        .put_object(
            tenant.id,
            ObjectKind::Board,
            "tech",
            &serde_json::to_string(&board).expect("board serialises"),
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("board stored");
    let policy: PolicySpec = serde_json::from_value(
        json!({ "routing": { "normal": [ { "from": "low", "boards": ["tech"] } ] }, "windowRequired": [] }),
    )
    .expect("a policy spec");
    let (policy_version, _) = store
        .put_policy(
            tenant.id,
            &serde_json::to_string(&policy).expect("policy serialises"),
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("policy stored");
    // What the submit handler freezes: the board's one member.
    let approver_email = ids[1].0.clone();
    let plan = approval::freeze(
        &["tech".to_string()],
        &[board],
        |m| match m {
            Member::Person(e) if e.as_str() == approver_email => vec![approver],
            _ => Vec::new(),
        },
        &[requester],
    )
    .expect("the plan freezes");
    // What the gate checks pipelines against: payments-api ships to production.
    store
        .put_object(
            tenant.id,
            ObjectKind::ConfigurationItem,
            "payments-api",
            &json!({"kind": "application", "enforcement": {"pipeline": {"environment": "production"}}})
                .to_string(),
            "bench", chrono::Utc::now(),
        )
        .await
        .expect("configuration item stored");
    let (token, hash) = changegate_web::auth::new_token();
    store
        .create_token(
            approver,
            "bench",
            &hash,
            &TokenScope::Full,
            chrono::Utc::now(),
        )
        .await
        .expect("token stored");
    // What the agents of the fleet phase enforce: payments-web runs in
    // this tenant's own cluster, whose agents share one token.
    let cluster = fleet::cluster_of(i);
    store
        .put_object(
            tenant.id,
            ObjectKind::ConfigurationItem,
            fleet::ITEM,
            &json!({"kind": "kubernetes-workload", "enforcement": {"kubernetes": {
                "cluster": cluster, "namespace": "payments", "kind": "Deployment", "name": "web"}}})
            .to_string(),
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("configuration item stored");
    let (agent_token, hash) = changegate_web::auth::new_token();
    store
        .create_token(
            approver,
            &format!("agent of {cluster}"),
            &hash,
            &TokenScope::Agent(cluster),
            chrono::Utc::now(),
        )
        .await
        .expect("agent token stored");
    TenantSetup {
        slug,
        id: tenant.id,
        requester,
        token,
        agent_token,
        policy_version,
        plan,
    }
}

/// A draft, or when `submit`, a change awaiting approval as the submit
/// handler leaves it (plan frozen, fingerprint, revision recorded).
async fn create_change(
    store: &dyn Store,
    t: &TenantSetup,
    seq: usize,
    submit: bool,
    item: &str,
) -> i64 {
    let content = ChangeContent {
        title: format!("Upgrade payments-api to 2.{seq}.1"),
        description: format!("Routine upgrade {seq} of the payments API for {}", t.slug),
        risk_answers: [
            ("production", "no"),
            ("outage", "no"),
            ("untested", "no"),
            ("no-backout", "no"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect(),
        configuration_items: vec![item.into()],
        artifacts: vec![format!("registry.example/payments:2.{seq}.1")],
        implementation_plan: "helm upgrade payments".into(),
        test_plan: "smoke tests in staging".into(),
        backout_plan: "helm rollback payments".into(),
        ..ChangeContent::default()
    };
    let mut c = store
        .create_change(
            NewChange {
                tenant: t.id,
                kind: ChangeType::Normal,
                requester: t.requester,
                implementer: None,
                content,
            },
            "bench",
            chrono::Utc::now(),
        )
        .await
        .expect("change created");
    if !submit {
        return c.number.0;
    }
    let expected = c.version;
    let now = chrono::Utc::now();
    c.state = ChangeState::AwaitingApproval;
    c.risk_level = Some(RiskLevel::Low);
    c.risk_score = Some(0);
    c.plan = t.plan.clone();
    c.fingerprint = Some(c.content.fingerprint());
    c.policy_version = Some(t.policy_version);
    c.submitted_at = Some(now);
    let event = NewEvent {
        actor: "bench".into(),
        action: "change.submitted".into(),
        subject: c.number.to_string(),
        detail: json!({ "revision": c.revision, "fingerprint": c.fingerprint,
                        "policy_version": t.policy_version, "boards": ["tech"] }),
        at: now,
    };
    let write = ChangeWrite {
        record_revision: Some(t.requester),
        events: vec![event],
        ..ChangeWrite::default()
    };
    store
        .save_change(&c, expected, write, now)
        .await
        .expect("change submitted")
        .number
        .0
}

// ----------------------------------------------------------------- server

/// The release server as a child process; killed on drop.
struct Server {
    child: Child,
    url: String,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

struct Memory {
    rss_mib: f64,
    hwm_mib: f64,
}

impl Server {
    fn start(bin: &Path, db_args: &[String]) -> Server {
        let log_dir = tempfile::tempdir().expect("a directory for the server's log");
        let log = log_dir.path().join("server.log");
        let stderr = std::fs::File::create(&log).expect("the server's log file");
        let mut child = Command::new(bin)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(db_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("the server's stdout");
        let mut stdout = BufReader::new(stdout);
        let mut first = String::new();
        let read = stdout.read_line(&mut first);
        let url = first
            .strip_prefix("changegate serving on ")
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_string);
        let Some(url) = url.filter(|_| read.is_ok()) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the server did not say where it listens (first line {first:?}); its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        };
        // Nothing else is expected on stdout; drain it so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        });
        Server {
            child,
            url,
            log,
            _log_dir: log_dir,
        }
    }

    /// Until `/readyz` answers 200 (the migrations ran, the database answers).
    async fn wait_ready(&self, client: &reqwest::Client) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = client.get(format!("{}/readyz", self.url)).send().await
                && r.status() == reqwest::StatusCode::OK
            {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "the server at {} was not ready after 60 s; its log:\n{}",
                    self.url,
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// CPU time the server used so far (user and system), in seconds.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id()))
            .expect("the server's /proc stat");
        // Fields after the parenthesised command: state is the 3rd field
        // of the line, utime the 14th and stime the 15th.
        let after = &stat[stat.rfind(')').expect("a stat line") + 2..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields[i - 3].parse::<f64>().expect("a tick count");
        (ticks(14) + ticks(15)) / clock_ticks_per_second()
    }

    fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the server's /proc status");
        let kib = |field: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Memory {
            rss_mib: kib("VmRSS:") / 1024.0,
            hwm_mib: kib("VmHWM:") / 1024.0,
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `getconf CLK_TCK` (100 on Linux unless told otherwise).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

// ------------------------------------------------------------------ loads

/// A small deterministic generator (xorshift64*), one per client.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 33) as usize % n
    }
}

struct Reads {
    list: Vec<Duration>,
    show: Vec<Duration>,
    errors: Vec<String>,
    elapsed: Duration,
}

/// Requests per second the gate phase offers.
const GATE_RATE: u64 = 1_000;

struct GateRun {
    latencies: Vec<Duration>,
    /// The slowest answer of each second of the run, by when it was asked.
    slowest: Vec<Duration>,
    errors: Vec<String>,
    /// Answers other than `allow` (every check ships approved content).
    denied: usize,
    elapsed: Duration,
}

/// Gate checks at [`GATE_RATE`] per second for `seconds`, open loop (a
/// slow answer does not slow the next request), round-robin over the
/// tenants, each shipping its newest change's approved artifact.
async fn gate_load(
    client: &reqwest::Client,
    base: &str,
    tenants: &Arc<Vec<Fixture>>,
    per_tenant: usize,
    seconds: Duration,
) -> GateRun {
    let artifact = format!("registry.example/payments:2.{}.1", per_tenant - 1);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / GATE_RATE));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = GATE_RATE * seconds.as_secs();
    for i in 0..total {
        tick.tick().await;
        let t = &tenants[i as usize % tenants.len()];
        let request = client
            .post(format!("{base}/api/v1/gate/check"))
            .bearer_auth(&t.token)
            .json(
                &json!({"tenant": t.slug, "target": {"pipeline": {"environment": "production"}},
                          "artifacts": [artifact]}),
            );
        let tx = tx.clone();
        tokio::spawn(async move {
            let asked = started.elapsed();
            let started = Instant::now();
            let outcome = match request.send().await {
                Ok(r) if r.status() == reqwest::StatusCode::OK => {
                    match r.json::<serde_json::Value>().await {
                        Ok(v) => Ok(v["verdict"] == "allow"),
                        Err(e) => Err(format!("unreadable answer: {e}")),
                    }
                }
                Ok(r) => Err(format!("{}", r.status())),
                Err(e) => Err(format!("request failed: {e}")),
            };
            let _ = tx.send((asked, started.elapsed(), outcome));
        });
    }
    drop(tx);
    let mut run = GateRun {
        latencies: Vec::new(),
        slowest: vec![Duration::ZERO; seconds.as_secs() as usize + 1],
        errors: Vec::new(),
        denied: 0,
        elapsed: Duration::ZERO,
    };
    while let Some((asked, took, outcome)) = rx.recv().await {
        match outcome {
            Ok(allowed) => {
                run.latencies.push(took);
                let second = (asked.as_secs() as usize).min(run.slowest.len() - 1);
                run.slowest[second] = run.slowest[second].max(took);
                run.denied += usize::from(!allowed);
            }
            Err(e) => run.errors.push(e),
        }
    }
    run.elapsed = started.elapsed();
    run
}

/// One request: its latency, or what went wrong. The body is read in full.
async fn send(request: reqwest::RequestBuilder) -> (Duration, Result<(), String>) {
    let started = Instant::now();
    let outcome = match request.send().await {
        Ok(r) => {
            let status = r.status();
            match r.bytes().await {
                Ok(_) if status == reqwest::StatusCode::OK => Ok(()),
                Ok(body) => Err(format!(
                    "{status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(300)])
                )),
                Err(e) => Err(format!("{status}, body unread: {e}")),
            }
        }
        Err(e) => Err(format!("request failed: {e}")),
    };
    (started.elapsed(), outcome)
}

async fn read_load(
    client: &reqwest::Client,
    base: &str,
    tenants: &Arc<Vec<Fixture>>,
    seconds: Duration,
) -> Reads {
    let started = Instant::now();
    let deadline = started + seconds;
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let (client, base, tenants) = (client.clone(), base.to_string(), tenants.clone());
        clients.push(tokio::spawn(async move {
            let mut rng = Rng::new(n as u64 + 1);
            let mut out = Reads {
                list: Vec::new(),
                show: Vec::new(),
                errors: Vec::new(),
                elapsed: Duration::ZERO,
            };
            while Instant::now() < deadline {
                let t = &tenants[rng.below(tenants.len())];
                let list = client
                    .get(format!("{base}/api/v1/tenants/{}/changes?limit=50", t.slug))
                    .bearer_auth(&t.token);
                let (took, outcome) = send(list).await;
                match outcome {
                    Ok(()) => out.list.push(took),
                    Err(e) => out.errors.push(format!("list {}: {e}", t.slug)),
                }
                let number = ChangeNumber(t.numbers[rng.below(t.numbers.len())]);
                let show = client
                    .get(format!("{base}/api/v1/tenants/{}/changes/{number}", t.slug))
                    .bearer_auth(&t.token);
                let (took, outcome) = send(show).await;
                match outcome {
                    Ok(()) => out.show.push(took),
                    Err(e) => out.errors.push(format!("show {} {number}: {e}", t.slug)),
                }
            }
            out
        }));
    }
    let mut all = Reads {
        list: Vec::new(),
        show: Vec::new(),
        errors: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for c in clients {
        let r = c.await.expect("a reading client finished");
        all.list.extend(r.list);
        all.show.extend(r.show);
        all.errors.extend(r.errors);
    }
    all.elapsed = started.elapsed();
    all
}

struct Approvals {
    latencies: Vec<Duration>,
    errors: Vec<String>,
    elapsed: Duration,
}

/// Every submitted change approved once by its tenant's approver, by
/// `CLIENTS` clients taking changes from one shuffled queue.
async fn approve_all(
    client: &reqwest::Client,
    base: &str,
    tenants: &Arc<Vec<Fixture>>,
) -> Approvals {
    let mut queue: Vec<(usize, i64)> = tenants
        .iter()
        .enumerate()
        .flat_map(|(i, t)| t.awaiting.iter().map(move |n| (i, *n)))
        .collect();
    let mut rng = Rng::new(42);
    for i in (1..queue.len()).rev() {
        queue.swap(i, rng.below(i + 1));
    }
    let queue = Arc::new(queue);
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (client, base, tenants) = (client.clone(), base.to_string(), tenants.clone());
        let (queue, next) = (queue.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            let (mut latencies, mut errors) = (Vec::new(), Vec::new());
            while let Some(&(t, n)) = queue.get(next.fetch_add(1, Ordering::Relaxed)) {
                let t = &tenants[t];
                let number = ChangeNumber(n);
                let decide = client
                    .post(format!(
                        "{base}/api/v1/tenants/{}/changes/{number}/decisions",
                        t.slug
                    ))
                    .bearer_auth(&t.token)
                    .json(&json!({ "decision": "approve", "revision": 1 }));
                let (took, outcome) = send(decide).await;
                latencies.push(took);
                if let Err(e) = outcome {
                    errors.push(format!("decide {} {number}: {e}", t.slug));
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Approvals {
        latencies: Vec::new(),
        errors: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for c in clients {
        let (latencies, errors) = c.await.expect("an approving client finished");
        all.latencies.extend(latencies);
        all.errors.extend(errors);
    }
    all.elapsed = started.elapsed();
    all
}

/// The submitted changes that are not approved, read back from the store.
async fn not_approved(store: &Arc<dyn Store>, tenants: &[Fixture]) -> Vec<String> {
    let mut open = Vec::new();
    for t in tenants {
        for &n in &t.awaiting {
            match store.change(t.id, ChangeNumber(n)).await {
                Ok(c) if c.state == ChangeState::Approved => {}
                Ok(c) => open.push(format!("{} {} is {}", t.slug, c.number, c.state)),
                Err(e) => open.push(format!("{} CHG-{n}: {e}", t.slug)),
            }
        }
    }
    open
}

// ---------------------------------------------------------------- figures

fn percentile(samples: &mut [Duration], q: f64) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    samples.sort_unstable();
    let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
    Some(samples[rank - 1])
}

fn ms(d: Option<Duration>) -> String {
    match d {
        Some(d) => format!("{:.1} ms", d.as_secs_f64() * 1000.0),
        None => "-".into(),
    }
}

fn print_errors(backend: &str, errors: &[String]) {
    for e in errors.iter().take(5) {
        println!("server_load {backend}:   error: {e}");
    }
    if errors.len() > 5 {
        println!(
            "server_load {backend}:   ... and {} more errors",
            errors.len() - 5
        );
    }
}
