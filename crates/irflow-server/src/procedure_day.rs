//! The procedure day over HTTP: today's board (`GET /api/v1/today`), the
//! pre-procedure checklist, the start and end of the procedure, vital signs and the
//! discharge, as JSON; the pages are in `day_pages.rs` and share everything here.
//!
//! What a patient's checklist requires comes from one place: the letters' facts
//! (`letters::day_facts`: each held drug's last dose as the patient was told it, the
//! premedication, diabetes) and the screening re-evaluated for the appointment, with
//! the rule pack's monitoring minutes and glucose limit. The store re-checks the
//! whole checklist against it in the transaction that starts the procedure.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use irflow_domain::procedure_day::{
    self as day, Answer, ChecklistItem, ChecklistStatus, Consent, ConsentMethod, EscortPlan,
    HeldDrugPlan, IdentityCheck, Outcome, PlannedLastDose, PregnancyStatus, ReportedDose,
    Requirements, TimeOut, Vitals,
};
use irflow_domain::screening::ScreeningDecision;
use irflow_domain::{Actor, CaseId, CaseState, PathwayEvent, Role};
use irflow_letters::{LastDose, LetterFacts, LetterKind};
use irflow_store::procedure_day::{ChecklistRecord, DayRecord, DischargeRequest, VitalsRecord};
use irflow_store::{
    AppointmentFilter, AppointmentListing, AuditOutcome, CaseDetail, NewAuditEvent, NewMessage,
};
use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde_json::{Map, Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::letters::{LetterExtras, compose, day_facts};
use crate::pages::case_error;
use crate::session::ApiCaller;
use crate::views::rfc3339_local;
use crate::{AppError, AppState};

// ---------------------------------------------------------------- routes

/// The day's pages and API.
pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .merge(crate::day_pages::routes())
        .route("/api/v1/today", get(api_today))
        .route(
            "/api/v1/cases/{id}/checklist",
            get(api_checklist).post(api_checklist_post),
        )
        .route("/api/v1/cases/{id}/start", post(api_start))
        .route("/api/v1/cases/{id}/end", post(api_end))
        .route("/api/v1/cases/{id}/not-treated", post(api_not_treated))
        .route("/api/v1/cases/{id}/recovery", get(api_recovery))
        .route(
            "/api/v1/cases/{id}/vitals",
            get(api_vitals).post(api_vitals_post),
        )
        .route("/api/v1/cases/{id}/discharge", post(api_discharge))
}

// ---------------------------------------------------------------- access

