//! Re-emits nix-sys's version cfgs for this crate and sets the rpath of our tests and examples.
fn main() {
    let cfgs = std::env::var("DEP_NIX_CFGS").expect("nix-sys (links = \"nix\") sets DEP_NIX_CFGS");
    for m in 22..=40 {
        println!("cargo::rustc-check-cfg=cfg(nix_at_least_2_{m})");
    }
    println!("cargo::rustc-check-cfg=cfg(nix_2_26)");
    for cfg in cfgs.split(',').filter(|c| !c.is_empty()) {
        println!("cargo::rustc-cfg={cfg}");
    }
    let libdir = std::env::var("DEP_NIX_LIBDIR").expect("nix-sys sets DEP_NIX_LIBDIR");
    println!("cargo::rustc-link-arg=-Wl,-rpath,{libdir}");
}
