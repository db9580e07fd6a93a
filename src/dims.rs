//! The storage of a view's shape and strides: inline for the common ranks, one heap block above.
//!
//! A [`crate::TensorView`] is moved on every conversion (out of an export, through `Result`s and
//! `Option`s, into a Python object), so its size matters: at 128 bytes or less the compiler
//! moves it with a few vector stores instead of calling `memcpy`. Two `SmallVec`s of six took
//! 112 bytes; [`DimStore`] takes 64 and keeps no length of its own. The view stores the
//! dimension count once, in a byte beside its flags, and passes it to every accessor: that
//! count says which field of the union is live, which is why the accessors are `unsafe`.

use std::convert::Infallible;
use std::mem::ManuallyDrop;

/// Dimensions kept inline, with no allocation: enough for images in NCHW and most tensors.
/// Views of five or more dimensions allocate one block for their shape and strides.
pub(crate) const INLINE_NDIM: usize = 4;

#[derive(Clone, Copy)]
#[repr(C)]
struct Inline {
    shape: [usize; INLINE_NDIM],
    strides: [isize; INLINE_NDIM],
}

/// Shape and strides of `ndim` dimensions, the count kept by the owner of this value.
///
/// Invariant (the contract of every `unsafe` method, stated there as "`ndim` is this store's
/// count"): a store made by [`DimStore::new`] for `ndim` dimensions has `inline` live when
/// `ndim <= INLINE_NDIM`, and otherwise `heap`, a block of `2 * ndim` words: the shape, then the
/// strides' bits. The store must be released with [`DimStore::free`] (it has no `Drop`).
pub(crate) union DimStore {
    inline: Inline,
    heap: ManuallyDrop<Box<[usize]>>,
}

impl DimStore {
    /// A store holding `shape` and `strides`, which must have the same length (the caller
    /// checks; a mismatch panics).
    pub(crate) fn new(shape: &[usize], strides: &[isize]) -> DimStore {
        let ndim = shape.len();
        assert_eq!(strides.len(), ndim, "shape and strides differ in length");
        if ndim <= INLINE_NDIM {
            let mut inline = Inline {
                shape: [0; INLINE_NDIM],
                strides: [0; INLINE_NDIM],
            };
            inline.shape[..ndim].copy_from_slice(shape);
            inline.strides[..ndim].copy_from_slice(strides);
            DimStore { inline }
        } else {
            let block: Box<[usize]> = shape
                .iter()
                .copied()
                .chain(strides.iter().map(|&s| s as usize))
                .collect();
            DimStore {
                heap: ManuallyDrop::new(block),
            }
        }
    }

    /// The shape.
    ///
    /// # Safety
    /// `ndim` is this store's count.
    #[inline]
    pub(crate) unsafe fn shape(&self, ndim: usize) -> &[usize] {
        if ndim <= INLINE_NDIM {
            // SAFETY: per the contract, `inline` is live; `ndim` is within its arrays.
            unsafe { self.inline.shape.get_unchecked(..ndim) }
        } else {
            // SAFETY: per the contract, `heap` is live and holds `2 * ndim` words, the first
            // `ndim` of them the shape.
            unsafe { self.heap.get_unchecked(..ndim) }
        }
    }

    /// The strides, in elements.
    ///
    /// # Safety
    /// `ndim` is this store's count.
    #[inline]
    pub(crate) unsafe fn strides(&self, ndim: usize) -> &[isize] {
        if ndim <= INLINE_NDIM {
            // SAFETY: per the contract, `inline` is live; `ndim` is within its arrays.
            unsafe { self.inline.strides.get_unchecked(..ndim) }
        } else {
            // SAFETY: per the contract, `heap` is live with `2 * ndim` words; its second half
            // holds the strides' bits, and `isize` has the size, alignment and (all) bit
            // patterns of `usize`, so that half reads as `ndim` strides.
            unsafe {
                let words = self.heap.as_ptr().add(ndim);
                std::slice::from_raw_parts(words.cast::<isize>(), ndim)
            }
        }
    }

    /// Pointers to the shape and the strides, for a DLPack export of the view that holds this
    /// store: they stay valid while the store neither moves nor is freed. Consumers only read
    /// through them (DLPack's rule), so they are derived from `&mut self` to carry write
    /// permission without anything ever writing.
    ///
    /// # Safety
    /// `ndim` is this store's count.
    #[cfg(target_pointer_width = "64")]
    pub(crate) unsafe fn as_mut_ptrs(&mut self, ndim: usize) -> (*mut usize, *mut isize) {
        if ndim <= INLINE_NDIM {
            // SAFETY: per the contract, `inline` is live.
            let inline = unsafe { &mut self.inline };
            (inline.shape.as_mut_ptr(), inline.strides.as_mut_ptr())
        } else {
            // SAFETY: per the contract, `heap` is live with `2 * ndim` words.
            let words = unsafe { self.heap.as_mut_ptr() };
            // SAFETY: `ndim` words into a block of `2 * ndim`.
            (words, unsafe { words.add(ndim) }.cast::<isize>())
        }
    }

