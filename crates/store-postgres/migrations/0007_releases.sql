-- Releases (DESIGN §6): approved changes of one or several tenants
-- delivered together. The phase authorizations, runbook, overrides,
-- rollback and outcome are one JSON record written under the release's
-- version; which changes it delivers is a table, so a change's releases
-- and a tenant's releases are found by index.
CREATE TABLE releases (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name           TEXT NOT NULL,
    owner_id       BIGINT NOT NULL REFERENCES users (id),
    state          TEXT NOT NULL,
    planned_start  TIMESTAMPTZ,
    planned_end    TIMESTAMPTZ,
    record         TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    version        BIGINT NOT NULL
);

CREATE TABLE release_changes (
    release_id  BIGINT NOT NULL REFERENCES releases (id),
    position    BIGINT NOT NULL,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    change_id   BIGINT NOT NULL REFERENCES changes (id),
    PRIMARY KEY (release_id, change_id)
);
CREATE INDEX release_changes_by_change ON release_changes (change_id, release_id);
CREATE INDEX release_changes_by_tenant ON release_changes (tenant_id, release_id);
