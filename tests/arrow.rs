//! Arrow interop: pointer identity, lifetimes, layouts, types, nulls, booleans, alignment,
//! extension metadata, IPC, and pyarrow cross-checks.
#![cfg(feature = "arrow")]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, ArrayRef, BooleanArray, FixedSizeListArray, Float32Array, Int32Array, Int64Array,
    PrimitiveArray, StringArray, UInt8Array,
};
use arrow_buffer::{Buffer, NullBuffer};
use arrow_data::ArrayData;
use arrow_schema::{DataType, Field};
use dlbridge::interop::arrow::*;
use dlbridge::{CopyPolicy, DType, Device, DeviceType, Error, Owner, Parts, SliceArg, TensorView};

mod common;

/// A writable f32 tensor of `shape` holding 0, 1, 2, ... whose owner counts its drops.
fn counted(shape: &[usize]) -> (TensorView, Arc<AtomicUsize>) {
    let n: usize = shape.iter().product();
    common::counted_tensor((0..n).map(|x| x as f32).collect(), shape)
}

fn iota<T: Copy>(n: usize, f: impl Fn(usize) -> T) -> Vec<T> {
    (0..n).map(f).collect()
}

fn never() -> ArrowExportOptions {
    ArrowExportOptions::default()
}

fn copy_ok() -> ArrowExportOptions {
    ArrowExportOptions::default().allow_copy()
}

fn import() -> ArrowImportOptions {
    ArrowImportOptions::default()
}

// ----------------------------------------------------------------------------------- export ---

#[test]
fn buffer_export_is_zero_copy_and_releases_owner_once() {
    let (t, drops) = counted(&[4, 8]);
    let ptr = t.data_ptr();
    let buf = t.to_arrow_buffer(CopyPolicy::Never).unwrap();
    assert_eq!(buf.as_ptr(), ptr);
    assert_eq!(buf.len(), 32 * 4);
    assert_eq!(t.owner().strong_count(), 2);
    drop(t);
    assert_eq!(
        drops.load(Ordering::SeqCst),
        0,
        "Arrow keeps the owner alive"
    );
    let clone = buf.clone();
    let sliced = buf.slice(16);
    drop(buf);
    assert_eq!(clone.typed_data::<f32>()[31], 31.0);
    drop(clone);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    assert_eq!(sliced.typed_data::<f32>()[0], 4.0);
    drop(sliced);
    assert_eq!(drops.load(Ordering::SeqCst), 1, "released exactly once");
}

#[test]
fn fixed_shape_tensor_export_is_zero_copy_with_metadata() {
    let (t, drops) = counted(&[3, 2, 4]);
    let col = t
        .to_arrow_fixed_shape_tensor(&ArrowExportOptions::named("x"))
        .unwrap();
    let list = col.array.as_fixed_size_list();
    assert_eq!(list.len(), 3);
    assert_eq!(list.value_length(), 8);
    let values = list.values().as_primitive::<Float32Type>();
    assert_eq!(values.values().as_ptr().cast::<u8>(), t.data_ptr());
    assert_eq!(values.value(13), 13.0);
    assert_eq!(col.field.name(), "x");
    let md = col.field.metadata();
    assert_eq!(
        md.get("ARROW:extension:name").unwrap(),
        "arrow.fixed_shape_tensor"
    );
    assert_eq!(
        md.get("ARROW:extension:metadata").unwrap(),
        r#"{"shape":[2,4]}"#
    );
    let DataType::FixedSizeList(item, 8) = col.field.data_type() else {
        panic!("{}", col.field.data_type())
    };
    assert!(item.is_nullable(), "pyarrow's child is nullable");
    drop(t);
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    // Round trip back: same memory, the exported TensorView still alive inside Arrow.
    let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
    drop(col);
    assert_eq!(back.shape(), &[3, 2, 4]);
    assert!(back.is_read_only());
    assert_eq!(back.to_vec::<f32>().unwrap(), iota(24, |x| x as f32));
    assert_eq!(drops.load(Ordering::SeqCst), 0);
    drop(back);
    assert_eq!(drops.load(Ordering::SeqCst), 1);
}

#[test]
fn dim_names_are_written_and_checked() {
    let t = TensorView::from_vec(iota(12, |x| x as i32), &[2, 3, 2]).unwrap();
    let opts = ArrowExportOptions {
        dim_names: Some(vec!["h".into(), "w".into()]),
        ..never()
    };
    let col = t.to_arrow(&opts).unwrap();
    assert_eq!(
        col.field
            .metadata()
            .get("ARROW:extension:metadata")
            .unwrap(),
        r#"{"shape":[3,2],"dim_names":["h","w"]}"#
    );
    let meta = FixedShapeTensorMeta::from_field(&col.field)
        .unwrap()
        .unwrap();
    assert_eq!(meta.dim_names, Some(vec!["h".to_string(), "w".to_string()]));
    let bad = ArrowExportOptions {
        dim_names: Some(vec!["h".into()]),
        ..never()
    };
    assert!(matches!(
        t.to_arrow(&bad),
        Err(Error::ArgumentCount {
            given: 1,
            ndim: 2,
            ..
        })
    ));
}

