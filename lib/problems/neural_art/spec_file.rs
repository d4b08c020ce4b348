//! The neural-art spec file (docs/formats.md, "Neural-art specs"): the crops' pixels and
//! origins, the style image, the loss's definition, θ0 and the feature network's identity.

use super::features::FeatureNet;
use super::loss::{LossLayers, LossWeights};
use super::{ArtSettings, Crop, NeuralArtSet, Start, Style, MAX_SIZE};
use crate::error::{Error, Result};
use crate::images::CropBox;
use crate::io::{write_npz, Npz};
use ndarray::{Array1, Array2, Array3, Array4, Ix1, Ix2, Ix3, Ix4};
use std::path::Path;
use std::sync::Arc;

impl NeuralArtSet {
    pub fn save(&self, path: &Path) -> Result<()> {
        let s = self.settings.size;
        let pool = &self.pool;
        let text = |t: &str| Array1::from(t.as_bytes().to_vec());
        let lines = |f: &dyn Fn(&Crop) -> String| {
            text(
                &self
                    .chosen
                    .iter()
                    .map(|&i| f(&pool.crops[i]))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        };
        let n = self.chosen.len();
        write_npz(path, |z| {
            let mut theta0 = Array2::zeros((n, 3 * s * s));
            let mut pixels = Array4::<u8>::zeros((n, s, s, 3));
            let mut boxes = Array2::<i64>::zeros((n, 3));
            for (k, &i) in self.chosen.iter().enumerate() {
                theta0.row_mut(k).assign(&pool.theta0.row(i));
                let c = &pool.crops[i];
                pixels
                    .index_axis_mut(ndarray::Axis(0), k)
                    .as_slice_mut()
                    .unwrap()
                    .copy_from_slice(&c.pixels);
                boxes.row_mut(k).assign(&Array1::from(vec![
                    c.crop.x as i64,
                    c.crop.y as i64,
                    c.crop.side as i64,
                ]));
            }
            z.add("theta0", theta0);
            z.add("content_pixels", pixels);
            z.add("content_files", lines(&|c| c.file.clone()));
            z.add("content_sha256", lines(&|c| c.sha256.clone()));
            z.add("crop_boxes", boxes);
            let st = &self.style;
            z.add(
                "style_pixels",
                Array3::from_shape_vec((st.height, st.width, 3), st.pixels.clone()).expect("sized"),
            );
            z.add("style_file", text(&st.file));
            z.add("style_sha256", text(&st.sha256));
            z.scalar_i64("size", s as i64);
            z.scalar_i64("content_layer", self.settings.layers.content as i64);
            z.add(
                "style_layers",
                Array1::from(
                    self.settings
                        .layers
                        .style
                        .iter()
                        .map(|&l| l as i64)
                        .collect::<Vec<_>>(),
                ),
            );
            let w = &self.settings.weights;
            z.add("loss_weights", Array1::from(vec![w.content, w.style, w.tv]));
            z.add("theta0_kind", text(self.settings.start.name()));
            z.add("feature_net_path", text(&self.net.path.to_string_lossy()));
            z.add("feature_net_sha256", text(&self.net.sha256));
            z.scalar_i64("seed", self.seed as i64);
            crate::problems::recorded::write_header(z, "neural_art", None);
            Ok(())
        })
    }

    /// Reads a neural-art spec, loading the feature network from the recorded path (or
    /// `features`) and checking its SHA-256.
    pub fn load(npz: &mut Npz, features: Option<&Path>) -> Result<Self> {
        let bad = |npz: &Npz, d: String| Error::bad_file(npz.path(), d);
        let size = npz.scalar("size")?;
        if !(8.0..=MAX_SIZE as f64).contains(&size) {
            return Err(bad(npz, format!("size {size} is not 8 to {MAX_SIZE}")));
        }
        let s = size as usize;
        let layer = |v: i64| v.clamp(0, 1 << 20) as usize;
        let content_layer = layer(npz.scalar("content_layer")? as i64);
        let style_layers: Vec<usize> = npz
            .array_nd::<i64, Ix1>("style_layers")?
            .iter()
            .map(|&v| layer(v))
            .collect();
        let w = npz.array_nd::<f64, Ix1>("loss_weights")?;
        if w.len() != 3 {
            return Err(bad(npz, "'loss_weights' must hold α, β, γ".into()));
        }
        let start_name = npz.text("theta0_kind")?;
        let start = Start::parse(&start_name).ok_or_else(|| {
            bad(
                npz,
                format!("theta0_kind '{start_name}' is neither content nor noise"),
            )
        })?;
        let settings = ArtSettings {
            size: s,
            layers: LossLayers {
                content: content_layer,
                style: style_layers,
            },
            weights: LossWeights {
                content: w[0],
                style: w[1],
                tv: w[2],
            },
            start,
        };
        let pixels = npz.array_nd::<i64, Ix4>("content_pixels")?;
        let n = pixels.shape()[0];
        if pixels.shape()[1..] != [s, s, 3] || n == 0 {
            return Err(bad(
                npz,
                format!(
                    "'content_pixels' has shape {:?}; crops of size {s} need (N, {s}, {s}, 3)",
                    pixels.shape()
                ),
            ));
        }
        let theta0 = npz.array_nd::<f32, Ix2>("theta0")?;
        if theta0.dim() != (n, 3 * s * s) || theta0.iter().any(|v| !v.is_finite()) {
            return Err(bad(npz, format!("'theta0' has shape {:?} or values that are not finite; {n} crops need ({n}, {})", theta0.shape(), 3 * s * s)));
        }
        let boxes = npz.array_nd::<i64, Ix2>("crop_boxes")?;
        if boxes.dim() != (n, 3) {
            return Err(bad(
                npz,
                format!("'crop_boxes' has shape {:?}, not ({n}, 3)", boxes.shape()),
            ));
        }
        let files: Vec<String> = npz
            .text("content_files")?
            .split('\n')
            .map(String::from)
            .collect();
        let shas: Vec<String> = npz
            .text("content_sha256")?
            .split('\n')
            .map(String::from)
            .collect();
        if files.len() != n || shas.len() != n {
            return Err(bad(
                npz,
                format!("'content_files' and 'content_sha256' must name each of the {n} crops"),
            ));
        }
        let as_bytes =
            |npz: &Npz, what: &str, v: &mut dyn Iterator<Item = i64>| -> Result<Vec<u8>> {
                v.map(|p| {
                    u8::try_from(p).map_err(|_| {
                        bad(npz, format!("'{what}' holds {p}, not a pixel value 0-255"))
                    })
                })
                .collect()
            };
        let mut crops = Vec::with_capacity(n);
        for k in 0..n {
            let b = boxes.row(k);
            let coord = |v: i64| u32::try_from(v).unwrap_or(0);
            crops.push(Crop {
                file: files[k].clone(),
                sha256: shas[k].clone(),
                crop: CropBox {
                    x: coord(b[0]),
                    y: coord(b[1]),
                    side: coord(b[2]),
                },
                pixels: as_bytes(
                    npz,
                    "content_pixels",
                    &mut pixels.index_axis(ndarray::Axis(0), k).iter().copied(),
                )?,
            });
        }
        let style_pixels = npz.array_nd::<i64, Ix3>("style_pixels")?;
        let (sh, sw, sc) = style_pixels.dim();
        if sc != 3 || sh < s || sw < s {
            return Err(bad(
                npz,
                format!(
                    "'style_pixels' has shape {:?}; an RGB image of at least {s}×{s} is needed",
                    style_pixels.shape()
                ),
            ));
        }
        let style = Style {
            file: npz.text("style_file")?,
            sha256: npz.text("style_sha256")?,
            width: sw,
            height: sh,
            pixels: as_bytes(npz, "style_pixels", &mut style_pixels.iter().copied())?,
        };
        let recorded = std::path::PathBuf::from(npz.text("feature_net_path")?);
        let net_path = features.unwrap_or(&recorded);
        let net = FeatureNet::load(net_path).map_err(|e| {
            bad(npz, format!("its feature network: {e}; run from where the spec was made or pass `data` FILE"))
        })?;
        let sha = npz.text("feature_net_sha256")?;
        if net.sha256 != sha {
            return Err(bad(npz, format!("the feature network {} differs from the one the spec was made with (SHA-256); pass the original", net_path.display())));
        }
        let seed = npz.scalar_or("seed", 0.0)? as u64;
        NeuralArtSet::new(Arc::new(net), settings, style, crops, Some(theta0), seed)
            .map_err(|e| bad(npz, e.to_string()))
    }
}
