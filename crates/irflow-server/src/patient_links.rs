//! Staff side of patient links: create one (and send it by email or SMS through the
//! outbox, or read it out on the phone), list and revoke a case's links, and read
//! what the patient answered. The patient's own pages are in `patient_pages`.
//!
//! The link's secret is shown once, in the answer that creates it, and stored only as
//! its SHA-256. A link expires a set number of days after the appointment (or after
//! it was made, when nothing is booked yet); booking or moving the appointment later
//! extends the case's live links to follow it ([`follow_appointment`]).

use askama::Template;
use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Form, extract::Query};
use irflow_domain::{Actor, CaseId, Role};
use irflow_letters::LetterKind;
use irflow_store::outbox::{Channel, NewMessage};
use irflow_store::{CaseDetail, LinkChannel, PatientLinkRecord, PatientResponseRecord};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::{constant_time_eq, new_secret, secret_hash};
use crate::letters::{LetterExtras, compose};
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{local_time, rfc3339_local};
use crate::{AppError, AppState};

/// Default days a link keeps working after the appointment (or after it is made,
/// when nothing is booked): long enough for the discharge instructions and the
/// two-week follow-up.
pub const PATIENT_LINK_DAYS: i64 = 30;

/// Default minutes of inactivity that end a patient's session.
pub const PATIENT_SESSION_IDLE_MINUTES: i64 = 15;

/// Wrong dates of birth before a link locks.
pub const MAX_DOB_ATTEMPTS: i64 = 5;

/// A link just made: its secret URL (shown once) and the message that carries it.
#[derive(Debug, Clone)]
pub(crate) struct CreatedLink {
    pub link: PatientLinkRecord,
    pub url: String,
    pub message_id: Option<i64>,
}

