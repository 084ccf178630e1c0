//! The patient link, over HTTP as a patient's browser uses it (cookies, no staff
//! sign-in): staff create it (and send it through the outbox), the patient confirms
//! their date of birth (wrong ones refused with the tries left, locked after five),
//! sees the appointment and instructions, downloads the calendar file, confirms or
//! asks to cancel (staff see it), and everything is audited without the secret.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, browser};
use serde_json::{Value, json};

/// Staff make a link; returns the answer (`url`, `message_id`, `link`).
async fn create_link(app: &App, token: &str, case: i64, channel: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/patient-link")))
        .bearer_auth(token)
        .json(&json!({ "channel": channel }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn get_json(app: &App, token: &str, path: &str) -> Value {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

/// The patient's browser opens the link: (status, page).
async fn open(patient: &reqwest::Client, url: &str) -> (u16, String) {
    let r = patient.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Types a date of birth into the form on `page`: (status, page, Set-Cookie values, Location).
async fn enter_dob(
    patient: &reqwest::Client,
    url: &str,
    page: &str,
    (year, month, day): (&str, &str, &str),
) -> (u16, String, Vec<String>, Option<String>) {
    let r = patient
        .post(url)
        .form(&[
            ("csrf", field(page, "csrf").as_str()),
            ("lang", field(page, "lang").as_str()),
            ("month", month),
            ("day", day),
            ("year", year),
        ])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let cookies = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let location = r
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, r.text().await.unwrap(), cookies, location)
}

/// Opens the link and passes the date-of-birth check; returns the appointment page.
async fn sign_in_as_patient(
    patient: &reqwest::Client,
    url: &str,
    dob: (&str, &str, &str),
) -> String {
    let (status, page) = open(patient, url).await;
    assert_eq!(status, 200, "{page}");
    let (status, body, _, location) = enter_dob(patient, url, &page, dob).await;
    assert_eq!(status, 303, "{body}");
    assert!(location.unwrap().starts_with("/p/"));
    let (status, page) = open(patient, url).await;
    assert_eq!(status, 200);
    page
}

fn token_of(url: &str) -> String {
    url.rsplit("/p/").next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_opens_their_link_confirms_and_asks_to_cancel() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    // Patricia Williams (born 1967-04-18) is booked.
    let williams = app.case_of("Williams").await;
    let appointment = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/appointment"),
    )
    .await;

    // No email on file: email is refused with the reason; nothing is made.
    let (status, v) = create_link(&app, &sched, williams, "email").await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no email address"),
        "{v}"
    );
    let (status, v) = create_link(&app, &sched, williams, "carrier pigeon").await;
    assert_eq!(status, 422, "{v}");
    // A radiologist may not send links.
    let radiologist = app.token_for("radiologist").await;
    let (status, _) = create_link(&app, &radiologist, williams, "none").await;
    assert_eq!(status, 403);
    let links = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/patient-link"),
    )
    .await;
    assert_eq!(
        links["links"].as_array().unwrap().len(),
        0,
        "refusals made nothing"
    );

    // By text message: a link in the outbox; the URL is shown once, to staff.
    let (status, v) = create_link(&app, &sched, williams, "sms").await;
    assert_eq!(status, 201, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&format!("{}/p/", app.url)), "{url}");
    let message_id = v["message_id"].as_i64().expect("a message in the outbox");
    let link_id = v["link"]["id"].as_i64().unwrap();
    let message = app
        .store
        .message(irflow_store::outbox::MessageId::new(message_id))
        .await
        .unwrap();
    assert!(
        message.body_text.contains(&url),
        "the text carries the link"
    );
    assert_eq!(message.recipient, "508-555-0112");
    let links = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/patient-link"),
    )
    .await;
    assert_eq!(links["links"][0]["status"], "active");
    assert!(
        links["links"][0].get("url").is_none(),
        "the secret is never listed"
    );
    // It works until 30 days after the appointment.
    let expires: jiff::Timestamp = links["links"][0]["expires_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let start: jiff::Timestamp = appointment["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(expires - start, jiff::SignedDuration::from_hours(24 * 30));

    // The patient's browser: the date-of-birth form, in English (her language).
    let patient = browser();
    let (status, page) = open(&patient, &url).await;
    assert_eq!(status, 200);
    assert!(page.contains("Your date of birth") && page.contains("id=\"dob-year\""));
    assert!(
        !page.contains("Williams") && !page.contains("Patricia"),
        "nothing before the check"
    );
    // Wrong: refused, with the tries left.
    let (status, page, _, _) = enter_dob(&patient, &url, &page, ("1967", "4", "19")).await;
    assert_eq!(status, 422);
    assert!(
        page.contains("does not match") && page.contains("You have 4 tries left"),
        "{page}"
    );
    // Not a date: said so, not counted.
    let (status, page, _, _) = enter_dob(&patient, &url, &page, ("67", "4", "18")).await;
    assert_eq!(status, 422);
    assert!(page.contains("real date"), "{page}");
    // Right: a session cookie, HttpOnly and SameSite=Strict, and the appointment.
    let (status, _, cookies, location) =
        enter_dob(&patient, &url, &page, ("1967", "04", "18")).await;
    assert_eq!(status, 303);
    assert_eq!(
        location.as_deref(),
        Some(format!("/p/{}?lang=en", token_of(&url)).as_str())
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("irflow_patient="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let (status, page) = open(&patient, &url).await;
    assert_eq!(status, 200);
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let arrive: jiff::Timestamp = appointment["arrive_by"].as_str().unwrap().parse().unwrap();
    let arrive_clock = arrive
        .to_zoned_datetime(tz.clone())
        .strftime("%-I:%M %p")
        .to_string();
    let start_clock = start
        .to_zoned_datetime(tz.clone())
        .strftime("%-I:%M %p")
        .to_string();
    let day = start
        .to_zoned_datetime(tz.clone())
        .strftime("%B %-d, %Y")
        .to_string();
    assert!(page.contains("Hello, Patricia"), "{page}");
    assert!(
        page.contains(&format!(
            "id=\"patient-arrive\" class=\"p-strong\">{arrive_clock}<"
        )),
        "{page}"
    );
    assert!(
        page.contains(&format!("id=\"patient-start\">{start_clock}<")),
        "{page}"
    );
    assert!(page.contains(&day), "{day} in {page}");
    assert!(
        page.contains("id=\"patient-instructions\""),
        "instructions shown"
    );
    assert!(
        !page.contains("Your instructions are not ready yet"),
        "the letter was composed: {page}"
    );
    // The calendar file, for the patient's own appointment.
    let r = patient
        .get(format!("{url}/appointment.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/calendar; charset=utf-8");
    let body = r.text().await.unwrap();
    assert!(body.starts_with("BEGIN:VCALENDAR\r\n") && body.contains("BEGIN:VEVENT"));
    // The print-ready instructions and the discharge instructions, in advance.
    let r = patient
        .get(format!("{url}/instructions"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        csp.contains("style-src 'sha256-"),
        "the letter's own stylesheet only: {csp}"
    );
    let r = patient
        .get(format!("{url}/discharge"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let discharge = r.text().await.unwrap();
    assert!(discharge.contains("id=\"patient-letter\""), "{discharge}");

    // "I will come": recorded, shown to the patient and to staff.
    let csrf = field(&page, "csrf");
    let forged = patient
        .post(format!("{url}/respond"))
        .form(&[("csrf", "forged"), ("kind", "confirm"), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(
        forged.status(),
        403,
        "a form without the session's token changes nothing"
    );
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[("csrf", csrf.as_str()), ("kind", "confirm"), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, page) = open(&patient, &url).await;
    assert!(page.contains("You told us you will come"), "{page}");
    let responses = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/patient-responses"),
    )
    .await;
    assert_eq!(
        responses["responses"].as_array().unwrap().len(),
        1,
        "{responses}"
    );
    assert_eq!(responses["responses"][0]["kind"], "confirm");
    // A reason too long is refused in the patient's words; nothing is recorded.
    let long = "x".repeat(501);
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "cancel_request"),
            ("reason", long.as_str()),
            ("lang", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("make the reason shorter"));
    let responses = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/patient-responses"),
    )
    .await;
    assert_eq!(responses["responses"].as_array().unwrap().len(), 1);
    // Asking to cancel, with a reason.
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("kind", "cancel_request"),
            ("reason", "My ride fell through"),
            ("lang", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let responses = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/patient-responses"),
    )
    .await;
    assert_eq!(responses["responses"][1]["kind"], "cancel_request");
    assert_eq!(responses["responses"][1]["reason"], "My ride fell through");
    let case = get_json(&app, &sched, &format!("/api/v1/cases/{williams}")).await;
    let timeline = case["timeline"].as_array().unwrap();
    assert!(timeline.iter().any(|t| t["action"] == "patient_confirmed"));
    let asked = timeline
        .iter()
        .find(|t| t["action"] == "patient_asked_to_cancel")
        .unwrap();
    assert_eq!(asked["reason"], "My ride fell through");
    assert_eq!(
        asked["actor"]["username"],
        format!("patient-link:{link_id}")
    );
    assert_eq!(
        case["state"], "scheduled",
        "staff act on it; the case does not move by itself"
    );
    // On the staff's case page (the panel and the timeline).
    let staff = app.signed_in("scheduler").await;
    let html = staff
        .get(app.at(&format!("/cases/{williams}/patient-link")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Asks to cancel") && html.contains("My ride fell through"),
        "{html}"
    );
    let html = staff
        .get(app.at(&format!("/cases/{williams}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Patient asked to cancel (patient link)"),
        "{html}"
    );

    // Signing out ends the session: the form again.
    let r = patient
        .post(format!("{url}/sign-out"))
        .form(&[("csrf", csrf.as_str()), ("lang", "en")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (_, page) = open(&patient, &app.at(&location)).await;
    assert!(
        page.contains("You are signed out") && page.contains("id=\"dob-year\""),
        "{page}"
    );
    let (_, page) = open(&patient, &url).await;
    assert!(!page.contains("Hello, Patricia"), "{page}");
    let r = patient
        .get(format!("{url}/appointment.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "no calendar file without the check");

    // Audited as the link, never with its secret.
    let token = token_of(&url);
    let all = app
        .store
        .list_audit(
            &irflow_domain::Actor::system("test"),
            &irflow_store::AuditFilter {
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mine: Vec<_> = all
        .iter()
        .filter(|e| e.actor_username == format!("patient-link:{link_id}"))
        .collect();
    for (action, outcome) in [
        ("open_patient_link", "success"),
        ("verify_date_of_birth", "invalid"),
        ("verify_date_of_birth", "success"),
        ("patient_view", "success"),
        ("read", "success"),
        ("patient_response", "success"),
        ("patient_sign_out", "success"),
    ] {
        assert!(
            mine.iter()
                .any(|e| e.action == action && e.outcome.as_str() == outcome),
            "{action} {outcome} in {mine:#?}"
        );
    }
    assert!(
        mine.iter().any(|e| e
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("page=calendar"))),
        "the calendar download"
    );
    assert!(mine.iter().all(|e| e.client.is_some()));
    for e in &all {
        let text = format!("{e:?}");
        assert!(!text.contains(&token), "the secret leaked into {text}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_dates_of_birth_lock_the_link_and_staff_send_a_new_one() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let williams = app.case_of("Williams").await;
    let (status, v) = create_link(&app, &nurse, williams, "none").await;
    assert_eq!(status, 201, "{v}");
    assert!(v["message_id"].is_null(), "not sent: read out on the phone");
    let url = v["url"].as_str().unwrap().to_owned();
    let patient = browser();
    let (_, mut page) = open(&patient, &url).await;
    for left in [4, 3, 2] {
        let (status, next, _, _) = enter_dob(&patient, &url, &page, ("1970", "1", "1")).await;
        assert_eq!(status, 422);
        assert!(
            next.contains(&format!("You have {left} tries left")),
            "{next}"
        );
        page = next;
    }
    let (status, next, _, _) = enter_dob(&patient, &url, &page, ("1970", "1", "1")).await;
    assert_eq!(status, 422);
    assert!(next.contains("You have 1 try left"), "{next}");
    let (status, locked, _, _) = enter_dob(&patient, &url, &next, ("1970", "1", "1")).await;
    assert_eq!(status, 403);
    assert!(
        locked.contains("locked") && locked.contains("617-726-6773"),
        "{locked}"
    );
    // Locked for good: even the right date no longer opens it.
    let (status, page) = open(&patient, &url).await;
    assert_eq!(status, 404);
    assert!(page.contains("This link no longer works"), "{page}");
    let links = get_json(
        &app,
        &nurse,
        &format!("/api/v1/cases/{williams}/patient-link"),
    )
    .await;
    assert_eq!(links["links"][0]["status"], "locked");
    assert_eq!(links["links"][0]["failed_attempts"], 5);
    // Staff issue a new one; it works with the right date of birth.
    let (status, v) = create_link(&app, &nurse, williams, "none").await;
    assert_eq!(status, 201);
    let fresh = v["url"].as_str().unwrap().to_owned();
    let page = sign_in_as_patient(&browser(), &fresh, ("1967", "4", "18")).await;
    assert!(page.contains("id=\"patient-appointment\""), "{page}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_revoked_and_unknown_links_all_say_the_same_thing() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let williams = app.case_of("Williams").await;
    let patient = browser();

    let unknown = format!("{}/p/{}", app.url, irflow_server::auth::new_secret(""));
    let (status, unknown_page) = open(&patient, &unknown).await;
    assert_eq!(status, 404);
    assert!(
        unknown_page.contains("This link no longer works") && unknown_page.contains("617-726-6773")
    );
    let (status, _) = open(&patient, &format!("{}/p/not-even-a-token", app.url)).await;
    assert_eq!(status, 404);

    // Revoked by staff: its open session ends too.
    let (_, v) = create_link(&app, &sched, williams, "none").await;
    let revoked = v["url"].as_str().unwrap().to_owned();
    sign_in_as_patient(&patient, &revoked, ("1967", "4", "18")).await;
    let r = reqwest::Client::new()
        .delete(app.at(&format!("/api/v1/cases/{williams}/patient-link")))
        .bearer_auth(&sched)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["revoked"], 1);
    let (status, page) = open(&patient, &revoked).await;
    assert_eq!(status, 404);
    assert_eq!(page, unknown_page, "no hint whether a link existed");

    // Expired (a link made to expire in two seconds).
    let token = irflow_server::auth::new_secret("");
    let now = jiff::Timestamp::now();
    app.store
        .create_patient_link(
            &irflow_domain::Actor::system("test"),
            irflow_domain::CaseId::new(williams),
            &irflow_server::auth::secret_hash(&token),
            irflow_store::LinkChannel::None,
            now + jiff::SignedDuration::from_secs(2),
            now,
        )
        .await
        .unwrap();
    let expiring = format!("{}/p/{token}", app.url);
    let (status, page) = open(&patient, &expiring).await;
    assert_eq!(status, 200, "still open");
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, expired_page) = open(&patient, &expiring).await;
    assert_eq!(status, 404);
    assert_eq!(expired_page, unknown_page);
    // Typing a date of birth into the expired link's old form changes nothing.
    let (status, body, _, _) = enter_dob(&patient, &expiring, &page, ("1967", "4", "18")).await;
    assert_eq!(status, 404);
    assert_eq!(body, unknown_page);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opens_only_its_own_link_and_forms_need_their_token() {
    let app = App::start_with(irflow_server::ServerConfig {
        cookie_secure: false,
        login_failures_per_client: 8,
        ..Default::default()
    })
    .await;
    let sched = app.token_for("scheduler").await;
    let williams = app.case_of("Williams").await;
    let santos = app.case_of("Santos").await;
    let (_, v) = create_link(&app, &sched, williams, "none").await;
    let williams_url = v["url"].as_str().unwrap().to_owned();
    let (status, v) = create_link(&app, &sched, santos, "email").await;
    assert_eq!(status, 201, "{v}");
    assert!(v["message_id"].is_i64(), "sent by email");
    let santos_url = v["url"].as_str().unwrap().to_owned();

    let patient = browser();
    sign_in_as_patient(&patient, &williams_url, ("1967", "4", "18")).await;
    // The same browser on another patient's link: the date-of-birth form, nothing more.
    let (status, page) = open(&patient, &santos_url).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"dob-year\"") && !page.contains("Ana Paula"),
        "{page}"
    );
    let r = patient
        .get(format!("{santos_url}/appointment.ics"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // A date-of-birth form posted without its anti-forgery cookie is refused.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = stranger
        .post(&santos_url)
        .form(&[
            ("csrf", "x"),
            ("month", "7"),
            ("day", "7"),
            ("year", "1976"),
            ("lang", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Spanish on request (Ana Paula's language is Portuguese: English by default).
    assert!(page.contains("Your date of birth"));
    let (_, page) = open(&browser(), &format!("{santos_url}?lang=es")).await;
    assert!(
        page.contains("Su fecha de nacimiento") && page.contains("lang=\"es\""),
        "{page}"
    );

    // Too many wrong tries from one client, across links (and unknown ones): 429.
    let guesser = browser();
    let (_, page) = open(&guesser, &santos_url).await;
    let mut page = page;
    for _ in 0..4 {
        let (status, next, _, _) =
            enter_dob(&guesser, &santos_url, &page, ("1950", "1", "1")).await;
        assert_eq!(status, 422);
        page = next;
    }
    for _ in 0..4 {
        let unknown = format!("{}/p/{}", app.url, irflow_server::auth::new_secret(""));
        let (status, _, _, _) = enter_dob(&guesser, &unknown, &page, ("1950", "1", "1")).await;
        assert_eq!(status, 404);
    }
    let (status, body, _, _) = enter_dob(&guesser, &santos_url, &page, ("1976", "7", "7")).await;
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("too many tries"), "{body}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_without_an_appointment_is_told_so_in_spanish() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    // María García López prefers Spanish; her referral is not booked yet.
    let garcia = app.case_of("García López").await;
    let (status, v) = create_link(&app, &sched, garcia, "email").await;
    assert_eq!(status, 201, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let message = app
        .store
        .message(irflow_store::outbox::MessageId::new(
            v["message_id"].as_i64().unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(message.recipient, "maria.garcia@example.org");
    assert!(message.body_text.contains(&url));
    // 30 days from now, as nothing is booked.
    let expires: jiff::Timestamp = v["link"]["expires_at"].as_str().unwrap().parse().unwrap();
    let days = (expires - jiff::Timestamp::now()).as_hours() / 24;
    assert!((29..=30).contains(&days), "{days}");

    let patient = browser();
    let (_, page) = open(&patient, &url).await;
    assert!(
        page.contains("Su fecha de nacimiento") && page.contains("marzo"),
        "{page}"
    );
    let (status, _, _, location) = enter_dob(&patient, &url, &page, ("1958", "3", "14")).await;
    assert_eq!(status, 303);
    assert_eq!(location.unwrap(), format!("/p/{}?lang=es", token_of(&url)));
    let (status, page) = open(&patient, &url).await;
    assert_eq!(status, 200);
    assert!(
        page.contains("Hola, María") && page.contains("Ahora no tiene una cita programada"),
        "{page}"
    );
    assert!(!page.contains("patient-confirm-form"), "nothing to confirm");
    // Confirming anyway (an old page) is refused in Spanish and records nothing.
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[
            ("csrf", field(&page, "csrf").as_str()),
            ("kind", "confirm"),
            ("lang", "es"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Ahora no tiene una cita programada")
    );
    let responses = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{garcia}/patient-responses"),
    )
    .await;
    assert_eq!(responses["responses"].as_array().unwrap().len(), 0);
    // The switch to English.
    let (_, page) = open(&patient, &format!("{url}?lang=en")).await;
    assert!(
        page.contains("You do not have an appointment booked right now"),
        "{page}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_https_the_cookies_are_secure_and_host_bound() {
    let app = App::start_with(irflow_server::ServerConfig {
        cookie_secure: true,
        public_base_url: Some("https://irflow.example.org".to_owned()),
        ..Default::default()
    })
    .await;
    let sched = app.token_for("scheduler").await;
    let williams = app.case_of("Williams").await;
    let (status, v) = create_link(&app, &sched, williams, "none").await;
    assert_eq!(status, 201);
    let url = v["url"].as_str().unwrap();
    assert!(url.starts_with("https://irflow.example.org/p/"), "{url}");
    // The test speaks plain HTTP to the real port; cookies are handled by hand.
    let local = app.at(&format!("/p/{}", token_of(url)));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = client.get(&local).send().await.unwrap();
    let csrf_cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        csrf_cookie.starts_with("__Host-irflow_patient_csrf=")
            && csrf_cookie.contains("; Secure")
            && csrf_cookie.contains("SameSite=Strict")
            && csrf_cookie.contains("Path=/"),
        "{csrf_cookie}"
    );
    let page = r.text().await.unwrap();
    let pair = csrf_cookie.split(';').next().unwrap().to_owned();
    let r = client
        .post(&local)
        .header("cookie", pair)
        .form(&[
            ("csrf", field(&page, "csrf").as_str()),
            ("lang", "en"),
            ("month", "4"),
            ("day", "18"),
            ("year", "1967"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let session = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("__Host-irflow_patient="))
        .expect("a session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Strict")
            && session.contains("; Secure"),
        "{session}"
    );
    app.stop().await;
}

/// Books (or moves, with `reason`) a case's appointment to the first option on or
/// after `days` days from now; returns the appointment.
async fn book_at(app: &App, token: &str, case: i64, days: i64, reason: Option<&str>) -> Value {
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let from = jiff::Timestamp::now().to_zoned_datetime(tz).date() + jiff::Span::new().days(days);
    let slots = get_json(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=1"),
    )
    .await;
    let slot = &slots["slots"][0];
    let mut body = json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]});
    let client = reqwest::Client::new();
    let path = app.at(&format!("/api/v1/cases/{case}/appointment"));
    let r = match reason {
        Some(reason) => {
            body["reason"] = json!(reason);
            client.put(path)
        }
        None => client.post(path),
    }
    .bearer_auth(token)
    .json(&body)
    .send()
    .await
    .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    r.json().await.unwrap()
}

fn instant(v: &Value) -> jiff::Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_made_before_booking_lives_until_after_the_visit() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let ready = get_json(&app, &sched, "/api/v1/cases?state=ready").await;
    let case = ready["cases"][0]["id"].as_i64().expect("a ready demo case");
    // Made before booking: 30 days from now.
    let (status, v) = create_link(&app, &sched, case, "none").await;
    assert_eq!(status, 201, "{v}");
    let made = instant(&v["link"]["expires_at"]);
    let days = (made - jiff::Timestamp::now()).as_hours() / 24;
    assert!((29..=30).contains(&days), "{days}");
    // Booked 45 days ahead: the link now works until 30 days after the visit, long
    // after it would have expired.
    let booked = book_at(&app, &sched, case, 45, None).await;
    let start = instant(&booked["start"]);
    let links = get_json(&app, &sched, &format!("/api/v1/cases/{case}/patient-link")).await;
    let link = &links["links"][0];
    assert_eq!(link["status"], "active");
    let expires = instant(&link["expires_at"]);
    assert_eq!(expires - start, jiff::SignedDuration::from_hours(24 * 30));
    assert!(expires > made && start > made, "past the original expiry");
    // Moved later still: it follows.
    let moved = book_at(
        &app,
        &sched,
        case,
        60,
        Some("the patient asked for a later date"),
    )
    .await;
    let later = instant(&moved["start"]);
    let links = get_json(&app, &sched, &format!("/api/v1/cases/{case}/patient-link")).await;
    assert_eq!(
        instant(&links["links"][0]["expires_at"]) - later,
        jiff::SignedDuration::from_hours(24 * 30)
    );
    // Moved earlier: never shorter.
    book_at(&app, &sched, case, 20, Some("an earlier opening")).await;
    let links = get_json(&app, &sched, &format!("/api/v1/cases/{case}/patient-link")).await;
    assert_eq!(
        instant(&links["links"][0]["expires_at"]) - later,
        jiff::SignedDuration::from_hours(24 * 30)
    );
    // A revoked link is not revived by a booking change.
    let r = reqwest::Client::new()
        .delete(app.at(&format!("/api/v1/cases/{case}/patient-link")))
        .bearer_auth(&sched)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    book_at(&app, &sched, case, 70, Some("later again")).await;
    let links = get_json(&app, &sched, &format!("/api/v1/cases/{case}/patient-link")).await;
    assert_eq!(links["links"][0]["status"], "revoked");
    assert_eq!(
        instant(&links["links"][0]["expires_at"]) - later,
        jiff::SignedDuration::from_hours(24 * 30)
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_stops_their_reminders_from_their_page_in_their_language() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let williams = app.case_of("Williams").await;
    // Reminders planned for her appointment (by text: no email on file).
    let r = reqwest::Client::new()
        .delete(app.at(&format!("/api/v1/cases/{williams}/reminders/opt-out")))
        .bearer_auth(&sched)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let messages = get_json(&app, &sched, &format!("/api/v1/cases/{williams}/messages")).await;
    let planned = |m: &Value| {
        m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| m["state"] == "planned")
            .count()
    };
    assert!(planned(&messages) > 0, "{messages}");
    let (status, v) = create_link(&app, &sched, williams, "none").await;
    assert_eq!(status, 201, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let link_id = v["link"]["id"].as_i64().unwrap();
    let patient = browser();
    sign_in_as_patient(&patient, &url, ("1967", "4", "18")).await;

    // In Spanish: the procedure named as the Spanish letters name it.
    let (_, page) = open(&patient, &format!("{url}?lang=es")).await;
    let case = get_json(&app, &sched, &format!("/api/v1/cases/{williams}")).await;
    let code = case["procedure"]["code"].as_str().unwrap().to_owned();
    let names: toml::Table =
        toml::from_str(include_str!("../../../letters/default/es/procedures.toml")).unwrap();
    let spanish = names[&code].as_str().unwrap();
    assert!(
        page.contains(&format!("id=\"patient-procedure\">{spanish}<")),
        "{spanish} in {page}"
    );
    assert!(page.contains("No quiero más recordatorios"), "{page}");

    // A forged form changes nothing.
    let forged = patient
        .post(format!("{url}/reminders/stop"))
        .form(&[("csrf", "forged"), ("lang", "es")])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let opt = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/reminders/opt-out"),
    )
    .await;
    assert_eq!(opt["opted_out"], false);

    // The real one: no more reminders, said in her language.
    let r = patient
        .post(format!("{url}/reminders/stop"))
        .form(&[("csrf", field(&page, "csrf").as_str()), ("lang", "es")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let (_, page) = open(&patient, &format!("{url}?lang=es")).await;
    assert!(
        page.contains("id=\"patient-reminders-off\">No recibirá recordatorios"),
        "{page}"
    );
    assert!(!page.contains("patient-stop-reminders-form"), "{page}");
    let opt = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/reminders/opt-out"),
    )
    .await;
    assert_eq!(opt["opted_out"], true);
    assert_eq!(opt["recorded_by"], format!("patient-link:{link_id}"));
    let messages = get_json(&app, &sched, &format!("/api/v1/cases/{williams}/messages")).await;
    assert_eq!(planned(&messages), 0, "{messages}");
    // On the timeline, as the link; audited.
    let case = get_json(&app, &sched, &format!("/api/v1/cases/{williams}")).await;
    assert!(
        case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["action"] == "reminders_opted_out"
                && t["actor"]["username"] == format!("patient-link:{link_id}")),
        "{case}"
    );
    let events = app
        .store
        .list_audit(
            &irflow_domain::Actor::system("test"),
            &irflow_store::AuditFilter {
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mine: Vec<_> = events
        .iter()
        .filter(|e| e.actor_username == format!("patient-link:{link_id}"))
        .collect();
    for outcome in ["denied", "success"] {
        assert!(
            mine.iter()
                .any(|e| e.action == "update" && e.outcome.as_str() == outcome),
            "update reminder_opt_out {outcome} in {mine:#?}"
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_request_to_cancel_is_where_schedulers_look_until_acted_on() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let staff = app.signed_in("scheduler").await;
    let page = |path: &'static str| {
        let staff = staff.clone();
        let url = app.at(path);
        async move {
            let r = staff.get(url).send().await.unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.text().await.unwrap()
        }
    };
    assert!(page("/patient-requests").await.contains("No open requests"));
    let count = page("/patient-requests/count").await;
    assert_eq!(count, "<span id=\"nav-patient-requests\"></span>");
    let home = page("/cases").await;
    assert!(
        home.contains("hx-get=\"/patient-requests/count\""),
        "the count is loaded into the navigation: {home}"
    );

    // Patricia Williams asks to cancel through her link.
    let williams = app.case_of("Williams").await;
    let (_, v) = create_link(&app, &sched, williams, "none").await;
    let url = v["url"].as_str().unwrap().to_owned();
    let patient = browser();
    let home = sign_in_as_patient(&patient, &url, ("1967", "4", "18")).await;
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[
            ("csrf", field(&home, "csrf").as_str()),
            ("kind", "cancel_request"),
            ("reason", "Caring for my mother that week"),
            ("lang", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // A count in the navigation, the list, and a marker on the case's panel.
    assert!(
        page("/patient-requests/count")
            .await
            .contains("id=\"nav-patient-requests\" title=\"Open requests to cancel\">1<")
    );
    let list = page("/patient-requests").await;
    assert!(
        list.contains(&format!("href=\"/cases/{williams}\""))
            && list.contains("Williams, Patricia"),
        "{list}"
    );
    assert!(list.contains("Caring for my mother that week"), "{list}");
    let panel = staff
        .get(app.at(&format!("/cases/{williams}/patient-link")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains("id=\"patient-open-cancel\""), "{panel}");
    // Not for referrers.
    let referrer = app.signed_in("referrer2").await;
    let r = referrer
        .get(app.at("/patient-requests"))
        .send()
        .await
        .unwrap();
    assert!(r.status() == 403 || r.status() == 404, "{}", r.status());
    let r = referrer
        .get(app.at("/patient-requests/count"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!r.contains('1'), "{r}");

    // Staff cancel the appointment: the request has been acted on.
    let r = reqwest::Client::new()
        .delete(app.at(&format!("/api/v1/cases/{williams}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"reason": "the patient asked to cancel through her link"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(page("/patient-requests").await.contains("No open requests"));
    assert_eq!(
        page("/patient-requests/count").await,
        "<span id=\"nav-patient-requests\"></span>"
    );
    let panel = staff
        .get(app.at(&format!("/cases/{williams}/patient-link")))
        .header("HX-Request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!panel.contains("id=\"patient-open-cancel\""), "{panel}");
    app.stop().await;
}

/// After the visit the patient's page says it is over and no longer offers to confirm
/// or cancel it; an old form sent anyway records nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_visit_there_is_nothing_left_to_confirm_or_cancel() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    // Susan Miller was treated weeks ago and has been followed up (the demo's history).
    let miller = app.case_of("Miller").await;
    let (status, v) = create_link(&app, &sched, miller, "email").await;
    assert_eq!(status, 201, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let patient = browser();
    let page = sign_in_as_patient(&patient, &url, ("1960", "10", "27")).await;
    assert!(page.contains("is over. Thank you for coming."), "{page}");
    assert!(!page.contains("patient-confirm-form"), "{page}");
    assert!(!page.contains("patient-cancel-form"), "{page}");
    let before = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{miller}/patient-responses"),
    )
    .await["responses"]
        .as_array()
        .unwrap()
        .len();
    let r = patient
        .post(format!("{url}/respond"))
        .form(&[
            ("csrf", field(&page, "csrf").as_str()),
            ("kind", "confirm"),
            ("lang", "en"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let after = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{miller}/patient-responses"),
    )
    .await["responses"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(before, after, "nothing recorded");
    app.stop().await;
}
