//! The cast kernel against an independent per-element reference, for every pair of the 13
//! castable dtypes, on contiguous, transposed, sliced and negative-stride views.

use dlbridge::{DType, Error, SliceArg, TensorView};
use half::{bf16, f16};

/// A value as the reference sees it: exact integers, or a float, or a bool.
#[derive(Clone, Copy, Debug)]
enum Value {
    Int(i128),
    Float(f64),
}

const DTYPES: [DType; 13] = [
    DType::BOOL,
    DType::I8,
    DType::I16,
    DType::I32,
    DType::I64,
    DType::U8,
    DType::U16,
    DType::U32,
    DType::U64,
    DType::F16,
    DType::BF16,
    DType::F32,
    DType::F64,
];

/// Sample values of `dtype`, as a tensor of 12 elements (shape [3, 4]) and as reference values.
fn samples(dtype: DType) -> (TensorView, Vec<Value>) {
    let ints: [i128; 12] = [
        0,
        1,
        -1,
        2,
        7,
        -8,
        100,
        -100,
        127,
        255,
        i64::MAX as i128,
        i64::MIN as i128,
    ];
    let floats: [f64; 12] = [
        0.0,
        1.0,
        -1.0,
        2.5,
        -2.5,
        3.999,
        1e3,
        -65504.0,
        1e10,
        f64::NAN,
        f64::INFINITY,
        -0.0,
    ];
    macro_rules! int_case {
        ($t:ty) => {{
            let v: Vec<$t> = ints.iter().map(|&x| x as $t).collect();
            let r = v.iter().map(|&x| Value::Int(x as i128)).collect();
            (TensorView::from_vec(v, &[3, 4]).unwrap(), r)
        }};
    }
    match dtype {
        DType::BOOL => {
            // Stored bytes other than 0 and 1 read as true.
            let bytes: Vec<u8> = vec![0, 1, 2, 255, 0, 1, 0, 0, 1, 1, 7, 0];
            let r = bytes
                .iter()
                .map(|&b| Value::Int(i128::from(b != 0)))
                .collect();
            let t = TensorView::from_vec(bytes, &[3, 4]).unwrap();
            (t.reinterpret(DType::BOOL).unwrap(), r)
        }
        DType::I8 => int_case!(i8),
        DType::I16 => int_case!(i16),
        DType::I32 => int_case!(i32),
        DType::I64 => int_case!(i64),
        DType::U8 => int_case!(u8),
        DType::U16 => int_case!(u16),
        DType::U32 => int_case!(u32),
        DType::U64 => int_case!(u64),
        DType::F16 => {
            let v: Vec<f16> = floats.iter().map(|&x| f16::from_f64(x)).collect();
            let r = v.iter().map(|x| Value::Float(x.to_f64())).collect();
            (TensorView::from_vec(v, &[3, 4]).unwrap(), r)
        }
        DType::BF16 => {
            let v: Vec<bf16> = floats.iter().map(|&x| bf16::from_f64(x)).collect();
            let r = v.iter().map(|x| Value::Float(x.to_f64())).collect();
            (TensorView::from_vec(v, &[3, 4]).unwrap(), r)
        }
        DType::F32 => {
            let v: Vec<f32> = floats.iter().map(|&x| x as f32).collect();
            let r = v.iter().map(|&x| Value::Float(f64::from(x))).collect();
            (TensorView::from_vec(v, &[3, 4]).unwrap(), r)
        }
        DType::F64 => {
            let r = floats.iter().map(|&x| Value::Float(x)).collect();
            (TensorView::from_vec(floats.to_vec(), &[3, 4]).unwrap(), r)
        }
        other => unreachable!("{other}"),
    }
}

/// The expected bytes of `v` cast to `dtype`: integers wrap (two's complement, as C and numpy),
/// floats truncate and saturate into integers (NaN: 0), anything non-zero is true.
fn expected(v: Value, dtype: DType) -> Vec<u8> {
    macro_rules! to_int {
        ($t:ty) => {
            match v {
                Value::Int(i) => (i as $t).to_ne_bytes().to_vec(),
                Value::Float(f) => (f as $t).to_ne_bytes().to_vec(),
            }
        };
    }
    let as_f64 = |v: Value| match v {
        Value::Int(i) => i as f64,
        Value::Float(f) => f,
    };
    match dtype {
        DType::BOOL => vec![u8::from(match v {
            Value::Int(i) => i != 0,
            Value::Float(f) => f != 0.0,
        })],
        DType::I8 => to_int!(i8),
        DType::I16 => to_int!(i16),
        DType::I32 => to_int!(i32),
        DType::I64 => to_int!(i64),
        DType::U8 => to_int!(u8),
        DType::U16 => to_int!(u16),
        DType::U32 => to_int!(u32),
        DType::U64 => to_int!(u64),
        DType::F16 => f16::from_f64(as_f64(v)).to_ne_bytes().to_vec(),
        DType::BF16 => bf16::from_f64(as_f64(v)).to_ne_bytes().to_vec(),
        DType::F32 => match v {
            // One rounding, straight from the integer (as `as` does).
            Value::Int(i) => (i as f32).to_ne_bytes().to_vec(),
            Value::Float(f) => (f as f32).to_ne_bytes().to_vec(),
        },
        DType::F64 => as_f64(v).to_ne_bytes().to_vec(),
        other => unreachable!("{other}"),
    }
}

/// Whether two element byte strings of `dtype` are the same value: equal bytes, or both NaN
/// (Rust leaves the sign and payload of a NaN produced by a conversion unspecified).
/// The dtypes a test walks: all 13, or under Miri (slow) one of each kind.
fn dtypes() -> Vec<DType> {
    if cfg!(miri) {
        vec![DType::BOOL, DType::I8, DType::U64, DType::BF16, DType::F64]
    } else {
        DTYPES.to_vec()
    }
}

