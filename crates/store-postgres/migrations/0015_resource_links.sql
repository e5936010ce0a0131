-- Kubernetes resources (ChangeRequests) standing for changes: one change
-- per place (cluster, namespace, kind, name), adopted again by a resource
-- re-created there. Created in the same transaction as its change.
CREATE TABLE resource_links (
    cluster        TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    tenant_id      BIGINT NOT NULL REFERENCES tenants (id),
    change_number  BIGINT NOT NULL,
    uid            TEXT NOT NULL,
    generation     BIGINT NOT NULL,
    updated_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (cluster, namespace, kind, name)
);
