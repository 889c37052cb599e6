//! The client's trust in TLS servers, against real `ioe serve --tls`
//! processes, with the known-hosts file (`IOE_KNOWN_HOSTS`) and every state
//! folder in a temporary folder: first contact refused in a script with the
//! fingerprint and the one command that trusts it, `ioe trust` and
//! `ioe trust --forget`, a swapped certificate refused naming both
//! fingerprints, and a certificate authority made here vouching for
//! `localhost` and not for `127.0.0.1`; the REPL's question on first
//! contact; named servers (`servers.toml`) with their token files.

mod common;

use common::{Child, Run, finish};
use std::ffi::OsString;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use tempfile::TempDir;

/// `ioe serve --tls` on `listen`, its state folder in `state`, `args`
/// added: the child (killed on drop), its port and fingerprint.
struct TlsServer {
    _child: Child,
    _stdout: BufReader<ChildStdout>,
    port: u16,
    fingerprint: String,
}

fn serve_tls(root: &Path, state: &Path, listen: &str, args: &[&str]) -> TlsServer {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ioe"))
        .args(["serve", "--quiet", "--tls", "--listen", listen, "--root"])
        .arg(root)
        .args(args)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start ioe serve");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let child = Child(child);
    let mut lines = [String::new(), String::new()];
    for line in &mut lines {
        stdout.read_line(line).unwrap();
    }
    let last_word = |line: &str| line.trim_end().rsplit(' ').next().unwrap().to_string();
    let addr = last_word(&lines[0]);
    let port = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no address printed: {lines:?}"));
    let fingerprint = last_word(&lines[1]);
    assert!(fingerprint.starts_with("SHA256:"), "{lines:?}");
    TlsServer {
        _child: child,
        _stdout: stdout,
        port,
        fingerprint,
    }
}

/// Folders for one test, and the environment every client gets: its own
/// known-hosts file and state and config folders.
struct Env {
    tmp: TempDir,
    root: PathBuf,
    work: PathBuf,
    known_hosts: PathBuf,
}

impl Env {
    fn new() -> Env {
        let tmp = TempDir::new().unwrap();
        let root = tmp.path().join("root");
        let work = tmp.path().join("work");
        for dir in [&root, &work] {
            fs::create_dir(dir).unwrap();
        }
        let known_hosts = tmp.path().join("client-state/known_hosts");
        Env {
            tmp,
            root,
            work,
            known_hosts,
        }
    }

