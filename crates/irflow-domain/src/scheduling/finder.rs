//! Finding bookable options for a case.

use jiff::civil::{Date, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};

use super::availability::{BusyIndex, Interval, WeeklyWindow};
use crate::catalogue::Modality;

/// A bookable resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceId {
    /// A procedure room.
    Room(i64),
    /// A radiologist (user id).
    Radiologist(i64),
    /// A recovery chair.
    Chair(i64),
}

/// A room and when it is open.
#[derive(Debug, Clone)]
pub struct RoomInfo {
    /// Id.
    pub id: i64,
    /// Guidance it offers.
    pub modality: Modality,
    /// Minutes to turn the room around after a procedure.
    pub turnaround_minutes: u32,
    /// Weekly opening.
    pub windows: Vec<WeeklyWindow>,
}

/// A radiologist, what they perform, and when they work.
#[derive(Debug, Clone)]
pub struct RadiologistInfo {
    /// User id.
    pub id: i64,
    /// CPT codes they are credentialed for.
    pub procedures: Vec<String>,
    /// Weekly sessions.
    pub windows: Vec<WeeklyWindow>,
}

/// A recovery chair and when it is staffed.
#[derive(Debug, Clone)]
pub struct ChairInfo {
    /// Id.
    pub id: i64,
    /// Weekly staffing.
    pub windows: Vec<WeeklyWindow>,
}

/// Everything the finder looks at for one site.
#[derive(Debug, Clone)]
pub struct SlotResources {
    /// The site's zone.
    pub tz: TimeZone,
    /// Rooms.
    pub rooms: Vec<RoomInfo>,
    /// Radiologists.
    pub radiologists: Vec<RadiologistInfo>,
    /// Recovery chairs.
    pub chairs: Vec<ChairInfo>,
    /// Bookings (rooms including their turnaround) and exceptions (closures, leave).
    pub busy: BusyIndex<ResourceId>,
    /// The exceptions alone (also in `busy`), so that a refusal can tell a room
    /// closed or a radiologist away from one already booked.
    pub closed: BusyIndex<ResourceId>,
}

impl SlotResources {
    /// Marks a resource closed (a room down, a radiologist away, a holiday) for an
    /// interval: busy for every search, and named as a closure in refusals.
    pub fn add_closure(&mut self, resource: ResourceId, interval: Interval) {
        self.busy.add_closure(resource, interval);
        self.closed.add_closure(resource, interval);
    }
}

/// Why one requested option cannot be booked, in words for the scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A room, radiologist or chair is already booked then: another option may work.
    Taken(String),
    /// A booking rule forbids it (safe time, guidance, credentials, hours, closures).
    Rule(String),
}

impl Refusal {
    /// The reason in words.
    pub fn message(&self) -> &str {
        match self {
            Refusal::Taken(m) | Refusal::Rule(m) => m,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

/// Morning or afternoon (the patient's preference).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeOfDay {
    /// Before noon.
    Morning,
    /// Noon or later.
    Afternoon,
}

impl TimeOfDay {
    /// The stable name: `morning` or `afternoon`.
    pub const fn as_str(self) -> &'static str {
        match self {
            TimeOfDay::Morning => "morning",
            TimeOfDay::Afternoon => "afternoon",
        }
    }
}

/// What to find.
#[derive(Debug, Clone)]
pub struct SlotRequest {
    /// CPT code (radiologists must be credentialed for it).
    pub procedure: String,
    /// Allowed guidance (the catalogue's, narrowed by the case's plan).
    pub modalities: Vec<Modality>,
    /// Procedure length.
    pub duration_minutes: u32,
    /// Never start before this (the screening's earliest safe instant, or now).
    pub not_before: Timestamp,
    /// First date to look at (local).
    pub from: Date,
    /// How many days to look ahead.
    pub days_ahead: u32,
    /// How many options at most.
    pub limit: usize,
    /// Start times on this grid from the window's opening, in minutes.
    pub step_minutes: u32,
    /// Monitoring after the procedure in a recovery chair (patients who drive).
    pub monitoring_minutes: Option<u32>,
    /// Preferred weekdays (empty: no preference).
    pub preferred_days: Vec<Weekday>,
    /// Preferred part of the day.
    pub preferred_time: Option<TimeOfDay>,
}

/// A recovery chair reserved after the procedure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChairOption {
    /// The chair.
    pub chair: i64,
    /// From (the procedure's end).
    pub start: Timestamp,
    /// Until.
    pub end: Timestamp,
}

