//! The copy kernel: any host view into fresh contiguous memory, in C or F order, optionally
//! byte-swapped. The only place in the crate where element data is copied.
//!
//! Strategy: drop extent-1 axes, order axes by destination stride, merge axes that are
//! contiguous in both source and destination, then
//! - copy whole runs with `memcpy` when the innermost axis is contiguous on both sides;
//! - copy in tiles of `TILE_BYTES` square when the source steps less along another axis than
//!   along the innermost one (transposes, permutations): bands across the longer of the two
//!   axes, tiles along the shorter, so a band stays in cache; 4-byte elements contiguous on
//!   both sides are transposed in registers (8 x 8 with AVX, else 4 x 4 with SSE, on x86-64);
//! - otherwise walk elements with the element size known at compile time.
//!
//! Copies of at least `PARALLEL_MIN_BYTES` (measured) are cut along the outermost destination
//! axis into one range per core (up to `MAX_THREADS`), copied on scoped threads: each writes its
//! own elements, and small copies never start a thread.

use crate::layout::{c_strides, f_strides};
use crate::owner::AlignedBuffer;
use crate::tensor::Parts;
use crate::{DTypeCode, Element, Error, Flags, Owner, Result, TensorView};

/// Memory order of a contiguous result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// Row-major: the last axis varies fastest.
    C,
    /// Column-major: the first axis varies fastest.
    F,
}

/// Whether a conversion may copy data when the target cannot express the layout, type,
/// alignment or mutability without copying. Shared by every ecosystem module.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CopyPolicy {
    /// Never copy: fail with a typed error instead (the default).
    #[default]
    Never,
    /// Copy when (and only when) the target needs it; the result says so
    /// ([`TensorView::is_copied`]).
    IfNeeded,
}

impl CopyPolicy {
    /// True for [`CopyPolicy::IfNeeded`].
    pub fn allows_copy(self) -> bool {
        self == CopyPolicy::IfNeeded
    }
}

/// One axis of a copy: extent, source and destination strides in bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Axis {
    pub(crate) n: usize,
    pub(crate) src: isize,
    pub(crate) dst: isize,
}

impl TensorView {
    /// A new, C- or F-contiguous, writable copy of this view, flagged `is_copied`.
    ///
    /// Works for any host view, including negative, zero and overlapping strides.
    ///
    /// ```
    /// use dlbridge::{Order, TensorView};
    /// let t = TensorView::from_vec((0..6).collect::<Vec<i32>>(), &[2, 3])?.transpose()?;
    /// let c = t.to_contiguous(Order::C)?;
    /// assert!(c.is_copied() && c.is_c_contiguous());
    /// assert_eq!(c.as_slice::<i32>()?, &[0, 3, 1, 4, 2, 5]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn to_contiguous(&self, order: Order) -> Result<TensorView> {
        self.copy_with(order, false)
    }

    /// Like [`TensorView::to_contiguous`], reversing the bytes of every number: turns
    /// big-endian data into native order (complex numbers swap each part, vectors each lane).
    pub fn to_contiguous_byteswapped(&self, order: Order) -> Result<TensorView> {
        self.copy_with(order, true)
    }

    /// The elements in row-major order, copied into a `Vec`.
    pub fn to_vec<T: Element>(&self) -> Result<Vec<T>> {
        self.check_element_access::<T>()?;
        let n = self.numel();
        let mut out: Vec<T> = Vec::new();
        out.try_reserve_exact(n)
            .map_err(|_| Error::AllocationFailed(self.nbytes()))?;
        let dst_strides = c_strides(self.shape())?;
        // SAFETY: `out` has capacity for `n` elements of `T` (= itemsize bytes each, checked by
        // `check_element_access`); the kernel writes each of the `n` destination slots exactly
        // once and reads only bytes within this view's checked span.
        unsafe {
            copy_elements(self, out.as_mut_ptr().cast(), &dst_strides);
            out.set_len(n);
        }
        Ok(out)
    }

    /// Join tensors along their first axis into one fresh C-contiguous tensor (numpy's
    /// `concatenate(..., axis=0)`): one copy, and the result says `is_copied`. Every part needs
    /// the same dtype and the same extents after the first axis; at least one part is needed.
    ///
    /// ```
    /// use dlbridge::TensorView;
    /// let a = TensorView::from_vec(vec![1i32, 2, 3, 4], &[2, 2])?;
    /// let b = TensorView::from_vec(vec![5i32, 6], &[1, 2])?;
    /// let ab = TensorView::concatenate(&[a, b])?;
    /// assert_eq!(ab.shape(), &[3, 2]);
    /// assert!(ab.is_copied());
    /// assert_eq!(ab.to_vec::<i32>()?, vec![1, 2, 3, 4, 5, 6]);
    /// # Ok::<(), dlbridge::Error>(())
    /// ```
    pub fn concatenate(parts: &[TensorView]) -> Result<TensorView> {
        let first = parts.first().ok_or(Error::NothingToWrite(
            "concatenate needs at least one tensor",
        ))?;
        let size = first.itemsize().ok_or(Error::UnsupportedDtype {
            dtype: first.dtype,
            reason: "concatenating bit-packed elements",
        })?;
        if first.ndim() == 0 {
            return Err(Error::InvalidShape(
                "0-d tensors have no axis to join".into(),
            ));
        }
        let mut rows = 0usize;
        for p in parts {
            p.require_host("concatenating needs host memory")?;
            if p.dtype != first.dtype || p.shape().get(1..) != first.shape().get(1..) {
                return Err(Error::InvalidShape(format!(
                    "cannot join a {} tensor of shape {:?} to a {} tensor of shape {:?} along \
                     the first axis",
                    p.dtype,
                    p.shape(),
                    first.dtype,
                    first.shape()
                )));
            }
            rows = rows
                .checked_add(p.shape()[0])
                .ok_or(Error::Overflow("concatenated rows"))?;
        }
        let mut shape = first.shape().to_vec();
        shape[0] = rows;
        let strides = c_strides(&shape)?;
        let nbytes = shape
            .iter()
            .try_fold(size, |n, &extent| n.checked_mul(extent))
            .ok_or(Error::Overflow("concatenated size"))?;
        let buffer = AlignedBuffer::new_uninit(nbytes)?;
        let mut offset = 0;
        for p in parts {
            // SAFETY: each part is a host view of `size`-byte elements; the rows of the parts
            // tile the fresh buffer in order (C strides of the whole are the parts' C strides
            // shifted by their first row), so each write lands inside it, once.
            unsafe { copy_elements(p, buffer.as_ptr().add(offset), &strides) };
            offset += p.nbytes();
        }
        // SAFETY: the parts' rows cover all `nbytes` bytes of the buffer, each written above.
        unsafe { copied_view(buffer, nbytes, shape, strides, first.dtype, false) }
    }

    fn copy_with(&self, order: Order, byteswap: bool) -> Result<TensorView> {
        self.require_host("copying needs host memory")?;
        let nbytes = self.nbytes();
        let buffer = AlignedBuffer::new_uninit(nbytes)?;
        let dst = buffer.as_ptr();
        let strides = match (self.itemsize(), order) {
            (None, _) => {
                // Bit-packed: always C-contiguous (descriptor invariant), so one memcpy.
                // SAFETY: the view reaches exactly `nbytes` bytes from its first element; the
                // buffer has `nbytes` fresh bytes.
                unsafe { std::ptr::copy_nonoverlapping(self.data_ptr(), dst, nbytes) };
                c_strides(self.shape())?
            }
            // An empty tensor reaches nothing: zero strides describe it whatever its extents.
            (Some(_), _) if self.numel() == 0 => vec![0; self.ndim()],
            (Some(_), Order::C) => c_strides(self.shape())?,
            (Some(_), Order::F) => f_strides(self.shape())?,
        };
        if self.itemsize().is_some() {
            // SAFETY: the buffer holds `nbytes` = numel * itemsize bytes, which the contiguous
            // destination strides cover exactly; the source is a valid host view.
            unsafe { copy_elements(self, dst, &strides) };
        }
        if byteswap {
            let unit = match self.dtype.code() {
                DTypeCode::Complex => self.dtype.bits() as usize / 16,
                _ => (self.dtype.bits() as usize / 8).max(1),
            };
            // SAFETY: the buffer's first `nbytes` bytes were all written above.
            let bytes = unsafe { std::slice::from_raw_parts_mut(dst, nbytes) };
            bytes.chunks_exact_mut(unit).for_each(|c| c.reverse());
        }
        // SAFETY: every one of the buffer's `nbytes` bytes was written above.
        unsafe {
            copied_view(
                buffer,
                nbytes,
                self.shape().to_vec(),
                strides,
                self.dtype,
                self.flags().subbyte_padded,
            )
        }
    }
}