    /// A state folder of its own for a server named `name`.
    fn state(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    fn vars(&self) -> Vec<(&'static str, OsString)> {
        vec![
            ("IOE_KNOWN_HOSTS", self.known_hosts.clone().into()),
            (
                "XDG_STATE_HOME",
                self.tmp.path().join("client-state").into(),
            ),
            ("XDG_CONFIG_HOME", self.tmp.path().join("config").into()),
        ]
    }

    /// Runs `ioe ARGS` in the working folder with this environment.
    fn ioe(&self, args: &[&str], extra: &[(&str, &Path)]) -> Run {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .args(args)
            .current_dir(&self.work)
            .envs(self.vars())
            .envs(extra.iter().map(|(k, v)| (*k, v.as_os_str())))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = Child(command.spawn().expect("start ioe"));
        let input = child.0.stdin.take().unwrap();
        finish(child, std::thread::spawn(move || drop(input)))
    }

    /// Runs `connect_code`, then lists the root: `Ok(names)` or
    /// `Err((kind, message))` of the error thrown.
    fn connect(&self, connect_code: &str) -> Result<String, (String, String)> {
        self.connect_with(connect_code, &[])
    }

    fn connect_with(
        &self,
        connect_code: &str,
        extra: &[(&str, &Path)],
    ) -> Result<String, (String, String)> {
        let code = format!(
            "try {{ {connect_code}; let names = list().map(|e| e.name); print(`ok ${{names}}`); }} \
             catch (e) {{ print(e.kind); print(e.message); }}"
        );
        let run = self.ioe(&["run", "--no-progress", "-e", &code], extra);
        assert_eq!(run.code, Some(0), "{run:?}");
        match run.stdout.strip_prefix("ok ") {
            Some(names) => Ok(names.trim_end().to_string()),
            None => {
                let (kind, message) = run.stdout.split_once('\n').unwrap_or_default();
                Err((kind.to_string(), message.trim_end().to_string()))
            }
        }
    }
}

/// The `ioe trust …` command a refusal message ends with, as words.
fn trust_command(message: &str) -> Vec<String> {
    let at = message
        .rfind("ioe trust ")
        .unwrap_or_else(|| panic!("no `ioe trust` in: {message}"));
    message[at..]
        .split_whitespace()
        .skip(1)
        .map(str::to_string)
        .collect()
}

#[test]
fn first_contact_is_refused_with_the_command_that_trusts_it_then_accepted() {
    let env = Env::new();
    fs::write(env.root.join("here.txt"), "x").unwrap();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let fp = &server.fingerprint;

    let (kind, message) = env
        .connect(&format!("connect(\"tls://{addr}\")"))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!("Its fingerprint is {fp};")),
        "{message}"
    );
    assert!(
        message.ends_with(&format!("trust it with: ioe trust tls://{addr} {fp}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("`{}`", env.known_hosts.display())),
        "{message}"
    );
    assert!(!env.known_hosts.exists(), "nothing is written by a refusal");
    // the options map without a fingerprint is refused the same way
    let (_, refused) = env
        .connect(&format!("connect(\"{addr}\", #{{tls: true}})"))
        .unwrap_err();
    assert_eq!(refused, message);

    let words = trust_command(&message);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let run = env.ioe(&words, &[]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "ioe: trusted {addr} {fp} (added as line 1 of {})\n",
            env.known_hosts.display()
        )
    );
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        format!("{addr} {fp}\n")
    );
    // the same with the options map, and again: nothing more is written
    assert_eq!(
        env.connect(&format!("connect(\"{addr}\", #{{tls: true}})")),
        Ok("[\"here.txt\"]".to_string())
    );
    let again = env.ioe(&words, &[]);
    assert_eq!(again.code, Some(0), "{again:?}");
    assert!(
        again.stdout.contains("is trusted already (line 1"),
        "{again:?}"
    );
    assert_eq!(
        fs::read_to_string(&env.known_hosts)
            .unwrap()
            .lines()
            .count(),
        1
    );
}

#[test]
fn a_swapped_certificate_is_refused_naming_both_then_forget_and_trust_again() {
    let env = Env::new();
    let first = serve_tls(&env.root, &env.state("first"), "127.0.0.1:0", &[]);
    let port = first.port;
    let addr = format!("127.0.0.1:{port}");
    let old = first.fingerprint.clone();
    let trusted = env.ioe(&["trust", &format!("tls://{addr}"), &old], &[]);
    assert_eq!(trusted.code, Some(0), "{trusted:?}");
    fs::write(&env.known_hosts, {
        let mut text = "# servers I trust\n".to_string();
        text.push_str(&fs::read_to_string(&env.known_hosts).unwrap());
        text
    })
    .unwrap();
    assert!(env.connect(&format!("connect(\"tls://{addr}\")")).is_ok());
    drop(first);

    // the same address, another self-signed certificate
    let second = serve_tls(&env.root, &env.state("second"), &addr, &[]);
    let new = &second.fingerprint;
    assert_ne!(&old, new);
    let (kind, message) = env
        .connect(&format!("connect(\"tls://{addr}\")"))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!(
            "the known-hosts file `{}` line 2 trusts {old} for {addr}, but the server showed {new}",
            env.known_hosts.display()
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("`ioe trust --forget {addr}`")),
        "{message}"
    );
    // trusting the new one over the old is refused the same way
    let clash = env.ioe(&["trust", &addr, new], &[]);
    assert_eq!(clash.code, Some(1), "{clash:?}");
    assert!(
        clash.stderr.contains(&format!("ioe trust --forget {addr}")),
        "{clash:?}"
    );

    let forgot = env.ioe(&["trust", "--forget", &addr], &[]);
    assert_eq!(forgot.code, Some(0), "{forgot:?}");
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        "# servers I trust\n"
    );
    let (_, message) = env
        .connect(&format!("connect(\"tls://{addr}\")"))
        .unwrap_err();
    assert!(
        message.contains(&format!("Its fingerprint is {new};")),
        "{message}"
    );
    let words = trust_command(&message);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    assert_eq!(env.ioe(&words, &[]).code, Some(0));
    assert_eq!(
        env.connect(&format!("connect(\"tls://{addr}\")")),
        Ok("[]".into())
    );
    // forgetting what is not there says so
    let nothing = env.ioe(&["trust", "--forget", "elsewhere:1"], &[]);
    assert_eq!(nothing.code, Some(1), "{nothing:?}");
    assert!(nothing.stderr.contains("nothing to forget"), "{nothing:?}");
}

