//! Outside imaging: DICOM studies indexed by study, series and instance, matched to a
//! case's patient (by MRN, or by date of birth plus normalised name) or held in the
//! reconciliation queue for staff — never attached on a guess.

use irflow_dicom::InstanceMeta;
use irflow_domain::{Actor, CaseId, CaseState, PatientId, Role};
use jiff::Timestamp;
use jiff::civil::Date;
use sqlx::Row;
use sqlx::any::AnyRow;

use crate::audit::{AuditOutcome, NewAuditEvent};
use crate::cases::{Timeline, outcome_of, scope_of};
use crate::{Result, Store, StoreError, from_micros, micros, parse_stored};

/// How a batch of files arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// Uploaded on the web (case page or API).
    Upload,
    /// Sent by a DICOM peer over C-STORE.
    Cstore,
    /// `irflow import` (or the demo seeder).
    Import,
}

impl SourceKind {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            SourceKind::Upload => "upload",
            SourceKind::Cstore => "cstore",
            SourceKind::Import => "import",
        }
    }
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "upload" => Ok(SourceKind::Upload),
            "cstore" => Ok(SourceKind::Cstore),
            "import" => Ok(SourceKind::Import),
            other => Err(format!("unknown imaging source {other:?}")),
        }
    }
}

/// Where a batch of instances came from. One batch = one upload, one C-STORE
/// association, one import; [`Store::reconcile_batch`] matches its studies at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagingSource {
    /// How it arrived.
    pub kind: SourceKind,
    /// The case it was sent for, when known (upload on a case page, `import --case`).
    pub case_hint: Option<CaseId>,
    /// The calling AE title, for C-STORE.
    pub calling_ae: Option<String>,
    /// The batch id (random, unique).
    pub batch: String,
}

impl ImagingSource {
    /// A new batch with a fresh random id.
    pub fn new(kind: SourceKind) -> Self {
        Self {
            kind,
            case_hint: None,
            calling_ae: None,
            batch: new_batch_id(),
        }
    }

    /// Sets the case hint.
    pub fn for_case(mut self, case: CaseId) -> Self {
        self.case_hint = Some(case);
        self
    }

    /// Sets the calling AE title.
    pub fn from_ae(mut self, calling_ae: impl Into<String>) -> Self {
        self.calling_ae = Some(calling_ae.into());
        self
    }
}

fn new_batch_id() -> String {
    use rand::Rng;
    let mut bytes = [0u8; 12];
    rand::rng().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What [`Store::record_instance`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordedInstance {
    /// The instance row (the existing one for a duplicate).
    pub instance_id: i64,
    /// Its series.
    pub series_id: i64,
    /// Its study.
    pub study_id: i64,
    /// The SOP instance was already stored: nothing was written.
    pub duplicate: bool,
}

/// Where a study stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StudyState {
    /// Attached to a case.
    Matched,
    /// Waiting for staff in the reconciliation queue.
    Queued,
    /// Rejected by staff.
    Rejected,
}

impl StudyState {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            StudyState::Matched => "matched",
            StudyState::Queued => "queued",
            StudyState::Rejected => "rejected",
        }
    }
}

impl std::str::FromStr for StudyState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "matched" => Ok(StudyState::Matched),
            "queued" => Ok(StudyState::Queued),
            "rejected" => Ok(StudyState::Rejected),
            other => Err(format!("unknown study state {other:?}")),
        }
    }
}

/// How a study was matched to its case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchedBy {
    /// The DICOM Patient ID equals the patient's MRN, the family name agrees, and neither
    /// the birth date nor the sex disagrees.
    Mrn,
    /// Date of birth and normalised name.
    DobName,
    /// Attached by a member of staff from the queue.
    Staff,
}

impl MatchedBy {
    /// Stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            MatchedBy::Mrn => "mrn",
            MatchedBy::DobName => "dob_name",
            MatchedBy::Staff => "staff",
        }
    }

    /// For people.
    pub const fn label(self) -> &'static str {
        match self {
            MatchedBy::Mrn => "matched by MRN",
            MatchedBy::DobName => "matched by date of birth and name",
            MatchedBy::Staff => "attached by staff",
        }
    }
}

impl std::str::FromStr for MatchedBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mrn" => Ok(MatchedBy::Mrn),
            "dob_name" => Ok(MatchedBy::DobName),
            "staff" => Ok(MatchedBy::Staff),
            other => Err(format!("unknown match method {other:?}")),
        }
    }
}

/// What reconciling one study of a batch decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reconciled {
    /// Attached to a case now.
    Attached {
        /// The case.
        case: CaseId,
        /// How.
        matched_by: MatchedBy,
    },
    /// Was already attached (more images of a study on file).
    AlreadyAttached {
        /// The case.
        case: CaseId,
    },
    /// Waits in the reconciliation queue.
    Queued {
        /// Why, for staff (never contains patient identifiers from the file).
        reason: String,
    },
    /// Staff had rejected it; it stays rejected.
    Rejected,
}

/// The outcome for one study after a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyOutcome {
    /// The study row.
    pub study_id: i64,
    /// Its Study Instance UID.
    pub study_instance_uid: String,
    /// Instances of this study stored in the batch.
    pub new_instances: i64,
    /// What was decided.
    pub outcome: Reconciled,
}

/// What a batch is known to lack: files refused or missing (by the study they belong
/// to, when the file or a CD's DICOMDIR says), files refused whose study could not be
/// told, and an ending before the sender finished. A study with a gap is never
/// attached automatically — nothing half-attached — but waits for staff with the reason.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchGaps {
    /// Files missing or refused, by the Study Instance UID they belong to.
    pub by_study: std::collections::BTreeMap<String, usize>,
    /// Files refused that may be images of any study in the batch (they look like
    /// DICOM, or could not be looked at).
    pub unattributed: usize,
    /// Why the batch may have ended before the sender finished (a DICOM association
    /// aborted or dropped), for people.
    pub interrupted: Option<String>,
}

impl BatchGaps {
    /// Counts a file missing or refused: of this study, or of an unknown one.
    pub fn add(&mut self, study_instance_uid: Option<&str>) {
        match study_instance_uid {
            Some(uid) => *self.by_study.entry(uid.to_owned()).or_default() += 1,
            None => self.unattributed += 1,
        }
    }

    /// Nothing is known to be missing.
    pub fn is_empty(&self) -> bool {
        self.by_study.is_empty() && self.unattributed == 0 && self.interrupted.is_none()
    }

