//! Identifiers that cannot be malformed once constructed.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest tenant id accepted. Tenant ids end up in ClickHouse keys, span
/// fields and file names of exports, so they are kept short and plain.
pub const MAX_TENANT_ID_LEN: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("tenant id is empty")]
    EmptyTenant,
    #[error("tenant id is longer than {MAX_TENANT_ID_LEN} bytes")]
    TenantTooLong,
    #[error("tenant id contains {0:?}; allowed are ASCII letters, digits and . _ - :")]
    TenantBadChar(char),
    #[error("event id {0:?} is not a UUID")]
    BadEventId(String),
}

/// A tenant of the AI platform: the unit of budgets, rollups and invoices.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        check_tenant(s)?;
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Checks a tenant id without allocating; the hot path validates borrowed
/// strings straight out of the Avro payload.
pub fn check_tenant(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::EmptyTenant);
    }
    if s.len() > MAX_TENANT_ID_LEN {
        return Err(IdError::TenantTooLong);
    }
    if let Some(c) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':'))) {
        return Err(IdError::TenantBadChar(c));
    }
    Ok(())
}

impl TryFrom<String> for TenantId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        check_tenant(&s)?;
        Ok(Self(s))
    }
}

impl From<TenantId> for String {
    fn from(t: TenantId) -> String {
        t.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The idempotency key of a usage event, chosen by the emitter.
///
/// Any UUID is accepted, but emitters should make time-ordered ones
/// ([`EventId::generate`], UUIDv7): the rollup finds duplicates by looking
/// a batch's ids up in `usage_events`, sorted by `(tenant_id, event_id)`.
/// Time-ordered ids put a batch's recent ids at the end of each tenant's
/// range, so the primary index reads about one granule per tenant however
/// full the month is; random ids (v4) match every granule, and the lookup
/// then reads the whole month on every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventId(Uuid);

impl EventId {
    pub fn parse(s: &str) -> Result<Self, IdError> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdError::BadEventId(s.to_owned()))
    }

    /// A new time-ordered id (UUIDv7: milliseconds since the epoch, then
    /// random bits).
    pub fn generate() -> Self {
        Self(Uuid::now_v7())
    }

    /// A time-ordered id for an event at `unix_millis`, from caller-chosen
    /// random bits: reproducible for a seeded generator.
    pub fn time_ordered(unix_millis: u64, random: [u8; 10]) -> Self {
        Self(uuid::Builder::from_unix_timestamp_millis(unix_millis, &random).into_uuid())
    }

    pub fn from_uuid(u: Uuid) -> Self {
        Self(u)
    }

    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_checked() {
        assert!(TenantId::parse("acme-01").is_ok());
        assert_eq!(TenantId::parse(""), Err(IdError::EmptyTenant));
        assert_eq!(TenantId::parse("a b"), Err(IdError::TenantBadChar(' ')));
        assert_eq!(TenantId::parse(&"x".repeat(129)), Err(IdError::TenantTooLong));
    }

    #[test]
    fn event_ids_must_be_uuids() {
        assert!(EventId::parse("67e55044-10b1-426f-9247-bb680e5fe0c8").is_ok());
        assert!(EventId::parse("not-a-uuid").is_err());
    }

    #[test]
    fn generated_ids_sort_as_text_in_time_order() {
        // The lookup's index bound relies on the hyphenated text sorting
        // like the time, which ClickHouse compares.
        let text = |id: EventId| id.as_uuid().hyphenated().to_string();
        let early = text(EventId::time_ordered(1_700_000_000_000, [0xff; 10]));
        let later = text(EventId::time_ordered(1_700_000_000_001, [0x00; 10]));
        assert!(early < later, "{early} !< {later}");
        assert!(text(EventId::generate()) > later);
        assert_eq!(EventId::time_ordered(5, [7; 10]), EventId::time_ordered(5, [7; 10]));
    }
}
