//! The procedure day in the demo: a patient's day — check-in, the checklist, the
//! start and end of the procedure, vital signs, the radiologist's signed record, the
//! discharge — recorded at given times through the same store calls the pages use,
//! and what the pages send then (the report to the referrer on signing, the
//! discharge instructions on discharge) queued in the outbox at those times. The
//! demo's cases already done, today's list and the weeks of history all go through
//! here.

use anyhow::{Context, Result};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::procedure_day::{
    Answer, Consent, ConsentMethod, EscortPlan, IdentityCheck, PregnancyStatus, Requirements,
    TimeOut, Vitals,
};
use irflow_domain::procedure_record::ProcedureRecordForm;
use irflow_domain::screening::RulePack;
use irflow_domain::{Action, Actor, CaseId};
use irflow_server::AppState;
use irflow_store::procedure_day::DischargeRequest;
use irflow_store::{SignedRecord, Store};
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// Who does what on the day.
#[derive(Debug, Clone)]
pub struct DayTeam {
    /// Checks in, keeps the checklist, takes vitals, discharges.
    pub nurse: Actor,
    /// The nurse's name as a consent's witness.
    pub nurse_name: String,
    /// Time-out, start and end; signs the record.
    pub radiologist: Actor,
    /// The radiologist's name as it stands under the record.
    pub radiologist_name: String,
    /// What the pages send on signing and on discharge goes out through this state.
    pub server: AppState,
}

impl DayTeam {
    /// The team of `nurse` and `radiologist` (usernames), sending through `server`.
    pub async fn of(
        store: &Store,
        nurse: &str,
        radiologist: &str,
        server: &AppState,
    ) -> Result<Self> {
        let nurse = store.user_by_username(nurse).await?;
        let radiologist = store.user_by_username(radiologist).await?;
        Ok(DayTeam {
            nurse_name: nurse.display_name.clone(),
            nurse: nurse.actor(),
            radiologist_name: radiologist.display_name.clone(),
            radiologist: radiologist.actor(),
            server: server.clone(),
        })
    }
}

/// How far the checklist gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecklistExtent {
    /// Identity and consent only: the nurse is still on it.
    InProgress,
    /// Everything, the time-out included.
    Complete,
}

/// Vital signs taken at a time: when, blood pressure (systolic, diastolic), pulse,
/// SpO2, pain.
pub type VitalsAt = (Timestamp, (u32, u32), u32, u32, u32);

