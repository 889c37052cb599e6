//! `cargo bench --bench sync [-- --quick]`: whole-tree `push` and `pull`
//! (`ioe::sync`) against what people do without them — a loop of one
//! `read` or `write` per file, and `rsync -r` from an rsync daemon — at 0
//! and 20 ms of round trip, in one bounded run.
//!
//! Everything runs on 127.0.0.1 in a temporary folder removed at the end.
//! A real `ioe serve` child serves the data; the syncs and the loops run in
//! this process through the library, each timed from connect to `bye`, its
//! result checked. The 20 ms rows go through [`Relay`], a relay in this
//! process that holds every chunk 10 ms in each direction without limiting
//! bandwidth (this kernel has no netem); the 0 ms rows connect directly.
//! rsync takes part only where it is installed (`rsync --daemon` on a
//! generated config, through the same relay at 20 ms). The client's peak RSS
//! for a big tree comes from a child: this binary again, run with
//! `--sync-child`, which pulls once and prints its own `VmHWM`.
//! Rounds alternate which side of a comparison goes first; the output is a
//! Markdown table of medians with min–max, the targets met or missed, and
//! one JSON line of medians. `--quick` uses small sizes; CI runs it to check
//! that the benchmark works, never how fast it is.

mod common;

use anyhow::{Context, Result, bail, ensure};
use common::{ServeChild, check_same};
use ioe::Session;
use ioe::sync::{DEFAULT_PARALLEL, Direction, SyncOptions, SyncReport, sync};
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// Longest any one child process (rsync, the RSS child) may take.
const STEP_LIMIT: Duration = Duration::from_secs(120);
/// Longest a relay connection lives, whatever happens.
const RELAY_LIFETIME: Duration = Duration::from_secs(30 * 60);
/// The delay of the slow link in each direction: 20 ms of round trip.
const ONE_WAY: Duration = Duration::from_millis(10);

/// Sizes and repetitions of one run.
struct Plan {
    name: &'static str,
    /// Files of the small-file rows, each [`SMALL_SIZE`].
    small: usize,
    /// Files the one-per-file loops move at 20 ms; their time is scaled to
    /// `small` files.
    loop_slow: usize,
    /// The one large file.
    big: u64,
    /// Times per round each large-file figure is taken (they are the
    /// noisiest: page cache, other processes).
    big_pairs: usize,
    /// Unchanged files of the no-op rows.
    noop: usize,
    /// Empty files of the peak-RSS tree (the no-op tree when equal).
    rss_files: usize,
    rounds: usize,
}

const SMALL_SIZE: usize = 4 * KIB as usize;

const FULL: Plan = Plan {
    name: "full",
    small: 2000,
    loop_slow: 200,
    big: GIB,
    big_pairs: 3,
    noop: 10_000,
    rss_files: 100_000,
    rounds: 5,
};

const QUICK: Plan = Plan {
    name: "quick",
    small: 500,
    loop_slow: 25,
    big: 32 * MIB,
    big_pairs: 1,
    noop: 10_000,
    rss_files: 10_000,
    rounds: 1,
};

/// The `parallel` values tried for the small-file pull.
const PARALLELS: [usize; 3] = [1, 4, 8];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--sync-child") {
        return match sync_child(&args[1..]) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("bench child: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let plan = if args.iter().any(|a| a == "--quick") {
        &QUICK
    } else {
        &FULL
    };
    match run(plan) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: &Plan) -> Result<()> {
    let started = Instant::now();
    let bench = Bench::set_up(plan)?;
    eprintln!(
        "bench: {} run, data in {}, ready in {:.1} s, server on {}, {}",
        plan.name,
        bench.dir.path().display(),
        started.elapsed().as_secs_f64(),
        bench.server.addr,
        match &bench.rsync {
            Some(daemon) => format!("rsync daemon on {}", daemon.addr),
            None => "rsync: skipped, `rsync` is not installed (apt-get install rsync)".into(),
        }
    );
    let mut results = Results::default();
    bench.measure(&mut results)?;
    eprintln!("bench: done in {:.1} s", started.elapsed().as_secs_f64());
    results.print(plan, bench.rsync.is_some());
    Ok(())
}

/// A link to the server: direct (0 ms) or through relays (20 ms).
struct Link {
    rtt_ms: u64,
    ioe: String,
    rsync: Option<String>,
    _relays: Vec<Relay>,
}

