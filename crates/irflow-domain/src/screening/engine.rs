//! The screening engine: facts + pack → decision. Pure: no I/O, no clock (today
//! comes in the facts), no hidden numbers (every threshold is in the pack).
//!
//! Combining: the strictest finding decides; the latest date wins; a deferral
//! "until resolved" has no date at all.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use super::*;
use crate::catalogue::BleedingRisk;

/// Facts the engine cannot evaluate. Each message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// The pack has no class for this procedure.
    #[error("procedure {0:?} is not in the rule pack; its bleeding-risk class is unknown")]
    UnknownProcedure(String),
    /// A thrombotic-risk condition the pack does not know.
    #[error("thrombotic_risk {given:?} is not known; known: {known}")]
    UnknownCondition {
        /// What was given.
        given: String,
        /// What the pack knows.
        known: String,
    },
    /// A date computation left the supported range.
    #[error("a date is out of range: {0}")]
    DateRange(String),
}

fn finding(pack: &RulePack, meta: &RuleMeta, level: Decision, message: String) -> Finding {
    Finding {
        rule_id: meta.id.clone(),
        level,
        message: match &meta.note {
            Some(n) => format!("{message} ({n})"),
            None => message,
        },
        source: pack.cite(meta),
        verified: meta.verified,
        action: None,
        patient_advice: None,
        hold: None,
        premedication: Vec::new(),
        earliest_date: None,
        until_resolved: false,
    }
}

fn action(kind: ActionKind, description: String) -> Option<RequiredAction> {
    Some(RequiredAction { kind, description })
}

fn class_name(class: BleedingRisk) -> &'static str {
    class.as_str()
}

fn add_days(d: Date, days: u32) -> Result<Date, EngineError> {
    d.checked_add(Span::new().days(i64::from(days)))
        .map_err(|e| EngineError::DateRange(e.to_string()))
}

