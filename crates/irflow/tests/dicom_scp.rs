//! The DICOM receiver with dcmtk as the real peer: `echoscu` and `storescu` against
//! irflow's C-STORE SCP on a real port, on the demo department (SQLite, or PostgreSQL
//! when `IRFLOW_TEST_DATABASE_URL` is set). What arrives is checked through the store:
//! studies land on the right case (MRN match) or wait in the reconciliation queue.
//! Misbehaving peers — a dropped connection mid-instance, random bytes, an instance
//! over the size limit, too many associations — get clean answers and leave nothing
//! half-stored.
//!
//! dcmtk must be installed (`.ci/run` installs it); locally, without it, the tests
//! that need it say so and return.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use dicom_ul::Pdu;
use dicom_ul::association::client::ClientAssociationOptions;
use dicom_ul::pdu::{PDataValue, PDataValueType};
use irflow::bench_dicom::{SyntheticSeries, write_series};
use irflow_domain::{Actor, Role};
use irflow_server::dicom_scp::{DicomScpConfig, serve_dicom};
use irflow_store::Store;
use irflow_store::testing::TestDatabase;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MR: &str = "1.2.840.10008.5.1.4.1.1.4";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

/// irflow's receiver on a port of its own, over the demo department.
struct Receiver {
    store: Store,
    state: irflow_server::AppState,
    port: u16,
    db: Option<TestDatabase>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl Receiver {
    async fn start(config: DicomScpConfig) -> Self {
        let db = TestDatabase::new(common::backend()).await;
        let tz = jiff::tz::TimeZone::get("America/New_York").unwrap();
        irflow::demo::seed(&db.store, &tz, common::today(&tz))
            .await
            .expect("seed demo");
        let state = irflow_server::AppState::new(
            db.store.clone(),
            irflow_server::ServerConfig {
                cookie_secure: false,
                ..Default::default()
            },
            irflow_rules::default_pack().unwrap(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_dicom(listener, state.clone(), config, async move {
            let _ = rx.await;
        }));
        Receiver {
            store: db.store.clone(),
            state,
            port,
            db: Some(db),
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops the receiver (the database stays).
    async fn stop_receiver(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().expect("the receiver stops cleanly");
        }
    }

    async fn stop(mut self) {
        self.stop_receiver().await;
        if let Some(db) = self.db.take() {
            db.finish().await;
        }
    }

    async fn staff(&self) -> Actor {
        let user = self.store.user_by_username("nurse").await.unwrap();
        Actor::user(user.id, "nurse", Role::Nurse)
    }

    /// The demo case of the patient with this family name.
    async fn case_of(&self, family: &str) -> irflow_domain::CaseId {
        let cases = self
            .store
            .list_cases(&self.staff().await, &irflow_store::CaseFilter::default())
            .await
            .unwrap();
        cases
            .iter()
            .find(|c| c.family_name == family)
            .unwrap_or_else(|| panic!("a case for {family}"))
            .id
    }

    /// The queued study with this Study Instance UID, if any.
    async fn queued(&self, study_uid: &str) -> Option<irflow_store::QueuedStudy> {
        self.store
            .reconciliation_queue(&self.staff().await)
            .await
            .unwrap()
            .into_iter()
            .find(|q| q.summary.study_instance_uid == study_uid)
    }

    /// Waits (briefly) for the association's batch to be reconciled and queued.
    async fn wait_queued(&self, study_uid: &str) -> irflow_store::QueuedStudy {
        for _ in 0..100 {
            if let Some(q) = self.queued(study_uid).await {
                return q;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the study never reached the reconciliation queue");
    }
}

/// Whether dcmtk is here. In CI it must be; locally a test without it says why and returns.
fn dcmtk() -> bool {
    let found = std::process::Command::new("storescu")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "dcmtk (storescu, echoscu) is missing; .ci/run installs it with apt-get install dcmtk"
        );
        eprintln!(
            "SKIPPED: dcmtk is not installed (apt-get install dcmtk); this test needs storescu/echoscu"
        );
    }
    found
}

async fn run(program: &str, args: &[&str], dir: Option<&Path>) -> Output {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args);
    if let Some(dir) = dir {
        cmd.current_dir(dir);
    }
    tokio::time::timeout(Duration::from_secs(60), cmd.output())
        .await
        .expect("dcmtk finished within a minute")
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn echo(port: u16, calling: &str, called: &str) -> Output {
    run(
        "echoscu",
        &[
            "-aet",
            calling,
            "-aec",
            called,
            "127.0.0.1",
            &port.to_string(),
        ],
        None,
    )
    .await
}

async fn store_files(port: u16, calling: &str, dir: &Path, files: &[PathBuf]) -> Output {
    store_files_with(&[], port, calling, dir, files).await
}

async fn store_files_with(
    options: &[&str],
    port: u16,
    calling: &str,
    dir: &Path,
    files: &[PathBuf],
) -> Output {
    let mut args: Vec<String> = options.iter().map(|o| (*o).to_owned()).collect();
    args.extend([
        // Verbose: the response statuses are printed.
        "-v".into(),
        "-aet".into(),
        calling.into(),
        "-aec".into(),
        "IRFLOW".into(),
        "127.0.0.1".into(),
        port.to_string(),
    ]);
    args.extend(files.iter().map(|f| f.display().to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    run("storescu", &refs, Some(dir)).await
}

/// A small series (64x64) so tests stay quick.
fn small(patient: &str, id: &str, birth: &str, count: usize) -> SyntheticSeries {
    let mut s = SyntheticSeries::mr(patient, id, birth, count);
    s.rows = 64;
    s.columns = 64;
    s
}

/// The bytes of a Part 10 file after its file meta group: the dataset as sent.
fn dataset_of(part10: &[u8]) -> &[u8] {
    assert_eq!(&part10[128..132], b"DICM");
    // (0002,0000) UL, explicit VR: tag 4 + VR 2 + length 2, then the group length.
    let group = u32::from_le_bytes(part10[140..144].try_into().unwrap()) as usize;
    &part10[144 + group..]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_answers_and_wrong_ae_titles_are_refused() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let ok = echo(scp.port, "ANYONE", "IRFLOW").await;
    assert!(ok.status.success(), "echoscu to IRFLOW: {}", text(&ok));
    let wrong = echo(scp.port, "ANYONE", "NOTIRFLOW").await;
    assert!(
        !wrong.status.success(),
        "a wrong called AE title is refused"
    );
    assert!(
        text(&wrong).contains("Called AE Title Not Recognized"),
        "{}",
        text(&wrong)
    );
    scp.stop().await;

    let only_pacs = Receiver::start(DicomScpConfig {
        allowed_calling: vec!["PACS".to_owned()],
        ..DicomScpConfig::default()
    })
    .await;
    let stranger = echo(only_pacs.port, "STRANGER", "IRFLOW").await;
    assert!(!stranger.status.success());
    assert!(
        text(&stranger).contains("Calling AE Title Not Recognized"),
        "{}",
        text(&stranger)
    );
    let pacs = echo(only_pacs.port, "PACS", "IRFLOW").await;
    assert!(pacs.status.success(), "{}", text(&pacs));
    only_pacs.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storescu_sends_a_study_that_lands_on_the_right_case() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The demo's Layla Haddad, MRN-104116, born 1991-05-30.
    let series = small("HADDAD^LAYLA", "MRN-104116", "19910530", 3);
    let files = write_series(dir.path(), &series).unwrap();
    let out = store_files(scp.port, "OUTSIDEPACS", dir.path(), &files).await;
    assert!(out.status.success(), "storescu: {}", text(&out));

    let case = scp.case_of("Haddad").await;
    let staff = scp.staff().await;
    let mut studies = Vec::new();
    for _ in 0..100 {
        studies = scp.store.imaging_for_case(&staff, case).await.unwrap();
        if !studies.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let study = studies
        .iter()
        .find(|s| s.study_instance_uid == series.study_uid)
        .expect("the study is on Layla Haddad's case");
    assert_eq!(study.instance_count, 3);
    assert_eq!(study.series_count, 1);
    assert_eq!(study.matched_by, Some(irflow_store::MatchedBy::Mrn));
    assert!(scp.queued(&series.study_uid).await.is_none());

    // The dataset is stored byte for byte as it was sent.
    let detail = scp.store.study_detail(&staff, study.id).await.unwrap();
    let instances: Vec<_> = detail.series.iter().flat_map(|s| &s.instances).collect();
    assert_eq!(instances.len(), 3);
    for instance in instances {
        let stored = scp.state.images().get(&instance.object_key).await.unwrap();
        let original = files
            .iter()
            .map(|f| std::fs::read(f).unwrap())
            .find(|bytes| {
                bytes
                    .windows(instance.sop_instance_uid.len())
                    .any(|w| w == instance.sop_instance_uid.as_bytes())
            })
            .expect("the original file of this instance");
        assert_eq!(dataset_of(&stored), dataset_of(&original));
        assert_eq!(instance.transfer_syntax, EXPLICIT_LE);
    }

    // Sending the same study again stores nothing new and still succeeds.
    let again = store_files(scp.port, "OUTSIDEPACS", dir.path(), &files).await;
    assert!(again.status.success(), "{}", text(&again));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let studies = scp.store.imaging_for_case(&staff, case).await.unwrap();
    let study = studies
        .iter()
        .find(|s| s.study_instance_uid == series.study_uid)
        .unwrap();
    assert_eq!(study.instance_count, 3);
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_of_an_unknown_patient_waits_in_the_reconciliation_queue() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let series = small("NOBODY^KNOWN", "EXT-55555", "19400101", 2);
    let files = write_series(dir.path(), &series).unwrap();
    let out = store_files(scp.port, "OUTSIDEPACS", dir.path(), &files).await;
    assert!(out.status.success(), "storescu: {}", text(&out));
    let queued = scp.wait_queued(&series.study_uid).await;
    assert_eq!(queued.summary.instance_count, 2);
    assert_eq!(queued.summary.case_id, None);
    assert_eq!(queued.calling_ae.as_deref(), Some("OUTSIDEPACS"));
    assert_eq!(queued.source, irflow_store::SourceKind::Cstore);
    assert!(!queued.reason.is_empty());
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressed_studies_are_stored_in_the_syntax_they_were_sent_in() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let series = small("COMPRESSED^CASE", "EXT-77777", "19500505", 2);
    let files = write_series(dir.path(), &series).unwrap();
    // One RLE file, one JPEG Lossless file, made by dcmtk itself.
    let rle = dir.path().join("RLE1");
    let out = run(
        "dcmcrle",
        &[&files[0].display().to_string(), &rle.display().to_string()],
        None,
    )
    .await;
    assert!(out.status.success(), "dcmcrle: {}", text(&out));
    let jpeg = dir.path().join("JPEG1");
    let out = run(
        "dcmcjpeg",
        &[&files[1].display().to_string(), &jpeg.display().to_string()],
        None,
    )
    .await;
    assert!(out.status.success(), "dcmcjpeg: {}", text(&out));
    // storescu proposes a compressed syntax only when told to (else it decompresses):
    // -xr proposes RLE, -xs JPEG Lossless, first, before the uncompressed ones.
    for (option, file) in [("-xr", &rle), ("-xs", &jpeg)] {
        let out = store_files_with(
            &[option],
            scp.port,
            "OUTSIDEPACS",
            dir.path(),
            std::slice::from_ref(file),
        )
        .await;
        assert!(out.status.success(), "storescu {option}: {}", text(&out));
    }
    // Both associations ended and were reconciled.
    for _ in 0..100 {
        match scp.queued(&series.study_uid).await {
            Some(q) if q.summary.instance_count == 2 => break,
            _ => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let queued = scp.wait_queued(&series.study_uid).await;
    let detail = scp
        .store
        .study_detail(&scp.staff().await, queued.summary.id)
        .await
        .unwrap();
    let mut syntaxes: Vec<String> = detail
        .series
        .iter()
        .flat_map(|s| &s.instances)
        .map(|i| i.transfer_syntax.clone())
        .collect();
    syntaxes.sort();
    assert_eq!(
        syntaxes,
        vec![
            "1.2.840.10008.1.2.4.70".to_owned(),
            "1.2.840.10008.1.2.5".to_owned()
        ],
        "stored as sent, not transcoded"
    );
    for instance in detail.series.iter().flat_map(|s| &s.instances) {
        let stored = scp.state.images().get(&instance.object_key).await.unwrap();
        let source = if instance.transfer_syntax.ends_with(".5") {
            &rle
        } else {
            &jpeg
        };
        assert_eq!(
            dataset_of(&stored),
            dataset_of(&std::fs::read(source).unwrap())
        );
    }
    scp.stop().await;
}

/// A C-STORE-RQ command set (implicit VR little endian), as a sender writes it.
fn store_command(message_id: u16, sop_instance: &str) -> Vec<u8> {
    fn element(out: &mut Vec<u8>, element: u16, value: &[u8]) {
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&element.to_le_bytes());
        let padded = value.len() + value.len() % 2;
        out.extend_from_slice(&(padded as u32).to_le_bytes());
        out.extend_from_slice(value);
        if value.len() % 2 == 1 {
            out.push(0);
        }
    }
    let mut body = Vec::new();
    element(&mut body, 0x0002, MR.as_bytes());
    element(&mut body, 0x0100, &1u16.to_le_bytes());
    element(&mut body, 0x0110, &message_id.to_le_bytes());
    element(&mut body, 0x0700, &0u16.to_le_bytes());
    element(&mut body, 0x0800, &0u16.to_le_bytes());
    element(&mut body, 0x1000, sop_instance.as_bytes());
    let mut out = Vec::new();
    element(&mut out, 0x0000, &(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

/// The status of a C-STORE-RSP command set.
fn status_of(rsp: &[u8]) -> u16 {
    let mut rest = rsp;
    while rest.len() >= 8 {
        let element = u16::from_le_bytes([rest[2], rest[3]]);
        let len = u32::from_le_bytes(rest[4..8].try_into().unwrap()) as usize;
        if element == 0x0900 {
            return u16::from_le_bytes([rest[8], rest[9]]);
        }
        rest = &rest[8 + len..];
    }
    panic!("no status in the response");
}

/// The dataset of the `n`th file (explicit VR little endian) and its SOP Instance UID.
fn dataset_and_uid(file: &Path) -> (Vec<u8>, String) {
    let bytes = std::fs::read(file).unwrap();
    let dataset = dataset_of(&bytes).to_vec();
    // The Media Storage SOP Instance UID (0002,0003) in the meta group.
    let at = bytes
        .windows(4)
        .position(|w| w == [0x02, 0x00, 0x03, 0x00])
        .unwrap();
    let len = u16::from_le_bytes([bytes[at + 6], bytes[at + 7]]) as usize;
    let uid = String::from_utf8_lossy(&bytes[at + 8..at + 8 + len])
        .trim_end_matches('\0')
        .to_owned();
    (dataset, uid)
}

async fn associate(
    port: u16,
    calling: &str,
) -> dicom_ul::association::AsyncClientAssociation<tokio::net::TcpStream> {
    ClientAssociationOptions::new()
        .calling_ae_title(calling.to_owned())
        .called_ae_title("IRFLOW")
        .with_presentation_context(MR, vec![EXPLICIT_LE])
        .establish_async(format!("127.0.0.1:{port}"))
        .await
        .expect("association accepted")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_association_dropped_mid_transfer_leaves_nothing_half_stored() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let whole = small("DROPPED^FIRST", "EXT-11111", "19600606", 1);
    let cut = small("DROPPED^SECOND", "EXT-22222", "19610707", 1);
    let whole_file = &write_series(&dir.path().join("a"), &whole).unwrap()[0];
    let cut_file = &write_series(&dir.path().join("b"), &cut).unwrap()[0];

    let mut association = associate(scp.port, "DROPPER").await;
    let pc = association.presentation_contexts()[0].id;
    // One whole instance: command, then its dataset.
    let (dataset, uid) = dataset_and_uid(whole_file);
    association
        .send(&Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: store_command(1, &uid),
                },
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Data,
                    is_last: true,
                    data: dataset,
                },
            ],
        })
        .await
        .unwrap();
    match association.receive().await.unwrap() {
        Pdu::PData { data } => assert_eq!(status_of(&data[0].data), 0x0000, "stored"),
        other => panic!("expected a C-STORE response, got {other:?}"),
    }
    // The second instance: its command and half of its dataset, then the line goes dead.
    let (dataset, uid) = dataset_and_uid(cut_file);
    association
        .send(&Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: store_command(2, &uid),
                },
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Data,
                    is_last: false,
                    data: dataset[..dataset.len() / 2].to_vec(),
                },
            ],
        })
        .await
        .unwrap();
    association.inner_stream().shutdown().await.unwrap();
    drop(association);

    // The whole instance's study is reconciled (queued: nobody matches); the cut one
    // left no trace.
    let queued = scp.wait_queued(&whole.study_uid).await;
    assert_eq!(queued.summary.instance_count, 1);
    assert_eq!(queued.calling_ae.as_deref(), Some("DROPPER"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        scp.queued(&cut.study_uid).await.is_none(),
        "nothing of the cut instance"
    );
    // And the receiver is still fine.
    let ok = echo(scp.port, "ANYONE", "IRFLOW").await;
    assert!(ok.status.success(), "{}", text(&ok));
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_does_not_speak_dicom_is_turned_away() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig {
        idle_timeout: Duration::from_secs(2),
        ..DicomScpConfig::default()
    })
    .await;
    let closed_soon = |mut socket: tokio::net::TcpStream| async move {
        let mut buf = vec![0u8; 4096];
        let mut received = Vec::new();
        let result = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(result.is_ok(), "the receiver closes the connection");
        received
    };
    // An HTTP request: the "PDU length" it implies is far over the limit.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", scp.port))
        .await
        .unwrap();
    socket
        .write_all(b"GET / HTTP/1.1\r\nHost: irflow\r\n\r\n")
        .await
        .unwrap();
    closed_soon(socket).await;
    // Random bytes.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", scp.port))
        .await
        .unwrap();
    let junk: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let _ = socket.write_all(&junk).await;
    closed_soon(socket).await;
    // An unknown PDU type of a plausible length: answered with an A-ABORT.
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", scp.port))
        .await
        .unwrap();
    socket
        .write_all(&[0x09, 0, 0, 0, 0, 4, 1, 2, 3, 4])
        .await
        .unwrap();
    let answer = closed_soon(socket).await;
    assert_eq!(answer.first(), Some(&0x07), "an A-ABORT PDU: {answer:?}");
    // Silence: dropped after the idle timeout.
    let socket = tokio::net::TcpStream::connect(("127.0.0.1", scp.port))
        .await
        .unwrap();
    closed_soon(socket).await;
    // Still serving.
    let ok = echo(scp.port, "ANYONE", "IRFLOW").await;
    assert!(ok.status.success(), "{}", text(&ok));
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_over_the_size_limit_is_refused_and_not_stored() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig {
        max_instance_bytes: 4 * 1024,
        ..DicomScpConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    // 64x64x2 = 8 KiB of pixels: over the 4 KiB limit.
    let series = small("TOO^LARGE", "EXT-33333", "19700101", 1);
    let files = write_series(dir.path(), &series).unwrap();
    let out = store_files(scp.port, "OUTSIDEPACS", dir.path(), &files).await;
    let said = text(&out);
    assert!(!out.status.success(), "storescu reports a failure: {said}");
    assert!(said.contains("OutOfResources"), "status A700: {said}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(scp.queued(&series.study_uid).await.is_none());
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn associations_over_the_limit_are_told_to_come_back_later() {
    if !dcmtk() {
        return;
    }
    let scp = Receiver::start(DicomScpConfig {
        max_associations: 1,
        ..DicomScpConfig::default()
    })
    .await;
    let first = associate(scp.port, "FIRST").await;
    let busy = echo(scp.port, "SECOND", "IRFLOW").await;
    assert!(!busy.status.success());
    assert!(
        text(&busy).contains("Local Limit Exceeded"),
        "{}",
        text(&busy)
    );
    first.release().await.unwrap();
    let mut ok = echo(scp.port, "SECOND", "IRFLOW").await;
    for _ in 0..20 {
        if ok.status.success() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        ok = echo(scp.port, "SECOND", "IRFLOW").await;
    }
    assert!(ok.status.success(), "{}", text(&ok));
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_the_receiver_and_says_where() {
    if !dcmtk() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(["demo", "--port", "0", "--data-dir"])
        .arg(dir.path().join("demo"))
        .current_dir(dir.path())
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_CONFIG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let port = line_after(&mut stdout, "DICOM: AE IRFLOW at 127.0.0.1:")
        .await
        .expect("the demo prints its DICOM address")
        .parse::<u16>()
        .unwrap();
    let ok = echo(port, "ANYONE", "IRFLOW").await;
    assert!(ok.status.success(), "{}", text(&ok));
    child.kill().await.unwrap();
}

/// Reads the child's standard output until a line starts with `prefix`; returns the rest.
async fn line_after(
    stdout: &mut tokio::io::BufReader<tokio::process::ChildStdout>,
    prefix: &str,
) -> Option<String> {
    use tokio::io::AsyncBufReadExt;
    let read = async {
        let mut line = String::new();
        while stdout.read_line(&mut line).await.ok()? > 0 {
            if let Some(rest) = line.trim().strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
            line.clear();
        }
        None
    };
    tokio::time::timeout(Duration::from_secs(60), read)
        .await
        .ok()
        .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_starts_the_receiver_only_when_enabled() {
    if !dcmtk() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let serve = |enabled: &str, ae: &str| {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path().join("data"))
            .current_dir(dir.path())
            .env_remove("IRFLOW_DATABASE_URL")
            .env_remove("IRFLOW_CONFIG")
            .env("IRFLOW_DICOM_ENABLED", enabled)
            .env("IRFLOW_DICOM_PORT", "0")
            .env("IRFLOW_DICOM_AE_TITLE", ae)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    };
    let mut on = serve("true", "SPINEAE");
    let mut stdout = tokio::io::BufReader::new(on.stdout.take().unwrap());
    let addr = line_after(&mut stdout, "irflow: DICOM: AE SPINEAE at ")
        .await
        .expect("serve says where DICOM listens");
    let port = addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    let ok = echo(port, "ANYONE", "SPINEAE").await;
    assert!(ok.status.success(), "{}", text(&ok));
    on.kill().await.unwrap();

    // Off (the default): no DICOM line before the web server's.
    let mut off = serve("false", "SPINEAE");
    let mut stdout = tokio::io::BufReader::new(off.stdout.take().unwrap());
    line_after(&mut stdout, "irflow: serving http://")
        .await
        .expect("serve starts");
    // Whatever else it prints at start comes right after; none of it is about DICOM.
    let mut lines = vec!["irflow: serving http://".to_owned()];
    loop {
        use tokio::io::AsyncBufReadExt;
        let mut line = String::new();
        match tokio::time::timeout(Duration::from_secs(2), stdout.read_line(&mut line)).await {
            Ok(Ok(n)) if n > 0 => lines.push(line),
            _ => break,
        }
    }
    assert!(
        lines.iter().any(|l| l.contains("serving http://")),
        "{lines:?}"
    );
    assert!(!lines.iter().any(|l| l.contains("DICOM")), "{lines:?}");
    off.kill().await.unwrap();

    // A bad setting stops the start with a message naming it.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_irflow"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .current_dir(dir.path())
        .env_remove("IRFLOW_DATABASE_URL")
        .env_remove("IRFLOW_CONFIG")
        .env("IRFLOW_DICOM_ENABLED", "true")
        .env("IRFLOW_DICOM_AE_TITLE", "AN_AE_TITLE_TOO_LONG")
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("dicom.ae_title"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_set_that_is_not_the_announced_instance_is_refused() {
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let series = small("MISLABELLED^ONE", "EXT-55555", "19700101", 2);
    let files = write_series(dir.path(), &series).unwrap();
    let mut association = associate(scp.port, "LABELLER").await;
    let pc = association.presentation_contexts()[0].id;
    // The command announces the second instance; the data set is the first.
    let (dataset, first_uid) = dataset_and_uid(&files[0]);
    let (_, second_uid) = dataset_and_uid(&files[1]);
    association
        .send(&Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: store_command(1, &second_uid),
                },
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Data,
                    is_last: true,
                    data: dataset,
                },
            ],
        })
        .await
        .unwrap();
    match association.receive().await.unwrap() {
        Pdu::PData { data } => assert_eq!(
            status_of(&data[0].data),
            0x0117,
            "refused as an invalid SOP instance"
        ),
        other => panic!("expected a C-STORE response, got {other:?}"),
    }
    association.release().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    for uid in [&first_uid, &second_uid] {
        assert_eq!(
            scp.store.instance_id_by_sop(uid).await.unwrap(),
            None,
            "nothing stored under either UID"
        );
    }
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_from_an_association_that_ended_early_waits_for_staff() {
    let scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    // The demo's Layla Haddad: her details match, but the sender never finished.
    let series = small("HADDAD^LAYLA", "MRN-104116", "19910530", 2);
    let files = write_series(dir.path(), &series).unwrap();
    let mut association = associate(scp.port, "HALFWAY").await;
    let pc = association.presentation_contexts()[0].id;
    let (dataset, uid) = dataset_and_uid(&files[0]);
    association
        .send(&Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: store_command(1, &uid),
                },
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Data,
                    is_last: true,
                    data: dataset,
                },
            ],
        })
        .await
        .unwrap();
    match association.receive().await.unwrap() {
        Pdu::PData { data } => assert_eq!(status_of(&data[0].data), 0x0000, "stored"),
        other => panic!("expected a C-STORE response, got {other:?}"),
    }
    // The line goes dead before the second instance and before a release.
    association.inner_stream().shutdown().await.unwrap();
    drop(association);
    let mut reason = String::new();
    for _ in 0..100 {
        if let Some(q) = scp.queued(&series.study_uid).await
            && q.reason.contains("incomplete")
        {
            reason = q.reason;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        reason.starts_with(
            "possibly incomplete: the DICOM association ended before the sender finished (connection dropped); its details match case #"
        ),
        "nothing half-attached: {reason:?}"
    );
    let case = scp.case_of("Haddad").await;
    let staff = scp.staff().await;
    assert!(
        scp.store
            .imaging_for_case(&staff, case)
            .await
            .unwrap()
            .iter()
            .all(|s| s.study_instance_uid != series.study_uid)
    );
    scp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_associations_and_matches_what_they_brought() {
    let mut scp = Receiver::start(DicomScpConfig::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let series = small("STILL^OPEN", "EXT-44444", "19800808", 1);
    let file = &write_series(dir.path(), &series).unwrap()[0];
    let mut association = associate(scp.port, "LINGERER").await;
    let pc = association.presentation_contexts()[0].id;
    let (dataset, uid) = dataset_and_uid(file);
    association
        .send(&Pdu::PData {
            data: vec![
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Command,
                    is_last: true,
                    data: store_command(1, &uid),
                },
                PDataValue {
                    presentation_context_id: pc,
                    value_type: PDataValueType::Data,
                    is_last: true,
                    data: dataset,
                },
            ],
        })
        .await
        .unwrap();
    match association.receive().await.unwrap() {
        Pdu::PData { data } => assert_eq!(status_of(&data[0].data), 0x0000, "stored"),
        other => panic!("expected a C-STORE response, got {other:?}"),
    }
    // The association stays open; the server shuts down well before the idle timeout.
    let started = std::time::Instant::now();
    scp.stop_receiver().await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "shutdown did not wait for the peer"
    );
    match tokio::time::timeout(Duration::from_secs(5), association.receive()).await {
        Ok(Ok(Pdu::AbortRQ { .. }) | Err(_)) => {}
        other => panic!("the peer is told the association is over: {other:?}"),
    }
    let queued = scp
        .queued(&series.study_uid)
        .await
        .expect("matched or queued at shutdown");
    assert_eq!(queued.summary.instance_count, 1);
    scp.stop().await;
}

/// pydicom's bundled test files (many transfer syntaxes, broken files on purpose).
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
            "pydicom is missing; .ci/run installs it (pip install pydicom)"
        );
        eprintln!("SKIPPED: pydicom is not installed (pip install pydicom)");
    }
    dir
}

