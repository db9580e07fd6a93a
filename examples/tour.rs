//! The tour: one buffer travels through every ecosystem dlbridge connects, and its address never
//! changes.
//!
//! Vec → TensorView → DLPack → TensorView → ndarray → tch → DLPack → TensorView → Arrow
//! (`arrow.fixed_shape_tensor`) → TensorView → ndarray
//!
//! Writable hops come first: Arrow memory is immutable, so once the buffer has been through
//! Arrow it is read-only, and torch (which has no read-only tensors) would need a copy.
//! At each hop it prints the data address, shape, strides, flags and how many handles keep the
//! buffer alive; at the end, that the buffer was released exactly once.
//!
//! `scripts/tour.sh` (or `cargo run --example tour --features ndarray,arrow,tch`). Hops whose
//! feature is off are skipped with a message.

use std::sync::atomic::{AtomicUsize, Ordering};

use dlbridge::{Error, TensorView};

static RELEASED: AtomicUsize = AtomicUsize::new(0);

/// The buffer's first owner: a Vec that counts its release.
struct TourBuffer(Vec<f32>);
impl AsMut<[f32]> for TourBuffer {
    fn as_mut(&mut self) -> &mut [f32] {
        &mut self.0
    }
}
impl Drop for TourBuffer {
    fn drop(&mut self) {
        RELEASED.fetch_add(1, Ordering::SeqCst);
    }
}

struct Trail {
    origin: usize,
    hops: usize,
}

impl Trail {
    fn hop(&mut self, name: &str, address: usize, shape: &[usize], strides: &[isize], note: &str) {
        self.hops += 1;
        let same = if address == self.origin {
            "same"
        } else {
            "MOVED"
        };
        println!(
            "{:>2}. {name:<34} {address:#x} ({same})  shape {shape:?} strides {strides:?}  {note}",
            self.hops
        );
        assert_eq!(address, self.origin, "{name}: the data moved");
    }

    fn view(&mut self, name: &str, v: &TensorView) {
        let flags = format!(
            "read_only={} is_copied={} handles={}",
            v.is_read_only(),
            v.is_copied(),
            v.owner().strong_count()
        );
        self.hop(name, v.data_ptr() as usize, v.shape(), v.strides(), &flags);
    }
}

fn main() -> Result<(), Error> {
    // A 3 x 4 float32 matrix in a Vec the tour owns, then viewed transposed (4 x 3, strides
    // (1, 4)): the layout every hop must carry without copying.
    let data: Vec<f32> = (0..12).map(|x| x as f32).collect();
    let matrix = TensorView::from_owner_mut(TourBuffer(data), &[3, 4])?;
    let mut trail = Trail {
        origin: matrix.data_ptr() as usize,
        hops: 0,
    };
    trail.view("Vec<f32> → TensorView", &matrix);
    let view = matrix.transpose()?;
    drop(matrix);
    trail.view("TensorView.transpose()", &view);

    let (shape, strides) = (view.shape().to_vec(), view.strides().to_vec());
    let managed = view.into_dlpack_versioned();
    let dl = managed.dl_tensor()?;
    trail.hop(
        "→ DLManagedTensorVersioned",
        dl.data as usize + dl.byte_offset as usize,
        &shape,
        &strides,
        &format!("version {:?} flags {}", managed.version(), managed.flags()),
    );
    let view = TensorView::from_dlpack_versioned(managed)?;
    trail.view("DLPack → TensorView", &view);

    let view = ndarray_hop(&mut trail, view)?;
    let view = torch_hop(&mut trail, view)?;
    arrow_hop(&mut trail, view)?;

    let released = RELEASED.load(Ordering::SeqCst);
    println!(
        "\n{} hops, one address: {:#x}. Buffer released {released} time(s) after the last handle.",
        trail.hops, trail.origin
    );
    assert_eq!(released, 1, "the buffer must be released exactly once");
    Ok(())
}

#[cfg(feature = "ndarray")]
fn ndarray_hop(trail: &mut Trail, view: TensorView) -> Result<TensorView, Error> {
    let array = view.as_array::<f32, ndarray::Ix2>()?;
    trail.hop(
        "TensorView → ndarray::ArrayView2",
        array.as_ptr() as usize,
        array.shape(),
        array.strides(),
        &format!(
            "column sums {:?}",
            array.sum_axis(ndarray::Axis(0)).to_vec()
        ),
    );
    Ok(view)
}

#[cfg(not(feature = "ndarray"))]
fn ndarray_hop(_: &mut Trail, view: TensorView) -> Result<TensorView, Error> {
    println!("    (ndarray hop skipped: build with --features ndarray)");
    Ok(view)
}

#[cfg(feature = "tch")]
fn torch_hop(trail: &mut Trail, view: TensorView) -> Result<TensorView, Error> {
    // Given up, not lent: the ndarray hop above took a shared reference of this memory, and
    // only the last handle, handed over, proves none of them lives any more.
    let tensor = view.into_tch()?;
    let strides: Vec<isize> = tensor.stride().iter().map(|&s| s as isize).collect();
    let shape: Vec<usize> = tensor.size().iter().map(|&s| s as usize).collect();
    trail.hop(
        "TensorView → tch::Tensor",
        tensor.data_ptr() as usize,
        &shape,
        &strides,
        &format!("sum {}", tensor.sum(tch::Kind::Float).double_value(&[])),
    );
    // Back from torch, giving up its last handle: no torch code can write the memory any more,
    // so the view may lend shared references again (the Arrow hop below needs them).
    let view = TensorView::from_tch_owned(tensor)?;
    trail.view("tch::Tensor → TensorView (owned)", &view);
    Ok(view)
}

#[cfg(not(feature = "tch"))]
fn torch_hop(_: &mut Trail, view: TensorView) -> Result<TensorView, Error> {
    println!("    (torch hop skipped: build with --features tch and libtorch; see README)");
    Ok(view)
}

#[cfg(feature = "arrow")]
fn arrow_hop(trail: &mut Trail, view: TensorView) -> Result<(), Error> {
    use dlbridge::interop::arrow::{ArrowExportOptions, ArrowImportOptions};
    // Arrow rows are the first axis and must be dense: the column holds the 3 row-major rows
    // of 4 (the transpose of the view, which is the original layout), so nothing is copied.
    let rows = view.transpose()?;
    drop(view);
    let column = rows.to_arrow(&ArrowExportOptions::named("tour"))?;
    drop(rows);
    let values = column.array.to_data().child_data()[0].buffers()[0].as_ptr() as usize;
    trail.hop(
        "→ Arrow fixed_shape_tensor column",
        values,
        &[column.array.len()],
        &[],
        &format!("field {:?}", column.field.metadata()),
    );
    let back = TensorView::from_arrow(
        &column.field,
        column.array.as_ref(),
        &ArrowImportOptions::default(),
    )?;
    drop(column);
    trail.view("Arrow → TensorView", &back);
    ndarray_hop(trail, back).map(drop)
}

#[cfg(not(feature = "arrow"))]
fn arrow_hop(_: &mut Trail, view: TensorView) -> Result<(), Error> {
    println!("    (Arrow hop skipped: build with --features arrow)");
    drop(view);
    Ok(())
}