/// The data, the server and the rsync daemon of one run. Dropping it stops
/// them, then removes the temporary folder.
struct Bench<'p> {
    plan: &'p Plan,
    server: ServeChild,
    rsync: Option<RsyncDaemon>,
    /// The server's root: `small/`, `big/big.bin`, `noop/`, `many/`,
    /// `empty/`; pushes go under `up/`.
    root: PathBuf,
    /// The client's side: `small/` and `big/` to push, `noop/`, and `got/`
    /// for what is pulled.
    client: PathBuf,
    runs: AtomicU64,
    // last, so it is removed after the server has stopped
    dir: TempDir,
}

/// Every repetition of every figure, by key.
#[derive(Default)]
struct Results(BTreeMap<String, Vec<f64>>);

impl Results {
    fn add(&mut self, key: String, value: f64) {
        self.0.entry(key).or_default().push(value);
    }
}

impl<'p> Bench<'p> {
    fn set_up(plan: &'p Plan) -> Result<Bench<'p>> {
        let dir = TempDir::new().context("cannot create the temporary folder")?;
        let root = dir.path().join("root");
        let client = dir.path().join("client");
        for folder in ["small", "big", "up", "empty", "noop"] {
            fs::create_dir_all(root.join(folder))?;
        }
        for folder in ["small", "big", "got"] {
            fs::create_dir_all(client.join(folder))?;
        }
        for folder in [root.join("up"), client.join("got")] {
            spread_new_folders(&folder);
        }
        for i in 0..plan.small {
            let bytes = pseudo_random(SMALL_SIZE, i as u64 + 3);
            fs::write(root.join(format!("small/f{i}")), &bytes)?;
            fs::write(client.join(format!("small/f{i}")), &bytes)?;
        }
        fill_file(&root.join("big/big.bin"), plan.big, 1)?;
        fs::hard_link(root.join("big/big.bin"), client.join("big/big.bin"))?;
        make_tree(&root.join("noop"), plan.noop, 100)?;
        if plan.rss_files != plan.noop {
            make_tree(&root.join("many"), plan.rss_files, 0)?;
        }
        // written back now, so that no writeback of the inputs disturbs timings
        // SAFETY: no arguments, no failure
        unsafe { libc::sync() };
        let server = ServeChild::start(&root)?;
        let rsync = match rsync_installed() {
            true => Some(RsyncDaemon::start(dir.path(), &root)?),
            false => None,
        };
        Ok(Bench {
            plan,
            server,
            rsync,
            root,
            client,
            runs: AtomicU64::new(0),
            dir,
        })
    }

    fn links(&self) -> Result<[Link; 2]> {
        let rsync = self.rsync.as_ref().map(|d| d.addr);
        let server: SocketAddr = self.server.addr.parse()?;
        let ioe_relay = Relay::start(server, ONE_WAY)?;
        let rsync_relay = rsync.map(|a| Relay::start(a, ONE_WAY)).transpose()?;
        let slow = Link {
            rtt_ms: 20,
            ioe: ioe_relay.addr.to_string(),
            rsync: rsync_relay.as_ref().map(|r| r.addr.to_string()),
            _relays: [Some(ioe_relay), rsync_relay]
                .into_iter()
                .flatten()
                .collect(),
        };
        let direct = Link {
            rtt_ms: 0,
            ioe: self.server.addr.clone(),
            rsync: rsync.map(|a| a.to_string()),
            _relays: Vec::new(),
        };
        Ok([direct, slow])
    }

    /// A new folder under the client's `got/` for one pull, and a new
    /// remote name under `up/` for one push. They stay until the end: on
    /// ext4 without a journal, files made just after thousands were deleted
    /// are created much slower (see [`spread_new_folders`]).
    fn fresh(&self, what: &str) -> (PathBuf, String) {
        let n = self.runs.fetch_add(1, Ordering::Relaxed);
        let name = format!("{what}-{n}");
        (self.client.join("got").join(&name), format!("up/{name}"))
    }

    fn measure(&self, r: &mut Results) -> Result<()> {
        let links = self.links()?;
        // the local copy of the no-op tree, and a warm-up of every kind
        let noop = self.client.join("noop");
        let (_, first) = timed_sync(
            &links[0].ioe,
            Direction::Pull,
            &noop,
            "noop",
            DEFAULT_PARALLEL,
        )?;
        ensure!(first.copied.len() == self.plan.noop, "noop: {first:?}");
        for link in &links {
            self.pull_small(link, DEFAULT_PARALLEL)?;
            self.pull_small_loop(link)?;
        }
        // the first large transfers after setting up run slower
        self.pull_big(&links[0], true)?;
        self.push_big(&links[0], true)?;
        for round in 0..self.plan.rounds {
            let flip = round % 2 == 1;
            for link in &links {
                eprintln!(
                    "bench: round {} of {}, {} ms",
                    round + 1,
                    self.plan.rounds,
                    link.rtt_ms
                );
                let key = |what: &str| format!("{what}_{}ms", link.rtt_ms);
                let ms = |d: Duration| d.as_secs_f64() * 1000.0;
                // each comparison in turns: who goes first alternates by round
                let mut steps = vec![
                    (key("pull_small_sync"), Step::PullSmall),
                    (key("pull_small_loop"), Step::PullSmallLoop),
                    (key("push_small_sync"), Step::PushSmall),
                    (key("push_small_loop"), Step::PushSmallLoop),
                    (key("noop_pull"), Step::NoopPull),
                    (key("noop_push"), Step::NoopPush),
                ];
                for pair in 0..self.plan.big_pairs {
                    let mut big = [
                        (key("pull_big_sync"), Step::PullBig),
                        (key("pull_big_read"), Step::PullBigRead),
                        (key("push_big_sync"), Step::PushBig),
                        (key("push_big_write"), Step::PushBigWrite),
                    ];
                    if pair % 2 == 1 {
                        big.reverse();
                    }
                    steps.extend(big);
                }
                if link.rsync.is_some() {
                    steps.push((key("pull_small_rsync"), Step::PullSmallRsync));
                    steps.push((key("push_small_rsync"), Step::PushSmallRsync));
                }
                for p in PARALLELS.iter().filter(|&&p| p != DEFAULT_PARALLEL) {
                    steps.push((
                        key(&format!("pull_small_p{p}")),
                        Step::PullSmallParallel(*p),
                    ));
                }
                if flip {
                    steps.reverse();
                }
                for (key, step) in steps {
                    let time = self.step(link, step)?;
                    r.add(key, ms(time));
                }
            }
        }
        let floor = self.peak_rss("empty", 0)?;
        let tree = if self.plan.rss_files == self.plan.noop {
            "noop"
        } else {
            "many"
        };
        let peak = self.peak_rss(tree, self.plan.rss_files)?;
        r.add("rss_empty_mib".into(), floor);
        r.add("rss_tree_mib".into(), peak);
        Ok(())
    }

    fn step(&self, link: &Link, step: Step) -> Result<Duration> {
        match step {
            Step::PullSmall => self.pull_small(link, DEFAULT_PARALLEL),
            Step::PullSmallParallel(p) => self.pull_small(link, p),
            Step::PullSmallLoop => self.pull_small_loop(link),
            Step::PullSmallRsync => self.pull_small_rsync(link),
            Step::PushSmall => self.push_small(link),
            Step::PushSmallLoop => self.push_small_loop(link),
            Step::PushSmallRsync => self.push_small_rsync(link),
            Step::PullBig => self.pull_big(link, true),
            Step::PullBigRead => self.pull_big(link, false),
            Step::PushBig => self.push_big(link, true),
            Step::PushBigWrite => self.push_big(link, false),
            Step::NoopPull => self.noop(link, Direction::Pull),
            Step::NoopPush => self.noop(link, Direction::Push),
        }
    }

    /// `sync` pull of `small/` into a new folder, byte-checked.
    fn pull_small(&self, link: &Link, parallel: usize) -> Result<Duration> {
        let (local, _) = self.fresh("pull");
        let (time, report) = timed_sync(&link.ioe, Direction::Pull, &local, "small", parallel)?;
        ensure!(report.copied.len() == self.plan.small, "pull: {report:?}");
        self.check_small(&local, self.plan.small)?;
        Ok(time)
    }

    /// The loop: `walk` of `small/`, then one `Session::read` per file; at
    /// 20 ms only the first `loop_slow` files, the reads' time scaled to all.
    fn pull_small_loop(&self, link: &Link) -> Result<Duration> {
        let (local, _) = self.fresh("loop");
        let count = self.loop_count(link);
        let start = Instant::now();
        let mut s = Session::connect(&link.ioe)?;
        let mut names: Vec<String> = s.walk(Some("small"))?.into_iter().map(|e| e.name).collect();
        names.sort_by_key(|n| {
            n.trim_start_matches("small/f")
                .parse::<usize>()
                .unwrap_or(0)
        });
        let listed = start.elapsed();
        let reads = Instant::now();
        for name in names.iter().take(count) {
            s.read(name, &local.join(name.trim_start_matches("small/")))?;
        }
        let reads = reads.elapsed();
        s.bye()?;
        self.check_small(&local, count)?;
        Ok(listed + reads.mul_f64(self.plan.small as f64 / count as f64))
    }

    fn pull_small_rsync(&self, link: &Link) -> Result<Duration> {
        let (local, _) = self.fresh("rsync");
        let source = format!("rsync://{}/root/small/", rsync_addr(link)?);
        let time = run_rsync(&source, &format!("{}/", local.display()))?;
        self.check_small(&local, self.plan.small)?;
        Ok(time)
    }

    /// `sync` push of the client's `small/` to a new remote folder.
    fn push_small(&self, link: &Link) -> Result<Duration> {
        let (_, remote) = self.fresh("push");
        let source = self.client.join("small");
        let (time, report) = timed_sync(
            &link.ioe,
            Direction::Push,
            &source,
            &remote,
            DEFAULT_PARALLEL,
        )?;
        ensure!(report.copied.len() == self.plan.small, "push: {report:?}");
        self.check_small(&self.root.join(remote), self.plan.small)?;
        Ok(time)
    }

    /// The loop: a local listing, then one `Session::write` per file, scaled
    /// as [`pull_small_loop`](Self::pull_small_loop) is.
    fn push_small_loop(&self, link: &Link) -> Result<Duration> {
        let (_, remote) = self.fresh("wloop");
        let count = self.loop_count(link);
        let start = Instant::now();
        let mut s = Session::connect(&link.ioe)?;
        let mut names: Vec<String> = fs::read_dir(self.client.join("small"))?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<_>>()?;
        names.sort_by_key(|n| n.trim_start_matches('f').parse::<usize>().unwrap_or(0));
        let listed = start.elapsed();
        let writes = Instant::now();
        for name in names.iter().take(count) {
            let local = self.client.join("small").join(name);
            s.write(&local, &format!("{remote}/{name}"))?;
        }
        let writes = writes.elapsed();
        s.bye()?;
        self.check_small(&self.root.join(remote), count)?;
        Ok(listed + writes.mul_f64(self.plan.small as f64 / count as f64))
    }

    fn push_small_rsync(&self, link: &Link) -> Result<Duration> {
        let (_, remote) = self.fresh("rsync-up");
        let source = format!("{}/", self.client.join("small").display());
        let dest = format!("rsync://{}/root/{remote}/", rsync_addr(link)?);
        let time = run_rsync(&source, &dest)?;
        self.check_small(&self.root.join(remote), self.plan.small)?;
        Ok(time)
    }

    /// The large file down, by `sync` of `big/` or by one `Session::read`;
    /// byte-checked, then removed.
    fn pull_big(&self, link: &Link, by_sync: bool) -> Result<Duration> {
        let (local, _) = self.fresh("big");
        let time = if by_sync {
            let (time, report) =
                timed_sync(&link.ioe, Direction::Pull, &local, "big", DEFAULT_PARALLEL)?;
            ensure!(report.bytes == self.plan.big, "pull: {report:?}");
            time
        } else {
            let start = Instant::now();
            let mut s = Session::connect(&link.ioe)?;
            s.read("big/big.bin", &local.join("big.bin"))?;
            s.bye()?;
            start.elapsed()
        };
        let copy = local.join("big.bin");
        check_same(&self.root.join("big/big.bin"), &copy)?;
        fs::remove_file(copy)?;
        Ok(time)
    }

    /// The large file up, by `sync` of the client's `big/` or by one
    /// `Session::write`; byte-checked, then removed.
    fn push_big(&self, link: &Link, by_sync: bool) -> Result<Duration> {
        let (_, remote) = self.fresh("big-up");
        let source = self.client.join("big");
        let time = if by_sync {
            let (time, report) = timed_sync(
                &link.ioe,
                Direction::Push,
                &source,
                &remote,
                DEFAULT_PARALLEL,
            )?;
            ensure!(report.bytes == self.plan.big, "push: {report:?}");
            time
        } else {
            let start = Instant::now();
            let mut s = Session::connect(&link.ioe)?;
            s.write(&source.join("big.bin"), &format!("{remote}/big.bin"))?;
            s.bye()?;
            start.elapsed()
        };
        let copy = self.root.join(&remote).join("big.bin");
        check_same(&source.join("big.bin"), &copy)?;
        fs::remove_file(copy)?;
        Ok(time)
    }

    /// A `sync` of the no-op tree that must copy nothing: the time of the
    /// `sync` call alone (connecting and `bye` add a round trip).
    fn noop(&self, link: &Link, direction: Direction) -> Result<Duration> {
        let local = self.client.join("noop");
        let (_, report) = timed_sync(&link.ioe, direction, &local, "noop", DEFAULT_PARALLEL)?;
        ensure!(
            report.copied.is_empty() && report.made.is_empty(),
            "the no-op {direction:?} copied {} files, made {} folders",
            report.copied.len(),
            report.made.len()
        );
        Ok(Duration::from_secs_f64(report.seconds))
    }

    fn loop_count(&self, link: &Link) -> usize {
        match link.rtt_ms {
            0 => self.plan.small,
            _ => self.plan.loop_slow,
        }
    }

    /// Fails unless `dir` holds `f0`…`f<count-1>` as in the server's `small/`.
    fn check_small(&self, dir: &Path, count: usize) -> Result<()> {
        for i in 0..count {
            let name = format!("f{i}");
            let got = fs::read(dir.join(&name))
                .with_context(|| format!("`{}` did not arrive", dir.join(&name).display()))?;
            ensure!(
                got == fs::read(self.root.join("small").join(&name))?,
                "`{}` differs from the original",
                dir.join(name).display()
            );
        }
        Ok(())
    }

    /// The peak RSS, in MiB, of a child that pulls the remote folder
    /// `tree` (of `files` files) into a new local folder, at 0 ms.
    fn peak_rss(&self, tree: &str, files: usize) -> Result<f64> {
        let (local, _) = self.fresh("rss");
        let exe = std::env::current_exe()?;
        let mut command = Command::new(exe);
        command
            .arg("--sync-child")
            .arg(&self.server.addr)
            .arg(tree)
            .arg(&local)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let (stdout, _) = run_bounded(command).context("the RSS child")?;
        let value = |label: &str| -> Result<u64> {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(label)?.trim().parse().ok())
                .with_context(|| format!("no `{label}` line in {stdout:?}"))
        };
        ensure!(value("copied ")? == files as u64, "the RSS child: {stdout}");
        Ok(value("vmhwm_kib ")? as f64 / 1024.0)
    }
}

