//! The scheduling calendar: a day (one column per room, or per radiologist) or a
//! week (one room or radiologist), drawn as a real table in the site's local
//! wall-clock time, with check-in and no-show on the blocks; and its JSON twin,
//! `GET /api/v1/appointments`.
//!
//! The grid is a table whose rows are 5-minute units (the reservation unit) under
//! a time header every 15 minutes, so a block spans exactly its duration with
//! `rowspan` and needs no inline styles (the CSP forbids them). Rows are local
//! wall-clock times of the day: on a DST day the clinic's 08:00 is still the 08:00
//! row, and instants are placed by their local time. Anything that shares a row in
//! one column (a no-show whose time was booked again, a closure over a booking, the
//! repeated hour when clocks go back) is drawn together in one cell, never hidden.

use std::cmp::Ordering;

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::scheduling::{Interval, WeeklyWindow};
use irflow_domain::{Action, CaseId, CaseState, Role};
use irflow_store::{
    AppointmentFilter, AppointmentListing, AttendanceTime, AuditOutcome, ClosureRecord,
    NewAuditEvent, ResourceKind, SiteRecord,
};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::scheduling_api::appointment_json;
use crate::session::{ApiCaller, SignedIn};
use crate::{AppError, AppState};

/// Minutes per grid row (the reservation unit).
const ROW_MINUTES: i32 = 5;
/// Rows per labelled quarter hour.
const ROWS_PER_QUARTER: usize = 3;
/// The widest date range the API lists at once.
const MAX_API_DAYS: i64 = 92;
/// Calendars cover these years (anything else is a typo).
const YEARS: std::ops::RangeInclusive<i16> = 2000..=2100;

// ---------------------------------------------------------------- query

/// Query of `GET /calendar`. Every value is optional and checked by hand, so a bad
/// one gets a clear 400 page rather than the framework's plain-text refusal.
#[derive(Debug, Default, Deserialize)]
pub struct CalendarQuery {
    date: Option<String>,
    view: Option<String>,
    by: Option<String>,
    room: Option<String>,
    radiologist: Option<String>,
    /// The week view's selector posts `room-ID` or `radiologist-ID`.
    resource: Option<String>,
    /// After a check-in or no-show: which, and for which case.
    done: Option<String>,
    case: Option<String>,
}

/// Which calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A day, one column per room.
    DayRooms,
    /// A day, one column per radiologist.
    DayRadiologists,
    /// A week of one room (`None`: the first room).
    WeekRoom(Option<i64>),
    /// A week of one radiologist.
    WeekRadiologist(i64),
}

/// What the page was asked for, checked.
#[derive(Debug, Clone, Copy)]
struct View {
    date: Date,
    mode: Mode,
    done: Option<(Action, CaseId)>,
}

fn bad(message: impl Into<String>) -> AppError {
    AppError::BadRequest(message.into())
}

fn parse_date(raw: Option<&str>, name: &str, today: Date) -> Result<Date, AppError> {
    let Some(raw) = raw.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(today);
    };
    let date = raw.parse::<Date>().map_err(|_| {
        bad(format!(
            "{name} must be a real date written YYYY-MM-DD, e.g. {today}"
        ))
    })?;
    if !YEARS.contains(&date.year()) {
        return Err(bad(format!(
            "{name} must be between {}-01-01 and {}-12-31",
            YEARS.start(),
            YEARS.end()
        )));
    }
    Ok(date)
}

fn parse_id(raw: Option<&str>, name: &str) -> Result<Option<i64>, AppError> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(Some)
            .ok_or_else(|| bad(format!("{name} must be a number from the list"))),
    }
}

impl CalendarQuery {
    fn check(&self, today: Date) -> Result<View, AppError> {
        let date = parse_date(self.date.as_deref(), "date", today)?;
        let mut room = parse_id(self.room.as_deref(), "room")?;
        let mut radiologist = parse_id(self.radiologist.as_deref(), "radiologist")?;
        if let Some(r) = self.resource.as_deref().filter(|s| !s.is_empty()) {
            let parsed = match r.split_once('-') {
                Some(("room", id)) => parse_id(Some(id), "room").map(|id| (id, None)),
                Some(("radiologist", id)) => parse_id(Some(id), "radiologist").map(|id| (None, id)),
                _ => Err(bad("choose a room or a radiologist from the list")),
            }?;
            room = room.or(parsed.0);
            radiologist = radiologist.or(parsed.1);
        }
        let by_radiologist = match self.by.as_deref().unwrap_or("") {
            "" | "room" => false,
            "radiologist" => true,
            _ => return Err(bad("by must be room or radiologist")),
        };
        let mode = match self.view.as_deref().unwrap_or("") {
            "" | "day" if by_radiologist => Mode::DayRadiologists,
            "" | "day" => Mode::DayRooms,
            "week" => match (room, radiologist) {
                (Some(_), Some(_)) => {
                    return Err(bad("a week shows one room or one radiologist, not both"));
                }
                (_, Some(r)) => Mode::WeekRadiologist(r),
                (r, None) => Mode::WeekRoom(r),
            },
            _ => return Err(bad("view must be day or week")),
        };
        let done = match (self.done.as_deref().unwrap_or(""), self.case.as_deref()) {
            ("", _) => None,
            ("check_in", Some(c)) => Some((Action::CheckIn, parse_case_id(c)?)),
            ("no_show", Some(c)) => Some((Action::RecordNoShow, parse_case_id(c)?)),
            _ => return Err(bad("done must be check_in or no_show, with the case")),
        };
        Ok(View { date, mode, done })
    }
}

fn add_days(date: Date, days: i64) -> Result<Date, AppError> {
    date.checked_add(Span::new().days(days))
        .map_err(|_| bad("that date is outside the calendar"))
}

