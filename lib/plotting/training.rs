//! Meta-training curves for the report: validation loss against epoch (log y), the kept
//! checkpoint circled, as an SVG string to inline in a page.

use super::{axis_number, register_font, DrawResult, FONT, PALETTE};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Draws `points` (epoch, validation loss; non-finite ones left out) and circles `kept`.
pub fn training_curve_svg(
    title: &str,
    points: &[(u64, f64)],
    kept: Option<u64>,
    font: &Path,
) -> Result<String> {
    register_font(font)?;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (520, 300)).into_drawing_area();
        draw(&root, title, points, kept)
            .map_err(|e| Error::Other(format!("drawing the training curve of {title}: {e}")))?;
        root.present()
            .map_err(|e| Error::Other(format!("drawing the training curve of {title}: {e}")))?;
    }
    Ok(svg)
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    title: &str,
    points: &[(u64, f64)],
    kept: Option<u64>,
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    // log10 of the loss on a linear axis, labelled with the loss: plotters' log axis labels
    // only whole decades, and a run's validation losses often span less than one.
    let pts: Vec<(f64, f64)> = points
        .iter()
        .filter(|(_, v)| v.is_finite() && *v > 0.0)
        .map(|&(e, v)| (e as f64, v.log10()))
        .collect();
    let (lo, hi) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let (lo, hi) = if pts.is_empty() {
        (-1.0, 0.0)
    } else {
        let pad = ((hi - lo) * 0.08).max(0.01);
        (lo - pad, hi + pad)
    };
    let last = pts.iter().map(|p| p.0).fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, 14))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(52)
        .build_cartesian_2d(0f64..last, lo..hi)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("validation loss")
        .label_style((FONT, 11))
        .y_label_formatter(&|v| axis_number(10f64.powf(*v)))
        .light_line_style(WHITE.mix(0.0))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()?;
    let style = ShapeStyle {
        color: PALETTE[0].to_rgba(),
        filled: true,
        stroke_width: 2,
    };
    chart.draw_series(LineSeries::new(pts.clone(), style))?;
    chart.draw_series(pts.iter().map(|&p| Circle::new(p, 2, style)))?;
    if let Some(p) = kept.and_then(|k| pts.iter().find(|p| p.0 == k as f64)) {
        chart.draw_series(std::iter::once(Circle::new(
            *p,
            7,
            ShapeStyle {
                color: BLACK.to_rgba(),
                filled: false,
                stroke_width: 2,
            },
        )))?;
    }
    Ok(())
}
