//! The department's scheduling resources as administrators run them: the site and
//! its time zone, rooms and recovery chairs (and switching them off), radiologists'
//! credentials, weekly hours, and exceptions (closures: holidays, a room down for
//! service, a radiologist away).
//!
//! Every change is administrators' only, checked here (not just by the pages), made
//! in one transaction with its audit event, and validated before anything is
//! written: bad input changes nothing. Nothing that would strand a booked patient
//! happens silently: a room or chair with future bookings cannot be switched off,
//! and a closure over booked appointments is only saved when the caller confirms
//! it, and the bookings it covers are then listed as needing a move.

use irflow_domain::scheduling::WeeklyWindow;
use irflow_domain::{Actor, CaseId, Modality, Role, UserId};
use jiff::Timestamp;
use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::scheduling::ResourceKind;
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// Longest name of a site, room or chair.
const MAX_NAME: usize = 100;
/// Longest reason for a closure.
const MAX_REASON: usize = 200;
/// Longest turnaround a room may have, in minutes.
pub const MAX_TURNAROUND_MINUTES: u32 = 120;

/// A room with its settings, active or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomEntry {
    /// Id.
    pub id: i64,
    /// The site.
    pub site_id: i64,
    /// Name.
    pub name: String,
    /// Guidance available in the room.
    pub modality: Modality,
    /// Minutes to turn the room around after each appointment.
    pub turnaround_minutes: u32,
    /// Whether the room is offered for booking.
    pub active: bool,
}

/// A recovery chair, active or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChairEntry {
    /// Id.
    pub id: i64,
    /// The site.
    pub site_id: i64,
    /// Name.
    pub name: String,
    /// Whether the chair is offered for booking.
    pub active: bool,
}

/// A user with the radiologist role and the procedures they are credentialed for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RadiologistEntry {
    /// The user.
    pub id: UserId,
    /// Sign-in name.
    pub username: String,
    /// Name shown to people.
    pub display_name: String,
    /// Whether the account may sign in (a disabled radiologist is never offered).
    pub active: bool,
    /// CPT codes, sorted.
    pub procedures: Vec<String>,
}

/// One stored weekly window of a resource, in the site's local civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvailabilityEntry {
    /// Id (to remove it).
    pub id: i64,
    /// What kind of resource.
    pub kind: ResourceKind,
    /// Which one.
    pub resource_id: i64,
    /// Day and hours.
    pub window: WeeklyWindow,
}

/// An exception to a resource's weekly hours: it is closed from `start` to `end`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureEntry {
    /// Id (to remove it).
    pub id: i64,
    /// What kind of resource.
    pub kind: ResourceKind,
    /// Which one.
    pub resource_id: i64,
    /// Closed from (inclusive).
    pub start: Timestamp,
    /// Open again at (exclusive).
    pub end: Timestamp,
    /// Why: a holiday, service, leave.
    pub reason: String,
}

/// A closure to add.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewClosure {
    /// What kind of resource.
    pub kind: ResourceKind,
    /// Which one.
    pub resource_id: i64,
    /// Closed from.
    pub start: Timestamp,
    /// Open again at.
    pub end: Timestamp,
    /// Why.
    pub reason: String,
}

/// A booked appointment that uses a resource: case and times only, no patient details.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceBooking {
    /// The appointment.
    pub appointment_id: i64,
    /// The case (its page says who and what).
    pub case_id: CaseId,
    /// The procedure starts.
    pub start: Timestamp,
    /// The procedure ends.
    pub end: Timestamp,
    /// Room.
    pub room_name: String,
    /// Radiologist.
    pub radiologist_name: String,
    /// Recovery chair, when one is reserved.
    pub chair_name: Option<String>,
}

/// A saved closure and the bookings inside it, which now need moving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosureAdded {
    /// The closure.
    pub id: i64,
    /// Booked appointments that overlap it.
    pub affected: Vec<ResourceBooking>,
}

fn resource_kind(raw: &str) -> Result<ResourceKind> {
    match raw {
        "room" => Ok(ResourceKind::Room),
        "radiologist" => Ok(ResourceKind::Radiologist),
        "chair" => Ok(ResourceKind::Chair),
        other => Err(StoreError::Corrupt(format!("resource kind {other:?}"))),
    }
}

fn field(field: &'static str, message: impl Into<String>) -> StoreError {
    StoreError::Field {
        field,
        message: message.into(),
    }
}