/// One measured step of a round.
#[derive(Clone, Copy)]
enum Step {
    PullSmall,
    PullSmallParallel(usize),
    PullSmallLoop,
    PullSmallRsync,
    PushSmall,
    PushSmallLoop,
    PushSmallRsync,
    PullBig,
    PullBigRead,
    PushBig,
    PushBigWrite,
    NoopPull,
    NoopPush,
}

/// Connect, `sync`, `bye`, timed; fails if any file failed.
fn timed_sync(
    addr: &str,
    direction: Direction,
    local: &Path,
    remote: &str,
    parallel: usize,
) -> Result<(Duration, SyncReport)> {
    let options = SyncOptions {
        parallel,
        ..SyncOptions::default()
    };
    let start = Instant::now();
    let mut s = Session::connect(addr)?;
    let report = sync(&mut s, direction, local, remote, &options)?;
    s.bye()?;
    let time = start.elapsed();
    ensure!(
        report.failed.is_empty(),
        "{direction:?}: {:?}",
        report.failed
    );
    Ok((time, report))
}

/// `--sync-child ADDR REMOTE LOCAL`: pulls once; prints how many files it
/// copied and its own peak RSS (`VmHWM`, which starts afresh at `exec`).
fn sync_child(args: &[String]) -> Result<()> {
    let [addr, remote, local] = args else {
        bail!("usage: --sync-child ADDR REMOTE LOCAL");
    };
    let (_, report) = timed_sync(
        addr,
        Direction::Pull,
        Path::new(local),
        remote,
        DEFAULT_PARALLEL,
    )?;
    let status = fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .context("no VmHWM in /proc/self/status")?
        .trim();
    println!("copied {}\nvmhwm_kib {kib}", report.copied.len());
    Ok(())
}

