//! The appointment as an iCalendar file (RFC 5545): one `VEVENT` per case, for the
//! staff API and for the patient's "Add to my calendar".
//!
//! Times are written in the site's zone (`DTSTART;TZID=America/New_York:...`) with a
//! `VTIMEZONE` built from the zone's real transitions in jiff's compiled-in tz
//! database, the ones around the appointment, so a calendar that does not know the
//! zone's name still places it right on either side of a daylight-saving change.
//!
//! One calendar event per case, not per appointment row: a move makes a new row, but
//! for the patient it is the same appointment at another time. So the `UID` names the
//! case and the `SEQUENCE` grows with every move or cancellation; importing a newer
//! file updates the event instead of adding a second one, and a cancelled appointment
//! is served with `STATUS:CANCELLED` so that importing it removes it.
//!
//! The file names no patient: calendars sync to phones and other people's screens.

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_domain::{Actor, CaseId};
use irflow_letters::Lang;
use irflow_store::AppointmentRevision;
use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::api::{ApiError, parse_case_id};
use crate::scheduling_api::arrive_by;
use crate::session::{ApiCaller, SignedIn};
use crate::{AppError, AppState};

/// The iCalendar media type we serve.
pub(crate) const CONTENT_TYPE: &str = "text/calendar; charset=utf-8";

/// How long before the start the calendar reminds the patient (the day before).
const ALARM_BEFORE: &str = "-P1D";

/// Everything one event says. Texts are plain (escaped when written).
#[derive(Debug, Clone)]
pub(crate) struct IcsEvent {
    /// Stable across moves: one event per case.
    pub uid: String,
    /// Grows with every change.
    pub sequence: i64,
    /// When this file was made.
    pub stamp: Timestamp,
    /// Start of the procedure.
    pub start: Timestamp,
    /// End of the procedure.
    pub end: Timestamp,
    /// `CANCELLED` instead of `CONFIRMED`.
    pub cancelled: bool,
    /// The plain procedure name.
    pub summary: String,
    /// Department name and address.
    pub location: String,
    /// Arrival time, phone number, what to bring.
    pub description: String,
    /// What the reminder says.
    pub alarm: String,
}

/// Builds the calendar file: CRLF line ends, lines folded at 75 octets, TEXT escaped.
pub(crate) fn appointment_ics(tz: &TimeZone, tz_name: &str, event: &IcsEvent) -> String {
    let mut lines: Vec<String> = vec![
        "BEGIN:VCALENDAR".to_owned(),
        "VERSION:2.0".to_owned(),
        "PRODID:-//irflow//Spine injection service//EN".to_owned(),
        "CALSCALE:GREGORIAN".to_owned(),
        "METHOD:PUBLISH".to_owned(),
    ];
    lines.extend(vtimezone(tz, tz_name, event.start, event.end));
    let tzid = param_value(tz_name);
    lines.extend([
        "BEGIN:VEVENT".to_owned(),
        format!("UID:{}", escape_text(&event.uid)),
        format!("DTSTAMP:{}", utc_stamp(event.stamp)),
        format!("SEQUENCE:{}", event.sequence.max(0)),
        format!("DTSTART;TZID={tzid}:{}", local_stamp(event.start, tz)),
        format!("DTEND;TZID={tzid}:{}", local_stamp(event.end, tz)),
        format!("SUMMARY:{}", escape_text(&event.summary)),
        format!("LOCATION:{}", escape_text(&event.location)),
        format!("DESCRIPTION:{}", escape_text(&event.description)),
        format!(
            "STATUS:{}",
            if event.cancelled {
                "CANCELLED"
            } else {
                "CONFIRMED"
            }
        ),
        "TRANSP:OPAQUE".to_owned(),
        "CLASS:PRIVATE".to_owned(),
    ]);
    if !event.cancelled {
        lines.extend([
            "BEGIN:VALARM".to_owned(),
            "ACTION:DISPLAY".to_owned(),
            format!("TRIGGER;RELATED=START:{ALARM_BEFORE}"),
            format!("DESCRIPTION:{}", escape_text(&event.alarm)),
            "END:VALARM".to_owned(),
        ]);
    }
    lines.extend(["END:VEVENT".to_owned(), "END:VCALENDAR".to_owned()]);
    let mut out = String::new();
    for line in &lines {
        fold_into(&mut out, line);
    }
    out
}