#[test]
fn a_pinned_fingerprint_wins_over_the_known_hosts_file() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let fp = &server.fingerprint;
    assert_eq!(env.ioe(&["trust", &addr, fp], &[]).code, Some(0));
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (_, message) = env
        .connect(&format!(
            "connect(\"tls://{addr}\", #{{fingerprint: \"{wrong}\"}})"
        ))
        .unwrap_err();
    assert!(
        message.contains(&format!("expected {wrong}, the server showed {fp}")),
        "{message}"
    );
}

#[test]
fn a_bad_known_hosts_line_is_named() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    fs::create_dir_all(env.known_hosts.parent().unwrap()).unwrap();
    fs::write(&env.known_hosts, "# mine\nhost:1 SHA256:short\n").unwrap();
    let (kind, message) = env
        .connect(&format!("connect(\"tls://127.0.0.1:{}\")", server.port))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!(
            "the known-hosts file `{}` line 2: `SHA256:short` is not a valid SHA-256 fingerprint: it has 5 characters",
            env.known_hosts.display()
        )),
        "{message}"
    );
}

#[test]
fn a_host_that_would_break_the_known_hosts_file_is_not_trusted() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let fp = &server.fingerprint;
    // a host with a space (or a newline) would write a line that makes every
    // later TLS connect fail
    for host in ["tls://a b:1", "tls://x\nlocalhost:1"] {
        let run = env.ioe(&["trust", host, fp], &[]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains("a host cannot hold"), "{run:?}");
        assert!(!env.known_hosts.exists(), "{host:?}");
    }
    let addr = format!("127.0.0.1:{}", server.port);
    assert_eq!(env.ioe(&["trust", &addr, fp], &[]).code, Some(0));
    assert_eq!(
        env.connect(&format!("connect(\"tls://{addr}\")")),
        Ok("[]".into())
    );
}

/// A certificate authority, and a server certificate it signed for
/// `localhost` only: the PEM files `ca.pem`, `cert.pem`, `key.pem` in `dir`.
fn authority_and_server_cert(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    let paths = ["ca.pem", "cert.pem", "key.pem"].map(|name| dir.join(name));
    fs::write(&paths[0], ca.pem()).unwrap();
    fs::write(&paths[1], cert.pem()).unwrap();
    fs::write(&paths[2], key.serialize_pem()).unwrap();
    let [ca, cert, key] = paths;
    (ca, cert, key)
}

