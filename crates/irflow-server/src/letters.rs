//! Patient letters for a case. [`compose`] gathers the facts — the case and patient,
//! the procedure from the catalogue, the booked appointment, the latest screening
//! re-evaluated for the appointment's date exactly as booking does, the prescriber's
//! clearances — through audited store reads as the caller, and has the department's
//! templates (`irflow-letters`) put them into words. The handlers serve the
//! preparation and discharge instructions as a print-ready page or plain text.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use irflow_domain::reminders::{LastDoseBy, last_dose};
use irflow_domain::screening::{
    ActionKind, AntibioticReason, Finding, Medication, ScreeningDecision, ScreeningFacts, Symptoms,
};
use irflow_domain::{Actor, CaseId, Modality};
use irflow_letters::{
    AppointmentTimes, Department, DiabetesFacts, Guidance, HeldDrug, Lang, LastDose, Letter,
    LetterError, LetterFacts, LetterKind, PatientLinkFacts, PremedicationDose, ProcedureFacts,
};
use irflow_store::{ActionStatus, AuditOutcome, NewAuditEvent, ScreeningRecord};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ZonedDateTime};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Digest as _;

use crate::api::{ApiError, parse_case_id};
use crate::pages::case_error;
use crate::session::{ApiCaller, SignedIn};
use crate::{AppError, AppState};

/// Default days after the procedure when the follow-up call comes (PRODUCT.md: "at
/// about 2 weeks"); the `letters.follow_up_days` setting.
pub const FOLLOW_UP_DAYS: u32 = 14;

/// Facts a letter needs that are not in the case: the patient link being sent, and
/// which blood thinner a hold-start reminder is about.
#[derive(Debug, Clone, Default)]
pub(crate) struct LetterExtras {
    /// The patient's personal link (for [`LetterKind::PatientLink`]).
    pub link_url: Option<String>,
    /// When that link stops working.
    pub link_expires: Option<Timestamp>,
    /// For [`LetterKind::ReminderHoldStart`]: the drug (as the rule pack names it);
    /// `None`: the first held drug.
    pub hold_drug: Option<String>,
    /// For reminders: when it is sent ("today" and "tomorrow" are from that day).
    pub reminder_at: Option<Timestamp>,
}

/// Composes one letter for a case. Every read is audited as `actor` (case, scheduling
/// context) and the letter itself is audited (`read letter`, with its kind and
/// language); a case the actor may not see is "not found". `lang: None` means the
/// patient's preferred language, or English when letters are not written in it.
pub(crate) async fn compose(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    kind: LetterKind,
    lang: Option<Lang>,
    extras: &LetterExtras,
) -> Result<Letter, AppError> {
    let result = match gather(state, actor, case_id, extras).await {
        Ok((facts, preferred, _)) => render_gathered(state, kind, lang, &facts, &preferred),
        Err(e) => Err(e),
    };
    audit_letter(state, actor, case_id, kind, &result).await?;
    result
}

/// Several letters for one case in the patient's language, from one gathering of its
/// facts (a booking's reminders: one letter per kind of reminder), each with its own
/// extras and audited as [`compose`] audits one. Gathering reads the case, its
/// context, the catalogue and the imaging on file, each an audited read: composed
/// one by one, those reads were most of a booking's statements.
pub(crate) async fn compose_each(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    wanted: &[(LetterKind, LetterExtras)],
) -> Result<Vec<Letter>, AppError> {
    let Some((first, _)) = wanted.first() else {
        return Ok(Vec::new());
    };
    let (facts, preferred, _) = match gather(state, actor, case_id, &LetterExtras::default()).await
    {
        Ok(g) => g,
        Err(e) => {
            let failed = Err(e);
            audit_letter(state, actor, case_id, *first, &failed).await?;
            return failed.map(|l| vec![l]);
        }
    };
    let tz = state.time_zone();
    let mut letters = Vec::with_capacity(wanted.len());
    for (kind, extras) in wanted {
        let mut these = facts.clone();
        with_extras(&mut these, extras, tz);
        let result = render_gathered(state, *kind, None, &these, &preferred);
        audit_letter(state, actor, case_id, *kind, &result).await?;
        letters.push(result?);
    }
    Ok(letters)
}

