//! The screening engine on the default pack: every drug x class cell, the
//! combination rules, and (property) a decision never gets less strict when a
//! finding is added.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_domain::BleedingRisk;
use irflow_domain::screening::*;
use irflow_rules::default_pack;
use jiff::civil::{Date, date, time};
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn tz() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn today() -> Date {
    date(2026, 11, 26)
}

/// The default pack plus a high-risk procedure (the default catalogue has none), so
/// every column of the table is exercised.
fn pack() -> RulePack {
    let mut p = default_pack().unwrap();
    p.procedures.push(ProcedureRisk {
        meta: RuleMeta {
            id: "test-high".into(),
            source: "ASRA-2018".into(),
            verified: true,
            note: None,
        },
        code: "HIGH1".into(),
        class: BleedingRisk::High,
    });
    p
}

fn code_for(class: BleedingRisk) -> &'static str {
    match class {
        BleedingRisk::Low => "64493",
        BleedingRisk::Intermediate => "64483",
        BleedingRisk::High => "HIGH1",
    }
}

fn facts(code: &str) -> ScreeningFacts {
    ScreeningFacts::new(code, today())
}

fn med(drug: &str, regimen: Option<&str>, last: Date) -> Medication {
    Medication {
        drug: drug.into(),
        last_dose: Some(last),
        regimen: regimen.map(str::to_owned),
        ..Medication::default()
    }
}

#[test]
fn every_drug_and_class_cell_gives_the_tabled_decision_and_date() {
    let pack = pack();
    let last = date(2026, 11, 25);
    for rule in &pack.drugs {
        for class in BleedingRisk::ALL {
            let mut f = facts(code_for(class));
            f.labs.creatinine_clearance = Some(90.0);
            f.medications
                .push(med(&rule.drug, rule.regimen.as_deref(), last));
            let d = evaluate(&pack, &f, &tz()).unwrap();
            let cell = format!("{} / {}", rule.meta.id, class.as_str());
            let drug_finding = d
                .findings
                .iter()
                .find(|x| x.rule_id == rule.meta.id)
                .unwrap_or_else(|| panic!("{cell}: finding"));
            assert_eq!(
                drug_finding.verified, rule.meta.verified,
                "{cell}: verified flag carried"
            );
            match rule.hold.get(class) {
                Hold::None => {
                    assert_eq!(drug_finding.level, Decision::Clear, "{cell}");
                    assert_eq!(d.earliest_safe_date, Some(today()), "{cell}");
                }
                Hold::Shared | Hold::Review => {
                    assert_eq!(d.decision, Decision::Review, "{cell}");
                    assert!(
                        drug_finding.hold.is_none(),
                        "{cell}: never an automatic instruction to stop"
                    );
                }
                Hold::Days(n) => {
                    let expected = last + jiff::Span::new().days(i64::from(n));
                    assert_eq!(drug_finding.level, Decision::ClearWithActions, "{cell}");
                    assert_eq!(drug_finding.earliest_date, Some(expected), "{cell}");
                    assert_eq!(d.earliest_safe_date, Some(expected.max(today())), "{cell}");
                    let plan = drug_finding.hold.as_ref().unwrap();
                    assert_eq!(
                        plan.restart_hours,
                        rule.restart_hours.get(class),
                        "{cell}: restart"
                    );
                    assert_eq!(
                        drug_finding.action.as_ref().unwrap().kind,
                        ActionKind::PrescriberClearance,
                        "{cell}"
                    );
                }
                Hold::Hours(h) => {
                    // No dose time given: 23:59 on the day of the last dose.
                    let expected = last
                        .to_datetime(time(23, 59, 0, 0))
                        .to_zoned_datetime(tz())
                        .unwrap()
                        .timestamp()
                        .checked_add(jiff::SignedDuration::from_hours(i64::from(h)))
                        .unwrap();
                    let plan = drug_finding.hold.as_ref().unwrap();
                    assert_eq!(plan.earliest_at, Some(expected), "{cell}");
                    assert_eq!(
                        d.earliest_safe_at.as_ref().unwrap().timestamp(),
                        expected.max(today().to_zoned_datetime(tz()).unwrap().timestamp()),
                        "{cell}"
                    );
                }
            }
        }
    }
}

