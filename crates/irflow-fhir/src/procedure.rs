//! The procedure record as FHIR R4: `Procedure` (one per case with a signed record,
//! id = the case's id, from the version in force), `MedicationAdministration` (the
//! steroid, the local anaesthetic and the contrast given: ids `{case}-steroid`,
//! `{case}-anaesthetic`, `{case}-contrast`), and `DocumentReference` (the report of
//! each signed version, id = the version's id; an amendment `replaces` the one before).
//!
//! The server fills the `*View` structs from the store; this module builds the
//! resources. Agents are coded in irflow's own system with their generic name; no
//! external drug codes are invented.

use irflow_domain::Side;
use irflow_domain::catalogue::CPT_SYSTEM;
use irflow_domain::procedure_record::{Complication, Given};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::scheduling::{Period, local_instant};
use crate::types::{Annotation, CodeableConcept, Coding, Identifier, Meta, Reference};
use crate::{LATERALITY, REFERRAL_SYSTEM, SNOMED, SPINE_LEVEL_SYSTEM, referral_number};

/// Code system of procedure complications (`Procedure.complication`).
pub const COMPLICATION_SYSTEM: &str = "urn:irflow:procedure-complication";
/// Code system of the agents irflow records (generic names).
pub const AGENT_SYSTEM: &str = "urn:irflow:agent";
/// UCUM.
pub const UCUM: &str = "http://unitsofmeasure.org";
/// LOINC.
pub const LOINC: &str = "http://loinc.org";
/// The LOINC document type of the report: Procedure note.
pub const PROCEDURE_NOTE: (&str, &str) = ("28570-0", "Procedure note");
/// The SNOMED CT code of the report's class: interventional radiology (the specialty).
const IR: (&str, &str) = crate::scheduling::IR_SPECIALTY;

/// A case's signed procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcedureView {
    /// The case (also the Procedure's id and its ServiceRequest).
    pub case_id: i64,
    /// The patient.
    pub patient_id: i64,
    /// "Family, Given".
    pub patient_display: String,
    /// CPT code done.
    pub code: String,
    /// Its name.
    pub code_display: String,
    /// Started.
    pub started: Option<Timestamp>,
    /// Ended.
    pub ended: Option<Timestamp>,
    /// The signing radiologist (user id).
    pub performer_id: i64,
    /// Their name.
    pub performer_display: String,
    /// Levels treated, e.g. `L4-L5`.
    pub levels: Vec<String>,
    /// Side.
    pub side: Option<Side>,
    /// Complication.
    pub complication: Complication,
    /// Its description.
    pub complication_text: Option<String>,
    /// Guidance, radiation, pain scores, notes — for people.
    pub note: Vec<String>,
    /// The report of the version in force (`DocumentReference/{id}`).
    pub report_id: i64,
    /// When the version in force was signed.
    pub signed_at: Timestamp,
}

/// Which agent a MedicationAdministration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKind {
    /// The steroid.
    Steroid,
    /// The local anaesthetic.
    LocalAnaesthetic,
    /// The contrast.
    Contrast,
}

impl AgentKind {
    /// Every kind.
    pub const ALL: [AgentKind; 3] = [
        AgentKind::Steroid,
        AgentKind::LocalAnaesthetic,
        AgentKind::Contrast,
    ];

