//! `irflow bench dicom`: how fast irflow takes in a study over DICOM, against Orthanc
//! on the same machine in the same run, and how fast `irflow import` reads the same
//! series from a DICOMDIR folder.
//!
//! It writes a synthetic MR series (512x512, 16-bit, explicit VR little endian) to a
//! temporary directory, starts irflow's C-STORE receiver in-process on a free port
//! (fresh SQLite database and image directory, the demo department seeded so the
//! study is matched to a case as in real use), and times dcmtk's `storescu` sending
//! the folder in one association, twice — with `imaging.fsync` true (the default:
//! every file synced before success is answered) and false. Then it starts Orthanc (Debian package `orthanc`)
//! with a temporary storage directory on free ports, twice — with its default
//! `SyncStorageArea: true` (every file fsynced) and with `false` — and times the same
//! send. Last, `dcmmkdir` indexes the folder and the `irflow import` binary reads it.
//! Everything it made is removed at the end.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use irflow_domain::Actor;

use crate::cli::BenchDicomArgs;

/// What a synthetic series looks like.
#[derive(Debug, Clone)]
pub struct SyntheticSeries {
    /// Patient's Name, DICOM style (`HADDAD^LAYLA`).
    pub patient_name: String,
    /// Patient ID (the sending site's MRN).
    pub patient_id: String,
    /// Birth date, `YYYYMMDD`.
    pub birth_date: String,
    /// `M`, `F` or `O`.
    pub sex: String,
    /// Study date, `YYYYMMDD`.
    pub study_date: String,
    /// Study description.
    pub study_description: String,
    /// Body Part Examined.
    pub body_part: String,
    /// Study Instance UID.
    pub study_uid: String,
    /// Series Instance UID.
    pub series_uid: String,
    /// Number of images.
    pub instances: usize,
    /// Rows of each image.
    pub rows: u16,
    /// Columns of each image.
    pub columns: u16,
}

impl SyntheticSeries {
    /// A lumbar spine MR series of `instances` images for a patient, with fresh UIDs.
    pub fn mr(patient_name: &str, patient_id: &str, birth_date: &str, instances: usize) -> Self {
        Self {
            patient_name: patient_name.to_owned(),
            patient_id: patient_id.to_owned(),
            birth_date: birth_date.to_owned(),
            sex: "O".to_owned(),
            study_date: "20261101".to_owned(),
            study_description: "MRI LUMBAR SPINE".to_owned(),
            body_part: "LSPINE".to_owned(),
            study_uid: new_uid(),
            series_uid: new_uid(),
            instances,
            rows: 512,
            columns: 512,
        }
    }

    /// Bytes of pixel data per image.
    pub fn pixel_bytes(&self) -> usize {
        usize::from(self.rows) * usize::from(self.columns) * 2
    }
}

/// A fresh UID under the `2.25` (UUID-derived) root.
pub fn new_uid() -> String {
    format!("2.25.{}", rand::random::<u128>() >> 1)
}

/// Writes the series as Part 10 files named `IM000001`, `IM000002`, ... (names a
/// DICOMDIR can reference) in `dir`; returns their paths in order.
pub fn write_series(dir: &Path, series: &SyntheticSeries) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("could not create {}", dir.display()))?;
    let mut paths = Vec::with_capacity(series.instances);
    for index in 0..series.instances {
        let number = index + 1;
        let path = dir.join(format!("IM{number:06}"));
        let sop_instance = new_uid();
        let object = instance(series, number, &sop_instance);
        let file = object
            .with_meta(
                FileMetaTableBuilder::new()
                    .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                    .media_storage_sop_class_uid(uids::MR_IMAGE_STORAGE)
                    .media_storage_sop_instance_uid(sop_instance.as_str()),
            )
            .context("could not build the file meta group")?;
        file.write_to_file(&path)
            .with_context(|| format!("could not write {}", path.display()))?;
        paths.push(path);
    }
    Ok(paths)
}

