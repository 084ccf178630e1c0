//! The administrators' pages for the department's scheduling resources: the site and
//! its time zone, rooms, recovery chairs, radiologists' credentials, weekly hours and
//! exceptions (closures), plus the read-only `GET /api/v1/resources`.
//!
//! Every form carries the session's anti-forgery token; every problem is shown next
//! to its field with what was typed kept; nothing is written until everything is
//! valid. Nothing strands a booked patient silently: a room or chair with future
//! bookings is not taken out of service (the bookings are listed, linked to their
//! cases), and an exception over booked appointments is saved only once the admin
//! ticks that they have seen them; they are then listed as needing a move.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use irflow_domain::scheduling::WeeklyWindow;
use irflow_domain::{FieldError, FieldErrors, Modality, Role, UserId};
use irflow_store::{
    AuditOutcome, ClosureEntry, NewAuditEvent, NewClosure, ResourceBooking, ResourceKind,
    SiteRecord, StoreError,
};
use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::ApiError;
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, error_page, forged, render};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{form_pairs, rfc3339_local};
use crate::{AppError, AppState};

/// The routes of this module (pages and API), merged into the app's router.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/admin/resources", get(overview))
        .route("/admin/resources/site", post(site_submit))
        .route("/admin/resources/{kind}/new", get(new_form))
        .route("/admin/resources/{kind}", post(new_submit))
        .route(
            "/admin/resources/{kind}/{id}",
            get(detail).post(detail_submit),
        )
        .route("/admin/resources/{kind}/{id}/active", post(active_submit))
        .route("/admin/resources/{kind}/{id}/hours", post(hours_submit))
        .route(
            "/admin/resources/{kind}/{id}/hours/{hours_id}/remove",
            post(hours_remove),
        )
        .route(
            "/admin/resources/{kind}/{id}/closures",
            post(closure_submit),
        )
        .route(
            "/admin/resources/{kind}/{id}/closures/{closure_id}/remove",
            post(closure_remove),
        )
        .route("/api/v1/resources", get(api_resources))
}

// ---------------------------------------------------------------- shared bits

/// Which kind of resource a page is about (the path segment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Room,
    Chair,
    Radiologist,
}

impl Kind {
    fn parse(segment: &str) -> Result<Kind, AppError> {
        match segment {
            "rooms" => Ok(Kind::Room),
            "chairs" => Ok(Kind::Chair),
            "radiologists" => Ok(Kind::Radiologist),
            _ => Err(AppError::NotFound(
                "there is no page at this address".to_owned(),
            )),
        }
    }

    fn of(kind: ResourceKind) -> Kind {
        match kind {
            ResourceKind::Room => Kind::Room,
            ResourceKind::Chair => Kind::Chair,
            ResourceKind::Radiologist => Kind::Radiologist,
        }
    }

    /// The path segment.
    pub(crate) fn path(self) -> &'static str {
        match self {
            Kind::Room => "rooms",
            Kind::Chair => "chairs",
            Kind::Radiologist => "radiologists",
        }
    }

    /// A noun for people.
    pub(crate) fn noun(self) -> &'static str {
        match self {
            Kind::Room => "room",
            Kind::Chair => "recovery chair",
            Kind::Radiologist => "radiologist",
        }
    }

    pub(crate) fn is_room(self) -> bool {
        self == Kind::Room
    }

    pub(crate) fn is_radiologist(self) -> bool {
        self == Kind::Radiologist
    }

    fn resource(self) -> ResourceKind {
        match self {
            Kind::Room => ResourceKind::Room,
            Kind::Chair => ResourceKind::Chair,
            Kind::Radiologist => ResourceKind::Radiologist,
        }
    }
}

/// Days of the week: (ISO number, short, long).
const WEEKDAYS: [(&str, &str, &str); 7] = [
    ("1", "Mon", "Monday"),
    ("2", "Tue", "Tuesday"),
    ("3", "Wed", "Wednesday"),
    ("4", "Thu", "Thursday"),
    ("5", "Fri", "Friday"),
    ("6", "Sat", "Saturday"),
    ("7", "Sun", "Sunday"),
];

/// Reasons offered as suggestions (anything may be typed).
const REASONS: [&str; 5] = [
    "Holiday",
    "Room down for service",
    "Radiologist away",
    "Training",
    "Staff shortage",
];

fn short_day(w: Weekday) -> &'static str {
    WEEKDAYS[usize::from(w.to_monday_zero_offset().unsigned_abs()).min(6)].1
}

fn hhmm(t: Time) -> String {
    t.strftime("%H:%M").to_string()
}

