//! Arbitrary sequences of view operations on an iota tensor, checked against a naive index
//! computation: every accepted view holds exactly the elements its metadata names, and
//! every refused one is refused with an error, never a panic.
#![no_main]

use arbitrary::Arbitrary;
use dlbridge::{Order, SliceArg, TensorView};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Slice {
        axis: u8,
        start: i8,
        stop: i8,
        step: i8,
    },
    Select {
        axis: u8,
        index: u8,
    },
    Permute {
        seed: u64,
    },
    Transpose,
    Reshape {
        dims: Vec<i8>,
    },
    Broadcast {
        lead: u8,
        dims: Vec<u8>,
    },
    Squeeze,
    Unsqueeze {
        axis: u8,
    },
    AsStrided {
        shape: Vec<u8>,
        strides: Vec<i8>,
        offset: i8,
    },
    Copy {
        fortran: bool,
    },
}

fn naive(view: &TensorView, base: &TensorView) -> Vec<i32> {
    let first = (view.data_ptr() as isize - base.data_ptr() as isize) / 4;
    let mut out = Vec::with_capacity(view.numel());
    let mut idx = vec![0usize; view.ndim()];
    for _ in 0..view.numel() {
        let off: isize = idx
            .iter()
            .zip(view.strides())
            .map(|(&i, &s)| i as isize * s)
            .sum();
        out.push((first + off) as i32);
        for d in (0..idx.len()).rev() {
            idx[d] += 1;
            if idx[d] < view.shape()[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (n, ops) = input;
    let n = usize::from(n) + 1;
    let base = TensorView::from_vec((0..n as i32).collect(), &[n]).unwrap();
    let mut v = base.clone();
    for op in ops.into_iter().take(12) {
        let ndim = v.ndim().max(1);
        let next = match op {
            Op::Slice {
                axis,
                start,
                stop,
                step,
            } => v.slice(
                usize::from(axis) % ndim,
                SliceArg {
                    start: Some(start.into()),
                    stop: Some(stop.into()),
                    step: step.into(),
                },
            ),
            Op::Select { axis, index } => v.select(usize::from(axis) % ndim, index.into()),
            Op::Permute { seed } => {
                let mut order: Vec<usize> = (0..v.ndim()).collect();
                for i in (1..order.len()).rev() {
                    order.swap(i, (seed as usize >> (i % 8)) % (i + 1));
                }
                v.permute(&order)
            }
            Op::Transpose => v.transpose(),
            // A negative byte asks for an inferred extent; more than one of them must be refused.
            Op::Reshape { dims } => v.reshape_infer(
                &dims
                    .iter()
                    .take(6)
                    .map(|&d| usize::try_from(d).ok())
                    .collect::<Vec<_>>(),
            ),
            Op::Broadcast { lead, dims } => {
                let mut shape: Vec<usize> = (0..lead % 3).map(|k| usize::from(k) + 1).collect();
                shape.extend(
                    v.shape()
                        .iter()
                        .zip(dims.iter().chain(std::iter::repeat(&1)))
                        .map(|(&s, &d)| if s == 1 { usize::from(d % 4) } else { s }),
                );
                v.broadcast_to(&shape)
            }
            Op::Squeeze => Ok(v.squeeze()),
            Op::Unsqueeze { axis } => v.unsqueeze(usize::from(axis) % (v.ndim() + 1)),
            Op::AsStrided {
                shape,
                strides,
                offset,
            } => {
                let k = shape.len().min(strides.len()).min(5);
                let shape: Vec<usize> = shape[..k].iter().map(|&s| usize::from(s % 8)).collect();
                let strides: Vec<isize> = strides[..k].iter().map(|&s| isize::from(s)).collect();
                v.as_strided(&shape, &strides, offset.into())
            }
            Op::Copy { fortran } => v.to_contiguous(if fortran { Order::F } else { Order::C }),
        };
        let Ok(next) = next else { continue };
        if next.numel() > 1 << 16 {
            continue;
        }
        let values = next.to_vec::<i32>().unwrap();
        if !next.is_copied() && !v.is_copied() {
            assert_eq!(values, naive(&next, &base));
            assert!(values.iter().all(|&x| x >= 0 && (x as usize) < n));
        }
        v = next;
    }
});
