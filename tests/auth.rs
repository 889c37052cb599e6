//! Token authentication end to end: `ioe token new` mints tokens into a
//! file that holds only digests, `ioe serve --auth` refuses requests until
//! `AUTH` succeeds, closes after one wrong token or a silent start, grants
//! read-only access and sub-folders as roots, and refuses to start
//! unprotected on a non-loopback address; clients send the token from
//! `connect`'s options or `IOE_TOKEN`, over TLS or on loopback only.

mod common;

use common::{Child, Raw, Run, ServeProcess, TestServer, finish, put, run_ioe, spawn_ioe};
use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

/// Folders for one test: the served root, a working folder (token file,
/// scripts) and a state folder for TLS, side by side.
struct Dirs {
    _tmp: TempDir,
    root: PathBuf,
    work: PathBuf,
    state: PathBuf,
}

impl Dirs {
    fn new() -> Dirs {
        let tmp = TempDir::new().unwrap();
        let [root, work, state] = ["root", "work", "state"].map(|name| tmp.path().join(name));
        for dir in [&root, &work, &state] {
            fs::create_dir(dir).unwrap();
        }
        Dirs {
            _tmp: tmp,
            root,
            work,
            state,
        }
    }

    fn tokens(&self) -> PathBuf {
        self.work.join("tokens")
    }

    fn tokens_arg(&self) -> String {
        self.tokens().to_str().unwrap().to_string()
    }

    /// Mints a token with `ioe token new --auth … --label LABEL EXTRA…`.
    fn mint(&self, label: &str, extra: &[&str]) -> String {
        common::mint(&self.work, &self.tokens(), label, extra)
    }

    /// `ioe serve --auth tokens ARGS…`, logging.
    fn serve(&self, args: &[&str]) -> ServeProcess {
        let tokens = self.tokens_arg();
        let mut all = vec!["--auth", tokens.as_str()];
        all.extend_from_slice(args);
        ServeProcess::start_logging(&self.root, &all)
    }
}

/// A raw client that authenticated with `token`; returns it and the reply.
fn authenticated(server: &ServeProcess, token: &str) -> (Raw, String) {
    let mut raw = Raw::connect(server.addr());
    raw.send(format!("AUTH,{token}\n").as_bytes());
    let reply = raw.line();
    (raw, reply)
}

#[test]
fn a_wrong_token_is_refused_once_and_the_connection_closed() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    put(&d.root, "a.txt", b"hello");
    let server = d.serve(&[]);
    let mut raw = Raw::connect(server.addr());
    raw.send(b"AUTH,ioe_0000000000000000000000000000000000000000000000000\n");
    assert_eq!(raw.line(), "ERROR: authentication failed; closing\n");
    // no second try on this connection: the right token gets nothing
    raw.send(format!("AUTH,{token}\nLIST\n").as_bytes());
    raw.expect_closed();
    server.wait_for_log(&["AUTH -> refused: no such token; closing"]);
    // a new connection with the right token works, and is told its label
    let (mut raw, reply) = authenticated(&server, &token);
    assert_eq!(reply, "OK alice\n");
    assert_eq!(raw.read_file("a.txt"), b"hello");
}

#[test]
fn before_auth_only_features_auth_and_bye_are_answered() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    put(&d.root, "a.txt", b"hello");
    let server = d.serve(&[]);
    let mut raw = Raw::connect(server.addr());
    for request in ["LIST\n", "READ,a.txt\n", "STAT,a.txt\n", "DELETE,a.txt\n"] {
        raw.send(request.as_bytes());
        assert_eq!(raw.line(), "ERROR: authentication required\n", "{request}");
    }
    // a refused upload's body is read and dropped: the session stays in step
    assert_eq!(
        raw.upload("new.txt", b"12345\nLIST\n"),
        "ERROR: authentication required\n"
    );
    raw.send(b"FEATURES\n");
    let features = raw.list_reply();
    assert!(features.contains(&"auth\n".to_string()), "{features:?}");
    raw.send(format!("AUTH,{token}\n").as_bytes());
    assert_eq!(raw.line(), "OK alice\n");
    assert_eq!(raw.list_names(), ["a.txt"]);
    raw.send(b"BYE\n");
    assert_eq!(raw.line(), "OK bye\n");
    assert!(!d.root.join("new.txt").exists());
    assert_eq!(fs::read(d.root.join("a.txt")).unwrap(), b"hello");
    // BYE needs no token either
    let mut raw = Raw::connect(server.addr());
    raw.send(b"BYE\n");
    assert_eq!(raw.line(), "OK bye\n");
}

