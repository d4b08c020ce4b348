//! The mutators of the fuzz test: bytes, npz members and `.npy` headers, parquet columns.
//! Each returns the mutated file and a short description of what was done to it.

use crate::common::npy_file;
use arrow::array::{
    ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, LargeStringArray,
    NullArray, StringArray, UInt64Array,
};
use arrow::record_batch::RecordBatch;
use std::io::{Cursor, Read, Write};
use std::sync::Arc;

/// splitmix64: every case follows from the seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Values that sit on the edges of what the readers check.
const INTERESTING_INTEGERS: &[i64] = &[
    0,
    1,
    -1,
    2,
    3,
    10,
    20,
    255,
    256,
    65535,
    1 << 20,
    1_000_000,
    1_000_001,
    1 << 31,
    1 << 32,
    i64::MAX,
    i64::MIN,
    -(1 << 31),
];
const INTERESTING_FLOATS: &[f64] = &[
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    1e-30,
    1e30,
    1e300,
    f64::MAX,
    f64::MIN_POSITIVE,
    5e-324,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    3.0,
    20.0,
];

/// 1 to 4 byte-level edits: bit flips, interesting bytes and words (lengths and offsets in
/// zip and parquet metadata), inserted, deleted or repeated runs, truncation.
pub fn mutate_bytes(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    let mut b = base.to_vec();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(4) {
        if b.is_empty() {
            b.push(0);
        }
        let at = rng.below(b.len());
        match rng.below(7) {
            0 => {
                b[at] ^= 1 << rng.below(8);
                what.push(format!("flip@{at}"));
            }
            1 => {
                b[at] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff]);
                what.push(format!("byte@{at}"));
            }
            2 => {
                let v = *rng.pick(INTERESTING_INTEGERS) as u64;
                let width = *rng.pick(&[2usize, 4, 8]);
                let bytes = v.to_le_bytes();
                let n = width.min(b.len() - at);
                b[at..at + n].copy_from_slice(&bytes[..n]);
                what.push(format!("word{width}@{at}={v}"));
            }
            3 => {
                let n = 1 + rng.below(64);
                let chunk: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                b.splice(at..at, chunk);
                what.push(format!("insert{n}@{at}"));
            }
            4 => {
                let n = (1 + rng.below(64)).min(b.len() - at);
                b.drain(at..at + n);
                what.push(format!("delete{n}@{at}"));
            }
            5 => {
                let n = (1 + rng.below(256)).min(b.len() - at);
                let chunk = b[at..at + n].to_vec();
                let to = rng.below(b.len());
                b.splice(to..to, chunk);
                what.push(format!("repeat{n}@{at}->{to}"));
            }
            _ => {
                b.truncate(at);
                what.push(format!("truncate@{at}"));
            }
        }
    }
    (b, what.join(","))
}

/// The members of an npz, as (name without `.npy`, bytes).
fn members(npz: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(npz)).expect("a valid base");
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let name = f.name().trim_end_matches(".npy").to_string();
            let mut bytes = Vec::new();
            f.read_to_end(&mut bytes).unwrap();
            (name, bytes)
        })
        .collect()
}

fn archive(members: &[(String, Vec<u8>)], rng: &mut Rng) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let method = if rng.below(4) == 0 {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    for (name, bytes) in members {
        // A duplicate name is refused by the writer; keep the first.
        if zip.start_file(format!("{name}.npy"), options).is_ok() {
            zip.write_all(bytes).unwrap();
        }
    }
    zip.finish().unwrap().into_inner()
}

/// The header text and data of a `.npy` member (version 1 layout).
fn split_npy(bytes: &[u8]) -> (String, Vec<u8>) {
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    (
        String::from_utf8_lossy(&bytes[10..10 + len]).into_owned(),
        bytes[10 + len..].to_vec(),
    )
}

const DESCRS: &[&str] = &[
    "<f4", ">f4", "<f8", ">f8", "<f2", ">f2", "<i8", ">i8", "<i4", "<i2", "|i1", "|u1", "<u2",
    "<u4", "<u8", "|b1", "<c8", "<U3", "|O", "|S4", "<M8[s]", "f4", "=f8", "<f16", "", "<x4",
];

fn random_dim(rng: &mut Rng) -> String {
    match rng.below(6) {
        0 => rng
            .pick(&[
                "0",
                "1000000",
                "4294967296",
                "18446744073709551615",
                "-1",
                "1e3",
            ])
            .to_string(),
        _ => rng.below(8).to_string(),
    }
}