fn monday_of(date: Date) -> Result<Date, AppError> {
    add_days(date, -i64::from(date.weekday().to_monday_zero_offset()))
}

/// The calendar's address for a date and mode (what links and redirects use).
fn calendar_url(date: Date, mode: Mode) -> String {
    match mode {
        Mode::DayRooms => format!("/calendar?date={date}"),
        Mode::DayRadiologists => format!("/calendar?date={date}&by=radiologist"),
        Mode::WeekRoom(Some(id)) => format!("/calendar?view=week&date={date}&room={id}"),
        Mode::WeekRoom(None) => format!("/calendar?view=week&date={date}"),
        Mode::WeekRadiologist(id) => {
            format!("/calendar?view=week&date={date}&radiologist={id}")
        }
    }
}

/// Local midnight of a date, as an instant (a DST day is 23 or 25 hours long).
fn day_start(date: Date, tz: &TimeZone) -> Result<Timestamp, AppError> {
    date.to_zoned_datetime(tz.clone())
        .map(|z| z.timestamp())
        .map_err(|_| bad("that date is outside the calendar"))
}

// ---------------------------------------------------------------- loading

/// The site and its zone (the site's own zone; the configured one if it has none).
async fn site_and_zone(state: &AppState) -> Result<(Option<SiteRecord>, TimeZone), AppError> {
    let site = state.store().default_site().await?;
    let tz = site
        .as_ref()
        .and_then(|s| TimeZone::get(&s.time_zone).ok())
        .unwrap_or_else(|| state.time_zone().clone());
    Ok((site, tz))
}

/// Appointments starting in `[from, to)` as the calendar shows them: booked,
/// arrived and no-show. Plain cancellations (and the old times of moved
/// appointments) are left out: their time is free again, and the case's timeline
/// keeps the history; a no-show stays, struck through, so the day reads true.
async fn listings(
    state: &AppState,
    actor: &irflow_domain::Actor,
    from: Timestamp,
    to: Timestamp,
    room: Option<i64>,
    radiologist: Option<i64>,
) -> Result<Vec<AppointmentListing>, AppError> {
    let all = state
        .store()
        .appointments(
            actor,
            &AppointmentFilter {
                from: Some(from),
                to: Some(to),
                room,
                radiologist,
                include_cancelled: true,
                limit: Some(5000),
                ..AppointmentFilter::default()
            },
        )
        .await?;
    Ok(all
        .into_iter()
        .filter(|l| l.appointment.state() != "cancelled")
        .collect())
}

// ---------------------------------------------------------------- page model

struct ColumnHead {
    id: String,
    label: String,
    sub: String,
    href: Option<String>,
    today: bool,
}

struct ApptBlock {
    id: i64,
    case_id: i64,
    time: String,
    patient: String,
    procedure: String,
    arrive: String,
    who: String,
    chair: Option<String>,
    state: &'static str,
    badge: &'static str,
    attended: Option<String>,
    case_note: Option<&'static str>,
    can_check_in: bool,
    can_no_show: bool,
    error: Option<String>,
}

struct ClosureBlock {
    time: String,
    what: String,
    reason: String,
}

struct Cell {
    rowspan: usize,
    headers: String,
    class: &'static str,
    appts: Vec<ApptBlock>,
    closures: Vec<ClosureBlock>,
}

struct GridRow {
    time: String,
    label: Option<String>,
    th_id: String,
    hour: bool,
    cells: Vec<Cell>,
}

struct Choice {
    value: String,
    label: String,
    selected: bool,
}

#[derive(Template)]
#[template(path = "calendar.html")]
struct CalendarPage {
    chrome: Chrome,
    title: String,
    heading: String,
    subheading: String,
    is_week: bool,
    by_radiologist: bool,
    date: String,
    view_value: &'static str,
    by_value: &'static str,
    back: String,
    prev_url: String,
    next_url: String,
    today_url: String,
    rooms_url: String,
    radiologists_url: String,
    week_url: String,
    room_choices: Vec<Choice>,
    radiologist_choices: Vec<Choice>,
    columns: Vec<ColumnHead>,
    rows: Vec<GridRow>,
    empty: Option<String>,
    other_closures: Vec<String>,
    summary: String,
    notice: Option<String>,
    error: Option<String>,
    arrive_minutes: i64,
}

/// One column's content before it is cut into cells.
struct ColumnData {
    date: Date,
    /// Opening hours as local minutes of `date`.
    open: Vec<(i32, i32)>,
    appts: Vec<usize>,
    closures: Vec<usize>,
}

fn hhmm(minutes: i32) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn clock(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%H:%M")
        .to_string()
}

/// Local wall-clock minutes since midnight of `date` (0 before it, 1440 after it);
/// rounded up to the next minute when `up`.
fn minute_of(t: Timestamp, date: Date, tz: &TimeZone, up: bool) -> i32 {
    let z = t.to_zoned_datetime(tz.clone());
    match z.date().cmp(&date) {
        Ordering::Less => 0,
        Ordering::Greater => 24 * 60,
        Ordering::Equal => {
            let m = i32::from(z.hour()) * 60 + i32::from(z.minute());
            if up && (z.second() > 0 || z.subsec_nanosecond() > 0) {
                m + 1
            } else {
                m
            }
        }
    }
}

fn open_minutes(windows: &[WeeklyWindow], date: Date, tz: &TimeZone) -> Vec<(i32, i32)> {
    windows
        .iter()
        .filter_map(|w| w.on(date, tz))
        .map(|Interval { start, end }| {
            (
                minute_of(start, date, tz, false),
                minute_of(end, date, tz, true),
            )
        })
        .filter(|(s, e)| s < e)
        .collect()
}

fn state_badge(state: &str) -> (&'static str, &'static str) {
    match state {
        "arrived" => ("arrived", "Arrived"),
        "no_show" => ("no_show", "No-show"),
        _ => ("booked", "Booked"),
    }
}

