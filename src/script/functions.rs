//! The one declaration of the script API: every function's name, the ways
//! to call it and a one-line doc, and every property. Registration is
//! checked against it (a function registered but not declared, or declared
//! but not registered, fails every debug build's `Host::new` and a unit
//! test); `usage` (how a misused function is called), the REPL's `help`
//! and Tab completion, and the function list in `docs/scripting.md` are
//! made from it.

/// Which side a function acts on, the first thing a reader wants to know:
/// remote calls are a session's verbs, local ones `file_*` and the file
/// system's verbs. Also the groups of `help` and of the docs' list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Opening sessions and serving a folder.
    Connect,
    /// A session's verbs: `s.verb(…)` on a session, or `verb(…)` on the
    /// current session.
    Remote,
    /// A session's verbs whose global name is a local helper's (`exists`,
    /// `mkdir`): `s.verb(…)` only, and declared so (`s.exists(name)`).
    SessionOnly,
    /// Local files and folders.
    Local,
    /// Neither side: time, sizes, path text, names, the script itself.
    Neither,
}

impl Side {
    /// Every side, in the order of `help` and the docs.
    pub const ALL: [Side; 5] = [
        Side::Connect,
        Side::Remote,
        Side::SessionOnly,
        Side::Local,
        Side::Neither,
    ];

    /// Whether functions of this side act on a server.
    fn is_remote(self) -> bool {
        matches!(self, Side::Remote | Side::SessionOnly)
    }

    /// The heading of this side's group.
    pub fn heading(self) -> &'static str {
        match self {
            Side::Connect => "Connecting",
            Side::Remote => {
                "Remote: a session's verbs, `s.verb(…)` on a session or `verb(…)` on the current one"
            }
            Side::SessionOnly => {
                "Remote, on a session only: `s.verb(…)`, the global `verb(…)` being a local helper"
            }
            Side::Local => "Local: files and folders on this machine",
            Side::Neither => "Neither side: time, sizes, path text, names, the script",
        }
    }
}

/// One function of the script API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FunctionDoc {
    /// The name scripts call it by.
    pub name: &'static str,
    /// The ways to call it, as a script writes them: `read(remote, local)`,
    /// `s.exists(name)` for [`Side::SessionOnly`]; `[…]` marks arguments
    /// that may be left out. Argument names say what Tab completes there:
    /// see [`argument`]. A name is declared at most twice: once as
    /// [`Side::SessionOnly`] and once on another side.
    pub calls: &'static [&'static str],
    /// Which side it acts on.
    pub side: Side,
    /// What it does, in one line.
    pub doc: &'static str,
    /// Said after the calls when one is misused (empty: nothing).
    pub note: &'static str,
}

/// A property of a value the API returns (`s.addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PropertyDoc {
    /// The property's name.
    pub name: &'static str,
    /// How it is read, e.g. `s.addr`.
    pub on: &'static str,
    /// What it is, in one line.
    pub doc: &'static str,
}

const fn f(
    name: &'static str,
    calls: &'static [&'static str],
    side: Side,
    doc: &'static str,
) -> FunctionDoc {
    FunctionDoc {
        name,
        calls,
        side,
        doc,
        note: "",
    }
}

