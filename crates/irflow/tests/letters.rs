//! Patient letters over HTTP: the preparation and discharge instructions of real demo
//! cases, in English and Spanish, as a print-ready page and as plain text; their
//! dates checked against the appointment and the rule pack; their reading level;
//! who may read them, and the audit trail. Also the template directory setting, from
//! the HTTP edge and from the binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use irflow_domain::screening::Hold;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, ZonedDateTime};
use serde_json::{Value, json};

const NY: &str = "America/New_York";

struct Reply {
    status: u16,
    content_type: String,
    language: String,
    csp: String,
    body: String,
}

async fn fetch(app: &App, token: &str, path: &str, accept: Option<&str>) -> Reply {
    let mut req = reqwest::Client::new().get(app.at(path)).bearer_auth(token);
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let r = req.send().await.unwrap();
    let header = |name: &str| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    Reply {
        status: r.status().as_u16(),
        content_type: header("content-type"),
        language: header("content-language"),
        csp: header("content-security-policy"),
        body: r.text().await.unwrap(),
    }
}

async fn text(app: &App, token: &str, path: &str) -> String {
    let r = fetch(app, token, path, Some("text/plain")).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    assert!(
        r.content_type.starts_with("text/plain"),
        "{}",
        r.content_type
    );
    r.body
}

async fn json_get(app: &App, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.json().await.unwrap()
}

