//! Reading a build script's standard output the way cargo does.
//!
//! A build script talks to cargo by printing instructions on stdout, one per line. This module
//! turns that output into a [`BuildScriptOutput`] following cargo's `BuildOutput::parse`
//! (`custom_build.rs`) rule for rule, so a unit built outside cargo sees the same flags and
//! environment that cargo would give it.
//!
//! # The rules
//!
//! * The output is split on `\n`. A line that is not valid UTF-8 is skipped, and every line is
//!   trimmed of surrounding whitespace (so `\r\n` endings work). Lines not starting with `cargo:`
//!   are ignored.
//! * `cargo::KEY=VALUE` (since Rust 1.77): `KEY` must be a known instruction, and
//!   `cargo::metadata=NAME=VALUE` sets metadata. An unknown key, or a line without `=`, is an
//!   error.
//! * `cargo:KEY=VALUE` (the old syntax): if `KEY` is one of the instructions that existed when the
//!   new syntax arrived, it is that instruction; anything else, including `error`, is metadata
//!   `KEY=VALUE`. A line with no `=` at all is an error.
//! * Metadata reaches the build scripts of *immediate* dependents as `DEP_<LINKS>_<KEY>` (see
//!   [`BuildScriptOutput::to_dep_env`]); `warning` and `error` messages are collected, and the
//!   caller decides to fail the build when [`BuildScriptOutput::errors`] is not empty.
//!
//! # What is left to the caller
//!
//! Cargo also checks a few things that need more than the output: that `rustc-link-arg-bins` and
//! friends name target kinds the package has (it errors otherwise), that a package using the
//! `cargo::` syntax does not declare a `rust-version` below 1.77, and it rewrites paths when the
//! target directory moved. When passing `-L` flags, cargo puts paths inside the build directory
//! before the others, keeping the relative order within each group ([`split_link_search`] strips
//! the `KIND=` prefix for that test).
//!
//! Parsing is a single pass over the input; each line is looked at a constant number of times, so
//! the time is linear in the size of the output.

use std::str;

/// Instructions the old `cargo:` syntax recognises. Any other `cargo:KEY=VALUE` is metadata.
/// (No new instruction may be added here: that would change the meaning of existing output.)
const OLD_SYNTAX_KEYS: &[&str] = &[
    "rustc-flags",
    "rustc-link-lib",
    "rustc-link-search",
    "rustc-link-arg-cdylib",
    "rustc-cdylib-link-arg",
    "rustc-link-arg-bins",
    "rustc-link-arg-bin",
    "rustc-link-arg-tests",
    "rustc-link-arg-benches",
    "rustc-link-arg-examples",
    "rustc-link-arg",
    "rustc-cfg",
    "rustc-check-cfg",
    "rustc-env",
    "warning",
    "rerun-if-changed",
    "rerun-if-env-changed",
];

const DOCS: &str = "See https://doc.rust-lang.org/cargo/reference/build-scripts.html\
                    #outputs-of-the-build-script for more information about build script outputs.";

