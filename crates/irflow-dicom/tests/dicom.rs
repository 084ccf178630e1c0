//! irflow-dicom against files it makes and files it is fed broken on purpose.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use irflow_dicom::synth::SyntheticStudy;
use irflow_dicom::{
    DicomError, Limits, Preset, RenderError, UnpackError, read_meta, render_png, to_part10,
    unpack_path, unpack_zip,
};

fn study() -> SyntheticStudy {
    SyntheticStudy::lumbar_mri("DOE^JANE^^^", "EXT-1", "19700102", 7)
}

fn one_file() -> Vec<u8> {
    study().files().remove(0).1
}

fn png_size(png_bytes: &[u8]) -> (u32, u32, png::ColorType) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let reader = decoder.read_info().expect("a PNG");
    let info = reader.info();
    (info.width, info.height, info.color_type)
}

#[test]
fn reads_the_metadata_it_indexes() {
    let meta = read_meta(&one_file()).expect("readable");
    assert_eq!(meta.patient_name, "DOE^JANE^^^");
    assert_eq!(meta.patient_id, "EXT-1");
    assert_eq!(meta.birth_date, Some(jiff::civil::date(1970, 1, 2)));
    assert_eq!(meta.sex.as_deref(), Some("F"));
    assert_eq!(meta.study_date, Some(jiff::civil::date(2026, 3, 1)));
    assert_eq!(meta.modality, "MR");
    assert_eq!(meta.body_part, "LSPINE");
    assert_eq!(meta.study_description, "MRI LUMBAR SPINE W/O CONTRAST");
    assert_eq!(meta.series_description, "SAG T2 L-SPINE");
    assert_eq!(meta.series_number, Some(1));
    assert_eq!(meta.instance_number, Some(1));
    assert_eq!(
        (meta.rows, meta.columns, meta.frames),
        (Some(64), Some(64), 1)
    );
    assert_eq!(meta.transfer_syntax, uids::EXPLICIT_VR_LITTLE_ENDIAN);
    assert_eq!(meta.sop_class_uid, uids::MR_IMAGE_STORAGE);
    assert_eq!(meta.study_instance_uid, study().study_uid());
    assert!(
        meta.series_instance_uid
            .starts_with(&meta.study_instance_uid)
    );
}

#[test]
fn missing_optional_attributes_are_empty_not_errors() {
    let mut s = study();
    s.birth_date = String::new();
    s.sex = String::new();
    s.study_date = "2026".to_owned(); // not a date
    s.body_part = String::new();
    let meta = read_meta(&s.files().remove(0).1).expect("readable");
    assert_eq!(meta.birth_date, None);
    assert_eq!(meta.sex, None);
    assert_eq!(meta.study_date, None);
    assert_eq!(meta.body_part, "");
}

