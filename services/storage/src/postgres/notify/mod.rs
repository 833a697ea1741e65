//! Alert delivery's tables (migration `*_notify.sql`), owned by the
//! notifier (`services/notify`): `channels`, where a tenant's alerts go
//! (written by the operator CLI), and `outbox`, the events taken in and
//! their deliveries (written by the notifier; the CLI re-queues), and
//! `throttle_seen`, the throttle state it last saw per tenant.

mod channels;
mod outbox;
pub mod throttle_seen;

pub use channels::{add_channel, list_channels, queue_test_event, remove_channel, rotate_secret, Channel};
pub use outbox::{
    claim_due, finish, list_deliveries, queue_depth, record_events, record_events_in, retry_delivery, Claimed, Delivery, Finished, NewEvent,
};
