//! FHIR R4 `Procedure`, `MedicationAdministration` and `DocumentReference` over HTTP,
//! from the demo's signed procedure records: reads, searches by patient, referrer
//! scoping, amendments as replacing documents, errors as OperationOutcomes — and
//! every resource validated by an external implementation of the FHIR structure
//! definitions (Python `fhir.resources`, R4B models, as `.ci/validate_fhir.py`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use base64::Engine;
use common::App;
use serde_json::{Value, json};

async fn fhir(app: &App, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.at(&format!("/fhir/r4{path}")));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert_eq!(
        r.headers()["content-type"],
        "application/fhir+json; charset=utf-8",
        "{path}"
    );
    (status, r.json().await.unwrap())
}

/// Validates resources with Python `fhir.resources` (installed by `.ci/run`); fails
/// the test when a resource is invalid or the validator is missing.
fn validate(resources: &[Value]) {
    const SCRIPT: &str = r#"
import json, sys
from fhir.resources.R4B import get_fhir_model_class
bad = 0
for r in json.load(sys.stdin):
    try:
        get_fhir_model_class(r["resourceType"]).model_validate(r)
    except Exception as e:
        bad += 1
        print(r.get("resourceType"), r.get("id"), str(e)[:1500])
# The validator must be able to say no.
try:
    get_fhir_model_class("Procedure").model_validate({"resourceType": "Procedure", "subject": {"reference": "Patient/1"}, "performedPeriod": "yesterday"})
    print("validator accepted an invalid Procedure"); bad += 1
except Exception:
    pass
sys.exit(1 if bad else 0)
"#;
    let mut child = Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (with fhir.resources: pip install fhir.resources==8.3.0)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(resources).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "fhir.resources refused:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn case(app: &App, token: &str, id: i64) -> Value {
    reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{id}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn timeline_at(case: &Value, action: &str) -> String {
    case["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["action"] == action)
        .unwrap_or_else(|| panic!("{action} on the timeline"))["at"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn entries(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn decoded(doc: &Value, content_type: &str) -> String {
    let a = doc["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["attachment"]["contentType"] == content_type)
        .unwrap_or_else(|| panic!("{content_type} in {doc}"));
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(a["attachment"]["data"].as_str().unwrap())
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_records_are_served_as_procedure_medications_and_reports() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let mut checked = Vec::new();

    let (status, cap) = fhir(&app, None, "/metadata").await;
    assert_eq!(status, 200);
    let served: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    for t in ["Procedure", "MedicationAdministration", "DocumentReference"] {
        assert!(served.contains(&t), "{t} in {served:?}");
    }
    checked.push(cap);

    // Erik Lindqvist: lumbar transforaminal, fluoroscopy, three agents, no complication.
    let lindqvist = app.case_of("Lindqvist").await;
    let c = case(&app, &nurse, lindqvist).await;
    let patient = c["patient"]["id"].as_i64().unwrap();
    let (status, p) = fhir(&app, Some(&nurse), &format!("/Procedure/{lindqvist}")).await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["resourceType"], "Procedure");
    assert_eq!(p["status"], "completed");
    assert_eq!(
        p["code"]["coding"][0]["system"],
        "http://www.ama-assn.org/go/cpt"
    );
    assert_eq!(p["code"]["coding"][0]["code"], "64483");
    assert_eq!(p["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(
        p["basedOn"][0]["reference"],
        format!("ServiceRequest/{lindqvist}")
    );
    assert_eq!(p["performer"][0]["actor"]["display"], "Dr. Marcus Webb");
    // The period is the procedure day's start and end.
    assert_eq!(
        p["performedPeriod"]["start"],
        timeline_at(&c, "start_procedure")
    );
    assert_eq!(
        p["performedPeriod"]["end"],
        timeline_at(&c, "end_procedure")
    );
    let sites: Vec<&str> = p["bodySite"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["coding"][0]["code"].as_str().unwrap())
        .collect();
    assert_eq!(sites, ["L4-L5", "7771000"], "level and left (SNOMED)");
    assert!(p.get("complication").is_none(), "no complication");
    let notes: Vec<&str> = p["note"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["text"].as_str().unwrap())
        .collect();
    assert!(
        notes.contains(&"Pain (0-10): 8 before, 2 right after"),
        "{notes:?}"
    );
    assert!(notes.contains(&"Fluoroscopy time: 38 s"), "{notes:?}");
    let report = p["report"][0]["reference"].as_str().unwrap().to_owned();
    checked.push(p.clone());

    let (status, bundle) = fhir(
        &app,
        Some(&nurse),
        &format!("/Procedure?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 1);
    assert_eq!(entries(&bundle)[0], p, "search entry equals the read");
    checked.push(bundle);

    // The agents.
    let (status, meds) = fhir(
        &app,
        Some(&nurse),
        &format!("/MedicationAdministration?patient={patient}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(meds["total"], 3, "{meds}");
    checked.push(meds.clone());
    let (status, steroid) = fhir(
        &app,
        Some(&nurse),
        &format!("/MedicationAdministration/{lindqvist}-steroid"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        steroid["medicationCodeableConcept"]["coding"][0]["code"],
        "dexamethasone"
    );
    assert_eq!(steroid["dosage"]["dose"]["value"], 10.0);
    assert_eq!(steroid["dosage"]["dose"]["code"], "mg");
    assert_eq!(
        steroid["partOf"][0]["reference"],
        format!("Procedure/{lindqvist}")
    );
    assert_eq!(steroid["note"][0]["text"], "Non-particulate steroid");
    assert_eq!(steroid["effectivePeriod"], p["performedPeriod"]);
    checked.push(steroid);
    let (status, contrast) = fhir(
        &app,
        Some(&nurse),
        &format!("/MedicationAdministration/{lindqvist}-contrast"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(contrast["dosage"]["dose"]["value"], 1.5);
    assert_eq!(contrast["dosage"]["dose"]["code"], "mL");
    checked.push(contrast);

    // The report.
    let (status, doc) = fhir(&app, Some(&nurse), &format!("/{report}")).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["status"], "current");
    assert_eq!(doc["docStatus"], "final");
    assert_eq!(doc["type"]["coding"][0]["code"], "28570-0");
    assert_eq!(doc["subject"]["reference"], format!("Patient/{patient}"));
    let text = decoded(&doc, "text/plain; charset=utf-8");
    assert!(text.contains("Steroid: dexamethasone 10 mg"), "{text}");
    assert!(text.contains("Patient: Lindqvist, Erik"));
    let html = decoded(&doc, "text/html; charset=utf-8");
    assert!(html.contains("<table>") && html.contains("dexamethasone 10 mg"));
    checked.push(doc);

    // Deniz Yilmaz: cervical transforaminal under CT, no contrast.
    let yilmaz = app.case_of("Yilmaz").await;
    let (status, p) = fhir(&app, Some(&nurse), &format!("/Procedure/{yilmaz}")).await;
    assert_eq!(status, 200);
    assert!(
        p["note"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["text"] == "CT dose-length product: 182 mGy·cm")
    );
    checked.push(p);
    let (status, outcome) = fhir(
        &app,
        Some(&nurse),
        &format!("/MedicationAdministration/{yilmaz}-contrast"),
    )
    .await;
    assert_eq!(status, 404, "no contrast was given");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    checked.push(outcome);

    // Siobhan Brennan: a dural puncture.
    let brennan = app.case_of("Brennan").await;
    let (_, p) = fhir(&app, Some(&nurse), &format!("/Procedure/{brennan}")).await;
    assert_eq!(p["complication"][0]["coding"][0]["code"], "dural_puncture");
    assert!(
        p["complication"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Dural puncture: ")
    );
    checked.push(p);

    validate(&checked);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_amendment_replaces_the_report_and_referrers_see_only_their_own() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let lindqvist = app.case_of("Lindqvist").await;
    let patient = case(&app, &nurse, lindqvist).await["patient"]["id"]
        .as_i64()
        .unwrap();
    // The radiologist amends the record (pain after was 3).
    let rad = app.token_for("radiologist2").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{lindqvist}/procedure-record/sign")))
        .bearer_auth(&rad)
        .json(&json!({
            "procedure": "64483", "levels": "L4-L5", "side": "left", "guidance": "fluoroscopy",
            "contrast_agent": "iohexol", "contrast_ml": "1.5", "steroid_agent": "dexamethasone",
            "steroid_mg": "10", "anaesthetic_agent": "lidocaine", "anaesthetic_mg": "20",
            "fluoroscopy_seconds": "38", "dap": "214", "pain_before": "8", "pain_after": "3",
            "complication": "none", "amendment_reason": "Pain after corrected from the recovery chart.",
            "confirm": "sign"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (_, bundle) = fhir(
        &app,
        Some(&nurse),
        &format!("/DocumentReference?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(bundle["total"], 2);
    let docs = entries(&bundle);
    assert_eq!(docs[0]["status"], "superseded");
    assert_eq!(docs[1]["status"], "current");
    assert_eq!(docs[1]["docStatus"], "amended");
    assert_eq!(
        docs[1]["relatesTo"][0]["target"]["reference"],
        format!("DocumentReference/{}", docs[0]["id"].as_str().unwrap())
    );
    assert!(decoded(&docs[0], "text/plain; charset=utf-8").contains("2 right after"));
    let amended = decoded(&docs[1], "text/plain; charset=utf-8");
    assert!(amended.contains("3 right after"));
    assert!(amended.contains("Amended: version 2: Pain after corrected"));
    let (_, p) = fhir(&app, Some(&nurse), &format!("/Procedure/{lindqvist}")).await;
    assert_eq!(
        p["report"][0]["reference"],
        format!("DocumentReference/{}", docs[1]["id"].as_str().unwrap())
    );
    let mut checked = vec![bundle.clone(), p];

    // Erik Lindqvist was referred by `referrer`: theirs to read, not `referrer2`'s.
    let mine = app.token_for("referrer").await;
    let other = app.token_for("referrer2").await;
    assert_eq!(
        fhir(&app, Some(&mine), &format!("/Procedure/{lindqvist}"))
            .await
            .0,
        200
    );
    let (status, outcome) = fhir(&app, Some(&other), &format!("/Procedure/{lindqvist}")).await;
    assert_eq!(status, 404);
    checked.push(outcome);
    let doc_id = docs[1]["id"].as_str().unwrap();
    assert_eq!(
        fhir(&app, Some(&mine), &format!("/DocumentReference/{doc_id}"))
            .await
            .0,
        200
    );
    assert_eq!(
        fhir(&app, Some(&other), &format!("/DocumentReference/{doc_id}"))
            .await
            .0,
        404
    );
    let (status, theirs) = fhir(
        &app,
        Some(&other),
        &format!("/Procedure?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        theirs["total"], 0,
        "another referrer's patient has none for them"
    );
    checked.push(theirs);

    // A draft is not served; bad requests are OperationOutcomes.
    let dubois = app.case_of("Dubois").await;
    assert_eq!(
        fhir(&app, Some(&nurse), &format!("/Procedure/{dubois}"))
            .await
            .0,
        404
    );
    for (path, expected) in [
        ("/Procedure", 400),
        ("/Procedure?patient=Patient/x", 400),
        ("/Procedure?patient=1&code=64483", 400),
        ("/DocumentReference/abc", 404),
        ("/MedicationAdministration/1-aspirin", 404),
        ("/MedicationAdministration?_count=0&patient=1", 400),
    ] {
        let (status, outcome) = fhir(&app, Some(&nurse), path).await;
        assert_eq!(status, expected, "{path}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        checked.push(outcome);
    }
    let (status, outcome) = fhir(&app, None, &format!("/Procedure/{lindqvist}")).await;
    assert_eq!(status, 401);
    checked.push(outcome);
    validate(&checked);
    app.stop().await;
}