#[test]
fn a_file_without_a_study_uid_is_refused_by_name() {
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::SOP_CLASS_UID,
        VR::UI,
        PrimitiveValue::from(uids::MR_IMAGE_STORAGE),
    ));
    obj.put(DataElement::new(
        tags::SOP_INSTANCE_UID,
        VR::UI,
        PrimitiveValue::from("1.2.3.4"),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(uids::MR_IMAGE_STORAGE)
                .media_storage_sop_instance_uid("1.2.3.4")
                .transfer_syntax(uids::IMPLICIT_VR_LITTLE_ENDIAN),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    assert_eq!(
        read_meta(&bytes),
        Err(DicomError::Missing("Study Instance UID (0020,000D)"))
    );
}

#[test]
fn non_dicom_is_refused() {
    assert_eq!(read_meta(b"hello, world"), Err(DicomError::NotDicom));
    assert_eq!(read_meta(&[]), Err(DicomError::NotDicom));
    assert_eq!(read_meta(&[0u8; 4096]), Err(DicomError::NotDicom));
    let png = render_png(&one_file(), 0, Preset::Default, 0).unwrap();
    assert_eq!(read_meta(&png), Err(DicomError::NotDicom));
}

#[test]
fn to_part10_wraps_a_received_dataset_unchanged() {
    let file = one_file();
    // The dataset is what follows the file meta group.
    let meta_group_length = u32::from_le_bytes(file[140..144].try_into().unwrap()) as usize;
    let dataset = &file[144 + meta_group_length..];
    let meta = read_meta(&file).unwrap();
    let wrapped = to_part10(
        dataset,
        &meta.transfer_syntax,
        &meta.sop_class_uid,
        &meta.sop_instance_uid,
    )
    .expect("wraps");
    assert!(wrapped.ends_with(dataset));
    assert_eq!(&wrapped[128..132], b"DICM");
    assert_eq!(read_meta(&wrapped).unwrap(), meta);
    assert!(to_part10(dataset, "", "1.2", "1.3").is_err());
    assert!(to_part10(dataset, "1.2.840.10008.1.2.1", "1.2", "not a uid").is_err());
}

#[test]
fn renders_a_png_with_presets_and_downscaling() {
    let file = one_file();
    for preset in Preset::ALL {
        let png = render_png(&file, 0, preset, 0).expect("renders");
        assert_eq!(png_size(&png), (64, 64, png::ColorType::Grayscale));
    }
    let small = render_png(&file, 0, Preset::MrT2, 32).unwrap();
    assert_eq!(png_size(&small).0, 32);
    assert_eq!(
        render_png(&file, 1, Preset::Default, 0),
        Err(RenderError::NoSuchFrame {
            frame: 1,
            frames: 1
        })
    );
    // Different slices render differently (the pattern moves).
    let files = study().files();
    let a = render_png(&files[0].1, 0, Preset::Default, 0).unwrap();
    let b = render_png(&files[1].1, 0, Preset::Default, 0).unwrap();
    assert_ne!(a, b);
}

#[test]
fn an_instance_without_pixels_says_so() {
    let mut obj = InMemDicomObject::new_empty();
    for (tag, value) in [
        (tags::SOP_CLASS_UID, "1.2.840.10008.5.1.4.1.1.88.11"),
        (tags::SOP_INSTANCE_UID, "1.2.3.4.5"),
        (tags::STUDY_INSTANCE_UID, "1.2.3"),
        (tags::SERIES_INSTANCE_UID, "1.2.3.4"),
    ] {
        obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(value)));
    }
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid("1.2.840.10008.5.1.4.1.1.88.11")
                .media_storage_sop_instance_uid("1.2.3.4.5")
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    assert_eq!(read_meta(&bytes).unwrap().frames, 0);
    assert_eq!(
        render_png(&bytes, 0, Preset::Default, 0),
        Err(RenderError::NoPixelData)
    );
}

#[test]
fn truncated_files_are_refused_and_never_panic() {
    let file = one_file();
    let mut refused = 0;
    for cut in (0..file.len())
        .step_by(97)
        .chain([file.len() - 1, file.len() - 2, 133, 200])
    {
        let piece = &file[..cut];
        match read_meta(piece) {
            Ok(_) => {}
            Err(_) => refused += 1,
        }
        let _ = render_png(piece, 0, Preset::Default, 64);
    }
    assert!(refused > 0);
    // Cut inside the pixel data: the metadata is readable only if the file is whole.
    let cut = &file[..file.len() - 100];
    assert!(
        matches!(read_meta(cut), Err(DicomError::Truncated(_))),
        "{:?}",
        read_meta(cut)
    );
}

#[test]
fn a_broken_file_still_tells_its_study_when_it_can() {
    let synthetic = study();
    let mut truncated = one_file();
    truncated.truncate(truncated.len() / 2);
    assert!(read_meta(&truncated).is_err());
    assert_eq!(
        irflow_dicom::study_uid_hint(&truncated),
        Some(synthetic.study_uid())
    );
    assert!(irflow_dicom::looks_like_dicom(&truncated));
    assert_eq!(irflow_dicom::study_uid_hint(b"hello, not DICOM"), None);
    assert!(!irflow_dicom::looks_like_dicom(b"hello, not DICOM"));
    // Cut right after the tag: no value, no hint, no panic.
    let whole = one_file();
    let at = whole
        .windows(4)
        .position(|w| w == [0x20, 0x00, 0x0D, 0x00])
        .unwrap();
    for cut in at..at + 12 {
        let _ = irflow_dicom::study_uid_hint(&whole[..cut]);
    }
}

#[test]
fn flipped_bytes_never_panic() {
    let file = one_file();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    // The header part (before the pixel data) is where parsing happens.
    let header_end = file.len() - 64 * 64 * 2;
    for _ in 0..800 {
        let mut copy = file.clone();
        for _ in 0..(1 + next() % 4) {
            let at = (next() as usize) % header_end;
            copy[at] ^= 1 << (next() % 8);
        }
        if next() % 3 == 0 {
            let at = 132 + (next() as usize) % (header_end - 136);
            copy[at..at + 4].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0x7F]);
        }
        let _ = read_meta(&copy);
        let _ = render_png(&copy, 0, Preset::Default, 32);
    }
}

