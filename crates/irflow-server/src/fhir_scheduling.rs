//! FHIR R4 scheduling under `/fhir/r4`: Appointment read and search, Slot search and
//! read, Schedule read and search, and the Location of each procedure room — the
//! same bookings, hours and closures the scheduling API works with.
//!
//! Appointments are patient data: they are read only through the audited store
//! calls (`Store::appointments`, `Store::appointment_listing`), which confine
//! referrers to their own cases (another referrer's appointment is "not found").
//! Slots tell booked time from closed time with the same audited read, so they are
//! for department staff. Schedules and Locations are directory data.

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_domain::Role;
use irflow_domain::scheduling::{Interval, ResourceId, WeeklyWindow};
use irflow_fhir::render;
use irflow_fhir::scheduling::{
    self as fs, APPOINTMENT_STATUSES, AppointmentView, ChairView, InstantRange, LocationView,
    ScheduleRef, ScheduleView, SlotId, SlotSpan, SlotStatus, SlotView,
};
use irflow_fhir::types::OperationOutcome;
use irflow_store::{AppointmentFilter, AppointmentListing, SiteRecord, StoreError};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::Serialize;

use crate::fhir::FhirResponse;
use crate::session::ApiCaller;
use crate::{AppError, AppState};

/// Why a request gets no resource: an OperationOutcome of ours, or any other error
/// (mapped exactly as the rest of `/fhir/r4` maps it).
#[derive(Debug)]
pub enum Fail {
    /// A status and the outcome to send.
    Outcome(StatusCode, OperationOutcome),
    /// Anything else.
    App(AppError),
}

impl IntoResponse for Fail {
    fn into_response(self) -> Response {
        match self {
            Fail::Outcome(status, outcome) => respond(status, &outcome),
            Fail::App(e) => FhirResponse::from(e).into_response(),
        }
    }
}

/// A FHIR answer or a FHIR error.
type Answer = Result<Response, Fail>;

/// Default and largest page for Appointment and Schedule searches.
const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;
/// Most appointments one search looks at.
const MAX_APPOINTMENTS: i64 = 5000;
/// Slot searches: the default and the longest range, in days.
const DEFAULT_SLOT_DAYS: i64 = 7;
const MAX_SLOT_DAYS: i64 = 31;
/// How far ahead a Schedule offers slots, in days.
const HORIZON_DAYS: i64 = 60;

fn respond(status: StatusCode, body: &impl Serialize) -> Response {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a FHIR resource");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"internal error"}]}"#.to_owned(),
            )
        }
    };
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(irflow_fhir::FHIR_JSON),
    );
    response
}

fn ok(body: &impl Serialize) -> Response {
    respond(StatusCode::OK, body)
}

/// Any other error, mapped exactly as the rest of `/fhir/r4` maps it.
fn failure(e: impl Into<AppError>) -> Fail {
    Fail::App(e.into())
}

fn not_found(what: &str, id: &str) -> Fail {
    Fail::Outcome(
        StatusCode::NOT_FOUND,
        OperationOutcome::error(
            "not-found",
            format!("{what}/{id} is not known to this server or not visible to you"),
            None,
        ),
    )
}

fn bad_param(resource: &str, name: &str, message: impl std::fmt::Display) -> Fail {
    Fail::Outcome(
        StatusCode::BAD_REQUEST,
        OperationOutcome::error(
            "invalid",
            format!("{name}: {message}"),
            Some(format!("{resource}?{name}")),
        ),
    )
}

fn forbidden(message: &str) -> Fail {
    Fail::Outcome(
        StatusCode::FORBIDDEN,
        OperationOutcome::error("forbidden", message, None),
    )
}

/// A bearer-token caller whose rejection is an OperationOutcome.
#[derive(Debug)]
pub struct Caller(ApiCaller);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Fail;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        ApiCaller::from_request_parts(parts, state)
            .await
            .map(Caller)
            .map_err(|e| failure(e.0))
    }
}

