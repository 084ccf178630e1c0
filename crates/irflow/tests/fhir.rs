//! FHIR R4 over HTTP: the referral round trip as a FHIR client does it, scope,
//! search and paging, and precise OperationOutcomes for bad orders.
//! (`.ci/validate_fhir.py` validates the same responses with Python fhir.resources.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use serde_json::{Value, json};

async fn fhir(
    app: &App,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let c = reqwest::Client::new();
    let mut req = match method {
        "POST" => c.post(app.at(path)),
        _ => c.get(app.at(path)),
    };
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/fhir+json")
            .body(b.to_string());
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "FHIR media type on {method} {path}"
    );
    (status, headers, r.json().await.unwrap())
}

fn order(family: &str) -> Value {
    json!({
        "resourceType": "ServiceRequest",
        "status": "active",
        "intent": "order",
        "priority": "urgent",
        "contained": [{
            "resourceType": "Patient", "id": "pat",
            "identifier": [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "MR"}]}, "value": "MRN-555001"}],
            "name": [{"family": family, "given": ["Ann"]}],
            "birthDate": "1966-06-06",
            "telecom": [{"system": "phone", "value": "617-555-0111"}],
            "communication": [{"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}]
        }],
        "subject": {"reference": "#pat"},
        "code": {"coding": [{"system": "http://www.ama-assn.org/go/cpt", "code": "64483"}]},
        "bodySite": [
            {"coding": [{"system": "urn:irflow:spine-level", "code": "L5-S1"}]},
            {"coding": [{"system": "http://snomed.info/sct", "code": "24028007"}]}
        ],
        "reasonCode": [{"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "M54.17"}], "text": "Right S1 radiculopathy"}],
        "note": [{"text": "Failed 8 weeks of physical therapy."}]
    })
}

