//! tch (PyTorch) interop: zero copy both ways, lifetimes, dtypes, layouts, refusals.
#![cfg(feature = "tch")]

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

mod common;

use dlbridge::interop::tch::scalar_type_name;
use dlbridge::{
    CopyPolicy, DType, DTypeCode, Device, DeviceType, Element, Error, ManagedTensorVersioned,
    Owner, Parts, SliceArg, TensorView,
};
use half::{bf16, f16};
use num_complex::Complex;
use tch::{Kind, Tensor};

const CPU: (Kind, tch::Device) = (Kind::Float, tch::Device::Cpu);

/// A tensor of `dtype` (of `T`'s size) over `data`, owned by a drop-counting
/// [`common::Counted`]: the view, its data address and the drop counter.
fn counted<T: Element + Send + Sync>(
    data: Vec<T>,
    shape: &[usize],
    dtype: DType,
) -> (TensorView, usize, Arc<AtomicUsize>) {
    let (v, drops) = common::counted_tensor(data, shape);
    let v = if dtype == T::DTYPE {
        v
    } else {
        v.reinterpret(dtype).unwrap()
    };
    let ptr = v.data_ptr() as usize;
    (v, ptr, drops)
}

fn addr(t: &Tensor) -> usize {
    t.data_ptr() as usize
}

// ---------------------------------------------------------------- torch -> TensorView

/// Torch tensor of `kind` -> view: same address, shape, strides, the expected dtype, values.
fn check_from_tch<T: Element + PartialEq + std::fmt::Debug>(t: Tensor, dtype: DType, values: &[T]) {
    let v = TensorView::from_tch(&t).unwrap();
    assert_eq!(v.data_ptr() as usize, addr(&t), "{dtype}");
    assert_eq!(v.dtype(), dtype);
    assert_eq!(v.device(), Device::CPU);
    assert_eq!(v.shape(), &[values.len()]);
    assert!(!v.is_read_only() && !v.is_copied());
    drop(t); // the view alone keeps the storage alive
    assert_eq!(v.to_vec::<T>().unwrap(), values, "{dtype}");
}

#[test]
fn from_tch_every_tch_kind_same_pointer_and_values() {
    let ints = Tensor::from_slice(&[0i64, 1, 2, 127]);
    check_from_tch(ints.to_kind(Kind::Uint8), DType::U8, &[0u8, 1, 2, 127]);
    check_from_tch(ints.to_kind(Kind::Int8), DType::I8, &[0i8, 1, 2, 127]);
    check_from_tch(ints.to_kind(Kind::Int16), DType::I16, &[0i16, 1, 2, 127]);
    check_from_tch(ints.to_kind(Kind::Int), DType::I32, &[0i32, 1, 2, 127]);
    check_from_tch(ints.copy(), DType::I64, &[0i64, 1, 2, 127]);
    check_from_tch(
        Tensor::from_slice(&[false, true, true]),
        DType::BOOL,
        &[false, true, true],
    );
    let floats = Tensor::from_slice(&[0.5f64, -1.25, 3.0]);
    check_from_tch(
        floats.to_kind(Kind::Half),
        DType::F16,
        &[0.5, -1.25, 3.0].map(f16::from_f64),
    );
    check_from_tch(
        floats.to_kind(Kind::BFloat16),
        DType::BF16,
        &[0.5, -1.25, 3.0].map(bf16::from_f64),
    );
    check_from_tch(
        floats.to_kind(Kind::Float),
        DType::F32,
        &[0.5f32, -1.25, 3.0],
    );
    check_from_tch(floats.copy(), DType::F64, &[0.5f64, -1.25, 3.0]);
    let c = Tensor::complex(&floats, &(-&floats));
    check_from_tch(
        c.copy(),
        DType::C128,
        &[0.5, -1.25, 3.0].map(|x| Complex::new(x, -x)),
    );
    check_from_tch(
        c.to_kind(Kind::ComplexFloat),
        DType::C64,
        &[0.5f32, -1.25, 3.0].map(|x| Complex::new(x, -x)),
    );
}

