//! The department's resources as administrators run them (resources.rs), on SQLite
//! always and on PostgreSQL when `IRFLOW_TEST_DATABASE_URL` is set: validated,
//! audited, administrators only, and never stranding a booked patient.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_domain::pathway::TransitionRequest;
use irflow_domain::patient::parse_date_of_birth;
use irflow_domain::scheduling::SlotOption;
use irflow_domain::{
    Action, Actor, Channel, LanguageTag, Modality, NewPatient, PersonName, ReferralDetails, Role,
    Side, SpineLevels, Urgency, Username,
};
use irflow_store::testing::TestDatabase;
use irflow_store::{
    AuditFilter, AuditOutcome, NewClosure, NewReferral, NewUser, ReferralSubject, ResourceKind,
    Store, StoreError, UserRecord,
};
use jiff::civil::{Weekday, time};
use jiff::{SignedDuration, Timestamp};

#[macro_use]
mod common;

fn today() -> jiff::civil::Date {
    jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::get("America/New_York").unwrap())
        .date()
}

async fn user(store: &Store, name: &str, role: Role) -> UserRecord {
    store
        .create_user(
            &Actor::system("test"),
            &NewUser {
                username: Username::parse(name).unwrap(),
                display_name: format!("Dr {name}"),
                role,
                organization: (role == Role::Referrer).then(|| "Clinic".to_owned()),
                password_hash: "not-a-real-hash".into(),
            },
        )
        .await
        .unwrap()
}

struct World {
    admin: Actor,
    nurse: Actor,
    scheduler: Actor,
    radiologist: UserRecord,
    referrer: UserRecord,
    site: irflow_store::SiteRecord,
    room: i64,
    chair: i64,
}

async fn world(store: &Store) -> World {
    let admin = user(store, "admin", Role::Admin).await.actor();
    let nurse = user(store, "nurse", Role::Nurse).await.actor();
    let scheduler = user(store, "sched", Role::Scheduler).await.actor();
    let radiologist = user(store, "rad", Role::Radiologist).await;
    let referrer = user(store, "ref", Role::Referrer).await;
    store
        .create_site(&admin, "Main", "America/New_York")
        .await
        .unwrap();
    let site = store.default_site().await.unwrap().unwrap();
    let room = store
        .add_room(&admin, site.id, "Fluoro 1", Modality::Fluoroscopy, 10)
        .await
        .unwrap();
    let chair = store.add_chair(&admin, site.id, "Chair 1").await.unwrap();
    World {
        admin,
        nurse,
        scheduler,
        radiologist,
        referrer,
        site,
        room,
        chair,
    }
}

/// A ready case for 64483, booked in the world's room with its radiologist and chair.
async fn booked(store: &Store, w: &World, family: &str, start: Timestamp) -> i64 {
    let receipt = store
        .submit_referral(
            &w.referrer.actor(),
            &NewReferral {
                subject: ReferralSubject::New(NewPatient {
                    mrn: None,
                    name: PersonName::parse(family, "Pat").unwrap(),
                    date_of_birth: parse_date_of_birth("1960-05-01", today()).unwrap(),
                    phone: None,
                    email: None,
                    preferred_language: LanguageTag::english(),
                }),
                referrer: w.referrer.id,
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
                channel: Channel::Online,
            },
            Timestamp::now(),
        )
        .await
        .unwrap();
    let case = receipt.case;
    for (actor, action) in [
        (w.radiologist.actor(), Action::Accept),
        (w.nurse.clone(), Action::MarkReady),
    ] {
        store
            .transition_case(
                &actor,
                case,
                &TransitionRequest::new(action),
                None,
                Timestamp::now(),
                today(),
            )
            .await
            .unwrap();
    }
    let option = SlotOption {
        start,
        end: start + SignedDuration::from_mins(20),
        room: w.room,
        radiologist: w.radiologist.id.get(),
        chair: Some(irflow_domain::scheduling::ChairOption {
            chair: w.chair,
            start: start + SignedDuration::from_mins(20),
            end: start + SignedDuration::from_mins(50),
        }),
    };
    store
        .book_appointment(
            &w.scheduler,
            case,
            &w.site,
            &option,
            10,
            None,
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap()
        .id
}

fn field_of(e: &StoreError) -> &'static str {
    match e {
        StoreError::Field { field, .. } => field,
        other => panic!("expected a field error, got {other:?}"),
    }
}

