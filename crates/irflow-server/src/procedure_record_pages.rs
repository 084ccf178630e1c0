//! The procedure record: the radiologist's form at `/cases/{id}/procedure-record`
//! (save a draft, sign by re-entering their password), its JSON API, and the report
//! to the referrer that signing sends.
//!
//! The form is checked by the domain against the catalogue and the rule pack (levels
//! in the procedure's regions, agents and amounts, radiation fields for the guidance,
//! pain 0-10); a refused signature stores nothing and shows every problem beside its
//! field. For transforaminal procedures the steroid field shows the pack's suggestion
//! of a non-particulate steroid with its citation (FDA-2014).

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use irflow_domain::procedure_record::{
    Complication, ProcedureRecordDetails, ProcedureRecordForm, particulate_warning,
};
use irflow_domain::{Actor, CaseId, FieldErrors, Role};
use irflow_store::{
    AuditOutcome, CaseDetail, NewAuditEvent, NewMessage, ProcedureRecordVersion, SignedProcedure,
    SignedRecord, StoreError,
};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::{constant_time_eq, decoy_hash, verify_password};
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::procedure_report::{Report, ReportFacts, record_lines, report};
use crate::session::{ApiCaller, SignedIn};
use crate::views::{local_time, rfc3339_local};
use crate::{AppError, AppState};

/// The outbox kind of the report to the referrer.
pub(crate) const REPORT_KIND: &str = "procedure_report";

/// The routes of the record page and its API.
pub(crate) fn routes() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/cases/{id}/procedure-record", get(page).post(submit))
        .route(
            "/api/v1/cases/{id}/procedure-record",
            get(api_get).put(api_draft),
        )
        .route("/api/v1/cases/{id}/procedure-record/sign", post(api_sign))
}

// ---------------------------------------------------------------- signing

/// Why a signature was refused.
#[derive(Debug)]
pub(crate) enum SignError {
    /// Fields to fix (nothing stored).
    Fields(FieldErrors),
    /// Anything else.
    App(AppError),
}

impl From<AppError> for SignError {
    fn from(e: AppError) -> Self {
        SignError::App(e)
    }
}

/// Checks a form and signs it as `actor`, then sends the report. Nothing is stored
/// when the form is refused.
pub(crate) async fn sign(
    state: &AppState,
    actor: &Actor,
    signer_name: &str,
    case: CaseId,
    form: &ProcedureRecordForm,
) -> Result<SignedRecord, SignError> {
    if actor.role != Some(Role::Radiologist) {
        state
            .store()
            .record_audit(
                NewAuditEvent::new(actor, "sign", "procedure_record", AuditOutcome::Denied)
                    .entity(case),
            )
            .await
            .map_err(AppError::from)?;
        return Err(SignError::App(AppError::Forbidden(
            "the procedure record is written and signed by a radiologist".to_owned(),
        )));
    }
    let versions = state
        .store()
        .procedure_record_versions(actor, case)
        .await
        .map_err(case_error)?;
    let amending = versions.iter().any(|v| v.signed.is_some());
    let catalogue = state.store().procedures().await.map_err(AppError::from)?;
    let details = form
        .check(&catalogue, &state.rules().procedure_record, amending)
        .map_err(SignError::Fields)?;
    let signed = state
        .store()
        .sign_procedure_record(actor, signer_name, case, &details, Timestamp::now())
        .await
        .map_err(|e| match e {
            StoreError::Field { field, message } => {
                SignError::Fields(FieldErrors(vec![irflow_domain::FieldError {
                    field,
                    message,
                }]))
            }
            other => SignError::App(case_error(other)),
        })?;
    send_report(state, actor, &signed, Timestamp::now()).await;
    Ok(signed)
}

/// A case's signed procedure with its patient and the procedure's start and end (the
/// procedure day's, else the timeline's).
#[derive(Debug)]
pub(crate) struct Loaded {
    pub(crate) detail: CaseDetail,
    pub(crate) procedure: SignedProcedure,
    pub(crate) started: Option<Timestamp>,
    pub(crate) ended: Option<Timestamp>,
}

