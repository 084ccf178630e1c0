//! An incoming `ServiceRequest` (a FHIR order) to a referral form. Structural
//! problems are reported at once, each at its FHIRPath; the form is then checked
//! by the domain, and [`ParsedOrder::outcome`] places those errors at the paths
//! the values came from.

use std::collections::HashMap;

use irflow_domain::catalogue::CPT_SYSTEM;
use irflow_domain::referral::ICD10_CM_SYSTEM;
use irflow_domain::{FieldErrors, ReferralForm};
use serde_json::{Map, Value};

use crate::types::{Issue, OperationOutcome};
use crate::*;

/// Whom the order is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderSubject {
    /// A Patient contained in the order (its fields are in the form).
    Contained,
    /// A patient already on file: `Patient/{id}`.
    Existing(i64),
}

/// A structurally sound order.
#[derive(Debug, Clone)]
pub struct ParsedOrder {
    /// The values, as a referral form (the domain checks them).
    pub form: ReferralForm,
    /// Whom it is for.
    pub subject: OrderSubject,
    /// `Practitioner/{id}` named as requester, if any.
    pub requester: Option<i64>,
    /// Where each form field came from, for error reporting.
    paths: HashMap<&'static str, String>,
}

impl ParsedOrder {
    /// The FHIRPath a form field came from (or where it belongs when it was missing).
    pub fn expression(&self, field: &str) -> String {
        if let Some(p) = self.paths.get(field) {
            return p.clone();
        }
        let contained = self
            .paths
            .get("#patient")
            .cloned()
            .unwrap_or_else(|| "ServiceRequest.contained[0]".to_owned());
        match field {
            "family_name" => format!("{contained}.name[0].family"),
            "given_name" => format!("{contained}.name[0].given"),
            "date_of_birth" => format!("{contained}.birthDate"),
            "mrn" => format!("{contained}.identifier"),
            "phone" | "email" => format!("{contained}.telecom"),
            "preferred_language" => format!("{contained}.communication[0].language"),
            "procedure" => "ServiceRequest.code".to_owned(),
            "levels" | "side" => "ServiceRequest.bodySite".to_owned(),
            "indication" => "ServiceRequest.reasonCode[0].text".to_owned(),
            "icd10" => "ServiceRequest.reasonCode[0].coding".to_owned(),
            "urgency" => "ServiceRequest.priority".to_owned(),
            "imaging_modality" | "imaging_date" | "imaging_place" => {
                format!("ServiceRequest.extension('{EXT_PRIOR_IMAGING}')")
            }
            "blood_thinners" => format!("ServiceRequest.extension('{EXT_BLOOD_THINNERS}')"),
            "clinical_notes" => "ServiceRequest.note".to_owned(),
            "patient" => "ServiceRequest.subject".to_owned(),
            "referrer" => "ServiceRequest.requester".to_owned(),
            _ => "ServiceRequest".to_owned(),
        }
    }

    /// An OperationOutcome placing each field error at its path.
    pub fn outcome(&self, errors: &FieldErrors) -> OperationOutcome {
        OperationOutcome::new(
            errors
                .0
                .iter()
                .map(|e| Issue {
                    severity: "error",
                    code: if e.message.contains("required")
                        || e.message.starts_with("choose")
                        || e.message.starts_with("name ")
                    {
                        "required"
                    } else {
                        "value"
                    },
                    diagnostics: e.message.clone(),
                    expression: vec![self.expression(e.field)],
                })
                .collect(),
        )
    }
}

struct Reader {
    issues: Vec<Issue>,
}

impl Reader {
    fn problem(&mut self, code: &'static str, path: &str, message: impl Into<String>) {
        self.issues.push(Issue {
            severity: "error",
            code,
            diagnostics: message.into(),
            expression: vec![path.to_owned()],
        });
    }

