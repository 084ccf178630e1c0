//! Synthetic DICOM for tests: small Part 10 files (explicit VR little endian, 16-bit
//! MONOCHROME2) written byte by byte, so tests depend on no DICOM library of ours,
//! and zips of them.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;

/// MR Image Storage.
pub const MR_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.4";
/// CT Image Storage.
pub const CT_IMAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// Explicit VR little endian.
pub const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// The patient and study a synthetic series describes.
#[derive(Debug, Clone)]
pub struct Study {
    /// `FAMILY^GIVEN`.
    pub patient_name: String,
    /// Patient ID (the sending site's MRN).
    pub patient_id: String,
    /// `YYYYMMDD`.
    pub birth_date: String,
    /// `M`, `F`, `O`.
    pub sex: String,
    /// `YYYYMMDD`.
    pub study_date: String,
    /// Study description.
    pub description: String,
    /// `MR` or `CT`.
    pub modality: String,
    /// Body Part Examined (`LSPINE`).
    pub body_part: String,
    /// A UID root unique to this study (`2.25.<random>`).
    pub uid_root: String,
}

impl Study {
    /// A study with fresh UIDs.
    pub fn new(
        patient_name: &str,
        patient_id: &str,
        birth_date: jiff::civil::Date,
        study_date: jiff::civil::Date,
    ) -> Self {
        Self {
            patient_name: patient_name.to_owned(),
            patient_id: patient_id.to_owned(),
            birth_date: birth_date.strftime("%Y%m%d").to_string(),
            sex: "F".to_owned(),
            study_date: study_date.strftime("%Y%m%d").to_string(),
            description: "MRI L-SPINE W/O".to_owned(),
            modality: "MR".to_owned(),
            body_part: "LSPINE".to_owned(),
            uid_root: fresh_root(),
        }
    }

    pub fn study_uid(&self) -> String {
        format!("{}.1", self.uid_root)
    }

    pub fn series_uid(&self, series: u32) -> String {
        format!("{}.2.{series}", self.uid_root)
    }

    pub fn instance_uid(&self, series: u32, instance: u32) -> String {
        format!("{}.3.{series}.{instance}", self.uid_root)
    }

    /// One slice (`rows` x `cols`) of a series, as a Part 10 file.
    pub fn slice(&self, series: u32, instance: u32, rows: u16, cols: u16) -> Vec<u8> {
        let sop_class = if self.modality == "CT" {
            CT_IMAGE
        } else {
            MR_IMAGE
        };
        let sop = self.instance_uid(series, instance);
        let mut ds = Vec::new();
        let mut el = |tag: (u16, u16), vr: &str, value: &[u8]| element(&mut ds, tag, vr, value);
        el((0x0008, 0x0016), "UI", sop_class.as_bytes());
        el((0x0008, 0x0018), "UI", sop.as_bytes());
        el((0x0008, 0x0020), "DA", self.study_date.as_bytes());
        el((0x0008, 0x0050), "SH", b"ACC0001");
        el((0x0008, 0x0060), "CS", self.modality.as_bytes());
        el((0x0008, 0x1030), "LO", self.description.as_bytes());
        el(
            (0x0008, 0x103E),
            "LO",
            format!("SAG T2 {}", series).as_bytes(),
        );
        el((0x0010, 0x0010), "PN", self.patient_name.as_bytes());
        el((0x0010, 0x0020), "LO", self.patient_id.as_bytes());
        el((0x0010, 0x0030), "DA", self.birth_date.as_bytes());
        el((0x0010, 0x0040), "CS", self.sex.as_bytes());
        el((0x0018, 0x0015), "CS", self.body_part.as_bytes());
        el((0x0020, 0x000D), "UI", self.study_uid().as_bytes());
        el((0x0020, 0x000E), "UI", self.series_uid(series).as_bytes());
        el((0x0020, 0x0011), "IS", series.to_string().as_bytes());
        el((0x0020, 0x0013), "IS", instance.to_string().as_bytes());
        el((0x0028, 0x0002), "US", &1u16.to_le_bytes());
        el((0x0028, 0x0004), "CS", b"MONOCHROME2");
        el((0x0028, 0x0010), "US", &rows.to_le_bytes());
        el((0x0028, 0x0011), "US", &cols.to_le_bytes());
        el((0x0028, 0x0100), "US", &16u16.to_le_bytes());
        el((0x0028, 0x0101), "US", &12u16.to_le_bytes());
        el((0x0028, 0x0102), "US", &11u16.to_le_bytes());
        el((0x0028, 0x0103), "US", &0u16.to_le_bytes());
        el((0x7FE0, 0x0010), "OW", &pixels(rows, cols, instance));
        part10(sop_class, &sop, EXPLICIT_LE, &ds)
    }