/// Why a build script's output was rejected. Every variant names the package, and the line
/// (1-based number and trimmed text) that caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildScriptError {
    /// A `cargo::` line (or a metadata line) without the `=` it needs.
    #[error(
        "invalid output in build script of `{package}` (line {line_number}): `{line}`\n\
         Expected a line with `{expected}KEY=VALUE` with an `=` character, but none was found.\n\
         {DOCS}"
    )]
    MissingEquals {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// The form that was expected: `cargo:`, `cargo::` or `cargo::metadata=`.
        expected: &'static str,
    },
    /// A `cargo::KEY=VALUE` line with a key cargo does not know.
    #[error(
        "invalid output in build script of `{package}` (line {line_number}): `{line}`\n\
         Unknown key: `{key}`.\n{DOCS}"
    )]
    UnknownKey {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// The unknown key.
        key: String,
    },
    /// `rustc-flags` contained something other than `-l` and `-L` flags.
    #[error(
        "only `-l` and `-L` flags are allowed in build script of `{package}` \
         (line {line_number}): `{value}`"
    )]
    RustcFlagsUnsupported {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// The value of the `rustc-flags` instruction.
        value: String,
    },
    /// `rustc-flags` ended with a `-l` or `-L` that has no value.
    #[error(
        "flag `{flag}` in rustc-flags has no value in build script of `{package}` \
         (line {line_number}): `{line}`"
    )]
    RustcFlagsMissingValue {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// `-l` or `-L`.
        flag: String,
    },
    /// `rustc-env` without `NAME=VALUE`.
    #[error(
        "Variable rustc-env has no value in build script of `{package}` \
         (line {line_number}): `{line}`"
    )]
    RustcEnvMissingValue {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
    },
    /// `rustc-env=RUSTC_BOOTSTRAP=...`, which cargo refuses on stable toolchains because it
    /// would let a crate switch on unstable features behind the user's back.
    #[error(
        "cannot set `RUSTC_BOOTSTRAP={value}` from build script of `{package}` \
         (line {line_number}).\nnote: crates cannot set `RUSTC_BOOTSTRAP` themselves, as doing \
         so would subvert the stability guarantees of Rust for your project."
    )]
    RustcBootstrap {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// The value it tried to set.
        value: String,
    },
    /// `rustc-link-arg-bin` whose value is not `BIN=ARG`.
    #[error(
        "invalid instruction `{line}` from build script of `{package}` (line {line_number})\n\
         The instruction should have the form {syntax}rustc-link-arg-bin=BIN=ARG"
    )]
    LinkArgBinMalformed {
        /// The package whose build script printed the line.
        package: String,
        /// 1-based line number in the output.
        line_number: usize,
        /// The offending line, trimmed.
        line: String,
        /// `cargo:` or `cargo::`, as used on the line.
        syntax: &'static str,
    },
}

/// Which targets of the package a `rustc-link-arg*` instruction applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LinkArgTarget {
    /// `rustc-link-arg`: every target that links.
    All,
    /// `rustc-link-arg-bins`: every binary.
    Bins,
    /// `rustc-link-arg-bin=BIN=ARG`: the binary named `BIN`.
    Bin(String),
    /// `rustc-link-arg-tests`: integration tests.
    Tests,
    /// `rustc-link-arg-examples`: examples built as executables.
    Examples,
    /// `rustc-link-arg-benches`: benchmarks.
    Benches,
    /// `rustc-link-arg-cdylib` (old alias `rustc-cdylib-link-arg`): cdylib libraries.
    Cdylib,
}

impl LinkArgTarget {
    /// Whether the link argument goes on the rustc command line of a unit with the facts
    /// `target`, as cargo's `LinkArgTarget::applies_to` decides it.
    ///
    /// Cargo passes link arguments to units of the package that ran the build script, with one
    /// historical exception: `Cdylib` arguments also reach cdylib units of *dependent* packages
    /// (rust-lang/cargo#9562). That choice of packages is the caller's.
    pub fn applies_to(&self, target: &LinkTarget) -> bool {
        match self {
            LinkArgTarget::All => true,
            LinkArgTarget::Cdylib => target.cdylib,
            LinkArgTarget::Bins => target.bin.is_some(),
            LinkArgTarget::Bin(name) => target.bin.as_deref() == Some(name.as_str()),
            LinkArgTarget::Tests => target.test,
            LinkArgTarget::Benches => target.bench,
            LinkArgTarget::Examples => target.example,
        }
    }
}

/// The facts about a unit that decide which `rustc-link-arg*` instructions apply to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkTarget {
    /// A `[[bin]]` target (also when compiled as a test), with its name.
    pub bin: Option<String>,
    /// An integration test (`[[test]]`).
    pub test: bool,
    /// A benchmark (`[[bench]]`).
    pub bench: bool,
    /// An example built as an executable.
    pub example: bool,
    /// A cdylib, not compiled as a test.
    pub cdylib: bool,
}

