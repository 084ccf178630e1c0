//! The DICOM network receiver: a C-STORE SCP with C-ECHO (Verification), built on
//! dicom-ul's association layer; the DIMSE command sets are read and written here.
//!
//! One task per association. Each instance that arrives whole is wrapped as a Part 10
//! file (the dataset's bytes unchanged, in the transfer syntax it was sent in) and
//! handed to [`crate::imaging`] to be stored and indexed before the C-STORE response
//! says "success"; the association is one ingest batch, reconciled (matched to a case
//! or queued for staff) when it ends — by release, abort, a dropped connection, a
//! timeout or shutdown alike. An instance cut off mid-transfer is never stored.
//!
//! Logs carry AE titles, peer addresses, counts, sizes and durations — never a
//! patient's name, id, dates or UIDs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dicom_ul::Pdu;
use dicom_ul::association::server::{AccessControl, ServerAssociationOptions};
use dicom_ul::association::{Association, AsyncServerAssociation, Error as UlError};
use dicom_ul::pdu::{
    AbortRQServiceProviderReason, AbortRQSource, AssociationRJ, AssociationRJResult,
    AssociationRJServiceProviderPresentationReason, AssociationRJServiceUserReason,
    AssociationRJSource, PDataValue, PDataValueType, PresentationContextResultReason, UserIdentity,
};
use irflow_domain::Actor;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::AppState;
use crate::imaging::FileResult;
use irflow_dicom::Unpacked;
use irflow_store::{ImagingSource, SourceKind};

/// The Verification SOP class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";

/// Settings of the DICOM receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomScpConfig {
    /// irflow's AE title; associations calling another title are refused.
    pub ae_title: String,
    /// Calling AE titles allowed to connect; empty: any.
    pub allowed_calling: Vec<String>,
    /// The largest PDU irflow accepts (bytes; advertised in the association).
    pub max_pdu_length: u32,
    /// Associations served at once; more are refused as "local limit exceeded".
    pub max_associations: usize,
    /// The largest dataset taken in one C-STORE (bytes); larger ones are refused.
    pub max_instance_bytes: usize,
    /// How long an association may be silent before it is aborted.
    pub idle_timeout: Duration,
}

