//! The Arrow C data importer (`dlbridge::interop::arrow::c_data`) against arbitrary
//! `ArrowSchema`/`ArrowArray` trees built in Rust: formats, child and buffer counts, null
//! pointer arrays and entries, released structs, dictionaries, negative or overflowing lengths,
//! offsets and null counts, schema/array pairs that disagree.
//!
//! Buffers always hold what the declared lengths need (the C data interface carries no sizes:
//! a producer that lies about them is out of any consumer's reach, see the module docs).
//! Invariants: no panic; an array is released exactly once, by the importer when it took the
//! array and by us otherwise; a schema is never released by the importer; an accepted tensor
//! reads only inside the buffers.
#![no_main]
// The harness keeps every struct in a `Box` inside a growing `Vec`: the boxes give the stable
// addresses the C structs point to.
#![allow(clippy::vec_box)]

use std::ffi::{c_char, c_void};
use std::sync::atomic::{AtomicUsize, Ordering};

use arbitrary::Arbitrary;
use dlbridge::interop::arrow::c_data::{field_from_c_schema, import_c_array};
use dlbridge::interop::arrow::ArrowImportOptions;
use dlbridge::CopyPolicy;
use libfuzzer_sys::fuzz_target;

#[repr(C)]
struct CSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut CSchema,
    dictionary: *mut CSchema,
    release: Option<unsafe extern "C" fn(*mut CSchema)>,
    private_data: *mut c_void,
}

#[repr(C)]
struct CArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut CArray,
    dictionary: *mut CArray,
    release: Option<unsafe extern "C" fn(*mut CArray)>,
    private_data: *mut c_void,
}

static SCHEMA_RELEASES: AtomicUsize = AtomicUsize::new(0);
static ARRAY_RELEASES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn release_schema(s: *mut CSchema) {
    SCHEMA_RELEASES.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the importer calls release with the live schema the harness built.
    unsafe { (*s).release = None };
}

unsafe extern "C" fn release_array(a: *mut CArray) {
    ARRAY_RELEASES.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the importer (or the harness) calls release with the live array the harness built.
    unsafe { (*a).release = None };
}

const FORMATS: &[&[u8]] = &[
    b"f\0",
    b"g\0",
    b"e\0",
    b"c\0",
    b"C\0",
    b"s\0",
    b"S\0",
    b"i\0",
    b"I\0",
    b"l\0",
    b"L\0",
    b"b\0",
    b"n\0",
    b"u\0",
    b"z\0",
    b"+w:1\0",
    b"+w:2\0",
    b"+w:3\0",
    b"+w:0\0",
    b"+w:-1\0",
    b"+w:99999999999\0",
    b"+l\0",
    b"+s\0",
    b"+m\0",
    b"w:4\0",
    b"\xff\xfe\0",
    b"\0",
];

/// Small honest values mostly; hostile ones the checks must refuse.
fn count(raw: i8) -> i64 {
    match raw {
        -128 => i64::MIN,
        -127 => i64::MAX,
        -126 => -2,
        r if r < 0 => -1,
        r => i64::from(r % 17),
    }
}

/// A length or offset: small, negative, or so large that it overflows together with any other
/// (never a huge length on its own: buffers that long cannot exist, and the C data interface
/// carries no sizes to tell, see the importer's docs).
fn extent(raw: i8, other: i64) -> i64 {
    match count(raw) {
        i64::MAX if other <= 0 => 16,
        n => n,
    }
}

#[derive(Arbitrary, Debug)]
struct SchemaNode {
    format: u8,
    n_children: i8,
    null_children: bool,
    null_child_entry: bool,
    released: bool,
    null_format: bool,
    dictionary: bool,
}

#[derive(Arbitrary, Debug)]
struct ArrayNode {
    length: i8,
    offset: i8,
    null_count: i8,
    n_buffers: i8,
    n_children: i8,
    null_buffers: bool,
    null_validity: bool,
    null_values: bool,
    null_children: bool,
    null_child_entry: bool,
    released: bool,
    dictionary: bool,
    buffer_shift: u8,
}

#[derive(Arbitrary, Debug)]
struct Input {
    schema: Vec<SchemaNode>,
    array: Vec<ArrayNode>,
    allow_copy: bool,
}

const ARENA: usize = 1 << 18;
const DEPTH: usize = 4;

/// Everything the C structs point to, kept alive for the whole run.
struct Harness {
    _arena: Vec<u64>,
    schemas: Vec<Box<CSchema>>,
    schema_children: Vec<Box<[*mut CSchema; 4]>>,
    arrays: Vec<Box<CArray>>,
    array_children: Vec<Box<[*mut CArray; 4]>>,
    buffers: Vec<Box<[*const c_void; 4]>>,
    dictionary_schema: Box<CSchema>,
    dictionary_array: Box<CArray>,
}

