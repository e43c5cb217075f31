//! Everything between logits and printed text: sampling, UTF-8-safe streaming, stop sequences,
//! and the session that owns model, cache and tokenizer (prefix reuse, the window).

pub mod bias;
pub mod perplexity;
pub mod prompt_scores;
pub mod sampling;
pub mod session;
pub mod stop;
pub mod token_score;
pub mod trace;
pub mod utf8;

pub use sampling::{Sampler, SamplingParams};
pub use stop::StopMatcher;
pub use utf8::Utf8Stream;
