//! Any bytes: `BuildScriptOutput::parse` returns an output or an error, never panics, and the
//! derived `DEP_*` environment is well-formed.
#![no_main]

use cargo_nix_unit::build_script::BuildScriptOutput;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(out) = BuildScriptOutput::parse(data, "fuzz v0.0.0") {
        for (k, _) in out.to_dep_env("some-links") {
            assert!(k.starts_with("DEP_SOME_LINKS_"));
        }
    }
});