#[test]
fn a_huge_length_claim_is_refused_without_allocating_it() {
    let mut file = one_file();
    // Make the pixel data's length claim 4 GiB - 2.
    let needle = [0xE0, 0x7F, 0x10, 0x00, b'O', b'W', 0, 0];
    let at = file
        .windows(8)
        .position(|w| w == needle)
        .expect("pixel data header");
    file[at + 8..at + 12].copy_from_slice(&0xFFFF_FFFEu32.to_le_bytes());
    assert!(matches!(read_meta(&file), Err(DicomError::Truncated(_))));
}

fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    use std::io::Write;
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut zip = zip::ZipWriter::new(&mut out);
        for (name, bytes) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }
    out.into_inner()
}

#[test]
fn zips_unpack_and_unsafe_entries_are_refused() {
    let files = study().files();
    let zip = zip_of(&[
        ("study/IM1", &files[0].1),
        ("study/IM2", &files[1].1),
        ("../evil", &files[2].1),
        ("/etc/passwd", b"root"),
        ("a/../../b", b"x"),
        ("C:/windows", b"x"),
    ]);
    let report = unpack_zip(&zip, &Limits::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["study/IM1", "study/IM2"]);
    assert_eq!(report.files[0].bytes, files[0].1);
    assert_eq!(report.refused.len(), 4, "{:?}", report.refused);
    assert!(
        report
            .refused
            .iter()
            .any(|(n, why)| n == "../evil" && why.contains(".."))
    );
    assert!(
        report
            .refused
            .iter()
            .any(|(n, why)| n == "/etc/passwd" && why.contains("absolute"))
    );
}

#[test]
fn zip_limits_refuse_the_whole_zip() {
    let files = study().files();
    let entries: Vec<(String, Vec<u8>)> = files.clone();
    let refs: Vec<(&str, &[u8])> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    let zip = zip_of(&refs);
    let few = Limits {
        max_files: 2,
        ..Limits::default()
    };
    assert!(
        matches!(unpack_zip(&zip, &few), Err(UnpackError::Limit(m)) if m.contains("more than 2 files"))
    );
    let small = Limits {
        max_total_bytes: 10_000,
        ..Limits::default()
    };
    assert!(matches!(
        unpack_zip(&zip, &small),
        Err(UnpackError::Limit(_))
    ));
    // A bomb: 50 MB of zeros compresses ~1000-fold.
    let zeros = vec![0u8; 50 * 1024 * 1024];
    let bomb = zip_of(&[("zeros", &zeros)]);
    assert!(
        matches!(unpack_zip(&bomb, &Limits::default()), Err(UnpackError::Limit(m)) if m.contains("zip bomb"))
    );
    // Nested zips: one level allowed by default, two refused.
    let inner = zip_of(&[("IM1", &files[0].1)]);
    let middle = zip_of(&[("inner.zip", &inner)]);
    let outer = zip_of(&[("middle.zip", &middle)]);
    let report = unpack_zip(&middle, &Limits::default()).unwrap();
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].name, "inner.zip/IM1");
    let report = unpack_zip(&outer, &Limits::default()).unwrap();
    assert!(report.files.is_empty());
    assert!(
        report.refused[0].1.contains("zip inside a zip"),
        "{:?}",
        report.refused
    );
    assert!(matches!(
        unpack_zip(b"PK\x03\x04 not really", &Limits::default()),
        Err(UnpackError::BadZip(_))
    ));
}

/// A DICOMDIR referencing `ids` (each a list of path components).
fn dicomdir(ids: &[&[&str]]) -> Vec<u8> {
    dicomdir_of_study(None, ids)
}

