//! `Requirements`: what a `#[pyfunction]` needs of a tensor argument, checked with a message
//! that says what was expected and what was found, or met by a copy when the caller allows one.

use std::fmt::Write;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::borrow::{self, Borrow};
use super::errors::to_py_err;
use super::import::import_any;
use crate::{DType, Device, Element, Order, Owner, TensorView};

/// What a tensor argument must be: dtype, number of dimensions, shape (with wildcards),
/// contiguity, writability, device. Built once (it is `Clone`), then applied to any array-like
/// with [`Requirements::extract`].
///
/// Without [`allow_copy`](Requirements::allow_copy), nothing is ever copied: an argument that
/// does not match raises, and the view shares the caller's memory. With it, a wrong dtype is
/// converted by the cast kernel (between bool, int8 to int64, uint8 to uint64, float16,
/// bfloat16, float32 and float64), and a wrong layout or byte order, or read-only memory where
/// `writable` is required, is met by a C-order copy; the view then says
/// [`is_copied`](TensorView::is_copied). The number of dimensions and the shape are never
/// changed by a copy.
///
/// Errors: `TypeError` for a wrong dtype, number of dimensions or layout, `ValueError` for a
/// wrong shape, `BufferError` for read-only memory where `writable` is required (as numpy's
/// `BufferError` for a writable buffer request), and whatever [`asarray`](super::asarray)
/// raises for objects that are no tensors.
///
/// ```no_run
/// use dlbridge::python::Requirements;
/// use dlbridge::DType;
/// use pyo3::prelude::*;
///
/// /// Points as an (n, 3) float32 array, from any framework; a copy only if they are not.
/// #[pyfunction]
/// fn centroid(points: &Bound<'_, PyAny>) -> PyResult<[f32; 3]> {
///     let points = Requirements::new()
///         .dtype(DType::F32)
///         .shape(&[None, Some(3)])
///         .c_contiguous()
///         .allow_copy()
///         .extract(points)?;
///     let xyz = points.as_slice::<f32>()?;
///     let n = points.shape()[0].max(1) as f32;
///     let mut sum = [0f32; 3];
///     for p in xyz.chunks_exact(3) {
///         (0..3).for_each(|k| sum[k] += p[k]);
///     }
///     Ok(sum.map(|s| s / n))
/// }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Requirements {
    dtype: Option<DType>,
    ndim: Option<usize>,
    shape: Option<Vec<Option<usize>>>,
    c_contiguous: bool,
    f_contiguous: bool,
    writable: bool,
    cpu: bool,
    allow_copy: bool,
}

impl Requirements {
    /// No requirement at all: any array-like, shared as it is.
    pub fn new() -> Requirements {
        Requirements::default()
    }

    /// Elements of exactly this dtype.
    pub fn dtype(mut self, dtype: DType) -> Requirements {
        self.dtype = Some(dtype);
        self
    }

    /// Exactly `ndim` dimensions.
    pub fn ndim(mut self, ndim: usize) -> Requirements {
        self.ndim = Some(ndim);
        self
    }

    /// This shape, `None` standing for any extent (`&[None, Some(3)]`: any number of rows of
    /// 3). Implies the number of dimensions.
    pub fn shape(mut self, shape: &[Option<usize>]) -> Requirements {
        self.shape = Some(shape.to_vec());
        self
    }

    /// C-contiguous (row-major, no gaps) elements, so that
    /// [`as_slice`](TensorView::as_slice) works.
    pub fn c_contiguous(mut self) -> Requirements {
        self.c_contiguous = true;
        self
    }

    /// F-contiguous (column-major, no gaps) elements.
    pub fn f_contiguous(mut self) -> Requirements {
        self.f_contiguous = true;
        self
    }

    /// Memory the producer lets its consumers write (not read-only). For writing through the
    /// view from Rust, see the crate docs on aliasing: a shared import stays shared.
    pub fn writable(mut self) -> Requirements {
        self.writable = true;
        self
    }

    /// Memory on the CPU (`TypeError` otherwise).
    pub fn cpu(mut self) -> Requirements {
        self.cpu = true;
        self
    }

    /// Meet the dtype, layout and writability requirements by copying when the argument does
    /// not (the result then says `is_copied`).
    pub fn allow_copy(mut self) -> Requirements {
        self.allow_copy = true;
        self
    }

    /// `obj` as a view meeting every requirement: shared when it does, copied when it does
    /// not and copies are allowed, else an exception naming what was expected and found.
    ///
    /// The view holds a shared borrow of the caller's memory while it (or a clone) lives: an
    /// [`extract_mut`](Requirements::extract_mut) of overlapping memory raises `BufferError`
    /// meanwhile, and this raises while such a guard lives.
    pub fn extract(&self, obj: &Bound<'_, PyAny>) -> PyResult<TensorView> {
        // Without `allow_copy`, `copy=False` makes producers refuse rather than copy (numpy for
        // byte-swapped data, say), and dlbridge itself never copies.
        let copy = if self.allow_copy { None } else { Some(false) };
        let view = import_any(obj, copy)?;
        borrow::shared(obj.py(), self.meet(view)?)
    }

