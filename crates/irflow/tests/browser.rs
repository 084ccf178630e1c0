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