/// A name as stored: trimmed, not empty, not too long.
fn clean_name(raw: &str, what: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err(field("name", format!("give the {what} a name")));
    }
    if name.chars().count() > MAX_NAME {
        return Err(field(
            "name",
            format!("keep the name to {MAX_NAME} characters"),
        ));
    }
    Ok(name.to_owned())
}

/// Checks a turnaround: a multiple of 5 minutes, at most 120.
pub fn check_turnaround(minutes: u32) -> Result<()> {
    if !minutes.is_multiple_of(5) || minutes > MAX_TURNAROUND_MINUTES {
        return Err(field(
            "turnaround_minutes",
            format!(
                "turnaround must be a multiple of 5 minutes from 0 to {MAX_TURNAROUND_MINUTES}"
            ),
        ));
    }
    Ok(())
}

/// Whether a time of day is on the 5-minute booking grid.
pub fn on_grid(t: Time) -> bool {
    u64::try_from(t.minute()).is_ok_and(|m| m.is_multiple_of(crate::UNIT_MINUTES.unsigned_abs()))
        && t.second() == 0
        && t.subsec_nanosecond() == 0
}

fn hhmm(t: Time) -> String {
    t.strftime("%H:%M").to_string()
}

fn weekday_number(w: Weekday) -> i64 {
    i64::from(w.to_monday_one_offset())
}

fn short_day(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

/// The same check as the scheduling module's, plus an audit record of the refusal.
fn is_admin(actor: &Actor) -> bool {
    matches!(actor.role, Some(Role::Admin) | None)
}

const DENIED: &str = "only administrators configure the department's resources";

fn room_from_row(r: &AnyRow) -> Result<RoomEntry> {
    let modality: String = r.try_get("modality")?;
    let turnaround: i64 = r.try_get("turnaround_minutes")?;
    let active: i64 = r.try_get("active")?;
    Ok(RoomEntry {
        id: r.try_get("id")?,
        site_id: r.try_get("site_id")?,
        name: r.try_get("name")?,
        modality: parse_stored("modality", &modality)?,
        turnaround_minutes: u32::try_from(turnaround)
            .map_err(|_| StoreError::Corrupt(format!("turnaround {turnaround}")))?,
        active: active == 1,
    })
}

fn chair_from_row(r: &AnyRow) -> Result<ChairEntry> {
    let active: i64 = r.try_get("active")?;
    Ok(ChairEntry {
        id: r.try_get("id")?,
        site_id: r.try_get("site_id")?,
        name: r.try_get("name")?,
        active: active == 1,
    })
}

fn availability_from_row(r: &AnyRow) -> Result<AvailabilityEntry> {
    let kind: String = r.try_get("resource_kind")?;
    let wd: i64 = r.try_get("weekday")?;
    let weekday = Weekday::from_monday_one_offset(i8::try_from(wd).unwrap_or(0))
        .map_err(|e| StoreError::Corrupt(format!("weekday {wd}: {e}")))?;
    let start: String = r.try_get("start_time")?;
    let end: String = r.try_get("end_time")?;
    Ok(AvailabilityEntry {
        id: r.try_get("id")?,
        kind: resource_kind(&kind)?,
        resource_id: r.try_get("resource_id")?,
        window: WeeklyWindow {
            weekday,
            start: parse_stored::<Time>("time", &start)?,
            end: parse_stored::<Time>("time", &end)?,
        },
    })
}

fn closure_from_row(r: &AnyRow) -> Result<ClosureEntry> {
    let kind: String = r.try_get("resource_kind")?;
    Ok(ClosureEntry {
        id: r.try_get("id")?,
        kind: resource_kind(&kind)?,
        resource_id: r.try_get("resource_id")?,
        start: from_micros(r.try_get("starts_at")?)?,
        end: from_micros(r.try_get("ends_at")?)?,
        reason: r.try_get("reason")?,
    })
}

fn booking_from_row(r: &AnyRow) -> Result<ResourceBooking> {
    Ok(ResourceBooking {
        appointment_id: r.try_get("id")?,
        case_id: CaseId::new(r.try_get("case_id")?),
        start: from_micros(r.try_get("starts_at")?)?,
        end: from_micros(r.try_get("ends_at")?)?,
        room_name: r.try_get("room_name")?,
        radiologist_name: r.try_get("radiologist_name")?,
        chair_name: r.try_get("chair_name")?,
    })
}

/// Booked appointments using one resource and overlapping `[?, ?)`: the resource id,
/// then the window's start and end (microseconds). A chair is in use during its own
/// window (recovery after the procedure), a room and radiologist during the procedure.
fn bookings_query(kind: ResourceKind) -> &'static str {
    match kind {
        ResourceKind::Room => {
            "SELECT a.id, a.case_id, a.starts_at, a.ends_at, r.name AS room_name,
                    u.display_name AS radiologist_name, ch.name AS chair_name
             FROM appointments a JOIN rooms r ON r.id = a.room_id JOIN users u ON u.id = a.radiologist_id
             LEFT JOIN recovery_chairs ch ON ch.id = a.chair_id
             WHERE a.status = 'booked' AND a.room_id = ? AND a.ends_at > ? AND a.starts_at < ?
             ORDER BY a.starts_at, a.id"
        }
        ResourceKind::Radiologist => {
            "SELECT a.id, a.case_id, a.starts_at, a.ends_at, r.name AS room_name,
                    u.display_name AS radiologist_name, ch.name AS chair_name
             FROM appointments a JOIN rooms r ON r.id = a.room_id JOIN users u ON u.id = a.radiologist_id
             LEFT JOIN recovery_chairs ch ON ch.id = a.chair_id
             WHERE a.status = 'booked' AND a.radiologist_id = ? AND a.ends_at > ? AND a.starts_at < ?
             ORDER BY a.starts_at, a.id"
        }
        ResourceKind::Chair => {
            "SELECT a.id, a.case_id, a.starts_at, a.ends_at, r.name AS room_name,
                    u.display_name AS radiologist_name, ch.name AS chair_name
             FROM appointments a JOIN rooms r ON r.id = a.room_id JOIN users u ON u.id = a.radiologist_id
             LEFT JOIN recovery_chairs ch ON ch.id = a.chair_id
             WHERE a.status = 'booked' AND a.chair_id = ? AND a.chair_ends_at > ? AND a.chair_starts_at < ?
             ORDER BY a.starts_at, a.id"
        }
    }
}