fn instance(series: &SyntheticSeries, number: usize, sop_instance: &str) -> InMemDicomObject {
    let text = |tag, vr, value: &str| DataElement::new(tag, vr, PrimitiveValue::from(value));
    let us = |tag, value: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(value));
    let rows = series.rows;
    let columns = series.columns;
    // A bright disc that moves through the series over a gradient: slices differ, and
    // a thumbnail shows something.
    let mut pixels = Vec::with_capacity(series.pixel_bytes());
    let centre = i64::try_from(number % 64).unwrap_or(0) * i64::from(columns) / 64;
    for y in 0..i64::from(rows) {
        for x in 0..i64::from(columns) {
            let d2 = (x - centre).pow(2) + (y - i64::from(rows) / 2).pow(2);
            let value: u16 = if d2 < 60 * 60 {
                3000
            } else {
                u16::try_from((x + y) % 1024).unwrap_or(0)
            };
            pixels.extend_from_slice(&value.to_le_bytes());
        }
    }
    InMemDicomObject::from_element_iter([
        text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 100"),
        text(tags::SOP_CLASS_UID, VR::UI, uids::MR_IMAGE_STORAGE),
        text(tags::SOP_INSTANCE_UID, VR::UI, sop_instance),
        text(tags::STUDY_DATE, VR::DA, &series.study_date),
        text(tags::SERIES_DATE, VR::DA, &series.study_date),
        text(tags::STUDY_TIME, VR::TM, "101500"),
        text(tags::ACCESSION_NUMBER, VR::SH, "BENCH0001"),
        text(tags::MODALITY, VR::CS, "MR"),
        text(tags::MANUFACTURER, VR::LO, "irflow synthetic"),
        text(tags::REFERRING_PHYSICIAN_NAME, VR::PN, ""),
        text(tags::STUDY_DESCRIPTION, VR::LO, &series.study_description),
        text(tags::SERIES_DESCRIPTION, VR::LO, "SAG T2 L-SPINE"),
        text(tags::PATIENT_NAME, VR::PN, &series.patient_name),
        text(tags::PATIENT_ID, VR::LO, &series.patient_id),
        text(tags::PATIENT_BIRTH_DATE, VR::DA, &series.birth_date),
        text(tags::PATIENT_SEX, VR::CS, &series.sex),
        text(tags::BODY_PART_EXAMINED, VR::CS, &series.body_part),
        text(tags::STUDY_INSTANCE_UID, VR::UI, &series.study_uid),
        text(tags::SERIES_INSTANCE_UID, VR::UI, &series.series_uid),
        text(tags::STUDY_ID, VR::SH, "1"),
        text(tags::SERIES_NUMBER, VR::IS, "2"),
        text(tags::INSTANCE_NUMBER, VR::IS, &number.to_string()),
        text(
            tags::IMAGE_POSITION_PATIENT,
            VR::DS,
            &format!("0\\0\\{number}"),
        ),
        text(tags::IMAGE_ORIENTATION_PATIENT, VR::DS, "1\\0\\0\\0\\1\\0"),
        text(tags::SLICE_THICKNESS, VR::DS, "1"),
        text(tags::PIXEL_SPACING, VR::DS, "0.5\\0.5"),
        us(tags::SAMPLES_PER_PIXEL, 1),
        text(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        us(tags::ROWS, rows),
        us(tags::COLUMNS, columns),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 12),
        us(tags::HIGH_BIT, 11),
        us(tags::PIXEL_REPRESENTATION, 0),
        text(tags::WINDOW_CENTER, VR::DS, "1500"),
        text(tags::WINDOW_WIDTH, VR::DS, "3000"),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ])
}

/// One timed send or import.
#[derive(Debug, Clone)]
struct Timing {
    target: String,
    instances: usize,
    bytes: u64,
    seconds: f64,
    note: String,
}

impl Timing {
    fn per_second(&self) -> f64 {
        self.instances as f64 / self.seconds.max(1e-9)
    }

    fn mb_per_second(&self) -> f64 {
        self.bytes as f64 / 1_000_000.0 / self.seconds.max(1e-9)
    }

    fn line(&self) -> String {
        format!(
            "| {} | {} | {:.2} | {:.0} | {:.1} | {} |",
            self.target,
            self.instances,
            self.seconds,
            self.per_second(),
            self.mb_per_second(),
            self.note
        )
    }
}

