//! `TensorView` as a `#[pyfunction]` argument and return value.

use pyo3::prelude::*;

use super::borrow::unshared;
use super::import::asarray;
use super::tensor::Tensor;
use crate::TensorView;

/// Any array-like Python object, shared without copying, as [`asarray`] does: dlbridge tensors
/// (made by this or any other extension), DLPack producers (the C exchange API first), DLPack
/// capsules, the Arrow PyCapsule interface (feature `arrow`), the buffer protocol and
/// `__array_interface__`. Read-only producers give read-only views. Raises what `asarray`
/// raises: `TypeError` for objects that are not array-like, `BufferError` for data that cannot
/// be shared as it is (device memory, non-native byte order needs `asarray(obj, Some(true))`),
/// or whose memory is mutably borrowed by a live
/// [`Requirements::extract_mut`](super::Requirements::extract_mut) guard. The view holds a
/// shared borrow of the memory while it (or a clone) lives.
impl<'a, 'py> FromPyObject<'a, 'py> for TensorView {
    type Error = PyErr;

    fn extract(obj: Borrowed<'a, 'py, PyAny>) -> PyResult<TensorView> {
        asarray(&obj, None)
    }
}

/// A new [`Tensor`] over the same memory: `np.asarray(r)`, `torch.from_dlpack(r)`,
/// `memoryview(r)` and `pa.array(r)` share it without copying.
impl<'py> IntoPyObject<'py> for TensorView {
    type Target = Tensor;
    type Output = Bound<'py, Tensor>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, Tensor>> {
        // Python code reaches the memory only through the protocols; Rust code that takes the
        // tensor back imports it again (and borrows again).
        let view = unshared(py, self);
        if view.owner().is_unique() {
            // Given up as the only handle: no reference made through it can live, so the
            // tensor's exports may be writable.
            view.owner().forget_shared_reads();
        }
        Bound::new(py, Tensor::from_view(view))
    }
}

/// As for `TensorView`, sharing the memory of a clone of the view.
impl<'py> IntoPyObject<'py> for &TensorView {
    type Target = Tensor;
    type Output = Bound<'py, Tensor>;
    type Error = PyErr;

    fn into_pyobject(self, py: Python<'py>) -> PyResult<Bound<'py, Tensor>> {
        self.clone().into_pyobject(py)
    }
}