/// Everything one page shows, loaded once.
struct Loaded {
    tz: TimeZone,
    rooms: Vec<(i64, String, String)>,
    radiologists: Vec<(i64, String)>,
    chairs: Vec<(i64, String)>,
    room_windows: Vec<(i64, Vec<WeeklyWindow>)>,
    radiologist_windows: Vec<(i64, Vec<WeeklyWindow>)>,
    appts: Vec<AppointmentListing>,
    attendance: Vec<AttendanceTime>,
    closures: Vec<ClosureRecord>,
}

impl Loaded {
    fn room_name(&self, id: i64) -> String {
        self.rooms
            .iter()
            .find(|r| r.0 == id)
            .map_or_else(|| format!("Room {id}"), |r| r.1.clone())
    }

    fn radiologist_name(&self, id: i64) -> String {
        self.radiologists
            .iter()
            .find(|r| r.0 == id)
            .map_or_else(|| format!("Radiologist {id}"), |r| r.1.clone())
    }

    fn resource_name(&self, kind: ResourceKind, id: i64) -> String {
        match kind {
            ResourceKind::Room => self.room_name(id),
            ResourceKind::Radiologist => self.radiologist_name(id),
            ResourceKind::Chair => self
                .chairs
                .iter()
                .find(|c| c.0 == id)
                .map_or_else(|| format!("Recovery chair {id}"), |c| c.1.clone()),
        }
    }

    fn windows(&self, kind: ResourceKind, id: i64) -> &[WeeklyWindow] {
        let list = match kind {
            ResourceKind::Room => &self.room_windows,
            _ => &self.radiologist_windows,
        };
        list.iter()
            .find(|(i, _)| *i == id)
            .map_or(&[], |(_, w)| w.as_slice())
    }
}

/// The checked resource of a week view, or a 400 if there is none such.
fn week_resource(mode: Mode, loaded: &Loaded) -> Result<Option<(ResourceKind, i64)>, AppError> {
    match mode {
        Mode::WeekRoom(Some(id)) => loaded
            .rooms
            .iter()
            .any(|r| r.0 == id)
            .then_some(Some((ResourceKind::Room, id)))
            .ok_or_else(|| {
                bad(format!(
                    "there is no active room {id}; choose one from the list"
                ))
            }),
        Mode::WeekRoom(None) => Ok(Some((
            ResourceKind::Room,
            loaded
                .rooms
                .first()
                .map(|r| r.0)
                .ok_or_else(|| AppError::Conflict("no rooms are set up yet".to_owned()))?,
        ))),
        Mode::WeekRadiologist(id) => loaded
            .radiologists
            .iter()
            .any(|r| r.0 == id)
            .then_some(Some((ResourceKind::Radiologist, id)))
            .ok_or_else(|| {
                bad(format!(
                    "there is no active radiologist {id}; choose one from the list"
                ))
            }),
        Mode::DayRooms | Mode::DayRadiologists => Ok(None),
    }
}

async fn load(
    state: &AppState,
    who: &SignedIn,
    site: &SiteRecord,
    tz: TimeZone,
    from: Timestamp,
    to: Timestamp,
) -> Result<Loaded, AppError> {
    let store = state.store();
    let res = store.slot_resources(site, from, to).await?;
    let rooms = store
        .rooms(site.id)
        .await?
        .into_iter()
        .map(|r| (r.id, r.name, r.modality.label().to_owned()))
        .collect();
    let radiologists = store
        .list_users()
        .await?
        .into_iter()
        .filter(|u| u.role == Role::Radiologist && u.active)
        .map(|u| (u.id.get(), u.display_name))
        .collect();
    let chairs = store.chairs(site.id).await?;
    let appts = listings(state, &who.actor(), from, to, None, None).await?;
    let attendance = store.attendance_between(&who.actor(), from, to).await?;
    let closures = store.closures_between(from, to).await?;
    Ok(Loaded {
        tz,
        rooms,
        radiologists,
        chairs,
        room_windows: res
            .rooms
            .iter()
            .map(|r| (r.id, r.windows.clone()))
            .collect(),
        radiologist_windows: res
            .radiologists
            .iter()
            .map(|r| (r.id, r.windows.clone()))
            .collect(),
        appts,
        attendance,
        closures,
    })
}

/// A column's identity: what it shows and on which date.
struct ColumnSpec {
    head: ColumnHead,
    kind: ResourceKind,
    resource: i64,
    date: Date,
}