impl Store {
    /// Refuses anyone but an administrator (or the system), recording the refusal.
    async fn resources_admin_only(
        &self,
        actor: &Actor,
        action: &'static str,
        entity: &'static str,
    ) -> Result<()> {
        if is_admin(actor) {
            return Ok(());
        }
        self.record_audit(NewAuditEvent::new(
            actor,
            action,
            entity,
            AuditOutcome::Denied,
        ))
        .await?;
        Err(StoreError::Denied(DENIED))
    }

    /// Renames the site or changes its IANA time zone (weekly hours are local civil
    /// time, so they follow the zone; booked appointments keep their instants).
    pub async fn update_site(
        &self,
        actor: &Actor,
        site: i64,
        name: &str,
        time_zone: &str,
    ) -> Result<()> {
        self.resources_admin_only(actor, "update", "site").await?;
        let name = clean_name(name, "site")?;
        let time_zone = time_zone.trim();
        if time_zone.is_empty() {
            return Err(field(
                "time_zone",
                "enter the site's IANA time zone, e.g. America/New_York",
            ));
        }
        let tz = TimeZone::get(time_zone).map_err(|_| {
            field(
                "time_zone",
                format!("{time_zone:?} is not an IANA time zone (e.g. America/New_York)"),
            )
        })?;
        // Store the canonical spelling the tz database uses.
        let time_zone = tz.iana_name().unwrap_or(time_zone).to_owned();
        let mut tx = self.pool.begin().await?;
        let taken: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT id FROM sites WHERE name = ? AND id <> ?"))
                .bind(name.clone())
                .bind(site)
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(field("name", "another site already has this name"));
        }
        let done = sqlx::query(self.sql("UPDATE sites SET name = ?, time_zone = ? WHERE id = ?"))
            .bind(name)
            .bind(time_zone.clone())
            .bind(site)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "update", "site", AuditOutcome::Success)
                .entity(site)
                .detail(format!("time_zone={time_zone}")),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Every room of the site, active or not, by name.
    pub async fn all_rooms(&self, site: i64) -> Result<Vec<RoomEntry>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, site_id, name, modality, turnaround_minutes, active FROM rooms
             WHERE site_id = ? ORDER BY name, id",
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(room_from_row).collect()
    }

    /// One room, active or not.
    pub async fn room_entry(&self, room: i64) -> Result<RoomEntry> {
        let row = sqlx::query(self.sql(
            "SELECT id, site_id, name, modality, turnaround_minutes, active FROM rooms WHERE id = ?",
        ))
        .bind(room)
        .fetch_one(&self.pool)
        .await?;
        room_from_row(&row)
    }

    /// Every recovery chair of the site, active or not, by name.
    pub async fn all_chairs(&self, site: i64) -> Result<Vec<ChairEntry>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, site_id, name, active FROM recovery_chairs WHERE site_id = ? ORDER BY name, id",
        ))
        .bind(site)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(chair_from_row).collect()
    }

    /// One chair, active or not.
    pub async fn chair_entry(&self, chair: i64) -> Result<ChairEntry> {
        let row = sqlx::query(
            self.sql("SELECT id, site_id, name, active FROM recovery_chairs WHERE id = ?"),
        )
        .bind(chair)
        .fetch_one(&self.pool)
        .await?;
        chair_from_row(&row)
    }

    /// Every user with the radiologist role (accounts disabled or not), by name, with
    /// the procedures each is credentialed for.
    pub async fn radiologist_entries(&self) -> Result<Vec<RadiologistEntry>> {
        let users = self.list_users().await?;
        let creds = sqlx::query(
            "SELECT rp.user_id, rp.procedure_code FROM radiologist_procedures rp
             ORDER BY rp.user_id, rp.procedure_code",
        )
        .fetch_all(&self.pool)
        .await?;
        let creds: Vec<(i64, String)> = creds
            .iter()
            .map(|r| Ok((r.try_get("user_id")?, r.try_get("procedure_code")?)))
            .collect::<Result<_>>()?;
        let mut out: Vec<RadiologistEntry> = users
            .into_iter()
            .filter(|u| u.role == Role::Radiologist)
            .map(|u| RadiologistEntry {
                procedures: creds
                    .iter()
                    .filter(|(id, _)| *id == u.id.get())
                    .map(|(_, code)| code.clone())
                    .collect(),
                id: u.id,
                username: u.username,
                display_name: u.display_name,
                active: u.active,
            })
            .collect();
        out.sort_by_cached_key(|r| (r.display_name.to_lowercase(), r.id.get()));
        Ok(out)
    }

    /// One radiologist; not found if the user is not one.
    pub async fn radiologist_entry(&self, id: UserId) -> Result<RadiologistEntry> {
        self.radiologist_entries()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(StoreError::NotFound)
    }

    /// Adds a room (checked: a name not used at the site, a turnaround on the grid).
    pub async fn add_room(
        &self,
        actor: &Actor,
        site: i64,
        name: &str,
        modality: Modality,
        turnaround_minutes: u32,
    ) -> Result<i64> {
        self.resources_admin_only(actor, "create", "room").await?;
        let name = clean_name(name, "room")?;
        check_turnaround(turnaround_minutes)?;
        let mut tx = self.pool.begin().await?;
        let taken: Option<i64> =
            sqlx::query_scalar(self.sql("SELECT id FROM rooms WHERE site_id = ? AND name = ?"))
                .bind(site)
                .bind(name.clone())
                .fetch_optional(&mut *tx)
                .await?;
        if taken.is_some() {
            return Err(field("name", "there is already a room with this name"));
        }
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO rooms (site_id, name, modality, turnaround_minutes, active) VALUES (?, ?, ?, ?, 1) RETURNING id",
        ))
        .bind(site)
        .bind(name)
        .bind(modality.as_str())
        .bind(i64::from(turnaround_minutes))
        .fetch_one(&mut *tx)
        .await
        .map_err(duplicate_name)?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "room", AuditOutcome::Success)
                .entity(id)
                .detail(format!(
                    "modality={} turnaround={turnaround_minutes}",
                    modality.as_str()
                )),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Renames a room or changes its guidance or turnaround. The guidance cannot
    /// change while future booked appointments use the room (they were booked for
    /// what it offers now): those are moved first.
    pub async fn update_room(
        &self,
        actor: &Actor,
        room: i64,
        name: &str,
        modality: Modality,
        turnaround_minutes: u32,
        now: Timestamp,
    ) -> Result<()> {
        self.resources_admin_only(actor, "update", "room").await?;
        let name = clean_name(name, "room")?;
        check_turnaround(turnaround_minutes)?;
        let current = self.room_entry(room).await?;
        let mut tx = self.pool.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT id FROM rooms WHERE site_id = ? AND name = ? AND id <> ?"),
        )
        .bind(current.site_id)
        .bind(name.clone())
        .bind(room)
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(field("name", "there is already a room with this name"));
        }
        if modality != current.modality {
            let booked: i64 = sqlx::query_scalar(self.sql(
                "SELECT COUNT(*) FROM appointments WHERE status = 'booked' AND room_id = ? AND ends_at > ?",
            ))
            .bind(room)
            .bind(micros(now))
            .fetch_one(&mut *tx)
            .await?;
            if booked > 0 {
                return Err(field(
                    "modality",
                    format!(
                        "{booked} future booked {} in this room; move them before changing its guidance",
                        if booked == 1 {
                            "appointment is"
                        } else {
                            "appointments are"
                        }
                    ),
                ));
            }
        }
        sqlx::query(
            self.sql(
                "UPDATE rooms SET name = ?, modality = ?, turnaround_minutes = ? WHERE id = ?",
            ),
        )
        .bind(name)
        .bind(modality.as_str())
        .bind(i64::from(turnaround_minutes))
        .bind(room)
        .execute(&mut *tx)
        .await
        .map_err(duplicate_name)?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "update", "room", AuditOutcome::Success)
                .entity(room)
                .detail(format!(
                    "modality={} turnaround={turnaround_minutes}",
                    modality.as_str()
                )),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes a room out of service or brings it back. A room is not taken out while
    /// future booked appointments use it: the refusal says how many.
    pub async fn set_room_active(
        &self,
        actor: &Actor,
        room: i64,
        active: bool,
        now: Timestamp,
    ) -> Result<()> {
        self.set_active(actor, ResourceKind::Room, room, active, now)
            .await
    }

    /// Takes a recovery chair out of service or brings it back; as for rooms.
    pub async fn set_chair_active(
        &self,
        actor: &Actor,
        chair: i64,
        active: bool,
        now: Timestamp,
    ) -> Result<()> {
        self.set_active(actor, ResourceKind::Chair, chair, active, now)
            .await
    }

    async fn set_active(
        &self,
        actor: &Actor,
        kind: ResourceKind,
        id: i64,
        active: bool,
        now: Timestamp,
    ) -> Result<()> {
        let (entity, count_query, update) = match kind {
            ResourceKind::Room => (
                "room",
                "SELECT COUNT(*) FROM appointments WHERE status = 'booked' AND room_id = ? AND ends_at > ?",
                "UPDATE rooms SET active = ? WHERE id = ?",
            ),
            ResourceKind::Chair => (
                "chair",
                "SELECT COUNT(*) FROM appointments WHERE status = 'booked' AND chair_id = ? AND chair_ends_at > ?",
                "UPDATE recovery_chairs SET active = ? WHERE id = ?",
            ),
            ResourceKind::Radiologist => {
                return Err(StoreError::Invalid(
                    "radiologists are switched off by disabling their account".to_owned(),
                ));
            }
        };
        let action = if active { "activate" } else { "deactivate" };
        self.resources_admin_only(actor, action, entity).await?;
        let mut tx = self.pool.begin().await?;
        if !active {
            let booked: i64 = sqlx::query_scalar(self.sql(count_query))
                .bind(id)
                .bind(micros(now))
                .fetch_one(&mut *tx)
                .await?;
            if booked > 0 {
                return Err(StoreError::Conflict(format!(
                    "{booked} future booked {} this {entity}; move or cancel {} before taking it out of service",
                    if booked == 1 {
                        "appointment uses"
                    } else {
                        "appointments use"
                    },
                    if booked == 1 { "it" } else { "them" }
                )));
            }
        }
        let done = sqlx::query(self.sql(update))
            .bind(i64::from(active))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, action, entity, AuditOutcome::Success).entity(id),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Adds a recovery chair (checked: a name not used at the site).
    pub async fn add_chair(&self, actor: &Actor, site: i64, name: &str) -> Result<i64> {
        self.resources_admin_only(actor, "create", "chair").await?;
        let name = clean_name(name, "chair")?;
        let mut tx = self.pool.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar(
            self.sql("SELECT id FROM recovery_chairs WHERE site_id = ? AND name = ?"),
        )
        .bind(site)
        .bind(name.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if taken.is_some() {
            return Err(field("name", "there is already a chair with this name"));
        }
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO recovery_chairs (site_id, name, active) VALUES (?, ?, 1) RETURNING id",
        ))
        .bind(site)
        .bind(name)
        .fetch_one(&mut *tx)
        .await
        .map_err(duplicate_name)?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "chair", AuditOutcome::Success).entity(id),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// The resource's name, checking it exists (a radiologist must have the role).
    pub async fn resource_name(&self, kind: ResourceKind, id: i64) -> Result<String> {
        match kind {
            ResourceKind::Room => Ok(self.room_entry(id).await?.name),
            ResourceKind::Chair => Ok(self.chair_entry(id).await?.name),
            ResourceKind::Radiologist => {
                let user = self.user(UserId::new(id)).await?;
                if user.role == Role::Radiologist {
                    Ok(user.display_name)
                } else {
                    Err(StoreError::NotFound)
                }
            }
        }
    }

    /// Every weekly window, by resource, day and time.
    pub async fn availability_windows(&self) -> Result<Vec<AvailabilityEntry>> {
        let rows = sqlx::query(
            "SELECT id, resource_kind, resource_id, weekday, start_time, end_time FROM availability
             ORDER BY resource_kind, resource_id, weekday, start_time, id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(availability_from_row).collect()
    }

    /// One resource's weekly windows, by day and time.
    pub async fn availability_of(
        &self,
        kind: ResourceKind,
        id: i64,
    ) -> Result<Vec<AvailabilityEntry>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, weekday, start_time, end_time FROM availability
             WHERE resource_kind = ? AND resource_id = ? ORDER BY weekday, start_time, id",
        ))
        .bind(kind.as_str())
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(availability_from_row).collect()
    }

    /// Adds the same weekly hours on one or more days, all or nothing: the days are
    /// named, the window ends after it starts, both ends are on the 5-minute grid, and
    /// it does not overlap the resource's hours already set on any of those days.
    pub async fn add_weekly_hours(
        &self,
        actor: &Actor,
        kind: ResourceKind,
        resource: i64,
        days: &[Weekday],
        start: Time,
        end: Time,
    ) -> Result<Vec<i64>> {
        self.resources_admin_only(actor, "create", "availability")
            .await?;
        self.resource_name(kind, resource).await?;
        if days.is_empty() {
            return Err(field("weekday", "choose at least one day"));
        }
        if !on_grid(start) {
            return Err(field(
                "start_time",
                "use a time on the 5-minute grid, e.g. 08:00 or 08:05",
            ));
        }
        if !on_grid(end) {
            return Err(field(
                "end_time",
                "use a time on the 5-minute grid, e.g. 16:00 or 16:05",
            ));
        }
        if start >= end {
            return Err(field("end_time", "the hours must end after they start"));
        }
        let mut days: Vec<Weekday> = days.to_vec();
        days.sort_by_key(|d| d.to_monday_one_offset());
        days.dedup();
        let existing = self.availability_of(kind, resource).await?;
        if let Some(clash) = existing.iter().find(|e| {
            days.contains(&e.window.weekday) && e.window.start < end && start < e.window.end
        }) {
            return Err(field(
                "start_time",
                format!(
                    "overlaps the hours already set for {} {}-{}; remove those first or choose other times",
                    short_day(clash.window.weekday),
                    hhmm(clash.window.start),
                    hhmm(clash.window.end)
                ),
            ));
        }
        let mut tx = self.pool.begin().await?;
        let mut ids = Vec::with_capacity(days.len());
        for day in &days {
            let id: i64 = sqlx::query_scalar(self.sql(
                "INSERT INTO availability (resource_kind, resource_id, weekday, start_time, end_time)
                 VALUES (?, ?, ?, ?, ?) RETURNING id",
            ))
            .bind(kind.as_str())
            .bind(resource)
            .bind(weekday_number(*day))
            .bind(hhmm(start))
            .bind(hhmm(end))
            .fetch_one(&mut *tx)
            .await?;
            ids.push(id);
        }
        let day_list: Vec<&str> = days.iter().map(|d| short_day(*d)).collect();
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "availability", AuditOutcome::Success)
                .entity(format!("{}:{resource}", kind.as_str()))
                .detail(format!(
                    "days={} {}-{}",
                    day_list.join(","),
                    hhmm(start),
                    hhmm(end)
                )),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    /// Removes one weekly window. Booked appointments keep their reservations.
    pub async fn remove_availability(&self, actor: &Actor, id: i64) -> Result<AvailabilityEntry> {
        self.resources_admin_only(actor, "delete", "availability")
            .await?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, weekday, start_time, end_time FROM availability WHERE id = ?",
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let entry = availability_from_row(&row)?;
        sqlx::query(self.sql("DELETE FROM availability WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "delete", "availability", AuditOutcome::Success)
                .entity(format!("{}:{}", entry.kind.as_str(), entry.resource_id))
                .detail(format!(
                    "{} {}-{}",
                    short_day(entry.window.weekday),
                    hhmm(entry.window.start),
                    hhmm(entry.window.end)
                )),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Closures that have not ended by `now`, earliest first.
    pub async fn upcoming_closures(&self, now: Timestamp) -> Result<Vec<ClosureEntry>> {
        let rows = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, starts_at, ends_at, reason FROM closures
             WHERE ends_at > ? ORDER BY starts_at, id",
        ))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(closure_from_row).collect()
    }

    /// One closure.
    pub async fn closure_entry(&self, id: i64) -> Result<ClosureEntry> {
        let row = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, starts_at, ends_at, reason FROM closures WHERE id = ?",
        ))
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        closure_from_row(&row)
    }

    /// Adds a closure. Checked first: the resource exists, it ends after it starts
    /// and after `now`, a reason is given. If booked appointments fall inside it, it
    /// is saved only with `confirmed` (a conflict otherwise, naming how many); the
    /// bookings are returned as needing a move.
    pub async fn add_closure(
        &self,
        actor: &Actor,
        closure: &NewClosure,
        confirmed: bool,
        now: Timestamp,
    ) -> Result<ClosureAdded> {
        self.resources_admin_only(actor, "create", "closure")
            .await?;
        self.resource_name(closure.kind, closure.resource_id)
            .await?;
        let reason = closure.reason.trim();
        if reason.is_empty() {
            return Err(field(
                "reason",
                "say why it is closed, e.g. holiday, room down for service, radiologist away",
            ));
        }
        if reason.chars().count() > MAX_REASON {
            return Err(field(
                "reason",
                format!("keep the reason to {MAX_REASON} characters"),
            ));
        }
        if closure.end <= closure.start {
            return Err(field("to_date", "the exception must end after it starts"));
        }
        if closure.end <= now {
            return Err(field(
                "to_date",
                "this exception is already over; choose times in the future",
            ));
        }
        let mut tx = self.pool.begin().await?;
        let affected = sqlx::query(self.sql(bookings_query(closure.kind)))
            .bind(closure.resource_id)
            .bind(micros(closure.start))
            .bind(micros(closure.end))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(booking_from_row)
            .collect::<Result<Vec<_>>>()?;
        if !affected.is_empty() && !confirmed {
            return Err(StoreError::Conflict(format!(
                "{} booked {} inside this exception; confirm to save it anyway, then move {}",
                affected.len(),
                if affected.len() == 1 {
                    "appointment falls"
                } else {
                    "appointments fall"
                },
                if affected.len() == 1 { "it" } else { "them" }
            )));
        }
        let id: i64 = sqlx::query_scalar(self.sql(
            "INSERT INTO closures (resource_kind, resource_id, starts_at, ends_at, reason)
             VALUES (?, ?, ?, ?, ?) RETURNING id",
        ))
        .bind(closure.kind.as_str())
        .bind(closure.resource_id)
        .bind(micros(closure.start))
        .bind(micros(closure.end))
        .bind(reason.to_owned())
        .fetch_one(&mut *tx)
        .await?;
        let ids: Vec<String> = affected
            .iter()
            .map(|b| b.appointment_id.to_string())
            .collect();
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "create", "closure", AuditOutcome::Success)
                .entity(id)
                .detail(format!(
                    "{}:{} affected_appointments=[{}]",
                    closure.kind.as_str(),
                    closure.resource_id,
                    ids.join(",")
                )),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(ClosureAdded { id, affected })
    }

    /// Removes a closure (the resource is open again in its weekly hours).
    pub async fn remove_closure(&self, actor: &Actor, id: i64) -> Result<ClosureEntry> {
        self.resources_admin_only(actor, "delete", "closure")
            .await?;
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query(self.sql(
            "SELECT id, resource_kind, resource_id, starts_at, ends_at, reason FROM closures WHERE id = ?",
        ))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let entry = closure_from_row(&row)?;
        sqlx::query(self.sql("DELETE FROM closures WHERE id = ?"))
            .bind(id)
            .execute(&mut *tx)
            .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "delete", "closure", AuditOutcome::Success)
                .entity(id)
                .detail(format!("{}:{}", entry.kind.as_str(), entry.resource_id)),
            Timestamp::now(),
        )
        .await?;
        tx.commit().await?;
        Ok(entry)
    }

    /// Booked appointments that use a resource between `from` and `to` (open-ended
    /// without `to`), earliest first. Administrators only; an audited read (case
    /// numbers and times, no patient details).
    pub async fn resource_bookings(
        &self,
        actor: &Actor,
        kind: ResourceKind,
        id: i64,
        from: Timestamp,
        to: Option<Timestamp>,
    ) -> Result<Vec<ResourceBooking>> {
        self.resources_admin_only(actor, "list", "appointment")
            .await?;
        let found = sqlx::query(self.sql(bookings_query(kind)))
            .bind(id)
            .bind(micros(from))
            .bind(to.map_or(i64::MAX, micros))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(booking_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.record_audit(
            NewAuditEvent::new(actor, "list", "appointment", AuditOutcome::Success)
                .entity(format!("{}:{id}", kind.as_str()))
                .detail(format!("count={}", found.len())),
        )
        .await?;
        Ok(found)
    }

    /// For every closure that has not ended by `now`, the booked appointments inside
    /// it (they need moving): (closure id, booking). Administrators only; audited.
    pub async fn closure_conflicts(
        &self,
        actor: &Actor,
        now: Timestamp,
    ) -> Result<Vec<(i64, ResourceBooking)>> {
        self.resources_admin_only(actor, "list", "appointment")
            .await?;
        let rows = sqlx::query(self.sql(
            "SELECT c.id AS closure_id, a.id, a.case_id, a.starts_at, a.ends_at, r.name AS room_name,
                    u.display_name AS radiologist_name, ch.name AS chair_name
             FROM closures c
             JOIN appointments a ON a.status = 'booked' AND (
                  (c.resource_kind = 'room' AND a.room_id = c.resource_id
                      AND a.ends_at > c.starts_at AND a.starts_at < c.ends_at)
               OR (c.resource_kind = 'radiologist' AND a.radiologist_id = c.resource_id
                      AND a.ends_at > c.starts_at AND a.starts_at < c.ends_at)
               OR (c.resource_kind = 'chair' AND a.chair_id = c.resource_id
                      AND a.chair_ends_at > c.starts_at AND a.chair_starts_at < c.ends_at))
             JOIN rooms r ON r.id = a.room_id
             JOIN users u ON u.id = a.radiologist_id
             LEFT JOIN recovery_chairs ch ON ch.id = a.chair_id
             WHERE c.ends_at > ?
             ORDER BY c.starts_at, c.id, a.starts_at, a.id",
        ))
        .bind(micros(now))
        .fetch_all(&self.pool)
        .await?;
        let found = rows
            .iter()
            .map(|r| Ok((r.try_get("closure_id")?, booking_from_row(r)?)))
            .collect::<Result<Vec<_>>>()?;
        self.record_audit(
            NewAuditEvent::new(actor, "list", "appointment", AuditOutcome::Success)
                .detail(format!("closure_conflicts count={}", found.len())),
        )
        .await?;
        Ok(found)
    }
}

/// A unique-name violation that slipped past the check (two admins at once).
fn duplicate_name(e: sqlx::Error) -> StoreError {
    match e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            field("name", "this name is already used at the site")
        }
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turnaround_is_on_the_grid_and_bounded() {
        assert!(check_turnaround(0).is_ok());
        assert!(check_turnaround(120).is_ok());
        assert!(check_turnaround(7).is_err());
        assert!(check_turnaround(125).is_err());
    }

    #[test]
    fn times_on_the_grid() {
        assert!(on_grid(jiff::civil::time(8, 5, 0, 0)));
        assert!(!on_grid(jiff::civil::time(8, 7, 0, 0)));
        assert!(!on_grid(jiff::civil::time(8, 5, 1, 0)));
    }
}
