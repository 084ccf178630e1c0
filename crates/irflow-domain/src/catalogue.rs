//! The procedure catalogue: what the department offers, by CPT code, with the
//! guidance modalities, default duration and bleeding-risk class of each.
//!
//! The default catalogue is data (seeded by the store's migration, editable by
//! admins); this module holds the types and the checks that keep entries sane.

use std::fmt;
use std::str::FromStr;

/// The code system of procedure codes.
pub const CPT_SYSTEM: &str = "http://www.ama-assn.org/go/cpt";

/// Image guidance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Modality {
    /// Fluoroscopy (X-ray).
    Fluoroscopy,
    /// Computed tomography.
    Ct,
}

impl Modality {
    /// Every modality.
    pub const ALL: [Modality; 2] = [Modality::Fluoroscopy, Modality::Ct];

    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Modality::Fluoroscopy => "fluoroscopy",
            Modality::Ct => "ct",
        }
    }

    /// Label for people.
    pub const fn label(self) -> &'static str {
        match self {
            Modality::Fluoroscopy => "Fluoroscopy",
            Modality::Ct => "CT",
        }
    }
}

impl FromStr for Modality {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Modality::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| format!("unknown modality {s:?}: expected fluoroscopy or ct"))
    }
}

/// A procedure's bleeding-risk class (CLINICAL-RULES.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BleedingRisk {
    /// Low risk.
    Low,
    /// Intermediate risk.
    Intermediate,
    /// High risk.
    High,
}

impl BleedingRisk {
    /// Every class, lowest first.
    pub const ALL: [BleedingRisk; 3] = [
        BleedingRisk::Low,
        BleedingRisk::Intermediate,
        BleedingRisk::High,
    ];

    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            BleedingRisk::Low => "low",
            BleedingRisk::Intermediate => "intermediate",
            BleedingRisk::High => "high",
        }
    }
}

impl FromStr for BleedingRisk {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BleedingRisk::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| {
                format!("unknown bleeding-risk class {s:?}: expected low, intermediate or high")
            })
    }
}

/// A region of the spine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SpineRegion {
    /// C1-C7.
    Cervical,
    /// T1-T12.
    Thoracic,
    /// L1-L5.
    Lumbar,
    /// S1-S5.
    Sacral,
}

impl SpineRegion {
    /// Every region, top to bottom.
    pub const ALL: [SpineRegion; 4] = [
        SpineRegion::Cervical,
        SpineRegion::Thoracic,
        SpineRegion::Lumbar,
        SpineRegion::Sacral,
    ];

    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpineRegion::Cervical => "cervical",
            SpineRegion::Thoracic => "thoracic",
            SpineRegion::Lumbar => "lumbar",
            SpineRegion::Sacral => "sacral",
        }
    }

    const fn letter(self) -> char {
        match self {
            SpineRegion::Cervical => 'C',
            SpineRegion::Thoracic => 'T',
            SpineRegion::Lumbar => 'L',
            SpineRegion::Sacral => 'S',
        }
    }

    const fn count(self) -> u8 {
        match self {
            SpineRegion::Cervical => 7,
            SpineRegion::Thoracic => 12,
            SpineRegion::Lumbar => 5,
            SpineRegion::Sacral => 5,
        }
    }

    fn from_letter(c: char) -> Option<Self> {
        SpineRegion::ALL
            .into_iter()
            .find(|r| r.letter() == c.to_ascii_uppercase())
    }
}

impl FromStr for SpineRegion {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SpineRegion::ALL
            .into_iter()
            .find(|m| m.as_str() == s.trim())
            .ok_or_else(|| format!("unknown spine region {s:?}"))
    }
}

/// One vertebra, e.g. L4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vertebra {
    region: SpineRegion,
    number: u8,
}

impl Vertebra {
    /// The region.
    pub fn region(self) -> SpineRegion {
        self.region
    }

    /// Position from the top of the spine (C1 = 0), to check adjacency.
    fn ordinal(self) -> u8 {
        let before: u8 = SpineRegion::ALL
            .into_iter()
            .take_while(|r| *r != self.region)
            .map(SpineRegion::count)
            .sum();
        before + self.number - 1
    }

    fn parse(raw: &str) -> Option<Self> {
        let mut chars = raw.trim().chars();
        let region = SpineRegion::from_letter(chars.next()?)?;
        let number: u8 = chars.as_str().parse().ok()?;
        (1..=region.count())
            .contains(&number)
            .then_some(Self { region, number })
    }
}

impl fmt::Display for Vertebra {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.region.letter(), self.number)
    }
}

/// One treated level: a vertebra (`L5`) or a segment between two adjacent ones (`L4-L5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpineLevel {
    upper: Vertebra,
    lower: Option<Vertebra>,
}

impl SpineLevel {
    /// The regions this level touches.
    pub fn regions(self) -> impl Iterator<Item = SpineRegion> {
        std::iter::once(self.upper.region).chain(self.lower.map(|l| l.region))
    }
}

impl fmt::Display for SpineLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.lower {
            Some(lower) => write!(f, "{}-{lower}", self.upper),
            None => write!(f, "{}", self.upper),
        }
    }
}

/// The levels of an order, e.g. `L4-L5, L5-S1`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SpineLevels(Vec<SpineLevel>);

/// The most levels one order may name.
pub const MAX_LEVELS: usize = 4;

