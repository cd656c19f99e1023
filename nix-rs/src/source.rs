//! Adding local files and directory trees to the store.

use std::path::Path;

use crate::derivation::check_name;
use crate::error::{Error, Result};
use crate::store::{Store, StorePath};

/// The kind of a file met while adding a tree, as the source filter sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory (returning `false` skips everything under it).
    Directory,
    /// A symbolic link (added as a link, not followed).
    Symlink,
    /// Anything else (devices, sockets, ...).
    Other,
}

/// Options for [`Store::add_path`].
pub struct AddPathOptions<'a> {
    name: Option<String>,
    filter: Option<Box<crate::eval::FilterFn<'a>>>,
}

impl std::fmt::Debug for AddPathOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AddPathOptions")
            .field("name", &self.name)
            .field("filter", &self.filter.as_ref().map(|_| "<fn>"))
            .finish()
    }
}

impl Default for AddPathOptions<'_> {
    fn default() -> Self {
        Self::new()
    }
}

impl<'a> AddPathOptions<'a> {
    /// Default options: the name is the path's last component (`source` if that is not a valid
    /// store path name), and everything is kept.
    pub fn new() -> Self {
        AddPathOptions { name: None, filter: None }
    }

    /// The name part of the resulting store path.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Keeps only the entries for which `filter(relative_path, kind)` returns true. The path
    /// is relative to the root being added; rejecting a directory skips all of it. The filter
    /// runs on nix-rs's evaluator thread while the caller waits; a panic in it is caught and
    /// returned as [`Error::CallbackPanicked`].
    pub fn filter(mut self, filter: impl Fn(&Path, FileKind) -> bool + Sync + 'a) -> Self {
        self.filter = Some(Box::new(filter));
        self
    }

    /// Skips entries whose file name is one of `names` (e.g. `["target", ".git"]`), at any depth.
    pub fn exclude_names<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let names: Vec<String> = names.into_iter().map(Into::into).collect();
        self.filter(move |p, _| p.file_name().is_none_or(|n| !names.iter().any(|x| n == x.as_str())))
    }
}

impl Store {
    /// Adds the file or directory at `path` (recursively, as a NAR) to the store and returns its
    /// store path. The same content (after filtering) under the same name gives the same path,
    /// wherever it was on disk.
    ///
    /// If something under `path` disappears while it is being read, the result is
    /// [`Error::SourceVanished`] naming it, and nothing is added.
    pub fn add_path(&self, path: impl AsRef<Path>, options: AddPathOptions<'_>) -> Result<StorePath> {
        let path = path.as_ref();
        let abs = std::path::absolute(path).map_err(|e| Error::io("resolving source path", path, e))?;
        std::fs::symlink_metadata(&abs).map_err(|e| Error::io("reading source path", &abs, e))?;
        let abs_str = abs
            .to_str()
            .ok_or_else(|| Error::invalid("source path", format!("'{}' is not valid UTF-8", abs.display())))?;
        let name = match options.name {
            Some(n) => {
                check_name(&n)?;
                n
            }
            None => abs
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| check_name(n).is_ok())
                .unwrap_or("source")
                .to_owned(),
        };
        let keep_all = |_: &Path, _: FileKind| true;
        let filter: &crate::eval::FilterFn<'_> = match &options.filter {
            Some(f) => f.as_ref(),
            None => &keep_all,
        };
        let out = crate::eval::add_path(self, abs_str, &name, filter).map_err(|e| vanished(&abs, e))?;
        Ok(StorePath::from_valid(&out))
    }
}

/// Turns Nix's error about a missing file under `root` (listed, then gone before it was read)
/// into [`Error::SourceVanished`] naming it; other errors are returned as they are.
fn vanished(root: &Path, error: Error) -> Error {
    let Error::Nix { message, .. } = &error else { return error };
    let gone = |p: &Path| std::fs::symlink_metadata(p).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound);
    let root_str = root.to_string_lossy();
    // Nix quotes the path ("path '/x/c' does not exist") or ends it with a colon ("reading
    // directory /x/b: No such file or directory").
    let candidates = message.match_indices(root_str.as_ref()).map(|(i, _)| {
        let rest = &message[i..];
        let end = rest.find(['\'', '"', ':', '\n']).unwrap_or(rest.len());
        Path::new(rest[..end].trim_end())
    });
    let path = candidates.filter(|p| gone(p)).max_by_key(|p| p.as_os_str().len()).map(Path::to_path_buf);
    match path.or_else(|| gone(root).then(|| root.to_path_buf())) {
        Some(path) => Error::SourceVanished { root: root.to_path_buf(), path, message: message.clone() },
        None => error,
    }
}
