//! The one error type of the crate.

use std::fmt;
use std::sync::Arc;

use crate::{DType, Device};

/// Everything that can go wrong when describing, viewing, copying or converting a tensor.
///
/// Every fallible operation of the crate returns this type; no operation panics on bad input.
/// Variants are precise so that a caller (or the Python layer, which maps them onto
/// `BufferError`, `TypeError` and `ValueError`) can react to the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shape argument the tensor cannot take: a reshape to another element count, a
    /// broadcast to an incompatible shape, a squeeze of an axis whose extent is not 1, a layout
    /// an operation cannot express.
    #[error("invalid shape: {0}")]
    InvalidShape(String),
    /// A rank outside `0..=MAX_NDIM` (a foreign tensor's `ndim` may also be negative).
    #[error("a rank of {ndim} is outside the supported 0..={max}")]
    TooManyDims {
        /// The rank found or asked for.
        ndim: i64,
        /// [`MAX_NDIM`](crate::MAX_NDIM).
        max: usize,
    },
    /// A typed view (an ndarray array of fixed dimension) asked of a tensor of another rank.
    #[error("the tensor has {found} dimensions, the requested type has {expected}")]
    DimensionMismatch {
        /// The rank of the requested type.
        expected: usize,
        /// The tensor's rank.
        found: usize,
    },
    /// Data of `len` elements given for a shape of `numel` elements (a container handed to
    /// `from_owner`, an Arrow list against its `fixed_shape_tensor` shape).
    #[error("shape {shape:?} holds {numel} elements, the data has {len}")]
    LengthMismatch {
        /// The shape.
        shape: Vec<usize>,
        /// Its element count.
        numel: usize,
        /// The element count of the data.
        len: usize,
    },
    /// An axis index past the last axis.
    #[error("axis {axis} out of range for a {ndim}-d tensor")]
    AxisOutOfRange {
        /// The axis asked for.
        axis: usize,
        /// The tensor's number of dimensions.
        ndim: usize,
    },
    /// A list of per-axis arguments (slices, dimension names) of the wrong length.
    #[error("{given} {what} for a {ndim}-d tensor")]
    ArgumentCount {
        /// What was counted.
        what: &'static str,
        /// How many were given.
        given: usize,
        /// How many axes the tensor has.
        ndim: usize,
    },
    /// An axis order that is not a permutation of `0..ndim`.
    #[error("{order:?} is not a permutation of {ndim} axes")]
    NotAPermutation {
        /// The order given.
        order: Vec<usize>,
        /// The number of axes.
        ndim: usize,
    },
    /// A slice step of zero, or `isize::MIN` (whose negation overflows).
    #[error("slice step {0} is not allowed")]
    InvalidStep(isize),
    /// A mutable view was asked of a layout where two indices reach the same element.
    #[error("a mutable view needs a layout whose elements do not overlap")]
    Overlapping,
    /// A `bool` element whose byte is neither 0 nor 1 (Rust's `bool` allows only those).
    #[error("bool element {index} holds the byte {byte}, not 0 or 1")]
    InvalidBool {
        /// The element's position in row-major order.
        index: usize,
        /// The byte found.
        byte: u8,
    },
    /// An IPC writer was given no record batch, so it has no schema to write.
    #[error("nothing to write: {0}")]
    NothingToWrite(&'static str),
    /// A dtype name [`DType::from_str`](std::str::FromStr) does not know.
    #[error("unknown dtype name {0:?}")]
    UnknownDtypeName(String),
    /// An element count, byte size or address computation overflowed.
    #[error("arithmetic overflow while computing {0}")]
    Overflow(&'static str),
    /// A view would reach memory outside what its owner keeps alive.
    #[error("out of bounds: {0}")]
    OutOfBounds(String),
    /// A null data pointer for a tensor that has elements.
    #[error("null data pointer for a tensor with {0} element(s)")]
    NullData(usize),
    /// A DLPack type code this crate does not know (DLPack 1.3 defines codes 0 to 17).
    #[error("unknown DLPack dtype (code {code}, bits {bits}, lanes {lanes})")]
    UnknownDtype {
        /// The raw type code.
        code: u8,
        /// The raw bit width.
        bits: u8,
        /// The raw lane count.
        lanes: u16,
    },
    /// The data type cannot be described or is not supported by this operation.
    #[error("unsupported dtype {dtype}: {reason}")]
    UnsupportedDtype {
        /// The offending data type.
        dtype: DType,
        /// Why it is refused.
        reason: &'static str,
    },
    /// An Arrow type no tensor can come from (strings, structs, variable-size lists, ...), or a
    /// dtype Arrow has no type for (bfloat16, complex, ...). Both directions fail alike:
    /// tensors and Arrow share booleans, integers, float16/32/64 and fixed-size lists of them.
    #[error("{0} has no counterpart between tensors and Arrow")]
    UnsupportedArrowType(String),
    /// Arrow data that breaks the Arrow specification or a tensor's needs (a released C struct,
    /// a missing buffer or child, a list size out of range, a truncated IPC file, ...).
    #[error("malformed Arrow data: {0}")]
    MalformedArrow(String),
    /// `arrow.fixed_shape_tensor` extension metadata whose JSON does not describe a tensor shape.
    #[error("invalid arrow.fixed_shape_tensor metadata: {0}")]
    InvalidExtensionMetadata(String),
    /// `arrow.fixed_shape_tensor` metadata that is not JSON at all (the parser's error is the
    /// source).
    #[error("arrow.fixed_shape_tensor metadata is not JSON: {0}")]
    UnreadableExtensionMetadata(#[source] ForeignError),
    /// An Arrow array with null slots, which a tensor cannot hold, and no fill value to use.
    #[error("the Arrow array has {0} null(s), which a tensor cannot hold; give a fill value")]
    Nulls(usize),
    /// A fill value for null slots that the tensor's dtype cannot represent.
    #[error("fill value {value} is not representable as {dtype}")]
    UnrepresentableFill {
        /// The fill value, printed.
        value: String,
        /// The dtype it had to fit.
        dtype: DType,
    },
    /// A foreign tensor with properties DLPack cannot carry (an undefined, quantized or
    /// autograd-tracked torch tensor): the message says which and how to convert it first.
    #[error("unsupported tensor: {0}")]
    UnsupportedTensor(&'static str),
    /// A typed access asked for another element type than the tensor holds.
    #[error("dtype mismatch: tensor holds {found}, {expected} was requested")]
    DtypeMismatch {
        /// The dtype the caller asked for.
        expected: DType,
        /// The dtype the tensor has.
        found: DType,
    },
    /// The device cannot be handled by this operation (most need host memory).
    #[error("unsupported device {device}: {reason}")]
    UnsupportedDevice {
        /// The offending device.
        device: Device,
        /// Why it is refused.
        reason: &'static str,
    },
    /// Mutable access or a writable export was requested for read-only memory.
    #[error("the tensor is read-only: {0}")]
    ReadOnly(&'static str),
    /// Mutable access was requested while other views or exports of the same memory live.
    #[error("the tensor is shared with {0} other handle(s); mutable access needs a unique view")]
    NotUnique(usize),
    /// A shared slice was requested while foreign code holds a writable alias of the memory
    /// (a torch tensor or DLPack export this crate made without the read-only flag).
    #[error(
        "the memory is shared writably with foreign code ({0} live export(s)); drop them, \
         export read-only, or copy"
    )]
    ForeignWriter(usize),
    /// A writable export was requested while safe Rust may hold shared references to the
    /// memory (a slice, an ndarray view, an Arrow buffer or `Owner::downcast_ref` was made of
    /// it since its owner last proved it had no other handle).
    #[error(
        "safe Rust may hold shared references to this memory (a slice, ndarray view or Arrow \
         buffer of it), so foreign code cannot get it writably; export read-only, copy, or \
         give up every other handle first (into_dlpack_versioned, into_tch)"
    )]
    SharedReaders,
    /// Mutable access was requested for memory foreign code can also reach (an import).
    #[error("the memory is shared with foreign code (an import): Rust cannot lend it mutably")]
    NotExclusive,
    /// The layout is not what the operation needs (and the operation does not copy).
    #[error("layout not supported without a copy: {0}")]
    NotContiguous(String),
    /// A copy would be needed but the caller forbade copying.
    #[error("a copy is required ({0}) but copying was not allowed")]
    CopyRequired(String),
    /// The data pointer is not aligned for the element type.
    #[error("misaligned data: address {address:#x} is not a multiple of {align}")]
    Misaligned {
        /// The first element's address.
        address: usize,
        /// The required alignment in bytes.
        align: usize,
    },
    /// A DLPack managed tensor of an ABI version this crate cannot read.
    #[error("DLPack version {major}.{minor} is not supported (this crate reads major version 1)")]
    VersionMismatch {
        /// Major version found.
        major: u32,
        /// Minor version found.
        minor: u32,
    },
    /// The allocator refused a copy's destination buffer of this many bytes.
    #[error("could not allocate {0} bytes for a copy")]
    AllocationFailed(usize),
    /// A null pointer where a managed tensor or an array was required.
    #[error("null pointer: {0}")]
    NullPointer(&'static str),
    /// Reading or writing a file failed; the source is the `std::io::Error`.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: Arc<str>,
        /// The operating system's error (library `"io"`, source a `std::io::Error`).
        source: ForeignError,
    },
    /// A tensor file that does not hold what its format promises: truncated, wrong magic,
    /// offsets past the end, overlapping tensors, a dtype or shape that does not fit the bytes.
    #[error("malformed {format} file: {reason}")]
    MalformedFile {
        /// `"safetensors"` or `"Arrow IPC"`.
        format: &'static str,
        /// What is wrong (the format library's own error as source, when it reported one).
        #[source]
        reason: ForeignError,
    },
    /// A failure reported by a foreign library (Arrow, libtorch). Its
    /// [`source()`](std::error::Error::source) is the library's own error when it gave one.
    #[error(transparent)]
    Foreign(ForeignError),
}

