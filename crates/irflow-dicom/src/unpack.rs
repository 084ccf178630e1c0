//! Unpacking what people bring: single files, folders (a CD copied from disc), zips,
//! and DICOMDIR-indexed folders or zips. Nothing is ever written to disk: zip
//! entries are read into memory under limits, and paths only name files for messages.
//!
//! A folder or zip with a DICOMDIR is read the way a CD is meant to be read: each
//! DICOMDIR governs the files under its own folder, where only the files its directory
//! records reference are taken (viewer software and autorun files on a CD are left
//! out, and the report says so); a referenced file that is missing is reported as
//! refused. Files outside every DICOMDIR's folder (two CDs side by side, a CD and some
//! loose files) are taken as loose files, and ingest refuses what is not DICOM.

use std::io::Read;
use std::path::Path;

use dicom_dictionary_std::tags;

/// One file found in the input, with its bytes and a name for messages (its path
/// inside the folder or zip, never anything outside it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// Where it came from, relative (e.g. `DICOM/ST000/SE000/IM000` or `study.zip/IM1`).
    pub name: String,
    /// The original bytes, unchanged.
    pub bytes: Vec<u8>,
}

/// Limits on what one upload or import may unpack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Total bytes of all unpacked files.
    pub max_total_bytes: u64,
    /// Number of files (and zip entries).
    pub max_files: usize,
    /// Zips inside zips: 0 refuses any nested zip, 1 allows a zip inside the zip, ...
    pub max_zip_depth: u32,
    /// Largest ratio of uncompressed to compressed size of a zip entry (zip bombs).
    pub max_compression_ratio: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_total_bytes: 2 * 1024 * 1024 * 1024,
            max_files: 20_000,
            max_zip_depth: 1,
            max_compression_ratio: 200,
        }
    }
}

/// Why an input was refused as a whole. Individual files refused inside an input are
/// listed in [`UnpackReport::refused`] instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnpackError {
    /// Could not read the path.
    #[error("{0}")]
    Io(String),
    /// The zip is not readable.
    #[error("{0}")]
    BadZip(String),
    /// A limit was exceeded; nothing from this input is taken.
    #[error("{0}")]
    Limit(String),
}

/// What unpacking found: the files to ingest, the ones refused with reasons, and the
/// ones deliberately left out (a DICOMDIR, and the files in its folder it does not
/// reference).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UnpackReport {
    /// Files to ingest.
    pub files: Vec<Unpacked>,
    /// `(name, reason)` of entries refused (unsafe path, missing DICOMDIR reference, ...).
    pub refused: Vec<(String, String)>,
    /// `(name, reason)` of files left out on purpose (a DICOMDIR, the files in its
    /// folder it does not reference).
    pub ignored: Vec<(String, String)>,
    /// The Study Instance UID a DICOMDIR lists a file under, by the file's name (for
    /// the files it references, present or missing): a study with a file missing or
    /// refused is incomplete, and is never attached automatically.
    pub listed_studies: std::collections::BTreeMap<String, String>,
}

/// A file found while walking, before its bytes are read.
struct Found {
    /// Relative path with `/` separators.
    relative: String,
    /// How to get the bytes.
    source: Source,
}

enum Source {
    Disk(std::path::PathBuf),
    Memory(Vec<u8>),
}

struct Budget<'a> {
    limits: &'a Limits,
    files: usize,
    bytes: u64,
}

impl Budget<'_> {
    fn take_file(&mut self) -> Result<(), UnpackError> {
        self.files += 1;
        if self.files > self.limits.max_files {
            return Err(UnpackError::Limit(format!(
                "more than {} files: split the upload or import it from a folder in parts",
                self.limits.max_files
            )));
        }
        Ok(())
    }

    fn take_bytes(&mut self, n: u64) -> Result<(), UnpackError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_total_bytes {
            return Err(UnpackError::Limit(format!(
                "more than {} MiB in total",
                self.limits.max_total_bytes / (1024 * 1024)
            )));
        }
        Ok(())
    }
}

fn is_zip(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")
}

fn is_dicomdir_name(relative: &str) -> bool {
    relative
        .rsplit('/')
        .next()
        .is_some_and(|base| base.eq_ignore_ascii_case("DICOMDIR"))
}