#[test]
fn from_tch_float8_kinds_carry_their_bits() {
    let one = Tensor::from_slice(&[1.0f32, -2.0, 0.5]);
    // (kind, DLPack code, bit patterns of 1, -2, 0.5)
    let cases = [
        (
            Kind::Float8e4m3fn,
            DTypeCode::Float8E4M3Fn,
            [0x38u8, 0xC0, 0x30],
        ),
        (Kind::Float8e5m2, DTypeCode::Float8E5M2, [0x3C, 0xC0, 0x38]),
        (
            Kind::Float8e4m3fnuz,
            DTypeCode::Float8E4M3Fnuz,
            [0x40, 0xC8, 0x38],
        ),
        (
            Kind::Float8e5m2fnuz,
            DTypeCode::Float8E5M2Fnuz,
            [0x40, 0xC4, 0x3C],
        ),
    ];
    for (kind, code, bits) in cases {
        let t = one.to_kind(kind);
        let v = TensorView::from_tch(&t).unwrap();
        assert_eq!(v.data_ptr() as usize, addr(&t));
        assert_eq!(v.dtype(), DType::new(code as u8, 8, 1).unwrap());
        assert_eq!(
            v.reinterpret(DType::U8).unwrap().to_vec::<u8>().unwrap(),
            bits,
            "{kind:?}"
        );
        // ...and back to torch, same memory, same values.
        let back = v.to_tch().unwrap();
        assert_eq!(addr(&back), addr(&t));
        assert!(back.to_kind(Kind::Float).equal(&one), "{kind:?}");
    }
}

#[test]
fn from_tch_layouts_transposed_narrowed_expanded_0d_empty() {
    let base = Tensor::arange(12, CPU).view([3, 4]);
    // transposed
    let t = base.tr();
    let v = TensorView::from_tch(&t).unwrap();
    assert_eq!(
        (v.shape(), v.strides()),
        (&[4usize, 3][..], &[1isize, 4][..])
    );
    assert_eq!(v.data_ptr() as usize, addr(&base));
    assert_eq!(
        v.to_vec::<f32>().unwrap(),
        Vec::<f32>::try_from(&t.contiguous().view([-1])).unwrap()
    );
    // narrowed with a step: the first element's address includes the offset
    let t = base.narrow(1, 1, 3).slice(0, 0, 3, 2);
    let v = TensorView::try_from(&t).unwrap();
    assert_eq!(v.data_ptr() as usize, addr(&base) + 4);
    assert_eq!(
        (v.shape(), v.strides()),
        (&[2usize, 3][..], &[8isize, 1][..])
    );
    assert_eq!(v.to_vec::<f32>().unwrap(), [1.0, 2.0, 3.0, 9.0, 10.0, 11.0]);
    // expanded: zero strides
    let t = Tensor::from_slice(&[7i32, 8])
        .view([2, 1])
        .expand([2, 3], false);
    let v = TensorView::from_tch(&t).unwrap();
    assert_eq!(v.strides(), &[1, 0]);
    assert_eq!(v.to_vec::<i32>().unwrap(), [7, 7, 7, 8, 8, 8]);
    // 0-d
    let t = Tensor::from(2.5f64);
    let v = TensorView::from_tch(&t).unwrap();
    assert_eq!(v.shape(), &[] as &[usize]);
    assert_eq!(v.to_vec::<f64>().unwrap(), [2.5]);
    // empty
    let t = Tensor::zeros([0, 5], CPU);
    let v = TensorView::from_tch(&t).unwrap();
    assert_eq!(v.shape(), &[0, 5]);
    assert_eq!(v.numel(), 0);
    let back = v.to_tch().unwrap();
    assert_eq!(back.size(), [0, 5]);
}

#[test]
fn from_tch_view_outlives_tensor_and_sees_torch_writes() {
    let t = Tensor::arange(4, (Kind::Int64, tch::Device::Cpu));
    let v = TensorView::from_tch(&t).unwrap();
    let mut alias = t.shallow_clone();
    let _ = alias.fill_(9);
    assert_eq!(
        v.to_vec::<i64>().unwrap(),
        [9, 9, 9, 9],
        "shares torch's memory"
    );
    drop(t);
    drop(alias);
    // Only the view holds the storage now; allocate to make reuse of a freed block likely.
    let _noise = Tensor::full([4], 5, (Kind::Int64, tch::Device::Cpu));
    assert_eq!(v.to_vec::<i64>().unwrap(), [9, 9, 9, 9]);
}

