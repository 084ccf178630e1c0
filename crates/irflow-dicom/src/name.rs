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

#[cfg(test)]
mod tests {
    use super::normalise_name;

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
