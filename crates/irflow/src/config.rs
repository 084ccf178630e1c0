//! Configuration: defaults, then `irflow.toml`, then `IRFLOW_*` environment
//! variables, then command-line flags. A bad value fails fast with a message
//! that names the setting and says how to fix it.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// Everything `irflow` can be configured with.
#[derive(Clone)]
pub struct Config {
    /// Where the embedded database and files live.
    pub data_dir: PathBuf,
    /// `postgres://...` or `sqlite:...`; default: SQLite in the data dir.
    pub database_url: Option<String>,
    /// Address `irflow serve` listens on.
    pub listen: SocketAddr,
    /// Department name.
    pub department_name: String,
    /// Department phone number.
    pub department_phone: String,
    /// Department address, on one line (patient letters).
    pub department_address: String,
    /// A letter template directory; `None`: the built-in templates.
    pub letters_dir: Option<PathBuf>,
    /// Days after the procedure when the follow-up call comes (default 14).
    pub follow_up_days: u32,
    /// Site time zone (IANA).
    pub time_zone: String,
    /// `Secure` cookies (needs HTTPS in front of irflow).
    pub cookie_secure: bool,
    /// Session idle timeout.
    pub session_idle_minutes: i64,
    /// Session absolute lifetime.
    pub session_max_hours: i64,
    /// Failed sign-ins per username per 15 minutes.
    pub login_failures_per_user: i64,
    /// Failed sign-ins per client address per 15 minutes.
    pub login_failures_per_client: i64,
    /// `json` (default) or `pretty`.
    pub log_format: LogFormat,
    /// A tracing filter, e.g. `info` or `irflow=debug`.
    pub log_level: String,
    /// The URL clients reach irflow at, e.g. `https://irflow.example.org`.
    pub public_base_url: Option<String>,
    /// The identifier system of the hospital's MRNs (FHIR), e.g. `urn:oid:1.2.840.114350`.
    pub mrn_system: String,
    /// A rule pack directory; `None`: the built-in default pack.
    pub rules_dir: Option<PathBuf>,
    /// Minutes before the start that patients are asked to arrive (default 15).
    pub arrive_minutes_before: i64,
    /// The least notice a booking gives, in minutes (default 60).
    pub min_notice_minutes: i64,
    /// Days a patient link works after the appointment (default 30).
    pub patient_link_days: i64,
    /// Minutes of inactivity that end a patient's session (default 15).
    pub patient_session_idle_minutes: i64,
    /// Messages to patients: how they are sent, quiet hours (`[outbox]`).
    pub outbox: crate::outbox::OutboxConfig,
    /// The DICOM receiver (`[dicom]`).
    pub dicom: crate::dicom::DicomConfig,
    /// Prior imaging older than this many months is flagged (`imaging.max_age_months`, default 12).
    pub imaging_max_age_months: u32,
    /// Where original DICOM files are kept and upload limits (`[imaging]`).
    pub imaging: crate::import::ImagingSettings,
}

/// How logs are written (always to standard error).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line.
    Json,
    /// For people at a terminal.
    Pretty,
}

