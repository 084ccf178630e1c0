//! When to remind a patient of an appointment. Pure: the clock is an argument.
//!
//! Three kinds of reminder, all timed from the appointment's start in the site's zone:
//! - for each blood thinner the screening holds, before the last dose allowed for this
//!   appointment ("take your last dose of apixaban tonight, then stop");
//! - 3 days before;
//! - 1 day before.
//!
//! The 3-day and 1-day reminders go at the appointment's local time of day (so a 09:30
//! appointment is reminded at 09:30), computed with calendar arithmetic in the zone, so
//! a DST change between the reminder and the appointment does not shift it by an hour.
//! A time inside the quiet hours moves to the end of the quiet period.
//!
//! A hold reminder must reach the patient before the last dose, with time to act:
//! - a hold in days ends on a day ("your last dose is on Monday"): the reminder goes
//!   on that day at the appointment's time of day, kept on that day whatever the
//!   quiet hours (just before they start when their end would fall on the next day);
//! - a hold in hours ends at an instant ("no later than 8:00 AM"): the reminder goes at
//!   the latest time outside the quiet hours that is at least [`HOLD_REMINDER_LEAD`]
//!   (3 hours) before it — for an early deadline, the evening before. Never after it.
//!
//! Times already past: a hold reminder is sent as soon as the quiet hours allow if that
//! is still before its deadline (the day's end for a hold in days); a 1-day reminder is
//! sent as soon as allowed if that is still on its own day and before the appointment
//! (a booking made the afternoon before a morning appointment still gets "your
//! procedure is tomorrow" that afternoon); a past 3-day reminder is dropped. Nothing
//! is planned for a patient who opted out or has no contact on file, and nothing at or
//! after the appointment's start.

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, Time};
use jiff::{Timestamp, ToSpan, ZonedDateTime};

use crate::screening::HoldPlan;

/// How a message reaches the patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageChannel {
    /// Email to the address on the patient record.
    Email,
    /// A text message to the phone number on the patient record.
    Sms,
}

impl MessageChannel {
    /// Both channels.
    pub const ALL: [MessageChannel; 2] = [MessageChannel::Email, MessageChannel::Sms];

    /// Stable name (stored, and in the API).
    pub const fn as_str(self) -> &'static str {
        match self {
            MessageChannel::Email => "email",
            MessageChannel::Sms => "sms",
        }
    }
}

impl fmt::Display for MessageChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MessageChannel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        MessageChannel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| format!("unknown channel {s:?}: expected email or sms"))
    }
}

/// Which reminder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReminderKind {
    /// The day the hold of a blood thinner starts.
    HoldStart,
    /// Three days before.
    ThreeDays,
    /// One day before.
    OneDay,
}

impl ReminderKind {
    /// Every kind.
    pub const ALL: [ReminderKind; 3] = [
        ReminderKind::HoldStart,
        ReminderKind::ThreeDays,
        ReminderKind::OneDay,
    ];

    /// The message kind stored in the outbox.
    pub const fn as_str(self) -> &'static str {
        match self {
            ReminderKind::HoldStart => "reminder_hold_start",
            ReminderKind::ThreeDays => "reminder_3_days",
            ReminderKind::OneDay => "reminder_1_day",
        }
    }

    /// The reminder kind of an outbox message kind, if it is one.
    pub fn from_message_kind(kind: &str) -> Option<Self> {
        ReminderKind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for ReminderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A daily period in local civil time when no reminder is sent: `[start, end)`,
/// wrapping midnight when `end` is not after `start` (the default, 20:00-08:00).
/// `start == end` means no quiet hours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuietHours {
    start: Time,
    end: Time,
}

impl Default for QuietHours {
    fn default() -> Self {
        Self {
            start: Time::constant(20, 0, 0, 0),
            end: Time::constant(8, 0, 0, 0),
        }
    }
}

impl QuietHours {
    /// Quiet from `start` until `end` (local time).
    pub const fn new(start: Time, end: Time) -> Self {
        Self { start, end }
    }

    /// No quiet hours.
    pub const fn none() -> Self {
        Self {
            start: Time::MIN,
            end: Time::MIN,
        }
    }

