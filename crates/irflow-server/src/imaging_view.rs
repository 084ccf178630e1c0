//! Looking at outside imaging: series thumbnails, the series viewer (slider, wheel and
//! keys through the slices; window/level presets), and the PNGs behind them, rendered
//! on the server from the stored original with `irflow_dicom::render_png`.
//!
//! Auditing and access: opening a study (the case's imaging panel, the viewer) is an
//! audited read (`Store::study_detail`). That read leaves a *view grant* in memory —
//! this user may see these instances of this study, on this case, for
//! [`GRANT_MINUTES`] — so the dozens of PNGs a viewer asks for while scrolling are
//! each access-checked against it without an audit event each. A PNG asked for
//! without a grant (another process behind the load balancer, a bookmarked address)
//! makes the audited read first. The grant is keyed by user, so one user's read never
//! opens anything to another.
//!
//! Rendered PNGs are kept in a small in-memory LRU (they are derived data; the
//! originals stay in the image store) and sent `Cache-Control: private`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use irflow_dicom::{Preset, RenderError};
use irflow_domain::{CaseId, Role};
use irflow_store::{StoreError, StudyDetail, StudyState};
use serde::Deserialize;

use crate::api::parse_case_id;
use crate::pages::{Chrome, error_page, render};
use crate::session::SignedIn;
use crate::{AppError, AppState};

/// How long a view grant lasts after the audited read that made it.
pub(crate) const GRANT_MINUTES: u64 = 15;
/// Longest edge of a slice in the viewer, in pixels.
pub(crate) const VIEW_EDGE: u32 = 1024;
/// Longest edge of a thumbnail, in pixels.
pub(crate) const THUMB_EDGE: u32 = 160;
/// Bytes of rendered PNGs kept in memory.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Most grants kept (expired ones are dropped first).
const MAX_GRANTS: usize = 20_000;
/// Most slices one viewer page lists (frames of multi-frame instances count).
const MAX_SLICES: usize = 5000;

/// One stored instance as the viewer needs it.
#[derive(Debug, Clone)]
pub(crate) struct InstanceRef {
    pub(crate) id: i64,
    pub(crate) object_key: String,
    pub(crate) frames: u32,
    pub(crate) render_error: Option<String>,
}

/// One study's instances, by series, from an audited read.
#[derive(Debug, Default)]
pub(crate) struct StudyIndex {
    /// The case the study is attached to (`None`: queued or rejected).
    pub(crate) case_id: Option<CaseId>,
    /// Series id → its instances in instance-number order.
    pub(crate) series: HashMap<i64, Vec<InstanceRef>>,
}

