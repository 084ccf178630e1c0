//! Prior imaging at a glance: what outside MRI/CT a case has on file, how old it is,
//! and whether it covers the part of the spine the ordered procedure treats.
//!
//! Pure: the studies, the regions needed and today's date are arguments. The case
//! page, the scheduler's views and the patient's letters ("we already have your
//! MRI") all ask [`assess`], so they never disagree.

use std::collections::BTreeSet;

use jiff::Span;
use jiff::civil::Date;

use crate::catalogue::{Procedure, SpineLevels, SpineRegion};

/// The default age, in months, after which the newest study counts as out of date.
pub const DEFAULT_MAX_AGE_MONTHS: u32 = 12;

/// What is known of one stored study (from its DICOM header; no pixels).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PriorStudy {
    /// DICOM modality codes in the study (`MR`, `CT`, `CR`, ...).
    pub modalities: Vec<String>,
    /// Study date, when the file had a valid one.
    pub study_date: Option<Date>,
    /// Body Part Examined (`LSPINE`, ...), possibly empty.
    pub body_part: String,
    /// Study description, possibly empty.
    pub description: String,
    /// Series descriptions (`SAG T2 L-SPINE`, ...), which often name the region when
    /// the study does not.
    pub series_descriptions: Vec<String>,
}

/// Which parts of the spine the ordered procedure needs imaged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegionNeed {
    /// Every one of these (from the order's levels).
    AllOf(Vec<SpineRegion>),
    /// Any one of these (the procedure's regions, when the order names no level).
    AnyOf(Vec<SpineRegion>),
}

impl RegionNeed {
    /// What the order needs: the region of each level's upper vertebra (a lumbar MRI
    /// shows L5-S1, a cervical one C7-T1); without levels, any of the procedure's
    /// regions; a procedure without levels (sacroiliac joint) needs the sacrum.
    pub fn for_order(procedure: &Procedure, levels: Option<&SpineLevels>) -> Self {
        let from_levels: Vec<SpineRegion> = levels
            .map(|l| {
                l.iter()
                    .filter_map(|level| level.regions().next())
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            })
            .unwrap_or_default();
        if !from_levels.is_empty() {
            RegionNeed::AllOf(from_levels)
        } else if procedure.regions.is_empty() {
            RegionNeed::AllOf(vec![SpineRegion::Sacral])
        } else {
            RegionNeed::AnyOf(procedure.regions.clone())
        }
    }

    /// Whether a study showing `shown` meets the need.
    pub fn met_by(&self, shown: &BTreeSet<SpineRegion>) -> bool {
        match self {
            RegionNeed::AllOf(all) => all.iter().all(|r| shown.contains(r)),
            RegionNeed::AnyOf(any) => any.iter().any(|r| shown.contains(r)),
        }
    }

    /// For people: "lumbar spine", "cervical or thoracic spine", "sacrum".
    pub fn label(&self) -> String {
        let (regions, joiner) = match self {
            RegionNeed::AllOf(r) => (r, " and "),
            RegionNeed::AnyOf(r) => (r, " or "),
        };
        let names: Vec<&str> = regions.iter().map(|r| region_noun(*r)).collect();
        if names.is_empty() {
            return "the spine".to_owned();
        }
        let spine_only = regions.iter().all(|r| *r != SpineRegion::Sacral);
        if spine_only {
            let adjectives: Vec<&str> = regions.iter().map(|r| r.as_str()).collect();
            format!("{} spine", adjectives.join(joiner))
        } else {
            names.join(joiner)
        }
    }
}

fn region_noun(r: SpineRegion) -> &'static str {
    match r {
        SpineRegion::Cervical => "cervical spine",
        SpineRegion::Thoracic => "thoracic spine",
        SpineRegion::Lumbar => "lumbar spine",
        SpineRegion::Sacral => "sacrum",
    }
}

/// Whether a DICOM modality code is cross-sectional imaging of the kind the
/// department asks for (MRI or CT).
pub fn is_mri_or_ct(code: &str) -> bool {
    matches!(code.trim().to_ascii_uppercase().as_str(), "MR" | "CT")
}

/// A modality code for people: `MR` -> "MRI".
pub fn modality_label(code: &str) -> String {
    match code.trim().to_ascii_uppercase().as_str() {
        "MR" => "MRI".to_owned(),
        "CT" => "CT".to_owned(),
        "CR" | "DX" | "DR" => "X-ray".to_owned(),
        "XA" | "RF" => "Fluoroscopy".to_owned(),
        "US" => "Ultrasound".to_owned(),
        "NM" => "Nuclear medicine".to_owned(),
        "PT" => "PET".to_owned(),
        "" => "Imaging".to_owned(),
        other => other.to_owned(),
    }
}

