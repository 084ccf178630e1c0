//! What the store's test files share: running a scenario on every configured backend
//! (SQLite always, PostgreSQL when `IRFLOW_TEST_DATABASE_URL` is set), a fixed today,
//! and a user maker.

#![allow(dead_code)]

use irflow_domain::{Actor, Role, Username};
use irflow_store::{NewUser, Store, UserRecord};

/// Runs a scenario on every configured backend, each on a fresh database.
macro_rules! on_every_backend {
    ($name:ident, $scenario:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            for backend in irflow_store::testing::TestDatabase::backends() {
                let db = irflow_store::testing::TestDatabase::new(backend).await;
                $scenario(&db).await;
                db.finish().await;
            }
        }
    };
}

/// The fixed "today" of scenarios that do not depend on the clock.
pub fn today() -> jiff::civil::Date {
    jiff::civil::date(2026, 11, 26)
}

/// A user with a placeholder password hash, made by the system.
pub async fn user(store: &Store, name: &str, role: Role, org: Option<&str>) -> UserRecord {
    store
        .create_user(
            &Actor::system("test"),
            &NewUser {
                username: Username::parse(name).unwrap(),
                display_name: format!("Dr {name}"),
                role,
                organization: org.map(str::to_owned),
                password_hash: "not-a-real-hash".into(),
            },
        )
        .await
        .unwrap()
}