    /// Parses `HH:MM-HH:MM` (e.g. `20:00-08:00`); `off` or `none` for no quiet hours.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.eq_ignore_ascii_case("off") || raw.eq_ignore_ascii_case("none") {
            return Ok(Self::none());
        }
        let bad = || {
            format!(
                "quiet hours {raw:?} must be written HH:MM-HH:MM in local time, e.g. 20:00-08:00 (or \"off\")"
            )
        };
        let (a, b) = raw.split_once('-').ok_or_else(bad)?;
        let time = |s: &str| -> Result<Time, String> {
            let (h, m) = s.trim().split_once(':').ok_or_else(bad)?;
            let h: i8 = h.parse().map_err(|_| bad())?;
            let m: i8 = m.parse().map_err(|_| bad())?;
            Time::new(h, m, 0, 0).map_err(|_| bad())
        };
        Ok(Self::new(time(a)?, time(b)?))
    }

    /// Start of the quiet period.
    pub const fn start(&self) -> Time {
        self.start
    }

    /// End of the quiet period.
    pub const fn end(&self) -> Time {
        self.end
    }

    /// Whether there are quiet hours at all.
    pub fn is_off(&self) -> bool {
        self.start == self.end
    }

    /// Whether a local time of day is quiet.
    pub fn contains(&self, t: Time) -> bool {
        if self.is_off() {
            false
        } else if self.start < self.end {
            self.start <= t && t < self.end
        } else {
            t >= self.start || t < self.end
        }
    }

    /// The first instant at or after `at` that is not quiet, in `at`'s zone.
    pub fn next_allowed(&self, at: &ZonedDateTime) -> Option<ZonedDateTime> {
        if !self.contains(at.time()) {
            return Some(at.clone());
        }
        let mut day = at.date();
        // The end today if it is still ahead, else tomorrow's.
        if at.time() >= self.end {
            day = day.tomorrow().ok()?;
        }
        day.to_datetime(self.end)
            .to_zoned_datetime(at.time_zone().clone())
            .ok()
    }

    /// The last instant at or before `at` that is not quiet, in `at`'s zone: `at`
    /// itself, or the minute before the quiet period it falls in began.
    pub fn last_allowed(&self, at: &ZonedDateTime) -> Option<ZonedDateTime> {
        if !self.contains(at.time()) {
            return Some(at.clone());
        }
        let mut day = at.date();
        // The period began today if `at` is after its start, else yesterday.
        if at.time() < self.start {
            day = day.yesterday().ok()?;
        }
        day.to_datetime(self.start)
            .to_zoned_datetime(at.time_zone().clone())
            .ok()?
            .checked_sub(1.minute())
            .ok()
    }

    /// `HH:MM-HH:MM`, or `off`.
    pub fn describe(&self) -> String {
        if self.is_off() {
            "off".to_owned()
        } else {
            format!(
                "{}-{}",
                self.start.strftime("%H:%M"),
                self.end.strftime("%H:%M")
            )
        }
    }
}

/// How long before a hold's last-dose deadline (a hold in hours) its reminder goes at
/// the latest: time to read it and to act on it (3 hours).
pub const HOLD_REMINDER_LEAD: jiff::SignedDuration = jiff::SignedDuration::from_hours(3);

/// The last dose before an appointment, as the patient's letter states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LastDoseBy {
    /// On this day (a hold in days, or a recorded day without a time).
    Day(Date),
    /// No later than this instant (a hold in hours), in the site's zone.
    At(ZonedDateTime),
}

impl LastDoseBy {
    /// The day of the last dose.
    pub fn date(&self) -> Date {
        match self {
            LastDoseBy::Day(d) => *d,
            LastDoseBy::At(z) => z.date(),
        }
    }
}

/// One held blood thinner, reduced to what a reminder needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoldStop {
    /// The drug as the rule pack names it.
    pub drug: String,
    /// The last dose the patient may take before this appointment.
    pub last_dose: LastDoseBy,
}

