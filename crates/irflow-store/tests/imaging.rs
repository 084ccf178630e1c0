//! Matching outside imaging to cases, on SQLite always and on PostgreSQL when
//! `IRFLOW_TEST_DATABASE_URL` is set: an MRN is not enough on its own (the family name
//! must agree, and neither the birth date nor the sex may disagree); a study with files
//! missing or refused is never attached automatically; studies sent for a case that
//! wait for staff are listed for that case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use irflow_dicom::InstanceMeta;
use irflow_domain::patient::parse_date_of_birth;
use irflow_domain::{
    Actor, CaseId, Channel, LanguageTag, Mrn, NewPatient, PersonName, ReferralDetails, Role, Side,
    SpineLevels, Urgency,
};
use irflow_store::testing::TestDatabase;
use irflow_store::{
    AuditFilter, BatchGaps, ImagingSource, MatchedBy, NewReferral, Reconciled, ReferralSubject,
    SourceKind, Store, StoreError, UserRecord,
};
use jiff::Timestamp;
use jiff::civil::{Date, date};

#[macro_use]
mod common;
use common::{today, user};

/// One instance of a study, as the file would say.
struct Sent<'a> {
    study: &'a str,
    name: &'a str,
    patient_id: &'a str,
    birth_date: Option<Date>,
    sex: Option<&'a str>,
}

fn meta(sent: &Sent, instance: u32) -> InstanceMeta {
    InstanceMeta {
        sop_instance_uid: format!("{}.3.{instance}", sent.study),
        sop_class_uid: "1.2.840.10008.5.1.4.1.1.4".to_owned(),
        study_instance_uid: sent.study.to_owned(),
        series_instance_uid: format!("{}.2", sent.study),
        transfer_syntax: "1.2.840.10008.1.2.1".to_owned(),
        patient_name: sent.name.to_owned(),
        patient_id: sent.patient_id.to_owned(),
        birth_date: sent.birth_date,
        sex: sent.sex.map(str::to_owned),
        study_date: Some(date(2026, 10, 1)),
        study_description: "MRI L-SPINE".to_owned(),
        accession_number: String::new(),
        modality: "MR".to_owned(),
        body_part: "LSPINE".to_owned(),
        series_description: "SAG T2".to_owned(),
        series_number: Some(1),
        instance_number: Some(i64::from(instance)),
        rows: Some(16),
        columns: Some(16),
        frames: 1,
    }
}

/// Records `instances` of a study as one batch and matches it, with these gaps.
async fn send(
    store: &Store,
    actor: &Actor,
    sent: &Sent<'_>,
    instances: u32,
    hint: Option<CaseId>,
    gaps: &BatchGaps,
) -> Reconciled {
    let mut source = ImagingSource::new(SourceKind::Upload);
    if let Some(case) = hint {
        source = source.for_case(case);
    }
    for i in 1..=instances {
        store
            .record_instance(
                actor,
                &meta(sent, i),
                &format!("dicom/{}/{i}", sent.study),
                100,
                &source,
            )
            .await
            .unwrap();
    }
    let mut outcomes = store
        .reconcile_batch_with_gaps(actor, &source.batch, gaps)
        .await
        .unwrap();
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0).outcome
}

async fn refer(
    store: &Store,
    referrer: &UserRecord,
    mrn: &str,
    family: &str,
    given: &str,
) -> CaseId {
    store
        .submit_referral(
            &referrer.actor(),
            &NewReferral {
                subject: ReferralSubject::New(NewPatient {
                    mrn: Some(Mrn::parse(mrn).unwrap()),
                    name: PersonName::parse(family, given).unwrap(),
                    date_of_birth: parse_date_of_birth("1991-05-30", today()).unwrap(),
                    phone: None,
                    email: None,
                    preferred_language: LanguageTag::english(),
                }),
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
                channel: Channel::Online,
            },
            Timestamp::now(),
        )
        .await
        .unwrap()
        .case
}

fn queued_reason(outcome: &Reconciled) -> &str {
    match outcome {
        Reconciled::Queued { reason } => reason,
        other => panic!("expected the queue, got {other:?}"),
    }
}

