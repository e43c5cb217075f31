//! A loaded model with its cache: runs generations step by step, reusing the cached prefix.
//!
//! The caller drives a [`Generation`] one token at a time and passes the sampling settings on
//! every step, so a change made while the model writes takes effect at the very next token.

use std::time::{Duration, Instant};

use candle_core::{DType, Device};

use crate::error::{Error, Result};
use crate::generate::prompt_scores::PromptScores;
use crate::generate::sampling::{log_sum_exp, top_candidates, Sampler, SamplingParams};
use crate::generate::token_score::TokenScore;
use crate::generate::trace::Trace;
use crate::generate::{StopMatcher, Utf8Stream};
use crate::model::{Gpt2, Gpt2Config, KvCache};
use crate::runtime::device::kv_cache_bytes;
use crate::tokenizer::Tokenizer;
use crate::weights::LoadedModel;

pub struct Session {
    pub name: String,
    model: Gpt2,
    tokenizer: std::sync::Arc<Tokenizer>,
    cache: KvCache,
    parameter_count: usize,
    /// Logits after the last token in the cache, so a repeated request needs no forward pass.
    last_logits: Option<Vec<f32>>,
    /// What the model made of each cached token, when a view asked (beside the cache).
    scores: PromptScores,
}

/// Options fixed for the length of one generation.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    pub stop: Vec<String>,
    /// Stop at `<|endoftext|>`; when false it is sampled like any token.
    pub ignore_eos: bool,
    /// How many top candidates (raw softmax) to report for each token; 0 = none.
    pub top_n: usize,
    /// Record the sampler trace of each token for this many candidates; 0 = off (no cost).
    pub trace: usize,
    /// Score every prompt token from its prefill (logprob, rank, entropy, top 10): the head
    /// runs on every new prompt row. Off = the plain prefill, nothing extra computed.
    pub score_prompt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    MaxTokens,
    Eos,
    Stop,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::MaxTokens => "max_tokens",
            FinishReason::Eos => "eos",
            FinishReason::Stop => "stop",
        }
    }
}

/// One generated token.
#[derive(Debug, Clone)]
pub struct Token {
    pub id: u32,
    /// Text released for printing at this step (complete characters, stop text removed);
    /// concatenated over a generation it is exactly the generated text.
    pub text: String,
    /// Natural-log probability of the token under the raw softmax (temperature 1, no filters).
    pub logprob: f32,
    /// The most probable candidates at this step (raw softmax), if asked for.
    pub top: Vec<(u32, f32)>,
    /// Settings in force when this token was drawn.
    pub params: SamplingParams,
    /// What each sampling stage did at this step, when asked for (`GenerateOptions::trace`).
    pub trace: Option<Trace>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Stats {
    pub prompt_tokens: usize,
    /// Prompt tokens actually run through the model (the rest came from the cache).
    pub prefill_tokens: usize,
    pub generated_tokens: usize,
    #[serde(skip)]
    pub prefill_time: Duration,
    #[serde(skip)]
    pub decode_time: Duration,
    /// Times the window filled and the oldest tokens were dropped.
    pub context_shifts: usize,
    /// Prompt tokens dropped because the prompt did not fit the window.
    pub prompt_truncated: usize,
}

impl Stats {
    pub fn prefill_tokens_per_s(&self) -> f64 {
        rate(self.prefill_tokens, self.prefill_time)
    }

    /// Tokens generated per second after the first one (the first comes with the prefill).
    pub fn decode_tokens_per_s(&self) -> f64 {
        rate(self.generated_tokens.saturating_sub(1), self.decode_time)
    }
}

fn rate(tokens: usize, time: Duration) -> f64 {
    if time.is_zero() {
        0.0
    } else {
        tokens as f64 / time.as_secs_f64()
    }
}

#[derive(Debug, Clone)]
pub enum Step {
    Token(Token),
    /// The generation is over; `text` is any held-back text released at the end.
    Done {
        reason: FinishReason,
        text: String,
    },
}

impl Session {
    pub fn new(loaded: LoadedModel) -> Self {
        let config = loaded.model.config();
        let cache = KvCache::new(config.n_layer, config.n_positions);
        Self {
            name: loaded.name,
            model: loaded.model,
            tokenizer: std::sync::Arc::new(loaded.tokenizer),
            cache,
            parameter_count: loaded.parameter_count,
            last_logits: None,
            scores: PromptScores::default(),
        }
    }

