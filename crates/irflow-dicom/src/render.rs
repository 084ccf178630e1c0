//! Rendering one frame to PNG: decode (dicom-pixeldata), apply the modality LUT,
//! window/level to 8 bits, downscale, encode.
//!
//! The image's description (rows, columns, bits, samples, frames) is checked against
//! sane bounds and against the bytes actually present before any decoder runs, so a
//! lying header gets a [`RenderError`] instead of a huge allocation or a panic.

use dicom_dictionary_std::tags;
use dicom_encoding::TransferSyntaxIndex;
use dicom_object::DefaultDicomObject;
use dicom_pixeldata::{ConvertOptions, PixelDecoder, VoiLutOption};

use crate::DicomError;

/// Window/level presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Preset {
    /// The file's own window (Window Center/Width) when it has one, else the frame's min/max.
    #[default]
    Default,
    /// MR (T2 and others): MR values have no fixed scale, so the window spans the
    /// frame's 1st to 99.5th percentile, which keeps fluid bright without letting a
    /// few hot pixels flatten the image.
    MrT2,
    /// CT bone: centre 400 HU, width 1800.
    CtBone,
    /// CT soft tissue: centre 40 HU, width 400.
    CtSoft,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 4] = [
        Preset::Default,
        Preset::MrT2,
        Preset::CtBone,
        Preset::CtSoft,
    ];

    /// A short name for URLs: `default`, `mr-t2`, `ct-bone`, `ct-soft`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Preset::Default => "default",
            Preset::MrT2 => "mr-t2",
            Preset::CtBone => "ct-bone",
            Preset::CtSoft => "ct-soft",
        }
    }

    /// For people.
    pub const fn label(self) -> &'static str {
        match self {
            Preset::Default => "As stored",
            Preset::MrT2 => "MR T2",
            Preset::CtBone => "CT bone",
            Preset::CtSoft => "CT soft tissue",
        }
    }
}

impl std::str::FromStr for Preset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                format!("unknown preset {s:?}: expected default, mr-t2, ct-bone or ct-soft")
            })
    }
}

/// Why a frame could not be rendered. The file is still stored; this says why it cannot be shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    /// The file is not readable DICOM.
    #[error(transparent)]
    Dicom(#[from] DicomError),
    /// The instance has no pixel data (e.g. a structured report).
    #[error("this instance has no image (no pixel data)")]
    NoPixelData,
    /// The requested frame is past the last one.
    #[error("frame {frame} does not exist (the image has {frames})")]
    NoSuchFrame {
        /// Asked for (0-based).
        frame: u32,
        /// How many there are.
        frames: u32,
    },
    /// The pixel data uses a compression irflow cannot decode.
    #[error("the image is stored as {0}, which irflow cannot decode")]
    Undecodable(String),
    /// The image uses a layout irflow does not display.
    #[error("the image cannot be shown: {0}")]
    Unsupported(String),
    /// The compressed image could not be decoded.
    #[error("the {codec} image could not be decoded ({detail})")]
    DecodeFailed {
        /// The transfer syntax's name.
        codec: String,
        /// What the decoder said.
        detail: String,
    },
    /// The pixel data is inconsistent with its description.
    #[error("the image data is damaged: {0}")]
    Damaged(String),
}

/// Largest rows or columns accepted.
const MAX_EDGE: u32 = 16_384;
/// Largest number of frames accepted.
const MAX_FRAMES: u32 = 20_000;
/// Largest decoded frame, in bytes.
const MAX_FRAME_BYTES: u64 = 256 * 1024 * 1024;

struct Layout {
    rows: u32,
    columns: u32,
    samples: u16,
    bits_allocated: u16,
    frames: u32,
    monochrome1: bool,
    /// Colour samples stored plane by plane (all R, then all G, then all B).
    planar_by_plane: bool,
    /// YBR_FULL_422: two samples of luma share one pair of chroma samples.
    subsampled: bool,
}

