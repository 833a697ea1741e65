//! Hand-written decoders for the compiled-in writer versions.

use std::borrow::Cow;

use super::wire::Reader;
use super::DecodeError;
use crate::usage::{Kind, Quantities, Source, Unit, UsageEvent};

/// The field layout of a compiled-in writer schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Layout {
    /// No `cache_write_tokens`, no `attributes`.
    V1,
    V2,
}

pub(super) fn decode(layout: Layout, datum: &[u8]) -> Result<UsageEvent<'_>, DecodeError> {
    let mut r = Reader::new(datum);
    let event_id = r.uuid()?;
    let tenant_id = r.str()?;
    let occurred_at_micros = r.long()?;
    let source = Source::ALL[r.enum_index(Source::ALL.len())?];
    let kind = Kind::ALL[r.enum_index(Kind::ALL.len())?];
    let provider = r.optional_str()?;
    let model = r.optional_str()?;
    let mut q = Quantities::default();
    q[Unit::InputToken] = r.long()?;
    q[Unit::OutputToken] = r.long()?;
    q[Unit::CachedInputToken] = r.long()?;
    if layout == Layout::V2 {
        q[Unit::CacheWriteToken] = r.long()?;
    }
    q[Unit::EmbeddingToken] = r.long()?;
    q[Unit::VectorQuery] = r.long()?;
    q[Unit::Request] = r.long()?;
    let mut attributes = Vec::new();
    if layout == Layout::V2 {
        r.string_map(&mut attributes)?;
    }
    r.finish()?;
    Ok(UsageEvent {
        event_id,
        tenant_id: Cow::Borrowed(tenant_id),
        occurred_at_micros,
        source,
        kind,
        provider: provider.map(Cow::Borrowed),
        model: model.map(Cow::Borrowed),
        quantities: q,
        attributes,
    })
}