/// The zone's observances around the event: the one in force at the start (and the
/// one before it, so both standard and daylight time are described), and the
/// changes up to a year after the end. A zone without transitions (UTC) gets one
/// standard observance.
fn vtimezone(tz: &TimeZone, tz_name: &str, start: Timestamp, end: Timestamp) -> Vec<String> {
    let mut lines = vec![
        "BEGIN:VTIMEZONE".to_owned(),
        format!("TZID:{}", escape_text(tz_name)),
    ];
    let mut transitions: Vec<(Timestamp, Offset, bool, String)> = tz
        .preceding(start + SignedDuration::from_secs(1))
        .take(2)
        .map(|t| {
            (
                t.timestamp(),
                t.offset(),
                t.dst().is_dst(),
                t.abbreviation().to_owned(),
            )
        })
        .collect();
    transitions.reverse();
    let horizon = end + SignedDuration::from_hours(24 * 366);
    transitions.extend(
        tz.following(start + SignedDuration::from_secs(1))
            .take_while(|t| t.timestamp() <= horizon)
            .take(4)
            .map(|t| {
                (
                    t.timestamp(),
                    t.offset(),
                    t.dst().is_dst(),
                    t.abbreviation().to_owned(),
                )
            }),
    );
    if transitions.is_empty() {
        let info = tz.to_offset_info(start);
        let offset = format_offset(info.offset());
        lines.extend([
            "BEGIN:STANDARD".to_owned(),
            "DTSTART:19700101T000000".to_owned(),
            format!("TZOFFSETFROM:{offset}"),
            format!("TZOFFSETTO:{offset}"),
            format!("TZNAME:{}", escape_text(info.abbreviation())),
            "END:STANDARD".to_owned(),
        ]);
    }
    for (at, to, dst, name) in transitions {
        let from = tz.to_offset(at - SignedDuration::from_nanos(1));
        let kind = if dst { "DAYLIGHT" } else { "STANDARD" };
        lines.extend([
            format!("BEGIN:{kind}"),
            // The onset is written in the local time in force before it (RFC 5545 3.6.5).
            format!("DTSTART:{}", civil_stamp(from.to_datetime(at))),
            format!("TZOFFSETFROM:{}", format_offset(from)),
            format!("TZOFFSETTO:{}", format_offset(to)),
            format!("TZNAME:{}", escape_text(&name)),
            format!("END:{kind}"),
        ]);
    }
    lines.push("END:VTIMEZONE".to_owned());
    lines
}

fn civil_stamp(dt: DateTime) -> String {
    dt.strftime("%Y%m%dT%H%M%S").to_string()
}

fn local_stamp(t: Timestamp, tz: &TimeZone) -> String {
    civil_stamp(t.to_zoned_datetime(tz.clone()).datetime())
}

fn utc_stamp(t: Timestamp) -> String {
    t.strftime("%Y%m%dT%H%M%SZ").to_string()
}

/// `-0500`, or `+053000` when the offset has seconds.
fn format_offset(offset: Offset) -> String {
    let total = offset.seconds();
    let sign = if total < 0 { '-' } else { '+' };
    let abs = total.unsigned_abs();
    let (h, m, s) = (abs / 3600, (abs % 3600) / 60, abs % 60);
    if s == 0 {
        format!("{sign}{h:02}{m:02}")
    } else {
        format!("{sign}{h:02}{m:02}{s:02}")
    }
}

/// TEXT escaping (RFC 5545 3.3.11): backslash, semicolon, comma and newlines.
pub(crate) fn escape_text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            ';' => out.push_str("\\;"),
            ',' => out.push_str("\\,"),
            '\n' => out.push_str("\\n"),
            '\r' => {}
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// A parameter value: quoted when it holds `:`, `;` or `,`; quotes cannot appear.
fn param_value(s: &str) -> String {
    let clean: String = s.chars().filter(|c| *c != '"' && !c.is_control()).collect();
    if clean.contains([':', ';', ',']) {
        format!("\"{clean}\"")
    } else {
        clean
    }
}

