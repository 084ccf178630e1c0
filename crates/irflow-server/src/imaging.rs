//! Outside imaging at the HTTP edge: the image store (original DICOM files through the
//! `object_store` crate) and the one ingest path that uploads (web), C-STORE (DICOM
//! network) and `irflow import` all use: store each original unchanged, index it, then
//! match the batch's studies to cases or queue them for staff.

use std::sync::Arc;

use irflow_dicom::Unpacked;
use irflow_domain::Actor;
use irflow_store::{BatchGaps, ImagingSource, StoreError, StudyOutcome};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use sha2::{Digest, Sha256};

use crate::{AppError, AppState};

/// Web uploads received at once: each is held in memory (up to 2 GiB) while it is
/// unpacked and stored, so more are answered 503 with `Retry-After` before their body
/// is read.
pub const MAX_CONCURRENT_UPLOADS: usize = 2;

/// Where original DICOM files are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ImageStoreConfig {
    /// In memory (tests; lost at exit).
    #[default]
    Memory,
    /// A directory on the local filesystem (default for `irflow serve`: `<data_dir>/images`).
    Local {
        /// The directory.
        dir: std::path::PathBuf,
        /// Sync each file and its directory to disk before the write counts as done
        /// (before a C-STORE is answered with success, an upload accepted or an
        /// import reported), so a power cut cannot lose an image already acknowledged.
        fsync: bool,
    },
    /// An S3-compatible bucket (needs irflow built with the `s3` feature). Credentials
    /// come from the usual `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` environment.
    S3 {
        /// The bucket.
        bucket: String,
        /// The endpoint URL, for S3-compatible services (MinIO, Ceph); `None` for AWS.
        endpoint: Option<String>,
        /// The region (default `us-east-1`).
        region: Option<String>,
        /// Allow plain `http://` endpoints (a MinIO on the same network).
        allow_http: bool,
    },
}

/// The image store: original files, written whole or not at all (an `object_store`
/// put is atomic: a local file is written under a temporary name and renamed; S3
/// objects appear only when complete), keyed by the SHA-256 of their bytes.
#[derive(Debug, Clone)]
pub struct ImageStore {
    inner: Arc<dyn ObjectStore>,
    description: String,
}

/// Why the image store failed. The text is for logs (it names keys, never patient data).
#[derive(Debug, thiserror::Error)]
#[error("image store: {0}")]
pub struct ImageStoreError(String);

impl From<ImageStoreError> for AppError {
    fn from(e: ImageStoreError) -> Self {
        AppError::Internal(e.0)
    }
}

impl ImageStore {
    /// Opens the configured store (creating a local directory if needed).
    pub fn open(config: &ImageStoreConfig) -> Result<Self, String> {
        match config {
            ImageStoreConfig::Memory => Ok(Self {
                inner: Arc::new(object_store::memory::InMemory::new()),
                description: "in memory".to_owned(),
            }),
            ImageStoreConfig::Local { dir, fsync } => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    format!(
                        "cannot create the image directory {}: {e}; set [imaging] dir or IRFLOW_IMAGE_DIR",
                        dir.display()
                    )
                })?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot use the image directory {}: {e}", dir.display()))?
                    .with_fsync(*fsync);
                Ok(Self {
                    inner: Arc::new(fs),
                    description: format!(
                        "local directory {} ({})",
                        dir.display(),
                        if *fsync {
                            "each file synced to disk"
                        } else {
                            "files not synced: imaging.fsync = false"
                        }
                    ),
                })
            }
            ImageStoreConfig::S3 {
                bucket,
                endpoint,
                region,
                allow_http,
            } => open_s3(bucket, endpoint.as_deref(), region.as_deref(), *allow_http),
        }
    }

    /// Where the files go, for people (no secrets).
    pub fn describe(&self) -> &str {
        &self.description
    }

    /// The key a file's bytes are (or would be) stored under: `dicom/ab/abcdef...`.
    pub fn key_for(bytes: &[u8]) -> String {
        let digest = Sha256::digest(bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("dicom/{}/{hex}", &hex[..2])
    }

    /// Stores the original bytes unchanged; returns their key. Storing the same bytes
    /// twice is harmless (same key, same content).
    pub async fn put(&self, bytes: &[u8]) -> Result<String, ImageStoreError> {
        let key = Self::key_for(bytes);
        let path = ObjectPath::parse(&key).map_err(|e| ImageStoreError(e.to_string()))?;
        self.inner
            .put(&path, PutPayload::from(bytes.to_vec()))
            .await
            .map_err(|e| ImageStoreError(format!("writing {key}: {e}")))?;
        Ok(key)
    }

    /// Reads a stored file.
    pub async fn get(&self, key: &str) -> Result<Vec<u8>, ImageStoreError> {
        let path = ObjectPath::parse(key).map_err(|e| ImageStoreError(e.to_string()))?;
        let result = self
            .inner
            .get(&path)
            .await
            .map_err(|e| ImageStoreError(format!("reading {key}: {e}")))?;
        let bytes = result
            .bytes()
            .await
            .map_err(|e| ImageStoreError(format!("reading {key}: {e}")))?;
        Ok(bytes.to_vec())
    }
}

