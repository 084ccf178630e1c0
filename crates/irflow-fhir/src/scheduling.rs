//! Scheduling as FHIR R4: `Appointment`, `Slot`, `Schedule` and the `Location` of a
//! procedure room, and the pure parts of serving them — schedule and slot ids, FHIR
//! date search values as instants, and a resource's days cut into free, busy and
//! unavailable slots from its weekly hours in local civil time (DST-correct: the
//! domain's `WeeklyWindow::on` turns wall-clock hours into instants).
//!
//! Ids: a room's Location and Schedule are `room-{id}`, a radiologist's Schedule is
//! `radiologist-{userId}` (their Practitioner is `{userId}`), a Slot is
//! `{schedule}-{epochSeconds}-{status}` (e.g. `room-1-1796641200-free`), so reading a
//! Slot recomputes it. Times are instants with the site's offset.

use irflow_domain::Modality;
use irflow_domain::catalogue::CPT_SYSTEM;
use irflow_domain::scheduling::{Interval, WeeklyWindow};
use jiff::civil::{Date, DateTime, Weekday};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::Serialize;

use crate::SNOMED;
use crate::types::{CodeableConcept, Coding, Reference};

/// Extension: when the patient should arrive to check in (`valueDateTime`).
pub const EXT_ARRIVE_BY: &str = "urn:irflow:fhir:StructureDefinition:arrive-by";
/// Extension: the recovery chair reserved after the procedure (complex: `chair`
/// valueString, `period` valuePeriod).
pub const EXT_RECOVERY_CHAIR: &str = "urn:irflow:fhir:StructureDefinition:recovery-chair";
/// HL7 v3 participation types (`PPRF`, primary performer).
pub const V3_PARTICIPATION_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
/// HL7 v2 table 0276, appointment reason codes (`ROUTINE`).
pub const V2_0276: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
/// HL7 v3 role codes (service delivery location types).
pub const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
/// Location physical types (`ro`, room).
pub const LOCATION_PHYSICAL_TYPE: &str =
    "http://terminology.hl7.org/CodeSystem/location-physical-type";
/// DICOM controlled terminology (modality codes).
pub const DICOM_DCM: &str = "http://dicom.nema.org/resources/ontology/DCM";
/// The SNOMED CT code of the specialty: interventional radiology.
pub const IR_SPECIALTY: (&str, &str) = ("408455009", "Interventional radiology - specialty");

/// Earliest and latest years accepted in search values (keeps date arithmetic far
/// from the ends of the calendar).
const YEARS: std::ops::RangeInclusive<i16> = 1900..=2199;

/// `Period`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Period {
    /// Start (a dateTime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// End (a dateTime).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
}

/// An `Extension` with the value types the scheduling resources use.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingExtension {
    /// What it means.
    pub url: String,
    /// Parts of a complex extension.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<SchedulingExtension>,
    /// A string value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// A dateTime value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date_time: Option<String>,
    /// A Period value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_period: Option<Period>,
}

impl SchedulingExtension {
    fn empty(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            extension: Vec::new(),
            value_string: None,
            value_date_time: None,
            value_period: None,
        }
    }
}

/// `Appointment.participant`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppointmentParticipant {
    /// The role (e.g. primary performer).
    #[serde(rename = "type", skip_serializing_if = "Vec::is_empty")]
    pub type_: Vec<CodeableConcept>,
    /// Who or where.
    pub actor: Reference,
    /// `required`.
    pub required: &'static str,
    /// `accepted`.
    pub status: &'static str,
}

/// `Appointment`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Appointment {
    /// Always `Appointment`.
    pub resource_type: &'static str,
    /// Logical id (the appointment's id).
    pub id: String,
    /// Arrive-by time, recovery chair.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<SchedulingExtension>,
    /// `booked`, `arrived`, `noshow`, `cancelled`.
    pub status: &'static str,
    /// The procedure (CPT).
    pub service_type: Vec<CodeableConcept>,
    /// Interventional radiology.
    pub specialty: Vec<CodeableConcept>,
    /// Routine.
    pub appointment_type: CodeableConcept,
    /// The procedure's name.
    pub description: String,
    /// Start, with the site's offset.
    pub start: String,
    /// End, with the site's offset.
    pub end: String,
    /// Length of the procedure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes_duration: Option<i64>,
    /// The busy slots it takes (while booked).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slot: Vec<Reference>,
    /// For staff: arrival, recovery chair.
    pub comment: String,
    /// For the patient: when to arrive.
    pub patient_instruction: String,
    /// The order (`ServiceRequest/{caseId}`).
    pub based_on: Vec<Reference>,
    /// Patient, radiologist, room.
    pub participant: Vec<AppointmentParticipant>,
}

/// `Slot`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Slot {
    /// Always `Slot`.
    pub resource_type: &'static str,
    /// `{schedule}-{epochSeconds}-{status}`.
    pub id: String,
    /// Interventional radiology.
    pub specialty: Vec<CodeableConcept>,
    /// The room's or radiologist's Schedule.
    pub schedule: Reference,
    /// `free`, `busy`, `busy-unavailable`.
    pub status: &'static str,
    /// Start, with the site's offset.
    pub start: String,
    /// End, with the site's offset.
    pub end: String,
    /// What the time is (booked, closed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `Schedule`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Schedule {
    /// Always `Schedule`.
    pub resource_type: &'static str,
    /// `room-{id}` or `radiologist-{userId}`.
    pub id: String,
    /// In use.
    pub active: bool,
    /// Procedures done here or by them (CPT).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_type: Vec<CodeableConcept>,
    /// Interventional radiology.
    pub specialty: Vec<CodeableConcept>,
    /// The room's Location or the radiologist's Practitioner.
    pub actor: Vec<Reference>,
    /// The time slots are offered for.
    pub planning_horizon: Period,
    /// Weekly hours in the site's local time.
    pub comment: String,
}