/// Where clients reach us: the configured public URL, or the request's host.
pub(crate) fn public_base(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.config().public_base_url {
        return base.trim_end_matches('/').to_owned();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn may_send(actor: &Actor) -> bool {
    matches!(
        actor.role,
        Some(Role::Scheduler | Role::Nurse | Role::Admin)
    )
}

/// Makes a link for a case and, for email or SMS, puts the patient's message in the
/// outbox (its text from the letter templates, in the patient's language).
pub(crate) async fn create_link(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    channel: LinkChannel,
    base: &str,
) -> Result<CreatedLink, AppError> {
    let detail = state
        .store()
        .case_detail(actor, case_id)
        .await
        .map_err(case_error)?;
    let recipient = if may_send(actor) {
        recipient_for(&detail, channel)?
    } else {
        // The store refuses and audits it.
        None
    };
    let now = Timestamp::now();
    let appointment = state
        .store()
        .appointment_for_case(actor, case_id)
        .await
        .map_err(case_error)?;
    let expires_at = link_expiry(state, appointment.as_ref().map(|a| a.start), now);
    let token = new_secret("");
    let link = state
        .store()
        .create_patient_link(
            actor,
            case_id,
            &secret_hash(&token),
            channel,
            expires_at,
            now,
        )
        .await
        .map_err(case_error)?;
    let url = format!("{base}/p/{token}");
    let message_id = match (channel, recipient) {
        (LinkChannel::None, _) | (_, None) => None,
        (channel, Some(recipient)) => {
            let letter = compose(
                state,
                actor,
                case_id,
                LetterKind::PatientLink,
                None,
                &LetterExtras {
                    link_url: Some(url.clone()),
                    link_expires: Some(expires_at),
                    ..LetterExtras::default()
                },
            )
            .await?;
            let (channel, body_html) = match channel {
                LinkChannel::Email => (Channel::Email, Some(letter.html_document.clone())),
                _ => (Channel::Sms, None),
            };
            let id = state
                .store()
                .enqueue_message(
                    actor,
                    NewMessage {
                        case_id,
                        kind: "patient_link".to_owned(),
                        channel,
                        recipient,
                        subject: letter.subject.clone(),
                        body_text: letter.text.clone(),
                        body_html,
                        send_after: now,
                    },
                )
                .await
                .map_err(case_error)?;
            state
                .store()
                .set_patient_link_message(link.id, id.get())
                .await?;
            Some(id.get())
        }
    };
    Ok(CreatedLink {
        link: state.store().patient_link(link.id).await?,
        url,
        message_id,
    })
}

/// When a case's links should work until: the configured days after its current
/// appointment (or after `now`, when nothing is booked or it has passed).
fn link_expiry(
    state: &AppState,
    appointment_start: Option<Timestamp>,
    now: Timestamp,
) -> Timestamp {
    let from = appointment_start.map_or(now, |start| start.max(now));
    from + SignedDuration::from_hours(24 * state.config().patient_link_days)
}

/// After a booking, a move or a cancellation: the case's live links work until the
/// configured days after its current appointment (never shorter than they were).
pub(crate) async fn follow_appointment(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
) -> Result<(), AppError> {
    let Some(appointment) = state
        .store()
        .appointment_for_case(actor, case_id)
        .await
        .map_err(case_error)?
    else {
        return Ok(());
    };
    let now = Timestamp::now();
    let until = link_expiry(state, Some(appointment.start), now);
    state
        .store()
        .extend_patient_links(actor, case_id, until, now)
        .await
        .map_err(case_error)?;
    Ok(())
}

/// The address or number a channel sends to, or a clear refusal when it is not on file.
fn recipient_for(detail: &CaseDetail, channel: LinkChannel) -> Result<Option<String>, AppError> {
    let on_file = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    match channel {
        LinkChannel::None => Ok(None),
        LinkChannel::Email => on_file(&detail.patient.email).map(Some).ok_or_else(|| {
            AppError::Field {
                field: "channel",
                message: "the patient has no email address on file: send by text message, or choose \"none\" and read the link out".to_owned(),
            }
        }),
        LinkChannel::Sms => on_file(&detail.patient.phone).map(Some).ok_or_else(|| {
            AppError::Field {
                field: "channel",
                message: "the patient has no phone number on file: send by email, or choose \"none\" and give the link in person".to_owned(),
            }
        }),
    }
}

fn link_json(state: &AppState, l: &PatientLinkRecord) -> Value {
    let tz = state.time_zone();
    let now = Timestamp::now();
    json!({
        "id": l.id,
        "case_id": l.case_id.get(),
        "channel": l.channel.as_str(),
        "message_id": l.message_id,
        "status": l.status(now).as_str(),
        "created_by": l.created_by,
        "created_at": rfc3339_local(l.created_at, tz),
        "expires_at": rfc3339_local(l.expires_at, tz),
        "failed_attempts": l.failed_attempts,
        "locked_at": l.locked_at.map(|t| rfc3339_local(t, tz)),
        "revoked_at": l.revoked_at.map(|t| rfc3339_local(t, tz)),
        "last_used_at": l.last_used_at.map(|t| rfc3339_local(t, tz)),
    })
}

fn response_json(state: &AppState, r: &PatientResponseRecord) -> Value {
    json!({
        "id": r.id,
        "kind": r.kind.as_str(),
        "reason": r.reason,
        "at": rfc3339_local(r.at, state.time_zone()),
        "appointment_id": r.appointment_id,
        "link_id": r.link_id,
    })
}

/// Body of `POST /api/v1/cases/{id}/patient-link`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateLinkBody {
    channel: String,
}

fn parse_channel(raw: &str) -> Result<LinkChannel, AppError> {
    raw.parse().map_err(|e: String| AppError::Field {
        field: "channel",
        message: e,
    })
}

/// `POST /api/v1/cases/{id}/patient-link` `{"channel": "email"|"sms"|"none"}`
/// (scheduler, nurse, admin): 201 with the link's URL (shown once) and the id of the
/// outbox message that carries it.
pub async fn api_create(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Result<Json<CreateLinkBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let id = parse_case_id(&id)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let channel = parse_channel(&body.channel)?;
    let base = public_base(&state, &headers);
    let created = create_link(&state, &caller.actor(), id, channel, &base).await?;
    let mut link = link_json(&state, &created.link);
    link["url"] = json!(created.url);
    Ok((
        StatusCode::CREATED,
        Json(json!({ "link": link, "url": created.url, "message_id": created.message_id })),
    )
        .into_response())
}

/// `GET /api/v1/cases/{id}/patient-link`: the case's links (never their secrets).
pub async fn api_list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let links = state
        .store()
        .patient_links(&caller.actor(), id)
        .await
        .map_err(case_error)?;
    Ok(Json(json!({
        "links": links.iter().map(|l| link_json(&state, l)).collect::<Vec<_>>(),
    })))
}

/// `DELETE /api/v1/cases/{id}/patient-link`: revokes the case's live links (their
/// patients' sessions end at once).
pub async fn api_revoke(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let n = state
        .store()
        .revoke_patient_links(&caller.actor(), id, Timestamp::now())
        .await
        .map_err(case_error)?;
    Ok(Json(json!({ "case_id": id.get(), "revoked": n })))
}

/// `GET /api/v1/cases/{id}/patient-responses`: what the patient answered through their
/// link (confirm, or ask to cancel with an optional reason), oldest first.
pub async fn api_responses(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let responses = state
        .store()
        .patient_responses(&caller.actor(), id)
        .await
        .map_err(case_error)?;
    Ok(Json(json!({
        "responses": responses.iter().map(|r| response_json(&state, r)).collect::<Vec<_>>(),
    })))
}

