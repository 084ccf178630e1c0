//! The `[outbox]` settings and starting the outbox worker for `irflow serve` and
//! `irflow demo`.
//!
//! ```toml
//! [outbox]
//! mode = "smtp"            # or "file" (the default): messages become files in dir
//! dir = "irflow-data/outbox"
//! smtp_host = "smtp.hospital.example.org"
//! smtp_port = 587
//! smtp_username = "irflow"
//! # smtp_password: IRFLOW_SMTP_PASSWORD only (kept out of files)
//! smtp_from = "Spine Injection Service <noreply@hospital.example.org>"
//! smtp_tls = "starttls"    # "none", "starttls" or "tls" (the last two need the smtp-tls feature)
//! sms_command = ["/usr/local/bin/send-sms"]   # JSON on stdin; without it texts become files
//! poll_seconds = 30
//! quiet_hours = "20:00-08:00"
//! worker = true            # false: this process sends nothing (another one does)
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, bail};
use irflow_domain::reminders::QuietHours;
use irflow_outbox::{
    CommandSmsGateway, FileSink, SmsGateway, SmtpSettings, SmtpTransport, TlsMode, Transport,
    Worker, WorkerConfig, WorkerHandle,
};
use irflow_store::Store;
use serde::Deserialize;

/// How email leaves irflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboxMode {
    /// Every message becomes a file in the outbox directory (demo, tests, and until
    /// a mail server is configured).
    File,
    /// Email over SMTP; text messages through `sms_command` (files without one).
    Smtp,
}

/// The `[outbox]` settings.
#[derive(Clone)]
pub struct OutboxConfig {
    /// File or SMTP.
    pub mode: OutboxMode,
    /// Where files go; default `<data_dir>/outbox`.
    pub dir: Option<PathBuf>,
    /// Mail server.
    pub smtp_host: Option<String>,
    /// Its port (default 25).
    pub smtp_port: u16,
    /// Sign-in name.
    pub smtp_username: Option<String>,
    /// Password (environment only: IRFLOW_SMTP_PASSWORD).
    pub smtp_password: Option<String>,
    /// Sender address; default `<department name> <irflow@localhost>`.
    pub smtp_from: Option<String>,
    /// none, starttls or tls.
    pub smtp_tls: TlsMode,
    /// Seconds to wait for the mail server.
    pub smtp_timeout_seconds: u64,
    /// The SMS program and its arguments.
    pub sms_command: Vec<String>,
    /// How often the worker looks for due messages.
    pub poll_seconds: u64,
    /// No reminders in these local hours.
    pub quiet_hours: QuietHours,
    /// Whether this process runs a worker.
    pub worker: bool,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            mode: OutboxMode::File,
            dir: None,
            smtp_host: None,
            smtp_port: 25,
            smtp_username: None,
            smtp_password: None,
            smtp_from: None,
            smtp_tls: TlsMode::None,
            smtp_timeout_seconds: 30,
            sms_command: Vec::new(),
            poll_seconds: 30,
            quiet_hours: QuietHours::default(),
            worker: true,
        }
    }
}

impl fmt::Debug for OutboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutboxConfig")
            .field("mode", &self.mode)
            .field("dir", &self.dir)
            .field("smtp_host", &self.smtp_host)
            .field("smtp_port", &self.smtp_port)
            .field("smtp_username", &self.smtp_username)
            .field("smtp_password", &self.smtp_password.as_ref().map(|_| "***"))
            .field("smtp_from", &self.smtp_from)
            .field("smtp_tls", &self.smtp_tls)
            .field("sms_command", &self.sms_command)
            .field("poll_seconds", &self.poll_seconds)
            .field("quiet_hours", &self.quiet_hours.describe())
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

/// The `[outbox]` table of `irflow.toml`. The SMTP password is not accepted here.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileOutbox {
    mode: Option<String>,
    dir: Option<PathBuf>,
    smtp_host: Option<String>,
    smtp_port: Option<u16>,
    smtp_username: Option<String>,
    smtp_from: Option<String>,
    smtp_tls: Option<String>,
    smtp_timeout_seconds: Option<u64>,
    sms_command: Option<Vec<String>>,
    poll_seconds: Option<u64>,
    quiet_hours: Option<String>,
    worker: Option<bool>,
}

