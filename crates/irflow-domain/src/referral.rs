//! A referral: what the referring provider orders, checked field by field so that
//! every problem can be shown next to the field it concerns (a web form) or at its
//! path (a FHIR OperationOutcome).

use std::fmt;
use std::str::FromStr;

use jiff::civil::Date;

use crate::catalogue::{Procedure, SpineLevels};
use crate::patient::{self, Email, LanguageTag, Mrn, NewPatient, PersonName, Phone};

macro_rules! code_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $code:literal, $label:literal;)+ } expecting $expect:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($(#[$vdoc])* $variant,)+ }

        impl $name {
            /// Every value.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// Stored and wire name.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $code,)+ }
            }

            /// Label for people.
            pub const fn label(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                let s = s.trim();
                $name::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("{s:?} is not {}", $expect))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum!(
    /// Which side is treated.
    Side {
        /// Left.
        Left => "left", "Left";
        /// Right.
        Right => "right", "Right";
        /// Both sides.
        Bilateral => "bilateral", "Bilateral";
    } expecting "left, right or bilateral"
);

code_enum!(
    /// How soon (FHIR request priority codes; `stat` is not offered for elective injections).
    Urgency {
        /// Routine.
        Routine => "routine", "Routine";
        /// Urgent.
        Urgent => "urgent", "Urgent";
        /// As soon as possible.
        Asap => "asap", "As soon as possible";
    } expecting "routine, urgent or asap"
);

code_enum!(
    /// Kind of prior imaging.
    ImagingModality {
        /// Magnetic resonance imaging.
        Mri => "mri", "MRI";
        /// Computed tomography.
        Ct => "ct", "CT";
    } expecting "mri or ct"
);

code_enum!(
    /// How a referral reached the department.
    Channel {
        /// The referrer's online form.
        Online => "online", "Online referral";
        /// By phone, entered by staff.
        Phone => "phone", "Phone referral";
        /// A FHIR client.
        Fhir => "fhir", "FHIR order";
    } expecting "online, phone or fhir"
);

code_enum!(
    /// Why a radiologist returned a referral.
    ReturnReason {
        /// More information is needed.
        NotEnoughInformation => "not_enough_information", "Not enough information";
        /// Another procedure fits better.
        WrongProcedure => "wrong_procedure", "Wrong procedure";
        /// Imaging is needed before deciding.
        ImagingNeededFirst => "imaging_needed_first", "Imaging needed first";
        /// The injection is not indicated.
        NotIndicated => "not_indicated", "Not indicated";
        /// Something else (explained in the text).
        Other => "other", "Other";
    } expecting "not_enough_information, wrong_procedure, imaging_needed_first, not_indicated or other"
);

/// An ICD-10-CM diagnosis code, e.g. `M54.16`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Icd10Code(String);

/// The code system of ICD-10-CM.
pub const ICD10_CM_SYSTEM: &str = "http://hl7.org/fhir/sid/icd-10-cm";

impl Icd10Code {
    /// Parses the code's shape: a letter, two characters (digit, then digit or letter),
    /// then optionally a dot and one to four more. Uppercased; a missing dot is added.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s: String = raw.trim().to_ascii_uppercase();
        let compact: String = s.chars().filter(|c| *c != '.').collect();
        let chars: Vec<char> = compact.chars().collect();
        let ok = (3..=7).contains(&chars.len())
            && chars[0].is_ascii_alphabetic()
            && chars[1].is_ascii_digit()
            && chars[2].is_ascii_alphanumeric()
            && chars[3..].iter().all(char::is_ascii_alphanumeric)
            && s.matches('.').count() <= 1
            && (!s.contains('.') || s.find('.') == Some(3));
        if !ok {
            return Err(format!(
                "{:?} is not an ICD-10-CM code (e.g. M54.16)",
                raw.trim()
            ));
        }
        Ok(Self(if chars.len() > 3 {
            format!("{}.{}", &compact[..3], &compact[3..])
        } else {
            compact
        }))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Imaging done before the referral.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriorImaging {
    /// MRI or CT.
    pub modality: ImagingModality,
    /// When, if known.
    pub date: Option<Date>,
    /// Where, if known.
    pub place: Option<String>,
}

/// What is ordered, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferralDetails {
    /// CPT code from the catalogue.
    pub procedure_code: String,
    /// Levels, for procedures that take them.
    pub levels: Option<SpineLevels>,
    /// Side.
    pub side: Side,
    /// Why (free text).
    pub indication: String,
    /// Diagnosis code, optional.
    pub icd10: Option<Icd10Code>,
    /// How soon.
    pub urgency: Urgency,
    /// Imaging the patient already has.
    pub prior_imaging: Option<PriorImaging>,
    /// Anticoagulants or antiplatelets the referrer knows of.
    pub blood_thinners: Option<String>,
    /// Anything else the radiologist should know.
    pub clinical_notes: Option<String>,
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The field's name (as in [`ReferralForm`]).
    pub field: &'static str,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Every problem found, so a form shows them all at once.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    fn add(&mut self, field: &'static str, message: impl Into<String>) {
        self.0.push(FieldError {
            field,
            message: message.into(),
        });
    }

    /// The message for a field, if it has one.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|e| e.field == field)
            .map(|e| e.message.as_str())
    }

    /// Whether nothing is wrong.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds another set of errors.
    pub fn extend(&mut self, other: FieldErrors) {
        self.0.extend(other.0);
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for FieldErrors {}

/// A referral as typed: every field a string, exactly as submitted, so a refused
/// form can be shown again with nothing lost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferralForm {
    /// Patient family name.
    pub family_name: String,
    /// Patient given name(s).
    pub given_name: String,
    /// YYYY-MM-DD.
    pub date_of_birth: String,
    /// MRN, if known.
    pub mrn: String,
    /// Phone.
    pub phone: String,
    /// Email.
    pub email: String,
    /// Language code.
    pub preferred_language: String,
    /// CPT code.
    pub procedure: String,
    /// e.g. `L4-L5, L5-S1`.
    pub levels: String,
    /// left, right, bilateral.
    pub side: String,
    /// Free text.
    pub indication: String,
    /// ICD-10-CM.
    pub icd10: String,
    /// routine, urgent, asap.
    pub urgency: String,
    /// mri, ct, or empty.
    pub imaging_modality: String,
    /// YYYY-MM-DD or empty.
    pub imaging_date: String,
    /// Where.
    pub imaging_place: String,
    /// Known blood thinners.
    pub blood_thinners: String,
    /// Notes.
    pub clinical_notes: String,
}

fn optional_text(
    raw: &str,
    field: &'static str,
    max: usize,
    errors: &mut FieldErrors,
) -> Option<String> {
    let t = raw.trim();
    if t.chars().count() > max {
        errors.add(field, format!("at most {max} characters"));
        return None;
    }
    if t.chars()
        .any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t')
    {
        errors.add(field, "contains control characters");
        return None;
    }
    (!t.is_empty()).then(|| t.to_owned())
}

impl ReferralForm {
    /// Checks the patient's identity fields.
    pub fn patient(&self, today: Date) -> Result<NewPatient, FieldErrors> {
        let mut errors = FieldErrors::default();
        let name = match PersonName::parse(&self.family_name, &self.given_name) {
            Ok(n) => Some(n),
            Err(patient::PatientError::Name("family")) => {
                errors.add(
                    "family_name",
                    "family name is required (at most 100 characters)",
                );
                PersonName::parse("x", &self.given_name)
                    .err()
                    .into_iter()
                    .for_each(|_| {
                        errors.add(
                            "given_name",
                            "given name is required (at most 100 characters)",
                        )
                    });
                None
            }
            Err(_) => {
                errors.add(
                    "given_name",
                    "given name is required (at most 100 characters)",
                );
                None
            }
        };
        let dob = if self.date_of_birth.trim().is_empty() {
            errors.add("date_of_birth", "date of birth is required");
            None
        } else {
            patient::parse_date_of_birth(&self.date_of_birth, today)
                .map_err(|e| errors.add("date_of_birth", e.to_string()))
                .ok()
        };
        let mrn = if self.mrn.trim().is_empty() {
            None
        } else {
            Mrn::parse(&self.mrn)
                .map_err(|e| errors.add("mrn", e.to_string()))
                .ok()
        };
        let phone = if self.phone.trim().is_empty() {
            errors.add(
                "phone",
                "a phone number is required: the nurse calls the patient to screen",
            );
            None
        } else {
            Phone::parse(&self.phone)
                .map_err(|e| errors.add("phone", e.to_string()))
                .ok()
        };
        let email = if self.email.trim().is_empty() {
            None
        } else {
            Email::parse(&self.email)
                .map_err(|e| errors.add("email", e.to_string()))
                .ok()
        };
        let language = if self.preferred_language.trim().is_empty() {
            Some(LanguageTag::english())
        } else {
            LanguageTag::parse(&self.preferred_language)
                .map_err(|e| errors.add("preferred_language", e.to_string()))
                .ok()
        };
        match (name, dob, language) {
            (Some(name), Some(date_of_birth), Some(preferred_language)) if errors.is_empty() => {
                Ok(NewPatient {
                    mrn,
                    name,
                    date_of_birth,
                    phone,
                    email,
                    preferred_language,
                })
            }
            _ => Err(errors),
        }
    }

    /// Checks what is ordered against the active catalogue.
    pub fn details(
        &self,
        catalogue: &[Procedure],
        today: Date,
    ) -> Result<ReferralDetails, FieldErrors> {
        let mut errors = FieldErrors::default();
        let code = self.procedure.trim();
        let procedure = if code.is_empty() {
            errors.add("procedure", "choose a procedure");
            None
        } else {
            let found = catalogue.iter().find(|p| p.code == code && p.active);
            if found.is_none() {
                let offered: Vec<&str> = catalogue
                    .iter()
                    .filter(|p| p.active)
                    .map(|p| p.code.as_str())
                    .collect();
                errors.add(
                    "procedure",
                    format!(
                        "{code:?} is not a procedure this department offers ({})",
                        offered.join(", ")
                    ),
                );
            }
            found
        };
        let levels = match (procedure, self.levels.trim()) {
            (Some(p), "") if p.takes_levels() => {
                errors.add("levels", "name the level(s), e.g. L4-L5");
                None
            }
            (Some(p), raw) if !p.takes_levels() && !raw.is_empty() => {
                errors.add(
                    "levels",
                    format!("{} takes no spinal level; leave this empty", p.name),
                );
                None
            }
            (_, "") => None,
            (p, raw) => match SpineLevels::parse(raw) {
                Ok(levels) => {
                    if let Some(Err(e)) = p.map(|p| p.check_levels(&levels)) {
                        errors.add("levels", e);
                    }
                    Some(levels)
                }
                Err(e) => {
                    errors.add("levels", e);
                    None
                }
            },
        };
        let side = if self.side.trim().is_empty() {
            errors.add("side", "choose left, right or bilateral");
            None
        } else {
            self.side
                .parse::<Side>()
                .map_err(|e| errors.add("side", e))
                .ok()
        };
        let indication = optional_text(&self.indication, "indication", 2000, &mut errors);
        if indication.is_none() && errors.get("indication").is_none() {
            errors.add("indication", "say why the injection is needed");
        }
        let icd10 = if self.icd10.trim().is_empty() {
            None
        } else {
            Icd10Code::parse(&self.icd10)
                .map_err(|e| errors.add("icd10", e))
                .ok()
        };
        let urgency = match self.urgency.trim() {
            "" => Some(Urgency::Routine),
            "stat" => {
                errors.add("urgency", "stat is not offered for elective injections; choose urgent and call the department");
                None
            }
            raw => raw
                .parse::<Urgency>()
                .map_err(|e| errors.add("urgency", e))
                .ok(),
        };
        let prior_imaging = match self.imaging_modality.trim() {
            "" => {
                if !self.imaging_date.trim().is_empty() || !self.imaging_place.trim().is_empty() {
                    errors.add(
                        "imaging_modality",
                        "say whether the prior imaging is an MRI or a CT",
                    );
                }
                None
            }
            raw => {
                let modality = raw
                    .parse::<ImagingModality>()
                    .map_err(|e| errors.add("imaging_modality", e))
                    .ok();
                let date = match self.imaging_date.trim() {
                    "" => None,
                    d => match d.parse::<Date>() {
                        Ok(d) if d <= today && d >= jiff::civil::date(1980, 1, 1) => Some(d),
                        Ok(_) => {
                            errors.add("imaging_date", "the imaging date must be in the past");
                            None
                        }
                        Err(_) => {
                            errors.add("imaging_date", "write the date as YYYY-MM-DD");
                            None
                        }
                    },
                };
                let place = optional_text(&self.imaging_place, "imaging_place", 200, &mut errors);
                modality.map(|modality| PriorImaging {
                    modality,
                    date,
                    place,
                })
            }
        };
        let blood_thinners =
            optional_text(&self.blood_thinners, "blood_thinners", 500, &mut errors);
        let clinical_notes =
            optional_text(&self.clinical_notes, "clinical_notes", 4000, &mut errors);
        match (procedure, side, indication, urgency) {
            (Some(p), Some(side), Some(indication), Some(urgency)) if errors.is_empty() => {
                Ok(ReferralDetails {
                    procedure_code: p.code.clone(),
                    levels,
                    side,
                    indication,
                    icd10,
                    urgency,
                    prior_imaging,
                    blood_thinners,
                    clinical_notes,
                })
            }
            _ => Err(errors),
        }
    }

    /// Fills the "what is ordered" fields from stored details (to amend a referral).
    pub fn with_details(mut self, d: &ReferralDetails) -> Self {
        self.procedure = d.procedure_code.clone();
        self.levels = d
            .levels
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default();
        self.side = d.side.as_str().to_owned();
        self.indication = d.indication.clone();
        self.icd10 = d
            .icd10
            .as_ref()
            .map(|c| c.as_str().to_owned())
            .unwrap_or_default();
        self.urgency = d.urgency.as_str().to_owned();
        if let Some(pi) = &d.prior_imaging {
            self.imaging_modality = pi.modality.as_str().to_owned();
            self.imaging_date = pi.date.map(|d| d.to_string()).unwrap_or_default();
            self.imaging_place = pi.place.clone().unwrap_or_default();
        }
        self.blood_thinners = d.blood_thinners.clone().unwrap_or_default();
        self.clinical_notes = d.clinical_notes.clone().unwrap_or_default();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{BleedingRisk, Modality, SpineRegion};

    fn today() -> Date {
        jiff::civil::date(2026, 11, 26)
    }

    fn catalogue() -> Vec<Procedure> {
        let p = |code: &str, regions: Vec<SpineRegion>| Procedure {
            code: code.into(),
            name: format!("procedure {code}"),
            patient_name: "injection".into(),
            modalities: vec![Modality::Fluoroscopy],
            duration_minutes: 20,
            risk_asra: BleedingRisk::Low,
            risk_sir: BleedingRisk::Low,
            regions,
            risk_source: "test".into(),
            active: true,
        };
        vec![
            p("64483", vec![SpineRegion::Lumbar, SpineRegion::Sacral]),
            p("27096", vec![]),
        ]
    }

    fn good() -> ReferralForm {
        ReferralForm {
            family_name: "Doe".into(),
            given_name: "Jane".into(),
            date_of_birth: "1960-01-02".into(),
            phone: "617-555-0100".into(),
            procedure: "64483".into(),
            levels: "L4-L5".into(),
            side: "left".into(),
            indication: "Left L5 radiculopathy, 8 weeks".into(),
            icd10: "m5416".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_good_referral_passes() {
        let f = good();
        let p = f.patient(today()).expect("patient");
        assert_eq!(p.name.family(), "Doe");
        assert_eq!(p.preferred_language.as_str(), "en");
        let d = f.details(&catalogue(), today()).expect("details");
        assert_eq!(d.icd10.as_ref().map(Icd10Code::as_str), Some("M54.16"));
        assert_eq!(d.urgency, Urgency::Routine);
        assert_eq!(
            d.levels.as_ref().map(ToString::to_string).as_deref(),
            Some("L4-L5")
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let f = ReferralForm {
            family_name: " ".into(),
            date_of_birth: "1960-13-01".into(),
            phone: "12".into(),
            email: "nope".into(),
            procedure: "64483".into(),
            levels: "C5-C6".into(),
            side: "up".into(),
            icd10: "123".into(),
            urgency: "stat".into(),
            imaging_date: "2020-01-01".into(),
            ..Default::default()
        };
        let p = f.patient(today()).expect_err("bad patient");
        for field in [
            "family_name",
            "given_name",
            "date_of_birth",
            "phone",
            "email",
        ] {
            assert!(p.get(field).is_some(), "{field}: {p}");
        }
        let d = f.details(&catalogue(), today()).expect_err("bad details");
        for field in [
            "levels",
            "side",
            "indication",
            "icd10",
            "urgency",
            "imaging_modality",
        ] {
            assert!(d.get(field).is_some(), "{field}: {d}");
        }
        assert!(
            d.get("levels").is_some_and(|m| m.contains("cervical")),
            "{d}"
        );
    }

    #[test]
    fn procedures_decide_whether_levels_apply() {
        let mut f = good();
        f.procedure = "27096".into();
        let e = f
            .details(&catalogue(), today())
            .expect_err("SI joint takes no level");
        assert!(e.get("levels").is_some());
        f.levels.clear();
        assert!(f.details(&catalogue(), today()).is_ok());
        f.procedure = "99999".into();
        let e = f.details(&catalogue(), today()).expect_err("unknown code");
        assert!(
            e.get("procedure").is_some_and(|m| m.contains("64483")),
            "{e}"
        );
    }

    #[test]
    fn icd10_codes() {
        assert_eq!(Icd10Code::parse("M54.16").map(|c| c.0), Ok("M54.16".into()));
        assert_eq!(Icd10Code::parse("m4726").map(|c| c.0), Ok("M47.26".into()));
        assert_eq!(Icd10Code::parse("G89").map(|c| c.0), Ok("G89".into()));
        for bad in ["", "M5", "5M4.16", "M54.1.6", "M54.16XXXX", "M5.416"] {
            assert!(Icd10Code::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn details_round_trip_through_the_form() {
        let d = good().details(&catalogue(), today()).expect("valid");
        let again = ReferralForm::default().with_details(&d);
        let mut refilled = again.clone();
        refilled.family_name = "Doe".into();
        assert_eq!(again.details(&catalogue(), today()), Ok(d));
    }
}