/// `Location` (a procedure room).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Location {
    /// Always `Location`.
    pub resource_type: &'static str,
    /// `room-{id}`.
    pub id: String,
    /// `active` or `inactive`.
    pub status: &'static str,
    /// The room's name.
    pub name: String,
    /// Kind of room and the site.
    pub description: String,
    /// `instance`.
    pub mode: &'static str,
    /// Radiology unit; its image guidance.
    #[serde(rename = "type")]
    pub type_: Vec<CodeableConcept>,
    /// A room.
    pub physical_type: CodeableConcept,
}

/// The specialty every scheduling resource carries.
pub fn ir_specialty() -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding::new(SNOMED, IR_SPECIALTY.0, Some(IR_SPECIALTY.1))],
        text: Some("Interventional radiology".to_owned()),
    }
}

/// A procedure as a `serviceType`.
pub fn procedure_concept(code: &str, name: &str) -> CodeableConcept {
    CodeableConcept {
        coding: vec![Coding::new(CPT_SYSTEM, code, Some(name))],
        text: Some(name.to_owned()),
    }
}

/// A FHIR `instant`/`dateTime` with the site's offset, to the second.
pub fn local_instant(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

fn local_clock(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%H:%M %Z")
        .to_string()
}

/// A room's Location and Schedule id: `room-{id}`.
pub fn room_id(room: i64) -> String {
    format!("room-{room}")
}

fn positive_id(raw: &str) -> Option<i64> {
    (!raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .filter(|n| *n > 0)
}

/// The room of a Location id (`room-3`), or `None`.
pub fn parse_room_id(raw: &str) -> Option<i64> {
    raw.strip_prefix("room-").and_then(positive_id)
}

/// Whose schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScheduleRef {
    /// A procedure room.
    Room(i64),
    /// A radiologist (user id).
    Radiologist(i64),
}

impl ScheduleRef {
    /// The Schedule's id: `room-1`, `radiologist-4`.
    pub fn id(self) -> String {
        match self {
            ScheduleRef::Room(id) => room_id(id),
            ScheduleRef::Radiologist(id) => format!("radiologist-{id}"),
        }
    }

    /// A Schedule id, bare or as a reference (`Schedule/room-1`).
    pub fn parse(raw: &str) -> Option<Self> {
        let id = raw.strip_prefix("Schedule/").unwrap_or(raw);
        if let Some(room) = parse_room_id(id) {
            return Some(ScheduleRef::Room(room));
        }
        id.strip_prefix("radiologist-")
            .and_then(positive_id)
            .map(ScheduleRef::Radiologist)
    }

    /// The schedule's actor as a reference: `Location/room-1`, `Practitioner/4`.
    pub fn actor_reference(self) -> String {
        match self {
            ScheduleRef::Room(id) => format!("Location/{}", room_id(id)),
            ScheduleRef::Radiologist(id) => format!("Practitioner/{id}"),
        }
    }

    /// The schedule of an actor reference (`Location/room-1`, `Practitioner/4`).
    pub fn from_actor(raw: &str) -> Option<Self> {
        if let Some(loc) = raw.strip_prefix("Location/") {
            return parse_room_id(loc).map(ScheduleRef::Room);
        }
        raw.strip_prefix("Practitioner/")
            .and_then(positive_id)
            .map(ScheduleRef::Radiologist)
    }
}

/// A slot's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SlotStatus {
    /// Open and not taken.
    Free,
    /// Taken by a booking.
    Busy,
    /// Inside the hours but closed (a closure, leave).
    BusyUnavailable,
}

impl SlotStatus {
    /// The FHIR code.
    pub const fn as_str(self) -> &'static str {
        match self {
            SlotStatus::Free => "free",
            SlotStatus::Busy => "busy",
            SlotStatus::BusyUnavailable => "busy-unavailable",
        }
    }

    /// Every status irflow produces.
    pub const ALL: [SlotStatus; 3] = [
        SlotStatus::Free,
        SlotStatus::Busy,
        SlotStatus::BusyUnavailable,
    ];

    /// The status for a FHIR code: `Ok(None)` for a valid code irflow never produces
    /// (`busy-tentative`, `entered-in-error`), `Err` (for people) for anything else.
    pub fn from_code(code: &str) -> Result<Option<Self>, String> {
        match code {
            "free" => Ok(Some(SlotStatus::Free)),
            "busy" => Ok(Some(SlotStatus::Busy)),
            "busy-unavailable" => Ok(Some(SlotStatus::BusyUnavailable)),
            "busy-tentative" | "entered-in-error" => Ok(None),
            other => Err(format!(
                "{other:?} is not a slot status; use free, busy, busy-unavailable, busy-tentative or entered-in-error"
            )),
        }
    }
}

/// A Slot's identity: whose, when it starts, what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotId {
    /// The schedule.
    pub schedule: ScheduleRef,
    /// Start (whole seconds).
    pub start: Timestamp,
    /// Status.
    pub status: SlotStatus,
}

