//! The shape of a rule pack. Every rule carries its id, source and whether a
//! clinician has verified it.

use std::collections::BTreeMap;

use crate::catalogue::BleedingRisk;

/// What every rule carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleMeta {
    /// Unique in the pack.
    pub id: String,
    /// Source tag (a key of [`RulePack::sources`]), e.g. `ASRA-2018`.
    pub source: String,
    /// Verified by a clinician. `false` is shown wherever the rule is used.
    pub verified: bool,
    /// How a range or ambiguity was resolved ("4-5 d: the longer value, 5 d").
    pub note: Option<String>,
}

/// A hold before the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// No hold needed.
    None,
    /// Decide with the prescribing physician (→ review).
    Shared,
    /// Always a physician's review (e.g. vorapaxar).
    Review,
    /// Last dose at least this many days before.
    Days(u32),
    /// Last dose at least this many hours before.
    Hours(u32),
}

/// One value per procedure risk class.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RulesByClass<T> {
    /// Low-risk procedures.
    pub low: T,
    /// Intermediate-risk procedures.
    pub intermediate: T,
    /// High-risk procedures.
    pub high: T,
}

impl<T: Copy> RulesByClass<T> {
    /// The value for a class.
    pub fn get(&self, class: BleedingRisk) -> T {
        match class {
            BleedingRisk::Low => self.low,
            BleedingRisk::Intermediate => self.intermediate,
            BleedingRisk::High => self.high,
        }
    }
}

/// A procedure's class in this pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRisk {
    /// Rule metadata.
    pub meta: RuleMeta,
    /// CPT code.
    pub code: String,
    /// Its class.
    pub class: BleedingRisk,
}

/// A blood thinner's rule.
#[derive(Debug, Clone, PartialEq)]
pub struct DrugRule {
    /// Rule metadata.
    pub meta: RuleMeta,
    /// Lowercase generic name.
    pub drug: String,
    /// Other names it may be given as (lowercase).
    pub aliases: Vec<String>,
    /// Which regimen this entry covers, when the drug has several (`iv`, `sc`,
    /// `prophylactic`, `therapeutic`, or for aspirin `primary`/`secondary`).
    pub regimen: Option<String>,
    /// Hold before, by procedure class.
    pub hold: RulesByClass<Hold>,
    /// A longer hold when creatinine clearance is below a threshold: (days, mL/min).
    pub renal_hold: Option<(u32, f64)>,
    /// Restart after the procedure, in hours, by class (`None`: no guidance).
    pub restart_hours: RulesByClass<Option<u32>>,
}

/// A condition (thrombotic risk) that routes to a shared decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionRule {
    /// Rule metadata; `meta.id` is also the condition's id in facts.
    pub meta: RuleMeta,
    /// For people.
    pub label: String,
}

/// Which lab a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabKind {
    /// INR.
    Inr,
    /// Platelets (10^9/L).
    Platelets,
}

impl LabKind {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            LabKind::Inr => "inr",
            LabKind::Platelets => "platelets",
        }
    }
}

/// A lab threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct LabRule {
    /// Rule metadata.
    pub meta: RuleMeta,
    /// Which lab.
    pub lab: LabKind,
    /// Must be at most this.
    pub max: Option<f64>,
    /// Must be at least this.
    pub min: Option<f64>,
    /// Only when taking one of these drugs (empty: always).
    pub when_taking: Vec<String>,
    /// Only for these procedure classes.
    pub classes: Vec<BleedingRisk>,
}

/// One step of a premedication regimen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremedStep {
    /// Hours before the procedure.
    pub hours_before: u32,
    /// What to take: "prednisone 50 mg by mouth".
    pub what: String,
}

/// A contrast premedication regimen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PremedicationRegimen {
    /// Rule metadata.
    pub meta: RuleMeta,
    /// For people.
    pub label: String,
    /// The doses.
    pub steps: Vec<PremedStep>,
}

/// Contrast allergy rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContrastRules {
    /// Rule metadata (the allergy rule itself).
    pub meta: RuleMeta,
    /// The regimen proposed for mild and moderate reactions.
    pub default_regimen: String,
    /// Regimens.
    pub regimens: Vec<PremedicationRegimen>,
}

