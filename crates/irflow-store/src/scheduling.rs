//! Scheduling storage: the department's resources and their availability, and
//! appointments. A booking writes one `reservations` row per resource per 5-minute
//! unit; the table's primary key makes a second booking of the same resource at the
//! same time fail in the database, whatever the concurrency, on both backends.

use irflow_domain::pathway::{self, TransitionRequest};
use irflow_domain::scheduling::{
    BusyIndex, ChairInfo, Interval, RadiologistInfo, ResourceId, RoomInfo, SlotOption, SlotRequest,
    SlotResources, WeeklyWindow, find_slots, search_is_complete,
};
use irflow_domain::{Action, Actor, CaseId, Modality, Role, UserId};
use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, hide_denial, outcome_of, scope_of};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

// The bookings busy in a window of a site, as one row, not one per booking: through
// sqlx's `Any` driver each row costs microseconds (on SQLite a message from the
// connection's worker thread and a column conversion per row), which was most of a
// search's time. The bookings come back as one string of numbers, nine per booking
// (`parse_booked`). Parameters: the site; the window's start less a day, so that
// the index range is the window and not all history (no booking, with turnaround and
// recovery chair, lasts a day); the window's end; its start twice (what is busy
// after it is then picked exactly).
macro_rules! busy_where {
    () => {
        " FROM appointments a JOIN rooms r ON r.id = a.room_id
         WHERE a.status = 'booked' AND a.site_id = ?
           AND a.starts_at >= ? AND a.starts_at < ?
           AND (a.ends_at + r.turnaround_minutes * 60000000 > ? OR COALESCE(a.chair_ends_at, 0) > ?)"
    };
}
macro_rules! booked_sqlite {
    () => {
        concat!(
            "SELECT group_concat(a.id || ' ' || a.room_id || ' ' || a.radiologist_id || ' ' || a.starts_at
                    || ' ' || a.ends_at || ' ' || r.turnaround_minutes || ' ' || COALESCE(a.chair_id, 0)
                    || ' ' || COALESCE(a.chair_starts_at, 0) || ' ' || COALESCE(a.chair_ends_at, 0), ' ')",
            busy_where!()
        )
    };
}
macro_rules! booked_postgres {
    () => {
        concat!(
            "SELECT string_agg(concat_ws(' ', a.id, a.room_id, a.radiologist_id, a.starts_at, a.ends_at,
                    r.turnaround_minutes, COALESCE(a.chair_id, 0),
                    COALESCE(a.chair_starts_at, 0), COALESCE(a.chair_ends_at, 0)), ' ')",
            busy_where!()
        )
    };
}
pub(crate) use {booked_postgres, booked_sqlite, busy_where};

/// The department's configuration as of one `resource_version`: the default site,
/// the procedure catalogue, the site's rooms, chairs and radiologists' names, what
/// slot searches are configured from (weekly hours, credentials, turnarounds) and
/// the closures still to come. Every change to any of these, from any process, bumps
/// the version (database triggers, migrations 0006 and 0010), so a process keeps
/// one in memory and checks it with one cheap read. Bookings are never in it.
#[derive(Debug)]
pub struct Department {
    version: i64,
    /// The site (the first one: single-site departments).
    pub site: SiteRecord,
    /// The whole procedure catalogue, by code.
    pub procedures: Vec<irflow_domain::Procedure>,
    /// The site's active rooms.
    pub rooms: Vec<RoomRecord>,
    /// The site's active recovery chairs: id and name.
    pub chairs: Vec<(i64, String)>,
    /// Radiologists (active or not): user id and display name.
    pub radiologists: Vec<(i64, String)>,
    config: SlotResources,
    /// Closures that had not ended when this was read.
    closures: Vec<(ResourceId, Interval)>,
    loaded_at: Timestamp,
}

impl Department {
    /// A procedure of the catalogue.
    pub fn procedure(&self, code: &str) -> Option<&irflow_domain::Procedure> {
        self.procedures.iter().find(|p| p.code == code)
    }

    /// A room's name.
    pub fn room(&self, id: i64) -> Option<&RoomRecord> {
        self.rooms.iter().find(|r| r.id == id)
    }

    /// A chair's name.
    pub fn chair_name(&self, id: i64) -> Option<&str> {
        self.chairs
            .iter()
            .find(|(c, _)| *c == id)
            .map(|(_, n)| n.as_str())
    }

    /// A radiologist's display name.
    pub fn radiologist_name(&self, id: i64) -> Option<&str> {
        self.radiologists
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, n)| n.as_str())
    }
}

/// Minutes per reservation unit.
pub const UNIT_MINUTES: i64 = 5;

/// A site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiteRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// IANA time zone.
    pub time_zone: String,
}

/// What kind of resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    /// A room.
    Room,
    /// A radiologist.
    Radiologist,
    /// A recovery chair.
    Chair,
}

impl ResourceKind {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Room => "room",
            ResourceKind::Radiologist => "radiologist",
            ResourceKind::Chair => "chair",
        }
    }
}

/// A booked appointment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRecord {
    /// Id.
    pub id: i64,
    /// The case.
    pub case_id: CaseId,
    /// The site.
    pub site_id: i64,
    /// Room.
    pub room_id: i64,
    /// Room name.
    pub room_name: String,
    /// Radiologist.
    pub radiologist_id: i64,
    /// Radiologist's name.
    pub radiologist_name: String,
    /// Recovery chair, if reserved.
    pub chair_id: Option<i64>,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Chair window.
    pub chair_window: Option<(Timestamp, Timestamp)>,
    /// `booked` or `cancelled`.
    pub status: String,
    /// `arrived` (checked in) or `no_show`, once known.
    pub attendance: Option<String>,
}

impl AppointmentRecord {
    /// One word for the appointment's state: `booked`, `arrived`, `no_show` or `cancelled`.
    /// A patient who came and was sent home untreated (or whose case was cancelled
    /// after check-in) is `cancelled`: the appointment no longer holds its time.
    pub fn state(&self) -> &str {
        match (self.attendance.as_deref(), self.status.as_str()) {
            (Some("arrived"), "cancelled") => "cancelled",
            (Some(a), _) => a,
            (None, s) => s,
        }
    }
}