/// Everything a build script asked for, in the order it printed it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildScriptOutput {
    /// `-L` values from `rustc-link-search` and from `-L` in `rustc-flags`, verbatim
    /// (possibly `KIND=PATH`; see [`split_link_search`]). Dependents get these too.
    pub library_paths: Vec<String>,
    /// `-l` values from `rustc-link-lib` and from `-l` in `rustc-flags` (possibly
    /// `KIND[:MODIFIERS]=NAME[:RENAME]`). Only this package's units get these.
    pub library_links: Vec<String>,
    /// `-C link-arg=` values with the targets they apply to.
    pub link_args: Vec<(LinkArgTarget, String)>,
    /// `--cfg` values from `rustc-cfg`.
    pub cfgs: Vec<String>,
    /// `--check-cfg` values from `rustc-check-cfg`.
    pub check_cfgs: Vec<String>,
    /// Environment for compiling this package, from `rustc-env=NAME=VALUE`.
    pub env: Vec<(String, String)>,
    /// Metadata for the build scripts of immediate dependents, as `(KEY, VALUE)`.
    pub metadata: Vec<(String, String)>,
    /// Paths from `rerun-if-changed` (relative ones are relative to the package root).
    pub rerun_if_changed: Vec<String>,
    /// Variable names from `rerun-if-env-changed`.
    pub rerun_if_env_changed: Vec<String>,
    /// Messages from `warning`.
    pub warnings: Vec<String>,
    /// Messages from `cargo::error` (new syntax only). Cargo fails the build if there is any.
    pub errors: Vec<String>,
}

/// Which of the two syntaxes a line used.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Syntax {
    Old,
    New,
}

impl Syntax {
    fn prefix(self) -> &'static str {
        match self {
            Syntax::Old => "cargo:",
            Syntax::New => "cargo::",
        }
    }
}

/// The line being looked at, for error messages.
struct Line<'a> {
    package: &'a str,
    number: usize,
    text: &'a str,
    syntax: Syntax,
}

impl Line<'_> {
    fn missing_equals(&self, expected: &'static str) -> BuildScriptError {
        BuildScriptError::MissingEquals {
            package: self.package.to_owned(),
            line_number: self.number,
            line: self.text.to_owned(),
            expected,
        }
    }
}

impl BuildScriptOutput {
    /// Parses a build script's stdout. `package` names the package in error messages (cargo
    /// uses e.g. `foo v0.1.0 (/path/to/foo)`).
    ///
    /// # Errors
    ///
    /// The first malformed instruction, as cargo would reject it: a `cargo::` line without `=`
    /// or with an unknown key, a metadata line without `=`, bad `rustc-flags`, `rustc-env` or
    /// `rustc-link-arg-bin` values, or an attempt to set `RUSTC_BOOTSTRAP`. `cargo::error`
    /// lines are not errors here; they are collected in [`BuildScriptOutput::errors`].
    pub fn parse(output: &[u8], package: &str) -> Result<BuildScriptOutput, BuildScriptError> {
        let mut parsed = BuildScriptOutput::default();
        for (index, raw) in output.split(|&b| b == b'\n').enumerate() {
            let Ok(text) = str::from_utf8(raw) else {
                continue;
            };
            let text = text.trim();
            let (syntax, key, value) = if let Some(data) = text.strip_prefix("cargo::") {
                let line = Line { package, number: index + 1, text, syntax: Syntax::New };
                let (key, value) = data.split_once('=').ok_or_else(|| line.missing_equals("cargo::"))?;
                (Syntax::New, key, value)
            } else if let Some(data) = text.strip_prefix("cargo:") {
                match data.split_once('=') {
                    Some((key, value)) if OLD_SYNTAX_KEYS.contains(&key) => (Syntax::Old, key, value),
                    _ => (Syntax::Old, "metadata", data),
                }
            } else {
                continue;
            };
            let line = Line { package, number: index + 1, text, syntax };
            parsed.apply(&line, key, value)?;
        }
        Ok(parsed)
    }