    /// The shape, and the strides to change.
    ///
    /// # Safety
    /// `ndim` is this store's count.
    pub(crate) unsafe fn shape_and_strides_mut(&mut self, ndim: usize) -> (&[usize], &mut [isize]) {
        if ndim <= INLINE_NDIM {
            // SAFETY: per the contract, `inline` is live; `ndim` is within its arrays.
            let inline = unsafe { &mut self.inline };
            (&inline.shape[..ndim], &mut inline.strides[..ndim])
        } else {
            // SAFETY: per the contract, `heap` is live with `2 * ndim` words.
            let words: &mut [usize] = unsafe { &mut self.heap };
            let (shape, strides) = words.split_at_mut(ndim);
            // SAFETY: the second half holds the strides' bits; `isize` has the size, alignment
            // and (all) bit patterns of `usize`.
            let strides = unsafe {
                std::slice::from_raw_parts_mut(strides.as_mut_ptr().cast::<isize>(), ndim)
            };
            (shape, strides)
        }
    }

    /// A copy of this store: the inline words as one block, or a new heap block.
    ///
    /// # Safety
    /// `ndim` is this store's count; the copy's count is the same.
    #[inline]
    pub(crate) unsafe fn duplicate(&self, ndim: usize) -> DimStore {
        if ndim <= INLINE_NDIM {
            // SAFETY: per the contract, `inline` is live; it is `Copy`.
            let inline = unsafe { self.inline };
            DimStore { inline }
        } else {
            // SAFETY: per the contract, `heap` is live.
            let block: &[usize] = unsafe { &self.heap };
            DimStore {
                heap: ManuallyDrop::new(block.into()),
            }
        }
    }

    /// Release the heap block, if any. The store must not be used afterwards.
    ///
    /// # Safety
    /// `ndim` is this store's count, and this is the store's only release.
    #[inline]
    pub(crate) unsafe fn free(&mut self, ndim: usize) {
        if ndim > INLINE_NDIM {
            // SAFETY: per the contract, `heap` is live, and it is dropped only here, once.
            unsafe { ManuallyDrop::drop(&mut self.heap) }
        }
    }
}

/// A [`DimStore`] with its count, released on drop: what the importers fill straight from
/// foreign metadata (a `DLTensor`, numpy's array struct), before a view exists to own it.
/// [`OwnedDims::into_parts`] hands the store to a view.
pub(crate) struct OwnedDims {
    store: DimStore,
    ndim: usize,
}

impl OwnedDims {
    /// No dimensions (a 0-d tensor).
    pub(crate) fn scalar() -> OwnedDims {
        OwnedDims::from_slices(&[], &[])
    }

    /// A store holding `shape` and `strides` (same length; a mismatch panics).
    pub(crate) fn from_slices(shape: &[usize], strides: &[isize]) -> OwnedDims {
        OwnedDims {
            store: DimStore::new(shape, strides),
            ndim: shape.len(),
        }
    }

    /// `ndim` dimensions, extent and stride of axis `k` given by `axis(k)`, which may fail (the
    /// store is then released).
    #[inline(always)]
    pub(crate) fn try_from_fn<E>(
        ndim: usize,
        mut axis: impl FnMut(usize) -> Result<(usize, isize), E>,
    ) -> Result<OwnedDims, E> {
        if ndim <= INLINE_NDIM {
            // Every slot is computed in a loop of constant length, which the compiler unrolls
            // into registers: the store is then written whole, not zeroed and patched. (Patched
            // slots made the caller's 16-byte moves of the result wait on store forwarding.)
            let mut shape = [0; INLINE_NDIM];
            let mut strides = [0; INLINE_NDIM];
            for k in 0..INLINE_NDIM {
                if k < ndim {
                    (shape[k], strides[k]) = axis(k)?;
                }
            }
            Ok(OwnedDims {
                store: DimStore {
                    inline: Inline { shape, strides },
                },
                ndim,
            })
        } else {
            let mut block = vec![0usize; 2 * ndim].into_boxed_slice();
            for k in 0..ndim {
                let (extent, stride) = axis(k)?;
                block[k] = extent;
                block[ndim + k] = stride as usize; // the strides' bits (see `DimStore`)
            }
            Ok(OwnedDims {
                store: DimStore {
                    heap: ManuallyDrop::new(block),
                },
                ndim,
            })
        }
    }

