// dlbridge: a minimal C ABI between Rust (tch / torch-sys) and ATen's DLPack converter.
//
// Tensor handles: torch-sys represents a tensor as `at::Tensor*` allocated with
// `new at::Tensor(...)` and released with `delete` (at_free). tch::Tensor owns
// exactly one such pointer. Every function here borrows its `const at::Tensor*`
// argument, and any `at::Tensor*` returned is a fresh `new at::Tensor`, suitable
// for `tch::Tensor::from_ptr`.
//
// Errors: no C++ exception crosses this boundary. Every function returns an int
// status (0 = ok) and writes a NUL-terminated message into `err[0..err_len]`
// (truncated if necessary; ignored if err == nullptr or err_len == 0).
#include <ATen/DLConvertor.h>
#include <ATen/dlpack.h>

#include <cstdint>
#include <cstdio>
#include <memory>
#include <new>

namespace {

void write_err(char* err, size_t err_len, const char* msg) {
  if (err != nullptr && err_len > 0) {
    std::snprintf(err, err_len, "%s", msg);
  }
}

// Property bits reported by dlbridge_torch_tensor_props (keep in sync with src/interop/torch.rs).
constexpr uint32_t PROP_CONJ = 1u << 0;          // conjugate bit set (lazy conj)
constexpr uint32_t PROP_NEG = 1u << 1;           // negative bit set (lazy neg)
constexpr uint32_t PROP_NOT_STRIDED = 1u << 2;   // sparse / mkldnn / nested ...
constexpr uint32_t PROP_QUANTIZED = 1u << 3;
constexpr uint32_t PROP_REQUIRES_GRAD = 1u << 4;
constexpr uint32_t PROP_UNDEFINED = 1u << 5;

uint32_t props_of(const at::Tensor& t) {
  if (!t.defined()) return PROP_UNDEFINED;
  uint32_t p = 0;
  if (t.is_conj()) p |= PROP_CONJ;
  if (t.is_neg()) p |= PROP_NEG;
  if (t.layout() != at::kStrided) p |= PROP_NOT_STRIDED;
  if (t.is_quantized()) p |= PROP_QUANTIZED;
  if (t.requires_grad()) p |= PROP_REQUIRES_GRAD;
  return p;
}

}  // namespace

// Expands to the catch clauses shared by all entry points.
#define DLB_CATCH(err, err_len, status)                         \
  catch (const c10::Error& e) {                                 \
    write_err(err, err_len, e.what_without_backtrace());        \
    return status;                                              \
  }                                                             \
  catch (const std::exception& e) {                             \
    write_err(err, err_len, e.what());                          \
    return status;                                              \
  }                                                             \
  catch (...) {                                                 \
    write_err(err, err_len, "unknown C++ exception");           \
    return status;                                              \
  }