fn parse_mode(raw: &str, source: &str) -> Result<OutboxMode> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "file" | "files" => Ok(OutboxMode::File),
        "smtp" => Ok(OutboxMode::Smtp),
        other => bail!("{source}: outbox mode {other:?} is not known; use \"file\" or \"smtp\""),
    }
}

impl OutboxConfig {
    /// Applies the file's `[outbox]` table.
    pub fn apply_file(&mut self, o: FileOutbox, source: &str) -> Result<()> {
        if let Some(v) = o.mode {
            self.mode = parse_mode(&v, &format!("{source}: outbox.mode"))?;
        }
        if let Some(v) = o.dir {
            self.dir = Some(v);
        }
        if let Some(v) = o.smtp_host {
            self.smtp_host = Some(v);
        }
        if let Some(v) = o.smtp_port {
            self.smtp_port = v;
        }
        if let Some(v) = o.smtp_username {
            self.smtp_username = Some(v);
        }
        if let Some(v) = o.smtp_from {
            self.smtp_from = Some(v);
        }
        if let Some(v) = o.smtp_tls {
            self.smtp_tls = TlsMode::parse(&v)
                .map_err(|e| anyhow::anyhow!("{source}: outbox.smtp_tls: {e}"))?;
        }
        if let Some(v) = o.smtp_timeout_seconds {
            self.smtp_timeout_seconds = v;
        }
        if let Some(v) = o.sms_command {
            self.sms_command = v;
        }
        if let Some(v) = o.poll_seconds {
            self.poll_seconds = v;
        }
        if let Some(v) = o.quiet_hours {
            self.quiet_hours = QuietHours::parse(&v)
                .map_err(|e| anyhow::anyhow!("{source}: outbox.quiet_hours: {e}"))?;
        }
        if let Some(v) = o.worker {
            self.worker = v;
        }
        Ok(())
    }