    /// The id suffix: `{case}-steroid`.
    pub const fn suffix(self) -> &'static str {
        match self {
            AgentKind::Steroid => "steroid",
            AgentKind::LocalAnaesthetic => "anaesthetic",
            AgentKind::Contrast => "contrast",
        }
    }

    /// For people.
    pub const fn label(self) -> &'static str {
        match self {
            AgentKind::Steroid => "Steroid",
            AgentKind::LocalAnaesthetic => "Local anaesthetic",
            AgentKind::Contrast => "Contrast",
        }
    }

    /// The unit of its amount (UCUM).
    pub const fn unit(self) -> &'static str {
        match self {
            AgentKind::Steroid | AgentKind::LocalAnaesthetic => "mg",
            AgentKind::Contrast => "mL",
        }
    }

    /// The id of a case's administration of this kind.
    pub fn id(self, case_id: i64) -> String {
        format!("{case_id}-{}", self.suffix())
    }

    /// Parses `{case}-{kind}`.
    pub fn parse_id(raw: &str) -> Option<(i64, AgentKind)> {
        let (case, kind) = raw.split_once('-')?;
        let case = case.parse::<i64>().ok().filter(|c| *c > 0)?;
        if case.to_string() != case_str(raw) {
            return None;
        }
        let kind = AgentKind::ALL.into_iter().find(|k| k.suffix() == kind)?;
        Some((case, kind))
    }
}

fn case_str(raw: &str) -> &str {
    raw.split_once('-').map_or(raw, |(c, _)| c)
}

/// One agent given during a case's procedure.
#[derive(Debug, Clone, PartialEq)]
pub struct MedicationView {
    /// The procedure (the case).
    pub procedure: ProcedureView,
    /// Which.
    pub kind: AgentKind,
    /// What and how much.
    pub given: Given,
    /// For steroids: particulate or not, when the pack says.
    pub particulate: Option<bool>,
    /// For people: the route and site ("transforaminal epidural, L4-L5 left").
    pub route_text: String,
}

/// One signed version's report.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentView {
    /// The version's id.
    pub id: i64,
    /// The case.
    pub case_id: i64,
    /// The patient.
    pub patient_id: i64,
    /// "Family, Given".
    pub patient_display: String,
    /// 1, 2, ...
    pub version: i64,
    /// The version in force (older ones are superseded).
    pub current: bool,
    /// The version this one amends.
    pub replaces: Option<i64>,
    /// The signing radiologist.
    pub author_id: i64,
    /// Their name.
    pub author_display: String,
    /// Signed at.
    pub signed_at: Timestamp,
    /// The procedure's period.
    pub started: Option<Timestamp>,
    /// The procedure's end.
    pub ended: Option<Timestamp>,
    /// Title.
    pub title: String,
    /// The plain-text report, base64.
    pub text_base64: String,
    /// The HTML report, base64.
    pub html_base64: String,
}

/// `Procedure.performer`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Performer {
    /// Who.
    pub actor: Reference,
}

/// `Procedure`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Procedure {
    /// Always `Procedure`.
    pub resource_type: &'static str,
    /// The case id.
    pub id: String,
    /// Last updated (the signature).
    pub meta: Meta,
    /// The referral number.
    pub identifier: Vec<Identifier>,
    /// The order.
    pub based_on: Vec<Reference>,
    /// Always `completed` (only signed records are served).
    pub status: &'static str,
    /// The procedure done (CPT).
    pub code: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// Start and end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performed_period: Option<Period>,
    /// The radiologist.
    pub performer: Vec<Performer>,
    /// Levels and side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_site: Vec<CodeableConcept>,
    /// The report.
    pub report: Vec<Reference>,
    /// Complications (none: absent).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub complication: Vec<CodeableConcept>,
    /// Guidance, radiation, pain scores, notes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

/// `Quantity` (simple).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Quantity {
    /// The amount.
    pub value: f64,
    /// Unit for people.
    pub unit: String,
    /// UCUM.
    pub system: &'static str,
    /// UCUM code.
    pub code: String,
}

/// `MedicationAdministration.dosage`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Dosage {
    /// For people.
    pub text: String,
    /// How much.
    pub dose: Quantity,
}

/// `MedicationAdministration.performer`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AdministrationPerformer {
    /// Who.
    pub actor: Reference,
}

/// `MedicationAdministration`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MedicationAdministration {
    /// Always `MedicationAdministration`.
    pub resource_type: &'static str,
    /// `{case}-{kind}`.
    pub id: String,
    /// Last updated.
    pub meta: Meta,
    /// The procedure it was part of.
    pub part_of: Vec<Reference>,
    /// Always `completed`.
    pub status: &'static str,
    /// The agent.
    pub medication_codeable_concept: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// During the procedure.
    pub effective_period: Period,
    /// The radiologist.
    pub performer: Vec<AdministrationPerformer>,
    /// Particulate or not, for steroids.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
    /// How much.
    pub dosage: Dosage,
}