#[cfg(feature = "s3")]
fn open_s3(
    bucket: &str,
    endpoint: Option<&str>,
    region: Option<&str>,
    allow_http: bool,
) -> Result<ImageStore, String> {
    let mut builder = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_region(region.unwrap_or("us-east-1"))
        .with_allow_http(allow_http);
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let s3 = builder
        .build()
        .map_err(|e| format!("cannot use the S3 bucket {bucket:?}: {e}"))?;
    Ok(ImageStore {
        inner: Arc::new(s3),
        description: format!("S3 bucket {bucket}"),
    })
}

#[cfg(not(feature = "s3"))]
fn open_s3(
    _bucket: &str,
    _endpoint: Option<&str>,
    _region: Option<&str>,
    _allow_http: bool,
) -> Result<ImageStore, String> {
    Err(
        "[imaging] store = \"s3\" needs irflow built with the `s3` feature \
         (cargo build --release --features s3); use store = \"local\" otherwise"
            .to_owned(),
    )
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileResult {
    /// Stored and indexed.
    Stored {
        /// The instance row.
        instance_id: i64,
        /// Its study row.
        study_id: i64,
        /// Why it cannot be shown, if it is known not to decode (it is stored all the same).
        render_error: Option<String>,
    },
    /// The same SOP instance was already on file; nothing was written.
    Duplicate {
        /// The existing instance row.
        instance_id: i64,
    },
    /// Not taken, with the reason.
    Refused {
        /// Why (never patient data).
        reason: String,
        /// The study it may have been part of (a study with a file refused is never
        /// attached automatically).
        part_of: PartOf,
    },
}

/// Which study a refused or missing file may have been part of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartOf {
    /// This study (its Study Instance UID, as the file or a CD's DICOMDIR says).
    Study(String),
    /// Perhaps any study of the batch: it looks like DICOM, or could not be looked at.
    Unknown,
    /// No study: not an image (not DICOM at all, or a CD's DICOMDIR index).
    Nothing,
}

impl PartOf {
    /// What a refused file's bytes say about its study.
    pub fn of_bytes(bytes: &[u8]) -> Self {
        if !irflow_dicom::looks_like_dicom(bytes) {
            return PartOf::Nothing;
        }
        irflow_dicom::study_uid_hint(bytes).map_or(PartOf::Unknown, PartOf::Study)
    }
}

/// One file's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOutcome {
    /// The file's name in the upload (relative path).
    pub name: String,
    /// What happened.
    pub result: FileResult,
}

/// What an ingest did: per file, and per study after matching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestReport {
    /// The batch id.
    pub batch: String,
    /// Per file, in input order (refusals from unpacking first).
    pub files: Vec<FileOutcome>,
    /// Per study touched: attached, queued (with the reason), ...
    pub studies: Vec<StudyOutcome>,
}

impl IngestReport {
    /// Files stored now.
    pub fn stored(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.result, FileResult::Stored { .. }))
            .count()
    }

    /// Files already on file.
    pub fn duplicates(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.result, FileResult::Duplicate { .. }))
            .count()
    }

    /// Files refused, with reasons.
    pub fn refused(&self) -> impl Iterator<Item = (&str, &str)> {
        self.files.iter().filter_map(|f| match &f.result {
            FileResult::Refused { reason, .. } => Some((f.name.as_str(), reason.as_str())),
            _ => None,
        })
    }

    /// What the batch lacks, from its refused files.
    pub fn gaps(&self) -> BatchGaps {
        gaps_of(&self.files)
    }
}

/// What a batch lacks, from its refused files: each counted against its study when
/// known, against every study of the batch when it may be an image of any.
pub fn gaps_of(files: &[FileOutcome]) -> BatchGaps {
    let mut gaps = BatchGaps::default();
    for f in files {
        if let FileResult::Refused { part_of, .. } = &f.result {
            match part_of {
                PartOf::Study(uid) => gaps.add(Some(uid)),
                PartOf::Unknown => gaps.add(None),
                PartOf::Nothing => {}
            }
        }
    }
    gaps
}

/// The refusals of unpacking (unsafe zip entries, files a DICOMDIR lists that are
/// missing, ...) as outcomes, each with the study the DICOMDIR lists it under when it
/// does.
pub fn unpack_refusals(unpacked: &mut irflow_dicom::UnpackReport) -> Vec<FileOutcome> {
    std::mem::take(&mut unpacked.refused)
        .into_iter()
        .map(|(name, reason)| {
            let part_of = match unpacked.listed_studies.get(&name) {
                Some(study) => PartOf::Study(study.clone()),
                // An unreadable DICOMDIR is an index, not an image.
                None if name
                    .rsplit('/')
                    .next()
                    .is_some_and(|base| base.eq_ignore_ascii_case("DICOMDIR")) =>
                {
                    PartOf::Nothing
                }
                None => PartOf::Unknown,
            };
            FileOutcome {
                name,
                result: FileResult::Refused { reason, part_of },
            }
        })
        .collect()
}

