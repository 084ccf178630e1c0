//! The JSON API under `/api/v1`, authenticated with bearer tokens.
//! Errors always have the shape `{"error": {"status", "code", "message"}}`.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::{Action, CaseId, CaseState};
use irflow_store::{AuditEvent, AuditFilter, CaseDetail, CaseFilter, CaseSummary, TimelineEntry};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::session::ApiCaller;
use crate::views;
use crate::{AppError, AppState};

/// An [`AppError`] rendered as JSON.
#[derive(Debug)]
pub struct ApiError(pub AppError);

impl<E: Into<AppError>> From<E> for ApiError {
    fn from(e: E) -> Self {
        ApiError(e.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.log();
        let status = self.0.status();
        let body = json!({
            "error": {
                "status": status.as_u16(),
                "code": self.0.code(),
                "message": self.0.public_message(),
            }
        });
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"irflow\""),
            );
        }
        response
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// The OpenAPI document (hand-written, checked against the router by tests).
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../openapi.json"),
    )
}

/// Any unknown `/api/v1/...` path: a JSON 404, not an HTML page.
pub async fn no_such_route() -> ApiError {
    ApiError(AppError::NotFound(
        "no such API endpoint; see /api/v1/openapi.json".to_owned(),
    ))
}

#[derive(Debug, Serialize)]
struct UserJson {
    id: i64,
    username: String,
    display_name: String,
    role: &'static str,
    organization: Option<String>,
}

/// Who the token belongs to.
pub async fn me(caller: ApiCaller) -> ApiResult<Value> {
    Ok(Json(json!({ "user": user_json(&caller.user) })))
}

fn user_json(u: &irflow_store::UserRecord) -> UserJson {
    UserJson {
        id: u.id.get(),
        username: u.username.clone(),
        display_name: u.display_name.clone(),
        role: u.role.as_str(),
        organization: u.organization.clone(),
    }
}

/// Query for `GET /api/v1/cases`.
#[derive(Debug, Deserialize)]
pub struct CasesQuery {
    state: Option<String>,
    limit: Option<String>,
}

fn parse_limit(raw: Option<&str>, max: u32) -> Result<Option<u32>, AppError> {
    raw.map(|l| {
        l.parse::<u32>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                AppError::BadRequest(format!("limit must be a whole number from 1 to {max}"))
            })
    })
    .transpose()
}

/// Cases the caller may see, optionally of one state.
pub async fn list_cases(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<CasesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Value> {
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let filter = CaseFilter {
        states: query
            .state
            .as_deref()
            .map(str::parse::<CaseState>)
            .transpose()
            .map_err(|e| AppError::BadRequest(e.to_string()))?
            .into_iter()
            .collect(),
        limit: parse_limit(query.limit.as_deref(), 1000)?,
        ..CaseFilter::default()
    };
    let cases = state.store().list_cases(&caller.actor(), &filter).await?;
    let tz = state.time_zone();
    Ok(Json(json!({
        "cases": cases.iter().map(|c| case_json(c, tz)).collect::<Vec<_>>(),
    })))
}

fn case_json(c: &CaseSummary, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "id": c.id.get(),
        "state": c.state.as_str(),
        "state_label": c.state.label(),
        "patient": {
            "id": c.patient_id.get(),
            "name": c.patient_name(),
            "family_name": c.family_name,
            "given_name": c.given_name,
            "mrn": c.mrn,
            "date_of_birth": c.date_of_birth.to_string(),
        },
        "procedure": { "code": c.procedure_code, "name": c.procedure_name },
        "referrer": {
            "id": c.referrer_id.get(),
            "name": c.referrer_name,
            "organization": c.referrer_organization,
        },
        "deferred_until": c.deferred_until.map(|d| d.to_string()),
        "version": c.version,
        "created_at": views::rfc3339_local(c.created_at, tz),
        "updated_at": views::rfc3339_local(c.updated_at, tz),
    })
}

fn timeline_json(t: &TimelineEntry, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "action": t.action,
        "label": views::timeline_label(t),
        "from": t.from.map(CaseState::as_str),
        "to": t.to.as_str(),
        "actor": { "username": t.actor_username, "role": t.actor_role.map(|r| r.as_str()) },
        "at": views::rfc3339_local(t.at, tz),
        "reason": t.reason,
        "deferred_until": t.deferred_until.map(|d| d.to_string()),
        "reason_code": t.reason_code,
    })
}

