//! The builder of every unit derivation made by cargo-backend: runs rustc or a build script as
//! described by the derivation's `unitSpec` (see `cargo_nix_unit::run_unit`). Not for humans.

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("run") => {}
        _ => {
            eprintln!("cargo-nix-unit: the builder of cargo-nix's unit derivations; run by Nix with `run`");
            std::process::exit(2);
        }
    }
    if let Err(cargo_nix_unit::run_unit::UnitFailure(message)) = cargo_nix_unit::run_unit::run_from_env() {
        eprintln!("{message}");
        std::process::exit(1);
    }
}
