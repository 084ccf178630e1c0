//! The procedure record (what the radiologist did), the two-week follow-up and the
//! outcomes they add up to. Pure: the form as typed is checked against the catalogue
//! and the rule pack's record rules, and nothing here knows of storage or HTTP.
//!
//! Clinical numbers (the agents the form offers, the most it accepts of each, the
//! radiation fields' limits, which procedures are transforaminal and which steroid
//! to suggest there) come from the rule pack ([`ProcedureRecordRules`], TOML with
//! sources); this module only applies them.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;

use crate::catalogue::{Modality, Procedure, SpineLevels};
use crate::referral::{FieldError, FieldErrors, Side};
use crate::screening::RuleMeta;

/// A quantity as typed in the record (mg, mL, mGy·cm, mGy·cm²), kept exactly in
/// hundredths so that "1.5" is stored and shown as 1.5, never as 1.4999.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(u32);

impl Amount {
    /// From hundredths (150 is 1.5).
    pub const fn from_hundredths(h: u32) -> Self {
        Self(h)
    }

    /// A whole number.
    pub const fn whole(n: u32) -> Self {
        Self(n.saturating_mul(100))
    }

    /// In hundredths.
    pub const fn hundredths(self) -> u32 {
        self.0
    }

    /// As a floating-point number (FHIR `decimal`).
    pub fn as_f64(self) -> f64 {
        f64::from(self.0) / 100.0
    }

    /// Parses `4`, `1.5`, `0.25` or `1,5`: at most two decimals, not negative.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let t = raw.trim().replace(',', ".");
        let bad = || format!("{:?} is not a number (e.g. 4 or 1.5)", raw.trim());
        let (whole, frac) = t.split_once('.').unwrap_or((&t, ""));
        if whole.is_empty() && frac.is_empty()
            || !whole.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || whole.len() > 7
        {
            return Err(bad());
        }
        if frac.len() > 2 {
            return Err(format!("{:?}: at most two decimals", raw.trim()));
        }
        let w: u32 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let f: u32 = match frac.len() {
            0 => 0,
            1 => frac.parse::<u32>().map_err(|_| bad())? * 10,
            _ => frac.parse().map_err(|_| bad())?,
        };
        w.checked_mul(100)
            .and_then(|h| h.checked_add(f))
            .map(Self)
            .ok_or_else(bad)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (whole, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{whole}"),
            n if n % 10 == 0 => write!(f, "{whole}.{}", n / 10),
            n => write!(f, "{whole}.{n:02}"),
        }
    }
}

impl FromStr for Amount {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// What went wrong during or right after the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Complication {
    /// Nothing.
    None,
    /// Fainting or near-fainting (vasovagal reaction).
    Vasovagal,
    /// The needle punctured the dura (risk of a spinal headache).
    DuralPuncture,
    /// Bleeding.
    Bleeding,
    /// Something else, described in words.
    Other,
}

impl Complication {
    /// Every kind, "none" first.
    pub const ALL: [Complication; 5] = [
        Complication::None,
        Complication::Vasovagal,
        Complication::DuralPuncture,
        Complication::Bleeding,
        Complication::Other,
    ];

    /// Stable name (stored, API, FHIR code).
    pub const fn as_str(self) -> &'static str {
        match self {
            Complication::None => "none",
            Complication::Vasovagal => "vasovagal",
            Complication::DuralPuncture => "dural_puncture",
            Complication::Bleeding => "bleeding",
            Complication::Other => "other",
        }
    }

    /// A label for people.
    pub const fn label(self) -> &'static str {
        match self {
            Complication::None => "None",
            Complication::Vasovagal => "Vasovagal reaction",
            Complication::DuralPuncture => "Dural puncture",
            Complication::Bleeding => "Bleeding",
            Complication::Other => "Other",
        }
    }
}

impl fmt::Display for Complication {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Complication {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Complication::ALL
            .into_iter()
            .find(|c| c.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "{:?} is not none, vasovagal, dural_puncture, bleeding or other",
                    s.trim()
                )
            })
    }
}

/// How the follow-up answers arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FollowUpMethod {
    /// The patient filled in the short form behind their link.
    PatientForm,
    /// A nurse phoned the patient.
    Phone,
}

impl FollowUpMethod {
    /// Stable name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FollowUpMethod::PatientForm => "patient_form",
            FollowUpMethod::Phone => "phone",
        }
    }

    /// A label for people.
    pub const fn label(self) -> &'static str {
        match self {
            FollowUpMethod::PatientForm => "Patient's form",
            FollowUpMethod::Phone => "Phone call",
        }
    }
}

impl FromStr for FollowUpMethod {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "patient_form" => Ok(FollowUpMethod::PatientForm),
            "phone" => Ok(FollowUpMethod::Phone),
            other => Err(format!("{other:?} is not patient_form or phone")),
        }
    }
}

// ---------------------------------------------------------------- rules (from the pack)

/// An agent the record form offers, with the most it accepts (a typing check set
/// by the department, not dosing advice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRule {
    /// Id, source, verified.
    pub meta: RuleMeta,
    /// Lowercase generic name, e.g. `dexamethasone`.
    pub agent: String,
    /// For steroids: whether the preparation is particulate.
    pub particulate: Option<bool>,
    /// The most the form accepts (mg for drugs, mL for contrast).
    pub max: Amount,
}

/// The suggestion for transforaminal injections (FDA-2014): a non-particulate steroid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SteroidSuggestion {
    /// Id, source, verified.
    pub meta: RuleMeta,
    /// The transforaminal procedure codes.
    pub procedures: Vec<String>,
    /// The steroid suggested (non-particulate).
    pub agent: String,
    /// What the form says, for the radiologist.
    pub text: String,
}

