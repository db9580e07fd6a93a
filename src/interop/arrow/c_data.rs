//! The Arrow C data and C stream interfaces, validated before arrow-rs sees them.
//!
//! arrow-rs's importer (`arrow_array::ffi::from_ffi`) trusts its input: a released struct, a null
//! `children` array, a wrong buffer or child count make it read freed memory or panic. Producers
//! reached from Python are not trusted, so every struct is checked here first, against the few
//! Arrow types a tensor can come from (booleans, integers, floats and nested fixed-size lists of
//! them): release callbacks present, counts non-negative and as the type requires, pointer arrays
//! non-null, children long enough for their parents, no dictionary. Anything else is a typed
//! [`Error`]; a panic left in arrow-rs is caught and reported as one too (arrow-rs tracks its
//! panicking FFI paths in apache/arrow-rs#10553 and #8913: drop the catch when they return errors).
//!
//! # What no check can catch
//! The C data interface carries no buffer sizes: a producer whose buffers are shorter than its
//! declared length, or whose schema and array disagree about the element width, makes any
//! consumer (pyarrow included) read past the buffer. That is the interface's limit; dlbridge
//! checks everything the structs do carry.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

use ::arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use ::arrow_array::ffi_stream::FFI_ArrowArrayStream;
use ::arrow_array::{make_array, ArrayRef};
use ::arrow_data::ArrayData;
use ::arrow_schema::{DataType, Field};

use super::{arrow_err, dtype_of_arrow, ArrowImportOptions, FixedShapeTensorMeta};
use crate::{CopyPolicy, Error, ForeignError, Result, TensorView};

/// Deepest nesting of fixed-size lists accepted (one per tensor dimension).
const MAX_DEPTH: usize = crate::MAX_NDIM;

/// `struct ArrowSchema` of the C data interface, with its fields readable for validation.
#[repr(C)]
struct RawSchema {
    format: *const c_char,
    name: *const c_char,
    metadata: *const c_char,
    flags: i64,
    n_children: i64,
    children: *mut *mut RawSchema,
    dictionary: *mut RawSchema,
    release: Option<unsafe extern "C" fn(*mut RawSchema)>,
    private_data: *mut c_void,
}

/// `struct ArrowArray` of the C data interface.
#[repr(C)]
struct RawArray {
    length: i64,
    null_count: i64,
    offset: i64,
    n_buffers: i64,
    n_children: i64,
    buffers: *mut *const c_void,
    children: *mut *mut RawArray,
    dictionary: *mut RawArray,
    release: Option<unsafe extern "C" fn(*mut RawArray)>,
    private_data: *mut c_void,
}

/// `struct ArrowArrayStream` of the C stream interface.
#[repr(C)]
struct RawStream {
    get_schema: Option<unsafe extern "C" fn(*mut RawStream, *mut RawSchema) -> c_int>,
    get_next: Option<unsafe extern "C" fn(*mut RawStream, *mut RawArray) -> c_int>,
    get_last_error: Option<unsafe extern "C" fn(*mut RawStream) -> *const c_char>,
    release: Option<unsafe extern "C" fn(*mut RawStream)>,
    private_data: *mut c_void,
}

// The mirrors must be exactly arrow-rs's (both are the C ABI's).
const _: () = {
    assert!(std::mem::size_of::<RawSchema>() == std::mem::size_of::<FFI_ArrowSchema>());
    assert!(std::mem::size_of::<RawArray>() == std::mem::size_of::<FFI_ArrowArray>());
    assert!(std::mem::size_of::<RawStream>() == std::mem::size_of::<FFI_ArrowArrayStream>());
};

fn invalid(what: impl Into<String>) -> Error {
    Error::MalformedArrow(format!("C data interface: {}", what.into()))
}

/// The message of a caught panic (`"panic"` when it carries none).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("panic")
}

/// Run `f`, turning a panic inside a dependency into a typed error.
fn no_panic<T>(what: &'static str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let detail = panic_message(payload.as_ref());
        Err(invalid(format!("{what} failed inside arrow-rs: {detail}")))
    })
}

/// A NUL-terminated UTF-8 string field, or an error naming it.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string.
unsafe fn c_str<'a>(ptr: *const c_char, what: &str) -> Result<&'a str> {
    if ptr.is_null() {
        return Err(invalid(format!("{what} is NULL")));
    }
    // SAFETY: non-null, NUL-terminated per the contract.
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|_| invalid(format!("{what} is not UTF-8")))
}

