//! The original client's command forms — `CONNECT,host[,port]`, `LIST`,
//! `LIST,dir`, `READ,name`, `WRITE,name`, `BYE`, `QUIT` — the forms of the
//! IOE/1 extensions in the same style — `STAT,name`, `HASH,name`,
//! `WALK[,dir]`, `MKDIR,name`, `DELETE,name`, `SETTIME,seconds,name`,
//! `FEATURES` — whole trees, `PUSH,local_dir,remote_dir` and
//! `PULL,remote_dir,local_dir` — plus `help`, told apart from Rhai code. A line is a command form when its first word (up to
//! the first comma) is one of these words in any case and is either alone or
//! followed by a comma; anything else is Rhai (`list()` and `read("a")` are
//! script calls).

use crate::addr::{AddrError, TLS_SCHEME, connect_addr, split_host_port, split_scheme};
use crate::script::remote_folder;
use crate::servers::could_be_name;
use std::fmt;

/// One parsed command form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Form {
    /// `CONNECT,host,port`, `CONNECT,host:port`, `CONNECT,host` (port
    /// 7070), each also with `tls://` before the host, or `CONNECT,name`
    /// (a server of the servers file); holds what `connect()` takes:
    /// `[tls://]host:port`, or the text typed when it could be a name.
    Connect(String),
    /// `LIST` (the root, also `LIST,.`) or `LIST,dir` (also `LIST,dir/`).
    List(Option<String>),
    /// `READ,name`: download `name` into the current folder.
    Read(String),
    /// `WRITE,name`: upload the local file `name` under the same name.
    Write(String),
    /// `STAT,name`: one remote entry.
    Stat(String),
    /// `HASH,name`: a remote file's digest with the default algorithm.
    Hash(String),
    /// `WALK` (the root) or `WALK,dir`: every entry under it.
    Walk(Option<String>),
    /// `MKDIR,name`: make a remote folder and its parents.
    Mkdir(String),
    /// `DELETE,name`: remove a remote file or empty folder.
    Delete(String),
    /// `SETTIME,seconds,name`: set a remote modification time.
    SetTime(u64, String),
    /// `FEATURES`: what the server does beyond IOE/1.
    Features,
    /// `PUSH,local_dir,remote_dir`: make the remote folder hold what the
    /// local one holds.
    Push {
        /// The local folder, the source.
        local: String,
        /// The remote folder, the destination.
        remote: String,
    },
    /// `PULL,remote_dir,local_dir`: make the local folder hold what the
    /// remote one holds.
    Pull {
        /// The remote folder, the source.
        remote: String,
        /// The local folder, the destination.
        local: String,
    },
    /// `BYE`: close the session, stay at the prompt.
    Bye,
    /// `QUIT` (or `EXIT`): close the session and leave.
    Quit,
    /// `help`: list the commands and script functions.
    Help,
}

/// The command words, as shown by `help` and offered by Tab completion,
/// each with the text that follows it in its usage line.
pub const WORDS: [(&str, &str); 16] = [
    ("CONNECT", ",[tls://]host[,port]"),
    ("LIST", "[,folder]"),
    ("READ", ",name"),
    ("WRITE", ",local-file"),
    ("STAT", ",name"),
    ("HASH", ",name"),
    ("WALK", "[,folder]"),
    ("MKDIR", ",name"),
    ("DELETE", ",name"),
    ("SETTIME", ",seconds,name"),
    ("FEATURES", ""),
    ("PUSH", ",local-folder,remote-folder"),
    ("PULL", ",remote-folder,local-folder"),
    ("BYE", ""),
    ("QUIT", ""),
    ("help", ""),
];

/// A command form with missing or malformed fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Parses `line` as a command form. `None` means the line is not one (so it
/// is Rhai code); `Some(Err)` is a command word with bad fields.
pub fn parse(line: &str) -> Option<Result<Form, UsageError>> {
    let line = line.trim();
    let (word, fields) = match line.split_once(',') {
        Some((word, rest)) => (word.trim_end(), Some(rest)),
        None => (line, None),
    };
    let word = word.to_ascii_uppercase();
    let form = match word.as_str() {
        "CONNECT" => connect(fields).map(Form::Connect),
        // `LIST,docs/` (how Tab completes a folder) lists `docs`, and
        // `LIST,.` the root, as `list()` does
        "LIST" => Ok(Form::List(
            fields
                .map(str::trim)
                .and_then(remote_folder)
                .map(str::to_string),
        )),
        "READ" => name_field("READ", "name", fields).map(Form::Read),
        "WRITE" => name_field("WRITE", "local-file", fields).map(Form::Write),
        "STAT" => name_field("STAT", "name", fields).map(Form::Stat),
        "HASH" => name_field("HASH", "name", fields).map(Form::Hash),
        "WALK" => Ok(Form::Walk(
            fields
                .map(str::trim)
                .and_then(remote_folder)
                .map(str::to_string),
        )),
        "MKDIR" => name_field("MKDIR", "name", fields).map(Form::Mkdir),
        "DELETE" => name_field("DELETE", "name", fields).map(Form::Delete),
        "SETTIME" => set_time(fields),
        "FEATURES" => no_fields("FEATURES", fields).map(|()| Form::Features),
        "PUSH" => two_folders("PUSH", "local-folder,remote-folder", fields)
            .map(|(local, remote)| Form::Push { local, remote }),
        "PULL" => two_folders("PULL", "remote-folder,local-folder", fields)
            .map(|(remote, local)| Form::Pull { remote, local }),
        "BYE" => no_fields("BYE", fields).map(|()| Form::Bye),
        "QUIT" | "EXIT" => no_fields(&word, fields).map(|()| Form::Quit),
        "HELP" => Ok(Form::Help),
        _ => return None,
    };
    Some(form)
}

