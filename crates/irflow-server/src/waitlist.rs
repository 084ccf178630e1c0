//! The waitlist: patients who want an earlier date. Time freed by a cancellation, a
//! move or a no-show is offered to the cases on the list that are ready and safe on
//! that date (the screening is re-evaluated for it) and for whom it is earlier than
//! what they have. Offers are computed from the live schedule each time they are
//! shown, so an offer is never stale: once the time is rebooked it is gone.

use askama::Template;
use axum::Form;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::scheduling::{Interval, ResourceId, SlotOption};
use irflow_domain::{Actor, CaseId, Role};
use irflow_store::{AppointmentRecord, SiteRecord, WaitlistEntry};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, error_page, forged, render};
use crate::scheduling_api::{appointment_json, find_in, option_json, request_for};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{local_time, rfc3339_local};
use crate::{AppError, AppState};

/// How far ahead freed time is offered.
const OFFER_HORIZON_DAYS: i64 = 60;

/// One freed time and the waitlisted cases it suits, best first (longest waiting).
pub(crate) struct FreedTime {
    pub(crate) freed: AppointmentRecord,
    pub(crate) candidates: Vec<(WaitlistEntry, SlotOption)>,
}

fn may_keep_waitlist(actor: &Actor) -> Result<(), AppError> {
    match actor.role {
        Some(Role::Scheduler | Role::Admin) => Ok(()),
        _ => Err(AppError::Forbidden(
            "the waitlist is kept by schedulers".to_owned(),
        )),
    }
}