/// Every function of the script API, in the order of `help` and the docs
/// within each side.
pub const API: &[FunctionDoc] = &[
    FunctionDoc {
        note: "port is a number (`parse_int(ARGS[1])` makes one of an argument)",
        ..f(
            "connect",
            &[
                "connect(host, port)",
                "connect(\"host:port\")",
                "connect(\"name\")",
                "connect(\"tls://host:port\", #{fingerprint: \"SHA256:…\", ca_file: \"ca.pem\"})",
                "connect(server)",
            ],
            Side::Connect,
            "opens a session (port 7070 if the text names none; `tls://host:port` or `tls: true` for TLS, trusting an authority, the known-hosts file or a pinned fingerprint; a name from the servers file; `token:`, `token_file:` or the IOE_TOKEN environment variable authenticates) and makes it the current one",
        )
    },
    f(
        "serve",
        &["serve(dir)"],
        Side::Connect,
        "serves a local folder on 127.0.0.1 until the script ends; returns a Server",
    ),
    f(
        "list",
        &["list()", "list(dir)"],
        Side::Remote,
        "the entries of the root or of a folder, each `#{name, kind, size, mtime}`",
    ),
    FunctionDoc {
        note: "options is a map such as #{mtime: true, verify: false, resume: false}",
        ..f(
            "read",
            &[
                "read(remote)",
                "read(remote, local)",
                "read(remote, options)",
                "read(remote, local, options)",
            ],
            Side::Remote,
            "downloads a file (to the same path here by default); returns the bytes received",
        )
    },
    FunctionDoc {
        note: "options is a map such as #{mtime: true, verify: false}",
        ..f(
            "write",
            &[
                "write(local)",
                "write(local, remote)",
                "write(local, options)",
                "write(local, remote, options)",
            ],
            Side::Remote,
            "uploads a file (under the same name by default); returns the bytes sent",
        )
    },
    FunctionDoc {
        note: "options is a map such as #{delete: true, max_delete: 100, exclude: [\"*.tmp\"], \
               dry_run: true}: see docs/scripting.md, Whole trees",
        ..f(
            "push",
            &[
                "push(local_dir, remote_dir)",
                "push(local_dir, remote_dir, options)",
            ],
            Side::Remote,
            "makes a remote folder hold what a local folder holds (unchanged files skipped); \
             returns a result map",
        )
    },
    FunctionDoc {
        note: "options is a map such as #{delete: true, max_delete: 100, exclude: [\"*.tmp\"], \
               dry_run: true}: see docs/scripting.md, Whole trees",
        ..f(
            "pull",
            &[
                "pull(remote_dir, local_dir)",
                "pull(remote_dir, local_dir, options)",
            ],
            Side::Remote,
            "makes a local folder hold what a remote folder holds (unchanged files skipped); \
             returns a result map",
        )
    },
    f(
        "features",
        &["features()"],
        Side::Remote,
        "what the server does beyond IOE/1: `#{stat, walk, hash, …, read_only, max_size}`",
    ),
    f(
        "stat",
        &["stat(name)"],
        Side::Remote,
        "one remote file's or folder's entry, `#{name, kind, size, mtime}`",
    ),
    FunctionDoc {
        note: "algorithm is \"blake3\" or \"sha256\"",
        ..f(
            "hash",
            &["hash(name)", "hash(name, algorithm)"],
            Side::Remote,
            "a remote file's digest in lower-case hex, blake3 when the server has it, else sha256",
        )
    },
    f(
        "delete",
        &["delete(name)"],
        Side::Remote,
        "removes a remote file or empty folder",
    ),
    FunctionDoc {
        note: "seconds is an integer, 0 or more",
        ..f(
            "set_mtime",
            &["set_mtime(name, seconds)"],
            Side::Remote,
            "sets a remote file's or folder's modification time (seconds since 1970)",
        )
    },
    f("bye", &["bye()"], Side::Remote, "ends the session politely"),
    f(
        "exists",
        &["s.exists(name)"],
        Side::SessionOnly,
        "whether a remote file or folder exists",
    ),
    f(
        "walk",
        &["s.walk()", "s.walk(dir)"],
        Side::SessionOnly,
        "every remote file and folder under the root or a folder, depth first, as entry maps",
    ),
    f(
        "mkdir",
        &["s.mkdir(name)"],
        Side::SessionOnly,
        "creates a remote folder and its missing parents",
    ),
    f(
        "walk",
        &["walk(dir)"],
        Side::Local,
        "every file under a folder, at any depth, sorted",
    ),
    f(
        "exists",
        &["exists(path)"],
        Side::Local,
        "whether a file or folder exists",
    ),
    f(
        "file_size",
        &["file_size(path)"],
        Side::Local,
        "a file's size in bytes",
    ),
    f(
        "file_info",
        &["file_info(path)"],
        Side::Local,
        "a file's or folder's `#{size, mtime, kind}`, as in a listing",
    ),
    FunctionDoc {
        note: "algorithm is \"blake3\" (the default) or \"sha256\"",
        ..f(
            "file_hash",
            &["file_hash(path)", "file_hash(path, algorithm)"],
            Side::Local,
            "a file's digest in lower-case hex, blake3 by default, as the server computes it",
        )
    },
    f(
        "mkdir",
        &["mkdir(path)"],
        Side::Local,
        "creates a folder and its missing parents",
    ),
    f(
        "remove",
        &["remove(path)"],
        Side::Local,
        "removes a file or an empty folder",
    ),
    f(
        "read_text",
        &["read_text(path)"],
        Side::Local,
        "a UTF-8 text file's content (at most 64 MiB)",
    ),
    f(
        "write_text",
        &["write_text(path, text)"],
        Side::Local,
        "writes a text file, making missing folders; returns the bytes written",
    ),
    f(
        "temp_dir",
        &["temp_dir()"],
        Side::Local,
        "a new empty folder, removed with its contents when the script ends",
    ),
    f(
        "now",
        &["now()"],
        Side::Neither,
        "the time, in whole seconds since 1970-01-01 UTC",
    ),
    FunctionDoc {
        note: "seconds is an integer, zone is \"utc\", \"local\" or a name such as \"Europe/Paris\"",
        ..f(
            "format_time",
            &[
                "format_time(seconds)",
                "format_time(seconds, pattern)",
                "format_time(seconds, pattern, zone)",
            ],
            Side::Neither,
            "seconds since 1970 as text: ISO 8601 (pattern `\"\"`) or a strftime pattern, in UTC by default",
        )
    },
    FunctionDoc {
        note: "zone is \"utc\", \"local\" or a name such as \"Europe/Paris\"",
        ..f(
            "parse_time",
            &[
                "parse_time(text)",
                "parse_time(text, pattern)",
                "parse_time(text, pattern, zone)",
            ],
            Side::Neither,
            "text (ISO 8601, or a strftime pattern) as seconds since 1970; UTC unless it has an offset",
        )
    },
    f(
        "human_size",
        &["human_size(bytes)"],
        Side::Neither,
        "a byte count for people: `1536` gives `\"1.5 KiB\"`",
    ),
    f(
        "parse_size",
        &["parse_size(text)"],
        Side::Neither,
        "a size such as `\"10M\"` or `\"1.5 GiB\"` in bytes (units are powers of 1024)",
    ),
    f(
        "basename",
        &["basename(path)"],
        Side::Neither,
        "the last part of a path or remote name: `\"a/b.txt\"` gives `\"b.txt\"`",
    ),
    f(
        "dirname",
        &["dirname(path)"],
        Side::Neither,
        "all but the last part: `\"a/b.txt\"` gives `\"a\"`, `\"b.txt\"` gives `\".\"`",
    ),
    f(
        "join_path",
        &[
            "join_path(a, b)",
            "join_path(a, b, c)",
            "join_path(a, b, c, d)",
            "join_path(parts)",
        ],
        Side::Neither,
        "joins parts with one `/` between them; empty parts are skipped",
    ),
    f(
        "glob_match",
        &["glob_match(pattern, name)"],
        Side::Neither,
        "whether a name matches a glob: `*` and `?` within one part, `**` across parts, `[abc]`, `{a,b}`",
    ),
    f(
        "env",
        &["env(name)"],
        Side::Neither,
        "an environment variable, or `()` when it is unset",
    ),
    FunctionDoc {
        note: "seconds is a number such as 2 or 0.5",
        ..f(
            "sleep",
            &["sleep(seconds)"],
            Side::Neither,
            "waits, e.g. before retrying; Ctrl-C ends the wait and the script",
        )
    },
    f(
        "exit",
        &["exit()", "exit(n)", "exit(\"text\")"],
        Side::Neither,
        "ends the script with status 0, `n`, or 1 after printing the text",
    ),
];