/// Upper-case words of a text, split on anything but letters and digits; `L-SPINE`
/// also yields `LSPINE` (joined neighbours), so both spellings match.
fn words(text: &str) -> Vec<String> {
    let parts: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_uppercase)
        .collect();
    let mut all = parts.clone();
    for pair in parts.windows(2) {
        if let [a, b] = pair {
            all.push(format!("{a}{b}"));
        }
    }
    all
}

/// The spine regions a text names (Body Part Examined defined terms, and the usual
/// wording of study and series descriptions, including German abbreviations that
/// outside hospitals use: HWS, BWS, LWS).
fn regions_named(text: &str) -> BTreeSet<SpineRegion> {
    use SpineRegion::{Cervical, Lumbar, Sacral, Thoracic};
    let mut found = BTreeSet::new();
    for w in words(text) {
        let regions: &[SpineRegion] = match w.as_str() {
            "CSPINE" | "CERVICAL" | "CERVICALSPINE" | "HWS" | "CWS" => &[Cervical],
            "TSPINE" | "THORACIC" | "THORACICSPINE" | "DORSAL" | "BWS" | "TWS" => &[Thoracic],
            "LSPINE" | "LUMBAR" | "LUMBARSPINE" | "LWS" => &[Lumbar],
            "LSSPINE" | "LUMBOSACRAL" | "LS" => &[Lumbar, Sacral],
            "SSPINE" | "SACRUM" | "SACRAL" | "COCCYX" | "SIJ" | "SIJOINT" | "SACROILIAC"
            | "PELVIS" => &[Sacral],
            "CTSPINE" | "CERVICOTHORACIC" => &[Cervical, Thoracic],
            "TLSPINE" | "THORACOLUMBAR" => &[Thoracic, Lumbar],
            "WHOLESPINE" | "TOTALSPINE" | "ENTIRESPINE" => &[Cervical, Thoracic, Lumbar, Sacral],
            _ => &[],
        };
        found.extend(regions.iter().copied());
    }
    found
}

impl PriorStudy {
    /// The regions this study shows, from its body part, description and series
    /// descriptions. A lumbar study shows the top of the sacrum too (L5-S1 and the
    /// sacroiliac joints are in its field of view).
    pub fn regions(&self) -> BTreeSet<SpineRegion> {
        let mut found = regions_named(&self.body_part);
        found.extend(regions_named(&self.description));
        for s in &self.series_descriptions {
            found.extend(regions_named(s));
        }
        if found.contains(&SpineRegion::Lumbar) {
            found.insert(SpineRegion::Sacral);
        }
        found
    }

    /// Whether this is an MRI or CT.
    pub fn is_mri_or_ct(&self) -> bool {
        self.modalities.iter().any(|m| is_mri_or_ct(m))
    }

    /// "MRI lumbar spine": the modality and what it shows.
    pub fn title(&self) -> String {
        let mut modalities: Vec<String> = Vec::new();
        // MRI/CT first, then the rest (SR and other non-image objects left out).
        let mut codes: Vec<&String> = self.modalities.iter().collect();
        codes.sort_by_key(|m| !is_mri_or_ct(m));
        for m in codes {
            let upper = m.trim().to_ascii_uppercase();
            if matches!(upper.as_str(), "SR" | "PR" | "KO" | "DOC" | "OT" | "") {
                continue;
            }
            let label = modality_label(&upper);
            if !modalities.contains(&label) {
                modalities.push(label);
            }
        }
        let modality = if modalities.is_empty() {
            "Imaging".to_owned()
        } else {
            modalities.join("/")
        };
        let regions = self.regions();
        let what = region_phrase(&regions);
        match what {
            Some(w) => format!("{modality} {w}"),
            None => {
                let described = self.description.trim();
                let part = self.body_part.trim();
                if !described.is_empty() {
                    format!("{modality} ({described})")
                } else if !part.is_empty() {
                    format!("{modality} {}", part.to_lowercase())
                } else {
                    modality
                }
            }
        }
    }

    /// "MRI lumbar spine, 2026-11-01, 25 days old".
    pub fn line(&self, today: Date) -> String {
        match self.study_date {
            Some(d) => format!("{}, {d}, {}", self.title(), age_text(d, today)),
            None => format!("{}, date unknown", self.title()),
        }
    }
}