/// One bookable option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotOption {
    /// Procedure start.
    pub start: Timestamp,
    /// Procedure end.
    pub end: Timestamp,
    /// Room.
    pub room: i64,
    /// Radiologist.
    pub radiologist: i64,
    /// Recovery chair, when monitoring is needed.
    pub chair: Option<ChairOption>,
}

fn windows_on(windows: &[WeeklyWindow], date: Date, tz: &TimeZone) -> Vec<Interval> {
    windows.iter().filter_map(|w| w.on(date, tz)).collect()
}

fn minutes(m: u32) -> SignedDuration {
    SignedDuration::from_mins(i64::from(m))
}

fn on_preferred_day(req: &SlotRequest, start: Timestamp, tz: &TimeZone) -> bool {
    req.preferred_days
        .contains(&start.to_zoned_datetime(tz.clone()).weekday())
}

fn preferred_time(req: &SlotRequest, start: Timestamp, tz: &TimeZone) -> bool {
    let hour = start.to_zoned_datetime(tz.clone()).hour();
    match req.preferred_time {
        None => true,
        Some(TimeOfDay::Morning) => hour < 12,
        Some(TimeOfDay::Afternoon) => hour >= 12,
    }
}

/// How many of the options should fall on the patient's preferred days when the
/// earliest ones do not: half of them (none when one option is asked for, or no
/// days are preferred), so the earliest times are never all crowded out.
fn preferred_day_quota(req: &SlotRequest) -> usize {
    if req.preferred_days.is_empty() {
        0
    } else {
        req.limit / 2
    }
}

/// Whether options found so far (in rank order) are all a search needs: `limit`
/// of them, with enough on the patient's preferred days (see [`find_slots`]).
pub fn search_is_complete(found: &[SlotOption], req: &SlotRequest, tz: &TimeZone) -> bool {
    let quota = preferred_day_quota(req);
    found.len() >= req.limit
        && (quota == 0
            || found
                .iter()
                .filter(|o| on_preferred_day(req, o.start, tz))
                .count()
                >= quota)
}