/// Records that a letter was read (or why it could not be).
async fn audit_letter(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    kind: LetterKind,
    result: &Result<Letter, AppError>,
) -> Result<(), AppError> {
    let outcome = match result {
        Ok(_) => AuditOutcome::Success,
        Err(AppError::NotFound(_)) => AuditOutcome::NotFound,
        Err(AppError::Forbidden(_) | AppError::Unauthenticated) => AuditOutcome::Denied,
        Err(AppError::Internal(_)) => AuditOutcome::Error,
        Err(_) => AuditOutcome::Invalid,
    };
    let detail = match result {
        Ok(letter) => format!("kind={} lang={}", kind.as_str(), letter.lang),
        Err(_) => format!("kind={}", kind.as_str()),
    };
    state
        .store()
        .record_audit(
            NewAuditEvent::new(actor, "read", "letter", outcome)
                .entity(case_id)
                .detail(detail),
        )
        .await?;
    Ok(())
}

/// The gathered facts put into words: in `lang`, or the patient's preferred language
/// (English when letters are not written in it).
fn render_gathered(
    state: &AppState,
    kind: LetterKind,
    lang: Option<Lang>,
    facts: &LetterFacts,
    preferred: &str,
) -> Result<Letter, AppError> {
    let lang = match lang {
        Some(l) => l,
        None => Lang::from_preference(preferred).unwrap_or(Lang::En),
    };
    state
        .letters()
        .render(kind, lang, facts)
        .map_err(|e| match e {
            LetterError::MissingFact(m) => {
                AppError::Conflict(format!("cannot write this letter: {m}"))
            }
            template @ LetterError::Template { .. } => AppError::Internal(template.to_string()),
        })
}

/// What [`gather`] reads: the letter's facts, the patient's preferred language tag,
/// and the screening as re-evaluated for the appointment.
type Gathered = (
    LetterFacts,
    String,
    Option<(ScreeningFacts, ScreeningDecision)>,
);

/// Sets the facts that come from the caller rather than the case.
fn with_extras(facts: &mut LetterFacts, extras: &LetterExtras, tz: &TimeZone) {
    facts.link = extras.link_url.as_ref().map(|url| PatientLinkFacts {
        url: url.clone(),
        expires: extras.link_expires.map(|t| zoned(t, tz)),
    });
    facts.reminder_drug.clone_from(&extras.hold_drug);
    facts.reminder_at = extras.reminder_at.map(|t| zoned(t, tz));
}

/// The seam for outside imaging (issue 7): whether a recent MRI or CT covering the
/// treated region of the spine is on file for the case (an audited read). When it is
/// not — or cannot be read — letters ask the patient to bring theirs.
async fn imaging_on_file(
    state: &AppState,
    actor: &Actor,
    case: &irflow_store::CaseSummary,
) -> bool {
    crate::imaging_pages::suitable_on_file(state, actor, case).await
}

/// The procedure's plain name for patients in a language, as the letters name it: the
/// language's `procedures.toml`, else the catalogue's plain name; `None` when the
/// catalogue does not know the code.
pub(crate) async fn procedure_name(
    state: &AppState,
    code: &str,
    lang: Lang,
) -> Result<Option<String>, AppError> {
    let catalogue = state
        .store()
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == code)
        .map(|p| p.patient_name)
        .filter(|n| !n.trim().is_empty());
    Ok(state
        .letters()
        .translated_procedure_name(lang, code)
        .map(str::to_owned)
        .or(catalogue))
}

/// Whether the case's latest MRI or CT is on file, as the letters say it (the
/// calendar file's "bring your scan" line asks the same).
pub(crate) async fn imaging_on_file_for(
    state: &AppState,
    actor: &Actor,
    case: &irflow_store::CaseSummary,
) -> bool {
    imaging_on_file(state, actor, case).await
}

fn zoned(t: Timestamp, tz: &TimeZone) -> ZonedDateTime {
    t.to_zoned_datetime(tz.clone())
}

/// The facts the procedure day's checklist is checked against: the letter's facts as
/// the patient was told them (each held drug's last dose, premedication, diabetes,
/// escort) and the screening re-evaluated for the appointment — one computation, so
/// the checklist and the letters never disagree.
pub(crate) async fn day_facts(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
) -> Result<(LetterFacts, Option<ScreeningDecision>), AppError> {
    let (letter, _, screened) = gather(state, actor, case_id, &LetterExtras::default()).await?;
    Ok((letter, screened.map(|(_, decision)| decision)))
}