/// The shown regions in words: "lumbar spine", "cervical and thoracic spine",
/// "whole spine", "sacrum".
fn region_phrase(regions: &BTreeSet<SpineRegion>) -> Option<String> {
    use SpineRegion::{Cervical, Lumbar, Thoracic};
    if regions.is_empty() {
        return None;
    }
    if [Cervical, Thoracic, Lumbar]
        .iter()
        .all(|r| regions.contains(r))
    {
        return Some("whole spine".to_owned());
    }
    let spinal: Vec<&str> = [Cervical, Thoracic, Lumbar]
        .iter()
        .filter(|r| regions.contains(r))
        .map(|r| r.as_str())
        .collect();
    if spinal.is_empty() {
        return Some("sacrum".to_owned());
    }
    Some(format!("{} spine", spinal.join(" and ")))
}

/// "today", "1 day old", "25 days old", "3 months old", "2 years old"; a date in the
/// future (a wrong clock at the other hospital) says so.
pub fn age_text(date: Date, today: Date) -> String {
    let days = (today - date).get_days();
    if days < 0 {
        return "dated in the future".to_owned();
    }
    if days == 0 {
        return "today".to_owned();
    }
    if days == 1 {
        return "1 day old".to_owned();
    }
    if days < 62 {
        return format!("{days} days old");
    }
    let months = months_between(date, today);
    if months < 24 {
        return format!("{months} months old");
    }
    format!("{} years old", months / 12)
}

/// Whole calendar months from `from` to `to` (0 if `to` is earlier).
fn months_between(from: Date, to: Date) -> i32 {
    let mut months = (i32::from(to.year()) - i32::from(from.year())) * 12
        + (i32::from(to.month()) - i32::from(from.month()));
    if to.day() < from.day() {
        months -= 1;
    }
    months.max(0)
}

/// Whether a study dated `date` is older than `max_age_months` on `today`.
pub fn older_than(date: Date, today: Date, max_age_months: u32) -> bool {
    let months = i64::from(max_age_months.min(1200));
    match date.checked_add(Span::new().months(months)) {
        Ok(limit) => limit < today,
        Err(_) => false,
    }
}

/// Something a person should notice about the case's prior imaging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImagingFlag {
    /// No MRI or CT is on file (`other` studies of other kinds may be).
    NoneOnFile {
        /// How many studies of other kinds are on file.
        other: usize,
    },
    /// The newest MRI/CT is older than the setting (or has no date).
    OutOfDate {
        /// The newest dated study, if any has a date.
        newest: Option<Date>,
        /// The setting, in months.
        max_age_months: u32,
    },
    /// No MRI/CT on file shows the region the procedure treats.
    RegionNotCovered {
        /// What is needed, for people ("lumbar spine").
        needed: String,
    },
}

impl ImagingFlag {
    /// A stable key (CSS classes, the JSON API).
    pub fn code(&self) -> &'static str {
        match self {
            ImagingFlag::NoneOnFile { .. } => "none_on_file",
            ImagingFlag::OutOfDate { .. } => "out_of_date",
            ImagingFlag::RegionNotCovered { .. } => "region_not_covered",
        }
    }

    /// A few words for lists: "no MRI/CT on file", "MRI/CT out of date", "no MRI/CT
    /// of the lumbar spine".
    pub fn short(&self) -> String {
        match self {
            ImagingFlag::NoneOnFile { .. } => "no MRI/CT on file".to_owned(),
            ImagingFlag::OutOfDate { .. } => "MRI/CT out of date".to_owned(),
            ImagingFlag::RegionNotCovered { needed } => format!("no MRI/CT of the {needed}"),
        }
    }

    /// The message for staff.
    pub fn message(&self) -> String {
        match self {
            ImagingFlag::NoneOnFile { other: 0 } => {
                "No prior MRI or CT is on file: ask the patient or referrer for it.".to_owned()
            }
            ImagingFlag::NoneOnFile { other } => format!(
                "No prior MRI or CT is on file ({other} other {} on file): ask the patient or referrer for it.",
                if *other == 1 { "study" } else { "studies" }
            ),
            ImagingFlag::OutOfDate {
                newest: Some(d),
                max_age_months,
            } => format!("The newest MRI/CT ({d}) is more than {max_age_months} months old."),
            ImagingFlag::OutOfDate {
                newest: None,
                max_age_months,
            } => format!(
                "No MRI/CT on file has a study date, so none is known to be within {max_age_months} months."
            ),
            ImagingFlag::RegionNotCovered { needed } => {
                format!("No MRI/CT on file covers the {needed} this procedure treats.")
            }
        }
    }
}

