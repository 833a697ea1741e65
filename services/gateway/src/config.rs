//! Configuration from the environment: defaults that run locally, each
//! overridable by one variable. The JWT secret has no default: a gateway
//! that silently accepted tokens signed with a well-known key would let
//! anyone bill (or avoid billing) any tenant.

use std::fmt;
use std::net::SocketAddr;

use meterline_core::config::{defaults, Env, EnvError};
use std::time::Duration;

/// What is wrong with the environment, naming the variable to fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("{0} is not set; it is required (an HS256 key shared with the token issuer)")]
    Missing(&'static str),
    #[error(transparent)]
    Invalid(#[from] EnvError),
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
            gateway_listen: defaults::GATEWAY_LISTEN.parse().expect("a valid default address"),
            rag_listen: defaults::RAG_LISTEN.parse().expect("a valid default address"),
            jwt_secret: secret,
            model_latency: Duration::from_millis(20),
            provider: "openai".into(),
            embedding_model: "text-embedding-3-small".into(),
            vector_store: "pgvector".into(),
            max_concurrent_requests: 1024,
        }
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from(&Env::process())
    }

    /// `from_env` with the environment passed in, so tests need not mutate
    /// the process environment (shared by every test thread).
    pub fn from(env: &Env) -> Result<Self, ConfigError> {
        const SECRET: &str = "METERLINE_JWT_SECRET";
        let secret = env.get(SECRET).ok_or(ConfigError::Missing(SECRET))?;
        let d = Self::with_secret(JwtSecret::new(secret));
        let c = Self {
            gateway_listen: env.parse("METERLINE_GATEWAY_LISTEN", d.gateway_listen)?,
            rag_listen: env.parse("METERLINE_RAG_LISTEN", d.rag_listen)?,
            model_latency: Duration::from_millis(env.parse("METERLINE_MODEL_LATENCY_MS", d.model_latency.as_millis() as u64)?),
            provider: env.string("METERLINE_GATEWAY_PROVIDER", &d.provider),
            embedding_model: env.string("METERLINE_RAG_EMBEDDING_MODEL", &d.embedding_model),
            vector_store: env.string("METERLINE_RAG_VECTOR_STORE", &d.vector_store),
            max_concurrent_requests: env.parse("METERLINE_MAX_CONCURRENT_REQUESTS", d.max_concurrent_requests)?,
            ..d
        };
        if c.max_concurrent_requests == 0 {
            return Err(ConfigError::Invalid(EnvError {
                var: "METERLINE_MAX_CONCURRENT_REQUESTS".into(),
                value: "0".into(),
                reason: "must be at least 1".into(),
            }));
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs)
    }

    #[test]
    fn the_secret_is_required_and_everything_else_has_a_default() {
        let err = Config::from(&env(&[])).unwrap_err();
        assert!(err.to_string().contains("METERLINE_JWT_SECRET"), "{err}");
        let c = Config::from(&env(&[("METERLINE_JWT_SECRET", "s")])).unwrap();
        assert_eq!(c.gateway_listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.rag_listen.to_string(), "127.0.0.1:8081");
        assert_eq!(c.model_latency, Duration::from_millis(20));
        assert_eq!(c.provider, "openai");
    }

    #[test]
    fn overrides_apply_and_bad_values_name_their_variable() {
        let c = Config::from(&env(&[
            ("METERLINE_JWT_SECRET", "s"),
            ("METERLINE_GATEWAY_LISTEN", "0.0.0.0:9000"),
            ("METERLINE_MODEL_LATENCY_MS", "0"),
            ("METERLINE_GATEWAY_PROVIDER", "anthropic"),
        ]))
        .unwrap();
        assert_eq!(c.gateway_listen.port(), 9000);
        assert_eq!(c.model_latency, Duration::ZERO);
        assert_eq!(c.provider, "anthropic");
        let err = Config::from(&env(&[("METERLINE_JWT_SECRET", "s"), ("METERLINE_MODEL_LATENCY_MS", "soon")])).unwrap_err();
        assert!(err.to_string().contains("METERLINE_MODEL_LATENCY_MS"), "{err}");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let c = Config::from(&env(&[("METERLINE_JWT_SECRET", "hunter2")])).unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
