//! The `tls` group of the transfer benchmark: what TLS costs against plain
//! TCP, both measured in the same run. Two `ioe serve` children serve the
//! same folder, one plain and one `--tls --auth` (with a certificate made
//! here and pinned by its fingerprint, and a token minted here), as a
//! server off loopback must run. Rows, each TLS one over its plain twin:
//! a 1 GiB download and upload by `ioe run` (wall time, and the CPU time
//! of the receiving side, which bounds the rate on loopback); connect,
//! handshake, `AUTH` and one 4 KiB `READ` by a [`Session`] in this
//! process; and a download through the capped [`Relay`] of the extension
//! rows at 1 Gbit/s, where the link, not the cipher, sets the pace.
//! Rounds interleave plain and TLS, who goes first alternating.

use super::{
    GIB, LINKS, Plan, Relay, Results, Row, Run, STEP_LIMIT, check_same, check_size, fill_file,
    mb_per_s, median, size_label,
};
use anyhow::{Context, Result, ensure};
use ioe::Session;
use ioe::auth::{Access, Grant, Token};
use ioe::session::{CONNECT_TIMEOUT, ConnectOptions, TlsOptions};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// `ioe run` script: ARGS server address, remote name, local path, and
/// for TLS the pinned fingerprint.
const DOWNLOAD_SCRIPT: &str = "\
let s = if ARGS.len() > 3 { connect(ARGS[0], #{fingerprint: ARGS[3]}) } else { connect(ARGS[0]) };
s.read(ARGS[1], ARGS[2]);
s.bye();
";

/// `ioe run` script: ARGS server address, local path, remote name, and
/// for TLS the pinned fingerprint.
const UPLOAD_SCRIPT: &str = "\
let s = if ARGS.len() > 3 { connect(ARGS[0], #{fingerprint: ARGS[3]}) } else { connect(ARGS[0]) };
s.write(ARGS[1], ARGS[2]);
s.bye();
";

/// The file of the connect-and-read row.
const SMALL: u64 = 4 * 1024;

/// Every repetition of every figure of the group.
#[derive(Default)]
pub(super) struct TlsTimes {
    down_plain: Vec<f64>,
    down_tls: Vec<f64>,
    up_plain: Vec<f64>,
    up_tls: Vec<f64>,
    /// CPU time of the receiver (ms): the client of a download, the
    /// server of an upload.
    down_cpu_plain: Vec<f64>,
    down_cpu_tls: Vec<f64>,
    up_cpu_plain: Vec<f64>,
    up_cpu_tls: Vec<f64>,
    /// Connect (and handshake and `AUTH`) and one 4 KiB `READ` (ms).
    first_read_plain: Vec<f64>,
    first_read_tls: Vec<f64>,
    /// `link.bin` through the first link of [`LINKS`] (ms).
    link_plain: Vec<f64>,
    link_tls: Vec<f64>,
}

/// An `ioe serve` child: its address and its pid (for its CPU time).
struct Server {
    child: std::process::Child,
    addr: String,
    /// Kept open: `ioe serve --tls` prints its fingerprint after the
    /// address, and stops if it cannot.
    _stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl Server {
    /// Starts it on `root`; with `tls` (certificate, key, token file)
    /// it serves TLS and takes the tokens of the file.
    fn start(root: &Path, tls: Option<(&Path, &Path, &Path)>) -> Result<Server> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command.args(["serve", "--quiet", "--listen", "127.0.0.1:0", "--root"]);
        command.arg(root);
        if let Some((cert, key, tokens)) = tls {
            command.arg("--tls").arg("--tls-cert").arg(cert);
            command.arg("--tls-key").arg(key);
            command.arg("--auth").arg(tokens);
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `ioe serve`")?;
        let mut stdout = std::io::BufReader::new(child.stdout.take().expect("stdout is piped"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line)?;
        let addr = line
            .trim_end()
            .rsplit_once(" on ")
            .map(|(_, a)| a.to_string());
        let server = Server {
            child,
            addr: addr.unwrap_or_default(),
            _stdout: stdout,
        };
        ensure!(
            !server.addr.is_empty(),
            "`ioe serve` printed {line:?}, not its address"
        );
        Ok(server)
    }

    /// The CPU time (user and system) it has used so far.
    fn cpu(&self) -> Result<Duration> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.child.id()))?;
        // the fields after the command name, which ends with the last `)`
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map(|(_, rest)| rest.split_whitespace().collect())
            .unwrap_or_default();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        // utime and stime are fields 14 and 15, 12 and 13 after the name
        let (Some(user), Some(system)) = (ticks(11), ticks(12)) else {
            anyhow::bail!("cannot read the server's CPU time from {stat:?}");
        };
        // SAFETY: sysconf has no preconditions
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
        Ok(Duration::from_secs_f64((user + system) as f64 / hz))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The data, scripts and servers of the group; dropping it stops the
/// servers, then removes the folder.
struct TlsBench<'p> {
    plan: &'p Plan,
    plain: Server,
    tls: Server,
    fingerprint: String,
    /// The token the TLS server takes.
    token: String,
    root: PathBuf,
    client: PathBuf,
    scripts: PathBuf,
    _dir: TempDir,
}

