//! The nurse's screening call: a form in the order of the call, the decision shown
//! live as answers go in (htmx posts the form to a preview that stores nothing and
//! reads no patient data), saving, a printable summary, and completing actions.

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use irflow_domain::screening::{Decision, ScreeningDecision, evaluate};
use irflow_domain::{CaseId, CaseState, Role};
use jiff::Timestamp;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::parse_case_id;
use crate::auth::constant_time_eq;
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::session::SignedIn;
use crate::views::{self, form_pairs, local_time};
use crate::{AppError, AppState};

/// Medication rows offered on the form.
const MED_ROWS: usize = 4;

/// One medication row as typed.
#[derive(Debug, Clone, Default)]
pub(crate) struct MedRow {
    drug: String,
    regimen: String,
    last_dose: String,
    last_dose_time: String,
}

/// The form's values as typed (kept on refusal).
#[derive(Debug, Clone, Default)]
pub(crate) struct ScreeningValues {
    meds: Vec<MedRow>,
    thrombotic: Vec<String>,
    inr: String,
    platelets: String,
    crcl: String,
    contrast: String,
    other_allergies: String,
    diabetes: String,
    infection: String,
    antibiotics: String,
    antibiotic_last_dose: String,
    pregnancy: bool,
    escort: String,
    symptoms: String,
    proposed_date: String,
}

impl ScreeningValues {
    fn from_pairs(pairs: &[(String, String)]) -> Self {
        let get = |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.trim().to_owned())
                .unwrap_or_default()
        };
        Self {
            meds: (0..MED_ROWS)
                .map(|i| MedRow {
                    drug: get(&format!("med{i}_drug")),
                    regimen: get(&format!("med{i}_regimen")),
                    last_dose: get(&format!("med{i}_last_dose")),
                    last_dose_time: get(&format!("med{i}_time")),
                })
                .collect(),
            thrombotic: pairs
                .iter()
                .filter(|(k, _)| k == "thrombotic")
                .map(|(_, v)| v.clone())
                .collect(),
            inr: get("inr"),
            platelets: get("platelets"),
            crcl: get("crcl"),
            contrast: get("contrast"),
            other_allergies: get("other_allergies"),
            diabetes: get("diabetes"),
            infection: get("infection"),
            antibiotics: get("antibiotics"),
            antibiotic_last_dose: get("antibiotic_last_dose"),
            pregnancy: get("pregnancy") == "yes",
            escort: get("escort"),
            symptoms: get("symptoms"),
            proposed_date: get("proposed_date"),
        }
    }

    fn blank() -> Self {
        Self {
            meds: vec![MedRow::default(); MED_ROWS],
            ..Self::default()
        }
    }

    /// The facts JSON the API takes, so the form and the API share one parser.
    /// Numbers that do not parse are passed as text, so the parser names the field.
    fn facts(&self) -> Value {
        let num = |s: &str| -> Value {
            if s.is_empty() {
                Value::Null
            } else {
                s.parse::<f64>()
                    .map_or_else(|_| Value::String(s.to_owned()), |n| json!(n))
            }
        };
        let opt = |s: &str| {
            if s.is_empty() {
                Value::Null
            } else {
                Value::String(s.to_owned())
            }
        };
        let meds: Vec<Value> = self
            .meds
            .iter()
            .filter(|m| !m.drug.is_empty())
            .map(|m| {
                let (prevention, regimen) = match m.regimen.as_str() {
                    "primary" | "secondary" => (opt(&m.regimen), Value::Null),
                    r => (Value::Null, opt(r)),
                };
                json!({
                    "drug": m.drug,
                    "regimen": regimen,
                    "prevention": prevention,
                    "last_dose": opt(&m.last_dose),
                    "last_dose_time": opt(&m.last_dose_time),
                })
            })
            .collect();
        let mut facts = json!({
            "medications": meds,
            "thrombotic_risk": self.thrombotic,
            "labs": { "inr": num(&self.inr), "platelets": num(&self.platelets), "creatinine_clearance": num(&self.crcl) },
            "other_allergies": self.other_allergies.split(',').map(str::trim).filter(|a| !a.is_empty()).collect::<Vec<_>>(),
            "pregnancy_possible": self.pregnancy,
            "escort_available": match self.escort.as_str() { "yes" => json!(true), "no" => json!(false), _ => Value::Null },
            "symptoms": opt(&self.symptoms),
            "proposed_date": opt(&self.proposed_date),
        });
        if !self.contrast.is_empty() {
            facts["contrast_allergy"] = json!({ "severity": self.contrast });
        }
        match self.diabetes.as_str() {
            "yes" => facts["diabetes"] = json!({ "insulin": false }),
            "insulin" => facts["diabetes"] = json!({ "insulin": true }),
            _ => {}
        }
        if !self.infection.is_empty() {
            facts["infection"] = json!({ "active": true, "site": self.infection });
        }
        match self.antibiotics.as_str() {
            "active_infection" | "long_term" => {
                facts["antibiotics"] = json!([{ "reason": self.antibiotics, "last_dose": opt(&self.antibiotic_last_dose) }]);
            }
            _ => {}
        }
        facts
    }
}

