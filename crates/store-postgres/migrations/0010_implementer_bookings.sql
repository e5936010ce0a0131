-- Where an implementer is booked: their changes by planned slot, across
-- every tenant (a release checks its implementers are not double-booked).
CREATE INDEX changes_by_implementer ON changes (implementer_id, planned_start)
    WHERE implementer_id IS NOT NULL AND planned_start IS NOT NULL;
