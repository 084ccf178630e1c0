//! `irflow bench slots`: how fast the slot finder answers with a year of bookings.
//! Synthetic and in-process (no database): 8 rooms, 10 radiologists, 4 chairs,
//! weekday hours, about 50,000 appointments over a year; then many slot searches
//! for cases with random earliest safe dates. Prints p50/p99/max.

use std::time::Instant;

use anyhow::Result;
use irflow_domain::Modality;
use irflow_domain::scheduling::{
    BusyIndex, ChairInfo, Interval, RadiologistInfo, ResourceId, RoomInfo, SlotRequest,
    SlotResources, WeeklyWindow, find_slots,
};
use jiff::civil::{Weekday, time};
use jiff::{SignedDuration, Span};

/// Runs the benchmark and prints a report.
pub fn slots(appointments: usize, searches: usize) -> Result<()> {
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let weekdays = [
        Weekday::Monday,
        Weekday::Tuesday,
        Weekday::Wednesday,
        Weekday::Thursday,
        Weekday::Friday,
    ];
    let hours = |from: i8, to: i8| -> Vec<WeeklyWindow> {
        weekdays
            .iter()
            .map(|d| WeeklyWindow {
                weekday: *d,
                start: time(from, 0, 0, 0),
                end: time(to, 0, 0, 0),
            })
            .collect()
    };
    let codes = [
        "62321", "62323", "64479", "64483", "64490", "64493", "27096",
    ];
    let rooms: Vec<RoomInfo> = (1..=8)
        .map(|id| RoomInfo {
            id,
            modality: if id <= 6 {
                Modality::Fluoroscopy
            } else {
                Modality::Ct
            },
            turnaround_minutes: 10,
            windows: hours(8, 16),
        })
        .collect();
    let radiologists: Vec<RadiologistInfo> = (1..=10)
        .map(|id| RadiologistInfo {
            id: 100 + id,
            procedures: codes
                .iter()
                .enumerate()
                .filter(|(i, _)| !(i + id as usize).is_multiple_of(3))
                .map(|(_, c)| (*c).to_owned())
                .collect(),
            windows: hours(8, 16),
        })
        .collect();
    let chairs: Vec<ChairInfo> = (1..=4)
        .map(|id| ChairInfo {
            id: 1000 + id,
            windows: hours(8, 18),
        })
        .collect();
    let start_day = jiff::civil::date(2026, 1, 5);
    let mut busy = BusyIndex::new();
    // Fill a year of weekdays densely: each booking 20 minutes + 10 turnaround.
    let mut rng: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut placed = 0;
    let mut day = start_day;
    while placed < appointments {
        if weekdays.contains(&day.weekday()) {
            let open = day
                .to_datetime(time(8, 0, 0, 0))
                .to_zoned_datetime(tz.clone())?
                .timestamp();
            for slot in 0..24 {
                for room in &rooms {
                    if placed >= appointments || next() % 100 < 15 {
                        continue;
                    }
                    let start = open + SignedDuration::from_mins(slot * 20);
                    let rad = &radiologists[(next() % 10) as usize];
                    busy.add(
                        ResourceId::Room(room.id),
                        Interval {
                            start,
                            end: start + SignedDuration::from_mins(30),
                        },
                    );
                    busy.add(
                        ResourceId::Radiologist(rad.id),
                        Interval {
                            start,
                            end: start + SignedDuration::from_mins(20),
                        },
                    );
                    placed += 1;
                }
            }
        }
        day = day.checked_add(Span::new().days(1))?;
    }
    let res = SlotResources {
        tz: tz.clone(),
        rooms,
        radiologists,
        chairs,
        busy,
    };
    let mut times = Vec::with_capacity(searches);
    let mut found = 0usize;
    for i in 0..searches {
        let offset = i64::try_from(next() % 330)?;
        let from = start_day.checked_add(Span::new().days(offset))?;
        let req = SlotRequest {
            procedure: codes[i % codes.len()].to_owned(),
            modalities: vec![Modality::Fluoroscopy, Modality::Ct],
            duration_minutes: 20,
            not_before: from.to_zoned_datetime(tz.clone())?.timestamp(),
            from,
            days_ahead: 60,
            limit: 10,
            step_minutes: 10,
            monitoring_minutes: (i % 3 == 0).then_some(60),
            preferred_days: Vec::new(),
            preferred_time: None,
        };
        let t = Instant::now();
        let slots = find_slots(&res, &req);
        times.push(t.elapsed());
        found += slots.len();
    }
    times.sort();
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    println!(
        "slot finder, in-process: {placed} appointments over 8 rooms and 10 radiologists, {searches} searches (10 options each)"
    );
    println!(
        "  p50 {:?}  p99 {:?}  max {:?}  ({found} options found)",
        pct(0.50),
        pct(0.99),
        times[times.len() - 1]
    );
    Ok(())
}