/// "Mon-Fri 08:00-16:00; Sat 09:00-12:00": the same hours on consecutive days are
/// written as a range. Empty: "no hours set".
pub(crate) fn hours_summary(windows: &[WeeklyWindow]) -> String {
    let mut groups: Vec<((Time, Time), Vec<i8>)> = Vec::new();
    let mut sorted = windows.to_vec();
    sorted.sort_by_key(|w| (w.weekday.to_monday_one_offset(), w.start, w.end));
    for w in &sorted {
        let day = w.weekday.to_monday_one_offset();
        match groups.iter_mut().find(|(k, _)| *k == (w.start, w.end)) {
            Some((_, days)) => {
                if !days.contains(&day) {
                    days.push(day);
                }
            }
            None => groups.push(((w.start, w.end), vec![day])),
        }
    }
    if groups.is_empty() {
        return "no hours set".to_owned();
    }
    let name = |d: i8| WEEKDAYS[usize::from(d.unsigned_abs().clamp(1, 7)) - 1].1;
    groups
        .iter()
        .map(|((start, end), days)| {
            let mut runs: Vec<(i8, i8)> = Vec::new();
            for d in days {
                match runs.last_mut() {
                    Some((_, last)) if *last + 1 == *d => *last = *d,
                    _ => runs.push((*d, *d)),
                }
            }
            let days: Vec<String> = runs
                .iter()
                .map(|(a, b)| match b - a {
                    0 => name(*a).to_owned(),
                    1 => format!("{}, {}", name(*a), name(*b)),
                    _ => format!("{}-{}", name(*a), name(*b)),
                })
                .collect();
            format!("{} {}-{}", days.join(", "), hhmm(*start), hhmm(*end))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A closure's span as people read it, in the site's zone: whole days are shown as
/// dates ("Thu 2026-12-24, whole day"), others with times and the zone.
pub(crate) fn span_label(start: Timestamp, end: Timestamp, tz: &TimeZone) -> String {
    let s = start.to_zoned_datetime(tz.clone());
    let e = end.to_zoned_datetime(tz.clone());
    let midnight = Time::midnight();
    if s.time() == midnight && e.time() == midnight {
        let last = e.date().yesterday().unwrap_or(e.date());
        if last <= s.date() {
            return format!("{}, whole day", s.strftime("%a %Y-%m-%d"));
        }
        return format!(
            "{} to {}, whole days",
            s.strftime("%a %Y-%m-%d"),
            last.strftime("%a %Y-%m-%d")
        );
    }
    if s.date() == e.date() {
        format!(
            "{} – {}",
            s.strftime("%a %Y-%m-%d %H:%M"),
            e.strftime("%H:%M %Z")
        )
    } else {
        format!(
            "{} – {}",
            s.strftime("%a %Y-%m-%d %H:%M %Z"),
            e.strftime("%a %Y-%m-%d %H:%M %Z")
        )
    }
}

/// A time typed as `HH:MM` (or `HH:MM:SS`, as some browsers send).
fn parse_hhmm(raw: &str) -> Option<Time> {
    let mut parts = raw.trim().split(':');
    let h: i8 = parts.next()?.parse().ok()?;
    let m: i8 = parts.next()?.parse().ok()?;
    let s: i8 = match parts.next() {
        Some(s) => s.parse().ok()?,
        None => 0,
    };
    if parts.next().is_some() {
        return None;
    }
    Time::new(h, m, s, 0).ok()
}

fn on_grid(t: Time) -> bool {
    t.minute() % 5 == 0 && t.second() == 0
}

fn err(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError {
        field,
        message: message.into(),
    }
}

/// A posted form, read as ordered pairs (checkboxes repeat).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn new(body: &str) -> Self {
        Fields(form_pairs(body))
    }

    fn get(&self, key: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn checked(&self, key: &str) -> bool {
        self.0.iter().any(|(k, v)| k == key && !v.is_empty())
    }
}

/// Administrators only; a refusal is audited.
async fn require_admin(
    state: &AppState,
    who: &SignedIn,
    action: &'static str,
) -> Result<(), AppError> {
    if who.user.role == Role::Admin {
        return Ok(());
    }
    state
        .store()
        .record_audit(NewAuditEvent::new(
            &who.actor(),
            action,
            "resources",
            AuditOutcome::Denied,
        ))
        .await?;
    Err(AppError::Forbidden(
        "only administrators manage rooms, radiologists and their hours".to_owned(),
    ))
}

/// Checks the token and the role of a posted form.
async fn guard_post(state: &AppState, who: &SignedIn, fields: &Fields) -> Result<(), AppError> {
    if !constant_time_eq(&who.csrf, &fields.get("csrf")) {
        return Err(forged());
    }
    require_admin(state, who, "update").await
}

async fn the_site(state: &AppState) -> Result<SiteRecord, AppError> {
    state.store().default_site().await?.ok_or_else(|| {
        AppError::Conflict(
            "no site is set up yet: set the site's name and time zone on the Rooms & staff page first"
                .to_owned(),
        )
    })
}

fn zone_of(state: &AppState, site: &SiteRecord) -> TimeZone {
    TimeZone::get(&site.time_zone).unwrap_or_else(|_| state.time_zone().clone())
}

fn summary_of(errors: &FieldErrors) -> Vec<(String, String)> {
    errors
        .0
        .iter()
        .map(|e| (e.field.to_owned(), e.message.clone()))
        .collect()
}

/// A booked appointment as listed: linked to its case, no patient details.
pub(crate) struct BookingRow {
    pub(crate) case_id: i64,
    pub(crate) number: String,
    pub(crate) when: String,
    pub(crate) room: String,
    pub(crate) radiologist: String,
    pub(crate) chair: String,
}

fn booking_row(b: &ResourceBooking, tz: &TimeZone) -> BookingRow {
    BookingRow {
        case_id: b.case_id.get(),
        number: irflow_fhir::referral_number(b.case_id.get()),
        when: span_label(b.start, b.end, tz),
        room: b.room_name.clone(),
        radiologist: b.radiologist_name.clone(),
        chair: b.chair_name.clone().unwrap_or_else(|| "—".to_owned()),
    }
}

/// An upcoming exception as listed.
pub(crate) struct ClosureRow {
    pub(crate) id: i64,
    pub(crate) resource: String,
    pub(crate) href: String,
    pub(crate) remove_action: String,
    pub(crate) when: String,
    pub(crate) reason: String,
    pub(crate) affected: Vec<BookingRow>,
}

struct Names {
    rooms: Vec<(i64, String)>,
    chairs: Vec<(i64, String)>,
    radiologists: Vec<(i64, String)>,
}

impl Names {
    async fn load(state: &AppState, site: &SiteRecord) -> Result<Names, AppError> {
        let store = state.store();
        Ok(Names {
            rooms: store
                .all_rooms(site.id)
                .await?
                .into_iter()
                .map(|r| (r.id, r.name))
                .collect(),
            chairs: store
                .all_chairs(site.id)
                .await?
                .into_iter()
                .map(|c| (c.id, c.name))
                .collect(),
            radiologists: store
                .radiologist_entries()
                .await?
                .into_iter()
                .map(|r| (r.id.get(), r.display_name))
                .collect(),
        })
    }

    fn name(&self, kind: ResourceKind, id: i64) -> String {
        let list = match kind {
            ResourceKind::Room => &self.rooms,
            ResourceKind::Chair => &self.chairs,
            ResourceKind::Radiologist => &self.radiologists,
        };
        list.iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| format!("{} {id}", kind.as_str()), |(_, n)| n.clone())
    }
}

async fn closure_rows(
    state: &AppState,
    who: &SignedIn,
    names: &Names,
    tz: &TimeZone,
    only: Option<(ResourceKind, i64)>,
    back: &str,
) -> Result<Vec<ClosureRow>, AppError> {
    let now = Timestamp::now();
    let closures: Vec<ClosureEntry> = state
        .store()
        .upcoming_closures(now)
        .await?
        .into_iter()
        .filter(|c| only.is_none_or(|(k, id)| c.kind == k && c.resource_id == id))
        .collect();
    let conflicts = if closures.is_empty() {
        Vec::new()
    } else {
        state.store().closure_conflicts(&who.actor(), now).await?
    };
    Ok(closures
        .iter()
        .map(|c| {
            let kind = Kind::of(c.kind);
            let base = format!("/admin/resources/{}/{}", kind.path(), c.resource_id);
            ClosureRow {
                id: c.id,
                resource: names.name(c.kind, c.resource_id),
                remove_action: format!("{base}/closures/{}/remove?back={back}", c.id),
                href: base,
                when: span_label(c.start, c.end, tz),
                reason: c.reason.clone(),
                affected: conflicts
                    .iter()
                    .filter(|(id, _)| *id == c.id)
                    .map(|(_, b)| booking_row(b, tz))
                    .collect(),
            }
        })
        .collect())
}

// ---------------------------------------------------------------- overview

pub(crate) struct RoomRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) modality: &'static str,
    pub(crate) turnaround: u32,
    pub(crate) active: bool,
    pub(crate) hours: String,
    pub(crate) exceptions: Vec<String>,
}

pub(crate) struct ChairRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) active: bool,
    pub(crate) hours: String,
    pub(crate) exceptions: Vec<String>,
}

pub(crate) struct RadiologistRow {
    pub(crate) id: i64,
    pub(crate) name: String,
    pub(crate) username: String,
    pub(crate) active: bool,
    pub(crate) procedures: String,
    pub(crate) hours: String,
    pub(crate) exceptions: Vec<String>,
}

/// What the site form holds (as typed).
#[derive(Default)]
pub(crate) struct SiteForm {
    pub(crate) name: String,
    pub(crate) time_zone: String,
}

#[derive(Template)]
#[template(path = "resources.html")]
pub(crate) struct OverviewPage {
    pub(crate) chrome: Chrome,
    pub(crate) done: Option<String>,
    pub(crate) site: Option<SiteRecord>,
    pub(crate) site_form: SiteForm,
    pub(crate) errors: FieldErrors,
    pub(crate) local_now: String,
    pub(crate) rooms: Vec<RoomRow>,
    pub(crate) chairs: Vec<ChairRow>,
    pub(crate) radiologists: Vec<RadiologistRow>,
    pub(crate) closures: Vec<ClosureRow>,
    pub(crate) needing_move: usize,
}

impl OverviewPage {
    pub(crate) fn summary(&self) -> Vec<(String, String)> {
        summary_of(&self.errors)
    }
}

/// Query of the resource pages: what was just done.
#[derive(Debug, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    moves: Option<String>,
}

