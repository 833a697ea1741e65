//! Who is calling: the tenant named by a verified bearer token.
//!
//! The tenant is the unit of billing and budgets, so it comes only from
//! the signed token, never from the body or a header the client controls:
//! a client that could name its tenant could bill another one, or dodge
//! its own block.

use std::collections::HashSet;

use axum::http::{header, HeaderMap};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use meterline_core::ids::IdError;
use meterline_core::TenantId;
use serde::{Deserialize, Serialize};

/// Why a request is not authenticated. Messages go back to the client, so
/// they say what is wrong without echoing the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    #[error("missing Authorization header; send `Authorization: Bearer <token>`")]
    MissingHeader,
    #[error("the Authorization header is not `Bearer <token>`")]
    NotBearer,
    #[error("invalid token: {0}")]
    InvalidToken(#[from] jsonwebtoken::errors::Error),
    #[error("the token's tenant_id is invalid: {0}")]
    InvalidTenant(#[from] IdError),
}

/// The claims this service reads; others are ignored.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub tenant_id: String,
    /// Expiry, seconds since the epoch. Checked when present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<u64>,
}

/// Verifies HS256 bearer tokens.
pub struct Authenticator {
    key: DecodingKey,
    validation: Validation,
}

impl Authenticator {
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked when present but not required: service tokens
        // issued to a tenant's backend are often long-lived, and rotation
        // of the shared secret is what revokes them.
        validation.required_spec_claims = HashSet::new();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        Self { key: DecodingKey::from_secret(secret), validation }
    }

    /// The tenant named by the request's bearer token.
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<TenantId, AuthError> {
        let value = headers.get(header::AUTHORIZATION).ok_or(AuthError::MissingHeader)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?;
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() => token.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)?;
        Ok(TenantId::parse(&data.claims.tenant_id)?)
    }
}

/// Signs a token for `tenant_id`: for tests and local development (the
/// gateway binary's `mint-token` command). Production tokens come from the
/// identity service that shares the secret.
pub fn mint_token(secret: &[u8], tenant_id: &str, exp: Option<u64>) -> Result<String, jsonwebtoken::errors::Error> {
    let claims = Claims { tenant_id: tenant_id.to_owned(), exp };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    const SECRET: &[u8] = b"test-secret-of-at-least-32-bytes!!";

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    #[test]
    fn a_valid_token_names_the_tenant() {
        let auth = Authenticator::new(SECRET);
        let token = mint_token(SECRET, "acme", None).unwrap();
        assert_eq!(auth.authenticate(&headers(&format!("Bearer {token}"))).unwrap().as_str(), "acme");
        let token = mint_token(SECRET, "acme", Some(now() + 600)).unwrap();
        assert_eq!(auth.authenticate(&headers(&format!("bearer {token}"))).unwrap().as_str(), "acme");
    }

    #[test]
    fn everything_else_is_refused() {
        let auth = Authenticator::new(SECRET);
        assert!(matches!(auth.authenticate(&HeaderMap::new()), Err(AuthError::MissingHeader)));
        assert!(matches!(auth.authenticate(&headers("Basic abc")), Err(AuthError::NotBearer)));
        assert!(matches!(auth.authenticate(&headers("Bearer ")), Err(AuthError::NotBearer)));
        assert!(matches!(auth.authenticate(&headers("Bearer not.a.jwt")), Err(AuthError::InvalidToken(_))));
        let forged = mint_token(b"another-secret", "acme", None).unwrap();
        assert!(matches!(auth.authenticate(&headers(&format!("Bearer {forged}"))), Err(AuthError::InvalidToken(_))));
        let expired = mint_token(SECRET, "acme", Some(now() - 3600)).unwrap();
        assert!(matches!(auth.authenticate(&headers(&format!("Bearer {expired}"))), Err(AuthError::InvalidToken(_))));
        let bad_tenant = mint_token(SECRET, "acme corp", None).unwrap();
        assert!(matches!(auth.authenticate(&headers(&format!("Bearer {bad_tenant}"))), Err(AuthError::InvalidTenant(_))));
    }

    #[test]
    fn a_token_signed_with_another_algorithm_is_refused() {
        // `alg: none` and RS/HS confusion are the classic JWT forgeries.
        let claims = Claims { tenant_id: "acme".into(), exp: None };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS512), &claims, &EncodingKey::from_secret(SECRET)).unwrap();
        assert!(Authenticator::new(SECRET).authenticate(&headers(&format!("Bearer {token}"))).is_err());
    }
}