/// A file refused whose own bytes did not tell its study: the CD's DICOMDIR may.
pub fn attribute_refusal(
    outcome: &mut FileOutcome,
    listed_studies: &std::collections::BTreeMap<String, String>,
) {
    if let FileResult::Refused { part_of, .. } = &mut outcome.result
        && *part_of != PartOf::Nothing
        && let Some(study) = listed_studies.get(&outcome.name)
    {
        *part_of = PartOf::Study(study.clone());
    }
}

/// Stores, indexes and matches a batch of files (an upload, an import). Files that are
/// not DICOM, or are broken, are refused one by one with a reason; the rest go on; a
/// study with a file refused waits for staff.
pub async fn ingest_files(
    state: &AppState,
    actor: &Actor,
    files: Vec<Unpacked>,
    source: ImagingSource,
) -> Result<IngestReport, AppError> {
    ingest_unpacked(
        state,
        actor,
        irflow_dicom::UnpackReport {
            files,
            ..irflow_dicom::UnpackReport::default()
        },
        source,
    )
    .await
}

/// [`ingest_files`] for what [`irflow_dicom::unpack_path`] / [`irflow_dicom::unpack_zip`]
/// found: its refusals (unsafe zip entries, missing DICOMDIR references) are reported
/// too, and count against the studies they belong to.
pub async fn ingest_unpacked(
    state: &AppState,
    actor: &Actor,
    mut unpacked: irflow_dicom::UnpackReport,
    source: ImagingSource,
) -> Result<IngestReport, AppError> {
    let mut outcomes = unpack_refusals(&mut unpacked);
    for file in std::mem::take(&mut unpacked.files) {
        let result = ingest_one(state, actor, &file, &source).await?;
        let mut outcome = FileOutcome {
            name: file.name,
            result,
        };
        attribute_refusal(&mut outcome, &unpacked.listed_studies);
        outcomes.push(outcome);
    }
    let studies = finish_batch(state, actor, &source, &gaps_of(&outcomes)).await?;
    Ok(IngestReport {
        batch: source.batch,
        files: outcomes,
        studies,
    })
}

/// Stores and indexes one file of a batch, without matching (a C-STORE receiver calls
/// this per instance and [`finish_batch`] when the association ends). A file that is
/// not acceptable DICOM is refused with a reason; only store or database failures are errors.
pub async fn ingest_one(
    state: &AppState,
    actor: &Actor,
    file: &Unpacked,
    source: &ImagingSource,
) -> Result<FileResult, AppError> {
    let meta = match irflow_dicom::read_meta(&file.bytes) {
        Ok(meta) => meta,
        Err(e) => {
            return Ok(FileResult::Refused {
                reason: e.to_string(),
                part_of: PartOf::of_bytes(&file.bytes),
            });
        }
    };
    ingest_read(state, actor, file, &meta, source).await
}

/// [`ingest_one`] for a file whose metadata is already read (the C-STORE receiver
/// reads it first to check it against the request).
pub async fn ingest_read(
    state: &AppState,
    actor: &Actor,
    file: &Unpacked,
    meta: &irflow_dicom::InstanceMeta,
    source: &ImagingSource,
) -> Result<FileResult, AppError> {
    // Already on file: report it without writing the bytes again.
    if let Some(instance_id) = state
        .store()
        .instance_id_by_sop(&meta.sop_instance_uid)
        .await?
    {
        return Ok(FileResult::Duplicate { instance_id });
    }
    let key = state.images().put(&file.bytes).await?;
    let size = file.bytes.len() as u64;
    match state
        .store()
        .record_instance(actor, meta, &key, size, source)
        .await
    {
        Ok(recorded) if recorded.duplicate => Ok(FileResult::Duplicate {
            instance_id: recorded.instance_id,
        }),
        Ok(recorded) => Ok(FileResult::Stored {
            instance_id: recorded.instance_id,
            study_id: recorded.study_id,
            render_error: irflow_dicom::known_render_problem(meta),
        }),
        // The file contradicts what is on file (e.g. a series UID of another study).
        Err(StoreError::Invalid(reason)) => Ok(FileResult::Refused {
            reason,
            part_of: PartOf::Study(meta.study_instance_uid.clone()),
        }),
        Err(e) => Err(e.into()),
    }
}

/// Matches the studies of a finished batch to cases (or queues them); a study the
/// batch lacks files of (`gaps`) waits for staff.
pub async fn finish_batch(
    state: &AppState,
    actor: &Actor,
    source: &ImagingSource,
    gaps: &BatchGaps,
) -> Result<Vec<StudyOutcome>, AppError> {
    Ok(state
        .store()
        .reconcile_batch_with_gaps(actor, &source.batch, gaps)
        .await?)
}