/// Appends one content line folded at 75 octets (continuations start with a space),
/// never splitting a UTF-8 character, ended by CRLF.
fn fold_into(out: &mut String, line: &str) {
    let mut width = 0;
    for ch in line.chars() {
        let len = ch.len_utf8();
        if width + len > 75 {
            out.push_str("\r\n ");
            width = 1;
        }
        out.push(ch);
        width += len;
    }
    out.push_str("\r\n");
}

/// Words of the file in the patient's language (English or Spanish).
struct IcsWords {
    arrive: &'static str,
    call: &'static str,
    bring: &'static str,
    on_file: &'static str,
    alarm: &'static str,
}

const EN: IcsWords = IcsWords {
    arrive: "Please arrive by {arrive} to check in ({minutes} minutes before your {start} appointment).",
    call: "Questions, or to change or cancel: call {phone}.",
    bring: "Bring your most recent MRI or CT of the spine.",
    on_file: "We already have your latest MRI or CT of the spine. You do not need to bring it.",
    alarm: "Tomorrow: {summary} at {start}. Arrive by {arrive}.",
};

const ES: IcsWords = IcsWords {
    arrive: "Llegue a las {arrive} para registrarse ({minutes} minutos antes de su cita de las {start}).",
    call: "Si tiene preguntas, o para cambiar o cancelar la cita: llame al {phone}.",
    bring: "Traiga su resonancia magnética (MRI) o tomografía (CT) de la columna más reciente.",
    on_file: "Ya tenemos su resonancia magnética (MRI) o tomografía (CT) más reciente de la columna. No necesita traerla.",
    alarm: "Mañana: {summary} a las {start}. Llegue a las {arrive}.",
};

/// A clock time for patients: `9:00 AM`, or `9:00 a. m.` in Spanish.
pub(crate) fn clock(t: Timestamp, tz: &TimeZone, spanish: bool) -> String {
    let z = t.to_zoned_datetime(tz.clone());
    if spanish {
        let suffix = if z.hour() < 12 { "a. m." } else { "p. m." };
        format!("{} {suffix}", z.strftime("%-I:%M"))
    } else {
        z.strftime("%-I:%M %p").to_string()
    }
}

/// Puts `value` in place of `{key}` in `template`; a value that ends a sentence
/// itself ("8:00 a. m.") takes the place of the sentence's own period too.
fn put(template: &str, key: &str, value: &str) -> String {
    let placeholder = format!("{{{key}}}");
    let out = if value.ends_with('.') {
        template.replace(&format!("{placeholder}."), value)
    } else {
        template.to_owned()
    };
    out.replace(&placeholder, value)
}

/// The event for a case's latest appointment, in the patient's language
/// (`es` for Spanish, anything else English): the procedure named as in the
/// patient's letters, and "bring your scan" only when the letters say it too
/// (an audited read of the imaging on file as `actor`).
pub(crate) async fn event_for(
    state: &AppState,
    actor: &Actor,
    revision: &AppointmentRevision,
    case: &irflow_store::CaseSummary,
    lang: &str,
) -> Result<IcsEvent, AppError> {
    let a = &revision.appointment;
    let tz = state.time_zone();
    let config = state.config();
    let spanish = lang == "es";
    let letter_lang = if spanish { Lang::Es } else { Lang::En };
    let summary = crate::letters::procedure_name(state, &case.procedure_code, letter_lang)
        .await?
        .unwrap_or_else(|| {
            if spanish {
                "Inyección en la columna".to_owned()
            } else {
                "Spine injection".to_owned()
            }
        });
    let imaging_on_file = crate::letters::imaging_on_file_for(state, actor, case).await;
    let words = if spanish { &ES } else { &EN };
    let arrive = arrive_by(state, a.start);
    let fill = |template: &str| {
        let mut out = template.to_owned();
        for (key, value) in [
            ("arrive", clock(arrive, tz, spanish)),
            ("start", clock(a.start, tz, spanish)),
            ("phone", config.department_phone.clone()),
            ("summary", summary.clone()),
            ("minutes", config.arrive_minutes_before.to_string()),
        ] {
            out = put(&out, key, &value);
        }
        out
    };
    let location = match department_address(state) {
        Some(address) => format!("{}, {address}", config.department_name),
        None => config.department_name.clone(),
    };
    Ok(IcsEvent {
        uid: format!("irflow-case-{}-appointment@{}", a.case_id, uid_host(state)),
        sequence: revision.sequence,
        stamp: Timestamp::now(),
        start: a.start,
        end: a.end,
        cancelled: a.status == "cancelled",
        summary: summary.clone(),
        location,
        description: format!(
            "{}\n{}\n{}\n{}",
            fill(words.arrive),
            fill(if imaging_on_file {
                words.on_file
            } else {
                words.bring
            }),
            fill(words.call),
            config.department_name
        ),
        alarm: fill(words.alarm),
    })
}

