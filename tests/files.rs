//! Tensor files: safetensors and Arrow IPC written from views and memory-mapped back (read-only
//! views into the mapping, no data read), and every malformed file refused with an error.
#![cfg(all(feature = "safetensors", feature = "arrow-ipc"))]

use std::path::{Path, PathBuf};

use dlbridge::files::{self, FileFormat};
use dlbridge::{DType, Error, Order, SliceArg, TensorView};

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("dlbridge-files-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sample() -> Vec<(&'static str, TensorView)> {
    let f32s = TensorView::from_vec((0..24).map(|x| x as f32).collect(), &[2, 3, 4]).unwrap();
    vec![
        ("weights", f32s.clone()),
        ("transposed", f32s.permute(&[2, 0, 1]).unwrap()),
        (
            "odd",
            f32s.slice(2, SliceArg::from(1..).with_step(2)).unwrap(),
        ),
        (
            "ints",
            TensorView::from_vec(vec![-3i64, 7, 11], &[3]).unwrap(),
        ),
        (
            "bytes",
            TensorView::from_vec(vec![1u8, 2, 3, 4, 5], &[5]).unwrap(),
        ),
        ("scalar", TensorView::from_vec(vec![2.5f64], &[]).unwrap()),
        (
            "empty",
            TensorView::from_vec(Vec::<i16>::new(), &[0, 3]).unwrap(),
        ),
    ]
}

