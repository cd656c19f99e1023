//! Package ids as cargo prints them, split into name, version and source.

use std::path::PathBuf;

use super::SourceKind;

/// The pieces of a package id, borrowed from the id's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PackageIdParts<'a> {
    /// Package name.
    pub name: &'a str,
    /// Package version, if the id has one.
    pub version: Option<&'a str>,
    /// The source with its kind prefix (`registry+https://…`, `path+file:///…`), if any.
    /// In the old form this includes a git source's `#rev`.
    pub source: Option<&'a str>,
}

impl<'a> PackageIdParts<'a> {
    /// Splits a package id in either form cargo prints:
    ///
    /// * package id spec: `registry+https://github.com/rust-lang/crates.io-index#serde@1.0.219`,
    ///   `path+file:///home/x/foo#0.1.0` (the name is the URL's last segment, here `foo`),
    ///   `path+file:///home/x/foo#bar@0.1.0`, `git+https://github.com/a/b?branch=x#0.1.0`,
    ///   or a bare `name@version`;
    /// * old form: `serde 1.0.219 (registry+https://github.com/rust-lang/crates.io-index)`.
    ///
    /// Returns `None` when no name can be found.
    pub fn parse(pkg_id: &'a str) -> Option<Self> {
        let pkg_id = pkg_id.trim();
        if pkg_id.contains(char::is_whitespace) {
            return Self::parse_old_form(pkg_id);
        }
        match pkg_id.rsplit_once('#') {
            Some((url, fragment)) => {
                let (name, version) = match fragment.split_once('@') {
                    Some((name, version)) => (name, Some(version)),
                    None if fragment.starts_with(|c: char| c.is_ascii_digit()) => {
                        (url_last_segment(url)?, Some(fragment))
                    }
                    None => (fragment, None),
                };
                nonempty(name)?;
                Some(PackageIdParts { name, version: version.and_then(nonempty), source: Some(url) })
            }
            None if pkg_id.contains("://") => {
                Some(PackageIdParts { name: url_last_segment(pkg_id)?, version: None, source: Some(pkg_id) })
            }
            None => {
                let (name, version) = match pkg_id.split_once('@') {
                    Some((name, version)) => (name, nonempty(version)),
                    None => (pkg_id, None),
                };
                Some(PackageIdParts { name: nonempty(name)?, version, source: None })
            }
        }
    }

    /// `name version (source)`, with the source optional and a `v` before the version allowed.
    fn parse_old_form(pkg_id: &'a str) -> Option<Self> {
        let (head, source) = match pkg_id.split_once('(') {
            Some((head, rest)) => (head, rest.strip_suffix(')').and_then(nonempty)),
            None => (pkg_id, None),
        };
        let mut words = head.split_whitespace();
        let name = words.next()?;
        let version = words.next().map(|v| v.strip_prefix('v').unwrap_or(v));
        Some(PackageIdParts { name, version, source: source.map(str::trim) })
    }

    /// Classifies [`PackageIdParts::source`].
    pub fn source_kind(&self) -> SourceKind {
        let Some(source) = self.source else {
            return SourceKind::Other;
        };
        let Some((kind, url)) = source.split_once('+') else {
            return SourceKind::Other;
        };
        match kind {
            "registry" | "sparse" => SourceKind::Registry,
            "git" => SourceKind::Git,
            "path" => match file_url_to_path(url) {
                Some(path) => SourceKind::Path(path),
                None => SourceKind::Other,
            },
            _ => SourceKind::Other,
        }
    }
}

fn nonempty(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

/// The last path segment of a URL, ignoring its query and fragment.
fn url_last_segment(url: &str) -> Option<&str> {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let path = url.split_once("://").map_or(url, |(_, rest)| rest);
    nonempty(path.rsplit('/').next()?)
}

/// `file:///a/b%20c?x#y` → `/a/b c`.
fn file_url_to_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("file://")?;
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    // `file://localhost/x` names the same file as `file:///x`.
    let path = rest.strip_prefix("localhost").unwrap_or(rest);
    if !path.starts_with('/') {
        return None;
    }
    Some(PathBuf::from(percent_decode(path)))
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some(&[b'%', hi, lo]) => hex(hi).zip(hex(lo)).map(|(hi, lo)| hi * 16 + lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