/// A temporary directory removed when dropped.
#[derive(Debug)]
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (by its id, through its handle) when dropped.
#[derive(Debug)]
struct Child(Option<tokio::process::Child>);

impl Drop for Child {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.start_kill();
        }
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    format!(
        "{cores} cores, {model}, {} {}, release build: {}",
        std::env::consts::OS,
        std::env::consts::ARCH,
        if cfg!(debug_assertions) { "no" } else { "yes" }
    )
}

/// Finds a program on `PATH` (or as given, if it contains a slash).
fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

/// A port on 127.0.0.1 nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

const MAX_INSTANCES: usize = 20_000;

/// Debian's dcmtk (storescu, storescp, and Orthanc, which is built on it) leaves
/// Nagle's algorithm on unless `TCP_NODELAY=1` is in the environment; then every
/// instance waits about 40 ms for a delayed acknowledgement. Every dcmtk-based program
/// here runs with it set, so no side is slowed by that (irflow sets TCP_NODELAY on its
/// own sockets).
const NODELAY: &str = "1";

/// Runs the benchmark and prints a report.
pub async fn run(args: BenchDicomArgs) -> Result<()> {
    if args.instances == 0 || args.instances > MAX_INSTANCES {
        bail!("--instances must be 1-{MAX_INSTANCES}");
    }
    if !(1..=10).contains(&args.rounds) {
        bail!("--rounds must be 1-10");
    }
    if !(16..=4096).contains(&args.size) {
        bail!("--size must be 16-4096 (pixels along each edge)");
    }
    let storescu = find_program("storescu").context(
        "dcmtk's storescu is not on PATH; install it (Debian: apt-get install dcmtk) — the benchmark sends with it",
    )?;
    let dcmmkdir = find_program("dcmmkdir")
        .context("dcmtk's dcmmkdir is not on PATH; install it (Debian: apt-get install dcmtk)")?;
    let orthanc = if args.skip_orthanc {
        None
    } else {
        Some(find_program(&args.orthanc).with_context(|| {
            format!(
                "Orthanc ({}) is not on PATH; install it (Debian: apt-get install orthanc), point --orthanc at it, or run with --skip-orthanc to time irflow alone",
                args.orthanc
            )
        })?)
    };
    crate::init_logging(crate::config::LogFormat::Pretty, "error");

    let now = jiff::Timestamp::now();
    let tmp = TempDir(std::env::temp_dir().join(format!(
        "irflow-bench-dicom-{}-{}{:06}",
        std::process::id(),
        now.as_second(),
        now.subsec_microsecond()
    )));
    std::fs::create_dir_all(&tmp.0)
        .with_context(|| format!("could not create {}", tmp.0.display()))?;

    // The demo's Layla Haddad: the study matches her case by MRN, as a real one would.
    let mut series = SyntheticSeries::mr("HADDAD^LAYLA", "MRN-104116", "19910530", args.instances);
    let size = u16::try_from(args.size).unwrap_or(512);
    series.rows = size;
    series.columns = size;
    let series_dir = tmp.0.join("SERIES");
    let started = Instant::now();
    let files = write_series(&series_dir, &series)?;
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!(
        "irflow bench dicom: {} instances {size}x{size} 16-bit MR, explicit VR little endian, {:.1} MB in all (written in {:.1} s)",
        files.len(),
        bytes as f64 / 1_000_000.0,
        started.elapsed().as_secs_f64()
    );
    println!("  machine: {}", machine());
    println!("  temporary files in {}", tmp.0.display());
    let names: Vec<String> = files
        .iter()
        .filter_map(|f| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();

    // Rounds, each target once per round in turn, each starting from a settled page
    // cache (`sync`), each on a fresh store; the median round of each is reported.
    let storescp = find_program("storescp");
    let mut rounds: Vec<Vec<Timing>> = Vec::new();
    for round in 0..args.rounds {
        let mut this = Vec::new();
        for fsync in [true, false] {
            settle().await;
            let t =
                send_to_irflow(&tmp.0, round, fsync, &storescu, &series_dir, &names, bytes).await?;
            print_send(round, &t, files.len());
            this.push(t);
        }
        if let Some(program) = &orthanc {
            for sync in [true, false] {
                settle().await;
                let t = send_to_orthanc(
                    &tmp.0,
                    round,
                    program,
                    sync,
                    &storescu,
                    &series_dir,
                    &names,
                    bytes,
                )
                .await?;
                print_send(round, &t, files.len());
                this.push(t);
            }
        }
        if let Some(storescp) = &storescp {
            settle().await;
            let t = send_to_storescp(
                &tmp.0,
                round,
                storescp,
                &storescu,
                &series_dir,
                &names,
                bytes,
            )
            .await?;
            print_send(round, &t, files.len());
            this.push(t);
        }
        rounds.push(this);
    }
    if orthanc.is_none() {
        println!("  Orthanc: skipped (--skip-orthanc); no comparison in this run");
    }
    let mut timings: Vec<Timing> = (0..rounds.first().map_or(0, Vec::len))
        .map(|i| median(rounds.iter().filter_map(|r| r.get(i).cloned()).collect()))
        .collect();
    // In order: irflow synced (its default), irflow unsynced, then Orthanc synced
    // (its default) and unsynced when Orthanc ran.
    let irflow = timings.first().cloned().context("no irflow timing")?;
    let irflow_unsynced = timings.get(1).cloned().context("no irflow timing")?;
    let (orthanc_default, orthanc_unsynced) = if orthanc.is_some() {
        (timings.get(2).cloned(), timings.get(3).cloned())
    } else {
        (None, None)
    };

    settle().await;
    let parts = breakdown(&tmp.0, &files).await?;
    println!(
        "  where irflow's time goes, per instance, in-process on a fresh store (mean of {}): read the metadata {:.2} ms; store the file (SHA-256 key, write, rename; no fsync) {:.2} ms; index it (one SQLite transaction, fsynced at commit) {:.2} ms; match the study at the end {:.1} ms in all; fsyncing a file of that size here {:.2} ms",
        parts.instances,
        parts.read_meta_ms,
        parts.put_ms,
        parts.index_ms,
        parts.reconcile_ms,
        parts.fsync_ms
    );

    settle().await;
    let import = import_dicomdir(&tmp.0, &dcmmkdir, &series_dir, &names, bytes).await?;
    println!(
        "  irflow import of the DICOMDIR folder: {} files in {:.2} s: {:.0} instances/s, {:.1} MB/s",
        import.instances,
        import.seconds,
        import.per_second(),
        import.mb_per_second()
    );
    timings.push(import);

    println!();
    println!(
        "median of {} round(s) for the sends; the import once:",
        args.rounds
    );
    println!("| target | instances | seconds | instances/s | MB/s | notes |");
    println!("|---|---:|---:|---:|---:|---|");
    for t in &timings {
        println!("{}", t.line());
    }
    if let (Some(o), Some(u)) = (orthanc_default, orthanc_unsynced) {
        println!();
        println!(
            "irflow / Orthanc, both with their defaults (every file synced to disk): {:.2}x the instances per second",
            irflow.per_second() / o.per_second().max(1e-9)
        );
        println!(
            "irflow / Orthanc, neither syncing files: {:.2}x",
            irflow_unsynced.per_second() / u.per_second().max(1e-9)
        );
    }
    for t in [&irflow, &irflow_unsynced] {
        if t.instances != files.len() {
            bail!(
                "irflow stored {} of {} instances; see the log above",
                t.instances,
                files.len()
            );
        }
    }
    Ok(())
}

/// Flushes every dirty page to disk and lets the machine settle, so a run does not
/// pay for the writes of the one before it.
async fn settle() {
    let _ = tokio::process::Command::new("sync")
        .stdin(Stdio::null())
        .status()
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
}

fn print_send(round: usize, t: &Timing, total: usize) {
    println!(
        "  round {}: storescu -> {}: {} of {total} stored in {:.2} s: {:.0} instances/s, {:.1} MB/s",
        round + 1,
        t.target,
        t.instances,
        t.seconds,
        t.per_second(),
        t.mb_per_second()
    );
}

/// The timing with the median rate (the lower middle one of an even count).
fn median(mut runs: Vec<Timing>) -> Timing {
    runs.sort_by(|a, b| a.per_second().total_cmp(&b.per_second()));
    let middle = runs.len().saturating_sub(1) / 2;
    runs.swap_remove(middle)
}

/// Mean milliseconds per instance of each step of irflow's ingest.
#[derive(Debug)]
struct Breakdown {
    instances: usize,
    read_meta_ms: f64,
    put_ms: f64,
    index_ms: f64,
    reconcile_ms: f64,
    fsync_ms: f64,
}

/// The ingest's steps one by one, in-process, on a fresh store: what a C-STORE costs
/// besides the network.
async fn breakdown(tmp: &Path, files: &[PathBuf]) -> Result<Breakdown> {
    let data = tmp.join("breakdown-data");
    std::fs::create_dir_all(&data)?;
    let store = irflow_store::Store::open(&crate::config::sqlite_url(&data.join("irflow.db")))
        .await
        .context("could not create the breakdown database")?;
    let images = irflow_server::imaging::ImageStore::open(
        &irflow_server::imaging::ImageStoreConfig::Local {
            dir: data.join("images"),
            fsync: false,
        },
    )
    .map_err(anyhow::Error::msg)?;
    let actor = Actor::system("bench");
    let source =
        irflow_store::ImagingSource::new(irflow_store::SourceKind::Cstore).from_ae("BENCH");
    let (mut read, mut put, mut index) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for file in files {
        let bytes = std::fs::read(file)?;
        let t = Instant::now();
        let meta = irflow_dicom::read_meta(&bytes).map_err(|e| anyhow::anyhow!("{e}"))?;
        read += t.elapsed();
        let t = Instant::now();
        let key = images.put(&bytes).await?;
        put += t.elapsed();
        let t = Instant::now();
        store
            .record_instance(&actor, &meta, &key, bytes.len() as u64, &source)
            .await?;
        index += t.elapsed();
    }
    let t = Instant::now();
    store.reconcile_batch(&actor, &source.batch).await?;
    let reconcile = t.elapsed();
    // What making one instance's file durable would cost here: a new file of the
    // same size, written and fsynced, 20 times.
    let size = files
        .first()
        .and_then(|f| std::fs::metadata(f).ok())
        .map_or(0, |m| m.len() as usize);
    let payload = vec![7u8; size];
    let mut fsync = Duration::ZERO;
    for i in 0..20 {
        use std::io::Write;
        let mut f = std::fs::File::create(data.join(format!("fsync-probe-{i}")))?;
        f.write_all(&payload)?;
        let t = Instant::now();
        f.sync_all()?;
        fsync += t.elapsed();
    }
    let n = files.len().max(1) as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0 / n;
    Ok(Breakdown {
        instances: files.len(),
        read_meta_ms: ms(read),
        put_ms: ms(put),
        index_ms: ms(index),
        reconcile_ms: reconcile.as_secs_f64() * 1000.0,
        fsync_ms: fsync.as_secs_f64() * 1000.0 / 20.0,
    })
}

/// Runs storescu (one association) against `port`; returns the elapsed seconds.
async fn storescu_send(
    storescu: &Path,
    dir: &Path,
    names: &[String],
    called_ae: &str,
    port: u16,
) -> Result<f64> {
    let started = Instant::now();
    let out = tokio::process::Command::new(storescu)
        .env("TCP_NODELAY", NODELAY)
        .current_dir(dir)
        .args(["-aet", "BENCH", "-aec", called_ae, "127.0.0.1"])
        .arg(port.to_string())
        .args(names)
        .stdin(Stdio::null())
        .output()
        .await
        .context("could not run storescu")?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "storescu to {called_ae} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .take(5)
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    Ok(seconds)
}

#[allow(clippy::too_many_arguments)]
async fn send_to_irflow(
    tmp: &Path,
    round: usize,
    fsync: bool,
    storescu: &Path,
    series_dir: &Path,
    names: &[String],
    bytes: u64,
) -> Result<Timing> {
    let data = tmp.join(format!(
        "irflow-data-{round}-{}",
        if fsync { "sync" } else { "nosync" }
    ));
    std::fs::create_dir_all(&data)?;
    let store = irflow_store::Store::open(&crate::config::sqlite_url(&data.join("irflow.db")))
        .await
        .context("could not create the benchmark database")?;
    let tz = jiff::tz::TimeZone::get("America/New_York")?;
    let today = jiff::Timestamp::now().to_zoned_datetime(tz.clone()).date();
    crate::demo::seed(&store, &tz, today).await?;
    let server_config = irflow_server::ServerConfig {
        image_store: irflow_server::imaging::ImageStoreConfig::Local {
            dir: data.join("images"),
            fsync,
        },
        ..irflow_server::ServerConfig::default()
    };
    let state = irflow_server::AppState::new(
        store.clone(),
        server_config,
        irflow_rules::default_pack().map_err(anyhow::Error::msg)?,
    )
    .map_err(anyhow::Error::msg)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = irflow_server::dicom_scp::DicomScpConfig::default();
    let ae = config.ae_title.clone();
    let task = tokio::spawn(irflow_server::dicom_scp::serve_dicom(
        listener,
        state,
        config,
        async move {
            let _ = stopped.await;
        },
    ));
    let seconds = storescu_send(storescu, series_dir, names, &ae, port).await;
    let _ = stop.send(());
    let _ = task.await;
    let seconds = seconds?;
    let stored = count_files(&data.join("images"));
    let actor = Actor::system("bench");
    let matched = match store.reconciliation_queue(&actor).await {
        Ok(queue) if queue.is_empty() => "study matched to its case by MRN",
        Ok(_) => "study queued for reconciliation (not matched)",
        Err(_) => "matching not checked",
    };
    Ok(Timing {
        target: if fsync {
            "irflow, imaging.fsync true (default)".to_owned()
        } else {
            "irflow, imaging.fsync false".to_owned()
        },
        instances: stored,
        bytes,
        seconds,
        note: format!(
            "{}; SQLite index (WAL) committed per instance; {matched}",
            if fsync {
                "every file and its directory fsynced before success"
            } else {
                "files written without fsync"
            }
        ),
    })
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                count_files(&path)
            } else {
                usize::from(!e.file_name().to_string_lossy().starts_with('.'))
            }
        })
        .sum()
}

