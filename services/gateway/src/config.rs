//! Configuration from the environment: defaults that run locally, each
//! overridable by one variable. The JWT secret has no default: a gateway
//! that silently accepted tokens signed with a well-known key would let
//! anyone bill (or avoid billing) any tenant.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// What is wrong with the environment, naming the variable to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0} is not set; it is required (an HS256 key shared with the token issuer)")]
    Missing(&'static str),
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid { var: &'static str, value: String, reason: String },
}

/// The HS256 key. Never printed: `Debug` redacts it.
#[derive(Clone)]
pub struct JwtSecret(String);

impl JwtSecret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    pub fn expose(&self) -> &[u8] {
        self.0.as_bytes()
    }
}

impl fmt::Debug for JwtSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtSecret([redacted])")
    }
}

/// Settings shared by the gateway and the RAG service.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the gateway listens (`METERLINE_GATEWAY_LISTEN`).
    pub gateway_listen: SocketAddr,
    /// Where the RAG service listens (`METERLINE_RAG_LISTEN`).
    pub rag_listen: SocketAddr,
    /// Key that verifies bearer tokens (`METERLINE_JWT_SECRET`, required).
    pub jwt_secret: JwtSecret,
    /// Simulated model latency per call (`METERLINE_MODEL_LATENCY_MS`).
    pub model_latency: Duration,
    /// Provider named in usage events for chat and embeddings
    /// (`METERLINE_GATEWAY_PROVIDER`); prices are looked up by it.
    pub provider: String,
    /// Embedding model the RAG service uses for search queries
    /// (`METERLINE_RAG_EMBEDDING_MODEL`).
    pub embedding_model: String,
    /// Provider named in vector search events (`METERLINE_RAG_VECTOR_STORE`).
    pub vector_store: String,
    /// Most API requests served at once; more wait (`METERLINE_MAX_CONCURRENT_REQUESTS`).
    pub max_concurrent_requests: usize,
}

impl Config {
    /// Defaults for everything but the secret.
    pub fn with_secret(secret: JwtSecret) -> Self {
        Self {
            gateway_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            rag_listen: SocketAddr::from(([127, 0, 0, 1], 8081)),
            jwt_secret: secret,
            model_latency: Duration::from_millis(20),
            provider: "openai".into(),
            embedding_model: "text-embedding-3-small".into(),
            vector_store: "pgvector".into(),
            max_concurrent_requests: 1024,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// `from_env` with the environment passed in, so tests need not mutate
    /// the process environment (shared by every test thread).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        const SECRET: &str = "METERLINE_JWT_SECRET";
        let secret = get(SECRET).filter(|s| !s.is_empty()).ok_or(ConfigError::Missing(SECRET))?;
        let mut c = Self::with_secret(JwtSecret::new(secret));
        if let Some(v) = get("METERLINE_GATEWAY_LISTEN") {
            c.gateway_listen = parse("METERLINE_GATEWAY_LISTEN", v)?;
        }
        if let Some(v) = get("METERLINE_RAG_LISTEN") {
            c.rag_listen = parse("METERLINE_RAG_LISTEN", v)?;
        }
        if let Some(v) = get("METERLINE_MODEL_LATENCY_MS") {
            c.model_latency = Duration::from_millis(parse("METERLINE_MODEL_LATENCY_MS", v)?);
        }
        if let Some(v) = get("METERLINE_GATEWAY_PROVIDER") {
            c.provider = non_empty("METERLINE_GATEWAY_PROVIDER", v)?;
        }
        if let Some(v) = get("METERLINE_RAG_EMBEDDING_MODEL") {
            c.embedding_model = non_empty("METERLINE_RAG_EMBEDDING_MODEL", v)?;
        }
        if let Some(v) = get("METERLINE_RAG_VECTOR_STORE") {
            c.vector_store = non_empty("METERLINE_RAG_VECTOR_STORE", v)?;
        }
        if let Some(v) = get("METERLINE_MAX_CONCURRENT_REQUESTS") {
            c.max_concurrent_requests = parse("METERLINE_MAX_CONCURRENT_REQUESTS", v.clone())?;
            if c.max_concurrent_requests == 0 {
                return Err(ConfigError::Invalid {
                    var: "METERLINE_MAX_CONCURRENT_REQUESTS",
                    value: v,
                    reason: "must be at least 1".into(),
                });
            }
        }
        Ok(c)
    }
}

fn parse<T: std::str::FromStr>(var: &'static str, value: String) -> Result<T, ConfigError>
where
    T::Err: fmt::Display,
{
    value.trim().parse().map_err(|e: T::Err| ConfigError::Invalid { var, reason: e.to_string(), value })
}

fn non_empty(var: &'static str, value: String) -> Result<String, ConfigError> {
    if value.trim().is_empty() {
        return Err(ConfigError::Invalid { var, value, reason: "must not be empty".into() });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn the_secret_is_required_and_everything_else_has_a_default() {
        let err = Config::from_lookup(env(&[])).unwrap_err();
        assert!(err.to_string().contains("METERLINE_JWT_SECRET"), "{err}");
        let c = Config::from_lookup(env(&[("METERLINE_JWT_SECRET", "s")])).unwrap();
        assert_eq!(c.gateway_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.rag_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.model_latency, Duration::from_millis(20));
        assert_eq!(c.provider, "openai");
    }

    #[test]
    fn overrides_apply_and_bad_values_name_their_variable() {
        let c = Config::from_lookup(env(&[
            ("METERLINE_JWT_SECRET", "s"),
            ("METERLINE_GATEWAY_LISTEN", "0.0.0.0:9000"),
            ("METERLINE_MODEL_LATENCY_MS", "0"),
            ("METERLINE_GATEWAY_PROVIDER", "anthropic"),
        ]))
        .unwrap();
        assert_eq!(c.gateway_listen.port(), 9000);
        assert_eq!(c.model_latency, Duration::ZERO);
        assert_eq!(c.provider, "anthropic");
        let err = Config::from_lookup(env(&[("METERLINE_JWT_SECRET", "s"), ("METERLINE_MODEL_LATENCY_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("METERLINE_MODEL_LATENCY_MS"), "{err}");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let c = Config::from_lookup(env(&[("METERLINE_JWT_SECRET", "hunter2")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