    /// `obj`'s memory to write in place, from safe Rust: a guard that holds an exclusive
    /// borrow of it until dropped (on error paths too). The requirements apply as in
    /// [`extract`](Requirements::extract), plus [`writable`](Requirements::writable); nothing
    /// is ever copied (writing a copy would not reach the caller), so `allow_copy` is ignored.
    ///
    /// Raises `BufferError` for read-only memory and while any other dlbridge view of
    /// overlapping memory lives, in this extension or any other built with dlbridge
    /// ("already borrowed"); disjoint parts of one array (rows, blocks) may be borrowed
    /// together.
    ///
    /// What is checked: every dlbridge import in the process (`extract`, `extract_mut`,
    /// `TensorView` arguments, [`asarray`](super::asarray) and friends) registers the bytes it
    /// reaches, so safe Rust never holds `&mut [T]` beside another `&[T]` or `&mut [T]` of the
    /// same memory. The owner of the object passed in also records the Rust handles that took
    /// references to it (a tensor Rust code returned to Python while keeping a clone) and the
    /// writable exports dlbridge made of it (to torch, numpy, capsules, buffers): the guard
    /// refuses while either lives, and exports of that object made while the guard lives go
    /// out read-only. (Other objects over the same memory, a numpy array and a `Tensor` made
    /// from it, say, have owners of their own: their exports are Python's to synchronise.) What remains convention, as with numpy's own C API: Python code and native
    /// code that does not use dlbridge (numpy in another thread, say) can still read or write
    /// the memory while the guard lives; do not share an array with other threads while a
    /// kernel writes it.
    pub fn extract_mut(&self, obj: &Bound<'_, PyAny>) -> PyResult<TensorMut> {
        let strict = Requirements {
            writable: true,
            allow_copy: false,
            ..self.clone()
        };
        let mut view = strict.meet(import_any(obj, Some(false))?)?;
        let borrow = borrow::borrow(obj.py(), &view, true)?;
        // The registry excludes the other dlbridge imports; the owner's marks exclude the rest
        // of safe Rust: handles of a tensor Rust code returned to Python and kept, and the
        // writable exports this crate made (torch tensors, DLPack capsules, buffers).
        view.wrap_owner(|owner| Owner::with_dependency((), owner));
        if !view.owner.try_begin_exclusive_use() {
            return Err(PyBufferError::new_err(
                "the tensor's memory is shared: Rust code may hold references to it (another \
                 handle of a tensor returned to Python), or a writable export of it lives \
                 (a torch tensor, numpy array or capsule made from it); drop them first",
            ));
        }
        Ok(TensorMut {
            view,
            _borrow: borrow,
        })
    }

    /// Check (and with `allow_copy`, convert) an imported view.
    fn meet(&self, mut view: TensorView) -> PyResult<TensorView> {
        if self.cpu && view.device() != Device::CPU {
            return Err(PyTypeError::new_err(format!(
                "expected a CPU tensor, got one on {}",
                view.device()
            )));
        }
        if let Some(ndim) = self.expected_ndim() {
            if view.ndim() != ndim {
                return Err(PyTypeError::new_err(format!(
                    "expected {ndim} dimension{}, got {}",
                    if ndim == 1 { "" } else { "s" },
                    view.ndim()
                )));
            }
        }
        if let Some(shape) = &self.shape {
            let fits = shape
                .iter()
                .zip(view.shape())
                .all(|(want, &got)| want.is_none_or(|n| n == got));
            if !fits {
                return Err(PyValueError::new_err(format!(
                    "expected shape {}, got {}",
                    pattern(shape),
                    py_shape(view.shape())
                )));
            }
        }
        if let Some(dtype) = self.dtype {
            if view.dtype() != dtype {
                if !self.allow_copy || !crate::cast::castable(view.dtype(), dtype) {
                    return Err(PyTypeError::new_err(format!(
                        "expected {}, got {}",
                        dtype.name(),
                        view.dtype().name()
                    )));
                }
                // A fresh C-contiguous, writable copy: it meets the layout requirements too.
                view = view.cast(dtype).map_err(to_py_err)?;
            }
        }
        let layout_ok = (!self.c_contiguous || view.is_c_contiguous())
            && (!self.f_contiguous || view.is_f_contiguous());
        if !layout_ok {
            if !self.allow_copy {
                let which = if self.c_contiguous && !view.is_c_contiguous() {
                    "C"
                } else {
                    "F"
                };
                return Err(PyTypeError::new_err(format!(
                    "expected a {which}-contiguous tensor, got strides {}",
                    py_shape(view.strides())
                )));
            }
            let order = if self.c_contiguous {
                Order::C
            } else {
                Order::F
            };
            view = view.to_contiguous(order).map_err(to_py_err)?;
        }
        if self.writable && view.is_read_only() {
            if !self.allow_copy {
                return Err(PyBufferError::new_err(
                    "expected a writable tensor, got a read-only one",
                ));
            }
            let order = if self.f_contiguous && !self.c_contiguous {
                Order::F
            } else {
                Order::C
            };
            view = view.to_contiguous(order).map_err(to_py_err)?;
        }
        Ok(view)
    }