/// A fresh C-CPU tensor over `buffer` (the copy kernels' result): writable, `is_copied`, owned
/// by nothing but its owner. The copy is ordinary heap memory, whatever host-accessible device
/// the source was.
///
/// # Safety
/// `buffer` holds `nbytes` bytes, all written, laid out as `shape`/`strides` of `dtype`.
pub(crate) unsafe fn copied_view(
    buffer: AlignedBuffer,
    nbytes: usize,
    shape: Vec<usize>,
    strides: Vec<isize>,
    dtype: crate::DType,
    subbyte_padded: bool,
) -> Result<TensorView> {
    let data = buffer.as_ptr();
    let start = data as usize;
    let parts = Parts {
        data,
        byte_offset: 0,
        shape,
        strides: Some(strides),
        dtype,
        device: crate::Device::CPU,
        flags: Flags {
            read_only: false,
            is_copied: true,
            subbyte_padded,
        },
        extent: Some(start..start + nbytes),
    };
    // SAFETY: the buffer is a fresh, fully written (the caller's contract), writable allocation
    // of `nbytes` bytes owned by the new owner, reachable by nothing else; the extent is it.
    unsafe { Ok(TensorView::from_parts(parts, Owner::new(buffer))?.assume_exclusive()) }
}

/// Copies of at least this many bytes are split across threads. Measured with the ignored test
/// `copy::tests::measure_parallel_threshold` (fresh f32 buffers, best of 12 or more, on a
/// 2-core VM): two threads lose below 2 MiB (1 MiB: 31 -> 58 us contiguous, 80 -> 110 us
/// transposed; a thread costs about 8 us to start), break even at 2-3 MiB, and win from 4 MiB
/// (4 MiB: 281 -> 207 us contiguous, 639 -> 318 us transposed; 64 MiB: 41 -> 21 ms, 39 -> 28 ms).
pub(crate) const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// At most this many threads per copy: more cores than memory channels do not copy faster.
const MAX_THREADS: usize = 8;

/// Copy every element of `src` into `dst`, laid out with element strides `dst_strides`, on as
/// many threads as the size warrants ([`PARALLEL_MIN_BYTES`]).
///
/// # Safety
/// `src` is a host view with byte-addressable elements; `dst` is writable for every element
/// position `dst_strides` describes for `src.shape()`, and does not overlap `src`'s memory.
unsafe fn copy_elements(src: &TensorView, dst: *mut u8, dst_strides: &[isize]) {
    let threads = threads_for(src.nbytes(), PARALLEL_MIN_BYTES);
    // SAFETY: forwarded from the caller.
    unsafe { copy_elements_on(src, dst, dst_strides, threads) }
}

/// How many threads copy `nbytes` bytes: one below `min_bytes`, then one per `min_bytes / 2`
/// bytes up to the cores available (and [`MAX_THREADS`]).
pub(crate) fn threads_for(nbytes: usize, min_bytes: usize) -> usize {
    if nbytes < min_bytes {
        return 1;
    }
    (nbytes / (min_bytes / 2).max(1)).clamp(1, cores())
}

/// The cores a copy may use (at most [`MAX_THREADS`]), asked of the OS once: on Linux the
/// answer reads cgroup files, which costs more than a small copy.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| {
        std::thread::available_parallelism().map_or(1, |n| n.get().clamp(1, MAX_THREADS))
    })
}

