//! The referral pages over HTTP: phone referrals, duplicates, patient-match review,
//! procedure changes, the vetting queue and the catalogue admin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, csrf_of};

async fn page(client: &reqwest::Client, app: &App, path: &str) -> (u16, String) {
    let r = client.get(app.at(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn post(
    client: &reqwest::Client,
    app: &App,
    path: &str,
    csrf_from: &str,
    fields: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let (_, html) = page(client, app, csrf_from).await;
    let csrf = csrf_of(&html);
    let mut form: Vec<(&str, &str)> = vec![("csrf", csrf.as_str())];
    form.extend_from_slice(fields);
    let r = client.post(app.at(path)).form(&form).send().await.unwrap();
    let status = r.status().as_u16();
    let location = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned());
    (status, r.text().await.unwrap(), location)
}

fn referral<'a>(family: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("family_name", family),
        ("given_name", "Pat"),
        ("date_of_birth", "1959-09-09"),
        ("phone", "617-555-0150"),
        ("preferred_language", "en"),
        ("procedure", "64483"),
        ("levels", "L4-L5"),
        ("side", "left"),
        ("urgency", "routine"),
        ("indication", "Left L5 radiculopathy"),
    ];
    f.extend_from_slice(extra);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedulers_take_phone_referrals_for_a_referrer() {
    let app = App::start().await;
    let sched = app.signed_in("scheduler").await;
    let (status, html) = page(&sched, &app, "/referrals/new").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Phone referral")
            && html.contains("Dr. Olivia Brooks — Riverside Orthopedics")
    );
    // Without a referrer chosen: refused, next to the field.
    let (status, html, _) = post(
        &sched,
        &app,
        "/referrals",
        "/referrals/new",
        &referral("Phoned", &[]),
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"referrer-error\"") && html.contains("value=\"Phoned\""));
    let referrer2 = app
        .store
        .user_by_username("referrer2")
        .await
        .unwrap()
        .id
        .to_string();
    let (status, _, location) = post(
        &sched,
        &app,
        "/referrals",
        "/referrals/new",
        &referral("Phoned", &[("referrer", referrer2.as_str())]),
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    assert!(
        location.starts_with("/referrals/") && location.ends_with("/received"),
        "{location}"
    );
    let (_, html) = page(&sched, &app, &location).await;
    assert!(html.contains("IRF-") && html.contains("What happens next"));
    let id = location
        .trim_start_matches("/referrals/")
        .trim_end_matches("/received");
    let (_, html) = page(&sched, &app, &format!("/cases/{id}")).await;
    assert!(
        html.contains("Phone referral (entered by scheduler)")
            && html.contains("Dr. Olivia Brooks")
    );
    // Nurses and radiologists do not enter referrals.
    let nurse = app.signed_in("nurse").await;
    assert_eq!(page(&nurse, &app, "/referrals/new").await.0, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_open_referral_for_the_same_procedure_names_the_first() {
    let app = App::start().await;
    let referrer = app.signed_in("referrer").await;
    // María García López already has an open 64483 case in the demo (MRN-100234).
    let extra = [
        ("mrn", "MRN-100234"),
        ("given_name", "María"),
        ("date_of_birth", "1958-03-14"),
    ];
    let mut fields = referral("García López", &[]);
    fields.retain(|(k, _)| !["given_name", "date_of_birth"].contains(k));
    fields.extend_from_slice(&extra);
    let (status, html, _) = post(&referrer, &app, "/referrals", "/referrals/new", &fields).await;
    assert_eq!(status, 422);
    assert!(
        html.contains("already has an open referral (case #1)"),
        "names the case"
    );
    // A wrong MRN for a known patient is refused at the MRN field.
    let (status, html, _) = post(
        &referrer,
        &app,
        "/referrals",
        "/referrals/new",
        &referral("Someone Else", &[("mrn", "MRN-100234")]),
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"mrn-error\"") && html.contains("different name or date of birth"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staff_decide_doubtful_patient_matches() {
    let app = App::start().await;
    // The demo's Grace Kim referral matched two patients on file.
    let token = app.token_for("nurse").await;
    let cases: serde_json::Value = reqwest::Client::new()
        .get(app.at("/api/v1/cases?state=referred"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kim = cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["patient"]["family_name"] == "Kim")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    let nurse = app.signed_in("nurse").await;
    let (_, html) = page(&nurse, &app, &format!("/cases/{kim}")).await;
    assert!(
        html.contains("Is this a patient we already know?")
            && html.contains("MRN-088120")
            && html.contains("MRN-091377")
    );
    // The referrer does not see the candidates (other patients' details).
    let referrer = app.signed_in("referrer").await;
    let (_, html) = page(&referrer, &app, &format!("/cases/{kim}")).await;
    assert!(!html.contains("MRN-088120"));
    let (status, _, _) = post(
        &nurse,
        &app,
        &format!("/cases/{kim}/patient-match"),
        &format!("/cases/{kim}"),
        &[("choice", "separate")],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = page(&nurse, &app, &format!("/cases/{kim}")).await;
    assert!(
        !html.contains("Is this a patient we already know?")
            && html.contains("distinct from the possible matches")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn radiologists_change_the_procedure_with_a_reason() {
    let app = App::start().await;
    let rad = app.signed_in("radiologist").await;
    let case = app.case_in_state("referred").await;
    let path = format!("/cases/{case}/procedure");
    let from = format!("/cases/{case}");
    let (status, html, _) = post(
        &rad,
        &app,
        &path,
        &from,
        &[
            ("procedure", "27096"),
            ("levels", "L4-L5"),
            ("side", "left"),
            ("reason", ""),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("say why the procedure changes") && html.contains("takes no spinal level")
    );
    let (status, _, _) = post(
        &rad,
        &app,
        &path,
        &from,
        &[
            ("procedure", "27096"),
            ("levels", ""),
            ("side", "left"),
            ("reason", "Exam points to the SI joint"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = page(&rad, &app, &format!("{from}?done=change_procedure")).await;
    assert!(
        html.contains("CPT 27096")
            && html.contains("Exam points to the SI joint")
            && html.contains("Done: the procedure was changed.")
    );
    // A referrer cannot.
    let referrer = app.signed_in("referrer").await;
    let (status, _, _) = post(
        &referrer,
        &app,
        &path,
        &from,
        &[
            ("procedure", "64493"),
            ("levels", "L4-L5"),
            ("side", "left"),
            ("reason", "x"),
        ],
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vetting_queue_puts_urgent_first_and_is_for_radiologists() {
    let app = App::start().await;
    let rad = app.signed_in("radiologist").await;
    let (status, html) = page(&rad, &app, "/vetting").await;
    assert_eq!(status, 200);
    let oconnor = html
        .find("O&#x27;Connor")
        .or_else(|| html.find("O&#39;Connor"))
        .expect("urgent demo referral listed");
    let garcia = html
        .find("García López")
        .expect("routine demo referral listed");
    assert!(oconnor < garcia, "urgent before routine");
    assert!(html.contains("check patient match"));
    // Screenings that need a radiologist are listed too (the demo's possible pregnancy).
    assert!(
        html.contains("Screening reviews to sign off") && html.contains("Haddad, Layla"),
        "review listed"
    );
    let nurse = app.signed_in("nurse").await;
    assert_eq!(page(&nurse, &app, "/vetting").await.0, 403);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_edit_the_catalogue() {
    let app = App::start().await;
    let admin = app.signed_in("admin").await;
    let (status, html) = page(&admin, &app, "/admin/procedures").await;
    assert_eq!(status, 200);
    assert!(html.contains("64483") && html.contains("intermediate / high"));
    let fields = [
        (
            "name",
            "Lumbar/sacral transforaminal epidural steroid injection",
        ),
        ("patient_name", "Low back nerve root injection"),
        ("modality", "fluoroscopy"),
        ("modality", "ct"),
        ("duration_minutes", "30"),
        ("risk_asra", "intermediate"),
        ("risk_sir", "high"),
        ("risk_source", "ASRA-2018; SIR-2019"),
        ("active", "on"),
    ];
    let (status, _, location) = post(
        &admin,
        &app,
        "/admin/procedures/64483",
        "/admin/procedures/64483",
        &fields,
    )
    .await;
    assert_eq!(
        (status, location.as_deref()),
        (303, Some("/admin/procedures?done=64483"))
    );
    let p = app
        .store
        .procedures()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.code == "64483")
        .unwrap();
    assert_eq!(p.duration_minutes, 30);
    let mut bad = fields.to_vec();
    bad.retain(|(k, _)| *k != "modality");
    let (status, html, _) = post(
        &admin,
        &app,
        "/admin/procedures/64483",
        "/admin/procedures/64483",
        &bad,
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("at least one guidance modality"));
    let nurse = app.signed_in("nurse").await;
    assert_eq!(page(&nurse, &app, "/admin/procedures").await.0, 403);
    app.stop().await;
}