/// The department's street address, when configured.
fn department_address(state: &AppState) -> Option<String> {
    let address = state.config().department_address.trim();
    (!address.is_empty()).then(|| address.replace('\n', ", "))
}

/// The host named in UIDs: the public URL's, so it does not change with how a
/// client reached us.
fn uid_host(state: &AppState) -> String {
    state
        .config()
        .public_base_url
        .as_deref()
        .and_then(|u| u.split_once("://").map(|(_, rest)| rest))
        .map(|rest| rest.split(['/', ':']).next().unwrap_or(rest).to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "irflow.localhost".to_owned())
}

/// The calendar file of a case's appointment as the actor may see it (audited reads),
/// or 404 when the case was never booked.
pub(crate) async fn ics_response(
    state: &AppState,
    actor: &Actor,
    case_id: CaseId,
    lang: Option<&str>,
) -> Result<Response, AppError> {
    let detail = state
        .store()
        .case_detail(actor, case_id)
        .await
        .map_err(crate::pages::case_error)?;
    let revision = state
        .store()
        .appointment_revision(actor, case_id)
        .await
        .map_err(crate::pages::case_error)?
        .ok_or_else(|| {
            AppError::NotFound(
                "this case has no appointment yet: book one first, then download its calendar file"
                    .to_owned(),
            )
        })?;
    let lang = lang.unwrap_or(&detail.patient.preferred_language);
    let lang = if lang.starts_with("es") { "es" } else { "en" };
    let event = event_for(state, actor, &revision, &detail.case, lang).await?;
    let body = appointment_ics(state.time_zone(), &state.config().time_zone_name, &event);
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, CONTENT_TYPE.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"appointment-{case_id}.ics\""),
            ),
        ],
        body,
    )
        .into_response())
}

/// Query of the calendar endpoints.
#[derive(Debug, Deserialize)]
pub struct IcsQuery {
    lang: Option<String>,
}

fn parse_lang(raw: Option<&str>) -> Result<Option<&'static str>, AppError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some("en") => Ok(Some("en")),
        Some("es") => Ok(Some("es")),
        Some(other) => Err(AppError::BadRequest(format!(
            "lang must be en or es, not {other:?}"
        ))),
    }
}

/// `GET /api/v1/cases/{id}/appointment.ics[?lang=en|es]`: the appointment as an
/// iCalendar file, for any role that may read the case.
pub async fn api_appointment_ics(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    Query(q): Query<IcsQuery>,
) -> Result<Response, ApiError> {
    let id = parse_case_id(&id)?;
    let lang = parse_lang(q.lang.as_deref())?;
    Ok(ics_response(&state, &caller.actor(), id, lang).await?)
}

