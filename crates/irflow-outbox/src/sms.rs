//! A pluggable SMS gateway: a program of the department's choosing.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{OutgoingSms, SendError, SendFuture, SmsGateway};

/// Exit status by which the program says the message can never be sent (e.g. not a
/// mobile number): `EX_DATAERR` from sysexits.h. Any other failure is retried.
pub const EXIT_PERMANENT: i32 = 65;

/// Sends each text message by running a program (no shell) with the message as one
/// JSON object on its standard input:
/// `{"message_id": 42, "kind": "reminder_1_day", "to": "+16175550100", "text": "..."}`.
/// Exit status 0: sent (the first line of standard output is kept as the reply);
/// [`EXIT_PERMANENT`] (65): refused for good; anything else, or no answer within the
/// timeout: retried later. The program's standard error is kept with the attempt.
#[derive(Debug, Clone)]
pub struct CommandSmsGateway {
    program: String,
    args: Vec<String>,
    timeout: Duration,
}

impl CommandSmsGateway {
    /// A gateway running `command` (program and arguments).
    pub fn new(command: &[String], timeout: Duration) -> Result<Self, String> {
        let (program, args) = command
            .split_first()
            .filter(|(p, _)| !p.trim().is_empty())
            .ok_or_else(|| {
                "the SMS command is empty; set outbox.sms_command to the program that sends a text (and its arguments)".to_owned()
            })?;
        Ok(Self {
            program: program.clone(),
            args: args.to_vec(),
            timeout,
        })
    }
}

fn first_line(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
        .chars()
        .take(500)
        .collect()
}

impl SmsGateway for CommandSmsGateway {
    fn send<'a>(&'a self, sms: &'a OutgoingSms<'a>) -> SendFuture<'a> {
        Box::pin(async move {
            let input = serde_json::json!({
                "message_id": sms.id.get(),
                "kind": sms.kind,
                "to": sms.to.trim(),
                "text": sms.text,
            })
            .to_string();
            let mut child = tokio::process::Command::new(&self.program)
                .args(&self.args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|e| {
                    SendError::temporary(format!(
                        "the SMS command {:?} could not be started: {e}",
                        self.program
                    ))
                })?;
            let run = async {
                if let Some(mut stdin) = child.stdin.take() {
                    stdin.write_all(input.as_bytes()).await?;
                    stdin.shutdown().await?;
                }
                let mut out = Vec::new();
                let mut err = Vec::new();
                if let Some(mut o) = child.stdout.take() {
                    o.read_to_end(&mut out).await?;
                }
                if let Some(mut e) = child.stderr.take() {
                    e.read_to_end(&mut err).await?;
                }
                let status = child.wait().await?;
                Ok::<_, std::io::Error>((status, out, err))
            };
            let (status, out, err) = match tokio::time::timeout(self.timeout, run).await {
                Err(_) => {
                    return Err(SendError::temporary(format!(
                        "the SMS command did not finish within {} seconds",
                        self.timeout.as_secs()
                    )));
                }
                Ok(Err(e)) => {
                    return Err(SendError::temporary(format!("the SMS command failed: {e}")));
                }
                Ok(Ok(done)) => done,
            };
            match status.code() {
                Some(0) => Ok(match first_line(&out) {
                    l if l.is_empty() => "accepted by the SMS command".to_owned(),
                    l => l,
                }),
                Some(EXIT_PERMANENT) => Err(SendError::permanent(format!(
                    "the SMS command refused the message (exit {EXIT_PERMANENT}): {}",
                    first_line(&err)
                ))),
                code => Err(SendError::temporary(format!(
                    "the SMS command failed ({}): {}",
                    code.map_or_else(|| "killed by a signal".to_owned(), |c| format!("exit {c}")),
                    first_line(&err)
                ))),
            }
        })
    }

    fn describe(&self) -> String {
        format!("the command {}", self.program)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use irflow_store::MessageId;

    fn sh(script: &str) -> CommandSmsGateway {
        CommandSmsGateway::new(
            &["sh".to_owned(), "-c".to_owned(), script.to_owned()],
            Duration::from_secs(5),
        )
        .expect("gateway")
    }

    fn sms() -> OutgoingSms<'static> {
        OutgoingSms {
            id: MessageId::new(3),
            kind: "reminder_1_day",
            to: "+16175550100",
            text: "Tomorrow at 9:30 \"Main\" building",
        }
    }

    #[tokio::test]
    async fn the_program_gets_json_and_its_exit_status_decides() {
        let dir = tempfile::tempdir().expect("dir");
        let seen = dir.path().join("seen.json");
        let gw = sh(&format!("cat > '{}'; echo queued 77", seen.display()));
        assert_eq!(gw.send(&sms()).await, Ok("queued 77".to_owned()));
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&seen).expect("written")).expect("json");
        assert_eq!(json["to"], "+16175550100");
        assert_eq!(json["message_id"], 3);
        assert_eq!(json["text"], "Tomorrow at 9:30 \"Main\" building");

        let refused = sh("cat >/dev/null; echo 'not a mobile' >&2; exit 65")
            .send(&sms())
            .await
            .expect_err("refused");
        assert!(refused.permanent);
        assert!(
            refused.detail.contains("not a mobile"),
            "{}",
            refused.detail
        );
        let busy = sh("cat >/dev/null; exit 1")
            .send(&sms())
            .await
            .expect_err("busy");
        assert!(!busy.permanent);
        let missing = CommandSmsGateway::new(
            &["/nonexistent/send-sms".to_owned()],
            Duration::from_secs(5),
        )
        .expect("gateway")
        .send(&sms())
        .await
        .expect_err("missing");
        assert!(!missing.permanent);
        assert!(CommandSmsGateway::new(&[], Duration::from_secs(1)).is_err());
    }

    #[tokio::test]
    async fn a_hung_program_is_timed_out() {
        let gw = CommandSmsGateway::new(
            &["sh".to_owned(), "-c".to_owned(), "sleep 30".to_owned()],
            Duration::from_millis(300),
        )
        .expect("gateway");
        let err = gw.send(&sms()).await.expect_err("timed out");
        assert!(!err.permanent);
        assert!(err.detail.contains("did not finish"), "{}", err.detail);
    }
}