impl Default for DicomScpConfig {
    fn default() -> Self {
        Self {
            ae_title: "IRFLOW".to_owned(),
            allowed_calling: Vec::new(),
            max_pdu_length: DEFAULT_MAX_PDU_LENGTH,
            max_associations: 8,
            max_instance_bytes: 1024 * 1024 * 1024,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

/// The default largest PDU (bytes). Large PDUs mean fewer reads and fewer copies.
pub const DEFAULT_MAX_PDU_LENGTH: u32 = 1024 * 1024;

/// The smallest largest-PDU the standard allows an acceptor to advertise usefully.
pub const MIN_MAX_PDU_LENGTH: u32 = 4096;

/// Checks an AE title: 1 to 16 printable ASCII characters, no backslash, not blank.
pub fn check_ae_title(title: &str) -> Result<(), String> {
    let trimmed = title.trim();
    if trimmed.is_empty() {
        return Err("an AE title must not be empty".to_owned());
    }
    if trimmed.len() > 16 {
        return Err(format!("AE title {trimmed:?} is longer than 16 characters"));
    }
    if !trimmed.chars().all(|c| c.is_ascii_graphic() || c == ' ') || trimmed.contains('\\') {
        return Err(format!(
            "AE title {trimmed:?} may only hold printable ASCII characters other than a backslash"
        ));
    }
    Ok(())
}

/// Storage SOP classes accepted (plus Verification). Broad on purpose: an outside
/// study may carry secondary captures, reports or dose records beside its images,
/// and refusing them would make the sender report a failed transfer.
pub const STORAGE_SOP_CLASSES: &[&str] = &[
    "1.2.840.10008.5.1.4.1.1.1",      // Computed Radiography
    "1.2.840.10008.5.1.4.1.1.1.1",    // Digital X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.1.1.1",  // Digital X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.1.2",    // Digital Mammography, for presentation
    "1.2.840.10008.5.1.4.1.1.1.2.1",  // Digital Mammography, for processing
    "1.2.840.10008.5.1.4.1.1.1.3",    // Digital Intra-Oral X-Ray, for presentation
    "1.2.840.10008.5.1.4.1.1.1.3.1",  // Digital Intra-Oral X-Ray, for processing
    "1.2.840.10008.5.1.4.1.1.2",      // CT
    "1.2.840.10008.5.1.4.1.1.2.1",    // Enhanced CT
    "1.2.840.10008.5.1.4.1.1.2.2",    // Legacy Converted Enhanced CT
    "1.2.840.10008.5.1.4.1.1.3.1",    // Ultrasound Multi-frame
    "1.2.840.10008.5.1.4.1.1.4",      // MR
    "1.2.840.10008.5.1.4.1.1.4.1",    // Enhanced MR
    "1.2.840.10008.5.1.4.1.1.4.2",    // MR Spectroscopy
    "1.2.840.10008.5.1.4.1.1.4.3",    // Enhanced MR Color
    "1.2.840.10008.5.1.4.1.1.4.4",    // Legacy Converted Enhanced MR
    "1.2.840.10008.5.1.4.1.1.6.1",    // Ultrasound
    "1.2.840.10008.5.1.4.1.1.6.2",    // Enhanced US Volume
    "1.2.840.10008.5.1.4.1.1.7",      // Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.1",    // Multi-frame Single Bit Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.2",    // Multi-frame Grayscale Byte Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.3",    // Multi-frame Grayscale Word Secondary Capture
    "1.2.840.10008.5.1.4.1.1.7.4",    // Multi-frame True Color Secondary Capture
    "1.2.840.10008.5.1.4.1.1.11.1",   // Grayscale Softcopy Presentation State
    "1.2.840.10008.5.1.4.1.1.12.1",   // X-Ray Angiographic
    "1.2.840.10008.5.1.4.1.1.12.1.1", // Enhanced XA
    "1.2.840.10008.5.1.4.1.1.12.2",   // X-Ray Radiofluoroscopic
    "1.2.840.10008.5.1.4.1.1.12.2.1", // Enhanced XRF
    "1.2.840.10008.5.1.4.1.1.13.1.1", // X-Ray 3D Angiographic
    "1.2.840.10008.5.1.4.1.1.13.1.2", // X-Ray 3D Craniofacial
    "1.2.840.10008.5.1.4.1.1.13.1.3", // Breast Tomosynthesis
    "1.2.840.10008.5.1.4.1.1.20",     // Nuclear Medicine
    "1.2.840.10008.5.1.4.1.1.66",     // Raw Data
    "1.2.840.10008.5.1.4.1.1.66.1",   // Spatial Registration
    "1.2.840.10008.5.1.4.1.1.66.4",   // Segmentation
    "1.2.840.10008.5.1.4.1.1.77.1.1", // VL Endoscopic
    "1.2.840.10008.5.1.4.1.1.77.1.2", // VL Microscopic
    "1.2.840.10008.5.1.4.1.1.77.1.4", // VL Photographic
    "1.2.840.10008.5.1.4.1.1.88.11",  // Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  // Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  // Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.59",  // Key Object Selection
    "1.2.840.10008.5.1.4.1.1.88.67",  // X-Ray Radiation Dose SR
    "1.2.840.10008.5.1.4.1.1.104.1",  // Encapsulated PDF
    "1.2.840.10008.5.1.4.1.1.128",    // PET
    "1.2.840.10008.5.1.4.1.1.128.1",  // Legacy Converted Enhanced PET
    "1.2.840.10008.5.1.4.1.1.130",    // Enhanced PET
    "1.2.840.10008.5.1.4.1.1.481.1",  // RT Image
    "1.2.840.10008.5.1.4.1.1.481.2",  // RT Dose
    "1.2.840.10008.5.1.4.1.1.481.3",  // RT Structure Set
    "1.2.840.10008.5.1.4.1.1.481.5",  // RT Plan
];

/// Transfer syntaxes accepted. The sender's order of preference decides among
/// them, so compressed studies are stored exactly as sent (never transcoded).
pub const TRANSFER_SYNTAXES: &[&str] = &[
    "1.2.840.10008.1.2",       // Implicit VR Little Endian
    "1.2.840.10008.1.2.1",     // Explicit VR Little Endian
    "1.2.840.10008.1.2.1.99",  // Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.2",     // Explicit VR Big Endian (retired, still sent)
    "1.2.840.10008.1.2.4.50",  // JPEG Baseline
    "1.2.840.10008.1.2.4.51",  // JPEG Extended
    "1.2.840.10008.1.2.4.57",  // JPEG Lossless
    "1.2.840.10008.1.2.4.70",  // JPEG Lossless, first-order prediction
    "1.2.840.10008.1.2.4.80",  // JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  // JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  // JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  // JPEG 2000
    "1.2.840.10008.1.2.4.201", // HTJ2K Lossless
    "1.2.840.10008.1.2.4.202", // HTJ2K Lossless RPCL
    "1.2.840.10008.1.2.4.203", // HTJ2K
    "1.2.840.10008.1.2.5",     // RLE Lossless
];

/// DIMSE status codes irflow answers with (PS3.7 Annex C, PS3.4 B.2.3).
mod status {
    pub const SUCCESS: u16 = 0x0000;
    pub const SOP_CLASS_NOT_SUPPORTED: u16 = 0x0122;
    pub const PROCESSING_FAILURE: u16 = 0x0110;
    /// The data set's SOP Instance UID is not the one the request announced.
    pub const INVALID_SOP_INSTANCE: u16 = 0x0117;
    pub const UNRECOGNIZED_OPERATION: u16 = 0x0211;
    pub const OUT_OF_RESOURCES: u16 = 0xA700;
    pub const DATASET_DOES_NOT_MATCH: u16 = 0xA900;
    pub const CANNOT_UNDERSTAND: u16 = 0xC000;
}

/// Command fields (PS3.7 E.1).
mod command {
    pub const C_STORE_RQ: u16 = 0x0001;
    pub const C_ECHO_RQ: u16 = 0x0030;
    pub const RESPONSE: u16 = 0x8000;
    pub const NO_DATASET: u16 = 0x0101;
}

/// The largest command set accepted (commands are a few hundred bytes).
const MAX_COMMAND_BYTES: usize = 64 * 1024;

/// How long an over-the-limit or refused peer gets to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for associations to end by themselves.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts an association only if it calls irflow's AE title and, when a list is
/// configured, comes from an allowed calling AE title.
#[derive(Debug, Clone)]
struct AeTitles {
    allowed_calling: Arc<Vec<String>>,
}

impl AccessControl for AeTitles {
    fn check_access(
        &self,
        this_ae_title: &str,
        calling_ae_title: &str,
        called_ae_title: &str,
        _user_identity: Option<&UserIdentity>,
    ) -> Result<(), AssociationRJServiceUserReason> {
        if called_ae_title.trim() != this_ae_title.trim() {
            return Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized);
        }
        if !self.allowed_calling.is_empty()
            && !self
                .allowed_calling
                .iter()
                .any(|a| a.trim() == calling_ae_title.trim())
        {
            return Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized);
        }
        Ok(())
    }
}

/// What every association task shares.
#[derive(Debug)]
struct Context {
    state: AppState,
    config: DicomScpConfig,
    options: ServerAssociationOptions<
        'static,
        AeTitles,
        dicom_ul::association::server::DefaultNegotiation,
    >,
}

/// Serves DICOM on an already-bound listener until `shutdown` resolves; then stops
/// accepting, aborts associations still open after a short grace period (their
/// batches are reconciled like any other), and returns.
pub async fn serve_dicom(
    listener: TcpListener,
    state: AppState,
    config: DicomScpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut options = ServerAssociationOptions::new()
        .ae_access_control(AeTitles {
            allowed_calling: Arc::new(config.allowed_calling.clone()),
        })
        .ae_title(config.ae_title.trim().to_owned())
        .max_pdu_length(config.max_pdu_length.max(MIN_MAX_PDU_LENGTH))
        .strict(true)
        .read_timeout(config.idle_timeout)
        .write_timeout(config.idle_timeout)
        .with_abstract_syntax(VERIFICATION);
    for uid in STORAGE_SOP_CLASSES {
        options = options.with_abstract_syntax(*uid);
    }
    for uid in TRANSFER_SYNTAXES {
        options = options.with_transfer_syntax(*uid);
    }
    let max_associations = config.max_associations.max(1);
    let context = Arc::new(Context {
        state,
        config,
        options,
    });
    let slots = Arc::new(Semaphore::new(max_associations));
    // Peers turned away still get a proper A-ASSOCIATE-RJ, but only so many at once.
    let refusals = Arc::new(Semaphore::new(max_associations));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let addr = listener.local_addr()?;
    tracing::info!(%addr, ae_title = %context.config.ae_title, "DICOM receiver listening");
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: wait a moment, go on.
                        tracing::warn!(error = %e, "DICOM accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = socket.set_nodelay(true);
                match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => {
                        let context = Arc::clone(&context);
                        let stop = stop_rx.clone();
                        tasks.spawn(async move {
                            serve_association(socket, peer, &context, stop).await;
                            drop(permit);
                        });
                    }
                    Err(_) => match Arc::clone(&refusals).try_acquire_owned() {
                        Ok(permit) => {
                            tasks.spawn(async move {
                                refuse_busy(socket, peer).await;
                                drop(permit);
                            });
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "DICOM connection dropped: too many at once");
                            drop(socket);
                        }
                    },
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    tracing::info!("DICOM receiver stopped");
    Ok(())
}

/// Reads the association request of a peer over the limit and answers with a
/// transient rejection ("local limit exceeded"), so it can retry later.
async fn refuse_busy(mut socket: TcpStream, peer: SocketAddr) {
    use tokio::io::AsyncReadExt;
    let read_request = async {
        let mut header = [0u8; 6];
        socket.read_exact(&mut header).await.ok()?;
        let length = u32::from_be_bytes([header[2], header[3], header[4], header[5]]);
        // An A-ASSOCIATE-RQ is type 1 and small; anything else is not worth reading.
        if header[0] != 0x01 || length > 64 * 1024 {
            return None;
        }
        let mut body = vec![0u8; usize::try_from(length).ok()?];
        socket.read_exact(&mut body).await.ok()?;
        // Calling AE title: bytes 27-42 of the PDU, 21-36 of its body.
        let calling = body
            .get(20..36)
            .map(|b| String::from_utf8_lossy(b).trim().to_owned());
        Some(calling.unwrap_or_default())
    };
    if let Ok(Some(calling_ae)) = tokio::time::timeout(REQUEST_TIMEOUT, read_request).await {
        let rj = Pdu::AssociationRJ(AssociationRJ {
            result: AssociationRJResult::Transient,
            source: AssociationRJSource::ServiceProviderPresentation(
                AssociationRJServiceProviderPresentationReason::LocalLimitExceeded,
            ),
        });
        let mut out = Vec::new();
        if dicom_ul::write_pdu(&mut out, &rj).is_ok() {
            let _ = socket.write_all(&out).await;
        }
        tracing::warn!(
            %peer,
            %calling_ae,
            "DICOM association refused: too many associations at once"
        );
    }
    let _ = socket.shutdown().await;
}

/// How an association ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Released,
    AbortedByPeer,
    AbortedByUs,
    Dropped,
    TimedOut,
    Shutdown,
}