#[test]
fn a_certificate_an_authority_signed_is_accepted_by_its_name_only() {
    let env = Env::new();
    let (ca, cert, key) = authority_and_server_cert(env.tmp.path());
    let server = serve_tls(
        &env.root,
        &env.state("server"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let port = server.port;
    let ca = ca.display();
    // by the name it is for, with the CA file: no known-hosts line needed
    assert_eq!(
        env.connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{ca}\"}})"
        )),
        Ok("[]".into())
    );
    assert!(!env.known_hosts.exists());
    // without the CA file, the system's authorities do not know it
    let (_, message) = env
        .connect(&format!("connect(\"tls://localhost:{port}\")"))
        .unwrap_err();
    assert!(
        message.contains("no certificate authority vouches for it"),
        "{message}"
    );
    // by another name: refused, saying the name does not match
    let (kind, message) = env
        .connect(&format!(
            "connect(\"tls://127.0.0.1:{port}\", #{{ca_file: \"{ca}\"}})"
        ))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!(
            "signed by a trusted authority, but the name `127.0.0.1` does not match it: \
             it is for localhost. Connect by a name it is for (such as tls://localhost:{port})"
        )),
        "{message}"
    );
    assert!(
        message.ends_with(&format!(
            "ioe trust tls://127.0.0.1:{port} {}",
            server.fingerprint
        )),
        "{message}"
    );
    // SSL_CERT_FILE replaces the system's authorities
    let ca_path = env.tmp.path().join("ca.pem");
    assert_eq!(
        env.connect_with(
            &format!("connect(\"tls://localhost:{port}\")"),
            &[("SSL_CERT_FILE", &ca_path)]
        ),
        Ok("[]".into())
    );
    // an authority's word holds over an older known-hosts line
    let old = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    assert_eq!(
        env.ioe(&["trust", &format!("localhost:{port}"), old], &[])
            .code,
        Some(0)
    );
    assert_eq!(
        env.connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{ca}\"}})"
        )),
        Ok("[]".into())
    );
    // a pinned fingerprint refuses even a certificate an authority vouches for
    let (_, message) = env
        .connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{ca}\", fingerprint: \"{old}\"}})"
        ))
        .unwrap_err();
    assert!(
        message.contains(&format!(
            "expected {old}, the server showed {}",
            server.fingerprint
        )),
        "{message}"
    );
    // a CA file others may write is refused
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&ca_path, fs::Permissions::from_mode(0o666)).unwrap();
    let (kind, message) = env
        .connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{ca}\"}})"
        ))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!(
            "the CA file `{ca}` is writable by other users (mode 0666)"
        )),
        "{message}"
    );
    fs::set_permissions(&ca_path, fs::Permissions::from_mode(0o644)).unwrap();
    // a CA file needs TLS
    let (kind, message) = env
        .connect(&format!(
            "connect(\"localhost:{port}\", #{{ca_file: \"{ca}\"}})"
        ))
        .unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(
        message.ends_with(&format!(
            "a CA file needs TLS; add `tls: true` or write `tls://localhost:{port}`"
        )),
        "{message}"
    );
    // a CA file without a certificate is named
    let empty = env.tmp.path().join("empty.pem");
    fs::File::create(&empty)
        .unwrap()
        .write_all(b"nothing")
        .unwrap();
    let (_, message) = env
        .connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{}\"}})",
            empty.display()
        ))
        .unwrap_err();
    assert!(
        message.contains(&format!(
            "the CA file `{}` holds no usable PEM certificate",
            empty.display()
        )),
        "{message}"
    );
}

/// `ioe repl ARGS` on a pseudo-terminal with the test's environment; the
/// process is killed on drop.
fn repl(env: &Env, args: &[&str]) -> rexpect::session::PtySession {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .arg("repl")
        .arg("--no-history")
        .args(args)
        .current_dir(&env.work)
        .envs(env.vars())
        .env("HOME", env.tmp.path())
        .env("TERM", "xterm")
        .env("NO_COLOR", "1");
    let options = rexpect::session::Options::default()
        .timeout_ms(Some(60_000))
        .strip_ansi_escape_codes(true);
    let mut pty = rexpect::session::spawn_with_options(command, options).expect("start ioe");
    pty.exp_string("Ctrl-D leaves.").unwrap();
    pty
}

#[test]
fn the_repl_asks_on_first_contact_and_records_a_yes() {
    let env = Env::new();
    fs::write(env.root.join("here.txt"), "x").unwrap();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let fp = &server.fingerprint;

    let mut pty = repl(&env, &["--connect", &format!("tls://{addr}")]);
    pty.exp_string(&format!("Its fingerprint is {fp}")).unwrap();
    pty.exp_string("and connect? (y/N) ").unwrap();
    pty.send_line("n").unwrap();
    pty.exp_string("the server's certificate is not trusted")
        .unwrap();
    pty.exp_string("ioe> ").unwrap();
    assert!(!env.known_hosts.exists(), "a no records nothing");

    // the command form asks again; yes records the line and connects
    pty.send_line(&format!("CONNECT,tls://127.0.0.1,{}", server.port))
        .unwrap();
    pty.exp_string(&format!("Its fingerprint is {fp}")).unwrap();
    pty.exp_string("and connect? (y/N) ").unwrap();
    pty.send_line("y").unwrap();
    pty.exp_string(&format!("connected to {addr} over TLS"))
        .unwrap();
    pty.exp_string(&format!("ioe {addr}> ")).unwrap();
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        format!("{addr} {fp}\n")
    );
    pty.send_line("LIST").unwrap();
    pty.exp_string("here.txt").unwrap();
    // Tab completion's side connection is trusted the same way, unasked
    pty.send("READ,he\t").unwrap();
    pty.flush().unwrap();
    pty.exp_string("READ,here.txt").unwrap();
    pty.send("\r").unwrap();
    pty.flush().unwrap();
    pty.exp_string("received `here.txt`").unwrap();
    assert_eq!(fs::read_to_string(env.work.join("here.txt")).unwrap(), "x");
    // known now: connecting again asks nothing
    pty.send_line(&format!("connect(\"tls://{addr}\"); print(\"again\")"))
        .unwrap();
    let before = pty.exp_string("again").unwrap();
    assert!(!before.contains("(y/N)"), "{before}");
    pty.send_line("QUIT").unwrap();
    pty.exp_eof().unwrap();
}

