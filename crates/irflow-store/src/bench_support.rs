//! Helpers for `irflow bench scheduling` only, hidden from the documentation and
//! never used by the server: bulk seeding of a year's history (patients, cases,
//! appointments and their reservation rows in large transactions, no timeline or
//! audit), the bare insert a booking rests on (for comparing against the real
//! booking path), and a throwaway PostgreSQL database.
//!
//! The measured paths of the benchmark are the real ones; nothing here is on them
//! except [`Store::bench_raw_booking`], which is the baseline.

use jiff::Timestamp;
use sqlx::{AssertSqlSafe, Connection};

use crate::{Backend, Result, Store, StoreError, UNIT_MINUTES, micros};

/// A history case to insert in bulk (with its own patient).
#[doc(hidden)]
#[derive(Debug, Clone)]
pub struct BenchCase {
    /// Patient family name (plain letters; it is written into the SQL text).
    pub family_name: &'static str,
    /// Patient given name.
    pub given_name: &'static str,
    /// `YYYY-MM-DD`.
    pub date_of_birth: String,
    /// The referrer (user id).
    pub referrer_id: i64,
    /// CPT code.
    pub procedure_code: &'static str,
    /// Its name.
    pub procedure_name: String,
    /// Stored case state (e.g. `followed_up`, `scheduled`).
    pub state: &'static str,
    /// When the referral arrived.
    pub created_at: Timestamp,
}

/// An appointment to insert in bulk, or to insert bare (see [`Store::bench_raw_booking`]).
#[doc(hidden)]
#[derive(Debug, Clone, Copy)]
pub struct BenchAppointment {
    /// The case.
    pub case_id: i64,
    /// Room.
    pub room: i64,
    /// Radiologist (user id).
    pub radiologist: i64,
    /// Procedure start.
    pub start: Timestamp,
    /// Procedure end.
    pub end: Timestamp,
    /// The room's turnaround after the procedure.
    pub turnaround_minutes: u32,
    /// Recovery chair and its window.
    pub chair: Option<(i64, Timestamp, Timestamp)>,
    /// Cancelled (no reservations) rather than booked.
    pub cancelled: bool,
    /// `arrived` or `no_show`, for appointments in the past.
    pub attendance: Option<&'static str>,
}

impl BenchAppointment {
    /// The reservation claims a booking of this appointment writes, as the real
    /// booking path computes them: (kind, resource, unit).
    pub fn claims(&self) -> Vec<(&'static str, i64, i64)> {
        self.claim_ranges()
            .into_iter()
            .flat_map(|(kind, resource, range)| range.map(move |u| (kind, resource, u)))
            .collect()
    }

    /// The same, one range of units per resource, as the booking path inserts them.
    fn claim_ranges(&self) -> Vec<(&'static str, i64, std::ops::Range<i64>)> {
        let room_end =
            self.end + jiff::SignedDuration::from_mins(i64::from(self.turnaround_minutes));
        let mut out = vec![
            ("room", self.room, units(self.start, room_end)),
            ("radiologist", self.radiologist, units(self.start, self.end)),
        ];
        if let Some((chair, s, e)) = self.chair {
            out.push(("chair", chair, units(s, e)));
        }
        out
    }
}

/// As `scheduling::units`: the 5-minute units an interval touches.
fn units(start: Timestamp, end: Timestamp) -> std::ops::Range<i64> {
    let unit = UNIT_MINUTES * 60;
    let s = start.as_second().div_euclid(unit);
    let e = (end.as_second() + unit - 1).div_euclid(unit);
    s..e
}

/// Rows per multi-row INSERT statement.
const ROWS_PER_STATEMENT: usize = 500;
/// Appointments per bulk transaction.
const APPOINTMENTS_PER_TRANSACTION: usize = 10_000;

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn opt_int(v: Option<i64>) -> String {
    v.map_or_else(|| "NULL".to_owned(), |v| v.to_string())
}

impl Store {
    async fn bench_next_id(&self, table: &'static str) -> Result<i64> {
        let sql = match table {
            "patients" => "SELECT COALESCE(MAX(id), 0) FROM patients",
            "cases" => "SELECT COALESCE(MAX(id), 0) FROM cases",
            "appointments" => "SELECT COALESCE(MAX(id), 0) FROM appointments",
            _ => return Err(StoreError::Invalid(format!("no table {table}"))),
        };
        let max: i64 = sqlx::query_scalar(sql).fetch_one(&self.pool).await?;
        Ok(max + 1)
    }

