//! Creating derivations in-process, and reading `.drv` files.
//!
//! Nix 2.33+: [`DerivationBuilder`] writes derivation JSON version 4 (`derivation_json.rs`)
//! and hands it to `nix_derivation_from_json` + `nix_add_derivation`; no evaluator is involved.
//!
//! Nix 2.26–2.32 (2.32's `nix_derivation_from_json` takes JSON version 3 with every output path
//! already computed, which nix-rs cannot do without Nix's hashing): the C API has no usable
//! function that writes a derivation, so the builder's fields (serialised below, a format of
//! nix-rs's own) go to a fixed Nix function (held in this crate as a string, evaluated once
//! per store on the evaluator thread) that calls `builtins.derivationStrict`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{Store, StorePath};

/// Environment names that the derivation's shape already defines, or that would change what
/// kind of derivation it is. They are rejected in [`DerivationBuilder::env`].
const RESERVED_ENV: &[&str] =
    &["name", "system", "builder", "args", "outputs", "outputHash", "outputHashAlgo", "outputHashMode"];

/// Describes a derivation to create: like `std::process::Command`, each setter returns
/// `&mut Self`.
///
/// ```no_run
/// # fn main() -> nix_rs::Result<()> {
/// let store = nix_rs::Store::open("auto")?;
/// let drv = nix_rs::DerivationBuilder::new("hello", "/bin/sh")
///     .args(["-c", "echo hello > $out"])
///     .create(&store)?;
/// let outputs = store.realise(&drv.drv_path)?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DerivationBuilder {
    pub(crate) name: String,
    pub(crate) system: Option<String>,
    pub(crate) builder: String,
    pub(crate) args: Vec<String>,
    pub(crate) env: BTreeMap<String, String>,
    pub(crate) input_drvs: BTreeMap<String, BTreeSet<String>>,
    pub(crate) input_srcs: BTreeSet<String>,
    pub(crate) outputs: Vec<String>,
}

/// The store paths of a created derivation, known before anything is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivationOutputs {
    /// The `.drv` file in the store.
    pub drv_path: StorePath,
    /// Output name → the path it will have once built.
    pub outputs: BTreeMap<String, StorePath>,
}

impl DerivationOutputs {
    /// The path of output `name` (usually `out`).
    pub fn output(&self, name: &str) -> Option<&StorePath> {
        self.outputs.get(name)
    }
}

impl DerivationBuilder {
    /// A derivation called `name` whose builder is `builder` (an absolute path), with one
    /// output, `out`, for the current system.
    pub fn new(name: impl Into<String>, builder: impl Into<String>) -> Self {
        DerivationBuilder {
            name: name.into(),
            system: None,
            builder: builder.into(),
            args: Vec::new(),
            env: BTreeMap::new(),
            input_drvs: BTreeMap::new(),
            input_srcs: BTreeSet::new(),
            outputs: vec!["out".to_owned()],
        }
    }

    /// Renames the derivation (the name part of its store paths).
    pub fn name(&mut self, name: impl Into<String>) -> &mut Self {
        self.name = name.into();
        self
    }

    /// The platform, e.g. `x86_64-linux`. Default: Nix's `system` setting.
    pub fn system(&mut self, system: impl Into<String>) -> &mut Self {
        self.system = Some(system.into());
        self
    }

    /// Appends one argument for the builder.
    pub fn arg(&mut self, arg: impl Into<String>) -> &mut Self {
        self.args.push(arg.into());
        self
    }

