//! Record batches of tensor columns.

use std::sync::Arc;

use ::arrow_array::RecordBatch;
use ::arrow_schema::Schema;

use super::*;
use crate::{Result, TensorView};

/// A record batch with one column per named tensor (see [`TensorView::to_arrow`]); every tensor's
/// first axis is the row axis, so all must have the same length along it.
///
/// ```
/// use dlbridge::interop::arrow::*;
/// use dlbridge::TensorView;
/// let images = TensorView::from_vec(vec![0u8; 2 * 4 * 4], &[2, 4, 4])?;
/// let labels = TensorView::from_vec(vec![3i64, 7], &[2])?;
/// let batch = record_batch_from_tensors(&[("images", &images), ("labels", &labels)], &Default::default())?;
/// assert_eq!(batch.num_rows(), 2);
/// let cols = tensors_from_record_batch(&batch, &Default::default())?;
/// assert_eq!(cols[0].0, "images");
/// assert_eq!(cols[0].1.shape(), &[2, 4, 4]);
/// assert_eq!(cols[1].1.to_vec::<i64>()?, vec![3, 7]);
/// # Ok::<(), dlbridge::Error>(())
/// ```
pub fn record_batch_from_tensors(
    columns: &[(&str, &TensorView)],
    opts: &ArrowExportOptions,
) -> Result<RecordBatch> {
    let mut fields = Vec::with_capacity(columns.len());
    let mut arrays = Vec::with_capacity(columns.len());
    for (name, tensor) in columns {
        let col_opts = ArrowExportOptions {
            name: (*name).to_string(),
            dim_names: None,
            ..opts.clone()
        };
        let col = tensor.to_arrow(&col_opts)?;
        fields.push(col.field);
        arrays.push(col.array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(arrow_err)
}

/// Every column of `batch` as a named tensor (see [`TensorView::from_arrow`]).
pub fn tensors_from_record_batch(
    batch: &RecordBatch,
    opts: &ArrowImportOptions,
) -> Result<Vec<(String, TensorView)>> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, array)| {
            Ok((
                field.name().clone(),
                TensorView::from_arrow(field, array.as_ref(), opts)?,
            ))
        })
        .collect()
}