/// A relay on 127.0.0.1 to `upstream` that holds every chunk `one_way` in
/// each direction, in order, without limiting bandwidth: per direction one
/// thread reads chunks and stamps them, another writes each when due, so
/// chunks in flight overlap as on a real link. Stops accepting on drop;
/// each connection ends with its peers, or after [`RELAY_LIFETIME`].
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: SocketAddr, one_way: Duration) -> Result<Relay> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = Arc::clone(&stop);
        thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let _ = relay_both(client, server, one_way);
            }
        });
        Ok(Relay { addr, stop })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wakes the accepting thread, which then sees `stop`
        let _ = TcpStream::connect(self.addr);
    }
}

fn relay_both(client: TcpStream, server: TcpStream, one_way: Duration) -> io::Result<()> {
    let deadline = Instant::now() + RELAY_LIFETIME;
    for s in [&client, &server] {
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(RELAY_LIFETIME))?;
        s.set_write_timeout(Some(RELAY_LIFETIME))?;
    }
    let pairs = [(client.try_clone()?, server.try_clone()?), (server, client)];
    for (from, to) in pairs {
        thread::spawn(move || delay_one_way(from, to, one_way, deadline));
    }
    Ok(())
}

/// Forwards `from` → `to`, each chunk `one_way` after it was read; an end
/// of input is passed on as a shutdown of `to`'s writing side, a failure
/// to write shuts `from` down.
fn delay_one_way(mut from: TcpStream, mut to: TcpStream, one_way: Duration, deadline: Instant) {
    // a chunk and when it is due; an empty chunk: the end
    let (sender, receiver) = mpsc::sync_channel::<(Instant, Vec<u8>)>(4096);
    let Ok(from_again) = from.try_clone() else {
        return;
    };
    let writer = thread::spawn(move || {
        for (due, chunk) in receiver {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if chunk.is_empty() || Instant::now() > deadline || to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
        let _ = from_again.shutdown(Shutdown::Both);
    });
    let mut buf = vec![0u8; 256 * KIB as usize];
    loop {
        let n = match from.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => 0,
        };
        let stamped = (Instant::now() + one_way, buf[..n].to_vec());
        if sender.send(stamped).is_err() || n == 0 {
            break;
        }
    }
    drop(sender);
    let _ = writer.join();
}