/// A patient's day: each step happens at its time, if it is given.
#[derive(Debug, Clone)]
pub struct DayPlan {
    /// Check in (`None`: already checked in, or not yet).
    pub arrive: Option<Timestamp>,
    /// The checklist starts here; items follow a minute apart.
    pub checklist: Option<(Timestamp, ChecklistExtent)>,
    /// The patient drives home (monitored) rather than going with an escort.
    pub drives: bool,
    /// The procedure starts.
    pub start: Option<Timestamp>,
    /// The procedure ends.
    pub end: Option<Timestamp>,
    /// Vital signs.
    pub vitals: Vec<VitalsAt>,
    /// The radiologist signs an uneventful record of the procedure as ordered (and
    /// the report goes to the referrer).
    pub sign: Option<Timestamp>,
    /// The patient goes home (all criteria confirmed; an override when early).
    pub discharge: Option<(Timestamp, Option<&'static str>)>,
}

/// The server state the demo sends its messages through (the built-in letters, the
/// site's zone, images in memory: the demo's seeding stores none).
pub fn server(store: &Store, tz: &TimeZone, pack: &RulePack) -> Result<AppState> {
    let config = irflow_server::ServerConfig {
        time_zone_name: tz.iana_name().unwrap_or("America/New_York").to_owned(),
        ..irflow_server::ServerConfig::default()
    };
    AppState::new(store.clone(), config, pack.clone()).map_err(anyhow::Error::msg)
}

/// The checklist requirements of a demo patient with no hold, diabetes or premedication.
pub fn plain_requirements(pack: &RulePack, has_mrn: bool) -> Requirements {
    Requirements {
        has_mrn,
        monitoring_minutes: pack.policy.monitoring_minutes,
        ..Requirements::default()
    }
}

fn minutes(m: i64) -> SignedDuration {
    SignedDuration::from_mins(m)
}

/// Records a patient's day. Steps are taken in order; each at its own time.
pub async fn record_day(
    store: &Store,
    pack: &RulePack,
    team: &DayTeam,
    case: CaseId,
    plan: &DayPlan,
    tz: &TimeZone,
) -> Result<()> {
    let day_of = |t: Timestamp| -> Date { t.to_zoned_datetime(tz.clone()).date() };
    let detail = store.case_detail(&team.nurse, case).await?;
    let has_mrn = detail.patient.mrn.is_some();
    let req = plain_requirements(pack, has_mrn);
    let what = format!("demo day of case {case}");
    if let Some(at) = plan.arrive {
        store
            .transition_case(
                &team.nurse,
                case,
                &TransitionRequest::new(Action::CheckIn),
                None,
                at,
                day_of(at),
            )
            .await
            .with_context(|| format!("{what}: check-in"))?;
    }
    if let Some((at, extent)) = plan.checklist {
        let today = day_of(at);
        let identity = if has_mrn {
            IdentityCheck::NameAndMrn
        } else {
            IdentityCheck::NameAndDateOfBirth
        };
        store
            .record_answer(
                &team.nurse,
                case,
                &Answer::Identity(identity),
                None,
                &req,
                at,
                today,
            )
            .await
            .with_context(|| format!("{what}: identity"))?;
        store
            .record_consent(
                &team.nurse,
                case,
                &Consent {
                    method: ConsentMethod::Paper,
                    signer: format!(
                        "{} {}",
                        detail.patient.given_name, detail.patient.family_name
                    ),
                    signature_png: None,
                    witness: team.nurse_name.clone(),
                    risks: pack.day.risks.clone(),
                },
                &format!("{} {}", pack.name, pack.version),
                &req,
                at + minutes(1),
                today,
            )
            .await
            .with_context(|| format!("{what}: consent"))?;
        if extent == ChecklistExtent::Complete {
            let escort = if plan.drives {
                EscortPlan::Monitoring
            } else {
                EscortPlan::Escort
            };
            for (k, answer) in [
                Answer::Escort(escort),
                Answer::AllergiesReviewed,
                Answer::Pregnancy(PregnancyStatus::NotPossible),
            ]
            .into_iter()
            .enumerate()
            {
                let k = i64::try_from(k).unwrap_or(0);
                store
                    .record_answer(
                        &team.nurse,
                        case,
                        &answer,
                        None,
                        &req,
                        at + minutes(2 + k),
                        today,
                    )
                    .await
                    .with_context(|| format!("{what}: {}", answer.item()))?;
            }
            store
                .record_time_out(
                    &team.radiologist,
                    case,
                    &TimeOut {
                        patient: true,
                        procedure: true,
                        level: true,
                        side: true,
                    },
                    &req,
                    at + minutes(6),
                    today,
                )
                .await
                .with_context(|| format!("{what}: time-out"))?;
        }
    }
    if let Some(at) = plan.start {
        store
            .start_procedure(&team.radiologist, case, &req, at, day_of(at))
            .await
            .with_context(|| format!("{what}: start"))?;
    }
    if let Some(at) = plan.end {
        store
            .end_procedure(&team.radiologist, case, at, day_of(at))
            .await
            .with_context(|| format!("{what}: end"))?;
    }
    for (at, (systolic, diastolic), pulse, spo2, pain) in &plan.vitals {
        store
            .record_vitals(
                &team.nurse,
                case,
                &Vitals {
                    systolic: Some(*systolic),
                    diastolic: Some(*diastolic),
                    pulse: Some(*pulse),
                    spo2: Some(*spo2),
                    pain: Some(*pain),
                    notes: String::new(),
                },
                *at,
                *at,
            )
            .await
            .with_context(|| format!("{what}: vitals"))?;
    }
    if let Some(at) = plan.sign {
        let form = plain_record(store, &team.radiologist, case).await?;
        let details = form
            .check(&store.procedures().await?, &pack.procedure_record, false)
            .map_err(|e| anyhow::anyhow!("{what}: the record: {e}"))?;
        let signed = store
            .sign_procedure_record(
                &team.radiologist,
                &team.radiologist_name,
                case,
                &details,
                at,
            )
            .await
            .with_context(|| format!("{what}: signature"))?;
        send_report(team, &signed, at).await?;
    }
    if let Some((at, override_reason)) = plan.discharge {
        let criteria: Vec<(String, String)> = pack
            .day
            .discharge
            .iter()
            .map(|c| (c.meta.id.clone(), c.label.clone()))
            .collect();
        store
            .discharge(
                &team.nurse,
                case,
                &DischargeRequest {
                    confirmed: criteria.iter().map(|c| c.0.clone()).collect(),
                    criteria,
                    override_reason: override_reason.map(str::to_owned),
                },
                tz,
                at,
                day_of(at),
            )
            .await
            .with_context(|| format!("{what}: discharge"))?;
        irflow_server::send_discharge_instructions(&team.server, &team.nurse, case, at)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: the discharge instructions: {e}"))?;
        deliver_due(team.server.store(), at)
            .await
            .with_context(|| format!("{what}: delivering the discharge instructions"))?;
    }
    Ok(())
}

/// The report to the referrer of a record signed at `at`, queued as the record page's
/// signature queues it.
pub async fn send_report(team: &DayTeam, signed: &SignedRecord, at: Timestamp) -> Result<()> {
    irflow_server::send_procedure_report(&team.server, &team.radiologist, signed, at).await;
    deliver_due(team.server.store(), at)
        .await
        .context("delivering the procedure report")
}

/// Delivers what the outbox holds due by `at` as the worker did then: the demo's past
/// is over, so its messages went out at the time, each with its attempt recorded, and
/// the running worker (and the tests' workers) find nothing of it left to send.
async fn deliver_due(store: &Store, at: Timestamp) -> Result<()> {
    use irflow_store::outbox::AttemptResult;
    const WORKER: &str = "demo-history";
    let claimed = store
        .claim_due_messages(WORKER, at, 1000, SignedDuration::from_mins(5))
        .await?;
    for message in claimed {
        if let Some(attempt) = store.begin_attempt(WORKER, message.id, at).await? {
            store
                .finish_attempt(
                    WORKER,
                    message.id,
                    attempt,
                    &AttemptResult::Sent("delivered at the time (demo history)".to_owned()),
                    at + SignedDuration::from_secs(2),
                )
                .await?;
        }
    }
    Ok(())
}

/// An uneventful record of the procedure as ordered: its levels and side, the booked
/// room's guidance, a little contrast, dexamethasone (non-particulate, as suggested
/// for transforaminal injections), lidocaine, no complication.
async fn plain_record(store: &Store, actor: &Actor, case: CaseId) -> Result<ProcedureRecordForm> {
    let detail = store.case_detail(actor, case).await?;
    let c = &detail.case;
    let procedure = store
        .procedures()
        .await?
        .into_iter()
        .find(|p| p.code == c.procedure_code)
        .with_context(|| format!("procedure {}", c.procedure_code))?;
    let room_modality = match store.appointment_for_case(actor, case).await? {
        Some(a) => store
            .rooms(a.site_id)
            .await?
            .into_iter()
            .find(|r| r.id == a.room_id)
            .map(|r| r.modality),
        None => None,
    };
    let guidance = room_modality
        .filter(|m| procedure.modalities.contains(m))
        .or_else(|| procedure.modalities.first().copied())
        .context("a procedure without a modality")?;
    let ct = guidance == irflow_domain::Modality::Ct;
    Ok(ProcedureRecordForm {
        procedure: c.procedure_code.clone(),
        levels: c.levels.clone().unwrap_or_default(),
        side: c
            .side
            .map_or_else(|| "bilateral".to_owned(), |s| s.as_str().to_owned()),
        guidance: guidance.as_str().to_owned(),
        contrast_agent: "iohexol".into(),
        contrast_ml: "2".into(),
        steroid_agent: "dexamethasone".into(),
        steroid_mg: "10".into(),
        anaesthetic_agent: "lidocaine".into(),
        anaesthetic_mg: "20".into(),
        fluoroscopy_seconds: if ct { String::new() } else { "41".into() },
        dap: if ct { String::new() } else { "386.4".into() },
        dlp: if ct { "212".into() } else { String::new() },
        pain_before: "7".into(),
        pain_after: "2".into(),
        complication: "none".into(),
        ..ProcedureRecordForm::default()
    })
}

/// A typical uneventful day around a procedure starting at `start`: check-in 18
/// minutes before (just before the arrive-by time), the checklist, 20 minutes in the
/// room, vitals, and the discharge
/// (after the monitoring time for a patient who drives). Only the steps at or before
/// `now` are kept, so a day still under way stops where it is.
pub fn typical_day(start: Timestamp, drives: bool, monitoring: u32, now: Timestamp) -> DayPlan {
    let end = start + minutes(20);
    let leave = if drives {
        end + minutes(i64::from(monitoring) + 5)
    } else {
        end + minutes(25)
    };
    let upto = |t: Timestamp| (t <= now).then_some(t);
    DayPlan {
        arrive: upto(start - minutes(18)),
        checklist: upto(start - minutes(16)).map(|t| {
            if start - minutes(3) <= now {
                (t, ChecklistExtent::Complete)
            } else {
                (t, ChecklistExtent::InProgress)
            }
        }),
        drives,
        start: upto(start + minutes(1)),
        end: upto(end),
        vitals: [
            (end + minutes(5), (132, 84), 76, 98, 2),
            (end + minutes(20), (126, 80), 72, 99, 1),
            (end + minutes(40), (124, 78), 70, 98, 1),
        ]
        .into_iter()
        .filter(|v| v.0 <= now && v.0 < leave)
        .collect(),
        sign: upto(end + minutes(8)),
        discharge: upto(leave).map(|t| (t, None)),
    }
}

impl DayPlan {
    /// Nothing happens.
    pub fn nothing() -> Self {
        DayPlan {
            arrive: None,
            checklist: None,
            drives: false,
            start: None,
            end: None,
            vitals: Vec::new(),
            sign: None,
            discharge: None,
        }
    }

    /// The part of the day one pathway step stands for: check-in; the checklist and
    /// the start; the end and the vital signs; the discharge.
    pub fn only(&self, action: Action) -> Self {
        let none = DayPlan {
            drives: self.drives,
            ..DayPlan::nothing()
        };
        match action {
            Action::CheckIn => DayPlan {
                arrive: self.arrive,
                ..none
            },
            Action::StartProcedure => DayPlan {
                checklist: self.checklist,
                start: self.start,
                ..none
            },
            Action::EndProcedure => DayPlan {
                end: self.end,
                vitals: self.vitals.clone(),
                sign: self.sign,
                ..none
            },
            Action::Discharge => DayPlan {
                discharge: self.discharge,
                ..none
            },
            _ => none,
        }
    }
}