    /// After inserting explicit ids, moves PostgreSQL's identity sequence past them.
    async fn bench_sync_sequence(&self, table: &'static str) -> Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::raw_sql(AssertSqlSafe(format!(
                "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))"
            )))
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    /// Inserts history cases, each with its own patient, in bulk (no timeline, no
    /// audit: seeding only). Returns the case ids in order.
    #[doc(hidden)]
    pub async fn bench_insert_cases(&self, cases: &[BenchCase]) -> Result<Vec<i64>> {
        let first_patient = self.bench_next_id("patients").await?;
        let first_case = self.bench_next_id("cases").await?;
        let ids: Vec<i64> = (0..cases.len())
            .map(|i| first_case + i64::try_from(i).unwrap_or(i64::MAX))
            .collect();
        let mut tx = self.pool.begin().await?;
        for (chunk_no, chunk) in cases.chunks(ROWS_PER_STATEMENT).enumerate() {
            let base = chunk_no * ROWS_PER_STATEMENT;
            let mut patients = String::from(
                "INSERT INTO patients (id, family_name, given_name, date_of_birth, phone, preferred_language, created_at, match_key) VALUES ",
            );
            let mut rows = String::from(
                "INSERT INTO cases (id, patient_id, referrer_id, procedure_code, procedure_name, state, version, created_at, updated_at, channel, entered_by) VALUES ",
            );
            for (k, c) in chunk.iter().enumerate() {
                let i = i64::try_from(base + k).unwrap_or(i64::MAX);
                let patient = first_patient + i;
                let at = micros(c.created_at);
                if k > 0 {
                    patients.push(',');
                    rows.push(',');
                }
                patients.push_str(&format!(
                    "({patient}, {}, {}, {}, '617-555-0100', 'en', {at}, {})",
                    quoted(c.family_name),
                    quoted(c.given_name),
                    quoted(&c.date_of_birth),
                    quoted(&format!(
                        "{}|{}|{}",
                        c.family_name.to_lowercase(),
                        c.given_name.to_lowercase(),
                        c.date_of_birth
                    )),
                ));
                rows.push_str(&format!(
                    "({}, {patient}, {}, {}, {}, {}, 1, {at}, {at}, 'online', 'bench')",
                    first_case + i,
                    c.referrer_id,
                    quoted(c.procedure_code),
                    quoted(&c.procedure_name),
                    quoted(c.state),
                ));
            }
            sqlx::raw_sql(AssertSqlSafe(patients))
                .execute(&mut *tx)
                .await?;
            sqlx::raw_sql(AssertSqlSafe(rows)).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        self.bench_sync_sequence("patients").await?;
        self.bench_sync_sequence("cases").await?;
        Ok(ids)
    }

    /// Inserts appointments with their reservation rows in bulk, in large
    /// transactions. The caller guarantees they do not overlap (the reservations'
    /// primary key refuses the whole batch otherwise). Returns the reservation rows
    /// written.
    #[doc(hidden)]
    pub async fn bench_insert_appointments(
        &self,
        site: i64,
        created_by: &str,
        created_at: Timestamp,
        appointments: &[BenchAppointment],
    ) -> Result<u64> {
        let first = self.bench_next_id("appointments").await?;
        let who = quoted(created_by);
        let at = micros(created_at);
        let mut reservations_written = 0u64;
        for (tx_no, batch) in appointments
            .chunks(APPOINTMENTS_PER_TRANSACTION)
            .enumerate()
        {
            let mut tx = self.pool.begin().await?;
            let mut claims: Vec<(&'static str, i64, i64, i64)> = Vec::new();
            for (chunk_no, chunk) in batch.chunks(ROWS_PER_STATEMENT).enumerate() {
                let mut sql = String::from(
                    "INSERT INTO appointments (id, case_id, site_id, room_id, radiologist_id, chair_id, starts_at, ends_at, chair_starts_at, chair_ends_at, status, created_by, created_at, cancelled_reason, attendance) VALUES ",
                );
                for (k, a) in chunk.iter().enumerate() {
                    let index =
                        tx_no * APPOINTMENTS_PER_TRANSACTION + chunk_no * ROWS_PER_STATEMENT + k;
                    let id = first + i64::try_from(index).unwrap_or(i64::MAX);
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!(
                        "({id}, {}, {site}, {}, {}, {}, {}, {}, {}, {}, {}, {who}, {at}, {}, {})",
                        a.case_id,
                        a.room,
                        a.radiologist,
                        opt_int(a.chair.map(|c| c.0)),
                        micros(a.start),
                        micros(a.end),
                        opt_int(a.chair.map(|c| micros(c.1))),
                        opt_int(a.chair.map(|c| micros(c.2))),
                        if a.cancelled {
                            "'cancelled'"
                        } else {
                            "'booked'"
                        },
                        if a.cancelled {
                            "'patient cancelled'"
                        } else {
                            "NULL"
                        },
                        a.attendance.map_or_else(|| "NULL".to_owned(), quoted),
                    ));
                    if !a.cancelled {
                        claims.extend(a.claims().into_iter().map(|(k, r, u)| (k, r, u, id)));
                    }
                }
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
            for chunk in claims.chunks(ROWS_PER_STATEMENT * 4) {
                let mut sql = String::from(
                    "INSERT INTO reservations (resource_kind, resource_id, unit, appointment_id) VALUES ",
                );
                for (k, (kind, resource, unit, id)) in chunk.iter().enumerate() {
                    if k > 0 {
                        sql.push(',');
                    }
                    sql.push_str(&format!("('{kind}', {resource}, {unit}, {id})"));
                }
                sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *tx).await?;
            }
            reservations_written += claims.len() as u64;
            tx.commit().await?;
        }
        self.bench_sync_sequence("appointments").await?;
        // PostgreSQL's autovacuum would vacuum (setting the visibility map that index-only
        // scans use) and gather statistics after a load like this one;
        // SQLite has none unless someone runs ANALYZE, which irflow does not.
        if self.backend == Backend::Postgres {
            sqlx::raw_sql("VACUUM ANALYZE").execute(&self.pool).await?;
        }
        Ok(reservations_written)
    }

    /// The bare insert a booking rests on: in one transaction, the appointment row and
    /// one reservation row per resource per 5-minute unit (one statement per
    /// resource), statement by statement as the booking path writes them, with no reads, rule checks, case move, timeline
    /// or audit. Returns the rows inserted. A taken unit is a [`StoreError::Conflict`].
    #[doc(hidden)]
    pub async fn bench_raw_booking(
        &self,
        site: i64,
        created_by: &str,
        a: &BenchAppointment,
    ) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO appointments (case_id, site_id, room_id, radiologist_id, chair_id, starts_at, ends_at,
                                       chair_starts_at, chair_ends_at, status, created_by, created_at, idempotency_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?, ?) RETURNING id",
        ))
        .bind(a.case_id)
        .bind(site)
        .bind(a.room)
        .bind(a.radiologist)
        .bind(a.chair.map(|c| c.0))
        .bind(micros(a.start))
        .bind(micros(a.end))
        .bind(a.chair.map(|c| micros(c.1)))
        .bind(a.chair.map(|c| micros(c.2)))
        .bind(created_by.to_owned())
        .bind(micros(Timestamp::now()))
        .bind(None::<String>)
        .fetch_one(&mut *tx)
        .await?;
        let mut rows = 1u64;
        for (kind, resource, range) in a.claim_ranges() {
            let count = (range.end - range.start).max(0) as u64;
            match self
                .insert_reservations(&mut tx, kind, resource, range, id)
                .await
            {
                Ok(()) => rows += count,
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StoreError::Conflict(format!("the {kind} is taken")));
                }
                Err(e) => return Err(e.into()),
            }
        }
        tx.commit().await?;
        Ok(rows)
    }
}

