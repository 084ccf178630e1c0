//! Messages to patients, end to end: booking through the HTTP API plans reminders,
//! moving or cancelling re-plans them, the worker sends them through a real SMTP
//! conversation (a fake server in this test that refuses the first messages with 451)
//! or into files, retries with backoff and records every attempt, holds reminders in
//! the quiet hours, honours the opt-out, and cancels a reminder whose appointment
//! changed behind its back. The worker's clock is injected: no test sleeps for time
//! to pass.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::App;
use irflow_domain::reminders::QuietHours;
use irflow_outbox::{FileSink, SmtpSettings, SmtpTransport, TlsMode, Worker, WorkerConfig};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn ny() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

async fn call(
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

async fn get(app: &App, token: &str, path: &str) -> Value {
    let (status, v) = call(app, token, reqwest::Method::GET, path, None).await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// Books the first option from `days` days ahead; returns the appointment.
async fn book(app: &App, token: &str, case: i64, days: i64) -> Value {
    let from = Timestamp::now().to_zoned_datetime(ny()).date() + days.days();
    let slots = get(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=1"),
    )
    .await;
    let slot = &slots["slots"][0];
    let (status, v) = call(
        app,
        token,
        reqwest::Method::POST,
        &format!("/api/v1/cases/{case}/appointment"),
        Some(json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v
}

/// Moves the case's appointment to the first option from `days` days ahead.
async fn move_to(app: &App, token: &str, case: i64, days: i64) -> Value {
    let from = Timestamp::now().to_zoned_datetime(ny()).date() + days.days();
    let slots = get(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=1"),
    )
    .await;
    let slot = &slots["slots"][0];
    let (status, v) = call(
        app,
        token,
        reqwest::Method::PUT,
        &format!("/api/v1/cases/{case}/appointment"),
        Some(json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"], "reason": "the patient asked for a later date"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn messages(app: &App, token: &str, case: i64) -> Vec<Value> {
    get(app, token, &format!("/api/v1/cases/{case}/messages")).await["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// A ready demo case whose patient has an email address and a phone number.
async fn ready_case_with_contact(app: &App) -> i64 {
    let nurse = app.token_for("nurse").await;
    let ready = get(app, &nurse, "/api/v1/cases?state=ready").await;
    for c in ready["cases"].as_array().unwrap() {
        let id = c["id"].as_i64().unwrap();
        let detail = get(app, &nurse, &format!("/api/v1/cases/{id}")).await;
        if detail["patient"]["email"].is_string() && detail["patient"]["phone"].is_string() {
            return id;
        }
    }
    panic!("the demo has a ready case with email and phone");
}

fn ts(v: &Value) -> Timestamp {
    v.as_str().unwrap().parse().unwrap()
}

/// `start` minus whole calendar days, in the site's zone.
fn days_before(start: Timestamp, days: i64) -> Timestamp {
    start
        .to_zoned_datetime(ny())
        .checked_sub(days.days())
        .unwrap()
        .timestamp()
}

fn of<'a>(list: &'a [Value], kind: &str, channel: &str, state: &str) -> Vec<&'a Value> {
    list.iter()
        .filter(|m| m["kind"] == kind && m["channel"] == channel && m["state"] == state)
        .collect()
}

fn planned(list: &[Value]) -> Vec<&Value> {
    list.iter().filter(|m| m["state"] == "planned").collect()
}

/// A worker whose clock the test sets.
struct TestClock(Arc<Mutex<Timestamp>>);

impl TestClock {
    fn new(at: Timestamp) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }
    fn set(&self, at: Timestamp) {
        *self.0.lock().unwrap() = at;
    }
    fn advance(&self, by: SignedDuration) {
        let mut t = self.0.lock().unwrap();
        *t += by;
    }
    fn reader(&self) -> impl Fn() -> Timestamp + Send + Sync + 'static {
        let inner = self.0.clone();
        move || *inner.lock().unwrap()
    }
}

fn sink(dir: &std::path::Path) -> Arc<FileSink> {
    Arc::new(
        FileSink::new(
            dir,
            irflow_outbox::parse_from_address("Spine Injection Service <noreply@example.org>")
                .unwrap(),
        )
        .unwrap(),
    )
}

fn worker_config(name: &str) -> WorkerConfig {
    let mut c = WorkerConfig::new(name, ny());
    c.poll_interval = Duration::from_millis(50);
    c
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An SMTP server that answers the first `refuse` messages' DATA with 451 and
/// accepts the rest, keeping what it accepted and every reply it gave.
#[derive(Clone, Default)]
struct FakeSmtp {
    received: Arc<Mutex<Vec<String>>>,
    data_seen: Arc<Mutex<usize>>,
}

impl FakeSmtp {
    async fn start(refuse: usize) -> (Self, u16) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let fake = FakeSmtp::default();
        let shared = fake.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let fake = shared.clone();
                tokio::spawn(async move {
                    let _ = fake.session(socket, refuse).await;
                });
            }
        });
        (fake, port)
    }

    async fn session(&self, socket: tokio::net::TcpStream, refuse: usize) -> std::io::Result<()> {
        let (read, mut write) = socket.into_split();
        let mut lines = BufReader::new(read);
        write
            .write_all(b"220 fake.example.org ESMTP ready\r\n")
            .await?;
        let mut line = String::new();
        loop {
            line.clear();
            if lines.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let command = line.trim_end().to_ascii_uppercase();
            let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                b"250 fake.example.org\r\n"
            } else if command.starts_with("MAIL") || command.starts_with("RCPT") {
                b"250 2.1.0 OK\r\n"
            } else if command == "DATA" {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut body = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).await? == 0 {
                        return Ok(());
                    }
                    if l == ".\r\n" {
                        break;
                    }
                    body.push_str(&l);
                }
                let n = {
                    let mut seen = self.data_seen.lock().unwrap();
                    *seen += 1;
                    *seen
                };
                if n <= refuse {
                    b"451 4.3.0 mailbox busy, try again later\r\n"
                } else {
                    self.received.lock().unwrap().push(body);
                    b"250 2.0.0 queued as FAKE1\r\n"
                }
            } else if command == "QUIT" {
                write.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            } else {
                b"250 2.0.0 OK\r\n"
            };
            write.write_all(reply).await?;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_retries_a_failing_smtp_server_and_records_every_attempt() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    let case = ready_case_with_contact(&app).await;
    let detail = get(&app, &nurse, &format!("/api/v1/cases/{case}")).await;
    let email = detail["patient"]["email"].as_str().unwrap().to_owned();
    let phone = detail["patient"]["phone"].as_str().unwrap().to_owned();
    let appointment = book(&app, &sched, case, 10).await;
    let start = ts(&appointment["start"]);

    // Booking planned the 3-day and 1-day reminders, by email and by text message.
    let list = messages(&app, &nurse, case).await;
    assert_eq!(planned(&list).len(), 4, "{list:#?}");
    let three = of(&list, "reminder_3_days", "email", "planned")[0].clone();
    assert_eq!(three["recipient"], email.as_str());
    assert_eq!(ts(&three["planned_for"]), days_before(start, 3));
    let one = of(&list, "reminder_1_day", "sms", "planned")[0].clone();
    assert_eq!(one["recipient"], phone.as_str());
    assert_eq!(ts(&one["planned_for"]), days_before(start, 1));
    assert_eq!(three["appointment"]["start"], appointment["start"]);

    // The mail server refuses the first two messages for now.
    let (smtp, port) = FakeSmtp::start(2).await;
    let files = tempfile::tempdir().unwrap();
    let clock = TestClock::new(ts(&three["planned_for"]));
    let mail = SmtpTransport::new(SmtpSettings {
        host: "127.0.0.1".into(),
        port,
        username: None,
        password: None,
        from: irflow_outbox::parse_from_address("Spine Injection Service <noreply@example.org>")
            .unwrap(),
        tls: TlsMode::None,
        timeout: Duration::from_secs(10),
    })
    .unwrap();
    let worker = Worker::new(
        app.store.clone(),
        Arc::new(mail),
        sink(files.path()),
        worker_config("smtp-test"),
    )
    .with_clock(clock.reader());

    let pass = worker.run_once().await.unwrap();
    assert_eq!(
        (pass.claimed, pass.sent, pass.retrying),
        (2, 1, 1),
        "{pass:?}"
    );
    // Not due again until the backoff's first wait (1 minute) is over.
    clock.advance(SignedDuration::from_secs(30));
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    clock.advance(SignedDuration::from_secs(30));
    let pass = worker.run_once().await.unwrap();
    assert_eq!((pass.claimed, pass.retrying), (1, 1), "{pass:?}");
    // The second wait is 5 minutes.
    clock.advance(SignedDuration::from_mins(4));
    assert_eq!(worker.run_once().await.unwrap().claimed, 0);
    clock.advance(SignedDuration::from_mins(1));
    let pass = worker.run_once().await.unwrap();
    assert_eq!((pass.claimed, pass.sent), (1, 1), "{pass:?}");

    let list = messages(&app, &nurse, case).await;
    let sent = of(&list, "reminder_3_days", "email", "sent");
    assert_eq!(sent.len(), 1, "{list:#?}");
    let m = sent[0];
    assert_eq!(m["attempt_count"], 3);
    let attempts = m["attempts"].as_array().unwrap();
    let outcomes: Vec<&str> = attempts
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "retry", "sent"]);
    for a in &attempts[..2] {
        assert!(a["detail"].as_str().unwrap().contains("451"), "{a}");
        assert!(!a["finished_at"].is_null());
    }
    assert!(
        attempts[2]["detail"].as_str().unwrap().starts_with("250"),
        "{}",
        attempts[2]
    );
    assert_eq!(ts(&m["sent_at"]), clock.reader()());
    // The text message went to the file sink at the first pass.
    assert_eq!(of(&list, "reminder_3_days", "sms", "sent").len(), 1);
    assert_eq!(
        planned(&list).len(),
        2,
        "the 1-day reminders wait for their day"
    );

    // The server got one whole message, to the patient, with the letter's subject.
    let received = smtp.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert!(
        received[0].contains(&format!("To: {email}")),
        "{}",
        received[0]
    );
    let subject = m["subject"].as_str().unwrap();
    assert!(!subject.is_empty());
    assert!(received[0].contains("Subject: "), "{}", received[0]);
    assert_eq!(*smtp.data_seen.lock().unwrap(), 3);
    let txt = files_in(files.path());
    assert_eq!(txt.len(), 1, "{txt:?}");
    assert!(txt[0].ends_with("-reminder_3_days.txt"));
    let contents = std::fs::read_to_string(files.path().join(&txt[0])).unwrap();
    assert!(
        contents.starts_with(&format!("To: {phone}\n")),
        "{contents}"
    );

    // Every send is in the audit log as the worker's disclosure.
    let admin = app.token_for("admin").await;
    let audit = get(
        &app,
        &admin,
        "/api/v1/audit?action=send&entity_type=message",
    )
    .await;
    // (The demo's history has its own, sent at the time by "demo-history".)
    let events: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["actor"]["username"] == "system:outbox:smtp-test")
        .collect();
    assert_eq!(events.len(), 4, "{audit:#}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_an_appointment_replans_its_reminders_and_cancelling_leaves_none() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    let case = ready_case_with_contact(&app).await;
    let first = book(&app, &sched, case, 10).await;
    let old_start = ts(&first["start"]);
    let before = messages(&app, &nurse, case).await;
    assert_eq!(planned(&before).len(), 4);

    let moved = move_to(&app, &sched, case, 20).await;
    let new_start = ts(&moved["start"]);
    assert!(new_start > old_start + SignedDuration::from_hours(24 * 7));
    let after = messages(&app, &nurse, case).await;
    let now_planned = planned(&after);
    assert_eq!(now_planned.len(), 4, "{after:#?}");
    for m in &now_planned {
        assert_eq!(m["appointment"]["start"], moved["start"]);
        let due = ts(&m["planned_for"]);
        let expected = if m["kind"] == "reminder_3_days" {
            days_before(new_start, 3)
        } else {
            days_before(new_start, 1)
        };
        assert_eq!(due, expected, "{m}");
    }
    let cancelled: Vec<&Value> = after.iter().filter(|m| m["state"] == "cancelled").collect();
    assert_eq!(cancelled.len(), 4, "the old reminders are cancelled");
    for m in &cancelled {
        assert_eq!(m["appointment"]["start"], first["start"]);
        assert!(
            m["cancelled_reason"]
                .as_str()
                .unwrap()
                .contains("re-planned")
        );
    }

    // Cancelling the appointment leaves nothing planned.
    let (status, v) = call(
        &app,
        &sched,
        reqwest::Method::DELETE,
        &format!("/api/v1/cases/{case}/appointment"),
        Some(json!({"reason": "the patient is unwell"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let gone = messages(&app, &nurse, case).await;
    assert!(planned(&gone).is_empty(), "{gone:#?}");
    assert_eq!(gone.len(), 8);

    // The case page shows the messages panel (htmx loads it; without JS it is a page).
    let browser = app.signed_in("nurse").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}/messages")))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"messages-table\""), "{html}");
    assert_eq!(html.matches("data-state=\"cancelled\"").count(), 8);
    let case_page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(case_page.contains(&format!("hx-get=\"/cases/{case}/messages\"")));

    // Another referrer's view: not found; a bad id: 400.
    let other = app.token_for("referrer2").await;
    let (status, _) = call(
        &app,
        &other,
        reqwest::Method::GET,
        &format!("/api/v1/cases/{case}/messages"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        &nurse,
        reqwest::Method::GET,
        "/api/v1/cases/x/messages",
        None,
    )
    .await;
    assert_eq!(status, 400);
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/cases/{id}/messages",
        "/api/v1/cases/{id}/reminders/opt-out",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    for method in ["get", "put", "post", "delete"] {
        assert!(doc["paths"]["/api/v1/cases/{id}/reminders/opt-out"][method].is_object());
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reminders_respect_the_quiet_hours() {
    // Quiet from midnight to 23:30: every reminder moves to 23:30 on its day.
    let app = App::start_with(irflow_server::ServerConfig {
        cookie_secure: false,
        reminder_quiet_hours: QuietHours::parse("00:00-23:30").unwrap(),
        ..Default::default()
    })
    .await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    let case = ready_case_with_contact(&app).await;
    let appointment = book(&app, &sched, case, 10).await;
    let start = ts(&appointment["start"]);
    let list = messages(&app, &nurse, case).await;
    assert_eq!(planned(&list).len(), 4);
    for m in planned(&list) {
        let local = ts(&m["planned_for"]).to_zoned_datetime(ny());
        assert_eq!(local.time(), jiff::civil::time(23, 30, 0, 0), "{m}");
        let days = if m["kind"] == "reminder_3_days" { 3 } else { 1 };
        assert_eq!(
            local.date(),
            start.to_zoned_datetime(ny()).date() - days.days()
        );
    }

    // The worker holds a due reminder back while it is quiet (20:00-08:00 here)
    // without counting an attempt, and sends it when the quiet hours end.
    let three = of(&list, "reminder_3_days", "email", "planned")[0].clone();
    let files = tempfile::tempdir().unwrap();
    let clock = TestClock::new(ts(&three["planned_for"]));
    let worker = Worker::new(
        app.store.clone(),
        sink(files.path()),
        sink(files.path()),
        worker_config("quiet-test"),
    )
    .with_clock(clock.reader());
    let pass = worker.run_once().await.unwrap();
    assert_eq!(
        (pass.claimed, pass.deferred, pass.sent),
        (2, 2, 0),
        "{pass:?}"
    );
    let held = messages(&app, &nurse, case).await;
    let m = of(&held, "reminder_3_days", "email", "planned")[0];
    assert_eq!(m["attempt_count"], 0);
    let next = ts(&m["next_attempt_at"]).to_zoned_datetime(ny());
    assert_eq!(next.time(), jiff::civil::time(8, 0, 0, 0));
    assert_eq!(
        next.date(),
        ts(&three["planned_for"]).to_zoned_datetime(ny()).date() + 1.day()
    );
    assert!(files_in(files.path()).is_empty());
    clock.set(next.timestamp());
    let pass = worker.run_once().await.unwrap();
    assert_eq!(pass.sent, 2, "{pass:?}");
    assert_eq!(files_in(files.path()).len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_opt_out_stops_reminders_and_opting_in_plans_them_again() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    let case = ready_case_with_contact(&app).await;
    book(&app, &sched, case, 10).await;
    assert_eq!(planned(&messages(&app, &nurse, case).await).len(), 4);
    let path = format!("/api/v1/cases/{case}/reminders/opt-out");

    let (status, v) = call(
        &app,
        &nurse,
        reqwest::Method::PUT,
        &path,
        Some(json!({"opted_out": true})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["opted_out"], true);
    assert_eq!(v["recorded_by"], "nurse");
    let list = messages(&app, &nurse, case).await;
    assert!(planned(&list).is_empty(), "{list:#?}");
    assert!(
        list.iter()
            .all(|m| m["cancelled_reason"] == "the patient opted out of reminders")
    );
    let v = get(&app, &nurse, &format!("/api/v1/cases/{case}/messages")).await;
    assert_eq!(v["reminders_opted_out"], true);

    // Moving the appointment plans nothing while opted out.
    move_to(&app, &sched, case, 20).await;
    assert!(planned(&messages(&app, &nurse, case).await).is_empty());

    // Bad input changes nothing; referrers cannot change it.
    let (status, _) = call(
        &app,
        &nurse,
        reqwest::Method::PUT,
        &path,
        Some(json!({"opted_out": "maybe"})),
    )
    .await;
    assert_eq!(status, 400);
    let referrer = app.token_for("referrer").await;
    let (status, _) = call(&app, &referrer, reqwest::Method::DELETE, &path, None).await;
    assert!(status == 403 || status == 404, "{status}");
    assert_eq!(get(&app, &nurse, &path).await["opted_out"], true);

    // Opting back in plans the reminders for the current appointment.
    let (status, v) = call(&app, &sched, reqwest::Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["opted_out"], false);
    let appointment = get(&app, &sched, &format!("/api/v1/cases/{case}/appointment")).await;
    let again = messages(&app, &nurse, case).await;
    let fresh = planned(&again);
    assert_eq!(fresh.len(), 4, "{again:#?}");
    assert!(
        fresh
            .iter()
            .all(|m| m["appointment"]["start"] == appointment["start"])
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_reminders_files_and_the_workers_recheck_of_a_stale_reminder() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    // George Sullivan takes apixaban (held 3 days, the prescriber agreed); the demo
    // booked him straight into the store, so moving him is what plans his reminders.
    let case = app.case_of("Sullivan").await;
    let moved = move_to(&app, &sched, case, 12).await;
    let start = ts(&moved["start"]);
    let list = messages(&app, &nurse, case).await;
    let hold = of(&list, "reminder_hold_start", "email", "planned");
    assert_eq!(hold.len(), 1, "{list:#?}");
    let hold_at = ts(&hold[0]["planned_for"]).to_zoned_datetime(ny());
    assert_eq!(
        hold_at.date(),
        start.to_zoned_datetime(ny()).date() - 3.days(),
        "the last apixaban dose is 3 days before the procedure"
    );
    assert_eq!(of(&list, "reminder_hold_start", "sms", "planned").len(), 1);
    assert_eq!(
        planned(&list).len(),
        6,
        "hold, 3 days, 1 day; email and text"
    );

    // At the hold reminder's time: the hold and 3-day reminders go, as files.
    let files = tempfile::tempdir().unwrap();
    let clock = TestClock::new(hold_at.timestamp());
    let worker = Worker::new(
        app.store.clone(),
        sink(files.path()),
        sink(files.path()),
        worker_config("files-test"),
    )
    .with_clock(clock.reader());
    let pass = worker.drain().await.unwrap();
    assert_eq!(pass.sent, 4, "{pass:?}");
    let names = files_in(files.path());
    assert_eq!(names.len(), 4, "{names:?}");
    let eml = names
        .iter()
        .find(|n| n.ends_with("-reminder_hold_start.eml"))
        .expect("the hold reminder email");
    let eml = std::fs::read_to_string(files.path().join(eml)).unwrap();
    assert!(eml.contains("To: george.sullivan@example.org"), "{eml}");
    assert!(eml.contains("Subject: "));
    let txt = names
        .iter()
        .find(|n| n.ends_with("-reminder_hold_start.txt"))
        .expect("the hold reminder text");
    let txt = std::fs::read_to_string(files.path().join(txt)).unwrap();
    assert!(txt.starts_with("To: 617-555-0182\n"), "{txt}");
    assert!(txt.to_lowercase().contains("apixaban"), "{txt}");

    // The appointment is cancelled behind the reminders' back (no re-plan): the worker's
    // own check cancels the 1-day reminders instead of sending them.
    let scheduler = app
        .store
        .user_by_username("scheduler")
        .await
        .unwrap()
        .actor();
    app.store
        .cancel_appointment(
            &scheduler,
            irflow_domain::CaseId::new(case),
            "cancelled by the hospital's other system",
            Timestamp::now(),
            Timestamp::now().to_zoned_datetime(ny()).date(),
        )
        .await
        .unwrap();
    assert_eq!(planned(&messages(&app, &nurse, case).await).len(), 2);
    clock.set(days_before(start, 1));
    let pass = worker.drain().await.unwrap();
    assert_eq!((pass.cancelled, pass.sent), (2, 0), "{pass:?}");
    let after = messages(&app, &nurse, case).await;
    for m in of(&after, "reminder_1_day", "email", "cancelled")
        .into_iter()
        .chain(of(&after, "reminder_1_day", "sms", "cancelled"))
    {
        assert_eq!(m["cancelled_reason"], "the appointment was cancelled");
        assert_eq!(m["attempt_count"], 0);
    }
    assert_eq!(files_in(files.path()).len(), 4, "nothing more was sent");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spawned_worker_sends_and_stops_cleanly() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let case = ready_case_with_contact(&app).await;
    book(&app, &sched, case, 10).await;
    let nurse = app.token_for("nurse").await;
    let list = messages(&app, &nurse, case).await;
    let last_due = planned(&list)
        .iter()
        .map(|m| ts(&m["planned_for"]))
        .max()
        .unwrap();
    let files = tempfile::tempdir().unwrap();
    let worker = Worker::new(
        app.store.clone(),
        sink(files.path()),
        sink(files.path()),
        worker_config("spawned"),
    )
    .with_clock(move || last_due);
    let handle = worker.spawn();
    let mut sent = 0;
    for _ in 0..100 {
        sent = files_in(files.path()).len();
        if sent == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    handle.stop().await;
    assert_eq!(sent, 4);
    assert!(
        messages(&app, &nurse, case)
            .await
            .iter()
            .all(|m| m["state"] == "sent")
    );
    app.stop().await;
}

/// "9:40 AM", as the English letters write a time.
fn en_clock(t: Timestamp) -> String {
    t.to_zoned_datetime(ny()).strftime("%-I:%M %p").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_based_hold_is_reminded_hours_before_its_deadline_and_never_after() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let nurse = app.token_for("nurse").await;
    // Aisha Rahman, on therapeutic enoxaparin: no dose in the 24 hours before the
    // procedure (the prescriber agreed).
    let case = app.case_of("Rahman").await;
    let (status, screening) = call(
        &app,
        &nurse,
        reqwest::Method::POST,
        &format!("/api/v1/cases/{case}/screening"),
        Some(json!({"medications": [{"drug": "enoxaparin", "regimen": "therapeutic"}], "escort_available": true})),
    )
    .await;
    assert_eq!(status, 200, "{screening}");
    for action in screening["actions"].as_array().unwrap() {
        let (status, v) = call(
            &app,
            &nurse,
            reqwest::Method::POST,
            &format!("/api/v1/cases/{case}/actions/{}", action["id"]),
            Some(json!({"cleared": true, "decided_by": "Dr. Lee, cardiology"})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
    }
    let booked = book(&app, &sched, case, 10).await;
    let start = ts(&booked["start"]);
    let arrive = ts(&booked["arrive_by"]);
    let deadline = start - SignedDuration::from_hours(24);
    // The letter says the same deadline.
    let letter = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}/instructions?lang=en")))
        .bearer_auth(&nurse)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(letter.contains(&en_clock(deadline)), "{letter}");

    let list = messages(&app, &nurse, case).await;
    let hold = of(&list, "reminder_hold_start", "sms", "planned");
    assert_eq!(hold.len(), 1, "{list:#?}");
    let at = ts(&hold[0]["planned_for"]);
    assert!(
        at <= deadline - SignedDuration::from_hours(3),
        "at least 3 hours before the last dose: {at} vs {deadline}"
    );
    assert!(
        deadline - at < SignedDuration::from_hours(24),
        "not days early"
    );
    let local = at.to_zoned_datetime(ny());
    assert!(
        !QuietHours::default().contains(local.time()),
        "{local} is in the quiet hours"
    );
    // Its words are true on the day it goes, and give the arrival time.
    let body = hold[0]["body_text"].as_str().unwrap();
    let day = if local.date() == deadline.to_zoned_datetime(ny()).date() {
        "today"
    } else {
        "tomorrow"
    };
    assert!(
        body.contains(&format!(
            "Take your last dose of enoxaparin no later than {} {day},",
            en_clock(deadline)
        )),
        "{body}"
    );
    assert!(
        body.contains(&format!("Please arrive by {}.", en_clock(arrive))),
        "{body}"
    );
    assert!(body.contains("To stop these reminders, open your link or call us."));
    for kind in ["reminder_hold_start", "reminder_3_days", "reminder_1_day"] {
        let m = of(&list, kind, "sms", "planned");
        let text = m[0]["body_text"].as_str().unwrap();
        let grade = irflow_letters::flesch_kincaid_grade(text);
        assert!(grade <= 8.0, "{kind}: grade {grade:.1}\n{text}");
        assert!(text.contains("To stop these reminders"), "{text}");
    }

    // A worker that only gets to it at the deadline (retries, quiet hours) cancels
    // it: it is never sent at or after the last dose it reminds of.
    let files = tempfile::tempdir().unwrap();
    let worker = Worker::new(
        app.store.clone(),
        sink(files.path()),
        sink(files.path()),
        worker_config("late-test"),
    )
    .with_clock(move || deadline);
    let pass = worker.drain().await.unwrap();
    assert!(pass.cancelled >= 2, "{pass:?}");
    let after = messages(&app, &nurse, case).await;
    assert!(of(&after, "reminder_hold_start", "sms", "sent").is_empty());
    let late = of(&after, "reminder_hold_start", "sms", "cancelled");
    assert_eq!(late.len(), 1, "{after:#?}");
    assert!(
        late[0]["cancelled_reason"]
            .as_str()
            .unwrap()
            .starts_with("too late"),
        "{late:?}"
    );
    assert!(files_in(files.path()).iter().all(|f| !f.contains("hold")));
    app.stop().await;
}
