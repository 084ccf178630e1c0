//! The follow-up and the outcomes.
//!
//! - `/follow-ups`: the nurses' list of discharged patients whose follow-up is due
//!   (`[letters] follow_up_days` after the discharge date, at the site) or coming up
//!   this week, each with a form to record the phone call; patients who answered the
//!   form behind their link and reported a problem are marked for a call.
//! - `POST /cases/{id}/follow-up`: the call's answers; the case closes as followed up.
//! - `/outcomes`: per procedure done, the complications and the share of followed-up
//!   patients with at least 50% relief, with a bar chart drawn on the server (SVG).
//! - The same as JSON under `/api/v1`.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::procedure_record::{
    Complication, FOLLOW_UP_EARLY_DAYS, FollowUpAnswers, FollowUpForm, ProcedureOutcome,
    RESPONSE_RELIEF_PERCENT, follow_up_is_early, outcomes,
};
use irflow_domain::{CaseId, FieldErrors, Role};
use irflow_store::{FollowUpRecord, FollowUpTask, StoreError};
use jiff::{Span, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{local_time, rfc3339_local};
use crate::{AppError, AppState};

/// The routes of the follow-up list, the outcomes page and their API.
pub(crate) fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/follow-ups", get(list_page))
        .route("/cases/{id}/follow-up", get(case_page).post(record_call))
        .route("/outcomes", get(outcomes_page))
        .route("/api/v1/follow-ups", get(api_list))
        .route("/api/v1/cases/{id}/follow-up", post(api_record))
        .route("/api/v1/outcomes", get(api_outcomes))
}

/// How far ahead the list shows follow-ups coming up.
const LIST_DAYS_AHEAD: i64 = 7;

// ---------------------------------------------------------------- the list

struct TaskRow {
    case_id: i64,
    patient: String,
    mrn: String,
    phone: String,
    procedure: String,
    discharged: String,
    due_on: String,
    due: bool,
    overdue: bool,
    answer: Option<String>,
    errors: FieldErrors,
    typed: FollowUpForm,
}

#[derive(Template)]
#[template(path = "follow_ups.html")]
struct ListPage {
    chrome: Chrome,
    today: String,
    days: u32,
    due: Vec<TaskRow>,
    upcoming: Vec<TaskRow>,
    notice: Option<String>,
    can_record: bool,
}

/// Query of the list.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    done: Option<String>,
}

fn answer_text(a: &FollowUpRecord) -> String {
    format!(
        "they answered the form: pain {}/10, {}% relief{}",
        a.pain_now,
        a.relief_percent,
        a.problems
            .as_deref()
            .map(|p| format!("; problems: {p}"))
            .unwrap_or_default()
    )
}

async fn show_list(
    state: &AppState,
    who: &SignedIn,
    notice: Option<String>,
    refused: Option<(CaseId, FieldErrors, FollowUpForm)>,
    status: StatusCode,
) -> Response {
    let today = state.today();
    let until = today
        .checked_add(Span::new().days(LIST_DAYS_AHEAD))
        .unwrap_or(today);
    let days = state.config().follow_up_days;
    let tasks = match state
        .store()
        .follow_up_tasks(&who.actor(), state.time_zone(), days, Some(until))
        .await
    {
        Ok(t) => t,
        Err(e) => return error_page(state, Some(who), &e.into()),
    };
    let tz = state.time_zone();
    let row = |t: &FollowUpTask| {
        let (errors, typed) = match &refused {
            Some((case, errors, typed)) if *case == t.case_id => (errors.clone(), typed.clone()),
            _ => (FieldErrors::default(), FollowUpForm::default()),
        };
        TaskRow {
            case_id: t.case_id.get(),
            patient: t.patient_name.clone(),
            mrn: t.mrn.clone().unwrap_or_else(|| "—".to_owned()),
            phone: t.phone.clone().unwrap_or_else(|| "—".to_owned()),
            procedure: t.procedure_name.clone(),
            discharged: local_time(t.discharged_at, tz),
            due_on: t.due_on.to_string(),
            due: t.due_on <= today,
            overdue: t.due_on < today,
            answer: t.patient_answer.as_ref().map(answer_text),
            errors,
            typed,
        }
    };
    let (due, upcoming): (Vec<_>, Vec<_>) = tasks.iter().map(row).partition(|r: &TaskRow| r.due);
    let page = ListPage {
        chrome: Chrome::new(state, Some(who), "follow-ups"),
        today: today.to_string(),
        days,
        due,
        upcoming,
        notice,
        can_record: who.user.role == Role::Nurse,
    };
    render(&page, status)
}

