//! What every Meterline service shares around its own work: how it stops
//! (`shutdown`), how it is observed (`http`: `/metrics` and `/health`), how
//! it reads usage events (`intake`: the codec with extra writer schemas; and
//! `rewind`: the check that the broker resumed where it was asked to), and
//! how it waits out a failing dependency (`backoff`).
//! No storage here: the reference gateway depends on this crate too.

pub mod backoff;
pub mod http;
pub mod intake;
pub mod rewind;
mod shutdown;

pub use shutdown::shutdown_signal;
