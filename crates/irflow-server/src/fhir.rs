//! FHIR R4 REST under `/fhir/r4`: metadata, ServiceRequest create/read/search,
//! Patient and Practitioner read. Bearer tokens as for the JSON API; every answer
//! is `application/fhir+json`, errors are OperationOutcomes.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_domain::{CaseId, Channel, FieldErrors, PatientId, Role, UserId};
use irflow_fhir::order::{OrderSubject, ParsedOrder, parse_service_request};
use irflow_fhir::render::{self, PatientView, PractitionerView, ServiceRequestView};
use irflow_fhir::types::OperationOutcome;
use irflow_store::{CaseDetail, CaseFilter, NewReferral, ReferralSubject, StoreError};
use jiff::Timestamp;
use serde::Serialize;

use crate::session::ApiCaller;
use crate::{AppError, AppState};

/// A FHIR answer: a resource or an OperationOutcome, with its status.
#[derive(Debug)]
pub struct FhirResponse {
    status: StatusCode,
    body: serde_json::Value,
    location: Option<String>,
}

impl FhirResponse {
    fn ok(resource: &impl Serialize) -> Self {
        Self::with_status(StatusCode::OK, resource)
    }

    fn with_status(status: StatusCode, resource: &impl Serialize) -> Self {
        Self {
            status,
            body: serde_json::to_value(resource).unwrap_or_else(|e| {
                serde_json::json!({"resourceType": "OperationOutcome", "issue": [{"severity": "fatal", "code": "exception", "diagnostics": format!("could not serialise: {e}")}]})
            }),
            location: None,
        }
    }

    fn outcome(status: StatusCode, outcome: &OperationOutcome) -> Self {
        Self::with_status(status, outcome)
    }
}

impl IntoResponse for FhirResponse {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            serde_json::to_string(&self.body).unwrap_or_default(),
        )
            .into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(irflow_fhir::FHIR_JSON),
        );
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            h.insert(header::LOCATION, loc);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"irflow\""),
            );
        }
        response
    }
}

impl From<AppError> for FhirResponse {
    fn from(e: AppError) -> Self {
        e.log();
        let code = match &e {
            AppError::Unauthenticated => "login",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) => "not-found",
            AppError::BadRequest(_) => "structure",
            AppError::Invalid(_) | AppError::Field { .. } => "invalid",
            AppError::Conflict(_) => "conflict",
            AppError::TooManyRequests(_) => "throttled",
            AppError::Internal(_) => "exception",
        };
        Self::outcome(
            e.status(),
            &OperationOutcome::error(code, e.public_message(), None),
        )
    }
}

impl From<StoreError> for FhirResponse {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

type FhirResult = Result<FhirResponse, FhirResponse>;

/// A bearer-token caller whose rejection is an OperationOutcome.
#[derive(Debug)]
pub struct FhirCaller(ApiCaller);

impl FromRequestParts<AppState> for FhirCaller {
    type Rejection = FhirResponse;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        ApiCaller::from_request_parts(parts, state)
            .await
            .map(FhirCaller)
            .map_err(|e| FhirResponse::from(e.0))
    }
}

/// The base URL clients use (`.../fhir/r4`): configured, or this request's host.
fn base_url(state: &AppState, headers: &HeaderMap) -> String {
    if let Some(base) = &state.config().public_base_url {
        return format!("{}/fhir/r4", base.trim_end_matches('/'));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}/fhir/r4")
}

/// `GET /fhir/r4/metadata`.
pub async fn metadata(State(state): State<AppState>, headers: HeaderMap) -> FhirResponse {
    let statement = irflow_fhir::capability::capability_statement(
        &base_url(&state, &headers),
        env!("CARGO_PKG_VERSION"),
        &render::instant(Timestamp::now()),
    );
    FhirResponse::ok(&statement)
}

