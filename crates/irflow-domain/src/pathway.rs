//! The case pathway: one case is one referral for one procedure, and it moves
//! through these states only by the transitions in [`Action::target`].
//!
//! ```text
//! referred -> screening -> ready -> scheduled -> confirmed -> arrived -> in_procedure
//!    |  ^         |  ^        ^                                           |
//!    v  |         v  |        |                                           v
//! returned     deferred / awaiting_action                             recovery -> discharged -> followed_up
//! side exits: cancelled (before the procedure), no_show (booked, did not come; can be rebooked),
//!             not_treated (arrived -> ready: sent home untreated, e.g. a checklist stop; can be rebooked)
//! ```
//!
//! Every accepted transition produces a [`PathwayEvent`] (who, when, why); every
//! refused one is a [`TransitionError`] that says why in plain words and changes nothing.

use std::fmt;
use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::people::{Actor, Role};
use crate::referral::ReturnReason;

/// Where a case is on the pathway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CaseState {
    /// A referral has arrived and waits for a radiologist to vet it.
    Referred,
    /// Sent back to the referrer with a reason; they may amend and resubmit.
    Returned,
    /// Accepted; the nurse's screening call is due.
    Screening,
    /// Screening found a reason to wait (e.g. an infection) until a date or until resolved.
    Deferred,
    /// Waiting on an action, such as clearance from the prescribing doctor.
    AwaitingAction,
    /// Safe to book.
    Ready,
    /// Booked.
    Scheduled,
    /// The patient confirmed the booking.
    Confirmed,
    /// Checked in on the day.
    Arrived,
    /// In the procedure room.
    InProcedure,
    /// Being monitored after the procedure.
    Recovery,
    /// Gone home with discharge instructions.
    Discharged,
    /// The follow-up call is done; the case is closed.
    FollowedUp,
    /// Cancelled before the procedure (side exit).
    Cancelled,
    /// Did not attend a booking (side exit; can be rebooked).
    NoShow,
}

impl CaseState {
    /// Every state, in pathway order.
    pub const ALL: [CaseState; 15] = [
        CaseState::Referred,
        CaseState::Returned,
        CaseState::Screening,
        CaseState::Deferred,
        CaseState::AwaitingAction,
        CaseState::Ready,
        CaseState::Scheduled,
        CaseState::Confirmed,
        CaseState::Arrived,
        CaseState::InProcedure,
        CaseState::Recovery,
        CaseState::Discharged,
        CaseState::FollowedUp,
        CaseState::Cancelled,
        CaseState::NoShow,
    ];

    /// The stable machine name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CaseState::Referred => "referred",
            CaseState::Returned => "returned",
            CaseState::Screening => "screening",
            CaseState::Deferred => "deferred",
            CaseState::AwaitingAction => "awaiting_action",
            CaseState::Ready => "ready",
            CaseState::Scheduled => "scheduled",
            CaseState::Confirmed => "confirmed",
            CaseState::Arrived => "arrived",
            CaseState::InProcedure => "in_procedure",
            CaseState::Recovery => "recovery",
            CaseState::Discharged => "discharged",
            CaseState::FollowedUp => "followed_up",
            CaseState::Cancelled => "cancelled",
            CaseState::NoShow => "no_show",
        }
    }

    /// A label for people.
    pub const fn label(self) -> &'static str {
        match self {
            CaseState::Referred => "Referred",
            CaseState::Returned => "Returned to referrer",
            CaseState::Screening => "Screening",
            CaseState::Deferred => "Deferred",
            CaseState::AwaitingAction => "Awaiting action",
            CaseState::Ready => "Ready to book",
            CaseState::Scheduled => "Scheduled",
            CaseState::Confirmed => "Confirmed",
            CaseState::Arrived => "Arrived",
            CaseState::InProcedure => "In procedure",
            CaseState::Recovery => "Recovery",
            CaseState::Discharged => "Discharged",
            CaseState::FollowedUp => "Followed up",
            CaseState::Cancelled => "Cancelled",
            CaseState::NoShow => "No-show",
        }
    }

    /// No action leads out of a closed case.
    pub const fn is_closed(self) -> bool {
        matches!(self, CaseState::FollowedUp | CaseState::Cancelled)
    }

    /// The actions that lead out of this state (whoever may take them).
    pub fn available_actions(self) -> impl Iterator<Item = Action> {
        Action::ALL
            .into_iter()
            .filter(move |a| a.target(self).is_some())
    }
}

