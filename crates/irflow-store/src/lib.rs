//! irflow's persistence: one query code path for SQLite (embedded default) and
//! PostgreSQL (scale-out), the append-only audit log, and the repositories.
//!
//! Queries are written once, with `?` placeholders, and run through sqlx's `Any`
//! driver; [`Store::sql`] rewrites placeholders for PostgreSQL. Only portable SQL
//! and portable column types (BIGINT/INTEGER, TEXT) are used, so the two backends
//! cannot drift apart. Instants are stored as microseconds since the Unix epoch,
//! UTC; civil dates as `YYYY-MM-DD` text.
//!
//! Every repository call that touches patient data takes an [`Actor`] and records
//! an audit event (in the same transaction for writes).

mod audit;
#[doc(hidden)]
pub mod bench_support;
mod calendar;
mod cases;
pub mod imaging;
mod imaging_glance;
mod migrate;
pub mod outbox;
mod patient_links;
pub mod procedure_day;
pub mod procedure_records;
mod referrals;
mod resources;
mod scheduling;
mod screening;
pub mod testing;
mod users;
mod waitlist;

use std::str::FromStr;
use std::time::Duration;

use irflow_domain::TransitionError;
use jiff::Timestamp;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, AssertSqlSafe, ConnectOptions};

pub use audit::{AuditEvent, AuditFilter, AuditOutcome, NewAuditEvent};
pub use calendar::{AttendanceTime, ClosureRecord};
pub use cases::{
    CaseDetail, CaseFilter, CaseSummary, PatientRecord, ReferralRecord, TimelineEntry,
};
pub use imaging::{
    BatchGaps, CandidateCase, ImagingSource, InstanceLocation, InstanceRecord, MatchedBy,
    QueuedStudy, Reconciled, RecordedInstance, SeriesDetail, SourceKind, StudyDetail, StudyOutcome,
    StudyState, StudySummary, WaitingStudy,
};
pub use imaging_glance::GlanceStudy;
pub use irflow_domain::Actor;
pub use outbox::{
    AttemptRecord, AttemptResult, ClaimedMessage, MessageId, MessageRecord, MessageState,
    NewMessage, NewReminder, OptOutRecord, ReplanSummary,
};
pub use patient_links::{
    AppointmentRevision, DobCheck, LinkChannel, LinkStatus, MAX_RESPONSE_REASON_CHARS,
    PatientLinkRecord, PatientResponseRecord, PatientSession, ResponseKind,
};
pub use procedure_day::DayStatus;
pub use procedure_records::{
    FollowUpRecord, FollowUpStatus, FollowUpTask, ProcedureRecordVersion, Signature,
    SignedProcedure, SignedRecord,
};
pub use referrals::{NewReferral, PatientChoice, PatientMatch, ReferralReceipt, ReferralSubject};
pub use resources::{
    AvailabilityEntry, ChairEntry, ClosureAdded, ClosureEntry, MAX_TURNAROUND_MINUTES, NewClosure,
    RadiologistEntry, ResourceBooking, RoomEntry,
};
pub use scheduling::{
    AppointmentFilter, AppointmentListing, AppointmentRecord, Department, ReadAhead, ResourceKind,
    RoomRecord, SiteRecord, UNIT_MINUTES,
};
pub use screening::{ActionRecord, ActionStatus, NewScreening, ScreeningRecord};
pub use users::{ApiTokenRecord, NewUser, SessionRecord, UserRecord};
pub use waitlist::{CasePlan, Preferences, SchedulingContext, SearchStart, WaitlistEntry};

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite (the default).
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