#[test]
fn a_read_only_token_cannot_change_anything() {
    let d = Dirs::new();
    let reader = d.mint("reader", &["--read-only"]);
    put(&d.root, "keep.txt", b"original");
    let server = d.serve(&[]);
    let (mut raw, reply) = authenticated(&server, &reader);
    assert_eq!(reply, "OK reader\n");
    let refused = "ERROR: the token `reader` is read-only\n";
    assert_eq!(raw.upload("new.txt", b"data"), refused);
    assert_eq!(raw.upload("keep.txt", b"overwritten"), refused);
    for request in ["DELETE,keep.txt\n", "MKDIR,d\n", "SETTIME,0,keep.txt\n"] {
        raw.send(request.as_bytes());
        assert_eq!(raw.line(), refused, "{request}");
    }
    assert_eq!(raw.read_file("keep.txt"), b"original");
    raw.send(b"FEATURES\n");
    let features = raw.list_reply().concat();
    assert!(features.contains("read-only=1"), "{features}");
    assert!(!d.root.join("new.txt").exists());
    assert!(!d.root.join("d").exists());
    assert_eq!(fs::read(d.root.join("keep.txt")).unwrap(), b"original");
    // the label is in the server's log lines for this connection
    server.wait_for_log(&["[reader]", "DELETE keep.txt", "read-only"]);
    // a script is told how to get a token that may change things
    put(&d.work, "up.txt", b"data");
    let code = format!(
        r#"connect("{}", #{{token: "{reader}"}});
           try {{ write("up.txt"); }} catch (e) {{ print(e.message); }}"#,
        server.addr()
    );
    let run = eval_with_token(&d.work, &code, None);
    assert!(
        run.stdout.contains(
            "server said: the token `reader` is read-only; use a read-write \
             token (`ioe token new` without --read-only)"
        ),
        "{run:?}"
    );
    assert!(!d.root.join("up.txt").exists());
}

#[test]
fn a_sub_folder_token_is_confined_to_it() {
    let d = Dirs::new();
    let token = d.mint("photos", &["--folder", "shared/photos"]);
    put(&d.root, "secret.txt", b"not for photos");
    put(&d.root, "shared/photos/a.jpg", b"jpeg");
    put(&d.root, "shared/photos/2024/b.jpg", b"jpeg 2");
    put(&d.root, "shared/other.txt", b"sibling");
    let photos = d.root.join("shared/photos");
    symlink("../../secret.txt", photos.join("up")).unwrap();
    symlink(d.root.join("secret.txt"), photos.join("absolute")).unwrap();
    symlink("2024", photos.join("year")).unwrap();
    let server = d.serve(&[]);
    let (mut raw, reply) = authenticated(&server, &token);
    assert_eq!(reply, "OK photos\n");
    // names in replies are relative to the sub-folder; links out are hidden
    assert_eq!(raw.list_names(), ["2024", "a.jpg", "year"]);
    raw.send(b"WALK\n");
    assert_eq!(raw.line(), "OK\n");
    let mut walked = Vec::new();
    for _ in 0..10 {
        let line = raw.line();
        if line.starts_with("END") {
            assert_eq!(line, "END 4\n");
            break;
        }
        walked.push(line.trim_end().rsplit(',').next().unwrap().to_string());
    }
    assert_eq!(walked, ["2024", "2024/b.jpg", "a.jpg", "year"]);
    assert_eq!(raw.read_file("year/b.jpg"), b"jpeg 2");
    for name in ["up", "absolute"] {
        raw.send(format!("READ,{name}\n").as_bytes());
        let reply = raw.line();
        assert_eq!(
            reply,
            format!("ERROR: `{name}` leads outside the server's root\n")
        );
    }
    raw.send(b"READ,../other.txt\n");
    assert!(raw.line().starts_with("ERROR: "));
    raw.send(b"STAT,../../secret.txt\n");
    assert!(raw.line().starts_with("ERROR: "));
    // HASH resolves names in the sub-folder too: a name of the root's own is
    // not found there, and the sub-folder's file is the one digested
    raw.send(b"HASH,sha256,secret.txt\n");
    assert!(raw.line().starts_with("ERROR: "), "a digest from outside");
    raw.send(b"HASH,sha256,a.jpg\n");
    let digest = ioe::digest::hash_reader(
        ioe::digest::Algorithm::Sha256,
        fs::File::open(photos.join("a.jpg")).unwrap(),
    )
    .unwrap();
    assert_eq!(raw.line(), format!("OK sha256 {digest}\n"));
    // an upload lands inside the sub-folder, under the name given
    assert_eq!(raw.upload("new.jpg", b"new"), "OK 3\n");
    assert_eq!(fs::read(photos.join("new.jpg")).unwrap(), b"new");
    assert!(!d.root.join("new.jpg").exists());
}

