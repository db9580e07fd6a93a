//! Arrow interop benchmarks (filled in below).
fn main() {}
