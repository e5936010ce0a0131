-- Change proposals (seed 001): a major change raised first as a proposal,
-- authorized by the boards the policy names. PRP-<n> is the id. The
-- proposal as raised (JSON, with its frozen authorization plan) is
-- written once; decisions on it are events on the tenant's audit chain.
CREATE TABLE proposals (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    spec        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX proposals_by_tenant ON proposals (tenant_id, id);
