//! What every checkpoint format loads into: the tensors a GPT-2 needs, by our names and
//! shapes, and the loaded model. Shared by the safetensors/PyTorch loader and the GGUF reader.

use crate::model::{Gpt2, Gpt2Config};
use crate::tokenizer::Tokenizer;

/// A model ready to run.
pub struct LoadedModel {
    pub name: String,
    pub model: Gpt2,
    pub tokenizer: Tokenizer,
    /// Parameters stored in the checkpoint (a tied head counted once).
    pub parameter_count: usize,
}

/// Every tensor a GPT-2 of this config needs, with its shape; `lm_head.weight` last when the
/// output head is a matrix of its own (untied).
pub fn expected_shapes(config: &Gpt2Config, untied_head: bool) -> Vec<(String, Vec<usize>)> {
    let (v, p, e, i) = (
        config.vocab_size,
        config.n_positions,
        config.n_embd,
        config.mlp_width(),
    );
    let mut shapes = vec![
        ("wte.weight".to_string(), vec![v, e]),
        ("wpe.weight".to_string(), vec![p, e]),
    ];
    for l in 0..config.n_layer {
        let layer = [
            ("ln_1.weight", vec![e]),
            ("ln_1.bias", vec![e]),
            ("attn.c_attn.weight", vec![e, 3 * e]),
            ("attn.c_attn.bias", vec![3 * e]),
            ("attn.c_proj.weight", vec![e, e]),
            ("attn.c_proj.bias", vec![e]),
            ("ln_2.weight", vec![e]),
            ("ln_2.bias", vec![e]),
            ("mlp.c_fc.weight", vec![e, i]),
            ("mlp.c_fc.bias", vec![i]),
            ("mlp.c_proj.weight", vec![i, e]),
            ("mlp.c_proj.bias", vec![e]),
        ];
        shapes.extend(layer.into_iter().map(|(n, s)| (format!("h.{l}.{n}"), s)));
    }
    shapes.push(("ln_f.weight".into(), vec![e]));
    shapes.push(("ln_f.bias".into(), vec![e]));
    if untied_head {
        shapes.push(("lm_head.weight".into(), vec![v, e]));
    }
    shapes
}

/// The four weight matrices of a block, the ones q8_0 stores in 8 bits.
pub(crate) fn is_projection(name: &str) -> bool {
    name.ends_with("attn.c_attn.weight")
        || name.ends_with("attn.c_proj.weight")
        || name.ends_with("mlp.c_fc.weight")
        || name.ends_with("mlp.c_proj.weight")
}
