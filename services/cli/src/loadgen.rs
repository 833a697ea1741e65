//! Simulated gateway and RAG traffic (being written).