/// `Attachment`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    /// Media type.
    pub content_type: &'static str,
    /// Language.
    pub language: &'static str,
    /// The content, base64.
    pub data: String,
    /// Title.
    pub title: String,
    /// When the document was made.
    pub creation: String,
}

/// `DocumentReference.content`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Content {
    /// The document.
    pub attachment: Attachment,
}

/// `DocumentReference.relatesTo`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RelatesTo {
    /// `replaces`.
    pub code: &'static str,
    /// The document replaced.
    pub target: Reference,
}

/// `DocumentReference.context`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DocumentContext {
    /// When the procedure was done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<Period>,
    /// The order and the procedure.
    pub related: Vec<Reference>,
}

/// `DocumentReference`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReference {
    /// Always `DocumentReference`.
    pub resource_type: &'static str,
    /// The version's id.
    pub id: String,
    /// Last updated.
    pub meta: Meta,
    /// `current` or `superseded`.
    pub status: &'static str,
    /// `final` (first version) or `amended`.
    pub doc_status: &'static str,
    /// Procedure note (LOINC).
    #[serde(rename = "type")]
    pub type_: CodeableConcept,
    /// Interventional radiology.
    pub category: Vec<CodeableConcept>,
    /// The patient.
    pub subject: Reference,
    /// When signed.
    pub date: String,
    /// The radiologist.
    pub author: Vec<Reference>,
    /// The radiologist who signed.
    pub authenticator: Reference,
    /// The version this amends.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relates_to: Vec<RelatesTo>,
    /// What it is.
    pub description: String,
    /// The report as plain text and as HTML.
    pub content: Vec<Content>,
    /// The order and the procedure.
    pub context: DocumentContext,
}

fn period(start: Option<Timestamp>, end: Option<Timestamp>, tz: &TimeZone) -> Option<Period> {
    (start.is_some() || end.is_some()).then(|| Period {
        start: start.map(|t| local_instant(t, tz)),
        end: end.map(|t| local_instant(t, tz)),
    })
}

fn patient(id: i64, display: &str) -> Reference {
    Reference {
        reference: Some(format!("Patient/{id}")),
        display: Some(display.to_owned()),
        ..Reference::default()
    }
}

fn practitioner(id: i64, display: &str) -> Reference {
    Reference {
        reference: Some(format!("Practitioner/{id}")),
        display: Some(display.to_owned()),
        ..Reference::default()
    }
}

fn reference(r: String) -> Reference {
    Reference {
        reference: Some(r),
        ..Reference::default()
    }
}

/// The `Procedure` of a case.
pub fn procedure(p: &ProcedureView, tz: &TimeZone) -> Procedure {
    let mut body_site: Vec<CodeableConcept> = p
        .levels
        .iter()
        .map(|level| CodeableConcept {
            coding: vec![Coding::new(SPINE_LEVEL_SYSTEM, level, Some(level))],
            text: Some(level.clone()),
        })
        .collect();
    if let Some(side) = p.side
        && let Some((_, code, display)) = LATERALITY.iter().find(|(s, _, _)| *s == side)
    {
        body_site.push(CodeableConcept {
            coding: vec![Coding::new(SNOMED, code, Some(display))],
            text: Some(side.label().to_owned()),
        });
    }
    let complication = if p.complication == Complication::None {
        Vec::new()
    } else {
        vec![CodeableConcept {
            coding: vec![Coding::new(
                COMPLICATION_SYSTEM,
                p.complication.as_str(),
                Some(p.complication.label()),
            )],
            text: Some(match &p.complication_text {
                Some(t) => format!("{}: {t}", p.complication.label()),
                None => p.complication.label().to_owned(),
            }),
        }]
    };
    Procedure {
        resource_type: "Procedure",
        id: p.case_id.to_string(),
        meta: Meta {
            last_updated: local_instant(p.signed_at, tz),
        },
        identifier: vec![Identifier {
            system: Some(REFERRAL_SYSTEM.to_owned()),
            value: referral_number(p.case_id),
            ..Identifier::default()
        }],
        based_on: vec![reference(format!("ServiceRequest/{}", p.case_id))],
        status: "completed",
        code: CodeableConcept {
            coding: vec![Coding::new(CPT_SYSTEM, &p.code, Some(&p.code_display))],
            text: Some(p.code_display.clone()),
        },
        subject: patient(p.patient_id, &p.patient_display),
        performed_period: period(p.started, p.ended, tz),
        performer: vec![Performer {
            actor: practitioner(p.performer_id, &p.performer_display),
        }],
        body_site,
        report: vec![reference(format!("DocumentReference/{}", p.report_id))],
        complication,
        note: p
            .note
            .iter()
            .map(|t| Annotation { text: t.clone() })
            .collect(),
    }
}