// ---------------------------------------------------------------- staff pages

struct LinkRow {
    id: i64,
    channel: &'static str,
    status: &'static str,
    created: String,
    expires: String,
    attempts: i64,
    last_used: String,
}

struct ResponseRow {
    label: &'static str,
    reason: Option<String>,
    at: String,
}

/// The panel on the case page (loaded into it), also a page of its own.
#[derive(Template)]
#[template(path = "patient_link_panel.html")]
struct PanelFragment {
    panel: Panel,
}

#[derive(Template)]
#[template(path = "patient_link_page.html")]
struct PanelPage {
    chrome: Chrome,
    title: String,
    panel: Panel,
}

struct Panel {
    case_id: i64,
    csrf: String,
    can_send: bool,
    email: Option<String>,
    phone: Option<String>,
    created_url: Option<String>,
    created_note: Option<String>,
    error: Option<String>,
    notice: Option<String>,
    links: Vec<LinkRow>,
    any_active: bool,
    responses: Vec<ResponseRow>,
    /// Booked: the calendar file can be downloaded.
    booked: bool,
    /// The patient's request to cancel the booked appointment, not yet acted on.
    open_cancel: Option<String>,
}

async fn panel(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    created: Option<&CreatedLink>,
    error: Option<String>,
    notice: Option<String>,
) -> Result<(Panel, CaseDetail), AppError> {
    let actor = who.actor();
    let detail = state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(case_error)?;
    let tz = state.time_zone();
    let now = Timestamp::now();
    let links = state
        .store()
        .patient_links(&actor, id)
        .await
        .map_err(case_error)?;
    let responses = state
        .store()
        .patient_responses(&actor, id)
        .await
        .map_err(case_error)?;
    let on_file = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    // Open: the latest answer asks to cancel the appointment still booked.
    let open_cancel = match responses.last() {
        Some(r) if r.kind == irflow_store::ResponseKind::CancelRequest => state
            .store()
            .appointment_for_case(&actor, id)
            .await
            .map_err(case_error)?
            .filter(|a| Some(a.id) == r.appointment_id)
            .map(|a| {
                format!(
                    "The patient asked to cancel the appointment of {} (on {}). Move or cancel it, or call them.",
                    local_time(a.start, tz),
                    local_time(r.at, tz)
                )
            }),
        _ => None,
    };
    Ok((
        Panel {
            open_cancel,
            case_id: id.get(),
            booked: matches!(
                detail.case.state,
                irflow_domain::CaseState::Scheduled | irflow_domain::CaseState::Confirmed
            ),
            csrf: who.csrf.clone(),
            can_send: may_send(&actor),
            email: on_file(&detail.patient.email),
            phone: on_file(&detail.patient.phone),
            created_url: created.map(|c| c.url.clone()),
            created_note: created.map(|c| match c.message_id {
                Some(m) => format!(
                    "Sent by {} (message {m}); it works until {}.",
                    if c.link.channel == LinkChannel::Email {
                        "email"
                    } else {
                        "text message"
                    },
                    local_time(c.link.expires_at, tz)
                ),
                None => format!(
                    "Not sent: read it out or give it to the patient. It works until {}.",
                    local_time(c.link.expires_at, tz)
                ),
            }),
            error,
            notice,
            any_active: links
                .iter()
                .any(|l| l.status(now) == irflow_store::LinkStatus::Active),
            links: links
                .iter()
                .map(|l| LinkRow {
                    id: l.id,
                    channel: l.channel.as_str(),
                    status: l.status(now).as_str(),
                    created: format!("{} by {}", local_time(l.created_at, tz), l.created_by),
                    expires: local_time(l.expires_at, tz),
                    attempts: l.failed_attempts,
                    last_used: l
                        .last_used_at
                        .map_or_else(|| "never".to_owned(), |t| local_time(t, tz)),
                })
                .collect(),
            responses: responses
                .iter()
                .rev()
                .map(|r| ResponseRow {
                    label: match r.kind {
                        irflow_store::ResponseKind::Confirm => "Will come",
                        irflow_store::ResponseKind::CancelRequest => "Asks to cancel",
                    },
                    reason: r.reason.clone(),
                    at: local_time(r.at, tz),
                })
                .collect(),
        },
        detail,
    ))
}

struct RequestRow {
    case_id: i64,
    patient: String,
    appointment: String,
    at: String,
    reason: Option<String>,
}

#[derive(Template)]
#[template(path = "patient_requests.html")]
struct RequestsPage {
    chrome: Chrome,
    rows: Vec<RequestRow>,
}

