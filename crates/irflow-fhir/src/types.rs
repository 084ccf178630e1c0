//! The FHIR R4 datatypes and resources irflow serves, as plain serde structs.
//! Only the elements irflow uses are modelled; empty elements are never written
//! (FHIR forbids empty arrays and objects).

use serde::Serialize;

fn is_false(b: &bool) -> bool {
    !*b
}

/// `Meta`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    /// When the resource last changed (an `instant`).
    pub last_updated: String,
}

/// `Coding`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Coding {
    /// Code system URI.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Display text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

impl Coding {
    /// A coding with system, code and display.
    pub fn new(system: &str, code: &str, display: Option<&str>) -> Self {
        Self {
            system: Some(system.to_owned()),
            code: Some(code.to_owned()),
            display: display.map(str::to_owned),
        }
    }
}

/// `CodeableConcept`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct CodeableConcept {
    /// Codings.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub coding: Vec<Coding>,
    /// Plain text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// `Identifier`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Identifier {
    /// `usual`, `official`, ...
    #[serde(rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Identifier type (e.g. MR).
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<CodeableConcept>,
    /// Namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// The value.
    pub value: String,
}

/// `Reference`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct Reference {
    /// Relative reference, e.g. `Patient/5`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// Logical identifier.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identifier: Option<Identifier>,
    /// Text for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// `HumanName`.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct HumanName {
    /// Full name as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Family name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family: Option<String>,
    /// Given names.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub given: Vec<String>,
}

/// `ContactPoint`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ContactPoint {
    /// `phone` or `email`.
    pub system: String,
    /// The number or address.
    pub value: String,
}

/// `Annotation`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Annotation {
    /// The note.
    pub text: String,
}

/// `Extension` (only the value types irflow uses).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// What the extension means.
    pub url: String,
    /// Nested extensions (complex extension).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// A code value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_code: Option<String>,
    /// A string value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_string: Option<String>,
    /// A date value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_date: Option<String>,
}

impl Extension {
    fn empty(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            extension: Vec::new(),
            value_code: None,
            value_string: None,
            value_date: None,
        }
    }

    /// An extension with a code value.
    pub fn code(url: &str, code: &str) -> Self {
        Self {
            value_code: Some(code.to_owned()),
            ..Self::empty(url)
        }
    }

    /// An extension with a string value.
    pub fn string(url: &str, value: &str) -> Self {
        Self {
            value_string: Some(value.to_owned()),
            ..Self::empty(url)
        }
    }

    /// An extension with a date value.
    pub fn date(url: &str, value: &str) -> Self {
        Self {
            value_date: Some(value.to_owned()),
            ..Self::empty(url)
        }
    }

    /// A complex extension.
    pub fn complex(url: &str, parts: Vec<Extension>) -> Self {
        Self {
            extension: parts,
            ..Self::empty(url)
        }
    }
}

/// `Patient.communication`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PatientCommunication {
    /// The language.
    pub language: CodeableConcept,
    /// Preferred.
    #[serde(skip_serializing_if = "is_false")]
    pub preferred: bool,
}

/// `Patient`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Patient {
    /// Always `Patient`.
    pub resource_type: &'static str,
    /// Logical id.
    pub id: String,
    /// Metadata.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub meta: Option<Meta>,
    /// MRN.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub identifier: Vec<Identifier>,
    /// Name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub name: Vec<HumanName>,
    /// Phone, email.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub telecom: Vec<ContactPoint>,
    /// Date of birth.
    pub birth_date: String,
    /// Preferred language.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub communication: Vec<PatientCommunication>,
}

/// `Practitioner`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Practitioner {
    /// Always `Practitioner`.
    pub resource_type: &'static str,
    /// Logical id.
    pub id: String,
    /// irflow username.
    pub identifier: Vec<Identifier>,
    /// Whether the account is active.
    pub active: bool,
    /// Name.
    pub name: Vec<HumanName>,
}

/// `ServiceRequest`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRequest {
    /// Always `ServiceRequest`.
    pub resource_type: &'static str,
    /// Logical id.
    pub id: String,
    /// Metadata.
    pub meta: Meta,
    /// irflow extensions (pathway state, blood thinners, prior imaging).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extension: Vec<Extension>,
    /// The referral number.
    pub identifier: Vec<Identifier>,
    /// `active`, `on-hold`, `completed`, `revoked`.
    pub status: &'static str,
    /// Always `order`.
    pub intent: &'static str,
    /// `routine`, `urgent`, `asap`.
    pub priority: &'static str,
    /// The procedure (CPT).
    pub code: CodeableConcept,
    /// The patient.
    pub subject: Reference,
    /// When ordered.
    pub authored_on: String,
    /// The referring provider.
    pub requester: Reference,
    /// Why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_code: Vec<CodeableConcept>,
    /// Levels and side.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub body_site: Vec<CodeableConcept>,
    /// Clinical notes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub note: Vec<Annotation>,
}

/// `Bundle.link`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BundleLink {
    /// `self`, `next`, `previous`.
    pub relation: &'static str,
    /// Absolute URL.
    pub url: String,
}

/// `Bundle.entry.search`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BundleSearch {
    /// `match`.
    pub mode: &'static str,
}

/// `Bundle.entry`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BundleEntry<R> {
    /// Absolute URL of the resource.
    pub full_url: String,
    /// The resource.
    pub resource: R,
    /// Why it is here.
    pub search: BundleSearch,
}

/// `Bundle` (searchset).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Bundle<R> {
    /// Always `Bundle`.
    pub resource_type: &'static str,
    /// `searchset`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// Matches in all pages.
    pub total: u64,
    /// Paging links.
    pub link: Vec<BundleLink>,
    /// This page's matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub entry: Vec<BundleEntry<R>>,
}

/// `OperationOutcome.issue`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Issue {
    /// `fatal`, `error`, `warning`, `information`.
    pub severity: &'static str,
    /// An IssueType code: `invalid`, `structure`, `required`, `value`, `not-found`,
    /// `duplicate`, `forbidden`, `login`, `not-supported`, `exception`, ...
    pub code: &'static str,
    /// What is wrong, for people.
    pub diagnostics: String,
    /// Where, as FHIRPath.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expression: Vec<String>,
}

/// `OperationOutcome`.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct OperationOutcome {
    /// Always `OperationOutcome`.
    pub resource_type: &'static str,
    /// The problems.
    pub issue: Vec<Issue>,
}

impl OperationOutcome {
    /// An outcome with these issues.
    pub fn new(issue: Vec<Issue>) -> Self {
        Self {
            resource_type: "OperationOutcome",
            issue,
        }
    }

    /// One error issue.
    pub fn error(
        code: &'static str,
        diagnostics: impl Into<String>,
        expression: Option<String>,
    ) -> Self {
        Self::new(vec![Issue {
            severity: "error",
            code,
            diagnostics: diagnostics.into(),
            expression: expression.into_iter().collect(),
        }])
    }
}