impl SlotId {
    /// The FHIR id: `room-1-1796641200-free` (at most 64 characters).
    pub fn id(&self) -> String {
        format!(
            "{}-{}-{}",
            self.schedule.id(),
            self.start.as_second(),
            self.status.as_str()
        )
    }

    /// Parses an id made by [`SlotId::id`].
    pub fn parse(raw: &str) -> Option<Self> {
        let (rest, status) = SlotStatus::ALL.iter().find_map(|s| {
            raw.strip_suffix(s.as_str())
                .and_then(|r| r.strip_suffix('-'))
                .map(|r| (r, *s))
        })?;
        let (schedule, seconds) = rest.rsplit_once('-')?;
        let seconds = positive_id(seconds)?;
        let start = Timestamp::from_second(seconds).ok()?;
        Some(SlotId {
            schedule: ScheduleRef::parse(schedule)?,
            start,
            status,
        })
    }
}

/// A piece of a resource's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSpan {
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Free, booked or closed.
    pub status: SlotStatus,
}

/// Sorted, non-empty, with overlapping or touching intervals merged.
fn normalise(mut v: Vec<Interval>) -> Vec<Interval> {
    v.retain(|i| i.start < i.end);
    v.sort();
    let mut out: Vec<Interval> = Vec::with_capacity(v.len());
    for i in v {
        match out.last_mut() {
            Some(last) if i.start <= last.end => last.end = last.end.max(i.end),
            _ => out.push(i),
        }
    }
    out
}

/// `a` without `b` (both normalised).
fn subtract(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for i in a {
        let mut start = i.start;
        for cut in b.iter().filter(|c| c.overlaps(i)) {
            if cut.start > start {
                out.push(Interval {
                    start,
                    end: cut.start,
                });
            }
            start = start.max(cut.end);
        }
        if start < i.end {
            out.push(Interval { start, end: i.end });
        }
    }
    out
}

/// Where `a` and `b` overlap (both normalised).
fn intersect(a: &[Interval], b: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::new();
    for i in a {
        for j in b.iter().filter(|j| j.overlaps(i)) {
            out.push(Interval {
                start: i.start.max(j.start),
                end: i.end.min(j.end),
            });
        }
    }
    normalise(out)
}

/// A resource's time on the local dates `first..=last`: one free slot per contiguous
/// free stretch of its weekly hours, one busy-unavailable slot per closed stretch
/// inside them (`busy` holds bookings and closures, as the busy index does), and one
/// busy slot per booking that starts on those dates (`booked`; shown even outside
/// the hours). Earliest first.
pub fn slot_spans(
    windows: &[WeeklyWindow],
    tz: &TimeZone,
    first: Date,
    last: Date,
    busy: &[Interval],
    booked: &[Interval],
) -> Vec<SlotSpan> {
    let mut open = Vec::new();
    let mut date = first;
    while date <= last {
        open.extend(windows.iter().filter_map(|w| w.on(date, tz)));
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    let open = normalise(open);
    let bookings = normalise(booked.to_vec());
    let closed = subtract(&intersect(&open, &normalise(busy.to_vec())), &bookings);
    let taken = normalise(busy.iter().chain(booked).copied().collect());
    let mut out: Vec<SlotSpan> = subtract(&open, &taken)
        .into_iter()
        .map(|i| (i, SlotStatus::Free))
        .chain(closed.into_iter().map(|i| (i, SlotStatus::BusyUnavailable)))
        .map(|(i, status)| SlotSpan {
            start: i.start,
            end: i.end,
            status,
        })
        .collect();
    let mut own: Vec<Interval> = booked
        .iter()
        .filter(|b| b.start < b.end)
        .filter(|b| {
            let d = b.start.to_zoned_datetime(tz.clone()).date();
            first <= d && d <= last
        })
        .copied()
        .collect();
    own.sort();
    own.dedup_by_key(|b| b.start);
    out.extend(own.into_iter().map(|b| SlotSpan {
        start: b.start,
        end: b.end,
        status: SlotStatus::Busy,
    }));
    out.sort_by_key(|s| (s.start, s.status));
    out
}

/// Instants `[from, to)` selected by FHIR date search values, narrowed value by value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstantRange {
    /// At or after (inclusive).
    pub from: Option<Timestamp>,
    /// Before (exclusive).
    pub to: Option<Timestamp>,
}

fn start_of(date: Date, tz: &TimeZone) -> Option<Timestamp> {
    date.to_zoned_datetime(tz.clone())
        .ok()
        .map(|z| z.timestamp())
}

fn in_years(date: Date) -> Option<Date> {
    YEARS.contains(&date.year()).then_some(date)
}