#[allow(clippy::too_many_arguments)]
async fn send_to_orthanc(
    tmp: &Path,
    round: usize,
    program: &Path,
    sync_storage: bool,
    storescu: &Path,
    series_dir: &Path,
    names: &[String],
    bytes: u64,
) -> Result<Timing> {
    let dir = tmp.join(format!(
        "orthanc-{}-{round}",
        if sync_storage { "sync" } else { "nosync" }
    ));
    std::fs::create_dir_all(&dir)?;
    let dicom_port = free_port()?;
    let http_port = free_port()?;
    let config = serde_json::json!({
        "Name": "irflow-bench",
        "StorageDirectory": dir.join("storage"),
        "IndexDirectory": dir.join("index"),
        "DicomServerEnabled": true,
        "DicomAet": "ORTHANC",
        "DicomPort": dicom_port,
        "DicomCheckCalledAet": false,
        "HttpServerEnabled": true,
        "HttpPort": http_port,
        "RemoteAccessAllowed": false,
        "AuthenticationEnabled": false,
        "Plugins": [],
        "StorageCompression": false,
        "SyncStorageArea": sync_storage,
        "SaveJobs": false,
    });
    let config_path = dir.join("orthanc.json");
    std::fs::write(&config_path, serde_json::to_vec_pretty(&config)?)?;
    let log = std::fs::File::create(dir.join("orthanc.log"))?;
    let child = tokio::process::Command::new(program)
        .env("TCP_NODELAY", NODELAY)
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("could not start {}", program.display()))?;
    let mut child = Child(Some(child));
    let base = format!("http://127.0.0.1:{http_port}");
    let client = reqwest::Client::new();
    let version = wait_for_orthanc(&client, &base, &mut child, &dir).await?;
    let seconds = storescu_send(storescu, series_dir, names, "ORTHANC", dicom_port).await;
    let stats: serde_json::Value = client
        .get(format!("{base}/statistics"))
        .send()
        .await
        .context("Orthanc's /statistics")?
        .json()
        .await
        .context("Orthanc's /statistics")?;
    if let Some(mut c) = child.0.take() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    let seconds = seconds?;
    let stored = stats["CountInstances"]
        .as_u64()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    Ok(Timing {
        target: format!(
            "Orthanc {version}, SyncStorageArea {}",
            if sync_storage {
                "true (default)"
            } else {
                "false"
            }
        ),
        instances: stored,
        bytes,
        seconds,
        note: if sync_storage {
            "every file fsynced; SQLite index".to_owned()
        } else {
            "files written without fsync; SQLite index".to_owned()
        },
    })
}