    fn expected_ndim(&self) -> Option<usize> {
        self.shape.as_ref().map(Vec::len).or(self.ndim)
    }
}

/// A shape pattern as Python prints shapes, `*` for any extent: `(*, 3)`.
fn pattern(shape: &[Option<usize>]) -> String {
    let items: Vec<String> = shape
        .iter()
        .map(|n| n.map_or_else(|| "*".to_string(), |n| n.to_string()))
        .collect();
    tuple(&items)
}

/// A shape as Python prints it: `(4, 5)`, `(3,)`, `()`.
fn py_shape<T: ToString>(shape: &[T]) -> String {
    let items: Vec<String> = shape.iter().map(ToString::to_string).collect();
    tuple(&items)
}

fn tuple(items: &[String]) -> String {
    let mut out = String::from("(");
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{item}");
    }
    if items.len() == 1 {
        out.push(',');
    }
    out.push(')');
    out
}

/// Exclusive, writable access to a caller's tensor, from
/// [`Requirements::extract_mut`]: the borrow ends when the guard is dropped. `Send`, so the
/// writing may happen inside `py.detach(...)`.
///
/// ```no_run
/// use dlbridge::python::Requirements;
/// use pyo3::prelude::*;
///
/// /// Scale a float32 numpy array or torch tensor in place.
/// #[pyfunction]
/// fn scale(py: Python<'_>, x: &Bound<'_, PyAny>, factor: f32) -> PyResult<()> {
///     let mut x = Requirements::new().c_contiguous().extract_mut(x)?;
///     py.detach(|| -> dlbridge::Result<()> {
///         x.as_mut_slice::<f32>()?.iter_mut().for_each(|v| *v *= factor);
///         Ok(())
///     })?;
///     Ok(())
/// }
/// ```
///
/// The guard lends its layout (`shape`, `strides`, `dtype`) but never its view: a clone of the
/// view would hold no borrow, so its `as_slice` could alias `as_mut_slice`.
///
/// ```compile_fail
/// fn escape(guard: &dlbridge::python::TensorMut) -> dlbridge::TensorView {
///     guard.view().clone()
/// }
/// ```
pub struct TensorMut {
    view: TensorView,
    _borrow: Borrow,
}

impl Drop for TensorMut {
    fn drop(&mut self) {
        // The claim of `extract_mut` ends before its owner (and then the registry borrow) goes.
        self.view.owner.end_writable_export();
    }
}

impl TensorMut {
    // No `view()`: a clone of the view would carry no borrow, and its `as_slice` could then
    // alias `as_mut_slice`. The guard lends its layout instead.

    /// The extent of each dimension.
    pub fn shape(&self) -> &[usize] {
        self.view.shape()
    }

    /// The step of each dimension, in elements.
    pub fn strides(&self) -> &[isize] {
        self.view.strides()
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        self.view.dtype()
    }

    /// The elements as a mutable slice: C-contiguous host memory of element type `T`
    /// ([`Error::DtypeMismatch`](crate::Error::DtypeMismatch),
    /// [`Error::NotContiguous`](crate::Error::NotContiguous),
    /// [`Error::Misaligned`](crate::Error::Misaligned) otherwise).
    pub fn as_mut_slice<T: Element>(&mut self) -> crate::Result<&mut [T]> {
        let n = self.checked_len::<T>()?;
        if n == 0 {
            return Ok(&mut []);
        }
        // SAFETY: the view is writable host memory the producer keeps alive while the view
        // (owned by this guard) lives; dtype, alignment and C-contiguity were checked, so `n`
        // elements of `T` start at the first element; the exclusive borrow registered for the
        // bytes the view reaches excludes every other dlbridge view of them (shared or
        // mutable) while the guard lives, the claim on the owner excludes every other safe
        // Rust reference and every writable export this crate makes (`extract_mut`), and
        // `&mut self` excludes a second slice from this guard. Writers outside dlbridge are
        // the documented convention of `extract_mut`.
        Ok(unsafe {
            std::slice::from_raw_parts_mut(self.view.data_ptr().cast_mut().cast::<T>(), n)
        })
    }

    /// The elements as a mutable ndarray view (any strides whose elements do not overlap).
    #[cfg(feature = "ndarray")]
    #[cfg_attr(docsrs, doc(cfg(feature = "ndarray")))]
    pub fn as_array_mut<T: Element, D: ndarray::Dimension>(
        &mut self,
    ) -> crate::Result<ndarray::ArrayViewMut<'_, T, D>> {
        // SAFETY: as in `as_mut_slice`: the exclusive borrow and `&mut self` make this the only
        // view of the memory in dlbridge while it lives; the function checks the elements.
        unsafe { self.view.array_view_mut_unchecked::<T, D>() }
    }

    fn checked_len<T: Element>(&self) -> crate::Result<usize> {
        self.view.check_mut_slice::<T>()
    }
}
