//! Line editing for the REPL on top of `rustyline`: Tab completion (command
//! words, script functions, remote names, local paths), usage and history
//! hints, continuation lines for unfinished Rhai code, and where the history
//! file lives.

use super::continuation::{self, Open};
use super::forms::WORDS;
use crate::protocol::is_reserved;
use crate::script::functions::{self, Argument};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::Highlighter;
use rustyline::hint::{Hint, Hinter, HistoryHinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The history file: `$XDG_STATE_HOME/ioe/history`, else
/// `~/.local/state/ioe/history`; `None` when neither variable is usable.
pub fn history_path() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let state = absolute("XDG_STATE_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".local").join("state")))?;
    Some(state.join("ioe").join("history"))
}

/// A remote file or folder offered by completion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteName {
    /// Full name relative to the server's root.
    pub name: String,
    /// Whether it is a folder (completed with a trailing `/`).
    pub is_dir: bool,
}

/// Lists a remote folder (`None`: the root) for completion; empty when there
/// is no open session or the listing fails.
pub type RemoteLister = Box<dyn Fn(Option<&str>) -> Vec<RemoteName>>;

/// The `rustyline` helper of the REPL.
pub struct ReplHelper {
    functions: Vec<String>,
    /// Completed after a `.`, with no `(`.
    properties: Vec<String>,
    lister: RemoteLister,
    /// Listings fetched since the last line ran, by folder.
    listings: RefCell<HashMap<Option<String>, Vec<RemoteName>>>,
    history_hints: HistoryHinter,
}

impl ReplHelper {
    /// A helper completing `functions`, `properties` (after a `.`) and
    /// remote names from `lister`.
    pub fn new(
        functions: Vec<String>,
        properties: Vec<String>,
        lister: RemoteLister,
    ) -> ReplHelper {
        ReplHelper {
            functions,
            properties,
            lister,
            listings: RefCell::new(HashMap::new()),
            history_hints: HistoryHinter::new(),
        }
    }

    /// Replaces the script function names offered (after a line defined new ones).
    pub fn set_functions(&mut self, functions: Vec<String>) {
        self.functions = functions;
    }

    /// Drops cached remote listings; called after every line, since a line
    /// may change the server's files or the current session.
    pub fn forget_listings(&self) {
        self.listings.borrow_mut().clear();
    }

    /// Where the completed text starts in `head` (the line up to the
    /// cursor), and what may replace it.
    fn candidates(&self, head: &str) -> (usize, Vec<Pair>) {
        let (start, target) = target(head);
        let typed = &head[start..];
        let pairs = match target {
            Target::Remote {
                dirs_only,
                quoted: true,
            } => remote_names(self, &unescape(typed), dirs_only, true),
            Target::Remote { dirs_only, quoted } => remote_names(self, typed, dirs_only, quoted),
            Target::Local { quoted: true } => local_paths(&unescape(typed), true),
            Target::Local { quoted } => local_paths(typed, quoted),
            Target::Word { line_start } => {
                let properties: &[String] = if head[..start].ends_with('.') {
                    &self.properties
                } else {
                    &[]
                };
                words(typed, line_start, &self.functions, properties)
            }
            Target::Nothing => Vec::new(),
        };
        (start, pairs)
    }

    fn remote(&self, dir: Option<&str>) -> Vec<RemoteName> {
        let key = dir.map(str::to_string);
        if let Some(names) = self.listings.borrow().get(&key) {
            return names.clone();
        }
        let names = (self.lister)(dir);
        self.listings.borrow_mut().insert(key, names.clone());
        names
    }
}

/// What the text before the cursor is completing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// A remote name; `quoted` when inside a Rhai string.
    Remote {
        dirs_only: bool,
        quoted: bool,
    },
    /// A local path.
    Local {
        quoted: bool,
    },
    /// A command word or function name; `line_start` when nothing precedes it.
    Word {
        line_start: bool,
    },
    Nothing,
}

