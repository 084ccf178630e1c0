-- Platform schema: people, sign-in, patients, cases with their timeline, audit.
-- Instants are INTEGER microseconds since the Unix epoch (UTC); dates are TEXT YYYY-MM-DD.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('admin', 'scheduler', 'nurse', 'radiologist', 'referrer')),
    organization  TEXT,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    disabled_at   INTEGER
);

CREATE TABLE sessions (
    token_hash   TEXT    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users (id),
    token_hash   TEXT    NOT NULL UNIQUE,
    label        TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
);

CREATE TABLE login_attempts (
    id        INTEGER PRIMARY KEY,
    username  TEXT    NOT NULL,
    client    TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1))
);
CREATE INDEX login_attempts_username ON login_attempts (username, at);
CREATE INDEX login_attempts_client ON login_attempts (client, at);

CREATE TABLE patients (
    id                 INTEGER PRIMARY KEY,
    mrn                TEXT    UNIQUE,
    family_name        TEXT    NOT NULL,
    given_name         TEXT    NOT NULL,
    date_of_birth      TEXT    NOT NULL,
    phone              TEXT,
    email              TEXT,
    preferred_language TEXT    NOT NULL,
    created_at         INTEGER NOT NULL
);
CREATE INDEX patients_name_dob ON patients (family_name, given_name, date_of_birth);

CREATE TABLE cases (
    id             INTEGER PRIMARY KEY,
    patient_id     INTEGER NOT NULL REFERENCES patients (id),
    referrer_id    INTEGER NOT NULL REFERENCES users (id),
    procedure_code TEXT    NOT NULL,
    procedure_name TEXT    NOT NULL,
    state          TEXT    NOT NULL,
    deferred_until TEXT,
    version        INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE INDEX cases_state ON cases (state);
CREATE INDEX cases_referrer ON cases (referrer_id);

CREATE TABLE case_events (
    id             INTEGER PRIMARY KEY,
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    action         TEXT    NOT NULL,
    from_state     TEXT,
    to_state       TEXT    NOT NULL,
    actor_user_id  INTEGER,
    actor_username TEXT    NOT NULL,
    actor_role     TEXT,
    at             INTEGER NOT NULL,
    reason         TEXT,
    deferred_until TEXT
);
CREATE INDEX case_events_case ON case_events (case_id, id);

CREATE TABLE audit_events (
    id             INTEGER PRIMARY KEY,
    at             INTEGER NOT NULL,
    actor_user_id  INTEGER,
    actor_username TEXT    NOT NULL,
    actor_role     TEXT,
    action         TEXT    NOT NULL,
    entity_type    TEXT    NOT NULL,
    entity_id      TEXT,
    outcome        TEXT    NOT NULL CHECK (outcome IN ('success', 'denied', 'not_found', 'invalid', 'error')),
    detail         TEXT,
    client         TEXT
);
CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_entity ON audit_events (entity_type, entity_id);
CREATE INDEX audit_events_actor ON audit_events (actor_username);

-- The audit log and the case timeline are append-only: the application can insert,
-- never change or remove.
CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'audit events are append-only'); END;
CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events
BEGIN SELECT RAISE(ABORT, 'case events are append-only'); END;
CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events
BEGIN SELECT RAISE(ABORT, 'case events are append-only'); END;