fn done_message(q: &DoneQuery) -> Option<String> {
    let text = match q.done.as_deref()? {
        "site" => "Saved the site.",
        "room" => "Added the room. Now set its weekly hours below.",
        "chair" => "Added the recovery chair. Now set its weekly hours below.",
        "details" => "Saved.",
        "procedures" => "Saved the procedures.",
        "activated" => "Back in service: it is offered for booking again.",
        "deactivated" => "Taken out of service: it is no longer offered for booking.",
        "hours" => "Added the hours.",
        "hours-removed" => "Removed the hours.",
        "closure" => match q.moves.as_deref().and_then(|m| m.parse::<u32>().ok()) {
            Some(n) if n > 0 => {
                return Some(format!(
                    "Added the exception. {n} booked {} inside it and need{} moving: see the list under the exception.",
                    if n == 1 {
                        "appointment is"
                    } else {
                        "appointments are"
                    },
                    if n == 1 { "s" } else { "" }
                ));
            }
            _ => "Added the exception.",
        },
        "closure-removed" => "Removed the exception.",
        _ => return None,
    };
    Some(text.to_owned())
}

async fn overview_page(
    state: &AppState,
    who: &SignedIn,
    done: Option<String>,
    site_form: Option<SiteForm>,
    errors: FieldErrors,
) -> Result<OverviewPage, AppError> {
    let store = state.store();
    let site = store.default_site().await?;
    let Some(site) = site else {
        return Ok(OverviewPage {
            chrome: Chrome::new(state, Some(who), "resources"),
            done,
            site: None,
            site_form: site_form.unwrap_or_else(|| SiteForm {
                name: String::new(),
                time_zone: state.config().time_zone_name.clone(),
            }),
            errors,
            local_now: String::new(),
            rooms: Vec::new(),
            chairs: Vec::new(),
            radiologists: Vec::new(),
            closures: Vec::new(),
            needing_move: 0,
        });
    };
    let tz = zone_of(state, &site);
    let names = Names::load(state, &site).await?;
    let windows = store.availability_windows().await?;
    let hours = |kind: ResourceKind, id: i64| {
        let w: Vec<WeeklyWindow> = windows
            .iter()
            .filter(|a| a.kind == kind && a.resource_id == id)
            .map(|a| a.window)
            .collect();
        hours_summary(&w)
    };
    let closures = closure_rows(state, who, &names, &tz, None, "overview").await?;
    let upcoming = store.upcoming_closures(Timestamp::now()).await?;
    let exceptions = |kind: ResourceKind, id: i64| -> Vec<String> {
        upcoming
            .iter()
            .filter(|c| c.kind == kind && c.resource_id == id)
            .map(|c| format!("{} ({})", span_label(c.start, c.end, &tz), c.reason))
            .collect()
    };
    let rooms = store
        .all_rooms(site.id)
        .await?
        .into_iter()
        .map(|r| RoomRow {
            hours: hours(ResourceKind::Room, r.id),
            exceptions: exceptions(ResourceKind::Room, r.id),
            id: r.id,
            name: r.name,
            modality: r.modality.label(),
            turnaround: r.turnaround_minutes,
            active: r.active,
        })
        .collect();
    let chairs = store
        .all_chairs(site.id)
        .await?
        .into_iter()
        .map(|c| ChairRow {
            hours: hours(ResourceKind::Chair, c.id),
            exceptions: exceptions(ResourceKind::Chair, c.id),
            id: c.id,
            name: c.name,
            active: c.active,
        })
        .collect();
    let radiologists = store
        .radiologist_entries()
        .await?
        .into_iter()
        .map(|r| RadiologistRow {
            hours: hours(ResourceKind::Radiologist, r.id.get()),
            exceptions: exceptions(ResourceKind::Radiologist, r.id.get()),
            id: r.id.get(),
            name: r.display_name,
            username: r.username,
            active: r.active,
            procedures: if r.procedures.is_empty() {
                "none yet".to_owned()
            } else {
                r.procedures.join(", ")
            },
        })
        .collect();
    let needing_move = closures.iter().map(|c| c.affected.len()).sum();
    Ok(OverviewPage {
        chrome: Chrome::new(state, Some(who), "resources"),
        done,
        site_form: site_form.unwrap_or_else(|| SiteForm {
            name: site.name.clone(),
            time_zone: site.time_zone.clone(),
        }),
        local_now: Timestamp::now()
            .to_zoned_datetime(tz.clone())
            .strftime("%a %Y-%m-%d %H:%M %Z")
            .to_string(),
        site: Some(site),
        errors,
        rooms,
        chairs,
        radiologists,
        closures,
        needing_move,
    })
}

