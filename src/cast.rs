//! The cast kernel: a C-contiguous copy of a view with its elements converted to another
//! dtype, beside the copy kernel and sharing its walk over strided memory (numpy's `astype`).
//!
//! Conversions are those of Rust's `as`, which are numpy's `astype` where numpy defines them:
//! integers wrap to narrower integers, floats truncate toward zero into integers. Where numpy
//! leaves the result undefined (NaN or an out-of-range float into an integer) Rust's `as`
//! saturates and gives 0 for NaN. `bool` reads any non-zero byte as `true` and writes 0 or 1;
//! any non-zero number (NaN too) becomes `true`. float16 and bfloat16 go through float32 (from
//! float64 and integers: through float64), rounding to nearest even.

use std::mem::size_of;

use half::{bf16, f16};

use crate::copy::{
    copied_view, for_each_outer, plan, split_outer, threads_for, Axis, PARALLEL_MIN_BYTES,
};
use crate::layout::c_strides;
use crate::owner::AlignedBuffer;
use crate::{DType, Error, Order, Result, TensorView};

/// A `bool` element as stored: one byte, read as `true` when non-zero (so that bytes other than
/// 0 and 1 never become an invalid Rust `bool`), written as 0 or 1.
#[derive(Clone, Copy)]
#[repr(transparent)]
struct BoolByte(u8);

/// Conversion of one element, as documented in the module.
trait CastFrom<S>: Copy {
    fn cast_from(s: S) -> Self;
}

/// `as` between the primitive numbers.
macro_rules! cast_as {
    ($($from:ty),* => $to:ty) => {
        $(impl CastFrom<$from> for $to {
            #[inline(always)]
            fn cast_from(s: $from) -> $to {
                s as $to
            }
        })*
    };
}

macro_rules! numbers {
    ($($to:ty),*) => {
        $(
            cast_as!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64 => $to);
            impl CastFrom<BoolByte> for $to {
                #[inline(always)]
                fn cast_from(s: BoolByte) -> $to {
                    u8::from(s.0 != 0) as $to
                }
            }
            impl CastFrom<f16> for $to {
                #[inline(always)]
                fn cast_from(s: f16) -> $to {
                    s.to_f32() as $to
                }
            }
            impl CastFrom<bf16> for $to {
                #[inline(always)]
                fn cast_from(s: bf16) -> $to {
                    s.to_f32() as $to
                }
            }
            impl CastFrom<$to> for BoolByte {
                #[inline(always)]
                #[allow(clippy::float_cmp)]
                fn cast_from(s: $to) -> BoolByte {
                    BoolByte(u8::from(s != (0 as $to)))
                }
            }
        )*
    };
}
numbers!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

macro_rules! halves {
    ($($h:ty),*) => {
        $(
            impl CastFrom<$h> for $h {
                #[inline(always)]
                fn cast_from(s: $h) -> $h {
                    s
                }
            }
            impl CastFrom<BoolByte> for $h {
                #[inline(always)]
                fn cast_from(s: BoolByte) -> $h {
                    if s.0 != 0 { <$h>::ONE } else { <$h>::ZERO }
                }
            }
            impl CastFrom<$h> for BoolByte {
                #[inline(always)]
                fn cast_from(s: $h) -> BoolByte {
                    BoolByte(u8::from(s.to_f32() != 0.0))
                }
            }
            impl CastFrom<f32> for $h {
                #[inline(always)]
                fn cast_from(s: f32) -> $h {
                    <$h>::from_f32(s)
                }
            }
            impl CastFrom<f64> for $h {
                #[inline(always)]
                fn cast_from(s: f64) -> $h {
                    <$h>::from_f64(s)
                }
            }
        )*
    };
}
halves!(f16, bf16);