/// `GET /patient-requests`: patients' requests to cancel still waiting for staff.
pub async fn requests_page(State(state): State<AppState>, who: SignedIn) -> Response {
    let open = match state.store().open_cancel_requests(&who.actor()).await {
        Ok(open) => open,
        Err(e) => return error_page(&state, Some(&who), &case_error(e)),
    };
    let tz = state.time_zone();
    let rows = open
        .iter()
        .map(|r| RequestRow {
            case_id: r.case_id.get(),
            patient: r.patient_name.clone(),
            appointment: local_time(r.appointment_start, tz),
            at: local_time(r.at, tz),
            reason: r.reason.clone(),
        })
        .collect();
    render(
        &RequestsPage {
            chrome: Chrome::new(&state, Some(&who), "patient-requests"),
            rows,
        },
        StatusCode::OK,
    )
}

/// `GET /patient-requests/count`: the navigation's count of open requests (loaded by
/// htmx into the link; empty when there are none or the caller may not see them).
pub async fn requests_count(State(state): State<AppState>, who: SignedIn) -> Response {
    let html = match state.store().open_cancel_requests(&who.actor()).await {
        Ok(open) if !open.is_empty() => format!(
            "<span class=\"badge nav-count\" id=\"nav-patient-requests\" title=\"Open requests to cancel\">{}</span>",
            open.len()
        ),
        Ok(_) | Err(_) => "<span id=\"nav-patient-requests\"></span>".to_owned(),
    };
    axum::response::Html(html).into_response()
}

/// The staff's patient-request routes (merged into the app with the patient pages').
pub(crate) fn staff_routes() -> axum::Router<AppState> {
    use axum::routing::get;
    axum::Router::new()
        .route("/patient-requests", get(requests_page))
        .route("/patient-requests/count", get(requests_count))
}

fn is_fragment(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

async fn show(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    fragment: bool,
    created: Option<&CreatedLink>,
    error: Option<AppError>,
    notice: Option<String>,
) -> Response {
    // htmx swaps only successful answers: a refused send is shown inside the panel.
    let status = match &error {
        Some(e) if !fragment => e.status(),
        _ => StatusCode::OK,
    };
    let message = error.as_ref().map(AppError::public_message);
    match panel(state, who, id, created, message, notice).await {
        Ok((panel, detail)) => {
            if fragment {
                render(&PanelFragment { panel }, status)
            } else {
                render(
                    &PanelPage {
                        chrome: Chrome::new(state, Some(who), "cases"),
                        title: format!("Patient link · {}", crate::views::case_title(&detail.case)),
                        panel,
                    },
                    status,
                )
            }
        }
        Err(e) => error_page(state, Some(who), &e),
    }
}

/// Query of the panel page.
#[derive(Debug, Deserialize)]
pub struct PanelQuery {
    done: Option<String>,
}

/// `GET /cases/{id}/patient-link`: the panel (department staff). Loaded into the case
/// page by htmx (`HX-Request`), or a page of its own without JavaScript.
pub async fn page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Query(q): Query<PanelQuery>,
) -> Response {
    let fragment = is_fragment(&headers);
    if who.user.role == Role::Referrer {
        // Referrers do not see patient links; the case page asks, and gets nothing.
        return if fragment {
            (StatusCode::OK, "").into_response()
        } else {
            error_page(
                &state,
                Some(&who),
                &AppError::Forbidden("patient links are for department staff".to_owned()),
            )
        };
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let notice = match q.done.as_deref() {
        Some("revoked") => Some("The patient's links were revoked.".to_owned()),
        _ => None,
    };
    show(&state, &who, id, fragment, None, None, notice).await
}

/// Fields of the "Send patient link" form.
#[derive(Debug, Deserialize)]
pub struct SendForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    channel: String,
}

/// `POST /cases/{id}/patient-link`: makes and sends a link; the page shows its URL once.
pub async fn send(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SendForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &form.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let fragment = is_fragment(&headers);
    let result = match parse_channel(&form.channel) {
        Ok(channel) => {
            create_link(
                &state,
                &who.actor(),
                id,
                channel,
                &public_base(&state, &headers),
            )
            .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(created) => show(&state, &who, id, fragment, Some(&created), None, None).await,
        Err(e @ (AppError::NotFound(_) | AppError::Internal(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => show(&state, &who, id, fragment, None, Some(e), None).await,
    }
}

/// Fields of the revoke form.
#[derive(Debug, Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /cases/{id}/patient-link/revoke`: the case's links stop working.
pub async fn revoke(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &form.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match state
        .store()
        .revoke_patient_links(&who.actor(), id, Timestamp::now())
        .await
        .map_err(case_error)
    {
        Ok(_) => Redirect::to(&format!("/cases/{id}/patient-link?done=revoked")).into_response(),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}