fn columns_for(
    view: &View,
    loaded: &Loaded,
    week: Option<(ResourceKind, i64)>,
    today: Date,
) -> Result<Vec<ColumnSpec>, AppError> {
    let date = view.date;
    let hours = |kind, id, on: Date| {
        let open = open_minutes(loaded.windows(kind, id), on, &loaded.tz);
        if open.is_empty() {
            "closed".to_owned()
        } else {
            open.iter()
                .map(|(s, e)| format!("{}–{}", hhmm(*s), hhmm(*e)))
                .collect::<Vec<_>>()
                .join(", ")
        }
    };
    let mut cols = Vec::new();
    match (view.mode, week) {
        (_, Some((kind, id))) => {
            let monday = monday_of(date)?;
            for i in 0..7 {
                let d = add_days(monday, i)?;
                cols.push(ColumnSpec {
                    head: ColumnHead {
                        id: format!("cal-col-day-{d}"),
                        label: d.strftime("%a %b %-d").to_string(),
                        sub: hours(kind, id, d),
                        href: Some(calendar_url(
                            d,
                            if kind == ResourceKind::Room {
                                Mode::DayRooms
                            } else {
                                Mode::DayRadiologists
                            },
                        )),
                        today: d == today,
                    },
                    kind,
                    resource: id,
                    date: d,
                });
            }
        }
        (Mode::DayRadiologists, None) => {
            let mut ids: Vec<(i64, String)> = loaded.radiologists.clone();
            for a in &loaded.appts {
                let a = &a.appointment;
                if !ids.iter().any(|(i, _)| *i == a.radiologist_id) {
                    ids.push((a.radiologist_id, a.radiologist_name.clone()));
                }
            }
            for (id, name) in ids {
                cols.push(ColumnSpec {
                    head: ColumnHead {
                        id: format!("cal-col-radiologist-{id}"),
                        label: name,
                        sub: hours(ResourceKind::Radiologist, id, date),
                        href: Some(calendar_url(date, Mode::WeekRadiologist(id))),
                        today: false,
                    },
                    kind: ResourceKind::Radiologist,
                    resource: id,
                    date,
                });
            }
        }
        _ => {
            let mut ids: Vec<(i64, String, String)> = loaded.rooms.clone();
            for a in &loaded.appts {
                let a = &a.appointment;
                if !ids.iter().any(|(i, _, _)| *i == a.room_id) {
                    ids.push((a.room_id, a.room_name.clone(), "inactive".to_owned()));
                }
            }
            for (id, name, modality) in ids {
                cols.push(ColumnSpec {
                    head: ColumnHead {
                        id: format!("cal-col-room-{id}"),
                        label: name,
                        sub: format!("{modality} · {}", hours(ResourceKind::Room, id, date)),
                        href: Some(calendar_url(date, Mode::WeekRoom(Some(id)))),
                        today: false,
                    },
                    kind: ResourceKind::Room,
                    resource: id,
                    date,
                });
            }
        }
    }
    Ok(cols)
}