fn rsync_installed() -> bool {
    Command::new("rsync")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `rsync --daemon` on 127.0.0.1, its module `root` the server's root
/// (writable, no chroot, as the user running the bench); killed on drop.
struct RsyncDaemon {
    child: Child,
    addr: SocketAddr,
}

impl RsyncDaemon {
    fn start(dir: &Path, root: &Path) -> Result<RsyncDaemon> {
        // a free port: rsync cannot be told to pick one and say which
        let addr = TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let config = dir.join("rsyncd.conf");
        // SAFETY: plain system calls without arguments
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        fs::write(
            &config,
            format!(
                "use chroot = no\nuid = {uid}\ngid = {gid}\nlog file = {}\n\n\
                 [root]\npath = {}\nread only = false\n",
                dir.join("rsyncd.log").display(),
                root.display()
            ),
        )?;
        let child = Command::new("rsync")
            .arg("--daemon")
            .arg("--no-detach")
            .arg(format!("--config={}", config.display()))
            .arg("--address=127.0.0.1")
            .arg(format!("--port={}", addr.port()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start `rsync --daemon`")?;
        let daemon = RsyncDaemon { child, addr };
        let give_up = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(addr).is_err() {
            ensure!(
                Instant::now() < give_up,
                "`rsync --daemon` did not listen on {addr} within 10 s"
            );
            thread::sleep(Duration::from_millis(20));
        }
        Ok(daemon)
    }
}

impl Drop for RsyncDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rsync_addr(link: &Link) -> Result<&str> {
    link.rsync.as_deref().context("rsync is not running")
}

/// `rsync -r SOURCE DEST`, timed from spawn to exit.
fn run_rsync(source: &str, dest: &str) -> Result<Duration> {
    let mut command = Command::new("rsync");
    command
        .args(["-r", source, dest])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let start = Instant::now();
    run_bounded(command).with_context(|| format!("rsync -r {source} {dest}"))?;
    Ok(start.elapsed())
}

/// Runs `command` to success, killed after [`STEP_LIMIT`]; its stdout
/// (piped, small) and time.
fn run_bounded(mut command: Command) -> Result<(String, Duration)> {
    let start = Instant::now();
    let mut child = command.spawn().context("cannot start it")?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > STEP_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            bail!("still running after {} s; killed", STEP_LIMIT.as_secs());
        }
        thread::sleep(Duration::from_millis(1));
    };
    let time = start.elapsed();
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)?;
    }
    ensure!(status.success(), "failed ({status}); its output: {stdout}");
    Ok((stdout, time))
}