/// `GET /follow-ups`.
pub async fn list_page(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let notice = q
        .done
        .as_deref()
        .and_then(|d| d.parse::<i64>().ok())
        .map(|id| {
            format!(
                "Follow-up recorded for case {}; it is closed as followed up.",
                irflow_fhir::referral_number(id)
            )
        });
    show_list(&state, &who, notice, None, StatusCode::OK).await
}

/// What the call form posts.
#[derive(Debug, Deserialize)]
pub struct CallForm {
    #[serde(default)]
    csrf: String,
    /// `case` when posted from the case's own follow-up page.
    #[serde(default)]
    from: String,
    #[serde(default)]
    pain_now: String,
    #[serde(default)]
    relief_percent: String,
    #[serde(default)]
    problems: String,
}

async fn record(
    state: &AppState,
    actor: &irflow_domain::Actor,
    case: CaseId,
    answers: &FollowUpAnswers,
) -> Result<FollowUpRecord, StoreError> {
    state
        .store()
        .record_follow_up(
            actor,
            case,
            answers,
            state.time_zone(),
            state.config().follow_up_days,
            Timestamp::now(),
            state.today(),
        )
        .await
}

/// `POST /cases/{id}/follow-up` (nurses): the phone call's answers.
pub async fn record_call(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<CallForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let typed = FollowUpForm {
        pain_now: f.pain_now,
        relief_percent: f.relief_percent,
        problems: f.problems,
    };
    let from_case = f.from == "case";
    let answers = match typed.check() {
        Ok(a) => a,
        Err(errors) if from_case => {
            return show_case(
                &state,
                &who,
                case,
                errors,
                typed,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
        Err(errors) => {
            return show_list(
                &state,
                &who,
                None,
                Some((case, errors, typed)),
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    match record(&state, &who.actor(), case, &answers).await {
        Ok(_) if from_case => Redirect::to(&format!("/cases/{case}")).into_response(),
        Ok(_) => Redirect::to(&format!("/follow-ups?done={case}")).into_response(),
        Err(e) => error_page(&state, Some(&who), &case_error(e)),
    }
}

// ---------------------------------------------------------------- one case

#[derive(Template)]
#[template(path = "follow_up_case.html")]
struct CasePage {
    chrome: Chrome,
    case_id: i64,
    referral_number: String,
    patient: String,
    phone: String,
    procedure: String,
    state_label: &'static str,
    due_on: Option<String>,
    early: bool,
    early_days: i64,
    answers: Vec<String>,
    can_record: bool,
    errors: FieldErrors,
    typed: FollowUpForm,
}

async fn show_case(
    state: &AppState,
    who: &SignedIn,
    case: CaseId,
    errors: FieldErrors,
    typed: FollowUpForm,
    status: StatusCode,
) -> Response {
    let actor = who.actor();
    let loaded = async {
        let detail = state.store().case_detail(&actor, case).await?;
        let follow = state
            .store()
            .follow_up_status(
                &actor,
                case,
                state.time_zone(),
                state.config().follow_up_days,
            )
            .await?;
        Ok::<_, StoreError>((detail, follow))
    }
    .await;
    let (detail, follow) = match loaded {
        Ok(l) => l,
        Err(e) => return error_page(state, Some(who), &case_error(e)),
    };
    let tz = state.time_zone();
    let open = follow.state == irflow_domain::CaseState::Discharged;
    let page = CasePage {
        chrome: Chrome::new(state, Some(who), "follow-ups"),
        case_id: case.get(),
        referral_number: irflow_fhir::referral_number(case.get()),
        patient: detail.case.patient_name(),
        phone: detail
            .patient
            .phone
            .clone()
            .unwrap_or_else(|| "—".to_owned()),
        procedure: crate::views::order_summary(&detail.case),
        state_label: follow.state.label(),
        due_on: follow.due_on.map(|d| d.to_string()),
        early: follow.due_on.is_some_and(|d| d > state.today()),
        early_days: FOLLOW_UP_EARLY_DAYS,
        answers: follow
            .answers
            .iter()
            .map(|a| {
                format!(
                    "{} ({}, {}): pain {}/10, {}% relief{}{}",
                    a.method.label(),
                    a.recorded_by,
                    local_time(a.recorded_at, tz),
                    a.pain_now,
                    a.relief_percent,
                    a.problems
                        .as_deref()
                        .map(|p| format!("; problems: {p}"))
                        .unwrap_or_default(),
                    if answered_early(a, tz) {
                        format!(
                            " — early (more than {FOLLOW_UP_EARLY_DAYS} days before {}): not counted in the outcomes' relief share",
                            a.due_on
                        )
                    } else {
                        String::new()
                    }
                )
            })
            .collect(),
        can_record: who.user.role == Role::Nurse && open,
        errors,
        typed,
    };
    render(&page, status)
}

/// `GET /cases/{id}/follow-up`: one patient's follow-up — when it is due, the answers
/// so far, and (nurses, while discharged) the call form, also before the due date
/// (a patient who phones in early).
pub async fn case_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    show_case(
        &state,
        &who,
        case,
        FieldErrors::default(),
        FollowUpForm::default(),
        StatusCode::OK,
    )
    .await
}

// ---------------------------------------------------------------- outcomes

struct OutcomeRowView {
    code: String,
    name: String,
    done: usize,
    complications: String,
    complication_count: usize,
    followed_up: usize,
    relieved: usize,
    share: String,
    early: usize,
}

struct Bar {
    y: u32,
    label: String,
    width: u32,
    value: String,
    text_y: u32,
}

#[derive(Template)]
#[template(path = "outcomes.html")]
struct OutcomesPage {
    chrome: Chrome,
    rows: Vec<OutcomeRowView>,
    totals: OutcomeRowView,
    bars: Vec<Bar>,
    chart_height: u32,
    threshold: u8,
    early_days: i64,
    /// How many early follow-ups were left out of the share, and of which procedures.
    early_note: Option<String>,
}

/// The chart's drawing width for 100%.
const CHART_WIDTH: u32 = 400;

fn complications_text(o: &ProcedureOutcome) -> String {
    if o.complications.is_empty() {
        return "none".to_owned();
    }
    o.complications
        .iter()
        .map(|(c, n)| format!("{} {n}", c.label().to_lowercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn share_text(o: &ProcedureOutcome) -> String {
    match o.relieved_half_percent() {
        Some(p) => format!("{p}% ({} of {})", o.relieved_half, o.followed_up),
        None => "no follow-up yet".to_owned(),
    }
}

fn view_of(o: &ProcedureOutcome, name: String) -> OutcomeRowView {
    OutcomeRowView {
        code: o.procedure_code.clone(),
        name,
        done: o.done,
        complications: complications_text(o),
        complication_count: o.complication_count(),
        followed_up: o.followed_up,
        relieved: o.relieved_half,
        share: share_text(o),
        early: o.early_excluded,
    }
}

async fn computed(
    state: &AppState,
    actor: &irflow_domain::Actor,
) -> Result<(Vec<ProcedureOutcome>, Vec<irflow_domain::Procedure>), AppError> {
    let rows = state
        .store()
        .outcome_rows(actor, None, state.time_zone())
        .await?;
    let catalogue = state.store().procedures().await?;
    Ok((outcomes(&rows), catalogue))
}

fn total(all: &[ProcedureOutcome]) -> ProcedureOutcome {
    let mut t = ProcedureOutcome {
        procedure_code: "all".to_owned(),
        ..ProcedureOutcome::default()
    };
    for o in all {
        t.done += o.done;
        t.followed_up += o.followed_up;
        t.relieved_half += o.relieved_half;
        t.early_excluded += o.early_excluded;
        for (c, n) in &o.complications {
            *t.complications.entry(*c).or_default() += n;
        }
    }
    t
}

/// "2 follow-ups recorded more than 3 days before they were due are not counted ...".
fn early_note(all: &[ProcedureOutcome]) -> Option<String> {
    let n: usize = all.iter().map(|o| o.early_excluded).sum();
    if n == 0 {
        return None;
    }
    let which = all
        .iter()
        .filter(|o| o.early_excluded > 0)
        .map(|o| format!("{} {}", o.procedure_code, o.early_excluded))
        .collect::<Vec<_>>()
        .join(", ");
    Some(if n == 1 {
        format!(
            "1 follow-up recorded more than {FOLLOW_UP_EARLY_DAYS} days before it was due is not counted in the relief share, too early to say how the injection worked ({which})."
        )
    } else {
        format!(
            "{n} follow-ups recorded more than {FOLLOW_UP_EARLY_DAYS} days before they were due are not counted in the relief share, too early to say how the injection worked ({which})."
        )
    })
}

/// `GET /outcomes` (staff): the table and the chart.
pub async fn outcomes_page(State(state): State<AppState>, who: SignedIn) -> Response {
    let (all, catalogue) = match computed(&state, &who.actor()).await {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let name = |code: &str| {
        catalogue
            .iter()
            .find(|p| p.code == code)
            .map_or_else(|| code.to_owned(), |p| p.name.clone())
    };
    let bars = all
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let y = u32::try_from(i).unwrap_or(0) * 34 + 4;
            let pct = o.relieved_half_percent().unwrap_or(0);
            Bar {
                y,
                text_y: y + 18,
                label: o.procedure_code.clone(),
                width: CHART_WIDTH * pct / 100,
                value: share_text(o),
            }
        })
        .collect::<Vec<Bar>>();
    let page = OutcomesPage {
        chrome: Chrome::new(&state, Some(&who), "outcomes"),
        rows: all
            .iter()
            .map(|o| view_of(o, name(&o.procedure_code)))
            .collect(),
        totals: view_of(&total(&all), "All procedures".to_owned()),
        chart_height: u32::try_from(bars.len()).unwrap_or(0) * 34 + 8,
        bars,
        threshold: RESPONSE_RELIEF_PERCENT,
        early_days: FOLLOW_UP_EARLY_DAYS,
        early_note: early_note(&all),
    };
    render(&page, StatusCode::OK)
}

// ---------------------------------------------------------------- API

fn task_json(state: &AppState, t: &FollowUpTask) -> Value {
    json!({
        "case_id": t.case_id.get(),
        "patient": {"name": t.patient_name, "mrn": t.mrn, "date_of_birth": t.date_of_birth.to_string(),
                    "phone": t.phone, "preferred_language": t.preferred_language},
        "procedure_name": t.procedure_name,
        "discharged_at": rfc3339_local(t.discharged_at, state.time_zone()),
        "due_on": t.due_on.to_string(),
        "due": t.due_on <= state.today(),
        "patient_answer": t.patient_answer.as_ref().map(|a| follow_up_json(state, a)),
    })
}

/// Answered more than [`FOLLOW_UP_EARLY_DAYS`] before it was due (the site's dates).
fn answered_early(a: &FollowUpRecord, tz: &jiff::tz::TimeZone) -> bool {
    follow_up_is_early(a.due_on, a.recorded_at.to_zoned_datetime(tz.clone()).date())
}

fn follow_up_json(state: &AppState, a: &FollowUpRecord) -> Value {
    json!({
        "early": answered_early(a, state.time_zone()),
        "id": a.id,
        "case_id": a.case_id.get(),
        "due_on": a.due_on.to_string(),
        "method": a.method.as_str(),
        "pain_now": a.pain_now,
        "relief_percent": a.relief_percent,
        "problems": a.problems,
        "closed_case": a.closed_case,
        "recorded_by": a.recorded_by,
        "recorded_at": rfc3339_local(a.recorded_at, state.time_zone()),
    })
}

/// Query of the API list.
#[derive(Debug, Deserialize)]
pub struct ApiListQuery {
    /// `due` (default: due today or earlier) or `all`.
    #[serde(default)]
    show: Option<String>,
}

/// `GET /api/v1/follow-ups?show=due|all`.
pub async fn api_list(
    State(state): State<AppState>,
    caller: ApiCaller,
    Query(q): Query<ApiListQuery>,
) -> Result<Json<Value>, ApiError> {
    let until = match q.show.as_deref() {
        None | Some("due") => Some(state.today()),
        Some("all") => None,
        Some(other) => {
            return Err(ApiError(AppError::BadRequest(format!(
                "show must be due or all, not {other:?}"
            ))));
        }
    };
    let tasks = state
        .store()
        .follow_up_tasks(
            &caller.actor(),
            state.time_zone(),
            state.config().follow_up_days,
            until,
        )
        .await?;
    Ok(Json(json!({
        "follow_up_days": state.config().follow_up_days,
        "follow_ups": tasks.iter().map(|t| task_json(&state, t)).collect::<Vec<_>>(),
    })))
}

/// The call's answers as JSON.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallJson {
    pain_now: Value,
    relief_percent: Value,
    #[serde(default)]
    problems: Option<String>,
}

fn as_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    }
}

/// `POST /api/v1/cases/{id}/follow-up` (nurses): records the call and closes the case.
pub async fn api_record(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<CallJson>, JsonRejection>,
) -> Response {
    let result = async {
        let case = parse_case_id(&id)?;
        let Json(body) = body.map_err(|e| {
            ApiError(AppError::BadRequest(format!(
                "the body is not a follow-up: {e}"
            )))
        })?;
        let form = FollowUpForm {
            pain_now: as_text(&body.pain_now),
            relief_percent: as_text(&body.relief_percent),
            problems: body.problems.unwrap_or_default(),
        };
        let answers = match form.check() {
            Ok(a) => a,
            Err(errors) => {
                return Ok((
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(json!({"error": {
                        "status": 422, "code": "invalid", "message": errors.to_string(),
                        "fields": errors.0.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
                    }})),
                )
                    .into_response());
            }
        };
        let recorded = record(&state, &caller.actor(), case, &answers)
            .await
            .map_err(case_error)?;
        Ok::<_, ApiError>(
            (StatusCode::CREATED, Json(follow_up_json(&state, &recorded))).into_response(),
        )
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/v1/outcomes`.
pub async fn api_outcomes(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let (all, catalogue) = computed(&state, &caller.actor()).await?;
    let one = |o: &ProcedureOutcome| {
        json!({
            "procedure": o.procedure_code,
            "name": catalogue.iter().find(|p| p.code == o.procedure_code).map(|p| p.name.clone()),
            "done": o.done,
            "complications": Complication::ALL
                .iter()
                .filter(|c| **c != Complication::None)
                .map(|c| (c.as_str().to_owned(), json!(o.complications.get(c).copied().unwrap_or(0))))
                .collect::<serde_json::Map<String, Value>>(),
            "followed_up": o.followed_up,
            "relief_at_least_50": o.relieved_half,
            "relief_at_least_50_percent": o.relieved_half_percent(),
            "early_excluded": o.early_excluded,
        })
    };
    Ok(Json(json!({
        "relief_threshold_percent": RESPONSE_RELIEF_PERCENT,
        "early_days": FOLLOW_UP_EARLY_DAYS,
        "procedures": all.iter().map(one).collect::<Vec<_>>(),
        "total": one(&total(&all)),
    })))
}
