//! The template set: loaded from the built-in copy or a department's directory,
//! checked before use (every template compiles and renders with sample facts), and
//! rendered into [`Letter`]s.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use minijinja::value::{Serde, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};

use crate::facts::*;
use crate::markdown::{escape_html, escape_value};
use crate::{Lang, Letter, LetterError, LetterKind, context, markdown};

/// The files of a template directory, besides the optional `letter.css`,
/// `README.md` and `{lang}/procedures.toml`: one template per language and kind.
pub const FILES: [&str; 6] = [
    "instructions.md",
    "discharge.md",
    "reminder-hold-start.md",
    "reminder-3-days.md",
    "reminder-1-day.md",
    "patient-link.md",
];

macro_rules! builtin {
    ($lang:literal, $file:literal) => {
        (
            concat!($lang, "/", $file),
            include_str!(concat!("../../../letters/default/", $lang, "/", $file)),
        )
    };
}

/// The built-in templates (`letters/default/` in the repository).
const BUILTIN: [(&str, &str); 12] = [
    builtin!("en", "instructions.md"),
    builtin!("en", "discharge.md"),
    builtin!("en", "reminder-hold-start.md"),
    builtin!("en", "reminder-3-days.md"),
    builtin!("en", "reminder-1-day.md"),
    builtin!("en", "patient-link.md"),
    builtin!("es", "instructions.md"),
    builtin!("es", "discharge.md"),
    builtin!("es", "reminder-hold-start.md"),
    builtin!("es", "reminder-3-days.md"),
    builtin!("es", "reminder-1-day.md"),
    builtin!("es", "patient-link.md"),
];

const BUILTIN_PROCEDURES: [(&str, &str); 1] = [(
    "es/procedures.toml",
    include_str!("../../../letters/default/es/procedures.toml"),
)];

const BUILTIN_CSS: &str = include_str!("../../../letters/default/letter.css");

/// A checked set of letter templates, ready to render.
pub struct Templates {
    env: Environment<'static>,
    /// Template name (`en/instructions.md`) → the file it came from, for messages.
    files: BTreeMap<String, String>,
    /// (language, CPT code) → the procedure's plain name in that language.
    procedure_names: BTreeMap<(Lang, String), String>,
    css: String,
    origin: String,
}

impl fmt::Debug for Templates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Templates")
            .field("origin", &self.origin)
            .field("templates", &self.files.len())
            .finish_non_exhaustive()
    }
}

fn template_name(lang: Lang, kind: LetterKind) -> String {
    format!("{}/{}", lang.as_str(), kind.file_name())
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Block tags on their own lines leave no blank lines behind.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .trim_blocks(true)
        .lstrip_blocks(true)
        .build()
    {
        env.set_syntax(syntax);
    }
    // A misspelt name is an error at start-up, not a blank in a patient's letter.
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_formatter(|out, _state, value| {
        if value.is_undefined() || value.is_none() {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "this value may be empty: print it inside {% if ... %}",
            ));
        }
        out.write_str(&escape_value(&value.to_string()))
            .map_err(|_| Error::new(ErrorKind::WriteFailure, "could not write"))
    });
    env
}

fn template_error(
    files: &BTreeMap<String, String>,
    name: &str,
    e: &Error,
    what: &str,
) -> LetterError {
    let file = e
        .name()
        .and_then(|n| files.get(n))
        .or_else(|| files.get(name))
        .cloned()
        .unwrap_or_else(|| name.to_owned());
    let detail = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    LetterError::Template {
        file,
        line: e.line(),
        message: format!("{what}{detail}"),
    }
}

fn parse_procedures(
    file: &str,
    text: &str,
    lang: Lang,
    into: &mut BTreeMap<(Lang, String), String>,
) -> Result<(), LetterError> {
    let table: BTreeMap<String, String> =
        toml::from_str(text).map_err(|e| LetterError::Template {
            file: file.to_owned(),
            line: e
                .span()
                .map(|s| text[..s.start.min(text.len())].lines().count().max(1)),
            message: format!(
                "not a list of `\"CPT code\" = \"plain name\"` lines: {}",
                e.message()
            ),
        })?;
    for (code, name) in table {
        if name.trim().is_empty() {
            return Err(LetterError::Template {
                file: file.to_owned(),
                line: None,
                message: format!("the name of {code} is empty"),
            });
        }
        into.insert((lang, code.trim().to_owned()), name.trim().to_owned());
    }
    Ok(())
}

