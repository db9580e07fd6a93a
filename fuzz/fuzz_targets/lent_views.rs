//! Lent ndarray views under arbitrary view operations, reinterpretations and mutable access,
//! checked against the borrow rules: a column of a `bool` array is lent writably while its
//! sibling column stays borrowed by ndarray. Whatever sequence of slices, transposes,
//! `as_strided`, reinterpretations (bool <-> u8/i8), clones and writes runs inside the loan:
//! - every accepted view reaches only the lent column's elements (never the sibling's, never
//!   a gap), by address;
//! - mutable access is granted only to a unique view over memory typed as the element it
//!   writes, so every byte of the array stays a valid bool and the sibling is never written;
//! - nothing panics.
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use dlbridge::{DType, SliceArg, TensorView};
use libfuzzer_sys::fuzz_target;
use ndarray::{Array2, Axis, Ix1};

#[derive(Arbitrary, Debug)]
enum Op {
    Slice {
        start: i8,
        stop: i8,
        step: i8,
    },
    Transpose,
    Unsqueeze,
    Squeeze,
    AsStrided {
        shape: Vec<u8>,
        strides: Vec<i8>,
        offset: i8,
    },
    Reinterpret {
        to: u8,
    },
    Clone,
    DropClones,
    WriteSlice {
        index: u8,
        value: u8,
    },
    WriteArray {
        index: u8,
        value: u8,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    rows: u8,
    cols: u8,
    lent: u8,
    sibling: u8,
    ops: Vec<Op>,
}

/// The byte addresses a view reaches (element by element).
fn addresses(v: &TensorView) -> Vec<usize> {
    let size = v.itemsize().unwrap_or(1);
    let start = v.data_ptr() as isize;
    let mut out = Vec::with_capacity(v.numel() * size);
    let mut idx = vec![0usize; v.ndim()];
    for _ in 0..v.numel() {
        let off: isize = idx
            .iter()
            .zip(v.strides())
            .map(|(&i, &s)| i as isize * s * size as isize)
            .sum();
        for b in 0..size {
            out.push((start + off) as usize + b);
        }
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < v.shape()[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let rows = usize::from(input.rows % 6) + 1;
    let cols = usize::from(input.cols % 4) + 2;
    let lent = usize::from(input.lent) % cols;
    let sibling = (lent + 1 + usize::from(input.sibling) % (cols - 1)) % cols;
    let mut base = Array2::<bool>::from_shape_fn((rows, cols), |(i, j)| (i + j) % 2 == 0);
    let before = base.clone();
    let base_ptr = base.as_ptr() as usize;
    let allowed: HashSet<usize> = (0..rows).map(|i| base_ptr + i * cols + lent).collect();
    {
        let mut columns: Vec<_> = base.axis_iter_mut(Axis(1)).map(Some).collect();
        let column = columns[lent].take().unwrap();
        let mut sib = columns[sibling].take().unwrap();
        drop(columns);
        TensorView::with_array_view_mut(column, |t| {
            // Work on the lent view itself (moved out), so that it can be the sole handle.
            let placeholder = TensorView::from_vec(Vec::<u8>::new(), &[0]).unwrap();
            let mut current = std::mem::replace(t, placeholder);
            let mut clones = Vec::new();
            for op in input.ops.iter().take(16) {
                let next = match op {
                    Op::Slice { start, stop, step } if current.ndim() > 0 => current.slice(
                        0,
                        SliceArg {
                            start: Some((*start).into()),
                            stop: Some((*stop).into()),
                            step: (*step).into(),
                        },
                    ),
                    Op::Transpose => current.transpose(),
                    Op::Unsqueeze => current.unsqueeze(0),
                    Op::Squeeze => Ok(current.squeeze()),
                    Op::AsStrided {
                        shape,
                        strides,
                        offset,
                    } => {
                        let k = shape.len().min(strides.len()).min(3);
                        let shape: Vec<usize> =
                            shape[..k].iter().map(|&s| usize::from(s % 8)).collect();
                        let strides: Vec<isize> =
                            strides[..k].iter().map(|&s| isize::from(s)).collect();
                        current.as_strided(&shape, &strides, (*offset).into())
                    }
                    Op::Reinterpret { to } => current.reinterpret(match to % 3 {
                        0 => DType::BOOL,
                        1 => DType::U8,
                        _ => DType::I8,
                    }),
                    Op::Clone => {
                        clones.push(current.clone());
                        continue;
                    }
                    Op::DropClones => {
                        clones.clear();
                        continue;
                    }
                    Op::WriteSlice { index, value } => {
                        let dtype = current.dtype();
                        let n = current.numel();
                        if n > 0 {
                            let i = usize::from(*index) % n;
                            let _ = match dtype {
                                DType::BOOL => current
                                    .as_mut_slice::<bool>()
                                    .map(|s| s[i] = value % 2 == 1),
                                DType::U8 => current.as_mut_slice::<u8>().map(|s| s[i] = *value),
                                _ => current.as_mut_slice::<i8>().map(|s| s[i] = *value as i8),
                            };
                        }
                        continue;
                    }
                    Op::WriteArray { index, value } => {
                        if current.ndim() == 1
                            && current.numel() > 0
                            && current.dtype() == DType::BOOL
                        {
                            let i = usize::from(*index) % current.numel();
                            if let Ok(mut a) = current.as_array_mut::<bool, Ix1>() {
                                a[i] = value % 2 == 1;
                            }
                        }
                        continue;
                    }
                    _ => continue,
                };
                let Ok(next) = next else { continue };
                if next.numel() > 1 << 12 {
                    continue;
                }
                for a in addresses(&next) {
                    assert!(
                        allowed.contains(&a),
                        "a view reaches {a:#x}, outside the lent column"
                    );
                }
                // Reading is always allowed (through the copy kernel, not references).
                let _ = next.to_contiguous(dlbridge::Order::C);
                current = next;
            }
        })
        .unwrap();
        sib[0] ^= false; // the sibling borrow is live across the whole loan
    }
    let raw = base.as_ptr().cast::<u8>();
    for k in 0..rows * cols {
        // SAFETY: reading the array's bytes as u8 (valid for any bool, and for any byte).
        let byte = unsafe { *raw.add(k) };
        assert!(byte <= 1, "byte {k} holds {byte}: not a valid bool");
        let (i, j) = (k / cols, k % cols);
        if j != lent {
            assert_eq!(
                byte != 0,
                before[(i, j)],
                "element ({i}, {j}) outside the loan changed"
            );
        }
    }
});
