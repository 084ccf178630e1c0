//! The procedure day in the demo: a patient's day — check-in, the checklist, the
//! start and end of the procedure, vital signs, the discharge — recorded at given
//! times through the same store calls the pages use. The demo's cases already done,
//! today's list and the weeks of history all go through here.

use anyhow::{Context, Result};
use irflow_domain::pathway::TransitionRequest;
use irflow_domain::procedure_day::{
    Answer, Consent, ConsentMethod, EscortPlan, IdentityCheck, PregnancyStatus, Requirements,
    TimeOut, Vitals,
};
use irflow_domain::screening::RulePack;
use irflow_domain::{Action, Actor, CaseId};
use irflow_store::Store;
use irflow_store::procedure_day::DischargeRequest;
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
    /// Time-out, start and end.
    pub radiologist: Actor,
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
    /// The patient goes home (all criteria confirmed; an override when early).
    pub discharge: Option<(Timestamp, Option<&'static str>)>,
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
    }
    Ok(())
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
