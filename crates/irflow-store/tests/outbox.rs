//! The outbox, on SQLite always and on PostgreSQL when `IRFLOW_TEST_DATABASE_URL` is
//! set: claiming (never twice, even by racing workers in two processes), attempts,
//! backoff, leases, re-planning reminders, the opt-out, and the audit trail.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;

use irflow_domain::pathway::TransitionRequest;
use irflow_domain::patient::parse_date_of_birth;
use irflow_domain::{
    Action, Actor, CaseId, Channel as ReferralChannel, LanguageTag, NewPatient, PersonName,
    ReferralDetails, Role, Side, SpineLevels, Urgency,
};
use irflow_store::outbox::{Channel, MAX_ATTEMPTS};
use irflow_store::testing::TestDatabase;
use irflow_store::{
    AttemptResult, AuditFilter, MessageState, NewMessage, NewReferral, NewReminder,
    ReferralSubject, Store, StoreError, UserRecord,
};
use jiff::{SignedDuration, Timestamp};

#[macro_use]
mod common;
use common::{today, user};

struct World {
    scheduler: Actor,
    nurse: Actor,
    radiologist: Actor,
    admin: Actor,
    referrer: UserRecord,
    other_referrer: UserRecord,
}

async fn world(store: &Store) -> World {
    World {
        scheduler: user(store, "sched", Role::Scheduler, None).await.actor(),
        nurse: user(store, "nurse", Role::Nurse, None).await.actor(),
        radiologist: user(store, "rad", Role::Radiologist, None).await.actor(),
        admin: user(store, "admin", Role::Admin, None).await.actor(),
        referrer: user(store, "ref1", Role::Referrer, Some("Clinic A")).await,
        other_referrer: user(store, "ref2", Role::Referrer, Some("Clinic B")).await,
    }
}

async fn open_case(store: &Store, referrer: &UserRecord, family: &str) -> CaseId {
    let patient = NewPatient {
        mrn: None,
        name: PersonName::parse(family, "Pat").unwrap(),
        date_of_birth: parse_date_of_birth("1960-05-01", today()).unwrap(),
        phone: None,
        email: None,
        preferred_language: LanguageTag::english(),
    };
    store
        .submit_referral(
            &referrer.actor(),
            &NewReferral {
                subject: ReferralSubject::New(patient),
                referrer: referrer.id,
                details: ReferralDetails {
                    procedure_code: "64483".into(),
                    levels: Some(SpineLevels::parse("L4-L5").unwrap()),
                    side: Side::Left,
                    indication: "Left L5 radiculopathy".into(),
                    icd10: None,
                    urgency: Urgency::Routine,
                    prior_imaging: None,
                    blood_thinners: None,
                    clinical_notes: None,
                },
                channel: ReferralChannel::Online,
            },
            Timestamp::now(),
        )
        .await
        .unwrap()
        .case
}

fn message(case: CaseId, kind: &str, send_after: Timestamp) -> NewMessage {
    NewMessage {
        case_id: case,
        kind: kind.into(),
        channel: Channel::Email,
        recipient: "pat@example.org".into(),
        subject: "Your appointment".into(),
        body_text: "Please arrive 15 minutes early.".into(),
        body_html: None,
        send_after,
    }
}

const LEASE: SignedDuration = SignedDuration::from_mins(10);

