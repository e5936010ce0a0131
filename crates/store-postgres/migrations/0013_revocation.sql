-- A disabled user signs in and acts no more: their sessions end, their
-- tokens are revoked, and authentication finds them no longer.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMPTZ;
-- When a token was last used (written at most once a minute).
ALTER TABLE api_tokens ADD COLUMN last_used_at TIMESTAMPTZ;
CREATE INDEX api_tokens_by_user ON api_tokens (user_id);
CREATE INDEX api_tokens_by_gate_tenant ON api_tokens (gate_tenant_id) WHERE gate_tenant_id IS NOT NULL;