/// `GET /cases/{id}/appointment.ics`: the same from the case page (signed in).
pub async fn page_appointment_ics(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<IcsQuery>,
) -> Response {
    let result = async {
        let id = parse_case_id(&id)?;
        let lang = parse_lang(q.lang.as_deref())?;
        ics_response(&state, &who.actor(), id, lang).await
    }
    .await;
    match result {
        Ok(r) => r,
        Err(e) => crate::pages::error_page(&state, Some(&who), &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(start: &str, minutes: i64) -> IcsEvent {
        let start: Timestamp = start.parse().unwrap_or_else(|_| unreachable!());
        IcsEvent {
            uid: "irflow-case-7-appointment@example.org".to_owned(),
            sequence: 2,
            stamp: "2026-11-26T12:00:00Z"
                .parse()
                .unwrap_or_else(|_| unreachable!()),
            start,
            end: start + SignedDuration::from_mins(minutes),
            cancelled: false,
            summary: "Spine injection; lower back, left side".to_owned(),
            location: "Spine Injection Service, 55 Fruit Street, Boston, MA 02114".to_owned(),
            description: "Please arrive by 8:45 AM.\nCall 617-726-6773. Ünïcödé ÿ".repeat(3),
            alarm: "Tomorrow".to_owned(),
        }
    }

    fn tz() -> TimeZone {
        TimeZone::get("America/New_York").unwrap_or_else(|_| unreachable!())
    }

    fn unfold(ics: &str) -> String {
        ics.replace("\r\n ", "")
    }

    #[test]
    fn lines_end_in_crlf_and_fold_at_75_octets() {
        let ics = appointment_ics(
            &tz(),
            "America/New_York",
            &event("2027-03-16T13:00:00Z", 20),
        );
        assert!(ics.ends_with("\r\n"));
        assert!(!ics.replace("\r\n", "").contains('\n'), "bare LF");
        for line in ics.split("\r\n") {
            assert!(line.len() <= 75, "{} octets: {line}", line.len());
        }
        assert!(
            ics.split("\r\n").any(|l| l.starts_with(' ')),
            "a long line was folded"
        );
        let unfolded = unfold(&ics);
        assert!(unfolded.contains(
            "DESCRIPTION:Please arrive by 8:45 AM.\\nCall 617-726-6773. Ünïcödé ÿPlease"
        ));
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape_text("a,b;c\\d\ne"), "a\\,b\\;c\\\\d\\ne");
        let ics = unfold(&appointment_ics(
            &tz(),
            "America/New_York",
            &event("2027-03-16T13:00:00Z", 20),
        ));
        assert!(ics.contains("SUMMARY:Spine injection\\; lower back\\, left side\r\n"));
        assert!(ics.contains("LOCATION:Spine Injection Service\\, 55 Fruit Street\\, Boston"));
    }

    #[test]
    fn times_are_local_with_the_zone_across_daylight_saving() {
        // 2027-03-14: clocks go forward in New York; 09:00 EDT is 13:00 UTC.
        let spring = unfold(&appointment_ics(
            &tz(),
            "America/New_York",
            &event("2027-03-16T13:00:00Z", 20),
        ));
        assert!(spring.contains("DTSTART;TZID=America/New_York:20270316T090000\r\n"));
        assert!(spring.contains("DTEND;TZID=America/New_York:20270316T092000\r\n"));
        assert!(spring.contains(
            "BEGIN:DAYLIGHT\r\nDTSTART:20270314T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nTZNAME:EDT\r\nEND:DAYLIGHT"
        ));
        assert!(spring.contains(
            "BEGIN:STANDARD\r\nDTSTART:20271107T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nTZNAME:EST\r\nEND:STANDARD"
        ));
        // After 2027-11-07 09:00 is EST again: 14:00 UTC.
        let autumn = unfold(&appointment_ics(
            &tz(),
            "America/New_York",
            &event("2027-11-09T14:00:00Z", 20),
        ));
        assert!(autumn.contains("DTSTART;TZID=America/New_York:20271109T090000\r\n"));
        assert!(autumn.contains("DTSTAMP:20261126T120000Z\r\n"));
        assert!(autumn.contains("SEQUENCE:2\r\n"));
        assert!(autumn.contains("BEGIN:VALARM\r\nACTION:DISPLAY\r\nTRIGGER;RELATED=START:-P1D"));
    }

    #[test]
    fn a_zone_without_changes_and_a_cancellation() {
        let mut e = event("2027-03-16T13:00:00Z", 20);
        e.cancelled = true;
        let ics = unfold(&appointment_ics(&TimeZone::UTC, "UTC", &e));
        assert!(ics.contains(
            "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0000\r\nTZOFFSETTO:+0000"
        ));
        assert!(ics.contains("DTSTART;TZID=UTC:20270316T130000\r\n"));
        assert!(ics.contains("STATUS:CANCELLED\r\n"));
        assert!(!ics.contains("VALARM"));
        assert_eq!(
            format_offset(Offset::from_seconds(19_800).unwrap_or(Offset::UTC)),
            "+0530"
        );
        assert_eq!(
            format_offset(Offset::from_seconds(-(4 * 3600 + 56 * 60 + 2)).unwrap_or(Offset::UTC)),
            "-045602"
        );
    }
}