/// `GET /admin/resources`.
pub async fn overview(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<DoneQuery>,
) -> Response {
    if let Err(e) = require_admin(&state, &who, "read").await {
        return error_page(&state, Some(&who), &e);
    }
    match overview_page(&state, &who, done_message(&q), None, FieldErrors::default()).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// `POST /admin/resources/site`: renames the site or changes its time zone (or sets
/// the site up, the first time).
pub async fn site_submit(State(state): State<AppState>, who: SignedIn, body: String) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let form = SiteForm {
        name: f.get("name"),
        time_zone: f.get("time_zone"),
    };
    let mut errors = FieldErrors::default();
    if form.name.trim().is_empty() {
        errors.0.push(err("name", "give the site a name"));
    }
    if form.time_zone.trim().is_empty() {
        errors.0.push(err(
            "time_zone",
            "enter the site's IANA time zone, e.g. America/New_York",
        ));
    } else if TimeZone::get(form.time_zone.trim()).is_err() {
        errors.0.push(err(
            "time_zone",
            format!(
                "{:?} is not an IANA time zone; use a name like America/New_York or Europe/London",
                form.time_zone.trim()
            ),
        ));
    } else if form.time_zone.trim() != state.config().time_zone_name {
        // Pages, letters and the API show times in the configured zone: a site in
        // another zone would be booked in one and shown in the other.
        errors.0.push(err(
            "time_zone",
            format!(
                "irflow shows and books times in {} (the department.time_zone setting); change that setting and restart to move the site to another zone",
                state.config().time_zone_name
            ),
        ));
    }
    let result = if errors.is_empty() {
        let store = state.store();
        match store.default_site().await {
            Ok(Some(site)) => {
                store
                    .update_site(&who.actor(), site.id, &form.name, &form.time_zone)
                    .await
            }
            Ok(None) => store
                .create_site(&who.actor(), form.name.trim(), form.time_zone.trim())
                .await
                .map(|_| ()),
            Err(e) => Err(e),
        }
    } else {
        Ok(())
    };
    match result {
        Ok(()) if errors.is_empty() => Redirect::to("/admin/resources?done=site").into_response(),
        Ok(()) => refuse_overview(&state, &who, form, errors).await,
        Err(StoreError::Field { field, message }) => {
            refuse_overview(&state, &who, form, FieldErrors(vec![err(field, message)])).await
        }
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

async fn refuse_overview(
    state: &AppState,
    who: &SignedIn,
    form: SiteForm,
    errors: FieldErrors,
) -> Response {
    match overview_page(state, who, None, Some(form), errors).await {
        Ok(page) => render(&page, StatusCode::UNPROCESSABLE_ENTITY),
        Err(e) => error_page(state, Some(who), &e),
    }
}

// ---------------------------------------------------------------- add a room or chair

/// What the add/edit room form holds (as typed).
#[derive(Default, Clone)]
pub(crate) struct RoomForm {
    pub(crate) name: String,
    pub(crate) modality: String,
    pub(crate) turnaround: String,
}

#[derive(Template)]
#[template(path = "resources_new.html")]
pub(crate) struct NewPage {
    pub(crate) chrome: Chrome,
    pub(crate) kind: Kind,
    pub(crate) form: RoomForm,
    pub(crate) modalities: [Modality; 2],
    pub(crate) errors: FieldErrors,
}

impl NewPage {
    pub(crate) fn summary(&self) -> Vec<(String, String)> {
        summary_of(&self.errors)
    }
}

fn new_page(
    state: &AppState,
    who: &SignedIn,
    kind: Kind,
    form: RoomForm,
    errors: FieldErrors,
) -> NewPage {
    NewPage {
        chrome: Chrome::new(state, Some(who), "resources"),
        kind,
        form,
        modalities: Modality::ALL,
        errors,
    }
}

fn addable(kind: &str) -> Result<Kind, AppError> {
    match Kind::parse(kind)? {
        Kind::Radiologist => Err(AppError::NotFound(
            "radiologists are users: add them with `irflow user add --role radiologist`, then set their procedures and hours here".to_owned(),
        )),
        k => Ok(k),
    }
}

/// `GET /admin/resources/{rooms|chairs}/new`.
pub async fn new_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(kind): Path<String>,
) -> Response {
    if let Err(e) = require_admin(&state, &who, "read").await {
        return error_page(&state, Some(&who), &e);
    }
    let kind = match addable(&kind) {
        Ok(k) => k,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let form = RoomForm {
        modality: Modality::Fluoroscopy.as_str().to_owned(),
        turnaround: "10".to_owned(),
        ..Default::default()
    };
    render(
        &new_page(&state, &who, kind, form, FieldErrors::default()),
        StatusCode::OK,
    )
}

/// Checks a room form; the values, or every problem.
fn check_room_form(form: &RoomForm) -> Result<(String, Modality, u32), FieldErrors> {
    let mut errors = FieldErrors::default();
    let name = form.name.trim().to_owned();
    if name.is_empty() {
        errors
            .0
            .push(err("name", "give the room a name, e.g. Fluoro 3"));
    } else if name.chars().count() > 100 {
        errors
            .0
            .push(err("name", "keep the name to 100 characters"));
    }
    let modality = form.modality.parse::<Modality>().ok();
    if modality.is_none() {
        errors.0.push(err(
            "modality",
            "choose the guidance the room has: fluoroscopy or CT",
        ));
    }
    let turnaround = form
        .turnaround
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| m.is_multiple_of(5) && *m <= irflow_store::MAX_TURNAROUND_MINUTES);
    if turnaround.is_none() {
        errors.0.push(err(
            "turnaround_minutes",
            format!(
                "enter whole minutes, a multiple of 5 from 0 to {}",
                irflow_store::MAX_TURNAROUND_MINUTES
            ),
        ));
    }
    match (modality, turnaround, errors.is_empty()) {
        (Some(m), Some(t), true) => Ok((name, m, t)),
        _ => Err(errors),
    }
}

/// `POST /admin/resources/{rooms|chairs}`: adds a room or chair.
pub async fn new_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(kind): Path<String>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let kind = match addable(&kind) {
        Ok(k) => k,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let site = match the_site(&state).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let form = RoomForm {
        name: f.get("name"),
        modality: f.get("modality"),
        turnaround: f.get("turnaround_minutes"),
    };
    let refuse = |form: RoomForm, errors: FieldErrors| {
        render(
            &new_page(&state, &who, kind, form, errors),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
    };
    let store = state.store();
    let result = match kind {
        Kind::Room => match check_room_form(&form) {
            Ok((name, modality, turnaround)) => {
                store
                    .add_room(&who.actor(), site.id, &name, modality, turnaround)
                    .await
            }
            Err(errors) => return refuse(form, errors),
        },
        _ => {
            if form.name.trim().is_empty() {
                return refuse(
                    form,
                    FieldErrors(vec![err(
                        "name",
                        "give the chair a name, e.g. Recovery chair 5",
                    )]),
                );
            }
            store.add_chair(&who.actor(), site.id, &form.name).await
        }
    };
    match result {
        Ok(id) => Redirect::to(&format!(
            "/admin/resources/{}/{id}?done={}",
            kind.path(),
            if kind == Kind::Room { "room" } else { "chair" }
        ))
        .into_response(),
        Err(StoreError::Field { field, message }) => {
            refuse(form, FieldErrors(vec![err(field, message)]))
        }
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

// ---------------------------------------------------------------- one resource

/// A procedure as a checkbox on a radiologist's page.
pub(crate) struct ProcedureChoice {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) offered: bool,
    pub(crate) checked: bool,
}

/// One weekly window, with its remove button.
pub(crate) struct HoursRow {
    pub(crate) id: i64,
    pub(crate) day: &'static str,
    pub(crate) start: String,
    pub(crate) end: String,
}

/// What the add-hours form holds (as typed).
#[derive(Default, Clone)]
pub(crate) struct HoursForm {
    pub(crate) days: Vec<String>,
    pub(crate) start: String,
    pub(crate) end: String,
}

/// What the add-exception form holds (as typed).
#[derive(Default, Clone)]
pub(crate) struct ClosureForm {
    pub(crate) from_date: String,
    pub(crate) from_time: String,
    pub(crate) to_date: String,
    pub(crate) to_time: String,
    pub(crate) whole_day: bool,
    pub(crate) reason: String,
}

/// Why a change was refused, with the bookings in the way.
pub(crate) struct Refusal {
    pub(crate) message: String,
    pub(crate) bookings: Vec<BookingRow>,
}

/// A proposed exception that covers booked appointments, awaiting confirmation.
pub(crate) struct Confirmation {
    pub(crate) message: String,
    pub(crate) bookings: Vec<BookingRow>,
    pub(crate) appointment_ids: Vec<i64>,
}

#[derive(Template)]
#[template(path = "resources_detail.html")]
pub(crate) struct DetailPage {
    pub(crate) chrome: Chrome,
    pub(crate) done: Option<String>,
    pub(crate) kind: Kind,
    pub(crate) id: i64,
    pub(crate) base: String,
    pub(crate) name: String,
    pub(crate) time_zone: String,
    /// Rooms and chairs: in service or not.
    pub(crate) active: bool,
    pub(crate) username: String,
    pub(crate) room_form: RoomForm,
    pub(crate) modalities: [Modality; 2],
    pub(crate) procedures: Vec<ProcedureChoice>,
    /// Which form the errors belong to: room, procedures, hours, closure.
    pub(crate) form: &'static str,
    pub(crate) errors: FieldErrors,
    pub(crate) refusal: Option<Refusal>,
    pub(crate) upcoming: Vec<BookingRow>,
    pub(crate) hours: Vec<HoursRow>,
    pub(crate) hours_summary: String,
    pub(crate) hours_form: HoursForm,
    pub(crate) weekdays: [(&'static str, &'static str, &'static str); 7],
    pub(crate) closures: Vec<ClosureRow>,
    pub(crate) closure_form: ClosureForm,
    pub(crate) confirm: Option<Confirmation>,
    pub(crate) reasons: [&'static str; 5],
    pub(crate) today: String,
}

impl DetailPage {
    pub(crate) fn summary(&self) -> Vec<(String, String)> {
        summary_of(&self.errors)
    }

    /// The error of a field of one form.
    pub(crate) fn error(&self, form: &str, field: &str) -> Option<&str> {
        if self.form == form {
            self.errors.get(field)
        } else {
            None
        }
    }

    pub(crate) fn day_checked(&self, day: &str) -> bool {
        self.hours_form.days.iter().any(|d| d == day)
    }
}

/// What a refused form leaves on the page.
#[derive(Default)]
struct Redo {
    done: Option<String>,
    form: &'static str,
    errors: FieldErrors,
    refusal: Option<Refusal>,
    room_form: Option<RoomForm>,
    procedures: Option<Vec<String>>,
    hours_form: Option<HoursForm>,
    closure_form: Option<ClosureForm>,
    confirm: Option<Confirmation>,
}

async fn detail_page(
    state: &AppState,
    who: &SignedIn,
    kind: Kind,
    id: i64,
    redo: Redo,
) -> Result<DetailPage, AppError> {
    let store = state.store();
    let site = the_site(state).await?;
    let tz = zone_of(state, &site);
    let not_found = |e: StoreError| match e {
        StoreError::NotFound => AppError::NotFound(format!("there is no such {}", kind.noun())),
        other => other.into(),
    };
    let mut room_form = RoomForm::default();
    let mut procedures = Vec::new();
    let (name, active, username) = match kind {
        Kind::Room => {
            let r = store.room_entry(id).await.map_err(not_found)?;
            room_form = RoomForm {
                name: r.name.clone(),
                modality: r.modality.as_str().to_owned(),
                turnaround: r.turnaround_minutes.to_string(),
            };
            (r.name, r.active, String::new())
        }
        Kind::Chair => {
            let c = store.chair_entry(id).await.map_err(not_found)?;
            (c.name, c.active, String::new())
        }
        Kind::Radiologist => {
            let r = store
                .radiologist_entry(UserId::new(id))
                .await
                .map_err(not_found)?;
            let checked = redo.procedures.clone().unwrap_or(r.procedures.clone());
            procedures = store
                .procedures()
                .await?
                .into_iter()
                .map(|p| ProcedureChoice {
                    checked: checked.contains(&p.code),
                    code: p.code,
                    name: p.name,
                    offered: p.active,
                })
                .collect();
            (r.display_name, r.active, r.username)
        }
    };
    let names = Names::load(state, &site).await?;
    let base = format!("/admin/resources/{}/{id}", kind.path());
    let back = format!("{}-{id}", kind.path());
    let closures =
        closure_rows(state, who, &names, &tz, Some((kind.resource(), id)), &back).await?;
    let windows = store.availability_of(kind.resource(), id).await?;
    let upcoming = store
        .resource_bookings(&who.actor(), kind.resource(), id, Timestamp::now(), None)
        .await?
        .iter()
        .map(|b| booking_row(b, &tz))
        .collect();
    Ok(DetailPage {
        chrome: Chrome::new(state, Some(who), "resources"),
        done: redo.done,
        kind,
        id,
        base,
        name,
        time_zone: site.time_zone.clone(),
        active,
        username,
        room_form: redo.room_form.unwrap_or(room_form),
        modalities: Modality::ALL,
        procedures,
        form: redo.form,
        errors: redo.errors,
        refusal: redo.refusal,
        upcoming,
        hours_summary: hours_summary(&windows.iter().map(|w| w.window).collect::<Vec<_>>()),
        hours: windows
            .iter()
            .map(|w| HoursRow {
                id: w.id,
                day: short_day(w.window.weekday),
                start: hhmm(w.window.start),
                end: hhmm(w.window.end),
            })
            .collect(),
        hours_form: redo.hours_form.unwrap_or_default(),
        weekdays: WEEKDAYS,
        closures,
        closure_form: redo.closure_form.unwrap_or_default(),
        confirm: redo.confirm,
        reasons: REASONS,
        today: state.today().to_string(),
    })
}

fn parse_target(kind: &str, id: &str) -> Result<(Kind, i64), AppError> {
    let kind = Kind::parse(kind)?;
    let id = id
        .parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| AppError::NotFound(format!("there is no such {}", kind.noun())))?;
    Ok((kind, id))
}

async fn show_detail(
    state: &AppState,
    who: &SignedIn,
    kind: Kind,
    id: i64,
    redo: Redo,
    status: StatusCode,
) -> Response {
    match detail_page(state, who, kind, id, redo).await {
        Ok(page) => render(&page, status),
        Err(e) => error_page(state, Some(who), &e),
    }
}

fn redirect_done(kind: Kind, id: i64, done: &str) -> Response {
    Redirect::to(&format!(
        "/admin/resources/{}/{id}?done={done}",
        kind.path()
    ))
    .into_response()
}

/// `GET /admin/resources/{kind}/{id}`: one room, chair or radiologist.
pub async fn detail(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id)): Path<(String, String)>,
    Query(q): Query<DoneQuery>,
) -> Response {
    if let Err(e) = require_admin(&state, &who, "read").await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let redo = Redo {
        done: done_message(&q),
        ..Default::default()
    };
    show_detail(&state, &who, kind, id, redo, StatusCode::OK).await
}

/// `POST /admin/resources/{kind}/{id}`: a room's details, or a radiologist's procedures.
pub async fn detail_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id)): Path<(String, String)>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let store = state.store();
    match kind {
        Kind::Room => {
            let form = RoomForm {
                name: f.get("name"),
                modality: f.get("modality"),
                turnaround: f.get("turnaround_minutes"),
            };
            let refuse = |form: RoomForm, errors: FieldErrors| Redo {
                form: "room",
                errors,
                room_form: Some(form),
                ..Default::default()
            };
            let (name, modality, turnaround) = match check_room_form(&form) {
                Ok(v) => v,
                Err(errors) => {
                    let redo = refuse(form, errors);
                    return show_detail(
                        &state,
                        &who,
                        kind,
                        id,
                        redo,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await;
                }
            };
            match store
                .update_room(
                    &who.actor(),
                    id,
                    &name,
                    modality,
                    turnaround,
                    Timestamp::now(),
                )
                .await
            {
                Ok(()) => redirect_done(kind, id, "details"),
                Err(StoreError::Field { field, message }) => {
                    let redo = refuse(form, FieldErrors(vec![err(field, message)]));
                    show_detail(
                        &state,
                        &who,
                        kind,
                        id,
                        redo,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
                Err(e) => error_page(&state, Some(&who), &detail_error(kind, e)),
            }
        }
        Kind::Radiologist => {
            let chosen = f.all("procedure");
            let catalogue = match store.procedures().await {
                Ok(c) => c,
                Err(e) => return error_page(&state, Some(&who), &e.into()),
            };
            let unknown: Vec<&String> = chosen
                .iter()
                .filter(|c| !catalogue.iter().any(|p| &p.code == *c))
                .collect();
            let refuse = |errors: FieldErrors| Redo {
                form: "procedures",
                errors,
                procedures: Some(chosen.clone()),
                ..Default::default()
            };
            if let Some(code) = unknown.first() {
                let redo = refuse(FieldErrors(vec![err(
                    "procedure",
                    format!("{code} is not in the catalogue"),
                )]));
                return show_detail(
                    &state,
                    &who,
                    kind,
                    id,
                    redo,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            if let Err(e) = store.radiologist_entry(UserId::new(id)).await {
                return error_page(&state, Some(&who), &detail_error(kind, e));
            }
            let codes: Vec<&str> = chosen.iter().map(String::as_str).collect();
            match store
                .set_credentials(&who.actor(), UserId::new(id), &codes)
                .await
            {
                Ok(()) => redirect_done(kind, id, "procedures"),
                Err(StoreError::Field { message, .. }) => {
                    let redo = refuse(FieldErrors(vec![err("procedure", message)]));
                    show_detail(
                        &state,
                        &who,
                        kind,
                        id,
                        redo,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await
                }
                Err(e) => error_page(&state, Some(&who), &detail_error(kind, e)),
            }
        }
        Kind::Chair => error_page(
            &state,
            Some(&who),
            &AppError::NotFound("there is no such form".to_owned()),
        ),
    }
}

fn detail_error(kind: Kind, e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => AppError::NotFound(format!("there is no such {}", kind.noun())),
        other => other.into(),
    }
}

/// `POST /admin/resources/{rooms|chairs}/{id}/active`: out of service, or back in.
/// Refused, with the bookings listed, while future booked appointments use it.
pub async fn active_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id)): Path<(String, String)>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    if kind == Kind::Radiologist {
        return error_page(
            &state,
            Some(&who),
            &AppError::NotFound(
                "radiologists are taken off the schedule by disabling their account".to_owned(),
            ),
        );
    }
    let active = match f.get("active").as_str() {
        "1" => true,
        "0" => false,
        _ => {
            return error_page(
                &state,
                Some(&who),
                &AppError::BadRequest("say whether it is in service".to_owned()),
            );
        }
    };
    let store = state.store();
    let now = Timestamp::now();
    let result = if active {
        match kind {
            Kind::Room => store.set_room_active(&who.actor(), id, true, now).await,
            _ => store.set_chair_active(&who.actor(), id, true, now).await,
        }
    } else {
        // Look first, so the refusal can list the bookings; the store checks again.
        let site = match the_site(&state).await {
            Ok(s) => s,
            Err(e) => return error_page(&state, Some(&who), &e),
        };
        let tz = zone_of(&state, &site);
        let booked = match store
            .resource_bookings(&who.actor(), kind.resource(), id, now, None)
            .await
        {
            Ok(b) => b,
            Err(e) => return error_page(&state, Some(&who), &detail_error(kind, e)),
        };
        if !booked.is_empty() {
            let redo = Redo {
                form: "active",
                refusal: Some(Refusal {
                    message: format!(
                        "This {} cannot be taken out of service: {} future booked {} it. Move or cancel {} first (open each case below), then try again.",
                        kind.noun(),
                        booked.len(),
                        if booked.len() == 1 {
                            "appointment uses"
                        } else {
                            "appointments use"
                        },
                        if booked.len() == 1 { "it" } else { "them" }
                    ),
                    bookings: booked.iter().map(|b| booking_row(b, &tz)).collect(),
                }),
                ..Default::default()
            };
            return show_detail(&state, &who, kind, id, redo, StatusCode::CONFLICT).await;
        }
        match kind {
            Kind::Room => store.set_room_active(&who.actor(), id, false, now).await,
            _ => store.set_chair_active(&who.actor(), id, false, now).await,
        }
    };
    match result {
        Ok(()) => redirect_done(kind, id, if active { "activated" } else { "deactivated" }),
        Err(StoreError::Conflict(message)) => {
            let redo = Redo {
                form: "active",
                refusal: Some(Refusal {
                    message,
                    bookings: Vec::new(),
                }),
                ..Default::default()
            };
            show_detail(&state, &who, kind, id, redo, StatusCode::CONFLICT).await
        }
        Err(e) => error_page(&state, Some(&who), &detail_error(kind, e)),
    }
}

/// Checks the add-hours form: the days, and the times on the grid with the end after the start.
fn check_hours(form: &HoursForm) -> Result<(Vec<Weekday>, Time, Time), FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut days = Vec::new();
    for d in &form.days {
        match d
            .parse::<i8>()
            .ok()
            .and_then(|n| Weekday::from_monday_one_offset(n).ok())
        {
            Some(w) => days.push(w),
            None => {
                errors.0.push(err("weekday", "choose days from the list"));
                break;
            }
        }
    }
    if form.days.is_empty() {
        errors.0.push(err("weekday", "choose at least one day"));
    }
    let time = |raw: &str, field: &'static str, errors: &mut FieldErrors| {
        if raw.trim().is_empty() {
            errors.0.push(err(field, "enter a time, e.g. 08:00"));
            return None;
        }
        match parse_hhmm(raw) {
            None => {
                errors
                    .0
                    .push(err(field, "enter a time as hours and minutes, e.g. 08:00"));
                None
            }
            Some(t) if !on_grid(t) => {
                errors.0.push(err(
                    field,
                    "use a time on the 5-minute grid, e.g. 08:00 or 08:05",
                ));
                None
            }
            Some(t) => Some(t),
        }
    };
    let start = time(&form.start, "start_time", &mut errors);
    let end = time(&form.end, "end_time", &mut errors);
    if let (Some(s), Some(e)) = (start, end)
        && s >= e
    {
        errors
            .0
            .push(err("end_time", "the hours must end after they start"));
    }
    match (start, end, errors.is_empty()) {
        (Some(s), Some(e), true) => Ok((days, s, e)),
        _ => Err(errors),
    }
}

