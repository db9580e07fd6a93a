//! Tensor files, memory-mapped: safetensors (feature `safetensors`) and Arrow IPC (feature
//! `arrow-ipc`), both written from and mapped back into [`TensorView`]s.
//!
//! [`map`] reads no tensor data: it maps the file copy-on-write (`MAP_PRIVATE`, as numpy's
//! `mmap_mode="c"`), parses the header, and returns read-only views into the mapping, which
//! they keep alive (also after the file is unlinked). Pages are read from disk when something
//! touches them, so mapping a file costs no memory proportional to its size. A consumer that
//! ignores the read-only flag (torch 2.13 does) and writes anyway changes a private copy of one
//! page, never the file, and never crashes on a read-only page.
//!
//! ```
//! # #[cfg(feature = "safetensors")] {
//! use dlbridge::{files, TensorView};
//! let dir = std::env::temp_dir().join(format!("dlbridge-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("weights.safetensors");
//! let w = TensorView::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3])?;
//! files::save(&path, &[("w", &w)])?;
//! // SAFETY: nobody changes or truncates the file while the views live.
//! let tensors = unsafe { files::map(&path) }?;
//! assert_eq!(tensors[0].0, "w");
//! assert!(tensors[0].1.is_read_only());
//! assert_eq!(tensors[0].1.to_vec::<f32>()?, vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
//! # std::fs::remove_dir_all(&dir)?;
//! # }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use crate::{Error, ForeignError, Result, TensorView};

/// The tensor file formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileFormat {
    /// safetensors: an 8-byte little-endian header length, a JSON header, the raw bytes.
    Safetensors,
    /// An Arrow IPC file (`ARROW1` magic), one column per tensor.
    ArrowIpc,
}

impl FileFormat {
    /// The format [`save`] writes to `path`: safetensors for a name ending in `.safetensors`,
    /// Arrow IPC otherwise.
    pub fn for_path(path: &Path) -> FileFormat {
        match path.extension() {
            Some(ext) if ext == "safetensors" => FileFormat::Safetensors,
            _ => FileFormat::ArrowIpc,
        }
    }

    /// The format of a file from its first bytes, whatever its name: `None` for neither.
    pub fn sniff(head: &[u8]) -> Option<FileFormat> {
        if head.starts_with(b"ARROW1") {
            return Some(FileFormat::ArrowIpc);
        }
        // safetensors: the header length, then a JSON object.
        let json = head.get(8..)?.iter().find(|b| !b.is_ascii_whitespace())?;
        (*json == b'{').then_some(FileFormat::Safetensors)
    }

    /// The name used in errors.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Safetensors => "safetensors",
            FileFormat::ArrowIpc => "Arrow IPC",
        }
    }
}

/// Write named tensors to `path` in the format its name asks for ([`FileFormat::for_path`]).
/// Non-contiguous tensors are written in C order.
pub fn save(path: impl AsRef<Path>, tensors: &[(&str, &TensorView)]) -> Result<()> {
    let path = path.as_ref();
    match FileFormat::for_path(path) {
        #[cfg(feature = "safetensors")]
        FileFormat::Safetensors => crate::interop::safetensors::save_file(path, tensors),
        #[cfg(feature = "arrow-ipc")]
        FileFormat::ArrowIpc => crate::interop::arrow::ipc::save_tensor_file(path, tensors),
        #[allow(unreachable_patterns)]
        other => Err(not_built(other)),
    }
}

/// Map a tensor file of either format (told by its contents, not its name) and view its
/// tensors without reading them, in file order.
///
/// # Safety
/// While any returned view lives, nobody may change or truncate the file (a truncated mapping
/// raises `SIGBUS` on access, and changed pages change the views' values under Rust's shared
/// references). This is the contract of every memory-mapped file reader (`memmap2`, numpy's
/// `memmap`, safetensors' `safe_open`).
pub unsafe fn map(path: impl AsRef<Path>) -> Result<Vec<(String, TensorView)>> {
    let path = path.as_ref();
    // SAFETY: forwarded from the caller.
    let file = unsafe { MappedFile::open(path) }?;
    match FileFormat::sniff(file.bytes()) {
        #[cfg(feature = "safetensors")]
        Some(FileFormat::Safetensors) => crate::interop::safetensors::views_of(&file),
        #[cfg(feature = "arrow-ipc")]
        Some(FileFormat::ArrowIpc) => crate::interop::arrow::ipc::views_of(&file),
        #[allow(unreachable_patterns)]
        Some(other) => Err(not_built(other)),
        None => Err(Error::MalformedFile {
            format: "tensor",
            reason: ForeignError::from_message(
                "dlbridge",
                "neither a safetensors nor an Arrow IPC file (unknown magic)",
            ),
        }),
    }
}

