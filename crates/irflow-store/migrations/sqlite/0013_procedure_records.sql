-- The procedure record (the radiologist's record of what was done) and the follow-up.
-- A record is signed once: a signed row is never changed or removed; an amendment is
-- a new version (a draft, then signed) and the older versions stay as they were.
-- The follow-up answers (the patient's form behind their link, or a nurse's call)
-- are added, never changed. Amounts are TEXT decimals exactly as checked ("1.5");
-- instants are INTEGER microseconds since the Unix epoch (UTC); dates YYYY-MM-DD.

CREATE TABLE procedure_records (
    id                  INTEGER PRIMARY KEY,
    case_id             INTEGER NOT NULL REFERENCES cases (id),
    version             INTEGER NOT NULL CHECK (version >= 1),
    procedure_code      TEXT,
    procedure_name      TEXT,
    levels              TEXT,
    side                TEXT,
    guidance            TEXT,
    -- 'none' when no contrast, steroid or local anaesthetic was given.
    contrast_agent      TEXT,
    contrast_ml         TEXT,
    steroid_agent       TEXT,
    steroid_mg          TEXT,
    anaesthetic_agent   TEXT,
    anaesthetic_mg      TEXT,
    fluoroscopy_seconds TEXT,
    dap_mgycm2          TEXT,
    dlp_mgycm           TEXT,
    pain_before         TEXT,
    pain_after          TEXT,
    complication        TEXT,
    complication_text   TEXT,
    notes               TEXT,
    amendment_reason    TEXT,
    created_by          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    signed_by           TEXT,
    signed_by_user_id   INTEGER REFERENCES users (id),
    signed_by_name      TEXT,
    signed_at           INTEGER,
    UNIQUE (case_id, version),
    CHECK (signed_at IS NULL OR (signed_by IS NOT NULL AND signed_by_user_id IS NOT NULL
        AND procedure_code IS NOT NULL AND side IS NOT NULL AND guidance IS NOT NULL
        AND contrast_agent IS NOT NULL AND steroid_agent IS NOT NULL
        AND anaesthetic_agent IS NOT NULL AND pain_before IS NOT NULL
        AND pain_after IS NOT NULL
        AND complication IN ('none', 'vasovagal', 'dural_puncture', 'bleeding', 'other')
        AND (version = 1 OR amendment_reason IS NOT NULL)))
);
CREATE INDEX procedure_records_case ON procedure_records (case_id, version);

-- Signed once: a signed version is never changed; no version is ever removed.
CREATE TRIGGER procedure_records_signed_no_update BEFORE UPDATE ON procedure_records
WHEN OLD.signed_at IS NOT NULL
BEGIN SELECT RAISE(ABORT, 'a signed procedure record cannot be changed; amend it'); END;
CREATE TRIGGER procedure_records_no_delete BEFORE DELETE ON procedure_records
BEGIN SELECT RAISE(ABORT, 'procedure records are never removed'); END;

CREATE TABLE follow_ups (
    id                  INTEGER PRIMARY KEY,
    case_id             INTEGER NOT NULL REFERENCES cases (id),
    due_on              TEXT    NOT NULL,
    method              TEXT    NOT NULL CHECK (method IN ('patient_form', 'phone')),
    pain_now            INTEGER NOT NULL CHECK (pain_now BETWEEN 0 AND 10),
    relief_percent      INTEGER NOT NULL CHECK (relief_percent BETWEEN 0 AND 100),
    problems            TEXT,
    -- Whether these answers closed the case (a patient reporting problems leaves it
    -- open for the nurse's call).
    closed_case         INTEGER NOT NULL CHECK (closed_case IN (0, 1)),
    recorded_by         TEXT    NOT NULL,
    recorded_by_user_id INTEGER REFERENCES users (id),
    recorded_at         INTEGER NOT NULL
);
CREATE INDEX follow_ups_case ON follow_ups (case_id, id);

CREATE TRIGGER follow_ups_no_update BEFORE UPDATE ON follow_ups
BEGIN SELECT RAISE(ABORT, 'follow-ups are append-only'); END;
CREATE TRIGGER follow_ups_no_delete BEFORE DELETE ON follow_ups
BEGIN SELECT RAISE(ABORT, 'follow-ups are append-only'); END;

-- The referring provider's email, for the procedure report (optional).
ALTER TABLE users ADD COLUMN email TEXT;
