//! Booking over the API: options honour the screening, a booking schedules the
//! case, races have one winner, cancelling frees the time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use serde_json::{Value, json};

async fn get(app: &App, token: &str, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(app.at(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduler_books_and_cancels_and_races_have_one_winner() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    // David Cohen: screened clear, ready to book.
    let cohen = app.case_of("Cohen").await;
    let (status, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=5"),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let slots = v["slots"].as_array().unwrap();
    assert_eq!(slots.len(), 5);
    let first = &slots[0];
    let start: jiff::Timestamp = first["start"].as_str().unwrap().parse().unwrap();
    assert!(
        start >= jiff::Timestamp::now() + jiff::SignedDuration::from_mins(59),
        "never in the past, and with an hour's notice"
    );
    // A time within the hour is refused with the reason, whatever the clock says.
    let soon = jiff::Timestamp::now() + jiff::SignedDuration::from_mins(20);
    let soon = jiff::Timestamp::from_second(soon.as_second() - soon.as_second() % 300).unwrap()
        + jiff::SignedDuration::from_mins(5);
    let r = reqwest::Client::new()
        .post(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": soon.to_string(), "room": first["room"]["id"], "radiologist": first["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("notice"),
        "{v}"
    );
    let arrive: jiff::Timestamp = first["arrive_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(start - arrive, jiff::SignedDuration::from_mins(15));
    assert!(
        matches!(
            first["room"]["modality"].as_str(),
            Some("fluoroscopy" | "ct")
        ),
        "64483 under fluoroscopy or CT: {slots:?}"
    );
    // When every room is free (a Tuesday five weeks on, past the demo's bookings),
    // fluoroscopy rooms are offered first. (The earliest option above may be in CT:
    // late in New York's day it is tomorrow 08:00, when the demo has booked both
    // fluoroscopy rooms.)
    let tuesday = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .date()
        .checked_add(jiff::Span::new().days(35))
        .unwrap()
        .nth_weekday(1, jiff::civil::Weekday::Tuesday)
        .unwrap();
    let (status, later) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=3&from={tuesday}"),
    )
    .await;
    assert_eq!(status, 200, "{later}");
    assert_eq!(
        later["slots"][0]["room"]["modality"], "fluoroscopy",
        "rooms listed first are fluoroscopy: {later}"
    );
    assert!(
        later["slots"][0]["start"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{tuesday}T08:00")),
        "{later}"
    );
    assert!(first["recovery_chair"].is_null(), "Cohen has a driver");

    // Two ready cases race for the same option: one wins.
    let nurse = app.token_for("nurse").await;
    let rahman = app.case_of("Rahman").await;
    let (status, _) = (
        reqwest::Client::new()
            .post(app.at(&format!("/api/v1/cases/{rahman}/screening")))
            .bearer_auth(&nurse)
            .json(&json!({"escort_available": true}))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        (),
    );
    assert_eq!(status, 200);
    let body = json!({"start": first["start"], "room": first["room"]["id"], "radiologist": first["radiologist"]["id"]});
    let c = reqwest::Client::new();
    let a = c
        .post(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
        .bearer_auth(&sched)
        .header("idempotency-key", "cohen-1")
        .json(&body)
        .send();
    let b = c
        .post(app.at(&format!("/api/v1/cases/{rahman}/appointment")))
        .bearer_auth(&sched)
        .json(&body)
        .send();
    let (a, b) = tokio::join!(a, b);
    let (a, b) = (a.unwrap(), b.unwrap());
    let statuses = [a.status().as_u16(), b.status().as_u16()];
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "one winner: {statuses:?}"
    );
    assert!(
        statuses.contains(&409),
        "the loser is told the time was taken (409): {statuses:?}"
    );
    let (winner, loser) = if statuses[0] == 201 {
        (cohen, rahman)
    } else {
        (rahman, cohen)
    };
    let (status, appt) = get(&app, &sched, &format!("/api/v1/cases/{winner}/appointment")).await;
    assert_eq!(status, 200);
    assert_eq!(appt["start"], first["start"]);
    let (_, case) = get(&app, &sched, &format!("/api/v1/cases/{winner}")).await;
    assert_eq!(case["state"], "scheduled");
    let (status, _) = get(&app, &sched, &format!("/api/v1/cases/{loser}/appointment")).await;
    assert_eq!(status, 404);

    // Rule refusals say which rule; nothing is stored.
    let r = c
        .post(app.at(&format!("/api/v1/cases/{loser}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": "2020-01-06T09:00:00-05:00", "room": first["room"]["id"], "radiologist": first["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already passed"),
        "{v}"
    );
    // Saturday: the room is closed.
    let saturday = {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let mut d =
            jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date() + jiff::Span::new().days(1);
        while d.weekday() != jiff::civil::Weekday::Saturday {
            d += jiff::Span::new().days(1);
        }
        d.to_datetime(jiff::civil::time(9, 0, 0, 0))
            .to_zoned_datetime(tz)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
    };
    let r = c
        .post(app.at(&format!("/api/v1/cases/{loser}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": saturday, "room": first["room"]["id"], "radiologist": first["radiologist"]["id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"].as_str().unwrap().contains("not open"),
        "{v}"
    );
    // Nurses do not book.
    let r = c
        .post(app.at(&format!("/api/v1/cases/{loser}/appointment")))
        .bearer_auth(&nurse)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // A deferred case cannot be offered slots.
    let nguyen = app.case_of("Nguyen").await;
    let (status, v) = get(&app, &sched, &format!("/api/v1/cases/{nguyen}/slots")).await;
    assert!(status == 422 || status == 200, "{v}");
    if status == 200 {
        // Deferred until a date: every option is on or after it.
        let (_, sc) = get(&app, &sched, &format!("/api/v1/cases/{nguyen}/screening")).await;
        let earliest = sc["decision"]["earliest_safe_date"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            v["slots"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["start"].as_str().unwrap()[..10] >= *earliest)
        );
    }

    // Move it: to the next option; the screening is re-evaluated for the new date.
    let (_, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{winner}/slots?limit=3"),
    )
    .await;
    let next = v["slots"][0].clone();
    let r = c
        .put(app.at(&format!("/api/v1/cases/{winner}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": next["start"], "room": next["room"]["id"], "radiologist": next["radiologist"]["id"], "reason": "patient prefers later"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let moved: Value = r.json().await.unwrap();
    assert_eq!(moved["start"], next["start"]);
    let (_, case) = get(&app, &sched, &format!("/api/v1/cases/{winner}")).await;
    assert_eq!(case["state"], "scheduled");
    assert!(
        case["timeline"].as_array().unwrap().last().unwrap()["reason"]
            .as_str()
            .unwrap()
            .contains("patient prefers later")
    );
    // Moving to a time the room is closed is refused and the booking stays.
    let r = c
        .put(app.at(&format!("/api/v1/cases/{winner}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": saturday, "room": first["room"]["id"], "radiologist": first["radiologist"]["id"], "reason": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let (_, still) = get(&app, &sched, &format!("/api/v1/cases/{winner}/appointment")).await;
    assert_eq!(still["start"], next["start"], "the old booking stands");
    // Moving it back to the original time works: its own booking does not block it.
    let r = c
        .put(app.at(&format!("/api/v1/cases/{winner}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"start": first["start"], "room": first["room"]["id"], "radiologist": first["radiologist"]["id"], "reason": "back again"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Cancel: the case is ready again and the time is free for the other case.
    let r = c
        .delete(app.at(&format!("/api/v1/cases/{winner}/appointment")))
        .bearer_auth(&sched)
        .json(&json!({"reason": "patient asked for another day"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let (_, case) = get(&app, &sched, &format!("/api/v1/cases/{winner}")).await;
    assert_eq!(case["state"], "ready");
    let r = c
        .post(app.at(&format!("/api/v1/cases/{loser}/appointment")))
        .bearer_auth(&sched)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the freed time can be booked");
    app.stop().await;
}

async fn send(
    app: &App,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let r = reqwest::Client::new()
        .request(method, app.at(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn screen_ready(app: &App, family: &str) -> i64 {
    let nurse = app.token_for("nurse").await;
    let id = app.case_of(family).await;
    let (status, v) = send(
        app,
        reqwest::Method::POST,
        &nurse,
        &format!("/api/v1/cases/{id}/screening"),
        json!({"escort_available": true}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    id
}

fn book_body(slot: &Value) -> Value {
    json!({"start": slot["start"], "room": slot["room"]["id"], "radiologist": slot["radiologist"]["id"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freed_time_is_offered_to_the_waitlist_and_taken() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let cohen = app.case_of("Cohen").await;
    let rahman = screen_ready(&app, "Rahman").await;
    // Cohen takes the earliest time; Rahman is booked a week later and wants earlier.
    let (_, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=1"),
    )
    .await;
    let early = v["slots"][0].clone();
    let (status, cohen_appt) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{cohen}/appointment"),
        book_body(&early),
    )
    .await;
    assert_eq!(status, 201, "{cohen_appt}");
    let later_day = {
        let start: jiff::Timestamp = early["start"].as_str().unwrap().parse().unwrap();
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        (start.to_zoned_datetime(tz).date() + jiff::Span::new().days(7)).to_string()
    };
    let (_, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{rahman}/slots?limit=1&from={later_day}"),
    )
    .await;
    let late = v["slots"][0].clone();
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{rahman}/appointment"),
        book_body(&late),
    )
    .await;
    assert_eq!(status, 201);
    let (status, v) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{rahman}/waitlist"),
        json!({"note": "can come at short notice"}),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Twice is refused; a case that is not ready cannot go on it; nurses do not keep it.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{rahman}/waitlist"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409);
    let johnson = app.case_of("Johnson").await;
    let (status, v) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{johnson}/waitlist"),
        json!({}),
    )
    .await;
    assert_eq!(status, 409, "{v}");
    let nurse = app.token_for("nurse").await;
    let (status, _) = get(&app, &nurse, "/api/v1/waitlist").await;
    assert_eq!(status, 403);
    let (_, list) = get(&app, &sched, "/api/v1/waitlist").await;
    // The demo's Chidi Okafor is on it too.
    let entry = |list: &Value, case: i64| {
        list["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["case_id"] == case)
            .cloned()
    };
    let mine = entry(&list, rahman).expect("Rahman is on the waitlist");
    assert_eq!(mine["booked_start"], late["start"]);
    assert_eq!(mine["note"], "can come at short notice");

    // Cohen cancels: the freed time is offered to Rahman, ready and safe then.
    let (status, cancelled) = send(
        &app,
        reqwest::Method::DELETE,
        &sched,
        &format!("/api/v1/cases/{cohen}/appointment"),
        json!({"reason": "patient is travelling"}),
    )
    .await;
    assert_eq!(status, 200, "{cancelled}");
    let offered = cancelled["offered_to_waitlist"].as_array().unwrap();
    let to_rahman = offered
        .iter()
        .find(|o| o["case_id"] == rahman)
        .unwrap_or_else(|| panic!("offered to Rahman: {cancelled}"));
    let option = to_rahman["option"].clone();
    let offered_start: jiff::Timestamp = option["start"].as_str().unwrap().parse().unwrap();
    let freed_start: jiff::Timestamp = early["start"].as_str().unwrap().parse().unwrap();
    let freed_end: jiff::Timestamp = early["end"].as_str().unwrap().parse().unwrap();
    assert!(offered_start >= freed_start && offered_start < freed_end);
    let (_, list) = get(&app, &sched, "/api/v1/waitlist").await;
    let offers = list["offers"].as_array().unwrap();
    assert!(
        offers.iter().any(|o| o["freed"]["start"] == early["start"]
            && o["candidates"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["case_id"] == rahman)),
        "{list}"
    );
    // Taking it moves Rahman's booking earlier and takes him off the list.
    let (status, moved) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{rahman}/waitlist/take"),
        json!({"start": option["start"], "room": option["room"]["id"], "radiologist": option["radiologist"]["id"]}),
    )
    .await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!(moved["start"], option["start"]);
    let (_, list) = get(&app, &sched, "/api/v1/waitlist").await;
    assert!(entry(&list, rahman).is_none(), "{list}");
    // The time is no longer on offer to anyone (it is booked); Rahman's old time is freed.
    assert!(
        list["offers"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["freed"]["start"] != early["start"]),
        "{list}"
    );
    assert!(
        list["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["freed"]["start"] == late["start"]),
        "{list}"
    );
    // Cohen, ready again, goes on the list; a time that is earlier than nothing
    // (he is unbooked) is offered: the time Rahman left.
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{cohen}/waitlist"),
        json!({"note": ""}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, list) = get(&app, &sched, "/api/v1/waitlist").await;
    assert!(
        list["offers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|o| o["freed"]["start"] == late["start"]
                && o["candidates"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|c| c["case_id"] == cohen)),
        "{list}"
    );
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &sched,
        &format!("/api/v1/cases/{cohen}/waitlist"),
        json!({"reason": "patient will call back"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = send(
        &app,
        reqwest::Method::DELETE,
        &sched,
        &format!("/api/v1/cases/{cohen}/waitlist"),
        json!({"reason": "again"}),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_and_the_radiologists_plan_shape_the_options() {
    let app = App::start().await;
    // A Monday well past the demo's bookings.
    let monday = jiff::civil::date(common::dst_year(), 1, 1)
        .nth_weekday_of_month(2, jiff::civil::Weekday::Monday)
        .unwrap();
    let sched = app.token_for("scheduler").await;
    let rad = app.token_for("radiologist").await;
    let cohen = app.case_of("Cohen").await;
    let (_, plain) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=3&from={monday}"),
    )
    .await;
    let first_plain = plain["slots"][0]["start"].as_str().unwrap().to_owned();
    assert!(first_plain.contains("T08:00:00"), "{plain}");
    // The patient prefers afternoons: the same first day, afternoon times first.
    let (status, v) = send(
        &app,
        reqwest::Method::PUT,
        &sched,
        &format!("/api/v1/cases/{cohen}/preferences"),
        json!({"days": ["mon", "wed"], "time_of_day": "afternoon", "note": "works mornings"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = get(&app, &sched, &format!("/api/v1/cases/{cohen}/preferences")).await;
    assert_eq!(v["days"], json!(["mon", "wed"]));
    assert_eq!(v["time_of_day"], "afternoon");
    let (_, pref) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=3&from={monday}"),
    )
    .await;
    let first = pref["slots"][0]["start"].as_str().unwrap();
    assert_eq!(&first[..10], &first_plain[..10], "still the earliest day");
    let hour: u32 = first[11..13].parse().unwrap();
    assert!(hour >= 12, "afternoon first: {pref}");
    // Bad preferences are refused and change nothing.
    let (status, v) = send(
        &app,
        reqwest::Method::PUT,
        &sched,
        &format!("/api/v1/cases/{cohen}/preferences"),
        json!({"days": ["someday"]}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("someday"));
    let (_, v) = get(&app, &sched, &format!("/api/v1/cases/{cohen}/preferences")).await;
    assert_eq!(v["time_of_day"], "afternoon");

    // The radiologist plans CT guidance without contrast: only the CT room is offered.
    let (status, v) = send(
        &app,
        reqwest::Method::PUT,
        &sched,
        &format!("/api/v1/cases/{cohen}/plan"),
        json!({"guidance": "ct"}),
    )
    .await;
    assert_eq!(status, 403, "the plan is the radiologist's: {v}");
    let (status, v) = send(
        &app,
        reqwest::Method::PUT,
        &rad,
        &format!("/api/v1/cases/{cohen}/plan"),
        json!({"guidance": "mri"}),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    let (status, v) = send(
        &app,
        reqwest::Method::PUT,
        &rad,
        &format!("/api/v1/cases/{cohen}/plan"),
        json!({"guidance": "ct", "contrast": false, "note": "contrast allergy"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, ct) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=10&from={monday}"),
    )
    .await;
    let slots = ct["slots"].as_array().unwrap();
    assert!(!slots.is_empty());
    assert!(slots.iter().all(|s| s["room"]["modality"] == "ct"), "{ct}");
    // Booking a fluoroscopy room against the plan is refused, naming the rule.
    let fluoro = plain["slots"][0].clone();
    let (status, v) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{cohen}/appointment"),
        book_body(&fluoro),
    )
    .await;
    assert_eq!(status, 422, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("guidance")
            || v["error"]["message"].as_str().unwrap().contains("modality"),
        "{v}"
    );
    // A case that is not ready is refused with the reason.
    let johnson = app.case_of("Johnson").await;
    let (status, v) = get(&app, &sched, &format!("/api/v1/cases/{johnson}/slots")).await;
    assert_eq!(status, 422);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("actions are still open"),
        "{v}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_no_show_releases_the_time_and_the_case_can_be_rebooked() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let williams = app.case_of("Williams").await;
    let (status, appt) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/appointment"),
    )
    .await;
    assert_eq!(status, 200, "{appt}");
    let (status, v) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{williams}/transitions"),
        json!({"action": "record_no_show", "reason": "did not come; no answer by phone"}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, _) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{williams}/appointment"),
    )
    .await;
    assert_eq!(status, 404, "no booked appointment after a no-show");
    // Its time is free again: another case can book exactly that room and time.
    let stored = app
        .store
        .appointments(
            &irflow_domain::Actor::system("test"),
            &irflow_store::AppointmentFilter {
                include_cancelled: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let missed = stored
        .iter()
        .find(|l| l.appointment.case_id.get() == williams)
        .unwrap();
    assert_eq!(missed.appointment.state(), "no_show");
    let (status, _) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{williams}/transitions"),
        json!({"action": "rebook"}),
    )
    .await;
    assert_eq!(status, 200);
    let (_, case) = get(&app, &sched, &format!("/api/v1/cases/{williams}")).await;
    assert_eq!(case["state"], "ready");
    app.stop().await;
}

/// Booked times keep their wall-clock hour across the spring and autumn changes, and
/// every time the API shows carries the offset of its own date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daylight_saving_changes_keep_clinic_hours_at_the_api() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let cohen = app.case_of("Cohen").await;
    let year = common::dst_year();
    let (spring, fall) = (common::spring_forward(year), common::fall_back(year));
    let day = common::days_from;
    for (from, expected) in [
        // Friday before the spring change
        (
            day(spring, -2),
            format!("{}T08:00:00-05:00", day(spring, -2)),
        ),
        // the weekend of the change -> Monday, EDT
        (
            day(spring, -1),
            format!("{}T08:00:00-04:00", day(spring, 1)),
        ),
        // Friday before the autumn change
        (day(fall, -2), format!("{}T08:00:00-04:00", day(fall, -2))),
        // -> Monday, EST
        (day(fall, -1), format!("{}T08:00:00-05:00", day(fall, 1))),
    ] {
        let (status, v) = get(
            &app,
            &sched,
            &format!("/api/v1/cases/{cohen}/slots?limit=1&from={from}"),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(
            v["slots"][0]["start"],
            expected.as_str(),
            "from {from}: {v}"
        );
    }
    // Book the Monday after the spring change; arrival is 15 minutes earlier, same zone.
    let (_, v) = get(
        &app,
        &sched,
        &format!(
            "/api/v1/cases/{cohen}/slots?limit=1&from={}",
            day(spring, -1)
        ),
    )
    .await;
    let (status, a) = send(
        &app,
        reqwest::Method::POST,
        &sched,
        &format!("/api/v1/cases/{cohen}/appointment"),
        book_body(&v["slots"][0]),
    )
    .await;
    assert_eq!(status, 201, "{a}");
    let monday = day(spring, 1);
    assert_eq!(a["start"], format!("{monday}T08:00:00-04:00"));
    assert_eq!(a["arrive_by"], format!("{monday}T07:45:00-04:00"));
    // Move it across the autumn change: still 08:00 local, now at -05:00.
    let (_, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=1&from={}", day(fall, -1)),
    )
    .await;
    let target = v["slots"][0].clone();
    let (status, m) = send(
        &app,
        reqwest::Method::PUT,
        &sched,
        &format!("/api/v1/cases/{cohen}/appointment"),
        json!({"start": target["start"], "room": target["room"]["id"], "radiologist": target["radiologist"]["id"], "reason": "patient away in spring"}),
    )
    .await;
    assert_eq!(status, 200, "{m}");
    let monday = day(fall, 1);
    assert_eq!(m["start"], format!("{monday}T08:00:00-05:00"));
    assert_eq!(m["end"], format!("{monday}T08:20:00-05:00"));
    assert_eq!(m["arrive_by"], format!("{monday}T07:45:00-05:00"));
    // The same instant written in UTC is the same booking (idempotent by instant).
    let (_, again) = get(&app, &sched, &format!("/api/v1/cases/{cohen}/appointment")).await;
    let utc: jiff::Timestamp = again["start"].as_str().unwrap().parse().unwrap();
    assert_eq!(utc.to_string(), format!("{monday}T13:00:00Z"));
    app.stop().await;
}

/// The demo's list for today (run by `irflow demo`): on a weekday five patients whose
/// attendance matches the clock — checked in once their arrival time has passed, one
/// no-show half an hour after their start — and nobody double booked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_has_a_working_day_today() {
    let app = App::start().await;
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    irflow::demo::seed_todays_list(&app.store, &tz, app.today)
        .await
        .expect("today's list");
    let nurse = app.token_for("nurse").await;
    let now = jiff::Timestamp::now();
    let today = now.to_zoned_datetime(tz.clone()).date();
    let (status, v) = get(&app, &nurse, &format!("/api/v1/appointments?from={today}")).await;
    assert_eq!(status, 200, "{v}");
    let list = v["appointments"].as_array().unwrap();
    if matches!(
        today.weekday(),
        jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
    ) {
        assert!(list.is_empty(), "closed at weekends: {v}");
        app.stop().await;
        return;
    }
    assert_eq!(list.len(), 5, "{v}");
    for a in list {
        let start: jiff::Timestamp = a["start"].as_str().unwrap().parse().unwrap();
        assert_eq!(start.to_zoned_datetime(tz.clone()).date(), today);
        let family = a["patient"]["family_name"].as_str().unwrap();
        let expected = if family == "Adeyemi" {
            if start + jiff::SignedDuration::from_mins(30) < now {
                "no_show"
            } else {
                "booked"
            }
        } else if start - jiff::SignedDuration::from_mins(18) <= now {
            // Checked in just before the arrive-by time (and perhaps further along the
            // day since: the appointment stays "arrived").
            "arrived"
        } else {
            "booked"
        };
        assert_eq!(a["state"], expected, "{family}: {a}");
        if family == "Rossi" {
            assert!(!a["recovery_chair"].is_null(), "Rossi has no escort: {a}");
        }
    }
    app.stop().await;
}

/// A slot search's first read (one statement: the case, its latest screening with
/// every action, its booking, the department's version and the first step's
/// bookings) says what the separate reads say, for every demo case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_searchs_first_read_matches_the_separate_reads() {
    let app = App::start().await;
    let store = &app.store;
    let scheduler = store.user_by_username("scheduler").await.unwrap().actor();
    let nurse = app.token_for("nurse").await;
    let (_, v) = get(&app, &nurse, "/api/v1/cases?limit=100").await;
    let ids: Vec<i64> = v["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_i64().unwrap())
        .collect();
    assert!(ids.len() > 5, "{v}");
    let dept = store.department().await.unwrap().expect("a department");
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let monday = jiff::Timestamp::now()
        .to_zoned_datetime(tz)
        .date()
        .nth_weekday(1, jiff::civil::Weekday::Monday)
        .unwrap();
    let (mut most_actions, mut booked) = (0, 0);
    for id in ids {
        let case = irflow_domain::CaseId::new(id);
        let start = store
            .search_start_then(&scheduler, case, (monday, 60), |s| async move {
                Ok::<_, irflow_store::StoreError>(s)
            })
            .await
            .unwrap()
            .unwrap();
        let screening = store.latest_screening(&scheduler, case).await.unwrap();
        assert_eq!(
            start.context.screening.as_ref().map(|s| (s.id, &s.actions)),
            screening.as_ref().map(|s| (s.id, &s.actions)),
            "case {id}"
        );
        most_actions = most_actions.max(screening.map_or(0, |s| s.actions.len()));
        let appointment = store.appointment_for_case(&scheduler, case).await.unwrap();
        assert_eq!(
            start.context.appointment.as_ref().map(|a| (a.id, a.start)),
            appointment.as_ref().map(|a| (a.id, a.start)),
            "case {id}"
        );
        booked += usize::from(appointment.is_some());
        assert_eq!(start.context.case.id.get(), id);
        let d = start.department.expect("the department");
        assert!(
            std::sync::Arc::ptr_eq(&d, &dept),
            "the copy in memory, unchanged"
        );
        assert!(
            start.ahead.is_some(),
            "the first step's bookings, read with it"
        );
    }
    assert!(most_actions >= 2, "a case with several actions is compared");
    assert!(booked > 0, "a booked case is compared");
    app.stop().await;
}

/// An `Idempotency-Key` names one booking: retries with it, even at the same moment,
/// get that booking back; the key cannot book anything else; a malformed key is 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_names_one_booking() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let cohen = app.case_of("Cohen").await;
    let (_, v) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{cohen}/slots?limit=2"),
    )
    .await;
    let body = book_body(&v["slots"][0]);
    let c = reqwest::Client::new();
    let attempt = || {
        c.post(app.at(&format!("/api/v1/cases/{cohen}/appointment")))
            .bearer_auth(&sched)
            .header("idempotency-key", "call-2026-cohen")
            .json(&body)
            .send()
    };
    let (a, b, c2, d) = tokio::join!(attempt(), attempt(), attempt(), attempt());
    let mut ids = Vec::new();
    for r in [a, b, c2, d] {
        let r = r.unwrap();
        let status = r.status().as_u16();
        let a: Value = r.json().await.unwrap();
        assert_eq!(status, 201, "every retry gets the booking: {a}");
        ids.push(a["id"].as_i64().unwrap());
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "one booking: {ids:?}");
    // The same key for another case's booking is refused, and books nothing.
    let rahman = screen_ready(&app, "Rahman").await;
    let (_, other) = get(
        &app,
        &sched,
        &format!("/api/v1/cases/{rahman}/slots?limit=1"),
    )
    .await;
    let r = c
        .post(app.at(&format!("/api/v1/cases/{rahman}/appointment")))
        .bearer_auth(&sched)
        .header("idempotency-key", "call-2026-cohen")
        .json(&book_body(&other["slots"][0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Idempotency-Key was already used"),
        "{v}"
    );
    let (status, _) = get(&app, &sched, &format!("/api/v1/cases/{rahman}/appointment")).await;
    assert_eq!(status, 404);
    let r = c
        .post(app.at(&format!("/api/v1/cases/{rahman}/appointment")))
        .bearer_auth(&sched)
        .header("idempotency-key", "x".repeat(201))
        .json(&book_body(&other["slots"][0]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    app.stop().await;
}