/// Hides a password inside a database URL.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field(
                "database_url",
                &self.database_url.as_deref().map(redact_url),
            )
            .field("listen", &self.listen)
            .field("department_name", &self.department_name)
            .field("department_phone", &self.department_phone)
            .field("time_zone", &self.time_zone)
            .field("cookie_secure", &self.cookie_secure)
            .field("session_idle_minutes", &self.session_idle_minutes)
            .field("session_max_hours", &self.session_max_hours)
            .field("log_format", &self.log_format)
            .field("outbox", &self.outbox)
            .field("dicom", &self.dicom)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Self {
        let server = irflow_server::ServerConfig::default();
        Self {
            data_dir: PathBuf::from("irflow-data"),
            database_url: None,
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            department_name: server.department_name,
            department_phone: server.department_phone,
            department_address: server.department_address,
            letters_dir: server.letters_dir,
            follow_up_days: server.follow_up_days,
            time_zone: server.time_zone_name,
            cookie_secure: server.cookie_secure,
            session_idle_minutes: server.session_idle_minutes,
            session_max_hours: server.session_max_hours,
            login_failures_per_user: server.login_failures_per_user,
            login_failures_per_client: server.login_failures_per_client,
            log_format: LogFormat::Json,
            log_level: "info".to_owned(),
            public_base_url: server.public_base_url,
            mrn_system: server.mrn_system,
            rules_dir: None,
            arrive_minutes_before: server.arrive_minutes_before,
            min_notice_minutes: server.min_notice_minutes,
            patient_link_days: server.patient_link_days,
            patient_session_idle_minutes: server.patient_session_idle_minutes,
            outbox: crate::outbox::OutboxConfig::default(),
            dicom: crate::dicom::DicomConfig::default(),
            imaging_max_age_months: server.imaging_max_age_months,
            imaging: crate::import::ImagingSettings::default(),
        }
    }
}