fn as_refs<'a>(v: &'a [(&'static str, TensorView)]) -> Vec<(&'static str, &'a TensorView)> {
    v.iter().map(|(n, t)| (*n, t)).collect()
}

fn assert_same(name: &str, a: &TensorView, b: &TensorView) {
    assert_eq!(a.shape(), b.shape(), "{name}");
    assert_eq!(a.dtype(), b.dtype(), "{name}");
    let bytes = |t: &TensorView| {
        t.to_contiguous(Order::C)
            .unwrap()
            .reinterpret(DType::U8)
            .map(|u| u.to_vec::<u8>().unwrap())
            .unwrap_or_default()
    };
    assert_eq!(bytes(a), bytes(b), "{name}");
}

fn check_round_trip(path: &Path, expect: FileFormat) {
    let tensors = sample();
    files::save(path, &as_refs(&tensors)).unwrap();
    let head = std::fs::read(path).unwrap();
    assert_eq!(FileFormat::sniff(&head), Some(expect));
    // SAFETY: the test owns the file and changes it only after the views are gone.
    let mapped = unsafe { files::map(path) }.unwrap();
    assert_eq!(mapped.len(), tensors.len());
    for (name, view) in &mapped {
        let (_, original) = tensors.iter().find(|(n, _)| n == name).unwrap();
        assert_same(name, view, original);
        assert!(view.is_read_only(), "{name}");
        assert!(!view.is_copied(), "{name}: a view into the mapping");
        assert!(view.is_c_contiguous(), "{name}");
        assert_ne!(view.data_ptr(), original.data_ptr(), "{name}");
    }
}

#[test]
fn safetensors_round_trip_through_the_mapping() {
    let dir = TempDir::new("st");
    check_round_trip(&dir.path("model.safetensors"), FileFormat::Safetensors);
}

#[test]
fn arrow_ipc_round_trip_through_the_mapping() {
    let dir = TempDir::new("ipc");
    check_round_trip(&dir.path("tensors.arrow"), FileFormat::ArrowIpc);
}

#[test]
fn the_format_comes_from_the_contents_not_the_name() {
    let dir = TempDir::new("sniff");
    let t = TensorView::from_vec(vec![1.0f32, 2.0], &[2]).unwrap();
    files::save(dir.path("a.safetensors"), &[("t", &t)]).unwrap();
    std::fs::rename(dir.path("a.safetensors"), dir.path("a.arrow")).unwrap();
    // SAFETY: as above.
    let mapped = unsafe { files::map(dir.path("a.arrow")) }.unwrap();
    assert_eq!(mapped[0].1.to_vec::<f32>().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn every_safetensors_dtype_maps_to_dlpack_and_back() {
    use dlbridge::interop::safetensors::{Dtype, DTYPES};
    for d in DTYPES {
        let ours = DType::try_from(d).unwrap();
        assert_eq!(ours.element_bits() as usize, d.bitsize(), "{d}");
        assert_eq!(Dtype::try_from(ours).unwrap(), d);
    }
    let mut names: Vec<String> = DTYPES.iter().map(|d| d.to_string()).collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        DTYPES.len(),
        "each safetensors dtype listed once"
    );
    assert!(matches!(
        Dtype::try_from(DType::C128),
        Err(Error::UnsupportedDtype { .. })
    ));
}

#[test]
fn bfloat16_and_bool_round_trip_through_safetensors() {
    let dir = TempDir::new("bf16");
    let path = dir.path("x.safetensors");
    let b = TensorView::from_vec(
        vec![half::bf16::from_f32(1.5), half::bf16::from_f32(-2.0)],
        &[2],
    )
    .unwrap();
    let flags = TensorView::from_vec(vec![true, false, true], &[3]).unwrap();
    files::save(&path, &[("b", &b), ("flags", &flags)]).unwrap();
    // SAFETY: as above.
    let mapped = unsafe { files::map(&path) }.unwrap();
    let get = |n: &str| mapped.iter().find(|(m, _)| m == n).unwrap().1.clone();
    assert_eq!(
        get("b").to_vec::<half::bf16>().unwrap(),
        b.to_vec::<half::bf16>().unwrap()
    );
    assert_eq!(
        get("flags").to_vec::<bool>().unwrap(),
        vec![true, false, true]
    );
}

#[test]
fn mapped_views_outlive_the_unlinked_file() {
    let dir = TempDir::new("unlink");
    for name in ["w.safetensors", "w.arrow"] {
        let path = dir.path(name);
        let t = TensorView::from_vec((0..1000).map(|x| x as f64).collect(), &[10, 100]).unwrap();
        files::save(&path, &[("t", &t)]).unwrap();
        // SAFETY: the file is unlinked, never changed, while the views live.
        let mapped = unsafe { files::map(&path) }.unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            mapped[0].1.to_vec::<f64>().unwrap(),
            t.to_vec::<f64>().unwrap()
        );
    }
}

#[test]
fn saving_over_a_mapped_file_leaves_its_views_intact() {
    let dir = TempDir::new("replace");
    for name in ["w.safetensors", "w.arrow"] {
        let path = dir.path(name);
        let old = TensorView::from_vec(vec![1u32; 4096], &[4096]).unwrap();
        files::save(&path, &[("t", &old)]).unwrap();
        // SAFETY: `save` replaces the file by a rename; the mapped inode is never changed.
        let mapped = unsafe { files::map(&path) }.unwrap();
        let new = TensorView::from_vec(vec![2u32; 8], &[8]).unwrap();
        files::save(&path, &[("t", &new)]).unwrap();
        assert_eq!(mapped[0].1.to_vec::<u32>().unwrap(), vec![1u32; 4096]);
    }
}

#[test]
fn arrow_ipc_files_read_as_fixed_shape_tensor_columns() {
    use dlbridge::interop::arrow::{ipc, EXTENSION_NAME_KEY, FIXED_SHAPE_TENSOR};
    let dir = TempDir::new("ipc-cols");
    let path = dir.path("t.arrow");
    let t = TensorView::from_vec((0..12).collect::<Vec<i32>>(), &[3, 4]).unwrap();
    files::save(&path, &[("t", &t)]).unwrap();
    let batches = ipc::read_file(std::fs::File::open(&path).unwrap()).unwrap();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].num_rows(), 1);
    let field = batches[0].schema().field(0).clone();
    assert_eq!(field.name(), "t");
    assert_eq!(
        field.metadata().get(EXTENSION_NAME_KEY).map(String::as_str),
        Some(FIXED_SHAPE_TENSOR)
    );
    assert_eq!(
        field
            .metadata()
            .get(ipc::WHOLE_TENSOR_KEY)
            .map(String::as_str),
        Some("row")
    );
}

