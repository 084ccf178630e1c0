//! The procedure record, the follow-up and the outcomes, over HTTP against the real
//! app seeded with the demo department (whose four weeks of history give signed
//! records, discharges and follow-ups): signing refused field by field then accepted,
//! an amendment as a new version, the transforaminal steroid suggestion, the report
//! to the referrer, the nurses' follow-up list, a phone follow-up and a patient's
//! answers through their link closing the case, and the outcomes from known data.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, browser, csrf_of};
use serde_json::{Value, json};

async fn get_json(app: &App, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn case_json(app: &App, token: &str, case: i64) -> Value {
    let (status, v) = get_json(app, token, &format!("/api/v1/cases/{case}")).await;
    assert_eq!(status, 200, "{v}");
    v
}

async fn page(client: &reqwest::Client, app: &App, path: &str) -> (u16, String) {
    let r = client.get(app.at(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The record form as the radiologist fills it for the demo's yesterday patient
/// (Thérèse Dubois, a right sacroiliac joint injection under fluoroscopy).
fn sacroiliac_form(csrf: &str) -> Vec<(&'static str, String)> {
    [
        ("csrf", csrf),
        ("procedure", "27096"),
        ("levels", ""),
        ("side", "right"),
        ("guidance", "fluoroscopy"),
        ("contrast_agent", "iohexol"),
        ("contrast_ml", "1"),
        ("steroid_agent", "triamcinolone"),
        ("steroid_mg", "40"),
        ("anaesthetic_agent", "lidocaine"),
        ("anaesthetic_mg", "10"),
        ("fluoroscopy_seconds", "22"),
        ("dap", "96.5"),
        ("dlp", ""),
        ("pain_before", "6"),
        ("pain_after", "1"),
        ("complication", "none"),
        ("complication_text", ""),
        ("notes", ""),
        ("amendment_reason", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect()
}

fn with(
    mut form: Vec<(&'static str, String)>,
    changes: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    for (k, v) in changes {
        match form.iter_mut().find(|(f, _)| f == k) {
            Some(slot) => slot.1 = (*v).to_owned(),
            None => form.push((k, (*v).to_owned())),
        }
    }
    form
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_checks_every_field_then_signs_and_an_amendment_is_a_new_version() {
    let app = App::start().await;
    let dubois = app.case_of("Dubois").await;
    let rad_token = app.token_for("radiologist").await;
    let nurse_token = app.token_for("nurse").await;
    // Yesterday's record is still a draft.
    let (_, record) = get_json(
        &app,
        &rad_token,
        &format!("/api/v1/cases/{dubois}/procedure-record"),
    )
    .await;
    assert_eq!(record["versions"].as_array().unwrap().len(), 1, "{record}");
    assert_eq!(record["versions"][0]["status"], "draft");
    assert_eq!(record["current_version"], Value::Null);
    assert_eq!(
        record["steroid_suggestion"],
        Value::Null,
        "not transforaminal"
    );

    let rad = app.signed_in("radiologist").await;
    let path = format!("/cases/{dubois}/procedure-record");
    let (status, html) = page(&rad, &app, &path).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"record-form\""),
        "the radiologist gets the form"
    );
    assert!(!html.contains("id=\"steroid-suggestion\""));
    let csrf = csrf_of(&html);

    // Refused: a level on a procedure that takes none, a missing pain score, an
    // impossible dose, a CT value under fluoroscopy — nothing is stored.
    let bad = with(
        sacroiliac_form(&csrf),
        &[
            ("levels", "L5-S1"),
            ("pain_after", ""),
            ("steroid_mg", "400"),
            ("dlp", "120"),
            ("intent", "sign"),
            ("password", "demo"),
        ],
    );
    let r = rad.post(app.at(&path)).form(&bad).send().await.unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    for id in [
        "levels-error",
        "pain_after-error",
        "steroid_mg-error",
        "dlp-error",
    ] {
        assert!(html.contains(&format!("id=\"{id}\"")), "{id} shown");
    }
    assert!(html.contains("takes no spinal level"), "{html}");
    assert!(html.contains("value=\"400\""), "what was typed is kept");
    let (_, record) = get_json(
        &app,
        &rad_token,
        &format!("/api/v1/cases/{dubois}/procedure-record"),
    )
    .await;
    assert_eq!(record["versions"][0]["status"], "draft");
    assert_eq!(
        record["versions"][0]["steroid_mg"], "40",
        "the draft is untouched"
    );

    // A wrong password signs nothing.
    let wrong = with(
        sacroiliac_form(&csrf),
        &[("intent", "sign"), ("password", "not-it")],
    );
    let r = rad.post(app.at(&path)).form(&wrong).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not your password"));
    // A nurse cannot sign.
    let nurse = app.signed_in("nurse").await;
    let (_, nurse_html) = page(&nurse, &app, &path).await;
    assert!(!nurse_html.contains("id=\"record-form\""));
    let r = nurse
        .post(app.at(&path))
        .form(&with(
            sacroiliac_form(&csrf_of(&nurse_html)),
            &[("intent", "sign"), ("password", "demo")],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Signed.
    let good = with(
        sacroiliac_form(&csrf),
        &[("intent", "sign"), ("password", "demo")],
    );
    let r = rad.post(app.at(&path)).form(&good).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/cases/{dubois}/procedure-record?done=signed").as_str()
    );
    let (_, record) = get_json(
        &app,
        &nurse_token,
        &format!("/api/v1/cases/{dubois}/procedure-record"),
    )
    .await;
    let versions = record["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0]["status"], "signed");
    assert_eq!(versions[0]["signed_by"]["username"], "radiologist");
    assert_eq!(versions[0]["dap"], "96.5");
    assert_eq!(record["current_version"], 1);
    let case = case_json(&app, &nurse_token, dubois).await;
    assert!(
        case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "sign_procedure_record"),
        "signing is on the timeline"
    );
    // The report went to the referring provider's email, through the outbox.
    let (_, messages) = get_json(
        &app,
        &nurse_token,
        &format!("/api/v1/cases/{dubois}/messages"),
    )
    .await;
    let report = messages["messages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "procedure_report")
        .unwrap_or_else(|| panic!("a report message: {messages}"));
    assert_eq!(
        report["recipient"],
        "olivia.brooks@riversideortho.example.org"
    );
    let (_, html) = page(&rad, &app, &path).await;
    assert!(html.contains("id=\"signed-record\""));
    assert!(
        html.contains("triamcinolone 40 mg"),
        "the report shows the dose"
    );

    // Amending: the reason is required, and the first version stays as signed.
    let amend = with(
        sacroiliac_form(&csrf),
        &[
            ("pain_after", "2"),
            ("intent", "sign"),
            ("password", "demo"),
        ],
    );
    let r = rad.post(app.at(&path)).form(&amend).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("id=\"amendment_reason-error\"")
    );
    let amend = with(
        amend,
        &[(
            "amendment_reason",
            "Pain after was 2, not 1 (recovery note).",
        )],
    );
    let r = rad.post(app.at(&path)).form(&amend).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (_, record) = get_json(
        &app,
        &rad_token,
        &format!("/api/v1/cases/{dubois}/procedure-record"),
    )
    .await;
    let versions = record["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2);
    assert_eq!(record["current_version"], 2);
    assert_eq!(versions[0]["pain_after"], "1", "version 1 unchanged");
    assert_eq!(versions[1]["pain_after"], "2");
    assert_eq!(
        versions[1]["amendment_reason"],
        "Pain after was 2, not 1 (recovery note)."
    );
    let case = case_json(&app, &nurse_token, dubois).await;
    assert!(
        case["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "amend_procedure_record")
    );

    // The API signs too, with an explicit confirmation, and names every bad field.
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{dubois}/procedure-record/sign")))
        .bearer_auth(&rad_token)
        .json(&json!({"procedure": "27096", "side": "right", "confirm": "sign"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let body: Value = r.json().await.unwrap();
    let fields: Vec<&str> = body["error"]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["field"].as_str().unwrap())
        .collect();
    for f in [
        "guidance",
        "contrast_agent",
        "steroid_agent",
        "pain_before",
        "complication",
        "amendment_reason",
    ] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{dubois}/procedure-record/sign")))
        .bearer_auth(&nurse_token)
        .json(&json!({"procedure": "27096", "confirm": "sign"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "nurses do not sign");
    // Nothing changed by the refusals.
    let (_, record) = get_json(
        &app,
        &rad_token,
        &format!("/api/v1/cases/{dubois}/procedure-record"),
    )
    .await;
    assert_eq!(record["versions"].as_array().unwrap().len(), 2);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transforaminal_records_suggest_a_non_particulate_steroid_with_its_source() {
    let app = App::start().await;
    // Piotr Kowalczyk had a lumbar transforaminal injection (64483) ten days ago.
    let kowalczyk = app.case_of("Kowalczyk").await;
    let rad = app.signed_in("radiologist2").await;
    let path = format!("/cases/{kowalczyk}/procedure-record");
    let (status, html) = page(&rad, &app, &path).await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"steroid-suggestion\""), "{html}");
    assert!(html.contains("non-particulate steroid (dexamethasone)"));
    assert!(html.contains("FDA Drug Safety Communication, 23 April 2014"));
    assert!(
        !html.contains("id=\"particulate-warning\""),
        "dexamethasone was used"
    );
    let token = app.token_for("radiologist2").await;
    let (_, record) = get_json(
        &app,
        &token,
        &format!("/api/v1/cases/{kowalczyk}/procedure-record"),
    )
    .await;
    assert_eq!(record["steroid_suggestion"]["agent"], "dexamethasone");
    assert_eq!(
        record["steroid_suggestion"]["rule_id"],
        "fda-2014-transforaminal-non-particulate"
    );
    assert!(
        record["steroid_suggestion"]["source"]
            .as_str()
            .unwrap()
            .starts_with("FDA-2014: ")
    );
    // An amendment choosing a particulate steroid shows the warning beside the field
    // when it comes back for another fix.
    let csrf = csrf_of(&html);
    let r = rad
        .post(app.at(&path))
        .form(&[
            ("csrf", csrf.as_str()),
            ("intent", "sign"),
            ("password", "demo"),
            ("procedure", "64483"),
            ("levels", "L3-L4"),
            ("side", "left"),
            ("guidance", "fluoroscopy"),
            ("contrast_agent", "iohexol"),
            ("contrast_ml", "1.5"),
            ("steroid_agent", "triamcinolone"),
            ("steroid_mg", "40"),
            ("anaesthetic_agent", "lidocaine"),
            ("anaesthetic_mg", "20"),
            ("fluoroscopy_seconds", "34"),
            ("dap", "205"),
            ("pain_before", "8"),
            ("pain_after", "3"),
            ("complication", "none"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422, "no amendment reason, no acknowledgement");
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"particulate-warning\""), "{html}");
    assert!(html.contains("triamcinolone is a particulate steroid"));
    assert!(
        html.contains("id=\"particulate_acknowledged-error\""),
        "the signature asks for the acknowledgement: {html}"
    );
    // The API refuses it too, naming the field, and stores nothing; with the
    // acknowledgement the amendment is signed and says so.
    let versions = |v: &Value| v["versions"].as_array().unwrap().len();
    let before = versions(&record);
    let body = json!({
        "procedure": "64483", "levels": "L3-L4", "side": "left", "guidance": "fluoroscopy",
        "contrast_agent": "iohexol", "contrast_ml": "1.5", "steroid_agent": "triamcinolone",
        "steroid_mg": "40", "anaesthetic_agent": "lidocaine", "anaesthetic_mg": "20",
        "fluoroscopy_seconds": "34", "dap": "205", "pain_before": "8", "pain_after": "3",
        "complication": "none", "amendment_reason": "Steroid recorded wrongly",
        "confirm": "sign"
    });
    let sign = format!("/api/v1/cases/{kowalczyk}/procedure-record/sign");
    let r = reqwest::Client::new()
        .post(app.at(&sign))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(v.to_string().contains("particulate_acknowledged"), "{v}");
    assert!(v.to_string().contains("FDA-2014"), "{v}");
    let (_, now) = get_json(
        &app,
        &token,
        &format!("/api/v1/cases/{kowalczyk}/procedure-record"),
    )
    .await;
    assert_eq!(versions(&now), before, "nothing stored");
    let mut acknowledged = body.clone();
    acknowledged["particulate_acknowledged"] = json!(true);
    let r = reqwest::Client::new()
        .post(app.at(&sign))
        .bearer_auth(&token)
        .json(&acknowledged)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let (_, now) = get_json(
        &app,
        &token,
        &format!("/api/v1/cases/{kowalczyk}/procedure-record"),
    )
    .await;
    let last = now["versions"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["particulate_acknowledged"], true, "{last}");
    assert_eq!(last["steroid_agent"], "triamcinolone", "{last}");
    // A sacroiliac joint injection gets no suggestion.
    let farouk = app.case_of("Farouk").await;
    let (_, html) = page(&rad, &app, &format!("/cases/{farouk}/procedure-record")).await;
    assert!(!html.contains("id=\"steroid-suggestion\""));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_ups_due_are_listed_and_a_phone_call_closes_the_case() {
    let app = App::start().await;
    let nurse_token = app.token_for("nurse").await;
    let (status, list) = get_json(&app, &nurse_token, "/api/v1/follow-ups").await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["follow_up_days"], 14);
    let due: Vec<&str> = list["follow_ups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["patient"]["name"].as_str().unwrap())
        .collect();
    for name in ["Whitfield, Margaret", "Fontaine, Luc", "Sandoval, Lucía"] {
        assert!(due.contains(&name), "{name} is due: {due:?}");
    }
    for name in ["Lindqvist, Erik", "Marchetti, Giulia", "Kowalczyk, Piotr"] {
        assert!(!due.contains(&name), "{name} is not due: {due:?}");
    }
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .date()
        .to_string();
    for f in list["follow_ups"].as_array().unwrap() {
        assert!(f["due_on"].as_str().unwrap() <= today.as_str(), "{f}");
    }
    // Sandoval answered the form with a problem: a nurse calls.
    let sandoval = list["follow_ups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["patient"]["name"] == "Sandoval, Lucía")
        .unwrap();
    assert_eq!(sandoval["patient_answer"]["method"], "patient_form");
    assert_eq!(sandoval["patient_answer"]["closed_case"], false);
    // Everything coming up too.
    let (_, all) = get_json(&app, &nurse_token, "/api/v1/follow-ups?show=all").await;
    let names: Vec<&str> = all["follow_ups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["patient"]["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"Kowalczyk, Piotr") && names.contains(&"Marchetti, Giulia"));

    // Referrers and admins do not get the list.
    for who in ["referrer", "admin"] {
        let token = app.token_for(who).await;
        let (status, _) = get_json(&app, &token, "/api/v1/follow-ups").await;
        assert_eq!(status, 403, "{who}");
    }

    // The nurse's page lists them, with the call form.
    let nurse = app.signed_in("nurse").await;
    let (status, html) = page(&nurse, &app, "/follow-ups").await;
    assert_eq!(status, 200);
    let whitfield = app.case_of("Whitfield").await;
    assert!(html.contains(&format!("id=\"follow-up-{whitfield}\"")));
    assert!(html.contains(&format!("id=\"call-form-{whitfield}\"")));
    assert!(
        html.contains("My neck is still sore"),
        "the patient's problem is shown"
    );
    assert!(
        html.contains("href=\"/follow-ups\""),
        "in the nurse's navigation"
    );
    let csrf = csrf_of(&html);

    // A bad answer changes nothing.
    let r = nurse
        .post(app.at(&format!("/cases/{whitfield}/follow-up")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("pain_now", "11"),
            ("relief_percent", "70"),
            ("problems", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(r.text().await.unwrap().contains("not a pain score"));
    assert_eq!(
        case_json(&app, &nurse_token, whitfield).await["state"],
        "discharged"
    );
    // A scheduler may not record it.
    let scheduler = app.token_for("scheduler").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{whitfield}/follow-up")))
        .bearer_auth(&scheduler)
        .json(&json!({"pain_now": 2, "relief_percent": 70}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // The call closes the case.
    let r = nurse
        .post(app.at(&format!("/cases/{whitfield}/follow-up")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("pain_now", "2"),
            ("relief_percent", "70"),
            ("problems", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let case = case_json(&app, &nurse_token, whitfield).await;
    assert_eq!(case["state"], "followed_up");
    let last = case["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "record_follow_up");
    assert_eq!(last["actor"]["username"], "nurse");
    let (_, html) = page(&nurse, &app, "/follow-ups").await;
    assert!(
        !html.contains(&format!("id=\"follow-up-{whitfield}\"")),
        "off the list"
    );
    // Once closed, a second one is refused.
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{whitfield}/follow-up")))
        .bearer_auth(&nurse_token)
        .json(&json!({"pain_now": 1, "relief_percent": 90}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    // The API records a call too (Fontaine).
    let fontaine = app.case_of("Fontaine").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{fontaine}/follow-up")))
        .bearer_auth(&nurse_token)
        .json(&json!({"pain_now": 3, "relief_percent": "55", "problems": "Some stiffness the first day"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["method"], "phone");
    assert_eq!(body["relief_percent"], 55);
    assert_eq!(
        case_json(&app, &nurse_token, fontaine).await["state"],
        "followed_up"
    );
    app.stop().await;
}

/// Staff make a link for the patient; returns its URL.
async fn patient_link(app: &App, case: i64) -> String {
    let token = app.token_for("nurse").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/patient-link")))
        .bearer_auth(token)
        .json(&json!({"channel": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    v["url"].as_str().unwrap().to_owned()
}

fn form_field(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

/// Opens the link as the patient and passes the date-of-birth check.
async fn as_patient(
    url: &str,
    (year, month, day): (&str, &str, &str),
) -> (reqwest::Client, String) {
    let patient = browser();
    let html = patient.get(url).send().await.unwrap().text().await.unwrap();
    let r = patient
        .post(url)
        .form(&[
            ("csrf", form_field(&html, "csrf").as_str()),
            ("lang", "en"),
            ("month", month),
            ("day", day),
            ("year", year),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = patient.get(url).send().await.unwrap().text().await.unwrap();
    (patient, html)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patient_answers_the_follow_up_through_their_link() {
    let app = App::start().await;
    let nurse_token = app.token_for("nurse").await;
    // Margaret Whitfield (born 1950-11-23) was discharged over two weeks ago.
    let whitfield = app.case_of("Whitfield").await;
    let url = patient_link(&app, whitfield).await;
    let (patient, html) = as_patient(&url, ("1950", "11", "23")).await;
    assert!(html.contains("id=\"patient-follow-up-form\""), "{html}");
    let post = |fields: Vec<(&'static str, String)>| {
        let patient = patient.clone();
        let url = format!("{url}/follow-up");
        async move { patient.post(&url).form(&fields).send().await.unwrap() }
    };
    let csrf = form_field(&html, "csrf");
    // Not a number: told so, nothing stored.
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("lang", "en".into()),
        ("pain_now", "a lot".into()),
        ("relief_percent", "50".into()),
        ("problems", String::new()),
    ])
    .await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("whole number from 0 to 10")
    );
    assert_eq!(
        case_json(&app, &nurse_token, whitfield).await["state"],
        "discharged"
    );
    // Without the form's token: refused.
    let r = post(vec![
        ("csrf", "forged".into()),
        ("pain_now", "2".into()),
        ("relief_percent", "80".into()),
    ])
    .await;
    assert_eq!(r.status(), 403);
    // Answered: the case closes as followed up, by the patient's link.
    let r = post(vec![
        ("csrf", csrf.clone()),
        ("lang", "en".into()),
        ("pain_now", "1".into()),
        ("relief_percent", "85".into()),
        ("problems", String::new()),
    ])
    .await;
    assert_eq!(r.status(), 303);
    let html = patient
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("id=\"patient-follow-up-done\""));
    assert!(!html.contains("id=\"patient-follow-up-form\""));
    let case = case_json(&app, &nurse_token, whitfield).await;
    assert_eq!(case["state"], "followed_up");
    let last = case["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["action"], "record_follow_up");
    assert!(
        last["actor"]["username"]
            .as_str()
            .unwrap()
            .starts_with("patient-link:")
    );
    assert!(last["reason"].as_str().unwrap().contains("85% relief"));
    // A second answer is refused.
    let r = post(vec![
        ("csrf", csrf),
        ("lang", "en".into()),
        ("pain_now", "0".into()),
        ("relief_percent", "100".into()),
    ])
    .await;
    assert_eq!(r.status(), 409);

    // Giulia Marchetti's follow-up is not due yet: no form, and a post is refused.
    let marchetti = app.case_of("Marchetti").await;
    let url = patient_link(&app, marchetti).await;
    let (patient, html) = as_patient(&url, ("1980", "03", "15")).await;
    assert!(!html.contains("id=\"patient-follow-up-form\""));
    let r = patient
        .post(format!("{url}/follow-up"))
        .form(&[
            ("csrf", form_field(&html, "csrf").as_str()),
            ("pain_now", "2"),
            ("relief_percent", "80"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        case_json(&app, &nurse_token, marchetti).await["state"],
        "discharged"
    );

    // Luc Fontaine reports a problem: the case stays open for the nurse's call.
    let fontaine = app.case_of("Fontaine").await;
    let url = patient_link(&app, fontaine).await;
    let (patient, html) = as_patient(&url, ("1976", "06", "09")).await;
    let r = patient
        .post(format!("{url}/follow-up"))
        .form(&[
            ("csrf", form_field(&html, "csrf").as_str()),
            ("lang", "en"),
            ("pain_now", "6"),
            ("relief_percent", "10"),
            ("problems", "Redness at the injection site since Tuesday"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = patient
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("A nurse will call you"));
    assert_eq!(
        case_json(&app, &nurse_token, fontaine).await["state"],
        "discharged"
    );
    let (_, list) = get_json(&app, &nurse_token, "/api/v1/follow-ups").await;
    let f = list["follow_ups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["case_id"] == fontaine)
        .unwrap()
        .clone();
    assert_eq!(
        f["patient_answer"]["problems"],
        "Redness at the injection site since Tuesday"
    );
    app.stop().await;
}

fn outcome<'a>(v: &'a Value, code: &str) -> &'a Value {
    v["procedures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["procedure"] == code)
        .unwrap_or_else(|| panic!("{code} in {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outcomes_count_procedures_complications_and_relief_from_known_data() {
    let app = App::start().await;
    let token = app.token_for("nurse").await;
    let (status, v) = get_json(&app, &token, "/api/v1/outcomes").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["relief_threshold_percent"], 50);
    // The demo's four weeks (see crates/irflow/src/demo_history.rs), and its two older
    // cases (Miller followed up, Brown discharged): signed records, complications and
    // the latest follow-up answer of each patient.
    // (code, done, vasovagal, dural puncture, bleeding, followed up, >= 50% relief)
    let expected = [
        ("64483", 6, 1, 0, 0, 4, 4),
        ("62323", 3, 0, 0, 0, 1, 1),
        ("64493", 4, 1, 0, 0, 2, 1),
        ("27096", 2, 0, 0, 0, 1, 0),
        ("64479", 2, 0, 0, 1, 2, 1),
        ("62321", 1, 0, 1, 0, 1, 0),
        ("64490", 1, 0, 0, 0, 1, 1),
    ];
    assert_eq!(
        v["procedures"].as_array().unwrap().len(),
        expected.len(),
        "{v}"
    );
    for (code, done, vaso, dural, bleeding, followed, relieved) in expected {
        let o = outcome(&v, code);
        assert_eq!(o["done"], done, "{code} done");
        assert_eq!(o["complications"]["vasovagal"], vaso, "{code}");
        assert_eq!(o["complications"]["dural_puncture"], dural, "{code}");
        assert_eq!(o["complications"]["bleeding"], bleeding, "{code}");
        assert_eq!(o["followed_up"], followed, "{code}");
        assert_eq!(o["relief_at_least_50"], relieved, "{code}");
    }
    assert_eq!(outcome(&v, "64483")["relief_at_least_50_percent"], 100);
    assert_eq!(outcome(&v, "64493")["relief_at_least_50_percent"], 50);
    assert_eq!(outcome(&v, "27096")["relief_at_least_50_percent"], 0);
    assert_eq!(v["total"]["done"], 19);
    assert_eq!(v["total"]["followed_up"], 12);
    assert_eq!(v["total"]["relief_at_least_50"], 8);

    // Signing yesterday's record (with a vasovagal reaction) and a phone follow-up
    // move the numbers.
    let rad = app.token_for("radiologist").await;
    let dubois = app.case_of("Dubois").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{dubois}/procedure-record/sign")))
        .bearer_auth(&rad)
        .json(&json!({
            "procedure": "27096", "side": "right", "guidance": "fluoroscopy",
            "contrast_agent": "iohexol", "contrast_ml": "1", "steroid_agent": "triamcinolone",
            "steroid_mg": "40", "anaesthetic_agent": "lidocaine", "anaesthetic_mg": "10",
            "fluoroscopy_seconds": "22", "dap": "96", "pain_before": "6", "pain_after": "1",
            "complication": "vasovagal", "confirm": "sign"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let fontaine = app.case_of("Fontaine").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{fontaine}/follow-up")))
        .bearer_auth(&token)
        .json(&json!({"pain_now": 1, "relief_percent": 90}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let (_, v) = get_json(&app, &token, "/api/v1/outcomes").await;
    let si = outcome(&v, "27096");
    assert_eq!(
        (
            si["done"].as_i64(),
            si["complications"]["vasovagal"].as_i64()
        ),
        (Some(3), Some(1))
    );
    assert_eq!(
        (
            si["followed_up"].as_i64(),
            si["relief_at_least_50"].as_i64()
        ),
        (Some(2), Some(1))
    );
    assert_eq!(si["relief_at_least_50_percent"], 50);

    // The page: a table and a chart drawn on the server.
    let nurse = app.signed_in("nurse").await;
    let (status, html) = page(&nurse, &app, "/outcomes").await;
    assert_eq!(status, 200);
    assert!(html.contains("<svg id=\"outcomes-chart\""));
    assert!(html.contains("data-procedure=\"64483\""));
    assert!(html.contains("id=\"outcome-27096\" data-done=\"3\" data-complications=\"1\" data-followed-up=\"2\" data-relieved=\"1\""), "{html}");
    assert!(html.contains("50% (1 of 2)"));
    // Bars are as long as the share: 64483 at 100% is the full 400.
    assert!(html.contains("width=\"400\" height=\"24\" fill=\"#2563eb\""));
    // Referrers do not see outcomes; admins do (aggregates only).
    let referrer = app.token_for("referrer").await;
    assert_eq!(get_json(&app, &referrer, "/api/v1/outcomes").await.0, 403);
    let admin = app.signed_in("admin").await;
    assert_eq!(page(&admin, &app, "/outcomes").await.0, 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoints_are_documented_and_the_case_page_links_them() {
    let app = App::start().await;
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (path, method) in [
        ("/api/v1/cases/{id}/procedure-record", "get"),
        ("/api/v1/cases/{id}/procedure-record", "put"),
        ("/api/v1/cases/{id}/procedure-record/sign", "post"),
        ("/api/v1/follow-ups", "get"),
        ("/api/v1/cases/{id}/follow-up", "post"),
        ("/api/v1/outcomes", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} documented"
        );
    }
    // A bare `record_follow_up` transition is refused: the follow-up carries answers.
    let nurse_token = app.token_for("nurse").await;
    let fontaine = app.case_of("Fontaine").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{fontaine}/transitions")))
        .bearer_auth(&nurse_token)
        .json(&json!({"action": "record_follow_up"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("/follow-up"),
        "{body}"
    );
    assert_eq!(
        case_json(&app, &nurse_token, fontaine).await["state"],
        "discharged"
    );
    // The case page links the record and the follow-up, which takes an early call.
    let nurse = app.signed_in("nurse").await;
    let marchetti = app.case_of("Marchetti").await;
    let (_, html) = page(&nurse, &app, &format!("/cases/{marchetti}")).await;
    assert!(html.contains("id=\"case-procedure-record\""));
    assert!(html.contains(&format!("href=\"/cases/{marchetti}/follow-up\"")));
    let (status, html) = page(&nurse, &app, &format!("/cases/{marchetti}/follow-up")).await;
    assert_eq!(status, 200);
    assert!(html.contains("Not due yet"), "{html}");
    let csrf = csrf_of(&html);
    let r = nurse
        .post(app.at(&format!("/cases/{marchetti}/follow-up")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("from", "case"),
            ("pain_now", "x"),
            ("relief_percent", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(html.contains("id=\"pain_now-error\"") && html.contains("id=\"relief_percent-error\""));
    let r = nurse
        .post(app.at(&format!("/cases/{marchetti}/follow-up")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("from", "case"),
            ("pain_now", "1"),
            ("relief_percent", "90"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(
        r.headers()["location"],
        format!("/cases/{marchetti}").as_str()
    );
    assert_eq!(
        case_json(&app, &nurse_token, marchetti).await["state"],
        "followed_up"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrers_email_for_reports_is_set_when_the_user_is_added() {
    let db = irflow_store::testing::TestDatabase::new(common::backend()).await;
    let run = |email: &'static str| {
        let url = db.url.clone();
        async move {
            let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"));
            for var in ["IRFLOW_DATABASE_URL", "IRFLOW_CONFIG", "IRFLOW_DATA_DIR"] {
                cmd.env_remove(var);
            }
            let out = cmd
                .args([
                    "user",
                    "add",
                    "--username",
                    "dr.lee",
                    "--role",
                    "referrer",
                    "--organization",
                    "Harbor Spine",
                    "--email",
                    email,
                    "--password",
                    "a-long-enough-password",
                    "--database-url",
                    &url,
                ])
                .env("IRFLOW_LOG_LEVEL", "warn")
                .output()
                .await
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (code, stderr) = run("not an address").await;
    assert_ne!(code, Some(0));
    assert!(stderr.contains("--email"), "{stderr}");
    assert!(
        db.store.user_by_username("dr.lee").await.is_err(),
        "nothing created"
    );
    let (code, stderr) = run("Lee@Harbor.Example.org").await;
    assert_eq!(code, Some(0), "{stderr}");
    let user = db.store.user_by_username("dr.lee").await.unwrap();
    assert_eq!(
        db.store.user_email(user.id).await.unwrap().as_deref(),
        Some("Lee@harbor.example.org")
    );
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_treated_demo_patient_has_a_signed_record_its_messages_and_a_timely_follow_up() {
    let app = App::start().await;
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    irflow::demo::seed_todays_list(&app.store, &tz, app.today)
        .await
        .expect("today's list");
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;
    let (_, list) = get_json(&app, &nurse, "/api/v1/cases?limit=500").await;
    let treated: Vec<(i64, String, String)> = list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            matches!(
                c["state"].as_str(),
                Some("in_procedure" | "recovery" | "discharged" | "followed_up")
            )
        })
        .map(|c| {
            (
                c["id"].as_i64().unwrap(),
                c["state"].as_str().unwrap().to_owned(),
                c["patient"]["name"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert!(treated.len() >= 18, "{list}");
    let actor = app.store.user_by_username("nurse").await.unwrap().actor();
    let mut drafts = Vec::new();
    for (case, state, name) in &treated {
        let (status, v) = get_json(
            &app,
            &rad,
            &format!("/api/v1/cases/{case}/procedure-record"),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        let signed = v["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["status"] == "signed");
        if !signed {
            drafts.push(name.clone());
            continue;
        }
        if state == "in_procedure" {
            continue;
        }
        let (_, m) = get_json(&app, &nurse, &format!("/api/v1/cases/{case}/messages")).await;
        let kinds: Vec<&str> = m["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["kind"].as_str())
            .collect();
        assert!(kinds.contains(&"procedure_report"), "{name}: {m}");
        if state != "recovery" {
            assert!(kinds.contains(&"discharge_instructions"), "{name}: {m}");
        }
        if state == "followed_up" {
            let status = app
                .store
                .follow_up_status(&actor, irflow_domain::CaseId::new(*case), &tz, 14)
                .await
                .unwrap();
            let due = status.due_on.unwrap();
            for a in &status.answers {
                let on = a.recorded_at.to_zoned_datetime(tz.clone()).date();
                assert!(on >= due, "{name}: followed up {on}, due {due}");
            }
        }
    }
    assert_eq!(
        drafts.len(),
        1,
        "only yesterday's record waits for its signature: {drafts:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follow_up_well_before_its_due_date_closes_the_case_but_is_not_counted() {
    let app = App::start().await;
    let token = app.token_for("nurse").await;
    let (_, before) = get_json(&app, &token, "/api/v1/outcomes").await;
    let facet = |v: &Value| {
        v["procedures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["procedure"] == "64493")
            .unwrap()
            .clone()
    };
    assert_eq!(before["early_days"], 3);
    assert_eq!(facet(&before)["early_excluded"], 0);
    // Thomas Brown went home a few days ago (a facet injection); his follow-up is due
    // in about ten days, but he phones now.
    let brown = app.case_of("Brown").await;
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{brown}/follow-up")))
        .bearer_auth(&token)
        .json(&json!({"pain_now": 0, "relief_percent": 100}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["early"], true, "{v}");
    assert_eq!(case_json(&app, &token, brown).await["state"], "followed_up");
    let (_, after) = get_json(&app, &token, "/api/v1/outcomes").await;
    let (b, a) = (facet(&before), facet(&after));
    assert_eq!(a["early_excluded"], 1, "{a}");
    assert_eq!(a["followed_up"], b["followed_up"], "not in the share: {a}");
    assert_eq!(a["relief_at_least_50"], b["relief_at_least_50"]);
    assert_eq!(after["total"]["early_excluded"], 1);
    // The page says how many were left out, and the case's follow-up says why.
    let nurse = app.signed_in("nurse").await;
    let (_, html) = page(&nurse, &app, "/outcomes").await;
    assert!(html.contains("id=\"outcomes-early\""), "{html}");
    assert!(html.contains("1 follow-up recorded more than 3 days before it was due"));
    let (_, html) = page(&nurse, &app, &format!("/cases/{brown}/follow-up")).await;
    assert!(html.contains("not counted in the outcomes"), "{html}");
    app.stop().await;
}