impl Ending {
    fn as_str(self) -> &'static str {
        match self {
            Ending::Released => "released",
            Ending::AbortedByPeer => "aborted by peer",
            Ending::AbortedByUs => "aborted (protocol error)",
            Ending::Dropped => "connection dropped",
            Ending::TimedOut => "timed out",
            Ending::Shutdown => "server shutting down",
        }
    }
}

/// Counts for the log line at the end of an association.
#[derive(Debug, Default)]
struct Tally {
    stored: u64,
    duplicates: u64,
    refused: u64,
    echoes: u64,
    bytes: u64,
}

/// A DIMSE message being assembled from P-DATA fragments.
#[derive(Debug, Default)]
struct Assembly {
    context_id: u8,
    command: Vec<u8>,
    parsed: Option<CommandSet>,
    data: Vec<u8>,
    data_bytes: usize,
    too_large: bool,
}

async fn serve_association(
    socket: TcpStream,
    peer: SocketAddr,
    context: &Context,
    mut stop: watch::Receiver<bool>,
) {
    let started = Instant::now();
    // A peer gets a short while to ask for an association (it holds a slot meanwhile).
    let establish = tokio::time::timeout(REQUEST_TIMEOUT, context.options.establish_async(socket));
    let Ok(established) = establish.await else {
        tracing::warn!(%peer, "DICOM peer sent no association request in time");
        metrics::counter!("irflow_dicom_associations_total", "outcome" => "failed").increment(1);
        return;
    };
    let mut association = match established {
        Ok(a) => a,
        Err(UlError::Rejected { association_rj, .. }) => {
            tracing::warn!(%peer, reason = %association_rj.source, "DICOM association rejected");
            metrics::counter!("irflow_dicom_associations_total", "outcome" => "rejected")
                .increment(1);
            return;
        }
        Err(e) => {
            let problem = ul_error_label(&e);
            tracing::warn!(%peer, problem, "DICOM association not established");
            metrics::counter!("irflow_dicom_associations_total", "outcome" => "failed")
                .increment(1);
            return;
        }
    };
    let calling_ae = association.peer_ae_title().trim().to_owned();
    let accepted = association
        .presentation_contexts()
        .iter()
        .filter(|pc| pc.reason == PresentationContextResultReason::Acceptance)
        .count();
    tracing::info!(%peer, %calling_ae, accepted_contexts = accepted, "DICOM association accepted");
    let mut batch = Batch::new(&calling_ae);
    let mut tally = Tally::default();
    let mut message = Assembly::default();
    let ending = loop {
        let pdu = tokio::select! {
            pdu = association.receive() => pdu,
            _ = stop.changed() => {
                let _ = send_abort(&mut association).await;
                break Ending::Shutdown;
            }
        };
        match pdu {
            Ok(Pdu::PData { data }) => {
                let mut failed = false;
                for pdv in data {
                    match on_fragment(
                        pdv,
                        &mut message,
                        context,
                        &mut association,
                        &mut batch,
                        &mut tally,
                    )
                    .await
                    {
                        Ok(()) => {}
                        Err(Fault::Protocol(what)) => {
                            tracing::warn!(%peer, %calling_ae, problem = what, "DICOM protocol error; aborting the association");
                            let _ = send_abort(&mut association).await;
                            failed = true;
                            break;
                        }
                        Err(Fault::Send) => {
                            failed = true;
                            break;
                        }
                    }
                }
                if failed {
                    break Ending::AbortedByUs;
                }
            }
            Ok(Pdu::ReleaseRQ) => {
                let _ = association.send(&Pdu::ReleaseRP).await;
                break Ending::Released;
            }
            Ok(Pdu::AbortRQ { .. }) => break Ending::AbortedByPeer,
            Ok(_) => {
                tracing::warn!(%peer, %calling_ae, "unexpected PDU on an established DICOM association; aborting");
                let _ = send_abort(&mut association).await;
                break Ending::AbortedByUs;
            }
            Err(UlError::Timeout { .. }) => {
                let _ = send_abort(&mut association).await;
                break Ending::TimedOut;
            }
            Err(UlError::ReceivePdu { source, .. })
                if !matches!(source, dicom_ul::pdu::ReadError::ReadPdu { .. }) =>
            {
                tracing::warn!(%peer, %calling_ae, "unreadable or oversized PDU; aborting the association");
                let _ = send_abort(&mut association).await;
                break Ending::AbortedByUs;
            }
            Err(_) => break Ending::Dropped,
        }
    };
    // A message cut off by the ending is discarded whole: nothing of it is stored.
    let cut_off = message.parsed.is_some() || !message.command.is_empty();
    if cut_off {
        // What arrived of it may say which study it belonged to.
        let part_of = crate::imaging::PartOf::of_bytes(&message.data);
        batch.note_refused(&part_of);
    }
    // An association that did not end with a release may not have brought everything
    // the sender meant to send: its studies wait for staff (nothing half-attached).
    if ending != Ending::Released {
        batch.gaps.interrupted = Some(format!(
            "the DICOM association ended before the sender finished ({})",
            ending.as_str()
        ));
    }
    let reconciled = batch.finish(context).await;
    let secs = started.elapsed().as_secs_f64();
    tracing::info!(
        %peer,
        %calling_ae,
        ending = ending.as_str(),
        stored = tally.stored,
        duplicates = tally.duplicates,
        refused = tally.refused,
        echoes = tally.echoes,
        cut_off,
        bytes = tally.bytes,
        seconds = secs,
        studies = reconciled,
        "DICOM association ended"
    );
    metrics::counter!("irflow_dicom_associations_total", "outcome" => ending.as_str()).increment(1);
}