/// dcmtk's own receiver, writing each instance to a file and nothing else: what the
/// sender, the network and a plain file write cost on this machine.
async fn send_to_storescp(
    tmp: &Path,
    round: usize,
    storescp: &Path,
    storescu: &Path,
    series_dir: &Path,
    names: &[String],
    bytes: u64,
) -> Result<Timing> {
    let out = tmp.join(format!("storescp-{round}"));
    std::fs::create_dir_all(&out)?;
    let port = free_port()?;
    let child = tokio::process::Command::new(storescp)
        .env("TCP_NODELAY", NODELAY)
        .args(["-aet", "STORESCP", "-dhl", "+B", "-od"])
        .arg(&out)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("could not start storescp")?;
    let mut child = Child(Some(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        if Instant::now() > deadline {
            bail!("storescp did not listen within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seconds = storescu_send(storescu, series_dir, names, "STORESCP", port).await;
    if let Some(mut c) = child.0.take() {
        let _ = c.start_kill();
        let _ = c.wait().await;
    }
    Ok(Timing {
        target: "dcmtk storescp (reference)".to_owned(),
        instances: count_files(&out),
        bytes,
        seconds: seconds?,
        note: "files written as received, no index, no fsync: the sender and network's floor"
            .to_owned(),
    })
}

async fn wait_for_orthanc(
    client: &reqwest::Client,
    base: &str,
    child: &mut Child,
    dir: &Path,
) -> Result<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(c) = child.0.as_mut()
            && let Ok(Some(status)) = c.try_wait()
        {
            bail!(
                "Orthanc exited at start ({status}); its log: {}",
                dir.join("orthanc.log").display()
            );
        }
        if let Ok(r) = client.get(format!("{base}/system")).send().await
            && r.status().is_success()
            && let Ok(v) = r.json::<serde_json::Value>().await
        {
            return Ok(v["Version"].as_str().unwrap_or("?").to_owned());
        }
        if Instant::now() > deadline {
            bail!(
                "Orthanc did not answer within 30 s; its log: {}",
                dir.join("orthanc.log").display()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn import_dicomdir(
    tmp: &Path,
    dcmmkdir: &Path,
    series_dir: &Path,
    names: &[String],
    bytes: u64,
) -> Result<Timing> {
    let out = tokio::process::Command::new(dcmmkdir)
        .current_dir(series_dir)
        .args(["--recurse", "--output-file", "DICOMDIR"])
        .args(names)
        .stdin(Stdio::null())
        .output()
        .await
        .context("could not run dcmmkdir")?;
    if !out.status.success() {
        bail!(
            "dcmmkdir failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let exe = std::env::current_exe().context("where is the irflow binary?")?;
    let data = tmp.join("import-data");
    let started = Instant::now();
    let out = tokio::process::Command::new(exe)
        .arg("--data-dir")
        .arg(&data)
        .arg("import")
        .arg(series_dir.join("DICOMDIR"))
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_CONFIG")
        .env("IRFLOW_LOG_LEVEL", "error")
        .current_dir(tmp)
        .stdin(Stdio::null())
        .output()
        .await
        .context("could not run irflow import")?;
    let seconds = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!(
            "irflow import failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stored = count_files(&data.join("images"));
    Ok(Timing {
        target: "irflow import (DICOMDIR folder)".to_owned(),
        instances: stored,
        bytes,
        seconds,
        note: "a new process: start-up, migrations and unpacking included".to_owned(),
    })
}