/// Builds the page for a checked view.
async fn build(
    state: &AppState,
    who: &SignedIn,
    view: View,
    failed: Option<(CaseId, String)>,
) -> Result<CalendarPage, AppError> {
    let (site, tz) = site_and_zone(state).await?;
    let site = site.ok_or_else(|| {
        AppError::Conflict(
            "no site is configured yet: an administrator adds rooms, radiologists and their hours first"
                .to_owned(),
        )
    })?;
    let now = Timestamp::now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let is_week = matches!(view.mode, Mode::WeekRoom(_) | Mode::WeekRadiologist(_));
    let (first, days) = if is_week {
        (monday_of(view.date)?, 7)
    } else {
        (view.date, 1)
    };
    let from = day_start(first, &tz)?;
    let to = day_start(add_days(first, days)?, &tz)?;
    let loaded = load(state, who, &site, tz.clone(), from, to).await?;
    let week = week_resource(view.mode, &loaded)?;
    let mode = match (view.mode, week) {
        (Mode::WeekRoom(None), Some((_, id))) => Mode::WeekRoom(Some(id)),
        _ => view.mode,
    };
    let specs = columns_for(&view, &loaded, week, today)?;
    let role = who.user.role;
    let tz = &loaded.tz;

    // Which appointments and closures go in which column.
    let mut cols: Vec<ColumnData> = specs
        .iter()
        .map(|s| ColumnData {
            date: s.date,
            open: open_minutes(loaded.windows(s.kind, s.resource), s.date, tz),
            appts: Vec::new(),
            closures: Vec::new(),
        })
        .collect();
    let (mut shown, mut arrived, mut no_show) = (0usize, 0usize, 0usize);
    for (i, l) in loaded.appts.iter().enumerate() {
        let a = &l.appointment;
        let local = a.start.to_zoned_datetime(tz.clone()).date();
        let col = specs.iter().position(|s| {
            s.date == local
                && match s.kind {
                    ResourceKind::Room => a.room_id == s.resource,
                    _ => a.radiologist_id == s.resource,
                }
        });
        if let Some(c) = col {
            cols[c].appts.push(i);
            shown += 1;
            match a.state() {
                "arrived" => arrived += 1,
                "no_show" => no_show += 1,
                _ => {}
            }
        }
    }
    let mut other_closures = Vec::new();
    for (i, c) in loaded.closures.iter().enumerate() {
        let mut placed = false;
        for (k, s) in specs.iter().enumerate() {
            let (ds, de) = (day_start(s.date, tz)?, day_start(add_days(s.date, 1)?, tz)?);
            if s.kind == c.kind && s.resource == c.resource_id && c.start < de && c.end > ds {
                cols[k].closures.push(i);
                placed = true;
            }
        }
        // A day view also lists closures of what is not a column (a radiologist
        // away while the columns are rooms, a chair); a week is about one resource.
        if !placed && !is_week {
            other_closures.push(format!(
                "{} closed {}: {}",
                loaded.resource_name(c.kind, c.resource_id),
                span_label(c.start, c.end, tz),
                c.reason
            ));
        }
    }

    // The grid's range: earliest opening to latest closing, widened to every appointment.
    let mut lo = i32::MAX;
    let mut hi = i32::MIN;
    for c in &cols {
        for (s, e) in &c.open {
            lo = lo.min(*s);
            hi = hi.max(*e);
        }
        for &i in &c.appts {
            let a = &loaded.appts[i].appointment;
            lo = lo.min(minute_of(a.start, c.date, tz, false));
            hi = hi.max(minute_of(a.end, c.date, tz, true));
        }
    }
    let mut rows: Vec<GridRow> = Vec::new();
    let mut empty = None;
    if lo < hi {
        lo = (lo / 15) * 15;
        hi = ((hi + 14) / 15 * 15).min(24 * 60).max(lo + 15);
        let n = usize::try_from((hi - lo) / ROW_MINUTES).unwrap_or(0);
        for r in 0..n {
            let m = lo + ROW_MINUTES * i32::try_from(r).unwrap_or(0);
            let quarter = m - (m - lo) % 15;
            rows.push(GridRow {
                time: hhmm(m),
                label: (r % ROWS_PER_QUARTER == 0).then(|| hhmm(m)),
                th_id: format!("cal-t-{:02}{:02}", quarter / 60, quarter % 60),
                hour: m % 60 == 0,
                cells: Vec::new(),
            });
        }
        for (c, spec) in cols.iter().zip(&specs) {
            let ctx = BlockContext {
                arrive_minutes: state.config().arrive_minutes_before,
                loaded: &loaded,
                tz,
                now,
                today,
                role,
                kind: spec.kind,
                failed: failed.as_ref(),
            };
            for (start, cell) in cut_column(c, &spec.head.id, lo, n, &ctx) {
                if let Some(row) = rows.get_mut(start) {
                    row.cells.push(cell);
                }
            }
        }
    } else {
        empty = Some(if is_week {
            "No opening hours and no appointments this week.".to_owned()
        } else {
            format!(
                "No opening hours and no appointments on {}.",
                view.date.strftime("%A")
            )
        });
    }

    let summary = format!(
        "{shown} {} · {arrived} arrived · {no_show} no-show",
        if shown == 1 {
            "appointment"
        } else {
            "appointments"
        }
    );
    let notice = view.done.and_then(|(action, case)| {
        let l = loaded
            .appts
            .iter()
            .find(|l| l.appointment.case_id == case)?;
        let name = format!("{}, {}", l.family_name, l.given_name);
        Some(match action {
            Action::CheckIn => format!("Checked in: {name}."),
            _ => format!("No-show recorded: {name}; the time is free again."),
        })
    });
    let (heading, subheading, title) = match week {
        Some((kind, id)) => {
            let monday = monday_of(view.date)?;
            let sunday = add_days(monday, 6)?;
            let name = loaded.resource_name(kind, id);
            (
                format!("{name} · week of {}", monday.strftime("%B %-d, %Y")),
                format!(
                    "{} – {}",
                    monday.strftime("%a %b %-d"),
                    sunday.strftime("%a %b %-d")
                ),
                format!("Calendar · {name} · week of {monday}"),
            )
        }
        None => (
            view.date.strftime("%A, %B %-d, %Y").to_string(),
            if view.date == today {
                "Today".to_owned()
            } else {
                String::new()
            },
            format!("Calendar · {}", view.date),
        ),
    };
    let step = if is_week { 7 } else { 1 };
    // Previous and next stay within the calendar's years (the ends link to themselves).
    let step_to = |n: i64| {
        add_days(view.date, n)
            .ok()
            .filter(|d| YEARS.contains(&d.year()))
            .unwrap_or(view.date)
    };
    let selected = |k: ResourceKind, id: i64| week == Some((k, id));
    let by_radiologist = matches!(mode, Mode::DayRadiologists | Mode::WeekRadiologist(_));
    Ok(CalendarPage {
        chrome: Chrome::new(state, Some(who), "calendar"),
        title,
        heading,
        subheading,
        is_week,
        by_radiologist,
        date: view.date.to_string(),
        view_value: if is_week { "week" } else { "day" },
        by_value: if by_radiologist {
            "radiologist"
        } else {
            "room"
        },
        back: calendar_url(view.date, mode),
        prev_url: calendar_url(step_to(-step), mode),
        next_url: calendar_url(step_to(step), mode),
        today_url: calendar_url(today, mode),
        rooms_url: calendar_url(view.date, Mode::DayRooms),
        radiologists_url: calendar_url(view.date, Mode::DayRadiologists),
        week_url: calendar_url(
            view.date,
            match (mode, loaded.radiologists.first()) {
                (Mode::DayRadiologists, Some((id, _))) => Mode::WeekRadiologist(*id),
                (Mode::WeekRoom(_) | Mode::WeekRadiologist(_), _) => mode,
                _ => Mode::WeekRoom(None),
            },
        ),
        room_choices: loaded
            .rooms
            .iter()
            .map(|(id, name, _)| Choice {
                value: format!("room-{id}"),
                label: name.clone(),
                selected: selected(ResourceKind::Room, *id),
            })
            .collect(),
        radiologist_choices: loaded
            .radiologists
            .iter()
            .map(|(id, name)| Choice {
                value: format!("radiologist-{id}"),
                label: name.clone(),
                selected: selected(ResourceKind::Radiologist, *id),
            })
            .collect(),
        columns: specs.into_iter().map(|s| s.head).collect(),
        rows,
        empty,
        other_closures,
        summary,
        notice,
        error: failed.map(|(_, m)| m),
        arrive_minutes: state.config().arrive_minutes_before,
    })
}

fn span_label(start: Timestamp, end: Timestamp, tz: &TimeZone) -> String {
    let s = start.to_zoned_datetime(tz.clone());
    let e = end.to_zoned_datetime(tz.clone());
    if s.date() == e.date() {
        format!("{}–{}", s.strftime("%H:%M"), e.strftime("%H:%M"))
    } else {
        format!(
            "{} – {}",
            s.strftime("%b %-d %H:%M"),
            e.strftime("%b %-d %H:%M")
        )
    }
}

struct BlockContext<'a> {
    arrive_minutes: i64,
    loaded: &'a Loaded,
    tz: &'a TimeZone,
    now: Timestamp,
    today: Date,
    role: Role,
    kind: ResourceKind,
    failed: Option<&'a (CaseId, String)>,
}

