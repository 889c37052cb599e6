//! `ioe serve --tls` as a child process, with a temporary state folder:
//! another TLS implementation (`openssl s_client`) completes a `LIST`, a
//! plain client is told to use TLS, scripts connect with a pinned
//! fingerprint and are refused with the wrong one (trust without one:
//! tests/trust.rs), the
//! self-signed certificate is kept and reused (never under the served
//! folder, never open to others), given PEM files are served, and a
//! server replaying a pinned certificate without its key fails the
//! handshake (TLS 1.2 and 1.3).

mod common;

use common::{RUN_TIMEOUT, Raw, Run, ServeProcess, pseudo_random, put, run_ioe, wait_until};
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};
use tempfile::TempDir;

/// A TLS server on a fresh root, its state folder in `state`, with `args`
/// added; returns it and the fingerprint it printed.
fn serve_tls(root: &Path, state: &Path, args: &[&str]) -> (ServeProcess, String) {
    let mut all = vec!["--tls"];
    all.extend_from_slice(args);
    let mut server =
        ServeProcess::start_with_env(root, &all, &[("XDG_STATE_HOME", state.as_os_str())]);
    let line = server.next_stdout_line();
    let fingerprint = line
        .rsplit(' ')
        .next()
        .filter(|f| f.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint printed: {line:?}"))
        .to_string();
    (server, fingerprint)
}

/// Folders for one test: the served root, the state folder, and a working
/// folder for scripts.
struct Dirs {
    _tmp: TempDir,
    root: std::path::PathBuf,
    state: std::path::PathBuf,
    work: std::path::PathBuf,
}

fn dirs() -> Dirs {
    let tmp = TempDir::new().unwrap();
    let [root, state, work] = ["root", "state", "work"].map(|name| tmp.path().join(name));
    for dir in [&root, &state, &work] {
        fs::create_dir(dir).unwrap();
    }
    Dirs {
        _tmp: tmp,
        root,
        state,
        work,
    }
}

fn eval(dir: &Path, code: &str) -> Run {
    run_ioe(dir, &["run", "--no-progress", "-e", code], "")
}

/// The `kind` and `message` of the error `connect_code` throws, printed
/// by a script on two lines.
fn connect_error(dir: &Path, connect_code: &str) -> (String, String) {
    let code = format!(
        "try {{ {connect_code}; print(\"connected\"); }} \
         catch (e) {{ print(e.kind); print(e.message); }}"
    );
    let run = eval(dir, &code);
    assert_eq!(run.code, Some(0), "{run:?}");
    let mut lines = run.stdout.lines();
    let kind = lines.next().unwrap_or_default().to_string();
    let message = lines.collect::<Vec<_>>().join("\n");
    (kind, message)
}

#[test]
fn openssl_s_client_lists_an_empty_root() {
    let available = Command::new("openssl")
        .arg("version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("skipped: `openssl` is not on PATH (.ci/run installs it)");
        return;
    }
    let d = dirs();
    let (server, _) = serve_tls(&d.root, &d.state, &[]);
    let port = server.addr().port().to_string();
    let mut child = common::Child(
        Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &format!("127.0.0.1:{port}"),
                "-quiet",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start openssl"),
    );
    let mut input = child.0.stdin.take().unwrap();
    input.write_all(b"LIST\nBYE\n").unwrap();
    let mut stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let exited = wait_until(RUN_TIMEOUT, || child.0.try_wait().ok().flatten().is_some());
    assert!(exited, "openssl s_client did not finish");
    drop(input);
    assert_eq!(reader.join().unwrap(), "OK 0\nOK bye\n");
}

#[test]
fn a_plain_client_is_told_to_use_tls() {
    let d = dirs();
    let (server, _) = serve_tls(&d.root, &d.state, &[]);
    let mut raw = Raw::connect(server.addr());
    raw.send(b"LIST\n");
    assert_eq!(raw.line(), "ERROR: this server requires TLS; closing\n");
    raw.expect_closed();
}

#[test]
fn a_pinned_client_lists_reads_and_writes_byte_identical() {
    let d = dirs();
    let (server, fingerprint) = serve_tls(&d.root, &d.state, &[]);
    let data = pseudo_random(12, 3 * 1024 * 1024 + 17);
    put(&d.work, "up.bin", &data);
    let code = format!(
        "let s = connect(\"{}\", #{{tls: true, fingerprint: \"{fingerprint}\"}}); \
         sleep(0.3); print(s.is_open); \
         write(\"up.bin\", \"stored.bin\"); read(\"stored.bin\", \"down.bin\"); \
         for e in list() {{ print(`${{e.name}} ${{e.size}}`); }} print(s.is_open);",
        server.addr()
    );
    let run = eval(&d.work, &code);
    assert_eq!(run.code, Some(0), "{run:?}");
    // TLS 1.3 session tickets arrive after the handshake: not a reply
    assert_eq!(
        run.stdout,
        format!("true\nstored.bin {}\ntrue\n", data.len())
    );
    assert_eq!(fs::read(d.root.join("stored.bin")).unwrap(), data);
    assert_eq!(fs::read(d.work.join("down.bin")).unwrap(), data);
}

#[test]
fn a_wrong_fingerprint_is_refused_naming_both() {
    let d = dirs();
    let (server, fingerprint) = serve_tls(&d.root, &d.state, &[]);
    let wrong = "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let (kind, message) = connect_error(
        &d.work,
        &format!(
            "connect(\"{}\", #{{tls: true, fingerprint: \"{wrong}\"}})",
            server.addr()
        ),
    );
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains(&format!(
            "expected {wrong}, the server showed {fingerprint}"
        )),
        "{message}"
    );
    // it names the server, warns, and says how to pin the new one
    assert!(
        message.contains(&format!("pinned for {}", server.addr()))
            && message.contains("Someone may be posing as the server")
            && message.contains(&format!(
                "`fingerprint: \"{fingerprint}\"` in connect's options"
            )),
        "{message}"
    );
}