/// A DICOMDIR with a study record (when `study_uid` is given) above image records
/// referencing `ids`.
fn dicomdir_of_study(study_uid: Option<&str>, ids: &[&[&str]]) -> Vec<u8> {
    let mut records: Vec<InMemDicomObject> = Vec::new();
    if let Some(uid) = study_uid {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::DIRECTORY_RECORD_TYPE,
            VR::CS,
            PrimitiveValue::from("STUDY"),
        ));
        item.put(DataElement::new(
            tags::STUDY_INSTANCE_UID,
            VR::UI,
            PrimitiveValue::from(uid),
        ));
        records.push(item);
    }
    records.extend(ids.iter().map(|components| {
        let mut item = InMemDicomObject::new_empty();
        item.put(DataElement::new(
            tags::DIRECTORY_RECORD_TYPE,
            VR::CS,
            PrimitiveValue::from("IMAGE"),
        ));
        item.put(DataElement::new(
            tags::REFERENCED_FILE_ID,
            VR::CS,
            PrimitiveValue::Strs(components.iter().map(|c| c.to_string()).collect()),
        ));
        item
    }));
    let mut obj = InMemDicomObject::new_empty();
    obj.put(DataElement::new(
        tags::DIRECTORY_RECORD_SEQUENCE,
        VR::SQ,
        DataSetSequence::from(records),
    ));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .media_storage_sop_class_uid(uids::MEDIA_STORAGE_DIRECTORY_STORAGE)
                .media_storage_sop_instance_uid("1.2.3.99")
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN),
        )
        .unwrap();
    let mut bytes = Vec::new();
    file.write_all(&mut bytes).unwrap();
    bytes
}

#[test]
fn a_cd_folder_is_read_through_its_dicomdir() {
    let dir = tempfile::tempdir().unwrap();
    let files = study().files();
    std::fs::create_dir_all(dir.path().join("DICOM/SE1")).unwrap();
    std::fs::write(dir.path().join("DICOM/SE1/IM1"), &files[0].1).unwrap();
    std::fs::write(dir.path().join("DICOM/SE1/IM2"), &files[1].1).unwrap();
    std::fs::write(dir.path().join("AUTORUN.INF"), b"[autorun]").unwrap();
    std::fs::write(
        dir.path().join("DICOMDIR"),
        dicomdir(&[
            &["DICOM", "SE1", "IM1"],
            &["DICOM", "SE1", "IM2"],
            &["DICOM", "SE1", "IM3"],
            &["..", "secret"],
        ]),
    )
    .unwrap();
    for path in [dir.path().to_path_buf(), dir.path().join("DICOMDIR")] {
        let report = unpack_path(&path, &Limits::default()).unwrap();
        let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["DICOM/SE1/IM1", "DICOM/SE1/IM2"]);
        assert!(
            report
                .refused
                .iter()
                .any(|(n, why)| n == "DICOM/SE1/IM3" && why.contains("missing")),
            "{:?}",
            report.refused
        );
        assert!(
            report.refused.iter().any(|(_, why)| why.contains("unsafe")),
            "{:?}",
            report.refused
        );
        let left_out = |name: &str| report.ignored.iter().find(|(n, _)| n == name);
        assert!(
            left_out("AUTORUN.INF").is_some_and(|(_, why)| why.contains("not listed")),
            "{:?}",
            report.ignored
        );
        assert!(left_out("DICOMDIR").is_some());
    }
    // The same CD zipped.
    let zip = zip_of(&[
        ("CD/DICOMDIR", &dicomdir(&[&["DICOM", "SE1", "IM1"]])),
        ("CD/DICOM/SE1/IM1", &files[0].1),
        ("CD/VIEWER.EXE", b"MZ"),
    ]);
    let report = unpack_zip(&zip, &Limits::default()).unwrap();
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].name, "CD/DICOM/SE1/IM1");
}