/// The file's shape. Unknown keys are errors (a typo must not be silently ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    listen: Option<String>,
    public_base_url: Option<String>,
    rules_dir: Option<PathBuf>,
    department: Option<FileDepartment>,
    security: Option<FileSecurity>,
    scheduling: Option<FileScheduling>,
    letters: Option<FileLetters>,
    patient_links: Option<FilePatientLinks>,
    log: Option<FileLog>,
    outbox: Option<crate::outbox::FileOutbox>,
    dicom: Option<crate::dicom::FileDicom>,
    imaging: Option<FileImaging>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileImaging {
    max_age_months: Option<u32>,
    store: Option<String>,
    dir: Option<PathBuf>,
    bucket: Option<String>,
    endpoint: Option<String>,
    region: Option<String>,
    allow_http: Option<bool>,
    fsync: Option<bool>,
    max_upload_mb: Option<u64>,
    max_files: Option<usize>,
    max_zip_depth: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePatientLinks {
    days: Option<i64>,
    session_idle_minutes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLetters {
    dir: Option<PathBuf>,
    follow_up_days: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScheduling {
    arrive_minutes_before: Option<i64>,
    min_notice_minutes: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDepartment {
    name: Option<String>,
    phone: Option<String>,
    address: Option<String>,
    time_zone: Option<String>,
    mrn_system: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSecurity {
    cookie_secure: Option<bool>,
    session_idle_minutes: Option<i64>,
    session_max_hours: Option<i64>,
    login_failures_per_user: Option<i64>,
    login_failures_per_client: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLog {
    format: Option<String>,
    level: Option<String>,
}

/// Overrides from the command line (highest precedence).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config`.
    pub config_file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    pub database_url: Option<String>,
    /// `--rules`.
    pub rules_dir: Option<PathBuf>,
    /// `--listen`.
    pub listen: Option<String>,
}

fn parse_listen(raw: &str, source: &str) -> Result<SocketAddr> {
    raw.trim().parse().with_context(|| {
        format!("{source}: {raw:?} is not an address to listen on; write it like 127.0.0.1:8080 or 0.0.0.0:8080")
    })
}

fn parse_log_format(raw: &str, source: &str) -> Result<LogFormat> {
    match raw.trim() {
        "json" => Ok(LogFormat::Json),
        "pretty" => Ok(LogFormat::Pretty),
        other => bail!("{source}: log format {other:?} is not known; use \"json\" or \"pretty\""),
    }
}

fn parse_bool(raw: &str, source: &str) -> Result<bool> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        other => bail!("{source}: {other:?} is not true or false"),
    }
}

fn parse_int(raw: &str, source: &str) -> Result<i64> {
    raw.trim()
        .parse()
        .with_context(|| format!("{source}: {raw:?} is not a whole number"))
}

impl Config {
    /// Loads the configuration with the documented precedence. `env` is the process
    /// environment (passed in so tests can use their own).
    pub fn load(overrides: &Overrides, env: &dyn Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = Config::default();

        let (path, must_exist) = match (&overrides.config_file, env("IRFLOW_CONFIG")) {
            (Some(p), _) => (p.clone(), true),
            (None, Some(p)) => (PathBuf::from(p), true),
            (None, None) => (PathBuf::from("irflow.toml"), false),
        };
        if path.exists() {
            c.apply_file(&path)?;
        } else if must_exist {
            bail!(
                "configuration file {} does not exist; create it or drop --config / IRFLOW_CONFIG",
                path.display()
            );
        }

        let var = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(v) = var("IRFLOW_DATA_DIR") {
            c.data_dir = PathBuf::from(v);
        }
        if let Some(v) = var("IRFLOW_DATABASE_URL") {
            c.database_url = Some(v);
        }
        if let Some(v) = var("IRFLOW_LISTEN") {
            c.listen = parse_listen(&v, "IRFLOW_LISTEN")?;
        }
        if let Some(v) = var("IRFLOW_DEPARTMENT_NAME") {
            c.department_name = v;
        }
        if let Some(v) = var("IRFLOW_DEPARTMENT_PHONE") {
            c.department_phone = v;
        }
        if let Some(v) = var("IRFLOW_DEPARTMENT_ADDRESS") {
            c.department_address = v;
        }
        if let Some(v) = var("IRFLOW_LETTERS_DIR") {
            c.letters_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("IRFLOW_FOLLOW_UP_DAYS") {
            c.follow_up_days = u32::try_from(parse_int(&v, "IRFLOW_FOLLOW_UP_DAYS")?)
                .map_err(|_| anyhow::anyhow!("IRFLOW_FOLLOW_UP_DAYS must be between 1 and 90"))?;
        }
        if let Some(v) = var("IRFLOW_TIME_ZONE") {
            c.time_zone = v;
        }
        if let Some(v) = var("IRFLOW_PUBLIC_BASE_URL") {
            c.public_base_url = Some(v);
        }
        if let Some(v) = var("IRFLOW_MRN_SYSTEM") {
            c.mrn_system = v;
        }
        if let Some(v) = var("IRFLOW_ARRIVE_MINUTES_BEFORE") {
            c.arrive_minutes_before = parse_int(&v, "IRFLOW_ARRIVE_MINUTES_BEFORE")?;
        }
        if let Some(v) = var("IRFLOW_MIN_NOTICE_MINUTES") {
            c.min_notice_minutes = parse_int(&v, "IRFLOW_MIN_NOTICE_MINUTES")?;
        }
        if let Some(v) = var("IRFLOW_PATIENT_LINK_DAYS") {
            c.patient_link_days = parse_int(&v, "IRFLOW_PATIENT_LINK_DAYS")?;
        }
        if let Some(v) = var("IRFLOW_PATIENT_SESSION_IDLE_MINUTES") {
            c.patient_session_idle_minutes = parse_int(&v, "IRFLOW_PATIENT_SESSION_IDLE_MINUTES")?;
        }
        if let Some(v) = var("IRFLOW_RULES_DIR") {
            c.rules_dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("IRFLOW_COOKIE_SECURE") {
            c.cookie_secure = parse_bool(&v, "IRFLOW_COOKIE_SECURE")?;
        }
        if let Some(v) = var("IRFLOW_SESSION_IDLE_MINUTES") {
            c.session_idle_minutes = parse_int(&v, "IRFLOW_SESSION_IDLE_MINUTES")?;
        }
        if let Some(v) = var("IRFLOW_SESSION_MAX_HOURS") {
            c.session_max_hours = parse_int(&v, "IRFLOW_SESSION_MAX_HOURS")?;
        }
        if let Some(v) = var("IRFLOW_LOG_FORMAT") {
            c.log_format = parse_log_format(&v, "IRFLOW_LOG_FORMAT")?;
        }
        if let Some(v) = var("IRFLOW_LOG_LEVEL") {
            c.log_level = v;
        }

        c.outbox.apply_env(&var)?;
        c.dicom.apply_env(&var)?;
        if let Some(v) = var("IRFLOW_IMAGE_STORE") {
            c.imaging.store =
                crate::import::ImagingSettings::parse_store(&v, "IRFLOW_IMAGE_STORE")?;
        }
        if let Some(v) = var("IRFLOW_IMAGE_DIR") {
            c.imaging.dir = Some(PathBuf::from(v));
        }
        if let Some(v) = var("IRFLOW_IMAGE_BUCKET") {
            c.imaging.bucket = Some(v);
        }
        if let Some(v) = var("IRFLOW_IMAGE_ENDPOINT") {
            c.imaging.endpoint = Some(v);
        }
        if let Some(v) = var("IRFLOW_IMAGE_REGION") {
            c.imaging.region = Some(v);
        }
        if let Some(v) = var("IRFLOW_IMAGE_FSYNC") {
            c.imaging.fsync = parse_bool(&v, "IRFLOW_IMAGE_FSYNC")?;
        }
        if let Some(v) = var("IRFLOW_IMAGING_MAX_AGE_MONTHS") {
            c.imaging_max_age_months =
                u32::try_from(parse_int(&v, "IRFLOW_IMAGING_MAX_AGE_MONTHS")?).map_err(|_| {
                    anyhow::anyhow!("IRFLOW_IMAGING_MAX_AGE_MONTHS must be between 1 and 120")
                })?;
        }

        if let Some(d) = &overrides.data_dir {
            c.data_dir = d.clone();
        }
        if let Some(u) = &overrides.database_url {
            c.database_url = Some(u.clone());
        }
        if let Some(r) = &overrides.rules_dir {
            c.rules_dir = Some(r.clone());
        }
        if let Some(l) = &overrides.listen {
            c.listen = parse_listen(l, "--listen")?;
        }
        c.validate()?;
        Ok(c)
    }

    fn apply_file(&mut self, path: &Path) -> Result<()> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read configuration file {source}"))?;
        let file: FileConfig = toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("configuration file {source} is not valid: {e}"))?;
        if let Some(d) = file.data_dir {
            self.data_dir = d;
        }
        if let Some(u) = file.database_url {
            self.database_url = Some(u);
        }
        if let Some(l) = file.listen {
            self.listen = parse_listen(&l, &format!("{source}: listen"))?;
        }
        if let Some(u) = file.public_base_url {
            self.public_base_url = Some(u);
        }
        if let Some(r) = file.rules_dir {
            self.rules_dir = Some(r);
        }
        if let Some(d) = file.department {
            if let Some(v) = d.name {
                self.department_name = v;
            }
            if let Some(v) = d.phone {
                self.department_phone = v;
            }
            if let Some(v) = d.address {
                self.department_address = v;
            }
            if let Some(v) = d.time_zone {
                self.time_zone = v;
            }
            if let Some(v) = d.mrn_system {
                self.mrn_system = v;
            }
        }
        if let Some(l) = file.letters {
            if let Some(v) = l.dir {
                self.letters_dir = Some(v);
            }
            if let Some(v) = l.follow_up_days {
                self.follow_up_days = v;
            }
        }
        if let Some(s) = file.scheduling {
            if let Some(v) = s.arrive_minutes_before {
                self.arrive_minutes_before = v;
            }
            if let Some(v) = s.min_notice_minutes {
                self.min_notice_minutes = v;
            }
        }
        if let Some(p) = file.patient_links {
            if let Some(v) = p.days {
                self.patient_link_days = v;
            }
            if let Some(v) = p.session_idle_minutes {
                self.patient_session_idle_minutes = v;
            }
        }
        if let Some(s) = file.security {
            if let Some(v) = s.cookie_secure {
                self.cookie_secure = v;
            }
            if let Some(v) = s.session_idle_minutes {
                self.session_idle_minutes = v;
            }
            if let Some(v) = s.session_max_hours {
                self.session_max_hours = v;
            }
            if let Some(v) = s.login_failures_per_user {
                self.login_failures_per_user = v;
            }
            if let Some(v) = s.login_failures_per_client {
                self.login_failures_per_client = v;
            }
        }
        if let Some(l) = file.log {
            if let Some(v) = l.format {
                self.log_format = parse_log_format(&v, &format!("{source}: log.format"))?;
            }
            if let Some(v) = l.level {
                self.log_level = v;
            }
        }
        if let Some(o) = file.outbox {
            self.outbox.apply_file(o, &source)?;
        }
        if let Some(i) = file.imaging {
            if let Some(v) = i.max_age_months {
                self.imaging_max_age_months = v;
            }
            if let Some(v) = i.store {
                self.imaging.store = crate::import::ImagingSettings::parse_store(
                    &v,
                    &format!("{source}: imaging.store"),
                )?;
            }
            if let Some(v) = i.dir {
                self.imaging.dir = Some(v);
            }
            if let Some(v) = i.bucket {
                self.imaging.bucket = Some(v);
            }
            if let Some(v) = i.endpoint {
                self.imaging.endpoint = Some(v);
            }
            if let Some(v) = i.region {
                self.imaging.region = Some(v);
            }
            if let Some(v) = i.allow_http {
                self.imaging.allow_http = v;
            }
            if let Some(v) = i.fsync {
                self.imaging.fsync = v;
            }
            if let Some(v) = i.max_upload_mb {
                self.imaging.limits.max_total_bytes = v.saturating_mul(1024 * 1024);
            }
            if let Some(v) = i.max_files {
                self.imaging.limits.max_files = v;
            }
            if let Some(v) = i.max_zip_depth {
                self.imaging.limits.max_zip_depth = v;
            }
        }
        if let Some(d) = file.dicom {
            self.dicom.apply_file(d, &source)?;
        }
        Ok(())
    }

    fn validate(&self) -> Result<()> {
        self.outbox.validate()?;
        self.dicom.validate()?;
        self.imaging.validate()?;
        if !(1..=120).contains(&self.imaging_max_age_months) {
            bail!(
                "imaging.max_age_months (IRFLOW_IMAGING_MAX_AGE_MONTHS) must be between 1 and 120"
            );
        }
        if jiff::tz::TimeZone::get(&self.time_zone).is_err() {
            bail!(
                "time zone {:?} is not a known IANA time zone; set department.time_zone (or IRFLOW_TIME_ZONE) to e.g. \"America/New_York\"",
                self.time_zone
            );
        }
        if self.department_name.trim().is_empty() {
            bail!("department.name (IRFLOW_DEPARTMENT_NAME) must not be empty");
        }
        if self.department_phone.trim().is_empty() {
            bail!(
                "department.phone (IRFLOW_DEPARTMENT_PHONE) must not be empty: patients need a number to call"
            );
        }
        if self.department_address.trim().is_empty() {
            bail!(
                "department.address (IRFLOW_DEPARTMENT_ADDRESS) must not be empty: patients' letters tell them where to come"
            );
        }
        if !(1..=90).contains(&self.follow_up_days) {
            bail!("letters.follow_up_days (IRFLOW_FOLLOW_UP_DAYS) must be between 1 and 90");
        }
        if !(1..=24 * 60).contains(&self.session_idle_minutes) {
            bail!("security.session_idle_minutes must be between 1 and 1440");
        }
        if !(1..=24 * 7).contains(&self.session_max_hours) {
            bail!("security.session_max_hours must be between 1 and 168");
        }
        if !(0..=120).contains(&self.arrive_minutes_before) {
            bail!(
                "scheduling.arrive_minutes_before (IRFLOW_ARRIVE_MINUTES_BEFORE) must be between 0 and 120"
            );
        }
        if !(0..=7 * 24 * 60).contains(&self.min_notice_minutes) {
            bail!(
                "scheduling.min_notice_minutes (IRFLOW_MIN_NOTICE_MINUTES) must be between 0 and 10080 (a week)"
            );
        }
        if !(1..=365).contains(&self.patient_link_days) {
            bail!("patient_links.days (IRFLOW_PATIENT_LINK_DAYS) must be between 1 and 365");
        }
        if !(1..=120).contains(&self.patient_session_idle_minutes) {
            bail!(
                "patient_links.session_idle_minutes (IRFLOW_PATIENT_SESSION_IDLE_MINUTES) must be between 1 and 120"
            );
        }
        if self.login_failures_per_user < 1 || self.login_failures_per_client < 1 {
            bail!(
                "security.login_failures_per_user and login_failures_per_client must be at least 1"
            );
        }
        if let Some(url) = &self.database_url
            && !(url.starts_with("sqlite:")
                || url.starts_with("postgres://")
                || url.starts_with("postgresql://"))
        {
            bail!(
                "database URL {:?} is not supported; use postgres://user@host/db or sqlite:path (or leave it unset for SQLite in the data dir)",
                redact_url(url)
            );
        }
        if let Some(u) = &self.public_base_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            bail!(
                "public_base_url (IRFLOW_PUBLIC_BASE_URL) must start with https:// or http://, got {u:?}"
            );
        }
        if !self.mrn_system.contains(':') || self.mrn_system.contains(char::is_whitespace) {
            bail!(
                "department.mrn_system (IRFLOW_MRN_SYSTEM) must be a URI such as urn:oid:1.2.3 or https://hospital.example.org/mrn"
            );
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_level).is_err() {
            bail!(
                "log level {:?} is not valid; use e.g. \"info\", \"warn\" or \"irflow=debug\"",
                self.log_level
            );
        }
        Ok(())
    }

    /// The database URL: the configured one, or SQLite in the data dir.
    pub fn effective_database_url(&self) -> Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        std::fs::create_dir_all(&self.data_dir).with_context(|| {
            format!(
                "could not create the data directory {}; choose another with --data-dir or IRFLOW_DATA_DIR",
                self.data_dir.display()
            )
        })?;
        Ok(sqlite_url(&self.data_dir.join("irflow.db")))
    }

    /// The rule pack: the configured directory, or the built-in default.
    pub fn rule_pack(&self) -> Result<irflow_domain::screening::RulePack> {
        match &self.rules_dir {
            Some(dir) => irflow_rules::load_dir(dir).map_err(|e| {
                anyhow::anyhow!("{e}; fix the pack or drop --rules / IRFLOW_RULES_DIR")
            }),
            None => irflow_rules::default_pack()
                .map_err(|e| anyhow::anyhow!("the built-in rule pack is broken: {e}")),
        }
    }

    /// The server's part of the configuration.
    pub fn server_config(&self) -> irflow_server::ServerConfig {
        irflow_server::ServerConfig {
            department_name: self.department_name.clone(),
            department_phone: self.department_phone.clone(),
            department_address: self.department_address.clone(),
            letters_dir: self.letters_dir.clone(),
            follow_up_days: self.follow_up_days,
            time_zone_name: self.time_zone.clone(),
            cookie_secure: self.cookie_secure,
            session_idle_minutes: self.session_idle_minutes,
            session_max_hours: self.session_max_hours,
            login_failures_per_user: self.login_failures_per_user,
            login_failures_per_client: self.login_failures_per_client,
            public_base_url: self.public_base_url.clone(),
            mrn_system: self.mrn_system.clone(),
            arrive_minutes_before: self.arrive_minutes_before,
            min_notice_minutes: self.min_notice_minutes,
            patient_link_days: self.patient_link_days,
            patient_session_idle_minutes: self.patient_session_idle_minutes,
            reminder_quiet_hours: self.outbox.quiet_hours,
            image_store: self.imaging.image_store(&self.data_dir),
            imaging_limits: self.imaging.limits,
            imaging_max_age_months: self.imaging_max_age_months,
        }
    }
}

/// A `sqlite://` URL for a file path (percent-encoding what the URL syntax needs).
pub fn sqlite_url(path: &Path) -> String {
    let raw = path.to_string_lossy();
    let mut encoded = String::with_capacity(raw.len());
    for ch in raw.chars() {
        match ch {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            ' ' => encoded.push_str("%20"),
            c => encoded.push(c),
        }
    }
    format!("sqlite://{encoded}?mode=rwc")
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

    fn temp_file(contents: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(&mut f, contents.as_bytes()).expect("write");
        f
    }

    #[test]
    fn precedence_is_defaults_file_env_flags() {
        let file = temp_file(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/from-file\"\n[department]\nphone = \"555-0100\"\n",
        );
        let overrides = Overrides {
            config_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let c =
            Config::load(&overrides, &env_of(&[("IRFLOW_DATA_DIR", "/from-env")])).expect("valid");
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.data_dir, PathBuf::from("/from-env"));
        assert_eq!(c.department_phone, "555-0100");
        assert_eq!(c.time_zone, "America/New_York");
        let flags = Overrides {
            data_dir: Some("/from-flag".into()),
            ..overrides
        };
        let c = Config::load(&flags, &env_of(&[("IRFLOW_DATA_DIR", "/from-env")])).expect("valid");
        assert_eq!(c.data_dir, PathBuf::from("/from-flag"));
    }

    #[test]
    fn scheduling_settings_come_from_the_file_and_the_environment() {
        let file =
            temp_file("[scheduling]\narrive_minutes_before = 30\nmin_notice_minutes = 120\n");
        let overrides = Overrides {
            config_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env_of(&[])).expect("valid");
        assert_eq!((c.arrive_minutes_before, c.min_notice_minutes), (30, 120));
        let c = Config::load(&overrides, &env_of(&[("IRFLOW_MIN_NOTICE_MINUTES", "0")]))
            .expect("valid");
        assert_eq!(c.server_config().min_notice_minutes, 0);
        assert_eq!(c.server_config().arrive_minutes_before, 30);
        let d = Config::load(&Overrides::default(), &env_of(&[])).expect("defaults");
        assert_eq!((d.arrive_minutes_before, d.min_notice_minutes), (15, 60));
    }

    #[test]
    fn letter_settings_come_from_the_file_and_the_environment() {
        let file = temp_file(
            "[department]\naddress = \"1 Main St, Springfield\"\n[letters]\ndir = \"/srv/letters\"\nfollow_up_days = 10\n",
        );
        let overrides = Overrides {
            config_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env_of(&[])).expect("valid");
        let server = c.server_config();
        assert_eq!(server.department_address, "1 Main St, Springfield");
        assert_eq!(server.letters_dir, Some(PathBuf::from("/srv/letters")));
        assert_eq!(server.follow_up_days, 10);
        let c = Config::load(
            &overrides,
            &env_of(&[
                ("IRFLOW_LETTERS_DIR", "/env/letters"),
                ("IRFLOW_DEPARTMENT_ADDRESS", "2 Elm St"),
                ("IRFLOW_FOLLOW_UP_DAYS", "21"),
            ]),
        )
        .expect("valid");
        assert_eq!(c.letters_dir, Some(PathBuf::from("/env/letters")));
        assert_eq!(
            (c.department_address.as_str(), c.follow_up_days),
            ("2 Elm St", 21)
        );
        let d = Config::load(&Overrides::default(), &env_of(&[])).expect("defaults");
        assert_eq!((d.letters_dir, d.follow_up_days), (None, 14));
        assert!(d.department_address.contains("55 Fruit Street"));
        let err = |pairs: &[(&str, &str)]| {
            Config::load(&Overrides::default(), &env_of(pairs))
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(&[("IRFLOW_FOLLOW_UP_DAYS", "0")]).contains("between 1 and 90"));
        assert!(err(&[("IRFLOW_FOLLOW_UP_DAYS", "-3")]).contains("between 1 and 90"));
        assert!(err(&[("IRFLOW_FOLLOW_UP_DAYS", "soon")]).contains("whole number"));
        let blank = temp_file("[department]\naddress = \"  \"\n");
        let e = Config::load(
            &Overrides {
                config_file: Some(blank.path().to_path_buf()),
                ..Default::default()
            },
            &env_of(&[]),
        )
        .expect_err("blank address");
        assert!(e.to_string().contains("department.address"), "{e}");
    }

    #[test]
    fn image_files_are_synced_unless_the_department_says_otherwise() {
        let local = |c: &Config| match c.server_config().image_store {
            irflow_server::imaging::ImageStoreConfig::Local { dir, fsync } => (dir, fsync),
            other => panic!("expected a local image store, got {other:?}"),
        };
        let d = Config::load(&Overrides::default(), &env_of(&[])).expect("defaults");
        assert!(local(&d).1, "synced by default");
        let file = temp_file(
            "[imaging]
dir = \"/srv/images\"\nfsync = false\n",
        );
        let overrides = Overrides {
            config_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let c = Config::load(&overrides, &env_of(&[])).expect("valid");
        assert_eq!(local(&c), (PathBuf::from("/srv/images"), false));
        let c =
            Config::load(&overrides, &env_of(&[("IRFLOW_IMAGE_FSYNC", "true")])).expect("valid");
        assert!(local(&c).1, "the environment overrides the file");
        let e = Config::load(
            &Overrides::default(),
            &env_of(&[("IRFLOW_IMAGE_FSYNC", "sometimes")]),
        )
        .expect_err("invalid");
        assert!(e.to_string().contains("true or false"), "{e}");
    }

    #[test]
    fn bad_values_say_what_to_fix() {
        let err = |pairs: &[(&str, &str)]| {
            Config::load(&Overrides::default(), &env_of(pairs))
                .expect_err("invalid")
                .to_string()
        };
        assert!(err(&[("IRFLOW_TIME_ZONE", "Mars/Olympus")]).contains("IANA"));
        assert!(err(&[("IRFLOW_ARRIVE_MINUTES_BEFORE", "-5")]).contains("between 0 and 120"));
        assert!(err(&[("IRFLOW_MIN_NOTICE_MINUTES", "soon")]).contains("whole number"));
        assert!(err(&[("IRFLOW_LISTEN", "localhost")]).contains("127.0.0.1:8080"));
        assert!(err(&[("IRFLOW_COOKIE_SECURE", "maybe")]).contains("true or false"));
        assert!(err(&[("IRFLOW_DATABASE_URL", "mysql://x")]).contains("not supported"));
        assert!(err(&[("IRFLOW_CONFIG", "/nonexistent/irflow.toml")]).contains("does not exist"));
        let typo = temp_file("[departmnet]\nname = \"x\"\n");
        let e = Config::load(
            &Overrides {
                config_file: Some(typo.path().to_path_buf()),
                ..Default::default()
            },
            &env_of(&[]),
        )
        .expect_err("unknown key");
        assert!(e.to_string().contains("departmnet"), "{e}");
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        let c = Config {
            database_url: Some("postgres://u:secret@h/db".into()),
            ..Config::default()
        };
        assert!(!format!("{c:?}").contains("secret"));
        assert_eq!(
            sqlite_url(Path::new("/a b/x?.db")),
            "sqlite:///a%20b/x%3F.db?mode=rwc"
        );
    }
}
