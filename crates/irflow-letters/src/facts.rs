//! What a letter says, already worked out: the case's facts in typed form, free of
//! language. Clinical content (holds, restart times, premedication times, monitoring
//! minutes, activity days) is computed by the caller from the rule pack and the
//! screening; this crate only puts it into words.

use jiff::ZonedDateTime;
use jiff::civil::Date;

/// Everything a letter may mention. Optional facts are `None` when unknown; the
/// templates say something sensible for each case.
#[derive(Debug, Clone, PartialEq)]
pub struct LetterFacts {
    /// The patient's given name, as the letter greets them.
    pub patient_first_name: String,
    /// What is done.
    pub procedure: ProcedureFacts,
    /// When, if booked (start, end and arrival in the site's zone).
    pub appointment: Option<AppointmentTimes>,
    /// Minutes before the start that patients arrive to check in (a setting).
    pub arrive_minutes_before: i64,
    /// Who to call and where to go.
    pub department: Department,
    /// The most recent MRI or CT of the spine is already on file.
    pub imaging_on_file: bool,
    /// Each blood thinner with a hold plan.
    pub blood_thinners: Vec<HeldDrug>,
    /// Days after the last antibiotic dose (for an infection) before the procedure may be done.
    pub antibiotic_window_days: u32,
    /// The screening recorded antibiotics for an infection (the letter stresses the warning).
    pub antibiotics_for_infection: bool,
    /// The symptoms are mild (avoid pain medicine before); `None` when not recorded.
    pub mild_symptoms: Option<bool>,
    /// Someone drives the patient home; `None` when not asked yet.
    pub escort: Option<bool>,
    /// Minutes of monitoring after the procedure for a patient who drives (rule pack).
    pub monitoring_minutes: u32,
    /// Timed premedication doses (contrast allergy), in order.
    pub premedication: Vec<PremedicationDose>,
    /// Diabetes (glucose advice), if the patient has it.
    pub diabetes: Option<DiabetesFacts>,
    /// Days without heavy lifting or strenuous activity after the procedure (rule pack).
    pub no_heavy_lifting_days: u32,
    /// Days after the procedure when the follow-up call comes (about two weeks).
    pub follow_up_days: u32,
    /// The patient's personal link, for the message that sends it.
    pub link: Option<PatientLinkFacts>,
    /// For a hold-start reminder: which drug (as in [`HeldDrug::drug`]); `None`: the first.
    pub reminder_drug: Option<String>,
    /// For a reminder: when it is sent, so that "today" and "tomorrow" are true when
    /// it is read (`None`: the letter names the day instead).
    pub reminder_at: Option<ZonedDateTime>,
}

/// The procedure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcedureFacts {
    /// CPT code (looks up a translated plain name).
    pub code: String,
    /// The catalogue's plain-language name (used when no translation exists).
    pub plain_name: String,
    /// The image guidance.
    pub guidance: Guidance,
    /// About how long it takes, in minutes.
    pub minutes: u32,
}

/// Which images guide the needle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guidance {
    /// Fluoroscopy (live X-ray).
    Fluoroscopy,
    /// CT.
    Ct,
    /// Not decided yet: fluoroscopy or CT.
    Either,
}

impl Guidance {
    /// Stable name, as templates test it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Guidance::Fluoroscopy => "fluoroscopy",
            Guidance::Ct => "ct",
            Guidance::Either => "either",
        }
    }
}

/// A booked appointment's times, in the site's zone.
#[derive(Debug, Clone, PartialEq)]
pub struct AppointmentTimes {
    /// The start.
    pub start: ZonedDateTime,
    /// The end.
    pub end: ZonedDateTime,
    /// When to arrive (check-in).
    pub arrive_by: ZonedDateTime,
}

/// The department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Department {
    /// Its name.
    pub name: String,
    /// Its address, on one line.
    pub address: String,
    /// Its phone number.
    pub phone: String,
}

/// A blood thinner to hold before the procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldDrug {
    /// The drug, as the rule pack names it (`apixaban`).
    pub drug: String,
    /// The last dose before the procedure, when it can be said.
    pub last_dose: Option<LastDose>,
    /// The prescriber has agreed to the hold (the clearance action is done and cleared).
    pub prescriber_agreed: bool,
    /// The prescriber said not to stop it (the clearance action is done, not cleared):
    /// the letter tells the patient to keep taking it, with no last dose or restart.
    pub prescriber_declined: bool,
    /// When to take it again, when the appointment is known.
    pub restart_at: Option<ZonedDateTime>,
    /// Hours after the procedure to restart (rule pack), when known.
    pub restart_hours: Option<u32>,
}

/// When the last dose before the procedure is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum LastDose {
    /// On this day (day-based holds).
    Day(Date),
    /// No later than this time (hour-based holds).
    At(ZonedDateTime),
}

impl LastDose {
    /// The day of the last dose.
    pub fn date(&self) -> Date {
        match self {
            LastDose::Day(d) => *d,
            LastDose::At(z) => z.date(),
        }
    }
}

/// One premedication dose.
#[derive(Debug, Clone, PartialEq)]
pub struct PremedicationDose {
    /// What to take, as the rule pack says ("prednisone 50 mg by mouth").
    pub what: String,
    /// Hours before the start.
    pub hours_before: u32,
    /// The exact time, when the appointment is known.
    pub at: Option<ZonedDateTime>,
}

/// Diabetes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiabetesFacts {
    /// Treated with insulin.
    pub insulin: bool,
}

/// A personal link sent to the patient.
#[derive(Debug, Clone, PartialEq)]
pub struct PatientLinkFacts {
    /// The whole URL.
    pub url: String,
    /// When it stops working.
    pub expires: Option<ZonedDateTime>,
}