fn issue_paths(outcome: &Value) -> Vec<String> {
    outcome["issue"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|i| i["expression"].as_array().cloned().unwrap_or_default())
        .map(|e| e.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fhir_client_orders_and_a_radiologist_accepts() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (status, headers, created) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(order("Fhirson")),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(
        headers["location"]
            .to_str()
            .unwrap()
            .ends_with(&format!("/fhir/r4/ServiceRequest/{id}"))
    );
    assert_eq!(created["status"], "active");
    assert_eq!(created["priority"], "urgent");
    assert_eq!(created["code"]["coding"][0]["code"], "64483");
    assert_eq!(created["bodySite"][0]["coding"][0]["code"], "L5-S1");
    assert_eq!(created["bodySite"][1]["coding"][0]["code"], "24028007");
    assert_eq!(
        created["note"][0]["text"],
        "Failed 8 weeks of physical therapy."
    );
    assert!(
        created["requester"]["reference"]
            .as_str()
            .unwrap()
            .starts_with("Practitioner/")
    );

    // The contained patient became a Patient on file.
    let patient_ref = created["subject"]["reference"].as_str().unwrap().to_owned();
    let (status, _, patient) = fhir(
        &app,
        Some(&referrer),
        "GET",
        &format!("/fhir/r4/{patient_ref}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(patient["name"][0]["family"], "Fhirson");
    assert_eq!(patient["identifier"][0]["value"], "MRN-555001");
    assert_eq!(
        patient["communication"][0]["language"]["coding"][0]["code"],
        "es"
    );

    // The radiologist accepts it through the JSON API; FHIR shows it still active, now in screening.
    let rad = app.token_for("radiologist").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{id}/triage")))
        .bearer_auth(&rad)
        .json(&json!({"decision": "accept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, _, read) = fhir(
        &app,
        Some(&referrer),
        "GET",
        &format!("/fhir/r4/ServiceRequest/{id}"),
        None,
    )
    .await;
    let state = read["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["url"] == "urn:irflow:fhir:StructureDefinition:case-state")
        .unwrap();
    assert_eq!(state["valueCode"], "screening");

    // A second referrer sees nothing of it: read, patient read, search.
    let other = app.token_for("referrer2").await;
    let (status, _, outcome) = fhir(
        &app,
        Some(&other),
        "GET",
        &format!("/fhir/r4/ServiceRequest/{id}"),
        None,
    )
    .await;
    assert_eq!(
        (status, outcome["resourceType"].as_str()),
        (404, Some("OperationOutcome"))
    );
    let (status, _, _) = fhir(
        &app,
        Some(&other),
        "GET",
        &format!("/fhir/r4/{patient_ref}"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let pid = patient_ref.trim_start_matches("Patient/");
    let (status, _, bundle) = fhir(
        &app,
        Some(&other),
        "GET",
        &format!("/fhir/r4/ServiceRequest?patient={pid}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 0);
    assert!(bundle.get("entry").is_none());
    // The referrer's own search finds it.
    let (_, _, bundle) = fhir(
        &app,
        Some(&referrer),
        "GET",
        &format!("/fhir/r4/ServiceRequest?patient=Patient/{pid}"),
        None,
    )
    .await;
    assert_eq!(bundle["total"], 1);
    assert_eq!(bundle["entry"][0]["resource"]["id"], id.as_str());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_orders_get_precise_outcomes_and_store_nothing() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let count_before = app
        .store
        .count_cases(&irflow_domain::Actor::system("test"), &Default::default())
        .await
        .unwrap();

    let (status, _, outcome) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        None,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(outcome["issue"][0]["code"], "structure");

    let mut bad = order("Wrong");
    bad["contained"][0]["birthDate"] = json!("1966-02-30");
    bad["contained"][0]["telecom"][0]["value"] = json!("12");
    bad["code"]["coding"][0]["code"] = json!("99999");
    bad["priority"] = json!("stat");
    let (status, _, outcome) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(bad),
    )
    .await;
    assert_eq!(status, 422, "{outcome}");
    let paths = issue_paths(&outcome);
    for expected in [
        "ServiceRequest.contained[0].birthDate",
        "ServiceRequest.contained[0].telecom[0].value",
        "ServiceRequest.code.coding[0].code",
        "ServiceRequest.priority",
    ] {
        assert!(
            paths.iter().any(|p| p == expected),
            "{expected} in {paths:?}"
        );
    }

    let mut wrong_level = order("Level");
    wrong_level["bodySite"][0]["coding"][0]["code"] = json!("C5-C6");
    let (status, _, outcome) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(wrong_level),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("cervical"),
        "{outcome}"
    );
    assert_eq!(
        issue_paths(&outcome),
        ["ServiceRequest.bodySite[0].coding[0].code"]
    );

    // A referrer cannot order in another's name; a nurse cannot order at all.
    let mut forged = order("Forged");
    let other_id = app.store.user_by_username("referrer2").await.unwrap().id;
    forged["requester"] = json!({"reference": format!("Practitioner/{other_id}")});
    let (status, _, outcome) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(forged),
    )
    .await;
    assert_eq!(
        (status, outcome["issue"][0]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let nurse = app.token_for("nurse").await;
    let (status, _, _) = fhir(
        &app,
        Some(&nurse),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(order("Nurse")),
    )
    .await;
    assert_eq!(status, 403);
    // A scheduler must say for whom.
    let scheduler = app.token_for("scheduler").await;
    let (status, _, outcome) = fhir(
        &app,
        Some(&scheduler),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(order("Phone")),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(issue_paths(&outcome), ["ServiceRequest.requester"]);

    let count_after = app
        .store
        .count_cases(&irflow_domain::Actor::system("test"), &Default::default())
        .await
        .unwrap();
    assert_eq!(count_before, count_after, "nothing was stored");

    // A duplicate names the open case.
    let (status, _, first) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(order("Twice")),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _, outcome) = fhir(
        &app,
        Some(&referrer),
        "POST",
        "/fhir/r4/ServiceRequest",
        Some(order("Twice")),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(outcome["issue"][0]["code"], "duplicate");
    assert!(
        outcome["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains(&format!("ServiceRequest/{}", first["id"].as_str().unwrap()))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_filters_pages_and_tells_the_truth() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let (status, _, all) = fhir(
        &app,
        Some(&nurse),
        "GET",
        "/fhir/r4/ServiceRequest?_count=5",
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(all["type"], "searchset");
    let demo_cases = app
        .store
        .count_cases(&irflow_domain::Actor::system("test"), &Default::default())
        .await
        .unwrap();
    assert!(demo_cases > 10);
    assert_eq!(all["total"], demo_cases);
    assert_eq!(all["entry"].as_array().unwrap().len(), 5);
    // Walk every page by the next links: every case exactly once.
    let mut seen = Vec::new();
    let mut page = all.clone();
    loop {
        for e in page["entry"].as_array().unwrap() {
            seen.push(e["resource"]["id"].as_str().unwrap().to_owned());
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        let Some(next) = next else { break };
        let path = next
            .split_once("/fhir/r4")
            .map(|(_, p)| format!("/fhir/r4{p}"))
            .unwrap();
        page = fhir(&app, Some(&nurse), "GET", &path, None).await.2;
    }
    seen.sort();
    seen.dedup();
    assert_eq!(i64::try_from(seen.len()).unwrap(), demo_cases);

    let (_, _, revoked) = fhir(
        &app,
        Some(&nurse),
        "GET",
        "/fhir/r4/ServiceRequest?status=revoked",
        None,
    )
    .await;
    assert_eq!(revoked["total"], 1);
    let (_, _, some) = fhir(
        &app,
        Some(&nurse),
        "GET",
        "/fhir/r4/ServiceRequest?status=on-hold,completed",
        None,
    )
    .await;
    assert_eq!(
        some["total"],
        3 + irflow::demo_history::HISTORY_CASES,
        "one returned, one discharged, one followed up, and the demo's history (all done)"
    );
    let referrer_id = app.store.user_by_username("referrer").await.unwrap().id;
    let (_, _, by_requester) = fhir(
        &app,
        Some(&nurse),
        "GET",
        &format!("/fhir/r4/ServiceRequest?requester=Practitioner/{referrer_id}"),
        None,
    )
    .await;
    assert!(
        by_requester["entry"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["resource"]["requester"]["reference"]
                == format!("Practitioner/{referrer_id}"))
    );

    for bad in [
        "status=draft",
        "_count=0",
        "_count=1000",
        "patient=Organization/1",
        "color=blue",
    ] {
        let (status, _, outcome) = fhir(
            &app,
            Some(&nurse),
            "GET",
            &format!("/fhir/r4/ServiceRequest?{bad}"),
            None,
        )
        .await;
        assert_eq!(status, 400, "{bad}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }
    // The CapabilityStatement lists exactly what is served.
    let (status, _, cap) = fhir(&app, None, "GET", "/fhir/r4/metadata", None).await;
    assert_eq!(status, 200);
    assert_eq!(cap["fhirVersion"], "4.0.1");
    let types: Vec<&str> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "Appointment",
            "DocumentReference",
            "ImagingStudy",
            "Location",
            "MedicationAdministration",
            "Patient",
            "Practitioner",
            "Procedure",
            "Questionnaire",
            "QuestionnaireResponse",
            "Schedule",
            "ServiceRequest",
            "Slot"
        ]
    );
    let (status, _, outcome) =
        fhir(&app, Some(&nurse), "GET", "/fhir/r4/Observation/1", None).await;
    assert_eq!(
        (status, outcome["issue"][0]["code"].as_str()),
        (404, Some("not-supported"))
    );
    let (status, _, outcome) = fhir(&app, None, "GET", "/fhir/r4/ServiceRequest/1", None).await;
    assert_eq!(
        (status, outcome["issue"][0]["code"].as_str()),
        (401, Some("login"))
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_triage_accepts_or_returns_with_a_structured_reason() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let case = app.case_in_state("referred").await;
    let url = app.at(&format!("/api/v1/cases/{case}/triage"));
    let nurse = app.token_for("nurse").await;
    let r = c
        .post(&url)
        .bearer_auth(&nurse)
        .json(&json!({"decision": "accept"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "radiologists and admins only");
    let admin = app.token_for("admin").await;
    let r = c
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"decision": "return", "text": "why"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "a return needs its reason");
    let r = c
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"decision": "return", "reason": "bored", "text": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"decision": "maybe"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(&url)
        .bearer_auth(&admin)
        .json(&json!({"decision": "return", "reason": "imaging_needed_first", "text": "Please send the lumbar MRI."}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "returned");
    let last = v["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "Please send the lumbar MRI.");
    assert_eq!(last["reason_code"], "imaging_needed_first");
    assert_eq!(last["actor"]["role"], "admin");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screenings_are_questionnaire_responses() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let (status, _, q) = fhir(
        &app,
        Some(&nurse),
        "GET",
        "/fhir/r4/Questionnaire/irflow-screening",
        None,
    )
    .await;
    assert_eq!(status, 200);
    let links: Vec<&str> = q["item"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["linkId"].as_str().unwrap())
        .collect();
    for expected in [
        "medications",
        "thrombotic_risk",
        "labs",
        "contrast_allergy",
        "antibiotics",
        "escort_available",
    ] {
        assert!(links.contains(&expected), "{expected}");
    }
    let case = app.case_of("Nguyen").await;
    let (status, _, bundle) = fhir(
        &app,
        Some(&nurse),
        "GET",
        &format!("/fhir/r4/QuestionnaireResponse?based-on=ServiceRequest/{case}"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 1);
    let qr = &bundle["entry"][0]["resource"];
    assert_eq!(qr["status"], "completed");
    assert_eq!(
        qr["basedOn"][0]["reference"],
        format!("ServiceRequest/{case}")
    );
    let decision = &qr["extension"][0]["extension"];
    assert!(
        decision
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["url"] == "decision" && e["valueCode"] == "defer"),
        "{decision}"
    );
    let antibiotics = qr["item"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["linkId"] == "antibiotics")
        .unwrap();
    assert_eq!(
        antibiotics["item"][0]["answer"][0]["valueCoding"]["code"],
        "active_infection"
    );
    // A referrer cannot read another referrer's screening.
    let id = qr["id"].as_str().unwrap();
    let referrer = app.token_for("referrer").await;
    let (status, _, _) = fhir(
        &app,
        Some(&referrer),
        "GET",
        &format!("/fhir/r4/QuestionnaireResponse/{id}"),
        None,
    )
    .await;
    assert_eq!(status, 404, "Nguyen was referred by referrer2");
    let (status, _, _) = fhir(
        &app,
        Some(&nurse),
        "GET",
        "/fhir/r4/QuestionnaireResponse?subject=Patient/1",
        None,
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}