/// Runs the group's rounds into `r`.
pub(super) fn measure(plan: &Plan, r: &mut Results) -> Result<()> {
    let bench = TlsBench::set_up(plan)?;
    eprintln!(
        "bench: tls rows, servers on {} (plain) and {} (TLS)",
        bench.plain.addr, bench.tls.addr
    );
    let t = &mut r.tls;
    // one untimed pass of each kind warms caches and fails early
    for tls in [false, true] {
        bench.download(tls)?;
        bench.upload(tls)?;
        bench.first_read(tls)?;
        bench.linked(tls)?;
    }
    for round in 0..plan.rounds {
        eprintln!("bench: tls, round {} of {}", round + 1, plan.rounds);
        for turn in 0..2 {
            let tls = (round + turn) % 2 == 1;
            let ((down, down_cpu), (up, up_cpu)) = (bench.download(tls)?, bench.upload(tls)?);
            let (down_rows, up_rows, cpu_down_rows, cpu_up_rows) = if tls {
                (
                    &mut t.down_tls,
                    &mut t.up_tls,
                    &mut t.down_cpu_tls,
                    &mut t.up_cpu_tls,
                )
            } else {
                (
                    &mut t.down_plain,
                    &mut t.up_plain,
                    &mut t.down_cpu_plain,
                    &mut t.up_cpu_plain,
                )
            };
            down_rows.push(mb_per_s(plan.big, down));
            up_rows.push(mb_per_s(plan.big, up));
            cpu_down_rows.push(down_cpu.as_secs_f64() * 1000.0);
            cpu_up_rows.push(up_cpu.as_secs_f64() * 1000.0);
            let link = bench.linked(tls)?.as_secs_f64() * 1000.0;
            match tls {
                true => t.link_tls.push(link),
                false => t.link_plain.push(link),
            }
        }
        // many short repetitions: each is one value of the row
        for i in 0..first_read_rounds(plan) {
            for turn in 0..2 {
                let tls = (i + turn) % 2 == 1;
                let ms = bench.first_read(tls)?.as_secs_f64() * 1000.0;
                match tls {
                    true => t.first_read_tls.push(ms),
                    false => t.first_read_plain.push(ms),
                }
            }
        }
    }
    Ok(())
}

/// Connect-and-read repetitions per round.
fn first_read_rounds(plan: &Plan) -> usize {
    if plan.big >= GIB { 30 } else { 5 }
}

