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
            "documentation": "Authenticate with a bearer token (irflow token issue). Referrers see and order only their own referrals. Paging: _count (1-100, default 20) and _offset.",
            "security": {
                "description": "OAuth-style bearer tokens issued by the irflow administrator; every read and write is audited."
            },
            "resource": [
                {
                    "type": "Patient",
                    "interaction": [{ "code": "read" }]
                },
                {
                    "type": "Practitioner",
                    "interaction": [{ "code": "read" }]
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
                    "type": "ServiceRequest",
                    "interaction": [{ "code": "read" }, { "code": "create" }, { "code": "search-type" }],
                    "searchParam": [
                        { "name": "patient", "type": "reference", "documentation": "Patient/{id} or {id}" },
                        { "name": "status", "type": "token", "documentation": "active, on-hold, completed, revoked (comma-separated for any of)" },
                        { "name": "requester", "type": "reference", "documentation": "Practitioner/{id} or {id}" }
                    ]
                }
            ]
        }]
    })
}
