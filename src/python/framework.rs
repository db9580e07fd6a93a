//! `Framework`: answer in the caller's framework.

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

use super::borrow::unshared;
use super::numpy;
use super::tensor::Tensor;
use crate::{Order, TensorView};

/// The array library an object comes from, so that an extension can return its results in the
/// caller's framework: `Framework::of(&x).wrap(py, result)`.
///
/// | variant | `wrap` returns | through | copies |
/// |---|---|---|---|
/// | `Numpy` | `numpy.ndarray` | numpy's C API (`numpy.from_dlpack` for dtypes numpy lacks) | never (read-only views stay read-only) |
/// | `Torch` | `torch.Tensor` | `torch.from_dlpack` | read-only views: torch has no read-only tensors, so they are copied |
/// | `Jax` | `jax.Array` | `jax.numpy.from_dlpack` | when jax wants other alignment than the memory has (jax decides) |
/// | `Arrow` | `pyarrow.Array` (1-D) or `FixedShapeTensorArray` (N-D) | `pyarrow.array` (Arrow PyCapsules) | non-dense layouts and booleans (Arrow's own layout rules) |
/// | `Dlbridge` | `Tensor` | | never |
///
/// Each wrapped object keeps the view's memory alive; the view itself may be dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Framework {
    /// numpy (`numpy.ndarray` and its subclasses).
    Numpy,
    /// PyTorch (`torch.Tensor`).
    Torch,
    /// JAX (`jax.Array`).
    Jax,
    /// pyarrow arrays and chunked arrays.
    Arrow,
    /// Anything else: answered with a dlbridge [`Tensor`], which every framework reads.
    Dlbridge,
}

impl Framework {
    /// The framework `obj` belongs to, from the module of its type (`numpy`, `torch`, `jax` or
    /// `jaxlib`, `pyarrow`); [`Framework::Dlbridge`] for anything else.
    pub fn of(obj: &Bound<'_, PyAny>) -> Framework {
        let ty = obj.get_type();
        let module = ty.module().ok();
        let root = module
            .as_ref()
            .and_then(|m| m.to_str().ok())
            .and_then(|m| m.split('.').next())
            .unwrap_or("");
        match root {
            "numpy" => Framework::Numpy,
            "torch" => Framework::Torch,
            "jax" | "jaxlib" => Framework::Jax,
            "pyarrow" => Framework::Arrow,
            _ => Framework::Dlbridge,
        }
    }

    /// `view` as an object of this framework, over the same memory where the framework allows
    /// (see the table on [`Framework`]).
    pub fn wrap<'py>(self, py: Python<'py>, view: TensorView) -> PyResult<Bound<'py, PyAny>> {
        static NUMPY: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static TORCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static JAX: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        static ARROW: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
        let convert = |cell: &'static PyOnceLock<Py<PyAny>>, module: &str, name: &str| {
            cell.get_or_try_init(py, || {
                Ok::<_, PyErr>(py.import(module)?.getattr(name)?.unbind())
            })
            .map(|f| f.bind(py).clone())
        };
        let view = match self {
            // torch.from_dlpack ignores DLPack's READ_ONLY flag (torch 2.13; torch has no
            // read-only tensors, pytorch/pytorch#44027): never hand it read-only memory.
            Framework::Torch if view.is_read_only() => view.to_contiguous(Order::C)?,
            _ => view,
        };
        // Python code reaches the memory through the answer only; Rust code that takes it back
        // imports it again (and borrows again), as with a returned `TensorView`.
        let view = unshared(py, view);
        // numpy's C API, with a capsule holding the owner as the array's base: what
        // `numpy.from_dlpack` builds, without its protocol round trip. (A `Tensor` base would
        // report Python objects the owner holds to the garbage collector, but numpy arrays are
        // not tracked by it, so no cycle through one can be collected either way.)
        if self == Framework::Numpy {
            if let Some(layout) = numpy::ArrayLayout::of(py, &view) {
                return numpy::ndarray_owning(py, layout, view);
            }
        }
        // Device memory goes to the framework's own `from_dlpack`, which takes it or raises
        // its own error (numpy, or a torch built without that device).
        let mut tensor = Bound::new(py, Tensor::from_view(view))?;
        if self == Framework::Torch && !tensor.get().writable_for_life() {
            // Rust code may hold references to the memory, and torch would write it anyway
            // (it ignores READ_ONLY): torch gets a copy.
            let copy = tensor.get().view.to_contiguous(Order::C)?;
            tensor = Bound::new(py, Tensor::from_view(copy))?;
        }
        let tensor = tensor.into_any();
        let function = match self {
            Framework::Numpy => convert(&NUMPY, "numpy", "from_dlpack")?,
            Framework::Torch => convert(&TORCH, "torch", "from_dlpack")?,
            Framework::Jax => convert(&JAX, "jax.numpy", "from_dlpack")?,
            Framework::Arrow => convert(&ARROW, "pyarrow", "array")?,
            Framework::Dlbridge => return Ok(tensor),
        };
        function.call1((tensor,))
    }
}