/// The instants a search value covers at its precision: a day, a month or a year in
/// the site's zone, or one second.
fn value_range(value: &str, tz: &TimeZone) -> Option<(Timestamp, Timestamp)> {
    // A `+` in an unencoded query arrives as a space.
    let value = value.trim().replace(' ', "+");
    let (first, next) = match value.len() {
        4 => {
            let d = in_years(format!("{value}-01-01").parse::<Date>().ok()?)?;
            (d, d.checked_add(Span::new().years(1)).ok()?)
        }
        7 => {
            let d = in_years(format!("{value}-01").parse::<Date>().ok()?)?;
            (d, d.checked_add(Span::new().months(1)).ok()?)
        }
        10 => {
            let d = in_years(value.parse::<Date>().ok()?)?;
            (d, d.tomorrow().ok()?)
        }
        _ if value.contains('T') => {
            let at = match value.parse::<Timestamp>() {
                Ok(t) => t,
                Err(_) => value
                    .parse::<DateTime>()
                    .ok()?
                    .to_zoned_datetime(tz.clone())
                    .ok()?
                    .timestamp(),
            };
            in_years(at.to_zoned_datetime(tz.clone()).date())?;
            return Some((at, at.checked_add(SignedDuration::from_secs(1)).ok()?));
        }
        _ => return None,
    };
    Some((start_of(first, tz)?, start_of(next, tz)?))
}

impl InstantRange {
    /// Narrows by one value such as `ge2026-12-07`, `lt2026-12-09`,
    /// `2026-12-07` (that whole day at the site) or `gt2026-12-07T09:00:00-05:00`.
    /// The error says what is wrong, for people.
    pub fn narrow(&mut self, raw: &str, tz: &TimeZone) -> Result<(), String> {
        let (prefix, value) = match raw.get(..2) {
            Some(p @ ("eq" | "ne" | "gt" | "lt" | "ge" | "le" | "sa" | "eb" | "ap")) => {
                (p, raw.get(2..).unwrap_or(""))
            }
            _ => ("eq", raw),
        };
        let (start, end) = value_range(value, tz).ok_or_else(|| {
            format!(
                "{raw:?} is not a date (2026-12-07) or a time with its offset \
                 (2026-12-07T09:00:00-05:00) between the years 1900 and 2199, \
                 optionally after ge, gt, le, lt or eq"
            )
        })?;
        let (from, to) = match prefix {
            "eq" => (Some(start), Some(end)),
            "ge" => (Some(start), None),
            "gt" => (Some(end), None),
            "le" => (None, Some(end)),
            "lt" => (None, Some(start)),
            other => {
                return Err(format!(
                    "the prefix {other:?} is not supported; use ge, gt, le, lt or eq"
                ));
            }
        };
        if let Some(f) = from {
            self.from = Some(self.from.map_or(f, |old| old.max(f)));
        }
        if let Some(t) = to {
            self.to = Some(self.to.map_or(t, |old| old.min(t)));
        }
        Ok(())
    }
}

/// What the server knows of an appointment, for its Appointment.
#[derive(Debug, Clone)]
pub struct AppointmentView {
    /// Id.
    pub id: i64,
    /// The case (its ServiceRequest).
    pub case_id: i64,
    /// `booked`, `arrived`, `no_show` or `cancelled` (irflow's words).
    pub state: String,
    /// Start.
    pub start: Timestamp,
    /// End.
    pub end: Timestamp,
    /// Patient id.
    pub patient_id: i64,
    /// Patient's name for display.
    pub patient_display: String,
    /// Radiologist's user id.
    pub radiologist_id: i64,
    /// Radiologist's name.
    pub radiologist_display: String,
    /// Room id.
    pub room_id: i64,
    /// Room name.
    pub room_display: String,
    /// CPT code.
    pub procedure_code: String,
    /// Procedure name.
    pub procedure_name: String,
    /// The recovery chair, if reserved.
    pub chair: Option<ChairView>,
    /// How long before the start the patient arrives.
    pub arrive_minutes_before: i64,
}

/// A reserved recovery chair.
#[derive(Debug, Clone)]
pub struct ChairView {
    /// Its name.
    pub name: String,
    /// From.
    pub start: Timestamp,
    /// Until.
    pub end: Timestamp,
}

/// The FHIR `Appointment.status` for irflow's appointment state.
pub fn appointment_status(state: &str) -> &'static str {
    match state {
        "arrived" => "arrived",
        "no_show" => "noshow",
        "cancelled" => "cancelled",
        _ => "booked",
    }
}

/// Every `Appointment.status` code of FHIR R4.
pub const APPOINTMENT_STATUSES: [&str; 10] = [
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
];

fn reference(reference: String, display: &str) -> Reference {
    Reference {
        reference: Some(reference),
        display: Some(display.to_owned()),
        ..Reference::default()
    }
}

fn participant(actor: Reference, type_: Vec<CodeableConcept>) -> AppointmentParticipant {
    AppointmentParticipant {
        type_,
        actor,
        required: "required",
        status: "accepted",
    }
}

