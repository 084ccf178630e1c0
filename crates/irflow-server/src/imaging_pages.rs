//! Outside imaging on the web: the case's imaging panel (prior imaging at a glance,
//! with flags; thumbnails per series; upload with a progress bar), the upload itself
//! (page and API), the reconciliation queue (page and API) where staff attach a study
//! to the right case — after a confirmation that shows both identities side by side —
//! or reject it, and the "imaging on file" answer letters use.
//!
//! Everything here reads and writes through the audited store calls of
//! `irflow_store::imaging` and the one ingest path of [`crate::imaging`]; viewing the
//! images is [`crate::imaging_view`].

use askama::Template;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Multipart, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use irflow_dicom::Unpacked;
use irflow_domain::imaging::{
    DEFAULT_MAX_AGE_MONTHS, ImagingAssessment, PriorStudy, RegionNeed, assess,
};
use irflow_domain::{Actor, CaseId, Role, SpineLevels};
use irflow_store::{
    CandidateCase, CaseSummary, ImagingSource, QueuedStudy, Reconciled, SourceKind, StoreError,
    StudyDetail, StudySummary,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, parse_case_id};
use crate::auth::constant_time_eq;
use crate::imaging::{FileResult, IngestReport};
use crate::imaging_view::{self as view, series_label};
use crate::pages::{Chrome, case_error, error_page, forged, render};
use crate::session::{ApiCaller, SignedIn};
use crate::views::local_time;
use crate::{AppError, AppState, ServerConfig};

/// The largest upload accepted over HTTP (one request), whatever the import limits say:
/// uploads are held in memory while they are unpacked and stored.
pub const MAX_UPLOAD_BYTES: u64 = 2 * 1024 * 1024 * 1024;
use crate::imaging::MAX_CONCURRENT_UPLOADS;
/// Seconds a refused upload is told to wait before trying again.
const UPLOAD_RETRY_AFTER_SECONDS: u32 = 30;

/// The uploads that may be received at once.
#[derive(Debug, Clone)]
pub(crate) struct UploadSlots(std::sync::Arc<tokio::sync::Semaphore>);

impl Default for UploadSlots {
    fn default() -> Self {
        Self(std::sync::Arc::new(tokio::sync::Semaphore::new(
            MAX_CONCURRENT_UPLOADS,
        )))
    }
}

impl UploadSlots {
    /// A slot for one upload, held until it is dropped; none when all are taken.
    fn take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }
}

/// The answer when every upload slot is taken: 503 with `Retry-After`, before the
/// body is read (nothing of it is stored). A page for a browser's form post (`page`),
/// the API's error shape otherwise.
fn uploads_busy(page: Option<(&AppState, &SignedIn)>) -> Response {
    let message = format!(
        "{MAX_CONCURRENT_UPLOADS} uploads of images are being received already; this one was not read and nothing from it was stored. Try again in a minute"
    );
    let status = StatusCode::SERVICE_UNAVAILABLE;
    let mut response = match page {
        Some((state, who)) => error_page(state, Some(who), &AppError::TooManyRequests(message)),
        None => (
            status,
            Json(json!({
                "error": {"status": status.as_u16(), "code": "busy", "message": message}
            })),
        )
            .into_response(),
    };
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::RETRY_AFTER,
        header::HeaderValue::from(UPLOAD_RETRY_AFTER_SECONDS),
    );
    response
}

/// Studies whose thumbnails the reconciliation queue shows (the rest link to the viewer).
const QUEUE_THUMBNAILS: usize = 40;

/// A positive id from a path segment.
pub(crate) fn positive_id(raw: &str) -> Option<i64> {
    (!raw.is_empty() && raw.len() <= 18 && raw.bytes().all(|b| b.is_ascii_digit()))
        .then(|| raw.parse::<i64>().ok())
        .flatten()
        .filter(|n| *n > 0)
}

/// The bytes one upload may carry.
pub(crate) fn upload_limit(config: &ServerConfig) -> u64 {
    config.imaging_limits.max_total_bytes.min(MAX_UPLOAD_BYTES)
}

fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    if mb >= 1024.0 {
        format!("{:.1} GB", mb / 1024.0)
    } else {
        format!("{mb:.0} MB")
    }
}

/// The routes of outside imaging (pages, API, PNGs), with the upload routes' own body
/// limit (the app's default is 1 MB).
pub(crate) fn routes(config: &ServerConfig) -> Router<AppState> {
    let limit = usize::try_from(upload_limit(config))
        .unwrap_or(usize::MAX)
        // Room for the multipart framing around the files.
        .saturating_add(1024 * 1024);
    let body_limit = axum::extract::DefaultBodyLimit::max(limit);
    Router::new()
        .route(
            "/cases/{id}/imaging",
            get(panel_page).post(upload_page).layer(body_limit),
        )
        .route(
            "/cases/{id}/imaging/series/{series}/thumb.png",
            get(view::case_series_thumb),
        )
        .route(
            "/cases/{id}/imaging/studies/{study}",
            get(view::case_viewer),
        )
        .route(
            "/cases/{id}/imaging/instances/{file}",
            get(view::case_instance_png),
        )
        .route("/imaging/queue", get(queue_page))
        .route(
            "/imaging/studies/{study}/attach",
            get(attach_confirm).post(attach_form),
        )
        .route("/imaging/studies/{study}/reject", post(reject_form))
        .route("/imaging/studies/{study}/view", get(view::queued_viewer))
        .route(
            "/imaging/series/{series}/thumb.png",
            get(view::queued_series_thumb),
        )
        .route("/imaging/instances/{file}", get(view::queued_instance_png))
        .route(
            "/api/v1/cases/{id}/imaging",
            get(api_case_imaging).post(api_upload).layer(body_limit),
        )
        .route("/api/v1/imaging/queue", get(api_queue))
        .route("/api/v1/imaging/studies/{study}/attach", post(api_attach))
        .route("/api/v1/imaging/studies/{study}/reject", post(api_reject))
}

// ---------------------------------------------------------------- assessment

/// A stored study as the domain's assessment sees it.
pub(crate) fn prior_study(s: &StudySummary) -> PriorStudy {
    PriorStudy {
        modalities: s.modalities.clone(),
        study_date: s.study_date,
        body_part: s.body_parts.join(" "),
        description: s.study_description.clone(),
        series_descriptions: s.series_descriptions.clone(),
    }
}

fn max_age_months(state: &AppState) -> u32 {
    match state.config().imaging_max_age_months {
        0 => DEFAULT_MAX_AGE_MONTHS,
        months => months,
    }
}

/// What the case's order needs imaged (its levels, else its procedure's regions).
async fn need_for(state: &AppState, case: &CaseSummary) -> Result<RegionNeed, AppError> {
    let catalogue = state.store().procedures().await?;
    Ok(need_in(&catalogue, case))
}

