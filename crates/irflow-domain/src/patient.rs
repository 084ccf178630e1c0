//! Patients: parsed at the edge into types that cannot hold bad values.

use std::fmt;

use jiff::civil::Date;

/// Why a patient field was refused. Each names the field for the person fixing it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatientError {
    /// MRN format.
    #[error("MRN must be 1-32 letters, digits or '-'")]
    Mrn,
    /// Name part missing or malformed.
    #[error("{0} name is required (at most 100 characters, no control characters)")]
    Name(&'static str),
    /// Date of birth could not be read.
    #[error("date of birth must be a date written YYYY-MM-DD")]
    DateOfBirthFormat,
    /// Date of birth out of range.
    #[error("date of birth must be between 1900-01-01 and today")]
    DateOfBirthRange,
    /// Phone number malformed.
    #[error("phone number must have 7 to 15 digits (spaces, '+', '-', '.', '(' and ')' allowed)")]
    Phone,
    /// Email malformed.
    #[error("email address is not valid")]
    Email,
    /// Language tag malformed.
    #[error("preferred language must be a language code such as 'en' or 'es'")]
    Language,
}

/// Medical record number at this hospital.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mrn(String);

impl Mrn {
    /// Parses an MRN (trimmed; letters are uppercased so matching is stable).
    pub fn parse(raw: &str) -> Result<Self, PatientError> {
        let s = raw.trim().to_ascii_uppercase();
        let ok =
            (1..=32).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
        if ok {
            Ok(Self(s))
        } else {
            Err(PatientError::Mrn)
        }
    }

    /// The MRN as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Mrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A person's name, family and given parts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PersonName {
    family: String,
    given: String,
}

fn clean_name_part(raw: &str, which: &'static str) -> Result<String, PatientError> {
    let collapsed = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    let ok = !collapsed.is_empty()
        && collapsed.chars().count() <= 100
        && !collapsed.chars().any(char::is_control);
    if ok {
        Ok(collapsed)
    } else {
        Err(PatientError::Name(which))
    }
}

impl PersonName {
    /// Parses a name from its parts (white space is collapsed).
    pub fn parse(family: &str, given: &str) -> Result<Self, PatientError> {
        Ok(Self {
            family: clean_name_part(family, "family")?,
            given: clean_name_part(given, "given")?,
        })
    }

    /// Family name.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// Given name(s).
    pub fn given(&self) -> &str {
        &self.given
    }

    /// "Family, Given", as worklists show it.
    pub fn sortable(&self) -> String {
        format!("{}, {}", self.family, self.given)
    }
}

/// Parses a date of birth written YYYY-MM-DD, not in the future, not before 1900.
pub fn parse_date_of_birth(raw: &str, today: Date) -> Result<Date, PatientError> {
    let date: Date = raw
        .trim()
        .parse()
        .map_err(|_| PatientError::DateOfBirthFormat)?;
    check_date_of_birth(date, today)
}

/// Checks a date of birth's range.
pub fn check_date_of_birth(date: Date, today: Date) -> Result<Date, PatientError> {
    if date < jiff::civil::date(1900, 1, 1) || date > today {
        Err(PatientError::DateOfBirthRange)
    } else {
        Ok(date)
    }
}

/// A phone number as the patient gave it, checked to hold 7-15 digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Phone(String);

impl Phone {
    /// Parses a phone number.
    pub fn parse(raw: &str) -> Result<Self, PatientError> {
        let s = raw.split_whitespace().collect::<Vec<_>>().join(" ");
        let digits = s.chars().filter(char::is_ascii_digit).count();
        let ok = (7..=15).contains(&digits)
            && s.len() <= 32
            && s.chars()
                .all(|c| c.is_ascii_digit() || " +-.()".contains(c));
        if ok {
            Ok(Self(s))
        } else {
            Err(PatientError::Phone)
        }
    }

