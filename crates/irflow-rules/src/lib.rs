//! Rule packs: a directory of TOML files (`pack.toml`, `procedures.toml`,
//! `drugs.toml`, `thrombotic.toml`, `labs.toml`, `contrast.toml`, `local.toml`,
//! `procedure_record.toml`)
//! loaded into the domain's [`RulePack`] and checked. A pack that does not hold
//! together is refused with the file and the rule at fault.
//!
//! The default pack (`rules/default/` in the repository) is compiled into the
//! binary, so irflow works from any directory; a department points irflow at its
//! own copy to change it.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use irflow_domain::BleedingRisk;
use irflow_domain::screening::{
    ConditionRule, ContrastRules, DrugRule, Hold, LabKind, LabRule, LocalPolicy, PremedStep,
    PremedicationRegimen, ProcedureRisk, RuleMeta, RulePack, RulesByClass,
};
use serde::Deserialize;

mod day;
mod procedure_record;

/// The files of a pack, in the order they are read.
pub const FILES: [&str; 9] = [
    "pack.toml",
    "procedures.toml",
    "drugs.toml",
    "thrombotic.toml",
    "labs.toml",
    "contrast.toml",
    "local.toml",
    procedure_record::FILE,
    day::FILE,
];

/// Why a pack was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule pack {file}: {message}")]
pub struct RulesError {
    /// The file at fault.
    pub file: String,
    /// What is wrong and where.
    pub message: String,
}

