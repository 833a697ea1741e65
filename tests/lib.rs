//! Support for the end-to-end tests: real Kafka, ClickHouse and Postgres
//! (started by `scripts/stack.sh`), with names unique to each test so tests
//! can run in parallel and never see each other's data.

pub mod budgets;
pub mod env;
pub mod expected;
pub mod http;
pub mod process;
pub mod smtp;