fn random_shape(rng: &mut Rng) -> String {
    let dims: Vec<String> = (0..rng.below(5)).map(|_| random_dim(rng)).collect();
    match dims.len() {
        0 => "()".into(),
        1 => format!("({},)", dims[0]),
        _ => format!("({})", dims.join(", ")),
    }
}

/// A small random array of a random numeric type, every value an interesting one.
fn random_member(rng: &mut Rng) -> Vec<u8> {
    let descr = *rng.pick(&["<f4", ">f8", "<f8", "<i8", ">i4", "|u1", "<f2", "|b1"]);
    let dims: Vec<usize> = (0..rng.below(4)).map(|_| rng.below(6)).collect();
    let n: usize = dims.iter().product();
    let mut data = Vec::new();
    for _ in 0..n {
        let f = *rng.pick(INTERESTING_FLOATS);
        let i = *rng.pick(INTERESTING_INTEGERS);
        let mut b: Vec<u8> = match &descr[1..] {
            "f4" => (f as f32).to_le_bytes().to_vec(),
            "f8" => f.to_le_bytes().to_vec(),
            "f2" => (rng.next() as u16).to_le_bytes().to_vec(),
            "i8" => i.to_le_bytes().to_vec(),
            "i4" => (i as i32).to_le_bytes().to_vec(),
            _ => vec![i as u8],
        };
        if descr.starts_with('>') {
            b.reverse();
        }
        data.extend_from_slice(&b);
    }
    let shape = match dims.len() {
        0 => "()".to_string(),
        1 => format!("({},)", dims[0]),
        _ => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    npy_file(
        &format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"),
        &data,
    )
}

const NAMES: &[&str] = &[
    "W",
    "y",
    "theta0",
    "kind",
    "format_version",
    "hidden_sizes",
    "seeds",
    "batch_size",
    "classes",
    "family_dims",
    "family_theta0_std",
    "networks",
    "lstm1_w",
    "preprocessing",
    "output_scale",
    "base_lr",
    "epoch",
    "G.conv.lstm1_w",
];

/// 1 to 3 edits to an npz's members: a header's shape, type, order or length; the data cut
/// or grown; a member replaced by a random array, dropped, renamed, duplicated or swapped.
pub fn mutate_npz(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    let mut m = members(base);
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        if m.is_empty() {
            break;
        }
        let i = rng.below(m.len());
        let name = m[i].0.clone();
        match rng.below(9) {
            0 | 1 => {
                let (header, data) = split_npy(&m[i].1);
                let header = match rng.below(4) {
                    0 => replace_field(&header, "shape", &random_shape(rng)),
                    1 => replace_field(&header, "descr", &format!("'{}'", rng.pick(DESCRS))),
                    2 => replace_field(
                        &header,
                        "fortran_order",
                        *rng.pick(&["True", "False", "1", "None", "'x'"]),
                    ),
                    _ => {
                        let cut = rng.below(header.len() + 1);
                        header[..cut].to_string()
                    }
                };
                m[i].1 = npy_file(&header, &data);
                what.push(format!("header {name}: {header}"));
            }
            2 => {
                let (header, mut data) = split_npy(&m[i].1);
                if rng.below(2) == 0 {
                    data.truncate(rng.below(data.len() + 1));
                } else {
                    data.extend((0..1 + rng.below(16)).map(|_| rng.next() as u8));
                }
                m[i].1 = npy_file(&header, &data);
                what.push(format!("data length {name}"));
            }
            3 | 4 => {
                m[i].1 = random_member(rng);
                what.push(format!("random {name}"));
            }
            5 => {
                m.remove(i);
                what.push(format!("drop {name}"));
            }
            6 => {
                let to = rng.pick(NAMES).to_string();
                m[i].0 = to.clone();
                what.push(format!("rename {name}->{to}"));
            }
            7 => {
                let to = rng.pick(NAMES).to_string();
                let bytes = m[i].1.clone();
                m.push((to.clone(), bytes));
                what.push(format!("copy {name}->{to}"));
            }
            _ => {
                let j = rng.below(m.len());
                let (a, b) = (m[i].1.clone(), m[j].1.clone());
                m[i].1 = b;
                m[j].1 = a;
                what.push(format!("swap {name}<->{}", m[j].0));
            }
        }
    }
    (archive(&m, rng), what.join("; "))
}