/// `POST /admin/resources/{kind}/{id}/hours`: adds the same hours on one or more days.
pub async fn hours_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id)): Path<(String, String)>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let form = HoursForm {
        days: f.all("weekday"),
        start: f.get("start_time"),
        end: f.get("end_time"),
    };
    let refuse = |form: HoursForm, errors: FieldErrors| Redo {
        form: "hours",
        errors,
        hours_form: Some(form),
        ..Default::default()
    };
    let (days, start, end) = match check_hours(&form) {
        Ok(v) => v,
        Err(errors) => {
            let redo = refuse(form, errors);
            return show_detail(
                &state,
                &who,
                kind,
                id,
                redo,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match state
        .store()
        .add_weekly_hours(&who.actor(), kind.resource(), id, &days, start, end)
        .await
    {
        Ok(_) => redirect_done(kind, id, "hours"),
        Err(StoreError::Field { field, message }) => {
            let redo = refuse(form, FieldErrors(vec![err(field, message)]));
            show_detail(
                &state,
                &who,
                kind,
                id,
                redo,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_page(&state, Some(&who), &detail_error(kind, e)),
    }
}

/// `POST /admin/resources/{kind}/{id}/hours/{hours_id}/remove`.
pub async fn hours_remove(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id, hours_id)): Path<(String, String, String)>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let gone = || AppError::NotFound("those hours are not set (any more)".to_owned());
    let Ok(hours_id) = hours_id.parse::<i64>() else {
        return error_page(&state, Some(&who), &gone());
    };
    let store = state.store();
    match store.availability_of(kind.resource(), id).await {
        Ok(list) if list.iter().any(|w| w.id == hours_id) => {}
        Ok(_) => return error_page(&state, Some(&who), &gone()),
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    }
    match store.remove_availability(&who.actor(), hours_id).await {
        Ok(_) => redirect_done(kind, id, "hours-removed"),
        Err(StoreError::NotFound) => error_page(&state, Some(&who), &gone()),
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

/// Checks the add-exception form and turns its local dates and times into instants
/// in the site's zone (DST-correct: a time in a spring-forward gap moves forward).
fn check_closure(
    form: &ClosureForm,
    tz: &TimeZone,
    now: Timestamp,
) -> Result<(Timestamp, Timestamp, String), FieldErrors> {
    let mut errors = FieldErrors::default();
    let date = |raw: &str, field: &'static str, errors: &mut FieldErrors| -> Option<Date> {
        match raw.trim().parse::<Date>() {
            Ok(d) => Some(d),
            Err(_) => {
                errors
                    .0
                    .push(err(field, "enter a date as YYYY-MM-DD, e.g. 2026-12-24"));
                None
            }
        }
    };
    let time = |raw: &str, field: &'static str, errors: &mut FieldErrors| -> Option<Time> {
        match parse_hhmm(raw) {
            Some(t) if on_grid(t) => Some(t),
            Some(_) => {
                errors.0.push(err(
                    field,
                    "use a time on the 5-minute grid, e.g. 08:00 or 08:05",
                ));
                None
            }
            None => {
                errors
                    .0
                    .push(err(field, "enter a time as hours and minutes, e.g. 08:00"));
                None
            }
        }
    };
    let from_date = if form.from_date.trim().is_empty() {
        errors
            .0
            .push(err("from_date", "enter the first day closed"));
        None
    } else {
        date(&form.from_date, "from_date", &mut errors)
    };
    // The last day defaults to the first.
    let to_date = if form.to_date.trim().is_empty() {
        from_date
    } else {
        date(&form.to_date, "to_date", &mut errors)
    };
    let (from_time, to_time) = if form.whole_day {
        (Some(Time::midnight()), Some(Time::midnight()))
    } else {
        (
            time(&form.from_time, "from_time", &mut errors),
            time(&form.to_time, "to_time", &mut errors),
        )
    };
    let reason = form.reason.trim().to_owned();
    if reason.is_empty() {
        errors.0.push(err(
            "reason",
            "say why, e.g. holiday, room down for service, radiologist away",
        ));
    } else if reason.chars().count() > 200 {
        errors
            .0
            .push(err("reason", "keep the reason to 200 characters"));
    }
    let (Some(fd), Some(td), Some(ft), Some(tt)) = (from_date, to_date, from_time, to_time) else {
        return Err(errors);
    };
    // A whole-day exception runs to the start of the day after the last day.
    let td = if form.whole_day {
        match td.tomorrow() {
            Ok(d) => d,
            Err(_) => {
                errors.0.push(err("to_date", "choose an earlier date"));
                return Err(errors);
            }
        }
    } else {
        td
    };
    let instant = |d: Date, t: Time| {
        d.to_datetime(t)
            .to_zoned_datetime(tz.clone())
            .map(|z| z.timestamp())
            .ok()
    };
    let (Some(start), Some(end)) = (instant(fd, ft), instant(td, tt)) else {
        errors
            .0
            .push(err("from_date", "choose dates within a few centuries"));
        return Err(errors);
    };
    let end_field = if form.whole_day || td != fd {
        "to_date"
    } else {
        "to_time"
    };
    if end <= start {
        errors
            .0
            .push(err(end_field, "the exception must end after it starts"));
    } else if end <= now {
        errors.0.push(err(
            end_field,
            "this is already over; an exception must end in the future",
        ));
    }
    if errors.is_empty() {
        Ok((start, end, reason))
    } else {
        Err(errors)
    }
}

/// `POST /admin/resources/{kind}/{id}/closures`: adds an exception. Over booked
/// appointments it is saved only when the admin ticks that they have seen them.
pub async fn closure_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id)): Path<(String, String)>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let site = match the_site(&state).await {
        Ok(s) => s,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let tz = zone_of(&state, &site);
    let form = ClosureForm {
        from_date: f.get("from_date"),
        from_time: f.get("from_time"),
        to_date: f.get("to_date"),
        to_time: f.get("to_time"),
        whole_day: f.checked("whole_day"),
        reason: f.get("reason"),
    };
    let now = Timestamp::now();
    let (start, end, reason) = match check_closure(&form, &tz, now) {
        Ok(v) => v,
        Err(errors) => {
            let redo = Redo {
                form: "closure",
                errors,
                closure_form: Some(form),
                ..Default::default()
            };
            return show_detail(
                &state,
                &who,
                kind,
                id,
                redo,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let store = state.store();
    let inside = match store
        .resource_bookings(&who.actor(), kind.resource(), id, start, Some(end))
        .await
    {
        Ok(b) => b,
        Err(e) => return error_page(&state, Some(&who), &detail_error(kind, e)),
    };
    // Confirmed only for exactly the bookings the admin was shown.
    let seen: Vec<i64> = f
        .all("seen")
        .iter()
        .filter_map(|s| s.parse::<i64>().ok())
        .collect();
    let confirmed = f.checked("confirm") && inside.iter().all(|b| seen.contains(&b.appointment_id));
    if !inside.is_empty() && !confirmed {
        let mut errors = FieldErrors::default();
        if f.checked("confirm") && !seen.is_empty() {
            errors.0.push(err(
                "confirm",
                "more appointments were booked inside this exception meanwhile; check the list again and confirm",
            ));
        } else if f.checked("confirm") || f.get("confirming") == "1" {
            errors.0.push(err(
                "confirm",
                "tick the box to confirm that these appointments will need moving",
            ));
        }
        let redo = ask_confirmation(form, errors, &inside, &tz);
        return show_detail(&state, &who, kind, id, redo, StatusCode::CONFLICT).await;
    }
    let closure = NewClosure {
        kind: kind.resource(),
        resource_id: id,
        start,
        end,
        reason,
    };
    match store
        .add_closure(&who.actor(), &closure, confirmed, now)
        .await
    {
        Ok(added) => Redirect::to(&format!(
            "/admin/resources/{}/{id}?done=closure&moves={}",
            kind.path(),
            added.affected.len()
        ))
        .into_response(),
        Err(StoreError::Field { field, message }) => {
            let redo = Redo {
                form: "closure",
                errors: FieldErrors(vec![err(field, message)]),
                closure_form: Some(form),
                ..Default::default()
            };
            show_detail(
                &state,
                &who,
                kind,
                id,
                redo,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(StoreError::Conflict(message)) => {
            // Booked meanwhile: show the form again with the bookings, asking to confirm.
            let inside = match store
                .resource_bookings(&who.actor(), kind.resource(), id, start, Some(end))
                .await
            {
                Ok(b) => b,
                Err(e) => return error_page(&state, Some(&who), &detail_error(kind, e)),
            };
            let errors = FieldErrors(vec![err("confirm", message)]);
            let redo = ask_confirmation(form, errors, &inside, &tz);
            show_detail(&state, &who, kind, id, redo, StatusCode::CONFLICT).await
        }
        Err(e) => error_page(&state, Some(&who), &detail_error(kind, e)),
    }
}

/// The add-exception form again, listing the bookings inside it and asking the admin
/// to confirm that they will need moving.
fn ask_confirmation(
    form: ClosureForm,
    errors: FieldErrors,
    inside: &[ResourceBooking],
    tz: &TimeZone,
) -> Redo {
    let n = inside.len();
    Redo {
        form: "closure",
        errors,
        closure_form: Some(form),
        confirm: Some(Confirmation {
            message: format!(
                "{n} booked {} inside this exception. If you save it, {} will be listed as needing a move; nothing is cancelled automatically.",
                if n == 1 {
                    "appointment falls"
                } else {
                    "appointments fall"
                },
                if n == 1 { "it" } else { "they" },
            ),
            appointment_ids: inside.iter().map(|b| b.appointment_id).collect(),
            bookings: inside.iter().map(|b| booking_row(b, tz)).collect(),
        }),
        ..Default::default()
    }
}

/// Query of the remove-exception form: where to go back to.
#[derive(Debug, Deserialize)]
pub struct BackQuery {
    back: Option<String>,
}

/// `POST /admin/resources/{kind}/{id}/closures/{closure_id}/remove`.
pub async fn closure_remove(
    State(state): State<AppState>,
    who: SignedIn,
    Path((kind, id, closure_id)): Path<(String, String, String)>,
    Query(q): Query<BackQuery>,
    body: String,
) -> Response {
    let f = Fields::new(&body);
    if let Err(e) = guard_post(&state, &who, &f).await {
        return error_page(&state, Some(&who), &e);
    }
    let (kind, id) = match parse_target(&kind, &id) {
        Ok(t) => t,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let gone = || AppError::NotFound("that exception is not there (any more)".to_owned());
    let Ok(closure_id) = closure_id.parse::<i64>() else {
        return error_page(&state, Some(&who), &gone());
    };
    let store = state.store();
    match store.closure_entry(closure_id).await {
        Ok(c) if c.kind == kind.resource() && c.resource_id == id => {}
        Ok(_) | Err(StoreError::NotFound) => return error_page(&state, Some(&who), &gone()),
        Err(e) => return error_page(&state, Some(&who), &e.into()),
    }
    match store.remove_closure(&who.actor(), closure_id).await {
        Ok(_) if q.back.as_deref() == Some("overview") => {
            Redirect::to("/admin/resources?done=closure-removed").into_response()
        }
        Ok(_) => redirect_done(kind, id, "closure-removed"),
        Err(StoreError::NotFound) => error_page(&state, Some(&who), &gone()),
        Err(e) => error_page(&state, Some(&who), &e.into()),
    }
}

// ---------------------------------------------------------------- API

fn hours_json(windows: &[WeeklyWindow]) -> Value {
    let mut sorted = windows.to_vec();
    sorted.sort_by_key(|w| (w.weekday.to_monday_one_offset(), w.start));
    json!({
        "summary": hours_summary(&sorted),
        "windows": sorted.iter().map(|w| json!({
            "weekday": w.weekday.to_monday_one_offset(),
            "start": hhmm(w.start),
            "end": hhmm(w.end),
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/resources` (administrators, schedulers): the site, rooms, chairs,
/// radiologists with their procedures, weekly hours and upcoming exceptions.
pub async fn api_resources(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    if !matches!(caller.user.role, Role::Admin | Role::Scheduler) {
        state
            .store()
            .record_audit(NewAuditEvent::new(
                &caller.actor(),
                "list",
                "resources",
                AuditOutcome::Denied,
            ))
            .await?;
        return Err(AppError::Forbidden(
            "the department's resources are listed for administrators and schedulers".to_owned(),
        )
        .into());
    }
    let store = state.store();
    let Some(site) = store.default_site().await? else {
        return Ok(Json(json!({
            "site": null, "rooms": [], "chairs": [], "radiologists": [], "closures": [],
        })));
    };
    let tz = zone_of(&state, &site);
    let windows = store.availability_windows().await?;
    let hours = |kind: ResourceKind, id: i64| {
        let w: Vec<WeeklyWindow> = windows
            .iter()
            .filter(|a| a.kind == kind && a.resource_id == id)
            .map(|a| a.window)
            .collect();
        hours_json(&w)
    };
    let names = Names::load(&state, &site).await?;
    let rooms: Vec<Value> = store
        .all_rooms(site.id)
        .await?
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "name": r.name,
                "modality": r.modality.as_str(),
                "turnaround_minutes": r.turnaround_minutes,
                "active": r.active,
                "hours": hours(ResourceKind::Room, r.id),
            })
        })
        .collect();
    let chairs: Vec<Value> = store
        .all_chairs(site.id)
        .await?
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "name": c.name,
                "active": c.active,
                "hours": hours(ResourceKind::Chair, c.id),
            })
        })
        .collect();
    let radiologists: Vec<Value> = store
        .radiologist_entries()
        .await?
        .iter()
        .map(|r| {
            json!({
                "id": r.id.get(),
                "username": r.username,
                "display_name": r.display_name,
                "active": r.active,
                "procedures": r.procedures,
                "hours": hours(ResourceKind::Radiologist, r.id.get()),
            })
        })
        .collect();
    let closures: Vec<Value> = store
        .upcoming_closures(Timestamp::now())
        .await?
        .iter()
        .map(|c| {
            json!({
                "id": c.id,
                "resource": {
                    "kind": c.kind.as_str(),
                    "id": c.resource_id,
                    "name": names.name(c.kind, c.resource_id),
                },
                "start": rfc3339_local(c.start, &tz),
                "end": rfc3339_local(c.end, &tz),
                "reason": c.reason,
            })
        })
        .collect();
    Ok(Json(json!({
        "site": { "id": site.id, "name": site.name, "time_zone": site.time_zone },
        "rooms": rooms,
        "chairs": chairs,
        "radiologists": radiologists,
        "closures": closures,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::time;

    fn w(day: Weekday, from: (i8, i8), to: (i8, i8)) -> WeeklyWindow {
        WeeklyWindow {
            weekday: day,
            start: time(from.0, from.1, 0, 0),
            end: time(to.0, to.1, 0, 0),
        }
    }

    #[test]
    fn hours_are_summarised_as_day_ranges() {
        use Weekday::*;
        let week: Vec<WeeklyWindow> = [Friday, Monday, Tuesday, Wednesday, Thursday]
            .into_iter()
            .map(|d| w(d, (8, 0), (16, 0)))
            .collect();
        assert_eq!(hours_summary(&week), "Mon-Fri 08:00-16:00");
        let mixed = vec![
            w(Monday, (8, 0), (12, 0)),
            w(Wednesday, (8, 0), (12, 0)),
            w(Thursday, (8, 0), (12, 0)),
            w(Saturday, (9, 0), (11, 30)),
        ];
        assert_eq!(
            hours_summary(&mixed),
            "Mon, Wed, Thu 08:00-12:00; Sat 09:00-11:30"
        );
        assert_eq!(hours_summary(&[]), "no hours set");
    }

    #[test]
    fn closures_are_converted_in_the_site_zone_across_dst() {
        let tz = TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC);
        let now: Timestamp = "2026-01-01T00:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        // The day clocks go back (2026-11-01) is 25 hours long.
        let form = ClosureForm {
            from_date: "2026-11-01".into(),
            whole_day: true,
            reason: "Holiday".into(),
            ..Default::default()
        };
        let (start, end, _) = check_closure(&form, &tz, now).unwrap_or((now, now, String::new()));
        assert_eq!((end - start).as_hours(), 25);
        assert_eq!(span_label(start, end, &tz), "Sun 2026-11-01, whole day");
        // Times on the morning after spring forward (2026-03-08): EDT.
        let form = ClosureForm {
            from_date: "2026-03-08".into(),
            from_time: "08:00".into(),
            to_time: "12:00".into(),
            reason: "Room down for service".into(),
            ..Default::default()
        };
        let (start, end, _) = check_closure(&form, &tz, now).unwrap_or((now, now, String::new()));
        assert_eq!(start.to_string(), "2026-03-08T12:00:00Z");
        assert_eq!(
            span_label(start, end, &tz),
            "Sun 2026-03-08 08:00 – 12:00 EDT"
        );
        // Missing reason, end before start: both reported, by field.
        let form = ClosureForm {
            from_date: "2026-03-09".into(),
            from_time: "12:00".into(),
            to_time: "08:00".into(),
            ..Default::default()
        };
        let errors = check_closure(&form, &tz, now).err().unwrap_or_default();
        assert!(errors.get("reason").is_some());
        assert!(errors.get("to_time").is_some());
    }

    #[test]
    fn hours_form_checks_grid_and_order() {
        let form = HoursForm {
            days: vec!["1".into(), "3".into()],
            start: "08:00".into(),
            end: "07:55".into(),
        };
        assert!(
            check_hours(&form)
                .err()
                .unwrap_or_default()
                .get("end_time")
                .is_some()
        );
        let form = HoursForm {
            days: vec![],
            start: "08:03".into(),
            end: "09:00".into(),
        };
        let errors = check_hours(&form).err().unwrap_or_default();
        assert!(errors.get("weekday").is_some() && errors.get("start_time").is_some());
        let form = HoursForm {
            days: vec!["6".into()],
            start: "08:00".into(),
            end: "12:00:00".into(),
        };
        assert!(check_hours(&form).is_ok());
    }
}