#[test]
fn export_is_isolated_from_later_inplace_metadata_changes() {
    let mut t = Tensor::arange(6, CPU).view([2, 3]);
    let v = TensorView::from_tch(&t).unwrap();
    let _ = t.t_(); // in-place transpose of the source's metadata
    assert_eq!(t.size(), [3, 2]);
    assert_eq!(
        (v.shape(), v.strides()),
        (&[2usize, 3][..], &[3isize, 1][..])
    );
    let m = ManagedTensorVersioned::from_tch(&t).unwrap();
    let _ = t.unsqueeze_(0);
    let dl = m.dl_tensor().unwrap();
    assert_eq!(dl.ndim, 2);
    // SAFETY: a live, versioned managed tensor with ndim 2 has two shape entries.
    assert_eq!(unsafe { std::slice::from_raw_parts(dl.shape, 2) }, [3, 2]);
}

// ---------------------------------------------------------------- TensorView -> torch

/// Vec -> view -> torch: same address, torch sees the dtype and the values; back to a view too.
fn check_to_tch<T: Element + PartialEq + std::fmt::Debug + Send + Sync + Copy + 'static>(
    values: Vec<T>,
    torch_name: &str,
    as_double: &[f64],
) {
    let n = values.len();
    let expect = values.clone();
    let (v, ptr, drops) = counted(values, &[n], T::DTYPE);
    let t = v.to_tch().unwrap();
    drop(v);
    assert_eq!(addr(&t), ptr, "{torch_name}");
    assert_eq!(scalar_type_name(&t).unwrap(), torch_name);
    assert_eq!(t.size(), [n as i64]);
    if !as_double.is_empty() {
        let d = Vec::<f64>::try_from(&t.to_kind(Kind::Double)).unwrap();
        assert_eq!(d, as_double, "{torch_name}");
    }
    let back = TensorView::from_tch(&t).unwrap();
    assert_eq!(back.data_ptr() as usize, ptr);
    assert_eq!(back.dtype(), T::DTYPE);
    drop(t);
    assert_eq!(back.to_vec::<T>().unwrap(), expect);
    drop(back);
    assert_eq!(drops.load(SeqCst), 1, "{torch_name}: owner released once");
}

#[test]
fn to_tch_every_element_type_same_pointer_and_values() {
    let d = [0.0, 1.0, 2.0, 100.0];
    check_to_tch(vec![0u8, 1, 2, 100], "Byte", &d);
    check_to_tch(vec![0u16, 1, 2, 100], "UInt16", &d);
    check_to_tch(vec![0u32, 1, 2, 100], "UInt32", &d);
    check_to_tch(vec![0u64, 1, 2, 100], "UInt64", &d);
    check_to_tch(vec![0i8, 1, 2, 100], "Char", &d);
    check_to_tch(vec![0i16, 1, 2, 100], "Short", &d);
    check_to_tch(vec![0i32, 1, 2, 100], "Int", &d);
    check_to_tch(vec![0i64, 1, 2, 100], "Long", &d);
    check_to_tch(d.map(f16::from_f64).to_vec(), "Half", &d);
    check_to_tch(d.map(bf16::from_f64).to_vec(), "BFloat16", &d);
    check_to_tch(d.map(|x| x as f32).to_vec(), "Float", &d);
    check_to_tch(d.to_vec(), "Double", &d);
    check_to_tch(
        vec![false, true, true, false],
        "Bool",
        &[0.0, 1.0, 1.0, 0.0],
    );
    check_to_tch(
        d.map(|x| Complex::new(x as f32, 1.0)).to_vec(),
        "ComplexFloat",
        &[],
    );
    check_to_tch(
        d.map(|x| Complex::new(x, -x)).to_vec(),
        "ComplexDouble",
        &[],
    );
    // complex values, checked on the torch side
    let v = TensorView::from_vec(
        vec![Complex::new(1.0f64, 2.0), Complex::new(-3.0, 4.0)],
        &[2],
    )
    .unwrap();
    let t = v.to_tch().unwrap();
    assert_eq!(Vec::<f64>::try_from(&t.real()).unwrap(), [1.0, -3.0]);
    assert_eq!(Vec::<f64>::try_from(&t.imag()).unwrap(), [2.0, 4.0]);
}