#[test]
fn a_silent_client_is_closed_after_the_auth_deadline() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let tokens = ioe::auth::TokenFile::load(&d.tokens()).unwrap();
    let server = TestServer::start_with(|config| {
        config.auth = Some(Arc::new(tokens));
        config.auth_time = Duration::from_millis(300);
    });
    let mut raw = server.raw();
    // a request that needs no token does not extend the deadline
    raw.send(b"FEATURES\n");
    raw.list_reply();
    assert_eq!(
        String::from_utf8(raw.read_to_close()).unwrap(),
        "ERROR: no authentication within 0.3 s; closing\n"
    );
}

#[test]
fn tokens_never_appear_in_the_file_or_the_log_and_revoking_needs_no_restart() {
    let d = Dirs::new();
    let kept = d.mint("kept", &[]);
    let revoked = d.mint("gone", &["--read-only", "--folder", "sub"]);
    fs::create_dir(d.root.join("sub")).unwrap();
    let file = fs::read_to_string(d.tokens()).unwrap();
    for token in [&kept, &revoked] {
        assert!(!file.contains(&token[4..]), "{file}");
    }
    let tokens = d.tokens_arg();
    let listed = run_ioe(&d.work, &["token", "list", "--auth", &tokens], "");
    assert_eq!(listed.stdout, "kept\trw\t\ngone\tro\tsub\n", "{listed:?}");
    let duplicate = run_ioe(
        &d.work,
        &["token", "new", "--auth", &tokens, "--label", "kept"],
        "",
    );
    assert_eq!(duplicate.code, Some(1), "{duplicate:?}");
    assert!(duplicate.stderr.contains("`kept` is in"), "{duplicate:?}");
    let server = d.serve(&[]);
    let (_raw, reply) = authenticated(&server, &revoked);
    assert_eq!(reply, "OK gone\n");
    let run = run_ioe(&d.work, &["token", "revoke", "--auth", &tokens, "gone"], "");
    assert_eq!(run.code, Some(0), "{run:?}");
    let (mut raw, reply) = authenticated(&server, &revoked);
    assert_eq!(reply, "ERROR: authentication failed; closing\n");
    raw.expect_closed();
    let (mut raw, reply) = authenticated(&server, &kept);
    assert_eq!(reply, "OK kept\n");
    raw.send(b"AUTH,ioe_again\n");
    assert_eq!(raw.line(), "ERROR: already authenticated as `kept`\n");
    server.wait_for_log(&["token file", "read again, 1 token"]);
    server.wait_for_log(&["[kept] AUTH"]);
    let log = server.log();
    for token in [&kept, &revoked] {
        assert!(!log.contains(&token[4..]), "{log}");
    }
}

#[test]
fn a_malformed_token_file_stops_the_server_at_start_naming_the_line() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let mut text = fs::read_to_string(d.tokens()).unwrap();
    text.push_str("bob rw ioe_plaintext_token\n");
    fs::write(d.tokens(), text).unwrap();
    let tokens = d.tokens_arg();
    let root = d.root.to_str().unwrap();
    let args = [
        "serve",
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--auth",
        &tokens,
    ];
    let run = run_ioe(&d.work, &args, "");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "{tokens}:3: `ioe_plaintext_token` is not a digest"
        )),
        "{run:?}"
    );
}

