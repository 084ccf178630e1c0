//! FHIR R4 `ImagingStudy` under `/fhir/r4`: read, and search by patient — the outside
//! MRI/CT studies attached to cases. A study waiting in the reconciliation queue (or
//! rejected) belongs to no patient and is "not found" here.
//!
//! Studies are patient data: they are read only through the audited store calls
//! (`Store::study_detail`, `Store::imaging_for_patient`, `Store::patient`), which
//! confine referrers to their own referrals' studies.

use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_domain::PatientId;
use irflow_fhir::imaging::{self as fi, ImagingStudyView, InstanceView, SeriesView};
use irflow_fhir::render;
use irflow_fhir::types::OperationOutcome;
use irflow_store::{StoreError, StudyDetail, StudyState};
use serde::Serialize;

use crate::fhir_scheduling::Fail;
use crate::session::ApiCaller;
use crate::{AppError, AppState};

const R: &str = "ImagingStudy";
const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;

type Answer = Result<Response, Fail>;

/// A bearer-token caller whose rejection is an OperationOutcome.
#[derive(Debug)]
pub struct Caller(ApiCaller);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Fail;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        ApiCaller::from_request_parts(parts, state)
            .await
            .map(Caller)
            .map_err(|e| Fail::App(e.0))
    }
}

fn respond(status: StatusCode, body: &impl Serialize) -> Response {
    let (status, text) = match serde_json::to_string(body) {
        Ok(text) => (status, text),
        Err(e) => {
            tracing::error!(error = %e, "could not serialise a FHIR resource");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                r#"{"resourceType":"OperationOutcome","issue":[{"severity":"fatal","code":"exception","diagnostics":"internal error"}]}"#.to_owned(),
            )
        }
    };
    let mut response = (status, text).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(irflow_fhir::FHIR_JSON),
    );
    response
}

fn not_found(id: &str) -> Fail {
    Fail::Outcome(
        StatusCode::NOT_FOUND,
        OperationOutcome::error(
            "not-found",
            format!("{R}/{id} is not known to this server or not visible to you"),
            None,
        ),
    )
}

fn bad_param(name: &str, message: impl std::fmt::Display) -> Fail {
    Fail::Outcome(
        StatusCode::BAD_REQUEST,
        OperationOutcome::error(
            "invalid",
            format!("{name}: {message}"),
            Some(format!("{R}?{name}")),
        ),
    )
}

fn failure(e: impl Into<AppError>) -> Fail {
    Fail::App(e.into())
}

