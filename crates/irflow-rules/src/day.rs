//! `day.toml`: the procedure day — the risks explained at consent, the glucose limit
//! on arrival (none by default), and the criteria confirmed before discharge.

use std::collections::HashSet;

use irflow_domain::screening::{DayRules, DischargeCriterion};
use serde::Deserialize;

use crate::{Checker, RulesError, err, parse};

pub(crate) const FILE: &str = "day.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DayFile {
    consent: ConsentEntry,
    glucose: GlucoseEntry,
    discharge: Vec<CriterionEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsentEntry {
    id: String,
    risks: Vec<String>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GlucoseEntry {
    id: String,
    max_mg_dl: Option<u32>,
    source: String,
    verified: bool,
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CriterionEntry {
    id: String,
    label: String,
    source: String,
    verified: bool,
    note: Option<String>,
}

/// Loads and checks `day.toml`.
pub(crate) fn rules(c: &mut Checker, text: &str) -> Result<DayRules, RulesError> {
    let f: DayFile = parse(FILE, text)?;
    let risks: Vec<String> = f
        .consent
        .risks
        .iter()
        .map(|r| r.trim().to_owned())
        .collect();
    if risks.is_empty() || risks.iter().any(String::is_empty) {
        return Err(err(
            FILE,
            format!(
                "rule {}: list the risks explained at consent, none empty",
                f.consent.id
            ),
        ));
    }
    if let Some(max) = f.glucose.max_mg_dl
        && !(100..=800).contains(&max)
    {
        return Err(err(
            FILE,
            format!(
                "rule {}: max_mg_dl must be 100-800 (or left out for no limit)",
                f.glucose.id
            ),
        ));
    }
    if f.discharge.is_empty() {
        return Err(err(FILE, "list at least one [[discharge]] criterion"));
    }
    let mut labels = HashSet::new();
    let mut discharge = Vec::new();
    for d in f.discharge {
        let label = d.label.trim().to_owned();
        if label.is_empty() || !labels.insert(label.clone()) {
            return Err(err(
                FILE,
                format!("discharge criterion {}: the label must be given once", d.id),
            ));
        }
        discharge.push(DischargeCriterion {
            meta: c.meta(FILE, d.id, d.source, d.verified, d.note)?,
            label,
        });
    }
    let cf = f.consent;
    let g = f.glucose;
    Ok(DayRules {
        consent: c.meta(FILE, cf.id, cf.source, cf.verified, cf.note)?,
        risks,
        glucose: c.meta(FILE, g.id, g.source, g.verified, g.note)?,
        glucose_max_mg_dl: g.max_mg_dl,
        discharge,
    })
}

#[cfg(test)]
mod tests {
    use crate::{DEFAULT_FILES, default_pack, from_texts};

    fn with_day(text: &str) -> Result<irflow_domain::screening::RulePack, crate::RulesError> {
        let files: Vec<(&str, &str)> = DEFAULT_FILES
            .iter()
            .map(|(n, t)| (*n, if *n == super::FILE { text } else { *t }))
            .collect();
        from_texts(&files)
    }

    fn default_text() -> &'static str {
        DEFAULT_FILES
            .iter()
            .find(|(n, _)| *n == super::FILE)
            .map(|(_, t)| *t)
            .unwrap_or_default()
    }

    #[test]
    fn the_default_day_rules_follow_the_reference() {
        let pack = default_pack().expect("the default pack loads");
        // PRODUCT.md: the risks the department explains.
        assert_eq!(
            pack.day.risks,
            [
                "Bleeding",
                "Infection",
                "Allergic reaction to the injected medicine",
                "Temporary leg numbness or weakness",
                "Spinal headache",
            ]
        );
        // CLINICAL-RULES.md section 4: no glucose cut-off unless the department sets one.
        assert_eq!(pack.day.glucose_max_mg_dl, None);
        // Not in the reference: shipped unverified, so every page says so.
        assert!(pack.day.discharge.len() >= 4);
        assert!(pack.day.discharge.iter().all(|d| !d.meta.verified));
        let ids: Vec<&str> = pack.all_rules().iter().map(|m| m.id.as_str()).collect();
        assert!(ids.contains(&"local-consent-risks") && ids.contains(&"discharge-site-dry"));
    }

    #[test]
    fn a_department_limit_is_read_and_bad_day_rules_are_refused() {
        let with_limit = default_text().replace(
            "id = \"local-glucose-on-arrival\"",
            "id = \"local-glucose-on-arrival\"\nmax_mg_dl = 300",
        );
        assert_eq!(
            with_day(&with_limit)
                .expect("a limit")
                .day
                .glucose_max_mg_dl,
            Some(300)
        );
        for (from, to, needle) in [
            (
                "id = \"local-glucose-on-arrival\"",
                "id = \"local-glucose-on-arrival\"\nmax_mg_dl = 20",
                "max_mg_dl must be 100-800",
            ),
            ("  \"Bleeding\",\n", "  \"\",\n", "none empty"),
            (
                "id = \"discharge-site-dry\"",
                "id = \"discharge-vitals-stable\"",
                "used twice",
            ),
            ("source = \"LOCAL\"", "source = \"LOCALE\"", "LOCALE"),
        ] {
            let text = default_text().replacen(from, to, 1);
            assert_ne!(text, default_text(), "test setup: {from:?}");
            let e = with_day(&text).expect_err(needle);
            assert_eq!(e.file, super::FILE);
            assert!(e.message.contains(needle), "{needle:?} in {e}");
        }
    }
}
