//! Webhook delivery: a Standard Webhooks request (signed JSON body, three
//! headers) to the channel's URL, over a client that reaches only allowed
//! addresses (`address`) and never follows redirects, with the receiver's
//! answer classified as delivered, retriable or permanent.

pub mod address;
mod resolver;

use std::sync::Arc;
use std::time::Duration;

use meterline_core::webhook::{check_endpoint_url, signature_header, WebhookSecret};
use reqwest::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};

use crate::outcome::{error_chain, Attempt};
use address::AddressPolicy;

/// One webhook request, signed at each attempt (the timestamp is the
/// attempt's, so receivers that refuse old timestamps accept a late retry).
pub struct WebhookRequest<'a> {
    pub url: &'a str,
    /// `webhook-id`: the same for every attempt of a delivery, so receivers
    /// can drop the one resend whose first outcome we never learnt.
    pub id: &'a str,
    pub body: &'a [u8],
    /// The current secret first, then one still in its rotation grace.
    pub secrets: &'a [WebhookSecret],
    pub timestamp_secs: i64,
}

#[derive(Clone)]
pub struct WebhookSender {
    client: reqwest::Client,
    policy: Arc<AddressPolicy>,
}

impl WebhookSender {
    /// `timeout` bounds a whole attempt (connect, send, answer).
    pub fn new(policy: AddressPolicy, timeout: Duration) -> Result<Self, reqwest::Error> {
        let policy = Arc::new(policy);
        let client = reqwest::Client::builder()
            // A redirect would let an allowed URL hand the request to any
            // address; receivers must give their final URL.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .dns_resolver(Arc::new(resolver::PolicyResolver::new(policy.clone())))
            .user_agent(concat!("Meterline-Webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, policy })
    }

    pub async fn send(&self, req: &WebhookRequest<'_>) -> Attempt {
        let url = match self.check_url(req.url) {
            Ok(url) => url,
            Err(error) => return Attempt::Permanent { error, status: None, disable: false },
        };
        let signature = signature_header(req.secrets, req.id, req.timestamp_secs, req.body);
        let sent = self
            .client
            .post(url)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .header("webhook-id", req.id)
            .header("webhook-timestamp", req.timestamp_secs.to_string())
            .header("webhook-signature", signature)
            .body(req.body.to_vec())
            .send()
            .await;
        match sent {
            Ok(response) => classify(response.status(), retry_after(response.headers().get(RETRY_AFTER))),
            Err(e) if e.is_builder() || e.is_redirect() => Attempt::Permanent { error: error_chain(&e), status: None, disable: false },
            // Refused by the address policy (from the resolver): permanent.
            Err(e) if error_chain(&e).contains("METERLINE_WEBHOOK_ALLOW_NETS") => {
                Attempt::Permanent { error: error_chain(&e), status: None, disable: false }
            }
            // Timeouts, refused connections, resets: the endpoint may recover.
            Err(e) => Attempt::Retry { error: error_chain(&e), status: None, retry_after: None },
        }
    }

    /// The URL parsed, `http` or `https`, and, where its host is an address
    /// rather than a name (which the resolver never sees), an allowed one.
    pub fn check_url(&self, url: &str) -> Result<Url, String> {
        let parsed = check_endpoint_url(url)?;
        let ip = match parsed.host() {
            Some(url::Host::Ipv4(v4)) => Some(std::net::IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(std::net::IpAddr::V6(v6)),
            _ => None,
        };
        if let Some(ip) = ip {
            self.policy.check(ip)?;
        }
        Ok(parsed)
    }
}

/// 2xx delivered; 408, 429 and 5xx retriable; 410 gone (and the channel is
/// turned off); any other answer, redirects included, permanent.
pub fn classify(status: StatusCode, retry_after: Option<Duration>) -> Attempt {
    let code = Some(status.as_u16());
    if status.is_success() {
        Attempt::Delivered { status: code }
    } else if status == StatusCode::GONE {
        Attempt::Permanent { error: "410 Gone: the receiver retired this endpoint".into(), status: code, disable: true }
    } else if status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS {
        Attempt::Retry { error: format!("HTTP {status}"), status: code, retry_after }
    } else if status.is_redirection() {
        Attempt::Permanent {
            error: format!("HTTP {status}: redirects are not followed; configure the final URL"),
            status: code,
            disable: false,
        }
    } else {
        Attempt::Permanent { error: format!("HTTP {status}"), status: code, disable: false }
    }
}

/// `Retry-After` in seconds (the HTTP-date form is rare for webhooks and
/// is ignored: the schedule's own wait applies).
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    value?.to_str().ok()?.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_classified_as_the_schedule_needs() {
        let c = |code: u16| classify(StatusCode::from_u16(code).unwrap(), None);
        assert!(matches!(c(200), Attempt::Delivered { .. }));
        assert!(matches!(c(204), Attempt::Delivered { .. }));
        for code in [500, 502, 503, 504, 408, 429] {
            assert!(matches!(c(code), Attempt::Retry { .. }), "{code}");
        }
        assert!(matches!(c(410), Attempt::Permanent { disable: true, .. }));
        for code in [400, 401, 403, 404, 413, 301, 302, 307] {
            assert!(matches!(c(code), Attempt::Permanent { disable: false, .. }), "{code}");
        }
        let with_wait = classify(StatusCode::TOO_MANY_REQUESTS, retry_after(Some(&HeaderValue::from_static(" 120 "))));
        assert!(matches!(with_wait, Attempt::Retry { retry_after: Some(d), .. } if d == Duration::from_secs(120)));
    }

    #[test]
    fn urls_are_checked_before_anything_is_sent() {
        let sender = WebhookSender::new(AddressPolicy::default(), Duration::from_secs(1)).unwrap();
        assert!(sender.check_url("https://hooks.example.com/meterline").is_ok());
        for (url, why) in [
            ("ftp://example.com/x", "scheme"),
            ("https://user:pw@example.com/", "credentials"),
            ("not a url", "not a URL"),
            ("http://169.254.169.254/latest/meta-data/", "link-local"),
            ("http://127.0.0.1:8080/", "loopback"),
            ("http://[::1]/", "loopback"),
            ("http://10.0.0.8/", "private"),
        ] {
            let err = sender.check_url(url).unwrap_err();
            assert!(err.contains(why), "{url}: {err}");
        }
        let local = WebhookSender::new(AddressPolicy::allowing(vec!["127.0.0.1/32".parse().unwrap()]), Duration::from_secs(1)).unwrap();
        assert!(local.check_url("http://127.0.0.1:8080/hook").is_ok());
    }
}