/// The option, if any, that the freed time gives this waitlisted case: ready and safe
/// on that date by its re-evaluated screening, inside the freed time, and earlier than
/// its current booking.
async fn fit(
    state: &AppState,
    actor: &Actor,
    site: &SiteRecord,
    freed: &AppointmentRecord,
    entry: &WaitlistEntry,
) -> Result<Option<SlotOption>, AppError> {
    if entry.case_id == freed.case_id {
        return Ok(None);
    }
    if let Some(current) = entry.booked_start
        && current <= freed.start
    {
        return Ok(None);
    }
    let date = freed
        .start
        .to_zoned_datetime(state.time_zone().clone())
        .date();
    let mut req = match request_for(state, actor, entry.case_id, date, 5).await {
        Ok(r) => r,
        // Not ready or not safe on that date: not offered.
        Err(AppError::Conflict(_) | AppError::Invalid(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    req.not_before = req.not_before.max(freed.start);
    req.from = date;
    req.days_ahead = 1;
    let found = find_in(state, site, &req, entry.booked_appointment).await?;
    Ok(found
        .into_iter()
        .filter(|o| o.start < freed.end)
        .find(|o| entry.booked_start.is_none_or(|b| o.start < b)))
}

/// Freed times from now on, each with the waitlisted cases it suits. With
/// `only`, just that freed appointment.
pub(crate) async fn freed_offers(
    state: &AppState,
    actor: &Actor,
    only: Option<&AppointmentRecord>,
) -> Result<Vec<FreedTime>, AppError> {
    let Some(site) = state.store().default_site().await? else {
        return Ok(Vec::new());
    };
    let now = Timestamp::now();
    let freed = match only {
        Some(a) if a.start > now => vec![a.clone()],
        Some(_) => Vec::new(),
        None => {
            state
                .store()
                .freed_times(
                    site.id,
                    now,
                    now + SignedDuration::from_hours(24 * OFFER_HORIZON_DAYS),
                )
                .await?
        }
    };
    if freed.is_empty() {
        return Ok(Vec::new());
    }
    // A freed time someone has since rebooked is gone: keep those whose room is free.
    let (lo, hi) = freed
        .iter()
        .fold((freed[0].start, freed[0].end), |(lo, hi), f| {
            (lo.min(f.start), hi.max(f.end))
        });
    let res = state
        .store()
        .slot_resources(
            &site,
            lo - SignedDuration::from_hours(24),
            hi + SignedDuration::from_hours(24),
        )
        .await?;
    let freed: Vec<AppointmentRecord> = freed
        .into_iter()
        .filter(|f| {
            res.busy.is_free(
                &ResourceId::Room(f.room_id),
                &Interval {
                    start: f.start,
                    end: f.end,
                },
            )
        })
        .collect();
    if freed.is_empty() {
        return Ok(Vec::new());
    }
    let entries = state
        .store()
        .waitlist(actor)
        .await
        .map_err(crate::pages::case_error)?;
    let mut out = Vec::with_capacity(freed.len());
    for f in freed {
        let mut candidates = Vec::new();
        for e in &entries {
            if let Some(option) = fit(state, actor, &site, &f, e).await? {
                candidates.push((e.clone(), option));
            }
        }
        out.push(FreedTime {
            freed: f,
            candidates,
        });
    }
    Ok(out)
}

fn entry_json(state: &AppState, e: &WaitlistEntry) -> Value {
    let tz = state.time_zone();
    json!({
        "case_id": e.case_id.get(),
        "patient": format!("{}, {}", e.family_name, e.given_name),
        "procedure": e.procedure_name,
        "case_state": e.case_state.as_str(),
        "note": e.note,
        "added_by": e.added_by,
        "added_at": rfc3339_local(e.added_at, tz),
        "booked_start": e.booked_start.map(|t| rfc3339_local(t, tz)),
    })
}

pub(crate) async fn offers_json(
    state: &AppState,
    offers: &[FreedTime],
) -> Result<Vec<Value>, AppError> {
    let Some(site) = state.store().default_site().await? else {
        return Ok(Vec::new());
    };
    let tz = state.time_zone();
    let mut out = Vec::with_capacity(offers.len());
    for o in offers {
        let mut candidates = Vec::with_capacity(o.candidates.len());
        for (e, option) in &o.candidates {
            candidates.push(json!({
                "case_id": e.case_id.get(),
                "patient": format!("{}, {}", e.family_name, e.given_name),
                "currently_booked": e.booked_start.map(|t| rfc3339_local(t, tz)),
                "option": option_json(state, &site, option).await?,
            }));
        }
        out.push(json!({
            "freed": {
                "start": rfc3339_local(o.freed.start, tz),
                "end": rfc3339_local(o.freed.end, tz),
                "room": { "id": o.freed.room_id, "name": o.freed.room_name },
                "radiologist": { "id": o.freed.radiologist_id, "name": o.freed.radiologist_name },
            },
            "candidates": candidates,
        }));
    }
    Ok(out)
}

/// `GET /api/v1/waitlist`: the cases waiting for an earlier date, and the freed times
/// on offer with the cases each suits.
pub async fn api_list(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let actor = caller.actor();
    may_keep_waitlist(&actor)?;
    let entries = state
        .store()
        .waitlist(&actor)
        .await
        .map_err(crate::pages::case_error)?;
    let offers = freed_offers(&state, &actor, None).await?;
    Ok(Json(json!({
        "entries": entries.iter().map(|e| entry_json(&state, e)).collect::<Vec<_>>(),
        "offers": offers_json(&state, &offers).await?,
    })))
}

/// Body of `POST /api/v1/cases/{id}/waitlist`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddBody {
    #[serde(default)]
    note: String,
}

/// `POST /api/v1/cases/{id}/waitlist`: the patient wants an earlier date.
pub async fn api_add(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<AddBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let actor = caller.actor();
    may_keep_waitlist(&actor)?;
    if body.note.chars().count() > 500 {
        return Err(AppError::Invalid("keep the note under 500 characters".to_owned()).into());
    }
    state
        .store()
        .add_to_waitlist(&actor, id, &body.note, Timestamp::now())
        .await
        .map_err(crate::pages::case_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "case_id": id.get(), "on_waitlist": true, "note": body.note.trim() })),
    )
        .into_response())
}