/// Anything else under `/fhir/r4`.
pub async fn not_supported() -> FhirResponse {
    FhirResponse::outcome(
        StatusCode::NOT_FOUND,
        &OperationOutcome::error(
            "not-supported",
            "this server does not offer that; see /fhir/r4/metadata",
            None,
        ),
    )
}

fn parse_id(raw: &str, what: &str) -> Result<i64, FhirResponse> {
    raw.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        FhirResponse::outcome(
            StatusCode::NOT_FOUND,
            &OperationOutcome::error(
                "not-found",
                format!("there is no {what} with id {raw:?}"),
                None,
            ),
        )
    })
}

fn not_found(what: &str, id: i64) -> FhirResponse {
    FhirResponse::outcome(
        StatusCode::NOT_FOUND,
        &OperationOutcome::error(
            "not-found",
            format!("{what}/{id} is not known to this server or not visible to you"),
            None,
        ),
    )
}

pub(crate) fn service_request_view(d: &CaseDetail) -> ServiceRequestView {
    let c = &d.case;
    ServiceRequestView {
        id: c.id.get(),
        state: c.state,
        procedure_code: c.procedure_code.clone(),
        procedure_name: c.procedure_name.clone(),
        levels: c.levels.clone(),
        side: c.side,
        indication: d.referral.indication.clone(),
        icd10: d.referral.icd10.clone(),
        urgency: c.urgency,
        prior_imaging: d.referral.prior_imaging.clone(),
        blood_thinners: d.referral.blood_thinners.clone(),
        clinical_notes: d.referral.clinical_notes.clone(),
        channel: d.referral.channel,
        patient_id: c.patient_id.get(),
        patient_display: c.patient_name(),
        requester_id: c.referrer_id.get(),
        requester_display: c.referrer_name.clone(),
        authored_on: c.created_at,
        last_updated: c.updated_at,
    }
}

fn patient_view(p: &irflow_store::PatientRecord) -> PatientView {
    PatientView {
        id: p.id.get(),
        mrn: p.mrn.clone(),
        family_name: p.family_name.clone(),
        given_name: p.given_name.clone(),
        date_of_birth: p.date_of_birth,
        phone: p.phone.clone(),
        email: p.email.clone(),
        preferred_language: p.preferred_language.clone(),
    }
}

