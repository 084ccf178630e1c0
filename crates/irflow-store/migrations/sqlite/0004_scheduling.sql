-- Scheduling: sites, rooms, recovery chairs, radiologists' credentials, weekly
-- availability in local civil time, closures, appointments.
--
-- No double booking, under any concurrency and across processes, comes from the
-- database itself: every booked resource-minute is a row in `reservations`, keyed by
-- (resource, 5-minute unit), so two bookings of one resource at one time cannot both
-- commit. The same constraint on SQLite and PostgreSQL; times are on a 5-minute grid.

CREATE TABLE sites (
    id        INTEGER PRIMARY KEY,
    name      TEXT    NOT NULL UNIQUE,
    time_zone TEXT    NOT NULL
);

CREATE TABLE rooms (
    id                 INTEGER PRIMARY KEY,
    site_id            INTEGER NOT NULL REFERENCES sites (id),
    name               TEXT    NOT NULL,
    modality           TEXT    NOT NULL CHECK (modality IN ('fluoroscopy', 'ct')),
    turnaround_minutes INTEGER NOT NULL CHECK (turnaround_minutes >= 0 AND turnaround_minutes % 5 = 0),
    active             INTEGER NOT NULL CHECK (active IN (0, 1)),
    UNIQUE (site_id, name)
);

CREATE TABLE recovery_chairs (
    id      INTEGER PRIMARY KEY,
    site_id INTEGER NOT NULL REFERENCES sites (id),
    name    TEXT    NOT NULL,
    active  INTEGER NOT NULL CHECK (active IN (0, 1)),
    UNIQUE (site_id, name)
);

CREATE TABLE radiologist_procedures (
    user_id        INTEGER NOT NULL REFERENCES users (id),
    procedure_code TEXT    NOT NULL REFERENCES procedures (code),
    PRIMARY KEY (user_id, procedure_code)
);

CREATE TABLE availability (
    id            INTEGER PRIMARY KEY,
    resource_kind TEXT    NOT NULL CHECK (resource_kind IN ('room', 'radiologist', 'chair')),
    resource_id   INTEGER NOT NULL,
    weekday       INTEGER NOT NULL CHECK (weekday BETWEEN 1 AND 7),
    start_time    TEXT    NOT NULL,
    end_time      TEXT    NOT NULL
);
CREATE INDEX availability_resource ON availability (resource_kind, resource_id);

CREATE TABLE closures (
    id            INTEGER PRIMARY KEY,
    resource_kind TEXT    NOT NULL CHECK (resource_kind IN ('room', 'radiologist', 'chair')),
    resource_id   INTEGER NOT NULL,
    starts_at     INTEGER NOT NULL,
    ends_at       INTEGER NOT NULL,
    reason        TEXT    NOT NULL
);

CREATE TABLE appointments (
    id               INTEGER PRIMARY KEY,
    case_id          INTEGER NOT NULL REFERENCES cases (id),
    site_id          INTEGER NOT NULL REFERENCES sites (id),
    room_id          INTEGER NOT NULL REFERENCES rooms (id),
    radiologist_id   INTEGER NOT NULL REFERENCES users (id),
    chair_id         INTEGER REFERENCES recovery_chairs (id),
    starts_at        INTEGER NOT NULL,
    ends_at          INTEGER NOT NULL,
    chair_starts_at  INTEGER,
    chair_ends_at    INTEGER,
    status           TEXT    NOT NULL CHECK (status IN ('booked', 'cancelled')),
    created_by       TEXT    NOT NULL,
    created_at       INTEGER NOT NULL,
    cancelled_reason TEXT,
    idempotency_key  TEXT    UNIQUE
);
CREATE INDEX appointments_case ON appointments (case_id, status);
CREATE INDEX appointments_start ON appointments (starts_at);

CREATE TABLE reservations (
    resource_kind  TEXT    NOT NULL,
    resource_id    INTEGER NOT NULL,
    unit           INTEGER NOT NULL,
    appointment_id INTEGER NOT NULL REFERENCES appointments (id),
    PRIMARY KEY (resource_kind, resource_id, unit)
);
CREATE INDEX reservations_appointment ON reservations (appointment_id);
