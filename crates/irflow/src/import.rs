//! `irflow import PATH [--case ID]`: outside imaging from a file, a folder, a zip or a
//! CD's DICOMDIR, through the same ingest path as web uploads and DICOM C-STORE. Also
//! the `[imaging]` storage settings (where the original files are kept).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use irflow_domain::{Actor, CaseId};
use irflow_server::imaging::{FileResult, ImageStoreConfig, IngestReport};
use irflow_store::{ImagingSource, Reconciled, SourceKind};

use crate::cli::ImportArgs;
use crate::config::Config;

/// Where original DICOM files are kept, and the limits on one upload or import
/// (`[imaging]` in irflow.toml; `IRFLOW_IMAGE_*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagingSettings {
    /// `local` (default) or `s3`.
    pub store: StoreKind,
    /// For `local`: the directory (default `<data_dir>/images`).
    pub dir: Option<PathBuf>,
    /// For `s3`: the bucket.
    pub bucket: Option<String>,
    /// For `s3`: an S3-compatible endpoint URL (MinIO, Ceph); none for AWS.
    pub endpoint: Option<String>,
    /// For `s3`: the region.
    pub region: Option<String>,
    /// For `s3`: allow a plain-http endpoint.
    pub allow_http: bool,
    /// For `local`: sync each file and its directory before it counts as stored
    /// (default true; false trades power-cut safety for speed).
    pub fsync: bool,
    /// Limits on one upload or import.
    pub limits: irflow_dicom::Limits,
}

/// Which kind of image store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    /// A local directory.
    Local,
    /// An S3-compatible bucket.
    S3,
}

impl Default for ImagingSettings {
    fn default() -> Self {
        Self {
            store: StoreKind::Local,
            dir: None,
            bucket: None,
            endpoint: None,
            region: None,
            allow_http: false,
            fsync: true,
            limits: irflow_dicom::Limits::default(),
        }
    }
}

impl ImagingSettings {
    /// Parses `store = "local" | "s3"`.
    pub fn parse_store(raw: &str, source: &str) -> Result<StoreKind> {
        match raw.trim() {
            "local" => Ok(StoreKind::Local),
            "s3" => Ok(StoreKind::S3),
            other => bail!("{source}: image store {other:?} is not known; use \"local\" or \"s3\""),
        }
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<()> {
        if self.store == StoreKind::S3 && self.bucket.as_deref().is_none_or(str::is_empty) {
            bail!(
                "imaging.store = \"s3\" needs imaging.bucket (IRFLOW_IMAGE_BUCKET): the bucket to keep DICOM files in"
            );
        }
        if self.limits.max_total_bytes == 0 || self.limits.max_files == 0 {
            bail!("imaging.max_upload_mb and imaging.max_files must be at least 1");
        }
        Ok(())
    }

    /// The server's image store setting.
    pub fn image_store(&self, data_dir: &Path) -> ImageStoreConfig {
        match self.store {
            StoreKind::Local => ImageStoreConfig::Local {
                dir: self.dir.clone().unwrap_or_else(|| data_dir.join("images")),
                fsync: self.fsync,
            },
            StoreKind::S3 => ImageStoreConfig::S3 {
                bucket: self.bucket.clone().unwrap_or_default(),
                endpoint: self.endpoint.clone(),
                region: self.region.clone(),
                allow_http: self.allow_http,
            },
        }
    }
}

/// A progress bar on standard error, drawn only when it is a terminal.
struct Progress {
    total: usize,
    done: usize,
    bytes: u64,
    draw: bool,
}

impl Progress {
    fn new(total: usize) -> Self {
        Self {
            total,
            done: 0,
            bytes: 0,
            draw: std::io::stderr().is_terminal(),
        }
    }

