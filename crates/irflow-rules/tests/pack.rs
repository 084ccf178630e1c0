//! The default pack reproduces CLINICAL-RULES.md exactly, and bad packs are refused
//! with the file and the rule at fault.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_domain::BleedingRisk;
use irflow_domain::screening::Hold;
use irflow_rules::{DEFAULT_FILES, default_pack, from_texts, load_dir};

/// CLINICAL-RULES.md section 2, ASRA-2018, with ranges resolved to the longer value:
/// (rule id, high, intermediate, low, restart high, restart intermediate, restart low, verified).
/// (rule id, hold high, intermediate, low, restart high, intermediate, low, verified).
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
);

const TABLE: &[Row] = &[
    (
        "aspirin-primary",
        "6d",
        "shared",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "aspirin-secondary",
        "shared",
        "shared",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-diclofenac",
        "1d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-ketorolac",
        "1d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-ibuprofen",
        "1d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-etodolac",
        "2d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-indomethacin",
        "2d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-naproxen",
        "4d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-meloxicam",
        "4d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-nabumetone",
        "6d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-oxaprozin",
        "10d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "nsaid-piroxicam",
        "10d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "cilostazol",
        "2d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    (
        "dipyridamole",
        "2d",
        "none",
        "none",
        "24h",
        "24h",
        "24h",
        true,
    ),
    ("warfarin", "5d", "5d", "shared", "6h", "6h", "6h", true),
    (
        "acenocoumarol",
        "3d",
        "3d",
        "shared",
        "24h",
        "24h",
        "24h",
        true,
    ),
    ("heparin-iv", "6h", "6h", "6h", "2h", "2h", "2h", true),
    ("heparin-sc", "24h", "6h", "6h", "6h", "2h", "2h", true),
    (
        "enoxaparin-prophylactic",
        "12h",
        "12h",
        "12h",
        "24h",
        "24h",
        "4h",
        true,
    ),
    (
        "enoxaparin-therapeutic",
        "24h",
        "24h",
        "24h",
        "24h",
        "24h",
        "4h",
        true,
    ),
    ("dalteparin", "24h", "24h", "24h", "24h", "24h", "4h", true),
    (
        "fondaparinux",
        "4d",
        "4d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    (
        "dabigatran",
        "5d",
        "5d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    (
        "rivaroxaban",
        "3d",
        "3d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    ("apixaban", "3d", "3d", "shared", "24h", "24h", "24h", false),
    ("edoxaban", "3d", "3d", "shared", "24h", "24h", "24h", false),
    (
        "clopidogrel",
        "7d",
        "7d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    (
        "prasugrel",
        "10d",
        "10d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    (
        "ticagrelor",
        "5d",
        "5d",
        "shared",
        "24h",
        "24h",
        "24h",
        false,
    ),
    (
        "vorapaxar",
        "review",
        "review",
        "review",
        "none",
        "none",
        "none",
        false,
    ),
];

fn hold_of(raw: &str) -> Hold {
    match raw {
        "none" => Hold::None,
        "shared" => Hold::Shared,
        "review" => Hold::Review,
        d if d.ends_with('d') => Hold::Days(d.trim_end_matches('d').parse().unwrap()),
        h => Hold::Hours(h.trim_end_matches('h').parse().unwrap()),
    }
}

fn restart_of(raw: &str) -> Option<u32> {
    (raw != "none").then(|| raw.trim_end_matches('h').parse().unwrap())
}

#[test]
fn the_default_pack_reproduces_every_cell_of_the_reference_table() {
    let pack = default_pack().expect("the default pack loads");
    assert_eq!(pack.drugs.len(), TABLE.len(), "no drug missing, none extra");
    for (id, high, intermediate, low, r_high, r_int, r_low, verified) in TABLE {
        let d = pack
            .drugs
            .iter()
            .find(|d| d.meta.id == *id)
            .unwrap_or_else(|| panic!("{id} in the pack"));
        assert_eq!(d.hold.get(BleedingRisk::High), hold_of(high), "{id} high");
        assert_eq!(
            d.hold.get(BleedingRisk::Intermediate),
            hold_of(intermediate),
            "{id} intermediate"
        );
        assert_eq!(d.hold.get(BleedingRisk::Low), hold_of(low), "{id} low");
        assert_eq!(
            d.restart_hours.get(BleedingRisk::High),
            restart_of(r_high),
            "{id} restart high"
        );
        assert_eq!(
            d.restart_hours.get(BleedingRisk::Intermediate),
            restart_of(r_int),
            "{id} restart intermediate"
        );
        assert_eq!(
            d.restart_hours.get(BleedingRisk::Low),
            restart_of(r_low),
            "{id} restart low"
        );
        assert_eq!(
            d.meta.verified, *verified,
            "{id} verified flag follows UNVERIFIED in the reference"
        );
        assert_eq!(d.meta.source, "ASRA-2018");
    }
    let dabigatran = pack.drugs.iter().find(|d| d.drug == "dabigatran").unwrap();
    assert_eq!(dabigatran.renal_hold, Some((6, 50.0)));
    assert!(
        dabigatran
            .meta
            .note
            .as_deref()
            .unwrap()
            .contains("longer value")
    );
}

#[test]
fn procedure_classes_conditions_and_policy_match_the_reference() {
    let pack = default_pack().unwrap();
    let class = |code: &str| {
        pack.procedures
            .iter()
            .find(|p| p.code == code)
            .unwrap()
            .class
    };
    for code in ["62321", "62323", "64479", "64483", "64490"] {
        assert_eq!(class(code), BleedingRisk::Intermediate, "{code}");
    }
    for code in ["64493", "27096"] {
        assert_eq!(class(code), BleedingRisk::Low, "{code}");
    }
    assert_eq!(pack.thrombotic_risk.len(), 6);
    assert_eq!(pack.policy.antibiotic_window_days, 10);
    assert_eq!(
        pack.policy.monitoring_minutes, 60,
        "30-60: the longer value"
    );
    assert_eq!(
        pack.policy.no_heavy_lifting_days, 7,
        "5-7: the longer value"
    );
    let regimen = pack
        .contrast
        .regimens
        .iter()
        .find(|r| r.meta.id == pack.contrast.default_regimen)
        .unwrap();
    let hours: Vec<u32> = regimen.steps.iter().map(|s| s.hours_before).collect();
    assert_eq!(
        hours,
        [13, 7, 1, 1],
        "13-hour oral: 13, 7 and 1 h, diphenhydramine at 1 h"
    );
    // Every rule cites a source the pack defines.
    for meta in pack.all_rules() {
        assert!(
            pack.sources.contains_key(&meta.source),
            "{} cites {}",
            meta.id,
            meta.source
        );
    }
}

fn with_file(name: &str, text: &str) -> Vec<(&'static str, String)> {
    DEFAULT_FILES
        .iter()
        .map(|(n, t)| {
            (
                *n,
                if *n == name {
                    text.to_owned()
                } else {
                    (*t).to_owned()
                },
            )
        })
        .collect()
}

fn load(
    files: &[(&'static str, String)],
) -> Result<irflow_domain::screening::RulePack, irflow_rules::RulesError> {
    let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    from_texts(&borrowed)
}

fn replaced(name: &str, from: &str, to: &str) -> Vec<(&'static str, String)> {
    let original = DEFAULT_FILES.iter().find(|(n, _)| *n == name).unwrap().1;
    assert!(original.contains(from), "test setup: {from:?} in {name}");
    with_file(name, &original.replacen(from, to, 1))
}

#[test]
fn invalid_packs_are_refused_precisely() {
    type Case = (Vec<(&'static str, String)>, &'static str, &'static str);
    let cases: Vec<Case> = vec![
        (
            replaced(
                "drugs.toml",
                "hold = { high = \"3d\", intermediate = \"3d\"",
                "hold = { high = \"3x\", intermediate = \"3d\"",
            ),
            "drugs.toml",
            "hold.high: \"3x\"",
        ),
        (
            replaced(
                "drugs.toml",
                "source = \"ASRA-2018\"",
                "source = \"ASRA-2081\"",
            ),
            "drugs.toml",
            "source \"ASRA-2081\" is not in pack.toml",
        ),
        (
            replaced(
                "drugs.toml",
                "id = \"nsaid-ketorolac\"",
                "id = \"nsaid-diclofenac\"",
            ),
            "drugs.toml",
            "rule id nsaid-diclofenac is used twice",
        ),
        (
            replaced("drugs.toml", "regimen = \"sc\"", "regimen = \"iv\""),
            "drugs.toml",
            "heparin iv is defined twice",
        ),
        (
            replaced(
                "drugs.toml",
                "verified = false\nnote = \"platelet",
                "verified = false\nsevere = true\nnote = \"platelet",
            ),
            "drugs.toml",
            "unknown field `severe`",
        ),
        (
            replaced(
                "contrast.toml",
                "default_regimen = \"premed-13h-oral\"",
                "default_regimen = \"premed-99h\"",
            ),
            "contrast.toml",
            "default_regimen \"premed-99h\"",
        ),
        (
            replaced(
                "labs.toml",
                "when_taking = [\"warfarin\"]",
                "when_taking = [\"warfrin\"]",
            ),
            "labs.toml",
            "\"warfrin\"",
        ),
        (
            replaced("procedures.toml", "class = \"low\"", "class = \"medium\""),
            "procedures.toml",
            "unknown bleeding-risk class \"medium\"",
        ),
        (
            replaced("local.toml", "days = 10", "days = 0"),
            "local.toml",
            "antibiotic_window.days must be 1-60",
        ),
        (
            replaced("local.toml", "minutes = 60", "minutes = 90"),
            "local.toml",
            "monitoring.minutes must be 30-60",
        ),
        (
            replaced("pack.toml", "version = \"2026.11.2\"", "version = \"\""),
            "pack.toml",
            "name and version are required",
        ),
    ];
    for (files, file, needle) in cases {
        let e = load(&files).expect_err(needle);
        assert_eq!(e.file, file, "{e}");
        assert!(e.to_string().contains(needle), "{needle:?} in {e}");
    }
}

#[test]
fn packs_load_from_a_directory_and_a_missing_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in DEFAULT_FILES {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let pack = load_dir(dir.path()).expect("a copy of the default loads");
    assert_eq!(pack, default_pack().unwrap());
    std::fs::remove_file(dir.path().join("labs.toml")).unwrap();
    let e = load_dir(dir.path()).expect_err("labs.toml missing");
    assert!(
        e.file.ends_with("labs.toml") && e.message.contains("cannot be read"),
        "{e}"
    );
}