/// Loads a case's signed procedure through audited reads.
pub(crate) async fn load_signed(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
) -> Result<Loaded, StoreError> {
    let procedure = state.store().signed_procedure(actor, case).await?;
    let detail = state.store().case_detail(actor, case).await?;
    let day = state.store().day_status(actor, case).await?;
    let started = day
        .as_ref()
        .and_then(|d| d.procedure_started_at)
        .or(procedure.started_at);
    let ended = day
        .as_ref()
        .and_then(|d| d.procedure_ended_at)
        .or(procedure.ended_at);
    Ok(Loaded {
        detail,
        procedure,
        started,
        ended,
    })
}

/// The report of one signed version.
pub(crate) fn report_of(
    state: &AppState,
    loaded: &Loaded,
    version: &ProcedureRecordVersion,
) -> Result<Report, StoreError> {
    let details = version.details()?;
    let p = &loaded.detail.patient;
    let name = format!("{}, {}", p.family_name, p.given_name);
    Ok(report(&ReportFacts {
        department: &state.config().department_name,
        patient_name: &name,
        date_of_birth: p.date_of_birth,
        mrn: p.mrn.as_deref(),
        case_id: loaded.procedure.case_id,
        referrer_name: &loaded.procedure.referrer_name,
        version,
        details: &details,
        started: loaded.started,
        ended: loaded.ended,
        tz: state.time_zone(),
    }))
}

/// Sends the report of a just-signed version to the referrer's email, when known.
/// A failure is logged and audited; the signature stands (the report is also served
/// as a FHIR DocumentReference).
async fn send_report(state: &AppState, actor: &Actor, signed: &SignedRecord, at: Timestamp) {
    let Some(email) = signed.referrer_email.clone() else {
        return;
    };
    let case = signed.record.case_id;
    let sent = async {
        let loaded = load_signed(state, actor, case).await?;
        let r = report_of(state, &loaded, &signed.record)?;
        state
            .store()
            .enqueue_message(
                actor,
                NewMessage {
                    case_id: case,
                    kind: REPORT_KIND.to_owned(),
                    channel: irflow_store::outbox::Channel::Email,
                    recipient: email,
                    subject: r.title.clone(),
                    body_text: r.text,
                    body_html: Some(format!(
                        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title></head><body>{}</body></html>",
                        r.title.replace('&', "&amp;").replace('<', "&lt;"),
                        r.html
                    )),
                    send_after: at,
                },
            )
            .await
    }
    .await;
    if let Err(e) = sent {
        let e = AppError::from(e);
        e.log();
        tracing::warn!(
            error = e.code(),
            "the procedure report could not be queued; the signature stands"
        );
        if state
            .store()
            .record_audit(
                NewAuditEvent::new(
                    actor,
                    "send_report",
                    "procedure_record",
                    AuditOutcome::Error,
                )
                .entity(case)
                .detail(e.code()),
            )
            .await
            .is_err()
        {
            tracing::error!("the failure to queue a report could not be audited");
        }
    }
}

/// What signing sends, for a record signed at `at` straight through the store (the
/// demo's procedures already done): the report to the referrer, queued to go from
/// `at`, exactly as the page's signature queues it. A failure is logged and audited.
pub async fn send_procedure_report(
    state: &AppState,
    actor: &Actor,
    signed: &SignedRecord,
    at: Timestamp,
) {
    send_report(state, actor, signed, at).await;
}

// ---------------------------------------------------------------- page

struct Field {
    name: &'static str,
    label: &'static str,
    value: String,
    error: Option<String>,
    hint: &'static str,
    unit: &'static str,
}

struct VersionRow {
    version: i64,
    signed: String,
    reason: String,
    current: bool,
}

