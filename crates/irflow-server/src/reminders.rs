//! Reminders and the case's messages.
//!
//! [`replan_reminders`] turns a case's booked appointment into reminders in the outbox:
//! the domain's planner (`irflow_domain::reminders`) says when, from the appointment's
//! start, the blood-thinner holds of the screening re-evaluated for its date, the
//! patient's contact details and opt-out, and the quiet hours; the department's
//! templates (`crate::letters`) say what; the store swaps the case's planned reminders
//! for the new plan in one transaction. It runs after every booking, move, cancellation
//! and no-show; a failure there is logged (without patient data) and audited, and never
//! undoes the booking. The outbox worker re-checks each reminder before sending it, so
//! a missed re-plan cannot send a stale one.
//!
//! Also here: `GET /api/v1/cases/{id}/messages`, the reminders opt-out, and the case
//! page's messages panel.

use axum::Form;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::reminders::{
    HoldStop, MessageChannel, ReminderInput, ReminderKind, last_dose, plan_reminders,
};
use irflow_domain::screening::{ActionKind, ScreeningDecision, ScreeningFacts};
use irflow_domain::{Actor, CaseId, Role};
use irflow_letters::LetterKind;
use irflow_store::{
    ActionStatus, AuditOutcome, MessageRecord, MessageState, NewAuditEvent, NewMessage,
    NewReminder, ScreeningRecord,
};
use jiff::{Timestamp, ZonedDateTime};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::constant_time_eq;
use crate::letters::{LetterExtras, compose_each};
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{local_time, rfc3339_local};
use crate::{AppError, AppState};

/// Plans the case's reminders afresh: cancels those still planned and plans the
/// reminders of its booked appointment (none when it has no booked appointment, the
/// patient opted out, or there is no email address or phone number on file).
pub(crate) async fn replan_reminders(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
) -> Result<(), AppError> {
    let plan = build_plan(state, actor, case_id).await?;
    state
        .store()
        .replace_planned_reminders(actor, case_id, plan, Timestamp::now())
        .await
        .map_err(case_error)?;
    Ok(())
}

/// [`replan_reminders`] after a booking change that has already been stored, and the
/// case's patient links made to follow the appointment: a failure is logged and
/// audited, never returned, so the change stands.
pub(crate) async fn replan_after_change(state: &AppState, actor: &Actor, case_id: CaseId) {
    if let Err(e) = crate::patient_links::follow_appointment(state, actor, case_id).await {
        e.log();
        tracing::warn!(
            error = e.code(),
            "patient links could not follow a booking change; the change stands"
        );
    }
    if let Err(e) = replan_reminders(state, actor, case_id).await {
        e.log();
        tracing::warn!(
            error = e.code(),
            "reminders could not be planned after a booking change; the change stands"
        );
        let recorded = state
            .store()
            .record_audit(
                NewAuditEvent::new(actor, "plan_reminders", "case", AuditOutcome::Error)
                    .entity(case_id)
                    .detail(format!("after a booking change: {}", e.code())),
            )
            .await;
        if recorded.is_err() {
            tracing::error!("the failure to plan reminders could not be audited");
        }
    }
}

/// Plans reminders for every case with a booked appointment (the demo, after seeding
/// its bookings straight into the store). Returns how many cases were planned.
pub async fn plan_reminders_for_booked_cases(
    state: &AppState,
    actor: &Actor,
) -> Result<usize, AppError> {
    let booked = state
        .store()
        .appointments(
            actor,
            &irflow_store::AppointmentFilter {
                from: Some(Timestamp::now()),
                ..Default::default()
            },
        )
        .await?;
    let mut cases: Vec<CaseId> = booked.iter().map(|l| l.appointment.case_id).collect();
    cases.sort();
    cases.dedup();
    for case in &cases {
        replan_reminders(state, actor, *case).await?;
    }
    Ok(cases.len())
}

fn letter_kind(kind: ReminderKind) -> LetterKind {
    match kind {
        ReminderKind::HoldStart => LetterKind::ReminderHoldStart,
        ReminderKind::ThreeDays => LetterKind::ReminderThreeDays,
        ReminderKind::OneDay => LetterKind::ReminderOneDay,
    }
}

