//! The procedure day: the pre-procedure checklist and the discharge after recovery.
//!
//! Pure: what a patient's checklist requires ([`Requirements`]) is computed by the
//! caller from the screening as re-evaluated for the appointment and from the rule
//! pack; this module says which items are required, what each answer means (done, or
//! a stop with the reason), whether the procedure may start, and whether a patient
//! may go home now. Numbers (monitoring minutes, a glucose limit) come in as
//! arguments from the pack; none is decided here.
//!
//! A stop is not an input error: the answer is true and is kept, and it stops the
//! checklist until it is resolved (a corrected answer, or a change of plan).

use std::fmt;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, Time};
use jiff::{SignedDuration, Timestamp};

/// One item of the pre-procedure checklist, in the order it is done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ChecklistItem {
    /// Two identifiers confirmed: name and date of birth, or name and MRN.
    Identity,
    /// Consent with the risks explained (signed on screen or on paper).
    Consent,
    /// Someone drives the patient home, or the patient drives and is monitored.
    Escort,
    /// Each held blood thinner's last dose confirmed against the plan.
    BloodThinners,
    /// Blood glucose on arrival (patients with diabetes).
    Glucose,
    /// Allergies reviewed.
    Allergies,
    /// The planned contrast premedication taken.
    Premedication,
    /// Pregnancy status asked (never assumed).
    Pregnancy,
    /// The time-out: correct patient, procedure, level and side.
    TimeOut,
}

impl ChecklistItem {
    /// Every item, in checklist order.
    pub const ALL: [ChecklistItem; 9] = [
        ChecklistItem::Identity,
        ChecklistItem::Consent,
        ChecklistItem::Escort,
        ChecklistItem::BloodThinners,
        ChecklistItem::Glucose,
        ChecklistItem::Allergies,
        ChecklistItem::Premedication,
        ChecklistItem::Pregnancy,
        ChecklistItem::TimeOut,
    ];

    /// The stable machine name.
    pub const fn as_str(self) -> &'static str {
        match self {
            ChecklistItem::Identity => "identity",
            ChecklistItem::Consent => "consent",
            ChecklistItem::Escort => "escort",
            ChecklistItem::BloodThinners => "blood_thinners",
            ChecklistItem::Glucose => "glucose",
            ChecklistItem::Allergies => "allergies",
            ChecklistItem::Premedication => "premedication",
            ChecklistItem::Pregnancy => "pregnancy",
            ChecklistItem::TimeOut => "time_out",
        }
    }

    /// A label for people.
    pub const fn label(self) -> &'static str {
        match self {
            ChecklistItem::Identity => "identity (two identifiers)",
            ChecklistItem::Consent => "consent",
            ChecklistItem::Escort => "escort or monitoring",
            ChecklistItem::BloodThinners => "blood thinners held as planned",
            ChecklistItem::Glucose => "blood glucose",
            ChecklistItem::Allergies => "allergies reviewed",
            ChecklistItem::Premedication => "premedication taken",
            ChecklistItem::Pregnancy => "pregnancy status",
            ChecklistItem::TimeOut => "time-out",
        }
    }
}

impl fmt::Display for ChecklistItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ChecklistItem {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ChecklistItem::ALL
            .into_iter()
            .find(|i| i.as_str() == s)
            .ok_or_else(|| {
                format!(
                    "unknown checklist item {s:?}: expected one of {}",
                    ChecklistItem::ALL.map(ChecklistItem::as_str).join(", ")
                )
            })
    }
}

/// Which two identifiers were checked against the wristband and the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdentityCheck {
    /// Full name and date of birth.
    NameAndDateOfBirth,
    /// Full name and MRN.
    NameAndMrn,
    /// They did not match.
    Mismatch,
}

/// How the patient gets home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EscortPlan {
    /// An adult escort drives the patient home.
    Escort,
    /// The patient drives: monitored for the pack's time before leaving.
    Monitoring,
}

/// The answer to the pregnancy question (asked, never assumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PregnancyStatus {
    /// The patient says there is no possibility of pregnancy.
    NotPossible,
    /// A pregnancy test today was negative.
    TestNegative,
    /// The patient may be pregnant.
    Possible,
}

macro_rules! named {
    ($t:ty { $($v:ident => $s:literal),+ $(,)? }) => {
        impl $t {
            /// The stable machine name.
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$v => $s),+ }
            }
            /// Every value.
            pub const ALL: &'static [$t] = &[$(Self::$v),+];
        }
        impl FromStr for $t {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($s => Ok(Self::$v),)+
                    _ => Err(format!(
                        "{s:?} is not one of: {}",
                        [$($s),+].join(", ")
                    )),
                }
            }
        }
    };
}

named!(IdentityCheck { NameAndDateOfBirth => "name_dob", NameAndMrn => "name_mrn", Mismatch => "mismatch" });
named!(EscortPlan { Escort => "escort", Monitoring => "monitoring" });
named!(PregnancyStatus { NotPossible => "not_possible", TestNegative => "test_negative", Possible => "possible" });

/// A blood thinner's last dose as the patient reports it on the day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDose {
    /// The drug as the plan names it.
    pub drug: String,
    /// The day of the last dose.
    pub date: Date,
    /// Its time, when known (needed for holds counted in hours).
    pub time: Option<Time>,
}

/// A recorded answer to one checklist item (consent and the time-out have their own records).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Which identifiers matched.
    Identity(IdentityCheck),
    /// How the patient gets home.
    Escort(EscortPlan),
    /// The last dose of each held drug.
    BloodThinners(Vec<ReportedDose>),
    /// Blood glucose, mg/dL.
    Glucose(u32),
    /// Allergies reviewed with the patient.
    AllergiesReviewed,
    /// Whether the planned premedication was taken.
    Premedication(bool),
    /// The pregnancy question.
    Pregnancy(PregnancyStatus),
}

