//! The scheduling API: options for a case, and booking, reading and cancelling its
//! appointment. Every rule is checked by the domain (`check_option`) against the
//! case's screening re-evaluated for the requested date; the database's reservation
//! constraint settles races.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use irflow_domain::CaseId;
use irflow_domain::scheduling::{SlotOption, SlotRequest, check_option, find_slots};
use irflow_domain::screening::Decision;
use irflow_store::{AppointmentRecord, SiteRecord};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::session::ApiCaller;
use crate::views::rfc3339_local;
use crate::{AppError, AppState};

/// Minutes before the start that patients arrive (PRODUCT.md: 15).
pub const ARRIVE_MINUTES_BEFORE: i64 = 15;

type ApiResult<T> = Result<T, ApiError>;

async fn site(state: &AppState) -> Result<SiteRecord, AppError> {
    state
        .store()
        .default_site()
        .await?
        .ok_or_else(|| AppError::Conflict("no site is configured yet: an administrator adds rooms, radiologists and their hours first".to_owned()))
}

/// The slot request for a case: procedure, modalities, duration, monitoring and the
/// earliest safe instant from its latest screening (re-evaluated against `date` when given).
async fn request_for(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<SlotRequest, AppError> {
    let actor = actor.clone();
    let detail = state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(crate::pages::case_error)?;
    let procedure = state
        .store()
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == detail.case.procedure_code)
        .ok_or_else(|| {
            AppError::Conflict(format!(
                "procedure {} is not in the catalogue",
                detail.case.procedure_code
            ))
        })?;
    let decision = crate::api::reevaluate(state, &actor, id, from).await?;
    let not_before = match (&decision.earliest_safe_at, decision.decision) {
        (_, Decision::Review) => {
            return Err(AppError::Conflict(
                "the screening needs a review before booking".to_owned(),
            ));
        }
        (None, _) => {
            return Err(AppError::Conflict(
                "the screening defers this case until a problem has resolved".to_owned(),
            ));
        }
        (Some(at), _) => at.timestamp().max(Timestamp::now()),
    };
    Ok(SlotRequest {
        procedure: procedure.code.clone(),
        modalities: procedure.modalities.clone(),
        duration_minutes: u32::from(procedure.duration_minutes),
        not_before,
        from,
        days_ahead: 60,
        limit,
        step_minutes: 10,
        monitoring_minutes: decision.monitoring_minutes,
        preferred_days: Vec::new(),
        preferred_time: None,
    })
}

async fn option_json(
    state: &AppState,
    site: &SiteRecord,
    o: &SlotOption,
) -> Result<Value, AppError> {
    let tz = state.time_zone();
    let rooms = state.store().rooms(site.id).await?;
    let users = state.store().list_users().await?;
    let chairs = state.store().chairs(site.id).await?;
    let room = rooms.iter().find(|r| r.id == o.room);
    let rad = users.iter().find(|u| u.id.get() == o.radiologist);
    Ok(json!({
        "start": rfc3339_local(o.start, tz),
        "end": rfc3339_local(o.end, tz),
        "arrive_by": rfc3339_local(o.start - SignedDuration::from_mins(ARRIVE_MINUTES_BEFORE), tz),
        "room": { "id": o.room, "name": room.map(|r| r.name.clone()), "modality": room.map(|r| r.modality.as_str()) },
        "radiologist": { "id": o.radiologist, "name": rad.map(|u| u.display_name.clone()) },
        "recovery_chair": o.chair.map(|c| json!({
            "id": c.chair,
            "name": chairs.iter().find(|(id, _)| *id == c.chair).map(|(_, n)| n.clone()),
            "start": rfc3339_local(c.start, tz),
            "end": rfc3339_local(c.end, tz),
        })),
    }))
}

