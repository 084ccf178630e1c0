//! Outside imaging as FHIR R4 `ImagingStudy`: the studies attached to a case (a study
//! still waiting in the reconciliation queue belongs to no patient and is not served).
//!
//! The server fills [`ImagingStudyView`] from the store; this module builds the
//! resource. DICOM UIDs go where R4 puts them: the Study Instance UID as an
//! `urn:dicom:uid` identifier (`urn:oid:...`), series and instance UIDs in `uid`, the
//! SOP class as an `urn:ietf:rfc:3986` coding.

use jiff::civil::Date;
use serde::Serialize;

use crate::V2_0203;
use crate::scheduling::DICOM_DCM;
use crate::types::{CodeableConcept, Coding, Identifier, Reference};

/// Identifier system of DICOM UIDs.
pub const DICOM_UID_SYSTEM: &str = "urn:dicom:uid";
/// Code system of SOP classes (URIs, `urn:oid:...`).
pub const RFC3986: &str = "urn:ietf:rfc:3986";

/// What the server knows of one stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// SOP Instance UID.
    pub uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Instance Number, when the file had one.
    pub number: Option<i64>,
}

/// One series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesView {
    /// Series Instance UID.
    pub uid: String,
    /// Series Number.
    pub number: Option<i64>,
    /// Modality code (`MR`, `CT`, ...).
    pub modality: String,
    /// Series description.
    pub description: String,
    /// Body Part Examined (`LSPINE`, ...).
    pub body_part: String,
    /// Its instances.
    pub instances: Vec<InstanceView>,
}

/// One study attached to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagingStudyView {
    /// irflow's id of the study.
    pub id: i64,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Accession number (possibly empty).
    pub accession_number: String,
    /// The patient (irflow's id) the study was attached to.
    pub patient_id: i64,
    /// The patient's name for people.
    pub patient_display: String,
    /// The case (`ServiceRequest/{id}`) it was attached to.
    pub case_id: i64,
    /// Study date.
    pub started: Option<Date>,
    /// Study description.
    pub description: String,
    /// Its series.
    pub series: Vec<SeriesView>,
}

/// `ImagingStudy.series.instance`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagingStudyInstance {
    /// SOP Instance UID.
    pub uid: String,
    /// SOP class.
    pub sop_class: Coding,
    /// Instance number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
}

/// `ImagingStudy.series`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagingStudySeries {
    /// Series Instance UID.
    pub uid: String,
    /// Series number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number: Option<u32>,
    /// Modality (DICOM DCM code).
    pub modality: Coding,
    /// Series description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Instances in the series.
    pub number_of_instances: u32,
    /// Body part examined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_site: Option<Coding>,
    /// The instances.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instance: Vec<ImagingStudyInstance>,
}

/// `ImagingStudy`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ImagingStudy {
    /// Always `ImagingStudy`.
    pub resource_type: &'static str,
    /// Logical id (irflow's study id).
    pub id: String,
    /// Study Instance UID and accession number.
    pub identifier: Vec<Identifier>,
    /// Always `available`: the originals are stored.
    pub status: &'static str,
    /// The modalities in the study.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modality: Vec<Coding>,
    /// The patient.
    pub subject: Reference,
    /// When the study was done (the study date).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// The order it was brought for.
    pub based_on: Vec<Reference>,
    /// Number of series.
    pub number_of_series: u32,
    /// Number of instances.
    pub number_of_instances: u32,
    /// Study description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The series.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<ImagingStudySeries>,
}

/// Whether a UID fits FHIR's `id` type (which R4 uses for series and instance UIDs):
/// 1-64 of letters, digits, `-` and `.`.
fn fhir_id(uid: &str) -> bool {
    (1..=64).contains(&uid.len())
        && uid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
}

