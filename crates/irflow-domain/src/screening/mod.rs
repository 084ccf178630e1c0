//! Screening: the nurse's call becomes a decision. The rules are data (a
//! [`RulePack`], loaded by the `irflow-rules` crate from TOML with its sources);
//! this module holds the facts, the pack's shape and the pure engine.

mod engine;
mod facts;
mod pack;

pub use engine::{EngineError, evaluate};
pub use facts::{
    Antibiotic, AntibioticReason, Diabetes, Infection, InfectionSite, Labs, Medication, Prevention,
    ReactionSeverity, ScreeningFacts, Symptoms,
};
pub use pack::{
    ConditionRule, ContrastRules, DayRules, DischargeCriterion, DrugRule, Hold, LabKind, LabRule,
    LocalPolicy, PremedStep, PremedicationRegimen, ProcedureRisk, RuleMeta, RulePack, RulesByClass,
};

use std::fmt;

use jiff::Timestamp;
use jiff::civil::Date;

/// The outcome of a screening, from least to most strict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Decision {
    /// Nothing stops booking.
    Clear,
    /// Bookable once the listed actions are done (e.g. prescriber clears a hold).
    ClearWithActions,
    /// A radiologist or the prescriber must decide.
    Review,
    /// Not now: until a date, or until resolved.
    Defer,
}

impl Decision {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Decision::Clear => "clear",
            Decision::ClearWithActions => "clear_with_actions",
            Decision::Review => "review",
            Decision::Defer => "defer",
        }
    }

    /// Label for people.
    pub const fn label(self) -> &'static str {
        match self {
            Decision::Clear => "Clear",
            Decision::ClearWithActions => "Clear once actions are done",
            Decision::Review => "Needs review",
            Decision::Defer => "Defer",
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Decision {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            Decision::Clear,
            Decision::ClearWithActions,
            Decision::Review,
            Decision::Defer,
        ]
        .into_iter()
        .find(|d| d.as_str() == s)
        .ok_or_else(|| format!("unknown decision {s:?}"))
    }
}

/// Who must act on a finding before the case can be booked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ActionKind {
    /// The prescribing doctor agrees to the hold plan (or decides against it).
    PrescriberClearance,
    /// A radiologist decides (shared decisions, allergies, pregnancy, unknown drugs, ...).
    RadiologistReview,
    /// A lab value must be checked (e.g. INR on the day).
    LabCheck,
    /// A premedication plan must be confirmed and given to the patient.
    Premedication,
    /// Staff must look at something (e.g. long-term antibiotics).
    StaffReview,
}

impl ActionKind {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ActionKind::PrescriberClearance => "prescriber_clearance",
            ActionKind::RadiologistReview => "radiologist_review",
            ActionKind::LabCheck => "lab_check",
            ActionKind::Premedication => "premedication",
            ActionKind::StaffReview => "staff_review",
        }
    }

    /// Label for people.
    pub const fn label(self) -> &'static str {
        match self {
            ActionKind::PrescriberClearance => "Prescriber clearance",
            ActionKind::RadiologistReview => "Radiologist review",
            ActionKind::LabCheck => "Lab check",
            ActionKind::Premedication => "Premedication plan",
            ActionKind::StaffReview => "Staff review",
        }
    }
}

impl std::str::FromStr for ActionKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ActionKind::PrescriberClearance,
            ActionKind::RadiologistReview,
            ActionKind::LabCheck,
            ActionKind::Premedication,
            ActionKind::StaffReview,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
        .ok_or_else(|| format!("unknown action kind {s:?}"))
    }
}

/// Something to do before booking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredAction {
    /// Who acts.
    pub kind: ActionKind,
    /// What exactly.
    pub description: String,
}

/// A blood thinner's plan: when to stop (relative to the procedure) and restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldPlan {
    /// The drug as named in the pack.
    pub drug: String,
    /// The hold, for people: "3 days", "24 hours".
    pub hold: String,
    /// The last dose (given, or assumed today when the patient still takes it).
    pub last_dose: Date,
    /// The earliest procedure date with this hold.
    pub earliest_date: Date,
    /// The earliest procedure instant (hour-based holds).
    pub earliest_at: Option<Timestamp>,
    /// When to restart after the procedure, for people ("24 hours after").
    pub restart: Option<String>,
    /// Restart delay in hours, for computing the date once the procedure time is known.
    pub restart_hours: Option<u32>,
}

/// One timed premedication dose.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremedDose {
    /// "prednisone 50 mg by mouth".
    pub what: String,
    /// Hours before the procedure start.
    pub hours_before: u32,
    /// The exact time, when the appointment is known.
    pub at: Option<Timestamp>,
}

/// What one rule found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule's id in the pack.
    pub rule_id: String,
    /// How strict this finding is.
    pub level: Decision,
    /// For staff.
    pub message: String,
    /// Where the rule comes from (tag and citation).
    pub source: String,
    /// Whether a clinician has verified the rule; `false` must be shown.
    pub verified: bool,
    /// What must be done before booking, if anything.
    pub action: Option<RequiredAction>,
    /// What to tell the patient, if anything.
    pub patient_advice: Option<String>,
    /// A hold plan.
    pub hold: Option<HoldPlan>,
    /// A premedication schedule.
    pub premedication: Vec<PremedDose>,
    /// The earliest date this finding allows (None: no constraint).
    pub earliest_date: Option<Date>,
    /// For deferrals without a date: "until resolved".
    pub until_resolved: bool,
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreeningDecision {
    /// The strictest finding's level.
    pub decision: Decision,
    /// Never before today; `None` when deferred until resolved.
    pub earliest_safe_date: Option<Date>,
    /// The earliest instant when an hour-based hold sets it (else the start of the date), site zone.
    pub earliest_safe_at: Option<jiff::ZonedDateTime>,
    /// Every finding, strictest first.
    pub findings: Vec<Finding>,
    /// The pack's name.
    pub pack_name: String,
    /// The pack's version.
    pub pack_version: String,
    /// The date evaluated against (the proposed procedure date), if any.
    pub evaluated_for: Option<Date>,
    /// Minutes of monitoring after the procedure (no escort), if needed.
    pub monitoring_minutes: Option<u32>,
}

impl ScreeningDecision {
    /// Whether any finding rests on an unverified rule.
    pub fn uses_unverified_rules(&self) -> bool {
        self.findings.iter().any(|f| !f.verified)
    }
}