    /// Applies `IRFLOW_OUTBOX_*`, `IRFLOW_SMTP_*`, `IRFLOW_SMS_COMMAND` and
    /// `IRFLOW_QUIET_HOURS` (`var` returns non-empty values only).
    pub fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = var("IRFLOW_OUTBOX_MODE") {
            self.mode = parse_mode(&v, "IRFLOW_OUTBOX_MODE")?;
        }
        if let Some(v) = var("IRFLOW_OUTBOX_DIR") {
            self.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("IRFLOW_SMTP_HOST") {
            self.smtp_host = Some(v);
        }
        if let Some(v) = var("IRFLOW_SMTP_PORT") {
            self.smtp_port = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("IRFLOW_SMTP_PORT: {v:?} is not a port number (1-65535)")
            })?;
        }
        if let Some(v) = var("IRFLOW_SMTP_USERNAME") {
            self.smtp_username = Some(v);
        }
        if let Some(v) = var("IRFLOW_SMTP_PASSWORD") {
            self.smtp_password = Some(v);
        }
        if let Some(v) = var("IRFLOW_SMTP_FROM") {
            self.smtp_from = Some(v);
        }
        if let Some(v) = var("IRFLOW_SMTP_TLS") {
            self.smtp_tls =
                TlsMode::parse(&v).map_err(|e| anyhow::anyhow!("IRFLOW_SMTP_TLS: {e}"))?;
        }
        if let Some(v) = var("IRFLOW_SMS_COMMAND") {
            self.sms_command = v.split_whitespace().map(str::to_owned).collect();
        }
        if let Some(v) = var("IRFLOW_OUTBOX_POLL_SECONDS") {
            self.poll_seconds = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("IRFLOW_OUTBOX_POLL_SECONDS: {v:?} is not a whole number")
            })?;
        }
        if let Some(v) = var("IRFLOW_QUIET_HOURS") {
            self.quiet_hours =
                QuietHours::parse(&v).map_err(|e| anyhow::anyhow!("IRFLOW_QUIET_HOURS: {e}"))?;
        }
        if let Some(v) = var("IRFLOW_OUTBOX_WORKER") {
            self.worker = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                other => bail!("IRFLOW_OUTBOX_WORKER: {other:?} is not true or false"),
            };
        }
        Ok(())
    }

    /// Checks the settings fit together.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3600).contains(&self.poll_seconds) {
            bail!("outbox.poll_seconds (IRFLOW_OUTBOX_POLL_SECONDS) must be between 1 and 3600");
        }
        if !(1..=300).contains(&self.smtp_timeout_seconds) {
            bail!("outbox.smtp_timeout_seconds must be between 1 and 300");
        }
        if self.mode == OutboxMode::Smtp {
            if self
                .smtp_host
                .as_deref()
                .is_none_or(|h| h.trim().is_empty())
            {
                bail!(
                    "outbox.mode is \"smtp\" but no mail server is set: set outbox.smtp_host (IRFLOW_SMTP_HOST), or use mode \"file\""
                );
            }
            if self.smtp_port == 0 {
                bail!("outbox.smtp_port (IRFLOW_SMTP_PORT) must be a port number (1-65535)");
            }
            if self.smtp_tls != TlsMode::None && !cfg!(feature = "smtp-tls") {
                bail!(
                    "outbox.smtp_tls is {:?}, but this irflow was built without TLS for SMTP; rebuild with `--features smtp-tls`, or use \"none\" for a relay on a trusted network",
                    self.smtp_tls.as_str()
                );
            }
            if self.smtp_password.is_some() && self.smtp_username.is_none() {
                bail!(
                    "IRFLOW_SMTP_PASSWORD is set without outbox.smtp_username (IRFLOW_SMTP_USERNAME)"
                );
            }
        }
        if let Some(from) = &self.smtp_from {
            irflow_outbox::parse_from_address(from)
                .map_err(|e| anyhow::anyhow!("outbox.smtp_from (IRFLOW_SMTP_FROM): {e}"))?;
        }
        if self
            .sms_command
            .first()
            .is_some_and(|p| p.trim().is_empty())
        {
            bail!("outbox.sms_command must start with the program to run");
        }
        Ok(())
    }

    /// The directory messages are written to in file mode.
    pub fn file_dir(&self, data_dir: &Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| data_dir.join("outbox"))
    }

    /// Builds the worker (not started): email and text transports per the settings.
    pub fn worker(
        &self,
        data_dir: &Path,
        store: Store,
        department_name: &str,
        time_zone: jiff::tz::TimeZone,
    ) -> Result<Worker> {
        let from = match &self.smtp_from {
            Some(f) => irflow_outbox::parse_from_address(f).map_err(anyhow::Error::msg)?,
            None => {
                // The department's name with a placeholder address: fine for files;
                // a real mail server needs smtp_from.
                let name: String = department_name
                    .chars()
                    .filter(|c| !"<>\"\\".contains(*c))
                    .collect();
                irflow_outbox::parse_from_address(&format!("\"{name}\" <irflow@localhost>"))
                    .or_else(|_| irflow_outbox::parse_from_address("irflow <irflow@localhost>"))
                    .map_err(anyhow::Error::msg)?
            }
        };
        let dir = self.file_dir(data_dir);
        let files = || FileSink::new(dir.clone(), from.clone()).map_err(anyhow::Error::msg);
        let email: Arc<dyn Transport> = match self.mode {
            OutboxMode::File => Arc::new(files()?),
            OutboxMode::Smtp => Arc::new(
                SmtpTransport::new(SmtpSettings {
                    host: self.smtp_host.clone().unwrap_or_default(),
                    port: self.smtp_port,
                    username: self.smtp_username.clone(),
                    password: self.smtp_password.clone(),
                    from: from.clone(),
                    tls: self.smtp_tls,
                    timeout: Duration::from_secs(self.smtp_timeout_seconds),
                })
                .map_err(anyhow::Error::msg)?,
            ),
        };
        let sms: Arc<dyn SmsGateway> = if self.sms_command.is_empty() {
            Arc::new(files()?)
        } else {
            Arc::new(
                CommandSmsGateway::new(&self.sms_command, Duration::from_secs(60))
                    .map_err(anyhow::Error::msg)?,
            )
        };
        let mut config = WorkerConfig::new(format!("pid{}", std::process::id()), time_zone);
        config.poll_interval = Duration::from_secs(self.poll_seconds);
        config.quiet = self.quiet_hours;
        Ok(Worker::new(store, email, sms, config))
    }
}