/// The day is run by the department's staff; referrers follow their cases instead
/// (refused, and audited as denied).
pub(crate) async fn staff_only(state: &AppState, actor: &Actor) -> Result<(), AppError> {
    if actor.role == Some(Role::Referrer) {
        state
            .store()
            .record_audit(
                NewAuditEvent::new(actor, "read", "procedure_day", AuditOutcome::Denied)
                    .detail("procedure day"),
            )
            .await?;
        return Err(AppError::Forbidden(
            "the procedure day is run by the department's staff; your referrals' progress is on their case pages"
                .to_owned(),
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------- the plan

/// One case's day as the checklist and recovery pages need it.
pub(crate) struct DayContext {
    /// The case and patient (an audited read).
    pub detail: CaseDetail,
    /// What the checklist requires.
    pub requirements: Requirements,
    /// The letters' facts (held drugs with their last doses, premedication, allergies are not here).
    pub letter: LetterFacts,
    /// The screening as re-evaluated for the appointment.
    pub decision: Option<ScreeningDecision>,
}

fn planned_last_dose(d: &LastDose) -> PlannedLastDose {
    match d {
        LastDose::Day(day) => PlannedLastDose::Day(*day),
        LastDose::At(z) => PlannedLastDose::At(z.datetime()),
    }
}

/// The checklist's requirements from the letters' facts, the screening and the pack.
pub(crate) fn requirements(
    state: &AppState,
    letter: &LetterFacts,
    decision: Option<&ScreeningDecision>,
    has_mrn: bool,
) -> Requirements {
    let pack = state.rules();
    Requirements {
        held_drugs: letter
            .blood_thinners
            .iter()
            .map(|h| HeldDrugPlan {
                drug: h.drug.clone(),
                last_dose: h.last_dose.as_ref().map(planned_last_dose),
                continued: h.prescriber_declined,
            })
            .collect(),
        diabetic: letter.diabetes.is_some(),
        glucose_max_mg_dl: pack.day.glucose_max_mg_dl,
        premedication_planned: !letter.premedication.is_empty(),
        has_mrn,
        // The screening decided the minutes for a patient without an escort; a patient
        // who turns out to drive on the day gets the pack's minutes (the same rule).
        monitoring_minutes: decision
            .and_then(|d| d.monitoring_minutes)
            .unwrap_or(pack.policy.monitoring_minutes),
        // The screening's `pregnancy_possible` gives the pack's pregnancy finding when
        // true; a screening without it ruled pregnancy out. No screening: asked.
        pregnancy_ruled_out: decision.is_some_and(|d| {
            !d.findings
                .iter()
                .any(|f| f.rule_id == pack.policy.pregnancy.id)
        }),
    }
}

/// Reads the case and works out its checklist's requirements (audited reads as `actor`).
pub(crate) async fn context(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
) -> Result<DayContext, AppError> {
    let detail = state
        .store()
        .case_detail(actor, case)
        .await
        .map_err(case_error)?;
    let (letter, decision) = day_facts(state, actor, case).await?;
    let has_mrn = detail
        .patient
        .mrn
        .as_deref()
        .is_some_and(|m| !m.trim().is_empty());
    let requirements = requirements(state, &letter, decision.as_ref(), has_mrn);
    Ok(DayContext {
        detail,
        requirements,
        letter,
        decision,
    })
}

// ---------------------------------------------------------------- input

/// A checklist entry as typed: the item and its fields as text, from a form or JSON.
#[derive(Debug, Default)]
pub(crate) struct RawEntry {
    pub item: String,
    pub fields: Vec<(String, String)>,
    /// Blood thinners: (drug, date, time).
    pub doses: Vec<(String, String, String)>,
}

impl RawEntry {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    fn flag(&self, name: &str) -> Result<bool, AppError> {
        match self.get(name) {
            None | Some("false" | "no" | "off" | "0") => Ok(false),
            Some("true" | "yes" | "on" | "1") => Ok(true),
            Some(other) => Err(AppError::Field {
                field: "time_out",
                message: format!("{name} must be true or false, not {other:?}"),
            }),
        }
    }

    /// From a JSON object: `{"item": "...", "value": ..., "doses": [...], ...}`.
    pub(crate) fn from_json(body: &[u8]) -> Result<Self, AppError> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| AppError::BadRequest(format!("the body must be a JSON object: {e}")))?;
        let Value::Object(map) = v else {
            return Err(AppError::BadRequest(
                "the body must be a JSON object with an \"item\"".to_owned(),
            ));
        };
        let mut raw = RawEntry::default();
        for (k, v) in map {
            match (k.as_str(), v) {
                ("item", Value::String(s)) => raw.item = s,
                ("doses", Value::Array(doses)) => {
                    for d in doses {
                        let text = |key: &str| match d.get(key) {
                            Some(Value::String(s)) => s.clone(),
                            _ => String::new(),
                        };
                        raw.doses
                            .push((text("drug"), text("last_dose"), text("time")));
                    }
                }
                (_, Value::String(s)) => raw.fields.push((k, s)),
                (_, Value::Bool(b)) => raw.fields.push((k, b.to_string())),
                (_, Value::Number(n)) => raw.fields.push((k, n.to_string())),
                (_, Value::Null) => {}
                (key, _) => {
                    return Err(AppError::BadRequest(format!(
                        "{key} must be a string, number or true/false"
                    )));
                }
            }
        }
        Ok(raw)
    }

    /// From form pairs: `item`, the item's fields, and `dose-<drug>-date` / `-time`.
    pub(crate) fn from_form(pairs: Vec<(String, String)>) -> Self {
        let mut raw = RawEntry::default();
        let mut drugs: Vec<String> = Vec::new();
        for (k, v) in pairs {
            if k == "item" {
                raw.item = v;
            } else if let Some(rest) = k.strip_prefix("dose-") {
                if let Some(drug) = rest
                    .strip_suffix("-date")
                    .or_else(|| rest.strip_suffix("-time"))
                    && !drugs.iter().any(|d| d == drug)
                {
                    drugs.push(drug.to_owned());
                }
                raw.fields.push((k, v));
            } else {
                raw.fields.push((k, v));
            }
        }
        for drug in drugs {
            let date = raw
                .get(&format!("dose-{drug}-date"))
                .unwrap_or("")
                .to_owned();
            let time = raw
                .get(&format!("dose-{drug}-time"))
                .unwrap_or("")
                .to_owned();
            raw.doses.push((drug, date, time));
        }
        raw
    }
}

/// A parsed checklist entry.
#[derive(Debug)]
pub(crate) enum Entry {
    /// An answer, with its note.
    Answer(Answer, Option<String>),
    /// Consent.
    Consent(Consent),
    /// The time-out.
    TimeOut(TimeOut),
}

fn choice<T: std::str::FromStr<Err = String>>(
    raw: &RawEntry,
    item: ChecklistItem,
    what: &str,
) -> Result<T, AppError> {
    let value = raw.get("value").ok_or_else(|| AppError::Field {
        field: item.as_str(),
        message: format!("choose {what}"),
    })?;
    value.parse().map_err(|e: String| AppError::Field {
        field: item.as_str(),
        message: format!("{what}: {e}"),
    })
}

/// Parses an entry. Consent takes its risks from the rule pack, never from the input.
pub(crate) fn parse_entry(state: &AppState, raw: &RawEntry) -> Result<Entry, AppError> {
    let note = raw.get("note").map(str::to_owned);
    let item_name = raw.item.trim();
    if item_name == "consent" {
        let method: ConsentMethod = raw
            .get("method")
            .ok_or_else(|| AppError::Field {
                field: "consent",
                message: "choose how consent was signed: on_screen or paper".to_owned(),
            })?
            .parse()
            .map_err(|e: String| AppError::Field {
                field: "consent",
                message: format!("method: {e}"),
            })?;
        return Ok(Entry::Consent(Consent {
            method,
            signer: raw.get("signer").unwrap_or("").to_owned(),
            signature_png: raw.get("signature_png").map(str::to_owned),
            witness: raw.get("witness").unwrap_or("").to_owned(),
            risks: state.rules().day.risks.clone(),
        }));
    }
    if item_name == "time_out" {
        return Ok(Entry::TimeOut(TimeOut {
            patient: raw.flag("patient")?,
            procedure: raw.flag("procedure")?,
            level: raw.flag("level")?,
            side: raw.flag("side")?,
        }));
    }
    let item: ChecklistItem = item_name.parse().map_err(|e: String| AppError::Field {
        field: "item",
        message: e,
    })?;
    let answer = match item {
        ChecklistItem::Identity => Answer::Identity(choice::<IdentityCheck>(
            raw,
            item,
            "which two identifiers were confirmed",
        )?),
        ChecklistItem::Escort => Answer::Escort(choice::<EscortPlan>(
            raw,
            item,
            "how the patient gets home",
        )?),
        ChecklistItem::Pregnancy => Answer::Pregnancy(choice::<PregnancyStatus>(
            raw,
            item,
            "the answer to the pregnancy question",
        )?),
        ChecklistItem::Premedication => match raw.get("value") {
            Some("taken") => Answer::Premedication(true),
            Some("not_taken") => Answer::Premedication(false),
            _ => {
                return Err(AppError::Field {
                    field: "premedication",
                    message: "choose taken or not_taken".to_owned(),
                });
            }
        },
        ChecklistItem::Allergies => match raw.get("value") {
            Some("reviewed" | "true" | "yes" | "on") => Answer::AllergiesReviewed,
            _ => {
                return Err(AppError::Field {
                    field: "allergies",
                    message: "confirm that the allergies were reviewed with the patient".to_owned(),
                });
            }
        },
        ChecklistItem::Glucose => {
            let v = raw.get("value").ok_or_else(|| AppError::Field {
                field: "glucose",
                message: "give the blood glucose in mg/dL".to_owned(),
            })?;
            Answer::Glucose(v.parse().map_err(|_| AppError::Field {
                field: "glucose",
                message: format!("{v:?} is not a whole number of mg/dL"),
            })?)
        }
        ChecklistItem::BloodThinners => {
            let mut doses = Vec::new();
            for (drug, date, time) in &raw.doses {
                let drug = drug.trim().to_lowercase();
                if drug.is_empty()
                    || !drug
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                {
                    return Err(AppError::Field {
                        field: "blood_thinners",
                        message: format!("{drug:?} is not a drug name from the hold plan"),
                    });
                }
                let date: Date = date.trim().parse().map_err(|_| AppError::Field {
                    field: "blood_thinners",
                    message: format!(
                        "the last dose of {drug}: give the day as YYYY-MM-DD (got {date:?})"
                    ),
                })?;
                let time = match time.trim() {
                    "" => None,
                    t => Some(
                        Time::strptime("%H:%M", t)
                            .or_else(|_| Time::strptime("%H:%M:%S", t))
                            .map_err(|_| AppError::Field {
                                field: "blood_thinners",
                                message: format!(
                                    "the last dose of {drug}: give the time as HH:MM (got {t:?})"
                                ),
                            })?,
                    ),
                };
                doses.push(ReportedDose { drug, date, time });
            }
            Answer::BloodThinners(doses)
        }
        ChecklistItem::Consent | ChecklistItem::TimeOut => {
            return Err(AppError::BadRequest("unreachable item".to_owned()));
        }
    };
    Ok(Entry::Answer(answer, note))
}

// ---------------------------------------------------------------- actions

/// What recording an entry did.
#[derive(Debug)]
pub(crate) struct Saved {
    /// The item.
    pub item: ChecklistItem,
    /// What it meant (a stop is recorded).
    pub outcome: Outcome,
    /// The checklist now.
    pub status: ChecklistStatus,
}

fn pack_label(state: &AppState) -> String {
    format!("{} {}", state.rules().name, state.rules().version)
}

/// Records one checklist entry as `actor`.
pub(crate) async fn save_entry(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
    entry: Entry,
) -> Result<Saved, AppError> {
    staff_only(state, actor).await?;
    let ctx = context(state, actor, case).await?;
    let now = Timestamp::now();
    let today = state.today();
    let store = state.store();
    let saved = match entry {
        Entry::Answer(answer, note) => {
            let item = answer.item();
            let s = store
                .record_answer(
                    actor,
                    case,
                    &answer,
                    note.as_deref(),
                    &ctx.requirements,
                    now,
                    today,
                )
                .await
                .map_err(case_error)?;
            Saved {
                item,
                outcome: s.outcome,
                status: s.status,
            }
        }
        Entry::Consent(consent) => {
            let status = store
                .record_consent(
                    actor,
                    case,
                    &consent,
                    &pack_label(state),
                    &ctx.requirements,
                    now,
                    today,
                )
                .await
                .map_err(case_error)?;
            Saved {
                item: ChecklistItem::Consent,
                outcome: Outcome::Done,
                status,
            }
        }
        Entry::TimeOut(t) => {
            let s = store
                .record_time_out(actor, case, &t, &ctx.requirements, now, today)
                .await
                .map_err(case_error)?;
            Saved {
                item: ChecklistItem::TimeOut,
                outcome: s.outcome,
                status: s.status,
            }
        }
    };
    Ok(saved)
}

/// Starts the procedure (the store re-checks the whole checklist).
pub(crate) async fn start(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
) -> Result<PathwayEvent, AppError> {
    staff_only(state, actor).await?;
    let ctx = context(state, actor, case).await?;
    state
        .store()
        .start_procedure(
            actor,
            case,
            &ctx.requirements,
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(case_error)
}

/// Ends the procedure: recovery begins.
pub(crate) async fn end(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
) -> Result<PathwayEvent, AppError> {
    staff_only(state, actor).await?;
    state
        .store()
        .end_procedure(actor, case, Timestamp::now(), state.today())
        .await
        .map_err(case_error)
}

/// Sends an arrived patient home untreated with the reason (a checklist stop, the
/// radiologist's decision): the booking is released and the case is ready to book
/// again; then its reminders are re-planned as after any booking change (the
/// released appointment's go; a failure there never undoes the step).
pub(crate) async fn not_treated(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
    reason: &str,
) -> Result<PathwayEvent, AppError> {
    staff_only(state, actor).await?;
    let event = state
        .store()
        .not_treated(actor, case, reason, Timestamp::now(), state.today())
        .await
        .map_err(case_error)?;
    crate::reminders::replan_after_change(state, actor, case).await;
    Ok(event)
}

/// Vital signs as typed (form or JSON).
pub(crate) fn parse_vitals(
    get: impl Fn(&str) -> Option<String>,
    tz: &TimeZone,
    today: Date,
) -> Result<(Vitals, Option<Timestamp>), AppError> {
    let number = |name: &'static str| -> Result<Option<u32>, AppError> {
        match get(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
        {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| AppError::Field {
                field: name,
                message: format!("{v:?} is not a whole number"),
            }),
        }
    };
    let taken_at = match get("taken_at")
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
    {
        None => None,
        Some(raw) => Some(
            parse_local_time(&raw, tz, today).ok_or_else(|| AppError::Field {
                field: "taken_at",
                message: format!(
                    "{raw:?} is not a time: give HH:MM (today) or an RFC 3339 date-time"
                ),
            })?,
        ),
    };
    Ok((
        Vitals {
            systolic: number("systolic")?,
            diastolic: number("diastolic")?,
            pulse: number("pulse")?,
            spo2: number("spo2")?,
            pain: number("pain")?,
            notes: get("notes").unwrap_or_default(),
        },
        taken_at,
    ))
}

/// `HH:MM` today at the site, or an RFC 3339 instant.
fn parse_local_time(raw: &str, tz: &TimeZone, today: Date) -> Option<Timestamp> {
    if let Ok(t) = raw.parse::<Timestamp>() {
        return Some(t);
    }
    let time = Time::strptime("%H:%M", raw).ok()?;
    today
        .to_datetime(time)
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// Records vital signs.
pub(crate) async fn add_vitals(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
    vitals: &Vitals,
    taken_at: Option<Timestamp>,
) -> Result<i64, AppError> {
    staff_only(state, actor).await?;
    let now = Timestamp::now();
    state
        .store()
        .record_vitals(actor, case, vitals, taken_at.unwrap_or(now), now)
        .await
        .map_err(case_error)
}

/// How the discharge instructions reached the patient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Sent {
    /// Put in the outbox.
    Queued {
        /// `email` or `sms`.
        channel: &'static str,
        /// The message.
        message_id: i64,
    },
    /// No email address or phone number on file: printed only.
    NoContact,
    /// The letter could not be sent (the discharge stands).
    Failed(String),
}

impl Sent {
    pub(crate) fn describe(&self) -> String {
        match self {
            Sent::Queued { channel, .. } => format!(
                "the discharge instructions were sent by {}",
                if *channel == "email" {
                    "email"
                } else {
                    "text message"
                }
            ),
            Sent::NoContact => {
                "no email address or phone number on file: give the patient the printed instructions"
                    .to_owned()
            }
            Sent::Failed(why) => format!(
                "the discharge instructions could not be sent ({why}); print them for the patient"
            ),
        }
    }
}

/// A discharge done.
#[derive(Debug)]
pub(crate) struct DischargeDone {
    pub override_reason: Option<String>,
    pub sent: Sent,
}

/// Discharges a patient, then sends the discharge instructions (email when on file,
/// else a text message) through the outbox. A failure to send does not undo the
/// discharge; it is reported so that staff print them instead.
pub(crate) async fn discharge(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
    confirmed: Vec<String>,
    override_reason: Option<String>,
) -> Result<DischargeDone, AppError> {
    staff_only(state, actor).await?;
    let criteria = state
        .rules()
        .day
        .discharge
        .iter()
        .map(|c| (c.meta.id.clone(), c.label.clone()))
        .collect();
    let done = state
        .store()
        .discharge(
            actor,
            case,
            &DischargeRequest {
                criteria,
                confirmed,
                override_reason,
            },
            state.time_zone(),
            Timestamp::now(),
            state.today(),
        )
        .await
        .map_err(case_error)?;
    let sent = send_instructions(state, actor, case, Timestamp::now()).await;
    Ok(DischargeDone {
        override_reason: done.override_reason,
        sent,
    })
}

/// What a discharge sends, for a discharge recorded at `at` straight through the store
/// (the demo's patients already gone home): the discharge instructions, queued to go
/// from `at` by email or text message as the discharge page sends them. `Ok(false)`
/// when there is no address or phone number on file (they were printed).
pub async fn send_discharge_instructions(
    state: &AppState,
    actor: &Actor,
    case: CaseId,
    at: Timestamp,
) -> Result<bool, String> {
    match send_instructions(state, actor, case, at).await {
        Sent::Queued { .. } => Ok(true),
        Sent::NoContact => Ok(false),
        Sent::Failed(why) => Err(why),
    }
}

async fn send_instructions(state: &AppState, actor: &Actor, case: CaseId, at: Timestamp) -> Sent {
    let detail = match state.store().case_detail(actor, case).await {
        Ok(d) => d,
        Err(e) => return Sent::Failed(AppError::from(e).public_message()),
    };
    let on_file = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    };
    let (channel, recipient) = match (
        on_file(&detail.patient.email),
        on_file(&detail.patient.phone),
    ) {
        (Some(email), _) => (irflow_store::outbox::Channel::Email, email),
        (None, Some(phone)) => (irflow_store::outbox::Channel::Sms, phone),
        (None, None) => return Sent::NoContact,
    };
    let letter = match compose(
        state,
        actor,
        case,
        LetterKind::Discharge,
        None,
        &LetterExtras::default(),
    )
    .await
    {
        Ok(l) => l,
        Err(e) => {
            e.log();
            return Sent::Failed(e.public_message());
        }
    };
    let email = channel == irflow_store::outbox::Channel::Email;
    match state
        .store()
        .enqueue_message(
            actor,
            NewMessage {
                case_id: case,
                kind: "discharge_instructions".to_owned(),
                channel,
                recipient,
                subject: letter.subject.clone(),
                body_text: letter.text.clone(),
                body_html: email.then(|| letter.html_document.clone()),
                send_after: at,
            },
        )
        .await
    {
        Ok(id) => Sent::Queued {
            channel: if email { "email" } else { "sms" },
            message_id: id.get(),
        },
        Err(e) => {
            let e = AppError::from(e);
            e.log();
            Sent::Failed(e.public_message())
        }
    }
}

// ---------------------------------------------------------------- the board

/// A column of the board.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Column {
    Expected,
    Arrived,
    InRoom,
    Recovery,
    Discharged,
}

