-- Messages to send, written in the transaction of the write that causes
-- them; the sender job delivers each once, retrying while the relay is
-- down. A sent message's body is cleared: its approval link lives only in
-- the delivered e-mail.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    tenant_id       INTEGER NOT NULL REFERENCES tenants (id),
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    sent_at         TEXT,
    last_error      TEXT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL;

-- Approval links sent by e-mail, by the hash of their token: bound to one
-- approver and one revision of one change, single use, expiring; for
-- changes at or above the policy's risk level, also a one-time code.
CREATE TABLE approval_links (
    token_hash    TEXT PRIMARY KEY,
    tenant_id     INTEGER NOT NULL REFERENCES tenants (id),
    change_id     INTEGER NOT NULL REFERENCES changes (id),
    revision      INTEGER NOT NULL,
    approver_id   INTEGER NOT NULL REFERENCES users (id),
    code_hash     TEXT,
    expires_at    TEXT NOT NULL,
    used_at       TEXT
);