impl Backend {
    /// A name for people.
    pub const fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Errors from the store. Messages are safe to show to the person who asked,
/// except [`StoreError::Database`], whose detail is for logs only.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No such record (or not one this actor may see: the two are not told apart).
    #[error("not found")]
    NotFound,
    /// The actor may not do this.
    #[error("not permitted: {0}")]
    Denied(&'static str),
    /// The pathway refused the transition.
    #[error(transparent)]
    Transition(#[from] TransitionError),
    /// Someone else changed the record first.
    #[error("{0}")]
    Conflict(String),
    /// A unique value is already taken.
    #[error("{0}")]
    Duplicate(String),
    /// Input the store cannot accept.
    #[error("{0}")]
    Invalid(String),
    /// One field of a submitted form cannot be accepted.
    #[error("{field}: {message}")]
    Field {
        /// The field (as in `irflow_domain::ReferralForm`).
        field: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The patient already has an open case for this procedure.
    #[error("this patient already has an open referral (case #{existing}) for this procedure")]
    DuplicateCase {
        /// The open case.
        existing: irflow_domain::CaseId,
    },
    /// A database URL that cannot be used.
    #[error("{0}")]
    Config(String),
    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migration(String),
    /// A stored value could not be read back.
    #[error("stored data could not be read: {0}")]
    Corrupt(String),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => StoreError::NotFound,
            sqlx::Error::Database(db) if is_busy(db.message()) => StoreError::Conflict(
                "the database was busy with another change; please try again".to_owned(),
            ),
            _ => StoreError::Database(e),
        }
    }
}

impl StoreError {
    /// Someone else changed the case between our read and our write.
    pub(crate) fn concurrent_change() -> Self {
        StoreError::Conflict(
            "this case was changed by someone else at the same moment; reload and try again"
                .to_owned(),
        )
    }
}

fn is_busy(message: &str) -> bool {
    // SQLite's lock errors and PostgreSQL's serialization failures are both
    // "someone else got there first", which callers treat as a conflict.
    message.contains("database is locked")
        || message.contains("could not serialize access")
        || message.contains("deadlock detected")
}

/// Result alias for the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// The handle to the database. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// The department's configuration (see `Store::department`), kept with the
    /// `resource_version` it was read at.
    department: std::sync::Arc<std::sync::Mutex<Option<std::sync::Arc<scheduling::Department>>>>,
}

impl Store {
    /// Connects to `url` (`sqlite:...` or `postgres://...`). Does not migrate.
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StoreError::Config(
                "database URL must start with sqlite: or postgres://".to_owned(),
            ));
        };
        let options = AnyConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("database URL is not valid: {e}")))?
            .disable_statement_logging();
        let pool_options = AnyPoolOptions::new()
            .acquire_timeout(Duration::from_secs(10))
            // sqlx pings every connection it hands out by default: a second round
            // trip (on SQLite, a second hop to the connection's thread) for every
            // query. A connection used within the last few seconds is handed out as
            // it is; one idle for longer is pinged first, and replaced if the
            // database hung up on it.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    use sqlx::Connection as _;
                    if meta.idle_for > Duration::from_secs(5) {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            })
            .max_connections(match backend {
                Backend::Sqlite => 8,
                Backend::Postgres => 16,
            });
        let pool_options = match backend {
            Backend::Sqlite => pool_options.after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::raw_sql("PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000;")
                        .execute(&mut *conn)
                        .await?;
                    Ok(())
                })
            }),
            Backend::Postgres => pool_options,
        };
        let pool = pool_options.connect_with(options).await.map_err(|e| {
            StoreError::Config(format!(
                "could not connect to the {} database: {e}",
                backend.name()
            ))
        })?;
        if backend == Backend::Sqlite {
            // WAL lets readers and a writer work at once; it is persistent, so once is enough.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        Ok(Self {
            pool,
            backend,
            department: std::sync::Arc::default(),
        })
    }

    /// Connects and applies pending migrations.
    pub async fn open(url: &str) -> Result<Self> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Applies pending migrations (safe to run from several processes at once).
    pub async fn migrate(&self) -> Result<Vec<String>> {
        migrate::run(self).await
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Checks the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The one place a query's text is adapted to the backend: `?` placeholders
    /// become `$1, $2, ...` on PostgreSQL. Queries never contain a literal `?`.
    fn sql(&self, query: &'static str) -> AssertSqlSafe<std::borrow::Cow<'static, str>> {
        AssertSqlSafe(match self.backend {
            Backend::Sqlite => std::borrow::Cow::Borrowed(query),
            Backend::Postgres => std::borrow::Cow::Owned(numbered_placeholders(query)),
        })
    }
}

fn numbered_placeholders(query: &str) -> String {
    let mut out = String::with_capacity(query.len() + 8);
    let mut n = 0;
    for ch in query.chars() {
        if ch == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(ch);
        }
    }
    out
}

/// Converts an instant to stored microseconds.
pub(crate) fn micros(t: Timestamp) -> i64 {
    // i64 microseconds cover years -292277 to 294247; jiff's range is narrower.
    t.as_microsecond()
}

/// Converts stored microseconds back to an instant.
pub(crate) fn from_micros(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

pub(crate) fn parse_stored<T: FromStr>(what: &str, raw: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|e| StoreError::Corrupt(format!("{what} {raw:?}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order() {
        assert_eq!(
            numbered_placeholders("SELECT a FROM t WHERE b = ? AND c = ?"),
            "SELECT a FROM t WHERE b = $1 AND c = $2"
        );
        assert_eq!(numbered_placeholders("SELECT 1"), "SELECT 1");
    }
}
