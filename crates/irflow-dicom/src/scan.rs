//! A structural check of a Part 10 file before dicom-rs parses it: every element
//! header is walked (into sequences and items, with a depth limit) and every length
//! must fit inside the file and inside its parent. This keeps a hostile length field
//! from making the parser allocate gigabytes, and names truncation plainly.

use crate::DicomError;

const UNDEFINED: u32 = 0xFFFF_FFFF;

/// The value representations of PS3.5 (2024). Parsers disagree on how long the length
/// field of an unknown VR is, so an unknown VR is refused rather than guessed.
const KNOWN_VRS: [[u8; 2]; 34] = [
    *b"AE", *b"AS", *b"AT", *b"CS", *b"DA", *b"DS", *b"DT", *b"FL", *b"FD", *b"IS", *b"LO", *b"LT",
    *b"OB", *b"OD", *b"OF", *b"OL", *b"OV", *b"OW", *b"PN", *b"SH", *b"SL", *b"SQ", *b"SS", *b"ST",
    *b"SV", *b"TM", *b"UC", *b"UI", *b"UL", *b"UN", *b"UR", *b"US", *b"UT", *b"UV",
];
const MAX_DEPTH: usize = 32;
/// The largest inflated size of a deflated dataset.
const MAX_INFLATED_BYTES: u64 = 1024 * 1024 * 1024;

const IMPLICIT_LE: &str = "1.2.840.10008.1.2";
const EXPLICIT_BE: &str = "1.2.840.10008.1.2.2";
const DEFLATED_LE: &str = "1.2.840.10008.1.2.1.99";

#[derive(Clone, Copy)]
struct Encoding {
    explicit: bool,
    little: bool,
}

/// What the structural check learnt.
pub(crate) struct Checked {
    /// The transfer syntax UID.
    pub(crate) transfer_syntax: String,
    /// The dataset has pixel data (integer, float or double) at its top level.
    pub(crate) has_pixels: bool,
}

/// Checks a file from its `DICM` marker on.
pub(crate) fn check_part10(body: &[u8]) -> Result<Checked, DicomError> {
    let after_magic = body.get(4..).ok_or(DicomError::NotDicom)?;
    let (transfer_syntax, meta_len) = scan_meta(after_magic)?;
    let dataset = after_magic.get(meta_len..).unwrap_or_default();
    let has_pixels = match transfer_syntax.as_str() {
        DEFLATED_LE => {
            let inflated = inflate(dataset)?;
            check_dataset(
                &inflated,
                Encoding {
                    explicit: true,
                    little: true,
                },
            )?
        }
        EXPLICIT_BE => check_dataset(
            dataset,
            Encoding {
                explicit: true,
                little: false,
            },
        )?,
        IMPLICIT_LE => check_dataset(
            dataset,
            Encoding {
                explicit: false,
                little: true,
            },
        )?,
        _ => check_dataset(
            dataset,
            Encoding {
                explicit: true,
                little: true,
            },
        )?,
    };
    Ok(Checked {
        transfer_syntax,
        has_pixels,
    })
}

/// Walks the file meta group (explicit VR little endian, group 0002); returns the
/// transfer syntax and the group's length in bytes.
fn scan_meta(data: &[u8]) -> Result<(String, usize), DicomError> {
    let enc = Encoding {
        explicit: true,
        little: true,
    };
    let mut pos = 0;
    let mut transfer_syntax = None;
    while let Some(0x0002) = read_u16(data, pos, true) {
        let header = element_header(data, pos, enc)?;
        let end = header.value_start + header.length_usize()?;
        if header.length == UNDEFINED || end > data.len() {
            return Err(DicomError::Truncated(
                "the file meta group ends early".to_owned(),
            ));
        }
        if header.element == 0x0010 {
            let raw = data.get(header.value_start..end).unwrap_or_default();
            let text = String::from_utf8_lossy(raw);
            transfer_syntax = Some(
                text.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                    .to_owned(),
            );
        }
        pos = end;
    }
    let transfer_syntax = transfer_syntax
        .filter(|t| !t.is_empty())
        .ok_or(DicomError::Missing(
            "transfer syntax (0002,0010) in its file meta group",
        ))?;
    Ok((transfer_syntax, pos))
}

fn inflate(data: &[u8]) -> Result<Vec<u8>, DicomError> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(data)
        .take(MAX_INFLATED_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|_| DicomError::Corrupt("its deflated dataset does not inflate".to_owned()))?;
    if out.len() as u64 > MAX_INFLATED_BYTES {
        return Err(DicomError::Invalid(
            "its deflated dataset inflates to more than 1 GiB".to_owned(),
        ));
    }
    Ok(out)
}

/// Walks the dataset; tells whether it has pixel data at its top level.
fn check_dataset(data: &[u8], enc: Encoding) -> Result<bool, DicomError> {
    let mut walker = Walker {
        data,
        enc,
        has_pixels: false,
    };
    walker.elements(0, data.len(), false, 0)?;
    Ok(walker.has_pixels)
}

struct Header {
    group: u16,
    element: u16,
    vr: [u8; 2],
    length: u32,
    value_start: usize,
}