fn assert_malformed(what: &str, bytes: &[u8], dir: &TempDir) {
    let path = dir.path("bad.bin");
    std::fs::write(&path, bytes).unwrap();
    // SAFETY: the test owns the file.
    match unsafe { files::map(&path) } {
        Err(Error::MalformedFile { .. }) | Err(Error::UnsupportedTensor(_)) => {}
        Err(Error::OutOfBounds(_)) | Err(Error::InvalidShape(_)) | Err(Error::Foreign(_)) => {}
        Err(Error::UnsupportedArrowType(_)) | Err(Error::MalformedArrow(_)) => {}
        Err(Error::InvalidExtensionMetadata(_)) | Err(Error::UnknownDtype { .. }) => {}
        Err(Error::UnreadableExtensionMetadata(_)) | Err(Error::LengthMismatch { .. }) => {}
        Err(Error::TooManyDims { .. }) => {}
        Ok(views) => panic!("{what}: accepted a malformed file: {:?}", views.len()),
        Err(other) => panic!("{what}: unexpected error {other:?}"),
    }
}

/// A hand-made safetensors file: the JSON header (padded to 8 bytes), then `data`.
fn safetensors_bytes(header: &str, data: &[u8]) -> Vec<u8> {
    let mut h = header.as_bytes().to_vec();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    out
}

#[test]
fn malformed_safetensors_files_are_refused() {
    let dir = TempDir::new("bad-st");
    let ok = safetensors_bytes(
        r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
        &[0; 8],
    );
    {
        std::fs::write(dir.path("ok.bin"), &ok).unwrap();
        // SAFETY: the test owns the file.
        assert_eq!(unsafe { files::map(dir.path("ok.bin")) }.unwrap().len(), 1);
    }
    for cut in 0..ok.len() {
        assert_malformed(&format!("cut at {cut}"), &ok[..cut], &dir);
    }
    assert_malformed("wrong magic", b"PK\x03\x04 not a tensor file at all", &dir);
    let mut huge = ok.clone();
    huge[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_malformed("header length past the end", &huge, &dir);
    let cases = [
        (
            "offsets past the end",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}}"#,
        ),
        (
            "overlapping tensors",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#,
        ),
        (
            "shape does not fit the bytes",
            r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        ),
        (
            "dtype does not fit the bytes",
            r#"{"a":{"dtype":"F64","shape":[2],"data_offsets":[0,8]}}"#,
        ),
        (
            "unknown dtype",
            r#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#,
        ),
        (
            "overflowing shape",
            r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}}"#,
        ),
        (
            "reversed offsets",
            r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#,
        ),
        ("not JSON", r#"{"a": nope}"#),
    ];
    for (what, header) in cases {
        assert_malformed(what, &safetensors_bytes(header, &[0; 8]), &dir);
    }
}

#[test]
fn malformed_arrow_ipc_files_are_refused() {
    let dir = TempDir::new("bad-ipc");
    let path = dir.path("ok.arrow");
    let t = TensorView::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3]).unwrap();
    files::save(&path, &[("t", &t)]).unwrap();
    let ok = std::fs::read(&path).unwrap();
    for cut in (0..ok.len()).step_by(7) {
        assert_malformed(&format!("cut at {cut}"), &ok[..cut], &dir);
    }
    // Flipping bytes in the footer and metadata: refused or read, never a crash or an
    // out-of-bounds view (every accepted view is read in full).
    for i in (0..ok.len()).step_by(3) {
        let mut bad = ok.clone();
        bad[i] ^= 0xA5;
        let bad_path = dir.path("flip.arrow");
        std::fs::write(&bad_path, &bad).unwrap();
        // SAFETY: the test owns the file.
        if let Ok(views) = unsafe { files::map(&bad_path) } {
            for (_, v) in views {
                let _ = v.to_contiguous(Order::C);
            }
        }
    }
}

/// One record batch of `t` as an Arrow IPC file and as an IPC stream.
fn ipc_file_and_stream(t: &TensorView) -> (Vec<u8>, Vec<u8>) {
    use dlbridge::interop::arrow::{ipc, record_batch_from_tensors};
    let batch = record_batch_from_tensors(&[("t", t)], &Default::default()).unwrap();
    let (mut file, mut stream) = (Vec::new(), Vec::new());
    ipc::write_file(
        std::io::Cursor::new(&mut file),
        std::slice::from_ref(&batch),
    )
    .unwrap();
    ipc::write_stream(&mut stream, std::slice::from_ref(&batch)).unwrap();
    (file, stream)
}

