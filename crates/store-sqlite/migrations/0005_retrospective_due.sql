-- The scheduler asks every second which changes are due: an approval
-- that expires, or an emergency change whose retrospective approval is
-- overdue. Without this index the second half of that question read
-- every change of every tenant each second.
CREATE INDEX changes_retrospective_due ON changes (retrospective_due_at)
    WHERE retrospective_overdue = 0 AND decided_at IS NULL AND retrospective_due_at IS NOT NULL;
