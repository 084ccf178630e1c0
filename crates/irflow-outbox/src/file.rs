//! A transport that writes messages to files, for the demo, tests, and any
//! installation that has not configured a mail server yet.

use std::fmt;
use std::path::{Path, PathBuf};

use lettre::message::Mailbox;

use crate::{
    OutgoingEmail, OutgoingSms, SendError, SendFuture, SmsGateway, Transport, build_email,
};

/// Writes each email as an `.eml` file (exactly what SMTP would carry, openable in a
/// mail program) and each text message as a `.txt` file, in one directory. File
/// names carry the message id and kind, never patient data:
/// `message-000042-reminder_1_day.eml`. Files are written to a temporary name and
/// renamed, so a reader never sees half a message.
#[derive(Clone)]
pub struct FileSink {
    dir: PathBuf,
    from: Mailbox,
}

impl fmt::Debug for FileSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink").field("dir", &self.dir).finish()
    }
}

impl FileSink {
    /// A sink writing into `dir` (created if missing), with `from` as the emails' sender.
    pub fn new(dir: impl Into<PathBuf>, from: Mailbox) -> Result<Self, String> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "could not create the outbox directory {}: {e}; choose another with outbox.dir",
                dir.display()
            )
        })?;
        Ok(Self { dir, from })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, id: irflow_store::MessageId, kind: &str, extension: &str) -> PathBuf {
        let kind: String = kind
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
            .take(64)
            .collect();
        self.dir
            .join(format!("message-{:06}-{kind}.{extension}", id.get()))
    }

    async fn write(&self, path: PathBuf, contents: Vec<u8>) -> Result<String, SendError> {
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tokio::task::spawn_blocking(move || {
            let tmp = path.with_extension("partial");
            std::fs::write(&tmp, contents)?;
            std::fs::rename(&tmp, &path)
        })
        .await
        .map_err(|e| SendError::temporary(format!("the file writer stopped: {e}")))?
        .map_err(|e| SendError::temporary(format!("could not write {shown}: {e}")))?;
        Ok(format!("written to {shown}"))
    }
}

impl Transport for FileSink {
    fn send<'a>(&'a self, email: &'a OutgoingEmail<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let message = build_email(&self.from, email)?;
            self.write(
                self.path_for(email.id, email.kind, "eml"),
                message.formatted(),
            )
            .await
        })
    }

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }
}

impl SmsGateway for FileSink {
    fn send<'a>(&'a self, sms: &'a OutgoingSms<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let contents = format!(
                "To: {}\nKind: {}\nMessage: {}\n\n{}\n",
                sms.to.trim(),
                sms.kind,
                sms.id,
                sms.text.trim_end()
            );
            self.write(
                self.path_for(sms.id, sms.kind, "txt"),
                contents.into_bytes(),
            )
            .await
        })
    }

    fn describe(&self) -> String {
        format!("files in {}", self.dir.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irflow_store::MessageId;

    #[tokio::test]
    async fn messages_become_readable_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let sink = FileSink::new(
            dir.path().join("outbox"),
            crate::parse_from_address("irflow <noreply@example.org>").expect("valid"),
        )
        .expect("sink");
        let email = OutgoingEmail {
            id: MessageId::new(7),
            kind: "reminder_3_days",
            to: "pat@example.org",
            subject: "Your appointment",
            text: "Arrive at 9:15.",
            html: None,
        };
        let reply = Transport::send(&sink, &email).await.expect("written");
        assert_eq!(reply, "written to message-000007-reminder_3_days.eml");
        let eml = std::fs::read_to_string(sink.dir().join("message-000007-reminder_3_days.eml"))
            .expect("file");
        assert!(eml.contains("To: pat@example.org"), "{eml}");
        assert!(eml.contains("Arrive at 9:15."), "{eml}");
        let sms = OutgoingSms {
            id: MessageId::new(8),
            kind: "reminder_1_day",
            to: "+1 617 555 0100",
            text: "Reminder: tomorrow 9:30.",
        };
        SmsGateway::send(&sink, &sms).await.expect("written");
        let txt = std::fs::read_to_string(sink.dir().join("message-000008-reminder_1_day.txt"))
            .expect("file");
        assert!(txt.starts_with("To: +1 617 555 0100\n"), "{txt}");
        assert!(txt.ends_with("Reminder: tomorrow 9:30.\n"));
        let leftovers: Vec<_> = std::fs::read_dir(sink.dir())
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "partial"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
