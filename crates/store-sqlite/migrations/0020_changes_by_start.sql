-- The inbox's "this week" reads the changes due in a period across the
-- viewer's tenants by planned start.
CREATE INDEX changes_by_start ON changes (planned_start) WHERE planned_start IS NOT NULL;