/// Limits on the radiation fields (typing checks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordLimits {
    /// Id, source, verified.
    pub meta: RuleMeta,
    /// Fluoroscopy time, seconds.
    pub max_fluoroscopy_seconds: u32,
    /// Dose-area product, mGy·cm².
    pub max_dap: Amount,
    /// CT dose-length product, mGy·cm.
    pub max_dlp: Amount,
}

/// The rule pack's part for the procedure record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRecordRules {
    /// The transforaminal steroid suggestion.
    pub transforaminal_steroid: SteroidSuggestion,
    /// Steroids, with particulate or not.
    pub steroids: Vec<AgentRule>,
    /// Local anaesthetics.
    pub local_anaesthetics: Vec<AgentRule>,
    /// Contrast agents.
    pub contrast_agents: Vec<AgentRule>,
    /// Radiation fields.
    pub limits: RecordLimits,
}

impl ProcedureRecordRules {
    /// The suggestion, if `procedure_code` is a transforaminal injection.
    pub fn suggestion_for(&self, procedure_code: &str) -> Option<&SteroidSuggestion> {
        let s = &self.transforaminal_steroid;
        s.procedures
            .iter()
            .any(|c| c == procedure_code.trim())
            .then_some(s)
    }

    /// Every rule's metadata.
    pub fn all_rules(&self) -> Vec<&RuleMeta> {
        let mut all = vec![&self.transforaminal_steroid.meta, &self.limits.meta];
        all.extend(self.steroids.iter().map(|r| &r.meta));
        all.extend(self.local_anaesthetics.iter().map(|r| &r.meta));
        all.extend(self.contrast_agents.iter().map(|r| &r.meta));
        all
    }
}

// ---------------------------------------------------------------- the record

/// An agent given, with how much.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Given {
    /// Lowercase generic name.
    pub agent: String,
    /// mg (drugs) or mL (contrast).
    pub amount: Amount,
}

/// The procedure record form, as typed (strings, so nothing is lost on refusal).
/// Agents are `none` when none was given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureRecordForm {
    /// CPT code of the procedure actually done.
    pub procedure: String,
    /// Levels, e.g. `L4-L5`.
    pub levels: String,
    /// left, right, bilateral.
    pub side: String,
    /// fluoroscopy or ct.
    pub guidance: String,
    /// Contrast agent or `none`.
    pub contrast_agent: String,
    /// mL.
    pub contrast_ml: String,
    /// Steroid or `none`.
    pub steroid_agent: String,
    /// mg.
    pub steroid_mg: String,
    /// Local anaesthetic or `none`.
    pub anaesthetic_agent: String,
    /// mg.
    pub anaesthetic_mg: String,
    /// Fluoroscopy time, seconds.
    pub fluoroscopy_seconds: String,
    /// Dose-area product, mGy·cm².
    pub dap: String,
    /// CT dose-length product, mGy·cm.
    pub dlp: String,
    /// Pain 0-10 before.
    pub pain_before: String,
    /// Pain 0-10 right after.
    pub pain_after: String,
    /// none, vasovagal, dural_puncture, bleeding, other.
    pub complication: String,
    /// What happened (required for `other`).
    pub complication_text: String,
    /// Anything else.
    pub notes: String,
    /// Why a signed record is amended (required then).
    pub amendment_reason: String,
    /// The radiologist acknowledges signing with a particulate steroid for a
    /// transforaminal injection, against the FDA 2014 safety communication's advice
    /// (required then; see [`particulate_warning`]).
    pub particulate_acknowledged: bool,
}

/// A checked record, ready to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureRecordDetails {
    /// CPT code.
    pub procedure_code: String,
    /// The catalogue's name for it.
    pub procedure_name: String,
    /// Levels (for procedures that take them).
    pub levels: Option<SpineLevels>,
    /// Side.
    pub side: Side,
    /// Guidance.
    pub guidance: Modality,
    /// Contrast, if any.
    pub contrast: Option<Given>,
    /// Steroid, if any.
    pub steroid: Option<Given>,
    /// Local anaesthetic, if any.
    pub anaesthetic: Option<Given>,
    /// Fluoroscopy time in seconds (fluoroscopy).
    pub fluoroscopy_seconds: Option<u32>,
    /// Dose-area product, mGy·cm² (fluoroscopy).
    pub dap: Option<Amount>,
    /// Dose-length product, mGy·cm (CT).
    pub dlp: Option<Amount>,
    /// Pain before, 0-10.
    pub pain_before: u8,
    /// Pain right after, 0-10.
    pub pain_after: u8,
    /// Complication.
    pub complication: Complication,
    /// Its description.
    pub complication_text: Option<String>,
    /// Notes.
    pub notes: Option<String>,
    /// Why amended (for versions after the first).
    pub amendment_reason: Option<String>,
    /// A particulate steroid was given for a transforaminal injection, and the
    /// radiologist acknowledged it when signing (never set otherwise).
    pub particulate_acknowledged: bool,
}

/// The longest free text in a record field.
pub const MAX_TEXT_CHARS: usize = 2000;

fn add(errors: &mut FieldErrors, field: &'static str, message: impl Into<String>) {
    errors.0.push(FieldError {
        field,
        message: message.into(),
    });
}

fn text(raw: &str, field: &'static str, errors: &mut FieldErrors) -> Option<String> {
    let t = raw.trim();
    if t.chars().count() > MAX_TEXT_CHARS {
        add(
            errors,
            field,
            format!("at most {MAX_TEXT_CHARS} characters"),
        );
        return None;
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        add(errors, field, "contains control characters");
        return None;
    }
    (!t.is_empty()).then(|| t.to_owned())
}

