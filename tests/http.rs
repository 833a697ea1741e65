//! Talking to the reference gateway like a client would: HTTP with a
//! bearer token, through curl (on every machine the stack runs on).

use std::collections::HashMap;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: serde_json::Value,
}

pub fn post_json(url: &str, token: &str, body: &serde_json::Value) -> Result<Response> {
    let out = Command::new("curl")
        .args(["-sS", "-i", "-m", "10", "-X", "POST", url, "-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {token}"), "--data-binary", &body.to_string()])
        .output()
        .context("running curl")?;
    if !out.status.success() {
        bail!("curl {url} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse(&String::from_utf8_lossy(&out.stdout))
}

fn parse(raw: &str) -> Result<Response> {
    let (head, body) = raw.split_once("\r\n\r\n").context("no header/body separator")?;
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).context("no status line")?;
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned())).collect();
    let body = serde_json::from_str(body).unwrap_or(serde_json::Value::String(body.to_owned()));
    Ok(Response { status, headers, body })
}

/// A free local port (bound and released: a service started right after
/// gets it unless something else grabs it first).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Polls `GET url` until it answers 200.
pub async fn wait_healthy(url: &str, timeout: std::time::Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let ok = Command::new("curl").args(["-fsS", "-m", "2", url]).output().map(|o| o.status.success()).unwrap_or(false);
        if ok {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            bail!("{url} not healthy after {timeout:?}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
