//! The paper's learning-curve panels (Figures 4 and 5): mean loss over problems against the
//! optimisation step, log y axis, the learned optimizer solid and the baselines dashed; and
//! Figure 6's sweep (`sweep.rs`).

use crate::error::{Error, Result};
use crate::io::{describe, install, is_stdio, temporary_sibling};
use crate::trajectory::TrajectoryRow;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

mod probe;
mod sweep;
mod training;
pub use probe::{draw_probe, ProbeView};
pub use sweep::{draw_sweep, SweepCell};
pub use training::training_curve_svg;

/// One optimizer's mean learning curve.
#[derive(Clone, Debug)]
pub struct Series {
    pub optimizer: String,
    pub lr: Option<f64>,
    /// Mean loss over problems per step; `None` where any problem's loss is NaN or Inf.
    pub mean: Vec<Option<f64>>,
}

impl Series {
    pub fn is_learned(&self) -> bool {
        self.lr.is_none()
    }
    pub fn legend(&self) -> String {
        let name = display_name(&self.optimizer);
        match self.lr {
            Some(lr) => format!("{name} (lr {})", format_lr(lr)),
            None => name,
        }
    }
}

/// The paper's spelling of an optimizer's name; a learned optimizer among several is named by
/// its checkpoint's file stem (`lstm:LSTM-sub`), which the pipeline chooses to say what it is.
pub fn display_name(optimizer: &str) -> String {
    match optimizer {
        "rmsprop" => "RMSprop".to_string(),
        other => match other.strip_prefix("lstm:") {
            Some(stem) if !stem.is_empty() => stem.to_string(),
            _ => other.to_uppercase(),
        },
    }
}

fn format_lr(lr: f64) -> String {
    let s = format!("{lr:.3e}");
    // 3.162e-1 reads better as 0.316 in a legend.
    if (1e-3..100.0).contains(&lr) {
        format!("{}", (lr * 1e4).round() / 1e4)
    } else {
        s
    }
}

/// What a panel draws from the trajectory rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Measure {
    /// `loss`: the training loss (a minibatch's, for stochastic problems) at every step.
    Loss,
    /// `test_loss`: the loss on held-out data (trajectory format 2), at the steps measured.
    TestLoss,
}

impl Measure {
    fn of(self, row: &TrajectoryRow) -> Option<f64> {
        match self {
            Measure::Loss => Some(row.loss),
            Measure::TestLoss => row.test_loss,
        }
    }
    fn axis(self) -> &'static str {
        match self {
            Measure::Loss => "mean loss",
            Measure::TestLoss => "mean held-out test loss",
        }
    }
}

/// A panel: a title and its curves.
#[derive(Clone, Debug)]
pub struct Panel {
    pub title: String,
    pub series: Vec<Series>,
    pub measure: Measure,
}

impl Panel {
    /// Averages trajectory rows over problems, one series per (optimizer, lr), in order of
    /// first appearance.
    pub fn from_rows(title: &str, rows: &[TrajectoryRow]) -> Result<Panel> {
        Self::of_measure(title, rows, Measure::Loss)
    }

    /// [`Panel::from_rows`] for `measure`; with held-out losses, the steps where none was
    /// measured are left out.
    pub fn of_measure(title: &str, rows: &[TrajectoryRow], measure: Measure) -> Result<Panel> {
        let mut order: Vec<(String, Option<u64>)> = Vec::new();
        let mut sums: BTreeMap<(String, Option<u64>), BTreeMap<i64, (f64, usize, bool)>> =
            BTreeMap::new();
        for r in rows {
            if !(0..=crate::trajectory::MAX_STEPS as i64).contains(&r.step) {
                return Err(Error::Other(format!(
                    "panel '{title}': step {} is outside 0 … {}; is this a trajectory file?",
                    r.step,
                    crate::trajectory::MAX_STEPS
                )));
            }
            let Some(value) = measure.of(r) else {
                continue;
            };
            let key = (r.optimizer.clone(), r.lr.map(f64::to_bits));
            if !sums.contains_key(&key) {
                order.push(key.clone());
            }
            let e = sums
                .entry(key)
                .or_default()
                .entry(r.step)
                .or_insert((0.0, 0, true));
            e.0 += value;
            e.1 += 1;
            e.2 &= value.is_finite();
        }
        if order.is_empty() {
            return Err(Error::Other(match measure {
                Measure::Loss => format!("panel '{title}': the trajectory file has no rows"),
                Measure::TestLoss => format!(
                    "panel '{title}': the trajectory file has no held-out losses (test_loss); \
                     evaluate records them on problems with held-out data (`test_every`)"
                ),
            }));
        }
        let series = order
            .into_iter()
            .map(|key| {
                let steps = &sums[&key];
                let last = steps.keys().copied().max().unwrap_or(0).max(0) as usize;
                let mut mean = vec![None; last + 1];
                for (&s, &(sum, n, finite)) in steps {
                    if s >= 0 && finite {
                        mean[s as usize] = Some(sum / n as f64);
                    }
                }
                Series {
                    optimizer: key.0,
                    lr: key.1.map(f64::from_bits),
                    mean,
                }
            })
            .collect();
        Ok(Panel {
            title: title.to_string(),
            series,
            measure,
        })
    }
}

