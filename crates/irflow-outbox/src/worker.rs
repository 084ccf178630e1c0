//! The worker: claims due messages, re-checks reminders, sends, records attempts.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use irflow_domain::reminders::{QuietHours, ReminderKind};
use irflow_store::outbox::Channel;
use irflow_store::{AttemptResult, ClaimedMessage, MessageState, Store, StoreError};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::{OutgoingEmail, OutgoingSms, SmsGateway, Transport};

/// How a worker behaves.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its name in the attempt log and the audit log (unique per process helps).
    pub name: String,
    /// How often it looks for due messages when idle.
    pub poll_interval: Duration,
    /// Messages claimed at once.
    pub batch: u32,
    /// How long a claim holds before another worker may take the message (must be
    /// longer than the slowest send: the SMTP timeout or the SMS command's).
    pub lease: SignedDuration,
    /// No reminders in these local hours (other messages are not held back).
    pub quiet: QuietHours,
    /// The site's zone, for the quiet hours and a reminder's day.
    pub time_zone: TimeZone,
}

impl WorkerConfig {
    /// Defaults: poll every 30 seconds, 20 at a time, 10-minute leases, quiet 20:00-08:00.
    pub fn new(name: impl Into<String>, time_zone: TimeZone) -> Self {
        Self {
            name: name.into(),
            poll_interval: Duration::from_secs(30),
            batch: 20,
            lease: SignedDuration::from_mins(10),
            quiet: QuietHours::default(),
            time_zone,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Messages claimed.
    pub claimed: usize,
    /// Sent.
    pub sent: usize,
    /// Failed for now; planned again after the backoff.
    pub retrying: usize,
    /// Given up.
    pub failed: usize,
    /// Stale reminders cancelled.
    pub cancelled: usize,
    /// Reminders held back until the quiet hours end.
    pub deferred: usize,
}

type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Drains the outbox. Cheap to clone; several may run, in one process or many.
#[derive(Clone)]
pub struct Worker {
    store: Store,
    email: Arc<dyn Transport>,
    sms: Arc<dyn SmsGateway>,
    config: WorkerConfig,
    clock: Clock,
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("email", &self.email.describe())
            .field("sms", &self.sms.describe())
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A running worker; [`WorkerHandle::stop`] lets it finish the message in hand and stop.
#[derive(Debug)]
pub struct WorkerHandle {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl WorkerHandle {
    /// Asks the worker to stop and waits until it has.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Worker {
    /// A worker sending email through `email` and texts through `sms`.
    pub fn new(
        store: Store,
        email: Arc<dyn Transport>,
        sms: Arc<dyn SmsGateway>,
        config: WorkerConfig,
    ) -> Self {
        Self {
            store,
            email,
            sms,
            config,
            clock: Arc::new(Timestamp::now),
        }
    }

    /// The same worker reading the time from `clock` (tests move time on instead of sleeping).
    pub fn with_clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Where email and texts go, for people.
    pub fn describe(&self) -> String {
        format!(
            "email: {}; text messages: {}",
            self.email.describe(),
            self.sms.describe()
        )
    }

    /// One pass: claims a batch of due messages and handles each. Call again while it
    /// claims a full batch.
    pub async fn run_once(&self) -> Result<RunSummary, StoreError> {
        let now = (self.clock)();
        let claimed = self
            .store
            .claim_due_messages(&self.config.name, now, self.config.batch, self.config.lease)
            .await?;
        let mut summary = RunSummary {
            claimed: claimed.len(),
            ..RunSummary::default()
        };
        for message in claimed {
            match self.handle(&message).await {
                Ok(Handled::Sent) => summary.sent += 1,
                Ok(Handled::Retrying) => summary.retrying += 1,
                Ok(Handled::Failed) => summary.failed += 1,
                Ok(Handled::Cancelled) => summary.cancelled += 1,
                Ok(Handled::Deferred) => summary.deferred += 1,
                Ok(Handled::Lost) => {}
                Err(e) => {
                    // The lease runs out and another pass takes the message again.
                    tracing::warn!(message = message.id.get(), error = %e, "outbox: could not handle a message");
                }
            }
        }
        Ok(summary)
    }

    /// Runs passes until nothing is due.
    pub async fn drain(&self) -> Result<RunSummary, StoreError> {
        let mut total = RunSummary::default();
        loop {
            let pass = self.run_once().await?;
            total.claimed += pass.claimed;
            total.sent += pass.sent;
            total.retrying += pass.retrying;
            total.failed += pass.failed;
            total.cancelled += pass.cancelled;
            total.deferred += pass.deferred;
            if pass.claimed < self.config.batch as usize {
                return Ok(total);
            }
        }
    }

    /// Runs in the background until stopped.
    pub fn spawn(self) -> WorkerHandle {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                if *stopped.borrow() {
                    break;
                }
                match self.drain().await {
                    Ok(s) if s.claimed > 0 => tracing::info!(
                        sent = s.sent,
                        retrying = s.retrying,
                        failed = s.failed,
                        cancelled = s.cancelled,
                        deferred = s.deferred,
                        "outbox: pass done"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "outbox: could not read the outbox"),
                }
                tokio::select! {
                    _ = stopped.changed() => {}
                    () = tokio::time::sleep(self.config.poll_interval) => {}
                }
            }
            tracing::info!("outbox: worker stopped");
        });
        WorkerHandle { stop, task }
    }

    async fn handle(&self, message: &ClaimedMessage) -> Result<Handled, StoreError> {
        let worker = self.config.name.as_str();
        let now = (self.clock)();
        let reminder = ReminderKind::from_message_kind(&message.kind);
        if reminder.is_some() || message.appointment_id.is_some() {
            if let Some(reason) = self.store.stale_reason(message.id, now).await? {
                self.store
                    .cancel_claimed(worker, message.id, &reason, now)
                    .await?;
                return Ok(Handled::Cancelled);
            }
            if message.send_before.is_some_and(|before| now >= before) {
                // E.g. a hold reminder past the last-dose deadline, held back by
                // retries or the quiet hours: its words are no longer true.
                let reason = if reminder == Some(ReminderKind::HoldStart) {
                    "too late: the last dose it reminds of was due"
                } else {
                    "too late: what it says is no longer true"
                };
                self.store
                    .cancel_claimed(worker, message.id, reason, now)
                    .await?;
                return Ok(Handled::Cancelled);
            }
            let local = now.to_zoned_datetime(self.config.time_zone.clone());
            if reminder == Some(ReminderKind::HoldStart) {
                // "Today" and "tomorrow" are only true on the day it was written for.
                let due_day = message
                    .send_after
                    .to_zoned_datetime(self.config.time_zone.clone())
                    .date();
                if local.date() != due_day {
                    self.store
                        .cancel_claimed(
                            worker,
                            message.id,
                            "too late: the day the hold starts has passed",
                            now,
                        )
                        .await?;
                    return Ok(Handled::Cancelled);
                }
            }
            if self.config.quiet.contains(local.time()) {
                let until = self
                    .config
                    .quiet
                    .next_allowed(&local)
                    .map_or(now + SignedDuration::from_hours(1), |z| z.timestamp());
                return Ok(
                    if self.store.defer_claimed(worker, message.id, until).await? {
                        Handled::Deferred
                    } else {
                        Handled::Lost
                    },
                );
            }
        }
        let Some(attempt) = self.store.begin_attempt(worker, message.id, now).await? else {
            return Ok(Handled::Lost);
        };
        let result = match message.channel {
            Channel::Email => {
                let email = OutgoingEmail {
                    id: message.id,
                    kind: &message.kind,
                    to: &message.recipient,
                    subject: &message.subject,
                    text: &message.body_text,
                    html: message.body_html.as_deref(),
                };
                self.email.send(&email).await
            }
            Channel::Sms => {
                let sms = OutgoingSms {
                    id: message.id,
                    kind: &message.kind,
                    to: &message.recipient,
                    text: &message.body_text,
                };
                self.sms.send(&sms).await
            }
        };
        let result = match result {
            Ok(reply) => AttemptResult::Sent(reply),
            Err(e) => AttemptResult::Failed {
                detail: e.detail,
                permanent: e.permanent,
            },
        };
        let state = self
            .store
            .finish_attempt(worker, message.id, attempt, &result, (self.clock)())
            .await?;
        Ok(match state {
            MessageState::Sent => Handled::Sent,
            MessageState::Planned => Handled::Retrying,
            MessageState::Failed => Handled::Failed,
            MessageState::Sending | MessageState::Cancelled => Handled::Lost,
        })
    }
}

enum Handled {
    Sent,
    Retrying,
    Failed,
    Cancelled,
    Deferred,
    /// Another worker holds the message now (this one's lease ran out).
    Lost,
}