/// Plausible glucose readings, mg/dL (a value outside is a typing error).
pub const GLUCOSE_RANGE: std::ops::RangeInclusive<u32> = 20..=800;

impl Answer {
    /// The item this answers.
    pub const fn item(&self) -> ChecklistItem {
        match self {
            Answer::Identity(_) => ChecklistItem::Identity,
            Answer::Escort(_) => ChecklistItem::Escort,
            Answer::BloodThinners(_) => ChecklistItem::BloodThinners,
            Answer::Glucose(_) => ChecklistItem::Glucose,
            Answer::AllergiesReviewed => ChecklistItem::Allergies,
            Answer::Premedication(_) => ChecklistItem::Premedication,
            Answer::Pregnancy(_) => ChecklistItem::Pregnancy,
        }
    }

    /// The answer as one line of text (how it is stored):
    /// `name_dob`, `monitoring`, `apixaban@2026-03-02;enoxaparin@2026-03-03T08:00`, `142`,
    /// `reviewed`, `taken` / `not_taken`, `not_possible`.
    pub fn encode(&self) -> String {
        match self {
            Answer::Identity(i) => i.as_str().to_owned(),
            Answer::Escort(e) => e.as_str().to_owned(),
            Answer::BloodThinners(doses) => doses
                .iter()
                .map(|d| match d.time {
                    Some(t) => format!("{}@{}T{}", d.drug, d.date, t.strftime("%H:%M")),
                    None => format!("{}@{}", d.drug, d.date),
                })
                .collect::<Vec<_>>()
                .join(";"),
            Answer::Glucose(v) => v.to_string(),
            Answer::AllergiesReviewed => "reviewed".to_owned(),
            Answer::Premedication(true) => "taken".to_owned(),
            Answer::Premedication(false) => "not_taken".to_owned(),
            Answer::Pregnancy(p) => p.as_str().to_owned(),
        }
    }

    /// Reads an answer back from [`Answer::encode`]'s text.
    pub fn decode(item: ChecklistItem, raw: &str) -> Result<Answer, String> {
        let raw = raw.trim();
        Ok(match item {
            ChecklistItem::Identity => Answer::Identity(raw.parse()?),
            ChecklistItem::Escort => Answer::Escort(raw.parse()?),
            ChecklistItem::BloodThinners => {
                let mut doses = Vec::new();
                for part in raw.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                    let (drug, when) = part
                        .split_once('@')
                        .ok_or_else(|| format!("{part:?} is not drug@date"))?;
                    let (date, time) = match when.split_once('T') {
                        Some((d, t)) => (d, Some(t)),
                        None => (when, None),
                    };
                    doses.push(ReportedDose {
                        drug: drug.trim().to_owned(),
                        date: date
                            .parse()
                            .map_err(|_| format!("{date:?} is not a date YYYY-MM-DD"))?,
                        time: time
                            .map(|t| {
                                Time::strptime("%H:%M", t)
                                    .map_err(|_| format!("{t:?} is not a time HH:MM"))
                            })
                            .transpose()?,
                    });
                }
                Answer::BloodThinners(doses)
            }
            ChecklistItem::Glucose => Answer::Glucose(
                raw.parse()
                    .map_err(|_| format!("{raw:?} is not a whole number of mg/dL"))?,
            ),
            ChecklistItem::Allergies if raw == "reviewed" => Answer::AllergiesReviewed,
            ChecklistItem::Premedication if raw == "taken" => Answer::Premedication(true),
            ChecklistItem::Premedication if raw == "not_taken" => Answer::Premedication(false),
            ChecklistItem::Pregnancy => Answer::Pregnancy(raw.parse()?),
            other => return Err(format!("{raw:?} is not an answer to {}", other.label())),
        })
    }
}

/// When a held drug's last dose was to be taken at the latest, in the site's local time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlannedLastDose {
    /// On or before this day (holds counted in days).
    Day(Date),
    /// At or before this local time (holds counted in hours).
    At(DateTime),
}

impl fmt::Display for PlannedLastDose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlannedLastDose::Day(d) => write!(f, "{d}"),
            PlannedLastDose::At(t) => write!(f, "{}", t.strftime("%Y-%m-%d %H:%M")),
        }
    }
}

/// One held blood thinner's plan, as the patient's letters give it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldDrugPlan {
    /// The drug as the pack names it.
    pub drug: String,
    /// The latest last dose the plan allows; `None` when no date could be computed.
    pub last_dose: Option<PlannedLastDose>,
    /// The prescriber decided against holding it: nothing to confirm.
    pub continued: bool,
}

/// What this patient's checklist requires beyond the items every patient has.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Requirements {
    /// Blood thinners in the hold plan.
    pub held_drugs: Vec<HeldDrugPlan>,
    /// The patient has diabetes: glucose is measured on arrival.
    pub diabetic: bool,
    /// The department's glucose limit (rule pack; `None`: no limit, the default).
    pub glucose_max_mg_dl: Option<u32>,
    /// A contrast premedication was planned (and contrast is still in the plan).
    pub premedication_planned: bool,
    /// The patient has an MRN on file (so name + MRN is an option).
    pub has_mrn: bool,
    /// Minutes of monitoring for a patient who drives (from the screening decision / pack).
    pub monitoring_minutes: u32,
    /// The screening call recorded that pregnancy is not possible (its facts'
    /// `pregnancy_possible` false), so the question is not asked again on the day.
    /// `false` — the default — when the screening said it is possible, or there is no
    /// screening to say: then the pregnancy status is required ("where relevant").
    pub pregnancy_ruled_out: bool,
}