    /// Why this study may be incomplete, if it may be (for staff; no patient data).
    pub fn reason_for(&self, study_instance_uid: &str) -> Option<String> {
        let files = |n: usize| {
            if n == 1 {
                "1 file".to_owned()
            } else {
                format!("{n} files")
            }
        };
        let was = |n: usize| if n == 1 { "was" } else { "were" };
        let mut why = Vec::new();
        if let Some(n) = self
            .by_study
            .get(study_instance_uid)
            .copied()
            .filter(|n| *n > 0)
        {
            why.push(format!(
                "incomplete: {} of this study {} missing or refused",
                files(n),
                was(n)
            ));
        }
        if self.unattributed > 0 {
            let n = self.unattributed;
            why.push(format!(
                "possibly incomplete: {} sent with it {} refused and may belong to it",
                files(n),
                was(n)
            ));
        }
        if let Some(interrupted) = &self.interrupted {
            why.push(format!("possibly incomplete: {interrupted}"));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// A study waiting in the reconciliation queue that was sent for a case (shown on
/// that case, so whoever sent it sees it is waiting and why).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitingStudy {
    /// The study.
    pub summary: StudySummary,
    /// Why it waits.
    pub reason: String,
}

/// A study at a glance (case page, FHIR ImagingStudy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudySummary {
    /// The study row.
    pub id: i64,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// The case it is attached to.
    pub case_id: Option<CaseId>,
    /// Where it stands.
    pub state: StudyState,
    /// How it was matched.
    pub matched_by: Option<MatchedBy>,
    /// Study date, if the file had one.
    pub study_date: Option<Date>,
    /// Study description as in the file.
    pub study_description: String,
    /// Accession number as in the file.
    pub accession_number: String,
    /// Distinct modalities (`MR`, `CT`).
    pub modalities: Vec<String>,
    /// Distinct body parts (`LSPINE`).
    pub body_parts: Vec<String>,
    /// Series descriptions, in series-number order (they often say the region, e.g. `SAG T2 L-SPINE`).
    pub series_descriptions: Vec<String>,
    /// Number of series.
    pub series_count: i64,
    /// Number of instances.
    pub instance_count: i64,
    /// Instances known not to render.
    pub undecodable_count: i64,
    /// The local MRN recorded when attached.
    pub local_mrn: Option<String>,
    /// When the first instance arrived.
    pub received_at: Timestamp,
    /// When it was last changed.
    pub updated_at: Timestamp,
}

/// A study waiting for staff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedStudy {
    /// The study.
    pub summary: StudySummary,
    /// Patient's name as in the file.
    pub patient_name: String,
    /// Patient ID (the sending site's MRN) as in the file.
    pub patient_id: String,
    /// Birth date as in the file.
    pub birth_date: Option<Date>,
    /// Sex as in the file.
    pub sex: Option<String>,
    /// Why it waits.
    pub reason: String,
    /// The case it was sent for, if any.
    pub case_hint: Option<CaseId>,
    /// How it arrived.
    pub source: SourceKind,
    /// Calling AE title, for C-STORE.
    pub calling_ae: Option<String>,
    /// Cases that might be the right one: the open cases of patients with the same
    /// date of birth, or the same MRN, or of the hinted case (staff still decide).
    pub candidates: Vec<CandidateCase>,
}

/// A case staff might attach a queued study to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateCase {
    /// The case.
    pub case_id: CaseId,
    /// Its procedure.
    pub procedure_name: String,
    /// Its state.
    pub state: String,
    /// The patient's local MRN.
    pub mrn: Option<String>,
    /// The patient's name, `Family, Given`.
    pub patient_name: String,
    /// The patient's date of birth.
    pub date_of_birth: Date,
    /// Why it is offered: `MRN`, `date of birth and name`, `date of birth`, `case hint`.
    pub why: &'static str,
}

/// One stored instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The instance row.
    pub id: i64,
    /// SOP Instance UID.
    pub sop_instance_uid: String,
    /// SOP Class UID.
    pub sop_class_uid: String,
    /// Key of the original file in the image store.
    pub object_key: String,
    /// Size of the original file.
    pub size_bytes: u64,
    /// Transfer syntax UID.
    pub transfer_syntax: String,
    /// Instance Number.
    pub instance_number: Option<i64>,
    /// Rows.
    pub rows: Option<u32>,
    /// Columns.
    pub columns: Option<u32>,
    /// Frames (0 without pixel data).
    pub frames: u32,
    /// Why it cannot be shown, when known.
    pub render_error: Option<String>,
}

/// One series with its instances, in instance-number order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesDetail {
    /// The series row.
    pub id: i64,
    /// Series Instance UID.
    pub series_instance_uid: String,
    /// Series Number.
    pub series_number: Option<i64>,
    /// Series Description.
    pub series_description: String,
    /// Modality.
    pub modality: String,
    /// Body Part Examined.
    pub body_part: String,
    /// The instances.
    pub instances: Vec<InstanceRecord>,
}

/// A study with its patient fields (as in the file), series and instances.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StudyDetail {
    /// The study.
    pub summary: StudySummary,
    /// Patient's name as in the file.
    pub patient_name: String,
    /// Patient ID as in the file.
    pub patient_id: String,
    /// Birth date as in the file.
    pub birth_date: Option<Date>,
    /// Sex as in the file.
    pub sex: Option<String>,
    /// Why it waits (queued) or was rejected.
    pub reason: Option<String>,
    /// Series in series-number order.
    pub series: Vec<SeriesDetail>,
}

/// One instance with where it belongs (for the viewer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceLocation {
    /// The instance.
    pub instance: InstanceRecord,
    /// Its series row.
    pub series_id: i64,
    /// Its study row.
    pub study_id: i64,
    /// The study's case, if attached.
    pub case_id: Option<CaseId>,
}

/// Case states in which prior imaging still matters (before the procedure is done):
/// a study is matched automatically only to a patient's single case in one of these.
const OPEN_FOR_IMAGING: [CaseState; 11] = [
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
    CaseState::NoShow,
];

/// The longest reason staff may give for rejecting a study.
pub const MAX_REJECT_REASON_CHARS: usize = 500;

const WAITING: &str = "received; waiting to be matched";

