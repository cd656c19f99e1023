//! Sets the rpath of this package's binaries, tests and benches to the Nix C API's libraries
//! (from nix-sys's `links = "nix"` metadata), so they run without LD_LIBRARY_PATH.
fn main() {
    let libdir = std::env::var("DEP_NIX_LIBDIR").expect("nix-sys (links = \"nix\") sets DEP_NIX_LIBDIR");
    println!("cargo::rustc-link-arg=-Wl,-rpath,{libdir}");
}