/// The case's prior imaging, assessed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagingAssessment {
    /// One line per study, newest first ("MRI lumbar spine, 2026-11-01, 25 days old").
    pub lines: Vec<String>,
    /// What to notice; empty when a suitable study is on file.
    pub flags: Vec<ImagingFlag>,
    /// A recent MRI/CT covering the treated region is on file (letters then tell the
    /// patient not to bring theirs).
    pub suitable_on_file: bool,
}

/// Assesses a case's prior imaging: the newest MRI/CT must be no older than
/// `max_age_months` and some MRI/CT must show what `need` asks for.
///
/// "Suitable" needs one study that is both recent enough and covers the region, so
/// an old lumbar MRI plus a new cervical CT is not enough for a lumbar injection.
pub fn assess(
    studies: &[PriorStudy],
    need: &RegionNeed,
    today: Date,
    max_age_months: u32,
) -> ImagingAssessment {
    let mut ordered: Vec<&PriorStudy> = studies.iter().collect();
    // Newest first; undated last.
    ordered.sort_by(|a, b| match (a.study_date, b.study_date) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let lines = ordered.iter().map(|s| s.line(today)).collect();
    let cross_sectional: Vec<&PriorStudy> = ordered
        .iter()
        .copied()
        .filter(|s| s.is_mri_or_ct())
        .collect();
    let recent = |s: &PriorStudy| {
        s.study_date
            .is_some_and(|d| !older_than(d, today, max_age_months))
    };
    let mut flags = Vec::new();
    if cross_sectional.is_empty() {
        flags.push(ImagingFlag::NoneOnFile {
            other: studies.len(),
        });
    } else {
        let newest = cross_sectional.iter().filter_map(|s| s.study_date).max();
        if !cross_sectional.iter().any(|s| recent(s)) {
            flags.push(ImagingFlag::OutOfDate {
                newest,
                max_age_months,
            });
        }
        if !cross_sectional.iter().any(|s| need.met_by(&s.regions())) {
            flags.push(ImagingFlag::RegionNotCovered {
                needed: need.label(),
            });
        }
    }
    let suitable_on_file = cross_sectional
        .iter()
        .any(|s| recent(s) && need.met_by(&s.regions()));
    if !suitable_on_file && flags.is_empty() {
        // Recent studies and covering studies exist, but not one study that is both.
        flags.push(ImagingFlag::OutOfDate {
            newest: cross_sectional
                .iter()
                .filter(|s| need.met_by(&s.regions()))
                .filter_map(|s| s.study_date)
                .max(),
            max_age_months,
        });
    }
    ImagingAssessment {
        lines,
        flags,
        suitable_on_file,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{BleedingRisk, Modality};
    use jiff::civil::date;

    fn procedure(regions: Vec<SpineRegion>) -> Procedure {
        Procedure {
            code: "64483".into(),
            name: "Lumbar/sacral transforaminal epidural".into(),
            patient_name: "Low back nerve root injection".into(),
            modalities: vec![Modality::Fluoroscopy],
            duration_minutes: 20,
            risk_asra: BleedingRisk::Intermediate,
            risk_sir: BleedingRisk::High,
            regions,
            risk_source: "test".into(),
            active: true,
        }
    }

    fn study(modality: &str, d: Option<Date>, body_part: &str, description: &str) -> PriorStudy {
        PriorStudy {
            modalities: vec![modality.to_owned()],
            study_date: d,
            body_part: body_part.to_owned(),
            description: description.to_owned(),
            series_descriptions: Vec::new(),
        }
    }

    fn lumbar_need() -> RegionNeed {
        let levels = SpineLevels::parse("L4-L5").expect("valid");
        RegionNeed::for_order(
            &procedure(vec![SpineRegion::Lumbar, SpineRegion::Sacral]),
            Some(&levels),
        )
    }

    #[test]
    fn the_line_reads_like_the_issue() {
        let s = study("MR", Some(date(2026, 11, 1)), "LSPINE", "MRI L-SPINE W/O");
        assert_eq!(
            s.line(date(2026, 11, 26)),
            "MRI lumbar spine, 2026-11-01, 25 days old"
        );
        let ct = study("CT", Some(date(2025, 1, 15)), "", "CT CERVICAL SPINE");
        assert_eq!(ct.title(), "CT cervical spine");
        assert_eq!(
            study("MR", None, "", "").line(date(2026, 1, 1)),
            "MRI, date unknown"
        );
        assert_eq!(
            study("MR", None, "KNEE", "").title(),
            "MRI knee",
            "an unknown body part is shown as written"
        );
        assert_eq!(
            study("MR", None, "", "Brain w/o").title(),
            "MRI (Brain w/o)"
        );
        assert_eq!(
            study("MR", None, "SPINE", "WHOLE SPINE SCREEN").title(),
            "MRI whole spine"
        );
        assert_eq!(study("CR", None, "SSPINE", "").title(), "X-ray sacrum");
    }

    #[test]
    fn ages_are_in_days_then_months_then_years() {
        let today = date(2026, 11, 26);
        assert_eq!(age_text(today, today), "today");
        assert_eq!(age_text(date(2026, 11, 25), today), "1 day old");
        assert_eq!(age_text(date(2026, 9, 26), today), "61 days old");
        assert_eq!(age_text(date(2026, 9, 25), today), "2 months old");
        assert_eq!(age_text(date(2025, 11, 27), today), "11 months old");
        assert_eq!(age_text(date(2024, 11, 26), today), "2 years old");
        assert_eq!(age_text(date(2027, 1, 1), today), "dated in the future");
    }

    #[test]
    fn regions_are_read_from_body_part_and_descriptions() {
        let cases: &[(&str, &str, &[SpineRegion])] = &[
            ("LSPINE", "", &[SpineRegion::Lumbar, SpineRegion::Sacral]),
            (
                "",
                "MR L-SPINE",
                &[SpineRegion::Lumbar, SpineRegion::Sacral],
            ),
            (
                "",
                "MRT LWS nativ",
                &[SpineRegion::Lumbar, SpineRegion::Sacral],
            ),
            ("CSPINE", "", &[SpineRegion::Cervical]),
            ("", "C-Spine trauma", &[SpineRegion::Cervical]),
            ("TSPINE", "", &[SpineRegion::Thoracic]),
            ("SSPINE", "", &[SpineRegion::Sacral]),
            ("PELVIS", "", &[SpineRegion::Sacral]),
            (
                "",
                "thoracolumbar junction",
                &[
                    SpineRegion::Thoracic,
                    SpineRegion::Lumbar,
                    SpineRegion::Sacral,
                ],
            ),
            ("HEAD", "Brain", &[]),
            ("", "", &[]),
        ];
        for (part, desc, want) in cases {
            let got: Vec<SpineRegion> = study("MR", None, part, desc)
                .regions()
                .into_iter()
                .collect();
            assert_eq!(&got, want, "{part:?} / {desc:?}");
        }
        let mut by_series = study("MR", None, "", "Outside study");
        by_series.series_descriptions = vec!["SAG T2 CSPINE".into()];
        assert!(by_series.regions().contains(&SpineRegion::Cervical));
    }

    #[test]
    fn the_need_follows_the_levels_then_the_procedure() {
        let lumbar = procedure(vec![SpineRegion::Lumbar, SpineRegion::Sacral]);
        let l5s1 = SpineLevels::parse("L5-S1").expect("valid");
        assert_eq!(
            RegionNeed::for_order(&lumbar, Some(&l5s1)),
            RegionNeed::AllOf(vec![SpineRegion::Lumbar])
        );
        assert_eq!(
            RegionNeed::for_order(&lumbar, None),
            RegionNeed::AnyOf(vec![SpineRegion::Lumbar, SpineRegion::Sacral])
        );
        let cervical = procedure(vec![SpineRegion::Cervical, SpineRegion::Thoracic]);
        let c7t1 = SpineLevels::parse("C7-T1").expect("valid");
        assert_eq!(
            RegionNeed::for_order(&cervical, Some(&c7t1)),
            RegionNeed::AllOf(vec![SpineRegion::Cervical])
        );
        assert_eq!(
            RegionNeed::for_order(&procedure(vec![]), None),
            RegionNeed::AllOf(vec![SpineRegion::Sacral])
        );
        assert_eq!(
            RegionNeed::AllOf(vec![SpineRegion::Lumbar]).label(),
            "lumbar spine"
        );
        assert_eq!(
            RegionNeed::AnyOf(vec![SpineRegion::Cervical, SpineRegion::Thoracic]).label(),
            "cervical or thoracic spine"
        );
        assert_eq!(
            RegionNeed::AllOf(vec![SpineRegion::Sacral]).label(),
            "sacrum"
        );
    }

    #[test]
    fn nothing_on_file_is_flagged() {
        let a = assess(&[], &lumbar_need(), date(2026, 11, 26), 12);
        assert!(!a.suitable_on_file);
        assert_eq!(a.flags, vec![ImagingFlag::NoneOnFile { other: 0 }]);
        assert!(a.lines.is_empty());
        let xray = study("CR", Some(date(2026, 11, 1)), "LSPINE", "");
        let a = assess(&[xray], &lumbar_need(), date(2026, 11, 26), 12);
        assert_eq!(a.flags, vec![ImagingFlag::NoneOnFile { other: 1 }]);
        assert!(a.flags[0].message().contains("1 other study"));
        assert_eq!(a.lines.len(), 1, "the X-ray is still listed");
    }

    #[test]
    fn a_recent_covering_mri_is_suitable() {
        let mri = study("MR", Some(date(2026, 11, 1)), "LSPINE", "");
        let a = assess(&[mri], &lumbar_need(), date(2026, 11, 26), 12);
        assert!(a.suitable_on_file);
        assert!(a.flags.is_empty(), "{:?}", a.flags);
    }

    #[test]
    fn an_old_study_is_out_of_date_by_the_setting() {
        let today = date(2026, 11, 26);
        let mri = study("MR", Some(date(2025, 11, 25)), "LSPINE", "");
        let a = assess(std::slice::from_ref(&mri), &lumbar_need(), today, 12);
        assert!(!a.suitable_on_file);
        assert_eq!(
            a.flags,
            vec![ImagingFlag::OutOfDate {
                newest: Some(date(2025, 11, 25)),
                max_age_months: 12
            }]
        );
        // Exactly twelve months is still in date; a longer setting accepts it.
        let on_the_day = study("MR", Some(date(2025, 11, 26)), "LSPINE", "");
        assert!(assess(&[on_the_day], &lumbar_need(), today, 12).suitable_on_file);
        assert!(assess(&[mri], &lumbar_need(), today, 24).suitable_on_file);
        // Undated studies are never known to be recent.
        let undated = study("MR", None, "LSPINE", "");
        let a = assess(&[undated], &lumbar_need(), today, 12);
        assert_eq!(
            a.flags,
            vec![ImagingFlag::OutOfDate {
                newest: None,
                max_age_months: 12
            }]
        );
    }

    #[test]
    fn the_wrong_region_is_flagged() {
        let today = date(2026, 11, 26);
        let neck = study("MR", Some(date(2026, 10, 1)), "CSPINE", "");
        let a = assess(&[neck], &lumbar_need(), today, 12);
        assert!(!a.suitable_on_file);
        assert_eq!(
            a.flags,
            vec![ImagingFlag::RegionNotCovered {
                needed: "lumbar spine".to_owned()
            }]
        );
        assert!(a.flags[0].message().contains("lumbar spine"));
        assert_eq!(a.flags[0].short(), "no MRI/CT of the lumbar spine");
        // An undescribed study covers nothing we can tell.
        let vague = study("CT", Some(date(2026, 10, 1)), "", "Outside CD");
        assert!(!assess(&[vague], &lumbar_need(), today, 12).suitable_on_file);
    }

    #[test]
    fn recent_and_covering_must_be_the_same_study() {
        let today = date(2026, 11, 26);
        let old_lumbar = study("MR", Some(date(2023, 1, 1)), "LSPINE", "");
        let new_neck = study("CT", Some(date(2026, 11, 1)), "CSPINE", "");
        let a = assess(&[old_lumbar, new_neck], &lumbar_need(), today, 12);
        assert!(!a.suitable_on_file);
        assert_eq!(
            a.flags,
            vec![ImagingFlag::OutOfDate {
                newest: Some(date(2023, 1, 1)),
                max_age_months: 12
            }]
        );
        assert_eq!(a.lines[0], "CT cervical spine, 2026-11-01, 25 days old");
    }

    #[test]
    fn studies_are_listed_newest_first_undated_last() {
        let today = date(2026, 11, 26);
        let a = assess(
            &[
                study("MR", None, "LSPINE", ""),
                study("MR", Some(date(2026, 1, 1)), "LSPINE", ""),
                study("CT", Some(date(2026, 6, 1)), "LSPINE", ""),
            ],
            &lumbar_need(),
            today,
            12,
        );
        assert!(a.lines[0].starts_with("CT lumbar spine, 2026-06-01"));
        assert!(a.lines[1].starts_with("MRI lumbar spine, 2026-01-01"));
        assert!(a.lines[2].ends_with("date unknown"));
    }
}