impl fmt::Display for CaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown case state {given:?}: expected one of {}", state_names())]
pub struct UnknownState {
    /// What was given.
    pub given: String,
}

fn state_names() -> String {
    CaseState::ALL.map(CaseState::as_str).join(", ")
}

impl FromStr for CaseState {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CaseState::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| UnknownState {
                given: s.to_owned(),
            })
    }
}

/// Something that moves a case along the pathway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Action {
    /// Radiologist accepts a referral: on to screening.
    Accept,
    /// Radiologist returns a referral to the referrer, with a reason.
    Return,
    /// The referrer (or a scheduler for them) resubmits a returned referral.
    Resubmit,
    /// Screening found nothing that stops booking.
    MarkReady,
    /// Screening found a reason to wait, optionally until a date.
    Defer,
    /// Waiting on an action (e.g. prescriber clearance) before booking.
    AwaitAction,
    /// Take a deferred or waiting case back into screening.
    ResumeScreening,
    /// Book the case.
    Schedule,
    /// The patient confirmed.
    Confirm,
    /// Move a booking (the case stays booked).
    Reschedule,
    /// Release a booking; the case is ready to book again.
    Unschedule,
    /// The patient checked in.
    CheckIn,
    /// The procedure started.
    StartProcedure,
    /// The patient came but goes home untreated today (e.g. the checklist stopped on a
    /// blood thinner not held long enough): the booking is released and the case is
    /// ready to book again.
    NotTreated,
    /// The procedure ended; recovery begins.
    EndProcedure,
    /// The patient went home.
    Discharge,
    /// The follow-up call is done.
    RecordFollowUp,
    /// The patient did not come.
    RecordNoShow,
    /// A no-show case is ready to book again.
    Rebook,
    /// Cancel the case before the procedure.
    Cancel,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 20] = [
        Action::Accept,
        Action::Return,
        Action::Resubmit,
        Action::MarkReady,
        Action::Defer,
        Action::AwaitAction,
        Action::ResumeScreening,
        Action::Schedule,
        Action::Confirm,
        Action::Reschedule,
        Action::Unschedule,
        Action::CheckIn,
        Action::StartProcedure,
        Action::NotTreated,
        Action::EndProcedure,
        Action::Discharge,
        Action::RecordFollowUp,
        Action::RecordNoShow,
        Action::Rebook,
        Action::Cancel,
    ];

    /// The state this action leads to from `from`, or `None` if it cannot be taken there.
    /// This match is the whole pathway: nothing else moves a case.
    pub const fn target(self, from: CaseState) -> Option<CaseState> {
        use Action as A;
        use CaseState as S;
        let to = match (self, from) {
            (A::Accept, S::Referred) => S::Screening,
            (A::Return, S::Referred) => S::Returned,
            (A::Resubmit, S::Returned) => S::Referred,
            (A::MarkReady, S::Screening | S::Deferred | S::AwaitingAction) => S::Ready,
            (A::Defer, S::Screening | S::AwaitingAction | S::Ready) => S::Deferred,
            (A::AwaitAction, S::Screening | S::Deferred | S::Ready) => S::AwaitingAction,
            (A::ResumeScreening, S::Deferred | S::AwaitingAction | S::Ready) => S::Screening,
            (A::Schedule, S::Ready) => S::Scheduled,
            (A::Confirm, S::Scheduled) => S::Confirmed,
            (A::Reschedule, S::Scheduled | S::Confirmed) => S::Scheduled,
            (A::Unschedule, S::Scheduled | S::Confirmed) => S::Ready,
            (A::CheckIn, S::Scheduled | S::Confirmed) => S::Arrived,
            (A::StartProcedure, S::Arrived) => S::InProcedure,
            // Ready rather than screening: booking re-evaluates the screening for the
            // new date (holds included), and staff can still send it back to screening.
            (A::NotTreated, S::Arrived) => S::Ready,
            (A::EndProcedure, S::InProcedure) => S::Recovery,
            (A::Discharge, S::Recovery) => S::Discharged,
            (A::RecordFollowUp, S::Discharged) => S::FollowedUp,
            (A::RecordNoShow, S::Scheduled | S::Confirmed) => S::NoShow,
            (A::Rebook, S::NoShow) => S::Ready,
            (
                A::Cancel,
                S::Referred
                | S::Returned
                | S::Screening
                | S::Deferred
                | S::AwaitingAction
                | S::Ready
                | S::Scheduled
                | S::Confirmed
                | S::Arrived
                | S::NoShow,
            ) => S::Cancelled,
            _ => return None,
        };
        Some(to)
    }

    /// The roles that may take this action. Admins configure the department; of the
    /// pathway they may triage and record screening outcomes.
    pub const fn permitted_roles(self) -> &'static [Role] {
        use Action as A;
        use Role as R;
        match self {
            // Vetting is a radiologist's call; an admin (e.g. the medical director) may triage too.
            A::Accept | A::Return => &[R::Radiologist, R::Admin],
            A::Resubmit => &[R::Referrer, R::Scheduler],
            // Screening is the nurse's; radiologists and admins may record it too.
            A::MarkReady | A::Defer | A::AwaitAction | A::ResumeScreening => {
                &[R::Nurse, R::Radiologist, R::Admin]
            }
            A::Schedule
            | A::Confirm
            | A::Reschedule
            | A::Unschedule
            | A::RecordNoShow
            | A::Rebook => &[R::Scheduler],
            A::CheckIn => &[R::Scheduler, R::Nurse],
            A::StartProcedure | A::EndProcedure => &[R::Radiologist, R::Nurse],
            A::Discharge | A::RecordFollowUp => &[R::Nurse],
            // The radiologist decides; the nurse or the scheduler at the desk may record it.
            A::NotTreated => &[R::Nurse, R::Radiologist, R::Scheduler],
            A::Cancel => &[R::Scheduler, R::Nurse, R::Radiologist, R::Referrer],
        }
    }

    /// Whether `role` may take this action.
    pub fn permits(self, role: Role) -> bool {
        self.permitted_roles().contains(&role)
    }

    /// Actions that must say why (they are read by someone else later).
    pub const fn requires_reason(self) -> bool {
        matches!(
            self,
            Action::Return
                | Action::Defer
                | Action::AwaitAction
                | Action::Reschedule
                | Action::Unschedule
                | Action::RecordNoShow
                | Action::NotTreated
                | Action::Cancel
        )
    }

    /// Actions taken only through their own step, never the generic transition: a
    /// booking reserves resources, the procedure day keeps its own records (checklist,
    /// monitoring, the released appointment), the follow-up comes with its answers.
    pub const fn has_own_step(self) -> bool {
        matches!(
            self,
            Action::Schedule
                | Action::Reschedule
                | Action::Unschedule
                | Action::StartProcedure
                | Action::NotTreated
                | Action::EndProcedure
                | Action::Discharge
                | Action::RecordFollowUp
        )
    }

    /// The stable machine name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Return => "return",
            Action::Resubmit => "resubmit",
            Action::MarkReady => "mark_ready",
            Action::Defer => "defer",
            Action::AwaitAction => "await_action",
            Action::ResumeScreening => "resume_screening",
            Action::Schedule => "schedule",
            Action::Confirm => "confirm",
            Action::Reschedule => "reschedule",
            Action::Unschedule => "unschedule",
            Action::CheckIn => "check_in",
            Action::StartProcedure => "start_procedure",
            Action::NotTreated => "not_treated",
            Action::EndProcedure => "end_procedure",
            Action::Discharge => "discharge",
            Action::RecordFollowUp => "record_follow_up",
            Action::RecordNoShow => "record_no_show",
            Action::Rebook => "rebook",
            Action::Cancel => "cancel",
        }
    }

    /// A label for a button.
    pub const fn label(self) -> &'static str {
        match self {
            Action::Accept => "Accept referral",
            Action::Return => "Return to referrer",
            Action::Resubmit => "Resubmit referral",
            Action::MarkReady => "Mark ready to book",
            Action::Defer => "Defer",
            Action::AwaitAction => "Wait for an action",
            Action::ResumeScreening => "Back to screening",
            Action::Schedule => "Book appointment",
            Action::Confirm => "Record confirmation",
            Action::Reschedule => "Reschedule",
            Action::Unschedule => "Release booking",
            Action::CheckIn => "Check in",
            Action::StartProcedure => "Start procedure",
            Action::NotTreated => "Not treated today",
            Action::EndProcedure => "End procedure",
            Action::Discharge => "Discharge",
            Action::RecordFollowUp => "Record follow-up",
            Action::RecordNoShow => "Record no-show",
            Action::Rebook => "Ready to rebook",
            Action::Cancel => "Cancel case",
        }
    }

    /// A verb phrase for error messages ("cannot accept a case that is ...").
    const fn verb(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Return => "return",
            Action::Resubmit => "resubmit",
            Action::MarkReady => "mark ready",
            Action::Defer => "defer",
            Action::AwaitAction => "put on hold",
            Action::ResumeScreening => "send back to screening",
            Action::Schedule => "schedule",
            Action::Confirm => "confirm",
            Action::Reschedule => "reschedule",
            Action::Unschedule => "release the booking of",
            Action::CheckIn => "check in",
            Action::StartProcedure => "start the procedure for",
            Action::NotTreated => "record \"not treated today\" for",
            Action::EndProcedure => "end the procedure for",
            Action::Discharge => "discharge",
            Action::RecordFollowUp => "record the follow-up for",
            Action::RecordNoShow => "record a no-show for",
            Action::Rebook => "rebook",
            Action::Cancel => "cancel",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An action name that is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown action {given:?}")]
pub struct UnknownAction {
    /// What was given.
    pub given: String,
}

impl FromStr for Action {
    type Err = UnknownAction;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| UnknownAction {
                given: s.to_owned(),
            })
    }
}

