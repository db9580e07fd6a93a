//! dlbridge errors as Python exceptions.

use pyo3::exceptions::{PyBufferError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::PyErr;

use crate::Error;

/// The Python exception the array API and DLPack specifications ask for: `BufferError` when
/// data cannot be described or shared as asked (dtype, layout, device, read-only, a copy
/// forbidden by `copy=False`), `ValueError` for invalid arguments and malformed input,
/// `TypeError` for a type mismatch, `RuntimeError` for a foreign library's failure, `OSError`
/// (its subclass for the kind) for a file that cannot be read or written. With it, `?`
/// works on dlbridge results inside a `#[pyfunction]`.
impl From<Error> for PyErr {
    fn from(e: Error) -> PyErr {
        let msg = e.to_string();
        match e {
            Error::AxisOutOfRange { .. }
            | Error::ArgumentCount { .. }
            | Error::NotAPermutation { .. }
            | Error::InvalidStep(_)
            | Error::Overlapping
            | Error::InvalidBool { .. }
            | Error::UnknownDtypeName(_)
            | Error::NothingToWrite(_)
            | Error::MalformedArrow(_)
            | Error::MalformedFile { .. }
            | Error::InvalidExtensionMetadata(_)
            | Error::UnreadableExtensionMetadata(_)
            | Error::LengthMismatch { .. }
            | Error::Nulls(_)
            | Error::UnrepresentableFill { .. }
            | Error::UnsupportedTensor(_) => PyValueError::new_err(msg),
            Error::DtypeMismatch { .. } | Error::UnsupportedArrowType(_) => {
                PyTypeError::new_err(msg)
            }
            Error::Foreign(_) => PyRuntimeError::new_err(msg),
            // The OSError subclass of the kind (FileNotFoundError, PermissionError, ...).
            Error::Io { source, .. } => {
                let kind = std::error::Error::source(&source)
                    .and_then(|e| e.downcast_ref::<std::io::Error>())
                    .map_or(std::io::ErrorKind::Other, std::io::Error::kind);
                PyErr::from(std::io::Error::new(kind, msg))
            }
            _ => PyBufferError::new_err(msg),
        }
    }
}

/// `PyErr::from`, for `map_err`.
pub(crate) fn to_py_err(e: Error) -> PyErr {
    PyErr::from(e)
}
