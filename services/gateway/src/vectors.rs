//! The simulated vector side of the RAG service: embeddings and search hits
//! derived from a hash of the text, so they are stable across runs.

use serde::Serialize;

use crate::model::{fnv1a, xorshift, FNV_OFFSET};

/// Dimensions of simulated embeddings: small, the numbers are not the point.
pub const DIMENSIONS: usize = 8;

/// A unit-length vector for `text`.
pub fn embed(model: &str, text: &str) -> Vec<f32> {
    let mut state = fnv1a(fnv1a(FNV_OFFSET, model.as_bytes()), text.as_bytes()) | 1;
    let mut v: Vec<f32> = (0..DIMENSIONS)
        .map(|_| {
            state = xorshift(state);
            // Uniform in [-1, 1).
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect();
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
    v
}

/// One search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hit {
    pub id: String,
    pub score: f64,
    pub text: String,
}

/// `top_k` hits for `query` in `collection`, best first.
pub fn search(collection: &str, query: &str, top_k: usize) -> Vec<Hit> {
    let seed = fnv1a(fnv1a(FNV_OFFSET, collection.as_bytes()), query.as_bytes());
    let mut state = seed | 1;
    let mut score = 1.0_f64;
    (0..top_k)
        .map(|rank| {
            state = xorshift(state);
            // Each hit scores a little lower than the one before.
            score -= 0.01 + (state % 50) as f64 / 1000.0;
            Hit {
                id: format!("{collection}-{:016x}", state),
                score: (score.max(0.0) * 1000.0).round() / 1000.0,
                text: format!("Passage {} from {collection} about {:?}.", rank + 1, truncate(query, 40)),
            }
        })
        .collect()
}

fn truncate(s: &str, max_chars: usize) -> &str {
    s.char_indices().nth(max_chars).map_or(s, |(i, _)| &s[..i])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_stable_unit_vectors() {
        let a = embed("m", "hello");
        assert_eq!(a, embed("m", "hello"));
        assert_ne!(a, embed("m", "hullo"));
        assert_eq!(a.len(), DIMENSIONS);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn hits_are_stable_and_ordered() {
        let hits = search("docs", "how are tokens counted?", 5);
        assert_eq!(hits, search("docs", "how are tokens counted?", 5));
        assert_eq!(hits.len(), 5);
        assert!(hits.windows(2).all(|w| w[0].score >= w[1].score));
        // Multi-byte characters are cut on a boundary, never mid-character.
        assert_eq!(search("docs", &"é".repeat(100), 1).len(), 1);
    }
}
