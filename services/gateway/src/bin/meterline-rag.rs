//! The reference RAG service: `POST /v1/embeddings`, `POST /v1/search`.
//! Configuration: see `meterline_gateway::Config`.

mod shared;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::main(meterline_gateway::Service::Rag).await
}
