//! The transfer half of the script API: `connect`, the `Session` type and
//! its methods (transfers with their options map, and the IOE/1
//! extensions: `features`, `stat`, `exists`, `walk`, `hash`, `mkdir`,
//! `delete`, `set_mtime`), the same functions acting on the current
//! session where no local helper has the name, and `serve` with its
//! `Server` handle.

use super::report::{BAD_ARGUMENT, from_client, throw};
use super::{Registry, State};
use crate::addr::connect_addr;
use crate::auth::Token;
use crate::digest::Algorithm;
use crate::error::{Error, ErrorKind};
use crate::events::{self, Event, Events, Op};
use crate::protocol::{Entry, Features};
use crate::server::{Config, Server};
use crate::session::{
    ConnectOptions, Origin, Session, TlsOptions, TransferOptions, Transferred, split_scheme,
};
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use std::cell::RefCell;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long an embedded server lets transfers finish when the script ends.
const EMBEDDED_GRACE: Duration = Duration::from_secs(1);

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A session as scripts hold it (`Session` in Rhai); clones share one
/// connection. Its transfers go to the `--events` log, if any.
#[derive(Clone)]
pub struct ScriptSession(Rc<RefCell<Session>>, Option<Arc<Events>>);

impl ScriptSession {
    /// The `host:port` the session was opened with.
    pub fn addr(&self) -> String {
        self.0.borrow().addr().to_string()
    }

    /// How the session connected (TLS, token), for a side connection.
    pub fn options(&self) -> ConnectOptions {
        self.0.borrow().options().clone()
    }

    /// The identity the server named for the session's token, if any.
    pub fn identity(&self) -> Option<String> {
        self.0.borrow().identity().map(str::to_string)
    }

    /// Whether the session can still send requests.
    pub fn is_open(&self) -> bool {
        self.0.borrow().is_open()
    }

    /// Lists a folder (the root when `None`) on this session.
    pub fn list(&self, dir: Option<&str>) -> Result<Vec<Entry>, Error> {
        self.0.borrow_mut().list(dir)
    }

    /// Runs `f` on the client session itself (the REPL's command forms
    /// call it directly).
    pub fn with<R>(&self, f: impl FnOnce(&mut Session) -> R) -> R {
        f(&mut self.0.borrow_mut())
    }

    /// `Session(host:port, open)`: what `to_string` and the REPL show.
    pub fn describe(&self) -> String {
        let state = if self.is_open() { "open" } else { "closed" };
        format!("Session({}, {state})", self.addr())
    }

    /// The `transfer` event of a file that arrived whole.
    fn transferred(&self, op: Op, remote: &str, local: &str, done: &Transferred, at: Instant) {
        events::emit(self.1.as_ref(), || Event::Transfer {
            op,
            remote: remote.to_string(),
            local: local.to_string(),
            bytes: done.moved,
            size: done.size,
            seconds: events::secs(at.elapsed()),
            resumed_from: done.resumed_from,
            digest: done
                .digest
                .as_ref()
                .map(|(algorithm, hex)| format!("{}:{hex}", algorithm.name())),
        });
    }
}

/// What `serve(dir)` returns (`Server` in Rhai): the address to connect to.
/// The server itself runs until the script ends.
#[derive(Clone)]
pub struct ServerHandle {
    addr: String,
    root: String,
}

impl ServerHandle {
    /// `Server(host:port)`: what `to_string` and the REPL show.
    pub fn describe(&self) -> String {
        format!("Server({})", self.addr)
    }
}