#[test]
fn one_d_export_is_a_primitive_array() {
    let t = TensorView::from_vec(vec![1i64, -2, 3], &[3]).unwrap();
    let col = t.to_arrow(&never()).unwrap();
    assert_eq!(col.field.data_type(), &DataType::Int64);
    assert!(col.field.metadata().is_empty());
    let a = col.array.as_primitive::<Int64Type>();
    assert_eq!(a.values().as_ptr().cast::<u8>(), t.data_ptr());
    assert_eq!(a.values().as_ref(), &[1, -2, 3]);
    assert!(matches!(
        t.reshape(&[1, 3]).unwrap().to_arrow_primitive(&never()),
        Err(Error::InvalidShape(_))
    ));
}

#[test]
fn nested_fixed_size_list_export_and_import() {
    let t = TensorView::from_vec(iota(24, |x| x as u32), &[2, 3, 4]).unwrap();
    let col = t.to_arrow_fixed_size_list(&never()).unwrap();
    let outer = col.array.as_fixed_size_list();
    assert_eq!((outer.len(), outer.value_length()), (2, 3));
    let inner = outer.values().as_fixed_size_list();
    assert_eq!((inner.len(), inner.value_length()), (6, 4));
    assert_eq!(
        inner
            .values()
            .as_primitive::<UInt32Type>()
            .values()
            .as_ptr()
            .cast::<u8>(),
        t.data_ptr()
    );
    let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
    assert_eq!(back.shape(), &[2, 3, 4]);
    assert_eq!(back.data_ptr(), t.data_ptr());
    // Slicing the outer list moves the view by whole rows.
    let sliced = outer.slice(1, 1);
    let s = TensorView::from_arrow(&col.field, &sliced, &import()).unwrap();
    assert_eq!(s.shape(), &[1, 3, 4]);
    assert_eq!(s.data_ptr(), t.data_ptr().wrapping_add(12 * 4));
    assert_eq!(s.to_vec::<u32>().unwrap(), iota(12, |x| x as u32 + 12));
}

#[test]
fn nested_lists_built_by_arrow_with_offsets() {
    // [[[..4]x3] x 4] built with arrow-rs, then sliced through ArrayData at two levels.
    let values: ArrayRef = Arc::new(Int32Array::from(iota(48, |x| x as i32)));
    let item = Arc::new(Field::new("item", DataType::Int32, false));
    let inner = FixedSizeListArray::try_new(item, 4, values.clone(), None).unwrap();
    let inner_field = Arc::new(Field::new("item", inner.data_type().clone(), true));
    let outer = FixedSizeListArray::try_new(inner_field, 3, Arc::new(inner), None).unwrap();
    let data = outer.to_data().slice(1, 2);
    assert_eq!(data.offset(), 1);
    let t = TensorView::from_arrow_data(&data, &import()).unwrap();
    assert_eq!(t.shape(), &[2, 3, 4]);
    let base = values.as_primitive::<Int32Type>().values().as_ptr();
    assert_eq!(t.data_ptr(), base.wrapping_add(12).cast());
    assert_eq!(t.to_vec::<i32>().unwrap(), iota(24, |x| x as i32 + 12));
}

#[test]
fn empty_tensors_round_trip() {
    for shape in [&[0usize, 3][..], &[3, 0, 2], &[2, 3, 0]] {
        let t = TensorView::from_vec(Vec::<f32>::new(), shape).unwrap();
        for f in [TensorView::to_arrow, TensorView::to_arrow_fixed_size_list] {
            let col = f(&t, &never()).unwrap();
            assert_eq!(col.array.len(), shape[0], "{shape:?}");
            let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
            assert_eq!(back.shape(), shape);
        }
    }
    let t = TensorView::from_vec(Vec::<i8>::new(), &[0]).unwrap();
    let col = t.to_arrow(&never()).unwrap();
    assert_eq!(col.array.len(), 0);
    assert!(t.to_arrow_buffer(CopyPolicy::Never).unwrap().is_empty());
}

#[test]
fn non_dense_layouts_need_a_copy() {
    let t = TensorView::from_vec(iota(24, |x| x as f64), &[4, 6]).unwrap();
    let cases = [
        ("transposed", t.transpose().unwrap()),
        ("gaps", t.slice(1, SliceArg::step(2)).unwrap()),
        ("negative", t.slice(0, SliceArg::step(-1)).unwrap()),
        (
            "zero",
            TensorView::from_vec(vec![1.0f64, 2.0], &[1, 2])
                .unwrap()
                .broadcast_to(&[3, 2])
                .unwrap(),
        ),
    ];
    for (what, v) in cases {
        for f in [TensorView::to_arrow, TensorView::to_arrow_fixed_size_list] {
            assert!(
                matches!(f(&v, &never()), Err(Error::CopyRequired(_))),
                "{what} must not export without a copy"
            );
            let col = f(&v, &copy_ok()).unwrap();
            let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
            assert_eq!(back.shape(), v.shape(), "{what}");
            assert!(back.is_c_contiguous());
            assert_eq!(
                back.to_vec::<f64>().unwrap(),
                v.to_vec::<f64>().unwrap(),
                "{what}"
            );
        }
        assert!(v.to_arrow_buffer(CopyPolicy::Never).is_err());
        let buf = v.to_arrow_buffer(CopyPolicy::IfNeeded).unwrap();
        assert_eq!(
            buf.typed_data::<f64>(),
            v.to_vec::<f64>().unwrap().as_slice()
        );
    }
    // Size-1 axes with odd strides are still dense.
    let odd = t.slice(0, SliceArg::range(1, 2)).unwrap();
    let col = odd.to_arrow(&never()).unwrap();
    let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
    assert_eq!(back.data_ptr(), odd.data_ptr());
}

