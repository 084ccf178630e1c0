//! The procedure day over real HTTP: check-in, the pre-procedure checklist (consent,
//! time-out, a blood thinner that was not held), the start and end of the procedure,
//! vital signs, the monitoring time of a patient who drives, the discharge and its
//! instructions, today's board and who may do what.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use irflow_domain::scheduling::SlotOption;
use irflow_domain::{Actor, CaseId};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde_json::{Value, json};

fn tz() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn today() -> jiff::civil::Date {
    Timestamp::now().to_zoned_datetime(tz()).date()
}

fn days_ago(n: i64) -> String {
    (today() - Span::new().days(n)).to_string()
}

async fn actor(app: &App, username: &str) -> Actor {
    app.store.user_by_username(username).await.unwrap().actor()
}

/// Books a ready demo case now (the API refuses past times, as the front desk's list
/// would have been made earlier), in the first room and radiologist free.
async fn book_now(app: &App, case: i64) {
    let site = app.store.default_site().await.unwrap().unwrap();
    let now = Timestamp::now();
    let start = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300)).unwrap();
    let scheduler = actor(app, "scheduler").await;
    for room in app.store.rooms(site.id).await.unwrap() {
        for rad in ["radiologist", "radiologist2", "radiologist3"] {
            let option = SlotOption {
                start,
                end: start + SignedDuration::from_mins(20),
                room: room.id,
                radiologist: app.store.user_by_username(rad).await.unwrap().id.get(),
                chair: None,
            };
            if app
                .store
                .book_appointment(
                    &scheduler,
                    CaseId::new(case),
                    &site,
                    &option,
                    10,
                    None,
                    now,
                    today(),
                )
                .await
                .is_ok()
            {
                return;
            }
        }
    }
    panic!("a room and a radiologist free now for case {case}");
}

async fn send(
    app: &App,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = reqwest::Client::new()
        .request(method, app.at(path))
        .bearer_auth(token);
    if let Some(b) = body {
        r = r.json(&b);
    }
    let r = r.send().await.unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get(app: &App, token: &str, path: &str) -> (u16, Value) {
    send(app, token, reqwest::Method::GET, path, None).await
}

async fn post(app: &App, token: &str, path: &str, body: Value) -> (u16, Value) {
    send(app, token, reqwest::Method::POST, path, Some(body)).await
}

fn message(v: &Value) -> String {
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn check_in(app: &App, token: &str, case: i64) {
    let (status, v) = post(
        app,
        token,
        &format!("/api/v1/cases/{case}/transitions"),
        json!({"action": "check_in"}),
    )
    .await;
    assert_eq!(status, 200, "check-in: {v}");
}

/// Everything but blood thinners and the time-out, answered as an uneventful day.
async fn routine_items(app: &App, nurse: &str, case: i64, escort: &str) {
    let url = format!("/api/v1/cases/{case}/checklist");
    for body in [
        json!({"item": "identity", "value": "name_mrn"}),
        json!({"item": "consent", "method": "paper", "signer": "The patient", "witness": "Nora Patel, RN"}),
        json!({"item": "escort", "value": escort}),
        json!({"item": "allergies", "value": "reviewed", "note": "No known drug allergies"}),
        json!({"item": "pregnancy", "value": "not_possible"}),
    ] {
        let (status, v) = post(app, nurse, &url, body.clone()).await;
        assert_eq!(status, 200, "{body}: {v}");
        assert_eq!(v["outcome"], "done", "{v}");
    }
}

async fn time_out(app: &App, token: &str, case: i64, side: bool) -> (u16, Value) {
    post(
        app,
        token,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "time_out", "patient": true, "procedure": true, "level": true, "side": side}),
    )
    .await
}