/// A short description of an association-layer error. Never the error's own text:
/// some variants print the PDU received, which may hold patient data.
fn ul_error_label(e: &UlError) -> &'static str {
    match e {
        UlError::Rejected { .. } => "rejected",
        UlError::ReceivePdu { .. } => "unreadable PDU",
        UlError::UnexpectedPdu { .. } => "unexpected PDU",
        UlError::UnknownPdu { .. } => "unknown PDU type",
        UlError::Timeout { .. } => "timed out",
        UlError::ConnectionClosed { .. } => "connection closed",
        UlError::WireRead { .. } | UlError::WireSend { .. } => "connection error",
        UlError::MissingAbstractSyntax { .. } => "no abstract syntax configured",
        _ => "association error",
    }
}

/// Why an association must end early.
#[derive(Debug)]
enum Fault {
    /// The peer broke the protocol (the message is named, never its content).
    Protocol(&'static str),
    /// A response could not be sent (the connection is gone).
    Send,
}

async fn send_abort(association: &mut AsyncServerAssociation<TcpStream>) -> Result<(), UlError> {
    association
        .send(&Pdu::AbortRQ {
            source: AbortRQSource::ServiceProvider(
                AbortRQServiceProviderReason::ReasonNotSpecified,
            ),
        })
        .await
}

/// Takes one P-DATA fragment; dispatches a message once it is whole.
async fn on_fragment(
    pdv: PDataValue,
    message: &mut Assembly,
    context: &Context,
    association: &mut AsyncServerAssociation<TcpStream>,
    batch: &mut Batch,
    tally: &mut Tally,
) -> Result<(), Fault> {
    match pdv.value_type {
        PDataValueType::Command => {
            if message.parsed.is_some() {
                return Err(Fault::Protocol(
                    "a command arrived before the previous data set ended",
                ));
            }
            if message.command.is_empty() {
                message.context_id = pdv.presentation_context_id;
            } else if message.context_id != pdv.presentation_context_id {
                return Err(Fault::Protocol(
                    "a command changed presentation context midway",
                ));
            }
            if message.command.len() + pdv.data.len() > MAX_COMMAND_BYTES {
                return Err(Fault::Protocol("a command set is too large"));
            }
            message.command.extend_from_slice(&pdv.data);
            if !pdv.is_last {
                return Ok(());
            }
            let parsed = CommandSet::parse(&message.command).map_err(Fault::Protocol)?;
            message.command.clear();
            if parsed.has_dataset {
                message.parsed = Some(parsed);
                return Ok(());
            }
            let context_id = message.context_id;
            let (status, comment) = match parsed.command_field {
                command::C_ECHO_RQ => {
                    tally.echoes += 1;
                    (status::SUCCESS, None)
                }
                command::C_STORE_RQ => (
                    status::CANNOT_UNDERSTAND,
                    Some("C-STORE without a data set".to_owned()),
                ),
                _ => (
                    status::UNRECOGNIZED_OPERATION,
                    Some("irflow only receives (C-STORE) and answers C-ECHO".to_owned()),
                ),
            };
            respond(association, context_id, &parsed, status, comment.as_deref()).await
        }
        PDataValueType::Data => {
            if message.parsed.is_none() {
                return Err(Fault::Protocol("a data set arrived without a command"));
            }
            if pdv.presentation_context_id != message.context_id {
                return Err(Fault::Protocol(
                    "a data set arrived on another presentation context",
                ));
            }
            message.data_bytes = message.data_bytes.saturating_add(pdv.data.len());
            if message.data_bytes > context.config.max_instance_bytes {
                // Keep reading (to answer properly) but stop keeping the bytes.
                message.too_large = true;
                message.data = Vec::new();
            } else if message.data.is_empty() {
                message.data = pdv.data;
            } else {
                message.data.extend_from_slice(&pdv.data);
            }
            if !pdv.is_last {
                return Ok(());
            }
            let context_id = message.context_id;
            let data = std::mem::take(&mut message.data);
            let too_large = std::mem::replace(&mut message.too_large, false);
            let size = std::mem::replace(&mut message.data_bytes, 0);
            let Some(parsed) = message.parsed.take() else {
                return Err(Fault::Protocol("a data set arrived without a command"));
            };
            tally.bytes += size as u64;
            let outcome = if parsed.command_field != command::C_STORE_RQ {
                Stored::Refused(
                    status::UNRECOGNIZED_OPERATION,
                    "irflow only receives (C-STORE) and answers C-ECHO".to_owned(),
                )
            } else if too_large {
                batch.note_refused(&crate::imaging::PartOf::Unknown);
                Stored::Refused(
                    status::OUT_OF_RESOURCES,
                    format!(
                        "instance larger than the limit of {} MB",
                        context.config.max_instance_bytes / (1024 * 1024)
                    ),
                )
            } else {
                store(context, association, context_id, &parsed, data, batch).await
            };
            let (status, comment) = match outcome {
                Stored::New => {
                    tally.stored += 1;
                    (status::SUCCESS, None)
                }
                Stored::Duplicate => {
                    tally.duplicates += 1;
                    (status::SUCCESS, None)
                }
                Stored::Refused(status, comment) => {
                    tally.refused += 1;
                    (status, Some(comment))
                }
            };
            metrics::counter!("irflow_dicom_instances_total", "status" => status_label(status))
                .increment(1);
            respond(association, context_id, &parsed, status, comment.as_deref()).await
        }
    }
}

/// Stores one received instance.
async fn store(
    context: &Context,
    association: &AsyncServerAssociation<TcpStream>,
    context_id: u8,
    parsed: &CommandSet,
    data: Vec<u8>,
    batch: &mut Batch,
) -> Stored {
    let Some(pc) = association
        .presentation_contexts()
        .iter()
        .find(|pc| pc.id == context_id && pc.reason == PresentationContextResultReason::Acceptance)
    else {
        batch.note_refused(&crate::imaging::PartOf::of_bytes(&data));
        return Stored::Refused(
            status::SOP_CLASS_NOT_SUPPORTED,
            "no accepted presentation context with this id".to_owned(),
        );
    };
    let sop_class = parsed.affected_sop_class.as_str();
    let sop_instance = parsed.affected_sop_instance.as_str();
    if sop_class != pc.abstract_syntax.trim_end_matches(['\0', ' ']) {
        batch.note_refused(&crate::imaging::PartOf::Unknown);
        return Stored::Refused(
            status::SOP_CLASS_NOT_SUPPORTED,
            "SOP class differs from the presentation context's".to_owned(),
        );
    }
    if sop_instance.is_empty() {
        batch.note_refused(&crate::imaging::PartOf::Unknown);
        return Stored::Refused(
            status::CANNOT_UNDERSTAND,
            "no Affected SOP Instance UID".to_owned(),
        );
    }
    let ts = pc.transfer_syntax.trim_end_matches(['\0', ' ']);
    let part10 = match irflow_dicom::to_part10(&data, ts, sop_class, sop_instance) {
        Ok(p) => p,
        Err(e) => {
            batch.note_refused(&crate::imaging::PartOf::Unknown);
            return Stored::Refused(status::CANNOT_UNDERSTAND, e.to_string());
        }
    };
    drop(data);
    batch.store(context, part10, sop_instance).await
}

fn status_label(status: u16) -> &'static str {
    match status {
        status::SUCCESS => "success",
        status::OUT_OF_RESOURCES => "out of resources",
        status::PROCESSING_FAILURE => "processing failure",
        status::SOP_CLASS_NOT_SUPPORTED => "sop class not supported",
        status::DATASET_DOES_NOT_MATCH => "data set does not match",
        status::INVALID_SOP_INSTANCE => "invalid sop instance",
        status::UNRECOGNIZED_OPERATION => "unrecognized operation",
        _ => "cannot understand",
    }
}

