//! Outside imaging on the web, over HTTP on a real port: uploads (API and the case
//! page, with its anti-forgery token) of zips and loose files built from synthetic
//! DICOM; studies attached to the case or left in the reconciliation queue, where staff
//! attach (after the side-by-side check) or reject them; thumbnails and the viewer's
//! slices as real PNGs; prior imaging at a glance with its flags, and the letters'
//! "we already have your MRI"; referrers confined to their own cases; bad input refused
//! with reasons and nothing attached.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::dicom::{Study, png_size, zip};
use common::{App, csrf_of};
use jiff::civil::Date;
use serde_json::{Value, json};

const NY: &str = "America/New_York";

fn today() -> Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get(NY).unwrap())
        .date()
}

fn days_ago(n: i64) -> Date {
    today().checked_sub(jiff::Span::new().days(n)).unwrap()
}

/// One multipart part: field name, file name (None for a plain field), bytes.
type Part<'a> = (&'a str, Option<&'a str>, &'a [u8]);

/// A `multipart/form-data` body, written by hand.
fn multipart(parts: &[Part]) -> (String, Vec<u8>) {
    let boundary = "irflowtestboundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match file {
            Some(f) => body.extend_from_slice(
                format!(
                    "Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                )
                .as_bytes(),
            ),
            None => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
            ),
        }
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

