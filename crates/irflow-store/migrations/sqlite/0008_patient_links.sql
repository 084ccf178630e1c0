-- Patient links: a personal link staff send to a patient (email, SMS or read out on
-- the phone). The patient opens it, confirms their date of birth and sees their
-- appointment and instructions. The link's secret is never stored, only its SHA-256;
-- after too many wrong dates of birth the link locks and staff issue a new one.
-- Instants are INTEGER microseconds since the Unix epoch (UTC).

CREATE TABLE patient_links (
    id                 INTEGER PRIMARY KEY,
    case_id            INTEGER NOT NULL REFERENCES cases (id),
    token_hash         TEXT    NOT NULL UNIQUE,
    channel            TEXT    NOT NULL CHECK (channel IN ('email', 'sms', 'none')),
    -- The outbox message that carried it, when sent by email or SMS.
    message_id         INTEGER REFERENCES messages (id),
    created_by         TEXT    NOT NULL,
    created_by_user_id INTEGER REFERENCES users (id),
    created_at         INTEGER NOT NULL,
    expires_at         INTEGER NOT NULL,
    failed_attempts    INTEGER NOT NULL DEFAULT 0,
    locked_at          INTEGER,
    revoked_at         INTEGER,
    revoked_by         TEXT,
    last_used_at       INTEGER
);
CREATE INDEX patient_links_case ON patient_links (case_id, id);

-- A patient's session after the date-of-birth check: a random cookie value, stored
-- hashed, bound to one link, short-lived (idle timeout and absolute expiry).
CREATE TABLE patient_sessions (
    token_hash   TEXT    PRIMARY KEY,
    link_id      INTEGER NOT NULL REFERENCES patient_links (id),
    csrf_token   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX patient_sessions_link ON patient_sessions (link_id);

-- Every date-of-birth attempt, also on unknown links (link_id NULL), so that a client
-- trying many links is slowed down across processes.
CREATE TABLE patient_link_attempts (
    id        INTEGER PRIMARY KEY,
    link_id   INTEGER REFERENCES patient_links (id),
    client    TEXT    NOT NULL,
    at        INTEGER NOT NULL,
    succeeded INTEGER NOT NULL CHECK (succeeded IN (0, 1))
);
CREATE INDEX patient_link_attempts_client ON patient_link_attempts (client, at);

-- What the patient said about their appointment: they will come, or they ask to
-- cancel (with an optional reason). Also written to the case timeline.
CREATE TABLE patient_responses (
    id             INTEGER PRIMARY KEY,
    case_id        INTEGER NOT NULL REFERENCES cases (id),
    link_id        INTEGER NOT NULL REFERENCES patient_links (id),
    appointment_id INTEGER REFERENCES appointments (id),
    kind           TEXT    NOT NULL CHECK (kind IN ('confirm', 'cancel_request')),
    reason         TEXT,
    at             INTEGER NOT NULL
);
CREATE INDEX patient_responses_case ON patient_responses (case_id, id);