/// `GET /fhir/r4/ServiceRequest/{id}`.
pub async fn read_service_request(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(id): Path<String>,
) -> FhirResult {
    let id = parse_id(&id, "ServiceRequest")?;
    match state
        .store()
        .case_detail(&caller.actor(), CaseId::new(id))
        .await
    {
        Ok(d) => Ok(FhirResponse::ok(&render::service_request(
            &service_request_view(&d),
        ))),
        Err(StoreError::NotFound) => Err(not_found("ServiceRequest", id)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /fhir/r4/Patient/{id}`.
pub async fn read_patient(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    Path(id): Path<String>,
) -> FhirResult {
    let id = parse_id(&id, "Patient")?;
    match state
        .store()
        .patient(&caller.actor(), PatientId::new(id))
        .await
    {
        Ok(p) => Ok(FhirResponse::ok(&render::patient(
            &patient_view(&p),
            &state.config().mrn_system,
        ))),
        Err(StoreError::NotFound) => Err(not_found("Patient", id)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /fhir/r4/Practitioner/{id}` (directory data, not patient data).
pub async fn read_practitioner(
    State(state): State<AppState>,
    FhirCaller(_caller): FhirCaller,
    Path(id): Path<String>,
) -> FhirResult {
    let id = parse_id(&id, "Practitioner")?;
    match state.store().user(UserId::new(id)).await {
        Ok(u) => Ok(FhirResponse::ok(&render::practitioner(&PractitionerView {
            id: u.id.get(),
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            active: u.active,
        }))),
        Err(StoreError::NotFound) => Err(not_found("Practitioner", id)),
        Err(e) => Err(e.into()),
    }
}

fn bad_param(name: &str, message: impl Into<String>) -> FhirResponse {
    FhirResponse::outcome(
        StatusCode::BAD_REQUEST,
        &OperationOutcome::error(
            "invalid",
            format!("{name}: {}", message.into()),
            Some(format!("ServiceRequest?{name}")),
        ),
    )
}

fn reference_id(raw: &str, resource: &str, name: &str) -> Result<i64, FhirResponse> {
    let id = raw.strip_prefix(&format!("{resource}/")).unwrap_or(raw);
    id.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        bad_param(
            name,
            format!("expected {resource}/{{id}} or {{id}}, got {raw:?}"),
        )
    })
}

/// `GET /fhir/r4/ServiceRequest?patient=&status=&requester=&_count=&_offset=`.
pub async fn search_service_requests(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> FhirResult {
    let mut filter = CaseFilter::default();
    let mut count: u32 = 20;
    let mut offset: u32 = 0;
    let mut kept: Vec<(String, String)> = Vec::new();
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (crate::views::url_decode(k), crate::views::url_decode(v));
        match k.as_str() {
            "patient" => {
                filter.patient = Some(PatientId::new(reference_id(&v, "Patient", "patient")?))
            }
            "requester" => {
                filter.referrer = Some(UserId::new(reference_id(&v, "Practitioner", "requester")?))
            }
            "status" => {
                for s in v.split(',') {
                    let states = render::states_for_status(s.trim()).ok_or_else(|| {
                        bad_param(
                            "status",
                            format!("{s:?} is not one of active, on-hold, completed, revoked"),
                        )
                    })?;
                    filter.states.extend(states);
                }
            }
            "_count" => {
                count = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| bad_param("_count", "a whole number from 1 to 100"))?;
                continue;
            }
            "_offset" => {
                offset = v
                    .parse()
                    .map_err(|_| bad_param("_offset", "a whole number, 0 or more"))?;
                continue;
            }
            "_format" if v.contains("json") => continue,
            other => {
                return Err(bad_param(
                    other,
                    "this search parameter is not supported (see /fhir/r4/metadata)",
                ));
            }
        }
        kept.push((k, v));
    }
    filter.limit = Some(count);
    filter.offset = Some(offset);
    let actor = caller.actor();
    let total = state.store().count_cases(&actor, &filter).await?;
    let cases = state.store().list_cases(&actor, &filter).await?;
    let base = base_url(&state, &headers);
    let page_url = |off: u32| {
        let mut params: Vec<String> = kept
            .iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        params.push(format!("_count={count}"));
        params.push(format!("_offset={off}"));
        format!("{base}/ServiceRequest?{}", params.join("&"))
    };
    let mut entries = Vec::with_capacity(cases.len());
    for c in &cases {
        // The detail (timeline, referral) is needed for the full resource.
        let d = state.store().case_detail(&actor, c.id).await?;
        entries.push((
            format!("{base}/ServiceRequest/{}", c.id),
            render::service_request(&service_request_view(&d)),
        ));
    }
    let total_u = u64::try_from(total).unwrap_or(0);
    let next = (u64::from(offset) + u64::from(count) < total_u).then(|| page_url(offset + count));
    let previous = (offset > 0).then(|| page_url(offset.saturating_sub(count)));
    let bundle = render::searchset(entries, total_u, page_url(offset), next, previous);
    Ok(FhirResponse::ok(&bundle))
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/,".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn unprocessable(parsed: &ParsedOrder, errors: &FieldErrors) -> FhirResponse {
    FhirResponse::outcome(StatusCode::UNPROCESSABLE_ENTITY, &parsed.outcome(errors))
}