async fn api_upload(app: &App, token: &str, case: i64, parts: &[Part<'_>]) -> (u16, Value) {
    let (content_type, body) = multipart(parts);
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn api(
    app: &App,
    token: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let c = reqwest::Client::new();
    let mut req = match method {
        "POST" => c.post(app.at(path)),
        _ => c.get(app.at(path)),
    }
    .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// The case of a demo patient, with the patient as the API shows it.
async fn case_and_patient(app: &App, token: &str, family: &str) -> (i64, Value) {
    let id = app.case_of(family).await;
    let (status, v) = api(app, token, "GET", &format!("/api/v1/cases/{id}"), None).await;
    assert_eq!(status, 200, "{v}");
    (id, v["patient"].clone())
}

/// A study of this demo patient, as another hospital would have written it.
fn study_of(patient: &Value, study_date: Date) -> Study {
    let name = format!(
        "{}^{}",
        patient["family_name"].as_str().unwrap().to_uppercase(),
        patient["given_name"].as_str().unwrap().to_uppercase()
    );
    let dob: Date = patient["date_of_birth"].as_str().unwrap().parse().unwrap();
    Study::new(&name, "OUTSIDE-77", dob, study_date)
}

fn zipped(study: &Study, slices: u32) -> Vec<u8> {
    zip(&study.series(1, slices, 48, 64))
}

async fn imaging(app: &App, token: &str, case: i64) -> Value {
    let (status, v) = api(
        app,
        token,
        "GET",
        &format!("/api/v1/cases/{case}/imaging"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v
}

fn flags(v: &Value) -> Vec<String> {
    v["assessment"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap().to_owned())
        .collect()
}

/// Every `href`/`src`/`data-url` value on a page that contains `needle`.
fn links(html: &str, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for attr in ["href=\"", "src=\"", "data-url=\""] {
        for piece in html.split(attr).skip(1) {
            let value = piece.split('"').next().unwrap().replace("&amp;", "&");
            if value.contains(needle) && !found.contains(&value) {
                found.push(value);
            }
        }
    }
    found
}

async fn get_bytes(client: &reqwest::Client, url: &str) -> (u16, String, String, Vec<u8>) {
    let r = client.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    let header = |n: &str| {
        r.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (ct, cc) = (header("content-type"), header("cache-control"));
    (status, ct, cc, r.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zipped_mri_uploaded_through_the_api_is_attached_with_thumbnails_and_slices() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;

    // Nothing on file yet: flagged.
    let before = imaging(&app, &referrer, case).await;
    assert_eq!(before["studies"].as_array().unwrap().len(), 0);
    assert_eq!(flags(&before), ["none_on_file"]);
    assert_eq!(before["assessment"]["suitable_on_file"], false);

    let study = study_of(&patient, days_ago(25));
    let archive = zipped(&study, 6);
    let (status, report) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("outside-mri.zip"), &archive)],
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["stored"], 6, "{report}");
    assert_eq!(report["duplicates"], 0);
    assert_eq!(report["refused"].as_array().unwrap().len(), 0, "{report}");
    let outcome = &report["studies"][0];
    assert_eq!(outcome["outcome"], "attached", "{report}");
    assert_eq!(outcome["case_id"], case);
    assert_eq!(outcome["this_case"], true);
    assert_eq!(outcome["new_instances"], 6);

    // At a glance, as the issue words it.
    let after = imaging(&app, &referrer, case).await;
    let expected = format!("MRI lumbar spine, {}, 25 days old", days_ago(25));
    assert_eq!(
        after["assessment"]["lines"][0],
        expected.as_str(),
        "{after}"
    );
    assert_eq!(after["studies"][0]["summary"], expected.as_str());
    assert_eq!(after["studies"][0]["instance_count"], 6);
    assert_eq!(after["studies"][0]["series_count"], 1);
    assert!(flags(&after).is_empty(), "{after}");
    assert_eq!(after["assessment"]["suitable_on_file"], true);

    // The same zip again: duplicates, nothing new.
    let (status, again) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("outside-mri.zip"), &archive)],
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["stored"].as_u64(), again["duplicates"].as_u64()),
        (Some(0), Some(6))
    );
    assert_eq!(
        imaging(&app, &referrer, case).await["studies"][0]["instance_count"],
        6
    );

    // The case page's panel: the study line and a thumbnail per series.
    let browser = app.signed_in("referrer").await;
    let panel = browser
        .get(app.at(&format!("/cases/{case}/imaging")))
        .header("hx-request", "true")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains(&expected), "{panel}");
    assert!(
        panel.contains("id=\"imaging-upload-form\""),
        "the upload form"
    );
    let thumbs = links(&panel, "/thumb.png");
    assert_eq!(thumbs.len(), 1, "{panel}");
    let (status, content_type, cache, png) = get_bytes(&browser, &app.at(&thumbs[0])).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&png));
    assert_eq!(content_type, "image/png");
    assert!(cache.starts_with("private"), "{cache}");
    let (w, h) = png_size(&png);
    assert!(w <= 160 && h <= 160 && w > 0 && h > 0, "{w}x{h}");
    assert_eq!(w * 48, h * 64, "the aspect ratio is kept: {w}x{h}");

    // The viewer lists every slice; each is a PNG, in each preset offered for MR.
    let viewers = links(&panel, &format!("/cases/{case}/imaging/studies/"));
    let viewer = browser
        .get(app.at(&viewers[0]))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let slices: Vec<String> = links(&viewer, "/instances/")
        .into_iter()
        .filter(|u| !u.contains("preset="))
        .collect();
    assert_eq!(slices.len(), 6, "{viewer}");
    for n in 1..=6 {
        assert!(viewer.contains(&format!("Image {n}")), "slice {n} listed");
    }
    assert!(
        viewer.contains("data-preset=\"t2\""),
        "MR presets: {viewer}"
    );
    assert!(
        !viewer.contains("data-preset=\"bone\""),
        "no CT presets for MR"
    );
    for preset in ["default", "t2"] {
        let (status, content_type, _, png) =
            get_bytes(&browser, &app.at(&format!("{}?preset={preset}", slices[2]))).await;
        assert_eq!((status, content_type.as_str()), (200, "image/png"));
        assert_eq!(
            png_size(&png),
            (64, 48),
            "full size below the viewer's limit"
        );
    }
    let (status, _, _, body) =
        get_bytes(&browser, &app.at(&format!("{}?preset=sepia", slices[0]))).await;
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, _, _, _) = get_bytes(&browser, &app.at(&format!("{}?frame=3", slices[0]))).await;
    assert_eq!(status, 404, "a frame past the last");

    // Opening the study was audited; scrolling through its slices is access-checked
    // against that read, not audited once per image.
    let admin = app.token_for("admin").await;
    let audited = |app: &App, filter: &str| {
        let admin = admin.clone();
        let url = app.at(&format!("/api/v1/audit?actor=referrer&limit=500{filter}"));
        async move {
            let v: Value = reqwest::Client::new()
                .get(url)
                .bearer_auth(admin)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["events"].as_array().unwrap().len()
        }
    };
    assert!(
        audited(&app, "&entity_type=imaging_study&action=read").await >= 1,
        "the viewer's read of the study is audited"
    );
    let before = audited(&app, "").await;
    for slice in &slices {
        let (status, _, _, _) = get_bytes(&browser, &app.at(slice)).await;
        assert_eq!(status, 200);
    }
    assert_eq!(audited(&app, "").await, before, "no audit event per image");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_case_page_upload_needs_the_forms_token() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    let browser = app.signed_in("referrer").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("hx-get=\"/cases/{case}/imaging\"")),
        "the case page loads the imaging panel"
    );
    assert!(page.contains("/static/imaging.js"));
    let csrf = csrf_of(&page);
    let archive = zipped(&study_of(&patient, days_ago(10)), 3);
    let url = app.at(&format!("/cases/{case}/imaging"));

    // No token, a wrong token, a token after the files: refused, nothing stored.
    for parts in [
        vec![("files", Some("mri.zip"), archive.as_slice())],
        vec![
            ("csrf", None, b"not-the-token".as_slice()),
            ("files", Some("mri.zip"), archive.as_slice()),
        ],
        vec![
            ("files", Some("mri.zip"), archive.as_slice()),
            ("csrf", None, csrf.as_bytes()),
        ],
    ] {
        let (ct, body) = multipart(&parts);
        let r = browser
            .post(&url)
            .header("content-type", ct)
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403);
    }
    assert_eq!(
        imaging(&app, &referrer, case).await["studies"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // With the token first, as the page's form sends it: JSON for the page's script.
    let (ct, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("CD/DICOM/mri.zip"), &archive),
    ]);
    let r = browser
        .post(&url)
        .header("content-type", ct)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stored"], 3, "{v}");
    assert_eq!(v["studies"][0]["outcome"], "attached");

    // The token as a header works too; loose files (not zipped) are taken as they are.
    let more = study_of(&patient, days_ago(10)).series(2, 2, 32, 32);
    let (ct, body) = multipart(&[
        ("files", Some(more[0].0.as_str()), &more[0].1),
        ("files", Some(more[1].0.as_str()), &more[1].1),
    ]);
    let r = browser
        .post(&url)
        .header("content-type", ct)
        .header("x-csrf-token", &csrf)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["stored"], 2);

    // Without JavaScript the form post answers a page.
    let again = zipped(&study_of(&patient, days_ago(3)), 1);
    let (ct, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("again.zip"), &again),
    ]);
    let r = browser
        .post(&url)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("Upload result") && html.contains("id=\"upload-counts\""),
        "{html}"
    );

    // A write from another site is refused before anything is read.
    let (ct, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("x.zip"), &again),
    ]);
    let r = browser
        .post(&url)
        .header("content-type", ct)
        .header("origin", "http://evil.example")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmatched_studies_wait_for_staff_who_attach_or_reject_them() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let scheduler = app.token_for("scheduler").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;

    // Someone else's images, sent for Tanaka's case: never attached on a guess.
    let stranger = Study::new(
        "SMITH^JOHN",
        "X-1",
        "1950-01-01".parse().unwrap(),
        days_ago(5),
    );
    let (status, report) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("smith.zip"), &zipped(&stranger, 2))],
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["studies"][0]["outcome"], "queued", "{report}");
    assert!(report["studies"][0]["reason"].as_str().unwrap().len() > 5);
    assert!(
        !report.to_string().contains("SMITH"),
        "the referrer is not told the file's patient details"
    );
    let sid = report["studies"][0]["study_id"].as_i64().unwrap();
    assert_eq!(
        imaging(&app, &referrer, case).await["studies"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // The queue is for staff.
    let (status, _) = api(&app, &referrer, "GET", "/api/v1/imaging/queue", None).await;
    assert_eq!(status, 403);
    let (status, queue) = api(&app, &scheduler, "GET", "/api/v1/imaging/queue", None).await;
    assert_eq!(status, 200, "{queue}");
    let queued = queue["studies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == sid)
        .expect("the study is queued")
        .clone();
    assert_eq!(queued["patient"]["name"], "SMITH^JOHN");
    assert_eq!(queued["patient"]["birth_date"], "1950-01-01");
    assert_eq!(queued["case_hint"], case);
    assert_eq!(queued["source"], "upload");
    assert!(
        queued["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["case_id"] == case),
        "the hinted case is offered: {queued}"
    );

    // On the page: the file's identity, then the side-by-side check before attaching.
    let staff = app.signed_in("scheduler").await;
    let page = staff
        .get(app.at("/imaging/queue"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("SMITH, JOHN") && page.contains("1950-01-01"),
        "{page}"
    );
    assert!(page.contains(&format!("/imaging/studies/{sid}/attach?case_id={case}")));
    assert!(page.contains("Imaging queue"), "nav link");
    // Search by MRN finds the case too.
    let mrn = patient["mrn"].as_str().unwrap();
    let found = staff
        .get(app.at(&format!("/imaging/queue?study={sid}&q={mrn}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(found.contains(&format!("id=\"results-{sid}\"")), "{found}");
    let confirm = staff
        .get(app.at(&format!("/imaging/studies/{sid}/attach?case_id={case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(confirm.contains("SMITH, JOHN"), "the file's name");
    assert!(
        confirm.contains(&format!(
            "{}, {}",
            patient["family_name"].as_str().unwrap(),
            patient["given_name"].as_str().unwrap()
        )),
        "the case's name"
    );
    assert!(confirm.contains("differs") && confirm.contains("id=\"identities-differ\""));
    let csrf = csrf_of(&confirm);
    let r = staff
        .post(app.at(&format!("/imaging/studies/{sid}/attach")))
        .form(&[("csrf", csrf.as_str()), ("case_id", &case.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/imaging/queue?done=attached");
    let attached = imaging(&app, &referrer, case).await;
    assert_eq!(attached["studies"][0]["id"], sid);
    assert_eq!(attached["studies"][0]["matched_by"], "staff");
    assert_eq!(attached["studies"][0]["local_mrn"], mrn);

    // Another stranger: rejected with a reason through the API.
    let other = Study::new(
        "DOE^JANE",
        "X-2",
        "1961-02-03".parse().unwrap(),
        days_ago(2),
    );
    let (_, report) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("doe.zip"), &zipped(&other, 1))],
    )
    .await;
    let other_id = report["studies"][0]["study_id"].as_i64().unwrap();
    let path = format!("/api/v1/imaging/studies/{other_id}/reject");
    let (status, v) = api(
        &app,
        &scheduler,
        "POST",
        &path,
        Some(json!({"reason": "  "})),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let (status, _) = api(
        &app,
        &referrer,
        "POST",
        &path,
        Some(json!({"reason": "not ours"})),
    )
    .await;
    assert!(
        status == 403 || status == 404,
        "referrers do not decide: {status}"
    );
    let (status, v) = api(
        &app,
        &scheduler,
        "POST",
        &path,
        Some(json!({"reason": "another patient's images"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, queue) = api(&app, &scheduler, "GET", "/api/v1/imaging/queue", None).await;
    assert!(
        !queue["studies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["id"] == other_id || s["id"] == sid),
        "decided studies leave the queue: {queue}"
    );
    // An attached study is not attached again, nor rejected; an unknown one is not found.
    let (status, _) = api(
        &app,
        &scheduler,
        "POST",
        &format!("/api/v1/imaging/studies/{sid}/attach"),
        Some(json!({"case_id": case})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = api(
        &app,
        &scheduler,
        "POST",
        &format!("/api/v1/imaging/studies/{sid}/reject"),
        Some(json!({"reason": "changed my mind"})),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = api(
        &app,
        &scheduler,
        "POST",
        "/api/v1/imaging/studies/999999/attach",
        Some(json!({"case_id": case})),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(
        imaging(&app, &referrer, case).await["studies"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referrer_cannot_see_or_send_another_referrers_imaging() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let other = app.token_for("referrer2").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    let (status, _) = api_upload(
        &app,
        &referrer,
        case,
        &[(
            "files",
            Some("mri.zip"),
            &zipped(&study_of(&patient, days_ago(20)), 2),
        )],
    )
    .await;
    assert_eq!(status, 200);

    // What the owner sees.
    let owner = app.signed_in("referrer").await;
    let panel = owner
        .get(app.at(&format!("/cases/{case}/imaging")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let thumb = links(&panel, "/thumb.png").remove(0);
    let viewer_url = links(&panel, &format!("/cases/{case}/imaging/studies/")).remove(0);
    let viewer = owner
        .get(app.at(&viewer_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let slice = links(&viewer, "/instances/").remove(0);
    assert_eq!(get_bytes(&owner, &app.at(&slice)).await.0, 200);

    // Another referrer: everything is "not found", and nothing can be sent there.
    let (status, _) = api(
        &app,
        &other,
        "GET",
        &format!("/api/v1/cases/{case}/imaging"),
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = api_upload(
        &app,
        &other,
        case,
        &[(
            "files",
            Some("mri.zip"),
            &zipped(&study_of(&patient, days_ago(2)), 1),
        )],
    )
    .await;
    assert_eq!(status, 404);
    let intruder = app.signed_in("referrer2").await;
    for url in [
        format!("/cases/{case}/imaging"),
        viewer_url.clone(),
        thumb.clone(),
        slice.clone(),
    ] {
        let (status, _, _, body) = get_bytes(&intruder, &app.at(&url)).await;
        assert_eq!(status, 404, "{url}: {}", String::from_utf8_lossy(&body));
        assert!(!String::from_utf8_lossy(&body).contains("TANAKA"));
    }
    // The instance under another case's address is not found either, even for its owner.
    let own_case = app.case_of("García López").await;
    let moved = slice.replace(&format!("/cases/{case}/"), &format!("/cases/{own_case}/"));
    assert_eq!(get_bytes(&owner, &app.at(&moved)).await.0, 404);
    // The queue's viewer is for staff.
    let sid = viewer_url.rsplit('/').next().unwrap().to_owned();
    let (status, _, _, _) =
        get_bytes(&owner, &app.at(&format!("/imaging/studies/{sid}/view"))).await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_follow_region_and_age_and_the_letter_says_when_we_have_the_mri() {
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let nurse = app.token_for("nurse").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    let letter = |app: &App| {
        let nurse = nurse.clone();
        let url = app.at(&format!("/api/v1/cases/{case}/instructions?lang=en"));
        async move {
            let r = reqwest::Client::new()
                .get(url)
                .bearer_auth(nurse)
                .header("accept", "text/plain")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
            r.text().await.unwrap()
        }
    };
    assert!(
        letter(&app)
            .await
            .contains("Bring your latest MRI or CT scan of the spine.")
    );

    // A recent CT of the neck does not cover a lumbar injection.
    let mut neck = study_of(&patient, days_ago(30));
    neck.modality = "CT".to_owned();
    neck.body_part = "CSPINE".to_owned();
    neck.description = "CT C-SPINE".to_owned();
    let (status, _) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("neck.zip"), &zipped(&neck, 1))],
    )
    .await;
    assert_eq!(status, 200);
    let v = imaging(&app, &referrer, case).await;
    assert_eq!(flags(&v), ["region_not_covered"], "{v}");
    assert!(
        v["assessment"]["flags"][0]["message"]
            .as_str()
            .unwrap()
            .contains("lumbar spine")
    );
    assert!(
        v["assessment"]["lines"][0]
            .as_str()
            .unwrap()
            .starts_with("CT cervical spine, ")
    );

    // A lumbar MRI three years old covers it but is out of date (default: 12 months).
    let old = study_of(&patient, days_ago(3 * 365));
    let (status, _) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("old.zip"), &zipped(&old, 1))],
    )
    .await;
    assert_eq!(status, 200);
    let v = imaging(&app, &referrer, case).await;
    assert_eq!(flags(&v), ["out_of_date"], "{v}");
    assert_eq!(v["assessment"]["max_age_months"], 12);
    assert!(
        letter(&app)
            .await
            .contains("Bring your latest MRI or CT scan of the spine.")
    );

    // A recent lumbar MRI: nothing to flag, and the letter says we have it.
    let recent = study_of(&patient, days_ago(20));
    let (status, _) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("new.zip"), &zipped(&recent, 1))],
    )
    .await;
    assert_eq!(status, 200);
    let v = imaging(&app, &referrer, case).await;
    assert!(flags(&v).is_empty(), "{v}");
    assert_eq!(v["assessment"]["lines"].as_array().unwrap().len(), 3);
    assert!(
        v["assessment"]["lines"][0]
            .as_str()
            .unwrap()
            .starts_with("MRI lumbar spine, "),
        "newest first: {v}"
    );
    let text = letter(&app).await;
    assert!(
        text.contains("We already have your latest MRI or CT scan of the spine."),
        "{text}"
    );
    assert!(!text.contains("Bring your latest MRI"));

    // The staff panel shows the flags and the "on file" note.
    let staff = app.signed_in("scheduler").await;
    let panel = staff
        .get(app.at(&format!("/cases/{case}/imaging")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(panel.contains("id=\"imaging-ok\""), "{panel}");

    // The worklist shows each open case's imaging at a glance.
    let worklist = staff
        .get(app.at("/cases"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let newest = v["assessment"]["lines"][0].as_str().unwrap();
    assert!(
        worklist.contains(&format!("data-imaging=\"ok\">{newest}<")),
        "Tanaka's MRI on the worklist: {worklist}"
    );
    assert!(
        worklist.contains("data-imaging=\"check\">no MRI/CT on file<"),
        "other cases have none"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_age_limit_is_a_setting() {
    let app = App::start_with(irflow_server::ServerConfig {
        cookie_secure: false,
        imaging_max_age_months: 48,
        ..Default::default()
    })
    .await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    let old = study_of(&patient, days_ago(3 * 365));
    let (status, _) = api_upload(
        &app,
        &referrer,
        case,
        &[("files", Some("old.zip"), &zipped(&old, 1))],
    )
    .await;
    assert_eq!(status, 200);
    let v = imaging(&app, &referrer, case).await;
    assert!(flags(&v).is_empty(), "three years is within 48 months: {v}");
    assert_eq!(v["assessment"]["max_age_months"], 48);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_reasons_and_nothing_is_attached() {
    let mut config = irflow_server::ServerConfig {
        cookie_secure: false,
        ..Default::default()
    };
    config.imaging_limits.max_total_bytes = 256 * 1024;
    let app = App::start_with(config).await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    let good = study_of(&patient, days_ago(5)).slice(1, 1, 16, 16);
    // Cut inside the pixel data: the element says more bytes than the file has.
    let truncated = &good[..good.len() - 100];
    let mut evil = vec![("../../etc/evil.dcm".to_owned(), good.clone())];
    evil.push(("/abs/evil2.dcm".to_owned(), good.clone()));
    let evil_zip = zip(&evil);
    let (status, report) = api_upload(
        &app,
        &referrer,
        case,
        &[
            ("files", Some("notes.txt"), b"Please see the attached MRI."),
            ("files", Some("IM0001"), truncated),
            ("files", Some("broken.zip"), b"PK\x03\x04 not really a zip"),
            ("files", Some("evil.zip"), &evil_zip),
        ],
    )
    .await;
    assert_eq!(status, 422, "nothing was taken: {report}");
    assert_eq!(report["stored"], 0);
    let refused = report["refused"].as_array().unwrap();
    for name in ["notes.txt", "IM0001", "broken.zip"] {
        let r = refused
            .iter()
            .find(|r| r["name"].as_str().unwrap().starts_with(name))
            .unwrap_or_else(|| panic!("{name} refused: {report}"));
        assert!(r["reason"].as_str().unwrap().len() > 5, "{r}");
    }
    assert!(
        refused
            .iter()
            .any(|r| r["name"].as_str().unwrap().contains("evil")),
        "unsafe zip entries are refused by name: {report}"
    );
    assert_eq!(
        imaging(&app, &referrer, case).await["studies"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    // Nothing at all.
    let (status, v) = api_upload(&app, &referrer, case, &[]).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("no files"),
        "{v}"
    );
    // Not multipart, not a file type we take.
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
        .bearer_auth(&referrer)
        .json(&json!({"files": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Larger than the limit: a clear refusal, whether multipart or a raw zip.
    let big = vec![7u8; 300 * 1024];
    let (status, v) = api_upload(&app, &referrer, case, &[("files", Some("big.dcm"), &big)]).await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{v}"
    );
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
        .bearer_auth(&referrer)
        .header("content-type", "application/zip")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    // A raw DICOM body within the limit is taken.
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
        .bearer_auth(&referrer)
        .header("content-type", "application/dicom")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_imaging_endpoints_are_documented() {
    let app = App::start().await;
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/api/v1/cases/{id}/imaging",
        "/api/v1/imaging/queue",
        "/api/v1/imaging/studies/{id}/attach",
        "/api/v1/imaging/studies/{id}/reject",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    app.stop().await;
}

/// dcmtk's `dcmmkdir`, if installed. In CI it must be; locally a test without it says
/// why and returns.
fn dcmmkdir() -> Option<std::path::PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join("dcmmkdir"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "dcmmkdir is missing: .ci/run installs dcmtk (apt-get install dcmtk)"
        );
        eprintln!("SKIPPED: dcmmkdir is not installed (apt-get install dcmtk)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cd_folder_uploaded_from_the_page_is_read_through_its_dicomdir() {
    let Some(dcmmkdir) = dcmmkdir() else { return };
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    // A CD as dcmmkdir writes it, with things on it that are not images.
    let cd = tempfile::tempdir().unwrap();
    let study = study_of(&patient, days_ago(12));
    std::fs::create_dir_all(cd.path().join("DICOM/SE1")).unwrap();
    for i in 1..=4u32 {
        std::fs::write(
            cd.path().join(format!("DICOM/SE1/IM{i}")),
            study.slice(1, i, 16, 16),
        )
        .unwrap();
    }
    let made = std::process::Command::new(dcmmkdir)
        .current_dir(cd.path())
        .args(["--recurse", "--invent", "DICOM"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "dcmmkdir: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    std::fs::write(
        cd.path().join("AUTORUN.INF"),
        "[autorun]\nopen=viewer.exe\n",
    )
    .unwrap();
    // What a browser sends for a chosen folder: every file, named by its path in it.
    let mut files: Vec<(String, Vec<u8>)> = vec![
        (
            "CD/DICOMDIR".to_owned(),
            std::fs::read(cd.path().join("DICOMDIR")).unwrap(),
        ),
        (
            "CD/AUTORUN.INF".to_owned(),
            std::fs::read(cd.path().join("AUTORUN.INF")).unwrap(),
        ),
    ];
    for i in 1..=4u32 {
        files.push((
            format!("CD/DICOM/SE1/IM{i}"),
            std::fs::read(cd.path().join(format!("DICOM/SE1/IM{i}"))).unwrap(),
        ));
    }
    let browser = app.signed_in("referrer").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let send = |files: Vec<(String, Vec<u8>)>| {
        let browser = browser.clone();
        let csrf = csrf.clone();
        let url = app.at(&format!("/cases/{case}/imaging"));
        async move {
            let mut parts: Vec<Part> = vec![("csrf", None, csrf.as_bytes())];
            for (name, bytes) in &files {
                parts.push(("files", Some(name.as_str()), bytes.as_slice()));
            }
            let (ct, body) = multipart(&parts);
            let r = browser
                .post(url)
                .header("content-type", ct)
                .header("accept", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (status, v) = send(files.clone()).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["stored"], 4, "{v}");
    assert_eq!(v["refused"].as_array().unwrap().len(), 0, "{v}");
    let ignored: Vec<&str> = v["ignored"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert!(
        ignored.contains(&"CD/DICOMDIR") && ignored.contains(&"CD/AUTORUN.INF"),
        "{v}"
    );
    // Each left-out file says why.
    assert!(
        v["ignored"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "CD/AUTORUN.INF"
                && n["reason"].as_str().unwrap().contains("not listed in it")),
        "{v}"
    );
    assert_eq!(v["studies"][0]["outcome"], "attached");

    // The same disc with an image missing: the rest is taken, the gap is named.
    files.retain(|(name, _)| name != "CD/DICOM/SE1/IM3");
    let (status, v) = send(files).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["stored"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(3)),
        "{v}"
    );
    let refused = v["refused"].as_array().unwrap();
    assert!(
        refused
            .iter()
            .any(|r| r["name"].as_str().unwrap().ends_with("DICOM/SE1/IM3")
                && r["reason"].as_str().unwrap().contains("missing")),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_cd_waits_for_staff_and_the_case_says_so() {
    let Some(dcmmkdir) = dcmmkdir() else { return };
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (case, patient) = case_and_patient(&app, &referrer, "Tanaka").await;
    // A CD whose DICOMDIR lists four images, one of which did not come along.
    let cd = tempfile::tempdir().unwrap();
    let study = study_of(&patient, days_ago(20));
    std::fs::create_dir_all(cd.path().join("DICOM/SE1")).unwrap();
    for i in 1..=4u32 {
        std::fs::write(
            cd.path().join(format!("DICOM/SE1/IM{i}")),
            study.slice(1, i, 16, 16),
        )
        .unwrap();
    }
    let made = std::process::Command::new(dcmmkdir)
        .current_dir(cd.path())
        .args(["--recurse", "--invent", "DICOM"])
        .output()
        .unwrap();
    assert!(made.status.success());
    let mut files = vec![(
        "CD/DICOMDIR".to_owned(),
        std::fs::read(cd.path().join("DICOMDIR")).unwrap(),
    )];
    for i in [1u32, 2, 4] {
        files.push((
            format!("CD/DICOM/SE1/IM{i}"),
            std::fs::read(cd.path().join(format!("DICOM/SE1/IM{i}"))).unwrap(),
        ));
    }
    let browser = app.signed_in("referrer").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let mut parts: Vec<Part> = vec![("csrf", None, csrf.as_bytes())];
    for (name, bytes) in &files {
        parts.push(("files", Some(name.as_str()), bytes.as_slice()));
    }
    let (ct, body) = multipart(&parts);
    let r = browser
        .post(app.at(&format!("/cases/{case}/imaging")))
        .header("content-type", ct)
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["stored"], 3, "{v}");
    assert_eq!(
        v["studies"][0]["outcome"], "queued",
        "nothing half-attached: {v}"
    );
    let reason = v["studies"][0]["reason"].as_str().unwrap().to_owned();
    assert!(
        reason.starts_with(&format!(
            "incomplete: 1 file of this study was missing or refused; its details match case #{case}"
        )),
        "{v}"
    );
    assert_eq!(
        v["waiting"].as_str().unwrap(),
        format!("1 study from this upload is waiting for staff to check it ({reason})")
    );
    assert!(
        imaging(&app, &referrer, case).await["studies"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The case's panel says a study sent for it waits, and why.
    let panel = |browser: reqwest::Client| {
        let url = app.at(&format!("/cases/{case}/imaging"));
        async move {
            browser
                .get(url)
                .header("hx-request", "true")
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    };
    let html = panel(browser.clone()).await;
    assert!(html.contains("id=\"imaging-waiting\""), "{html}");
    assert!(
        html.contains("1 study sent for this case is waiting for staff to check it (incomplete: 1 file of this study was missing or refused"),
        "{html}"
    );

    // A stranger's study sent from the same case (a plain form post) waits too; the
    // result page and the panel say so.
    let stranger = Study::new("NOBODY^KNOWN", "X-9", days_ago(20_000), days_ago(3));
    let zipped_stranger = zipped(&stranger, 1);
    let (ct, body) = multipart(&[
        ("csrf", None, csrf.as_bytes()),
        ("files", Some("other.zip"), &zipped_stranger),
    ]);
    let result = browser
        .post(app.at(&format!("/cases/{case}/imaging")))
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        result.contains(
            "1 study from this upload is waiting for staff to check it (it was sent for case #"
        ),
        "{result}"
    );
    let html = panel(browser.clone()).await;
    assert!(
        html.contains("2 studies sent for this case are waiting for staff to check them"),
        "{html}"
    );

    // Staff attach the partial study after checking it: it leaves the waiting list.
    let nurse = app.token_for("nurse").await;
    let (_, queue) = api(&app, &nurse, "GET", "/api/v1/imaging/queue", None).await;
    let id = queue["studies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["study_instance_uid"] == study.study_uid())
        .unwrap_or_else(|| panic!("{queue}"))["id"]
        .as_i64()
        .unwrap();
    let (status, v) = api(
        &app,
        &nurse,
        "POST",
        &format!("/api/v1/imaging/studies/{id}/attach"),
        Some(json!({"case_id": case})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let html = panel(browser).await;
    assert!(
        html.contains(
            "1 study sent for this case is waiting for staff to check it (it was sent for case #"
        ),
        "{html}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_beyond_those_received_at_once_are_told_to_come_back() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let (case, _) = case_and_patient(&app, &referrer, "Tanaka").await;
    let addr = app.url.trim_start_matches("http://").to_owned();
    // Uploads that announce a megabyte and send a few bytes, then wait: they hold the
    // slots (one that was answered — it came while another upload held a slot — is
    // sent again).
    let hold = || {
        let (addr, referrer) = (addr.clone(), referrer.clone());
        async move {
            let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
            let head = format!(
                "POST /api/v1/cases/{case}/imaging HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {referrer}\r\nContent-Type: application/zip\r\nContent-Length: 1048576\r\n\r\nPK\x03\x04"
            );
            socket.write_all(head.as_bytes()).await.unwrap();
            socket.flush().await.unwrap();
            socket
        }
    };
    let mut held = Vec::new();
    for _ in 0..irflow_server::imaging::MAX_CONCURRENT_UPLOADS {
        held.push(hold().await);
    }
    let zipped_study = zipped(
        &Study::new("NOBODY^KNOWN", "X-8", days_ago(20_000), days_ago(3)),
        1,
    );
    let third = || {
        reqwest::Client::new()
            .post(app.at(&format!("/api/v1/cases/{case}/imaging")))
            .bearer_auth(&referrer)
            .header("content-type", "application/zip")
            .body(zipped_study.clone())
            .send()
    };
    let mut busy = None;
    for _ in 0..100 {
        // A held upload the server already answered holds nothing: send it again.
        for socket in &mut held {
            let mut buf = [0u8; 64];
            let answered =
                tokio::time::timeout(std::time::Duration::from_millis(100), socket.read(&mut buf))
                    .await
                    .is_ok();
            if answered {
                *socket = hold().await;
            }
        }
        let r = third().await.unwrap();
        if r.status().as_u16() == 503 {
            busy = Some(r);
            break;
        }
    }
    let busy = busy.expect("a third upload at once is refused");
    assert_eq!(
        busy.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("30")
    );
    let v: Value = busy.json().await.unwrap();
    assert_eq!(v["error"]["code"], "busy");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing from it was stored. Try again in a minute"),
        "{v}"
    );
    // The page's form post is told the same, as a page.
    let browser = app.signed_in("referrer").await;
    let page = browser
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&page);
    let (ct, body) = multipart(&[("files", Some("a.zip"), &zipped_study)]);
    let r = browser
        .post(app.at(&format!("/cases/{case}/imaging")))
        .header("x-csrf-token", csrf)
        .header("content-type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(r.headers().contains_key("retry-after"));
    assert!(r.text().await.unwrap().contains("Try again in a minute"));
    // Once the held uploads give up, uploads are received again.
    drop(held);
    let mut status = 503;
    for _ in 0..100 {
        status = third().await.unwrap().status().as_u16();
        if status != 503 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the upload is received once a slot is free");
    app.stop().await;
}

/// pydicom's folder of test files (many transfer syntaxes, broken files), if pydicom is
/// installed. In CI it must be; locally a test without it says why and returns.
fn pydicom_test_files() -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import os, pydicom; print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))",
        ])
        .output();
    let dir = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| std::path::PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|d| d.is_dir());
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pydicom is missing: .ci/run installs it (pip install pydicom)"
        );
        eprintln!("SKIPPED: pydicom is not installed (pip install pydicom)");
    }
    dir
}

/// Every file under `dir` (recursively), named by its path relative to `prefix`'s parent.
fn files_under(dir: &std::path::Path, prefix: &str, recursive: bool) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for e in entries {
        let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
        let kind = e.file_type().unwrap();
        if kind.is_file() {
            out.push((name, std::fs::read(e.path()).unwrap()));
        } else if kind.is_dir() && recursive {
            out.extend(files_under(&e.path(), &name, true));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pydicom_test_file_is_taken_or_refused_and_every_image_shows_or_says_why() {
    let Some(dir) = pydicom_test_files() else {
        return;
    };
    let app = App::start().await;
    let referrer = app.token_for("referrer").await;
    let scheduler = app.token_for("scheduler").await;
    let case = app.case_of("Tanaka").await;

    // The loose files (the subfolder holds a CD with its own DICOMDIR: sent on its own).
    let loose = files_under(&dir, "test_files", false);
    let parts: Vec<Part> = loose
        .iter()
        .map(|(n, b)| ("files", Some(n.as_str()), b.as_slice()))
        .collect();
    let (status, v) = api_upload(&app, &referrer, case, &parts).await;
    assert_eq!(status, 200, "{v}");
    let stored = v["stored"].as_u64().unwrap() as usize;
    let duplicates = v["duplicates"].as_u64().unwrap() as usize;
    let refused = v["refused"].as_array().unwrap();
    assert_eq!(
        stored + duplicates + refused.len(),
        loose.len(),
        "every file is accounted for: {v}"
    );
    // Many of them are one image in several transfer syntaxes, with one SOP Instance
    // UID: the first is stored, the rest are the same instance already on file.
    assert!(
        stored + duplicates > 50,
        "most of pydicom's files are DICOM images: {v}"
    );
    for r in refused {
        assert!(
            r["reason"].as_str().unwrap().len() > 8,
            "a refusal says why: {r}"
        );
    }
    for plain in ["test_files/README.txt", "test_files/crayons.icc"] {
        assert!(
            refused.iter().any(|r| r["name"] == plain),
            "{plain} is not DICOM: {v}"
        );
    }
    assert!(
        refused
            .iter()
            .any(|r| r["name"].as_str().unwrap().contains("truncated")),
        "a truncated file is refused: {v}"
    );

    // The CD folder: read through its DICOMDIR.
    let cd = files_under(&dir.join("dicomdirtests"), "dicomdirtests", true);
    let parts: Vec<Part> = cd
        .iter()
        .map(|(n, b)| ("files", Some(n.as_str()), b.as_slice()))
        .collect();
    let (status, v) = api_upload(&app, &referrer, case, &parts).await;
    assert!(status == 200 || status == 422, "{status}: {v}");
    assert!(v["stored"].as_u64().unwrap_or(0) > 0, "{v}");
    for r in v["refused"].as_array().unwrap() {
        assert!(r["reason"].as_str().unwrap().len() > 8, "{r}");
    }

    // Every stored image either renders as a PNG or says plainly why it cannot be shown.
    let (_, queue) = api(&app, &scheduler, "GET", "/api/v1/imaging/queue", None).await;
    let staff = app.signed_in("scheduler").await;
    let (mut shown, mut explained) = (0, 0);
    for study in queue["studies"].as_array().unwrap() {
        let id = study["id"].as_i64().unwrap();
        let first = staff
            .get(app.at(&format!("/imaging/studies/{id}/view")))
            .send()
            .await
            .unwrap();
        assert_eq!(first.status(), 200);
        let first = first.text().await.unwrap();
        let mut pages = vec![first.clone()];
        for series in links(&first, "?series=") {
            let page = staff
                .get(app.at(&series))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            pages.push(page);
        }
        let mut slices: Vec<String> = Vec::new();
        for page in &pages {
            for url in links(page, "/imaging/instances/") {
                let first_frame = !url.contains("frame=") || url.contains("frame=0");
                if first_frame && !url.contains("preset=") && !slices.contains(&url) {
                    slices.push(url);
                }
            }
        }
        for url in slices {
            let (status, content_type, _, body) = get_bytes(&staff, &app.at(&url)).await;
            match status {
                200 => {
                    assert_eq!(content_type, "image/png", "{url}");
                    let (w, h) = png_size(&body);
                    assert!(w > 0 && h > 0 && w <= 1024 && h <= 1024, "{url}: {w}x{h}");
                    shown += 1;
                }
                422 => {
                    let text = String::from_utf8_lossy(&body);
                    assert!(
                        text.starts_with("this image could not be displayed: ")
                            && text.ends_with("(the original is stored)"),
                        "{url}: {text}"
                    );
                    explained += 1;
                }
                other => panic!("{url}: {other} {}", String::from_utf8_lossy(&body)),
            }
        }
    }
    assert!(
        shown > 20,
        "most images render: {shown} shown, {explained} explained"
    );
    eprintln!("pydicom test files: {shown} rendered, {explained} explained");
    app.stop().await;
}