/// The letter's facts, the patient's preferred language tag, and the screening as
/// re-evaluated for the appointment.
async fn gather(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    extras: &LetterExtras,
) -> Result<Gathered, AppError> {
    let detail = state
        .store()
        .case_detail(actor, case_id)
        .await
        .map_err(case_error)?;
    let ctx = state
        .store()
        .scheduling_context(actor, case_id)
        .await
        .map_err(case_error)?;
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
    let tz = state.time_zone();
    let config = state.config();
    let appointment = ctx.appointment.as_ref();
    let times = appointment.map(|a| AppointmentTimes {
        start: zoned(a.start, tz),
        end: zoned(a.end, tz),
        arrive_by: zoned(crate::scheduling_api::arrive_by(state, a.start), tz),
    });

    // The guidance: the booked room's modality, else the radiologist's plan, else
    // the procedure's only modality.
    let room_modality = match appointment {
        Some(a) => state
            .store()
            .rooms(a.site_id)
            .await?
            .into_iter()
            .find(|r| r.id == a.room_id)
            .map(|r| r.modality),
        None => None,
    };
    let only_modality = match procedure.modalities.as_slice() {
        [only] => Some(*only),
        _ => None,
    };
    let guidance = match room_modality.or(ctx.plan.guidance).or(only_modality) {
        Some(Modality::Fluoroscopy) => Guidance::Fluoroscopy,
        Some(Modality::Ct) => Guidance::Ct,
        None => Guidance::Either,
    };

    let screened = match &ctx.screening {
        Some(record) => Some(reevaluate(
            state,
            record,
            &detail.case.procedure_code,
            times.as_ref().map(|t| &t.start),
        )?),
        None => None,
    };
    let pack = state.rules();
    let mut blood_thinners = Vec::new();
    let mut premedication = Vec::new();
    if let (Some((facts, decision)), Some(record)) = (&screened, &ctx.screening) {
        for finding in &decision.findings {
            if let Some(held) = held_drug(state, facts, finding, record, times.as_ref()) {
                blood_thinners.push(held);
            }
        }
        // No contrast in the radiologist's plan: no premedication for it.
        if ctx.plan.contrast != Some(false) {
            for finding in &decision.findings {
                premedication.extend(finding.premedication.iter().map(|p| PremedicationDose {
                    what: p.what.clone(),
                    hours_before: p.hours_before,
                    at: p.at.map(|t| zoned(t, tz)),
                }));
            }
        }
    }
    let facts = screened.as_ref().map(|(f, _)| f);
    let mut letter = LetterFacts {
        patient_first_name: detail.patient.given_name.clone(),
        procedure: ProcedureFacts {
            code: procedure.code.clone(),
            plain_name: procedure.patient_name.clone(),
            guidance,
            minutes: u32::from(procedure.duration_minutes),
        },
        appointment: times,
        arrive_minutes_before: config.arrive_minutes_before,
        department: Department {
            name: config.department_name.clone(),
            address: config.department_address.clone(),
            phone: config.department_phone.clone(),
        },
        imaging_on_file: imaging_on_file(state, actor, &detail.case).await,
        blood_thinners,
        antibiotic_window_days: pack.policy.antibiotic_window_days,
        antibiotics_for_infection: facts.is_some_and(|f| {
            f.antibiotics
                .iter()
                .any(|a| a.reason == AntibioticReason::ActiveInfection)
        }),
        mild_symptoms: facts.and_then(|f| f.symptoms).map(|s| s == Symptoms::Mild),
        escort: facts.and_then(|f| f.escort_available),
        monitoring_minutes: pack.policy.monitoring_minutes,
        premedication,
        diabetes: facts
            .and_then(|f| f.diabetes)
            .map(|d| DiabetesFacts { insulin: d.insulin }),
        no_heavy_lifting_days: pack.policy.no_heavy_lifting_days,
        follow_up_days: config.follow_up_days,
        link: None,
        reminder_drug: None,
        reminder_at: None,
    };
    with_extras(&mut letter, extras, tz);
    Ok((letter, detail.patient.preferred_language, screened))
}