/// Integers into the half types: through float64 (exact up to 2^53).
macro_rules! ints_to_halves {
    ($($int:ty),*) => {
        $(
            impl CastFrom<$int> for f16 {
                #[inline(always)]
                fn cast_from(s: $int) -> f16 {
                    f16::from_f64(s as f64)
                }
            }
            impl CastFrom<$int> for bf16 {
                #[inline(always)]
                fn cast_from(s: $int) -> bf16 {
                    bf16::from_f64(s as f64)
                }
            }
        )*
    };
}
ints_to_halves!(i8, i16, i32, i64, u8, u16, u32, u64);

impl CastFrom<f16> for bf16 {
    #[inline(always)]
    fn cast_from(s: f16) -> bf16 {
        bf16::from_f32(s.to_f32())
    }
}

impl CastFrom<bf16> for f16 {
    #[inline(always)]
    fn cast_from(s: bf16) -> f16 {
        f16::from_f32(s.to_f32())
    }
}

impl CastFrom<BoolByte> for BoolByte {
    #[inline(always)]
    fn cast_from(s: BoolByte) -> BoolByte {
        BoolByte(u8::from(s.0 != 0))
    }
}

/// Run `$body` with `$t` the Rust type of the castable dtype `$dtype` (`None` for others; the
/// list is that of [`castable`]).
macro_rules! with_type {
    ($dtype:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::BOOL => {
                type $t = BoolByte;
                Some($body)
            }
            DType::I8 => {
                type $t = i8;
                Some($body)
            }
            DType::I16 => {
                type $t = i16;
                Some($body)
            }
            DType::I32 => {
                type $t = i32;
                Some($body)
            }
            DType::I64 => {
                type $t = i64;
                Some($body)
            }
            DType::U8 => {
                type $t = u8;
                Some($body)
            }
            DType::U16 => {
                type $t = u16;
                Some($body)
            }
            DType::U32 => {
                type $t = u32;
                Some($body)
            }
            DType::U64 => {
                type $t = u64;
                Some($body)
            }
            DType::F16 => {
                type $t = f16;
                Some($body)
            }
            DType::BF16 => {
                type $t = bf16;
                Some($body)
            }
            DType::F32 => {
                type $t = f32;
                Some($body)
            }
            DType::F64 => {
                type $t = f64;
                Some($body)
            }
            _ => None,
        }
    };
}

/// Whether the cast kernel converts between `from` and `to`: bool, the integers of 8 to 64 bits,
/// float16, bfloat16, float32 and float64, in any combination.
pub(crate) fn castable(from: DType, to: DType) -> bool {
    let kernel_type = |dtype: DType| {
        matches!(
            dtype,
            DType::BOOL
                | DType::I8
                | DType::I16
                | DType::I32
                | DType::I64
                | DType::U8
                | DType::U16
                | DType::U32
                | DType::U64
                | DType::F16
                | DType::BF16
                | DType::F32
                | DType::F64
        )
    };
    kernel_type(from) && kernel_type(to)
}

/// Convert every element of the walk `axes` from `S` at `src` into `D` at `dst`.
///
/// # Safety
/// `axes` come from [`plan`] for a host view at `src` with elements of `S`'s size and a
/// destination with elements of `D`'s size: every offset they produce is an element of the
/// view (readable as `S`, maybe unaligned) and a slot of `dst` (writable as `D`, maybe
/// unaligned); the two memories do not overlap.
unsafe fn cast_walk<S: Copy, D: CastFrom<S>>(src: *const u8, dst: *mut u8, axes: &[Axis]) {
    let convert = |s: isize, d: isize| {
        // SAFETY: forwarded: `s` and `d` are offsets of one element on each side.
        unsafe {
            let value = src.offset(s).cast::<S>().read_unaligned();
            dst.offset(d)
                .cast::<D>()
                .write_unaligned(D::cast_from(value));
        }
    };
    let Some((inner, outer)) = axes.split_last() else {
        convert(0, 0);
        return;
    };
    let (ss, ds) = (size_of::<S>() as isize, size_of::<D>() as isize);
    if inner.src == ss && inner.dst == ds {
        // Contiguous runs on both sides: a loop the compiler vectorises.
        for_each_outer(outer, |s, d| {
            // SAFETY: a run of `inner.n` elements on both sides, from the offsets given.
            let (from, to) = unsafe { (src.offset(s).cast::<S>(), dst.offset(d).cast::<D>()) };
            for j in 0..inner.n {
                // SAFETY: j < inner.n: inside the run on both sides.
                unsafe {
                    to.add(j)
                        .write_unaligned(D::cast_from(from.add(j).read_unaligned()));
                }
            }
        });
        return;
    }
    for_each_outer(outer, |s, d| {
        for j in 0..inner.n as isize {
            convert(s + j * inner.src, d + j * inner.dst);
        }
    });
}