    /// Appends arguments for the builder.
    pub fn args<I, S>(&mut self, args: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Sets an environment variable of the builder.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Depends on `outputs` of the derivation `drv_path` (they are built first, and their paths
    /// may appear in args and env).
    pub fn input_derivation<I, S>(&mut self, drv_path: &StorePath, outputs: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.input_drvs.entry(drv_path.to_string()).or_default().extend(outputs.into_iter().map(Into::into));
        self
    }

    /// Depends on a source path already in the store (e.g. from [`Store::add_path`]).
    pub fn input_source(&mut self, path: &StorePath) -> &mut Self {
        self.input_srcs.insert(path.to_string());
        self
    }

    /// Replaces the output names (default: `["out"]`).
    pub fn outputs<I, S>(&mut self, names: I) -> &mut Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.outputs = names.into_iter().map(Into::into).collect();
        self
    }

    /// Checks the description without touching a store.
    pub fn validate(&self) -> Result<()> {
        check_name(&self.name)?;
        for (what, s) in [("derivation name", &self.name), ("builder", &self.builder)] {
            no_nul(what, s)?;
        }
        if self.builder.is_empty() {
            return Err(Error::invalid("builder", format!("derivation '{}' has an empty builder", self.name)));
        }
        if let Some(system) = &self.system {
            no_nul("system", system)?;
        }
        for (i, a) in self.args.iter().enumerate() {
            no_nul(&format!("argument {i} of derivation '{}'", self.name), a)?;
        }
        for (k, v) in &self.env {
            no_nul(&format!("environment name of derivation '{}'", self.name), k)?;
            no_nul(&format!("environment variable '{k}' of derivation '{}'", self.name), v)?;
            if k.is_empty() || RESERVED_ENV.contains(&k.as_str()) || k.starts_with("__") || self.outputs.contains(k) {
                return Err(Error::invalid(
                    "environment variable",
                    format!(
                        "'{k}' of derivation '{}' is reserved (name, system, builder, args, outputs, output names, outputHash*, __*)",
                        self.name
                    ),
                ));
            }
        }
        if self.outputs.is_empty() {
            return Err(Error::invalid("outputs", format!("derivation '{}' has no outputs", self.name)));
        }
        let mut seen = BTreeSet::new();
        for o in &self.outputs {
            no_nul("output name", o)?;
            if o.is_empty()
                || o == "drv"
                || !o.chars().all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
                || !seen.insert(o)
            {
                return Err(Error::invalid("output name", format!("'{o}' of derivation '{}'", self.name)));
            }
        }
        for (drv, outs) in &self.input_drvs {
            if !drv.ends_with(".drv") {
                return Err(Error::invalid("input derivation", format!("'{drv}' is not a .drv path")));
            }
            if outs.is_empty() {
                return Err(Error::invalid("input derivation", format!("no outputs of '{drv}' were named")));
            }
        }
        Ok(())
    }

    /// Writes the derivation to `store` and returns its `.drv` path and output paths. Nothing
    /// is built. The inputs must be valid in `store`.
    ///
    /// On Nix 2.33+ through `nix_derivation_from_json` (JSON version 4) and
    /// `nix_add_derivation`, without the evaluator; before, through the evaluator's
    /// `builtins.derivationStrict`. Both write the same `.drv` for the same description.
    pub fn create(&self, store: &Store) -> Result<DerivationOutputs> {
        let mut all = Self::create_all(store, std::slice::from_ref(self))?;
        all.pop().ok_or_else(|| Error::invalid("derivation", format!("Nix created nothing for '{}'", self.name)))
    }

    /// Creates several derivations at once, in order. Their inputs must already be in the
    /// store (a derivation's path is known only once it is created, so a batch holds
    /// derivations that do not depend on each other). On
    /// Nix 2.26–2.32 this is one call into the evaluator for the whole batch; on 2.33+ a loop
    /// of [`DerivationBuilder::create`]. Every description is validated before anything is
    /// written; a failure part-way leaves the earlier derivations in the store (they are valid
    /// on their own, and unreferenced ones are garbage).
    pub fn create_all(store: &Store, builders: &[DerivationBuilder]) -> Result<Vec<DerivationOutputs>> {
        let mut specs = Vec::with_capacity(builders.len());
        let mut default_system = None;
        for b in builders {
            b.validate()?;
            let mut spec = b.clone();
            if spec.system.is_none() {
                if default_system.is_none() {
                    default_system = Some(crate::settings::get("system")?);
                }
                spec.system = default_system.clone();
            }
            specs.push(spec);
        }
        Self::create_specs(store, specs)
    }

    #[cfg(nix_at_least_2_33)]
    fn create_specs(store: &Store, specs: Vec<DerivationBuilder>) -> Result<Vec<DerivationOutputs>> {
        let store_dir = store.store_dir()?;
        specs
            .iter()
            .map(|spec| {
                let system = spec.system.clone().unwrap_or_default();
                let json = crate::derivation_json::to_json_v4(spec, &system, &store_dir)?;
                let drv_path = store.add_derivation_json(&json, &spec.name)?;
                let drv = store.derivation(&drv_path)?;
                let outputs = drv.outputs.iter().map(|(k, v)| (k.clone(), StorePath::from_valid(v))).collect();
                Ok(DerivationOutputs { drv_path, outputs })
            })
            .collect()
    }

    #[cfg(not(nix_at_least_2_33))]
    fn create_specs(store: &Store, specs: Vec<DerivationBuilder>) -> Result<Vec<DerivationOutputs>> {
        let names = match specs.as_slice() {
            [one] => format!("'{}'", one.name),
            many => format!("batch of {} ({}, …)", many.len(), many.first().map_or("", |b| b.name.as_str())),
        };
        let json = serde_json::to_string(&specs).map_err(|e| Error::invalid("derivation", e.to_string()))?;
        let created = crate::eval::create_derivations(store, &names, json)?;
        Ok(created
            .into_iter()
            .map(|(drv_path, outputs)| DerivationOutputs {
                drv_path: StorePath::from_valid(&drv_path),
                outputs: outputs.into_iter().map(|(k, v)| (k, StorePath::from_valid(&v))).collect(),
            })
            .collect())
    }
}

fn no_nul(what: &str, s: &str) -> Result<()> {
    if s.contains('\0') {
        return Err(Error::NulByte { what: what.to_owned(), value: s.to_owned() });
    }
    Ok(())
}

/// Nix's rule for the name part of a store path.
pub(crate) fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 211
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "store path name",
            format!("'{name}': use 1 to 211 of A-Z a-z 0-9 + - . _ ? =, not starting with '.'"),
        ))
    }
}