fn appt_block(l: &AppointmentListing, ctx: &BlockContext<'_>) -> ApptBlock {
    let a = &l.appointment;
    let tz = ctx.tz;
    let (state, badge) = state_badge(a.state());
    let waiting = matches!(l.case_state, CaseState::Scheduled | CaseState::Confirmed);
    let booked = state == "booked" && a.status == "booked";
    let local_date = a.start.to_zoned_datetime(tz.clone()).date();
    ApptBlock {
        id: a.id,
        case_id: a.case_id.get(),
        time: format!("{}–{}", clock(a.start, tz), clock(a.end, tz)),
        patient: format!("{}, {}", l.family_name, l.given_name),
        procedure: l.procedure_name.clone(),
        arrive: clock(a.start - SignedDuration::from_mins(ctx.arrive_minutes), tz),
        who: match ctx.kind {
            ResourceKind::Room => a.radiologist_name.clone(),
            _ => a.room_name.clone(),
        },
        chair: a.chair_id.map(|c| {
            let name = ctx.loaded.resource_name(ResourceKind::Chair, c);
            match a.chair_window {
                Some((_, end)) => format!("{name} until {}", clock(end, tz)),
                None => name,
            }
        }),
        state,
        badge,
        attended: ctx
            .loaded
            .attendance
            .iter()
            .find(|t| t.appointment_id == a.id)
            .map(|t| clock(t.at, tz)),
        case_note: (!matches!(
            l.case_state,
            CaseState::Scheduled | CaseState::Arrived | CaseState::NoShow
        ))
        .then(|| l.case_state.label()),
        can_check_in: booked
            && waiting
            && local_date == ctx.today
            && matches!(ctx.role, Role::Scheduler | Role::Nurse),
        can_no_show: booked && waiting && a.start <= ctx.now && ctx.role == Role::Scheduler,
        error: ctx
            .failed
            .filter(|(case, _)| *case == a.case_id)
            .map(|(_, m)| m.clone()),
    }
}

/// Cuts one column into table cells: each cluster of overlapping appointments and
/// closures is one cell spanning them; empty time is cut at every quarter hour and
/// wherever opening hours begin or end. Returns (first row, cell).
fn cut_column(
    c: &ColumnData,
    column_id: &str,
    lo: i32,
    n: usize,
    ctx: &BlockContext<'_>,
) -> Vec<(usize, Cell)> {
    let tz = ctx.tz;
    let row_of = |minute: i32| -> usize {
        usize::try_from(((minute - lo).max(0)) / ROW_MINUTES)
            .unwrap_or(0)
            .min(n)
    };
    let row_of_end = |minute: i32| -> usize {
        usize::try_from(((minute - lo).max(0) + ROW_MINUTES - 1) / ROW_MINUTES)
            .unwrap_or(0)
            .min(n)
    };
    // (first row, end row, appointment or closure index)
    enum Item {
        Appt(usize),
        Closure(usize),
    }
    let mut items: Vec<(usize, usize, Item)> = Vec::new();
    let hi = lo + ROW_MINUTES * i32::try_from(n).unwrap_or(0);
    for &i in &c.appts {
        let a = &ctx.loaded.appts[i].appointment;
        let s = minute_of(a.start, c.date, tz, false);
        let e = minute_of(a.end, c.date, tz, true);
        let first = row_of(s).min(n.saturating_sub(1));
        let end = row_of_end(e).max(first + 1);
        items.push((first, end, Item::Appt(i)));
    }
    for &i in &c.closures {
        let cl = &ctx.loaded.closures[i];
        let s = minute_of(cl.start, c.date, tz, false);
        let e = minute_of(cl.end, c.date, tz, true);
        if e <= lo || s >= hi {
            continue;
        }
        let first = row_of(s).min(n.saturating_sub(1));
        let end = row_of_end(e).max(first + 1);
        items.push((first, end, Item::Closure(i)));
    }
    items.sort_by_key(|(s, e, _)| (*s, *e));
    // Clusters: (first row, end row, items).
    let mut clusters: Vec<(usize, usize, Vec<&Item>)> = Vec::new();
    for (s, e, item) in &items {
        match clusters.last_mut() {
            Some(last) if *s < last.1 => {
                last.1 = last.1.max(*e);
                last.2.push(item);
            }
            _ => clusters.push((*s, *e, vec![item])),
        }
    }
    let open = |r: usize| {
        let m = lo + ROW_MINUTES * i32::try_from(r).unwrap_or(0);
        c.open.iter().any(|(s, e)| *s <= m && m + ROW_MINUTES <= *e)
    };
    let headers = |r: usize| {
        let m = lo + ROW_MINUTES * i32::try_from(r).unwrap_or(0);
        let q = m - (m - lo) % 15;
        format!("{column_id} cal-t-{:02}{:02}", q / 60, q % 60)
    };
    let mut out = Vec::new();
    let mut r = 0;
    let mut next = clusters.into_iter().peekable();
    while r < n {
        if let Some((s, e, members)) = next.next_if(|(s, _, _)| *s <= r) {
            let end = e.min(n).max(s + 1);
            let mut appts = Vec::new();
            let mut closures = Vec::new();
            for m in members {
                match m {
                    Item::Appt(i) => appts.push(appt_block(&ctx.loaded.appts[*i], ctx)),
                    Item::Closure(i) => {
                        let cl = &ctx.loaded.closures[*i];
                        closures.push(ClosureBlock {
                            time: span_label(cl.start, cl.end, tz),
                            what: ctx.loaded.resource_name(cl.kind, cl.resource_id),
                            reason: cl.reason.clone(),
                        });
                    }
                }
            }
            let class = match (closures.is_empty(), open(s)) {
                (false, _) => "cal-slot cal-closed",
                (true, true) => "cal-slot cal-busy",
                (true, false) => "cal-slot cal-busy cal-off",
            };
            out.push((
                s,
                Cell {
                    rowspan: end - s,
                    headers: headers(s),
                    class,
                    appts,
                    closures,
                },
            ));
            r = end;
            continue;
        }
        let is_open = open(r);
        let stop = next.peek().map_or(n, |(s, _, _)| *s);
        let mut len = 1;
        while r + len < stop && (r + len) % ROWS_PER_QUARTER != 0 && open(r + len) == is_open {
            len += 1;
        }
        out.push((
            r,
            Cell {
                rowspan: len,
                headers: headers(r),
                class: if is_open {
                    "cal-slot"
                } else {
                    "cal-slot cal-off"
                },
                appts: Vec::new(),
                closures: Vec::new(),
            },
        ));
        r += len;
    }
    out
}