/// A decision as the page shows it.
pub(crate) struct DecisionView {
    pub(crate) decision: Decision,
    pub(crate) earliest: String,
    pub(crate) unverified: bool,
    pub(crate) pack: String,
    pub(crate) findings: Vec<FindingView>,
}

pub(crate) struct FindingView {
    pub(crate) level: Decision,
    pub(crate) message: String,
    pub(crate) source: String,
    pub(crate) verified: bool,
    pub(crate) action: Option<String>,
    pub(crate) advice: Option<String>,
    pub(crate) premedication: Vec<String>,
}

pub(crate) fn decision_view(d: &ScreeningDecision, tz: &jiff::tz::TimeZone) -> DecisionView {
    DecisionView {
        decision: d.decision,
        earliest: match (&d.earliest_safe_date, &d.earliest_safe_at) {
            (None, _) => "not until the problem has resolved".to_owned(),
            (Some(date), Some(at)) if at.time() != jiff::civil::Time::midnight() => {
                format!("{date}, from {}", at.strftime("%H:%M %Z"))
            }
            (Some(date), _) => date.to_string(),
        },
        unverified: d.uses_unverified_rules(),
        pack: format!("{} {}", d.pack_name, d.pack_version),
        findings: d
            .findings
            .iter()
            .map(|f| FindingView {
                level: f.level,
                message: f.message.clone(),
                source: f.source.clone(),
                verified: f.verified,
                action: f
                    .action
                    .as_ref()
                    .map(|a| format!("{}: {}", a.kind.label(), a.description)),
                advice: f.patient_advice.clone(),
                premedication: f
                    .premedication
                    .iter()
                    .map(|p| match p.at {
                        Some(t) => format!("{} at {}", p.what, local_time(t, tz)),
                        None => {
                            format!("{} {} hours before the appointment", p.what, p.hours_before)
                        }
                    })
                    .collect(),
            })
            .collect(),
    }
}

#[derive(Template)]
#[template(path = "decision.html")]
struct DecisionFragment {
    result: Result<DecisionView, String>,
}

#[derive(Template)]
#[template(path = "screening.html")]
struct ScreeningPage {
    chrome: Chrome,
    case_id: i64,
    patient: String,
    procedure: String,
    procedure_code: String,
    v: ScreeningValues,
    drugs: Vec<String>,
    conditions: Vec<(String, String)>,
    error: Option<String>,
    fragment: DecisionFragment,
    today: String,
}

fn may_screen(who: &SignedIn) -> Result<(), AppError> {
    match who.user.role {
        Role::Nurse | Role::Radiologist | Role::Admin => Ok(()),
        _ => Err(AppError::Forbidden(
            "the screening call is for nurses (radiologists and admins may record it too)"
                .to_owned(),
        )),
    }
}

fn preview(state: &AppState, procedure: &str, v: &ScreeningValues) -> Result<DecisionView, String> {
    let body = v.facts().to_string();
    let facts =
        crate::screening_json::parse_facts(body.as_bytes(), Some(procedure), state.today())?;
    let d = evaluate(state.rules(), &facts, state.time_zone()).map_err(|e| e.to_string())?;
    Ok(decision_view(&d, state.time_zone()))
}