async fn audited(
    store: &Store,
    w: &World,
    entity: &str,
    action: &str,
    outcome: AuditOutcome,
) -> bool {
    store
        .list_audit(
            &w.admin,
            &AuditFilter {
                entity_type: Some(entity.to_owned()),
                action: Some(action.to_owned()),
                outcome: Some(outcome),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .iter()
        .any(|e| e.actor_username == "admin")
}

async fn site_rooms_and_chairs_are_validated_and_audited(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    // The site's zone: checked, stored canonically, audited.
    let e = store
        .update_site(&w.admin, w.site.id, "Main", "Mars/Olympus_Mons")
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "time_zone");
    assert_eq!(store.default_site().await.unwrap().unwrap(), w.site);
    store
        .update_site(&w.admin, w.site.id, " Main Campus ", "America/Chicago")
        .await
        .unwrap();
    let site = store.default_site().await.unwrap().unwrap();
    assert_eq!(
        (site.name.as_str(), site.time_zone.as_str()),
        ("Main Campus", "America/Chicago")
    );
    assert!(audited(store, &w, "site", "update", AuditOutcome::Success).await);

    // Rooms: names unique at the site, turnaround on the grid.
    let e = store
        .add_room(&w.admin, w.site.id, "Fluoro 1", Modality::Ct, 10)
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
    let e = store
        .add_room(&w.admin, w.site.id, "CT 1", Modality::Ct, 7)
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "turnaround_minutes");
    let e = store
        .add_room(&w.admin, w.site.id, "  ", Modality::Ct, 10)
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
    let ct = store
        .add_room(&w.admin, w.site.id, "CT 1", Modality::Ct, 15)
        .await
        .unwrap();
    let e = store
        .update_room(&w.admin, ct, "Fluoro 1", Modality::Ct, 15, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
    let e = store
        .update_room(&w.admin, ct, "CT 1", Modality::Ct, 125, Timestamp::now())
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "turnaround_minutes");
    store
        .update_room(
            &w.admin,
            ct,
            "CT 2",
            Modality::Fluoroscopy,
            20,
            Timestamp::now(),
        )
        .await
        .unwrap();
    let r = store.room_entry(ct).await.unwrap();
    assert_eq!(
        (r.name.as_str(), r.modality, r.turnaround_minutes, r.active),
        ("CT 2", Modality::Fluoroscopy, 20, true)
    );
    assert_eq!(store.all_rooms(w.site.id).await.unwrap().len(), 2);
    // Chairs: unique names; out of service and back.
    let e = store
        .add_chair(&w.admin, w.site.id, "Chair 1")
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "name");
    store
        .set_chair_active(&w.admin, w.chair, false, Timestamp::now())
        .await
        .unwrap();
    assert!(!store.chair_entry(w.chair).await.unwrap().active);
    assert!(store.chairs(w.site.id).await.unwrap().is_empty());
    store
        .set_chair_active(&w.admin, w.chair, true, Timestamp::now())
        .await
        .unwrap();
    assert_eq!(store.chairs(w.site.id).await.unwrap().len(), 1);
    assert!(audited(store, &w, "chair", "deactivate", AuditOutcome::Success).await);

    // Radiologists: every user with the role, with their procedures.
    store
        .set_credentials(&w.admin, w.radiologist.id, &["64483", "27096"])
        .await
        .unwrap();
    let rads = store.radiologist_entries().await.unwrap();
    assert_eq!(rads.len(), 1);
    assert_eq!(
        rads[0].procedures,
        vec!["27096".to_owned(), "64483".to_owned()]
    );
    assert_eq!(
        store
            .resource_name(ResourceKind::Radiologist, w.radiologist.id.get())
            .await
            .unwrap(),
        "Dr rad"
    );
    assert!(matches!(
        store
            .resource_name(ResourceKind::Radiologist, w.referrer.id.get())
            .await,
        Err(StoreError::NotFound)
    ));
}
on_every_backend!(
    site_rooms_and_chairs_are_validated_and_audited_everywhere,
    site_rooms_and_chairs_are_validated_and_audited
);