/// Registers `connect`, `serve`, the `Session` and `Server` types, and the
/// transfer functions in both call styles.
pub(crate) fn register(reg: &mut Registry<'_>, state: &Rc<RefCell<State>>) {
    reg.engine
        .register_type_with_name::<ScriptSession>("Session")
        .register_type_with_name::<ServerHandle>("Server");

    let st = Rc::clone(state);
    reg.func("connect", move |target: &str| {
        connect_to(&st, target, Map::new())
    });
    let st = Rc::clone(state);
    reg.func("connect", move |target: &str, options: Map| {
        connect_to(&st, target, options)
    });
    let st = Rc::clone(state);
    reg.func("connect", move |host: &str, port: INT| {
        // the same rule as `CONNECT,tls://host,port`
        let (addr, tls) = crate::addr::split_host_port(host, &port.to_string())
            .map_err(|e| throw(BAD_ARGUMENT, format!("connect to `{host}`: {e}")))?;
        let options = ConnectOptions {
            tls: tls.then(TlsOptions::default),
            token: env_token(host)?,
            origin: None,
        };
        connect(&st, &addr, options)
    });
    let st = Rc::clone(state);
    // an embedded server takes no tokens
    reg.func("connect", move |server: ServerHandle| {
        connect(&st, &server.addr, ConnectOptions::default())
    });

    // methods on a session
    reg.getter("addr", |s: &mut ScriptSession| s.addr());
    reg.getter("is_open", |s: &mut ScriptSession| s.is_open());
    reg.getter("identity", |s: &mut ScriptSession| {
        s.identity().map_or(Dynamic::UNIT, Dynamic::from)
    });
    reg.func("list", |s: &mut ScriptSession| list(s, None));
    reg.func("list", |s: &mut ScriptSession, dir: &str| {
        list(s, Some(dir))
    });
    reg.func("bye", |s: &mut ScriptSession| bye(s));
    register_transfers(reg);
    register_extensions(reg);

    // the same, on the current session
    let st = Rc::clone(state);
    reg.func("list", move || list(&current(&st, "list")?, None));
    let st = Rc::clone(state);
    reg.func("list", move |dir: &str| {
        list(&current(&st, &format!("list `{dir}`"))?, Some(dir))
    });
    let st = Rc::clone(state);
    reg.func("bye", move || bye(&current(&st, "bye")?));
    register_transfers_on_current(reg, state);
    register_extensions_on_current(reg, state);

    let st = Rc::clone(state);
    reg.func("serve", move |dir: &str| serve(&st, dir));
    reg.getter("addr", |h: &mut ServerHandle| h.addr.clone());
    reg.getter("root", |h: &mut ServerHandle| h.root.clone());

    // how `print` and string interpolation show them (Rhai's own names,
    // so not listed among the API's)
    reg.engine
        .register_fn("to_string", |s: &mut ScriptSession| s.describe())
        .register_fn("to_debug", |s: &mut ScriptSession| s.describe())
        .register_fn("to_string", |h: &mut ServerHandle| h.describe())
        .register_fn("to_debug", |h: &mut ServerHandle| h.describe());
}

/// `read` and `write` on a session, with and without an options map.
fn register_transfers(reg: &mut Registry<'_>) {
    reg.func("read", |s: &mut ScriptSession, remote: &str| {
        read(s, remote, remote, None)
    });
    reg.func(
        "read",
        |s: &mut ScriptSession, remote: &str, local: &str| read(s, remote, local, None),
    );
    reg.func(
        "read",
        |s: &mut ScriptSession, remote: &str, options: Map| read(s, remote, remote, Some(options)),
    );
    reg.func(
        "read",
        |s: &mut ScriptSession, remote: &str, local: &str, options: Map| {
            read(s, remote, local, Some(options))
        },
    );
    reg.func("write", |s: &mut ScriptSession, local: &str| {
        write_as_given(s, local, None)
    });
    reg.func(
        "write",
        |s: &mut ScriptSession, local: &str, remote: &str| write(s, local, remote, None),
    );
    reg.func(
        "write",
        |s: &mut ScriptSession, local: &str, options: Map| write_as_given(s, local, Some(options)),
    );
    reg.func(
        "write",
        |s: &mut ScriptSession, local: &str, remote: &str, options: Map| {
            write(s, local, remote, Some(options))
        },
    );
}