async fn screening_page(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
    v: ScreeningValues,
    error: Option<String>,
) -> Result<ScreeningPage, AppError> {
    may_screen(who)?;
    let d = state
        .store()
        .case_detail(&who.actor(), id)
        .await
        .map_err(case_error)?;
    if !matches!(
        d.case.state,
        CaseState::Screening | CaseState::Deferred | CaseState::AwaitingAction | CaseState::Ready
    ) {
        return Err(AppError::Conflict(format!(
            "screening is done after the referral is accepted and before booking; this case is {}",
            d.case.state.label().to_lowercase()
        )));
    }
    let mut drugs: Vec<String> = state.rules().drugs.iter().map(|d| d.drug.clone()).collect();
    drugs.dedup();
    let fragment = DecisionFragment {
        result: preview(state, &d.case.procedure_code, &v),
    };
    Ok(ScreeningPage {
        chrome: Chrome::new(state, Some(who), "cases"),
        case_id: id.get(),
        patient: format!("{} (born {})", d.case.patient_name(), d.case.date_of_birth),
        procedure: views::order_summary(&d.case),
        procedure_code: d.case.procedure_code.clone(),
        v,
        drugs,
        conditions: state
            .rules()
            .thrombotic_risk
            .iter()
            .map(|c| (c.meta.id.clone(), c.label.clone()))
            .collect(),
        error,
        fragment,
        today: state.today().to_string(),
    })
}

/// `GET /cases/{id}/screening`.
pub async fn screening_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match screening_page(&state, &who, id, ScreeningValues::blank(), None).await {
        Ok(page) => render(&page, StatusCode::OK),
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

/// `POST /cases/{id}/screening/preview`: the decision for the answers so far.
/// Stores nothing and reads no patient data (the procedure code comes with the form).
pub async fn screening_preview(
    State(state): State<AppState>,
    who: SignedIn,
    body: String,
) -> Response {
    if let Err(e) = may_screen(&who) {
        return (e.status(), e.public_message()).into_response();
    }
    let pairs = form_pairs(&body);
    let procedure = pairs
        .iter()
        .find(|(k, _)| k == "procedure")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    let v = ScreeningValues::from_pairs(&pairs);
    let fragment = DecisionFragment {
        result: preview(&state, &procedure, &v),
    };
    match fragment.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => crate::pages::error_page_plain(&AppError::from(e)),
    }
}