#[test]
fn piped_input_does_not_ask_and_fails_like_a_script() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let addr = format!("127.0.0.1:{}", server.port);
    let run = env.ioe(&["repl", "--connect", &format!("tls://{addr}")], &[]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(!run.stdout.contains("(y/N)"), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "trust it with: ioe trust tls://{addr} {}",
            server.fingerprint
        )),
        "{run:?}"
    );
    assert!(!env.known_hosts.exists());
}

/// Writes the servers file `servers.toml` in the test's config folder.
fn servers_file(env: &Env, text: &str) {
    let dir = env.tmp.path().join("config/ioe");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("servers.toml"), text).unwrap();
}

#[test]
fn a_named_server_connects_everywhere_and_the_call_wins() {
    let env = Env::new();
    fs::write(env.root.join("named.txt"), "x").unwrap();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let port = server.port;
    let fp = &server.fingerprint;
    servers_file(
        &env,
        &format!(
            "# my servers\n[backup]\naddress = \"tls://127.0.0.1:{port}\"\n\
             fingerprint = \"{fp}\"\n"
        ),
    );
    assert_eq!(
        env.connect("connect(\"backup\")"),
        Ok("[\"named.txt\"]".into())
    );
    // the call's options win over the file's
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (_, message) = env
        .connect(&format!(
            "connect(\"backup\", #{{fingerprint: \"{wrong}\"}})"
        ))
        .unwrap_err();
    assert!(
        message.contains(&format!("expected {wrong}, the server showed {fp}")),
        "{message}"
    );
    // `CONNECT,backup` and `--connect backup`, from a pipe
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["repl", "--connect", "backup"])
        .current_dir(&env.work)
        .envs(env.vars())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = Child(command.spawn().unwrap());
    let mut input = child.0.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        input
            .write_all(b"LIST\nBYE\nCONNECT,backup\nLIST\n")
            .unwrap();
    });
    let run = finish(child, feeder);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout
            .matches(&format!("connected to 127.0.0.1:{port} over TLS"))
            .count(),
        2,
        "{run:?}"
    );
    assert_eq!(run.stdout.matches("named.txt").count(), 2, "{run:?}");
    // `ioe trust` takes the name too
    let trusted = env.ioe(&["trust", "backup", fp], &[]);
    assert_eq!(trusted.code, Some(0), "{trusted:?}");
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        format!("127.0.0.1:{port} {fp}\n")
    );
    // a name the file lacks is a host name as before
    let (_, message) = env.connect("connect(\"nosuchname\")").unwrap_err();
    assert!(
        message.contains("connect to `nosuchname:7070`"),
        "{message}"
    );
    // IOE_CONFIG names another file; a mistake in it is named
    let other = env.tmp.path().join("other.toml");
    fs::write(&other, "[backup]\naddres = \"x\"\n").unwrap();
    let (kind, message) = env
        .connect_with("connect(\"backup\")", &[("IOE_CONFIG", &other)])
        .unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(
        message.contains(&format!(
            "the servers file `{}` is not valid",
            other.display()
        )) && message.contains("unknown field `addres`"),
        "{message}"
    );
}

#[test]
fn parallel_sessions_and_known_hosts_trust_need_no_pin() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let addr = format!("127.0.0.1:{}", server.port);
    assert_eq!(
        env.ioe(&["trust", &addr, &server.fingerprint], &[]).code,
        Some(0)
    );
    let local = env.work.join("tree");
    fs::create_dir(&local).unwrap();
    for i in 0..12 {
        fs::write(local.join(format!("f{i}.txt")), format!("file {i}")).unwrap();
    }
    let code = format!(
        "connect(\"tls://{addr}\"); let r = push(\"tree\", \"tree\", #{{parallel: 4}}); \
         print(r.failed.len());"
    );
    let run = env.ioe(&["run", "--no-progress", "-e", &code], &[]);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "0\n"), "{run:?}");
    for i in 0..12 {
        assert_eq!(
            fs::read_to_string(env.root.join(format!("tree/f{i}.txt"))).unwrap(),
            format!("file {i}")
        );
    }
}