/// A 0-10 pain score.
pub fn parse_pain(raw: &str) -> Result<u8, String> {
    let t = raw.trim();
    if t.is_empty() {
        return Err("give a pain score from 0 (none) to 10 (worst)".to_owned());
    }
    t.parse::<u8>()
        .ok()
        .filter(|n| *n <= 10)
        .ok_or_else(|| format!("{t:?} is not a pain score: a whole number from 0 to 10"))
}

fn whole_number(raw: &str, max: u32) -> Result<u32, String> {
    let t = raw.trim();
    t.parse::<u32>()
        .ok()
        .filter(|n| *n <= max)
        .ok_or_else(|| format!("{t:?} is not a whole number from 0 to {max}"))
}

/// Checks an agent and its amount against the pack's list for that kind.
fn given(
    agent_raw: &str,
    amount_raw: &str,
    (agent_field, amount_field): (&'static str, &'static str),
    (what, unit): (&str, &str),
    rules: &[AgentRule],
    errors: &mut FieldErrors,
) -> Option<Given> {
    let agent = agent_raw.trim().to_lowercase();
    let known: Vec<&str> = rules.iter().map(|r| r.agent.as_str()).collect();
    if agent.is_empty() {
        add(
            errors,
            agent_field,
            format!("choose the {what}, or none ({})", known.join(", ")),
        );
        return None;
    }
    if agent == "none" {
        if !amount_raw.trim().is_empty() {
            add(
                errors,
                amount_field,
                format!("no {what} was given: leave the amount empty"),
            );
        }
        return None;
    }
    let Some(rule) = rules.iter().find(|r| r.agent == agent) else {
        add(
            errors,
            agent_field,
            format!(
                "{agent:?} is not a {what} this department records ({}, or none)",
                known.join(", ")
            ),
        );
        return None;
    };
    if amount_raw.trim().is_empty() {
        add(
            errors,
            amount_field,
            format!("how much {agent}, in {unit}?"),
        );
        return None;
    }
    match Amount::parse(amount_raw) {
        Ok(a) if a.hundredths() == 0 => {
            add(
                errors,
                amount_field,
                format!("more than 0 {unit}, or choose none"),
            );
            None
        }
        Ok(a) if a > rule.max => {
            add(
                errors,
                amount_field,
                format!(
                    "{a} {unit} is more than the {} {unit} of {agent} this department accepts in a record; check the amount",
                    rule.max
                ),
            );
            None
        }
        Ok(amount) => Some(Given { agent, amount }),
        Err(e) => {
            add(errors, amount_field, e);
            None
        }
    }
}

impl ProcedureRecordForm {
    /// The form filled from a checked record (to amend it).
    pub fn from_details(d: &ProcedureRecordDetails) -> Self {
        let agent = |g: &Option<Given>| {
            g.as_ref()
                .map_or_else(|| "none".to_owned(), |g| g.agent.clone())
        };
        let amount =
            |g: &Option<Given>| g.as_ref().map(|g| g.amount.to_string()).unwrap_or_default();
        Self {
            procedure: d.procedure_code.clone(),
            levels: d
                .levels
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            side: d.side.as_str().to_owned(),
            guidance: d.guidance.as_str().to_owned(),
            contrast_agent: agent(&d.contrast),
            contrast_ml: amount(&d.contrast),
            steroid_agent: agent(&d.steroid),
            steroid_mg: amount(&d.steroid),
            anaesthetic_agent: agent(&d.anaesthetic),
            anaesthetic_mg: amount(&d.anaesthetic),
            fluoroscopy_seconds: d
                .fluoroscopy_seconds
                .map(|s| s.to_string())
                .unwrap_or_default(),
            dap: d.dap.map(|a| a.to_string()).unwrap_or_default(),
            dlp: d.dlp.map(|a| a.to_string()).unwrap_or_default(),
            pain_before: d.pain_before.to_string(),
            pain_after: d.pain_after.to_string(),
            complication: d.complication.as_str().to_owned(),
            complication_text: d.complication_text.clone().unwrap_or_default(),
            notes: d.notes.clone().unwrap_or_default(),
            amendment_reason: String::new(),
            particulate_acknowledged: d.particulate_acknowledged,
        }
    }