    pub fn config(&self) -> &Gpt2Config {
        self.model.config()
    }

    pub fn model(&self) -> &Gpt2 {
        &self.model
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The tokenizer, to share with another thread (the interface counts tokens as you type).
    pub fn shared_tokenizer(&self) -> std::sync::Arc<Tokenizer> {
        self.tokenizer.clone()
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    pub fn dtype(&self) -> DType {
        self.model.dtype()
    }

    /// The weight format for display: see [`crate::model::Gpt2::weight_format`].
    pub fn weight_format(&self) -> String {
        self.model.weight_format()
    }

    /// Bytes the weights take as stored: see [`crate::model::Gpt2::weight_bytes`].
    pub fn weight_bytes(&self) -> u64 {
        self.model.weight_bytes()
    }

    /// The KV cache's dtype and its bytes at the full window (reserved; resident as filled).
    pub fn kv_cache_at_window(&self) -> (DType, u64) {
        let dtype = self.model.kv_dtype();
        (dtype, kv_cache_bytes(self.config(), dtype))
    }

    pub fn parameter_count(&self) -> usize {
        self.parameter_count
    }

    pub fn window(&self) -> usize {
        self.config().n_positions
    }

    /// The token that ends a text (and separates DialoGPT turns).
    pub fn eos_id(&self) -> u32 {
        let from_config = self.config().eos_token_id;
        if (from_config as usize) < self.tokenizer.vocab_size() {
            from_config
        } else {
            self.tokenizer.eos_id().unwrap_or(from_config)
        }
    }

    /// Tokens whose keys and values the cache holds.
    pub fn cached_tokens(&self) -> &[u32] {
        self.cache.tokens()
    }

    /// Empties the cache, so the next request prefills everything (buffers stay allocated).
    pub fn forget_cache(&mut self) {
        self.cache.clear();
        self.last_logits = None;
        self.scores.clear();
    }

    pub fn cache_bytes(&self) -> usize {
        self.cache.allocated_bytes()
    }

    /// Logits for the token after `tokens`, running only the part not already cached.
    /// Returns the logits and how many tokens went through the model.
    pub fn logits_after(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, usize)> {
        self.check_fits(tokens)?;
        let shared = common_prefix(self.cache.tokens(), tokens);
        if shared == tokens.len() && self.cache.len() == shared {
            if let Some(logits) = &self.last_logits {
                return Ok((logits.clone(), 0));
            }
        }
        // At least one token must run to produce logits.
        let reuse = shared.min(tokens.len() - 1);
        self.cache.truncate(reuse);
        self.last_logits = None;
        let logits = self
            .model
            .forward(&tokens[reuse..], &mut self.cache)?
            .to_vec1::<f32>()?;
        self.scores.ran_unscored(reuse, tokens.len() - reuse);
        self.last_logits = Some(logits.clone());
        Ok((logits, tokens.len() - reuse))
    }

    /// [`Session::logits_after`] that also scores every prompt token not scored yet, from the
    /// same prefill (see [`Session::prompt_scores`]). It may run a few cached tokens again: the
    /// ones prefilled while no view asked, and the one before the first new token.
    pub fn logits_after_scored(&mut self, tokens: &[u32]) -> Result<(Vec<f32>, usize)> {
        self.check_fits(tokens)?;
        let shared = common_prefix(self.cache.tokens(), tokens);
        if shared == tokens.len() && self.cache.len() == shared && self.scores.known_through(shared)
        {
            if let Some(logits) = &self.last_logits {
                return Ok((logits.clone(), 0));
            }
        }
        let start = self.scores.scored_start(shared, tokens.len());
        self.cache.truncate(start);
        self.last_logits = None;
        let logits = self
            .scores
            .prefill(&self.model, &mut self.cache, tokens, start)?;
        self.last_logits = Some(logits.clone());
        Ok((logits, tokens.len() - start))
    }

    /// The scores of the first `n` cached tokens, from a scoring prefill: `None` for the first
    /// token of the context, for tokens the sampler drew, and for any prefilled unscored.
    pub fn prompt_scores(&self, n: usize) -> Vec<Option<TokenScore>> {
        self.scores.scores(n)
    }

    /// Tokens to run: at least one, and no more than the window.
    fn check_fits(&self, tokens: &[u32]) -> Result<()> {
        if tokens.is_empty() {
            return Err(Error::Other(
                "cannot run the model on an empty token list".into(),
            ));
        }
        if tokens.len() > self.window() {
            return Err(Error::Other(format!(
                "{} tokens do not fit the window of {}",
                tokens.len(),
                self.window()
            )));
        }
        Ok(())
    }

    /// Starts generating after `prompt`. A prompt longer than the window keeps its most recent
    /// tokens (see `Stats::prompt_truncated`). An empty prompt starts from `<|endoftext|>`, as
    /// GPT-2 was trained to begin a text.
    pub fn generate(
        &mut self,
        prompt: &[u32],
        options: GenerateOptions,
        seed: Option<u64>,
    ) -> Result<Generation<'_>> {
        let mut tokens = if prompt.is_empty() {
            vec![self.eos_id()]
        } else {
            prompt.to_vec()
        };
        let mut stats = Stats {
            prompt_tokens: prompt.len(),
            ..Stats::default()
        };
        let window = self.window();
        if tokens.len() > window {
            stats.prompt_truncated = tokens.len() - window;
            tokens.drain(..tokens.len() - window);
        }
        let started = Instant::now();
        let (logits, ran) = match options.score_prompt {
            true => self.logits_after_scored(&tokens)?,
            false => self.logits_after(&tokens)?,
        };
        stats.prefill_tokens = ran;
        stats.prefill_time = started.elapsed();
        let seed = seed.unwrap_or_else(random_seed);
        Ok(Generation {
            stop: StopMatcher::new(options.stop.iter().cloned()),
            options,
            session: self,
            tokens,
            logits: Some(logits),
            sampler: Sampler::new(seed),
            utf8: Utf8Stream::default(),
            stats,
            done: None,
            decided: 0,
            reply: Vec::new(),
            reply_text: String::new(),
        })
    }

    /// Goes on with a reply whose first tokens, `decided`, are already chosen (the kept part of
    /// an earlier reply and the candidate picked in place of its next token): they are laid
    /// after `prompt`, count towards `max_tokens`, and a stop sequence begun in their text still
    /// ends the reply. When the last decided token is `<|endoftext|>` the reply is already over:
    /// [`Generation::finished`] says so and the first step returns [`Step::Done`].
    pub fn branch(
        &mut self,
        prompt: &[u32],
        decided: &[u32],
        options: GenerateOptions,
        seed: Option<u64>,
    ) -> Result<Generation<'_>> {
        let eos = self.eos_id();
        let ended = decided.last() == Some(&eos);
        let kept = &decided[..decided.len() - usize::from(ended)];
        let shown = self.tokenizer.decode(kept);
        let mut tokens = prompt.to_vec();
        tokens.extend_from_slice(decided);
        let mut generation = self.generate(&tokens, options, seed)?;
        generation.stop.prime(&shown);
        generation.decided = kept.len();
        generation.reply = kept.to_vec();
        generation.reply_text = shown;
        if ended {
            generation.done = Some(FinishReason::Eos);
        }
        Ok(generation)
    }
}

fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish()
}

pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// A generation in progress. Call [`Generation::step`] until it returns [`Step::Done`];
/// dropping it early cancels (the cache keeps what was computed).
pub struct Generation<'a> {
    session: &'a mut Session,
    options: GenerateOptions,
    /// Every token in the window: the (kept part of the) prompt and what was generated.
    tokens: Vec<u32>,
    /// Logits for the next token, when already computed.
    logits: Option<Vec<f32>>,
    sampler: Sampler,
    utf8: Utf8Stream,
    stop: StopMatcher,
    stats: Stats,
    done: Option<FinishReason>,
    /// Reply tokens chosen before this generation began (a branch); they count towards
    /// `max_tokens`.
    decided: usize,
    /// The reply so far: the decided tokens and those drawn since (never `<|endoftext|>`).
    reply: Vec<u32>,
    /// The reply's text as released so far (the decided part decoded, then every release).
    reply_text: String,
}

impl Generation<'_> {
    /// Primes the stop matcher with text already shown before this generation (a chat
    /// continued after a reply written elsewhere): stop sequences that begin in it are found.
    pub fn continue_after(&mut self, shown: &str) {
        self.stop.prime(shown);
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The session's tokenizer, for the text of reported candidates.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.session.tokenizer
    }

    /// Why the generation ended, once it has.
    pub fn finished(&self) -> Option<FinishReason> {
        self.done
    }

    /// The reply's tokens so far, the decided ones of a branch included.
    pub fn reply(&self) -> &[u32] {
        &self.reply
    }

    /// The reply's text as released so far, the decided part of a branch included.
    pub fn reply_text(&self) -> &str {
        &self.reply_text
    }

    /// The scores of the prompt's tokens (as kept in the window) when
    /// [`GenerateOptions::score_prompt`] is on; `None` for the first token of the context.
    /// Empty when scoring is off.
    pub fn prompt_scores(&self) -> Vec<Option<TokenScore>> {
        match self.options.score_prompt {
            true => {
                let kept = self.stats.prompt_tokens - self.stats.prompt_truncated;
                self.session.prompt_scores(kept.min(self.tokens.len()))
            }
            false => Vec::new(),
        }
    }

    /// The prompt (as kept in the window) and the tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Records the sampler trace of each next token for this many candidates (0 = off), from
    /// the next step on: a view can be turned on while the reply is written.
    pub fn set_trace(&mut self, shown: usize) {
        self.options.trace = shown;
    }

    /// Draws the next token with `params` (read fresh at every step).
    pub fn step(&mut self, params: &SamplingParams) -> Result<Step> {
        if let Some(reason) = self.done {
            return Ok(Step::Done {
                reason,
                text: String::new(),
            });
        }
        if self.decided + self.stats.generated_tokens >= params.max_tokens {
            return Ok(self.finish(FinishReason::MaxTokens));
        }
        let started = Instant::now();
        let logits = match self.logits.take() {
            Some(logits) => logits,
            None => self.advance()?,
        };
        let history = &self.tokens[self.tokens.len().saturating_sub(params.repeat_last_n)..];
        let (id, trace) = match self.options.trace {
            0 => (
                self.sampler
                    .sample_after(&logits, history, &self.reply, params),
                None,
            ),
            shown => {
                let (id, trace) =
                    self.sampler
                        .sample_traced(&logits, history, &self.reply, params, shown);
                (id, Some(trace))
            }
        };
        let lse = log_sum_exp(&logits);
        let logprob = logits[id as usize] - lse;
        let top = top_candidates(&logits, self.options.top_n, lse);
        if self.stats.generated_tokens > 0 {
            self.stats.decode_time += started.elapsed();
        }
        if id == self.session.eos_id() && !self.options.ignore_eos {
            return Ok(self.finish(FinishReason::Eos));
        }
        self.tokens.push(id);
        self.stats.generated_tokens += 1;
        let piece = self.utf8.push(self.session.tokenizer.token_bytes(id));
        let out = self.stop.push(&piece);
        if out.stopped {
            self.done = Some(FinishReason::Stop);
        }
        self.reply.push(id);
        self.reply_text.push_str(&out.text);
        Ok(Step::Token(Token {
            id,
            text: out.text,
            logprob,
            top,
            params: params.clone(),
            trace,
        }))
    }

    /// Runs the last generated token through the model. When the window is full, the oldest
    /// half is dropped and the rest re-prefilled (learned positions cannot be shifted).
    fn advance(&mut self) -> Result<Vec<f32>> {
        let window = self.session.window();
        if self.tokens.len() > window {
            let keep = (window / 2).max(1);
            self.tokens.drain(..self.tokens.len() - keep);
            self.stats.context_shifts += 1;
        }
        let logits = self.session.logits_after(&self.tokens)?.0;
        if self.options.score_prompt {
            // The token just run was drawn: later prompts need no score for it.
            self.session.scores.mark_last_drawn();
        }
        Ok(logits)
    }

    fn finish(&mut self, reason: FinishReason) -> Step {
        self.done = Some(reason);
        let mut text = self.utf8.finish();
        let out = self.stop.push(&text);
        text = out.text;
        if !out.stopped {
            text += &self.stop.finish();
        }
        self.reply_text.push_str(&text);
        Step::Done { reason, text }
    }
}