/// Unpacks a file (a DICOM file, a zip, a DICOMDIR) or a folder.
pub fn unpack_path(path: &Path, limits: &Limits) -> Result<UnpackReport, UnpackError> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", path.display())))?;
    let mut budget = Budget {
        limits,
        files: 0,
        bytes: 0,
    };
    let mut report = UnpackReport::default();
    if meta.is_dir() {
        let mut found = Vec::new();
        walk(path, "", &mut found, &mut report, &mut budget, 0)?;
        select(found, &mut report, &mut budget, 0)?;
        return Ok(report);
    }
    let target = if meta.file_type().is_symlink() {
        // A symlink named on the command line is the user's choice; inside folders they are refused.
        std::fs::metadata(path)
            .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", path.display())))?
    } else {
        meta
    };
    if !target.is_file() {
        return Err(UnpackError::Io(format!(
            "{} is neither a file nor a folder",
            path.display()
        )));
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    if is_dicomdir_name(&name) {
        // A DICOMDIR names files relative to its own folder: read that folder as a CD.
        let folder = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        return unpack_path(folder, limits);
    }
    budget.take_file()?;
    budget.take_bytes(target.len())?;
    let bytes = std::fs::read(path)
        .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", path.display())))?;
    if is_zip(&bytes) {
        budget.files -= 1;
        budget.bytes = budget.bytes.saturating_sub(bytes.len() as u64);
        let mut found = Vec::new();
        read_zip(&bytes, &name, &mut found, &mut report, &mut budget, 0)?;
        select(found, &mut report, &mut budget, 0)?;
        return Ok(report);
    }
    report.files.push(Unpacked { name, bytes });
    Ok(report)
}

/// Unpacks zip bytes (an upload).
pub fn unpack_zip(bytes: &[u8], limits: &Limits) -> Result<UnpackReport, UnpackError> {
    let mut budget = Budget {
        limits,
        files: 0,
        bytes: 0,
    };
    let mut report = UnpackReport::default();
    let mut found = Vec::new();
    read_zip(bytes, "", &mut found, &mut report, &mut budget, 0)?;
    select(found, &mut report, &mut budget, 0)?;
    Ok(report)
}

/// Unpacks files that arrived together — a folder a browser uploaded, named by their
/// paths inside it (`CD/DICOM/IM0001`): DICOMDIR-aware like [`unpack_path`] on a
/// folder, zips among them opened, unsafe names refused.
pub fn unpack_files(files: Vec<Unpacked>, limits: &Limits) -> Result<UnpackReport, UnpackError> {
    let mut budget = Budget {
        limits,
        files: 0,
        bytes: 0,
    };
    let mut report = UnpackReport::default();
    let mut found = Vec::new();
    for f in files {
        if let Some(why) = unsafe_name(&f.name) {
            report.refused.push((f.name, format!("refused: {why}")));
            continue;
        }
        if is_zip(&f.bytes) {
            read_zip(&f.bytes, &f.name, &mut found, &mut report, &mut budget, 0)?;
            continue;
        }
        budget.take_file()?;
        budget.take_bytes(f.bytes.len() as u64)?;
        found.push(Found {
            relative: f.name,
            source: Source::Memory(f.bytes),
        });
    }
    select(found, &mut report, &mut budget, 0)?;
    Ok(report)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    found: &mut Vec<Found>,
    report: &mut UnpackReport,
    budget: &mut Budget<'_>,
    depth: usize,
) -> Result<(), UnpackError> {
    if depth > 32 {
        return Err(UnpackError::Limit(
            "folders are nested more than 32 deep".to_owned(),
        ));
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| UnpackError::Io(format!("cannot list {}: {e}", dir.display())))?;
    let mut entries: Vec<_> = entries
        .collect::<Result<_, _>>()
        .map_err(|e| UnpackError::Io(format!("cannot list {}: {e}", dir.display())))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let relative = join(prefix, &name);
        let file_type = entry
            .file_type()
            .map_err(|e| UnpackError::Io(format!("cannot read {relative}: {e}")))?;
        if file_type.is_symlink() {
            report.refused.push((
                relative,
                "a symbolic link: not followed (copy the files themselves)".to_owned(),
            ));
        } else if file_type.is_dir() {
            walk(&entry.path(), &relative, found, report, budget, depth + 1)?;
        } else if file_type.is_file() {
            budget.take_file()?;
            found.push(Found {
                relative,
                source: Source::Disk(entry.path()),
            });
        } else {
            report
                .refused
                .push((relative, "not a regular file".to_owned()));
        }
    }
    Ok(())
}