/// Finds what to complete in `head` (the line up to the cursor) and where
/// the completed text starts.
fn target(head: &str) -> (usize, Target) {
    if let Some(found) = form_field(head) {
        return found;
    }
    let scan = continuation::scan(head);
    if let Some(quote) = scan.open_string {
        let start = quote + 1;
        let call = scan.stack.last().filter(|f| f.open == Open::Paren);
        let Some(call) = call else {
            return (start, Target::Nothing);
        };
        let before_call = &head[..call.at];
        let function = identifier_before(before_call);
        // `s.name(…)`: a method call, which prefers a remote declaration
        let method = before_call
            .trim_end()
            .strip_suffix(function)
            .is_some_and(|rest| rest.trim_end().ends_with('.'));
        // what the argument names, by its name in the declared calls
        let target = match functions::argument(function, call.commas, method) {
            Some(Argument::RemoteName) => Target::Remote {
                dirs_only: false,
                quoted: true,
            },
            Some(Argument::RemoteFolder) => Target::Remote {
                dirs_only: true,
                quoted: true,
            },
            Some(Argument::LocalPath) => Target::Local { quoted: true },
            None => Target::Nothing,
        };
        return (start, target);
    }
    let word = identifier_before(head);
    let start = head.len() - word.len();
    let line_start = head[..start].trim().is_empty();
    (start, Target::Word { line_start })
}

/// The command forms complete their name field: `READ,`, `STAT,`,
/// `HASH,` and `DELETE,` remote names, `LIST,`, `WALK,` and `MKDIR,`
/// remote folders, `WRITE,` local paths, `SETTIME,` the name after
/// its seconds, and `PUSH,` and `PULL,` a local or remote folder by field. The field starts after the comma and any spaces.
fn form_field(head: &str) -> Option<(usize, Target)> {
    let (word, mut field) = head.split_once(',')?;
    let mut start = word.len() + 1;
    let remote = |dirs_only| Target::Remote {
        dirs_only,
        quoted: false,
    };
    let target = match word.trim().to_ascii_uppercase().as_str() {
        "READ" | "STAT" | "HASH" | "DELETE" => remote(false),
        "LIST" | "WALK" | "MKDIR" => remote(true),
        "WRITE" => Target::Local { quoted: false },
        "SETTIME" => match field.split_once(',') {
            Some((seconds, name)) => {
                start += seconds.len() + 1;
                field = name;
                remote(false)
            }
            None => Target::Nothing,
        },
        // `PUSH,local,remote` and `PULL,remote,local`: the side of the
        // field the cursor is in
        word @ ("PUSH" | "PULL") => {
            let second = field.split_once(',').map(|(first, second)| {
                start += first.len() + 1;
                field = second;
            });
            match (word, second.is_some()) {
                ("PUSH", false) | ("PULL", true) => Target::Local { quoted: false },
                _ => remote(true),
            }
        }
        "CONNECT" | "FEATURES" => Target::Nothing,
        _ => return None,
    };
    let spaces = field.len() - field.trim_start().len();
    Some((start + spaces, target))
}

/// The identifier (letters, digits, `_`) that `text` ends with, if any.
fn identifier_before(text: &str) -> &str {
    let text = text.trim_end();
    let start = text
        .rfind(|c: char| !(c.is_alphanumeric() || c == '_'))
        .map_or(0, |i| i + 1);
    &text[start..]
}

/// Command words, functions and `properties` starting with `word`. Command
/// words are offered in capitals (their customary spelling) unless `word`
/// has lower case letters, where the script functions of the same names fit
/// better.
fn words(word: &str, line_start: bool, functions: &[String], properties: &[String]) -> Vec<Pair> {
    let mut pairs = Vec::new();
    if line_start {
        for (command, usage) in WORDS {
            let typed_upper = !word.chars().any(|c| c.is_lowercase());
            let matches = if command == "help" {
                command.starts_with(word)
            } else {
                typed_upper && command.starts_with(word)
            };
            if matches {
                let comma = if usage.starts_with(',') { "," } else { "" };
                pairs.push(Pair {
                    display: command.to_string(),
                    replacement: format!("{command}{comma}"),
                });
            }
        }
    }
    for function in functions {
        if function.starts_with(word) && !pairs.iter().any(|p| &p.display == function) {
            pairs.push(Pair {
                display: function.clone(),
                replacement: format!("{function}("),
            });
        }
    }
    for property in properties {
        if property.starts_with(word) {
            pairs.push(Pair {
                display: property.clone(),
                replacement: property.clone(),
            });
        }
    }
    pairs
}