async fn state_of(app: &App, token: &str, case: i64) -> String {
    let (_, v) = get(app, token, &format!("/api/v1/cases/{case}")).await;
    v["case"]["state"]
        .as_str()
        .or_else(|| v["state"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// The board column a case is in, read from the board's HTML fragment.
fn column_in(fragment: &str, case: i64) -> Option<String> {
    let marker = format!("id=\"day-{case}\" data-column=\"");
    let at = fragment.find(&marker)? + marker.len();
    Some(fragment[at..].split('"').next()?.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_day_from_check_in_to_discharge() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let case = app.case_of("Fischer").await;
    book_now(&app, case).await;

    // Before check-in the checklist cannot be kept.
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "identity", "value": "name_dob"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("check the patient in first"), "{v}");
    check_in(&app, &nurse, case).await;

    let (status, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/checklist")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["checklist"]["required"],
        json!(["identity", "consent", "escort", "allergies", "time_out"]),
        "an uneventful patient: no blood thinner, glucose or premedication item, and \
         the screening ruled pregnancy out"
    );
    assert_eq!(
        v["risks"]["risks"][4], "Spinal headache",
        "risks from the pack"
    );
    assert!(
        v["risks"]["source"].as_str().unwrap().starts_with("LOCAL"),
        "{v}"
    );

    // The generic transition path cannot start a procedure.
    let (status, v) = post(
        &app,
        &rad,
        &format!("/api/v1/cases/{case}/transitions"),
        json!({"action": "start_procedure"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("/start"), "{v}");

    routine_items(&app, &nurse, case, "escort").await;
    // Consent signed on screen: the drawing is kept with it.
    let png = format!(
        "data:image/png;base64,{}",
        "iVBORw0KGgoAAAANSUhEUgAAAAEAAAAB".repeat(3)
    );
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "consent", "method": "on_screen", "signer": "Hannah Fischer", "witness": "Nora Patel, RN", "signature_png": png}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = time_out(&app, &rad, case, true).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["checklist"]["complete"], true, "{v}");
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/checklist")).await;
    assert_eq!(v["consent"]["method"], "on_screen");
    assert_eq!(v["consent"]["signed_on_screen"], true);
    assert!(v["day"]["checklist_done_at"].is_string(), "{v}");

    let (status, v) = post(
        &app,
        &rad,
        &format!("/api/v1/cases/{case}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "in_procedure");
    // Answers are closed once the procedure has started.
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "pregnancy", "value": "test_negative"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let (status, v) = post(&app, &rad, &format!("/api/v1/cases/{case}/end"), json!({})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "recovery");

    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/vitals"),
        json!({"systolic": 128, "diastolic": 82, "pulse": 74, "spo2": 98, "pain": 2, "notes": "Comfortable"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/recovery")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["vitals"][0]["systolic"], 128);
    assert_eq!(
        v["day"]["monitoring_minutes"],
        Value::Null,
        "an escort: no monitoring"
    );
    assert_eq!(v["minutes_left"], Value::Null);
    let criteria: Vec<Value> = v["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert!(criteria.len() >= 3, "{v}");

    // Every criterion must be confirmed.
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/discharge"),
        json!({"criteria": criteria[..1]}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(message(&v).contains("not confirmed"), "{v}");
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/discharge"),
        json!({"criteria": criteria}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "discharged");
    assert_eq!(v["override_reason"], Value::Null);
    assert_eq!(
        v["instructions"]["sent_by"], "sms",
        "Fischer has a phone only: {v}"
    );
    assert_eq!(state_of(&app, &nurse, case).await, "discharged");
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/messages")).await;
    let sent = v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "discharge_instructions")
        .unwrap_or_else(|| panic!("the discharge instructions are in the outbox: {v}"));
    assert_eq!(sent["channel"], "sms");
    // The print-ready instructions.
    let r = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}/discharge-instructions")))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/recovery")).await;
    assert!(v["day"]["discharged_at"].is_string(), "{v}");
    assert_eq!(v["day"]["discharged_by"], "nurse");
    // The fixed interface for the procedure record and FHIR.
    let status = app
        .store
        .day_status(&actor(&app, "radiologist").await, CaseId::new(case))
        .await
        .unwrap()
        .unwrap();
    assert!(status.arrived_at.unwrap() <= status.checklist_done_at.unwrap());
    assert!(status.procedure_started_at.unwrap() <= status.procedure_ended_at.unwrap());
    assert!(status.discharged_at.is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_is_refused_until_every_item_is_done() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let case = app.case_of("Tanaka").await;
    book_now(&app, case).await;
    check_in(&app, &nurse, case).await;
    let start = format!("/api/v1/cases/{case}/start");
    let (status, v) = post(&app, &rad, &start, json!({})).await;
    assert_eq!(status, 409, "{v}");
    let m = message(&v);
    for missing in ["identity", "consent", "escort", "allergies", "time-out"] {
        assert!(m.contains(missing), "{missing} named in {m}");
    }
    assert!(
        !m.contains("pregnancy"),
        "the screening ruled pregnancy out: not asked again: {m}"
    );
    // Bad input is refused and stores nothing.
    let url = format!("/api/v1/cases/{case}/checklist");
    for (body, status_wanted) in [
        (json!({"item": "identity", "value": "just_the_name"}), 422),
        (json!({"item": "glucose", "value": "high"}), 422),
        (json!({"item": "premedication", "value": "taken"}), 422),
        (
            json!({"item": "blood_thinners", "doses": [{"drug": "warfarin", "last_dose": days_ago(9)}]}),
            422,
        ),
        (
            json!({"item": "consent", "method": "on_screen", "signer": "Y. Tanaka", "witness": "Nora"}),
            422,
        ),
        (json!({"item": "cake"}), 422),
        (json!(["identity"]), 400),
    ] {
        let (status, v) = post(&app, &nurse, &url, body.clone()).await;
        assert_eq!(status, status_wanted, "{body}: {v}");
    }
    let (_, v) = get(&app, &nurse, &url).await;
    assert_eq!(v["answers"], json!([]), "nothing stored: {v}");
    assert_eq!(v["consent"], Value::Null);

    // The time-out comes last.
    let (status, v) = time_out(&app, &rad, case, true).await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("comes last"), "{v}");
    routine_items(&app, &nurse, case, "escort").await;
    let (status, v) = post(&app, &rad, &start, json!({})).await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("still to do: time-out"), "{v}");
    // A time-out that finds the wrong side is recorded and stops the start.
    let (status, v) = time_out(&app, &rad, case, false).await;
    assert_eq!(status, 422, "{v}");
    assert!(message(&v).contains("side"), "{v}");
    let (status, v) = post(&app, &rad, &start, json!({})).await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("side"), "{v}");
    assert_eq!(state_of(&app, &rad, case).await, "arrived");
    let (status, _) = time_out(&app, &rad, case, true).await;
    assert_eq!(status, 200);
    // A scheduler may check patients in but not start procedures.
    let scheduler = app.token_for("scheduler").await;
    let (status, v) = post(&app, &scheduler, &start, json!({})).await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = post(&app, &rad, &start, json!({})).await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_catches_a_blood_thinner_that_was_not_held() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    // George Sullivan takes apixaban and is booked a week out; he comes today instead.
    let case = app.case_of("Sullivan").await;
    app.store
        .cancel_appointment(
            &actor(&app, "scheduler").await,
            CaseId::new(case),
            "Moved to today",
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    book_now(&app, case).await;
    check_in(&app, &nurse, case).await;
    let url = format!("/api/v1/cases/{case}/checklist");
    let (_, v) = get(&app, &nurse, &url).await;
    assert!(
        v["checklist"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("blood_thinners")),
        "{v}"
    );
    let planned = v["plan"]["held_drugs"][0]["planned_last_dose"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(v["plan"]["held_drugs"][0]["drug"], "apixaban");
    // The plan as the letters gave it: the appointment's day minus the pack's 3 days.
    assert_eq!(planned, days_ago(3), "{v}");
    routine_items(&app, &nurse, case, "escort").await;

    // He took his last dose yesterday: not held long enough.
    let yesterday = days_ago(1);
    let (status, v) = post(
        &app,
        &nurse,
        &url,
        json!({"item": "blood_thinners", "doses": [{"drug": "apixaban", "last_dose": yesterday}]}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let m = message(&v);
    assert!(m.contains("apixaban"), "{m}");
    assert!(m.contains(&planned), "the planned last dose in {m}");
    assert!(m.contains(&yesterday), "the reported last dose in {m}");
    assert!(m.contains("not held long enough"), "{m}");
    // The answer is kept: the checklist says it stopped, and the start is refused.
    let (_, v) = get(&app, &nurse, &url).await;
    assert_eq!(v["checklist"]["stops"][0]["item"], "blood_thinners", "{v}");
    assert!(
        v["day"]["checklist_stopped"]
            .as_str()
            .unwrap()
            .contains("apixaban")
    );
    let (status, v) = time_out(&app, &rad, case, true).await;
    assert_eq!(status, 409, "no time-out while stopped: {v}");
    let (status, v) = post(
        &app,
        &rad,
        &format!("/api/v1/cases/{case}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("not held long enough"), "{v}");
    assert_eq!(state_of(&app, &rad, case).await, "arrived");
    // The board shows the stop.
    let (_, board) = get(&app, &nurse, "/api/v1/today").await;
    let row = board["sites"][0]["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == case)
        .unwrap()
        .clone();
    assert_eq!(row["checklist"], "stopped", "{row}");
    // Had the nurse mistyped it, the corrected answer (held as planned) clears the stop.
    let (status, v) = post(
        &app,
        &nurse,
        &url,
        json!({"item": "blood_thinners", "doses": [{"drug": "apixaban", "last_dose": days_ago(4)}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = time_out(&app, &rad, case, true).await;
    assert_eq!(status, 200);
    let (status, v) = post(
        &app,
        &rad,
        &format!("/api/v1/cases/{case}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_who_drives_is_not_discharged_early_without_an_override() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let admin = app.token_for("admin").await;
    // Marco Rossi has no escort: he drives himself home.
    let case = app.case_of("Rossi").await;
    book_now(&app, case).await;
    check_in(&app, &nurse, case).await;
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/checklist")).await;
    assert_eq!(v["plan"]["screening_escort"], false, "{v}");
    assert_eq!(
        v["plan"]["screening_monitoring_minutes"], 60,
        "from the pack: {v}"
    );
    routine_items(&app, &nurse, case, "monitoring").await;
    assert_eq!(time_out(&app, &rad, case, true).await.0, 200);
    assert_eq!(
        post(
            &app,
            &rad,
            &format!("/api/v1/cases/{case}/start"),
            json!({})
        )
        .await
        .0,
        200
    );
    assert_eq!(
        post(&app, &rad, &format!("/api/v1/cases/{case}/end"), json!({}))
            .await
            .0,
        200
    );
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/recovery")).await;
    assert_eq!(v["day"]["monitoring_minutes"], 60, "{v}");
    let left = v["minutes_left"].as_i64().unwrap();
    assert!((59..=60).contains(&left), "{v}");
    let all: Vec<Value> = v["criteria"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    let discharge = format!("/api/v1/cases/{case}/discharge");

    // Too early: refused with the time left.
    let (status, v) = post(&app, &nurse, &discharge, json!({"criteria": all})).await;
    assert_eq!(status, 409, "{v}");
    let m = message(&v);
    assert!(m.contains("minutes left") && m.contains("override"), "{m}");
    let (status, v) = post(
        &app,
        &nurse,
        &discharge,
        json!({"criteria": all, "override_reason": "   "}),
    )
    .await;
    assert_eq!(status, 409, "a blank reason is no override: {v}");
    // Only a nurse discharges (and so only a nurse overrides).
    let (status, v) = post(
        &app,
        &rad,
        &discharge,
        json!({"criteria": all, "override_reason": "Radiologist says fine"}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(state_of(&app, &nurse, case).await, "recovery");
    // The board counts the monitoring down.
    let (_, board) = get(&app, &nurse, "/api/v1/today").await;
    let row = board["sites"][0]["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == case)
        .unwrap()
        .clone();
    assert_eq!(row["column"], "recovery");
    assert!(row["minutes_left"].as_i64().unwrap() > 0, "{row}");

    // A nurse's override with a reason: recorded and audited.
    let reason = "His daughter arrived and will drive him home.";
    let (status, v) = post(
        &app,
        &nurse,
        &discharge,
        json!({"criteria": all, "override_reason": reason}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["override_reason"], reason);
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/recovery")).await;
    assert_eq!(v["day"]["discharge_override"], reason);
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}")).await;
    assert!(
        v.to_string().contains(reason),
        "the override is on the timeline: {v}"
    );
    let (_, v) = get(
        &app,
        &admin,
        &format!("/api/v1/audit?entity_type=case&entity_id={case}&action=transition"),
    )
    .await;
    let events = v["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["outcome"] == "success"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("action=discharge") && d.contains("override=yes"))),
        "{v}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["outcome"] == "invalid" && e["detail"].as_str() == Some("action=discharge")),
        "the refused early discharge is audited: {v}"
    );
    assert!(
        events.iter().all(|e| !e.to_string().contains("daughter")),
        "no clinical text in the audit log"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_are_refused_and_the_board_moves_a_patient_on_its_own() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let referrer = app.token_for("referrer").await;
    let case = app.case_of("Walsh").await;
    book_now(&app, case).await;
    check_in(&app, &nurse, case).await;

    // Referrers (even Walsh's own) see none of the day's records.
    for path in [
        "/api/v1/today".to_owned(),
        format!("/api/v1/cases/{case}/checklist"),
        format!("/api/v1/cases/{case}/recovery"),
        format!("/api/v1/cases/{case}/vitals"),
    ] {
        let (status, v) = get(&app, &referrer, &path).await;
        assert_eq!(status, 403, "{path}: {v}");
    }
    let (status, _) = post(
        &app,
        &referrer,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "identity", "value": "name_dob"}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        &app,
        &referrer,
        &format!("/api/v1/cases/{case}/start"),
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    let page = app.signed_in("referrer").await;
    let r = page.get(app.at("/today")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = page
        .get(app.at(&format!("/cases/{case}/checklist")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // The board page polls its fragment; the fragment follows the patient.
    let staff = app.signed_in("nurse").await;
    let html = staff
        .get(app.at("/today"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(r#"hx-get="/today/board" hx-trigger="every 5s""#),
        "the board polls"
    );
    assert_eq!(column_in(&html, case).as_deref(), Some("arrived"));
    routine_items(&app, &nurse, case, "escort").await;
    assert_eq!(time_out(&app, &rad, case, true).await.0, 200);
    let board_url = app.at("/today/board");
    let fragment = |client: reqwest::Client| {
        let url = board_url.clone();
        async move {
            let r = client
                .get(url)
                .header("HX-Request", "true")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    let before = fragment(staff.clone()).await;
    assert_eq!(column_in(&before, case).as_deref(), Some("arrived"));
    assert!(
        before.contains(&format!("id=\"start-{case}\"")),
        "a start button"
    );
    assert_eq!(
        post(
            &app,
            &rad,
            &format!("/api/v1/cases/{case}/start"),
            json!({})
        )
        .await
        .0,
        200
    );
    let after = fragment(staff.clone()).await;
    assert_eq!(column_in(&after, case).as_deref(), Some("in_room"));
    assert!(
        after.contains(&format!("href=\"/cases/{case}/procedure-record\"")),
        "the procedure record is one click away"
    );
    // Without a session the fragment tells htmx to stop polling.
    let r = common::browser()
        .get(app.at("/today/board"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 286);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_walk_a_patient_through_the_day() {
    let app = App::start().await;
    let case = app.case_of("Fischer").await;
    book_now(&app, case).await;
    let nurse = app.signed_in("nurse").await;
    let board = nurse
        .get(app.at("/today"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(board.contains(">Today</a>"), "the nav links to the board");
    let csrf = common::csrf_of(&board);
    let r = nurse
        .post(app.at(&format!("/today/check-in/{case}")))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let form = |pairs: &[(&str, &str)]| {
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(pairs);
        all.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<Vec<_>>()
    };
    let url = app.at(&format!("/cases/{case}/checklist"));
    for pairs in [
        vec![("item", "identity"), ("value", "name_dob")],
        vec![
            ("item", "consent"),
            ("method", "paper"),
            ("signer", "Hannah Fischer"),
            ("witness", "Nora Patel, RN"),
        ],
        vec![("item", "escort"), ("value", "escort")],
        vec![("item", "allergies"), ("value", "reviewed")],
        vec![("item", "pregnancy"), ("value", "not_possible")],
        vec![
            ("item", "time_out"),
            ("patient", "yes"),
            ("procedure", "yes"),
            ("level", "yes"),
            ("side", "yes"),
        ],
    ] {
        let r = nurse.post(&url).form(&form(&pairs)).send().await.unwrap();
        assert_eq!(r.status(), 303, "{pairs:?}");
    }
    // A typing error is shown beside its item; nothing is stored.
    let r = nurse
        .post(&url)
        .form(&form(&[("item", "identity"), ("value", "wristband")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("id=\"error-identity\""));
    let page = nurse.get(&url).send().await.unwrap().text().await.unwrap();
    assert!(page.contains("Checklist complete"), "{page}");
    assert!(page.contains("id=\"start-procedure\""));
    // Start and end from the pages (a nurse may, as the room nurse).
    let r = nurse
        .post(app.at(&format!("/cases/{case}/start")))
        .form(&[("csrf", csrf.as_str()), ("back", "checklist")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let r = nurse
        .post(app.at(&format!("/cases/{case}/end")))
        .form(&[("csrf", csrf.as_str()), ("back", "board")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/cases/{case}/recovery?done=ended").as_str()
    );
    let r = nurse
        .post(app.at(&format!("/cases/{case}/recovery/vitals")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("systolic", "120"),
            ("diastolic", "130"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "diastolic above systolic");
    let r = nurse
        .post(app.at(&format!("/cases/{case}/recovery/vitals")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("systolic", "124"),
            ("diastolic", "78"),
            ("pulse", "70"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let recovery = nurse
        .get(app.at(&format!("/cases/{case}/recovery")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(recovery.contains("124/78"));
    let pack = irflow_rules::default_pack().unwrap();
    let mut discharge: Vec<(String, String)> = vec![("csrf".into(), csrf.clone())];
    for c in &pack.day.discharge {
        discharge.push(("criteria".into(), c.meta.id.clone()));
    }
    let r = nurse
        .post(app.at(&format!("/cases/{case}/discharge")))
        .form(&discharge)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.contains("done=discharged&sent=sms"), "{location}");
    let done = nurse
        .get(app.at(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(done.contains("id=\"print-instructions\""));
    assert!(done.contains("sent by text message"), "{done}");
    // A forged form changes nothing.
    let r = nurse
        .post(&url)
        .form(&[
            ("csrf", "forged"),
            ("item", "identity"),
            ("value", "mismatch"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_day_is_documented_in_openapi() {
    let app = App::start().await;
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/api/v1/today", "get"),
        ("/api/v1/cases/{id}/checklist", "get"),
        ("/api/v1/cases/{id}/checklist", "post"),
        ("/api/v1/cases/{id}/start", "post"),
        ("/api/v1/cases/{id}/end", "post"),
        ("/api/v1/cases/{id}/recovery", "get"),
        ("/api/v1/cases/{id}/vitals", "get"),
        ("/api/v1/cases/{id}/vitals", "post"),
        ("/api/v1/cases/{id}/discharge", "post"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path}");
    }
    let items: Vec<&str> = doc["components"]["schemas"]["ChecklistItem"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(
        items,
        irflow_domain::procedure_day::ChecklistItem::ALL.map(|i| i.as_str())
    );
    app.stop().await;
}

/// The demo's list for today (run by `irflow demo`) is a day under way: whenever the
/// list fits in today around now, one patient is discharged, one is in recovery with
/// monitoring time left, one has arrived with the checklist begun, one is expected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_board_shows_a_day_under_way() {
    let app = App::start().await;
    irflow::demo::seed_todays_list(&app.store, &tz(), app.today)
        .await
        .expect("today's list");
    let now = Timestamp::now();
    let fits = [-170, 120].into_iter().all(|m| {
        (now + SignedDuration::from_mins(m))
            .to_zoned_datetime(tz())
            .date()
            == today()
    });
    let weekday = !matches!(
        today().weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    );
    let nurse = app.token_for("nurse").await;
    let (status, v) = get(&app, &nurse, "/api/v1/today").await;
    assert_eq!(status, 200, "{v}");
    let patients = v["sites"][0]["patients"].as_array().unwrap().clone();
    if !weekday {
        assert!(patients.is_empty(), "closed at weekends: {v}");
        app.stop().await;
        return;
    }
    if !fits {
        eprintln!("today's list keeps the clinic's usual times at this hour");
        app.stop().await;
        return;
    }
    let row = |family: &str| {
        patients
            .iter()
            .find(|p| {
                p["patient"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(family))
            })
            .unwrap_or_else(|| panic!("{family} on the board: {v}"))
            .clone()
    };
    let fischer = row("Fischer");
    assert_eq!(fischer["column"], "discharged", "{fischer}");
    assert!(fischer["day"]["discharged_at"].is_string());
    let rossi = row("Rossi");
    assert_eq!(rossi["column"], "recovery", "{rossi}");
    assert_eq!(rossi["day"]["monitoring_minutes"], 60);
    assert!(rossi["minutes_left"].as_i64().unwrap() > 0, "{rossi}");
    let tanaka = row("Tanaka");
    assert_eq!(tanaka["column"], "arrived", "{tanaka}");
    assert_eq!(tanaka["checklist"], "in_progress", "{tanaka}");
    assert_eq!(tanaka["late"], false, "arrived before the arrive-by time");
    assert_eq!(row("Walsh")["column"], "expected");
    assert_eq!(row("Adeyemi")["no_show"], true);
    // The recovery's vitals and the checklist's records are real ones.
    let rossi_id = rossi["case_id"].as_i64().unwrap();
    let (_, rec) = get(&app, &nurse, &format!("/api/v1/cases/{rossi_id}/recovery")).await;
    assert!(!rec["vitals"].as_array().unwrap().is_empty(), "{rec}");
    let tanaka_id = tanaka["case_id"].as_i64().unwrap();
    let (_, cl) = get(
        &app,
        &nurse,
        &format!("/api/v1/cases/{tanaka_id}/checklist"),
    )
    .await;
    assert_eq!(
        cl["checklist"]["done"],
        json!(["identity", "consent"]),
        "{cl}"
    );
    app.stop().await;
}

/// Stops George Sullivan's checklist on apixaban taken yesterday (booked now, checked in).
async fn stopped_on_a_blood_thinner(app: &App, nurse: &str) -> i64 {
    let case = app.case_of("Sullivan").await;
    app.store
        .cancel_appointment(
            &actor(app, "scheduler").await,
            CaseId::new(case),
            "Moved to today",
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    book_now(app, case).await;
    check_in(app, nurse, case).await;
    routine_items(app, nurse, case, "escort").await;
    let (status, v) = post(
        app,
        nurse,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "blood_thinners", "doses": [{"drug": "apixaban", "last_dose": days_ago(1)}]}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    case
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_patient_goes_home_untreated_and_can_be_rebooked() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let admin = app.token_for("admin").await;
    let referrer = app.token_for("referrer").await;
    let case = stopped_on_a_blood_thinner(&app, &nurse).await;
    let url = format!("/api/v1/cases/{case}/not-treated");

    // The case lists the day's steps with where they are taken; the generic
    // transition only the ones it takes.
    let (_, v) = get(&app, &rad, &format!("/api/v1/cases/{case}")).await;
    let actions = v["available_actions"].as_array().unwrap();
    let path_of = |name: &str| {
        actions
            .iter()
            .find(|a| a["action"] == name)
            .map(|a| a["path"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        path_of("start_procedure").as_deref(),
        Some(format!("/api/v1/cases/{case}/start").as_str()),
        "{v}"
    );
    assert_eq!(path_of("not_treated"), Some(url.clone()), "{v}");
    assert_eq!(
        path_of("cancel"),
        Some(format!("/api/v1/cases/{case}/transitions")),
        "{v}"
    );
    for a in actions {
        let own: irflow_domain::Action = a["action"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            a["path"].as_str().unwrap().ends_with("/transitions"),
            !own.has_own_step(),
            "{a}"
        );
    }
    // The generic path refuses it and says where to go.
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/transitions"),
        json!({"action": "not_treated", "reason": "another day"}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(message(&v).contains("/not-treated"), "{v}");

    // Refusals change nothing: no reason, a bad body, an admin, a referrer.
    let (status, v) = post(&app, &nurse, &url, json!({"reason": "  "})).await;
    assert_eq!(status, 422, "{v}");
    assert!(message(&v).contains("reason is required"), "{v}");
    let (status, v) = post(&app, &nurse, &url, json!({"reason": 3})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(&app, &nurse, &url, json!({"why": "x"})).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = post(&app, &admin, &url, json!({"reason": "x"})).await;
    assert_eq!(status, 403, "{v}");
    let (status, _) = post(&app, &referrer, &url, json!({"reason": "x"})).await;
    assert!(status == 403 || status == 404, "{status}");
    assert_eq!(state_of(&app, &nurse, case).await, "arrived");

    // The radiologist decides: another day.
    let why = "Apixaban taken yesterday; rebook after a 3-day hold";
    let (status, v) = post(&app, &rad, &url, json!({ "reason": why })).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["from"], "arrived");
    assert_eq!(v["state"], "ready");
    assert_eq!(v["reason"], why);
    assert_eq!(state_of(&app, &nurse, case).await, "ready");
    // On the timeline with the reason, and audited.
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}")).await;
    let entry = v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["action"] == "not_treated")
        .unwrap_or_else(|| panic!("on the timeline: {v}"));
    assert_eq!(entry["reason"], why);
    assert_eq!(entry["label"], "Not treated today");
    let (_, audit) = get(&app, &admin, "/api/v1/audit?limit=200").await;
    assert!(
        audit
            .to_string()
            .contains("action=not_treated arrived->ready"),
        "audited: {audit}"
    );
    // The appointment ended with the reason and its resources were freed: the same
    // time can be booked again, and the board marks the patient as not treated.
    let (_, board) = get(&app, &nurse, "/api/v1/today").await;
    let row = board["sites"][0]["patients"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == case)
        .unwrap_or_else(|| panic!("still on today's board: {board}"))
        .clone();
    assert_eq!(row["not_treated"], true, "{row}");
    assert_eq!(row["column"], "expected", "{row}");
    assert_eq!(row["appointment"]["status"], "cancelled", "{row}");
    // Not again: the patient is no longer here.
    let (status, v) = post(&app, &rad, &url, json!({ "reason": why })).await;
    assert_eq!(status, 409, "{v}");
    // Ready to book: rebooked now, in the room it had (the reservation was released).
    book_now(&app, case).await;
    assert_eq!(state_of(&app, &nurse, case).await, "scheduled");
    // The new booking's day starts afresh.
    check_in(&app, &nurse, case).await;
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/checklist")).await;
    assert_eq!(v["checklist"]["stops"], json!([]), "{v}");
    assert_eq!(v["day"]["checklist_stopped"], Value::Null, "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checklist_page_offers_not_treated_when_stopped() {
    let app = App::start().await;
    let token = app.token_for("nurse").await;
    let case = stopped_on_a_blood_thinner(&app, &token).await;
    let nurse = app.signed_in("nurse").await;
    let page = nurse
        .get(app.at(&format!("/cases/{case}/checklist")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("id=\"form-not-treated\""),
        "offered when stopped"
    );
    let csrf = common::csrf_of(&page);
    let board = nurse
        .get(app.at("/today/board"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        board.contains(&format!("id=\"send-home-{case}\"")),
        "{board}"
    );
    // Without a reason: the page again, with the message, and nothing changed.
    let r = nurse
        .post(app.at(&format!("/cases/{case}/not-treated")))
        .form(&[("csrf", csrf.as_str()), ("reason", "")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body = r.text().await.unwrap();
    assert!(body.contains("reason is required"), "{body}");
    assert_eq!(state_of(&app, &token, case).await, "arrived");
    let r = nurse
        .post(app.at(&format!("/cases/{case}/not-treated")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("reason", "Radiologist: another day after the apixaban hold"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(to.contains("done=not_treated"), "{to}");
    let page = nurse
        .get(app.at(&to))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("not treated today"), "{page}");
    assert!(
        page.contains(&format!("id=\"not-treated-badge-{case}\"")),
        "{page}"
    );
    assert_eq!(state_of(&app, &token, case).await, "ready");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pregnancy_is_asked_where_the_screening_says_it_is_possible() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // Layla Haddad's screening recorded a possible pregnancy (and waits for an action).
    let case = app.case_of("Haddad").await;
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/transitions"),
        json!({"action": "mark_ready"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    book_now(&app, case).await;
    check_in(&app, &nurse, case).await;
    let (_, v) = get(&app, &nurse, &format!("/api/v1/cases/{case}/checklist")).await;
    assert!(
        v["checklist"]["missing"]
            .as_array()
            .unwrap()
            .contains(&json!("pregnancy")),
        "{v}"
    );
    // "May be pregnant" stops the day.
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/checklist"),
        json!({"item": "pregnancy", "value": "possible"}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(message(&v).contains("pregnant"), "{v}");
    app.stop().await;
}
