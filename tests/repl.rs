//! `ioe repl` driven through a real pseudo-terminal (`rexpect`) against real
//! servers on 127.0.0.1: command forms, transfers, Tab completion,
//! multi-line Rhai, Ctrl-C during a transfer, and history across restarts.
//! Every wait is bounded by [`EXPECT_TIMEOUT`]; the child is killed on drop.

mod common;

use common::{TestServer, TrickleServer, pseudo_random, put, temp_files};
use rexpect::process::WaitStatus;
use rexpect::session::{Options, PtySession, spawn_with_options};
use std::fs;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tempfile::TempDir;

/// How long any one expected output may take (generous: a loaded 2-core
/// machine builds and tests in parallel).
const EXPECT_TIMEOUT: Duration = Duration::from_secs(60);

/// `ioe` on a pseudo-terminal; the process is killed on drop.
struct Repl {
    pty: PtySession,
}

impl Repl {
    /// `ioe ARGS` in folder `work`, with HOME and XDG_STATE_HOME at `state`.
    fn start(work: &Path, state: &Path, args: &[&str]) -> Repl {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .args(args)
            .current_dir(work)
            .env("HOME", state)
            .env("XDG_STATE_HOME", state);
        Repl::spawn(command)
    }

    /// Runs `command` on a pseudo-terminal and waits for the banner.
    fn spawn(mut command: Command) -> Repl {
        command.env("TERM", "xterm").env("NO_COLOR", "1");
        let options = Options::default()
            .timeout_ms(Some(EXPECT_TIMEOUT.as_millis() as u64))
            .strip_ansi_escape_codes(true);
        let pty = spawn_with_options(command, options).expect("start ioe on a pty");
        let mut repl = Repl { pty };
        repl.expect("Ctrl-D leaves.");
        repl
    }

    /// Waits for `text` in the output; returns what came before it.
    fn expect(&mut self, text: &str) -> String {
        self.pty
            .exp_string(text)
            .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"))
    }

    /// Types `keys` (no Enter).
    fn keys(&mut self, keys: &str) {
        self.pty.send(keys).expect("type on the pty");
        self.pty.flush().expect("flush the pty");
    }

    /// Types `line` and Enter.
    fn line(&mut self, line: &str) {
        self.keys(&format!("{line}\r"));
    }

    /// Waits for the prompt of a session with `addr` (or none).
    fn prompt(&mut self, addr: Option<SocketAddr>) {
        match addr {
            Some(addr) => self.expect(&format!("ioe {addr}> ")),
            None => self.expect("ioe> "),
        };
    }

    /// Connects with the command form and waits for the new prompt.
    fn connect(&mut self, addr: SocketAddr) {
        self.line(&format!("CONNECT,{},{}", addr.ip(), addr.port()));
        self.expect(&format!("connected to {addr}"));
        self.prompt(Some(addr));
    }

    /// Types `QUIT` and waits for the process to exit; returns its status.
    fn quit(mut self) -> i32 {
        self.line("QUIT");
        self.pty.exp_eof().expect("the REPL ends after QUIT");
        match self.pty.process().wait().expect("wait for ioe") {
            WaitStatus::Exited(_, code) => code,
            other => panic!("ioe ended with {other:?}"),
        }
    }
}

/// A folder to work in and one for the user's state (history).
struct Folders {
    work: TempDir,
    state: TempDir,
}

impl Folders {
    fn new() -> Folders {
        Folders {
            work: TempDir::new().unwrap(),
            state: TempDir::new().unwrap(),
        }
    }

    fn work(&self) -> &Path {
        self.work.path()
    }

    /// `ioe repl ARGS` on a pseudo-terminal.
    fn repl(&self, args: &[&str]) -> Repl {
        let args: Vec<&str> = ["repl"].iter().chain(args).copied().collect();
        Repl::start(self.work.path(), self.state.path(), &args)
    }
}