    /// Checks a draft before it is stored: only that each field fits (a draft may be
    /// incomplete; everything else is checked when it is signed).
    pub fn check_draft(&self) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::default();
        for (field, value, max) in [
            ("procedure", &self.procedure, 16),
            ("levels", &self.levels, 64),
            ("side", &self.side, 16),
            ("guidance", &self.guidance, 16),
            ("contrast_agent", &self.contrast_agent, 64),
            ("contrast_ml", &self.contrast_ml, 16),
            ("steroid_agent", &self.steroid_agent, 64),
            ("steroid_mg", &self.steroid_mg, 16),
            ("anaesthetic_agent", &self.anaesthetic_agent, 64),
            ("anaesthetic_mg", &self.anaesthetic_mg, 16),
            ("fluoroscopy_seconds", &self.fluoroscopy_seconds, 16),
            ("dap", &self.dap, 16),
            ("dlp", &self.dlp, 16),
            ("pain_before", &self.pain_before, 4),
            ("pain_after", &self.pain_after, 4),
            ("complication", &self.complication, 32),
        ] {
            if value.trim().chars().count() > max {
                add(&mut errors, field, format!("at most {max} characters"));
            } else if value.chars().any(char::is_control) {
                add(&mut errors, field, "contains control characters");
            }
        }
        text(&self.complication_text, "complication_text", &mut errors);
        text(&self.notes, "notes", &mut errors);
        text(&self.amendment_reason, "amendment_reason", &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    /// Checks every field for signing: the procedure against the catalogue, its levels
    /// against its regions (as a referral's are), the guidance against its modalities,
    /// agents and amounts against the pack, radiation fields for the guidance, pain
    /// scores 0-10, the complication, and — when a signed version exists
    /// (`amending`) — the reason for the amendment.
    pub fn check(
        &self,
        catalogue: &[Procedure],
        rules: &ProcedureRecordRules,
        amending: bool,
    ) -> Result<ProcedureRecordDetails, FieldErrors> {
        let mut errors = FieldErrors::default();
        self.check_draft()?;
        let code = self.procedure.trim();
        let procedure = if code.is_empty() {
            add(&mut errors, "procedure", "choose the procedure done");
            None
        } else {
            let found = catalogue.iter().find(|p| p.code == code);
            if found.is_none() {
                let codes: Vec<&str> = catalogue.iter().map(|p| p.code.as_str()).collect();
                add(
                    &mut errors,
                    "procedure",
                    format!(
                        "{code:?} is not in the procedure catalogue ({})",
                        codes.join(", ")
                    ),
                );
            }
            found
        };
        let levels = match (procedure, self.levels.trim()) {
            (Some(p), "") if p.takes_levels() => {
                add(
                    &mut errors,
                    "levels",
                    "name the level(s) treated, e.g. L4-L5",
                );
                None
            }
            (Some(p), raw) if !p.takes_levels() && !raw.is_empty() => {
                add(
                    &mut errors,
                    "levels",
                    format!("{} takes no spinal level; leave this empty", p.name),
                );
                None
            }
            (_, "") => None,
            (p, raw) => match SpineLevels::parse(raw) {
                Ok(levels) => {
                    if let Some(Err(e)) = p.map(|p| p.check_levels(&levels)) {
                        add(&mut errors, "levels", e);
                    }
                    Some(levels)
                }
                Err(e) => {
                    add(&mut errors, "levels", e);
                    None
                }
            },
        };
        let side = if self.side.trim().is_empty() {
            add(&mut errors, "side", "choose left, right or bilateral");
            None
        } else {
            self.side
                .trim()
                .parse::<Side>()
                .map_err(|e| add(&mut errors, "side", e))
                .ok()
        };
        let guidance = match self.guidance.trim() {
            "" => {
                add(&mut errors, "guidance", "choose fluoroscopy or CT");
                None
            }
            raw => match raw.parse::<Modality>() {
                Ok(m) if procedure.is_some_and(|p| !p.modalities.contains(&m)) => {
                    add(
                        &mut errors,
                        "guidance",
                        format!(
                            "the catalogue does not offer this procedure under {}",
                            m.label()
                        ),
                    );
                    None
                }
                Ok(m) => Some(m),
                Err(e) => {
                    add(&mut errors, "guidance", e);
                    None
                }
            },
        };
        let contrast = given(
            &self.contrast_agent,
            &self.contrast_ml,
            ("contrast_agent", "contrast_ml"),
            ("contrast agent", "mL"),
            &rules.contrast_agents,
            &mut errors,
        );
        let steroid = given(
            &self.steroid_agent,
            &self.steroid_mg,
            ("steroid_agent", "steroid_mg"),
            ("steroid", "mg"),
            &rules.steroids,
            &mut errors,
        );
        let anaesthetic = given(
            &self.anaesthetic_agent,
            &self.anaesthetic_mg,
            ("anaesthetic_agent", "anaesthetic_mg"),
            ("local anaesthetic", "mg"),
            &rules.local_anaesthetics,
            &mut errors,
        );
        let limits = &rules.limits;
        let (mut fluoroscopy_seconds, mut dap, mut dlp) = (None, None, None);
        let amount_field =
            |raw: &str, field: &'static str, max: Amount, unit: &str, errors: &mut FieldErrors| {
                match Amount::parse(raw) {
                    Ok(a) if a > max => {
                        add(
                            errors,
                            field,
                            format!("{a} {unit} is more than {max} {unit}; check the value"),
                        );
                        None
                    }
                    Ok(a) => Some(a),
                    Err(e) => {
                        add(errors, field, e);
                        None
                    }
                }
            };
        match guidance {
            Some(Modality::Fluoroscopy) => {
                if self.fluoroscopy_seconds.trim().is_empty() {
                    add(
                        &mut errors,
                        "fluoroscopy_seconds",
                        "give the fluoroscopy time in seconds",
                    );
                } else {
                    fluoroscopy_seconds =
                        whole_number(&self.fluoroscopy_seconds, limits.max_fluoroscopy_seconds)
                            .map_err(|e| add(&mut errors, "fluoroscopy_seconds", e))
                            .ok();
                }
                if self.dap.trim().is_empty() {
                    add(&mut errors, "dap", "give the dose-area product (mGy·cm²)");
                } else {
                    dap = amount_field(&self.dap, "dap", limits.max_dap, "mGy·cm²", &mut errors);
                }
                if !self.dlp.trim().is_empty() {
                    add(
                        &mut errors,
                        "dlp",
                        "a dose-length product is for CT guidance; leave it empty",
                    );
                }
            }
            Some(Modality::Ct) => {
                if self.dlp.trim().is_empty() {
                    add(
                        &mut errors,
                        "dlp",
                        "give the CT dose-length product (mGy·cm)",
                    );
                } else {
                    dlp = amount_field(&self.dlp, "dlp", limits.max_dlp, "mGy·cm", &mut errors);
                }
                for (field, raw) in [
                    ("fluoroscopy_seconds", &self.fluoroscopy_seconds),
                    ("dap", &self.dap),
                ] {
                    if !raw.trim().is_empty() {
                        add(
                            &mut errors,
                            field,
                            "fluoroscopy values are for fluoroscopic guidance; leave this empty",
                        );
                    }
                }
            }
            None => {}
        }
        let pain_before = parse_pain(&self.pain_before)
            .map_err(|e| add(&mut errors, "pain_before", e))
            .ok();
        let pain_after = parse_pain(&self.pain_after)
            .map_err(|e| add(&mut errors, "pain_after", e))
            .ok();
        let complication = if self.complication.trim().is_empty() {
            add(
                &mut errors,
                "complication",
                "choose none or the complication",
            );
            None
        } else {
            self.complication
                .parse::<Complication>()
                .map_err(|e| add(&mut errors, "complication", e))
                .ok()
        };
        let complication_text = text(&self.complication_text, "complication_text", &mut errors);
        if complication == Some(Complication::Other) && complication_text.is_none() {
            add(&mut errors, "complication_text", "say what happened");
        }
        let notes = text(&self.notes, "notes", &mut errors);
        let amendment_reason = text(&self.amendment_reason, "amendment_reason", &mut errors);
        if amending && amendment_reason.is_none() {
            add(
                &mut errors,
                "amendment_reason",
                "this record is signed: say why it is amended",
            );
        }
        // A particulate steroid for a transforaminal injection is the radiologist's
        // decision to make — knowingly: the signature needs the acknowledgement.
        let particulate = match (procedure, &steroid) {
            (Some(p), Some(g)) => particulate_warning(rules, &p.code, &g.agent),
            _ => None,
        };
        if let Some(w) = &particulate
            && !self.particulate_acknowledged
        {
            add(
                &mut errors,
                "particulate_acknowledged",
                format!(
                    "{w}: rare but serious neurologic injury has followed transforaminal injections of particulate steroids ({}). Choose {} or tick \"particulate steroid acknowledged\" to sign with it",
                    rules.transforaminal_steroid.meta.source, rules.transforaminal_steroid.agent
                ),
            );
        }
        match (
            procedure,
            side,
            guidance,
            pain_before,
            pain_after,
            complication,
        ) {
            (
                Some(p),
                Some(side),
                Some(guidance),
                Some(pain_before),
                Some(pain_after),
                Some(complication),
            ) if errors.is_empty() => Ok(ProcedureRecordDetails {
                procedure_code: p.code.clone(),
                procedure_name: p.name.clone(),
                levels,
                side,
                guidance,
                contrast,
                steroid,
                anaesthetic,
                fluoroscopy_seconds,
                dap,
                dlp,
                pain_before,
                pain_after,
                complication,
                complication_text,
                notes,
                amendment_reason: if amending { amendment_reason } else { None },
                particulate_acknowledged: particulate.is_some(),
            }),
            _ => Err(errors),
        }
    }
}

