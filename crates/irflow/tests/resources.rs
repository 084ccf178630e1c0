//! The administrators' "Rooms & staff" pages over real HTTP: a room added with its
//! hours is offered, an exception takes its times away, non-admins are refused, bad
//! input is shown next to its field and changes nothing, and nothing strands a
//! booked patient.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, csrf_of};
use serde_json::{Value, json};

async fn page(client: &reqwest::Client, app: &App, path: &str) -> (u16, String) {
    let r = client.get(app.at(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// Posts a form with the session's anti-forgery token (read from `csrf_from`).
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

async fn api(app: &App, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn tz() -> jiff::tz::TimeZone {
    jiff::tz::TimeZone::get("America/New_York").unwrap()
}

/// A Saturday about three weeks ahead (the demo's rooms are closed on Saturdays).
fn a_saturday() -> jiff::civil::Date {
    let mut d = jiff::Timestamp::now().to_zoned_datetime(tz()).date() + jiff::Span::new().days(21);
    while d.weekday() != jiff::civil::Weekday::Saturday {
        d += jiff::Span::new().days(1);
    }
    d
}

/// The options offered for a case from a date: (start, room id).
async fn slots_on(
    app: &App,
    token: &str,
    case: i64,
    from: jiff::civil::Date,
) -> Vec<(String, i64)> {
    let (status, v) = api(
        app,
        token,
        &format!("/api/v1/cases/{case}/slots?from={from}&limit=50"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    v["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["room"]["id"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn id_from(location: &str, prefix: &str) -> i64 {
    location
        .strip_prefix(prefix)
        .and_then(|rest| rest.split('?').next())
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("{location} starts with {prefix}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_added_with_hours_is_offered_and_an_exception_takes_its_times_away() {
    let app = App::start().await;
    let admin = app.signed_in("admin").await;
    let sched = app.token_for("scheduler").await;
    let (status, html) = page(&admin, &app, "/admin/resources").await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Fluoro 1") && html.contains("Mon-Fri 08:00-16:00"),
        "{html}"
    );
    assert!(html.contains("America/New_York"));

    // A CT room open on Saturday mornings, and a radiologist to staff it.
    let (status, _, location) = post(
        &admin,
        &app,
        "/admin/resources/rooms",
        "/admin/resources/rooms/new",
        &[
            ("name", "Weekend CT"),
            ("modality", "ct"),
            ("turnaround_minutes", "15"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let location = location.unwrap();
    let room = id_from(&location, "/admin/resources/rooms/");
    let room_page = format!("/admin/resources/rooms/{room}");
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{room_page}/hours"),
        &room_page,
        &[
            ("weekday", "6"),
            ("start_time", "08:00"),
            ("end_time", "12:00"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let radiologist = app.store.user_by_username("radiologist").await.unwrap().id;
    let rad_page = format!("/admin/resources/radiologists/{radiologist}");
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{rad_page}/hours"),
        &rad_page,
        &[
            ("weekday", "6"),
            ("start_time", "08:00"),
            ("end_time", "12:00"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let (_, html) = page(&admin, &app, &room_page).await;
    assert!(html.contains("Sat 08:00-12:00"), "{html}");

    // David Cohen (ready, 64483 under fluoroscopy or CT) is offered Saturday in it.
    let cohen = app.case_of("Cohen").await;
    let saturday = a_saturday();
    let offered = slots_on(&app, &sched, cohen, saturday).await;
    let on_saturday: Vec<&(String, i64)> = offered
        .iter()
        .filter(|(start, _)| start.starts_with(&saturday.to_string()))
        .collect();
    assert!(!on_saturday.is_empty(), "{offered:?}");
    assert!(on_saturday.iter().all(|(_, r)| *r == room));
    assert!(on_saturday[0].0.contains("T08:00"), "{on_saturday:?}");

    // The room is down 08:00-10:00 that Saturday: nothing before 10:00 is offered.
    let (status, html, location) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &[
            ("from_date", &saturday.to_string()),
            ("from_time", "08:00"),
            ("to_time", "10:00"),
            ("reason", "Room down for service"),
        ],
    )
    .await;
    assert_eq!(status, 303, "{html}");
    assert!(location.unwrap().contains("done=closure"));
    let offered = slots_on(&app, &sched, cohen, saturday).await;
    let on_saturday: Vec<&(String, i64)> = offered
        .iter()
        .filter(|(start, _)| start.starts_with(&saturday.to_string()))
        .collect();
    assert!(!on_saturday.is_empty(), "{offered:?}");
    assert!(
        on_saturday
            .iter()
            .all(|(start, _)| start[11..16] >= *"10:00"),
        "{on_saturday:?}"
    );
    let (_, html) = page(&admin, &app, "/admin/resources").await;
    assert!(html.contains("Room down for service") && html.contains("Weekend CT"));

    // The radiologist is away all that Saturday: nothing is offered that day.
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{rad_page}/closures"),
        &rad_page,
        &[
            ("from_date", &saturday.to_string()),
            ("whole_day", "1"),
            ("reason", "Radiologist away"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let offered = slots_on(&app, &sched, cohen, saturday).await;
    assert!(
        offered
            .iter()
            .all(|(start, _)| !start.starts_with(&saturday.to_string())),
        "{offered:?}"
    );
    let (_, html) = page(&admin, &app, &rad_page).await;
    assert!(html.contains(&format!("{}, whole day", saturday.strftime("%a %Y-%m-%d"))));

    // Credentials: radiologist3 now does only 64483.
    let rad3 = app.store.user_by_username("radiologist3").await.unwrap().id;
    let rad3_page = format!("/admin/resources/radiologists/{rad3}");
    let (status, _, _) = post(
        &admin,
        &app,
        &rad3_page,
        &rad3_page,
        &[("procedure", "64483")],
    )
    .await;
    assert_eq!(status, 303);
    let entry = app.store.radiologist_entry(rad3).await.unwrap();
    assert_eq!(entry.procedures, vec!["64483".to_owned()]);

    // The JSON view, for schedulers too.
    let (status, v) = api(&app, &sched, "/api/v1/resources").await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["site"]["time_zone"], "America/New_York");
    let weekend = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == room)
        .unwrap();
    assert_eq!(weekend["modality"], "ct");
    assert_eq!(weekend["turnaround_minutes"], 15);
    assert_eq!(weekend["hours"]["summary"], "Sat 08:00-12:00");
    assert_eq!(
        weekend["hours"]["windows"],
        json!([{"weekday": 6, "start": "08:00", "end": "12:00"}])
    );
    let rad3_json = v["radiologists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == rad3.get())
        .unwrap();
    assert_eq!(rad3_json["procedures"], json!(["64483"]));
    let closures = v["closures"].as_array().unwrap();
    assert!(closures.iter().any(|c| c["resource"]["kind"] == "room"
        && c["resource"]["id"] == room
        && c["resource"]["name"] == "Weekend CT"
        && c["reason"] == "Room down for service"));
    assert!(
        closures
            .iter()
            .any(|c| c["resource"]["kind"] == "radiologist"
                && c["resource"]["id"] == radiologist.get()
                && c["reason"] == "Radiologist away")
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_administrators_manage_resources() {
    let app = App::start().await;
    let site = app.store.default_site().await.unwrap().unwrap().id;
    let rooms_before = app.store.all_rooms(site).await.unwrap().len();
    for who in ["scheduler", "nurse", "radiologist", "referrer"] {
        let client = app.signed_in(who).await;
        let (status, _) = page(&client, &app, "/admin/resources").await;
        assert_eq!(status, 403, "{who} reads the overview");
        let (status, _) = page(&client, &app, "/admin/resources/rooms/1").await;
        assert_eq!(status, 403, "{who} reads a room");
        // With a valid token for their own session, still refused.
        let (status, _, _) = post(
            &client,
            &app,
            "/admin/resources/rooms",
            "/cases",
            &[
                ("name", "Sneaky"),
                ("modality", "ct"),
                ("turnaround_minutes", "10"),
            ],
        )
        .await;
        assert_eq!(status, 403, "{who} adds a room");
    }
    assert_eq!(app.store.all_rooms(site).await.unwrap().len(), rooms_before);
    // Signed out: to the sign-in page.
    let r = common::browser()
        .get(app.at("/admin/resources"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // An admin without the form's token: refused, nothing changed.
    let admin = app.signed_in("admin").await;
    let r = admin
        .post(app.at("/admin/resources/rooms"))
        .form(&[
            ("csrf", "forged"),
            ("name", "Forged"),
            ("modality", "ct"),
            ("turnaround_minutes", "10"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(app.store.all_rooms(site).await.unwrap().len(), rooms_before);
    // The store refuses too, whatever the edge does.
    let nurse = app.store.user_by_username("nurse").await.unwrap().actor();
    assert!(matches!(
        app.store
            .set_room_active(&nurse, 1, false, jiff::Timestamp::now())
            .await,
        Err(irflow_store::StoreError::Denied(_))
    ));
    // The API: administrators and schedulers only.
    for (who, expected) in [("nurse", 403), ("referrer", 403), ("admin", 200)] {
        let token = app.token_for(who).await;
        let (status, _) = api(&app, &token, "/api/v1/resources").await;
        assert_eq!(status, expected, "{who}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_input_is_shown_by_its_field_and_changes_nothing() {
    let app = App::start().await;
    let admin = app.signed_in("admin").await;
    let site = app.store.default_site().await.unwrap().unwrap();
    let rooms = app.store.all_rooms(site.id).await.unwrap();
    let hours = app.store.availability_windows().await.unwrap();
    let closures_before = app
        .store
        .upcoming_closures(jiff::Timestamp::now())
        .await
        .unwrap();

    let (status, html) = page(&admin, &app, "/admin/resources/rooms/new").await;
    assert_eq!(status, 200);
    assert!(html.contains("Add a room") && html.contains("id=\"turnaround_minutes\""));
    let (status, _) = page(&admin, &app, "/admin/resources/radiologists/new").await;
    assert_eq!(status, 404, "radiologists are users, added with the CLI");
    let (status, _) = page(&admin, &app, "/admin/resources/rooms/999999").await;
    assert_eq!(status, 404);
    let (status, _) = page(
        &admin,
        &app,
        "/admin/resources/rooms/1?done=closure&moves=x",
    )
    .await;
    assert_eq!(status, 200);
    // Turnaround 7: refused next to the field, with what was typed kept.
    let (status, html, _) = post(
        &admin,
        &app,
        "/admin/resources/rooms",
        "/admin/resources/rooms/new",
        &[
            ("name", "Typo Room"),
            ("modality", "fluoroscopy"),
            ("turnaround_minutes", "7"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"turnaround_minutes-error\""), "{html}");
    assert!(
        html.contains("href=\"#turnaround_minutes\""),
        "error summary links to the field"
    );
    assert!(html.contains("value=\"Typo Room\"") && html.contains("value=\"7\""));
    // Editing a room the same way.
    let fluoro1 = rooms.iter().find(|r| r.name == "Fluoro 1").unwrap();
    let room_page = format!("/admin/resources/rooms/{}", fluoro1.id);
    let (status, html, _) = post(
        &admin,
        &app,
        &room_page,
        &room_page,
        &[
            ("name", "Fluoro One"),
            ("modality", "fluoroscopy"),
            ("turnaround_minutes", "7"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("id=\"turnaround_minutes-error\"") && html.contains("value=\"Fluoro One\"")
    );
    assert_eq!(app.store.all_rooms(site.id).await.unwrap(), rooms);

    // Hours ending before they start.
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/hours"),
        &room_page,
        &[
            ("weekday", "6"),
            ("weekday", "7"),
            ("start_time", "16:00"),
            ("end_time", "08:00"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"end_time-error\""), "{html}");
    assert!(html.contains("value=\"16:00\"") && html.contains("value=\"7\" checked"));
    // Off the 5-minute grid, and overlapping hours already set.
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/hours"),
        &room_page,
        &[
            ("weekday", "6"),
            ("start_time", "08:03"),
            ("end_time", "09:00"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"start_time-error\""));
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/hours"),
        &room_page,
        &[
            ("weekday", "1"),
            ("start_time", "15:00"),
            ("end_time", "17:00"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("overlaps the hours already set for Mon 08:00-16:00"),
        "{html}"
    );
    assert_eq!(app.store.availability_windows().await.unwrap(), hours);

    // An unknown time zone.
    let (status, html, _) = post(
        &admin,
        &app,
        "/admin/resources/site",
        "/admin/resources",
        &[
            ("name", "Main Campus IR"),
            ("time_zone", "Mars/Olympus_Mons"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        html.contains("id=\"time_zone-error\"") && html.contains("value=\"Mars/Olympus_Mons\"")
    );
    assert_eq!(app.store.default_site().await.unwrap().unwrap(), site);

    // An exception without a reason.
    let saturday = a_saturday().to_string();
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &[
            ("from_date", &saturday),
            ("from_time", "08:00"),
            ("to_time", "12:00"),
            ("reason", "  "),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"reason-error\""), "{html}");
    assert!(html.contains(&format!("value=\"{saturday}\"")));
    // Or ending before it starts.
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &[
            ("from_date", &saturday),
            ("from_time", "12:00"),
            ("to_time", "08:00"),
            ("reason", "Holiday"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"to_time-error\""));
    assert_eq!(
        app.store
            .upcoming_closures(jiff::Timestamp::now())
            .await
            .unwrap(),
        closures_before
    );

    // A real zone other than the one irflow shows times in is refused: the site would be
    // booked in one zone and shown in another.
    let (status, html, _) = post(
        &admin,
        &app,
        "/admin/resources/site",
        "/admin/resources",
        &[("name", "Main Campus IR"), ("time_zone", "America/Chicago")],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("department.time_zone"), "{html}");
    assert_eq!(
        app.store.default_site().await.unwrap().unwrap().time_zone,
        "America/New_York"
    );
    // A rename is saved (and audited).
    let (status, _, _) = post(
        &admin,
        &app,
        "/admin/resources/site",
        "/admin/resources",
        &[
            ("name", "Main Campus IR (Building 2)"),
            ("time_zone", "America/New_York"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    assert_eq!(
        app.store.default_site().await.unwrap().unwrap().name,
        "Main Campus IR (Building 2)"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_strands_a_booked_patient() {
    let app = App::start().await;
    let admin = app.signed_in("admin").await;
    let sched = app.token_for("scheduler").await;
    // Book David Cohen into the first option.
    let cohen = app.case_of("Cohen").await;
    let (_, v) = api(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=1"),
    )
    .await;
    let first = v["slots"][0].clone();
    let room = first["room"]["id"].as_i64().unwrap();
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": first["start"], "room": room, "radiologist": first["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);

    // The room cannot be taken out of service: how many, and which cases.
    let room_page = format!("/admin/resources/rooms/{room}");
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/active"),
        &room_page,
        &[("active", "0")],
    )
    .await;
    assert_eq!(status, 409);
    let admin_actor = app.store.user_by_username("admin").await.unwrap().actor();
    let booked = app
        .store
        .resource_bookings(
            &admin_actor,
            irflow_store::ResourceKind::Room,
            room,
            jiff::Timestamp::now(),
            None,
        )
        .await
        .unwrap();
    assert!(booked.iter().any(|b| b.case_id.get() == cohen));
    let n = booked.len();
    let uses = if n == 1 {
        "1 future booked appointment uses it".to_owned()
    } else {
        format!("{n} future booked appointments use it")
    };
    assert!(html.contains(&uses), "{html}");
    assert!(html.contains(&format!("href=\"/cases/{cohen}\"")));
    assert!(app.store.room_entry(room).await.unwrap().active);
    // Nor its guidance changed under the booking.
    let entry = app.store.room_entry(room).await.unwrap();
    let other = if entry.modality.as_str() == "ct" {
        "fluoroscopy"
    } else {
        "ct"
    };
    let (status, html, _) = post(
        &admin,
        &app,
        &room_page,
        &room_page,
        &[
            ("name", &entry.name),
            ("modality", other),
            ("turnaround_minutes", "10"),
        ],
    )
    .await;
    assert_eq!(status, 422);
    assert!(html.contains("id=\"modality-error\""));
    assert_eq!(app.store.room_entry(room).await.unwrap(), entry);

    // An exception over the booking: shown, and saved only when confirmed.
    let start: jiff::Timestamp = first["start"].as_str().unwrap().parse().unwrap();
    let day = start.to_zoned_datetime(tz()).date().to_string();
    let fields = [
        ("from_date", day.as_str()),
        ("whole_day", "1"),
        ("reason", "Room down for service"),
    ];
    let (status, html, _) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &fields,
    )
    .await;
    assert_eq!(status, 409);
    assert!(html.contains("id=\"closure-confirm\"") && html.contains("name=\"confirm\""));
    assert!(html.contains(&format!("href=\"/cases/{cohen}\"")));
    assert!(html.contains("value=\"Room down for service\""));
    let now = jiff::Timestamp::now();
    let closures_before = app.store.upcoming_closures(now).await.unwrap();
    assert!(
        closures_before
            .iter()
            .all(|c| c.reason != "Room down for service")
    );
    // Ticking the box without having seen the list (no `seen`): asked again.
    let mut confirm: Vec<(&str, &str)> = fields.to_vec();
    confirm.push(("confirm", "1"));
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &confirm,
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(
        app.store.upcoming_closures(now).await.unwrap(),
        closures_before
    );
    // The bookings that day (the demo's and Cohen's), as the page listed them.
    let day_start = start
        .to_zoned_datetime(tz())
        .date()
        .to_zoned_datetime(tz())
        .unwrap();
    let day_end = day_start.tomorrow().unwrap();
    let inside: Vec<String> = app
        .store
        .resource_bookings(
            &admin_actor,
            irflow_store::ResourceKind::Room,
            room,
            day_start.timestamp(),
            Some(day_end.timestamp()),
        )
        .await
        .unwrap()
        .iter()
        .map(|b| b.appointment_id.to_string())
        .collect();
    for a in &inside {
        confirm.push(("seen", a));
    }
    let (status, _, location) = post(
        &admin,
        &app,
        &format!("{room_page}/closures"),
        &room_page,
        &confirm,
    )
    .await;
    assert_eq!(status, 303);
    assert!(
        location
            .unwrap()
            .contains(&format!("moves={}", inside.len()))
    );
    let (_, html) = page(&admin, &app, "/admin/resources").await;
    assert!(html.contains("id=\"needing-move\""), "{html}");
    let needs = if inside.len() == 1 {
        "1 needs a move".to_owned()
    } else {
        format!("{} need a move", inside.len())
    };
    assert!(html.contains(&needs) && html.contains(&format!("href=\"/cases/{cohen}\"")));

    // A room nobody is booked in goes out of service and comes back.
    let site = app.store.default_site().await.unwrap().unwrap();
    let (status, _, location) = post(
        &admin,
        &app,
        "/admin/resources/rooms",
        "/admin/resources/rooms/new",
        &[
            ("name", "Spare room"),
            ("modality", "fluoroscopy"),
            ("turnaround_minutes", "0"),
        ],
    )
    .await;
    assert_eq!(status, 303);
    let idle = app
        .store
        .room_entry(id_from(&location.unwrap(), "/admin/resources/rooms/"))
        .await
        .unwrap();
    let idle_page = format!("/admin/resources/rooms/{}", idle.id);
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{idle_page}/active"),
        &idle_page,
        &[("active", "0")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(!app.store.room_entry(idle.id).await.unwrap().active);
    assert!(
        app.store
            .rooms(site.id)
            .await
            .unwrap()
            .iter()
            .all(|r| r.id != idle.id),
        "an out-of-service room is not among the rooms the slot finder uses"
    );
    let (status, _, _) = post(
        &admin,
        &app,
        &format!("{idle_page}/active"),
        &idle_page,
        &[("active", "1")],
    )
    .await;
    assert_eq!(status, 303);
    assert!(app.store.room_entry(idle.id).await.unwrap().active);
    // Every change is in the audit log.
    let events = app
        .store
        .list_audit(
            &admin_actor,
            &irflow_store::AuditFilter {
                entity_type: Some("room".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "deactivate"
                && e.entity_id.as_deref() == Some(&idle.id.to_string()))
    );
    assert!(events.iter().any(|e| e.action == "activate"));
    app.stop().await;
}
