//! The one error type of the crate.

use crate::{DType, Device};

/// Everything that can go wrong when describing, viewing, copying or converting a tensor.
///
/// Every fallible operation of the crate returns this type; no operation panics on bad input.
/// Variants are precise so that a caller (or the Python layer, which maps them onto
/// `BufferError`, `TypeError` and `ValueError`) can react to the cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A shape, axis list or argument combination that does not describe a tensor.
    #[error("invalid shape: {0}")]
    InvalidShape(String),
    /// An argument outside its documented domain (axis, step, order, version, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
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
    /// An Arrow type that no tensor can come from or go to (strings, structs, variable-size
    /// lists, dictionaries, ...): tensors are booleans, numbers and fixed-size lists of them.
    #[error("Arrow type {0} has no tensor form (booleans, numbers and fixed-size lists of them)")]
    UnsupportedArrowType(String),
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
    /// A failure reported by a foreign library (Arrow, libtorch, Python).
    #[error("{library}: {message}")]
    Foreign {
        /// Which library reported it.
        library: &'static str,
        /// Its message.
        message: String,
    },
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