/// `read` and `write` on the current session.
fn register_transfers_on_current(reg: &mut Registry<'_>, state: &Rc<RefCell<State>>) {
    let on = |st: &Rc<RefCell<State>>, op: &str, name: &str| current(st, &format!("{op} `{name}`"));
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str| {
        read(&on(&st, "read", remote)?, remote, remote, None)
    });
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str, local: &str| {
        read(&on(&st, "read", remote)?, remote, local, None)
    });
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str, options: Map| {
        read(&on(&st, "read", remote)?, remote, remote, Some(options))
    });
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str, local: &str, options: Map| {
        read(&on(&st, "read", remote)?, remote, local, Some(options))
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str| {
        write_as_given(&on(&st, "write", local)?, local, None)
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str, remote: &str| {
        write(&on(&st, "write", remote)?, local, remote, None)
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str, options: Map| {
        write_as_given(&on(&st, "write", local)?, local, Some(options))
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str, remote: &str, options: Map| {
        write(&on(&st, "write", remote)?, local, remote, Some(options))
    });
}

/// The extensions' verbs on a session; `exists`, `walk` and `mkdir` only
/// there, their global names being local helpers'.
fn register_extensions(reg: &mut Registry<'_>) {
    reg.func("features", |s: &mut ScriptSession| features(s));
    reg.func("stat", |s: &mut ScriptSession, name: &str| stat(s, name));
    reg.func("exists", |s: &mut ScriptSession, name: &str| {
        let name = folder_name(name);
        s.with(|s| s.exists(name)).map_err(from_client)
    });
    reg.func("walk", |s: &mut ScriptSession| walk(s, None));
    reg.func("walk", |s: &mut ScriptSession, dir: &str| {
        walk(s, Some(dir))
    });
    reg.func("hash", |s: &mut ScriptSession, name: &str| {
        hash(s, name, None)
    });
    reg.func(
        "hash",
        |s: &mut ScriptSession, name: &str, algorithm: &str| hash(s, name, Some(algorithm)),
    );
    reg.func("mkdir", |s: &mut ScriptSession, name: &str| {
        let name = folder_name(name);
        s.with(|s| s.mkdir(name)).map_err(from_client)
    });
    reg.func("delete", |s: &mut ScriptSession, name: &str| {
        delete(s, name)
    });
    reg.func(
        "set_mtime",
        |s: &mut ScriptSession, name: &str, seconds: INT| set_mtime(s, name, seconds),
    );
}

/// `features`, `stat`, `hash`, `delete` and `set_mtime` on the current
/// session.
fn register_extensions_on_current(reg: &mut Registry<'_>, state: &Rc<RefCell<State>>) {
    let on = |st: &Rc<RefCell<State>>, op: &str, name: &str| current(st, &format!("{op} `{name}`"));
    let st = Rc::clone(state);
    reg.func("features", move || features(&current(&st, "features")?));
    let st = Rc::clone(state);
    reg.func("stat", move |name: &str| {
        stat(&on(&st, "stat", name)?, name)
    });
    let st = Rc::clone(state);
    reg.func("hash", move |name: &str| {
        hash(&on(&st, "hash", name)?, name, None)
    });
    let st = Rc::clone(state);
    reg.func("hash", move |name: &str, algorithm: &str| {
        hash(&on(&st, "hash", name)?, name, Some(algorithm))
    });
    let st = Rc::clone(state);
    reg.func("delete", move |name: &str| {
        delete(&on(&st, "delete", name)?, name)
    });
    let st = Rc::clone(state);
    reg.func("set_mtime", move |name: &str, seconds: INT| {
        set_mtime(&on(&st, "set_mtime", name)?, name, seconds)
    });
}

/// The option keys `connect` takes.
const CONNECT_OPTIONS: &[&str] = &["tls", "fingerprint", "ca_file", "token", "token_file"];

/// The token in `IOE_TOKEN`, for a `connect` given none.
fn env_token(addr: &str) -> Fallible<Option<Token>> {
    Token::from_env().map_err(|e| throw(BAD_ARGUMENT, format!("connect to `{addr}`: {e}")))
}

/// Takes `token` (the token itself) or `token_file` (a file holding it)
/// out of `connect`'s options map; both at once, or a value of the wrong
/// type, is `bad_argument`. The token never appears in a message.
fn token_option(addr: &str, options: &mut Map) -> Fallible<Option<Token>> {
    let op = format!("connect to `{addr}`");
    let text = |key: &str, value: Dynamic| {
        value.into_string().map_err(|kind| {
            throw(
                BAD_ARGUMENT,
                format!("{op}: option `{key}` takes a string, not a {kind}"),
            )
        })
    };
    let bad = |e: String| throw(BAD_ARGUMENT, format!("{op}: {e}"));
    match (options.remove("token"), options.remove("token_file")) {
        (Some(_), Some(_)) => Err(throw(
            BAD_ARGUMENT,
            format!("{op}: give `token` or `token_file`, not both"),
        )),
        (Some(value), None) => Token::new(&text("token", value)?, "the option `token`")
            .map(Some)
            .map_err(bad),
        (None, Some(value)) => Token::from_file(Path::new(&text("token_file", value)?))
            .map(Some)
            .map_err(bad),
        (None, None) => Ok(None),
    }
}

/// `connect(target, options)`: `target` is a server named in the servers
/// file ([`crate::servers`]), or an address (`tls://` for TLS); the call's
/// options win over the file's.
fn connect_to(
    state: &Rc<RefCell<State>>,
    target: &str,
    mut options: Map,
) -> Fallible<ScriptSession> {
    let op = format!("connect to `{target}`");
    let (addr, named_tls, token_file, origin) = match named_server(target)? {
        Some(named) => {
            let tls = named.tls.then(|| TlsOptions {
                fingerprint: named.fingerprint.clone(),
                ca_file: named.ca_file.clone(),
            });
            let origin = Origin {
                name: named.name,
                file: named.file,
            };
            (named.addr, tls, named.token_file, Some(origin))
        }
        None => {
            let bad = |e| throw(BAD_ARGUMENT, format!("{op}: {e}"));
            let (text, tls) = split_scheme(target).map_err(bad)?;
            let addr = connect_addr(text).map_err(bad)?;
            (addr, tls.then(TlsOptions::default), None, None)
        }
    };
    let token = token_option(target, &mut options)?;
    let tls = connect_options(target, options, named_tls)?;
    // a named server's entry says which token it gets: IOE_TOKEN, meant
    // for whatever server the run was set up for, never goes to it
    let token = match (token, token_file) {
        (Some(token), _) => Some(token),
        (None, Some(file)) => {
            Some(Token::from_file(&file).map_err(|e| throw(BAD_ARGUMENT, format!("{op}: {e}")))?)
        }
        (None, None) if origin.is_some() => None,
        (None, None) => env_token(target)?,
    };
    // a name that is no host either may be a typo of a section's name
    let not_named =
        (origin.is_none() && crate::servers::could_be_name(target) && !target.contains('.'))
            .then(crate::servers::path)
            .flatten()
            .filter(|file| file.is_file())
            .map(|file| format!(" (no server named `{target}` in {} either)", file.display()));
    let options = ConnectOptions { tls, token, origin };
    connect_noting(state, &addr, options, not_named)
}

/// The server named `target` in the servers file, if `target` could be a
/// name and the file names it; a broken file is `bad_argument`.
fn named_server(target: &str) -> Fallible<Option<crate::servers::Named>> {
    if !crate::servers::could_be_name(target) {
        return Ok(None);
    }
    let Some(file) = crate::servers::path() else {
        return Ok(None);
    };
    crate::servers::find(&file, target)
        .map_err(|e| throw(BAD_ARGUMENT, format!("connect to `{target}`: {e:#}")))
}

/// The TLS that `connect`'s options map asks for, over `given` (what the
/// address or the servers file asks for): `tls` (a bool), `fingerprint`
/// (`SHA256:…`) and `ca_file` (a PEM file of authorities), which both need
/// TLS. An unknown key or a value of the wrong type is `bad_argument`.
fn connect_options(
    addr: &str,
    options: Map,
    given: Option<TlsOptions>,
) -> Fallible<Option<TlsOptions>> {
    let op = format!("connect to `{addr}`");
    let mut tls = given.is_some();
    let given = given.unwrap_or_default();
    let mut fingerprint = given.fingerprint;
    let mut ca_file = given.ca_file;
    for (key, value) in options {
        match key.as_str() {
            "tls" => {
                tls |= value.as_bool().map_err(|_| {
                    throw(
                        BAD_ARGUMENT,
                        format!("{op}: option `tls` takes true or false, not {value:?}"),
                    )
                })?;
            }
            "fingerprint" => {
                let text = value.into_string().map_err(|kind| {
                    throw(
                        BAD_ARGUMENT,
                        format!("{op}: option `fingerprint` takes a string, not a {kind}"),
                    )
                })?;
                crate::known_hosts::check_fingerprint(&text)
                    .map_err(|why| throw(BAD_ARGUMENT, format!("{op}: {why}")))?;
                fingerprint = Some(text);
            }
            "ca_file" => {
                let path = value.into_string().map_err(|kind| {
                    throw(
                        BAD_ARGUMENT,
                        format!("{op}: option `ca_file` takes a file name, not a {kind}"),
                    )
                })?;
                ca_file = Some(PathBuf::from(path));
            }
            _ => {
                let keys: Vec<String> = CONNECT_OPTIONS.iter().map(|k| format!("`{k}`")).collect();
                return Err(throw(
                    BAD_ARGUMENT,
                    format!(
                        "{op}: unknown option `{key}`; the options are {}",
                        keys.join(", ")
                    ),
                ));
            }
        }
    }
    for (set, what) in [
        (fingerprint.is_some(), "a fingerprint"),
        (ca_file.is_some(), "a CA file"),
    ] {
        if set && !tls {
            return Err(throw(
                BAD_ARGUMENT,
                format!("{op}: {what} needs TLS; add `tls: true` or write `tls://{addr}`"),
            ));
        }
    }
    Ok(tls.then_some(TlsOptions {
        fingerprint,
        ca_file,
    }))
}

fn connect(
    state: &Rc<RefCell<State>>,
    addr: &str,
    options: ConnectOptions,
) -> Fallible<ScriptSession> {
    connect_noting(state, addr, options, None)
}

/// [`connect`], with `unresolved` added to the message when the host's
/// name cannot be resolved.
fn connect_noting(
    state: &Rc<RefCell<State>>,
    addr: &str,
    options: ConnectOptions,
    unresolved: Option<String>,
) -> Fallible<ScriptSession> {
    let cancel = state.borrow().cancel.clone();
    let mut session = match Session::connect_cancellable_with(addr, options.clone(), &cancel) {
        Err(e) if e.first_contact.is_some() => {
            trust_and_connect_again(state, addr, options, e).map_err(from_client)?
        }
        Err(mut e) if e.cause.starts_with("cannot resolve it") => {
            e.cause.push_str(unresolved.as_deref().unwrap_or_default());
            return Err(from_client(e));
        }
        result => result.map_err(from_client)?,
    };
    events::emit(state.borrow().events.as_ref(), || Event::Connect {
        address: session.addr().to_string(),
        tls: session.tls().is_some(),
        fingerprint: session.server_fingerprint(),
        identity: session.identity().map(str::to_string),
    });
    let mut st = state.borrow_mut();
    session.set_progress(st.progress);
    let session = ScriptSession(Rc::new(RefCell::new(session)), st.events.clone());
    st.current = Some(session.clone());
    Ok(session)
}

/// After a first contact with the TLS server at `addr`: when the host can
/// ask (the REPL at a terminal) and the user says yes, records its
/// fingerprint in the known-hosts file and connects again; otherwise the
/// refusal stands.
fn trust_and_connect_again(
    state: &Rc<RefCell<State>>,
    addr: &str,
    options: ConnectOptions,
    refused: Error,
) -> Result<Session, Error> {
    let prompt = state.borrow().trust_prompt.clone();
    let (Some(prompt), Some(first), Ok(file)) = (
        prompt,
        refused.first_contact.as_deref(),
        crate::known_hosts::path(),
    ) else {
        return Err(refused);
    };
    if !prompt(addr, &first.fingerprint, &file) {
        return Err(refused);
    }
    crate::known_hosts::add(&file, addr, &first.fingerprint).map_err(|e| {
        Error::new(
            ErrorKind::LocalIo,
            format!("connect to `{addr}`"),
            format!("cannot record the server's fingerprint: {e:#}"),
        )
    })?;
    let cancel = state.borrow().cancel.clone();
    Session::connect_cancellable_with(addr, options, &cancel)
}

/// The current session, or a `not_connected` error for operation `op`.
pub(super) fn current(state: &Rc<RefCell<State>>, op: &str) -> Fallible<ScriptSession> {
    state.borrow().current.clone().ok_or_else(|| {
        from_client(Error::new(
            ErrorKind::NotConnected,
            op,
            "not connected; connect to a server first",
        ))
    })
}

/// The folder `list(dir)` asks the server for: `None` (the root, a `LIST`
/// with no field) for `""`, `"."` and `"./"`; otherwise `dir` without one
/// trailing `/` (as Tab completes a folder).
pub(crate) fn remote_folder(dir: &str) -> Option<&str> {
    let dir = match dir.strip_suffix('/') {
        Some(folder) if !folder.is_empty() => folder,
        _ => dir,
    };
    (!dir.is_empty() && dir != ".").then_some(dir)
}

fn list(s: &ScriptSession, dir: Option<&str>) -> Fallible<Array> {
    let entries = s.list(dir.and_then(remote_folder)).map_err(from_client)?;
    Ok(entries.into_iter().map(entry_map).collect())
}

fn entry_map(entry: Entry) -> Dynamic {
    let mut map = Map::new();
    map.insert("name".into(), entry.name.into());
    map.insert("kind".into(), entry.kind.as_str().into());
    map.insert("size".into(), to_int(entry.size).into());
    map.insert("mtime".into(), to_int(entry.mtime).into());
    map.into()
}

/// The option keys `read` takes.
const READ_OPTIONS: &[&str] = &["mtime", "verify", "resume"];
/// The option keys `write` takes (`resume` is for downloads).
const WRITE_OPTIONS: &[&str] = &["mtime", "verify"];

/// The [`TransferOptions`] an options map asks for, starting from the
/// defaults; an unknown key or a value that is not a bool is
/// `bad_argument`, naming the key and the keys `accepted` for `op`.
fn transfer_options(
    op: &str,
    options: Option<Map>,
    accepted: &[&str],
) -> Fallible<TransferOptions> {
    let mut chosen = TransferOptions::default();
    for (key, value) in options.unwrap_or_default() {
        let slot = match key.as_str() {
            "mtime" if accepted.contains(&"mtime") => &mut chosen.mtime,
            "verify" if accepted.contains(&"verify") => &mut chosen.verify,
            "resume" if accepted.contains(&"resume") => &mut chosen.resume,
            _ => {
                let keys: Vec<String> = accepted.iter().map(|k| format!("`{k}`")).collect();
                let hint = if key.as_str() == "resume" {
                    " (`resume` is for downloads, `read`)"
                } else {
                    ""
                };
                return Err(throw(
                    BAD_ARGUMENT,
                    format!(
                        "{op}: unknown option `{key}`{hint}; the options are {}",
                        keys.join(", ")
                    ),
                ));
            }
        };
        *slot = value.as_bool().map_err(|_| {
            throw(
                BAD_ARGUMENT,
                format!("{op}: option `{key}` takes true or false, not {value:?}"),
            )
        })?;
    }
    Ok(chosen)
}

fn read(s: &ScriptSession, remote: &str, local: &str, options: Option<Map>) -> Fallible<INT> {
    let options = transfer_options(&format!("read `{remote}`"), options, READ_OPTIONS)?;
    let started = Instant::now();
    let done = s
        .with(|s| s.read_with(remote, Path::new(local), &options))
        .map_err(from_client)?;
    s.transferred(Op::Read, remote, local, &done, started);
    Ok(to_int(done.size))
}

fn write(s: &ScriptSession, local: &str, remote: &str, options: Option<Map>) -> Fallible<INT> {
    let options = transfer_options(&format!("write `{remote}`"), options, WRITE_OPTIONS)?;
    let started = Instant::now();
    let done = s
        .with(|s| s.write_with(Path::new(local), remote, &options))
        .map_err(from_client)?;
    s.transferred(Op::Write, remote, local, &done, started);
    Ok(to_int(done.size))
}

/// `write(local)`: the remote name is the local path as given; if that is
/// not a valid name, say how to give one.
fn write_as_given(s: &ScriptSession, local: &str, options: Option<Map>) -> Fallible<INT> {
    let options = transfer_options(&format!("write `{local}`"), options, WRITE_OPTIONS)?;
    let started = Instant::now();
    let result = s.with(|s| s.write_with(Path::new(local), local, &options));
    match result {
        Ok(done) => {
            s.transferred(Op::Write, local, local, &done, started);
            Ok(to_int(done.size))
        }
        Err(mut e) if e.kind == ErrorKind::BadName => {
            e.cause
                .push_str("; give the remote name as well: write(local, remote)");
            Err(from_client(e))
        }
        Err(e) => Err(from_client(e)),
    }
}

fn features(s: &ScriptSession) -> Fallible<Map> {
    let features = s.with(Session::features).map_err(from_client)?;
    Ok(features_map(&features))
}

/// `#{stat, walk, hash, range, settime, delete, mkdir, auth, read_only,
/// max_size}`: bools, `hash` the array of algorithms, `max_size` bytes or
/// `()`.
fn features_map(features: &Features) -> Map {
    let mut map = Map::new();
    let flags = [
        ("stat", features.stat),
        ("walk", features.walk),
        ("range", features.range),
        ("settime", features.settime),
        ("delete", features.delete),
        ("mkdir", features.mkdir),
        ("auth", features.auth),
        ("read_only", features.read_only),
    ];
    for (key, on) in flags {
        map.insert(key.into(), on.into());
    }
    let hash: Array = features.hash.iter().map(|h| h.as_str().into()).collect();
    map.insert("hash".into(), hash.into());
    let max_size = features
        .max_size
        .map_or(Dynamic::UNIT, |n| to_int(n).into());
    map.insert("max_size".into(), max_size);
    map
}

/// A name that may be a folder's, without the one trailing `/` that Tab
/// completion gives a folder (`"docs/"` is `"docs"`; `"/"` stays, to be
/// refused as a name).
pub(crate) fn folder_name(name: &str) -> &str {
    match name.strip_suffix('/') {
        Some(folder) if !folder.is_empty() => folder,
        _ => name,
    }
}

fn stat(s: &ScriptSession, name: &str) -> Fallible<Dynamic> {
    let name = folder_name(name);
    let entry = s.with(|s| s.stat(name)).map_err(from_client)?;
    Ok(entry_map(entry))
}

/// `s.walk()` and `s.walk(dir)`: `""`, `"."` and `"./"` are the root and
/// one trailing `/` is dropped, as for `list`.
fn walk(s: &ScriptSession, dir: Option<&str>) -> Fallible<Array> {
    let mut entries = Array::new();
    s.with(|s| s.walk_each(dir.and_then(remote_folder), |e| entries.push(entry_map(e))))
        .map_err(from_client)?;
    Ok(entries)
}

/// The remote digest in lower-case hex: the best algorithm both sides have
/// (blake3, else sha256) when none is named.
fn hash(s: &ScriptSession, name: &str, algorithm: Option<&str>) -> Fallible<String> {
    let algorithm = match algorithm {
        None => None,
        Some(text) => Some(Algorithm::from_name(text).ok_or_else(|| {
            throw(
                BAD_ARGUMENT,
                format!(
                    "hash `{name}`: unknown hash algorithm `{text}`; use \"blake3\" or \"sha256\""
                ),
            )
        })?),
    };
    let (_, hex) = s.with(|s| s.hash(name, algorithm)).map_err(from_client)?;
    Ok(hex)
}

fn delete(s: &ScriptSession, name: &str) -> Fallible<()> {
    let name = folder_name(name);
    s.with(|s| s.delete(name)).map_err(from_client)
}

fn set_mtime(s: &ScriptSession, name: &str, seconds: INT) -> Fallible<()> {
    let seconds = u64::try_from(seconds).map_err(|_| {
        throw(
            BAD_ARGUMENT,
            format!(
                "set_mtime `{name}`: {seconds} is not a time; give whole seconds since 1970 (0 or more)"
            ),
        )
    })?;
    let name = folder_name(name);
    s.with(|s| s.set_mtime(name, seconds)).map_err(from_client)
}

fn bye(s: &ScriptSession) -> Fallible<()> {
    s.0.borrow_mut().bye().map_err(from_client)
}

fn serve(state: &Rc<RefCell<State>>, dir: &str) -> Fallible<ServerHandle> {
    let op = format!("serve `{dir}`");
    let root = PathBuf::from(dir);
    if !root.exists() {
        return Err(throw(
            ErrorKind::LocalMissing.as_str(),
            format!("{op}: folder `{dir}` does not exist"),
        ));
    }
    if !root.is_dir() {
        return Err(throw(
            ErrorKind::LocalIo.as_str(),
            format!("{op}: `{dir}` is not a folder"),
        ));
    }
    let local_io = |e: std::io::Error| throw(ErrorKind::LocalIo.as_str(), format!("{op}: {e}"));
    let listener = TcpListener::bind("127.0.0.1:0").map_err(local_io)?;
    let config = Config {
        root,
        quiet: true,
        grace: EMBEDDED_GRACE,
        ..Config::default()
    };
    let server = Server::new(listener, config)
        .and_then(Server::spawn)
        .map_err(local_io)?;
    let handle = ServerHandle {
        addr: server.addr().to_string(),
        root: dir.to_string(),
    };
    state.borrow_mut().servers.push(server);
    Ok(handle)
}

/// Sizes and times as Rhai integers (IOE/1 numbers fit; saturate if not).
pub(crate) fn to_int(n: u64) -> INT {
    INT::try_from(n).unwrap_or(INT::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_and_a_folder_with_its_slash_are_named_as_completion_offers_them() {
        for (dir, folder) in [
            ("", None),
            (".", None),
            ("./", None),
            ("inbox", Some("inbox")),
            ("inbox/", Some("inbox")),
            ("a/b/", Some("a/b")),
            // still refused by the name check, as names are relative
            ("/", Some("/")),
            ("inbox//", Some("inbox/")),
        ] {
            assert_eq!(remote_folder(dir), folder, "{dir:?}");
        }
    }
}