/// Why a zip entry's name is unsafe, if it is: absolute, `..`, a drive letter, a NUL.
fn unsafe_name(raw: &str) -> Option<&'static str> {
    if raw.starts_with('/') || raw.starts_with('\\') {
        return Some("an absolute path");
    }
    if raw.contains('\0') {
        return Some("a NUL byte in its name");
    }
    let mut parts = raw.split(['/', '\\']);
    if parts
        .clone()
        .next()
        .is_some_and(|first| first.contains(':'))
    {
        return Some("a drive letter in its path");
    }
    if parts.any(|p| p == "..") {
        return Some("a `..` in its path");
    }
    None
}

fn read_zip(
    bytes: &[u8],
    prefix: &str,
    found: &mut Vec<Found>,
    report: &mut UnpackReport,
    budget: &mut Budget<'_>,
    depth: u32,
) -> Result<(), UnpackError> {
    let label = if prefix.is_empty() { "the zip" } else { prefix };
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| UnpackError::BadZip(format!("{label} cannot be read as a zip: {e}")))?;
    for index in 0..archive.len() {
        let mut entry = match archive.by_index(index) {
            Ok(entry) => entry,
            Err(e) => {
                report.refused.push((
                    join(prefix, &format!("entry {}", index + 1)),
                    format!("cannot be read: {e}"),
                ));
                continue;
            }
        };
        let raw_name = String::from_utf8_lossy(entry.name_raw()).into_owned();
        let relative = join(prefix, raw_name.trim_end_matches('/'));
        if let Some(why) = unsafe_name(&raw_name) {
            report.refused.push((
                relative,
                format!("refused: {why} (zip entries must stay inside the zip)"),
            ));
            continue;
        }
        if entry.is_dir() {
            continue;
        }
        if entry.is_symlink() {
            report.refused.push((
                relative,
                "a symbolic link in the zip: not followed".to_owned(),
            ));
            continue;
        }
        if entry.encrypted() {
            report.refused.push((
                relative,
                "encrypted in the zip: send it unencrypted".to_owned(),
            ));
            continue;
        }
        budget.take_file()?;
        let declared = entry.size();
        let compressed = entry.compressed_size().max(1);
        if declared / compressed > budget.limits.max_compression_ratio {
            return Err(UnpackError::Limit(format!(
                "{relative} expands more than {}-fold: refused as a possible zip bomb",
                budget.limits.max_compression_ratio
            )));
        }
        let room = budget.limits.max_total_bytes.saturating_sub(budget.bytes);
        if declared > room {
            return Err(UnpackError::Limit(format!(
                "the zip holds more than {} MiB in total",
                budget.limits.max_total_bytes / (1024 * 1024)
            )));
        }
        // The declared size can lie: read at most what the ratio and the budget allow.
        let cap = room.min(compressed.saturating_mul(budget.limits.max_compression_ratio));
        let mut data = Vec::with_capacity(
            usize::try_from(declared.min(cap).min(64 * 1024 * 1024)).unwrap_or(0),
        );
        let read = (&mut entry)
            .take(cap.saturating_add(1))
            .read_to_end(&mut data);
        if let Err(e) = read {
            report
                .refused
                .push((relative, format!("cannot be unpacked: {e}")));
            continue;
        }
        if data.len() as u64 > cap {
            return Err(UnpackError::Limit(format!(
                "{relative} expands beyond what its header says (or beyond the size limit): refused as a possible zip bomb"
            )));
        }
        budget.take_bytes(data.len() as u64)?;
        if is_zip(&data) {
            if depth >= budget.limits.max_zip_depth {
                report.refused.push((
                    relative,
                    format!(
                        "a zip inside a zip nested more than {} deep: unpack it first",
                        budget.limits.max_zip_depth
                    ),
                ));
                continue;
            }
            budget.files -= 1;
            budget.bytes = budget.bytes.saturating_sub(data.len() as u64);
            read_zip(&data, &relative, found, report, budget, depth + 1)?;
            continue;
        }
        found.push(Found {
            relative,
            source: Source::Memory(data),
        });
    }
    Ok(())
}