    /// Records one instruction.
    fn apply(&mut self, line: &Line<'_>, key: &str, value: &str) -> Result<(), BuildScriptError> {
        let link_arg = |target: LinkArgTarget| (target, value.to_owned());
        match key {
            "rustc-flags" => self.apply_rustc_flags(line, value)?,
            "rustc-link-lib" => self.library_links.push(value.to_owned()),
            "rustc-link-search" => self.library_paths.push(value.to_owned()),
            "rustc-link-arg-cdylib" | "rustc-cdylib-link-arg" => {
                self.link_args.push(link_arg(LinkArgTarget::Cdylib));
            }
            "rustc-link-arg-bins" => self.link_args.push(link_arg(LinkArgTarget::Bins)),
            "rustc-link-arg-bin" => {
                let (bin, arg) = value.split_once('=').ok_or_else(|| BuildScriptError::LinkArgBinMalformed {
                    package: line.package.to_owned(),
                    line_number: line.number,
                    line: line.text.to_owned(),
                    syntax: line.syntax.prefix(),
                })?;
                self.link_args.push((LinkArgTarget::Bin(bin.to_owned()), arg.to_owned()));
            }
            "rustc-link-arg-tests" => self.link_args.push(link_arg(LinkArgTarget::Tests)),
            "rustc-link-arg-benches" => self.link_args.push(link_arg(LinkArgTarget::Benches)),
            "rustc-link-arg-examples" => self.link_args.push(link_arg(LinkArgTarget::Examples)),
            "rustc-link-arg" => self.link_args.push(link_arg(LinkArgTarget::All)),
            "rustc-cfg" => self.cfgs.push(value.to_owned()),
            "rustc-check-cfg" => self.check_cfgs.push(value.to_owned()),
            "rustc-env" => {
                let (name, val) = value.split_once('=').ok_or_else(|| BuildScriptError::RustcEnvMissingValue {
                    package: line.package.to_owned(),
                    line_number: line.number,
                    line: line.text.to_owned(),
                })?;
                if name == "RUSTC_BOOTSTRAP" {
                    return Err(BuildScriptError::RustcBootstrap {
                        package: line.package.to_owned(),
                        line_number: line.number,
                        line: line.text.to_owned(),
                        value: val.to_owned(),
                    });
                }
                self.env.push((name.to_owned(), val.to_owned()));
            }
            "error" => self.errors.push(value.to_owned()),
            "warning" => self.warnings.push(value.to_owned()),
            "rerun-if-changed" => self.rerun_if_changed.push(value.to_owned()),
            "rerun-if-env-changed" => self.rerun_if_env_changed.push(value.to_owned()),
            "metadata" => {
                let expected = match line.syntax {
                    Syntax::Old => "cargo:",
                    Syntax::New => "cargo::metadata=",
                };
                let (name, val) = value.split_once('=').ok_or_else(|| line.missing_equals(expected))?;
                self.metadata.push((name.to_owned(), val.to_owned()));
            }
            _ => {
                return Err(BuildScriptError::UnknownKey {
                    package: line.package.to_owned(),
                    line_number: line.number,
                    line: line.text.to_owned(),
                    key: key.to_owned(),
                });
            }
        }
        Ok(())
    }

    /// `rustc-flags`: only `-l NAME`/`-lNAME` and `-L PATH`/`-LPATH`, separated by whitespace.
    fn apply_rustc_flags(&mut self, line: &Line<'_>, value: &str) -> Result<(), BuildScriptError> {
        let mut words = value.split_whitespace();
        while let Some(word) = words.next() {
            let (flag, attached) = match word.get(..2) {
                Some(flag @ ("-l" | "-L")) => (flag, &word[2..]),
                _ => {
                    return Err(BuildScriptError::RustcFlagsUnsupported {
                        package: line.package.to_owned(),
                        line_number: line.number,
                        line: line.text.to_owned(),
                        value: value.trim().to_owned(),
                    });
                }
            };
            // As in cargo, a separate value is simply the next word, whatever it looks like.
            let flag_value = if attached.is_empty() {
                words.next().ok_or_else(|| BuildScriptError::RustcFlagsMissingValue {
                    package: line.package.to_owned(),
                    line_number: line.number,
                    line: line.text.to_owned(),
                    flag: flag.to_owned(),
                })?
            } else {
                attached
            };
            if flag == "-l" {
                self.library_links.push(flag_value.to_owned());
            } else {
                self.library_paths.push(flag_value.to_owned());
            }
        }
        Ok(())
    }

