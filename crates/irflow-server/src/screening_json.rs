//! Screening facts and decisions as JSON: one parser and one renderer, used by the
//! API and by `irflow screen`, so both give the same decision for the same facts.
//! Unknown fields are refused; every error names the field.

use irflow_domain::screening::*;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FactsJson {
    procedure: Option<String>,
    today: Option<String>,
    proposed_date: Option<String>,
    appointment_time: Option<String>,
    #[serde(default)]
    medications: Vec<MedicationJson>,
    #[serde(default)]
    thrombotic_risk: Vec<String>,
    labs: Option<LabsJson>,
    contrast_allergy: Option<ContrastJson>,
    #[serde(default)]
    other_allergies: Vec<String>,
    diabetes: Option<DiabetesJson>,
    infection: Option<InfectionJson>,
    #[serde(default)]
    antibiotics: Vec<AntibioticJson>,
    #[serde(default)]
    pregnancy_possible: bool,
    escort_available: Option<bool>,
    symptoms: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MedicationJson {
    drug: String,
    last_dose: Option<String>,
    last_dose_time: Option<String>,
    indication: Option<String>,
    prevention: Option<String>,
    regimen: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LabsJson {
    inr: Option<f64>,
    platelets: Option<f64>,
    creatinine_clearance: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContrastJson {
    severity: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DiabetesJson {
    #[serde(default)]
    insulin: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfectionJson {
    active: bool,
    site: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AntibioticJson {
    reason: String,
    last_dose: Option<String>,
}

fn date(field: &str, raw: &str) -> Result<Date, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{field}: {raw:?} is not a date written YYYY-MM-DD"))
}

fn time(field: &str, raw: &str) -> Result<Time, String> {
    raw.trim()
        .parse()
        .map_err(|_| format!("{field}: {raw:?} is not a time written HH:MM"))
}

fn one_of<T: Copy>(field: &str, raw: &str, options: &[(&str, T)]) -> Result<T, String> {
    options
        .iter()
        .find(|(n, _)| *n == raw.trim())
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            format!("{field}: {raw:?} is not one of {}", names.join(", "))
        })
}

fn number(field: &str, v: Option<f64>, max: f64) -> Result<Option<f64>, String> {
    match v {
        Some(x) if !(0.0..=max).contains(&x) || x.is_nan() => {
            Err(format!("{field}: {x} is out of range (0-{max})"))
        }
        other => Ok(other),
    }
}

/// Parses facts. `procedure` and `today` come from the case when screening a case
/// (and may not then be given); for the CLI they come from the JSON, with `today`
/// defaulting to `default_today`.
pub fn parse_facts(
    body: &[u8],
    case_procedure: Option<&str>,
    default_today: Date,
) -> Result<ScreeningFacts, String> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let j: FactsJson = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." || path.is_empty() {
            format!("the facts are not valid: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    let procedure = match (case_procedure, j.procedure) {
        (Some(p), None) => p.to_owned(),
        (Some(p), Some(given)) if given.trim() == p => p.to_owned(),
        (Some(p), Some(given)) => {
            return Err(format!(
                "procedure: the case is for {p}, not {given}; leave it out"
            ));
        }
        (None, Some(given)) if !given.trim().is_empty() => given.trim().to_owned(),
        (None, _) => {
            return Err("procedure: give the procedure's CPT code (e.g. \"64483\")".to_owned());
        }
    };
    let today = match (&j.today, case_procedure) {
        (Some(_), Some(_)) => {
            return Err("today: set by the server for a case; leave it out".to_owned());
        }
        (Some(t), None) => date("today", t)?,
        (None, _) => default_today,
    };
    let mut f = ScreeningFacts::new(procedure, today);
    f.proposed_date = j
        .proposed_date
        .as_deref()
        .map(|d| date("proposed_date", d))
        .transpose()?;
    if let Some(p) = f.proposed_date
        && p < today
    {
        return Err(format!("proposed_date: {p} is before today ({today})"));
    }
    f.appointment_time = j
        .appointment_time
        .as_deref()
        .map(|t| time("appointment_time", t))
        .transpose()?;
    for (i, m) in j.medications.into_iter().enumerate() {
        let field = |name: &str| format!("medications[{i}].{name}");
        let drug = m.drug.trim().to_lowercase();
        if drug.is_empty() || drug.len() > 100 {
            return Err(format!(
                "{}: name the drug (lowercase generic name)",
                field("drug")
            ));
        }
        f.medications.push(Medication {
            drug,
            last_dose: m
                .last_dose
                .as_deref()
                .map(|d| date(&field("last_dose"), d))
                .transpose()?,
            last_dose_time: m
                .last_dose_time
                .as_deref()
                .map(|t| time(&field("last_dose_time"), t))
                .transpose()?,
            indication: m.indication,
            prevention: m
                .prevention
                .as_deref()
                .map(|p| {
                    one_of(
                        &field("prevention"),
                        p,
                        &[
                            ("primary", Prevention::Primary),
                            ("secondary", Prevention::Secondary),
                        ],
                    )
                })
                .transpose()?,
            regimen: m
                .regimen
                .map(|r| r.trim().to_lowercase())
                .filter(|r| !r.is_empty()),
        });
    }
    f.thrombotic_risk = j
        .thrombotic_risk
        .iter()
        .map(|t| t.trim().to_lowercase())
        .collect();
    let labs = j.labs.unwrap_or_default();
    f.labs = Labs {
        inr: number("labs.inr", labs.inr, 20.0)?,
        platelets: number("labs.platelets", labs.platelets, 2000.0)?,
        creatinine_clearance: number(
            "labs.creatinine_clearance",
            labs.creatinine_clearance,
            300.0,
        )?,
    };
    f.contrast_allergy = j
        .contrast_allergy
        .map(|c| {
            one_of(
                "contrast_allergy.severity",
                &c.severity,
                &[
                    ("mild", ReactionSeverity::Mild),
                    ("moderate", ReactionSeverity::Moderate),
                    ("severe", ReactionSeverity::Severe),
                ],
            )
        })
        .transpose()?;
    f.other_allergies = j
        .other_allergies
        .iter()
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty())
        .collect();
    f.diabetes = j.diabetes.map(|d| Diabetes { insulin: d.insulin });
    f.infection = j
        .infection
        .map(|i| {
            Ok::<_, String>(Infection {
                active: i.active,
                site: one_of(
                    "infection.site",
                    &i.site,
                    &[
                        ("systemic", InfectionSite::Systemic),
                        ("injection_site", InfectionSite::InjectionSite),
                        ("other", InfectionSite::Other),
                    ],
                )?,
            })
        })
        .transpose()?;
    for (i, a) in j.antibiotics.into_iter().enumerate() {
        f.antibiotics.push(Antibiotic {
            reason: one_of(
                &format!("antibiotics[{i}].reason"),
                &a.reason,
                &[
                    ("active_infection", AntibioticReason::ActiveInfection),
                    ("long_term", AntibioticReason::LongTerm),
                ],
            )?,
            last_dose: a
                .last_dose
                .as_deref()
                .map(|d| date(&format!("antibiotics[{i}].last_dose"), d))
                .transpose()?,
        });
    }
    f.pregnancy_possible = j.pregnancy_possible;
    f.escort_available = j.escort_available;
    f.symptoms = j
        .symptoms
        .as_deref()
        .map(|s| {
            one_of(
                "symptoms",
                s,
                &[
                    ("mild", Symptoms::Mild),
                    ("moderate", Symptoms::Moderate),
                    ("severe", Symptoms::Severe),
                ],
            )
        })
        .transpose()?;
    Ok(f)
}

/// Facts back to JSON (what is stored with a screening).
pub fn facts_json(f: &ScreeningFacts) -> Value {
    json!({
        "procedure": f.procedure,
        "today": f.today.to_string(),
        "proposed_date": f.proposed_date.map(|d| d.to_string()),
        "appointment_time": f.appointment_time.map(|t| t.strftime("%H:%M").to_string()),
        "medications": f.medications.iter().map(|m| json!({
            "drug": m.drug,
            "last_dose": m.last_dose.map(|d| d.to_string()),
            "last_dose_time": m.last_dose_time.map(|t| t.strftime("%H:%M").to_string()),
            "indication": m.indication,
            "prevention": m.prevention.map(|p| p.as_str()),
            "regimen": m.regimen,
        })).collect::<Vec<_>>(),
        "thrombotic_risk": f.thrombotic_risk,
        "labs": { "inr": f.labs.inr, "platelets": f.labs.platelets, "creatinine_clearance": f.labs.creatinine_clearance },
        "contrast_allergy": f.contrast_allergy.map(|s| json!({ "severity": s.as_str() })),
        "other_allergies": f.other_allergies,
        "diabetes": f.diabetes.map(|d| json!({ "insulin": d.insulin })),
        "infection": f.infection.map(|i| json!({ "active": i.active, "site": i.site.as_str() })),
        "antibiotics": f.antibiotics.iter().map(|a| json!({ "reason": a.reason.as_str(), "last_dose": a.last_dose.map(|d| d.to_string()) })).collect::<Vec<_>>(),
        "pregnancy_possible": f.pregnancy_possible,
        "escort_available": f.escort_available,
        "symptoms": f.symptoms.map(|s| s.as_str()),
    })
}

fn rfc3339(t: jiff::Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// The decision as JSON.
pub fn decision_json(d: &ScreeningDecision, tz: &TimeZone) -> Value {
    json!({
        "decision": d.decision.as_str(),
        "earliest_safe_date": d.earliest_safe_date.map(|x| x.to_string()),
        "earliest_safe_at": d.earliest_safe_at.as_ref().map(|z| z.strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()),
        "evaluated_for": d.evaluated_for.map(|x| x.to_string()),
        "monitoring_minutes": d.monitoring_minutes,
        "uses_unverified_rules": d.uses_unverified_rules(),
        "rule_pack": { "name": d.pack_name, "version": d.pack_version },
        "findings": d.findings.iter().map(|f| json!({
            "rule_id": f.rule_id,
            "severity": f.level.as_str(),
            "message": f.message,
            "source": f.source,
            "verified": f.verified,
            "required_action": f.action.as_ref().map(|a| json!({ "kind": a.kind.as_str(), "description": a.description })),
            "patient_advice": f.patient_advice,
            "earliest_date": f.earliest_date.map(|x| x.to_string()),
            "until_resolved": f.until_resolved,
            "hold": f.hold.as_ref().map(|h| json!({
                "drug": h.drug,
                "hold": h.hold,
                "last_dose": h.last_dose.to_string(),
                "earliest_date": h.earliest_date.to_string(),
                "earliest_at": h.earliest_at.map(|t| rfc3339(t, tz)),
                "restart": h.restart,
                "restart_hours": h.restart_hours,
            })),
            "premedication": f.premedication.iter().map(|p| json!({
                "what": p.what,
                "hours_before": p.hours_before,
                "at": p.at.map(|t| rfc3339(t, tz)),
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        jiff::civil::date(2026, 11, 26)
    }

    #[test]
    fn the_documented_example_parses() {
        let body = br#"{"procedure":"64483","today":"2026-11-26","proposed_date":"2026-12-03",
            "medications":[{"drug":"Apixaban","last_dose":"2026-11-25","last_dose_time":"20:00",
              "indication":"atrial fibrillation","prevention":"primary"}],
            "thrombotic_risk":["mechanical_mitral_valve"], "labs":{"inr":1.1,"platelets":220,
            "creatinine_clearance":70}, "contrast_allergy":{"severity":"mild"},
            "other_allergies":["lidocaine"], "diabetes":{"insulin":true},
            "infection":{"active":true,"site":"systemic"},
            "antibiotics":[{"reason":"active_infection","last_dose":"2026-11-20"}],
            "pregnancy_possible":false, "escort_available":true, "symptoms":"mild"}"#;
        let f = parse_facts(body, None, today()).expect("valid");
        assert_eq!(f.medications[0].drug, "apixaban");
        assert_eq!(f.labs.platelets, Some(220.0));
        assert_eq!(f.contrast_allergy, Some(ReactionSeverity::Mild));
        // And back.
        let again = facts_json(&f).to_string();
        let g = parse_facts(again.as_bytes(), None, today()).expect("round trip");
        assert_eq!(f, g);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: [(&[u8], &str); 9] = [
            (br#"{"procedure":"64483","colour":"red"}"#, "unknown field `colour`"),
            (br#"{"procedure":"64483","medications":[{"drug":"apixaban","last_dose":"25/11/2026"}]}"#, "medications[0].last_dose"),
            (br#"{"procedure":"64483","symptoms":"awful"}"#, "symptoms: \"awful\" is not one of mild, moderate, severe"),
            (br#"{"procedure":"64483","labs":{"inr":-1}}"#, "labs.inr"),
            (br#"{"procedure":"64483","infection":{"active":true,"site":"knee"}}"#, "infection.site"),
            (br#"{"procedure":"64483","proposed_date":"2026-11-01"}"#, "before today"),
            (br#"{}"#, "procedure: give"),
            (br#"not json"#, "not valid"),
            (br#"{"procedure":"64483","labs":{"inr":"high"}}"#, "labs.inr: invalid type"),
        ];
        for (body, needle) in cases {
            let e = parse_facts(body, None, today()).expect_err(needle);
            assert!(e.contains(needle), "{needle:?} in {e:?}");
        }
        let e =
            parse_facts(br#"{"procedure":"27096"}"#, Some("64483"), today()).expect_err("mismatch");
        assert!(e.contains("the case is for 64483"));
        let e = parse_facts(br#"{"today":"2026-11-26"}"#, Some("64483"), today())
            .expect_err("today from the server");
        assert!(e.contains("today"));
    }
}