async fn respond(
    association: &mut AsyncServerAssociation<TcpStream>,
    context_id: u8,
    request: &CommandSet,
    status: u16,
    comment: Option<&str>,
) -> Result<(), Fault> {
    let body = request.response(status, comment);
    association
        .send(&Pdu::PData {
            data: vec![PDataValue {
                presentation_context_id: context_id,
                value_type: PDataValueType::Command,
                is_last: true,
                data: body,
            }],
        })
        .await
        .map_err(|_| Fault::Send)
}

/// The parts of a DIMSE request's command set irflow uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CommandSet {
    command_field: u16,
    message_id: u16,
    affected_sop_class: String,
    affected_sop_instance: String,
    has_dataset: bool,
}

impl CommandSet {
    /// Reads a command set (group 0000, implicit VR little endian, PS3.7 6.3.1).
    fn parse(bytes: &[u8]) -> Result<Self, &'static str> {
        let mut out = CommandSet::default();
        let mut command_field = None;
        let mut message_id = None;
        let mut dataset_type = None;
        let mut rest = bytes;
        while !rest.is_empty() {
            let (header, after) = rest
                .split_at_checked(8)
                .ok_or("a command set element is truncated")?;
            let group = u16::from_le_bytes([header[0], header[1]]);
            let element = u16::from_le_bytes([header[2], header[3]]);
            let length = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
            let length =
                usize::try_from(length).map_err(|_| "a command set element is too long")?;
            let (value, after) = after
                .split_at_checked(length)
                .ok_or("a command set element is truncated")?;
            rest = after;
            if group != 0x0000 {
                return Err("a command set holds an element outside group 0000");
            }
            match element {
                0x0002 => out.affected_sop_class = uid_text(value),
                0x0100 => command_field = Some(us(value)?),
                0x0110 => message_id = Some(us(value)?),
                0x0800 => dataset_type = Some(us(value)?),
                0x1000 => out.affected_sop_instance = uid_text(value),
                _ => {}
            }
        }
        out.command_field = command_field.ok_or("a command set has no Command Field")?;
        out.message_id = message_id.ok_or("a command set has no Message ID")?;
        out.has_dataset = dataset_type.ok_or("a command set has no Command Data Set Type")?
            != command::NO_DATASET;
        Ok(out)
    }

    /// The response to this request, with a status and (for failures) a comment.
    fn response(&self, status: u16, comment: Option<&str>) -> Vec<u8> {
        let mut body = Vec::with_capacity(256);
        if !self.affected_sop_class.is_empty() {
            put_text(&mut body, 0x0002, self.affected_sop_class.as_bytes(), 0);
        }
        put_us(&mut body, 0x0100, self.command_field | command::RESPONSE);
        put_us(&mut body, 0x0120, self.message_id);
        put_us(&mut body, 0x0800, command::NO_DATASET);
        put_us(&mut body, 0x0900, status);
        if let Some(comment) = comment {
            // Error Comment is LO: at most 64 characters, ASCII here.
            let text: String = comment
                .chars()
                .filter(|c| c.is_ascii() && !c.is_ascii_control() && *c != '\\')
                .take(64)
                .collect();
            put_text(&mut body, 0x0902, text.as_bytes(), b' ');
        }
        if !self.affected_sop_instance.is_empty() {
            put_text(&mut body, 0x1000, self.affected_sop_instance.as_bytes(), 0);
        }
        let mut out = Vec::with_capacity(body.len() + 12);
        out.extend_from_slice(&[0, 0, 0, 0, 4, 0, 0, 0]);
        out.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_le_bytes());
        out.extend_from_slice(&body);
        out
    }
}