#[test]
fn legacy_mode_and_tokens_are_refused_together() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let tokens = d.tokens_arg();
    let root = d.root.to_str().unwrap();
    let args = [
        "serve",
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--auth",
        &tokens,
        "--legacy",
    ];
    let run = run_ioe(&d.work, &args, "");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("--legacy and --auth cannot go together: the original design's clients"),
        "{run:?}"
    );
}

#[test]
fn a_token_file_inside_the_served_folder_is_refused() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    // the admin keeps the token file in the folder being served: a client
    // with write access could replace it with tokens of its own
    let inside = d.root.join("tokens");
    fs::copy(d.tokens(), &inside).unwrap();
    let root = d.root.to_str().unwrap();
    let args = [
        "serve",
        "--root",
        root,
        "--listen",
        "127.0.0.1:0",
        "--auth",
        "tokens",
    ];
    let run = run_ioe(&d.root, &args, "");
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "--auth: the token file `{}` is inside the served folder `{}`",
            inside.canonicalize().unwrap().display(),
            d.root.canonicalize().unwrap().display()
        )) && run.stderr.contains("move it elsewhere"),
        "{run:?}"
    );
}

/// `ioe serve --listen 0.0.0.0:0 ARGS…`: the run when it exits at once,
/// or the running server and the first line it printed.
fn serve_on_any_address(d: &Dirs, args: &[&str]) -> Result<(Child, String), Run> {
    serve_on(d, "0.0.0.0:0", args)
}

/// `ioe serve --listen LISTEN ARGS…`, as [`serve_on_any_address`].
fn serve_on(d: &Dirs, listen: &str, args: &[&str]) -> Result<(Child, String), Run> {
    let root = d.root.to_str().unwrap();
    let mut all = vec!["serve", "--root", root, "--listen", listen, "--quiet"];
    all.extend_from_slice(args);
    let mut child = spawn_ioe(&d.work, &all);
    let stdout = child.0.stdout.take().unwrap();
    let mut first = String::new();
    let _ = BufReader::new(stdout).read_line(&mut first);
    if !first.is_empty() {
        return Ok((child, first));
    }
    let status = child.0.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.0.stderr.take().unwrap(), &mut stderr).unwrap();
    Err(Run {
        code: status.code(),
        stdout: String::new(),
        stderr,
    })
}

#[test]
fn a_non_loopback_address_needs_tls_and_auth_or_the_override() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let tokens = d.tokens_arg();
    for (args, missing) in [
        (vec![], "without --tls and --auth FILE"),
        (vec!["--auth", tokens.as_str()], "without --tls"),
    ] {
        let Err(run) = serve_on_any_address(&d, &args) else {
            panic!("the server started on 0.0.0.0 with {args:?}");
        };
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains(missing), "{run:?}");
        assert!(run.stderr.contains("--allow-unprotected"), "{run:?}");
    }
    // only what is missing is named, with the reason that fits
    let Err(run) = serve_on_any_address(&d, &["--auth", tokens.as_str()]) else {
        panic!("the server started on 0.0.0.0 without --tls");
    };
    assert!(
        run.stderr
            .contains("tokens and files would cross the network in clear text")
            && run.stderr.contains("Add --tls, listen")
            && !run.stderr.contains("--auth FILE"),
        "{run:?}"
    );
    let root = d.root.to_str().unwrap();
    let tls_only = Command::new(env!("CARGO_BIN_EXE_ioe"))
        .args([
            "serve",
            "--root",
            root,
            "--listen",
            "0.0.0.0:0",
            "--quiet",
            "--tls",
        ])
        .env("XDG_STATE_HOME", &d.state)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&tls_only.stderr);
    assert_eq!(tls_only.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("without --auth FILE: anyone who reaches it")
            && stderr.contains("Add --auth FILE (`ioe token new")
            && !stderr.contains("Add --tls"),
        "{stderr}"
    );
    let serving = serve_on_any_address(&d, &["--allow-unprotected"]).expect("it serves");
    let (child, line) = serving;
    let port: u16 = line.trim_end().rsplit(':').next().unwrap().parse().unwrap();
    assert!(line.starts_with("ioe: serving "), "{line}");
    let mut raw = Raw::connect(([127, 0, 0, 1], port).into());
    assert_eq!(raw.list_names(), Vec::<String>::new());
    drop(child);
}

