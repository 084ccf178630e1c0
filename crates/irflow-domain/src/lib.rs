//! irflow's domain: the case pathway, patients and people, with no I/O.
//!
//! Everything clinical or pathway-related is decided here and unit-tested here.
//! Nothing in this crate knows about HTTP, SQL or wire formats; the edge crates
//! parse input into these types and map them back out.

pub mod catalogue;
pub mod ids;
pub mod imaging;
pub mod pathway;
pub mod patient;
pub mod people;
pub mod procedure_day;
pub mod procedure_record;
pub mod referral;
pub mod reminders;
pub mod scheduling;
pub mod screening;

pub use catalogue::{BleedingRisk, Modality, Procedure, SpineLevels, SpineRegion};
pub use ids::{CaseId, PatientId, UserId};
pub use pathway::{Action, CaseState, PathwayEvent, TransitionError, TransitionRequest};
pub use patient::{Email, LanguageTag, Mrn, NewPatient, PatientError, PersonName, Phone};
pub use people::{Actor, Role, Username};
pub use referral::{
    Channel, FieldError, FieldErrors, Icd10Code, ImagingModality, PriorImaging, ReferralDetails,
    ReferralForm, ReturnReason, Side, Urgency,
};