fn uid_text(value: &[u8]) -> String {
    String::from_utf8_lossy(value)
        .trim_end_matches(['\0', ' '])
        .trim_start()
        .to_owned()
}

fn us(value: &[u8]) -> Result<u16, &'static str> {
    match value {
        [a, b] => Ok(u16::from_le_bytes([*a, *b])),
        _ => Err("a command set number has the wrong length"),
    }
}

fn put_us(out: &mut Vec<u8>, element: u16, value: u16) {
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&2u32.to_le_bytes());
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_text(out: &mut Vec<u8>, element: u16, value: &[u8], pad: u8) {
    let padded = value.len() + value.len() % 2;
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&element.to_le_bytes());
    out.extend_from_slice(&u32::try_from(padded).unwrap_or(0).to_le_bytes());
    out.extend_from_slice(value);
    if value.len() % 2 == 1 {
        out.push(pad);
    }
}

/// One association's ingest batch: every instance is stored and indexed as it
/// arrives; matching runs once, when the association ends however it ends.
#[derive(Debug)]
struct Batch {
    actor: Actor,
    source: ImagingSource,
    received: u64,
    indexed: u64,
    /// Instances refused or cut off, and how the association ended: a study that may
    /// lack some is not attached automatically.
    gaps: irflow_store::BatchGaps,
}