#[derive(Template)]
#[template(path = "procedure_record.html")]
struct RecordPage {
    chrome: Chrome,
    title: String,
    case_id: i64,
    referral_number: String,
    patient: String,
    ordered: String,
    state_label: &'static str,
    notice: Option<&'static str>,
    top_error: Option<String>,
    error_count: usize,
    /// The version in force, as the report shows it.
    report_html: Option<String>,
    versions: Vec<VersionRow>,
    can_write: bool,
    amending: bool,
    draft_saved: Option<String>,
    procedures: Vec<(String, String)>,
    sides: Vec<(&'static str, &'static str)>,
    guidances: Vec<(&'static str, &'static str)>,
    steroids: Vec<(String, String)>,
    anaesthetics: Vec<String>,
    contrasts: Vec<String>,
    complications: Vec<(&'static str, &'static str)>,
    v: ProcedureRecordForm,
    errors: FieldErrors,
    fields: Vec<Field>,
    suggestion: Option<(String, String, bool)>,
    warning: Option<String>,
    messages: Vec<String>,
    signer: String,
}

impl RecordPage {
    fn err(&self, field: &str) -> Option<&str> {
        self.errors.get(field)
    }
}

/// Query of the page.
#[derive(Debug, Deserialize)]
pub struct PageQuery {
    done: Option<String>,
}

struct PageInput {
    form: Option<ProcedureRecordForm>,
    errors: FieldErrors,
    top_error: Option<String>,
    notice: Option<&'static str>,
}