/// The earliest bookable options for a case from a date.
pub(crate) async fn options(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<(SiteRecord, Vec<SlotOption>), AppError> {
    let site = site(state).await?;
    let req = request_for(state, actor, id, from, limit).await?;
    let horizon_end =
        req.not_before + SignedDuration::from_hours(24 * i64::from(req.days_ahead + 2));
    let res = state
        .store()
        .slot_resources(
            &site,
            req.not_before - SignedDuration::from_hours(24),
            horizon_end,
        )
        .await?;
    Ok((site, find_slots(&res, &req)))
}

/// Books one requested option for a case, checked rule by rule.
pub(crate) async fn book_option(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    start: Timestamp,
    room: i64,
    radiologist: i64,
    key: Option<String>,
) -> Result<AppointmentRecord, AppError> {
    if !matches!(
        actor.role,
        Some(irflow_domain::Role::Scheduler | irflow_domain::Role::Admin)
    ) {
        return Err(AppError::Forbidden(
            "appointments are booked by schedulers".to_owned(),
        ));
    }
    if start <= Timestamp::now() {
        return Err(AppError::Invalid(
            "cannot book then: that time has already passed".to_owned(),
        ));
    }
    let site = site(state).await?;
    // An idempotent retry of a booking already made returns it.
    let existing = state
        .store()
        .appointment_for_case(actor, id)
        .await
        .map_err(crate::pages::case_error)?;
    if let (Some(_), Some(a)) = (&key, &existing)
        && a.start == start
        && a.room_id == room
        && a.radiologist_id == radiologist
    {
        return Ok(a.clone());
    }
    let date = start.to_zoned_datetime(state.time_zone().clone()).date();
    let req = request_for(state, actor, id, date, 1).await?;
    let res = state
        .store()
        .slot_resources(
            &site,
            start - SignedDuration::from_hours(24),
            start + SignedDuration::from_hours(24),
        )
        .await?;
    let option = check_option(&res, &req, start, room, radiologist)
        .map_err(|rule| AppError::Invalid(format!("cannot book then: {rule}")))?;
    let turnaround = state
        .store()
        .rooms(site.id)
        .await?
        .iter()
        .find(|r| r.id == option.room)
        .map_or(0, |r| r.turnaround_minutes);
    state
        .store()
        .book_appointment(
            actor,
            id,
            &site,
            &option,
            turnaround,
            key,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(crate::pages::case_error)
}

/// Query of `GET /api/v1/cases/{id}/slots`.
#[derive(Debug, Deserialize)]
pub struct SlotsQuery {
    from: Option<String>,
    limit: Option<String>,
}

/// `GET /api/v1/cases/{id}/slots?from=YYYY-MM-DD&limit=N`: the earliest options that satisfy every rule.
pub async fn slots(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<SlotsQuery>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let today = state.today();
    let from = match q.from.as_deref() {
        None => today,
        Some(raw) => raw
            .parse::<jiff::civil::Date>()
            .map_err(|_| AppError::BadRequest("from must be a date written YYYY-MM-DD".to_owned()))?
            .max(today),
    };
    let limit = match q.limit.as_deref() {
        None => 10,
        Some(raw) => raw
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=50).contains(n))
            .ok_or_else(|| AppError::BadRequest("limit must be 1-50".to_owned()))?,
    };
    let (site, found) = options(&state, &caller.actor(), id, from, limit).await?;
    let mut out = Vec::with_capacity(found.len());
    for o in &found {
        out.push(option_json(&state, &site, o).await?);
    }
    Ok(Json(json!({ "slots": out })))
}

pub(crate) fn appointment_json(state: &AppState, a: &AppointmentRecord) -> Value {
    let tz = state.time_zone();
    json!({
        "id": a.id,
        "case_id": a.case_id.get(),
        "status": a.status,
        "start": rfc3339_local(a.start, tz),
        "end": rfc3339_local(a.end, tz),
        "arrive_by": rfc3339_local(a.start - SignedDuration::from_mins(ARRIVE_MINUTES_BEFORE), tz),
        "room": { "id": a.room_id, "name": a.room_name },
        "radiologist": { "id": a.radiologist_id, "name": a.radiologist_name },
        "recovery_chair": a.chair_id.map(|c| json!({
            "id": c,
            "start": a.chair_window.map(|w| rfc3339_local(w.0, tz)),
            "end": a.chair_window.map(|w| rfc3339_local(w.1, tz)),
        })),
    })
}

/// Body of `POST /api/v1/cases/{id}/appointment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookBody {
    start: String,
    room: i64,
    radiologist: i64,
}