#[test]
fn permutation_export_is_zero_copy_and_import_honours_it() {
    // Rows of transposed matrices: [n, 4, 3] viewed from [n, 3, 4].
    let base = TensorView::from_vec(iota(24, |x| x as i16), &[2, 3, 4]).unwrap();
    let t = base.permute(&[0, 2, 1]).unwrap();
    let opts = ArrowExportOptions {
        use_permutation: true,
        dim_names: Some(vec!["a".into(), "b".into()]),
        ..never()
    };
    let col = t.to_arrow_fixed_shape_tensor(&opts).unwrap();
    assert_eq!(
        col.field
            .metadata()
            .get("ARROW:extension:metadata")
            .unwrap(),
        r#"{"shape":[3,4],"dim_names":["b","a"],"permutation":[1,0]}"#
    );
    let values = col
        .array
        .as_fixed_size_list()
        .values()
        .as_primitive::<Int16Type>();
    assert_eq!(values.values().as_ptr().cast::<u8>(), base.data_ptr());
    let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
    assert_eq!(back.shape(), t.shape());
    assert_eq!(back.strides(), t.strides());
    assert_eq!(back.data_ptr(), t.data_ptr());
    assert_eq!(back.to_vec::<i16>().unwrap(), t.to_vec::<i16>().unwrap());

    // A 3-cycle of the row axes round-trips in dlbridge (pyarrow 26 gets these wrong).
    let base = TensorView::from_vec(iota(48, |x| x as f32), &[2, 2, 3, 4]).unwrap();
    let t = base.permute(&[0, 2, 3, 1]).unwrap();
    let col = t.to_arrow_fixed_shape_tensor(&opts_perm()).unwrap();
    let meta = FixedShapeTensorMeta::from_field(&col.field)
        .unwrap()
        .unwrap();
    assert_eq!(meta.shape, vec![2, 3, 4]);
    assert_eq!(meta.permutation, Some(vec![1, 2, 0]));
    let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
    assert_eq!(back.shape(), &[2, 3, 4, 2]);
    assert_eq!(back.data_ptr(), base.data_ptr());
    assert_eq!(back.to_vec::<f32>().unwrap(), t.to_vec::<f32>().unwrap());

    // Default: no permutation; a C-order copy when allowed.
    assert!(matches!(
        t.to_arrow_fixed_shape_tensor(&never()),
        Err(Error::CopyRequired(_))
    ));
    let col = t.to_arrow_fixed_shape_tensor(&copy_ok()).unwrap();
    assert_eq!(
        FixedShapeTensorMeta::from_field(&col.field)
            .unwrap()
            .unwrap()
            .permutation,
        None
    );
    // Rows not outermost cannot be expressed by a permutation.
    let full_t = base.permute(&[1, 0, 2, 3]).unwrap();
    assert!(full_t.to_arrow_fixed_shape_tensor(&opts_perm()).is_err());
}

fn opts_perm() -> ArrowExportOptions {
    ArrowExportOptions {
        use_permutation: true,
        ..never()
    }
}

#[test]
fn unsupported_exports_are_typed_errors() {
    let scalar = TensorView::from_vec(vec![1.0f32], &[]).unwrap();
    assert!(matches!(
        scalar.to_arrow(&never()),
        Err(Error::InvalidShape(_))
    ));
    let bf = TensorView::from_vec(vec![half::bf16::ONE; 4], &[2, 2]).unwrap();
    assert!(matches!(
        bf.to_arrow(&copy_ok()),
        Err(Error::UnsupportedArrowType(m)) if m.contains("bfloat16")
    ));
    let mut v = vec![0f32; 4];
    let mut parts = Parts::contiguous(v.as_mut_ptr().cast(), vec![2, 2], DType::F32);
    parts.device = Device {
        kind: DeviceType::CUDA,
        id: 0,
    };
    // SAFETY: never dereferenced (device memory); the Vec outlives the view.
    let gpu = unsafe { TensorView::from_parts(parts, Owner::new(())) }.unwrap();
    assert!(matches!(
        gpu.to_arrow(&copy_ok()),
        Err(Error::UnsupportedDevice { .. })
    ));
    drop(gpu);
    drop(v);
}

// ----------------------------------------------------------------------------------- import ---

#[test]
fn primitive_import_is_zero_copy_and_holds_the_buffer() {
    let a = Float32Array::from(iota(10, |x| x as f32));
    let buffer = a.values().inner().clone();
    let before = buffer.strong_count();
    let t =
        TensorView::from_arrow(&Field::new("a", DataType::Float32, false), &a, &import()).unwrap();
    assert_eq!(t.data_ptr(), buffer.as_ptr());
    assert_eq!(t.shape(), &[10]);
    assert!(t.is_read_only());
    assert!(!t.is_copied());
    assert_eq!(buffer.strong_count(), before + 1);
    let t2 = t.clone();
    drop(a);
    drop(t);
    assert_eq!(t2.to_vec::<f32>().unwrap()[9], 9.0);
    assert_eq!(buffer.strong_count(), before);
    drop(t2);
    assert_eq!(buffer.strong_count(), before - 1);
    let mut ro =
        TensorView::from_arrow_buffer(&buffer, DType::F32, &[10], CopyPolicy::Never).unwrap();
    assert!(matches!(ro.as_mut_slice::<f32>(), Err(Error::ReadOnly(_))));
}

