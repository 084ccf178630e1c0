//! The scheduling API: options for a case, and booking, reading and cancelling its
//! appointment. Every rule is checked by the domain (`check_option`) against the
//! case's screening re-evaluated for the requested date; the database's reservation
//! constraint settles races.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use irflow_domain::scheduling::{Refusal, SlotOption, SlotRequest, check_option};
use irflow_domain::screening::Decision;
use irflow_domain::{CaseId, CaseState};
use irflow_store::{AppointmentRecord, SiteRecord};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::session::ApiCaller;
use crate::views::rfc3339_local;
use crate::{AppError, AppState};

/// Default minutes before the start that patients arrive (PRODUCT.md: 15); the
/// `scheduling.arrive_minutes_before` setting.
pub const ARRIVE_MINUTES_BEFORE: i64 = 15;

/// Default least notice a booking gives: the patient must be told, arrive early and
/// may need to arrange a driver, so nothing starts within the hour; the
/// `scheduling.min_notice_minutes` setting.
pub const MIN_NOTICE_MINUTES: i64 = 60;

/// When the patient is asked to arrive for a start.
pub(crate) fn arrive_by(state: &AppState, start: Timestamp) -> Timestamp {
    start - SignedDuration::from_mins(state.config().arrive_minutes_before)
}

/// The earliest start that gives the minimum notice.
fn earliest_start(state: &AppState) -> Timestamp {
    Timestamp::now() + SignedDuration::from_mins(state.config().min_notice_minutes)
}

/// Refuses a start in the past or without the minimum notice, with the reason.
fn check_notice(state: &AppState, start: Timestamp, verb: &str) -> Result<(), AppError> {
    if start <= Timestamp::now() {
        return Err(AppError::Invalid(format!(
            "cannot {verb} then: that time has already passed"
        )));
    }
    if start < earliest_start(state) {
        return Err(AppError::Invalid(format!(
            "cannot {verb} then: less than {} minutes' notice (the patient arrives {} minutes early and may need a driver)",
            state.config().min_notice_minutes,
            state.config().arrive_minutes_before
        )));
    }
    Ok(())
}

type ApiResult<T> = Result<T, ApiError>;

pub(crate) async fn site(state: &AppState) -> Result<SiteRecord, AppError> {
    Ok(department(state).await?.site.clone())
}

/// The department's configuration (site, catalogue, rooms, chairs, radiologists),
/// from the store's versioned in-memory copy.
pub(crate) async fn department(
    state: &AppState,
) -> Result<std::sync::Arc<irflow_store::Department>, AppError> {
    state.store().department().await?.ok_or_else(no_site)
}

fn no_site() -> AppError {
    AppError::Conflict(
        "no site is configured yet: an administrator adds rooms, radiologists and their hours first"
            .to_owned(),
    )
}

