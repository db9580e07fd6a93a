//! The element-format parsers of the Python protocols (buffer-protocol `struct` formats and
//! `__array_interface__` typestrs) and the Arrow `fixed_shape_tensor` metadata parser, on
//! arbitrary text: no panic; whatever is accepted is self-consistent (a parsed dtype names a
//! byte-addressable element; parsed metadata serialises and re-parses to itself).
#![no_main]

use dlbridge::format::{parse_struct_format, parse_typestr};
use dlbridge::interop::arrow::FixedShapeTensorMeta;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok((dtype, _)) = parse_struct_format(text) {
        assert!(dtype.itemsize().is_some());
    }
    if let Ok((dtype, _)) = parse_typestr(text) {
        let size: usize = text[2..].parse().unwrap();
        assert_eq!(dtype.itemsize(), Some(size));
    }
    if let Ok(meta) = FixedShapeTensorMeta::parse(text) {
        let again = FixedShapeTensorMeta::parse(&meta.to_json()).expect("own output parses");
        assert_eq!(again.to_json(), meta.to_json());
    }
});