impl Requirements {
    fn checked_drugs(&self) -> impl Iterator<Item = &HeldDrugPlan> {
        self.held_drugs.iter().filter(|d| !d.continued)
    }

    /// The required items, in checklist order.
    pub fn required_items(&self) -> Vec<ChecklistItem> {
        ChecklistItem::ALL
            .into_iter()
            .filter(|item| match item {
                ChecklistItem::BloodThinners => self.checked_drugs().next().is_some(),
                ChecklistItem::Glucose => self.diabetic,
                ChecklistItem::Premedication => self.premedication_planned,
                ChecklistItem::Pregnancy => !self.pregnancy_ruled_out,
                _ => true,
            })
            .collect()
    }
}

/// What an answer means for the checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The item is done.
    Done,
    /// The checklist stops here, for this reason; the procedure cannot start.
    Stop(String),
}

/// Checks one answer against the requirements. `Err` is an answer that cannot be
/// accepted as given (a typing error, a drug not in the plan): it is not recorded.
/// `today` is the site's date (a last dose cannot be after it).
pub fn check_answer(req: &Requirements, answer: &Answer, today: Date) -> Result<Outcome, String> {
    match answer {
        Answer::Identity(IdentityCheck::NameAndMrn) if !req.has_mrn => Err(
            "the patient has no MRN on file: confirm the name and the date of birth".to_owned(),
        ),
        Answer::Identity(IdentityCheck::Mismatch) => Ok(Outcome::Stop(
            "identity not confirmed: the identifiers do not match the record; do not go on until they do"
                .to_owned(),
        )),
        Answer::Glucose(v) if !GLUCOSE_RANGE.contains(v) => Err(format!(
            "a glucose of {v} mg/dL is not a plausible reading ({}-{} mg/dL); check the value",
            GLUCOSE_RANGE.start(),
            GLUCOSE_RANGE.end()
        )),
        Answer::Glucose(v) => match req.glucose_max_mg_dl {
            Some(max) if *v > max => Ok(Outcome::Stop(format!(
                "blood glucose {v} mg/dL is above the department's limit of {max} mg/dL; the radiologist decides"
            ))),
            _ => Ok(Outcome::Done),
        },
        Answer::Premedication(_) if !req.premedication_planned => {
            Err("no premedication was planned for this patient".to_owned())
        }
        Answer::Premedication(false) => Ok(Outcome::Stop(
            "the planned contrast premedication was not taken; the radiologist decides (a plan without contrast, or another day)"
                .to_owned(),
        )),
        Answer::Pregnancy(PregnancyStatus::Possible) => Ok(Outcome::Stop(
            "the patient may be pregnant: fluoroscopy exposes the pelvis; do a pregnancy test or have the radiologist decide"
                .to_owned(),
        )),
        Answer::BloodThinners(doses) => check_doses(req, doses, today),
        Answer::Identity(_)
        | Answer::Escort(_)
        | Answer::AllergiesReviewed
        | Answer::Premedication(true)
        | Answer::Pregnancy(_) => Ok(Outcome::Done),
    }
}