impl ProcedureRecordDetails {
    /// Reads back a record as it was signed (already checked then; the catalogue and
    /// the pack may have changed since, so neither is consulted).
    pub fn from_signed(form: &ProcedureRecordForm, procedure_name: &str) -> Result<Self, String> {
        fn opt<T>(
            raw: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>, String> {
            let t = raw.trim();
            if t.is_empty() {
                Ok(None)
            } else {
                parse(t).map(Some)
            }
        }
        let given = |agent: &str, amount: &str| -> Result<Option<Given>, String> {
            match agent.trim() {
                "" | "none" => Ok(None),
                a => Ok(Some(Given {
                    agent: a.to_owned(),
                    amount: Amount::parse(amount)?,
                })),
            }
        };
        let some_text = |t: &str| (!t.trim().is_empty()).then(|| t.trim().to_owned());
        Ok(Self {
            procedure_code: form.procedure.trim().to_owned(),
            procedure_name: procedure_name.to_owned(),
            levels: opt(&form.levels, SpineLevels::parse)?,
            side: form.side.trim().parse()?,
            guidance: form.guidance.trim().parse()?,
            contrast: given(&form.contrast_agent, &form.contrast_ml)?,
            steroid: given(&form.steroid_agent, &form.steroid_mg)?,
            anaesthetic: given(&form.anaesthetic_agent, &form.anaesthetic_mg)?,
            fluoroscopy_seconds: opt(&form.fluoroscopy_seconds, |s| {
                s.parse::<u32>()
                    .map_err(|e| format!("fluoroscopy seconds {s:?}: {e}"))
            })?,
            dap: opt(&form.dap, Amount::parse)?,
            dlp: opt(&form.dlp, Amount::parse)?,
            pain_before: parse_pain(&form.pain_before)?,
            pain_after: parse_pain(&form.pain_after)?,
            complication: form.complication.parse()?,
            complication_text: some_text(&form.complication_text),
            notes: some_text(&form.notes),
            amendment_reason: some_text(&form.amendment_reason),
            particulate_acknowledged: form.particulate_acknowledged,
        })
    }
}

/// A warning when a particulate steroid was chosen for a transforaminal injection
/// (the record may still be signed: it is the radiologist's decision, recorded).
pub fn particulate_warning(
    rules: &ProcedureRecordRules,
    procedure_code: &str,
    steroid_agent: &str,
) -> Option<String> {
    let suggestion = rules.suggestion_for(procedure_code)?;
    let agent = steroid_agent.trim().to_lowercase();
    let rule = rules.steroids.iter().find(|s| s.agent == agent)?;
    (rule.particulate == Some(true)).then(|| {
        format!(
            "{agent} is a particulate steroid; for a transforaminal injection the suggestion is {} (non-particulate)",
            suggestion.agent
        )
    })
}

// ---------------------------------------------------------------- follow-up

/// The follow-up answers as typed (the patient's form or the nurse's call).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FollowUpForm {
    /// Pain now, 0-10.
    pub pain_now: String,
    /// Relief since the injection, percent (0-100).
    pub relief_percent: String,
    /// Any problems since (free text; empty: none).
    pub problems: String,
}

