//! Settings shared by every Meterline process: the default of every
//! `METERLINE_*` variable (`defaults`), how a setting is read from the
//! environment (`Env`), and connection strings that never print their
//! password (`SecretUrl`). Services build their own typed configs from
//! these, so a default or a parsing rule exists once.

pub mod defaults;
mod env;
mod secret_url;

pub use env::{Env, EnvError};
pub use secret_url::SecretUrl;
