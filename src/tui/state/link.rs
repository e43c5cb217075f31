//! The engine as the interface knows it: what it is doing, the model it loaded, and what waits
//! on it.

use std::sync::Arc;

use crate::engine::inspect::Anatomy;
use crate::engine::ModelInfo;
use crate::tokenizer::Tokenizer;

#[derive(Debug, Clone, PartialEq)]
pub enum EngineState {
    Loading(String),
    Idle,
    Generating,
    Failed(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    pub name: String,
    pub parameters: usize,
    pub device: String,
    pub dtype: String,
    pub window: usize,
    /// What the load had to say: shown in the status bar once the model is ready.
    pub load_notes: Vec<String>,
}

impl From<&ModelInfo> for ModelSummary {
    fn from(info: &ModelInfo) -> Self {
        Self {
            name: info.name.clone(),
            parameters: info.parameters,
            device: info.device.clone(),
            dtype: info.dtype.clone(),
            window: info.window,
            load_notes: info.load_notes.clone(),
        }
    }
}

/// The engine's state, the loaded model (what the status bar shows, its tokenizer and its
/// anatomy), a message waiting for it to load, and the tag of the last attention request.
pub struct EngineLink {
    pub state: EngineState,
    pub model: Option<ModelSummary>,
    pub tokenizer: Option<Arc<Tokenizer>>,
    pub anatomy: Option<Anatomy>,
    /// A message sent while the model was loading, to be answered once it is ready.
    pub queued: bool,
    /// Whether the engine was last asked to record the sampler trace.
    pub tracing: bool,
    /// Tags attention requests, so an answer for a token the cursor has left is ignored.
    attention_serial: u64,
}

impl Default for EngineLink {
    fn default() -> Self {
        Self {
            state: EngineState::Loading("starting".into()),
            model: None,
            tokenizer: None,
            anatomy: None,
            queued: false,
            tracing: false,
            attention_serial: 0,
        }
    }
}

impl EngineLink {
    pub fn is_generating(&self) -> bool {
        self.state == EngineState::Generating
    }

    /// The model is ready: returns whether a message was waiting for it.
    pub fn loaded(&mut self, summary: ModelSummary) -> bool {
        self.model = Some(summary);
        self.state = EngineState::Idle;
        std::mem::take(&mut self.queued)
    }

    /// Refuses what needs the model to itself while it writes, or a model at all.
    pub fn refusal(&self) -> Option<String> {
        if self.is_generating() {
            return Some(
                "the model is still writing: wait for it, or leave (Esc) and stop it".into(),
            );
        }
        if let EngineState::Failed(e) = &self.state {
            return Some(e.clone());
        }
        self.model
            .is_none()
            .then(|| "the model is still loading".to_string())
    }

    /// A new tag for an attention request.
    pub fn next_attention_serial(&mut self) -> u64 {
        self.attention_serial += 1;
        self.attention_serial
    }
}
