//! # dlbridge
//!
//! Zero-copy tensor exchange between DLPack, ndarray, Arrow, PyTorch (`tch`) and Python, through
//! one strided descriptor: [`TensorView`].
//!
//! A `TensorView` is what DLPack's `DLTensor` says (pointer, byte offset, shape, strides in
//! elements, [`DType`], [`Device`]) plus [`Flags`] (read-only, is-copied) and an [`Owner`] that
//! keeps the memory alive. Every ecosystem module converts to and from it, so any pair of
//! ecosystems meets in the middle without copying:
//!
//! | module | feature | converts |
//! |---|---|---|
//! | [`dlpack`] | always | owned versioned and legacy managed tensors |
//! | [`interop::ndarray`] | `ndarray` | `ArrayView`/`ArrayViewMut`/`Array`/`ArcArray` |
//! | [`interop::arrow`] | `arrow` | `Buffer`, primitive and fixed-size-list arrays, `arrow.fixed_shape_tensor` |
//! | [`interop::torch`] | `tch` | `tch::Tensor`, through ATen's DLPack converters |
//! | `python` | `python` | the `dlbridge` Python module |
//!
//! Ownership rules, upheld everywhere: memory stays valid while any view, export or consumer can
//! reach it; each producer's deleter runs exactly once; read-only memory never yields a writable
//! view; data is copied only by [`TensorView::to_contiguous`] and friends, and the result says so
//! ([`TensorView::is_copied`]).
//!
//! ```
//! use dlbridge::{SliceArg, TensorView};
//! let t = TensorView::from_vec((0..12).map(|x| x as f32).collect(), &[3, 4])?;
//! let odd_cols = t.slice(1, SliceArg { start: Some(1), stop: None, step: 2 })?;
//! let managed = odd_cols.to_dlpack_versioned();          // hand to any DLPack consumer
//! let back = TensorView::from_dlpack_versioned(managed)?; // ...and take it back
//! assert_eq!(back.data_ptr(), odd_cols.data_ptr());
//! assert_eq!(back.to_vec::<f32>()?, vec![1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
//! # Ok::<(), dlbridge::Error>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]

mod copy;
mod device;
pub mod dlpack;
mod dtype;
mod error;
pub mod format;
pub mod interop;
mod owner;
#[cfg(feature = "python")]
mod python;
mod tensor;
pub mod view;

pub use copy::{CopyPolicy, Order};
pub use device::{Device, DeviceType};
pub use dlpack::{ManagedTensorLegacy, ManagedTensorVersioned};
pub use dtype::{DType, DTypeCode, Element};
pub use error::{Error, Result};
pub use owner::Owner;
pub use tensor::{Flags, Parts, TensorView, MAX_NDIM};
pub use view::SliceArg;

/// Re-export of the DLPack C ABI structs (from `dlpark`).
pub use dlpark::ffi;

/// The README's code blocks are compiled and run as doctests, so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