/// An appointment with whom it is for, as calendars and searches list it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentListing {
    /// The appointment.
    pub appointment: AppointmentRecord,
    /// The patient.
    pub patient_id: i64,
    /// Family name.
    pub family_name: String,
    /// Given name.
    pub given_name: String,
    /// Local MRN, if known.
    pub mrn: Option<String>,
    /// Ordered procedure (CPT).
    pub procedure_code: String,
    /// Its name.
    pub procedure_name: String,
    /// Where the case is on the pathway.
    pub case_state: irflow_domain::CaseState,
}

/// Which appointments to list. Times bound the appointment's start.
#[derive(Debug, Clone, Default)]
pub struct AppointmentFilter {
    /// Starting at or after.
    pub from: Option<Timestamp>,
    /// Starting before.
    pub to: Option<Timestamp>,
    /// Only this patient's.
    pub patient: Option<i64>,
    /// Only in this room.
    pub room: Option<i64>,
    /// Only with this radiologist.
    pub radiologist: Option<i64>,
    /// Also cancelled ones (and no-shows).
    pub include_cancelled: bool,
    /// At most this many (default 500).
    pub limit: Option<i64>,
}

fn weekday_number(w: Weekday) -> i64 {
    i64::from(w.to_monday_one_offset())
}

fn units(start: Timestamp, end: Timestamp) -> std::ops::Range<i64> {
    let unit = UNIT_MINUTES * 60;
    let s = start.as_second().div_euclid(unit);
    let e = (end.as_second() + unit - 1).div_euclid(unit);
    s..e
}

impl Store {
    /// Creates a site.
    pub async fn create_site(&self, actor: &Actor, name: &str, time_zone: &str) -> Result<i64> {
        admin_only(actor)?;
        TimeZone::get(time_zone).map_err(|_| StoreError::Field {
            field: "time_zone",
            message: format!("{time_zone:?} is not an IANA time zone"),
        })?;
        let id: i64 = sqlx::query_scalar(
            self.sql("INSERT INTO sites (name, time_zone) VALUES (?, ?) RETURNING id"),
        )
        .bind(name.trim().to_owned())
        .bind(time_zone.to_owned())
        .fetch_one(&self.pool)
        .await?;
        self.record_audit(
            NewAuditEvent::new(actor, "create", "site", AuditOutcome::Success).entity(id),
        )
        .await?;
        Ok(id)
    }

