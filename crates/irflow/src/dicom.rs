//! The `[dicom]` settings and starting the DICOM receiver (C-STORE SCP with C-ECHO)
//! beside the web server for `irflow serve` and `irflow demo`.
//!
//! ```toml
//! [dicom]
//! enabled = true
//! port = 11112                 # the DICOM port (104 needs root)
//! bind = "0.0.0.0"             # default 127.0.0.1: only this machine can send
//! ae_title = "IRFLOW"          # peers must call this AE title
//! allowed_calling = ["PACS1", "CDIMPORT"]   # empty (default): any calling AE title
//! max_associations = 8         # more at once are refused for now ("local limit exceeded")
//! max_instance_mb = 1024       # a larger instance is refused (A700, out of resources)
//! max_pdu_kb = 1024            # the largest PDU irflow advertises
//! idle_timeout_seconds = 60    # a silent association is aborted
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use irflow_server::AppState;
use irflow_server::dicom_scp::{DicomScpConfig, check_ae_title, serve_dicom};
use serde::Deserialize;
use tokio::net::TcpListener;

/// The `[dicom]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DicomConfig {
    /// Whether `irflow serve` starts the receiver.
    pub enabled: bool,
    /// The address to listen on.
    pub bind: IpAddr,
    /// The port (0: any free one).
    pub port: u16,
    /// irflow's AE title.
    pub ae_title: String,
    /// Calling AE titles allowed; empty: any.
    pub allowed_calling: Vec<String>,
    /// Associations at once.
    pub max_associations: usize,
    /// The largest instance taken, in MiB.
    pub max_instance_mb: u64,
    /// The largest PDU advertised, in KiB.
    pub max_pdu_kb: u32,
    /// Seconds of silence before an association is aborted.
    pub idle_timeout_seconds: u64,
}

impl Default for DicomConfig {
    fn default() -> Self {
        let scp = DicomScpConfig::default();
        Self {
            enabled: false,
            bind: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: 11112,
            ae_title: scp.ae_title,
            allowed_calling: scp.allowed_calling,
            max_associations: scp.max_associations,
            max_instance_mb: (scp.max_instance_bytes / (1024 * 1024)) as u64,
            max_pdu_kb: scp.max_pdu_length / 1024,
            idle_timeout_seconds: scp.idle_timeout.as_secs(),
        }
    }
}

/// The `[dicom]` table of `irflow.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDicom {
    enabled: Option<bool>,
    bind: Option<String>,
    port: Option<u16>,
    ae_title: Option<String>,
    allowed_calling: Option<Vec<String>>,
    max_associations: Option<usize>,
    max_instance_mb: Option<u64>,
    max_pdu_kb: Option<u32>,
    idle_timeout_seconds: Option<u64>,
}

fn parse_bind(raw: &str, source: &str) -> Result<IpAddr> {
    raw.trim().parse().with_context(|| {
        format!("{source}: {raw:?} is not an IP address; use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)")
    })
}

fn parse_number<T: std::str::FromStr>(raw: &str, source: &str) -> Result<T> {
    raw.trim()
        .parse()
        .map_err(|_| anyhow::anyhow!("{source}: {raw:?} is not a whole number"))
}