#[test]
fn a_named_server_authenticates_with_its_token_file() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::new();
    let tokens = env.tmp.path().join("tokens");
    let token = common::mint(&env.work, &tokens, "nightly", &[]);
    let token_file = env.tmp.path().join("config/ioe/backup.token");
    fs::create_dir_all(token_file.parent().unwrap()).unwrap();
    fs::write(&token_file, &token).unwrap();
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o600)).unwrap();
    let server = serve_tls(
        &env.root,
        &env.state("server"),
        "127.0.0.1:0",
        &["--auth", tokens.to_str().unwrap()],
    );
    servers_file(
        &env,
        &format!(
            "[backup]\naddress = \"tls://127.0.0.1:{}\"\nfingerprint = \"{}\"\n\
             token_file = \"backup.token\"\n",
            server.port, server.fingerprint
        ),
    );
    let code = "let s = connect(\"backup\"); print(s.identity); print(list().len());";
    let run = env.ioe(&["run", "--no-progress", "-e", code], &[]);
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "nightly\n0\n"),
        "{run:?}"
    );
    // the REPL says who the server takes it for
    let run = env.ioe(&["repl", "--connect", "backup"], &[]);
    assert!(
        run.stdout.contains(&format!(
            "connected to 127.0.0.1:{} over TLS as nightly",
            server.port
        )),
        "{run:?}"
    );
    // the file's token wins over IOE_TOKEN
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["run", "--no-progress", "-e", code])
        .current_dir(&env.work)
        .envs(env.vars())
        .env("IOE_TOKEN", "ioe_0000000000000000000000000000000000000000")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = finish(Child(command.spawn().unwrap()), std::thread::spawn(|| ()));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "nightly\n0\n"),
        "{run:?}"
    );
    // a token file others may read is refused before connecting
    fs::set_permissions(&token_file, fs::Permissions::from_mode(0o644)).unwrap();
    let (kind, message) = env.connect("connect(\"backup\")").unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(
        message.contains(&format!(
            "the token file `{}` is open to others (mode 0644); make it private with `chmod 600",
            token_file.display()
        )),
        "{message}"
    );
}