    fn step(&mut self, bytes: usize) {
        self.done += 1;
        self.bytes += bytes as u64;
        if !self.draw {
            return;
        }
        let width = 30;
        let filled = (self.done * width).checked_div(self.total).unwrap_or(width);
        let mut err = std::io::stderr();
        let _ = write!(
            err,
            "\r[{}{}] {}/{} files, {:.1} MB",
            "#".repeat(filled),
            " ".repeat(width - filled.min(width)),
            self.done,
            self.total,
            self.bytes as f64 / 1_000_000.0
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.draw {
            eprintln!();
        }
    }
}

/// `irflow import`.
pub async fn run(config: &Config, args: ImportArgs) -> Result<()> {
    let store = crate::connect(config).await?;
    let pack = config.rule_pack()?;
    let state = irflow_server::AppState::new(store.clone(), config.server_config(), pack)
        .map_err(anyhow::Error::msg)?;
    let actor = Actor::system("import");
    if let Some(id) = args.case {
        let case = CaseId::new(id);
        store.case_detail(&actor, case).await.map_err(|e| match e {
            irflow_store::StoreError::NotFound => {
                anyhow::anyhow!("case #{id} does not exist; check the number with the worklist")
            }
            other => anyhow::Error::new(other).context(format!("could not read case #{id}")),
        })?;
    }
    let path = args.path.clone();
    let limits = config.imaging.limits;
    let unpacked = tokio::task::spawn_blocking(move || irflow_dicom::unpack_path(&path, &limits))
        .await
        .context("unpacking stopped unexpectedly")?
        .map_err(|e| {
            anyhow::anyhow!("refused {}: {e}; nothing was imported", args.path.display())
        })?;
    let mut unpacked = unpacked;
    let ignored = std::mem::take(&mut unpacked.ignored);
    let mut source = ImagingSource::new(SourceKind::Import);
    if let Some(id) = args.case {
        source = source.for_case(CaseId::new(id));
    }
    let mut files = irflow_server::imaging::unpack_refusals(&mut unpacked);
    let to_ingest = std::mem::take(&mut unpacked.files);
    let mut progress = Progress::new(to_ingest.len());
    for file in to_ingest {
        let mut result = irflow_server::imaging::ingest_one(&state, &actor, &file, &source)
            .await
            .map_err(|e| match e {
                // At the terminal the operator sees what failed (an unreachable
                // bucket, a full disk): these texts name keys and paths, never
                // patient data. The web shows only that something went wrong.
                irflow_server::AppError::Internal(detail) => {
                    anyhow::anyhow!("import stopped at {}: {detail}", file.name)
                }
                other => anyhow::anyhow!("import stopped at {}: {other}", file.name),
            })?;
        if args.verify_images
            && let FileResult::Stored {
                instance_id,
                render_error: None,
                ..
            } = &result
        {
            let bytes = file.bytes.clone();
            let rendered = tokio::task::spawn_blocking(move || {
                irflow_dicom::render_png(&bytes, 0, irflow_dicom::Preset::Default, 128)
            })
            .await
            .context("rendering stopped unexpectedly")?;
            if let Err(e) = rendered {
                store
                    .record_render_error(*instance_id, &e.to_string())
                    .await?;
                if let FileResult::Stored { render_error, .. } = &mut result {
                    *render_error = Some(e.to_string());
                }
            }
        }
        progress.step(file.bytes.len());
        let mut outcome = irflow_server::imaging::FileOutcome {
            name: file.name,
            result,
        };
        irflow_server::imaging::attribute_refusal(&mut outcome, &unpacked.listed_studies);
        files.push(outcome);
    }
    progress.finish();
    let gaps = irflow_server::imaging::gaps_of(&files);
    let studies = irflow_server::imaging::finish_batch(&state, &actor, &source, &gaps)
        .await
        .map_err(|e| anyhow::anyhow!("matching the imported studies failed: {e}"))?;
    let report = IngestReport {
        batch: source.batch.clone(),
        files,
        studies,
    };
    print_summary(&report, &ignored);
    let refused = report.refused().count();
    if refused > 0 {
        let taken = report.stored() + report.duplicates();
        bail!(
            "{} refused (see above); {}",
            if refused == 1 {
                "1 file was".to_owned()
            } else {
                format!("{refused} files were")
            },
            match taken {
                0 => "nothing was imported".to_owned(),
                1 => "the other file was imported".to_owned(),
                _ => "the other files were imported".to_owned(),
            }
        );
    }
    if report.stored() == 0 {
        if report.duplicates() > 0 {
            bail!("nothing new: every file was already on file");
        }
        bail!(
            "nothing was imported: no DICOM files found in {}",
            args.path.display()
        );
    }
    Ok(())
}

/// Left-out files named one by one in the summary; the rest are counted.
const LEFT_OUT_SHOWN: usize = 20;

fn print_summary(report: &IngestReport, ignored: &[(String, String)]) {
    let refused: Vec<(&str, &str)> = report.refused().collect();
    let undecodable: Vec<(&str, &str)> = report
        .files
        .iter()
        .filter_map(|f| match &f.result {
            FileResult::Stored {
                render_error: Some(e),
                ..
            } => Some((f.name.as_str(), e.as_str())),
            _ => None,
        })
        .collect();
    println!(
        "imported: {} stored, {} already on file, {} refused{}",
        report.stored(),
        report.duplicates(),
        refused.len(),
        if ignored.is_empty() {
            String::new()
        } else {
            format!(
                ", {} left out (a CD's DICOMDIR, and files in its folder it does not list)",
                ignored.len()
            )
        }
    );
    for (name, reason) in &refused {
        println!("  refused {name}: {reason}");
    }
    for (name, reason) in ignored.iter().take(LEFT_OUT_SHOWN) {
        println!("  left out {name}: {reason}");
    }
    if ignored.len() > LEFT_OUT_SHOWN {
        println!("  ... and {} more left out", ignored.len() - LEFT_OUT_SHOWN);
    }
    for (name, reason) in &undecodable {
        println!("  stored, cannot be shown: {name}: {reason}");
    }
    for study in &report.studies {
        let what = match &study.outcome {
            Reconciled::Attached { case, matched_by } => {
                format!("attached to case #{case} ({})", matched_by.label())
            }
            Reconciled::AlreadyAttached { case } => format!("already attached to case #{case}"),
            Reconciled::Queued { reason } => {
                format!("waits in the reconciliation queue: {reason}")
            }
            Reconciled::Rejected => "was rejected by staff before; it stays rejected".to_owned(),
        };
        println!(
            "  study #{} ({} new image{}): {what}",
            study.study_id,
            study.new_instances,
            if study.new_instances == 1 { "" } else { "s" }
        );
    }
}
