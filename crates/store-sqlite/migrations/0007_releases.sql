-- Releases (DESIGN §6): approved changes of one or several tenants
-- delivered together. The phase authorizations, runbook, overrides,
-- rollback and outcome are one JSON record written under the release's
-- version; which changes it delivers is a table, so a change's releases
-- and a tenant's releases are found by index.
CREATE TABLE releases (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL,
    owner_id       INTEGER NOT NULL REFERENCES users (id),
    state          TEXT NOT NULL,
    planned_start  TEXT,
    planned_end    TEXT,
    record         TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    version        INTEGER NOT NULL
);

CREATE TABLE release_changes (
    release_id  INTEGER NOT NULL REFERENCES releases (id),
    position    INTEGER NOT NULL,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    change_id   INTEGER NOT NULL REFERENCES changes (id),
    PRIMARY KEY (release_id, change_id)
);
CREATE INDEX release_changes_by_change ON release_changes (change_id, release_id);
CREATE INDEX release_changes_by_tenant ON release_changes (tenant_id, release_id);
