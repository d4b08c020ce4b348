//! Photographs and paintings for the neural-art optimizee (§3.4): 8-bit RGB JPEG and PNG files,
//! square crops, bicubic resizing and PNG output. Pixels are kept as `u8`, row-major
//! height × width × RGB, as numpy's `(H, W, 3)` arrays.

use crate::datasets::hex_sha256;
use crate::error::{Error, Result};
use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use std::path::{Path, PathBuf};

/// The largest side an input image may have (a decoded 16384² RGB image is 768 MiB).
pub const MAX_SIDE: u32 = 16384;

/// An 8-bit RGB image read from a file, with the file's SHA-256.
#[derive(Clone, Debug)]
pub struct Photo {
    pub path: PathBuf,
    pub sha256: String,
    pub image: RgbImage,
}

/// A square crop of a photo: its top-left corner and side, in the photo's pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub side: u32,
}

impl Photo {
    /// Reads an 8-bit RGB JPEG or PNG. Greyscale, alpha and 16-bit images are refused rather
    /// than converted, so that a spec never depends on a silent conversion.
    pub fn load(path: &Path) -> Result<Photo> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |d: String| Error::bad_file(path, d);
        let format =
            image::guess_format(&bytes).map_err(|_| bad("is not a JPEG or PNG image".into()))?;
        if !matches!(format, image::ImageFormat::Jpeg | image::ImageFormat::Png) {
            return Err(bad(format!(
                "is a {format:?} image; l2l reads 8-bit RGB JPEG and PNG"
            )));
        }
        let mut reader = image::io::Reader::with_format(std::io::Cursor::new(&bytes), format);
        let mut limits = image::io::Limits::default();
        limits.max_image_width = Some(MAX_SIDE);
        limits.max_image_height = Some(MAX_SIDE);
        reader.limits(limits);
        let decoded = reader
            .decode()
            .map_err(|e| bad(format!("cannot be decoded as {format:?}: {e}")))?;
        let image = match decoded {
            DynamicImage::ImageRgb8(rgb) => rgb,
            other => {
                return Err(bad(format!(
                    "holds {:?} pixels; l2l reads 8-bit RGB only (convert it, e.g. \
                     `convert IN -type TrueColor -depth 8 OUT.png` with ImageMagick)",
                    other.color()
                )))
            }
        };
        if image.width() == 0 || image.height() == 0 {
            return Err(bad("holds no pixels".into()));
        }
        Ok(Photo {
            path: path.to_path_buf(),
            sha256: hex_sha256(&[&bytes]),
            image,
        })
    }

    /// The shorter side, in pixels.
    pub fn shorter_side(&self) -> u32 {
        self.image.width().min(self.image.height())
    }

    /// The crop `crop`, resized to `size`×`size` (bicubic, as PIL's BICUBIC), as `size·size·3`
    /// bytes.
    pub fn crop_resized(&self, crop: CropBox, size: u32) -> Result<Vec<u8>> {
        let (w, h) = self.image.dimensions();
        if crop.side == 0
            || crop.x.checked_add(crop.side).is_none_or(|r| r > w)
            || crop.y.checked_add(crop.side).is_none_or(|b| b > h)
        {
            return Err(Error::bad_file(
                &self.path,
                format!(
                    "the crop of side {} at ({}, {}) does not fit in the image's {w}×{h} pixels",
                    crop.side, crop.x, crop.y
                ),
            ));
        }
        let view = imageops::crop_imm(&self.image, crop.x, crop.y, crop.side, crop.side);
        Ok(imageops::resize(&*view, size, size, FilterType::CatmullRom).into_raw())
    }

    /// The whole image resized so that its shorter side is `size`, its aspect ratio kept
    /// (bicubic): returns width, height and the bytes.
    pub fn resized_shorter_side(&self, size: u32) -> (u32, u32, Vec<u8>) {
        let (w, h) = self.image.dimensions();
        let scale = size as f64 / w.min(h) as f64;
        let (rw, rh) = (
            ((w as f64 * scale).round() as u32).max(size),
            ((h as f64 * scale).round() as u32).max(size),
        );
        let out = imageops::resize(&self.image, rw, rh, FilterType::CatmullRom);
        (rw, rh, out.into_raw())
    }
}

/// Network units of a pixel value, as MobileNet's quantised input sees it: (p − 128)/128.
pub fn to_network_units(p: u8) -> f32 {
    (p as f32 - 128.0) / 128.0
}

/// The nearest pixel value of a value in network units, clipped to 0…255.
pub fn to_pixel(v: f32) -> u8 {
    (v * 128.0 + 128.0).round().clamp(0.0, 255.0) as u8
}

/// Channel-major network input `[3, H, W]` of height × width × RGB bytes.
pub fn planes_of(hwc: &[u8], out: &mut [f32]) {
    let n = hwc.len() / 3;
    for (i, px) in hwc.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            out[c * n + i] = to_network_units(v);
        }
    }
}

/// Height × width × RGB bytes of a channel-major image in network units, clipped.
pub fn bytes_of(planes: &[f32]) -> Vec<u8> {
    let n = planes.len() / 3;
    (0..n)
        .flat_map(|i| (0..3).map(move |c| to_pixel(planes[c * n + i])))
        .collect()
}

/// Writes height × width × RGB bytes as a PNG.
pub fn save_png(path: &Path, width: u32, height: u32, hwc: &[u8]) -> Result<()> {
    use image::ImageEncoder;
    if hwc.len() != width as usize * height as usize * 3 {
        return Err(Error::Other(format!(
            "{}: {} bytes are not a {width}×{height} RGB image",
            path.display(),
            hwc.len()
        )));
    }
    crate::io::write_atomically(path, |out| {
        image::codecs::png::PngEncoder::new(out)
            .write_image(hwc, width, height, image::ColorType::Rgb8)
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_units_round_trip_every_pixel_value() {
        for p in 0..=255u8 {
            assert_eq!(to_pixel(to_network_units(p)), p);
        }
        assert_eq!(to_pixel(5.0), 255);
        assert_eq!(to_pixel(-5.0), 0);
    }

    #[test]
    fn planes_and_bytes_are_inverse() {
        let hwc: Vec<u8> = (0..2 * 3 * 3).map(|i| (i * 13) as u8).collect();
        let mut planes = vec![0.0; hwc.len()];
        planes_of(&hwc, &mut planes);
        assert_eq!(planes[0], to_network_units(hwc[0]));
        assert_eq!(planes[6], to_network_units(hwc[1]));
        assert_eq!(bytes_of(&planes), hwc);
    }
}