async fn build_plan(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
) -> Result<Vec<NewReminder>, AppError> {
    let store = state.store();
    let Some(appointment) = store
        .appointment_for_case(actor, case_id)
        .await
        .map_err(case_error)?
    else {
        return Ok(Vec::new());
    };
    if store
        .reminders_opt_out(actor, case_id)
        .await
        .map_err(case_error)?
        .is_some()
    {
        return Ok(Vec::new());
    }
    let detail = store
        .case_detail(actor, case_id)
        .await
        .map_err(case_error)?;
    let mut contacts: Vec<(MessageChannel, String)> = Vec::new();
    if let Some(email) = detail
        .patient
        .email
        .as_deref()
        .filter(|e| !e.trim().is_empty())
    {
        contacts.push((MessageChannel::Email, email.trim().to_owned()));
    }
    if let Some(phone) = detail
        .patient
        .phone
        .as_deref()
        .filter(|p| !p.trim().is_empty())
    {
        contacts.push((MessageChannel::Sms, phone.trim().to_owned()));
    }
    if contacts.is_empty() {
        return Ok(Vec::new());
    }
    let start = appointment
        .start
        .to_zoned_datetime(state.time_zone().clone());
    let holds = match store
        .latest_screening(actor, case_id)
        .await
        .map_err(case_error)?
    {
        Some(record) => hold_stops(state, &record, &detail.case.procedure_code, &start)?,
        None => Vec::new(),
    };
    let channels: Vec<MessageChannel> = contacts.iter().map(|(c, _)| *c).collect();
    let planned = plan_reminders(&ReminderInput {
        appointment_start: &start,
        holds: &holds,
        channels: &channels,
        opted_out: false,
        quiet: state.config().reminder_quiet_hours,
        now: Timestamp::now(),
    });
    // One letter per reminder (the same words by email and text message), all from
    // one gathering of the case's facts; the time it goes makes "today" or
    // "tomorrow" true.
    let mut keys: Vec<(ReminderKind, Option<String>, Timestamp)> = Vec::new();
    for p in &planned {
        let key = (p.kind, p.drug.clone(), p.send_at);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let wanted: Vec<(LetterKind, LetterExtras)> = keys
        .iter()
        .map(|(kind, drug, at)| {
            (
                letter_kind(*kind),
                LetterExtras {
                    hold_drug: drug.clone(),
                    reminder_at: Some(*at),
                    ..LetterExtras::default()
                },
            )
        })
        .collect();
    let letters = compose_each(state, actor, case_id, &wanted).await?;
    let mut out = Vec::new();
    for p in planned {
        let key = (p.kind, p.drug.clone(), p.send_at);
        let Some(letter) = keys
            .iter()
            .position(|k| *k == key)
            .and_then(|i| letters.get(i))
        else {
            continue;
        };
        let Some((_, recipient)) = contacts.iter().find(|(c, _)| *c == p.channel) else {
            continue;
        };
        out.push(NewReminder {
            message: NewMessage {
                case_id,
                kind: p.kind.as_str().to_owned(),
                channel: p.channel,
                recipient: recipient.clone(),
                subject: letter.subject.clone(),
                body_text: letter.text.clone(),
                body_html: (p.channel == MessageChannel::Email)
                    .then(|| letter.html_document.clone()),
                send_after: p.send_at,
            },
            appointment_id: appointment.id,
            appointment_start: appointment.start,
            drug: p.drug,
            send_before: Some(p.send_before),
        });
    }
    Ok(out)
}

/// The held blood thinners of the screening re-evaluated for the appointment's date,
/// each with its last dose (the day, or the time for a hold in hours), as the letters
/// state it. A hold the prescriber declined is left out:
/// the patient must not be told to stop.
fn hold_stops(
    state: &AppState,
    record: &ScreeningRecord,
    procedure_code: &str,
    start: &ZonedDateTime,
) -> Result<Vec<HoldStop>, AppError> {
    let (facts, decision) = reevaluate(state, record, procedure_code, start)?;
    let mut stops = Vec::new();
    for finding in &decision.findings {
        let Some(plan) = &finding.hold else {
            continue;
        };
        let declined = record.actions.iter().any(|a| {
            a.kind == ActionKind::PrescriberClearance
                && a.rule_id == finding.rule_id
                && a.status == ActionStatus::Done
                && a.cleared == Some(false)
        });
        if declined {
            continue;
        }
        let medication = medication_for(state, &facts, &plan.drug);
        let last = last_dose(
            plan,
            start,
            medication.and_then(|m| m.last_dose),
            medication.and_then(|m| m.last_dose_time),
        );
        if let Some(last) = last {
            stops.push(HoldStop {
                drug: plan.drug.clone(),
                last_dose: last,
            });
        }
    }
    Ok(stops)
}

/// The stored screening's facts re-evaluated for the appointment (as booking does).
fn reevaluate(
    state: &AppState,
    record: &ScreeningRecord,
    procedure_code: &str,
    start: &ZonedDateTime,
) -> Result<(ScreeningFacts, ScreeningDecision), AppError> {
    let mut stored: Value = serde_json::from_str(&record.facts_json)
        .map_err(|e| AppError::Internal(format!("stored facts: {e}")))?;
    if let Some(o) = stored.as_object_mut() {
        o.remove("procedure");
        o.remove("today");
        o.insert("proposed_date".to_owned(), json!(start.date().to_string()));
        o.insert(
            "appointment_time".to_owned(),
            json!(start.time().strftime("%H:%M").to_string()),
        );
    }
    let today = state.today().min(start.date());
    let facts = crate::screening_json::parse_facts(
        stored.to_string().as_bytes(),
        Some(procedure_code),
        today,
    )
    .map_err(|e| AppError::Conflict(format!("the stored screening cannot be read: {e}")))?;
    let decision = irflow_domain::screening::evaluate(state.rules(), &facts, state.time_zone())
        .map_err(|e| AppError::Conflict(format!("the screening cannot be re-evaluated: {e}")))?;
    Ok((facts, decision))
}

/// The patient's medication a hold plan is about (the pack may know it by an alias).
fn medication_for<'a>(
    state: &AppState,
    facts: &'a ScreeningFacts,
    drug: &str,
) -> Option<&'a irflow_domain::screening::Medication> {
    let names: Vec<&str> = std::iter::once(drug)
        .chain(
            state
                .rules()
                .drugs
                .iter()
                .filter(|d| d.drug == drug)
                .flat_map(|d| d.aliases.iter().map(String::as_str)),
        )
        .collect();
    facts
        .medications
        .iter()
        .find(|m| names.contains(&m.drug.trim().to_lowercase().as_str()))
}

