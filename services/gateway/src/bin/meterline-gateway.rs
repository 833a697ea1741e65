//! The reference AI gateway: `POST /v1/chat/completions`.
//! Configuration: see `meterline_gateway::Config`.

mod shared;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::main(meterline_gateway::Service::Gateway).await
}