/// `CONNECT,host,port` or `CONNECT,host[:port]`, by the rule of
/// [`crate::addr`] (the same as `connect()`): port 7070 when none is given;
/// `tls://` before the host asks for TLS. A host alone that could be a
/// server's name is kept as typed, for `connect()` to look up.
fn connect(fields: Option<&str>) -> Result<String, UsageError> {
    let usage = || {
        UsageError(
            "usage: CONNECT,host,port (or CONNECT,host:port, CONNECT,tls://host:port, \
             CONNECT,name)"
                .to_string(),
        )
    };
    let fields = fields.map(str::trim).filter(|f| !f.is_empty());
    let Some(fields) = fields else {
        return Err(usage());
    };
    let addr = match fields.rsplit_once(',') {
        Some((host, _)) if host.contains(',') => return Err(usage()),
        Some((host, port)) => split_host_port(host.trim(), port.trim()),
        None => split_scheme(fields).and_then(|(rest, tls)| match rest {
            _ if tls => connect_addr(rest).map(|addr| (addr, true)),
            _ if could_be_name(rest) => connect_addr(rest).map(|_| (rest.to_string(), false)),
            _ => connect_addr(rest).map(|addr| (addr, false)),
        }),
    };
    match addr {
        Ok((addr, true)) => Ok(format!("{TLS_SCHEME}{addr}")),
        Ok((addr, false)) => Ok(addr),
        Err(AddrError::NoHost) => Err(usage()),
        Err(e) => Err(UsageError(e.to_string())),
    }
}

/// What `ioe repl --connect SERVER` connects to, as `CONNECT,SERVER` reads
/// it: `[tls://]host:port` or a server's name.
pub fn connect_target(text: &str) -> Result<String, UsageError> {
    connect(Some(text))
}

/// `SETTIME,seconds,name`: the time first, the name last (it may contain
/// commas), as in the protocol's request.
fn set_time(fields: Option<&str>) -> Result<Form, UsageError> {
    let usage = || {
        UsageError(
            "usage: SETTIME,seconds,name (seconds since 1970, such as 1700000000)".to_string(),
        )
    };
    let (seconds, rest) = fields.and_then(|f| f.split_once(',')).ok_or_else(usage)?;
    let seconds: u64 = seconds.trim().parse().map_err(|_| usage())?;
    let name = name_field("SETTIME", "seconds,name", Some(rest))?;
    Ok(Form::SetTime(seconds, name))
}

/// The one field of `READ`/`WRITE`: everything after the first comma (names
/// may contain commas), without surrounding spaces or a leading `./` (as
/// Tab completes `./` — the same file here, a name the server refuses).
fn name_field(word: &str, what: &str, fields: Option<&str>) -> Result<String, UsageError> {
    let mut name = fields.map(str::trim).unwrap_or_default();
    while let Some(rest) = name.strip_prefix("./") {
        name = rest.trim_start_matches('/');
    }
    if name.is_empty() {
        return Err(UsageError(format!("usage: {word},{what}")));
    }
    Ok(name.to_string())
}

/// The two folders of `PUSH` and `PULL`, split at the one comma between
/// them, without surrounding spaces. Names with commas cannot be told
/// apart there, so more than one comma is a usage error pointing to the
/// script call, which takes each name whole. `.` names the server's root.
fn two_folders(
    word: &str,
    what: &str,
    fields: Option<&str>,
) -> Result<(String, String), UsageError> {
    let usage = || UsageError(format!("usage: {word},{what} (`.` is the server's root)"));
    let (first, second) = fields.and_then(|f| f.split_once(',')).ok_or_else(usage)?;
    if second.contains(',') {
        let call = word.to_ascii_lowercase();
        let (a, b) = what.split_once(',').unwrap_or((what, what));
        let commas = 1 + second.matches(',').count();
        return Err(UsageError(format!(
            "{word} takes two folders separated by one comma, not {commas}; \
             for names with commas use {call}(\"{a}\", \"{b}\")"
        )));
    }
    let (first, second) = (first.trim(), second.trim());
    if first.is_empty() || second.is_empty() {
        return Err(usage());
    }
    Ok((first.to_string(), second.to_string()))
}