fn detail_json(d: &CaseDetail, caller: &ApiCaller, tz: &jiff::tz::TimeZone) -> Value {
    let mut v = case_json(&d.case, tz);
    v["patient"] = json!({
        "id": d.patient.id.get(),
        "name": d.case.patient_name(),
        "family_name": d.patient.family_name,
        "given_name": d.patient.given_name,
        "mrn": d.patient.mrn,
        "date_of_birth": d.patient.date_of_birth.to_string(),
        "phone": d.patient.phone,
        "email": d.patient.email,
        "preferred_language": d.patient.preferred_language,
    });
    v["timeline"] = d.timeline.iter().map(|t| timeline_json(t, tz)).collect();
    // The generic transition takes the first kind; the others are listed with the
    // endpoint that takes them (the transition endpoint refuses them).
    let id = d.case.id;
    let generic = views::actions_for(d.case.state, caller.user.role)
        .into_iter()
        .map(|a| {
            json!({
                "action": a.as_str(),
                "label": a.label(),
                "reason_required": a.requires_reason(),
                "method": "POST",
                "path": format!("/api/v1/cases/{id}/transitions"),
            })
        });
    let own = views::own_step_actions_for(d.case.state, caller.user.role, id)
        .into_iter()
        .map(|(a, method, path)| {
            json!({
                "action": a.as_str(),
                "label": a.label(),
                "reason_required": a.requires_reason(),
                "method": method,
                "path": path,
            })
        });
    v["available_actions"] = generic.chain(own).collect();
    v
}

pub(crate) fn parse_case_id(raw: &str) -> Result<CaseId, AppError> {
    raw.parse::<i64>()
        .ok()
        .filter(|n| *n > 0)
        .map(CaseId::new)
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "case id must be a positive whole number, not {raw:?}"
            ))
        })
}

/// One case with its patient, timeline and the caller's possible actions.
pub async fn get_case(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let detail = state
        .store()
        .case_detail(&caller.actor(), id)
        .await
        .map_err(not_found_case)?;
    Ok(Json(detail_json(&detail, &caller, state.time_zone())))
}

fn not_found_case(e: irflow_store::StoreError) -> AppError {
    match e {
        irflow_store::StoreError::NotFound => AppError::NotFound("no such case".to_owned()),
        other => other.into(),
    }
}

/// Body of `POST /api/v1/cases/{id}/transitions`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    action: String,
    reason: Option<String>,
    deferred_until: Option<String>,
    return_reason: Option<String>,
    expected_version: Option<i64>,
}

/// Moves a case along the pathway.
pub async fn transition_case(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<TransitionBody>, JsonRejection>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let action: Action = body
        .action
        .parse()
        .map_err(|e: irflow_domain::pathway::UnknownAction| AppError::BadRequest(e.to_string()))?;
    let deferred_until = body
        .deferred_until
        .as_deref()
        .map(|d| {
            d.parse::<jiff::civil::Date>().map_err(|_| {
                AppError::BadRequest("deferred_until must be a date written YYYY-MM-DD".to_owned())
            })
        })
        .transpose()?;
    let return_reason = body
        .return_reason
        .as_deref()
        .map(str::parse::<irflow_domain::ReturnReason>)
        .transpose()
        .map_err(|e| AppError::BadRequest(format!("return_reason: {e}")))?;
    let request = TransitionRequest {
        action,
        reason: body.reason,
        deferred_until,
        return_reason,
    };
    transition_and_show(&state, &caller, id, &request, body.expected_version).await
}

/// Moves a case and answers with it as `GET /api/v1/cases/{id}` does.
async fn transition_and_show(
    state: &AppState,
    caller: &ApiCaller,
    id: CaseId,
    request: &TransitionRequest,
    expected_version: Option<i64>,
) -> ApiResult<Value> {
    state
        .store()
        .transition_case(
            &caller.actor(),
            id,
            request,
            expected_version,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(not_found_case)?;
    if matches!(request.action, Action::Cancel | Action::RecordNoShow) {
        // The case's appointment ended with it: its reminders go too.
        crate::reminders::replan_after_change(state, &caller.actor(), id).await;
    }
    let detail = state
        .store()
        .case_detail(&caller.actor(), id)
        .await
        .map_err(not_found_case)?;
    Ok(Json(detail_json(&detail, caller, state.time_zone())))
}

/// Body of `POST /api/v1/cases/{id}/triage`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageBody {
    decision: String,
    reason: Option<String>,
    text: Option<String>,
    expected_version: Option<i64>,
}

