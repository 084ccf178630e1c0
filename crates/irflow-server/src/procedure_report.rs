//! The procedure report: what the radiologist signed, worded for the referring
//! provider, as plain text and as HTML (every value escaped). The same report goes
//! to the referrer through the outbox and is served as a FHIR `DocumentReference`.

use irflow_domain::CaseId;
use irflow_domain::catalogue::Modality;
use irflow_domain::procedure_record::{Complication, Given, ProcedureRecordDetails};
use irflow_store::ProcedureRecordVersion;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

use crate::views::local_time;

/// What a report is made from.
#[derive(Debug)]
pub(crate) struct ReportFacts<'a> {
    pub(crate) department: &'a str,
    pub(crate) patient_name: &'a str,
    pub(crate) date_of_birth: Date,
    pub(crate) mrn: Option<&'a str>,
    pub(crate) case_id: CaseId,
    pub(crate) referrer_name: &'a str,
    pub(crate) version: &'a ProcedureRecordVersion,
    pub(crate) details: &'a ProcedureRecordDetails,
    pub(crate) started: Option<Timestamp>,
    pub(crate) ended: Option<Timestamp>,
    pub(crate) tz: &'a TimeZone,
}

/// A report, ready to send or serve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// "Procedure report: ..." (the email's subject, the document's title).
    pub(crate) title: String,
    /// Plain text.
    pub(crate) text: String,
    /// An HTML fragment (a heading and a table).
    pub(crate) html: String,
}

fn given(g: &Option<Given>, unit: &str) -> String {
    match g {
        Some(g) => format!("{} {} {unit}", g.agent, g.amount),
        None => "none".to_owned(),
    }
}

/// The record's clinical lines (label, value), in reading order. Also the FHIR
/// `Procedure.note`.
pub(crate) fn record_lines(d: &ProcedureRecordDetails) -> Vec<(&'static str, String)> {
    let mut lines = vec![
        (
            "Procedure",
            format!("{} (CPT {})", d.procedure_name, d.procedure_code),
        ),
        (
            "Levels",
            d.levels
                .as_ref()
                .map_or_else(|| "not applicable".to_owned(), ToString::to_string),
        ),
        ("Side", d.side.label().to_owned()),
        ("Guidance", d.guidance.label().to_owned()),
        ("Contrast", given(&d.contrast, "mL")),
        ("Steroid", given(&d.steroid, "mg")),
        ("Local anaesthetic", given(&d.anaesthetic, "mg")),
    ];
    match d.guidance {
        Modality::Fluoroscopy => {
            lines.push((
                "Fluoroscopy time",
                d.fluoroscopy_seconds
                    .map_or_else(String::new, |s| format!("{s} s")),
            ));
            lines.push((
                "Dose-area product",
                d.dap.map_or_else(String::new, |a| format!("{a} mGy·cm²")),
            ));
        }
        Modality::Ct => lines.push((
            "CT dose-length product",
            d.dlp.map_or_else(String::new, |a| format!("{a} mGy·cm")),
        )),
    }
    lines.push((
        "Pain (0-10)",
        format!("{} before, {} right after", d.pain_before, d.pain_after),
    ));
    lines.push((
        "Complications",
        match (d.complication, &d.complication_text) {
            (Complication::None, None) => "none".to_owned(),
            (c, Some(t)) => format!("{}: {t}", c.label()),
            (c, None) => c.label().to_owned(),
        },
    ));
    if let Some(n) = &d.notes {
        lines.push(("Notes", n.clone()));
    }
    lines
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
}

