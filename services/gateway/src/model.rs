//! The simulated model: what a real provider call would return, computed
//! deterministically from the input so tests and load runs can predict the
//! billed quantities exactly.

use std::time::Duration;

/// Tokens for `text` by the usual rule of thumb: one per four characters,
/// rounded up, at least one.
pub fn tokens_for(text_chars: usize) -> i64 {
    (text_chars.div_ceil(4) as i64).max(1)
}

/// Shortest and longest simulated reply, in tokens.
pub const MIN_OUTPUT_TOKENS: i64 = 16;
pub const MAX_OUTPUT_TOKENS: i64 = 256;

/// One completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Whether `max_tokens` cut the reply short (OpenAI's `"length"`).
    pub truncated: bool,
}

/// Computes a completion for `messages` (their text contents, in order).
/// Output length comes from a hash of the prompt, so the same prompt
/// always costs the same, whichever model serves it.
pub fn complete(messages: &[&str], max_tokens: Option<u32>) -> Completion {
    let chars: usize = messages.iter().map(|m| m.chars().count()).sum();
    let seed = messages.iter().fold(FNV_OFFSET, |h, m| fnv1a(fnv1a(h, m.as_bytes()), &[0x1f]));
    let natural = MIN_OUTPUT_TOKENS + (seed % (MAX_OUTPUT_TOKENS - MIN_OUTPUT_TOKENS + 1) as u64) as i64;
    let cap = max_tokens.map_or(i64::MAX, i64::from);
    let output_tokens = natural.min(cap);
    Completion { text: words(seed, output_tokens), input_tokens: tokens_for(chars), output_tokens, truncated: output_tokens < natural }
}

/// The simulated call's latency.
#[derive(Debug, Clone, Copy)]
pub struct SimulatedModel {
    pub latency: Duration,
}

impl SimulatedModel {
    pub async fn complete(&self, messages: &[&str], max_tokens: Option<u32>) -> Completion {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        complete(messages, max_tokens)
    }

    pub async fn wait(&self) {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
    }
}

const VOCABULARY: [&str; 16] = [
    "the",
    "budget",
    "model",
    "token",
    "answer",
    "is",
    "metered",
    "and",
    "every",
    "request",
    "counts",
    "once",
    "tenant",
    "usage",
    "reply",
    "simulated",
];

/// `n` words, one per token, chosen by a generator seeded with `seed`.
fn words(seed: u64, n: i64) -> String {
    let mut state = seed | 1;
    let mut out = String::with_capacity(n.max(0) as usize * 7);
    for i in 0..n {
        state = xorshift(state);
        if i > 0 {
            out.push(' ');
        }
        out.push_str(VOCABULARY[(state % VOCABULARY.len() as u64) as usize]);
    }
    out
}

pub(crate) const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a: stable across Rust releases and platforms, unlike `DefaultHasher`,
/// so simulated quantities never change under an upgrade.
pub(crate) fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

pub(crate) fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_tokens_are_a_quarter_of_the_characters_rounded_up() {
        assert_eq!(tokens_for(0), 1);
        assert_eq!(tokens_for(4), 1);
        assert_eq!(tokens_for(5), 2);
        // Characters, not bytes: "é" is one character.
        assert_eq!(complete(&["éééé"], None).input_tokens, 1);
        assert_eq!(complete(&["hello", "world!"], None).input_tokens, 3);
    }

    #[test]
    fn the_same_prompt_always_gives_the_same_completion() {
        let a = complete(&["system prompt", "what is metering?"], None);
        assert_eq!(a, complete(&["system prompt", "what is metering?"], None));
        assert!((MIN_OUTPUT_TOKENS..=MAX_OUTPUT_TOKENS).contains(&a.output_tokens));
        assert_eq!(a.text.split(' ').count() as i64, a.output_tokens);
        // Message boundaries are part of the prompt.
        assert_ne!(complete(&["ab", "c"], None).text, complete(&["a", "bc"], None).text);
    }

    #[test]
    fn max_tokens_caps_the_reply() {
        let c = complete(&["hi"], Some(3));
        assert_eq!(c.output_tokens, 3);
        assert!(c.truncated);
        let c = complete(&["hi"], Some(10_000));
        assert!(!c.truncated);
    }

    #[test]
    fn output_tokens_stay_in_range_for_many_prompts() {
        for i in 0..1000 {
            let c = complete(&[&format!("prompt {i}")], None);
            assert!((MIN_OUTPUT_TOKENS..=MAX_OUTPUT_TOKENS).contains(&c.output_tokens));
        }
    }
}
