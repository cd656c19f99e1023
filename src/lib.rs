//! libnix: drive the Nix store from Rust, in-process.
//!
//! This root package only holds the workspace's cross-crate integration tests (`tests/`) and
//! criterion benchmarks (`benches/`). The crates are:
//! - [`nix_sys`]: raw bindings to Nix's C API;
//! - [`nix_rs`]: the safe API (stores, store paths, derivations, sources, builds);
//! - [`cargo_backend`]: cargo's unit graph built as Nix derivations (`cargo nix`).

pub use cargo_backend;
pub use nix_rs;
pub use nix_sys;
