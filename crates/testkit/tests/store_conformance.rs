//! The store's contract, run on SQLite and on PostgreSQL: every case below
//! becomes `sqlite::<case>` and `postgres::<case>` (see `store_tests!`),
//! each on a fresh database. A case that needs the database itself
//! (append-only triggers, tampering with the audit chain) writes SQL both
//! databases accept.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use changegate_core::approval::ApprovalPlan;
use changegate_core::audit::{self, Break};
use changegate_core::board::{Decision, FrozenBoard, Rule};
use changegate_core::change::{ChangeState, ChangeType, RiskLevel};
use changegate_core::{ChangeNumber, Email, Role, Slug, TenantId, UserId, UserKind};
use changegate_store::*;
use changegate_testkit::db::{Backend, TestDb};
use changegate_testkit::store_tests;
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::json;

/// The time every write of these cases is stamped with: the tests' pinned
/// clock, never the wall clock.
fn now() -> DateTime<Utc> {
    changegate_testkit::start_of_tests()
}

store_tests!(
    the_store_answers_and_names_its_backend,
    a_tenant_is_found_by_id_and_by_slug_as_created,
    applying_a_tenant_creates_then_updates_then_leaves_it_unchanged,
    a_second_tenant_with_the_same_slug_is_a_conflict_on_the_slug,
    tenants_are_listed_in_byte_order_of_slug_and_can_be_limited_to_a_set,
    a_missing_tenant_is_not_found,
    writes_for_a_tenant_that_does_not_exist_fail_and_leave_nothing_behind,
    users_are_found_by_id_and_by_email_as_created,
    a_second_user_with_the_same_email_is_a_conflict_on_the_email,
    a_user_is_created_with_its_roles_or_not_at_all,
    setting_a_password_replaces_the_hash_of_an_existing_user_only,
    a_changed_password_ends_the_other_sessions_with_its_events_in_one_write,
    a_role_bound_twice_is_unchanged_and_roles_are_listed_per_tenant,
    a_live_token_finds_its_user_and_a_revoked_or_unknown_one_finds_nobody,
    a_token_hash_is_unique,
    events_of_no_change_join_the_tenant_chain,
    messages_and_links_are_written_with_their_change_and_a_link_is_used_once,
    putting_an_object_creates_then_updates_then_leaves_it_unchanged,
    objects_are_listed_per_kind_by_name_with_their_spec_text_unchanged,
    deleting_an_object_removes_it_and_deleting_a_missing_one_is_not_found,
    policy_versions_count_up_only_when_the_spec_changes,
    a_delegation_is_active_from_its_start_until_just_before_its_end,
    a_new_change_is_a_draft_at_version_one_and_reads_back_as_created,
    a_change_is_not_found_in_another_tenant,
    changes_are_listed_newest_first_by_every_filter,
    keyset_pagination_visits_every_change_once,
    saving_a_change_with_a_stale_version_is_a_conflict_and_writes_nothing,
    saving_a_change_records_its_revision_approval_comment_and_events,
    changes_due_are_those_past_their_approval_expiry_or_retrospective_deadline,
    approvals_revisions_and_audit_events_cannot_be_updated_or_deleted,
    every_write_appends_to_the_tenants_intact_audit_chain,
    an_edited_audit_event_is_reported_as_edited_at_its_sequence_number,
    a_deleted_audit_event_is_reported_as_missing_and_a_deleted_last_one_as_truncated,
    the_last_events_removed_with_the_head_sequence_moved_are_found_by_the_head_hash,
    swapped_audit_events_are_reported_as_reordered,
    fifty_concurrent_approvals_retried_on_conflict_are_all_recorded_in_an_intact_chain,
    concurrent_writes_to_different_records_of_one_tenant_keep_its_chain_linear,
    the_audit_head_moves_with_every_write_of_a_tenants_gate_records_and_only_its_own,
    the_schedulers_question_of_every_second_is_answered_from_indexes,
);

// ---- fixtures -------------------------------------------------------------

/// A fixed instant, at the microsecond precision both databases keep.
fn at(minutes: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("valid time")
        + Duration::minutes(minutes)
}

fn slug(s: &str) -> Slug {
    Slug::parse(s).expect("valid slug")
}

fn email(s: &str) -> Email {
    Email::parse(s).expect("valid email")
}

fn new_tenant(s: &str) -> NewTenant {
    NewTenant {
        slug: slug(s),
        name: format!("{s} Ltd"),
        time_zone: "Europe/Berlin".into(),
    }
}

async fn tenant(store: &dyn Store, s: &str) -> Tenant {
    store
        .create_tenant(new_tenant(s), "test", now())
        .await
        .expect("tenant created")
}

fn new_user(address: &str, tenant: Option<TenantId>) -> NewUser {
    NewUser {
        email: email(address),
        name: address.split('@').next().unwrap_or(address).to_string(),
        kind: if tenant.is_some() {
            UserKind::Client
        } else {
            UserKind::Msp
        },
        admin: false,
        tenant,
        password_hash: None,
    }
}

async fn msp_user(store: &dyn Store, address: &str) -> User {
    store
        .create_user(new_user(address, None), &[], "test", now())
        .await
        .expect("user created")
}

fn content(title: &str) -> ChangeContent {
    ChangeContent {
        title: title.into(),
        description: "Upgrade the payments API to 2.4.1".into(),
        implementation_plan: "helm upgrade payments 2.4.1".into(),
        backout_plan: "helm rollback payments".into(),
        configuration_items: vec!["payments-api".into()],
        risk_answers: BTreeMap::from([("production".into(), "yes".into())]),
        planned_start: Some(at(60)),
        planned_end: Some(at(120)),
        ..ChangeContent::default()
    }
}

async fn new_change(
    store: &dyn Store,
    tenant: TenantId,
    requester: UserId,
    kind: ChangeType,
    title: &str,
) -> Change {
    new_change_at(store, tenant, requester, kind, title, now()).await
}

/// A draft raised at `at`.
async fn new_change_at(
    store: &dyn Store,
    tenant: TenantId,
    requester: UserId,
    kind: ChangeType,
    title: &str,
    at: DateTime<Utc>,
) -> Change {
    store
        .create_change(
            NewChange {
                tenant,
                kind,
                requester,
                implementer: None,
                content: content(title),
            },
            "test",
            at,
        )
        .await
        .expect("change created")
}

/// Save `change` as it is (at its own version) with nothing else.
async fn save(store: &dyn Store, change: &Change) -> Change {
    store
        .save_change(change, change.version, ChangeWrite::default(), now())
        .await
        .expect("change saved")
}

fn event(action: &str, subject: &str, minutes: i64) -> NewEvent {
    NewEvent {
        actor: "tom@msp.example".into(),
        action: action.into(),
        subject: subject.into(),
        detail: json!({ "comment": "looks good", "n": minutes }),
        at: at(minutes),
    }
}

/// The tenant's chain as `verify` sees it.
async fn verify(store: &dyn Store, tenant: TenantId) -> audit::Report {
    let (events, head) = store.audit_events(tenant).await.expect("audit events read");
    audit::verify(&events, &head)
}

async fn actions(store: &dyn Store, tenant: TenantId) -> Vec<String> {
    let (events, _) = store.audit_events(tenant).await.expect("audit events read");
    events.into_iter().map(|e| e.body.action).collect()
}

#[track_caller]
fn assert_conflict_on<T: std::fmt::Debug>(result: Result<T>, expected: &str) {
    match result {
        Err(StoreError::Conflict { constraint }) => assert_eq!(constraint, expected),
        other => panic!("expected a conflict on {expected}, got {other:?}"),
    }
}

#[track_caller]
fn assert_not_found<T: std::fmt::Debug>(result: Result<T>) {
    assert!(
        matches!(result, Err(StoreError::NotFound { .. })),
        "expected NotFound, got {result:?}"
    );
}