impl Column {
    pub(crate) const ALL: [Column; 5] = [
        Column::Expected,
        Column::Arrived,
        Column::InRoom,
        Column::Recovery,
        Column::Discharged,
    ];

    pub(crate) const fn key(self) -> &'static str {
        match self {
            Column::Expected => "expected",
            Column::Arrived => "arrived",
            Column::InRoom => "in_room",
            Column::Recovery => "recovery",
            Column::Discharged => "discharged",
        }
    }

    pub(crate) const fn label(self) -> &'static str {
        match self {
            Column::Expected => "Expected",
            Column::Arrived => "Arrived",
            Column::InRoom => "In the room",
            Column::Recovery => "Recovery",
            Column::Discharged => "Discharged",
        }
    }

    fn of(state: CaseState) -> Column {
        match state {
            CaseState::Arrived => Column::Arrived,
            CaseState::InProcedure => Column::InRoom,
            CaseState::Recovery => Column::Recovery,
            CaseState::Discharged | CaseState::FollowedUp => Column::Discharged,
            _ => Column::Expected,
        }
    }
}

/// Where a checklist stands, at a glance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChecklistGlance {
    NotStarted,
    InProgress,
    Stopped,
    Complete,
}

impl ChecklistGlance {
    pub(crate) const fn key(self) -> &'static str {
        match self {
            ChecklistGlance::NotStarted => "not_started",
            ChecklistGlance::InProgress => "in_progress",
            ChecklistGlance::Stopped => "stopped",
            ChecklistGlance::Complete => "complete",
        }
    }

    pub(crate) const fn label(self) -> &'static str {
        match self {
            ChecklistGlance::NotStarted => "checklist not started",
            ChecklistGlance::InProgress => "checklist in progress",
            ChecklistGlance::Stopped => "checklist stopped",
            ChecklistGlance::Complete => "checklist complete",
        }
    }

    fn of(day: Option<&DayRecord>) -> Self {
        match day {
            None => ChecklistGlance::NotStarted,
            Some(d) if d.checklist_stopped.is_some() => ChecklistGlance::Stopped,
            Some(d) if d.status.checklist_done_at.is_some() => ChecklistGlance::Complete,
            Some(d) if d.checklist_entries > 0 => ChecklistGlance::InProgress,
            Some(_) => ChecklistGlance::NotStarted,
        }
    }
}