    /// A series of `n` slices: `(file name, bytes)`.
    pub fn series(&self, series: u32, n: u32, rows: u16, cols: u16) -> Vec<(String, Vec<u8>)> {
        (1..=n)
            .map(|i| {
                (
                    format!("DICOM/S{series:03}/IM{i:04}"),
                    self.slice(series, i, rows, cols),
                )
            })
            .collect()
    }
}

fn fresh_root() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(1);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "2.25.{}{:06}{:04}",
        nanos % 1_000_000_000_000,
        std::process::id() % 1_000_000,
        n
    )
}

/// A 16-bit image with a disc whose size depends on the slice (so slices differ).
fn pixels(rows: u16, cols: u16, instance: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(usize::from(rows) * usize::from(cols) * 2);
    let (cy, cx) = (f64::from(rows) / 2.0, f64::from(cols) / 2.0);
    let radius = f64::from(rows.min(cols)) * (0.15 + 0.03 * f64::from(instance % 8));
    for y in 0..rows {
        for x in 0..cols {
            let d = ((f64::from(y) - cy).powi(2) + (f64::from(x) - cx).powi(2)).sqrt();
            let v: u16 = if d < radius {
                3000
            } else {
                (u32::from(x) * 1000 / u32::from(cols.max(1))) as u16
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

fn padded(vr: &str, value: &[u8]) -> Vec<u8> {
    let mut v = value.to_vec();
    if v.len() % 2 == 1 {
        v.push(if vr == "UI" || vr == "OB" { 0 } else { b' ' });
    }
    v
}

/// Appends one explicit-VR little-endian element.
pub fn element(out: &mut Vec<u8>, tag: (u16, u16), vr: &str, value: &[u8]) {
    let value = padded(vr, value);
    out.extend_from_slice(&tag.0.to_le_bytes());
    out.extend_from_slice(&tag.1.to_le_bytes());
    out.extend_from_slice(vr.as_bytes());
    if matches!(vr, "OB" | "OW" | "OF" | "SQ" | "UT" | "UN") {
        out.extend_from_slice(&[0, 0]);
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    } else {
        out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    }
    out.extend_from_slice(&value);
}

/// A preamble, `DICM`, the file meta group, then the dataset.
pub fn part10(
    sop_class: &str,
    sop_instance: &str,
    transfer_syntax: &str,
    dataset: &[u8],
) -> Vec<u8> {
    let mut meta = Vec::new();
    element(&mut meta, (0x0002, 0x0001), "OB", &[0, 1]);
    element(&mut meta, (0x0002, 0x0002), "UI", sop_class.as_bytes());
    element(&mut meta, (0x0002, 0x0003), "UI", sop_instance.as_bytes());
    element(
        &mut meta,
        (0x0002, 0x0010),
        "UI",
        transfer_syntax.as_bytes(),
    );
    element(
        &mut meta,
        (0x0002, 0x0012),
        "UI",
        b"1.2.826.0.1.3680043.10.1",
    );
    let mut out = vec![0u8; 128];
    out.extend_from_slice(b"DICM");
    element(
        &mut out,
        (0x0002, 0x0000),
        "UL",
        &(meta.len() as u32).to_le_bytes(),
    );
    out.extend_from_slice(&meta);
    out.extend_from_slice(dataset);
    out
}

/// A zip (deflated) of `(name, bytes)` entries.
pub fn zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            w.start_file(name.as_str(), options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

/// Width and height from a PNG's IHDR, after checking its signature.
pub fn png_size(png: &[u8]) -> (u32, u32) {
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "a PNG signature, got {:?}",
        &png[..png.len().min(16)]
    );
    assert_eq!(&png[12..16], b"IHDR", "IHDR first");
    let w = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let h = u32::from_be_bytes(png[20..24].try_into().unwrap());
    (w, h)
}