/// The `MedicationAdministration` of one agent.
pub fn medication_administration(m: &MedicationView, tz: &TimeZone) -> MedicationAdministration {
    let p = &m.procedure;
    let unit = m.kind.unit();
    let note = match m.particulate {
        Some(true) => vec![Annotation {
            text: "Particulate steroid".to_owned(),
        }],
        Some(false) => vec![Annotation {
            text: "Non-particulate steroid".to_owned(),
        }],
        None => Vec::new(),
    };
    let effective = period(p.started, p.ended, tz).unwrap_or_else(|| Period {
        start: Some(local_instant(p.signed_at, tz)),
        end: None,
    });
    MedicationAdministration {
        resource_type: "MedicationAdministration",
        id: m.kind.id(p.case_id),
        meta: Meta {
            last_updated: local_instant(p.signed_at, tz),
        },
        part_of: vec![reference(format!("Procedure/{}", p.case_id))],
        status: "completed",
        medication_codeable_concept: CodeableConcept {
            coding: vec![Coding::new(
                AGENT_SYSTEM,
                &m.given.agent,
                Some(&m.given.agent),
            )],
            text: Some(format!("{}: {}", m.kind.label(), m.given.agent)),
        },
        subject: patient(p.patient_id, &p.patient_display),
        effective_period: effective,
        performer: vec![AdministrationPerformer {
            actor: practitioner(p.performer_id, &p.performer_display),
        }],
        note,
        dosage: Dosage {
            text: format!(
                "{} {unit} {}, {}",
                m.given.amount, m.given.agent, m.route_text
            ),
            dose: Quantity {
                value: m.given.amount.as_f64(),
                unit: unit.to_owned(),
                system: UCUM,
                code: unit.to_owned(),
            },
        },
    }
}

