//! Nix's derivation JSON, version 4 (the format of Nix 2.33+'s `nix_derivation_from_json` and
//! `nix_derivation_to_json`): written from a [`DerivationBuilder`], read into a [`Derivation`].
//!
//! Store paths in it are base names (`<hash>-<name>`), without the store dir. An output given
//! as `{}` is input-addressed: Nix computes its path. The environment written here is exactly
//! what `builtins.derivationStrict` writes for the same description (the 2.26–2.32 route), so
//! both routes give the same `.drv`: every `env` entry, plus `name`, `system`, `builder`,
//! `outputs` (space-separated, only when not the default `out`) and each output name (empty,
//! filled in by Nix); `args` are not in the environment.
//!
//! Compiled and unit-tested on every version, used from 2.33.
#![cfg_attr(not(nix_at_least_2_33), allow(dead_code))]

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::derivation::{Derivation, DerivationBuilder};
use crate::error::{Error, Result};

/// The base name of `path` (an input of derivation `drv_name`) under `store_dir`, or an error
/// naming both.
fn base_name<'a>(store_dir: &str, path: &'a str, what: &str, drv_name: &str) -> Result<&'a str> {
    path.strip_prefix(store_dir)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|b| !b.is_empty() && !b.contains('/'))
        .ok_or_else(|| {
            Error::invalid(
                what,
                format!("creating derivation '{drv_name}': '{path}' is not a store path under '{store_dir}'"),
            )
        })
}

/// `builder` (validated, with its system set) as derivation JSON version 4.
pub(crate) fn to_json_v4(b: &DerivationBuilder, system: &str, store_dir: &str) -> Result<String> {
    let mut env: BTreeMap<&str, String> = b.env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    env.insert("name", b.name.clone());
    env.insert("system", system.to_owned());
    env.insert("builder", b.builder.clone());
    if b.outputs != ["out"] {
        env.insert("outputs", b.outputs.join(" "));
    }
    for o in &b.outputs {
        env.insert(o, String::new());
    }
    let mut drvs = serde_json::Map::new();
    for (drv, outs) in &b.input_drvs {
        let base = base_name(store_dir, drv, "input derivation", &b.name)?;
        drvs.insert(base.to_owned(), json!({ "outputs": outs, "dynamicOutputs": {} }));
    }
    let mut srcs = Vec::new();
    for src in &b.input_srcs {
        srcs.push(base_name(store_dir, src, "input source", &b.name)?.to_owned());
    }
    let outputs: serde_json::Map<String, Value> = b.outputs.iter().map(|o| (o.clone(), json!({}))).collect();
    let doc = json!({
        "version": 4,
        "name": b.name,
        "system": system,
        "builder": b.builder,
        "args": b.args,
        "env": env,
        "inputs": { "drvs": drvs, "srcs": srcs },
        "outputs": outputs,
    });
    Ok(doc.to_string())
}

#[derive(Deserialize)]
struct JsonV4 {
    version: u32,
    outputs: BTreeMap<String, JsonOutput>,
    inputs: JsonInputs,
    system: String,
    builder: String,
    args: Vec<String>,
    env: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct JsonOutput {
    path: Option<String>,
}

#[derive(Deserialize)]
struct JsonInputs {
    drvs: BTreeMap<String, JsonInputDrv>,
    srcs: Vec<String>,
}

#[derive(Deserialize)]
struct JsonInputDrv {
    outputs: Vec<String>,
}

/// Reads derivation JSON version 4 (paths as base names) into a [`Derivation`] with full paths
/// under `store_dir`. Content-addressed outputs, which have no path yet, map to `""`.
pub(crate) fn from_json_v4(text: &str, store_dir: &str) -> Result<Derivation, String> {
    let d: JsonV4 = serde_json::from_str(text).map_err(|e| format!("malformed derivation JSON: {e}"))?;
    if d.version != 4 {
        return Err(format!("derivation JSON version {} (nix-rs reads version 4)", d.version));
    }
    let full = |base: &str| format!("{store_dir}/{base}");
    Ok(Derivation {
        outputs: d.outputs.into_iter().map(|(k, o)| (k, o.path.as_deref().map(full).unwrap_or_default())).collect(),
        input_drvs: d.inputs.drvs.into_iter().map(|(k, v)| (full(&k), v.outputs)).collect(),
        input_srcs: d.inputs.srcs.iter().map(|s| full(s)).collect(),
        system: d.system,
        builder: d.builder,
        args: d.args,
        env: d.env,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_what_derivation_strict_writes() {
        let mut b = DerivationBuilder::new("x", "/bin/sh");
        b.args(["-c", "echo"]).env("A", "1").outputs(["out", "dev"]);
        b.input_source(&crate::StorePath::from_valid("/s/aaaa-src"));
        b.input_derivation(&crate::StorePath::from_valid("/s/bbbb-dep.drv"), ["out"]);
        let v: Value = serde_json::from_str(&to_json_v4(&b, "x86_64-linux", "/s").unwrap()).unwrap();
        assert_eq!(v["version"], 4);
        assert_eq!(v["env"]["outputs"], "out dev");
        assert_eq!(v["env"]["dev"], "");
        assert_eq!(v["env"]["builder"], "/bin/sh");
        assert_eq!(v["env"]["A"], "1");
        assert!(v["env"].get("args").is_none());
        assert_eq!(v["inputs"]["srcs"][0], "aaaa-src");
        assert_eq!(v["inputs"]["drvs"]["bbbb-dep.drv"]["outputs"][0], "out");
        assert_eq!(v["outputs"]["out"], json!({}));
        // The default single output is not spelled out in the environment.
        let v: Value =
            serde_json::from_str(&to_json_v4(&DerivationBuilder::new("y", "/bin/sh"), "s", "/s").unwrap()).unwrap();
        assert!(v["env"].get("outputs").is_none());
    }

    #[test]
    fn an_input_outside_the_store_dir_is_named() {
        let mut b = DerivationBuilder::new("x", "/bin/sh");
        b.input_source(&crate::StorePath::from_valid("/elsewhere/aaaa-src"));
        let e = to_json_v4(&b, "s", "/s").unwrap_err().to_string();
        assert!(e.contains("/elsewhere/aaaa-src") && e.contains("'/s'"), "{e}");
        assert!(e.contains("creating derivation 'x'"), "names the derivation too: {e}");
    }

    #[test]
    fn reads_version_4_with_full_paths() {
        let text = r#"{"version":4,"name":"x","system":"s","builder":"/bin/sh","args":["-c"],
            "env":{"out":"/s/aaaa-x"},"inputs":{"drvs":{"bbbb-y.drv":{"outputs":["out"],"dynamicOutputs":{}}},
            "srcs":["cccc-z"]},"outputs":{"out":{"path":"aaaa-x"},"ca":{"method":"nar","hashAlgo":"sha256"}}}"#;
        let d = from_json_v4(text, "/s").unwrap();
        assert_eq!(d.outputs["out"], "/s/aaaa-x");
        assert_eq!(d.outputs["ca"], "");
        assert_eq!(d.input_drvs["/s/bbbb-y.drv"], vec!["out"]);
        assert_eq!(d.input_srcs, vec!["/s/cccc-z"]);
        assert!(from_json_v4(&text.replace("\"version\":4", "\"version\":3"), "/s").unwrap_err().contains("version 3"));
        assert!(from_json_v4("{", "/s").unwrap_err().contains("malformed"));
    }
}