/// One patient on the board.
#[derive(Debug, Clone)]
pub(crate) struct BoardRow {
    pub listing: AppointmentListing,
    pub column: Column,
    pub no_show: bool,
    /// Came, was checked in, and went home untreated (the booking was released).
    pub not_treated: bool,
    pub arrive_by: Timestamp,
    pub late: bool,
    pub day: Option<DayRecord>,
    pub checklist: ChecklistGlance,
    pub monitoring_until: Option<Timestamp>,
    pub minutes_left: Option<i64>,
}

/// One site's day.
#[derive(Debug, Clone)]
pub(crate) struct BoardSite {
    pub id: i64,
    pub name: String,
    pub rows: Vec<BoardRow>,
}

/// Today's board.
#[derive(Debug, Clone)]
pub(crate) struct Board {
    pub date: Date,
    pub now: Timestamp,
    pub sites: Vec<BoardSite>,
}

/// Builds today's board as `actor` (audited reads: the day's appointments, the days).
pub(crate) async fn board(state: &AppState, actor: &Actor) -> Result<Board, AppError> {
    staff_only(state, actor).await?;
    let tz = state.time_zone();
    let date = state.today();
    let start = date
        .to_zoned_datetime(tz.clone())
        .map_err(|_| AppError::Internal("today has no start in the site's zone".to_owned()))?
        .timestamp();
    let end = date
        .tomorrow()
        .ok()
        .and_then(|d| d.to_zoned_datetime(tz.clone()).ok())
        .map(|z| z.timestamp())
        .ok_or_else(|| AppError::Internal("today has no end in the site's zone".to_owned()))?;
    let listings = state
        .store()
        .appointments(
            actor,
            &AppointmentFilter {
                from: Some(start),
                to: Some(end),
                include_cancelled: true,
                limit: Some(2000),
                ..AppointmentFilter::default()
            },
        )
        .await?;
    let listings: Vec<AppointmentListing> = listings
        .into_iter()
        // A plain cancellation frees the time; the board shows who is coming and came
        // (a patient sent home untreated came: they stay, marked so).
        .filter(|l| l.appointment.state() != "cancelled" || sent_home(&l.appointment))
        .collect();
    let days = state.store().day_records_between(actor, start, end).await?;
    let now = Timestamp::now();
    let mut sites: Vec<BoardSite> = state
        .store()
        .sites()
        .await?
        .into_iter()
        .map(|s| BoardSite {
            id: s.id,
            name: s.name,
            rows: Vec::new(),
        })
        .collect();
    for listing in listings {
        let a = &listing.appointment;
        let no_show = a.state() == "no_show";
        let not_treated = sent_home(a);
        let day = days
            .iter()
            .find(|d| d.appointment_id == a.id && !no_show && !not_treated)
            .cloned();
        let arrive_by = crate::scheduling_api::arrive_by(state, a.start);
        let arrived_at = day.as_ref().and_then(|d| d.status.arrived_at);
        let monitoring_until = day.as_ref().and_then(|d| {
            d.status
                .procedure_ended_at
                .and_then(|ended| day::monitoring_until(ended, d.status.monitoring_minutes))
        });
        // The case may be booked again (even later today): this row stays where it was.
        let column = if not_treated {
            Column::Expected
        } else {
            Column::of(listing.case_state)
        };
        let row = BoardRow {
            column,
            no_show,
            not_treated,
            arrive_by,
            late: arrived_at.is_some_and(|t| t > arrive_by),
            checklist: ChecklistGlance::of(day.as_ref()),
            minutes_left: monitoring_until
                .filter(|_| column == Column::Recovery)
                .map(|u| day::minutes_left(u, now)),
            monitoring_until,
            day,
            listing,
        };
        let site_id = row.listing.appointment.site_id;
        match sites.iter_mut().find(|s| s.id == site_id) {
            Some(s) => s.rows.push(row),
            None => sites.push(BoardSite {
                id: site_id,
                name: format!("Site {site_id}"),
                rows: vec![row],
            }),
        }
    }
    // Sites with nothing today are shown only when there is one site at all.
    if sites.len() > 1 {
        sites.retain(|s| !s.rows.is_empty());
    }
    Ok(Board { date, now, sites })
}