    fn string(&mut self, obj: &Map<String, Value>, key: &str, path: &str) -> Option<String> {
        match obj.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                self.problem(
                    "structure",
                    &format!("{path}.{key}"),
                    format!("{key} must be a string"),
                );
                None
            }
        }
    }

    fn array<'v>(&mut self, obj: &'v Map<String, Value>, key: &str, path: &str) -> &'v [Value] {
        match obj.get(key) {
            None | Some(Value::Null) => &[],
            Some(Value::Array(a)) => a,
            Some(_) => {
                self.problem(
                    "structure",
                    &format!("{path}.{key}"),
                    format!("{key} must be an array"),
                );
                &[]
            }
        }
    }

    fn object<'v>(&mut self, value: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match value {
            Value::Object(o) => Some(o),
            _ => {
                self.problem("structure", path, "must be an object");
                None
            }
        }
    }

    /// The codings of a CodeableConcept: (system, code, path of the code).
    fn codings(
        &mut self,
        cc: &Map<String, Value>,
        path: &str,
    ) -> Vec<(Option<String>, Option<String>, String)> {
        let mut out = Vec::new();
        for (i, c) in self.array(cc, "coding", path).iter().enumerate() {
            let cpath = format!("{path}.coding[{i}]");
            if let Some(o) = self.object(c, &cpath) {
                let system = self.string(o, "system", &cpath);
                let code = self.string(o, "code", &cpath);
                out.push((system, code, format!("{cpath}.code")));
            }
        }
        out
    }
}