// ---------------------------------------------------------------- views

/// A label for a message kind.
fn kind_label(kind: &str) -> String {
    match kind {
        "reminder_hold_start" => "Reminder: blood thinner hold starts".to_owned(),
        "reminder_3_days" => "Reminder: 3 days before".to_owned(),
        "reminder_1_day" => "Reminder: 1 day before".to_owned(),
        "patient_link" => "Patient link".to_owned(),
        other => other.replace('_', " "),
    }
}

fn message_json(state: &AppState, m: &MessageRecord) -> Value {
    let tz = state.time_zone();
    let at = |t: Option<Timestamp>| t.map(|t| rfc3339_local(t, tz));
    json!({
        "id": m.id.get(),
        "kind": m.kind,
        "channel": m.channel.as_str(),
        "recipient": m.recipient,
        "subject": m.subject,
        "body_text": m.body_text,
        "state": m.state.as_str(),
        "planned_for": rfc3339_local(m.send_after, tz),
        "next_attempt_at": at(m.next_attempt_at),
        "sent_at": at(m.sent_at),
        "cancelled_at": at(m.cancelled_at),
        "cancelled_reason": m.cancelled_reason,
        "last_error": m.last_error,
        "appointment": m.appointment_id.map(|id| json!({
            "id": id,
            "start": at(m.appointment_start),
        })),
        "created_by": m.created_by,
        "created_at": rfc3339_local(m.created_at, tz),
        "attempt_count": m.attempts,
        "attempts": m.attempt_log.iter().map(|a| json!({
            "attempt": a.attempt,
            "worker": a.worker,
            "started_at": rfc3339_local(a.started_at, tz),
            "finished_at": at(a.finished_at),
            "outcome": a.outcome,
            "detail": a.detail,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/cases/{id}/messages`: the case's messages to the patient, latest
/// planned first, each with its state and every attempt.
pub async fn api_messages(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    let messages = state
        .store()
        .case_messages(&actor, id)
        .await
        .map_err(case_error)?;
    let opt_out = state
        .store()
        .reminders_opt_out(&actor, id)
        .await
        .map_err(case_error)?;
    Ok(Json(json!({
        "case_id": id.get(),
        "reminders_opted_out": opt_out.is_some(),
        "messages": messages.iter().map(|m| message_json(&state, m)).collect::<Vec<_>>(),
    })))
}

fn opt_out_json(state: &AppState, id: CaseId, o: Option<&irflow_store::OptOutRecord>) -> Value {
    json!({
        "case_id": id.get(),
        "opted_out": o.is_some(),
        "since": o.map(|o| rfc3339_local(o.at, state.time_zone())),
        "recorded_by": o.map(|o| o.by.clone()),
    })
}

/// `GET /api/v1/cases/{id}/reminders/opt-out`.
pub async fn api_get_opt_out(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let o = state
        .store()
        .reminders_opt_out(&caller.actor(), id)
        .await
        .map_err(case_error)?;
    Ok(Json(opt_out_json(&state, id, o.as_ref())))
}

/// Body of `PUT /api/v1/cases/{id}/reminders/opt-out`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptOutBody {
    opted_out: bool,
}

/// Records the patient's choice (staff, or the patient through their link), then
/// re-plans: opting out has cancelled the planned reminders; opting in plans them.
pub(crate) async fn set_opt_out(
    state: &AppState,
    actor: &Actor,
    id: CaseId,
    opted_out: bool,
) -> Result<Value, AppError> {
    if actor.role == Some(Role::Referrer) {
        return Err(AppError::Forbidden(
            "reminders are the department's: a referring provider cannot change them".to_owned(),
        ));
    }
    state
        .store()
        .set_reminders_opt_out(actor, id, opted_out, Timestamp::now())
        .await
        .map_err(case_error)?;
    // Opting out has cancelled the planned reminders; opting in plans them again.
    replan_after_change(state, actor, id).await;
    let o = state
        .store()
        .reminders_opt_out(actor, id)
        .await
        .map_err(case_error)?;
    Ok(opt_out_json(state, id, o.as_ref()))
}

/// `PUT /api/v1/cases/{id}/reminders/opt-out` with `{"opted_out": true|false}`
/// (scheduler, nurse, admin).
pub async fn api_put_opt_out(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<OptOutBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    Ok(Json(
        set_opt_out(&state, &caller.actor(), id, body.opted_out).await?,
    ))
}

/// `POST /api/v1/cases/{id}/reminders/opt-out`: the patient wants no reminders.
pub async fn api_post_opt_out(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    Ok(Json(set_opt_out(&state, &caller.actor(), id, true).await?))
}

/// `DELETE /api/v1/cases/{id}/reminders/opt-out`: reminders again.
pub async fn api_delete_opt_out(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    Ok(Json(set_opt_out(&state, &caller.actor(), id, false).await?))
}

// ---------------------------------------------------------------- pages

/// One row of the messages table.
#[derive(Debug)]
struct MessageRow {
    id: i64,
    planned_for: String,
    kind: String,
    channel: &'static str,
    recipient: String,
    state: &'static str,
    attempts: i64,
    last: String,
}

#[derive(Debug)]
struct Panel {
    case_id: i64,
    csrf: String,
    rows: Vec<MessageRow>,
    opted_out: Option<String>,
    can_change: bool,
    notice: Option<String>,
}

#[derive(askama::Template)]
#[template(path = "case_messages.html")]
struct PanelFragment {
    panel: Panel,
}

#[derive(askama::Template)]
#[template(path = "case_messages_page.html")]
struct PanelPage {
    chrome: Chrome,
    title: String,
    panel: Panel,
}

fn state_label(s: MessageState) -> &'static str {
    match s {
        MessageState::Planned => "planned",
        MessageState::Sending => "sending",
        MessageState::Sent => "sent",
        MessageState::Failed => "failed",
        MessageState::Cancelled => "cancelled",
    }
}

fn row(state: &AppState, m: &MessageRecord) -> MessageRow {
    let tz = state.time_zone();
    let last = match (m.state, m.attempt_log.last()) {
        (MessageState::Cancelled, _) => m.cancelled_reason.clone().unwrap_or_default(),
        (_, Some(a)) => format!(
            "{} at {}{}",
            a.outcome,
            local_time(a.finished_at.unwrap_or(a.started_at), tz),
            a.detail
                .as_deref()
                .map(|d| format!(": {d}"))
                .unwrap_or_default()
        ),
        (MessageState::Planned, None) => String::new(),
        (_, None) => String::new(),
    };
    MessageRow {
        id: m.id.get(),
        planned_for: local_time(m.next_attempt_at.unwrap_or(m.send_after), tz),
        kind: kind_label(&m.kind),
        channel: match m.channel {
            MessageChannel::Email => "email",
            MessageChannel::Sms => "text",
        },
        recipient: m.recipient.clone(),
        state: state_label(m.state),
        attempts: m.attempts,
        last,
    }
}

fn is_fragment(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

async fn show(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    fragment: bool,
    notice: Option<String>,
) -> Response {
    let actor = who.actor();
    let loaded = async {
        let messages = state.store().case_messages(&actor, id).await?;
        let opt_out = state.store().reminders_opt_out(&actor, id).await?;
        Ok::<_, irflow_store::StoreError>((messages, opt_out))
    }
    .await;
    let (messages, opt_out) = match loaded {
        Ok(l) => l,
        Err(e) => return error_page(state, Some(who), &case_error(e)),
    };
    let panel = Panel {
        case_id: id.get(),
        csrf: who.csrf.clone(),
        rows: messages.iter().map(|m| row(state, m)).collect(),
        opted_out: opt_out.map(|o| {
            format!(
                "since {} (recorded by {})",
                local_time(o.at, state.time_zone()),
                o.by
            )
        }),
        can_change: who.user.role != Role::Referrer,
        notice,
    };
    if fragment {
        render(&PanelFragment { panel }, StatusCode::OK)
    } else {
        render(
            &PanelPage {
                chrome: Chrome::new(state, Some(who), "cases"),
                title: format!("Messages to the patient · case #{id}"),
                panel,
            },
            StatusCode::OK,
        )
    }
}

/// `GET /cases/{id}/messages`: the messages panel (loaded into the case page by htmx,
/// or a page of its own without JavaScript).
pub async fn page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    show(&state, &who, id, is_fragment(&headers), None).await
}

/// What the opt-out form posts.
#[derive(Debug, Deserialize)]
pub struct OptOutForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    opted_out: String,
}

/// `POST /cases/{id}/reminders/opt-out` (scheduler, nurse, admin): `opted_out=yes|no`.
pub async fn opt_out_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(f): Form<OptOutForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let opted_out = match f.opted_out.as_str() {
        "yes" => true,
        "no" => false,
        _ => {
            return error_page(
                &state,
                Some(&who),
                &AppError::BadRequest("opted_out must be yes or no".to_owned()),
            );
        }
    };
    if let Err(e) = set_opt_out(&state, &who.actor(), id, opted_out).await {
        return error_page(&state, Some(&who), &e);
    }
    let notice = if opted_out {
        "The patient will get no reminders; planned ones were cancelled."
    } else {
        "Reminders are on again and have been planned."
    };
    if is_fragment(&headers) {
        show(&state, &who, id, true, Some(notice.to_owned())).await
    } else {
        Redirect::to(&format!("/cases/{id}/messages")).into_response()
    }
}