/// [`copy_elements`] on (at most) `threads` threads: the outermost destination axis is cut into
/// `threads` ranges, each copied by its own scoped thread (the calling thread takes the first,
/// and any part whose thread cannot be started).
///
/// # Safety
/// As [`copy_elements`].
unsafe fn copy_elements_on(src: &TensorView, dst: *mut u8, dst_strides: &[isize], threads: usize) {
    let Some(size) = src.itemsize() else { return };
    if src.numel() == 0 {
        return;
    }
    let axes = plan(src, size, dst_strides, size);
    let src_ptr = src.data_ptr();
    let walk = |s, d, part: &[Axis]| {
        // SAFETY: `split_outer` calls this only with parts of `axes` at their own offsets (its
        // contract), for which the caller's guarantees hold.
        unsafe { walk_any(s, d, part, size) }
    };
    // SAFETY: forwarded from the caller: `axes` walk the view and distinct destination slots.
    unsafe { split_outer(&axes, src_ptr, dst, threads, walk) }
}

/// Run `walk(src, dst, part)` over `axes` cut along the outermost one into (at most) `threads`
/// ranges, each on its own scoped thread (the calling thread takes the first, and any part
/// whose thread cannot be started). `part` is `axes` with the outermost extent cut to the range,
/// and `src`/`dst` are moved to its start. With one thread (or one axis index), one call.
///
/// # Safety
/// `axes` (outermost first) walk elements of readable memory at `src` and writable memory at
/// `dst` that do not overlap, every destination offset distinct, and `walk(s, d, p)` is sound
/// for any such walk `p` at `s`/`d`: then the parts write disjoint slots.
pub(crate) unsafe fn split_outer(
    axes: &[Axis],
    src: *const u8,
    dst: *mut u8,
    threads: usize,
    walk: impl Fn(*const u8, *mut u8, &[Axis]) + Sync,
) {
    let Some(&outer) = axes.first() else {
        return walk(src, dst, axes);
    };
    let threads = threads.clamp(1, outer.n);
    if threads == 1 {
        return walk(src, dst, axes);
    }
    let chunk = outer.n.div_ceil(threads);
    let shared = Shared { src, dst };
    let walk = &walk;
    // Walk indices `start..start + part[0].n` of the outermost axis.
    let copy_part = move |start: usize, part: &[Axis]| {
        // `part` is `axes` with the outermost extent cut to a range starting at `start` and
        // within it: its offsets from these pointers are offsets of `axes` from the caller's,
        // so the caller's guarantees hold for this part.
        let (s, d) = shared.at(start as isize * outer.src, start as isize * outer.dst);
        walk(s, d, part)
    };
    std::thread::scope(|scope| {
        for start in (0..outer.n).step_by(chunk).rev() {
            let mut part = axes.to_vec();
            part[0].n = chunk.min(outer.n - start);
            if start == 0 {
                copy_part(start, &part);
                continue;
            }
            let worker = part.clone();
            let spawned =
                std::thread::Builder::new().spawn_scoped(scope, move || copy_part(start, &worker));
            if spawned.is_err() {
                // No thread to be had: this part is copied here instead.
                copy_part(start, &part);
            }
        }
    });
}

/// The source and destination of a copy, handed to the threads that share it.
#[derive(Clone, Copy)]
struct Shared {
    src: *const u8,
    dst: *mut u8,
}

// SAFETY: each thread gets a disjoint range of indices of the outermost axis. The destination
// layout maps distinct indices to distinct elements (the caller of `copy_elements` writes every
// destination slot once), so the threads' writes never meet; the source is only read, and
// `std::thread::scope` joins every thread before the borrow of the source view and the
// destination buffer ends.
unsafe impl Send for Shared {}

impl Shared {
    /// The source and destination pointers moved by `s` and `d` bytes. A method, so a closure
    /// captures the whole (`Send`) struct rather than its raw-pointer fields.
    fn at(self, s: isize, d: isize) -> (*const u8, *mut u8) {
        (self.src.wrapping_offset(s), self.dst.wrapping_offset(d))
    }
}

/// The kernel for `size`-byte elements: specialised for 1, 2, 4, 8 and 16 bytes.
///
/// # Safety
/// As [`copy_elements`]; `axes` are its coalesced axes with byte strides.
unsafe fn walk_any(src: *const u8, dst: *mut u8, axes: &[Axis], size: usize) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match size {
            1 => walk::<1>(src, dst, axes),
            2 => walk::<2>(src, dst, axes),
            4 => walk::<4>(src, dst, axes),
            8 => walk::<8>(src, dst, axes),
            16 => walk::<16>(src, dst, axes),
            _ => walk_dyn(src, dst, axes, size),
        }
    }
}

/// The axes of a copy from `src` (elements of `src_size` bytes) to a destination with element
/// strides `dst_strides` (elements of `dst_size` bytes): byte strides, extent-1 axes dropped,
/// outermost (largest destination step) first, neighbours that step contiguously merged.
pub(crate) fn plan(
    src: &TensorView,
    src_size: usize,
    dst_strides: &[isize],
    dst_size: usize,
) -> Vec<Axis> {
    let (ss, ds) = (src_size as isize, dst_size as isize);
    let mut axes: Vec<Axis> = src
        .shape()
        .iter()
        .zip(src.strides().iter().zip(dst_strides))
        .filter(|(&n, _)| n != 1)
        .map(|(&n, (&s, &d))| Axis {
            n,
            src: s * ss,
            dst: d * ds,
        })
        .collect();
    // Outermost first: decreasing destination stride.
    axes.sort_by_key(|a| std::cmp::Reverse(a.dst.unsigned_abs()));
    coalesce(axes)
}

/// Merge neighbouring axes that step contiguously on both sides (outer = inner * extent).
fn coalesce(axes: Vec<Axis>) -> Vec<Axis> {
    let mut out: Vec<Axis> = Vec::with_capacity(axes.len());
    for a in axes.into_iter().rev() {
        // `a` is outer relative to the last merged axis.
        match out.last_mut() {
            Some(inner)
                if a.src == inner.src * inner.n as isize
                    && a.dst == inner.dst * inner.n as isize =>
            {
                inner.n *= a.n;
            }
            _ => out.push(a),
        }
    }
    out.reverse();
    out
}

