-- How far each scheduler job has got (e.g. `windows:<tenant id>`: every
-- window boundary up to `at` was recorded). A job advances its mark in
-- the same transaction as the events it appends, only from the mark it
-- read: a restart resumes from the mark, and a second replica's pass
-- over the same stretch finds the mark moved and writes nothing.
CREATE TABLE job_marks (
    key  TEXT PRIMARY KEY,
    at   TEXT NOT NULL
);
