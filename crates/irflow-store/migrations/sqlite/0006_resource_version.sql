-- A counter that every change to what a slot search is configured from bumps, so that
-- a process may keep that configuration (rooms, weekly hours, credentials, chairs) in
-- memory and know, with one cheap read, whether another process has changed it.
-- Bumped by triggers, so no code path can forget.

CREATE TABLE resource_version (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    version INTEGER NOT NULL
);
INSERT INTO resource_version (id, version) VALUES (1, 0);

CREATE TRIGGER rooms_version_insert AFTER INSERT ON rooms BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER rooms_version_update AFTER UPDATE ON rooms BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER rooms_version_delete AFTER DELETE ON rooms BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER chairs_version_insert AFTER INSERT ON recovery_chairs BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER chairs_version_update AFTER UPDATE ON recovery_chairs BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER chairs_version_delete AFTER DELETE ON recovery_chairs BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER availability_version_insert AFTER INSERT ON availability BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER availability_version_update AFTER UPDATE ON availability BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER availability_version_delete AFTER DELETE ON availability BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER credentials_version_insert AFTER INSERT ON radiologist_procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER credentials_version_update AFTER UPDATE ON radiologist_procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER credentials_version_delete AFTER DELETE ON radiologist_procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER sites_version_update AFTER UPDATE ON sites BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER users_version_disable AFTER UPDATE OF disabled_at, role ON users BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER users_version_delete AFTER DELETE ON users BEGIN UPDATE resource_version SET version = version + 1; END;
