//! Outside imaging, without a database and without async: reading the metadata of
//! DICOM Part 10 files, wrapping received datasets as Part 10, rendering a frame to
//! PNG with window/level presets, normalising person names for matching, and
//! unpacking uploads (files, folders, zips, CD folders with a DICOMDIR) under limits.
//!
//! Everything here takes untrusted bytes. Nothing panics on input: malformed data
//! comes back as a [`DicomError`], [`RenderError`] or [`UnpackError`] that says
//! what is wrong, and never includes patient data in the message.

mod meta;
mod name;
mod render;
mod scan;
pub mod synth;
mod unpack;

pub use meta::{DicomError, InstanceMeta, looks_like_dicom, read_meta, study_uid_hint, to_part10};
pub use name::{NameAgreement, compare_names, normalise_name};
pub use render::{Preset, RenderError, known_render_problem, render_png};
pub use unpack::{
    Limits, UnpackError, UnpackReport, Unpacked, unpack_files, unpack_path, unpack_zip,
};