#[test]
fn a_named_server_without_a_token_file_is_not_sent_ioe_token() {
    let env = Env::new();
    let tokens = env.tmp.path().join("tokens");
    let token = common::mint(&env.work, &tokens, "for-the-other-server", &[]);
    // this server's admin would learn the token meant for another server
    let server = serve_tls(
        &env.root,
        &env.state("server"),
        "127.0.0.1:0",
        &["--auth", tokens.to_str().unwrap()],
    );
    servers_file(
        &env,
        &format!(
            "[mirror]\naddress = \"tls://127.0.0.1:{}\"\nfingerprint = \"{}\"\n",
            server.port, server.fingerprint
        ),
    );
    let with_env_token = |code: &str| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .args(["run", "--no-progress", "-e", code])
            .current_dir(&env.work)
            .envs(env.vars())
            .env("IOE_TOKEN", &token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        finish(Child(command.spawn().unwrap()), std::thread::spawn(|| ()))
    };
    let run = with_env_token(
        "let s = connect(\"mirror\"); print(s.identity); \
         try { list(); } catch (e) { print(e.message); }",
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut lines = run.stdout.lines();
    assert_eq!(lines.next(), Some(""), "{run:?}");
    let refused = lines.next().unwrap_or_default();
    let file = env.tmp.path().join("config/ioe/servers.toml");
    assert!(
        refused.contains(&format!(
            "authentication required: `mirror` (127.0.0.1:{}) takes tokens",
            server.port
        )) && refused.contains(&format!(
            "add `token_file = \"…\"` to `[mirror]` in {}",
            file.display()
        )) && refused.contains("a server from the servers file takes only its `token_file`"),
        "{run:?}"
    );
    // an address typed out still takes the variable (cron jobs)
    let run = with_env_token(&format!(
        "let s = connect(\"tls://127.0.0.1:{}\", #{{fingerprint: \"{}\"}}); print(s.identity);",
        server.port, server.fingerprint
    ));
    assert_eq!(
        (run.code, run.stdout.as_str()),
        (Some(0), "for-the-other-server\n"),
        "{run:?}"
    );
}

#[test]
fn an_expired_certificate_is_refused_by_an_authority_but_a_pin_ignores_dates() {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, date_time_ymd};
    let env = Env::new();
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = date_time_ymd(2001, 1, 1);
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let [ca_file, cert_file, key_file] =
        ["ca.pem", "cert.pem", "key.pem"].map(|name| env.tmp.path().join(name));
    fs::write(&ca_file, ca.pem()).unwrap();
    fs::write(&cert_file, cert.pem()).unwrap();
    fs::write(&key_file, key.serialize_pem()).unwrap();
    let server = serve_tls(
        &env.root,
        &env.state("server"),
        "127.0.0.1:0",
        &[
            "--tls-cert",
            cert_file.to_str().unwrap(),
            "--tls-key",
            key_file.to_str().unwrap(),
        ],
    );
    let (port, fp) = (server.port, &server.fingerprint);
    let ca = ca_file.display();
    let (kind, message) = env
        .connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{ca_file: \"{ca}\"}})"
        ))
        .unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains("no certificate authority vouches for it (an authority's check said")
            && message.to_lowercase().contains("expired"),
        "{message}"
    );
    // the fingerprint is the whole trust of a pin (documented, as ssh)
    assert_eq!(
        env.connect(&format!(
            "connect(\"tls://localhost:{port}\", #{{fingerprint: \"{fp}\"}})"
        )),
        Ok("[]".into())
    );
}

