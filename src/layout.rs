//! Shape and stride arithmetic, shared by the descriptor, the views, the copy kernel and the
//! integrations: element counts and byte spans (every step overflow-checked), dense strides in
//! C and F order, contiguity, gap-free coverage and alignment. Pure functions of shapes and
//! strides: no memory is touched.

use crate::{Error, Result};

/// Whether `address` is a multiple of `align` (a power of two), or there is nothing to align
/// (`numel == 0`): the test every typed access and every zero-copy export makes.
pub(crate) fn is_aligned(address: usize, align: usize, numel: usize) -> bool {
    numel == 0 || address.is_multiple_of(align)
}

/// The layout facts `from_parts` computes once: element count and reached byte range relative
/// to the first element.
pub(crate) struct Span {
    pub(crate) numel: usize,
    /// Lowest and one-past-highest byte offset reached, relative to the first element.
    pub(crate) bytes: Option<(isize, isize)>,
}

/// What [`quick_span`] finds for a non-empty layout whose numbers all fit.
pub(crate) struct QuickSpan {
    pub(crate) span: Span,
    /// The elements are C-contiguous (so they cover their span without gaps).
    pub(crate) c_dense: bool,
}

/// [`layout_span`] and the C-contiguity test in one pass over the axes, for the common case:
/// at least one element, every byte stride and reach fitting in `isize`. `None` otherwise (the
/// caller then takes the general functions, which also name what overflowed).
#[inline]
pub(crate) fn quick_span(shape: &[usize], strides: &[isize], itemsize: usize) -> Option<QuickSpan> {
    let item = isize::try_from(itemsize).ok()?;
    let (mut numel, mut lo, mut hi) = (1usize, 0isize, 0isize);
    let mut c_dense = true;
    let mut expected: isize = 1;
    for (&n, &s) in shape.iter().zip(strides).rev() {
        let step = s.checked_mul(item)?;
        step.checked_abs()?;
        let last = isize::try_from(n.checked_sub(1)?).ok()?;
        let reach = last.checked_mul(step)?;
        if reach < 0 {
            lo = lo.checked_add(reach)?;
        } else {
            hi = hi.checked_add(reach)?;
        }
        numel = numel.checked_mul(n)?;
        if n != 1 {
            c_dense &= s == expected;
            expected = expected.saturating_mul(n as isize);
        }
    }
    if numel > isize::MAX as usize {
        return None;
    }
    let end = hi.checked_add(item)?;
    Some(QuickSpan {
        span: Span {
            numel,
            bytes: Some((lo, end)),
        },
        c_dense,
    })
}

/// Call `f(offset)` with the element offset (in elements, relative to the first element) of
/// every element of a layout, in row-major order, until `f` returns `false`; nothing for an
/// empty layout. The offsets are those of a checked layout, so they fit in `isize`.
pub(crate) fn for_each_offset(
    shape: &[usize],
    strides: &[isize],
    mut f: impl FnMut(isize) -> bool,
) {
    if shape.contains(&0) {
        return;
    }
    let Some((&inner_n, outer)) = shape.split_last() else {
        f(0); // 0-d: one element
        return;
    };
    let inner_s = strides[outer.len()];
    // An odometer over the outer axes, on the stack (a checked layout has at most MAX_NDIM).
    let mut odometer = [0usize; crate::MAX_NDIM];
    let index = &mut odometer[..outer.len()];
    let mut base = 0isize;
    loop {
        let mut offset = base;
        for _ in 0..inner_n {
            if !f(offset) {
                return;
            }
            offset = offset.wrapping_add(inner_s);
        }
        // The next row.
        let mut axis = outer.len();
        loop {
            if axis == 0 {
                return;
            }
            axis -= 1;
            index[axis] += 1;
            base = base.wrapping_add(strides[axis]);
            if index[axis] < outer[axis] {
                break;
            }
            base = base.wrapping_sub(strides[axis].wrapping_mul(outer[axis] as isize));
            index[axis] = 0;
        }
    }
}