fn parse_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl DicomConfig {
    /// Applies the file's `[dicom]` table.
    pub fn apply_file(&mut self, d: FileDicom, source: &str) -> Result<()> {
        if let Some(v) = d.enabled {
            self.enabled = v;
        }
        if let Some(v) = d.bind {
            self.bind = parse_bind(&v, &format!("{source}: dicom.bind"))?;
        }
        if let Some(v) = d.port {
            self.port = v;
        }
        if let Some(v) = d.ae_title {
            self.ae_title = v;
        }
        if let Some(v) = d.allowed_calling {
            self.allowed_calling = v;
        }
        if let Some(v) = d.max_associations {
            self.max_associations = v;
        }
        if let Some(v) = d.max_instance_mb {
            self.max_instance_mb = v;
        }
        if let Some(v) = d.max_pdu_kb {
            self.max_pdu_kb = v;
        }
        if let Some(v) = d.idle_timeout_seconds {
            self.idle_timeout_seconds = v;
        }
        Ok(())
    }

    /// Applies `IRFLOW_DICOM_*` (`var` returns non-empty values only).
    pub fn apply_env(&mut self, var: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = var("IRFLOW_DICOM_ENABLED") {
            self.enabled = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" => false,
                other => bail!("IRFLOW_DICOM_ENABLED: {other:?} is not true or false"),
            };
        }
        if let Some(v) = var("IRFLOW_DICOM_BIND") {
            self.bind = parse_bind(&v, "IRFLOW_DICOM_BIND")?;
        }
        if let Some(v) = var("IRFLOW_DICOM_PORT") {
            self.port = v.trim().parse().map_err(|_| {
                anyhow::anyhow!("IRFLOW_DICOM_PORT: {v:?} is not a port number (0-65535)")
            })?;
        }
        if let Some(v) = var("IRFLOW_DICOM_AE_TITLE") {
            self.ae_title = v;
        }
        if let Some(v) = var("IRFLOW_DICOM_ALLOWED_CALLING") {
            self.allowed_calling = parse_list(&v);
        }
        if let Some(v) = var("IRFLOW_DICOM_MAX_ASSOCIATIONS") {
            self.max_associations = parse_number(&v, "IRFLOW_DICOM_MAX_ASSOCIATIONS")?;
        }
        if let Some(v) = var("IRFLOW_DICOM_MAX_INSTANCE_MB") {
            self.max_instance_mb = parse_number(&v, "IRFLOW_DICOM_MAX_INSTANCE_MB")?;
        }
        if let Some(v) = var("IRFLOW_DICOM_MAX_PDU_KB") {
            self.max_pdu_kb = parse_number(&v, "IRFLOW_DICOM_MAX_PDU_KB")?;
        }
        if let Some(v) = var("IRFLOW_DICOM_IDLE_TIMEOUT_SECONDS") {
            self.idle_timeout_seconds = parse_number(&v, "IRFLOW_DICOM_IDLE_TIMEOUT_SECONDS")?;
        }
        Ok(())
    }

    /// Checks the settings (also when the receiver is off, so a mistake shows early).
    pub fn validate(&self) -> Result<()> {
        check_ae_title(&self.ae_title)
            .map_err(|e| anyhow::anyhow!("dicom.ae_title (IRFLOW_DICOM_AE_TITLE): {e}"))?;
        for calling in &self.allowed_calling {
            check_ae_title(calling).map_err(|e| {
                anyhow::anyhow!("dicom.allowed_calling (IRFLOW_DICOM_ALLOWED_CALLING): {e}")
            })?;
        }
        if !(1..=256).contains(&self.max_associations) {
            bail!(
                "dicom.max_associations (IRFLOW_DICOM_MAX_ASSOCIATIONS) must be between 1 and 256"
            );
        }
        if !(1..=16 * 1024).contains(&self.max_instance_mb) {
            bail!(
                "dicom.max_instance_mb (IRFLOW_DICOM_MAX_INSTANCE_MB) must be between 1 and 16384"
            );
        }
        if !(4..=16 * 1024).contains(&self.max_pdu_kb) {
            bail!("dicom.max_pdu_kb (IRFLOW_DICOM_MAX_PDU_KB) must be between 4 and 16384");
        }
        if !(5..=3600).contains(&self.idle_timeout_seconds) {
            bail!(
                "dicom.idle_timeout_seconds (IRFLOW_DICOM_IDLE_TIMEOUT_SECONDS) must be between 5 and 3600"
            );
        }
        Ok(())
    }

    /// The receiver's settings.
    pub fn scp_config(&self) -> DicomScpConfig {
        DicomScpConfig {
            ae_title: self.ae_title.trim().to_owned(),
            allowed_calling: self
                .allowed_calling
                .iter()
                .map(|a| a.trim().to_owned())
                .collect(),
            max_pdu_length: self.max_pdu_kb.saturating_mul(1024),
            max_associations: self.max_associations,
            max_instance_bytes: usize::try_from(self.max_instance_mb.saturating_mul(1024 * 1024))
                .unwrap_or(usize::MAX),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
        }
    }

    /// The address to listen on.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind, self.port)
    }
}

/// The receiver's socket, bound before anything is served (so a taken port fails
/// the start with a message, not later in a log).
#[derive(Debug)]
pub struct DicomListener {
    listener: TcpListener,
    config: DicomScpConfig,
}

impl DicomListener {
    /// Binds the configured address, if the receiver is enabled.
    pub async fn bind(config: &DicomConfig) -> Result<Option<Self>> {
        if !config.enabled {
            return Ok(None);
        }
        let addr = config.addr();
        let listener = TcpListener::bind(addr).await.with_context(|| {
            format!(
                "could not listen for DICOM on {addr}; is another program (a PACS, storescp) using it? choose another dicom.port (IRFLOW_DICOM_PORT)"
            )
        })?;
        Ok(Some(Self {
            listener,
            config: config.scp_config(),
        }))
    }

