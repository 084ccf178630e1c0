//! Store behaviour, on SQLite always and on PostgreSQL when
//! `IRFLOW_TEST_DATABASE_URL` is set. Each scenario gets its own fresh database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_domain::pathway::TransitionRequest;
use irflow_domain::patient::parse_date_of_birth;
use irflow_domain::{
    Action, Actor, CaseState, LanguageTag, Mrn, NewPatient, PersonName, Role, TransitionError,
    Username,
};
use irflow_domain::{Channel, ReferralDetails, ReturnReason, Side, SpineLevels, Urgency};
use irflow_store::testing::TestDatabase;
use irflow_store::{
    AuditFilter, AuditOutcome, CaseFilter, NewReferral, NewUser, PatientChoice, PatientMatch,
    ReferralSubject, Store, StoreError, UserRecord,
};
use jiff::{SignedDuration, Timestamp};

#[macro_use]
mod common;
use common::{today, user};

fn patient(mrn: Option<&str>, family: &str) -> NewPatient {
    NewPatient {
        mrn: mrn.map(|m| Mrn::parse(m).unwrap()),
        name: PersonName::parse(family, "Pat").unwrap(),
        date_of_birth: parse_date_of_birth("1960-05-01", today()).unwrap(),
        phone: None,
        email: None,
        preferred_language: LanguageTag::english(),
    }
}

struct World {
    nurse: Actor,
    radiologist: Actor,
    referrer: UserRecord,
    other_referrer: UserRecord,
    admin: Actor,
}

async fn world(store: &Store) -> World {
    World {
        nurse: user(store, "nurse", Role::Nurse, None).await.actor(),
        radiologist: user(store, "rad", Role::Radiologist, None).await.actor(),
        referrer: user(store, "ref1", Role::Referrer, Some("Clinic A")).await,
        other_referrer: user(store, "ref2", Role::Referrer, Some("Clinic B")).await,
        admin: user(store, "admin", Role::Admin, None).await.actor(),
    }
}

fn details(code: &str, levels: Option<&str>) -> ReferralDetails {
    ReferralDetails {
        procedure_code: code.into(),
        levels: levels.map(|l| SpineLevels::parse(l).unwrap()),
        side: Side::Left,
        indication: "Left L5 radiculopathy".into(),
        icd10: None,
        urgency: Urgency::Routine,
        prior_imaging: None,
        blood_thinners: None,
        clinical_notes: None,
    }
}

async fn refer(
    store: &Store,
    referrer: &UserRecord,
    patient: NewPatient,
    code: &str,
) -> Result<irflow_store::ReferralReceipt, StoreError> {
    let levels = (code != "27096").then_some("L4-L5");
    store
        .submit_referral(
            &referrer.actor(),
            &NewReferral {
                subject: ReferralSubject::New(patient),
                referrer: referrer.id,
                details: details(code, levels),
                channel: Channel::Online,
            },
            Timestamp::now(),
        )
        .await
}

async fn open_case(store: &Store, referrer: &UserRecord, family: &str) -> irflow_domain::CaseId {
    refer(store, referrer, patient(None, family), "64483")
        .await
        .unwrap()
        .case
}

async fn migrations_are_idempotent(db: &TestDatabase) {
    let store = &db.store;
    assert!(
        store.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );
    store.ping().await.unwrap();
}
on_every_backend!(
    migrations_are_idempotent_everywhere,
    migrations_are_idempotent
);

async fn users_sessions_and_tokens(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let dup = store
        .create_user(
            &Actor::system("test"),
            &NewUser {
                username: Username::parse("NURSE").unwrap(),
                display_name: "Another".into(),
                role: Role::Nurse,
                organization: None,
                password_hash: "x".into(),
            },
        )
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");

    let nurse = store.user_by_username("nurse").await.unwrap();
    let now = Timestamp::now();
    store
        .create_session(
            nurse.id,
            "hash-1",
            "csrf-1",
            now,
            now + SignedDuration::from_hours(8),
        )
        .await
        .unwrap();
    let live = store
        .live_session("hash-1", now, SignedDuration::from_mins(30))
        .await
        .unwrap()
        .expect("live");
    assert_eq!(live.user.username, "nurse");
    assert_eq!(live.csrf_token, "csrf-1");
    // Idle too long, or past expiry: gone.
    let later = now + SignedDuration::from_hours(1);
    assert!(
        store
            .live_session("hash-1", later, SignedDuration::from_mins(30))
            .await
            .unwrap()
            .is_none()
    );
    let much_later = now + SignedDuration::from_hours(9);
    assert!(
        store
            .live_session("hash-1", much_later, SignedDuration::from_hours(10))
            .await
            .unwrap()
            .is_none()
    );
    store.delete_session("hash-1").await.unwrap();
    assert!(
        store
            .live_session("hash-1", now, SignedDuration::from_mins(30))
            .await
            .unwrap()
            .is_none()
    );

    let id = store
        .issue_api_token(&w.admin, nurse.id, "tok-hash", "ris")
        .await
        .unwrap();
    assert_eq!(
        store
            .user_for_api_token("tok-hash")
            .await
            .unwrap()
            .unwrap()
            .id,
        nurse.id
    );
    store.revoke_api_token(&w.admin, id).await.unwrap();
    assert!(
        store
            .user_for_api_token("tok-hash")
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store.revoke_api_token(&w.admin, id).await,
        Err(StoreError::NotFound)
    ));
    let listed = store.list_api_tokens().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(listed[0].revoked_at.is_some());

    for _ in 0..3 {
        store
            .record_login_attempt("nurse", "10.0.0.1", false, now)
            .await
            .unwrap();
    }
    store
        .record_login_attempt("nurse", "10.0.0.1", true, now)
        .await
        .unwrap();
    store
        .record_login_attempt("other", "10.0.0.1", false, now)
        .await
        .unwrap();
    let (by_user, by_client) = store
        .recent_login_failures("nurse", "10.0.0.1", now - SignedDuration::from_mins(15))
        .await
        .unwrap();
    assert_eq!((by_user, by_client), (3, 4));
}
on_every_backend!(
    users_sessions_and_tokens_everywhere,
    users_sessions_and_tokens
);

