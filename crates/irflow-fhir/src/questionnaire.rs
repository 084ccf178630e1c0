//! The screening form as a FHIR Questionnaire, and each stored screening as a
//! QuestionnaireResponse (answers from the stored facts, the decision as an extension).

use serde_json::{Value, json};

/// The Questionnaire's logical id.
pub const SCREENING_QUESTIONNAIRE_ID: &str = "irflow-screening";
/// Extension on a QuestionnaireResponse: the decision (complex: `decision` valueCode,
/// `earliestSafeDate` valueDate, `rulePack` valueString).
pub const EXT_SCREENING_DECISION: &str = "urn:irflow:fhir:StructureDefinition:screening-decision";

fn choice(link: &str, text: &str, options: &[(&str, &str)], repeats: bool) -> Value {
    json!({
        "linkId": link,
        "text": text,
        "type": "choice",
        "repeats": repeats,
        "answerOption": options.iter().map(|(code, display)| json!({"valueCoding": {"system": "urn:irflow:screening", "code": code, "display": display}})).collect::<Vec<_>>(),
    })
}

/// The screening Questionnaire. `conditions` are the pack's thrombotic-risk conditions.
pub fn screening_questionnaire(
    base_url: &str,
    version: &str,
    conditions: &[(String, String)],
) -> Value {
    let conditions: Vec<(&str, &str)> = conditions
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    json!({
        "resourceType": "Questionnaire",
        "id": SCREENING_QUESTIONNAIRE_ID,
        "url": format!("{base_url}/Questionnaire/{SCREENING_QUESTIONNAIRE_ID}"),
        "version": version,
        "name": "IrflowScreening",
        "title": "Screening call before an image-guided spine injection",
        "status": "active",
        "subjectType": ["Patient"],
        "item": [
            {
                "linkId": "medications", "text": "Blood thinners and anti-inflammatory pain medicines", "type": "group", "repeats": true,
                "item": [
                    { "linkId": "medications.drug", "text": "Medicine (lowercase generic name)", "type": "string", "required": true },
                    choice("medications.regimen", "Regimen", &[("primary", "aspirin: primary prevention"), ("secondary", "aspirin: secondary prevention"), ("iv", "heparin: IV"), ("sc", "heparin: subcutaneous"), ("prophylactic", "enoxaparin: prophylactic"), ("therapeutic", "enoxaparin: therapeutic")], false),
                    { "linkId": "medications.last_dose", "text": "Last dose (empty: still taking)", "type": "date" },
                    { "linkId": "medications.last_dose_time", "text": "Time of the last dose", "type": "time" }
                ]
            },
            choice("thrombotic_risk", "High thrombotic risk", &conditions, true),
            {
                "linkId": "labs", "text": "Labs", "type": "group",
                "item": [
                    { "linkId": "labs.inr", "text": "INR", "type": "decimal" },
                    { "linkId": "labs.platelets", "text": "Platelets (10^9/L)", "type": "decimal" },
                    { "linkId": "labs.creatinine_clearance", "text": "Creatinine clearance (mL/min)", "type": "decimal" }
                ]
            },
            choice("contrast_allergy", "Prior reaction to iodinated contrast", &[("mild", "mild"), ("moderate", "moderate"), ("severe", "severe")], false),
            { "linkId": "other_allergies", "text": "Other allergies", "type": "string", "repeats": true },
            choice("diabetes", "Diabetes", &[("no_insulin", "yes, not on insulin"), ("insulin", "yes, on insulin")], false),
            choice("infection", "Active infection", &[("systemic", "systemic"), ("injection_site", "at the injection site"), ("other", "elsewhere")], false),
            {
                "linkId": "antibiotics", "text": "Antibiotics", "type": "group", "repeats": true,
                "item": [
                    choice("antibiotics.reason", "Why", &[("active_infection", "for an active infection"), ("long_term", "long-term, no infection")], false),
                    { "linkId": "antibiotics.last_dose", "text": "Last dose (empty: still taking)", "type": "date" }
                ]
            },
            { "linkId": "pregnancy_possible", "text": "Could be pregnant", "type": "boolean" },
            { "linkId": "escort_available", "text": "Someone can drive the patient home", "type": "boolean" },
            choice("symptoms", "Symptoms today", &[("mild", "mild"), ("moderate", "moderate"), ("severe", "severe")], false),
            { "linkId": "proposed_date", "text": "Date being considered", "type": "date" }
        ]
    })
}

fn coding(code: &str) -> Value {
    json!({ "valueCoding": { "system": "urn:irflow:screening", "code": code } })
}

/// What the server knows of a stored screening.
#[derive(Debug, Clone)]
pub struct ScreeningResponseView {
    /// Screening id.
    pub id: i64,
    /// The case (ServiceRequest) id.
    pub case_id: i64,
    /// The patient id.
    pub patient_id: i64,
    /// When (FHIR dateTime).
    pub authored: String,
    /// Who screened.
    pub author: String,
    /// The stored facts JSON.
    pub facts: Value,
    /// The decision code.
    pub decision: String,
    /// The earliest safe date, if any.
    pub earliest_safe_date: Option<String>,
    /// "name version" of the rule pack.
    pub rule_pack: String,
}

