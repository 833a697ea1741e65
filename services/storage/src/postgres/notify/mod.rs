//! Alert delivery's tables (migration `*_notify.sql`), owned by the
//! notifier (`services/notify`): `channels`, where a tenant's alerts go
//! (written by the operator CLI), and `outbox`, the events taken in and
//! their deliveries (written by the notifier; the CLI re-queues).

mod channels;
mod outbox;

pub use channels::{add_channel, list_channels, queue_test_event, remove_channel, Channel};
pub use outbox::{claim_due, finish, list_deliveries, queue_depth, record_events, retry_delivery, Claimed, Delivery, Finished, NewEvent};