impl Templates {
    /// The built-in templates, checked.
    pub fn builtin() -> Result<Self, LetterError> {
        let mut sources = Vec::new();
        for (name, text) in BUILTIN {
            sources.push((
                name.to_owned(),
                format!("letters/default/{name}"),
                text.to_owned(),
            ));
        }
        let mut names = BTreeMap::new();
        for (name, text) in BUILTIN_PROCEDURES {
            let lang = if name.starts_with("es/") {
                Lang::Es
            } else {
                Lang::En
            };
            parse_procedures(&format!("letters/default/{name}"), text, lang, &mut names)?;
        }
        Self::build(
            sources,
            names,
            BUILTIN_CSS.to_owned(),
            "built-in".to_owned(),
        )
    }

    /// A department's template directory: `en/` and `es/`, each with every file of
    /// [`FILES`] and optionally `procedures.toml`; optionally `letter.css` (else the
    /// built-in stylesheet). Everything is checked; a missing or broken file is
    /// refused with its path (and line).
    pub fn load_dir(dir: &Path) -> Result<Self, LetterError> {
        let refuse = |file: &Path, message: String| LetterError::Template {
            file: file.display().to_string(),
            line: None,
            message,
        };
        if !dir.is_dir() {
            return Err(refuse(
                dir,
                "is not a directory; it must hold en/ and es/ with the letter templates (copy letters/default to start)".to_owned(),
            ));
        }
        let entries = std::fs::read_dir(dir).map_err(|e| refuse(dir, e.to_string()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir()
                && !name.starts_with('.')
                && !Lang::ALL.iter().any(|l| l.as_str() == name)
            {
                return Err(refuse(
                    &path,
                    "letters are written in en and es only; remove this directory or rename it"
                        .to_owned(),
                ));
            }
        }
        let mut sources = Vec::new();
        let mut names = BTreeMap::new();
        for lang in Lang::ALL {
            let lang_dir = dir.join(lang.as_str());
            if let Ok(entries) = std::fs::read_dir(&lang_dir) {
                for entry in entries.flatten() {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.ends_with(".md") && !FILES.contains(&name.as_str()) {
                        return Err(refuse(
                            &entry.path(),
                            format!(
                                "is not a letter irflow knows; the letters are {}",
                                FILES.join(", ")
                            ),
                        ));
                    }
                }
            }
            for kind in LetterKind::ALL {
                let path = lang_dir.join(kind.file_name());
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    refuse(
                        &path,
                        if e.kind() == std::io::ErrorKind::NotFound {
                            "is missing: every letter needs a template in each language".to_owned()
                        } else {
                            format!("cannot be read: {e}")
                        },
                    )
                })?;
                sources.push((template_name(lang, kind), path.display().to_string(), text));
            }
            let procedures = lang_dir.join("procedures.toml");
            if procedures.exists() {
                let text = std::fs::read_to_string(&procedures)
                    .map_err(|e| refuse(&procedures, format!("cannot be read: {e}")))?;
                parse_procedures(&procedures.display().to_string(), &text, lang, &mut names)?;
            }
        }
        let css_path = dir.join("letter.css");
        let css = if css_path.exists() {
            std::fs::read_to_string(&css_path)
                .map_err(|e| refuse(&css_path, format!("cannot be read: {e}")))?
        } else {
            BUILTIN_CSS.to_owned()
        };
        if css.to_ascii_lowercase().contains("</style") {
            return Err(refuse(&css_path, "must not contain </style>".to_owned()));
        }
        Self::build(sources, names, css, dir.display().to_string())
    }

    fn build(
        sources: Vec<(String, String, String)>,
        procedure_names: BTreeMap<(Lang, String), String>,
        css: String,
        origin: String,
    ) -> Result<Self, LetterError> {
        let mut env = environment();
        let mut files = BTreeMap::new();
        for (name, file, _) in &sources {
            files.insert(name.clone(), file.clone());
        }
        for (name, _, text) in sources {
            env.add_template_owned(name.clone(), text)
                .map_err(|e| template_error(&files, &name, &e, ""))?;
        }
        let templates = Self {
            env,
            files,
            procedure_names,
            css,
            origin,
        };
        templates.check()?;
        Ok(templates)
    }

    /// Renders every template with sample facts of several shapes, so that a
    /// misspelt name, an unguarded empty value or a missing subject is found now.
    fn check(&self) -> Result<(), LetterError> {
        for (shape, facts) in samples() {
            for lang in Lang::ALL {
                for kind in LetterKind::ALL {
                    match self.render(kind, lang, &facts) {
                        Ok(_) | Err(LetterError::MissingFact(_)) => {}
                        Err(LetterError::Template {
                            file,
                            line,
                            message,
                        }) => {
                            return Err(LetterError::Template {
                                file,
                                line,
                                message: format!("{message} (checked with {shape})"),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Where the templates came from: `built-in` or the directory.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The print stylesheet, exactly as placed in each document's `<style>` element
    /// (a server may allow it by its hash in a Content-Security-Policy).
    pub fn css(&self) -> &str {
        &self.css
    }

    /// The procedure's plain name in a language: the language's `procedures.toml`,
    /// else the catalogue's name given in the facts.
    pub fn procedure_name<'a>(&'a self, lang: Lang, facts: &'a ProcedureFacts) -> &'a str {
        self.translated_procedure_name(lang, &facts.code)
            .unwrap_or(facts.plain_name.as_str())
    }

    /// The procedure's plain name in a language's `procedures.toml`, if it has one
    /// (the patient's page and calendar file name the procedure as the letters do).
    pub fn translated_procedure_name(&self, lang: Lang, code: &str) -> Option<&str> {
        self.procedure_names
            .get(&(lang, code.trim().to_owned()))
            .map(String::as_str)
    }

    /// Composes one letter.
    pub fn render(
        &self,
        kind: LetterKind,
        lang: Lang,
        facts: &LetterFacts,
    ) -> Result<Letter, LetterError> {
        let name = template_name(lang, kind);
        let ctx = context::build(
            facts,
            kind,
            lang,
            self.procedure_name(lang, &facts.procedure),
        )?;
        let template = self
            .env
            .get_template(&name)
            .map_err(|e| template_error(&self.files, &name, &e, ""))?;
        let source = template
            .render(Value::from(Serde(&ctx)))
            .map_err(|e| template_error(&self.files, &name, &e, ""))?;
        let rendered = markdown::render(&source);
        let subject = rendered.subject.ok_or_else(|| LetterError::Template {
            file: self.files.get(&name).cloned().unwrap_or(name.clone()),
            line: None,
            message: "a letter starts with a `# ` heading: it is the subject".to_owned(),
        })?;
        let html_document = document(lang, &subject, &rendered.html, &facts.department, &self.css);
        Ok(Letter {
            kind,
            lang,
            subject,
            text: rendered.text,
            html_body: rendered.html,
            html_document,
        })
    }
}

/// A whole page: letterhead, letter, footer; the stylesheet inline so that the page
/// prints, saves and mails as one file.
fn document(lang: Lang, subject: &str, body: &str, dept: &Department, css: &str) -> String {
    let name = escape_html(&dept.name);
    let address = escape_html(&dept.address);
    let phone = escape_html(&dept.phone);
    format!(
        "<!DOCTYPE html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title} · {name}</title>\n<style>{css}</style>\n</head>\n<body>\n\
         <article class=\"letter\">\n<header class=\"letterhead\">\n\
         <p class=\"department\">{name}</p>\n\
         <p class=\"contact\">{address}<br>Tel. <a href=\"tel:{tel}\">{phone}</a></p>\n</header>\n\
         <main>\n{body}</main>\n\
         <footer class=\"letter-footer\">{name} · {address} · Tel. {phone}</footer>\n\
         </article>\n</body>\n</html>\n",
        lang = lang.as_str(),
        title = escape_html(subject),
        tel = escape_html(
            &dept
                .phone
                .chars()
                .filter(|c| c.is_ascii_digit() || *c == '+')
                .collect::<String>()
        ),
    )
}

/// Sample facts of several shapes for the start-up check: everything known; nothing
/// known and nothing booked; a hold without a booked date.
fn samples() -> Vec<(&'static str, LetterFacts)> {
    use jiff::civil::date;
    let tz = jiff::tz::TimeZone::UTC;
    let at = |y: i16, m: i8, d: i8, h: i8, mi: i8| {
        date(y, m, d)
            .at(h, mi, 0, 0)
            .to_zoned_datetime(tz.clone())
            .ok()
    };
    let department = Department {
        name: "Spine Injection Service".to_owned(),
        address: "55 Fruit Street, Boston, MA 02114".to_owned(),
        phone: "617-726-6773".to_owned(),
    };
    let procedure = ProcedureFacts {
        code: "64483".to_owned(),
        plain_name: "Low back nerve root injection".to_owned(),
        guidance: Guidance::Fluoroscopy,
        minutes: 20,
    };
    let appointment = match (
        at(2026, 12, 8, 9, 40),
        at(2026, 12, 8, 10, 0),
        at(2026, 12, 8, 9, 25),
    ) {
        (Some(start), Some(end), Some(arrive_by)) => Some(AppointmentTimes {
            start,
            end,
            arrive_by,
        }),
        _ => None,
    };
    let full = LetterFacts {
        patient_first_name: "Robert".to_owned(),
        procedure: procedure.clone(),
        appointment,
        arrive_minutes_before: 15,
        department: department.clone(),
        imaging_on_file: true,
        blood_thinners: vec![
            HeldDrug {
                drug: "apixaban".to_owned(),
                last_dose: Some(LastDose::Day(date(2026, 12, 5))),
                prescriber_agreed: true,
                prescriber_declined: false,
                restart_at: at(2026, 12, 9, 10, 0),
                restart_hours: Some(24),
            },
            HeldDrug {
                drug: "enoxaparin".to_owned(),
                last_dose: at(2026, 12, 7, 9, 40).map(LastDose::At),
                prescriber_agreed: false,
                prescriber_declined: false,
                restart_at: None,
                restart_hours: Some(12),
            },
            HeldDrug {
                drug: "clopidogrel".to_owned(),
                last_dose: None,
                prescriber_agreed: false,
                prescriber_declined: true,
                restart_at: None,
                restart_hours: None,
            },
        ],
        antibiotic_window_days: 10,
        antibiotics_for_infection: true,
        mild_symptoms: Some(true),
        escort: Some(false),
        monitoring_minutes: 60,
        premedication: vec![PremedicationDose {
            what: "prednisone 50 mg by mouth".to_owned(),
            hours_before: 13,
            at: at(2026, 12, 7, 20, 40),
        }],
        diabetes: Some(DiabetesFacts { insulin: true }),
        no_heavy_lifting_days: 7,
        follow_up_days: 14,
        link: Some(PatientLinkFacts {
            url: "https://irflow.example.org/p/abc_def".to_owned(),
            expires: at(2026, 12, 22, 9, 40),
        }),
        reminder_drug: Some("enoxaparin".to_owned()),
        reminder_at: at(2026, 12, 6, 19, 59),
    };
    let minimal = LetterFacts {
        patient_first_name: "Ana".to_owned(),
        procedure: ProcedureFacts {
            guidance: Guidance::Either,
            ..procedure.clone()
        },
        appointment: None,
        arrive_minutes_before: 15,
        department,
        imaging_on_file: false,
        blood_thinners: Vec::new(),
        antibiotic_window_days: 10,
        antibiotics_for_infection: false,
        mild_symptoms: None,
        escort: None,
        monitoring_minutes: 30,
        premedication: Vec::new(),
        diabetes: None,
        no_heavy_lifting_days: 5,
        follow_up_days: 14,
        link: None,
        reminder_drug: None,
        reminder_at: None,
    };
    let unbooked_hold = LetterFacts {
        procedure: ProcedureFacts {
            guidance: Guidance::Ct,
            ..procedure
        },
        blood_thinners: vec![HeldDrug {
            drug: "clopidogrel".to_owned(),
            last_dose: None,
            prescriber_agreed: false,
            prescriber_declined: false,
            restart_at: None,
            restart_hours: None,
        }],
        mild_symptoms: Some(false),
        escort: Some(true),
        premedication: vec![PremedicationDose {
            what: "methylprednisolone 32 mg by mouth".to_owned(),
            hours_before: 12,
            at: None,
        }],
        diabetes: Some(DiabetesFacts { insulin: false }),
        link: Some(PatientLinkFacts {
            url: "https://irflow.example.org/p/xyz".to_owned(),
            expires: None,
        }),
        ..minimal.clone()
    };
    vec![
        ("sample facts: everything known", full),
        ("sample facts: nothing known, not booked", minimal),
        ("sample facts: a hold, not booked", unbooked_hold),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_copy_of_builtin(dir: &Path) {
        for (name, text) in BUILTIN {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("dir");
            std::fs::write(path, text).expect("write");
        }
    }

    #[test]
    fn the_hold_reminder_says_today_or_tomorrow_as_seen_on_the_day_it_is_sent() {
        let t = Templates::builtin().expect("builtin");
        let (_, facts) = samples().into_iter().next().expect("sample");
        // Enoxaparin: no later than Monday, December 7, 2026 at 9:40 AM (UTC here).
        let utc = jiff::tz::TimeZone::UTC;
        let sent = |d: i8, h: i8| {
            jiff::civil::date(2026, 12, d)
                .at(h, 0, 0, 0)
                .to_zoned_datetime(utc.clone())
                .ok()
        };
        for (reminder_at, en, es) in [
            (
                sent(6, 19),
                "no later than 9:40 AM tomorrow, Monday, December 7, 2026.",
                "mañana, lunes, 7 de diciembre de 2026, a más tardar a las 9:40.",
            ),
            (
                sent(7, 6),
                "no later than 9:40 AM today, Monday, December 7, 2026.",
                "hoy, lunes, 7 de diciembre de 2026, a más tardar a las 9:40.",
            ),
            (
                None,
                "no later than Monday, December 7, 2026 at 9:40 AM.",
                "a más tardar el lunes, 7 de diciembre de 2026, a las 9:40.",
            ),
        ] {
            let facts = LetterFacts {
                reminder_at,
                ..facts.clone()
            };
            let english = t
                .render(LetterKind::ReminderHoldStart, Lang::En, &facts)
                .expect("english");
            assert!(english.text.contains(en), "{en:?} in\n{}", english.text);
            assert!(
                english.text.contains("Please arrive by 9:25 AM."),
                "{}",
                english.text
            );
            assert!(
                english
                    .text
                    .contains("To stop these reminders, open your link or call us."),
                "{}",
                english.text
            );
            let spanish = t
                .render(LetterKind::ReminderHoldStart, Lang::Es, &facts)
                .expect("spanish");
            assert!(spanish.text.contains(es), "{es:?} in\n{}", spanish.text);
            assert!(
                spanish.text.contains("llegue a las 9:25."),
                "{}",
                spanish.text
            );
        }
    }

    #[test]
    fn the_builtin_templates_load_and_render() {
        let t = Templates::builtin().expect("built-in templates");
        assert_eq!(t.origin(), "built-in");
        let (_, facts) = samples().remove(0);
        let letter = t
            .render(LetterKind::Instructions, Lang::En, &facts)
            .expect("renders");
        assert!(
            letter.text.contains("Tuesday, December 8, 2026"),
            "{}",
            letter.text
        );
        assert!(
            letter
                .text
                .contains("Clopidogrel\n\n- Your prescriber asked you to keep taking it."),
            "a declined hold is not a stop: {}",
            letter.text
        );
        assert!(letter.html_document.starts_with("<!DOCTYPE html>"));
        assert!(
            letter
                .html_document
                .contains(&format!("<style>{}</style>", t.css()))
        );
        let es = t
            .render(LetterKind::Instructions, Lang::Es, &facts)
            .expect("renders");
        assert!(
            es.text.contains("martes, 8 de diciembre de 2026"),
            "{}",
            es.text
        );
        assert!(es.html_document.contains("<html lang=\"es\">"));
        // The Spanish plain name comes from es/procedures.toml.
        assert!(
            !es.text.contains("Low back nerve root injection"),
            "{}",
            es.text
        );
    }

    #[test]
    fn a_directory_copy_loads_and_its_edits_show() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        let path = dir.path().join("en/reminder-1-day.md");
        std::fs::write(
            &path,
            "# See you tomorrow, {{ patient.first_name }}\n\nOur own words.\n",
        )
        .expect("write");
        let t = Templates::load_dir(dir.path()).expect("loads");
        let (_, facts) = samples().remove(0);
        let letter = t
            .render(LetterKind::ReminderOneDay, Lang::En, &facts)
            .expect("renders");
        assert_eq!(letter.subject, "See you tomorrow, Robert");
        assert_eq!(letter.text, "See you tomorrow, Robert\n\nOur own words.\n");
    }

    fn refused(dir: &Path) -> (String, Option<usize>, String) {
        match Templates::load_dir(dir).expect_err("refused") {
            LetterError::Template {
                file,
                line,
                message,
            } => (file, line, message),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_missing_template_is_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::remove_file(dir.path().join("es/discharge.md")).expect("remove");
        let (file, _, message) = refused(dir.path());
        assert!(file.ends_with("es/discharge.md"), "{file}");
        assert!(message.contains("missing"), "{message}");
        let err = Templates::load_dir(&dir.path().join("nowhere")).expect_err("no dir");
        assert!(err.to_string().contains("is not a directory"), "{err}");
    }

    #[test]
    fn a_syntax_error_names_the_file_and_line() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::write(
            dir.path().join("en/discharge.md"),
            "# After\n\nLine two\n{% if escort %}\nNo end tag\n",
        )
        .expect("write");
        let (file, line, message) = refused(dir.path());
        assert!(file.ends_with("en/discharge.md"), "{file}");
        assert!(line.is_some(), "{message}");
        assert!(message.contains("syntax error"), "{message}");
    }

    #[test]
    fn a_misspelt_name_and_an_unguarded_empty_value_are_found_at_load() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::write(
            dir.path().join("en/patient-link.md"),
            "# Your link\n\nHello {{ patient.first_nme }}.\n",
        )
        .expect("write");
        let (file, line, message) = refused(dir.path());
        assert!(file.ends_with("en/patient-link.md"), "{file}");
        assert_eq!(line, Some(3), "{message}");
        assert!(message.contains("undefined"), "{message}");

        std::fs::write(
            dir.path().join("en/patient-link.md"),
            "# Your link\n\n{{ link.url }}\n\nIt stops working on {{ link.expires.datetime }}.\n",
        )
        .expect("write");
        let (_, line, message) = refused(dir.path());
        assert_eq!(line, Some(5), "{message}");
        assert!(
            message.contains("may be empty") || message.contains("undefined"),
            "{message}"
        );
    }

    #[test]
    fn a_letter_without_a_subject_and_stray_files_are_refused() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::write(dir.path().join("es/reminder-3-days.md"), "Sin título.\n").expect("write");
        let (file, _, message) = refused(dir.path());
        assert!(file.ends_with("es/reminder-3-days.md"), "{file}");
        assert!(message.contains("heading"), "{message}");

        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::write(dir.path().join("en/instuctions.md"), "# typo\n").expect("write");
        let (file, _, message) = refused(dir.path());
        assert!(file.ends_with("instuctions.md"), "{file}");
        assert!(message.contains("not a letter"), "{message}");

        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::create_dir_all(dir.path().join("fr")).expect("dir");
        let (file, _, message) = refused(dir.path());
        assert!(file.ends_with("fr"), "{file}");
        assert!(message.contains("en and es"), "{message}");

        let dir = tempfile::tempdir().expect("temp dir");
        write_copy_of_builtin(dir.path());
        std::fs::write(dir.path().join("es/procedures.toml"), "\"64483\" = \n").expect("write");
        let (file, line, _) = refused(dir.path());
        assert!(file.ends_with("procedures.toml"), "{file}");
        assert_eq!(line, Some(1));
    }

    #[test]
    fn english_letters_read_at_grade_eight_or_below_for_every_sample() {
        let t = Templates::builtin().expect("built-in");
        for (shape, facts) in samples() {
            for kind in LetterKind::ALL {
                let Ok(letter) = t.render(kind, Lang::En, &facts) else {
                    continue;
                };
                let grade = crate::flesch_kincaid_grade(&letter.text);
                if std::env::var_os("IRFLOW_SHOW_LETTERS").is_some() {
                    println!("==== {kind} / {shape}: grade {grade:.2}\n{}", letter.text);
                    let es = t.render(kind, Lang::Es, &facts).expect("Spanish too");
                    println!("---- es\n{}", es.text);
                }
                assert!(grade <= 8.0, "{kind} with {shape}: grade {grade:.2}");
            }
        }
    }

    #[test]
    fn reminders_and_links_need_their_facts() {
        let t = Templates::builtin().expect("built-in");
        let (_, minimal) = samples().remove(1);
        for kind in [
            LetterKind::ReminderHoldStart,
            LetterKind::ReminderOneDay,
            LetterKind::ReminderThreeDays,
            LetterKind::PatientLink,
        ] {
            assert!(
                matches!(
                    t.render(kind, Lang::En, &minimal),
                    Err(LetterError::MissingFact(_))
                ),
                "{kind}"
            );
        }
        assert!(
            t.render(LetterKind::Instructions, Lang::Es, &minimal)
                .is_ok()
        );
        assert!(t.render(LetterKind::Discharge, Lang::Es, &minimal).is_ok());
    }
}
