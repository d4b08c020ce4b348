//! numpy's `.npy` format (versions 1 to 3), decoded from the bytes of one npz member.
//!
//! Our own decoder rather than ndarray-npy's reader, for three reasons: an array
//! may not declare more elements than its data holds, so a hostile header cannot make us
//! allocate 10¹² elements; every byte order and numeric width numpy writes is read, float16
//! included; and Fortran order is read as well as C order. The format is numpy's
//! `numpy/lib/format.py`: a magic string, a version, a header length, a Python dict literal
//! with `descr`, `fortran_order` and `shape`, then the raw elements.

use ndarray::{ArrayD, IxDyn, ShapeBuilder};

/// The largest header we parse; numpy's own headers are under 200 bytes for any shape we use.
const MAX_HEADER_BYTES: usize = 1 << 16;

/// The numeric element types numpy writes, with their width in bytes and byte order.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Float,
    Int,
    Uint,
    Bool,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Dtype {
    kind: Kind,
    size: usize,
    big_endian: bool,
}

/// A parsed header: the element type, whether the data is column-major, and the shape.
#[derive(Debug, PartialEq)]
struct Header {
    dtype: Dtype,
    fortran_order: bool,
    shape: Vec<usize>,
}

/// Element types an array can be read as, converting from any numeric type numpy writes the
/// way Rust's `as` does (numpy's float64 default becomes f32 where f32 is wanted).
pub trait NpyElement: Sized + Clone {
    fn from_f64(x: f64) -> Self;
    fn from_f32(x: f32) -> Self;
    fn from_i64(x: i64) -> Self;
    fn from_u64(x: u64) -> Self;
}

macro_rules! npy_element {
    ($t:ty) => {
        impl NpyElement for $t {
            fn from_f64(x: f64) -> Self {
                x as $t
            }
            fn from_f32(x: f32) -> Self {
                x as $t
            }
            fn from_i64(x: i64) -> Self {
                x as $t
            }
            fn from_u64(x: u64) -> Self {
                x as $t
            }
        }
    };
}
npy_element!(f32);
npy_element!(f64);
npy_element!(i64);

/// Decodes a whole `.npy` file held in `bytes` as an array of `A`, in standard (C) layout.
/// Errors are one phrase saying what is wrong with the member.
pub fn decode<A: NpyElement>(bytes: &[u8]) -> Result<ArrayD<A>, String> {
    let (header, data) = split(bytes)?;
    let count = header
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {:?} overflows", header.shape))?;
    let need = count.checked_mul(header.dtype.size);
    if need != Some(data.len()) {
        return Err(format!(
            "header declares shape {:?} of {}-byte elements, but {} bytes of data follow; \
             the file is truncated or corrupt",
            header.shape,
            header.dtype.size,
            data.len()
        ));
    }
    let values = convert::<A>(data, header.dtype);
    let dim = IxDyn(&header.shape);
    let array = if header.fortran_order {
        ArrayD::from_shape_vec(dim.f(), values).map(|a| a.as_standard_layout().into_owned())
    } else {
        ArrayD::from_shape_vec(dim, values)
    };
    array.map_err(|e| format!("shape {:?}: {e}", header.shape))
}