impl Layout {
    fn frame_bytes(&self) -> u64 {
        let bits = u64::from(self.rows)
            * u64::from(self.columns)
            * u64::from(self.samples)
            * u64::from(self.bits_allocated);
        bits.div_ceil(8)
    }
}

fn int(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> Option<i64> {
    obj.get(tag)?.to_int::<i64>().ok()
}

fn text(obj: &DefaultDicomObject, tag: dicom_core::Tag) -> String {
    obj.get(tag)
        .and_then(|e| {
            e.to_str()
                .ok()
                .map(|s| s.trim_matches(|c: char| c == '\0' || c == ' ').to_owned())
        })
        .unwrap_or_default()
}

fn layout(obj: &DefaultDicomObject) -> Result<Layout, RenderError> {
    let in_range = |name: &str, value: Option<i64>, lo: i64, hi: i64| -> Result<i64, RenderError> {
        match value {
            Some(v) if (lo..=hi).contains(&v) => Ok(v),
            Some(_) => Err(RenderError::Damaged(format!("{name} is out of range"))),
            None => Err(RenderError::Damaged(format!("{name} is missing"))),
        }
    };
    let rows = in_range("Rows", int(obj, tags::ROWS), 1, i64::from(MAX_EDGE))?;
    let columns = in_range("Columns", int(obj, tags::COLUMNS), 1, i64::from(MAX_EDGE))?;
    let samples = in_range(
        "Samples per Pixel",
        int(obj, tags::SAMPLES_PER_PIXEL).or(Some(1)),
        1,
        4,
    )?;
    let bits_allocated = in_range("Bits Allocated", int(obj, tags::BITS_ALLOCATED), 1, 64)?;
    if !matches!(bits_allocated, 1 | 8 | 16) {
        return Err(RenderError::Unsupported(format!(
            "{bits_allocated} bits allocated per sample"
        )));
    }
    let bits_stored = in_range(
        "Bits Stored",
        int(obj, tags::BITS_STORED).or(Some(bits_allocated)),
        1,
        bits_allocated,
    )?;
    if let Some(high_bit) = int(obj, tags::HIGH_BIT)
        && !(0..bits_allocated).contains(&high_bit)
    {
        return Err(RenderError::Damaged("High Bit is out of range".to_owned()));
    }
    let _ = bits_stored;
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        None => 1,
        Some(e) => {
            let raw = e.to_str().map(|s| s.trim().to_owned()).unwrap_or_default();
            if raw.is_empty() {
                1
            } else {
                let n: i64 = raw.parse().map_err(|_| {
                    RenderError::Damaged("Number of Frames is not a number".to_owned())
                })?;
                in_range("Number of Frames", Some(n), 1, i64::from(MAX_FRAMES))?
            }
        }
    };
    if samples == 2 || samples == 4 {
        return Err(RenderError::Unsupported(format!(
            "{samples} samples per pixel"
        )));
    }
    let photometric = text(obj, tags::PHOTOMETRIC_INTERPRETATION).to_ascii_uppercase();
    let known = [
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_RCT",
        "YBR_ICT",
        "PALETTE COLOR",
    ];
    if !photometric.is_empty() && !known.contains(&photometric.as_str()) {
        return Err(RenderError::Unsupported(format!(
            "photometric interpretation {photometric}"
        )));
    }
    if photometric == "PALETTE COLOR" {
        return Err(RenderError::Unsupported("palette colour images".to_owned()));
    }
    let planar = int(obj, tags::PLANAR_CONFIGURATION).unwrap_or(0);
    let layout = Layout {
        rows: rows as u32,
        columns: columns as u32,
        samples: samples as u16,
        bits_allocated: bits_allocated as u16,
        frames: frames as u32,
        monochrome1: photometric == "MONOCHROME1",
        planar_by_plane: samples == 3 && planar == 1,
        subsampled: photometric == "YBR_FULL_422",
    };
    if layout.frame_bytes() > MAX_FRAME_BYTES {
        return Err(RenderError::Unsupported(
            "the frame is too large to show".to_owned(),
        ));
    }
    Ok(layout)
}