fn positive(raw: &str) -> Option<i64> {
    (!raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .filter(|n| *n > 0)
}

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

/// The FHIR view of an attached study, or `None` for one that is not attached.
fn view(detail: &StudyDetail, patient_id: i64, patient_display: &str) -> Option<ImagingStudyView> {
    let s = &detail.summary;
    let case_id = match (s.state, s.case_id) {
        (StudyState::Matched, Some(c)) => c.get(),
        _ => return None,
    };
    Some(ImagingStudyView {
        id: s.id,
        study_instance_uid: s.study_instance_uid.clone(),
        accession_number: s.accession_number.clone(),
        patient_id,
        patient_display: patient_display.to_owned(),
        case_id,
        started: s.study_date,
        description: s.study_description.clone(),
        series: detail
            .series
            .iter()
            .map(|se| SeriesView {
                uid: se.series_instance_uid.clone(),
                number: se.series_number,
                modality: se.modality.clone(),
                description: se.series_description.clone(),
                body_part: se.body_part.clone(),
                instances: se
                    .instances
                    .iter()
                    .map(|i| InstanceView {
                        uid: i.sop_instance_uid.clone(),
                        sop_class_uid: i.sop_class_uid.clone(),
                        number: i.instance_number,
                    })
                    .collect(),
            })
            .collect(),
    })
}

/// The patient of an attached study's case: (id, "Family, Given").
async fn patient_of(
    state: &AppState,
    caller: &ApiCaller,
    detail: &StudyDetail,
) -> Result<Option<(i64, String)>, Fail> {
    let Some(case) = detail.summary.case_id else {
        return Ok(None);
    };
    match state.store().case_detail(&caller.actor(), case).await {
        Ok(d) => Ok(Some((d.patient.id.get(), d.case.patient_name()))),
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(failure(e)),
    }
}

/// `GET /fhir/r4/ImagingStudy/{id}`.
pub async fn read_imaging_study(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    let id = positive(&raw).ok_or_else(|| not_found(&raw))?;
    let detail = match state.store().study_detail(&caller.actor(), id).await {
        Ok(d) => d,
        Err(StoreError::NotFound | StoreError::Denied(_)) => return Err(not_found(&raw)),
        Err(e) => return Err(failure(e)),
    };
    let Some((patient_id, display)) = patient_of(&state, &caller, &detail).await? else {
        return Err(not_found(&raw));
    };
    match view(&detail, patient_id, &display) {
        Some(v) => Ok(respond(StatusCode::OK, &fi::imaging_study(&v))),
        None => Err(not_found(&raw)),
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~/,:".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// `GET /fhir/r4/ImagingStudy?patient=Patient/{id}&_count=&_offset=`.
pub async fn search_imaging_studies(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    let mut patient: Option<i64> = None;
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    for pair in query.as_deref().unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (crate::views::url_decode(k), crate::views::url_decode(v));
        match k.as_str() {
            "patient" | "subject" => {
                let raw = v.strip_prefix("Patient/").unwrap_or(&v);
                let id = positive(raw).ok_or_else(|| {
                    bad_param(&k, format!("expected Patient/{{id}} or {{id}}, got {v:?}"))
                })?;
                if patient.is_some_and(|p| p != id) {
                    return Err(bad_param(&k, "names two different patients; give one"));
                }
                patient = Some(id);
            }
            "_count" => {
                count = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| bad_param("_count", "a whole number from 1 to 100"))?;
            }
            "_offset" => {
                offset = v
                    .parse::<u32>()
                    .map_err(|_| bad_param("_offset", "a whole number, 0 or more"))?
                    as usize;
            }
            "_format" if v.contains("json") => {}
            other => {
                return Err(bad_param(
                    other,
                    "this search parameter is not supported (see /fhir/r4/metadata)",
                ));
            }
        }
    }
    let Some(patient) = patient else {
        return Err(bad_param(
            "patient",
            "required: search ImagingStudy by patient (patient=Patient/{id})",
        ));
    };
    let actor = caller.actor();
    let summaries = match state
        .store()
        .imaging_for_patient(&actor, PatientId::new(patient))
        .await
    {
        Ok(s) => s,
        // A patient the caller may not see has, for them, no studies.
        Err(StoreError::NotFound | StoreError::Denied(_)) => Vec::new(),
        Err(e) => return Err(failure(e)),
    };
    let display = if summaries.is_empty() {
        String::new()
    } else {
        match state.store().patient(&actor, PatientId::new(patient)).await {
            Ok(p) => format!("{}, {}", p.family_name, p.given_name),
            Err(StoreError::NotFound | StoreError::Denied(_)) => String::new(),
            Err(e) => return Err(failure(e)),
        }
    };
    let base = base_url(&state, &headers);
    let matched: Vec<_> = summaries
        .iter()
        .filter(|s| s.state == StudyState::Matched && s.case_id.is_some())
        .collect();
    let total = matched.len();
    let mut entries = Vec::new();
    for s in matched.iter().skip(offset).take(count) {
        let detail = match state.store().study_detail(&actor, s.id).await {
            Ok(d) => d,
            Err(StoreError::NotFound | StoreError::Denied(_)) => continue,
            Err(e) => return Err(failure(e)),
        };
        if let Some(v) = view(&detail, patient, &display) {
            entries.push((format!("{base}/{R}/{}", s.id), fi::imaging_study(&v)));
        }
    }
    let url = |offset: usize| {
        format!(
            "{base}/{R}?patient={}&_count={count}&_offset={offset}",
            encode(&format!("Patient/{patient}"))
        )
    };
    let next = (offset.saturating_add(count) < total).then(|| url(offset.saturating_add(count)));
    let previous = (offset > 0).then(|| url(offset.saturating_sub(count)));
    Ok(respond(
        StatusCode::OK,
        &render::searchset(
            entries,
            u64::try_from(total).unwrap_or(0),
            url(offset),
            next,
            previous,
        ),
    ))
}