#[test]
fn connect_list_download_and_upload_at_the_prompt() {
    let server = TestServer::start();
    let download = pseudo_random(7, 500_000);
    put(server.root(), "data/big.bin", &download);
    put(server.root(), "notes.txt", b"notes");
    let folders = Folders::new();
    let upload = pseudo_random(8, 123_457);
    put(folders.work(), "mine.bin", &upload);

    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr());

    repl.line("LIST");
    let table = repl.expect("1 file, 1 folder");
    assert!(
        table.contains("kind  size  modified (UTC)    name"),
        "{table}"
    );
    assert!(table.contains("data/"), "{table}");
    assert!(table.contains("notes.txt"), "{table}");
    repl.prompt(Some(server.addr()));

    repl.line("READ,data/big.bin");
    repl.expect("received `data/big.bin` (500000 bytes)");
    repl.prompt(Some(server.addr()));
    assert_eq!(
        fs::read(folders.work().join("data/big.bin")).unwrap(),
        download
    );

    repl.line("write,mine.bin");
    repl.expect("sent `mine.bin` (123457 bytes)");
    repl.prompt(Some(server.addr()));
    assert_eq!(fs::read(server.root().join("mine.bin")).unwrap(), upload);

    // Rhai on the session the command form opened
    repl.line("list().len()");
    repl.expect("3\r\n");
    repl.prompt(Some(server.addr()));

    repl.line("BYE");
    repl.expect(&format!("closed the session with {}", server.addr()));
    repl.prompt(None);
    repl.line("LIST");
    repl.expect("connect to a server first");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
    assert!(temp_files(folders.work()).is_empty());
}

#[test]
fn pasted_lines_run_one_by_one_and_stop_at_a_failure() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"first");
    put(server.root(), "b.txt", b"second");
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);

    // a terminal's bracketed paste: the lines arrive as one piece of text
    let connect = format!("CONNECT,{},{}", server.addr().ip(), server.addr().port());
    repl.keys(&format!(
        "\x1b[200~{connect}\rLIST\rlet n = read(\"a.txt\");\rn + 1\x1b[201~\r"
    ));
    repl.expect("2 files, 0 folders");
    repl.expect("6\r\n");
    repl.prompt(Some(server.addr()));
    assert_eq!(fs::read(folders.work().join("a.txt")).unwrap(), b"first");

    repl.keys("\x1b[200~READ,missing.txt\rREAD,b.txt\rn\x1b[201~\r");
    repl.expect("server said: no such file or folder");
    // the user learns that the rest of the paste did not run
    repl.expect("the 2 pasted entries after it did not run");
    repl.prompt(Some(server.addr()));
    repl.line("n");
    repl.expect("5\r\n");
    assert!(
        !folders.work().join("b.txt").exists(),
        "ran past the failure"
    );
    assert_eq!(repl.quit(), 0);
}

#[test]
fn tab_completes_remote_names_and_local_paths() {
    let server = TestServer::start();
    let report = pseudo_random(9, 70_000);
    put(server.root(), "report-2026.pdf", &report);
    put(server.root(), "readme.txt", b"read me!\n");
    put(server.root(), "zeta/inner.txt", b"inner");
    let folders = Folders::new();
    put(folders.work(), "local-upload.bin", b"from the work folder");

    let mut repl = folders.repl(&["--connect", &server.addr().to_string()]);
    repl.prompt(Some(server.addr()));

    // the command form: `rep` completes to the one remote name it starts
    repl.keys("READ,rep\t");
    repl.expect("report-2026.pdf");
    repl.line("");
    repl.expect("received `report-2026.pdf` (70000 bytes)");
    repl.prompt(Some(server.addr()));
    assert_eq!(
        fs::read(folders.work().join("report-2026.pdf")).unwrap(),
        report
    );

    // inside read(" … the string is completed and closed
    repl.keys("read(\"rea\t");
    repl.expect("readme.txt\"");
    repl.line(")");
    repl.expect("9\r\n");
    repl.prompt(Some(server.addr()));
    assert_eq!(
        fs::read(folders.work().join("readme.txt")).unwrap(),
        b"read me!\n"
    );

    // folders complete with a slash, then their own entries
    repl.keys("READ,ze\t");
    repl.expect("zeta/");
    repl.keys("\t");
    repl.expect("zeta/inner.txt");
    repl.line("");
    repl.expect("received `zeta/inner.txt` (5 bytes)");
    repl.prompt(Some(server.addr()));

    // local paths after WRITE,
    repl.keys("WRITE,local-\t");
    repl.expect("local-upload.bin");
    repl.line("");
    repl.expect("sent `local-upload.bin` (20 bytes)");
    repl.prompt(Some(server.addr()));
    assert_eq!(
        fs::read(server.root().join("local-upload.bin")).unwrap(),
        b"from the work folder"
    );
    assert_eq!(repl.quit(), 0);
}

