//! The diff of two trees into the actions that make the destination match
//! the source: pure, so that a dry run is exactly what a real run does.

use super::tree::{Meta, Tree};
use super::{Compare, SyncOptions};
use crate::protocol::EntryKind;

/// What to do with one name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the folder on the destination.
    Mkdir,
    /// Copy the file (`size` bytes, `mtime`), for `reason`.
    Copy {
        /// The source's size.
        size: u64,
        /// The source's mtime.
        mtime: u64,
        /// `new`, `size differs`, `mtime differs`, `always`.
        reason: &'static str,
    },
    /// Compare digests, then copy if they differ (`compare: "digest"` on
    /// files of the same size).
    Check {
        /// The source's size.
        size: u64,
        /// The source's mtime.
        mtime: u64,
    },
    /// Nothing to do, for `reason`.
    Skip(&'static str),
    /// Remove from the destination (with `delete`).
    Delete(EntryKind),
    /// Cannot be done: a file and a folder share the name.
    Conflict(&'static str),
}

/// One name and what to do with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The name relative to both folders.
    pub name: String,
    /// What to do.
    pub action: Action,
}

/// The steps that make `dest` match `source`: every source entry once, in
/// name order, then the deletes (files first, then folders, deepest first)
/// when `options.delete` is on.
pub fn plan(source: &Tree, dest: &Tree, options: &SyncOptions) -> Vec<Step> {
    let mut steps = Vec::with_capacity(source.len());
    for (name, src) in source {
        let action = match (src.kind, dest.get(name)) {
            (EntryKind::Dir, None) => Action::Mkdir,
            (EntryKind::Dir, Some(d)) if d.kind == EntryKind::Dir => Action::Skip("exists"),
            (EntryKind::Dir, Some(_)) => {
                Action::Conflict("a file on the destination has the name of this folder")
            }
            (EntryKind::File, None) => copy(src, "new"),
            (EntryKind::File, Some(d)) if d.kind == EntryKind::Dir => {
                Action::Conflict("a folder on the destination has the name of this file")
            }
            (EntryKind::File, Some(d)) => compare(src, d, options.compare),
        };
        steps.push(Step {
            name: name.clone(),
            action,
        });
    }
    if options.delete {
        let mut gone: Vec<(&String, &Meta)> = dest
            .iter()
            .filter(|(name, _)| !source.contains_key(*name))
            .collect();
        // files first; then folders, the deepest first
        gone.sort_by_key(|(name, meta)| {
            let is_dir = meta.kind == EntryKind::Dir;
            let depth = if is_dir { name.matches('/').count() } else { 0 };
            (is_dir, std::cmp::Reverse(depth))
        });
        steps.extend(gone.into_iter().map(|(name, meta)| Step {
            name: name.clone(),
            action: Action::Delete(meta.kind),
        }));
    }
    steps
}

fn copy(src: &Meta, reason: &'static str) -> Action {
    Action::Copy {
        size: src.size,
        mtime: src.mtime,
        reason,
    }
}

/// Whether a file present on both sides is copied.
fn compare(src: &Meta, dest: &Meta, how: Compare) -> Action {
    match how {
        Compare::Always => copy(src, "always"),
        _ if src.size != dest.size => copy(src, "size differs"),
        Compare::Size => Action::Skip("same size"),
        Compare::SizeMtime if src.mtime != dest.mtime => copy(src, "mtime differs"),
        Compare::SizeMtime => Action::Skip("same size and mtime"),
        Compare::Digest => Action::Check {
            size: src.size,
            mtime: src.mtime,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(entries: &[(&str, EntryKind, u64, u64)]) -> Tree {
        entries
            .iter()
            .map(|&(name, kind, size, mtime)| (name.to_string(), Meta { kind, size, mtime }))
            .collect()
    }

    use EntryKind::{Dir, File};

    #[test]
    fn each_source_entry_gets_one_step_and_deletes_come_last_deepest_first() {
        let source = tree(&[
            ("a", Dir, 0, 1),
            ("a/new.txt", File, 3, 5),
            ("a/same.txt", File, 4, 5),
            ("a/newer.txt", File, 4, 6),
            ("a/bigger.txt", File, 9, 5),
            ("empty", Dir, 0, 1),
            ("clash", File, 1, 1),
        ]);
        let dest = tree(&[
            ("a", Dir, 0, 9),
            ("a/same.txt", File, 4, 5),
            ("a/newer.txt", File, 4, 5),
            ("a/bigger.txt", File, 4, 5),
            ("clash", Dir, 0, 1),
            ("old", Dir, 0, 1),
            ("old/deep", Dir, 0, 1),
            ("old/deep/x", File, 1, 1),
            ("gone.txt", File, 1, 1),
        ]);
        let options = SyncOptions {
            delete: true,
            ..SyncOptions::default()
        };
        let steps = plan(&source, &dest, &options);
        let shown: Vec<(&str, String)> = steps
            .iter()
            .map(|s| (s.name.as_str(), format!("{:?}", s.action)))
            .collect();
        let names: Vec<&str> = shown.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "a",
                "a/bigger.txt",
                "a/new.txt",
                "a/newer.txt",
                "a/same.txt",
                "clash",
                "empty",
                "gone.txt",
                "old/deep/x",
                "old/deep",
                "old"
            ]
        );
        let action = |name: &str| &steps.iter().find(|s| s.name == name).unwrap().action;
        assert_eq!(action("a"), &Action::Skip("exists"));
        assert_eq!(
            action("a/new.txt"),
            &Action::Copy {
                size: 3,
                mtime: 5,
                reason: "new"
            }
        );
        assert_eq!(action("a/same.txt"), &Action::Skip("same size and mtime"));
        assert!(matches!(
            action("a/newer.txt"),
            Action::Copy {
                reason: "mtime differs",
                ..
            }
        ));
        assert!(matches!(
            action("a/bigger.txt"),
            Action::Copy {
                reason: "size differs",
                ..
            }
        ));
        assert!(matches!(action("clash"), Action::Conflict(_)));
        assert_eq!(action("empty"), &Action::Mkdir);
        assert_eq!(action("old/deep"), &Action::Delete(Dir));
        assert_eq!(action("gone.txt"), &Action::Delete(File));
    }

    #[test]
    fn what_counts_as_unchanged_follows_the_compare_option() {
        let source = tree(&[("f", File, 4, 6)]);
        let dest = tree(&[("f", File, 4, 5)]);
        let with = |compare| {
            let options = SyncOptions {
                compare,
                ..SyncOptions::default()
            };
            plan(&source, &dest, &options)[0].action.clone()
        };
        assert!(matches!(with(Compare::SizeMtime), Action::Copy { .. }));
        assert_eq!(with(Compare::Size), Action::Skip("same size"));
        assert_eq!(with(Compare::Digest), Action::Check { size: 4, mtime: 6 });
        assert!(matches!(
            with(Compare::Always),
            Action::Copy {
                reason: "always",
                ..
            }
        ));
        // no deletes unless asked for
        let dest = tree(&[("f", File, 4, 6), ("extra", File, 1, 1)]);
        assert_eq!(plan(&source, &dest, &SyncOptions::default()).len(), 1);
    }
}