/// A log-axis label: plain decimals with up to three significant digits between 0.001 and
/// 10,000, scientific notation outside.
fn axis_number(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if (1e-3..1e4).contains(&v.abs()) {
        let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
        let s = format!("{v:.digits$}");
        if s.contains('.') {
            s.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            s
        }
    } else {
        format!("{v:.0e}")
    }
}

const FONT: &str = "sans-serif";
/// Where Debian's fonts-dejavu-core puts the font the figures use.
pub const DEFAULT_FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers the TrueType font used for all text (plotters draws PNG text with it).
fn register_font(path: &Path) -> Result<()> {
    static DONE: std::sync::OnceLock<std::result::Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| {
        let bytes = std::fs::read(path).map_err(|e| {
            format!(
                "font {}: {e}; install it (apt-get install fonts-dejavu-core) or pass `font`",
                path.display()
            )
        })?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font(FONT, FontStyle::Normal, bytes)
            .map_err(|_| format!("font {}: not a usable TrueType font", path.display()))
    })
    .clone()
    .map_err(Error::Other)
}

const PALETTE: [RGBColor; 9] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
];

/// Colours by optimizer name so that every panel uses the same colour for the same optimizer.
fn color_for(name: &str) -> RGBColor {
    match name {
        "sgd" => PALETTE[1],
        "nag" => PALETTE[4],
        "rmsprop" => PALETTE[2],
        "adam" => PALETTE[3],
        "lbfgs" => PALETTE[8],
        // Appendix D's architectures, each its own colour.
        n if n.ends_with("LSTM+GAC") => PALETTE[5],
        n if n.ends_with("NTM-BFGS") => PALETTE[7],
        n if n.ends_with("NTM-L-BFGS") => PALETTE[6],
        // Several learned optimizers in one panel (Figure 7): a rule's correction in black,
        // one trained on other labels (`-sub`) in a lighter colour.
        n if n.starts_with("lstm:") && n.contains('+') && n.ends_with("-sub") => PALETTE[7],
        n if n.starts_with("lstm:") && n.contains('+') => PALETTE[8],
        n if n.starts_with("lstm:") && n.ends_with("-sub") => PALETTE[6],
        n if n.starts_with("lstm") || n.ends_with("+lstm") => PALETTE[0],
        _ => PALETTE[5],
    }
}

/// Draws the panels side by side into `<stem>.png` and `<stem>.svg` (each written atomically).
pub fn draw_figure(panels: &[Panel], png: &Path, font: &Path) -> Result<()> {
    register_font(font)?;
    let size = (480 * panels.len() as u32, 400);
    render_png_and_svg(
        png,
        size,
        |a| draw_panels(a, panels).map_err(|e| e.to_string()),
        |a| draw_panels(a, panels).map_err(|e| e.to_string()),
    )
}

