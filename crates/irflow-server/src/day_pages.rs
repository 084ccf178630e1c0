//! The procedure day's pages: today's board (`/today`, which polls its own fragment
//! every 5 seconds with htmx), the pre-procedure checklist with consent and the
//! time-out, and recovery with vital signs and the discharge. Everything they do goes
//! through `procedure_day.rs`, as the API does.

use askama::Template;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use irflow_domain::procedure_day::{
    self as day, Answer, ChecklistItem, EscortPlan, IdentityCheck, Outcome, PlannedLastDose,
    PregnancyStatus,
};
use irflow_domain::{Action, CaseId, CaseState, Role};
use irflow_store::procedure_day::ChecklistRecord;
use jiff::Timestamp;
use serde::Deserialize;

use crate::api::parse_case_id;
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::procedure_day::{
    Board, ChecklistGlance, Column, DayContext, RawEntry, Sent, clock, context, left_words,
    parse_entry, parse_vitals, save_entry, since_words, staff_only,
};
use crate::session::{PageRejection, SignedIn};
use crate::views::form_pairs;
use crate::{AppError, AppState};

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/today", get(today_page))
        .route("/today/board", get(board_fragment))
        .route("/today/check-in/{id}", post(check_in))
        .route(
            "/cases/{id}/checklist",
            get(checklist_page).post(checklist_submit),
        )
        .route("/cases/{id}/start", post(start_submit))
        .route("/cases/{id}/not-treated", post(not_treated_submit))
        .route("/cases/{id}/end", post(end_submit))
        .route("/cases/{id}/recovery", get(recovery_page))
        .route("/cases/{id}/recovery/vitals", post(vitals_submit))
        .route("/cases/{id}/discharge", post(discharge_submit))
}

/// After a step: which, for which case (`?done=started&case=12`).
#[derive(Debug, Default, Deserialize)]
pub struct DoneQuery {
    done: Option<String>,
    case: Option<String>,
    item: Option<String>,
    sent: Option<String>,
}