/// `POST /api/v1/cases/{id}/appointment`: books one option (scheduler, admin), with an
/// optional `Idempotency-Key` header.
pub async fn book(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<BookBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let start: Timestamp = body.start.parse().map_err(|_| {
        AppError::BadRequest(
            "start must be an RFC 3339 time with its offset, e.g. 2026-12-07T09:00:00-05:00"
                .to_owned(),
        )
    })?;
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
        .map(str::to_owned);
    let appointment = book_option(
        &state,
        &caller.actor(),
        id,
        start,
        body.room,
        body.radiologist,
        key,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(appointment_json(&state, &appointment)),
    )
        .into_response())
}

/// `GET /api/v1/cases/{id}/appointment`.
pub async fn get(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    match state
        .store()
        .appointment_for_case(&caller.actor(), id)
        .await
        .map_err(crate::pages::case_error)?
    {
        Some(a) => Ok(Json(appointment_json(&state, &a))),
        None => Err(AppError::NotFound("this case has no booked appointment".to_owned()).into()),
    }
}

/// Body of `PUT /api/v1/cases/{id}/appointment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    start: String,
    room: i64,
    radiologist: i64,
    reason: String,
}

/// `PUT /api/v1/cases/{id}/appointment`: moves the appointment to another option,
/// re-evaluating the screening for the new date; the old time stays booked if the new
/// one cannot be had.
pub async fn reschedule(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<MoveBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let actor = caller.actor();
    if !matches!(
        actor.role,
        Some(irflow_domain::Role::Scheduler | irflow_domain::Role::Admin)
    ) {
        return Err(AppError::Forbidden("appointments are moved by schedulers".to_owned()).into());
    }
    if body.reason.trim().is_empty() {
        return Err(AppError::Invalid("say why the appointment moves".to_owned()).into());
    }
    let start: Timestamp = body.start.parse().map_err(|_| {
        AppError::BadRequest("start must be an RFC 3339 time with its offset".to_owned())
    })?;
    if start <= Timestamp::now() {
        return Err(AppError::Invalid(
            "cannot move it then: that time has already passed".to_owned(),
        )
        .into());
    }
    let site = site(&state).await?;
    let current = state
        .store()
        .appointment_for_case(&actor, id)
        .await
        .map_err(crate::pages::case_error)?
        .ok_or_else(|| {
            AppError::Conflict("this case has no booked appointment to move".to_owned())
        })?;
    let date = start.to_zoned_datetime(state.time_zone().clone()).date();
    let req = request_for(&state, &actor, id, date, 1).await?;
    let mut res = state
        .store()
        .slot_resources(
            &site,
            start - SignedDuration::from_hours(24),
            start + SignedDuration::from_hours(24),
        )
        .await?;
    // The case's own current booking does not block its move: rebuild without it.
    if current.start > start - SignedDuration::from_hours(24)
        && current.start < start + SignedDuration::from_hours(24)
    {
        res = state
            .store()
            .slot_resources_excluding(
                &site,
                start - SignedDuration::from_hours(24),
                start + SignedDuration::from_hours(24),
                current.id,
            )
            .await?;
    }
    let option = check_option(&res, &req, start, body.room, body.radiologist)
        .map_err(|rule| AppError::Invalid(format!("cannot move it then: {rule}")))?;
    let turnaround = state
        .store()
        .rooms(site.id)
        .await?
        .iter()
        .find(|r| r.id == option.room)
        .map_or(0, |r| r.turnaround_minutes);
    let appointment = state
        .store()
        .reschedule_appointment(
            &actor,
            id,
            &site,
            &option,
            turnaround,
            &body.reason,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(appointment_json(&state, &appointment)))
}

/// Body of `DELETE /api/v1/cases/{id}/appointment`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    reason: String,
}

/// `DELETE /api/v1/cases/{id}/appointment` with `{"reason": ...}`: cancels; the case is ready again.
pub async fn cancel(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<CancelBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    state
        .store()
        .cancel_appointment(
            &caller.actor(),
            id,
            &body.reason,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(json!({ "cancelled": true, "case_id": id.get() })))
}
