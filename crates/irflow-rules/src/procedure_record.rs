//! `procedure_record.toml`: the agents the procedure record offers (steroids with
//! particulate or not, local anaesthetics, contrast), the most of each it accepts,
//! the radiation fields' limits, and the transforaminal steroid suggestion.

use std::collections::HashSet;

use irflow_domain::procedure_record::{
    AgentRule, Amount, ProcedureRecordRules, RecordLimits, SteroidSuggestion,
};
use serde::Deserialize;

use crate::{Checker, RulesError, err, parse};

pub(crate) const FILE: &str = "procedure_record.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordFile {
    transforaminal_steroid: Suggestion,
    steroid: Vec<Agent>,
    local_anaesthetic: Vec<Agent>,
    contrast: Vec<Agent>,
    radiation: Radiation,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Suggestion {
    id: String,
    procedures: Vec<String>,
    suggest: String,
    text: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Agent {
    id: String,
    agent: String,
    particulate: Option<bool>,
    max_mg: Option<f64>,
    max_ml: Option<f64>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Radiation {
    id: String,
    max_fluoroscopy_seconds: u32,
    max_dap_mgycm2: f64,
    max_dlp_mgycm: f64,
    source: String,
    verified: bool,
    note: Option<String>,
}

/// A positive amount with at most two decimals, below a sane ceiling.
fn amount(what: &str, value: f64) -> Result<Amount, RulesError> {
    let hundredths = (value * 100.0).round();
    if !(value > 0.0 && value <= 1_000_000.0 && (value * 100.0 - hundredths).abs() < 1e-6) {
        return Err(err(
            FILE,
            format!(
                "{what}: {value} must be more than 0, at most 1000000, with at most two decimals"
            ),
        ));
    }
    // In range by the check above.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Amount::from_hundredths(hundredths as u32))
}

fn agents(
    c: &mut Checker,
    kind: &str,
    unit: &str,
    list: Vec<Agent>,
    steroids: bool,
) -> Result<Vec<AgentRule>, RulesError> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for a in list {
        let what = format!("{kind} {} ({})", a.id, a.agent);
        if a.agent.trim().is_empty() || a.agent != a.agent.to_lowercase() || a.agent == "none" {
            return Err(err(
                FILE,
                format!("{what}: agent must be a lowercase generic name (not \"none\")"),
            ));
        }
        if !seen.insert(a.agent.clone()) {
            return Err(err(FILE, format!("{what}: {} is listed twice", a.agent)));
        }
        let max = match (unit, a.max_mg, a.max_ml) {
            ("mg", Some(v), None) => amount(&format!("{what} max_mg"), v)?,
            ("ml", None, Some(v)) => amount(&format!("{what} max_ml"), v)?,
            _ => {
                return Err(err(
                    FILE,
                    format!("{what}: give max_{unit} (and only that)"),
                ));
            }
        };
        if steroids != a.particulate.is_some() {
            return Err(err(
                FILE,
                if steroids {
                    format!("{what}: say whether it is particulate (particulate = true or false)")
                } else {
                    format!("{what}: particulate applies to steroids only")
                },
            ));
        }
        out.push(AgentRule {
            meta: c.meta(FILE, a.id, a.source, a.verified, a.note)?,
            agent: a.agent,
            particulate: a.particulate,
            max,
        });
    }
    if out.is_empty() {
        return Err(err(FILE, format!("list at least one {kind}")));
    }
    Ok(out)
}

pub(crate) fn rules(c: &mut Checker, text: &str) -> Result<ProcedureRecordRules, RulesError> {
    let f: RecordFile = parse(FILE, text)?;
    let steroids = agents(c, "steroid", "mg", f.steroid, true)?;
    let local_anaesthetics = agents(c, "local_anaesthetic", "mg", f.local_anaesthetic, false)?;
    let contrast_agents = agents(c, "contrast", "ml", f.contrast, false)?;
    let s = f.transforaminal_steroid;
    if s.procedures.is_empty() || s.procedures.iter().any(|p| p.trim().is_empty()) {
        return Err(err(
            FILE,
            format!("rule {}: list the transforaminal procedure codes", s.id),
        ));
    }
    if s.text.trim().is_empty() {
        return Err(err(
            FILE,
            format!("rule {}: text (what the form says) is required", s.id),
        ));
    }
    if !steroids
        .iter()
        .any(|r| r.agent == s.suggest && r.particulate == Some(false))
    {
        return Err(err(
            FILE,
            format!(
                "rule {}: suggest {:?} must be a non-particulate steroid listed in [[steroid]]",
                s.id, s.suggest
            ),
        ));
    }
    let transforaminal_steroid = SteroidSuggestion {
        meta: c.meta(FILE, s.id, s.source, s.verified, s.note)?,
        procedures: s.procedures,
        agent: s.suggest,
        text: s.text,
    };
    let r = f.radiation;
    if !(1..=24 * 3600).contains(&r.max_fluoroscopy_seconds) {
        return Err(err(
            FILE,
            format!("rule {}: max_fluoroscopy_seconds must be 1-86400", r.id),
        ));
    }
    let limits = RecordLimits {
        max_fluoroscopy_seconds: r.max_fluoroscopy_seconds,
        max_dap: amount(&format!("rule {} max_dap_mgycm2", r.id), r.max_dap_mgycm2)?,
        max_dlp: amount(&format!("rule {} max_dlp_mgycm", r.id), r.max_dlp_mgycm)?,
        meta: c.meta(FILE, r.id, r.source, r.verified, r.note)?,
    };
    Ok(ProcedureRecordRules {
        transforaminal_steroid,
        steroids,
        local_anaesthetics,
        contrast_agents,
        limits,
    })
}
