//! The appointment as an iCalendar file (RFC 5545), over HTTP: structure, line
//! folding, TEXT escaping, times in the site's zone with a VTIMEZONE that is right on
//! both sides of a daylight-saving change, one event per case whose SEQUENCE grows
//! with every move and cancellation, and the errors and audit of the endpoint.
//! (`.ci/validate_ics.py` parses the same files with Python `icalendar`.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use serde_json::{Value, json};

async fn get_json(app: &App, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

/// Downloads a case's calendar file: (status, content type, body).
async fn ics(app: &App, token: &str, case: i64, query: &str) -> (u16, String, String) {
    let r = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}/appointment.ics{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let content_type = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, content_type, r.text().await.unwrap())
}

/// Books the first option on or after a date; returns the appointment as the API gives it.
async fn book_from(app: &App, token: &str, case: i64, from: &str) -> Value {
    let (status, v) = get_json(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=1"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let slot = &v["slots"][0];
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/appointment")))
        .bearer_auth(token)
        .json(&json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.json().await.unwrap()
}

async fn move_from(app: &App, token: &str, case: i64, from: &str) -> Value {
    let (status, v) = get_json(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=1"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let slot = &v["slots"][0];
    let r = reqwest::Client::new()
        .put(app.at(&format!("/api/v1/cases/{case}/appointment")))
        .bearer_auth(token)
        .json(&json!({"start": slot["start"], "room": slot["room"]["id"],
                      "radiologist": slot["radiologist"]["id"], "reason": "patient asked for a later date"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// Content lines after unfolding (RFC 5545 3.1).
fn unfold(body: &str) -> Vec<String> {
    body.replace("\r\n ", "")
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value of the first property with this name (and any parameters).
fn prop(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':') || rest.starts_with(';'))
        })
        .map(|l| l.split_once(':').unwrap().1.to_owned())
        .unwrap_or_else(|| panic!("no {name} in {lines:#?}"))
}

/// The lines of the first `BEGIN:{name}` ... `END:{name}` block.
fn block(lines: &[String], name: &str) -> Vec<String> {
    let start = lines
        .iter()
        .position(|l| *l == format!("BEGIN:{name}"))
        .unwrap_or_else(|| panic!("no {name}"));
    let end = lines[start..]
        .iter()
        .position(|l| *l == format!("END:{name}"))
        .unwrap()
        + start;
    lines[start..=end].to_vec()
}

/// The UTC offset the file's VTIMEZONE gives at a local time (`YYYYMMDDTHHMMSS`):
/// the observance with the latest onset at or before it.
fn offset_at(lines: &[String], local: &str) -> String {
    let tz = block(lines, "VTIMEZONE");
    let mut best: Option<(String, String)> = None;
    let mut onset = String::new();
    for l in &tz {
        if let Some(v) = l.strip_prefix("DTSTART:") {
            onset = v.to_owned();
        }
        if let Some(v) = l.strip_prefix("TZOFFSETTO:")
            && onset.as_str() <= local
            && best.as_ref().is_none_or(|(b, _)| onset > *b)
        {
            best = Some((onset.clone(), v.to_owned()));
        }
    }
    best.expect("an observance before the event").1
}

/// `2027-03-16T09:00:00-04:00` → (`20270316T090000`, `-0400`).
fn local_and_offset(rfc3339: &str) -> (String, String) {
    let (local, offset) = rfc3339.split_at(19);
    (local.replace(['-', ':'], ""), offset.replace(':', ""))
}

fn check_structure(body: &str) {
    assert!(body.ends_with("\r\n"), "CRLF at the end");
    assert!(
        !body.replace("\r\n", "").contains('\n'),
        "only CRLF line ends"
    );
    for line in body.split("\r\n") {
        assert!(line.len() <= 75, "a line longer than 75 octets: {line:?}");
    }
    let lines = unfold(body);
    assert_eq!(lines.first().unwrap(), "BEGIN:VCALENDAR");
    assert_eq!(lines.last().unwrap(), "END:VCALENDAR");
    for name in ["VCALENDAR", "VTIMEZONE", "VEVENT"] {
        let begins = lines
            .iter()
            .filter(|l| **l == format!("BEGIN:{name}"))
            .count();
        let ends = lines
            .iter()
            .filter(|l| **l == format!("END:{name}"))
            .count();
        assert_eq!((begins, ends), (1, 1), "{name} opened and closed once");
    }
    assert_eq!(prop(&lines, "VERSION"), "2.0");
    assert!(prop(&lines, "PRODID").contains("irflow"));
    assert_eq!(prop(&lines, "METHOD"), "PUBLISH");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_file_follows_the_appointment_across_daylight_saving_changes() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let cohen = app.case_of("Cohen").await;

    // Booked after the March 2027 change: New York is on EDT, UTC-4.
    let booked = book_from(&app, &sched, cohen, "2027-03-16").await;
    let start = booked["start"].as_str().unwrap();
    assert!(
        start.starts_with("2027-03-") && start.ends_with("-04:00"),
        "{start}"
    );
    let (status, content_type, body) = ics(&app, &sched, cohen, "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/calendar; charset=utf-8");
    check_structure(&body);
    assert!(
        body.split("\r\n").any(|l| l.starts_with(' ')),
        "the description is long enough to be folded"
    );
    let lines = unfold(&body);
    let event = block(&lines, "VEVENT");
    let (local, offset) = local_and_offset(start);
    assert_eq!(offset, "-0400");
    assert_eq!(
        prop(&event, "DTSTART"),
        local,
        "DTSTART in the site's local time"
    );
    assert!(
        event
            .iter()
            .any(|l| *l == format!("DTSTART;TZID=America/New_York:{local}")),
        "{event:#?}"
    );
    assert_eq!(
        offset_at(&lines, &local),
        "-0400",
        "the VTIMEZONE puts it on EDT"
    );
    let (end_local, _) = local_and_offset(booked["end"].as_str().unwrap());
    assert_eq!(prop(&event, "DTEND"), end_local);
    assert_eq!(prop(&event, "STATUS"), "CONFIRMED");
    let uid = prop(&event, "UID");
    assert_eq!(
        uid,
        format!("irflow-case-{cohen}-appointment@irflow.localhost")
    );
    let sequence: i64 = prop(&event, "SEQUENCE").parse().unwrap();
    assert!(prop(&event, "DTSTAMP").ends_with('Z'));
    // The arrival time (15 minutes early) and the phone number, escaped as TEXT.
    let arrive: jiff::Timestamp = booked["arrive_by"].as_str().unwrap().parse().unwrap();
    let arrive_clock = arrive
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .strftime("%-I:%M %p")
        .to_string();
    let description = prop(&event, "DESCRIPTION");
    assert!(
        description.contains(&format!("Please arrive by {arrive_clock}")),
        "{description}"
    );
    assert!(description.contains("617-726-6773"), "{description}");
    assert!(
        description.contains("Questions\\, or to change or cancel"),
        "commas escaped: {description}"
    );
    assert!(
        description.contains("\\n"),
        "newlines escaped: {description}"
    );
    assert!(prop(&event, "LOCATION").starts_with("Spine Injection Service"));
    assert!(!prop(&event, "SUMMARY").is_empty());
    assert!(
        !body.contains("Cohen") && !body.contains("David"),
        "no patient name in a calendar file"
    );
    let alarm = block(&event, "VALARM");
    assert_eq!(prop(&alarm, "ACTION"), "DISPLAY");
    assert_eq!(prop(&alarm, "TRIGGER"), "-P1D");

    // Moved past the November 2027 change: EST, UTC-5; the same event, a newer revision.
    let moved = move_from(&app, &sched, cohen, "2027-11-09").await;
    let start = moved["start"].as_str().unwrap();
    assert!(
        start.starts_with("2027-11-") && start.ends_with("-05:00"),
        "{start}"
    );
    let (status, _, body) = ics(&app, &sched, cohen, "").await;
    assert_eq!(status, 200);
    check_structure(&body);
    let lines = unfold(&body);
    let event = block(&lines, "VEVENT");
    let (local, offset) = local_and_offset(start);
    assert_eq!(offset, "-0500");
    assert_eq!(prop(&event, "DTSTART"), local);
    assert_eq!(
        offset_at(&lines, &local),
        "-0500",
        "the VTIMEZONE puts it on EST"
    );
    assert_eq!(prop(&event, "UID"), uid, "one event per case");
    let moved_sequence: i64 = prop(&event, "SEQUENCE").parse().unwrap();
    assert!(moved_sequence > sequence, "{moved_sequence} > {sequence}");

    // Spanish on request.
    let (status, _, body) = ics(&app, &sched, cohen, "?lang=es").await;
    assert_eq!(status, 200);
    assert!(
        prop(&unfold(&body), "DESCRIPTION").contains("Llegue a las"),
        "{body}"
    );
    let (status, _, _) = ics(&app, &sched, cohen, "?lang=fr").await;
    assert_eq!(status, 400);

    // Cancelled: the same event, cancelled, with a newer revision and no reminder.
    let r = reqwest::Client::new()
        .delete(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"reason": "patient feels better"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (status, _, body) = ics(&app, &sched, cohen, "").await;
    assert_eq!(status, 200);
    let lines = unfold(&body);
    let event = block(&lines, "VEVENT");
    assert_eq!(prop(&event, "STATUS"), "CANCELLED");
    assert_eq!(prop(&event, "UID"), uid);
    let cancelled_sequence: i64 = prop(&event, "SEQUENCE").parse().unwrap();
    assert!(cancelled_sequence > moved_sequence);
    assert!(!body.contains("VALARM"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_file_is_refused_clearly_and_every_read_is_audited() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // Never booked: 404 with a message that says why.
    let garcia = app.case_of("García López").await;
    let (status, _, body) = ics(&app, &nurse, garcia, "").await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no appointment yet"),
        "{v}"
    );
    // A booked case, for a nurse (any role that reads the case).
    let williams = app.case_of("Williams").await;
    let (status, _, body) = ics(&app, &nurse, williams, "").await;
    assert_eq!(status, 200, "{body}");
    check_structure(&body);
    // Another referrer's case is "not found"; no token is 401; a bad id is 400.
    let referrer = app.token_for("referrer").await;
    let (status, _, _) = ics(&app, &referrer, williams, "").await;
    assert_eq!(status, 404, "Williams was referred by referrer2");
    let r = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{williams}/appointment.ics")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = reqwest::Client::new()
        .get(app.at("/api/v1/cases/abc/appointment.ics"))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Staff download it from the case page too (signed in).
    let client = app.signed_in("scheduler").await;
    let r = client
        .get(app.at(&format!("/cases/{williams}/appointment.ics")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains(".ics")
    );
    // Documented in the OpenAPI description, with the patient-link endpoints.
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/cases/{id}/appointment.ics",
        "/api/v1/cases/{id}/patient-link",
        "/api/v1/cases/{id}/patient-responses",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    // Audited: the nurse's read, the referrer's refused one.
    let events = app
        .store
        .list_audit(
            &irflow_domain::Actor::system("test"),
            &irflow_store::AuditFilter {
                entity_id: Some(williams.to_string()),
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.actor_username == "nurse"
            && e.entity_type == "appointment"
            && e.outcome.as_str() == "success"
            && e.detail.as_deref() == Some("calendar file")),
        "{events:#?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e.actor_username == "referrer" && e.outcome.as_str() == "denied"),
        "{events:#?}"
    );
    app.stop().await;
}

/// The plain-text instructions of a case, in English.
async fn letter_text(app: &App, token: &str, case: i64) -> String {
    let r = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}/instructions?lang=en")))
        .bearer_auth(token)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_calendar_file_names_the_procedure_and_the_scan_as_the_letters_do() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let scheduler = app.token_for("scheduler").await;
    // In Spanish: the procedure's name from letters/default/es/procedures.toml, as the
    // letters name it, in the summary and the alarm; one period after "a. m.".
    let williams = app.case_of("Williams").await;
    let (_, case) = get_json(&app, &nurse, &format!("/api/v1/cases/{williams}")).await;
    let code = case["procedure"]["code"]
        .as_str()
        .or_else(|| case["procedure_code"].as_str())
        .unwrap()
        .to_owned();
    let names: toml::Table =
        toml::from_str(include_str!("../../../letters/default/es/procedures.toml")).unwrap();
    let spanish = names[&code].as_str().unwrap();
    let (status, _, body) = ics(&app, &nurse, williams, "?lang=es").await;
    assert_eq!(status, 200, "{body}");
    check_structure(&body);
    let lines = unfold(&body);
    assert_eq!(prop(&lines, "SUMMARY"), spanish.replace(',', "\\,"));
    let alarm = block(&lines, "VALARM");
    let alarm_text = prop(&alarm, "DESCRIPTION");
    assert!(
        alarm_text.starts_with(&format!("Mañana: {spanish} a las ")),
        "{alarm_text}"
    );
    assert!(!body.contains(".."), "no double period: {body}");
    assert!(alarm_text.ends_with(" m."), "{alarm_text}");
    let (_, _, english) = ics(&app, &nurse, williams, "?lang=en").await;
    assert_ne!(prop(&unfold(&english), "SUMMARY"), prop(&lines, "SUMMARY"));

    // "Bring your scan" only when the letters ask for it: before and after a recent
    // MRI of her neck is on file.
    let description = |body: &str| prop(&unfold(body), "DESCRIPTION");
    let (_, _, before) = ics(&app, &nurse, williams, "?lang=en").await;
    assert!(
        description(&before).contains("Bring your most recent MRI or CT"),
        "{before}"
    );
    assert!(
        letter_text(&app, &nurse, williams)
            .await
            .contains("Bring your latest MRI or CT scan")
    );
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let today = jiff::Timestamp::now().to_zoned_datetime(tz).date();
    let patient = &case["patient"];
    let mut study = common::dicom::Study::new(
        &format!(
            "{}^{}",
            patient["family_name"].as_str().unwrap().to_uppercase(),
            patient["given_name"].as_str().unwrap().to_uppercase()
        ),
        "OUTSIDE-77",
        patient["date_of_birth"].as_str().unwrap().parse().unwrap(),
        today - jiff::Span::new().days(20),
    );
    study.body_part = "CSPINE".to_owned();
    study.description = "MRI C-SPINE W/O".to_owned();
    let zipped = common::dicom::zip(&study.series(1, 1, 48, 64));
    let boundary = "irflowicstestboundary";
    let mut upload = Vec::new();
    upload.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"mri.zip\"\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        .as_bytes(),
    );
    upload.extend_from_slice(&zipped);
    upload.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{williams}/imaging")))
        .bearer_auth(&scheduler)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(upload)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert!(
        letter_text(&app, &nurse, williams)
            .await
            .contains("We already have your latest MRI or CT scan")
    );
    let (_, _, after) = ics(&app, &nurse, williams, "?lang=en").await;
    check_structure(&after);
    assert!(
        description(&after).contains("We already have your latest MRI or CT of the spine"),
        "{after}"
    );
    assert!(!description(&after).contains("Bring your"), "{after}");
    let (_, _, spanish_after) = ics(&app, &nurse, williams, "?lang=es").await;
    assert!(
        description(&spanish_after).contains("Ya tenemos"),
        "{spanish_after}"
    );

    app.stop().await;
}