/// Remote names starting with `prefix`, listed from the folder it is in.
fn remote_names(helper: &ReplHelper, prefix: &str, dirs_only: bool, quoted: bool) -> Vec<Pair> {
    let dir = prefix.rsplit_once('/').map(|(dir, _)| dir);
    let mut pairs: Vec<Pair> = helper
        .remote(dir)
        .into_iter()
        .filter(|n| n.name.starts_with(prefix) && (n.is_dir || !dirs_only))
        .map(|n| {
            let leaf = n.name.rsplit('/').next().unwrap_or(&n.name).to_string();
            if n.is_dir {
                Pair {
                    display: format!("{leaf}/"),
                    replacement: format!("{}/", escape(&n.name, quoted)),
                }
            } else {
                let close = if quoted { "\"" } else { "" };
                Pair {
                    display: leaf,
                    replacement: format!("{}{close}", escape(&n.name, quoted)),
                }
            }
        })
        .collect();
    pairs.sort_by(|a, b| a.replacement.cmp(&b.replacement));
    pairs
}

/// Local files and folders whose path starts with `prefix`. Hidden entries
/// are offered only when the prefix asks for them; `ioe`'s own temporary
/// files never are.
fn local_paths(prefix: &str, quoted: bool) -> Vec<Pair> {
    let (dir_part, leaf) = match prefix.rfind('/') {
        Some(i) => (&prefix[..=i], &prefix[i + 1..]),
        None => ("", prefix),
    };
    let dir = if dir_part.is_empty() {
        Path::new(".")
    } else {
        Path::new(dir_part)
    };
    let Ok(read_dir) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut pairs: Vec<Pair> = read_dir
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let name = entry.file_name().into_string().ok()?;
            let hidden = name.starts_with('.') && !leaf.starts_with('.');
            if !name.starts_with(leaf) || hidden || is_reserved(name.as_bytes()) {
                return None;
            }
            // follows symbolic links, so a link to a folder completes as one
            let is_dir = entry.path().is_dir();
            let close = if quoted && !is_dir { "\"" } else { "" };
            let slash = if is_dir { "/" } else { "" };
            Some(Pair {
                display: format!("{name}{slash}"),
                replacement: format!(
                    "{}{close}",
                    escape(&format!("{dir_part}{name}{slash}"), quoted)
                ),
            })
        })
        .collect();
    pairs.sort_by(|a, b| a.replacement.cmp(&b.replacement));
    pairs
}

/// What the typed contents of a Rhai `"…"` string stand for: `\"` is `"`
/// and `\\` is `\`.
fn unescape(typed: &str) -> String {
    let mut text = String::with_capacity(typed.len());
    let mut chars = typed.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, chars.peek()) {
            ('\\', Some(&next @ ('"' | '\\'))) => {
                text.push(next);
                chars.next();
            }
            _ => text.push(c),
        }
    }
    text
}

/// `name` as it must be written inside a Rhai `"…"` string when `quoted`.
fn escape(name: &str, quoted: bool) -> String {
    if quoted {
        super::escaped(name)
    } else {
        name.to_string()
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(&line[..pos]))
    }
}

/// A hint shown after the cursor: a command's usage (not insertable) or the
/// rest of a history entry (→ inserts it).
pub struct ReplHint {
    display: String,
    completion: Option<String>,
}

impl Hint for ReplHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        self.completion.as_deref()
    }
}