impl StudyIndex {
    pub(crate) fn from_detail(d: &StudyDetail) -> Self {
        Self {
            case_id: match d.summary.state {
                StudyState::Matched => d.summary.case_id,
                _ => None,
            },
            series: d
                .series
                .iter()
                .map(|s| {
                    (
                        s.id,
                        s.instances
                            .iter()
                            .map(|i| InstanceRef {
                                id: i.id,
                                object_key: i.object_key.clone(),
                                frames: i.frames,
                                render_error: i.render_error.clone(),
                            })
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    fn instance(&self, id: i64) -> Option<&InstanceRef> {
        self.series.values().flatten().find(|i| i.id == id)
    }
}

#[derive(Debug)]
struct Grant {
    at: Instant,
    index: Arc<StudyIndex>,
}

/// Which PNG: instance, frame, preset, size.
type PngKey = (i64, u32, &'static str, u32);

#[derive(Debug, Default)]
struct PngCache {
    entries: HashMap<PngKey, (Arc<Vec<u8>>, u64)>,
    bytes: usize,
    tick: u64,
}

impl PngCache {
    fn get(&mut self, key: &PngKey) -> Option<Arc<Vec<u8>>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(key).map(|(png, used)| {
            *used = tick;
            png.clone()
        })
    }

    fn put(&mut self, key: PngKey, png: Arc<Vec<u8>>) {
        if png.len() > CACHE_BYTES / 4 {
            return;
        }
        self.tick += 1;
        self.bytes += png.len();
        if let Some((old, _)) = self.entries.insert(key, (png, self.tick)) {
            self.bytes = self.bytes.saturating_sub(old.len());
        }
        while self.bytes > CACHE_BYTES {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| *k)
            else {
                break;
            };
            if let Some((gone, _)) = self.entries.remove(&oldest) {
                self.bytes = self.bytes.saturating_sub(gone.len());
            }
        }
    }
}

/// View grants and rendered PNGs of one app (held in [`AppState`]).
#[derive(Debug, Default)]
pub struct ImagingViews {
    grants: Mutex<HashMap<(i64, i64), Grant>>,
    pngs: Mutex<PngCache>,
}

impl ImagingViews {
    /// Remembers that `user` has just read `study` (an audited read).
    pub(crate) fn grant(&self, user: i64, study: i64, index: Arc<StudyIndex>) {
        let Ok(mut grants) = self.grants.lock() else {
            return;
        };
        if grants.len() >= MAX_GRANTS {
            let limit = Duration::from_secs(GRANT_MINUTES * 60);
            grants.retain(|_, g| g.at.elapsed() < limit);
            if grants.len() >= MAX_GRANTS {
                grants.clear();
            }
        }
        grants.insert(
            (user, study),
            Grant {
                at: Instant::now(),
                index,
            },
        );
    }

    /// The index `user` was granted for `study`, if still fresh.
    fn granted(&self, user: i64, study: i64) -> Option<Arc<StudyIndex>> {
        let grants = self.grants.lock().ok()?;
        grants
            .get(&(user, study))
            .filter(|g| g.at.elapsed() < Duration::from_secs(GRANT_MINUTES * 60))
            .map(|g| g.index.clone())
    }

    /// Fresh grants of `user` (study id, index).
    fn granted_studies(&self, user: i64) -> Vec<(i64, Arc<StudyIndex>)> {
        let Ok(grants) = self.grants.lock() else {
            return Vec::new();
        };
        let limit = Duration::from_secs(GRANT_MINUTES * 60);
        grants
            .iter()
            .filter(|((u, _), g)| *u == user && g.at.elapsed() < limit)
            .map(|((_, s), g)| (*s, g.index.clone()))
            .collect()
    }

    fn cached(&self, key: &PngKey) -> Option<Arc<Vec<u8>>> {
        self.pngs.lock().ok()?.get(key)
    }

    fn keep(&self, key: PngKey, png: Arc<Vec<u8>>) {
        if let Ok(mut cache) = self.pngs.lock() {
            cache.put(key, png);
        }
    }
}

/// Reads a study as `who` (audited by the store) and leaves a view grant.
pub(crate) async fn read_study(
    state: &AppState,
    who: &SignedIn,
    study_id: i64,
) -> Result<(StudyDetail, Arc<StudyIndex>), AppError> {
    let detail = state
        .store()
        .study_detail(&who.actor(), study_id)
        .await
        .map_err(not_visible)?;
    let index = Arc::new(StudyIndex::from_detail(&detail));
    state
        .imaging_views()
        .grant(who.user.id.get(), study_id, index.clone());
    Ok((detail, index))
}

pub(crate) fn not_visible(e: StoreError) -> AppError {
    match e {
        StoreError::NotFound | StoreError::Denied(_) => {
            AppError::NotFound("there is no imaging study here that you can see".to_owned())
        }
        other => other.into(),
    }
}

/// Whether a study seen through `index` may be shown at this address: on a case's
/// pages it must be attached to that case; off a case (the reconciliation queue) only
/// staff look, and only at studies not attached to any case.
fn fits(index: &StudyIndex, case: Option<CaseId>, role: Role) -> bool {
    match case {
        Some(c) => index.case_id == Some(c),
        None => role != Role::Referrer && index.case_id.is_none(),
    }
}

/// Finds the grant covering an instance (or series) for `who`, making the audited read
/// if there is none: the study of an instance comes from `Store::instance_detail`,
/// the study of a series from the case's studies.
async fn index_for(
    state: &AppState,
    who: &SignedIn,
    case: Option<CaseId>,
    target: Target,
) -> Result<Arc<StudyIndex>, AppError> {
    let user = who.user.id.get();
    let covers = |index: &StudyIndex| match target {
        Target::Instance(id) => index.instance(id).is_some(),
        Target::Series(id) => index.series.contains_key(&id),
    };
    for (_, index) in state.imaging_views().granted_studies(user) {
        if covers(&index) && fits(&index, case, who.user.role) {
            return Ok(index);
        }
    }
    let gone = || AppError::NotFound("there is no image here that you can see".to_owned());
    let study_ids: Vec<i64> = match target {
        Target::Instance(id) => {
            let loc = state
                .store()
                .instance_detail(&who.actor(), id)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound | StoreError::Denied(_) => gone(),
                    other => other.into(),
                })?;
            vec![loc.study_id]
        }
        Target::Series(_) => match case {
            Some(c) => state
                .store()
                .imaging_for_case(&who.actor(), c)
                .await
                .map_err(|e| match e {
                    StoreError::NotFound | StoreError::Denied(_) => gone(),
                    other => other.into(),
                })?
                .into_iter()
                .map(|s| s.id)
                .collect(),
            None => Vec::new(),
        },
    };
    for study in study_ids {
        if let Some(index) = state.imaging_views().granted(user, study)
            && covers(&index)
            && fits(&index, case, who.user.role)
        {
            return Ok(index);
        }
        let (_, index) = read_study(state, who, study).await?;
        if covers(&index) && fits(&index, case, who.user.role) {
            return Ok(index);
        }
    }
    Err(gone())
}

#[derive(Debug, Clone, Copy)]
enum Target {
    Instance(i64),
    Series(i64),
}

/// A preset by its query name.
fn preset(raw: Option<&str>) -> Result<(Preset, &'static str), AppError> {
    match raw.unwrap_or("default") {
        "" | "default" => Ok((Preset::Default, "default")),
        "t2" => Ok((Preset::MrT2, "t2")),
        "soft" => Ok((Preset::CtSoft, "soft")),
        "bone" => Ok((Preset::CtBone, "bone")),
        other => Err(AppError::BadRequest(format!(
            "unknown preset {other:?}: use default, t2 (MR), soft or bone (CT)"
        ))),
    }
}

fn png_response(png: Arc<Vec<u8>>) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("image/png")),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=600"),
            ),
        ],
        png.as_ref().clone(),
    )
        .into_response()
}

