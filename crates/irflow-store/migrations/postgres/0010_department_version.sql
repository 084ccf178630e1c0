-- The department's configuration kept in memory (Store::department) now also holds
-- the procedure catalogue, the sites, people's display names and the closures, so
-- every change to those bumps resource_version too (see 0006).

CREATE TRIGGER procedures_version AFTER INSERT OR UPDATE OR DELETE ON procedures
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER sites_version_insert AFTER INSERT OR DELETE ON sites
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER users_version_insert AFTER INSERT ON users
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER users_version_name AFTER UPDATE OF display_name ON users
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
CREATE TRIGGER closures_version AFTER INSERT OR UPDATE OR DELETE ON closures
    FOR EACH STATEMENT EXECUTE FUNCTION irflow_bump_resource_version();
