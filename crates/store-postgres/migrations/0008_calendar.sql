-- Calendar feeds: a tenant's iCalendar feed behind a revocable token
-- (stored hashed), made by one of the tenant's people.
CREATE TABLE calendar_feeds (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   BIGINT NOT NULL REFERENCES tenants (id),
    user_id     BIGINT NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TIMESTAMPTZ NOT NULL,
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX calendar_feeds_by_tenant ON calendar_feeds (tenant_id, id);
-- The calendar reads a tenant's changes by planned slot.
CREATE INDEX changes_by_planned_start ON changes (tenant_id, planned_start) WHERE planned_start IS NOT NULL;
