//! `cargo nix`: plans with cargo's own library, builds with cargo-backend.
//!
//! This crate links the `cargo` crate (pinned to the toolchain's cargo), which cargo-backend
//! must not: a patched cargo links cargo-backend, and cargo cannot depend on itself. Here live
//! the adapter from cargo's `BuildContext` to cargo-backend's neutral description
//! ([`from_cargo`]) and the `cargo nix` binary (`src/main.rs` and its modules: arguments,
//! status output, reporter, signals, test runner).

pub mod from_cargo;

pub use cargo;
