//! What every Meterline service shares around its own work: how it stops
//! (`shutdown`), how it is observed (`http`: `/metrics` and `/health`), and
//! how it reads usage events (`intake`: the codec with extra writer schemas).
//! No storage here: the reference gateway depends on this crate too.

pub mod http;
pub mod intake;
mod shutdown;

pub use shutdown::shutdown_signal;
