-- Screening: each screening call's facts and decision (JSON, with the rule pack's
-- name and version), the actions it requires, and the case's current safe date.

CREATE TABLE screenings (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER NOT NULL REFERENCES cases (id),
    facts              TEXT    NOT NULL,
    decision           TEXT    NOT NULL,
    outcome            TEXT    NOT NULL CHECK (outcome IN ('clear', 'clear_with_actions', 'review', 'defer')),
    earliest_safe_date TEXT,
    pack_name          TEXT    NOT NULL,
    pack_version       TEXT    NOT NULL,
    evaluated_for      TEXT,
    uses_unverified    INTEGER NOT NULL CHECK (uses_unverified IN (0, 1)),
    screened_by        TEXT    NOT NULL,
    screened_role      TEXT,
    at                 INTEGER NOT NULL
);
CREATE INDEX screenings_case ON screenings (case_id, id);

CREATE TABLE screening_actions (
    id             INTEGER PRIMARY KEY,
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    screening_id   INTEGER NOT NULL REFERENCES screenings (id),
    rule_id        TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    description    TEXT    NOT NULL,
    status         TEXT    NOT NULL CHECK (status IN ('open', 'done', 'superseded')),
    cleared        INTEGER CHECK (cleared IN (0, 1)),
    decided_by     TEXT,
    notes          TEXT,
    completed_by   TEXT,
    completed_role TEXT,
    completed_at   INTEGER
);
CREATE INDEX screening_actions_case ON screening_actions (case_id, status);

ALTER TABLE cases ADD COLUMN screening_outcome TEXT;
ALTER TABLE cases ADD COLUMN earliest_safe_date TEXT;