impl TensorView {
    /// A new C-contiguous, writable copy with every element converted to `dtype` (numpy's
    /// `astype`), flagged `is_copied`. Converts between bool, int8 to int64, uint8 to uint64,
    /// float16, bfloat16, float32 and float64 (see the module docs for the rules); other dtypes
    /// are [`Error::UnsupportedDtype`]. Casting to the same dtype is a plain C-order copy.
    ///
    /// ```
    /// use dlbridge::{DType, TensorView};
    /// let t = TensorView::from_vec(vec![1.5f64, -2.7, 300.0, f64::NAN], &[4])?;
    /// assert_eq!(t.cast(DType::I32)?.as_slice::<i32>()?, &[1, -2, 300, 0]);
    /// assert_eq!(t.cast(DType::U8)?.as_slice::<u8>()?, &[1, 0, 255, 0]);
    /// assert_eq!(t.cast(DType::BOOL)?.as_slice::<bool>()?, &[true, true, true, true]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn cast(&self, dtype: DType) -> Result<TensorView> {
        if !castable(self.dtype, dtype) {
            let odd = if castable(self.dtype, self.dtype) {
                dtype
            } else {
                self.dtype
            };
            return Err(Error::UnsupportedDtype {
                dtype: odd,
                reason: "the cast kernel converts bool, integers and float16/bfloat16/32/64",
            });
        }
        self.require_host("casting needs host memory")?;
        let numel = self.numel();
        // A large view the walk would read element by element (a transpose, a strided slice)
        // is first copied to C order by the copy kernel (tiled, on every core), then converted
        // in contiguous runs: two passes beat one strided pass (64 MiB transposed f32 -> f64:
        // 150 -> about 45 ms), at the price of a temporary copy of the source.
        if self.nbytes() >= PARALLEL_MIN_BYTES && !self.is_c_contiguous() {
            return self.to_contiguous(Order::C)?.cast(dtype);
        }
        let (src_size, dst_size) = (self.dtype.bits() as usize / 8, dtype.bits() as usize / 8);
        let nbytes = numel
            .checked_mul(dst_size)
            .ok_or_else(|| Error::Overflow("cast size"))?;
        let buffer = AlignedBuffer::new_uninit(nbytes)?;
        let dst = buffer.as_ptr();
        let strides = c_strides(self.shape())?;
        if numel > 0 {
            let axes = plan(self, src_size, &strides, dst_size);
            let src = self.data_ptr();
            let threads = threads_for(nbytes.max(self.nbytes()), PARALLEL_MIN_BYTES);
            // SAFETY: the plan walks this host view's elements (checked at construction) and
            // the fresh buffer's `numel` C-ordered slots of `dst_size` bytes, each once; both
            // types have those sizes (the dtypes were matched to them); the buffer is new, so
            // disjoint.
            let done = with_type!(self.dtype, S => with_type!(dtype, D => unsafe {
                split_outer(&axes, src, dst, threads, |s, d, part| {
                    // SAFETY: `split_outer` calls this only with parts of `axes` at their own
                    // offsets (its contract), for which the guarantees above hold.
                    cast_walk::<S, D>(s, d, part)
                })
            }));
            debug_assert!(matches!(done, Some(Some(()))));
        }
        // SAFETY: the walk above wrote every one of the `numel` slots, `nbytes` bytes.
        unsafe { copied_view(buffer, nbytes, self.shape().to_vec(), strides, dtype, false) }
    }
}
