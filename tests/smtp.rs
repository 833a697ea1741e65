//! A real SMTP server for the tests (Debian's aiosmtpd, its `Mailbox`
//! handler writing each accepted message into a maildir), and just enough
//! MIME reading to check what arrived, written for the tests rather than
//! shared with the sender.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// aiosmtpd on `127.0.0.1:port`; killed when dropped.
pub struct SmtpServer {
    child: Child,
    maildir: PathBuf,
}

impl SmtpServer {
    /// Starts the server and waits until it accepts connections. Its output
    /// goes to `aiosmtpd.log` beside the maildir.
    pub fn start(port: u16, maildir: &Path) -> Result<Self> {
        // Python's Maildir makes its subdirectories only when it makes the
        // maildir itself; made here, they are there either way.
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub))?;
        }
        let log = maildir.parent().unwrap_or(maildir).join("aiosmtpd.log");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new("/usr/bin/python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
            .arg(maildir)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("starting aiosmtpd (Debian package python3-aiosmtpd)")?;
        let mut server = Self { child, maildir: maildir.to_owned() };
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.try_wait()? {
                bail!("aiosmtpd exited ({status}); see {}", log.display());
            }
            if Instant::now() > deadline {
                bail!("aiosmtpd did not listen on port {port} within 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(server)
    }

    /// Every message delivered so far, as written (the maildir's `new/`).
    pub fn messages(&self) -> Result<Vec<String>> {
        let dir = self.maildir.join("new");
        if !dir.exists() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            out.push(std::fs::read_to_string(entry?.path())?);
        }
        Ok(out)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A message (or a MIME part) split into unfolded headers and its body,
/// line ends normalised to `\n`.
pub struct Mime {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mime {
    pub fn parse(raw: &str) -> Self {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = raw.split_once("\n\n").unwrap_or((&raw, ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            match headers.last_mut() {
                // A folded line continues the header before it.
                Some((_, value)) if line.starts_with([' ', '\t']) => value.push_str(line),
                _ => {
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_owned(), v.trim().to_owned()));
                    }
                }
            }
        }
        Self { headers, body: body.to_owned() }
    }

    /// A header's value, its name matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The parts of a multipart body, per its `boundary`.
    pub fn parts(&self) -> Result<Vec<Mime>> {
        let content_type = self.header("Content-Type").context("no Content-Type")?;
        let boundary =
            content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary=")).context("no boundary")?.trim_matches('"').to_owned();
        let delimiter = format!("--{boundary}");
        let mut parts = Vec::new();
        for chunk in self.body.split(&delimiter).skip(1) {
            if chunk.starts_with("--") {
                break;
            }
            parts.push(Mime::parse(chunk.trim_start_matches('\n')));
        }
        Ok(parts)
    }

    /// The body decoded from its transfer encoding (7bit, 8bit or
    /// quoted-printable: what a text part of ASCII is sent as).
    pub fn decoded_body(&self) -> Result<String> {
        match self.header("Content-Transfer-Encoding").unwrap_or("7bit").to_ascii_lowercase().as_str() {
            "7bit" | "8bit" => Ok(self.body.clone()),
            "quoted-printable" => {
                let joined = self.body.replace("=\n", "");
                let bytes = joined.as_bytes();
                let mut out = Vec::with_capacity(bytes.len());
                let mut i = 0;
                while i < bytes.len() {
                    if bytes[i] == b'=' && i + 2 < bytes.len() {
                        let hex = std::str::from_utf8(&bytes[i + 1..i + 3])?;
                        out.push(u8::from_str_radix(hex, 16)?);
                        i += 3;
                    } else {
                        out.push(bytes[i]);
                        i += 1;
                    }
                }
                Ok(String::from_utf8(out)?)
            }
            other => bail!("transfer encoding {other} is not read by this test"),
        }
    }
}