fn check_doses(req: &Requirements, doses: &[ReportedDose], today: Date) -> Result<Outcome, String> {
    let planned: Vec<&HeldDrugPlan> = req.checked_drugs().collect();
    if planned.is_empty() {
        return Err("no blood thinner is held for this patient".to_owned());
    }
    for d in doses {
        if !planned.iter().any(|p| p.drug == d.drug) {
            return Err(format!(
                "{} is not in the patient's hold plan (held: {})",
                d.drug,
                planned
                    .iter()
                    .map(|p| p.drug.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if d.date > today {
            return Err(format!(
                "the last dose of {} is given as {}, which is after today ({today})",
                d.drug, d.date
            ));
        }
    }
    let mut stops = Vec::new();
    for plan in planned {
        let mut reported = doses.iter().filter(|d| d.drug == plan.drug);
        let (Some(dose), None) = (reported.next(), reported.next()) else {
            return Err(format!(
                "give the last dose of {} once (the day, and the time if known)",
                plan.drug
            ));
        };
        let shown = match dose.time {
            Some(t) => format!("{} {}", dose.date, t.strftime("%H:%M")),
            None => dose.date.to_string(),
        };
        let late = match plan.last_dose {
            None => {
                stops.push(format!(
                    "{}: no planned last dose could be worked out, so the reported one ({shown}) cannot be checked; the radiologist decides",
                    plan.drug
                ));
                continue;
            }
            Some(PlannedLastDose::Day(day)) => dose.date > day,
            Some(PlannedLastDose::At(at)) => match dose.time {
                _ if dose.date != at.date() => dose.date > at.date(),
                Some(t) => dose.date.to_datetime(t) > at,
                None => {
                    return Err(format!(
                        "give the time of the last dose of {}: its hold is counted in hours (last dose by {} at the latest)",
                        plan.drug,
                        at.strftime("%Y-%m-%d %H:%M")
                    ));
                }
            },
        };
        if late {
            stops.push(format!(
                "{}: the plan was the last dose by {} at the latest, the patient reports {shown}: not held long enough",
                plan.drug,
                plan.last_dose.map(|p| p.to_string()).unwrap_or_default()
            ));
        }
    }
    if stops.is_empty() {
        Ok(Outcome::Done)
    } else {
        Ok(Outcome::Stop(format!(
            "{}; the procedure cannot start as planned — the radiologist decides (another day, or a documented decision)",
            stops.join("; ")
        )))
    }
}

/// How consent was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentMethod {
    /// Signed on the screen (the drawing is kept).
    OnScreen,
    /// Signed on the paper form; staff record that it was.
    Paper,
}

named!(ConsentMethod { OnScreen => "on_screen", Paper => "paper" });

/// The longest drawn signature accepted, in characters of its data URL.
pub const MAX_SIGNATURE_CHARS: usize = 400_000;
/// The longest name or free text on the day's records.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Consent as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// How.
    pub method: ConsentMethod,
    /// Who signed: the patient or their representative (name as written).
    pub signer: String,
    /// The drawn signature as a `data:image/png;base64,...` URL (on screen only).
    pub signature_png: Option<String>,
    /// Who witnessed it (a member of staff).
    pub witness: String,
    /// The risks explained, as the rule pack lists them.
    pub risks: Vec<String>,
}

/// Checks a consent before it is recorded.
pub fn check_consent(consent: &Consent) -> Result<(), String> {
    let text = |what: &str, v: &str| -> Result<(), String> {
        let n = v.trim().chars().count();
        if n == 0 {
            Err(format!("{what} is required"))
        } else if n > 200 {
            Err(format!("{what} is too long ({n} characters; at most 200)"))
        } else {
            Ok(())
        }
    };
    text("the name of who signed", &consent.signer)?;
    text("the witness", &consent.witness)?;
    if consent.risks.is_empty() {
        return Err("the risks explained must be listed (the rule pack lists none)".to_owned());
    }
    match (consent.method, consent.signature_png.as_deref()) {
        (ConsentMethod::OnScreen, None) => Err(
            "signed on screen: the signature is missing; ask the patient to sign in the box"
                .to_owned(),
        ),
        (ConsentMethod::OnScreen, Some(png)) => {
            let body = png
                .strip_prefix("data:image/png;base64,")
                .ok_or("the signature must be a PNG image (data:image/png;base64,...)")?;
            if png.len() > MAX_SIGNATURE_CHARS {
                return Err(format!(
                    "the signature image is too large ({} characters; at most {MAX_SIGNATURE_CHARS})",
                    png.len()
                ));
            }
            if body.len() < 32
                || !body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            {
                return Err("the signature image is not valid base64 PNG data".to_owned());
            }
            Ok(())
        }
        (ConsentMethod::Paper, Some(_)) => Err(
            "a paper consent has no drawn signature; choose \"signed on screen\" to draw one"
                .to_owned(),
        ),
        (ConsentMethod::Paper, None) => Ok(()),
    }
}

/// The time-out, read out in the room before the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeOut {
    /// The correct patient.
    pub patient: bool,
    /// The correct procedure.
    pub procedure: bool,
    /// The correct level(s) (or none ordered).
    pub level: bool,
    /// The correct side.
    pub side: bool,
}

impl TimeOut {
    /// What the time-out found.
    pub fn outcome(&self) -> Outcome {
        let wrong: Vec<&str> = [
            (self.patient, "patient"),
            (self.procedure, "procedure"),
            (self.level, "level"),
            (self.side, "side"),
        ]
        .into_iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| what)
        .collect();
        if wrong.is_empty() {
            Outcome::Done
        } else {
            Outcome::Stop(format!(
                "time-out not confirmed: {}; stop and resolve it before starting",
                wrong.join(", ")
            ))
        }
    }
}

/// Everything recorded so far for the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The latest answer per item.
    pub answers: Vec<Answer>,
    /// Consent is on record.
    pub consent: bool,
    /// The time-out, if done.
    pub time_out: Option<TimeOut>,
}

/// Where the checklist stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChecklistStatus {
    /// The items this patient needs, in order.
    pub required: Vec<ChecklistItem>,
    /// Required items done.
    pub done: Vec<ChecklistItem>,
    /// Required items not yet answered.
    pub missing: Vec<ChecklistItem>,
    /// Items that stop the checklist, with the reason.
    pub stops: Vec<(ChecklistItem, String)>,
}

impl ChecklistStatus {
    /// Every required item done and nothing stops it.
    pub fn is_complete(&self) -> bool {
        self.missing.is_empty() && self.stops.is_empty()
    }