/// A DICOM UID (digits and dots) usable in `urn:oid:`.
fn oid(uid: &str) -> bool {
    (1..=64).contains(&uid.len()) && uid.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn unsigned(n: Option<i64>) -> Option<u32> {
    n.and_then(|n| u32::try_from(n).ok())
}

fn text(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

fn modality(code: &str) -> Coding {
    let code = code.trim().to_ascii_uppercase();
    let code = if code.is_empty() {
        "OT".to_owned()
    } else {
        code
    };
    Coding::new(DICOM_DCM, &code, None)
}

/// Body Part Examined as a SNOMED CT coding for the spine's regions (DICOM PS3.16
/// CID 4031); other values keep their text.
pub fn body_site(body_part: &str) -> Option<Coding> {
    let part = body_part.trim().to_ascii_uppercase();
    if part.is_empty() {
        return None;
    }
    let snomed = match part.as_str() {
        "CSPINE" => Some(("122494005", "Cervical spine")),
        "TSPINE" => Some(("122495006", "Thoracic spine")),
        "LSPINE" => Some(("122496007", "Lumbar spine")),
        "SSPINE" => Some(("54735007", "Sacrum")),
        "COCCYX" => Some(("64688005", "Coccyx")),
        "SPINE" => Some(("421060004", "Spine")),
        "PELVIS" => Some(("12921003", "Pelvis")),
        _ => None,
    };
    Some(match snomed {
        Some((code, display)) => Coding::new(crate::SNOMED, code, Some(display)),
        None => Coding {
            display: Some(body_part.trim().to_owned()),
            ..Coding::default()
        },
    })
}

/// The `ImagingStudy` of a study attached to a case.
pub fn imaging_study(s: &ImagingStudyView) -> ImagingStudy {
    let mut identifier = Vec::new();
    if oid(&s.study_instance_uid) {
        identifier.push(Identifier {
            system: Some(DICOM_UID_SYSTEM.to_owned()),
            value: format!("urn:oid:{}", s.study_instance_uid),
            ..Identifier::default()
        });
    }
    if let Some(acc) = text(&s.accession_number) {
        identifier.push(Identifier {
            type_: Some(CodeableConcept {
                coding: vec![Coding::new(V2_0203, "ACSN", Some("Accession ID"))],
                text: None,
            }),
            value: acc,
            ..Identifier::default()
        });
    }
    identifier.push(Identifier {
        system: Some("urn:irflow:imaging-study".to_owned()),
        value: s.id.to_string(),
        ..Identifier::default()
    });
    let series: Vec<ImagingStudySeries> = s
        .series
        .iter()
        .filter(|se| fhir_id(&se.uid))
        .map(|se| {
            let instance: Vec<ImagingStudyInstance> = se
                .instances
                .iter()
                .filter(|i| fhir_id(&i.uid))
                .map(|i| ImagingStudyInstance {
                    uid: i.uid.clone(),
                    sop_class: if oid(&i.sop_class_uid) {
                        Coding::new(RFC3986, &format!("urn:oid:{}", i.sop_class_uid), None)
                    } else {
                        Coding {
                            display: Some("unknown SOP class".to_owned()),
                            ..Coding::default()
                        }
                    },
                    number: unsigned(i.number),
                })
                .collect();
            ImagingStudySeries {
                uid: se.uid.clone(),
                number: unsigned(se.number),
                modality: modality(&se.modality),
                description: text(&se.description),
                number_of_instances: count(instance.len()),
                body_site: body_site(&se.body_part),
                instance,
            }
        })
        .collect();
    let mut modalities: Vec<Coding> = Vec::new();
    for se in &series {
        if !modalities.contains(&se.modality) {
            modalities.push(se.modality.clone());
        }
    }
    ImagingStudy {
        resource_type: "ImagingStudy",
        id: s.id.to_string(),
        identifier,
        status: "available",
        modality: modalities,
        subject: Reference {
            reference: Some(format!("Patient/{}", s.patient_id)),
            display: text(&s.patient_display),
            ..Reference::default()
        },
        started: s.started.map(|d| d.to_string()),
        based_on: vec![Reference {
            reference: Some(format!("ServiceRequest/{}", s.case_id)),
            display: Some(crate::referral_number(s.case_id)),
            ..Reference::default()
        }],
        number_of_series: count(series.len()),
        number_of_instances: count(series.iter().map(|se| se.instance.len()).sum()),
        description: text(&s.description),
        series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn view() -> ImagingStudyView {
        ImagingStudyView {
            id: 7,
            study_instance_uid: "1.2.826.0.1.3680043.8.498.1".into(),
            accession_number: "ACC123".into(),
            patient_id: 3,
            patient_display: "Cohen, David".into(),
            case_id: 12,
            started: Some(date(2026, 11, 1)),
            description: "MRI L-SPINE".into(),
            series: vec![
                SeriesView {
                    uid: "1.2.3.4".into(),
                    number: Some(2),
                    modality: "MR".into(),
                    description: "SAG T2".into(),
                    body_part: "LSPINE".into(),
                    instances: vec![
                        InstanceView {
                            uid: "1.2.3.4.1".into(),
                            sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
                            number: Some(1),
                        },
                        InstanceView {
                            uid: "1.2.3.4.2".into(),
                            sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".into(),
                            number: None,
                        },
                    ],
                },
                SeriesView {
                    uid: "1.2.3.5".into(),
                    number: Some(-1),
                    modality: "sr".into(),
                    description: String::new(),
                    body_part: "Knee joint".into(),
                    instances: vec![InstanceView {
                        uid: "not a uid!".into(),
                        sop_class_uid: "x".into(),
                        number: Some(1),
                    }],
                },
            ],
        }
    }

    #[test]
    fn a_study_becomes_an_imaging_study() {
        let json = serde_json::to_value(imaging_study(&view())).expect("serialises");
        assert_eq!(json["resourceType"], "ImagingStudy");
        assert_eq!(json["id"], "7");
        assert_eq!(json["status"], "available");
        assert_eq!(json["subject"]["reference"], "Patient/3");
        assert_eq!(json["basedOn"][0]["reference"], "ServiceRequest/12");
        assert_eq!(json["started"], "2026-11-01");
        assert_eq!(json["identifier"][0]["system"], "urn:dicom:uid");
        assert_eq!(
            json["identifier"][0]["value"],
            "urn:oid:1.2.826.0.1.3680043.8.498.1"
        );
        assert_eq!(json["identifier"][1]["type"]["coding"][0]["code"], "ACSN");
        assert_eq!(json["numberOfSeries"], 2);
        // The instance with a UID FHIR cannot carry is left out, and counted out.
        assert_eq!(json["numberOfInstances"], 2);
        assert_eq!(json["series"][0]["modality"]["code"], "MR");
        assert_eq!(json["series"][0]["bodySite"]["code"], "122496007");
        assert_eq!(json["series"][0]["instance"][0]["number"], 1);
        assert!(json["series"][0]["instance"][1].get("number").is_none());
        assert_eq!(
            json["series"][0]["instance"][0]["sopClass"]["code"],
            "urn:oid:1.2.840.10008.5.1.4.1.1.4"
        );
        assert!(
            json["series"][1].get("number").is_none(),
            "negative numbers are not unsignedInt"
        );
        assert_eq!(json["series"][1]["modality"]["code"], "SR");
        assert_eq!(json["series"][1]["bodySite"]["display"], "Knee joint");
        assert!(json["series"][1].get("instance").is_none());
        assert_eq!(json["modality"].as_array().map(Vec::len), Some(2));
    }
}
