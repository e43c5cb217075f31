//! GPT-2's initialisation of fresh weights, by tensor name: the one table both the layers
//! (through `VarBuilder` hints) and the trainer (which redraws matrices from a seeded generator)
//! read.

use candle_nn::Init;

use super::config::Gpt2Config;

/// The standard deviation of the normal distribution a weight *matrix* is drawn from, by its
/// name in our layout (`wte.weight`, `h.0.attn.c_proj.weight`, ...): N(0, 0.01) for the
/// positions, N(0, 0.02 / sqrt(2 n_layer)) for the projections into the residual stream
/// (`c_proj`), N(0, 0.02) for every other matrix.
pub fn matrix_std(name: &str, config: &Gpt2Config) -> f64 {
    if name == "wpe.weight" {
        0.01
    } else if name.ends_with("c_proj.weight") {
        0.02 / (2.0 * config.n_layer as f64).sqrt()
    } else {
        0.02
    }
}

/// How a fresh tensor of this name starts: biases at zero, layer-norm gains at one, matrices
/// from [`matrix_std`].
pub fn init(name: &str, config: &Gpt2Config) -> Init {
    let leaf = name.rsplit('.').nth(1).unwrap_or("");
    if name.ends_with(".bias") {
        Init::Const(0.0)
    } else if leaf.starts_with("ln_") {
        Init::Const(1.0)
    } else {
        Init::Randn {
            mean: 0.0,
            stdev: matrix_std(name, config),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdev(init: Init) -> Option<f64> {
        match init {
            Init::Randn { mean: 0.0, stdev } => Some(stdev),
            _ => None,
        }
    }

    #[test]
    fn the_table_gives_gpt2_initialisation() {
        let config = Gpt2Config {
            n_layer: 8,
            ..Gpt2Config::gpt2_small()
        };
        assert_eq!(stdev(init("wte.weight", &config)), Some(0.02));
        assert_eq!(stdev(init("wpe.weight", &config)), Some(0.01));
        assert_eq!(stdev(init("h.3.attn.c_attn.weight", &config)), Some(0.02));
        assert_eq!(stdev(init("h.3.mlp.c_fc.weight", &config)), Some(0.02));
        assert_eq!(stdev(init("h.3.attn.c_proj.weight", &config)), Some(0.005));
        assert_eq!(stdev(init("h.3.mlp.c_proj.weight", &config)), Some(0.005));
        assert!(matches!(
            init("h.3.mlp.c_proj.bias", &config),
            Init::Const(0.0)
        ));
        assert!(matches!(init("h.3.ln_1.weight", &config), Init::Const(1.0)));
        assert!(matches!(init("ln_f.weight", &config), Init::Const(1.0)));
        assert!(matches!(init("ln_f.bias", &config), Init::Const(0.0)));
    }
}