// ---------------------------------------------------------------- handlers

/// Who may read the calendar: staff. Referrers follow their own referrals instead.
async fn staff_only(state: &AppState, who: &SignedIn) -> Result<(), AppError> {
    if who.user.role == Role::Referrer {
        let event = NewAuditEvent::new(&who.actor(), "list", "appointment", AuditOutcome::Denied)
            .detail("calendar");
        state.store().record_audit(event).await?;
        return Err(AppError::Forbidden(
            "the calendar is for the department's staff; your referrals' appointments are on their case pages"
                .to_owned(),
        ));
    }
    Ok(())
}

fn is_htmx(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// `GET /calendar`: the day (rooms or radiologists as columns) or one resource's week.
pub async fn calendar(
    State(state): State<AppState>,
    who: SignedIn,
    query: Result<Query<CalendarQuery>, QueryRejection>,
) -> Response {
    if let Err(e) = staff_only(&state, &who).await {
        return error_page(&state, Some(&who), &e);
    }
    let view = match query {
        Ok(Query(q)) => q.check(state.today()),
        Err(_) => Err(bad(
            "the calendar's address is not valid: each of date, view, by, room and radiologist may be given once",
        )),
    };
    let result = match view {
        Ok(view) => build(&state, &who, view, None).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// The calendar a form came from (re-checked; the day view of today otherwise).
fn back_view(back: &str, today: Date) -> View {
    let fallback = View {
        date: today,
        mode: Mode::DayRooms,
        done: None,
    };
    if !(back == "/calendar" || back.starts_with("/calendar?")) {
        return fallback;
    }
    back.parse::<Uri>()
        .ok()
        .and_then(|uri| Query::<CalendarQuery>::try_from_uri(&uri).ok())
        .and_then(|Query(q)| q.check(today).ok())
        .map_or(fallback, |v| View { done: None, ..v })
}

/// Fields of the check-in form.
#[derive(Debug, Deserialize)]
pub struct CheckInForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
}

/// Fields of the no-show form.
#[derive(Debug, Deserialize)]
pub struct NoShowForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    reason: String,
}

/// Checks the case's appointment is one this step applies to now, then moves the case
/// (the store marks the appointment in the same transaction). The day's board checks
/// patients in through this too.
pub(crate) async fn attend(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    action: Action,
    reason: Option<String>,
) -> Result<(), AppError> {
    staff_only(state, who).await?;
    let (_, tz) = site_and_zone(state).await?;
    let appointment = state
        .store()
        .appointment_for_case(&who.actor(), id)
        .await
        .map_err(case_error)?
        .ok_or_else(|| {
            AppError::Conflict("this case has no booked appointment any more".to_owned())
        })?;
    let now = Timestamp::now();
    let local = appointment.start.to_zoned_datetime(tz.clone());
    let today = now.to_zoned_datetime(tz.clone()).date();
    match action {
        Action::CheckIn if local.date() != today => {
            return Err(AppError::Conflict(format!(
                "check-in is for today's appointments; this one is on {}",
                local.strftime("%A, %B %-d at %H:%M")
            )));
        }
        Action::RecordNoShow if appointment.start > now => {
            return Err(AppError::Conflict(format!(
                "the appointment has not started yet ({}); record a no-show only after its start time",
                local.strftime("%H:%M")
            )));
        }
        _ => {}
    }
    let request = TransitionRequest {
        action,
        reason,
        deferred_until: None,
        return_reason: None,
    };
    state
        .store()
        .transition_case(&who.actor(), id, &request, None, now, today)
        .await
        .map_err(case_error)?;
    if action == Action::RecordNoShow {
        crate::reminders::replan_after_change(state, &who.actor(), id).await;
    }
    Ok(())
}

/// After a check-in or no-show: back to the calendar (htmx swaps just the block from
/// it); on refusal, the calendar again with the message on the block and at the top.
async fn after_attend(
    state: &AppState,
    who: &SignedIn,
    headers: &HeaderMap,
    id: CaseId,
    action: Action,
    back: &str,
    result: Result<(), AppError>,
) -> Response {
    let view = back_view(back, state.today());
    match result {
        Ok(()) => {
            let done = if action == Action::CheckIn {
                "check_in"
            } else {
                "no_show"
            };
            Redirect::to(&format!(
                "{}&done={done}&case={id}",
                calendar_url(view.date, view.mode)
            ))
            .into_response()
        }
        Err(e @ (AppError::Internal(_) | AppError::NotFound(_))) => {
            error_page(state, Some(who), &e)
        }
        Err(e) => {
            e.log();
            let status = if is_htmx(headers) {
                // htmx swaps only successful responses; the block carries the message.
                StatusCode::OK
            } else {
                e.status()
            };
            match build(state, who, view, Some((id, e.public_message()))).await {
                Ok(page) => render(&page, status),
                Err(_) => error_page(state, Some(who), &e),
            }
        }
    }
}

/// `POST /calendar/check-in/{case_id}` (scheduler, nurse): the patient is here.
pub async fn check_in(
    State(state): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<CheckInForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let result = attend(&state, &who, id, Action::CheckIn, None).await;
    after_attend(&state, &who, &headers, id, Action::CheckIn, &f.back, result).await
}

/// `POST /calendar/no-show/{case_id}` (scheduler, with a reason): the patient did not
/// come; the appointment ends and its room, radiologist and chair are free again.
pub async fn no_show(
    State(state): State<AppState>,
    who: SignedIn,
    headers: HeaderMap,
    Path(id): Path<String>,
    Form(f): Form<NoShowForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let result = attend(&state, &who, id, Action::RecordNoShow, Some(f.reason)).await;
    after_attend(
        &state,
        &who,
        &headers,
        id,
        Action::RecordNoShow,
        &f.back,
        result,
    )
    .await
}

// ---------------------------------------------------------------- API

/// Query of `GET /api/v1/appointments`.
#[derive(Debug, Deserialize)]
pub struct AppointmentsQuery {
    from: Option<String>,
    to: Option<String>,
    room: Option<String>,
    radiologist: Option<String>,
}

/// `GET /api/v1/appointments?from=YYYY-MM-DD&to=YYYY-MM-DD&room=ID&radiologist=ID`:
/// appointments starting on those local dates (both included; default today), booked,
/// arrived or no-show, earliest first. Staff see all; referrers only their own cases'.
pub async fn appointments_api(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<AppointmentsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let (_, tz) = site_and_zone(&state).await?;
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let from = parse_date(q.from.as_deref(), "from", today)?;
    let to = parse_date(q.to.as_deref(), "to", from)?;
    if to < from {
        return Err(bad("to must be on or after from").into());
    }
    let days = from
        .until(to)
        .map_err(|_| bad("from and to are too far apart"))?
        .get_days();
    if i64::from(days) >= MAX_API_DAYS {
        return Err(bad(format!("list at most {MAX_API_DAYS} days at a time")).into());
    }
    let room = parse_id(q.room.as_deref(), "room")?;
    let radiologist = parse_id(q.radiologist.as_deref(), "radiologist")?;
    let start = day_start(from, &tz)?;
    let end = day_start(add_days(to, 1)?, &tz)?;
    let actor = caller.actor();
    let found = listings(&state, &actor, start, end, room, radiologist).await?;
    let attendance = state.store().attendance_between(&actor, start, end).await?;
    let items: Vec<Value> = found
        .iter()
        .map(|l| {
            let a = &l.appointment;
            let mut v = appointment_json(&state, a);
            if let Value::Object(map) = &mut v {
                map.insert("state".to_owned(), json!(a.state()));
                map.insert(
                    "attendance_at".to_owned(),
                    json!(
                        attendance
                            .iter()
                            .find(|t| t.appointment_id == a.id)
                            .map(|t| crate::views::rfc3339_local(t.at, state.time_zone()))
                    ),
                );
                map.insert(
                    "patient".to_owned(),
                    json!({
                        "id": l.patient_id,
                        "family_name": l.family_name,
                        "given_name": l.given_name,
                        "name": format!("{}, {}", l.family_name, l.given_name),
                        "mrn": l.mrn,
                    }),
                );
                map.insert(
                    "procedure".to_owned(),
                    json!({ "code": l.procedure_code, "name": l.procedure_name }),
                );
                map.insert("case_state".to_owned(), json!(l.case_state.as_str()));
            }
            v
        })
        .collect();
    Ok(Json(json!({
        "from": from.to_string(),
        "to": to.to_string(),
        "time_zone": tz.iana_name().unwrap_or(&state.config().time_zone_name),
        "appointments": items,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> CalendarQuery {
        let mut q = CalendarQuery::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "date" => q.date = v,
                "view" => q.view = v,
                "by" => q.by = v,
                "room" => q.room = v,
                "radiologist" => q.radiologist = v,
                "resource" => q.resource = v,
                "done" => q.done = v,
                _ => q.case = v,
            }
        }
        q
    }

    #[test]
    fn queries_are_checked() {
        let today = jiff::civil::date(2026, 11, 2);
        let v = q(&[]).check(today).expect("default");
        assert_eq!((v.date, v.mode), (today, Mode::DayRooms));
        let v = q(&[("view", "week"), ("resource", "radiologist-5")])
            .check(today)
            .expect("selector");
        assert_eq!(v.mode, Mode::WeekRadiologist(5));
        for bad in [
            vec![("date", "2026-13-01")],
            vec![("date", "tomorrow")],
            vec![("date", "1850-01-01")],
            vec![("view", "month")],
            vec![("by", "chair")],
            vec![("view", "week"), ("room", "x")],
            vec![("view", "week"), ("room", "-1")],
            vec![("view", "week"), ("room", "1"), ("radiologist", "2")],
            vec![("resource", "chair-1")],
            vec![("done", "check_in")],
        ] {
            assert!(q(&bad).check(today).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn back_addresses_are_our_own_calendar() {
        let today = jiff::civil::date(2026, 11, 2);
        let v = back_view("/calendar?view=week&date=2026-11-04&room=3", today);
        assert_eq!(
            (v.date, v.mode),
            (jiff::civil::date(2026, 11, 4), Mode::WeekRoom(Some(3)))
        );
        let v = back_view("https://evil.example/calendar", today);
        assert_eq!((v.date, v.mode), (today, Mode::DayRooms));
        let v = back_view("/calendar?date=nonsense", today);
        assert_eq!(v.mode, Mode::DayRooms);
    }

    #[test]
    fn local_minutes_follow_the_wall_clock_on_dst_days() {
        let tz = TimeZone::get("America/New_York").expect("tzdb");
        for (day, utc) in [
            // Spring forward: 08:00 EDT is 12:00Z.
            (jiff::civil::date(2027, 3, 14), "2027-03-14T12:00:00Z"),
            // Fall back: 08:00 EST is 13:00Z.
            (jiff::civil::date(2026, 11, 1), "2026-11-01T13:00:00Z"),
        ] {
            let t: Timestamp = utc.parse().expect("valid");
            assert_eq!(minute_of(t, day, &tz, false), 8 * 60, "{day}");
            let w = WeeklyWindow {
                weekday: day.weekday(),
                start: jiff::civil::time(8, 0, 0, 0),
                end: jiff::civil::time(16, 0, 0, 0),
            };
            assert_eq!(open_minutes(&[w], day, &tz), vec![(480, 960)]);
        }
    }
}
