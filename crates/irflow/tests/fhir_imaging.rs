//! FHIR R4 `ImagingStudy` over HTTP: a study uploaded for a case is read by id and
//! found by patient, with its series and instances and DICOM UIDs; referrers see only
//! their own; a study waiting in the reconciliation queue is not served; precise 400s.
//! (`.ci/validate_fhir.py` validates the same resources with Python fhir.resources.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use common::dicom::{Study, zip};
use serde_json::Value;

async fn fhir(app: &App, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.at(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "FHIR media type on GET {path}"
    );
    (status, r.json().await.unwrap())
}

async fn upload(app: &App, token: &str, case: i64, archive: &[u8]) -> Value {
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
        .bearer_auth(token)
        .header("content-type", "application/zip")
        .body(archive.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

fn entries(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imaging_studies_are_read_and_searched_by_patient() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let other = app.token_for("referrer2").await;
    let scheduler = app.token_for("scheduler").await;
    let case = app.case_of("Tanaka").await;
    let detail: Value = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}")))
        .bearer_auth(&referrer)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let patient = detail["patient"]["id"].as_i64().unwrap();
    let dob: jiff::civil::Date = detail["patient"]["date_of_birth"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    let study = Study::new("TANAKA^YUKI", "OUT-9", dob, "2026-10-01".parse().unwrap());
    let mut files = study.series(1, 3, 16, 16);
    files.extend(study.series(2, 2, 16, 16));
    let report = upload(&app, &referrer, case, &zip(&files)).await;
    assert_eq!(report["studies"][0]["outcome"], "attached", "{report}");
    let id = report["studies"][0]["study_id"].as_i64().unwrap();

    // Search by patient.
    let (status, bundle) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/ImagingStudy?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let found = entries(&bundle);
    assert_eq!(found.len(), 1, "{bundle}");
    assert_eq!(bundle["total"], 1);
    let s = &found[0];
    assert_eq!(s["resourceType"], "ImagingStudy");
    assert_eq!(s["id"], id.to_string());
    assert_eq!(s["status"], "available");
    assert_eq!(s["subject"]["reference"], format!("Patient/{patient}"));
    assert_eq!(
        s["basedOn"][0]["reference"],
        format!("ServiceRequest/{case}")
    );
    assert_eq!(s["started"], "2026-10-01");
    assert_eq!(s["numberOfSeries"], 2);
    assert_eq!(s["numberOfInstances"], 5);
    assert_eq!(s["modality"][0]["code"], "MR");
    assert_eq!(
        s["identifier"][0]["value"],
        format!("urn:oid:{}", study.study_uid())
    );
    assert_eq!(s["identifier"][0]["system"], "urn:dicom:uid");
    let series = s["series"].as_array().unwrap();
    assert_eq!(series[0]["uid"], study.series_uid(1));
    assert_eq!(series[0]["number"], 1);
    assert_eq!(series[0]["numberOfInstances"], 3);
    assert_eq!(series[0]["bodySite"]["code"], "122496007");
    assert_eq!(series[0]["instance"][0]["uid"], study.instance_uid(1, 1));
    assert_eq!(
        series[0]["instance"][0]["sopClass"]["code"],
        "urn:oid:1.2.840.10008.5.1.4.1.1.4"
    );
    // The bare id and the full reference are the same search.
    let (_, bare) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/ImagingStudy?patient={patient}"),
    )
    .await;
    assert_eq!(entries(&bare), found);

    // Read.
    let (status, read) = fhir(
        &app,
        Some(&scheduler),
        &format!("/fhir/r4/ImagingStudy/{id}"),
    )
    .await;
    assert_eq!(status, 200, "{read}");
    assert_eq!(&read, s, "read equals the search entry");

    // Another referrer: not found, and an empty search.
    let (status, outcome) = fhir(&app, Some(&other), &format!("/fhir/r4/ImagingStudy/{id}")).await;
    assert_eq!(status, 404);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    let (status, none) = fhir(
        &app,
        Some(&other),
        &format!("/fhir/r4/ImagingStudy?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(entries(&none).is_empty(), "{none}");

    // A queued study is no one's yet: not served.
    let stranger = Study::new(
        "NOBODY^KNOWN",
        "Z-1",
        "1940-05-05".parse().unwrap(),
        "2026-09-09".parse().unwrap(),
    );
    let report = upload(&app, &referrer, case, &zip(&stranger.series(1, 1, 16, 16))).await;
    assert_eq!(report["studies"][0]["outcome"], "queued", "{report}");
    let queued = report["studies"][0]["study_id"].as_i64().unwrap();
    let (status, _) = fhir(
        &app,
        Some(&scheduler),
        &format!("/fhir/r4/ImagingStudy/{queued}"),
    )
    .await;
    assert_eq!(status, 404);

    // Precise refusals.
    for (path, code) in [
        ("/fhir/r4/ImagingStudy", 400),
        ("/fhir/r4/ImagingStudy?patient=Practitioner/1", 400),
        ("/fhir/r4/ImagingStudy?patient=1&modality=MR", 400),
        ("/fhir/r4/ImagingStudy?patient=1&_count=0", 400),
        ("/fhir/r4/ImagingStudy/not-a-number", 404),
        ("/fhir/r4/ImagingStudy/999999", 404),
    ] {
        let (status, outcome) = fhir(&app, Some(&scheduler), path).await;
        assert_eq!(status, code, "{path}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    let (status, _) = fhir(&app, None, &format!("/fhir/r4/ImagingStudy/{id}")).await;
    assert_eq!(status, 401);

    // The CapabilityStatement says what is served.
    let (_, cap) = fhir(&app, None, "/fhir/r4/metadata").await;
    let imaging = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "ImagingStudy")
        .expect("ImagingStudy in the CapabilityStatement")
        .clone();
    assert_eq!(imaging["searchParam"][0]["name"], "patient");
    app.stop().await;
}