/// The `index`-th entry of a C array of `count` pointers, non-null.
///
/// # Safety
/// `array` is null or holds `count` readable pointers.
unsafe fn entry<T>(array: *mut *mut T, count: i64, index: usize, what: &str) -> Result<*mut T> {
    if array.is_null() {
        return Err(invalid(format!(
            "{what} array is NULL with {count} entries"
        )));
    }
    // SAFETY: `index < count` (callers iterate below `count`) and the array holds `count` items.
    let item = unsafe { array.add(index).read_unaligned() };
    if item.is_null() {
        return Err(invalid(format!("{what} {index} is NULL")));
    }
    Ok(item)
}

/// Structural checks of a schema tree (not yet of its type).
///
/// # Safety
/// `schema` points to an `ArrowSchema` whose non-null pointers are valid as the interface says.
unsafe fn check_schema(schema: *const RawSchema, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid("schema nested too deeply"));
    }
    // SAFETY: per the contract.
    let s = unsafe { &*schema };
    if s.release.is_none() {
        return Err(invalid(
            "the ArrowSchema was already released (moved or consumed)",
        ));
    }
    // SAFETY: per the contract, format and name are NUL-terminated when non-null.
    unsafe { c_str(s.format, "ArrowSchema.format") }?;
    if !s.name.is_null() {
        // SAFETY: as above.
        unsafe { c_str(s.name, "ArrowSchema.name") }?;
    }
    if s.n_children < 0 {
        return Err(invalid(format!("n_children = {}", s.n_children)));
    }
    for i in 0..s.n_children as usize {
        // SAFETY: a non-null `children` holds `n_children` pointers (the interface).
        let child = unsafe { entry(s.children, s.n_children, i, "ArrowSchema child") }?;
        // SAFETY: a child is an ArrowSchema like its parent.
        unsafe { check_schema(child, depth + 1) }?;
    }
    if !s.dictionary.is_null() {
        // SAFETY: as for children.
        unsafe { check_schema(s.dictionary, depth + 1) }?;
    }
    Ok(())
}

/// Formats of the element types a tensor can hold (booleans, integers, floats).
const ELEMENT_FORMATS: &[&str] = &["b", "c", "C", "s", "S", "i", "I", "l", "L", "e", "f", "g"];

/// Check that a schema (already checked by [`check_schema`]) describes a tensor type: an element
/// format without children, or a fixed-size list (`+w:N`) with one child that does. Anything else
/// is [`Error::UnsupportedArrowType`], before arrow-rs parses (and may panic on) it.
///
/// # Safety
/// `schema` passed [`check_schema`].
unsafe fn check_tensor_format(schema: *const RawSchema) -> Result<()> {
    // SAFETY: checked structure.
    let s = unsafe { &*schema };
    // SAFETY: checked non-null and UTF-8.
    let format = unsafe { c_str(s.format, "ArrowSchema.format") }?;
    let unsupported = || Error::UnsupportedArrowType(format!("Arrow type with format {format:?}"));
    if !s.dictionary.is_null() {
        return Err(unsupported());
    }
    if ELEMENT_FORMATS.contains(&format) {
        return if s.n_children == 0 {
            Ok(())
        } else {
            Err(invalid(format!(
                "format {format:?} has no children, the schema says {}",
                s.n_children
            )))
        };
    }
    let Some(size) = format.strip_prefix("+w:") else {
        return Err(unsupported());
    };
    if size.parse::<i32>().is_err() {
        return Err(invalid(format!("fixed-size list format {format:?}")));
    }
    if s.n_children != 1 {
        return Err(invalid(format!(
            "a fixed-size list has one child, the schema says {}",
            s.n_children
        )));
    }
    // SAFETY: checked: one non-null child.
    unsafe { check_tensor_format(s.children.read_unaligned()) }
}