async fn json_post(app: &App, token: &str, path: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.at(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn zone() -> TimeZone {
    TimeZone::get(NY).unwrap()
}

fn local(raw: &str) -> ZonedDateTime {
    raw.parse::<Timestamp>().unwrap().to_zoned_datetime(zone())
}

// The expected wording, written out here independently of the letters crate.
fn en_date(d: Date) -> String {
    d.strftime("%A, %B %-d, %Y").to_string()
}

fn en_time(z: &ZonedDateTime) -> String {
    z.strftime("%-I:%M %p").to_string()
}

fn es_date(d: Date) -> String {
    let days = [
        "lunes",
        "martes",
        "miércoles",
        "jueves",
        "viernes",
        "sábado",
        "domingo",
    ];
    let months = [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ];
    format!(
        "{}, {} de {} de {}",
        days[usize::try_from(d.weekday().to_monday_zero_offset()).unwrap()],
        d.day(),
        months[usize::try_from(d.month() - 1).unwrap()],
        d.year()
    )
}

fn es_time(z: &ZonedDateTime) -> String {
    format!("{}:{:02}", z.hour(), z.minute())
}

/// The apixaban hold and restart for a procedure, from the default rule pack.
fn apixaban_rule(procedure: &str) -> (i64, i64) {
    let pack = irflow_rules::default_pack().unwrap();
    let class = pack
        .procedures
        .iter()
        .find(|p| p.code == procedure)
        .unwrap()
        .class;
    let rule = pack.drugs.iter().find(|d| d.drug == "apixaban").unwrap();
    let Hold::Days(days) = rule.hold.get(class) else {
        panic!("apixaban holds for days before {procedure}");
    };
    let restart = rule.restart_hours.get(class).unwrap();
    (i64::from(days), i64::from(restart))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apixaban_patient_reads_his_arrival_and_hold_dates_in_english_and_spanish() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // George Sullivan (demo): apixaban, cleared by his cardiologist, booked.
    let case = app.case_of("Sullivan").await;
    let appointment = json_get(&app, &nurse, &format!("/api/v1/cases/{case}/appointment")).await;
    let start = local(appointment["start"].as_str().unwrap());
    let end = local(appointment["end"].as_str().unwrap());
    let arrive = start
        .timestamp()
        .checked_sub(SignedDuration::from_mins(15))
        .unwrap()
        .to_zoned_datetime(zone());
    let (hold_days, restart_hours) = apixaban_rule("64483");
    let last_dose = start
        .date()
        .checked_sub(Span::new().days(hold_days))
        .unwrap();
    let restart = end
        .timestamp()
        .checked_add(SignedDuration::from_hours(restart_hours))
        .unwrap()
        .to_zoned_datetime(zone());

    let en = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/instructions?lang=en"),
    )
    .await;
    for expected in [
        "Dear George,".to_owned(),
        format!("- Day: {}", en_date(start.date())),
        format!(
            "- Arrive by: {}. Come 15 minutes early to check in.",
            en_time(&arrive)
        ),
        format!("- Start time: {}", en_time(&start)),
        "- Phone: 617-726-6773".to_owned(),
        "Apixaban".to_owned(),
        "- Your prescriber has agreed that you can stop it for a short time.".to_owned(),
        format!(
            "- Take your last dose on {}. Then stop.",
            en_date(last_dose)
        ),
        format!(
            "- Start it again on {} at {}",
            en_date(restart.date()),
            en_time(&restart)
        ),
        "Bring your latest MRI or CT scan of the spine.".to_owned(),
        "Do not take pain medicine before you come.".to_owned(),
        "live X-ray pictures (fluoroscopy)".to_owned(),
        "A headache from the spine (spinal headache)".to_owned(),
    ] {
        assert!(en.contains(&expected), "{expected:?} in\n{en}");
    }

    let es = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/instructions?lang=es"),
    )
    .await;
    for expected in [
        "Estimado(a) George:".to_owned(),
        format!("- Día: {}", es_date(start.date())),
        format!(
            "- Hora de llegada: {}. Venga 15 minutos antes",
            es_time(&arrive)
        ),
        format!("- Hora de inicio: {}", es_time(&start)),
        "Apixaban".to_owned(),
        "- El médico que se lo receta ya aceptó que lo suspenda".to_owned(),
        format!(
            "- Tome su última dosis el {}. Después, suspéndalo.",
            es_date(last_dose)
        ),
        format!("- Vuelva a tomarlo el {}, a ", es_date(restart.date())),
        "Inyección en la raíz nerviosa de la parte baja de la espalda".to_owned(),
    ] {
        assert!(es.contains(&expected), "{expected:?} in\n{es}");
    }
    assert!(
        es.contains(&es_time(&restart)),
        "restart time in Spanish:\n{es}"
    );

    let discharge_en = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/discharge-instructions?lang=en"),
    )
    .await;
    for expected in [
        format!(
            "- Apixaban: start it again on {} at {}, unless your doctor tells you something else.",
            en_date(restart.date()),
            en_time(&restart)
        ),
        "- Take it easy for the rest of the day.".to_owned(),
        format!(
            "until {}",
            en_date(start.date().checked_add(Span::new().days(7)).unwrap())
        ),
        "Go to the emergency room right away (or call 911) if you have:".to_owned(),
        "A headache that is worse when you sit or stand".to_owned(),
        format!(
            "We will call you around {}",
            en_date(start.date().checked_add(Span::new().days(14)).unwrap())
        ),
    ] {
        assert!(
            discharge_en.contains(&expected),
            "{expected:?} in\n{discharge_en}"
        );
    }
    let discharge_es = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/discharge-instructions?lang=es"),
    )
    .await;
    assert!(
        discharge_es.contains(&format!(
            "- Apixaban: vuelva a tomarlo el {}, a",
            es_date(restart.date())
        )),
        "{discharge_es}"
    );
    assert!(
        discharge_es.contains("Vaya a la sala de emergencias"),
        "{discharge_es}"
    );

    // The default is the print-ready page: the letterhead, the stylesheet allowed by
    // its hash, no scripts, no navigation.
    let page = fetch(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/instructions?lang=es"),
        None,
    )
    .await;
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/html"),
        "{}",
        page.content_type
    );
    assert_eq!(page.language, "es");
    assert!(page.body.starts_with("<!DOCTYPE html>"));
    assert!(page.body.contains("<html lang=\"es\">"));
    assert!(
        page.body
            .contains("<p class=\"department\">Spine Injection Service</p>")
    );
    assert!(page.body.contains("@media print"));
    assert!(!page.body.contains("<script"));
    assert!(!page.body.contains("<nav"));
    assert!(page.csp.contains("style-src 'sha256-"), "{}", page.csp);
    assert!(page.csp.contains("default-src 'none'"), "{}", page.csp);
    assert!(page.body.contains(&format!(
        "<li><strong>Día:</strong> {}</li>",
        es_date(start.date())
    )));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_preferred_language_is_the_default_and_bad_requests_are_refused() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // María García López prefers Spanish; she is not booked yet.
    let garcia = app.case_of("García López").await;
    let r = fetch(
        &app,
        &nurse,
        &format!("/api/v1/cases/{garcia}/instructions"),
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.language, "es");
    assert!(r.body.contains("Estimado(a) María:"), "{}", r.body);
    assert!(
        r.body
            .contains("Le llamaremos para fijar el día y la hora."),
        "{}",
        r.body
    );
    // Linh Nguyen prefers Vietnamese, which letters are not written in: English.
    let nguyen = app.case_of("Nguyen").await;
    let r = fetch(
        &app,
        &nurse,
        &format!("/api/v1/cases/{nguyen}/instructions"),
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.language, "en");
    assert!(r.body.contains("Dear Linh,"), "{}", r.body);
    // An explicit language wins over the preference.
    let r = fetch(
        &app,
        &nurse,
        &format!("/api/v1/cases/{garcia}/instructions?lang=en"),
        Some("text/plain"),
    )
    .await;
    assert!(r.body.contains("Dear María,"), "{}", r.body);
    // A browser's Accept gets HTML.
    let r = fetch(
        &app,
        &nurse,
        &format!("/api/v1/cases/{garcia}/instructions"),
        Some("text/html,application/xhtml+xml,*/*;q=0.8"),
    )
    .await;
    assert!(r.content_type.starts_with("text/html"));

    for (path, status, needle) in [
        (
            format!("/api/v1/cases/{garcia}/instructions?lang=fr"),
            400,
            "use en (English) or es (Spanish)",
        ),
        (
            format!("/api/v1/cases/{garcia}/discharge-instructions?lang=xx"),
            400,
            "use en (English) or es (Spanish)",
        ),
        ("/api/v1/cases/abc/instructions".to_owned(), 400, "case"),
        (
            "/api/v1/cases/999999/instructions".to_owned(),
            404,
            "no case",
        ),
    ] {
        let r = fetch(&app, &nurse, &path, None).await;
        assert_eq!(r.status, status, "{path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["error"]["status"], status);
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{path}: {v}"
        );
    }
    let anonymous = reqwest::get(app.at(&format!("/api/v1/cases/{garcia}/instructions")))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Both endpoints are documented, with the languages letters are written in.
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/cases/{id}/instructions",
        "/api/v1/cases/{id}/discharge-instructions",
    ] {
        let get = &doc["paths"][path]["get"];
        assert!(get.is_object(), "{path} documented");
        let lang = get["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "lang")
            .unwrap();
        let documented: Vec<&str> = lang["schema"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(documented, irflow_letters::Lang::ALL.map(|l| l.as_str()));
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_read_only_their_own_patients_letters_and_every_read_is_audited() {
    let app = App::start().await;
    let case = app.case_of("Sullivan").await;
    // Sullivan was referred by `referrer`, not `referrer2`.
    let own = app.token_for("referrer").await;
    let other = app.token_for("referrer2").await;
    let r = fetch(
        &app,
        &own,
        &format!("/api/v1/cases/{case}/instructions?lang=en"),
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for path in [
        format!("/api/v1/cases/{case}/instructions?lang=en"),
        format!("/api/v1/cases/{case}/discharge-instructions"),
    ] {
        let r = fetch(&app, &other, &path, Some("text/plain")).await;
        assert_eq!(
            r.status, 404,
            "another referrer's case is not found: {}",
            r.body
        );
        assert!(!r.body.contains("Sullivan") && !r.body.contains("George"));
    }

    let admin = app.token_for("admin").await;
    let events = json_get(
        &app,
        &admin,
        &format!("/api/v1/audit?entity_type=letter&entity_id={case}"),
    )
    .await;
    let events = events["events"].as_array().unwrap();
    let ok = events
        .iter()
        .find(|e| e["actor"]["username"] == "referrer" && e["outcome"] == "success")
        .unwrap_or_else(|| panic!("the referrer's read is audited: {events:?}"));
    assert_eq!(ok["action"], "read");
    assert_eq!(ok["detail"], "kind=instructions lang=en");
    let refused: Vec<&Value> = events
        .iter()
        .filter(|e| e["actor"]["username"] == "referrer2")
        .collect();
    assert_eq!(refused.len(), 2, "{events:?}");
    assert!(refused.iter().all(|e| e["outcome"] == "not_found"));
    let denied = json_get(
        &app,
        &admin,
        &format!("/api/v1/audit?entity_type=case&entity_id={case}&outcome=denied"),
    )
    .await;
    assert!(
        denied["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"]["username"] == "referrer2"),
        "{denied}"
    );
    app.stop().await;
}

/// Screens a case with the given facts, clears its actions, and books its first slot.
async fn screen_clear_and_book(app: &App, case: i64, facts: Value) -> Value {
    let nurse = app.token_for("nurse").await;
    let scheduler = app.token_for("scheduler").await;
    let (status, screening) = json_post(
        app,
        &nurse,
        &format!("/api/v1/cases/{case}/screening"),
        facts,
    )
    .await;
    assert_eq!(status, 200, "{screening}");
    for action in screening["actions"].as_array().unwrap() {
        let (status, v) = json_post(
            app,
            &nurse,
            &format!("/api/v1/cases/{case}/actions/{}", action["id"]),
            json!({"cleared": true, "decided_by": "Dr. Ruth Adler, radiology"}),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let slots = json_get(
        app,
        &scheduler,
        &format!("/api/v1/cases/{case}/slots?limit=1"),
    )
    .await;
    let slot = &slots["slots"][0];
    let (status, booked) = json_post(
        app,
        &scheduler,
        &format!("/api/v1/cases/{case}/appointment"),
        json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]}),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    booked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn english_letters_read_at_grade_eight_or_below_for_many_kinds_of_patient() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // Aisha Rahman: a contrast allergy (premedication with exact times), diabetes on
    // insulin, and no one to drive her home.
    let rahman = app.case_of("Rahman").await;
    let booked = screen_clear_and_book(
        &app,
        rahman,
        json!({"contrast_allergy": {"severity": "mild"}, "diabetes": {"insulin": true}, "escort_available": false}),
    )
    .await;
    let start = local(booked["start"].as_str().unwrap());
    let pack = irflow_rules::default_pack().unwrap();
    let regimen = pack
        .contrast
        .regimens
        .iter()
        .find(|r| r.meta.id == pack.contrast.default_regimen)
        .unwrap();
    let letter = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{rahman}/instructions?lang=en"),
    )
    .await;
    for step in &regimen.steps {
        let at = start
            .timestamp()
            .checked_sub(SignedDuration::from_hours(i64::from(step.hours_before)))
            .unwrap()
            .to_zoned_datetime(zone());
        let line = format!(
            "- {} at {}: {}",
            en_date(at.date()),
            en_time(&at),
            step.what
        );
        assert!(letter.contains(&line), "{line:?} in\n{letter}");
    }
    assert!(letter.contains("Change your insulin"), "{letter}");
    assert!(
        letter.contains("You told us no one can drive you home. We will watch you for 60 minutes"),
        "{letter}"
    );

    // David Cohen: diabetes without insulin, mild symptoms, an NSAID with no hold.
    // Linh Nguyen: antibiotics for an infection, deferred. María García López: nothing
    // screened yet. George Sullivan: apixaban.
    let mut measured = 0;
    for family in ["Rahman", "Cohen", "Nguyen", "García López", "Sullivan"] {
        let case = app.case_of(family).await;
        for kind in ["instructions", "discharge-instructions"] {
            let letter = text(
                &app,
                &nurse,
                &format!("/api/v1/cases/{case}/{kind}?lang=en"),
            )
            .await;
            let grade = irflow_letters::flesch_kincaid_grade(&letter);
            assert!(
                grade <= 8.0,
                "{family} {kind}: Flesch-Kincaid grade {grade:.1}\n{letter}"
            );
            assert!(grade > 0.0, "a real letter was measured");
            measured += 1;
        }
    }
    assert_eq!(measured, 10);
    let cohen = app.case_of("Cohen").await;
    let letter = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{cohen}/instructions?lang=en"),
    )
    .await;
    assert!(
        letter.contains("Check it more often for several days"),
        "{letter}"
    );
    assert!(!letter.contains("Change your insulin"), "{letter}");
    let nguyen = app.case_of("Nguyen").await;
    let letter = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{nguyen}/instructions?lang=en"),
    )
    .await;
    assert!(
        letter.contains("You told us you took antibiotics for an infection."),
        "{letter}"
    );
    assert!(
        letter.contains("less than 10 days before your visit"),
        "{letter}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_the_prescriber_declined_is_never_told_to_the_patient_as_a_stop() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // Robert Johnson takes apixaban; before the cardiologist answers, his letter asks
    // him to ask; when the cardiologist says no, it tells him to keep taking it.
    let johnson = app.case_of("Johnson").await;
    let (status, screening) = json_post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{johnson}/screening"),
        json!({"medications": [{"drug": "apixaban"}], "escort_available": true}),
    )
    .await;
    assert_eq!(status, 200, "{screening}");
    let letter = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{johnson}/instructions?lang=en"),
    )
    .await;
    assert!(
        letter.contains(
            "Ask your prescriber (the doctor who gave it to you) if it is safe to stop it"
        ),
        "{letter}"
    );
    assert!(
        letter.contains("We will tell you the day of your last dose once your visit is set."),
        "not booked: no date yet\n{letter}"
    );
    let action = screening["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "prescriber_clearance")
        .unwrap()["id"]
        .clone();
    let (status, v) = json_post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{johnson}/actions/{action}"),
        json!({"cleared": false, "decided_by": "Dr. Lee, cardiology", "notes": "Recent stroke: do not stop apixaban."}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    for (kind, lang, expected, absent) in [
        (
            "instructions",
            "en",
            "Your prescriber asked you to keep taking it. Do not stop it.",
            "last dose",
        ),
        (
            "instructions",
            "es",
            "le pidió que siga tomándolo. No lo suspenda.",
            "última dosis",
        ),
        (
            "discharge-instructions",
            "en",
            "- Apixaban: keep taking it as usual.",
            "start it again",
        ),
    ] {
        let letter = text(
            &app,
            &nurse,
            &format!("/api/v1/cases/{johnson}/{kind}?lang={lang}"),
        )
        .await;
        assert!(letter.contains(expected), "{expected:?} in\n{letter}");
        assert!(!letter.contains(absent), "{absent:?} not in\n{letter}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_print_from_the_case_page() {
    let app = App::start().await;
    let case = app.case_of("Sullivan").await;
    let browser = app.signed_in("scheduler").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for link in [
        format!("/cases/{case}/instructions?lang=en"),
        format!("/cases/{case}/instructions?lang=es"),
        format!("/cases/{case}/discharge-instructions?lang=en"),
        format!("/cases/{case}/discharge-instructions?lang=es"),
    ] {
        assert!(page.contains(&format!("href=\"{link}\"")), "{link}");
        let r = browser.get(app.at(&link)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{link}");
        let html = r.text().await.unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"), "{link}");
        assert!(html.contains("George"), "{link}");
    }
    let r = browser
        .get(app.at(&format!("/cases/{case}/instructions?lang=de")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Not signed in: to the sign-in page.
    let r = common::browser()
        .get(app.at(&format!("/cases/{case}/instructions")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    app.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn default_letters() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../letters/default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_edits_its_own_copy_of_the_templates() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&default_letters(), dir.path());
    let path = dir.path().join("en/instructions.md");
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replace(
            "This letter tells you how to get ready.",
            "Park in the Fruit Street garage.",
        ),
    )
    .unwrap();
    let app = App::start_with(irflow_server::ServerConfig {
        cookie_secure: false,
        letters_dir: Some(dir.path().to_path_buf()),
        department_address: "100 Main Street, Springfield".to_owned(),
        ..Default::default()
    })
    .await;
    let nurse = app.token_for("nurse").await;
    let case = app.case_of("Sullivan").await;
    let letter = text(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/instructions?lang=en"),
    )
    .await;
    assert!(
        letter.contains("Park in the Fruit Street garage."),
        "{letter}"
    );
    assert!(letter.contains("100 Main Street, Springfield"), "{letter}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_template_stops_the_server_at_start_naming_the_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&default_letters(), dir.path().join("letters").as_path());
    std::fs::write(
        dir.path().join("letters/es/discharge.md"),
        "# Después\n\nHola {{ patient.nombre }}.\n",
    )
    .unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_CONFIG")
        .env("IRFLOW_LETTERS_DIR", dir.path().join("letters"))
        .env("IRFLOW_LOG_LEVEL", "warn")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("es/discharge.md, line 3"), "{stderr}");
    assert!(stderr.contains("IRFLOW_LETTERS_DIR"), "{stderr}");
}
