-- Failed sign-ins per address (by the hash of the address, never the
-- address itself): counted in the database, so every replica shares the
-- limit and its memory is bounded by the addresses tried lately.
CREATE TABLE sign_in_limits (
    address_hash TEXT PRIMARY KEY,
    -- The latest failures (JSON array of RFC 3339 times), at most a few.
    failures     TEXT NOT NULL,
    last_at      TEXT NOT NULL
);
CREATE INDEX sign_in_limits_by_last ON sign_in_limits (last_at);