impl<'p> TlsBench<'p> {
    fn set_up(plan: &'p Plan) -> Result<TlsBench<'p>> {
        let dir = TempDir::new().context("cannot create the temporary folder")?;
        let root = dir.path().join("root");
        let client = dir.path().join("client");
        let scripts = dir.path().join("scripts");
        for folder in [&root, &root.join("up"), &client, &scripts] {
            fs::create_dir_all(folder)?;
        }
        fill_file(&root.join("big.bin"), plan.big, 11)?;
        fill_file(&root.join("small.bin"), SMALL, 12)?;
        fill_file(&root.join("link.bin"), plan.link, 13)?;
        fs::write(scripts.join("down.rhai"), DOWNLOAD_SCRIPT)?;
        fs::write(scripts.join("up.rhai"), UPLOAD_SCRIPT)?;
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()])?;
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        fs::write(&cert, made.cert.pem())?;
        fs::write(&key, made.key_pair.serialize_pem())?;
        let fingerprint = ioe::tls::server_identity(Some((&cert, &key)), dir.path())?.fingerprint;
        let tokens = dir.path().join("tokens");
        let grant = Grant {
            label: "bench".into(),
            access: Access::ReadWrite,
            folder: None,
        };
        let token = ioe::auth::add(&tokens, &grant).map_err(anyhow::Error::msg)?;
        Ok(TlsBench {
            plan,
            plain: Server::start(&root, None)?,
            tls: Server::start(&root, Some((&cert, &key, &tokens)))?,
            fingerprint,
            token,
            root,
            client,
            scripts,
            _dir: dir,
        })
    }

    /// The TLS server or the plain one.
    fn server(&self, tls: bool) -> &Server {
        if tls { &self.tls } else { &self.plain }
    }

    /// `ioe run down.rhai` of `big.bin`: wall time, and the client's CPU.
    fn download(&self, tls: bool) -> Result<(Duration, Duration)> {
        let local = self.client.join("big.bin");
        let local_text = local.to_string_lossy();
        let run = self.ioe_run("down.rhai", tls, ["big.bin", &local_text])?;
        check_size(&local, self.plan.big)?;
        check_same(&self.root.join("big.bin"), &local)?;
        fs::remove_file(&local)?;
        Ok((run.wall, run.cpu))
    }

    /// `ioe run up.rhai` of `big.bin` as `up/big.bin`: wall time, and the
    /// server's CPU over that time.
    fn upload(&self, tls: bool) -> Result<(Duration, Duration)> {
        let source = self.root.join("big.bin");
        let source_text = source.to_string_lossy();
        let before = self.server(tls).cpu()?;
        let run = self.ioe_run("up.rhai", tls, [&source_text, "up/big.bin"])?;
        let server_cpu = self.server(tls).cpu()?.saturating_sub(before);
        let arrived = self.root.join("up/big.bin");
        check_size(&arrived, self.plan.big)?;
        check_same(&source, &arrived)?;
        fs::remove_file(&arrived)?;
        Ok((run.wall, server_cpu))
    }

    fn ioe_run(&self, script: &str, tls: bool, args: [&str; 2]) -> Result<Run> {
        let server = self.server(tls);
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .arg("run")
            .arg(self.scripts.join(script))
            .arg(if tls {
                format!("{}{}", ioe::session::TLS_SCHEME, server.addr)
            } else {
                server.addr.clone()
            })
            .args(args);
        if tls {
            command.arg(&self.fingerprint);
            command.env(ioe::auth::TOKEN_ENV, &self.token);
        } else {
            command.env_remove(ioe::auth::TOKEN_ENV);
        }
        command
            .current_dir(&self.client)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let (run, ended) = super::run_measured(command)
            .with_context(|| format!("ioe run {script} (TLS: {tls})"))?;
        ensure!(
            ended.success,
            "`ioe run {script}` (TLS: {tls}) failed ({}); its output: {}",
            ended.describe(),
            run.stdout
        );
        Ok(run)
    }

    /// A session to `addr`; with `tls`, over TLS pinning the certificate
    /// and with the token.
    fn connect(&self, addr: &str, tls: bool) -> Result<Session> {
        let options = if tls {
            ConnectOptions {
                tls: Some(TlsOptions {
                    fingerprint: Some(self.fingerprint.clone()),
                    ..TlsOptions::default()
                }),
                token: Some(
                    Token::new(&self.token, "the bench's token").map_err(anyhow::Error::msg)?,
                ),
                ..ConnectOptions::default()
            }
        } else {
            ConnectOptions::default()
        };
        Ok(Session::connect_with(
            addr,
            &options,
            CONNECT_TIMEOUT,
            STEP_LIMIT,
        )?)
    }

    /// Connect (with the TLS handshake and `AUTH`) and one `READ` of the
    /// 4 KiB file; the `BYE` after is not timed.
    fn first_read(&self, tls: bool) -> Result<Duration> {
        let local = self.client.join("small.bin");
        let start = Instant::now();
        let mut session = self.connect(&self.server(tls).addr, tls)?;
        let moved = session.read("small.bin", &local)?;
        let elapsed = start.elapsed();
        let identity = session.identity().map(str::to_string);
        session.bye()?;
        ensure!(moved == SMALL, "read {moved} bytes of small.bin");
        ensure!(
            identity.is_some() == tls,
            "TLS: {tls}, but the server gave the identity {identity:?}"
        );
        check_same(&self.root.join("small.bin"), &local)?;
        fs::remove_file(&local)?;
        Ok(elapsed)
    }

    /// `link.bin` through a relay capped at the first link's rate.
    fn linked(&self, tls: bool) -> Result<Duration> {
        let relay = Relay::start(self.server(tls).addr.parse()?, LINKS[0].rate)?;
        let mut session = self.connect(&relay.addr.to_string(), tls)?;
        let local = self.client.join("link.bin");
        let start = Instant::now();
        let moved = session.read("link.bin", &local)?;
        let elapsed = start.elapsed();
        session.bye()?;
        ensure!(moved == self.plan.link, "read {moved} bytes of link.bin");
        check_same(&self.root.join("link.bin"), &local)?;
        fs::remove_file(&local)?;
        Ok(elapsed)
    }
}