/// The department's own policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPolicy {
    /// Antibiotics for an active infection: days after the last dose before the procedure.
    pub antibiotic_window_days: u32,
    /// The antibiotic-window rule.
    pub antibiotic_window: RuleMeta,
    /// Long-term antibiotics → staff review.
    pub long_term_antibiotics: RuleMeta,
    /// Active infection → defer.
    pub active_infection: RuleMeta,
    /// Minutes of monitoring when the patient drives home (30-60).
    pub monitoring_minutes: u32,
    /// The monitoring rule.
    pub monitoring: RuleMeta,
    /// Days without heavy lifting after the procedure.
    pub no_heavy_lifting_days: u32,
    /// The activity rule.
    pub activity: RuleMeta,
    /// Diabetes → glucose advice.
    pub diabetes: RuleMeta,
    /// Mild symptoms → avoid pain medication before.
    pub mild_symptoms: RuleMeta,
    /// Possible pregnancy → review.
    pub pregnancy: RuleMeta,
    /// Allergy to a local anaesthetic or steroid → review.
    pub agent_allergy: RuleMeta,
    /// Agents whose allergy needs review (lowercase).
    pub review_allergy_agents: Vec<String>,
    /// Unknown drug → review.
    pub unknown_drug: RuleMeta,
}

/// One criterion a nurse confirms before a patient goes home.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DischargeCriterion {
    /// Rule metadata (`meta.id` is what a discharge records as confirmed).
    pub meta: RuleMeta,
    /// For people.
    pub label: String,
}

/// The procedure day: the risks explained at consent, the glucose limit, the
/// discharge criteria.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayRules {
    /// The consent rule.
    pub consent: RuleMeta,
    /// The risks explained to every patient, in order.
    pub risks: Vec<String>,
    /// The glucose rule.
    pub glucose: RuleMeta,
    /// Blood glucose above this (mg/dL) stops the checklist; `None`: no limit.
    pub glucose_max_mg_dl: Option<u32>,
    /// Confirmed before discharge, in order.
    pub discharge: Vec<DischargeCriterion>,
}

/// A whole rule pack.
#[derive(Debug, Clone, PartialEq)]
pub struct RulePack {
    /// Name, recorded with each decision.
    pub name: String,
    /// Version, recorded with each decision.
    pub version: String,
    /// What it is.
    pub description: String,
    /// Source tag → citation.
    pub sources: BTreeMap<String, String>,
    /// Procedure classes.
    pub procedures: Vec<ProcedureRisk>,
    /// Blood thinners.
    pub drugs: Vec<DrugRule>,
    /// Conditions that route to a shared decision.
    pub thrombotic_risk: Vec<ConditionRule>,
    /// Lab thresholds.
    pub labs: Vec<LabRule>,
    /// Contrast allergy.
    pub contrast: ContrastRules,
    /// Local policy.
    pub policy: LocalPolicy,
    /// The procedure record: agents, limits, the transforaminal steroid suggestion.
    pub procedure_record: crate::procedure_record::ProcedureRecordRules,
    /// The procedure day: consent risks, glucose, discharge criteria.
    pub day: DayRules,
}

impl RulePack {
    /// The citation behind a rule, "TAG: citation".
    pub fn cite(&self, meta: &RuleMeta) -> String {
        match self.sources.get(&meta.source) {
            Some(c) => format!("{}: {c}", meta.source),
            None => meta.source.clone(),
        }
    }

    /// Every rule's metadata (for checks: unique ids, known sources).
    pub fn all_rules(&self) -> Vec<&RuleMeta> {
        let p = &self.policy;
        let mut all: Vec<&RuleMeta> = Vec::new();
        all.extend(self.procedures.iter().map(|r| &r.meta));
        all.extend(self.drugs.iter().map(|r| &r.meta));
        all.extend(self.thrombotic_risk.iter().map(|r| &r.meta));
        all.extend(self.labs.iter().map(|r| &r.meta));
        all.push(&self.contrast.meta);
        all.extend(self.contrast.regimens.iter().map(|r| &r.meta));
        all.extend([
            &p.antibiotic_window,
            &p.long_term_antibiotics,
            &p.active_infection,
            &p.monitoring,
            &p.activity,
            &p.diabetes,
            &p.mild_symptoms,
            &p.pregnancy,
            &p.agent_allergy,
            &p.unknown_drug,
        ]);
        all.extend(self.procedure_record.all_rules());
        all.extend([&self.day.consent, &self.day.glucose]);
        all.extend(self.day.discharge.iter().map(|d| &d.meta));
        all
    }
}