#[test]
fn a_missing_token_file_is_refused_at_start() {
    let d = Dirs::new();
    let missing = d.work.join("nope");
    let run = run_ioe(
        &d.work,
        &[
            "serve",
            "--root",
            d.root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--auth",
            missing.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("cannot read the token file"), "{run:?}");
}

/// `ioe run -e CODE` in `dir` with `IOE_TOKEN` set to `token` (unset when
/// `None`).
fn eval_with_token(dir: &Path, code: &str, token: Option<&str>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["run", "--no-progress", "-e", code])
        .current_dir(dir)
        .env_remove("IOE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(token) = token {
        command.env("IOE_TOKEN", token);
    }
    let child = Child(command.spawn().expect("start ioe run"));
    finish(child, std::thread::spawn(|| {}))
}

/// `ioe serve --tls --auth tokens` with its state folder in `d.state`;
/// returns it and its certificate's fingerprint.
fn serve_tls(d: &Dirs) -> (ServeProcess, String) {
    let tokens = d.tokens_arg();
    let mut server = ServeProcess::start_with_env(
        &d.root,
        &["--tls", "--auth", &tokens],
        &[("XDG_STATE_HOME", d.state.as_os_str())],
    );
    let line = server.next_stdout_line();
    let fingerprint = line.rsplit(' ').next().unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{line}");
    (server, fingerprint)
}

#[test]
fn a_minted_token_works_over_tls_from_the_options_a_file_and_ioe_token() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    put(&d.root, "a.txt", b"hello");
    let (server, fingerprint) = serve_tls(&d);
    let addr = server.addr();
    let code = format!(
        r#"let s = connect("tls://{addr}", #{{fingerprint: "{fingerprint}", token: "{token}"}});
           print(s.identity); read("a.txt", "got.txt"); write("got.txt", "up.txt");"#
    );
    let run = eval_with_token(&d.work, &code, None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "alice\n"),
        "{run:?}"
    );
    assert_eq!(fs::read(d.work.join("got.txt")).unwrap(), b"hello");
    assert_eq!(fs::read(d.root.join("up.txt")).unwrap(), b"hello");
    fs::write(d.work.join("token"), format!("{token}\n")).unwrap();
    fs::set_permissions(d.work.join("token"), fs::Permissions::from_mode(0o600)).unwrap();
    let code = format!(
        r#"let s = connect("tls://{addr}", #{{fingerprint: "{fingerprint}", token_file: "token"}});
           print(s.identity); print(list().len());"#
    );
    let run = eval_with_token(&d.work, &code, None);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "alice\n2\n"),
        "{run:?}"
    );
    // a cron job keeps the token out of the script
    let code = format!(
        r#"let s = connect("tls://{addr}", #{{fingerprint: "{fingerprint}"}}); print(s.identity);"#
    );
    let run = eval_with_token(&d.work, &code, Some(&token));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "alice\n"),
        "{run:?}"
    );
}

#[test]
fn the_parallel_sessions_of_a_push_authenticate_too() {
    let d = Dirs::new();
    let token = d.mint("backup", &["--folder", "backups"]);
    fs::create_dir(d.root.join("backups")).unwrap();
    for i in 0..12 {
        put(
            &d.work,
            &format!("site/f{i:02}.txt"),
            format!("file {i}").as_bytes(),
        );
    }
    let (server, fingerprint) = serve_tls(&d);
    let addr = server.addr();
    let code = format!(
        r#"connect("tls://{addr}", #{{fingerprint: "{fingerprint}"}});
           let r = push("site", "www", #{{parallel: 4}});
           print(r.files); print(r.failed.len());"#
    );
    let run = eval_with_token(&d.work, &code, Some(&token));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "12\n0\n"),
        "{run:?}"
    );
    for i in 0..12 {
        let copied = fs::read(d.root.join(format!("backups/www/f{i:02}.txt"))).unwrap();
        assert_eq!(copied, format!("file {i}").as_bytes());
    }
}

/// The `kind` and `message` of the error `code` throws, with `IOE_TOKEN`
/// set to `token`.
fn thrown(dir: &Path, code: &str, token: Option<&str>) -> (String, String) {
    let code = format!(
        "try {{ {code}; print(\"no error\"); }} catch (e) {{ print(e.kind); print(e.message); }}"
    );
    let run = eval_with_token(dir, &code, token);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut lines = run.stdout.lines();
    let kind = lines.next().unwrap_or_default().to_string();
    (kind, lines.collect::<Vec<_>>().join("\n"))
}