/// Draws a figure twice, as `png` and as the `.svg` beside it, through temporary files that are
/// renamed into place only when both are complete. A `png` of `-` is standard output, which
/// gets the PNG alone: there is no name to put an SVG beside.
fn render_png_and_svg(
    png: &Path,
    size: (u32, u32),
    draw_png: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), String>,
    draw_svg: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> std::result::Result<(), String>,
) -> Result<()> {
    let to_stdout = is_stdio(png);
    let svg = png.with_extension("svg");
    // The formats are chosen by extension, so the temporaries keep theirs. Standard output
    // has no folder, so its PNG is drawn in the system's temporary folder.
    let tmp_png = if to_stdout {
        std::env::temp_dir().join(format!("l2l-plot.{}.tmp.png", std::process::id()))
    } else {
        temporary_sibling(png, ".png")
    };
    let tmp_svg = temporary_sibling(&svg, ".svg");
    let name = describe(png, true);
    let plot_err = |e: &dyn std::fmt::Display| Error::Other(format!("drawing {name}: {e}"));
    let result = (|| {
        {
            let root = BitMapBackend::new(&tmp_png, size).into_drawing_area();
            draw_png(&root).map_err(|e| plot_err(&e))?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        if to_stdout {
            return install(&tmp_png, png);
        }
        {
            let root = SVGBackend::new(&tmp_svg, size).into_drawing_area();
            draw_svg(&root).map_err(|e| plot_err(&e))?;
            root.present().map_err(|e| plot_err(&e))?;
        }
        install(&tmp_png, png)?;
        install(&tmp_svg, &svg)?;
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp_png);
        let _ = std::fs::remove_file(&tmp_svg);
    }
    result
}

type DrawResult<DB> =
    std::result::Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

fn draw_panels<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    panels: &[Panel],
) -> DrawResult<DB> {
    root.fill(&WHITE)?;
    let areas = root.split_evenly((1, panels.len()));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel) -> DrawResult<DB> {
    let values = panel
        .series
        .iter()
        .flat_map(|s| s.mean.iter().flatten().copied());
    let (mut lo, mut hi) = values
        .filter(|v| v.is_finite() && *v > 0.0)
        .fold((f64::INFINITY, 0.0f64), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !lo.is_finite() || hi <= 0.0 {
        (lo, hi) = (1e-3, 1.0);
    }
    // plotters' log axis counts decades as ln(hi / lo): an infinite ratio makes its tick search
    // loop for ever, so the axis stays within 1e-150 … 1e150 (a ratio of at most 1e300, still
    // finite); a mean beyond is drawn at the edge.
    let lo = (lo / 1.5).clamp(1e-150, 1e149);
    let hi = (hi * 1.5).clamp(lo * 10.0, 1e150);
    let steps = panel
        .series
        .iter()
        .map(|s| s.mean.len())
        .max()
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1);
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, (FONT, 18))
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..steps as f64, (lo..hi).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc(panel.measure.axis())
        .label_style((FONT, 12))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_labels(8)
        .y_label_formatter(&|v| axis_number(*v))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    for s in &panel.series {
        let color = color_for(&s.optimizer);
        let points: Vec<(f64, f64)> = s
            .mean
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.filter(|v| *v > 0.0).map(|v| (i as f64, v)))
            .collect();
        let style = ShapeStyle {
            color: color.to_rgba(),
            filled: false,
            stroke_width: 2,
        };
        let legend_style = style;
        let drawn = if s.is_learned() {
            chart.draw_series(LineSeries::new(points, style))?
        } else {
            chart.draw_series(DashedLineSeries::new(points, 6, 4, style))?
        };
        let learned = s.is_learned();
        drawn.label(s.legend()).legend(move |(x, y)| {
            if learned {
                PathElement::new(vec![(x, y), (x + 20, y)], legend_style)
            } else {
                PathElement::new(vec![(x, y), (x + 7, y)], legend_style)
            }
        });
    }
    draw_legend(&mut chart)
}

/// The legend of every chart: upper right, on a translucent white box.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .label_font((FONT, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .position(SeriesLabelPosition::UpperRight)
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trajectory::row;

    #[test]
    fn axis_labels_are_short() {
        let labels: Vec<String> = [0.2, 0.15, 1.0, 3.0, 40.0, 0.0012, 1e-5, 2e5]
            .iter()
            .map(|&v| axis_number(v))
            .collect();
        assert_eq!(
            labels,
            ["0.2", "0.15", "1", "3", "40", "0.0012", "1e-5", "2e5"]
        );
    }

    #[test]
    fn panel_means_over_problems_and_marks_divergence() {
        let rows = vec![
            row("adam", 0, 0, 4.0, Some(0.1)),
            row("adam", 1, 0, 2.0, Some(0.1)),
            row("adam", 0, 1, 1.0, Some(0.1)),
            row("adam", 1, 1, f64::NAN, Some(0.1)),
            row("lstm", 0, 0, 4.0, None),
            row("lstm", 0, 1, 0.5, None),
        ];
        let p = Panel::from_rows("t", &rows).unwrap();
        assert_eq!(p.series.len(), 2);
        assert_eq!(p.series[0].mean, vec![Some(3.0), None]);
        assert_eq!(p.series[1].legend(), "LSTM");
        let named = |optimizer: &str| Series {
            optimizer: optimizer.into(),
            lr: None,
            mean: vec![],
        };
        assert_eq!(named("nag+lstm").legend(), "NAG+LSTM");
        assert_eq!(named("lstm:LSTM-sub").legend(), "LSTM-sub");
        assert_ne!(color_for("nag+lstm"), PALETTE[5]);
        assert_eq!(p.series[0].legend(), "ADAM (lr 0.1)");
    }
}
