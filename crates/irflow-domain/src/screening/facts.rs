//! What the screening call establishes. Absent means "no".

use jiff::civil::{Date, Time};

/// Why aspirin is taken (it changes the hold).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Prevention {
    /// Primary prevention.
    Primary,
    /// Secondary prevention (after an event).
    Secondary,
}

impl Prevention {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Prevention::Primary => "primary",
            Prevention::Secondary => "secondary",
        }
    }
}

/// A medication the patient takes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Medication {
    /// Lowercase generic name (`apixaban`), as the pack knows it.
    pub drug: String,
    /// The last dose taken; `None` while still taking it (assumed today).
    pub last_dose: Option<Date>,
    /// The time of the last dose, for hour-based holds.
    pub last_dose_time: Option<Time>,
    /// Why it is taken (free text, for staff).
    pub indication: Option<String>,
    /// For aspirin: primary or secondary prevention.
    pub prevention: Option<Prevention>,
    /// For drugs with several regimens in the pack (`iv`/`sc` heparin,
    /// `prophylactic`/`therapeutic` enoxaparin).
    pub regimen: Option<String>,
}

/// Lab results, when known.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Labs {
    /// INR.
    pub inr: Option<f64>,
    /// Platelets, 10^9/L.
    pub platelets: Option<f64>,
    /// Creatinine clearance, mL/min.
    pub creatinine_clearance: Option<f64>,
}

/// How severe a prior contrast reaction was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReactionSeverity {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
}

impl ReactionSeverity {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReactionSeverity::Mild => "mild",
            ReactionSeverity::Moderate => "moderate",
            ReactionSeverity::Severe => "severe",
        }
    }
}

/// Diabetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Diabetes {
    /// Treated with insulin.
    pub insulin: bool,
}

/// Where an infection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InfectionSite {
    /// Systemic (fever, sepsis, ...).
    Systemic,
    /// At the injection site.
    InjectionSite,
    /// Elsewhere (e.g. a urinary tract infection).
    Other,
}

impl InfectionSite {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            InfectionSite::Systemic => "systemic",
            InfectionSite::InjectionSite => "injection_site",
            InfectionSite::Other => "other",
        }
    }
}

/// An infection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Infection {
    /// Active now.
    pub active: bool,
    /// Where.
    pub site: InfectionSite,
}

/// Why antibiotics are taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AntibioticReason {
    /// For an active infection.
    ActiveInfection,
    /// Long-term (prophylactic), no active infection.
    LongTerm,
}

impl AntibioticReason {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            AntibioticReason::ActiveInfection => "active_infection",
            AntibioticReason::LongTerm => "long_term",
        }
    }
}

/// An antibiotic course.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Antibiotic {
    /// Why.
    pub reason: AntibioticReason,
    /// The last dose; `None` while still taking it.
    pub last_dose: Option<Date>,
}

/// How bad the symptoms are (mild: avoid pain medication before).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Symptoms {
    /// Mild.
    Mild,
    /// Moderate.
    Moderate,
    /// Severe.
    Severe,
}

impl Symptoms {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Symptoms::Mild => "mild",
            Symptoms::Moderate => "moderate",
            Symptoms::Severe => "severe",
        }
    }
}

/// Everything the engine needs.
#[derive(Debug, Clone, PartialEq)]
pub struct ScreeningFacts {
    /// CPT code of the procedure.
    pub procedure: String,
    /// Today at the site.
    pub today: Date,
    /// The proposed procedure date, if one is being considered.
    pub proposed_date: Option<Date>,
    /// The appointment's start time on that date, if known (premedication timing).
    pub appointment_time: Option<Time>,
    /// Medications.
    pub medications: Vec<Medication>,
    /// High thrombotic-risk conditions (pack ids).
    pub thrombotic_risk: Vec<String>,
    /// Labs.
    pub labs: Labs,
    /// A prior reaction to iodinated contrast.
    pub contrast_allergy: Option<ReactionSeverity>,
    /// Other allergies (agents, lowercase).
    pub other_allergies: Vec<String>,
    /// Diabetes.
    pub diabetes: Option<Diabetes>,
    /// An infection.
    pub infection: Option<Infection>,
    /// Antibiotic courses.
    pub antibiotics: Vec<Antibiotic>,
    /// Could be pregnant.
    pub pregnancy_possible: bool,
    /// Someone can drive the patient home; `None` if not asked yet.
    pub escort_available: Option<bool>,
    /// Symptom severity.
    pub symptoms: Option<Symptoms>,
}

impl ScreeningFacts {
    /// Facts with nothing found, for a procedure on a day.
    pub fn new(procedure: impl Into<String>, today: Date) -> Self {
        Self {
            procedure: procedure.into(),
            today,
            proposed_date: None,
            appointment_time: None,
            medications: Vec::new(),
            thrombotic_risk: Vec::new(),
            labs: Labs::default(),
            contrast_allergy: None,
            other_allergies: Vec::new(),
            diabetes: None,
            infection: None,
            antibiotics: Vec::new(),
            pregnancy_possible: false,
            escort_available: None,
            symptoms: None,
        }
    }
}