/// A checked-in appointment that was then released: the patient went home untreated.
fn sent_home(a: &irflow_store::AppointmentRecord) -> bool {
    a.status == "cancelled" && a.attendance.as_deref() == Some("arrived")
}

fn time_json(t: Option<Timestamp>, tz: &TimeZone) -> Value {
    json!(t.map(|t| rfc3339_local(t, tz)))
}

fn day_json(state: &AppState, d: &DayRecord) -> Value {
    let tz = state.time_zone();
    let s = &d.status;
    let until = s
        .procedure_ended_at
        .and_then(|e| day::monitoring_until(e, s.monitoring_minutes));
    json!({
        "appointment_id": d.appointment_id,
        "arrived_at": time_json(s.arrived_at, tz),
        "checklist_done_at": time_json(s.checklist_done_at, tz),
        "checklist_stopped": d.checklist_stopped,
        "procedure_started_at": time_json(s.procedure_started_at, tz),
        "started_by": d.started_by,
        "procedure_ended_at": time_json(s.procedure_ended_at, tz),
        "ended_by": d.ended_by,
        "monitoring_minutes": s.monitoring_minutes,
        "monitoring_until": time_json(until, tz),
        "discharged_at": time_json(s.discharged_at, tz),
        "discharged_by": d.discharged_by,
        "discharge_override": s.discharge_override,
        "discharge_criteria": d.discharge_criteria,
    })
}

