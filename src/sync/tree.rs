//! The two listings a sync compares: a local folder walked once, and a
//! remote folder listed with one `WALK`, both as [`Item`]s named relative
//! to the folder, filtered by the include and exclude patterns.

use super::{Links, Skipped};
use crate::error::{ErrorKind, Result};
use crate::protocol::{EntryKind, is_reserved, validate_name};
use crate::session::Session;
use globset::{GlobSet, GlobSetBuilder};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// One file or folder of a tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    /// File or folder.
    pub kind: EntryKind,
    /// Bytes (0 for a folder).
    pub size: u64,
    /// Modification time, whole seconds since the epoch.
    pub mtime: u64,
}

/// A tree: names relative to its folder (`a/b.txt`), sorted.
pub type Tree = BTreeMap<String, Meta>;

/// The include and exclude patterns, gitignore-like: a pattern without `/`
/// matches a name at any depth (`*.tmp`), one with `/` is anchored at the
/// tree's top (`build/out`, a leading `/` allowed), one ending in `/`
/// matches folders only. An excluded folder's contents are excluded; an
/// include list, if any, selects files (folders are always entered).
pub struct Filter {
    include: Option<Patterns>,
    exclude: Patterns,
}

struct Patterns {
    any: GlobSet,
    folders: GlobSet,
}

impl Filter {
    /// Compiles the patterns; a malformed one is an error naming it.
    pub fn new(include: &[String], exclude: &[String]) -> std::result::Result<Filter, String> {
        Ok(Filter {
            include: (!include.is_empty())
                .then(|| Patterns::new(include))
                .transpose()?,
            exclude: Patterns::new(exclude)?,
        })
    }

    /// Whether a tree's entry takes part in the sync.
    pub fn admits(&self, name: &str, kind: EntryKind) -> bool {
        if self.exclude.matches(name, kind) {
            return false;
        }
        match (&self.include, kind) {
            (Some(include), EntryKind::File) => include.matches(name, kind),
            _ => true,
        }
    }
}

impl Patterns {
    fn new(patterns: &[String]) -> std::result::Result<Patterns, String> {
        let mut any = GlobSetBuilder::new();
        let mut folders = GlobSetBuilder::new();
        for pattern in patterns {
            let (text, folders_only) = match pattern.strip_suffix('/') {
                Some(text) => (text, true),
                None => (pattern.as_str(), false),
            };
            let anchored = match text.strip_prefix('/') {
                Some(rest) => rest.to_string(),
                None if text.contains('/') => text.to_string(),
                None => format!("**/{text}"),
            };
            let glob = globset::GlobBuilder::new(&anchored)
                .literal_separator(true)
                .build()
                .map_err(|e| format!("pattern `{pattern}`: {e}"))?;
            if folders_only {
                folders.add(glob);
            } else {
                any.add(glob);
            }
        }
        let build = |b: GlobSetBuilder| b.build().map_err(|e| e.to_string());
        Ok(Patterns {
            any: build(any)?,
            folders: build(folders)?,
        })
    }

    fn matches(&self, name: &str, kind: EntryKind) -> bool {
        self.any.is_match(name) || (kind == EntryKind::Dir && self.folders.is_match(name))
    }
}

