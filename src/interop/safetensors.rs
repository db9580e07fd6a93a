//! safetensors files (feature `safetensors`), the common format for model weights: written
//! from [`TensorView`]s, and mapped back without reading the data (see [`crate::files`]).
//!
//! The header is parsed and validated by the `safetensors` crate (header length, JSON,
//! offsets that tile the data exactly, so no overlap and nothing past the end, and byte
//! lengths that match dtype and shape). Every safetensors dtype has a DLPack counterpart:
//! `F8_E4M3` is `float8_e4m3fn`, `F8_E8M0` is `float8_e8m0fnu`, `F4` and `F6_*` are bit-packed.
//! `complex128` and the float8 kinds safetensors lacks cannot be saved.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use ::safetensors::tensor::{SafeTensorError, SafeTensors, View};
pub use ::safetensors::Dtype;

use crate::files::{io_error, FileFormat, MappedFile};
use crate::{DType, DTypeCode, Error, ForeignError, Order, Result, TensorView};

/// The DLPack dtype of a safetensors dtype (every safetensors 0.8 dtype has one; a later one
/// that does not is [`Error::MalformedFile`]).
///
/// ```
/// use dlbridge::interop::safetensors::Dtype; // safetensors' own type, re-exported
/// use dlbridge::DType;
/// assert_eq!(DType::try_from(Dtype::BF16)?, DType::BF16);
/// assert_eq!(Dtype::try_from(DType::F32)?, Dtype::F32);
/// assert!(Dtype::try_from(DType::C128).is_err()); // safetensors has no complex128
/// # Ok::<(), dlbridge::Error>(())
/// ```
impl TryFrom<Dtype> for DType {
    type Error = Error;
    fn try_from(dtype: Dtype) -> Result<DType> {
        dtype_of(dtype)
    }
}

/// The safetensors dtype of a DLPack dtype ([`Error::UnsupportedDtype`] when safetensors has
/// none).
impl TryFrom<DType> for Dtype {
    type Error = Error;
    fn try_from(dtype: DType) -> Result<Dtype> {
        DTYPES
            .into_iter()
            .find(|&d| dtype_of(d).ok() == Some(dtype))
            .ok_or(Error::UnsupportedDtype {
                dtype,
                reason: "safetensors has no such dtype",
            })
    }
}

fn dtype_of(dtype: Dtype) -> Result<DType> {
    use DTypeCode as C;
    let (code, bits) = match dtype {
        Dtype::BOOL => return Ok(DType::BOOL),
        Dtype::U8 => (C::UInt, 8),
        Dtype::I8 => (C::Int, 8),
        Dtype::I16 => (C::Int, 16),
        Dtype::U16 => (C::UInt, 16),
        Dtype::I32 => (C::Int, 32),
        Dtype::U32 => (C::UInt, 32),
        Dtype::I64 => (C::Int, 64),
        Dtype::U64 => (C::UInt, 64),
        Dtype::F16 => (C::Float, 16),
        Dtype::BF16 => (C::BFloat, 16),
        Dtype::F32 => (C::Float, 32),
        Dtype::F64 => (C::Float, 64),
        Dtype::C64 => (C::Complex, 64),
        Dtype::F8_E5M2 => (C::Float8E5M2, 8),
        Dtype::F8_E4M3 => (C::Float8E4M3Fn, 8),
        Dtype::F8_E8M0 => (C::Float8E8M0Fnu, 8),
        Dtype::F8_E4M3FNUZ => (C::Float8E4M3Fnuz, 8),
        Dtype::F8_E5M2FNUZ => (C::Float8E5M2Fnuz, 8),
        Dtype::F6_E2M3 => (C::Float6E2M3Fn, 6),
        Dtype::F6_E3M2 => (C::Float6E3M2Fn, 6),
        Dtype::F4 => (C::Float4E2M1Fn, 4),
        other => {
            return Err(crate::files::malformed(
                FileFormat::Safetensors,
                format!("dtype {other} has no DLPack counterpart"),
            ))
        }
    };
    DType::new(code as u8, bits, 1)
}