    /// The environment this package's metadata gives the build scripts of its immediate
    /// dependents: `DEP_<LINKS>_<KEY>=VALUE` for each metadata pair, where `links` is the
    /// package's `links` manifest value (not its name). Both parts go through [`envify`].
    pub fn to_dep_env(&self, links: &str) -> Vec<(String, String)> {
        let links = envify(links);
        self.metadata.iter().map(|(key, value)| (format!("DEP_{links}_{}", envify(key)), value.clone())).collect()
    }

    /// The `-C link-arg=` values that apply to a unit (see [`LinkArgTarget::applies_to`]).
    pub fn link_args_for<'a>(&'a self, target: &'a LinkTarget) -> impl Iterator<Item = &'a str> + 'a {
        self.link_args.iter().filter(move |(t, _)| t.applies_to(target)).map(|(_, arg)| arg.as_str())
    }

    /// Whether the script printed any `cargo::error`, which makes cargo fail the build.
    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

/// Turns a name into the form cargo uses inside environment variable names: upper case, with
/// `-` replaced by `_` (cargo's `envify`).
pub fn envify(s: &str) -> String {
    s.chars().flat_map(char::to_uppercase).map(|c| if c == '-' { '_' } else { c }).collect()
}

/// Splits a `rustc-link-search` value into its kind (`native`, `crate`, `dependency`,
/// `framework` or `all`) and path. A value without one of these prefixes is all path.
pub fn split_link_search(value: &str) -> (Option<&str>, &str) {
    match value.split_once('=') {
        Some((kind @ ("native" | "crate" | "dependency" | "framework" | "all"), path)) => (Some(kind), path),
        _ => (None, value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PKG: &str = "foo v0.1.0 (/work/foo)";

    fn parse(text: &str) -> BuildScriptOutput {
        BuildScriptOutput::parse(text.as_bytes(), PKG).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> BuildScriptError {
        BuildScriptOutput::parse(text.as_bytes(), PKG).expect_err("expected an error")
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn every_directive_in_both_syntaxes() {
        for prefix in ["cargo:", "cargo::"] {
            let text = [
                "rustc-link-lib=static=z",
                "rustc-link-search=native=/opt/z/lib",
                "rustc-link-search=/plain",
                "rustc-link-arg=-Wl,-z,relro",
                "rustc-link-arg-bins=-bins",
                "rustc-link-arg-bin=tool=-only-tool",
                "rustc-link-arg-tests=-tests",
                "rustc-link-arg-examples=-examples",
                "rustc-link-arg-benches=-benches",
                "rustc-link-arg-cdylib=-cdylib",
                "rustc-cdylib-link-arg=-cdylib-old",
                "rustc-cfg=has_z",
                r#"rustc-cfg=z_version="1.3""#,
                "rustc-check-cfg=cfg(has_z)",
                "rustc-env=Z_VERSION=1.3=ok",
                "rustc-env=EMPTY=",
                "warning=z is old",
                "rerun-if-changed=build.rs",
                "rerun-if-env-changed=Z_DIR",
                "rustc-flags=-l m -L/opt/m",
            ]
            .map(|l| format!("{prefix}{l}\n"))
            .concat();
            let out = parse(&text);
            assert_eq!(out.library_links, vec!["static=z", "m"], "{prefix}");
            assert_eq!(out.library_paths, vec!["native=/opt/z/lib", "/plain", "/opt/m"]);
            assert_eq!(
                out.link_args,
                vec![
                    (LinkArgTarget::All, "-Wl,-z,relro".to_owned()),
                    (LinkArgTarget::Bins, "-bins".to_owned()),
                    (LinkArgTarget::Bin("tool".to_owned()), "-only-tool".to_owned()),
                    (LinkArgTarget::Tests, "-tests".to_owned()),
                    (LinkArgTarget::Examples, "-examples".to_owned()),
                    (LinkArgTarget::Benches, "-benches".to_owned()),
                    (LinkArgTarget::Cdylib, "-cdylib".to_owned()),
                    (LinkArgTarget::Cdylib, "-cdylib-old".to_owned()),
                ]
            );
            assert_eq!(out.cfgs, vec!["has_z", r#"z_version="1.3""#]);
            assert_eq!(out.check_cfgs, vec!["cfg(has_z)"]);
            assert_eq!(out.env, pairs(&[("Z_VERSION", "1.3=ok"), ("EMPTY", "")]));
            assert_eq!(out.warnings, vec!["z is old"]);
            assert_eq!(out.rerun_if_changed, vec!["build.rs"]);
            assert_eq!(out.rerun_if_env_changed, vec!["Z_DIR"]);
            assert!(out.metadata.is_empty() && out.errors.is_empty());
        }
    }

    #[test]
    fn metadata_in_both_syntaxes() {
        let out = parse(
            "cargo:root=/opt/z\n\
             cargo::metadata=include=/opt/z/include\n\
             cargo:version_number=1.3.1\n\
             cargo::metadata=with-eq=a=b\n",
        );
        assert_eq!(
            out.metadata,
            pairs(&[
                ("root", "/opt/z"),
                ("include", "/opt/z/include"),
                ("version_number", "1.3.1"),
                ("with-eq", "a=b"),
            ])
        );
    }

    #[test]
    fn error_is_new_syntax_only() {
        let out = parse("cargo::error=no zlib found\ncargo:error=kept as metadata\n");
        assert_eq!(out.errors, vec!["no zlib found"]);
        assert!(out.has_errors());
        assert_eq!(out.metadata, pairs(&[("error", "kept as metadata")]));
    }

    #[test]
    fn old_syntax_metadata_key_is_literal() {
        // `metadata` is not an old-syntax instruction, so it is a metadata key of its own.
        let out = parse("cargo:metadata=a=b\n");
        assert_eq!(out.metadata, pairs(&[("metadata", "a=b")]));
    }

    #[test]
    fn unknown_keys() {
        // Old syntax: anything unknown is metadata.
        let out = parse("cargo:rustc-link-args=-x\ncargo:some-key=v\n");
        assert_eq!(out.metadata, pairs(&[("rustc-link-args", "-x"), ("some-key", "v")]));
        // New syntax: an error naming the package, the line and the key.
        let err = parse_err("hello\ncargo::rustc-link-lib=z\ncargo::rustc-link-args=-x\n");
        assert_eq!(
            err,
            BuildScriptError::UnknownKey {
                package: PKG.to_owned(),
                line_number: 3,
                line: "cargo::rustc-link-args=-x".to_owned(),
                key: "rustc-link-args".to_owned(),
            }
        );
        let text = err.to_string();
        assert!(text.contains(PKG) && text.contains("cargo::rustc-link-args=-x"), "{text}");
        assert!(text.contains("line 3"), "{text}");
    }

    #[test]
    fn missing_equals() {
        for (input, expected) in [
            ("cargo::rustc-cfg", "cargo::"),
            ("cargo::", "cargo::"),
            ("cargo::metadata=novalue", "cargo::metadata="),
            ("cargo:justakey", "cargo:"),
            ("cargo:", "cargo:"),
        ] {
            match parse_err(input) {
                BuildScriptError::MissingEquals { line, expected: e, .. } => {
                    assert_eq!(line, input);
                    assert_eq!(e, expected, "{input}");
                }
                other => panic!("{input}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn lines_are_trimmed_and_others_ignored() {
        let out = parse(
            "  cargo:rustc-cfg=a  \r\n\
             \tcargo::rustc-cfg=b\r\n\
             \u{a0}\u{b}cargo:rustc-cfg=c\n\
             not cargo:rustc-cfg=d\n\
             Cargo:rustc-cfg=e\n\
             cargo :rustc-cfg=f\n\
             \n\
             cargo:rustc-cfg= g",
        );
        // Leading spaces of a value are kept (only the whole line is trimmed).
        assert_eq!(out.cfgs, vec!["a", "b", "c", " g"]);
    }

    #[test]
    fn non_utf8_lines_are_skipped() {
        let mut input = b"cargo:rustc-cfg=one\n".to_vec();
        input.extend_from_slice(b"cargo:rustc-cfg=\xff\xfe\n");
        input.extend_from_slice(b"\xc3cargo::unknown-key\n");
        input.extend_from_slice(b"cargo:rustc-cfg=two\n");
        let out = BuildScriptOutput::parse(&input, PKG).unwrap();
        assert_eq!(out.cfgs, vec!["one", "two"]);
        // Line numbers still count the skipped lines.
        input.extend_from_slice(b"cargo::bogus=1\n");
        let err = BuildScriptOutput::parse(&input, PKG).unwrap_err();
        assert!(matches!(err, BuildScriptError::UnknownKey { line_number: 5, .. }), "{err:?}");
    }

    #[test]
    fn rustc_flags() {
        let out = parse("cargo:rustc-flags=-l foo -L bar\ncargo::rustc-flags=-lfoo2 -Lbar2\n");
        assert_eq!(out.library_links, vec!["foo", "foo2"]);
        assert_eq!(out.library_paths, vec!["bar", "bar2"]);

        let out = parse("cargo:rustc-flags=  -L native=/a\t-l\tdylib=z  -lstatic=y  ");
        assert_eq!(out.library_paths, vec!["native=/a"]);
        assert_eq!(out.library_links, vec!["dylib=z", "static=y"]);

        assert_eq!(parse("cargo:rustc-flags=").library_links.len(), 0);

        // Anything but -l/-L is refused, with the whole value in the message.
        let err = parse_err("cargo:rustc-flags=-l z -C opt-level=3");
        assert!(
            matches!(&err, BuildScriptError::RustcFlagsUnsupported { value, line_number: 1, .. }
                if value == "-l z -C opt-level=3"),
            "{err:?}"
        );
        assert!(err.to_string().contains("only `-l` and `-L`"), "{err}");
        assert!(matches!(parse_err("cargo:rustc-flags=--cfg x"), BuildScriptError::RustcFlagsUnsupported { .. }));
        // A trailing flag without a value.
        let err = parse_err("cargo:rustc-flags=-L /a -l");
        assert!(matches!(&err, BuildScriptError::RustcFlagsMissingValue { flag, .. } if flag == "-l"), "{err:?}");
        // Like cargo, the word after a bare flag is its value even if it looks like a flag.
        let out = parse("cargo:rustc-flags=-l -L");
        assert_eq!(out.library_links, vec!["-L"]);
    }

    #[test]
    fn rustc_env_errors() {
        let err = parse_err("cargo:rustc-env=NOVALUE");
        assert!(matches!(err, BuildScriptError::RustcEnvMissingValue { .. }), "{err:?}");
        assert!(err.to_string().contains(PKG));
        let err = parse_err("cargo::rustc-env=RUSTC_BOOTSTRAP=1");
        assert!(matches!(&err, BuildScriptError::RustcBootstrap { value, .. } if value == "1"), "{err:?}");
    }

    #[test]
    fn link_arg_bin_needs_a_name() {
        let err = parse_err("cargo::rustc-link-arg-bin=-x");
        assert!(
            matches!(
                &err,
                BuildScriptError::LinkArgBinMalformed { syntax: "cargo::", line, .. }
                    if line == "cargo::rustc-link-arg-bin=-x"
            ),
            "{err:?}"
        );
        let out = parse("cargo:rustc-link-arg-bin=tool=--a=b");
        assert_eq!(out.link_args, vec![(LinkArgTarget::Bin("tool".into()), "--a=b".into())]);
    }

    #[test]
    fn dep_env_is_envified() {
        let out = parse("cargo:root=/z\ncargo::metadata=include-dir=/z/inc\ncargo:Mixed.Case=1\n");
        assert_eq!(
            out.to_dep_env("z-sys"),
            pairs(&[("DEP_Z_SYS_ROOT", "/z"), ("DEP_Z_SYS_INCLUDE_DIR", "/z/inc"), ("DEP_Z_SYS_MIXED.CASE", "1"),])
        );
        assert_eq!(envify("openssl-3"), "OPENSSL_3");
        assert_eq!(envify("straße"), "STRASSE");
    }

    #[test]
    fn link_search_kinds() {
        assert_eq!(split_link_search("native=/a=b"), (Some("native"), "/a=b"));
        assert_eq!(split_link_search("framework=/F"), (Some("framework"), "/F"));
        assert_eq!(split_link_search("/plain"), (None, "/plain"));
        assert_eq!(split_link_search("/odd=path"), (None, "/odd=path"));
    }

    #[test]
    fn link_arg_targets_select_units() {
        let lib = LinkTarget::default();
        let tool = LinkTarget { bin: Some("tool".into()), ..Default::default() };
        let other = LinkTarget { bin: Some("other".into()), ..Default::default() };
        let test = LinkTarget { test: true, ..Default::default() };
        let example = LinkTarget { example: true, ..Default::default() };
        let bench = LinkTarget { bench: true, ..Default::default() };
        let cdylib = LinkTarget { cdylib: true, ..Default::default() };
        let units = [&lib, &tool, &other, &test, &example, &bench, &cdylib];
        let selected =
            |t: LinkArgTarget| -> Vec<usize> { (0..units.len()).filter(|&i| t.applies_to(units[i])).collect() };
        assert_eq!(selected(LinkArgTarget::All).len(), units.len());
        assert_eq!(selected(LinkArgTarget::Bins), vec![1, 2]);
        assert_eq!(selected(LinkArgTarget::Bin("tool".into())), vec![1]);
        assert_eq!(selected(LinkArgTarget::Tests), vec![3]);
        assert_eq!(selected(LinkArgTarget::Examples), vec![4]);
        assert_eq!(selected(LinkArgTarget::Benches), vec![5]);
        assert_eq!(selected(LinkArgTarget::Cdylib), vec![6]);

        let out = parse("cargo:rustc-link-arg=-all\ncargo:rustc-link-arg-bins=-bins\n");
        assert_eq!(out.link_args_for(&tool).collect::<Vec<_>>(), vec!["-all", "-bins"]);
        assert_eq!(out.link_args_for(&lib).collect::<Vec<_>>(), vec!["-all"]);
    }

    #[test]
    fn large_output_parses_in_linear_time() {
        // ~50 MB: mostly compiler chatter, some instructions, one 8 MB line and invalid UTF-8.
        let mut input = Vec::with_capacity(52 << 20);
        let chatter = b"   Compiling some C file with a fairly long command line -O2 -g -Wall\n";
        let mut cfgs = 0;
        while input.len() < 41 << 20 {
            for _ in 0..50 {
                input.extend_from_slice(chatter);
            }
            input.extend_from_slice(b"cargo:rustc-cfg=x\n\xff\xfe bad bytes\n");
            cfgs += 1;
        }
        input.extend_from_slice(b"cargo:warning=");
        input.resize(input.len() + (8 << 20), b'a');
        input.extend_from_slice(b"\ncargo::rustc-flags=");
        for _ in 0..100_000 {
            input.extend_from_slice(b"-lz -L /x ");
        }
        input.push(b'\n');
        assert!(input.len() > 49 << 20);

        let start = std::time::Instant::now();
        let out = BuildScriptOutput::parse(&input, PKG).unwrap();
        let elapsed = start.elapsed();
        assert_eq!(out.cfgs.len(), cfgs);
        assert_eq!(out.warnings.len(), 1);
        assert_eq!(out.warnings[0].len(), 8 << 20);
        assert_eq!(out.library_links.len(), 100_000);
        assert_eq!(out.library_paths.len(), 100_000);
        // Generous even for an unoptimised build; a quadratic parser would take hours.
        assert!(elapsed.as_secs() < 30, "took {elapsed:?}");
    }
}
