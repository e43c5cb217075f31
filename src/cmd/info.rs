//! `gpt2-tui info`: the loaded model's shape and where its parameters sit.

use std::io::Write;

use super::stdout_error;
use crate::cli::{CommonArgs, ReportFormat};
use crate::config::Config;
use crate::error::Result;
use crate::load::{load_session_with, LoadReport, StderrProgress};
use crate::weights::quantized_cache::CacheUse;

pub(super) fn run(common: &CommonArgs, config: &Config, format: ReportFormat) -> Result<()> {
    let mut progress = StderrProgress::new();
    let (session, report) = load_session_with(common, config, &mut |e| progress.event(e))?;
    report.notes().iter().for_each(|note| eprintln!("{note}"));
    let weights = session.weight_format();
    let cache = cache_report(&report);
    let anatomy =
        crate::engine::inspect::Anatomy::of(session.config(), session.model().has_tied_head());
    let bytes_per = session.dtype().size_in_bytes();
    let mut out = std::io::stdout().lock();
    match format {
        ReportFormat::Json => {
            let report = serde_json::json!({
                "model": session.name,
                "config": session.config(),
                "device": crate::runtime::device::device_name(session.device()),
                "dtype": session.dtype().as_str(),
                "weights": weights,
                "cpu_kernels": crate::kernels::level().name(),
                "quantized_cache": cache.as_ref().map(|(state, path)| serde_json::json!({
                    "state": state,
                    "path": path,
                })),
                "parameters": anatomy.total,
                "checkpoint_parameters": session.parameter_count(),
                "memory_bytes": anatomy.total * bytes_per,
                "tied_head": anatomy.tied_head,
                "parts": anatomy.parts,
                "summary": anatomy.summary(),
            });
            writeln!(out, "{report}").map_err(stdout_error)
        }
        ReportFormat::Text => {
            let c = session.config();
            let weights = match &cache {
                Some((state, path)) => format!("weights: {weights} ({state}: {path})\n"),
                None => format!("weights: {weights}\n"),
            };
            let kernels = crate::kernels::level().name();
            let mut text = format!(
                "model: {}\n{weights}CPU kernels: {kernels}\nlayers {}, heads {} (head size {}), width {}, MLP width {}, window {}, vocabulary {}\n\n",
                session.name,
                c.n_layer,
                c.n_head,
                c.head_dim(),
                c.n_embd,
                c.mlp_width(),
                c.n_positions,
                c.vocab_size
            );
            for part in anatomy.summary() {
                let share = 100.0 * part.parameters as f64 / anatomy.total as f64;
                let scope = if ["attention", "MLP", "layer norms"]
                    .iter()
                    .any(|p| part.name.starts_with(p))
                {
                    format!(" (x{} blocks)", c.n_layer)
                } else {
                    String::new()
                };
                text += &format!(
                    "{:>14}  {:>5.1}%  {}{}\n",
                    group_digits(part.parameters),
                    share,
                    part.name,
                    scope
                );
            }
            text += &format!(
                "{:>14}  100.0%  total, {:.1} MB in {}\n",
                group_digits(anatomy.total),
                (anatomy.total * bytes_per) as f64 / 1e6,
                session.dtype().as_str()
            );
            out.write_all(text.as_bytes()).map_err(stdout_error)
        }
    }
}

/// For an 8- or 4-bit `--dtype`: what the quantized-model cache did (`read`, `written`, `not
/// cached`) and the file, or why there is none.
fn cache_report(report: &LoadReport) -> Option<(&'static str, String)> {
    Some(match &report.quantized.as_ref()?.cache {
        CacheUse::Read(path) => ("read from the cache", path.display().to_string()),
        CacheUse::Written(path) => ("quantized and cached", path.display().to_string()),
        CacheUse::NotCached(why) => ("quantized in memory", why.clone()),
    })
}

/// 124439808 -> "124,439,808".
fn group_digits(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