/// The stored screening re-evaluated as booking does: the case's procedure, today at
/// the site, and the appointment's date and start (which times premedication). A
/// letter read after the appointment evaluates as of the appointment's day.
fn reevaluate(
    state: &AppState,
    record: &ScreeningRecord,
    procedure_code: &str,
    start: Option<&ZonedDateTime>,
) -> Result<(ScreeningFacts, ScreeningDecision), AppError> {
    let mut stored: Value = serde_json::from_str(&record.facts_json)
        .map_err(|e| AppError::Internal(format!("stored facts: {e}")))?;
    let mut today = state.today();
    if let Some(o) = stored.as_object_mut() {
        o.remove("procedure");
        o.remove("today");
        o.remove("proposed_date");
        o.remove("appointment_time");
        if let Some(start) = start {
            today = today.min(start.date());
            o.insert("proposed_date".to_owned(), json!(start.date().to_string()));
            o.insert(
                "appointment_time".to_owned(),
                json!(start.time().strftime("%H:%M").to_string()),
            );
        }
    }
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

/// The medication a hold plan is about (the pack may know it by another name).
fn medication_for<'a>(
    state: &AppState,
    facts: &'a ScreeningFacts,
    drug: &str,
) -> Option<&'a Medication> {
    let rule_names: Vec<&String> = state
        .rules()
        .drugs
        .iter()
        .filter(|d| d.drug == drug)
        .flat_map(|d| d.aliases.iter())
        .collect();
    facts
        .medications
        .iter()
        .find(|m| m.drug == drug || rule_names.contains(&&m.drug))
}

fn at_local(date: Date, time: Time, tz: &TimeZone) -> Option<ZonedDateTime> {
    date.to_datetime(time).to_zoned_datetime(tz.clone()).ok()
}

/// A blood thinner's plan as the patient follows it: the last dose (as recorded, or
/// the latest the rule allows before the appointment), whether the prescriber
/// agreed, and the restart (the procedure's end + the pack's restart hours).
fn held_drug(
    state: &AppState,
    facts: &ScreeningFacts,
    finding: &Finding,
    record: &ScreeningRecord,
    times: Option<&AppointmentTimes>,
) -> Option<HeldDrug> {
    let hold = finding.hold.as_ref()?;
    let tz = state.time_zone();
    let med = medication_for(state, facts, &hold.drug);
    let recorded = med.and_then(|m| m.last_dose);
    let recorded_time = med.and_then(|m| m.last_dose_time);
    // The same computation as the reminders' (`irflow_domain::reminders::last_dose`).
    let last_dose = match times {
        Some(t) => last_dose(hold, &t.start, recorded, recorded_time).map(|l| match l {
            LastDoseBy::Day(day) => LastDose::Day(day),
            LastDoseBy::At(at) => LastDose::At(at),
        }),
        // Not booked: only a last dose the patient gave can be said.
        None => recorded.map(|day| {
            match recorded_time
                .filter(|_| hold.earliest_at.is_some())
                .and_then(|t| at_local(day, t, tz))
            {
                Some(at) => LastDose::At(at),
                None => LastDose::Day(day),
            }
        }),
    };
    let decided = |cleared: bool| {
        record.actions.iter().any(|a| {
            a.kind == ActionKind::PrescriberClearance
                && a.rule_id == finding.rule_id
                && a.status == ActionStatus::Done
                && a.cleared == Some(cleared)
        })
    };
    let (prescriber_agreed, prescriber_declined) = (decided(true), decided(false));
    if prescriber_declined {
        // Not held: no last dose, no restart.
        return Some(HeldDrug {
            drug: hold.drug.clone(),
            last_dose: None,
            prescriber_agreed: false,
            prescriber_declined: true,
            restart_at: None,
            restart_hours: None,
        });
    }
    let restart_at = match (hold.restart_hours, times) {
        (Some(h), Some(t)) => t
            .end
            .timestamp()
            .checked_add(SignedDuration::from_hours(i64::from(h)))
            .ok()
            .map(|r| zoned(r, tz)),
        _ => None,
    };
    Some(HeldDrug {
        drug: hold.drug.clone(),
        last_dose,
        prescriber_agreed,
        prescriber_declined: false,
        restart_at,
        restart_hours: hold.restart_hours,
    })
}

/// Query of the instruction endpoints.
#[derive(Debug, Deserialize)]
pub struct LetterQuery {
    lang: Option<String>,
}

fn requested_lang(
    query: Result<Query<LetterQuery>, QueryRejection>,
) -> Result<Option<Lang>, AppError> {
    let Query(q) = query.map_err(|e| AppError::BadRequest(e.body_text()))?;
    match q.lang.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(raw) => Lang::parse(raw).map(Some).ok_or_else(|| {
            AppError::BadRequest(format!(
                "lang {raw:?} is not a language letters are written in; use en (English) or es (Spanish), or leave it out for the patient's preferred language"
            ))
        }),
    }
}