/// Body of `DELETE /api/v1/cases/{id}/waitlist`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveBody {
    reason: String,
}

/// `DELETE /api/v1/cases/{id}/waitlist` with `{"reason": ...}`.
pub async fn api_remove(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<RemoveBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let actor = caller.actor();
    may_keep_waitlist(&actor)?;
    if body.reason.trim().is_empty() {
        return Err(AppError::Invalid("say why the case leaves the waitlist".to_owned()).into());
    }
    let removed = state
        .store()
        .remove_from_waitlist(&actor, id, &body.reason, Timestamp::now())
        .await
        .map_err(crate::pages::case_error)?;
    if !removed {
        return Err(AppError::NotFound("this case is not on the waitlist".to_owned()).into());
    }
    Ok(Json(json!({ "case_id": id.get(), "on_waitlist": false })))
}

/// Takes a freed time for a waitlisted case: books it, or moves its booking earlier,
/// and takes it off the list.
pub(crate) async fn take_offer(
    state: &AppState,
    actor: &Actor,
    id: CaseId,
    start: Timestamp,
    room: i64,
    radiologist: i64,
) -> Result<AppointmentRecord, AppError> {
    may_keep_waitlist(actor)?;
    let current = state
        .store()
        .appointment_for_case(actor, id)
        .await
        .map_err(crate::pages::case_error)?;
    let booked = match current {
        Some(_) => {
            crate::scheduling_api::move_option(
                state,
                actor,
                id,
                start,
                room,
                radiologist,
                "an earlier time from the waitlist",
            )
            .await?
        }
        None => {
            crate::scheduling_api::book_option(state, actor, id, start, room, radiologist, None)
                .await?
        }
    };
    state
        .store()
        .remove_from_waitlist(
            actor,
            id,
            "took an earlier time from the waitlist",
            Timestamp::now(),
        )
        .await
        .map_err(crate::pages::case_error)?;
    Ok(booked)
}

/// Body of `POST /api/v1/cases/{id}/waitlist/take`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TakeBody {
    start: String,
    room: i64,
    radiologist: i64,
}

/// `POST /api/v1/cases/{id}/waitlist/take`: books (or moves to) an offered freed time.
pub async fn api_take(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<TakeBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let start: Timestamp = body.start.parse().map_err(|_| {
        AppError::BadRequest("start must be an RFC 3339 time with its offset".to_owned())
    })?;
    let a = take_offer(
        &state,
        &caller.actor(),
        id,
        start,
        body.room,
        body.radiologist,
    )
    .await?;
    Ok(Json(appointment_json(&state, &a)))
}

struct EntryRow {
    case_id: i64,
    patient: String,
    procedure: String,
    state: &'static str,
    booked: String,
    note: String,
    added: String,
}

struct CandidateRow {
    case_id: i64,
    patient: String,
    currently: String,
    when: String,
    start: String,
    room: i64,
    room_name: String,
    radiologist: i64,
    radiologist_name: String,
}

struct FreedRow {
    when: String,
    room: String,
    radiologist: String,
    candidates: Vec<CandidateRow>,
}

#[derive(Template)]
#[template(path = "waitlist.html")]
struct WaitlistPage {
    chrome: Chrome,
    entries: Vec<EntryRow>,
    freed: Vec<FreedRow>,
    done: Option<String>,
    error: Option<String>,
}

/// Query of `GET /waitlist`.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    done: Option<String>,
}