fn board_json(state: &AppState, b: &Board) -> Value {
    let tz = state.time_zone();
    json!({
        "date": b.date.to_string(),
        "time_zone": state.config().time_zone_name,
        "now": rfc3339_local(b.now, tz),
        "columns": Column::ALL.map(Column::key),
        "sites": b.sites.iter().map(|s| json!({
            "id": s.id,
            "name": s.name,
            "patients": s.rows.iter().map(|r| {
                let l = &r.listing;
                let a = &l.appointment;
                json!({
                    "case_id": a.case_id.get(),
                    "case_state": l.case_state.as_str(),
                    "column": r.column.key(),
                    "no_show": r.no_show,
                    "not_treated": r.not_treated,
                    "patient": {
                        "name": format!("{}, {}", l.family_name, l.given_name),
                        "mrn": l.mrn,
                    },
                    "procedure": { "code": l.procedure_code, "name": l.procedure_name },
                    "appointment": crate::scheduling_api::appointment_json(state, a),
                    "late": r.late,
                    "checklist": r.checklist.key(),
                    "minutes_left": r.minutes_left,
                    "day": r.day.as_ref().map(|d| day_json(state, d)),
                })
            }).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

// ---------------------------------------------------------------- JSON views

fn status_json(s: &ChecklistStatus) -> Value {
    json!({
        "complete": s.is_complete(),
        "required": s.required.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "done": s.done.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "missing": s.missing.iter().map(|i| i.as_str()).collect::<Vec<_>>(),
        "stops": s.stops.iter().map(|(i, why)| json!({"item": i.as_str(), "reason": why})).collect::<Vec<_>>(),
        "refusal": s.refusal(),
    })
}

fn answer_value(a: &Answer) -> Value {
    match a {
        Answer::BloodThinners(doses) => json!(
            doses
                .iter()
                .map(|d| json!({
                    "drug": d.drug,
                    "last_dose": d.date.to_string(),
                    "time": d.time.map(|t| t.strftime("%H:%M").to_string()),
                }))
                .collect::<Vec<_>>()
        ),
        Answer::Glucose(v) => json!(v),
        other => json!(other.encode()),
    }
}

fn checklist_json(state: &AppState, ctx: &DayContext, rec: Option<&ChecklistRecord>) -> Value {
    let tz = state.time_zone();
    let today = state.today();
    let recorded = rec.map(ChecklistRecord::recorded).unwrap_or_default();
    let status = day::status(&ctx.requirements, &recorded, today);
    let pack = state.rules();
    let mut out = Map::new();
    out.insert("case_id".to_owned(), json!(ctx.detail.case.id.get()));
    out.insert("state".to_owned(), json!(ctx.detail.case.state.as_str()));
    out.insert("checklist".to_owned(), status_json(&status));
    out.insert(
        "plan".to_owned(),
        json!({
            "held_drugs": ctx.requirements.held_drugs.iter().map(|h| json!({
                "drug": h.drug,
                "planned_last_dose": h.last_dose.map(|p| p.to_string()),
                "continued": h.continued,
            })).collect::<Vec<_>>(),
            "diabetic": ctx.requirements.diabetic,
            "glucose_max_mg_dl": ctx.requirements.glucose_max_mg_dl,
            "premedication": ctx.letter.premedication.iter().map(|p| json!({
                "what": p.what,
                "hours_before": p.hours_before,
                "at": p.at.as_ref().map(|z| rfc3339_local(z.timestamp(), tz)),
            })).collect::<Vec<_>>(),
            "has_mrn": ctx.requirements.has_mrn,
            "monitoring_minutes_if_driving": ctx.requirements.monitoring_minutes,
            "screening_escort": ctx.letter.escort,
            "screening_monitoring_minutes": ctx.decision.as_ref().and_then(|d| d.monitoring_minutes),
        }),
    );
    out.insert(
        "risks".to_owned(),
        json!({
            "rule": pack.day.consent.id,
            "source": pack.cite(&pack.day.consent),
            "verified": pack.day.consent.verified,
            "risks": pack.day.risks,
        }),
    );
    out.insert(
        "answers".to_owned(),
        json!(
            rec.map(|r| r
                .answers
                .iter()
                .map(|a| json!({
                    "item": a.answer.item().as_str(),
                    "value": answer_value(&a.answer),
                    "outcome": if matches!(a.outcome, Outcome::Stop(_)) { "stop" } else { "done" },
                    "reason": match &a.outcome { Outcome::Stop(m) => Some(m.clone()), Outcome::Done => None },
                    "note": a.note,
                    "recorded_by": a.recorded_by,
                    "recorded_at": rfc3339_local(a.recorded_at, tz),
                }))
                .collect::<Vec<_>>())
            .unwrap_or_default()
        ),
    );
    out.insert(
        "consent".to_owned(),
        json!(rec.and_then(|r| r.consent.as_ref()).map(|c| json!({
            "method": c.consent.method.as_str(),
            "signer": c.consent.signer,
            "witness": c.consent.witness,
            "signed_on_screen": c.consent.signature_png.is_some(),
            "risks": c.consent.risks,
            "rule_pack": c.rule_pack,
            "recorded_by": c.recorded_by,
            "recorded_at": rfc3339_local(c.recorded_at, tz),
        }))),
    );
    out.insert(
        "time_out".to_owned(),
        json!(rec.and_then(|r| r.time_out.as_ref()).map(|t| json!({
            "patient": t.time_out.patient,
            "procedure": t.time_out.procedure,
            "level": t.time_out.level,
            "side": t.time_out.side,
            "procedure_code": t.procedure_code,
            "levels": t.levels,
            "side_ordered": t.side,
            "recorded_by": t.recorded_by,
            "recorded_at": rfc3339_local(t.recorded_at, tz),
        }))),
    );
    out.insert(
        "day".to_owned(),
        json!(rec.map(|r| day_json(state, &r.day))),
    );
    Value::Object(out)
}

fn vitals_json(state: &AppState, v: &VitalsRecord) -> Value {
    json!({
        "id": v.id,
        "taken_at": rfc3339_local(v.taken_at, state.time_zone()),
        "systolic": v.vitals.systolic,
        "diastolic": v.vitals.diastolic,
        "pulse": v.vitals.pulse,
        "spo2": v.vitals.spo2,
        "pain": v.vitals.pain,
        "notes": v.vitals.notes,
        "recorded_by": v.recorded_by,
    })
}

pub(crate) fn criteria_json(state: &AppState) -> Value {
    let pack = state.rules();
    json!(
        pack.day
            .discharge
            .iter()
            .map(|c| json!({
                "id": c.meta.id,
                "label": c.label,
                "source": pack.cite(&c.meta),
                "verified": c.meta.verified,
            }))
            .collect::<Vec<_>>()
    )
}

// ---------------------------------------------------------------- API handlers

type ApiResult<T> = Result<T, ApiError>;

/// `GET /api/v1/today`: today's patients per site, in board columns.
pub async fn api_today(State(state): State<AppState>, caller: ApiCaller) -> ApiResult<Json<Value>> {
    let b = board(&state, &caller.actor()).await?;
    Ok(Json(board_json(&state, &b)))
}

/// `GET /api/v1/cases/{id}/checklist`: the checklist, what it requires and why.
pub async fn api_checklist(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    staff_only(&state, &actor).await?;
    let ctx = context(&state, &actor, id).await?;
    let rec = state
        .store()
        .checklist_record(&actor, id)
        .await
        .map_err(case_error)?;
    Ok(Json(checklist_json(&state, &ctx, rec.as_ref())))
}

/// `POST /api/v1/cases/{id}/checklist`: records one item. An answer that stops the
/// checklist is recorded and answered 422 with the reason.
pub async fn api_checklist_post(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    let raw = RawEntry::from_json(&body)?;
    let entry = parse_entry(&state, &raw)?;
    let saved = save_entry(&state, &actor, id, entry).await?;
    if let Outcome::Stop(why) = &saved.outcome {
        return Err(AppError::Invalid(format!(
            "{} recorded, and it stops the checklist: {why}",
            saved.item.label()
        ))
        .into());
    }
    Ok(Json(json!({
        "case_id": id.get(),
        "item": saved.item.as_str(),
        "outcome": "done",
        "checklist": status_json(&saved.status),
    }))
    .into_response())
}

fn moved_json(id: CaseId, event: &PathwayEvent, state: &AppState) -> Value {
    json!({
        "case_id": id.get(),
        "action": event.action.as_str(),
        "from": event.from.as_str(),
        "state": event.to.as_str(),
        "at": rfc3339_local(event.at, state.time_zone()),
    })
}

/// `POST /api/v1/cases/{id}/start`: starts the procedure once the checklist is complete.
pub async fn api_start(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let event = start(&state, &caller.actor(), id).await?;
    Ok(Json(moved_json(id, &event, &state)))
}

/// `POST /api/v1/cases/{id}/end`: ends the procedure; recovery begins.
pub async fn api_end(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let event = end(&state, &caller.actor(), id).await?;
    Ok(Json(moved_json(id, &event, &state)))
}

/// `POST /api/v1/cases/{id}/not-treated`: `{"reason": "..."}` — the patient goes home
/// untreated today; the booking is released and the case is ready to book again.
pub async fn api_not_treated(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let map = json_object(&body)?;
    let reason = match map.get("reason") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(AppError::BadRequest("reason must be text".to_owned()).into());
        }
    };
    if let Some(k) = map.keys().find(|k| k.as_str() != "reason") {
        return Err(AppError::BadRequest(format!(
            "unknown field {k:?}: the body is {{\"reason\": \"...\"}}"
        ))
        .into());
    }
    let event = not_treated(&state, &caller.actor(), id, &reason).await?;
    let mut v = moved_json(id, &event, &state);
    v["reason"] = json!(event.reason);
    v["rebook"] = json!(format!("/api/v1/cases/{id}/appointment"));
    Ok(Json(v))
}

async fn recovery_value(state: &AppState, actor: &Actor, id: CaseId) -> Result<Value, AppError> {
    staff_only(state, actor).await?;
    let detail = state
        .store()
        .case_detail(actor, id)
        .await
        .map_err(case_error)?;
    let status = state
        .store()
        .day_records(actor, &[id])
        .await
        .map_err(case_error)?;
    let vitals = state.store().vitals(actor, id).await.map_err(case_error)?;
    let now = Timestamp::now();
    let day = status.first();
    let until = day.and_then(|d| {
        d.status
            .procedure_ended_at
            .and_then(|e| day::monitoring_until(e, d.status.monitoring_minutes))
    });
    Ok(json!({
        "case_id": id.get(),
        "state": detail.case.state.as_str(),
        "day": day.map(|d| day_json(state, d)),
        "monitoring_until": time_json(until, state.time_zone()),
        "minutes_left": until
            .filter(|_| detail.case.state == CaseState::Recovery)
            .map(|u| day::minutes_left(u, now)),
        "criteria": criteria_json(state),
        "vitals": vitals.iter().map(|v| vitals_json(state, v)).collect::<Vec<_>>(),
        "discharge_instructions": format!("/api/v1/cases/{id}/discharge-instructions"),
    }))
}

/// `GET /api/v1/cases/{id}/recovery`: the day's times, monitoring left, criteria, vitals.
pub async fn api_recovery(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    Ok(Json(recovery_value(&state, &caller.actor(), id).await?))
}

/// `GET /api/v1/cases/{id}/vitals`.
pub async fn api_vitals(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    staff_only(&state, &actor).await?;
    let vitals = state.store().vitals(&actor, id).await.map_err(case_error)?;
    Ok(Json(json!({
        "case_id": id.get(),
        "vitals": vitals.iter().map(|v| vitals_json(&state, v)).collect::<Vec<_>>(),
    })))
}

fn json_object(body: &[u8]) -> Result<Map<String, Value>, AppError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(AppError::BadRequest(
            "the body must be a JSON object".to_owned(),
        )),
        Err(e) => Err(AppError::BadRequest(format!(
            "the body must be a JSON object: {e}"
        ))),
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `POST /api/v1/cases/{id}/vitals`: `{"taken_at"?, "systolic", "diastolic", "pulse", "spo2", "pain", "notes"}`.
pub async fn api_vitals_post(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let id = parse_case_id(&id)?;
    let map = json_object(&body)?;
    let (vitals, taken_at) = parse_vitals(
        |k| map.get(k).and_then(text_of),
        state.time_zone(),
        state.today(),
    )?;
    let vid = add_vitals(&state, &caller.actor(), id, &vitals, taken_at).await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "case_id": id.get(), "id": vid })),
    )
        .into_response())
}

