//! Synthetic DICOM files: a small spine MRI (or CT) made in memory, for the demo
//! seeder and for tests. The pixels show a recognisable pattern — a bright "spinal
//! canal" column with vertebral blocks that shift from slice to slice and the slice
//! number in the corner as bars — so a rendered thumbnail can be recognised.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

/// What to make.
#[derive(Debug, Clone)]
pub struct SyntheticStudy {
    /// Patient's Name, DICOM style (`DOE^JANE`).
    pub patient_name: String,
    /// Patient ID (the sending site's MRN).
    pub patient_id: String,
    /// Birth date `YYYYMMDD` (empty: absent).
    pub birth_date: String,
    /// `M`, `F`, `O` or empty.
    pub sex: String,
    /// Study date `YYYYMMDD` (empty: absent).
    pub study_date: String,
    /// Study Description.
    pub description: String,
    /// `MR` or `CT`.
    pub modality: String,
    /// Body Part Examined (`LSPINE`).
    pub body_part: String,
    /// A number that makes the UIDs unique (same seed, same UIDs).
    pub seed: u64,
    /// Series, each `(description, slices)`.
    pub series: Vec<(String, u32)>,
    /// Rows and columns.
    pub size: u16,
}

impl SyntheticStudy {
    /// A lumbar spine MRI: two series (sagittal and axial T2) of `slices` slices, 64x64.
    pub fn lumbar_mri(patient_name: &str, patient_id: &str, birth_date: &str, seed: u64) -> Self {
        Self {
            patient_name: patient_name.to_owned(),
            patient_id: patient_id.to_owned(),
            birth_date: birth_date.to_owned(),
            sex: "F".to_owned(),
            study_date: "20260301".to_owned(),
            description: "MRI LUMBAR SPINE W/O CONTRAST".to_owned(),
            modality: "MR".to_owned(),
            body_part: "LSPINE".to_owned(),
            seed,
            series: vec![
                ("SAG T2 L-SPINE".to_owned(), 3),
                ("AX T2 L-SPINE".to_owned(), 2),
            ],
            size: 64,
        }
    }

    /// The Study Instance UID the files carry.
    pub fn study_uid(&self) -> String {
        format!("2.25.{}", 1_000_000_000 + self.seed)
    }