async fn waitlist_page(
    state: &AppState,
    who: &SignedIn,
    done: Option<String>,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    let actor = who.actor();
    if let Err(e) = may_keep_waitlist(&actor) {
        return error_page(state, Some(who), &e);
    }
    let tz = state.time_zone();
    let entries = match state.store().waitlist(&actor).await {
        Ok(e) => e,
        Err(e) => return error_page(state, Some(who), &crate::pages::case_error(e)),
    };
    let offers = match freed_offers(state, &actor, None).await {
        Ok(o) => o,
        Err(e) => return error_page(state, Some(who), &e),
    };
    let site = state.store().default_site().await.ok().flatten();
    let rooms = match &site {
        Some(s) => state.store().rooms(s.id).await.unwrap_or_default(),
        None => Vec::new(),
    };
    let users = state.store().list_users().await.unwrap_or_default();
    let hm = |t: Timestamp| {
        t.to_zoned_datetime(tz.clone())
            .strftime("%H:%M")
            .to_string()
    };
    let page = WaitlistPage {
        chrome: Chrome::new(state, Some(who), "waitlist"),
        entries: entries
            .iter()
            .map(|e| EntryRow {
                case_id: e.case_id.get(),
                patient: format!("{}, {}", e.family_name, e.given_name),
                procedure: e.procedure_name.clone(),
                state: e.case_state.label(),
                booked: e
                    .booked_start
                    .map_or_else(|| "not booked".to_owned(), |t| local_time(t, tz)),
                note: e.note.clone(),
                added: local_time(e.added_at, tz),
            })
            .collect(),
        freed: offers
            .iter()
            .map(|o| FreedRow {
                when: format!("{} – {}", local_time(o.freed.start, tz), hm(o.freed.end)),
                room: o.freed.room_name.clone(),
                radiologist: o.freed.radiologist_name.clone(),
                candidates: o
                    .candidates
                    .iter()
                    .map(|(e, opt)| CandidateRow {
                        case_id: e.case_id.get(),
                        patient: format!("{}, {}", e.family_name, e.given_name),
                        currently: e
                            .booked_start
                            .map_or_else(|| "not booked".to_owned(), |t| local_time(t, tz)),
                        when: format!("{} – {}", local_time(opt.start, tz), hm(opt.end)),
                        start: rfc3339_local(opt.start, tz),
                        room: opt.room,
                        room_name: rooms
                            .iter()
                            .find(|r| r.id == opt.room)
                            .map_or_else(|| opt.room.to_string(), |r| r.name.clone()),
                        radiologist: opt.radiologist,
                        radiologist_name: users
                            .iter()
                            .find(|u| u.id.get() == opt.radiologist)
                            .map_or_else(
                                || opt.radiologist.to_string(),
                                |u| u.display_name.clone(),
                            ),
                    })
                    .collect(),
            })
            .collect(),
        done,
        error,
    };
    render(&page, status)
}

/// `GET /waitlist`.
pub async fn page(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<PageQuery>,
) -> Response {
    let done = q.done.map(|d| match d.as_str() {
        "took" => "Booked: the freed time went to the waitlisted patient.".to_owned(),
        _ => "Done.".to_owned(),
    });
    waitlist_page(&state, &who, done, None, StatusCode::OK).await
}

/// What the offer form posts.
#[derive(Debug, Deserialize)]
pub struct TakeForm {
    #[serde(default)]
    csrf: String,
    case_id: Option<String>,
    #[serde(default)]
    start: String,
    room: Option<i64>,
    radiologist: Option<i64>,
}

/// `POST /waitlist/take`.
pub async fn take(
    State(state): State<AppState>,
    who: SignedIn,
    Form(f): Form<TakeForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let parsed = match (
        f.case_id.as_deref().map(parse_case_id),
        f.start.parse::<Timestamp>(),
        f.room,
        f.radiologist,
    ) {
        (Some(Ok(id)), Ok(start), Some(room), Some(rad)) => Ok((id, start, room, rad)),
        _ => Err(AppError::BadRequest(
            "choose one of the offered times".to_owned(),
        )),
    };
    let result = match parsed {
        Ok((id, start, room, rad)) => take_offer(&state, &who.actor(), id, start, room, rad).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to("/waitlist?done=took").into_response(),
        Err(e @ (AppError::Forbidden(_) | AppError::Internal(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            let status = e.status();
            waitlist_page(&state, &who, None, Some(e.public_message()), status).await
        }
    }
}