#[test]
fn sliced_primitive_import_honours_offsets() {
    let a = Int64Array::from(iota(10, |x| x as i64 * 3));
    let base = a.values().as_ptr();
    let s = a.slice(2, 5);
    let t = TensorView::from_arrow_data(&s.to_data(), &import()).unwrap();
    assert_eq!(t.data_ptr(), base.wrapping_add(2).cast());
    assert_eq!(t.to_vec::<i64>().unwrap(), vec![6, 9, 12, 15, 18]);
    // ArrayData-level offset (as FFI imports carry it).
    let d = a.to_data().slice(7, 3);
    let t = TensorView::from_arrow_data(&d, &import()).unwrap();
    assert_eq!(t.data_ptr(), base.wrapping_add(7).cast());
    assert_eq!(t.to_vec::<i64>().unwrap(), vec![21, 24, 27]);
    // Sliced fixed_shape_tensor column.
    let src = TensorView::from_vec(iota(30, |x| x as u8), &[5, 3, 2]).unwrap();
    let col = src.to_arrow(&never()).unwrap();
    let sliced = col.array.slice(3, 2);
    let t = TensorView::from_arrow(&col.field, sliced.as_ref(), &import()).unwrap();
    assert_eq!(t.shape(), &[2, 3, 2]);
    assert_eq!(t.data_ptr(), src.data_ptr().wrapping_add(18));
    assert_eq!(t.to_vec::<u8>().unwrap(), iota(12, |x| x as u8 + 18));
}

macro_rules! roundtrip_types {
    ($($name:ident: $t:ty, $arrow:ty, $f:expr;)*) => {$(
        #[test]
        fn $name() {
            let vals: Vec<$t> = iota(12, $f);
            let t = TensorView::from_vec(vals.clone(), &[3, 4]).unwrap();
            let col = t.to_arrow(&never()).unwrap();
            let inner = col.array.as_fixed_size_list().values().as_primitive::<$arrow>().clone();
            assert_eq!(inner.values().as_ref(), vals.as_slice());
            assert_eq!(inner.values().as_ptr().cast::<u8>(), t.data_ptr());
            let back = TensorView::from_arrow(&col.field, col.array.as_ref(), &import()).unwrap();
            assert_eq!(back.dtype(), t.dtype());
            assert_eq!(back.data_ptr(), t.data_ptr());
            assert_eq!(back.to_vec::<$t>().unwrap(), vals);
            // 1-D as a primitive array, and the Arrow-built array back.
            let flat = t.reshape(&[12]).unwrap().to_arrow_primitive(&never()).unwrap();
            assert_eq!(flat.as_primitive::<$arrow>().values().as_ref(), vals.as_slice());
            let arrow_made = PrimitiveArray::<$arrow>::from_iter_values(vals.iter().copied());
            let v = TensorView::from_arrow_data(&arrow_made.to_data(), &import()).unwrap();
            assert_eq!(v.data_ptr(), arrow_made.values().as_ptr().cast());
            assert_eq!(v.to_vec::<$t>().unwrap(), vals);
        }
    )*};
}

roundtrip_types! {
    types_i8: i8, Int8Type, |x| x as i8 - 6;
    types_i16: i16, Int16Type, |x| x as i16 * -300;
    types_i32: i32, Int32Type, |x| x as i32 * -100_000;
    types_i64: i64, Int64Type, |x| x as i64 * -(1 << 40);
    types_u8: u8, UInt8Type, |x| x as u8 * 20;
    types_u16: u16, UInt16Type, |x| x as u16 * 5000;
    types_u32: u32, UInt32Type, |x| x as u32 * 300_000_000;
    types_u64: u64, UInt64Type, |x| x as u64 * (1 << 60);
    types_f16: half::f16, Float16Type, |x| half::f16::from_f32(x as f32 * 0.25);
    types_f32: f32, Float32Type, |x| x as f32 * 1.5e-3;
    types_f64: f64, Float64Type, |x| x as f64 * -2.5e100;
}