#[test]
fn malformed_ipc_through_the_copying_readers_is_an_error_not_a_panic() {
    use dlbridge::interop::arrow::ipc;
    let t = TensorView::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3]).unwrap();
    let (file, stream) = ipc_file_and_stream(&t);
    // Each caught arrow-ipc panic prints its message (the default hook); the test only asks
    // that every malformed input comes back as an error.
    let mut caught = 0;
    for i in (0..file.len().max(stream.len())).step_by(3) {
        for (bytes, is_file) in [(&file, true), (&stream, false)] {
            if i >= bytes.len() {
                continue;
            }
            let mut bad = bytes.clone();
            bad[i] ^= 0x5A;
            for input in [&bad[..], &bytes[..i]] {
                let read = if is_file {
                    ipc::read_file(std::io::Cursor::new(input)).map(|_| ())
                } else {
                    ipc::read_stream(input).map(|_| ())
                };
                if let Err(Error::MalformedArrow(m)) = read {
                    caught += usize::from(m.starts_with("unreadable Arrow IPC data"));
                }
            }
        }
    }
    eprintln!("{caught} arrow-ipc panics became errors");
}

#[test]
fn a_fixed_size_list_whose_length_overflows_is_an_error_not_a_panic() {
    // Found by the `tensor_files` fuzz target: arrow-data's validation `expect`s here.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/arrow_ipc_list_length_overflow.arrow");
    // SAFETY: a committed test file nobody changes.
    match unsafe { files::map(&path) } {
        Err(Error::MalformedFile { .. }) | Err(Error::MalformedArrow(_)) => {}
        other => panic!(
            "expected a malformed-file error, got {:?}",
            other.map(|v| v.len())
        ),
    }
}

/// Every occurrence of `value` (as little-endian i64) in `bytes` replaced, one at a time.
fn patched(bytes: &[u8], value: i64, with: i64) -> Vec<Vec<u8>> {
    let (needle, patch) = (value.to_le_bytes(), with.to_le_bytes());
    (0..bytes.len().saturating_sub(7))
        .filter(|&i| bytes[i..i + 8] == needle)
        .map(|i| {
            let mut b = bytes.to_vec();
            b[i..i + 8].copy_from_slice(&patch);
            b
        })
        .collect()
}

#[test]
fn declared_lengths_far_past_the_data_are_errors_not_aborts() {
    // arrow-ipc allocates a message body from its declared length before reading it
    // (apache/arrow-rs#10521, #10921): an impossible claim can abort the whole process
    // (reported for 58/59; with 60.1 here a bare reader panics instead, and the panic escapes).
    use dlbridge::interop::arrow::ipc;
    let t = TensorView::from_vec((0..16).map(|x| x as f32).collect(), &[16]).unwrap();
    let (file, stream) = ipc_file_and_stream(&t);
    let body = 64; // 16 f32 values, padded to 64 bytes
    let (bad_files, bad_streams) = (
        patched(&file, body, 1 << 60),
        patched(&stream, body, 1 << 60),
    );
    assert!(!bad_files.is_empty() && !bad_streams.is_empty());
    // Not every patched 64 is a body length (offsets can be 64 too): each variant must come
    // back (an error or batches), and the body-length ones must be errors.
    let mut refused = 0;
    for bad in &bad_files {
        refused += usize::from(ipc::read_file(std::io::Cursor::new(bad)).is_err());
        let dir = TempDir::new("huge");
        std::fs::write(dir.path("h.arrow"), bad).unwrap();
        // SAFETY: the test owns the file.
        let _ = unsafe { files::map(dir.path("h.arrow")) };
    }
    for bad in &bad_streams {
        refused += usize::from(ipc::read_stream(&bad[..]).is_err());
    }
    assert!(refused >= 2, "{refused}");
}