/// Checked follow-up answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowUpAnswers {
    /// Pain now, 0-10.
    pub pain_now: u8,
    /// Relief, percent.
    pub relief_percent: u8,
    /// Problems reported, if any.
    pub problems: Option<String>,
}

impl FollowUpForm {
    /// Checks the answers.
    pub fn check(&self) -> Result<FollowUpAnswers, FieldErrors> {
        let mut errors = FieldErrors::default();
        let pain_now = parse_pain(&self.pain_now)
            .map_err(|e| add(&mut errors, "pain_now", e))
            .ok();
        let relief = self.relief_percent.trim().trim_end_matches('%').trim();
        let relief_percent = if relief.is_empty() {
            add(
                &mut errors,
                "relief_percent",
                "give the relief as a percentage from 0 to 100",
            );
            None
        } else {
            relief
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| {
                    add(
                        &mut errors,
                        "relief_percent",
                        format!("{relief:?} is not a percentage from 0 to 100"),
                    );
                })
                .ok()
        };
        let problems = text(&self.problems, "problems", &mut errors);
        match (pain_now, relief_percent) {
            (Some(pain_now), Some(relief_percent)) if errors.is_empty() => Ok(FollowUpAnswers {
                pain_now,
                relief_percent,
                problems,
            }),
            _ => Err(errors),
        }
    }
}

/// When the follow-up is due: `days` after the discharge date.
pub fn follow_up_due(discharged_on: Date, days: u32) -> Date {
    discharged_on
        .checked_add(jiff::Span::new().days(i64::from(days)))
        .unwrap_or(discharged_on)
}

/// How many days before its due date a follow-up still counts in the outcomes.
/// Answers given earlier — a patient who phones the day after — say little about the
/// relief two weeks on: they are kept and close the case, but are marked early and
/// left out of the relief share (which says how many were left out).
pub const FOLLOW_UP_EARLY_DAYS: i64 = 3;

/// Whether a follow-up answered on `answered_on` came too early to count in the
/// outcomes (more than [`FOLLOW_UP_EARLY_DAYS`] before `due_on`).
pub fn follow_up_is_early(due_on: Date, answered_on: Date) -> bool {
    due_on
        .checked_sub(jiff::Span::new().days(FOLLOW_UP_EARLY_DAYS))
        .is_ok_and(|counts_from| answered_on < counts_from)
}

// ---------------------------------------------------------------- outcomes

/// One case's outcome facts: the procedure done (latest signed record), its
/// complication, and the relief reported at follow-up (if followed up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutcomeRow {
    /// CPT code done.
    pub procedure_code: String,
    /// Complication.
    pub complication: Complication,
    /// Relief at follow-up, percent.
    pub relief_percent: Option<u8>,
    /// The follow-up came early ([`follow_up_is_early`]): not counted in the relief share.
    pub early: bool,
}

/// The outcomes of one procedure.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcedureOutcome {
    /// CPT code.
    pub procedure_code: String,
    /// Procedures done (signed records).
    pub done: usize,
    /// Complications by kind (`none` not counted).
    pub complications: BTreeMap<Complication, usize>,
    /// Followed up with a relief answer.
    pub followed_up: usize,
    /// Of those, relief of at least 50%.
    pub relieved_half: usize,
    /// Followed up too early to count ([`follow_up_is_early`]): left out of the share.
    pub early_excluded: usize,
}

impl ProcedureOutcome {
    /// All complications together.
    pub fn complication_count(&self) -> usize {
        self.complications.values().sum()
    }

    /// Share of followed-up patients with at least 50% relief, in whole percent.
    pub fn relieved_half_percent(&self) -> Option<u32> {
        let n = u32::try_from(self.followed_up).ok().filter(|n| *n > 0)?;
        let k = u32::try_from(self.relieved_half).ok()?;
        Some((k * 100 + n / 2) / n)
    }
}

/// Relief counted as a response (the usual threshold: at least 50%).
pub const RESPONSE_RELIEF_PERCENT: u8 = 50;

