-- changegate on PostgreSQL: tenants, people, policy, changes, approvals and
-- the per-tenant audit chain; the twin of crates/store-sqlite's 0001.
-- JSON (specs, content, plans, audit detail) is kept as TEXT, not jsonb:
-- the audit hash covers the exact stored text, and jsonb would reorder keys.

CREATE TABLE tenants (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    -- the audit chain's head: the last event's sequence number and hash
    audit_seq   BIGINT NOT NULL DEFAULT 0,
    audit_hash  TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);

CREATE TABLE users (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('msp', 'client')),
    admin          BOOLEAN NOT NULL DEFAULT FALSE,
    tenant_id      BIGINT REFERENCES tenants (id),
    password_hash  TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    CHECK ((kind = 'client') = (tenant_id IS NOT NULL)),
    CHECK (kind = 'msp' OR NOT admin)
);

CREATE TABLE role_bindings (
    user_id    BIGINT NOT NULL REFERENCES users (id),
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id),
    role       TEXT NOT NULL,
    PRIMARY KEY (user_id, tenant_id, role)
);
CREATE INDEX role_bindings_by_tenant ON role_bindings (tenant_id, role);

CREATE TABLE api_tokens (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);

-- Boards, windows, templates, configuration items: JSON specs by name.
CREATE TABLE tenant_objects (
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE TABLE policies (
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    version     BIGINT NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE delegations (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    from_user   BIGINT NOT NULL REFERENCES users (id),
    to_user     BIGINT NOT NULL REFERENCES users (id),
    starts_at   TIMESTAMPTZ NOT NULL,
    ends_at     TIMESTAMPTZ NOT NULL
);

-- The change number CHG-<n> is the id.
CREATE TABLE changes (
    id                     BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id              BIGINT NOT NULL REFERENCES tenants (id),
    kind                   TEXT NOT NULL,
    state                  TEXT NOT NULL,
    title                  TEXT NOT NULL,
    requester_id           BIGINT NOT NULL REFERENCES users (id),
    implementer_id         BIGINT REFERENCES users (id),
    risk_level             TEXT,
    risk_score             BIGINT,
    revision               BIGINT NOT NULL,
    fingerprint            TEXT,
    policy_version         BIGINT,
    plan                   TEXT NOT NULL,
    content                TEXT NOT NULL,
    planned_start          TIMESTAMPTZ,
    planned_end            TIMESTAMPTZ,
    submitted_at           TIMESTAMPTZ,
    decided_at             TIMESTAMPTZ,
    approval_expires_at    TIMESTAMPTZ,
    retrospective_due_at   TIMESTAMPTZ,
    retrospective_overdue  BOOLEAN NOT NULL DEFAULT FALSE,
    created_at             TIMESTAMPTZ NOT NULL,
    updated_at             TIMESTAMPTZ NOT NULL,
    version                BIGINT NOT NULL
);
CREATE INDEX changes_by_tenant ON changes (tenant_id, id DESC);
CREATE INDEX changes_by_tenant_state ON changes (tenant_id, state, id DESC);
CREATE INDEX changes_by_requester ON changes (requester_id, id DESC);
CREATE INDEX changes_due ON changes (state, approval_expires_at);

CREATE TABLE change_revisions (
    change_id    BIGINT NOT NULL REFERENCES changes (id),
    revision     BIGINT NOT NULL,
    fingerprint  TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_by   BIGINT NOT NULL REFERENCES users (id),
    created_at   TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (change_id, revision)
);

CREATE TABLE approvals (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       BIGINT NOT NULL REFERENCES tenants (id),
    change_id       BIGINT NOT NULL REFERENCES changes (id),
    revision        BIGINT NOT NULL,
    approver_id     BIGINT NOT NULL REFERENCES users (id),
    on_behalf_of    BIGINT REFERENCES users (id),
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    policy_version  BIGINT NOT NULL,
    at              TIMESTAMPTZ NOT NULL
);
CREATE INDEX approvals_by_change ON approvals (change_id, id);

CREATE TABLE comments (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id),
    change_id  BIGINT NOT NULL REFERENCES changes (id),
    author_id  BIGINT NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    at         TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_events (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  BIGINT NOT NULL REFERENCES tenants (id),
    seq        BIGINT NOT NULL,
    at         TIMESTAMPTZ NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL,
    subject    TEXT NOT NULL,
    detail     TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL
);
CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);

-- Approvals, revisions and audit events are append-only for the
-- application; the hash chain catches what is done around these triggers.
-- TG_ARGV[0] names the records in the message, which the store maps to
-- StoreError::AppendOnly by its "append-only" wording.
CREATE FUNCTION refuse_append_only_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% are append-only', TG_ARGV[0];
END
$$;

CREATE TRIGGER approvals_append_only BEFORE UPDATE OR DELETE ON approvals
    FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change('approvals');
CREATE TRIGGER approvals_append_only_truncate BEFORE TRUNCATE ON approvals
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change('approvals');
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change('audit events');
CREATE TRIGGER audit_events_append_only_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change('audit events');
CREATE TRIGGER revisions_append_only BEFORE UPDATE OR DELETE ON change_revisions
    FOR EACH ROW EXECUTE FUNCTION refuse_append_only_change('revisions');
CREATE TRIGGER revisions_append_only_truncate BEFORE TRUNCATE ON change_revisions
    FOR EACH STATEMENT EXECUTE FUNCTION refuse_append_only_change('revisions');