/// Finds up to `limit` options: each start time once (the first room and radiologist
/// free then), earliest date first and, within a day, the preferred part of the day
/// first. When the patient prefers some weekdays and the earliest options miss
/// them, the latest of those give way to the earliest options on preferred days
/// (up to half of `limit`), so the scheduler can offer both.
pub fn find_slots(res: &SlotResources, req: &SlotRequest) -> Vec<SlotOption> {
    if req.duration_minutes == 0 || req.step_minutes == 0 || req.limit == 0 {
        return Vec::new();
    }
    let tz = &res.tz;
    let duration = minutes(req.duration_minutes);
    let step = minutes(req.step_minutes);
    let first_day = req
        .from
        .max(req.not_before.to_zoned_datetime(tz.clone()).date());
    let rooms: Vec<&RoomInfo> = res
        .rooms
        .iter()
        .filter(|r| req.modalities.contains(&r.modality))
        .collect();
    let rads: Vec<&RadiologistInfo> = res
        .radiologists
        .iter()
        .filter(|r| r.procedures.contains(&req.procedure))
        .collect();
    let mut out: Vec<SlotOption> = Vec::new();
    for offset in 0..req.days_ahead {
        let Ok(date) = first_day.checked_add(Span::new().days(i64::from(offset))) else {
            break;
        };
        let mut day: Vec<SlotOption> = Vec::new();
        for room in &rooms {
            for room_window in windows_on(&room.windows, date, tz) {
                for rad in &rads {
                    for rad_window in windows_on(&rad.windows, date, tz) {
                        let open = Interval {
                            start: room_window.start.max(rad_window.start),
                            end: room_window.end.min(rad_window.end),
                        };
                        if open.start >= open.end {
                            continue;
                        }
                        // Candidate starts on the room window's grid.
                        let mut start = room_window.start;
                        while start < open.start.max(req.not_before) {
                            start += step;
                        }
                        while start + duration <= open.end {
                            let end = start + duration;
                            if day.iter().any(|o| o.start == start) {
                                start += step;
                                continue;
                            }
                            let room_busy = Interval {
                                start,
                                end: end + minutes(room.turnaround_minutes),
                            };
                            let proc = Interval { start, end };
                            if res.busy.is_free(&ResourceId::Room(room.id), &room_busy)
                                && res.busy.is_free(&ResourceId::Radiologist(rad.id), &proc)
                            {
                                let chair = match req.monitoring_minutes {
                                    None => Some(None),
                                    Some(m) => find_chair(res, date, end, minutes(m)).map(Some),
                                };
                                if let Some(chair) = chair {
                                    day.push(SlotOption {
                                        start,
                                        end,
                                        room: room.id,
                                        radiologist: rad.id,
                                        chair,
                                    });
                                }
                            }
                            start += step;
                        }
                    }
                }
            }
        }
        day.sort_by_key(|o| (!preferred_time(req, o.start, tz), o.start));
        out.extend(day);
        if search_is_complete(&out, req, tz) {
            break;
        }
    }
    select(out, req, tz)
}

/// The first `limit` of `ranked`, except that options on preferred days found
/// later replace the latest others until the quota is met. Rank order is kept:
/// everything taken from later comes after everything kept.
fn select(mut ranked: Vec<SlotOption>, req: &SlotRequest, tz: &TimeZone) -> Vec<SlotOption> {
    let later = ranked.split_off(ranked.len().min(req.limit));
    let mut chosen = ranked;
    let have = chosen
        .iter()
        .filter(|o| on_preferred_day(req, o.start, tz))
        .count();
    let wanted = preferred_day_quota(req).saturating_sub(have);
    let extra: Vec<SlotOption> = later
        .into_iter()
        .filter(|o| on_preferred_day(req, o.start, tz))
        .take(wanted)
        .collect();
    for _ in &extra {
        if let Some(i) = chosen
            .iter()
            .rposition(|o| !on_preferred_day(req, o.start, tz))
        {
            chosen.remove(i);
        }
    }
    chosen.extend(extra);
    chosen
}