/// May this actor work the reconciliation queue (attach, reject, see unmatched studies)?
fn is_staff(actor: &Actor) -> bool {
    match actor.role {
        None => true,
        Some(Role::Scheduler | Role::Nurse | Role::Radiologist | Role::Admin) => true,
        Some(Role::Referrer) => false,
    }
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn date_col(row: &AnyRow, column: &str) -> Result<Option<Date>> {
    let raw: Option<String> = row.try_get(column)?;
    raw.map(|d| parse_stored("date", &d)).transpose()
}

fn u32_col(row: &AnyRow, column: &str) -> Result<Option<u32>> {
    let raw: Option<i64> = row.try_get(column)?;
    Ok(raw.and_then(|n| u32::try_from(n).ok()))
}

/// The columns of a study summary; a macro so that queries stay static strings.
macro_rules! study_select {
    () => {
        "SELECT s.id, s.study_instance_uid, s.case_id, s.state, s.matched_by, s.study_date,
                s.study_description, s.accession_number, s.modalities, s.body_parts, s.local_mrn,
                s.received_at, s.updated_at, s.patient_name, s.patient_id, s.birth_date, s.sex,
                s.reason, s.case_hint, s.source_kind, s.calling_ae,
                (SELECT COUNT(*) FROM imaging_series se WHERE se.study_id = s.id) AS series_count,
                (SELECT COUNT(*) FROM imaging_instances i JOIN imaging_series se ON se.id = i.series_id
                  WHERE se.study_id = s.id) AS instance_count,
                (SELECT COUNT(*) FROM imaging_instances i JOIN imaging_series se ON se.id = i.series_id
                  WHERE se.study_id = s.id AND i.render_error IS NOT NULL) AS undecodable_count
         FROM imaging_studies s"
    };
}

fn summary_from_row(row: &AnyRow) -> Result<StudySummary> {
    let state: String = row.try_get("state")?;
    let matched_by: Option<String> = row.try_get("matched_by")?;
    let case_id: Option<i64> = row.try_get("case_id")?;
    let modalities: String = row.try_get("modalities")?;
    let body_parts: String = row.try_get("body_parts")?;
    Ok(StudySummary {
        id: row.try_get("id")?,
        study_instance_uid: row.try_get("study_instance_uid")?,
        case_id: case_id.map(CaseId::new),
        state: parse_stored("study state", &state)?,
        matched_by: matched_by
            .map(|m| parse_stored("match method", &m))
            .transpose()?,
        study_date: date_col(row, "study_date")?,
        study_description: row.try_get("study_description")?,
        accession_number: row.try_get("accession_number")?,
        modalities: split_list(&modalities),
        body_parts: split_list(&body_parts),
        series_descriptions: Vec::new(),
        series_count: row.try_get("series_count")?,
        instance_count: row.try_get("instance_count")?,
        undecodable_count: row.try_get("undecodable_count")?,
        local_mrn: row.try_get("local_mrn")?,
        received_at: from_micros(row.try_get("received_at")?)?,
        updated_at: from_micros(row.try_get("updated_at")?)?,
    })
}

fn instance_from_row(row: &AnyRow) -> Result<InstanceRecord> {
    let size: i64 = row.try_get("size_bytes")?;
    let frames: i64 = row.try_get("frames")?;
    Ok(InstanceRecord {
        id: row.try_get("id")?,
        sop_instance_uid: row.try_get("sop_instance_uid")?,
        sop_class_uid: row.try_get("sop_class_uid")?,
        object_key: row.try_get("object_key")?,
        size_bytes: u64::try_from(size).unwrap_or_default(),
        transfer_syntax: row.try_get("transfer_syntax")?,
        instance_number: row.try_get("instance_number")?,
        rows: u32_col(row, "rows_count")?,
        columns: u32_col(row, "columns_count")?,
        frames: u32::try_from(frames).unwrap_or_default(),
        render_error: row.try_get("render_error")?,
    })
}

/// Newest study date first; undated last; then newest received.
fn newest_first(studies: &mut [StudySummary]) {
    studies.sort_by(|a, b| match (a.study_date, b.study_date) {
        (Some(x), Some(y)) => y.cmp(&x).then(b.id.cmp(&a.id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => b.id.cmp(&a.id),
    });
}

/// A patient who might be the study's.
#[derive(Debug, Clone)]
struct Candidate {
    patient: i64,
    by: MatchedBy,
}

/// What the study's files say about its patient (the first instance's values).
struct StudyPatient {
    /// The name as in the file (`DOE^JOHN`).
    name: String,
    name_key: String,
    patient_id: String,
    birth_date: Option<Date>,
    /// `M`, `F`, `O` or none.
    sex: Option<String>,
}

/// What disagrees between a study's patient and a patient on file, in words for staff
/// (never the values themselves): `None` when nothing does.
fn disagreement(
    patient: &StudyPatient,
    family: &str,
    given: &str,
    dob: Date,
    known_sex: Option<&str>,
) -> Option<String> {
    use irflow_dicom::NameAgreement;
    let mut differ = Vec::new();
    let mut no_name = false;
    match irflow_dicom::compare_names(&patient.name, family, given) {
        NameAgreement::Agrees => {}
        NameAgreement::Missing => no_name = true,
        NameAgreement::FamilyDiffers => differ.push("the family name"),
        NameAgreement::GivenDiffers => differ.push("the given name"),
    }
    if patient.birth_date.is_some_and(|b| b != dob) {
        differ.push("the date of birth");
    }
    if sex_conflicts(patient.sex.as_deref(), known_sex) {
        differ.push("the sex (against the patient's imaging on file)");
    }
    let mut out = match differ.as_slice() {
        [] => String::new(),
        [one] => format!("{one} differs"),
        [init @ .., last] => format!("{} and {last} differ", init.join(", ")),
    };
    if no_name {
        if !out.is_empty() {
            out.push_str(", and ");
        }
        out.push_str("it has no patient name to confirm the match");
    }
    (!out.is_empty()).then_some(out)
}

/// Do two recorded sexes conflict? Only `M` against `F` does; `O` or none never does.
fn sex_conflicts(a: Option<&str>, b: Option<&str>) -> bool {
    matches!((a, b), (Some("M"), Some("F")) | (Some("F"), Some("M")))
}

impl Store {
    /// Indexes one stored instance (its original already in the image store under
    /// `object_key`). Idempotent by SOP Instance UID: a second copy is reported as a
    /// duplicate and nothing is written. A new study starts in the queue ("waiting to
    /// be matched") until [`Store::reconcile_batch`] runs for the batch, so a crash in
    /// between leaves it waiting for staff, never attached on a guess.
    ///
    /// A referrer may only send images for a case they referred (`source.case_hint`).
    pub async fn record_instance(
        &self,
        actor: &Actor,
        meta: &InstanceMeta,
        object_key: &str,
        size: u64,
        source: &ImagingSource,
    ) -> Result<RecordedInstance> {
        let result = self
            .insert_instance(actor, meta, object_key, size, source)
            .await;
        if let Err(e) = &result
            && !matches!(e, StoreError::Database(_))
        {
            self.record_audit(
                NewAuditEvent::new(actor, "create", "imaging_instance", outcome_of(e))
                    .detail(format!("source={}", source.kind.as_str())),
            )
            .await?;
        }
        result.map_err(crate::cases::hide_denial)
    }

    async fn check_may_send(&self, actor: &Actor, source: &ImagingSource) -> Result<()> {
        match actor.role {
            Some(Role::Admin) => Err(StoreError::Denied(
                "administrators do not handle patients' images",
            )),
            Some(Role::Referrer) => {
                let Some(case) = source.case_hint else {
                    return Err(StoreError::Denied(
                        "a referrer sends images from the case they referred",
                    ));
                };
                let summary = self.case_summary(case).await?;
                if scope_of(actor)?.allows(summary.referrer_id) {
                    Ok(())
                } else {
                    Err(StoreError::Denied("not a case this referrer referred"))
                }
            }
            _ => {
                if let Some(case) = source.case_hint {
                    // The hinted case must exist.
                    self.case_summary(case).await?;
                }
                Ok(())
            }
        }
    }

    async fn insert_instance(
        &self,
        actor: &Actor,
        meta: &InstanceMeta,
        object_key: &str,
        size: u64,
        source: &ImagingSource,
    ) -> Result<RecordedInstance> {
        self.check_may_send(actor, source).await?;
        let now = Timestamp::now();
        let mut tx = self.pool.begin().await?;
        // Already on file? Then nothing changes.
        let existing = sqlx::query(self.sql(
            "SELECT i.id, i.series_id, se.study_id FROM imaging_instances i
             JOIN imaging_series se ON se.id = i.series_id WHERE i.sop_instance_uid = ?",
        ))
        .bind(meta.sop_instance_uid.clone())
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Ok(RecordedInstance {
                instance_id: row.try_get(0)?,
                series_id: row.try_get(1)?,
                study_id: row.try_get(2)?,
                duplicate: true,
            });
        }
        sqlx::query(self.sql(
            "INSERT INTO imaging_batches (id, kind, case_hint, calling_ae, actor_username, created_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        ))
        .bind(source.batch.clone())
        .bind(source.kind.as_str())
        .bind(source.case_hint.map(|c| c.get()))
        .bind(source.calling_ae.clone())
        .bind(actor.username.clone())
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let created = sqlx::query(self.sql(
            "INSERT INTO imaging_studies (study_instance_uid, patient_name, patient_name_key, patient_id,
                 birth_date, sex, study_date, study_description, accession_number, modalities,
                 body_parts, state, reason, case_hint, source_kind, calling_ae, received_at, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?, ?)
             ON CONFLICT (study_instance_uid) DO NOTHING",
        ))
        .bind(meta.study_instance_uid.clone())
        .bind(meta.patient_name.clone())
        .bind(irflow_dicom::normalise_name(&meta.patient_name))
        .bind(meta.patient_id.clone())
        .bind(meta.birth_date.map(|d| d.to_string()))
        .bind(meta.sex.clone())
        .bind(meta.study_date.map(|d| d.to_string()))
        .bind(meta.study_description.clone())
        .bind(meta.accession_number.clone())
        .bind(meta.modality.clone())
        .bind(meta.body_part.clone())
        .bind(WAITING)
        .bind(source.case_hint.map(|c| c.get()))
        .bind(source.kind.as_str())
        .bind(source.calling_ae.clone())
        .bind(micros(now))
        .bind(micros(now))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let study_row = sqlx::query(
            self.sql("SELECT id, state FROM imaging_studies WHERE study_instance_uid = ?"),
        )
        .bind(meta.study_instance_uid.clone())
        .fetch_one(&mut *tx)
        .await?;
        let study_id: i64 = study_row.try_get(0)?;
        let study_state: String = study_row.try_get(1)?;
        if !created {
            // More of a study already on file: a rejected one comes back to the queue for
            // staff (never matched automatically again); a queued one takes the newest hint.
            sqlx::query(self.sql(
                "UPDATE imaging_studies
                 SET state = CASE WHEN state = 'rejected' THEN 'queued' ELSE state END,
                     reason = CASE WHEN state = 'rejected'
                                   THEN 'more images arrived after staff rejected it' ELSE reason END,
                     case_hint = CASE WHEN state = 'queued' THEN COALESCE(?, case_hint) ELSE case_hint END,
                     updated_at = ?
                 WHERE id = ?",
            ))
            .bind(source.case_hint.map(|c| c.get()))
            .bind(micros(now))
            .bind(study_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(self.sql(
            "INSERT INTO imaging_series (study_id, series_instance_uid, modality, body_part,
                 series_description, series_number, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (series_instance_uid) DO NOTHING",
        ))
        .bind(study_id)
        .bind(meta.series_instance_uid.clone())
        .bind(meta.modality.clone())
        .bind(meta.body_part.clone())
        .bind(meta.series_description.clone())
        .bind(meta.series_number)
        .bind(micros(now))
        .execute(&mut *tx)
        .await?;
        let series_row = sqlx::query(
            self.sql("SELECT id, study_id FROM imaging_series WHERE series_instance_uid = ?"),
        )
        .bind(meta.series_instance_uid.clone())
        .fetch_one(&mut *tx)
        .await?;
        let series_id: i64 = series_row.try_get(0)?;
        let series_study: i64 = series_row.try_get(1)?;
        if series_study != study_id {
            return Err(StoreError::Invalid(
                "its series UID belongs to another study on file (the file is inconsistent)"
                    .to_owned(),
            ));
        }
        let render_error = irflow_dicom::known_render_problem(meta);
        let inserted = sqlx::query_scalar::<_, i64>(self.sql(
            "INSERT INTO imaging_instances (series_id, sop_instance_uid, sop_class_uid, object_key,
                 size_bytes, transfer_syntax, instance_number, rows_count, columns_count, frames,
                 render_error, batch_id, received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING id",
        ))
        .bind(series_id)
        .bind(meta.sop_instance_uid.clone())
        .bind(meta.sop_class_uid.clone())
        .bind(object_key.to_owned())
        .bind(i64::try_from(size).unwrap_or(i64::MAX))
        .bind(meta.transfer_syntax.clone())
        .bind(meta.instance_number)
        .bind(meta.rows.map(i64::from))
        .bind(meta.columns.map(i64::from))
        .bind(i64::from(meta.frames))
        .bind(render_error)
        .bind(source.batch.clone())
        .bind(micros(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(instance_id) = inserted else {
            // Another process stored the same instance a moment ago.
            drop(tx);
            let row = sqlx::query(self.sql(
                "SELECT i.id, i.series_id, se.study_id FROM imaging_instances i
                 JOIN imaging_series se ON se.id = i.series_id WHERE i.sop_instance_uid = ?",
            ))
            .bind(meta.sop_instance_uid.clone())
            .fetch_one(&self.pool)
            .await?;
            return Ok(RecordedInstance {
                instance_id: row.try_get(0)?,
                series_id: row.try_get(1)?,
                study_id: row.try_get(2)?,
                duplicate: true,
            });
        };
        if created {
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "create", "imaging_study", AuditOutcome::Success)
                    .entity(study_id)
                    .detail(format!(
                        "source={} state={study_state}",
                        source.kind.as_str()
                    )),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(RecordedInstance {
            instance_id,
            series_id,
            study_id,
            duplicate: false,
        })
    }

    /// Matches the studies that received instances in `batch`: a study whose patient is
    /// exactly one patient on file (by MRN with no conflicting birth date, or by date of
    /// birth plus normalised name) who has exactly one open case — or whose case hint's
    /// patient is that one patient — is attached; anything else waits in the queue with
    /// the reason. Studies already attached stay attached; rejected ones stay rejected.
    pub async fn reconcile_batch(&self, actor: &Actor, batch: &str) -> Result<Vec<StudyOutcome>> {
        self.reconcile_batch_with_gaps(actor, batch, &BatchGaps::default())
            .await
    }

    /// [`Store::reconcile_batch`] knowing what the batch lacks: a study with files
    /// missing or refused (or that may have them) is never attached automatically;
    /// it waits for staff with the reason, and with the case it would have matched.
    pub async fn reconcile_batch_with_gaps(
        &self,
        actor: &Actor,
        batch: &str,
        gaps: &BatchGaps,
    ) -> Result<Vec<StudyOutcome>> {
        let batch_row = sqlx::query(self.sql("SELECT case_hint FROM imaging_batches WHERE id = ?"))
            .bind(batch.to_owned())
            .fetch_optional(&self.pool)
            .await?;
        let Some(batch_row) = batch_row else {
            // Nothing new was stored in this batch (all duplicates or all refused).
            return Ok(Vec::new());
        };
        let batch_hint: Option<i64> = batch_row.try_get(0)?;
        let rows = sqlx::query(self.sql(
            "SELECT se.study_id, COUNT(*) AS n FROM imaging_instances i
             JOIN imaging_series se ON se.id = i.series_id
             WHERE i.batch_id = ? GROUP BY se.study_id ORDER BY se.study_id",
        ))
        .bind(batch.to_owned())
        .fetch_all(&self.pool)
        .await?;
        let mut outcomes = Vec::with_capacity(rows.len());
        for row in rows {
            let study_id: i64 = row.try_get(0)?;
            let new_instances: i64 = row.try_get(1)?;
            self.refresh_study_lists(study_id).await?;
            let uid: String = sqlx::query_scalar(
                self.sql("SELECT study_instance_uid FROM imaging_studies WHERE id = ?"),
            )
            .bind(study_id)
            .fetch_one(&self.pool)
            .await?;
            let outcome = self
                .reconcile_study(
                    actor,
                    study_id,
                    batch_hint.map(CaseId::new),
                    gaps.reason_for(&uid),
                )
                .await?;
            outcomes.push(StudyOutcome {
                study_id,
                study_instance_uid: uid,
                new_instances,
                outcome,
            });
        }
        Ok(outcomes)
    }

    /// Recomputes a study's modality and body-part lists from its series.
    async fn refresh_study_lists(&self, study_id: i64) -> Result<()> {
        let rows =
            sqlx::query(self.sql(
                "SELECT modality, body_part FROM imaging_series WHERE study_id = ? ORDER BY id",
            ))
            .bind(study_id)
            .fetch_all(&self.pool)
            .await?;
        let mut modalities: Vec<String> = Vec::new();
        let mut parts: Vec<String> = Vec::new();
        for row in rows {
            let m: String = row.try_get(0)?;
            let b: String = row.try_get(1)?;
            let m = m.replace(',', " ");
            let b = b.replace(',', " ");
            if !m.is_empty() && !modalities.contains(&m) {
                modalities.push(m);
            }
            if !b.is_empty() && !parts.contains(&b) {
                parts.push(b);
            }
        }
        sqlx::query(
            self.sql("UPDATE imaging_studies SET modalities = ?, body_parts = ? WHERE id = ?"),
        )
        .bind(modalities.join(","))
        .bind(parts.join(","))
        .bind(study_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reconcile_study(
        &self,
        actor: &Actor,
        study_id: i64,
        batch_hint: Option<CaseId>,
        incomplete: Option<String>,
    ) -> Result<Reconciled> {
        let row = sqlx::query(self.sql(
            "SELECT state, case_id, reason, rejected_once, decided_by, patient_name, patient_name_key,
                    patient_id, birth_date, sex, case_hint
             FROM imaging_studies WHERE id = ?",
        ))
        .bind(study_id)
        .fetch_one(&self.pool)
        .await?;
        let state: String = row.try_get("state")?;
        let state: StudyState = parse_stored("study state", &state)?;
        let case_id: Option<i64> = row.try_get("case_id")?;
        let reason: Option<String> = row.try_get("reason")?;
        let rejected_once: i64 = row.try_get("rejected_once")?;
        match state {
            StudyState::Matched => {
                return Ok(Reconciled::AlreadyAttached {
                    case: CaseId::new(case_id.unwrap_or_default()),
                });
            }
            StudyState::Rejected => return Ok(Reconciled::Rejected),
            StudyState::Queued if rejected_once == 1 => {
                return Ok(Reconciled::Queued {
                    reason: reason.unwrap_or_else(|| "rejected before: staff decide".to_owned()),
                });
            }
            StudyState::Queued => {}
        }
        let stored_hint: Option<i64> = row.try_get("case_hint")?;
        let hint = batch_hint.or(stored_hint.map(CaseId::new));
        let patient = StudyPatient {
            name: row.try_get("patient_name")?,
            name_key: row.try_get("patient_name_key")?,
            patient_id: row.try_get("patient_id")?,
            birth_date: date_col(&row, "birth_date")?,
            sex: row.try_get("sex")?,
        };
        let decision = self.decide(&patient, hint).await?;
        // Nothing half-attached: a study with files missing or refused waits for staff,
        // with what it would have matched.
        let decision = match (decision, incomplete) {
            (decision, None) => decision,
            (Ok((case, by)), Some(gap)) => Err(format!(
                "{gap}; its details match case #{case} ({}): staff check the study is whole before attaching it",
                by.label()
            )),
            (Err(reason), Some(gap)) => Err(format!("{gap}; {reason}")),
        };
        match decision {
            Ok((case, by)) => {
                match self
                    .attach(actor, study_id, case, by, AttachFrom::Queue)
                    .await
                {
                    Ok(()) => Ok(Reconciled::Attached {
                        case,
                        matched_by: by,
                    }),
                    Err(StoreError::Conflict(reason)) => Ok(Reconciled::Queued { reason }),
                    Err(e) => Err(e),
                }
            }
            Err(reason) => {
                let now = Timestamp::now();
                let mut tx = self.pool.begin().await?;
                sqlx::query(self.sql(
                    "UPDATE imaging_studies SET reason = ?, updated_at = ? WHERE id = ? AND state = 'queued'",
                ))
                .bind(reason.clone())
                .bind(micros(now))
                .bind(study_id)
                .execute(&mut *tx)
                .await?;
                self.insert_audit(
                    &mut *tx,
                    &NewAuditEvent::new(actor, "queue", "imaging_study", AuditOutcome::Success)
                        .entity(study_id)
                        .detail(reason.clone()),
                    now,
                )
                .await?;
                tx.commit().await?;
                Ok(Reconciled::Queued { reason })
            }
        }
    }

    /// The patients the study's files may name: by MRN when the family name agrees
    /// and neither the birth date nor the sex disagrees; by date of birth and the whole
    /// normalised name when the sex does not disagree. The note says why a patient
    /// whose MRN or date of birth and name matched was ruled out.
    async fn candidates(&self, patient: &StudyPatient) -> Result<(Vec<Candidate>, Option<String>)> {
        let mut found: Vec<Candidate> = Vec::new();
        let mut ruled_out: Vec<i64> = Vec::new();
        let mut note = None;
        if !patient.patient_id.is_empty() {
            let rows = sqlx::query(self.sql(
                "SELECT id, date_of_birth, family_name, given_name FROM patients WHERE mrn = ?",
            ))
            .bind(patient.patient_id.clone())
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let id: i64 = row.try_get(0)?;
                let dob: String = row.try_get(1)?;
                let dob: Date = parse_stored("date of birth", &dob)?;
                let family: String = row.try_get(2)?;
                let given: String = row.try_get(3)?;
                let known_sex = self.known_sex(id).await?;
                if let Some(why) = disagreement(patient, &family, &given, dob, known_sex.as_deref())
                {
                    note = Some(format!(
                        "its patient ID equals an MRN on file, but {why}: staff check it"
                    ));
                    ruled_out.push(id);
                    continue;
                }
                found.push(Candidate {
                    patient: id,
                    by: MatchedBy::Mrn,
                });
            }
        }
        if let Some(birth_date) = patient.birth_date
            && !patient.name_key.is_empty()
        {
            let rows =
                sqlx::query(self.sql(
                    "SELECT id, family_name, given_name FROM patients WHERE date_of_birth = ?",
                ))
                .bind(birth_date.to_string())
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let id: i64 = row.try_get(0)?;
                let family: String = row.try_get(1)?;
                let given: String = row.try_get(2)?;
                let key = irflow_dicom::normalise_name(&format!("{family}^{given}"));
                if key != patient.name_key
                    || found.iter().any(|c| c.patient == id)
                    || ruled_out.contains(&id)
                {
                    continue;
                }
                let known_sex = self.known_sex(id).await?;
                if sex_conflicts(patient.sex.as_deref(), known_sex.as_deref()) {
                    note.get_or_insert_with(|| {
                        "its date of birth and name match a patient on file, but the sex differs (against the patient's imaging on file): staff check it".to_owned()
                    });
                    continue;
                }
                found.push(Candidate {
                    patient: id,
                    by: MatchedBy::DobName,
                });
            }
        }
        Ok((found, note))
    }

    /// The patient's sex as their imaging on file records it (studies attached to
    /// their cases), when it says one thing: the patient record itself has no sex.
    async fn known_sex(&self, patient: i64) -> Result<Option<String>> {
        let rows: Vec<Option<String>> = sqlx::query_scalar(self.sql(
            "SELECT DISTINCT s.sex FROM imaging_studies s JOIN cases c ON c.id = s.case_id
             WHERE c.patient_id = ? AND s.state = 'matched' AND s.sex IN ('M', 'F')",
        ))
        .bind(patient)
        .fetch_all(&self.pool)
        .await?;
        Ok(match rows.as_slice() {
            [Some(one)] => Some(one.clone()),
            _ => None,
        })
    }

    /// The case to attach to and how, or the reason it must wait for staff.
    async fn decide(
        &self,
        patient: &StudyPatient,
        hint: Option<CaseId>,
    ) -> Result<std::result::Result<(CaseId, MatchedBy), String>> {
        let (candidates, note) = self.candidates(patient).await?;
        let hint_patient = match hint {
            Some(case) => Some(self.case_summary(case).await?.patient_id.get()),
            None => None,
        };
        let only = match candidates.as_slice() {
            [] => {
                let reason = match (hint, note) {
                    (Some(case), Some(note)) => format!("it was sent for case #{case}; {note}"),
                    (Some(case), None) => format!(
                        "it was sent for case #{case}, but its patient details match no patient on file"
                    ),
                    (None, Some(note)) => note,
                    (None, None) if patient.birth_date.is_none() => {
                        "its patient ID matches no MRN on file, and it has no date of birth to match by"
                            .to_owned()
                    }
                    (None, None) => {
                        "no patient on file matches it (by MRN, or by date of birth and name)"
                            .to_owned()
                    }
                };
                return Ok(Err(reason));
            }
            [one] => one.clone(),
            several => {
                // Say how many can take it: only a patient's open case can, and
                // duplicate records often have none.
                let mut with_case = 0;
                for c in several {
                    if !self.open_cases(PatientId::new(c.patient)).await?.is_empty() {
                        with_case += 1;
                    }
                }
                let open = match with_case {
                    0 => "none of them has an open case".to_owned(),
                    1 => "1 of them has an open case".to_owned(),
                    n => format!("{n} of them have an open case"),
                };
                return Ok(Err(format!(
                    "{} patients on file match it: staff must choose ({open})",
                    several.len()
                )));
            }
        };
        if let (Some(case), Some(hinted)) = (hint, hint_patient) {
            return Ok(if hinted == only.patient {
                Ok((case, only.by))
            } else {
                Err(format!(
                    "it was sent for case #{case}, but its patient is not that case's patient"
                ))
            });
        }
        let open = self.open_cases(PatientId::new(only.patient)).await?;
        Ok(match open.as_slice() {
            [case] => Ok((*case, only.by)),
            [] => Err("its patient is on file but has no open case".to_owned()),
            several => Err(format!(
                "its patient has {} open cases: staff must choose",
                several.len()
            )),
        })
    }

    async fn open_cases(&self, patient: PatientId) -> Result<Vec<CaseId>> {
        let rows =
            sqlx::query(self.sql("SELECT id, state FROM cases WHERE patient_id = ? ORDER BY id"))
                .bind(patient.get())
                .fetch_all(&self.pool)
                .await?;
        let mut open = Vec::new();
        for row in rows {
            let state: String = row.try_get(1)?;
            let state: CaseState = parse_stored("case state", &state)?;
            if OPEN_FOR_IMAGING.contains(&state) {
                open.push(CaseId::new(row.try_get(0)?));
            }
        }
        Ok(open)
    }

    /// Attaches in one transaction: the study row (only if still in the expected state),
    /// the local MRN, the case timeline and the audit event.
    async fn attach(
        &self,
        actor: &Actor,
        study_id: i64,
        case: CaseId,
        by: MatchedBy,
        from: AttachFrom,
    ) -> Result<()> {
        let now = Timestamp::now();
        let case_row = sqlx::query(self.sql(
            "SELECT c.state, p.mrn FROM cases c JOIN patients p ON p.id = c.patient_id WHERE c.id = ?",
        ))
        .bind(case.get())
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let case_state: String = case_row.try_get(0)?;
        let case_state: CaseState = parse_stored("case state", &case_state)?;
        let mrn: Option<String> = case_row.try_get(1)?;
        let study = sqlx::query(self.sql(
            "SELECT modalities, body_parts, study_date, study_description FROM imaging_studies WHERE id = ?",
        ))
        .bind(study_id)
        .fetch_optional(&self.pool)
        .await?
        .ok_or(StoreError::NotFound)?;
        let modalities: String = study.try_get(0)?;
        let parts: String = study.try_get(1)?;
        let date: Option<String> = study.try_get(2)?;
        let description: String = study.try_get(3)?;
        let mut tx = self.pool.begin().await?;
        let states = match from {
            AttachFrom::Queue => "queued",
            AttachFrom::Staff => "queued,rejected",
        };
        let updated = sqlx::query(self.sql(
            "UPDATE imaging_studies
             SET state = 'matched', case_id = ?, matched_by = ?, reason = NULL, local_mrn = ?,
                 decided_by = ?, decided_at = ?, updated_at = ?
             WHERE id = ? AND (state = 'queued' OR (? = 'queued,rejected' AND state = 'rejected'))",
        ))
        .bind(case.get())
        .bind(by.as_str())
        .bind(mrn)
        .bind(actor.username.clone())
        .bind(micros(now))
        .bind(micros(now))
        .bind(study_id)
        .bind(states)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() != 1 {
            return Err(StoreError::Conflict(
                "this study was attached or changed by someone else at the same moment".to_owned(),
            ));
        }
        let what = [
            split_list(&modalities).join("/"),
            if description.is_empty() {
                split_list(&parts).join("/")
            } else {
                description
            },
            date.unwrap_or_else(|| "undated".to_owned()),
        ]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(", ");
        self.insert_timeline(
            &mut tx,
            case,
            &Timeline {
                action: "imaging_attached",
                from: Some(case_state),
                to: case_state,
                reason: Some(format!("Outside imaging attached ({}): {what}", by.label())),
                deferred_until: None,
                reason_code: None,
            },
            actor,
            now,
        )
        .await?;
        self.insert_audit(
            &mut *tx,
            &NewAuditEvent::new(actor, "attach", "imaging_study", AuditOutcome::Success)
                .entity(study_id)
                .detail(format!("case={case} matched_by={}", by.as_str())),
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Studies attached to a case with their series descriptions, newest first.
    async fn studies_where_case(&self, case: CaseId) -> Result<Vec<StudySummary>> {
        let rows = sqlx::query(self.sql(concat!(study_select!(), " WHERE s.case_id = ?")))
            .bind(case.get())
            .fetch_all(&self.pool)
            .await?;
        let mut studies = rows
            .iter()
            .map(summary_from_row)
            .collect::<Result<Vec<_>>>()?;
        self.fill_series_descriptions(&mut studies).await?;
        newest_first(&mut studies);
        Ok(studies)
    }

    async fn fill_series_descriptions(&self, studies: &mut [StudySummary]) -> Result<()> {
        for study in studies {
            let rows = sqlx::query(self.sql(
                "SELECT series_description FROM imaging_series WHERE study_id = ?
                 ORDER BY COALESCE(series_number, 0), id",
            ))
            .bind(study.id)
            .fetch_all(&self.pool)
            .await?;
            study.series_descriptions = rows
                .iter()
                .map(|r| r.try_get::<String, _>(0))
                .collect::<std::result::Result<Vec<_>, _>>()?
                .into_iter()
                .filter(|d| !d.is_empty())
                .collect();
        }
        Ok(())
    }

    /// The studies attached to a case, newest study date first. Audited; a referrer
    /// sees only their own cases' (others are "not found").
    pub async fn imaging_for_case(&self, actor: &Actor, case: CaseId) -> Result<Vec<StudySummary>> {
        let result = async {
            let summary = self.case_summary(case).await?;
            if !scope_of(actor)?.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            self.studies_where_case(case).await
        }
        .await;
        let event = match &result {
            Ok(studies) => {
                NewAuditEvent::new(actor, "list", "imaging_study", AuditOutcome::Success)
                    .detail(format!("case={case} studies={}", studies.len()))
            }
            Err(e) => NewAuditEvent::new(actor, "list", "imaging_study", outcome_of(e))
                .detail(format!("case={case}")),
        };
        self.record_audit(event).await?;
        result.map_err(crate::cases::hide_denial)
    }

    /// The studies waiting in the reconciliation queue that were sent for this case
    /// (an upload from its page, `import --case`), oldest first, with why they wait.
    /// Audited; a referrer sees only their own cases' (others are "not found").
    pub async fn waiting_for_case(&self, actor: &Actor, case: CaseId) -> Result<Vec<WaitingStudy>> {
        let result = async {
            let summary = self.case_summary(case).await?;
            if !scope_of(actor)?.allows(summary.referrer_id) {
                return Err(StoreError::Denied("not a case this referrer referred"));
            }
            let rows = sqlx::query(self.sql(concat!(
                study_select!(),
                " WHERE s.state = 'queued' AND s.case_hint = ? ORDER BY s.received_at, s.id LIMIT 100"
            )))
            .bind(case.get())
            .fetch_all(&self.pool)
            .await?;
            let mut studies = rows
                .iter()
                .map(summary_from_row)
                .collect::<Result<Vec<_>>>()?;
            self.fill_series_descriptions(&mut studies).await?;
            let mut waiting = Vec::with_capacity(studies.len());
            for (summary, row) in studies.into_iter().zip(&rows) {
                let reason: Option<String> = row.try_get("reason")?;
                waiting.push(WaitingStudy {
                    summary,
                    reason: reason.unwrap_or_else(|| WAITING.to_owned()),
                });
            }
            Ok(waiting)
        }
        .await;
        let event = match &result {
            Ok(waiting) => {
                NewAuditEvent::new(actor, "list", "imaging_queue", AuditOutcome::Success)
                    .detail(format!("case={case} waiting={}", waiting.len()))
            }
            Err(e) => NewAuditEvent::new(actor, "list", "imaging_queue", outcome_of(e))
                .detail(format!("case={case}")),
        };
        self.record_audit(event).await?;
        result.map_err(crate::cases::hide_denial)
    }

    /// The studies attached to any case of a patient (FHIR ImagingStudy search), newest
    /// first. Audited; a referrer sees only studies on cases they referred.
    pub async fn imaging_for_patient(
        &self,
        actor: &Actor,
        patient: PatientId,
    ) -> Result<Vec<StudySummary>> {
        let result = async {
            let referrer = scope_of(actor)?.referrer_filter();
            let rows = sqlx::query(self.sql(concat!(
                study_select!(),
                " JOIN cases c ON c.id = s.case_id
                  WHERE c.patient_id = ? AND (CAST(? AS BIGINT) IS NULL OR c.referrer_id = ?)"
            )))
            .bind(patient.get())
            .bind(referrer)
            .bind(referrer)
            .fetch_all(&self.pool)
            .await?;
            let mut studies = rows
                .iter()
                .map(summary_from_row)
                .collect::<Result<Vec<_>>>()?;
            self.fill_series_descriptions(&mut studies).await?;
            newest_first(&mut studies);
            Ok(studies)
        }
        .await;
        let event = match &result {
            Ok(studies) => {
                NewAuditEvent::new(actor, "list", "imaging_study", AuditOutcome::Success)
                    .detail(format!("patient={patient} studies={}", studies.len()))
            }
            Err(e) => NewAuditEvent::new(actor, "list", "imaging_study", outcome_of(e))
                .detail(format!("patient={patient}")),
        };
        self.record_audit(event).await?;
        result
    }

    /// The reconciliation queue, oldest first, with candidate cases (staff only). Audited.
    pub async fn reconciliation_queue(&self, actor: &Actor) -> Result<Vec<QueuedStudy>> {
        if !is_staff(actor) {
            self.record_audit(NewAuditEvent::new(
                actor,
                "list",
                "imaging_queue",
                AuditOutcome::Denied,
            ))
            .await?;
            return Err(StoreError::Denied(
                "only staff see the imaging reconciliation queue",
            ));
        }
        let result = self.select_queue().await;
        let event = match &result {
            Ok(q) => NewAuditEvent::new(actor, "list", "imaging_queue", AuditOutcome::Success)
                .detail(format!("{} studies", q.len())),
            Err(e) => NewAuditEvent::new(actor, "list", "imaging_queue", outcome_of(e)),
        };
        self.record_audit(event).await?;
        result
    }

    async fn select_queue(&self) -> Result<Vec<QueuedStudy>> {
        let rows = sqlx::query(self.sql(concat!(
            study_select!(),
            " WHERE s.state = 'queued' ORDER BY s.received_at, s.id LIMIT 500"
        )))
        .fetch_all(&self.pool)
        .await?;
        let mut queue = Vec::with_capacity(rows.len());
        for row in &rows {
            let mut summary = vec![summary_from_row(row)?];
            self.fill_series_descriptions(&mut summary).await?;
            let Some(summary) = summary.pop() else {
                continue;
            };
            let source: String = row.try_get("source_kind")?;
            let case_hint: Option<i64> = row.try_get("case_hint")?;
            let patient_name: String = row.try_get("patient_name")?;
            let patient = StudyPatient {
                name_key: irflow_dicom::normalise_name(&patient_name),
                name: patient_name.clone(),
                patient_id: row.try_get("patient_id")?,
                birth_date: date_col(row, "birth_date")?,
                sex: row.try_get("sex")?,
            };
            let candidates = self
                .candidate_cases(&patient, case_hint.map(CaseId::new))
                .await?;
            queue.push(QueuedStudy {
                summary,
                patient_name,
                patient_id: patient.patient_id,
                birth_date: patient.birth_date,
                sex: patient.sex,
                reason: row
                    .try_get::<Option<String>, _>("reason")?
                    .unwrap_or_default(),
                case_hint: case_hint.map(CaseId::new),
                source: parse_stored("imaging source", &source)?,
                calling_ae: row.try_get("calling_ae")?,
                candidates,
            });
        }
        Ok(queue)
    }

    /// Cases staff may want: the hinted case, and the open cases of patients with the
    /// study's MRN or date of birth (name match or not).
    async fn candidate_cases(
        &self,
        patient: &StudyPatient,
        hint: Option<CaseId>,
    ) -> Result<Vec<CandidateCase>> {
        let rows = sqlx::query(self.sql(
            "SELECT c.id, c.procedure_name, c.state, p.mrn, p.family_name, p.given_name,
                    p.date_of_birth, c.patient_id
             FROM cases c JOIN patients p ON p.id = c.patient_id
             WHERE c.id = ?
                OR (? <> '' AND p.mrn = ?)
                OR (CAST(? AS TEXT) IS NOT NULL AND p.date_of_birth = ?)
             ORDER BY c.id LIMIT 50",
        ))
        .bind(hint.map(|c| c.get()).unwrap_or(-1))
        .bind(patient.patient_id.clone())
        .bind(patient.patient_id.clone())
        .bind(patient.birth_date.map(|d| d.to_string()))
        .bind(patient.birth_date.map(|d| d.to_string()))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for row in rows {
            let id = CaseId::new(row.try_get(0)?);
            let state: String = row.try_get(2)?;
            let parsed: CaseState = parse_stored("case state", &state)?;
            let is_hint = hint == Some(id);
            if !is_hint && !OPEN_FOR_IMAGING.contains(&parsed) {
                continue;
            }
            let mrn: Option<String> = row.try_get(3)?;
            let family: String = row.try_get(4)?;
            let given: String = row.try_get(5)?;
            let dob: String = row.try_get(6)?;
            let dob: Date = parse_stored("date of birth", &dob)?;
            let name_matches =
                irflow_dicom::normalise_name(&format!("{family}^{given}")) == patient.name_key;
            let why = if is_hint {
                "case hint"
            } else if mrn.as_deref() == Some(patient.patient_id.as_str()) {
                "MRN"
            } else if name_matches {
                "date of birth and name"
            } else {
                "date of birth"
            };
            out.push(CandidateCase {
                case_id: id,
                procedure_name: row.try_get(1)?,
                state,
                mrn,
                patient_name: format!("{family}, {given}"),
                date_of_birth: dob,
                why,
            });
        }
        Ok(out)
    }

    /// Attaches a queued (or rejected) study to a case (staff only), recording the
    /// local MRN; the case timeline says so. Audited.
    pub async fn attach_study(&self, actor: &Actor, study_id: i64, case: CaseId) -> Result<()> {
        let result = async {
            if !is_staff(actor) {
                return Err(StoreError::Denied(
                    "only staff attach outside imaging to cases",
                ));
            }
            let state: Option<String> =
                sqlx::query_scalar(self.sql("SELECT state FROM imaging_studies WHERE id = ?"))
                    .bind(study_id)
                    .fetch_optional(&self.pool)
                    .await?;
            match state.as_deref() {
                None => return Err(StoreError::NotFound),
                Some("matched") => {
                    return Err(StoreError::Conflict(
                        "this study is already attached to a case".to_owned(),
                    ));
                }
                _ => {}
            }
            self.attach(actor, study_id, case, MatchedBy::Staff, AttachFrom::Staff)
                .await
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "attach", "imaging_study", outcome_of(e))
                    .entity(study_id)
                    .detail(format!("case={case}")),
            )
            .await?;
        }
        result
    }

    /// Rejects a queued study with a reason (staff only): it stays stored, out of the
    /// queue, and is never matched automatically again. Audited.
    pub async fn reject_study(&self, actor: &Actor, study_id: i64, reason: &str) -> Result<()> {
        let reason = reason.trim();
        let result = async {
            if !is_staff(actor) {
                return Err(StoreError::Denied("only staff reject outside imaging"));
            }
            if reason.is_empty() {
                return Err(StoreError::Field {
                    field: "reason",
                    message: "say why the study is rejected".to_owned(),
                });
            }
            if reason.chars().count() > MAX_REJECT_REASON_CHARS {
                return Err(StoreError::Field {
                    field: "reason",
                    message: format!("at most {MAX_REJECT_REASON_CHARS} characters"),
                });
            }
            let now = Timestamp::now();
            let mut tx = self.pool.begin().await?;
            let updated = sqlx::query(self.sql(
                "UPDATE imaging_studies
                 SET state = 'rejected', reason = ?, rejected_once = 1, decided_by = ?, decided_at = ?,
                     updated_at = ?
                 WHERE id = ? AND state = 'queued'",
            ))
            .bind(reason.to_owned())
            .bind(actor.username.clone())
            .bind(micros(now))
            .bind(micros(now))
            .bind(study_id)
            .execute(&mut *tx)
            .await?;
            if updated.rows_affected() != 1 {
                let state: Option<String> =
                    sqlx::query_scalar(self.sql("SELECT state FROM imaging_studies WHERE id = ?"))
                        .bind(study_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                return Err(match state {
                    None => StoreError::NotFound,
                    Some(s) => StoreError::Conflict(format!(
                        "only a study waiting in the queue can be rejected (this one is {s})"
                    )),
                });
            }
            self.insert_audit(
                &mut *tx,
                &NewAuditEvent::new(actor, "reject", "imaging_study", AuditOutcome::Success)
                    .entity(study_id),
                now,
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        if let Err(e) = &result {
            self.record_audit(
                NewAuditEvent::new(actor, "reject", "imaging_study", outcome_of(e))
                    .entity(study_id),
            )
            .await?;
        }
        result
    }

    /// May the actor see this study? Staff: any; a referrer: those on cases they referred.
    async fn check_may_see_study(&self, actor: &Actor, case_id: Option<CaseId>) -> Result<()> {
        if is_staff(actor) {
            return Ok(());
        }
        let Some(case) = case_id else {
            return Err(StoreError::Denied("not a case this referrer referred"));
        };
        let summary = self.case_summary(case).await?;
        if scope_of(actor)?.allows(summary.referrer_id) {
            Ok(())
        } else {
            Err(StoreError::Denied("not a case this referrer referred"))
        }
    }

    /// A study with its series and instances. Audited; a referrer sees only studies on
    /// cases they referred (others are "not found").
    pub async fn study_detail(&self, actor: &Actor, study_id: i64) -> Result<StudyDetail> {
        let result = self.select_study_detail(actor, study_id).await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "imaging_study", outcome).entity(study_id),
        )
        .await?;
        result.map_err(crate::cases::hide_denial)
    }

    async fn select_study_detail(&self, actor: &Actor, study_id: i64) -> Result<StudyDetail> {
        let row = sqlx::query(self.sql(concat!(study_select!(), " WHERE s.id = ?")))
            .bind(study_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
        let mut summary = vec![summary_from_row(&row)?];
        self.check_may_see_study(actor, summary.first().and_then(|s| s.case_id))
            .await?;
        self.fill_series_descriptions(&mut summary).await?;
        let summary = summary.pop().ok_or(StoreError::NotFound)?;
        let series_rows = sqlx::query(self.sql(
            "SELECT id, series_instance_uid, series_number, series_description, modality, body_part
             FROM imaging_series WHERE study_id = ? ORDER BY COALESCE(series_number, 0), id",
        ))
        .bind(study_id)
        .fetch_all(&self.pool)
        .await?;
        let instance_rows = sqlx::query(self.sql(
            "SELECT i.id, i.series_id, i.sop_instance_uid, i.sop_class_uid, i.object_key, i.size_bytes,
                    i.transfer_syntax, i.instance_number, i.rows_count, i.columns_count, i.frames,
                    i.render_error
             FROM imaging_instances i JOIN imaging_series se ON se.id = i.series_id
             WHERE se.study_id = ? ORDER BY COALESCE(i.instance_number, 0), i.id",
        ))
        .bind(study_id)
        .fetch_all(&self.pool)
        .await?;
        let mut series = Vec::with_capacity(series_rows.len());
        for r in &series_rows {
            series.push(SeriesDetail {
                id: r.try_get("id")?,
                series_instance_uid: r.try_get("series_instance_uid")?,
                series_number: r.try_get("series_number")?,
                series_description: r.try_get("series_description")?,
                modality: r.try_get("modality")?,
                body_part: r.try_get("body_part")?,
                instances: Vec::new(),
            });
        }
        for r in &instance_rows {
            let series_id: i64 = r.try_get("series_id")?;
            let instance = instance_from_row(r)?;
            if let Some(s) = series.iter_mut().find(|s| s.id == series_id) {
                s.instances.push(instance);
            }
        }
        Ok(StudyDetail {
            summary,
            patient_name: row.try_get("patient_name")?,
            patient_id: row.try_get("patient_id")?,
            birth_date: date_col(&row, "birth_date")?,
            sex: row.try_get("sex")?,
            reason: row.try_get("reason")?,
            series,
        })
    }

    /// One instance and where it belongs (for rendering). Audited.
    pub async fn instance_detail(
        &self,
        actor: &Actor,
        instance_id: i64,
    ) -> Result<InstanceLocation> {
        let result = async {
            let row = sqlx::query(self.sql(
                "SELECT i.id, i.series_id, i.sop_instance_uid, i.sop_class_uid, i.object_key,
                        i.size_bytes, i.transfer_syntax, i.instance_number, i.rows_count,
                        i.columns_count, i.frames, i.render_error, se.study_id, s.case_id
                 FROM imaging_instances i JOIN imaging_series se ON se.id = i.series_id
                 JOIN imaging_studies s ON s.id = se.study_id WHERE i.id = ?",
            ))
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound)?;
            let case_id: Option<i64> = row.try_get("case_id")?;
            let case_id = case_id.map(CaseId::new);
            self.check_may_see_study(actor, case_id).await?;
            Ok(InstanceLocation {
                instance: instance_from_row(&row)?,
                series_id: row.try_get("series_id")?,
                study_id: row.try_get("study_id")?,
                case_id,
            })
        }
        .await;
        let outcome = result
            .as_ref()
            .map_or_else(outcome_of, |_| AuditOutcome::Success);
        self.record_audit(
            NewAuditEvent::new(actor, "read", "imaging_instance", outcome).entity(instance_id),
        )
        .await?;
        result.map_err(crate::cases::hide_denial)
    }

    /// The instance row holding a SOP Instance UID, if one does (to skip storing a
    /// duplicate's bytes). Reveals only whether an opaque UID is on file.
    pub async fn instance_id_by_sop(&self, sop_instance_uid: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            self.sql("SELECT id FROM imaging_instances WHERE sop_instance_uid = ?"),
        )
        .bind(sop_instance_uid.to_owned())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Records that an instance could not be rendered (so pages say so without trying
    /// again). Not patient data: the reason names formats, never values.
    pub async fn record_render_error(&self, instance_id: i64, error: &str) -> Result<()> {
        let error: String = error.chars().take(300).collect();
        sqlx::query(self.sql(
            "UPDATE imaging_instances SET render_error = ? WHERE id = ? AND render_error IS NULL",
        ))
        .bind(error)
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Where an attach comes from: automatic matching takes only queued studies; staff
/// may also attach a study they rejected before.
#[derive(Debug, Clone, Copy)]
enum AttachFrom {
    Queue,
    Staff,
}
