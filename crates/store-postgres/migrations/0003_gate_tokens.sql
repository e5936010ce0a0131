-- A token scoped to the gate API of one tenant (pipelines); NULL: a
-- user's full API token.
ALTER TABLE api_tokens ADD COLUMN gate_tenant_id BIGINT REFERENCES tenants (id);