#[test]
fn nulls_are_refused_or_filled() {
    let a = Int32Array::from(vec![Some(1), None, Some(3), None]);
    let err = TensorView::from_arrow_data(&a.to_data(), &import()).unwrap_err();
    assert!(matches!(err, Error::Nulls(2)), "{err}");
    let opts = ArrowImportOptions {
        null_fill: Some(FillValue::Int(-7)),
        ..import()
    };
    let t = TensorView::from_arrow_data(&a.to_data(), &opts).unwrap();
    assert!(t.is_copied());
    assert_eq!(t.to_vec::<i32>().unwrap(), vec![1, -7, 3, -7]);
    // A slice without nulls needs no fill and stays zero-copy.
    let s = a.slice(2, 1);
    let t = TensorView::from_arrow_data(&s.to_data(), &import()).unwrap();
    assert_eq!(t.data_ptr(), a.values().as_ptr().wrapping_add(2).cast());
    // Out-of-range fill values are errors.
    let u = UInt8Array::from(vec![Some(1), None]);
    let bad = ArrowImportOptions {
        null_fill: Some(FillValue::Int(-1)),
        ..import()
    };
    assert!(matches!(
        TensorView::from_arrow_data(&u.to_data(), &bad),
        Err(Error::UnrepresentableFill {
            dtype: DType::U8,
            ..
        })
    ));
    // Null rows of a list (outer level) and null values (leaf level) combine.
    let values = Float32Array::from(vec![
        Some(1.0),
        Some(2.0),
        None,
        Some(4.0),
        Some(5.0),
        Some(6.0),
    ]);
    let item = Arc::new(Field::new("item", DataType::Float32, true));
    let rows = NullBuffer::from(vec![true, true, false]);
    let list = FixedSizeListArray::try_new(item, 2, Arc::new(values), Some(rows)).unwrap();
    let field = Field::new("x", list.data_type().clone(), true);
    assert!(TensorView::from_arrow(&field, &list, &import()).is_err());
    let opts = ArrowImportOptions {
        null_fill: Some(FillValue::Float(f64::NAN)),
        ..import()
    };
    let t = TensorView::from_arrow(&field, &list, &opts).unwrap();
    assert_eq!(t.shape(), &[3, 2]);
    let got = t.to_vec::<f32>().unwrap();
    assert_eq!(&got[..2], &[1.0, 2.0]);
    assert!(got[2].is_nan() && got[3] == 4.0 && got[4].is_nan() && got[5].is_nan());
}

#[test]
fn booleans_are_copied_only_when_allowed() {
    let t = TensorView::from_vec(vec![true, false, true, true, false, false], &[2, 3]).unwrap();
    assert!(matches!(t.to_arrow(&never()), Err(Error::CopyRequired(_))));
    let col = t.to_arrow(&copy_ok()).unwrap();
    let bits = col.array.as_fixed_size_list().values().as_boolean().clone();
    assert_eq!(
        bits.values().iter().collect::<Vec<_>>(),
        t.to_vec::<bool>().unwrap()
    );
    assert!(matches!(
        TensorView::from_arrow(&col.field, col.array.as_ref(), &import()),
        Err(Error::CopyRequired(_))
    ));
    let back = TensorView::from_arrow(
        &col.field,
        col.array.as_ref(),
        &ArrowImportOptions::allow_copy(),
    )
    .unwrap();
    assert!(back.is_copied() && !back.is_read_only());
    assert_eq!(back.dtype(), DType::BOOL);
    assert_eq!(back.shape(), &[2, 3]);
    assert_eq!(back.to_vec::<bool>().unwrap(), t.to_vec::<bool>().unwrap());
    // Sliced bit offsets and nulls.
    let b = BooleanArray::from(vec![Some(true), None, Some(false), Some(true), None]);
    let s = b.slice(2, 3);
    let opts = ArrowImportOptions {
        null_fill: Some(FillValue::Bool(true)),
        copy: CopyPolicy::IfNeeded,
    };
    let v = TensorView::from_arrow_data(&s.to_data(), &opts).unwrap();
    assert_eq!(v.to_vec::<bool>().unwrap(), vec![false, true, true]);
    let v =
        TensorView::from_arrow_data(&b.slice(2, 2).to_data(), &ArrowImportOptions::allow_copy())
            .unwrap();
    assert_eq!(v.to_vec::<bool>().unwrap(), vec![false, true]);
}

#[test]
fn misaligned_buffers_are_errors_or_copies() {
    let vals = [1.5f32, -2.0, 3.25, 1e9];
    let mut bytes = vec![0u8];
    for v in vals {
        bytes.extend_from_slice(&v.to_ne_bytes());
    }
    let buffer = Buffer::from_vec(bytes).slice(1);
    assert_eq!(
        buffer.as_ptr() as usize % 4,
        1,
        "test needs a misaligned pointer"
    );
    let err =
        TensorView::from_arrow_buffer(&buffer, DType::F32, &[4], CopyPolicy::Never).unwrap_err();
    assert!(matches!(err, Error::Misaligned { align: 4, .. }), "{err}");
    let t =
        TensorView::from_arrow_buffer(&buffer, DType::F32, &[2, 2], CopyPolicy::IfNeeded).unwrap();
    assert!(t.is_copied());
    assert!((t.data_ptr() as usize).is_multiple_of(4));
    assert_eq!(t.to_vec::<f32>().unwrap(), vals.to_vec());
    // Too short a buffer is an error, not a read out of bounds.
    assert!(matches!(
        TensorView::from_arrow_buffer(&buffer, DType::F32, &[5], CopyPolicy::IfNeeded),
        Err(Error::OutOfBounds(_))
    ));
    // A misaligned array as FFI could hand it over (arrow-rs's typed arrays would panic).
    let builder = ArrayData::builder(DataType::Float32)
        .len(4)
        .add_buffer(buffer.clone());
    // SAFETY: the buffer holds 4 f32s worth of bytes; only the alignment rule is broken, which
    // is what this test is about; the data is only inspected through dlbridge.
    let data = unsafe { builder.build_unchecked() };
    let err = TensorView::from_arrow_data(&data, &import()).unwrap_err();
    assert!(matches!(err, Error::Misaligned { .. }), "{err}");
    let t = TensorView::from_arrow_data(&data, &ArrowImportOptions::allow_copy()).unwrap();
    assert_eq!(t.to_vec::<f32>().unwrap(), vals.to_vec());
    // Export of a misaligned view (reinterpreted bytes) copies or fails.
    let raw = TensorView::from_vec(vec![0u8; 9], &[9]).unwrap();
    let odd = raw
        .slice(0, SliceArg::range(1, 9))
        .unwrap()
        .reinterpret(DType::F32)
        .unwrap();
    assert!(matches!(
        odd.to_arrow(&never()),
        Err(Error::Misaligned { .. })
    ));
    let col = odd.to_arrow(&copy_ok()).unwrap();
    assert_eq!(col.array.len(), 2);
}