/// The plain answer for an image that cannot be shown (the viewer puts the text in
/// place of the image).
fn undisplayable(reason: &str) -> Response {
    (
        StatusCode::UNPROCESSABLE_ENTITY,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        format!("this image could not be displayed: {reason} (the original is stored)"),
    )
        .into_response()
}

fn plain_error(e: &AppError) -> Response {
    e.log();
    (
        e.status(),
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        e.public_message(),
    )
        .into_response()
}

/// Renders (or takes from the cache) one frame of an instance.
async fn png_of(
    state: &AppState,
    instance: &InstanceRef,
    frame: u32,
    preset: (Preset, &'static str),
    edge: u32,
) -> Response {
    if let Some(reason) = &instance.render_error {
        return undisplayable(reason);
    }
    if instance.frames > 0 && frame >= instance.frames {
        return plain_error(&AppError::NotFound(format!(
            "frame {frame} does not exist (the image has {} frames)",
            instance.frames
        )));
    }
    let key = (instance.id, frame, preset.1, edge);
    if let Some(png) = state.imaging_views().cached(&key) {
        return png_response(png);
    }
    let bytes = match state.images().get(&instance.object_key).await {
        Ok(b) => b,
        Err(e) => return plain_error(&e.into()),
    };
    let rendered = tokio::task::spawn_blocking(move || {
        irflow_dicom::render_png(&bytes, frame, preset.0, edge)
    })
    .await;
    match rendered {
        Ok(Ok(png)) => {
            let png = Arc::new(png);
            state.imaging_views().keep(key, png.clone());
            png_response(png)
        }
        Ok(Err(RenderError::NoSuchFrame { frame, frames })) => plain_error(&AppError::NotFound(
            format!("frame {frame} does not exist (the image has {frames} frames)"),
        )),
        Ok(Err(e)) => {
            let reason = e.to_string();
            // Remember it, so pages say so without trying again.
            if let Err(store) = state
                .store()
                .record_render_error(instance.id, &reason)
                .await
            {
                AppError::from(store).log();
            }
            undisplayable(&reason)
        }
        Err(_) => plain_error(&AppError::Internal(
            "the renderer stopped unexpectedly".to_owned(),
        )),
    }
}

/// Query of a slice PNG.
#[derive(Debug, Deserialize)]
pub struct PngQuery {
    preset: Option<String>,
    frame: Option<u32>,
}

fn instance_id_of(file: &str) -> Option<i64> {
    file.strip_suffix(".png")
        .filter(|n| !n.is_empty() && n.len() <= 18 && n.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|n| n.parse().ok())
}

async fn instance_png(
    state: &AppState,
    who: &SignedIn,
    case: Option<CaseId>,
    file: &str,
    q: &PngQuery,
) -> Response {
    let Some(id) = instance_id_of(file) else {
        return plain_error(&AppError::NotFound(
            "there is no image at this address".to_owned(),
        ));
    };
    let preset = match preset(q.preset.as_deref()) {
        Ok(p) => p,
        Err(e) => return plain_error(&e),
    };
    let index = match index_for(state, who, case, Target::Instance(id)).await {
        Ok(i) => i,
        Err(e) => return plain_error(&e),
    };
    let Some(instance) = index.instance(id) else {
        return plain_error(&AppError::NotFound(
            "there is no image here that you can see".to_owned(),
        ));
    };
    png_of(state, instance, q.frame.unwrap_or(0), preset, VIEW_EDGE).await
}

/// `GET /cases/{id}/imaging/instances/{instance}.png?preset=&frame=`: one slice.
pub async fn case_instance_png(
    State(state): State<AppState>,
    who: SignedIn,
    Path((id, file)): Path<(String, String)>,
    Query(q): Query<PngQuery>,
) -> Response {
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return plain_error(&e),
    };
    instance_png(&state, &who, Some(case), &file, &q).await
}

