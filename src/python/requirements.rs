//! `Requirements`: what a `#[pyfunction]` needs of a tensor argument, checked with a message
//! that says what was expected and what was found, or met by a copy when the caller allows one.

use std::fmt::Write;

use pyo3::exceptions::{PyBufferError, PyTypeError, PyValueError};
use pyo3::prelude::*;

use super::errors::to_py_err;
use super::import::asarray;
use crate::{DType, Device, Order, TensorView};

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
/// `BufferError` for a writable buffer request), and whatever [`asarray`] raises for objects
/// that are no tensors.
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
    pub fn extract(&self, obj: &Bound<'_, PyAny>) -> PyResult<TensorView> {
        // Without `allow_copy`, `copy=False` makes producers refuse rather than copy (numpy for
        // byte-swapped data, say), and dlbridge itself never copies.
        let copy = if self.allow_copy { None } else { Some(false) };
        let view = asarray(obj, copy)?;
        self.meet(view)
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
