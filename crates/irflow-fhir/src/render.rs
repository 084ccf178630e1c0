//! irflow records to FHIR resources.

use irflow_domain::catalogue::CPT_SYSTEM;
use irflow_domain::referral::ICD10_CM_SYSTEM;
use irflow_domain::{CaseState, Channel, PriorImaging, Side, Urgency};
use jiff::Timestamp;
use jiff::civil::Date;

use crate::types::*;
use crate::*;

/// What the server knows of a patient.
#[derive(Debug, Clone)]
pub struct PatientView {
    /// Id.
    pub id: i64,
    /// MRN.
    pub mrn: Option<String>,
    /// Family name.
    pub family_name: String,
    /// Given names (space-separated).
    pub given_name: String,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Phone.
    pub phone: Option<String>,
    /// Email.
    pub email: Option<String>,
    /// BCP 47 tag.
    pub preferred_language: String,
}

/// What the server knows of a case, for its ServiceRequest.
#[derive(Debug, Clone)]
pub struct ServiceRequestView {
    /// Case id.
    pub id: i64,
    /// Pathway state.
    pub state: CaseState,
    /// CPT code.
    pub procedure_code: String,
    /// Procedure name.
    pub procedure_name: String,
    /// Levels, e.g. `L4-L5, L5-S1`.
    pub levels: Option<String>,
    /// Side.
    pub side: Option<Side>,
    /// Why.
    pub indication: Option<String>,
    /// ICD-10-CM code.
    pub icd10: Option<String>,
    /// How soon.
    pub urgency: Urgency,
    /// Prior imaging.
    pub prior_imaging: Option<PriorImaging>,
    /// Known blood thinners.
    pub blood_thinners: Option<String>,
    /// Notes.
    pub clinical_notes: Option<String>,
    /// How it arrived.
    pub channel: Option<Channel>,
    /// Patient id.
    pub patient_id: i64,
    /// Patient name for display.
    pub patient_display: String,
    /// Referrer's user id.
    pub requester_id: i64,
    /// Referrer's name.
    pub requester_display: String,
    /// Ordered.
    pub authored_on: Timestamp,
    /// Last changed.
    pub last_updated: Timestamp,
}

/// What the server knows of a user, for their Practitioner.
#[derive(Debug, Clone)]
pub struct PractitionerView {
    /// User id.
    pub id: i64,
    /// Username.
    pub username: String,
    /// Name.
    pub display_name: String,
    /// May sign in.
    pub active: bool,
}

/// A FHIR `instant`/`dateTime` in UTC, to the second.
pub fn instant(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The FHIR `ServiceRequest.status` for a pathway state.
pub fn status_of(state: CaseState) -> &'static str {
    match state {
        CaseState::Returned => "on-hold",
        CaseState::Discharged | CaseState::FollowedUp => "completed",
        CaseState::Cancelled => "revoked",
        CaseState::Referred
        | CaseState::Screening
        | CaseState::Deferred
        | CaseState::AwaitingAction
        | CaseState::Ready
        | CaseState::Scheduled
        | CaseState::Confirmed
        | CaseState::Arrived
        | CaseState::InProcedure
        | CaseState::Recovery
        | CaseState::NoShow => "active",
    }
}

/// The pathway states behind a FHIR status code (for search), or `None` if unknown.
pub fn states_for_status(status: &str) -> Option<Vec<CaseState>> {
    let known = ["active", "on-hold", "completed", "revoked"];
    known.contains(&status).then(|| {
        CaseState::ALL
            .into_iter()
            .filter(|s| status_of(*s) == status)
            .collect()
    })
}

/// A Patient resource.
pub fn patient(p: &PatientView, mrn_system: &str) -> Patient {
    let mut telecom = Vec::new();
    if let Some(phone) = &p.phone {
        telecom.push(ContactPoint {
            system: "phone".into(),
            value: phone.clone(),
        });
    }
    if let Some(email) = &p.email {
        telecom.push(ContactPoint {
            system: "email".into(),
            value: email.clone(),
        });
    }
    Patient {
        resource_type: "Patient",
        id: p.id.to_string(),
        meta: None,
        identifier: p
            .mrn
            .iter()
            .map(|mrn| Identifier {
                use_: Some("usual".into()),
                type_: Some(CodeableConcept {
                    coding: vec![Coding::new(V2_0203, "MR", Some("Medical record number"))],
                    text: None,
                }),
                system: Some(mrn_system.to_owned()),
                value: mrn.clone(),
            })
            .collect(),
        name: vec![HumanName {
            text: None,
            family: Some(p.family_name.clone()),
            given: p.given_name.split_whitespace().map(str::to_owned).collect(),
        }],
        telecom,
        birth_date: p.date_of_birth.to_string(),
        communication: vec![PatientCommunication {
            language: CodeableConcept {
                coding: vec![Coding::new(BCP47, &p.preferred_language, None)],
                text: None,
            },
            preferred: true,
        }],
    }
}

/// A Practitioner resource.
pub fn practitioner(u: &PractitionerView) -> Practitioner {
    Practitioner {
        resource_type: "Practitioner",
        id: u.id.to_string(),
        identifier: vec![Identifier {
            system: Some(USER_SYSTEM.into()),
            value: u.username.clone(),
            ..Identifier::default()
        }],
        active: u.active,
        name: vec![HumanName {
            text: Some(u.display_name.clone()),
            ..HumanName::default()
        }],
    }
}