impl Batch {
    fn new(calling_ae: &str) -> Self {
        Self {
            actor: dicom_actor(calling_ae),
            source: ImagingSource::new(SourceKind::Cstore).from_ae(calling_ae),
            received: 0,
            indexed: 0,
            gaps: irflow_store::BatchGaps::default(),
        }
    }

    /// Counts an instance that was refused or cut off against its study.
    fn note_refused(&mut self, part_of: &crate::imaging::PartOf) {
        match part_of {
            crate::imaging::PartOf::Study(uid) => self.gaps.add(Some(uid)),
            crate::imaging::PartOf::Unknown => self.gaps.add(None),
            crate::imaging::PartOf::Nothing => {}
        }
    }

    /// Stores one Part 10 file whose request announced `sop_instance`; returns the
    /// C-STORE status, an error comment, and whether it was already on file.
    async fn store(&mut self, context: &Context, part10: Vec<u8>, sop_instance: &str) -> Stored {
        self.received += 1;
        let file = Unpacked {
            name: format!("C-STORE #{}", self.received),
            bytes: part10,
        };
        let meta = match irflow_dicom::read_meta(&file.bytes) {
            Ok(meta) => meta,
            Err(e) => {
                self.note_refused(&crate::imaging::PartOf::of_bytes(&file.bytes));
                return Stored::Refused(status::CANNOT_UNDERSTAND, e.to_string());
            }
        };
        // The data set must be the instance the request announced: a sender that
        // labels one instance as another would have it stored under the wrong name.
        if meta.sop_instance_uid != sop_instance {
            self.note_refused(&crate::imaging::PartOf::Study(
                meta.study_instance_uid.clone(),
            ));
            return Stored::Refused(
                status::INVALID_SOP_INSTANCE,
                "the data set's SOP Instance UID is not the Affected SOP Instance UID".to_owned(),
            );
        }
        match crate::imaging::ingest_read(&context.state, &self.actor, &file, &meta, &self.source)
            .await
        {
            Ok(FileResult::Stored { .. }) => {
                self.indexed += 1;
                Stored::New
            }
            Ok(FileResult::Duplicate { .. }) => {
                self.indexed += 1;
                Stored::Duplicate
            }
            Ok(FileResult::Refused { reason, part_of }) => {
                self.note_refused(&part_of);
                Stored::Refused(status::CANNOT_UNDERSTAND, reason)
            }
            Err(e) => {
                self.note_refused(&crate::imaging::PartOf::Study(
                    meta.study_instance_uid.clone(),
                ));
                tracing::error!(
                    calling_ae = self.source.calling_ae.as_deref().unwrap_or(""),
                    error = %e,
                    "a received DICOM instance could not be stored"
                );
                Stored::Refused(
                    status::PROCESSING_FAILURE,
                    "irflow could not store the instance; try again later".to_owned(),
                )
            }
        }
    }

    /// Matches the batch's studies to cases or queues them; returns how many studies.
    async fn finish(self, context: &Context) -> usize {
        if self.indexed == 0 {
            return 0;
        }
        match crate::imaging::finish_batch(&context.state, &self.actor, &self.source, &self.gaps)
            .await
        {
            Ok(studies) => studies.len(),
            Err(e) => {
                // The instances are stored and indexed; their studies wait in the
                // queue (a study is never attached without reconciliation).
                tracing::error!(
                    calling_ae = self.source.calling_ae.as_deref().unwrap_or(""),
                    error = %e,
                    "matching the studies of a DICOM association failed"
                );
                0
            }
        }
    }
}

