//! The values a template sees: the facts with every date and time already written
//! out in the letter's language. `docs` in letters/default/README.md lists them.

use jiff::civil::Date;
use jiff::{Span, ZonedDateTime};
use serde::Serialize;

use crate::facts::{LastDose, LetterFacts};
use crate::{Lang, LetterError, LetterKind, format};

/// A moment: `date` ("Tuesday, December 8, 2026"), `short_date` ("December 8"),
/// `time` ("9:40 AM"; none for a day without a time), `datetime` (both, or the date
/// alone), `weekday`, `iso` (YYYY-MM-DD).
#[derive(Debug, Serialize)]
pub(crate) struct When {
    date: String,
    short_date: String,
    time: Option<String>,
    at_time: Option<String>,
    datetime: String,
    weekday: &'static str,
    iso: String,
}

impl When {
    fn zoned(lang: Lang, z: &ZonedDateTime) -> Self {
        Self {
            date: format::date(lang, z.date()),
            short_date: format::short_date(lang, z.date()),
            time: Some(format::time(lang, z.time())),
            at_time: Some(format::at_time(lang, z.time())),
            datetime: format::datetime(lang, z),
            weekday: format::weekday(lang, z.date().weekday()),
            iso: z.date().to_string(),
        }
    }

    fn day(lang: Lang, d: Date) -> Self {
        Self {
            date: format::date(lang, d),
            short_date: format::short_date(lang, d),
            time: None,
            at_time: None,
            datetime: format::date(lang, d),
            weekday: format::weekday(lang, d.weekday()),
            iso: d.to_string(),
        }
    }
}

#[derive(Debug, Serialize)]
struct Patient {
    first_name: String,
}

#[derive(Debug, Serialize)]
struct Procedure {
    name: String,
    guidance: &'static str,
    minutes: u32,
}

#[derive(Debug, Serialize)]
struct Appointment {
    start: When,
    end: When,
    arrive: When,
}

#[derive(Debug, Serialize)]
struct Department {
    name: String,
    address: String,
    phone: String,
}

#[derive(Debug, Serialize)]
struct Drug {
    name: String,
    last_dose: Option<When>,
    prescriber_agreed: bool,
    prescriber_declined: bool,
    restart: Option<When>,
    restart_hours: Option<u32>,
}

#[derive(Debug, Serialize)]
struct Dose {
    what: String,
    hours_before: u32,
    at: Option<When>,
}

#[derive(Debug, Serialize)]
struct Diabetes {
    insulin: bool,
}

#[derive(Debug, Serialize)]
struct Discharge {
    no_lifting_days: u32,
    follow_up_days: u32,
    procedure_day: Option<When>,
    no_lifting_until: Option<When>,
    follow_up_around: Option<When>,
}

#[derive(Debug, Serialize)]
struct Link {
    url: String,
    expires: Option<When>,
}

/// Everything a template may print.
#[derive(Debug, Serialize)]
pub(crate) struct Context {
    lang: &'static str,
    patient: Patient,
    procedure: Procedure,
    appointment: Option<Appointment>,
    arrive_minutes_before: i64,
    department: Department,
    imaging_on_file: bool,
    blood_thinners: Vec<Drug>,
    hold_drug: Option<Drug>,
    /// The hold-start reminder's last dose, seen from the day it is sent: `today`,
    /// `tomorrow`, or `other` (the day is named).
    last_dose_when: &'static str,
    antibiotic_window_days: u32,
    antibiotics_for_infection: bool,
    mild_symptoms: Option<bool>,
    escort: Option<bool>,
    monitoring_minutes: u32,
    premedication: Vec<Dose>,
    diabetes: Option<Diabetes>,
    discharge: Discharge,
    link: Option<Link>,
}

fn drug(lang: Lang, d: &crate::facts::HeldDrug) -> Drug {
    Drug {
        name: d.drug.clone(),
        last_dose: d.last_dose.as_ref().map(|l| match l {
            LastDose::Day(day) => When::day(lang, *day),
            LastDose::At(z) => When::zoned(lang, z),
        }),
        prescriber_agreed: d.prescriber_agreed,
        prescriber_declined: d.prescriber_declined,
        restart: d.restart_at.as_ref().map(|z| When::zoned(lang, z)),
        restart_hours: d.restart_hours,
    }
}