    /// Adds a room with its turnaround (a multiple of 5 minutes).
    pub async fn create_room(
        &self,
        actor: &Actor,
        site: i64,
        name: &str,
        modality: Modality,
        turnaround_minutes: u32,
    ) -> Result<i64> {
        admin_only(actor)?;
        if !turnaround_minutes.is_multiple_of(5) || turnaround_minutes > 120 {
            return Err(StoreError::Field {
                field: "turnaround_minutes",
                message: "a multiple of 5 minutes, at most 120".to_owned(),
            });
        }
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO rooms (site_id, name, modality, turnaround_minutes, active) VALUES (?, ?, ?, ?, 1) RETURNING id",
        ))
        .bind(site)
        .bind(name.trim().to_owned())
        .bind(modality.as_str())
        .bind(i64::from(turnaround_minutes))
        .fetch_one(&self.pool)
        .await?;
        self.record_audit(
            NewAuditEvent::new(actor, "create", "room", AuditOutcome::Success).entity(id),
        )
        .await?;
        Ok(id)
    }

    /// Adds a recovery chair.
    pub async fn create_chair(&self, actor: &Actor, site: i64, name: &str) -> Result<i64> {
        admin_only(actor)?;
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO recovery_chairs (site_id, name, active) VALUES (?, ?, 1) RETURNING id",
        ))
        .bind(site)
        .bind(name.trim().to_owned())
        .fetch_one(&self.pool)
        .await?;
        self.record_audit(
            NewAuditEvent::new(actor, "create", "chair", AuditOutcome::Success).entity(id),
        )
        .await?;
        Ok(id)
    }

    /// Sets the procedures a radiologist is credentialed for.
    pub async fn set_credentials(
        &self,
        actor: &Actor,
        radiologist: UserId,
        codes: &[&str],
    ) -> Result<()> {
        admin_only(actor)?;
        let user = self.user(radiologist).await?;
        if user.role != Role::Radiologist {
            return Err(StoreError::Field {
                field: "radiologist",
                message: format!("{} is not a radiologist", user.username),
            });
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql("DELETE FROM radiologist_procedures WHERE user_id = ?"))
            .bind(radiologist.get())
            .execute(&mut *tx)
            .await?;
        for code in codes {
            sqlx::query(
                self.sql(
                    "INSERT INTO radiologist_procedures (user_id, procedure_code) VALUES (?, ?)",
                ),
            )
            .bind(radiologist.get())
            .bind((*code).to_owned())
            .execute(&mut *tx)
            .await
            .map_err(|e| match e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::Field {
                    field: "procedure",
                    message: format!("{code} is not in the catalogue"),
                },
                other => other.into(),
            })?;
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "update", "credentials", AuditOutcome::Success)
                .entity(radiologist)
                .detail(codes.join(",")),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a weekly availability window (local civil time).
    pub async fn add_availability(
        &self,
        actor: &Actor,
        kind: ResourceKind,
        resource: i64,
        window: WeeklyWindow,
    ) -> Result<()> {
        admin_only(actor)?;
        if window.start >= window.end {
            return Err(StoreError::Field {
                field: "end_time",
                message: "the window must end after it starts".to_owned(),
            });
        }
        sqlx::query(self.sql("INSERT INTO availability (resource_kind, resource_id, weekday, start_time, end_time) VALUES (?, ?, ?, ?, ?)"))
            .bind(kind.as_str())
            .bind(resource)
            .bind(weekday_number(window.weekday))
            .bind(window.start.strftime("%H:%M").to_string())
            .bind(window.end.strftime("%H:%M").to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The first site (single-site departments; multi-site selection comes with the admin pages).
    pub async fn default_site(&self) -> Result<Option<SiteRecord>> {
        let row = sqlx::query("SELECT id, name, time_zone FROM sites ORDER BY id LIMIT 1")
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| {
            Ok(SiteRecord {
                id: r.try_get("id")?,
                name: r.try_get("name")?,
                time_zone: r.try_get("time_zone")?,
            })
        })
        .transpose()
    }

    /// Everything the slot finder needs for a site, with bookings and closures
    /// between `from` and `to`. Not patient data (no audit): ids and times only.
    pub async fn slot_resources(
        &self,
        site: &SiteRecord,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<SlotResources> {
        self.load_slot_resources(site, from, to, None).await
    }

    /// The finder's options for a request. Bookings are loaded for the days searched,
    /// from the request's first day (not from `not_before`), a few days at a time:
    /// the first day, then up to 3, 7 and the whole horizon, each step adding only
    /// the new days, until `limit` options are found. Most searches end on the first
    /// day; the result is the same as searching the whole horizon at once. `exclude`
    /// leaves one appointment out (the case's own, when moving it).
    pub async fn search_slots(
        &self,
        site: &SiteRecord,
        req: &SlotRequest,
        exclude: Option<i64>,
    ) -> Result<Vec<SlotOption>> {
        let dept = self.department().await?;
        match dept {
            Some(dept) if dept.site == *site => self.search_slots_in(&dept, req, exclude).await,
            _ => {
                let config = self.slot_config(site).await?;
                self.staged_search(site, config, None, req, exclude, None)
                    .await
            }
        }
    }

    /// As [`Store::search_slots`], in a department read with [`Store::department`].
    pub async fn search_slots_in(
        &self,
        dept: &Department,
        req: &SlotRequest,
        exclude: Option<i64>,
    ) -> Result<Vec<SlotOption>> {
        self.search_slots_ahead(dept, req, exclude, None).await
    }

    /// As [`Store::search_slots_in`], with the first step's bookings already read
    /// (by [`Store::search_start_then`]), used when they cover the first step.
    pub async fn search_slots_ahead(
        &self,
        dept: &Department,
        req: &SlotRequest,
        exclude: Option<i64>,
        ahead: Option<ReadAhead>,
    ) -> Result<Vec<SlotOption>> {
        self.staged_search(
            &dept.site,
            dept.config.clone(),
            Some(dept),
            req,
            exclude,
            ahead,
        )
        .await
    }

    /// Inserts one resource's reservation rows for an appointment, one per 5-minute
    /// unit, in one statement (a booking used to send one statement per row, about
    /// twenty). A unit already taken fails the whole statement with a unique
    /// violation: the reservations' primary key is what forbids double booking.
    pub(crate) async fn insert_reservations(
        &self,
        conn: &mut sqlx::AnyConnection,
        kind: &str,
        resource: i64,
        units: std::ops::Range<i64>,
        appointment: i64,
    ) -> std::result::Result<(), sqlx::Error> {
        if units.is_empty() {
            return Ok(());
        }
        let mut sql = String::from(
            "INSERT INTO reservations (resource_kind, resource_id, unit, appointment_id) VALUES ",
        );
        for unit in units.clone() {
            if unit > units.start {
                sql.push_str(", ");
            }
            sql.push_str("(?, ?, ?, ?)");
        }
        let sql = match self.backend {
            crate::Backend::Sqlite => sql,
            crate::Backend::Postgres => crate::numbered_placeholders(&sql),
        };
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for unit in units {
            query = query
                .bind(kind.to_owned())
                .bind(resource)
                .bind(unit)
                .bind(appointment);
        }
        query.execute(conn).await.map(|_| ())
    }

    /// The window a search from `day` looks at first (its first open day), in the
    /// department last read by [`Store::department`]: the site, the window's start
    /// and end. `None` when no department has been read yet. Its bookings can then be
    /// read beside the case's context (see [`Store::search_start_then`]) instead of
    /// after it.
    pub(crate) fn ahead_window(
        &self,
        day: Date,
        horizon: u32,
    ) -> Option<(i64, Timestamp, Timestamp)> {
        let dept = self.department.lock().ok()?.clone()?;
        let tz = dept.config.tz.clone();
        let days = *stage_ends(&dept.config, day, horizon).first()?;
        let from = day.to_zoned_datetime(tz.clone()).ok()?.timestamp();
        let until = day
            .checked_add(jiff::Span::new().days(i64::from(days)))
            .ok()?
            .to_zoned_datetime(tz)
            .ok()?
            .timestamp();
        Some((dept.site.id, from, until))
    }

    async fn staged_search(
        &self,
        site: &SiteRecord,
        mut res: SlotResources,
        dept: Option<&Department>,
        req: &SlotRequest,
        exclude: Option<i64>,
        mut ahead: Option<ReadAhead>,
    ) -> Result<Vec<SlotOption>> {
        let tz = res.tz.clone();
        let first_day = req
            .from
            .max(req.not_before.to_zoned_datetime(tz.clone()).date());
        let start_of = |d: Date| -> Result<Timestamp> {
            Ok(d.to_zoned_datetime(tz.clone())
                .map_err(|e| StoreError::Invalid(format!("date {d}: {e}")))?
                .timestamp())
        };
        let mut loaded = start_of(first_day)?.max(req.not_before);
        let mut days = 0;
        for stage in stage_ends(&res, first_day, req.days_ahead) {
            if stage <= days {
                continue;
            }
            days = stage;
            let until = start_of(
                first_day
                    .checked_add(jiff::Span::new().days(i64::from(days)))
                    .map_err(|e| StoreError::Invalid(e.to_string()))?,
            )?;
            // Closures from memory when the department's copy covers the window.
            let closures = dept
                .filter(|d| d.loaded_at <= loaded)
                .map(|d| &d.closures[..]);
            // What was read ahead serves the first step when it covers it: it holds
            // everything busy after `loaded` that starts before `until` (and perhaps
            // bookings over before `loaded`, which no option can meet).
            match ahead.take() {
                Some(a) if a.site == site.id && a.from <= loaded && a.until == until => {
                    add_booked(&mut res, &a.booked, exclude)?;
                    self.add_closures(&mut res, loaded, until, closures).await?;
                }
                _ => {
                    self.add_busy_with(&mut res, site, loaded, until, exclude, closures)
                        .await?;
                }
            }
            loaded = until;
            let found = find_slots(
                &res,
                &SlotRequest {
                    days_ahead: days,
                    ..req.clone()
                },
            );
            if search_is_complete(&found, req, &tz) || days >= req.days_ahead {
                return Ok(found);
            }
        }
        Ok(Vec::new())
    }

    /// As [`Store::slot_resources`], leaving one appointment out (to move it).
    pub async fn slot_resources_excluding(
        &self,
        site: &SiteRecord,
        from: Timestamp,
        to: Timestamp,
        appointment: i64,
    ) -> Result<SlotResources> {
        self.load_slot_resources(site, from, to, Some(appointment))
            .await
    }

    async fn load_slot_resources(
        &self,
        site: &SiteRecord,
        from: Timestamp,
        to: Timestamp,
        exclude: Option<i64>,
    ) -> Result<SlotResources> {
        let mut res = self.slot_config(site).await?;
        self.add_busy(&mut res, site, from, to, exclude).await?;
        Ok(res)
    }

    /// The department's configuration ([`Department`]), from memory while the
    /// database's `resource_version` says it is still current, else read afresh (and
    /// kept). The version is read before the configuration, so a change that lands in
    /// between only causes one extra reload. `None` when no site is configured yet.
    /// Not patient data (no audit). The check made when booking reads everything
    /// afresh, so a stale copy could at worst offer a time that booking then refuses.
    pub async fn department(&self) -> Result<Option<std::sync::Arc<Department>>> {
        let version: i64 = sqlx::query_scalar("SELECT version FROM resource_version WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        self.department_at(version).await
    }

    /// The department as of `version` (just read): the copy in memory if it is that
    /// version, else read afresh.
    pub(crate) async fn department_at(
        &self,
        version: i64,
    ) -> Result<Option<std::sync::Arc<Department>>> {
        if let Ok(cache) = self.department.lock()
            && let Some(d) = cache.as_ref()
            && d.version == version
        {
            return Ok(Some(d.clone()));
        }
        let Some(site) = self.default_site().await? else {
            return Ok(None);
        };
        let loaded_at = Timestamp::now();
        let procedures = self.procedures().await?;
        let rooms = self.rooms(site.id).await?;
        let chairs = self.chairs(site.id).await?;
        let radiologists = sqlx::query(
            "SELECT id, display_name FROM users WHERE role = 'radiologist' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("display_name")?)))
        .collect::<Result<Vec<(i64, String)>>>()?;
        let config = self.slot_config(&site).await?;
        let closures = sqlx::query(self.sql(
            "SELECT resource_kind, resource_id, starts_at, ends_at FROM closures WHERE ends_at > ?",
        ))
        .bind(micros(loaded_at))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(closure_from_row)
        .collect::<Result<Vec<_>>>()?;
        let dept = std::sync::Arc::new(Department {
            version,
            site,
            procedures,
            rooms,
            chairs,
            radiologists,
            config,
            closures,
            loaded_at,
        });
        if let Ok(mut cache) = self.department.lock() {
            *cache = Some(dept.clone());
        }
        Ok(Some(dept))
    }

    /// The site's rooms, radiologists and chairs with their weekly hours; nothing busy yet.
    async fn slot_config(&self, site: &SiteRecord) -> Result<SlotResources> {
        let tz = TimeZone::get(&site.time_zone)
            .map_err(|e| StoreError::Corrupt(format!("site time zone: {e}")))?;
        let windows = sqlx::query(
            "SELECT resource_kind, resource_id, weekday, start_time, end_time FROM availability",
        )
        .fetch_all(&self.pool)
        .await?;
        let window_of = |row: &AnyRow| -> Result<(String, i64, WeeklyWindow)> {
            let wd: i64 = row.try_get("weekday")?;
            let weekday = Weekday::from_monday_one_offset(i8::try_from(wd).unwrap_or(0))
                .map_err(|e| StoreError::Corrupt(format!("weekday {wd}: {e}")))?;
            let start: String = row.try_get("start_time")?;
            let end: String = row.try_get("end_time")?;
            Ok((
                row.try_get("resource_kind")?,
                row.try_get("resource_id")?,
                WeeklyWindow {
                    weekday,
                    start: parse_stored::<Time>("time", &start)?,
                    end: parse_stored::<Time>("time", &end)?,
                },
            ))
        };
        let windows: Vec<(String, i64, WeeklyWindow)> =
            windows.iter().map(window_of).collect::<Result<_>>()?;
        let of = |kind: &str, id: i64| {
            windows
                .iter()
                .filter(|(k, i, _)| k == kind && *i == id)
                .map(|(_, _, w)| *w)
                .collect::<Vec<_>>()
        };
        let rooms = sqlx::query(self.sql("SELECT id, modality, turnaround_minutes FROM rooms WHERE site_id = ? AND active = 1 ORDER BY id"))
            .bind(site.id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                let id: i64 = r.try_get("id")?;
                let modality: String = r.try_get("modality")?;
                let turnaround: i64 = r.try_get("turnaround_minutes")?;
                Ok(RoomInfo {
                    id,
                    modality: parse_stored("modality", &modality)?,
                    turnaround_minutes: u32::try_from(turnaround).unwrap_or(0),
                    windows: of("room", id),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let creds = sqlx::query(
            "SELECT rp.user_id, rp.procedure_code FROM radiologist_procedures rp JOIN users u ON u.id = rp.user_id
             WHERE u.disabled_at IS NULL ORDER BY rp.user_id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut radiologists: Vec<RadiologistInfo> = Vec::new();
        for row in &creds {
            let id: i64 = row.try_get("user_id")?;
            let code: String = row.try_get("procedure_code")?;
            match radiologists.iter_mut().find(|r| r.id == id) {
                Some(r) => r.procedures.push(code),
                None => radiologists.push(RadiologistInfo {
                    id,
                    procedures: vec![code],
                    windows: of("radiologist", id),
                }),
            }
        }
        let chairs = sqlx::query(
            self.sql("SELECT id FROM recovery_chairs WHERE site_id = ? AND active = 1 ORDER BY id"),
        )
        .bind(site.id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| {
            let id: i64 = r.try_get("id")?;
            Ok(ChairInfo {
                id,
                windows: of("chair", id),
            })
        })
        .collect::<Result<Vec<_>>>()?;
        Ok(SlotResources {
            tz,
            rooms,
            radiologists,
            chairs,
            busy: BusyIndex::new(),
            closed: BusyIndex::new(),
        })
    }

    /// Adds the bookings and closures busy at any time in `[from, to)`: each
    /// booking's room (with turnaround), radiologist and chair, loaded once even
    /// when windows are added one after another.
    async fn add_busy(
        &self,
        res: &mut SlotResources,
        site: &SiteRecord,
        from: Timestamp,
        to: Timestamp,
        exclude: Option<i64>,
    ) -> Result<()> {
        self.add_busy_with(res, site, from, to, exclude, None).await
    }

    /// As [`Store::add_busy`], taking the closures from `closures` (already read, all
    /// those not ended by `from`) instead of the database when given.
    async fn add_busy_with(
        &self,
        res: &mut SlotResources,
        site: &SiteRecord,
        from: Timestamp,
        to: Timestamp,
        exclude: Option<i64>,
        closures: Option<&[(ResourceId, Interval)]>,
    ) -> Result<()> {
        let booked = self.booked_between(site.id, from, to).await?;
        add_booked(res, &booked, exclude)?;
        self.add_closures(res, from, to, closures).await
    }

    /// The bookings busy after `from` that start before `to`: per booking its id,
    /// room, radiologist, start, end, the room's turnaround (minutes), and chair, chair
    /// start and chair end (0 when none).
    async fn booked_between(
        &self,
        site: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<[i64; 9]>> {
        let query = match self.backend {
            crate::Backend::Sqlite => booked_sqlite!(),
            crate::Backend::Postgres => booked_postgres!(),
        };
        let booked: Option<String> = sqlx::query_scalar(self.sql(query))
            .bind(site)
            .bind(micros(from - jiff::SignedDuration::from_hours(24)))
            .bind(micros(to))
            .bind(micros(from))
            .bind(micros(from))
            .fetch_one(&self.pool)
            .await?;
        parse_booked(booked.as_deref())
    }

    /// Adds the closures between `from` and `to`: from `closures` (already read, all
    /// those not ended by `from`) when given, else from the database.
    async fn add_closures(
        &self,
        res: &mut SlotResources,
        from: Timestamp,
        to: Timestamp,
        closures: Option<&[(ResourceId, Interval)]>,
    ) -> Result<()> {
        if let Some(closures) = closures {
            for (resource, interval) in closures {
                if interval.end > from && interval.start < to {
                    res.add_closure(*resource, *interval);
                }
            }
            return Ok(());
        }
        let closures = sqlx::query(self.sql("SELECT resource_kind, resource_id, starts_at, ends_at FROM closures WHERE ends_at > ? AND starts_at < ?"))
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(&self.pool)
            .await?;
        for row in &closures {
            let (resource, interval) = closure_from_row(row)?;
            res.add_closure(resource, interval);
        }
        Ok(())
    }

    /// Books a checked option for a ready case, atomically: the appointment, one
    /// reservation per resource per 5-minute unit (room with turnaround, radiologist,
    /// chair), the case's move to scheduled, the timeline and the audit event. If any
    /// resource was taken meanwhile the database refuses and nothing is stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn book_appointment(
        &self,
        actor: &Actor,
        case_id: CaseId,
        site: &SiteRecord,
        option: &SlotOption,
        turnaround_minutes: u32,
        idempotency_key: Option<String>,
        at: Timestamp,
        today: Date,
    ) -> Result<AppointmentRecord> {
        let key = idempotency_key.as_deref();
        let done = match key {
            Some(key) => self.booking_with_key(key, case_id, option).await,
            None => Ok(None),
        };
        let result = match done {
            Ok(Some(retried)) => return Ok(retried),
            Ok(None) => {
                self.insert_booking(
                    actor,
                    case_id,
                    site,
                    option,
                    turnaround_minutes,
                    idempotency_key.clone(),
                    None,
                    at,
                    today,
                )
                .await
            }
            Err(e) => Err(e),
        };
        // A request with the same key may have won meanwhile (the key is unique, so
        // this one's insert failed): its booking is this one's answer.
        let result = match (result, key) {
            (Err(e), Some(key)) => match self.booking_with_key(key, case_id, option).await {
                Ok(Some(retried)) => Ok(retried),
                Ok(None) => Err(e),
                Err(misused) => Err(misused),
            },
            (result, _) => result,
        };
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "book", "case", outcome_of(e)).entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    /// As [`Store::booked_with_key`], with the appointment.
    async fn booking_with_key(
        &self,
        key: &str,
        case_id: CaseId,
        option: &SlotOption,
    ) -> Result<Option<AppointmentRecord>> {
        match self
            .booked_with_key(key, case_id, option.start, option.room, option.radiologist)
            .await?
        {
            Some(id) => Ok(Some(self.appointment_by_id(id).await?)),
            None => Ok(None),
        }
    }

    /// The appointment booked with an `Idempotency-Key` when it is this request's
    /// (the same case, start, room and radiologist): a retry, even one that lost a
    /// race to the first attempt, answers with it. A key names one request: any
    /// other use of it is refused. `None` when the key has not been used.
    pub async fn booked_with_key(
        &self,
        key: &str,
        case_id: CaseId,
        start: Timestamp,
        room: i64,
        radiologist: i64,
    ) -> Result<Option<i64>> {
        let existing: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT id FROM appointments WHERE idempotency_key = ?"))
                .bind(key.to_owned())
                .fetch_optional(&self.pool)
                .await?;
        let Some(id) = existing else {
            return Ok(None);
        };
        let a = self.appointment_by_id(id).await?;
        if a.case_id == case_id
            && a.start == start
            && a.room_id == room
            && a.radiologist_id == radiologist
        {
            Ok(Some(id))
        } else {
            Err(StoreError::Invalid(
                "this Idempotency-Key was already used for a different booking; send a new key with a new request".to_owned(),
            ))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_booking(
        &self,
        actor: &Actor,
        case_id: CaseId,
        site: &SiteRecord,
        option: &SlotOption,
        turnaround_minutes: u32,
        idempotency_key: Option<String>,
        reschedule: Option<&str>,
        at: Timestamp,
        today: Date,
    ) -> Result<AppointmentRecord> {
        if !matches!(actor.role, Some(Role::Scheduler | Role::Admin) | None) {
            return Err(StoreError::Denied("appointments are booked by schedulers"));
        }
        let scope = scope_of(actor)?;
        let case = self.case_summary(case_id).await?;
        if !scope.allows(case.referrer_id) {
            return Err(StoreError::Denied("not a case this referrer referred"));
        }
        let (request, replaced) = match reschedule {
            None => (TransitionRequest::new(Action::Schedule), None),
            Some(reason) => {
                let old: Option<i64> = sqlx::query_scalar(self.sql(
                    "SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'",
                ))
                .bind(case_id.get())
                .fetch_one(&self.pool)
                .await?;
                let old = old.ok_or_else(|| {
                    StoreError::Conflict("this case has no booked appointment to move".to_owned())
                })?;
                (
                    TransitionRequest::new(Action::Reschedule).because(reason.to_owned()),
                    Some(old),
                )
            }
        };
        let event = pathway::decide(case.state, &request, &booking_actor(actor), at, today)?;
        let mut tx = self.pool.begin().await?;
        if let Some(old) = replaced {
            // The old time is released in the same transaction: if the new time is
            // taken, everything rolls back and the old booking stands.
            sqlx::query(self.sql("DELETE FROM reservations WHERE appointment_id = ?"))
                .bind(old)
                .execute(&mut *tx)
                .await?;
            sqlx::query(self.sql(
                "UPDATE appointments SET status = 'cancelled', cancelled_reason = ? WHERE id = ?",
            ))
            .bind(event.reason.clone().map(|r| format!("moved: {r}")))
            .bind(old)
            .execute(&mut *tx)
            .await?;
        }
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO appointments (case_id, site_id, room_id, radiologist_id, chair_id, starts_at, ends_at,
                                       chair_starts_at, chair_ends_at, status, created_by, created_at, idempotency_key)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?, ?, ?) RETURNING id",
        ))
        .bind(case_id.get())
        .bind(site.id)
        .bind(option.room)
        .bind(option.radiologist)
        .bind(option.chair.map(|c| c.chair))
        .bind(micros(option.start))
        .bind(micros(option.end))
        .bind(option.chair.map(|c| micros(c.start)))
        .bind(option.chair.map(|c| micros(c.end)))
        .bind(actor.username.clone())
        .bind(micros(at))
        .bind(idempotency_key)
        .fetch_one(&mut *tx)
        .await?;
        let room_end = option.end + jiff::SignedDuration::from_mins(i64::from(turnaround_minutes));
        let mut claims: Vec<(&str, i64, std::ops::Range<i64>)> = vec![
            ("room", option.room, units(option.start, room_end)),
            (
                "radiologist",
                option.radiologist,
                units(option.start, option.end),
            ),
        ];
        if let Some(c) = option.chair {
            claims.push(("chair", c.chair, units(c.start, c.end)));
        }
        for (kind, resource, range) in claims {
            match self
                .insert_reservations(&mut tx, kind, resource, range, id)
                .await
            {
                Ok(()) => {}
                Err(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                    return Err(StoreError::Conflict(format!(
                        "the {kind} was booked by someone else meanwhile; choose another time"
                    )));
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.set_case_state(&mut tx, case_id, event.to, case.version, at)
            .await?;
        let when = option.start.strftime("%Y-%m-%dT%H:%MZ").to_string();
        self.insert_timeline(
            &mut tx,
            case_id,
            &Timeline {
                action: event.action.as_str(),
                from: Some(event.from),
                to: event.to,
                reason: Some(match (&replaced, &event.reason) {
                    (Some(_), Some(why)) => format!("Moved to {when} (appointment {id}): {why}"),
                    _ => format!("Booked for {when} (appointment {id})"),
                }),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            at,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(
                actor,
                if replaced.is_some() {
                    "reschedule"
                } else {
                    "book"
                },
                "case",
                AuditOutcome::Success,
            )
            .entity(case_id)
            .detail(format!(
                "appointment={id} room={} radiologist={}",
                option.room, option.radiologist
            )),
            at,
        )
        .await?;
        tx.commit().await?;
        self.appointment_by_id(id).await
    }

    /// Moves the case's appointment to a checked new option, atomically: the old
    /// reservations are released and the new ones claimed in one transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn reschedule_appointment(
        &self,
        actor: &Actor,
        case_id: CaseId,
        site: &SiteRecord,
        option: &SlotOption,
        turnaround_minutes: u32,
        reason: &str,
        at: Timestamp,
        today: Date,
    ) -> Result<AppointmentRecord> {
        let result = self
            .insert_booking(
                actor,
                case_id,
                site,
                option,
                turnaround_minutes,
                None,
                Some(reason),
                at,
                today,
            )
            .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "reschedule", "case", outcome_of(e)).entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    pub(crate) async fn appointment_by_id(&self, id: i64) -> Result<AppointmentRecord> {
        let row = sqlx::query(self.sql(
            "SELECT a.id, a.case_id, a.site_id, a.room_id, r.name AS room_name, a.radiologist_id, u.display_name AS radiologist_name,
                    a.chair_id, a.starts_at, a.ends_at, a.chair_starts_at, a.chair_ends_at, a.status, a.attendance
             FROM appointments a JOIN rooms r ON r.id = a.room_id JOIN users u ON u.id = a.radiologist_id
             WHERE a.id = ?",
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        appointment_from_row(&row)
    }

    /// The case's current (booked) appointment, if any (audited read).
    pub async fn appointment_for_case(
        &self,
        actor: &Actor,
        case_id: CaseId,
    ) -> Result<Option<AppointmentRecord>> {
        let result = async {
            let scope = scope_of(actor)?;
            let case = self.case_summary(case_id).await?;
            if !scope.allows(case.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let id: Option<i64> =
                sqlx::query_scalar(self.sql(
                    "SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'",
                ))
                .bind(case_id.get())
                .fetch_one(&self.pool)
                .await?;
            match id {
                Some(id) => Ok(Some(self.appointment_by_id(id).await?)),
                None => Ok(None),
            }
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "appointment", outcome).entity(case_id),
        )
        .await?;
        result.map_err(hide_denial)
    }

    /// Cancels the case's appointment: its reservations are released and the case is
    /// ready to book again.
    pub async fn cancel_appointment(
        &self,
        actor: &Actor,
        case_id: CaseId,
        reason: &str,
        at: Timestamp,
        today: Date,
    ) -> Result<()> {
        let result = self.apply_cancel(actor, case_id, reason, at, today).await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "cancel_appointment", "case", outcome_of(e))
                    .entity(case_id),
            )
            .await?;
        }
        result.map_err(hide_denial)
    }

    async fn apply_cancel(
        &self,
        actor: &Actor,
        case_id: CaseId,
        reason: &str,
        at: Timestamp,
        today: Date,
    ) -> Result<()> {
        if !matches!(actor.role, Some(Role::Scheduler | Role::Admin) | None) {
            return Err(StoreError::Denied(
                "appointments are cancelled by schedulers",
            ));
        }
        let case = self.case_summary(case_id).await?;
        let id: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT MAX(id) FROM appointments WHERE case_id = ? AND status = 'booked'"),
        )
        .bind(case_id.get())
        .fetch_one(&self.pool)
        .await?;
        let Some(id) = id else {
            return Err(StoreError::Conflict(
                "this case has no booked appointment".to_owned(),
            ));
        };
        let request = TransitionRequest::new(Action::Unschedule).because(reason.to_owned());
        let event = pathway::decide(case.state, &request, &booking_actor(actor), at, today)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(self.sql("DELETE FROM reservations WHERE appointment_id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(self.sql(
            "UPDATE appointments SET status = 'cancelled', cancelled_reason = ? WHERE id = ?",
        ))
        .bind(event.reason.clone())
        .bind(id)
        .execute(&mut *tx)
        .await?;
        self.set_case_state(&mut tx, case_id, event.to, case.version, at)
            .await?;
        self.insert_timeline(
            &mut tx,
            case_id,
            &Timeline {
                action: event.action.as_str(),
                from: Some(event.from),
                to: event.to,
                reason: event.reason.clone(),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            at,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "cancel_appointment", "case", AuditOutcome::Success)
                .entity(case_id)
                .detail(format!("appointment={id}")),
            at,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// Admins may book (they configure the department); the pathway lets schedulers
/// schedule, so an admin books in the scheduler's role for the pathway check.
fn booking_actor(actor: &Actor) -> Actor {
    match actor.role {
        Some(Role::Admin) => Actor {
            role: Some(Role::Scheduler),
            ..actor.clone()
        },
        _ => actor.clone(),
    }
}

fn admin_only(actor: &Actor) -> Result<()> {
    match actor.role {
        Some(Role::Admin) | None => Ok(()),
        _ => Err(StoreError::Denied(
            "only administrators configure the department's resources",
        )),
    }
}

fn appointment_from_row(row: &AnyRow) -> Result<AppointmentRecord> {
    appointment_from_prefixed(row, "")
}

/// An appointment from a row whose appointment columns are named `{prefix}id` and so
/// on (as `appointment_by_id` reads them, prefixed when joined to other tables).
pub(crate) fn appointment_from_prefixed(row: &AnyRow, prefix: &str) -> Result<AppointmentRecord> {
    let col = |name: &str| format!("{prefix}{name}");
    let cs: Option<i64> = row.try_get(&*col("chair_starts_at"))?;
    let ce: Option<i64> = row.try_get(&*col("chair_ends_at"))?;
    Ok(AppointmentRecord {
        id: row.try_get(&*col("id"))?,
        case_id: CaseId::new(row.try_get(&*col("case_id"))?),
        site_id: row.try_get(&*col("site_id"))?,
        room_id: row.try_get(&*col("room_id"))?,
        room_name: row.try_get(&*col("room_name"))?,
        radiologist_id: row.try_get(&*col("radiologist_id"))?,
        radiologist_name: row.try_get(&*col("radiologist_name"))?,
        chair_id: row.try_get(&*col("chair_id"))?,
        start: from_micros(row.try_get(&*col("starts_at"))?)?,
        end: from_micros(row.try_get(&*col("ends_at"))?)?,
        chair_window: match (cs, ce) {
            (Some(s), Some(e)) => Some((from_micros(s)?, from_micros(e)?)),
            _ => None,
        },
        status: row.try_get(&*col("status"))?,
        attendance: row.try_get(&*col("attendance"))?,
    })
}

/// The bookings read by `booked_sqlite!`/`booked_postgres!`: nine numbers each.
pub(crate) fn parse_booked(booked: Option<&str>) -> Result<Vec<[i64; 9]>> {
    let numbers = booked
        .unwrap_or("")
        .split_ascii_whitespace()
        .map(|n| {
            n.parse::<i64>().map_err(|_| {
                StoreError::Invalid(format!(
                    "a booking's time or resource is not a number: {n:?}"
                ))
            })
        })
        .collect::<Result<Vec<i64>>>()?;
    let rows = numbers.chunks_exact(9);
    if !rows.remainder().is_empty() {
        return Err(StoreError::Invalid(
            "the bookings read for a search were cut short".to_owned(),
        ));
    }
    Ok(rows
        .map(|r| {
            let mut row = [0; 9];
            row.copy_from_slice(r);
            row
        })
        .collect())
}

/// The bookings of a search's first step, read ahead ([`Store::search_start_then`]).
#[derive(Debug, Clone)]
pub struct ReadAhead {
    pub(crate) site: i64,
    pub(crate) from: Timestamp,
    pub(crate) until: Timestamp,
    pub(crate) booked: Vec<[i64; 9]>,
}

/// A room as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomRecord {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Guidance.
    pub modality: Modality,
    /// Turnaround minutes.
    pub turnaround_minutes: u32,
}

impl Store {
    /// The site's active rooms.
    pub async fn rooms(&self, site: i64) -> Result<Vec<RoomRecord>> {
        let rows = sqlx::query(self.sql("SELECT id, name, modality, turnaround_minutes FROM rooms WHERE site_id = ? AND active = 1 ORDER BY id"))
            .bind(site)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let modality: String = r.try_get("modality")?;
                let turnaround: i64 = r.try_get("turnaround_minutes")?;
                Ok(RoomRecord {
                    id: r.try_get("id")?,
                    name: r.try_get("name")?,
                    modality: parse_stored("modality", &modality)?,
                    turnaround_minutes: u32::try_from(turnaround).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The site's recovery chairs: (id, name).
    pub async fn chairs(&self, site: i64) -> Result<Vec<(i64, String)>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, name FROM recovery_chairs WHERE site_id = ? AND active = 1 ORDER BY id",
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("name")?)))
            .collect()
    }
}

impl Store {
    /// Appointments (with their patients) matching a filter, earliest first; an audited
    /// read of patient data. Referrers see only their own cases' appointments.
    pub async fn appointments(
        &self,
        actor: &Actor,
        filter: &AppointmentFilter,
    ) -> Result<Vec<AppointmentListing>> {
        let result = async {
            let scope = scope_of(actor)?;
            let rows = sqlx::query(self.sql(
                "SELECT a.id, a.case_id, a.site_id, a.room_id, r.name AS room_name, a.radiologist_id,
                        u.display_name AS radiologist_name, a.chair_id, a.starts_at, a.ends_at,
                        a.chair_starts_at, a.chair_ends_at, a.status, a.attendance,
                        c.patient_id, p.family_name, p.given_name, p.mrn, c.procedure_code,
                        c.procedure_name, c.state AS case_state
                 FROM appointments a
                 JOIN rooms r ON r.id = a.room_id
                 JOIN users u ON u.id = a.radiologist_id
                 JOIN cases c ON c.id = a.case_id
                 JOIN patients p ON p.id = c.patient_id
                 WHERE (CAST(? AS BIGINT) IS NULL OR a.starts_at >= ?)
                   AND (CAST(? AS BIGINT) IS NULL OR a.starts_at < ?)
                   AND (CAST(? AS BIGINT) IS NULL OR c.patient_id = ?)
                   AND (CAST(? AS BIGINT) IS NULL OR a.room_id = ?)
                   AND (CAST(? AS BIGINT) IS NULL OR a.radiologist_id = ?)
                   AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)
                   AND (? = 1 OR a.status = 'booked' OR a.attendance = 'no_show')
                 ORDER BY a.starts_at, a.id
                 LIMIT ?",
            ))
            .bind(filter.from.map(micros))
            .bind(filter.from.map(micros))
            .bind(filter.to.map(micros))
            .bind(filter.to.map(micros))
            .bind(filter.patient)
            .bind(filter.patient)
            .bind(filter.room)
            .bind(filter.room)
            .bind(filter.radiologist)
            .bind(filter.radiologist)
            .bind(scope.referrer_filter())
            .bind(scope.referrer_filter())
            .bind(i64::from(filter.include_cancelled))
            .bind(filter.limit.unwrap_or(500).clamp(1, 5000))
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let state: String = row.try_get("case_state")?;
                    Ok(AppointmentListing {
                        appointment: appointment_from_row(row)?,
                        patient_id: row.try_get("patient_id")?,
                        family_name: row.try_get("family_name")?,
                        given_name: row.try_get("given_name")?,
                        mrn: row.try_get("mrn")?,
                        procedure_code: row.try_get("procedure_code")?,
                        procedure_name: row.try_get("procedure_name")?,
                        case_state: parse_stored("case state", &state)?,
                    })
                })
                .collect::<Result<Vec<_>>>()
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        let mut event = NewAuditEvent::new(actor, "list", "appointment", outcome);
        if let Ok(found) = &result {
            event = event.detail(format!("count={}", found.len()));
        }
        self.record_audit(event).await?;
        result.map_err(hide_denial)
    }

    /// One appointment by id (with its patient), an audited read; referrers only
    /// their own cases'.
    pub async fn appointment_listing(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<Option<AppointmentListing>> {
        let result = async {
            let scope = scope_of(actor)?;
            let case: Option<i64> =
                sqlx::query_scalar(self.sql("SELECT case_id FROM appointments WHERE id = ?"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
            let Some(case) = case else { return Ok(None) };
            let summary = self.case_summary(CaseId::new(case)).await?;
            if !scope.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let appointment = self.appointment_by_id(id).await?;
            Ok(Some(AppointmentListing {
                appointment,
                patient_id: summary.patient_id.get(),
                family_name: summary.family_name.clone(),
                given_name: summary.given_name.clone(),
                mrn: summary.mrn.clone(),
                procedure_code: summary.procedure_code.clone(),
                procedure_name: summary.procedure_name.clone(),
                case_state: summary.state,
            }))
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(NewAuditEvent::new(actor, "read", "appointment", outcome).entity(id))
            .await?;
        result.map_err(hide_denial)
    }
}

fn closure_from_row(row: &AnyRow) -> Result<(ResourceId, Interval)> {
    let kind: String = row.try_get("resource_kind")?;
    let id: i64 = row.try_get("resource_id")?;
    let interval = Interval {
        start: from_micros(row.try_get("starts_at")?)?,
        end: from_micros(row.try_get("ends_at")?)?,
    };
    let resource = match kind.as_str() {
        "room" => ResourceId::Room(id),
        "radiologist" => ResourceId::Radiologist(id),
        _ => ResourceId::Chair(id),
    };
    Ok((resource, interval))
}

/// Where the staged search's steps end, in days from `first`: after the first, third
/// and seventh day on which any room has weekly hours (so a search that starts on a
/// Saturday reads Monday's bookings in its first step, not its second), then the
/// whole horizon.
/// Adds bookings read by [`Store::booked_between`] to the busy index, leaving out
/// `exclude`. Identifiers start at 1: chair 0 is "no chair".
fn add_booked(res: &mut SlotResources, booked: &[[i64; 9]], exclude: Option<i64>) -> Result<()> {
    for &[
        id,
        room,
        radiologist,
        starts_at,
        ends_at,
        turnaround,
        chair,
        cs,
        ce,
    ] in booked
    {
        if Some(id) == exclude {
            continue;
        }
        let start = from_micros(starts_at)?;
        let end = from_micros(ends_at)?;
        res.busy.add(
            ResourceId::Room(room),
            Interval {
                start,
                end: end + jiff::SignedDuration::from_mins(turnaround),
            },
        );
        res.busy.add(
            ResourceId::Radiologist(radiologist),
            Interval { start, end },
        );
        if chair != 0 {
            res.busy.add(
                ResourceId::Chair(chair),
                Interval {
                    start: from_micros(cs)?,
                    end: from_micros(ce)?,
                },
            );
        }
    }
    Ok(())
}

fn stage_ends(res: &SlotResources, first: Date, horizon: u32) -> Vec<u32> {
    let open = |d: Date| {
        res.rooms
            .iter()
            .any(|r| r.windows.iter().any(|w| w.weekday == d.weekday()))
    };
    let mut ends = Vec::with_capacity(4);
    let mut open_days = 0;
    let mut day = first;
    for offset in 1..=horizon {
        if open(day) {
            open_days += 1;
            if matches!(open_days, 1 | 3 | 7) {
                ends.push(offset);
            }
        }
        match day.tomorrow() {
            Ok(next) => day = next,
            Err(_) => break,
        }
    }
    ends.push(horizon);
    ends
}