#[test]
fn an_unfinished_block_continues_on_the_next_line() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"aaa");
    put(server.root(), "b.txt", b"bb");
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr());

    // Each entry prints something, so the test knows it ran before typing
    // the next one (keys typed while a line runs may be lost, as in any
    // line editor).
    repl.line("for f in list() {");
    repl.line("  print(`${f.name} has ${f.size} bytes`);");
    repl.line("}");
    let before = repl.expect("b.txt has 2 bytes");
    assert!(before.contains("a.txt has 3 bytes\r\n"), "{before}");
    repl.prompt(Some(server.addr()));

    repl.line("fn total(files) {");
    repl.line("  let sum = 0;");
    repl.line("  for f in files { sum += f.size; }");
    repl.line("  sum");
    repl.line("} total(list())");
    let before = repl.expect("5\r\n");
    assert!(!before.contains("error"), "{before}");
    repl.prompt(Some(server.addr()));

    // a backtick string spans lines; `total` is still defined, and Tab
    // completes its name
    repl.keys("print(`total:\r${tot\t");
    repl.expect("total(");
    repl.keys("list())} bytes`)\r");
    let before = repl.expect("total:\r\n5 bytes");
    assert!(!before.contains("error"), "{before}");
    repl.prompt(Some(server.addr()));
    assert_eq!(repl.quit(), 0);
}

#[test]
fn ctrl_c_cancels_a_slow_download_and_keeps_the_prompt() {
    // 1 MB at 64 bytes every 20 ms would take minutes
    let server = TrickleServer::start(1_000_000, 64, Duration::from_millis(20));
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr);

    repl.line("READ,slow.bin");
    server.wait_for_body();
    repl.keys("\x03");
    let report = repl.expect("the session was closed");
    assert!(report.contains("interrupted"), "{report}");
    // the cancel closed the session: the prompt shows no server
    repl.prompt(None);
    assert!(!folders.work().join("slow.bin").exists());
    let left: Vec<PathBuf> = fs::read_dir(folders.work())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "nothing partial is kept");

    // the prompt still works
    repl.line("6 * 7");
    repl.expect("42\r\n");
    repl.prompt(None);
    // Ctrl-C also stops a script that never ends
    repl.line("print(\"looping\"); loop { }");
    repl.expect("looping\r\n");
    repl.keys("\x03");
    repl.expect("interrupted");
    repl.prompt(None);
    // Ctrl-C at the prompt clears the line instead of running it
    repl.keys("print(\"never\")\x03");
    repl.expect("^C");
    repl.prompt(None);
    repl.line("print(\"after\")");
    let before = repl.expect("after\r\n");
    assert!(!before.contains("never\r\n"), "{before}");
    assert_eq!(repl.quit(), 0);
}

/// Downloads a 20 KB file that trickles in over about two seconds, with
/// the REPL started with `args`; returns what the terminal showed meanwhile.
fn slow_download(args: &[&str]) -> String {
    let server = TrickleServer::start(20_000, 500, Duration::from_millis(50));
    let folders = Folders::new();
    let mut repl = folders.repl(args);
    repl.prompt(None);
    repl.connect(server.addr);
    repl.line("READ,slow.bin");
    let shown = repl.expect("received `slow.bin` (20000 bytes)");
    assert_eq!(
        fs::read(folders.work().join("slow.bin")).unwrap(),
        pseudo_random(3, 20_000)
    );
    assert_eq!(repl.quit(), 0);
    shown
}

#[test]
fn a_slow_transfer_shows_a_progress_bar_on_a_terminal() {
    let shown = slow_download(&[]);
    assert!(
        shown.contains("slow.bin [") && shown.contains("ETA"),
        "no progress bar in {shown:?}"
    );
}