/// `POST /fhir/r4/ServiceRequest`: a new order. Referrers order as themselves;
/// schedulers name the referrer as `requester`.
pub async fn create_service_request(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    body: Bytes,
) -> FhirResult {
    let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        FhirResponse::outcome(
            StatusCode::BAD_REQUEST,
            &OperationOutcome::error(
                "structure",
                format!("the body is not valid JSON: {e}"),
                None,
            ),
        )
    })?;
    let parsed = parse_service_request(&json)
        .map_err(|o| FhirResponse::outcome(StatusCode::BAD_REQUEST, &o))?;
    let forbidden = |msg: &str| {
        FhirResponse::outcome(
            StatusCode::FORBIDDEN,
            &OperationOutcome::error("forbidden", msg, Some("ServiceRequest.requester".into())),
        )
    };
    let referrer = match (caller.user.role, parsed.requester) {
        (Role::Referrer, None) => caller.user.id,
        (Role::Referrer, Some(id)) if id == caller.user.id.get() => caller.user.id,
        (Role::Referrer, Some(_)) => {
            return Err(forbidden("a referrer can only order as themselves"));
        }
        (Role::Scheduler, Some(id)) => UserId::new(id),
        (Role::Scheduler, None) => {
            return Err(FhirResponse::outcome(
                StatusCode::UNPROCESSABLE_ENTITY,
                &OperationOutcome::error(
                    "required",
                    "name the referring provider as requester (Practitioner/{id})",
                    Some("ServiceRequest.requester".into()),
                ),
            ));
        }
        _ => {
            return Err(forbidden(
                "orders are placed by referrers, or by schedulers for them",
            ));
        }
    };
    let today = state.today();
    let catalogue = state.store().procedures().await?;
    let mut errors = FieldErrors::default();
    let details = parsed
        .form
        .details(&catalogue, today)
        .map_err(|e| errors.extend(e))
        .ok();
    let subject = match parsed.subject {
        OrderSubject::Existing(id) => Some(ReferralSubject::Existing(PatientId::new(id))),
        OrderSubject::Contained => parsed
            .form
            .patient(today)
            .map(ReferralSubject::New)
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    let (Some(details), Some(subject), true) = (details, subject, errors.is_empty()) else {
        return Err(unprocessable(&parsed, &errors));
    };
    let receipt = state
        .store()
        .submit_referral(
            &caller.actor(),
            &NewReferral {
                subject,
                referrer,
                details,
                channel: Channel::Fhir,
            },
            Timestamp::now(),
        )
        .await;
    let receipt = match receipt {
        Ok(r) => r,
        Err(StoreError::Field { field, message }) => {
            let mut one = FieldErrors::default();
            one.0.push(irflow_domain::FieldError { field, message });
            return Err(unprocessable(&parsed, &one));
        }
        Err(e @ StoreError::DuplicateCase { existing }) => {
            return Err(FhirResponse::outcome(
                StatusCode::CONFLICT,
                &OperationOutcome::error(
                    "duplicate",
                    format!("{e}; see ServiceRequest/{existing}"),
                    Some("ServiceRequest.code".into()),
                ),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let detail = state
        .store()
        .case_detail(&caller.actor(), receipt.case)
        .await?;
    let mut response = FhirResponse::with_status(
        StatusCode::CREATED,
        &render::service_request(&service_request_view(&detail)),
    );
    response.location = Some(format!(
        "{}/ServiceRequest/{}",
        base_url(&state, &headers),
        receipt.case
    ));
    Ok(response)
}

/// `GET /fhir/r4/Questionnaire/{id}`: the screening form.
pub async fn read_questionnaire(
    State(state): State<AppState>,
    FhirCaller(_caller): FhirCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> FhirResult {
    if id != irflow_fhir::questionnaire::SCREENING_QUESTIONNAIRE_ID {
        return Err(FhirResponse::outcome(
            StatusCode::NOT_FOUND,
            &OperationOutcome::error(
                "not-found",
                format!(
                    "Questionnaire/{id} is not known; the screening form is Questionnaire/{}",
                    irflow_fhir::questionnaire::SCREENING_QUESTIONNAIRE_ID
                ),
                None,
            ),
        ));
    }
    let rules = state.rules();
    let conditions: Vec<(String, String)> = rules
        .thrombotic_risk
        .iter()
        .map(|c| (c.meta.id.clone(), c.label.clone()))
        .collect();
    Ok(FhirResponse::ok(
        &irflow_fhir::questionnaire::screening_questionnaire(
            &base_url(&state, &headers),
            &format!("{} {}", rules.name, rules.version),
            &conditions,
        ),
    ))
}

fn response_view(
    record: &irflow_store::ScreeningRecord,
    case: &irflow_store::CaseSummary,
) -> irflow_fhir::questionnaire::ScreeningResponseView {
    irflow_fhir::questionnaire::ScreeningResponseView {
        id: record.id,
        case_id: case.id.get(),
        patient_id: case.patient_id.get(),
        authored: render::instant(record.at),
        author: record.screened_by.clone(),
        facts: serde_json::from_str(&record.facts_json).unwrap_or(serde_json::Value::Null),
        decision: record.outcome.as_str().to_owned(),
        earliest_safe_date: record.earliest_safe_date.map(|d| d.to_string()),
        rule_pack: format!("{} {}", record.pack_name, record.pack_version),
    }
}

/// `GET /fhir/r4/QuestionnaireResponse/{id}`: one stored screening.
pub async fn read_questionnaire_response(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> FhirResult {
    let id = parse_id(&id, "QuestionnaireResponse")?;
    match state.store().screening(&caller.actor(), id).await {
        Ok((record, case)) => Ok(FhirResponse::ok(
            &irflow_fhir::questionnaire::screening_response(
                &base_url(&state, &headers),
                &response_view(&record, &case),
            ),
        )),
        Err(StoreError::NotFound) => Err(not_found("QuestionnaireResponse", id)),
        Err(e) => Err(e.into()),
    }
}

/// `GET /fhir/r4/QuestionnaireResponse?based-on=ServiceRequest/{id}`: a case's screenings.
pub async fn search_questionnaire_responses(
    State(state): State<AppState>,
    FhirCaller(caller): FhirCaller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> FhirResult {
    let mut case = None;
    for pair in query
        .as_deref()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (crate::views::url_decode(k), crate::views::url_decode(v));
        match k.as_str() {
            "based-on" => case = Some(reference_id(&v, "ServiceRequest", "based-on")?),
            "_format" if v.contains("json") => {}
            other => {
                return Err(bad_param(
                    other,
                    "this search parameter is not supported (use based-on=ServiceRequest/{id})",
                ));
            }
        }
    }
    let Some(case_id) = case else {
        return Err(bad_param(
            "based-on",
            "required: the case's ServiceRequest/{id}",
        ));
    };
    let base = base_url(&state, &headers);
    let records = match state
        .store()
        .screenings_for_case(&caller.actor(), CaseId::new(case_id))
        .await
    {
        Ok(r) => r,
        Err(StoreError::NotFound) => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut entries = Vec::new();
    if !records.is_empty() {
        let case = state
            .store()
            .case_detail(&caller.actor(), CaseId::new(case_id))
            .await?
            .case;
        for r in &records {
            entries.push((
                format!("{base}/QuestionnaireResponse/{}", r.id),
                irflow_fhir::questionnaire::screening_response(&base, &response_view(r, &case)),
            ));
        }
    }
    let total = u64::try_from(entries.len()).unwrap_or(0);
    let self_url = format!("{base}/QuestionnaireResponse?based-on=ServiceRequest/{case_id}");
    Ok(FhirResponse::ok(&render::searchset(
        entries, total, self_url, None, None,
    )))
}

#[cfg(test)]
mod tests {
    #[test]
    fn query_values_are_decoded() {
        assert_eq!(super::encode("on-hold,active"), "on-hold,active");
    }
}