#[allow(dead_code)]
fn not_built(format: FileFormat) -> Error {
    Error::UnsupportedTensor(match format {
        FileFormat::Safetensors => "safetensors files need the `safetensors` feature",
        FileFormat::ArrowIpc => "Arrow IPC files need the `arrow-ipc` feature",
    })
}

/// An I/O error on `path`, with the `std::io::Error` as source.
pub(crate) fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Io {
        path: path.display().to_string().into(),
        source: ForeignError::new("io", e),
    }
}

/// Write a file through a temporary sibling renamed into place: a mapping of the old `path`
/// keeps the old contents (truncating a mapped file would raise `SIGBUS` in its readers).
#[cfg(feature = "arrow-ipc")]
pub(crate) fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<File>) -> Result<()>,
) -> Result<()> {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let name = path.file_name().ok_or_else(|| Error::Io {
        path: path.display().to_string().into(),
        source: ForeignError::from_message("io", "not a file name"),
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".{}-{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(tmp_name);
    let result = (|| {
        let mut out =
            std::io::BufWriter::with_capacity(1 << 20, File::create(&tmp).map_err(io_error(&tmp))?);
        write(&mut out)?;
        out.flush().map_err(io_error(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io_error(path))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A malformed-file error for `format`.
pub(crate) fn malformed(format: FileFormat, reason: impl Into<String>) -> Error {
    Error::MalformedFile {
        format: format.name(),
        reason: ForeignError::from_message("dlbridge", reason),
    }
}

/// A file mapped copy-on-write, the owner of every view into it.
pub(crate) struct MappedFile {
    map: memmap2::MmapMut,
}

impl MappedFile {
    /// # Safety
    /// As [`map`]: nobody changes or truncates the file while the mapping lives.
    pub(crate) unsafe fn open(path: &Path) -> Result<Arc<MappedFile>> {
        let file = File::open(path).map_err(io_error(path))?;
        // SAFETY: a private (copy-on-write) mapping: our writes never reach the file; the
        // caller promises that nobody else changes or truncates it while mapped.
        let map = unsafe { memmap2::MmapOptions::new().map_copy(&file) }.map_err(io_error(path))?;
        Ok(Arc::new(MappedFile { map }))
    }

    /// The whole file. Only for parsing headers, before any view of the data is handed out.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// The address of the first byte.
    pub(crate) fn base(&self) -> *mut u8 {
        self.map.as_ptr().cast_mut()
    }

    /// A read-only C-contiguous view of `shape` and `dtype` starting `offset` bytes into the
    /// file; refused (never out of bounds) when it would reach past the end.
    #[cfg(feature = "safetensors")]
    pub(crate) fn tensor(
        self: &Arc<Self>,
        offset: usize,
        shape: Vec<usize>,
        dtype: crate::DType,
    ) -> Result<TensorView> {
        use crate::{tensor::Parts, Device, Flags, Owner};
        let start = self.base() as usize;
        let parts = Parts {
            data: self.base(),
            byte_offset: offset,
            shape,
            strides: None,
            dtype,
            device: Device::CPU,
            flags: Flags::default().with_read_only(true),
            extent: Some(start..start + self.map.len()),
        };
        // SAFETY: the mapping is host memory of `len` bytes, valid while the owner (the mapping)
        // lives; `from_parts` checks that the view stays inside it; read-only, so Rust never
        // writes it.
        unsafe { TensorView::from_parts(parts, Owner::new(self.clone())) }
    }
}