/// Checks one requested option against every rule and returns it (with a chair
/// when monitoring is needed), or why not: the rule it breaks, or the resource
/// already booked then.
pub fn check_option(
    res: &SlotResources,
    req: &SlotRequest,
    start: Timestamp,
    room_id: i64,
    radiologist_id: i64,
) -> Result<SlotOption, Refusal> {
    let tz = &res.tz;
    let local = start.to_zoned_datetime(tz.clone());
    let rule = |m: &str| Refusal::Rule(m.to_owned());
    if start < req.not_before {
        return Err(Refusal::Rule(format!(
            "not before the earliest safe time from screening ({})",
            req.not_before
                .to_zoned_datetime(tz.clone())
                .strftime("%Y-%m-%d %H:%M %Z")
        )));
    }
    if local.minute() % 5 != 0 || local.second() != 0 || local.subsec_nanosecond() != 0 {
        return Err(rule("appointments start on a 5-minute boundary"));
    }
    let room = res
        .rooms
        .iter()
        .find(|r| r.id == room_id)
        .ok_or_else(|| Refusal::Rule(format!("room {room_id} is not a room of this site")))?;
    if !req.modalities.contains(&room.modality) {
        let wanted: Vec<&str> = req.modalities.iter().map(|m| m.label()).collect();
        return Err(Refusal::Rule(format!(
            "room {room_id} offers {} guidance; this case is to be done under {}",
            room.modality.label(),
            wanted.join(" or ")
        )));
    }
    let rad = res
        .radiologists
        .iter()
        .find(|r| r.id == radiologist_id)
        .ok_or_else(|| {
            Refusal::Rule(format!(
                "user {radiologist_id} is not a radiologist of this site"
            ))
        })?;
    if !rad.procedures.contains(&req.procedure) {
        return Err(Refusal::Rule(format!(
            "the radiologist is not credentialed for {}",
            req.procedure
        )));
    }
    let end = start + minutes(req.duration_minutes);
    let proc = Interval { start, end };
    let date = local.date();
    if !windows_on(&room.windows, date, tz)
        .iter()
        .any(|w| proc.within(w))
    {
        return Err(rule("the room is not open then"));
    }
    if !windows_on(&rad.windows, date, tz)
        .iter()
        .any(|w| proc.within(w))
    {
        return Err(rule("the radiologist is not working then"));
    }
    let room_busy = Interval {
        start,
        end: end + minutes(room.turnaround_minutes),
    };
    let room_id = ResourceId::Room(room.id);
    if !res.closed.is_free(&room_id, &room_busy) {
        return Err(rule("the room is closed then"));
    }
    if !res.busy.is_free(&room_id, &room_busy) {
        return Err(Refusal::Taken("the room is already booked then".to_owned()));
    }
    let rad_id = ResourceId::Radiologist(rad.id);
    if !res.closed.is_free(&rad_id, &proc) {
        return Err(rule("the radiologist is away then"));
    }
    if !res.busy.is_free(&rad_id, &proc) {
        return Err(Refusal::Taken(
            "the radiologist is already booked then".to_owned(),
        ));
    }
    let chair = match req.monitoring_minutes {
        None => None,
        Some(m) => Some(find_chair(res, date, end, minutes(m)).ok_or_else(|| {
            Refusal::Taken(
                "no recovery chair is free for the monitoring time after the procedure".to_owned(),
            )
        })?),
    };
    Ok(SlotOption {
        start,
        end,
        room: room.id,
        radiologist: rad.id,
        chair,
    })
}

