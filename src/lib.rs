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
//! | DLPack ([`ManagedTensorVersioned`], [`ManagedTensorLegacy`]) | always | owned versioned and legacy managed tensors, both directions |
//! | [`interop::ndarray`] | `ndarray` | `ArrayView`/`ArrayViewMut`/`Array`/`ArcArray` |
//! | [`interop::arrow`] | `arrow` | `Buffer`, primitive and fixed-size-list arrays, `arrow.fixed_shape_tensor` |
//! | [`interop::tch`] | `tch` | `tch::Tensor`, through ATen's DLPack converters |
//! | [`interop::safetensors`], [`files`] | `safetensors` | safetensors files, memory-mapped |
//! | [`python`] | `pyo3` | pyo3 conversions: `TensorView` in and out of your own `#[pyfunction]`, and the `Tensor` class |
//!
//! Ownership rules, upheld everywhere: memory stays valid while any view, export or consumer can
//! reach it; each producer's deleter runs exactly once; read-only memory never yields a writable
//! view; data is copied only by [`TensorView::to_contiguous`] and friends, and the result says so
//! ([`TensorView::is_copied`]).
//!
//! # Aliasing: when safe code gets references to the elements
//! Every path that hands out Rust references follows one rule set, so safe code cannot reach
//! undefined behaviour through this crate. Its core: **a shared reference to the elements and a
//! writable foreign alias made by this crate never coexist**, whichever comes first and on
//! whichever thread.
//! - **Shared** (`&[T]`: [`TensorView::as_slice`], `as_array`, Arrow buffers,
//!   [`Owner::downcast_ref`]): refused with [`Error::ForeignWriter`] while a writable foreign
//!   alias lives (a DLPack export without `READ_ONLY`, a torch tensor from `to_tch`, on the
//!   Python side a writable buffer or array), since foreign code may write under it. Granting
//!   one marks the memory's owner as read by Rust: the lifetime of a reference cannot be
//!   tracked, only that one may exist.
//! - **Writable exports** made while that mark is set go out read-only (DLPack), or are refused
//!   with [`Error::SharedReaders`] where no read-only form exists (legacy DLPack, `to_tch`;
//!   `CopyPolicy::IfNeeded` copies instead). The mark clears when the owner can prove no
//!   reference lives: a view given up as its only handle ([`TensorView::into_dlpack_versioned`],
//!   `into_tch`), or the owner's end. Arrow buffers carry their mark on an owner of their own,
//!   so it ends with them. The two checks are ordered like Dekker's algorithm (each side
//!   records itself, then looks at the other, sequentially consistent), so no race slips
//!   between them.
//! - **Memory torch can write** ([`TensorView::from_tch`]: any tensor sharing the storage can
//!   write it through tch's safe API) counts a writable alias for its whole life: it is read
//!   by copying, never by reference.
//! - **Exclusive** (`&mut [T]`: [`TensorView::as_mut_slice`], `as_array_mut`): the view must be
//!   writable, over memory no foreign code can reach (Rust-allocated or moved in, see
//!   [`TensorView::assume_exclusive`]), and hold the only handle on its owner
//!   ([`Owner::is_unique`], which synchronises with other threads' drops like `Arc::get_mut`);
//!   so no export lives either. Memory typed with invalid bit patterns (`bool`) reinterpreted
//!   as another type is never exclusive.
//! - **What stays convention**: memory imported from a foreign producer may still be written
//!   by that producer (the DLPack contract leaves that synchronisation to the two sides), and
//!   Python code may write the memory of an array it holds (see the `python` module).
//! - **New layouts** ([`TensorView::as_strided`]) stay inside the allocation the owner is known
//!   to hold ([`TensorView::extent`]); a lent or imported view with gaps between its elements
//!   knows only its elements, and refuses `as_strided`.
//!
//! # Device memory
//! A `TensorView` may live on any DLPack device (CUDA, ROCm, oneAPI, Metal, ...). This crate
//! runs no kernels and never reads such memory: operations on metadata (views, `slice`,
//! `transpose`, [`TensorView::as_strided`], `reinterpret`, DLPack export and import, `tch`)
//! keep the device and the address, and every operation on the data (typed access, copies,
//! casts, ndarray, Arrow) fails with [`Error::UnsupportedDevice`]. Host-accessible kinds
//! ([`Device::is_host_accessible`]: `kDLCPU`, `kDLCUDAHost`, `kDLROCMHost`,
//! `kDLCUDAManaged`) are read like CPU memory. Stream synchronisation is the producer's and the
//! consumer's business: see the `python` module for the `__dlpack__(stream=...)` rules.
//!
//! ```
//! use dlbridge::{DType, Device, DeviceType, Error, Owner, Parts, TensorView};
//! let gpu = Device { kind: DeviceType::CUDA, id: 0 };
//! let address = 0x100 as *mut u8; // never mapped: reading it would crash this example
//! let parts = Parts::contiguous(address, vec![2, 3], DType::F32).with_device(gpu);
//! // SAFETY: a real caller passes a live device allocation and an owner that keeps it alive.
//! let t = unsafe { TensorView::from_parts(parts, Owner::new(())) }?;
//! let row = t.slice(0, 1..)?;                             // metadata: fine on any device
//! let back = TensorView::from_dlpack_versioned(row.to_dlpack_versioned())?;
//! assert_eq!((back.device(), back.data_ptr()), (gpu, row.data_ptr()));
//! assert!(matches!(back.to_vec::<f32>(), Err(Error::UnsupportedDevice { .. })));
//! # Ok::<(), dlbridge::Error>(())
//! ```
//!
//! ```
//! use dlbridge::{SliceArg, TensorView};
//! let t = TensorView::from_vec((0..12).map(|x| x as f32).collect(), &[3, 4])?;
//! let odd_cols = t.slice(1, SliceArg::from(1..).with_step(2))?;
//! let managed = odd_cols.to_dlpack_versioned();          // hand to any DLPack consumer
//! let back = TensorView::from_dlpack_versioned(managed)?; // ...and take it back
//! assert_eq!(back.data_ptr(), odd_cols.data_ptr());
//! assert_eq!(back.to_vec::<f32>()?, vec![1.0, 3.0, 5.0, 7.0, 9.0, 11.0]);
//! # Ok::<(), dlbridge::Error>(())
//! ```
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cast;
mod copy;
mod device;
mod dims;
mod dlpack;
mod dtype;
mod error;
#[cfg(any(feature = "safetensors", feature = "arrow-ipc"))]
#[cfg_attr(docsrs, doc(cfg(any(feature = "safetensors", feature = "arrow-ipc"))))]
pub mod files;
pub mod format;
pub mod interop;
mod layout;
mod owner;
#[cfg(feature = "pyo3")]
#[cfg_attr(docsrs, doc(cfg(feature = "pyo3")))]
pub mod python;
mod tensor;
mod view;

pub use copy::{CopyPolicy, Order};
pub use device::{Device, DeviceType};
pub use dlpack::{ManagedTensorLegacy, ManagedTensorVersioned, DLPACK_VERSION};
pub use dtype::{DType, DTypeCode, Element};
pub use error::{Error, ForeignError, Result};
pub use owner::Owner;
pub use tensor::{Flags, Parts, TensorView, MAX_NDIM};
pub use view::SliceArg;

/// Re-export of the DLPack C ABI structs (from `dlpark`), which the raw-pointer entry points
/// ([`ManagedTensorVersioned::from_raw`] and friends) take.
///
/// Semver: the structs are DLPack's C ABI, fixed by the DLPack specification, but their Rust
/// spelling is dlpark's. dlbridge pins dlpark's minor version (0.10), and moving to a dlpark
/// release that changes these types is a breaking dlbridge release, said so in the changelog.
pub use dlpark::ffi;

/// The README's code blocks are compiled and run as doctests, so they cannot rot (with the
/// `pyo3` feature, which its extension example needs; the test command enables every feature).
#[cfg(all(doctest, feature = "pyo3"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