impl SpineLevels {
    /// Parses `L4-L5`, `L4/L5`, `l5-s1, L4-L5` or `L5`. Segments must join adjacent
    /// vertebrae, top to bottom; duplicates are refused.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut levels = Vec::new();
        for part in raw
            .split([',', ';'])
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            let level = match part.split_once(['-', '/']) {
                Some((a, b)) => {
                    let (upper, lower) = match (Vertebra::parse(a), Vertebra::parse(b)) {
                        (Some(u), Some(l)) => (u, l),
                        _ => {
                            return Err(format!(
                                "{part:?} is not a spinal level; write levels like L4-L5 or C6-C7"
                            ));
                        }
                    };
                    if lower.ordinal() != upper.ordinal() + 1 {
                        return Err(format!(
                            "{part:?} does not join two adjacent vertebrae, top to bottom (e.g. L4-L5, L5-S1)"
                        ));
                    }
                    SpineLevel {
                        upper,
                        lower: Some(lower),
                    }
                }
                None => SpineLevel {
                    upper: Vertebra::parse(part).ok_or_else(|| {
                        format!("{part:?} is not a spinal level; write levels like L4-L5 or C6-C7")
                    })?,
                    lower: None,
                },
            };
            if levels.contains(&level) {
                return Err(format!("{level} is named twice"));
            }
            levels.push(level);
        }
        if levels.is_empty() {
            return Err("name at least one level, e.g. L4-L5".to_owned());
        }
        if levels.len() > MAX_LEVELS {
            return Err(format!("at most {MAX_LEVELS} levels per order"));
        }
        levels.sort_by_key(|l| l.upper.ordinal());
        Ok(Self(levels))
    }

    /// The levels, top to bottom.
    pub fn iter(&self) -> impl Iterator<Item = &SpineLevel> {
        self.0.iter()
    }
}

impl fmt::Display for SpineLevels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join(", "))
    }
}

/// A catalogue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Procedure {
    /// CPT code.
    pub code: String,
    /// Name for staff.
    pub name: String,
    /// Plain-language name for patients.
    pub patient_name: String,
    /// Allowed image guidance.
    pub modalities: Vec<Modality>,
    /// Default duration in minutes.
    pub duration_minutes: u16,
    /// Bleeding-risk class, ASRA-2018.
    pub risk_asra: BleedingRisk,
    /// Bleeding-risk class, SIR-2019.
    pub risk_sir: BleedingRisk,
    /// Where the levels of an order must lie; empty when the procedure takes no level
    /// (a sacroiliac joint injection names only a side).
    pub regions: Vec<SpineRegion>,
    /// Where the risk classes come from.
    pub risk_source: String,
    /// Offered for new orders.
    pub active: bool,
}

impl Procedure {
    /// Whether an order must name levels.
    pub fn takes_levels(&self) -> bool {
        !self.regions.is_empty()
    }

    /// Checks that levels lie in the procedure's regions.
    pub fn check_levels(&self, levels: &SpineLevels) -> Result<(), String> {
        for level in levels.iter() {
            if let Some(bad) = level.regions().find(|r| !self.regions.contains(r)) {
                let allowed: Vec<&str> = self.regions.iter().map(|r| r.as_str()).collect();
                return Err(format!(
                    "{level} is {} but {} ({}) is done at {} levels",
                    bad.as_str(),
                    self.name,
                    self.code,
                    allowed.join(" or ")
                ));
            }
        }
        Ok(())
    }

    /// Checks an edited entry before it is stored.
    pub fn validate(&self) -> Result<(), String> {
        if self.code.len() != 5 || !self.code.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err("a CPT code has five characters".to_owned());
        }
        if self.name.trim().is_empty() || self.patient_name.trim().is_empty() {
            return Err("both names are required".to_owned());
        }
        if self.modalities.is_empty() {
            return Err("choose at least one guidance modality".to_owned());
        }
        if !(5..=240).contains(&self.duration_minutes) {
            return Err("duration must be between 5 and 240 minutes".to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_normalise() {
        let l = SpineLevels::parse("l5-s1, L4/L5").expect("valid");
        assert_eq!(l.to_string(), "L4-L5, L5-S1");
        assert_eq!(
            SpineLevels::parse("C7-T1").expect("valid").to_string(),
            "C7-T1"
        );
        assert_eq!(
            SpineLevels::parse("T12-L1").expect("valid").to_string(),
            "T12-L1"
        );
        assert_eq!(SpineLevels::parse(" L5 ").expect("valid").to_string(), "L5");
        for bad in [
            "",
            "L6",
            "L4-L6",
            "L5-L4",
            "X1",
            "L4-L5, L4-L5",
            "C8",
            "L1-L2,L2-L3,L3-L4,L4-L5,L5-S1",
        ] {
            assert!(SpineLevels::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    fn transforaminal_lumbar() -> Procedure {
        Procedure {
            code: "64483".into(),
            name: "Lumbar/sacral transforaminal epidural".into(),
            patient_name: "Low back nerve root injection".into(),
            modalities: vec![Modality::Fluoroscopy, Modality::Ct],
            duration_minutes: 20,
            risk_asra: BleedingRisk::Intermediate,
            risk_sir: BleedingRisk::High,
            regions: vec![SpineRegion::Lumbar, SpineRegion::Sacral],
            risk_source: "ASRA-2018; SIR-2019".into(),
            active: true,
        }
    }

    #[test]
    fn levels_must_fit_the_procedure() {
        let p = transforaminal_lumbar();
        assert!(
            p.check_levels(&SpineLevels::parse("L5-S1").expect("valid"))
                .is_ok()
        );
        let err = p
            .check_levels(&SpineLevels::parse("C6-C7").expect("valid"))
            .expect_err("cervical");
        assert!(
            err.contains("cervical") && err.contains("lumbar or sacral"),
            "{err}"
        );
        assert!(p.validate().is_ok());
        let mut bad = p.clone();
        bad.modalities.clear();
        assert!(bad.validate().is_err());
        bad = p;
        bad.duration_minutes = 0;
        assert!(bad.validate().is_err());
    }
}