/// Lists a local folder recursively. What cannot be read (a folder without
/// permission, a followed link that leads nowhere) goes to `unreadable`: a
/// listing with holes must not be taken for the whole folder. Symbolic
/// links are skipped (their names go to `link_names`) unless `links` says
/// to follow them; names IOE/1 cannot carry, and what is
/// neither a file nor a folder, are skipped with a reason; transfers in
/// progress (`.ioe-tmp-…`, `.ioe-part-…`) are passed over silently.
pub fn local_tree(
    root: &Path,
    links: Links,
    filter: &Filter,
    skipped: &mut Vec<Skipped>,
    link_names: &mut Vec<String>,
    unreadable: &mut Vec<Skipped>,
) -> Tree {
    let mut tree = Tree::new();
    let walk = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(links == Links::Follow)
        .sort_by_file_name();
    let mut walker = walk.into_iter();
    while let Some(next) = walker.next() {
        let entry = match next {
            Ok(entry) => entry,
            Err(e) => {
                let name = e
                    .path()
                    .and_then(|p| p.strip_prefix(root).ok())
                    .map_or_else(|| "?".to_string(), |p| p.display().to_string());
                unreadable.push(Skipped::new(name, format!("cannot read it: {e}")));
                continue;
            }
        };
        let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
        let Some(name) = relative.to_str() else {
            skipped.push(Skipped::new(
                relative.display().to_string(),
                "its name is not UTF-8",
            ));
            if entry.file_type().is_dir() {
                walker.skip_current_dir();
            }
            continue;
        };
        if is_reserved(entry.file_name().as_encoded_bytes()) {
            continue;
        }
        let file_type = entry.file_type();
        let kind = if file_type.is_dir() {
            EntryKind::Dir
        } else if file_type.is_file() {
            EntryKind::File
        } else if file_type.is_symlink() {
            link_names.push(name.to_string());
            skipped.push(Skipped::new(
                name,
                "a symbolic link (links: \"follow\" copies what it points to)",
            ));
            continue;
        } else {
            skipped.push(Skipped::new(name, "neither a regular file nor a folder"));
            continue;
        };
        if let Err(e) = validate_name(name) {
            skipped.push(Skipped::new(name, format!("IOE/1 cannot name it: {e}")));
            if kind == EntryKind::Dir {
                walker.skip_current_dir();
            }
            continue;
        }
        if !filter.admits(name, kind) {
            if kind == EntryKind::Dir {
                walker.skip_current_dir();
            }
            continue;
        }
        let meta = match entry.metadata() {
            Ok(meta) => meta,
            Err(e) => {
                unreadable.push(Skipped::new(name, format!("cannot read it: {e}")));
                continue;
            }
        };
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let size = if kind == EntryKind::File {
            meta.len()
        } else {
            0
        };
        tree.insert(name.to_string(), Meta { kind, size, mtime });
    }
    tree
}

/// Lists a remote folder (`""` for the root) with one `WALK`; `None` when
/// it does not exist.
pub fn remote_tree(
    session: &mut Session,
    op: &str,
    dir: &str,
    filter: &Filter,
) -> Result<Option<Tree>> {
    let mut tree = Tree::new();
    let prefix_len = if dir.is_empty() { 0 } else { dir.len() + 1 };
    // folders left out, so that their contents are too (a folder's line
    // comes before its contents)
    let mut excluded: Vec<String> = Vec::new();
    let walked = session.walk_each((!dir.is_empty()).then_some(dir), |entry| {
        let name = &entry.name[prefix_len.min(entry.name.len())..];
        if excluded.iter().any(|e| name.starts_with(e.as_str())) {
            return;
        }
        if !filter.admits(name, entry.kind) {
            if entry.kind == EntryKind::Dir {
                excluded.push(format!("{name}/"));
            }
            return;
        }
        tree.insert(
            name.to_string(),
            Meta {
                kind: entry.kind,
                size: entry.size,
                mtime: entry.mtime,
            },
        );
    });
    match walked {
        Ok(_) => Ok(Some(tree)),
        Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.with_op(op)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> Filter {
        let owned = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Filter::new(&owned(include), &owned(exclude)).unwrap()
    }

    #[test]
    fn patterns_work_as_in_gitignore() {
        let f = filter(&[], &["*.tmp", "/build", "cache/", "docs/draft.md"]);
        use EntryKind::{Dir, File};
        assert!(!f.admits("a.tmp", File));
        assert!(!f.admits("deep/er/a.tmp", File));
        assert!(f.admits("a.tmp.txt", File));
        assert!(!f.admits("build", Dir));
        assert!(f.admits("src/build", Dir), "anchored at the top");
        assert!(!f.admits("x/cache", Dir));
        assert!(f.admits("x/cache", File), "folders only");
        assert!(!f.admits("docs/draft.md", File));
        assert!(f.admits("other/docs/draft.md", File));
        let only = filter(&["*.jpg"], &[]);
        assert!(only.admits("a/b.jpg", File));
        assert!(!only.admits("a/b.png", File));
        assert!(only.admits("a", Dir), "folders are always entered");
        assert!(Filter::new(&["a[".to_string()], &[]).is_err());
    }
}