fn pairs_get(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

fn csrf_ok(who: &SignedIn, pairs: &[(String, String)]) -> bool {
    constant_time_eq(&who.csrf, &pairs_get(pairs, "csrf").unwrap_or_default())
}

/// A staff form posted about one case: its fields and the case, once the CSRF token
/// and the case number check out.
fn case_form(
    who: &SignedIn,
    id: &str,
    body: &str,
) -> Result<(Vec<(String, String)>, irflow_domain::CaseId), AppError> {
    let pairs = form_pairs(body);
    if !csrf_ok(who, &pairs) {
        return Err(forged());
    }
    Ok((pairs, parse_case_id(id)?))
}

fn clinical(role: Role) -> bool {
    matches!(role, Role::Nurse | Role::Radiologist)
}

// ---------------------------------------------------------------- the board

struct RowView {
    case_id: i64,
    time: String,
    patient: String,
    procedure: String,
    room: String,
    radiologist: String,
    arrive_by: String,
    arrived: Option<String>,
    late: bool,
    no_show: bool,
    not_treated: bool,
    checklist_key: &'static str,
    checklist_label: &'static str,
    stopped: Option<String>,
    started: Option<String>,
    ended: Option<String>,
    monitoring: Option<String>,
    monitoring_done: bool,
    discharged: Option<String>,
    early_discharge: bool,
    can_check_in: bool,
    can_start: bool,
    can_send_home: bool,
    can_end: bool,
    can_recover: bool,
}

struct ColView {
    key: &'static str,
    label: &'static str,
    rows: Vec<RowView>,
}

struct SiteView {
    id: i64,
    name: String,
    summary: String,
    columns: Vec<ColView>,
}

fn board_view(state: &AppState, who: &SignedIn, b: &Board) -> Vec<SiteView> {
    let tz = state.time_zone();
    let role = who.user.role;
    b.sites
        .iter()
        .map(|s| {
            let columns: Vec<ColView> = Column::ALL
                .into_iter()
                .map(|col| ColView {
                    key: col.key(),
                    label: col.label(),
                    rows: s
                        .rows
                        .iter()
                        .filter(|r| r.column == col)
                        .map(|r| {
                            let l = &r.listing;
                            let d = r.day.as_ref().map(|d| &d.status);
                            RowView {
                                case_id: l.appointment.case_id.get(),
                                time: clock(l.appointment.start, tz),
                                patient: format!("{}, {}", l.family_name, l.given_name),
                                procedure: l.procedure_name.clone(),
                                room: l.appointment.room_name.clone(),
                                radiologist: l.appointment.radiologist_name.clone(),
                                arrive_by: clock(r.arrive_by, tz),
                                arrived: d.and_then(|d| d.arrived_at).map(|t| clock(t, tz)),
                                late: r.late && col == Column::Arrived,
                                no_show: r.no_show,
                                not_treated: r.not_treated,
                                checklist_key: r.checklist.key(),
                                checklist_label: r.checklist.label(),
                                stopped: r
                                    .day
                                    .as_ref()
                                    .and_then(|d| d.checklist_stopped.clone())
                                    .filter(|_| col == Column::Arrived),
                                started: d.and_then(|d| d.procedure_started_at).map(|t| {
                                    format!(
                                        "started {} ({} ago)",
                                        clock(t, tz),
                                        since_words(t, b.now)
                                    )
                                }),
                                ended: d
                                    .and_then(|d| d.procedure_ended_at)
                                    .map(|t| format!("ended {}", clock(t, tz))),
                                monitoring: match (col, r.minutes_left, r.monitoring_until) {
                                    (Column::Recovery, Some(left), Some(until)) => Some(format!(
                                        "monitored until {}: {}",
                                        clock(until, tz),
                                        left_words(left)
                                    )),
                                    (Column::Recovery, _, _) => {
                                        Some("no monitoring time (an escort drives)".to_owned())
                                    }
                                    _ => None,
                                },
                                monitoring_done: r.minutes_left == Some(0)
                                    || (col == Column::Recovery && r.monitoring_until.is_none()),
                                discharged: d
                                    .and_then(|d| d.discharged_at)
                                    .map(|t| format!("discharged {}", clock(t, tz))),
                                early_discharge: d.is_some_and(|d| d.discharge_override.is_some()),
                                can_check_in: col == Column::Expected
                                    && !r.no_show
                                    && !r.not_treated
                                    && Action::CheckIn.permits(role),
                                can_start: col == Column::Arrived
                                    && r.checklist == ChecklistGlance::Complete
                                    && Action::StartProcedure.permits(role),
                                can_send_home: col == Column::Arrived
                                    && r.checklist == ChecklistGlance::Stopped
                                    && Action::NotTreated.permits(role),
                                can_end: col == Column::InRoom
                                    && Action::EndProcedure.permits(role),
                                can_recover: col == Column::Recovery,
                            }
                        })
                        .collect(),
                })
                .collect();
            let count = |key: &str| {
                columns
                    .iter()
                    .find(|c| c.key == key)
                    .map_or(0, |c| c.rows.len())
            };
            SiteView {
                id: s.id,
                name: s.name.clone(),
                summary: format!(
                    "{} patients · {} here · {} done",
                    s.rows
                        .iter()
                        .filter(|r| !r.no_show && !r.not_treated)
                        .count(),
                    count("arrived") + count("in_room") + count("recovery"),
                    count("discharged")
                ),
                columns,
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "today.html")]
struct TodayPage {
    chrome: Chrome,
    date: String,
    updated: String,
    csrf: String,
    sites: Vec<SiteView>,
    notice: Option<String>,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "today_board.html")]
struct BoardFragment {
    updated: String,
    csrf: String,
    sites: Vec<SiteView>,
}

async fn today_view(
    state: &AppState,
    who: &SignedIn,
    notice: Option<String>,
    error: Option<String>,
) -> Result<TodayPage, AppError> {
    let b = crate::procedure_day::board(state, &who.actor()).await?;
    let tz = state.time_zone();
    Ok(TodayPage {
        chrome: Chrome::new(state, Some(who), "today"),
        date: b
            .date
            .to_zoned_datetime(tz.clone())
            .map(|z| z.strftime("%A, %B %-d, %Y").to_string())
            .unwrap_or_else(|_| b.date.to_string()),
        updated: clock(b.now, tz),
        csrf: who.csrf.clone(),
        sites: board_view(state, who, &b),
        notice,
        error,
    })
}

fn done_notice(q: &DoneQuery) -> Option<String> {
    let case = q.case.as_deref().unwrap_or("");
    Some(match q.done.as_deref()? {
        "check_in" => format!("Case {case}: checked in."),
        "started" => format!("Case {case}: the procedure started."),
        "ended" => format!("Case {case}: the procedure ended; recovery began."),
        "discharged" => format!("Case {case}: discharged."),
        "not_treated" => format!(
            "Case {case}: not treated today. The booking was released and the case is ready to book again."
        ),
        _ => return None,
    })
}

/// `GET /today`: today's board, per site: expected, arrived, in the room, recovery,
/// discharged. The board refreshes itself every 5 seconds (htmx polls `/today/board`).
pub async fn today_page(
    State(state): State<AppState>,
    who: SignedIn,
    q: Result<Query<DoneQuery>, QueryRejection>,
) -> Response {
    // A notice is a courtesy: an address that cannot be read just shows none.
    let q = q.map(|Query(q)| q).unwrap_or_default();
    match today_view(&state, &who, done_notice(&q), None).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// `GET /today/board`: the board's body, for the page's polling. Without a session it
/// answers 286, which tells htmx to stop polling, and says why.
pub async fn board_fragment(
    State(state): State<AppState>,
    who: Result<SignedIn, PageRejection>,
) -> Response {
    let Ok(who) = who else {
        return (
            StatusCode::from_u16(286).unwrap_or(StatusCode::OK),
            axum::response::Html(
                "<p class=\"form-error\" role=\"alert\">Your session has ended: <a href=\"/today\">sign in again</a> to see the board.</p>",
            ),
        )
            .into_response();
    };
    let result = crate::procedure_day::board(&state, &who.actor()).await;
    match result {
        Ok(b) => {
            let page = BoardFragment {
                updated: clock(b.now, state.time_zone()),
                csrf: who.csrf.clone(),
                sites: board_view(&state, &who, &b),
            };
            let mut r = render(&page, StatusCode::OK);
            r.headers_mut()
                .insert("vary", HeaderValue::from_static("HX-Request"));
            r
        }
        Err(e) => {
            e.log();
            (
                e.status(),
                axum::response::Html(format!(
                    "<p class=\"form-error\" role=\"alert\">{}</p>",
                    askama::filters::escape(e.public_message(), askama::filters::Html)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                )),
            )
                .into_response()
        }
    }
}

async fn today_with_error(state: &AppState, who: &SignedIn, e: AppError) -> Response {
    if matches!(e, AppError::Internal(_) | AppError::NotFound(_)) {
        return error_page(state, Some(who), &e);
    }
    e.log();
    match today_view(state, who, None, Some(e.public_message())).await {
        Ok(page) => render(&page, e.status()),
        Err(_) => error_page(state, Some(who), &e),
    }
}

/// `POST /today/check-in/{id}`: the calendar's check-in, from the board.
pub async fn check_in(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (_, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match crate::calendar_pages::attend(&state, &who, id, Action::CheckIn, None).await {
        Ok(()) => Redirect::to(&format!("/today?done=check_in&case={id}")).into_response(),
        Err(e) => today_with_error(&state, &who, e).await,
    }
}

// ---------------------------------------------------------------- the checklist

struct ItemView {
    key: &'static str,
    label: &'static str,
    required: bool,
    state: &'static str,
    recorded: Option<String>,
    by: Option<String>,
    why: Option<String>,
    error: Option<String>,
}

struct DrugView {
    drug: String,
    planned: String,
    hour_based: bool,
    continued: bool,
    date: String,
    time: String,
}

#[derive(Template)]
#[template(path = "checklist.html")]
struct ChecklistPage {
    chrome: Chrome,
    title: String,
    case_id: i64,
    patient_name: String,
    date_of_birth: String,
    mrn: Option<String>,
    procedure: String,
    levels: String,
    side: String,
    appointment: String,
    state_label: &'static str,
    open: bool,
    can_edit: bool,
    can_start: bool,
    /// The checklist is stopped and this role may send the patient home untreated.
    can_send_home: bool,
    not_treated_reason: String,
    closed_note: Option<String>,
    done_count: usize,
    required_count: usize,
    complete: bool,
    stops: Vec<(String, String)>,
    missing: Vec<String>,
    notice: Option<String>,
    error: Option<String>,
    items: Vec<ItemView>,
    risks: Vec<String>,
    risks_source: String,
    risks_verified: bool,
    signer_default: String,
    witness_default: String,
    signature_png: Option<String>,
    escort_screening: String,
    monitoring_minutes: u32,
    monitoring_source: String,
    drugs: Vec<DrugView>,
    glucose_limit: String,
    allergies: Vec<String>,
    premedication: Vec<String>,
    time_out_ready: bool,
}

fn answer_words(a: &Answer) -> String {
    match a {
        Answer::Identity(IdentityCheck::NameAndDateOfBirth) => {
            "name and date of birth confirmed".to_owned()
        }
        Answer::Identity(IdentityCheck::NameAndMrn) => "name and MRN confirmed".to_owned(),
        Answer::Identity(IdentityCheck::Mismatch) => "identifiers did not match".to_owned(),
        Answer::Escort(EscortPlan::Escort) => "an escort drives the patient home".to_owned(),
        Answer::Escort(EscortPlan::Monitoring) => {
            "the patient drives: monitored after the procedure".to_owned()
        }
        Answer::BloodThinners(doses) => doses
            .iter()
            .map(|d| match d.time {
                Some(t) => format!("{}: last dose {} {}", d.drug, d.date, t.strftime("%H:%M")),
                None => format!("{}: last dose {}", d.drug, d.date),
            })
            .collect::<Vec<_>>()
            .join("; "),
        Answer::Glucose(v) => format!("{v} mg/dL"),
        Answer::AllergiesReviewed => "reviewed with the patient".to_owned(),
        Answer::Premedication(true) => "taken as planned".to_owned(),
        Answer::Premedication(false) => "not taken".to_owned(),
        Answer::Pregnancy(PregnancyStatus::NotPossible) => "no possibility of pregnancy".to_owned(),
        Answer::Pregnancy(PregnancyStatus::TestNegative) => "pregnancy test negative".to_owned(),
        Answer::Pregnancy(PregnancyStatus::Possible) => "may be pregnant".to_owned(),
    }
}

fn checklist_done_notice(q: &DoneQuery) -> Option<String> {
    let item = q
        .item
        .as_deref()
        .and_then(|i| match i {
            "consent" => Some("Consent"),
            "time_out" => Some("The time-out"),
            other => other.parse::<ChecklistItem>().ok().map(|i| i.label()),
        })
        .unwrap_or("The entry");
    match q.done.as_deref()? {
        "saved" => Some(format!("{item}: recorded.")),
        "stopped" => Some(format!(
            "{item}: recorded — and it stops the checklist (see below)."
        )),
        _ => None,
    }
}

#[allow(clippy::too_many_lines)]
async fn checklist_view(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    notice: Option<String>,
    error: Option<(String, String)>,
    typed: Option<&RawEntry>,
) -> Result<ChecklistPage, AppError> {
    let actor = who.actor();
    staff_only(state, &actor).await?;
    let ctx: DayContext = context(state, &actor, id).await?;
    let rec: Option<ChecklistRecord> = state
        .store()
        .checklist_record(&actor, id)
        .await
        .map_err(case_error)?;
    let tz = state.time_zone();
    let today = state.today();
    let c = &ctx.detail.case;
    let recorded = rec
        .as_ref()
        .map(ChecklistRecord::recorded)
        .unwrap_or_default();
    let status = day::status(&ctx.requirements, &recorded, today);
    let open = c.state == CaseState::Arrived;
    let can_edit = open && clinical(who.user.role);
    let pack = state.rules();
    let (error_item, error_message) = match error {
        Some((i, m)) => (Some(i), Some(m)),
        None => (None, None),
    };
    let mut items = Vec::new();
    for item in ChecklistItem::ALL {
        let required = status.required.contains(&item);
        let answer = rec.as_ref().and_then(|r| r.answer(item));
        let (recorded_text, by) = match item {
            ChecklistItem::Consent => match rec.as_ref().and_then(|r| r.consent.as_ref()) {
                Some(cr) => (
                    Some(format!(
                        "{} by {}, witnessed by {}",
                        if cr.consent.method == day::ConsentMethod::OnScreen {
                            "signed on screen"
                        } else {
                            "signed on paper"
                        },
                        cr.consent.signer,
                        cr.consent.witness
                    )),
                    Some(format!(
                        "{} at {}",
                        cr.recorded_by,
                        clock(cr.recorded_at, tz)
                    )),
                ),
                None => (None, None),
            },
            ChecklistItem::TimeOut => match rec.as_ref().and_then(|r| r.time_out.as_ref()) {
                Some(t) => (
                    Some(match t.time_out.outcome() {
                        Outcome::Done => "patient, procedure, level and side confirmed".to_owned(),
                        Outcome::Stop(why) => why,
                    }),
                    Some(format!("{} at {}", t.recorded_by, clock(t.recorded_at, tz))),
                ),
                None => (None, None),
            },
            _ => match answer {
                Some(a) => (
                    Some(match &a.note {
                        Some(n) => format!("{} — {n}", answer_words(&a.answer)),
                        None => answer_words(&a.answer),
                    }),
                    Some(format!("{} at {}", a.recorded_by, clock(a.recorded_at, tz))),
                ),
                None => (None, None),
            },
        };
        let stop = status.stops.iter().find(|(i, _)| *i == item);
        let state_key = if !required {
            "optional"
        } else if stop.is_some() {
            "stop"
        } else if status.done.contains(&item) {
            "done"
        } else {
            "missing"
        };
        let key = item.as_str();
        items.push(ItemView {
            key,
            label: item.label(),
            required,
            state: state_key,
            recorded: recorded_text,
            by,
            why: stop.map(|(_, why)| why.clone()),
            error: error_item
                .as_deref()
                .filter(|i| *i == key)
                .and(error_message.clone()),
        });
    }
    let typed_dose = |drug: &str, part: &str| {
        typed
            .and_then(|t| {
                t.fields
                    .iter()
                    .rev()
                    .find(|(k, _)| *k == format!("dose-{drug}-{part}"))
            })
            .map(|(_, v)| v.clone())
    };
    let reported = rec
        .as_ref()
        .and_then(|r| r.answer(ChecklistItem::BloodThinners))
        .and_then(|a| match &a.answer {
            Answer::BloodThinners(d) => Some(d.clone()),
            _ => None,
        })
        .unwrap_or_default();
    let drugs = ctx
        .requirements
        .held_drugs
        .iter()
        .map(|h| {
            let r = reported.iter().find(|d| d.drug == h.drug);
            DrugView {
                drug: h.drug.clone(),
                planned: h.last_dose.map_or_else(
                    || "no planned date (no appointment time)".to_owned(),
                    |p| p.to_string(),
                ),
                hour_based: matches!(h.last_dose, Some(PlannedLastDose::At(_))),
                continued: h.continued,
                date: typed_dose(&h.drug, "date")
                    .or_else(|| r.map(|d| d.date.to_string()))
                    .unwrap_or_default(),
                time: typed_dose(&h.drug, "time")
                    .or_else(|| r.and_then(|d| d.time.map(|t| t.strftime("%H:%M").to_string())))
                    .unwrap_or_default(),
            }
        })
        .collect();
    let appointment = state
        .store()
        .appointment_for_case(&actor, id)
        .await
        .map_err(case_error)?;
    let closed_note = match c.state {
        CaseState::Arrived => None,
        CaseState::Scheduled | CaseState::Confirmed => Some(
            "The patient has not checked in yet: check them in from today's board first."
                .to_owned(),
        ),
        CaseState::InProcedure
        | CaseState::Recovery
        | CaseState::Discharged
        | CaseState::FollowedUp => Some(
            "The procedure has started: the checklist is closed and kept as recorded.".to_owned(),
        ),
        other => Some(format!(
            "The case is {}: it is not on a procedure day.",
            other.label().to_lowercase()
        )),
    };
    let allergies: Vec<String> = ctx
        .decision
        .as_ref()
        .map(|d| {
            d.findings
                .iter()
                .filter(|f| {
                    f.rule_id == pack.contrast.meta.id || f.rule_id == pack.policy.agent_allergy.id
                })
                .map(|f| f.message.clone())
                .collect()
        })
        .unwrap_or_default();
    Ok(ChecklistPage {
        chrome: Chrome::new(state, Some(who), "today"),
        title: format!("Checklist · {}", c.patient_name()),
        case_id: id.get(),
        patient_name: c.patient_name(),
        date_of_birth: ctx.detail.patient.date_of_birth.to_string(),
        mrn: ctx
            .detail
            .patient
            .mrn
            .clone()
            .filter(|m| !m.trim().is_empty()),
        procedure: format!("{} (CPT {})", c.procedure_name, c.procedure_code),
        levels: c
            .levels
            .clone()
            .unwrap_or_else(|| "none ordered".to_owned()),
        side: c
            .side
            .map_or_else(|| "not given".to_owned(), |s| s.label().to_lowercase()),
        appointment: appointment.as_ref().map_or_else(
            || "no booked appointment".to_owned(),
            |a| {
                format!(
                    "{} in {} with {}",
                    clock(a.start, tz),
                    a.room_name,
                    a.radiologist_name
                )
            },
        ),
        state_label: c.state.label(),
        open,
        can_edit,
        can_start: open && status.is_complete() && Action::StartProcedure.permits(who.user.role),
        can_send_home: open
            && !status.stops.is_empty()
            && Action::NotTreated.permits(who.user.role),
        not_treated_reason: typed
            .and_then(|t| t.get("reason"))
            .unwrap_or_default()
            .to_owned(),
        closed_note,
        done_count: status.done.len(),
        required_count: status.required.len(),
        complete: status.is_complete(),
        stops: status
            .stops
            .iter()
            .map(|(i, why)| (i.label().to_owned(), why.clone()))
            .collect(),
        missing: status
            .missing
            .iter()
            .map(|i| i.label().to_owned())
            .collect(),
        notice,
        error: error_message,
        items,
        risks: pack.day.risks.clone(),
        risks_source: pack.cite(&pack.day.consent),
        risks_verified: pack.day.consent.verified,
        signer_default: format!("{} {}", c.given_name, c.family_name),
        witness_default: who.user.display_name.clone(),
        signature_png: rec
            .as_ref()
            .and_then(|r| r.consent.as_ref())
            .and_then(|c| c.consent.signature_png.clone()),
        escort_screening: match ctx.letter.escort {
            Some(true) => "The screening call recorded an escort.".to_owned(),
            Some(false) => format!(
                "The screening call recorded no escort: {} minutes of monitoring were planned.",
                ctx.requirements.monitoring_minutes
            ),
            None => "The screening call did not record how the patient gets home.".to_owned(),
        },
        monitoring_minutes: ctx.requirements.monitoring_minutes,
        monitoring_source: pack.cite(&pack.policy.monitoring),
        drugs,
        glucose_limit: match pack.day.glucose_max_mg_dl {
            Some(max) => format!(
                "The department's limit is {max} mg/dL ({}).",
                pack.cite(&pack.day.glucose)
            ),
            None => format!(
                "No glucose limit is set: no society sets one ({}). Record the value; the radiologist decides if it is high.",
                pack.cite(&pack.day.glucose)
            ),
        },
        allergies,
        premedication: ctx
            .letter
            .premedication
            .iter()
            .map(|p| match &p.at {
                Some(at) => format!("{} at {}", p.what, at.strftime("%H:%M")),
                None => format!("{}, {} hours before", p.what, p.hours_before),
            })
            .collect(),
        time_out_ready: status.ready_for_time_out().is_ok(),
    })
}

/// `GET /cases/{id}/checklist`: the pre-procedure checklist of an arrived patient.
pub async fn checklist_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    q: Result<Query<DoneQuery>, QueryRejection>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let notice = checklist_done_notice(&q).or_else(|| done_notice(&q));
    match checklist_view(&state, &who, id, notice, None, None).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// `POST /cases/{id}/checklist`: one item (`item=...` and its fields).
pub async fn checklist_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let raw = RawEntry::from_form(pairs);
    let item = raw.item.trim().to_owned();
    let result = match parse_entry(&state, &raw) {
        Ok(entry) => save_entry(&state, &who.actor(), id, entry).await,
        Err(e) => Err(e),
    };
    match result {
        Ok(saved) => {
            let done = if matches!(saved.outcome, Outcome::Stop(_)) {
                "stopped"
            } else {
                "saved"
            };
            Redirect::to(&format!(
                "/cases/{id}/checklist?done={done}&item={}#item-{}",
                saved.item.as_str(),
                saved.item.as_str()
            ))
            .into_response()
        }
        Err(e @ (AppError::Internal(_) | AppError::NotFound(_) | AppError::Forbidden(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            e.log();
            let item_key = match &e {
                AppError::Field { field, .. }
                    if ChecklistItem::ALL.iter().any(|i| i.as_str() == *field) =>
                {
                    (*field).to_owned()
                }
                _ => item,
            };
            let message = match &e {
                AppError::Field { message, .. } => message.clone(),
                other => other.public_message(),
            };
            match checklist_view(
                &state,
                &who,
                id,
                None,
                Some((item_key, message)),
                Some(&raw),
            )
            .await
            {
                Ok(page) => render(&page, e.status()),
                Err(_) => error_page(&state, Some(&who), &e),
            }
        }
    }
}

/// Where a start or end form came from.
fn back_of(pairs: &[(String, String)]) -> &'static str {
    match pairs_get(pairs, "back").as_deref() {
        Some("today") => "today",
        Some("recovery") => "recovery",
        _ => "checklist",
    }
}

/// `POST /cases/{id}/start` (radiologist, nurse): the procedure starts, once the
/// checklist is complete; otherwise the page says what is missing.
pub async fn start_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match crate::procedure_day::start(&state, &who.actor(), id).await {
        Ok(_) => Redirect::to(&format!("/today?done=started&case={id}")).into_response(),
        Err(e) if back_of(&pairs) == "today" => today_with_error(&state, &who, e).await,
        Err(e @ (AppError::Internal(_) | AppError::NotFound(_) | AppError::Forbidden(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            e.log();
            match checklist_view(
                &state,
                &who,
                id,
                None,
                Some(("start".to_owned(), e.public_message())),
                None,
            )
            .await
            {
                Ok(page) => render(&page, e.status()),
                Err(_) => error_page(&state, Some(&who), &e),
            }
        }
    }
}

/// `POST /cases/{id}/not-treated` (nurse, radiologist, scheduler): the patient goes
/// home untreated with the reason; the booking is released and the case is ready to
/// book again. A refusal shows the checklist again with the reason as typed.
pub async fn not_treated_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let reason = pairs_get(&pairs, "reason").unwrap_or_default();
    match crate::procedure_day::not_treated(&state, &who.actor(), id, &reason).await {
        Ok(_) => Redirect::to(&format!("/today?done=not_treated&case={id}")).into_response(),
        Err(e @ (AppError::Internal(_) | AppError::NotFound(_) | AppError::Forbidden(_))) => {
            error_page(&state, Some(&who), &e)
        }
        Err(e) => {
            e.log();
            let typed = RawEntry::from_form(pairs);
            match checklist_view(
                &state,
                &who,
                id,
                None,
                Some(("not_treated".to_owned(), e.public_message())),
                Some(&typed),
            )
            .await
            {
                Ok(page) => render(&page, e.status()),
                Err(_) => error_page(&state, Some(&who), &e),
            }
        }
    }
}

/// `POST /cases/{id}/end` (radiologist, nurse): the procedure ends; recovery begins.
pub async fn end_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match crate::procedure_day::end(&state, &who.actor(), id).await {
        Ok(_) if back_of(&pairs) == "today" => {
            Redirect::to(&format!("/today?done=ended&case={id}")).into_response()
        }
        Ok(_) => Redirect::to(&format!("/cases/{id}/recovery?done=ended")).into_response(),
        Err(e) if back_of(&pairs) == "today" => today_with_error(&state, &who, e).await,
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

// ---------------------------------------------------------------- recovery

struct VitalsRow {
    time: String,
    bp: String,
    pulse: String,
    spo2: String,
    pain: String,
    notes: String,
    by: String,
}

struct CriterionView {
    id: String,
    label: String,
    source: String,
    verified: bool,
    checked: bool,
}

#[derive(Template)]
#[template(path = "recovery.html")]
struct RecoveryPage {
    chrome: Chrome,
    title: String,
    case_id: i64,
    patient_name: String,
    procedure: String,
    state_label: &'static str,
    in_recovery: bool,
    started: Option<String>,
    ended: Option<String>,
    monitoring: String,
    /// While in recovery: the end of monitoring (RFC 3339) and the minutes left as
    /// words; the page's script counts down from it.
    left: Option<(String, String)>,
    early: bool,
    monitoring_source: String,
    vitals: Vec<VitalsRow>,
    can_record_vitals: bool,
    vitals_form: Vec<(String, String)>,
    criteria: Vec<CriterionView>,
    can_discharge: bool,
    override_reason: String,
    discharged: Option<String>,
    override_used: Option<String>,
    sent_note: Option<String>,
    notice: Option<String>,
    error: Option<String>,
    error_in: &'static str,
}

impl RecoveryPage {
    fn typed(&self, name: &str) -> &str {
        self.vitals_form
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

struct RecoveryInput {
    error: Option<(String, &'static str)>,
    vitals_form: Vec<(String, String)>,
    confirmed: Option<Vec<String>>,
    override_reason: String,
}

fn num(v: Option<u32>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "—".to_owned())
}

async fn recovery_view(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    notice: Option<String>,
    sent_note: Option<String>,
    input: RecoveryInput,
) -> Result<RecoveryPage, AppError> {
    let actor = who.actor();
    staff_only(state, &actor).await?;
    let detail = state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(case_error)?;
    let days = state
        .store()
        .day_records(&actor, &[id])
        .await
        .map_err(case_error)?;
    let vitals = state.store().vitals(&actor, id).await.map_err(case_error)?;
    let tz = state.time_zone();
    let now = Timestamp::now();
    let c = &detail.case;
    let d = days.first().map(|d| &d.status);
    let until = d.and_then(|d| {
        d.procedure_ended_at
            .and_then(|e| day::monitoring_until(e, d.monitoring_minutes))
    });
    let in_recovery = c.state == CaseState::Recovery;
    let left = match (d.and_then(|d| d.monitoring_minutes), until) {
        (Some(_), Some(u)) if in_recovery => {
            Some((u.to_string(), left_words(day::minutes_left(u, now))))
        }
        _ => None,
    };
    let monitoring = match (d.and_then(|d| d.monitoring_minutes), until) {
        (Some(m), Some(u)) if in_recovery => format!(
            "The patient drives home: monitored {m} minutes, until {}",
            clock(u, tz),
        ),
        (Some(m), Some(u)) => format!("Monitored {m} minutes, until {}.", clock(u, tz)),
        (_, None) if d.and_then(|d| d.procedure_ended_at).is_none() => {
            "Monitoring starts when the procedure ends.".to_owned()
        }
        _ => "An escort drives the patient home: no minimum monitoring time.".to_owned(),
    };
    let pack = state.rules();
    let confirmed = input.confirmed.clone().unwrap_or_default();
    Ok(RecoveryPage {
        chrome: Chrome::new(state, Some(who), "today"),
        title: format!("Recovery · {}", c.patient_name()),
        case_id: id.get(),
        patient_name: c.patient_name(),
        procedure: format!("{} (CPT {})", c.procedure_name, c.procedure_code),
        state_label: c.state.label(),
        in_recovery,
        started: d.and_then(|d| d.procedure_started_at).map(|t| clock(t, tz)),
        ended: d.and_then(|d| d.procedure_ended_at).map(|t| clock(t, tz)),
        monitoring,
        left,
        early: in_recovery && until.is_some_and(|u| now < u),
        monitoring_source: pack.cite(&pack.policy.monitoring),
        vitals: vitals
            .iter()
            .map(|v| VitalsRow {
                time: clock(v.taken_at, tz),
                bp: match (v.vitals.systolic, v.vitals.diastolic) {
                    (Some(s), Some(d)) => format!("{s}/{d}"),
                    _ => "—".to_owned(),
                },
                pulse: num(v.vitals.pulse),
                spo2: v
                    .vitals
                    .spo2
                    .map_or_else(|| "—".to_owned(), |s| format!("{s}%")),
                pain: num(v.vitals.pain),
                notes: v.vitals.notes.clone(),
                by: v.recorded_by.clone(),
            })
            .collect(),
        can_record_vitals: clinical(who.user.role)
            && matches!(
                c.state,
                CaseState::Arrived | CaseState::InProcedure | CaseState::Recovery
            ),
        vitals_form: input.vitals_form,
        criteria: pack
            .day
            .discharge
            .iter()
            .map(|cr| CriterionView {
                id: cr.meta.id.clone(),
                label: cr.label.clone(),
                source: pack.cite(&cr.meta),
                verified: cr.meta.verified,
                checked: confirmed.contains(&cr.meta.id),
            })
            .collect(),
        can_discharge: in_recovery && Action::Discharge.permits(who.user.role),
        override_reason: input.override_reason,
        discharged: d.and_then(|d| d.discharged_at).map(|t| {
            format!(
                "{}{}",
                clock(t, tz),
                days.first()
                    .and_then(|d| d.discharged_by.clone())
                    .map(|b| format!(" by {b}"))
                    .unwrap_or_default()
            )
        }),
        override_used: d.and_then(|d| d.discharge_override.clone()),
        sent_note,
        notice,
        error: input.error.as_ref().map(|e| e.0.clone()),
        error_in: input.error.as_ref().map_or("", |e| e.1),
    })
}

fn recovery_notice(q: &DoneQuery) -> Option<String> {
    Some(match q.done.as_deref()? {
        "ended" => "The procedure ended; recovery began.".to_owned(),
        "vitals" => "Vital signs recorded.".to_owned(),
        "discharged" => "Discharged.".to_owned(),
        _ => return None,
    })
}

fn sent_note(q: &DoneQuery) -> Option<String> {
    let sent = match q.sent.as_deref()? {
        "email" => Sent::Queued {
            channel: "email",
            message_id: 0,
        },
        "sms" => Sent::Queued {
            channel: "sms",
            message_id: 0,
        },
        "none" => Sent::NoContact,
        _ => Sent::Failed("see the case's messages".to_owned()),
    };
    Some(sent.describe())
}

/// `GET /cases/{id}/recovery`: monitoring time left, vital signs, discharge.
pub async fn recovery_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    q: Result<Query<DoneQuery>, QueryRejection>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let q = q.map(|Query(q)| q).unwrap_or_default();
    let input = RecoveryInput {
        error: None,
        vitals_form: Vec::new(),
        confirmed: None,
        override_reason: String::new(),
    };
    match recovery_view(&state, &who, id, recovery_notice(&q), sent_note(&q), input).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

async fn recovery_with_error(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    e: AppError,
    input: RecoveryInput,
) -> Response {
    if matches!(
        e,
        AppError::Internal(_) | AppError::NotFound(_) | AppError::Forbidden(_)
    ) {
        return error_page(state, Some(who), &e);
    }
    e.log();
    let status = e.status();
    let input = RecoveryInput {
        error: Some((
            e.public_message(),
            input.error.as_ref().map_or("discharge", |x| x.1),
        )),
        ..input
    };
    match recovery_view(state, who, id, None, None, input).await {
        Ok(page) => render(&page, status),
        Err(_) => error_page(state, Some(who), &e),
    }
}

/// `POST /cases/{id}/recovery/vitals`.
pub async fn vitals_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let result = match parse_vitals(|k| pairs_get(&pairs, k), state.time_zone(), state.today()) {
        Ok((vitals, taken_at)) => {
            crate::procedure_day::add_vitals(&state, &who.actor(), id, &vitals, taken_at).await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(_) => Redirect::to(&format!("/cases/{id}/recovery?done=vitals#vitals")).into_response(),
        Err(e) => {
            let input = RecoveryInput {
                error: Some((String::new(), "vitals")),
                vitals_form: pairs,
                confirmed: None,
                override_reason: String::new(),
            };
            recovery_with_error(&state, &who, id, e, input).await
        }
    }
}

/// `POST /cases/{id}/discharge` (nurse): criteria checked; before the end of the
/// monitoring only with an override reason. Then the instructions are sent.
pub async fn discharge_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let (pairs, id) = match case_form(&who, &id, &body) {
        Ok(form) => form,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let confirmed: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "criteria")
        .map(|(_, v)| v.clone())
        .collect();
    let override_reason = pairs_get(&pairs, "override_reason").unwrap_or_default();
    let result = crate::procedure_day::discharge(
        &state,
        &who.actor(),
        id,
        confirmed.clone(),
        Some(override_reason.clone()),
    )
    .await;
    match result {
        Ok(done) => {
            let sent = match &done.sent {
                Sent::Queued { channel, .. } => *channel,
                Sent::NoContact => "none",
                Sent::Failed(_) => "failed",
            };
            Redirect::to(&format!("/cases/{id}/recovery?done=discharged&sent={sent}"))
                .into_response()
        }
        Err(e) => {
            let input = RecoveryInput {
                error: Some((String::new(), "discharge")),
                vitals_form: Vec::new(),
                confirmed: Some(confirmed),
                override_reason,
            };
            recovery_with_error(&state, &who, id, e, input).await
        }
    }
}