/// What happened to one received instance.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Stored {
    New,
    Duplicate,
    Refused(u16, String),
}

/// The actor recorded for instances received over DICOM.
pub fn dicom_actor(calling_ae: &str) -> Actor {
    let mut actor = Actor::system("dicom");
    actor.client = Some(format!("AE {calling_ae}"));
    actor
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(elements: &[(u16, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (element, value) in elements {
            out.extend_from_slice(&0u16.to_le_bytes());
            out.extend_from_slice(&element.to_le_bytes());
            out.extend_from_slice(&(value.len() as u32).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    #[test]
    fn a_store_request_is_read_and_answered() {
        let rq = request(&[
            (0x0000, &[0, 0, 0, 0]),
            (0x0002, b"1.2.840.10008.5.1.4.1.1.4\0"),
            (0x0100, &[0x01, 0x00]),
            (0x0110, &[0x07, 0x00]),
            (0x0700, &[0x00, 0x00]),
            (0x0800, &[0x00, 0x00]),
            (0x1000, b"1.2.3.4"),
        ]);
        let parsed = CommandSet::parse(&rq).expect("a valid command");
        assert_eq!(parsed.command_field, command::C_STORE_RQ);
        assert_eq!(parsed.message_id, 7);
        assert_eq!(parsed.affected_sop_class, "1.2.840.10008.5.1.4.1.1.4");
        assert_eq!(parsed.affected_sop_instance, "1.2.3.4");
        assert!(parsed.has_dataset);
        let rsp = parsed.response(status::OUT_OF_RESOURCES, Some("too big\\x"));
        let found = elements(&rsp);
        let value = |e: u16| {
            found
                .iter()
                .find(|(tag, _)| *tag == e)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("element {e:04x} in the response"))
        };
        assert_eq!(value(0x0100), 0x8001u16.to_le_bytes());
        assert_eq!(value(0x0120), 7u16.to_le_bytes());
        assert_eq!(value(0x0800), 0x0101u16.to_le_bytes());
        assert_eq!(value(0x0900), 0xA700u16.to_le_bytes());
        assert_eq!(value(0x1000), b"1.2.3.4\0");
        assert_eq!(value(0x0002), b"1.2.840.10008.5.1.4.1.1.4\0");
        // The backslash is dropped from the comment (it separates values in DICOM).
        assert_eq!(value(0x0902), b"too bigx");
        // The group length is right, and every value has an even length.
        assert_eq!(value(0x0000), ((rsp.len() - 12) as u32).to_le_bytes());
        assert!(found.iter().all(|(_, v)| v.len() % 2 == 0));
        // A C-ECHO has no SOP instance.
        let echo = CommandSet::parse(&request(&[
            (0x0002, b"1.2.840.10008.1.1\0"),
            (0x0100, &[0x30, 0x00]),
            (0x0110, &[0x01, 0x00]),
            (0x0800, &[0x01, 0x01]),
        ]))
        .expect("an echo");
        assert!(!echo.has_dataset);
        let rsp = echo.response(status::SUCCESS, None);
        assert!(elements(&rsp).iter().all(|(tag, _)| *tag != 0x1000));
    }

    fn elements(mut bytes: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        while bytes.len() >= 8 {
            let tag = u16::from_le_bytes([bytes[2], bytes[3]]);
            let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
            out.push((tag, bytes[8..8 + len].to_vec()));
            bytes = &bytes[8 + len..];
        }
        assert!(bytes.is_empty());
        out
    }

    #[test]
    fn broken_command_sets_are_errors_not_panics() {
        assert!(CommandSet::parse(&[0, 0, 0]).is_err());
        assert!(CommandSet::parse(&request(&[(0x0100, &[1])])).is_err());
        let mut long = request(&[(0x0100, &[1, 0])]);
        long[4] = 0xff;
        assert!(CommandSet::parse(&long).is_err());
        assert!(CommandSet::parse(&request(&[(0x0110, &[1, 0]), (0x0800, &[1, 1])])).is_err());
        for n in 0..200u8 {
            let junk: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37).wrapping_add(n)).collect();
            let _ = CommandSet::parse(&junk);
        }
    }

    #[test]
    fn ae_titles_are_checked() {
        assert!(check_ae_title("IRFLOW").is_ok());
        assert!(check_ae_title("").is_err());
        assert!(check_ae_title("   ").is_err());
        assert!(check_ae_title("A_VERY_LONG_AE_TITLE").is_err());
        assert!(check_ae_title("BAD\\AE").is_err());
        assert!(check_ae_title("TAB\tAE").is_err());
        let access = AeTitles {
            allowed_calling: Arc::new(vec!["PACS".to_owned()]),
        };
        assert!(
            access
                .check_access("IRFLOW", "PACS", "IRFLOW", None)
                .is_ok()
        );
        assert_eq!(
            access.check_access("IRFLOW", "PACS", "OTHER", None),
            Err(AssociationRJServiceUserReason::CalledAETitleNotRecognized)
        );
        assert_eq!(
            access.check_access("IRFLOW", "STRANGER", "IRFLOW", None),
            Err(AssociationRJServiceUserReason::CallingAETitleNotRecognized)
        );
    }
}