/// Vetting for API clients: accept (on to screening) or return to the referrer with
/// a structured reason and text. Radiologists and admins only.
pub async fn triage_case(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<TriageBody>, JsonRejection>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    if !matches!(
        caller.user.role,
        irflow_domain::Role::Radiologist | irflow_domain::Role::Admin
    ) {
        state
            .store()
            .record_audit(
                irflow_store::NewAuditEvent::new(
                    &caller.actor(),
                    "triage",
                    "case",
                    irflow_store::AuditOutcome::Denied,
                )
                .entity(id),
            )
            .await?;
        return Err(AppError::Forbidden("triage is for radiologists and admins".to_owned()).into());
    }
    let request = match body.decision.as_str() {
        "accept" => {
            let mut r = TransitionRequest::new(Action::Accept);
            r.reason = body.text;
            if body.reason.is_some() {
                return Err(AppError::BadRequest(
                    "reason applies only to decision \"return\"".to_owned(),
                )
                .into());
            }
            r
        }
        "return" => {
            let reason = body
                .reason
                .as_deref()
                .ok_or_else(|| {
                    AppError::Invalid(
                        "reason is required to return a referral: not_enough_information, wrong_procedure, imaging_needed_first, not_indicated or other".to_owned(),
                    )
                })?
                .parse::<irflow_domain::ReturnReason>()
                .map_err(|e| AppError::BadRequest(format!("reason: {e}")))?;
            let text = body.text.unwrap_or_default();
            if text.trim().is_empty() {
                return Err(AppError::Invalid(
                    "text is required: tell the referrer what to change".to_owned(),
                )
                .into());
            }
            TransitionRequest::return_to_referrer(reason, text)
        }
        other => {
            return Err(AppError::BadRequest(format!(
                "decision must be \"accept\" or \"return\", not {other:?}"
            ))
            .into());
        }
    };
    transition_and_show(&state, &caller, id, &request, body.expected_version).await
}

/// Query for `GET /api/v1/audit`.
#[derive(Debug, Deserialize, Default)]
pub struct AuditQuery {
    pub(crate) actor: Option<String>,
    pub(crate) action: Option<String>,
    pub(crate) entity_type: Option<String>,
    pub(crate) entity_id: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) since: Option<String>,
    pub(crate) until: Option<String>,
    pub(crate) before_id: Option<String>,
    pub(crate) limit: Option<String>,
}

fn non_empty(s: &Option<String>) -> Option<String> {
    s.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// Parses an instant given as RFC 3339, or a date (midnight at the site).
fn parse_instant(raw: &str, field: &str, tz: &jiff::tz::TimeZone) -> Result<Timestamp, AppError> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Ok(t);
    }
    raw.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| {
            AppError::BadRequest(format!(
                "{field} must be a date (YYYY-MM-DD) or an RFC 3339 time"
            ))
        })
}

impl AuditQuery {
    /// The store filter, or a clear error naming the bad field.
    pub(crate) fn to_filter(&self, tz: &jiff::tz::TimeZone) -> Result<AuditFilter, AppError> {
        Ok(AuditFilter {
            actor: non_empty(&self.actor),
            action: non_empty(&self.action),
            entity_type: non_empty(&self.entity_type),
            entity_id: non_empty(&self.entity_id),
            outcome: non_empty(&self.outcome)
                .map(|o| o.parse().map_err(AppError::BadRequest))
                .transpose()?,
            since: non_empty(&self.since)
                .map(|s| parse_instant(&s, "since", tz))
                .transpose()?,
            until: non_empty(&self.until)
                .map(|s| parse_instant(&s, "until", tz))
                .transpose()?,
            before_id: non_empty(&self.before_id)
                .map(|s| {
                    s.parse::<i64>().map_err(|_| {
                        AppError::BadRequest("before_id must be a whole number".to_owned())
                    })
                })
                .transpose()?,
            limit: parse_limit(non_empty(&self.limit).as_deref(), 500)?,
        })
    }
}