/// Renders frame `frame` (0-based) as an 8-bit greyscale (or RGB) PNG no larger than
/// `max_edge` pixels on its longer side (0: full size).
pub fn render_png(
    part10: &[u8],
    frame: u32,
    preset: Preset,
    max_edge: u32,
) -> Result<Vec<u8>, RenderError> {
    let obj = crate::meta::open(part10)?;
    let Some(pixel_data) = obj.get(tags::PIXEL_DATA) else {
        if obj.get(tags::FLOAT_PIXEL_DATA).is_some()
            || obj.get(tags::DOUBLE_FLOAT_PIXEL_DATA).is_some()
        {
            return Err(RenderError::Unsupported(
                "floating-point pixel data".to_owned(),
            ));
        }
        return Err(RenderError::NoPixelData);
    };
    let layout = layout(&obj)?;
    if frame >= layout.frames {
        return Err(RenderError::NoSuchFrame {
            frame,
            frames: layout.frames,
        });
    }
    let ts_uid = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches('\0')
        .to_owned();
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    let ts = registry
        .get(&ts_uid)
        .ok_or_else(|| RenderError::Undecodable(ts_uid.clone()))?;
    if !ts.can_decode_all() {
        return Err(RenderError::Undecodable(ts.name().to_owned()));
    }
    match pixel_data.value() {
        dicom_core::DicomValue::Primitive(p) => {
            if ts.is_encapsulated_pixel_data() {
                return Err(RenderError::Damaged(
                    "compressed pixel data is stored unencapsulated".to_owned(),
                ));
            }
            if layout.subsampled {
                return Err(RenderError::Unsupported(
                    "uncompressed YBR_FULL_422 colour images".to_owned(),
                ));
            }
            if layout.planar_by_plane && layout.bits_allocated != 8 {
                return Err(RenderError::Unsupported(
                    "plane-by-plane colour images deeper than 8 bits".to_owned(),
                ));
            }
            let have = p.to_bytes().len() as u64;
            let need = layout
                .frame_bytes()
                .saturating_mul(u64::from(layout.frames));
            if have < need {
                return Err(RenderError::Damaged(format!(
                    "the pixel data has {have} bytes where {need} are described"
                )));
            }
        }
        dicom_core::DicomValue::PixelSequence(seq) => {
            if !ts.is_encapsulated_pixel_data() {
                return Err(RenderError::Damaged(
                    "pixel data is encapsulated in a native transfer syntax".to_owned(),
                ));
            }
            if seq.fragments().iter().all(|f| f.is_empty()) {
                return Err(RenderError::Damaged(
                    "the pixel data has no fragments".to_owned(),
                ));
            }
            if u32::try_from(seq.fragments().len()).unwrap_or(u32::MAX) < layout.frames
                && seq.offset_table().is_empty()
                && layout.frames > 1
            {
                // Each frame is at least one fragment unless an offset table says otherwise.
                return Err(RenderError::Damaged(
                    "fewer fragments than frames".to_owned(),
                ));
            }
        }
        dicom_core::DicomValue::Sequence(_) => {
            return Err(RenderError::Damaged("pixel data is a sequence".to_owned()));
        }
    }
    let decode_error = |e: &dyn std::fmt::Display| {
        if ts.is_encapsulated_pixel_data() {
            RenderError::DecodeFailed {
                codec: ts.name().to_owned(),
                detail: short(&e.to_string()),
            }
        } else {
            RenderError::Damaged(short(&e.to_string()))
        }
    };
    let decoded = obj
        .decode_pixel_data_frame(frame)
        .map_err(|e| decode_error(&e))?;
    if decoded.rows() != layout.rows || decoded.columns() != layout.columns {
        return Err(RenderError::Damaged(
            "the compressed image's size differs from Rows/Columns".to_owned(),
        ));
    }
    let (width, height) = (layout.columns, layout.rows);
    let pixels = width as usize * height as usize;
    let (channels, bytes) = if decoded.samples_per_pixel() == 1 {
        let options = ConvertOptions::new().with_voi_lut(VoiLutOption::Identity);
        let values: Vec<f32> = decoded
            .to_vec_frame_with_options(0, &options)
            .map_err(|e| decode_error(&e))?;
        if values.len() < pixels {
            return Err(RenderError::Damaged(
                "fewer pixels than described".to_owned(),
            ));
        }
        let window = match preset {
            Preset::CtBone => Window {
                center: 400.0,
                width: 1800.0,
            },
            Preset::CtSoft => Window {
                center: 40.0,
                width: 400.0,
            },
            Preset::MrT2 => {
                percentile_window(values.get(..pixels).unwrap_or_default(), 0.01, 0.995)
            }
            Preset::Default => file_window(&decoded).unwrap_or_else(|| {
                percentile_window(values.get(..pixels).unwrap_or_default(), 0.0, 1.0)
            }),
        };
        let mut grey: Vec<u8> = values
            .iter()
            .take(pixels)
            .map(|v| window.apply(*v))
            .collect();
        if layout.monochrome1 {
            for g in &mut grey {
                *g = 255 - *g;
            }
        }
        (1usize, grey)
    } else if layout.planar_by_plane && !ts.is_encapsulated_pixel_data() {
        // dicom-pixeldata converts only interleaved colour; interleave the planes here.
        let raw = decoded.frame_data(0).map_err(|e| decode_error(&e))?;
        let plane = |i: usize| raw.get(i * pixels..(i + 1) * pixels);
        let (Some(r), Some(g), Some(b)) = (plane(0), plane(1), plane(2)) else {
            return Err(RenderError::Damaged(
                "fewer pixels than described".to_owned(),
            ));
        };
        let mut rgb = Vec::with_capacity(pixels * 3);
        for ((r, g), b) in r.iter().zip(g).zip(b) {
            rgb.extend_from_slice(&[*r, *g, *b]);
        }
        (3usize, rgb)
    } else {
        let need = pixels * 3;
        let rgb: Vec<u8> = if decoded.bits_allocated() > 8 {
            let wide: Vec<u16> = decoded.to_vec_frame(0).map_err(|e| decode_error(&e))?;
            let shift = decoded.bits_stored().clamp(8, 16) - 8;
            wide.iter()
                .take(need)
                .map(|v| (v >> shift).min(255) as u8)
                .collect()
        } else {
            decoded.to_vec_frame(0).map_err(|e| decode_error(&e))?
        };
        let rgb = rgb
            .get(..need)
            .ok_or_else(|| RenderError::Damaged("fewer pixels than described".to_owned()))?;
        (3usize, rgb.to_vec())
    };
    let (w, h, scaled) = downscale(&bytes, width, height, channels, max_edge);
    encode_png(&scaled, w, h, channels)
}