extern "C" {

// Writes PROP_* bits of *t into *out. Returns 0, or 1 on error.
int dlbridge_torch_tensor_props(const at::Tensor* t, uint32_t* out, char* err,
                                size_t err_len) {
  try {
    if (t == nullptr || out == nullptr) {
      write_err(err, err_len, "null argument");
      return 1;
    }
    *out = props_of(*t);
    return 0;
  }
  DLB_CATCH(err, err_len, 1)
}

// Exports *t (borrowed) as a new DLManagedTensorVersioned owned by the caller,
// who must eventually call (*out)->deleter(*out) exactly once.
//
// ATen's toDLPackVersioned does NOT check the conj / neg bits or requires_grad
// (it would silently export the un-conjugated / un-negated memory); we refuse
// those here, as well as non-strided and quantized tensors. The export is made
// from `t->detach()`, a new TensorImpl sharing the storage: the DLTensor's
// shape/strides arrays point into that private TensorImpl, so later in-place
// metadata changes on *t (t.unsqueeze_(), t.t_(), resize_ ...) cannot alter or
// dangle them. Returns 0, or 1 on error (*out untouched).
int dlbridge_torch_to_dlpack_versioned(const at::Tensor* t,
                                       DLManagedTensorVersioned** out,
                                       char* err, size_t err_len) {
  try {
    if (t == nullptr || out == nullptr) {
      write_err(err, err_len, "null argument");
      return 1;
    }
    const uint32_t p = props_of(*t);
    const char* why = nullptr;
    if (p & PROP_UNDEFINED) why = "cannot export an undefined tensor";
    else if (p & PROP_NOT_STRIDED) why = "cannot export a non-strided (e.g. sparse) tensor";
    else if (p & PROP_QUANTIZED) why = "cannot export a quantized tensor";
    else if (p & PROP_CONJ) why = "cannot export a tensor with the conjugate bit set; call resolve_conj() first";
    else if (p & PROP_NEG) why = "cannot export a tensor with the negative bit set; call resolve_neg() first";
    else if (p & PROP_REQUIRES_GRAD) why = "cannot export a tensor that requires grad; call detach() first";
    if (why != nullptr) {
      write_err(err, err_len, why);
      return 1;
    }
    at::Tensor alias = t->detach();
    *out = at::toDLPackVersioned(alias);
    return 0;
  }
  DLB_CATCH(err, err_len, 1)
}

// Imports `src` into a new at::Tensor (*out, owned by the caller; free with
// torch-sys' at_free / by wrapping it in tch::Tensor::from_ptr).
//
// Ownership:
//   0: success. The tensor's storage owns `src`; src->deleter(src) runs once,
//      when the last tensor/view sharing that storage dies.
//   1: failure BEFORE ownership was taken. src->deleter has NOT been called;
//      the caller still owns `src` and must dispose of it. (This covers every
//      validation failure: version, device, dtype, byte_offset, sizes, ...)
//   2: failure AFTER ownership was taken (only possible if an allocation fails
//      after ATen built the storage). src->deleter HAS been called already;
//      the caller must not touch `src` again.
// at::fromDLPackVersioned itself gives no status: in 2.13 all its checks run
// before it creates the DataPtr holding the deleter (so a throw there means
// "not called"), while a throw after that point destroys the DataPtr and thus
// calls the deleter. We wrap the deleter to observe which case happened.
int dlbridge_torch_from_dlpack_versioned(DLManagedTensorVersioned* src,
                                         at::Tensor** out, char* err,
                                         size_t err_len) {
  if (src == nullptr || out == nullptr) {
    write_err(err, err_len, "null argument");
    return 1;
  }
  if (src->version.major != DLPACK_MAJOR_VERSION) {
    // Per dlpack.h no other field may be read; the caller should call the deleter.
    write_err(err, err_len, "unsupported DLPack major version");
    return 1;
  }
  std::shared_ptr<bool> consumed;
  try {
    consumed = std::make_shared<bool>(false);
    at::Tensor t = at::fromDLPackVersioned(src, [src, consumed](void*) {
      *consumed = true;
      if (src->deleter != nullptr) src->deleter(src);
    });
    *out = new at::Tensor(std::move(t));
    return 0;
  }
  DLB_CATCH(err, err_len, (consumed && *consumed) ? 2 : 1)
}

// 1 when *t is the only handle on its tensor and on its storage: no shallow clone, no weak
// reference, no view or other tensor sharing the storage. Then no torch code but through *t can
// reach the memory. 0 otherwise, or on error.
int dlbridge_torch_is_sole_handle(const at::Tensor* t) {
  try {
    if (t == nullptr || !t->defined() || !t->has_storage()) return 0;
    return t->use_count() == 1 && t->weak_use_count() == 1 &&
                   t->storage().use_count() == 1
               ? 1
               : 0;
  } catch (...) {
    return 0;
  }
}

// Writes the c10 ScalarType name (e.g. "UInt16", "Float8_e8m0fnu") of *t.
// Useful for dtypes tch::Kind cannot represent. Returns 0, or 1 on error.
int dlbridge_torch_scalar_type_name(const at::Tensor* t, char* buf,
                                    size_t buf_len, char* err, size_t err_len) {
  try {
    if (t == nullptr) {
      write_err(err, err_len, "null argument");
      return 1;
    }
    write_err(buf, buf_len, c10::toString(t->scalar_type()));
    return 0;
  }
  DLB_CATCH(err, err_len, 1)
}

}  // extern "C"