/// An error reported by a foreign library: which library, its message, and (when the library
/// has a Rust error type, as arrow-rs does) that error itself as
/// [`source()`](std::error::Error::source), so callers can downcast it.
///
/// ```
/// # #[cfg(feature = "arrow")] {
/// use std::error::Error as _;
/// let e = dlbridge::Error::from(arrow_schema::ArrowError::ComputeError("boom".into()));
/// let dlbridge::Error::Foreign(foreign) = &e else { unreachable!() };
/// assert_eq!(foreign.library(), "arrow");
/// assert!(e.source().unwrap().downcast_ref::<arrow_schema::ArrowError>().is_some());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ForeignError(Arc<ForeignErrorInner>);

/// Behind one pointer, so that [`Error`] stays small and cheap to move and drop.
#[derive(Debug)]
struct ForeignErrorInner {
    library: &'static str,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ForeignError {
    /// Wrap a library's own error, keeping it as the source.
    pub fn new(
        library: &'static str,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        ForeignError(Arc::new(ForeignErrorInner {
            library,
            message: error.to_string(),
            source: Some(Box::new(error)),
        }))
    }

    /// A library's failure known only by its message (a C++ exception's `what()`, a C stream's
    /// `get_last_error`).
    pub fn from_message(library: &'static str, message: impl Into<String>) -> Self {
        ForeignError(Arc::new(ForeignErrorInner {
            library,
            message: message.into(),
            source: None,
        }))
    }

    /// Which library reported the failure (`"arrow"`, `"libtorch"`).
    pub fn library(&self) -> &'static str {
        self.0.library
    }

    /// The library's message.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl fmt::Display for ForeignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.library, self.0.message)
    }
}

impl std::error::Error for ForeignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        let source: &(dyn std::error::Error + Send + Sync + 'static) = self.0.source.as_deref()?;
        Some(source)
    }
}

/// Equal when the library and the message are: the wrapped error itself need not be comparable.
impl PartialEq for ForeignError {
    fn eq(&self, other: &Self) -> bool {
        self.library() == other.library() && self.message() == other.message()
    }
}

impl Eq for ForeignError {}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::Error;

    /// Every fallible call returns `Result<_, Error>`: a large error would make every success
    /// path move more bytes (foreign errors sit behind one pointer for this reason).
    #[test]
    fn error_stays_small() {
        assert!(
            std::mem::size_of::<Error>() <= 40,
            "{}",
            std::mem::size_of::<Error>()
        );
    }
}
