//! Building the usage events the services emit. One place, so every route
//! fills the event the same way (fresh UUID, server clock, `requests=1`
//! where the request is billed).

use std::borrow::Cow;

use meterline_core::{EventId, Kind, Quantities, Source, TenantId, Unit, UsageEvent};

/// An event for `tenant`, with a new `event_id` (the idempotency key: a
/// re-send of this same value is counted once).
pub fn event(
    tenant: &TenantId,
    source: Source,
    kind: Kind,
    provider: &str,
    model: Option<&str>,
    quantities: &[(Unit, i64)],
    attributes: Vec<(&'static str, String)>,
) -> UsageEvent<'static> {
    let mut q = Quantities::default();
    for (unit, n) in quantities {
        q[*unit] = *n;
    }
    UsageEvent {
        event_id: Cow::Owned(EventId::generate().as_uuid().hyphenated().to_string()),
        tenant_id: Cow::Owned(tenant.as_str().to_owned()),
        occurred_at_micros: now_micros(),
        source,
        kind,
        provider: Some(Cow::Owned(provider.to_owned())),
        model: model.map(|m| Cow::Owned(m.to_owned())),
        quantities: q,
        attributes: attributes.into_iter().map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v))).collect(),
    }
}

pub fn now_micros() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterline_core::{validate, ValidationPolicy};

    #[test]
    fn built_events_pass_validation() {
        let tenant = TenantId::parse("acme").unwrap();
        let e = event(
            &tenant,
            Source::Gateway,
            Kind::Chat,
            "openai",
            Some("gpt-4o"),
            &[(Unit::InputToken, 3), (Unit::Request, 1)],
            vec![("route", "chat.completions".into())],
        );
        assert_eq!(validate(&e, &ValidationPolicy::default(), now_micros()), Ok(()));
        assert_eq!(e.quantities[Unit::InputToken], 3);
        assert_eq!(e.quantities[Unit::OutputToken], 0);
    }
}