/// A derivation read from a `.drv` file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Derivation {
    /// Output name → output path (empty for content-addressed outputs).
    pub outputs: BTreeMap<String, String>,
    /// Input derivation → the outputs used.
    pub input_drvs: BTreeMap<String, Vec<String>>,
    /// Input sources.
    pub input_srcs: Vec<String>,
    /// The platform.
    pub system: String,
    /// The builder.
    pub builder: String,
    /// The builder's arguments.
    pub args: Vec<String>,
    /// The builder's environment.
    pub env: BTreeMap<String, String>,
}

impl Derivation {
    /// Parses the ATerm text of a `.drv` file (`Derive([...],...)`).
    pub fn parse_aterm(text: &str) -> Result<Derivation, String> {
        let mut p = ATerm { s: text.as_bytes(), i: 0 };
        p.expect_str("Derive(")?;
        let outputs = p.list(|p| {
            p.expect(b'(')?;
            let name = p.string()?;
            p.expect(b',')?;
            let path = p.string()?;
            p.expect(b',')?;
            p.string()?;
            p.expect(b',')?;
            p.string()?;
            p.expect(b')')?;
            Ok((name, path))
        })?;
        p.expect(b',')?;
        let input_drvs = p.list(|p| {
            p.expect(b'(')?;
            let drv = p.string()?;
            p.expect(b',')?;
            let outs = p.list(ATerm::string)?;
            p.expect(b')')?;
            Ok((drv, outs))
        })?;
        p.expect(b',')?;
        let input_srcs = p.list(ATerm::string)?;
        p.expect(b',')?;
        let system = p.string()?;
        p.expect(b',')?;
        let builder = p.string()?;
        p.expect(b',')?;
        let args = p.list(ATerm::string)?;
        p.expect(b',')?;
        let env = p.list(|p| {
            p.expect(b'(')?;
            let k = p.string()?;
            p.expect(b',')?;
            let v = p.string()?;
            p.expect(b')')?;
            Ok((k, v))
        })?;
        p.expect(b')')?;
        Ok(Derivation {
            outputs: outputs.into_iter().collect(),
            input_drvs: input_drvs.into_iter().collect(),
            input_srcs,
            system,
            builder,
            args,
            env: env.into_iter().collect(),
        })
    }
}