/// The last dose of a held drug before an appointment, from the screening's hold
/// plan — one computation for the letters and the reminders:
/// - a last dose the patient gave (`recorded`) stands, at its time (`recorded_time`)
///   for a hold in hours when one was given;
/// - otherwise, for a hold in days, the hold's length (the plan's distance from the
///   last dose to the earliest date) counted back from the appointment's day;
/// - for a hold in hours, the hold's length (from the last dose's time, `recorded_time`
///   or 23:59 as the engine assumes, to the earliest instant) counted back from the
///   appointment's start.
pub fn last_dose(
    plan: &HoldPlan,
    appointment_start: &ZonedDateTime,
    recorded: Option<Date>,
    recorded_time: Option<Time>,
) -> Option<LastDoseBy> {
    let tz = appointment_start.time_zone().clone();
    match (plan.earliest_at, recorded) {
        (Some(_), Some(day)) => Some(match recorded_time {
            Some(t) => LastDoseBy::At(day.to_datetime(t).to_zoned_datetime(tz).ok()?),
            None => LastDoseBy::Day(day),
        }),
        (None, Some(day)) => Some(LastDoseBy::Day(day)),
        (None, None) => {
            let days = plan.last_dose.until(plan.earliest_date).ok()?.get_days();
            let day = appointment_start
                .date()
                .checked_sub(i64::from(days).days())
                .ok()?;
            Some(LastDoseBy::Day(day))
        }
        (Some(earliest_at), None) => {
            let time = recorded_time.unwrap_or_else(|| Time::constant(23, 59, 0, 0));
            let counted_from = plan
                .last_dose
                .to_datetime(time)
                .to_zoned_datetime(tz.clone())
                .ok()?
                .timestamp();
            let length = earliest_at.duration_since(counted_from);
            let latest = appointment_start.timestamp().checked_sub(length).ok()?;
            Some(LastDoseBy::At(latest.to_zoned_datetime(tz)))
        }
    }
}

/// What a reminder plan is made from.
#[derive(Debug, Clone)]
pub struct ReminderInput<'a> {
    /// The appointment's start, in the site's zone.
    pub appointment_start: &'a ZonedDateTime,
    /// The blood thinners held for it.
    pub holds: &'a [HoldStop],
    /// Where the patient can be reached (empty: nowhere).
    pub channels: &'a [MessageChannel],
    /// The patient asked for no reminders.
    pub opted_out: bool,
    /// When not to send.
    pub quiet: QuietHours,
    /// Now.
    pub now: Timestamp,
}

/// One reminder to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedReminder {
    /// Which.
    pub kind: ReminderKind,
    /// How.
    pub channel: MessageChannel,
    /// Not before.
    pub send_at: Timestamp,
    /// Not at or after: past this the message would be wrong or useless (a hold's
    /// last-dose deadline, the end of the day a 1-day reminder calls "tomorrow", the
    /// appointment's start). A worker that cannot send it by then cancels it.
    pub send_before: Timestamp,
    /// For hold reminders: the drug.
    pub drug: Option<String>,
}