/// Replaces the value of `key` in a header dict literal, keeping the rest.
fn replace_field(header: &str, key: &str, value: &str) -> String {
    let Some(start) = header.find(&format!("'{key}':")) else {
        return header.to_string();
    };
    let after = start + key.len() + 3;
    let rest = &header[after..];
    let end = if rest.trim_start().starts_with('(') {
        rest.find(')').map_or(rest.len(), |e| e + 1)
    } else {
        rest.find(',').unwrap_or(rest.len())
    };
    format!("{} {value}{}", &header[..after], &rest[end..])
}

/// 1 to 3 edits to a trajectory's columns: a column replaced by one of another type or of
/// extreme values (with nulls), dropped or renamed, or the rows cut; then written with random
/// writer settings.
pub fn mutate_parquet(rng: &mut Rng, base: &[u8]) -> (Vec<u8>, String) {
    let reader =
        parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes_reader(base))
            .unwrap()
            .build()
            .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let mut columns: Vec<(String, ArrayRef)> = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(f, c)| (f.name().clone(), c.clone()))
        .collect();
    let mut rows = batch.num_rows();
    let mut what = Vec::new();
    for _ in 0..1 + rng.below(3) {
        if columns.is_empty() {
            break;
        }
        let i = rng.below(columns.len());
        let name = columns[i].0.clone();
        match rng.below(6) {
            0..=2 => {
                columns[i].1 = random_column(rng, rows);
                what.push(format!("column {name} as {}", columns[i].1.data_type()));
            }
            3 => {
                columns.remove(i);
                what.push(format!("drop {name}"));
            }
            4 => {
                let to = rng
                    .pick(&["optimizer", "problem", "step", "loss", "lr", "x"])
                    .to_string();
                columns[i].0 = to.clone();
                what.push(format!("rename {name}->{to}"));
            }
            _ => {
                rows = rng.below(rows + 1);
                for c in &mut columns {
                    c.1 = c.1.slice(0, rows);
                }
                what.push(format!("rows {rows}"));
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    columns.retain(|(n, _)| seen.insert(n.clone()));
    let batch =
        RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, c)| (n, c, true)));
    let Ok(batch) = batch else {
        return mutate_bytes(rng, base);
    };
    let props = parquet::file::properties::WriterProperties::builder()
        .set_dictionary_enabled(rng.below(2) == 0)
        .set_max_row_group_row_count(Some(1 + rng.below(64)))
        .set_data_page_row_count_limit(1 + rng.below(64))
        .set_compression(if rng.below(2) == 0 {
            parquet::basic::Compression::SNAPPY
        } else {
            parquet::basic::Compression::UNCOMPRESSED
        })
        .build();
    let mut out = Vec::new();
    let mut w =
        parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    (out, what.join("; "))
}

fn bytes_reader(bytes: &[u8]) -> std::fs::File {
    // parquet's readers need a ChunkReader; a temporary file is the one this crate set has.
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    file
}

fn random_column(rng: &mut Rng, rows: usize) -> ArrayRef {
    let null = |rng: &mut Rng| rng.below(10) == 0;
    match rng.below(9) {
        0 => Arc::new(StringArray::from_iter((0..rows).map(|_| {
            (!null(rng)).then(|| {
                rng.pick(&["sgd", "adam", "lstm", "", "é", "lstm:x"])
                    .to_string()
            })
        }))),
        1 => Arc::new(LargeStringArray::from_iter_values(
            (0..rows).map(|_| rng.pick(&["nag", "rmsprop", "lstm"]).to_string()),
        )),
        2 => Arc::new(Int64Array::from_iter(
            (0..rows).map(|_| (!null(rng)).then(|| *rng.pick(INTERESTING_INTEGERS))),
        )),
        3 => Arc::new(Int32Array::from_iter_values(
            (0..rows).map(|_| *rng.pick(INTERESTING_INTEGERS) as i32),
        )),
        4 => Arc::new(UInt64Array::from_iter_values(
            (0..rows).map(|_| *rng.pick(INTERESTING_INTEGERS) as u64),
        )),
        5 => Arc::new(Float64Array::from_iter(
            (0..rows).map(|_| (!null(rng)).then(|| *rng.pick(INTERESTING_FLOATS))),
        )),
        6 => Arc::new(Float32Array::from_iter_values(
            (0..rows).map(|_| *rng.pick(INTERESTING_FLOATS) as f32),
        )),
        7 => Arc::new(BooleanArray::from_iter(
            (0..rows).map(|_| Some(rng.below(2) == 0)),
        )),
        _ => Arc::new(NullArray::new(rows)),
    }
}
