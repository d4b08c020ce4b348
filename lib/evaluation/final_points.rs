//! What `evaluate` checks and keeps beyond the curves: a refusal of test runs on data a learned
//! optimizer was meta-trained on, and each run's final θ, drawn as an image where θ is one.

use super::Observer;
use crate::error::{Error, Result};
use crate::learned::OptimizerChoice;
use crate::problems::{Picture, ProblemSet};
use std::path::Path;
use std::sync::Mutex;

/// Refuses runs of `set` (read from `spec`) on the split of the data a learned optimizer among
/// `choices` was meta-trained on: the paper measures an optimizer on data it never saw
/// (docs/method.md, "What is measured").
pub fn refuse_seen_data<P: ProblemSet>(
    choices: &[OptimizerChoice],
    set: &P,
    spec: &Path,
) -> Result<()> {
    let Some(test) = set.data_split() else {
        return Ok(());
    };
    for choice in choices {
        if let OptimizerChoice::Learned { label, optimizer } = choice {
            if let Some(trained) = optimizer.trained_on.as_ref().filter(|t| t.overlaps(&test)) {
                return Err(Error::Config(format!(
                    "{} draws from the {} split of the data {label} was meta-trained on (its {} \
                     split); make the test spec from held-out data: sample-optimizee's `split` \
                     test, or `role` test for an external optimizee",
                    crate::io::describe(spec, false),
                    test.split.name(),
                    trained.split.name()
                )));
            }
        }
    }
    Ok(())
}

/// Keeps each run's final θ (an [`Observer`] of [`super::run_observed`]).
pub struct FinalPoints(Vec<Mutex<Vec<f32>>>);

impl FinalPoints {
    pub fn new(count: usize) -> Self {
        FinalPoints((0..count).map(|_| Mutex::new(Vec::new())).collect())
    }

    /// Writes `<label>-<run>.png` of every run's final θ to `dir`, each at least 256 pixels
    /// tall; `set` must draw its θ as an image ([`ProblemSet::render`]).
    pub fn write_images<P: ProblemSet>(self, dir: &Path, label: &str, set: &P) -> Result<()> {
        // A learned optimizer's file is named by its checkpoint's stem alone (`LSTM-00.png`).
        let stem: String = label
            .strip_prefix("lstm:")
            .unwrap_or(label)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '+' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        for (run, theta) in self.0.into_iter().enumerate() {
            let theta = theta.into_inner().unwrap_or_else(|e| e.into_inner());
            let picture = set.render(run, &theta).ok_or_else(|| {
                Error::Config("images need problems whose parameters are an image".into())
            })?;
            let picture = enlarged(picture, 256);
            let path = dir.join(format!("{stem}-{run:02}.png"));
            crate::images::save_png(&path, picture.width, picture.height, &picture.rgb)?;
        }
        Ok(())
    }
}

impl Observer for FinalPoints {
    fn finished(&self, problem: usize, theta: &[f32]) {
        *self.0[problem].lock().unwrap_or_else(|e| e.into_inner()) = theta.to_vec();
    }
}

/// `picture` with every pixel repeated k×k times, k the smallest that makes it `min_height`
/// tall or more.
fn enlarged(picture: Picture, min_height: u32) -> Picture {
    let k = min_height.div_ceil(picture.height.max(1)).max(1) as usize;
    if k == 1 {
        return picture;
    }
    let (w, h) = (picture.width as usize, picture.height as usize);
    let mut rgb = Vec::with_capacity(w * h * k * k * 3);
    for y in 0..h * k {
        let row = &picture.rgb[(y / k) * w * 3..][..w * 3];
        for px in row.chunks_exact(3) {
            for _ in 0..k {
                rgb.extend_from_slice(px);
            }
        }
    }
    Picture {
        width: (w * k) as u32,
        height: (h * k) as u32,
        rgb,
    }
}