fn plus_days(d: Date, days: u32) -> Option<Date> {
    d.checked_add(Span::new().days(i64::from(days))).ok()
}

/// Builds the context for one letter; refuses a letter its facts cannot support.
pub(crate) fn build(
    facts: &LetterFacts,
    kind: LetterKind,
    lang: Lang,
    procedure_name: &str,
) -> Result<Context, LetterError> {
    let appointment = facts.appointment.as_ref().map(|a| Appointment {
        start: When::zoned(lang, &a.start),
        end: When::zoned(lang, &a.end),
        arrive: When::zoned(lang, &a.arrive_by),
    });
    let hold = match &facts.reminder_drug {
        Some(name) => facts
            .blood_thinners
            .iter()
            .find(|d| d.drug.eq_ignore_ascii_case(name.trim())),
        None => facts.blood_thinners.first(),
    };
    match kind {
        LetterKind::ReminderHoldStart if hold.is_none() => {
            return Err(LetterError::MissingFact(
                "a hold-start reminder needs a blood thinner with a hold plan".to_owned(),
            ));
        }
        LetterKind::ReminderHoldStart if hold.and_then(|h| h.last_dose.as_ref()).is_none() => {
            return Err(LetterError::MissingFact(
                "a hold-start reminder needs the day of the last dose (book the appointment first)"
                    .to_owned(),
            ));
        }
        LetterKind::ReminderThreeDays | LetterKind::ReminderOneDay if appointment.is_none() => {
            return Err(LetterError::MissingFact(
                "a reminder needs a booked appointment".to_owned(),
            ));
        }
        LetterKind::PatientLink if facts.link.is_none() => {
            return Err(LetterError::MissingFact(
                "a patient-link message needs the link".to_owned(),
            ));
        }
        _ => {}
    }
    let day = facts.appointment.as_ref().map(|a| a.start.date());
    let last_dose_when = match (
        facts.reminder_at.as_ref(),
        hold.and_then(|h| h.last_dose.as_ref()),
    ) {
        (Some(sent), Some(last)) if last.date() == sent.date() => "today",
        (Some(sent), Some(last)) if sent.date().tomorrow().ok() == Some(last.date()) => "tomorrow",
        _ => "other",
    };
    Ok(Context {
        lang: lang.as_str(),
        patient: Patient {
            first_name: facts.patient_first_name.clone(),
        },
        procedure: Procedure {
            name: procedure_name.to_owned(),
            guidance: facts.procedure.guidance.as_str(),
            minutes: facts.procedure.minutes,
        },
        appointment,
        arrive_minutes_before: facts.arrive_minutes_before,
        department: Department {
            name: facts.department.name.clone(),
            address: facts.department.address.clone(),
            phone: facts.department.phone.clone(),
        },
        imaging_on_file: facts.imaging_on_file,
        blood_thinners: facts.blood_thinners.iter().map(|d| drug(lang, d)).collect(),
        hold_drug: hold.map(|d| drug(lang, d)),
        last_dose_when,
        antibiotic_window_days: facts.antibiotic_window_days,
        antibiotics_for_infection: facts.antibiotics_for_infection,
        mild_symptoms: facts.mild_symptoms,
        escort: facts.escort,
        monitoring_minutes: facts.monitoring_minutes,
        premedication: facts
            .premedication
            .iter()
            .map(|p| Dose {
                what: p.what.clone(),
                hours_before: p.hours_before,
                at: p.at.as_ref().map(|z| When::zoned(lang, z)),
            })
            .collect(),
        diabetes: facts.diabetes.map(|d| Diabetes { insulin: d.insulin }),
        discharge: Discharge {
            no_lifting_days: facts.no_heavy_lifting_days,
            follow_up_days: facts.follow_up_days,
            procedure_day: day.map(|d| When::day(lang, d)),
            no_lifting_until: day
                .and_then(|d| plus_days(d, facts.no_heavy_lifting_days))
                .map(|d| When::day(lang, d)),
            follow_up_around: day
                .and_then(|d| plus_days(d, facts.follow_up_days))
                .map(|d| When::day(lang, d)),
        },
        link: facts.link.as_ref().map(|l| Link {
            url: l.url.clone(),
            expires: l.expires.as_ref().map(|z| When::zoned(lang, z)),
        }),
    })
}
