//! Webhook signatures as the Standard Webhooks specification defines them
//! (<https://www.standardwebhooks.com>): HMAC-SHA256 over
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, keyed by the base64 part of a
//! `whsec_` secret, sent as `webhook-signature: v1,<base64>`. Receivers can
//! verify with any Standard Webhooks library; the specification's published
//! test vector is checked below.
//!
//! Several signatures may be sent at once, separated by spaces: while a
//! secret is rotated, the old and the new one both sign, so a receiver that
//! still holds the old secret keeps verifying until it switches.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use url::Url;

/// The prefix of every secret, so a secret pasted in the wrong place is
/// recognisable (and scanners can find leaked ones).
pub const SECRET_PREFIX: &str = "whsec_";
/// Fewest and most key bytes a secret may carry (24–64, as issued).
pub const MIN_KEY_BYTES: usize = 24;
pub const MAX_KEY_BYTES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookSecretError {
    #[error("a webhook secret starts with {SECRET_PREFIX}")]
    Prefix,
    #[error("a webhook secret is {SECRET_PREFIX} followed by base64")]
    Base64,
    #[error("a webhook secret carries {MIN_KEY_BYTES} to {MAX_KEY_BYTES} key bytes, not {0}")]
    Length(usize),
}

/// A signing key. Never printed: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret {
    key: Vec<u8>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret([redacted])")
    }
}

impl WebhookSecret {
    /// A secret from raw key bytes (e.g. fresh from a CSPRNG).
    pub fn from_key(key: &[u8]) -> Result<Self, WebhookSecretError> {
        if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
            return Err(WebhookSecretError::Length(key.len()));
        }
        Ok(Self { key: key.to_vec() })
    }

    /// Parses `whsec_<base64>`.
    pub fn parse(s: &str) -> Result<Self, WebhookSecretError> {
        let b64 = s.strip_prefix(SECRET_PREFIX).ok_or(WebhookSecretError::Prefix)?;
        let key = STANDARD.decode(b64).map_err(|_| WebhookSecretError::Base64)?;
        Self::from_key(&key)
    }

    /// The secret as it is shown once to its owner and stored: `whsec_<base64>`.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.key))
    }

    /// `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`.
    pub fn sign(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> String {
        format!("v1,{}", STANDARD.encode(self.mac(id, timestamp_secs, body).finalize().into_bytes()))
    }

    /// The HMAC of what the specification signs, before finalising.
    fn mac(&self, id: &str, timestamp_secs: i64, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{timestamp_secs}.").as_bytes());
        mac.update(body);
        mac
    }

    /// Whether any `v1` signature of a `webhook-signature` header value
    /// (space-separated entries) is this secret's, compared in constant time.
    pub fn verify(&self, id: &str, timestamp_secs: i64, body: &[u8], header: &str) -> bool {
        header
            .split(' ')
            .filter_map(|entry| entry.strip_prefix("v1,"))
            .filter_map(|b64| STANDARD.decode(b64).ok())
            .any(|sig| self.mac(id, timestamp_secs, body).verify_slice(&sig).is_ok())
    }
}

/// The event types a channel can subscribe to: the names are part of the
/// webhook contract (a breaking change of a type's `data` gets a new name).
pub const EVENT_TYPES: &[&str] =
    &["budget.threshold_crossed", "budget.forecast_exceeded", "budget.blocked", "budget.recovered", "notify.test"];

/// Whether `url` can be a webhook endpoint at all (checked when a channel is
/// added, and again at each attempt).
pub fn check_endpoint_url(url: &str) -> Result<Url, String> {
    if url.len() > 2048 {
        return Err("a webhook URL is at most 2048 characters".into());
    }
    let parsed = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err(format!("the scheme is https or http, not {}", parsed.scheme()));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("credentials do not belong in a webhook URL; the signature authenticates the sender".into());
    }
    if parsed.host().is_none() {
        return Err("the URL has no host".into());
    }
    Ok(parsed)
}

/// The `webhook-signature` header value for `secrets` (current first, then
/// any still in their rotation grace period): one entry per secret.
pub fn signature_header(secrets: &[WebhookSecret], id: &str, timestamp_secs: i64, body: &[u8]) -> String {
    secrets.iter().map(|s| s.sign(id, timestamp_secs, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    // The Standard Webhooks specification's published test vector.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TIMESTAMP: i64 = 1_614_265_330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn the_specifications_test_vector_signs_and_verifies() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert_eq!(secret.sign(ID, TIMESTAMP, BODY), SIGNATURE);
        assert!(secret.verify(ID, TIMESTAMP, BODY, SIGNATURE));
        assert_eq!(secret.expose(), SECRET);
    }

    #[test]
    fn any_change_breaks_the_signature() {
        let secret = WebhookSecret::parse(SECRET).unwrap();
        assert!(!secret.verify(ID, TIMESTAMP + 1, BODY, SIGNATURE));
        assert!(!secret.verify("msg_other", TIMESTAMP, BODY, SIGNATURE));
        assert!(!secret.verify(ID, TIMESTAMP, br#"{"test": 2432232315}"#, SIGNATURE));
        assert!(!secret.verify(ID, TIMESTAMP, BODY, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="));
        assert!(!secret.verify(ID, TIMESTAMP, BODY, "v1,not base64!"));
    }

    #[test]
    fn during_rotation_both_secrets_sign() {
        let old = WebhookSecret::parse(SECRET).unwrap();
        let new = WebhookSecret::from_key(&[7u8; 32]).unwrap();
        let header = signature_header(&[new.clone(), old.clone()], ID, TIMESTAMP, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(old.verify(ID, TIMESTAMP, BODY, &header));
        assert!(new.verify(ID, TIMESTAMP, BODY, &header));
    }

    #[test]
    fn endpoint_urls_are_http_without_credentials() {
        assert!(check_endpoint_url("https://hooks.example.com/x?y=1").is_ok());
        assert!(check_endpoint_url("ftp://example.com").unwrap_err().contains("scheme"));
        assert!(check_endpoint_url("https://u:p@example.com").unwrap_err().contains("credentials"));
        assert!(check_endpoint_url(&format!("https://example.com/{}", "a".repeat(3000))).is_err());
    }

    #[test]
    fn malformed_secrets_are_refused_without_echoing_them() {
        assert_eq!(WebhookSecret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), Err(WebhookSecretError::Prefix));
        assert_eq!(WebhookSecret::parse("whsec_***"), Err(WebhookSecretError::Base64));
        assert_eq!(WebhookSecret::from_key(&[1; 8]), Err(WebhookSecretError::Length(8)));
        assert_eq!(WebhookSecret::from_key(&[1; 65]), Err(WebhookSecretError::Length(65)));
        assert!(!format!("{:?}", WebhookSecret::parse(SECRET).unwrap()).contains("MfKQ"));
    }
}
