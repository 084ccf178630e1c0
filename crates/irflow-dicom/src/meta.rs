//! Reading a DICOM Part 10 file's metadata, and wrapping a received dataset as Part 10.
//!
//! Before the file is handed to dicom-rs, [`crate::scan`] walks every element header
//! and refuses any length that reaches past the end of the file (or of its parent), so
//! a hostile length field cannot make the parser allocate gigabytes.

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, OpenFileOptions};

use crate::scan;

/// What irflow indexes about one DICOM instance. Strings are as in the file
/// (trimmed of DICOM padding); missing optional attributes are empty or `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceMeta {
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: String,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: String,
    /// Transfer syntax UID of the file.
    pub transfer_syntax: String,
    /// Patient's Name (0010,0010) as in the file, e.g. `DOE^JOHN`.
    pub patient_name: String,
    /// Patient ID (0010,0020): the MRN at the sending site.
    pub patient_id: String,
    /// Patient's Birth Date (0010,0030).
    pub birth_date: Option<jiff::civil::Date>,
    /// Patient's Sex (0010,0040): `M`, `F` or `O`.
    pub sex: Option<String>,
    /// Study Date (0008,0020).
    pub study_date: Option<jiff::civil::Date>,
    /// Study Description (0008,1030).
    pub study_description: String,
    /// Accession Number (0008,0050).
    pub accession_number: String,
    /// Modality (0008,0060), e.g. `MR`, `CT`.
    pub modality: String,
    /// Body Part Examined (0018,0015), e.g. `LSPINE`.
    pub body_part: String,
    /// Series Description (0008,103E).
    pub series_description: String,
    /// Series Number (0020,0011).
    pub series_number: Option<i64>,
    /// Instance Number (0020,0013).
    pub instance_number: Option<i64>,
    /// Rows (0028,0010), for images.
    pub rows: Option<u32>,
    /// Columns (0028,0011), for images.
    pub columns: Option<u32>,
    /// Number of Frames (0028,0008); 1 for a single-frame image, 0 without pixel data.
    pub frames: u32,
}

/// Why a file is not a DICOM instance irflow can take. The message never contains patient data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DicomError {
    /// Not a DICOM Part 10 file at all (no `DICM` marker after the preamble).
    #[error("not a DICOM file (no DICM marker after the 128-byte preamble)")]
    NotDicom,
    /// A bare DICOM dataset without the Part 10 header (preamble, `DICM`, file meta).
    #[error(
        "a DICOM dataset without the Part 10 file header (no preamble, DICM or file meta \
         information): export it from the sending system as a DICOM file"
    )]
    NoFileMeta,
    /// The file ends before its declared content does.
    #[error("the DICOM file is truncated: {0}")]
    Truncated(String),
    /// The file could not be parsed.
    #[error("the DICOM file is corrupt: {0}")]
    Corrupt(String),
    /// A required attribute is missing or empty.
    #[error("the DICOM file has no {0}")]
    Missing(&'static str),
    /// The transfer syntax is unknown or cannot be read.
    #[error("transfer syntax {0} is not supported")]
    UnsupportedTransferSyntax(String),
    /// Arguments that cannot make a file (e.g. an empty UID).
    #[error("{0}")]
    Invalid(String),
}

/// The largest DICOM file irflow reads (a long multi-frame series can be large, but
/// not this large).
pub const MAX_FILE_BYTES: usize = 2 * 1024 * 1024 * 1024;

/// Parses a Part 10 file into a dicom-rs object, after checking its structure.
pub(crate) fn open(part10: &[u8]) -> Result<DefaultDicomObject, DicomError> {
    open_with(part10, true).map(|(obj, _)| obj)
}

