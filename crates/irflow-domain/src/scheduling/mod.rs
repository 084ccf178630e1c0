//! Slot finding: when can a case be done, in which room, by which radiologist, with
//! a recovery chair when the patient drives home — never before the earliest safe
//! time, never on a room of the wrong modality or with a radiologist not credentialed
//! for the procedure, never over a resource's other bookings.
//!
//! Pure and clock-free. Availability is written in the site's local civil time
//! (weekly templates: "Mon 08:00-16:00") and turned into instants with the site's
//! IANA zone, so daylight-saving days are right: a slot at 08:00 is 08:00 on the wall
//! clock on both sides of a transition, and a wall-clock time that does not exist is
//! never offered.

mod availability;
mod finder;

pub use availability::{BusyIndex, Interval, WeeklyWindow};
pub use finder::{
    ChairInfo, ChairOption, RadiologistInfo, Refusal, ResourceId, RoomInfo, SlotOption,
    SlotRequest, SlotResources, TimeOfDay, check_option, find_slots, search_is_complete,
};
