-- changegate on SQLite: tenants, people, policy, changes, approvals and the
-- per-tenant audit chain. Timestamps are RFC 3339 text in UTC.

CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY,
    slug        TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL,
    time_zone   TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    -- the audit chain's head: the last event's sequence number and hash
    audit_seq   INTEGER NOT NULL DEFAULT 0,
    audit_hash  TEXT NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000'
);

CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    email          TEXT NOT NULL UNIQUE,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('msp', 'client')),
    admin          INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    tenant_id      INTEGER REFERENCES tenants (id),
    password_hash  TEXT,
    created_at     TEXT NOT NULL,
    CHECK ((kind = 'client') = (tenant_id IS NOT NULL)),
    CHECK (kind = 'msp' OR admin = 0)
);

CREATE TABLE role_bindings (
    user_id    INTEGER NOT NULL REFERENCES users (id),
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    role       TEXT NOT NULL,
    PRIMARY KEY (user_id, tenant_id, role)
);
CREATE INDEX role_bindings_by_tenant ON role_bindings (tenant_id, role);

CREATE TABLE api_tokens (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);

-- Boards, windows, templates, configuration items: JSON specs by name.
CREATE TABLE tenant_objects (
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, kind, name)
);

CREATE TABLE policies (
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    version     INTEGER NOT NULL,
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);

CREATE TABLE delegations (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    from_user   INTEGER NOT NULL REFERENCES users (id),
    to_user     INTEGER NOT NULL REFERENCES users (id),
    starts_at   TEXT NOT NULL,
    ends_at     TEXT NOT NULL
);

-- The change number CHG-<n> is the id.
CREATE TABLE changes (
    id                     INTEGER PRIMARY KEY,
    tenant_id              INTEGER NOT NULL REFERENCES tenants (id),
    kind                   TEXT NOT NULL,
    state                  TEXT NOT NULL,
    title                  TEXT NOT NULL,
    requester_id           INTEGER NOT NULL REFERENCES users (id),
    implementer_id         INTEGER REFERENCES users (id),
    risk_level             TEXT,
    risk_score             INTEGER,
    revision               INTEGER NOT NULL,
    fingerprint            TEXT,
    policy_version         INTEGER,
    plan                   TEXT NOT NULL,
    content                TEXT NOT NULL,
    planned_start          TEXT,
    planned_end            TEXT,
    submitted_at           TEXT,
    decided_at             TEXT,
    approval_expires_at    TEXT,
    retrospective_due_at   TEXT,
    retrospective_overdue  INTEGER NOT NULL DEFAULT 0,
    created_at             TEXT NOT NULL,
    updated_at             TEXT NOT NULL,
    version                INTEGER NOT NULL
);
CREATE INDEX changes_by_tenant ON changes (tenant_id, id DESC);
CREATE INDEX changes_by_tenant_state ON changes (tenant_id, state, id DESC);
CREATE INDEX changes_by_requester ON changes (requester_id, id DESC);
CREATE INDEX changes_due ON changes (state, approval_expires_at);

CREATE TABLE change_revisions (
    change_id    INTEGER NOT NULL REFERENCES changes (id),
    revision     INTEGER NOT NULL,
    fingerprint  TEXT NOT NULL,
    content      TEXT NOT NULL,
    created_by   INTEGER NOT NULL REFERENCES users (id),
    created_at   TEXT NOT NULL,
    PRIMARY KEY (change_id, revision)
);

CREATE TABLE approvals (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants (id),
    change_id       INTEGER NOT NULL REFERENCES changes (id),
    revision        INTEGER NOT NULL,
    approver_id     INTEGER NOT NULL REFERENCES users (id),
    on_behalf_of    INTEGER REFERENCES users (id),
    decision        TEXT NOT NULL CHECK (decision IN ('approve', 'reject')),
    comment         TEXT NOT NULL,
    channel         TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    policy_version  INTEGER NOT NULL,
    at              TEXT NOT NULL
);
CREATE INDEX approvals_by_change ON approvals (change_id, id);

CREATE TABLE comments (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    change_id  INTEGER NOT NULL REFERENCES changes (id),
    author_id  INTEGER NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    at         TEXT NOT NULL
);

CREATE TABLE audit_events (
    id         INTEGER PRIMARY KEY,
    tenant_id  INTEGER NOT NULL REFERENCES tenants (id),
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
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
CREATE TRIGGER approvals_append_only_update BEFORE UPDATE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;
CREATE TRIGGER approvals_append_only_delete BEFORE DELETE ON approvals
BEGIN SELECT RAISE(ABORT, 'approvals are append-only'); END;
CREATE TRIGGER audit_events_append_only_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_append_only_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER revisions_append_only_update BEFORE UPDATE ON change_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
CREATE TRIGGER revisions_append_only_delete BEFORE DELETE ON change_revisions
BEGIN SELECT RAISE(ABORT, 'revisions are append-only'); END;