fn need_in(catalogue: &[irflow_domain::Procedure], case: &CaseSummary) -> RegionNeed {
    let procedure = catalogue.iter().find(|p| p.code == case.procedure_code);
    let levels = case
        .levels
        .as_deref()
        .and_then(|l| SpineLevels::parse(l).ok());
    match procedure {
        Some(p) => RegionNeed::for_order(p, levels.as_ref()),
        // A procedure gone from the catalogue: the levels alone, else any spine region.
        None => match levels {
            Some(l) => RegionNeed::AllOf(
                l.iter()
                    .filter_map(|lv| lv.regions().next())
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            None => RegionNeed::AnyOf(irflow_domain::SpineRegion::ALL.to_vec()),
        },
    }
}

/// The case's attached studies (an audited read) and their assessment.
pub(crate) async fn assess_case(
    state: &AppState,
    actor: &Actor,
    case: &CaseSummary,
) -> Result<(Vec<StudySummary>, ImagingAssessment), AppError> {
    let studies = state
        .store()
        .imaging_for_case(actor, case.id)
        .await
        .map_err(case_error)?;
    let need = need_for(state, case).await?;
    let prior: Vec<PriorStudy> = studies.iter().map(prior_study).collect();
    let assessment = assess(&prior, &need, state.today(), max_age_months(state));
    Ok((studies, assessment))
}

/// Whether a recent MRI/CT covering the treated region is on file for the case (the
/// letters' "we already have your MRI"). A failed read answers `false` — the letter
/// then asks the patient to bring their scan, which is never wrong — and is logged.
pub(crate) async fn suitable_on_file(state: &AppState, actor: &Actor, case: &CaseSummary) -> bool {
    match assess_case(state, actor, case).await {
        Ok((_, a)) => a.suitable_on_file,
        Err(e) => {
            e.log();
            tracing::warn!(
                error = e.code(),
                "prior imaging could not be read for a letter; it asks the patient to bring theirs"
            );
            false
        }
    }
}

/// A case's imaging in a few words, for the worklist: the newest study when a suitable
/// one is on file, else what is missing.
#[derive(Debug, Clone)]
pub(crate) struct ImagingGlance {
    pub(crate) text: String,
    pub(crate) ok: bool,
}

/// The states in which a case's prior imaging matters (the worklist shows it).
pub(crate) const IMAGING_STATES: &[irflow_domain::CaseState] = &[
    irflow_domain::CaseState::Referred,
    irflow_domain::CaseState::Screening,
    irflow_domain::CaseState::Deferred,
    irflow_domain::CaseState::AwaitingAction,
    irflow_domain::CaseState::Ready,
    irflow_domain::CaseState::Scheduled,
    irflow_domain::CaseState::Confirmed,
];

/// The imaging of every listed case in one audited read (cases in `states`).
pub(crate) async fn worklist_glance(
    state: &AppState,
    actor: &Actor,
    cases: &[CaseSummary],
    states: &[irflow_domain::CaseState],
) -> Result<std::collections::HashMap<CaseId, ImagingGlance>, AppError> {
    let by_case = state.store().imaging_glance(actor, states).await?;
    let catalogue = state.store().procedures().await?;
    let today = state.today();
    let max_age = max_age_months(state);
    Ok(cases
        .iter()
        .filter(|c| states.is_empty() || states.contains(&c.state))
        .map(|c| {
            let prior: Vec<PriorStudy> = by_case
                .get(&c.id)
                .map(|studies| {
                    studies
                        .iter()
                        .map(|g| PriorStudy {
                            modalities: g.modalities.clone(),
                            study_date: g.study_date,
                            body_part: g.body_parts.join(" "),
                            description: g.study_description.clone(),
                            series_descriptions: g.series_descriptions.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            let a = assess(&prior, &need_in(&catalogue, c), today, max_age);
            let glance = match (a.suitable_on_file, a.flags.first()) {
                (false, Some(flag)) => ImagingGlance {
                    text: flag.short(),
                    ok: false,
                },
                _ => ImagingGlance {
                    text: a.lines.first().cloned().unwrap_or_default(),
                    ok: a.suitable_on_file,
                },
            };
            (c.id, glance)
        })
        .collect())
}

fn assessment_json(a: &ImagingAssessment, max_age: u32) -> Value {
    json!({
        "lines": a.lines,
        "flags": a.flags.iter().map(|f| json!({"code": f.code(), "message": f.message()})).collect::<Vec<_>>(),
        "suitable_on_file": a.suitable_on_file,
        "max_age_months": max_age,
    })
}

// ---------------------------------------------------------------- the case's panel

pub(crate) struct SeriesCard {
    label: String,
    thumb: String,
    viewer: String,
    instances: usize,
    /// Why none of its images can be shown (they are stored all the same).
    undisplayable: Option<String>,
}

pub(crate) struct StudyCard {
    id: i64,
    line: String,
    how: String,
    viewer: String,
    series: Vec<SeriesCard>,
    instances: i64,
    undecodable: i64,
}

/// A study sent for the case that waits for staff.
pub(crate) struct WaitingCard {
    line: String,
    reason: String,
}

pub(crate) struct ImagingPanel {
    case_id: i64,
    csrf: String,
    flags: Vec<(&'static str, String)>,
    suitable: bool,
    studies: Vec<StudyCard>,
    /// Studies sent for this case that wait in the reconciliation queue.
    waiting: Vec<WaitingCard>,
    /// "1 study sent for this case is waiting for staff to check it".
    waiting_line: String,
    max_upload: String,
    /// Administrators manage the department, not patients' images.
    can_upload: bool,
}

#[derive(Template)]
#[template(path = "case_imaging.html")]
struct PanelFragment {
    panel: ImagingPanel,
}

#[derive(Template)]
#[template(path = "case_imaging_page.html")]
struct PanelPage {
    chrome: Chrome,
    title: String,
    panel: ImagingPanel,
}

fn how_label(s: &StudySummary) -> String {
    let mut how = s
        .matched_by
        .map_or("attached", irflow_store::MatchedBy::label)
        .to_owned();
    how.push_str(&format!(
        " · {} series, {} {}",
        s.series_count,
        s.instance_count,
        if s.instance_count == 1 {
            "image"
        } else {
            "images"
        }
    ));
    how
}

fn study_card(
    case: CaseId,
    summary: &StudySummary,
    detail: Option<&StudyDetail>,
    today: jiff::civil::Date,
) -> StudyCard {
    let base = format!("/cases/{case}/imaging");
    StudyCard {
        id: summary.id,
        line: prior_study(summary).line(today),
        how: how_label(summary),
        viewer: format!("{base}/studies/{}", summary.id),
        series: detail
            .map(|d| {
                d.series
                    .iter()
                    .map(|s| SeriesCard {
                        label: series_label(s.series_number, &s.series_description, &s.modality),
                        thumb: format!("{base}/series/{}/thumb.png", s.id),
                        viewer: format!("{base}/studies/{}?series={}", summary.id, s.id),
                        instances: s.instances.len(),
                        undisplayable: (!s.instances.is_empty()
                            && s.instances.iter().all(|i| i.render_error.is_some()))
                        .then(|| {
                            s.instances
                                .iter()
                                .find_map(|i| i.render_error.clone())
                                .unwrap_or_default()
                        }),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        instances: summary.instance_count,
        undecodable: summary.undecodable_count,
    }
}

/// Builds the panel: the case (audited read, access check), its studies (audited), and
/// each study's series (audited; leaves view grants for the thumbnails).
async fn build_panel(
    state: &AppState,
    who: &SignedIn,
    id: CaseId,
) -> Result<ImagingPanel, AppError> {
    let actor = who.actor();
    let detail = state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(case_error)?;
    let (studies, assessment) = assess_case(state, &actor, &detail.case).await?;
    let today = state.today();
    let mut cards = Vec::with_capacity(studies.len());
    for s in &studies {
        let detail = view::read_study(state, who, s.id)
            .await
            .ok()
            .map(|(d, _)| d);
        cards.push(study_card(id, s, detail.as_ref(), today));
    }
    let waiting: Vec<WaitingCard> = state
        .store()
        .waiting_for_case(&actor, id)
        .await
        .map_err(case_error)?
        .iter()
        .map(|w| WaitingCard {
            line: prior_study(&w.summary).line(today),
            reason: w.reason.clone(),
        })
        .collect();
    // Newest first, as the assessment lists them.
    cards.sort_by_key(|c| {
        assessment
            .lines
            .iter()
            .position(|l| *l == c.line)
            .unwrap_or(usize::MAX)
    });
    Ok(ImagingPanel {
        case_id: id.get(),
        csrf: who.csrf.clone(),
        flags: assessment
            .flags
            .iter()
            .map(|f| (f.code(), f.message()))
            .collect(),
        suitable: assessment.suitable_on_file,
        studies: cards,
        waiting_line: waiting_line(waiting.len(), "sent for this case"),
        waiting,
        max_upload: megabytes(upload_limit(state.config())),
        can_upload: who.user.role != Role::Admin,
    })
}

/// "1 study {from} is waiting for staff to check it" (empty for none).
fn waiting_line(n: usize, from: &str) -> String {
    match n {
        0 => String::new(),
        1 => format!("1 study {from} is waiting for staff to check it"),
        n => format!("{n} studies {from} are waiting for staff to check them"),
    }
}

fn is_fragment(headers: &HeaderMap) -> bool {
    headers.get("hx-request").is_some_and(|v| v == "true")
}

/// `GET /cases/{id}/imaging`: the imaging panel (loaded into the case page by htmx, or
/// a page of its own without JavaScript).
pub async fn panel_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    let panel = match build_panel(&state, &who, id).await {
        Ok(p) => p,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    if is_fragment(&headers) {
        render(&PanelFragment { panel }, StatusCode::OK)
    } else {
        render(
            &PanelPage {
                chrome: Chrome::new(&state, Some(&who), "cases"),
                title: format!("Prior imaging · case #{id}"),
                panel,
            },
            StatusCode::OK,
        )
    }
}

// ---------------------------------------------------------------- upload

/// One part of an upload: its name (relative path in a folder) and bytes.
struct Part {
    name: String,
    bytes: Vec<u8>,
}

/// A file name from a browser, safe to show: no control characters, no more than 200
/// characters. It is only ever shown, never used as a path (originals are stored by
/// the hash of their bytes).
fn clean_name(raw: &str) -> String {
    let cleaned: String = raw.chars().filter(|c| !c.is_control()).take(200).collect();
    let trimmed = cleaned.trim().trim_start_matches(['/', '\\']).to_owned();
    if trimmed.is_empty() {
        "unnamed file".to_owned()
    } else {
        trimmed
    }
}

fn too_large(limit: u64) -> AppError {
    AppError::Invalid(format!(
        "the upload is larger than {}, the most one upload may carry; send the study in parts, or ask staff to import the disc with `irflow import`",
        megabytes(limit)
    ))
}

fn multipart_error(e: &axum::extract::multipart::MultipartError, limit: u64) -> AppError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large(limit)
    } else {
        AppError::BadRequest(format!(
            "the upload could not be read ({}); try again",
            e.body_text()
        ))
    }
}

/// Reads the files of a multipart upload. With `csrf: Some(expected)`, the form's
/// anti-forgery token must arrive (as the `csrf` field, before any file) or have been
/// checked from the `X-CSRF-Token` header (`csrf: None`).
async fn read_multipart(
    mut multipart: Multipart,
    limit: u64,
    mut csrf: Option<&str>,
) -> Result<Vec<Part>, AppError> {
    let mut parts = Vec::new();
    let mut total: u64 = 0;
    while let Some(mut field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e, limit))?
    {
        let field_name = field.name().unwrap_or("").to_owned();
        if field_name == "csrf" {
            let value = field.text().await.map_err(|e| multipart_error(&e, limit))?;
            if let Some(expected) = csrf {
                if !constant_time_eq(expected, value.trim()) {
                    return Err(forged());
                }
                csrf = None;
            }
            continue;
        }
        if csrf.is_some() {
            return Err(forged());
        }
        let Some(file_name) = field.file_name().map(clean_name) else {
            // Other form fields carry nothing we use.
            continue;
        };
        let mut bytes = Vec::new();
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| multipart_error(&e, limit))?
        {
            total = total.saturating_add(chunk.len() as u64);
            if total > limit {
                return Err(too_large(limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        // An empty file input sends one empty part without a name.
        if bytes.is_empty() && file_name == "unnamed file" {
            continue;
        }
        parts.push(Part {
            name: file_name,
            bytes,
        });
    }
    if csrf.is_some() {
        return Err(forged());
    }
    Ok(parts)
}

fn looks_like_zip(name: &str, bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || bytes.starts_with(b"PK\x05\x06")
        || name.to_ascii_lowercase().ends_with(".zip")
}

/// Unpacks what one upload carried, under the import limits shared by all its parts:
/// each zip on its own (a broken zip is refused, the rest goes on), the loose files
/// together, so a CD's folder is read through its DICOMDIR.
fn unpack_parts(parts: Vec<Part>, limits: &irflow_dicom::Limits) -> irflow_dicom::UnpackReport {
    let mut report = irflow_dicom::UnpackReport::default();
    let mut loose = Vec::new();
    let mut left = *limits;
    let refuse_all = |why: String| irflow_dicom::UnpackReport {
        refused: vec![(
            "upload".to_owned(),
            format!("{why}; nothing from this upload was taken"),
        )],
        ..irflow_dicom::UnpackReport::default()
    };
    for part in parts {
        if !looks_like_zip(&part.name, &part.bytes) {
            loose.push(Unpacked {
                name: part.name,
                bytes: part.bytes,
            });
            continue;
        }
        match irflow_dicom::unpack_zip(&part.bytes, &left) {
            Ok(inner) => {
                let bytes: u64 = inner.files.iter().map(|f| f.bytes.len() as u64).sum();
                left.max_total_bytes = left.max_total_bytes.saturating_sub(bytes);
                left.max_files = left.max_files.saturating_sub(inner.files.len());
                for f in inner.files {
                    report.files.push(Unpacked {
                        name: format!("{}/{}", part.name, f.name),
                        bytes: f.bytes,
                    });
                }
                for (name, reason) in inner.refused {
                    report
                        .refused
                        .push((format!("{}/{name}", part.name), reason));
                }
                for (name, why) in inner.ignored {
                    report.ignored.push((format!("{}/{name}", part.name), why));
                }
                for (name, study) in inner.listed_studies {
                    report
                        .listed_studies
                        .insert(format!("{}/{name}", part.name), study);
                }
            }
            Err(irflow_dicom::UnpackError::Limit(why)) => return refuse_all(why),
            Err(e) => report.refused.push((part.name, e.to_string())),
        }
    }
    if !loose.is_empty() {
        match irflow_dicom::unpack_files(loose, &left) {
            Ok(inner) => {
                report.files.extend(inner.files);
                report.refused.extend(inner.refused);
                report.ignored.extend(inner.ignored);
                report.listed_studies.extend(inner.listed_studies);
            }
            Err(irflow_dicom::UnpackError::Limit(why)) => return refuse_all(why),
            Err(e) => report.refused.push(("upload".to_owned(), e.to_string())),
        }
    }
    report
}

/// Checks the caller may upload to the case (they can see it: referrers their own,
/// staff any), then unpacks, stores, indexes and matches with the case as the hint.
async fn ingest_upload(
    state: &AppState,
    actor: &Actor,
    id: CaseId,
    parts: Vec<Part>,
) -> Result<Uploaded, AppError> {
    if parts.is_empty() {
        return Err(AppError::Invalid(
            "no files arrived: choose the files, a zip, or the folder of a CD to upload".to_owned(),
        ));
    }
    let limits = state.config().imaging_limits;
    let unpacked = tokio::task::spawn_blocking(move || unpack_parts(parts, &limits))
        .await
        .map_err(|_| AppError::Internal("unpacking stopped unexpectedly".to_owned()))?;
    let source = ImagingSource::new(SourceKind::Upload).for_case(id);
    let ignored = unpacked.ignored.clone();
    let report = crate::imaging::ingest_unpacked(state, actor, unpacked, source).await?;
    let attached = if report.studies.is_empty() {
        Vec::new()
    } else {
        state
            .store()
            .imaging_for_case(actor, id)
            .await
            .map_err(case_error)?
    };
    Ok(Uploaded {
        report,
        attached,
        ignored,
    })
}

/// What an upload did.
struct Uploaded {
    report: IngestReport,
    /// The case's studies afterwards (to describe those attached).
    attached: Vec<StudySummary>,
    /// Files left out on purpose, with the reason (a CD's DICOMDIR, files in its
    /// folder it does not list).
    ignored: Vec<(String, String)>,
}

/// The upload's outcome as JSON (the page's script shows it without a reload).
fn report_json(up: &Uploaded, case: CaseId, today: jiff::civil::Date) -> Value {
    let (report, attached) = (&up.report, &up.attached);
    let refused: Vec<Value> = report
        .refused()
        .map(|(name, reason)| json!({"name": name, "reason": reason}))
        .collect();
    let undisplayable = report
        .files
        .iter()
        .filter(|f| {
            matches!(
                f.result,
                FileResult::Stored {
                    render_error: Some(_),
                    ..
                }
            )
        })
        .count();
    let studies: Vec<Value> = report
        .studies
        .iter()
        .map(|s| {
            let summary = attached.iter().find(|a| a.id == s.study_id);
            let mut v = json!({
                "study_id": s.study_id,
                "new_instances": s.new_instances,
                "description": summary.map(|a| prior_study(a).line(today)),
            });
            match &s.outcome {
                Reconciled::Attached {
                    case: c,
                    matched_by,
                } => {
                    v["outcome"] = json!("attached");
                    v["case_id"] = json!(c.get());
                    v["matched_by"] = json!(matched_by.as_str());
                    v["this_case"] = json!(*c == case);
                    v["message"] = json!(if *c == case {
                        format!("attached to this case ({})", matched_by.label())
                    } else {
                        format!(
                            "attached to another case of the patient ({})",
                            matched_by.label()
                        )
                    });
                }
                Reconciled::AlreadyAttached { case: c } => {
                    v["outcome"] = json!("already_attached");
                    v["case_id"] = json!(c.get());
                    v["this_case"] = json!(*c == case);
                    v["message"] = json!("more images of a study already on file");
                }
                Reconciled::Queued { reason } => {
                    v["outcome"] = json!("queued");
                    v["reason"] = json!(reason);
                    v["message"] = json!(format!(
                        "waits for staff to check it against the patient: {reason}"
                    ));
                }
                Reconciled::Rejected => {
                    v["outcome"] = json!("rejected");
                    v["message"] = json!("staff had rejected this study before; it stays rejected");
                }
            }
            v
        })
        .collect();
    let queued: Vec<&str> = report
        .studies
        .iter()
        .filter_map(|s| match &s.outcome {
            Reconciled::Queued { reason } => Some(reason.as_str()),
            _ => None,
        })
        .collect();
    let waiting = match queued.as_slice() {
        [] => None,
        [reason] => Some(format!(
            "{} ({reason})",
            waiting_line(1, "from this upload")
        )),
        several => Some(format!(
            "{} (each says why below)",
            waiting_line(several.len(), "from this upload")
        )),
    };
    json!({
        "batch": report.batch,
        "waiting": waiting,
        "stored": report.stored(),
        "duplicates": report.duplicates(),
        "undisplayable": undisplayable,
        "refused": refused,
        "ignored": up
            .ignored
            .iter()
            .take(500)
            .map(|(name, reason)| json!({"name": name, "reason": reason}))
            .collect::<Vec<_>>(),
        "studies": studies,
    })
}

fn nothing_taken(report: &IngestReport) -> bool {
    report.stored() == 0 && report.duplicates() == 0
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/json"))
}

pub(crate) struct RefusedRow {
    name: String,
    reason: String,
}

pub(crate) struct OutcomeRow {
    message: String,
    description: Option<String>,
    new_instances: i64,
    queued: bool,
}

#[derive(Template)]
#[template(path = "imaging_upload_result.html")]
struct UploadResultPage {
    chrome: Chrome,
    case_id: i64,
    stored: usize,
    duplicates: usize,
    undisplayable: usize,
    /// "1 study from this upload is waiting for staff to check it (why)".
    waiting: Option<String>,
    /// Files left out on purpose, with why (a CD's DICOMDIR, its extras).
    left_out: Vec<RefusedRow>,
    refused: Vec<RefusedRow>,
    outcomes: Vec<OutcomeRow>,
}

/// `[{"name", "reason"}]` as rows.
fn named_reasons(v: &Value) -> Vec<RefusedRow> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|r| RefusedRow {
                    name: r["name"].as_str().unwrap_or("").to_owned(),
                    reason: r["reason"].as_str().unwrap_or("").to_owned(),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn result_page(
    state: &AppState,
    who: &SignedIn,
    case: CaseId,
    v: &Value,
    status: StatusCode,
) -> Response {
    let count = |k: &str| {
        v[k].as_u64()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(0)
    };
    let page = UploadResultPage {
        chrome: Chrome::new(state, Some(who), "cases"),
        case_id: case.get(),
        stored: count("stored"),
        duplicates: count("duplicates"),
        undisplayable: count("undisplayable"),
        waiting: v["waiting"].as_str().map(str::to_owned),
        left_out: named_reasons(&v["ignored"]),
        refused: named_reasons(&v["refused"]),
        outcomes: v["studies"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|s| OutcomeRow {
                        message: s["message"].as_str().unwrap_or("").to_owned(),
                        description: s["description"].as_str().map(str::to_owned),
                        new_instances: s["new_instances"].as_i64().unwrap_or(0),
                        queued: s["outcome"] == "queued",
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    render(&page, status)
}

/// `POST /cases/{id}/imaging` (page; session and anti-forgery token): many files, a
/// zip, or a CD's folder, as `multipart/form-data`. Answers JSON to the page's script
/// (`Accept: application/json`) and a result page to a plain form post.
pub async fn upload_page(
    State(state): State<AppState>,
    who: SignedIn,
    Path(id): Path<String>,
    headers: HeaderMap,
    multipart: Result<Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let json = wants_json(&headers);
    let fail = |e: AppError| {
        if json {
            ApiError(e).into_response()
        } else {
            error_page(&state, Some(&who), &e)
        }
    };
    let id = match parse_case_id(&id) {
        Ok(id) => id,
        Err(e) => return fail(e),
    };
    // The token may come as a header (the page's script) or as the form's first field.
    let header_token = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
    let expected = match header_token {
        Some(t) if constant_time_eq(&who.csrf, t.trim()) => None,
        Some(_) => return fail(forged()),
        None => Some(who.csrf.as_str()),
    };
    let actor = who.actor();
    // Refuse before reading megabytes if the case is not theirs to see.
    if let Err(e) = state.store().case_detail(&actor, id).await {
        return fail(case_error(e));
    }
    // ... or if as many uploads as memory allows are being received.
    let Some(_slot) = state.upload_slots().take() else {
        return uploads_busy((!json).then_some((&state, &who)));
    };
    let multipart = match multipart {
        Ok(m) => m,
        Err(e) => {
            return fail(AppError::BadRequest(format!(
                "send the files as multipart/form-data ({})",
                e.body_text()
            )));
        }
    };
    let limit = upload_limit(state.config());
    let parts = match read_multipart(multipart, limit, expected).await {
        Ok(p) => p,
        Err(e) => return fail(e),
    };
    match ingest_upload(&state, &actor, id, parts).await {
        Ok(up) => {
            let v = report_json(&up, id, state.today());
            let status = if nothing_taken(&up.report) {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            };
            if json {
                (status, Json(v)).into_response()
            } else {
                result_page(&state, &who, id, &v, status)
            }
        }
        Err(e) => fail(e),
    }
}

/// `POST /api/v1/cases/{id}/imaging` (bearer): `multipart/form-data` with any number
/// of files and zips, or one raw body (`application/zip`, `application/dicom`,
/// `application/octet-stream`).
pub async fn api_upload(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(case_error)?;
    let Some(_slot) = state.upload_slots().take() else {
        return Ok(uploads_busy(None));
    };
    let limit = upload_limit(state.config());
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let parts = if content_type.starts_with("multipart/form-data") {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        read_multipart(multipart, limit, None).await?
    } else if content_type.starts_with("application/zip")
        || content_type.starts_with("application/dicom")
        || content_type.starts_with("application/octet-stream")
    {
        let name = if content_type.starts_with("application/zip") {
            "upload.zip"
        } else {
            "upload.dcm"
        };
        let body = axum::body::to_bytes(
            request.into_body(),
            usize::try_from(limit).unwrap_or(usize::MAX),
        )
        .await
        .map_err(|_| too_large(limit))?;
        vec![Part {
            name: name.to_owned(),
            bytes: body.to_vec(),
        }]
    } else {
        return Err(AppError::BadRequest(
            "send multipart/form-data, or one file as application/zip or application/dicom"
                .to_owned(),
        )
        .into());
    };
    let up = ingest_upload(&state, &actor, id, parts).await?;
    let status = if nothing_taken(&up.report) {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report_json(&up, id, state.today()))).into_response())
}

/// A study as the API shows it.
fn study_json(s: &StudySummary, today: jiff::civil::Date) -> Value {
    json!({
        "id": s.id,
        "study_instance_uid": s.study_instance_uid,
        "case_id": s.case_id.map(CaseId::get),
        "state": s.state.as_str(),
        "matched_by": s.matched_by.map(irflow_store::MatchedBy::as_str),
        "summary": prior_study(s).line(today),
        "study_date": s.study_date.map(|d| d.to_string()),
        "description": s.study_description,
        "accession_number": s.accession_number,
        "modalities": s.modalities,
        "body_parts": s.body_parts,
        "series_count": s.series_count,
        "instance_count": s.instance_count,
        "undisplayable_count": s.undecodable_count,
        "local_mrn": s.local_mrn,
    })
}

/// `GET /api/v1/cases/{id}/imaging`: the case's studies and their assessment.
pub async fn api_case_imaging(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_case_id(&id)?;
    let actor = caller.actor();
    let detail = state
        .store()
        .case_detail(&actor, id)
        .await
        .map_err(case_error)?;
    let (studies, assessment) = assess_case(&state, &actor, &detail.case).await?;
    let today = state.today();
    Ok(Json(json!({
        "case_id": id.get(),
        "studies": studies.iter().map(|s| study_json(s, today)).collect::<Vec<_>>(),
        "assessment": assessment_json(&assessment, max_age_months(&state)),
    })))
}

// ---------------------------------------------------------------- reconciliation queue

/// "DOE^JOHN^A" → "DOE, JOHN A" (a DICOM person name for people; `=`-separated
/// ideographic and phonetic forms are shown as they are).
pub(crate) fn person_name(pn: &str) -> String {
    let first = pn.split('=').next().unwrap_or(pn);
    let mut parts = first.split('^').map(str::trim);
    let family = parts.next().unwrap_or("");
    let rest: Vec<&str> = parts.filter(|p| !p.is_empty()).collect();
    let shown = match (family.is_empty(), rest.is_empty()) {
        (true, true) => String::new(),
        (false, true) => family.to_owned(),
        (true, false) => rest.join(" "),
        (false, false) => format!("{family}, {}", rest.join(" ")),
    };
    if shown.is_empty() {
        "(no name in the file)".to_owned()
    } else {
        shown
    }
}

fn source_label(kind: SourceKind, calling_ae: Option<&str>) -> String {
    match (kind, calling_ae) {
        (SourceKind::Cstore, Some(ae)) => format!("sent over DICOM by {ae}"),
        (SourceKind::Cstore, None) => "sent over DICOM".to_owned(),
        (SourceKind::Upload, _) => "uploaded on the web".to_owned(),
        (SourceKind::Import, _) => "imported from a disc or folder".to_owned(),
    }
}

pub(crate) struct CandidateRow {
    case_id: i64,
    number: String,
    patient: String,
    date_of_birth: String,
    mrn: String,
    procedure: String,
    state: String,
    why: String,
}

fn candidate_row(c: &CandidateCase) -> CandidateRow {
    CandidateRow {
        case_id: c.case_id.get(),
        number: irflow_fhir::referral_number(c.case_id.get()),
        patient: c.patient_name.clone(),
        date_of_birth: c.date_of_birth.to_string(),
        mrn: c.mrn.clone().unwrap_or_else(|| "—".to_owned()),
        procedure: c.procedure_name.clone(),
        state: c
            .state
            .parse::<irflow_domain::CaseState>()
            .map_or_else(|_| c.state.clone(), |s| s.label().to_owned()),
        why: c.why.to_owned(),
    }
}

pub(crate) struct QueueCard {
    id: i64,
    patient_name: String,
    patient_id: String,
    birth_date: String,
    sex: String,
    line: String,
    counts: String,
    source: String,
    received: String,
    reason: String,
    hint: Option<String>,
    candidates: Vec<CandidateRow>,
    searched: Option<String>,
    results: Vec<CandidateRow>,
    thumbs: Vec<(String, String, String)>,
    viewer: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "imaging_queue.html")]
struct QueuePage {
    chrome: Chrome,
    cards: Vec<QueueCard>,
    done: Option<String>,
}

/// Query of the queue page.
#[derive(Debug, Deserialize, Default)]
pub struct QueueQuery {
    done: Option<String>,
    study: Option<String>,
    q: Option<String>,
}

/// Cases matching a search by MRN, name or date of birth (among those the caller may
/// list; the listing is audited).
async fn search_cases(
    state: &AppState,
    actor: &Actor,
    q: &str,
) -> Result<Vec<CandidateRow>, AppError> {
    let q = q.trim();
    if q.is_empty() {
        return Ok(Vec::new());
    }
    let all = state
        .store()
        .list_cases(
            actor,
            &irflow_store::CaseFilter {
                limit: Some(1000),
                ..irflow_store::CaseFilter::default()
            },
        )
        .await?;
    let date = q.parse::<jiff::civil::Date>().ok();
    let wanted: Vec<String> = irflow_dicom::normalise_name(&q.replace(',', " "))
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    let found = all
        .iter()
        .filter(|c| {
            if let Some(d) = date {
                return c.date_of_birth == d;
            }
            if c.mrn.as_deref().is_some_and(|m| m.eq_ignore_ascii_case(q)) {
                return true;
            }
            let name = irflow_dicom::normalise_name(&format!("{}^{}", c.family_name, c.given_name));
            !wanted.is_empty()
                && wanted
                    .iter()
                    .all(|w| name.split_whitespace().any(|n| n == w))
        })
        .take(20)
        .map(|c| CandidateRow {
            case_id: c.id.get(),
            number: irflow_fhir::referral_number(c.id.get()),
            patient: c.patient_name(),
            date_of_birth: c.date_of_birth.to_string(),
            mrn: c.mrn.clone().unwrap_or_else(|| "—".to_owned()),
            procedure: c.procedure_name.clone(),
            state: c.state.label().to_owned(),
            why: "search".to_owned(),
        })
        .collect();
    Ok(found)
}

async fn show_queue(
    state: &AppState,
    who: &SignedIn,
    q: &QueueQuery,
    error: Option<(i64, String)>,
    status: StatusCode,
) -> Response {
    let actor = who.actor();
    let queue = match state.store().reconciliation_queue(&actor).await {
        Ok(q) => q,
        Err(e) => return error_page(state, Some(who), &queue_error(e)),
    };
    let searched_study = q.study.as_deref().and_then(positive_id);
    let mut cards = Vec::with_capacity(queue.len());
    let tz = state.time_zone();
    let today = state.today();
    for (i, s) in queue.iter().enumerate() {
        let searched = (searched_study == Some(s.summary.id))
            .then(|| q.q.clone().unwrap_or_default())
            .filter(|t| !t.trim().is_empty());
        let results = match &searched {
            Some(text) => match search_cases(state, &actor, text).await {
                Ok(r) => r,
                Err(e) => return error_page(state, Some(who), &e),
            },
            None => Vec::new(),
        };
        let thumbs = if i < QUEUE_THUMBNAILS {
            match view::read_study(state, who, s.summary.id).await {
                Ok((d, _)) => d
                    .series
                    .iter()
                    .map(|se| {
                        (
                            format!("/imaging/series/{}/thumb.png", se.id),
                            format!("/imaging/studies/{}/view?series={}", s.summary.id, se.id),
                            series_label(se.series_number, &se.series_description, &se.modality),
                        )
                    })
                    .collect(),
                Err(_) => Vec::new(),
            }
        } else {
            Vec::new()
        };
        cards.push(queue_card(s, today, tz, searched, results, thumbs, &error));
    }
    let done = q.done.as_deref().map(|d| match d {
        "attached" => {
            "Done: the study was attached to the case, and the local MRN recorded against it."
                .to_owned()
        }
        "rejected" => "Done: the study was rejected.".to_owned(),
        _ => "Done.".to_owned(),
    });
    render(
        &QueuePage {
            chrome: Chrome::new(state, Some(who), "imaging-queue"),
            cards,
            done,
        },
        status,
    )
}

fn queue_card(
    s: &QueuedStudy,
    today: jiff::civil::Date,
    tz: &jiff::tz::TimeZone,
    searched: Option<String>,
    results: Vec<CandidateRow>,
    thumbs: Vec<(String, String, String)>,
    error: &Option<(i64, String)>,
) -> QueueCard {
    let sum = &s.summary;
    QueueCard {
        id: sum.id,
        patient_name: person_name(&s.patient_name),
        patient_id: if s.patient_id.trim().is_empty() {
            "—".to_owned()
        } else {
            s.patient_id.clone()
        },
        birth_date: s
            .birth_date
            .map_or_else(|| "—".to_owned(), |d| d.to_string()),
        sex: s
            .sex
            .clone()
            .filter(|x| !x.trim().is_empty())
            .unwrap_or_else(|| "—".to_owned()),
        line: prior_study(sum).line(today),
        counts: format!(
            "{} series, {} {}",
            sum.series_count,
            sum.instance_count,
            if sum.instance_count == 1 {
                "image"
            } else {
                "images"
            }
        ),
        source: source_label(s.source, s.calling_ae.as_deref()),
        received: local_time(sum.received_at, tz),
        reason: s.reason.clone(),
        hint: s.case_hint.map(|c| irflow_fhir::referral_number(c.get())),
        candidates: s.candidates.iter().map(candidate_row).collect(),
        searched,
        results,
        thumbs,
        viewer: format!("/imaging/studies/{}/view", sum.id),
        error: error
            .as_ref()
            .filter(|(id, _)| *id == sum.id)
            .map(|(_, m)| m.clone()),
    }
}

fn queue_error(e: StoreError) -> AppError {
    match e {
        StoreError::Denied(_) => {
            AppError::Forbidden("the reconciliation queue is for department staff".to_owned())
        }
        other => other.into(),
    }
}

fn study_error(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound => {
            AppError::NotFound("there is no imaging study with this number".to_owned())
        }
        StoreError::Denied(_) => {
            AppError::Forbidden("only department staff attach or reject studies".to_owned())
        }
        other => other.into(),
    }
}

/// `GET /imaging/queue`: studies waiting for staff (who search, attach or reject).
pub async fn queue_page(
    State(state): State<AppState>,
    who: SignedIn,
    Query(q): Query<QueueQuery>,
) -> Response {
    show_queue(&state, &who, &q, None, StatusCode::OK).await
}

/// One row of the side-by-side identity check.
pub(crate) struct IdentityRow {
    label: &'static str,
    file: String,
    ours: String,
    agrees: Option<bool>,
}

#[derive(Template)]
#[template(path = "imaging_attach.html")]
struct AttachPage {
    chrome: Chrome,
    study_id: i64,
    case_id: i64,
    case_number: String,
    study_line: String,
    rows: Vec<IdentityRow>,
    all_agree: bool,
    error: Option<String>,
}

/// Query of the attach confirmation.
#[derive(Debug, Deserialize)]
pub struct AttachQuery {
    case_id: Option<String>,
}

async fn attach_page(
    state: &AppState,
    who: &SignedIn,
    study: i64,
    case: CaseId,
    error: Option<String>,
    status: StatusCode,
) -> Response {
    if who.user.role == Role::Referrer {
        return error_page(
            state,
            Some(who),
            &AppError::Forbidden("only department staff attach studies".to_owned()),
        );
    }
    let actor = who.actor();
    let detail = match view::read_study(state, who, study).await {
        Ok((d, _)) => d,
        Err(e) => return error_page(state, Some(who), &e),
    };
    let case_detail = match state.store().case_detail(&actor, case).await {
        Ok(d) => d,
        Err(e) => return error_page(state, Some(who), &case_error(e)),
    };
    let p = &case_detail.patient;
    let file_key = irflow_dicom::normalise_name(&detail.patient_name);
    let our_key = irflow_dicom::normalise_name(&format!("{}^{}", p.family_name, p.given_name));
    let rows = vec![
        IdentityRow {
            label: "Name",
            file: person_name(&detail.patient_name),
            ours: format!("{}, {}", p.family_name, p.given_name),
            agrees: Some(!file_key.is_empty() && file_key == our_key),
        },
        IdentityRow {
            label: "Date of birth",
            file: detail
                .birth_date
                .map_or_else(|| "—".to_owned(), |d| d.to_string()),
            ours: p.date_of_birth.to_string(),
            agrees: Some(detail.birth_date == Some(p.date_of_birth)),
        },
        IdentityRow {
            label: "Patient ID / MRN",
            file: if detail.patient_id.trim().is_empty() {
                "—".to_owned()
            } else {
                detail.patient_id.clone()
            },
            ours: p.mrn.clone().unwrap_or_else(|| "not recorded".to_owned()),
            agrees: match &p.mrn {
                // Another hospital's ID rarely equals ours; a difference is not a warning sign.
                Some(m) if !detail.patient_id.trim().is_empty() => {
                    (m.trim() == detail.patient_id.trim()).then_some(true)
                }
                _ => None,
            },
        },
        IdentityRow {
            label: "Sex",
            file: detail
                .sex
                .clone()
                .filter(|s| !s.trim().is_empty())
                .unwrap_or_else(|| "—".to_owned()),
            ours: "not recorded in irflow".to_owned(),
            agrees: None,
        },
    ];
    let all_agree = rows.iter().all(|r| r.agrees != Some(false));
    let page = AttachPage {
        chrome: Chrome::new(state, Some(who), "imaging-queue"),
        study_id: study,
        case_id: case.get(),
        case_number: irflow_fhir::referral_number(case.get()),
        study_line: prior_study(&detail.summary).line(state.today()),
        rows,
        all_agree,
        error,
    };
    render(&page, status)
}

/// `GET /imaging/studies/{study}/attach?case_id=`: the confirmation, both identities
/// side by side.
pub async fn attach_confirm(
    State(state): State<AppState>,
    who: SignedIn,
    Path(study): Path<String>,
    Query(q): Query<AttachQuery>,
) -> Response {
    let Some(study) = positive_id(&study) else {
        return error_page(
            &state,
            Some(&who),
            &AppError::NotFound("there is no imaging study with this number".to_owned()),
        );
    };
    let case = match q.case_id.as_deref().map(parse_case_id) {
        Some(Ok(c)) => c,
        Some(Err(e)) => return error_page(&state, Some(&who), &e),
        None => {
            return error_page(
                &state,
                Some(&who),
                &AppError::BadRequest("choose the case to attach the study to".to_owned()),
            );
        }
    };
    attach_page(&state, &who, study, case, None, StatusCode::OK).await
}

/// What the attach form posts.
#[derive(Debug, Deserialize)]
pub struct AttachForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    case_id: String,
}

/// `POST /imaging/studies/{study}/attach`.
pub async fn attach_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(study): Path<String>,
    Form(f): Form<AttachForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let Some(study) = positive_id(&study) else {
        return error_page(
            &state,
            Some(&who),
            &AppError::NotFound("there is no imaging study with this number".to_owned()),
        );
    };
    let case = match parse_case_id(f.case_id.trim()) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    match state.store().attach_study(&who.actor(), study, case).await {
        Ok(()) => Redirect::to("/imaging/queue?done=attached").into_response(),
        Err(e) => {
            let e = study_error(e);
            match e {
                AppError::Conflict(_) | AppError::Invalid(_) => {
                    attach_page(
                        &state,
                        &who,
                        study,
                        case,
                        Some(e.public_message()),
                        e.status(),
                    )
                    .await
                }
                other => error_page(&state, Some(&who), &other),
            }
        }
    }
}

/// What the reject form posts.
#[derive(Debug, Deserialize)]
pub struct RejectForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

fn check_reason(reason: &str) -> Result<&str, AppError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(AppError::Invalid(
            "say why the study is rejected (e.g. another patient's images, wrong body part)"
                .to_owned(),
        ));
    }
    if reason.chars().count() > 1000 {
        return Err(AppError::Invalid(
            "the reason is longer than 1000 characters".to_owned(),
        ));
    }
    Ok(reason)
}

/// `POST /imaging/studies/{study}/reject`.
pub async fn reject_form(
    State(state): State<AppState>,
    who: SignedIn,
    Path(study): Path<String>,
    Form(f): Form<RejectForm>,
) -> Response {
    if !constant_time_eq(&who.csrf, &f.csrf) {
        return error_page(&state, Some(&who), &forged());
    }
    let Some(study) = positive_id(&study) else {
        return error_page(
            &state,
            Some(&who),
            &AppError::NotFound("there is no imaging study with this number".to_owned()),
        );
    };
    let result = match check_reason(&f.reason) {
        Ok(reason) => state
            .store()
            .reject_study(&who.actor(), study, reason)
            .await
            .map_err(study_error),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => Redirect::to("/imaging/queue?done=rejected").into_response(),
        Err(e @ (AppError::Invalid(_) | AppError::Conflict(_))) => {
            show_queue(
                &state,
                &who,
                &QueueQuery::default(),
                Some((study, e.public_message())),
                e.status(),
            )
            .await
        }
        Err(e) => error_page(&state, Some(&who), &e),
    }
}

fn candidate_json(c: &CandidateCase) -> Value {
    json!({
        "case_id": c.case_id.get(),
        "patient_name": c.patient_name,
        "mrn": c.mrn,
        "date_of_birth": c.date_of_birth.to_string(),
        "procedure": c.procedure_name,
        "state": c.state,
        "why": c.why,
    })
}

/// `GET /api/v1/imaging/queue` (staff).
pub async fn api_queue(
    State(state): State<AppState>,
    caller: ApiCaller,
) -> Result<Json<Value>, ApiError> {
    let queue = state
        .store()
        .reconciliation_queue(&caller.actor())
        .await
        .map_err(queue_error)?;
    let today = state.today();
    let tz = state.time_zone();
    Ok(Json(json!({
        "studies": queue.iter().map(|s| {
            let mut v = study_json(&s.summary, today);
            v["patient"] = json!({
                "name": s.patient_name,
                "id": s.patient_id,
                "birth_date": s.birth_date.map(|d| d.to_string()),
                "sex": s.sex,
            });
            v["reason"] = json!(s.reason);
            v["source"] = json!(s.source.as_str());
            v["calling_ae"] = json!(s.calling_ae);
            v["case_hint"] = json!(s.case_hint.map(CaseId::get));
            v["received_at"] = json!(crate::views::rfc3339_local(s.summary.received_at, tz));
            v["candidates"] = json!(s.candidates.iter().map(candidate_json).collect::<Vec<_>>());
            v
        }).collect::<Vec<_>>(),
    })))
}

fn study_param(raw: &str) -> Result<i64, ApiError> {
    positive_id(raw).ok_or_else(|| {
        AppError::NotFound("there is no imaging study with this number".to_owned()).into()
    })
}

/// `POST /api/v1/imaging/studies/{study}/attach` `{"case_id": 12}` (staff).
pub async fn api_attach(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(study): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let study = study_param(&study)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let case = match &body["case_id"] {
        Value::Number(n) => n
            .as_i64()
            .filter(|n| *n > 0)
            .map(CaseId::new)
            .ok_or_else(|| AppError::Field {
                field: "case_id",
                message: "a case number".to_owned(),
            })?,
        Value::String(s) => parse_case_id(s)?,
        _ => {
            return Err(AppError::Field {
                field: "case_id",
                message: "required: the case to attach the study to".to_owned(),
            }
            .into());
        }
    };
    state
        .store()
        .attach_study(&caller.actor(), study, case)
        .await
        .map_err(study_error)?;
    Ok(Json(json!({
        "study_id": study,
        "case_id": case.get(),
        "state": "matched",
    })))
}

/// `POST /api/v1/imaging/studies/{study}/reject` `{"reason": "..."}` (staff).
pub async fn api_reject(
    State(state): State<AppState>,
    caller: ApiCaller,
    Path(study): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let study = study_param(&study)?;
    let Json(body) = body.map_err(|e| AppError::BadRequest(e.body_text()))?;
    let reason = check_reason(body["reason"].as_str().unwrap_or("")).map_err(|e| match e {
        AppError::Invalid(message) => AppError::Field {
            field: "reason",
            message,
        },
        other => other,
    })?;
    state
        .store()
        .reject_study(&caller.actor(), study, reason)
        .await
        .map_err(study_error)?;
    Ok(Json(json!({
        "study_id": study,
        "state": "rejected",
        "reason": reason,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_names_read_naturally() {
        assert_eq!(person_name("DOE^JOHN^A^^"), "DOE, JOHN A");
        assert_eq!(person_name("DOE"), "DOE");
        assert_eq!(person_name(""), "(no name in the file)");
        assert_eq!(person_name("^^^"), "(no name in the file)");
        assert_eq!(person_name("Yamada^Tarou=山田^太郎"), "Yamada, Tarou");
    }

    #[test]
    fn upload_names_are_only_shown() {
        assert_eq!(clean_name("/CD/DICOM/IM1"), "CD/DICOM/IM1");
        assert_eq!(clean_name("a\u{0}b\nc"), "abc");
        assert_eq!(clean_name(""), "unnamed file");
        assert_eq!(clean_name(&"x".repeat(500)).len(), 200);
    }

    #[test]
    fn zips_are_recognised_by_content_or_name() {
        assert!(looks_like_zip("x", b"PK\x03\x04rest"));
        assert!(looks_like_zip("study.ZIP", b"garbage"));
        assert!(!looks_like_zip("IM0001", b"\0\0\0\0DICM"));
    }

    #[test]
    fn reasons_are_required_and_bounded() {
        assert!(check_reason("  ").is_err());
        assert!(check_reason(&"x".repeat(1001)).is_err());
        assert_eq!(check_reason(" wrong patient ").ok(), Some("wrong patient"));
    }
}