/// Like [`open`]; without `pixels`, stops before the pixel data (which the structural
/// check has already walked), and tells whether there is any.
fn open_with(part10: &[u8], pixels: bool) -> Result<(DefaultDicomObject, bool), DicomError> {
    if part10.len() > MAX_FILE_BYTES {
        return Err(DicomError::Invalid(format!(
            "the file is larger than {} GiB",
            MAX_FILE_BYTES / (1024 * 1024 * 1024)
        )));
    }
    let body = part10_body(part10)?;
    let checked = scan::check_part10(body)?;
    let transfer_syntax = checked.transfer_syntax;
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    use dicom_encoding::TransferSyntaxIndex;
    match registry.get(&transfer_syntax) {
        Some(ts) if !ts.is_unsupported() => {}
        _ => return Err(DicomError::UnsupportedTransferSyntax(transfer_syntax)),
    }
    let options = OpenFileOptions::new().read_preamble(ReadPreamble::Never);
    let options = if pixels {
        options
    } else {
        options.read_until(tags::PIXEL_DATA)
    };
    let obj = options
        .from_reader(body)
        .map_err(|e| classify_read_error(&e.to_string()))?;
    Ok((obj, checked.has_pixels))
}

/// The file from its `DICM` marker on: after a 128-byte preamble, or at the start
/// (some writers leave the preamble out).
fn part10_body(part10: &[u8]) -> Result<&[u8], DicomError> {
    if part10.get(128..132) == Some(b"DICM".as_slice()) {
        Ok(part10.get(128..).unwrap_or_default())
    } else if part10.get(0..4) == Some(b"DICM".as_slice()) {
        Ok(part10)
    } else if looks_like_bare_dataset(part10) {
        Err(DicomError::NoFileMeta)
    } else {
        Err(DicomError::NotDicom)
    }
}

/// Starts with a group 0008 element (implicit or explicit VR, either byte order), as
/// a dataset written without its file header does.
fn looks_like_bare_dataset(bytes: &[u8]) -> bool {
    match bytes.get(0..4) {
        Some([0x08, 0x00, _, 0x00] | [0x00, 0x08, 0x00, _]) => bytes.len() > 8,
        _ => false,
    }
}

fn classify_read_error(message: &str) -> DicomError {
    // dicom-rs messages name tags and offsets, never values: safe to pass on, shortened.
    let short: String = message.chars().take(200).collect();
    let lower = message.to_ascii_lowercase();
    if lower.contains("eof") || lower.contains("end of file") || lower.contains("fill whole buffer")
    {
        DicomError::Truncated(short)
    } else {
        DicomError::Corrupt(short)
    }
}

/// Does this look like DICOM (a `DICM` marker, with or without its preamble, or a bare
/// dataset), whether or not it can be read?
pub fn looks_like_dicom(bytes: &[u8]) -> bool {
    matches!(part10_body(bytes), Ok(_) | Err(DicomError::NoFileMeta))
}