#[test]
fn a_slow_upload_shows_a_progress_bar_while_it_runs() {
    // the server takes 64 KiB every 20 ms, so 12 MB need about 4 s, more
    // than the socket buffers can hide
    let server = TrickleServer::start(0, 64 * 1024, Duration::from_millis(20));
    let folders = Folders::new();
    put(folders.work(), "up.bin", &pseudo_random(12, 12_000_000));
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr);
    repl.line("WRITE,up.bin");
    let shown = repl.expect("sent `up.bin` (12000000 bytes)");
    assert!(
        shown.contains("up.bin [") && shown.contains("ETA"),
        "no progress bar in {shown:?}"
    );
    assert_eq!(repl.quit(), 0);
}

#[test]
fn no_progress_keeps_the_terminal_quiet() {
    let shown = slow_download(&["--no-progress"]);
    assert!(!shown.contains("ETA"), "a progress bar in {shown:?}");
}

#[test]
fn history_survives_a_restart() {
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.line("let marker = 40 + 2; marker");
    repl.expect("42\r\n");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
    let file = folders.state.path().join("ioe/history");
    let saved = fs::read_to_string(&file).expect("history file written");
    assert!(saved.contains("let marker = 40 + 2; marker"), "{saved}");

    // Up recalls the line from the last run (QUIT came after it)
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.keys("\x1b[A\x1b[A\r");
    repl.expect("42\r\n");
    repl.prompt(None);
    repl.line("marker * 2");
    repl.expect("84\r\n");
    assert_eq!(repl.quit(), 0);

    // without XDG_STATE_HOME the history lives under HOME
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .arg("repl")
        .current_dir(folders.work())
        .env("HOME", folders.state.path().join("home"))
        .env_remove("XDG_STATE_HOME");
    let mut repl = Repl::spawn(command);
    repl.prompt(None);
    repl.line("let at_home = 1; at_home");
    repl.expect("1\r\n");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
    let home_file = folders.state.path().join("home/.local/state/ioe/history");
    let saved = fs::read_to_string(home_file).expect("history under HOME");
    assert!(saved.contains("let at_home = 1; at_home"), "{saved}");

    // --no-history neither reads nor writes it, but Up still recalls the
    // lines of this run
    let before = fs::read_to_string(&file).unwrap();
    let mut repl = folders.repl(&["--no-history"]);
    repl.prompt(None);
    repl.line("let unrecorded = 7; unrecorded");
    repl.expect("7\r\n");
    repl.prompt(None);
    repl.keys("\x1b[A");
    repl.line(" * 2");
    repl.expect("14\r\n");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
    assert_eq!(fs::read_to_string(&file).unwrap(), before);
}

#[test]
fn a_history_file_that_cannot_be_written_is_reported_once() {
    let folders = Folders::new();
    // a file where the state folder should be: ioe/history cannot be made
    let blocker = put(folders.state.path(), "not-a-folder", b"");
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .arg("repl")
        .current_dir(folders.work())
        .env("XDG_STATE_HOME", &blocker);
    let mut repl = Repl::spawn(command);
    repl.prompt(None);
    repl.line("1 + 1");
    let first = repl.expect("2\r\n");
    assert!(
        first.contains("cannot save the history in"),
        "no warning: {first:?}"
    );
    repl.prompt(None);
    repl.line("2 + 2");
    let second = repl.expect("4\r\n");
    assert!(!second.contains("history"), "warned again: {second:?}");
    repl.prompt(None);
    // the lines are still recalled within the run
    repl.keys("\x1b[A");
    repl.line(" + 1");
    repl.expect("5\r\n");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
}

#[test]
fn ctrl_d_says_bye_and_exits_zero() {
    let server = TestServer::start();
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr());
    repl.keys("\x04");
    repl.expect(&format!("closed the session with {}", server.addr()));
    repl.pty.exp_eof().expect("the REPL ends on Ctrl-D");
    let status = repl.pty.process().wait().expect("wait for ioe");
    assert!(matches!(status, WaitStatus::Exited(_, 0)), "{status:?}");
}

#[test]
fn ctrl_c_cancels_a_slow_upload_and_keeps_the_prompt() {
    // the server takes 64 bytes every 20 ms, so the socket buffers fill up
    // and the upload blocks long before 16 MB went out
    let server = TrickleServer::start(0, 64, Duration::from_millis(20));
    let folders = Folders::new();
    let upload = pseudo_random(11, 16 * 1024 * 1024);
    put(folders.work(), "big.bin", &upload);
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr);

    repl.line("WRITE,big.bin");
    server.wait_for_body();
    repl.keys("\x03");
    let report = repl.expect("the session was closed");
    assert!(report.contains("interrupted"), "{report}");
    repl.prompt(None);
    repl.line("6 * 7");
    repl.expect("42\r\n");
    assert_eq!(fs::read(folders.work().join("big.bin")).unwrap(), upload);
    assert_eq!(repl.quit(), 0);
}