pub(crate) fn audit_json(e: &AuditEvent, tz: &jiff::tz::TimeZone) -> Value {
    json!({
        "id": e.id,
        "at": views::rfc3339_local(e.at, tz),
        "actor": {
            "user_id": e.actor_user_id,
            "username": e.actor_username,
            "role": e.actor_role.map(|r| r.as_str()),
        },
        "action": e.action,
        "entity_type": e.entity_type,
        "entity_id": e.entity_id,
        "outcome": e.outcome.as_str(),
        "detail": e.detail,
        "client": e.client,
    })
}

/// The audit log, newest first (administrators only).
pub async fn list_audit(
    State(state): State<AppState>,
    caller: ApiCaller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Value> {
    let Query(query) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let tz = state.time_zone();
    let filter = query.to_filter(tz)?;
    let limit = filter.limit.unwrap_or(100) as usize;
    let events = state.store().list_audit(&caller.actor(), &filter).await?;
    let next = (events.len() == limit)
        .then(|| events.last().map(|e| e.id))
        .flatten();
    Ok(Json(json!({
        "events": events.iter().map(|e| audit_json(e, tz)).collect::<Vec<_>>(),
        "next_before_id": next,
    })))
}

fn actions_json(record: &irflow_store::ScreeningRecord, tz: &jiff::tz::TimeZone) -> Vec<Value> {
    record
        .actions
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "rule_id": a.rule_id,
                "kind": a.kind.as_str(),
                "description": a.description,
                "status": a.status.as_str(),
                "cleared": a.cleared,
                "decided_by": a.decided_by,
                "notes": a.notes,
                "completed_by": a.completed_by,
                "completed_at": a.completed_at.map(|t| views::rfc3339_local(t, tz)),
            })
        })
        .collect()
}

/// A stored screening as the API answers it.
pub(crate) fn screening_json(
    record: &irflow_store::ScreeningRecord,
    state: CaseState,
    tz: &jiff::tz::TimeZone,
) -> Value {
    let decision: Value = serde_json::from_str(&record.decision_json).unwrap_or(Value::Null);
    json!({
        "screening_id": record.id,
        "case_state": state.as_str(),
        "screened_by": record.screened_by,
        "at": views::rfc3339_local(record.at, tz),
        "decision": decision,
        "actions": actions_json(record, tz),
    })
}

/// Evaluates facts for a case and stores the screening; the case moves on.
pub(crate) async fn screen_case(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    body: &[u8],
) -> Result<Value, AppError> {
    let case = state
        .store()
        .case_detail(actor, id)
        .await
        .map_err(not_found_case)?;
    let today = state.today();
    let facts = crate::screening_json::parse_facts(body, Some(&case.case.procedure_code), today)
        .map_err(AppError::BadRequest)?;
    let tz = state.time_zone();
    let decision = irflow_domain::screening::evaluate(state.rules(), &facts, tz)
        .map_err(|e| AppError::Invalid(e.to_string()))?;
    let decision_json = crate::screening_json::decision_json(&decision, tz);
    let record = state
        .store()
        .record_screening(
            actor,
            id,
            &irflow_store::NewScreening {
                facts_json: crate::screening_json::facts_json(&facts).to_string(),
                decision_json: decision_json.to_string(),
                decision: &decision,
            },
            Timestamp::now(),
            today,
        )
        .await
        .map_err(not_found_case)?;
    let case = state
        .store()
        .case_detail(actor, id)
        .await
        .map_err(not_found_case)?;
    Ok(screening_json(&record, case.case.state, tz))
}

/// `POST /api/v1/cases/{id}/screening`: the screening call's answers (facts JSON,
/// without `procedure` and `today`, which come from the case and the site).
pub async fn post_screening(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    Ok(Json(screen_case(&state, &caller.actor(), id, &body).await?))
}

/// `GET /api/v1/cases/{id}/screening`: the latest screening and its actions.
pub async fn get_screening(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let record = state
        .store()
        .latest_screening(&caller.actor(), id)
        .await
        .map_err(not_found_case)?;
    let case = state
        .store()
        .case_detail(&caller.actor(), id)
        .await
        .map_err(not_found_case)?;
    match record {
        Some(r) => Ok(Json(screening_json(&r, case.case.state, state.time_zone()))),
        None => Err(AppError::NotFound("this case has not been screened yet".to_owned()).into()),
    }
}

