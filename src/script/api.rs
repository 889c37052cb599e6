//! The transfer half of the script API: `connect`, the `Session` type and
//! its methods, the same functions acting on the current session, and
//! `serve` with its `Server` handle.

use super::report::{BAD_ARGUMENT, from_client, throw};
use super::{Registry, State};
use crate::addr::{connect_addr, join_host_port};
use crate::error::{Error, ErrorKind};
use crate::protocol::Entry;
use crate::server::{Config, Server};
use crate::session::Session;
use rhai::{Array, Dynamic, EvalAltResult, INT, Map};
use std::cell::RefCell;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// How long an embedded server lets transfers finish when the script ends.
const EMBEDDED_GRACE: Duration = Duration::from_secs(1);

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// A session as scripts hold it (`Session` in Rhai); clones share one
/// connection.
#[derive(Clone)]
pub struct ScriptSession(Rc<RefCell<Session>>);

impl ScriptSession {
    /// The `host:port` the session was opened with.
    pub fn addr(&self) -> String {
        self.0.borrow().addr().to_string()
    }

    /// Whether the session can still send requests.
    pub fn is_open(&self) -> bool {
        self.0.borrow().is_open()
    }

    /// Lists a folder (the root when `None`) on this session.
    pub fn list(&self, dir: Option<&str>) -> Result<Vec<Entry>, Error> {
        self.0.borrow_mut().list(dir)
    }

    /// `Session(host:port, open)`: what `to_string` and the REPL show.
    pub fn describe(&self) -> String {
        let state = if self.is_open() { "open" } else { "closed" };
        format!("Session({}, {state})", self.addr())
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
    reg.func("connect", move |addr: &str| {
        let addr = connect_addr(addr)
            .map_err(|e| throw(BAD_ARGUMENT, format!("connect to `{addr}`: {e}")))?;
        connect(&st, &addr)
    });
    let st = Rc::clone(state);
    reg.func("connect", move |host: &str, port: INT| {
        let port = u16::try_from(port)
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| {
                throw(
                    BAD_ARGUMENT,
                    format!("connect to `{host}`: port {port} is not between 1 and 65535"),
                )
            })?;
        connect(&st, &join_host_port(host, port))
    });
    let st = Rc::clone(state);
    reg.func("connect", move |server: ServerHandle| {
        connect(&st, &server.addr)
    });

    // methods on a session
    reg.getter("addr", |s: &mut ScriptSession| s.addr());
    reg.getter("is_open", |s: &mut ScriptSession| s.is_open());
    reg.func("list", |s: &mut ScriptSession| list(s, None));
    reg.func("list", |s: &mut ScriptSession, dir: &str| {
        list(s, Some(dir))
    });
    reg.func("read", |s: &mut ScriptSession, remote: &str| {
        read(s, remote, remote)
    });
    reg.func(
        "read",
        |s: &mut ScriptSession, remote: &str, local: &str| read(s, remote, local),
    );
    reg.func("write", |s: &mut ScriptSession, local: &str| {
        write_as_given(s, local)
    });
    reg.func(
        "write",
        |s: &mut ScriptSession, local: &str, remote: &str| write(s, local, remote),
    );
    reg.func("bye", |s: &mut ScriptSession| bye(s));

    // the same, on the current session
    let st = Rc::clone(state);
    reg.func("list", move || list(&current(&st, "list")?, None));
    let st = Rc::clone(state);
    reg.func("list", move |dir: &str| {
        list(&current(&st, &format!("list `{dir}`"))?, Some(dir))
    });
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str| {
        read(&current(&st, &format!("read `{remote}`"))?, remote, remote)
    });
    let st = Rc::clone(state);
    reg.func("read", move |remote: &str, local: &str| {
        read(&current(&st, &format!("read `{remote}`"))?, remote, local)
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str| {
        write_as_given(&current(&st, &format!("write `{local}`"))?, local)
    });
    let st = Rc::clone(state);
    reg.func("write", move |local: &str, remote: &str| {
        write(&current(&st, &format!("write `{remote}`"))?, local, remote)
    });
    let st = Rc::clone(state);
    reg.func("bye", move || bye(&current(&st, "bye")?));

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

fn connect(state: &Rc<RefCell<State>>, addr: &str) -> Fallible<ScriptSession> {
    let cancel = state.borrow().cancel.clone();
    let mut session = Session::connect_cancellable(addr, &cancel).map_err(from_client)?;
    let mut st = state.borrow_mut();
    session.set_progress(st.progress);
    let session = ScriptSession(Rc::new(RefCell::new(session)));
    st.current = Some(session.clone());
    Ok(session)
}

/// The current session, or a `not_connected` error for operation `op`.
fn current(state: &Rc<RefCell<State>>, op: &str) -> Fallible<ScriptSession> {
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

fn read(s: &ScriptSession, remote: &str, local: &str) -> Fallible<INT> {
    let n =
        s.0.borrow_mut()
            .read(remote, Path::new(local))
            .map_err(from_client)?;
    Ok(to_int(n))
}

fn write(s: &ScriptSession, local: &str, remote: &str) -> Fallible<INT> {
    let n =
        s.0.borrow_mut()
            .write(Path::new(local), remote)
            .map_err(from_client)?;
    Ok(to_int(n))
}

/// `write(local)`: the remote name is the local path as given; if that is
/// not a valid name, say how to give one.
fn write_as_given(s: &ScriptSession, local: &str) -> Fallible<INT> {
    let result = s.0.borrow_mut().write(Path::new(local), local);
    match result {
        Ok(n) => Ok(to_int(n)),
        Err(mut e) if e.kind == ErrorKind::BadName => {
            e.cause
                .push_str("; give the remote name as well: write(local, remote)");
            Err(from_client(e))
        }
        Err(e) => Err(from_client(e)),
    }
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