/// Adds rows up per procedure, in code order.
pub fn outcomes(rows: &[OutcomeRow]) -> Vec<ProcedureOutcome> {
    let mut by_code: BTreeMap<&str, ProcedureOutcome> = BTreeMap::new();
    for r in rows {
        let o = by_code
            .entry(r.procedure_code.as_str())
            .or_insert_with(|| ProcedureOutcome {
                procedure_code: r.procedure_code.clone(),
                ..ProcedureOutcome::default()
            });
        o.done += 1;
        if r.complication != Complication::None {
            *o.complications.entry(r.complication).or_default() += 1;
        }
        if r.relief_percent.is_some() && r.early {
            o.early_excluded += 1;
        } else if let Some(relief) = r.relief_percent {
            o.followed_up += 1;
            if relief >= RESPONSE_RELIEF_PERCENT {
                o.relieved_half += 1;
            }
        }
    }
    by_code.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{BleedingRisk, SpineRegion};

    fn meta(id: &str) -> RuleMeta {
        RuleMeta {
            id: id.into(),
            source: "LOCAL".into(),
            verified: true,
            note: None,
        }
    }

    fn agent(name: &str, particulate: Option<bool>, max: u32) -> AgentRule {
        AgentRule {
            meta: meta(name),
            agent: name.into(),
            particulate,
            max: Amount::whole(max),
        }
    }

    fn rules() -> ProcedureRecordRules {
        ProcedureRecordRules {
            transforaminal_steroid: SteroidSuggestion {
                meta: meta("tf"),
                procedures: vec!["64483".into()],
                agent: "dexamethasone".into(),
                text: "use dexamethasone".into(),
            },
            steroids: vec![
                agent("dexamethasone", Some(false), 15),
                agent("triamcinolone", Some(true), 80),
            ],
            local_anaesthetics: vec![agent("lidocaine", None, 300)],
            contrast_agents: vec![agent("iohexol", None, 20)],
            limits: RecordLimits {
                meta: meta("limits"),
                max_fluoroscopy_seconds: 3600,
                max_dap: Amount::whole(50_000),
                max_dlp: Amount::whole(5_000),
            },
        }
    }

    fn catalogue() -> Vec<Procedure> {
        vec![
            Procedure {
                code: "64483".into(),
                name: "Lumbar transforaminal".into(),
                patient_name: "Nerve root injection".into(),
                modalities: vec![Modality::Fluoroscopy, Modality::Ct],
                duration_minutes: 20,
                risk_asra: BleedingRisk::Intermediate,
                risk_sir: BleedingRisk::High,
                regions: vec![SpineRegion::Lumbar, SpineRegion::Sacral],
                risk_source: "x".into(),
                active: true,
            },
            Procedure {
                code: "27096".into(),
                name: "Sacroiliac joint injection".into(),
                patient_name: "SI joint".into(),
                modalities: vec![Modality::Fluoroscopy],
                duration_minutes: 20,
                risk_asra: BleedingRisk::Low,
                risk_sir: BleedingRisk::Low,
                regions: vec![],
                risk_source: "x".into(),
                active: true,
            },
        ]
    }

    fn good() -> ProcedureRecordForm {
        ProcedureRecordForm {
            procedure: "64483".into(),
            levels: "l4-l5".into(),
            side: "left".into(),
            guidance: "fluoroscopy".into(),
            contrast_agent: "iohexol".into(),
            contrast_ml: "2".into(),
            steroid_agent: "Dexamethasone".into(),
            steroid_mg: "10".into(),
            anaesthetic_agent: "lidocaine".into(),
            anaesthetic_mg: "20".into(),
            fluoroscopy_seconds: "42".into(),
            dap: "312.5".into(),
            dlp: String::new(),
            pain_before: "8".into(),
            pain_after: "2".into(),
            complication: "none".into(),
            ..ProcedureRecordForm::default()
        }
    }

    #[test]
    fn amounts_are_exact() {
        assert_eq!(Amount::parse("1.5").map(|a| a.hundredths()), Ok(150));
        assert_eq!(
            Amount::parse("1,25").map(|a| a.to_string()),
            Ok("1.25".into())
        );
        assert_eq!(Amount::parse(" 4 ").map(|a| a.to_string()), Ok("4".into()));
        assert_eq!(Amount::parse(".5").map(|a| a.to_string()), Ok("0.5".into()));
        assert_eq!(
            Amount::parse("2.50").map(|a| a.to_string()),
            Ok("2.5".into())
        );
        for bad in ["", ".", "-1", "1.234", "abc", "1e3", "99999999", "1.2.3"] {
            assert!(Amount::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_complete_record_checks() {
        let d = good().check(&catalogue(), &rules(), false).expect("valid");
        assert_eq!(d.levels.map(|l| l.to_string()), Some("L4-L5".into()));
        assert_eq!(
            d.steroid.as_ref().map(|s| s.agent.as_str()),
            Some("dexamethasone")
        );
        assert_eq!(d.dap.map(|a| a.to_string()), Some("312.5".into()));
        assert_eq!((d.pain_before, d.pain_after), (8, 2));
        assert_eq!(d.amendment_reason, None);
        let details = good().check(&catalogue(), &rules(), false).expect("valid");
        let back = ProcedureRecordForm::from_details(&details);
        assert_eq!(
            ProcedureRecordDetails::from_signed(&back, &details.procedure_name),
            Ok(details.clone())
        );
        assert_eq!(
            back.check(&catalogue(), &rules(), false),
            good().check(&catalogue(), &rules(), false)
        );
    }

    #[test]
    fn every_field_is_checked() {
        let bad = ProcedureRecordForm {
            levels: "C5-C6".into(),
            side: "up".into(),
            contrast_agent: "gadolinium".into(),
            steroid_mg: "40".into(),
            anaesthetic_mg: String::new(),
            fluoroscopy_seconds: "-3".into(),
            dlp: "100".into(),
            pain_before: "11".into(),
            pain_after: String::new(),
            complication: "other".into(),
            ..good()
        };
        let errors = bad
            .check(&catalogue(), &rules(), true)
            .expect_err("invalid");
        for field in [
            "levels",
            "side",
            "contrast_agent",
            "steroid_mg",
            "anaesthetic_mg",
            "fluoroscopy_seconds",
            "dlp",
            "pain_before",
            "pain_after",
            "complication_text",
            "amendment_reason",
        ] {
            assert!(errors.get(field).is_some(), "{field}: {errors:?}");
        }
        assert!(errors.get("levels").is_some_and(|m| m.contains("cervical")));
        assert!(errors.get("steroid_mg").is_some_and(|m| m.contains("15")));
    }

    #[test]
    fn none_means_no_amount_and_ct_needs_dlp() {
        let f = ProcedureRecordForm {
            procedure: "27096".into(),
            levels: String::new(),
            guidance: "ct".into(),
            contrast_agent: "none".into(),
            contrast_ml: String::new(),
            fluoroscopy_seconds: String::new(),
            dap: String::new(),
            dlp: "120".into(),
            ..good()
        };
        let errors = f
            .check(&catalogue(), &rules(), false)
            .expect_err("no CT for SI here");
        assert!(errors.get("guidance").is_some(), "{errors:?}");
        let f = ProcedureRecordForm {
            procedure: "64483".into(),
            ..f
        };
        let errors = f.check(&catalogue(), &rules(), false).expect_err("levels");
        assert!(errors.get("levels").is_some());
        let f = ProcedureRecordForm {
            levels: "L5-S1".into(),
            ..f
        };
        let d = f
            .check(&catalogue(), &rules(), false)
            .expect("valid CT record");
        assert_eq!(d.contrast, None);
        assert_eq!(d.dlp, Some(Amount::whole(120)));
        let f = ProcedureRecordForm {
            contrast_ml: "3".into(),
            ..f
        };
        assert!(f.check(&catalogue(), &rules(), false).is_err());
    }

    #[test]
    fn particulate_steroids_are_flagged_for_transforaminal_only() {
        let r = rules();
        assert!(r.suggestion_for("64483").is_some());
        assert!(r.suggestion_for("27096").is_none());
        assert!(particulate_warning(&r, "64483", "triamcinolone").is_some());
        assert!(particulate_warning(&r, "64483", "dexamethasone").is_none());
        assert!(particulate_warning(&r, "27096", "triamcinolone").is_none());
    }

    #[test]
    fn a_particulate_steroid_for_a_transforaminal_injection_is_signed_only_when_acknowledged() {
        let particulate = ProcedureRecordForm {
            steroid_agent: "triamcinolone".into(),
            steroid_mg: "40".into(),
            ..good()
        };
        let errors = particulate
            .check(&catalogue(), &rules(), false)
            .expect_err("not without the acknowledgement");
        let m = errors.get("particulate_acknowledged").expect("named");
        assert!(m.contains("triamcinolone is a particulate steroid"), "{m}");
        assert!(m.contains("particulate steroid acknowledged"), "{m}");
        let acknowledged = ProcedureRecordForm {
            particulate_acknowledged: true,
            ..particulate
        };
        let d = acknowledged
            .check(&catalogue(), &rules(), false)
            .expect("acknowledged");
        assert!(d.particulate_acknowledged);
        assert!(ProcedureRecordForm::from_details(&d).particulate_acknowledged);
        // Nothing to acknowledge with a non-particulate steroid, or outside the
        // transforaminal procedures: a stray tick is not kept.
        let plain = ProcedureRecordForm {
            particulate_acknowledged: true,
            ..good()
        }
        .check(&catalogue(), &rules(), false)
        .expect("dexamethasone");
        assert!(!plain.particulate_acknowledged);
    }

    #[test]
    fn early_follow_ups_are_left_out_of_the_relief_share() {
        let due = jiff::civil::date(2026, 3, 15);
        assert!(follow_up_is_early(due, jiff::civil::date(2026, 3, 2)));
        assert!(follow_up_is_early(due, jiff::civil::date(2026, 3, 11)));
        assert!(!follow_up_is_early(due, jiff::civil::date(2026, 3, 12)));
        assert!(!follow_up_is_early(due, due));
        assert!(!follow_up_is_early(due, jiff::civil::date(2026, 4, 1)));
        let row = |relief: Option<u8>, early: bool| OutcomeRow {
            procedure_code: "64483".into(),
            complication: Complication::None,
            relief_percent: relief,
            early,
        };
        let o = outcomes(&[
            row(Some(80), false),
            row(Some(20), false),
            row(Some(90), true),
            row(None, false),
        ]);
        assert_eq!(o[0].done, 4);
        assert_eq!(o[0].followed_up, 2);
        assert_eq!(o[0].relieved_half, 1);
        assert_eq!(o[0].early_excluded, 1);
        assert_eq!(o[0].relieved_half_percent(), Some(50));
    }

    #[test]
    fn follow_up_answers_are_checked() {
        let ok = FollowUpForm {
            pain_now: "3".into(),
            relief_percent: "60%".into(),
            problems: "  ".into(),
        }
        .check()
        .expect("valid");
        assert_eq!((ok.pain_now, ok.relief_percent, ok.problems), (3, 60, None));
        let errors = FollowUpForm {
            pain_now: "ten".into(),
            relief_percent: "150".into(),
            problems: "x".repeat(MAX_TEXT_CHARS + 1),
        }
        .check()
        .expect_err("invalid");
        for f in ["pain_now", "relief_percent", "problems"] {
            assert!(errors.get(f).is_some(), "{f}");
        }
        assert_eq!(
            follow_up_due(jiff::civil::date(2026, 3, 1), 14),
            jiff::civil::date(2026, 3, 15)
        );
    }

    #[test]
    fn outcomes_add_up_per_procedure() {
        let row = |code: &str, c, relief| OutcomeRow {
            procedure_code: code.into(),
            complication: c,
            relief_percent: relief,
            early: false,
        };
        let o = outcomes(&[
            row("64483", Complication::None, Some(80)),
            row("64483", Complication::Vasovagal, Some(50)),
            row("64483", Complication::None, Some(20)),
            row("64483", Complication::None, None),
            row("27096", Complication::DuralPuncture, Some(10)),
        ]);
        assert_eq!(o.len(), 2);
        assert_eq!(o[0].procedure_code, "27096");
        let tf = &o[1];
        assert_eq!((tf.done, tf.followed_up, tf.relieved_half), (4, 3, 2));
        assert_eq!(tf.complication_count(), 1);
        assert_eq!(tf.relieved_half_percent(), Some(67));
        assert_eq!(o[0].relieved_half_percent(), Some(0));
        assert_eq!(ProcedureOutcome::default().relieved_half_percent(), None);
    }
}