/// A plain row (the baseline, 1.00) and its TLS twin against it; `keys`
/// are the JSON keys of the plain median, the TLS median and their ratio.
fn pair<'a>(
    what: String,
    unit: &'static str,
    cost: bool,
    (plain, tls): (&'a [f64], &'a [f64]),
    (plain_key, tls_key, ratio_key): (&'static str, &'static str, &'static str),
) -> [Row<'a>; 2] {
    let row = |what: String, values, vs, key, ratio_key| Row {
        what,
        values,
        unit,
        decimals: if unit == "ms" { 1 } else { 0 },
        vs,
        cost,
        key,
        ratio_key,
    };
    let vs = median(tls).zip(median(plain)).map(|(t, p)| t / p);
    [
        row(format!("plain: {what}"), plain, Some(1.0), plain_key, None),
        row(format!("TLS: {what}"), tls, vs, tls_key, Some(ratio_key)),
    ]
}

impl TlsTimes {
    /// The group's rows: each plain figure (its baseline), then its TLS
    /// twin against it.
    pub(super) fn rows(&self, plan: &Plan) -> Vec<Row<'_>> {
        let big = size_label(plan.big);
        let link = format!("{}, over {}", size_label(plan.link), LINKS[0].label);
        let mut rows = Vec::new();
        rows.extend(pair(
            format!("ioe download, {big}"),
            "MB/s",
            false,
            (&self.down_plain, &self.down_tls),
            (
                "tls_plain_download_mb_s",
                "tls_download_mb_s",
                "tls_download_ratio",
            ),
        ));
        rows.extend(pair(
            format!("ioe upload, {big}"),
            "MB/s",
            false,
            (&self.up_plain, &self.up_tls),
            (
                "tls_plain_upload_mb_s",
                "tls_upload_mb_s",
                "tls_upload_ratio",
            ),
        ));
        rows.extend(pair(
            format!("CPU of the receiving client, download {big}"),
            "ms",
            true,
            (&self.down_cpu_plain, &self.down_cpu_tls),
            (
                "tls_plain_download_cpu_ms",
                "tls_download_cpu_ms",
                "tls_download_cpu_cost",
            ),
        ));
        rows.extend(pair(
            format!("CPU of the receiving server, upload {big}"),
            "ms",
            true,
            (&self.up_cpu_plain, &self.up_cpu_tls),
            (
                "tls_plain_upload_cpu_ms",
                "tls_upload_cpu_ms",
                "tls_upload_cpu_cost",
            ),
        ));
        rows.extend(pair(
            "connect (TLS: handshake, `AUTH`) and one 4 KiB `READ`".into(),
            "ms",
            true,
            (&self.first_read_plain, &self.first_read_tls),
            (
                "tls_plain_first_read_ms",
                "tls_first_read_ms",
                "tls_first_read_cost",
            ),
        ));
        rows.extend(pair(
            format!("`read` download, {link}"),
            "ms",
            true,
            (&self.link_plain, &self.link_tls),
            ("tls_plain_link_ms", "tls_link_ms", "tls_link_cost"),
        ));
        rows
    }
}