/// Read a `Field` out of an `ArrowSchema` the caller keeps owning (the consumer side of
/// `requested_schema`, for instance), after checking its structure.
///
/// # Safety
/// `schema` points to an initialised `ArrowSchema` (released or not) whose non-null pointers
/// are valid as the C data interface says, for the duration of the call.
pub unsafe fn field_from_c_schema(schema: *const FFI_ArrowSchema) -> Result<Field> {
    if schema.is_null() {
        return Err(Error::NullPointer("ArrowSchema"));
    }
    // SAFETY: same layout (asserted above); validity per the contract.
    unsafe { check_schema(schema.cast(), 0) }?;
    // SAFETY: the structure was checked above.
    unsafe { check_tensor_format(schema.cast()) }?;
    // SAFETY: the structure was checked above; arrow-rs parses only the formats just checked,
    // whose children are all present.
    no_panic("reading the Arrow schema", || {
        // SAFETY: a live, initialised schema (the contract), only read.
        let schema = unsafe { &*schema };
        Field::try_from(schema).map_err(arrow_err)
    })
}

/// The number of buffers and children an array of `data_type` has, or an error when a tensor
/// cannot come from that type (element types are those with a [`DType`](crate::DType)).
fn tensor_layout(data_type: &DataType) -> Result<(i64, Option<(&DataType, usize)>)> {
    match data_type {
        DataType::FixedSizeList(item, size) => {
            let size = usize::try_from(*size)
                .map_err(|_| invalid(format!("fixed-size list of size {size}")))?;
            Ok((1, Some((item.data_type(), size))))
        }
        element => dtype_of_arrow(element).map(|_| (2, None)),
    }
}

/// Bits per slot of an element type accepted by [`tensor_layout`] (booleans are bit-packed).
fn element_bits(data_type: &DataType) -> Result<u64> {
    Ok(match data_type {
        DataType::Boolean => 1,
        element => u64::from(dtype_of_arrow(element)?.element_bits()),
    })
}

/// Checks an array tree against the type it claims to have.
///
/// # Safety
/// `array` points to an `ArrowArray` whose non-null pointers are valid as the interface says.
unsafe fn check_array(array: *const RawArray, data_type: &DataType, depth: usize) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(invalid("array nested too deeply"));
    }
    // SAFETY: per the contract.
    let a = unsafe { &*array };
    if a.release.is_none() {
        return Err(invalid(
            "the ArrowArray was already released (moved or consumed)",
        ));
    }
    if a.length < 0 || a.offset < 0 || a.null_count < -1 {
        return Err(invalid(format!(
            "length {}, offset {}, null_count {}",
            a.length, a.offset, a.null_count
        )));
    }
    let end = a
        .length
        .checked_add(a.offset)
        .ok_or_else(|| Error::Overflow("Arrow offset + length"))?;
    if a.null_count > a.length {
        return Err(invalid(format!(
            "null_count {} exceeds length {}",
            a.null_count, a.length
        )));
    }
    let (buffers, child) = tensor_layout(data_type)?;
    if child.is_none() {
        // The values buffer's size follows from the slots it covers; it must be expressible.
        let bits = element_bits(data_type)?;
        let fits = u64::try_from(end)
            .ok()
            .and_then(|slots| slots.checked_mul(bits))
            .is_some_and(|b| b.div_ceil(8) <= isize::MAX as u64);
        if !fits {
            return Err(Error::Overflow("Arrow values buffer size"));
        }
    }
    if a.n_buffers != buffers {
        return Err(invalid(format!(
            "{data_type} has {buffers} buffers, the array says {}",
            a.n_buffers
        )));
    }
    if a.buffers.is_null() {
        return Err(invalid("ArrowArray.buffers is NULL"));
    }
    // SAFETY: `buffers` holds `n_buffers` (checked equal to `buffers` >= 1) pointers.
    let validity = unsafe { a.buffers.read_unaligned() };
    if validity.is_null() && a.null_count > 0 {
        return Err(invalid(format!(
            "{} nulls but no validity buffer",
            a.null_count
        )));
    }
    if buffers == 2 && end > 0 {
        // SAFETY: as above, index 1 < n_buffers.
        if unsafe { a.buffers.add(1).read_unaligned() }.is_null() {
            return Err(invalid("the values buffer is NULL"));
        }
    }
    if !a.dictionary.is_null() {
        return Err(invalid("a dictionary on a non-dictionary type"));
    }
    let expected_children = i64::from(child.is_some());
    if a.n_children != expected_children {
        return Err(invalid(format!(
            "{data_type} has {expected_children} children, the array says {}",
            a.n_children
        )));
    }
    if let Some((item, size)) = child {
        // SAFETY: `children` holds `n_children` (= 1) pointers when non-null.
        let c = unsafe { entry(a.children, 1, 0, "ArrowArray child") }?;
        // SAFETY: a child is an ArrowArray like its parent.
        unsafe { check_array(c, item, depth + 1) }?;
        // Slot j of the list (its offset included) covers the child's values j*size..(j+1)*size.
        let needed = usize::try_from(end)
            .ok()
            .and_then(|e| e.checked_mul(size))
            .ok_or_else(|| Error::Overflow("fixed-size list child length"))?;
        // SAFETY: checked by the recursive call; a non-negative length.
        let has = unsafe { (*c).length } as u64;
        if has < needed as u64 {
            return Err(invalid(format!(
                "the list's child holds {has} values, {needed} are needed"
            )));
        }
    }
    Ok(())
}