#[test]
fn a_client_without_a_token_is_told_how_to_give_one() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let server = d.serve(&[]);
    let addr = server.addr();
    let (kind, message) = thrown(&d.work, &format!(r#"connect("{addr}"); list()"#), None);
    assert_eq!(kind, "refused");
    assert!(
        message.contains("server said: authentication required"),
        "{message}"
    );
    assert!(message.contains("token: "), "{message}");
    assert!(message.contains("IOE_TOKEN"), "{message}");
}

#[test]
fn a_refused_token_says_so_and_is_never_shown() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let server = d.serve(&[]);
    let addr = server.addr();
    let wrong = "ioe_5ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e75ec2e7";
    let (kind, message) = thrown(&d.work, &format!(r#"connect("{addr}")"#), Some(wrong));
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(
            "the server refused the token from the environment variable IOE_TOKEN \
             and closed the connection"
        ),
        "{message}"
    );
    let code = format!(r#"connect("{addr}", #{{token: "{wrong}"}})"#);
    let (kind, message) = thrown(&d.work, &code, None);
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains("refused the token from the option `token`"),
        "{message}"
    );
    assert!(!message.contains("5ec2e7"), "{message}");
    server.wait_for_log(&["AUTH -> refused"]);
    assert!(!server.log().contains("5ec2e7"), "{}", server.log());
}

#[test]
fn a_token_is_never_sent_in_clear_text_off_loopback() {
    let d = Dirs::new();
    // 192.0.2.1 is reserved for documentation: the client refuses before
    // connecting, so nothing is sent anywhere
    let code = r#"connect("192.0.2.1:7070", #{token: "ioe_0123"})"#;
    let (kind, message) = thrown(&d.work, code, None);
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(
            "refusing to send the token from the option `token` in clear text to \
             192.0.2.1:7070, which is not a loopback address; connect with tls://192.0.2.1:7070"
        ),
        "{message}"
    );
    let (kind, message) = thrown(&d.work, r#"connect("192.0.2.1", 7070)"#, Some("ioe_0123"));
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains("from the environment variable IOE_TOKEN in clear text"),
        "{message}"
    );
}

#[test]
fn a_token_for_a_server_that_takes_none_is_not_an_error() {
    let d = Dirs::new();
    put(&d.root, "a.txt", b"hello");
    let server = ServeProcess::start(&d.root, &[]);
    let addr = server.addr();
    let code = format!(r#"let s = connect("{addr}"); print(s.identity); print(list().len());"#);
    let run = eval_with_token(&d.work, &code, Some("ioe_0123"));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "\n1\n"),
        "{run:?}"
    );
}

#[test]
fn repl_connect_takes_the_token_from_ioe_token() {
    let d = Dirs::new();
    let token = d.mint("shell", &[]);
    put(&d.root, "listed.txt", b"x");
    let server = d.serve(&[]);
    let addr = server.addr().to_string();
    let repl = |token: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .args(["repl", "--no-history", "--connect", &addr])
            .current_dir(&d.work)
            .env_remove("IOE_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = token {
            command.env("IOE_TOKEN", token);
        }
        let mut child = Child(command.spawn().expect("start ioe repl"));
        let mut stdin = child.0.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, b"LIST\n");
        });
        finish(child, feeder)
    };
    let run = repl(Some(&token));
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.stdout.contains("listed.txt"), "{run:?}");
    let run = repl(None);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("authentication required"), "{run:?}");
    assert!(run.stderr.contains("IOE_TOKEN"), "{run:?}");
}

/// A server on `127.0.0.1:0` taking the tokens of `d` (one with at most
/// `max_connections`).
fn server_with_tokens(d: &Dirs, max_connections: usize) -> TestServer {
    let tokens = ioe::auth::TokenFile::load(&d.tokens()).unwrap();
    TestServer::start_with(|config| {
        config.auth = Some(Arc::new(tokens));
        config.max_connections = max_connections;
    })
}