/// A readable DICOMDIR found while unpacking, and the folder it governs.
struct Directory {
    /// Its name (relative path), for messages.
    name: String,
    /// Its folder (`""` at the top): it governs the files under it.
    base: String,
}

impl Directory {
    /// Does this DICOMDIR's folder hold `relative` (at any depth)?
    fn governs(&self, relative: &str) -> bool {
        self.base.is_empty()
            || relative
                .strip_prefix(self.base.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

/// Picks what to ingest from what was found. Each DICOMDIR governs the files under its
/// own folder (a CD copied into a folder, or several CDs side by side): there, the
/// files it references are taken and the rest are left out, each with the reason (a
/// CD's viewer and autorun files). Files outside every DICOMDIR's folder are taken as
/// loose files (zips found in a folder are opened).
fn select(
    found: Vec<Found>,
    report: &mut UnpackReport,
    budget: &mut Budget<'_>,
    depth: u32,
) -> Result<(), UnpackError> {
    let mut directories: Vec<Directory> = Vec::new();
    let mut is_directory = vec![false; found.len()];
    // Where each found file is, by its name without regard to case (file IDs on a CD
    // are upper case; a copied folder may not be).
    let by_name: std::collections::HashMap<String, usize> = found
        .iter()
        .enumerate()
        .map(|(i, f)| (f.relative.to_ascii_lowercase(), i))
        .collect();
    let mut taken = vec![false; found.len()];
    let mut missing: std::collections::HashSet<String> = std::collections::HashSet::new();
    for (index, f) in found.iter().enumerate() {
        if !is_dicomdir_name(&f.relative) {
            continue;
        }
        if let Some(flag) = is_directory.get_mut(index) {
            *flag = true;
        }
        let base = f
            .relative
            .rsplit_once('/')
            .map(|(dir, _)| dir.to_owned())
            .unwrap_or_default();
        let bytes = read_source(f, budget)?;
        let references = match read_dicomdir(&bytes) {
            Ok(references) => references,
            Err(reason) => {
                // An unreadable DICOMDIR: its folder's files are taken as they are.
                report.refused.push((
                    f.relative.clone(),
                    format!(
                        "the DICOMDIR cannot be read ({reason}); the other files in its folder were taken as they are"
                    ),
                ));
                continue;
            }
        };
        report.ignored.push((
            f.relative.clone(),
            "the CD's index (DICOMDIR): read for its list of images".to_owned(),
        ));
        for reference in references {
            match reference {
                Err(why) => {
                    report.refused.push((format!("{} record", f.relative), why));
                }
                Ok(Reference { components, study }) => {
                    let relative = join(&base, &components.join("/"));
                    let index = by_name
                        .get(&relative.to_ascii_lowercase())
                        .copied()
                        .filter(|i| {
                            found
                                .get(*i)
                                .is_some_and(|other| !is_dicomdir_name(&other.relative))
                        });
                    let name = match index.and_then(|i| found.get(i).map(|o| (i, o))) {
                        Some((i, other)) => {
                            if let Some(t) = taken.get_mut(i) {
                                *t = true;
                            }
                            other.relative.clone()
                        }
                        None => {
                            if !missing.insert(relative.clone()) {
                                continue;
                            }
                            report.refused.push((
                                relative.clone(),
                                "listed in the DICOMDIR but missing from the disc or folder"
                                    .to_owned(),
                            ));
                            relative
                        }
                    };
                    if let Some(study) = study {
                        report.listed_studies.insert(name, study);
                    }
                }
            }
        }
        directories.push(Directory {
            name: f.relative.clone(),
            base,
        });
    }
    // The nearest DICOMDIR governs a file: the deepest folder first.
    directories.sort_by_key(|d| {
        std::cmp::Reverse(d.base.matches('/').count() + usize::from(!d.base.is_empty()))
    });
    for (i, f) in found.into_iter().enumerate() {
        // A DICOMDIR is an index, never an image (an unreadable one was refused above).
        if is_directory.get(i).copied().unwrap_or(false) {
            continue;
        }
        if taken.get(i).copied().unwrap_or(false) {
            let bytes = read_source(&f, budget)?;
            report.files.push(Unpacked {
                name: f.relative,
                bytes,
            });
            continue;
        }
        if let Some(directory) = directories.iter().find(|d| d.governs(&f.relative)) {
            report.ignored.push((
                f.relative,
                format!(
                    "in the folder of {} but not listed in it: left out as one of the CD's extras (a viewer, autorun files); if it is an image, import it on its own",
                    directory.name
                ),
            ));
            continue;
        }
        let bytes = read_source(&f, budget)?;
        if is_zip(&bytes) && matches!(f.source, Source::Disk(_)) {
            let mut inner = Vec::new();
            read_zip(&bytes, &f.relative, &mut inner, report, budget, depth)?;
            for i in inner {
                if let Source::Memory(bytes) = i.source {
                    report.files.push(Unpacked {
                        name: i.relative,
                        bytes,
                    });
                }
            }
            continue;
        }
        report.files.push(Unpacked {
            name: f.relative,
            bytes,
        });
    }
    Ok(())
}

fn read_source(f: &Found, budget: &mut Budget<'_>) -> Result<Vec<u8>, UnpackError> {
    match &f.source {
        Source::Memory(bytes) => Ok(bytes.clone()),
        Source::Disk(path) => {
            let len = std::fs::metadata(path)
                .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", f.relative)))?
                .len();
            budget.take_bytes(len)?;
            std::fs::read(path)
                .map_err(|e| UnpackError::Io(format!("cannot read {}: {e}", f.relative)))
        }
    }
}

/// A file a DICOMDIR references: its path components, and the Study Instance UID of
/// the study record it sits under (when the DICOMDIR gives one).
struct Reference {
    components: Vec<String>,
    study: Option<String>,
}

/// The files a DICOMDIR references; unsafe file IDs as errors. Records are read in
/// the order they are stored, which is the hierarchy's order (each study record before
/// its series and images), so an image belongs to the last study record before it.
fn read_dicomdir(bytes: &[u8]) -> Result<Vec<Result<Reference, String>>, String> {
    let obj = crate::meta::open(bytes).map_err(|e| e.to_string())?;
    let records = obj
        .get(tags::DIRECTORY_RECORD_SEQUENCE)
        .ok_or_else(|| "it has no directory records".to_owned())?;
    let items = records
        .items()
        .ok_or_else(|| "its directory records are not a sequence".to_owned())?;
    let mut out = Vec::new();
    let mut study: Option<String> = None;
    for item in items {
        let kind = item
            .get(tags::DIRECTORY_RECORD_TYPE)
            .and_then(|e| e.to_str().ok())
            .map(|t| t.trim().to_ascii_uppercase())
            .unwrap_or_default();
        match kind.as_str() {
            "PATIENT" => study = None,
            "STUDY" => {
                study = item
                    .get(tags::STUDY_INSTANCE_UID)
                    .and_then(|e| e.to_str().ok())
                    .map(|u| u.trim_matches(|c: char| c == ' ' || c == '\0').to_owned())
                    .filter(|u| {
                        !u.is_empty()
                            && u.len() <= 64
                            && u.chars().all(|c| c.is_ascii_digit() || c == '.')
                    });
            }
            _ => {}
        }
        let Some(file_id) = item.get(tags::REFERENCED_FILE_ID) else {
            continue;
        };
        let Ok(text) = file_id.to_str() else {
            out.push(Err(
                "a directory record has an unreadable file ID".to_owned()
            ));
            continue;
        };
        let components: Vec<String> = text
            .split('\\')
            .map(|c| {
                c.trim_matches(|ch: char| ch == ' ' || ch == '\0')
                    .to_owned()
            })
            .collect();
        let safe = !components.is_empty()
            && components
                .iter()
                .all(|c| !c.is_empty() && c != "." && c != ".." && !c.contains(['/', ':', '\0']));
        if safe {
            out.push(Ok(Reference {
                components,
                study: study.clone(),
            }));
        } else {
            out.push(Err(format!(
                "a directory record names an unsafe file ID ({}): ignored",
                text.chars()
                    .filter(|c| !c.is_control())
                    .take(80)
                    .collect::<String>()
            )));
        }
    }
    Ok(out)
}