/// Whether the client prefers plain text to HTML (`Accept`, with q-values).
fn wants_plain_text(headers: &HeaderMap) -> bool {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let quality = |wanted: &str| -> f32 {
        let (kind, _) = wanted.split_once('/').unwrap_or((wanted, ""));
        let mut best: Option<(u8, f32)> = None;
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|v| v.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let specificity = if media == wanted {
                2
            } else if media == format!("{kind}/*") {
                1
            } else if media == "*/*" {
                0
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| specificity > s) {
                best = Some((specificity, q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let text = quality("text/plain");
    text > 0.0 && text > quality("text/html")
}

/// The Content-Security-Policy of a letter page: nothing but its own inline
/// stylesheet (allowed by hash), no scripts, no framing.
fn letter_csp(state: &AppState) -> Option<HeaderValue> {
    let hash = sha2::Sha256::digest(state.letters().css().as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(hash);
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{b64}'; img-src 'self' data:; \
         frame-ancestors 'none'; form-action 'none'; base-uri 'none'"
    ))
    .ok()
}

/// A letter as a response: the print-ready page (with a CSP that admits its inline
/// stylesheet), or its plain text.
pub(crate) fn letter_response(state: &AppState, letter: Letter, plain_text: bool) -> Response {
    let language = HeaderValue::from_static(letter.lang.as_str());
    let mut response = if plain_text {
        (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            letter.text,
        )
            .into_response()
    } else {
        let mut r = (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            letter.html_document,
        )
            .into_response();
        if let Some(csp) = letter_csp(state) {
            r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, csp);
        }
        r
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_LANGUAGE, language);
    h.insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

async fn serve_letter(
    state: &AppState,
    actor: &Actor,
    raw_id: &str,
    query: Result<Query<LetterQuery>, QueryRejection>,
    headers: &HeaderMap,
    kind: LetterKind,
) -> Result<Response, AppError> {
    let id = parse_case_id(raw_id)?;
    let lang = requested_lang(query)?;
    let letter = compose(state, actor, id, kind, lang, &LetterExtras::default()).await?;
    Ok(letter_response(state, letter, wants_plain_text(headers)))
}

/// `GET /api/v1/cases/{id}/instructions?lang=en|es`: the preparation instructions.
pub async fn api_instructions(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    query: Result<Query<LetterQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Ok(serve_letter(
        &state,
        &caller.actor(),
        &id,
        query,
        &headers,
        LetterKind::Instructions,
    )
    .await?)
}

/// `GET /api/v1/cases/{id}/discharge-instructions?lang=en|es`.
pub async fn api_discharge(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    query: Result<Query<LetterQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Ok(serve_letter(
        &state,
        &caller.actor(),
        &id,
        query,
        &headers,
        LetterKind::Discharge,
    )
    .await?)
}

/// `GET /cases/{id}/instructions?lang=en|es`: the same for staff signed in to the pages
/// (the case page links here to print).
pub async fn page_instructions(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<LetterQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    serve_letter(
        &state,
        &who.actor(),
        &id,
        query,
        &headers,
        LetterKind::Instructions,
    )
    .await
    .unwrap_or_else(|e| crate::pages::error_page(&state, Some(&who), &e))
}

/// `GET /cases/{id}/discharge-instructions?lang=en|es`.
pub async fn page_discharge(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    query: Result<Query<LetterQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Response {
    serve_letter(
        &state,
        &who.actor(),
        &id,
        query,
        &headers,
        LetterKind::Discharge,
    )
    .await
    .unwrap_or_else(|e| crate::pages::error_page(&state, Some(&who), &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).expect("header"));
        h
    }

    #[test]
    fn plain_text_only_when_preferred() {
        assert!(wants_plain_text(&accept("text/plain")));
        assert!(wants_plain_text(&accept("text/plain, text/html;q=0.5")));
        assert!(!wants_plain_text(&accept("text/html, text/plain;q=0.9")));
        assert!(!wants_plain_text(&accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        )));
        assert!(!wants_plain_text(&accept("*/*")));
        assert!(!wants_plain_text(&HeaderMap::new()));
        assert!(wants_plain_text(&accept("text/*;q=0.2, text/plain")));
    }
}