#[test]
fn hour_holds_use_the_dose_time_when_given() {
    let pack = pack();
    let mut f = facts("64483");
    f.medications.push(Medication {
        drug: "enoxaparin".into(),
        regimen: Some("prophylactic".into()),
        last_dose: Some(today()),
        last_dose_time: Some(time(8, 0, 0, 0)),
        ..Medication::default()
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::ClearWithActions);
    assert_eq!(d.earliest_safe_date, Some(today()));
    assert_eq!(
        d.earliest_safe_at
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M%:z")
            .to_string(),
        "2026-11-26T20:00-05:00"
    );
}

#[test]
fn days_are_counted_from_the_last_dose_and_today_is_the_floor() {
    let pack = pack();
    let mut f = facts("64483");
    f.medications.push(med("apixaban", None, date(2026, 11, 1)));
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(
        d.earliest_safe_date,
        Some(today()),
        "stopped long ago: today"
    );
    assert!(
        d.uses_unverified_rules(),
        "apixaban is UNVERIFIED in the reference"
    );
    let mut f = facts("64483");
    f.medications.push(Medication {
        drug: "Eliquis".into(),
        ..Medication::default()
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(
        d.earliest_safe_date,
        Some(date(2026, 11, 29)),
        "still taking: counted from today; brand names are aliases"
    );
}

#[test]
fn antibiotics_infection_and_the_window() {
    let pack = pack();
    let mut f = facts("64483");
    f.antibiotics.push(Antibiotic {
        reason: AntibioticReason::ActiveInfection,
        last_dose: Some(date(2026, 11, 20)),
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::Defer);
    assert_eq!(
        d.earliest_safe_date,
        Some(date(2026, 11, 30)),
        "last dose + 10 days"
    );
    // A proposed date far enough away is fine.
    f.proposed_date = Some(date(2026, 12, 3));
    assert_eq!(
        evaluate(&pack, &f, &tz()).unwrap().decision,
        Decision::Clear
    );
    // Still taking: defer without a date.
    let mut f = facts("64483");
    f.antibiotics.push(Antibiotic {
        reason: AntibioticReason::ActiveInfection,
        last_dose: None,
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!((d.decision, d.earliest_safe_date), (Decision::Defer, None));
    // Long-term antibiotics: staff review, no deferral.
    let mut f = facts("64483");
    f.antibiotics.push(Antibiotic {
        reason: AntibioticReason::LongTerm,
        last_dose: None,
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::ClearWithActions);
    assert_eq!(
        d.findings[0].action.as_ref().unwrap().kind,
        ActionKind::StaffReview
    );
    // Active infection at the site: defer until resolved.
    let mut f = facts("27096");
    f.infection = Some(Infection {
        active: true,
        site: InfectionSite::InjectionSite,
    });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!((d.decision, d.earliest_safe_date), (Decision::Defer, None));
}

#[test]
fn findings_combine_latest_date_and_strictest_decision() {
    let pack = pack();
    let mut f = facts("64483");
    f.medications
        .push(med("clopidogrel", None, date(2026, 11, 25)));
    f.medications
        .push(med("apixaban", None, date(2026, 11, 25)));
    f.diabetes = Some(Diabetes { insulin: true });
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::ClearWithActions);
    assert_eq!(
        d.earliest_safe_date,
        Some(date(2026, 12, 2)),
        "clopidogrel's 7 days beat apixaban's 3"
    );
    assert!(d.findings.iter().any(|x| {
        x.patient_advice
            .as_deref()
            .is_some_and(|a| a.contains("blood sugar"))
    }));
    f.thrombotic_risk.push("mechanical_mitral_valve".into());
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(
        d.decision,
        Decision::Review,
        "high thrombotic risk routes to a shared decision"
    );
    assert_eq!(d.findings[0].level, Decision::Review, "strictest first");
}

#[test]
fn unknown_drugs_never_clear_and_ambiguous_regimens_ask() {
    let pack = pack();
    let mut f = facts("27096");
    f.medications.push(med("snake oil", None, today()));
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::Review);
    assert!(
        d.findings[0].message.contains("snake oil"),
        "names the drug"
    );
    let mut f = facts("64483");
    f.medications.push(med("heparin", None, today()));
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::Review);
    assert!(
        d.findings[0].message.contains("iv or sc"),
        "{}",
        d.findings[0].message
    );
    let mut f = facts("64483");
    f.medications.push(Medication {
        drug: "aspirin".into(),
        prevention: Some(Prevention::Primary),
        ..Medication::default()
    });
    assert_eq!(
        evaluate(&pack, &f, &tz()).unwrap().decision,
        Decision::Review,
        "aspirin primary before intermediate: shared"
    );
    let mut f = facts("99999");
    assert!(matches!(
        evaluate(&pack, &f, &tz()),
        Err(EngineError::UnknownProcedure(_))
    ));
    f.procedure = "64483".into();
    f.thrombotic_risk.push("broken_heart".into());
    assert!(matches!(
        evaluate(&pack, &f, &tz()),
        Err(EngineError::UnknownCondition { .. })
    ));
}

#[test]
fn contrast_allergy_gives_a_timed_premedication_plan_or_review() {
    let pack = pack();
    let mut f = facts("64483");
    f.contrast_allergy = Some(ReactionSeverity::Moderate);
    f.proposed_date = Some(date(2026, 12, 3));
    f.appointment_time = Some(time(10, 0, 0, 0));
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::ClearWithActions);
    let plan = &d.findings[0].premedication;
    let times: Vec<String> = plan
        .iter()
        .map(|p| {
            p.at.unwrap()
                .to_zoned_datetime(tz())
                .strftime("%m-%d %H:%M")
                .to_string()
        })
        .collect();
    assert_eq!(
        times,
        ["12-02 21:00", "12-03 03:00", "12-03 09:00", "12-03 09:00"]
    );
    f.contrast_allergy = Some(ReactionSeverity::Severe);
    assert_eq!(
        evaluate(&pack, &f, &tz()).unwrap().decision,
        Decision::Review
    );
}

#[test]
fn a_proposed_date_before_the_earliest_safe_date_is_deferred() {
    let pack = pack();
    let mut f = facts("64483");
    f.medications
        .push(med("warfarin", None, date(2026, 11, 26)));
    f.proposed_date = Some(date(2026, 11, 30));
    let d = evaluate(&pack, &f, &tz()).unwrap();
    assert_eq!(d.decision, Decision::Defer);
    assert_eq!(d.earliest_safe_date, Some(date(2026, 12, 1)));
    assert!(
        d.findings[0].message.contains("Not on 2026-11-30")
            && d.findings[0].message.contains("warfarin")
    );
    f.proposed_date = Some(date(2026, 12, 1));
    assert_eq!(
        evaluate(&pack, &f, &tz()).unwrap().decision,
        Decision::ClearWithActions
    );
}

#[test]
fn nothing_found_is_clear_today() {
    let d = evaluate(&pack(), &facts("64493"), &tz()).unwrap();
    assert_eq!(
        (d.decision, d.earliest_safe_date),
        (Decision::Clear, Some(today()))
    );
    assert_eq!(d.pack_name, "irflow default (ASRA-2018)");
    assert!(d.findings.is_empty());
}

// ------------------------------------------------------------------ monotonicity

#[derive(Debug, Clone)]
enum Extra {
    Drug(usize, i8),
    Condition(usize),
    Contrast(u8),
    Allergy(bool),
    Infection(u8),
    Antibiotic(bool, i8),
    Pregnancy,
    Diabetes,
    NoEscort,
    Mild,
}

fn extra() -> impl Strategy<Value = Extra> {
    prop_oneof![
        (0usize..40, -20i8..3).prop_map(|(i, d)| Extra::Drug(i, d)),
        (0usize..6).prop_map(Extra::Condition),
        (0u8..3).prop_map(Extra::Contrast),
        any::<bool>().prop_map(Extra::Allergy),
        (0u8..3).prop_map(Extra::Infection),
        (any::<bool>(), -20i8..3).prop_map(|(a, d)| Extra::Antibiotic(a, d)),
        Just(Extra::Pregnancy),
        Just(Extra::Diabetes),
        Just(Extra::NoEscort),
        Just(Extra::Mild),
    ]
}

fn apply(pack: &RulePack, f: &mut ScreeningFacts, e: &Extra) {
    let day = |d: i8| today() + jiff::Span::new().days(i64::from(d));
    match e {
        Extra::Drug(i, d) => {
            let rule = &pack.drugs[i % pack.drugs.len()];
            f.medications
                .push(med(&rule.drug, rule.regimen.as_deref(), day(*d)));
        }
        Extra::Condition(i) => f.thrombotic_risk.push(
            pack.thrombotic_risk[i % pack.thrombotic_risk.len()]
                .meta
                .id
                .clone(),
        ),
        Extra::Contrast(s) => {
            f.contrast_allergy = Some(
                [
                    ReactionSeverity::Mild,
                    ReactionSeverity::Moderate,
                    ReactionSeverity::Severe,
                ][usize::from(*s)],
            )
            .max(f.contrast_allergy);
        }
        Extra::Allergy(review) => f.other_allergies.push(if *review {
            "lidocaine".into()
        } else {
            "penicillin".into()
        }),
        Extra::Infection(s) => {
            if f.infection.is_none() {
                let site = [
                    InfectionSite::Systemic,
                    InfectionSite::InjectionSite,
                    InfectionSite::Other,
                ][usize::from(*s)];
                f.infection = Some(Infection { active: true, site });
            }
        }
        Extra::Antibiotic(active, d) => f.antibiotics.push(Antibiotic {
            reason: if *active {
                AntibioticReason::ActiveInfection
            } else {
                AntibioticReason::LongTerm
            },
            last_dose: Some(day(*d)),
        }),
        Extra::Pregnancy => f.pregnancy_possible = true,
        Extra::Diabetes => f.diabetes = Some(Diabetes { insulin: false }),
        Extra::NoEscort => f.escort_available = Some(false),
        Extra::Mild => f.symptoms = Some(Symptoms::Mild),
    }
}

/// "Until resolved" is later than any date.
fn strictness(d: &ScreeningDecision) -> (Decision, Option<Date>, bool) {
    (
        d.decision,
        d.earliest_safe_date,
        d.earliest_safe_date.is_none(),
    )
}

proptest! {
    #[test]
    fn adding_a_finding_never_makes_the_decision_less_strict(
        base in proptest::collection::vec(extra(), 0..6),
        added in extra(),
        class in 0usize..3,
        proposed in proptest::option::of(0i8..20),
    ) {
        let pack = pack();
        let mut f = facts(code_for(BleedingRisk::ALL[class]));
        f.labs.creatinine_clearance = Some(80.0);
        f.proposed_date = proposed.map(|d| today() + jiff::Span::new().days(i64::from(d)));
        for e in &base { apply(&pack, &mut f, e); }
        let before = evaluate(&pack, &f, &tz()).unwrap();
        apply(&pack, &mut f, &added);
        let after = evaluate(&pack, &f, &tz()).unwrap();
        let (d0, e0, r0) = strictness(&before);
        let (d1, e1, r1) = strictness(&after);
        prop_assert!(d1 >= d0, "decision {:?} -> {:?} after {:?}", d0, d1, added);
        prop_assert!(r1 || !r0, "a deferral until resolved stays");
        if !r1 && !r0 {
            prop_assert!(e1 >= e0, "earliest date {:?} -> {:?} after {:?}", e0, e1, added);
        }
        prop_assert!(after.earliest_safe_date.is_none_or(|d| d >= today()));
    }
}