/// Every property of the values the API returns.
pub const PROPERTIES: &[PropertyDoc] = &[
    PropertyDoc {
        name: "addr",
        on: "s.addr",
        doc: "a session's `host:port`",
    },
    PropertyDoc {
        name: "is_open",
        on: "s.is_open",
        doc: "whether a session can still send requests",
    },
    PropertyDoc {
        name: "identity",
        on: "s.identity",
        doc: "the label of the token the server accepted (`()` without a token, or when the server takes none)",
    },
    PropertyDoc {
        name: "addr",
        on: "server.addr",
        doc: "a `serve` server's `host:port`",
    },
    PropertyDoc {
        name: "root",
        on: "server.root",
        doc: "the folder a `serve` server serves",
    },
];

/// The (first) declaration of the function `name`.
pub fn find(name: &str) -> Option<&'static FunctionDoc> {
    API.iter().find(|d| d.name == name)
}

/// Every declared function name, sorted, without repeats.
pub fn names() -> Vec<&'static str> {
    let mut names: Vec<&str> = API.iter().map(|d| d.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// Every declared property name, sorted, without repeats.
pub fn property_names() -> Vec<&'static str> {
    let mut names: Vec<&str> = PROPERTIES.iter().map(|p| p.name).collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// How `name` is called, for a report of a call that does not fit:
/// `read(remote) or read(remote, local), on a session or on the current one`.
pub fn usage(name: &str) -> Option<String> {
    usage_in(API, name)
}

fn usage_in(api: &[FunctionDoc], name: &str) -> Option<String> {
    let ways: Vec<String> = api
        .iter()
        .filter(|d| d.name == name)
        .map(|doc| {
            let mut text = match doc.calls {
                [] => String::new(),
                [one] => one.to_string(),
                [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
            };
            match doc.side {
                Side::Remote => text.push_str(", on a session or on the current one"),
                Side::SessionOnly => text.push_str(" on a session"),
                _ => {}
            }
            if !doc.note.is_empty() {
                text.push_str("; ");
                text.push_str(doc.note);
            }
            text
        })
        .collect();
    (!ways.is_empty()).then(|| ways.join("; or "))
}

/// What an argument of a function names, for Tab completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Argument {
    /// A remote file or folder (`remote`, `name`).
    RemoteName,
    /// A remote folder (`dir` of a remote function).
    RemoteFolder,
    /// A local path (`local`; `path` and `dir` of a local function).
    LocalPath,
}

/// What the argument at `index` (0 for the first) of a call of `name`
/// names, by the argument's name in the declared calls; `method` when the
/// call is `s.name(…)`, which prefers a remote declaration.
pub fn argument(name: &str, index: usize, method: bool) -> Option<Argument> {
    argument_in(API, name, index, method)
}

fn argument_in(api: &[FunctionDoc], name: &str, index: usize, method: bool) -> Option<Argument> {
    let mut docs = api.iter().filter(|d| d.name == name);
    let doc = if method {
        docs.clone()
            .find(|d| d.side.is_remote())
            .or_else(|| docs.next())?
    } else {
        docs.find(|d| d.side != Side::SessionOnly)?
    };
    let param = doc
        .calls
        .iter()
        .find_map(|call| parameters(call).into_iter().nth(index))?;
    match (doc.side, param) {
        (side, "remote" | "name") if side.is_remote() => Some(Argument::RemoteName),
        (side, "dir" | "remote_dir") if side.is_remote() => Some(Argument::RemoteFolder),
        (side, "local" | "local_dir") if side.is_remote() => Some(Argument::LocalPath),
        (Side::Local, "path" | "dir") => Some(Argument::LocalPath),
        _ => None,
    }
}

/// The argument names of a call as declared: `read(remote[, local])` →
/// `["remote", "local"]`.
fn parameters(call: &str) -> Vec<&str> {
    let inside = call
        .split_once('(')
        .and_then(|(_, rest)| rest.rsplit_once(')'))
        .map_or("", |(inside, _)| inside);
    inside
        .split(',')
        .map(|p| p.trim_matches(|c: char| c == '[' || c == ']' || c.is_whitespace()))
        .filter(|p| !p.is_empty())
        .collect()
}

/// The REPL's `help` list of functions and properties: one line per
/// function, grouped by side.
pub fn help_text() -> String {
    let mut text = String::new();
    for side in Side::ALL {
        if !API.iter().any(|d| d.side == side) {
            continue;
        }
        text.push_str(side.heading());
        text.push_str(":\n");
        for doc in API.iter().filter(|d| d.side == side) {
            text.push_str(&format!("  {}\n      {}\n", doc.calls.join("  "), doc.doc));
        }
    }
    text.push_str("Properties:\n");
    for p in PROPERTIES {
        text.push_str(&format!("  {:<13} {}\n", p.on, p.doc));
    }
    text
}

/// The function list of `docs/scripting.md`: one table per side.
#[cfg(test)]
pub(crate) fn markdown() -> String {
    let mut text = String::new();
    for side in Side::ALL {
        if !API.iter().any(|d| d.side == side) {
            continue;
        }
        text.push_str(&format!("\n#### {}\n\n", side.heading()));
        text.push_str("| call | does |\n| --- | --- |\n");
        for doc in API.iter().filter(|d| d.side == side) {
            let calls: Vec<String> = doc.calls.iter().map(|c| format!("`{c}`")).collect();
            text.push_str(&format!("| {} | {} |\n", calls.join(", "), doc.doc));
        }
    }
    text.push_str("\n#### Properties\n\n| property | is |\n| --- | --- |\n");
    for p in PROPERTIES {
        text.push_str(&format!("| `{}` | {} |\n", p.on, p.doc));
    }
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The markers around the generated list in `docs/scripting.md`.
    const BEGIN: &str = "<!-- api:begin";
    const END: &str = "<!-- api:end -->";

    #[test]
    fn every_function_is_declared_once_per_call_style_with_calls_of_its_name() {
        for name in names() {
            let sides: Vec<Side> = API
                .iter()
                .filter(|d| d.name == name)
                .map(|d| d.side)
                .collect();
            let ok = match sides[..] {
                [_] => true,
                [a, b] => (a == Side::SessionOnly) != (b == Side::SessionOnly),
                _ => false,
            };
            assert!(ok, "`{name}` is declared for {sides:?}");
        }
        for doc in API {
            assert!(!doc.calls.is_empty(), "{}", doc.name);
            let prefix = match doc.side {
                Side::SessionOnly => format!("s.{}(", doc.name),
                _ => format!("{}(", doc.name),
            };
            for call in doc.calls {
                assert!(call.starts_with(&prefix), "{call}");
                assert!(call.ends_with(')'), "{call}");
            }
            // a `|` would break the docs' table
            assert!(
                !doc.doc.contains('|') && !doc.doc.is_empty(),
                "{}",
                doc.name
            );
        }
    }

    #[test]
    fn usage_lists_the_calls_then_the_side_and_the_note() {
        assert_eq!(
            usage("read").as_deref(),
            Some(
                "read(remote), read(remote, local), read(remote, options) or \
                 read(remote, local, options), on a session or on the current one; \
                 options is a map such as #{mtime: true, verify: false, resume: false}"
            )
        );
        assert_eq!(
            usage("connect").as_deref(),
            Some(
                "connect(host, port), connect(\"host:port\"), connect(\"name\"), \
                 connect(\"tls://host:port\", #{fingerprint: \"SHA256:…\", ca_file: \"ca.pem\"}) or \
                 connect(server); port is a number (`parse_int(ARGS[1])` makes one of an argument)"
            )
        );
        assert_eq!(usage("now").as_deref(), Some("now()"));
        assert_eq!(usage("frobnicate"), None);
    }

    #[test]
    fn arguments_are_completed_by_their_declared_names() {
        for method in [false, true] {
            assert_eq!(argument("read", 0, method), Some(Argument::RemoteName));
            assert_eq!(argument("read", 1, method), Some(Argument::LocalPath));
            assert_eq!(argument("write", 0, method), Some(Argument::LocalPath));
            assert_eq!(argument("write", 1, method), Some(Argument::RemoteName));
            assert_eq!(argument("list", 0, method), Some(Argument::RemoteFolder));
            assert_eq!(argument("read", 2, method), None);
            assert_eq!(argument("push", 0, method), Some(Argument::LocalPath));
            assert_eq!(argument("push", 1, method), Some(Argument::RemoteFolder));
            assert_eq!(argument("pull", 0, method), Some(Argument::RemoteFolder));
            assert_eq!(argument("pull", 1, method), Some(Argument::LocalPath));
        }
        assert_eq!(argument("walk", 0, false), Some(Argument::LocalPath));
        assert_eq!(argument("file_hash", 0, false), Some(Argument::LocalPath));
        assert_eq!(argument("file_hash", 1, false), None);
        assert_eq!(argument("write_text", 1, false), None);
        assert_eq!(argument("basename", 0, false), None);
        assert_eq!(parameters("f(a[, b][, c])"), ["a", "b", "c"]);
        assert_eq!(parameters("f()"), Vec::<&str>::new());
    }

    /// A local helper and a session-only verb of the same name.
    const CLASH: &[FunctionDoc] = &[
        f("exists", &["exists(path)"], Side::Local, "local"),
        f("exists", &["s.exists(name)"], Side::SessionOnly, "remote"),
        f("list", &["list(dir)"], Side::Remote, "remote"),
    ];

    #[test]
    fn a_name_that_is_local_and_a_session_verb_is_told_apart_by_the_call() {
        assert_eq!(
            usage_in(CLASH, "exists").as_deref(),
            Some("exists(path); or s.exists(name) on a session")
        );
        assert_eq!(
            argument_in(CLASH, "exists", 0, false),
            Some(Argument::LocalPath)
        );
        assert_eq!(
            argument_in(CLASH, "exists", 0, true),
            Some(Argument::RemoteName)
        );
        // a method call of a function with no remote declaration: as declared
        assert_eq!(
            argument_in(CLASH, "list", 0, true),
            Some(Argument::RemoteFolder)
        );
        assert_eq!(argument_in(CLASH, "nothing", 0, true), None);
    }

    /// Beyond the generated list, `docs/scripting.md` details every
    /// function: each appears as `` `name(`` in the hand-written text.
    #[test]
    fn the_docs_detail_every_function() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scripting.md");
        let doc = std::fs::read_to_string(path).expect("read docs/scripting.md");
        let (start, end) = (doc.find(BEGIN).unwrap(), doc.find(END).unwrap());
        let prose = format!("{}{}", &doc[..start], &doc[end..]);
        let missing: Vec<&str> = API
            .iter()
            .filter(|d| {
                let call = d.calls[0];
                let head = &call[..call.find('(').unwrap_or(call.len()) + 1];
                !prose.contains(&format!("`{head}"))
            })
            .map(|d| d.name)
            .collect();
        assert!(
            missing.is_empty(),
            "docs/scripting.md says nothing of {missing:?} outside the generated list"
        );
    }

    /// `docs/scripting.md`'s list is [`markdown`]; `IOE_BLESS=1` rewrites it.
    #[test]
    fn the_docs_list_every_function_as_declared() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/scripting.md");
        let doc = std::fs::read_to_string(path).expect("read docs/scripting.md");
        let start = doc
            .find(BEGIN)
            .expect("docs/scripting.md has `<!-- api:begin`");
        let start = start + doc[start..].find('\n').expect("a line after the marker") + 1;
        let end = doc
            .find(END)
            .expect("docs/scripting.md has `<!-- api:end -->`");
        let generated = markdown();
        if doc[start..end] == generated {
            return;
        }
        if std::env::var_os("IOE_BLESS").is_some_and(|v| v == "1") {
            let updated = format!("{}{generated}{}", &doc[..start], &doc[end..]);
            std::fs::write(path, updated).expect("rewrite docs/scripting.md");
            return;
        }
        panic!(
            "docs/scripting.md's function list differs from src/script/functions.rs; \
             rewrite it with `IOE_BLESS=1 cargo test --lib the_docs_list_every_function`"
        );
    }
}