impl Header {
    fn length_usize(&self) -> Result<usize, DicomError> {
        if self.length == UNDEFINED {
            Ok(0)
        } else {
            usize::try_from(self.length)
                .map_err(|_| DicomError::Corrupt("an element length does not fit".to_owned()))
        }
    }
}

/// The size of one value of a binary VR.
fn unit_size(vr: [u8; 2]) -> Option<usize> {
    match &vr {
        b"AT" | b"FL" | b"SL" | b"UL" | b"OF" | b"OL" => Some(4),
        b"FD" | b"OD" | b"SV" | b"UV" | b"OV" => Some(8),
        b"SS" | b"US" | b"OW" => Some(2),
        _ => None,
    }
}

fn read_u16(data: &[u8], pos: usize, little: bool) -> Option<u16> {
    let b = data.get(pos..pos.checked_add(2)?)?;
    let arr = [*b.first()?, *b.get(1)?];
    Some(if little {
        u16::from_le_bytes(arr)
    } else {
        u16::from_be_bytes(arr)
    })
}

fn read_u32(data: &[u8], pos: usize, little: bool) -> Option<u32> {
    let b = data.get(pos..pos.checked_add(4)?)?;
    let arr: [u8; 4] = b.try_into().ok()?;
    Some(if little {
        u32::from_le_bytes(arr)
    } else {
        u32::from_be_bytes(arr)
    })
}

fn truncated(what: &str) -> DicomError {
    DicomError::Truncated(format!("{what} runs past the end of the file"))
}

fn element_header(data: &[u8], pos: usize, enc: Encoding) -> Result<Header, DicomError> {
    let group = read_u16(data, pos, enc.little).ok_or_else(|| truncated("an element header"))?;
    let element =
        read_u16(data, pos + 2, enc.little).ok_or_else(|| truncated("an element header"))?;
    if group == 0xFFFE {
        // Items and delimiters have no VR, in every encoding.
        let length =
            read_u32(data, pos + 4, enc.little).ok_or_else(|| truncated("an item header"))?;
        return Ok(Header {
            group,
            element,
            vr: *b"  ",
            length,
            value_start: pos + 8,
        });
    }
    if !enc.explicit {
        let length =
            read_u32(data, pos + 4, enc.little).ok_or_else(|| truncated("an element header"))?;
        return Ok(Header {
            group,
            element,
            vr: *b"  ",
            length,
            value_start: pos + 8,
        });
    }
    let vr_bytes = data
        .get(pos + 4..pos + 6)
        .ok_or_else(|| truncated("an element header"))?;
    let vr = [
        *vr_bytes.first().unwrap_or(&0),
        *vr_bytes.get(1).unwrap_or(&0),
    ];
    if !KNOWN_VRS.contains(&vr) {
        return Err(DicomError::Corrupt(format!(
            "element ({group:04X},{element:04X}) has no valid value representation"
        )));
    }
    let long = matches!(
        &vr,
        b"OB"
            | b"OD"
            | b"OF"
            | b"OL"
            | b"OV"
            | b"OW"
            | b"SQ"
            | b"SV"
            | b"UC"
            | b"UN"
            | b"UR"
            | b"UT"
            | b"UV"
    );
    if long {
        let length =
            read_u32(data, pos + 8, enc.little).ok_or_else(|| truncated("an element header"))?;
        Ok(Header {
            group,
            element,
            vr,
            length,
            value_start: pos + 12,
        })
    } else {
        let length =
            read_u16(data, pos + 6, enc.little).ok_or_else(|| truncated("an element header"))?;
        Ok(Header {
            group,
            element,
            vr,
            length: u32::from(length),
            value_start: pos + 8,
        })
    }
}

struct Walker<'a> {
    data: &'a [u8],
    enc: Encoding,
    has_pixels: bool,
}

