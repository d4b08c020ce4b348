//! Appendix B's figures from a proposal table (`evaluate --probe`): Figure 10, the update each
//! optimizer proposes at each step of the followed trajectory; Figures 11–13, the update each
//! would propose at one step as a function of a hypothetical gradient. One panel per probed
//! coordinate, linear axes, the learned optimizer solid and the others dashed.

use super::{
    color_for, display_name, draw_legend, register_font, render_png_and_svg, DrawResult, FONT,
};
use crate::error::{Error, Result};
use crate::proposals::Proposal;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Which rows a probe figure draws.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeView {
    /// The trajectory's own proposals against the step (Figure 10).
    Trajectory,
    /// The swept proposals at this step against the gradient (Figures 11–13).
    Sweep(usize),
}

/// One panel: a coordinate's curves, (x, update) per optimizer.
struct ProbePanel {
    title: String,
    x_label: &'static str,
    curves: BTreeMap<String, Vec<(f64, f64)>>,
}

/// Draws the `view` of `rows`, one panel per coordinate, into `png` and the SVG beside it.
pub fn draw_probe(rows: &[Proposal], view: ProbeView, png: &Path, font: &Path) -> Result<()> {
    let mut panels: BTreeMap<usize, ProbePanel> = BTreeMap::new();
    for r in rows {
        let x = match view {
            ProbeView::Trajectory if !r.swept => r.step as f64,
            ProbeView::Sweep(step) if r.swept && r.step == step => r.gradient,
            _ => continue,
        };
        if !x.is_finite() || !r.update.is_finite() {
            continue;
        }
        let panel = panels.entry(r.coordinate).or_insert_with(|| ProbePanel {
            title: match view {
                ProbeView::Trajectory => format!("coordinate {}", r.coordinate),
                ProbeView::Sweep(step) => format!("coordinate {}, step {step}", r.coordinate),
            },
            x_label: match view {
                ProbeView::Trajectory => "step",
                ProbeView::Sweep(_) => "gradient",
            },
            curves: BTreeMap::new(),
        });
        panel
            .curves
            .entry(r.optimizer.clone())
            .or_default()
            .push((x, r.update));
    }
    if panels.is_empty() {
        return Err(Error::Config(match view {
            ProbeView::Trajectory => "the proposal table holds no trajectory rows".into(),
            ProbeView::Sweep(step) => format!(
                "the proposal table holds no sweep at step {step}; evaluate --probe-sweep-steps \
                 chooses the steps"
            ),
        }));
    }
    let panels: Vec<ProbePanel> = panels
        .into_values()
        .map(|mut p| {
            p.curves
                .values_mut()
                .for_each(|c| c.sort_by(|a, b| a.0.total_cmp(&b.0)));
            p
        })
        .collect();
    register_font(font)?;
    let size = (480 * panels.len() as u32, 400);
    render_png_and_svg(
        png,
        size,
        |a| draw_panels(a, &panels).map_err(|e| e.to_string()),
        |a| draw_panels(a, &panels).map_err(|e| e.to_string()),
    )
}

/// A proposed update's axis label; values below `zero` in magnitude are zero.
fn update_tick(v: f64, zero: f64) -> String {
    let v = if v.abs() < zero { 0.0 } else { v };
    format!("{v:.2e}")
}

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[ProbePanel],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        let points = || panel.curves.values().flatten();
        let range = |f: fn(&(f64, f64)) -> f64| {
            let (lo, hi) = points()
                .map(f)
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| {
                    (l.min(v), h.max(v))
                });
            let pad = ((hi - lo) * 0.05).max(1e-12);
            (lo - pad)..(hi + pad)
        };
        let y_range = range(|p| p.1);
        // A tick that sums to a rounding residue of zero (6.9e-18) reads as zero.
        let y_zero = (y_range.end - y_range.start) * 1e-9;
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.title, (FONT, 18))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(64)
            .build_cartesian_2d(range(|p| p.0), y_range)?;
        chart
            .configure_mesh()
            .x_desc(panel.x_label)
            .y_desc("proposed update")
            .label_style((FONT, 12))
            .y_label_formatter(&|v| update_tick(*v, y_zero))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (optimizer, curve) in &panel.curves {
            let style = ShapeStyle {
                color: color_for(optimizer).to_rgba(),
                filled: false,
                stroke_width: 2,
            };
            let learned = optimizer.starts_with("lstm");
            let drawn = if learned {
                chart.draw_series(LineSeries::new(curve.clone(), style))?
            } else {
                chart.draw_series(DashedLineSeries::new(curve.clone(), 6, 4, style))?
            };
            let name = display_name(optimizer);
            drawn.label(name).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + if learned { 20 } else { 7 }, y)], style)
            });
        }
        draw_legend(&mut chart)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::update_tick;

    #[test]
    fn a_rounding_residue_of_zero_is_labelled_zero() {
        assert_eq!(update_tick(6.94e-18, 1e-10), "0.00e0");
        assert_eq!(update_tick(-0.02, 1e-10), "-2.00e-2");
        assert_eq!(update_tick(4e-11, 1e-12), "4.00e-11");
    }
}