async fn an_mrn_match_must_agree_on_name_birth_date_and_sex(db: &TestDatabase) {
    let store = &db.store;
    let referrer = user(store, "ref1", Role::Referrer, Some("Clinic A")).await;
    let nurse = user(store, "nurse", Role::Nurse, None).await.actor();
    let case = refer(store, &referrer, "MRN-104116", "Haddad", "Layla").await;
    let dob = Some(date(1991, 5, 30));
    let none = BatchGaps::default();

    // Another person's name with her MRN and no birth date: never attached on the MRN alone.
    let smith = Sent {
        study: "2.25.100",
        name: "SMITH^JOHN",
        patient_id: "MRN-104116",
        birth_date: None,
        sex: Some("M"),
    };
    let outcome = send(store, &nurse, &smith, 1, None, &none).await;
    assert_eq!(
        queued_reason(&outcome),
        "its patient ID equals an MRN on file, but the family name differs: staff check it"
    );
    // Sent from her case page, it says so too.
    let smith_hinted = Sent {
        study: "2.25.101",
        ..smith
    };
    let outcome = send(store, &nurse, &smith_hinted, 1, Some(case), &none).await;
    assert_eq!(
        queued_reason(&outcome),
        format!(
            "it was sent for case #{case}; its patient ID equals an MRN on file, but the family name differs: staff check it"
        )
    );

    // The same family name with an initial, and her birth date: attached by MRN.
    let hers = Sent {
        study: "2.25.102",
        name: "HADDAD^L",
        patient_id: "MRN-104116",
        birth_date: dob,
        sex: Some("F"),
    };
    let outcome = send(store, &nurse, &hers, 2, None, &none).await;
    assert_eq!(
        outcome,
        Reconciled::Attached {
            case,
            matched_by: MatchedBy::Mrn
        }
    );

    // Her name and MRN, but a birth date or a given name that disagrees.
    let other_dob = Sent {
        study: "2.25.103",
        name: "HADDAD^LAYLA",
        patient_id: "MRN-104116",
        birth_date: Some(date(1991, 5, 31)),
        sex: None,
    };
    let outcome = send(store, &nurse, &other_dob, 1, None, &none).await;
    assert!(
        queued_reason(&outcome).contains("but the date of birth differs"),
        "{outcome:?}"
    );
    let other_given = Sent {
        study: "2.25.104",
        name: "HADDAD^MARIA",
        patient_id: "MRN-104116",
        birth_date: dob,
        sex: None,
    };
    let outcome = send(store, &nurse, &other_given, 1, None, &none).await;
    assert!(
        queued_reason(&outcome).contains("but the given name differs"),
        "{outcome:?}"
    );
    // A sex that disagrees with her imaging on file, by MRN or by birth date and name.
    let other_sex = Sent {
        study: "2.25.105",
        name: "HADDAD^LAYLA",
        patient_id: "MRN-104116",
        birth_date: dob,
        sex: Some("M"),
    };
    let outcome = send(store, &nurse, &other_sex, 1, None, &none).await;
    assert!(
        queued_reason(&outcome)
            .contains("but the sex (against the patient's imaging on file) differs"),
        "{outcome:?}"
    );
    let other_sex_no_mrn = Sent {
        study: "2.25.106",
        patient_id: "ELSEWHERE-9",
        ..other_sex
    };
    let outcome = send(store, &nurse, &other_sex_no_mrn, 1, None, &none).await;
    assert!(
        queued_reason(&outcome).contains("the sex differs"),
        "{outcome:?}"
    );
    // No name at all: nothing confirms the MRN.
    let nameless = Sent {
        study: "2.25.107",
        name: "",
        patient_id: "MRN-104116",
        birth_date: dob,
        sex: None,
    };
    let outcome = send(store, &nurse, &nameless, 1, None, &none).await;
    assert!(
        queued_reason(&outcome).contains("it has no patient name to confirm the match"),
        "{outcome:?}"
    );
    // Only the one that agreed is on her case.
    let on_case = store.imaging_for_case(&nurse, case).await.unwrap();
    assert_eq!(on_case.len(), 1);
    assert_eq!(on_case[0].study_instance_uid, "2.25.102");
    // The reasons name what disagrees, never the values from the file.
    let queue = store.reconciliation_queue(&nurse).await.unwrap();
    assert_eq!(queue.len(), 7);
    assert!(queue.iter().all(|q| !q.reason.contains("SMITH")
        && !q.reason.contains("MARIA")
        && !q.reason.contains("1991")));
}
on_every_backend!(
    an_mrn_match_must_agree_on_name_birth_date_and_sex_everywhere,
    an_mrn_match_must_agree_on_name_birth_date_and_sex
);

