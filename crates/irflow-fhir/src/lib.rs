//! FHIR R4 (4.0.1) for irflow: hand-written wire types for the resources served
//! (Patient, Practitioner, ServiceRequest, Bundle, OperationOutcome,
//! CapabilityStatement; Appointment, Slot, Schedule and Location in `scheduling`;
//! Procedure, MedicationAdministration and DocumentReference in `procedure`),
//! the mapping from irflow's records to them, and the
//! parsing of an incoming ServiceRequest into a referral form, with every problem
//! reported at its FHIRPath.
//!
//! This crate knows FHIR; it knows nothing of HTTP or SQL. The server fills the
//! `*View` structs from the store and sends what this crate builds.

pub mod capability;
pub mod imaging;
pub mod order;
pub mod procedure;
pub mod questionnaire;
pub mod render;
pub mod scheduling;
pub mod types;

/// The FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";
/// The media type of FHIR JSON.
pub const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// System of the referral number (`ServiceRequest.identifier`).
pub const REFERRAL_SYSTEM: &str = "urn:irflow:referral";
/// System of irflow usernames (`Practitioner.identifier`).
pub const USER_SYSTEM: &str = "urn:irflow:user";
/// Default system of the hospital's MRNs (a department sets its own OID or URL).
pub const DEFAULT_MRN_SYSTEM: &str = "urn:irflow:mrn";
/// Code system of spinal levels (`ServiceRequest.bodySite`), codes like `L4-L5`.
pub const SPINE_LEVEL_SYSTEM: &str = "urn:irflow:spine-level";
/// SNOMED CT.
pub const SNOMED: &str = "http://snomed.info/sct";
/// Languages (BCP 47).
pub const BCP47: &str = "urn:ietf:bcp:47";
/// HL7 v2 identifier types (for `MR`).
pub const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
/// Extension: where the case is on irflow's pathway (`valueCode`).
pub const EXT_CASE_STATE: &str = "urn:irflow:fhir:StructureDefinition:case-state";
/// Extension: blood thinners the referrer knows of (`valueString`).
pub const EXT_BLOOD_THINNERS: &str = "urn:irflow:fhir:StructureDefinition:known-blood-thinners";
/// Extension: prior imaging (complex: `modality` valueCode mri|ct, `date` valueDate, `place` valueString).
pub const EXT_PRIOR_IMAGING: &str = "urn:irflow:fhir:StructureDefinition:prior-imaging";
/// Extension: how the referral arrived (`valueCode` online|phone|fhir).
pub const EXT_CHANNEL: &str = "urn:irflow:fhir:StructureDefinition:referral-channel";

/// SNOMED CT laterality codes and irflow's sides.
pub const LATERALITY: [(irflow_domain::Side, &str, &str); 3] = [
    (irflow_domain::Side::Left, "7771000", "Left"),
    (irflow_domain::Side::Right, "24028007", "Right"),
    (irflow_domain::Side::Bilateral, "51440002", "Right and left"),
];

/// The referral number people see: `IRF-000042`.
pub fn referral_number(case_id: i64) -> String {
    format!("IRF-{case_id:06}")
}