#[test]
fn a_signal_at_the_prompt_ends_ioe_and_restores_the_terminal() {
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    let terminal = repl.pty.process().get_file_handle().expect("the pty");
    let canonical = |fd: &std::fs::File| {
        let settings = rustix::termios::tcgetattr(fd).expect("terminal settings");
        settings
            .local_modes
            .contains(rustix::termios::LocalModes::ICANON)
    };
    assert!(!canonical(&terminal), "line editing runs in raw mode");

    repl.pty
        .process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .expect("send SIGTERM");
    repl.pty.exp_eof().expect("ioe ends");
    let status = repl.pty.process().wait().expect("wait for ioe");
    assert!(matches!(status, WaitStatus::Exited(_, 143)), "{status:?}");
    assert!(canonical(&terminal), "the terminal was left in raw mode");
}

#[test]
fn plain_ioe_at_a_terminal_opens_the_prompt() {
    let folders = Folders::new();
    let mut repl = Repl::start(folders.work(), folders.state.path(), &[]);
    repl.prompt(None);
    repl.line("help");
    repl.expect("CONNECT,host,port   open a session");
    repl.prompt(None);
    assert_eq!(repl.quit(), 0);
}

#[test]
fn ctrl_c_stops_a_request_the_server_never_answers() {
    // takes connections and requests but never replies
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    // a download asks for the file's mtime in the same round trip
    for (line, sent) in [
        ("LIST", &["LIST\n"][..]),
        ("READ,never.bin", &["STAT,never.bin\n", "READ,never.bin\n"]),
    ] {
        repl.connect(addr);
        let (stream, _) = silent.accept().expect("the REPL connects");
        stream.set_read_timeout(Some(EXPECT_TIMEOUT)).unwrap();
        let mut requests = BufReader::new(stream);
        repl.line(line);
        for expected in sent {
            let mut request = String::new();
            requests
                .read_line(&mut request)
                .expect("the request arrives");
            assert_eq!(request, *expected);
        }

        repl.keys("\x03");
        let report = repl.expect("the session was closed");
        assert!(report.contains("interrupted"), "{line}: {report}");
        repl.prompt(None);
    }
    assert_eq!(temp_files(folders.work()), Vec::<PathBuf>::new());
    repl.line("6 * 7");
    repl.expect("42\r\n");
    assert_eq!(repl.quit(), 0);
}

#[test]
fn tab_on_a_stalled_server_gives_up_and_leaves_the_session_alone() {
    // connections complete in the backlog, but nothing is ever answered
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let folders = Folders::new();
    let mut repl = folders.repl(&["--connect", &addr.to_string()]);
    repl.prompt(Some(addr));

    repl.keys("READ,re\t");
    // Ctrl-U drops the typed line once completion gave up
    repl.keys("\x15");
    repl.line("6 * 7");
    repl.expect("42\r\n");
    // Tab's failed listing did not close the session (quitting would wait
    // for the silent server's reply to BYE, so the REPL is killed instead)
    repl.prompt(Some(addr));
}

#[test]
fn tab_completion_over_tls_uses_the_sessions_pinned_fingerprint() {
    let keys = TempDir::new().unwrap();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (keys.path().join("cert.pem"), keys.path().join("key.pem"));
    fs::write(&cert, made.cert.pem()).unwrap();
    fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let identity = ioe::tls::server_identity(Some((&cert, &key)), keys.path()).unwrap();
    let fingerprint = identity.fingerprint.clone();
    let server = TestServer::start_with(|config| config.tls = Some(identity.config));
    // the side connection that lists for Tab speaks TLS with the same pin
    connect_then_tab_completes_the_report(
        &Folders::new(),
        &server,
        &format!(
            "connect(\"{}\", #{{tls: true, fingerprint: \"{fingerprint}\"}}); ()",
            server.addr()
        ),
    );
}

