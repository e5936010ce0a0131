-- Calendar feeds: a tenant's iCalendar feed behind a revocable token
-- (stored hashed), made by one of the tenant's people.
CREATE TABLE calendar_feeds (
    id          INTEGER PRIMARY KEY,
    tenant_id   INTEGER NOT NULL REFERENCES tenants (id),
    user_id     INTEGER NOT NULL REFERENCES users (id),
    name        TEXT NOT NULL,
    token_hash  TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX calendar_feeds_by_tenant ON calendar_feeds (tenant_id, id);
-- The calendar reads a tenant's changes by planned slot.
CREATE INDEX changes_by_planned_start ON changes (tenant_id, planned_start) WHERE planned_start IS NOT NULL;
