-- Patient messages: one outbox table drained by workers (email and SMS), every send
-- attempt recorded, and the patient's choice to receive no reminders.
--
-- A worker claims due rows by moving them to 'sending' with a lease; a lease that
-- runs out (the worker died) makes the row claimable again. Reminders remember the
-- appointment and the start they were planned for, so a worker can refuse to send one
-- whose appointment has moved or gone.

CREATE TABLE messages (
    id                INTEGER PRIMARY KEY,
    case_id           INTEGER NOT NULL REFERENCES cases (id),
    -- 'patient_link', 'reminder_3_days', 'reminder_1_day', 'reminder_hold_start', ...
    kind              TEXT    NOT NULL,
    channel           TEXT    NOT NULL CHECK (channel IN ('email', 'sms')),
    recipient         TEXT    NOT NULL,
    subject           TEXT    NOT NULL,
    body_text         TEXT    NOT NULL,
    body_html         TEXT,
    -- For reminders: the appointment and its start (UTC microseconds) when planned.
    appointment_id    INTEGER REFERENCES appointments (id),
    appointment_start INTEGER,
    -- For reminders: what makes two plans "the same reminder" (kind, channel,
    -- recipient, appointment, start, drug), so that one already sent is never planned again.
    dedupe_key        TEXT,
    send_after        INTEGER NOT NULL,
    state             TEXT    NOT NULL CHECK (state IN ('planned', 'sending', 'sent', 'failed', 'cancelled')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    -- When a planned message is next due (send_after, then the backoff's times).
    next_attempt_at   INTEGER,
    -- While 'sending': which worker holds it, and until when.
    claimed_by        TEXT,
    lease_until       INTEGER,
    -- The last failure (the server's reply; never written to logs).
    last_error        TEXT,
    created_by        TEXT    NOT NULL,
    created_at        INTEGER NOT NULL,
    sent_at           INTEGER,
    cancelled_at      INTEGER,
    cancelled_reason  TEXT
);
CREATE INDEX messages_due ON messages (state, next_attempt_at);
CREATE INDEX messages_lease ON messages (state, lease_until);
CREATE INDEX messages_case ON messages (case_id, id);
CREATE UNIQUE INDEX messages_dedupe ON messages (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state <> 'cancelled';

CREATE TABLE message_attempts (
    id          INTEGER PRIMARY KEY,
    message_id  INTEGER NOT NULL REFERENCES messages (id),
    attempt     INTEGER NOT NULL,
    worker      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    -- 'sending' while under way; 'retry' failed for now; 'failed' for good;
    -- 'abandoned' when the worker's lease ran out before it reported.
    outcome     TEXT    NOT NULL CHECK (outcome IN ('sending', 'sent', 'retry', 'failed', 'abandoned')),
    detail      TEXT,
    UNIQUE (message_id, attempt)
);

-- The patient asked for no reminders (when, and who recorded it).
ALTER TABLE patients ADD COLUMN reminders_opted_out_at INTEGER;
ALTER TABLE patients ADD COLUMN reminders_opted_out_by TEXT;