    /// The number as given (white space collapsed).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An email address (syntax only: one `@`, a dotted domain, no spaces).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Parses an email address; the domain is lowercased.
    pub fn parse(raw: &str) -> Result<Self, PatientError> {
        let s = raw.trim();
        let (local, domain) = s.split_once('@').ok_or(PatientError::Email)?;
        let ok = !local.is_empty()
            && s.len() <= 254
            && !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !s
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"".contains(c));
        if ok {
            Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
        } else {
            Err(PatientError::Email)
        }
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A preferred language as a BCP 47 tag: a 2-3 letter language, optional region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LanguageTag(String);

impl LanguageTag {
    /// Parses a tag such as `en`, `es`, `pt-BR` (normalised to `pt-BR`).
    pub fn parse(raw: &str) -> Result<Self, PatientError> {
        let s = raw.trim().replace('_', "-");
        let mut parts = s.split('-');
        let lang = parts.next().unwrap_or_default().to_ascii_lowercase();
        if !(2..=3).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(PatientError::Language);
        }
        let region = parts.next();
        if parts.next().is_some() {
            return Err(PatientError::Language);
        }
        match region {
            None => Ok(Self(lang)),
            Some(r) if r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()) => {
                Ok(Self(format!("{lang}-{}", r.to_ascii_uppercase())))
            }
            Some(_) => Err(PatientError::Language),
        }
    }

    /// English, the default.
    pub fn english() -> Self {
        Self("en".to_owned())
    }

    /// The tag.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A patient to be recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPatient {
    /// Local MRN, when known.
    pub mrn: Option<Mrn>,
    /// Name.
    pub name: PersonName,
    /// Date of birth.
    pub date_of_birth: Date,
    /// Phone.
    pub phone: Option<Phone>,
    /// Email.
    pub email: Option<Email>,
    /// Preferred language.
    pub preferred_language: LanguageTag,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrns() {
        assert_eq!(
            Mrn::parse(" mgh-00123 ").map(|m| m.0),
            Ok("MGH-00123".into())
        );
        assert!(Mrn::parse("").is_err());
        assert!(Mrn::parse("12 34").is_err());
        assert!(Mrn::parse("'; drop table").is_err());
    }

    #[test]
    fn names() {
        let n = PersonName::parse("  de  la Cruz ", "Ana María").expect("valid");
        assert_eq!(n.sortable(), "de la Cruz, Ana María");
        assert_eq!(
            PersonName::parse("", "A"),
            Err(PatientError::Name("family"))
        );
        assert_eq!(
            PersonName::parse("A", "\u{7}"),
            Err(PatientError::Name("given"))
        );
    }

    #[test]
    fn dates_of_birth() {
        let today = jiff::civil::date(2026, 11, 26);
        assert!(parse_date_of_birth("1961-04-09", today).is_ok());
        assert_eq!(
            parse_date_of_birth("09/04/1961", today),
            Err(PatientError::DateOfBirthFormat)
        );
        assert_eq!(
            parse_date_of_birth("2027-01-01", today),
            Err(PatientError::DateOfBirthRange)
        );
        assert_eq!(
            parse_date_of_birth("1899-12-31", today),
            Err(PatientError::DateOfBirthRange)
        );
        assert_eq!(
            parse_date_of_birth("2026-02-30", today),
            Err(PatientError::DateOfBirthFormat)
        );
    }

    #[test]
    fn phones_emails_languages() {
        assert!(Phone::parse("617-726-6773").is_ok());
        assert!(Phone::parse("+1 (617) 726 6773").is_ok());
        assert!(Phone::parse("12345").is_err());
        assert!(Phone::parse("617-CALL-NOW").is_err());
        assert_eq!(
            Email::parse("A.B@Example.ORG").map(|e| e.0),
            Ok("A.B@example.org".into())
        );
        for bad in [
            "", "no-at", "a@b", "a@@b.c", "a b@c.d", "@c.d", "a@.c", "a@c.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(LanguageTag::parse("ES").map(|l| l.0), Ok("es".into()));
        assert_eq!(LanguageTag::parse("pt_br").map(|l| l.0), Ok("pt-BR".into()));
        assert!(LanguageTag::parse("english").is_err());
        assert!(LanguageTag::parse("en-US-x").is_err());
    }
}
