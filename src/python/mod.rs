//! Python interop through pyo3 (feature `pyo3`): [`TensorView`](crate::TensorView) as the
//! argument and return type of your own `#[pyfunction]`, and [`Tensor`], the Python class that
//! carries a view.
//!
//! - **In:** `TensorView: FromPyObject` accepts any array-like without copying, as
//!   [`asarray`] does: numpy arrays, torch tensors, jax arrays, pyarrow arrays, dlbridge tensors
//!   made by any extension, DLPack capsules, buffer-protocol objects and `__array_interface__`
//!   exporters. [`from_dlpack`] and [`from_arrow`] take one protocol only.
//! - **Out:** `TensorView: IntoPyObject` (and `&TensorView`) gives a [`Tensor`], a full producer:
//!   `__dlpack__` (versioned and legacy capsules), `__dlpack_device__`, the
//!   `__dlpack_c_exchange_api__` capsule on the type, the buffer protocol,
//!   `__array_interface__` and, with the `arrow` feature, the Arrow PyCapsule interface
//!   (`__arrow_c_schema__`, `__arrow_c_array__`). So `np.asarray(r)`, `torch.from_dlpack(r)`,
//!   `memoryview(r)` and `pa.array(r)` all share the memory.
//! - **Errors:** `From<dlbridge::Error> for PyErr`, so `?` works: `BufferError` when data
//!   cannot be described or shared as asked (dtype, layout, device, read-only, a copy
//!   forbidden by `copy=False`), `ValueError` for invalid arguments, `TypeError` for objects
//!   that implement no protocol and for type mismatches.
//! - **Device memory** (CUDA, ROCm, oneAPI, Metal, ...) passes through untouched: imports keep
//!   the device and address, `__dlpack_device__` reports it, and the paths that would read the
//!   data (the buffer protocol, `__array_interface__`, the Arrow capsules, copies) raise
//!   `BufferError`. A `Tensor` imported from a Python producer of device memory answers
//!   `__dlpack__(stream=..., dl_device=..., copy=...)` by asking that producer again, so the
//!   producer synchronises with the consumer's stream. A device view made in Rust (or
//!   returned by your `#[pyfunction]`) is taken as ready: whoever made it has finished writing
//!   it, so `stream` is only checked against the array API's rules. The type-level exchange
//!   API reports no current stream (NULL) for any device: dlbridge has none.
//! - **Writing in place:** [`Requirements::extract_mut`] gives a [`TensorMut`] guard with
//!   `as_mut_slice` (and `as_array_mut` with `ndarray`) over the caller's memory. Every import
//!   that hands Rust a view registers the bytes it reaches in a process-wide borrow registry
//!   shared by all extensions built with dlbridge, so a mutable borrow never coexists with
//!   another view of overlapping memory; see `extract_mut` for what stays convention.
//! - **Checked arguments:** [`Requirements`] states the dtype, dimensions, shape, layout and
//!   writability a function needs, raising a message that says what was expected and found,
//!   or meeting them by a copy (and the cast kernel) when allowed.
//! - **Answering in kind:** [`Framework::of`] tells which library an argument comes from and
//!   [`Framework::wrap`] returns a result as a numpy array, torch tensor, jax array or pyarrow
//!   array over the same memory.
//!
//! Memory stays alive as long as any holder needs it: a view imported from Python keeps the
//! producer alive (releasing it, and its borrow, takes the GIL from whatever thread drops the
//! view, and does nothing once the interpreter is shutting down), and a returned `Tensor` keeps
//! the view's owner alive. A `TensorView` is `Send + Sync` and may be used inside
//! `py.detach(...)`. Because dropping an imported view may take the GIL, a thread that holds it
//! must not wait (`join`, a channel) for another thread that drops one: wait inside
//! `py.detach(...)`, as with any Python object released off the GIL.
//!
//! ```no_run
//! use dlbridge::TensorView;
//! use pyo3::prelude::*;
//!
//! /// The sum of any float32 tensor (numpy, torch, jax, pyarrow, ...), without copying it.
//! #[pyfunction]
//! fn total(py: Python<'_>, x: TensorView) -> PyResult<f64> {
//!     let values = x.to_contiguous(dlbridge::Order::C)?; // shares when already C-contiguous
//!     Ok(py.detach(|| values.as_slice::<f32>().map(|v| v.iter().map(|&a| f64::from(a)).sum()))?)
//! }
//!
//! /// A Rust-allocated tensor, returned without copying (numpy, torch, ... read it in place).
//! #[pyfunction]
//! fn ramp(n: usize) -> PyResult<TensorView> {
//!     Ok(TensorView::from_vec((0..n).map(|i| i as f32).collect(), &[n])?)
//! }
//!
//! #[pymodule]
//! fn my_extension(m: &Bound<'_, PyModule>) -> PyResult<()> {
//!     m.add_function(wrap_pyfunction!(total, m)?)?;
//!     m.add_function(wrap_pyfunction!(ramp, m)?)?;
//!     Ok(())
//! }
//! ```
//!
//! The `dlbridge` Python module (the `python/` crate of the repository) is built on exactly
//! this API.

// Layers, each using only those above it: errors, runtime, device, capsule → buffer,
// array_interface, arrow, exchange (import side), numpy, pickle → tensor → framework,
// import → convert, requirements, files.
mod array_interface;
#[cfg(feature = "arrow")]
mod arrow;
mod borrow;
mod buffer;
mod capsule;
mod convert;
mod device;
mod errors;
mod exchange;
#[cfg(all(feature = "safetensors", feature = "arrow-ipc"))]
mod files;
mod framework;
mod import;
mod numpy;
mod pickle;
mod requirements;
mod runtime;
mod spin;
mod tensor;

pub use device::dl_device_type;
#[cfg(all(feature = "safetensors", feature = "arrow-ipc"))]
pub use files::{load, save};
pub use framework::Framework;
pub use import::{asarray, asarray_tensor, from_dlpack, from_dlpack_tensor};
#[cfg(feature = "arrow")]
pub use import::{from_arrow, from_arrow_chunks, from_arrow_chunks_tensors, from_arrow_tensor};
pub use requirements::{Requirements, TensorMut};
pub use tensor::{rebuild_tensor, Tensor};