async fn an_incomplete_study_waits_and_its_case_shows_it(db: &TestDatabase) {
    let store = &db.store;
    let referrer = user(store, "ref1", Role::Referrer, Some("Clinic A")).await;
    let other_referrer = user(store, "ref2", Role::Referrer, Some("Clinic B")).await;
    let nurse = user(store, "nurse", Role::Nurse, None).await.actor();
    let case = refer(store, &referrer, "MRN-200", "Tanaka", "Hiro").await;
    let study = Sent {
        study: "2.25.200",
        name: "TANAKA^HIRO",
        patient_id: "MRN-200",
        birth_date: Some(date(1991, 5, 30)),
        sex: None,
    };
    // Two files of the study were refused or missing: it matches, but waits.
    let mut gaps = BatchGaps::default();
    gaps.add(Some("2.25.200"));
    gaps.add(Some("2.25.200"));
    gaps.add(Some("2.25.999"));
    let outcome = send(store, &referrer.actor(), &study, 3, Some(case), &gaps).await;
    assert_eq!(
        queued_reason(&outcome),
        format!(
            "incomplete: 2 files of this study were missing or refused; its details match case #{case} (matched by MRN): staff check the study is whole before attaching it"
        )
    );
    assert!(
        store
            .imaging_for_case(&nurse, case)
            .await
            .unwrap()
            .is_empty()
    );

    // A file that may belong to any study of the batch, or an interrupted transfer.
    let unknown = BatchGaps {
        unattributed: 1,
        interrupted: Some("the DICOM association ended before the sender finished".into()),
        ..BatchGaps::default()
    };
    assert_eq!(
        unknown.reason_for("2.25.200").unwrap(),
        "possibly incomplete: 1 file sent with it was refused and may belong to it; possibly incomplete: the DICOM association ended before the sender finished"
    );
    assert_eq!(BatchGaps::default().reason_for("2.25.200"), None);

    // The case lists what was sent for it and waits, with why: its referrer sees it,
    // another referrer does not even learn the case exists.
    let waiting = store
        .waiting_for_case(&referrer.actor(), case)
        .await
        .unwrap();
    assert_eq!(waiting.len(), 1);
    assert!(waiting[0].reason.starts_with("incomplete: 2 files"));
    assert_eq!(waiting[0].summary.instance_count, 3);
    assert!(matches!(
        store.waiting_for_case(&other_referrer.actor(), case).await,
        Err(StoreError::NotFound)
    ));
    let audit = store
        .list_audit(
            &user(store, "admin", Role::Admin, None).await.actor(),
            &AuditFilter {
                entity_type: Some("imaging_queue".into()),
                limit: Some(50),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    assert!(audit.iter().any(|e| e.action == "list"
        && e.detail.as_deref() == Some(&format!("case={case} waiting=1") as &str)));

    // The rest arrives whole in a later batch: now it is matched, and no longer waits.
    let rest = Sent { ..study };
    let mut source = ImagingSource::new(SourceKind::Upload).for_case(case);
    source.batch.push_str("-late");
    store
        .record_instance(&nurse, &meta(&rest, 4), "dicom/late/4", 100, &source)
        .await
        .unwrap();
    let outcomes = store
        .reconcile_batch_with_gaps(&nurse, &source.batch, &BatchGaps::default())
        .await
        .unwrap();
    assert_eq!(
        outcomes[0].outcome,
        Reconciled::Attached {
            case,
            matched_by: MatchedBy::Mrn
        }
    );
    assert!(
        store
            .waiting_for_case(&referrer.actor(), case)
            .await
            .unwrap()
            .is_empty()
    );
}
on_every_backend!(
    an_incomplete_study_waits_and_its_case_shows_it_everywhere,
    an_incomplete_study_waits_and_its_case_shows_it
);
