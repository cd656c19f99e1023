//! The builder side of cargo-backend: what runs inside each unit's derivation.
//!
//! This crate is small on purpose: its binary, `cargo-nix-unit`, is the builder of every unit
//! derivation, so its bytes are part of every unit's identity. It depends on nothing of Nix
//! and changes only when the builder's behaviour does; the planner (cargo-backend) can change
//! freely without rebuilding anything.
//!
//! - [`build_script`]: a build script's stdout read as cargo reads it;
//! - [`incremental`]: rustc's incremental state of a unit, kept outside the store;
//! - [`offer`]: what `cargo nix` offers its builders outside the derivation;
//! - [`jobserver`]: the jobserver `cargo nix` offers its builders, found without the derivation;
//! - [`spec`]: the JSON a derivation carries (what to run);
//! - [`run_unit`]: running it (rustc or a build script) inside the build.

pub mod build_script;
pub mod incremental;
pub mod jobserver;
pub mod offer;
pub mod run_unit;
pub mod spec;