/// Body of `POST /api/v1/cases/{id}/actions/{action_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    cleared: bool,
    decided_by: Option<String>,
    /// When the decision was made (RFC 3339); default: now.
    decided_at: Option<String>,
    notes: Option<String>,
}

/// Completes a required action (e.g. the prescriber cleared the hold).
pub async fn complete_action(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path((id, action_id)): Path<(String, String)>,
    body: Result<Json<ActionBody>, JsonRejection>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let action_id: i64 = action_id
        .parse()
        .map_err(|_| AppError::BadRequest("action id must be a whole number".to_owned()))?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let now = Timestamp::now();
    let at = match body.decided_at.as_deref() {
        None => now,
        Some(raw) => match raw.parse::<Timestamp>() {
            Ok(t) if t <= now => t,
            Ok(_) => return Err(AppError::Invalid("decided_at is in the future".to_owned()).into()),
            Err(_) => {
                return Err(AppError::BadRequest(
                    "decided_at must be an RFC 3339 time, e.g. 2026-11-26T14:30:00-05:00"
                        .to_owned(),
                )
                .into());
            }
        },
    };
    let record = state
        .store()
        .complete_action(
            &caller.actor(),
            id,
            action_id,
            body.cleared,
            body.decided_by,
            body.notes,
            at,
            state.today(),
        )
        .await
        .map_err(not_found_case)?;
    let case = state
        .store()
        .case_detail(&caller.actor(), id)
        .await
        .map_err(not_found_case)?;
    Ok(Json(screening_json(
        &record,
        case.case.state,
        state.time_zone(),
    )))
}

/// Query of `GET /api/v1/cases/{id}/screening/for-date`.
#[derive(Debug, Deserialize)]
pub struct ForDateQuery {
    date: Option<String>,
}

/// Re-evaluates the case's latest screening answers against a procedure date (with
/// the rule pack in force now), without storing anything: what booking or moving
/// an appointment to that date would mean.
pub(crate) async fn reevaluate(
    state: &AppState,
    actor: &irflow_domain::Actor,
    id: CaseId,
    date: jiff::civil::Date,
) -> Result<irflow_domain::screening::ScreeningDecision, AppError> {
    let record = state
        .store()
        .latest_screening(actor, id)
        .await
        .map_err(not_found_case)?
        .ok_or_else(|| AppError::Conflict("this case has not been screened yet".to_owned()))?;
    let case = state
        .store()
        .case_detail(actor, id)
        .await
        .map_err(not_found_case)?;
    reevaluate_stored(state, &record, &case.case.procedure_code, date)
}

/// Re-evaluates a stored screening's facts for another procedure date.
pub(crate) fn reevaluate_stored(
    state: &AppState,
    record: &irflow_store::ScreeningRecord,
    procedure_code: &str,
    date: jiff::civil::Date,
) -> Result<irflow_domain::screening::ScreeningDecision, AppError> {
    let mut stored: Value = serde_json::from_str(&record.facts_json)
        .map_err(|e| AppError::Internal(format!("stored facts: {e}")))?;
    if let Some(o) = stored.as_object_mut() {
        o.remove("procedure");
        o.remove("today");
        o.insert("proposed_date".to_owned(), json!(date.to_string()));
    }
    let facts = crate::screening_json::parse_facts(
        stored.to_string().as_bytes(),
        Some(procedure_code),
        state.today(),
    )
    .map_err(AppError::Invalid)?;
    irflow_domain::screening::evaluate(state.rules(), &facts, state.time_zone())
        .map_err(|e| AppError::Invalid(e.to_string()))
}

/// `GET /api/v1/cases/{id}/screening/for-date?date=YYYY-MM-DD`.
pub async fn screening_for_date(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<ForDateQuery>,
) -> ApiResult<Value> {
    let id = parse_case_id(&id)?;
    let date = q
        .date
        .as_deref()
        .ok_or_else(|| AppError::BadRequest("date is required (YYYY-MM-DD)".to_owned()))?
        .parse::<jiff::civil::Date>()
        .map_err(|_| AppError::BadRequest("date must be written YYYY-MM-DD".to_owned()))?;
    if date < state.today() {
        return Err(AppError::BadRequest(format!("date {date} is in the past")).into());
    }
    let decision = reevaluate(&state, &caller.actor(), id, date).await?;
    Ok(Json(crate::screening_json::decision_json(
        &decision,
        state.time_zone(),
    )))
}
