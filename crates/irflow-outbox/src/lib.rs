//! irflow's outbox worker and its transports.
//!
//! The store keeps the outbox (`irflow_store::outbox`): one table of messages, each
//! with its attempts. This crate drains it: a [`Worker`] claims due messages, checks
//! that a reminder is still wanted, sends through a [`Transport`] (email) or an
//! [`SmsGateway`] (text messages), and records every attempt with the store, which
//! plans retries with backoff.
//!
//! Transports:
//! - [`SmtpTransport`]: email over SMTP with lettre. Plain SMTP by default; STARTTLS
//!   and implicit TLS with the `smtp-tls` cargo feature (rustls).
//! - [`FileSink`]: writes each message to a directory as a readable file (`.eml` for
//!   email, `.txt` for SMS): the demo's and the tests' transport, and a safe default
//!   when nothing is configured.
//! - [`CommandSmsGateway`]: runs a configured program with the message as JSON on its
//!   standard input, so any SMS provider can be plugged in with a small script.
//!
//! This crate exists so that lettre's compile stays out of the other crates.

mod file;
mod sms;
mod smtp;
mod worker;

use std::future::Future;
use std::pin::Pin;

use irflow_store::MessageId;

pub use file::FileSink;
pub use sms::CommandSmsGateway;
pub use smtp::{SmtpSettings, SmtpTransport, TlsMode};
pub use worker::{RunSummary, Worker, WorkerConfig, WorkerHandle};

/// An email to send.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingEmail<'a> {
    /// The outbox message.
    pub id: MessageId,
    /// Its kind (`reminder_1_day`, ...).
    pub kind: &'a str,
    /// The patient's address.
    pub to: &'a str,
    /// Subject.
    pub subject: &'a str,
    /// Plain text part.
    pub text: &'a str,
    /// HTML part, if any.
    pub html: Option<&'a str>,
}

/// A text message to send.
#[derive(Debug, Clone, Copy)]
pub struct OutgoingSms<'a> {
    /// The outbox message.
    pub id: MessageId,
    /// Its kind.
    pub kind: &'a str,
    /// The patient's phone number, as on the record.
    pub to: &'a str,
    /// The text.
    pub text: &'a str,
}

/// Why a send failed. `detail` is the server's reply or the error, stored with the
/// attempt (never logged: it may name the recipient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError {
    /// What happened.
    pub detail: String,
    /// Retrying cannot help (e.g. SMTP 5xx: the address does not exist).
    pub permanent: bool,
}

impl SendError {
    /// A failure that may pass.
    pub fn temporary(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: false,
        }
    }

    /// A failure retrying cannot fix.
    pub fn permanent(detail: impl Into<String>) -> Self {
        Self {
            detail: detail.into(),
            permanent: true,
        }
    }
}

/// What a send returns: the receiving side's reply (e.g. `250 OK queued as ...`).
pub type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<String, SendError>> + Send + 'a>>;

/// Sends email.
pub trait Transport: Send + Sync + std::fmt::Debug {
    /// Sends one email.
    fn send<'a>(&'a self, email: &'a OutgoingEmail<'a>) -> SendFuture<'a>;
    /// Where mail goes, for people (no secrets).
    fn describe(&self) -> String;
}

/// Sends text messages.
pub trait SmsGateway: Send + Sync + std::fmt::Debug {
    /// Sends one text message.
    fn send<'a>(&'a self, sms: &'a OutgoingSms<'a>) -> SendFuture<'a>;
    /// Where texts go, for people (no secrets).
    fn describe(&self) -> String;
}

/// Builds the email itself (headers, text and HTML parts), shared by the SMTP
/// transport and the file sink so that the files show exactly what would be sent.
pub(crate) fn build_email(
    from: &lettre::message::Mailbox,
    email: &OutgoingEmail<'_>,
) -> Result<lettre::Message, SendError> {
    use lettre::message::{MultiPart, SinglePart, header::ContentType};
    let to: lettre::message::Mailbox = email.to.trim().parse().map_err(|_| {
        SendError::permanent("the recipient is not a valid email address".to_owned())
    })?;
    let builder = lettre::Message::builder()
        .from(from.clone())
        .to(to)
        .subject(email.subject)
        .message_id(Some(format!(
            "<irflow-message-{}@{}>",
            email.id,
            from.email.domain()
        )));
    let built = match email.html {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(
            email.text.to_owned(),
            html.to_owned(),
        )),
        None => builder.singlepart(
            SinglePart::builder()
                .header(ContentType::TEXT_PLAIN)
                .body(email.text.to_owned()),
        ),
    };
    built.map_err(|e| SendError::permanent(format!("the email could not be built: {e}")))
}

/// Parses a sender address such as `Spine Injection Service <noreply@hospital.org>`.
pub fn parse_from_address(raw: &str) -> Result<lettre::message::Mailbox, String> {
    raw.trim().parse().map_err(|e| {
        format!(
            "the sender address {raw:?} is not valid ({e}); write it like \"Spine Injection Service <noreply@hospital.example.org>\""
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_have_both_parts_and_a_stable_message_id() {
        let from = parse_from_address("Spine Service <noreply@example.org>").expect("valid");
        let email = OutgoingEmail {
            id: MessageId::new(42),
            kind: "reminder_1_day",
            to: "pat@example.org",
            subject: "Your appointment tomorrow",
            text: "See you tomorrow at 9:30.",
            html: Some("<p>See you tomorrow at 9:30.</p>"),
        };
        let built = build_email(&from, &email).expect("built");
        let raw = String::from_utf8(built.formatted()).expect("utf-8");
        assert!(
            raw.contains("Message-ID: <irflow-message-42@example.org>"),
            "{raw}"
        );
        assert!(raw.contains("Subject: Your appointment tomorrow"));
        assert!(raw.contains("multipart/alternative"));
        assert!(raw.contains("text/html"));
        let bad = OutgoingEmail {
            to: "not an address",
            ..email
        };
        let err = build_email(&from, &bad).expect_err("refused");
        assert!(err.permanent);
        assert!(
            !err.detail.contains("not an address"),
            "no recipient in errors"
        );
        assert!(parse_from_address("nobody").is_err());
    }
}
