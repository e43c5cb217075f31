//! The metadata keys of a GPT-2 GGUF file, one definition for the reader (`header.rs`,
//! `tokenizer.rs`) and the writer of the quantized-model cache: llama.cpp's names for what
//! llama.cpp reads, and `gpt2_tui.cache.*` for what only the cache needs.

pub const ARCHITECTURE: &str = "general.architecture";
pub const NAME: &str = "general.name";
/// llama.cpp's `llama_ftype`: the type most tensors have.
pub const FILE_TYPE: &str = "general.file_type";
pub const QUANTIZATION_VERSION: &str = "general.quantization_version";

pub const CONTEXT_LENGTH: &str = "gpt2.context_length";
pub const EMBEDDING_LENGTH: &str = "gpt2.embedding_length";
pub const BLOCK_COUNT: &str = "gpt2.block_count";
pub const FEED_FORWARD_LENGTH: &str = "gpt2.feed_forward_length";
pub const HEAD_COUNT: &str = "gpt2.attention.head_count";
pub const LAYER_NORM_EPSILON: &str = "gpt2.attention.layer_norm_epsilon";

pub const TOKENIZER_MODEL: &str = "tokenizer.ggml.model";
/// The pre-tokenizer llama.cpp applies (`gpt-2` for GPT-2's byte-level split).
pub const TOKENIZER_PRE: &str = "tokenizer.ggml.pre";
pub const TOKENS: &str = "tokenizer.ggml.tokens";
pub const TOKEN_TYPES: &str = "tokenizer.ggml.token_type";
pub const MERGES: &str = "tokenizer.ggml.merges";
pub const BOS_ID: &str = "tokenizer.ggml.bos_token_id";
pub const EOS_ID: &str = "tokenizer.ggml.eos_token_id";
pub const ADD_BOS: &str = "tokenizer.ggml.add_bos_token";

/// The layout version of cache files: a file of another version is rebuilt.
pub const CACHE_FORMAT: &str = "gpt2_tui.cache.format";
/// The fingerprint of the checkpoint the file was made from (see `quantized_cache::key`).
pub const CACHE_SOURCE_KEY: &str = "gpt2_tui.cache.source_key";
/// The checkpoint's files, for `gpt2-tui models`.
pub const CACHE_SOURCE: &str = "gpt2_tui.cache.source";
/// The `--dtype` the file was made for (`q8_0`).
pub const CACHE_QUANT_TYPE: &str = "gpt2_tui.cache.quant_type";
/// Whether the checkpoint's head is its token embeddings: `output.weight` then holds the
/// quantized product of a tied head, not a matrix of its own.
pub const CACHE_TIED_HEAD: &str = "gpt2_tui.cache.tied_head";
/// The checkpoint's parameter count (a tied head counted once).
pub const CACHE_PARAMETERS: &str = "gpt2_tui.cache.parameter_count";
/// CRC-32 of every tensor's bytes, in file order: catches damage the sizes cannot.
pub const CACHE_DATA_CRC32: &str = "gpt2_tui.cache.data_crc32";
