-- Kubernetes resources (ChangeRequests) standing for changes: one change
-- per place (cluster, namespace, kind, name), adopted again by a resource
-- re-created there. Created in the same transaction as its change.
CREATE TABLE resource_links (
    cluster        TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    kind           TEXT NOT NULL,
    name           TEXT NOT NULL,
    tenant_id      INTEGER NOT NULL REFERENCES tenants (id),
    change_number  INTEGER NOT NULL,
    uid            TEXT NOT NULL,
    generation     INTEGER NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (cluster, namespace, kind, name)
);
