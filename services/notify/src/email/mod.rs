//! Email delivery: the event rendered (`render`) as a multipart/alternative
//! message and handed to the configured SMTP server, with the server's
//! answer classified as delivered, retriable or permanent.
//!
//! One connection per message (no pool): alerts are rare, and a fresh
//! connection never inherits a half-broken session from the last send.

pub mod render;

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor};
use meterline_core::config::SecretUrl;

use crate::outcome::{error_chain, Attempt};
use crate::NotifyError;
pub use render::{render, Rendered};

#[derive(Clone)]
pub struct EmailSender {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl EmailSender {
    /// `url` is `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port` (TLS), credentials optionally in
    /// it. `timeout` bounds a whole attempt (connect, dialogue, data).
    pub fn new(url: &SecretUrl, from: Mailbox, timeout: Duration) -> Result<Self, NotifyError> {
        // The URL may hold a password: errors name it redacted only.
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose())
            .map_err(|e| NotifyError::Config(format!("METERLINE_SMTP_URL={url}: {e}")))?;
        let transport = builder.timeout(Some(timeout)).build();
        Ok(Self { transport, from, timeout })
    }

    /// Sends one message to `to`, a bare address (`alerts@example.com`).
    /// `message_id` is the whole `Message-ID` value, `<…@…>`, stable across
    /// a delivery's attempts so mail clients can fold a resend into one.
    pub async fn send(&self, to: &str, message_id: String, content: &Rendered) -> Attempt {
        let message = match self.message(to, message_id, content) {
            Ok(m) => m,
            Err(error) => return Attempt::Permanent { error, status: None, disable: false },
        };
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(response)) => Attempt::Delivered { status: Some(u16::from(response.code())) },
            Ok(Err(e)) => classify(&e),
            Err(_) => Attempt::Retry { error: format!("SMTP: no answer within {:?}", self.timeout), status: None, retry_after: None },
        }
    }

    fn message(&self, to: &str, message_id: String, content: &Rendered) -> Result<Message, String> {
        let address: Address = to.parse().map_err(|e| format!("recipient {:?} is not an email address: {e}", render::clean(to)))?;
        Message::builder()
            .from(self.from.clone())
            .to(Mailbox::new(None, address))
            .subject(content.subject.clone())
            .message_id(Some(message_id))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(content.text.clone()))
                    .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(content.html.clone())),
            )
            .map_err(|e| format!("building the message: {e}"))
    }
}

/// 5xx replies (550 no such user, 554 rejected) are permanent; 4xx replies
/// (452 mailbox full, 421 try later), refused connections, timeouts, TLS
/// and I/O trouble may pass, and are retried per the schedule. `status` is
/// the SMTP reply code where there was one.
pub fn classify(e: &smtp::Error) -> Attempt {
    let status = e.status().map(u16::from);
    let error = format!("SMTP: {}", error_chain(e));
    if e.is_permanent() {
        Attempt::Permanent { error, status, disable: false }
    } else {
        Attempt::Retry { error, status, retry_after: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sender(url: &str) -> EmailSender {
        EmailSender::new(&SecretUrl::new(url), "Meterline <alerts@meterline.invalid>".parse().unwrap(), Duration::from_secs(2)).unwrap()
    }

    fn content() -> Rendered {
        render("notify.test", &serde_json::json!({ "tenant_id": "acme" }))
    }

    #[tokio::test]
    async fn an_unparseable_recipient_is_permanent_and_never_reaches_the_server() {
        for to in ["not an address", "a@b.c\r\nBcc: x@y.z", "Name <a@b.c>", ""] {
            let attempt = sender("smtp://127.0.0.1:1").send(to, "<m@meterline>".into(), &content()).await;
            assert!(matches!(attempt, Attempt::Permanent { disable: false, status: None, .. }), "{to:?}: {attempt:?}");
        }
    }

    #[tokio::test]
    async fn a_refused_connection_is_retried() {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let attempt = sender(&format!("smtp://127.0.0.1:{port}")).send("ops@example.com", "<m@meterline>".into(), &content()).await;
        assert!(matches!(attempt, Attempt::Retry { status: None, .. }), "{attempt:?}");
    }

    /// A scripted SMTP server for one session: `rcpt` is its answer to
    /// `RCPT TO`; everything else is accepted.
    async fn scripted_server(rcpt: &'static str) -> u16 {
        use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            let (read, mut write) = socket.into_split();
            let mut lines = BufReader::new(read).lines();
            write.write_all(b"220 scripted ESMTP\r\n").await.unwrap();
            let mut in_data = false;
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = if in_data {
                    if line != "." {
                        continue;
                    }
                    in_data = false;
                    "250 queued"
                } else {
                    match line.get(..4).unwrap_or_default().to_ascii_uppercase().as_str() {
                        "RCPT" => rcpt,
                        "DATA" => {
                            in_data = true;
                            "354 go ahead"
                        }
                        "QUIT" => "221 bye",
                        _ => "250 ok",
                    }
                };
                write.write_all(format!("{reply}\r\n").as_bytes()).await.unwrap();
            }
        });
        port
    }

    #[tokio::test]
    async fn smtp_replies_are_classified_5xx_permanent_4xx_retried() {
        let send = |port: u16| async move {
            sender(&format!("smtp://127.0.0.1:{port}")).send("ops@example.com", "<m@meterline>".into(), &content()).await
        };
        let attempt = send(scripted_server("550 5.1.1 no such user").await).await;
        assert!(matches!(attempt, Attempt::Permanent { status: Some(550), disable: false, .. }), "{attempt:?}");
        let attempt = send(scripted_server("452 4.2.2 mailbox full").await).await;
        assert!(matches!(attempt, Attempt::Retry { status: Some(452), .. }), "{attempt:?}");
        let attempt = send(scripted_server("250 ok").await).await;
        assert!(matches!(attempt, Attempt::Delivered { status: Some(250) }), "{attempt:?}");
    }

    #[test]
    fn a_bad_url_is_a_configuration_error_that_hides_the_password() {
        let err = EmailSender::new(&SecretUrl::new("smtq://user:hunter2@host:25"), "a@b.c".parse().unwrap(), Duration::from_secs(1))
            .err()
            .expect("an unknown scheme is refused");
        let text = err.to_string();
        assert!(text.contains("METERLINE_SMTP_URL") && !text.contains("hunter2"), "{text}");
    }

    #[test]
    fn the_message_is_multipart_alternative_with_the_stable_id() {
        let m = sender("smtp://127.0.0.1:1").message("ops@example.com", "<msg_1@meterline>".into(), &content()).unwrap();
        let raw = String::from_utf8(m.formatted()).unwrap();
        assert!(raw.contains("Message-ID: <msg_1@meterline>"), "{raw}");
        assert!(raw.contains("multipart/alternative"), "{raw}");
        assert!(raw.contains("text/plain") && raw.contains("text/html"), "{raw}");
        assert!(raw.contains("To: ops@example.com"), "{raw}");
    }
}