/// The longest reason we keep (a reason is a note, not a letter).
pub const MAX_REASON_CHARS: usize = 2000;

/// What someone asks to do to a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransitionRequest {
    /// The action.
    pub action: Action,
    /// Why (required for some actions).
    pub reason: Option<String>,
    /// For [`Action::Defer`]: wait until this date (optional: "until resolved").
    pub deferred_until: Option<Date>,
    /// For [`Action::Return`]: the structured reason (required there).
    pub return_reason: Option<ReturnReason>,
}

impl TransitionRequest {
    /// A request with no reason and no date.
    pub fn new(action: Action) -> Self {
        Self {
            action,
            reason: None,
            deferred_until: None,
            return_reason: None,
        }
    }

    /// A return to the referrer, with its structured reason and explanation.
    pub fn return_to_referrer(reason: ReturnReason, text: impl Into<String>) -> Self {
        Self {
            return_reason: Some(reason),
            ..Self::new(Action::Return).because(text)
        }
    }

    /// Adds a reason.
    pub fn because(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}

/// Why a transition was refused. Each message is written for the person who tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    /// The pathway has no such step from here.
    #[error("cannot {} a case that is {} ({})", .action.verb(), .from.label().to_lowercase(), allowed_hint(*.from))]
    NotFromState {
        /// The case's state.
        from: CaseState,
        /// The refused action.
        action: Action,
    },
    /// The actor's role may not take this action.
    #[error("a {} may not {} a case; this is for: {}", .role.label().to_lowercase(), .action.verb(), roles_list(.action))]
    RoleNotPermitted {
        /// The actor's role.
        role: Role,
        /// The refused action.
        action: Action,
    },
    /// The system actor carries no role; it may not move cases through this path.
    #[error("a signed-in user is required to move a case")]
    NoRole,
    /// The action needs a reason and none was given.
    #[error("a reason is required to {} a case", .0.verb())]
    ReasonRequired(Action),
    /// The reason is too long.
    #[error("the reason is too long ({0} characters; at most {MAX_REASON_CHARS})")]
    ReasonTooLong(usize),
    /// A deferral date must be in the future.
    #[error("the deferral date {until} is not after today ({today})")]
    DeferDateNotFuture {
        /// The requested date.
        until: Date,
        /// Today at the site.
        today: Date,
    },
    /// A date was given for an action that takes none.
    #[error("a date only applies when deferring a case")]
    UnexpectedDate,
    /// A return needs its structured reason.
    #[error(
        "choose why the referral is returned (not enough information, wrong procedure, imaging needed first, not indicated, other)"
    )]
    ReturnReasonRequired,
    /// A return reason was given for another action.
    #[error("a return reason only applies when returning a referral")]
    UnexpectedReturnReason,
}