    /// Where it listens.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// "AE IRFLOW at 127.0.0.1:11112", for people.
    pub fn describe(&self) -> String {
        match self.listener.local_addr() {
            Ok(addr) => format!("AE {} at {addr}", self.config.ae_title),
            Err(_) => format!("AE {}", self.config.ae_title),
        }
    }
}

/// A running receiver (or none).
#[derive(Debug)]
pub struct DicomRunning {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl DicomRunning {
    /// Starts serving on the listener with the app's state.
    pub fn start(listener: Option<DicomListener>, state: &AppState) -> Self {
        let Some(DicomListener { listener, config }) = listener else {
            return Self {
                stop: None,
                task: None,
            };
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve_dicom(listener, state.clone(), config, async move {
            let _ = rx.await;
        }));
        Self {
            stop: Some(tx),
            task: Some(task),
        }
    }

    /// Stops accepting, lets open associations finish briefly, and waits.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the DICOM receiver failed"),
                Err(e) => tracing::error!(error = %e, "the DICOM receiver task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_file_and_the_environment_and_are_checked() {
        let mut c = DicomConfig::default();
        assert!(!c.enabled);
        assert_eq!((c.port, c.ae_title.as_str()), (11112, "IRFLOW"));
        let file: FileDicom = toml::from_str(
            "enabled = true\nport = 4242\nbind = \"0.0.0.0\"\nae_title = \"SPINE\"\nallowed_calling = [\"PACS\"]\n",
        )
        .expect("valid table");
        c.apply_file(file, "irflow.toml").expect("applies");
        assert!(c.enabled);
        assert_eq!(c.addr().to_string(), "0.0.0.0:4242");
        assert_eq!(c.scp_config().allowed_calling, vec!["PACS".to_owned()]);
        c.validate().expect("valid");
        let env = |k: &str| match k {
            "IRFLOW_DICOM_ALLOWED_CALLING" => Some("A, B ,".to_owned()),
            "IRFLOW_DICOM_AE_TITLE" => Some("IRFLOW2".to_owned()),
            _ => None,
        };
        c.apply_env(&env).expect("applies");
        assert_eq!(c.allowed_calling, vec!["A".to_owned(), "B".to_owned()]);
        assert_eq!(c.scp_config().ae_title, "IRFLOW2");
        let bad = |f: &dyn Fn(&mut DicomConfig)| {
            let mut c = DicomConfig::default();
            f(&mut c);
            c.validate().expect_err("invalid").to_string()
        };
        assert!(bad(&|c| c.ae_title = "WAY_TOO_LONG_AE_TITLE".into()).contains("dicom.ae_title"));
        assert!(bad(&|c| c.allowed_calling = vec![String::new()]).contains("allowed_calling"));
        assert!(bad(&|c| c.max_associations = 0).contains("max_associations"));
        assert!(bad(&|c| c.idle_timeout_seconds = 1).contains("idle_timeout"));
        let e = DicomConfig::default()
            .apply_env(&|k: &str| (k == "IRFLOW_DICOM_PORT").then(|| "eleven".to_owned()))
            .expect_err("bad port");
        assert!(e.to_string().contains("IRFLOW_DICOM_PORT"), "{e}");
        let typo: Result<FileDicom, _> = toml::from_str("ae_tilte = \"X\"\n");
        assert!(typo.is_err());
    }

    #[test]
    fn the_dicom_table_is_read_from_irflow_toml() {
        let mut file = tempfile::NamedTempFile::new().expect("temp file");
        std::io::Write::write_all(
            &mut file,
            b"[dicom]\nenabled = true\nport = 4104\nae_title = \"SPINE\"\n",
        )
        .expect("write");
        let overrides = crate::config::Overrides {
            config_file: Some(file.path().to_path_buf()),
            ..Default::default()
        };
        let no_env = |_: &str| None;
        let c = crate::config::Config::load(&overrides, &no_env).expect("valid");
        assert!(c.dicom.enabled);
        assert_eq!((c.dicom.port, c.dicom.ae_title.as_str()), (4104, "SPINE"));
        let with_env = |k: &str| (k == "IRFLOW_DICOM_PORT").then(|| "4105".to_owned());
        let c = crate::config::Config::load(&overrides, &with_env).expect("valid");
        assert_eq!(c.dicom.port, 4105, "the environment wins over the file");
        std::io::Write::write_all(&mut file, b"max_associations = 0\n").expect("write");
        let e = crate::config::Config::load(&overrides, &no_env).expect_err("invalid");
        assert!(e.to_string().contains("dicom.max_associations"), "{e}");
    }
}
