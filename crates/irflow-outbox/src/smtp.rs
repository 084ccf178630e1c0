//! Email over SMTP with lettre.

use std::fmt;
use std::time::Duration;

use lettre::AsyncTransport;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, Tokio1Executor};

use crate::{OutgoingEmail, SendError, SendFuture, Transport, build_email};

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// Plain SMTP: for a relay on this machine or a trusted network only.
    #[default]
    None,
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    StartTls,
    /// TLS from the first byte (usually port 465).
    Implicit,
}

impl TlsMode {
    /// Parses `none`, `starttls` or `tls`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" | "off" | "plain" => Ok(TlsMode::None),
            "starttls" => Ok(TlsMode::StartTls),
            "tls" | "implicit" | "smtps" => Ok(TlsMode::Implicit),
            other => Err(format!(
                "SMTP TLS mode {other:?} is not known; use \"none\", \"starttls\" or \"tls\""
            )),
        }
    }

    /// The name used in configuration.
    pub const fn as_str(self) -> &'static str {
        match self {
            TlsMode::None => "none",
            TlsMode::StartTls => "starttls",
            TlsMode::Implicit => "tls",
        }
    }
}

/// Where and how to send mail.
#[derive(Clone)]
pub struct SmtpSettings {
    /// Mail server host name.
    pub host: String,
    /// Port (25, 587 with STARTTLS, 465 with implicit TLS).
    pub port: u16,
    /// Sign-in name, if the server needs one.
    pub username: Option<String>,
    /// Password (never printed).
    pub password: Option<String>,
    /// Sender, e.g. `Spine Injection Service <noreply@hospital.example.org>`.
    pub from: Mailbox,
    /// Connection protection.
    pub tls: TlsMode,
    /// Longest wait for the server on any one command.
    pub timeout: Duration,
}

impl fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("from", &self.from.to_string())
            .field("tls", &self.tls)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends email through an SMTP server: one connection per message (no pool), so a
/// server that restarts is simply reached again on the next attempt.
pub struct SmtpTransport {
    mailer: AsyncSmtpTransport<Tokio1Executor>,
    settings: SmtpSettings,
}

impl fmt::Debug for SmtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpTransport")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl SmtpTransport {
    /// Sets up the transport (does not connect). Fails when TLS is asked for in a
    /// build without the `smtp-tls` feature.
    pub fn new(settings: SmtpSettings) -> Result<Self, String> {
        if settings.host.trim().is_empty() {
            return Err("the SMTP host is empty; set outbox.smtp_host".to_owned());
        }
        let builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.trim())
            .port(settings.port)
            .timeout(Some(settings.timeout));
        let mut builder = with_tls(builder, settings.tls, &settings.host)?;
        if let Some(user) = &settings.username {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                settings.password.clone().unwrap_or_default(),
            ));
        }
        Ok(Self {
            mailer: builder.build(),
            settings,
        })
    }
}

type Builder = lettre::transport::smtp::AsyncSmtpTransportBuilder;

#[cfg(feature = "smtp-tls")]
fn with_tls(builder: Builder, mode: TlsMode, host: &str) -> Result<Builder, String> {
    use lettre::transport::smtp::client::{Tls, TlsParameters};
    let params = || {
        TlsParameters::new(host.trim().to_owned())
            .map_err(|e| format!("TLS for the SMTP host {host:?} could not be set up: {e}"))
    };
    Ok(builder.tls(match mode {
        TlsMode::None => Tls::None,
        TlsMode::StartTls => Tls::Required(params()?),
        TlsMode::Implicit => Tls::Wrapper(params()?),
    }))
}

/// Without TLS support lettre speaks plain SMTP only.
#[cfg(not(feature = "smtp-tls"))]
fn with_tls(builder: Builder, mode: TlsMode, _host: &str) -> Result<Builder, String> {
    match mode {
        TlsMode::None => Ok(builder),
        other => Err(format!(
            "SMTP TLS mode {:?} needs irflow built with the smtp-tls feature \
             (cargo build --features irflow/smtp-tls); use tls = \"none\" only for a relay on a trusted network",
            other.as_str()
        )),
    }
}

impl Transport for SmtpTransport {
    fn send<'a>(&'a self, email: &'a OutgoingEmail<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let message = build_email(&self.settings.from, email)?;
            match self.mailer.send(message).await {
                Ok(response) => Ok(format!(
                    "{} {}",
                    response.code(),
                    response.message().collect::<Vec<_>>().join(" ")
                )
                .trim()
                .to_owned()),
                Err(e) if e.is_permanent() => Err(SendError::permanent(e.to_string())),
                Err(e) => Err(SendError::temporary(e.to_string())),
            }
        })
    }

    fn describe(&self) -> String {
        format!(
            "SMTP {}:{} (TLS: {})",
            self.settings.host,
            self.settings.port,
            self.settings.tls.as_str()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(tls: TlsMode) -> SmtpSettings {
        SmtpSettings {
            host: "127.0.0.1".into(),
            port: 2525,
            username: Some("irflow".into()),
            password: Some("hunter2".into()),
            from: crate::parse_from_address("irflow <noreply@example.org>").expect("valid"),
            tls,
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn tls_modes_parse_and_passwords_stay_hidden() {
        assert_eq!(TlsMode::parse("STARTTLS"), Ok(TlsMode::StartTls));
        assert_eq!(TlsMode::parse("tls"), Ok(TlsMode::Implicit));
        assert_eq!(TlsMode::parse("none"), Ok(TlsMode::None));
        assert!(TlsMode::parse("ssl3").is_err());
        let t = SmtpTransport::new(settings(TlsMode::None)).expect("plain works");
        assert!(!format!("{t:?}").contains("hunter2"));
        assert_eq!(t.describe(), "SMTP 127.0.0.1:2525 (TLS: none)");
    }

    #[cfg(not(feature = "smtp-tls"))]
    #[test]
    fn tls_without_the_feature_says_how_to_get_it() {
        let err = SmtpTransport::new(settings(TlsMode::StartTls)).expect_err("no TLS");
        assert!(err.contains("smtp-tls"), "{err}");
    }
}
