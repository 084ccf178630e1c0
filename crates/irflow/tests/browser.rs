//! Browser tests: the demo department driven in a real headless Chromium through
//! chromedriver (Debian's `chromium` and `chromium-driver`). They run when
//! `IRFLOW_E2E=1`; `.ci/run` installs both and sets it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use thirtyfour::prelude::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

fn enabled() -> bool {
    if std::env::var("IRFLOW_E2E").as_deref() == Ok("1") {
        true
    } else {
        eprintln!("browser tests skipped: set IRFLOW_E2E=1 (needs chromium and chromedriver)");
        false
    }
}

struct Session {
    driver: WebDriver,
    url: String,
    _demo: Child,
    _chromedriver: Child,
    _dirs: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn screenshot_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/e2e-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn start() -> Session {
    let dirs = tempfile::tempdir().unwrap();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(["demo", "--port", "0", "--data-dir"])
        .arg(dirs.path().join("demo"))
        .env("IRFLOW_LOG_LEVEL", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start irflow demo");
    let mut lines = BufReader::new(demo.stdout.take().unwrap()).lines();
    let url = loop {
        let line = lines
            .next_line()
            .await
            .unwrap()
            .expect("demo printed its URL");
        if let Some(i) = line.find("http://") {
            break line[i..].split_whitespace().next().unwrap().to_owned();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

    let port = free_port();
    let chromedriver_bin =
        std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".to_owned());
    let chromedriver = Command::new(chromedriver_bin)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start chromedriver (apt-get install chromium-driver)");
    let driver_url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{driver_url}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut caps = DesiredCapabilities::chrome();
    caps.set_binary(
        &std::env::var("CHROME_BIN").unwrap_or_else(|_| "/usr/bin/chromium".to_owned()),
    )
    .unwrap();
    for arg in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,900",
    ] {
        caps.add_arg(arg).unwrap();
    }
    caps.add_arg(&format!(
        "--user-data-dir={}",
        dirs.path().join("chrome").display()
    ))
    .unwrap();
    let driver = WebDriver::new(&driver_url, caps)
        .await
        .expect("a Chromium session");
    Session {
        driver,
        url,
        _demo: demo,
        _chromedriver: chromedriver,
        _dirs: dirs,
    }
}

/// Polls until the page source contains `text` (pages update via htmx and redirects).
async fn wait_for_text(driver: &WebDriver, text: &str) {
    for _ in 0..100 {
        if driver.source().await.unwrap().contains(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "page never showed {text:?}; it shows:\n{}",
        driver.source().await.unwrap()
    );
}

async fn sign_in(s: &Session, username: &str) {
    s.driver.goto(format!("{}/", s.url)).await.unwrap();
    wait_for_text(&s.driver, "Sign in").await;
    s.driver
        .find(By::Id("username"))
        .await
        .unwrap()
        .send_keys(username)
        .await
        .unwrap();
    s.driver
        .find(By::Id("password"))
        .await
        .unwrap()
        .send_keys("demo")
        .await
        .unwrap();
    s.driver
        .find(By::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn sign_out(s: &Session) {
    s.driver
        .find(By::Id("sign-out"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "You have signed out.").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_sign_in_see_the_worklist_open_a_case_and_sign_out() {
    if !enabled() {
        return;
    }
    let s = start().await;
    let shots = screenshot_dir();
    s.driver.goto(format!("{}/login", s.url)).await.unwrap();
    s.driver.screenshot(&shots.join("login.png")).await.unwrap();

    // A wrong password is explained next to the form and the username is kept.
    s.driver
        .find(By::Id("username"))
        .await
        .unwrap()
        .send_keys("nurse")
        .await
        .unwrap();
    s.driver
        .find(By::Id("password"))
        .await
        .unwrap()
        .send_keys("not-it")
        .await
        .unwrap();
    s.driver
        .find(By::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "do not match").await;
    let kept = s
        .driver
        .find(By::Id("username"))
        .await
        .unwrap()
        .value()
        .await
        .unwrap();
    assert_eq!(kept.as_deref(), Some("nurse"));

    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "Worklist").await;
    assert!(
        s.driver
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/cases")
    );
    let source = s.driver.source().await.unwrap();
    for text in [
        "García López, María",
        "Screening",
        "Deferred",
        "Nora Patel, RN",
    ] {
        assert!(source.contains(text), "worklist shows {text}");
    }
    s.driver
        .screenshot(&shots.join("worklist.png"))
        .await
        .unwrap();

    // Open a case from the list.
    s.driver
        .find(By::LinkText("Nguyen, Linh"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Timeline").await;
    let state = s
        .driver
        .find(By::Id("case-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "Deferred");
    let timeline = s
        .driver
        .find(By::Id("timeline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        timeline.contains("Referral received") && timeline.contains("antibiotics"),
        "{timeline}"
    );
    s.driver.screenshot(&shots.join("case.png")).await.unwrap();

    sign_out(&s).await;
    // The session is over: the worklist asks to sign in again.
    s.driver.goto(format!("{}/cases", s.url)).await.unwrap();
    wait_for_text(&s.driver, "Sign in").await;
    assert!(
        s.driver
            .current_url()
            .await
            .unwrap()
            .path()
            .ends_with("/login")
    );
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_radiologist_accepts_a_referral_in_the_browser() {
    if !enabled() {
        return;
    }
    let s = start().await;
    sign_in(&s, "radiologist").await;
    wait_for_text(&s.driver, "Worklist").await;
    s.driver
        .find(By::LinkText("García López, María"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Next steps").await;
    s.driver
        .find(By::Id("do-accept"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Done: Accept referral.").await;
    let state = s
        .driver
        .find(By::Id("case-state"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(state, "Screening");
    let timeline = s
        .driver
        .find(By::Id("timeline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        timeline.contains("Accept referral") && timeline.contains("radiologist"),
        "{timeline}"
    );
    s.driver
        .screenshot(&screenshot_dir().join("case-accepted.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_sees_only_their_own_referrals() {
    if !enabled() {
        return;
    }
    let s = start().await;
    sign_in(&s, "referrer").await;
    wait_for_text(&s.driver, "My referrals").await;
    let source = s.driver.source().await.unwrap();
    assert!(source.contains("García López, María"), "their own patient");
    assert!(
        !source.contains("O'Connor")
            && !source.contains("O&#x27;Connor")
            && !source.contains("Nguyen"),
        "not another referrer's"
    );
    // Case 2 (O'Connor) belongs to referrer2: typing its address finds nothing.
    s.driver.goto(format!("{}/cases/2", s.url)).await.unwrap();
    wait_for_text(&s.driver, "Not found").await;
    assert!(!s.driver.source().await.unwrap().contains("Connor"));
    s.driver
        .screenshot(&screenshot_dir().join("referrer-not-found.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_shows_every_access_of_a_visit() {
    if !enabled() {
        return;
    }
    let s = start().await;
    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "Worklist").await;
    // Filter the worklist (an htmx swap), then open a case.
    s.driver
        .find(By::Css("a.chip.state-awaiting_action"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    for _ in 0..50 {
        if s.driver.current_url().await.unwrap().query() == Some("state=awaiting_action") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        s.driver.current_url().await.unwrap().query(),
        Some("state=awaiting_action"),
        "the address bar follows the filter"
    );
    wait_for_text(&s.driver, "Johnson, Robert").await;
    assert!(
        !s.driver.source().await.unwrap().contains("Nguyen, Linh"),
        "only the chosen state is listed"
    );
    s.driver
        .find(By::LinkText("Johnson, Robert"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Timeline").await;
    let case_path = s.driver.current_url().await.unwrap().path().to_owned();
    let case_id = case_path.rsplit('/').next().unwrap().to_owned();
    sign_out(&s).await;

    sign_in(&s, "admin").await;
    wait_for_text(&s.driver, "Audit log").await;
    s.driver
        .find(By::Id("f-actor"))
        .await
        .unwrap()
        .send_keys("nurse")
        .await
        .unwrap();
    s.driver
        .find(By::Css("form.filters button[type=submit]"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "sign_out").await;
    let table = s
        .driver
        .find(By::Id("audit-table"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "sign_in",
        "list",
        "read",
        &format!("case {case_id}"),
        "sign_out",
    ] {
        assert!(
            table.contains(expected),
            "audit log shows {expected}:\n{table}"
        );
    }
    assert!(
        !table.contains("Johnson"),
        "the audit log holds no patient names"
    );
    s.driver
        .screenshot(&screenshot_dir().join("audit.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

async fn fill(s: &Session, id: &str, text: &str) {
    let el = s.driver.find(By::Id(id)).await.unwrap();
    el.clear().await.unwrap();
    el.send_keys(text).await.unwrap();
}

/// Sets a date input's value (typing into date inputs depends on the browser's locale).
async fn set_date(s: &Session, id: &str, date: &str) {
    s.driver
        .execute(
            &format!("document.getElementById('{id}').value = '{date}';"),
            Vec::new(),
        )
        .await
        .unwrap();
}

async fn choose(s: &Session, css: &str) {
    s.driver
        .find(By::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn click(s: &Session, id: &str) {
    s.driver
        .find(By::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_orders_and_a_radiologist_accepts_in_the_browser() {
    if !enabled() {
        return;
    }
    let s = start().await;
    let shots = screenshot_dir();
    sign_in(&s, "referrer").await;
    wait_for_text(&s.driver, "My referrals").await;
    s.driver
        .find(By::LinkText("New referral"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Send referral").await;

    // Sending half a form: every problem is listed and shown by its field; nothing typed is lost.
    fill(&s, "family_name", "Okafor").await;
    fill(&s, "phone", "617-555-0123").await;
    fill(&s, "levels", "C5-C6").await;
    choose(&s, "select#procedure option[value='64483']").await;
    click(&s, "submit-referral").await;
    wait_for_text(&s.driver, "Please fix").await;
    let summary = s
        .driver
        .find(By::Id("error-summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        "given name is required",
        "date of birth is required",
        "cervical",
        "choose left, right or bilateral",
        "say why",
    ] {
        assert!(
            summary.contains(expected),
            "summary mentions {expected}: {summary}"
        );
    }
    assert_eq!(
        s.driver
            .find(By::Id("family_name"))
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("Okafor")
    );
    assert_eq!(
        s.driver
            .find(By::Id("phone"))
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("617-555-0123")
    );
    assert_eq!(
        s.driver
            .find(By::Id("levels"))
            .await
            .unwrap()
            .attr("aria-invalid")
            .await
            .unwrap()
            .as_deref(),
        Some("true")
    );
    s.driver
        .screenshot(&shots.join("referral-errors.png"))
        .await
        .unwrap();

    // Complete it: a lumbar transforaminal epidural for a new patient.
    fill(&s, "given_name", "Chidi").await;
    set_date(&s, "date_of_birth", "1972-08-19").await;
    fill(&s, "levels", "L4-L5").await;
    choose(&s, "input[name='side'][value='right']").await;
    fill(
        &s,
        "indication",
        "Right L5 radiculopathy for 9 weeks; MRI shows L4-L5 foraminal stenosis.",
    )
    .await;
    fill(&s, "icd10", "M54.16").await;
    choose(&s, "select#imaging_modality option[value='mri']").await;
    set_date(&s, "imaging_date", "2026-10-15").await;
    fill(&s, "blood_thinners", "none").await;
    click(&s, "submit-referral").await;
    wait_for_text(&s.driver, "What happens next").await;
    let number = s
        .driver
        .find(By::Id("referral-number"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(number.starts_with("IRF-"), "{number}");
    s.driver
        .screenshot(&shots.join("referral-received.png"))
        .await
        .unwrap();
    click(&s, "view-referral").await;
    wait_for_text(&s.driver, "Timeline").await;
    let case_path = s.driver.current_url().await.unwrap().path().to_owned();
    let facts = s
        .driver
        .find(By::Id("referral-facts"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        facts.contains("64483")
            && facts.contains("L4-L5")
            && facts.contains("Right")
            && facts.contains("M54.16"),
        "{facts}"
    );
    s.driver.goto(format!("{}/cases", s.url)).await.unwrap();
    wait_for_text(&s.driver, "Okafor, Chidi").await;
    sign_out(&s).await;

    // Another referrer cannot open it.
    sign_in(&s, "referrer2").await;
    wait_for_text(&s.driver, "My referrals").await;
    assert!(!s.driver.source().await.unwrap().contains("Okafor"));
    s.driver
        .goto(format!("{}{case_path}", s.url))
        .await
        .unwrap();
    wait_for_text(&s.driver, "Not found").await;
    assert!(!s.driver.source().await.unwrap().contains("Okafor"));
    sign_out(&s).await;

    // The radiologist finds it in the vetting queue and accepts it.
    sign_in(&s, "radiologist").await;
    wait_for_text(&s.driver, "Vetting queue").await;
    s.driver
        .find(By::LinkText("Vetting queue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Okafor, Chidi").await;
    s.driver
        .screenshot(&shots.join("vetting-queue.png"))
        .await
        .unwrap();
    s.driver
        .find(By::LinkText(number.as_str()))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Change the procedure").await;
    s.driver
        .screenshot(&shots.join("vetting-case.png"))
        .await
        .unwrap();
    click(&s, "do-accept").await;
    wait_for_text(&s.driver, "Done: Accept referral.").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Screening"
    );
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_referral_is_amended_and_resubmitted_in_the_browser() {
    if !enabled() {
        return;
    }
    let s = start().await;
    let shots = screenshot_dir();
    // The radiologist returns a referral with a structured reason.
    sign_in(&s, "radiologist").await;
    wait_for_text(&s.driver, "Vetting queue").await;
    s.driver.goto(format!("{}/vetting", s.url)).await.unwrap();
    wait_for_text(&s.driver, "García López, María").await;
    s.driver
        .find(By::LinkText("García López, María"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Why is it returned?").await;
    let case_path = s.driver.current_url().await.unwrap().path().to_owned();
    // Without a reason it is refused, next to the form.
    s.driver.execute("document.querySelector('form[data-confirm]') && document.querySelectorAll('form[data-confirm]').forEach(f => f.removeAttribute('data-confirm'));", Vec::new()).await.unwrap();
    click(&s, "do-return").await;
    wait_for_text(&s.driver, "a reason is required to return a case").await;
    choose(
        &s,
        "select#return-reason option[value='not_enough_information']",
    )
    .await;
    fill(
        &s,
        "reason-return",
        "Please add how long the symptoms have lasted and what was tried.",
    )
    .await;
    s.driver.execute("document.querySelectorAll('form[data-confirm]').forEach(f => f.removeAttribute('data-confirm'));", Vec::new()).await.unwrap();
    click(&s, "do-return").await;
    wait_for_text(&s.driver, "Done: Return to referrer.").await;
    sign_out(&s).await;

    // The referrer sees why, amends and resubmits.
    sign_in(&s, "referrer").await;
    wait_for_text(&s.driver, "My referrals").await;
    s.driver
        .goto(format!("{}{case_path}", s.url))
        .await
        .unwrap();
    wait_for_text(&s.driver, "Returned to the referrer").await;
    let why = s
        .driver
        .find(By::Id("returned-because"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        why.starts_with("Not enough information") && why.contains("how long"),
        "{why}"
    );
    click(&s, "amend").await;
    wait_for_text(&s.driver, "Resubmit referral").await;
    assert_eq!(
        s.driver
            .find(By::Id("levels"))
            .await
            .unwrap()
            .value()
            .await
            .unwrap()
            .as_deref(),
        Some("L4-L5"),
        "prefilled"
    );
    fill(
        &s,
        "indication",
        "Left L5 radiculopathy for 10 weeks despite 6 weeks of physical therapy and NSAIDs.",
    )
    .await;
    fill(&s, "note", "Added duration and treatments tried.").await;
    s.driver.screenshot(&shots.join("amend.png")).await.unwrap();
    click(&s, "submit-referral").await;
    wait_for_text(&s.driver, "Done: Resubmit referral.").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Referred"
    );
    let timeline = s
        .driver
        .find(By::Id("timeline"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        timeline.contains("Resubmit referral") && timeline.contains("Added duration"),
        "{timeline}"
    );
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_runs_a_screening_call_end_to_end() {
    if !enabled() {
        return;
    }
    let s = start().await;
    let shots = screenshot_dir();
    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "Worklist").await;
    // Robert Johnson: a cervical transforaminal injection, on apixaban.
    s.driver
        .find(By::LinkText("Johnson, Robert"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Start the screening call").await;
    click(&s, "start-screening").await;
    wait_for_text(&s.driver, "Decision so far").await;
    // Nothing entered yet: clear.
    let decision = s
        .driver
        .find(By::Id("decision"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(decision.contains("Clear"), "{decision}");
    // Answers go in; the decision follows without saving.
    fill(&s, "med0_drug", "apixaban").await;
    let yesterday = {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        jiff::Timestamp::now().to_zoned_datetime(tz).date() - jiff::Span::new().days(1)
    };
    set_date(&s, "med0_last_dose", &yesterday.to_string()).await;
    choose(&s, "select#escort option[value='no']").await;
    choose(&s, "select#diabetes option[value='insulin']").await;
    wait_for_text(&s.driver, "Clear once actions are done").await;
    let earliest = (yesterday + jiff::Span::new().days(3)).to_string();
    wait_for_text(&s.driver, &earliest).await;
    wait_for_text(&s.driver, "UNVERIFIED").await;
    s.driver
        .screenshot(&shots.join("screening.png"))
        .await
        .unwrap();
    // A high thrombotic-risk condition makes it a review, live.
    choose(
        &s,
        "input[name='thrombotic'][value='stroke_or_tia_3_months']",
    )
    .await;
    wait_for_text(&s.driver, "Needs review").await;
    choose(
        &s,
        "input[name='thrombotic'][value='stroke_or_tia_3_months']",
    )
    .await;
    wait_for_text(&s.driver, "Clear once actions are done").await;
    click(&s, "save-screening").await;
    wait_for_text(&s.driver, "Done: the screening was saved.").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Awaiting action"
    );
    // The prescriber clears the hold: the case is ready to book.
    let form = s.driver.find(By::Css("form[id^='action-']")).await.unwrap();
    let id = form
        .attr("id")
        .await
        .unwrap()
        .unwrap()
        .trim_start_matches("action-")
        .to_owned();
    fill(&s, &format!("decided-{id}"), "Dr. Lee, cardiology").await;
    fill(
        &s,
        &format!("notes-{id}"),
        "Hold apixaban 3 days; restart 24 h after.",
    )
    .await;
    click(&s, &format!("complete-{id}")).await;
    wait_for_text(&s.driver, "Done: the action was recorded.").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Ready to book"
    );
    // A printable summary.
    s.driver
        .find(By::LinkText("printable summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Screening summary").await;
    let answers = s
        .driver
        .find(By::Id("screening-answers"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        answers.contains("apixaban")
            && answers.contains("on insulin")
            && answers.contains("monitoring needed"),
        "{answers}"
    );
    s.driver
        .screenshot(&shots.join("screening-summary.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_books_and_cancels_in_the_browser() {
    if !enabled() {
        return;
    }
    let s = start().await;
    sign_in(&s, "scheduler").await;
    wait_for_text(&s.driver, "Worklist").await;
    s.driver
        .find(By::LinkText("Cohen, David"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "The earliest times that meet every rule").await;
    let first = s
        .driver
        .find(By::Css("#booking-options tbody tr"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // The room of the first option: a fluoroscopy room, or CT when both are taken
    // (late in the day the earliest is tomorrow 08:00, when the demo has booked both).
    let room = ["Fluoro 1", "Fluoro 2", "CT 1"]
        .into_iter()
        .find(|r| first.contains(r))
        .unwrap_or_else(|| panic!("no room in the first option: {first}"));
    click(&s, "book-0").await;
    wait_for_text(&s.driver, "Done: ").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Scheduled"
    );
    let appointment = s
        .driver
        .find(By::Id("appointment"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        appointment.contains("Arrive by") && appointment.contains(room),
        "{appointment} (offered: {first})"
    );
    s.driver
        .screenshot(&screenshot_dir().join("booked.png"))
        .await
        .unwrap();
    // Move it: open the choices, take the second offered time, say why.
    s.driver
        .find(By::Css("#move-details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let target = s
        .driver
        .find(By::Css("label[for='move-1']"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    click(&s, "move-1").await;
    // Without a reason it is refused and nothing moves.
    click(&s, "move-appointment").await;
    wait_for_text(&s.driver, "say why the appointment moves").await;
    s.driver
        .find(By::Css("#move-details summary"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    click(&s, "move-1").await;
    fill(
        &s,
        "move-reason",
        "Patient's daughter can drive later that day",
    )
    .await;
    click(&s, "move-appointment").await;
    wait_for_text(&s.driver, "Done: ").await;
    let moved = s
        .driver
        .find(By::Id("appointment"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_ne!(moved, appointment, "the appointment moved");
    let when = target.split(" · ").next().unwrap().to_owned();
    let hhmm = when.rsplit(", ").next().unwrap().split(' ').next().unwrap();
    assert!(moved.contains(hhmm), "moved to {target}: {moved}");
    // The patient wants an earlier date if one frees up: on the waitlist.
    fill(&s, "waitlist-note", "Can come at a day's notice").await;
    click(&s, "waitlist-add").await;
    wait_for_text(&s.driver, "On the waitlist").await;
    // Cancelling needs a reason; then the case is ready to book again.
    s.driver.execute("document.querySelectorAll('form[data-confirm]').forEach(f => f.removeAttribute('data-confirm'));", Vec::new()).await.unwrap();
    fill(&s, "cancel-reason", "Patient asked for another week").await;
    click(&s, "cancel-appointment").await;
    wait_for_text(&s.driver, "Done: Release booking.").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Ready to book"
    );
    wait_for_text(&s.driver, "The earliest times that meet every rule").await;
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nurse_checks_a_patient_in_from_the_calendar() {
    if !enabled() {
        return;
    }
    let s = start().await;
    // The demo books from tomorrow; put David Cohen (ready to book) on today's list,
    // now, as the front desk would have done earlier (the API refuses past times).
    let db = s._dirs.path().join("demo").join("irflow.db");
    let store = irflow_store::Store::connect(&irflow::config::sqlite_url(&db))
        .await
        .unwrap();
    let system = irflow_domain::Actor::system("e2e");
    let cohen = store
        .list_cases(&system, &irflow_store::CaseFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.family_name == "Cohen")
        .unwrap()
        .id;
    let site = store.default_site().await.unwrap().unwrap();
    let tz = jiff::tz::TimeZone::get(&site.time_zone).unwrap();
    let now = jiff::Timestamp::now();
    let start_at =
        jiff::Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300)).unwrap();
    // The demo has its own list today: take a room and radiologist free now.
    let scheduler = store.user_by_username("scheduler").await.unwrap().actor();
    let mut appointment = None;
    'find: for room in store.rooms(site.id).await.unwrap() {
        for rad in ["radiologist2", "radiologist3", "radiologist"] {
            let option = irflow_domain::scheduling::SlotOption {
                start: start_at,
                end: start_at + jiff::SignedDuration::from_mins(20),
                room: room.id,
                radiologist: store.user_by_username(rad).await.unwrap().id.get(),
                chair: None,
            };
            if let Ok(a) = store
                .book_appointment(
                    &scheduler,
                    cohen,
                    &site,
                    &option,
                    10,
                    None,
                    now,
                    now.to_zoned_datetime(tz.clone()).date(),
                )
                .await
            {
                appointment = Some(a);
                break 'find;
            }
        }
    }
    let appointment = appointment.expect("a room and a radiologist free now");
    store.close().await;

    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "Worklist").await;
    s.driver
        .find(By::LinkText("Calendar"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, &format!("check-in-{cohen}")).await;
    let block = s
        .driver
        .find(By::Id(format!("appt-{}", appointment.id)))
        .await
        .unwrap();
    let text = block.text().await.unwrap();
    assert!(
        text.contains("Cohen, David") && text.contains("arrive by"),
        "{text}"
    );
    s.driver
        .screenshot(&screenshot_dir().join("calendar-day.png"))
        .await
        .unwrap();
    // The demo's own list for today may already have arrivals: count them first.
    let arrived = |summary: &str| -> usize {
        summary
            .split(" · ")
            .find_map(|part| part.strip_suffix(" arrived"))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(usize::MAX)
    };
    let summary_text = || async {
        match s.driver.find(By::Id("cal-summary")).await {
            Ok(e) => e.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    };
    let before = arrived(&summary_text().await);
    assert_ne!(before, usize::MAX, "the day's summary counts arrivals");
    // Check in: the block turns to arrived with the time (htmx swaps it in place).
    click(&s, &format!("check-in-{cohen}")).await;
    wait_for_text(&s.driver, "cal-st-arrived").await;
    // The day's counts follow (htmx swaps them out of band).
    let mut summary = String::new();
    for _ in 0..50 {
        summary = summary_text().await;
        if arrived(&summary) == before + 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(arrived(&summary), before + 1, "{summary}");
    let text = s
        .driver
        .find(By::Id(format!("appt-{}", appointment.id)))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("Arrived"), "{text}");
    assert!(!text.contains("Check in"), "{text}");
    s.driver
        .screenshot(&screenshot_dir().join("calendar-checked-in.png"))
        .await
        .unwrap();
    // The case page agrees.
    s.driver
        .find(By::LinkText("Cohen, David"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "case-state").await;
    assert_eq!(
        s.driver
            .find(By::Id("case-state"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "Arrived"
    );
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_opens_their_link_and_a_wrong_date_of_birth_is_refused() {
    if !enabled() {
        return;
    }
    let s = start().await;
    // Patricia Williams (born 1967-04-18) is booked in the demo.
    let db = s._dirs.path().join("demo").join("irflow.db");
    let store = irflow_store::Store::connect(&irflow::config::sqlite_url(&db))
        .await
        .unwrap();
    let williams = store
        .list_cases(
            &irflow_domain::Actor::system("e2e"),
            &irflow_store::CaseFilter::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.family_name == "Williams")
        .unwrap()
        .id;
    // The scheduler sends the link from the case page (the panel loads into it).
    sign_in(&s, "scheduler").await;
    wait_for_text(&s.driver, "sign-out").await;
    s.driver
        .goto(format!("{}/cases/{williams}", s.url))
        .await
        .unwrap();
    wait_for_text(&s.driver, "patient-link-send").await;
    choose(&s, "#patient-link-none").await;
    click(&s, "patient-link-send").await;
    wait_for_text(&s.driver, "patient-link-url").await;
    let url = s
        .driver
        .find(By::Id("patient-link-url"))
        .await
        .unwrap()
        .prop("value")
        .await
        .unwrap()
        .expect("the link is shown");
    assert!(url.starts_with(&format!("{}/p/", s.url)), "{url}");
    s.driver
        .screenshot(&screenshot_dir().join("patient-link-sent.png"))
        .await
        .unwrap();
    sign_out(&s).await;
    // The patient's browser: no staff cookies at all.
    s.driver.delete_all_cookies().await.unwrap();
    s.driver.goto(&url).await.unwrap();
    wait_for_text(&s.driver, "Your date of birth").await;
    choose(&s, "#dob-month option[value='4']").await;
    fill(&s, "dob-day", "19").await;
    fill(&s, "dob-year", "1967").await;
    click(&s, "patient-dob-submit").await;
    wait_for_text(&s.driver, "You have 4 tries left").await;
    let error = s
        .driver
        .find(By::Id("patient-dob-error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(error.contains("does not match"), "{error}");
    assert!(!s.driver.source().await.unwrap().contains("Patricia"));
    s.driver
        .screenshot(&screenshot_dir().join("patient-link-wrong-date-of-birth.png"))
        .await
        .unwrap();
    choose(&s, "#dob-month option[value='4']").await;
    fill(&s, "dob-day", "18").await;
    fill(&s, "dob-year", "1967").await;
    click(&s, "patient-dob-submit").await;
    wait_for_text(&s.driver, "Hello, Patricia").await;
    wait_for_text(&s.driver, "patient-instructions").await;
    let instructions = s
        .driver
        .find(By::Id("patient-instructions"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        instructions.contains("How to get ready") && !instructions.contains("not ready yet"),
        "{instructions}"
    );
    let arrive = s
        .driver
        .find(By::Id("patient-arrive"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(arrive.ends_with("AM") || arrive.ends_with("PM"), "{arrive}");
    s.driver
        .screenshot(&screenshot_dir().join("patient-link-appointment.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

#[path = "common/dicom.rs"]
mod synthetic_dicom;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_uploads_a_zipped_mri_and_sees_it_attached_with_thumbnails() {
    if !enabled() {
        return;
    }
    let s = start().await;
    // Yuki Tanaka (born 1980-04-22) is the referrer's patient in the demo.
    let db = s._dirs.path().join("demo").join("irflow.db");
    let store = irflow_store::Store::connect(&irflow::config::sqlite_url(&db))
        .await
        .unwrap();
    let tanaka = store
        .list_cases(
            &irflow_domain::Actor::system("e2e"),
            &irflow_store::CaseFilter::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.family_name == "Tanaka")
        .unwrap();
    // The zip the patient brought: 8 slices of a lumbar MRI from another hospital.
    let study_date = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .date()
        .yesterday()
        .unwrap();
    let study = synthetic_dicom::Study::new(
        "TANAKA^YUKI",
        "OUTSIDE-4411",
        tanaka.date_of_birth,
        study_date,
    );
    let zip_path = s._dirs.path().join("tanaka-mri.zip");
    std::fs::write(
        &zip_path,
        synthetic_dicom::zip(&study.series(1, 8, 96, 128)),
    )
    .unwrap();

    sign_in(&s, "referrer").await;
    wait_for_text(&s.driver, "My referrals").await;
    s.driver
        .goto(format!("{}/cases/{}", s.url, tanaka.id))
        .await
        .unwrap();
    // The imaging panel loads into the case page.
    wait_for_text(&s.driver, "imaging-upload-form").await;
    wait_for_text(&s.driver, "No outside MRI or CT is on file").await;
    s.driver
        .find(By::Id("imaging-files"))
        .await
        .unwrap()
        .send_keys(zip_path.to_str().unwrap())
        .await
        .unwrap();
    click(&s, "imaging-upload").await;
    // The result appears without a reload, then the list of studies refreshes.
    wait_for_text(&s.driver, "imaging-result-summary").await;
    let summary = s
        .driver
        .find(By::Id("imaging-result-summary"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(summary.starts_with("8 images stored"), "{summary}");
    let outcome = s
        .driver
        .find(By::Css("#imaging-result-studies li"))
        .await
        .unwrap();
    assert_eq!(
        outcome.attr("data-outcome").await.unwrap().as_deref(),
        Some("attached")
    );
    let progress = s.driver.find(By::Id("imaging-progress")).await.unwrap();
    assert_eq!(
        progress.prop("value").await.unwrap().as_deref(),
        Some("100")
    );
    assert_eq!(
        progress.attr("data-done").await.unwrap().as_deref(),
        Some("true")
    );
    wait_for_text(
        &s.driver,
        &format!("MRI lumbar spine, {study_date}, 1 day old"),
    )
    .await;
    // The thumbnail is a real image the browser decoded.
    let mut width = 0;
    for _ in 0..100 {
        let ret = s
            .driver
            .execute(
                "const i = document.querySelector('#imaging-studies img.imaging-thumb'); \
                 return i && i.complete ? i.naturalWidth : 0;",
                Vec::new(),
            )
            .await
            .unwrap();
        width = ret.json().as_u64().unwrap_or(0);
        if width > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        width > 0 && width <= 160,
        "a thumbnail of at most 160 px: {width}"
    );
    s.driver
        .screenshot(&screenshot_dir().join("imaging-uploaded.png"))
        .await
        .unwrap();

    // The viewer: the arrow key moves to the next slice.
    s.driver
        .find(By::Css("#imaging-studies a.imaging-line"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "data-ready=\"true\"").await;
    s.driver
        .find(By::Id("viewer-stage"))
        .await
        .unwrap()
        .send_keys(Key::Down)
        .await
        .unwrap();
    wait_for_text(&s.driver, "data-index=\"1\"").await;
    let position = s
        .driver
        .find(By::Id("viewer-position"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(position, "2");
    s.driver
        .screenshot(&screenshot_dir().join("imaging-viewer.png"))
        .await
        .unwrap();

    // Someone else's images sent for the case wait for staff, who attach them after
    // checking both identities side by side.
    let stranger = synthetic_dicom::Study::new(
        "TANAKA^YUKO",
        "OUTSIDE-9",
        "1981-04-22".parse().unwrap(),
        study_date,
    );
    let stranger_zip = s._dirs.path().join("other.zip");
    std::fs::write(
        &stranger_zip,
        synthetic_dicom::zip(&stranger.series(1, 2, 64, 64)),
    )
    .unwrap();
    s.driver
        .goto(format!("{}/cases/{}", s.url, tanaka.id))
        .await
        .unwrap();
    wait_for_text(&s.driver, "imaging-upload-form").await;
    s.driver
        .find(By::Id("imaging-files"))
        .await
        .unwrap()
        .send_keys(stranger_zip.to_str().unwrap())
        .await
        .unwrap();
    click(&s, "imaging-upload").await;
    wait_for_text(&s.driver, "data-outcome=\"queued\"").await;
    sign_out(&s).await;
    sign_in(&s, "scheduler").await;
    wait_for_text(&s.driver, "Imaging queue").await;
    s.driver
        .find(By::LinkText("Imaging queue"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "TANAKA, YUKO").await;
    s.driver
        .screenshot(&screenshot_dir().join("imaging-queue.png"))
        .await
        .unwrap();
    s.driver
        .find(By::Css(format!("a[id$='-{}']", tanaka.id)))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, "Both identities").await;
    let identities = s
        .driver
        .find(By::Id("identities"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        identities.contains("TANAKA, YUKO") && identities.contains("Tanaka, Yuki"),
        "{identities}"
    );
    s.driver
        .screenshot(&screenshot_dir().join("imaging-attach.png"))
        .await
        .unwrap();
    click(&s, "confirm-attach").await;
    wait_for_text(&s.driver, "the local MRN recorded").await;
    assert!(
        !s.driver.source().await.unwrap().contains("TANAKA, YUKO"),
        "the attached study has left the queue"
    );
    s.driver.clone().quit().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn todays_board_updates_itself_when_a_procedure_starts() {
    if !enabled() {
        return;
    }
    let s = start().await;
    // David Cohen (ready to book) is put on today's list now and checked in, as the
    // front desk would have; the checklist is then done through the API.
    let db = s._dirs.path().join("demo").join("irflow.db");
    let store = irflow_store::Store::connect(&irflow::config::sqlite_url(&db))
        .await
        .unwrap();
    let cohen = store
        .list_cases(
            &irflow_domain::Actor::system("e2e"),
            &irflow_store::CaseFilter::default(),
        )
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.family_name == "Cohen")
        .unwrap()
        .id;
    let site = store.default_site().await.unwrap().unwrap();
    let tz = jiff::tz::TimeZone::get(&site.time_zone).unwrap();
    let now = jiff::Timestamp::now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let start_at =
        jiff::Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300)).unwrap();
    let scheduler = store.user_by_username("scheduler").await.unwrap().actor();
    let mut booked = false;
    'find: for room in store.rooms(site.id).await.unwrap() {
        for rad in ["radiologist2", "radiologist3", "radiologist"] {
            let option = irflow_domain::scheduling::SlotOption {
                start: start_at,
                end: start_at + jiff::SignedDuration::from_mins(20),
                room: room.id,
                radiologist: store.user_by_username(rad).await.unwrap().id.get(),
                chair: None,
            };
            if store
                .book_appointment(&scheduler, cohen, &site, &option, 10, None, now, today)
                .await
                .is_ok()
            {
                booked = true;
                break 'find;
            }
        }
    }
    assert!(booked, "a room and a radiologist free now");
    let mut tokens = Vec::new();
    for username in ["nurse", "radiologist"] {
        let user = store.user_by_username(username).await.unwrap();
        let token = irflow_server::auth::new_secret("irf_");
        store
            .issue_api_token(
                &irflow_domain::Actor::system("e2e"),
                user.id,
                &irflow_server::auth::secret_hash(&token),
                "e2e",
            )
            .await
            .unwrap();
        tokens.push(token);
    }
    store.close().await;
    let (nurse, radiologist) = (&tokens[0], &tokens[1]);
    let api = reqwest::Client::new();
    let call = |token: &str, path: &str, body: serde_json::Value| {
        api.post(format!("{}{path}", s.url))
            .bearer_auth(token.to_owned())
            .json(&body)
            .send()
    };
    let r = call(
        nurse,
        &format!("/api/v1/cases/{cohen}/transitions"),
        serde_json::json!({"action": "check_in"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let checklist = format!("/api/v1/cases/{cohen}/checklist");
    for body in [
        serde_json::json!({"item": "identity", "value": "name_dob"}),
        serde_json::json!({"item": "consent", "method": "paper", "signer": "David Cohen", "witness": "Nora Patel, RN"}),
        serde_json::json!({"item": "escort", "value": "escort"}),
        serde_json::json!({"item": "glucose", "value": 131}),
        serde_json::json!({"item": "allergies", "value": "reviewed"}),
        serde_json::json!({"item": "pregnancy", "value": "not_possible"}),
    ] {
        let r = call(nurse, &checklist, body.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{body}: {}", r.text().await.unwrap());
    }
    let r = call(
        radiologist,
        &checklist,
        serde_json::json!({"item": "time_out", "patient": true, "procedure": true, "level": true, "side": true}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "Worklist").await;
    s.driver
        .find(By::LinkText("Today"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_text(&s.driver, &format!("id=\"day-{cohen}\"")).await;
    let column = || async {
        match s.driver.find(By::Id(format!("day-{cohen}"))).await {
            Ok(row) => row.attr("data-column").await.ok().flatten(),
            Err(_) => None,
        }
    };
    assert_eq!(column().await.as_deref(), Some("arrived"));
    let row = s
        .driver
        .find(By::Id(format!("day-{cohen}")))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(row.contains("checklist complete"), "{row}");
    // Mark this page: a reload would lose the mark.
    s.driver
        .execute("window.irflowNoReload = true;", Vec::new())
        .await
        .unwrap();
    s.driver
        .screenshot(&screenshot_dir().join("today-board-arrived.png"))
        .await
        .unwrap();
    // The radiologist starts the procedure elsewhere (the API); the board follows.
    let r = call(
        radiologist,
        &format!("/api/v1/cases/{cohen}/start"),
        serde_json::json!({}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let mut seen = None;
    for _ in 0..200 {
        seen = column().await;
        if seen.as_deref() == Some("in_room") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(seen.as_deref(), Some("in_room"), "the board moved the row");
    let kept = s
        .driver
        .execute("return window.irflowNoReload === true;", Vec::new())
        .await
        .unwrap();
    assert_eq!(
        kept.json(),
        &serde_json::Value::Bool(true),
        "the page was not reloaded"
    );
    assert!(
        s.driver
            .find(By::Id(format!("record-{cohen}")))
            .await
            .is_ok(),
        "the procedure record is linked from the row"
    );
    s.driver
        .screenshot(&screenshot_dir().join("today-board-in-room.png"))
        .await
        .unwrap();
    s.driver.clone().quit().await.unwrap();
}

/// Waits until the day board's row of a case is in a column (the board refreshes itself).
async fn wait_for_column(s: &Session, case: irflow_domain::CaseId, column: &str) {
    for _ in 0..200 {
        if let Ok(row) = s.driver.find(By::Id(format!("day-{case}"))).await
            && row.attr("data-column").await.ok().flatten().as_deref() == Some(column)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the board never showed case {case} in {column}:\n{}",
        s.driver.source().await.unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_patient_from_check_in_to_discharge_and_follow_up() {
    if !enabled() {
        return;
    }
    let s = start().await;
    // David Cohen (ready to book; diabetic, on ibuprofen; a right L5-S1 transforaminal
    // injection) is put on today's list now, as a scheduler would.
    let db = s._dirs.path().join("demo").join("irflow.db");
    let store = irflow_store::Store::connect(&irflow::config::sqlite_url(&db))
        .await
        .unwrap();
    let system = irflow_domain::Actor::system("e2e");
    let cohen = store
        .list_cases(&system, &irflow_store::CaseFilter::default())
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.family_name == "Cohen")
        .unwrap()
        .id;
    let site = store.default_site().await.unwrap().unwrap();
    let tz = jiff::tz::TimeZone::get(&site.time_zone).unwrap();
    let now = jiff::Timestamp::now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let start_at =
        jiff::Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300)).unwrap();
    let scheduler = store.user_by_username("scheduler").await.unwrap().actor();
    let mut booked = false;
    'find: for room in store.rooms(site.id).await.unwrap() {
        for rad in ["radiologist", "radiologist2", "radiologist3"] {
            let option = irflow_domain::scheduling::SlotOption {
                start: start_at,
                end: start_at + jiff::SignedDuration::from_mins(20),
                room: room.id,
                radiologist: store.user_by_username(rad).await.unwrap().id.get(),
                chair: None,
            };
            if store
                .book_appointment(&scheduler, cohen, &site, &option, 10, None, now, today)
                .await
                .is_ok()
            {
                booked = true;
                break 'find;
            }
        }
    }
    assert!(booked, "a room and a radiologist free now");

    // The nurse checks him in from today's board.
    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "sign-out").await;
    s.driver.goto(format!("{}/today", s.url)).await.unwrap();
    wait_for_column(&s, cohen, "expected").await;
    click(&s, &format!("check-in-{cohen}")).await;
    wait_for_column(&s, cohen, "arrived").await;
    click(&s, &format!("checklist-{cohen}")).await;
    wait_for_text(&s.driver, "Pre-procedure checklist").await;
    // The checklist: two identifiers, consent on paper, he drives home (monitoring),
    // glucose, allergies, then the time-out (his screening ruled out a pregnancy, so
    // the checklist does not ask again).
    choose(&s, "#identity-name_mrn").await;
    click(&s, "save-identity").await;
    wait_for_text(&s.driver, "id=\"recorded-identity\"").await;
    choose(&s, "#consent-paper").await;
    fill(&s, "consent-signer", "David Cohen").await;
    fill(&s, "consent-witness", "Nora Patel, RN").await;
    click(&s, "save-consent").await;
    wait_for_text(&s.driver, "id=\"recorded-consent\"").await;
    choose(&s, "#escort-monitoring").await;
    click(&s, "save-escort").await;
    wait_for_text(&s.driver, "id=\"recorded-escort\"").await;
    fill(&s, "glucose-value", "128").await;
    click(&s, "save-glucose").await;
    wait_for_text(&s.driver, "id=\"recorded-glucose\"").await;
    choose(&s, "#allergies-reviewed").await;
    click(&s, "save-allergies").await;
    wait_for_text(&s.driver, "id=\"recorded-allergies\"").await;
    assert!(
        !s.driver
            .source()
            .await
            .unwrap()
            .contains("id=\"item-pregnancy\"")
    );
    for part in ["patient", "procedure", "level", "side"] {
        choose(&s, &format!("#time_out-{part}")).await;
    }
    click(&s, "save-time_out").await;
    wait_for_text(&s.driver, "Checklist complete").await;
    s.driver
        .screenshot(&screenshot_dir().join("e2e-checklist-complete.png"))
        .await
        .unwrap();
    click(&s, "start-procedure").await;
    wait_for_text(&s.driver, "id=\"day-").await;
    wait_for_column(&s, cohen, "in_room").await;
    sign_out(&s).await;

    // The radiologist ends the procedure from the board and signs the record.
    sign_in(&s, "radiologist").await;
    wait_for_text(&s.driver, "sign-out").await;
    s.driver.goto(format!("{}/today", s.url)).await.unwrap();
    wait_for_column(&s, cohen, "in_room").await;
    click(&s, &format!("end-{cohen}")).await;
    wait_for_column(&s, cohen, "recovery").await;
    click(&s, &format!("record-{cohen}")).await;
    wait_for_text(&s.driver, "id=\"record-form\"").await;
    // A transforaminal injection: the form suggests dexamethasone, citing the FDA.
    let suggestion = s
        .driver
        .find(By::Id("steroid-suggestion"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        suggestion.contains("dexamethasone") && suggestion.contains("FDA"),
        "{suggestion}"
    );
    assert_eq!(
        s.driver
            .find(By::Id("levels"))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("L5-S1"),
        "the order's levels are filled in"
    );
    for (select, value) in [
        ("guidance", "fluoroscopy"),
        ("contrast_agent", "iohexol"),
        ("steroid_agent", "dexamethasone"),
        ("anaesthetic_agent", "lidocaine"),
        ("complication", "none"),
    ] {
        choose(&s, &format!("#{select} option[value='{value}']")).await;
    }
    for (field, value) in [
        ("contrast_ml", "1.5"),
        ("steroid_mg", "10"),
        ("anaesthetic_mg", "20"),
        ("fluoroscopy_seconds", "41"),
        ("dap", "230"),
        ("pain_before", "8"),
        ("pain_after", "2"),
        ("password", "demo"),
    ] {
        fill(&s, field, value).await;
    }
    click(&s, "record-sign").await;
    wait_for_text(&s.driver, "id=\"signed-record\"").await;
    let signed = s
        .driver
        .find(By::Id("signed-record"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(signed.contains("dexamethasone 10 mg"), "{signed}");
    assert!(signed.contains("Dr. Rachel Kim"), "{signed}");
    s.driver
        .screenshot(&screenshot_dir().join("e2e-procedure-record.png"))
        .await
        .unwrap();
    sign_out(&s).await;

    // The nurse records vitals and discharges him: he drives, so leaving now, before
    // the monitoring time, needs an override with a reason.
    sign_in(&s, "nurse").await;
    wait_for_text(&s.driver, "sign-out").await;
    s.driver.goto(format!("{}/today", s.url)).await.unwrap();
    wait_for_column(&s, cohen, "recovery").await;
    click(&s, &format!("recovery-{cohen}")).await;
    wait_for_text(&s.driver, "id=\"vitals-form\"").await;
    // The minutes left count down on the page, without a reload: moved to end 90
    // seconds from now, the page soon says two minutes.
    wait_for_text(&s.driver, "minutes left</strong>").await;
    s.driver
        .execute(
            "document.querySelector('[data-left-until]').setAttribute('data-left-until', new Date(Date.now() + 90000).toISOString()); return null;",
            Vec::new(),
        )
        .await
        .unwrap();
    wait_for_text(&s.driver, "2 minutes left</strong>").await;
    for (field, value) in [
        ("vitals-systolic", "128"),
        ("vitals-diastolic", "80"),
        ("vitals-pulse", "72"),
        ("vitals-spo2", "98"),
        ("vitals-pain", "2"),
    ] {
        fill(&s, field, value).await;
    }
    click(&s, "save-vitals").await;
    wait_for_text(&s.driver, "id=\"vitals-table\"").await;
    for criterion in s
        .driver
        .find_all(By::Css("input[name='criteria']"))
        .await
        .unwrap()
    {
        if !criterion.is_selected().await.unwrap() {
            criterion.click().await.unwrap();
        }
    }
    click(&s, "discharge-patient").await;
    wait_for_text(&s.driver, "id=\"discharge-error\"").await;
    assert!(
        s.driver.find(By::Id("discharged-panel")).await.is_err(),
        "not discharged without an override"
    );
    for criterion in s
        .driver
        .find_all(By::Css("input[name='criteria']"))
        .await
        .unwrap()
    {
        if !criterion.is_selected().await.unwrap() {
            criterion.click().await.unwrap();
        }
    }
    fill(
        &s,
        "override-reason",
        "Stable, pain 2/10; his daughter arrived to drive him home.",
    )
    .await;
    click(&s, "discharge-patient").await;
    wait_for_text(&s.driver, "id=\"discharged-panel\"").await;
    s.driver
        .screenshot(&screenshot_dir().join("e2e-discharged.png"))
        .await
        .unwrap();

    // He phones in about his follow-up; the nurse records it from his case.
    s.driver
        .goto(format!("{}/cases/{cohen}", s.url))
        .await
        .unwrap();
    wait_for_text(&s.driver, "id=\"case-follow-up\"").await;
    click(&s, "case-follow-up").await;
    wait_for_text(&s.driver, "id=\"case-call-form\"").await;
    fill(&s, "pain_now", "1").await;
    fill(&s, "relief_percent", "80").await;
    click(&s, "case-call-save").await;
    wait_for_text(&s.driver, "Followed up").await;
    s.driver
        .screenshot(&screenshot_dir().join("e2e-followed-up.png"))
        .await
        .unwrap();

    let detail = store.case_detail(&system, cohen).await.unwrap();
    assert_eq!(detail.case.state, irflow_domain::CaseState::FollowedUp);
    let steps: Vec<&str> = detail.timeline.iter().map(|e| e.action.as_str()).collect();
    for step in [
        "check_in",
        "start_procedure",
        "end_procedure",
        "sign_procedure_record",
        "discharge",
        "record_follow_up",
    ] {
        assert!(steps.contains(&step), "{step} in {steps:?}");
    }
    let day = store.day_status(&system, cohen).await.unwrap().unwrap();
    assert!(day.discharge_override.is_some(), "the override is kept");
    store.close().await;
    s.driver.clone().quit().await.unwrap();
}