fn build(input: &Input) -> Harness {
    let mut arena = vec![0u64; ARENA / 8];
    // Deterministic, valid bytes for every type (booleans read 0/1 as bytes after a copy).
    for (i, w) in arena.iter_mut().enumerate() {
        *w = (i as u64 % 2) * 0x0101_0101_0101_0101;
    }
    let base = arena.as_mut_ptr().cast::<u8>();
    let dictionary_schema = Box::new(CSchema {
        format: c"i".as_ptr(),
        name: std::ptr::null(),
        metadata: std::ptr::null(),
        flags: 0,
        n_children: 0,
        children: std::ptr::null_mut(),
        dictionary: std::ptr::null_mut(),
        release: Some(release_schema),
        private_data: std::ptr::null_mut(),
    });
    let mut h = Harness {
        _arena: arena,
        schemas: Vec::new(),
        schema_children: Vec::new(),
        arrays: Vec::new(),
        array_children: Vec::new(),
        buffers: Vec::new(),
        dictionary_schema,
        dictionary_array: Box::new(CArray {
            length: 0,
            null_count: 0,
            offset: 0,
            n_buffers: 0,
            n_children: 0,
            buffers: std::ptr::null_mut(),
            children: std::ptr::null_mut(),
            dictionary: std::ptr::null_mut(),
            release: Some(release_array),
            private_data: std::ptr::null_mut(),
        }),
    };
    let dict_schema: *mut CSchema = &mut *h.dictionary_schema;
    let dict_array: *mut CArray = &mut *h.dictionary_array;
    // Schemas, innermost first so each parent can point at its child.
    let nodes: Vec<&SchemaNode> = input.schema.iter().take(DEPTH).collect();
    let mut child: *mut CSchema = std::ptr::null_mut();
    for node in nodes.iter().rev() {
        let mut table = Box::new([child; 4]);
        if node.null_child_entry {
            table[0] = std::ptr::null_mut();
        }
        let children = if node.null_children {
            std::ptr::null_mut()
        } else {
            table.as_mut_ptr()
        };
        h.schema_children.push(table);
        let mut s = Box::new(CSchema {
            format: if node.null_format {
                std::ptr::null()
            } else {
                FORMATS[node.format as usize % FORMATS.len()]
                    .as_ptr()
                    .cast()
            },
            name: c"x".as_ptr(),
            metadata: std::ptr::null(),
            flags: 2,
            n_children: count(node.n_children).clamp(-1, if child.is_null() { 0 } else { 4 }),
            children,
            dictionary: if node.dictionary {
                dict_schema
            } else {
                std::ptr::null_mut()
            },
            release: if node.released {
                None
            } else {
                Some(release_schema)
            },
            private_data: std::ptr::null_mut(),
        });
        child = &mut *s;
        h.schemas.push(s);
    }
    // Arrays likewise.
    let nodes: Vec<&ArrayNode> = input.array.iter().take(DEPTH).collect();
    let mut child: *mut CArray = std::ptr::null_mut();
    for node in nodes.iter().rev() {
        let shift = (node.buffer_shift as usize % 8) * 8;
        // SAFETY: within the arena; every buffer has at least ARENA - 64 bytes after it.
        let p = unsafe { base.add(shift) }.cast::<c_void>().cast_const();
        let mut bufs = Box::new([p; 4]);
        if node.null_validity {
            bufs[0] = std::ptr::null();
        }
        if node.null_values {
            bufs[1] = std::ptr::null();
        }
        let buffers = if node.null_buffers {
            std::ptr::null_mut()
        } else {
            bufs.as_mut_ptr()
        };
        h.buffers.push(bufs);
        let mut table = Box::new([child; 4]);
        if node.null_child_entry {
            table[0] = std::ptr::null_mut();
        }
        let children = if node.null_children {
            std::ptr::null_mut()
        } else {
            table.as_mut_ptr()
        };
        h.array_children.push(table);
        let mut a = Box::new(CArray {
            length: extent(node.length, count(node.offset)),
            null_count: count(node.null_count),
            offset: extent(node.offset, count(node.length)),
            n_buffers: count(node.n_buffers).clamp(-1, 4),
            n_children: count(node.n_children).clamp(-1, if child.is_null() { 0 } else { 4 }),
            buffers,
            children,
            dictionary: if node.dictionary {
                dict_array
            } else {
                std::ptr::null_mut()
            },
            release: if node.released {
                None
            } else {
                Some(release_array)
            },
            private_data: std::ptr::null_mut(),
        });
        child = &mut *a;
        h.arrays.push(a);
    }
    h
}

fuzz_target!(|input: Input| {
    if input.schema.is_empty() || input.array.is_empty() {
        return;
    }
    let mut h = build(&input);
    let schema: *mut CSchema = &mut **h.schemas.last_mut().unwrap();
    let array: *mut CArray = &mut **h.arrays.last_mut().unwrap();
    let schemas_before = SCHEMA_RELEASES.load(Ordering::SeqCst);
    let arrays_before = ARRAY_RELEASES.load(Ordering::SeqCst);
    // SAFETY: `array` points into `h`, which lives until the end of this iteration.
    let array_was_live = unsafe { (*array).release.is_some() };

    // SAFETY: every pointer in the trees is valid or null; buffers are long enough for every
    // length and offset the builder can declare (at most 16 + 16 slots of 8 bytes per level,
    // list sizes of at most 3 per level, 4 levels: far below the arena).
    let _ = unsafe { field_from_c_schema(schema.cast()) };
    // SAFETY: as above.
    let imported = unsafe { import_c_array(schema.cast(), array.cast()) };
    if let Ok(imported) = imported {
        let opts = ArrowImportOptions {
            copy: if input.allow_copy {
                CopyPolicy::IfNeeded
            } else {
                CopyPolicy::Never
            },
            null_fill: None,
        };
        if let Ok(t) = imported.into_tensor(&opts) {
            // Reads every element: must stay inside the arena.
            if let Ok(c) = t.to_contiguous(dlbridge::Order::C) {
                assert_eq!(c.numel(), t.numel());
            }
        }
    }
    // The importer released the array iff it took it; otherwise it is still ours.
    // SAFETY: `array` points into `h`, still alive; a set `release` means nobody released it.
    unsafe {
        if let Some(release) = (*array).release {
            release(array);
        }
    }
    let released = ARRAY_RELEASES.load(Ordering::SeqCst) - arrays_before;
    assert_eq!(
        released,
        usize::from(array_was_live),
        "array released {released} times"
    );
    assert_eq!(
        SCHEMA_RELEASES.load(Ordering::SeqCst),
        schemas_before,
        "schema released"
    );
});