async fn cases_follow_the_pathway_and_keep_a_timeline(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Alvarez").await;
    let accept = TransitionRequest::new(Action::Accept);
    let e = store
        .transition_case(
            &w.radiologist,
            case,
            &accept,
            None,
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    assert_eq!((e.from, e.to), (CaseState::Referred, CaseState::Screening));

    // An impossible transition is refused with the domain's reason and changes nothing.
    let refused = store
        .transition_case(
            &w.nurse,
            case,
            &TransitionRequest::new(Action::Discharge),
            None,
            Timestamp::now(),
            today(),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Transition(TransitionError::NotFromState { .. }))
        ),
        "{refused:?}"
    );
    let mut defer = TransitionRequest::new(Action::Defer).because("on antibiotics");
    defer.deferred_until = Some(jiff::civil::date(2026, 12, 6));
    store
        .transition_case(&w.nurse, case, &defer, None, Timestamp::now(), today())
        .await
        .unwrap();

    let detail = store.case_detail(&w.nurse, case).await.unwrap();
    assert_eq!(detail.case.state, CaseState::Deferred);
    assert_eq!(
        detail.case.deferred_until,
        Some(jiff::civil::date(2026, 12, 6))
    );
    assert_eq!(detail.case.version, 3);
    let steps: Vec<_> = detail
        .timeline
        .iter()
        .map(|t| (t.action.as_str(), t.to))
        .collect();
    assert_eq!(
        steps,
        [
            ("refer", CaseState::Referred),
            ("accept", CaseState::Screening),
            ("defer", CaseState::Deferred)
        ]
    );
    assert_eq!(detail.timeline[2].reason.as_deref(), Some("on antibiotics"));
    assert_eq!(detail.timeline[2].actor_username, "nurse");
    assert_eq!(detail.timeline[2].actor_role, Some(Role::Nurse));

    // A stale version is a conflict, not a lost update.
    let stale = store
        .transition_case(
            &w.nurse,
            case,
            &TransitionRequest::new(Action::MarkReady),
            Some(2),
            Timestamp::now(),
            today(),
        )
        .await;
    assert!(matches!(stale, Err(StoreError::Conflict(_))), "{stale:?}");

    let deferred = store
        .list_cases(&w.nurse, &CaseFilter::in_state(CaseState::Deferred))
        .await
        .unwrap();
    assert_eq!(deferred.len(), 1);
    assert_eq!(deferred[0].patient_name(), "Alvarez, Pat");
    assert!(
        store
            .list_cases(&w.nurse, &CaseFilter::in_state(CaseState::Ready))
            .await
            .unwrap()
            .is_empty()
    );
}
on_every_backend!(
    cases_follow_the_pathway_everywhere,
    cases_follow_the_pathway_and_keep_a_timeline
);

async fn referrers_see_only_their_own_cases(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let mine = open_case(store, &w.referrer, "Mine").await;
    let theirs = open_case(store, &w.other_referrer, "Theirs").await;
    let me = w.referrer.actor();
    let listed = store.list_cases(&me, &CaseFilter::default()).await.unwrap();
    assert_eq!(listed.iter().map(|c| c.id).collect::<Vec<_>>(), [mine]);
    assert!(store.case_detail(&me, mine).await.is_ok());
    assert!(matches!(
        store.case_detail(&me, theirs).await,
        Err(StoreError::NotFound)
    ));
    // Nor can they move it.
    let cancel = TransitionRequest::new(Action::Cancel).because("mine now");
    assert!(matches!(
        store
            .transition_case(&me, theirs, &cancel, None, Timestamp::now(), today())
            .await,
        Err(StoreError::NotFound)
    ));
    // Nor refer in someone else's name.
    let p = store
        .create_patient(&me, &patient(None, "X"))
        .await
        .unwrap();
    let forged = store
        .submit_referral(
            &me,
            &NewReferral {
                subject: ReferralSubject::Existing(p),
                referrer: w.other_referrer.id,
                details: details("64483", Some("L4-L5")),
                channel: Channel::Online,
            },
            Timestamp::now(),
        )
        .await;
    assert!(matches!(forged, Err(StoreError::Denied(_))));
    // Staff see both, and so do admins.
    assert_eq!(
        store
            .list_cases(&w.nurse, &CaseFilter::default())
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        store
            .list_cases(&w.admin, &CaseFilter::default())
            .await
            .unwrap()
            .len(),
        2,
        "admins may triage"
    );
    // Patients: a referrer reads only the patients of their own cases.
    let mine_patient = store.case_detail(&w.nurse, mine).await.unwrap().patient.id;
    let theirs_patient = store
        .case_detail(&w.nurse, theirs)
        .await
        .unwrap()
        .patient
        .id;
    assert!(store.patient(&me, mine_patient).await.is_ok());
    assert!(matches!(
        store.patient(&me, theirs_patient).await,
        Err(StoreError::NotFound)
    ));

    // The denied read is in the audit log as denied, attributed to the referrer.
    let denied = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                actor: Some("ref1".into()),
                outcome: Some(AuditOutcome::Denied),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        denied
            .iter()
            .any(|e| e.action == "read" && e.entity_id.as_deref() == Some(&theirs.to_string())),
        "{denied:?}"
    );
}
on_every_backend!(
    referrers_are_confined_everywhere,
    referrers_see_only_their_own_cases
);

async fn patients_are_validated_and_unique_by_mrn(db: &TestDatabase) {
    let store = &db.store;
    let sys = Actor::system("test");
    store
        .create_patient(&sys, &patient(Some("MGH-1"), "One"))
        .await
        .unwrap();
    let dup = store
        .create_patient(&sys, &patient(Some("mgh-1"), "Two"))
        .await;
    assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
    // Patients without MRN never collide.
    store
        .create_patient(&sys, &patient(None, "Three"))
        .await
        .unwrap();
    store
        .create_patient(&sys, &patient(None, "Four"))
        .await
        .unwrap();
}
on_every_backend!(
    patients_are_unique_by_mrn_everywhere,
    patients_are_validated_and_unique_by_mrn
);

