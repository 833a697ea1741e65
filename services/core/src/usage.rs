//! The usage event: what a gateway or RAG service reports for one request.
//!
//! [`UsageEvent`] borrows its strings where it can (`Cow`), so the rollup's
//! hot path decodes straight out of the Kafka payload without allocating,
//! while emitters build owned `UsageEvent<'static>` values.

use std::borrow::Cow;
use std::fmt;
use std::ops::{Index, IndexMut};

use serde::{Deserialize, Serialize};

/// Which kind of service emitted the event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Gateway,
    Rag,
}

impl Source {
    /// In the order of the Avro enum's symbols.
    pub const ALL: [Source; 2] = [Source::Gateway, Source::Rag];

    pub fn as_str(self) -> &'static str {
        match self {
            Source::Gateway => "gateway",
            Source::Rag => "rag",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What the request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Chat,
    Completion,
    Embedding,
    VectorSearch,
    Rerank,
}

impl Kind {
    /// In the order of the Avro enum's symbols.
    pub const ALL: [Kind; 5] = [Kind::Chat, Kind::Completion, Kind::Embedding, Kind::VectorSearch, Kind::Rerank];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Chat => "chat",
            Kind::Completion => "completion",
            Kind::Embedding => "embedding",
            Kind::VectorSearch => "vector_search",
            Kind::Rerank => "rerank",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// A billable unit. Prices are quoted per unit; an event carries a quantity
/// of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    InputToken,
    OutputToken,
    CachedInputToken,
    CacheWriteToken,
    EmbeddingToken,
    VectorQuery,
    Request,
}

impl Unit {
    pub const COUNT: usize = 7;
    pub const ALL: [Unit; Unit::COUNT] = [
        Unit::InputToken,
        Unit::OutputToken,
        Unit::CachedInputToken,
        Unit::CacheWriteToken,
        Unit::EmbeddingToken,
        Unit::VectorQuery,
        Unit::Request,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Unit::InputToken => "input_token",
            Unit::OutputToken => "output_token",
            Unit::CachedInputToken => "cached_input_token",
            Unit::CacheWriteToken => "cache_write_token",
            Unit::EmbeddingToken => "embedding_token",
            Unit::VectorQuery => "vector_query",
            Unit::Request => "request",
        }
    }

    /// The event field that carries this unit's quantity.
    pub fn field_name(self) -> &'static str {
        match self {
            Unit::InputToken => "input_tokens",
            Unit::OutputToken => "output_tokens",
            Unit::CachedInputToken => "cached_input_tokens",
            Unit::CacheWriteToken => "cache_write_tokens",
            Unit::EmbeddingToken => "embedding_tokens",
            Unit::VectorQuery => "vector_queries",
            Unit::Request => "requests",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quantities of every unit, indexed by [`Unit`]. Signed because the wire
/// format is Avro `long`; validation rejects negative values.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Quantities(pub [i64; Unit::COUNT]);

impl Quantities {
    pub fn iter(&self) -> impl Iterator<Item = (Unit, i64)> + '_ {
        Unit::ALL.into_iter().map(|u| (u, self.0[u.index()]))
    }

    /// Adds another set of quantities, saturating instead of wrapping: sums
    /// are reported, not billed, and an overflow must not panic on input.
    pub fn add(&mut self, other: &Quantities) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a = a.saturating_add(*b);
        }
    }
}

impl Index<Unit> for Quantities {
    type Output = i64;
    fn index(&self, u: Unit) -> &i64 {
        &self.0[u.index()]
    }
}

impl IndexMut<Unit> for Quantities {
    fn index_mut(&mut self, u: Unit) -> &mut i64 {
        &mut self.0[u.index()]
    }
}

/// One usage event as carried on the wire (`schemas/usage_event.avsc`).
///
/// It is not validated: `validate::validate` decides whether it may be
/// priced. Timestamps are microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageEvent<'a> {
    pub event_id: Cow<'a, str>,
    pub tenant_id: Cow<'a, str>,
    pub occurred_at_micros: i64,
    pub source: Source,
    pub kind: Kind,
    pub provider: Option<Cow<'a, str>>,
    pub model: Option<Cow<'a, str>>,
    pub quantities: Quantities,
    pub attributes: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl UsageEvent<'_> {
    /// Detaches the event from the buffer it was decoded from.
    pub fn into_owned(self) -> UsageEvent<'static> {
        fn own(c: Cow<'_, str>) -> Cow<'static, str> {
            Cow::Owned(c.into_owned())
        }
        UsageEvent {
            event_id: own(self.event_id),
            tenant_id: own(self.tenant_id),
            occurred_at_micros: self.occurred_at_micros,
            source: self.source,
            kind: self.kind,
            provider: self.provider.map(own),
            model: self.model.map(own),
            quantities: self.quantities,
            attributes: self.attributes.into_iter().map(|(k, v)| (own(k), own(v))).collect(),
        }
    }

    pub fn provider(&self) -> &str {
        self.provider.as_deref().unwrap_or("")
    }

    pub fn model(&self) -> &str {
        self.model.as_deref().unwrap_or("")
    }
}