/// A QuestionnaireResponse for a stored screening.
pub fn screening_response(base_url: &str, s: &ScreeningResponseView) -> Value {
    let f = &s.facts;
    let mut items: Vec<Value> = Vec::new();
    let str_of = |v: &Value| v.as_str().map(str::to_owned);
    for m in f["medications"].as_array().cloned().unwrap_or_default() {
        let mut sub =
            vec![json!({"linkId": "medications.drug", "answer": [{"valueString": m["drug"]}]})];
        if let Some(r) = str_of(&m["regimen"]).or_else(|| str_of(&m["prevention"])) {
            sub.push(json!({"linkId": "medications.regimen", "answer": [coding(&r)]}));
        }
        if let Some(d) = str_of(&m["last_dose"]) {
            sub.push(json!({"linkId": "medications.last_dose", "answer": [{"valueDate": d}]}));
        }
        if let Some(t) = str_of(&m["last_dose_time"]) {
            sub.push(json!({"linkId": "medications.last_dose_time", "answer": [{"valueTime": format!("{t}:00")}]}));
        }
        items.push(json!({"linkId": "medications", "item": sub}));
    }
    let conditions: Vec<Value> = f["thrombotic_risk"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(coding)
        .collect();
    if !conditions.is_empty() {
        items.push(json!({"linkId": "thrombotic_risk", "answer": conditions}));
    }
    let labs: Vec<Value> = ["inr", "platelets", "creatinine_clearance"]
        .iter()
        .filter_map(|k| {
            f["labs"][*k]
                .as_f64()
                .map(|v| json!({"linkId": format!("labs.{k}"), "answer": [{"valueDecimal": v}]}))
        })
        .collect();
    if !labs.is_empty() {
        items.push(json!({"linkId": "labs", "item": labs}));
    }
    if let Some(sev) = str_of(&f["contrast_allergy"]["severity"]) {
        items.push(json!({"linkId": "contrast_allergy", "answer": [coding(&sev)]}));
    }
    let allergies: Vec<Value> = f["other_allergies"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(Value::as_str)
        .map(|a| json!({"valueString": a}))
        .collect();
    if !allergies.is_empty() {
        items.push(json!({"linkId": "other_allergies", "answer": allergies}));
    }
    if let Some(insulin) = f["diabetes"]["insulin"].as_bool() {
        items.push(json!({"linkId": "diabetes", "answer": [coding(if insulin { "insulin" } else { "no_insulin" })]}));
    }
    if f["infection"]["active"].as_bool() == Some(true)
        && let Some(site) = str_of(&f["infection"]["site"])
    {
        items.push(json!({"linkId": "infection", "answer": [coding(&site)]}));
    }
    for a in f["antibiotics"].as_array().cloned().unwrap_or_default() {
        let mut sub = vec![
            json!({"linkId": "antibiotics.reason", "answer": [coding(a["reason"].as_str().unwrap_or("active_infection"))]}),
        ];
        if let Some(d) = str_of(&a["last_dose"]) {
            sub.push(json!({"linkId": "antibiotics.last_dose", "answer": [{"valueDate": d}]}));
        }
        items.push(json!({"linkId": "antibiotics", "item": sub}));
    }
    items.push(json!({"linkId": "pregnancy_possible", "answer": [{"valueBoolean": f["pregnancy_possible"].as_bool().unwrap_or(false)}]}));
    if let Some(e) = f["escort_available"].as_bool() {
        items.push(json!({"linkId": "escort_available", "answer": [{"valueBoolean": e}]}));
    }
    if let Some(sym) = str_of(&f["symptoms"]) {
        items.push(json!({"linkId": "symptoms", "answer": [coding(&sym)]}));
    }
    if let Some(d) = str_of(&f["proposed_date"]) {
        items.push(json!({"linkId": "proposed_date", "answer": [{"valueDate": d}]}));
    }
    let mut decision_parts = vec![
        json!({"url": "decision", "valueCode": s.decision}),
        json!({"url": "rulePack", "valueString": s.rule_pack}),
    ];
    if let Some(d) = &s.earliest_safe_date {
        decision_parts.push(json!({"url": "earliestSafeDate", "valueDate": d}));
    }
    json!({
        "resourceType": "QuestionnaireResponse",
        "id": s.id.to_string(),
        "extension": [{"url": EXT_SCREENING_DECISION, "extension": decision_parts}],
        "questionnaire": format!("{base_url}/Questionnaire/{SCREENING_QUESTIONNAIRE_ID}"),
        "status": "completed",
        "basedOn": [{"reference": format!("ServiceRequest/{}", s.case_id)}],
        "subject": {"reference": format!("Patient/{}", s.patient_id)},
        "authored": s.authored,
        "author": {"display": s.author},
        "item": items,
    })
}