/// The slot request for a case: procedure, modalities, duration, monitoring and the
/// earliest safe instant from its latest screening (re-evaluated against `date` when given).
pub(crate) async fn request_for(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<SlotRequest, AppError> {
    Ok(request_and_context(state, actor, id, from, limit).await?.0)
}

/// As [`request_for`], with what was read to build it (one audited read of the case's
/// scheduling context).
pub(crate) async fn request_and_context(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<(SlotRequest, irflow_store::SchedulingContext), AppError> {
    let dept = department(state).await?;
    request_in(state, &dept, actor, id, from, limit).await
}

/// As [`request_and_context`], in a department already read.
async fn request_in(
    state: &AppState,
    dept: &irflow_store::Department,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<(SlotRequest, irflow_store::SchedulingContext), AppError> {
    let ctx = state
        .store()
        .scheduling_context(actor, id)
        .await
        .map_err(crate::pages::case_error)?;
    let request = request_from(state, dept, &ctx, from, limit)?;
    Ok((request, ctx))
}

/// A refused option as an error: 409 when a resource is already booked then (another
/// option may work), 422 when a rule forbids it.
fn refused(what: &str, why: Refusal) -> AppError {
    match why {
        Refusal::Taken(m) => AppError::Conflict(format!("{what}: {m}")),
        Refusal::Rule(m) => AppError::Invalid(format!("{what}: {m}")),
    }
}

/// The slot request for a case whose scheduling context has been read.
fn request_from(
    state: &AppState,
    dept: &irflow_store::Department,
    ctx: &irflow_store::SchedulingContext,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<SlotRequest, AppError> {
    let procedure = dept.procedure(&ctx.case.procedure_code).ok_or_else(|| {
        AppError::Conflict(format!(
            "procedure {} is not in the catalogue",
            ctx.case.procedure_code
        ))
    })?;
    match ctx.case.state {
        CaseState::Ready | CaseState::Scheduled | CaseState::Confirmed => {}
        other => {
            let why = match other {
                CaseState::Deferred => " (the screening found a reason to wait)",
                CaseState::AwaitingAction => " (screening actions are still open)",
                CaseState::Referred => " (it has not been vetted)",
                CaseState::Screening => " (the screening call is not done)",
                _ => "",
            };
            return Err(AppError::Invalid(format!(
                "this case is not ready to book: it is {}{why}",
                other.label().to_lowercase()
            )));
        }
    }
    let modalities = match ctx.plan.guidance {
        None => procedure.modalities.clone(),
        Some(g) if procedure.modalities.contains(&g) => vec![g],
        Some(g) => {
            return Err(AppError::Invalid(format!(
                "the radiologist's plan asks for {} guidance, which {} does not offer",
                g.label(),
                procedure.name
            )));
        }
    };
    let record = ctx
        .screening
        .as_ref()
        .ok_or_else(|| AppError::Invalid("this case has not been screened yet".to_owned()))?;
    let decision = crate::api::reevaluate_stored(state, record, &ctx.case.procedure_code, from)?;
    let not_before = match (&decision.earliest_safe_at, decision.decision) {
        (_, Decision::Review) => {
            return Err(AppError::Invalid(
                "the screening needs a review before booking".to_owned(),
            ));
        }
        (None, _) => {
            return Err(AppError::Invalid(
                "the screening defers this case until a problem has resolved".to_owned(),
            ));
        }
        (Some(at), _) => at.timestamp().max(earliest_start(state)),
    };
    let request = SlotRequest {
        procedure: procedure.code.clone(),
        modalities,
        duration_minutes: u32::from(procedure.duration_minutes),
        not_before,
        from,
        days_ahead: SEARCH_DAYS,
        limit,
        step_minutes: 10,
        monitoring_minutes: decision.monitoring_minutes,
        preferred_days: ctx.preferences.days.clone(),
        preferred_time: ctx.preferences.time_of_day,
    };
    Ok(request)
}

pub(crate) async fn option_json(
    state: &AppState,
    site: &SiteRecord,
    o: &SlotOption,
) -> Result<Value, AppError> {
    Ok(options_json(state, site, std::slice::from_ref(o))
        .await?
        .pop()
        .unwrap_or(Value::Null))
}

/// Several options, named from the department's configuration.
pub(crate) async fn options_json(
    state: &AppState,
    site: &SiteRecord,
    options: &[SlotOption],
) -> Result<Vec<Value>, AppError> {
    let dept = department(state).await?;
    if dept.site.id != site.id {
        return Err(AppError::Conflict(format!(
            "site {} is not the department's site",
            site.name
        )));
    }
    Ok(options_values(state, &dept, options))
}

/// The JSON of options, named from `dept` (no database reads).
pub(crate) fn options_values(
    state: &AppState,
    dept: &irflow_store::Department,
    options: &[SlotOption],
) -> Vec<Value> {
    options
        .iter()
        .map(|o| option_value(state, dept, o))
        .collect()
}

fn option_value(state: &AppState, dept: &irflow_store::Department, o: &SlotOption) -> Value {
    let tz = state.time_zone();
    let room = dept.room(o.room);
    json!({
        "start": rfc3339_local(o.start, tz),
        "end": rfc3339_local(o.end, tz),
        "arrive_by": rfc3339_local(arrive_by(state, o.start), tz),
        "room": { "id": o.room, "name": room.map(|r| r.name.clone()), "modality": room.map(|r| r.modality.as_str()) },
        "radiologist": { "id": o.radiologist, "name": dept.radiologist_name(o.radiologist) },
        "recovery_chair": o.chair.map(|c| json!({
            "id": c.chair,
            "name": dept.chair_name(c.chair),
            "start": rfc3339_local(c.start, tz),
            "end": rfc3339_local(c.end, tz),
        })),
    })
}

/// How many days ahead a search looks.
const SEARCH_DAYS: u32 = 60;

/// The earliest bookable options for a case from a date. A booked case's own
/// appointment does not block it (these are the times it could move to).
pub(crate) async fn options(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    from: jiff::civil::Date,
    limit: usize,
) -> Result<(std::sync::Arc<irflow_store::Department>, Vec<SlotOption>), AppError> {
    // One statement reads the case's context, checks the department's version and
    // reads the bookings of the search's first step; the search runs while the
    // read's audit event is committed, and the options are returned only once all
    // of it is done.
    let found = state
        .store()
        .search_start_then(actor, id, (from, SEARCH_DAYS), |start| async move {
            let dept = start.department.ok_or_else(no_site)?;
            let req = request_from(state, &dept, &start.context, from, limit)?;
            let own = start.context.appointment.as_ref().map(|a| a.id);
            let found = state
                .store()
                .search_slots_ahead(&dept, &req, own, start.ahead)
                .await?;
            Ok::<_, AppError>((dept, found))
        })
        .await;
    found.map_err(crate::pages::case_error)?
}

/// Runs the finder over the request's horizon, leaving out one appointment if asked.
pub(crate) async fn find_in(
    state: &AppState,
    site: &SiteRecord,
    req: &SlotRequest,
    exclude: Option<i64>,
) -> Result<Vec<SlotOption>, AppError> {
    Ok(state.store().search_slots(site, req, exclude).await?)
}

/// Books one requested option for a case, checked rule by rule. With an
/// `Idempotency-Key`, a request refused because an earlier one with the same key
/// (perhaps sent at the same moment) booked it answers with that booking.
pub(crate) async fn book_option(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    start: Timestamp,
    room: i64,
    radiologist: i64,
    key: Option<String>,
) -> Result<AppointmentRecord, AppError> {
    let result = book_checked(state, actor, id, start, room, radiologist, key.clone()).await;
    let (Err(refused), Some(key)) = (&result, key) else {
        return result;
    };
    if matches!(refused, AppError::Forbidden(_) | AppError::NotFound(_)) {
        return result;
    }
    match state
        .store()
        .booked_with_key(&key, id, start, room, radiologist)
        .await?
    {
        Some(_) => state
            .store()
            .appointment_for_case(actor, id)
            .await
            .map_err(crate::pages::case_error)?
            .ok_or_else(|| AppError::Conflict("the booking was cancelled meanwhile".to_owned())),
        None => result,
    }
}

async fn book_checked(
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
    check_notice(state, start, "book")?;
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
        .map_err(|why| refused("cannot book then", why))?;
    let turnaround = state
        .store()
        .rooms(site.id)
        .await?
        .iter()
        .find(|r| r.id == option.room)
        .map_or(0, |r| r.turnaround_minutes);
    let booked = state
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
        .map_err(crate::pages::case_error)?;
    crate::reminders::replan_after_change(state, actor, id).await;
    Ok(booked)
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
    let (dept, found) = options(&state, &caller.actor(), id, from, limit).await?;
    let out = options_values(&state, &dept, &found);
    Ok(Json(json!({ "slots": out })))
}

pub(crate) fn appointment_json(state: &AppState, a: &AppointmentRecord) -> Value {
    let tz = state.time_zone();
    json!({
        "id": a.id,
        "case_id": a.case_id.get(),
        "status": a.state(),
        "start": rfc3339_local(a.start, tz),
        "end": rfc3339_local(a.end, tz),
        "arrive_by": rfc3339_local(arrive_by(state, a.start), tz),
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
    let key = match headers.get("idempotency-key") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .map(str::trim)
                .filter(|k| !k.is_empty() && k.len() <= 200)
                .ok_or_else(|| {
                    AppError::BadRequest(
                        "Idempotency-Key must be 1 to 200 visible ASCII characters".to_owned(),
                    )
                })?
                .to_owned(),
        ),
    };
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

/// Moves a case's appointment to one requested option, checked rule by rule against
/// the screening re-evaluated for the new date; the old time stays booked if the new
/// one cannot be had.
pub(crate) async fn move_option(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    start: Timestamp,
    room: i64,
    radiologist: i64,
    reason: &str,
) -> Result<AppointmentRecord, AppError> {
    if !matches!(
        actor.role,
        Some(irflow_domain::Role::Scheduler | irflow_domain::Role::Admin)
    ) {
        return Err(AppError::Forbidden(
            "appointments are moved by schedulers".to_owned(),
        ));
    }
    if reason.trim().is_empty() {
        return Err(AppError::Invalid(
            "say why the appointment moves".to_owned(),
        ));
    }
    check_notice(state, start, "move it")?;
    let site = site(state).await?;
    let date = start.to_zoned_datetime(state.time_zone().clone()).date();
    let (req, ctx) = request_and_context(state, actor, id, date, 1).await?;
    let current = ctx.appointment.ok_or_else(|| {
        AppError::Conflict("this case has no booked appointment to move".to_owned())
    })?;
    // The case's own current booking does not block its move.
    let res = state
        .store()
        .slot_resources_excluding(
            &site,
            start - SignedDuration::from_hours(24),
            start + SignedDuration::from_hours(24),
            current.id,
        )
        .await?;
    let option = check_option(&res, &req, start, room, radiologist)
        .map_err(|why| refused("cannot move it then", why))?;
    let turnaround = state
        .store()
        .rooms(site.id)
        .await?
        .iter()
        .find(|r| r.id == option.room)
        .map_or(0, |r| r.turnaround_minutes);
    let moved = state
        .store()
        .reschedule_appointment(
            actor,
            id,
            &site,
            &option,
            turnaround,
            reason,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(crate::pages::case_error)?;
    crate::reminders::replan_after_change(state, actor, id).await;
    Ok(moved)
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
    let start: Timestamp = body.start.parse().map_err(|_| {
        AppError::BadRequest("start must be an RFC 3339 time with its offset".to_owned())
    })?;
    let appointment = move_option(
        &state,
        &caller.actor(),
        id,
        start,
        body.room,
        body.radiologist,
        &body.reason,
    )
    .await?;
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
    let actor = caller.actor();
    let freed = state
        .store()
        .appointment_for_case(&actor, id)
        .await
        .map_err(crate::pages::case_error)?;
    state
        .store()
        .cancel_appointment(&actor, id, &body.reason, Timestamp::now(), state.today())
        .await
        .map_err(crate::pages::case_error)?;
    crate::reminders::replan_after_change(&state, &actor, id).await;
    // The freed time goes to the waitlist: say whom it suits.
    let offers = match &freed {
        Some(a)
            if matches!(
                actor.role,
                Some(irflow_domain::Role::Scheduler | irflow_domain::Role::Admin)
            ) =>
        {
            let found = crate::waitlist::freed_offers(&state, &actor, Some(a)).await?;
            crate::waitlist::offers_json(&state, &found).await?
        }
        _ => Vec::new(),
    };
    Ok(Json(json!({
        "cancelled": true,
        "case_id": id.get(),
        "offered_to_waitlist": offers.first().map_or_else(|| json!([]), |o| o["candidates"].clone()),
    })))
}

fn preferences_json(p: &irflow_store::Preferences) -> Value {
    json!({
        "days": p.days.iter().map(|d| crate::views::weekday_key(*d)).collect::<Vec<_>>(),
        "time_of_day": p.time_of_day.map(irflow_domain::scheduling::TimeOfDay::as_str),
        "note": p.note,
    })
}

/// `GET /api/v1/cases/{id}/preferences`: when the patient would rather come.
pub async fn get_preferences(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let p = state
        .store()
        .preferences(&caller.actor(), id)
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(preferences_json(&p)))
}

/// Body of `PUT /api/v1/cases/{id}/preferences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreferencesBody {
    #[serde(default)]
    days: Vec<String>,
    #[serde(default)]
    time_of_day: Option<String>,
    #[serde(default)]
    note: String,
}

/// `PUT /api/v1/cases/{id}/preferences`: records the patient's preferred days and
/// time of day; slots are ranked by them.
pub async fn put_preferences(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<PreferencesBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let p = crate::booking_pages::parse_preferences(
        &body.days,
        body.time_of_day.as_deref(),
        &body.note,
    )?;
    state
        .store()
        .set_preferences(&caller.actor(), id, &p, Timestamp::now())
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(preferences_json(&p)))
}

fn plan_json(p: &irflow_store::CasePlan) -> Value {
    json!({
        "guidance": p.guidance.map(irflow_domain::Modality::as_str),
        "contrast": p.contrast,
        "note": p.note,
    })
}

/// `GET /api/v1/cases/{id}/plan`: the radiologist's guidance plan.
pub async fn get_plan(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let p = state
        .store()
        .case_plan(&caller.actor(), id)
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(plan_json(&p)))
}

/// Body of `PUT /api/v1/cases/{id}/plan`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanBody {
    #[serde(default)]
    guidance: Option<String>,
    #[serde(default)]
    contrast: Option<bool>,
    #[serde(default)]
    note: String,
}

/// `PUT /api/v1/cases/{id}/plan` (radiologist, admin): e.g. CT guidance without
/// contrast; booking then offers only rooms with that guidance.
pub async fn put_plan(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<PlanBody>, JsonRejection>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let contrast = body.contrast.map(|c| if c { "yes" } else { "no" });
    let p = crate::booking_pages::parse_plan(body.guidance.as_deref(), contrast, &body.note)?;
    state
        .store()
        .set_case_plan(&caller.actor(), id, &p, Timestamp::now())
        .await
        .map_err(crate::pages::case_error)?;
    Ok(Json(plan_json(&p)))
}