async fn build(
    state: &AppState,
    who: &SignedIn,
    case: CaseId,
    input: PageInput,
) -> Result<RecordPage, AppError> {
    let actor = who.actor();
    let detail = state
        .store()
        .case_detail(&actor, case)
        .await
        .map_err(case_error)?;
    let versions = state
        .store()
        .procedure_record_versions(&actor, case)
        .await
        .map_err(case_error)?;
    let catalogue = state.store().procedures().await?;
    let rules = &state.rules().procedure_record;
    let tz = state.time_zone();
    let signed: Vec<&ProcedureRecordVersion> =
        versions.iter().filter(|v| v.signed.is_some()).collect();
    let current = signed.last().copied();
    let amending = current.is_some();
    let report_html = match current {
        Some(v) => {
            let loaded = load_signed(state, &actor, case).await.map_err(case_error)?;
            Some(report_of(state, &loaded, v)?.html)
        }
        None => None,
    };
    let draft = versions.last().filter(|v| v.signed.is_none());
    let c = &detail.case;
    let form = input.form.unwrap_or_else(|| match (draft, current) {
        (Some(d), _) => d.form.clone(),
        (None, Some(s)) => ProcedureRecordForm {
            amendment_reason: String::new(),
            ..s.form.clone()
        },
        (None, None) => ProcedureRecordForm {
            procedure: c.procedure_code.clone(),
            levels: c.levels.clone().unwrap_or_default(),
            side: c.side.map(|s| s.as_str().to_owned()).unwrap_or_default(),
            ..ProcedureRecordForm::default()
        },
    });
    let suggestion = rules
        .suggestion_for(if form.procedure.trim().is_empty() {
            &c.procedure_code
        } else {
            &form.procedure
        })
        .map(|s| (s.text.clone(), state.rules().cite(&s.meta), s.meta.verified));
    let warning = particulate_warning(rules, &form.procedure, &form.steroid_agent);
    let messages = state
        .store()
        .case_messages(&actor, case)
        .await
        .map(|m| {
            m.into_iter()
                .filter(|m| m.kind == REPORT_KIND)
                .map(|m| {
                    format!(
                        "Report to {} ({}), {}",
                        m.recipient,
                        local_time(m.created_at, tz),
                        match m.state {
                            irflow_store::MessageState::Sent => "sent",
                            irflow_store::MessageState::Failed => "failed",
                            irflow_store::MessageState::Cancelled => "cancelled",
                            _ => "queued",
                        }
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let e = |f: &str| input.errors.get(f).map(str::to_owned);
    let fields = vec![
        Field {
            name: "contrast_ml",
            label: "Contrast volume",
            value: form.contrast_ml.clone(),
            error: e("contrast_ml"),
            hint: "empty when no contrast",
            unit: "mL",
        },
        Field {
            name: "steroid_mg",
            label: "Steroid dose",
            value: form.steroid_mg.clone(),
            error: e("steroid_mg"),
            hint: "empty when no steroid",
            unit: "mg",
        },
        Field {
            name: "anaesthetic_mg",
            label: "Local anaesthetic dose",
            value: form.anaesthetic_mg.clone(),
            error: e("anaesthetic_mg"),
            hint: "empty when none",
            unit: "mg",
        },
        Field {
            name: "fluoroscopy_seconds",
            label: "Fluoroscopy time",
            value: form.fluoroscopy_seconds.clone(),
            error: e("fluoroscopy_seconds"),
            hint: "fluoroscopic guidance",
            unit: "s",
        },
        Field {
            name: "dap",
            label: "Dose-area product",
            value: form.dap.clone(),
            error: e("dap"),
            hint: "fluoroscopic guidance",
            unit: "mGy·cm²",
        },
        Field {
            name: "dlp",
            label: "CT dose-length product",
            value: form.dlp.clone(),
            error: e("dlp"),
            hint: "CT guidance",
            unit: "mGy·cm",
        },
        Field {
            name: "pain_before",
            label: "Pain before (0-10)",
            value: form.pain_before.clone(),
            error: e("pain_before"),
            hint: "",
            unit: "",
        },
        Field {
            name: "pain_after",
            label: "Pain right after (0-10)",
            value: form.pain_after.clone(),
            error: e("pain_after"),
            hint: "",
            unit: "",
        },
    ];
    let can_write = who.user.role == Role::Radiologist
        && matches!(
            c.state,
            irflow_domain::CaseState::InProcedure
                | irflow_domain::CaseState::Recovery
                | irflow_domain::CaseState::Discharged
                | irflow_domain::CaseState::FollowedUp
        );
    Ok(RecordPage {
        chrome: Chrome::new(state, Some(who), "cases"),
        title: format!("Procedure record · {}", c.patient_name()),
        case_id: case.get(),
        referral_number: irflow_fhir::referral_number(case.get()),
        patient: format!(
            "{}, born {}{}",
            c.patient_name(),
            c.date_of_birth,
            c.mrn
                .as_deref()
                .map(|m| format!(", MRN {m}"))
                .unwrap_or_default()
        ),
        ordered: crate::views::order_summary(c),
        state_label: c.state.label(),
        notice: input.notice,
        top_error: input.top_error,
        error_count: input.errors.0.len(),
        report_html,
        versions: signed
            .iter()
            .map(|v| VersionRow {
                version: v.version,
                signed: v.signed.as_ref().map_or_else(String::new, |s| {
                    format!("{} at {}", s.name, local_time(s.at, tz))
                }),
                reason: v.form.amendment_reason.clone(),
                current: current.is_some_and(|c| c.id == v.id),
            })
            .collect(),
        can_write,
        amending,
        draft_saved: draft.map(|d| format!("Draft saved {}", local_time(d.updated_at, tz))),
        procedures: catalogue
            .iter()
            .map(|p| (p.code.clone(), format!("{} — {}", p.code, p.name)))
            .collect(),
        sides: irflow_domain::Side::ALL
            .iter()
            .map(|s| (s.as_str(), s.label()))
            .collect(),
        guidances: irflow_domain::Modality::ALL
            .iter()
            .map(|m| (m.as_str(), m.label()))
            .collect(),
        steroids: rules
            .steroids
            .iter()
            .map(|s| {
                (
                    s.agent.clone(),
                    match s.particulate {
                        Some(true) => format!("{} (particulate)", s.agent),
                        Some(false) => format!("{} (non-particulate)", s.agent),
                        None => s.agent.clone(),
                    },
                )
            })
            .collect(),
        anaesthetics: rules
            .local_anaesthetics
            .iter()
            .map(|a| a.agent.clone())
            .collect(),
        contrasts: rules
            .contrast_agents
            .iter()
            .map(|a| a.agent.clone())
            .collect(),
        complications: Complication::ALL
            .iter()
            .map(|c| (c.as_str(), c.label()))
            .collect(),
        v: form,
        errors: input.errors,
        fields,
        suggestion,
        warning,
        messages,
        signer: who.user.display_name.clone(),
    })
}

async fn show(
    state: &AppState,
    who: &SignedIn,
    case: CaseId,
    input: PageInput,
    status: StatusCode,
) -> Response {
    match build(state, who, case, input).await {
        Ok(page) => render(&page, status),
        Err(e) => error_page(state, Some(who), &e),
    }
}

/// `GET /cases/{id}/procedure-record`.
pub async fn page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<PageQuery>,
) -> Response {
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let notice = match q.done.as_deref() {
        Some("saved") => Some("Draft saved."),
        Some("signed") => Some("Signed. The report is on its way to the referring provider."),
        _ => None,
    };
    show(
        &state,
        &who,
        case,
        PageInput {
            form: None,
            errors: FieldErrors::default(),
            top_error: None,
            notice,
        },
        StatusCode::OK,
    )
    .await
}

/// What the form posts.
#[derive(Debug, Deserialize)]
pub struct RecordSubmit {
    #[serde(default)]
    csrf: String,
    /// `draft` or `sign`.
    #[serde(default)]
    intent: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    procedure: String,
    #[serde(default)]
    levels: String,
    #[serde(default)]
    side: String,
    #[serde(default)]
    guidance: String,
    #[serde(default)]
    contrast_agent: String,
    #[serde(default)]
    contrast_ml: String,
    #[serde(default)]
    steroid_agent: String,
    #[serde(default)]
    steroid_mg: String,
    #[serde(default)]
    anaesthetic_agent: String,
    #[serde(default)]
    anaesthetic_mg: String,
    #[serde(default)]
    fluoroscopy_seconds: String,
    #[serde(default)]
    dap: String,
    #[serde(default)]
    dlp: String,
    #[serde(default)]
    pain_before: String,
    #[serde(default)]
    pain_after: String,
    #[serde(default)]
    complication: String,
    #[serde(default)]
    complication_text: String,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    amendment_reason: String,
    /// The checkbox: `yes` when ticked.
    #[serde(default)]
    particulate_acknowledged: String,
}

impl RecordSubmit {
    fn form(&self) -> ProcedureRecordForm {
        ProcedureRecordForm {
            procedure: self.procedure.clone(),
            levels: self.levels.clone(),
            side: self.side.clone(),
            guidance: self.guidance.clone(),
            contrast_agent: self.contrast_agent.clone(),
            contrast_ml: self.contrast_ml.clone(),
            steroid_agent: self.steroid_agent.clone(),
            steroid_mg: self.steroid_mg.clone(),
            anaesthetic_agent: self.anaesthetic_agent.clone(),
            anaesthetic_mg: self.anaesthetic_mg.clone(),
            fluoroscopy_seconds: self.fluoroscopy_seconds.clone(),
            dap: self.dap.clone(),
            dlp: self.dlp.clone(),
            pain_before: self.pain_before.clone(),
            pain_after: self.pain_after.clone(),
            complication: self.complication.clone(),
            complication_text: self.complication_text.clone(),
            notes: self.notes.clone(),
            amendment_reason: self.amendment_reason.clone(),
            particulate_acknowledged: self.particulate_acknowledged == "yes",
        }
    }
}

/// Checks the signed-in user's password again (the signature), with the sign-in
/// limits: failures count as failed sign-ins, per user and per client.
async fn confirm_password(
    state: &AppState,
    who: &SignedIn,
    password: &str,
) -> Result<(), AppError> {
    let store = state.store();
    let config = state.config();
    let now = Timestamp::now();
    let username = who.user.username.clone();
    let (by_user, by_client) = store
        .recent_login_failures(&username, &who.client, now - SignedDuration::from_mins(15))
        .await?;
    if by_user >= config.login_failures_per_user || by_client >= config.login_failures_per_client {
        store
            .record_audit(
                NewAuditEvent::new(
                    &who.actor(),
                    "sign",
                    "procedure_record",
                    AuditOutcome::Denied,
                )
                .detail("password confirmation rate limited"),
            )
            .await?;
        return Err(AppError::TooManyRequests(
            "too many wrong passwords; wait 15 minutes and try again".to_owned(),
        ));
    }
    let found = store.user_for_sign_in(&username).await?;
    let password = password.to_owned();
    let ok = match found {
        Some((user, hash)) if user.id == who.user.id && user.active => {
            tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false)
        }
        _ => {
            let _ =
                tokio::task::spawn_blocking(move || verify_password(&password, decoy_hash())).await;
            false
        }
    };
    if ok {
        return Ok(());
    }
    store
        .record_login_attempt(&username, &who.client, false, now)
        .await?;
    store
        .record_audit(
            NewAuditEvent::new(
                &who.actor(),
                "sign",
                "procedure_record",
                AuditOutcome::Denied,
            )
            .detail("wrong password"),
        )
        .await?;
    Err(AppError::Field {
        field: "password",
        message: "that is not your password; the record is not signed".to_owned(),
    })
}

/// `POST /cases/{id}/procedure-record`: save the draft, or sign.
pub async fn submit(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    axum::Form(f): axum::Form<RecordSubmit>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let form = f.form();
    let actor = who.actor();
    let again = |errors: FieldErrors, top: Option<String>, status: StatusCode| {
        let form = form.clone();
        let state = state.clone();
        let who = who.clone();
        async move {
            show(
                &state,
                &who,
                case,
                PageInput {
                    form: Some(form),
                    errors,
                    top_error: top,
                    notice: None,
                },
                status,
            )
            .await
        }
    };
    match f.intent.as_str() {
        "draft" => match state
            .store()
            .save_procedure_record_draft(&actor, case, &form, Timestamp::now())
            .await
        {
            Ok(_) => {
                Redirect::to(&format!("/cases/{case}/procedure-record?done=saved")).into_response()
            }
            Err(StoreError::Field { field, message }) => {
                again(
                    FieldErrors(vec![irflow_domain::FieldError { field, message }]),
                    None,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await
            }
            Err(e) => {
                let e = case_error(e);
                match e {
                    AppError::Conflict(_) | AppError::Invalid(_) => {
                        again(FieldErrors::default(), Some(e.public_message()), e.status()).await
                    }
                    e => error_page(&state, Some(&who), &e),
                }
            }
        },
        "sign" => {
            if who.user.role != Role::Radiologist {
                return error_page(
                    &state,
                    Some(&who),
                    &AppError::Forbidden(
                        "the procedure record is written and signed by a radiologist".to_owned(),
                    ),
                );
            }
            if f.password.is_empty() {
                return again(
                    FieldErrors(vec![irflow_domain::FieldError {
                        field: "password",
                        message: "enter your password to sign".to_owned(),
                    }]),
                    None,
                    StatusCode::UNPROCESSABLE_ENTITY,
                )
                .await;
            }
            match confirm_password(&state, &who, &f.password).await {
                Ok(()) => {}
                Err(AppError::Field { field, message }) => {
                    return again(
                        FieldErrors(vec![irflow_domain::FieldError { field, message }]),
                        None,
                        StatusCode::UNPROCESSABLE_ENTITY,
                    )
                    .await;
                }
                Err(e) => return error_page(&state, Some(&who), &e),
            }
            match sign(&state, &actor, &who.user.display_name, case, &form).await {
                Ok(_) => Redirect::to(&format!("/cases/{case}/procedure-record?done=signed"))
                    .into_response(),
                Err(SignError::Fields(errors)) => {
                    again(errors, None, StatusCode::UNPROCESSABLE_ENTITY).await
                }
                Err(SignError::App(e @ (AppError::Conflict(_) | AppError::Invalid(_)))) => {
                    again(FieldErrors::default(), Some(e.public_message()), e.status()).await
                }
                Err(SignError::App(e)) => error_page(&state, Some(&who), &e),
            }
        }
        _ => error_page(
            &state,
            Some(&who),
            &AppError::BadRequest("intent must be draft or sign".to_owned()),
        ),
    }
}

// ---------------------------------------------------------------- API

fn version_json(state: &AppState, v: &ProcedureRecordVersion) -> Value {
    let tz = state.time_zone();
    let f = &v.form;
    json!({
        "id": v.id,
        "version": v.version,
        "status": if v.signed.is_some() { "signed" } else { "draft" },
        "procedure": f.procedure,
        "procedure_name": v.procedure_name,
        "levels": f.levels,
        "side": f.side,
        "guidance": f.guidance,
        "contrast_agent": f.contrast_agent,
        "contrast_ml": f.contrast_ml,
        "steroid_agent": f.steroid_agent,
        "steroid_mg": f.steroid_mg,
        "anaesthetic_agent": f.anaesthetic_agent,
        "anaesthetic_mg": f.anaesthetic_mg,
        "fluoroscopy_seconds": f.fluoroscopy_seconds,
        "dap": f.dap,
        "dlp": f.dlp,
        "pain_before": f.pain_before,
        "pain_after": f.pain_after,
        "complication": f.complication,
        "complication_text": f.complication_text,
        "notes": f.notes,
        "amendment_reason": f.amendment_reason,
        "particulate_acknowledged": f.particulate_acknowledged,
        "created_by": v.created_by,
        "updated_at": rfc3339_local(v.updated_at, tz),
        "signed_by": v.signed.as_ref().map(|s| json!({"username": s.username, "name": s.name})),
        "signed_at": v.signed.as_ref().map(|s| rfc3339_local(s.at, tz)),
    })
}

fn record_json(state: &AppState, case: CaseId, versions: &[ProcedureRecordVersion]) -> Value {
    let rules = &state.rules().procedure_record;
    let current = versions.iter().rev().find(|v| v.signed.is_some());
    let code = current
        .map(|v| v.form.procedure.clone())
        .or_else(|| versions.last().map(|v| v.form.procedure.clone()))
        .unwrap_or_default();
    json!({
        "case_id": case.get(),
        "current_version": current.map(|v| v.version),
        "versions": versions.iter().map(|v| version_json(state, v)).collect::<Vec<_>>(),
        "steroid_suggestion": rules.suggestion_for(&code).map(|s| json!({
            "rule_id": s.meta.id,
            "agent": s.agent,
            "text": s.text,
            "source": state.rules().cite(&s.meta),
            "verified": s.meta.verified,
        })),
    })
}

/// `GET /api/v1/cases/{id}/procedure-record`: every version (referrers: signed ones).
pub async fn api_get(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let case = parse_case_id(&id)?;
    let versions = state
        .store()
        .procedure_record_versions(&caller.actor(), case)
        .await
        .map_err(case_error)?;
    Ok(Json(record_json(&state, case, &versions)))
}

/// The record as JSON (all fields strings, as on the form).
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RecordJson {
    procedure: String,
    levels: String,
    side: String,
    guidance: String,
    contrast_agent: String,
    contrast_ml: String,
    steroid_agent: String,
    steroid_mg: String,
    anaesthetic_agent: String,
    anaesthetic_mg: String,
    fluoroscopy_seconds: String,
    dap: String,
    dlp: String,
    pain_before: String,
    pain_after: String,
    complication: String,
    complication_text: String,
    notes: String,
    amendment_reason: String,
    /// Required to sign a particulate steroid for a transforaminal injection: `true`,
    /// the radiologist's acknowledgement of the FDA 2014 safety communication.
    particulate_acknowledged: bool,
    /// Required to sign: the literal `"sign"`, the caller's explicit confirmation.
    confirm: String,
}

impl RecordJson {
    fn form(self) -> ProcedureRecordForm {
        ProcedureRecordForm {
            procedure: self.procedure,
            levels: self.levels,
            side: self.side,
            guidance: self.guidance,
            contrast_agent: self.contrast_agent,
            contrast_ml: self.contrast_ml,
            steroid_agent: self.steroid_agent,
            steroid_mg: self.steroid_mg,
            anaesthetic_agent: self.anaesthetic_agent,
            anaesthetic_mg: self.anaesthetic_mg,
            fluoroscopy_seconds: self.fluoroscopy_seconds,
            dap: self.dap,
            dlp: self.dlp,
            pain_before: self.pain_before,
            pain_after: self.pain_after,
            complication: self.complication,
            complication_text: self.complication_text,
            notes: self.notes,
            amendment_reason: self.amendment_reason,
            particulate_acknowledged: self.particulate_acknowledged,
        }
    }
}

fn json_body(body: Result<Json<RecordJson>, JsonRejection>) -> Result<RecordJson, ApiError> {
    body.map(|Json(b)| b).map_err(|e| {
        ApiError(AppError::BadRequest(format!(
            "the body is not a record: {e}"
        )))
    })
}

/// A 422 naming every field to fix.
fn fields_response(errors: &FieldErrors) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        Json(json!({"error": {
            "status": 422,
            "code": "invalid",
            "message": errors.to_string(),
            "fields": errors.0.iter().map(|e| json!({"field": e.field, "message": e.message})).collect::<Vec<_>>(),
        }})),
    )
        .into_response()
}

/// `PUT /api/v1/cases/{id}/procedure-record`: saves the draft (radiologists).
pub async fn api_draft(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<RecordJson>, JsonRejection>,
) -> Response {
    let result = async {
        let case = parse_case_id(&id)?;
        let form = json_body(body)?.form();
        match state
            .store()
            .save_procedure_record_draft(&caller.actor(), case, &form, Timestamp::now())
            .await
        {
            Ok(_) => {}
            Err(StoreError::Field { field, message }) => {
                return Ok(fields_response(&FieldErrors(vec![
                    irflow_domain::FieldError { field, message },
                ])));
            }
            Err(e) => return Err(ApiError(case_error(e))),
        }
        let versions = state
            .store()
            .procedure_record_versions(&caller.actor(), case)
            .await
            .map_err(case_error)?;
        Ok::<_, ApiError>(Json(record_json(&state, case, &versions)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/v1/cases/{id}/procedure-record/sign`: checks and signs as the token's
/// radiologist, who confirms with `"confirm": "sign"`.
pub async fn api_sign(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Result<Json<RecordJson>, JsonRejection>,
) -> Response {
    let result = async {
        let case = parse_case_id(&id)?;
        let body = json_body(body)?;
        if body.confirm != "sign" {
            return Err(ApiError(AppError::Invalid(
                "to sign, confirm it: \"confirm\": \"sign\"".to_owned(),
            )));
        }
        let form = body.form();
        match sign(
            &state,
            &caller.actor(),
            &caller.user.display_name,
            case,
            &form,
        )
        .await
        {
            Ok(_) => {}
            Err(SignError::Fields(errors)) => return Ok(fields_response(&errors)),
            Err(SignError::App(e)) => return Err(ApiError(e)),
        }
        let versions = state
            .store()
            .procedure_record_versions(&caller.actor(), case)
            .await
            .map_err(case_error)?;
        Ok((
            StatusCode::CREATED,
            Json(record_json(&state, case, &versions)),
        )
            .into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// The report lines of a record (for FHIR notes).
pub(crate) fn note_lines(d: &ProcedureRecordDetails) -> Vec<String> {
    record_lines(d)
        .into_iter()
        .filter(|(label, _)| {
            !matches!(
                *label,
                "Procedure"
                    | "Levels"
                    | "Side"
                    | "Complications"
                    | "Contrast"
                    | "Steroid"
                    | "Local anaesthetic"
            )
        })
        .map(|(label, value)| format!("{label}: {value}"))
        .collect()
}