/// `GET /imaging/instances/{instance}.png`: a slice of a study in the reconciliation
/// queue (staff).
pub async fn queued_instance_png(
    State(state): State<AppState>,
    who: SignedIn,
    Path(file): Path<String>,
    Query(q): Query<PngQuery>,
) -> Response {
    if who.user.role == Role::Referrer {
        return plain_error(&AppError::NotFound(
            "there is no image here that you can see".to_owned(),
        ));
    }
    instance_png(&state, &who, None, &file, &q).await
}

/// The instance a series' thumbnail shows: the middle one that is not known to fail
/// (the middle slice of a spine series shows the most), and its middle frame.
fn thumb_instance(instances: &[InstanceRef]) -> Option<(&InstanceRef, u32)> {
    let renderable: Vec<&InstanceRef> = instances
        .iter()
        .filter(|i| i.render_error.is_none())
        .collect();
    let chosen = if renderable.is_empty() {
        instances.first()?
    } else {
        renderable.get(renderable.len() / 2).copied()?
    };
    Some((chosen, chosen.frames / 2))
}

async fn series_thumb(
    state: &AppState,
    who: &SignedIn,
    case: Option<CaseId>,
    series_raw: &str,
) -> Response {
    let Some(series) = crate::imaging_pages::positive_id(series_raw) else {
        return plain_error(&AppError::NotFound(
            "there is no series at this address".to_owned(),
        ));
    };
    let index = match index_for(state, who, case, Target::Series(series)).await {
        Ok(i) => i,
        Err(e) => return plain_error(&e),
    };
    let instances = index.series.get(&series).map(Vec::as_slice).unwrap_or(&[]);
    match thumb_instance(instances) {
        Some((instance, frame)) => {
            png_of(
                state,
                instance,
                frame,
                (Preset::Default, "default"),
                THUMB_EDGE,
            )
            .await
        }
        None => undisplayable("the series has no images"),
    }
}

/// `GET /cases/{id}/imaging/series/{series}/thumb.png`.
pub async fn case_series_thumb(
    State(state): State<AppState>,
    who: SignedIn,
    Path((id, series)): Path<(String, String)>,
) -> Response {
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return plain_error(&e),
    };
    series_thumb(&state, &who, Some(case), &series).await
}

/// `GET /imaging/series/{series}/thumb.png` (a queued study; staff).
pub async fn queued_series_thumb(
    State(state): State<AppState>,
    who: SignedIn,
    Path(series): Path<String>,
) -> Response {
    if who.user.role == Role::Referrer {
        return plain_error(&AppError::NotFound(
            "there is no series here that you can see".to_owned(),
        ));
    }
    series_thumb(&state, &who, None, &series).await
}

// ---------------------------------------------------------------- the viewer

/// One slice in the viewer.
pub(crate) struct SliceView {
    pub(crate) url: String,
    pub(crate) label: String,
    pub(crate) error: Option<String>,
}

/// A series tab in the viewer.
pub(crate) struct SeriesTab {
    pub(crate) id: i64,
    pub(crate) label: String,
    pub(crate) thumb: String,
    pub(crate) selected: bool,
    pub(crate) instances: usize,
}