fn err(file: &str, message: impl Into<String>) -> RulesError {
    RulesError {
        file: file.to_owned(),
        message: message.into(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackFile {
    name: String,
    version: String,
    #[serde(default)]
    description: String,
    sources: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Meta {
    id: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProceduresFile {
    procedure: Vec<ProcedureEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProcedureEntry {
    id: String,
    code: String,
    class: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ByClass {
    high: String,
    intermediate: String,
    low: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Renal {
    days: u32,
    below_creatinine_clearance: f64,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrugsFile {
    drug: Vec<DrugEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DrugEntry {
    id: String,
    drug: String,
    #[serde(default)]
    aliases: Vec<String>,
    regimen: Option<String>,
    hold: ByClass,
    restart: ByClass,
    renal: Option<Renal>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThromboticFile {
    condition: Vec<ConditionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConditionEntry {
    id: String,
    label: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabsFile {
    #[serde(default)]
    lab: Vec<LabEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LabEntry {
    id: String,
    lab: String,
    max: Option<f64>,
    min: Option<f64>,
    #[serde(default)]
    when_taking: Vec<String>,
    classes: Vec<String>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContrastFile {
    allergy: ContrastAllergy,
    regimen: Vec<RegimenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContrastAllergy {
    id: String,
    default_regimen: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegimenEntry {
    id: String,
    label: String,
    steps: Vec<StepEntry>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StepEntry {
    hours_before: u32,
    what: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalFile {
    antibiotic_window: WithNumber<DaysKey>,
    long_term_antibiotics: Meta,
    active_infection: Meta,
    monitoring: WithNumber<MinutesKey>,
    activity: WithNumber<LiftingKey>,
    diabetes: Meta,
    mild_symptoms: Meta,
    pregnancy: Meta,
    agent_allergy: AgentAllergy,
    unknown_drug: Meta,
}

// Each numeric policy has its own key name; these markers name it for serde.
#[derive(Deserialize)]
struct DaysKey {
    days: u32,
}
#[derive(Deserialize)]
struct MinutesKey {
    minutes: u32,
}
#[derive(Deserialize)]
struct LiftingKey {
    no_heavy_lifting_days: u32,
}

#[derive(Deserialize)]
struct WithNumber<K> {
    #[serde(flatten)]
    meta: Meta,
    #[serde(flatten)]
    value: K,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentAllergy {
    id: String,
    agents: Vec<String>,
    source: String,
    verified: bool,
    note: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, RulesError> {
    toml::from_str(text).map_err(|e| err(file, e.to_string().trim().to_owned()))
}

fn class(file: &str, what: &str, raw: &str) -> Result<BleedingRisk, RulesError> {
    raw.parse()
        .map_err(|e: String| err(file, format!("{what}: {e}")))
}

fn hold(file: &str, what: &str, raw: &str) -> Result<Hold, RulesError> {
    let raw = raw.trim();
    let number = |s: &str| s.parse::<u32>().ok().filter(|n| (1..=60 * 24).contains(n));
    match raw {
        "none" => Ok(Hold::None),
        "shared" => Ok(Hold::Shared),
        "review" => Ok(Hold::Review),
        _ => match (
            raw.strip_suffix('d').and_then(number),
            raw.strip_suffix('h').and_then(number),
        ) {
            (Some(d), _) if d <= 60 => Ok(Hold::Days(d)),
            (_, Some(h)) if h <= 240 => Ok(Hold::Hours(h)),
            _ => Err(err(
                file,
                format!(
                    "{what}: {raw:?} is not none, shared, review, <days>d (1-60) or <hours>h (1-240)"
                ),
            )),
        },
    }
}

fn restart(file: &str, what: &str, raw: &str) -> Result<Option<u32>, RulesError> {
    match raw.trim() {
        "none" => Ok(None),
        r => r
            .strip_suffix('h')
            .and_then(|h| h.parse::<u32>().ok())
            .filter(|h| *h <= 240)
            .map(Some)
            .ok_or_else(|| {
                err(
                    file,
                    format!("{what}: {r:?} is not none or <hours>h (0-240)"),
                )
            }),
    }
}

struct Checker {
    sources: BTreeMap<String, String>,
    ids: HashSet<String>,
}

impl Checker {
    fn meta(
        &mut self,
        file: &str,
        id: String,
        source: String,
        verified: bool,
        note: Option<String>,
    ) -> Result<RuleMeta, RulesError> {
        if id.trim().is_empty() || id.contains(char::is_whitespace) {
            return Err(err(
                file,
                format!("rule id {id:?} must be a non-empty word without spaces"),
            ));
        }
        if !self.sources.contains_key(&source) {
            let known: Vec<&str> = self.sources.keys().map(String::as_str).collect();
            return Err(err(
                file,
                format!(
                    "rule {id}: source {source:?} is not in pack.toml [sources] ({})",
                    known.join(", ")
                ),
            ));
        }
        if !self.ids.insert(id.clone()) {
            return Err(err(file, format!("rule id {id} is used twice in the pack")));
        }
        Ok(RuleMeta {
            id,
            source,
            verified,
            note,
        })
    }

    fn from(&mut self, file: &str, m: Meta) -> Result<RuleMeta, RulesError> {
        self.meta(file, m.id, m.source, m.verified, m.note)
    }
}

/// Builds a pack from the text of its files (`FILES` order).
pub fn from_texts(texts: &[(&str, &str)]) -> Result<RulePack, RulesError> {
    let text = |name: &str| -> Result<&str, RulesError> {
        texts
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| *t)
            .ok_or_else(|| err(name, "missing from the pack"))
    };
    let pack: PackFile = parse("pack.toml", text("pack.toml")?)?;
    if pack.name.trim().is_empty() || pack.version.trim().is_empty() {
        return Err(err(
            "pack.toml",
            "name and version are required (they are recorded with every decision)",
        ));
    }
    if pack.sources.is_empty() {
        return Err(err(
            "pack.toml",
            "[sources] must list the source tags the rules cite",
        ));
    }
    let mut c = Checker {
        sources: pack.sources.clone(),
        ids: HashSet::new(),
    };

    let f = "procedures.toml";
    let mut procedures = Vec::new();
    let mut codes = HashSet::new();
    for p in parse::<ProceduresFile>(f, text(f)?)?.procedure {
        if !codes.insert(p.code.clone()) {
            return Err(err(f, format!("procedure {} has two classes", p.code)));
        }
        let class = class(f, &format!("rule {}", p.id), &p.class)?;
        procedures.push(ProcedureRisk {
            meta: c.meta(f, p.id, p.source, p.verified, p.note)?,
            code: p.code,
            class,
        });
    }

    let f = "drugs.toml";
    let mut drugs = Vec::new();
    let mut seen = HashSet::new();
    for d in parse::<DrugsFile>(f, text(f)?)?.drug {
        let what = |part: &str| format!("rule {} ({}) {part}", d.id, d.drug);
        if d.drug.trim().is_empty() || d.drug != d.drug.to_lowercase() {
            return Err(err(
                f,
                format!("rule {}: drug must be a lowercase generic name", d.id),
            ));
        }
        if !seen.insert((d.drug.clone(), d.regimen.clone())) {
            return Err(err(
                f,
                format!(
                    "rule {}: {} {} is defined twice",
                    d.id,
                    d.drug,
                    d.regimen.as_deref().unwrap_or("(no regimen)")
                ),
            ));
        }
        let by_hold = RulesByClass {
            high: hold(f, &what("hold.high"), &d.hold.high)?,
            intermediate: hold(f, &what("hold.intermediate"), &d.hold.intermediate)?,
            low: hold(f, &what("hold.low"), &d.hold.low)?,
        };
        let by_restart = RulesByClass {
            high: restart(f, &what("restart.high"), &d.restart.high)?,
            intermediate: restart(f, &what("restart.intermediate"), &d.restart.intermediate)?,
            low: restart(f, &what("restart.low"), &d.restart.low)?,
        };
        let renal = match d.renal {
            Some(r)
                if (1..=60).contains(&r.days)
                    && r.below_creatinine_clearance > 0.0
                    && r.below_creatinine_clearance < 200.0 =>
            {
                Some((r.days, r.below_creatinine_clearance))
            }
            Some(_) => {
                return Err(err(
                    f,
                    what("renal: days must be 1-60 and below_creatinine_clearance 0-200"),
                ));
            }
            None => None,
        };
        drugs.push(DrugRule {
            meta: c.meta(f, d.id.clone(), d.source, d.verified, d.note)?,
            drug: d.drug,
            aliases: d.aliases.iter().map(|a| a.trim().to_lowercase()).collect(),
            regimen: d.regimen.map(|r| r.trim().to_lowercase()),
            hold: by_hold,
            renal_hold: renal,
            restart_hours: by_restart,
        });
    }
    // A drug with several entries must name every entry's regimen, or the screening
    // could not tell them apart.
    for d in &drugs {
        let same = drugs.iter().filter(|o| o.drug == d.drug).count();
        if same > 1 && d.regimen.is_none() {
            return Err(err(
                f,
                format!(
                    "rule {}: {} has several entries, so each needs a regimen",
                    d.meta.id, d.drug
                ),
            ));
        }
    }
    let drug_names: HashSet<&str> = drugs.iter().map(|d| d.drug.as_str()).collect();

    let f = "thrombotic.toml";
    let mut thrombotic_risk = Vec::new();
    for t in parse::<ThromboticFile>(f, text(f)?)?.condition {
        thrombotic_risk.push(ConditionRule {
            meta: c.meta(f, t.id, t.source, t.verified, t.note)?,
            label: t.label,
        });
    }

    let f = "labs.toml";
    let mut labs = Vec::new();
    for l in parse::<LabsFile>(f, text(f)?)?.lab {
        let kind = match l.lab.as_str() {
            "inr" => LabKind::Inr,
            "platelets" => LabKind::Platelets,
            other => {
                return Err(err(
                    f,
                    format!("rule {}: lab {other:?} is not inr or platelets", l.id),
                ));
            }
        };
        if l.max.is_none() && l.min.is_none() {
            return Err(err(f, format!("rule {}: give max or min", l.id)));
        }
        if let Some(unknown) = l
            .when_taking
            .iter()
            .find(|d| !drug_names.contains(d.as_str()))
        {
            return Err(err(
                f,
                format!(
                    "rule {}: when_taking names {unknown:?}, which drugs.toml does not define",
                    l.id
                ),
            ));
        }
        let classes = l
            .classes
            .iter()
            .map(|raw| class(f, &format!("rule {}", l.id), raw))
            .collect::<Result<Vec<_>, _>>()?;
        if classes.is_empty() {
            return Err(err(
                f,
                format!("rule {}: list the procedure classes it applies to", l.id),
            ));
        }
        labs.push(LabRule {
            meta: c.meta(f, l.id, l.source, l.verified, l.note)?,
            lab: kind,
            max: l.max,
            min: l.min,
            when_taking: l.when_taking,
            classes,
        });
    }

    let f = "contrast.toml";
    let cf: ContrastFile = parse(f, text(f)?)?;
    let mut regimens = Vec::new();
    for r in cf.regimen {
        if r.steps.is_empty() {
            return Err(err(f, format!("regimen {} has no steps", r.id)));
        }
        if let Some(s) = r
            .steps
            .iter()
            .find(|s| s.hours_before > 72 || s.what.trim().is_empty())
        {
            return Err(err(
                f,
                format!(
                    "regimen {}: step {:?} must say what, at most 72 hours before",
                    r.id, s.what
                ),
            ));
        }
        regimens.push(PremedicationRegimen {
            meta: c.meta(f, r.id, r.source, r.verified, r.note)?,
            label: r.label,
            steps: r
                .steps
                .into_iter()
                .map(|s| PremedStep {
                    hours_before: s.hours_before,
                    what: s.what,
                })
                .collect(),
        });
    }
    if !regimens
        .iter()
        .any(|r| r.meta.id == cf.allergy.default_regimen)
    {
        return Err(err(
            f,
            format!(
                "default_regimen {:?} is not one of the regimens",
                cf.allergy.default_regimen
            ),
        ));
    }
    let a = cf.allergy;
    let contrast = ContrastRules {
        meta: c.meta(f, a.id, a.source, a.verified, a.note)?,
        default_regimen: a.default_regimen,
        regimens,
    };

    let f = "local.toml";
    let l: LocalFile = parse(f, text(f)?)?;
    let window = l.antibiotic_window.value.days;
    if !(1..=60).contains(&window) {
        return Err(err(f, "antibiotic_window.days must be 1-60"));
    }
    let minutes = l.monitoring.value.minutes;
    // CLINICAL-RULES: a patient who drives is monitored for 30-60 minutes.
    if !(30..=60).contains(&minutes) {
        return Err(err(f, "monitoring.minutes must be 30-60"));
    }
    let lifting = l.activity.value.no_heavy_lifting_days;
    if lifting > 60 {
        return Err(err(f, "activity.no_heavy_lifting_days must be 0-60"));
    }
    let aa = l.agent_allergy;
    let policy = LocalPolicy {
        antibiotic_window_days: window,
        antibiotic_window: c.from(f, l.antibiotic_window.meta)?,
        long_term_antibiotics: c.from(f, l.long_term_antibiotics)?,
        active_infection: c.from(f, l.active_infection)?,
        monitoring_minutes: minutes,
        monitoring: c.from(f, l.monitoring.meta)?,
        no_heavy_lifting_days: lifting,
        activity: c.from(f, l.activity.meta)?,
        diabetes: c.from(f, l.diabetes)?,
        mild_symptoms: c.from(f, l.mild_symptoms)?,
        pregnancy: c.from(f, l.pregnancy)?,
        review_allergy_agents: aa.agents.iter().map(|a| a.trim().to_lowercase()).collect(),
        agent_allergy: c.meta(f, aa.id, aa.source, aa.verified, aa.note)?,
        unknown_drug: c.from(f, l.unknown_drug)?,
    };
    let procedure_record = procedure_record::rules(&mut c, text(procedure_record::FILE)?)?;
    let day = day::rules(&mut c, text(day::FILE)?)?;

    Ok(RulePack {
        name: pack.name,
        version: pack.version,
        description: pack.description,
        sources: pack.sources,
        procedures,
        drugs,
        thrombotic_risk,
        labs,
        contrast,
        policy,
        procedure_record,
        day,
    })
}

/// Loads a pack from a directory.
pub fn load_dir(dir: &Path) -> Result<RulePack, RulesError> {
    let mut texts = Vec::new();
    for name in FILES {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| err(&path.display().to_string(), format!("cannot be read: {e}")))?;
        texts.push((name, text));
    }
    let borrowed: Vec<(&str, &str)> = texts.iter().map(|(n, t)| (*n, t.as_str())).collect();
    from_texts(&borrowed).map_err(|e| RulesError {
        file: dir.join(&e.file).display().to_string(),
        ..e
    })
}

/// The default pack's files, compiled in.
pub const DEFAULT_FILES: [(&str, &str); 9] = [
    (
        "pack.toml",
        include_str!("../../../rules/default/pack.toml"),
    ),
    (
        "procedures.toml",
        include_str!("../../../rules/default/procedures.toml"),
    ),
    (
        "drugs.toml",
        include_str!("../../../rules/default/drugs.toml"),
    ),
    (
        "thrombotic.toml",
        include_str!("../../../rules/default/thrombotic.toml"),
    ),
    (
        "labs.toml",
        include_str!("../../../rules/default/labs.toml"),
    ),
    (
        "contrast.toml",
        include_str!("../../../rules/default/contrast.toml"),
    ),
    (
        "local.toml",
        include_str!("../../../rules/default/local.toml"),
    ),
    (
        procedure_record::FILE,
        include_str!("../../../rules/default/procedure_record.toml"),
    ),
    (day::FILE, include_str!("../../../rules/default/day.toml")),
];

/// The default pack (`rules/default/`). Its validity is checked by the tests, so
/// this only fails if the repository's pack is broken.
pub fn default_pack() -> Result<RulePack, RulesError> {
    from_texts(&DEFAULT_FILES)
}