    /// The dimension count.
    #[inline]
    pub(crate) fn ndim(&self) -> usize {
        self.ndim
    }

    /// The shape.
    #[inline]
    pub(crate) fn shape(&self) -> &[usize] {
        // SAFETY: `ndim` is the count the store was made with (the type's invariant).
        unsafe { self.store.shape(self.ndim) }
    }

    /// The strides, in elements.
    #[inline]
    pub(crate) fn strides(&self) -> &[isize] {
        // SAFETY: as in `shape`.
        unsafe { self.store.strides(self.ndim) }
    }

    /// `shape` with C-contiguous strides (what DLPack's NULL strides mean).
    pub(crate) fn c_contiguous(shape: &[usize]) -> crate::Result<OwnedDims> {
        let Ok(mut dims) =
            OwnedDims::try_from_fn(shape.len(), |k| Ok::<_, Infallible>((shape[k], 0)));
        dims.set_c_strides()?;
        Ok(dims)
    }

    /// Replace the strides by the C-contiguous strides of the shape.
    pub(crate) fn set_c_strides(&mut self) -> crate::Result<()> {
        // SAFETY: `ndim` is the count the store was made with (the type's invariant).
        let (shape, strides) = unsafe { self.store.shape_and_strides_mut(self.ndim) };
        crate::layout::fill_c_strides(shape, strides)
    }

    /// The store and its count, for a view that takes over its release.
    #[inline]
    pub(crate) fn into_parts(self) -> (DimStore, usize) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the store moves out exactly once.
        (unsafe { std::ptr::read(&this.store) }, this.ndim)
    }
}

impl Drop for OwnedDims {
    fn drop(&mut self) {
        // SAFETY: `ndim` is the store's count, and this is its only release (`into_parts`
        // skips this drop).
        unsafe { self.store.free(self.ndim) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rank_round_trips_and_frees() {
        for ndim in 0..=9 {
            let shape: Vec<usize> = (1..=ndim).collect();
            let strides: Vec<isize> = (0..ndim as isize).map(|k| -k - 1).collect();
            let mut store = DimStore::new(&shape, &strides);
            // SAFETY: `ndim` is the count the store was made with, freed once at the end.
            unsafe {
                let mut copy = store.duplicate(ndim);
                for s in [&store, &copy] {
                    assert_eq!(s.shape(ndim), shape);
                    assert_eq!(s.strides(ndim), strides);
                }
                #[cfg(target_pointer_width = "64")]
                {
                    let (sp, st) = store.as_mut_ptrs(ndim);
                    if ndim > 0 {
                        assert_eq!(*sp, 1);
                        assert_eq!(*st.add(ndim - 1), -(ndim as isize));
                    }
                }
                copy.free(ndim);
                store.free(ndim);
            }
        }
    }

    #[test]
    fn owned_dims_of_every_rank_are_built_checked_and_released() {
        for ndim in 0..=9 {
            let dims =
                OwnedDims::try_from_fn(ndim, |k| Ok::<_, ()>((k + 2, -(k as isize)))).unwrap();
            assert_eq!(dims.ndim(), ndim);
            assert_eq!(dims.shape(), (2..ndim + 2).collect::<Vec<_>>());
            assert_eq!(
                dims.strides(),
                (0..ndim as isize).map(|k| -k).collect::<Vec<_>>()
            );
            let mut c = OwnedDims::try_from_fn(ndim, |k| Ok::<_, ()>((k + 2, 0))).unwrap();
            c.set_c_strides().unwrap();
            assert_eq!(c.strides(), crate::layout::c_strides(c.shape()).unwrap());
            // A failure part-way releases what was built (Miri checks for leaks).
            let failed =
                OwnedDims::try_from_fn(ndim, |k| if k + 1 == ndim { Err(k) } else { Ok((1, 1)) });
            assert_eq!(failed.err(), ndim.checked_sub(1));
            let (mut store, n) = dims.into_parts();
            // SAFETY: `n` is the store's count; released once.
            unsafe {
                assert_eq!(store.shape(n).len(), ndim);
                store.free(n);
            }
        }
    }

    #[test]
    fn the_store_is_eight_words() {
        assert_eq!(
            std::mem::size_of::<DimStore>(),
            8 * std::mem::size_of::<usize>()
        );
    }
}