#[derive(Template)]
#[template(path = "imaging_viewer.html")]
struct ViewerPage {
    chrome: Chrome,
    title: String,
    back: String,
    back_label: &'static str,
    study_line: String,
    series: Vec<SeriesTab>,
    series_label: String,
    presets: Vec<(&'static str, &'static str)>,
    slices: Vec<SliceView>,
    first_url: String,
    first_label: String,
    base: String,
    truncated: bool,
}

/// Query of the viewer.
#[derive(Debug, Deserialize)]
pub struct ViewerQuery {
    series: Option<String>,
}

/// The presets offered for a modality: (query name, label).
pub(crate) fn presets_for(modality: &str) -> Vec<(&'static str, &'static str)> {
    match modality.trim().to_ascii_uppercase().as_str() {
        "MR" => vec![("default", "Default"), ("t2", "T2")],
        "CT" => vec![
            ("soft", "Soft tissue"),
            ("bone", "Bone"),
            ("default", "File's own"),
        ],
        _ => vec![("default", "Default")],
    }
}

pub(crate) fn series_label(number: Option<i64>, description: &str, modality: &str) -> String {
    let mut s = match number {
        Some(n) => format!("Series {n}"),
        None => "Series".to_owned(),
    };
    let d = description.trim();
    if !d.is_empty() {
        s.push_str(&format!(" · {d}"));
    }
    let m = modality.trim();
    if !m.is_empty() {
        s.push_str(&format!(" ({m})"));
    }
    s
}

async fn viewer(
    state: &AppState,
    who: &SignedIn,
    case: Option<CaseId>,
    study_raw: &str,
    q: &ViewerQuery,
) -> Response {
    let Some(study) = crate::imaging_pages::positive_id(study_raw) else {
        return error_page(
            state,
            Some(who),
            &AppError::NotFound("there is no imaging study here that you can see".to_owned()),
        );
    };
    if case.is_none() && who.user.role == Role::Referrer {
        return error_page(
            state,
            Some(who),
            &AppError::NotFound("there is no imaging study here that you can see".to_owned()),
        );
    }
    let (detail, index) = match read_study(state, who, study).await {
        Ok(d) => d,
        Err(e) => return error_page(state, Some(who), &e),
    };
    if !fits(&index, case, who.user.role) {
        return error_page(
            state,
            Some(who),
            &AppError::NotFound("there is no imaging study here that you can see".to_owned()),
        );
    }
    let (prefix, back, back_label) = match case {
        Some(c) => (
            format!("/cases/{c}/imaging"),
            format!("/cases/{c}"),
            "← Back to the case",
        ),
        None => (
            "/imaging".to_owned(),
            "/imaging/queue".to_owned(),
            "← Back to the reconciliation queue",
        ),
    };
    let wanted = q
        .series
        .as_deref()
        .and_then(crate::imaging_pages::positive_id);
    let selected = detail
        .series
        .iter()
        .find(|s| Some(s.id) == wanted)
        .or_else(|| {
            detail
                .series
                .iter()
                .find(|s| s.instances.iter().any(|i| i.render_error.is_none()))
        })
        .or(detail.series.first());
    let today = state.today();
    let study_line = crate::imaging_pages::prior_study(&detail.summary).line(today);
    let mut slices = Vec::new();
    let mut truncated = false;
    if let Some(s) = selected {
        'outer: for i in &s.instances {
            let frames = i.frames.max(1);
            for f in 0..frames {
                if slices.len() >= MAX_SLICES {
                    truncated = true;
                    break 'outer;
                }
                let url = if frames > 1 {
                    format!("{prefix}/instances/{}.png?frame={f}", i.id)
                } else {
                    format!("{prefix}/instances/{}.png", i.id)
                };
                let label = match (i.instance_number, frames > 1) {
                    (Some(n), true) => format!("Image {n}, frame {}", f + 1),
                    (Some(n), false) => format!("Image {n}"),
                    (None, true) => format!("Frame {}", f + 1),
                    (None, false) => format!("Image {}", slices.len() + 1),
                };
                slices.push(SliceView {
                    url,
                    label,
                    error: i.render_error.clone(),
                });
            }
        }
    }
    let presets = selected
        .map(|s| presets_for(&s.modality))
        .unwrap_or_else(|| presets_for(""));
    let first_preset = presets.first().map_or("default", |p| p.0);
    let (first_url, first_label) = slices.first().map_or_else(
        || (String::new(), String::new()),
        |s| {
            let joiner = if s.url.contains('?') { '&' } else { '?' };
            (
                format!("{}{joiner}preset={first_preset}", s.url),
                s.label.clone(),
            )
        },
    );
    let page = ViewerPage {
        chrome: Chrome::new(
            state,
            Some(who),
            if case.is_some() {
                "cases"
            } else {
                "imaging-queue"
            },
        ),
        title: detail.summary.study_description.trim().to_owned(),
        back,
        back_label,
        study_line,
        series: detail
            .series
            .iter()
            .map(|s| SeriesTab {
                id: s.id,
                label: series_label(s.series_number, &s.series_description, &s.modality),
                thumb: format!("{prefix}/series/{}/thumb.png", s.id),
                selected: selected.is_some_and(|x| x.id == s.id),
                instances: s.instances.len(),
            })
            .collect(),
        series_label: selected
            .map(|s| series_label(s.series_number, &s.series_description, &s.modality))
            .unwrap_or_default(),
        presets,
        slices,
        first_url,
        first_label,
        base: match case {
            Some(c) => format!("/cases/{c}/imaging/studies/{study}"),
            None => format!("/imaging/studies/{study}/view"),
        },
        truncated,
    };
    render(&page, StatusCode::OK)
}

