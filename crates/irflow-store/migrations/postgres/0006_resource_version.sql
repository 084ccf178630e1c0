-- A counter that every change to what a slot search is configured from bumps, so that
-- a process may keep that configuration (rooms, weekly hours, credentials, chairs) in
-- memory and know, with one cheap read, whether another process has changed it.
-- Bumped by triggers, so no code path can forget.

CREATE TABLE resource_version (
    id      BIGINT PRIMARY KEY CHECK (id = 1),
    version BIGINT NOT NULL
);
INSERT INTO resource_version (id, version) VALUES (1, 0);

CREATE FUNCTION irflow_bump_resource_version() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE resource_version SET version = version + 1 WHERE id = 1;
    RETURN NULL;
END;
$$;
CREATE TRIGGER rooms_version AFTER INSERT OR UPDATE OR DELETE ON rooms
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER chairs_version AFTER INSERT OR UPDATE OR DELETE ON recovery_chairs
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER availability_version AFTER INSERT OR UPDATE OR DELETE ON availability
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER credentials_version AFTER INSERT OR UPDATE OR DELETE ON radiologist_procedures
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER sites_version AFTER UPDATE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER users_version_disable AFTER UPDATE OF disabled_at, role ON users
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER users_version_delete AFTER DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