    /// Why the procedure may not start, for the person who tried; `None` when it may.
    pub fn refusal(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let mut parts = Vec::new();
        if !self.stops.is_empty() {
            parts.push(format!(
                "stopped: {}",
                self.stops
                    .iter()
                    .map(|(i, why)| format!("{} — {why}", i.label()))
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!(
                "still to do: {}",
                self.missing
                    .iter()
                    .map(|i| i.label())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Some(format!(
            "the procedure cannot start until the checklist is complete ({})",
            parts.join("; ")
        ))
    }

    /// Whether the time-out may be done now: everything before it is complete.
    pub fn ready_for_time_out(&self) -> Result<(), String> {
        let before = ChecklistStatus {
            missing: self
                .missing
                .iter()
                .copied()
                .filter(|i| *i != ChecklistItem::TimeOut)
                .collect(),
            stops: self
                .stops
                .iter()
                .filter(|(i, _)| *i != ChecklistItem::TimeOut)
                .cloned()
                .collect(),
            ..self.clone()
        };
        match before.refusal() {
            None => Ok(()),
            Some(_) => Err(format!(
                "the time-out comes last, once everything else is done ({})",
                before
                    .stops
                    .iter()
                    .map(|(i, _)| format!("{} stopped", i.label()))
                    .chain(
                        before
                            .missing
                            .iter()
                            .map(|i| format!("{} to do", i.label()))
                    )
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        }
    }
}

/// The checklist's state: each required item done, missing or stopped, with every
/// recorded answer re-checked against the requirements as they are now (an answer
/// that no longer fits the plan stops the checklist until it is given again).
pub fn status(req: &Requirements, recorded: &Recorded, today: Date) -> ChecklistStatus {
    let mut s = ChecklistStatus {
        required: req.required_items(),
        ..ChecklistStatus::default()
    };
    for item in s.required.clone() {
        let outcome = match item {
            ChecklistItem::Consent => recorded.consent.then_some(Outcome::Done),
            ChecklistItem::TimeOut => recorded.time_out.map(|t| t.outcome()),
            _ => recorded
                .answers
                .iter()
                .rev()
                .find(|a| a.item() == item)
                .map(|a| {
                    check_answer(req, a, today).unwrap_or_else(|why| {
                        Outcome::Stop(format!(
                            "the recorded answer no longer fits the plan ({why}); record it again"
                        ))
                    })
                }),
        };
        match outcome {
            None => s.missing.push(item),
            Some(Outcome::Done) => s.done.push(item),
            Some(Outcome::Stop(why)) => s.stops.push((item, why)),
        }
    }
    // Not required, but asked anyway: "may be pregnant" said on the day still stops.
    if !s.required.contains(&ChecklistItem::Pregnancy)
        && let Some(Answer::Pregnancy(PregnancyStatus::Possible)) = recorded
            .answers
            .iter()
            .rev()
            .find(|a| a.item() == ChecklistItem::Pregnancy)
        && let Ok(Outcome::Stop(why)) =
            check_answer(req, &Answer::Pregnancy(PregnancyStatus::Possible), today)
    {
        s.stops.push((ChecklistItem::Pregnancy, why));
    }
    s
}

/// The end of the minimum monitoring, when the patient is monitored.
pub fn monitoring_until(ended_at: Timestamp, monitoring_minutes: Option<u32>) -> Option<Timestamp> {
    let minutes = monitoring_minutes.filter(|m| *m > 0)?;
    ended_at
        .checked_add(SignedDuration::from_mins(i64::from(minutes)))
        .ok()
}

/// Whole minutes of monitoring left at `now` (rounded up; 0 when over).
pub fn minutes_left(until: Timestamp, now: Timestamp) -> i64 {
    let seconds = now.duration_until(until).as_secs();
    if seconds <= 0 { 0 } else { (seconds + 59) / 60 }
}

/// Why a patient may not go home now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DischargeRefusal {
    /// Discharge criteria not confirmed.
    #[error("discharge criteria not confirmed: {}", .0.join("; "))]
    CriteriaNotMet(Vec<String>),
    /// A criterion that is not one of the pack's.
    #[error("unknown discharge criterion {0:?}")]
    UnknownCriterion(String),
    /// Before the end of the minimum monitoring, without an override.
    #[error(
        "the patient drives home and is monitored until {until_local}: {minutes_left} minutes left; a nurse may discharge earlier only with an override reason"
    )]
    TooEarly {
        /// Minutes left.
        minutes_left: i64,
        /// When monitoring ends, as people read it.
        until_local: String,
    },
    /// The override reason is too long.
    #[error("the override reason is too long ({0} characters; at most {MAX_TEXT_CHARS})")]
    OverrideTooLong(usize),
}

/// A discharge to check.
#[derive(Debug, Clone)]
pub struct DischargeCheck<'a> {
    /// The end of monitoring (`None`: not monitored).
    pub monitoring_until: Option<Timestamp>,
    /// The same, as people read it (site time), for the message.
    pub monitoring_until_local: String,
    /// The pack's criteria: (id, label).
    pub criteria: &'a [(String, String)],
    /// The ids confirmed.
    pub confirmed: &'a [String],
    /// A nurse's reason for discharging before the end of monitoring.
    pub override_reason: Option<&'a str>,
    /// Now.
    pub now: Timestamp,
}

/// Checks a discharge: every criterion confirmed, and the minimum monitoring over
/// (or an override reason given). Returns the override reason to record — only
/// when it was needed.
pub fn check_discharge(c: &DischargeCheck<'_>) -> Result<Option<String>, DischargeRefusal> {
    if let Some(unknown) = c
        .confirmed
        .iter()
        .find(|id| !c.criteria.iter().any(|(known, _)| known == *id))
    {
        return Err(DischargeRefusal::UnknownCriterion(unknown.clone()));
    }
    let unmet: Vec<String> = c
        .criteria
        .iter()
        .filter(|(id, _)| !c.confirmed.contains(id))
        .map(|(_, label)| label.clone())
        .collect();
    if !unmet.is_empty() {
        return Err(DischargeRefusal::CriteriaNotMet(unmet));
    }
    let reason = c.override_reason.map(str::trim).filter(|r| !r.is_empty());
    if let Some(r) = reason {
        let n = r.chars().count();
        if n > MAX_TEXT_CHARS {
            return Err(DischargeRefusal::OverrideTooLong(n));
        }
    }
    match c.monitoring_until {
        Some(until) if c.now < until => match reason {
            Some(r) => Ok(Some(r.to_owned())),
            None => Err(DischargeRefusal::TooEarly {
                minutes_left: minutes_left(until, c.now),
                until_local: c.monitoring_until_local.clone(),
            }),
        },
        _ => Ok(None),
    }
}

/// One set of vital signs, checked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Vitals {
    /// Systolic blood pressure, mmHg.
    pub systolic: Option<u32>,
    /// Diastolic blood pressure, mmHg.
    pub diastolic: Option<u32>,
    /// Pulse, per minute.
    pub pulse: Option<u32>,
    /// Oxygen saturation, %.
    pub spo2: Option<u32>,
    /// Pain, 0-10.
    pub pain: Option<u32>,
    /// Notes.
    pub notes: String,
}

impl Vitals {
    /// Checks the values are plausible readings (a value outside is a typing error);
    /// `Err` names the field and the range.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ranges: [(&'static str, Option<u32>, u32, u32, &str); 5] = [
            ("systolic", self.systolic, 50, 260, "mmHg"),
            ("diastolic", self.diastolic, 20, 160, "mmHg"),
            ("pulse", self.pulse, 20, 250, "per minute"),
            ("spo2", self.spo2, 50, 100, "%"),
            ("pain", self.pain, 0, 10, "(0-10)"),
        ];
        for (field, value, lo, hi, unit) in ranges {
            if let Some(v) = value
                && !(lo..=hi).contains(&v)
            {
                return Err((
                    field,
                    format!("{v} is not a plausible value; give {lo}-{hi} {unit}"),
                ));
            }
        }
        if self.systolic.is_some() != self.diastolic.is_some() {
            return Err((
                "diastolic",
                "give both numbers of the blood pressure (e.g. 128 / 82)".to_owned(),
            ));
        }
        if let (Some(s), Some(d)) = (self.systolic, self.diastolic)
            && d >= s
        {
            return Err((
                "diastolic",
                format!("{s}/{d}: the diastolic must be lower than the systolic"),
            ));
        }
        if [self.systolic, self.pulse, self.spo2, self.pain]
            .iter()
            .all(Option::is_none)
            && self.notes.trim().is_empty()
        {
            return Err(("systolic", "enter at least one value or a note".to_owned()));
        }
        let n = self.notes.chars().count();
        if n > MAX_TEXT_CHARS {
            return Err((
                "notes",
                format!("too long ({n} characters; at most {MAX_TEXT_CHARS})"),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn today() -> Date {
        date(2026, 11, 20)
    }

    fn apixaban_plan() -> Requirements {
        Requirements {
            held_drugs: vec![HeldDrugPlan {
                drug: "apixaban".to_owned(),
                last_dose: Some(PlannedLastDose::Day(date(2026, 11, 17))),
                continued: false,
            }],
            has_mrn: true,
            monitoring_minutes: 60,
            ..Requirements::default()
        }
    }

    fn dose(drug: &str, d: Date, t: Option<Time>) -> Answer {
        Answer::BloodThinners(vec![ReportedDose {
            drug: drug.to_owned(),
            date: d,
            time: t,
        }])
    }

    #[test]
    fn pregnancy_is_asked_only_where_relevant() {
        // Screening said not possible (e.g. a man): not required, not missing.
        let ruled_out = Requirements {
            pregnancy_ruled_out: true,
            ..Requirements::default()
        };
        assert!(
            !ruled_out
                .required_items()
                .contains(&ChecklistItem::Pregnancy)
        );
        let today = date(2026, 9, 21);
        let done_without = status(
            &ruled_out,
            &Recorded {
                answers: vec![
                    Answer::Identity(IdentityCheck::NameAndDateOfBirth),
                    Answer::Escort(EscortPlan::Escort),
                    Answer::AllergiesReviewed,
                ],
                consent: true,
                time_out: Some(TimeOut {
                    patient: true,
                    procedure: true,
                    level: true,
                    side: true,
                }),
            },
            today,
        );
        assert!(done_without.is_complete(), "{done_without:?}");
        // Said possible at screening, or no screening at all: asked.
        assert!(
            Requirements::default()
                .required_items()
                .contains(&ChecklistItem::Pregnancy)
        );
        let missing = status(&Requirements::default(), &Recorded::default(), today);
        assert!(missing.missing.contains(&ChecklistItem::Pregnancy));
        // Asked anyway and "may be pregnant": that still stops the day.
        let asked = status(
            &ruled_out,
            &Recorded {
                answers: vec![Answer::Pregnancy(PregnancyStatus::Possible)],
                ..Recorded::default()
            },
            today,
        );
        assert!(
            asked
                .stops
                .iter()
                .any(|(i, _)| *i == ChecklistItem::Pregnancy),
            "{asked:?}"
        );
        let fine = status(
            &ruled_out,
            &Recorded {
                answers: vec![Answer::Pregnancy(PregnancyStatus::NotPossible)],
                ..Recorded::default()
            },
            today,
        );
        assert!(fine.stops.is_empty());
    }

    #[test]
    fn required_items_follow_the_plan() {
        let basic = Requirements::default().required_items();
        assert_eq!(
            basic,
            vec![
                ChecklistItem::Identity,
                ChecklistItem::Consent,
                ChecklistItem::Escort,
                ChecklistItem::Allergies,
                ChecklistItem::Pregnancy,
                ChecklistItem::TimeOut,
            ]
        );
        let full = Requirements {
            diabetic: true,
            premedication_planned: true,
            ..apixaban_plan()
        };
        assert_eq!(full.required_items(), ChecklistItem::ALL.to_vec());
        // A drug the prescriber decided to continue has nothing to confirm.
        let continued = Requirements {
            held_drugs: vec![HeldDrugPlan {
                drug: "aspirin".to_owned(),
                last_dose: None,
                continued: true,
            }],
            ..Requirements::default()
        };
        assert!(
            !continued
                .required_items()
                .contains(&ChecklistItem::BloodThinners)
        );
    }

    #[test]
    fn a_blood_thinner_taken_after_the_planned_last_dose_stops_the_checklist() {
        let req = apixaban_plan();
        assert_eq!(
            check_answer(&req, &dose("apixaban", date(2026, 11, 16), None), today()),
            Ok(Outcome::Done)
        );
        assert_eq!(
            check_answer(&req, &dose("apixaban", date(2026, 11, 17), None), today()),
            Ok(Outcome::Done),
            "on the planned day itself is as planned"
        );
        let Ok(Outcome::Stop(why)) =
            check_answer(&req, &dose("apixaban", date(2026, 11, 19), None), today())
        else {
            panic!("a later last dose stops the checklist");
        };
        assert!(why.contains("apixaban"), "{why}");
        assert!(why.contains("2026-11-17"), "the planned day: {why}");
        assert!(why.contains("2026-11-19"), "the reported day: {why}");
        assert!(why.contains("not held long enough"), "{why}");
        // Typing errors are refused, not recorded.
        assert!(check_answer(&req, &dose("warfarin", date(2026, 11, 10), None), today()).is_err());
        assert!(check_answer(&req, &dose("apixaban", date(2026, 11, 21), None), today()).is_err());
        assert!(check_answer(&req, &Answer::BloodThinners(vec![]), today()).is_err());
    }

    #[test]
    fn hour_based_holds_compare_the_time() {
        let req = Requirements {
            held_drugs: vec![HeldDrugPlan {
                drug: "enoxaparin".to_owned(),
                last_dose: Some(PlannedLastDose::At(date(2026, 11, 19).at(8, 0, 0, 0))),
                continued: false,
            }],
            ..Requirements::default()
        };
        let on_day = |t| dose("enoxaparin", date(2026, 11, 19), t);
        assert!(
            check_answer(&req, &on_day(None), today())
                .expect_err("the time is needed")
                .contains("08:00")
        );
        assert_eq!(
            check_answer(&req, &on_day(Some(time(7, 30, 0, 0))), today()),
            Ok(Outcome::Done)
        );
        assert!(matches!(
            check_answer(&req, &on_day(Some(time(9, 0, 0, 0))), today()),
            Ok(Outcome::Stop(_))
        ));
        assert_eq!(
            check_answer(&req, &dose("enoxaparin", date(2026, 11, 18), None), today()),
            Ok(Outcome::Done),
            "an earlier day needs no time"
        );
    }

    #[test]
    fn other_answers() {
        let req = apixaban_plan();
        let stop = |a: Answer| matches!(check_answer(&req, &a, today()), Ok(Outcome::Stop(_)));
        assert!(stop(Answer::Identity(IdentityCheck::Mismatch)));
        assert!(stop(Answer::Pregnancy(PregnancyStatus::Possible)));
        assert!(!stop(Answer::Pregnancy(PregnancyStatus::NotPossible)));
        assert!(
            check_answer(&req, &Answer::Premedication(true), today()).is_err(),
            "none planned"
        );
        let premed = Requirements {
            premedication_planned: true,
            ..req.clone()
        };
        assert!(matches!(
            check_answer(&premed, &Answer::Premedication(false), today()),
            Ok(Outcome::Stop(_))
        ));
        let no_mrn = Requirements {
            has_mrn: false,
            ..req.clone()
        };
        assert!(
            check_answer(
                &no_mrn,
                &Answer::Identity(IdentityCheck::NameAndMrn),
                today()
            )
            .is_err()
        );
        assert!(check_answer(&req, &Answer::Glucose(5), today()).is_err());
        assert_eq!(
            check_answer(&req, &Answer::Glucose(250), today()),
            Ok(Outcome::Done),
            "no limit unless the pack sets one"
        );
        let limit = Requirements {
            glucose_max_mg_dl: Some(200),
            ..req
        };
        assert!(matches!(
            check_answer(&limit, &Answer::Glucose(250), today()),
            Ok(Outcome::Stop(_))
        ));
    }

    #[test]
    fn answers_round_trip_through_text() {
        let answers = [
            Answer::Identity(IdentityCheck::NameAndDateOfBirth),
            Answer::Escort(EscortPlan::Monitoring),
            Answer::BloodThinners(vec![
                ReportedDose {
                    drug: "apixaban".to_owned(),
                    date: date(2026, 11, 16),
                    time: None,
                },
                ReportedDose {
                    drug: "enoxaparin".to_owned(),
                    date: date(2026, 11, 18),
                    time: Some(time(21, 5, 0, 0)),
                },
            ]),
            Answer::Glucose(142),
            Answer::AllergiesReviewed,
            Answer::Premedication(false),
            Answer::Pregnancy(PregnancyStatus::TestNegative),
        ];
        for a in answers {
            assert_eq!(Answer::decode(a.item(), &a.encode()), Ok(a.clone()));
        }
        assert!(Answer::decode(ChecklistItem::Glucose, "high").is_err());
        assert!(Answer::decode(ChecklistItem::Consent, "yes").is_err());
        assert!(Answer::decode(ChecklistItem::BloodThinners, "apixaban").is_err());
    }

    #[test]
    fn the_status_names_what_is_missing_and_what_stops() {
        let req = apixaban_plan();
        let mut rec = Recorded::default();
        let s = status(&req, &rec, today());
        assert!(!s.is_complete());
        let refusal = s.refusal().expect("nothing done");
        assert!(
            refusal.contains("identity") && refusal.contains("time-out"),
            "{refusal}"
        );
        assert!(s.ready_for_time_out().is_err());
        rec.answers = vec![
            Answer::Identity(IdentityCheck::NameAndMrn),
            Answer::Escort(EscortPlan::Escort),
            dose("apixaban", date(2026, 11, 19), None),
            Answer::AllergiesReviewed,
            Answer::Pregnancy(PregnancyStatus::NotPossible),
        ];
        rec.consent = true;
        let s = status(&req, &rec, today());
        assert_eq!(s.stops.len(), 1);
        assert_eq!(s.missing, vec![ChecklistItem::TimeOut]);
        let refusal = s.refusal().expect("stopped");
        assert!(refusal.contains("not held long enough"), "{refusal}");
        assert!(
            s.ready_for_time_out().is_err(),
            "a stop blocks the time-out"
        );
        // The corrected answer (the latest) replaces the earlier one.
        rec.answers.push(dose("apixaban", date(2026, 11, 15), None));
        let s = status(&req, &rec, today());
        assert!(s.stops.is_empty());
        assert!(s.ready_for_time_out().is_ok());
        rec.time_out = Some(TimeOut {
            patient: true,
            procedure: true,
            level: true,
            side: false,
        });
        let s = status(&req, &rec, today());
        assert!(s.refusal().expect("side").contains("side"));
        rec.time_out = Some(TimeOut {
            patient: true,
            procedure: true,
            level: true,
            side: true,
        });
        let s = status(&req, &rec, today());
        assert!(s.is_complete(), "{s:?}");
        assert_eq!(s.refusal(), None);
        // A plan that changed since (a second drug held) re-opens the item.
        let mut two = req.clone();
        two.held_drugs.push(HeldDrugPlan {
            drug: "clopidogrel".to_owned(),
            last_dose: Some(PlannedLastDose::Day(date(2026, 11, 12))),
            continued: false,
        });
        assert!(!status(&two, &rec, today()).is_complete());
    }

    #[test]
    fn consent_is_checked() {
        let paper = Consent {
            method: ConsentMethod::Paper,
            signer: "Hannah Fischer".to_owned(),
            signature_png: None,
            witness: "Nora Patel, RN".to_owned(),
            risks: vec!["Bleeding".to_owned()],
        };
        assert_eq!(check_consent(&paper), Ok(()));
        let no_witness = Consent {
            witness: " ".to_owned(),
            ..paper.clone()
        };
        assert!(check_consent(&no_witness).is_err());
        let unsigned = Consent {
            method: ConsentMethod::OnScreen,
            ..paper.clone()
        };
        assert!(check_consent(&unsigned).is_err());
        let signed = Consent {
            method: ConsentMethod::OnScreen,
            signature_png: Some(format!("data:image/png;base64,{}", "iVBORw0KGgo".repeat(8))),
            ..paper.clone()
        };
        assert_eq!(check_consent(&signed), Ok(()));
        let script = Consent {
            signature_png: Some("javascript:alert(1)".to_owned()),
            ..signed
        };
        assert!(check_consent(&script).is_err());
    }

    fn criteria() -> Vec<(String, String)> {
        vec![
            ("a".to_owned(), "Vital signs stable".to_owned()),
            ("b".to_owned(), "Walks steadily".to_owned()),
        ]
    }

    #[test]
    fn discharge_waits_for_the_monitoring_unless_overridden() {
        let ended: Timestamp = "2026-11-20T15:00:00Z".parse().expect("valid");
        let until = monitoring_until(ended, Some(60));
        assert_eq!(monitoring_until(ended, None), None);
        assert_eq!(monitoring_until(ended, Some(0)), None);
        let now = ended + SignedDuration::from_mins(20);
        let all = vec!["a".to_owned(), "b".to_owned()];
        let c = criteria();
        let check = |confirmed: &[String], reason: Option<&'static str>, now| {
            check_discharge(&DischargeCheck {
                monitoring_until: until,
                monitoring_until_local: "11:00 EST".to_owned(),
                criteria: &c,
                confirmed,
                override_reason: reason,
                now,
            })
        };
        match check(&all, None, now) {
            Err(DischargeRefusal::TooEarly { minutes_left, .. }) => assert_eq!(minutes_left, 40),
            other => panic!("too early: {other:?}"),
        }
        assert_eq!(
            check(&all, Some("  Escort arrived after all  "), now),
            Ok(Some("Escort arrived after all".to_owned()))
        );
        assert!(matches!(
            check(&all, Some("   "), now),
            Err(DischargeRefusal::TooEarly { .. })
        ));
        assert_eq!(
            check(
                &all,
                Some("not needed"),
                ended + SignedDuration::from_mins(61)
            ),
            Ok(None),
            "no override recorded when none was needed"
        );
        assert!(matches!(
            check(&all[..1], None, ended + SignedDuration::from_mins(90)),
            Err(DischargeRefusal::CriteriaNotMet(unmet)) if unmet == vec!["Walks steadily".to_owned()]
        ));
        assert!(matches!(
            check(&["zzz".to_owned()], None, now),
            Err(DischargeRefusal::UnknownCriterion(_))
        ));
        assert_eq!(minutes_left(ended, now), 0);
        assert_eq!(
            minutes_left(ended + SignedDuration::from_secs(61), ended),
            2
        );
    }

    #[test]
    fn vitals_are_plausible() {
        let ok = Vitals {
            systolic: Some(128),
            diastolic: Some(82),
            pulse: Some(72),
            spo2: Some(98),
            pain: Some(2),
            notes: String::new(),
        };
        assert_eq!(ok.check(), Ok(()));
        for bad in [
            Vitals {
                spo2: Some(101),
                ..ok.clone()
            },
            Vitals {
                pain: Some(11),
                ..ok.clone()
            },
            Vitals {
                diastolic: None,
                ..ok.clone()
            },
            Vitals {
                systolic: Some(80),
                diastolic: Some(90),
                ..ok.clone()
            },
            Vitals::default(),
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
        assert_eq!(
            Vitals {
                notes: "Resting comfortably".to_owned(),
                ..Vitals::default()
            }
            .check(),
            Ok(())
        );
    }
}
