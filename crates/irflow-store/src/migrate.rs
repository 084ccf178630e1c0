//! A small, strict migration runner: migrations are embedded in the binary, applied
//! in order inside a transaction each, and recorded with a checksum so that an
//! edited migration (forbidden once landed) is detected instead of silently skipped.

use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::{Backend, Result, Store, StoreError};

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every migration, oldest first. Never edit one that has landed: add a new one.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "platform",
        sqlite: include_str!("../migrations/sqlite/0001_platform.sql"),
        postgres: include_str!("../migrations/postgres/0001_platform.sql"),
    },
    Migration {
        version: 2,
        name: "referrals",
        sqlite: include_str!("../migrations/sqlite/0002_referrals.sql"),
        postgres: include_str!("../migrations/postgres/0002_referrals.sql"),
    },
    Migration {
        version: 3,
        name: "screening",
        sqlite: include_str!("../migrations/sqlite/0003_screening.sql"),
        postgres: include_str!("../migrations/postgres/0003_screening.sql"),
    },
    Migration {
        version: 4,
        name: "scheduling",
        sqlite: include_str!("../migrations/sqlite/0004_scheduling.sql"),
        postgres: include_str!("../migrations/postgres/0004_scheduling.sql"),
    },
    Migration {
        version: 5,
        name: "attendance_waitlist",
        sqlite: include_str!("../migrations/sqlite/0005_attendance_waitlist.sql"),
        postgres: include_str!("../migrations/postgres/0005_attendance_waitlist.sql"),
    },
    Migration {
        version: 6,
        name: "resource_version",
        sqlite: include_str!("../migrations/sqlite/0006_resource_version.sql"),
        postgres: include_str!("../migrations/postgres/0006_resource_version.sql"),
    },
    Migration {
        version: 7,
        name: "outbox",
        sqlite: include_str!("../migrations/sqlite/0007_outbox.sql"),
        postgres: include_str!("../migrations/postgres/0007_outbox.sql"),
    },
    Migration {
        version: 8,
        name: "patient_links",
        sqlite: include_str!("../migrations/sqlite/0008_patient_links.sql"),
        postgres: include_str!("../migrations/postgres/0008_patient_links.sql"),
    },
    Migration {
        version: 10,
        name: "department_version",
        sqlite: include_str!("../migrations/sqlite/0010_department_version.sql"),
        postgres: include_str!("../migrations/postgres/0010_department_version.sql"),
    },
    Migration {
        version: 11,
        name: "imaging",
        sqlite: include_str!("../migrations/sqlite/0011_imaging.sql"),
        postgres: include_str!("../migrations/postgres/0011_imaging.sql"),
    },
    Migration {
        version: 12,
        name: "procedure_day",
        sqlite: include_str!("../migrations/sqlite/0012_procedure_day.sql"),
        postgres: include_str!("../migrations/postgres/0012_procedure_day.sql"),
    },
    Migration {
        version: 13,
        name: "procedure_records",
        sqlite: include_str!("../migrations/sqlite/0013_procedure_records.sql"),
        postgres: include_str!("../migrations/postgres/0013_procedure_records.sql"),
    },
    Migration {
        version: 14,
        name: "busy_index",
        sqlite: include_str!("../migrations/sqlite/0014_busy_index.sql"),
        postgres: include_str!("../migrations/postgres/0014_busy_index.sql"),
    },
    Migration {
        version: 15,
        name: "actions_index",
        sqlite: include_str!("../migrations/sqlite/0015_actions_index.sql"),
        postgres: include_str!("../migrations/postgres/0015_actions_index.sql"),
    },
    Migration {
        version: 17,
        name: "message_send_before",
        sqlite: include_str!("../migrations/sqlite/0017_message_send_before.sql"),
        postgres: include_str!("../migrations/postgres/0017_message_send_before.sql"),
    },
    Migration {
        version: 18,
        name: "particulate_acknowledged",
        sqlite: include_str!("../migrations/sqlite/0018_particulate_acknowledged.sql"),
        postgres: include_str!("../migrations/postgres/0018_particulate_acknowledged.sql"),
    },
];

fn checksum(sql: &str) -> String {
    let digest = Sha256::digest(sql.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Applies pending migrations; returns the names of those applied now.
pub(crate) async fn run(store: &Store) -> Result<Vec<String>> {
    let mut conn = store.pool.acquire().await?;
    if store.backend == Backend::Postgres {
        // Several irflow processes may start at once against one database.
        sqlx::query("SELECT pg_advisory_lock(7212660773)")
            .execute(&mut *conn)
            .await?;
    }
    let result = apply_pending(store, &mut conn).await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock(7212660773)")
            .execute(&mut *conn)
            .await?;
    }
    result
}

async fn apply_pending(store: &Store, conn: &mut sqlx::AnyConnection) -> Result<Vec<String>> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS irflow_migrations (
            version    BIGINT PRIMARY KEY,
            name       TEXT   NOT NULL,
            checksum   TEXT   NOT NULL,
            applied_at BIGINT NOT NULL
        )",
    )
    .execute(&mut *conn)
    .await?;
    let applied = sqlx::query("SELECT version, checksum FROM irflow_migrations ORDER BY version")
        .fetch_all(&mut *conn)
        .await?;
    let mut done = Vec::new();
    for row in &applied {
        let version: i64 = row.try_get(0)?;
        let sum: String = row.try_get(1)?;
        match MIGRATIONS.iter().find(|m| m.version == version) {
            None => {
                return Err(StoreError::Migration(format!(
                    "the database has migration {version}, which this irflow does not know: \
                     it was migrated by a newer version; run that version instead"
                )));
            }
            Some(m) => {
                let expected = checksum(sql_for(store.backend, m));
                if expected != sum {
                    return Err(StoreError::Migration(format!(
                        "migration {version} ({}) differs from the one applied to this database",
                        m.name
                    )));
                }
            }
        }
        done.push(version);
    }
    let mut newly = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !done.contains(&m.version)) {
        let sql = sql_for(store.backend, m);
        let mut tx = sqlx::Connection::begin(&mut *conn).await?;
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::Migration(format!("{} ({}): {e}", m.version, m.name)))?;
        sqlx::query(store.sql(
            "INSERT INTO irflow_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
        ))
        .bind(m.version)
        .bind(m.name)
        .bind(checksum(sql))
        .bind(crate::micros(jiff::Timestamp::now()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        newly.push(format!("{:04}_{}", m.version, m.name));
    }
    Ok(newly)
}

fn sql_for(backend: Backend, m: &Migration) -> &'static str {
    match backend {
        Backend::Sqlite => m.sqlite,
        Backend::Postgres => m.postgres,
    }
}