/// Starts the worker if this process runs one. Returns it (to stop on shutdown) and
/// a line saying where messages go.
pub fn start(
    config: &crate::config::Config,
    store: Store,
) -> Result<(Option<WorkerHandle>, String)> {
    if !config.outbox.worker {
        return Ok((
            None,
            "messages to patients are sent by another irflow process (outbox.worker = false)"
                .to_owned(),
        ));
    }
    let tz = jiff::tz::TimeZone::get(&config.time_zone)?;
    let worker = config
        .outbox
        .worker(&config.data_dir, store, &config.department_name, tz)?;
    let described = format!("messages to patients: {}", worker.describe());
    Ok((Some(worker.spawn()), described))
}

/// Plans reminders for every booked appointment (the demo's bookings are seeded
/// straight into the store). Returns the number of cases.
pub async fn plan_booked_reminders(
    store: &Store,
    config: &crate::config::Config,
    pack: &irflow_domain::screening::RulePack,
) -> Result<usize> {
    let state = irflow_server::AppState::new(store.clone(), config.server_config(), pack.clone())
        .map_err(anyhow::Error::msg)?;
    irflow_server::plan_reminders_for_booked_cases(&state, &irflow_domain::Actor::system("demo"))
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "could not plan the demo's reminders: {}",
                e.public_message()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn settings_come_from_the_file_and_the_environment() {
        let mut c = OutboxConfig::default();
        let file: FileOutbox = toml::from_str(
            "mode = \"smtp\"\nsmtp_host = \"mail.example.org\"\nsmtp_port = 2525\nsmtp_username = \"irflow\"\nquiet_hours = \"21:00-07:30\"\nsms_command = [\"/usr/bin/send-sms\", \"--fast\"]\n",
        )
        .expect("valid");
        c.apply_file(file, "irflow.toml").expect("applies");
        c.apply_env(&env_of(&[
            ("IRFLOW_SMTP_PASSWORD", "hunter2"),
            ("IRFLOW_OUTBOX_POLL_SECONDS", "5"),
        ]))
        .expect("applies");
        c.validate().expect("valid");
        assert_eq!(c.mode, OutboxMode::Smtp);
        assert_eq!(c.smtp_port, 2525);
        assert_eq!(c.poll_seconds, 5);
        assert_eq!(c.quiet_hours.describe(), "21:00-07:30");
        assert_eq!(c.sms_command, ["/usr/bin/send-sms", "--fast"]);
        assert!(!format!("{c:?}").contains("hunter2"));
        assert!(
            toml::from_str::<FileOutbox>("smtp_password = \"x\"").is_err(),
            "no password in files"
        );
    }

    #[test]
    fn bad_settings_say_what_to_fix() {
        let err = |pairs: &[(&str, &str)]| {
            let mut c = OutboxConfig::default();
            match c.apply_env(&env_of(pairs)) {
                Err(e) => e.to_string(),
                Ok(()) => c.validate().expect_err("invalid").to_string(),
            }
        };
        assert!(err(&[("IRFLOW_OUTBOX_MODE", "pigeon")]).contains("\"file\" or \"smtp\""));
        assert!(err(&[("IRFLOW_OUTBOX_MODE", "smtp")]).contains("smtp_host"));
        assert!(err(&[("IRFLOW_QUIET_HOURS", "late")]).contains("HH:MM-HH:MM"));
        assert!(err(&[("IRFLOW_SMTP_PORT", "99999")]).contains("port number"));
        assert!(err(&[("IRFLOW_SMTP_FROM", "nobody")]).contains("smtp_from"));
        assert!(err(&[("IRFLOW_OUTBOX_POLL_SECONDS", "0")]).contains("between 1 and 3600"));
        #[cfg(not(feature = "smtp-tls"))]
        assert!(
            err(&[
                ("IRFLOW_OUTBOX_MODE", "smtp"),
                ("IRFLOW_SMTP_HOST", "mail"),
                ("IRFLOW_SMTP_TLS", "starttls")
            ])
            .contains("--features smtp-tls")
        );
    }
}