fn plural(n: u32, unit: &str) -> String {
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// Evaluates the facts against the pack, in the site's time zone.
pub fn evaluate(
    pack: &RulePack,
    facts: &ScreeningFacts,
    tz: &TimeZone,
) -> Result<ScreeningDecision, EngineError> {
    let class = pack
        .procedures
        .iter()
        .find(|p| p.code == facts.procedure.trim())
        .map(|p| p.class)
        .ok_or_else(|| EngineError::UnknownProcedure(facts.procedure.clone()))?;
    let today = facts.today;
    let mut findings: Vec<Finding> = Vec::new();

    for med in &facts.medications {
        findings.push(medication_finding(pack, facts, med, class, tz)?);
    }

    for condition in &facts.thrombotic_risk {
        let id = condition.trim().to_lowercase();
        let rule = pack
            .thrombotic_risk
            .iter()
            .find(|c| c.meta.id == id)
            .ok_or_else(|| EngineError::UnknownCondition {
                given: condition.clone(),
                known: pack
                    .thrombotic_risk
                    .iter()
                    .map(|c| c.meta.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut f = finding(
            pack,
            &rule.meta,
            Decision::Review,
            format!(
                "High thrombotic risk ({}): any hold of an anticoagulant or antiplatelet is a shared decision with the prescriber; do not advise stopping",
                rule.label
            ),
        );
        f.action = action(
            ActionKind::PrescriberClearance,
            format!("Shared decision with the prescriber: {}", rule.label),
        );
        findings.push(f);
    }

    for rule in &pack.labs {
        if !rule.classes.contains(&class) {
            continue;
        }
        let taking: Vec<&str> = facts
            .medications
            .iter()
            .map(|m| m.drug.trim())
            .filter(|d| {
                rule.when_taking.is_empty()
                    || rule.when_taking.iter().any(|w| w.eq_ignore_ascii_case(d))
            })
            .collect();
        if !rule.when_taking.is_empty() && taking.is_empty() {
            continue;
        }
        let value = match rule.lab {
            LabKind::Inr => facts.labs.inr,
            LabKind::Platelets => facts.labs.platelets,
        };
        let bound = match (rule.max, rule.min) {
            (Some(max), _) => format!("at most {max}"),
            (None, Some(min)) => format!("at least {min}"),
            (None, None) => "checked".to_owned(),
        };
        let ok = |v: f64| rule.max.is_none_or(|m| v <= m) && rule.min.is_none_or(|m| v >= m);
        let lab = rule.lab.as_str().to_uppercase();
        let mut f = match value {
            Some(v) if ok(v) => finding(
                pack,
                &rule.meta,
                Decision::ClearWithActions,
                format!("{lab} {v} is {bound}; confirm it on the day of the procedure"),
            ),
            Some(v) => finding(
                pack,
                &rule.meta,
                Decision::ClearWithActions,
                format!(
                    "{lab} {v} is outside the limit ({bound}); it must be {bound} on the day of the procedure"
                ),
            ),
            None => finding(
                pack,
                &rule.meta,
                Decision::ClearWithActions,
                format!("{lab} must be {bound} on the day of the procedure"),
            ),
        };
        f.action = action(
            ActionKind::LabCheck,
            format!("Check {lab} before the procedure: must be {bound}"),
        );
        findings.push(f);
    }

    if let Some(severity) = facts.contrast_allergy {
        findings.push(contrast_finding(pack, facts, severity, tz)?);
    }

    for allergy in &facts.other_allergies {
        let agent = allergy.trim().to_lowercase();
        if pack.policy.review_allergy_agents.contains(&agent) {
            let mut f = finding(
                pack,
                &pack.policy.agent_allergy,
                Decision::Review,
                format!(
                    "Allergy to {agent}, one of the injected agents: a radiologist chooses an alternative"
                ),
            );
            f.action = action(
                ActionKind::RadiologistReview,
                format!("Choose an alternative to {agent}"),
            );
            findings.push(f);
        } else {
            findings.push(finding(
                pack,
                &pack.policy.agent_allergy,
                Decision::Clear,
                format!("Allergy to {agent} noted; not one of the injected agents"),
            ));
        }
    }

    if let Some(d) = facts.diabetes {
        let mut f = finding(
            pack,
            &pack.policy.diabetes,
            Decision::Clear,
            "Diabetes: the steroid can raise blood sugar for 1-2 days".to_owned(),
        );
        f.patient_advice = Some(if d.insulin {
            "The steroid can raise your blood sugar for a day or two. Check it more often for several days and adjust your insulin as your diabetes team has taught you.".to_owned()
        } else {
            "The steroid can raise your blood sugar for a day or two. Check it more often for several days.".to_owned()
        });
        findings.push(f);
    }

    if let Some(inf) = facts.infection.filter(|i| i.active) {
        match inf.site {
            InfectionSite::Systemic | InfectionSite::InjectionSite => {
                let mut f = finding(
                    pack,
                    &pack.policy.active_infection,
                    Decision::Defer,
                    format!(
                        "Active infection ({}): do not proceed until it has resolved",
                        inf.site.as_str().replace('_', " ")
                    ),
                );
                f.until_resolved = true;
                findings.push(f);
            }
            InfectionSite::Other => {
                let mut f = finding(
                    pack,
                    &pack.policy.active_infection,
                    Decision::Review,
                    "Active infection elsewhere: a radiologist decides whether to proceed"
                        .to_owned(),
                );
                f.action = action(
                    ActionKind::RadiologistReview,
                    "Decide whether to proceed with an active infection elsewhere".to_owned(),
                );
                findings.push(f);
            }
        }
    }

    let window = pack.policy.antibiotic_window_days;
    for ab in &facts.antibiotics {
        match (ab.reason, ab.last_dose) {
            (AntibioticReason::ActiveInfection, None) => {
                let mut f = finding(
                    pack,
                    &pack.policy.antibiotic_window,
                    Decision::Defer,
                    format!(
                        "Still taking antibiotics for an infection: reschedule to at least {} after the last dose",
                        plural(window, "day")
                    ),
                );
                f.until_resolved = true;
                f.patient_advice = Some(format!(
                    "Call us to reschedule: the procedure must be at least {} after your last antibiotic dose.",
                    plural(window, "day")
                ));
                findings.push(f);
            }
            (AntibioticReason::ActiveInfection, Some(last)) => {
                let earliest = add_days(last, window)?;
                let target = facts.proposed_date.unwrap_or(today);
                if target < earliest {
                    let mut f = finding(
                        pack,
                        &pack.policy.antibiotic_window,
                        Decision::Defer,
                        format!(
                            "Antibiotics for an infection, last dose {last}: the procedure must be on or after {earliest} ({} later)",
                            plural(window, "day")
                        ),
                    );
                    f.earliest_date = Some(earliest);
                    f.patient_advice = Some(format!(
                        "Your procedure must be on or after {earliest}, at least {} after your last antibiotic dose.",
                        plural(window, "day")
                    ));
                    findings.push(f);
                } else {
                    let mut f = finding(
                        pack,
                        &pack.policy.antibiotic_window,
                        Decision::Clear,
                        format!(
                            "Antibiotics for an infection ended {last}; the {}-day window has passed by {target}",
                            window
                        ),
                    );
                    f.earliest_date = Some(earliest);
                    findings.push(f);
                }
            }
            (AntibioticReason::LongTerm, _) => {
                let mut f = finding(
                    pack,
                    &pack.policy.long_term_antibiotics,
                    Decision::ClearWithActions,
                    "Long-term antibiotics without an active infection: staff review, no deferral"
                        .to_owned(),
                );
                f.action = action(
                    ActionKind::StaffReview,
                    "Review the long-term antibiotics with the radiologist's team".to_owned(),
                );
                findings.push(f);
            }
        }
    }

    if facts.pregnancy_possible {
        let mut f = finding(pack, &pack.policy.pregnancy, Decision::Review, "Possible pregnancy: fluoroscopy exposes the pelvis; a radiologist decides (pregnancy test or another plan)".to_owned());
        f.action = action(
            ActionKind::RadiologistReview,
            "Decide on a pregnancy test or another plan".to_owned(),
        );
        findings.push(f);
    }

    let mut monitoring = None;
    if facts.escort_available == Some(false) {
        let minutes = pack.policy.monitoring_minutes;
        let mut f = finding(
            pack,
            &pack.policy.monitoring,
            Decision::Clear,
            format!(
                "No one to drive the patient home: {minutes} minutes of monitoring after the procedure (recovery chair)"
            ),
        );
        f.patient_advice = Some(format!(
            "If no one can drive you home, we will watch you for {minutes} minutes after the procedure before you leave."
        ));
        monitoring = Some(minutes);
        findings.push(f);
    }

    if facts.symptoms == Some(Symptoms::Mild) {
        let mut f = finding(
            pack,
            &pack.policy.mild_symptoms,
            Decision::Clear,
            "Mild symptoms: the patient should avoid pain medication before the appointment"
                .to_owned(),
        );
        f.patient_advice = Some("Please do not take pain medicine before your appointment, so we can tell how well the numbing medicine works.".to_owned());
        findings.push(f);
    }

    // Combine: the latest date wins; "until resolved" has no date.
    let until_resolved = findings.iter().any(|f| f.until_resolved);
    let latest = findings.iter().filter_map(|f| f.earliest_date).max();
    let earliest_safe_date = (!until_resolved).then(|| latest.map_or(today, |d| d.max(today)));
    let earliest_safe_at = match earliest_safe_date {
        None => None,
        Some(date) => {
            let hour_based = findings
                .iter()
                .filter_map(|f| f.hold.as_ref().and_then(|h| h.earliest_at))
                .filter(|t| t.to_zoned_datetime(tz.clone()).date() == date)
                .max();
            Some(match hour_based {
                Some(t) => t.to_zoned_datetime(tz.clone()),
                None => date
                    .to_zoned_datetime(tz.clone())
                    .map_err(|e| EngineError::DateRange(e.to_string()))?,
            })
        }
    };

    if let Some(proposed) = facts.proposed_date {
        let too_early = match earliest_safe_date {
            Some(e) => proposed < e,
            None => true,
        };
        if too_early {
            // Cite the rule that set the date.
            let driver = findings
                .iter()
                .filter(|f| f.until_resolved || f.earliest_date.is_some_and(|d| d > proposed))
                .max_by_key(|f| (f.until_resolved, f.earliest_date))
                .cloned();
            if let Some(driver) = driver {
                let when = earliest_safe_date.map_or_else(
                    || "until the problem has resolved".to_owned(),
                    |e| format!("before {e}"),
                );
                findings.push(Finding {
                    level: Decision::Defer,
                    message: format!(
                        "Not on {proposed}: not safe {when} (rule {})",
                        driver.rule_id
                    ),
                    action: None,
                    patient_advice: None,
                    hold: None,
                    premedication: Vec::new(),
                    ..driver
                });
            }
        }
    }

    findings.sort_by_key(|f| std::cmp::Reverse(f.level));
    let decision = findings
        .iter()
        .map(|f| f.level)
        .max()
        .unwrap_or(Decision::Clear);
    Ok(ScreeningDecision {
        decision,
        earliest_safe_date,
        earliest_safe_at,
        findings,
        pack_name: pack.name.clone(),
        pack_version: pack.version.clone(),
        evaluated_for: facts.proposed_date,
        monitoring_minutes: monitoring,
    })
}

fn medication_finding(
    pack: &RulePack,
    facts: &ScreeningFacts,
    med: &Medication,
    class: BleedingRisk,
    tz: &TimeZone,
) -> Result<Finding, EngineError> {
    let name = med.drug.trim().to_lowercase();
    let entries: Vec<&DrugRule> = pack
        .drugs
        .iter()
        .filter(|d| d.drug == name || d.aliases.contains(&name))
        .collect();
    let unknown = |message: String| {
        let mut f = finding(
            pack,
            &pack.policy.unknown_drug,
            Decision::Review,
            message.clone(),
        );
        f.action = action(ActionKind::RadiologistReview, message);
        f
    };
    if entries.is_empty() {
        return Ok(unknown(format!(
            "Medication {name:?} is not in the rule pack: a radiologist must decide whether it affects bleeding"
        )));
    }
    let key = med
        .regimen
        .clone()
        .or_else(|| med.prevention.map(|p| p.as_str().to_owned()))
        .map(|k| k.trim().to_lowercase());
    let rule = if entries.len() == 1 {
        entries[0]
    } else {
        let options: Vec<&str> = entries
            .iter()
            .filter_map(|e| e.regimen.as_deref())
            .collect();
        match key
            .as_deref()
            .and_then(|k| entries.iter().find(|e| e.regimen.as_deref() == Some(k)))
        {
            Some(rule) => rule,
            None => {
                return Ok(unknown(format!(
                    "{name}: say which regimen ({}) so the right hold applies",
                    options.join(" or ")
                )));
            }
        }
    };
    let drug = match &rule.regimen {
        Some(r) => format!("{} ({r})", rule.drug),
        None => rule.drug.clone(),
    };
    let mut hold = rule.hold.get(class);
    let mut renal_note = None;
    if let (Some((days, threshold)), Hold::Days(base)) = (rule.renal_hold, hold) {
        match facts.labs.creatinine_clearance {
            Some(crcl) if crcl >= threshold => {}
            Some(crcl) => {
                hold = Hold::Days(days.max(base));
                renal_note = Some(format!(
                    "creatinine clearance {crcl} < {threshold}: the renal hold applies"
                ));
            }
            None => {
                hold = Hold::Days(days.max(base));
                renal_note = Some(format!(
                    "creatinine clearance not known: the longer renal hold applies (below {threshold} mL/min)"
                ));
            }
        }
    }
    let restart_hours = rule.restart_hours.get(class);
    let restart = restart_hours.map(|h| {
        format!(
            "{} after the procedure, unless told otherwise",
            plural(h, "hour")
        )
    });
    let cls = class_name(class);
    let last_dose = med.last_dose.unwrap_or(facts.today);
    let still_taking = if med.last_dose.is_none() {
        " (still taking it: counted from today)"
    } else {
        ""
    };
    let mut f = match hold {
        Hold::None => finding(
            pack,
            &rule.meta,
            Decision::Clear,
            format!("{drug}: no hold before a procedure of {cls} bleeding risk"),
        ),
        Hold::Shared => {
            let mut f = finding(
                pack,
                &rule.meta,
                Decision::Review,
                format!(
                    "{drug} before a procedure of {cls} bleeding risk: whether to hold it is a shared decision with the prescribing physician"
                ),
            );
            f.action = action(
                ActionKind::PrescriberClearance,
                format!("Shared decision with the prescriber on holding {drug}"),
            );
            f.patient_advice = Some(format!(
                "Keep taking {} until your prescribing doctor and our team tell you otherwise.",
                rule.drug
            ));
            f
        }
        Hold::Review => {
            let mut f = finding(
                pack,
                &rule.meta,
                Decision::Review,
                format!("{drug}: a physician must review before any procedure"),
            );
            f.action = action(
                ActionKind::RadiologistReview,
                format!("Physician review of {drug}"),
            );
            f
        }
        Hold::Days(n) => {
            let earliest = add_days(last_dose, n)?;
            let mut f = finding(
                pack,
                &rule.meta,
                Decision::ClearWithActions,
                format!(
                    "{drug}: last dose at least {} before a procedure of {cls} bleeding risk; last dose {last_dose}{still_taking}, so not before {earliest}",
                    plural(n, "day")
                ),
            );
            f.earliest_date = Some(earliest);
            f.hold = Some(HoldPlan {
                drug: rule.drug.clone(),
                hold: plural(n, "day"),
                last_dose,
                earliest_date: earliest,
                earliest_at: None,
                restart: restart.clone(),
                restart_hours,
            });
            f
        }
        Hold::Hours(h) => {
            let time = med
                .last_dose_time
                .unwrap_or_else(|| Time::constant(23, 59, 0, 0));
            let last_at = last_dose
                .to_datetime(time)
                .to_zoned_datetime(tz.clone())
                .map_err(|e| EngineError::DateRange(e.to_string()))?
                .timestamp();
            let earliest_at: Timestamp = last_at
                .checked_add(SignedDuration::from_hours(i64::from(h)))
                .map_err(|e| EngineError::DateRange(e.to_string()))?;
            let earliest = earliest_at.to_zoned_datetime(tz.clone()).date();
            let assumed = if med.last_dose_time.is_none() {
                " (no dose time given: 23:59 assumed)"
            } else {
                ""
            };
            let mut f = finding(
                pack,
                &rule.meta,
                Decision::ClearWithActions,
                format!(
                    "{drug}: last dose at least {} before a procedure of {cls} bleeding risk; last dose {last_dose} {}{assumed}{still_taking}",
                    plural(h, "hour"),
                    time.strftime("%H:%M")
                ),
            );
            f.earliest_date = Some(earliest);
            f.hold = Some(HoldPlan {
                drug: rule.drug.clone(),
                hold: plural(h, "hour"),
                last_dose,
                earliest_date: earliest,
                earliest_at: Some(earliest_at),
                restart: restart.clone(),
                restart_hours,
            });
            f
        }
    };
    if matches!(hold, Hold::Days(_) | Hold::Hours(_)) {
        let plan = f.hold.as_ref().map(|h| h.earliest_date);
        f.action = action(
            ActionKind::PrescriberClearance,
            format!(
                "Ask the prescriber whether {} may be held ({}){}",
                rule.drug,
                f.hold.as_ref().map(|h| h.hold.clone()).unwrap_or_default(),
                plan.map(|d| format!(
                    "; with the last dose on {last_dose}, the earliest procedure date is {d}"
                ))
                .unwrap_or_default()
            ),
        );
        f.patient_advice = Some(format!(
            "You take {}, a blood thinner. Ask the doctor who prescribes it whether it is safe to stop before your procedure. Do not stop it on your own.",
            rule.drug
        ));
    }
    if let Some(note) = renal_note {
        f.message = format!("{} ({note})", f.message);
    }
    Ok(f)
}

fn contrast_finding(
    pack: &RulePack,
    facts: &ScreeningFacts,
    severity: ReactionSeverity,
    tz: &TimeZone,
) -> Result<Finding, EngineError> {
    let c = &pack.contrast;
    if severity == ReactionSeverity::Severe {
        let mut f = finding(
            pack,
            &c.meta,
            Decision::Review,
            "Severe prior reaction to iodinated contrast: the radiologist decides (no-contrast plan, or premedication); gadolinium is not a casual substitute near the spine".to_owned(),
        );
        f.action = action(
            ActionKind::RadiologistReview,
            "Decide the contrast plan after a severe prior reaction".to_owned(),
        );
        return Ok(f);
    }
    let regimen = c.regimens.iter().find(|r| r.meta.id == c.default_regimen);
    let Some(regimen) = regimen else {
        // The loader guarantees the default exists; be safe anyway.
        let mut f = finding(
            pack,
            &c.meta,
            Decision::Review,
            "Prior contrast reaction: no premedication regimen in the pack".to_owned(),
        );
        f.action = action(
            ActionKind::RadiologistReview,
            "Decide the contrast plan".to_owned(),
        );
        return Ok(f);
    };
    let start = match (facts.proposed_date, facts.appointment_time) {
        (Some(d), Some(t)) => Some(
            d.to_datetime(t)
                .to_zoned_datetime(tz.clone())
                .map_err(|e| EngineError::DateRange(e.to_string()))?
                .timestamp(),
        ),
        _ => None,
    };
    let doses = regimen
        .steps
        .iter()
        .map(|s| {
            let at = match start {
                Some(t) => Some(
                    t.checked_sub(SignedDuration::from_hours(i64::from(s.hours_before)))
                        .map_err(|e| EngineError::DateRange(e.to_string()))?,
                ),
                None => None,
            };
            Ok(PremedDose {
                what: s.what.clone(),
                hours_before: s.hours_before,
                at,
            })
        })
        .collect::<Result<Vec<_>, EngineError>>()?;
    let mut f = finding(
        pack,
        &c.meta,
        Decision::ClearWithActions,
        format!(
            "Prior {} reaction to iodinated contrast: premedication ({}), timed to the appointment; or a no-contrast plan if the radiologist prefers",
            severity.as_str(),
            regimen.label
        ),
    );
    f.action = action(
        ActionKind::Premedication,
        format!("Confirm the {} and prescribe it", regimen.label),
    );
    f.premedication = doses;
    f.verified = f.verified && regimen.meta.verified;
    f.patient_advice = Some("You had a reaction to contrast dye before. Take the medicines we prescribe at the exact times on your schedule.".to_owned());
    Ok(f)
}