/// `count` files of `size` bytes in folders of 1,000 (`d0/f0`, …).
fn make_tree(dir: &Path, count: usize, size: usize) -> io::Result<()> {
    let bytes = vec![b'x'; size];
    for i in 0..count {
        let folder = dir.join(format!("d{}", i / 1000));
        if i % 1000 == 0 {
            fs::create_dir_all(&folder)?;
        }
        fs::write(folder.join(format!("f{i}")), &bytes)?;
    }
    Ok(())
}

/// `size` pseudo-random bytes (xorshift, seeded).
fn pseudo_random(size: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut bytes = vec![0u8; size.next_multiple_of(8)];
    for word in bytes.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        word.copy_from_slice(&state.to_le_bytes());
    }
    bytes.truncate(size);
    bytes
}

/// Writes `size` pseudo-random bytes to `path`, 1 MiB at a time.
fn fill_file(path: &Path, size: u64, seed: u64) -> io::Result<()> {
    let mut out = File::create(path)?;
    let block = pseudo_random(MIB as usize, seed);
    let mut left = size;
    while left > 0 {
        let n = left.min(MIB);
        out.write_all(&block[..n as usize])?;
        left -= n;
    }
    Ok(())
}

/// Makes the folders created in `dir` spread over the disk instead of
/// sitting beside it (ext4's top-directory flag, `chattr +T`): on ext4
/// without a journal, files created beside thousands just deleted (the
/// previous run's) are created many times slower. Other file systems
/// refuse the flag, which changes nothing.
fn spread_new_folders(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Ok(folder) = File::open(dir) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&folder) {
        let _ = ioctl_setflags(&folder, flags | IFlags::TOPDIR);
    }
}

