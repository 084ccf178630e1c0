//! Patient letters: the preparation instructions, the discharge instructions, the
//! reminders and the patient-link message, in English and Spanish.
//!
//! The words live in Markdown templates that clinicians edit (`letters/default/` in
//! the repository, compiled into the binary; a department points irflow at its own
//! copy with the `letters_dir` setting). A template is Markdown with
//! [MiniJinja](https://docs.rs/minijinja) tags; it is given [`LetterFacts`] —
//! everything already computed by the caller from the case, the rule pack and the
//! screening — with every date and time already written out in the letter's
//! language. This crate decides nothing clinical: it puts facts into words.
//!
//! A letter comes out as plain text (SMS, plain email, `Accept: text/plain`), an
//! HTML fragment, and a whole print-ready HTML page with the department's letterhead
//! and a print stylesheet. [`flesch_kincaid_grade`] measures the reading level.
//!
//! Pure: no I/O except [`Templates::load_dir`] reading a template directory.

mod context;
mod facts;
pub mod format;
mod markdown;
mod readability;
mod templates;

use std::fmt;

pub use facts::{
    AppointmentTimes, Department, DiabetesFacts, Guidance, HeldDrug, LastDose, LetterFacts,
    PatientLinkFacts, PremedicationDose, ProcedureFacts,
};
pub use readability::{counts as readability_counts, flesch_kincaid_grade, word_syllables};
pub use templates::{FILES, Templates};

/// A letter's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lang {
    /// English (US).
    En,
    /// Spanish.
    Es,
}

impl Lang {
    /// Every language letters are written in.
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Es];

    /// `en` or `es` (any case, surrounding spaces ignored); anything else is `None`.
    pub fn parse(raw: &str) -> Option<Lang> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "en" => Some(Lang::En),
            "es" => Some(Lang::Es),
            _ => None,
        }
    }

    /// The language of a BCP 47 tag such as a patient's preferred language
    /// (`es-MX` → Spanish), if letters are written in it.
    pub fn from_preference(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next().unwrap_or("");
        Lang::parse(primary)
    }

    /// `en` or `es`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Es => "es",
        }
    }

    /// The language's own name ("English", "Español").
    pub const fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Es => "Español",
        }
    }
}

impl fmt::Display for Lang {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LetterKind {
    /// How to prepare: what, when, where, what to bring, medicines, risks.
    Instructions,
    /// After the procedure: activity, restarting blood thinners, warning signs.
    Discharge,
    /// The day a blood-thinner hold starts: "take your last dose tonight".
    ReminderHoldStart,
    /// Three days before the appointment.
    ReminderThreeDays,
    /// The day before the appointment.
    ReminderOneDay,
    /// The message that sends the patient their personal link.
    PatientLink,
}

impl LetterKind {
    /// Every kind.
    pub const ALL: [LetterKind; 6] = [
        LetterKind::Instructions,
        LetterKind::Discharge,
        LetterKind::ReminderHoldStart,
        LetterKind::ReminderThreeDays,
        LetterKind::ReminderOneDay,
        LetterKind::PatientLink,
    ];

    /// Stable name (also the outbox's message kind): `instructions`, `discharge`,
    /// `reminder_hold_start`, `reminder_3_days`, `reminder_1_day`, `patient_link`.
    pub const fn as_str(self) -> &'static str {
        match self {
            LetterKind::Instructions => "instructions",
            LetterKind::Discharge => "discharge",
            LetterKind::ReminderHoldStart => "reminder_hold_start",
            LetterKind::ReminderThreeDays => "reminder_3_days",
            LetterKind::ReminderOneDay => "reminder_1_day",
            LetterKind::PatientLink => "patient_link",
        }
    }

    /// The template's file name in each language directory (`instructions.md`, ...).
    pub const fn file_name(self) -> &'static str {
        match self {
            LetterKind::Instructions => "instructions.md",
            LetterKind::Discharge => "discharge.md",
            LetterKind::ReminderHoldStart => "reminder-hold-start.md",
            LetterKind::ReminderThreeDays => "reminder-3-days.md",
            LetterKind::ReminderOneDay => "reminder-1-day.md",
            LetterKind::PatientLink => "patient-link.md",
        }
    }
}

impl fmt::Display for LetterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A composed letter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    /// Which letter.
    pub kind: LetterKind,
    /// Its language.
    pub lang: Lang,
    /// The subject (the template's first `#` heading), e.g. for an email.
    pub subject: String,
    /// Plain text (SMS, plain email, `Accept: text/plain`).
    pub text: String,
    /// An HTML fragment to embed in a page.
    pub html_body: String,
    /// A whole print-ready HTML page: letterhead, the letter, a print stylesheet in
    /// a `<style>` element (see [`Templates::css`]), no navigation.
    pub html_document: String,
}

/// Why a letter could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LetterError {
    /// A template is missing, unreadable or broken. Found when the templates are
    /// loaded (irflow refuses to start), so it names the file and line.
    Template {
        /// The file.
        file: String,
        /// The line, when known.
        line: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// The facts cannot support this letter (e.g. a reminder without an appointment).
    MissingFact(String),
}

impl fmt::Display for LetterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LetterError::Template {
                file,
                line: Some(line),
                message,
            } => write!(f, "letter template {file}, line {line}: {message}"),
            LetterError::Template {
                file,
                line: None,
                message,
            } => write!(f, "letter template {file}: {message}"),
            LetterError::MissingFact(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LetterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_parse_strictly_and_preferences_by_primary_tag() {
        assert_eq!(Lang::parse("es"), Some(Lang::Es));
        assert_eq!(Lang::parse(" EN "), Some(Lang::En));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::parse("es-MX"), None);
        assert_eq!(Lang::from_preference("es-MX"), Some(Lang::Es));
        assert_eq!(Lang::from_preference("en_US"), Some(Lang::En));
        assert_eq!(Lang::from_preference("pt-BR"), None);
        assert_eq!(Lang::from_preference(""), None);
        assert_eq!(LetterKind::ReminderOneDay.as_str(), "reminder_1_day");
        assert_eq!(LetterKind::PatientLink.as_str(), "patient_link");
    }
}