/// The `DocumentReference` of one signed version's report.
pub fn document_reference(d: &DocumentView, tz: &TimeZone) -> DocumentReference {
    let creation = local_instant(d.signed_at, tz);
    let attachment = |content_type, data: &str| Content {
        attachment: Attachment {
            content_type,
            language: "en",
            data: data.to_owned(),
            title: d.title.clone(),
            creation: creation.clone(),
        },
    };
    DocumentReference {
        resource_type: "DocumentReference",
        id: d.id.to_string(),
        meta: Meta {
            last_updated: creation.clone(),
        },
        status: if d.current { "current" } else { "superseded" },
        doc_status: if d.version == 1 { "final" } else { "amended" },
        type_: CodeableConcept {
            coding: vec![Coding::new(LOINC, PROCEDURE_NOTE.0, Some(PROCEDURE_NOTE.1))],
            text: Some("Procedure report".to_owned()),
        },
        category: vec![CodeableConcept {
            coding: vec![Coding::new(SNOMED, IR.0, Some(IR.1))],
            text: Some("Interventional radiology".to_owned()),
        }],
        subject: patient(d.patient_id, &d.patient_display),
        date: creation.clone(),
        author: vec![practitioner(d.author_id, &d.author_display)],
        authenticator: practitioner(d.author_id, &d.author_display),
        relates_to: d
            .replaces
            .map(|prev| RelatesTo {
                code: "replaces",
                target: reference(format!("DocumentReference/{prev}")),
            })
            .into_iter()
            .collect(),
        description: format!("{} (version {})", d.title, d.version),
        content: vec![
            attachment("text/plain; charset=utf-8", &d.text_base64),
            attachment("text/html; charset=utf-8", &d.html_base64),
        ],
        context: DocumentContext {
            period: period(d.started, d.ended, tz),
            related: vec![
                reference(format!("ServiceRequest/{}", d.case_id)),
                reference(format!("Procedure/{}", d.case_id)),
            ],
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irflow_domain::procedure_record::Amount;

    fn view() -> ProcedureView {
        ProcedureView {
            case_id: 7,
            patient_id: 3,
            patient_display: "Doe, Jane".into(),
            code: "64483".into(),
            code_display: "Lumbar transforaminal".into(),
            started: Timestamp::from_second(1_790_000_000).ok(),
            ended: Timestamp::from_second(1_790_001_200).ok(),
            performer_id: 4,
            performer_display: "Dr. Kim".into(),
            levels: vec!["L4-L5".into()],
            side: Some(Side::Left),
            complication: Complication::Vasovagal,
            complication_text: None,
            note: vec!["Fluoroscopy 42 s".into()],
            report_id: 11,
            signed_at: Timestamp::from_second(1_790_002_000).unwrap_or(Timestamp::UNIX_EPOCH),
        }
    }

    #[test]
    fn a_procedure_carries_code_period_sites_and_complication() {
        let tz = TimeZone::get("America/New_York").unwrap_or(TimeZone::UTC);
        let v = serde_json::to_value(procedure(&view(), &tz)).unwrap_or_default();
        assert_eq!(v["resourceType"], "Procedure");
        assert_eq!(v["code"]["coding"][0]["system"], CPT_SYSTEM);
        assert_eq!(v["subject"]["reference"], "Patient/3");
        assert!(
            v["performedPeriod"]["start"]
                .as_str()
                .is_some_and(|s| s.ends_with("-04:00") || s.ends_with("-05:00"))
        );
        assert_eq!(v["bodySite"][1]["coding"][0]["code"], "7771000");
        assert_eq!(v["complication"][0]["coding"][0]["code"], "vasovagal");
        assert_eq!(v["report"][0]["reference"], "DocumentReference/11");
        let none = Procedure {
            ..procedure(
                &ProcedureView {
                    complication: Complication::None,
                    ..view()
                },
                &tz,
            )
        };
        assert!(none.complication.is_empty());
    }

    #[test]
    fn administrations_have_ids_per_agent() {
        let tz = TimeZone::UTC;
        let m = MedicationView {
            procedure: view(),
            kind: AgentKind::Steroid,
            given: Given {
                agent: "dexamethasone".into(),
                amount: Amount::parse("10").unwrap_or(Amount::whole(0)),
            },
            particulate: Some(false),
            route_text: "transforaminal epidural".into(),
        };
        let v = serde_json::to_value(medication_administration(&m, &tz)).unwrap_or_default();
        assert_eq!(v["id"], "7-steroid");
        assert_eq!(v["partOf"][0]["reference"], "Procedure/7");
        assert_eq!(v["dosage"]["dose"]["value"], 10.0);
        assert_eq!(v["dosage"]["dose"]["code"], "mg");
        assert_eq!(
            AgentKind::parse_id("7-steroid"),
            Some((7, AgentKind::Steroid))
        );
        assert_eq!(AgentKind::parse_id("07-steroid"), None);
        assert_eq!(AgentKind::parse_id("7-aspirin"), None);
        assert_eq!(AgentKind::parse_id("x-contrast"), None);
    }
}