/// The median, min and max of some repetitions.
fn stats(values: &[f64]) -> (f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    (median, sorted[0], sorted[n - 1])
}

impl Results {
    fn median(&self, key: &str) -> Option<f64> {
        self.0.get(key).map(|v| stats(v).0)
    }

    /// How many times faster `key` was than `baseline` (medians of times).
    fn ratio(&self, baseline: &str, key: &str) -> Option<f64> {
        Some(self.median(baseline)? / self.median(key)?)
    }

    /// Prints the table, the targets, then the JSON line of medians.
    fn print(&self, plan: &Plan, rsync: bool) {
        let small = format!("{} × 4 KiB", plan.small);
        let big = if plan.big >= GIB {
            format!("{} GiB", plan.big / GIB)
        } else {
            format!("{} MiB", plan.big / MIB)
        };
        let scaled = |rtt: u64| match rtt {
            0 => String::new(),
            _ => format!(" ({} files, scaled)", plan.loop_slow),
        };
        println!(
            "\n{} run: {} round(s), the large file {} time(s) a round; times in ms, \
             median [min–max]; \"vs\" is the other's median time over this one's\n",
            plan.name, plan.rounds, plan.big_pairs
        );
        println!("| what | RTT | median | min–max | vs |");
        println!("| --- | ---: | ---: | ---: | --- |");
        for rtt in [0, 20] {
            let k = |what: &str| format!("{what}_{rtt}ms");
            let vs = |pairs: &[(&str, &str)], key: &str| {
                pairs
                    .iter()
                    .filter_map(|(label, base)| {
                        Some(format!("{label} {:.2}×", self.ratio(&k(base), key)?))
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let mut rows: Vec<(String, String, String)> = vec![
                (
                    format!("pull {small}, sync"),
                    k("pull_small_sync"),
                    vs(
                        &[("loop", "pull_small_loop"), ("rsync", "pull_small_rsync")],
                        &k("pull_small_sync"),
                    ),
                ),
                (
                    format!("pull {small}, read loop{}", scaled(rtt)),
                    k("pull_small_loop"),
                    String::new(),
                ),
                (
                    format!("pull {small}, rsync -r"),
                    k("pull_small_rsync"),
                    String::new(),
                ),
            ];
            for p in PARALLELS.iter().filter(|&&p| p != DEFAULT_PARALLEL) {
                let key = k(&format!("pull_small_p{p}"));
                rows.push((
                    format!("pull {small}, sync, parallel {p}"),
                    key.clone(),
                    vs(
                        &[(&format!("parallel {DEFAULT_PARALLEL}"), "pull_small_sync")],
                        &key,
                    ),
                ));
            }
            rows.extend([
                (
                    format!("push {small}, sync"),
                    k("push_small_sync"),
                    vs(
                        &[("loop", "push_small_loop"), ("rsync", "push_small_rsync")],
                        &k("push_small_sync"),
                    ),
                ),
                (
                    format!("push {small}, write loop{}", scaled(rtt)),
                    k("push_small_loop"),
                    String::new(),
                ),
                (
                    format!("push {small}, rsync -r"),
                    k("push_small_rsync"),
                    String::new(),
                ),
                (
                    format!("pull {big}, sync"),
                    k("pull_big_sync"),
                    vs(&[("read", "pull_big_read")], &k("pull_big_sync")),
                ),
                (
                    format!("pull {big}, one read"),
                    k("pull_big_read"),
                    String::new(),
                ),
                (
                    format!("push {big}, sync"),
                    k("push_big_sync"),
                    vs(&[("write", "push_big_write")], &k("push_big_sync")),
                ),
                (
                    format!("push {big}, one write"),
                    k("push_big_write"),
                    String::new(),
                ),
                (
                    format!("no-op pull, {} files, the call alone", plan.noop),
                    k("noop_pull"),
                    String::new(),
                ),
                (
                    format!("no-op push, {} files, the call alone", plan.noop),
                    k("noop_push"),
                    String::new(),
                ),
            ]);
            for (what, key, vs) in rows {
                let Some(values) = self.0.get(&key) else {
                    continue;
                };
                let (median, min, max) = stats(values);
                println!("| {what} | {rtt} ms | {median:.1} | {min:.1}–{max:.1} | {vs} |");
            }
        }
        for (what, key) in [
            ("client peak RSS, sync of an empty folder", "rss_empty_mib"),
            (
                &*format!("client peak RSS, pull of a {}-file tree", plan.rss_files),
                "rss_tree_mib",
            ),
        ] {
            if let Some(mib) = self.median(key) {
                println!("| {what} | 0 ms | {mib:.1} MiB | | |");
            }
        }
        if !rsync {
            println!("\nrsync: skipped, `rsync` is not installed (apt-get install rsync)");
        }
        self.print_targets();
        if plan.name == QUICK.name {
            println!("\n(a quick run: small sizes, one round; only the full run's verdicts count)");
        }
        let mut json = format!(
            "{{\"mode\":\"{}\",\"small_files\":{},\"loop_files_20ms\":{},\"big_bytes\":{},\
             \"noop_files\":{},\"rss_files\":{},\"default_parallel\":{DEFAULT_PARALLEL}",
            plan.name, plan.small, plan.loop_slow, plan.big, plan.noop, plan.rss_files
        );
        for (key, values) in &self.0 {
            json.push_str(&format!(",\"{key}\":{:.3}", stats(values).0));
        }
        println!("\n{json}}}");
    }

    /// The targets of issue 11, each met or missed on this run's medians.
    fn print_targets(&self) {
        println!("\n| target | measured | |");
        println!("| --- | ---: | --- |");
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        let at_least = |what: &str, base: &str, key: &str, min: f64| {
            if let Some(ratio) = self.ratio(base, key) {
                println!(
                    "| {what} ≥ {min}× | {ratio:.2}× | {} |",
                    verdict(ratio >= min)
                );
            }
        };
        at_least(
            "pull small, 20 ms: vs the loop",
            "pull_small_loop_20ms",
            "pull_small_sync_20ms",
            50.0,
        );
        at_least(
            "pull small, 20 ms: vs rsync",
            "pull_small_rsync_20ms",
            "pull_small_sync_20ms",
            2.0,
        );
        at_least(
            "pull small, 0 ms: vs the loop",
            "pull_small_loop_0ms",
            "pull_small_sync_0ms",
            1.5,
        );
        for rtt in [0, 20] {
            for (what, base, key) in [
                ("pull", "pull_big_read", "pull_big_sync"),
                ("push", "push_big_write", "push_big_sync"),
            ] {
                at_least(
                    &format!(
                        "{what} big, {rtt} ms: vs one {}",
                        if what == "pull" { "read" } else { "write" }
                    ),
                    &format!("{base}_{rtt}ms"),
                    &format!("{key}_{rtt}ms"),
                    0.95,
                );
            }
        }
        for key in ["noop_pull", "noop_push"] {
            let (Some(fast), Some(slow)) = (
                self.median(&format!("{key}_0ms")),
                self.median(&format!("{key}_20ms")),
            ) else {
                continue;
            };
            println!(
                "| {key}, 0 ms < 500 ms | {fast:.1} ms | {} |",
                verdict(fast < 500.0)
            );
            let trips = (slow - fast) / 20.0;
            println!(
                "| {key}, 20 ms ≤ 0 ms + 3 round trips | {slow:.1} ms (+{trips:.1} round trips) | {} |",
                verdict(trips <= 3.0)
            );
        }
    }
}
