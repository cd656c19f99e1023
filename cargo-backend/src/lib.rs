//! cargo-backend: builds cargo's unit graph as one Nix derivation per unit.

pub mod build_script;
pub mod queue;
pub mod unit_graph;