/// Creates a fresh, empty PostgreSQL database next to the one `admin_url` names and
/// returns its URL and name. Nothing existing is touched.
#[doc(hidden)]
pub async fn bench_create_postgres(admin_url: &str) -> Result<(String, String)> {
    sqlx::any::install_default_drivers();
    let now = Timestamp::now();
    let name = format!(
        "irflow_bench_{}_{}_{}",
        now.as_second(),
        now.subsec_microsecond(),
        std::process::id()
    );
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Config(format!("could not connect to PostgreSQL: {e}")))?;
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    admin.close().await.ok();
    Ok((with_database(admin_url, &name), name))
}

/// Drops a database made by [`bench_create_postgres`].
#[doc(hidden)]
pub async fn bench_drop_postgres(admin_url: &str, name: &str) -> Result<()> {
    if !name.starts_with("irflow_bench_") {
        return Err(StoreError::Invalid(format!(
            "{name} is not a benchmark database"
        )));
    }
    let mut admin = sqlx::AnyConnection::connect(admin_url)
        .await
        .map_err(|e| StoreError::Config(format!("could not connect to PostgreSQL: {e}")))?;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await?;
    admin.close().await.ok();
    Ok(())
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
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn claims_match_the_booking_path() {
        let start: Timestamp = "2026-12-07T14:00:00Z".parse().unwrap();
        let a = BenchAppointment {
            case_id: 1,
            room: 2,
            radiologist: 3,
            start,
            end: start + jiff::SignedDuration::from_mins(20),
            turnaround_minutes: 10,
            chair: Some((
                4,
                start + jiff::SignedDuration::from_mins(20),
                start + jiff::SignedDuration::from_mins(80),
            )),
            cancelled: false,
            attendance: None,
        };
        let claims = a.claims();
        assert_eq!(claims.iter().filter(|c| c.0 == "room").count(), 6);
        assert_eq!(claims.iter().filter(|c| c.0 == "radiologist").count(), 4);
        assert_eq!(claims.iter().filter(|c| c.0 == "chair").count(), 12);
    }

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
    }
}
