//! Test databases: a fresh SQLite file, or a fresh PostgreSQL database when
//! `IRFLOW_TEST_DATABASE_URL` is set, one per test so tests never interfere.
//!
//! Used by this crate's tests and by the server's and binary's black-box tests.

use std::path::PathBuf;

use rand::Rng;
use sqlx::Connection;

use crate::{Backend, Store};

/// The environment variable that turns on the PostgreSQL half of the suite.
pub const POSTGRES_ENV: &str = "IRFLOW_TEST_DATABASE_URL";

/// A migrated, empty database that belongs to one test.
#[derive(Debug)]
pub struct TestDatabase {
    /// The store, connected and migrated.
    pub store: Store,
    /// The URL, for handing to a child process.
    pub url: String,
    cleanup: Cleanup,
}

#[derive(Debug)]
enum Cleanup {
    File(PathBuf),
    Postgres { admin_url: String, name: String },
}

fn unique_suffix() -> String {
    let now = jiff::Timestamp::now().as_second();
    let r: u32 = rand::rng().random();
    format!("{now}_{r:08x}")
}

/// Whether the PostgreSQL half of the suite is enabled.
pub fn postgres_url() -> Option<String> {
    std::env::var(POSTGRES_ENV)
        .ok()
        .filter(|s| !s.trim().is_empty())
}

impl TestDatabase {
    /// A fresh database on the given backend.
    ///
    /// # Panics
    /// When the database cannot be created: a test setup failure must be loud
    /// (in particular, an unreachable PostgreSQL fails the PostgreSQL run).
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn new(backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("irflow_test_{}.db", unique_suffix()));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let store = Store::open(&url).await.expect("open SQLite test database");
                Self {
                    store,
                    url,
                    cleanup: Cleanup::File(path),
                }
            }
            Backend::Postgres => {
                let admin_url = postgres_url().unwrap_or_else(|| {
                    panic!("{POSTGRES_ENV} is not set; cannot create a PostgreSQL test database")
                });
                sqlx::any::install_default_drivers();
                let name = format!("irflow_t_{}", unique_suffix());
                let mut admin = sqlx::AnyConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| {
                        panic!("{POSTGRES_ENV}: cannot connect to PostgreSQL: {e}")
                    });
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut admin)
                    .await
                    .expect("create PostgreSQL test database");
                admin.close().await.ok();
                let url = with_database(&admin_url, &name);
                let store = Store::open(&url)
                    .await
                    .expect("open PostgreSQL test database");
                Self {
                    store,
                    url,
                    cleanup: Cleanup::Postgres { admin_url, name },
                }
            }
        }
    }

    /// The backends this run covers: SQLite always, PostgreSQL when configured.
    pub fn backends() -> Vec<Backend> {
        let mut b = vec![Backend::Sqlite];
        if postgres_url().is_some() {
            b.push(Backend::Postgres);
        }
        b
    }

    /// Closes the store and removes the database.
    pub async fn finish(self) {
        self.store.close().await;
        match self.cleanup {
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut p = path.clone().into_os_string();
                    p.push(suffix);
                    std::fs::remove_file(p).ok();
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut admin) = sqlx::AnyConnection::connect(&admin_url).await {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut admin)
                    .await
                    .ok();
                    admin.close().await.ok();
                }
            }
        }
    }
}

/// Replaces the database name in a PostgreSQL URL.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[scheme_end..].find('/').map(|i| scheme_end + i);
    let host = path_start.map_or(base, |i| &base[..i]);
    match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://postgres@127.0.0.1:5432", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            super::with_database("postgres://h/db?sslmode=disable", "x"),
            "postgres://h/x?sslmode=disable"
        );
    }
}