/// The usage of a command word typed alone in capitals: `READ` → `,name`.
/// (Once the comma is typed the user knows the form; a hint there would
/// also linger in the scrollback when Tab lists candidates.)
fn usage_hint(line: &str) -> Option<String> {
    let word = line.trim_start();
    if word.is_empty() || word.chars().any(|c| c.is_lowercase()) {
        return None;
    }
    let (_, usage) = WORDS.iter().find(|(w, _)| *w == word)?;
    (!usage.is_empty()).then(|| usage.to_string())
}

impl Hinter for ReplHelper {
    type Hint = ReplHint;

    fn hint(&self, line: &str, pos: usize, ctx: &Context<'_>) -> Option<ReplHint> {
        if pos < line.len() {
            return None;
        }
        if let Some(usage) = usage_hint(line) {
            return Some(ReplHint {
                display: usage,
                completion: None,
            });
        }
        let rest = self.history_hints.hint(line, pos, ctx)?;
        Some(ReplHint {
            display: rest.clone(),
            completion: Some(rest),
        })
    }
}

impl Highlighter for ReplHelper {
    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        // dim, so a hint never looks like typed text
        Cow::Owned(format!("\x1b[2m{hint}\x1b[0m"))
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        if continuation::needs_more(ctx.input()) {
            Ok(ValidationResult::Incomplete)
        } else {
            Ok(ValidationResult::Valid(None))
        }
    }
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn helper(names: &[(&str, bool)]) -> ReplHelper {
        let names: Vec<RemoteName> = names
            .iter()
            .map(|&(name, is_dir)| RemoteName {
                name: name.to_string(),
                is_dir,
            })
            .collect();
        ReplHelper::new(
            vec!["read".into(), "list".into(), "walk".into(), "exists".into()],
            vec!["addr".into(), "is_open".into()],
            Box::new(move |dir| {
                names
                    .iter()
                    .filter(|n| match dir {
                        None => !n.name.contains('/'),
                        Some(dir) => n
                            .name
                            .strip_prefix(dir)
                            .and_then(|rest| rest.strip_prefix('/'))
                            .is_some_and(|leaf| !leaf.contains('/')),
                    })
                    .cloned()
                    .collect()
            }),
        )
    }

    fn complete(helper: &ReplHelper, head: &str) -> (usize, Vec<String>) {
        let (start, pairs) = helper.candidates(head);
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    const TREE: &[(&str, bool)] = &[
        ("report.pdf", false),
        ("readme, first.txt", false),
        ("docs", true),
        ("docs/guide.md", false),
        ("docs/api", true),
    ];

    #[test]
    fn read_form_completes_remote_names_from_the_listing() {
        let h = helper(TREE);
        assert_eq!(
            complete(&h, "READ,re"),
            (5, vec!["readme, first.txt".into(), "report.pdf".into()])
        );
        assert_eq!(complete(&h, "read, rep"), (6, vec!["report.pdf".into()]));
        assert_eq!(complete(&h, "READ,do"), (5, vec!["docs/".into()]));
        assert_eq!(
            complete(&h, "READ,docs/"),
            (5, vec!["docs/api/".into(), "docs/guide.md".into()])
        );
        assert_eq!(complete(&h, "LIST,"), (5, vec!["docs/".into()]));
    }

    #[test]
    fn extension_forms_complete_their_remote_name() {
        let h = helper(TREE);
        for word in ["STAT", "hash", "DELETE"] {
            assert_eq!(
                complete(&h, &format!("{word},rep")),
                (word.len() + 1, vec!["report.pdf".into()]),
                "{word}"
            );
        }
        for word in ["WALK", "mkdir"] {
            assert_eq!(
                complete(&h, &format!("{word}, d")),
                (word.len() + 2, vec!["docs/".into()]),
                "{word}"
            );
        }
        assert_eq!(
            complete(&h, "SETTIME,1700000000,docs/g"),
            (19, vec!["docs/guide.md".into()])
        );
        assert_eq!(complete(&h, "SETTIME,17"), (8, vec![]));
        assert_eq!(complete(&h, "FEATURES,"), (9, vec![]));
    }

    #[test]
    fn push_and_pull_complete_a_local_or_a_remote_folder_by_field() {
        let dir = tempfile::TempDir::new().unwrap();
        fs::create_dir(dir.path().join("site")).unwrap();
        let base = format!("{}/", dir.path().display());
        let h = helper(TREE);
        let (start, got) = complete(&h, &format!("PUSH,{base}si"));
        assert_eq!((start, got), (5, vec![format!("{base}site/")]));
        let head = format!("PUSH,{base}site, d");
        assert_eq!(complete(&h, &head), (head.len() - 1, vec!["docs/".into()]));
        assert_eq!(complete(&h, "pull,do"), (5, vec!["docs/".into()]));
        let head = format!("PULL,docs,{base}si");
        let (start, got) = complete(&h, &head);
        assert_eq!(
            (start, got),
            (head.len() - base.len() - 2, vec![format!("{base}site/")])
        );
        // the script calls complete the same sides
        assert_eq!(
            complete(&h, "push(\"x\", \"do").1,
            vec!["docs/".to_string()]
        );
        assert_eq!(complete(&h, "s.pull(\"do").1, vec!["docs/".to_string()]);
    }

    #[test]
    fn read_call_completes_remote_names_and_closes_the_string() {
        let h = helper(TREE);
        assert_eq!(complete(&h, "read(\"rep"), (6, vec!["report.pdf\"".into()]));
        assert_eq!(
            complete(&h, "let n = s.read(\"docs/g"),
            (16, vec!["docs/guide.md\"".into()])
        );
        assert_eq!(
            complete(&h, "write(\"a.txt\", \"do"),
            (16, vec!["docs/".into()])
        );
        // a string that is not a remote-name argument gets nothing remote
        assert_eq!(complete(&h, "print(\"rep"), (7, vec![]));
    }

    #[test]
    fn listings_are_cached_until_forgotten() {
        let calls = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = calls.clone();
        let h = ReplHelper::new(
            vec![],
            vec![],
            Box::new(move |_| {
                counter.set(counter.get() + 1);
                vec![]
            }),
        );
        complete(&h, "READ,a");
        complete(&h, "READ,b");
        assert_eq!(calls.get(), 1);
        h.forget_listings();
        complete(&h, "READ,c");
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn write_completes_local_paths() {
        let dir = tempfile::TempDir::new().unwrap();
        fs::write(dir.path().join("upload me.bin"), b"x").unwrap();
        fs::write(dir.path().join("unrelated"), b"x").unwrap();
        fs::write(dir.path().join(".hidden"), b"x").unwrap();
        fs::write(dir.path().join(".ioe-tmp-123"), b"x").unwrap();
        fs::create_dir(dir.path().join("up")).unwrap();
        let base = format!("{}/", dir.path().display());
        let h = helper(&[]);

        let (start, got) = complete(&h, &format!("WRITE,{base}up"));
        assert_eq!(start, 6);
        assert_eq!(
            got,
            vec![format!("{base}up/"), format!("{base}upload me.bin")]
        );

        let (_, got) = complete(&h, &format!("write(\"{base}upl"));
        assert_eq!(got, vec![format!("{base}upload me.bin\"")]);

        let (_, got) = complete(&h, &format!("WRITE,{base}"));
        assert_eq!(got.len(), 3, "no hidden or temporary files: {got:?}");
        let (_, got) = complete(&h, &format!("WRITE,{base}."));
        assert_eq!(got, vec![format!("{base}.hidden")]);
    }

    #[test]
    fn arguments_complete_by_their_declared_names() {
        let dir = tempfile::TempDir::new().unwrap();
        fs::write(dir.path().join("data.csv"), b"x").unwrap();
        let base = format!("{}/", dir.path().display());
        let h = helper(TREE);
        // local helpers' `path`, as declared in src/script/functions.rs
        for call in ["file_hash", "file_info", "read_text", "remove"] {
            let (_, got) = complete(&h, &format!("{call}(\"{base}da"));
            assert_eq!(got, vec![format!("{base}data.csv\"")], "{call}");
        }
        // not a path: the algorithm, a text helper's argument
        assert_eq!(
            complete(&h, "file_hash(\"a.txt\", \"bl").1,
            Vec::<String>::new()
        );
        assert_eq!(complete(&h, "basename(\"rep").1, Vec::<String>::new());
        // remote ones as before
        assert_eq!(complete(&h, "s.list(\"do").1, vec!["docs/".to_string()]);
        // the extensions' verbs: remote names, folders for walk and mkdir
        for call in ["stat", "hash", "delete", "set_mtime", "s.exists", "s.stat"] {
            let (_, got) = complete(&h, &format!("{call}(\"rep"));
            assert_eq!(got, vec!["report.pdf\"".to_string()], "{call}");
        }
        for call in ["s.walk", "s.mkdir"] {
            let (_, got) = complete(&h, &format!("{call}(\"d"));
            assert_eq!(got, vec!["docs/".to_string()], "{call}");
        }
        assert_eq!(
            complete(&h, "hash(\"report.pdf\", \"bl").1,
            Vec::<String>::new()
        );
    }

    #[test]
    fn names_inside_a_string_are_escaped_as_rhai_reads_them() {
        let h = helper(&[("say \"hi\".txt", false), ("back\\slash.txt", false)]);
        let quoted = "say \\\"hi\\\".txt\"";
        assert_eq!(complete(&h, "read(\"say"), (6, vec![quoted.into()]));
        // the typed text is read unescaped, so completion goes on after a quote
        assert_eq!(complete(&h, "read(\"say \\\"h"), (6, vec![quoted.into()]));
        assert_eq!(
            complete(&h, "read(\"back"),
            (6, vec!["back\\\\slash.txt\"".into()])
        );
        // the command form takes names as they are
        assert_eq!(complete(&h, "READ,say"), (5, vec!["say \"hi\".txt".into()]));

        let dir = tempfile::TempDir::new().unwrap();
        fs::write(dir.path().join("a\"b.txt"), b"x").unwrap();
        let base = format!("{}/", dir.path().display());
        let (_, got) = complete(&h, &format!("write(\"{base}a"));
        assert_eq!(got, vec![format!("{base}a\\\"b.txt\"")]);
    }

    #[test]
    fn words_complete_commands_at_line_start_and_functions_anywhere() {
        let h = helper(&[]);
        assert_eq!(complete(&h, "RE"), (0, vec!["READ,".into()]));
        assert_eq!(complete(&h, "re"), (0, vec!["read(".into()]));
        assert_eq!(complete(&h, "  L"), (2, vec!["LIST".into()]));
        assert_eq!(complete(&h, "he"), (0, vec!["help".into()]));
        assert_eq!(complete(&h, "let x = wa"), (8, vec!["walk(".into()]));
        assert_eq!(complete(&h, "s.li"), (2, vec!["list(".into()]));
        // properties take no parentheses, and only follow a `.`
        assert_eq!(complete(&h, "s.is_"), (2, vec!["is_open".into()]));
        assert_eq!(complete(&h, "print(s.a"), (8, vec!["addr".into()]));
        assert_eq!(complete(&h, "is_"), (0, vec![]));
        assert_eq!(complete(&h, "let x = RE"), (8, vec![]));
    }

    #[test]
    fn usage_hints_follow_command_words_typed_in_capitals() {
        assert_eq!(usage_hint("READ").as_deref(), Some(",name"));
        assert_eq!(usage_hint("READ,"), None);
        assert_eq!(
            usage_hint("CONNECT").as_deref(),
            Some(",[tls://]host[,port]")
        );
        assert_eq!(usage_hint("read"), None);
        assert_eq!(usage_hint("READ,x"), None);
        assert_eq!(usage_hint("BYE"), None);
        assert_eq!(usage_hint("SETTIME").as_deref(), Some(",seconds,name"));
        assert_eq!(usage_hint("WALK").as_deref(), Some("[,folder]"));
    }
}