/// An SQL string literal.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// A new tenant whose chain has six events: created, four boards, a policy.
async fn tenant_with_six_events(store: &dyn Store, s: &str) -> TenantId {
    let t = tenant(store, s).await;
    for name in ["cab", "msp-tech", "weekend", "nightly"] {
        store
            .put_object(
                t.id,
                ObjectKind::Board,
                name,
                r#"{"rule":"any"}"#,
                "tom@msp.example",
                now(),
            )
            .await
            .expect("object put");
    }
    store
        .put_policy(t.id, r#"{"routing":{}}"#, "tom@msp.example", now())
        .await
        .expect("policy put");
    let report = verify(store, t.id).await;
    assert!(report.intact && report.events == 6, "{report:?}");
    t.id
}

// ---- tenants --------------------------------------------------------------

async fn the_store_answers_and_names_its_backend(db: TestDb) {
    let store = db.store();
    store.ping().await.expect("ping");
    let expected = match db.backend() {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(store.backend(), expected);
}

async fn a_tenant_is_found_by_id_and_by_slug_as_created(db: TestDb) {
    let store = db.store();
    let created = tenant(&*store, "client-a").await;
    assert_eq!(created.slug, slug("client-a"));
    assert_eq!(created.name, "client-a Ltd");
    assert_eq!(store.tenant(created.id).await.expect("by id"), created);
    assert_eq!(
        store.tenant_by_slug("client-a").await.expect("by slug"),
        created
    );
    assert_eq!(actions(&*store, created.id).await, ["tenant.created"]);
}

async fn applying_a_tenant_creates_then_updates_then_leaves_it_unchanged(db: TestDb) {
    let store = db.store();
    let (created, applied) = store
        .apply_tenant(new_tenant("client-a"), "admin", now())
        .await
        .expect("applied");
    assert_eq!(applied, Applied::Created);
    let (same, applied) = store
        .apply_tenant(new_tenant("client-a"), "admin", now())
        .await
        .expect("applied");
    assert_eq!((applied, &same), (Applied::Unchanged, &created));
    let renamed = NewTenant {
        name: "Client A GmbH".into(),
        ..new_tenant("client-a")
    };
    let (updated, applied) = store
        .apply_tenant(renamed.clone(), "admin", now())
        .await
        .expect("applied");
    assert_eq!(applied, Applied::Updated);
    assert_eq!(
        (updated.id, updated.name.as_str(), updated.created_at),
        (created.id, "Client A GmbH", created.created_at)
    );
    assert_eq!(store.tenant(created.id).await.expect("read"), updated);
    let (_, applied) = store
        .apply_tenant(renamed, "admin", now())
        .await
        .expect("applied");
    assert_eq!(applied, Applied::Unchanged);
    assert_eq!(
        actions(&*store, created.id).await,
        ["tenant.created", "tenant.updated"]
    );
}

async fn a_second_tenant_with_the_same_slug_is_a_conflict_on_the_slug(db: TestDb) {
    let store = db.store();
    tenant(&*store, "client-a").await;
    assert_conflict_on(
        store
            .create_tenant(new_tenant("client-a"), "admin", now())
            .await,
        "tenants.slug",
    );
    assert_eq!(store.tenants(None).await.expect("listed").len(), 1);
}

async fn tenants_are_listed_in_byte_order_of_slug_and_can_be_limited_to_a_set(db: TestDb) {
    let store = db.store();
    // Byte order puts '-' before digits before letters, whatever the locale.
    for s in ["ab", "a1", "a-b", "b"] {
        tenant(&*store, s).await;
    }
    let all = store.tenants(None).await.expect("listed");
    let slugs: Vec<&str> = all.iter().map(|t| t.slug.as_str()).collect();
    assert_eq!(slugs, ["a-b", "a1", "ab", "b"]);
    let only = BTreeSet::from([all[1].id, all[3].id]);
    let some = store.tenants(Some(&only)).await.expect("listed");
    assert_eq!(
        some.iter().map(|t| t.slug.as_str()).collect::<Vec<_>>(),
        ["a1", "b"]
    );
    assert!(
        store
            .tenants(Some(&BTreeSet::new()))
            .await
            .expect("listed")
            .is_empty()
    );
}

async fn a_missing_tenant_is_not_found(db: TestDb) {
    let store = db.store();
    assert_not_found(store.tenant(TenantId(404)).await);
    assert_not_found(store.tenant_by_slug("nobody").await);
    assert_not_found(store.audit_events(TenantId(404)).await);
}

async fn writes_for_a_tenant_that_does_not_exist_fail_and_leave_nothing_behind(db: TestDb) {
    let store = db.store();
    let nowhere = TenantId(404);
    let tom = msp_user(&*store, "tom@msp.example").await;
    assert!(
        store
            .put_object(nowhere, ObjectKind::Board, "cab", "{}", "tom", now())
            .await
            .is_err()
    );
    assert!(store.put_policy(nowhere, "{}", "tom", now()).await.is_err());
    assert!(
        store
            .bind_role(tom.id, nowhere, Role::Auditor, "admin", now())
            .await
            .is_err()
    );
    let change = NewChange {
        tenant: nowhere,
        kind: ChangeType::Normal,
        requester: tom.id,
        implementer: None,
        content: content("nowhere"),
    };
    assert!(store.create_change(change, "tom", now()).await.is_err());
    let delegation = NewDelegation {
        tenant: nowhere,
        from: tom.id,
        to: tom.id,
        starts_at: at(0),
        ends_at: at(1),
        reason: None,
    };
    assert!(
        store
            .create_delegation(delegation, "tom", now())
            .await
            .is_err()
    );
    assert!(store.roles_of(tom.id).await.expect("roles").is_empty());
    let all = ChangeFilter {
        limit: 10,
        ..Default::default()
    };
    assert!(store.list_changes(&all).await.expect("listed").is_empty());
    assert!(store.tenants(None).await.expect("listed").is_empty());
}

// ---- users, roles, tokens -------------------------------------------------

async fn users_are_found_by_id_and_by_email_as_created(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let staff = store
        .create_user(
            NewUser {
                admin: true,
                password_hash: Some("argon2id$x".into()),
                ..new_user("Tom@MSP.example", None)
            },
            &[],
            "admin",
            now(),
        )
        .await
        .expect("created");
    assert_eq!(
        (staff.email.as_str(), staff.kind, staff.admin, staff.tenant),
        ("tom@msp.example", UserKind::Msp, true, None)
    );
    let client = store
        .create_user(
            new_user("carol@client-a.example", Some(t.id)),
            &[],
            "admin",
            now(),
        )
        .await
        .expect("created");
    assert_eq!((client.kind, client.tenant), (UserKind::Client, Some(t.id)));
    for u in [&staff, &client] {
        assert_eq!(&store.user(u.id).await.expect("by id"), u);
        assert_eq!(&store.user_by_email(&u.email).await.expect("by email"), u);
    }
    assert_not_found(store.user(UserId(404)).await);
    assert_not_found(store.user_by_email(&email("nobody@msp.example")).await);
    // A client user joining is in the tenant's chain; MSP staff belong to no tenant.
    assert_eq!(
        actions(&*store, t.id).await,
        ["tenant.created", "user.created"]
    );
}

async fn a_second_user_with_the_same_email_is_a_conflict_on_the_email(db: TestDb) {
    let store = db.store();
    msp_user(&*store, "tom@msp.example").await;
    assert_conflict_on(
        store
            .create_user(new_user("TOM@msp.example", None), &[], "admin", now())
            .await,
        "users.email",
    );
}

async fn a_user_is_created_with_its_roles_or_not_at_all(db: TestDb) {
    let store = db.store();
    let a = tenant(&*store, "client-a").await;
    let carol = store
        .create_user(
            new_user("carol@client-a.example", Some(a.id)),
            &[(a.id, Role::BusinessApprover), (a.id, Role::Requester)],
            "admin",
            now(),
        )
        .await
        .expect("created");
    let held = store.roles_of(carol.id).await.expect("roles");
    assert_eq!(
        held.get(&a.id).cloned().unwrap_or_default(),
        BTreeSet::from([Role::BusinessApprover, Role::Requester])
    );
    assert_eq!(
        actions(&*store, a.id).await,
        [
            "tenant.created",
            "user.created",
            "role.granted",
            "role.granted"
        ]
    );
    // A grant in a tenant that does not exist fails the whole write.
    let refused = store
        .create_user(
            new_user("dan@msp.example", None),
            &[
                (a.id, Role::Implementer),
                (TenantId(404), Role::Implementer),
            ],
            "admin",
            now(),
        )
        .await;
    assert!(refused.is_err(), "a grant in a missing tenant is refused");
    assert_not_found(store.user_by_email(&email("dan@msp.example")).await);
    assert_eq!(actions(&*store, a.id).await.len(), 4, "no event was kept");
}

async fn setting_a_password_replaces_the_hash_of_an_existing_user_only(db: TestDb) {
    let store = db.store();
    let tom = msp_user(&*store, "tom@msp.example").await;
    store
        .set_password(tom.id, "argon2id$new")
        .await
        .expect("set");
    assert_eq!(
        store
            .user(tom.id)
            .await
            .expect("read")
            .password_hash
            .as_deref(),
        Some("argon2id$new")
    );
    assert_not_found(store.set_password(UserId(404), "argon2id$new").await);
}

async fn a_changed_password_ends_the_other_sessions_with_its_events_in_one_write(db: TestDb) {
    let store = db.store();
    let a = tenant(&*store, "client-a").await;
    let tom = msp_user(&*store, "tom@msp.example").await;
    let later = now() + Duration::days(1);
    for id in ["here", "elsewhere", "also-elsewhere"] {
        store
            .create_session(tom.id, id, later, now())
            .await
            .expect("a session");
    }
    let ended = store
        .change_password(
            tom.id,
            "argon2id$new",
            Some("here"),
            vec![(a.id, event("user.password-changed", "tom@msp.example", 1))],
        )
        .await
        .expect("changed");
    assert_eq!(ended, 2);
    assert_eq!(
        store.user_by_session("here", now()).await.expect("kept").id,
        tom.id
    );
    assert_not_found(store.user_by_session("elsewhere", now()).await);
    assert_eq!(
        store
            .user(tom.id)
            .await
            .expect("read")
            .password_hash
            .as_deref(),
        Some("argon2id$new")
    );
    assert_eq!(
        actions(&*store, a.id).await,
        ["tenant.created", "user.password-changed"]
    );
    // Nobody's: nothing written, no event.
    assert_not_found(
        store
            .change_password(
                UserId(404),
                "argon2id$x",
                None,
                vec![(a.id, event("user.password-changed", "nobody", 2))],
            )
            .await,
    );
    assert_eq!(actions(&*store, a.id).await.len(), 2);
}

async fn a_role_bound_twice_is_unchanged_and_roles_are_listed_per_tenant(db: TestDb) {
    let store = db.store();
    let (a, b) = (
        tenant(&*store, "client-a").await,
        tenant(&*store, "client-b").await,
    );
    let tom = msp_user(&*store, "tom@msp.example").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let carol = store
        .create_user(
            new_user("carol@client-a.example", Some(a.id)),
            &[],
            "admin",
            now(),
        )
        .await
        .expect("created");
    assert_eq!(
        store
            .bind_role(tom.id, a.id, Role::TechnicalApprover, "admin", now())
            .await
            .expect("bound"),
        Applied::Created
    );
    assert_eq!(
        store
            .bind_role(tom.id, a.id, Role::TechnicalApprover, "admin", now())
            .await
            .expect("bound"),
        Applied::Unchanged
    );
    store
        .bind_role(tom.id, a.id, Role::ChangeManager, "admin", now())
        .await
        .expect("bound");
    store
        .bind_role(tom.id, b.id, Role::Auditor, "admin", now())
        .await
        .expect("bound");
    store
        .bind_role(eve.id, a.id, Role::Requester, "admin", now())
        .await
        .expect("bound");
    store
        .bind_role(carol.id, a.id, Role::BusinessApprover, "admin", now())
        .await
        .expect("bound");

    assert_eq!(
        store.roles_of(tom.id).await.expect("roles"),
        BTreeMap::from([
            (
                a.id,
                BTreeSet::from([Role::TechnicalApprover, Role::ChangeManager])
            ),
            (b.id, BTreeSet::from([Role::Auditor])),
        ])
    );
    assert!(store.roles_of(UserId(404)).await.expect("roles").is_empty());
    let in_a = store.users_in_tenant(a.id).await.expect("users");
    let listed: Vec<(&str, BTreeSet<Role>)> = in_a
        .iter()
        .map(|(u, r)| (u.email.as_str(), r.clone()))
        .collect();
    assert_eq!(
        listed,
        [
            (
                "carol@client-a.example",
                BTreeSet::from([Role::BusinessApprover])
            ),
            ("eve@msp.example", BTreeSet::from([Role::Requester])),
            (
                "tom@msp.example",
                BTreeSet::from([Role::TechnicalApprover, Role::ChangeManager])
            ),
        ]
    );
    assert_eq!(in_a[2].0, tom);
    let granted = actions(&*store, a.id)
        .await
        .into_iter()
        .filter(|a| a == "role.granted")
        .count();
    assert_eq!(granted, 4, "the repeated grant is not an event");
}

async fn a_live_token_finds_its_user_and_a_revoked_or_unknown_one_finds_nobody(db: TestDb) {
    let store = db.store();
    let tom = msp_user(&*store, "tom@msp.example").await;
    let live = store
        .create_token(tom.id, "laptop", "hash-live", &TokenScope::Full, now())
        .await
        .expect("token");
    assert_eq!((live.user, live.name.as_str()), (tom.id, "laptop"));
    let revoked = store
        .create_token(tom.id, "old", "hash-revoked", &TokenScope::Full, now())
        .await
        .expect("token");
    assert_eq!(
        store.user_by_token("hash-live").await.expect("found"),
        (tom.clone(), TokenScope::Full)
    );
    assert_not_found(store.user_by_token("hash-unknown").await);
    // A gate token carries its tenant.
    let t = tenant(&*store, "client-a").await;
    let gate = store
        .create_token(
            tom.id,
            "pipeline",
            "hash-gate",
            &TokenScope::Gate(t.id),
            now(),
        )
        .await
        .expect("token");
    assert_eq!(gate.scope, TokenScope::Gate(t.id));
    assert_eq!(
        store.user_by_token("hash-gate").await.expect("found"),
        (tom.clone(), TokenScope::Gate(t.id))
    );
    // An agent token carries its cluster.
    store
        .create_token(
            tom.id,
            "agent",
            "hash-agent",
            &TokenScope::Agent("prod-eu".into()),
            now(),
        )
        .await
        .expect("token");
    assert_eq!(
        store.user_by_token("hash-agent").await.expect("found").1,
        TokenScope::Agent("prod-eu".into())
    );
    // No store method revokes yet; the column is what the lookup honours.
    db.exec(&format!(
        "UPDATE api_tokens SET revoked_at = created_at WHERE id = {}",
        revoked.id
    ))
    .await
    .expect("revoked");
    assert_not_found(store.user_by_token("hash-revoked").await);
}

async fn a_token_hash_is_unique(db: TestDb) {
    let store = db.store();
    let tom = msp_user(&*store, "tom@msp.example").await;
    store
        .create_token(tom.id, "one", "same-hash", &TokenScope::Full, now())
        .await
        .expect("token");
    assert_conflict_on(
        store
            .create_token(tom.id, "two", "same-hash", &TokenScope::Full, now())
            .await,
        "api_tokens.token_hash",
    );
}

async fn events_of_no_change_join_the_tenant_chain(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    store
        .record_events(
            t.id,
            vec![NewEvent {
                actor: "pipeline".into(),
                action: "deployment.unauthorized".into(),
                subject: "web-shop".into(),
                detail: serde_json::json!({ "artifacts": ["app@sha256:1"] }),
                at: now(),
            }],
        )
        .await
        .expect("recorded");
    assert_eq!(
        actions(&*store, t.id).await,
        ["tenant.created", "deployment.unauthorized"]
    );
    assert!(
        verify(&*store, t.id).await.intact,
        "the chain still verifies"
    );
}

async fn messages_and_links_are_written_with_their_change_and_a_link_is_used_once(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let (eve, tom) = (
        msp_user(&*store, "eve@msp.example").await,
        msp_user(&*store, "tom@msp.example").await,
    );
    let c = new_change(&*store, t.id, eve.id, ChangeType::Normal, "Upgrade").await;
    let c = store
        .save_change(
            &Change {
                state: ChangeState::AwaitingApproval,
                ..c.clone()
            },
            c.version,
            ChangeWrite {
                messages: vec![NewMessage {
                    recipient: email("tom@msp.example"),
                    subject: "CHG awaits your approval".into(),
                    body: "the link".into(),
                    at: at(0),
                }],
                links: vec![NewLink {
                    // Not the column's default: the purpose is written and read back.
                    purpose: LinkPurpose::Accept,
                    token_hash: "link-hash".into(),
                    approver: tom.id,
                    revision: c.revision,
                    code_hash: Some("code-hash".into()),
                    expires_at: at(600),
                }],
                ..ChangeWrite::default()
            },
            now(),
        )
        .await
        .expect("saved");
    let link = store.approval_link("link-hash").await.expect("the link");
    assert_eq!(
        (link.tenant, link.change, link.approver, link.revision),
        (t.id, c.number, tom.id, c.revision)
    );
    assert_eq!(link.purpose, LinkPurpose::Accept);
    assert_eq!(
        (link.code_hash.as_deref(), link.expires_at, link.used_at),
        (Some("code-hash"), at(600), None)
    );
    assert_not_found(store.approval_link("other-hash").await);

    let due = store
        .claim_messages(at(10_000), 10, at(10_010))
        .await
        .expect("claimed");
    assert_eq!(due.len(), 1);
    assert_eq!(
        (
            due[0].recipient.as_str(),
            due[0].body.as_str(),
            due[0].attempts
        ),
        ("tom@msp.example", "the link", 0)
    );
    // Claimed: no other sender claims it until the claim runs out.
    assert!(
        store
            .claim_messages(at(10_005), 10, at(10_015))
            .await
            .expect("claimed")
            .is_empty()
    );
    // The claim ran out and another sender took it: the first sender's
    // late outcome writes nothing.
    let again = store
        .claim_messages(at(10_010), 10, at(10_020))
        .await
        .expect("claimed");
    assert_eq!(again.len(), 1);
    assert!(
        !store
            .message_failed(due[0].id, at(10_010), "relay down", at(10_011))
            .await
            .expect("failed")
    );
    assert!(
        !store
            .message_sent(due[0].id, at(10_010), at(10_012))
            .await
            .expect("sent")
    );
    // A failed delivery waits for its retry time; a sent one is never due again.
    assert!(
        store
            .message_failed(due[0].id, at(10_020), "relay down", at(10_060))
            .await
            .expect("failed")
    );
    assert!(
        store
            .claim_messages(at(10_030), 10, at(10_040))
            .await
            .expect("claimed")
            .is_empty()
    );
    let retry = store
        .claim_messages(at(10_060), 10, at(10_070))
        .await
        .expect("claimed");
    assert_eq!(retry[0].attempts, 1);
    assert!(
        store
            .message_sent(retry[0].id, at(10_070), at(10_061))
            .await
            .expect("sent")
    );
    assert!(
        !store
            .message_failed(retry[0].id, at(10_070), "too late", at(10_080))
            .await
            .expect("failed"),
        "a sent message is not failed afterwards"
    );
    assert!(
        store
            .due_messages(at(20_000), 10)
            .await
            .expect("due")
            .is_empty()
    );

    // Using the link is part of the write; a second use is a conflict.
    let used = store
        .save_change(
            &c,
            c.version,
            ChangeWrite {
                use_link: Some("link-hash".into()),
                ..ChangeWrite::default()
            },
            now(),
        )
        .await
        .expect("used");
    assert!(
        store
            .approval_link("link-hash")
            .await
            .expect("link")
            .used_at
            .is_some()
    );
    assert_conflict_on(
        store
            .save_change(
                &used,
                used.version,
                ChangeWrite {
                    use_link: Some("link-hash".into()),
                    ..ChangeWrite::default()
                },
                now(),
            )
            .await,
        "approval_links.used_at",
    );
    assert_eq!(
        store.change(t.id, c.number).await.expect("read").version,
        used.version,
        "the refused write left the change as it was"
    );
}

// ---- objects, policies, delegations ---------------------------------------

async fn putting_an_object_creates_then_updates_then_leaves_it_unchanged(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let put = |spec: &'static str| {
        let store = store.clone();
        async move {
            store
                .put_object(t.id, ObjectKind::Window, "weekend", spec, "tom", now())
                .await
                .expect("put")
        }
    };
    assert_eq!(put(r#"{"rrule":"FREQ=WEEKLY"}"#).await, Applied::Created);
    assert_eq!(put(r#"{"rrule":"FREQ=WEEKLY"}"#).await, Applied::Unchanged);
    assert_eq!(put(r#"{"rrule":"FREQ=DAILY"}"#).await, Applied::Updated);
    let objects = store
        .objects(t.id, ObjectKind::Window)
        .await
        .expect("listed");
    assert_eq!(objects.len(), 1);
    assert_eq!(
        (objects[0].name.as_str(), objects[0].spec.as_str()),
        ("weekend", r#"{"rrule":"FREQ=DAILY"}"#)
    );
    assert_eq!(
        actions(&*store, t.id).await,
        ["tenant.created", "window.created", "window.updated"]
    );
}

async fn objects_are_listed_per_kind_by_name_with_their_spec_text_unchanged(db: TestDb) {
    let store = db.store();
    let (a, b) = (
        tenant(&*store, "client-a").await,
        tenant(&*store, "client-b").await,
    );
    // Key order and spacing are kept: the text is stored, not a parsed form.
    let spec = r#"{ "rule": "any",  "members": ["tom@msp.example"], "a": 1 }"#;
    for name in ["msp-tech", "cab", "client-a-business"] {
        store
            .put_object(a.id, ObjectKind::Board, name, spec, "tom", now())
            .await
            .expect("put");
    }
    store
        .put_object(
            a.id,
            ObjectKind::ConfigurationItem,
            "payments-api",
            "{}",
            "tom",
            now(),
        )
        .await
        .expect("put");
    store
        .put_object(b.id, ObjectKind::Board, "other", "{}", "tom", now())
        .await
        .expect("put");
    let boards = store
        .objects(a.id, ObjectKind::Board)
        .await
        .expect("listed");
    assert_eq!(
        boards.iter().map(|o| o.name.as_str()).collect::<Vec<_>>(),
        ["cab", "client-a-business", "msp-tech"]
    );
    assert!(
        boards
            .iter()
            .all(|o| o.spec == spec && o.tenant == a.id && o.kind == ObjectKind::Board)
    );
    assert_eq!(
        store
            .objects(a.id, ObjectKind::ConfigurationItem)
            .await
            .expect("listed")
            .len(),
        1
    );
    assert!(
        store
            .objects(a.id, ObjectKind::Template)
            .await
            .expect("listed")
            .is_empty()
    );
    assert!(
        actions(&*store, a.id)
            .await
            .contains(&"configuration-item.created".to_string())
    );
}

async fn deleting_an_object_removes_it_and_deleting_a_missing_one_is_not_found(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    store
        .put_object(t.id, ObjectKind::Template, "db-patch", "{}", "tom", now())
        .await
        .expect("put");
    store
        .delete_object(t.id, ObjectKind::Template, "db-patch", "tom", now())
        .await
        .expect("deleted");
    assert!(
        store
            .objects(t.id, ObjectKind::Template)
            .await
            .expect("listed")
            .is_empty()
    );
    assert_not_found(
        store
            .delete_object(t.id, ObjectKind::Template, "db-patch", "tom", now())
            .await,
    );
    assert_eq!(
        actions(&*store, t.id).await,
        ["tenant.created", "template.created", "template.deleted"]
    );
}

async fn policy_versions_count_up_only_when_the_spec_changes(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    assert_not_found(store.policy(t.id).await);
    assert_eq!(
        store
            .put_policy(t.id, r#"{"v":1}"#, "cm", now())
            .await
            .expect("put"),
        (1, Applied::Created)
    );
    assert_eq!(
        store
            .put_policy(t.id, r#"{"v":1}"#, "cm", now())
            .await
            .expect("put"),
        (1, Applied::Unchanged)
    );
    assert_eq!(
        store
            .put_policy(t.id, r#"{"v":2}"#, "cm", now())
            .await
            .expect("put"),
        (2, Applied::Updated)
    );
    assert_eq!(
        store
            .put_policy(t.id, r#"{"v":1}"#, "cm", now())
            .await
            .expect("put"),
        (3, Applied::Updated)
    );
    assert_eq!(
        store.policy(t.id).await.expect("read"),
        (3, r#"{"v":1}"#.to_string())
    );
    let versioned = actions(&*store, t.id)
        .await
        .into_iter()
        .filter(|a| a == "policy.versioned")
        .count();
    assert_eq!(versioned, 3);
}

async fn a_delegation_is_active_from_its_start_until_just_before_its_end(db: TestDb) {
    let store = db.store();
    let (a, b) = (
        tenant(&*store, "client-a").await,
        tenant(&*store, "client-b").await,
    );
    let (carol, dan) = (
        msp_user(&*store, "carol@msp.example").await,
        msp_user(&*store, "dan@msp.example").await,
    );
    let d = store
        .create_delegation(
            NewDelegation {
                tenant: a.id,
                from: carol.id,
                to: dan.id,
                starts_at: at(0),
                ends_at: at(60),
                reason: None,
            },
            "carol",
            now(),
        )
        .await
        .expect("created");
    assert_eq!(
        (d.tenant, d.from, d.to, d.starts_at, d.ends_at),
        (a.id, carol.id, dan.id, at(0), at(60))
    );
    let active = |tenant: TenantId, from: UserId, to: UserId, when: DateTime<Utc>| {
        let store = store.clone();
        async move {
            store
                .delegation_active(tenant, from, to, when)
                .await
                .expect("asked")
        }
    };
    assert!(!active(a.id, carol.id, dan.id, at(0) - Duration::microseconds(1)).await);
    assert!(active(a.id, carol.id, dan.id, at(0)).await);
    assert!(active(a.id, carol.id, dan.id, at(60) - Duration::microseconds(1)).await);
    assert!(!active(a.id, carol.id, dan.id, at(60)).await);
    assert!(
        !active(b.id, carol.id, dan.id, at(30)).await,
        "another tenant"
    );
    assert!(
        !active(a.id, dan.id, carol.id, at(30)).await,
        "the other direction"
    );
    assert_eq!(
        actions(&*store, a.id).await,
        ["tenant.created", "delegation.created"]
    );
}

// ---- changes --------------------------------------------------------------

async fn a_new_change_is_a_draft_at_version_one_and_reads_back_as_created(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let created = new_change(
        &*store,
        t.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    assert_eq!(
        (created.state, created.version, created.revision),
        (ChangeState::Draft, 1, 1)
    );
    assert_eq!(
        (created.tenant, created.kind, created.requester),
        (t.id, ChangeType::Normal, eve.id)
    );
    assert_eq!(created.content, content("Upgrade payments"));
    assert_eq!(created.plan, ApprovalPlan::default());
    assert_eq!(
        store.change(t.id, created.number).await.expect("read"),
        created
    );
    assert_eq!(
        actions(&*store, t.id).await,
        ["tenant.created", "change.created"]
    );
    let (events, _) = store.audit_events(t.id).await.expect("events");
    assert_eq!(events[1].body.subject, created.number.to_string());
}

async fn a_change_is_not_found_in_another_tenant(db: TestDb) {
    let store = db.store();
    let (a, b) = (
        tenant(&*store, "client-a").await,
        tenant(&*store, "client-b").await,
    );
    let eve = msp_user(&*store, "eve@msp.example").await;
    let c = new_change(
        &*store,
        a.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    assert_not_found(store.change(b.id, c.number).await);
    assert_not_found(store.change(a.id, ChangeNumber(c.number.0 + 1)).await);
    assert!(
        store
            .approvals(b.id, c.number)
            .await
            .expect("approvals")
            .is_empty()
    );
    assert!(
        store
            .revisions(b.id, c.number)
            .await
            .expect("revisions")
            .is_empty()
    );
}

async fn changes_are_listed_newest_first_by_every_filter(db: TestDb) {
    let store = db.store();
    let (a, b) = (
        tenant(&*store, "client-a").await,
        tenant(&*store, "client-b").await,
    );
    let (eve, ian) = (
        msp_user(&*store, "eve@msp.example").await,
        msp_user(&*store, "ian@msp.example").await,
    );
    // Changes 1 and 2 are created before `middle`, 3 and 4 at it.
    let middle = audit::normalise(now());
    let before = middle - Duration::hours(1);
    let c1 = new_change_at(&*store, a.id, eve.id, ChangeType::Normal, "one", before).await;
    let c2 = new_change_at(&*store, a.id, ian.id, ChangeType::Emergency, "two", before).await;
    let c3 = new_change(&*store, b.id, eve.id, ChangeType::Normal, "three").await;
    let c4 = new_change(&*store, a.id, eve.id, ChangeType::Standard, "four").await;
    save(
        &*store,
        &Change {
            state: ChangeState::Submitted,
            ..c3.clone()
        },
    )
    .await;
    save(
        &*store,
        &Change {
            state: ChangeState::Submitted,
            ..c1.clone()
        },
    )
    .await;

    let list = |filter: ChangeFilter| {
        let store = store.clone();
        async move {
            let found = store
                .list_changes(&ChangeFilter {
                    limit: 100,
                    ..filter
                })
                .await
                .expect("listed");
            found.into_iter().map(|c| c.number).collect::<Vec<_>>()
        }
    };
    let n = |cs: &[&Change]| cs.iter().map(|c| c.number).collect::<Vec<_>>();
    assert_eq!(
        list(ChangeFilter::default()).await,
        n(&[&c4, &c3, &c2, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            tenants: Some(BTreeSet::from([a.id])),
            ..Default::default()
        })
        .await,
        n(&[&c4, &c2, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            tenants: Some(BTreeSet::from([a.id, b.id])),
            ..Default::default()
        })
        .await
        .len(),
        4
    );
    assert!(
        list(ChangeFilter {
            tenants: Some(BTreeSet::new()),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert_eq!(
        list(ChangeFilter {
            state: Some(ChangeState::Submitted),
            ..Default::default()
        })
        .await,
        n(&[&c3, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            kind: Some(ChangeType::Emergency),
            ..Default::default()
        })
        .await,
        n(&[&c2])
    );
    assert_eq!(
        list(ChangeFilter {
            requester: Some(eve.id),
            ..Default::default()
        })
        .await,
        n(&[&c4, &c3, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            created_from: Some(middle),
            ..Default::default()
        })
        .await,
        n(&[&c4, &c3])
    );
    assert_eq!(
        list(ChangeFilter {
            created_to: Some(middle),
            ..Default::default()
        })
        .await,
        n(&[&c2, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            before: Some(c3.number),
            ..Default::default()
        })
        .await,
        n(&[&c2, &c1])
    );
    assert_eq!(
        list(ChangeFilter {
            tenants: Some(BTreeSet::from([a.id])),
            state: Some(ChangeState::Draft),
            requester: Some(eve.id),
            ..Default::default()
        })
        .await,
        n(&[&c4])
    );
    // The limit is at least 1 and at most 500.
    let one = store
        .list_changes(&ChangeFilter::default())
        .await
        .expect("listed");
    assert_eq!(one.iter().map(|c| c.number).collect::<Vec<_>>(), n(&[&c4]));
    assert_eq!(one[0], store.change(a.id, c4.number).await.expect("read"));
}

async fn keyset_pagination_visits_every_change_once(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let mut created = Vec::new();
    for i in 0..7 {
        created.push(
            new_change(
                &*store,
                t.id,
                eve.id,
                ChangeType::Normal,
                &format!("change {i}"),
            )
            .await
            .number,
        );
    }
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .list_changes(&ChangeFilter {
                tenants: Some(BTreeSet::from([t.id])),
                before,
                limit: 3,
                ..Default::default()
            })
            .await
            .expect("page");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        before = Some(last.number);
        seen.extend(page.iter().map(|c| c.number));
    }
    created.reverse();
    assert_eq!(seen, created);
}

async fn saving_a_change_with_a_stale_version_is_a_conflict_and_writes_nothing(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let (eve, tom) = (
        msp_user(&*store, "eve@msp.example").await,
        msp_user(&*store, "tom@msp.example").await,
    );
    let c = new_change(
        &*store,
        t.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    let submitted = save(
        &*store,
        &Change {
            state: ChangeState::AwaitingApproval,
            ..c.clone()
        },
    )
    .await;
    assert_eq!(submitted.version, 2);
    let head_before = store.audit_events(t.id).await.expect("events").1;

    let stale = ChangeWrite {
        approval: Some(NewApproval {
            approver: tom.id,
            on_behalf_of: None,
            decision: Decision::Approve,
            comment: "ok".into(),
            channel: Channel::Portal,
            at: at(5),
        }),
        record_revision: Some(eve.id),
        comment: Some((tom.id, "stale".into(), at(5))),
        events: vec![event("change.approved", "CHG-x", 5)],
        ..ChangeWrite::default()
    };
    let result = store
        .save_change(
            &Change {
                state: ChangeState::Approved,
                ..c.clone()
            },
            c.version,
            stale,
            now(),
        )
        .await;
    assert_conflict_on(result, "changes.version");
    assert_eq!(store.change(t.id, c.number).await.expect("read"), submitted);
    assert!(
        store
            .approvals(t.id, c.number)
            .await
            .expect("approvals")
            .is_empty()
    );
    assert!(
        store
            .revisions(t.id, c.number)
            .await
            .expect("revisions")
            .is_empty()
    );
    assert!(
        store
            .comments(t.id, c.number)
            .await
            .expect("comments")
            .is_empty()
    );
    assert_eq!(
        store.audit_events(t.id).await.expect("events").1,
        head_before
    );
    assert!(verify(&*store, t.id).await.intact);
}

async fn saving_a_change_records_its_revision_approval_comment_and_events(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let (tom, tina) = (
        msp_user(&*store, "tom@msp.example").await,
        msp_user(&*store, "tina@msp.example").await,
    );
    let c = new_change(
        &*store,
        t.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    let plan = ApprovalPlan {
        boards: vec![FrozenBoard {
            name: "msp-tech".into(),
            rule: Rule::Any,
            members: vec![tom.id, tina.id],
            mandatory: vec![],
            chair: None,
        }],
    };
    let fingerprint = c.content.fingerprint();
    let submitted = Change {
        state: ChangeState::AwaitingApproval,
        fingerprint: Some(fingerprint.clone()),
        policy_version: Some(3),
        plan: plan.clone(),
        risk_level: Some(RiskLevel::High),
        risk_score: Some(7),
        implementer: Some(tina.id),
        submitted_at: Some(at(1)),
        ..c.clone()
    };
    let submit = ChangeWrite {
        record_revision: Some(eve.id),
        events: vec![event("change.submitted", "CHG", 1)],
        ..Default::default()
    };
    let saved = store
        .save_change(&submitted, c.version, submit, now())
        .await
        .expect("saved");
    assert_eq!(
        saved,
        Change {
            version: 2,
            updated_at: saved.updated_at,
            ..submitted.clone()
        }
    );
    assert_eq!(store.change(t.id, c.number).await.expect("read"), saved);

    // Tom approves for Tina (a delegation), with a comment on the change.
    let approve = ChangeWrite {
        approval: Some(NewApproval {
            approver: tom.id,
            on_behalf_of: Some(tina.id),
            decision: Decision::Approve,
            comment: "tested in staging".into(),
            channel: Channel::Email,
            at: at(2),
        }),
        record_revision: Some(eve.id),
        comment: Some((tom.id, "Approved for Tina".into(), at(2))),
        events: vec![
            event("change.approved", "CHG", 2),
            event("change.comment", "CHG", 2),
        ],
        ..ChangeWrite::default()
    };
    let approved = store
        .save_change(
            &Change {
                state: ChangeState::Approved,
                decided_at: Some(at(2)),
                ..saved.clone()
            },
            saved.version,
            approve,
            now(),
        )
        .await
        .expect("saved");
    assert_eq!(
        (approved.state, approved.version),
        (ChangeState::Approved, 3)
    );

    let approvals = store.approvals(t.id, c.number).await.expect("approvals");
    assert_eq!(approvals.len(), 1);
    let a = &approvals[0];
    assert_eq!(
        (
            a.change,
            a.revision,
            a.approver,
            a.approver_email.as_str(),
            a.on_behalf_of,
            a.seat()
        ),
        (
            c.number,
            1,
            tom.id,
            "tom@msp.example",
            Some(tina.id),
            tina.id
        )
    );
    assert_eq!(
        (a.decision, a.comment.as_str(), a.channel),
        (Decision::Approve, "tested in staging", Channel::Email)
    );
    assert_eq!(
        (a.fingerprint.as_str(), a.policy_version, a.at),
        (fingerprint.as_str(), 3, at(2))
    );

    // The same revision recorded twice is one revision.
    let revisions = store.revisions(t.id, c.number).await.expect("revisions");
    assert_eq!(revisions.len(), 1);
    assert_eq!(
        (
            revisions[0].revision,
            &revisions[0].fingerprint,
            &revisions[0].content
        ),
        (1, &fingerprint, &c.content)
    );
    assert_eq!(revisions[0].created_by, eve.id);

    let comments = store.comments(t.id, c.number).await.expect("comments");
    assert_eq!(comments.len(), 1);
    assert_eq!(
        (
            comments[0].author,
            comments[0].author_email.as_str(),
            comments[0].body.as_str(),
            comments[0].at
        ),
        (tom.id, "tom@msp.example", "Approved for Tina", at(2))
    );
    assert_eq!(
        actions(&*store, t.id).await,
        [
            "tenant.created",
            "change.created",
            "change.submitted",
            "change.approved",
            "change.comment"
        ]
    );
    assert!(verify(&*store, t.id).await.intact);
}

async fn changes_due_are_those_past_their_approval_expiry_or_retrospective_deadline(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let now = at(600);
    let mut due = Vec::new();
    let mut cases = Vec::new();
    for (title, state, expires, retro, overdue, is_due) in [
        (
            "approved, expired",
            ChangeState::Approved,
            Some(now - Duration::hours(1)),
            None,
            false,
            true,
        ),
        (
            "scheduled, expiring now",
            ChangeState::Scheduled,
            Some(now),
            None,
            false,
            true,
        ),
        (
            "approved, not yet expired",
            ChangeState::Approved,
            Some(now + Duration::hours(1)),
            None,
            false,
            false,
        ),
        (
            "awaiting, past expiry",
            ChangeState::AwaitingApproval,
            Some(now - Duration::hours(1)),
            None,
            false,
            false,
        ),
        (
            "implemented, retrospective late",
            ChangeState::Implemented,
            None,
            Some(now - Duration::hours(1)),
            false,
            true,
        ),
        (
            "implemented, already overdue",
            ChangeState::Implemented,
            None,
            Some(now - Duration::hours(1)),
            true,
            false,
        ),
        (
            "closed, retrospective late",
            ChangeState::Closed,
            None,
            Some(now - Duration::hours(1)),
            false,
            false,
        ),
        (
            "implementing, retrospective later",
            ChangeState::Implementing,
            None,
            Some(now + Duration::hours(1)),
            false,
            false,
        ),
    ] {
        let c = new_change(&*store, t.id, eve.id, ChangeType::Emergency, title).await;
        let c = Change {
            state,
            approval_expires_at: expires,
            retrospective_due_at: retro,
            retrospective_overdue: overdue,
            ..c
        };
        let saved = save(&*store, &c).await;
        cases.push(title);
        if is_due {
            due.push(saved.number);
        }
    }
    let found: Vec<ChangeNumber> = store
        .changes_due(now)
        .await
        .expect("due")
        .into_iter()
        .map(|c| c.number)
        .collect();
    assert_eq!(found, due, "cases in order: {cases:?}");
}

// ---- append-only records and the audit chain ------------------------------

async fn approvals_revisions_and_audit_events_cannot_be_updated_or_deleted(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let (eve, tom) = (
        msp_user(&*store, "eve@msp.example").await,
        msp_user(&*store, "tom@msp.example").await,
    );
    let c = new_change(
        &*store,
        t.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    let write = ChangeWrite {
        approval: Some(NewApproval {
            approver: tom.id,
            on_behalf_of: None,
            decision: Decision::Reject,
            comment: "no".into(),
            channel: Channel::Api,
            at: at(1),
        }),
        record_revision: Some(eve.id),
        ..Default::default()
    };
    store
        .save_change(
            &Change {
                fingerprint: Some("f".into()),
                ..c.clone()
            },
            c.version,
            write,
            now(),
        )
        .await
        .expect("saved");

    for sql in [
        "UPDATE approvals SET decision = 'approve'".to_string(),
        "DELETE FROM approvals".to_string(),
        "UPDATE change_revisions SET fingerprint = 'forged'".to_string(),
        "DELETE FROM change_revisions".to_string(),
        format!(
            "UPDATE audit_events SET actor = 'mallory' WHERE tenant_id = {}",
            t.id
        ),
        format!("DELETE FROM audit_events WHERE tenant_id = {}", t.id),
    ] {
        match db.exec(&sql).await {
            Err(e) => assert!(e.to_string().contains("append-only"), "{sql}: {e}"),
            Ok(n) => panic!("{sql} changed {n} rows"),
        }
    }
    let approvals = store.approvals(t.id, c.number).await.expect("approvals");
    assert_eq!(
        (approvals.len(), approvals[0].decision),
        (1, Decision::Reject)
    );
    assert_eq!(
        store.revisions(t.id, c.number).await.expect("revisions")[0].fingerprint,
        "f"
    );
    assert!(verify(&*store, t.id).await.intact);
}

async fn every_write_appends_to_the_tenants_intact_audit_chain(db: TestDb) {
    let store = db.store();
    let t = tenant(&*store, "client-a").await;
    let other = tenant(&*store, "client-b").await;
    store
        .create_user(
            new_user("carol@client-a.example", Some(t.id)),
            &[],
            "admin",
            now(),
        )
        .await
        .expect("user");
    let tom = msp_user(&*store, "tom@msp.example").await;
    store
        .bind_role(tom.id, t.id, Role::TechnicalApprover, "admin", now())
        .await
        .expect("bound");
    store
        .bind_role(tom.id, t.id, Role::TechnicalApprover, "admin", now())
        .await
        .expect("bound");
    store
        .bind_role(tom.id, other.id, Role::TechnicalApprover, "admin", now())
        .await
        .expect("bound");
    store
        .put_object(t.id, ObjectKind::Board, "cab", "{}", "cm", now())
        .await
        .expect("put");
    store
        .put_object(t.id, ObjectKind::Board, "cab", "{}", "cm", now())
        .await
        .expect("put");
    store
        .put_object(
            t.id,
            ObjectKind::Board,
            "cab",
            r#"{"rule":"all"}"#,
            "cm",
            now(),
        )
        .await
        .expect("put");
    store
        .delete_object(t.id, ObjectKind::Board, "cab", "cm", now())
        .await
        .expect("deleted");
    store
        .put_policy(t.id, "{}", "cm", now())
        .await
        .expect("policy");
    store
        .put_policy(t.id, "{}", "cm", now())
        .await
        .expect("policy");
    store
        .create_delegation(
            NewDelegation {
                tenant: t.id,
                from: tom.id,
                to: tom.id,
                starts_at: at(0),
                ends_at: at(1),
                reason: None,
            },
            "tom",
            now(),
        )
        .await
        .expect("delegation");
    let c = new_change(
        &*store,
        t.id,
        tom.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    let submit = ChangeWrite {
        events: vec![event("change.submitted", &c.number.to_string(), 3)],
        ..Default::default()
    };
    store
        .save_change(
            &Change {
                state: ChangeState::Submitted,
                ..c.clone()
            },
            c.version,
            submit,
            now(),
        )
        .await
        .expect("saved");
    store
        .apply_tenant(
            NewTenant {
                name: "Client A GmbH".into(),
                ..new_tenant("client-a")
            },
            "admin",
            now(),
        )
        .await
        .expect("applied");

    assert_eq!(
        actions(&*store, t.id).await,
        [
            "tenant.created",
            "user.created",
            "role.granted",
            "board.created",
            "board.updated",
            "board.deleted",
            "policy.versioned",
            "delegation.created",
            "change.created",
            "change.submitted",
            "tenant.updated",
        ]
    );
    let (events, head) = store.audit_events(t.id).await.expect("events");
    assert_eq!(head.seq, 11);
    assert_eq!(
        head.hash, events[10].hash,
        "the head is the last event's hash"
    );
    assert_eq!(
        events.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        (1..=11).collect::<Vec<_>>()
    );
    assert!(events.iter().all(|e| e.body.tenant == t.id));
    let report = audit::verify(&events, &head);
    assert!(report.intact, "{report:?}");
    assert_eq!(report.head_hash, events[10].hash);
    // The detail is hashed as stored: it reads back as the JSON text written.
    assert_eq!(events[9].body.detail, r#"{"comment":"looks good","n":3}"#);
    // Each tenant has a chain of its own.
    assert_eq!(
        actions(&*store, other.id).await,
        ["tenant.created", "role.granted"]
    );
    assert!(verify(&*store, other.id).await.intact);
}

async fn an_edited_audit_event_is_reported_as_edited_at_its_sequence_number(db: TestDb) {
    let store = db.store();
    let t = tenant_with_six_events(&*store, "client-a").await;
    let other = tenant_with_six_events(&*store, "client-b").await;
    db.drop_append_only_triggers()
        .await
        .expect("triggers dropped");
    let edited = db
        .exec(&format!(r#"UPDATE audit_events SET detail = '{{"spec":{{"rule":"none"}}}}' WHERE tenant_id = {} AND seq = 3"#, t))
        .await
        .expect("edited");
    assert_eq!(edited, 1);
    assert_eq!(
        verify(&*store, t).await.first_break,
        Some(Break::Edited { seq: 3 })
    );
    assert!(
        verify(&*store, other).await.intact,
        "another tenant's chain is untouched"
    );
}

async fn a_deleted_audit_event_is_reported_as_missing_and_a_deleted_last_one_as_truncated(
    db: TestDb,
) {
    let store = db.store();
    let t = tenant_with_six_events(&*store, "client-a").await;
    db.drop_append_only_triggers()
        .await
        .expect("triggers dropped");
    let deleted = db
        .exec(&format!(
            "DELETE FROM audit_events WHERE tenant_id = {} AND seq = 3",
            t
        ))
        .await
        .expect("deleted");
    assert_eq!(deleted, 1);
    assert_eq!(
        verify(&*store, t).await.first_break,
        Some(Break::Missing {
            expected_seq: 3,
            found_seq: 4
        })
    );

    let u = tenant_with_six_events(&*store, "client-b").await;
    db.exec(&format!(
        "DELETE FROM audit_events WHERE tenant_id = {u} AND seq = 6"
    ))
    .await
    .expect("deleted");
    assert_eq!(
        verify(&*store, u).await.first_break,
        Some(Break::Truncated {
            last_seq: 5,
            head_seq: 6
        })
    );
}

async fn the_last_events_removed_with_the_head_sequence_moved_are_found_by_the_head_hash(
    db: TestDb,
) {
    let store = db.store();
    let t = tenant_with_six_events(&*store, "client-a").await;
    db.drop_append_only_triggers()
        .await
        .expect("triggers dropped");
    // Someone with database access removes the last two events and moves
    // the head's sequence back, so that no gap and no truncation shows.
    db.exec(&format!(
        "DELETE FROM audit_events WHERE tenant_id = {t} AND seq > 4;
         UPDATE tenants SET audit_seq = 4 WHERE id = {t};"
    ))
    .await
    .expect("rewritten");
    assert_eq!(
        verify(&*store, t).await.first_break,
        Some(Break::HeadMismatch {
            last_seq: 4,
            head_seq: 4
        })
    );
    // Rewriting the head's hash too leaves a chain that verifies: what
    // finds that is a head kept elsewhere (a signed checkpoint).
    let (events, _) = store.audit_events(t).await.expect("events");
    db.exec(&format!(
        "UPDATE tenants SET audit_hash = '{}' WHERE id = {t};",
        events[3].hash
    ))
    .await
    .expect("rewritten");
    assert!(verify(&*store, t).await.intact);
}

async fn swapped_audit_events_are_reported_as_reordered(db: TestDb) {
    let store = db.store();
    let t = tenant_with_six_events(&*store, "client-a").await;
    let (events, _) = store.audit_events(t).await.expect("events");
    db.drop_append_only_triggers()
        .await
        .expect("triggers dropped");
    // Swap the contents of the rows holding events 2 and 4, so that 4 is
    // stored second and 2 fourth; each event is intact in itself.
    let set = |e: &audit::Event, seq: i64| {
        let b = &e.body;
        format!(
            "seq = {seq}, at = {}, actor = {}, action = {}, subject = {}, detail = {}, prev_hash = {}, hash = {}",
            lit(&b.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
            lit(&b.actor),
            lit(&b.action),
            lit(&b.subject),
            lit(&b.detail),
            lit(&e.prev_hash),
            lit(&e.hash)
        )
    };
    let (second, fourth) = (&events[1], &events[3]);
    let id = t;
    db.exec(&format!(
        "UPDATE audit_events SET {} WHERE tenant_id = {id} AND seq = 2;
         UPDATE audit_events SET {} WHERE tenant_id = {id} AND seq = 4;
         UPDATE audit_events SET seq = 4 WHERE tenant_id = {id} AND seq = -4;",
        set(fourth, -4),
        set(second, 2)
    ))
    .await
    .expect("swapped");
    let (stored, _) = store.audit_events(t).await.expect("events");
    assert_eq!(
        stored.iter().map(|e| e.body.seq).collect::<Vec<_>>(),
        [1, 4, 3, 2, 5, 6]
    );
    assert_eq!(
        (&stored[1], &stored[3]),
        (fourth, second),
        "the swapped events read back unchanged"
    );
    assert_eq!(
        verify(&*store, t).await.first_break,
        Some(Break::Reordered { seq: 4, after: 1 })
    );
}

// ---- concurrency ----------------------------------------------------------

async fn fifty_concurrent_approvals_retried_on_conflict_are_all_recorded_in_an_intact_chain(
    db: TestDb,
) {
    const APPROVERS: usize = 50;
    let store: Arc<dyn Store> = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let mut approvers = Vec::new();
    for i in 0..APPROVERS {
        approvers.push(
            msp_user(&*store, &format!("approver-{i}@msp.example"))
                .await
                .id,
        );
    }
    let c = new_change(
        &*store,
        t.id,
        eve.id,
        ChangeType::Normal,
        "Upgrade payments",
    )
    .await;
    let c = save(
        &*store,
        &Change {
            state: ChangeState::AwaitingApproval,
            fingerprint: Some(c.content.fingerprint()),
            ..c
        },
    )
    .await;

    let mut tasks = tokio::task::JoinSet::new();
    for (i, approver) in approvers.iter().copied().enumerate() {
        let store = store.clone();
        tasks.spawn(async move {
            let mut conflicts = 0u32;
            loop {
                let current = store.change(t.id, c.number).await.expect("read");
                let write = ChangeWrite {
                    approval: Some(NewApproval {
                        approver,
                        on_behalf_of: None,
                        decision: Decision::Approve,
                        comment: format!("approval {i}"),
                        channel: Channel::Api,
                        at: at(i as i64),
                    }),
                    events: vec![event("change.approved", &c.number.to_string(), i as i64)],
                    ..Default::default()
                };
                match store
                    .save_change(&current, current.version, write, now())
                    .await
                {
                    Ok(_) => return conflicts,
                    Err(StoreError::Conflict { .. }) => conflicts += 1,
                    Err(e) => panic!("approval {i} failed: {e}"),
                }
            }
        });
    }
    let mut conflicts = 0;
    while let Some(done) = tasks.join_next().await {
        conflicts += done.expect("approval task");
    }

    let approvals = store.approvals(t.id, c.number).await.expect("approvals");
    assert_eq!(
        approvals.len(),
        APPROVERS,
        "after {conflicts} retried conflicts"
    );
    let seats: BTreeSet<UserId> = approvals.iter().map(|a| a.seat()).collect();
    assert_eq!(seats, approvers.iter().copied().collect());
    assert_eq!(
        store.change(t.id, c.number).await.expect("read").version,
        c.version + APPROVERS as i64
    );
    let report = verify(&*store, t.id).await;
    assert!(report.intact, "{report:?}");
    let approved = actions(&*store, t.id)
        .await
        .into_iter()
        .filter(|a| a == "change.approved")
        .count();
    assert_eq!(approved, APPROVERS);
}

async fn concurrent_writes_to_different_records_of_one_tenant_keep_its_chain_linear(db: TestDb) {
    // Unlike approvals of one change, these writes share no row but the
    // tenant's: only the store's per-tenant serialisation keeps two of them
    // from sealing events onto the same head.
    const WRITERS: usize = 30;
    let store: Arc<dyn Store> = db.store();
    let t = tenant(&*store, "client-a").await;
    let eve = msp_user(&*store, "eve@msp.example").await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..WRITERS {
        let store = store.clone();
        tasks.spawn(async move {
            let c = new_change(
                &*store,
                t.id,
                eve.id,
                ChangeType::Normal,
                &format!("change {i}"),
            )
            .await;
            let submit = ChangeWrite {
                events: vec![event("change.submitted", &c.number.to_string(), 1)],
                ..Default::default()
            };
            store
                .save_change(&c, c.version, submit, now())
                .await
                .expect("saved");
            store
                .put_object(
                    t.id,
                    ObjectKind::Window,
                    &format!("window-{i}"),
                    "{}",
                    "cm",
                    now(),
                )
                .await
                .expect("put");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("writer task");
    }
    let (events, head) = store.audit_events(t.id).await.expect("events");
    assert_eq!(
        (events.len(), head.seq),
        (1 + 3 * WRITERS, 1 + 3 * WRITERS as i64)
    );
    let report = audit::verify(&events, &head);
    assert!(report.intact, "{report:?}");
}

/// The server's shared gate snapshots (`changegate_web::snapshot`) are
/// confirmed against the audit head: every write of what the gate reads
/// (changes, configuration items, windows, policies) must move it, and
/// only for its own tenant.
async fn the_audit_head_moves_with_every_write_of_a_tenants_gate_records_and_only_its_own(
    db: TestDb,
) {
    let store = db.store();
    let store = store.as_ref();
    let (a, b) = (
        tenant(store, "client-a").await,
        tenant(store, "client-b").await,
    );
    let eve = msp_user(store, "eve@msp.example").await;
    let head = |t: TenantId| async move { store.audit_head(t).await.expect("head") };
    let other = head(b.id).await;
    let mut last = head(a.id).await;
    let mut moved = |now: i64, what: &str| {
        assert!(now > last, "{what} left the head at {last}");
        last = now;
    };
    let c = new_change(store, a.id, eve.id, ChangeType::Normal, "Upgrade").await;
    moved(head(a.id).await, "creating a change");
    let submit = ChangeWrite {
        events: vec![event("change.submitted", &c.number.to_string(), 1)],
        ..Default::default()
    };
    store
        .save_change(&c, c.version, submit, now())
        .await
        .expect("saved");
    moved(head(a.id).await, "saving a change with its event");
    for kind in [ObjectKind::ConfigurationItem, ObjectKind::Window] {
        store
            .put_object(a.id, kind, "x", "{}", "cm", now())
            .await
            .expect("put");
        moved(head(a.id).await, "putting an object");
    }
    store
        .delete_object(a.id, ObjectKind::Window, "x", "cm", now())
        .await
        .expect("deleted");
    moved(head(a.id).await, "deleting an object");
    store
        .put_policy(a.id, "{}", "cm", now())
        .await
        .expect("policy");
    moved(head(a.id).await, "writing the policy");
    store.change(a.id, c.number).await.expect("read");
    assert_eq!(head(a.id).await, last, "a read moves nothing");
    assert_eq!(head(b.id).await, other, "another tenant's head stays");
    let about: Vec<String> = store
        .audit_events_about(a.id, &c.number.to_string())
        .await
        .expect("events about the change")
        .into_iter()
        .map(|e| e.body.action)
        .collect();
    assert_eq!(
        about,
        ["change.created", "change.submitted"],
        "its own events, in order"
    );
    assert!(
        store
            .audit_events_about(b.id, &c.number.to_string())
            .await
            .expect("none")
            .is_empty(),
        "not another tenant's"
    );
    let heads = store.audit_heads().await.expect("heads");
    assert_eq!(
        (heads.get(&a.id), heads.get(&b.id), heads.len()),
        (Some(&last), Some(&other), 2),
        "every tenant's head in one read"
    );
    assert_not_found(store.audit_head(TenantId(i64::MAX)).await);
}

/// The scheduler asks [`Store::changes_due`] every second: with 100,000
/// changes a plan reading the whole table cost each second a full scan.
/// (The condition is the stores' own, with the bound time written out.)
async fn the_schedulers_question_of_every_second_is_answered_from_indexes(db: TestDb) {
    let (now, not_overdue) = match db.backend() {
        Backend::Sqlite => ("'2026-11-28T00:00:00Z'", "retrospective_overdue = 0"),
        Backend::Postgres => (
            "TIMESTAMPTZ '2026-11-28 00:00:00Z'",
            "NOT retrospective_overdue",
        ),
    };
    let plan = db
        .plan(&format!(
            "SELECT id FROM changes WHERE id IN (
                SELECT id FROM changes WHERE state IN ('approved', 'scheduled') AND approval_expires_at IS NOT NULL
                    AND approval_expires_at <= {now}
                UNION ALL SELECT id FROM changes WHERE {not_overdue} AND decided_at IS NULL
                    AND retrospective_due_at IS NOT NULL AND retrospective_due_at <= {now} AND state NOT IN ('closed', 'cancelled')
                UNION ALL SELECT id FROM changes WHERE remind_at IS NOT NULL AND remind_at <= {now}
                UNION ALL SELECT id FROM changes WHERE escalate_at IS NOT NULL AND escalate_at <= {now})
             ORDER BY id"
        ))
        .await
        .expect("a plan");
    let scans = |line: &str| line.contains("SCAN changes") || line.contains("Seq Scan on changes");
    assert!(
        !plan.lines().any(scans),
        "the due question reads every change:\n{plan}"
    );
    for index in [
        "changes_retrospective_due",
        "changes_remind",
        "changes_escalate",
    ] {
        assert!(plan.contains(index), "{index} unused:\n{plan}");
    }
}
