//! FHIR R4 scheduling over HTTP: Appointments booked through the scheduling API found
//! by patient, date, actor and status; referrers confined to their own; Slots that
//! show booked, closed and free time at the right wall-clock times across
//! daylight-saving changes; Schedules and room Locations; precise 400s.
//! (`.ci/validate_fhir.py` validates the same resources with Python fhir.resources.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::App;
use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

const NY: &str = "America/New_York";

async fn fhir(app: &App, token: Option<&str>, path: &str) -> (u16, Value) {
    let mut req = reqwest::Client::new().get(app.at(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json"),
        "FHIR media type on GET {path}"
    );
    (status, r.json().await.unwrap())
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
        "DELETE" => c.delete(app.at(path)),
        _ => c.get(app.at(path)),
    };
    req = req.bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

fn resources(bundle: &Value) -> Vec<Value> {
    assert_eq!(bundle["resourceType"], "Bundle", "{bundle}");
    assert_eq!(bundle["type"], "searchset");
    bundle["entry"]
        .as_array()
        .map(|e| e.iter().map(|x| x["resource"].clone()).collect())
        .unwrap_or_default()
}

fn next_day(date: &str) -> String {
    let d: Date = date.parse().unwrap();
    d.tomorrow().unwrap().to_string()
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

/// "2026-12-07T08:00:00-05:00" for a local date and time at the site.
fn local(date: Date, hour: i8, minute: i8) -> String {
    date.to_datetime(jiff::civil::time(hour, minute, 0, 0))
        .to_zoned_datetime(jiff::tz::TimeZone::get(NY).unwrap())
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// (start, end, status) of each slot.
fn spans(slots: &[Value]) -> Vec<(String, String, String)> {
    slots
        .iter()
        .map(|s| {
            (
                s["start"].as_str().unwrap().to_owned(),
                s["end"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The Schedule id of the room with this name (`room-N`).
async fn room_schedule(app: &App, token: &str, name: &str) -> String {
    let (status, bundle) = fhir(app, Some(token), "/fhir/r4/Schedule?_count=100").await;
    assert_eq!(status, 200, "{bundle}");
    resources(&bundle)
        .into_iter()
        .find(|s| s["actor"][0]["display"] == name)
        .unwrap_or_else(|| panic!("a schedule for {name}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn booked_appointments_are_found_and_cancelled_ones_filtered_by_status() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let referrer = app.token_for("referrer").await;
    let other = app.token_for("referrer2").await;

    // David Cohen (referred by "referrer") is ready: book his first option.
    let cohen = app.case_of("Cohen").await;
    let (status, v) = api(
        &app,
        &sched,
        "GET",
        &format!("/api/v1/cases/{cohen}/slots?limit=1"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let option = v["slots"][0].clone();
    let (status, booked) = api(
        &app,
        &sched,
        "POST",
        &format!("/api/v1/cases/{cohen}/appointment"),
        Some(json!({"start": option["start"], "room": option["room"]["id"], "radiologist": option["radiologist"]["id"]})),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    let appt_id = booked["id"].as_i64().unwrap();
    let start = booked["start"].as_str().unwrap().to_owned();
    let end = booked["end"].as_str().unwrap().to_owned();
    let room = booked["room"]["id"].as_i64().unwrap();
    let rad = booked["radiologist"]["id"].as_i64().unwrap();
    let (_, case) = api(&app, &sched, "GET", &format!("/api/v1/cases/{cohen}"), None).await;
    let patient = case["patient"]["id"].as_i64().unwrap();
    let day = start[..10].to_owned();

    // Found by patient and date, with the booking's times and participants.
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/Appointment?patient=Patient/{patient}&date=ge{day}&date=lt{}",
            next_day(&day)
        ),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["total"], 1, "{bundle}");
    let found = resources(&bundle).remove(0);
    assert_eq!(found["resourceType"], "Appointment");
    let appt_key = appt_id.to_string();
    assert_eq!(found["id"], appt_key.as_str());
    assert_eq!(found["status"], "booked");
    assert_eq!(found["start"], start.as_str());
    assert_eq!(found["end"], end.as_str());
    let minutes = (ts(&end) - ts(&start)).as_mins();
    assert_eq!(found["minutesDuration"], minutes);
    assert_eq!(
        found["basedOn"][0]["reference"],
        format!("ServiceRequest/{cohen}")
    );
    assert_eq!(
        found["serviceType"][0]["coding"][0]["code"],
        case["procedure"]["code"]
    );
    let actors: Vec<(String, String)> = found["participant"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            assert_eq!(p["required"], "required");
            assert_eq!(p["status"], "accepted");
            (
                p["actor"]["reference"].as_str().unwrap().to_owned(),
                p["actor"]["display"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actors,
        [
            (format!("Patient/{patient}"), "Cohen, David".to_owned()),
            (
                format!("Practitioner/{rad}"),
                booked["radiologist"]["name"].as_str().unwrap().to_owned()
            ),
            (
                format!("Location/room-{room}"),
                booked["room"]["name"].as_str().unwrap().to_owned()
            ),
        ]
    );
    // Arrival is 15 minutes before the start, in the extension and the instructions.
    let arrive = (ts(&start) - SignedDuration::from_mins(15))
        .to_zoned_datetime(jiff::tz::TimeZone::get(NY).unwrap());
    assert_eq!(
        found["extension"][0]["url"],
        "urn:irflow:fhir:StructureDefinition:arrive-by"
    );
    assert_eq!(found["extension"][0]["valueDateTime"], booked["arrive_by"]);
    let instruction = found["patientInstruction"].as_str().unwrap();
    assert!(
        instruction.contains(&arrive.strftime("%-I:%M %p").to_string()),
        "{instruction}"
    );
    assert!(
        found.get("extension").unwrap().as_array().unwrap().len() == 1,
        "Cohen drives home with someone: no chair"
    );

    // Read by id: the same resource.
    let (status, read) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Appointment/{appt_id}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read, found);
    // By actor: the room, the radiologist; not before its day.
    for actor in [
        format!("Location/room-{room}"),
        format!("Practitioner/{rad}"),
    ] {
        let (status, bundle) = fhir(
            &app,
            Some(&sched),
            &format!("/fhir/r4/Appointment?actor={actor}&date={day}&_count=100"),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            resources(&bundle)
                .iter()
                .any(|a| a["id"].as_str() == Some(appt_key.as_str())),
            "{actor}: {bundle}"
        );
    }
    let (_, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Appointment?patient={patient}&date=lt{day}"),
    )
    .await;
    assert_eq!(bundle["total"], 0, "{bundle}");

    // The referrer of the case reads it; another referrer cannot see it at all.
    let (status, _) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Appointment/{appt_id}"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, outcome) = fhir(
        &app,
        Some(&other),
        &format!("/fhir/r4/Appointment/{appt_id}"),
    )
    .await;
    assert_eq!(status, 404, "{outcome}");
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    assert_eq!(outcome["issue"][0]["code"], "not-found");
    let (status, bundle) = fhir(
        &app,
        Some(&other),
        &format!("/fhir/r4/Appointment?patient=Patient/{patient}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 0, "{bundle}");
    let (status, bundle) = fhir(&app, Some(&other), "/fhir/r4/Appointment?_count=100").await;
    assert_eq!(status, 200);
    assert!(
        resources(&bundle)
            .iter()
            .all(|a| a["participant"][0]["actor"]["display"] != "Cohen, David")
    );

    // Participants resolve: the room's Location, the radiologist's Practitioner.
    let (status, location) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Location/room-{room}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(location["name"], booked["room"]["name"]);
    assert_eq!(location["status"], "active");
    let (status, _) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Practitioner/{rad}"),
    )
    .await;
    assert_eq!(status, 200);

    // The room's day: the booking (with the 10-minute turnaround) is busy, and the
    // slots tile the opening hours without gaps.
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/Slot?schedule=Schedule/room-{room}&start=ge{day}&start=lt{}",
            next_day(&day)
        ),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let slots = resources(&bundle);
    let busy_id = format!("room-{room}-{}-busy", ts(&start).as_second());
    let busy = slots
        .iter()
        .find(|s| s["id"] == busy_id.as_str())
        .unwrap_or_else(|| panic!("{busy_id} in {bundle}"));
    assert_eq!(busy["status"], "busy");
    assert_eq!(busy["start"], start.as_str());
    assert_eq!(
        ts(busy["end"].as_str().unwrap()),
        ts(&end) + SignedDuration::from_mins(10)
    );
    let date: Date = day.parse().unwrap();
    let list = spans(&slots);
    assert_eq!(list[0].0, local(date, 8, 0), "{list:?}");
    for pair in list.windows(2) {
        assert_eq!(pair[0].1, pair[1].0, "slots abut: {list:?}");
    }
    assert!(
        list.iter().all(|(_, _, s)| s == "free" || s == "busy"),
        "{list:?}"
    );
    assert!(
        list.iter()
            .filter(|(_, _, s)| s == "free")
            .all(|(a, b, _)| ts(b) <= ts(&start) || ts(a) >= ts(busy["end"].as_str().unwrap())),
        "no free slot overlaps the booking: {list:?}"
    );
    // The appointment's slot references resolve.
    assert_eq!(found["slot"][0]["reference"], format!("Slot/{busy_id}"));
    let (status, slot) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/{}",
            found["slot"][0]["reference"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200, "{slot}");
    assert_eq!(slot["status"], "busy");
    let (status, slot) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/{}",
            found["slot"][1]["reference"].as_str().unwrap()
        ),
    )
    .await;
    assert_eq!(status, 200, "{slot}");
    assert_eq!(
        slot["schedule"]["reference"],
        format!("Schedule/radiologist-{rad}")
    );
    assert_eq!(slot["end"], end.as_str(), "radiologists have no turnaround");

    // Cancel it: the appointment stays, cancelled; status filters tell them apart.
    let (status, v) = api(
        &app,
        &sched,
        "DELETE",
        &format!("/api/v1/cases/{cohen}/appointment"),
        Some(json!({"reason": "patient asked for another day"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, read) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Appointment/{appt_id}"),
    )
    .await;
    assert_eq!(read["status"], "cancelled");
    assert!(
        read.get("slot").is_none(),
        "a cancelled appointment holds no slot"
    );
    let count = |status: &'static str| {
        let app = &app;
        let sched = &sched;
        async move {
            let (code, bundle) = fhir(
                app,
                Some(sched),
                &format!("/fhir/r4/Appointment?patient=Patient/{patient}{status}"),
            )
            .await;
            assert_eq!(code, 200, "{bundle}");
            bundle["total"].as_u64().unwrap()
        }
    };
    assert_eq!(count("&status=booked").await, 0);
    assert_eq!(count("&status=cancelled").await, 1);
    assert_eq!(count("&status=booked,cancelled").await, 1);
    assert_eq!(count("").await, 1, "no status: all");
    // Its busy slot is gone, and the time is free again.
    let (status, _) = fhir(&app, Some(&sched), &format!("/fhir/r4/Slot/{busy_id}")).await;
    assert_eq!(status, 404);
    let (_, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot?schedule=room-{room}&start={day}&status=free"),
    )
    .await;
    let free = spans(&resources(&bundle));
    assert!(free.iter().all(|(_, _, s)| s == "free"));
    assert!(
        free.iter()
            .any(|(a, b, _)| ts(a) <= ts(&start) && ts(&end) <= ts(b)),
        "{free:?}"
    );

    // A patient who drives home gets a recovery chair: in an extension and the comment.
    let nurse = app.token_for("nurse").await;
    let rahman = app.case_of("Rahman").await;
    let (status, v) = api(
        &app,
        &nurse,
        "POST",
        &format!("/api/v1/cases/{rahman}/screening"),
        Some(json!({"escort_available": false})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (_, v) = api(
        &app,
        &sched,
        "GET",
        &format!("/api/v1/cases/{rahman}/slots?limit=1"),
        None,
    )
    .await;
    let option = v["slots"][0].clone();
    let (status, booked) = api(
        &app,
        &sched,
        "POST",
        &format!("/api/v1/cases/{rahman}/appointment"),
        Some(json!({"start": option["start"], "room": option["room"]["id"], "radiologist": option["radiologist"]["id"]})),
    )
    .await;
    assert_eq!(status, 201, "{booked}");
    assert!(booked["recovery_chair"].is_object(), "{booked}");
    let (status, read) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Appointment/{}", booked["id"]),
    )
    .await;
    assert_eq!(status, 200);
    let chair = &read["extension"][1];
    assert_eq!(
        chair["url"],
        "urn:irflow:fhir:StructureDefinition:recovery-chair"
    );
    assert_eq!(chair["extension"][0]["url"], "chair");
    assert_eq!(
        chair["extension"][0]["valueString"],
        option["recovery_chair"]["name"]
    );
    assert_eq!(
        chair["extension"][1]["valuePeriod"]["start"],
        booked["recovery_chair"]["start"]
    );
    assert_eq!(
        chair["extension"][1]["valuePeriod"]["end"],
        booked["recovery_chair"]["end"]
    );
    assert!(
        read["comment"]
            .as_str()
            .unwrap()
            .contains(option["recovery_chair"]["name"].as_str().unwrap()),
        "{read}"
    );

    // The demo's other appointments: Brown checked in (arrived), and a no-show.
    let brown = app.case_of("Brown").await;
    let (_, case) = api(&app, &sched, "GET", &format!("/api/v1/cases/{brown}"), None).await;
    let brown_patient = case["patient"]["id"].as_i64().unwrap();
    let (_, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Appointment?patient={brown_patient}&status=arrived"),
    )
    .await;
    assert_eq!(bundle["total"], 1, "{bundle}");
    assert_eq!(resources(&bundle)[0]["status"], "arrived");
    let santos = app.case_of("Santos").await;
    let (status, v) = api(
        &app,
        &sched,
        "POST",
        &format!("/api/v1/cases/{santos}/transitions"),
        Some(json!({"action": "record_no_show", "reason": "did not come"})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let santos_patient = v["patient"]["id"].as_i64().unwrap();
    let (_, bundle) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Appointment?patient={santos_patient}&status=noshow"),
    )
    .await;
    assert_eq!(bundle["total"], 1, "{bundle}");
    // A no-show releases its time: its busy slot is gone.
    let noshow = resources(&bundle).remove(0);
    assert_eq!(noshow["status"], "noshow");
    assert!(noshow.get("slot").is_none());
    let room_ref = noshow["participant"][2]["actor"]["reference"]
        .as_str()
        .unwrap();
    let gone = format!(
        "/fhir/r4/Slot/{}-{}-busy",
        room_ref.trim_start_matches("Location/"),
        ts(noshow["start"].as_str().unwrap()).as_second()
    );
    let (status, _) = fhir(&app, Some(&sched), &gone).await;
    assert_eq!(status, 404, "{gone}");
    let (_, bundle) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Appointment?patient={santos_patient}&status=booked,arrived"),
    )
    .await;
    assert_eq!(bundle["total"], 0, "{bundle}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_show_closures_and_keep_the_wall_clock_across_dst() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let fluoro2 = room_schedule(&app, &sched, "Fluoro 2").await;
    let room: i64 = fluoro2.trim_start_matches("room-").parse().unwrap();

    // A closure three weeks ahead, on a Wednesday, 12:00-13:00 local.
    let tz = jiff::tz::TimeZone::get(NY).unwrap();
    let mut date =
        Timestamp::now().to_zoned_datetime(tz.clone()).date() + jiff::Span::new().days(21);
    while date.weekday() != jiff::civil::Weekday::Wednesday {
        date = date.tomorrow().unwrap();
    }
    let at = |h, m| ts(&local(date, h, m));
    let admin = app.store.user_by_username("admin").await.unwrap();
    app.store
        .add_closure(
            &irflow_domain::Actor::user(admin.id, "admin", irflow_domain::Role::Admin),
            &irflow_store::NewClosure {
                kind: irflow_store::ResourceKind::Room,
                resource_id: room,
                start: at(12, 0),
                end: at(13, 0),
                reason: "service".to_owned(),
            },
            false,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot?schedule=Schedule/{fluoro2}&start={date}"),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let slots = resources(&bundle);
    assert_eq!(
        spans(&slots),
        [
            (local(date, 8, 0), local(date, 12, 0), "free".to_owned()),
            (
                local(date, 12, 0),
                local(date, 13, 0),
                "busy-unavailable".to_owned()
            ),
            (local(date, 13, 0), local(date, 16, 0), "free".to_owned()),
        ]
    );
    assert_eq!(
        slots[1]["id"],
        format!("{fluoro2}-{}-busy-unavailable", at(12, 0).as_second())
    );
    assert_eq!(
        slots[0]["schedule"]["reference"],
        format!("Schedule/{fluoro2}")
    );
    let (status, read) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot/{}", slots[1]["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(read, slots[1]);
    let (_, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot?schedule=Schedule/{fluoro2}&start=ge{date}&start=lt{}&status=busy-unavailable", next_day(&date.to_string())),
    )
    .await;
    assert_eq!(bundle["total"], 1, "{bundle}");
    // A slot id that never existed (or a wrong status for that time) is not found.
    let (status, _) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot/{fluoro2}-{}-free", at(12, 0).as_second()),
    )
    .await;
    assert_eq!(status, 404);

    // Spring forward (a Sunday in March): Friday opens at 08:00 EST, Monday at 08:00 EDT.
    let spring = common::spring_forward(common::dst_year());
    let day = common::days_from;
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/Slot?schedule={fluoro2}&start=ge{}&start=lt{}",
            day(spring, -2),
            day(spring, 2)
        ),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let (friday, monday) = (day(spring, -2), day(spring, 1));
    assert_eq!(
        spans(&resources(&bundle)),
        [
            (
                format!("{friday}T08:00:00-05:00"),
                format!("{friday}T16:00:00-05:00"),
                "free".to_owned()
            ),
            (
                format!("{monday}T08:00:00-04:00"),
                format!("{monday}T16:00:00-04:00"),
                "free".to_owned()
            ),
        ]
    );
    // Fall back (Sunday 2026-11-01): Friday 08:00 EDT, Monday 08:00 EST, whatever was booked then.
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot?schedule={fluoro2}&start=ge2026-10-30&start=lt2026-11-03"),
    )
    .await;
    assert_eq!(status, 200, "{bundle}");
    let list = spans(&resources(&bundle));
    for (day, first, last) in [
        (
            "2026-10-30",
            "2026-10-30T08:00:00-04:00",
            "2026-10-30T16:00:00-04:00",
        ),
        (
            "2026-11-02",
            "2026-11-02T08:00:00-05:00",
            "2026-11-02T16:00:00-05:00",
        ),
    ] {
        let of_day: Vec<_> = list.iter().filter(|(a, _, _)| a.starts_with(day)).collect();
        assert_eq!(of_day.first().unwrap().0, first, "{list:?}");
        assert_eq!(
            of_day.iter().map(|(_, b, _)| ts(b)).max().unwrap(),
            ts(last),
            "{list:?}"
        );
    }
    assert!(
        list.iter()
            .all(|(a, _, _)| a.starts_with("2026-10-30") || a.starts_with("2026-11-02")),
        "nothing at the weekend: {list:?}"
    );

    // A radiologist's schedule: their own days.
    let rad2 = app
        .store
        .user_by_username("radiologist2")
        .await
        .unwrap()
        .id
        .get();
    let (status, schedule) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Schedule/radiologist-{rad2}"),
    )
    .await;
    assert_eq!(status, 200, "{schedule}");
    assert_eq!(
        schedule["actor"][0]["reference"],
        format!("Practitioner/{rad2}")
    );
    assert_eq!(
        schedule["comment"],
        "Weekly hours in local time (America/New_York): Mon 08:00-16:00; Wed 08:00-16:00; Fri 08:00-16:00."
    );
    let (_, bundle) = fhir(
        &app,
        Some(&sched),
        &format!(
            "/fhir/r4/Slot?schedule=Schedule/radiologist-{rad2}&start=ge{monday}&start=lt{}",
            day(spring, 3)
        ),
    )
    .await;
    assert_eq!(
        spans(&resources(&bundle)),
        [(
            format!("{monday}T08:00:00-04:00"),
            format!("{monday}T16:00:00-04:00"),
            "free".to_owned()
        )],
        "Monday only; Tuesday is not one of their days"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_locations_and_precise_refusals() {
    let app = App::start().await;
    let sched = app.token_for("scheduler").await;
    let referrer = app.token_for("referrer").await;

    // Three rooms and three credentialed radiologists.
    let (status, bundle) = fhir(&app, Some(&referrer), "/fhir/r4/Schedule").await;
    assert_eq!(status, 200, "{bundle}");
    assert_eq!(bundle["total"], 6, "{bundle}");
    let fluoro1 = room_schedule(&app, &sched, "Fluoro 1").await;
    let (status, schedule) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Schedule/{fluoro1}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        schedule["actor"][0]["reference"],
        format!("Location/{fluoro1}")
    );
    assert_eq!(schedule["specialty"][0]["coding"][0]["code"], "408455009");
    assert!(
        schedule["comment"]
            .as_str()
            .unwrap()
            .contains("Mon 08:00-16:00; Tue 08:00-16:00"),
        "{schedule}"
    );
    let today = Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get(NY).unwrap())
        .date();
    assert_eq!(schedule["planningHorizon"]["start"], local(today, 0, 0));
    let (_, bundle) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Schedule?actor=Location/{fluoro1}"),
    )
    .await;
    assert_eq!(bundle["total"], 1);
    let (_, bundle) = fhir(&app, Some(&referrer), "/fhir/r4/Schedule?_count=2").await;
    assert_eq!(resources(&bundle).len(), 2);
    assert!(
        bundle["link"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["relation"] == "next")
    );

    let (status, location) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Location/{fluoro1}"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(location["resourceType"], "Location");
    assert_eq!(location["name"], "Fluoro 1");
    assert_eq!(
        location["description"],
        "Fluoroscopy procedure room, Main Campus IR"
    );
    for missing in [
        "/fhir/r4/Location/room-999",
        "/fhir/r4/Location/1",
        "/fhir/r4/Schedule/room-999",
        "/fhir/r4/Schedule/nurse-1",
        "/fhir/r4/Appointment/999999",
        "/fhir/r4/Appointment/abc",
        "/fhir/r4/Slot/room-1-0-free",
        "/fhir/r4/Slot/nonsense",
    ] {
        let (status, outcome) = fhir(&app, Some(&sched), missing).await;
        assert_eq!(status, 404, "{missing}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
    }

    // Bad search parameters: 400 with a message and where.
    for (bad, says) in [
        ("Slot", "schedule: required"),
        ("Slot?schedule=Schedule/room-x", "schedule: expected"),
        (
            "Slot?schedule=Schedule/room-1&start=ge2026-13-01",
            "start: \"ge2026-13-01\"",
        ),
        (
            "Slot?schedule=Schedule/room-1&start=ge2026-12-01&start=lt2027-02-01",
            "at most 31 days",
        ),
        ("Slot?schedule=Schedule/room-1&start=sa2026-12-01", "prefix"),
        (
            "Slot?schedule=Schedule/room-1&status=open",
            "status: \"open\"",
        ),
        (
            "Slot?schedule=Schedule/room-1&_count=5",
            "_count: this search parameter is not supported",
        ),
        ("Appointment?date=tomorrow", "date: \"tomorrow\""),
        ("Appointment?status=done", "status: \"done\""),
        ("Appointment?patient=Patient/x", "patient: expected"),
        ("Appointment?actor=Device/1", "actor: expected"),
        ("Appointment?patient=1&actor=Patient/2", "different patient"),
        ("Appointment?_count=0", "_count"),
        (
            "Appointment?identifier=1",
            "identifier: this search parameter is not supported",
        ),
        ("Schedule?actor=Patient/1", "actor: expected"),
        (
            "Schedule?active=true",
            "active: this search parameter is not supported",
        ),
    ] {
        let (status, outcome) = fhir(&app, Some(&sched), &format!("/fhir/r4/{bad}")).await;
        assert_eq!(status, 400, "{bad}: {outcome}");
        assert_eq!(outcome["resourceType"], "OperationOutcome");
        assert_eq!(outcome["issue"][0]["code"], "invalid");
        let diagnostics = outcome["issue"][0]["diagnostics"].as_str().unwrap();
        assert!(diagnostics.contains(says), "{bad}: {diagnostics}");
        let resource = bad.split('?').next().unwrap();
        assert!(
            outcome["issue"][0]["expression"][0]
                .as_str()
                .unwrap()
                .starts_with(&format!("{resource}?")),
            "{outcome}"
        );
    }
    // Free and busy time is for staff; no token is 401.
    let (status, outcome) = fhir(
        &app,
        Some(&referrer),
        &format!("/fhir/r4/Slot?schedule=Schedule/{fluoro1}"),
    )
    .await;
    assert_eq!(status, 403, "{outcome}");
    assert_eq!(outcome["issue"][0]["code"], "forbidden");
    for path in [
        "/fhir/r4/Slot?schedule=Schedule/room-1",
        "/fhir/r4/Appointment",
        "/fhir/r4/Schedule",
        "/fhir/r4/Location/room-1",
    ] {
        let (status, outcome) = fhir(&app, None, path).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(outcome["issue"][0]["code"], "login");
    }
    // The default Slot range is today and the next six days.
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        &format!("/fhir/r4/Slot?schedule=Schedule/{fluoro1}"),
    )
    .await;
    assert_eq!(status, 200);
    let starts: Vec<Timestamp> = resources(&bundle)
        .iter()
        .map(|s| ts(s["start"].as_str().unwrap()))
        .collect();
    assert!(!starts.is_empty());
    let from = ts(&local(today, 0, 0));
    let to = ts(&local(today + jiff::Span::new().days(7), 0, 0));
    assert!(starts.iter().all(|s| from <= *s && *s < to), "{bundle}");
    // A range that selects nothing is an empty bundle, not an error.
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        "/fhir/r4/Appointment?date=ge2027-01-02&date=lt2027-01-01",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 0);
    let (status, bundle) = fhir(
        &app,
        Some(&sched),
        "/fhir/r4/Slot?schedule=Schedule/room-999",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(bundle["total"], 0);

    // The CapabilityStatement says so.
    let (_, cap) = fhir(&app, None, "/fhir/r4/metadata").await;
    let resources: Vec<&Value> = cap["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    for (kind, params) in [
        ("Appointment", vec!["patient", "date", "status", "actor"]),
        ("Slot", vec!["schedule", "start", "status"]),
        ("Schedule", vec!["actor"]),
        ("Location", vec![]),
    ] {
        let r = resources
            .iter()
            .find(|r| r["type"] == kind)
            .unwrap_or_else(|| panic!("{kind}"));
        assert!(
            r["interaction"]
                .as_array()
                .unwrap()
                .iter()
                .any(|i| i["code"] == "read")
        );
        for p in params {
            assert!(
                r["searchParam"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|s| s["name"] == p),
                "{kind} {p}"
            );
        }
    }
    app.stop().await;
}
