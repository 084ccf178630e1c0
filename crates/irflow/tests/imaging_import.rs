//! `irflow import` as a user runs it, on a real database (SQLite, or PostgreSQL when
//! `IRFLOW_TEST_DATABASE_URL` is set): zips, folders, CDs made by dcmtk's `dcmmkdir`,
//! matching to cases (by MRN, by date of birth and name), the reconciliation queue,
//! duplicates, unsafe zips, and every file that ships with pydicom.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use common::dicom::{Study, zip};
use irflow_domain::{Actor, CaseId, CaseState, Role, UserId};
use irflow_store::testing::TestDatabase;
use irflow_store::{AuditFilter, CaseFilter, MatchedBy, Store, StoreError, StudyState};
use jiff::civil::{Date, date};

struct Output {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// A demo department on a fresh database, and a data directory for the CLI.
struct Setup {
    db: TestDatabase,
    data: tempfile::TempDir,
}

impl Setup {
    async fn new() -> Self {
        let db = TestDatabase::new(common::backend()).await;
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        irflow::demo::seed(&db.store, &tz, common::today(&tz))
            .await
            .expect("seed demo");
        Self {
            db,
            data: tempfile::tempdir().unwrap(),
        }
    }

    fn store(&self) -> &Store {
        &self.db.store
    }

    async fn import(&self, args: &[&str]) -> Output {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"));
        for var in ["IRFLOW_DATABASE_URL", "IRFLOW_CONFIG", "IRFLOW_DATA_DIR"] {
            cmd.env_remove(var);
        }
        cmd.env("IRFLOW_LOG_LEVEL", "warn")
            .arg("--data-dir")
            .arg(self.data.path())
            .arg("--database-url")
            .arg(&self.db.url)
            .arg("import")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let out = cmd.output().await.expect("run irflow import");
        let out = Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert!(
            !out.stderr.contains("panicked") && (out.code == 0 || out.code == 1),
            "irflow import must end with a message, not a crash: {out:?}"
        );
        out
    }

    async fn finish(self) {
        self.db.finish().await;
    }
}

/// A demo patient with exactly one case open for imaging, and that case.
#[derive(Debug, Clone)]
struct OnePatient {
    case: CaseId,
    family: String,
    given: String,
    dob: Date,
    mrn: String,
}

async fn patients_with_one_open_case(store: &Store) -> Vec<OnePatient> {
    let system = Actor::system("test");
    let cases = store
        .list_cases(
            &system,
            &CaseFilter {
                limit: Some(1000),
                ..CaseFilter::default()
            },
        )
        .await
        .unwrap();
    let open = |s: CaseState| {
        !matches!(
            s,
            CaseState::FollowedUp
                | CaseState::Cancelled
                | CaseState::Discharged
                | CaseState::Recovery
        )
    };
    let mut out = Vec::new();
    for c in &cases {
        let same_patient: Vec<_> = cases
            .iter()
            .filter(|o| o.patient_id == c.patient_id)
            .collect();
        if !open(c.state) || same_patient.iter().filter(|o| open(o.state)).count() != 1 {
            continue;
        }
        let Some(mrn) = c.mrn.clone() else { continue };
        // Skip the demo's same-name patients.
        if c.family_name == "Kim" {
            continue;
        }
        out.push(OnePatient {
            case: c.id,
            family: c.family_name.clone(),
            given: c.given_name.clone(),
            dob: c.date_of_birth,
            mrn,
        });
    }
    out
}

fn write_zip(dir: &Path, name: &str, entries: &[(String, Vec<u8>)]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, zip(entries)).unwrap();
    path
}

async fn staff(store: &Store, role: Role) -> Actor {
    let user = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .find(|u| u.role == role)
        .expect("a demo user in the role");
    Actor::user(user.id, user.username.as_str(), role)
}