/// Splits the file into its parsed header and its data bytes.
fn split(bytes: &[u8]) -> Result<(Header, &[u8]), String> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err("not a .npy array (no \\x93NUMPY magic)".into());
    }
    let (len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => {
            return Err(format!(
                ".npy format version {v} is not supported (1 to 3 are)"
            ))
        }
    };
    if len > MAX_HEADER_BYTES || start + len > bytes.len() {
        return Err(format!(
            "header length {len} runs past the data ({} bytes)",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(&bytes[start..start + len])
        .map_err(|_| "header is not text".to_string())?;
    Ok((parse_header(text)?, &bytes[start + len..]))
}

/// Parses the header's dict literal, e.g. `{'descr': '<f4', 'fortran_order': False,
/// 'shape': (3, 4), }`.
fn parse_header(text: &str) -> Result<Header, String> {
    let mut tokens = Tokens::new(text);
    tokens.expect('{')?;
    let (mut descr, mut fortran_order, mut shape) = (None, None, None);
    loop {
        if tokens.eat('}') {
            break;
        }
        let key = tokens.string()?;
        tokens.expect(':')?;
        match key.as_str() {
            "descr" => descr = Some(parse_descr(&tokens.string()?)?),
            "fortran_order" => fortran_order = Some(tokens.boolean()?),
            "shape" => shape = Some(tokens.tuple()?),
            other => return Err(format!("header has an unknown key '{other}'")),
        }
        if !tokens.eat(',') {
            tokens.expect('}')?;
            break;
        }
    }
    let missing = |k: &str| format!("header has no '{k}'");
    Ok(Header {
        dtype: descr.ok_or_else(|| missing("descr"))?,
        fortran_order: fortran_order.ok_or_else(|| missing("fortran_order"))?,
        shape: shape.ok_or_else(|| missing("shape"))?,
    })
}

/// A numeric `descr` such as `<f4`, `>i8`, `|u1` or `|b1`; anything else (strings, objects,
/// complex, records) is refused by name.
fn parse_descr(descr: &str) -> Result<Dtype, String> {
    let refuse = || {
        format!(
            "element type '{descr}' is not a numeric type l2l reads \
             (float16/32/64, signed or unsigned integers, bool)"
        )
    };
    let mut chars = descr.chars();
    let order = chars.next().ok_or_else(refuse)?;
    let (big_endian, rest) = match order {
        '<' | '|' => (false, chars.as_str()),
        '>' => (true, chars.as_str()),
        // '=' is the writer's native order; numpy writes '<' or '>' in files, so read as
        // little-endian, the order of every machine numpy runs on today.
        '=' => (false, chars.as_str()),
        _ => (false, descr),
    };
    let kind = match rest.chars().next() {
        Some('f') => Kind::Float,
        Some('i') => Kind::Int,
        Some('u') => Kind::Uint,
        Some('b') => Kind::Bool,
        _ => return Err(refuse()),
    };
    let size: usize = rest[1..].parse().map_err(|_| refuse())?;
    let ok = match kind {
        Kind::Float => matches!(size, 2 | 4 | 8),
        Kind::Int | Kind::Uint => matches!(size, 1 | 2 | 4 | 8),
        Kind::Bool => size == 1,
    };
    if !ok {
        return Err(refuse());
    }
    Ok(Dtype {
        kind,
        size,
        big_endian,
    })
}

/// Converts raw elements to `A`, one pass per element type.
fn convert<A: NpyElement>(data: &[u8], dtype: Dtype) -> Vec<A> {
    macro_rules! each {
        ($n:literal, $f:expr) => {
            data.chunks_exact($n)
                .map(|c| {
                    let mut b = [0u8; $n];
                    b.copy_from_slice(c);
                    if dtype.big_endian {
                        b.reverse();
                    }
                    $f(b)
                })
                .collect()
        };
    }
    match (dtype.kind, dtype.size) {
        (Kind::Float, 2) => each!(2, |b| A::from_f32(f16_to_f32(u16::from_le_bytes(b)))),
        (Kind::Float, 4) => each!(4, |b| A::from_f32(f32::from_le_bytes(b))),
        (Kind::Float, _) => each!(8, |b| A::from_f64(f64::from_le_bytes(b))),
        (Kind::Int, 1) => each!(1, |b: [u8; 1]| A::from_i64(b[0] as i8 as i64)),
        (Kind::Int, 2) => each!(2, |b| A::from_i64(i16::from_le_bytes(b) as i64)),
        (Kind::Int, 4) => each!(4, |b| A::from_i64(i32::from_le_bytes(b) as i64)),
        (Kind::Int, _) => each!(8, |b| A::from_i64(i64::from_le_bytes(b))),
        (Kind::Uint, 1) => each!(1, |b: [u8; 1]| A::from_u64(b[0] as u64)),
        (Kind::Uint, 2) => each!(2, |b| A::from_u64(u16::from_le_bytes(b) as u64)),
        (Kind::Uint, 4) => each!(4, |b| A::from_u64(u32::from_le_bytes(b) as u64)),
        (Kind::Uint, _) => each!(8, |b| A::from_u64(u64::from_le_bytes(b))),
        (Kind::Bool, _) => each!(1, |b: [u8; 1]| A::from_i64((b[0] != 0) as i64)),
    }
}

/// IEEE half precision to single, exactly (every float16 is a float32).
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        // Subnormal: value = man · 2⁻²⁴, exact in f32.
        (0, _) => return (if sign != 0 { -1.0 } else { 1.0 }) * man as f32 * 2f32.powi(-24),
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// A cursor over the header's Python literal.
struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(text: &'a str) -> Self {
        Tokens { rest: text }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn eat(&mut self, ch: char) -> bool {
        self.skip_space();
        match self.rest.strip_prefix(ch) {
            Some(r) => {
                self.rest = r;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, ch: char) -> Result<(), String> {
        if self.eat(ch) {
            Ok(())
        } else {
            Err(format!("header is not a dict literal (expected '{ch}')"))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = self
            .rest
            .chars()
            .next()
            .filter(|c| *c == '\'' || *c == '"')
            .ok_or_else(|| "header is not a dict literal (expected a string)".to_string())?;
        let body = &self.rest[1..];
        let end = body
            .find(quote)
            .ok_or_else(|| "header has an unterminated string".to_string())?;
        self.rest = &body[end + 1..];
        Ok(body[..end].to_string())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [("True", true), ("False", false)] {
            if let Some(r) = self.rest.strip_prefix(word) {
                self.rest = r;
                return Ok(value);
            }
        }
        Err("header's fortran_order is not True or False".into())
    }

    /// A tuple of non-negative integers: `()`, `(5,)`, `(3, 4)`.
    fn tuple(&mut self) -> Result<Vec<usize>, String> {
        self.expect('(')?;
        let mut dims = Vec::new();
        loop {
            if self.eat(')') {
                return Ok(dims);
            }
            self.skip_space();
            let digits = self.rest.len()
                - self
                    .rest
                    .trim_start_matches(|c: char| c.is_ascii_digit())
                    .len();
            let dim = self.rest[..digits]
                .parse::<usize>()
                .map_err(|_| "header's shape is not a tuple of sizes".to_string())?;
            self.rest = &self.rest[digits..];
            dims.push(dim);
            if dims.len() > 32 {
                return Err("header's shape has more than 32 dimensions".into());
            }
            if !self.eat(',') {
                self.expect(')')?;
                return Ok(dims);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `.npy` file as numpy writes it, with any header text.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out
    }

    #[test]
    fn reads_every_byte_order_width_and_layout() {
        let big: Vec<u8> = [1.5f32, -2.0]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let a = decode::<f64>(&npy(
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",
            &big,
        ))
        .unwrap();
        assert_eq!(a.as_slice().unwrap(), &[1.5, -2.0]);
        // float16: 1.0 = 0x3c00, -2.5 = 0xc100, 2⁻²⁴ (smallest subnormal) = 0x0001.
        let half: Vec<u8> = [0x3c00u16, 0xc100, 0x0001]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let a = decode::<f32>(&npy(
            "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }",
            &half,
        ))
        .unwrap();
        assert_eq!(a.as_slice().unwrap(), &[1.0, -2.5, 2f32.powi(-24)]);
        // Fortran order: column-major [[0, 1, 2], [3, 4, 5]] is stored 0 3 1 4 2 5.
        let f: Vec<u8> = [0i16, 3, 1, 4, 2, 5]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        let a = decode::<i64>(&npy(
            "{'descr': '>i2', 'fortran_order': True, 'shape': (2, 3), }",
            &f,
        ))
        .unwrap();
        assert_eq!(a.as_slice().unwrap(), &[0, 1, 2, 3, 4, 5]);
        let a = decode::<i64>(&npy(
            "{\"descr\": \"|b1\", \"fortran_order\": False, \"shape\": ()}",
            &[7],
        ))
        .unwrap();
        assert_eq!(a.shape(), &[] as &[usize]);
        assert_eq!(a[IxDyn(&[])], 1);
    }

    #[test]
    fn a_shape_larger_than_the_data_is_refused_without_allocating_it() {
        let e = decode::<f32>(&npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }",
            &[0; 16],
        ))
        .unwrap_err();
        assert!(e.contains("but 16 bytes of data follow"), "{e}");
        let e = decode::<f32>(&npy(
            "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
            &[],
        ))
        .unwrap_err();
        assert!(e.contains("overflows"), "{e}");
    }

    #[test]
    fn non_numeric_and_malformed_headers_are_refused() {
        for (header, want) in [
            (
                "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }",
                "not a numeric type",
            ),
            (
                "{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }",
                "not a numeric type",
            ),
            ("{'descr': '<f4', 'shape': (1,), }", "no 'fortran_order'"),
            (
                "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,), }",
                "not True or False",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }",
                "not a tuple",
            ),
            ("['descr']", "not a dict"),
        ] {
            let e = decode::<f32>(&npy(header, &[0; 4])).unwrap_err();
            assert!(e.contains(want), "{header}: {e}");
        }
        assert!(decode::<f32>(b"\x93NUMPY\x01\x00\xff\xff{")
            .unwrap_err()
            .contains("runs past"));
        assert!(decode::<f32>(b"PK\x03\x04").unwrap_err().contains("magic"));
    }
}
