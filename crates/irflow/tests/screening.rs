//! Screening over the API and the CLI: the same facts give the same decision; the
//! case moves with the decision; actions are tracked until the case is ready.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

async fn post(app: &App, token: &str, path: &str, body: &Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(app.at(path))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn cli_screen(facts: &Value) -> (i32, String, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .arg("screen")
        .env_remove("IRFLOW_TIME_ZONE")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(facts.to_string().as_bytes())
        .await
        .unwrap();
    let out = child.wait_with_output().await.unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn days_from_now(days: i64) -> String {
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    (jiff::Timestamp::now().to_zoned_datetime(tz).date() + jiff::Span::new().days(days)).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_and_the_cli_agree_and_actions_lead_to_ready() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    // Robert Johnson's cervical transforaminal injection (intermediate risk), waiting on an action.
    let case = app.case_of("Johnson").await;
    let facts = json!({
        "medications": [{"drug": "apixaban", "last_dose": days_from_now(-1), "indication": "atrial fibrillation"}],
        "diabetes": {"insulin": false},
        "escort_available": false,
        "symptoms": "mild"
    });
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/screening"),
        &facts,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"]["decision"], "clear_with_actions");
    assert_eq!(v["decision"]["earliest_safe_date"], days_from_now(2));
    assert_eq!(
        v["decision"]["uses_unverified_rules"], true,
        "apixaban's row is UNVERIFIED"
    );
    assert_eq!(
        v["decision"]["rule_pack"]["name"],
        "irflow default (ASRA-2018)"
    );
    assert_eq!(v["case_state"], "awaiting_action");
    let actions = v["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0]["kind"], "prescriber_clearance");

    // The CLI, given the same facts with the case's procedure, decides the same.
    let detail: Value = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}")))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut cli_facts = facts.clone();
    cli_facts["procedure"] = detail["procedure"]["code"].clone();
    let (code, stdout, stderr) = cli_screen(&cli_facts).await;
    assert_eq!(code, 0, "{stderr}");
    let cli: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(cli, v["decision"], "same facts, same decision");

    // Completing the action needs the prescriber's name; then the case is ready.
    let action = actions[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/cases/{case}/actions/{action}");
    let (status, v) = post(&app, &nurse, &path, &json!({"cleared": true})).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prescriber")
    );
    let (status, v) = post(
        &app,
        &nurse,
        &path,
        &json!({"cleared": true, "decided_by": "Dr. Lee, cardiology", "decided_at": "2026-01-02T10:00:00-05:00", "notes": "hold 3 days"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["case_state"], "ready");
    assert_eq!(v["actions"][0]["status"], "done");
    assert_eq!(
        v["actions"][0]["completed_at"], "2026-01-02T10:00:00-05:00",
        "when the prescriber decided"
    );
    let (status, _) = post(
        &app,
        &nurse,
        &path,
        &json!({"cleared": true, "decided_by": "again"}),
    )
    .await;
    assert_eq!(status, 409, "done once");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferrals_reviews_and_refusals() {
    let app = App::start().await;
    let nurse = app.token_for("nurse").await;
    let case = app.case_of("Rahman").await;
    let url = format!("/api/v1/cases/{case}/screening");
    // Antibiotics for an infection, stopped 3 days ago: deferred to last dose + 10 days.
    let (status, v) = post(
        &app,
        &nurse,
        &url,
        &json!({"antibiotics": [{"reason": "active_infection", "last_dose": days_from_now(-3)}]}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"]["decision"], "defer");
    assert_eq!(v["case_state"], "deferred");
    assert_eq!(v["decision"]["earliest_safe_date"], days_from_now(7));
    let case_json: Value = reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}")))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(case_json["deferred_until"], days_from_now(7));

    // The stored answers, re-evaluated for another date (what moving an appointment would mean).
    let r = reqwest::Client::new()
        .get(app.at(&format!(
            "/api/v1/cases/{case}/screening/for-date?date={}",
            days_from_now(5)
        )))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["decision"], "defer",
        "5 days from now is inside the 10-day window"
    );
    assert_eq!(v["evaluated_for"], days_from_now(5));
    let v: Value = reqwest::Client::new()
        .get(app.at(&format!(
            "/api/v1/cases/{case}/screening/for-date?date={}",
            days_from_now(8)
        )))
        .bearer_auth(&nurse)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["decision"], "clear",
        "8 days from now: last dose + 11 days"
    );

    // Re-screened with a thrombotic-risk condition: review, a radiologist signs off.
    let (status, v) = post(
        &app,
        &nurse,
        &url,
        &json!({"thrombotic_risk": ["stroke_or_tia_3_months"], "pregnancy_possible": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["decision"]["decision"], "review");
    assert_eq!(v["case_state"], "awaiting_action");
    let review = v["actions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "radiologist_review")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let (status, _) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{case}/actions/{review}"),
        &json!({"cleared": true}),
    )
    .await;
    assert_eq!(status, 403, "a nurse cannot sign off a radiologist review");
    let rad = app.token_for("radiologist").await;
    let (status, v) = post(
        &app,
        &rad,
        &format!("/api/v1/cases/{case}/actions/{review}"),
        &json!({"cleared": true, "notes": "negative pregnancy test on the day"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["case_state"], "awaiting_action",
        "the prescriber decision is still open"
    );

    // Bad facts: refused, nothing changes.
    for (body, needle) in [
        (
            json!({"medications": [{"drug": "apixaban", "last_dose": "yesterday"}]}),
            "medications[0].last_dose",
        ),
        (json!({"procedure": "64483"}), "the case is for"),
        (json!({"thrombotic_risk": ["broken_heart"]}), "broken_heart"),
        (json!({"mood": "good"}), "unknown field"),
    ] {
        let (status, v) = post(&app, &nurse, &url, &body).await;
        assert!(status == 400 || status == 422, "{status} {v}");
        assert!(
            v["error"]["message"].as_str().unwrap().contains(needle),
            "{needle} in {v}"
        );
    }
    // Referrers cannot screen; a referred case cannot be screened yet.
    let referrer = app.token_for("referrer").await;
    let (status, _) = post(&app, &referrer, &url, &json!({})).await;
    assert!(status == 403 || status == 404);
    let referred = app.case_in_state("referred").await;
    let (status, v) = post(
        &app,
        &nurse,
        &format!("/api/v1/cases/{referred}/screening"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_refuses_bad_facts_with_a_clear_message() {
    let (code, _, stderr) =
        cli_screen(&json!({"procedure": "64483", "labs": {"inr": "high"}})).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("labs.inr"), "{stderr}");
    let (code, _, stderr) = cli_screen(&json!({"procedure": "99999"})).await;
    assert_ne!(code, 0);
    assert!(stderr.contains("not in the rule pack"), "{stderr}");
    // A broken or missing rule pack is refused, naming the file.
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(["screen", "--rules"])
        .arg(dir.path())
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("pack.toml"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (code, stdout, _) = cli_screen(&json!({"procedure": "64493", "today": "2026-11-26"})).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        (v["decision"].as_str(), v["earliest_safe_date"].as_str()),
        (Some("clear"), Some("2026-11-26"))
    );
}
