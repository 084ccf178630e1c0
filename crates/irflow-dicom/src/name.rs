//! Person names for matching.

/// Normalises a DICOM person name (`DOE^JOHN^^^`, `Doe^John=...`) or a name typed
/// by a person (`John Doe`, `doe, john`) into a key for matching: lower case,
/// accents removed, components and punctuation turned into single spaces, and the
/// words sorted, so `DOE^JOHN` and `John Doe` give the same key (`doe john`).
///
/// Only the first (alphabetic) component group of a DICOM name is used; the
/// ideographic and phonetic groups after `=` are ignored.
pub fn normalise_name(dicom_pn: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    let alphabetic = dicom_pn.split('=').next().unwrap_or_default();
    let mut folded = String::with_capacity(alphabetic.len());
    for ch in alphabetic.nfkd() {
        if unicode_normalization::char::is_combining_mark(ch) {
            continue;
        }
        match ch {
            'ß' => folded.push_str("ss"),
            'æ' | 'Æ' => folded.push_str("ae"),
            'ø' | 'Ø' => folded.push('o'),
            'đ' | 'Đ' => folded.push('d'),
            'ł' | 'Ł' => folded.push('l'),
            c if c.is_alphanumeric() => folded.extend(c.to_lowercase()),
            // Apostrophes and hyphens join: O'Brien = OBrien, Smith-Jones = SmithJones.
            '\'' | '’' | '-' => {}
            _ => folded.push(' '),
        }
    }
    let mut words: Vec<&str> = folded.split_whitespace().collect();
    words.sort_unstable();
    words.join(" ")
}

/// How a DICOM person name compares with the family and given names on file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameAgreement {
    /// The family names agree, and so do the given names when both have one (an
    /// initial agrees with a name it begins).
    Agrees,
    /// The file has no name to compare.
    Missing,
    /// The family names differ.
    FamilyDiffers,
    /// The family names agree; the given names differ.
    GivenDiffers,
}

/// Compares a DICOM person name (`DOE^JOHN`, or a typed `John Doe` / `Doe, John`)
/// with a patient's family and given names, word by word after [`normalise_name`]
/// (case, accents, apostrophes and hyphens do not count). The family names agree when
/// the words of one are all in the other (`GARCIA` and `García López`); in a name
/// without `^` or `,` the family name's words must be among the name's words. Names
/// written the other way round (`JOHN^DOE`) do not agree: staff decide.
pub fn compare_names(dicom_pn: &str, family: &str, given: &str) -> NameAgreement {
    fn words(s: &str) -> Vec<String> {
        normalise_name(s)
            .split(' ')
            .filter(|w| !w.is_empty())
            .map(str::to_owned)
            .collect()
    }
    fn within(a: &[String], b: &[String]) -> bool {
        !a.is_empty() && a.iter().all(|w| b.contains(w))
    }
    let alphabetic = dicom_pn.split('=').next().unwrap_or_default();
    let ours_family = words(family);
    let ours_given = words(given);
    let split = alphabetic
        .split_once('^')
        .or_else(|| alphabetic.split_once(','));
    let (theirs_family, theirs_given) = match split {
        Some((f, g)) => (words(f), words(g)),
        None => {
            let mut all = words(alphabetic);
            if all.is_empty() {
                return NameAgreement::Missing;
            }
            if !within(&ours_family, &all) {
                return NameAgreement::FamilyDiffers;
            }
            for w in &ours_family {
                if let Some(i) = all.iter().position(|x| x == w) {
                    all.remove(i);
                }
            }
            (ours_family.clone(), all)
        }
    };
    if theirs_family.is_empty() && theirs_given.is_empty() {
        return NameAgreement::Missing;
    }
    if !(within(&ours_family, &theirs_family) || within(&theirs_family, &ours_family)) {
        return NameAgreement::FamilyDiffers;
    }
    if ours_given.is_empty() || theirs_given.is_empty() {
        return NameAgreement::Agrees;
    }
    let initial_of =
        |short: &str, long: &str| short.chars().count() == 1 && long.starts_with(short);
    let agree = theirs_given.iter().any(|t| {
        ours_given
            .iter()
            .any(|o| t == o || initial_of(t, o) || initial_of(o, t))
    });
    if agree {
        NameAgreement::Agrees
    } else {
        NameAgreement::GivenDiffers
    }
}

#[cfg(test)]
mod tests {
    use super::{NameAgreement, compare_names, normalise_name};

    #[test]
    fn names_are_compared_family_first() {
        use NameAgreement::*;
        assert_eq!(compare_names("SMITH^JOHN", "Smith", "John"), Agrees);
        assert_eq!(compare_names("SMITH^J", "Smith", "John"), Agrees);
        assert_eq!(compare_names("SMITH", "Smith", "John"), Agrees);
        assert_eq!(compare_names("MÜLLER^JOSÉ^^^", "Muller", "Jose"), Agrees);
        assert_eq!(
            compare_names("GARCIA^MARIA", "García López", "María"),
            Agrees
        );
        assert_eq!(
            compare_names("O'BRIEN^SIOBHAN", "OBrien", "Siobhán"),
            Agrees
        );
        assert_eq!(compare_names("John Smith", "Smith", "John"), Agrees);
        assert_eq!(compare_names("Smith, John", "Smith", "John"), Agrees);
        assert_eq!(
            compare_names("SMITH^JOHN", "Haddad", "Layla"),
            FamilyDiffers
        );
        assert_eq!(compare_names("JOHN^SMITH", "Smith", "John"), FamilyDiffers);
        assert_eq!(compare_names("John Smyth", "Smith", "John"), FamilyDiffers);
        assert_eq!(compare_names("SMITH^JANE", "Smith", "John"), GivenDiffers);
        assert_eq!(compare_names("", "Smith", "John"), Missing);
        assert_eq!(compare_names("^^^", "Smith", "John"), Missing);
        assert_eq!(compare_names("=山田^太郎", "Yamada", "Tarou"), Missing);
    }

    #[test]
    fn dicom_and_typed_names_meet() {
        assert_eq!(normalise_name("DOE^JOHN^^^"), "doe john");
        assert_eq!(normalise_name("John Doe"), "doe john");
        assert_eq!(normalise_name("  doe ,  JOHN "), "doe john");
        assert_eq!(normalise_name("Müller^José"), "jose muller");
        assert_eq!(normalise_name("O'Brien^Siobhán"), "obrien siobhan");
        assert_eq!(
            normalise_name("Yamada^Tarou=山田^太郎=やまだ^たろう"),
            "tarou yamada"
        );
        assert_eq!(normalise_name(""), "");
        assert_eq!(normalise_name("^^^"), "");
        assert_ne!(normalise_name("DOE^JANE"), normalise_name("DOE^JOHN"));
    }
}