#[test]
fn a_tls_connect_to_a_plain_server_fails_clearly() {
    let d = dirs();
    let plain = ServeProcess::start(&d.root, &[]);
    let (kind, message) = connect_error(&d.work, &format!("connect(\"tls://{}\")", plain.addr()));
    assert_eq!(kind, "connect_failed");
    assert!(
        message.contains("is the server started with `--tls`?"),
        "{message}"
    );
}

#[test]
fn the_self_signed_certificate_is_kept_private_and_reused() {
    let d = dirs();
    let (first, fingerprint) = serve_tls(&d.root, &d.state, &[]);
    drop(first);
    let key = d.state.join("ioe/server-key.pem");
    let cert = d.state.join("ioe/server-cert.pem");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let cert_der = rustls::pki_types::pem::PemObject::from_pem_file(&cert)
        .map(|der: rustls::pki_types::CertificateDer| ioe::tls::fingerprint(&der))
        .unwrap();
    assert_eq!(cert_der, fingerprint);
    // nothing was written under the served folder
    assert_eq!(fs::read_dir(&d.root).unwrap().count(), 0);
    let (_second, again) = serve_tls(&d.root, &d.state, &[]);
    assert_eq!(again, fingerprint);
}

#[test]
fn given_certificate_files_are_served() {
    let d = dirs();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = d.work.join("cert.pem");
    let key = d.work.join("key.pem");
    fs::write(&cert, made.cert.pem()).unwrap();
    fs::write(&key, made.key_pair.serialize_pem()).unwrap();
    let expected = ioe::tls::fingerprint(made.cert.der());
    let args = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    let (server, fingerprint) = serve_tls(&d.root, &d.state, &args);
    assert_eq!(fingerprint, expected);
    // no self-signed certificate was made
    assert!(!d.state.join("ioe").exists());
    let code = format!(
        "connect(\"{}\", #{{tls: true, fingerprint: \"{expected}\"}}); print(list().len());",
        server.addr()
    );
    let run = eval(&d.work, &code);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "0\n"), "{run:?}");
}

#[test]
fn a_file_without_a_certificate_stops_the_server_naming_it() {
    let d = dirs();
    let cert = d.work.join("cert.pem");
    fs::write(&cert, "not a certificate").unwrap();
    let missing = d.work.join("nope.pem");
    let run = run_ioe(
        &d.work,
        &[
            "serve",
            "--root",
            d.root.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--tls",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            missing.to_str().unwrap(),
        ],
        "",
    );
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("cannot set up --tls"), "{run:?}");
    assert!(
        run.stderr
            .contains(&format!("`{}` holds no PEM certificate", cert.display())),
        "{run:?}"
    );
}

#[test]
fn a_silent_handshake_holds_no_slot_and_is_closed_by_its_deadline() {
    let d = dirs();
    let (server, fingerprint) = serve_tls(&d.root, &d.state, &["--max-connections", "1"]);
    let mut silent = Raw::connect(server.addr());
    // the one slot is free for a real client all the same
    let code = format!(
        "connect(\"{}\", #{{tls: true, fingerprint: \"{fingerprint}\"}}); print(list().len());",
        server.addr()
    );
    let run = eval(&d.work, &code);
    assert_eq!((run.code, run.stdout.as_str()), (Some(0), "0\n"), "{run:?}");
    silent.expect_closed();
    // alone, a silent client is closed by the 5 s handshake deadline, not
    // the 300 s idle timeout (Raw waits up to 10 s)
    let started = std::time::Instant::now();
    let mut alone = Raw::connect(server.addr());
    alone.expect_closed();
    assert!(started.elapsed() >= std::time::Duration::from_secs(4));
}