/// The base URL clients use (`.../fhir/r4`): configured, or this request's host.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.config().public_base_url {
        return format!("{}/fhir/r4", base.trim_end_matches('/'));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/fhir/r4")
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (crate::views::url_decode(k), crate::views::url_decode(v))
        })
        .collect()
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/,:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn positive(raw: &str) -> Option<i64> {
    (!raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .filter(|n| *n > 0)
}

/// `Patient/5` or `5` (for `resource` = `Patient`).
fn reference_id(raw: &str, resource: &str) -> Option<i64> {
    positive(
        raw.strip_prefix(resource)
            .and_then(|r| r.strip_prefix('/'))
            .unwrap_or(raw),
    )
}

/// `_count` and `_offset`, and the links of one page.
#[derive(Debug, Clone, Copy)]
struct Paging {
    count: usize,
    offset: usize,
}

impl Default for Paging {
    fn default() -> Self {
        Self {
            count: DEFAULT_COUNT,
            offset: 0,
        }
    }
}

impl Paging {
    /// Takes `_count` or `_offset`; `Ok(false)` if the name is neither.
    fn take(&mut self, resource: &str, name: &str, value: &str) -> Result<bool, Fail> {
        match name {
            "_count" => {
                self.count = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| bad_param(resource, "_count", "a whole number from 1 to 100"))?;
                Ok(true)
            }
            "_offset" => {
                self.offset = value
                    .parse::<u32>()
                    .map_err(|_| bad_param(resource, "_offset", "a whole number, 0 or more"))?
                    as usize;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// A searchset Bundle of this page of `all`, with self/next/previous links.
    fn bundle<R: Serialize>(
        self,
        base: &str,
        resource: &str,
        kept: &[(String, String)],
        all: Vec<(String, R)>,
    ) -> Response {
        let total = all.len();
        let url = |offset: usize| {
            let mut params: Vec<String> = kept
                .iter()
                .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
                .collect();
            params.push(format!("_count={}", self.count));
            params.push(format!("_offset={offset}"));
            format!("{base}/{resource}?{}", params.join("&"))
        };
        let next = (self.offset.saturating_add(self.count) < total)
            .then(|| url(self.offset.saturating_add(self.count)));
        let previous = (self.offset > 0).then(|| url(self.offset.saturating_sub(self.count)));
        let page: Vec<(String, R)> = all.into_iter().skip(self.offset).take(self.count).collect();
        ok(&render::searchset(
            page,
            u64::try_from(total).unwrap_or(0),
            url(self.offset),
            next,
            previous,
        ))
    }
}

fn unsupported(resource: &str, name: &str) -> Fail {
    bad_param(
        resource,
        name,
        "this search parameter is not supported (see /fhir/r4/metadata)",
    )
}

/// The site and its zone (the configured zone if the site's is unknown).
async fn site(state: &AppState) -> Result<Option<(SiteRecord, TimeZone)>, Fail> {
    let site = state.store().default_site().await.map_err(failure)?;
    Ok(site.map(|s| {
        let tz = TimeZone::get(&s.time_zone).unwrap_or_else(|_| state.time_zone().clone());
        (s, tz)
    }))
}

/// The zone appointments are shown in.
async fn zone(state: &AppState) -> Result<TimeZone, Fail> {
    Ok(site(state)
        .await?
        .map_or_else(|| state.time_zone().clone(), |(_, tz)| tz))
}

fn start_of(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    date.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

fn days(n: i64) -> SignedDuration {
    SignedDuration::from_hours(24 * n)
}

// ----- Appointment -----------------------------------------------------------

fn appointment_view(
    l: &AppointmentListing,
    chairs: &[(i64, String)],
    arrive_minutes_before: i64,
) -> AppointmentView {
    let a = &l.appointment;
    AppointmentView {
        id: a.id,
        case_id: a.case_id.get(),
        state: a.state().to_owned(),
        start: a.start,
        end: a.end,
        patient_id: l.patient_id,
        patient_display: format!("{}, {}", l.family_name, l.given_name),
        radiologist_id: a.radiologist_id,
        radiologist_display: a.radiologist_name.clone(),
        room_id: a.room_id,
        room_display: a.room_name.clone(),
        procedure_code: l.procedure_code.clone(),
        procedure_name: l.procedure_name.clone(),
        chair: match (a.chair_id, a.chair_window) {
            (Some(chair), Some((start, end))) => Some(ChairView {
                name: chairs
                    .iter()
                    .find(|(id, _)| *id == chair)
                    .map_or_else(|| format!("Recovery chair {chair}"), |(_, n)| n.clone()),
                start,
                end,
            }),
            _ => None,
        },
        arrive_minutes_before,
    }
}

/// Every recovery chair's name, in use or not (an old booking may name a retired one).
async fn chairs(state: &AppState) -> Result<Vec<(i64, String)>, Fail> {
    match state.store().default_site().await.map_err(failure)? {
        Some(site) => Ok(state
            .store()
            .all_chairs(site.id)
            .await
            .map_err(failure)?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect()),
        None => Ok(Vec::new()),
    }
}

/// `GET /fhir/r4/Appointment/{id}`.
pub async fn read_appointment(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    let id = positive(&raw).ok_or_else(|| not_found("Appointment", &raw))?;
    match state.store().appointment_listing(&caller.actor(), id).await {
        Ok(Some(listing)) => {
            let tz = zone(&state).await?;
            let chairs = chairs(&state).await?;
            Ok(ok(&fs::appointment(
                &appointment_view(&listing, &chairs, state.config().arrive_minutes_before),
                &tz,
            )))
        }
        Ok(None) | Err(StoreError::NotFound) => Err(not_found("Appointment", &raw)),
        Err(e) => Err(failure(e)),
    }
}

fn set_once(slot: &mut Option<i64>, value: i64, resource: &str, name: &str) -> Result<(), Fail> {
    match slot {
        Some(old) if *old != value => Err(bad_param(
            resource,
            name,
            "names a different patient, radiologist or room than another parameter; give one",
        )),
        _ => {
            *slot = Some(value);
            Ok(())
        }
    }
}

/// `GET /fhir/r4/Appointment?patient=&date=&status=&actor=&practitioner=&location=&_count=&_offset=`.
pub async fn search_appointments(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    const R: &str = "Appointment";
    let tz = zone(&state).await?;
    let mut filter = AppointmentFilter {
        include_cancelled: true,
        limit: Some(MAX_APPOINTMENTS),
        ..AppointmentFilter::default()
    };
    let mut range = InstantRange::default();
    let mut statuses: Vec<String> = Vec::new();
    let mut paging = Paging::default();
    let mut kept = Vec::new();
    for (k, v) in query_pairs(query.as_deref()) {
        if paging.take(R, &k, &v)? {
            continue;
        }
        match k.as_str() {
            "patient" => {
                let id = reference_id(&v, "Patient").ok_or_else(|| {
                    bad_param(
                        R,
                        "patient",
                        format!("expected Patient/{{id}} or {{id}}, got {v:?}"),
                    )
                })?;
                set_once(&mut filter.patient, id, R, "patient")?;
            }
            "practitioner" => {
                let id = reference_id(&v, "Practitioner").ok_or_else(|| {
                    bad_param(
                        R,
                        "practitioner",
                        format!("expected Practitioner/{{id}} or {{id}}, got {v:?}"),
                    )
                })?;
                set_once(&mut filter.radiologist, id, R, "practitioner")?;
            }
            "location" => {
                let room = fs::parse_room_id(v.strip_prefix("Location/").unwrap_or(&v))
                    .ok_or_else(|| {
                        bad_param(
                            R,
                            "location",
                            format!("expected Location/room-{{id}}, got {v:?}"),
                        )
                    })?;
                set_once(&mut filter.room, room, R, "location")?;
            }
            "actor" => {
                if let Some(p) = v.strip_prefix("Patient/").and_then(positive) {
                    set_once(&mut filter.patient, p, R, "actor")?;
                } else {
                    match ScheduleRef::from_actor(&v) {
                        Some(ScheduleRef::Room(room)) => {
                            set_once(&mut filter.room, room, R, "actor")?;
                        }
                        Some(ScheduleRef::Radiologist(id)) => {
                            set_once(&mut filter.radiologist, id, R, "actor")?;
                        }
                        None => {
                            return Err(bad_param(
                                R,
                                "actor",
                                format!(
                                    "expected Patient/{{id}}, Practitioner/{{id}} or Location/room-{{id}}, got {v:?}"
                                ),
                            ));
                        }
                    }
                }
            }
            "date" => range.narrow(&v, &tz).map_err(|e| bad_param(R, "date", e))?,
            "status" => {
                for s in v.split(',').map(str::trim) {
                    if !APPOINTMENT_STATUSES.contains(&s) {
                        return Err(bad_param(
                            R,
                            "status",
                            format!(
                                "{s:?} is not an appointment status; irflow's are booked, arrived, noshow and cancelled"
                            ),
                        ));
                    }
                    statuses.push(s.to_owned());
                }
            }
            "_format" if v.contains("json") => continue,
            other => return Err(unsupported(R, other)),
        }
        kept.push((k, v));
    }
    filter.from = range.from;
    filter.to = range.to;
    let empty = matches!((range.from, range.to), (Some(f), Some(t)) if f >= t);
    let listings = if empty {
        Vec::new()
    } else {
        state
            .store()
            .appointments(&caller.actor(), &filter)
            .await
            .map_err(failure)?
    };
    let chairs = chairs(&state).await?;
    let base = base_url(&state, &headers);
    let all: Vec<_> = listings
        .iter()
        .map(|l| {
            (
                appointment_view(l, &chairs, state.config().arrive_minutes_before),
                l,
            )
        })
        .filter(|(v, _)| {
            statuses.is_empty()
                || statuses
                    .iter()
                    .any(|s| s == fs::appointment_status(&v.state))
        })
        .map(|(v, l)| {
            (
                format!("{base}/Appointment/{}", l.appointment.id),
                fs::appointment(&v, &tz),
            )
        })
        .collect();
    Ok(paging.bundle(&base, R, &kept, all))
}

// ----- Schedule and Location -------------------------------------------------

/// Every schedule of the site: its active rooms, then its credentialed radiologists.
async fn schedules(state: &AppState) -> Result<Option<(TimeZone, Vec<ScheduleView>)>, Fail> {
    let Some((site, tz)) = site(state).await? else {
        return Ok(None);
    };
    let now = Timestamp::now();
    let res = state
        .store()
        .slot_resources(&site, now, now)
        .await
        .map_err(failure)?;
    let rooms = state.store().rooms(site.id).await.map_err(failure)?;
    let users = state.store().list_users().await.map_err(failure)?;
    let procedures = state.store().procedures().await.map_err(failure)?;
    let today = now.to_zoned_datetime(tz.clone()).date();
    let horizon_start = start_of(today, &tz).unwrap_or(now);
    let horizon_end = today
        .checked_add(Span::new().days(HORIZON_DAYS))
        .ok()
        .and_then(|d| start_of(d, &tz))
        .unwrap_or(horizon_start);
    let name_of = |code: &str| {
        procedures
            .iter()
            .find(|p| p.code == code)
            .map_or_else(|| code.to_owned(), |p| p.name.clone())
    };
    let mut out = Vec::new();
    for room in &res.rooms {
        out.push(ScheduleView {
            schedule: ScheduleRef::Room(room.id),
            actor_display: rooms
                .iter()
                .find(|r| r.id == room.id)
                .map_or_else(|| fs::room_id(room.id), |r| r.name.clone()),
            services: procedures
                .iter()
                .filter(|p| p.active && p.modalities.contains(&room.modality))
                .map(|p| (p.code.clone(), p.name.clone()))
                .collect(),
            windows: room.windows.clone(),
            horizon_start,
            horizon_end,
        });
    }
    for rad in &res.radiologists {
        out.push(ScheduleView {
            schedule: ScheduleRef::Radiologist(rad.id),
            actor_display: users.iter().find(|u| u.id.get() == rad.id).map_or_else(
                || format!("Practitioner {}", rad.id),
                |u| u.display_name.clone(),
            ),
            services: rad
                .procedures
                .iter()
                .map(|code| (code.clone(), name_of(code)))
                .collect(),
            windows: rad.windows.clone(),
            horizon_start,
            horizon_end,
        });
    }
    Ok(Some((tz, out)))
}

/// `GET /fhir/r4/Schedule/{id}` (`room-{id}` or `radiologist-{userId}`).
pub async fn read_schedule(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    let wanted = ScheduleRef::parse(&raw).ok_or_else(|| not_found("Schedule", &raw))?;
    let (tz, all) = schedules(&state)
        .await?
        .ok_or_else(|| not_found("Schedule", &raw))?;
    all.iter()
        .find(|s| s.schedule == wanted)
        .map(|s| ok(&fs::schedule(s, &tz)))
        .ok_or_else(|| not_found("Schedule", &raw))
}

/// `GET /fhir/r4/Schedule?actor=&_count=&_offset=`.
pub async fn search_schedules(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    const R: &str = "Schedule";
    let mut actor = None;
    let mut paging = Paging::default();
    let mut kept = Vec::new();
    for (k, v) in query_pairs(query.as_deref()) {
        if paging.take(R, &k, &v)? {
            continue;
        }
        match k.as_str() {
            "actor" => {
                let a = ScheduleRef::from_actor(&v).ok_or_else(|| {
                    bad_param(
                        R,
                        "actor",
                        format!("expected Location/room-{{id}} or Practitioner/{{id}}, got {v:?}"),
                    )
                })?;
                if actor.is_some_and(|old| old != a) {
                    return Err(bad_param(R, "actor", "give one actor"));
                }
                actor = Some(a);
            }
            "_format" if v.contains("json") => continue,
            other => return Err(unsupported(R, other)),
        }
        kept.push((k, v));
    }
    let base = base_url(&state, &headers);
    let all = match schedules(&state).await? {
        Some((tz, all)) => all
            .iter()
            .filter(|s| actor.is_none_or(|a| a == s.schedule))
            .map(|s| {
                (
                    format!("{base}/Schedule/{}", s.schedule.id()),
                    fs::schedule(s, &tz),
                )
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(paging.bundle(&base, R, &kept, all))
}

/// `GET /fhir/r4/Location/room-{id}`: a procedure room, in use or not.
pub async fn read_location(
    State(state): State<AppState>,
    Caller(_caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    let id = fs::parse_room_id(&raw).ok_or_else(|| not_found("Location", &raw))?;
    let room = match state.store().room_entry(id).await {
        Ok(room) => room,
        Err(StoreError::NotFound) => return Err(not_found("Location", &raw)),
        Err(e) => return Err(failure(e)),
    };
    let site_name = match state.store().default_site().await.map_err(failure)? {
        Some(site) if site.id == room.site_id => site.name,
        _ => format!("site {}", room.site_id),
    };
    Ok(ok(&fs::location(&LocationView {
        room: room.id,
        name: room.name,
        modality: room.modality,
        site_name,
        active: room.active,
    })))
}

// ----- Slot ------------------------------------------------------------------

/// Slots are free and busy time worked out from everyone's bookings: for staff.
fn staff_only(caller: &ApiCaller) -> Result<(), Fail> {
    if caller.user.role == Role::Referrer {
        return Err(forbidden(
            "free and busy times are for department staff; referrers see their own patients' appointments",
        ));
    }
    Ok(())
}

/// One schedule's slots starting in `[from, to)`, with its name, or `None` if there is
/// no such schedule.
async fn slots_of(
    state: &AppState,
    caller: &ApiCaller,
    schedule: ScheduleRef,
    from: Timestamp,
    to: Timestamp,
) -> Result<Option<(TimeZone, String, Vec<SlotView>)>, Fail> {
    let Some((site, tz)) = site(state).await? else {
        return Ok(None);
    };
    let first = from.to_zoned_datetime(tz.clone()).date();
    let last = (to - SignedDuration::from_nanos(1))
        .to_zoned_datetime(tz.clone())
        .date();
    let (Some(day_start), Some(after_last)) = (
        start_of(first, &tz),
        last.tomorrow().ok().and_then(|d| start_of(d, &tz)),
    ) else {
        return Ok(Some((tz, String::new(), Vec::new())));
    };
    let load = Interval {
        start: day_start - days(1),
        end: after_last + days(1),
    };
    let res = state
        .store()
        .slot_resources(&site, load.start, load.end)
        .await
        .map_err(failure)?;
    let mut filter = AppointmentFilter {
        from: Some(load.start - days(1)),
        to: Some(load.end),
        limit: Some(MAX_APPOINTMENTS),
        ..AppointmentFilter::default()
    };
    let (resource, windows, turnaround, name): (ResourceId, Vec<WeeklyWindow>, u32, String) =
        match schedule {
            ScheduleRef::Room(id) => {
                let Some(room) = res.rooms.iter().find(|r| r.id == id) else {
                    return Ok(None);
                };
                filter.room = Some(id);
                let name = state
                    .store()
                    .rooms(site.id)
                    .await
                    .map_err(failure)?
                    .into_iter()
                    .find(|r| r.id == id)
                    .map_or_else(|| fs::room_id(id), |r| r.name);
                (
                    ResourceId::Room(id),
                    room.windows.clone(),
                    room.turnaround_minutes,
                    name,
                )
            }
            ScheduleRef::Radiologist(id) => {
                let Some(rad) = res.radiologists.iter().find(|r| r.id == id) else {
                    return Ok(None);
                };
                filter.radiologist = Some(id);
                let name = state
                    .store()
                    .list_users()
                    .await
                    .map_err(failure)?
                    .into_iter()
                    .find(|u| u.id.get() == id)
                    .map_or_else(|| format!("Practitioner {id}"), |u| u.display_name);
                (ResourceId::Radiologist(id), rad.windows.clone(), 0, name)
            }
        };
    let busy = res.busy.intervals(&resource, &load);
    // Bookings, as the busy index holds them (rooms with their turnaround).
    let booked: Vec<Interval> = state
        .store()
        .appointments(&caller.actor(), &filter)
        .await
        .map_err(failure)?
        .iter()
        .map(|l| &l.appointment)
        .filter(|a| a.status == "booked")
        .map(|a| Interval {
            start: a.start,
            end: a.end + SignedDuration::from_mins(i64::from(turnaround)),
        })
        .collect();
    let spans: Vec<SlotSpan> = fs::slot_spans(&windows, &tz, first, last, &busy, &booked);
    let views = spans
        .into_iter()
        .filter(|s| from <= s.start && s.start < to)
        .map(|s| SlotView {
            id: SlotId {
                schedule,
                start: s.start,
                status: s.status,
            },
            end: s.end,
            schedule_display: name.clone(),
            comment: match s.status {
                SlotStatus::Free => None,
                SlotStatus::Busy if turnaround > 0 => Some(format!(
                    "Booked (including the room's {turnaround}-minute turnaround)"
                )),
                SlotStatus::Busy => Some("Booked".to_owned()),
                SlotStatus::BusyUnavailable => {
                    Some("Closed (an exception to the weekly hours)".to_owned())
                }
            },
        })
        .collect();
    Ok(Some((tz, name, views)))
}

/// `GET /fhir/r4/Slot?schedule=Schedule/room-1&start=ge2026-12-07&start=lt2026-12-09&status=free`.
pub async fn search_slots(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    const R: &str = "Slot";
    staff_only(&caller)?;
    let tz = zone(&state).await?;
    let mut schedule = None;
    let mut range = InstantRange::default();
    let mut statuses: Vec<SlotStatus> = Vec::new();
    let mut status_given = false;
    let mut kept = Vec::new();
    for (k, v) in query_pairs(query.as_deref()) {
        match k.as_str() {
            "schedule" => {
                let s = ScheduleRef::parse(&v).ok_or_else(|| {
                    bad_param(
                        R,
                        "schedule",
                        format!(
                            "expected Schedule/room-{{id}} or Schedule/radiologist-{{userId}}, got {v:?}"
                        ),
                    )
                })?;
                if schedule.is_some_and(|old| old != s) {
                    return Err(bad_param(R, "schedule", "give one schedule"));
                }
                schedule = Some(s);
            }
            "start" => range
                .narrow(&v, &tz)
                .map_err(|e| bad_param(R, "start", e))?,
            "status" => {
                status_given = true;
                for code in v.split(',').map(str::trim) {
                    if let Some(s) =
                        SlotStatus::from_code(code).map_err(|e| bad_param(R, "status", e))?
                    {
                        statuses.push(s);
                    }
                }
            }
            "_format" if v.contains("json") => continue,
            other => return Err(unsupported(R, other)),
        }
        kept.push((k, v));
    }
    let Some(schedule) = schedule else {
        return Err(bad_param(
            R,
            "schedule",
            "required: Schedule/room-{id} or Schedule/radiologist-{userId} (see GET /fhir/r4/Schedule)",
        ));
    };
    let today = Timestamp::now().to_zoned_datetime(tz.clone()).date();
    let week = days(DEFAULT_SLOT_DAYS);
    let (from, to) = match (range.from, range.to) {
        (Some(f), Some(t)) => (f, t),
        (Some(f), None) => (f, f + week),
        (None, Some(t)) => (t - week, t),
        (None, None) => {
            let f = start_of(today, &tz).unwrap_or_else(Timestamp::now);
            let t = today
                .checked_add(Span::new().days(DEFAULT_SLOT_DAYS))
                .ok()
                .and_then(|d| start_of(d, &tz))
                .unwrap_or(f + week);
            (f, t)
        }
    };
    // 31 local days may hold a daylight-saving hour more.
    if to - from > days(MAX_SLOT_DAYS) + SignedDuration::from_hours(1) {
        return Err(bad_param(
            R,
            "start",
            format!(
                "give a range of at most {MAX_SLOT_DAYS} days, e.g. start=ge2026-12-07&start=lt2026-12-14"
            ),
        ));
    }
    let base = base_url(&state, &headers);
    let slots = if from < to {
        slots_of(&state, &caller, schedule, from, to).await?
    } else {
        None
    };
    let entries: Vec<(String, fs::Slot)> = match slots {
        Some((tz, _, views)) => views
            .iter()
            .filter(|v| !status_given || statuses.contains(&v.id.status))
            .map(|v| (format!("{base}/Slot/{}", v.id.id()), fs::slot(v, &tz)))
            .collect(),
        None => Vec::new(),
    };
    let total = u64::try_from(entries.len()).unwrap_or(0);
    let params: Vec<String> = kept
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect();
    let self_url = format!("{base}/Slot?{}", params.join("&"));
    Ok(ok(&render::searchset(entries, total, self_url, None, None)))
}

/// `GET /fhir/r4/Slot/{id}`: the slot recomputed from its id; 404 if that time is no
/// longer free, booked or closed as the id says.
pub async fn read_slot(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    staff_only(&caller)?;
    let wanted = SlotId::parse(&raw).ok_or_else(|| not_found("Slot", &raw))?;
    let year = wanted.start.to_zoned_datetime(TimeZone::UTC).year();
    if !(1900..=2199).contains(&year) {
        return Err(not_found("Slot", &raw));
    }
    let found = slots_of(
        &state,
        &caller,
        wanted.schedule,
        wanted.start,
        wanted.start + SignedDuration::from_secs(1),
    )
    .await?;
    found
        .and_then(|(tz, _, views)| {
            views
                .into_iter()
                .find(|v| {
                    v.id.status == wanted.status
                        && v.id.start.as_second() == wanted.start.as_second()
                })
                .map(|v| ok(&fs::slot(&v, &tz)))
        })
        .ok_or_else(|| not_found("Slot", &raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_take_both_forms() {
        assert_eq!(reference_id("Patient/5", "Patient"), Some(5));
        assert_eq!(reference_id("5", "Patient"), Some(5));
        assert_eq!(reference_id("Practitioner/5", "Patient"), None);
        assert_eq!(reference_id("Patient/-5", "Patient"), None);
        assert_eq!(reference_id("Patient/", "Patient"), None);
        assert_eq!(
            encode("ge2026-12-07T09:00:00+01:00"),
            "ge2026-12-07T09:00:00%2B01:00"
        );
    }
}
