-- Where each change raised from a Kubernetes resource was raised (its
-- ChangeRequest's cluster and namespace), kept after the resource's link
-- ends: the operator mirrors into a namespace only changes raised
-- elsewhere (the portal, e-mail, the API, another cluster), never one
-- beside its own resource. Written in the transaction that creates it.
CREATE TABLE change_origins (
    tenant_id      BIGINT NOT NULL REFERENCES tenants (id),
    change_number  BIGINT NOT NULL,
    cluster        TEXT NOT NULL,
    namespace      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, change_number)
);
INSERT INTO change_origins (tenant_id, change_number, cluster, namespace)
SELECT tenant_id, change_number, cluster, namespace FROM resource_links WHERE kind = 'ChangeRequest';
