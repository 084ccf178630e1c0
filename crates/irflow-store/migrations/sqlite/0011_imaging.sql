-- Outside imaging: DICOM studies brought by the patient (upload, DICOM C-STORE, CLI
-- import), indexed by study, series and instance, and matched to a case or held in the
-- reconciliation queue. The original files live in the image store (object_store);
-- only their keys are here. Patient fields are as in the files (the sending site's
-- values); the local MRN is recorded when a study is attached.
-- Instants are INTEGER microseconds since the Unix epoch (UTC); dates TEXT YYYY-MM-DD.

-- One intake: an upload, a C-STORE association, one `irflow import`.
CREATE TABLE imaging_batches (
    id             TEXT    PRIMARY KEY,
    kind           TEXT    NOT NULL CHECK (kind IN ('upload', 'cstore', 'import')),
    case_hint      INTEGER REFERENCES cases (id),
    calling_ae     TEXT,
    actor_username TEXT    NOT NULL,
    created_at     INTEGER NOT NULL
);

CREATE TABLE imaging_studies (
    id                 INTEGER PRIMARY KEY,
    study_instance_uid TEXT    NOT NULL UNIQUE,
    patient_name       TEXT    NOT NULL,
    -- irflow_dicom::normalise_name(patient_name), for matching.
    patient_name_key   TEXT    NOT NULL,
    patient_id         TEXT    NOT NULL,
    birth_date         TEXT,
    sex                TEXT,
    study_date         TEXT,
    study_description  TEXT    NOT NULL,
    accession_number   TEXT    NOT NULL,
    -- Distinct values over the series, comma-separated ('MR', 'LSPINE,TSPINE').
    modalities         TEXT    NOT NULL,
    body_parts         TEXT    NOT NULL,
    state              TEXT    NOT NULL CHECK (state IN ('matched', 'queued', 'rejected')),
    case_id            INTEGER REFERENCES cases (id),
    matched_by         TEXT    CHECK (matched_by IN ('mrn', 'dob_name', 'staff')),
    -- Why it waits in the queue (queued) or why staff rejected it (rejected).
    reason             TEXT,
    case_hint          INTEGER REFERENCES cases (id),
    source_kind        TEXT    NOT NULL CHECK (source_kind IN ('upload', 'cstore', 'import')),
    calling_ae         TEXT,
    local_mrn          TEXT,
    decided_by         TEXT,
    decided_at         INTEGER,
    -- Set once staff rejected it: it is never matched automatically again.
    rejected_once      INTEGER NOT NULL DEFAULT 0 CHECK (rejected_once IN (0, 1)),
    received_at        INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    CHECK ((state = 'matched') = (case_id IS NOT NULL)),
    CHECK (state <> 'matched' OR matched_by IS NOT NULL)
);
CREATE INDEX imaging_studies_case ON imaging_studies (case_id);
CREATE INDEX imaging_studies_state ON imaging_studies (state, received_at);

CREATE TABLE imaging_series (
    id                  INTEGER PRIMARY KEY,
    study_id            INTEGER NOT NULL REFERENCES imaging_studies (id),
    series_instance_uid TEXT    NOT NULL UNIQUE,
    modality            TEXT    NOT NULL,
    body_part           TEXT    NOT NULL,
    series_description  TEXT    NOT NULL,
    series_number       INTEGER,
    created_at          INTEGER NOT NULL
);
CREATE INDEX imaging_series_study ON imaging_series (study_id);

CREATE TABLE imaging_instances (
    id               INTEGER PRIMARY KEY,
    series_id        INTEGER NOT NULL REFERENCES imaging_series (id),
    sop_instance_uid TEXT    NOT NULL UNIQUE,
    sop_class_uid    TEXT    NOT NULL,
    object_key       TEXT    NOT NULL,
    size_bytes       INTEGER NOT NULL,
    transfer_syntax  TEXT    NOT NULL,
    instance_number  INTEGER,
    rows_count       INTEGER,
    columns_count    INTEGER,
    frames           INTEGER NOT NULL,
    -- NULL: expected to render; otherwise why it cannot be shown (it is still stored).
    render_error     TEXT,
    batch_id         TEXT    NOT NULL REFERENCES imaging_batches (id),
    received_at      INTEGER NOT NULL
);
CREATE INDEX imaging_instances_series ON imaging_instances (series_id, instance_number);
CREATE INDEX imaging_instances_batch ON imaging_instances (batch_id);