/// Element count and reached byte range of a layout, every step overflow-checked.
pub(crate) fn layout_span(shape: &[usize], strides: &[isize], itemsize: usize) -> Result<Span> {
    let mut numel: usize = 1;
    for &n in shape {
        numel = numel
            .checked_mul(n)
            .ok_or_else(|| Error::Overflow("element count"))?;
    }
    if numel > isize::MAX as usize {
        return Err(Error::Overflow("element count"));
    }
    if numel == 0 {
        // An empty tensor reaches nothing, but its non-zero extents must still multiply to a
        // count that fits (numpy's rule): consumers such as ndarray offset pointers by them.
        let mut nonzero: usize = 1;
        for &n in shape {
            nonzero = nonzero
                .checked_mul(n.max(1))
                .filter(|&c| c <= isize::MAX as usize)
                .ok_or_else(|| Error::Overflow("element count of the non-empty axes"))?;
        }
        return Ok(Span { numel, bytes: None });
    }
    let item = isize::try_from(itemsize).map_err(|_| Error::Overflow("itemsize"))?;
    let (mut lo, mut hi) = (0isize, 0isize);
    for (&n, &s) in shape.iter().zip(strides) {
        let last = isize::try_from(n - 1).map_err(|_| Error::Overflow("shape"))?;
        let reach = last
            .checked_mul(s)
            .and_then(|r| r.checked_mul(item))
            .ok_or_else(|| Error::Overflow("byte span"))?;
        if reach < 0 {
            lo = lo
                .checked_add(reach)
                .ok_or_else(|| Error::Overflow("byte span"))?;
        } else {
            hi = hi
                .checked_add(reach)
                .ok_or_else(|| Error::Overflow("byte span"))?;
        }
    }
    let end = hi
        .checked_add(item)
        .ok_or_else(|| Error::Overflow("byte span"))?;
    Ok(Span {
        numel,
        bytes: Some((lo, end)),
    })
}

/// C-contiguous strides (in elements) for `shape`, or an overflow error.
pub(crate) fn c_strides(shape: &[usize]) -> Result<Vec<isize>> {
    let mut strides = vec![0; shape.len()];
    fill_c_strides(shape, &mut strides)?;
    Ok(strides)
}

/// [`c_strides`] written into `out`, one per axis of `shape`, without allocating. An empty
/// tensor reaches no memory, so when its extents overflow the running product, all-zero
/// strides describe it as well.
pub(crate) fn fill_c_strides(shape: &[usize], out: &mut [isize]) -> Result<()> {
    debug_assert_eq!(shape.len(), out.len());
    let mut acc: Option<isize> = Some(1);
    for (&n, stride) in shape.iter().zip(out.iter_mut()).rev() {
        *stride = acc.unwrap_or(0);
        acc = acc.and_then(|a| a.checked_mul(isize::try_from(n.max(1)).ok()?));
    }
    if acc.is_none() {
        if !shape.contains(&0) {
            return Err(Error::Overflow("strides"));
        }
        out.fill(0);
    }
    Ok(())
}

/// F-contiguous strides (in elements) for `shape`, or an overflow error.
pub(crate) fn f_strides(shape: &[usize]) -> Result<Vec<isize>> {
    dense_strides(shape.iter())
}

/// Dense strides, fastest axis first. An empty tensor reaches no memory, so when its extents
/// overflow the running product, all-zero strides describe it as well.
fn dense_strides<'a>(fastest_first: impl Iterator<Item = &'a usize> + Clone) -> Result<Vec<isize>> {
    let mut strides = Vec::new();
    let mut acc: Option<isize> = Some(1);
    for &n in fastest_first.clone() {
        strides.push(acc.unwrap_or(0));
        acc = acc.and_then(|a| a.checked_mul(isize::try_from(n.max(1)).ok()?));
    }
    if acc.is_none() {
        if fastest_first.clone().any(|&n| n == 0) {
            return Ok(vec![0; strides.len()]);
        }
        return Err(Error::Overflow("strides"));
    }
    Ok(strides)
}

/// Contiguity test that ignores dimensions of extent 1 (as numpy does) and is true for empty
/// tensors. `dims` yields (extent, stride) from the fastest-varying dimension outwards.
pub(crate) fn dense<'a>(
    mut dims: impl Iterator<Item = (&'a usize, &'a isize)>,
    numel: usize,
) -> bool {
    if numel == 0 {
        return true;
    }
    let mut expected: isize = 1;
    dims.all(|(&n, &s)| {
        if n == 1 {
            return true;
        }
        let ok = s == expected;
        expected = expected.saturating_mul(n as isize);
        ok
    })
}

