//! Figure 6: the architecture sweep, one cell per (layers, units), each learned optimizer's
//! mean final loss against the best tuned baseline's.

use super::*;

/// One cell of Figure 6's architecture sweep: the mean final loss of each learned optimizer and
/// of the best tuned baseline on one architecture.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepCell {
    pub layers: usize,
    pub units: usize,
    /// Each learned optimizer's name in the trajectories (`lstm`, `nag+lstm`, `lstm:STEM`) and
    /// its mean loss at the last step, in the trajectories' order.
    pub learned: Vec<(String, f64)>,
    pub best_baseline: String,
    pub best_baseline_lr: Option<f64>,
    pub best_baseline_final: f64,
}

impl SweepCell {
    /// Reduces a cell's trajectories to the mean loss at the last step per optimizer.
    pub fn from_rows(layers: usize, units: usize, rows: &[TrajectoryRow]) -> Result<SweepCell> {
        let panel = Panel::from_rows("cell", rows)?;
        let last = |s: &Series| s.mean.last().copied().flatten().unwrap_or(f64::INFINITY);
        let learned: Vec<(String, f64)> = panel
            .series
            .iter()
            .filter(|s| s.is_learned())
            .map(|s| (s.optimizer.clone(), last(s)))
            .collect();
        if learned.is_empty() {
            return Err(Error::Other(format!(
                "cell {layers}×{units}: no learned optimizer in its trajectories"
            )));
        }
        let best = panel
            .series
            .iter()
            .filter(|s| !s.is_learned())
            .min_by(|a, b| last(a).total_cmp(&last(b)))
            .ok_or_else(|| {
                Error::Other(format!(
                    "cell {layers}×{units}: no baseline in its trajectories"
                ))
            })?;
        Ok(SweepCell {
            layers,
            units,
            learned,
            best_baseline: best.optimizer.clone(),
            best_baseline_lr: best.lr,
            best_baseline_final: last(best),
        })
    }
}

/// Figure 6: final loss against hidden units, one panel per layer count, the learned optimizer
/// solid and the best tuned baseline dashed; the training architecture is circled.
pub fn draw_sweep(
    cells: &[SweepCell],
    trained_on: (usize, usize),
    png: &Path,
    font: &Path,
) -> Result<()> {
    register_font(font)?;
    let mut layer_counts: Vec<usize> = cells.iter().map(|c| c.layers).collect();
    layer_counts.sort_unstable();
    layer_counts.dedup();
    let size = (420 * layer_counts.len().max(1) as u32, 380);
    render_png_and_svg(
        png,
        size,
        |a| draw_sweep_panels(a, cells, &layer_counts, trained_on).map_err(|e| e.to_string()),
        |a| draw_sweep_panels(a, cells, &layer_counts, trained_on).map_err(|e| e.to_string()),
    )
}

fn draw_sweep_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    cells: &[SweepCell],
    layer_counts: &[usize],
    trained_on: (usize, usize),
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let finite = |v: f64| v.is_finite() && v >= 0.0;
    let hi = cells
        .iter()
        .flat_map(|c| c.learned.iter().map(|l| l.1).chain([c.best_baseline_final]))
        .filter(|v| finite(*v))
        .fold(0.0f64, f64::max)
        .clamp(1e-3, 1e300)
        * 1.15;
    // The swept sizes as evenly spaced categories, labelled with their values.
    let mut units: Vec<usize> = cells.iter().map(|c| c.units).collect();
    units.sort_unstable();
    units.dedup();
    let position = |u: usize| units.iter().position(|&x| x == u).unwrap_or(0) as f64;
    let areas = root.split_evenly((1, layer_counts.len().max(1)));
    for (panel, (area, &layers)) in areas.iter().zip(layer_counts).enumerate() {
        let mut row: Vec<&SweepCell> = cells.iter().filter(|c| c.layers == layers).collect();
        row.sort_by_key(|c| c.units);
        let title = format!("{layers} hidden layer{}", if layers > 1 { "s" } else { "" });
        let mut chart = ChartBuilder::on(area)
            .caption(title, (FONT, 16))
            .margin(10)
            .x_label_area_size(36)
            .y_label_area_size(50)
            .build_cartesian_2d(-0.5f64..units.len() as f64 - 0.5, 0f64..hi)?;
        let unit_label = |v: &f64| {
            let i = v.round();
            if (v - i).abs() < 0.05 && i >= 0.0 {
                units
                    .get(i as usize)
                    .map(|u| u.to_string())
                    .unwrap_or_default()
            } else {
                String::new()
            }
        };
        chart
            .configure_mesh()
            .x_desc("hidden units")
            .y_desc("mean loss at the last step")
            .label_style((FONT, 12))
            .x_labels(units.len())
            .x_label_formatter(&unit_label)
            .y_label_formatter(&|v| axis_number(*v))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        let base_style = ShapeStyle {
            color: PALETTE[1].to_rgba(),
            filled: true,
            stroke_width: 2,
        };
        // Each learned optimizer of the first cell, solid, in its colour; the training
        // architecture circled on each.
        let names: Vec<String> = row
            .first()
            .map(|c| c.learned.iter().map(|l| l.0.clone()).collect())
            .unwrap_or_default();
        for name in &names {
            let style = ShapeStyle {
                color: color_for(name).to_rgba(),
                filled: true,
                stroke_width: 2,
            };
            let final_of = |c: &SweepCell| {
                c.learned
                    .iter()
                    .find(|l| &l.0 == name)
                    .map_or(f64::NAN, |l| l.1)
            };
            let pts: Vec<(f64, f64)> = row
                .iter()
                .filter(|c| finite(final_of(c)))
                .map(|c| (position(c.units), final_of(c)))
                .collect();
            chart
                .draw_series(LineSeries::new(pts.clone(), style))?
                .label(display_name(name))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, 3, style)))?;
            if let Some(c) = row
                .iter()
                .find(|c| (c.layers, c.units) == trained_on && finite(final_of(c)))
            {
                chart.draw_series(std::iter::once(Circle::new(
                    (position(c.units), final_of(c)),
                    9,
                    ShapeStyle {
                        color: BLACK.to_rgba(),
                        filled: false,
                        stroke_width: 2,
                    },
                )))?;
            }
        }
        let base_pts: Vec<(f64, f64)> = row
            .iter()
            .filter(|c| finite(c.best_baseline_final))
            .map(|c| (position(c.units), c.best_baseline_final))
            .collect();
        chart
            .draw_series(DashedLineSeries::new(base_pts.clone(), 6, 4, base_style))?
            .label("best tuned baseline")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 7, y)], base_style));
        chart.draw_series(base_pts.iter().map(|&p| Cross::new(p, 4, base_style)))?;
        if panel == 0 {
            draw_legend(&mut chart)?;
        }
    }
    Ok(())
}