/// Parses a ServiceRequest order. Only elements irflow uses are read; others are ignored.
pub fn parse_service_request(body: &Value) -> Result<ParsedOrder, OperationOutcome> {
    let mut r = Reader { issues: Vec::new() };
    let root = "ServiceRequest";
    let Some(sr) = body.as_object() else {
        return Err(OperationOutcome::error(
            "structure",
            "the body must be a JSON object: a ServiceRequest resource",
            None,
        ));
    };
    match sr.get("resourceType").and_then(Value::as_str) {
        Some("ServiceRequest") => {}
        Some(other) => {
            return Err(OperationOutcome::error(
                "invalid",
                format!("expected a ServiceRequest, got a {other}"),
                Some("resourceType".into()),
            ));
        }
        None => {
            return Err(OperationOutcome::error(
                "required",
                "resourceType is required (ServiceRequest)",
                Some("resourceType".into()),
            ));
        }
    }
    let mut form = ReferralForm::default();
    let mut paths: HashMap<&'static str, String> = HashMap::new();

    match r.string(sr, "status", root).as_deref() {
        Some("active") => {}
        Some(other) => r.problem(
            "value",
            "ServiceRequest.status",
            format!("status must be active for a new order, not {other:?}"),
        ),
        None => r.problem(
            "required",
            "ServiceRequest.status",
            "status is required (active)",
        ),
    }
    match r.string(sr, "intent", root).as_deref() {
        Some("order") => {}
        Some(other) => r.problem(
            "value",
            "ServiceRequest.intent",
            format!("intent must be order, not {other:?}"),
        ),
        None => r.problem(
            "required",
            "ServiceRequest.intent",
            "intent is required (order)",
        ),
    }
    if let Some(p) = r.string(sr, "priority", root) {
        form.urgency = p;
        paths.insert("urgency", "ServiceRequest.priority".into());
    }

    // code: a CPT coding.
    match sr.get("code") {
        None | Some(Value::Null) => r.problem(
            "required",
            "ServiceRequest.code",
            "code is required: the procedure's CPT code",
        ),
        Some(code) => {
            if let Some(cc) = r.object(code, "ServiceRequest.code") {
                let cpt: Vec<_> = r
                    .codings(cc, "ServiceRequest.code")
                    .into_iter()
                    .filter(|(s, _, _)| s.as_deref() == Some(CPT_SYSTEM))
                    .collect();
                match cpt.as_slice() {
                    [] => r.problem(
                        "required",
                        "ServiceRequest.code.coding",
                        format!("a coding with system {CPT_SYSTEM} is required"),
                    ),
                    [(_, Some(code), path)] => {
                        form.procedure = code.clone();
                        paths.insert("procedure", path.clone());
                    }
                    [(_, None, path)] => r.problem("required", path, "the CPT coding has no code"),
                    _ => r.problem(
                        "value",
                        "ServiceRequest.code.coding",
                        "give exactly one CPT coding",
                    ),
                }
            }
        }
    }

    // bodySite: levels (irflow's level system) and laterality (SNOMED CT).
    let mut levels = Vec::new();
    let mut side: Option<(String, String)> = None;
    let sites = r.array(sr, "bodySite", root).to_vec();
    for (i, site) in sites.iter().enumerate() {
        let path = format!("ServiceRequest.bodySite[{i}]");
        let Some(cc) = r.object(site, &path) else {
            continue;
        };
        for (system, code, cpath) in r.codings(cc, &path) {
            match (system.as_deref(), code) {
                (Some(SPINE_LEVEL_SYSTEM), Some(code)) => {
                    levels.push(code);
                    paths.entry("levels").or_insert(cpath);
                }
                (Some(SNOMED), Some(code)) => match LATERALITY.iter().find(|(_, c, _)| *c == code) {
                    Some((s, _, _)) if side.is_none() => side = Some((s.as_str().to_owned(), cpath)),
                    Some(_) => r.problem("value", &cpath, "give one laterality"),
                    None => r.problem(
                        "value",
                        &cpath,
                        format!("SNOMED CT code {code} is not a laterality irflow knows (7771000 left, 24028007 right, 51440002 bilateral)"),
                    ),
                },
                _ => {}
            }
        }
    }
    form.levels = levels.join(", ");
    if let Some((s, path)) = side {
        form.side = s;
        paths.insert("side", path);
    } else {
        paths.insert("side", "ServiceRequest.bodySite".into());
    }

    // reasonCode[0]: indication text and an ICD-10-CM code.
    let reasons = r.array(sr, "reasonCode", root).to_vec();
    if let Some(first) = reasons.first()
        && let Some(cc) = r.object(first, "ServiceRequest.reasonCode[0]")
    {
        if let Some(t) = r.string(cc, "text", "ServiceRequest.reasonCode[0]") {
            form.indication = t;
            paths.insert("indication", "ServiceRequest.reasonCode[0].text".into());
        }
        for (system, code, cpath) in r.codings(cc, "ServiceRequest.reasonCode[0]") {
            if system.as_deref() == Some(ICD10_CM_SYSTEM)
                && let Some(code) = code
            {
                form.icd10 = code;
                paths.insert("icd10", cpath);
            }
        }
    }

    // note: clinical notes.
    let notes: Vec<String> = r
        .array(sr, "note", root)
        .to_vec()
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let path = format!("ServiceRequest.note[{i}]");
            r.object(n, &path).and_then(|o| r.string(o, "text", &path))
        })
        .collect();
    form.clinical_notes = notes.join("\n\n");

    // extensions: blood thinners, prior imaging.
    for (i, ext) in r.array(sr, "extension", root).to_vec().iter().enumerate() {
        let path = format!("ServiceRequest.extension[{i}]");
        let Some(o) = r.object(ext, &path) else {
            continue;
        };
        match r.string(o, "url", &path).as_deref() {
            Some(EXT_BLOOD_THINNERS) => {
                form.blood_thinners = r.string(o, "valueString", &path).unwrap_or_default();
                paths.insert("blood_thinners", format!("{path}.valueString"));
            }
            Some(EXT_PRIOR_IMAGING) => {
                for (j, part) in r.array(o, "extension", &path).to_vec().iter().enumerate() {
                    let ppath = format!("{path}.extension[{j}]");
                    let Some(p) = r.object(part, &ppath) else {
                        continue;
                    };
                    match r.string(p, "url", &ppath).as_deref() {
                        Some("modality") => {
                            form.imaging_modality =
                                r.string(p, "valueCode", &ppath).unwrap_or_default();
                            paths.insert("imaging_modality", format!("{ppath}.valueCode"));
                        }
                        Some("date") => {
                            form.imaging_date =
                                r.string(p, "valueDate", &ppath).unwrap_or_default();
                            paths.insert("imaging_date", format!("{ppath}.valueDate"));
                        }
                        Some("place") => {
                            form.imaging_place =
                                r.string(p, "valueString", &ppath).unwrap_or_default();
                            paths.insert("imaging_place", format!("{ppath}.valueString"));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    // requester: Practitioner/{id}.
    let requester = match sr.get("requester") {
        None | Some(Value::Null) => None,
        Some(v) => r.object(v, "ServiceRequest.requester").and_then(|o| {
            match r
                .string(o, "reference", "ServiceRequest.requester")
                .as_deref()
            {
                Some(reference) => match reference
                    .strip_prefix("Practitioner/")
                    .and_then(|id| id.parse::<i64>().ok())
                {
                    Some(id) => Some(id),
                    None => {
                        r.problem(
                            "value",
                            "ServiceRequest.requester.reference",
                            "requester must reference Practitioner/{id}",
                        );
                        None
                    }
                },
                None => {
                    r.problem(
                        "required",
                        "ServiceRequest.requester.reference",
                        "requester must reference Practitioner/{id}",
                    );
                    None
                }
            }
        }),
    };

    // subject: #contained Patient, or Patient/{id}.
    let subject = match sr.get("subject") {
        None | Some(Value::Null) => {
            r.problem(
                "required",
                "ServiceRequest.subject",
                "subject is required: a contained Patient (#id) or Patient/{id}",
            );
            None
        }
        Some(v) => match r
            .object(v, "ServiceRequest.subject")
            .map(|o| r.string(o, "reference", "ServiceRequest.subject"))
        {
            Some(Some(reference)) => {
                if let Some(local) = reference.strip_prefix('#') {
                    read_contained(&mut r, sr, local, &mut form, &mut paths)
                        .map(|()| OrderSubject::Contained)
                } else if let Some(id) = reference
                    .strip_prefix("Patient/")
                    .and_then(|id| id.parse::<i64>().ok())
                {
                    paths.insert("patient", "ServiceRequest.subject.reference".into());
                    Some(OrderSubject::Existing(id))
                } else {
                    r.problem(
                        "value",
                        "ServiceRequest.subject.reference",
                        "subject must reference a contained Patient (#id) or Patient/{id}",
                    );
                    None
                }
            }
            Some(None) => {
                r.problem(
                    "required",
                    "ServiceRequest.subject.reference",
                    "subject.reference is required",
                );
                None
            }
            None => None,
        },
    };

    match (subject, r.issues.is_empty()) {
        (Some(subject), true) => Ok(ParsedOrder {
            form,
            subject,
            requester,
            paths,
        }),
        _ => Err(OperationOutcome::new(r.issues)),
    }
}

fn read_contained(
    r: &mut Reader,
    sr: &Map<String, Value>,
    local: &str,
    form: &mut ReferralForm,
    paths: &mut HashMap<&'static str, String>,
) -> Option<()> {
    let contained = r.array(sr, "contained", "ServiceRequest").to_vec();
    let found = contained.iter().enumerate().find(|(_, c)| {
        c.get("resourceType").and_then(Value::as_str) == Some("Patient")
            && c.get("id").and_then(Value::as_str) == Some(local)
    });
    let Some((index, patient)) = found else {
        r.problem(
            "not-found",
            "ServiceRequest.subject.reference",
            format!("no contained Patient with id {local:?}"),
        );
        return None;
    };
    let base = format!("ServiceRequest.contained[{index}]");
    paths.insert("#patient", base.clone());
    let p = patient.as_object()?;
    if let Some(first) = r.array(p, "name", &base).first() {
        let npath = format!("{base}.name[0]");
        if let Some(n) = r.object(first, &npath) {
            form.family_name = r.string(n, "family", &npath).unwrap_or_default();
            let given = r.array(n, "given", &npath).to_vec();
            form.given_name = given
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
        }
    }
    form.date_of_birth = r.string(p, "birthDate", &base).unwrap_or_default();
    for (i, ident) in r.array(p, "identifier", &base).to_vec().iter().enumerate() {
        let ipath = format!("{base}.identifier[{i}]");
        let Some(o) = r.object(ident, &ipath) else {
            continue;
        };
        let is_mr = o
            .get("type")
            .and_then(|t| t.get("coding"))
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.get("code").and_then(Value::as_str) == Some("MR"))
            });
        let system = o.get("system").and_then(Value::as_str);
        if (is_mr || system == Some(DEFAULT_MRN_SYSTEM)) && form.mrn.is_empty() {
            form.mrn = r.string(o, "value", &ipath).unwrap_or_default();
            paths.insert("mrn", format!("{ipath}.value"));
        }
    }
    for (i, t) in r.array(p, "telecom", &base).to_vec().iter().enumerate() {
        let tpath = format!("{base}.telecom[{i}]");
        let Some(o) = r.object(t, &tpath) else {
            continue;
        };
        match r.string(o, "system", &tpath).as_deref() {
            Some("phone") if form.phone.is_empty() => {
                form.phone = r.string(o, "value", &tpath).unwrap_or_default();
                paths.insert("phone", format!("{tpath}.value"));
            }
            Some("email") if form.email.is_empty() => {
                form.email = r.string(o, "value", &tpath).unwrap_or_default();
                paths.insert("email", format!("{tpath}.value"));
            }
            _ => {}
        }
    }
    if let Some(first) = r.array(p, "communication", &base).to_vec().first() {
        let cpath = format!("{base}.communication[0].language");
        if let Some(lang) = first.get("language").and_then(Value::as_object) {
            let code = r
                .codings(lang, &cpath)
                .into_iter()
                .find_map(|(_, code, path)| code.map(|c| (c, path)));
            if let Some((code, path)) = code {
                form.preferred_language = code;
                paths.insert("preferred_language", path);
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn order() -> Value {
        json!({
            "resourceType": "ServiceRequest",
            "status": "active",
            "intent": "order",
            "priority": "routine",
            "contained": [{
                "resourceType": "Patient", "id": "p1",
                "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "MR"}]}, "system": "urn:oid:1.2.3", "value": "MRN-1"}],
                "name": [{"family": "Doe", "given": ["Jane", "Q"]}],
                "birthDate": "1960-01-02",
                "telecom": [{"system": "email", "value": "jane@example.org"}, {"system": "phone", "value": "617-555-0100"}],
                "communication": [{"language": {"coding": [{"system": BCP47, "code": "es"}]}}]
            }],
            "subject": {"reference": "#p1"},
            "code": {"coding": [{"system": CPT_SYSTEM, "code": "64483"}]},
            "bodySite": [
                {"coding": [{"system": SPINE_LEVEL_SYSTEM, "code": "L4-L5"}]},
                {"coding": [{"system": SNOMED, "code": "7771000"}]}
            ],
            "reasonCode": [{"coding": [{"system": ICD10_CM_SYSTEM, "code": "M54.16"}], "text": "Left L5 radiculopathy"}],
            "note": [{"text": "Failed PT"}],
            "extension": [
                {"url": EXT_BLOOD_THINNERS, "valueString": "aspirin 81 mg"},
                {"url": EXT_PRIOR_IMAGING, "extension": [
                    {"url": "modality", "valueCode": "mri"}, {"url": "date", "valueDate": "2026-10-01"}
                ]}
            ]
        })
    }

    #[test]
    fn a_full_order_becomes_a_form() {
        let parsed = parse_service_request(&order()).expect("valid");
        let f = &parsed.form;
        assert_eq!(parsed.subject, OrderSubject::Contained);
        assert_eq!(
            (f.family_name.as_str(), f.given_name.as_str()),
            ("Doe", "Jane Q")
        );
        assert_eq!(
            (f.mrn.as_str(), f.phone.as_str(), f.email.as_str()),
            ("MRN-1", "617-555-0100", "jane@example.org")
        );
        assert_eq!(f.preferred_language, "es");
        assert_eq!(
            (f.procedure.as_str(), f.levels.as_str(), f.side.as_str()),
            ("64483", "L4-L5", "left")
        );
        assert_eq!(
            (f.icd10.as_str(), f.indication.as_str()),
            ("M54.16", "Left L5 radiculopathy")
        );
        assert_eq!(
            (f.imaging_modality.as_str(), f.imaging_date.as_str()),
            ("mri", "2026-10-01")
        );
        assert_eq!(f.blood_thinners, "aspirin 81 mg");
        assert_eq!(f.clinical_notes, "Failed PT");
        assert_eq!(
            parsed.expression("phone"),
            "ServiceRequest.contained[0].telecom[1].value"
        );
        assert_eq!(
            parsed.expression("procedure"),
            "ServiceRequest.code.coding[0].code"
        );
    }

    #[test]
    fn structural_problems_name_their_paths() {
        let mut bad = order();
        bad["status"] = json!("draft");
        bad["intent"] = json!(7);
        bad["code"] = json!({"coding": [{"system": "http://loinc.org", "code": "x"}]});
        bad["subject"] = json!({"reference": "#nobody"});
        let outcome = parse_service_request(&bad).expect_err("invalid");
        let paths: Vec<&str> = outcome
            .issue
            .iter()
            .flat_map(|i| i.expression.iter().map(String::as_str))
            .collect();
        for expected in [
            "ServiceRequest.status",
            "ServiceRequest.intent",
            "ServiceRequest.code.coding",
            "ServiceRequest.subject.reference",
        ] {
            assert!(paths.contains(&expected), "{expected} in {paths:?}");
        }
        let wrong =
            parse_service_request(&json!({"resourceType": "Patient"})).expect_err("not an order");
        assert_eq!(wrong.issue[0].code, "invalid");
        assert!(parse_service_request(&json!([1, 2])).is_err());
    }

    #[test]
    fn existing_patients_and_requesters_are_references() {
        let mut o = order();
        o["subject"] = json!({"reference": "Patient/42"});
        o["requester"] = json!({"reference": "Practitioner/7"});
        let parsed = parse_service_request(&o).expect("valid");
        assert_eq!(parsed.subject, OrderSubject::Existing(42));
        assert_eq!(parsed.requester, Some(7));
        o["requester"] = json!({"reference": "Organization/1"});
        assert!(parse_service_request(&o).is_err());
    }
}
