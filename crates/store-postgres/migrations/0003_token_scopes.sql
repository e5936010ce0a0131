-- Scoped tokens. gate_tenant_id: a pipeline's token, reaching only the
-- gate API of that tenant. agent_cluster: a cluster agent's token,
-- reaching only that cluster's bundle. Both NULL: a user's full token.
ALTER TABLE api_tokens ADD COLUMN gate_tenant_id BIGINT REFERENCES tenants (id);
ALTER TABLE api_tokens ADD COLUMN agent_cluster TEXT;
ALTER TABLE api_tokens ADD CONSTRAINT api_tokens_one_scope
    CHECK (gate_tenant_id IS NULL OR agent_cluster IS NULL);