fn short(message: &str) -> String {
    message.chars().take(200).collect()
}

#[derive(Debug, Clone, Copy)]
struct Window {
    center: f64,
    width: f64,
}

impl Window {
    /// DICOM's linear VOI function (PS3.3 C.11.2.1.2.1), to 0..=255.
    fn apply(self, value: f32) -> u8 {
        let x = f64::from(value);
        if !x.is_finite() {
            return 0;
        }
        let width = self.width.max(1.0);
        let low = self.center - 0.5 - (width - 1.0) / 2.0;
        let high = self.center - 0.5 + (width - 1.0) / 2.0;
        if x <= low {
            0
        } else if x > high {
            255
        } else {
            (((x - (self.center - 0.5)) / (width - 1.0) + 0.5) * 255.0).clamp(0.0, 255.0) as u8
        }
    }
}

fn file_window(decoded: &dicom_pixeldata::DecodedPixelData<'_>) -> Option<Window> {
    let first = *decoded.window().ok()??.first()?;
    (first.width.is_finite() && first.center.is_finite() && first.width >= 1.0).then_some(Window {
        center: first.center,
        width: first.width,
    })
}

/// A window from the `low` to the `high` quantile of the values (min/max for 0 and 1).
fn percentile_window(values: &[f32], low: f64, high: f64) -> Window {
    let mut finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Window {
            center: 0.0,
            width: 1.0,
        };
    }
    finite.sort_unstable_by(f32::total_cmp);
    let at = |q: f64| {
        let last = finite.len() - 1;
        let index = ((last as f64) * q).round() as usize;
        f64::from(finite.get(index.min(last)).copied().unwrap_or_default())
    };
    let (lo, hi) = (at(low), at(high));
    let width = (hi - lo).max(1.0);
    Window {
        center: lo + width / 2.0,
        width,
    }
}