/// The non-null buffer addresses of an array tree (checked by [`check_array`]).
///
/// # Safety
/// `array` passed [`check_array`].
unsafe fn buffer_addresses(array: *const RawArray, out: &mut Vec<usize>) {
    // SAFETY: checked structure.
    let a = unsafe { &*array };
    for i in 0..a.n_buffers as usize {
        // SAFETY: `buffers` holds `n_buffers` entries.
        let p = unsafe { a.buffers.add(i).read_unaligned() } as usize;
        if p != 0 {
            out.push(p);
        }
    }
    for i in 0..a.n_children as usize {
        // SAFETY: checked non-null entries.
        unsafe { buffer_addresses(a.children.add(i).read_unaligned(), out) };
    }
}

/// Whether every non-empty buffer of `data` is one the producer exported.
fn buffers_are_from(data: &ArrayData, produced: &[usize]) -> bool {
    data.buffers()
        .iter()
        .chain(data.nulls().map(|n| n.buffer()))
        .filter(|b| !b.is_empty())
        .all(|b| produced.contains(&(b.as_ptr() as usize)))
        && data
            .child_data()
            .iter()
            .all(|c| buffers_are_from(c, produced))
}

/// An array imported through the C data interface, with the field it came with.
#[derive(Debug)]
pub struct ImportedArray {
    /// The field (name, type, extension metadata).
    pub field: Field,
    /// The data; its buffers hold the producer's release callback.
    pub data: ArrayData,
    /// arrow-rs replaced a misaligned producer buffer by an aligned copy.
    pub realigned: bool,
}

impl ImportedArray {
    /// The tensor the array holds: `arrow.fixed_shape_tensor` fields give `[rows, *shape]`
    /// (permutation honoured), primitive arrays 1-D, nested fixed-size lists N-D. A realigned
    /// buffer makes the result `is_copied`, or an error under [`CopyPolicy::Never`].
    pub fn into_tensor(self, opts: &ArrowImportOptions) -> Result<TensorView> {
        if self.realigned && opts.copy == CopyPolicy::Never {
            return Err(Error::CopyRequired(
                "the producer's Arrow buffers are misaligned and were copied".into(),
            ));
        }
        let is_tensor = FixedShapeTensorMeta::from_field(&self.field)?.is_some();
        let mut view = if is_tensor {
            self.data.validate().map_err(arrow_err)?;
            let array: ArrayRef =
                no_panic("building the Arrow array", || Ok(make_array(self.data)))?;
            TensorView::from_arrow(&self.field, array.as_ref(), opts)?
        } else {
            TensorView::from_arrow_data(&self.data, opts)?
        };
        view.set_flags(
            view.flags()
                .with_is_copied(view.is_copied() || self.realigned),
        );
        Ok(view)
    }
}

/// Import an array from the C data interface, moving it out of `array` when every check passes
/// (the struct is then left released; on error it is left untouched, still the caller's).
///
/// # Safety
/// `schema` and `array` point to initialised structs (released or not) whose non-null pointers
/// are valid as the C data interface says; the array's buffers are at least as long as its
/// length, offset and type require (the interface carries no sizes: see the module docs).
pub unsafe fn import_c_array(
    schema: *const FFI_ArrowSchema,
    array: *mut FFI_ArrowArray,
) -> Result<ImportedArray> {
    if array.is_null() {
        return Err(Error::NullPointer("ArrowArray"));
    }
    // SAFETY: forwarded.
    let field = unsafe { field_from_c_schema(schema) }?;
    // SAFETY: same layout; validity per the contract.
    unsafe { check_array(array.cast(), field.data_type(), 0) }?;
    let mut produced = Vec::new();
    // SAFETY: checked above.
    unsafe { buffer_addresses(array.cast(), &mut produced) };
    // SAFETY: a live, checked struct; `from_raw` moves it out and leaves a released one.
    let owned = unsafe { FFI_ArrowArray::from_raw(array) };
    let data = no_panic("importing the Arrow array", || {
        // SAFETY: the array was checked against the schema's type: counts, pointers and child
        // lengths agree; buffer sizes are the producer's promise (the contract).
        let data = unsafe { from_ffi(owned, &*schema) }.map_err(arrow_err)?;
        data.validate().map_err(arrow_err)?;
        Ok(data)
    })?;
    let realigned = !buffers_are_from(&data, &produced);
    Ok(ImportedArray {
        field,
        data,
        realigned,
    })
}