/// Puts `report-2026.pdf` (3 bytes) on `server`, runs `connect_code` in a
/// new REPL, and checks that Tab completes `READ,rep` to it and the READ
/// brings it: the side connection Tab lists with reached the server the
/// way the session did.
fn connect_then_tab_completes_the_report(
    folders: &Folders,
    server: &TestServer,
    connect_code: &str,
) {
    put(server.root(), "report-2026.pdf", b"pdf");
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.line(connect_code);
    repl.prompt(Some(server.addr()));
    repl.keys("READ,rep\t");
    repl.expect("report-2026.pdf");
    repl.line("");
    repl.expect("received `report-2026.pdf` (3 bytes)");
    repl.prompt(Some(server.addr()));
    assert_eq!(repl.quit(), 0);
}

#[test]
fn tab_completion_on_a_server_with_tokens_authenticates_with_the_sessions_token() {
    let keys = TempDir::new().unwrap();
    let file = keys.path().join("tokens");
    let grant = ioe::auth::Grant {
        label: "tab".into(),
        access: ioe::auth::Access::ReadOnly,
        folder: None,
    };
    let token = ioe::auth::add(&file, &grant).unwrap();
    let tokens = ioe::auth::TokenFile::load(&file).unwrap();
    let server = TestServer::start_with(|config| config.auth = Some(std::sync::Arc::new(tokens)));
    let folders = Folders::new();
    // the side connection that lists for Tab sends the same token
    connect_then_tab_completes_the_report(
        &folders,
        &server,
        &format!(
            "connect(\"{}\", #{{token: \"{token}\"}}); ()",
            server.addr()
        ),
    );
    // the line with the token was kept out of the history file
    let saved = fs::read_to_string(folders.state.path().join("ioe/history")).unwrap();
    assert!(saved.contains("READ,report-2026.pdf"), "{saved}");
    assert!(!saved.contains(&token[4..]), "{saved}");
}

#[test]
fn a_folder_completed_with_tab_lists_and_so_does_the_root_by_name() {
    let server = TestServer::start();
    put(server.root(), "inbox/a.txt", b"a");
    let folders = Folders::new();
    let mut repl = folders.repl(&["--connect", &server.addr().to_string()]);
    repl.prompt(Some(server.addr()));

    // Tab completes the folder with its slash; the call takes it as it is
    repl.keys("list(\"inb\t");
    repl.expect("inbox/");
    repl.line("\").map(|e| e.name)");
    let shown = repl.expect("[\"inbox/a.txt\"]\r\n");
    assert!(!shown.contains("error"), "{shown}");
    repl.prompt(Some(server.addr()));

    repl.line("list(\".\").len() + list(\"\").len()");
    repl.expect("2\r\n");
    repl.prompt(Some(server.addr()));
    assert_eq!(repl.quit(), 0);
}

/// What a terminal `cols` wide shows after `output`: one string per row.
/// Understands what `ioe` and the line editor write around a progress
/// bar: text (wrapping at the right edge only when the next character
/// comes, as terminals do), CR, LF, erase in line (`ESC [ K`, `ESC [ 2 K`)
/// and cursor up (`ESC [ n A`); other escape sequences are skipped.
fn screen(output: &str, cols: usize) -> Vec<String> {
    let mut rows: Vec<Vec<char>> = vec![Vec::new()];
    let (mut row, mut col, mut pending_wrap) = (0usize, 0usize, false);
    let mut chars = output.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => (col, pending_wrap) = (0, false),
            '\n' => (row, pending_wrap) = (row + 1, false),
            '\x1b' => {
                if chars.peek() != Some(&'[') {
                    chars.next();
                    continue;
                }
                chars.next();
                let mut params = String::new();
                let mut last = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        last = c;
                        break;
                    }
                    params.push(c);
                }
                let line = &mut rows[row];
                match (last, params.as_str()) {
                    ('K', "2") => line.clear(),
                    ('K', "" | "0") => line.truncate(col),
                    ('A', n) => row = row.saturating_sub(n.parse().unwrap_or(1)),
                    _ => {}
                }
            }
            c if c.is_control() => {}
            c => {
                if pending_wrap {
                    (row, col, pending_wrap) = (row + 1, 0, false);
                }
                while rows.len() <= row {
                    rows.push(Vec::new());
                }
                let line = &mut rows[row];
                if line.len() <= col {
                    line.resize(col + 1, ' ');
                }
                line[col] = c;
                if col + 1 == cols {
                    pending_wrap = true;
                } else {
                    col += 1;
                }
            }
        }
        while rows.len() <= row {
            rows.push(Vec::new());
        }
    }
    rows.into_iter()
        .map(|r| r.into_iter().collect::<String>().trim_end().to_string())
        .collect()
}