/// The number after `label` on a line of dcmsend's status summary.
fn summary_count(report: &str, label: &str) -> usize {
    report
        .lines()
        .find_map(|l| l.split_once(label).map(|(_, rest)| rest))
        .and_then(|rest| rest.trim_start_matches([' ', ':']).trim().parse().ok())
        .unwrap_or_else(|| panic!("{label:?} in dcmsend's summary:\n{report}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pydicom_test_file_dcmsend_can_send_is_stored_or_refused_with_a_status() {
    if !dcmtk() {
        return;
    }
    let Some(corpus) = pydicom_test_files() else {
        return;
    };
    let scp = Receiver::start(DicomScpConfig::default()).await;
    // dcmsend proposes each file's own transfer syntax and never decompresses (-dn), so
    // compressed files arrive as they are; -nh goes on past files it cannot read itself.
    let out = run(
        "dcmsend",
        &[
            "-v",
            "-nh",
            "-dn",
            "-aet",
            "PYDICOM",
            "-aec",
            "IRFLOW",
            "+sd",
            "+r",
            "127.0.0.1",
            &scp.port.to_string(),
            &corpus.display().to_string(),
        ],
        None,
    )
    .await;
    let report = text(&out);
    assert!(out.status.success(), "dcmsend: {report}");
    // One association from start to end: irflow never aborted it.
    assert_eq!(
        summary_count(&report, "Number of associations"),
        1,
        "{report}"
    );
    assert!(!report.contains("Association Aborted"), "{report}");
    let sent = summary_count(&report, "- sent to the peer");
    let answered = report.matches("Received C-STORE Response").count();
    assert_eq!(answered, sent, "every instance sent got a response");
    let success = summary_count(&report, "* with status SUCCESS");
    assert!(
        success >= sent * 3 / 4,
        "most are stored: {success} of {sent}"
    );
    // Refusals are proper DIMSE statuses.
    for line in report
        .lines()
        .filter(|l| l.contains("Received C-STORE Response"))
    {
        assert!(
            line.contains("(Success)")
                || line.contains("(Error: CannotUnderstand)")
                || line.contains("(Refused: SOPClassNotSupported)"),
            "{line}"
        );
    }
    // Still serving.
    let ok = echo(scp.port, "ANYONE", "IRFLOW").await;
    assert!(ok.status.success(), "{}", text(&ok));
    scp.stop().await;
}
