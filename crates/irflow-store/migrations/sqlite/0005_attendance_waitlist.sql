-- Attendance on the day, the radiologist's guidance plan, patients' scheduling
-- preferences and the waitlist.

-- Whether the patient came: set by check-in ('arrived') or by recording a no-show
-- (the appointment is then also cancelled and its reservations released).
ALTER TABLE appointments ADD COLUMN attendance TEXT CHECK (attendance IN ('arrived', 'no_show'));
ALTER TABLE appointments ADD COLUMN attendance_at INTEGER;

-- The radiologist's plan narrows the rooms a case may be booked in, e.g. CT
-- guidance without contrast for a patient with a contrast allergy.
ALTER TABLE cases ADD COLUMN planned_guidance TEXT CHECK (planned_guidance IN ('fluoroscopy', 'ct'));
ALTER TABLE cases ADD COLUMN planned_contrast INTEGER CHECK (planned_contrast IN (0, 1));
ALTER TABLE cases ADD COLUMN plan_note TEXT;

-- What the patient said suits them; options are ranked by it.
CREATE TABLE case_preferences (
    case_id     INTEGER NOT NULL PRIMARY KEY REFERENCES cases (id),
    -- ISO weekday numbers (1 = Monday), comma separated; empty: any day.
    days        TEXT    NOT NULL,
    time_of_day TEXT CHECK (time_of_day IN ('morning', 'afternoon')),
    note        TEXT    NOT NULL,
    updated_by  TEXT    NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- Patients who want an earlier date. Freed time is offered to the cases on it that
-- are ready and safe then. At most one active entry per case.
CREATE TABLE waitlist (
    id             INTEGER PRIMARY KEY,
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    note           TEXT    NOT NULL,
    added_by       TEXT    NOT NULL,
    added_at       INTEGER NOT NULL,
    removed_at     INTEGER,
    removed_reason TEXT
);
CREATE UNIQUE INDEX waitlist_active ON waitlist (case_id) WHERE removed_at IS NULL;
CREATE INDEX appointments_status_start ON appointments (status, starts_at);