fn no_fields(word: &str, fields: Option<&str>) -> Result<(), UsageError> {
    match fields.map(str::trim) {
        None | Some("") => Ok(()),
        Some(_) => Err(UsageError(format!("{word} takes no fields"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(line: &str) -> Form {
        parse(line)
            .unwrap_or_else(|| panic!("`{line}` should be a command form"))
            .unwrap_or_else(|e| panic!("`{line}`: {e}"))
    }

    fn usage(line: &str) -> String {
        match parse(line) {
            Some(Err(e)) => e.0,
            other => panic!("`{line}` should be a usage error, got {other:?}"),
        }
    }

    #[test]
    fn command_words_are_case_insensitive() {
        assert_eq!(form("LIST"), Form::List(None));
        assert_eq!(form("list"), Form::List(None));
        assert_eq!(form("  List  "), Form::List(None));
        assert_eq!(form("bye"), Form::Bye);
        assert_eq!(form("Quit"), Form::Quit);
        assert_eq!(form("exit"), Form::Quit);
        assert_eq!(form("help"), Form::Help);
        assert_eq!(form("HELP"), Form::Help);
    }

    #[test]
    fn connect_takes_host_and_port_in_either_spelling() {
        assert_eq!(
            form("CONNECT,127.0.0.1,7070"),
            Form::Connect("127.0.0.1:7070".into())
        );
        assert_eq!(
            form("connect, localhost , 80 "),
            Form::Connect("localhost:80".into())
        );
        assert_eq!(
            form("CONNECT,example.org:7070"),
            Form::Connect("example.org:7070".into())
        );
        assert_eq!(form("CONNECT,::1,7070"), Form::Connect("[::1]:7070".into()));
        assert_eq!(
            form("CONNECT,[::1]:7070"),
            Form::Connect("[::1]:7070".into())
        );
        // a host alone means port 7070, as in connect("host"), which
        // also looks it up as a server's name
        assert_eq!(form("CONNECT,localhost"), Form::Connect("localhost".into()));
        assert_eq!(form("CONNECT, ::1 "), Form::Connect("[::1]:7070".into()));
    }

    #[test]
    fn connect_takes_tls_in_every_spelling() {
        for (line, target) in [
            ("CONNECT,tls://127.0.0.1,7070", "tls://127.0.0.1:7070"),
            ("CONNECT, tls://example.org:9 ", "tls://example.org:9"),
            ("CONNECT,tls://backup", "tls://backup:7070"),
            ("CONNECT,tls://::1,7070", "tls://[::1]:7070"),
        ] {
            assert_eq!(form(line), Form::Connect(target.into()), "{line}");
        }
        assert!(usage("CONNECT,tls://").starts_with("usage: CONNECT,host,port"));
        assert_eq!(
            usage("CONNECT,tls://h:0"),
            "port `0` is not a number from 1 to 65535"
        );
    }

    #[test]
    fn connect_without_a_usable_port_explains_the_usage() {
        assert!(usage("CONNECT").starts_with("usage: CONNECT,host,port"));
        assert!(usage("CONNECT,").starts_with("usage: CONNECT,host,port"));
        assert!(usage("CONNECT,,7070").starts_with("usage: CONNECT,host,port"));
        assert!(usage("CONNECT,a,b,7070").starts_with("usage: CONNECT,host,port"));
        assert_eq!(
            usage("CONNECT,7070"),
            "`7070` is a port alone; give the host too, such as 127.0.0.1:7070"
        );
        assert_eq!(
            usage("CONNECT,localhost:http"),
            "port `http` is not a number from 1 to 65535"
        );
        assert_eq!(
            usage("CONNECT,localhost,http"),
            "port `http` is not a number from 1 to 65535"
        );
        assert_eq!(
            usage("CONNECT,localhost,0"),
            "port `0` is not a number from 1 to 65535"
        );
        assert_eq!(
            usage("CONNECT,localhost,70000"),
            "port `70000` is not a number from 1 to 65535"
        );
    }

    #[test]
    fn names_keep_their_commas_and_inner_spaces() {
        assert_eq!(form("READ,a,b.txt"), Form::Read("a,b.txt".into()));
        assert_eq!(
            form("read, my report.pdf "),
            Form::Read("my report.pdf".into())
        );
        assert_eq!(form("WRITE,out/x y.bin"), Form::Write("out/x y.bin".into()));
        assert_eq!(form("WRITE,./out/x.bin"), Form::Write("out/x.bin".into()));
        assert_eq!(form("READ, .//./a.txt"), Form::Read("a.txt".into()));
        assert_eq!(form("LIST,docs"), Form::List(Some("docs".into())));
        assert_eq!(form("LIST, docs/ "), Form::List(Some("docs".into())));
        assert_eq!(form("LIST,"), Form::List(None));
        assert_eq!(form("LIST,."), Form::List(None));
        assert_eq!(form("LIST, ./ "), Form::List(None));
    }

    #[test]
    fn missing_names_and_extra_fields_are_usage_errors() {
        assert_eq!(usage("READ"), "usage: READ,name");
        assert_eq!(usage("READ, "), "usage: READ,name");
        assert_eq!(usage("WRITE,./"), "usage: WRITE,local-file");
        assert_eq!(usage("WRITE"), "usage: WRITE,local-file");
        assert_eq!(usage("BYE,now"), "BYE takes no fields");
        assert_eq!(usage("quit,1"), "QUIT takes no fields");
    }

    #[test]
    fn the_extension_forms_take_the_name_last() {
        assert_eq!(form("STAT,a,b.txt"), Form::Stat("a,b.txt".into()));
        assert_eq!(form("hash, x y "), Form::Hash("x y".into()));
        assert_eq!(form("WALK"), Form::Walk(None));
        assert_eq!(form("WALK,docs/"), Form::Walk(Some("docs".into())));
        assert_eq!(form("walk,."), Form::Walk(None));
        assert_eq!(form("MKDIR,new/deep"), Form::Mkdir("new/deep".into()));
        assert_eq!(form("Delete,old,1.txt"), Form::Delete("old,1.txt".into()));
        assert_eq!(
            form("SETTIME, 1700000000 ,a,b.txt"),
            Form::SetTime(1_700_000_000, "a,b.txt".into())
        );
        assert_eq!(form("FEATURES"), Form::Features);
        assert_eq!(usage("STAT"), "usage: STAT,name");
        assert_eq!(usage("HASH,"), "usage: HASH,name");
        assert_eq!(usage("DELETE"), "usage: DELETE,name");
        assert_eq!(usage("MKDIR, "), "usage: MKDIR,name");
        assert_eq!(usage("FEATURES,x"), "FEATURES takes no fields");
        for bad in [
            "SETTIME",
            "SETTIME,a.txt",
            "SETTIME,soon,a.txt",
            "SETTIME,-1,a.txt",
        ] {
            assert!(
                usage(bad).starts_with("usage: SETTIME,seconds,name"),
                "{bad}"
            );
        }
        assert_eq!(usage("SETTIME,5,"), "usage: SETTIME,seconds,name");
    }

    #[test]
    fn push_and_pull_take_two_folders_split_at_their_one_comma() {
        assert_eq!(
            form("PUSH, site , www/"),
            Form::Push {
                local: "site".into(),
                remote: "www/".into()
            }
        );
        assert_eq!(
            form("pull,.,my backup"),
            Form::Pull {
                remote: ".".into(),
                local: "my backup".into()
            }
        );
        assert_eq!(
            usage("PUSH"),
            "usage: PUSH,local-folder,remote-folder (`.` is the server's root)"
        );
        assert_eq!(
            usage("PULL,docs"),
            "usage: PULL,remote-folder,local-folder (`.` is the server's root)"
        );
        assert_eq!(
            usage("PUSH,site, "),
            "usage: PUSH,local-folder,remote-folder (`.` is the server's root)"
        );
        assert_eq!(
            usage("PUSH,a,b,c"),
            "PUSH takes two folders separated by one comma, not 2; \
             for names with commas use push(\"local-folder\", \"remote-folder\")"
        );
        assert_eq!(
            usage("PULL,a,b,c"),
            "PULL takes two folders separated by one comma, not 2; \
             for names with commas use pull(\"remote-folder\", \"local-folder\")"
        );
        // the script calls are Rhai
        assert_eq!(parse("push(\"a\", \"b\")"), None);
        assert_eq!(parse("s.pull(\"a\", \"b\")"), None);
    }

    #[test]
    fn rhai_code_is_not_a_command_form() {
        for code in [
            "list()",
            "read(\"a.txt\")",
            "let list = 1",
            "s.list()",
            "connect(\"127.0.0.1:7070\")",
            "print(\"LIST\")",
            "1 + 2",
            "listing",
            "",
            "bye()",
            "stat(\"a\")",
            "s.walk()",
            "hash(\"a,b\")",
        ] {
            assert_eq!(parse(code), None, "`{code}`");
        }
    }
}