/// Whether the elements of a layout cover every byte of its span (no gaps between them), so
/// that an owner known to hold the elements holds the whole span. Repeated elements (zero
/// strides, extent-1 axes) are fine; axes are taken by increasing step.
pub(crate) fn covers_span(shape: &[usize], strides: &[isize], itemsize: isize) -> bool {
    if shape.contains(&0) {
        return true;
    }
    // The common case, without allocating or sorting: C-contiguous elements.
    let numel = shape
        .iter()
        .try_fold(1usize, |count, &n| count.checked_mul(n));
    if numel.is_some_and(|numel| dense(shape.iter().zip(strides).rev(), numel)) {
        return true;
    }
    let mut axes: Vec<(usize, usize)> = shape
        .iter()
        .zip(strides)
        .filter(|&(&n, &s)| n > 1 && s != 0)
        .map(|(&n, &s)| (n, s.unsigned_abs()))
        .collect();
    axes.sort_unstable_by_key(|&(_, s)| s);
    let mut covered = itemsize.unsigned_abs();
    for (n, step) in axes {
        // Each step must land within (or right after) the bytes covered so far.
        if step > covered {
            return false;
        }
        covered = step.saturating_mul(n - 1).saturating_add(covered);
    }
    true
}

/// `Ok` when `order` holds each of `0..ndim` exactly once.
pub(crate) fn check_permutation(order: &[usize], ndim: usize) -> Result<()> {
    let mut seen = vec![false; ndim];
    let valid = order.len() == ndim
        && order
            .iter()
            .all(|&a| a < ndim && !std::mem::replace(&mut seen[a], true));
    if valid {
        Ok(())
    } else {
        Err(Error::NotAPermutation {
            order: order.to_vec(),
            ndim,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{covers_span, for_each_offset, layout_span, quick_span};

    #[test]
    fn offsets_are_visited_in_row_major_order() {
        let cases: &[(&[usize], &[isize])] = &[
            (&[], &[]),
            (&[0, 3], &[3, 1]),
            (&[4], &[-2]),
            (&[2, 3], &[1, 2]),
            (&[2, 1, 3], &[3, 99, -1]),
            (&[3, 2], &[0, 5]),
        ];
        for &(shape, strides) in cases {
            let mut expected = Vec::new();
            let numel: usize = shape.iter().product();
            for flat in 0..numel {
                let (mut rest, mut offset) = (flat, 0isize);
                for (&n, &s) in shape.iter().zip(strides).rev() {
                    offset += (rest % n) as isize * s;
                    rest /= n;
                }
                expected.push(offset);
            }
            let mut seen = Vec::new();
            for_each_offset(shape, strides, |o| {
                seen.push(o);
                true
            });
            assert_eq!(seen, expected, "{shape:?} {strides:?}");
        }
        let mut calls = 0;
        for_each_offset(&[4, 4], &[4, 1], |_| {
            calls += 1;
            calls < 6
        });
        assert_eq!(calls, 6, "stops when asked");
    }

    #[test]
    fn quick_span_agrees_with_the_general_functions() {
        let cases: &[(&[usize], &[isize])] = &[
            (&[], &[]),
            (&[5], &[1]),
            (&[5], &[-1]),
            (&[3, 4], &[4, 1]),
            (&[3, 4], &[1, 3]),
            (&[3, 4], &[-8, 2]),
            (&[2, 1, 3], &[3, 99, 1]),
            (&[4, 3], &[0, 1]),
            (&[1, 1], &[7, -7]),
        ];
        for &(shape, strides) in cases {
            for itemsize in [1, 2, 8, 16] {
                let quick = quick_span(shape, strides, itemsize).expect("non-empty, fits");
                let general = layout_span(shape, strides, itemsize).unwrap();
                assert_eq!(quick.span.numel, general.numel, "{shape:?} {strides:?}");
                assert_eq!(quick.span.bytes, general.bytes, "{shape:?} {strides:?}");
                if quick.c_dense {
                    assert!(covers_span(shape, strides, itemsize as isize));
                }
            }
        }
        // Empty, overflowing and over-long layouts go to the general path.
        assert!(quick_span(&[0, 3], &[3, 1], 4).is_none());
        assert!(quick_span(&[2], &[isize::MAX], 2).is_none());
        assert!(quick_span(&[usize::MAX / 2, 4], &[4, 1], 1).is_none());
    }
}