#[test]
fn to_tch_float8_and_complex32_types() {
    // (code, bit patterns, values); e8m0fnu is a power of two: 2^(bits - 127)
    let cases: [(DTypeCode, [u8; 3], [f32; 3], &str); 5] = [
        (
            DTypeCode::Float8E4M3Fn,
            [0x38, 0xC0, 0x30],
            [1.0, -2.0, 0.5],
            "Float8_e4m3fn",
        ),
        (
            DTypeCode::Float8E5M2,
            [0x3C, 0xC0, 0x38],
            [1.0, -2.0, 0.5],
            "Float8_e5m2",
        ),
        (
            DTypeCode::Float8E4M3Fnuz,
            [0x40, 0xC8, 0x38],
            [1.0, -2.0, 0.5],
            "Float8_e4m3fnuz",
        ),
        (
            DTypeCode::Float8E5M2Fnuz,
            [0x40, 0xC4, 0x3C],
            [1.0, -2.0, 0.5],
            "Float8_e5m2fnuz",
        ),
        (
            DTypeCode::Float8E8M0Fnu,
            [127, 128, 126],
            [1.0, 2.0, 0.5],
            "Float8_e8m0fnu",
        ),
    ];
    for (code, bits, values, name) in cases {
        let dtype = DType::new(code as u8, 8, 1).unwrap();
        let (v, ptr, drops) = counted(bits.to_vec(), &[3], dtype);
        let t = v.to_tch().unwrap();
        assert_eq!(addr(&t), ptr);
        assert_eq!(scalar_type_name(&t).unwrap(), name);
        let f = Vec::<f32>::try_from(&t.to_kind(Kind::Float)).unwrap();
        assert_eq!(f, values, "{name}");
        let back = TensorView::from_tch(&t).unwrap();
        assert_eq!((back.data_ptr() as usize, back.dtype()), (ptr, dtype));
        drop((v, t, back));
        assert_eq!(drops.load(SeqCst), 1);
    }
    // complex32 (torch ComplexHalf): two f16 per element
    let halves = [1.0, 2.0, -3.0, 0.5].map(f16::from_f32).to_vec();
    let (v, ptr, _) = counted(halves, &[4], DType::F16);
    let v = v
        .reinterpret(DType::new(DTypeCode::Complex as u8, 32, 1).unwrap())
        .unwrap();
    assert_eq!(v.shape(), &[2]);
    let t = v.to_tch().unwrap();
    assert_eq!(
        (addr(&t), scalar_type_name(&t).unwrap().as_str()),
        (ptr, "ComplexHalf")
    );
    let re = Vec::<f32>::try_from(&t.real().to_kind(Kind::Float)).unwrap();
    assert_eq!(re, [1.0, -3.0]);
}

#[test]
fn to_tch_layouts_strided_transposed_offset_expanded_0d_empty() {
    let v = TensorView::from_vec((0..12).map(|x| x as f32).collect(), &[3, 4]).unwrap();
    let base = v.data_ptr() as usize;
    // transposed
    let t = v.transpose().unwrap().to_tch().unwrap();
    assert_eq!((t.size(), t.stride()), (vec![4, 3], vec![1, 4]));
    assert_eq!(addr(&t), base);
    assert!(t.equal(&Tensor::arange(12, CPU).view([3, 4]).tr()));
    // sliced with steps and an offset
    let s = v
        .slice_each(&[SliceArg::step(2), SliceArg::range(1, 4)])
        .unwrap();
    let t = s.to_tch().unwrap();
    assert_eq!(addr(&t), base + 4);
    assert_eq!((t.size(), t.stride()), (vec![2, 3], vec![8, 1]));
    assert_eq!(
        Vec::<f32>::try_from(&t.reshape([-1])).unwrap(),
        [1.0, 2.0, 3.0, 9.0, 10.0, 11.0]
    );
    // expanded (zero strides)
    let row = v.select(0, 1).unwrap().broadcast_to(&[2, 4]).unwrap();
    let t = row.to_tch().unwrap();
    assert_eq!(t.stride(), [0, 1]);
    assert_eq!(addr(&t), base + 16);
    assert_eq!(
        Vec::<f32>::try_from(&t.sum_dim_intlist(&[0i64][..], false, Kind::Float)).unwrap(),
        [8.0, 10.0, 12.0, 14.0]
    );
    // 0-d
    let s = v.select(0, 2).unwrap().select(0, 3).unwrap();
    let t = s.to_tch().unwrap();
    assert_eq!(t.dim(), 0);
    assert_eq!(addr(&t), base + 11 * 4);
    assert_eq!(t.double_value(&[]), 11.0);
    // empty
    let e = TensorView::from_vec(Vec::<i16>::new(), &[2, 0, 3]).unwrap();
    let t = e.to_tch().unwrap();
    assert_eq!(t.size(), [2, 0, 3]);
    assert_eq!(t.numel(), 0);
    // a size-1 axis with a negative stride needs no copy
    let one = v
        .slice(
            0,
            SliceArg {
                start: Some(1),
                stop: Some(0),
                step: -1,
            },
        )
        .unwrap();
    assert_eq!(one.shape(), &[1, 4]);
    let t = one.to_tch().unwrap();
    assert_eq!(addr(&t), base + 16);
    assert_eq!(
        Vec::<f32>::try_from(&t.reshape([-1])).unwrap(),
        [4.0, 5.0, 6.0, 7.0]
    );
}