#[test]
fn extension_metadata_is_parsed_leniently() {
    // What arrow-rs 60 writes: nulls and "permutations".
    let m = FixedShapeTensorMeta::parse(r#"{"shape":[2,3],"dim_names":null,"permutations":null}"#)
        .unwrap();
    assert_eq!(m.shape, vec![2, 3]);
    assert_eq!((m.dim_names, m.permutation), (None, None));
    let m = FixedShapeTensorMeta::parse(r#"{"shape":[2,3],"permutations":[1,0]}"#).unwrap();
    assert_eq!(m.permutation, Some(vec![1, 0]));
    for bad in [
        r#"{"shape":[2,-3]}"#,
        r#"{"dim_names":["a"]}"#,
        r#"{"shape":[2,3],"permutation":[0,0]}"#,
        r#"{"shape":[2,3],"dim_names":["a"]}"#,
        r#"[1,2]"#,
        "not json",
    ] {
        assert!(FixedShapeTensorMeta::parse(bad).is_err(), "{bad}");
    }
    // A non-nullable child (arrow-rs's choice) is accepted, a wrong list size is refused.
    let values: ArrayRef = Arc::new(Int32Array::from(iota(12, |x| x as i32)));
    let item = Arc::new(Field::new("item", DataType::Int32, false));
    let list = FixedSizeListArray::try_new(item, 6, values, None).unwrap();
    let ext = |json: &str| {
        Field::new("t", list.data_type().clone(), false).with_metadata(
            [
                (
                    "ARROW:extension:name".to_string(),
                    "arrow.fixed_shape_tensor".to_string(),
                ),
                ("ARROW:extension:metadata".to_string(), json.to_string()),
            ]
            .into_iter()
            .collect::<std::collections::HashMap<_, _>>(),
        )
    };
    let t = TensorView::from_arrow(
        &ext(r#"{"shape":[3,2],"dim_names":null}"#),
        &list,
        &import(),
    )
    .unwrap();
    assert_eq!(t.shape(), &[2, 3, 2]);
    assert!(matches!(
        TensorView::from_arrow(&ext(r#"{"shape":[4,2]}"#), &list, &import()),
        Err(Error::LengthMismatch {
            numel: 8,
            len: 6,
            ..
        })
    ));
    let strings = StringArray::from(vec!["a"]);
    assert!(matches!(
        TensorView::from_arrow_data(&strings.to_data(), &import()),
        Err(Error::UnsupportedArrowType(_))
    ));
}

// -------------------------------------------------------------------------------------- IPC ---

// ------------------------------------------------------------------------------ IPC files ---
#[cfg(feature = "arrow-ipc")]
mod ipc_files {
    use super::*;
    use std::path::PathBuf;
    use std::process::Command;

    fn sample_columns() -> Vec<(&'static str, TensorView)> {
        vec![
            (
                "t",
                TensorView::from_vec(iota(24, |x| x as f32), &[3, 2, 4]).unwrap(),
            ),
            (
                "labels",
                TensorView::from_vec(vec![10i64, 20, 30], &[3]).unwrap(),
            ),
            (
                "tt",
                TensorView::from_vec(iota(24, |x| x as i32), &[3, 4, 2])
                    .unwrap()
                    .permute(&[0, 2, 1])
                    .unwrap(),
            ),
        ]
    }

    fn sample_batch() -> arrow_array::RecordBatch {
        let cols = sample_columns();
        let refs: Vec<(&str, &TensorView)> = cols.iter().map(|(n, t)| (*n, t)).collect();
        record_batch_from_tensors(&refs, &opts_perm()).unwrap()
    }

    fn check_sample(cols: &[(String, TensorView)]) {
        let expected = sample_columns();
        assert_eq!(cols.len(), expected.len());
        for ((name, got), (ename, want)) in cols.iter().zip(&expected) {
            assert_eq!(name, ename);
            assert_eq!(got.shape(), want.shape(), "{name}");
            assert_eq!(got.dtype(), want.dtype(), "{name}");
            assert_eq!(
                dlbridge_bytes(got),
                dlbridge_bytes(want),
                "{name} values differ"
            );
        }
    }

    fn dlbridge_bytes(t: &TensorView) -> Vec<u8> {
        let c = t.to_contiguous(dlbridge::Order::C).unwrap();
        // SAFETY: `c` is a live C-contiguous host copy of nbytes bytes.
        unsafe { std::slice::from_raw_parts(c.data_ptr(), c.nbytes()) }.to_vec()
    }

    #[test]
    fn ipc_file_and_stream_round_trip() {
        let batch = sample_batch();
        let mut file = Vec::new();
        ipc::write_file(&mut file, &[batch.clone(), batch.clone()]).unwrap();
        let batches = ipc::read_file(std::io::Cursor::new(&file)).unwrap();
        assert_eq!(batches.len(), 2);
        for b in &batches {
            check_sample(&tensors_from_record_batch(b, &import()).unwrap());
            assert!(is_fixed_shape_tensor(b.schema().field(0)));
        }
        let mut stream = Vec::new();
        ipc::write_stream(&mut stream, &[batch]).unwrap();
        let batches = ipc::read_stream(std::io::Cursor::new(&stream)).unwrap();
        check_sample(&tensors_from_record_batch(&batches[0], &import()).unwrap());
        // Zero-copy decode: the tensors point into the file buffer and keep it alive.
        let buffer = Buffer::from_vec(file);
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let before = buffer.strong_count();
        let batches = ipc::read_file_buffer(buffer.clone()).unwrap();
        let cols = tensors_from_record_batch(&batches[1], &import()).unwrap();
        check_sample(&cols);
        for (name, t) in &cols {
            assert!(
                range.contains(&(t.data_ptr() as usize)),
                "{name} was copied"
            );
            assert!(t.is_read_only());
        }
        drop(batches);
        assert!(
            buffer.strong_count() > before,
            "tensors hold the file buffer"
        );
        drop(cols);
        assert_eq!(buffer.strong_count(), before);
        assert!(ipc::read_file_buffer(Buffer::from_vec(vec![0u8; 5])).is_err());
        assert!(ipc::read_file_buffer(Buffer::from_vec(vec![7u8; 64])).is_err());
    }

    // ---------------------------------------------------------------------------------- pyarrow ---

    /// The Python with pyarrow these cross-checks run: `DLBRIDGE_PYTHON`, which `scripts/env.sh`
    /// sets. Without it the test fails (it never passes without having checked anything).
    fn python() -> PathBuf {
        std::env::var_os("DLBRIDGE_PYTHON")
            .map(PathBuf::from)
            .expect("set DLBRIDGE_PYTHON to a Python with pyarrow (source scripts/env.sh)")
    }

    fn run_check(py: &PathBuf, mode: &str, file: &std::path::Path) {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python_tests/arrow_ipc_check.py");
        let out = Command::new(py)
            .arg(&script)
            .arg(mode)
            .arg(file)
            .output()
            .expect("run python");
        assert!(
            out.status.success(),
            "pyarrow {mode} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("{}", String::from_utf8_lossy(&out.stdout));
    }

    fn temp_file(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("dlbridge-{}-{name}", std::process::id()))
    }

    #[test]
    fn pyarrow_reads_our_ipc_file() {
        let py = python();
        let path = temp_file("to-pyarrow.arrow");
        ipc::write_file(std::fs::File::create(&path).unwrap(), &[sample_batch()]).unwrap();
        run_check(&py, "read", &path);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn we_read_pyarrow_ipc_file() {
        let py = python();
        let path = temp_file("from-pyarrow.arrow");
        run_check(&py, "write", &path);
        let buffer = Buffer::from_vec(std::fs::read(&path).unwrap());
        std::fs::remove_file(&path).unwrap();
        let range = buffer.as_ptr() as usize..buffer.as_ptr() as usize + buffer.len();
        let batches = ipc::read_file_buffer(buffer).unwrap();
        assert_eq!(batches.len(), 1);
        let schema = batches[0].schema();
        let named = FixedShapeTensorMeta::from_field(schema.field_with_name("named").unwrap())
            .unwrap()
            .unwrap();
        assert_eq!(
            named.dim_names,
            Some(vec!["h".to_string(), "w".to_string()])
        );
        let cols = tensors_from_record_batch(&batches[0], &import()).unwrap();
        let get = |n: &str| &cols.iter().find(|(name, _)| name == n).unwrap().1;
        for (name, t) in &cols {
            assert!(
                range.contains(&(t.data_ptr() as usize)),
                "{name} was copied"
            );
        }
        let t = get("t");
        assert_eq!(t.shape(), &[4, 2, 3]);
        assert_eq!(t.to_vec::<f64>().unwrap(), iota(24, |x| x as f64 * 0.5));
        let named = get("named");
        assert_eq!(named.shape(), &[4, 3, 2]);
        assert_eq!(named.to_vec::<u16>().unwrap(), iota(24, |x| x as u16));
        let perm = get("perm");
        let want = TensorView::from_vec(iota(24, |x| x as i32), &[4, 2, 3])
            .unwrap()
            .permute(&[0, 2, 1])
            .unwrap();
        assert_eq!(perm.shape(), want.shape());
        assert_eq!(perm.strides(), want.strides());
        assert_eq!(perm.to_vec::<i32>().unwrap(), want.to_vec::<i32>().unwrap());
        assert_eq!(get("v").to_vec::<i16>().unwrap(), vec![-1, 0, 1, 2]);
    }
}

// ------------------------------------------------------------------ C data interface, validated
mod c_data_import {
    use super::*;
    use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
    use dlbridge::interop::arrow::c_data::{field_from_c_schema, import_c_array};

    fn exported(field: &Field, array: &dyn Array) -> (FFI_ArrowSchema, FFI_ArrowArray) {
        (
            FFI_ArrowSchema::try_from(field).unwrap(),
            FFI_ArrowArray::new(&array.to_data()),
        )
    }

    #[test]
    fn a_tensor_column_round_trips_without_copying() {
        let t = TensorView::from_vec((0..24).map(|x| x as f32).collect(), &[4, 2, 3]).unwrap();
        let col = t.to_arrow(&Default::default()).unwrap();
        let (schema, mut array) = exported(&col.field, col.array.as_ref());
        // SAFETY: both structs were just exported by arrow-rs and live through the call.
        let imported = unsafe { import_c_array(&schema, &mut array) }.unwrap();
        assert!(array.is_released(), "moved out of the caller's struct");
        assert!(!imported.realigned);
        let back = imported.into_tensor(&Default::default()).unwrap();
        assert_eq!(back.data_ptr(), t.data_ptr());
        assert_eq!(back.shape(), &[4, 2, 3]);
    }

    #[test]
    fn released_structs_are_refused_and_left_alone() {
        let field = Field::new("x", DataType::Float32, false);
        let values = Float32Array::from(vec![1.0, 2.0]);
        let (mut schema, mut array) = exported(&field, &values);
        // SAFETY: moving a live struct out leaves a released one behind (C data interface).
        let moved_schema = unsafe { FFI_ArrowSchema::from_raw(&mut schema) };
        // SAFETY: `schema` is an initialised, released struct.
        let err = unsafe { field_from_c_schema(&schema) }.unwrap_err();
        assert!(err.to_string().contains("released"), "{err}");
        // SAFETY: as above; the array is untouched on error.
        let err = unsafe { import_c_array(&schema, &mut array) }.unwrap_err();
        assert!(err.to_string().contains("released"), "{err}");
        assert!(!array.is_released());
        // SAFETY: moving the live array out leaves a released struct.
        let _moved_array = unsafe { FFI_ArrowArray::from_raw(&mut array) };
        // SAFETY: a live schema and a released array.
        let err = unsafe { import_c_array(&moved_schema, &mut array) }.unwrap_err();
        assert!(err.to_string().contains("released"), "{err}");
    }

    #[test]
    fn a_schema_the_array_does_not_match_is_an_error_not_a_panic() {
        let flat = Float32Array::from(vec![1.0; 6]);
        let list_field = Field::new(
            "x",
            DataType::FixedSizeList(Arc::new(Field::new("item", DataType::Float32, true)), 3),
            false,
        );
        let (schema, _) = exported(&list_field, &flat.slice(0, 0));
        let mut array = FFI_ArrowArray::new(&flat.to_data());
        // SAFETY: live structs; a list schema over a flat array (the review's panic).
        let err = unsafe { import_c_array(&schema, &mut array) }.unwrap_err();
        assert!(matches!(err, Error::MalformedArrow(_)), "{err}");
        assert!(!array.is_released());
        // And the other way round: a flat schema over a list array.
        let list = (TensorView::from_vec(vec![0f32; 6], &[2, 3]).unwrap())
            .to_arrow(&Default::default())
            .unwrap();
        let flat_field = Field::new("x", DataType::Float32, false);
        let schema = FFI_ArrowSchema::try_from(&flat_field).unwrap();
        let mut array = FFI_ArrowArray::new(&list.array.to_data());
        // SAFETY: live structs.
        assert!(unsafe { import_c_array(&schema, &mut array) }.is_err());
    }

    #[test]
    fn types_without_a_tensor_form_are_refused_before_import() {
        let strings = StringArray::from(vec!["a", "b"]);
        let field = Field::new("s", DataType::Utf8, false);
        let (schema, mut array) = exported(&field, &strings);
        // SAFETY: live structs.
        let err = unsafe { import_c_array(&schema, &mut array) }.unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedArrowType(m) if m.contains("\"u\"")),
            "{err}"
        );
    }
}

/// The `TryFrom` conversions are the inherent ones with default options: zero-copy, and a
/// typed error where a copy would be needed.
#[test]
fn try_from_conversions_share_memory_and_never_copy() {
    let t = TensorView::from_vec((0..6).map(|x| x as f32).collect(), &[2, 3]).unwrap();
    let buffer = Buffer::try_from(&t).unwrap();
    assert_eq!(buffer.as_ptr(), t.data_ptr());
    assert!(matches!(
        Buffer::try_from(&t.transpose().unwrap()),
        Err(Error::CopyRequired(_)) | Err(Error::NotContiguous(_))
    ));
    let column = TensorColumn::try_from(&t).unwrap();
    let data = column.array.to_data();
    let flat = TensorView::try_from(&data).unwrap(); // storage only: [2, 3] as nested lists
    assert_eq!(
        (flat.data_ptr(), flat.shape()),
        (t.data_ptr(), &[2usize, 3][..])
    );
    let back = TensorView::try_from(&column).unwrap();
    assert_eq!(back.to_vec::<f32>().unwrap(), t.to_vec::<f32>().unwrap());
    assert!(back.is_read_only(), "Arrow memory is immutable");
}
