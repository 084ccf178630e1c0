//! FHIR R4 `Procedure`, `MedicationAdministration` and `DocumentReference` under
//! `/fhir/r4`: read, and search by patient — the signed procedure records.
//!
//! Everything is read through the audited store calls (`Store::signed_procedure`,
//! `Store::signed_procedures_for_patient`, `Store::case_detail`,
//! `Store::day_status`), which confine referrers to their own referrals; a record
//! not yet signed is "not found".

use axum::Router;
use axum::extract::{FromRequestParts, Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use irflow_domain::procedure_record::{Given, ProcedureRecordDetails};
use irflow_domain::{CaseId, PatientId};
use irflow_fhir::procedure::{self as fp, AgentKind, DocumentView, MedicationView, ProcedureView};
use irflow_fhir::render;
use irflow_fhir::types::OperationOutcome;
use irflow_store::{ProcedureRecordVersion, StoreError};
use serde::Serialize;

use crate::fhir_scheduling::Fail;
use crate::procedure_record_pages::{Loaded, load_signed, note_lines, report_of};
use crate::session::ApiCaller;
use crate::{AppError, AppState};

const DEFAULT_COUNT: usize = 20;
const MAX_COUNT: usize = 100;

type Answer = Result<Response, Fail>;

/// The routes.
pub(crate) fn routes() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/fhir/r4/Procedure", get(search_procedures))
        .route("/fhir/r4/Procedure/{id}", get(read_procedure))
        .route(
            "/fhir/r4/MedicationAdministration",
            get(search_medication_administrations),
        )
        .route(
            "/fhir/r4/MedicationAdministration/{id}",
            get(read_medication_administration),
        )
        .route(
            "/fhir/r4/DocumentReference",
            get(search_document_references),
        )
        .route(
            "/fhir/r4/DocumentReference/{id}",
            get(read_document_reference),
        )
}

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

fn not_found(resource: &str, id: &str) -> Fail {
    Fail::Outcome(
        StatusCode::NOT_FOUND,
        OperationOutcome::error(
            "not-found",
            format!("{resource}/{id} is not known to this server or not visible to you"),
            None,
        ),
    )
}