/// `GET /cases/{id}/imaging/studies/{study}?series=`: the series viewer.
pub async fn case_viewer(
    State(state): State<AppState>,
    who: SignedIn,
    Path((id, study)): Path<(String, String)>,
    Query(q): Query<ViewerQuery>,
) -> Response {
    let case = match parse_case_id(&id) {
        Ok(c) => c,
        Err(e) => return error_page(&state, Some(&who), &e),
    };
    viewer(&state, &who, Some(case), &study, &q).await
}

/// `GET /imaging/studies/{study}/view?series=`: a queued study's images (staff).
pub async fn queued_viewer(
    State(state): State<AppState>,
    who: SignedIn,
    Path(study): Path<String>,
    Query(q): Query<ViewerQuery>,
) -> Response {
    viewer(&state, &who, None, &study, &q).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(n: usize) -> Arc<Vec<u8>> {
        Arc::new(vec![0u8; n])
    }

    #[test]
    fn the_png_cache_evicts_the_least_recently_used() {
        let mut c = PngCache::default();
        let big = CACHE_BYTES / 5;
        for i in 0..5 {
            c.put((i, 0, "default", 1), png(big));
        }
        assert!(c.get(&(0, 0, "default", 1)).is_some(), "touch the first");
        c.put((9, 0, "default", 1), png(big));
        assert!(c.bytes <= CACHE_BYTES);
        assert!(
            c.get(&(0, 0, "default", 1)).is_some(),
            "recently used stays"
        );
        assert!(
            c.get(&(1, 0, "default", 1)).is_none(),
            "least recently used goes"
        );
        // Something too big to be worth keeping is not kept.
        c.put((10, 0, "default", 1), png(CACHE_BYTES / 2));
        assert!(c.get(&(10, 0, "default", 1)).is_none());
    }

    #[test]
    fn grants_are_per_user_and_study() {
        let v = ImagingViews::default();
        let index = Arc::new(StudyIndex::default());
        v.grant(1, 10, index);
        assert!(v.granted(1, 10).is_some());
        assert!(v.granted(2, 10).is_none(), "another user has no grant");
        assert!(v.granted(1, 11).is_none(), "another study has no grant");
        assert_eq!(v.granted_studies(1).len(), 1);
        assert!(v.granted_studies(2).is_empty());
    }

    #[test]
    fn thumbnails_take_the_middle_renderable_instance() {
        let i = |id: i64, err: bool| InstanceRef {
            id,
            object_key: String::new(),
            frames: 1,
            render_error: err.then(|| "broken".to_owned()),
        };
        let list = vec![
            i(1, true),
            i(2, false),
            i(3, false),
            i(4, false),
            i(5, true),
        ];
        assert_eq!(thumb_instance(&list).map(|(x, _)| x.id), Some(3));
        let broken = vec![i(1, true)];
        assert_eq!(thumb_instance(&broken).map(|(x, _)| x.id), Some(1));
        assert!(thumb_instance(&[]).is_none());
        assert_eq!(instance_id_of("12.png"), Some(12));
        assert_eq!(instance_id_of("12"), None);
        assert_eq!(instance_id_of("-1.png"), None);
        assert_eq!(instance_id_of(".png"), None);
    }
}