async fn audit_log_is_append_only_and_complete(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Audited").await;
    store.case_detail(&w.nurse, case).await.unwrap();
    let events = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                entity_type: Some("case".into()),
                entity_id: Some(case.to_string()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let actions: Vec<_> = events
        .iter()
        .map(|e| (e.action.as_str(), e.actor_username.as_str()))
        .collect();
    assert_eq!(
        actions,
        [("read", "nurse"), ("create", "ref1")],
        "newest first"
    );

    // Non-admins may not read it, and the attempt is itself audited.
    assert!(matches!(
        store.list_audit(&w.nurse, &AuditFilter::default()).await,
        Err(StoreError::Denied(_))
    ));

    // The database refuses to change or remove audit rows and timeline rows.
    let pool = sqlx::AnyPool::connect(&db.url).await.unwrap();
    for sql in [
        "UPDATE audit_events SET outcome = 'success'",
        "DELETE FROM audit_events",
        "UPDATE case_events SET reason = 'rewritten'",
        "DELETE FROM case_events",
    ] {
        let r = sqlx::raw_sql(sql).execute(&pool).await;
        assert!(r.is_err(), "{sql} must be refused");
        assert!(r.unwrap_err().to_string().contains("append-only"));
    }
    let after = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                limit: Some(500),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(after.len() >= 8);
    // Paging back with before_id.
    let page = store
        .list_audit(
            &w.admin,
            &AuditFilter {
                before_id: Some(after[1].id),
                limit: Some(1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.len(), 1);
    assert!(page[0].id < after[1].id);
}
on_every_backend!(
    audit_log_is_append_only_everywhere,
    audit_log_is_append_only_and_complete
);

async fn concurrent_transitions_have_one_winner(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Race").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let rad = w.radiologist.clone();
        tasks.push(tokio::spawn(async move {
            store
                .transition_case(
                    &rad,
                    case,
                    &TransitionRequest::new(Action::Accept),
                    None,
                    Timestamp::now(),
                    today(),
                )
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict(_) | StoreError::Transition(_)) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(wins, 1, "exactly one accept");
    let detail = store.case_detail(&w.nurse, case).await.unwrap();
    assert_eq!(detail.timeline.len(), 2, "one refer, one accept");
}
on_every_backend!(
    concurrent_transitions_have_one_winner_everywhere,
    concurrent_transitions_have_one_winner
);

async fn referrals_match_patients_and_refuse_duplicates(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let first = refer(store, &w.referrer, patient(Some("MGH-7"), "Lopez"), "64483")
        .await
        .unwrap();
    assert_eq!(first.patient_match, PatientMatch::New);
    // Same MRN, same person: reused; same procedure still open: refused, naming the case.
    let again = refer(
        store,
        &w.other_referrer,
        patient(Some("mgh-7"), "Lopez"),
        "64483",
    )
    .await;
    assert!(
        matches!(again, Err(StoreError::DuplicateCase { existing }) if existing == first.case),
        "{again:?}"
    );
    // A different procedure for the same patient is fine, and reuses the record.
    let facet = refer(store, &w.referrer, patient(Some("MGH-7"), "Lopez"), "64493")
        .await
        .unwrap();
    assert_eq!(
        (facet.patient, facet.patient_match),
        (first.patient, PatientMatch::ByMrn)
    );
    // Name and date of birth (any case, extra spaces) without MRN: the same patient.
    let by_name = refer(store, &w.referrer, patient(None, "  LOPEZ "), "27096")
        .await
        .unwrap();
    assert_eq!(
        (by_name.patient, by_name.patient_match),
        (first.patient, PatientMatch::ByNameAndBirthDate)
    );
    // An MRN that belongs to someone else is refused as a likely typo; nothing is stored.
    let before = store
        .list_cases(&w.nurse, &CaseFilter::default())
        .await
        .unwrap()
        .len();
    let typo = refer(store, &w.referrer, patient(Some("MGH-7"), "Smith"), "64483").await;
    assert!(
        matches!(typo, Err(StoreError::Field { field: "mrn", .. })),
        "{typo:?}"
    );
    assert_eq!(
        store
            .list_cases(&w.nurse, &CaseFilter::default())
            .await
            .unwrap()
            .len(),
        before
    );

    // Two patients on file with the same name and birth date: never merged silently.
    let sys = Actor::system("test");
    let twin_a = store
        .create_patient(&sys, &patient(Some("A-1"), "Twin"))
        .await
        .unwrap();
    let twin_b = store
        .create_patient(&sys, &patient(Some("B-2"), "Twin"))
        .await
        .unwrap();
    let doubtful = refer(store, &w.referrer, patient(None, "Twin"), "64483")
        .await
        .unwrap();
    assert_eq!(
        doubtful.patient_match,
        PatientMatch::Ambiguous(vec![twin_a, twin_b])
    );
    assert!(doubtful.patient != twin_a && doubtful.patient != twin_b);
    let d = store.case_detail(&w.nurse, doubtful.case).await.unwrap();
    assert!(d.case.needs_patient_review);
    assert_eq!(d.referral.review_candidates, vec![twin_a, twin_b]);
    // A referrer cannot decide; staff can, and the provisional record goes away.
    assert!(matches!(
        store
            .resolve_patient_review(
                &w.referrer.actor(),
                doubtful.case,
                PatientChoice::SameAs(twin_a),
                Timestamp::now()
            )
            .await,
        Err(StoreError::Denied(_))
    ));
    store
        .resolve_patient_review(
            &w.nurse,
            doubtful.case,
            PatientChoice::SameAs(twin_b),
            Timestamp::now(),
        )
        .await
        .unwrap();
    let d = store.case_detail(&w.nurse, doubtful.case).await.unwrap();
    assert_eq!(d.patient.id, twin_b);
    assert!(!d.case.needs_patient_review);
    assert_eq!(d.timeline.last().unwrap().action, "patient_match");
    assert!(matches!(
        store.patient(&w.nurse, doubtful.patient).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .resolve_patient_review(
                &w.nurse,
                doubtful.case,
                PatientChoice::Separate,
                Timestamp::now()
            )
            .await,
        Err(StoreError::Conflict(_))
    ));
}
on_every_backend!(
    referrals_match_patients_everywhere,
    referrals_match_patients_and_refuse_duplicates
);

async fn returned_referrals_are_amended_and_resubmitted(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let case = open_case(store, &w.referrer, "Returned").await;
    let ret = TransitionRequest::return_to_referrer(
        ReturnReason::ImagingNeededFirst,
        "Please send the lumbar MRI",
    );
    store
        .transition_case(&w.radiologist, case, &ret, None, Timestamp::now(), today())
        .await
        .unwrap();
    let d = store.case_detail(&w.referrer.actor(), case).await.unwrap();
    assert_eq!(d.case.state, CaseState::Returned);
    assert_eq!(
        d.timeline.last().unwrap().reason_code.as_deref(),
        Some("imaging_needed_first")
    );

    let mut amended = details("64483", Some("L5-S1"));
    amended.prior_imaging = Some(irflow_domain::PriorImaging {
        modality: irflow_domain::ImagingModality::Mri,
        date: Some(jiff::civil::date(2026, 11, 1)),
        place: Some("Outside Imaging Center".into()),
    });
    // Another referrer cannot resubmit it.
    assert!(matches!(
        store
            .resubmit_referral(
                &w.other_referrer.actor(),
                case,
                &amended,
                None,
                Timestamp::now(),
                today()
            )
            .await,
        Err(StoreError::NotFound)
    ));
    store
        .resubmit_referral(
            &w.referrer.actor(),
            case,
            &amended,
            Some("MRI attached".into()),
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    let d = store.case_detail(&w.nurse, case).await.unwrap();
    assert_eq!(d.case.state, CaseState::Referred);
    assert_eq!(d.case.levels.as_deref(), Some("L5-S1"));
    assert_eq!(
        d.referral.prior_imaging.as_ref().map(|p| p.modality),
        Some(irflow_domain::ImagingModality::Mri)
    );
    assert_eq!(d.timeline.last().unwrap().action, "resubmit");
    // Resubmitting a case that is not returned is refused by the pathway.
    assert!(matches!(
        store
            .resubmit_referral(
                &w.referrer.actor(),
                case,
                &amended,
                None,
                Timestamp::now(),
                today()
            )
            .await,
        Err(StoreError::Transition(_))
    ));

    // The radiologist changes the procedure while vetting: recorded, state unchanged.
    let facet = details("64493", Some("L4-L5"));
    assert!(matches!(
        store
            .change_procedure(&w.nurse, case, &facet, "facet pain", Timestamp::now())
            .await,
        Err(StoreError::Denied(_))
    ));
    store
        .change_procedure(
            &w.radiologist,
            case,
            &facet,
            "Exam suggests facet pain",
            Timestamp::now(),
        )
        .await
        .unwrap();
    let d = store.case_detail(&w.nurse, case).await.unwrap();
    assert_eq!(
        (d.case.procedure_code.as_str(), d.case.state),
        ("64493", CaseState::Referred)
    );
    let last = d.timeline.last().unwrap();
    assert_eq!(last.action, "change_procedure");
    assert!(
        last.reason
            .as_deref()
            .unwrap()
            .contains("64483 L5-S1 left → 64493 L4-L5 left"),
        "{last:?}"
    );
}
on_every_backend!(
    returned_referrals_are_resubmitted_everywhere,
    returned_referrals_are_amended_and_resubmitted
);

async fn the_catalogue_is_seeded_and_editable_by_admins(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let catalogue = store.procedures().await.unwrap();
    let codes: Vec<&str> = catalogue.iter().map(|p| p.code.as_str()).collect();
    assert_eq!(
        codes,
        [
            "27096", "62321", "62323", "64479", "64483", "64490", "64493"
        ]
    );
    let tfesi = catalogue.iter().find(|p| p.code == "64483").unwrap();
    assert_eq!(tfesi.duration_minutes, 20);
    assert_eq!(
        (tfesi.risk_asra, tfesi.risk_sir),
        (
            irflow_domain::BleedingRisk::Intermediate,
            irflow_domain::BleedingRisk::High
        )
    );
    assert!(
        !catalogue
            .iter()
            .find(|p| p.code == "27096")
            .unwrap()
            .takes_levels()
    );

    let mut edited = tfesi.clone();
    edited.duration_minutes = 30;
    edited.modalities = vec![irflow_domain::Modality::Ct];
    assert!(matches!(
        store.update_procedure(&w.nurse, &edited).await,
        Err(StoreError::Denied(_))
    ));
    store.update_procedure(&w.admin, &edited).await.unwrap();
    let again = store.procedures().await.unwrap();
    assert_eq!(again.iter().find(|p| p.code == "64483").unwrap(), &edited);
    edited.duration_minutes = 0;
    assert!(matches!(
        store.update_procedure(&w.admin, &edited).await,
        Err(StoreError::Invalid(_))
    ));
    // An inactive procedure cannot be ordered.
    let mut off = again.iter().find(|p| p.code == "27096").unwrap().clone();
    off.active = false;
    store.update_procedure(&w.admin, &off).await.unwrap();
    let refused = refer(store, &w.referrer, patient(None, "Inactive"), "27096").await;
    assert!(
        matches!(
            refused,
            Err(StoreError::Field {
                field: "procedure",
                ..
            })
        ),
        "{refused:?}"
    );
}
on_every_backend!(
    the_catalogue_is_editable_everywhere,
    the_catalogue_is_seeded_and_editable_by_admins
);

async fn case_searches_page_and_count(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    for i in 0..5 {
        open_case(store, &w.referrer, &format!("Page{i}")).await;
    }
    open_case(store, &w.other_referrer, "Other").await;
    let filter = CaseFilter {
        referrer: Some(w.referrer.id),
        limit: Some(2),
        offset: Some(2),
        ..Default::default()
    };
    assert_eq!(store.count_cases(&w.nurse, &filter).await.unwrap(), 5);
    assert_eq!(store.list_cases(&w.nurse, &filter).await.unwrap().len(), 2);
    let states = CaseFilter {
        states: vec![CaseState::Referred, CaseState::Screening],
        ..Default::default()
    };
    assert_eq!(store.count_cases(&w.nurse, &states).await.unwrap(), 6);
    // A referrer's count is confined to their own, whatever the filter says.
    let theirs = CaseFilter {
        referrer: Some(w.other_referrer.id),
        ..Default::default()
    };
    assert_eq!(
        store
            .count_cases(&w.referrer.actor(), &theirs)
            .await
            .unwrap(),
        0
    );
}
on_every_backend!(
    case_searches_page_and_count_everywhere,
    case_searches_page_and_count
);

async fn ready_case(store: &Store, w: &World, family: &str) -> irflow_domain::CaseId {
    let case = open_case(store, &w.referrer, family).await;
    let now = Timestamp::now();
    store
        .transition_case(
            &w.radiologist,
            case,
            &TransitionRequest::new(Action::Accept),
            None,
            now,
            today(),
        )
        .await
        .unwrap();
    store
        .transition_case(
            &w.nurse,
            case,
            &TransitionRequest::new(Action::MarkReady),
            None,
            now,
            today(),
        )
        .await
        .unwrap();
    case
}

async fn one_room_site(store: &Store, w: &World) -> (irflow_store::SiteRecord, i64, i64) {
    use irflow_domain::scheduling::WeeklyWindow;
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
    for weekday in [jiff::civil::Weekday::Monday, jiff::civil::Weekday::Tuesday] {
        let window = WeeklyWindow {
            weekday,
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
    }
    (
        store.default_site().await.unwrap().unwrap(),
        room,
        rad.get(),
    )
}

async fn racing_bookings_have_exactly_one_winner(db: &TestDatabase) {
    let store = &db.store;
    let w = world(store).await;
    let (site, room, rad) = one_room_site(store, &w).await;
    let scheduler = user(store, "sched", Role::Scheduler, None).await.actor();
    let start: Timestamp = "2026-12-07T14:00:00Z".parse().unwrap();
    let option = irflow_domain::scheduling::SlotOption {
        start,
        end: start + SignedDuration::from_mins(20),
        room,
        radiologist: rad,
        chair: None,
    };
    let mut cases = Vec::new();
    for i in 0..12 {
        cases.push(ready_case(store, &w, &format!("Race{i}")).await);
    }
    // Half the clients go through a second store with its own connection pool, as a
    // second irflow process sharing the database would.
    let second = Store::open(&db.url).await.unwrap();
    let mut tasks = Vec::new();
    for (i, case) in cases.clone().into_iter().enumerate() {
        let store = if i % 2 == 0 {
            store.clone()
        } else {
            second.clone()
        };
        let (site, scheduler) = (site.clone(), scheduler.clone());
        tasks.push(tokio::spawn(async move {
            store
                .book_appointment(
                    &scheduler,
                    case,
                    &site,
                    &option,
                    10,
                    None,
                    Timestamp::now(),
                    today(),
                )
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => wins += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        wins, 1,
        "exactly one booking of the same room and radiologist at the same time"
    );
    second.close().await;
    // Overlapping but not identical (10 minutes later, inside the first booking plus turnaround): refused.
    let later = irflow_domain::scheduling::SlotOption {
        start: start + SignedDuration::from_mins(25),
        end: start + SignedDuration::from_mins(45),
        ..option
    };
    let mut loser = None;
    for c in &cases {
        if store.case_detail(&w.nurse, *c).await.unwrap().case.state == CaseState::Ready {
            loser = Some(*c);
            break;
        }
    }
    let loser = loser.expect("eleven cases lost the race and are still ready");
    let refused = store
        .book_appointment(
            &scheduler,
            loser,
            &site,
            &later,
            10,
            None,
            Timestamp::now(),
            today(),
        )
        .await;
    assert!(
        matches!(refused, Err(StoreError::Conflict(_))),
        "{refused:?}"
    );
    // Right after the turnaround: fine.
    let after = irflow_domain::scheduling::SlotOption {
        start: start + SignedDuration::from_mins(30),
        end: start + SignedDuration::from_mins(50),
        ..option
    };
    let booked = store
        .book_appointment(
            &scheduler,
            loser,
            &site,
            &after,
            10,
            Some("key-1".into()),
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    // The same idempotency key again gives the same appointment, not a second one.
    let again = store
        .book_appointment(
            &scheduler,
            loser,
            &site,
            &after,
            10,
            Some("key-1".into()),
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    assert_eq!(booked.id, again.id);
    // Cancelling releases the time, and the case is ready again.
    store
        .cancel_appointment(
            &scheduler,
            loser,
            "patient asked to move",
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    assert_eq!(
        store.case_detail(&w.nurse, loser).await.unwrap().case.state,
        CaseState::Ready
    );
    assert!(
        store
            .appointment_for_case(&w.nurse, loser)
            .await
            .unwrap()
            .is_none()
    );
    let rebooked = store
        .book_appointment(
            &scheduler,
            loser,
            &site,
            &after,
            10,
            None,
            Timestamp::now(),
            today(),
        )
        .await;
    assert!(rebooked.is_ok(), "{rebooked:?}");
    // The slot finder sees the bookings.
    let res = store
        .slot_resources(
            &site,
            start - SignedDuration::from_hours(24),
            start + SignedDuration::from_hours(24),
        )
        .await
        .unwrap();
    assert!(!res.busy.is_free(
        &irflow_domain::scheduling::ResourceId::Room(room),
        &irflow_domain::scheduling::Interval {
            start,
            end: start + SignedDuration::from_mins(5)
        }
    ));
    // A time freed twice is offered as its latest cancellation freed it: here first by
    // `loser`, then by another case (so it may be offered back to `loser`).
    store
        .cancel_appointment(
            &scheduler,
            loser,
            "moved elsewhere",
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    let other = ready_case(store, &w, "Other").await;
    store
        .book_appointment(
            &scheduler,
            other,
            &site,
            &after,
            10,
            None,
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    store
        .cancel_appointment(&scheduler, other, "unwell", Timestamp::now(), today())
        .await
        .unwrap();
    let freed = store
        .freed_times(
            site.id,
            after.start - SignedDuration::from_hours(1),
            after.start + SignedDuration::from_hours(1),
        )
        .await
        .unwrap();
    let at_after: Vec<_> = freed.iter().filter(|a| a.start == after.start).collect();
    assert_eq!(at_after.len(), 1, "one offer per room and start");
    assert_eq!(at_after[0].case_id, other, "the latest cancellation");
    // A case that is not ready cannot be booked.
    let referred = open_case(store, &w.referrer, "NotReady").await;
    let far = irflow_domain::scheduling::SlotOption {
        start: start + SignedDuration::from_hours(3),
        end: start + SignedDuration::from_hours(3) + SignedDuration::from_mins(20),
        ..option
    };
    assert!(matches!(
        store
            .book_appointment(
                &scheduler,
                referred,
                &site,
                &far,
                10,
                None,
                Timestamp::now(),
                today()
            )
            .await,
        Err(StoreError::Transition(_))
    ));
}
on_every_backend!(
    racing_bookings_have_exactly_one_winner_everywhere,
    racing_bookings_have_exactly_one_winner
);

/// A search does not offer a booked time, except to the booking being moved; the
/// room's turnaround after it is kept free too.
async fn searches_leave_out_booked_time_except_the_one_moved(db: &TestDatabase) {
    use irflow_domain::scheduling::{SlotOption, SlotRequest};
    let store = &db.store;
    let w = world(store).await;
    let (site, room, rad) = one_room_site(store, &w).await;
    let scheduler = user(store, "sched", Role::Scheduler, None).await.actor();
    let start: Timestamp = "2026-12-07T15:00:00Z".parse().unwrap(); // Monday 10:00 in New York
    let case = ready_case(store, &w, "Moving").await;
    let booked = store
        .book_appointment(
            &scheduler,
            case,
            &site,
            &SlotOption {
                start,
                end: start + SignedDuration::from_mins(20),
                room,
                radiologist: rad,
                chair: None,
            },
            10,
            None,
            Timestamp::now(),
            today(),
        )
        .await
        .unwrap();
    let request = SlotRequest {
        procedure: "64483".into(),
        modalities: vec![irflow_domain::Modality::Fluoroscopy],
        duration_minutes: 20,
        not_before: "2026-11-26T12:00:00Z".parse().unwrap(),
        from: jiff::civil::date(2026, 12, 7),
        days_ahead: 1,
        limit: 100,
        step_minutes: 10,
        monitoring_minutes: None,
        preferred_days: Vec::new(),
        preferred_time: None,
    };
    let starts = |found: &[SlotOption]| found.iter().map(|o| o.start).collect::<Vec<_>>();
    let others = starts(&store.search_slots(&site, &request, None).await.unwrap());
    let moving = starts(
        &store
            .search_slots(&site, &request, Some(booked.id))
            .await
            .unwrap(),
    );
    let taken = |t: &Timestamp| {
        *t > start - SignedDuration::from_mins(30) && *t < start + SignedDuration::from_mins(30)
    };
    assert!(
        others.iter().all(|t| !taken(t)),
        "booked time (and turnaround) offered: {others:?}"
    );
    assert!(
        moving.contains(&start),
        "the booking being moved may keep its time"
    );
    assert_eq!(
        moving.len(),
        others.len() + 5,
        "09:40-10:20 come free: {moving:?}"
    );
    // With the first step's bookings read ahead (as the API reads them, beside the
    // case's context): the same options when the read covers the first step, and when
    // it does not (read from the day before, a closed Sunday) the search reads its own.
    let dept = store.department().await.unwrap().unwrap();
    assert_eq!(dept.site, site);
    let day_before = request.from.yesterday().unwrap();
    for (from, exclude, expected) in [
        (request.from, None, &others),
        (request.from, Some(booked.id), &moving),
        (day_before, None, &others),
        (day_before, Some(booked.id), &moving),
    ] {
        let start = store
            .search_start_then(&scheduler, case, (from, request.days_ahead), |s| async {
                Ok::<_, StoreError>(s)
            })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            start.context.appointment.map(|a| a.id),
            Some(booked.id),
            "the case's own booking is read with it"
        );
        assert!(start.ahead.is_some(), "the department is in memory");
        let found = store
            .search_slots_ahead(&dept, &request, exclude, start.ahead)
            .await
            .unwrap();
        assert_eq!(&starts(&found), expected, "read ahead from {from}");
    }
}
on_every_backend!(
    searches_leave_out_booked_time_except_the_one_moved_everywhere,
    searches_leave_out_booked_time_except_the_one_moved
);

/// One step of a random scheduling session.
#[derive(Debug, Clone)]
enum BookingOp {
    /// Book case `case` at a start on the grid, in a room, with a radiologist.
    Book {
        case: usize,
        day: i64,
        slot: i64,
        room: usize,
        rad: usize,
    },
    /// Two cases race for starts at the same time (concurrently).
    Race {
        a: usize,
        b: usize,
        day: i64,
        slot: i64,
        room: usize,
        rad: usize,
    },
    /// Move the case's booking.
    Move {
        case: usize,
        day: i64,
        slot: i64,
        room: usize,
        rad: usize,
    },
    /// Cancel the case's booking.
    Cancel { case: usize },
    /// Record a no-show (the time is released).
    NoShow { case: usize },
}

fn booking_op() -> impl proptest::strategy::Strategy<Value = BookingOp> {
    use proptest::prelude::*;
    let at = || (0i64..3, 0i64..20, 0usize..3, 0usize..2);
    prop_oneof![
        4 => (0usize..6, at()).prop_map(|(case, (day, slot, room, rad))| BookingOp::Book { case, day, slot, room, rad }),
        2 => (0usize..6, 0usize..6, at()).prop_map(|(a, b, (day, slot, room, rad))| BookingOp::Race { a, b, day, slot, room, rad }),
        2 => (0usize..6, at()).prop_map(|(case, (day, slot, room, rad))| BookingOp::Move { case, day, slot, room, rad }),
        1 => (0usize..6).prop_map(|case| BookingOp::Cancel { case }),
        1 => (0usize..6).prop_map(|case| BookingOp::NoShow { case }),
    ]
}

/// Random sequences of bookings, races, moves, cancellations and no-shows, each step
/// checked as the server checks it (the domain's `check_option` against the case's
/// earliest safe instant, then the store): after every step no room (with its
/// turnaround), radiologist or chair is double booked, no booking starts before its
/// case is safe or outside opening hours, and every case's state matches its booking.
async fn random_booking_sequences_never_double_book_or_book_unsafely(db: &TestDatabase) {
    use irflow_domain::scheduling::{SlotRequest, WeeklyWindow, check_option};
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    let store = &db.store;
    let w = world(store).await;
    let scheduler = user(store, "sched", Role::Scheduler, None).await.actor();
    let rad2 = user(store, "rad2", Role::Radiologist, None).await;
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    store
        .create_site(&w.admin, "Main", "America/New_York")
        .await
        .unwrap();
    let site = store.default_site().await.unwrap().unwrap();
    let mut rooms = Vec::new();
    for (name, modality) in [
        ("Fluoro 1", irflow_domain::Modality::Fluoroscopy),
        ("Fluoro 2", irflow_domain::Modality::Fluoroscopy),
        ("CT 1", irflow_domain::Modality::Ct),
    ] {
        rooms.push(
            store
                .create_room(&w.admin, site.id, name, modality, 10)
                .await
                .unwrap(),
        );
    }
    let chair = store
        .create_chair(&w.admin, site.id, "Chair 1")
        .await
        .unwrap();
    let rad1 = store.user_by_username("rad").await.unwrap().id.get();
    let rads = [rad1, rad2.id.get()];
    for r in rads {
        store
            .set_credentials(&w.admin, irflow_domain::UserId::new(r), &["64483"])
            .await
            .unwrap();
    }
    // A Monday-Wednesday week in January: rooms 08:00-12:00, radiologists 08:00-11:00
    // (rad2 from 09:00), one chair 08:00-12:30. Starts run 08:00-11:10.
    let window = |weekday, from: i8, to: (i8, i8)| WeeklyWindow {
        weekday,
        start: jiff::civil::time(from, 0, 0, 0),
        end: jiff::civil::time(to.0, to.1, 0, 0),
    };
    use irflow_store::ResourceKind as K;
    for d in [
        jiff::civil::Weekday::Monday,
        jiff::civil::Weekday::Tuesday,
        jiff::civil::Weekday::Wednesday,
    ] {
        for room in &rooms {
            store
                .add_availability(&w.admin, K::Room, *room, window(d, 8, (12, 0)))
                .await
                .unwrap();
        }
        store
            .add_availability(&w.admin, K::Radiologist, rad1, window(d, 8, (11, 0)))
            .await
            .unwrap();
        store
            .add_availability(&w.admin, K::Radiologist, rads[1], window(d, 9, (11, 0)))
            .await
            .unwrap();
        store
            .add_availability(&w.admin, K::Chair, chair, window(d, 8, (12, 30)))
            .await
            .unwrap();
    }
    let monday = jiff::civil::date(2027, 1, 11);
    let start_of = |day: i64, slot: i64| {
        (monday + jiff::Span::new().days(day))
            .to_datetime(jiff::civil::time(8, 0, 0, 0))
            .to_zoned_datetime(tz.clone())
            .unwrap()
            .timestamp()
            + SignedDuration::from_mins(10 * slot)
    };
    let mut runner = TestRunner::deterministic();
    let (mut won, mut raced) = (0usize, 0usize);
    let sequences = proptest::collection::vec(booking_op(), 10..40);
    for round in 0..12 {
        // Fresh cases each round; each has its own earliest safe instant (some are
        // held until Tuesday 09:00, some need a recovery chair).
        let mut cases = Vec::new();
        for i in 0..6 {
            let case = ready_case(store, &w, &format!("Prop{round}x{i}")).await;
            let not_before = if i % 3 == 0 {
                start_of(1, 6) // Tuesday 09:00: nothing before is safe
            } else {
                Timestamp::now()
            };
            let monitoring = (i % 2 == 1).then_some(60);
            cases.push((case, not_before, monitoring));
        }
        let ops = sequences.new_tree(&mut runner).unwrap().current();
        for op in &ops {
            let request = |i: usize, day: i64| SlotRequest {
                procedure: "64483".into(),
                modalities: vec![
                    irflow_domain::Modality::Fluoroscopy,
                    irflow_domain::Modality::Ct,
                ],
                duration_minutes: 20,
                not_before: cases[i].1,
                from: monday + jiff::Span::new().days(day),
                days_ahead: 1,
                limit: 1,
                step_minutes: 10,
                monitoring_minutes: cases[i].2,
                preferred_days: Vec::new(),
                preferred_time: None,
            };
            let lo = start_of(-1, 0);
            let hi = start_of(4, 0);
            match op.clone() {
                BookingOp::Book {
                    case,
                    day,
                    slot,
                    room,
                    rad,
                } => {
                    let res = store.slot_resources(&site, lo, hi).await.unwrap();
                    if let Ok(option) = check_option(
                        &res,
                        &request(case, day),
                        start_of(day, slot),
                        rooms[room],
                        rads[rad],
                    ) {
                        let r = store
                            .book_appointment(
                                &scheduler,
                                cases[case].0,
                                &site,
                                &option,
                                10,
                                None,
                                Timestamp::now(),
                                today(),
                            )
                            .await;
                        assert!(
                            matches!(
                                r,
                                Ok(_) | Err(StoreError::Transition(_) | StoreError::Conflict(_))
                            ),
                            "{r:?}"
                        );
                        won += usize::from(r.is_ok());
                    }
                }
                BookingOp::Race {
                    a,
                    b,
                    day,
                    slot,
                    room,
                    rad,
                } => {
                    let res = store.slot_resources(&site, lo, hi).await.unwrap();
                    let oa = check_option(
                        &res,
                        &request(a, day),
                        start_of(day, slot),
                        rooms[room],
                        rads[rad],
                    );
                    let ob = check_option(
                        &res,
                        &request(b, day),
                        start_of(day, slot),
                        rooms[room],
                        rads[rad],
                    );
                    if let (Ok(oa), Ok(ob)) = (oa, ob) {
                        let (ra, rb) = tokio::join!(
                            store.book_appointment(
                                &scheduler,
                                cases[a].0,
                                &site,
                                &oa,
                                10,
                                None,
                                Timestamp::now(),
                                today()
                            ),
                            store.book_appointment(
                                &scheduler,
                                cases[b].0,
                                &site,
                                &ob,
                                10,
                                None,
                                Timestamp::now(),
                                today()
                            ),
                        );
                        if a != b {
                            assert!(
                                !(ra.is_ok() && rb.is_ok()),
                                "both won the same room and radiologist"
                            );
                            raced += 1;
                        }
                        won += usize::from(ra.is_ok()) + usize::from(rb.is_ok());
                    }
                }
                BookingOp::Move {
                    case,
                    day,
                    slot,
                    room,
                    rad,
                } => {
                    let current = store
                        .appointment_for_case(&scheduler, cases[case].0)
                        .await
                        .unwrap();
                    if let Some(current) = current {
                        let res = store
                            .slot_resources_excluding(&site, lo, hi, current.id)
                            .await
                            .unwrap();
                        if let Ok(option) = check_option(
                            &res,
                            &request(case, day),
                            start_of(day, slot),
                            rooms[room],
                            rads[rad],
                        ) {
                            let r = store
                                .reschedule_appointment(
                                    &scheduler,
                                    cases[case].0,
                                    &site,
                                    &option,
                                    10,
                                    "random move",
                                    Timestamp::now(),
                                    today(),
                                )
                                .await;
                            assert!(matches!(r, Ok(_) | Err(StoreError::Conflict(_))), "{r:?}");
                            won += usize::from(r.is_ok());
                            if r.is_err() {
                                let still = store
                                    .appointment_for_case(&scheduler, cases[case].0)
                                    .await
                                    .unwrap();
                                assert_eq!(
                                    still.map(|a| a.id),
                                    Some(current.id),
                                    "a failed move keeps the old booking"
                                );
                            }
                        }
                    }
                }
                BookingOp::Cancel { case } => {
                    let _ = store
                        .cancel_appointment(
                            &scheduler,
                            cases[case].0,
                            "random cancel",
                            Timestamp::now(),
                            today(),
                        )
                        .await;
                }
                BookingOp::NoShow { case } => {
                    let done = store
                        .transition_case(
                            &scheduler,
                            cases[case].0,
                            &TransitionRequest::new(Action::RecordNoShow)
                                .because("random no-show".to_owned()),
                            None,
                            Timestamp::now(),
                            today(),
                        )
                        .await;
                    if done.is_ok() {
                        store
                            .transition_case(
                                &scheduler,
                                cases[case].0,
                                &TransitionRequest::new(Action::Rebook),
                                None,
                                Timestamp::now(),
                                today(),
                            )
                            .await
                            .unwrap();
                    }
                }
            }
            // The invariants, read back from the database.
            let booked = store
                .appointments(
                    &Actor::system("check"),
                    &irflow_store::AppointmentFilter::default(),
                )
                .await
                .unwrap();
            let booked: Vec<_> = booked
                .iter()
                .map(|l| l.appointment.clone())
                .filter(|a| a.status == "booked")
                .collect();
            for (i, x) in booked.iter().enumerate() {
                for y in &booked[i + 1..] {
                    let turn = SignedDuration::from_mins(10);
                    assert!(
                        !(x.room_id == y.room_id
                            && x.start < y.end + turn
                            && y.start < x.end + turn),
                        "room double booked after {op:?}: {x:?} {y:?}"
                    );
                    assert!(
                        !(x.radiologist_id == y.radiologist_id
                            && x.start < y.end
                            && y.start < x.end),
                        "radiologist double booked after {op:?}"
                    );
                    if let (Some(cx), Some(cy), Some(wx), Some(wy)) =
                        (x.chair_id, y.chair_id, x.chair_window, y.chair_window)
                    {
                        assert!(
                            !(cx == cy && wx.0 < wy.1 && wy.0 < wx.1),
                            "chair double booked after {op:?}"
                        );
                    }
                    assert_ne!(x.case_id, y.case_id, "one booking per case");
                }
                // Earlier rounds' cases keep their bookings (more contention); the
                // current round's are checked against their own safety and escort.
                if let Some(&(_, not_before, monitoring)) = cases.iter().find(|c| c.0 == x.case_id)
                {
                    assert!(
                        x.start >= not_before,
                        "booked before it is safe after {op:?}: {x:?}"
                    );
                    assert_eq!(
                        monitoring.is_some(),
                        x.chair_id.is_some(),
                        "a chair exactly for patients without an escort"
                    );
                }
                let local = x.start.to_zoned_datetime(tz.clone());
                assert!(
                    local.hour() >= 8
                        && x.end.to_zoned_datetime(tz.clone()).time()
                            <= jiff::civil::time(12, 0, 0, 0)
                );
            }
            for (case, _, _) in &cases {
                let state = store.case_detail(&w.nurse, *case).await.unwrap().case.state;
                let has = booked.iter().any(|a| a.case_id == *case);
                assert_eq!(
                    has,
                    state == CaseState::Scheduled,
                    "case state {state:?} and booking disagree after {op:?}"
                );
            }
        }
    }
    // The sequences did book, move and race (the checks above were not vacuous).
    assert!(won >= 15, "only {won} bookings and moves succeeded");
    assert!(raced >= 3, "only {raced} races");
}
on_every_backend!(
    random_booking_sequences_never_double_book_or_book_unsafely_everywhere,
    random_booking_sequences_never_double_book_or_book_unsafely
);

/// A slot search keeps the department's configuration in memory, yet sees a change
/// made through another store (another process) at once: the triggers' version moves.
async fn slot_searches_see_configuration_changes_from_other_processes(db: &TestDatabase) {
    use irflow_domain::scheduling::{SlotRequest, WeeklyWindow};
    let store = &db.store;
    let w = world(store).await;
    let (site, room, _rad) = one_room_site(store, &w).await;
    let request = SlotRequest {
        procedure: "64483".into(),
        modalities: vec![irflow_domain::Modality::Fluoroscopy],
        duration_minutes: 20,
        not_before: Timestamp::now(),
        from: jiff::civil::date(2027, 1, 11), // a Monday
        days_ahead: 7,
        limit: 50,
        step_minutes: 10,
        monitoring_minutes: None,
        preferred_days: Vec::new(),
        preferred_time: None,
    };
    let before = store.search_slots(&site, &request, None).await.unwrap();
    assert!(!before.is_empty());
    let weekdays = |found: &[irflow_domain::scheduling::SlotOption]| {
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        let mut days: Vec<_> = found
            .iter()
            .map(|o| o.start.to_zoned_datetime(tz.clone()).weekday())
            .collect();
        days.dedup();
        days
    };
    assert!(!weekdays(&before).contains(&jiff::civil::Weekday::Wednesday));
    // Another process opens the room and credits the radiologist's Wednesday.
    let other = Store::open(&db.url).await.unwrap();
    let rad = other.user_by_username("rad").await.unwrap().id.get();
    for (kind, id) in [
        (irflow_store::ResourceKind::Room, room),
        (irflow_store::ResourceKind::Radiologist, rad),
    ] {
        other
            .add_availability(
                &w.admin,
                kind,
                id,
                WeeklyWindow {
                    weekday: jiff::civil::Weekday::Wednesday,
                    start: jiff::civil::time(8, 0, 0, 0),
                    end: jiff::civil::time(9, 0, 0, 0),
                },
            )
            .await
            .unwrap();
    }
    other.close().await;
    let request = SlotRequest {
        limit: 200,
        ..request
    };
    let after = store.search_slots(&site, &request, None).await.unwrap();
    assert!(
        weekdays(&after).contains(&jiff::civil::Weekday::Wednesday),
        "the new hours are offered at once"
    );
    // The names, the catalogue and the closures kept with it follow too: another
    // process renames the room, lengthens the procedure and closes the room on Monday.
    let dept = store.department().await.unwrap().unwrap();
    assert!(dept.room(room).is_some());
    let mut procedure = dept.procedure("64483").unwrap().clone();
    let other = Store::open(&db.url).await.unwrap();
    other
        .update_room(
            &w.admin,
            room,
            "Fluoro Renamed",
            irflow_domain::Modality::Fluoroscopy,
            dept.room(room).unwrap().turnaround_minutes,
            Timestamp::now(),
        )
        .await
        .unwrap();
    procedure.duration_minutes += 10;
    other.update_procedure(&w.admin, &procedure).await.unwrap();
    let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
    let monday = jiff::civil::date(2027, 1, 11);
    other
        .add_closure(
            &w.admin,
            &irflow_store::NewClosure {
                kind: irflow_store::ResourceKind::Room,
                resource_id: room,
                start: monday.to_zoned_datetime(tz.clone()).unwrap().timestamp(),
                end: monday
                    .tomorrow()
                    .unwrap()
                    .to_zoned_datetime(tz.clone())
                    .unwrap()
                    .timestamp(),
                reason: "Service".into(),
            },
            true,
            Timestamp::now(),
        )
        .await
        .unwrap();
    other.close().await;
    let fresh = store.department().await.unwrap().unwrap();
    assert_eq!(fresh.room(room).unwrap().name, "Fluoro Renamed");
    assert_eq!(
        fresh.procedure("64483").unwrap().duration_minutes,
        procedure.duration_minutes
    );
    let closed = store.search_slots(&site, &request, None).await.unwrap();
    assert!(!closed.is_empty());
    assert!(
        !weekdays(&closed).contains(&jiff::civil::Weekday::Monday),
        "the closure is honoured at once"
    );
    assert!(weekdays(&after).contains(&jiff::civil::Weekday::Monday));
}
on_every_backend!(
    slot_searches_see_configuration_changes_from_other_processes_everywhere,
    slot_searches_see_configuration_changes_from_other_processes
);
