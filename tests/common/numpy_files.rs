//! Specs and arrays as numpy writes them, byte by byte: every element type, byte order and
//! layout `.npy` allows, for the tests that l2l reads the files numpy users write.

use super::*;
use l2l::io::write_npz;
use ndarray::{Array2, Array3};
use std::path::Path;

/// A spec as numpy.savez writes it: float64 arrays, no family record.
pub fn numpy_spec(path: &Path, n: usize, d: usize, w_name: &str, y_rows: usize, nan: bool) {
    let mut w = Array3::<f64>::from_shape_fn((n, d, d), |(i, j, k)| {
        ((i + 2 * j + 3 * k) % 5) as f64 - 2.0 + (j == k) as u8 as f64 * 3.0
    });
    if nan {
        w[[0, 0, 0]] = f64::NAN;
    }
    let y = Array2::<f64>::from_shape_fn((y_rows, d), |(i, j)| (i + j) as f64 * 0.1);
    let theta0 = Array2::<f64>::from_elem((n, d), 0.5);
    write_npz(path, |a| {
        a.add(w_name, w);
        a.add("y", y);
        a.add("theta0", theta0);
        Ok(())
    })
    .unwrap();
}

/// Copies the spec `from` to `to`, each array at its own type, leaving out `drop` and setting
/// the integer scalars `ints` and the texts `texts` (as l2l writes them).
pub fn rewrite_spec(
    d: &Dir,
    from: &str,
    to: &str,
    drop: &[&str],
    ints: &[(&str, i64)],
    texts: &[(&str, &str)],
) {
    let mut npz = l2l::io::Npz::open(&d.path(from)).unwrap();
    let names: Vec<String> = npz.names().to_vec();
    let replaced = |n: &str| {
        drop.contains(&n) || ints.iter().any(|(k, _)| *k == n) || texts.iter().any(|(k, _)| *k == n)
    };
    let (mut floats, mut integers) = (Vec::new(), Vec::new());
    for n in names.iter().filter(|n| !replaced(n)) {
        match n.as_str() {
            "W" | "y" | "theta0" => floats.push((n.clone(), npz.array::<f32>(n).unwrap())),
            "family_theta0_std" => {
                floats.push((n.clone(), npz.array::<f64>(n).unwrap().mapv(|x| x as f32)))
            }
            // Seeds use all 64 bits: they must not pass through a float.
            _ => integers.push((n.clone(), npz.array::<i64>(n).unwrap())),
        }
    }
    write_npz(&d.path(to), |a| {
        for (name, array) in floats {
            a.add(&name, array);
        }
        for (name, array) in integers {
            a.add(&name, array);
        }
        for (name, value) in ints {
            a.scalar_i64(name, *value);
        }
        for (name, text) in texts {
            a.add(name, ndarray::Array1::from(text.as_bytes().to_vec()));
        }
        Ok(())
    })
    .unwrap();
}

/// One array encoded as numpy would (`arr.astype('>f8')`, `np.asfortranarray`, …): its numpy element type (`<f4`, `>f8`, `<f2`, `>i2`, …),
/// whether it is stored column-major, its shape, and its values in C order.
pub struct RawArray<'a> {
    pub descr: &'a str,
    pub fortran: bool,
    pub shape: &'a [usize],
    pub values: &'a [f64],
}

/// Writes an npz of the given members, each `(name, .npy bytes)`, stored uncompressed as
/// `numpy.savez` does.
pub fn raw_npz(path: &Path, members: &[(&str, Vec<u8>)]) {
    use std::io::Write;
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), stored).unwrap();
        zip.write_all(bytes).unwrap();
    }
    zip.finish().unwrap();
}

/// A `.npy` file (format version 1) with any header text and data bytes, the header padded
/// with spaces to a multiple of 64 bytes and ended by a newline, as numpy writes it.
pub fn npy_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut header = header.to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// The `.npy` encoding of one array. Values must be exact in the element type.
pub fn npy_bytes(a: &RawArray) -> Vec<u8> {
    // numpy's header: `(5,)` for one dimension, `(2, 3)` for more.
    let shape: Vec<String> = a.shape.iter().map(|d| d.to_string()).collect();
    let shape = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!("({})", shape.join(", ")),
    };
    let header = format!(
        "{{'descr': '{}', 'fortran_order': {}, 'shape': {shape}, }}",
        a.descr,
        if a.fortran { "True" } else { "False" },
    );

    let mut data = Vec::new();
    // Column-major order visits the C-order values with the last index slowest.
    let order: Vec<usize> = if a.fortran {
        let strides: Vec<usize> = (0..a.shape.len())
            .map(|k| a.shape[k + 1..].iter().product())
            .collect();
        let n: usize = a.shape.iter().product();
        (0..n)
            .map(|mut f| {
                let mut c = 0;
                for k in 0..a.shape.len() {
                    c += (f % a.shape[k]) * strides[k];
                    f /= a.shape[k];
                }
                c
            })
            .collect()
    } else {
        (0..a.values.len()).collect()
    };
    let big = a.descr.starts_with('>');
    for &i in &order {
        let x = a.values[i];
        let mut b: Vec<u8> = match &a.descr[1..] {
            "f8" => x.to_le_bytes().to_vec(),
            "f4" => (x as f32).to_le_bytes().to_vec(),
            "f2" => f16_bits(x as f32).to_le_bytes().to_vec(),
            "i2" => (x as i16).to_le_bytes().to_vec(),
            "i8" => (x as i64).to_le_bytes().to_vec(),
            other => panic!("raw_npz: no encoder for {other}"),
        };
        if big {
            b.reverse();
        }
        data.extend_from_slice(&b);
    }
    npy_file(&header, &data)
}

/// float16 bits of a float32 that float16 holds exactly (a normal number or zero).
fn f16_bits(x: f32) -> u16 {
    if x == 0.0 {
        return 0;
    }
    let b = x.to_bits();
    let exp = ((b >> 23) & 0xff) as i32 - 127 + 15;
    assert!(
        (1..31).contains(&exp) && b & 0x1fff == 0,
        "{x} is not exact in float16"
    );
    (((b >> 16) & 0x8000) | ((exp as u32) << 10) | ((b >> 13) & 0x3ff)) as u16
}
