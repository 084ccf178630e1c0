//! The procedure record's part of the default pack: the FDA-2014 transforaminal
//! suggestion with its source, steroids with particulate or not, and refusals of a
//! broken `procedure_record.toml`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_rules::{DEFAULT_FILES, default_pack, from_texts};

#[test]
fn the_default_pack_suggests_dexamethasone_for_transforaminal_injections() {
    let pack = default_pack().unwrap();
    let r = &pack.procedure_record;
    let s = r.suggestion_for("64483").expect("lumbar transforaminal");
    assert!(
        r.suggestion_for("64479").is_some(),
        "cervical transforaminal"
    );
    assert!(r.suggestion_for("62323").is_none(), "interlaminar");
    assert!(r.suggestion_for("27096").is_none(), "sacroiliac");
    assert_eq!(s.agent, "dexamethasone");
    assert_eq!(s.meta.source, "FDA-2014");
    assert!(s.meta.verified);
    let citation = pack.cite(&s.meta);
    assert!(
        citation.contains("23 April 2014") && citation.contains("rare but serious neurologic"),
        "{citation}"
    );
    let particulate = |agent: &str| {
        r.steroids
            .iter()
            .find(|a| a.agent == agent)
            .and_then(|a| a.particulate)
    };
    assert_eq!(particulate("dexamethasone"), Some(false));
    for p in [
        "methylprednisolone acetate",
        "triamcinolone",
        "betamethasone",
    ] {
        assert_eq!(particulate(p), Some(true), "{p}");
    }
    // The typing limits are not in the reference: they ship unverified.
    assert!(!r.limits.meta.verified);
    assert!(r.local_anaesthetics.iter().all(|a| !a.meta.verified));
}

fn replaced(from: &str, to: &str) -> Vec<(&'static str, String)> {
    DEFAULT_FILES
        .iter()
        .map(|(n, t)| {
            let text = if *n == "procedure_record.toml" {
                assert!(t.contains(from), "test setup: {from:?}");
                t.replacen(from, to, 1)
            } else {
                (*t).to_owned()
            };
            (*n, text)
        })
        .collect()
}

#[test]
fn a_broken_record_file_is_refused_with_the_rule_at_fault() {
    let cases = [
        (
            replaced("suggest = \"dexamethasone\"", "suggest = \"triamcinolone\""),
            "must be a non-particulate steroid",
        ),
        (
            replaced(
                "agent = \"triamcinolone\"\nparticulate = true\n",
                "agent = \"triamcinolone\"\n",
            ),
            "say whether it is particulate",
        ),
        (
            replaced("max_mg = 300", "max_mg = 0"),
            "must be more than 0",
        ),
        (
            replaced("agent = \"bupivacaine\"", "agent = \"lidocaine\""),
            "lidocaine is listed twice",
        ),
        (
            replaced("source = \"FDA-2014\"", "source = \"FDA-2041\""),
            "source \"FDA-2041\" is not in pack.toml",
        ),
        (replaced("max_ml = 20", "max_mg = 20"), "give max_ml"),
    ];
    for (files, needle) in cases {
        let borrowed: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
        let e = from_texts(&borrowed).expect_err(needle);
        assert_eq!(e.file, "procedure_record.toml", "{e}");
        assert!(e.to_string().contains(needle), "{needle:?} in {e}");
    }
}