fn allowed_hint(from: CaseState) -> String {
    let next: Vec<&str> = from.available_actions().map(Action::as_str).collect();
    if next.is_empty() {
        "the case is closed".to_owned()
    } else {
        format!("possible now: {}", next.join(", "))
    }
}

fn roles_list(action: &Action) -> String {
    action
        .permitted_roles()
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A recorded step on the pathway: who moved the case, when, from where to where, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathwayEvent {
    /// The state before.
    pub from: CaseState,
    /// The state after.
    pub to: CaseState,
    /// What was done.
    pub action: Action,
    /// Who did it.
    pub actor: Actor,
    /// When (UTC instant).
    pub at: Timestamp,
    /// Why, when given.
    pub reason: Option<String>,
    /// For deferrals: until when.
    pub deferred_until: Option<Date>,
    /// For returns: the structured reason.
    pub return_reason: Option<ReturnReason>,
}

/// Checks a requested transition and, if it is allowed, returns the event to record.
///
/// `today` is the site's local date (deferral dates are compared against it).
/// Nothing is changed on refusal: the caller keeps the old state.
pub fn decide(
    from: CaseState,
    request: &TransitionRequest,
    actor: &Actor,
    at: Timestamp,
    today: Date,
) -> Result<PathwayEvent, TransitionError> {
    let action = request.action;
    let role = actor.role.ok_or(TransitionError::NoRole)?;
    if !action.permits(role) {
        return Err(TransitionError::RoleNotPermitted { role, action });
    }
    let to = action
        .target(from)
        .ok_or(TransitionError::NotFromState { from, action })?;
    let reason = request
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned);
    if let Some(r) = &reason {
        let chars = r.chars().count();
        if chars > MAX_REASON_CHARS {
            return Err(TransitionError::ReasonTooLong(chars));
        }
    }
    if action.requires_reason() && reason.is_none() {
        return Err(TransitionError::ReasonRequired(action));
    }
    match (action, request.deferred_until) {
        (Action::Defer, Some(until)) if until <= today => {
            return Err(TransitionError::DeferDateNotFuture { until, today });
        }
        (Action::Defer, _) | (_, None) => {}
        (_, Some(_)) => return Err(TransitionError::UnexpectedDate),
    }
    match (action, request.return_reason) {
        (Action::Return, None) => return Err(TransitionError::ReturnReasonRequired),
        (Action::Return, Some(_)) | (_, None) => {}
        (_, Some(_)) => return Err(TransitionError::UnexpectedReturnReason),
    }
    Ok(PathwayEvent {
        from,
        to,
        action,
        actor: actor.clone(),
        at,
        reason,
        deferred_until: request.deferred_until,
        return_reason: request.return_reason,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::UserId;
    use proptest::prelude::*;
    use std::collections::{BTreeSet, VecDeque};

    fn actor(role: Role) -> Actor {
        Actor::user(UserId::new(1), "someone", role)
    }

    fn now() -> Timestamp {
        Timestamp::from_second(1_790_000_000).expect("valid")
    }

    fn today() -> Date {
        jiff::civil::date(2026, 9, 21)
    }

    /// A role allowed to take `action`, for tests that are about the state table.
    fn some_role(action: Action) -> Role {
        action.permitted_roles()[0]
    }

    fn request(action: Action) -> TransitionRequest {
        let r = TransitionRequest::new(action);
        if action.requires_reason() {
            r.because("test reason")
        } else {
            r
        }
    }

    #[test]
    fn the_happy_path_reaches_followed_up() {
        let path = [
            Action::Accept,
            Action::MarkReady,
            Action::Schedule,
            Action::Confirm,
            Action::CheckIn,
            Action::StartProcedure,
            Action::EndProcedure,
            Action::Discharge,
            Action::RecordFollowUp,
        ];
        let mut state = CaseState::Referred;
        for action in path {
            let event = decide(
                state,
                &request(action),
                &actor(some_role(action)),
                now(),
                today(),
            )
            .expect("happy path step");
            state = event.to;
        }
        assert_eq!(state, CaseState::FollowedUp);
        assert!(state.is_closed());
    }

    #[test]
    fn every_state_is_reachable_from_referred() {
        let mut seen = BTreeSet::from([CaseState::Referred]);
        let mut queue = VecDeque::from([CaseState::Referred]);
        while let Some(s) = queue.pop_front() {
            for a in s.available_actions() {
                let to = a.target(s).expect("available");
                if seen.insert(to) {
                    queue.push_back(to);
                }
            }
        }
        assert_eq!(seen.len(), CaseState::ALL.len());
    }

    #[test]
    fn closed_states_offer_nothing() {
        for s in CaseState::ALL {
            assert_eq!(s.is_closed(), s.available_actions().next().is_none(), "{s}");
        }
    }

    #[test]
    fn an_impossible_transition_is_refused_with_a_clear_message() {
        let err = decide(
            CaseState::Referred,
            &request(Action::Discharge),
            &actor(Role::Nurse),
            now(),
            today(),
        )
        .expect_err("cannot discharge a referral");
        assert_eq!(
            err.to_string(),
            "cannot discharge a case that is referred (possible now: accept, return, cancel)"
        );
        let closed = decide(
            CaseState::Cancelled,
            &request(Action::Accept),
            &actor(Role::Radiologist),
            now(),
            today(),
        )
        .expect_err("closed");
        assert!(
            closed.to_string().contains("the case is closed"),
            "{closed}"
        );
    }

    #[test]
    fn roles_are_checked() {
        let err = decide(
            CaseState::Referred,
            &request(Action::Accept),
            &actor(Role::Scheduler),
            now(),
            today(),
        )
        .expect_err("only radiologists vet");
        assert_eq!(
            err.to_string(),
            "a scheduler may not accept a case; this is for: radiologist, admin"
        );
        assert_eq!(
            decide(
                CaseState::Referred,
                &request(Action::Accept),
                &Actor::system("cli"),
                now(),
                today()
            ),
            Err(TransitionError::NoRole)
        );
        for action in Action::ALL {
            let allowed = matches!(
                action,
                Action::Accept
                    | Action::Return
                    | Action::MarkReady
                    | Action::Defer
                    | Action::AwaitAction
                    | Action::ResumeScreening
            );
            assert_eq!(
                action.permits(Role::Admin),
                allowed,
                "admins triage and screen only: {action}"
            );
        }
    }

    #[test]
    fn reasons_and_dates_are_validated() {
        let nurse = actor(Role::Nurse);
        let no_reason = TransitionRequest::new(Action::Defer);
        assert_eq!(
            decide(CaseState::Screening, &no_reason, &nurse, now(), today()),
            Err(TransitionError::ReasonRequired(Action::Defer))
        );
        let blank = TransitionRequest::new(Action::Defer).because("   ");
        assert!(decide(CaseState::Screening, &blank, &nurse, now(), today()).is_err());
        let long = TransitionRequest::new(Action::Defer).because("x".repeat(MAX_REASON_CHARS + 1));
        assert_eq!(
            decide(CaseState::Screening, &long, &nurse, now(), today()),
            Err(TransitionError::ReasonTooLong(MAX_REASON_CHARS + 1))
        );
        let mut past = TransitionRequest::new(Action::Defer).because("infection");
        past.deferred_until = Some(today());
        assert!(matches!(
            decide(CaseState::Screening, &past, &nurse, now(), today()),
            Err(TransitionError::DeferDateNotFuture { .. })
        ));
        past.deferred_until = Some(jiff::civil::date(2026, 10, 1));
        let ok = decide(CaseState::Screening, &past, &nurse, now(), today()).expect("future date");
        assert_eq!(ok.to, CaseState::Deferred);
        assert_eq!(ok.reason.as_deref(), Some("infection"));
        let mut stray = TransitionRequest::new(Action::MarkReady);
        stray.deferred_until = Some(jiff::civil::date(2026, 10, 1));
        assert_eq!(
            decide(CaseState::Screening, &stray, &nurse, now(), today()),
            Err(TransitionError::UnexpectedDate)
        );
    }

    #[test]
    fn returns_carry_a_structured_reason() {
        let rad = actor(Role::Radiologist);
        let bare = TransitionRequest::new(Action::Return).because("see notes");
        assert_eq!(
            decide(CaseState::Referred, &bare, &rad, now(), today()),
            Err(TransitionError::ReturnReasonRequired)
        );
        let ok =
            TransitionRequest::return_to_referrer(ReturnReason::ImagingNeededFirst, "send the MRI");
        let event = decide(CaseState::Referred, &ok, &rad, now(), today()).expect("valid return");
        assert_eq!(event.return_reason, Some(ReturnReason::ImagingNeededFirst));
        let mut stray = TransitionRequest::new(Action::Accept);
        stray.return_reason = Some(ReturnReason::Other);
        assert_eq!(
            decide(CaseState::Referred, &stray, &rad, now(), today()),
            Err(TransitionError::UnexpectedReturnReason)
        );
    }

    #[test]
    fn an_arrived_patient_can_go_home_untreated_and_be_rebooked() {
        let req = TransitionRequest::new(Action::NotTreated)
            .because("clopidogrel taken 2 days ago; planned last dose 5 days before");
        for role in [Role::Nurse, Role::Radiologist, Role::Scheduler] {
            let event = decide(CaseState::Arrived, &req, &actor(role), now(), today())
                .expect("staff may send an arrived patient home");
            assert_eq!(event.to, CaseState::Ready);
            assert!(event.reason.is_some());
        }
        for role in [Role::Admin, Role::Referrer] {
            assert_eq!(
                decide(CaseState::Arrived, &req, &actor(role), now(), today()),
                Err(TransitionError::RoleNotPermitted {
                    role,
                    action: Action::NotTreated
                })
            );
        }
        let bare = TransitionRequest::new(Action::NotTreated);
        let err = decide(
            CaseState::Arrived,
            &bare,
            &actor(Role::Nurse),
            now(),
            today(),
        )
        .expect_err("a reason is required");
        assert_eq!(
            err.to_string(),
            "a reason is required to record \"not treated today\" for a case"
        );
        // Only before the procedure starts, and only for a patient who came.
        for from in CaseState::ALL {
            assert_eq!(
                Action::NotTreated.target(from).is_some(),
                from == CaseState::Arrived,
                "{from}"
            );
        }
        // From ready the case is booked again as any other.
        assert_eq!(
            Action::Schedule.target(CaseState::Ready),
            Some(CaseState::Scheduled)
        );
        assert!(
            CaseState::Arrived
                .available_actions()
                .any(|a| a == Action::NotTreated)
        );
    }

    #[test]
    fn own_steps_are_the_ones_the_store_keeps_to_itself() {
        let own: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| a.has_own_step())
            .map(Action::as_str)
            .collect();
        assert_eq!(
            own,
            [
                "schedule",
                "reschedule",
                "unschedule",
                "start_procedure",
                "not_treated",
                "end_procedure",
                "discharge",
                "record_follow_up"
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for s in CaseState::ALL {
            assert_eq!(s.as_str().parse::<CaseState>(), Ok(s));
        }
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>(), Ok(a));
            assert!(!a.permitted_roles().is_empty());
        }
        assert!("bogus".parse::<CaseState>().is_err());
    }

    fn any_action() -> impl Strategy<Value = Action> {
        (0..Action::ALL.len()).prop_map(|i| Action::ALL[i])
    }

    fn any_role() -> impl Strategy<Value = Role> {
        (0..Role::ALL.len()).prop_map(|i| Role::ALL[i])
    }

    proptest! {
        /// Random sequences of attempts by random roles: accepted steps follow the
        /// table exactly, refused steps change nothing, and the recorded history
        /// replays to the final state.
        #[test]
        fn random_sequences_respect_the_pathway(
            steps in proptest::collection::vec((any_action(), any_role(), any::<bool>()), 0..60)
        ) {
            let mut state = CaseState::Referred;
            let mut history: Vec<PathwayEvent> = Vec::new();
            for (action, role, with_reason) in steps {
                let mut req = TransitionRequest::new(action);
                if with_reason { req = req.because("because"); }
                if action == Action::Return { req.return_reason = Some(ReturnReason::NotIndicated); }
                match decide(state, &req, &actor(role), now(), today()) {
                    Ok(event) => {
                        prop_assert_eq!(event.from, state);
                        prop_assert_eq!(Some(event.to), action.target(state));
                        prop_assert!(action.permits(role));
                        prop_assert!(!action.requires_reason() || event.reason.is_some());
                        prop_assert!(!state.is_closed());
                        state = event.to;
                        history.push(event);
                    }
                    Err(err) => {
                        // Refused exactly when a rule says so.
                        let allowed = action.permits(role)
                            && action.target(state).is_some()
                            && (with_reason || !action.requires_reason());
                        prop_assert!(!allowed, "refused an allowed step: {}", err);
                        prop_assert!(!err.to_string().is_empty());
                    }
                }
            }
            let mut replay = CaseState::Referred;
            for e in &history {
                prop_assert_eq!(e.from, replay);
                replay = e.to;
            }
            prop_assert_eq!(replay, state);
            // A procedure is only ever started for a patient who has arrived.
            for e in &history {
                if e.to == CaseState::InProcedure { prop_assert_eq!(e.from, CaseState::Arrived); }
                if e.to == CaseState::Scheduled && e.action == Action::Schedule {
                    prop_assert_eq!(e.from, CaseState::Ready);
                }
                // Going home untreated only ever happens before the start, and frees the case to book.
                if e.action == Action::NotTreated {
                    prop_assert_eq!(e.from, CaseState::Arrived);
                    prop_assert_eq!(e.to, CaseState::Ready);
                }
            }
        }
    }
}