/// `POST /cases/{id}/screening`: saves the screening; the case moves on.
pub async fn screening_submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    body: String,
) -> Response {
    let pairs = form_pairs(&body);
    let csrf = pairs
        .iter()
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.as_str())
        .unwrap_or_default();
    if !constant_time_eq(&who.csrf, csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    if let Err(e) = may_screen(&who) {
        return error_page(&state, Some(&who), &e);
    }
    let v = ScreeningValues::from_pairs(&pairs);
    let body = v.facts().to_string();
    match crate::api::screen_case(&state, &who.actor(), id, body.as_bytes()).await {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done=screening")).into_response(),
        Err(e @ (AppError::BadRequest(_) | AppError::Invalid(_) | AppError::Conflict(_))) => {
            match screening_page(&state, &who, id, v, Some(e.public_message())).await {
                Ok(page) => render(&page, StatusCode::UNPROCESSABLE_ENTITY),
                Err(e2) => error_page(&state, Some(&who), &e2),
            }
        }
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

#[derive(Template)]
#[template(path = "screening_summary.html")]
struct SummaryPage {
    chrome: Chrome,
    case_id: i64,
    patient: String,
    procedure: String,
    screened: String,
    facts: Vec<(String, String)>,
    decision: DecisionView,
    actions: Vec<(String, String)>,
}

fn facts_lines(facts: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let s = |v: &Value| v.as_str().map(str::to_owned);
    let meds: Vec<String> = facts["medications"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    let mut t = s(&m["drug"]).unwrap_or_default();
                    for k in ["regimen", "prevention"] {
                        if let Some(r) = s(&m[k]) {
                            t.push_str(&format!(" ({r})"));
                        }
                    }
                    match (s(&m["last_dose"]), s(&m["last_dose_time"])) {
                        (Some(d), Some(tm)) => t.push_str(&format!(", last dose {d} {tm}")),
                        (Some(d), None) => t.push_str(&format!(", last dose {d}")),
                        _ => t.push_str(", still taking"),
                    }
                    t
                })
                .collect()
        })
        .unwrap_or_default();
    out.push((
        "Blood thinners and pain medicines".to_owned(),
        if meds.is_empty() {
            "none".to_owned()
        } else {
            meds.join("; ")
        },
    ));
    let list = |v: &Value| {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .filter(|x| !x.is_empty())
    };
    out.push((
        "High thrombotic risk".to_owned(),
        list(&facts["thrombotic_risk"]).unwrap_or_else(|| "none".to_owned()),
    ));
    let labs: Vec<String> = [
        ("INR", "inr"),
        ("platelets", "platelets"),
        ("creatinine clearance", "creatinine_clearance"),
    ]
    .iter()
    .filter_map(|(label, k)| facts["labs"][*k].as_f64().map(|n| format!("{label} {n}")))
    .collect();
    out.push((
        "Labs".to_owned(),
        if labs.is_empty() {
            "none given".to_owned()
        } else {
            labs.join(", ")
        },
    ));
    out.push((
        "Contrast allergy".to_owned(),
        s(&facts["contrast_allergy"]["severity"])
            .map_or_else(|| "none".to_owned(), |x| format!("{x} reaction")),
    ));
    out.push((
        "Other allergies".to_owned(),
        list(&facts["other_allergies"]).unwrap_or_else(|| "none".to_owned()),
    ));
    out.push((
        "Diabetes".to_owned(),
        match facts["diabetes"]["insulin"].as_bool() {
            Some(true) => "yes, on insulin".to_owned(),
            Some(false) => "yes".to_owned(),
            None => "no".to_owned(),
        },
    ));
    out.push((
        "Active infection".to_owned(),
        s(&facts["infection"]["site"]).map_or_else(|| "no".to_owned(), |x| x.replace('_', " ")),
    ));
    let abx: Vec<String> = facts["antibiotics"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|x| {
                    format!(
                        "{}{}",
                        s(&x["reason"]).unwrap_or_default().replace('_', " "),
                        s(&x["last_dose"])
                            .map(|d| format!(", last dose {d}"))
                            .unwrap_or_else(|| ", still taking".to_owned())
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.push((
        "Antibiotics".to_owned(),
        if abx.is_empty() {
            "none".to_owned()
        } else {
            abx.join("; ")
        },
    ));
    out.push((
        "Possible pregnancy".to_owned(),
        if facts["pregnancy_possible"].as_bool() == Some(true) {
            "yes".to_owned()
        } else {
            "no".to_owned()
        },
    ));
    out.push((
        "Driver home".to_owned(),
        match facts["escort_available"].as_bool() {
            Some(true) => "yes".to_owned(),
            Some(false) => "no: monitoring needed".to_owned(),
            None => "not asked".to_owned(),
        },
    ));
    out.push((
        "Symptoms".to_owned(),
        s(&facts["symptoms"]).unwrap_or_else(|| "not recorded".to_owned()),
    ));
    out
}

/// `GET /cases/{id}/screening/summary`: the latest screening, print-ready.
pub async fn screening_summary(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let d = match state.store().case_detail(&who.actor(), id).await {
        Ok(d) => d,
        Err(e) => return error_page(&state, Some(&who), &case_error(e)),
    };
    let record = match state.store().latest_screening(&who.actor(), id).await {
        Ok(Some(r)) => r,
        Ok(None) => {
            return error_page(
                &state,
                Some(&who),
                &AppError::NotFound("this case has not been screened yet".to_owned()),
            );
        }
        Err(e) => return error_page(&state, Some(&who), &case_error(e)),
    };
    let facts: Value = serde_json::from_str(&record.facts_json).unwrap_or(Value::Null);
    // Re-evaluating the stored facts with the stored pack would need that pack; the
    // summary shows the decision as it was made, from the stored JSON.
    let decision = match stored_decision_view(&record.decision_json) {
        Some(v) => v,
        None => {
            return error_page(
                &state,
                Some(&who),
                &AppError::Internal("stored decision could not be read".to_owned()),
            );
        }
    };
    let page = SummaryPage {
        chrome: Chrome::new(&state, Some(&who), "cases"),
        case_id: id.get(),
        patient: format!(
            "{} (born {}, MRN {})",
            d.case.patient_name(),
            d.case.date_of_birth,
            d.case
                .mrn
                .clone()
                .unwrap_or_else(|| "not recorded".to_owned())
        ),
        procedure: views::order_summary(&d.case),
        screened: format!(
            "{} by {}",
            local_time(record.at, state.time_zone()),
            record.screened_by
        ),
        facts: facts_lines(&facts),
        decision,
        actions: record
            .actions
            .iter()
            .map(|a| {
                (
                    format!("{} ({})", a.description, a.status.as_str()),
                    a.decided_by
                        .clone()
                        .map(|d| format!("decided by {d}"))
                        .unwrap_or_default(),
                )
            })
            .collect(),
    };
    render(&page, StatusCode::OK)
}

/// Rebuilds the page's view of a decision from its stored JSON.
pub(crate) fn stored_decision_view(json: &str) -> Option<DecisionView> {
    let v: Value = serde_json::from_str(json).ok()?;
    let decision: Decision = v["decision"].as_str()?.parse().ok()?;
    Some(DecisionView {
        decision,
        earliest: v["earliest_safe_date"].as_str().map_or_else(
            || "not until the problem has resolved".to_owned(),
            str::to_owned,
        ),
        unverified: v["uses_unverified_rules"].as_bool().unwrap_or(false),
        pack: format!(
            "{} {}",
            v["rule_pack"]["name"].as_str().unwrap_or(""),
            v["rule_pack"]["version"].as_str().unwrap_or("")
        ),
        findings: v["findings"]
            .as_array()?
            .iter()
            .filter_map(|f| {
                Some(FindingView {
                    level: f["severity"].as_str()?.parse().ok()?,
                    message: f["message"].as_str()?.to_owned(),
                    source: f["source"].as_str().unwrap_or("").to_owned(),
                    verified: f["verified"].as_bool().unwrap_or(false),
                    action: f["required_action"]["description"]
                        .as_str()
                        .map(str::to_owned),
                    advice: f["patient_advice"].as_str().map(str::to_owned),
                    premedication: f["premedication"]
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .map(|p| {
                                    format!(
                                        "{} {}",
                                        p["what"].as_str().unwrap_or(""),
                                        p["at"].as_str().map_or_else(
                                            || format!("{} hours before", p["hours_before"]),
                                            |t| format!("at {t}")
                                        )
                                    )
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect(),
    })
}

/// What the action form posts.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    decided_by: String,
    #[serde(default)]
    notes: String,
}

/// `POST /cases/{id}/actions/{action_id}`: completes a screening action from the case page.
pub async fn complete_action(
    State(state): State<AppState>,
    who: SignedIn,
    Path((id, action_id)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let Ok(action_id) = action_id.parse::<i64>() else {
        return error_page(
            &state,
            Some(&who),
            &AppError::BadRequest("unknown action".to_owned()),
        );
    };
    let cleared = f.outcome != "not_cleared";
    let result = state
        .store()
        .complete_action(
            &who.actor(),
            id,
            action_id,
            cleared,
            Some(f.decided_by),
            Some(f.notes),
            Timestamp::now(),
            state.today(),
        )
        .await;
    match result {
        Ok(_) => Redirect::to(&format!("/cases/{id}?done=action")).into_response(),
        Err(e) => {
            let e = case_error(e);
            crate::pages::show_case(
                &state,
                &who,
                id,
                None,
                Some(crate::pages::CaseFormError::Action {
                    id: action_id,
                    message: e.public_message(),
                }),
                e.status(),
            )
            .await
        }
    }
}