/// Builds the report of one signed version.
pub(crate) fn report(f: &ReportFacts<'_>) -> Report {
    let d = f.details;
    let signed = f.version.signed.as_ref();
    let performed = match (f.started, f.ended) {
        (Some(s), Some(e)) => format!("{} to {}", local_time(s, f.tz), local_time(e, f.tz)),
        (Some(s), None) => local_time(s, f.tz),
        _ => signed.map_or_else(String::new, |s| local_time(s.at, f.tz)),
    };
    let mut lines: Vec<(&'static str, String)> = vec![
        ("Patient", f.patient_name.to_owned()),
        ("Date of birth", f.date_of_birth.to_string()),
        ("MRN", f.mrn.unwrap_or("—").to_owned()),
        ("Referral", irflow_fhir::referral_number(f.case_id.get())),
        ("Referring provider", f.referrer_name.to_owned()),
        ("Performed", performed),
    ];
    lines.extend(record_lines(d));
    lines.push((
        "Signed",
        signed.map_or_else(String::new, |s| {
            format!("{} at {}", s.name, local_time(s.at, f.tz))
        }),
    ));
    if f.version.version > 1 {
        lines.push((
            "Amended",
            format!(
                "version {}: {}",
                f.version.version,
                d.amendment_reason.as_deref().unwrap_or_default()
            ),
        ));
    }
    let title = format!(
        "Procedure report: {} ({})",
        d.procedure_name,
        irflow_fhir::referral_number(f.case_id.get())
    );
    let mut text = format!("{}\n{title}\n\n", f.department);
    for (label, value) in &lines {
        text.push_str(&format!("{label}: {value}\n"));
    }
    let mut html = format!(
        "<h2>{}</h2>\n<p>{}</p>\n<table>\n",
        escape(&title),
        escape(f.department)
    );
    for (label, value) in &lines {
        html.push_str(&format!(
            "<tr><th scope=\"row\">{}</th><td>{}</td></tr>\n",
            escape(label),
            escape(value)
        ));
    }
    html.push_str("</table>\n");
    Report { title, text, html }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irflow_domain::procedure_record::{Amount, ProcedureRecordForm};
    use irflow_domain::{CaseId, Side, UserId};
    use irflow_store::Signature;

    #[test]
    fn values_are_escaped_in_html() {
        let details = ProcedureRecordDetails {
            procedure_code: "64483".into(),
            procedure_name: "Lumbar <transforaminal>".into(),
            levels: irflow_domain::SpineLevels::parse("L4-L5").ok(),
            side: Side::Left,
            guidance: Modality::Fluoroscopy,
            contrast: None,
            steroid: Some(Given {
                agent: "dexamethasone".into(),
                amount: Amount::whole(10),
            }),
            anaesthetic: None,
            fluoroscopy_seconds: Some(42),
            dap: Some(Amount::whole(300)),
            dlp: None,
            pain_before: 8,
            pain_after: 2,
            complication: Complication::Other,
            complication_text: Some("<script>x</script>".into()),
            notes: None,
            amendment_reason: None,
            particulate_acknowledged: false,
        };
        let version = ProcedureRecordVersion {
            id: 1,
            case_id: CaseId::new(5),
            version: 1,
            form: ProcedureRecordForm::from_details(&details),
            procedure_name: Some(details.procedure_name.clone()),
            created_by: "radiologist".into(),
            created_at: Timestamp::UNIX_EPOCH,
            updated_at: Timestamp::UNIX_EPOCH,
            signed: Some(Signature {
                user_id: UserId::new(4),
                username: "radiologist".into(),
                name: "Dr. Kim".into(),
                at: Timestamp::UNIX_EPOCH,
            }),
        };
        let r = report(&ReportFacts {
            department: "Spine & Pain",
            patient_name: "Doe, Jane",
            date_of_birth: jiff::civil::date(1960, 1, 2),
            mrn: None,
            case_id: CaseId::new(5),
            referrer_name: "Dr. Shah",
            version: &version,
            details: &details,
            started: None,
            ended: None,
            tz: &TimeZone::UTC,
        });
        assert!(r.html.contains("&lt;script&gt;") && !r.html.contains("<script>"));
        assert!(r.html.contains("Spine &amp; Pain"));
        assert!(r.text.contains("Steroid: dexamethasone 10 mg"));
        assert!(r.text.contains("Pain (0-10): 8 before, 2 right after"));
        assert!(r.title.contains("IRF-000005"));
    }
}