#[tokio::test]
async fn import_matches_by_mrn_and_by_birth_date_and_name_and_queues_the_rest() {
    let setup = Setup::new().await;
    let store = setup.store().clone();
    let files = tempfile::tempdir().unwrap();
    let patients = patients_with_one_open_case(&store).await;
    assert!(
        patients.len() >= 2,
        "the demo has patients with one open case"
    );
    let (p1, p2) = (patients[0].clone(), patients[1].clone());

    // 1. By MRN: the outside Patient ID is our MRN (the name written differently: upper
    // case, the given name as an initial; the family name agrees).
    let p1_name = format!(
        "{}^{}",
        p1.family.to_uppercase(),
        p1.given.chars().next().unwrap().to_uppercase()
    );
    let by_mrn = Study::new(&p1_name, &p1.mrn, p1.dob, date(2026, 3, 1));
    let mut series = by_mrn.series(1, 3, 32, 32);
    series.extend(by_mrn.series(2, 2, 32, 32));
    let zip1 = write_zip(files.path(), "mri.zip", &series);
    let out = setup.import(&[zip1.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 5 stored, 0 already on file, 0 refused"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains(&format!("attached to case #{} (matched by MRN)", p1.case)),
        "{out:?}"
    );
    let system = Actor::system("test");
    let studies = store.imaging_for_case(&system, p1.case).await.unwrap();
    assert_eq!(studies.len(), 1);
    let s = &studies[0];
    assert_eq!((s.series_count, s.instance_count), (2, 5));
    assert_eq!(s.matched_by, Some(MatchedBy::Mrn));
    assert_eq!(s.local_mrn.as_deref(), Some(p1.mrn.as_str()));
    assert_eq!(s.modalities, ["MR"]);
    assert_eq!(s.body_parts, ["LSPINE"]);
    assert_eq!(s.study_date, Some(date(2026, 3, 1)));
    let detail = store.case_detail(&system, p1.case).await.unwrap();
    assert!(
        detail
            .timeline
            .iter()
            .any(|t| t.action == "imaging_attached")
    );
    // The originals are kept unchanged under the data directory.
    let study = store.study_detail(&system, s.id).await.unwrap();
    let first = &study.series[0].instances[0];
    let stored = std::fs::read(setup.data.path().join("images").join(&first.object_key)).unwrap();
    assert_eq!(stored, series[0].1);

    // 2. By date of birth and name (another site's Patient ID; case and accents differ).
    let name = format!("{}^{}", p2.family.to_uppercase(), p2.given.to_uppercase());
    let by_name = Study::new(&name, "OTHER-SITE-77", p2.dob, date(2026, 2, 1));
    let zip2 = write_zip(files.path(), "ct.zip", &by_name.series(1, 2, 16, 16));
    let out = setup.import(&[zip2.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "attached to case #{} (matched by date of birth and name)",
            p2.case
        )),
        "{out:?}"
    );
    let s2 = store.imaging_for_case(&system, p2.case).await.unwrap();
    assert_eq!(s2[0].matched_by, Some(MatchedBy::DobName));
    assert_eq!(s2[0].local_mrn.as_deref(), Some(p2.mrn.as_str()));

    // 3. Ambiguous: the demo has two patients named Grace Kim born 1975-03-03.
    let twin = Study::new("KIM^GRACE", "", date(1975, 3, 3), date(2026, 1, 5));
    let zip3 = write_zip(files.path(), "twin.zip", &twin.series(1, 1, 16, 16));
    let out = setup.import(&[zip3.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains("waits in the reconciliation queue"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("patients on file match it: staff must choose (1 of them has an open case)"),
        "{out:?}"
    );

    // 4. Sent for the wrong case: p1's images imported for p2's case wait for staff.
    let wrong = Study::new(&p1_name, &p1.mrn, p1.dob, date(2026, 3, 2));
    let zip4 = write_zip(files.path(), "wrong.zip", &wrong.series(1, 1, 16, 16));
    let case2 = p2.case.to_string();
    let out = setup
        .import(&["--case", &case2, zip4.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "it was sent for case #{}, but its patient is not that case's patient",
            p2.case
        )),
        "{out:?}"
    );
    // ... and with the right hint it is attached.
    let right = Study::new(&p1_name, &p1.mrn, p1.dob, date(2026, 3, 3));
    let zip5 = write_zip(files.path(), "right.zip", &right.series(1, 1, 16, 16));
    let case1 = p1.case.to_string();
    let out = setup
        .import(&["--case", &case1, zip5.to_str().unwrap()])
        .await;
    assert!(
        out.stdout
            .contains(&format!("attached to case #{}", p1.case)),
        "{out:?}"
    );

    // 4b. An MRN alone is not enough: another person's name (and sex) with p1's MRN
    // and no birth date waits for staff, saying what disagrees (never attached on a guess).
    let mut smith = Study::new("SMITH^JOHN", &p1.mrn, p1.dob, date(2026, 3, 4));
    smith.birth_date = String::new();
    smith.sex = "M".to_owned();
    let zip_smith = write_zip(files.path(), "smith.zip", &smith.series(1, 1, 16, 16));
    let out = setup.import(&[zip_smith.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout.contains(
            "waits in the reconciliation queue: its patient ID equals an MRN on file, but the family name and the sex (against the patient's imaging on file) differ: staff check it"
        ),
        "{out:?}"
    );
    let p1_studies = store.imaging_for_case(&system, p1.case).await.unwrap();
    assert!(
        p1_studies
            .iter()
            .all(|x| x.study_instance_uid != smith.study_uid())
    );

    // 5. Nobody: no patient matches.
    let nobody = Study::new("NOBODY^KNOWN", "X-1", date(1901, 1, 1), date(2026, 1, 1));
    let zip6 = write_zip(files.path(), "nobody.zip", &nobody.series(1, 1, 16, 16));
    let out = setup.import(&[zip6.to_str().unwrap()]).await;
    assert!(
        out.stdout.contains("no patient on file matches it"),
        "{out:?}"
    );

    // 6. The same zip again: reported as already on file, nothing stored twice.
    let out = setup.import(&[zip1.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout.contains("imported: 0 stored, 5 already on file"),
        "{out:?}"
    );
    assert!(out.stderr.contains("nothing new"), "{out:?}");
    let again = store.imaging_for_case(&system, p1.case).await.unwrap();
    assert_eq!(
        again.iter().find(|x| x.id == s.id).unwrap().instance_count,
        5
    );

    // The queue: four studies wait, with reasons and candidate cases; referrers may not look.
    let scheduler = staff(&store, Role::Scheduler).await;
    let queue = store.reconciliation_queue(&scheduler).await.unwrap();
    assert_eq!(queue.len(), 4, "{queue:#?}");
    let smith_q = queue
        .iter()
        .find(|q| q.patient_name == "SMITH^JOHN")
        .unwrap();
    assert!(
        smith_q
            .candidates
            .iter()
            .any(|c| c.case_id == p1.case && c.why == "MRN"),
        "staff are offered the MRN's case to compare: {smith_q:#?}"
    );
    let twin_q = queue
        .iter()
        .find(|q| q.patient_name == "KIM^GRACE")
        .unwrap();
    assert!(twin_q.reason.contains("staff must choose"));
    let referrer = staff(&store, Role::Referrer).await;
    assert!(matches!(
        store.reconciliation_queue(&referrer).await,
        Err(StoreError::Denied(_))
    ));
    // The wrong-case study offers the hinted case, and p1's case by MRN.
    let wrong_q = queue.iter().find(|q| q.case_hint == Some(p2.case)).unwrap();
    assert!(
        wrong_q
            .candidates
            .iter()
            .any(|c| c.case_id == p1.case && c.why == "MRN"),
        "{wrong_q:#?}"
    );
    assert!(
        wrong_q
            .candidates
            .iter()
            .any(|c| c.case_id == p2.case && c.why == "case hint")
    );

    // Staff attach the wrong-case study to p1's case, and reject the stranger's.
    store
        .attach_study(&scheduler, wrong_q.summary.id, p1.case)
        .await
        .unwrap();
    let attached = store
        .study_detail(&scheduler, wrong_q.summary.id)
        .await
        .unwrap();
    assert_eq!(attached.summary.state, StudyState::Matched);
    assert_eq!(attached.summary.matched_by, Some(MatchedBy::Staff));
    assert_eq!(attached.summary.local_mrn.as_deref(), Some(p1.mrn.as_str()));
    assert!(matches!(
        store
            .attach_study(&scheduler, wrong_q.summary.id, p2.case)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let stranger = queue
        .iter()
        .find(|q| q.patient_name == "NOBODY^KNOWN")
        .unwrap();
    assert!(matches!(
        store
            .reject_study(&scheduler, stranger.summary.id, "  ")
            .await,
        Err(StoreError::Field {
            field: "reason",
            ..
        })
    ));
    assert!(matches!(
        store
            .reject_study(&referrer, stranger.summary.id, "not ours")
            .await,
        Err(StoreError::Denied(_))
    ));
    store
        .reject_study(&scheduler, stranger.summary.id, "not one of our patients")
        .await
        .unwrap();
    assert_eq!(
        store.reconciliation_queue(&scheduler).await.unwrap().len(),
        2
    );
    // More images of the rejected study come back to the queue, never matched automatically.
    let more = Study {
        uid_root: nobody.uid_root.clone(),
        ..nobody.clone()
    };
    let zip7 = write_zip(files.path(), "more.zip", &more.series(3, 1, 16, 16));
    let out = setup.import(&[zip7.to_str().unwrap()]).await;
    assert!(
        out.stdout
            .contains("more images arrived after staff rejected it"),
        "{out:?}"
    );

    // A referrer sees imaging only on cases they referred.
    let p1_detail = store.case_detail(&system, p1.case).await.unwrap();
    let own = store
        .imaging_for_case(
            &Actor::user(p1_detail.case.referrer_id, "ref", Role::Referrer),
            p1.case,
        )
        .await
        .unwrap();
    assert_eq!(own.len(), 3);
    let stranger_ref = Actor::user(
        UserId::new(p1_detail.case.referrer_id.get() + 100_000),
        "other",
        Role::Referrer,
    );
    assert!(matches!(
        store.imaging_for_case(&stranger_ref, p1.case).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.study_detail(&stranger_ref, s.id).await,
        Err(StoreError::NotFound)
    ));

    // Every step left audit events.
    let admin = staff(&store, Role::Admin).await;
    let audit = store
        .list_audit(
            &admin,
            &AuditFilter {
                entity_type: Some("imaging_study".into()),
                limit: Some(500),
                ..AuditFilter::default()
            },
        )
        .await
        .unwrap();
    for action in ["create", "attach", "queue", "reject", "list", "read"] {
        assert!(
            audit.iter().any(|e| e.action == action),
            "no {action} audit event"
        );
    }
    assert!(
        audit
            .iter()
            .all(|e| !e.detail.clone().unwrap_or_default().contains("NOBODY")),
        "no patient data in audit details"
    );
    setup.finish().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_reason_and_changes_nothing() {
    let setup = Setup::new().await;
    let store = setup.store().clone();
    let files = tempfile::tempdir().unwrap();
    let good = Study::new("NOBODY^KNOWN", "X-2", date(1902, 2, 2), date(2026, 1, 1));
    let mut entries = good.series(1, 1, 16, 16);
    entries.push(("../evil.dcm".to_owned(), good.slice(1, 2, 16, 16)));
    entries.push(("/etc/evil.dcm".to_owned(), good.slice(1, 3, 16, 16)));
    entries.push(("notes.txt".to_owned(), b"hello".to_vec()));
    let mut truncated = good.slice(1, 4, 16, 16);
    truncated.truncate(truncated.len() - 10);
    entries.push(("DICOM/S001/IM0004".to_owned(), truncated));
    let bad_zip = write_zip(files.path(), "mixed.zip", &entries);
    let out = setup.import(&[bad_zip.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 1 stored, 0 already on file, 4 refused"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("refused mixed.zip/../evil.dcm: refused: a `..` in its path"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("refused mixed.zip//etc/evil.dcm: refused: an absolute path"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("refused mixed.zip/notes.txt: not a DICOM file"),
        "{out:?}"
    );
    assert!(
        out.stdout
            .contains("refused mixed.zip/DICOM/S001/IM0004: the DICOM file is truncated"),
        "{out:?}"
    );
    assert!(out.stderr.contains("4 files were refused"), "{out:?}");
    assert!(!files.path().parent().unwrap().join("evil.dcm").exists());
    assert!(!Path::new("/etc/evil.dcm").exists());

    // A zip bomb is refused as a whole.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = write_zip(files.path(), "bomb.zip", &[("zeros.dcm".to_owned(), zeros)]);
    let out = setup.import(&[bomb.to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("zip bomb") && out.stderr.contains("nothing was imported"),
        "{out:?}"
    );

    // A case that does not exist, a path that does not exist, an empty folder.
    let out = setup
        .import(&["--case", "999999", bad_zip.to_str().unwrap()])
        .await;
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("case #999999 does not exist"),
        "{out:?}"
    );
    let out = setup
        .import(&[files.path().join("nope").to_str().unwrap()])
        .await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("cannot read"), "{out:?}");
    let empty = tempfile::tempdir().unwrap();
    let out = setup.import(&[empty.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("nothing was imported"), "{out:?}");

    // Only the one good file is on file; nothing was attached.
    let scheduler = staff(&store, Role::Scheduler).await;
    let queue = store.reconciliation_queue(&scheduler).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(queue[0].summary.instance_count, 1);
    setup.finish().await;
}

/// Finds a tool, or says why the test cannot run (it must run in CI).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: install dcmtk (apt-get install dcmtk)"
        );
        eprintln!("skipping: {name} is not installed (apt-get install dcmtk)");
    }
    found
}

#[tokio::test]
async fn a_cd_made_by_dcmmkdir_imports_through_its_dicomdir() {
    let Some(dcmmkdir) = tool("dcmmkdir") else {
        return;
    };
    let setup = Setup::new().await;
    let cd = tempfile::tempdir().unwrap();
    let study = Study::new("NOBODY^KNOWN", "X-3", date(1903, 3, 3), date(2026, 1, 1));
    std::fs::create_dir_all(cd.path().join("DICOM/SE1")).unwrap();
    for i in 1..=4u32 {
        std::fs::write(
            cd.path().join(format!("DICOM/SE1/IM{i}")),
            study.slice(1, i, 16, 16),
        )
        .unwrap();
    }
    // A CD also carries things that are not images.
    std::fs::write(cd.path().join("AUTORUN.INF"), "[autorun]\n").unwrap();
    let made = std::process::Command::new(dcmmkdir)
        .current_dir(cd.path())
        .args(["--recurse", "--invent", "DICOM"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "dcmmkdir: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(cd.path().join("DICOMDIR").is_file());

    // The folder, or the DICOMDIR itself.
    let out = setup
        .import(&[cd.path().join("DICOMDIR").to_str().unwrap()])
        .await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 4 stored, 0 already on file, 0 refused, 2 left out"),
        "{out:?}"
    );

    // The same CD with an image missing: the rest imports, the gap is named.
    let setup2 = Setup::new().await;
    std::fs::remove_file(cd.path().join("DICOM/SE1/IM3")).unwrap();
    let out = setup2.import(&[cd.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stdout.contains("imported: 3 stored"), "{out:?}");
    assert!(
        out.stdout
            .contains("refused DICOM/SE1/IM3: listed in the DICOMDIR but missing"),
        "{out:?}"
    );
    setup.finish().await;
    setup2.finish().await;
}

/// Writes `n` slices of `study` under `cd/DICOM/SE1` and makes the CD's DICOMDIR with
/// dcmmkdir, as a CD burner does.
fn make_cd(dcmmkdir: &Path, cd: &Path, study: &Study, n: u32) {
    std::fs::create_dir_all(cd.join("DICOM/SE1")).unwrap();
    for i in 1..=n {
        std::fs::write(
            cd.join(format!("DICOM/SE1/IM{i}")),
            study.slice(1, i, 16, 16),
        )
        .unwrap();
    }
    let made = std::process::Command::new(dcmmkdir)
        .current_dir(cd)
        .args(["--recurse", "--invent", "DICOM"])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "dcmmkdir: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    assert!(cd.join("DICOMDIR").is_file());
}

#[tokio::test]
async fn two_cds_side_by_side_and_loose_files_are_all_read() {
    let Some(dcmmkdir) = tool("dcmmkdir") else {
        return;
    };
    let setup = Setup::new().await;
    let store = setup.store().clone();
    let p = patients_with_one_open_case(&store).await[0].clone();
    let name = format!("{}^{}", p.family.to_uppercase(), p.given.to_uppercase());
    let root = tempfile::tempdir().unwrap();
    // Two CDs copied side by side: the patient's, and a stranger's with an autorun file
    // its DICOMDIR does not list.
    let ours = Study::new(&name, &p.mrn, p.dob, date(2026, 4, 1));
    make_cd(&dcmmkdir, &root.path().join("CD1"), &ours, 3);
    let theirs = Study::new("NOBODY^KNOWN", "X-5", date(1905, 5, 5), date(2026, 4, 2));
    make_cd(&dcmmkdir, &root.path().join("CD2"), &theirs, 2);
    std::fs::write(root.path().join("CD2/AUTORUN.INF"), "[autorun]\n").unwrap();
    // And loose files beside them, outside every DICOMDIR's folder.
    let loose = Study::new("NOBODY^ELSE", "X-6", date(1906, 6, 6), date(2026, 4, 3));
    std::fs::create_dir_all(root.path().join("loose")).unwrap();
    std::fs::write(root.path().join("loose/a.dcm"), loose.slice(1, 1, 16, 16)).unwrap();
    std::fs::write(root.path().join("b.dcm"), loose.slice(1, 2, 16, 16)).unwrap();

    let out = setup.import(&[root.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 7 stored, 0 already on file, 0 refused, 3 left out"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(
            "left out CD2/AUTORUN.INF: in the folder of CD2/DICOMDIR but not listed in it"
        ),
        "the CD's extra is named with the reason: {out:?}"
    );
    assert!(
        out.stdout
            .contains(&format!("attached to case #{}", p.case)),
        "{out:?}"
    );
    let system = Actor::system("test");
    let on_case = store.imaging_for_case(&system, p.case).await.unwrap();
    assert_eq!(on_case.len(), 1);
    assert_eq!(on_case[0].instance_count, 3);
    let scheduler = staff(&store, Role::Scheduler).await;
    let queue = store.reconciliation_queue(&scheduler).await.unwrap();
    let count_of = |uid: String| {
        queue
            .iter()
            .find(|q| q.summary.study_instance_uid == uid)
            .map(|q| q.summary.instance_count)
    };
    assert_eq!(count_of(theirs.study_uid()), Some(2));
    assert_eq!(count_of(loose.study_uid()), Some(2));

    // A CD folder with loose files beside it inside the same folder tree: the CD's own
    // extras are left out, the loose files outside it are taken.
    let setup2 = Setup::new().await;
    let mixed = tempfile::tempdir().unwrap();
    let cd_study = Study::new("NOBODY^THIRD", "X-7", date(1907, 7, 7), date(2026, 4, 4));
    make_cd(&dcmmkdir, &mixed.path().join("DISC"), &cd_study, 2);
    std::fs::write(mixed.path().join("DISC/README.TXT"), "viewer").unwrap();
    std::fs::write(mixed.path().join("extra.dcm"), loose.slice(2, 1, 16, 16)).unwrap();
    let out = setup2.import(&[mixed.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 3 stored, 0 already on file, 0 refused, 2 left out"),
        "{out:?}"
    );
    assert!(out.stdout.contains("left out DISC/README.TXT"), "{out:?}");
    setup.finish().await;
    setup2.finish().await;
}

#[tokio::test]
async fn a_cd_with_an_image_missing_is_not_attached_but_waits_for_staff() {
    let Some(dcmmkdir) = tool("dcmmkdir") else {
        return;
    };
    let setup = Setup::new().await;
    let store = setup.store().clone();
    let p = patients_with_one_open_case(&store).await[1].clone();
    let name = format!("{}^{}", p.family.to_uppercase(), p.given.to_uppercase());
    let cd = tempfile::tempdir().unwrap();
    let study = Study::new(&name, &p.mrn, p.dob, date(2026, 5, 1));
    make_cd(&dcmmkdir, cd.path(), &study, 4);
    std::fs::remove_file(cd.path().join("DICOM/SE1/IM2")).unwrap();
    let out = setup.import(&[cd.path().to_str().unwrap()]).await;
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stdout
            .contains("imported: 3 stored, 0 already on file, 1 refused"),
        "{out:?}"
    );
    assert!(
        out.stdout.contains(&format!(
            "waits in the reconciliation queue: incomplete: 1 file of this study was missing or refused; its details match case #{} (matched by MRN)",
            p.case
        )),
        "nothing half-attached: {out:?}"
    );
    assert!(
        out.stderr
            .contains("1 file was refused (see above); the other files were imported"),
        "{out:?}"
    );
    let system = Actor::system("test");
    assert!(
        store
            .imaging_for_case(&system, p.case)
            .await
            .unwrap()
            .is_empty()
    );
    // Staff see why, and decide.
    let scheduler = staff(&store, Role::Scheduler).await;
    let queue = store.reconciliation_queue(&scheduler).await.unwrap();
    let waiting = queue
        .iter()
        .find(|q| q.summary.study_instance_uid == study.study_uid())
        .unwrap();
    assert!(
        waiting.reason.starts_with("incomplete: 1 file"),
        "{waiting:#?}"
    );
    assert_eq!(waiting.summary.instance_count, 3);
    // The missing image arrives later on its own: the study is whole, and matched.
    let late = tempfile::tempdir().unwrap();
    let single = late.path().join("IM2.dcm");
    std::fs::write(&single, study.slice(1, 2, 16, 16)).unwrap();
    let out = setup.import(&[single.to_str().unwrap()]).await;
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .contains(&format!("attached to case #{} (matched by MRN)", p.case)),
        "{out:?}"
    );
    assert_eq!(
        store.imaging_for_case(&system, p.case).await.unwrap()[0].instance_count,
        4
    );
    setup.finish().await;
}

/// pydicom's bundled test files (many transfer syntaxes, and broken files on purpose).
fn pydicom_test_files() -> Option<PathBuf> {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import pydicom, os; print(os.path.join(os.path.dirname(pydicom.__file__), 'data', 'test_files'))",
        ])
        .output();
    let dir = out
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
        .filter(|p| p.is_dir());
    if dir.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "pydicom is missing: pip install pydicom"
        );
        eprintln!("skipping: pydicom is not installed (pip install pydicom)");
    }
    dir
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

#[tokio::test]
async fn every_pydicom_test_file_imports_or_is_refused_with_a_reason() {
    let Some(corpus) = pydicom_test_files() else {
        return;
    };
    let setup = Setup::new().await;
    let (mut stored, mut refused, mut undecodable) = (0, 0, 0);
    for path in files_under(&corpus) {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // A file named DICOMDIR stands for its whole folder; import it as a file here.
        let copy = tempfile::tempdir().unwrap();
        let single = copy.path().join(if name.eq_ignore_ascii_case("DICOMDIR") {
            "dicomdir.bin"
        } else {
            &name
        });
        std::fs::copy(&path, &single).unwrap();
        let out = setup
            .import(&["--verify-images", single.to_str().unwrap()])
            .await;
        let summary = out.stdout.lines().next().unwrap_or_default().to_owned();
        if out.code == 0 {
            assert!(summary.starts_with("imported: 1 stored"), "{name}: {out:?}");
            stored += 1;
            if out.stdout.contains("stored, cannot be shown: ") {
                undecodable += 1;
            }
            assert!(out.stdout.contains("  study #"), "{name}: {out:?}");
        } else if summary.starts_with("imported: 0 stored, 1 already on file") {
            // The same SOP instance in another file (pydicom ships variants of one image).
            assert!(out.stderr.contains("nothing new"), "{name}: {out:?}");
        } else {
            assert!(
                summary.starts_with("imported: 0 stored, 0 already on file, 1 refused"),
                "{name}: {out:?}"
            );
            let reason = out
                .stdout
                .lines()
                .find_map(|l| {
                    l.strip_prefix(&format!(
                        "  refused {}: ",
                        single.file_name().unwrap().to_string_lossy()
                    ))
                })
                .unwrap_or_else(|| panic!("{name}: no reason given: {out:?}"));
            assert!(reason.len() > 10, "{name}: {reason}");
            refused += 1;
        }
    }
    eprintln!("pydicom corpus: {stored} stored ({undecodable} cannot be shown), {refused} refused");
    assert!(
        stored > 50 && refused > 10,
        "{stored} stored, {refused} refused"
    );
    setup.finish().await;
}
