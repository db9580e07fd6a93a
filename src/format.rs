//! Element-format parsers of the Python protocols, kept free of Python so they can be tested
//! and fuzzed on their own: `struct`-module format strings (the buffer protocol) and numpy
//! `__array_interface__` typestrs. Both return a [`FormatError`] for anything that is not
//! exactly one DLPack element. Public for the fuzz targets and for integrations that read these
//! formats themselves.

use std::fmt;

use crate::DType;

/// A format string that names no single DLPack element (a struct, padding, a count, a pointer,
/// long double, a string of chars, a malformed or unknown code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FormatError(String);

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for FormatError {}

/// Byte order of the elements as the exporter describes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    /// The machine's own order: usable as is.
    Native,
    /// The other order: needs a byte-swapping copy.
    Swapped,
}

const NATIVE_IS_LITTLE: bool = cfg!(target_endian = "little");

/// Parse a `struct`-module format string of one element (`"<f"`, `">i"`, `"=d"`, `"?"`,
/// `"Zf"`, ...) into a dtype and byte order. Returns a [`FormatError`] for formats that describe
/// no single DLPack element (structs, padding, counts, pointers of unknown meaning, long
/// double, chars of strings).
pub fn parse_struct_format(fmt: &str) -> Result<(DType, ByteOrder), FormatError> {
    let bytes = fmt.as_bytes();
    let (order, native_sizes, rest) = match bytes.first() {
        Some(b'@') => (ByteOrder::Native, true, &bytes[1..]),
        Some(b'=') => (ByteOrder::Native, false, &bytes[1..]),
        Some(b'<') => (order_for(true), false, &bytes[1..]),
        Some(b'>' | b'!') => (order_for(false), false, &bytes[1..]),
        _ => (ByteOrder::Native, true, bytes),
    };
    let long = if native_sizes {
        std::mem::size_of::<std::ffi::c_long>()
    } else {
        4
    };
    let bad = || FormatError(format!("unsupported buffer format {fmt:?}"));
    let dtype = match rest {
        b"?" => DType::BOOL,
        b"b" => DType::I8,
        b"B" | b"c" => DType::U8,
        b"h" => DType::I16,
        b"H" => DType::U16,
        b"i" => DType::I32,
        b"I" => DType::U32,
        b"l" => int(true, long),
        b"L" => int(false, long),
        b"q" => DType::I64,
        b"Q" => DType::U64,
        b"n" if native_sizes => int(true, std::mem::size_of::<isize>()),
        b"N" if native_sizes => int(false, std::mem::size_of::<usize>()),
        b"e" => DType::F16,
        b"f" => DType::F32,
        b"d" => DType::F64,
        b"Zf" => DType::C64,
        b"Zd" => DType::C128,
        _ => return Err(bad()),
    };
    let order = if dtype.itemsize() == Some(1) {
        ByteOrder::Native
    } else {
        order
    };
    Ok((dtype, order))
}

fn order_for(little: bool) -> ByteOrder {
    if little == NATIVE_IS_LITTLE {
        ByteOrder::Native
    } else {
        ByteOrder::Swapped
    }
}

fn int(signed: bool, size: usize) -> DType {
    match (signed, size) {
        (true, 4) => DType::I32,
        (true, _) => DType::I64,
        (false, 4) => DType::U32,
        (false, _) => DType::U64,
    }
}

/// Parse a numpy `typestr` (`"<f4"`, `">i8"`, `"|b1"`, `"<c8"`, ...) into a dtype and byte order.
pub fn parse_typestr(s: &str) -> Result<(DType, ByteOrder), FormatError> {
    let bad = || FormatError(format!("unsupported array-interface typestr {s:?}"));
    let b = s.as_bytes();
    if b.len() < 3 {
        return Err(bad());
    }
    let little = cfg!(target_endian = "little");
    let order = match b[0] {
        b'<' if little => ByteOrder::Native,
        b'>' if !little => ByteOrder::Native,
        b'<' | b'>' => ByteOrder::Swapped,
        b'|' | b'=' => ByteOrder::Native,
        _ => return Err(bad()),
    };
    let size: usize = s.get(2..).ok_or_else(bad)?.parse().map_err(|_| bad())?;
    let dtype = match (b[1], size) {
        (b'b', 1) => DType::BOOL,
        (b'i', 1) => DType::I8,
        (b'i', 2) => DType::I16,
        (b'i', 4) => DType::I32,
        (b'i', 8) => DType::I64,
        (b'u', 1) => DType::U8,
        (b'u', 2) => DType::U16,
        (b'u', 4) => DType::U32,
        (b'u', 8) => DType::U64,
        (b'f', 2) => DType::F16,
        (b'f', 4) => DType::F32,
        (b'f', 8) => DType::F64,
        (b'c', 8) => DType::C64,
        (b'c', 16) => DType::C128,
        _ => return Err(bad()),
    };
    let order = if size == 1 { ByteOrder::Native } else { order };
    Ok((dtype, order))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(
            parse_struct_format("f").unwrap(),
            (DType::F32, ByteOrder::Native)
        );
        assert_eq!(parse_struct_format("<d").unwrap().0, DType::F64);
        assert_eq!(
            parse_struct_format(">i").unwrap(),
            (DType::I32, ByteOrder::Swapped)
        );
        assert_eq!(parse_struct_format("!h").unwrap().1, ByteOrder::Swapped);
        assert_eq!(parse_struct_format("=l").unwrap().0, DType::I32);
        assert_eq!(parse_struct_format("@l").unwrap().0, DType::I64);
        assert_eq!(
            parse_struct_format(">b").unwrap(),
            (DType::I8, ByteOrder::Native)
        );
        assert_eq!(parse_struct_format("Zf").unwrap().0, DType::C64);
        assert_eq!(parse_struct_format("?").unwrap().0, DType::BOOL);
        assert_eq!(parse_struct_format("e").unwrap().0, DType::F16);
        for bad in ["g", "T{f:x:}", "2f", "x", "", "P", "s"] {
            assert!(parse_struct_format(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn typestrs() {
        assert_eq!(
            parse_typestr("<f4").unwrap(),
            (DType::F32, ByteOrder::Native)
        );
        assert_eq!(
            parse_typestr(">i8").unwrap(),
            (DType::I64, ByteOrder::Swapped)
        );
        assert_eq!(parse_typestr("|b1").unwrap().0, DType::BOOL);
        assert_eq!(parse_typestr("<c16").unwrap().0, DType::C128);
        assert_eq!(parse_typestr(">u1").unwrap().1, ByteOrder::Native);
        for bad in ["<V2", "|O8", "<M8[s]", "<U4", "f4", "<f16", "<f"] {
            assert!(parse_typestr(bad).is_err(), "{bad}");
        }
    }
}