fn find_chair(
    res: &SlotResources,
    date: Date,
    from: Timestamp,
    length: SignedDuration,
) -> Option<ChairOption> {
    let need = Interval {
        start: from,
        end: from + length,
    };
    res.chairs.iter().find_map(|c| {
        let staffed = windows_on(&c.windows, date, &res.tz)
            .iter()
            .any(|w| need.within(w));
        (staffed && res.busy.is_free(&ResourceId::Chair(c.id), &need)).then_some(ChairOption {
            chair: c.id,
            start: need.start,
            end: need.end,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};
    use proptest::prelude::*;

    fn weekdays(start: (i8, i8), end: (i8, i8)) -> Vec<WeeklyWindow> {
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
            Weekday::Saturday,
            Weekday::Sunday,
        ]
        .into_iter()
        .map(|weekday| WeeklyWindow {
            weekday,
            start: time(start.0, start.1, 0, 0),
            end: time(end.0, end.1, 0, 0),
        })
        .collect()
    }

    fn tz() -> TimeZone {
        TimeZone::get("America/New_York").expect("tzdb")
    }

    fn resources() -> SlotResources {
        SlotResources {
            tz: tz(),
            rooms: vec![
                RoomInfo {
                    id: 1,
                    modality: Modality::Fluoroscopy,
                    turnaround_minutes: 10,
                    windows: weekdays((8, 0), (16, 0)),
                },
                RoomInfo {
                    id: 2,
                    modality: Modality::Ct,
                    turnaround_minutes: 10,
                    windows: weekdays((8, 0), (16, 0)),
                },
            ],
            radiologists: vec![
                RadiologistInfo {
                    id: 10,
                    procedures: vec!["64483".into()],
                    windows: weekdays((8, 0), (12, 0)),
                },
                RadiologistInfo {
                    id: 11,
                    procedures: vec!["64483".into(), "27096".into()],
                    windows: weekdays((12, 0), (16, 0)),
                },
            ],
            chairs: vec![ChairInfo {
                id: 100,
                windows: weekdays((8, 0), (17, 0)),
            }],
            busy: BusyIndex::new(),
            closed: BusyIndex::new(),
        }
    }

    fn request(from: Date) -> SlotRequest {
        SlotRequest {
            procedure: "64483".into(),
            modalities: vec![Modality::Fluoroscopy],
            duration_minutes: 20,
            not_before: from.to_zoned_datetime(tz()).expect("valid").timestamp(),
            from,
            days_ahead: 14,
            limit: 5,
            step_minutes: 10,
            monitoring_minutes: None,
            preferred_days: Vec::new(),
            preferred_time: None,
        }
    }

    fn local(t: Timestamp) -> String {
        t.to_zoned_datetime(tz())
            .strftime("%Y-%m-%d %H:%M %z")
            .to_string()
    }

    #[test]
    fn the_earliest_options_respect_modality_and_credentials() {
        let slots = find_slots(&resources(), &request(date(2026, 11, 30)));
        assert_eq!(slots.len(), 5);
        assert_eq!(local(slots[0].start), "2026-11-30 08:00 -0500");
        assert!(slots.iter().all(|s| s.room == 1), "fluoroscopy only");
        let mut si = request(date(2026, 11, 30));
        si.procedure = "27096".into();
        let slots = find_slots(&resources(), &si);
        assert_eq!(
            local(slots[0].start),
            "2026-11-30 12:00 -0500",
            "only radiologist 11 does SI joints, afternoons"
        );
        assert!(slots.iter().all(|s| s.radiologist == 11));
    }

    #[test]
    fn preferred_days_get_a_share_of_the_options_without_hiding_the_earliest() {
        // Monday 30 November: the earliest options are all on Monday.
        let mut req = request(date(2026, 11, 30));
        req.limit = 6;
        req.preferred_days = vec![Weekday::Thursday];
        let slots = find_slots(&resources(), &req);
        let days: Vec<String> = slots
            .iter()
            .map(|s| local(s.start)[..10].to_owned())
            .collect();
        assert_eq!(slots.len(), 6);
        assert_eq!(
            days[..3],
            ["2026-11-30"; 3],
            "the earliest stay first: {days:?}"
        );
        assert_eq!(
            days[3..],
            ["2026-12-03"; 3],
            "half on the preferred Thursday: {days:?}"
        );
        assert!(
            slots.windows(2).all(|w| w[0].start < w[1].start),
            "earliest first"
        );
        assert!(search_is_complete(&slots, &req, &tz()));
        // One option asked for: the earliest, whatever the day.
        req.limit = 1;
        let one = find_slots(&resources(), &req);
        assert_eq!(local(one[0].start), "2026-11-30 08:00 -0500");
        // Without a preference, Thursday is not reached at all.
        req.limit = 6;
        req.preferred_days.clear();
        let plain = find_slots(&resources(), &req);
        assert!(
            plain
                .iter()
                .all(|s| local(s.start).starts_with("2026-11-30"))
        );
    }

    #[test]
    fn the_preferred_part_of_the_day_comes_first_within_a_day() {
        let mut req = request(date(2026, 11, 30));
        req.limit = 40;
        req.preferred_time = Some(TimeOfDay::Afternoon);
        let slots = find_slots(&resources(), &req);
        let monday: Vec<String> = slots
            .iter()
            .map(|s| local(s.start))
            .filter(|t| t.starts_with("2026-11-30"))
            .collect();
        assert_eq!(monday[0], "2026-11-30 12:00 -0500", "{monday:?}");
        let first_morning = monday
            .iter()
            .position(|t| &t[11..13] < "12")
            .expect("mornings too");
        assert!(
            monday[first_morning..].iter().all(|t| &t[11..13] < "12"),
            "the afternoon first, then the morning: {monday:?}"
        );
    }

    #[test]
    fn a_refusal_tells_a_closure_from_a_booking() {
        let mut res = resources();
        let d = date(2026, 11, 30);
        let at = |h: i8, m: i8| {
            d.to_datetime(time(h, m, 0, 0))
                .to_zoned_datetime(tz())
                .expect("valid")
                .timestamp()
        };
        let req = request(d);
        res.add_closure(
            ResourceId::Room(1),
            Interval {
                start: at(8, 0),
                end: at(9, 0),
            },
        );
        res.busy.add(
            ResourceId::Room(1),
            Interval {
                start: at(10, 0),
                end: at(10, 30),
            },
        );
        res.add_closure(
            ResourceId::Radiologist(10),
            Interval {
                start: at(11, 0),
                end: at(12, 0),
            },
        );
        let closed = check_option(&res, &req, at(8, 20), 1, 10).expect_err("closed");
        assert_eq!(closed, Refusal::Rule("the room is closed then".into()));
        let taken = check_option(&res, &req, at(10, 0), 1, 10).expect_err("booked");
        assert_eq!(
            taken,
            Refusal::Taken("the room is already booked then".into())
        );
        let away = check_option(&res, &req, at(11, 0), 1, 10).expect_err("away");
        assert_eq!(away, Refusal::Rule("the radiologist is away then".into()));
        assert!(find_slots(&res, &req).iter().all(|o| o.start >= at(9, 0)));
    }

    #[test]
    fn bookings_turnaround_and_not_before_are_respected() {
        let mut res = resources();
        let d = date(2026, 11, 30);
        let at = |h: i8, m: i8| {
            d.to_datetime(time(h, m, 0, 0))
                .to_zoned_datetime(tz())
                .expect("valid")
                .timestamp()
        };
        res.busy.add(
            ResourceId::Room(1),
            Interval {
                start: at(8, 0),
                end: at(8, 30),
            },
        );
        let slots = find_slots(&res, &request(d));
        assert_eq!(local(slots[0].start), "2026-11-30 08:30 -0500");
        let mut later = request(d);
        later.not_before = at(10, 5);
        let slots = find_slots(&res, &later);
        assert_eq!(
            local(slots[0].start),
            "2026-11-30 10:10 -0500",
            "on the 10-minute grid, not before 10:05"
        );
    }

    #[test]
    fn a_chair_is_reserved_for_patients_who_drive() {
        let mut res = resources();
        let d = date(2026, 11, 30);
        let at = |h: i8, m: i8| {
            d.to_datetime(time(h, m, 0, 0))
                .to_zoned_datetime(tz())
                .expect("valid")
                .timestamp()
        };
        res.busy.add(
            ResourceId::Chair(100),
            Interval {
                start: at(8, 0),
                end: at(9, 30),
            },
        );
        let mut req = request(d);
        req.monitoring_minutes = Some(60);
        let slots = find_slots(&res, &req);
        let first = slots[0];
        assert_eq!(
            local(first.start),
            "2026-11-30 09:10 -0500",
            "the chair is busy until 09:30"
        );
        let chair = first.chair.expect("chair");
        assert_eq!(
            (local(chair.start), local(chair.end)),
            (
                "2026-11-30 09:30 -0500".into(),
                "2026-11-30 10:30 -0500".into()
            )
        );
        // The chair closes at 17:00: no procedure ending after 16:00 with 60 minutes of monitoring.
        assert!(
            slots
                .iter()
                .all(|s| s.chair.is_some_and(|c| c.end <= at(17, 0)))
        );
    }

    #[test]
    fn daylight_saving_days_keep_wall_clock_times() {
        // 2026-03-08: clocks go forward at 02:00 in New York; 2026-11-01: back at 02:00.
        for (day, offset) in [(date(2026, 3, 8), "-0400"), (date(2026, 11, 1), "-0500")] {
            let slots = find_slots(
                &resources(),
                &SlotRequest {
                    limit: 3,
                    ..request(day)
                },
            );
            assert_eq!(local(slots[0].start), format!("{day} 08:00 {offset}"));
            assert_eq!(local(slots[0].end), format!("{day} 08:20 {offset}"));
        }
        // The day before each change, the other offset.
        let before = find_slots(
            &resources(),
            &SlotRequest {
                limit: 1,
                ..request(date(2026, 3, 7))
            },
        );
        assert_eq!(local(before[0].start), "2026-03-07 08:00 -0500");
        // A window across the spring gap (01:00-04:00) never offers 02:xx, which does not exist.
        let mut res = resources();
        res.rooms[0].windows = weekdays((1, 0), (4, 0));
        res.radiologists[0].windows = weekdays((1, 0), (4, 0));
        let slots = find_slots(
            &res,
            &SlotRequest {
                limit: 20,
                ..request(date(2026, 3, 8))
            },
        );
        let on_day: Vec<String> = slots
            .iter()
            .filter(|s| local(s.start).starts_with("2026-03-08"))
            .map(|s| local(s.start))
            .collect();
        assert!(on_day.iter().all(|s| !s.contains(" 02:")), "{on_day:?}");
        assert!(
            on_day.contains(&"2026-03-08 03:00 -0400".to_owned()),
            "{on_day:?}"
        );
        // In the autumn, 01:00-04:00 local is four real hours; each slot is 20 real minutes.
        let slots = find_slots(
            &res,
            &SlotRequest {
                limit: 30,
                ..request(date(2026, 11, 1))
            },
        );
        assert!(
            slots
                .iter()
                .all(|s| s.end - s.start == SignedDuration::from_mins(20))
        );
    }

    #[test]
    fn preferences_order_options_within_a_day() {
        let mut req = request(date(2026, 11, 30));
        req.procedure = "64483".into();
        req.preferred_time = Some(TimeOfDay::Afternoon);
        req.limit = 50;
        let slots = find_slots(&resources(), &req);
        assert_eq!(
            local(slots[0].start),
            "2026-11-30 12:00 -0500",
            "afternoon first on the earliest day"
        );
        let first_day: Vec<&SlotOption> = slots
            .iter()
            .filter(|s| local(s.start).starts_with("2026-11-30"))
            .collect();
        assert!(
            first_day.len() > 1 && local(first_day.last().expect("some").start).contains(" 11:"),
            "mornings follow"
        );
    }

    #[test]
    fn a_requested_option_is_checked_rule_by_rule() {
        let res = resources();
        let d = date(2026, 11, 30);
        let at = |h: i8, m: i8| {
            d.to_datetime(time(h, m, 0, 0))
                .to_zoned_datetime(tz())
                .expect("valid")
                .timestamp()
        };
        let req = request(d);
        assert!(check_option(&res, &req, at(9, 0), 1, 10).is_ok());
        assert!(
            check_option(&res, &req, at(9, 0), 2, 10)
                .expect_err("CT room")
                .message()
                .contains("CT")
        );
        assert!(
            check_option(&res, &req, at(13, 0), 1, 10)
                .expect_err("rad 10 works mornings")
                .message()
                .contains("not working")
        );
        assert!(
            check_option(&res, &req, at(9, 3), 1, 10)
                .expect_err("grid")
                .message()
                .contains("5-minute")
        );
        let mut later = req.clone();
        later.not_before = at(10, 0);
        assert!(
            check_option(&res, &later, at(9, 0), 1, 10)
                .expect_err("too early")
                .message()
                .contains("earliest safe")
        );
        let mut si = req.clone();
        si.procedure = "27096".into();
        assert!(
            check_option(&res, &si, at(9, 0), 1, 10)
                .expect_err("credentials")
                .message()
                .contains("credentialed")
        );
    }

    proptest! {
        /// Random bookings and closures: every option is in the future of not_before,
        /// in open windows, on allowed rooms, with credentialed radiologists, and free.
        #[test]
        fn options_never_break_a_rule(
            bookings in proptest::collection::vec((0usize..3, 0i64..(14 * 24 * 6), 1i64..12), 0..80),
            not_before_min in 0i64..(5 * 24 * 60),
            monitoring in proptest::option::of(30u32..61),
            ct in any::<bool>(),
            preferred in proptest::collection::vec(0usize..7, 0..3),
            limit in 1usize..20,
        ) {
            let mut res = resources();
            let from = date(2026, 11, 30);
            let base = from.to_zoned_datetime(tz()).expect("valid").timestamp();
            let mut busy: Vec<(ResourceId, Interval)> = Vec::new();
            for (which, start10, len10) in bookings {
                let start = base + SignedDuration::from_mins(start10 * 10);
                let interval = Interval { start, end: start + SignedDuration::from_mins(len10 * 10) };
                let resource = [ResourceId::Room(1), ResourceId::Radiologist(10), ResourceId::Chair(100)][which];
                res.busy.add(resource, interval);
                busy.push((resource, interval));
            }
            let mut req = request(from);
            req.not_before = base + SignedDuration::from_mins(not_before_min);
            req.monitoring_minutes = monitoring;
            req.limit = limit;
            let weekdays = [
                Weekday::Monday, Weekday::Tuesday, Weekday::Wednesday, Weekday::Thursday,
                Weekday::Friday, Weekday::Saturday, Weekday::Sunday,
            ];
            req.preferred_days = preferred.iter().map(|i| weekdays[*i]).collect();
            if ct { req.modalities = vec![Modality::Ct]; }
            let found = find_slots(&res, &req);
            // At most `limit`, each start once, days in order; the earliest option is
            // always first unless one option only was asked for and none is found.
            prop_assert!(found.len() <= req.limit);
            let mut starts: Vec<Timestamp> = found.iter().map(|s| s.start).collect();
            starts.dedup();
            prop_assert_eq!(starts.len(), found.len());
            let day = |t: Timestamp| t.to_zoned_datetime(tz()).date();
            prop_assert!(found.windows(2).all(|w| day(w[0].start) <= day(w[1].start)));
            let mut plain = req.clone();
            plain.preferred_days.clear();
            let earliest = find_slots(&res, &plain);
            prop_assert_eq!(found.first().map(|s| day(s.start)), earliest.first().map(|s| day(s.start)));
            for s in found {
                prop_assert!(s.start >= req.not_before);
                let room = res.rooms.iter().find(|r| r.id == s.room).expect("room");
                prop_assert!(req.modalities.contains(&room.modality));
                let rad = res.radiologists.iter().find(|r| r.id == s.radiologist).expect("radiologist");
                prop_assert!(rad.procedures.contains(&req.procedure));
                let d = s.start.to_zoned_datetime(tz()).date();
                let proc = Interval { start: s.start, end: s.end };
                prop_assert!(windows_on(&room.windows, d, &res.tz).iter().any(|w| proc.within(w)));
                prop_assert!(windows_on(&rad.windows, d, &res.tz).iter().any(|w| proc.within(w)));
                let room_busy = Interval { start: s.start, end: s.end + SignedDuration::from_mins(i64::from(room.turnaround_minutes)) };
                for (r, b) in &busy {
                    match r {
                        ResourceId::Room(id) if *id == s.room => prop_assert!(!b.overlaps(&room_busy)),
                        ResourceId::Radiologist(id) if *id == s.radiologist => prop_assert!(!b.overlaps(&proc)),
                        ResourceId::Chair(id) => {
                            if let Some(c) = s.chair.filter(|c| c.chair == *id) {
                                let chair = Interval { start: c.start, end: c.end };
                                prop_assert!(!b.overlaps(&chair));
                            }
                        }
                        _ => {}
                    }
                }
                prop_assert_eq!(s.chair.is_some(), monitoring.is_some());
            }
        }
    }
}