fn same_elements(a: &[u8], b: &[u8], dtype: DType) -> bool {
    let size = dtype.itemsize().unwrap();
    let is_nan = |e: &[u8]| match dtype {
        DType::F16 => f16::from_ne_bytes(e.try_into().unwrap()).is_nan(),
        DType::BF16 => bf16::from_ne_bytes(e.try_into().unwrap()).is_nan(),
        DType::F32 => f32::from_ne_bytes(e.try_into().unwrap()).is_nan(),
        DType::F64 => f64::from_ne_bytes(e.try_into().unwrap()).is_nan(),
        _ => false,
    };
    a.len() == b.len()
        && a.chunks(size)
            .zip(b.chunks(size))
            .all(|(x, y)| x == y || (is_nan(x) && is_nan(y)))
}

fn bytes_of(t: &TensorView) -> Vec<u8> {
    assert!(t.is_c_contiguous() && t.is_copied() && !t.is_read_only());
    t.reinterpret(DType::U8).unwrap().to_vec::<u8>().unwrap()
}

#[test]
fn every_pair_matches_the_reference() {
    for from in dtypes() {
        let (t, values) = samples(from);
        for to in dtypes() {
            let got = t.cast(to).unwrap();
            assert_eq!((got.dtype(), got.shape()), (to, &[3, 4][..]));
            let want: Vec<u8> = values.iter().flat_map(|&v| expected(v, to)).collect();
            // float16 <- float32/float64 through float32 may differ from the reference's direct
            // float64 rounding only by double rounding, which these samples avoid.
            let got = bytes_of(&got);
            assert!(
                same_elements(&got, &want, to),
                "{from} -> {to}: {got:?} != {want:?}"
            );
        }
    }
}

#[test]
fn strided_sources_cast_like_their_contiguous_copies() {
    for from in dtypes() {
        let (t, _) = samples(from);
        let views = [
            t.transpose().unwrap(),
            t.slice(1, SliceArg::from(..).with_step(-2)).unwrap(),
            t.slice(0, SliceArg::from(1..))
                .unwrap()
                .transpose()
                .unwrap(),
            t.broadcast_to(&[2, 3, 4]).unwrap(),
        ];
        for v in views {
            let dense = v.to_contiguous(dlbridge::Order::C).unwrap();
            for to in dtypes() {
                assert!(
                    same_elements(
                        &bytes_of(&v.cast(to).unwrap()),
                        &bytes_of(&dense.cast(to).unwrap()),
                        to
                    ),
                    "{from} -> {to}, shape {:?} strides {:?}",
                    v.shape(),
                    v.strides()
                );
            }
        }
    }
}

#[test]
fn empty_and_scalar_tensors() {
    let empty = TensorView::from_vec(Vec::<f32>::new(), &[0, 3]).unwrap();
    assert_eq!(empty.cast(DType::I64).unwrap().shape(), &[0, 3]);
    let scalar = TensorView::from_vec(vec![-3.5f32], &[]).unwrap();
    assert_eq!(
        scalar.cast(DType::I16).unwrap().to_vec::<i16>().unwrap(),
        vec![-3]
    );
}

#[test]
fn other_dtypes_are_refused() {
    let c = TensorView::from_vec(vec![num_complex::Complex32::new(1.0, 2.0)], &[1]).unwrap();
    assert!(matches!(
        c.cast(DType::F32),
        Err(Error::UnsupportedDtype {
            dtype: DType::C64,
            ..
        })
    ));
    let f = TensorView::from_vec(vec![1.0f32], &[1]).unwrap();
    assert!(matches!(
        f.cast(DType::C64),
        Err(Error::UnsupportedDtype {
            dtype: DType::C64,
            ..
        })
    ));
}

/// Casts of 4 MiB and more take two other paths: contiguous sources are converted on every
/// core, and others are first copied to C order by the copy kernel. Both must give the
/// element-wise result. (Too large for Miri, which runs the small cases above; the threaded
/// walk itself runs under Miri in the copy kernel's tests.)
#[test]
#[cfg_attr(
    miri,
    ignore = "allocates 12 MiB; the split walk is covered under Miri by copy.rs"
)]
fn large_casts_match_the_element_wise_result() {
    let (rows, cols) = (1024usize, 1536usize); // 6 MiB of f32
    let values: Vec<f32> = (0..rows * cols)
        .map(|k| (k % 1000) as f32 - 500.5)
        .collect();
    let t = TensorView::from_vec(values.clone(), &[rows, cols]).unwrap();
    let contiguous = t.cast(DType::F64).unwrap();
    let expected: Vec<f64> = values.iter().map(|&x| f64::from(x)).collect();
    assert_eq!(contiguous.as_slice::<f64>().unwrap(), &expected[..]);
    let transposed = t.transpose().unwrap().cast(DType::I32).unwrap();
    assert!(transposed.is_c_contiguous() && transposed.is_copied());
    assert_eq!(transposed.shape(), &[cols, rows]);
    let got = transposed.as_slice::<i32>().unwrap();
    for (i, row) in got.chunks(rows).enumerate() {
        for (j, &x) in row.iter().enumerate() {
            assert_eq!(x, values[j * cols + i] as i32, "at ({i}, {j})");
        }
    }
    let stepped = t
        .slice(1, SliceArg::from(..).with_step(-3))
        .unwrap()
        .cast(DType::F32)
        .unwrap();
    assert_eq!(stepped.shape(), &[rows, cols / 3]);
    assert_eq!(
        stepped.to_vec::<f32>().unwrap()[..3],
        [values[cols - 1], values[cols - 4], values[cols - 7]]
    );
}