/// Call `f(src_offset, dst_offset)` for every index of `outer` (row-major odometer, on the
/// stack as in `layout::for_each_offset`: the axes come from a checked layout, at most
/// `MAX_NDIM` of them).
#[inline(always)]
pub(crate) fn for_each_outer(outer: &[Axis], mut f: impl FnMut(isize, isize)) {
    let mut odometer = [0usize; crate::MAX_NDIM];
    let idx = &mut odometer[..outer.len()];
    let (mut so, mut d) = (0isize, 0isize);
    loop {
        f(so, d);
        let mut k = outer.len();
        loop {
            if k == 0 {
                return;
            }
            k -= 1;
            idx[k] += 1;
            so += outer[k].src;
            d += outer[k].dst;
            if idx[k] < outer[k].n {
                break;
            }
            so -= outer[k].src * outer[k].n as isize;
            d -= outer[k].dst * outer[k].n as isize;
            idx[k] = 0;
        }
    }
}

#[inline(always)]
unsafe fn copy_one<const N: usize>(src: *const u8, dst: *mut u8) {
    // SAFETY: caller guarantees N readable bytes at `src` and N writable bytes at `dst`.
    unsafe {
        dst.cast::<[u8; N]>()
            .write_unaligned(src.cast::<[u8; N]>().read_unaligned())
    }
}

/// The kernel for an element size known at compile time.
///
/// # Safety
/// As [`copy_elements`]; `axes` are its coalesced axes with byte strides.
unsafe fn walk<const N: usize>(src: *const u8, dst: *mut u8, axes: &[Axis]) {
    let Some((inner, outer)) = axes.split_last() else {
        // SAFETY: a 0-d (or all-extent-1) tensor has one element at offset 0.
        unsafe { copy_one::<N>(src, dst) };
        return;
    };
    let n = N as isize;
    if inner.src == n && inner.dst == n {
        let run = inner.n * N;
        // SAFETY: each run is `inner.n` contiguous elements inside both memories.
        for_each_outer(outer, |s, d| unsafe {
            std::ptr::copy_nonoverlapping(src.offset(s), dst.offset(d), run)
        });
        return;
    }
    // A transpose: the source steps less along some outer axis than along the inner one.
    if let Some(t) = tile_axis(outer, inner) {
        let tiled = outer[t];
        let rest: Vec<Axis> = outer
            .iter()
            .enumerate()
            .filter(|&(k, _)| k != t)
            .map(|(_, a)| *a)
            .collect();
        for_each_outer(&rest, |s, d| {
            // SAFETY: every (i, j) below indexes an element of the view.
            unsafe { tile_copy::<N>(src.offset(s), dst.offset(d), tiled, *inner) }
        });
        return;
    }
    for_each_outer(outer, |s, d| {
        for j in 0..inner.n as isize {
            // SAFETY: j < inner.n indexes an element on both sides.
            unsafe { copy_one::<N>(src.offset(s + j * inner.src), dst.offset(d + j * inner.dst)) }
        }
    });
}

/// The outer axis to tile with `inner`: the one along which the source steps least, if that is
/// less than along `inner` (reading along it, in tiles, touches fewer cache lines and pages).
/// Broadcast (zero-step) axes are not candidates: the inner walk already reads them from cache.
fn tile_axis(outer: &[Axis], inner: &Axis) -> Option<usize> {
    let (k, a) = outer
        .iter()
        .enumerate()
        .filter(|(_, a)| a.src != 0)
        .min_by_key(|(_, a)| a.src.unsigned_abs())?;
    (a.src.unsigned_abs() < inner.src.unsigned_abs()).then_some(k)
}

/// Bytes along each side of a tile: one cache line.
const TILE_BYTES: usize = 128;

/// Copy the 2-D plane spanned by axes `a` (the source's short step) and `b` (the destination's
/// short step) in tiles of `TILE_BYTES / N` elements square, so that each tile reads and writes
/// whole cache lines. Within a tile, 4-byte elements contiguous in both memories go through an
/// in-register transpose on x86-64 (8 x 8 blocks with AVX, else 4 x 4 with SSE).
///
/// # Safety
/// Every (i < a.n, j < b.n) indexes an element at `i * a.src + j * b.src` from `src` and at
/// `i * a.dst + j * b.dst` from `dst`, as [`copy_elements`] requires of its elements.
#[inline(always)]
unsafe fn tile_copy<const N: usize>(mut src: *const u8, mut dst: *mut u8, mut a: Axis, b: Axis) {
    if a.src < 0 {
        // Walk `a` backwards on both sides: the same pairs of elements, the source forwards.
        let last = (a.n - 1) as isize;
        // SAFETY: index `a.n - 1` of `a` is an element on both sides.
        unsafe {
            src = src.offset(last * a.src);
            dst = dst.offset(last * a.dst);
        }
        a.src = -a.src;
        a.dst = -a.dst;
    }
    #[cfg(target_arch = "x86_64")]
    if N == 4 && a.src == 4 && b.dst == 4 {
        // SAFETY: forwarded; the rows are contiguous as the block transposes need.
        return unsafe { x86::tile_copy_4(src, dst, a, b) };
    }
    // SAFETY: forwarded; a 1 x 1 block is one element.
    unsafe { tiles::<N, 1>(src, dst, a, b, copy_block1::<N>) }
}

/// A block transpose: source rows at `src + r * src_row`, destination rows at
/// `dst + c * dst_row`, element c of source row r going to element r of destination row c.
type Block = unsafe fn(*const u8, isize, *mut u8, isize);

/// The 1 x 1 [`Block`]: one element.
///
/// # Safety
/// As [`copy_one`].
#[inline(always)]
unsafe fn copy_block1<const N: usize>(src: *const u8, _: isize, dst: *mut u8, _: isize) {
    // SAFETY: forwarded.
    unsafe { copy_one::<N>(src, dst) }
}

