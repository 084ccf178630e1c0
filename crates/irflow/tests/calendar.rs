//! The scheduling calendar over real HTTP: a booking shows in the right column at
//! the right local time (also on DST days), check-in and no-show from the calendar
//! move the case and the appointment together, and the JSON twin lists the same.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, csrf_of};
use irflow_domain::scheduling::{ChairOption, SlotOption, WeeklyWindow};
use irflow_domain::{Actor, CaseId};
use irflow_store::{NewClosure, ResourceKind, SiteRecord};
use jiff::civil::{Date, Weekday, time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

fn tz() -> TimeZone {
    TimeZone::get("America/New_York").unwrap()
}

fn today() -> Date {
    Timestamp::now().to_zoned_datetime(tz()).date()
}

async fn get_json(app: &App, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn page(client: &reqwest::Client, app: &App, path: &str) -> (u16, String) {
    let r = client.get(app.at(path)).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// The HTML of one appointment block.
fn block(html: &str, appointment: i64) -> &str {
    let marker = format!("id=\"appt-{appointment}\"");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("appointment {appointment} is on the calendar"));
    let start = html[..at].rfind("<div").unwrap();
    let end = at + html[at..].find("</div>").unwrap();
    &html[start..end]
}

/// The local time of the table row an appointment's cell starts in.
fn row_time(html: &str, appointment: i64) -> String {
    let at = html.find(&format!("id=\"appt-{appointment}\"")).unwrap();
    let tr = html[..at].rfind("<tr data-time=\"").unwrap() + "<tr data-time=\"".len();
    html[tr..tr + 5].to_owned()
}

/// The `headers` of the cell holding an appointment (its column and time headers).
fn cell_headers(html: &str, appointment: i64) -> String {
    let at = html.find(&format!("id=\"appt-{appointment}\"")).unwrap();
    let td = html[..at].rfind("<td ").unwrap();
    let h = td + html[td..].find("headers=\"").unwrap() + "headers=\"".len();
    html[h..].split('"').next().unwrap().to_owned()
}

async fn actor(app: &App, username: &str) -> Actor {
    app.store.user_by_username(username).await.unwrap().actor()
}

async fn site(app: &App) -> SiteRecord {
    app.store.default_site().await.unwrap().unwrap()
}

async fn room_ids(app: &App) -> Vec<i64> {
    let site = site(app).await;
    app.store
        .rooms(site.id)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect()
}

fn local(date: Date, h: i8, m: i8) -> Timestamp {
    date.to_datetime(time(h, m, 0, 0))
        .to_zoned_datetime(tz())
        .unwrap()
        .timestamp()
}

/// Books (or, with `reason`, moves) a case's appointment straight through the store,
/// at any time, even one already past: the API refuses past times.
async fn book_at(
    app: &App,
    case: i64,
    start: Timestamp,
    room: i64,
    radiologist: &str,
    chair: Option<i64>,
    reason: Option<&str>,
) -> i64 {
    let site = site(app).await;
    let scheduler = actor(app, "scheduler").await;
    let end = start + SignedDuration::from_mins(20);
    let option = SlotOption {
        start,
        end,
        room,
        radiologist: app
            .store
            .user_by_username(radiologist)
            .await
            .unwrap()
            .id
            .get(),
        chair: chair.map(|chair| ChairOption {
            chair,
            start: end,
            end: end + SignedDuration::from_mins(60),
        }),
    };
    let at = Timestamp::now();
    let booked = match reason {
        None => {
            app.store
                .book_appointment(
                    &scheduler,
                    CaseId::new(case),
                    &site,
                    &option,
                    10,
                    None,
                    at,
                    today(),
                )
                .await
        }
        Some(why) => {
            app.store
                .reschedule_appointment(
                    &scheduler,
                    CaseId::new(case),
                    &site,
                    &option,
                    10,
                    why,
                    at,
                    today(),
                )
                .await
        }
    };
    booked.unwrap().id
}

async fn case_state(app: &App, token: &str, case: i64) -> String {
    let (status, v) = get_json(app, token, &format!("/api/v1/cases/{case}")).await;
    assert_eq!(status, 200, "{v}");
    v["state"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_booking_shows_in_its_room_at_its_local_time_in_the_day_week_and_api() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let cohen = app.case_of("Cohen").await;
    let (status, v) = get_json(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=1"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let slot = v["slots"][0].clone();
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let booked: Value = r.json().await.unwrap();
    let appt = booked["id"].as_i64().unwrap();
    let start = booked["start"].as_str().unwrap().to_owned();
    let (date, hhmm) = (&start[..10], &start[11..16]);
    let arrive = &booked["arrive_by"].as_str().unwrap()[11..16];
    let room = booked["room"]["id"].as_i64().unwrap();
    let rad = booked["radiologist"]["id"].as_i64().unwrap();

    // The day, by room: in its room's column, in the row of its local start time.
    let scheduler = app.signed_in("scheduler").await;
    let (status, html) = page(&scheduler, &app, &format!("/calendar?date={date}")).await;
    assert_eq!(status, 200, "{html}");
    assert_eq!(row_time(&html, appt), hhmm);
    assert!(
        cell_headers(&html, appt).starts_with(&format!("cal-col-room-{room} cal-t-")),
        "{}",
        cell_headers(&html, appt)
    );
    let b = block(&html, appt);
    assert!(b.contains("Cohen, David"), "{b}");
    assert!(b.contains(&format!("arrive by {arrive}")), "{b}");
    assert!(b.contains(&format!("href=\"/cases/{cohen}\"")), "{b}");
    assert!(b.contains(">Booked<"), "{b}");
    assert!(
        b.contains(booked["radiologist"]["name"].as_str().unwrap()),
        "{b}"
    );
    // The table has real headers for its columns and times.
    assert!(html.contains(&format!("<th scope=\"col\" id=\"cal-col-room-{room}\"")));
    assert!(html.contains("<th scope=\"row\" rowspan=\"3\" id=\"cal-t-"));

    // The day, by radiologist.
    let (status, html) = page(
        &scheduler,
        &app,
        &format!("/calendar?date={date}&by=radiologist"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(cell_headers(&html, appt).starts_with(&format!("cal-col-radiologist-{rad} ")));
    assert_eq!(row_time(&html, appt), hhmm);

    // The radiologist's week: in the column of its day.
    for q in [
        format!("view=week&date={date}&radiologist={rad}"),
        format!("view=week&date={date}&resource=radiologist-{rad}"),
    ] {
        let (status, html) = page(&scheduler, &app, &format!("/calendar?{q}")).await;
        assert_eq!(status, 200, "{q}: {html}");
        assert!(
            cell_headers(&html, appt).starts_with(&format!("cal-col-day-{date} ")),
            "{q}"
        );
        assert_eq!(row_time(&html, appt), hhmm);
        assert!(block(&html, appt).contains("Cohen, David"));
    }
    // Another room's week does not show it.
    let other = room_ids(&app)
        .await
        .into_iter()
        .find(|r| *r != room)
        .unwrap();
    let (_, html) = page(
        &scheduler,
        &app,
        &format!("/calendar?view=week&date={date}&room={other}"),
    )
    .await;
    assert!(!html.contains(&format!("id=\"appt-{appt}\"")));

    // Nurses, radiologists and admins read it too; referrers are refused.
    for user in ["nurse", "radiologist", "admin"] {
        let c = app.signed_in(user).await;
        let (status, html) = page(&c, &app, &format!("/calendar?date={date}")).await;
        assert_eq!(status, 200, "{user}");
        assert!(html.contains(&format!("id=\"appt-{appt}\"")), "{user}");
    }
    let referrer = app.signed_in("referrer").await;
    let (status, _) = page(&referrer, &app, "/calendar").await;
    assert_eq!(status, 403);
    let (status, _) = page(&referrer, &app, &format!("/calendar?date={date}")).await;
    assert_eq!(status, 403);
    // Not signed in: to the sign-in page.
    let r = common::browser()
        .get(app.at("/calendar"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);

    // The calendar's first and last days work, and link no further.
    for q in ["date=2100-12-31", "view=week&date=2000-01-01"] {
        let (status, html) = page(&scheduler, &app, &format!("/calendar?{q}")).await;
        assert_eq!(status, 200, "{q}: {html}");
        assert!(!html.contains("2101-"), "{q}");
    }
    // Bad addresses get a clear 400 page, never a panic.
    for q in [
        "date=2026-02-30",
        "date=tomorrow",
        "date=1850-01-01",
        "date=2026-11-01&date=2026-11-02",
        "view=month",
        "by=chair",
        "view=week&room=abc",
        "view=week&room=999999",
        "view=week&radiologist=1",
        "view=week&room=1&radiologist=4",
        "resource=nothing-1",
        "done=check_in",
    ] {
        let (status, html) = page(&scheduler, &app, &format!("/calendar?{q}")).await;
        assert_eq!(status, 400, "{q}");
        assert!(html.contains("That did not work"), "{q}");
    }

    // The JSON twin.
    let nurse = app.token_for("nurse").await;
    let (status, v) = get_json(
        &app,
        &nurse,
        &format!("/api/v1/appointments?from={date}&to={date}"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["time_zone"], "America/New_York");
    let listed = v["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == appt)
        .expect("listed")
        .clone();
    assert_eq!(listed["case_id"], cohen);
    assert_eq!(listed["start"], booked["start"]);
    assert_eq!(listed["end"], booked["end"]);
    assert_eq!(listed["arrive_by"], booked["arrive_by"]);
    assert_eq!(listed["state"], "booked");
    assert_eq!(listed["case_state"], "scheduled");
    assert_eq!(listed["patient"]["family_name"], "Cohen");
    assert_eq!(listed["patient"]["name"], "Cohen, David");
    assert!(listed["procedure"]["code"].is_string());
    assert!(listed["attendance_at"].is_null());
    let (_, v) = get_json(
        &app,
        &nurse,
        &format!("/api/v1/appointments?from={date}&to={date}&room={other}"),
    )
    .await;
    assert!(
        v["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != appt && a["room"]["id"] == other)
    );
    let (_, v) = get_json(
        &app,
        &nurse,
        &format!("/api/v1/appointments?from={date}&to={date}&radiologist={rad}"),
    )
    .await;
    assert!(
        v["appointments"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == appt)
    );
    // Referrers see only their own referrals' appointments.
    let from = today();
    let to = from + jiff::Span::new().days(60);
    let staff_all = get_json(
        &app,
        &nurse,
        &format!("/api/v1/appointments?from={from}&to={to}"),
    )
    .await
    .1;
    let referrer2 = app.token_for("referrer2").await;
    let (status, mine) = get_json(
        &app,
        &referrer2,
        &format!("/api/v1/appointments?from={from}&to={to}"),
    )
    .await;
    assert_eq!(status, 200);
    let (_, their_cases) = get_json(&app, &referrer2, "/api/v1/cases").await;
    let own: Vec<i64> = their_cases["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    let mine = mine["appointments"].as_array().unwrap();
    assert!(!mine.is_empty(), "Williams is referrer2's and booked");
    assert!(
        mine.iter()
            .all(|a| own.contains(&a["case_id"].as_i64().unwrap()))
    );
    assert!(mine.iter().all(|a| a["case_id"] != cohen));
    assert!(staff_all["appointments"].as_array().unwrap().len() > mine.len());
    for q in [
        "from=2026-13-01",
        "from=2026-11-05&to=2026-11-04",
        "from=2026-01-01&to=2026-12-31",
        "room=abc",
        "radiologist=-3",
    ] {
        let (status, v) = get_json(&app, &nurse, &format!("/api/v1/appointments?{q}")).await;
        assert_eq!(status, 400, "{q}: {v}");
        assert_eq!(v["error"]["code"], "bad_request");
    }
    let r = reqwest::Client::new()
        .get(app.at("/api/v1/appointments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_in_and_no_show_from_the_calendar() {
    let app = App::start().await;
    let nurse_token = app.token_for("nurse").await;
    let rooms = room_ids(&app).await;
    let site = site(&app).await;
    let chair = app.store.chairs(site.id).await.unwrap()[0].0;
    // Cohen is booked today (now, to the 5 minutes), with a recovery chair.
    let cohen = app.case_of("Cohen").await;
    let now = Timestamp::now();
    let start = Timestamp::from_second(now.as_second() - now.as_second().rem_euclid(300)).unwrap();
    let appt = book_at(
        &app,
        cohen,
        start,
        rooms[0],
        "radiologist",
        Some(chair),
        None,
    )
    .await;
    // Williams is moved to yesterday 11:00: past, and nobody checked the patient in.
    let williams = app.case_of("Williams").await;
    let yesterday = today() - jiff::Span::new().days(1);
    let past = book_at(
        &app,
        williams,
        local(yesterday, 11, 0),
        rooms[2],
        "radiologist2",
        None,
        Some("test: earlier"),
    )
    .await;
    // Santos is confirmed for a day to come.
    let santos = app.case_of("Santos").await;

    // A nurse sees today's appointment with a check-in button and the chair marker.
    let nurse = app.signed_in("nurse").await;
    let (status, html) = page(&nurse, &app, "/calendar").await;
    assert_eq!(status, 200);
    let b = block(&html, appt);
    assert!(b.contains(&format!("id=\"check-in-{cohen}\"")), "{b}");
    assert!(b.contains("Recovery chair 1 until "), "{b}");
    assert!(
        !b.contains("no-show-"),
        "only schedulers record no-shows: {b}"
    );
    let csrf = csrf_of(&html);

    // Without the anti-forgery token: refused, nothing changes.
    let r = nurse
        .post(app.at(&format!("/calendar/check-in/{cohen}")))
        .form(&[("csrf", "nope"), ("back", "/calendar")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(case_state(&app, &nurse_token, cohen).await, "scheduled");
    // Not today's appointment: refused with the reason.
    let r = nurse
        .post(app.at(&format!("/calendar/check-in/{santos}")))
        .form(&[("csrf", csrf.as_str()), ("back", "/calendar")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409);
    assert!(r.text().await.unwrap().contains("check-in is for today"));
    assert_eq!(case_state(&app, &nurse_token, santos).await, "confirmed");

    // Check in: back to the calendar, the case has arrived, the block says so.
    let back = format!("/calendar?date={}", today());
    let r = nurse
        .post(app.at(&format!("/calendar/check-in/{cohen}")))
        .form(&[("csrf", csrf.as_str()), ("back", back.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(
        location,
        format!("/calendar?date={}&done=check_in&case={cohen}", today())
    );
    assert_eq!(case_state(&app, &nurse_token, cohen).await, "arrived");
    let (status, html) = page(&nurse, &app, &location).await;
    assert_eq!(status, 200);
    assert!(html.contains("Checked in: Cohen, David."));
    let b = block(&html, appt);
    assert!(b.contains("cal-st-arrived"), "{b}");
    assert!(b.contains(">Arrived "), "the arrival time is shown: {b}");
    assert!(!b.contains("check-in-"), "{b}");
    // The API agrees, with the time of arrival.
    let (_, v) = get_json(&app, &nurse_token, "/api/v1/appointments").await;
    let listed = v["appointments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == appt)
        .unwrap()
        .clone();
    assert_eq!(listed["state"], "arrived");
    assert!(
        listed["attendance_at"]
            .as_str()
            .unwrap()
            .starts_with(&today().to_string())
    );
    // A second check-in is refused (htmx gets the block back with the message).
    let r = nurse
        .post(app.at(&format!("/calendar/check-in/{cohen}")))
        .header("HX-Request", "true")
        .form(&[("csrf", csrf.as_str()), ("back", back.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(block(&html, appt).contains("role=\"alert\""));

    // No-show: only schedulers, only after the start, only with a reason.
    let r = nurse
        .post(app.at(&format!("/calendar/no-show/{williams}")))
        .form(&[("csrf", csrf.as_str()), ("reason", "did not come")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(case_state(&app, &nurse_token, williams).await, "scheduled");
    let scheduler = app.signed_in("scheduler").await;
    let (_, html) = page(&scheduler, &app, &format!("/calendar?date={yesterday}")).await;
    let b = block(&html, past);
    assert!(b.contains(&format!("id=\"no-show-{williams}\"")), "{b}");
    assert!(!b.contains("check-in-"), "not today: {b}");
    let csrf = csrf_of(&html);
    let back = format!("/calendar?date={yesterday}");
    let r = scheduler
        .post(app.at(&format!("/calendar/no-show/{williams}")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("back", back.as_str()),
            ("reason", "  "),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(case_state(&app, &nurse_token, williams).await, "scheduled");
    let r = scheduler
        .post(app.at(&format!("/calendar/no-show/{santos}")))
        .form(&[("csrf", csrf.as_str()), ("reason", "early")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 409, "not started yet");
    assert_eq!(case_state(&app, &nurse_token, santos).await, "confirmed");
    let r = scheduler
        .post(app.at(&format!("/calendar/no-show/{williams}")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("back", back.as_str()),
            ("reason", "Did not come; no answer by phone"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(case_state(&app, &nurse_token, williams).await, "no_show");
    // The time is released: room and radiologist are free again.
    let at = local(yesterday, 11, 0);
    let res = app
        .store
        .slot_resources(
            &site,
            at - SignedDuration::from_hours(24),
            at + SignedDuration::from_hours(24),
        )
        .await
        .unwrap();
    let slot = irflow_domain::scheduling::Interval {
        start: at,
        end: at + SignedDuration::from_mins(20),
    };
    assert!(res.busy.is_free(
        &irflow_domain::scheduling::ResourceId::Room(rooms[2]),
        &slot
    ));
    // The day's history stays: the block is shown as a no-show, without actions.
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let (_, html) = page(&scheduler, &app, &location).await;
    assert!(html.contains("No-show recorded: Williams"));
    let b = block(&html, past);
    assert!(
        b.contains("cal-st-no_show") && b.contains(">No-show<"),
        "{b}"
    );
    assert!(!b.contains("no-show-reason"), "{b}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dst_days_keep_the_clinic_hours_on_the_wall_clock_and_closures_show() {
    let app = App::start().await;
    let admin = actor(&app, "admin").await;
    let rooms = room_ids(&app).await;
    // Open the first room on Sundays too, 08:00-16:00 local.
    app.store
        .add_availability(
            &admin,
            ResourceKind::Room,
            rooms[0],
            WeeklyWindow {
                weekday: Weekday::Sunday,
                start: time(8, 0, 0, 0),
                end: time(16, 0, 0, 0),
            },
        )
        .await
        .unwrap();
    let cohen = app.case_of("Cohen").await;
    let scheduler = app.signed_in("scheduler").await;
    // Clocks go forward on 2027-03-14 and back on 2026-11-01 in New York.
    for (i, day) in ["2027-03-14", "2026-11-01"].into_iter().enumerate() {
        let date: Date = day.parse().unwrap();
        let appt = book_at(
            &app,
            cohen,
            local(date, 9, 0),
            rooms[0],
            "radiologist",
            None,
            (i > 0).then_some("test: the other DST day"),
        )
        .await;
        let (status, html) = page(&scheduler, &app, &format!("/calendar?date={day}")).await;
        assert_eq!(status, 200, "{day}");
        let first = html.find("<tr data-time=\"").unwrap() + "<tr data-time=\"".len();
        assert_eq!(
            &html[first..first + 5],
            "08:00",
            "{day}: the grid opens at 08:00"
        );
        let row = &html[first..first + html[first..].find("</tr>").unwrap()];
        assert!(
            row.contains("id=\"cal-t-0800\" class=\"cal-time\">08:00</th>"),
            "{day}: {row}"
        );
        assert!(
            row.contains("<td class=\"cal-slot\""),
            "{day}: the open room's 08:00 is not shaded: {row}"
        );
        assert!(
            html.contains("08:00–16:00"),
            "{day}: opening hours in the header"
        );
        assert_eq!(row_time(&html, appt), "09:00", "{day}");
        assert!(block(&html, appt).contains("09:00–09:20"), "{day}");
        // The week around the DST day starts at 08:00 too.
        let (status, html) = page(
            &scheduler,
            &app,
            &format!("/calendar?view=week&date={day}&room={}", rooms[0]),
        )
        .await;
        assert_eq!(status, 200);
        let first = html.find("<tr data-time=\"").unwrap() + "<tr data-time=\"".len();
        assert_eq!(&html[first..first + 5], "08:00", "{day} week");
        assert_eq!(row_time(&html, appt), "09:00", "{day} week");
        assert!(cell_headers(&html, appt).starts_with(&format!("cal-col-day-{day} ")));
    }

    // A room down for service is drawn hatched in its column, with its reason; a
    // radiologist away is listed when the columns are rooms.
    let day = today() + jiff::Span::new().days(7);
    let day = day - jiff::Span::new().days(i64::from(day.weekday().to_monday_zero_offset()));
    let now = Timestamp::now();
    app.store
        .add_closure(
            &admin,
            &NewClosure {
                kind: ResourceKind::Room,
                resource_id: rooms[1],
                start: local(day, 10, 0),
                end: local(day, 12, 0),
                reason: "Service visit: C-arm tube".to_owned(),
            },
            true,
            now,
        )
        .await
        .unwrap();
    let rad3 = app.store.user_by_username("radiologist3").await.unwrap().id;
    app.store
        .add_closure(
            &admin,
            &NewClosure {
                kind: ResourceKind::Radiologist,
                resource_id: rad3.get(),
                start: local(day, 8, 0),
                end: local(day, 16, 0),
                reason: "Conference".to_owned(),
            },
            true,
            now,
        )
        .await
        .unwrap();
    let (status, html) = page(&scheduler, &app, &format!("/calendar?date={day}")).await;
    assert_eq!(status, 200);
    let at = html
        .find("Service visit: C-arm tube")
        .expect("closure shown");
    let td = html[..at].rfind("<td ").unwrap();
    let cell = &html[td..at];
    assert!(cell.contains("cal-closed"), "{cell}");
    assert!(
        cell.contains(&format!("headers=\"cal-col-room-{} cal-t-1000\"", rooms[1])),
        "{cell}"
    );
    let tr = html[..at].rfind("<tr data-time=\"").unwrap();
    assert_eq!(&html[tr + 15..tr + 20], "10:00");
    assert!(html.contains("Conference"), "radiologist away is listed");
    let (_, html) = page(
        &scheduler,
        &app,
        &format!("/calendar?date={day}&by=radiologist"),
    )
    .await;
    let at = html.find("Conference").unwrap();
    let td = html[..at].rfind("<td ").unwrap();
    assert!(html[td..at].contains(&format!("cal-col-radiologist-{} ", rad3.get())));
    app.stop().await;
}