#[test]
fn torch_writes_reach_the_foreign_buffer() {
    let mut v = TensorView::from_vec(vec![0i32; 6], &[2, 3]).unwrap();
    let mut t = v.to_tch().unwrap();
    let _ = t.fill_(4);
    drop(t);
    assert_eq!(v.as_mut_slice::<i32>().unwrap(), &[4; 6]);
}

// ---------------------------------------------------------------- ownership

#[test]
fn foreign_owner_released_once_after_last_torch_view() {
    let (v, ptr, drops) = counted((0..12).map(|x| x as f32).collect(), &[3, 4], DType::F32);
    let t = v.to_tch().unwrap();
    drop(v);
    assert_eq!(drops.load(SeqCst), 0, "torch holds the owner");
    let tv = t.transpose(0, 1);
    let nv = t.narrow(0, 1, 2);
    drop(t);
    assert_eq!(drops.load(SeqCst), 0, "torch views keep the storage");
    assert_eq!(addr(&tv), ptr);
    assert_eq!(addr(&nv), ptr + 16);
    assert_eq!(
        Vec::<f32>::try_from(&tv.select(0, 1)).unwrap(),
        [1.0, 5.0, 9.0]
    );
    drop(tv);
    assert_eq!(drops.load(SeqCst), 0);
    assert_eq!(nv.double_value(&[1, 3]), 11.0);
    drop(nv);
    assert_eq!(
        drops.load(SeqCst),
        1,
        "released exactly once, with the last torch view"
    );
}

