//! `cargo nix`: build and test with cargo's unit graph realised through Nix.
fn main() {
    eprintln!("cargo-nix: not yet implemented");
    std::process::exit(2);
}