/// Calls the stream's `release` when dropped.
struct OwnedStream(RawStream);

impl Drop for OwnedStream {
    fn drop(&mut self) {
        if let Some(release) = self.0.release {
            // SAFETY: we moved the stream out of its producer's struct and release it once.
            unsafe { release(&mut self.0) };
        }
    }
}

impl OwnedStream {
    fn last_error(&mut self, what: &str, code: c_int) -> Error {
        let detail = self
            .0
            .get_last_error
            // SAFETY: the stream's own callback, on the live stream.
            .map(|f| unsafe { f(&mut self.0) })
            .filter(|p| !p.is_null())
            // SAFETY: a non-null error message is NUL-terminated and lives until the next call.
            .map(|p| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
            .unwrap_or_else(|| format!("error code {code}"));
        Error::Foreign(ForeignError::from_message(
            "arrow",
            format!("{what}: {detail}"),
        ))
    }
}

/// Read a whole C stream: its field and every chunk, each validated like [`import_c_array`].
/// The stream is moved out of `stream` (left released) and released before returning.
///
/// # Safety
/// `stream` points to an initialised `ArrowArrayStream` (released or not) whose callbacks
/// follow the C stream interface; the arrays it yields satisfy [`import_c_array`]'s contract.
pub unsafe fn import_c_stream(
    stream: *mut FFI_ArrowArrayStream,
) -> Result<(Field, Vec<ImportedArray>)> {
    if stream.is_null() {
        return Err(Error::NullPointer("ArrowArrayStream"));
    }
    let raw = stream.cast::<RawStream>();
    // SAFETY: same layout, initialised per the contract.
    if unsafe { (*raw).release }.is_none() {
        return Err(invalid(
            "the ArrowArrayStream was already released (moved or consumed)",
        ));
    }
    // SAFETY: move the stream out, leaving a released one (release = NULL) behind.
    let mut owned = OwnedStream(unsafe {
        std::ptr::replace(
            raw,
            RawStream {
                get_schema: None,
                get_next: None,
                get_last_error: None,
                release: None,
                private_data: std::ptr::null_mut(),
            },
        )
    });
    let (Some(get_schema), Some(get_next)) = (owned.0.get_schema, owned.0.get_next) else {
        return Err(invalid("ArrowArrayStream without get_schema or get_next"));
    };
    let mut schema = FFI_ArrowSchema::empty();
    let schema_ptr: *mut FFI_ArrowSchema = &mut schema;
    // SAFETY: the stream's callback with the live stream and an empty out-struct.
    let rc = unsafe { get_schema(&mut owned.0, schema_ptr.cast()) };
    if rc != 0 {
        return Err(owned.last_error("get_schema failed", rc));
    }
    // SAFETY: a schema the producer just filled in (`schema` releases it when dropped).
    let field = unsafe { field_from_c_schema(schema_ptr) }?;
    let mut chunks = Vec::new();
    loop {
        let mut array = FFI_ArrowArray::empty();
        let array_ptr: *mut FFI_ArrowArray = &mut array;
        // SAFETY: as for get_schema.
        let rc = unsafe { get_next(&mut owned.0, array_ptr.cast()) };
        if rc != 0 {
            return Err(owned.last_error("get_next failed", rc));
        }
        if array.is_released() {
            break; // end of stream
        }
        // SAFETY: the producer's array for this schema (the contract); on error `array` still
        // owns it and releases it when dropped.
        chunks.push(unsafe { import_c_array(schema_ptr, array_ptr) }?);
    }
    Ok((field, chunks))
}