/// Runs `ioe serve --tls` on `root` with `XDG_STATE_HOME` set to `state`,
/// `args` added, expecting it to stop at start.
fn serve_refused(root: &Path, state: &Path, args: &[&str]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["serve", "--tls", "--listen", "127.0.0.1:0", "--root"])
        .arg(root)
        .args(args)
        .env("XDG_STATE_HOME", state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    common::finish(
        common::Child(command.spawn().expect("start ioe serve")),
        std::thread::spawn(|| ()),
    )
}

#[test]
fn a_state_folder_not_yet_made_inside_the_root_is_refused() {
    let d = dirs();
    // the state folder does not exist yet: it would be made inside the root
    let state = d.root.join("dot-state");
    let run = serve_refused(&d.root, &state, &[]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("is inside the served folder"),
        "{run:?}"
    );
    // no key was written where clients could download it
    assert_eq!(fs::read_dir(&d.root).unwrap().count(), 0);
}

#[test]
fn a_made_key_others_may_read_is_refused_at_start() {
    let d = dirs();
    let (first, _) = serve_tls(&d.root, &d.state, &[]);
    drop(first);
    let key = d.state.join("ioe/server-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let run = serve_refused(&d.root, &d.state, &[]);
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "the private key `{}` is open to others (mode 0644), who could pose as this \
             server; make it private with `chmod 600 {}`",
            key.display(),
            key.display()
        )),
        "{run:?}"
    );
    // the key is kept: clients trust its certificate
    assert!(key.exists());
}

#[test]
fn a_given_key_inside_the_served_folder_is_refused() {
    let d = dirs();
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // `ioe serve --tls --tls-cert cert.pem --tls-key key.pem` run in the
    // served folder (the default root is `.`)
    fs::write(d.root.join("cert.pem"), made.cert.pem()).unwrap();
    fs::write(d.root.join("key.pem"), made.key_pair.serialize_pem()).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["serve", "--tls", "--listen", "127.0.0.1:0"])
        .args(["--tls-cert", "cert.pem", "--tls-key", "key.pem"])
        .current_dir(&d.root)
        .env("XDG_STATE_HOME", &d.state)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let run = common::finish(
        common::Child(command.spawn().expect("start ioe serve")),
        std::thread::spawn(|| ()),
    );
    assert_ne!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "the private key `{}` is inside the served folder",
            d.root.canonicalize().unwrap().join("key.pem").display()
        )) && run.stderr.contains("could download it"),
        "{run:?}"
    );
}

/// A TLS server on 127.0.0.1 that shows `cert` but signs the handshake
/// with another key (a MITM replaying a trusted certificate), speaking
/// only `version`, for `connections` handshakes.
fn impostor(
    cert: rustls::pki_types::CertificateDer<'static>,
    version: &'static rustls::SupportedProtocolVersion,
    connections: usize,
) -> (std::net::SocketAddr, std::thread::JoinHandle<()>) {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::server::{ClientHello, ResolvesServerCert};
    use rustls::sign::CertifiedKey;
    use std::sync::Arc;
    #[derive(Debug)]
    struct Fixed(Arc<CertifiedKey>);
    impl ResolvesServerCert for Fixed {
        fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
            Some(Arc::clone(&self.0))
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let other = rcgen::KeyPair::generate().unwrap();
    let key = PrivateKeyDer::try_from(other.serialize_der()).unwrap();
    let signing = provider.key_provider.load_private_key(key).unwrap();
    let resolver = Fixed(Arc::new(CertifiedKey::new(vec![cert], signing)));
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver)),
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = std::thread::spawn(move || {
        for _ in 0..connections {
            let (mut tcp, _) = listener.accept().unwrap();
            tcp.set_read_timeout(Some(RUN_TIMEOUT)).unwrap();
            let mut conn = rustls::ServerConnection::new(Arc::clone(&config)).unwrap();
            for _ in 0..10 {
                if !conn.is_handshaking() || conn.complete_io(&mut tcp).is_err() {
                    break;
                }
            }
        }
    });
    (addr, handle)
}

#[test]
fn a_trusted_certificate_without_its_key_fails_the_handshake() {
    let d = dirs();
    let real = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let fingerprint = ioe::tls::fingerprint(real.cert.der());
    for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
        let (addr, server) = impostor(real.cert.der().clone(), version, 1);
        let (kind, message) = connect_error(
            &d.work,
            &format!("connect(\"tls://{addr}\", #{{fingerprint: \"{fingerprint}\"}})"),
        );
        assert_eq!(kind, "connect_failed", "{version:?}: {message}");
        assert!(
            message.contains("TLS handshake failed") && !message.contains("not trusted"),
            "{version:?}: {message}"
        );
        server.join().unwrap();
    }
}
