//! Shared presentation helpers: times in the site's zone, ages, labels.

use irflow_domain::{Action, CaseId, CaseState, Role};
use irflow_store::{CaseDetail, CaseSummary, TimelineEntry};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// The days of the week as forms and the API name them: (key, short label, day).
pub(crate) const WEEKDAYS: [(&str, &str, jiff::civil::Weekday); 7] = [
    ("mon", "Mon", jiff::civil::Weekday::Monday),
    ("tue", "Tue", jiff::civil::Weekday::Tuesday),
    ("wed", "Wed", jiff::civil::Weekday::Wednesday),
    ("thu", "Thu", jiff::civil::Weekday::Thursday),
    ("fri", "Fri", jiff::civil::Weekday::Friday),
    ("sat", "Sat", jiff::civil::Weekday::Saturday),
    ("sun", "Sun", jiff::civil::Weekday::Sunday),
];

/// A weekday's key (`mon` ... `sun`).
pub(crate) fn weekday_key(day: jiff::civil::Weekday) -> &'static str {
    WEEKDAYS.iter().find(|d| d.2 == day).map_or("", |d| d.0)
}

/// A weekday from its key, its English name or its ISO number (1 = Monday).
pub(crate) fn parse_weekday(raw: &str) -> Option<jiff::civil::Weekday> {
    let raw = raw.trim().to_ascii_lowercase();
    WEEKDAYS.iter().enumerate().find_map(|(i, d)| {
        (raw == d.0
            || raw == format!("{:?}", d.2).to_ascii_lowercase()
            || raw == (i + 1).to_string())
        .then_some(d.2)
    })
}

/// "2026-11-26 09:14 EST": local to the site, with the zone.
pub fn local_time(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%d %H:%M %Z")
        .to_string()
}

/// RFC 3339 with the site's offset, for machines.
pub fn rfc3339_local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned_datetime(tz.clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// Whole years between a date of birth and a date.
pub fn age_on(date_of_birth: Date, on: Date) -> i16 {
    let mut years = on.year() - date_of_birth.year();
    if (on.month(), on.day()) < (date_of_birth.month(), date_of_birth.day()) {
        years -= 1;
    }
    years
}

/// The actions a role may take on a case in its current state through the generic
/// transition (`POST /api/v1/cases/{id}/transitions`, the case page's buttons).
pub fn actions_for(state: CaseState, role: Role) -> Vec<Action> {
    state
        .available_actions()
        .filter(|a| a.permits(role) && !a.has_own_step())
        .collect()
}

/// The actions a role may take now that have their own step (booking, the procedure
/// day, the follow-up), each with where it is taken: method and API path.
pub fn own_step_actions_for(
    state: CaseState,
    role: Role,
    case: CaseId,
) -> Vec<(Action, &'static str, String)> {
    state
        .available_actions()
        .filter(|a| a.permits(role) && a.has_own_step())
        .filter_map(|a| {
            let (method, tail) = match a {
                Action::Schedule => ("POST", "appointment"),
                Action::Reschedule => ("PUT", "appointment"),
                Action::Unschedule => ("DELETE", "appointment"),
                Action::StartProcedure => ("POST", "start"),
                Action::NotTreated => ("POST", "not-treated"),
                Action::EndProcedure => ("POST", "end"),
                Action::Discharge => ("POST", "discharge"),
                Action::RecordFollowUp => ("POST", "follow-up"),
                _ => return None,
            };
            Some((a, method, format!("/api/v1/cases/{case}/{tail}")))
        })
        .collect()
}

/// A timeline entry's headline: a pathway step's label, or one of the entries the
/// store writes beside the pathway (screenings, patients' answers, records, ...).
pub fn timeline_label(entry: &TimelineEntry) -> String {
    if let Ok(a) = entry.action.parse::<Action>() {
        return a.label().to_owned();
    }
    match entry.action.as_str() {
        "refer" => "Referral received",
        "screen" => "Screening recorded",
        "complete_action" => "Screening action completed",
        "patient_match" => "Patient match decided",
        "change_procedure" => "Procedure changed",
        "imaging_attached" => "Outside imaging attached",
        "patient_confirmed" => "Patient confirmed they will come (patient link)",
        "patient_asked_to_cancel" => "Patient asked to cancel (patient link)",
        "reminders_opted_out" => "Reminders stopped",
        "reminders_opted_in" => "Reminders restarted",
        "sign_procedure_record" => "Procedure record signed",
        "amend_procedure_record" => "Procedure record amended",
        "patient_follow_up" => "Patient answered the follow-up (patient link)",
        other => other,
    }
    .to_owned()
}

/// States in worklist order, open ones first.
pub fn worklist_states() -> impl Iterator<Item = CaseState> {
    CaseState::ALL.into_iter()
}

/// A short one-line summary used in page titles (no more than staff already see).
pub fn case_title(case: &CaseSummary) -> String {
    format!("Case {} · {}", case.id, case.patient_name())
}

/// "Procedure · CPT code · levels · side", as lists show an order.
pub fn order_summary(c: &CaseSummary) -> String {
    let mut p = format!("{} · CPT {}", c.procedure_name, c.procedure_code);
    if let Some(l) = &c.levels {
        p.push_str(&format!(" · {l}"));
    }
    if let Some(s) = c.side {
        p.push_str(&format!(" · {}", s.label().to_lowercase()));
    }
    p
}

/// The patient's age today.
pub fn patient_age(detail: &CaseDetail, today: Date) -> i16 {
    age_on(detail.patient.date_of_birth, today)
}

/// Decodes one `application/x-www-form-urlencoded` component (`+` is a space).
/// Malformed escapes are kept as typed; invalid UTF-8 is replaced.
pub fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Decodes an `application/x-www-form-urlencoded` body into ordered pairs (for forms
/// with repeated fields, such as checkboxes).
pub fn form_pairs(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (url_decode(k), url_decode(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_components_decode() {
        assert_eq!(url_decode("Patient%2F5"), "Patient/5");
        assert_eq!(url_decode("a+b"), "a b");
        assert_eq!(url_decode("100%"), "100%");
        assert_eq!(url_decode("%zz"), "%zz");
        assert_eq!(url_decode("Garc%C3%ADa"), "García");
    }

    #[test]
    fn ages_count_birthdays() {
        let dob = jiff::civil::date(1960, 5, 1);
        assert_eq!(age_on(dob, jiff::civil::date(2026, 4, 30)), 65);
        assert_eq!(age_on(dob, jiff::civil::date(2026, 5, 1)), 66);
    }

    #[test]
    fn times_are_local_with_zone() {
        let tz = TimeZone::get("America/New_York").expect("tzdb bundled");
        let t: Timestamp = "2026-11-26T15:00:00Z".parse().expect("valid");
        assert_eq!(local_time(t, &tz), "2026-11-26 10:00 EST");
        assert_eq!(rfc3339_local(t, &tz), "2026-11-26T10:00:00-05:00");
        let summer: Timestamp = "2026-07-01T15:00:00Z".parse().expect("valid");
        assert_eq!(local_time(summer, &tz), "2026-07-01 11:00 EDT");
    }
}