    /// The files, as `(name, Part 10 bytes)` in explicit VR little endian.
    pub fn files(&self) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        for (series_index, (series_description, slices)) in self.series.iter().enumerate() {
            let series_number = series_index as u32 + 1;
            let series_uid = format!("{}.{}", self.study_uid(), series_number);
            for slice in 0..*slices {
                let sop_uid = format!("{series_uid}.{}", slice + 1);
                let bytes = self.instance(
                    &series_uid,
                    series_number,
                    series_description,
                    &sop_uid,
                    slice,
                    *slices,
                );
                out.push((
                    format!("SE{series_number:03}/IM{:04}.dcm", slice + 1),
                    bytes,
                ));
            }
        }
        out
    }

    fn instance(
        &self,
        series_uid: &str,
        series_number: u32,
        series_description: &str,
        sop_uid: &str,
        slice: u32,
        slices: u32,
    ) -> Vec<u8> {
        let sop_class = if self.modality == "CT" {
            uids::CT_IMAGE_STORAGE
        } else {
            uids::MR_IMAGE_STORAGE
        };
        let size = self.size.max(8);
        let mut obj = InMemDicomObject::new_empty();
        let mut put = |tag, vr, value: PrimitiveValue| {
            obj.put(DataElement::new(tag, vr, value));
        };
        put(tags::SOP_CLASS_UID, VR::UI, sop_class.into());
        put(tags::SOP_INSTANCE_UID, VR::UI, sop_uid.into());
        put(tags::STUDY_DATE, VR::DA, self.study_date.as_str().into());
        put(
            tags::ACCESSION_NUMBER,
            VR::SH,
            format!("A{}", self.seed).into(),
        );
        put(tags::MODALITY, VR::CS, self.modality.as_str().into());
        put(
            tags::STUDY_DESCRIPTION,
            VR::LO,
            self.description.as_str().into(),
        );
        put(tags::SERIES_DESCRIPTION, VR::LO, series_description.into());
        put(
            tags::PATIENT_NAME,
            VR::PN,
            self.patient_name.as_str().into(),
        );
        put(tags::PATIENT_ID, VR::LO, self.patient_id.as_str().into());
        put(
            tags::PATIENT_BIRTH_DATE,
            VR::DA,
            self.birth_date.as_str().into(),
        );
        put(tags::PATIENT_SEX, VR::CS, self.sex.as_str().into());
        put(
            tags::BODY_PART_EXAMINED,
            VR::CS,
            self.body_part.as_str().into(),
        );
        put(tags::STUDY_INSTANCE_UID, VR::UI, self.study_uid().into());
        put(tags::SERIES_INSTANCE_UID, VR::UI, series_uid.into());
        put(
            tags::SERIES_NUMBER,
            VR::IS,
            series_number.to_string().into(),
        );
        put(
            tags::INSTANCE_NUMBER,
            VR::IS,
            (slice + 1).to_string().into(),
        );
        put(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1u16));
        put(
            tags::PHOTOMETRIC_INTERPRETATION,
            VR::CS,
            "MONOCHROME2".into(),
        );
        put(tags::ROWS, VR::US, PrimitiveValue::from(size));
        put(tags::COLUMNS, VR::US, PrimitiveValue::from(size));
        put(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16u16));
        put(tags::BITS_STORED, VR::US, PrimitiveValue::from(12u16));
        put(tags::HIGH_BIT, VR::US, PrimitiveValue::from(11u16));
        put(
            tags::PIXEL_REPRESENTATION,
            VR::US,
            PrimitiveValue::from(0u16),
        );
        put(tags::WINDOW_CENTER, VR::DS, "1000".into());
        put(tags::WINDOW_WIDTH, VR::DS, "2000".into());
        let pixels = pattern(size, slice, slices);
        put(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into()));
        let meta = FileMetaTableBuilder::new()
            .media_storage_sop_class_uid(sop_class)
            .media_storage_sop_instance_uid(sop_uid)
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .implementation_class_uid(crate::meta::IMPLEMENTATION_CLASS_UID)
            .implementation_version_name(crate::meta::IMPLEMENTATION_VERSION_NAME);
        let mut out = Vec::new();
        // Building and writing an in-memory object with a complete meta table cannot fail;
        // an empty result would be refused by whoever reads it.
        if let Ok(file) = obj.with_meta(meta) {
            let _ = file.write_all(&mut out);
        }
        out
    }
}

/// A sagittal-spine-like picture: dark background, a grey body, a bright vertical
/// canal, vertebral blocks offset by the slice, and `slice + 1` bars top-left.
fn pattern(size: u16, slice: u32, _slices: u32) -> Vec<u16> {
    let n = usize::from(size);
    let mut px = vec![0u16; n * n];
    for y in 0..n {
        for x in 0..n {
            let mut v: u16 = 0;
            let cx = n / 2;
            let dx = x.abs_diff(cx);
            if dx < n * 3 / 8 {
                v = 600;
            }
            // Vertebral bodies: blocks left of the canal, gaps (discs) between them.
            let block = (y + slice as usize * 2) % (n / 6).max(2);
            if x + n / 8 < cx && x + n / 3 > cx && block > 1 {
                v = 1300;
            }
            // The canal (fluid bright on T2).
            if dx < (n / 24).max(1) {
                v = 2000;
            }
            // Slice number as bars in the corner.
            if y < n / 10 && x < n / 3 && (x / 3) < (slice as usize + 1) * 2 && (x / 3) % 2 == 0 {
                v = 4000;
            }
            if let Some(p) = px.get_mut(y * n + x) {
                *p = v;
            }
        }
    }
    px
}