#[test]
fn vec_view_tch_view_tch_keeps_address_and_releases_once() {
    let (v, ptr, drops) = counted(vec![1u64, 2, 3, 4, 5, 6], &[2, 3], DType::U64);
    let t1 = v.transpose().unwrap().to_tch().unwrap();
    let v2 = TensorView::from_tch(&t1).unwrap();
    let t2 = v2.to_tch().unwrap();
    let v3 = TensorView::from_tch(&t2).unwrap();
    for a in [
        addr(&t1),
        v2.data_ptr() as usize,
        addr(&t2),
        v3.data_ptr() as usize,
    ] {
        assert_eq!(a, ptr);
    }
    assert_eq!(t2.stride(), [1, 3]);
    assert_eq!(v3.strides(), &[1, 3]);
    assert_eq!(v3.to_vec::<u64>().unwrap(), [1, 4, 2, 5, 3, 6]);
    drop((v, t1, v2, t2));
    assert_eq!(
        drops.load(SeqCst),
        0,
        "the last view keeps everything alive"
    );
    drop(v3);
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn refused_dlpack_input_is_deleted_exactly_once() {
    let (v, _, drops) = counted(vec![1.0f32; 4], &[4], DType::F32);
    let m = v.clone().into_read_only().to_dlpack_versioned();
    drop(v);
    assert!(matches!(
        ManagedTensorVersioned::into_tch(m),
        Err(Error::ReadOnly(_))
    ));
    assert_eq!(drops.load(SeqCst), 1);
}

#[test]
fn aten_refusal_gives_the_handle_back_and_it_is_deleted_once() {
    // ATen 2.13 refuses a 0-d tensor with a non-zero byte_offset ("Expected zero byte_offset";
    // pytorch/pytorch#168177) before taking ownership: shim status 1, so the handle comes back
    // and we delete it.
    // (`to_tch` folds the offset into the pointer, so it does not hit this.)
    let (v, ptr, drops) = counted(vec![1i32, 2, 3], &[3], DType::I32);
    let last = v.select(0, 2).unwrap();
    assert_eq!((last.ndim(), last.byte_offset()), (0, 8));
    drop(v);
    let e = ManagedTensorVersioned::into_tch(last.to_dlpack_versioned()).unwrap_err();
    assert!(
        matches!(&e, Error::Foreign(f) if f.library() == "libtorch" && f.message().contains("byte_offset")),
        "{e}"
    );
    assert_eq!(drops.load(SeqCst), 0, "`last` still holds the owner");
    assert_eq!(
        last.owner().strong_count(),
        1,
        "the refused export was deleted"
    );
    let t = last.to_tch().unwrap();
    assert_eq!((addr(&t), t.int64_value(&[])), (ptr + 8, 3));
    drop(last);
    assert_eq!(drops.load(SeqCst), 0);
    drop(t);
    assert_eq!(drops.load(SeqCst), 1);
}

// ---------------------------------------------------------------- refusals and copies

#[test]
fn read_only_view_is_refused_unless_a_copy_is_allowed() {
    static DATA: [f64; 4] = [1.0, 2.0, 3.0, 4.0];
    let v = TensorView::from_static(&DATA, &[2, 2])
        .unwrap()
        .transpose()
        .unwrap();
    assert!(v.is_read_only());
    assert!(matches!(v.to_tch(), Err(Error::ReadOnly(_))));
    assert!(matches!(Tensor::try_from(&v), Err(Error::ReadOnly(_))));
    let mut t = v.to_tch_with(CopyPolicy::IfNeeded).unwrap();
    assert_ne!(addr(&t), DATA.as_ptr() as usize);
    assert!(t.is_contiguous());
    assert_eq!(
        Vec::<f64>::try_from(&t.reshape([-1])).unwrap(),
        [1.0, 3.0, 2.0, 4.0]
    );
    let _ = t.fill_(0.0); // writes the copy, not the static
    assert_eq!(DATA, [1.0, 2.0, 3.0, 4.0]);
    // a writable view is never copied by IfNeeded
    let w = TensorView::from_vec(vec![1u8, 2], &[2]).unwrap();
    let t = w.to_tch_with(CopyPolicy::IfNeeded).unwrap();
    assert_eq!(addr(&t), w.data_ptr() as usize);
}

#[test]
fn negative_strides_and_misalignment_need_a_copy() {
    let v = TensorView::from_vec((0..5).collect::<Vec<i32>>(), &[5]).unwrap();
    let rev = v.slice(0, SliceArg::step(-1)).unwrap();
    assert!(matches!(rev.to_tch(), Err(Error::CopyRequired(_))));
    let t = rev.to_tch_with(CopyPolicy::IfNeeded).unwrap();
    assert_eq!(Vec::<i32>::try_from(&t).unwrap(), [4, 3, 2, 1, 0]);

    let bytes = TensorView::from_vec(vec![0u8; 17], &[17]).unwrap();
    let odd = bytes
        .slice(0, SliceArg::range(1, 17))
        .unwrap()
        .reinterpret(DType::F32)
        .unwrap();
    if !(odd.data_ptr() as usize).is_multiple_of(4) {
        assert!(matches!(odd.to_tch(), Err(Error::Misaligned { .. })));
        let t = odd.to_tch_with(CopyPolicy::IfNeeded).unwrap();
        assert_eq!(t.size(), [4]);
    }
}

#[test]
fn non_cpu_and_unsupported_dtypes_are_refused() {
    let drops = Arc::new(AtomicUsize::new(0));
    let mut data = vec![0u8; 8];
    let ptr = data.as_mut_ptr();
    let mut parts = Parts::contiguous(ptr, vec![8], DType::U8);
    parts.device = Device {
        kind: DeviceType::CUDA,
        id: 0,
    };
    // SAFETY: `ptr` is the buffer of `data`, moved into the owner; never dereferenced as CUDA.
    let cuda = unsafe {
        TensorView::from_parts(
            parts,
            Owner::new(common::Counted {
                values: data,
                drops: drops.clone(),
            }),
        )
    }
    .unwrap();
    // The device goes to ATen as it is: a torch built without CUDA (this test's) refuses it
    // with its own error, one with CUDA would wrap the memory in place. Either way the
    // allocation is released exactly once and its data never read.
    match cuda.to_tch_with(CopyPolicy::Never) {
        Err(Error::Foreign(e)) => eprintln!("torch refused the CUDA tensor: {e}"),
        Ok(t) => {
            assert_eq!(t.device(), tch::Device::Cuda(0));
            assert_eq!(t.data_ptr() as usize, cuda.data_ptr() as usize);
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
    assert_eq!(drops.load(SeqCst), 0, "the view still holds the allocation");
    // A copy would have to read device memory: refused whatever the policy.
    let read_only = cuda.clone().into_read_only();
    assert!(matches!(
        read_only.to_tch_with(CopyPolicy::IfNeeded),
        Err(Error::UnsupportedDevice { .. })
    ));
    drop((cuda, read_only));
    assert_eq!(drops.load(SeqCst), 1);
    let bytes = TensorView::from_vec(vec![0u8; 8], &[8]).unwrap();
    for dtype in [
        DType::new(DTypeCode::Float8E3M4 as u8, 8, 1).unwrap(),
        DType::new(DTypeCode::Float as u8, 32, 2).unwrap(),
        DType::new(DTypeCode::OpaqueHandle as u8, 64, 1).unwrap(),
    ] {
        let v = bytes.reinterpret(dtype).unwrap();
        assert!(
            matches!(v.to_tch(), Err(Error::UnsupportedDtype { .. })),
            "{dtype}"
        );
    }
    let int4 = TensorView::from_vec(vec![0u8; 4], &[4])
        .unwrap()
        .reinterpret(DType::new(DTypeCode::Int as u8, 4, 1).unwrap());
    if let Ok(int4) = int4 {
        assert!(matches!(int4.to_tch(), Err(Error::UnsupportedDtype { .. })));
    }
}

#[test]
fn tensors_dlpack_cannot_carry_are_refused() {
    let grad = Tensor::ones([3], CPU).set_requires_grad(true);
    let e = TensorView::from_tch(&grad).unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedTensor(m) if m.contains("detach")),
        "{e}"
    );
    let ok = TensorView::from_tch(&grad.detach()).unwrap();
    assert_eq!(ok.data_ptr() as usize, addr(&grad));

    let c = Tensor::complex(&Tensor::ones([2], CPU), &Tensor::ones([2], CPU));
    let conj = c.conj();
    assert_eq!(addr(&conj), addr(&c), "lazy conjugate view");
    let e = TensorView::from_tch(&conj).unwrap_err();
    assert!(
        matches!(&e, Error::CopyRequired(m) if m.contains("resolve_conj")),
        "{e}"
    );
    let resolved = TensorView::from_tch(&conj.resolve_conj()).unwrap();
    assert_eq!(
        resolved.to_vec::<Complex<f32>>().unwrap(),
        [Complex::new(1.0, -1.0); 2]
    );

    let neg = Tensor::ones([2], CPU).internal_neg_view();
    let e = TensorView::from_tch(&neg).unwrap_err();
    assert!(
        matches!(&e, Error::CopyRequired(m) if m.contains("resolve_neg")),
        "{e}"
    );

    let q = Tensor::ones([4], CPU).quantize_per_tensor(0.5, 0, Kind::QInt8);
    let e = TensorView::from_tch(&q).unwrap_err();
    assert!(
        matches!(&e, Error::UnsupportedTensor(m) if m.contains("quantized")),
        "{e}"
    );

    let sparse = Tensor::eye(3, CPU).to_sparse_sparse_dim(2);
    let e = TensorView::from_tch(&sparse).unwrap_err();
    assert!(
        matches!(&e, Error::NotContiguous(m) if m.contains("sparse")),
        "{e}"
    );
}

/// A torch tensor made by `to_tch` may write the memory at any time (torch has no read-only
/// tensors): safe Rust gets no `&[T]` of it until the torch tensor is gone.
#[test]
fn no_shared_slice_while_torch_holds_the_memory() {
    let v = TensorView::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let mut t = v.to_tch().unwrap();
    assert!(matches!(v.as_slice::<f32>(), Err(Error::ForeignWriter(1))));
    let _ = t.f_mul_scalar_(2.0).unwrap(); // torch writes in place
    assert_eq!(v.to_vec::<f32>().unwrap(), vec![2.0, 4.0, 6.0]); // copies are fine
    drop(t);
    assert_eq!(v.as_slice::<f32>().unwrap(), &[2.0, 4.0, 6.0]);
    // A copy exported for torch never blocks the original.
    let ro = v.clone().into_read_only();
    let copy = ro.to_tch_with(CopyPolicy::IfNeeded).unwrap();
    assert!(v.as_slice::<f32>().is_ok());
    drop(copy);
}

/// The other order, which a check at slice time alone missed: a slice taken first may still
/// live when `to_tch` runs, so torch gets no alias (a copy when allowed), until the view is
/// given up as the only handle.
#[test]
fn no_torch_alias_while_a_slice_may_live() {
    let v = TensorView::from_vec(vec![1.0f32, 2.0, 3.0], &[3]).unwrap();
    let slice = v.as_slice::<f32>().unwrap();
    assert!(matches!(v.to_tch(), Err(Error::SharedReaders)));
    let mut copy = v.to_tch_with(CopyPolicy::IfNeeded).unwrap();
    assert_ne!(addr(&copy), v.data_ptr() as usize);
    let _ = copy.fill_(5.0);
    assert_eq!(
        slice,
        &[1.0, 2.0, 3.0],
        "the slice never sees torch's writes"
    );
    let address = v.data_ptr() as usize;
    let mut shared = v.into_tch().unwrap();
    assert_eq!(addr(&shared), address);
    let _ = shared.fill_(4.0);
    assert_eq!(Vec::<f32>::try_from(&shared).unwrap(), vec![4.0; 3]);
}

/// Memory from torch can be written through any tensor sharing its storage, with tch's safe
/// API: its views lend no shared references at all, and the managed tensor
/// `ManagedTensorVersioned::from_tch` gives keeps that property in Rust consumers.
#[test]
fn torch_memory_lends_no_shared_references() {
    let t = Tensor::arange(4, (Kind::Int64, tch::Device::Cpu));
    let v = TensorView::from_tch(&t).unwrap();
    assert!(matches!(v.as_slice::<i64>(), Err(Error::ForeignWriter(_))));
    assert!(matches!(
        v.slice(0, 1..).unwrap().as_slice::<i64>(),
        Err(Error::ForeignWriter(_))
    ));
    assert!(v.owner().downcast_ref::<ManagedTensorVersioned>().is_none());
    let through_dlpack =
        TensorView::from_dlpack_versioned(ManagedTensorVersioned::from_tch(&t).unwrap()).unwrap();
    assert!(through_dlpack.as_slice::<i64>().is_err());
    assert_eq!(through_dlpack.data_ptr(), v.data_ptr());
    let mut alias = t.shallow_clone();
    let _ = alias.fill_(3);
    assert_eq!(
        v.to_vec::<i64>().unwrap(),
        vec![3; 4],
        "copies read torch's writes"
    );
}

/// `from_tch_owned` lends references only when the tensor given was the storage's last handle:
/// a view sharing the storage (`narrow`, `transpose`, `detach`, a `shallow_clone`) kept
/// anywhere can write it through tch's safe API, so the view must then refuse `as_slice`.
#[test]
fn from_tch_owned_lends_references_only_for_the_storages_last_handle() {
    // A fresh tensor of its own (`reshape` alone gives a view whose `_base` keeps the arange).
    let make = || Tensor::arange(6, CPU).reshape([2, 3]).copy();
    type Alias = fn(&Tensor) -> Tensor;
    let aliases: [(&str, Alias); 4] = [
        ("narrow", |t| t.narrow(1, 1, 2)),
        ("transpose", |t| t.transpose(0, 1)),
        ("detach", |t| t.detach()),
        ("shallow_clone", |t| t.shallow_clone()),
    ];
    for (name, alias) in aliases {
        let t = make();
        let mut kept = alias(&t);
        let v = TensorView::from_tch_owned(t).unwrap();
        assert!(
            matches!(v.as_slice::<f32>(), Err(Error::ForeignWriter(_))),
            "{name}: the alias can still write"
        );
        let _ = kept.fill_(7.0); // the write the rule is about: visible through a copy
        assert_eq!(v.to_vec::<f32>().unwrap()[5], 7.0, "{name}");
        drop(kept);
        // The alias is gone, but the view was made while it lived: it stays foreign-writable.
        assert!(v.as_slice::<f32>().is_err(), "{name}");
    }
    // A view keeps its base alive: its storage is not the view's alone.
    let base = make();
    let view = base.reshape([3, 2]);
    drop(base);
    let v = TensorView::from_tch_owned(view).unwrap();
    assert!(
        v.as_slice::<f32>().is_err(),
        "the base lives on as the view's _base"
    );
    // An alias made and dropped before the hand-over does not count.
    let t = make();
    drop(t.narrow(0, 0, 1));
    let v = TensorView::from_tch_owned(t).unwrap();
    assert_eq!(
        v.as_slice::<f32>().unwrap(),
        &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    );
}
