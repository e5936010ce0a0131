-- The proposal a change is raised under, kept beside its content as its
-- planned slot is: a proposal's page and the proposals list read their
-- changes by index instead of scanning every change created since.
ALTER TABLE changes ADD COLUMN proposal TEXT;
UPDATE changes SET proposal = NULLIF(content::jsonb ->> 'proposal', '')
 WHERE content::jsonb ->> 'proposal' IS NOT NULL;
CREATE INDEX changes_by_proposal ON changes (tenant_id, proposal, id) WHERE proposal IS NOT NULL;