/// Every safetensors dtype (0.8), each with a DLPack counterpart (`DType::try_from`).
pub const DTYPES: [Dtype; 22] = [
    Dtype::BOOL,
    Dtype::U8,
    Dtype::I8,
    Dtype::I16,
    Dtype::U16,
    Dtype::I32,
    Dtype::U32,
    Dtype::I64,
    Dtype::U64,
    Dtype::F16,
    Dtype::BF16,
    Dtype::F32,
    Dtype::F64,
    Dtype::C64,
    Dtype::F8_E5M2,
    Dtype::F8_E4M3,
    Dtype::F8_E8M0,
    Dtype::F8_E4M3FNUZ,
    Dtype::F8_E5M2FNUZ,
    Dtype::F6_E2M3,
    Dtype::F6_E3M2,
    Dtype::F4,
];

fn format_error(e: SafeTensorError) -> Error {
    Error::MalformedFile {
        format: FileFormat::Safetensors.name(),
        reason: ForeignError::new("safetensors", e),
    }
}

/// One tensor to write: a C-contiguous host view and its safetensors dtype.
struct Entry {
    view: TensorView,
    dtype: Dtype,
}

impl View for &Entry {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        self.view.shape()
    }
    fn data(&self) -> Cow<'_, [u8]> {
        // Checked when the entry was made (`as_bytes` succeeded then; the view is unchanged).
        Cow::Borrowed(self.view.as_bytes().unwrap_or_default())
    }
    fn data_len(&self) -> usize {
        self.view.nbytes()
    }
}

/// Write named tensors as a safetensors file (through a temporary file renamed into place, so
/// a mapping of an older `path` is never truncated under its views). Non-contiguous tensors
/// are written in C order; names must be distinct.
pub fn save_file(path: impl AsRef<Path>, tensors: &[(&str, &TensorView)]) -> Result<()> {
    let path = path.as_ref();
    let mut entries = Vec::with_capacity(tensors.len());
    for &(name, view) in tensors {
        let dtype = Dtype::try_from(view.dtype())?;
        let view = if view.is_c_contiguous() {
            view.clone()
        } else {
            view.to_contiguous(Order::C)?
        };
        view.as_bytes()?; // host memory, no writable foreign alias
        if view.flags().subbyte_padded {
            return Err(Error::UnsupportedTensor(
                "safetensors stores sub-byte elements bit-packed, not padded",
            ));
        }
        entries.push((name, Entry { view, dtype }));
    }
    let mut names: Vec<&str> = tensors.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    if names.windows(2).any(|w| w[0] == w[1]) {
        return Err(Error::UnsupportedTensor("two tensors of one name"));
    }
    let iter = entries.iter().map(|(name, entry)| (*name, entry));
    ::safetensors::serialize_to_file(iter, None, path).map_err(|e| match e {
        SafeTensorError::IoError(io) => io_error(path)(io),
        other => format_error(other),
    })
}

/// Views of every tensor of a mapped safetensors file, in file order.
pub(crate) fn views_of(file: &Arc<MappedFile>) -> Result<Vec<(String, TensorView)>> {
    let (header_len, metadata) = SafeTensors::read_metadata(file.bytes()).map_err(format_error)?;
    let data_start = 8 + header_len; // cannot overflow: the header lies inside the file
    let mut views = Vec::new();
    for name in metadata.offset_keys() {
        let info = metadata
            .info(&name)
            .ok_or_else(|| format_error(SafeTensorError::TensorNotFound(name.clone())))?;
        let dtype = DType::try_from(info.dtype)?;
        let offset = data_start + info.data_offsets.0; // validated against the file length
        views.push((name, file.tensor(offset, info.shape.clone(), dtype)?));
    }
    Ok(views)
}