async fn attempts_back_off_until_sent_and_are_all_recorded(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Outbox").await;
    let t0: Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let id = store
        .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
        .await
        .unwrap();

    // Not due yet.
    let early = t0 - SignedDuration::from_secs(1);
    assert!(
        store
            .claim_due_messages("w1", early, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // Two temporary failures, then success; each wait is the documented backoff.
    let mut now = t0;
    for (attempt, wait_mins) in [(1, 1), (2, 5)] {
        let claimed = store
            .claim_due_messages("w1", now, 10, LEASE)
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].id, id);
        assert_eq!(
            store.begin_attempt("w1", id, now).await.unwrap(),
            Some(attempt)
        );
        let state = store
            .finish_attempt(
                "w1",
                id,
                attempt,
                &AttemptResult::Failed {
                    detail: "451 4.3.0 try again later".into(),
                    permanent: false,
                },
                now,
            )
            .await
            .unwrap();
        assert_eq!(state, MessageState::Planned);
        let m = store.message(id).await.unwrap();
        assert_eq!(
            m.next_attempt_at,
            Some(now + SignedDuration::from_mins(wait_mins))
        );
        // Nothing to claim until the wait is over.
        let just_before = now + SignedDuration::from_mins(wait_mins) - SignedDuration::from_secs(1);
        assert!(
            store
                .claim_due_messages("w1", just_before, 10, LEASE)
                .await
                .unwrap()
                .is_empty()
        );
        now += SignedDuration::from_mins(wait_mins);
    }
    let claimed = store
        .claim_due_messages("w1", now, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(store.begin_attempt("w1", id, now).await.unwrap(), Some(3));
    let state = store
        .finish_attempt(
            "w1",
            id,
            3,
            &AttemptResult::Sent("250 2.0.0 OK".into()),
            now,
        )
        .await
        .unwrap();
    assert_eq!(state, MessageState::Sent);

    let listed = store.case_messages(&w.nurse, case).await.unwrap();
    assert_eq!(listed.len(), 1);
    let m = &listed[0];
    assert_eq!(m.state, MessageState::Sent);
    assert_eq!(m.sent_at, Some(now));
    assert_eq!(m.attempts, 3);
    let outcomes: Vec<(&str, Option<&str>)> = m
        .attempt_log
        .iter()
        .map(|a| (a.outcome.as_str(), a.detail.as_deref()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("retry", Some("451 4.3.0 try again later")),
            ("retry", Some("451 4.3.0 try again later")),
            ("sent", Some("250 2.0.0 OK")),
        ]
    );
    assert!(m.attempt_log.iter().all(|a| a.finished_at.is_some()));
    // Sent messages are never claimed again.
    assert!(
        store
            .claim_due_messages("w1", now + SignedDuration::from_hours(48), 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );

    // The list is audited; another referrer's case is not found (and audited as denied).
    let events = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                entity_type: Some("messages".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor_username, "nurse");
    let hidden = store
        .case_messages(&w.other_referrer.actor(), case)
        .await
        .unwrap_err();
    assert!(matches!(hidden, StoreError::NotFound), "{hidden:?}");
    assert!(
        store.case_messages(&w.referrer.actor(), case).await.is_ok(),
        "the referring provider reads their own case's messages"
    );
    let sends = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                action: Some("send".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(sends.len(), 3, "every attempt is an audited disclosure");
    assert!(sends.iter().all(|e| e.actor_username == "system:outbox:w1"));
}
on_every_backend!(
    attempts_back_off_until_sent_everywhere,
    attempts_back_off_until_sent_and_are_all_recorded
);

async fn permanent_failures_and_the_last_attempt_give_up(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Giveup").await;
    let t0: Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let refused = store
        .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
        .await
        .unwrap();
    store.claim_due_messages("w", t0, 10, LEASE).await.unwrap();
    store.begin_attempt("w", refused, t0).await.unwrap();
    let state = store
        .finish_attempt(
            "w",
            refused,
            1,
            &AttemptResult::Failed {
                detail: "550 5.1.1 no such user".into(),
                permanent: true,
            },
            t0,
        )
        .await
        .unwrap();
    assert_eq!(state, MessageState::Failed);
    let m = store.message(refused).await.unwrap();
    assert_eq!(m.last_error.as_deref(), Some("550 5.1.1 no such user"));
    assert_eq!(m.next_attempt_at, None);

    let flaky = store
        .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
        .await
        .unwrap();
    let mut now = t0;
    let mut last = MessageState::Planned;
    for attempt in 1..=MAX_ATTEMPTS {
        let claimed = store.claim_due_messages("w", now, 10, LEASE).await.unwrap();
        assert_eq!(claimed.len(), 1, "attempt {attempt}");
        assert_eq!(
            store.begin_attempt("w", flaky, now).await.unwrap(),
            Some(attempt)
        );
        last = store
            .finish_attempt(
                "w",
                flaky,
                attempt,
                &AttemptResult::Failed {
                    detail: "connection refused".into(),
                    permanent: false,
                },
                now,
            )
            .await
            .unwrap();
        now += SignedDuration::from_hours(7);
    }
    assert_eq!(last, MessageState::Failed);
    let m = store.message(flaky).await.unwrap();
    assert_eq!(m.attempt_log.len(), 6);
    assert_eq!(m.attempt_log.last().unwrap().outcome, "failed");
    assert!(
        store
            .claim_due_messages("w", now, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
}
on_every_backend!(
    permanent_failures_and_the_last_attempt_give_up_everywhere,
    permanent_failures_and_the_last_attempt_give_up
);

async fn racing_workers_never_send_a_message_twice(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Race").await;
    let t0: Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let mut ids = HashSet::new();
    for _ in 0..60 {
        ids.insert(
            store
                .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
                .await
                .unwrap(),
        );
    }
    // Four workers, half of them through a second store with its own pool, as a
    // second irflow process would.
    let second = Store::open(&db.url).await.unwrap();
    let mut tasks = Vec::new();
    for n in 0..4 {
        let store = if n % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        tasks.push(tokio::spawn(async move {
            let name = format!("w{n}");
            let mut mine = Vec::new();
            loop {
                let batch = match store.claim_due_messages(&name, t0, 3, LEASE).await {
                    Ok(b) => b,
                    // SQLite may report a busy database under contention: try again.
                    Err(StoreError::Conflict(_)) => continue,
                    Err(e) => panic!("{e:?}"),
                };
                if batch.is_empty() {
                    break;
                }
                for m in batch {
                    let attempt = store.begin_attempt(&name, m.id, t0).await.unwrap();
                    assert_eq!(attempt, Some(1), "first and only attempt");
                    store
                        .finish_attempt(&name, m.id, 1, &AttemptResult::Sent("ok".into()), t0)
                        .await
                        .unwrap();
                    mine.push(m.id);
                }
            }
            mine
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.unwrap());
    }
    second.close().await;
    let unique: HashSet<_> = seen.iter().copied().collect();
    assert_eq!(seen.len(), 60, "every message sent once: {}", seen.len());
    assert_eq!(unique, ids);
    for m in store.case_messages(&w.nurse, case).await.unwrap() {
        assert_eq!(m.state, MessageState::Sent);
        assert_eq!(m.attempt_log.len(), 1);
    }
}
on_every_backend!(
    racing_workers_never_send_a_message_twice_everywhere,
    racing_workers_never_send_a_message_twice
);

async fn a_lapsed_lease_lets_another_worker_take_over(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Lease").await;
    let t0: Timestamp = "2026-12-01T15:00:00Z".parse().unwrap();
    let id = store
        .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
        .await
        .unwrap();
    assert_eq!(
        store
            .claim_due_messages("a", t0, 10, LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.begin_attempt("a", id, t0).await.unwrap(), Some(1));
    // Worker a hangs. Within its lease nobody else takes the message...
    let during = t0 + SignedDuration::from_mins(5);
    assert!(
        store
            .claim_due_messages("b", during, 10, LEASE)
            .await
            .unwrap()
            .is_empty()
    );
    // ...after it, b does, and a's open attempt is recorded as abandoned.
    let after = t0 + LEASE + SignedDuration::from_secs(1);
    assert_eq!(
        store
            .claim_due_messages("b", after, 10, LEASE)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.begin_attempt("b", id, after).await.unwrap(), Some(2));
    assert_eq!(store.begin_attempt("a", id, after).await.unwrap(), None);
    store
        .finish_attempt("b", id, 2, &AttemptResult::Sent("ok".into()), after)
        .await
        .unwrap();
    // a reports late: its attempt is recorded, the message stays b's (sent).
    let late = store
        .finish_attempt(
            "a",
            id,
            1,
            &AttemptResult::Failed {
                detail: "timed out".into(),
                permanent: false,
            },
            after,
        )
        .await
        .unwrap();
    assert_eq!(late, MessageState::Sending, "a no longer holds it");
    let m = store.message(id).await.unwrap();
    assert_eq!(m.state, MessageState::Sent);
    let outcomes: Vec<&str> = m.attempt_log.iter().map(|a| a.outcome.as_str()).collect();
    assert_eq!(outcomes, ["retry", "sent"]);
    assert_eq!(m.attempt_log[0].worker, "a");
    assert_eq!(m.attempt_log[1].worker, "b");

    // A deferred message goes back to planned without an attempt.
    let quiet = store
        .enqueue_message(&w.scheduler, message(case, "patient_link", t0))
        .await
        .unwrap();
    store
        .claim_due_messages("a", after, 10, LEASE)
        .await
        .unwrap();
    let morning = after + SignedDuration::from_hours(8);
    assert!(store.defer_claimed("a", quiet, morning).await.unwrap());
    let m = store.message(quiet).await.unwrap();
    assert_eq!(
        (m.state, m.attempts, m.next_attempt_at),
        (MessageState::Planned, 0, Some(morning))
    );
}
on_every_backend!(
    a_lapsed_lease_lets_another_worker_take_over_everywhere,
    a_lapsed_lease_lets_another_worker_take_over
);

async fn bad_messages_and_referrers_are_refused(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Refused").await;
    let t0 = Timestamp::now();
    let empty = NewMessage {
        recipient: "  ".into(),
        ..message(case, "patient_link", t0)
    };
    assert!(matches!(
        store.enqueue_message(&w.scheduler, empty).await,
        Err(StoreError::Invalid(_))
    ));
    let kind = message(case, "Bad Kind!", t0);
    assert!(matches!(
        store.enqueue_message(&w.scheduler, kind).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        store
            .enqueue_message(&w.referrer.actor(), message(case, "patient_link", t0))
            .await,
        Err(StoreError::Denied(_))
    ));
    assert!(matches!(
        store
            .enqueue_message(
                &w.scheduler,
                message(CaseId::new(999_999), "patient_link", t0)
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(
        store
            .case_messages(&w.nurse, case)
            .await
            .unwrap()
            .is_empty()
    );
}
on_every_backend!(
    bad_messages_and_referrers_are_refused_everywhere,
    bad_messages_and_referrers_are_refused
);

/// A booked case, through the store's own booking path.
async fn booked_case(store: &Store, w: &World) -> (CaseId, irflow_store::AppointmentRecord) {
    use irflow_domain::scheduling::{SlotOption, WeeklyWindow};
    let case = open_case(store, &w.referrer, "Booked").await;
    let now = Timestamp::now();
    for (actor, action) in [
        (&w.radiologist, Action::Accept),
        (&w.nurse, Action::MarkReady),
    ] {
        store
            .transition_case(
                actor,
                case,
                &TransitionRequest::new(action),
                None,
                now,
                today(),
            )
            .await
            .unwrap();
    }
    let site = store
        .create_site(&w.admin, "Main", "America/New_York")
        .await
        .unwrap();
    let room = store
        .create_room(
            &w.admin,
            site,
            "Fluoro 1",
            irflow_domain::Modality::Fluoroscopy,
            10,
        )
        .await
        .unwrap();
    let rad = store.user_by_username("rad").await.unwrap().id;
    store
        .set_credentials(&w.admin, rad, &["64483"])
        .await
        .unwrap();
    let window = WeeklyWindow {
        weekday: jiff::civil::Weekday::Monday,
        start: jiff::civil::time(8, 0, 0, 0),
        end: jiff::civil::time(16, 0, 0, 0),
    };
    store
        .add_availability(&w.admin, irflow_store::ResourceKind::Room, room, window)
        .await
        .unwrap();
    store
        .add_availability(
            &w.admin,
            irflow_store::ResourceKind::Radiologist,
            rad.get(),
            window,
        )
        .await
        .unwrap();
    let site = store.default_site().await.unwrap().unwrap();
    let start: Timestamp = "2026-12-07T14:00:00Z".parse().unwrap();
    let option = SlotOption {
        start,
        end: start + SignedDuration::from_mins(20),
        room,
        radiologist: rad.get(),
        chair: None,
    };
    let appointment = store
        .book_appointment(&w.scheduler, case, &site, &option, 10, None, now, today())
        .await
        .unwrap();
    (case, appointment)
}

fn reminder(
    case: CaseId,
    appointment: &irflow_store::AppointmentRecord,
    kind: &str,
    days_before: i64,
) -> NewReminder {
    NewReminder {
        message: message(
            case,
            kind,
            appointment.start - SignedDuration::from_hours(24 * days_before),
        ),
        appointment_id: appointment.id,
        appointment_start: appointment.start,
        drug: None,
        send_before: None,
    }
}

async fn replanning_replaces_planned_reminders_but_never_resends(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let (case, appointment) = booked_case(store, &w).await;
    let at = Timestamp::now();
    let plan = vec![
        reminder(case, &appointment, "reminder_3_days", 3),
        reminder(case, &appointment, "reminder_1_day", 1),
    ];
    let first = store
        .replace_planned_reminders(&w.scheduler, case, plan.clone(), at)
        .await
        .unwrap();
    assert_eq!(
        (first.cancelled, first.planned, first.already_sent),
        (0, 2, 0)
    );

    // The 3-day reminder goes out.
    let three_days = appointment.start - SignedDuration::from_hours(72);
    let claimed = store
        .claim_due_messages("w", three_days, 10, LEASE)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].kind, "reminder_3_days");
    assert_eq!(
        store.stale_reason(claimed[0].id, three_days).await.unwrap(),
        None
    );
    store
        .begin_attempt("w", claimed[0].id, three_days)
        .await
        .unwrap();
    store
        .finish_attempt(
            "w",
            claimed[0].id,
            1,
            &AttemptResult::Sent("ok".into()),
            three_days,
        )
        .await
        .unwrap();

    // The same plan again: the planned 1-day reminder is replaced, the sent one is not repeated.
    let again = store
        .replace_planned_reminders(&w.scheduler, case, plan, three_days)
        .await
        .unwrap();
    assert_eq!(
        (again.cancelled, again.planned, again.already_sent),
        (1, 1, 1)
    );
    let states: Vec<(String, MessageState)> = store
        .case_messages(&w.nurse, case)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.kind, m.state))
        .collect();
    assert_eq!(states.len(), 3, "{states:?}");
    assert_eq!(
        states
            .iter()
            .filter(|(k, s)| k == "reminder_1_day" && *s == MessageState::Planned)
            .count(),
        1
    );
    assert_eq!(
        states
            .iter()
            .filter(|(_, s)| *s == MessageState::Cancelled)
            .count(),
        1
    );

    // An empty plan leaves none planned; referrers cannot plan.
    let none = store
        .replace_planned_reminders(&w.scheduler, case, Vec::new(), three_days)
        .await
        .unwrap();
    assert_eq!(none.cancelled, 1);
    assert!(
        store
            .case_messages(&w.nurse, case)
            .await
            .unwrap()
            .iter()
            .all(|m| m.state != MessageState::Planned)
    );
    assert!(matches!(
        store
            .replace_planned_reminders(&w.referrer.actor(), case, Vec::new(), three_days)
            .await,
        Err(StoreError::Denied(_))
    ));
}
on_every_backend!(
    replanning_replaces_planned_reminders_everywhere,
    replanning_replaces_planned_reminders_but_never_resends
);

async fn stale_reminders_and_the_opt_out(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let (case, appointment) = booked_case(store, &w).await;
    let at = Timestamp::now();
    store
        .replace_planned_reminders(
            &w.scheduler,
            case,
            vec![reminder(case, &appointment, "reminder_1_day", 1)],
            at,
        )
        .await
        .unwrap();
    let day_before = appointment.start - SignedDuration::from_hours(24);
    let id = store.case_messages(&w.nurse, case).await.unwrap()[0].id;
    assert_eq!(store.stale_reason(id, day_before).await.unwrap(), None);
    assert_eq!(
        store
            .stale_reason(id, appointment.start)
            .await
            .unwrap()
            .as_deref(),
        Some("the appointment has started")
    );

    // Opting out cancels what is planned and makes the rest stale.
    assert_eq!(store.reminders_opt_out(&w.nurse, case).await.unwrap(), None);
    store
        .set_reminders_opt_out(&w.nurse, case, true, at)
        .await
        .unwrap();
    let opt = store
        .reminders_opt_out(&w.nurse, case)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(opt.by, "nurse");
    let m = store.message(id).await.unwrap();
    assert_eq!(m.state, MessageState::Cancelled);
    assert_eq!(
        m.cancelled_reason.as_deref(),
        Some("the patient opted out of reminders")
    );
    assert_eq!(
        store.stale_reason(id, day_before).await.unwrap().as_deref(),
        Some("the patient opted out of reminders")
    );
    assert!(matches!(
        store
            .set_reminders_opt_out(&w.referrer.actor(), case, false, at)
            .await,
        Err(StoreError::Denied(_))
    ));
    store
        .set_reminders_opt_out(&w.scheduler, case, false, at)
        .await
        .unwrap();
    assert_eq!(store.reminders_opt_out(&w.nurse, case).await.unwrap(), None);

    // A cancelled appointment makes its reminder stale.
    store
        .replace_planned_reminders(
            &w.scheduler,
            case,
            vec![reminder(case, &appointment, "reminder_3_days", 3)],
            at,
        )
        .await
        .unwrap();
    let three = store
        .case_messages(&w.nurse, case)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.state == MessageState::Planned)
        .unwrap()
        .id;
    // A move behind the reminder's back (no re-plan) makes it stale...
    let site = store.default_site().await.unwrap().unwrap();
    let later = irflow_domain::scheduling::SlotOption {
        start: appointment.start + SignedDuration::from_hours(2),
        end: appointment.start + SignedDuration::from_mins(140),
        room: appointment.room_id,
        radiologist: appointment.radiologist_id,
        chair: None,
    };
    let moved = store
        .reschedule_appointment(
            &w.scheduler,
            case,
            &site,
            &later,
            10,
            "later that day",
            at,
            today(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .stale_reason(three, day_before)
            .await
            .unwrap()
            .as_deref(),
        Some("the appointment moved")
    );
    // ...and so does a cancellation.
    store
        .replace_planned_reminders(
            &w.scheduler,
            case,
            vec![reminder(case, &moved, "reminder_3_days", 3)],
            at,
        )
        .await
        .unwrap();
    let on_moved = store
        .case_messages(&w.nurse, case)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.state == MessageState::Planned)
        .unwrap();
    assert_eq!(on_moved.appointment_id, Some(moved.id));
    assert_eq!(
        store.stale_reason(on_moved.id, day_before).await.unwrap(),
        None
    );
    store
        .cancel_appointment(&w.scheduler, case, "patient is unwell", at, today())
        .await
        .unwrap();
    assert_eq!(
        store
            .stale_reason(on_moved.id, day_before)
            .await
            .unwrap()
            .as_deref(),
        Some("the appointment was cancelled")
    );
    let events = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                entity_type: Some("reminder_opt_out".into()),
                action: Some("update".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(events.len(), 3, "two changes and the referrer's refusal");
}
on_every_backend!(
    stale_reminders_and_the_opt_out_everywhere,
    stale_reminders_and_the_opt_out
);