#[test]
fn an_upload_before_auth_is_discarded_only_until_the_auth_deadline() {
    let d = Dirs::new();
    d.mint("alice", &[]);
    let tokens = ioe::auth::TokenFile::load(&d.tokens()).unwrap();
    let server = TestServer::start_with(|config| {
        config.auth = Some(Arc::new(tokens));
        config.auth_time = Duration::from_millis(300);
    });
    let mut raw = server.raw();
    // a body announced and never finished: dropping it must not keep the
    // connection (and its slot, busy in a request) past the deadline
    raw.send(b"WRITE,x.bin,1000000\n0123456789");
    assert_eq!(
        String::from_utf8(raw.read_to_close()).unwrap(),
        "ERROR: authentication required; closing, since no authentication came within 0.3 s\n"
    );
    assert!(!server.root().join("x.bin").exists());
    common::assert_no_temp_files(server.root());
}

#[test]
fn clients_without_a_token_cannot_push_out_an_authenticated_one() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    let server = server_with_tokens(&d, 3);
    let mut alice = server.raw();
    alice.send(format!("AUTH,{token}\n").as_bytes());
    assert_eq!(alice.line(), "OK alice\n");
    let mut idle = server.raw();
    idle.send(b"FEATURES\n");
    idle.list_reply();
    // one in the middle of dropping an upload's body: in a request, but
    // with nothing to lose
    let mut uploading = server.raw();
    uploading.send(b"WRITE,x.bin,1000000\n0123456789");
    // (the server marks a connection idle just after its reply goes out)
    std::thread::sleep(Duration::from_millis(50));
    // newcomers take the slots of those without a token (in either order),
    // not alice's, although she has been idle longest
    let mut newcomers = Vec::new();
    for _ in 0..2 {
        let mut newcomer = server.raw();
        newcomer.send(b"FEATURES\n");
        newcomer.list_reply();
        newcomers.push(newcomer);
    }
    let notice = String::from_utf8(idle.read_to_close()).unwrap();
    assert!(notice.starts_with("ERROR: idle for "), "{notice:?}");
    uploading.read_to_close();
    assert_eq!(alice.list_names(), Vec::<String>::new());
    assert!(!server.root().join("x.bin").exists());
}

#[test]
fn every_form_of_a_loopback_address_is_loopback_and_no_other() {
    let d = Dirs::new();
    for listen in ["[::]:0", "0.0.0.0:0"] {
        let Err(run) = serve_on(&d, listen, &[]) else {
            panic!("the server started unprotected on {listen}");
        };
        assert!(run.stderr.contains("not a loopback address"), "{run:?}");
    }
    // an IPv4-mapped IPv6 address of 127.0.0.1 takes only loopback clients
    for listen in ["127.0.0.1:0", "[::1]:0", "[::ffff:127.0.0.1]:0"] {
        let (child, line) = serve_on(&d, listen, &[])
            .unwrap_or_else(|run| panic!("refused to serve on {listen}: {run:?}"));
        assert!(line.starts_with("ioe: serving "), "{line}");
        drop(child);
    }
}

#[test]
fn a_mistyped_auth_line_does_not_put_its_token_in_the_log() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    let server = d.serve(&[]);
    let mut raw = Raw::connect(server.addr());
    // also a token pasted where a name goes, refused before AUTH
    let typos = [
        format!("AUTH {token}\n"),
        format!("auth,{token}\n"),
        format!("STAT,{token}\n"),
    ];
    for typo in typos {
        raw.send(typo.as_bytes());
        assert!(raw.line().starts_with("ERROR: "));
    }
    raw.send(b"BYE\n");
    assert_eq!(raw.line(), "OK bye\n");
    server.wait_for_log(&["BYE"]);
    let log = server.log();
    // the request is never shown; a reason that would quote it is not either
    let refused = log.matches("a line holding a token -> refused");
    assert_eq!(refused.count(), 3, "{log}");
    assert!(
        log.contains("a line holding a token -> refused (not logged)"),
        "{log}"
    );
    assert!(!log.contains(&token[4..20]), "{log}");
}