/// An Appointment resource; times with the zone's offset.
pub fn appointment(a: &AppointmentView, tz: &TimeZone) -> Appointment {
    let status = appointment_status(&a.state);
    let arrive = a.start - SignedDuration::from_mins(a.arrive_minutes_before);
    let mut extension = vec![SchedulingExtension {
        value_date_time: Some(local_instant(arrive, tz)),
        ..SchedulingExtension::empty(EXT_ARRIVE_BY)
    }];
    let mut comment = format!(
        "Arrive by {} ({} minutes before the start) to check in.",
        local_clock(arrive, tz),
        a.arrive_minutes_before
    );
    let mut patient_instruction = format!(
        "Please arrive at {} on {} to check in, {} minutes before your appointment.",
        arrive
            .to_zoned_datetime(tz.clone())
            .strftime("%-I:%M %p %Z"),
        arrive
            .to_zoned_datetime(tz.clone())
            .strftime("%A, %B %-d, %Y"),
        a.arrive_minutes_before
    );
    if let Some(chair) = &a.chair {
        extension.push(SchedulingExtension {
            extension: vec![
                SchedulingExtension {
                    value_string: Some(chair.name.clone()),
                    ..SchedulingExtension::empty("chair")
                },
                SchedulingExtension {
                    value_period: Some(Period {
                        start: Some(local_instant(chair.start, tz)),
                        end: Some(local_instant(chair.end, tz)),
                    }),
                    ..SchedulingExtension::empty("period")
                },
            ],
            ..SchedulingExtension::empty(EXT_RECOVERY_CHAIR)
        });
        comment.push_str(&format!(
            " {} reserved {}-{} for monitoring after the procedure.",
            chair.name,
            local_clock(chair.start, tz),
            local_clock(chair.end, tz)
        ));
        let minutes = (chair.end - chair.start).as_mins();
        patient_instruction.push_str(&format!(
            " Plan to stay about {minutes} minutes after the procedure so that we can monitor you."
        ));
    }
    let minutes = (a.end - a.start).as_mins();
    let slot = if matches!(status, "booked" | "arrived") {
        [
            ScheduleRef::Room(a.room_id),
            ScheduleRef::Radiologist(a.radiologist_id),
        ]
        .into_iter()
        .map(|schedule| Reference {
            reference: Some(format!(
                "Slot/{}",
                SlotId {
                    schedule,
                    start: a.start,
                    status: SlotStatus::Busy,
                }
                .id()
            )),
            ..Reference::default()
        })
        .collect()
    } else {
        Vec::new()
    };
    Appointment {
        resource_type: "Appointment",
        id: a.id.to_string(),
        extension,
        status,
        service_type: vec![procedure_concept(&a.procedure_code, &a.procedure_name)],
        specialty: vec![ir_specialty()],
        appointment_type: CodeableConcept {
            coding: vec![Coding::new(
                V2_0276,
                "ROUTINE",
                Some("Routine appointment - default if not valued"),
            )],
            text: None,
        },
        description: a.procedure_name.clone(),
        start: local_instant(a.start, tz),
        end: local_instant(a.end, tz),
        minutes_duration: (minutes > 0).then_some(minutes),
        slot,
        comment,
        patient_instruction,
        based_on: vec![Reference {
            reference: Some(format!("ServiceRequest/{}", a.case_id)),
            ..Reference::default()
        }],
        participant: vec![
            participant(
                reference(format!("Patient/{}", a.patient_id), &a.patient_display),
                Vec::new(),
            ),
            participant(
                reference(
                    format!("Practitioner/{}", a.radiologist_id),
                    &a.radiologist_display,
                ),
                vec![CodeableConcept {
                    coding: vec![Coding::new(
                        V3_PARTICIPATION_TYPE,
                        "PPRF",
                        Some("primary performer"),
                    )],
                    text: None,
                }],
            ),
            participant(
                reference(format!("Location/{}", room_id(a.room_id)), &a.room_display),
                Vec::new(),
            ),
        ],
    }
}

/// What the server knows of a slot, for its Slot.
#[derive(Debug, Clone)]
pub struct SlotView {
    /// Whose, when, what.
    pub id: SlotId,
    /// End.
    pub end: Timestamp,
    /// The schedule's actor, for display.
    pub schedule_display: String,
    /// What the time is, for people.
    pub comment: Option<String>,
}

/// A Slot resource.
pub fn slot(s: &SlotView, tz: &TimeZone) -> Slot {
    Slot {
        resource_type: "Slot",
        id: s.id.id(),
        specialty: vec![ir_specialty()],
        schedule: reference(
            format!("Schedule/{}", s.id.schedule.id()),
            &s.schedule_display,
        ),
        status: s.id.status.as_str(),
        start: local_instant(s.id.start, tz),
        end: local_instant(s.end, tz),
        comment: s.comment.clone(),
    }
}

/// What the server knows of a schedule, for its Schedule.
#[derive(Debug, Clone)]
pub struct ScheduleView {
    /// Whose.
    pub schedule: ScheduleRef,
    /// The room's or radiologist's name.
    pub actor_display: String,
    /// Procedures (CPT code, name).
    pub services: Vec<(String, String)>,
    /// Weekly hours in local civil time.
    pub windows: Vec<WeeklyWindow>,
    /// Slots are offered from.
    pub horizon_start: Timestamp,
    /// Until.
    pub horizon_end: Timestamp,
}

fn weekday_short(w: Weekday) -> &'static str {
    match w {
        Weekday::Monday => "Mon",
        Weekday::Tuesday => "Tue",
        Weekday::Wednesday => "Wed",
        Weekday::Thursday => "Thu",
        Weekday::Friday => "Fri",
        Weekday::Saturday => "Sat",
        Weekday::Sunday => "Sun",
    }
}

/// "Weekly hours in local time (America/New_York): Mon 08:00-16:00; ...".
pub fn weekly_hours(windows: &[WeeklyWindow], tz: &TimeZone) -> String {
    let mut ws = windows.to_vec();
    ws.sort_by_key(|w| (w.weekday.to_monday_one_offset(), w.start, w.end));
    let hours: Vec<String> = ws
        .iter()
        .map(|w| {
            format!(
                "{} {}-{}",
                weekday_short(w.weekday),
                w.start.strftime("%H:%M"),
                w.end.strftime("%H:%M")
            )
        })
        .collect();
    let zone = tz.iana_name().unwrap_or("site time");
    if hours.is_empty() {
        format!("No weekly hours set (local time, {zone}).")
    } else {
        format!("Weekly hours in local time ({zone}): {}.", hours.join("; "))
    }
}

