-- The department's configuration kept in memory (Store::department) now also holds
-- the procedure catalogue, the sites, people's display names and the closures, so
-- every change to those bumps resource_version too (see 0006).

CREATE TRIGGER procedures_version_insert AFTER INSERT ON procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER procedures_version_update AFTER UPDATE ON procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER procedures_version_delete AFTER DELETE ON procedures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER sites_version_insert AFTER INSERT ON sites BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER sites_version_delete AFTER DELETE ON sites BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER users_version_insert AFTER INSERT ON users BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER users_version_name AFTER UPDATE OF display_name ON users BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER closures_version_insert AFTER INSERT ON closures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER closures_version_update AFTER UPDATE ON closures BEGIN UPDATE resource_version SET version = version + 1; END;
CREATE TRIGGER closures_version_delete AFTER DELETE ON closures BEGIN UPDATE resource_version SET version = version + 1; END;
