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
    assert!(start > jiff::Timestamp::now(), "never in the past");
    let arrive: jiff::Timestamp = first["arrive_by"].as_str().unwrap().parse().unwrap();
    assert_eq!(start - arrive, jiff::SignedDuration::from_mins(15));
    assert_eq!(
        first["room"]["modality"], "fluoroscopy",
        "64483 under fluoroscopy or CT; rooms listed first are fluoroscopy"
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
        statuses.iter().any(|s| *s == 409 || *s == 422),
        "{statuses:?}"
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
    assert!(status == 409 || status == 200, "{v}");
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
