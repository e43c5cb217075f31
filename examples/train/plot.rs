//! The loss curves as a PNG (plotters' bitmap backend, text drawn with a font shipped in
//! `assets/fonts/`, so no system font is needed).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

/// One logged point.
#[derive(Debug, Clone, Copy)]
pub struct Point {
    pub step: usize,
    pub value: f64,
}

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");

/// Draws training loss (mean over each logging interval) and validation loss against the step.
pub fn loss_png(
    path: &Path,
    title: &str,
    train: &[Point],
    val_plain: &[Point],
    val_chat: &[Point],
) -> anyhow::Result<()> {
    // Registering twice is harmless; it fails only on a bad font.
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| anyhow::anyhow!("the bundled font does not load"))?;
    let all = train.iter().chain(val_plain).chain(val_chat);
    let max_step = all.clone().map(|p| p.step).max().unwrap_or(1).max(1);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), p| {
        (lo.min(p.value), hi.max(p.value))
    });
    let (lo, hi) = if lo <= hi { (lo, hi) } else { (0.0, 1.0) };
    let pad = ((hi - lo) * 0.05).max(0.01);

    let root = BitMapBackend::new(path, (960, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d(0..max_step, (lo - pad).max(0.0)..hi + pad)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("cross-entropy (nats/token)")
        .label_style(("sans-serif", 15))
        .draw()?;
    let series: [(&[Point], &str, RGBColor); 3] = [
        (train, "train", RGBColor(31, 119, 180)),
        (
            val_plain,
            "validation: held-out plays, plain",
            RGBColor(214, 39, 40),
        ),
        (
            val_chat,
            "validation: held-out plays, chat turns",
            RGBColor(44, 160, 44),
        ),
    ];
    for (points, label, color) in series {
        if points.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(
                points.iter().map(|p| (p.step, p.value)),
                color.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperRight)
        .draw()?;
    root.present()?;
    Ok(())
}