/// A Schedule resource.
pub fn schedule(s: &ScheduleView, tz: &TimeZone) -> Schedule {
    Schedule {
        resource_type: "Schedule",
        id: s.schedule.id(),
        active: true,
        service_type: s
            .services
            .iter()
            .map(|(code, name)| procedure_concept(code, name))
            .collect(),
        specialty: vec![ir_specialty()],
        actor: vec![reference(s.schedule.actor_reference(), &s.actor_display)],
        planning_horizon: Period {
            start: Some(local_instant(s.horizon_start, tz)),
            end: Some(local_instant(s.horizon_end, tz)),
        },
        comment: weekly_hours(&s.windows, tz),
    }
}

/// What the server knows of a room, for its Location.
#[derive(Debug, Clone)]
pub struct LocationView {
    /// Room id.
    pub room: i64,
    /// Name.
    pub name: String,
    /// Image guidance.
    pub modality: Modality,
    /// The site's name.
    pub site_name: String,
    /// In use.
    pub active: bool,
}

/// A Location resource for a procedure room.
pub fn location(l: &LocationView) -> Location {
    let (dicom, dicom_display) = match l.modality {
        Modality::Fluoroscopy => ("RF", "Radio Fluoroscopy"),
        Modality::Ct => ("CT", "Computed Tomography"),
    };
    Location {
        resource_type: "Location",
        id: room_id(l.room),
        status: if l.active { "active" } else { "inactive" },
        name: l.name.clone(),
        description: format!("{} procedure room, {}", l.modality.label(), l.site_name),
        mode: "instance",
        type_: vec![
            CodeableConcept {
                coding: vec![Coding::new(
                    V3_ROLE_CODE,
                    "RADDX",
                    Some("Radiology diagnostics or therapeutics unit"),
                )],
                text: Some("Interventional radiology procedure room".to_owned()),
            },
            CodeableConcept {
                coding: vec![Coding::new(DICOM_DCM, dicom, Some(dicom_display))],
                text: Some(l.modality.label().to_owned()),
            },
        ],
        physical_type: CodeableConcept {
            coding: vec![Coding::new(LOCATION_PHYSICAL_TYPE, "ro", Some("Room"))],
            text: None,
        },
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use jiff::civil::{date, time};

    use super::*;

    fn ny() -> TimeZone {
        TimeZone::get("America/New_York").unwrap()
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn weekdays_8_to_4() -> Vec<WeeklyWindow> {
        [
            Weekday::Monday,
            Weekday::Tuesday,
            Weekday::Wednesday,
            Weekday::Thursday,
            Weekday::Friday,
        ]
        .into_iter()
        .map(|weekday| WeeklyWindow {
            weekday,
            start: time(8, 0, 0, 0),
            end: time(16, 0, 0, 0),
        })
        .collect()
    }

    fn shown(spans: &[SlotSpan], tz: &TimeZone) -> Vec<String> {
        spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}",
                    local_instant(s.start, tz),
                    local_instant(s.end, tz),
                    s.status.as_str()
                )
            })
            .collect()
    }

    #[test]
    fn ids_round_trip_and_refuse_junk() {
        for schedule in [ScheduleRef::Room(1), ScheduleRef::Radiologist(42)] {
            assert_eq!(ScheduleRef::parse(&schedule.id()), Some(schedule));
            assert_eq!(
                ScheduleRef::parse(&format!("Schedule/{}", schedule.id())),
                Some(schedule)
            );
            assert_eq!(
                ScheduleRef::from_actor(&schedule.actor_reference()),
                Some(schedule)
            );
            for status in SlotStatus::ALL {
                let id = SlotId {
                    schedule,
                    start: at("2026-12-07T14:00:00Z"),
                    status,
                };
                let text = id.id();
                assert!(text.len() <= 64);
                assert!(
                    text.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                );
                assert_eq!(SlotId::parse(&text), Some(id), "{text}");
            }
        }
        assert_eq!(
            SlotId {
                schedule: ScheduleRef::Room(1),
                start: at("2026-12-07T14:00:00Z"),
                status: SlotStatus::BusyUnavailable
            }
            .id(),
            "room-1-1796652000-busy-unavailable"
        );
        for junk in [
            "",
            "room-1",
            "room-1-x-free",
            "room--1-1796652000-free",
            "room-0-1796652000-free",
            "room-1-1796652000-open",
            "ward-1-1796652000-free",
            "room-1-+1796652000-free",
            "room-1-99999999999999999999-free",
        ] {
            assert_eq!(SlotId::parse(junk), None, "{junk}");
        }
        assert_eq!(ScheduleRef::parse("Schedule/room-x"), None);
        assert_eq!(ScheduleRef::from_actor("Patient/1"), None);
        assert_eq!(ScheduleRef::from_actor("Location/1"), None);
        assert_eq!(parse_room_id("room-7"), Some(7));
    }

    #[test]
    fn date_values_are_local_days_or_instants() {
        let tz = ny();
        let mut r = InstantRange::default();
        r.narrow("ge2026-12-07", &tz).unwrap();
        r.narrow("lt2026-12-09", &tz).unwrap();
        assert_eq!(r.from, Some(at("2026-12-07T05:00:00Z")));
        assert_eq!(r.to, Some(at("2026-12-09T05:00:00Z")));
        // A bare date is that whole day at the site; gt and le take its end.
        let mut r = InstantRange::default();
        r.narrow("2026-11-01", &tz).unwrap();
        assert_eq!(r.from, Some(at("2026-11-01T04:00:00Z")));
        assert_eq!(r.to, Some(at("2026-11-02T05:00:00Z")), "a 25-hour day");
        let mut r = InstantRange::default();
        r.narrow("gt2027-03-13", &tz).unwrap();
        r.narrow("le2027-03-14", &tz).unwrap();
        assert_eq!(r.from, Some(at("2027-03-14T05:00:00Z")));
        assert_eq!(r.to, Some(at("2027-03-15T04:00:00Z")), "a 23-hour day");
        // Instants, with the offset's + sent unencoded.
        let mut r = InstantRange::default();
        r.narrow("ge2026-12-07T09:00:00 01:00", &tz).unwrap();
        r.narrow("lt2026-12-07T12:00:00Z", &tz).unwrap();
        assert_eq!(r.from, Some(at("2026-12-07T08:00:00Z")));
        assert_eq!(r.to, Some(at("2026-12-07T12:00:00Z")));
        // Narrowing keeps the tighter bound; months and years work.
        let mut r = InstantRange::default();
        r.narrow("ge2026", &tz).unwrap();
        r.narrow("ge2026-12", &tz).unwrap();
        r.narrow("lt2027", &tz).unwrap();
        assert_eq!(r.from, Some(at("2026-12-01T05:00:00Z")));
        assert_eq!(r.to, Some(at("2027-01-01T05:00:00Z")));
        for bad in [
            "tomorrow",
            "ge2026-13-01",
            "sa2026-12-07",
            "ne2026-12-07",
            "ge9999-01-01",
            "2026-12-7",
            "ge",
        ] {
            let e = InstantRange::default().narrow(bad, &tz).unwrap_err();
            assert!(!e.is_empty(), "{bad}");
        }
    }

    #[test]
    fn a_day_is_cut_into_free_booked_and_closed_slots() {
        let tz = ny();
        let day = date(2026, 12, 7);
        let booking = Interval {
            start: at("2026-12-07T09:00:00-05:00"),
            end: at("2026-12-07T09:30:00-05:00"),
        };
        let closure = Interval {
            start: at("2026-12-07T12:00:00-05:00"),
            end: at("2026-12-07T13:00:00-05:00"),
        };
        let spans = slot_spans(
            &weekdays_8_to_4(),
            &tz,
            day,
            day,
            &[booking, closure],
            &[booking],
        );
        assert_eq!(
            shown(&spans, &tz),
            [
                "2026-12-07T08:00:00-05:00 2026-12-07T09:00:00-05:00 free",
                "2026-12-07T09:00:00-05:00 2026-12-07T09:30:00-05:00 busy",
                "2026-12-07T09:30:00-05:00 2026-12-07T12:00:00-05:00 free",
                "2026-12-07T12:00:00-05:00 2026-12-07T13:00:00-05:00 busy-unavailable",
                "2026-12-07T13:00:00-05:00 2026-12-07T16:00:00-05:00 free",
            ]
        );
        // A closure longer than the day only closes the hours; a booking outside
        // the hours is still shown.
        let late = Interval {
            start: at("2026-12-08T17:00:00-05:00"),
            end: at("2026-12-08T17:20:00-05:00"),
        };
        let all_week = Interval {
            start: at("2026-12-08T00:00:00-05:00"),
            end: at("2026-12-10T00:00:00-05:00"),
        };
        let spans = slot_spans(
            &weekdays_8_to_4(),
            &tz,
            date(2026, 12, 8),
            date(2026, 12, 9),
            &[all_week, late],
            &[late],
        );
        assert_eq!(
            shown(&spans, &tz),
            [
                "2026-12-08T08:00:00-05:00 2026-12-08T16:00:00-05:00 busy-unavailable",
                "2026-12-08T17:00:00-05:00 2026-12-08T17:20:00-05:00 busy",
                "2026-12-09T08:00:00-05:00 2026-12-09T16:00:00-05:00 busy-unavailable",
            ]
        );
    }

    #[test]
    fn hours_keep_the_wall_clock_across_daylight_saving_changes() {
        let tz = ny();
        let every_day: Vec<WeeklyWindow> = [
            Weekday::Saturday,
            Weekday::Sunday,
            Weekday::Monday,
            Weekday::Friday,
        ]
        .into_iter()
        .map(|weekday| WeeklyWindow {
            weekday,
            start: time(1, 30, 0, 0),
            end: time(4, 0, 0, 0),
        })
        .collect();
        // Spring forward: 02:00 does not exist on 2027-03-14; 01:30-04:00 is 1.5 hours.
        let spans = slot_spans(
            &every_day,
            &tz,
            date(2027, 3, 13),
            date(2027, 3, 15),
            &[],
            &[],
        );
        assert_eq!(
            shown(&spans, &tz),
            [
                "2027-03-13T01:30:00-05:00 2027-03-13T04:00:00-05:00 free",
                "2027-03-14T01:30:00-05:00 2027-03-14T04:00:00-04:00 free",
                "2027-03-15T01:30:00-04:00 2027-03-15T04:00:00-04:00 free",
            ]
        );
        assert_eq!(spans[1].end - spans[1].start, SignedDuration::from_mins(90));
        // Fall back: 01:30 happens twice on 2026-11-01; the window opens at the first.
        let spans = slot_spans(
            &every_day,
            &tz,
            date(2026, 10, 31),
            date(2026, 11, 2),
            &[],
            &[],
        );
        assert_eq!(
            shown(&spans, &tz),
            [
                "2026-10-31T01:30:00-04:00 2026-10-31T04:00:00-04:00 free",
                "2026-11-01T01:30:00-04:00 2026-11-01T04:00:00-05:00 free",
                "2026-11-02T01:30:00-05:00 2026-11-02T04:00:00-05:00 free",
            ]
        );
        assert_eq!(
            spans[1].end - spans[1].start,
            SignedDuration::from_mins(210)
        );
    }

    #[test]
    fn an_appointment_renders_participants_times_and_instructions() {
        let tz = ny();
        let view = AppointmentView {
            id: 9,
            case_id: 12,
            state: "no_show".into(),
            start: at("2026-12-07T10:00:00-05:00"),
            end: at("2026-12-07T10:20:00-05:00"),
            patient_id: 5,
            patient_display: "Doe, Jane".into(),
            radiologist_id: 4,
            radiologist_display: "Dr. Rachel Kim".into(),
            room_id: 1,
            room_display: "Fluoro 1".into(),
            procedure_code: "64483".into(),
            procedure_name: "Lumbar TFESI".into(),
            chair: Some(ChairView {
                name: "Recovery chair 2".into(),
                start: at("2026-12-07T10:20:00-05:00"),
                end: at("2026-12-07T11:20:00-05:00"),
            }),
            arrive_minutes_before: 15,
        };
        let json = serde_json::to_value(appointment(&view, &tz)).unwrap();
        assert_eq!(json["status"], "noshow");
        assert_eq!(json["start"], "2026-12-07T10:00:00-05:00");
        assert_eq!(json["end"], "2026-12-07T10:20:00-05:00");
        assert_eq!(json["minutesDuration"], 20);
        assert_eq!(json["basedOn"][0]["reference"], "ServiceRequest/12");
        assert_eq!(json["participant"][0]["actor"]["reference"], "Patient/5");
        assert_eq!(json["participant"][0]["actor"]["display"], "Doe, Jane");
        assert_eq!(
            json["participant"][1]["actor"]["reference"],
            "Practitioner/4"
        );
        assert_eq!(
            json["participant"][2]["actor"]["reference"],
            "Location/room-1"
        );
        assert_eq!(json["serviceType"][0]["coding"][0]["code"], "64483");
        assert_eq!(
            json["extension"][0]["valueDateTime"],
            "2026-12-07T09:45:00-05:00"
        );
        assert_eq!(
            json["extension"][1]["extension"][1]["valuePeriod"]["end"],
            "2026-12-07T11:20:00-05:00"
        );
        assert!(json.get("slot").is_none(), "a no-show holds no slots");
        let instruction = json["patientInstruction"].as_str().unwrap();
        assert!(
            instruction.contains("9:45 AM EST on Monday, December 7, 2026"),
            "{instruction}"
        );
        assert!(instruction.contains("about 60 minutes"), "{instruction}");
        assert!(
            json["comment"]
                .as_str()
                .unwrap()
                .contains("Recovery chair 2")
        );

        let booked = AppointmentView {
            state: "booked".into(),
            chair: None,
            ..view
        };
        let json = serde_json::to_value(appointment(&booked, &tz)).unwrap();
        assert_eq!(json["status"], "booked");
        assert_eq!(json["slot"][0]["reference"], "Slot/room-1-1796655600-busy");
        assert_eq!(
            json["slot"][1]["reference"],
            "Slot/radiologist-4-1796655600-busy"
        );
        assert_eq!(json["extension"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_schedule_lists_its_weekly_hours_in_local_time() {
        let tz = ny();
        let s = schedule(
            &ScheduleView {
                schedule: ScheduleRef::Radiologist(4),
                actor_display: "Dr. Rachel Kim".into(),
                services: vec![("64483".into(), "Lumbar TFESI".into())],
                windows: weekdays_8_to_4().into_iter().rev().collect(),
                horizon_start: at("2026-12-07T05:00:00Z"),
                horizon_end: at("2027-02-05T05:00:00Z"),
            },
            &tz,
        );
        let json = serde_json::to_value(s).unwrap();
        assert_eq!(json["id"], "radiologist-4");
        assert_eq!(json["actor"][0]["reference"], "Practitioner/4");
        assert_eq!(
            json["comment"],
            "Weekly hours in local time (America/New_York): Mon 08:00-16:00; Tue 08:00-16:00; \
             Wed 08:00-16:00; Thu 08:00-16:00; Fri 08:00-16:00."
        );
        assert_eq!(
            json["planningHorizon"]["start"],
            "2026-12-07T00:00:00-05:00"
        );
        let l = serde_json::to_value(location(&LocationView {
            room: 3,
            name: "CT 1".into(),
            modality: Modality::Ct,
            site_name: "Main Campus IR".into(),
            active: false,
        }))
        .unwrap();
        assert_eq!(l["id"], "room-3");
        assert_eq!(l["status"], "inactive");
        assert_eq!(l["description"], "CT procedure room, Main Campus IR");
        assert_eq!(l["type"][1]["coding"][0]["code"], "CT");
    }
}