#[test]
fn a_sub_folder_swapped_for_a_link_or_recreated_while_served_stays_the_one_opened() {
    let d = Dirs::new();
    let token = d.mint("photos", &["--folder", "photos"]);
    put(&d.root, "photos/a.jpg", b"jpeg");
    put(&d.root, "private/secret.txt", b"secret");
    let server = d.serve(&[]);
    let (mut raw, reply) = authenticated(&server, &token);
    assert_eq!(reply, "OK photos\n");
    // swapped for a link to another folder: the session keeps its folder
    fs::rename(d.root.join("photos"), d.root.join("moved")).unwrap();
    symlink("private", d.root.join("photos")).unwrap();
    assert_eq!(raw.list_names(), ["a.jpg"]);
    raw.send(b"READ,secret.txt\n");
    assert!(raw.line().starts_with("ERROR: no such file"));
    // deleted and made again: nothing of the new one is reachable
    fs::remove_file(d.root.join("photos")).unwrap();
    fs::remove_dir_all(d.root.join("moved")).unwrap();
    put(&d.root, "photos/new.txt", b"new");
    assert_eq!(raw.list_names(), Vec::<String>::new());
    let refused = raw.upload("up.txt", b"up");
    assert!(refused.starts_with("ERROR: "), "{refused}");
    raw.send(b"READ,new.txt\n");
    assert!(raw.line().starts_with("ERROR: no such file"));
    assert!(!d.root.join("photos/up.txt").exists());
    assert!(!d.root.join("up.txt").exists());
    // a new session gets the folder there now
    let (mut raw, _) = authenticated(&server, &token);
    assert_eq!(raw.list_names(), ["new.txt"]);
}

/// `connect` to `addr` with `token_file: FILE`; prints the identity, or
/// the error's kind and message.
fn connect_with_token_file(d: &Dirs, addr: &str, file: &str) -> Run {
    let code = format!(
        r#"try {{ let s = connect("{addr}", #{{token_file: "{file}"}}); print(s.identity); }}
           catch (e) {{ print(e.kind); print(e.message); }}"#
    );
    let run = eval_with_token(&d.work, &code, None);
    assert_eq!(run.code, Some(0), "{run:?}");
    run
}

#[test]
fn a_token_file_must_be_private_or_a_pipe_and_is_read_up_to_4_kib() {
    let d = Dirs::new();
    let token = d.mint("alice", &[]);
    let server = d.serve(&[]);
    let addr = server.addr().to_string();
    let file = d.work.join("token");
    fs::write(&file, format!("{token}\n")).unwrap();
    // readable by others: refused as the servers file refuses it
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
    let run = connect_with_token_file(&d, &addr, "token");
    assert!(
        run.stdout.starts_with("bad_argument\n")
            && run.stdout.contains("is open to others (mode 0644)")
            && run.stdout.contains("chmod 600"),
        "{run:?}"
    );
    fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        connect_with_token_file(&d, &addr, "token").stdout,
        "alice\n"
    );
    // a device is not a token file, and an endless one is not read whole
    let run = connect_with_token_file(&d, &addr, "/dev/zero");
    assert!(
        run.stdout.starts_with("bad_argument\n") && run.stdout.contains("is not a file"),
        "{run:?}"
    );
    let big = d.work.join("big");
    fs::write(&big, vec![b'a'; 5000]).unwrap();
    fs::set_permissions(&big, fs::Permissions::from_mode(0o600)).unwrap();
    let run = connect_with_token_file(&d, &addr, "big");
    assert!(run.stdout.contains("holds more than 4096 bytes"), "{run:?}");
    // a pipe, as `<(pass show ioe)` gives, is read; an endless one up to the cap
    let pipe = d.work.join("pipe");
    let made = Command::new("mkfifo")
        .arg(&pipe)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    for (body, expected) in [
        (format!("{token}\n").into_bytes(), "alice\n"),
        (vec![b'a'; 1 << 20], "holds more than 4096 bytes"),
    ] {
        let writer_pipe = pipe.clone();
        let writer = std::thread::spawn(move || {
            let mut opened = fs::OpenOptions::new()
                .write(true)
                .open(writer_pipe)
                .unwrap();
            // the reader stops at the cap: a broken pipe then is expected
            let _ = std::io::Write::write_all(&mut opened, &body);
        });
        let run = connect_with_token_file(&d, &addr, "pipe");
        assert!(run.stdout.contains(expected), "{run:?}");
        writer.join().unwrap();
    }
}