/// [`tile_copy`]'s loops: tiles of `TILE_BYTES / N` elements square; within each, whole B x B
/// blocks go through `block`, the rims (ragged edges) element by element.
///
/// # Safety
/// As [`tile_copy`]; for B > 1, `block` needs `a.src == N` and `b.dst == N` (rows of B
/// contiguous elements on both sides).
#[inline(always)]
unsafe fn tiles<const N: usize, const B: usize>(
    src: *const u8,
    dst: *mut u8,
    a: Axis,
    b: Axis,
    block: Block,
) {
    let side = (TILE_BYTES / N).max(B);
    let tile = |i0: usize, j0: usize| {
        let (i1, j1) = ((i0 + side).min(a.n), (j0 + side).min(b.n));
        let (i_end, j_end) = (i1 - (i1 - i0) % B, j1 - (j1 - j0) % B);
        for j in (j0..j_end).step_by(B) {
            let (sj, dj) = (j as isize * b.src, j as isize * b.dst);
            for i in (i0..i_end).step_by(B) {
                let i = i as isize;
                // SAFETY: the block's rows j..j + B of `b` and columns i..i + B of `a` lie within
                // the extents (the block is whole), so every element it touches is one of the
                // view's on both sides.
                unsafe {
                    block(
                        src.offset(i * a.src + sj),
                        b.src,
                        dst.offset(i * a.dst + dj),
                        a.dst,
                    )
                }
            }
        }
        // SAFETY: the rims (i_end..i1 by j0..j1, i0..i_end by j_end..j1) lie within the extents.
        unsafe {
            rim::<N>(src, dst, a, b, (i_end, i1), (j0, j1));
            rim::<N>(src, dst, a, b, (i0, i_end), (j_end, j1));
        }
    };
    // Bands across the longer axis, tiles along the shorter: a band's cache lines and pages
    // (side x shorter extent, on each side) stay resident while it is copied.
    if a.n >= b.n {
        for i0 in (0..a.n).step_by(side) {
            (0..b.n).step_by(side).for_each(|j0| tile(i0, j0));
        }
    } else {
        for j0 in (0..b.n).step_by(side) {
            (0..a.n).step_by(side).for_each(|i0| tile(i0, j0));
        }
    }
}

/// Copy the elements (i, j) for i in `i0..i1`, j in `j0..j1` one at a time, reading along `a`.
///
/// # Safety
/// As [`tile_copy`], with the ranges within the extents.
#[inline(always)]
unsafe fn rim<const N: usize>(
    src: *const u8,
    dst: *mut u8,
    a: Axis,
    b: Axis,
    (i0, i1): (usize, usize),
    (j0, j1): (usize, usize),
) {
    for j in j0..j1 {
        let (sj, dj) = (j as isize * b.src, j as isize * b.dst);
        for i in i0..i1 {
            let i = i as isize;
            // SAFETY: i < a.n and j < b.n index an element on both sides.
            unsafe { copy_one::<N>(src.offset(i * a.src + sj), dst.offset(i * a.dst + dj)) }
        }
    }
}

/// In-register transposes of 4-byte elements: the shuffles move bits, never interpret them as
/// floats. SSE is part of every x86-64 CPU; AVX is detected at run time (and never under Miri,
/// which takes the SSE path).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{tiles, Axis};
    use core::arch::x86_64::{
        _mm256_loadu_ps, _mm256_permute2f128_ps, _mm256_shuffle_ps, _mm256_storeu_ps,
        _mm256_unpackhi_ps, _mm256_unpacklo_ps, _mm_loadu_ps, _mm_movehl_ps, _mm_movelh_ps,
        _mm_storeu_ps, _mm_unpackhi_ps, _mm_unpacklo_ps,
    };

    /// [`super::tile_copy`] for 4-byte elements with `a.src == 4` and `b.dst == 4`.
    ///
    /// # Safety
    /// As [`super::tile_copy`], with those strides.
    #[inline(always)]
    pub(super) unsafe fn tile_copy_4(src: *const u8, dst: *mut u8, a: Axis, b: Axis) {
        if is_x86_feature_detected!("avx") {
            // SAFETY: AVX is available; the rest is forwarded.
            unsafe { tile_copy_4_avx(src, dst, a, b) }
        } else {
            // SAFETY: forwarded; the strides make 4 x 4 blocks contiguous rows.
            unsafe { tiles::<4, 4>(src, dst, a, b, transpose4x4) }
        }
    }

    /// # Safety
    /// As [`tile_copy_4`], on a CPU with AVX.
    #[target_feature(enable = "avx")]
    unsafe fn tile_copy_4_avx(src: *const u8, dst: *mut u8, a: Axis, b: Axis) {
        // SAFETY: forwarded; the strides make 8 x 8 blocks contiguous rows.
        unsafe { tiles::<4, 8>(src, dst, a, b, transpose8x8) }
    }

    /// Element c of source row r (16 bytes at `src + r * src_row`) becomes element r of
    /// destination row c (16 bytes at `dst + c * dst_row`), for r, c < 4.
    ///
    /// # Safety
    /// The four 16-byte source rows are readable, the four destination rows writable, and the
    /// two do not overlap.
    #[inline(always)]
    pub(super) unsafe fn transpose4x4(
        src: *const u8,
        src_row: isize,
        dst: *mut u8,
        dst_row: isize,
    ) {
        // SAFETY: SSE is baseline on x86-64; the caller guarantees the 4 x 16 readable and
        // 4 x 16 writable bytes (unaligned loads and stores).
        unsafe {
            let [r0, r1, r2, r3] =
                [0, 1, 2, 3].map(|r| _mm_loadu_ps(src.offset(r * src_row).cast()));
            // Rows a, b, c, d: t0 = a0 b0 a1 b1, t1 = c0 d0 c1 d1, t2 = a2 b2 a3 b3, t3 = c2 d2 c3 d3.
            let (t0, t1) = (_mm_unpacklo_ps(r0, r1), _mm_unpacklo_ps(r2, r3));
            let (t2, t3) = (_mm_unpackhi_ps(r0, r1), _mm_unpackhi_ps(r2, r3));
            _mm_storeu_ps(dst.cast(), _mm_movelh_ps(t0, t1)); // a0 b0 c0 d0
            _mm_storeu_ps(dst.offset(dst_row).cast(), _mm_movehl_ps(t1, t0)); // a1 b1 c1 d1
            _mm_storeu_ps(dst.offset(2 * dst_row).cast(), _mm_movelh_ps(t2, t3)); // a2 b2 c2 d2
            _mm_storeu_ps(dst.offset(3 * dst_row).cast(), _mm_movehl_ps(t3, t2));
            // a3 b3 c3 d3
        }
    }

    /// As [`transpose4x4`] for 8 x 8 elements (32-byte rows).
    ///
    /// # Safety
    /// The eight 32-byte source rows are readable, the eight destination rows writable, and the
    /// two do not overlap; the CPU has AVX.
    #[target_feature(enable = "avx")]
    #[inline]
    unsafe fn transpose8x8(src: *const u8, src_row: isize, dst: *mut u8, dst_row: isize) {
        // SAFETY: the caller guarantees the 8 x 32 readable bytes (unaligned loads).
        let r = [0, 1, 2, 3, 4, 5, 6, 7]
            .map(|k| unsafe { _mm256_loadu_ps(src.offset(k * src_row).cast()) });
        // Rows a..h. Per 128-bit lane: t0 = a0 b0 a1 b1, t1 = a2 b2 a3 b3, t2 = c0 d0 c1 d1...
        let t = [(0, 1), (2, 3), (4, 5), (6, 7)].map(|(x, y)| {
            (
                _mm256_unpacklo_ps(r[x], r[y]),
                _mm256_unpackhi_ps(r[x], r[y]),
            )
        });
        // Per lane: u[0] = a0 b0 c0 d0, u[1] = a1 b1 c1 d1, u[2] = a2.., u[3] = a3..; u[4..] e-h.
        let u = [
            _mm256_shuffle_ps::<0x44>(t[0].0, t[1].0),
            _mm256_shuffle_ps::<0xEE>(t[0].0, t[1].0),
            _mm256_shuffle_ps::<0x44>(t[0].1, t[1].1),
            _mm256_shuffle_ps::<0xEE>(t[0].1, t[1].1),
            _mm256_shuffle_ps::<0x44>(t[2].0, t[3].0),
            _mm256_shuffle_ps::<0xEE>(t[2].0, t[3].0),
            _mm256_shuffle_ps::<0x44>(t[2].1, t[3].1),
            _mm256_shuffle_ps::<0xEE>(t[2].1, t[3].1),
        ];
        for k in 0..4 {
            // Column k from the low lanes, column k + 4 from the high lanes.
            let lo = _mm256_permute2f128_ps::<0x20>(u[k], u[k + 4]);
            let hi = _mm256_permute2f128_ps::<0x31>(u[k], u[k + 4]);
            let k = k as isize;
            // SAFETY: the caller guarantees the 8 x 32 writable bytes (unaligned stores).
            unsafe {
                _mm256_storeu_ps(dst.offset(k * dst_row).cast(), lo);
                _mm256_storeu_ps(dst.offset((k + 4) * dst_row).cast(), hi);
            }
        }
    }
}

