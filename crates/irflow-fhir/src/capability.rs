//! The CapabilityStatement: exactly what this server does, no more.

use serde_json::{Value, json};

use crate::FHIR_VERSION;

/// The CapabilityStatement for a server at `base_url` (ending in `/fhir/r4`).
pub fn capability_statement(base_url: &str, software_version: &str, date: &str) -> Value {
    json!({
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": date,
        "publisher": "irflow",
        "kind": "instance",
        "software": { "name": "irflow", "version": software_version },
        "implementation": { "description": "irflow spine injection service", "url": base_url },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{
            "mode": "server",
            "documentation": "Authenticate with a bearer token (irflow token issue). Referrers see and order only their own referrals. Paging (ServiceRequest, Appointment, Schedule): _count (1-100, default 20) and _offset. Times are instants with the site's offset.",
            "security": {
                "description": "OAuth-style bearer tokens issued by the irflow administrator; every read and write is audited."
            },
            "resource": [
                {
                    "type": "Appointment",
                    "documentation": "Booked procedures. Referrers see only their own referrals' appointments. Statuses: booked, arrived, noshow, cancelled. Arrive-by time and any recovery chair in extensions (urn:irflow:fhir:StructureDefinition:arrive-by, urn:irflow:fhir:StructureDefinition:recovery-chair).",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id}" },
                        { "name": "date", "type": "date", "documentation": "The start: a date (a whole day at the site) or a time with its offset, with ge, gt, le, lt or eq; repeat to give a range" },
                        { "name": "status", "type": "token", "documentation": "booked, arrived, noshow, cancelled (comma-separated for any of); default: all" },
                        { "name": "actor", "type": "reference", "documentation": "Patient/{id}, Practitioner/{id} (the radiologist) or Location/room-{id}" },
                        { "name": "practitioner", "type": "reference", "documentation": "Practitioner/{id} or {id}: the radiologist" },
                        { "name": "location", "type": "reference", "documentation": "Location/room-{id} or room-{id}" }
                    ]
                },
                {
                    "type": "DocumentReference",
                    "documentation": "The procedure report of each signed version of a procedure record (text/plain and text/html, base64); an amendment is a new document that replaces the one before (status superseded). Referrers see only their own referrals' reports.",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id} (required)" }
                    ]
                },
                {
                    "type": "ImagingStudy",
                    "documentation": "Outside MRI/CT studies attached to a case (studies waiting in the reconciliation queue are not served). Referrers see only their own referrals' studies. Series and instances with their DICOM UIDs; the originals are viewed in irflow.",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id} (required)" }
                    ]
                },
                {
                    "type": "Location",
                    "documentation": "Procedure rooms: Location/room-{id}",
                    "interaction": [{ "code": "read" }]
                },
                {
                    "type": "MedicationAdministration",
                    "documentation": "The steroid, local anaesthetic and contrast given during a procedure, from its signed record: MedicationAdministration/{caseId}-steroid, -anaesthetic, -contrast (partOf the Procedure).",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id} (required)" }
                    ]
                },
                {
                    "type": "Patient",
                    "interaction": [{ "code": "read" }]
                },
                {
                    "type": "Practitioner",
                    "interaction": [{ "code": "read" }]
                },
                {
                    "type": "Procedure",
                    "documentation": "A case's procedure once its record is signed: Procedure/{caseId} (basedOn the ServiceRequest), from the version in force; performedPeriod from the procedure's start and end, complications coded in urn:irflow:procedure-complication.",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id} (required)" }
                    ]
                },
                {
                    "type": "Questionnaire",
                    "documentation": "The screening form: Questionnaire/irflow-screening",
                    "interaction": [{ "code": "read" }]
                },
                {
                    "type": "QuestionnaireResponse",
                    "documentation": "Each stored screening, with the decision in an extension",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "based-on", "type": "reference", "documentation": "ServiceRequest/{id}: the case's screenings (required)" }
                    ]
                },
                {
                    "type": "Schedule",
                    "documentation": "One per active room (Schedule/room-{id}) and per credentialed radiologist (Schedule/radiologist-{userId}); weekly hours in the comment, in the site's local time",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "actor", "type": "reference", "documentation": "Location/room-{id} or Practitioner/{id}" }
                    ]
                },
                {
                    "type": "ServiceRequest",
                    "interaction": [{ "code": "read" }, { "code": "create" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id}" },
                        { "name": "status", "type": "token", "documentation": "active, on-hold, completed, revoked (comma-separated for any of)" },
                        { "name": "requester", "type": "reference", "documentation": "Practitioner/{id} or {id}" }
                    ]
                },
                {
                    "type": "Slot",
                    "documentation": "Free, busy (booked) and busy-unavailable (closed) time of a schedule, computed from its weekly hours in the site's local time; for department staff. One slot per contiguous free stretch and per booking; ids are {schedule}-{epochSeconds}-{status}. No paging: at most 31 days per search.",
                    "interaction": [{ "code": "read" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "schedule", "type": "reference", "documentation": "Schedule/room-{id} or Schedule/radiologist-{userId} (required)" },
                        { "name": "start", "type": "date", "documentation": "The slot's start, with ge, gt, le, lt or eq; repeat to give a range (default: today and the next 6 days; at most 31 days)" },
                        { "name": "status", "type": "token", "documentation": "free, busy, busy-unavailable (comma-separated for any of)" }
                    ]
                }
            ]
        }]
    })
}
