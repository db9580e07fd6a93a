//! Build script: compiles the small C++ shim `csrc/torch_dlpack.cpp` (ATen's DLPack converters
//! behind a C ABI) when, and only when, the `tch` feature is on. Every other build does nothing
//! here: no libtorch, no C++ compiler, no Python.
//!
//! Header lookup for the shim, first hit wins:
//! 1. `DEP_TCH_LIBTORCH_LIB`, exported by `torch-sys` (it has `links = "tch"`): headers in
//!    `<lib>/../include`;
//! 2. `LIBTORCH` (with `LIBTORCH_INCLUDE` / `LIBTORCH_LIB`, as `torch-sys` reads them);
//! 3. the active Python's `torch` package.
//!
//! C++ ABI: `LIBTORCH_CXX11_ABI` if set, else `torch._C._GLIBCXX_USE_CXX11_ABI` from Python,
//! else 1 (the ABI of PyTorch >= 2.7 wheels and libtorch archives).

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    // docs.rs builds the docs with `tch/doc-only` and no libtorch: nothing to compile there
    // (rustdoc links nothing).
    let docs_rs = std::env::var("DOCS_RS").is_ok_and(|v| !v.is_empty());
    if std::env::var_os("CARGO_FEATURE_TCH").is_some() && !docs_rs {
        #[cfg(feature = "tch")]
        torch_shim::build();
    }
}

#[cfg(feature = "tch")]
mod torch_shim {
    use std::path::PathBuf;
    use std::process::Command;

    fn env(name: &str) -> Option<String> {
        println!("cargo:rerun-if-env-changed={name}");
        std::env::var(name).ok().filter(|s| !s.is_empty())
    }

    fn ask_python(code: &str) -> Option<String> {
        // The same interpreter choice as torch-sys: `python` inside a virtualenv, else `python3`.
        let python = if env("VIRTUAL_ENV").is_some() {
            "python"
        } else {
            "python3"
        };
        let out = Command::new(python).arg("-c").arg(code).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// (directory holding `ATen/`, directory holding `libtorch_cpu`).
    fn locate() -> (PathBuf, PathBuf) {
        if let Some(lib) = env("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) {
            if let Some(root) = lib.parent() {
                let include = root.join("include");
                if include.join("ATen/DLConvertor.h").exists() {
                    return (include, lib);
                }
            }
        }
        if let Some(root) = env("LIBTORCH").map(PathBuf::from) {
            let include = env("LIBTORCH_INCLUDE").map_or_else(|| root.clone(), PathBuf::from);
            let lib = env("LIBTORCH_LIB").map_or_else(|| root.clone(), PathBuf::from);
            return (include.join("include"), lib.join("lib"));
        }
        let torch = ask_python("import os, torch; print(os.path.dirname(torch.__file__))")
            .unwrap_or_else(|| {
                panic!(
                    "dlbridge (feature `tch`): cannot find libtorch's headers; set LIBTORCH or \
                     activate a Python environment with torch"
                )
            });
        let root = PathBuf::from(torch);
        (root.join("include"), root.join("lib"))
    }

    fn cxx11_abi() -> &'static str {
        let value = env("LIBTORCH_CXX11_ABI")
            .or_else(|| ask_python("import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))"));
        match value.as_deref() {
            Some("0") => "0",
            _ => "1",
        }
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=csrc/torch_dlpack.cpp");
        println!("cargo:rerun-if-env-changed=LIBTORCH_USE_PYTORCH");
        let (include, lib) = locate();
        assert!(
            include.join("ATen/DLConvertor.h").exists(),
            "dlbridge (feature `tch`): ATen/DLConvertor.h not found under {}",
            include.display()
        );
        cc::Build::new()
            .cpp(true)
            .std("c++17")
            .pic(true)
            .warnings(false)
            .include(&include)
            .include(include.join("torch/csrc/api/include"))
            .define("_GLIBCXX_USE_CXX11_ABI", cxx11_abi())
            .define("GLOG_USE_GLOG_EXPORT", None)
            .file("csrc/torch_dlpack.cpp")
            .compile("dlbridge_torch_dlpack");
        // The shim needs torch_cpu and c10 after it on the link line (torch-sys links them too;
        // this makes the order explicit).
        println!("cargo:rustc-link-search=native={}", lib.display());
        println!("cargo:rustc-link-lib=dylib=torch_cpu");
        println!("cargo:rustc-link-lib=dylib=c10");
        // An rpath for this package's own tests, benches and examples (never propagated to
        // dependents, which set LD_LIBRARY_PATH or their own rpath).
        if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
            println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
        }
    }
}