#[test]
fn each_dicomdir_governs_only_its_own_folder() {
    let dir = tempfile::tempdir().unwrap();
    let one = SyntheticStudy::lumbar_mri("DOE^JANE", "EXT-1", "19700102", 11).files();
    let two = SyntheticStudy::lumbar_mri("ROE^RICHARD", "EXT-2", "19600304", 12).files();
    let loose = SyntheticStudy::lumbar_mri("POE^EDGAR", "EXT-3", "19500506", 13).files();
    // Two CDs side by side, each with an extra it does not list, and loose files beside them.
    for (cd, files) in [("CD1", &one), ("CD2", &two)] {
        std::fs::create_dir_all(dir.path().join(cd).join("IMAGES")).unwrap();
        std::fs::write(dir.path().join(cd).join("IMAGES/IM1"), &files[0].1).unwrap();
        std::fs::write(dir.path().join(cd).join("IMAGES/IM2"), &files[1].1).unwrap();
        std::fs::write(dir.path().join(cd).join("VIEWER.EXE"), b"MZ").unwrap();
    }
    std::fs::write(
        dir.path().join("CD1/DICOMDIR"),
        dicomdir(&[&["IMAGES", "IM1"], &["IMAGES", "IM2"]]),
    )
    .unwrap();
    // The second CD's DICOMDIR also lists a file that is missing.
    std::fs::write(
        dir.path().join("CD2/DICOMDIR"),
        dicomdir_of_study(
            Some("1.2.3.4.5"),
            &[&["IMAGES", "IM1"], &["IMAGES", "IM2"], &["IMAGES", "IM3"]],
        ),
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("loose/deeper")).unwrap();
    std::fs::write(dir.path().join("loose/a.dcm"), &loose[0].1).unwrap();
    std::fs::write(dir.path().join("loose/deeper/b.dcm"), &loose[1].1).unwrap();
    std::fs::write(dir.path().join("top.dcm"), &loose[2].1).unwrap();
    let report = unpack_path(dir.path(), &Limits::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CD1/IMAGES/IM1",
            "CD1/IMAGES/IM2",
            "CD2/IMAGES/IM1",
            "CD2/IMAGES/IM2",
            "loose/a.dcm",
            "loose/deeper/b.dcm",
            "top.dcm"
        ]
    );
    let mut left_out: Vec<&str> = report.ignored.iter().map(|(n, _)| n.as_str()).collect();
    left_out.sort_unstable();
    assert_eq!(
        left_out,
        [
            "CD1/DICOMDIR",
            "CD1/VIEWER.EXE",
            "CD2/DICOMDIR",
            "CD2/VIEWER.EXE"
        ]
    );
    let (_, why) = report
        .ignored
        .iter()
        .find(|(n, _)| n == "CD2/VIEWER.EXE")
        .unwrap();
    assert!(
        why.contains("CD2/DICOMDIR") && why.contains("not listed"),
        "{why}"
    );
    assert_eq!(
        report.refused,
        [(
            "CD2/IMAGES/IM3".to_owned(),
            "listed in the DICOMDIR but missing from the disc or folder".to_owned()
        )]
    );
    // The DICOMDIR says which study each of its files (present or missing) belongs to.
    assert_eq!(
        report
            .listed_studies
            .get("CD2/IMAGES/IM3")
            .map(String::as_str),
        Some("1.2.3.4.5")
    );
    assert_eq!(
        report
            .listed_studies
            .get("CD2/IMAGES/IM1")
            .map(String::as_str),
        Some("1.2.3.4.5")
    );
    assert!(!report.listed_studies.contains_key("CD1/IMAGES/IM1"));

    // A DICOMDIR inside another CD's folder governs its own subtree.
    std::fs::create_dir_all(dir.path().join("CD1/EXTRA")).unwrap();
    std::fs::write(dir.path().join("CD1/EXTRA/IM9"), &loose[0].1).unwrap();
    std::fs::write(dir.path().join("CD1/EXTRA/DICOMDIR"), dicomdir(&[&["IM9"]])).unwrap();
    std::fs::write(dir.path().join("CD1/EXTRA/README"), b"read me").unwrap();
    let report = unpack_path(&dir.path().join("CD1"), &Limits::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["EXTRA/IM9", "IMAGES/IM1", "IMAGES/IM2"]);
    let (_, why) = report
        .ignored
        .iter()
        .find(|(n, _)| n == "EXTRA/README")
        .unwrap();
    assert!(why.contains("EXTRA/DICOMDIR"), "{why}");

    // An unreadable DICOMDIR: its folder's files are taken as they are, and it says so.
    std::fs::write(dir.path().join("CD2/DICOMDIR"), b"not a dicomdir").unwrap();
    let report = unpack_path(&dir.path().join("CD2"), &Limits::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["IMAGES/IM1", "IMAGES/IM2", "VIEWER.EXE"]);
    assert!(
        report
            .refused
            .iter()
            .any(|(n, why)| n == "DICOMDIR" && why.contains("cannot be read"))
    );
}

#[test]
fn folders_walk_and_symlinks_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let files = study().files();
    std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
    std::fs::write(dir.path().join("a/b/one.dcm"), &files[0].1).unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"hello").unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.dcm"), &files[1].1).unwrap();
    std::os::unix::fs::symlink(
        outside.path().join("secret.dcm"),
        dir.path().join("link.dcm"),
    )
    .unwrap();
    let report = unpack_path(dir.path(), &Limits::default()).unwrap();
    let names: Vec<&str> = report.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["a/b/one.dcm", "notes.txt"]);
    assert_eq!(report.refused.len(), 1);
    assert!(report.refused[0].1.contains("symbolic link"));
    assert!(matches!(
        unpack_path(&dir.path().join("nope"), &Limits::default()),
        Err(UnpackError::Io(_))
    ));
}
