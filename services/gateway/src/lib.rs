//! Meterline's reference AI gateway and RAG service.
//!
//! Both are small on purpose, to copy from: every request is
//! authenticated by a bearer token naming the tenant ([`auth`]), asks the
//! budget service's verdict before doing any work ([`throttle`]; refused
//! with 429 when blocked, served with a cheaper model when degraded),
//! calls a simulated model ([`model`], [`vectors`]) and emits one usage
//! event per billed thing through the SDK ([`sink`], [`deliveries`]).
//!
//! ```text
//! request → auth → decision → model → usage event → response
//!                     │                    └─ broker ack awaited in the background
//!                     └─ 429 / cheaper model
//! ```

pub mod app;
pub mod auth;
pub mod config;
pub mod deliveries;
pub mod error;
pub mod meterline_info;
pub mod metrics;
pub mod model;
pub mod openai;
pub mod rag;
pub mod request;
pub mod sink;
pub mod state;
pub mod throttle;
pub mod usage;
pub mod vectors;

pub use app::{gateway_router, rag_router, run, serve, Service};
pub use config::{Config, ConfigError, JwtSecret};
pub use metrics::Metrics;
pub use sink::{MemorySink, UsageSink};
pub use state::AppState;