/// A ServiceRequest resource.
pub fn service_request(c: &ServiceRequestView) -> ServiceRequest {
    let mut extension = vec![Extension::code(EXT_CASE_STATE, c.state.as_str())];
    if let Some(channel) = c.channel {
        extension.push(Extension::code(EXT_CHANNEL, channel.as_str()));
    }
    if let Some(bt) = &c.blood_thinners {
        extension.push(Extension::string(EXT_BLOOD_THINNERS, bt));
    }
    if let Some(pi) = &c.prior_imaging {
        let mut parts = vec![Extension::code("modality", pi.modality.as_str())];
        if let Some(d) = pi.date {
            parts.push(Extension::date("date", &d.to_string()));
        }
        if let Some(place) = &pi.place {
            parts.push(Extension::string("place", place));
        }
        extension.push(Extension::complex(EXT_PRIOR_IMAGING, parts));
    }
    let mut body_site: Vec<CodeableConcept> = c
        .levels
        .iter()
        .flat_map(|l| {
            l.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .map(|level| CodeableConcept {
            coding: vec![Coding::new(SPINE_LEVEL_SYSTEM, &level, Some(&level))],
            text: Some(level),
        })
        .collect();
    if let Some(side) = c.side
        && let Some((_, code, display)) = LATERALITY.iter().find(|(s, _, _)| *s == side)
    {
        body_site.push(CodeableConcept {
            coding: vec![Coding::new(SNOMED, code, Some(display))],
            text: Some(side.label().to_owned()),
        });
    }
    let reason_code = match (&c.indication, &c.icd10) {
        (None, None) => Vec::new(),
        (text, code) => vec![CodeableConcept {
            coding: code
                .iter()
                .map(|c| Coding::new(ICD10_CM_SYSTEM, c, None))
                .collect(),
            text: text.clone(),
        }],
    };
    ServiceRequest {
        resource_type: "ServiceRequest",
        id: c.id.to_string(),
        meta: Meta {
            last_updated: instant(c.last_updated),
        },
        extension,
        identifier: vec![Identifier {
            use_: Some("official".into()),
            system: Some(REFERRAL_SYSTEM.into()),
            value: referral_number(c.id),
            ..Identifier::default()
        }],
        status: status_of(c.state),
        intent: "order",
        priority: c.urgency.as_str(),
        code: CodeableConcept {
            coding: vec![Coding::new(
                CPT_SYSTEM,
                &c.procedure_code,
                Some(&c.procedure_name),
            )],
            text: Some(c.procedure_name.clone()),
        },
        subject: Reference {
            reference: Some(format!("Patient/{}", c.patient_id)),
            display: Some(c.patient_display.clone()),
            ..Reference::default()
        },
        authored_on: instant(c.authored_on),
        requester: Reference {
            reference: Some(format!("Practitioner/{}", c.requester_id)),
            display: Some(c.requester_display.clone()),
            ..Reference::default()
        },
        reason_code,
        body_site,
        note: c
            .clinical_notes
            .iter()
            .map(|n| Annotation { text: n.clone() })
            .collect(),
    }
}

/// A searchset Bundle of one page.
pub fn searchset<R>(
    entries: Vec<(String, R)>,
    total: u64,
    self_url: String,
    next_url: Option<String>,
    previous_url: Option<String>,
) -> Bundle<R> {
    let mut link = vec![BundleLink {
        relation: "self",
        url: self_url,
    }];
    if let Some(url) = next_url {
        link.push(BundleLink {
            relation: "next",
            url,
        });
    }
    if let Some(url) = previous_url {
        link.push(BundleLink {
            relation: "previous",
            url,
        });
    }
    Bundle {
        resource_type: "Bundle",
        type_: "searchset",
        total,
        link,
        entry: entries
            .into_iter()
            .map(|(full_url, resource)| BundleEntry {
                full_url,
                resource,
                search: BundleSearch { mode: "match" },
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_cover_every_state_and_round_trip_for_search() {
        for state in CaseState::ALL {
            let status = status_of(state);
            assert!(states_for_status(status).expect("known").contains(&state));
        }
        assert!(states_for_status("draft").is_none());
        assert_eq!(
            states_for_status("revoked"),
            Some(vec![CaseState::Cancelled])
        );
    }

    #[test]
    fn a_service_request_renders_levels_side_and_reason() {
        let view = ServiceRequestView {
            id: 12,
            state: CaseState::Screening,
            procedure_code: "64483".into(),
            procedure_name: "Lumbar/sacral transforaminal epidural steroid injection".into(),
            levels: Some("L4-L5, L5-S1".into()),
            side: Some(Side::Left),
            indication: Some("Left L5 radiculopathy".into()),
            icd10: Some("M54.16".into()),
            urgency: Urgency::Urgent,
            prior_imaging: None,
            blood_thinners: Some("aspirin 81 mg".into()),
            clinical_notes: None,
            channel: Some(Channel::Fhir),
            patient_id: 5,
            patient_display: "Doe, Jane".into(),
            requester_id: 7,
            requester_display: "Dr. Shah".into(),
            authored_on: Timestamp::UNIX_EPOCH,
            last_updated: Timestamp::UNIX_EPOCH,
        };
        let json = serde_json::to_value(service_request(&view)).expect("serialises");
        assert_eq!(json["resourceType"], "ServiceRequest");
        assert_eq!(json["status"], "active");
        assert_eq!(json["priority"], "urgent");
        assert_eq!(json["identifier"][0]["value"], "IRF-000012");
        assert_eq!(json["bodySite"][0]["coding"][0]["code"], "L4-L5");
        assert_eq!(json["bodySite"][1]["coding"][0]["code"], "L5-S1");
        assert_eq!(json["bodySite"][2]["coding"][0]["code"], "7771000");
        assert_eq!(
            json["reasonCode"][0]["coding"][0]["system"],
            ICD10_CM_SYSTEM
        );
        assert_eq!(json["authoredOn"], "1970-01-01T00:00:00Z");
        assert!(json.get("note").is_none(), "no empty arrays");
    }
}
