//! Scripts the Nix store in-process: adds a source file, creates a small DAG of derivations
//! (two leaves and a join), realises it and prints the outputs. Nothing spawns `nix`.
//!
//! ```text
//! cargo run -p nix-rs --example dag            # in a throw-away store
//! cargo run -p nix-rs --example dag -- auto    # in the default store
//! ```

use std::time::Instant;

use nix_rs::testing::TempStore;
use nix_rs::{AddPathOptions, DerivationBuilder, Store};

fn main() -> anyhow::Result<()> {
    let temp;
    let opened;
    let store: &Store = match std::env::args().nth(1) {
        Some(uri) => {
            opened = Store::open(&uri)?;
            &opened
        }
        None => {
            temp = TempStore::new()?;
            &temp
        }
    };
    println!("store {} (Nix {}), store dir {}", store.uri()?, store.version()?, store.store_dir()?);

    let src_dir = tempfile::tempdir()?;
    std::fs::write(src_dir.path().join("greeting.txt"), "hello from a source tree\n")?;
    let start = Instant::now();
    let src = store.add_path(src_dir.path(), AddPathOptions::new().name("greeting-src"))?;

    let leaf = |name: &str, text: &str| {
        DerivationBuilder::new(name, "/bin/sh").args(["-c", &format!("echo {text} > $out")]).create(store)
    };
    let left = leaf("left", "left")?;
    let right = leaf("right", "right")?;
    let join = DerivationBuilder::new("join", "/bin/sh")
        .args(["-c", "read l < $left; read r < $right; read g < $src/greeting.txt; echo \"$l + $r: $g\" > $out"])
        .env("left", left.outputs["out"].as_str())
        .env("right", right.outputs["out"].as_str())
        .env("src", src.as_str())
        .input_derivation(&left.drv_path, ["out"])
        .input_derivation(&right.drv_path, ["out"])
        .input_source(&src)
        .create(store)?;
    println!("created 3 derivations in {:?}; join is {}", start.elapsed(), join.drv_path);

    let start = Instant::now();
    let outputs = store.realise(&join.drv_path)?;
    println!("realised in {:?}", start.elapsed());
    for (name, path) in &outputs {
        let text = std::fs::read_to_string(store.real_path(path)?)?;
        println!("{name}: {path}\n  {}", text.trim_end());
    }
    Ok(())
}