async fn weekly_hours_are_added_on_several_days_or_not_at_all(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let days = [Weekday::Monday, Weekday::Wednesday, Weekday::Friday];
    let ids = store
        .add_weekly_hours(
            &w.admin,
            ResourceKind::Room,
            w.room,
            &days,
            time(8, 0, 0, 0),
            time(16, 0, 0, 0),
        )
        .await
        .unwrap();
    assert_eq!(ids.len(), 3);
    let before = store
        .availability_of(ResourceKind::Room, w.room)
        .await
        .unwrap();
    assert_eq!(before.len(), 3);
    assert_eq!(before[0].window.weekday, Weekday::Monday);
    // Refusals change nothing: no days, off the grid, end before start, overlap, no such room.
    for (days, start, end, field) in [
        (&[][..], time(8, 0, 0, 0), time(9, 0, 0, 0), "weekday"),
        (
            &[Weekday::Tuesday][..],
            time(8, 3, 0, 0),
            time(9, 0, 0, 0),
            "start_time",
        ),
        (
            &[Weekday::Tuesday][..],
            time(9, 0, 0, 0),
            time(8, 0, 0, 0),
            "end_time",
        ),
        (
            &[Weekday::Tuesday, Weekday::Friday][..],
            time(15, 0, 0, 0),
            time(17, 0, 0, 0),
            "start_time",
        ),
    ] {
        let e = store
            .add_weekly_hours(&w.admin, ResourceKind::Room, w.room, days, start, end)
            .await
            .unwrap_err();
        assert_eq!(field_of(&e), field, "{days:?} {start}-{end}");
    }
    assert!(matches!(
        store
            .add_weekly_hours(
                &w.admin,
                ResourceKind::Room,
                w.room + 100,
                &[Weekday::Tuesday],
                time(8, 0, 0, 0),
                time(9, 0, 0, 0),
            )
            .await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(
        store
            .availability_of(ResourceKind::Room, w.room)
            .await
            .unwrap(),
        before
    );
    // Back to back is fine.
    store
        .add_weekly_hours(
            &w.admin,
            ResourceKind::Room,
            w.room,
            &[Weekday::Friday],
            time(16, 0, 0, 0),
            time(18, 30, 0, 0),
        )
        .await
        .unwrap();
    // They reach the slot finder.
    let from = Timestamp::now();
    let res = store
        .slot_resources(&w.site, from, from + SignedDuration::from_hours(24 * 7))
        .await
        .unwrap();
    assert_eq!(res.rooms[0].windows.len(), 4);
    // Removed one by one, audited.
    let removed = store.remove_availability(&w.admin, ids[1]).await.unwrap();
    assert_eq!(removed.window.weekday, Weekday::Wednesday);
    assert!(matches!(
        store.remove_availability(&w.admin, ids[1]).await,
        Err(StoreError::NotFound)
    ));
    assert_eq!(store.availability_windows().await.unwrap().len(), 3);
    assert!(audited(store, &w, "availability", "create", AuditOutcome::Success).await);
    assert!(audited(store, &w, "availability", "delete", AuditOutcome::Success).await);
}
on_every_backend!(
    weekly_hours_are_added_on_several_days_or_not_at_all_everywhere,
    weekly_hours_are_added_on_several_days_or_not_at_all
);

async fn nothing_strands_a_booked_patient(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    store
        .set_credentials(&w.admin, w.radiologist.id, &["64483"])
        .await
        .unwrap();
    let start = Timestamp::now() + SignedDuration::from_hours(24 * 10);
    let start = Timestamp::from_second(start.as_second() - start.as_second() % 300).unwrap();
    let appointment = booked(store, &w, "Booked", start).await;
    let now = Timestamp::now();

    // The room and chair in use cannot be taken out of service.
    for result in [
        store.set_room_active(&w.admin, w.room, false, now).await,
        store.set_chair_active(&w.admin, w.chair, false, now).await,
    ] {
        match result {
            Err(StoreError::Conflict(m)) => assert!(m.starts_with("1 future booked"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(store.room_entry(w.room).await.unwrap().active);
    assert!(store.chair_entry(w.chair).await.unwrap().active);
    // Nor the room's guidance changed; its name and turnaround may.
    let e = store
        .update_room(&w.admin, w.room, "Fluoro 1", Modality::Ct, 10, now)
        .await
        .unwrap_err();
    assert_eq!(field_of(&e), "modality");
    store
        .update_room(&w.admin, w.room, "Fluoro A", Modality::Fluoroscopy, 15, now)
        .await
        .unwrap();

    // What uses each resource, and when.
    for (kind, id) in [
        (ResourceKind::Room, w.room),
        (ResourceKind::Radiologist, w.radiologist.id.get()),
        (ResourceKind::Chair, w.chair),
    ] {
        let found = store
            .resource_bookings(&w.admin, kind, id, now, None)
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "{kind:?}");
        assert_eq!(found[0].appointment_id, appointment);
        assert_eq!(found[0].room_name, "Fluoro A");
        assert_eq!(found[0].chair_name.as_deref(), Some("Chair 1"));
    }
    // The chair is in use during recovery, after the procedure: a closure of the
    // chair during the procedure itself does not touch it.
    assert!(
        store
            .resource_bookings(
                &w.admin,
                ResourceKind::Chair,
                w.chair,
                start,
                Some(start + SignedDuration::from_mins(20)),
            )
            .await
            .unwrap()
            .is_empty()
    );

    // A closure over it: refused unless confirmed, then listed as needing a move.
    let closure = NewClosure {
        kind: ResourceKind::Radiologist,
        resource_id: w.radiologist.id.get(),
        start: start - SignedDuration::from_hours(1),
        end: start + SignedDuration::from_hours(3),
        reason: "Radiologist away".into(),
    };
    assert!(matches!(
        store.add_closure(&w.admin, &closure, false, now).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.upcoming_closures(now).await.unwrap().is_empty());
    let added = store
        .add_closure(&w.admin, &closure, true, now)
        .await
        .unwrap();
    assert_eq!(added.affected.len(), 1);
    assert_eq!(added.affected[0].appointment_id, appointment);
    let conflicts = store.closure_conflicts(&w.admin, now).await.unwrap();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(conflicts[0].0, added.id);
    assert!(audited(store, &w, "closure", "create", AuditOutcome::Success).await);
    // The slot finder sees it.
    let res = store
        .slot_resources(&w.site, now, start + SignedDuration::from_hours(24))
        .await
        .unwrap();
    assert!(!res.busy.is_free(
        &irflow_domain::scheduling::ResourceId::Radiologist(w.radiologist.id.get()),
        &irflow_domain::scheduling::Interval {
            start: start + SignedDuration::from_hours(2),
            end: start + SignedDuration::from_hours(2) + SignedDuration::from_mins(20),
        }
    ));
    // A closure elsewhere needs no confirmation.
    let elsewhere = NewClosure {
        start: start + SignedDuration::from_hours(24),
        end: start + SignedDuration::from_hours(48),
        ..closure.clone()
    };
    let quiet = store
        .add_closure(&w.admin, &elsewhere, false, now)
        .await
        .unwrap();
    assert!(quiet.affected.is_empty());
    assert_eq!(store.upcoming_closures(now).await.unwrap().len(), 2);
    // Bad closures store nothing.
    for (bad, field) in [
        (
            NewClosure {
                reason: "   ".into(),
                ..elsewhere.clone()
            },
            "reason",
        ),
        (
            NewClosure {
                end: elsewhere.start,
                ..elsewhere.clone()
            },
            "to_date",
        ),
        (
            NewClosure {
                start: now - SignedDuration::from_hours(48),
                end: now - SignedDuration::from_hours(24),
                ..elsewhere.clone()
            },
            "to_date",
        ),
    ] {
        let e = store
            .add_closure(&w.admin, &bad, true, now)
            .await
            .unwrap_err();
        assert_eq!(field_of(&e), field);
    }
    assert_eq!(store.upcoming_closures(now).await.unwrap().len(), 2);
    // Removed: the conflict is gone.
    let removed = store.remove_closure(&w.admin, added.id).await.unwrap();
    assert_eq!(removed.reason, "Radiologist away");
    assert!(
        store
            .closure_conflicts(&w.admin, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        store.closure_entry(added.id).await,
        Err(StoreError::NotFound)
    ));

    // Once the booking is cancelled, the room may go out of service.
    store
        .cancel_appointment(
            &w.scheduler,
            store
                .resource_bookings(&w.admin, ResourceKind::Room, w.room, now, None)
                .await
                .unwrap()[0]
                .case_id,
            "patient asked",
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    store
        .set_room_active(&w.admin, w.room, false, Timestamp::now())
        .await
        .unwrap();
    assert!(!store.room_entry(w.room).await.unwrap().active);
    assert!(store.rooms(w.site.id).await.unwrap().is_empty());
}
on_every_backend!(
    nothing_strands_a_booked_patient_everywhere,
    nothing_strands_a_booked_patient
);

async fn only_administrators_change_resources(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let now = Timestamp::now();
    for actor in [&w.nurse, &w.scheduler, &w.referrer.actor()] {
        let denied = |r: Result<(), StoreError>| matches!(r, Err(StoreError::Denied(_)));
        assert!(denied(
            store.update_site(actor, w.site.id, "Mine", "UTC").await
        ));
        assert!(denied(
            store
                .add_room(actor, w.site.id, "Mine", Modality::Ct, 10)
                .await
                .map(|_| ())
        ));
        assert!(denied(
            store.set_room_active(actor, w.room, false, now).await
        ));
        assert!(denied(
            store
                .add_weekly_hours(
                    actor,
                    ResourceKind::Room,
                    w.room,
                    &[Weekday::Monday],
                    time(8, 0, 0, 0),
                    time(9, 0, 0, 0),
                )
                .await
                .map(|_| ())
        ));
        assert!(denied(
            store
                .add_closure(
                    actor,
                    &NewClosure {
                        kind: ResourceKind::Room,
                        resource_id: w.room,
                        start: now + SignedDuration::from_hours(1),
                        end: now + SignedDuration::from_hours(2),
                        reason: "Mine".into(),
                    },
                    true,
                    now,
                )
                .await
                .map(|_| ())
        ));
        assert!(denied(
            store
                .resource_bookings(actor, ResourceKind::Room, w.room, now, None)
                .await
                .map(|_| ())
        ));
    }
    assert_eq!(store.default_site().await.unwrap().unwrap(), w.site);
    assert_eq!(store.all_rooms(w.site.id).await.unwrap().len(), 1);
    assert!(store.availability_windows().await.unwrap().is_empty());
    assert!(store.upcoming_closures(now).await.unwrap().is_empty());
    // Every refusal is in the audit log.
    let denied = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                outcome: Some(AuditOutcome::Denied),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(denied.len(), 18, "{denied:?}");
}
on_every_backend!(
    only_administrators_change_resources_everywhere,
    only_administrators_change_resources
);
