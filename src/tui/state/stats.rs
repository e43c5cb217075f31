//! The figures the status bar shows of the engine's work on the current (or last) reply.

use std::time::Instant;

use crate::generate::session;

/// What the status bar shows of the engine's work on the current (or last) reply.
#[derive(Debug, Default)]
pub struct Stats {
    pub tokens_per_s: f64,
    pub context_used: usize,
    pub dropped_turns: usize,
    /// Tokens from the start of the text left out to fit (completion mode).
    pub dropped_tokens: usize,
    /// Times the window filled during the current (or last) reply, each dropping its oldest half.
    pub context_shifts: usize,
    /// Prompt tokens run through the model for the last reply, and the prompt's size: a new
    /// chat turn reuses the cached prefix, so the first is much smaller than the second.
    pub prefill: Option<(usize, usize)>,
    generation_started: Option<Instant>,
    generated: usize,
}

impl Stats {
    /// A reply started from a prompt of `prompt_tokens`, after dropping what did not fit.
    pub fn start(&mut self, prompt_tokens: usize, dropped_turns: usize, dropped_tokens: usize) {
        self.context_used = prompt_tokens;
        self.dropped_turns = dropped_turns;
        self.dropped_tokens = dropped_tokens;
        self.context_shifts = 0;
        self.generation_started = Some(Instant::now());
        self.generated = 0;
    }

    /// A token arrived; the window now holds `context` tokens.
    pub fn token(&mut self, context: usize) {
        self.generated += 1;
        self.context_used = context;
        if let Some(started) = self.generation_started {
            let seconds = started.elapsed().as_secs_f64();
            if seconds > 0.0 {
                self.tokens_per_s = self.generated as f64 / seconds;
            }
        }
    }

    /// The reply ended: the engine's own figures replace the estimates.
    pub fn finish(&mut self, stats: &session::Stats) {
        self.prefill = Some((stats.prefill_tokens, stats.prompt_tokens));
        if stats.generated_tokens > 1 {
            self.tokens_per_s = stats.decode_tokens_per_s();
        }
        self.context_shifts = self.context_shifts.max(stats.context_shifts);
    }

    /// The conversation was cleared: nothing is dropped any more.
    pub fn clear_dropped(&mut self) {
        self.dropped_turns = 0;
        self.dropped_tokens = 0;
        self.context_shifts = 0;
    }
}
