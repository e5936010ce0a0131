-- When a change awaiting approval reminds its undecided approvers, and
-- when it is escalated to the policy's backup approver: set at
-- submission from the policy's delays, cleared by the scheduler once done.
ALTER TABLE changes ADD COLUMN remind_at TIMESTAMPTZ;
ALTER TABLE changes ADD COLUMN escalate_at TIMESTAMPTZ;
-- The backup approver a change was escalated to (for its current revision).
ALTER TABLE changes ADD COLUMN escalated_to BIGINT REFERENCES users (id);
CREATE INDEX changes_remind ON changes (remind_at) WHERE remind_at IS NOT NULL;
CREATE INDEX changes_escalate ON changes (escalate_at) WHERE escalate_at IS NOT NULL;
-- A change's page shows its own events: read by subject, not the whole chain.
CREATE INDEX audit_events_by_subject ON audit_events (tenant_id, subject, id);
