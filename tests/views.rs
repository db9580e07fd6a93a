//! View algebra checked element by element against a naive index computation.

use dlbridge::{DType, Device, Error, Flags, Order, Owner, Parts, SliceArg, TensorView};
use proptest::prelude::*;

/// Base memory whose every element equals its own index, so values reveal addresses.
fn iota(n: usize) -> TensorView {
    TensorView::from_vec((0..n as i64).collect(), &[n]).unwrap()
}

/// Every index of `shape` in row-major order.
fn indices(shape: &[usize]) -> Vec<Vec<usize>> {
    let mut out = vec![vec![]];
    for &n in shape {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                (0..n).map(move |i| {
                    let mut p = prefix.clone();
                    p.push(i);
                    p
                })
            })
            .collect();
    }
    out
}

/// The values a view must hold, computed from its own metadata over an iota base: the
/// element at index I is the base index `first + sum(I_k * stride_k)`.
fn naive(view: &TensorView, base: &TensorView) -> Vec<i64> {
    let first = (view.data_ptr() as isize - base.data_ptr() as isize) / 8;
    indices(view.shape())
        .iter()
        .map(|idx| {
            first as i64
                + idx
                    .iter()
                    .zip(view.strides())
                    .map(|(&i, &s)| i as i64 * s as i64)
                    .sum::<i64>()
        })
        .collect()
}

fn check(view: &TensorView, base: &TensorView) {
    assert_eq!(view.to_vec::<i64>().unwrap(), naive(view, base), "{view:?}");
    let c = view.to_contiguous(Order::C).unwrap();
    assert!(c.is_copied() && c.is_c_contiguous());
    assert_eq!(c.as_slice::<i64>().unwrap(), naive(view, base).as_slice());
    let f = view.to_contiguous(Order::F).unwrap();
    assert!(f.is_f_contiguous());
    assert_eq!(f.to_vec::<i64>().unwrap(), naive(view, base));
}