/// `POST /api/v1/cases/{id}/discharge`: `{"criteria": [ids] | "all", "override_reason"?}`.
pub async fn api_discharge(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let id = parse_case_id(&id)?;
    let map = json_object(&body)?;
    let confirmed = match map.get("criteria") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.as_str().map(str::to_owned).ok_or_else(|| {
                    AppError::BadRequest("criteria must be a list of criterion ids".to_owned())
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => Vec::new(),
        _ => {
            return Err(AppError::BadRequest(
                "criteria must be a list of criterion ids (see GET /api/v1/cases/{id}/recovery)"
                    .to_owned(),
            )
            .into());
        }
    };
    let override_reason = match map.get("override_reason") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(AppError::BadRequest("override_reason must be text".to_owned()).into());
        }
    };
    let actor = caller.actor();
    let done = discharge(&state, &actor, id, confirmed, override_reason).await?;
    let (sent, message_id) = match &done.sent {
        Sent::Queued {
            channel,
            message_id,
        } => (json!(channel), json!(message_id)),
        _ => (Value::Null, Value::Null),
    };
    Ok(Json(json!({
        "case_id": id.get(),
        "state": CaseState::Discharged.as_str(),
        "override_reason": done.override_reason,
        "instructions": {
            "print": format!("/cases/{id}/discharge-instructions"),
            "api": format!("/api/v1/cases/{id}/discharge-instructions"),
            "sent_by": sent,
            "message_id": message_id,
            "note": done.sent.describe(),
        },
    })))
}

/// Minutes left as words.
pub(crate) fn left_words(minutes: i64) -> String {
    match minutes {
        0 => "monitoring time done".to_owned(),
        1 => "1 minute left".to_owned(),
        n => format!("{n} minutes left"),
    }
}

/// A duration since, as words ("12 min").
pub(crate) fn since_words(from: Timestamp, now: Timestamp) -> String {
    let mins = (now.duration_since(from).as_secs() / 60).max(0);
    if mins < 60 {
        format!("{mins} min")
    } else {
        format!("{} h {:02} min", mins / 60, mins % 60)
    }
}

/// Local clock time.
pub(crate) fn clock(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%H:%M")
        .to_string()
}
