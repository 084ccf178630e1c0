-- The procedure day: the pre-procedure checklist (each answer with who and when),
-- consent, the time-out, the start and end of the procedure, vital signs in
-- recovery, and the discharge. One day per appointment (a case rebooked after a
-- no-show has a new appointment and a new day).
-- Instants are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE procedure_days (
    appointment_id     INTEGER PRIMARY KEY REFERENCES appointments (id),
    case_id            INTEGER NOT NULL REFERENCES cases (id),
    -- When the checklist (time-out included) was last found complete; NULL while it is not.
    checklist_done_at  INTEGER,
    -- Why the checklist is stopped, while it is (a blood thinner not held, ...).
    checklist_stopped  TEXT,
    -- Minutes of monitoring after the procedure for a patient who drives (from the
    -- screening decision / rule pack, fixed when the escort item is answered).
    monitoring_minutes INTEGER CHECK (monitoring_minutes IS NULL OR monitoring_minutes BETWEEN 0 AND 240),
    started_at         INTEGER,
    started_by         TEXT,
    ended_at           INTEGER,
    ended_by           TEXT,
    discharged_at      INTEGER,
    discharged_by      TEXT,
    -- A nurse's reason for discharging before the end of monitoring.
    discharge_override TEXT,
    -- The rule-pack ids of the discharge criteria confirmed, space separated.
    discharge_criteria TEXT,
    updated_at         INTEGER NOT NULL,
    CHECK (ended_at IS NULL OR started_at IS NOT NULL),
    CHECK (discharged_at IS NULL OR ended_at IS NOT NULL)
);
CREATE INDEX procedure_days_case ON procedure_days (case_id);

-- Every answer given, oldest first; the latest per item counts. A stop is kept as
-- given (it is the record of why the day stopped).
CREATE TABLE checklist_answers (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    item           TEXT    NOT NULL CHECK (item IN ('identity', 'escort', 'blood_thinners', 'glucose',
                                                    'allergies', 'premedication', 'pregnancy')),
    value          TEXT    NOT NULL,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('done', 'stop')),
    message        TEXT,
    note           TEXT,
    recorded_by    TEXT    NOT NULL,
    recorded_role  TEXT,
    recorded_at    INTEGER NOT NULL
);
CREATE INDEX checklist_answers_day ON checklist_answers (appointment_id, item, id);

CREATE TABLE consents (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    method         TEXT    NOT NULL CHECK (method IN ('on_screen', 'paper')),
    -- The patient or their representative, as written.
    signer         TEXT    NOT NULL,
    -- The drawn signature, a data:image/png;base64 URL (on screen only).
    signature_png  TEXT,
    witness        TEXT    NOT NULL,
    -- The risks explained, one per line, as the rule pack listed them then.
    risks          TEXT    NOT NULL,
    rule_pack      TEXT    NOT NULL,
    recorded_by    TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL,
    CHECK ((method = 'on_screen') = (signature_png IS NOT NULL))
);
CREATE INDEX consents_day ON consents (appointment_id, id);

CREATE TABLE time_outs (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    patient_ok     INTEGER NOT NULL CHECK (patient_ok IN (0, 1)),
    procedure_ok   INTEGER NOT NULL CHECK (procedure_ok IN (0, 1)),
    level_ok       INTEGER NOT NULL CHECK (level_ok IN (0, 1)),
    side_ok        INTEGER NOT NULL CHECK (side_ok IN (0, 1)),
    -- What was read out: the ordered procedure, levels and side.
    procedure_code TEXT    NOT NULL,
    levels         TEXT,
    side           TEXT,
    recorded_by    TEXT    NOT NULL,
    recorded_role  TEXT,
    recorded_at    INTEGER NOT NULL
);
CREATE INDEX time_outs_day ON time_outs (appointment_id, id);

CREATE TABLE vitals (
    id             INTEGER PRIMARY KEY,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    taken_at       INTEGER NOT NULL,
    systolic       INTEGER,
    diastolic      INTEGER,
    pulse          INTEGER,
    spo2           INTEGER,
    pain           INTEGER CHECK (pain IS NULL OR pain BETWEEN 0 AND 10),
    notes          TEXT    NOT NULL,
    recorded_by    TEXT    NOT NULL,
    recorded_at    INTEGER NOT NULL
);
CREATE INDEX vitals_day ON vitals (appointment_id, taken_at);

-- Clinical records of the day are added to, never changed or removed.
CREATE TRIGGER checklist_answers_no_update BEFORE UPDATE ON checklist_answers
BEGIN SELECT RAISE(ABORT, 'checklist answers are append-only'); END;
CREATE TRIGGER checklist_answers_no_delete BEFORE DELETE ON checklist_answers
BEGIN SELECT RAISE(ABORT, 'checklist answers are append-only'); END;
CREATE TRIGGER consents_no_update BEFORE UPDATE ON consents
BEGIN SELECT RAISE(ABORT, 'consents are append-only'); END;
CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents
BEGIN SELECT RAISE(ABORT, 'consents are append-only'); END;
CREATE TRIGGER time_outs_no_update BEFORE UPDATE ON time_outs
BEGIN SELECT RAISE(ABORT, 'time-outs are append-only'); END;
CREATE TRIGGER time_outs_no_delete BEFORE DELETE ON time_outs
BEGIN SELECT RAISE(ABORT, 'time-outs are append-only'); END;
CREATE TRIGGER vitals_no_update BEFORE UPDATE ON vitals
BEGIN SELECT RAISE(ABORT, 'vitals are append-only'); END;
CREATE TRIGGER vitals_no_delete BEFORE DELETE ON vitals
BEGIN SELECT RAISE(ABORT, 'vitals are append-only'); END;