fn bad_param(resource: &str, name: &str, message: impl std::fmt::Display) -> Fail {
    Fail::Outcome(
        StatusCode::BAD_REQUEST,
        OperationOutcome::error(
            "invalid",
            format!("{name}: {message}"),
            Some(format!("{resource}?{name}")),
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

/// Loads a case's signed procedure; "not found" for anything the caller may not see.
async fn loaded(
    state: &AppState,
    caller: &ApiCaller,
    case: CaseId,
    resource: &str,
    raw: &str,
) -> Result<Loaded, Fail> {
    match load_signed(state, &caller.actor(), case).await {
        Ok(l) => Ok(l),
        Err(StoreError::NotFound | StoreError::Denied(_)) => Err(not_found(resource, raw)),
        Err(e) => Err(failure(e)),
    }
}

fn details(v: &ProcedureRecordVersion) -> Result<ProcedureRecordDetails, Fail> {
    v.details().map_err(failure)
}

fn procedure_view(l: &Loaded) -> Result<(ProcedureView, ProcedureRecordDetails), Fail> {
    let current = l.procedure.current();
    let d = details(current)?;
    let signed = current
        .signed
        .as_ref()
        .ok_or_else(|| failure(StoreError::Corrupt("unsigned current record".into())))?;
    Ok((
        ProcedureView {
            case_id: l.procedure.case_id.get(),
            patient_id: l.procedure.patient_id.get(),
            patient_display: l.procedure.patient_name.clone(),
            code: d.procedure_code.clone(),
            code_display: d.procedure_name.clone(),
            started: l.started,
            ended: l.ended,
            performer_id: signed.user_id.get(),
            performer_display: signed.name.clone(),
            levels: d
                .levels
                .iter()
                .flat_map(|ls| ls.iter().map(ToString::to_string).collect::<Vec<_>>())
                .collect(),
            side: Some(d.side),
            complication: d.complication,
            complication_text: d.complication_text.clone(),
            note: note_lines(&d),
            report_id: current.id,
            signed_at: signed.at,
        },
        d,
    ))
}

fn medication_views(state: &AppState, l: &Loaded) -> Result<Vec<MedicationView>, Fail> {
    let (view, d) = procedure_view(l)?;
    let rules = &state.rules().procedure_record;
    let site = format!(
        "{}{}, {}",
        d.procedure_name,
        d.levels
            .as_ref()
            .map(|l| format!(" {l}"))
            .unwrap_or_default(),
        d.side.label().to_lowercase()
    );
    let given: [(AgentKind, &Option<Given>); 3] = [
        (AgentKind::Steroid, &d.steroid),
        (AgentKind::LocalAnaesthetic, &d.anaesthetic),
        (AgentKind::Contrast, &d.contrast),
    ];
    Ok(given
        .into_iter()
        .filter_map(|(kind, g)| {
            g.as_ref().map(|g| MedicationView {
                procedure: view.clone(),
                kind,
                given: g.clone(),
                particulate: (kind == AgentKind::Steroid)
                    .then(|| {
                        rules
                            .steroids
                            .iter()
                            .find(|s| s.agent == g.agent)
                            .and_then(|s| s.particulate)
                    })
                    .flatten(),
                route_text: site.clone(),
            })
        })
        .collect())
}

fn document_views(state: &AppState, l: &Loaded) -> Result<Vec<DocumentView>, Fail> {
    let versions = &l.procedure.versions;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut out = Vec::new();
    for (i, v) in versions.iter().enumerate() {
        let signed = v
            .signed
            .as_ref()
            .ok_or_else(|| failure(StoreError::Corrupt("unsigned version served".into())))?;
        let r = report_of(state, l, v).map_err(failure)?;
        out.push(DocumentView {
            id: v.id,
            case_id: l.procedure.case_id.get(),
            patient_id: l.procedure.patient_id.get(),
            patient_display: l.procedure.patient_name.clone(),
            version: v.version,
            current: i + 1 == versions.len(),
            replaces: i.checked_sub(1).map(|p| versions[p].id),
            author_id: signed.user_id.get(),
            author_display: signed.name.clone(),
            signed_at: signed.at,
            started: l.started,
            ended: l.ended,
            title: r.title,
            text_base64: b64.encode(r.text.as_bytes()),
            html_base64: b64.encode(r.html.as_bytes()),
        });
    }
    Ok(out)
}

/// `GET /fhir/r4/Procedure/{id}` (id = the case).
pub async fn read_procedure(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    let case = positive(&raw).ok_or_else(|| not_found("Procedure", &raw))?;
    let l = loaded(&state, &caller, CaseId::new(case), "Procedure", &raw).await?;
    let (view, _) = procedure_view(&l)?;
    Ok(respond(
        StatusCode::OK,
        &fp::procedure(&view, state.time_zone()),
    ))
}

/// `GET /fhir/r4/MedicationAdministration/{case}-{kind}`.
pub async fn read_medication_administration(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    const R: &str = "MedicationAdministration";
    let (case, kind) = AgentKind::parse_id(&raw).ok_or_else(|| not_found(R, &raw))?;
    let l = loaded(&state, &caller, CaseId::new(case), R, &raw).await?;
    let m = medication_views(&state, &l)?
        .into_iter()
        .find(|m| m.kind == kind)
        .ok_or_else(|| not_found(R, &raw))?;
    Ok(respond(
        StatusCode::OK,
        &fp::medication_administration(&m, state.time_zone()),
    ))
}

/// `GET /fhir/r4/DocumentReference/{id}` (id = a signed version).
pub async fn read_document_reference(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Path(raw): Path<String>,
) -> Answer {
    const R: &str = "DocumentReference";
    let id = positive(&raw).ok_or_else(|| not_found(R, &raw))?;
    let case = match state.store().case_of_procedure_record(id).await {
        Ok(Some(c)) => c,
        Ok(None) => return Err(not_found(R, &raw)),
        Err(e) => return Err(failure(e)),
    };
    let l = loaded(&state, &caller, case, R, &raw).await?;
    let d = document_views(&state, &l)?
        .into_iter()
        .find(|d| d.id == id)
        .ok_or_else(|| not_found(R, &raw))?;
    Ok(respond(
        StatusCode::OK,
        &fp::document_reference(&d, state.time_zone()),
    ))
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

/// The parameters every search here takes: `patient` (required), `_count`, `_offset`.
struct Search {
    patient: i64,
    count: usize,
    offset: usize,
}

fn parse_search(resource: &str, query: Option<&str>) -> Result<Search, Fail> {
    let mut patient: Option<i64> = None;
    let mut count = DEFAULT_COUNT;
    let mut offset = 0usize;
    for pair in query.unwrap_or("").split('&') {
        if pair.is_empty() {
            continue;
        }
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (k, v) = (crate::views::url_decode(k), crate::views::url_decode(v));
        match k.as_str() {
            "patient" | "subject" => {
                let raw = v.strip_prefix("Patient/").unwrap_or(&v);
                let id = positive(raw).ok_or_else(|| {
                    bad_param(
                        resource,
                        &k,
                        format!("expected Patient/{{id}} or {{id}}, got {v:?}"),
                    )
                })?;
                if patient.is_some_and(|p| p != id) {
                    return Err(bad_param(
                        resource,
                        &k,
                        "names two different patients; give one",
                    ));
                }
                patient = Some(id);
            }
            "_count" => {
                count = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=MAX_COUNT).contains(n))
                    .ok_or_else(|| bad_param(resource, "_count", "a whole number from 1 to 100"))?;
            }
            "_offset" => {
                offset = v
                    .parse::<u32>()
                    .map_err(|_| bad_param(resource, "_offset", "a whole number, 0 or more"))?
                    as usize;
            }
            "_format" if v.contains("json") => {}
            other => {
                return Err(bad_param(
                    resource,
                    other,
                    "this search parameter is not supported (see /fhir/r4/metadata)",
                ));
            }
        }
    }
    let patient = patient.ok_or_else(|| {
        bad_param(
            resource,
            "patient",
            format!("required: search {resource} by patient (patient=Patient/{{id}})"),
        )
    })?;
    Ok(Search {
        patient,
        count,
        offset,
    })
}

/// Every signed procedure of the patient the caller may see, loaded.
async fn patient_procedures(
    state: &AppState,
    caller: &ApiCaller,
    patient: i64,
) -> Result<Vec<Loaded>, Fail> {
    let actor = caller.actor();
    let found = match state
        .store()
        .signed_procedures_for_patient(&actor, PatientId::new(patient))
        .await
    {
        Ok(f) => f,
        Err(StoreError::NotFound | StoreError::Denied(_)) => Vec::new(),
        Err(e) => return Err(failure(e)),
    };
    let mut out = Vec::new();
    for p in found {
        match load_signed(state, &actor, p.case_id).await {
            Ok(l) => out.push(l),
            Err(StoreError::NotFound | StoreError::Denied(_)) => {}
            Err(e) => return Err(failure(e)),
        }
    }
    Ok(out)
}

fn bundle<R: Serialize>(base: &str, resource: &str, s: &Search, all: Vec<(String, R)>) -> Response {
    let total = all.len();
    let entries: Vec<(String, R)> = all.into_iter().skip(s.offset).take(s.count).collect();
    let url = |offset: usize| {
        format!(
            "{base}/{resource}?patient={}&_count={}&_offset={offset}",
            encode(&format!("Patient/{}", s.patient)),
            s.count
        )
    };
    let next = (s.offset.saturating_add(s.count) < total).then(|| url(s.offset + s.count));
    let previous = (s.offset > 0).then(|| url(s.offset.saturating_sub(s.count)));
    respond(
        StatusCode::OK,
        &render::searchset(
            entries,
            u64::try_from(total).unwrap_or(0),
            url(s.offset),
            next,
            previous,
        ),
    )
}

/// `GET /fhir/r4/Procedure?patient=Patient/{id}`.
pub async fn search_procedures(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    let s = parse_search("Procedure", query.as_deref())?;
    let base = base_url(&state, &headers);
    let mut all = Vec::new();
    for l in patient_procedures(&state, &caller, s.patient).await? {
        let (view, _) = procedure_view(&l)?;
        all.push((
            format!("{base}/Procedure/{}", view.case_id),
            fp::procedure(&view, state.time_zone()),
        ));
    }
    Ok(bundle(&base, "Procedure", &s, all))
}

/// `GET /fhir/r4/MedicationAdministration?patient=Patient/{id}`.
pub async fn search_medication_administrations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    const R: &str = "MedicationAdministration";
    let s = parse_search(R, query.as_deref())?;
    let base = base_url(&state, &headers);
    let mut all = Vec::new();
    for l in patient_procedures(&state, &caller, s.patient).await? {
        for m in medication_views(&state, &l)? {
            all.push((
                format!("{base}/{R}/{}", m.kind.id(m.procedure.case_id)),
                fp::medication_administration(&m, state.time_zone()),
            ));
        }
    }
    Ok(bundle(&base, R, &s, all))
}

/// `GET /fhir/r4/DocumentReference?patient=Patient/{id}`.
pub async fn search_document_references(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Answer {
    const R: &str = "DocumentReference";
    let s = parse_search(R, query.as_deref())?;
    let base = base_url(&state, &headers);
    let mut all = Vec::new();
    for l in patient_procedures(&state, &caller, s.patient).await? {
        for d in document_views(&state, &l)? {
            all.push((
                format!("{base}/{R}/{}", d.id),
                fp::document_reference(&d, state.time_zone()),
            ));
        }
    }
    Ok(bundle(&base, R, &s, all))
}