struct ATerm<'a> {
    s: &'a [u8],
    i: usize,
}

impl ATerm<'_> {
    fn err<T>(&self, what: &str) -> Result<T, String> {
        Err(format!("malformed derivation at byte {}: expected {what}", self.i))
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            Ok(())
        } else {
            self.err(&format!("'{}'", c as char))
        }
    }

    fn expect_str(&mut self, lit: &str) -> Result<(), String> {
        if self.s[self.i..].starts_with(lit.as_bytes()) {
            self.i += lit.len();
            Ok(())
        } else {
            self.err(lit)
        }
    }

    fn list<T>(&mut self, mut item: impl FnMut(&mut Self) -> Result<T, String>) -> Result<Vec<T>, String> {
        self.expect(b'[')?;
        let mut out = Vec::new();
        if self.s.get(self.i) == Some(&b']') {
            self.i += 1;
            return Ok(out);
        }
        loop {
            out.push(item(self)?);
            match self.s.get(self.i) {
                Some(b',') => self.i += 1,
                Some(b']') => {
                    self.i += 1;
                    return Ok(out);
                }
                _ => return self.err("',' or ']'"),
            }
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.expect(b'"')?;
        let mut out = Vec::new();
        loop {
            match self.s.get(self.i) {
                None => return self.err("closing '\"'"),
                Some(b'"') => {
                    self.i += 1;
                    return Ok(String::from_utf8_lossy(&out).into_owned());
                }
                Some(b'\\') => {
                    let c = *self.s.get(self.i + 1).ok_or_else(|| "malformed derivation: trailing '\\'".to_owned())?;
                    out.push(match c {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        other => other,
                    });
                    self.i += 2;
                }
                Some(&c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_aterm() {
        let text = r#"Derive([("out","/nix/store/aaaa-x","","")],[("/nix/store/bbbb-y.drv",["out","dev"])],["/nix/store/cccc-src"],"x86_64-linux","/bin/sh",["-c","echo \"hi\"\n"],[("builder","/bin/sh"),("out","/nix/store/aaaa-x")])"#;
        let d = Derivation::parse_aterm(text).unwrap();
        assert_eq!(d.outputs["out"], "/nix/store/aaaa-x");
        assert_eq!(d.input_drvs["/nix/store/bbbb-y.drv"], vec!["out", "dev"]);
        assert_eq!(d.input_srcs, vec!["/nix/store/cccc-src"]);
        assert_eq!(d.args[1], "echo \"hi\"\n");
        assert_eq!(d.env["builder"], "/bin/sh");
    }

    #[test]
    fn rejects_truncated_aterm() {
        let e = Derivation::parse_aterm(r#"Derive([("out","/nix/store/aaaa-x","","")],["#).unwrap_err();
        assert!(e.contains("malformed derivation"), "{e}");
    }

    #[test]
    fn validation_names_the_culprit() {
        let mut b = DerivationBuilder::new("ok", "/bin/sh");
        b.env("builder", "x");
        assert!(b.validate().unwrap_err().to_string().contains("'builder'"));
        let b = DerivationBuilder::new(".bad", "/bin/sh");
        assert!(b.validate().unwrap_err().to_string().contains("'.bad'"));
        let mut b = DerivationBuilder::new("ok", "/bin/sh");
        b.arg("a\0b");
        assert!(matches!(b.validate(), Err(Error::NulByte { .. })));
        let mut b = DerivationBuilder::new("ok", "/bin/sh");
        b.outputs(["out", "out"]);
        assert!(b.validate().unwrap_err().to_string().contains("output name"));
    }
}