/// Plans the reminders for one appointment (see the module documentation), earliest first.
pub fn plan_reminders(input: &ReminderInput<'_>) -> Vec<PlannedReminder> {
    if input.opted_out || input.channels.is_empty() {
        return Vec::new();
    }
    let start = input.appointment_start;
    let tz = start.time_zone().clone();
    let now_local = input.now.to_zoned_datetime(tz.clone());
    let soonest = input.quiet.next_allowed(&now_local);
    let mut due: Vec<(ReminderKind, Option<String>, Timestamp, Timestamp)> = Vec::new();
    for (kind, days) in [(ReminderKind::ThreeDays, 3), (ReminderKind::OneDay, 1)] {
        let Ok(at) = start.checked_sub(days.days()) else {
            continue;
        };
        let Some(at) = input.quiet.next_allowed(&at) else {
            continue;
        };
        let before = match kind {
            // "Your procedure is tomorrow" is true only on the day before.
            ReminderKind::OneDay => end_of_day(at.date(), &tz).unwrap_or(start.timestamp()),
            _ => start.timestamp(),
        }
        .min(start.timestamp());
        if at.timestamp() > input.now {
            due.push((kind, None, at.timestamp(), before));
        } else if kind == ReminderKind::OneDay
            && let Some(soonest) = &soonest
        {
            // Booked after its time (e.g. the afternoon before): at once, while
            // "tomorrow" is still true. A missed 3-day reminder is dropped: the
            // 1-day one follows.
            due.push((kind, None, soonest.timestamp(), before));
        }
    }
    for hold in input.holds {
        let too_late = match &hold.last_dose {
            LastDoseBy::Day(day) => *day >= start.date(),
            LastDoseBy::At(at) => at.timestamp() >= start.timestamp(),
        };
        if too_late {
            continue;
        }
        if let Some((at, before)) = hold_reminder_at(&hold.last_dose, start, input.quiet, input.now)
        {
            due.push((ReminderKind::HoldStart, Some(hold.drug.clone()), at, before));
        }
    }
    let mut out: Vec<PlannedReminder> = due
        .into_iter()
        .filter(|(_, _, at, before)| *at < start.timestamp() && at < before)
        .flat_map(|(kind, drug, at, before)| {
            input.channels.iter().map(move |&channel| PlannedReminder {
                kind,
                channel,
                send_at: at,
                send_before: before,
                drug: drug.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (a.send_at, a.kind, a.channel, &a.drug).cmp(&(b.send_at, b.kind, b.channel, &b.drug))
    });
    out.dedup();
    out
}

/// The first instant of the day after `day`, in the zone.
fn end_of_day(day: Date, tz: &jiff::tz::TimeZone) -> Option<Timestamp> {
    day.tomorrow()
        .ok()?
        .to_datetime(Time::MIN)
        .to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

/// When to remind of a hold, and the instant past which the reminder is too late:
/// - a last dose on a day: at the appointment's time of day on that day, kept on that
///   day whatever the quiet hours; before the day ends;
/// - a last dose by an instant: the latest time outside the quiet hours at least
///   [`HOLD_REMINDER_LEAD`] before it; before it.
///
/// A time already past becomes the first time the quiet hours allow from now, if
/// that is still before the deadline (and, for a day, on that day).
fn hold_reminder_at(
    last: &LastDoseBy,
    start: &ZonedDateTime,
    quiet: QuietHours,
    now: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let tz = start.time_zone().clone();
    let (planned, deadline) = match last {
        LastDoseBy::Day(day) => {
            let day = *day;
            let deadline = end_of_day(day, &tz)?;
            let planned = day
                .to_datetime(start.time())
                .to_zoned_datetime(tz.clone())
                .ok()?;
            let allowed = quiet.next_allowed(&planned)?;
            let at = if allowed.date() == day {
                Some(allowed)
            } else {
                // The quiet period runs past midnight: the last minute before it starts.
                day.to_datetime(quiet.start())
                    .to_zoned_datetime(tz.clone())
                    .ok()?
                    .checked_sub(1.minute())
                    .ok()
                    .filter(|before| before.date() == day)
            };
            (at, deadline)
        }
        LastDoseBy::At(deadline) => {
            let latest = deadline.checked_sub(HOLD_REMINDER_LEAD).ok()?;
            (quiet.last_allowed(&latest), deadline.timestamp())
        }
    };
    if let Some(at) = planned.filter(|at| at.timestamp() > now) {
        return (at.timestamp() < deadline).then_some((at.timestamp(), deadline));
    }
    // Too late for the planned time: as soon as allowed, if still in time.
    let soonest = quiet.next_allowed(&now.to_zoned_datetime(tz))?;
    let in_time = soonest.timestamp() < deadline
        && match last {
            LastDoseBy::Day(day) => soonest.date() == *day,
            LastDoseBy::At(_) => true,
        };
    in_time.then_some((soonest.timestamp(), deadline))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};
    use jiff::tz::TimeZone;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").expect("zone")
    }

    fn at(d: Date, t: Time) -> ZonedDateTime {
        d.to_datetime(t).to_zoned_datetime(ny()).expect("valid")
    }

    fn local(ts: Timestamp) -> String {
        ts.to_zoned_datetime(ny())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string()
    }

    fn plan_for(
        start: &ZonedDateTime,
        holds: &[HoldStop],
        channels: &[MessageChannel],
        now: Timestamp,
    ) -> Vec<PlannedReminder> {
        plan_reminders(&ReminderInput {
            appointment_start: start,
            holds,
            channels,
            opted_out: false,
            quiet: QuietHours::default(),
            now,
        })
    }

    fn hold_plan(last_dose: Date, days: i64) -> HoldPlan {
        HoldPlan {
            drug: "apixaban".into(),
            hold: format!("{days} days"),
            last_dose,
            earliest_date: last_dose.checked_add(days.days()).expect("date"),
            earliest_at: None,
            restart: Some("24 hours after the procedure".into()),
            restart_hours: Some(24),
        }
    }

    #[test]
    fn three_days_one_day_and_the_hold_day_at_the_appointments_time() {
        let start = at(date(2026, 12, 10), time(9, 30, 0, 0));
        let holds = [HoldStop {
            drug: "apixaban".into(),
            last_dose: LastDoseBy::Day(date(2026, 12, 7)),
        }];
        let now = at(date(2026, 12, 1), time(12, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Email], now);
        let got: Vec<(ReminderKind, String, Option<&str>)> = plan
            .iter()
            .map(|p| (p.kind, local(p.send_at), p.drug.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    ReminderKind::HoldStart,
                    "2026-12-07 09:30 EST".to_owned(),
                    Some("apixaban")
                ),
                (
                    ReminderKind::ThreeDays,
                    "2026-12-07 09:30 EST".to_owned(),
                    None
                ),
                (
                    ReminderKind::OneDay,
                    "2026-12-09 09:30 EST".to_owned(),
                    None
                ),
            ]
        );
    }

    #[test]
    fn local_time_is_kept_across_a_dst_change() {
        // Clocks fall back on 2026-11-01 in New York.
        let start = at(date(2026, 11, 2), time(10, 0, 0, 0));
        let now = at(date(2026, 10, 20), time(12, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &[], &[MessageChannel::Sms], now);
        let times: Vec<String> = plan.iter().map(|p| local(p.send_at)).collect();
        assert_eq!(times, ["2026-10-30 10:00 EDT", "2026-11-01 10:00 EST"]);
        // 72 hours before would have been 11:00 EDT on Oct 30: calendar days are used.
        assert_ne!(
            plan[0].send_at,
            start.timestamp() - jiff::SignedDuration::from_hours(72)
        );
    }

    #[test]
    fn quiet_hours_move_reminders_to_their_end() {
        let start = at(date(2026, 12, 10), time(7, 15, 0, 0));
        let now = at(date(2026, 12, 1), time(12, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &[], &[MessageChannel::Email], now);
        let times: Vec<String> = plan.iter().map(|p| local(p.send_at)).collect();
        assert_eq!(times, ["2026-12-07 08:00 EST", "2026-12-09 08:00 EST"]);
        let custom = QuietHours::parse("12:00-13:30").expect("valid");
        let noon = at(date(2026, 12, 10), time(12, 15, 0, 0));
        let plan = plan_reminders(&ReminderInput {
            appointment_start: &noon,
            holds: &[],
            channels: &[MessageChannel::Email],
            opted_out: false,
            quiet: custom,
            now,
        });
        assert_eq!(local(plan[0].send_at), "2026-12-07 13:30 EST");
        for p in plan {
            let t = p.send_at.to_zoned_datetime(ny()).time();
            assert!(!custom.contains(t), "{t} is quiet");
        }
    }

    #[test]
    fn a_hold_reminder_stays_on_its_day() {
        // An evening appointment: 20:30 is quiet and the quiet period runs to the next
        // morning, so the hold reminder goes just before 20:00 on the hold day.
        let start = at(date(2026, 12, 10), time(20, 30, 0, 0));
        let holds = [HoldStop {
            drug: "apixaban".into(),
            last_dose: LastDoseBy::Day(date(2026, 12, 7)),
        }];
        let now = at(date(2026, 12, 1), time(12, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Email], now);
        let hold = plan
            .iter()
            .find(|p| p.kind == ReminderKind::HoldStart)
            .expect("hold reminder");
        assert_eq!(local(hold.send_at), "2026-12-07 19:59 EST");
        let three = plan
            .iter()
            .find(|p| p.kind == ReminderKind::ThreeDays)
            .expect("3-day reminder");
        assert_eq!(local(three.send_at), "2026-12-08 08:00 EST");
    }

    #[test]
    fn past_times_are_dropped_but_todays_hold_is_sent_now() {
        let start = at(date(2026, 12, 10), time(9, 30, 0, 0));
        let holds = [HoldStop {
            drug: "apixaban".into(),
            last_dose: LastDoseBy::Day(date(2026, 12, 8)),
        }];
        // Booked on the 8th at 15:00: the 3-day reminder is past, the hold is today.
        let now = at(date(2026, 12, 8), time(15, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Sms], now);
        let got: Vec<(ReminderKind, Timestamp)> =
            plan.iter().map(|p| (p.kind, p.send_at)).collect();
        assert_eq!(
            got,
            vec![
                (ReminderKind::HoldStart, now),
                (
                    ReminderKind::OneDay,
                    at(date(2026, 12, 9), time(9, 30, 0, 0)).timestamp()
                ),
            ]
        );
        // The same at 21:00 (quiet): the hold reminder is not sent in the night.
        let late = at(date(2026, 12, 8), time(21, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Sms], late);
        assert!(plan.iter().all(|p| p.kind != ReminderKind::HoldStart));
        // After the appointment's start nothing is planned.
        let after = at(date(2026, 12, 10), time(10, 0, 0, 0)).timestamp();
        assert!(plan_for(&start, &holds, &[MessageChannel::Sms], after).is_empty());
    }

    #[test]
    fn nothing_for_an_opted_out_patient_or_one_without_contact() {
        let start = at(date(2026, 12, 10), time(9, 30, 0, 0));
        let now = at(date(2026, 12, 1), time(12, 0, 0, 0)).timestamp();
        assert!(plan_for(&start, &[], &[], now).is_empty());
        let opted = plan_reminders(&ReminderInput {
            appointment_start: &start,
            holds: &[],
            channels: &[MessageChannel::Email, MessageChannel::Sms],
            opted_out: true,
            quiet: QuietHours::default(),
            now,
        });
        assert!(opted.is_empty());
        let both = plan_for(
            &start,
            &[],
            &[MessageChannel::Email, MessageChannel::Sms],
            now,
        );
        assert_eq!(both.len(), 4, "two reminders on two channels: {both:?}");
    }

    #[test]
    fn the_last_dose_counts_the_hold_back_from_the_appointment() {
        let start = at(date(2026, 12, 10), time(9, 30, 0, 0));
        // Still taking it: the engine counts from today (Dec 1), 3 days.
        let plan = hold_plan(date(2026, 12, 1), 3);
        assert_eq!(
            last_dose(&plan, &start, None, None),
            Some(LastDoseBy::Day(date(2026, 12, 7)))
        );
        // A last dose the patient gave stands.
        let given = hold_plan(date(2026, 11, 28), 3);
        assert_eq!(
            last_dose(&given, &start, Some(date(2026, 11, 28)), None),
            Some(LastDoseBy::Day(date(2026, 11, 28)))
        );
        // 24 hours from 23:59: no later than 24 hours before the start.
        let mut hours = hold_plan(date(2026, 12, 1), 1);
        hours.hold = "24 hours".into();
        hours.earliest_at = Some(at(date(2026, 12, 2), time(23, 59, 0, 0)).timestamp());
        assert_eq!(
            last_dose(&hours, &start, None, None),
            Some(LastDoseBy::At(at(date(2026, 12, 9), time(9, 30, 0, 0))))
        );
        // A recorded dose with its time stands at that time.
        assert_eq!(
            last_dose(
                &hours,
                &start,
                Some(date(2026, 12, 8)),
                Some(time(20, 0, 0, 0))
            ),
            Some(LastDoseBy::At(at(date(2026, 12, 8), time(20, 0, 0, 0))))
        );
        // 6 hours: the deadline is on the appointment's own day.
        let mut short = hold_plan(date(2026, 12, 1), 1);
        short.hold = "6 hours".into();
        short.earliest_at = Some(at(date(2026, 12, 2), time(5, 59, 0, 0)).timestamp());
        assert_eq!(
            last_dose(&short, &start, None, None),
            Some(LastDoseBy::At(at(date(2026, 12, 10), time(3, 30, 0, 0))))
        );
    }

    fn by(d: Date, t: Time) -> HoldStop {
        HoldStop {
            drug: "dalteparin".into(),
            last_dose: LastDoseBy::At(at(d, t)),
        }
    }

    fn hold_time(plan: &[PlannedReminder]) -> Option<(String, String)> {
        plan.iter()
            .find(|p| p.kind == ReminderKind::HoldStart)
            .map(|p| (local(p.send_at), local(p.send_before)))
    }

    #[test]
    fn an_hour_based_hold_is_reminded_well_before_its_deadline() {
        let now = at(date(2026, 12, 1), time(12, 0, 0, 0)).timestamp();
        // Booked Dec 8 08:00, last dose no later than Dec 7 08:00: three hours before
        // is 05:00, in the quiet hours, so the evening before, just before they start.
        let start = at(date(2026, 12, 8), time(8, 0, 0, 0));
        let holds = [by(date(2026, 12, 7), time(8, 0, 0, 0))];
        let plan = plan_for(&start, &holds, &[MessageChannel::Sms], now);
        assert_eq!(
            hold_time(&plan),
            Some((
                "2026-12-06 19:59 EST".to_owned(),
                "2026-12-07 08:00 EST".to_owned()
            ))
        );
        // An early appointment: 07:00, deadline 07:00 the day before.
        let early = at(date(2026, 12, 8), time(7, 0, 0, 0));
        let holds = [by(date(2026, 12, 7), time(7, 0, 0, 0))];
        let plan = plan_for(&early, &holds, &[MessageChannel::Sms], now);
        assert_eq!(
            hold_time(&plan).map(|t| t.0),
            Some("2026-12-06 19:59 EST".to_owned())
        );
        // An afternoon deadline: three hours before, the same day.
        let afternoon = at(date(2026, 12, 8), time(14, 0, 0, 0));
        let holds = [by(date(2026, 12, 7), time(14, 0, 0, 0))];
        let plan = plan_for(&afternoon, &holds, &[MessageChannel::Sms], now);
        assert_eq!(
            hold_time(&plan).map(|t| t.0),
            Some("2026-12-07 11:00 EST".to_owned())
        );
        // Quiet hours of the day (12:00-13:30): the latest time before them.
        let custom = QuietHours::parse("12:00-13:30").expect("valid");
        let plan = plan_reminders(&ReminderInput {
            appointment_start: &afternoon,
            holds: &[by(date(2026, 12, 7), time(16, 0, 0, 0))],
            channels: &[MessageChannel::Email],
            opted_out: false,
            quiet: custom,
            now,
        });
        assert_eq!(
            hold_time(&plan).map(|t| t.0),
            Some("2026-12-07 11:59 EST".to_owned())
        );
    }

    #[test]
    fn an_hour_based_hold_booked_late_goes_at_once_only_while_in_time() {
        let start = at(date(2026, 12, 8), time(9, 0, 0, 0));
        let holds = [by(date(2026, 12, 7), time(9, 0, 0, 0))];
        // Booked Dec 6 at 21:00: the evening's time has passed and it is quiet; the
        // first allowed time, 08:00 on the 7th, is an hour before the deadline.
        let late = at(date(2026, 12, 6), time(21, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Sms], late);
        assert_eq!(
            hold_time(&plan).map(|t| t.0),
            Some("2026-12-07 08:00 EST".to_owned())
        );
        // Booked Dec 7 at 08:30 (not quiet): at once.
        let now = at(date(2026, 12, 7), time(8, 30, 0, 0)).timestamp();
        let plan = plan_for(&start, &holds, &[MessageChannel::Sms], now);
        assert_eq!(
            hold_time(&plan).map(|t| t.0),
            Some("2026-12-07 08:30 EST".to_owned())
        );
        // A deadline of 08:00 when booked in the night before: the quiet hours end at
        // the deadline, so there is no time left to remind.
        let holds = [by(date(2026, 12, 7), time(8, 0, 0, 0))];
        let night = at(date(2026, 12, 7), time(2, 0, 0, 0)).timestamp();
        assert_eq!(
            hold_time(&plan_for(&start, &holds, &[MessageChannel::Sms], night)),
            None
        );
        // After the deadline: nothing.
        let after = at(date(2026, 12, 7), time(9, 30, 0, 0)).timestamp();
        assert_eq!(
            hold_time(&plan_for(&start, &holds, &[MessageChannel::Sms], after)),
            None
        );
    }

    #[test]
    fn a_hold_reminder_is_never_at_or_after_its_deadline_nor_quiet() {
        let quiet = QuietHours::default();
        for hour in 0..24 {
            for minute in [0, 30] {
                let deadline = at(date(2026, 12, 7), time(hour, minute, 0, 0));
                let start = deadline.checked_add(24.hours()).expect("in range");
                let holds = [HoldStop {
                    drug: "enoxaparin".into(),
                    last_dose: LastDoseBy::At(deadline.clone()),
                }];
                for booked_hours_before in [200, 30, 20, 12, 6, 3, 1] {
                    let now = deadline
                        .checked_sub(i64::from(booked_hours_before).hours())
                        .expect("in range")
                        .timestamp();
                    let plan = plan_for(&start, &holds, &[MessageChannel::Sms], now);
                    for p in plan.iter().filter(|p| p.kind == ReminderKind::HoldStart) {
                        assert!(p.send_at < deadline.timestamp(), "{deadline} {p:?}");
                        assert!(p.send_at >= now, "{deadline} {p:?}");
                        assert_eq!(p.send_before, deadline.timestamp());
                        let t = p.send_at.to_zoned_datetime(ny()).time();
                        assert!(!quiet.contains(t), "{t} is quiet");
                        if booked_hours_before == 200 {
                            // Planned well ahead: at least the lead before it.
                            assert!(
                                p.send_at <= deadline.timestamp() - HOLD_REMINDER_LEAD,
                                "{deadline} {p:?}"
                            );
                        }
                    }
                    if booked_hours_before == 200 {
                        assert!(
                            plan.iter().any(|p| p.kind == ReminderKind::HoldStart),
                            "no hold reminder for {deadline}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_missed_one_day_reminder_goes_at_once_while_tomorrow_is_true() {
        let start = at(date(2026, 12, 10), time(9, 30, 0, 0));
        // Booked the afternoon before: the 1-day reminder goes now.
        let now = at(date(2026, 12, 9), time(15, 0, 0, 0)).timestamp();
        let plan = plan_for(&start, &[], &[MessageChannel::Email], now);
        let got: Vec<(ReminderKind, Timestamp)> =
            plan.iter().map(|p| (p.kind, p.send_at)).collect();
        assert_eq!(got, vec![(ReminderKind::OneDay, now)]);
        assert_eq!(
            local(plan[0].send_before),
            "2026-12-10 00:00 EST",
            "not on the appointment's day"
        );
        // Booked at 21:00 the day before: quiet until the appointment's day, when
        // "tomorrow" would be wrong.
        let night = at(date(2026, 12, 9), time(21, 0, 0, 0)).timestamp();
        assert!(plan_for(&start, &[], &[MessageChannel::Email], night).is_empty());
        // Booked the same morning: nothing.
        let morning = at(date(2026, 12, 10), time(8, 0, 0, 0)).timestamp();
        assert!(plan_for(&start, &[], &[MessageChannel::Email], morning).is_empty());
    }

    #[test]
    fn quiet_hours_last_allowed() {
        let q = QuietHours::default();
        let t = |h, m| at(date(2026, 12, 7), time(h, m, 0, 0));
        assert_eq!(q.last_allowed(&t(12, 0)), Some(t(12, 0)));
        assert_eq!(q.last_allowed(&t(22, 0)), Some(t(19, 59)));
        assert_eq!(
            q.last_allowed(&t(5, 0)),
            Some(at(date(2026, 12, 6), time(19, 59, 0, 0)))
        );
        let day = QuietHours::parse("12:00-13:30").expect("valid");
        assert_eq!(day.last_allowed(&t(13, 0)), Some(t(11, 59)));
        assert_eq!(QuietHours::none().last_allowed(&t(3, 0)), Some(t(3, 0)));
    }

    #[test]
    fn quiet_hours_parse_and_contain() {
        let q = QuietHours::parse("20:00-08:00").expect("valid");
        assert_eq!(q, QuietHours::default());
        assert!(q.contains(time(23, 0, 0, 0)));
        assert!(q.contains(time(7, 59, 0, 0)));
        assert!(!q.contains(time(8, 0, 0, 0)));
        assert!(!q.contains(time(19, 59, 0, 0)));
        assert!(QuietHours::parse("off").expect("valid").is_off());
        assert!(!QuietHours::none().contains(time(3, 0, 0, 0)));
        for bad in ["8-20", "25:00-08:00", "20:00", "20:00-08:61", ""] {
            assert!(QuietHours::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(q.describe(), "20:00-08:00");
    }

    #[test]
    fn kinds_and_channels_round_trip() {
        for k in ReminderKind::ALL {
            assert_eq!(ReminderKind::from_message_kind(k.as_str()), Some(k));
        }
        assert_eq!(ReminderKind::from_message_kind("patient_link"), None);
        for c in MessageChannel::ALL {
            assert_eq!(c.as_str().parse::<MessageChannel>(), Ok(c));
        }
        assert!("fax".parse::<MessageChannel>().is_err());
    }
}