#[test]
fn relative_xdg_folders_are_ignored_as_the_spec_says() {
    let env = Env::new();
    let home = env.tmp.path().join("home");
    fs::create_dir(&home).unwrap();
    // a relative folder would put the known-hosts file under whatever folder
    // ioe runs in (one a download may have filled)
    let fp = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let run = finish(
        Child(
            Command::new(env!("CARGO_BIN_EXE_ioe"))
                .args(["trust", "host.example:1", fp])
                .current_dir(&env.work)
                .env_remove("IOE_KNOWN_HOSTS")
                .env("XDG_STATE_HOME", "state")
                .env("HOME", &home)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ),
        std::thread::spawn(|| ()),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(!env.work.join("state").exists(), "{run:?}");
    assert_eq!(
        fs::read_to_string(home.join(".local/state/ioe/known_hosts")).unwrap(),
        format!("host.example:1 {fp}\n")
    );
    // so is a relative XDG_CONFIG_HOME: a servers file in the working
    // folder does not say where `mirror` is
    fs::create_dir_all(env.work.join("config/ioe")).unwrap();
    fs::write(
        env.work.join("config/ioe/servers.toml"),
        "[mirror]\naddress = \"tls://elsewhere.example:9\"\n",
    )
    .unwrap();
    let run = finish(
        Child(
            Command::new(env!("CARGO_BIN_EXE_ioe"))
                .args(["trust", "mirror", fp])
                .current_dir(&env.work)
                .env("IOE_KNOWN_HOSTS", &env.known_hosts)
                .env("XDG_CONFIG_HOME", "config")
                .env("HOME", &home)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        ),
        std::thread::spawn(|| ()),
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        format!("mirror:7070 {fp}\n")
    );
}

#[test]
fn an_unknown_scheme_is_refused_everywhere_and_never_trusted() {
    let env = Env::new();
    fs::write(env.root.join("a.txt"), "x").unwrap();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let (port, fp) = (server.port, &server.fingerprint);
    let forms = "write tls://host:port (TLS) or host:port (plain TCP)";
    for (typed, why) in [
        (format!("tsl://127.0.0.1:{port}"), "unknown scheme `tsl://`"),
        (format!("tcp://127.0.0.1:{port}"), "unknown scheme `tcp://`"),
        (
            format!("https://127.0.0.1:{port}"),
            "unknown scheme `https://`",
        ),
        (format!("tls:/127.0.0.1:{port}"), "a host cannot hold '/'"),
    ] {
        let (kind, message) = env.connect(&format!("connect(\"{typed}\")")).unwrap_err();
        assert_eq!(kind, "bad_argument", "{typed}: {message}");
        assert!(
            message.contains(why) && message.contains(forms) && !message.contains('['),
            "{typed}: {message}"
        );
        // `ioe trust` writes nothing
        let run = env.ioe(&["trust", &typed, fp], &[]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert!(run.stderr.contains(why), "{run:?}");
        assert!(!env.known_hosts.exists(), "{typed}");
    }
    // `ioe repl --connect` refuses it too
    let run = env.ioe(
        &["repl", "--connect", &format!("tsl://127.0.0.1:{port}")],
        &[],
    );
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(run.stderr.contains("unknown scheme `tsl://`"), "{run:?}");
    // so does the servers file, naming itself
    servers_file(
        &env,
        &format!("[backup]\naddress = \"tsl://127.0.0.1:{port}\"\n"),
    );
    let (kind, message) = env.connect("connect(\"backup\")").unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(
        message.contains("servers.toml") && message.contains("unknown scheme `tsl://`"),
        "{message}"
    );
    // `TLS://` is the scheme in another case, as in URLs
    assert_eq!(
        env.connect(&format!(
            "connect(\"TLS://127.0.0.1:{port}\", #{{fingerprint: \"{fp}\"}})"
        )),
        Ok("[\"a.txt\"]".into())
    );
    // the scheme before a host given apart from its port
    assert_eq!(
        env.ioe(&["trust", &format!("127.0.0.1:{port}"), fp], &[])
            .code,
        Some(0)
    );
    assert_eq!(
        env.connect(&format!("connect(\"tls://127.0.0.1\", {port})")),
        Ok("[\"a.txt\"]".into())
    );
    let (kind, message) = env
        .connect(&format!("connect(\"tsl://127.0.0.1\", {port})"))
        .unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(message.contains("unknown scheme `tsl://`"), "{message}");
    assert_eq!(
        fs::read_to_string(&env.known_hosts).unwrap(),
        format!("127.0.0.1:{port} {fp}\n")
    );
}

#[test]
fn refusals_say_what_to_change_where() {
    let env = Env::new();
    let server = serve_tls(&env.root, &env.state("server"), "127.0.0.1:0", &[]);
    let (port, fp) = (server.port, &server.fingerprint);
    let file = env.tmp.path().join("config/ioe/servers.toml");
    servers_file(&env, &format!("[backup]\naddress = \"127.0.0.1:{port}\"\n"));
    // plain text to a TLS server: say how to ask for TLS
    let (_, message) = env
        .connect(&format!("connect(\"127.0.0.1:{port}\")"))
        .unwrap_err();
    assert!(
        message.contains("this server requires TLS; closing")
            && message.ends_with(&format!("connect with tls://127.0.0.1:{port}")),
        "{message}"
    );
    let (_, message) = env.connect("connect(\"backup\")").unwrap_err();
    assert!(
        message.contains(&format!(
            "add `tls://` to the `address` of `[backup]` in {} (`address = \"tls://127.0.0.1:{port}\"`)",
            file.display()
        )),
        "{message}"
    );
    // a name the file lacks that is no host either
    let (kind, message) = env.connect("connect(\"backpu\")").unwrap_err();
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains("cannot resolve it")
            && message.ends_with(&format!(
                "(no server named `backpu` in {} either)",
                file.display()
            )),
        "{message}"
    );
    // one character wrong in a fingerprint: which one
    let wrong = format!("{}!{}", &fp[..10], &fp[11..]);
    let run = env.ioe(&["trust", &format!("127.0.0.1:{port}"), &wrong], &[]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(
        run.stderr
            .contains("is not a valid SHA-256 fingerprint: character 4 after `SHA256:`, '!'")
            && run.stderr.contains("43 base64 characters"),
        "{run:?}"
    );
    let short = &fp[..fp.len() - 1];
    let (kind, message) = env
        .connect(&format!(
            "connect(\"tls://127.0.0.1:{port}\", #{{fingerprint: \"{short}\"}})"
        ))
        .unwrap_err();
    assert_eq!(kind, "bad_argument");
    assert!(
        message.contains("it has 42 characters after `SHA256:`, not 43"),
        "{message}"
    );
    assert!(!env.known_hosts.exists());
}