#[test]
fn the_screen_model_wraps_and_erases_as_a_terminal_does() {
    assert_eq!(screen("abcd^C\r\x1b[2Kx", 4), ["abcd", "x"]);
    assert_eq!(screen("ab^C\r\x1b[2Kx", 8), ["x"]);
    assert_eq!(screen("abc\r\nde\x1b[1A\r\x1b[2K", 8), ["", "de"]);
}

#[test]
fn ctrl_c_erases_the_progress_bar() {
    // 1 MB at 64 bytes every 20 ms would take minutes
    let server = TrickleServer::start(1_000_000, 64, Duration::from_millis(20));
    let folders = Folders::new();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["repl", "--no-history"])
        .current_dir(folders.work())
        .env("HOME", folders.state.path())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let options = Options::default()
        .timeout_ms(Some(EXPECT_TIMEOUT.as_millis() as u64))
        .strip_ansi_escape_codes(false);
    let mut pty = spawn_with_options(command, options).expect("start ioe on a pty");
    let terminal = pty.process().get_file_handle().expect("the pty");
    const COLS: usize = 100;
    let size = rustix::termios::Winsize {
        ws_row: 30,
        ws_col: COLS as u16,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    rustix::termios::tcsetwinsize(&terminal, size).expect("set the terminal size");
    pty.exp_string("ioe> ").expect("the prompt");
    pty.send_line(&format!("CONNECT,{}", server.addr))
        .expect("type");
    pty.exp_string(&format!("ioe {}> ", server.addr))
        .expect("connected");

    pty.send_line("READ,slow.bin").expect("type");
    let mut shown = pty.exp_string("ETA").expect("a progress bar");
    shown.push_str("ETA");
    // a real terminal echoes Ctrl-C as `^C` where the cursor is (rexpect
    // starts the child with echo off)
    let mut settings = rustix::termios::tcgetattr(&terminal).expect("terminal settings");
    settings.local_modes |=
        rustix::termios::LocalModes::ECHO | rustix::termios::LocalModes::ECHOCTL;
    rustix::termios::tcsetattr(&terminal, rustix::termios::OptionalActions::Now, &settings)
        .expect("echo on");
    pty.send("\x03").expect("Ctrl-C");
    pty.flush().expect("flush the pty");
    shown.push_str(&pty.exp_string("ioe> ").expect("the prompt again"));

    let rows = screen(&shown, COLS);
    assert!(
        !rows.iter().any(|r| r.contains("slow.bin [")),
        "the bar is still on screen: {rows:#?}"
    );
    assert!(
        rows.iter()
            .any(|r| r.starts_with("interrupted: read `slow.bin`: stopped by Ctrl-C (SIGINT)")),
        "{rows:#?}"
    );
}

#[test]
fn sigterm_during_a_transfer_stops_it_and_ends_ioe_naming_the_signal() {
    let server = TrickleServer::start(1_000_000, 64, Duration::from_millis(20));
    let folders = Folders::new();
    let mut repl = folders.repl(&[]);
    repl.prompt(None);
    repl.connect(server.addr);
    repl.line("READ,slow.bin");
    server.wait_for_body();
    repl.pty
        .process_mut()
        .signal(rexpect::process::Signal::SIGTERM)
        .expect("send SIGTERM");
    repl.expect("interrupted: read `slow.bin`: stopped by SIGTERM; nothing partial was kept");
    repl.pty.exp_eof().expect("ioe ends");
    let status = repl.pty.process().wait().expect("wait for ioe");
    assert!(matches!(status, WaitStatus::Exited(_, 143)), "{status:?}");
    assert!(!folders.work().join("slow.bin").exists());
    assert_eq!(temp_files(folders.work()), Vec::<PathBuf>::new());
}