/// The kernel for element sizes without a specialisation (vectors, opaque handles).
unsafe fn walk_dyn(src: *const u8, dst: *mut u8, axes: &[Axis], size: usize) {
    let (inner, outer) = match axes.split_last() {
        Some((inner, outer)) => (*inner, outer),
        None => (
            Axis {
                n: 1,
                src: 0,
                dst: 0,
            },
            axes,
        ),
    };
    for_each_outer(outer, |s, d| {
        for j in 0..inner.n as isize {
            // SAFETY: j < inner.n indexes an element of `size` bytes on both sides.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    src.offset(s + j * inner.src),
                    dst.offset(d + j * inner.dst),
                    size,
                )
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DType, SliceArg};

    /// `n` elements of `size` bytes with distinct byte patterns, as a 1-D view of that dtype.
    fn iota(size: usize, n: usize) -> (TensorView, Vec<u8>) {
        let dtype = match size {
            16 => DType::new(5, 64, 2).unwrap(), // complex128
            3 => DType::new(3, 24, 1).unwrap(),  // 3-byte opaque: the walk_dyn path
            s => DType::new(1, (s * 8) as u8, 1).unwrap(),
        };
        let bytes: Vec<u8> = (0..n * size).map(|i| (i * 7 + i / 251) as u8).collect();
        let t = TensorView::from_vec(bytes.clone(), &[n * size])
            .unwrap()
            .reinterpret(dtype)
            .unwrap();
        (t, bytes)
    }

    /// The reference: element by element, in `order`, from the view's strides over `base`.
    fn gather(view: &TensorView, base: &[u8], base_ptr: *const u8, order: Order) -> Vec<u8> {
        let size = view.itemsize().unwrap();
        let start = view.data_ptr() as isize - base_ptr as isize;
        let shape = view.shape();
        let mut out = Vec::with_capacity(view.nbytes());
        let mut idx = vec![0usize; shape.len()];
        for _ in 0..view.numel() {
            let off: isize = idx
                .iter()
                .zip(view.strides())
                .map(|(&i, &s)| i as isize * s * size as isize)
                .sum();
            let e = (start + off) as usize;
            out.extend_from_slice(&base[e..e + size]);
            // Odometer: the last axis fastest for C, the first for F.
            let axes: Vec<usize> = match order {
                Order::C => (0..shape.len()).rev().collect(),
                Order::F => (0..shape.len()).collect(),
            };
            for k in axes {
                idx[k] += 1;
                if idx[k] < shape[k] {
                    break;
                }
                idx[k] = 0;
            }
        }
        out
    }

    /// The bytes of a contiguous view, in memory order.
    fn memory(view: &TensorView) -> &[u8] {
        // SAFETY: a contiguous view's nbytes from its first element are its own initialised
        // memory, alive as long as the view.
        unsafe { std::slice::from_raw_parts(view.data_ptr(), view.nbytes()) }
    }

    /// Copy `view` in both orders on 1, 2 and 3 threads (and through the public path), checking
    /// every result against the reference.
    fn check(view: &TensorView, base: &TensorView, bytes: &[u8]) {
        for order in [Order::C, Order::F] {
            let want = gather(view, bytes, base.data_ptr(), order);
            let strides = match order {
                Order::C => c_strides(view.shape()).unwrap(),
                Order::F => f_strides(view.shape()).unwrap(),
            };
            for threads in [1, 2, 3] {
                let mut got = vec![0u8; view.nbytes()];
                // SAFETY: `got` holds the view's nbytes, which contiguous strides cover.
                unsafe { copy_elements_on(view, got.as_mut_ptr(), &strides, threads) };
                assert_eq!(got, want, "{order:?} on {threads} threads: {view:?}");
            }
            let copy = view.to_contiguous(order).unwrap();
            assert_eq!(memory(&copy), want, "to_contiguous({order:?}): {view:?}");
        }
    }

    /// 2-D sides that are not multiples of any tile, and one that is.
    const SIDES: [(usize, usize); 3] = [(5, 7), (33, 18), (16, 16)];

    #[test]
    fn copy_transposes_every_element_size_with_ragged_tiles() {
        let sides: &[(usize, usize)] = if cfg!(miri) { &SIDES[..2] } else { &SIDES };
        for size in [1, 2, 4, 8, 16, 3] {
            for &(r, c) in sides {
                let (base, bytes) = iota(size, r * c);
                let t = base.reshape(&[r, c]).unwrap();
                check(&t, &base, &bytes);
                check(&t.transpose().unwrap(), &base, &bytes);
            }
        }
    }

    /// The SSE blocks, which AVX machines skip (Miri takes them), against the reference.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn copy_sse_blocks_with_ragged_tiles() {
        for (r, c) in SIDES {
            let (base, bytes) = iota(4, r * c);
            let t = base.reshape(&[r, c]).unwrap().transpose().unwrap();
            let strides = c_strides(t.shape()).unwrap();
            let axes = plan(&t, 4, &strides, 4);
            let [a, b] = axes[..] else { panic!("{axes:?}") };
            assert_eq!((a.src, b.dst), (4, 4));
            let mut got = vec![0u8; t.nbytes()];
            // SAFETY: a transposed 2-D view: `a` and `b` index its elements, contiguous along
            // `a` in the source and along `b` in `got`, which holds the C-order copy.
            unsafe { tiles::<4, 4>(t.data_ptr(), got.as_mut_ptr(), a, b, x86::transpose4x4) };
            assert_eq!(
                got,
                gather(&t, &bytes, base.data_ptr(), Order::C),
                "{r} x {c}"
            );
        }
    }

    #[test]
    fn copy_negative_strides_through_a_transpose() {
        for size in [1, 4, 8] {
            let (base, bytes) = iota(size, 9 * 14);
            let t = base.reshape(&[9, 14]).unwrap();
            let rev = |v: &TensorView, axis| v.slice(axis, SliceArg::step(-1)).unwrap();
            check(&rev(&t, 1).transpose().unwrap(), &base, &bytes);
            check(&rev(&t, 0).transpose().unwrap(), &base, &bytes);
            check(&rev(&rev(&t, 0), 1).transpose().unwrap(), &base, &bytes);
            let stepped = t.slice(1, SliceArg::step(-3)).unwrap();
            check(&stepped.transpose().unwrap(), &base, &bytes);
        }
    }

    #[test]
    fn copy_3d_permutations() {
        let shape: &[usize] = if cfg!(miri) { &[3, 5, 6] } else { &[6, 9, 20] };
        for size in [1, 2, 4, 8, 16] {
            let (base, bytes) = iota(size, shape.iter().product());
            let t = base.reshape(shape).unwrap();
            for order in [
                [0, 1, 2],
                [0, 2, 1],
                [1, 0, 2],
                [1, 2, 0],
                [2, 0, 1],
                [2, 1, 0],
            ] {
                check(&t.permute(&order).unwrap(), &base, &bytes);
            }
            let sliced = t
                .slice_each(&[SliceArg::FULL, SliceArg::step(2), SliceArg::step(-3)])
                .unwrap();
            check(&sliced.permute(&[2, 0, 1]).unwrap(), &base, &bytes);
        }
    }

    #[test]
    fn copy_strided_broadcast_and_overlapping_sources() {
        for size in [2, 4, 16] {
            let (base, bytes) = iota(size, 12 * 10);
            let t = base.reshape(&[12, 10]).unwrap();
            let sliced = t
                .slice_each(&[SliceArg::step(2), SliceArg::step(3)])
                .unwrap();
            check(&sliced, &base, &bytes);
            check(&sliced.transpose().unwrap(), &base, &bytes);
            let wide = t.broadcast_to(&[3, 12, 10]).unwrap();
            check(&wide, &base, &bytes);
            check(&wide.permute(&[2, 0, 1]).unwrap(), &base, &bytes);
            // Sliding windows: overlapping source elements.
            let windows = base.as_strided(&[8, 5, 4], &[10, 1, 2], 3).unwrap();
            check(&windows, &base, &bytes);
            check(&windows.transpose().unwrap(), &base, &bytes);
            let zero = base.as_strided(&[4, 3], &[0, 1], 0).unwrap();
            check(&zero.transpose().unwrap(), &base, &bytes);
        }
    }

    #[test]
    fn copy_threads_split_more_ways_than_the_outer_axis_has() {
        let (base, bytes) = iota(4, 2 * 3);
        let t = base.reshape(&[2, 3]).unwrap();
        let want = gather(&t.transpose().unwrap(), &bytes, base.data_ptr(), Order::C);
        let mut got = vec![0u8; 24];
        let strides = c_strides(&[3, 2]).unwrap();
        // SAFETY: `got` holds the 24 bytes C strides of [3, 2] 4-byte elements cover.
        unsafe { copy_elements_on(&t.transpose().unwrap(), got.as_mut_ptr(), &strides, 8) };
        assert_eq!(got, want);
        let (one, bytes) = iota(8, 1);
        let scalar = one.reshape(&[]).unwrap();
        let mut got = [0u8; 8];
        // SAFETY: 8 bytes for the one 8-byte element of a 0-d view.
        unsafe { copy_elements_on(&scalar, got.as_mut_ptr(), &[], 4) };
        assert_eq!(got[..], bytes[..]);
        assert_eq!(memory(&scalar.to_contiguous(Order::F).unwrap()), &bytes[..]);
    }

    /// Above [`PARALLEL_MIN_BYTES`] the public entry points split the copy across threads.
    #[test]
    #[cfg_attr(
        miri,
        ignore = "megabytes: too slow under Miri (the threaded path is covered above)"
    )]
    fn copy_large_views_through_the_threaded_path() {
        let (rows, cols) = (1100, 1030); // 4.3 MiB of f32, sides not multiples of a tile
        assert!(rows * cols * 4 >= PARALLEL_MIN_BYTES);
        let values: Vec<u32> = (0..(rows * cols) as u32).collect();
        let t = TensorView::from_vec(values, &[rows, cols]).unwrap();
        let tt = t.transpose().unwrap();
        let want: Vec<u32> = (0..cols)
            .flat_map(|j| (0..rows).map(move |i| (i * cols + j) as u32))
            .collect();
        assert_eq!(tt.to_vec::<u32>().unwrap(), want);
        let c = tt.to_contiguous(Order::C).unwrap();
        assert_eq!(c.as_slice::<u32>().unwrap(), &want[..]);
        let f = t.to_contiguous(Order::F).unwrap(); // F order of t is C order of its transpose
        let want_bytes: Vec<u8> = want.iter().flat_map(|v| v.to_ne_bytes()).collect();
        assert_eq!(memory(&f), &want_bytes[..]);
        let both = TensorView::concatenate(&[tt.clone(), tt]).unwrap();
        assert_eq!(
            both.as_slice::<u32>().unwrap(),
            &[&want[..], &want[..]].concat()[..]
        );
    }

    #[test]
    fn copy_thread_count_follows_the_threshold() {
        assert_eq!(threads_for(1000, 1 << 20), 1);
        assert_eq!(threads_for(0, 0), 1);
        assert_eq!(threads_for(1 << 20, 1 << 20), cores().min(2));
        assert!(threads_for(usize::MAX, 1) <= MAX_THREADS);
    }

    /// The measurement behind [`PARALLEL_MIN_BYTES`]: `cargo test --release --lib
    /// measure_parallel_threshold -- --ignored --nocapture` times fresh contiguous and
    /// transposed f32 copies (allocation included, as `to_contiguous` does) on 1 and 2 threads.
    #[test]
    #[ignore = "a timing, not a test"]
    fn measure_parallel_threshold() {
        use std::time::Instant;
        for kib in [512usize, 1024, 2048, 3072, 4096, 8192, 16384, 65536] {
            let n = kib * 256; // f32 elements
            let side = (n as f64).sqrt() as usize;
            let t =
                TensorView::from_vec((0..side * side).map(|x| x as f32).collect(), &[side, side])
                    .unwrap();
            let tt = t.transpose().unwrap();
            let mut line = format!("{kib:>6} KiB:");
            for (label, v) in [("contiguous", &t), ("transposed", &tt)] {
                for threads in [1, 2] {
                    let reps = (256 * 1024 / kib).clamp(12, 2000);
                    let mut best = f64::INFINITY;
                    for _ in 0..reps {
                        let begin = Instant::now();
                        let buffer = AlignedBuffer::new_uninit(v.nbytes()).unwrap();
                        let strides = c_strides(v.shape()).unwrap();
                        // SAFETY: the buffer holds the view's nbytes, covered by C strides.
                        unsafe { copy_elements_on(v, buffer.as_ptr(), &strides, threads) };
                        drop(std::hint::black_box(buffer));
                        best = best.min(begin.elapsed().as_secs_f64());
                    }
                    line += &format!("  {label} x{threads} {:>8.1} us", best * 1e6);
                }
            }
            println!("{line}");
        }
    }

    /// Why copies into fresh memory stop near 0.55x of numpy's single-threaded time on this
    /// 2-core VM (issue 16's `[::2, ::3]` and cast rows): `cargo test --release --lib
    /// measure_fresh_memory_floor -- --ignored --nocapture` times, best of 10,
    /// - the page faults of a fresh buffer (one byte written per page) on 1 and 2 threads: the
    ///   kernel zeroes every page it hands out, and that scales poorly across cores;
    /// - `[::2, ::3]` of a 384 MiB f32 array (64 MiB out) into fresh memory, as `to_contiguous`
    ///   does, and into memory already touched: what is left is the reading of the source;
    /// - the f32 -> f64 cast of 64 MiB (128 MiB out), and the faults of its 128 MiB alone.
    #[test]
    #[ignore = "a timing, not a test"]
    fn measure_fresh_memory_floor() {
        use std::time::Instant;
        fn best(label: &str, mut f: impl FnMut()) {
            let mut best = f64::INFINITY;
            for _ in 0..10 {
                let begin = Instant::now();
                f();
                best = best.min(begin.elapsed().as_secs_f64());
            }
            println!("{label:58} {:>8.2} ms", best * 1e3);
        }
        fn touch(len: usize, threads: usize) {
            let buffer = AlignedBuffer::new_uninit(len).unwrap();
            let bytes = &buffer;
            std::thread::scope(|s| {
                for t in 0..threads {
                    s.spawn(move || {
                        for page in (len * t / threads / 4096)..(len * (t + 1) / threads / 4096) {
                            // SAFETY: `page * 4096 < len`: a byte of the buffer's `len`, which
                            // outlives the scope; each thread writes its own pages.
                            unsafe { std::ptr::write_volatile(bytes.as_ptr().add(page * 4096), 1) };
                        }
                    });
                }
            });
            drop(std::hint::black_box(buffer));
        }
        for mib in [64usize, 128] {
            for threads in [1, 2] {
                best(
                    &format!("fresh {mib} MiB, page faults only, {threads} thread(s)"),
                    || touch(mib << 20, threads),
                );
            }
        }
        let (rows, cols) = (8192usize, 12288usize);
        let big = TensorView::from_vec(vec![1f32; rows * cols], &[rows, cols]).unwrap();
        let sliced = big
            .slice_each(&[crate::SliceArg::step(2), crate::SliceArg::step(3)])
            .unwrap();
        best(
            "[::2, ::3] -> C order, fresh 64 MiB (to_contiguous)",
            || {
                drop(std::hint::black_box(
                    sliced.to_contiguous(Order::C).unwrap(),
                ))
            },
        );
        let out = AlignedBuffer::new_uninit(sliced.nbytes()).unwrap();
        // SAFETY: `out` is a fresh, live allocation of `sliced.nbytes()` bytes, written whole.
        unsafe { std::ptr::write_bytes(out.as_ptr(), 0, sliced.nbytes()) };
        let strides = c_strides(sliced.shape()).unwrap();
        for threads in [1, 2] {
            best(
                &format!("[::2, ::3] -> C order, touched memory, {threads} thread(s)"),
                || {
                    // SAFETY: `sliced` is a host view of 4-byte elements; `out`, a separate
                    // allocation, holds its `nbytes` laid out by the C strides.
                    unsafe { copy_elements_on(&sliced, out.as_ptr(), &strides, threads) }
                },
            );
        }
        let x = TensorView::from_vec(vec![1f32; 16 << 20], &[16 << 20]).unwrap();
        best("cast 64 MiB f32 -> f64, fresh 128 MiB", || {
            drop(std::hint::black_box(x.cast(crate::DType::F64).unwrap()))
        });
    }
}