/// The Study Instance UID that a file which cannot be read whole seems to carry: for
/// a file that looks like DICOM, the first (0020,000D) element in its first 4 MiB
/// (explicit or implicit VR, little or big endian) whose value is a well-formed UID.
/// A hint only — to keep a study with a broken file from being attached
/// automatically — never used to index anything.
pub fn study_uid_hint(bytes: &[u8]) -> Option<String> {
    if !looks_like_dicom(bytes) {
        return None;
    }
    let window = bytes.get(..bytes.len().min(4 * 1024 * 1024))?;
    let value_at = |start: usize, len: usize| -> Option<String> {
        if !(1..=66).contains(&len) {
            return None;
        }
        let raw = window.get(start..start.checked_add(len)?)?;
        let text = std::str::from_utf8(raw).ok()?;
        let uid = text.trim_end_matches(['\0', ' ']);
        let well_formed = !uid.is_empty()
            && uid.len() <= 64
            && !uid.starts_with('.')
            && uid.chars().all(|c| c.is_ascii_digit() || c == '.');
        well_formed.then(|| uid.to_owned())
    };
    for (at, tag) in window.windows(4).enumerate() {
        let big = match tag {
            [0x20, 0x00, 0x0D, 0x00] => false,
            [0x00, 0x20, 0x00, 0x0D] => true,
            _ => continue,
        };
        let Some(header) = window.get(at + 4..at + 8) else {
            continue;
        };
        let found = if header.get(..2) == Some(b"UI".as_slice()) {
            let len = if big {
                u16::from_be_bytes([header[2], header[3]])
            } else {
                u16::from_le_bytes([header[2], header[3]])
            };
            value_at(at + 8, usize::from(len))
        } else if !big {
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
            value_at(at + 8, usize::try_from(len).ok()?)
        } else {
            None
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Reads the metadata of a DICOM Part 10 file (preamble, `DICM`, file meta group, dataset).
///
/// The whole file's structure is checked (a truncated or inconsistent file is
/// refused), but the pixel data is not copied: this is the fast path of ingest.
pub fn read_meta(part10: &[u8]) -> Result<InstanceMeta, DicomError> {
    let (obj, has_pixels) = open_with(part10, false)?;
    meta_of(&obj, has_pixels)
}

fn meta_of(obj: &DefaultDicomObject, has_pixels: bool) -> Result<InstanceMeta, DicomError> {
    let file_meta = obj.meta();
    let sop_instance_uid = uid(obj, tags::SOP_INSTANCE_UID)
        .or_else(|| non_empty(trim(file_meta.media_storage_sop_instance_uid())))
        .ok_or(DicomError::Missing("SOP Instance UID (0008,0018)"))?;
    let sop_class_uid = uid(obj, tags::SOP_CLASS_UID)
        .or_else(|| non_empty(trim(file_meta.media_storage_sop_class_uid())))
        .ok_or(DicomError::Missing("SOP Class UID (0008,0016)"))?;
    let study_instance_uid = uid(obj, tags::STUDY_INSTANCE_UID)
        .ok_or(DicomError::Missing("Study Instance UID (0020,000D)"))?;
    let series_instance_uid = uid(obj, tags::SERIES_INSTANCE_UID)
        .ok_or(DicomError::Missing("Series Instance UID (0020,000E)"))?;
    let frames = if has_pixels {
        integer(obj, tags::NUMBER_OF_FRAMES)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    } else {
        0
    };
    Ok(InstanceMeta {
        sop_instance_uid,
        sop_class_uid,
        study_instance_uid,
        series_instance_uid,
        transfer_syntax: trim(file_meta.transfer_syntax()).to_owned(),
        patient_name: text(obj, tags::PATIENT_NAME),
        patient_id: text(obj, tags::PATIENT_ID),
        birth_date: date(obj, tags::PATIENT_BIRTH_DATE),
        sex: non_empty(text(obj, tags::PATIENT_SEX).to_ascii_uppercase()),
        study_date: date(obj, tags::STUDY_DATE),
        study_description: text(obj, tags::STUDY_DESCRIPTION),
        accession_number: text(obj, tags::ACCESSION_NUMBER),
        modality: text(obj, tags::MODALITY).to_ascii_uppercase(),
        body_part: text(obj, tags::BODY_PART_EXAMINED).to_ascii_uppercase(),
        series_description: text(obj, tags::SERIES_DESCRIPTION),
        series_number: integer(obj, tags::SERIES_NUMBER),
        instance_number: integer(obj, tags::INSTANCE_NUMBER),
        rows: integer(obj, tags::ROWS).and_then(|n| u32::try_from(n).ok()),
        columns: integer(obj, tags::COLUMNS).and_then(|n| u32::try_from(n).ok()),
        frames,
    })
}

fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
}

fn non_empty(s: impl Into<String>) -> Option<String> {
    let s = s.into();
    (!s.is_empty()).then_some(s)
}

/// A text attribute, trimmed; empty when absent or unreadable. Only the first value
/// of a multi-valued attribute; control characters are dropped.
fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    let Some(element) = obj.get(tag) else {
        return String::new();
    };
    let Ok(value) = element.to_str() else {
        return String::new();
    };
    let first = value.split('\\').next().unwrap_or_default();
    let cleaned: String = trim(first).chars().filter(|c| !c.is_control()).collect();
    // Long strings are at most 64 characters in DICOM; anything far beyond is not a name.
    cleaned.chars().take(256).collect()
}

fn uid(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<String> {
    let value = text(obj, tag);
    let valid = !value.is_empty()
        && value.len() <= 64
        && value.chars().all(|c| c.is_ascii_digit() || c == '.');
    if valid {
        Some(value)
    } else if value.is_empty() {
        None
    } else {
        // Some writers put letters or spaces in UIDs; keep what is printable, bounded.
        let printable: String = value
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(128)
            .collect();
        non_empty(printable)
    }
}

fn integer(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    let element = obj.get(tag)?;
    if let Ok(n) = element.to_int::<i64>() {
        return Some(n);
    }
    let s = element.to_str().ok()?;
    let first = s.split('\\').next()?;
    let t = trim(first);
    t.parse::<i64>().ok().or_else(|| {
        t.parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(|f| f as i64)
    })
}

/// A DA value `YYYYMMDD` (or the old `YYYY.MM.DD`); `None` when absent or not a real date.
fn date(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<jiff::civil::Date> {
    parse_da(&text(obj, tag))
}

pub(crate) fn parse_da(s: &str) -> Option<jiff::civil::Date> {
    let digits: String = s.chars().filter(|c| *c != '.' && *c != '-').collect();
    if digits.len() != 8 || !digits.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let year: i16 = digits.get(0..4)?.parse().ok()?;
    let month: i8 = digits.get(4..6)?.parse().ok()?;
    let day: i8 = digits.get(6..8)?.parse().ok()?;
    if year < 1850 {
        return None;
    }
    jiff::civil::Date::new(year, month, day).ok()
}

/// Wraps a dataset received over the network (encoded in `transfer_syntax`) in a
/// 128-byte preamble, `DICM` and a file meta group, making a Part 10 file. The dataset
/// bytes are copied unchanged.
pub fn to_part10(
    dataset: &[u8],
    transfer_syntax: &str,
    sop_class: &str,
    sop_instance: &str,
) -> Result<Vec<u8>, DicomError> {
    let clean = |s: &str| trim(s).to_owned();
    let (ts, class, instance) = (
        clean(transfer_syntax),
        clean(sop_class),
        clean(sop_instance),
    );
    for (what, value) in [
        ("transfer syntax", &ts),
        ("SOP class", &class),
        ("SOP instance", &instance),
    ] {
        if value.is_empty()
            || value.len() > 64
            || !value.chars().all(|c| c.is_ascii_digit() || c == '.')
        {
            return Err(DicomError::Invalid(format!(
                "the {what} UID is not a valid UID"
            )));
        }
    }
    let meta = dicom_object::meta::FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(class)
        .media_storage_sop_instance_uid(instance)
        .transfer_syntax(ts)
        .implementation_class_uid(IMPLEMENTATION_CLASS_UID)
        .implementation_version_name(IMPLEMENTATION_VERSION_NAME)
        .build()
        .map_err(|e| DicomError::Invalid(format!("cannot make a file meta group: {e}")))?;
    let mut out = Vec::with_capacity(dataset.len() + 512);
    out.extend_from_slice(&[0u8; 128]);
    out.extend_from_slice(b"DICM");
    meta.write(&mut out)
        .map_err(|e| DicomError::Invalid(format!("cannot write the file meta group: {e}")))?;
    out.extend_from_slice(dataset);
    Ok(out)
}

/// irflow's implementation class UID in files it writes (a UUID-derived 2.25 UID).
pub const IMPLEMENTATION_CLASS_UID: &str = "2.25.166812206398226370118437524712760361421";
/// irflow's implementation version name in files it writes.
pub const IMPLEMENTATION_VERSION_NAME: &str = "IRFLOW_01";