impl Walker<'_> {
    /// Walks elements from `pos` up to `end`, or (`until_delimiter`) up to an item
    /// delimitation item. Returns the position after what was walked.
    fn elements(
        &mut self,
        mut pos: usize,
        end: usize,
        until_delimiter: bool,
        depth: usize,
    ) -> Result<usize, DicomError> {
        if depth > MAX_DEPTH {
            return Err(DicomError::Corrupt(
                "sequences are nested too deeply".to_owned(),
            ));
        }
        while pos < end {
            if !until_delimiter && depth == 0 && end - pos < 8 {
                // A few bytes of trailing padding after the last element.
                return Ok(end);
            }
            let h = element_header(self.data, pos, self.enc)?;
            if h.group == 0xFFFE {
                match h.element {
                    0xE00D if until_delimiter => return Ok(h.value_start),
                    // A stray delimiter: let the parser decide; nothing to allocate here.
                    0xE00D | 0xE0DD => {
                        pos = h.value_start;
                        continue;
                    }
                    _ => {
                        return Err(DicomError::Corrupt(
                            "an item appears outside a sequence".to_owned(),
                        ));
                    }
                }
            }
            let is_pixel_data = h.group == 0x7FE0 && h.element == 0x0010;
            if depth == 0 && h.group == 0x7FE0 && matches!(h.element, 0x0008 | 0x0009 | 0x0010) {
                self.has_pixels = true;
            }
            if h.length == UNDEFINED {
                if is_pixel_data {
                    pos = self.fragments(h.value_start, end)?;
                } else {
                    // A sequence. dicom-rs reads any undefined-length element as a sequence
                    // in the dataset's own encoding — also UN, which by CP-246 holds implicit
                    // VR data — so the check reads it the same way, and refuses what dicom-rs
                    // would misread.
                    let after = self.items(h.value_start, end, true, depth + 1);
                    pos = match after {
                        Err(_) if &h.vr == b"UN" => {
                            return Err(DicomError::Corrupt(format!(
                                "element ({:04X},{:04X}) is of unknown type (UN) with undefined length; \
                                 irflow cannot read such sequences",
                                h.group, h.element
                            )));
                        }
                        other => other?,
                    };
                }
                continue;
            }
            let value_end = h
                .value_start
                .checked_add(h.length_usize()?)
                .filter(|e| *e <= end)
                .ok_or_else(|| {
                    truncated(&format!("element ({:04X},{:04X})", h.group, h.element))
                })?;
            // dicom-rs reads binary values in whole units and would lose its place in a
            // value whose length is not a multiple of the unit: refuse such a value.
            let vr = self.effective_vr(&h);
            if let Some(unit) = vr.and_then(unit_size)
                && h.length_usize()? % unit != 0
            {
                return Err(DicomError::Corrupt(format!(
                    "element ({:04X},{:04X}) has a length that is not a whole number of values",
                    h.group, h.element
                )));
            }
            let is_sequence = vr == Some(*b"SQ");
            if is_sequence && value_end > h.value_start {
                self.items(h.value_start, value_end, false, depth + 1)?;
            }
            pos = value_end;
        }
        if until_delimiter {
            return Err(truncated("an item without its delimiter"));
        }
        Ok(pos)
    }

    /// The VR as written (explicit) or as the dictionary has it (implicit, the way
    /// dicom-rs reads it); pixel-ish VRs of the dictionary (US/SS, OB/OW) count as 16-bit.
    fn effective_vr(&self, h: &Header) -> Option<[u8; 2]> {
        if self.enc.explicit {
            return Some(h.vr);
        }
        use dicom_core::dictionary::{DataDictionary, DataDictionaryEntry, VirtualVr};
        let entry = dicom_dictionary_std::StandardDataDictionary
            .by_tag(dicom_core::Tag(h.group, h.element))?;
        match entry.vr() {
            VirtualVr::Exact(vr) => {
                let text = vr.to_string();
                let bytes = text.as_bytes();
                Some([*bytes.first()?, *bytes.get(1)?])
            }
            VirtualVr::Xs | VirtualVr::Lt | VirtualVr::Ox | VirtualVr::Px => Some(*b"OW"),
            _ => None,
        }
    }

    /// Walks the items of a sequence.
    fn items(
        &mut self,
        mut pos: usize,
        end: usize,
        until_delimiter: bool,
        depth: usize,
    ) -> Result<usize, DicomError> {
        while pos < end {
            let h = element_header(self.data, pos, self.enc)?;
            match (h.group, h.element) {
                (0xFFFE, 0xE0DD) => {
                    if until_delimiter {
                        return Ok(h.value_start);
                    }
                    pos = h.value_start;
                }
                (0xFFFE, 0xE000) if h.length == UNDEFINED => {
                    pos = self.elements(h.value_start, end, true, depth + 1)?;
                }
                (0xFFFE, 0xE000) => {
                    let item_end = h
                        .value_start
                        .checked_add(h.length_usize()?)
                        .filter(|e| *e <= end)
                        .ok_or_else(|| truncated("a sequence item"))?;
                    self.elements(h.value_start, item_end, false, depth + 1)?;
                    pos = item_end;
                }
                _ => {
                    return Err(DicomError::Corrupt(
                        "a sequence holds something other than items".to_owned(),
                    ));
                }
            }
        }
        if until_delimiter {
            return Err(truncated("a sequence without its delimiter"));
        }
        Ok(pos)
    }

    /// Walks the fragments of encapsulated pixel data up to the sequence delimiter.
    fn fragments(&mut self, mut pos: usize, end: usize) -> Result<usize, DicomError> {
        while pos < end {
            let h = element_header(self.data, pos, self.enc)?;
            match (h.group, h.element) {
                (0xFFFE, 0xE0DD) => return Ok(h.value_start),
                (0xFFFE, 0xE000) if h.length != UNDEFINED => {
                    pos = h
                        .value_start
                        .checked_add(h.length_usize()?)
                        .filter(|e| *e <= end)
                        .ok_or_else(|| truncated("a pixel data fragment"))?;
                }
                _ => {
                    return Err(DicomError::Corrupt(
                        "the encapsulated pixel data holds something other than fragments"
                            .to_owned(),
                    ));
                }
            }
        }
        Err(truncated("the encapsulated pixel data"))
    }
}