/// Area-average downscale so the longer side is at most `max_edge` (0: unchanged).
fn downscale(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
    max_edge: u32,
) -> (u32, u32, Vec<u8>) {
    let longer = width.max(height);
    if max_edge == 0 || longer <= max_edge {
        return (width, height, pixels.to_vec());
    }
    let scale = f64::from(max_edge) / f64::from(longer);
    let new_w = ((f64::from(width) * scale).round() as u32).max(1);
    let new_h = ((f64::from(height) * scale).round() as u32).max(1);
    let (w, h) = (width as usize, height as usize);
    let mut out = Vec::with_capacity(new_w as usize * new_h as usize * channels);
    for y in 0..new_h as usize {
        let y0 = y * h / new_h as usize;
        let y1 = (((y + 1) * h) / new_h as usize).max(y0 + 1).min(h);
        for x in 0..new_w as usize {
            let x0 = x * w / new_w as usize;
            let x1 = (((x + 1) * w) / new_w as usize).max(x0 + 1).min(w);
            for c in 0..channels {
                let mut sum = 0u64;
                let mut n = 0u64;
                for yy in y0..y1 {
                    for xx in x0..x1 {
                        if let Some(v) = pixels.get((yy * w + xx) * channels + c) {
                            sum += u64::from(*v);
                            n += 1;
                        }
                    }
                }
                out.push(sum.checked_div(n).unwrap_or(0) as u8);
            }
        }
    }
    (new_w, new_h, out)
}

fn encode_png(
    pixels: &[u8],
    width: u32,
    height: u32,
    channels: usize,
) -> Result<Vec<u8>, RenderError> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(if channels == 3 {
            png::ColorType::Rgb
        } else {
            png::ColorType::Grayscale
        });
        encoder.set_depth(png::BitDepth::Eight);
        encoder.set_compression(png::Compression::Fast);
        let mut writer = encoder
            .write_header()
            .map_err(|e| RenderError::Damaged(format!("PNG encoding failed: {e}")))?;
        writer
            .write_image_data(pixels)
            .map_err(|e| RenderError::Damaged(format!("PNG encoding failed: {e}")))?;
    }
    Ok(out)
}

/// Why an instance will not render, when its metadata already says so (no pixel data,
/// or a compression irflow has no decoder for); `None` when it is expected to render.
/// Cheap: no pixel data is touched, so ingest can record it for every instance.
pub fn known_render_problem(meta: &crate::InstanceMeta) -> Option<String> {
    if meta.frames == 0 {
        return Some(RenderError::NoPixelData.to_string());
    }
    let registry = dicom_transfer_syntax_registry::TransferSyntaxRegistry;
    match registry.get(&meta.transfer_syntax) {
        None => Some(RenderError::Undecodable(meta.transfer_syntax.clone()).to_string()),
        Some(ts) if !ts.can_decode_all() => {
            Some(RenderError::Undecodable(ts.name().to_owned()).to_string())
        }
        Some(_) => None,
    }
}