#[test]
fn slicing_with_steps_matches_python() {
    let base = iota(10);
    type Case = (Option<isize>, Option<isize>, isize, &'static [i64]);
    let cases: [Case; 8] = [
        (None, None, 1, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
        (None, None, -1, &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        (Some(2), Some(8), 3, &[2, 5]),
        (Some(-3), None, 1, &[7, 8, 9]),
        (Some(8), Some(1), -3, &[8, 5, 2]),
        (Some(100), None, 1, &[]),
        (None, Some(-100), -1, &[9, 8, 7, 6, 5, 4, 3, 2, 1, 0]),
        (Some(5), Some(5), 1, &[]),
    ];
    for (start, stop, step, want) in cases {
        let v = base.slice(0, SliceArg { start, stop, step }).unwrap();
        assert_eq!(
            v.to_vec::<i64>().unwrap(),
            want,
            "{start:?}:{stop:?}:{step}"
        );
    }
    assert!(matches!(
        base.slice(0, SliceArg::step(0)),
        Err(Error::InvalidStep(0))
    ));
    assert!(base.slice(1, SliceArg::FULL).is_err());
}

#[test]
fn multi_axis_views_match_naive_indexing() {
    let base = iota(2 * 3 * 4 * 5);
    let t = base.reshape(&[2, 3, 4, 5]).unwrap();
    let views = vec![
        t.clone(),
        t.transpose().unwrap(),
        t.permute(&[2, 0, 3, 1]).unwrap(),
        t.slice_each(&[
            SliceArg::step(-1),
            SliceArg::range(1, 3),
            SliceArg::step(2),
            SliceArg {
                start: Some(4),
                stop: None,
                step: -2,
            },
        ])
        .unwrap(),
        t.select(2, 3).unwrap(),
        t.swap_axes(0, 3).unwrap(),
        t.slice(1, SliceArg::range(0, 1))
            .unwrap()
            .broadcast_to(&[7, 2, 3, 4, 5])
            .unwrap(),
        t.unsqueeze(2).unwrap().unsqueeze(5).unwrap(),
        t.slice(0, SliceArg::range(1, 2)).unwrap().squeeze(),
        t.slice(2, SliceArg::range(2, 2)).unwrap(),
        t.reshape_infer(&[Some(6), None])
            .unwrap()
            .transpose()
            .unwrap(),
    ];
    for v in &views {
        check(v, &base);
    }
}

#[test]
fn zero_dimensional_and_empty() {
    let base = iota(6);
    let scalar = base.select(0, 4).unwrap();
    assert_eq!(scalar.ndim(), 0);
    assert_eq!(scalar.numel(), 1);
    assert_eq!(scalar.to_vec::<i64>().unwrap(), vec![4]);
    assert!(scalar.is_c_contiguous() && scalar.is_f_contiguous());
    let empty = base.slice(0, SliceArg::range(3, 3)).unwrap();
    assert_eq!(empty.numel(), 0);
    assert!(empty.byte_span().is_empty());
    assert_eq!(empty.to_contiguous(Order::C).unwrap().numel(), 0);
    let e2 = empty.reshape(&[0, 5, 7]).unwrap();
    assert_eq!(e2.shape(), &[0, 5, 7]);
}

#[test]
fn reshape_without_copy_or_error() {
    let t = iota(24).reshape(&[2, 3, 4]).unwrap();
    assert_eq!(t.reshape(&[4, 6]).unwrap().strides(), &[6, 1]);
    assert_eq!(t.reshape(&[24]).unwrap().data_ptr(), t.data_ptr());
    // Splitting an axis of a strided view keeps the step.
    let every_other = iota(48).slice(0, SliceArg::step(2)).unwrap();
    assert_eq!(every_other.reshape(&[4, 6]).unwrap().strides(), &[12, 2]);
    // Transposed data cannot be flattened without a copy.
    assert!(matches!(
        t.transpose().unwrap().reshape(&[24]),
        Err(Error::NotContiguous(_))
    ));
    assert!(matches!(
        t.reshape_infer(&[Some(5), None]),
        Err(Error::InvalidShape(_))
    ));
    assert!(matches!(
        t.reshape_infer(&[None, None]),
        Err(Error::InvalidShape(_))
    ));
    assert!(matches!(t.reshape(&[5, 5]), Err(Error::InvalidShape(_))));
    assert!(matches!(
        t.reshape(&[usize::MAX, 2]),
        Err(Error::Overflow(_))
    ));
    // numpy refuses to infer an extent next to a zero one: any value would do.
    assert!(matches!(
        t.reshape_infer(&[Some(0), None]),
        Err(Error::InvalidShape(_))
    ));
    // Size-1 axes with odd strides do not block reshapes.
    let odd = t.as_strided(&[1, 24], &[99, 1], 0).unwrap();
    assert_eq!(odd.reshape(&[2, 12]).unwrap().strides(), &[12, 1]);
}

#[test]
fn contiguity_ignores_size_one_strides() {
    let t = iota(12).reshape(&[3, 4]).unwrap();
    let col = t.slice(1, SliceArg::range(0, 1)).unwrap(); // shape (3,1) strides (4,1)
    assert!(!col.is_c_contiguous());
    let row = t.slice(0, SliceArg::range(1, 2)).unwrap(); // shape (1,4) strides (4,1)
    assert!(row.is_c_contiguous());
    // The stride of an extent-1 axis reaches nothing, so it is never out of bounds.
    assert!(t
        .as_strided(&[1, 4], &[1000, 1], 0)
        .unwrap()
        .is_c_contiguous());
    let odd = t.as_strided(&[1, 3], &[7, 1], 0).unwrap();
    assert!(odd.is_c_contiguous() && odd.is_f_contiguous()); // as numpy: (1, n) is both
}

#[test]
fn as_strided_sliding_windows_and_bounds() {
    let base = iota(10);
    let windows = base.as_strided(&[8, 3], &[1, 1], 0).unwrap();
    check(&windows, &base);
    assert!(windows.has_internal_overlap());
    assert!(matches!(
        base.as_strided(&[9, 3], &[1, 1], 0),
        Err(Error::OutOfBounds(_))
    ));
    assert!(matches!(
        base.as_strided(&[2], &[1], -1),
        Err(Error::OutOfBounds(_))
    ));
    // A sub-view may re-reach its owner's whole extent, as numpy's stride tricks do.
    let tail = base.slice(0, SliceArg::range(8, 10)).unwrap();
    let back = tail.as_strided(&[10], &[1], -8).unwrap();
    assert_eq!(back.to_vec::<i64>().unwrap(), (0..10).collect::<Vec<_>>());
    assert!(matches!(
        base.as_strided(&[2], &[isize::MAX], 0),
        Err(Error::Overflow(_))
    ));
}

#[test]
fn reinterpret_where_sizes_agree() {
    let t = TensorView::from_vec(vec![1.0f32, -2.0, 0.5, 8.0], &[2, 2]).unwrap();
    let bits = t.reinterpret(DType::U32).unwrap();
    assert_eq!(
        bits.to_vec::<u32>().unwrap(),
        vec![
            1.0f32.to_bits(),
            (-2.0f32).to_bits(),
            0.5f32.to_bits(),
            8.0f32.to_bits()
        ]
    );
    let bytes = t.reinterpret(DType::U8).unwrap();
    assert_eq!(bytes.shape(), &[2, 8]);
    assert_eq!(bytes.strides(), &[8, 1]);
    let wide = t.reinterpret(DType::F64).unwrap();
    assert_eq!(wide.shape(), &[2, 1]);
    assert!(t.transpose().unwrap().reinterpret(DType::F64).is_err());
    let three = TensorView::from_vec(vec![0u8; 6], &[2, 3]).unwrap();
    assert!(three.reinterpret(DType::U16).is_err());
}

#[test]
fn typed_access_rules() {
    let mut t = TensorView::from_vec(vec![1i32, 2, 3, 4], &[4]).unwrap();
    assert!(matches!(
        t.as_slice::<f32>(),
        Err(Error::DtypeMismatch { .. })
    ));
    t.as_mut_slice::<i32>().unwrap()[0] = 10;
    let view = t.clone();
    assert!(matches!(t.as_mut_slice::<i32>(), Err(Error::NotUnique(1))));
    drop(view);
    assert_eq!(t.as_mut_slice::<i32>().unwrap(), &[10, 2, 3, 4]);
    let mut ro = t.into_read_only();
    assert!(matches!(ro.as_mut_slice::<i32>(), Err(Error::ReadOnly(_))));
    let arc: std::sync::Arc<[u8]> = vec![1u8, 2].into();
    let mut shared = TensorView::from_arc_slice(arc, &[2]).unwrap();
    assert!(shared.is_read_only());
    assert!(shared.as_mut_slice::<u8>().is_err());
    let strided = TensorView::from_vec(vec![0u8; 4], &[4])
        .unwrap()
        .slice(0, SliceArg::step(2))
        .unwrap();
    assert!(matches!(
        strided.as_slice::<u8>(),
        Err(Error::NotContiguous(_))
    ));
}

#[test]
fn misaligned_and_invalid_bool_are_errors() {
    let bytes = TensorView::from_vec(vec![0u8; 20], &[20]).unwrap();
    // An offset that is certainly not a multiple of 4 bytes, wherever the Vec landed.
    let k = if (bytes.data_ptr() as usize + 1).is_multiple_of(4) {
        2
    } else {
        1
    };
    let shifted = bytes
        .slice(0, SliceArg::range(k, k + 16))
        .unwrap()
        .reinterpret(DType::F32)
        .unwrap();
    assert!(matches!(
        shifted.as_slice::<f32>(),
        Err(Error::Misaligned { .. })
    ));
    assert!(matches!(
        shifted.to_vec::<f32>(),
        Err(Error::Misaligned { .. })
    ));
    // The copy kernel handles misaligned input and yields an aligned copy.
    let aligned = shifted.to_contiguous(Order::C).unwrap();
    assert_eq!(aligned.as_slice::<f32>().unwrap(), &[0.0; 4]);
    let flags = TensorView::from_vec(vec![0u8, 1, 2], &[3])
        .unwrap()
        .reinterpret(DType::BOOL)
        .unwrap();
    assert!(flags.as_slice::<bool>().is_err());
    let good = TensorView::from_vec(vec![true, false], &[2]).unwrap();
    assert_eq!(good.as_slice::<bool>().unwrap(), &[true, false]);
}

#[test]
fn byteswapped_copy_into_native_order() {
    let big: Vec<u8> = [1u32, 2, 0xdeadbeef]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let raw = TensorView::from_vec(big, &[12])
        .unwrap()
        .reinterpret(DType::U32)
        .unwrap();
    let native = raw.to_contiguous_byteswapped(Order::C).unwrap();
    assert!(native.is_copied());
    assert_eq!(native.as_slice::<u32>().unwrap(), &[1, 2, 0xdeadbeef]);
    // Complex numbers swap each part separately.
    let parts: Vec<u8> = [1.5f32, -2.0]
        .iter()
        .flat_map(|v| v.to_be_bytes())
        .collect();
    let c = TensorView::from_vec(parts, &[8])
        .unwrap()
        .reinterpret(DType::C64)
        .unwrap();
    let c = c.to_contiguous_byteswapped(Order::C).unwrap();
    assert_eq!(
        c.as_slice::<num_complex::Complex<f32>>().unwrap()[0],
        num_complex::Complex::new(1.5, -2.0)
    );
}

/// Raw parts over a real allocation, for metadata tests.
fn parts_over(buf: &[u8], shape: Vec<usize>, strides: Option<Vec<isize>>, dtype: DType) -> Parts {
    let parts = Parts::contiguous(buf.as_ptr() as *mut u8, shape, dtype);
    match strides {
        Some(strides) => parts.with_strides(strides),
        None => parts,
    }
}

#[test]
fn bad_metadata_is_refused() {
    let buf = vec![0u8; 64];
    let make = |p: Parts| {
        // SAFETY: the tests only build descriptors over `buf`, which outlives them, and never
        // dereference them beyond what `from_parts` validated.
        unsafe { TensorView::from_parts(p, Owner::new(())) }
    };
    let huge = usize::MAX / 2;
    assert!(matches!(
        make(parts_over(&buf, vec![huge, 4], None, DType::U8)),
        Err(Error::Overflow(_))
    ));
    assert!(matches!(
        make(parts_over(
            &buf,
            vec![3],
            Some(vec![isize::MAX / 2]),
            DType::F64
        )),
        Err(Error::Overflow(_))
    ));
    assert!(matches!(
        make(parts_over(&buf, vec![2, 2], Some(vec![1]), DType::U8)),
        Err(Error::ArgumentCount {
            what: "strides",
            given: 1,
            ndim: 2
        })
    ));
    assert!(matches!(
        make(parts_over(&buf, vec![1; 65], None, DType::U8)),
        Err(Error::TooManyDims { ndim: 65, .. })
    ));
    let mut null = parts_over(&buf, vec![3], None, DType::U8);
    null.data = std::ptr::null_mut();
    assert!(matches!(make(null.clone()), Err(Error::NullData(3))));
    null.shape = vec![0, 3];
    assert!(
        make(null).is_ok(),
        "a null pointer is fine for an empty tensor"
    );
    let mut outside = parts_over(&buf, vec![65], None, DType::U8);
    outside.extent = Some(buf.as_ptr() as usize..buf.as_ptr() as usize + 64);
    assert!(matches!(make(outside), Err(Error::OutOfBounds(_))));
    let mut wrap = parts_over(&buf, vec![2], None, DType::U8);
    wrap.byte_offset = usize::MAX;
    assert!(matches!(make(wrap), Err(Error::Overflow(_))));
    // Bit-packed float4 must be C-contiguous; padded float4 may be strided.
    let f4 = DType::new(17, 4, 1).unwrap();
    assert!(matches!(
        make(parts_over(&buf, vec![4, 2], Some(vec![1, 4]), f4)),
        Err(Error::NotContiguous(_))
    ));
    let packed = make(parts_over(&buf, vec![3, 5], None, f4)).unwrap();
    assert_eq!(packed.nbytes(), 8);
    assert_eq!(packed.byte_span().len(), 8);
    assert!(packed.slice(0, SliceArg::step(2)).is_err());
    assert_eq!(packed.reshape(&[15]).unwrap().shape(), &[15]);
    assert_eq!(packed.to_contiguous(Order::C).unwrap().nbytes(), 8);
    let mut padded = parts_over(&buf, vec![4, 2], Some(vec![1, 4]), f4);
    padded.flags = Flags::default().with_subbyte_padded(true);
    assert_eq!(make(padded).unwrap().itemsize(), Some(1));
    // Devices other than host memory cannot be read.
    let mut gpu = parts_over(&buf, vec![4], None, DType::U8);
    gpu.device = Device {
        kind: dlbridge::DeviceType::CUDA,
        id: 0,
    };
    let gpu = make(gpu).unwrap();
    assert!(matches!(
        gpu.to_vec::<u8>(),
        Err(Error::UnsupportedDevice { .. })
    ));
    assert!(matches!(
        gpu.to_contiguous(Order::C),
        Err(Error::UnsupportedDevice { .. })
    ));
}

#[test]
fn overlap_queries() {
    let base = iota(10);
    let a = base.slice(0, SliceArg::range(0, 5)).unwrap();
    let b = base.slice(0, SliceArg::range(5, 10)).unwrap();
    let c = base.slice(0, SliceArg::range(4, 6)).unwrap();
    assert!(!a.may_overlap(&b));
    assert!(a.may_overlap(&c) && b.may_overlap(&c));
    assert!(!iota(3).may_overlap(&base));
    assert!(base.broadcast_to(&[2, 10]).unwrap().has_internal_overlap());
    assert!(!base
        .reshape(&[2, 5])
        .unwrap()
        .transpose()
        .unwrap()
        .has_internal_overlap());
}

#[test]
fn copy_kernel_covers_every_element_size() {
    for size in [1usize, 2, 4, 8, 16, 3] {
        let dtype = match size {
            3 => DType::new(3, 24, 1).unwrap(),
            s => DType::new(1, (s * 8).min(64) as u8, if s == 16 { 2 } else { 1 }).unwrap(),
        };
        let n = 6 * 7;
        let bytes: Vec<u8> = (0..n * size).map(|i| i as u8).collect();
        let t = TensorView::from_vec(bytes.clone(), &[n * size])
            .unwrap()
            .reinterpret(dtype)
            .unwrap()
            .reshape(&[6, 7])
            .unwrap();
        let tt = t.transpose().unwrap().to_contiguous(Order::C).unwrap();
        let got = tt.reinterpret(DType::U8).unwrap().to_vec::<u8>().unwrap();
        let mut want = Vec::new();
        for j in 0..7 {
            for i in 0..6 {
                let e = (i * 7 + j) * size;
                want.extend_from_slice(&bytes[e..e + size]);
            }
        }
        assert_eq!(got, want, "element size {size}");
    }
}

/// (shape, per-axis (start, stop, step), axis order)
type ArbView = (Vec<usize>, Vec<(isize, isize, isize)>, Vec<usize>);

fn arb_view() -> impl Strategy<Value = ArbView> {
    prop::collection::vec(1usize..5, 1..5).prop_flat_map(|shape| {
        let n = shape.len();
        (
            Just(shape),
            prop::collection::vec(
                (-6isize..6, -6isize..6, prop_oneof![-3isize..0, 1isize..4]),
                n,
            ),
            Just((0..n).rev().collect::<Vec<usize>>()).prop_shuffle(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: if cfg!(miri) { 4 } else { 256 }, ..ProptestConfig::default() })]
    #[test]
    fn random_slices_and_permutations_match_naive((shape, slices, order) in arb_view()) {
        let n: usize = shape.iter().product();
        let base = iota(n);
        let t = base.reshape(&shape).unwrap();
        let args: Vec<SliceArg> = slices.iter().map(|&(a, b, s)| SliceArg { start: Some(a), stop: Some(b), step: s }).collect();
        let v = t.slice_each(&args).unwrap().permute(&order).unwrap();
        check(&v, &base);
        let managed = v.to_dlpack_versioned();
        let back = TensorView::from_dlpack_versioned(managed).unwrap();
        prop_assert_eq!(back.to_vec::<i64>().unwrap(), naive(&v, &base));
        // A reshape either succeeds with the same row-major values, or refuses.
        if let Ok(flat) = v.reshape_infer(&[None]) {
            prop_assert_eq!(flat.to_vec::<i64>().unwrap(), v.to_vec::<i64>().unwrap());
        } else {
            prop_assert!(!v.is_c_contiguous());
        }
    }

    #[test]
    fn random_as_strided_is_in_bounds_or_refused(n in 1usize..40, shape in prop::collection::vec(0usize..6, 0..4), strides in prop::collection::vec(-8isize..8, 4), offset in -10isize..40) {
        let base = iota(n);
        let strides = &strides[..shape.len()];
        match base.as_strided(&shape, strides, offset) {
            Ok(v) => {
                let got = v.to_vec::<i64>().unwrap();
                prop_assert!(got.iter().all(|&x| x >= 0 && (x as usize) < n));
                prop_assert_eq!(got, naive(&v, &base));
            }
            Err(e) => prop_assert!(matches!(e, Error::OutOfBounds(_)), "{e:?}"),
        }
    }
}

#[test]
fn slices_from_ranges() {
    let t = TensorView::from_vec((0..10).collect::<Vec<u8>>(), &[10]).unwrap();
    let v = |arg: SliceArg| t.slice(0, arg).unwrap().to_vec::<u8>().unwrap();
    assert_eq!(v(SliceArg::from(2..5)), vec![2, 3, 4]);
    assert_eq!(v(SliceArg::from(2..=4)), vec![2, 3, 4]);
    assert_eq!(v(SliceArg::from(..2)), vec![0, 1]);
    assert_eq!(v(SliceArg::from(7usize..)), vec![7, 8, 9]);
    assert_eq!(v(SliceArg::from(..)), (0..10).collect::<Vec<u8>>());
    assert_eq!(v(SliceArg::from(..).with_step(-4)), vec![9, 5, 1]);
    assert_eq!(v(SliceArg::from(-3i64..)), vec![7, 8, 9]);
    // Bounds beyond isize saturate and are clamped, as Python clamps.
    assert_eq!(v(SliceArg::from(8..usize::MAX)), vec![8, 9]);
    assert_eq!(
        v(SliceArg::from(0..=isize::MAX)),
        (0..10).collect::<Vec<u8>>()
    );
    assert_eq!(
        t.slice(0, 1..3).unwrap().to_vec::<u8>().unwrap(),
        vec![1, 2]
    );
}

#[test]
fn concatenate_joins_strided_parts_along_the_first_axis_with_one_copy() {
    let a = TensorView::from_vec((0..12).collect::<Vec<i64>>(), &[3, 4]).unwrap();
    let odd = a.slice(1, SliceArg::from(1..).with_step(2)).unwrap(); // [3, 2], strided
    let b = TensorView::from_vec(vec![100i64, 101], &[1, 2]).unwrap();
    let empty = TensorView::from_vec(Vec::<i64>::new(), &[0, 2]).unwrap();
    let joined = TensorView::concatenate(&[odd.clone(), empty, b]).unwrap();
    assert_eq!(joined.shape(), &[4, 2]);
    assert!(joined.is_copied() && joined.is_c_contiguous());
    assert_eq!(
        joined.to_vec::<i64>().unwrap(),
        vec![1, 3, 5, 7, 9, 11, 100, 101]
    );
    assert!(matches!(
        TensorView::concatenate(&[odd.clone(), a.clone()]),
        Err(Error::InvalidShape(_))
    ));
    let f = TensorView::from_vec(vec![1.0f64, 2.0], &[1, 2]).unwrap();
    assert!(matches!(
        TensorView::concatenate(&[odd, f]),
        Err(Error::InvalidShape(_))
    ));
    assert!(TensorView::concatenate(&[]).is_err());
    let scalar = TensorView::from_vec(vec![1u8], &[]).unwrap();
    assert!(TensorView::concatenate(&[scalar]).is_err());
}

#[test]
fn from_vec_refuses_more_dimensions_than_the_limit() {
    let shape = vec![1usize; dlbridge::MAX_NDIM + 1];
    assert!(matches!(
        TensorView::from_vec(vec![0u8], &shape),
        Err(dlbridge::Error::TooManyDims { .. })
    ));
    assert!(TensorView::from_vec(vec![0u8], &shape[1..]).is_ok());
}

/// Bool values are checked where the view reaches, in row-major order of the view: an invalid
/// byte the view skips is no error, and the index reported is the view's, not the memory's.
#[test]
fn bool_values_are_checked_in_the_views_order() {
    // Memory (2 x 3): [0, 1, 7]
    //                 [1, 9, 0]
    let t = TensorView::from_vec(vec![0u8, 1, 7, 1, 9, 0], &[2, 3])
        .unwrap()
        .reinterpret(DType::BOOL)
        .unwrap();
    // Transposed (3 x 2): 0 1 | 1 9 | 7 0: the first invalid element is the 4th (index 3).
    assert!(matches!(
        t.transpose().unwrap().to_vec::<bool>(),
        Err(Error::InvalidBool { index: 3, byte: 9 })
    ));
    // Column 0 skips both invalid bytes.
    let column = t.select(1, 0).unwrap();
    assert_eq!(column.to_vec::<bool>().unwrap(), [false, true]);
    // Reversed rows of column 2: 0 then 7.
    let reversed = t
        .select(1, 2)
        .unwrap()
        .slice(0, SliceArg::step(-1))
        .unwrap();
    assert!(matches!(
        reversed.to_vec::<bool>(),
        Err(Error::InvalidBool { index: 1, byte: 7 })
    ));
}
