//! `cargo bench --bench transfer [-- [--quick] [transfers|extensions|scripts|tls|events]]`:
//! how fast `ioe` moves files on this machine, against a plain socket copy;
//! what `HASH`, verified and resumed downloads cost, against reading the
//! file once and a plain download; and how fast its scripts build big
//! arrays and maps, against stock Rhai, in one bounded run. Naming groups
//! runs only those groups of rows.
//!
//! Everything runs on 127.0.0.1 in a temporary folder that is removed at
//! the end. A real `ioe serve` child serves the data; every `ioe` transfer
//! is a real `ioe run` of a `.rhai` script, timed from spawn to exit, its
//! peak RSS read from the kernel (`wait4`), and its result byte-checked.
//! Rounds are interleaved (baseline, download, upload, ...) so that noise
//! from other processes spreads over every figure alike. The output is a
//! Markdown table of medians with min–max and one JSON line of medians.
//! The extension rows drive a [`Session`] in this process against the same
//! server: `HASH` with the server's digest cache missed (the file's mtime
//! is changed first) and hit, and `read_with` plain, verified and resumed
//! (from a part file the bench makes by copying the first 90 % of the
//! source), each result checked. The capped-link rows download a smaller
//! file plain, verified and resumed through [`Relay`], a relay on
//! 127.0.0.1 that caps the server → client direction at each rate of
//! [`LINKS`], over a session of their own per link.
//! The script rows run the same code through `ioe run -e` and through a
//! stock `rhai::Engine::new()` in this process, in turns, each timed by
//! the script itself.
//! The `tls` rows (module `tls_rows`) measure TLS against plain TCP in
//! the same run.
//! The `events` rows (not run unless named) time the script-level
//! transfers of the `transfers` rows with `ioe run --events FILE` and
//! without, in turns, and report the ratio of each pair (see the end of
//! this file).
//! `--quick` uses small sizes and finishes in seconds; CI runs it to check
//! that the benchmark works, never how fast it is.

mod common;
#[path = "transfer_tls/mod.rs"]
mod tls_rows;

use anyhow::{Context, Result, anyhow, bail, ensure};
use common::{ServeChild, check_same};
use ioe::Session;
use ioe::digest::{self, Algorithm};
use ioe::session::{TransferOptions, Transferred};
use std::cell::RefCell;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, UNIX_EPOCH};
use tempfile::TempDir;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;
/// The buffer of the baseline copy on both sides (`ioe`'s connections
/// buffer this much too).
const BUFFER: usize = 256 * KIB as usize;
/// Longest any one `ioe` process or baseline copy may take before the
/// benchmark kills it and fails.
const STEP_LIMIT: Duration = Duration::from_secs(60);

/// Sizes and repetitions of one run.
struct Plan {
    name: &'static str,
    /// The large file: the throughput figures and their peak RSS.
    big: u64,
    /// The medium file: peak RSS at a size 16 times smaller.
    mid: u64,
    small_count: usize,
    small_size: u64,
    /// Repetitions of every transfer figure.
    rounds: usize,
    /// Repetitions of the empty script.
    empty_runs: usize,
    /// `push`es of the array script.
    pushes: u64,
    /// Keys of the map script.
    map_keys: u64,
    /// The file of the capped-link rows.
    link: u64,
}

const FULL: Plan = Plan {
    name: "full",
    big: GIB,
    mid: 64 * MIB,
    small_count: 2000,
    small_size: 4 * KIB,
    rounds: 7,
    empty_runs: 20,
    pushes: 1_000_000,
    map_keys: 100_000,
    link: 256 * MIB,
};

const QUICK: Plan = Plan {
    name: "quick",
    big: 32 * MIB,
    mid: 2 * MIB,
    small_count: 100,
    small_size: 4 * KIB,
    rounds: 2,
    empty_runs: 5,
    pushes: 100_000,
    map_keys: 10_000,
    link: 16 * MIB,
};

const DOWNLOAD_SCRIPT: &str = "\
// ARGS: server address, remote name, local path
let s = connect(ARGS[0]);
s.read(ARGS[1], ARGS[2]);
s.bye();
";

const UPLOAD_SCRIPT: &str = "\
// ARGS: server address, local path, remote name
let s = connect(ARGS[0]);
s.write(ARGS[1], ARGS[2]);
s.bye();
";

/// Downloads `small/f<i>` into `got/<round>/`, then uploads those copies
/// to `up/<round>/`, over one session; prints each phase's time in
/// microseconds.
const SMALL_FILES_SCRIPT: &str = "\
// ARGS: server address, number of files, round
let s = connect(ARGS[0]);
let n = parse_int(ARGS[1]);
let round = ARGS[2];
let t = timestamp();
for i in 0..n {
    s.read(`small/f${i}`, `got/${round}/f${i}`);
}
print(`down_us ${(t.elapsed * 1000000.0).to_int()}`);
let t = timestamp();
for i in 0..n {
    s.write(`got/${round}/f${i}`, `up/${round}/f${i}`);
}
print(`up_us ${(t.elapsed * 1000000.0).to_int()}`);
s.bye();
";

/// Builds an array of `N` integers with `push`, then sums it (the shape of
/// Rhai's own `scripts/for2.rhai`); prints its time in microseconds. The
/// bench puts `const N = …;` before it.
const PUSH_SCRIPT: &str = "
let t = timestamp();
let list = [];
for i in 0..N { list.push(i); }
let sum = 0;
for x in list { sum += x; }
if list.len() != N || sum != N * (N - 1) / 2 { throw `wrong: ${list.len()} items, sum ${sum}`; }
print(`us ${(t.elapsed * 1000000.0).to_int()}`);
";

/// Builds an object map of `N` keys with `set`, then reads every key back;
/// prints its time in microseconds.
const MAP_SCRIPT: &str = "
let t = timestamp();
let m = #{};
for i in 0..N { m.set(`k${i}`, i); }
let sum = 0;
for i in 0..N { sum += m.get(`k${i}`); }
if m.len() != N || sum != N * (N - 1) / 2 { throw `wrong: ${m.len()} keys, sum ${sum}`; }
print(`us ${(t.elapsed * 1000000.0).to_int()}`);
";

/// The names of the groups of rows, as given on the command line.
const GROUPS: [&str; 5] = ["transfers", "extensions", "scripts", "tls", "events"];

/// How much of the file the part file of the resumed download holds.
const CUT: f64 = 0.9;

/// A link of the capped-link rows: its rate server → client, its name in
/// the rows, and the JSON keys of its figures.
struct Link {
    /// Bytes per second (10⁶ bytes = 1 MB).
    rate: u64,
    label: &'static str,
    plain_key: &'static str,
    verified_key: &'static str,
    verified_cost_key: &'static str,
    resumed_key: &'static str,
    resumed_cost_key: &'static str,
}

/// The links of the capped-link rows: 1 Gbit/s, and 100 MB/s.
const LINKS: [Link; 2] = [
    Link {
        rate: 125_000_000,
        label: "1 Gbit/s (125 MB/s)",
        plain_key: "link125_plain_download_ms",
        verified_key: "link125_verified_download_ms",
        verified_cost_key: "link125_verified_cost",
        resumed_key: "link125_resumed_download_ms",
        resumed_cost_key: "link125_resumed_cost",
    },
    Link {
        rate: 100_000_000,
        label: "100 MB/s",
        plain_key: "link100_plain_download_ms",
        verified_key: "link100_verified_download_ms",
        verified_cost_key: "link100_verified_cost",
        resumed_key: "link100_resumed_download_ms",
        resumed_cost_key: "link100_resumed_cost",
    },
];

/// What the relay reads and passes on at a time, in each direction.
const RELAY_CHUNK: usize = 64 * KIB as usize;
/// Longest a relayed connection lives, and longest it may sit idle.
const RELAY_LIFETIME: Duration = Duration::from_secs(15 * 60);
const RELAY_IDLE: Duration = STEP_LIMIT;

/// Which groups of rows a run measures.
struct Groups {
    transfers: bool,
    extensions: bool,
    scripts: bool,
    tls: bool,
    /// Only when named: it repeats the transfer rows twice over.
    events: bool,
}

fn main() -> ExitCode {
    // cargo passes `--bench`; the options of ours are `--quick` and the
    // names of groups
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan = if args.iter().any(|a| a == "--quick") {
        &QUICK
    } else {
        &FULL
    };
    let named: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(other) = named.iter().find(|a| !GROUPS.contains(a)) {
        eprintln!(
            "bench: no group of rows is called `{other}`; the groups are {}",
            GROUPS.join(", ")
        );
        return ExitCode::FAILURE;
    }
    let wanted = |group| named.is_empty() || named.contains(&group);
    let groups = Groups {
        transfers: wanted("transfers"),
        extensions: wanted("extensions"),
        scripts: wanted("scripts"),
        tls: wanted("tls"),
        events: named.contains(&"events"),
    };
    match run(plan, &groups) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(plan: &Plan, groups: &Groups) -> Result<()> {
    let started = Instant::now();
    let mut results = Results::default();
    if groups.transfers || groups.extensions {
        let bench = Bench::set_up(plan, groups.transfers)?;
        eprintln!(
            "bench: {} run, data in {} ({}), ready in {:.1} s, server on {}",
            plan.name,
            bench.dir.path().display(),
            file_system(bench.dir.path()),
            started.elapsed().as_secs_f64(),
            bench.server.addr
        );
        if groups.transfers {
            bench.measure(&mut results)?;
        }
        if groups.extensions {
            bench.measure_extensions(&mut results)?;
        }
        // before the scripts: stock Rhai's containers raise this process's
        // peak, and with it that of every child started afterwards
        eprintln!(
            "bench: file rows done in {:.1} s; the benchmark's own peak RSS, the floor \
             of the clients' figures, was {:.1} MiB",
            started.elapsed().as_secs_f64(),
            own_peak_rss_mib()?
        );
    }
    if groups.tls {
        tls_rows::measure(plan, &mut results)?;
    }
    if groups.scripts {
        measure_scripts(plan, &mut results)?;
    }
    if groups.events {
        measure_events(plan)?;
    }
    eprintln!("bench: done in {:.1} s", started.elapsed().as_secs_f64());
    // the JSON line of medians is the last line of the output
    results.print(plan);
    Ok(())
}

/// The data, the scripts and the server of one run. Dropping it stops the
/// server, then removes the temporary folder.
struct Bench<'p> {
    plan: &'p Plan,
    server: ServeChild,
    /// The server's root: `big.bin`, `mid.bin`, `small/f<i>`; uploads go
    /// under `up/`.
    root: PathBuf,
    /// Where `ioe run` runs and downloads land.
    client: PathBuf,
    /// The baseline's output file.
    baseline_out: PathBuf,
    scripts: PathBuf,
    // last, so it is removed after the server has stopped
    dir: TempDir,
}

/// Every repetition of every figure.
#[derive(Default)]
struct Results {
    baseline: Vec<f64>,
    down_big: Vec<f64>,
    up_big: Vec<f64>,
    down_mid: Vec<f64>,
    up_mid: Vec<f64>,
    rss_down_big: Vec<f64>,
    rss_up_big: Vec<f64>,
    rss_down_mid: Vec<f64>,
    rss_up_mid: Vec<f64>,
    small_down: Vec<f64>,
    small_up: Vec<f64>,
    empty_ms: Vec<f64>,
    rss_empty: Vec<f64>,
    push_stock_ms: Vec<f64>,
    push_ms: Vec<f64>,
    map_stock_ms: Vec<f64>,
    map_ms: Vec<f64>,
    /// Reading `big.bin` once in this process (MB/s).
    read_once: Vec<f64>,
    /// `HASH` of `big.bin`, its digest not cached (MB/s).
    hash_blake3: Vec<f64>,
    hash_sha256: Vec<f64>,
    /// `HASH` of `big.bin` again, its digest cached (ms).
    hash_cached_ms: Vec<f64>,
    /// `read_with` of `big.bin` (ms): plain, verified and resumed, with the
    /// server's digest not cached and cached.
    plain_ms: Vec<f64>,
    verified_ms: Vec<f64>,
    verified_cached_ms: Vec<f64>,
    resumed_ms: Vec<f64>,
    resumed_cached_ms: Vec<f64>,
    /// The capped-link rows, one per entry of [`LINKS`].
    links: [LinkTimes; LINKS.len()],
    /// The `tls` rows.
    tls: tls_rows::TlsTimes,
}

/// `read_with` of `link.bin` through one capped link (ms): plain, verified
/// and resumed, with the server's digest not cached.
#[derive(Default)]
struct LinkTimes {
    plain_ms: Vec<f64>,
    verified_ms: Vec<f64>,
    resumed_ms: Vec<f64>,
}

impl<'p> Bench<'p> {
    /// Makes the data (only `big.bin` without `transfers`), the scripts
    /// and the server.
    fn set_up(plan: &'p Plan, transfers: bool) -> Result<Bench<'p>> {
        let dir = TempDir::new().context("cannot create the temporary folder")?;
        spread_new_folders(dir.path());
        let root = dir.path().join("root");
        let client = dir.path().join("client");
        let scripts = dir.path().join("scripts");
        for folder in [&root, &root.join("small"), &client, &scripts] {
            fs::create_dir_all(folder)?;
        }
        // the parents of each round's small files
        for folder in [root.join("up"), client.join("got")] {
            fs::create_dir(&folder)?;
            spread_new_folders(&folder);
        }
        fill_file(&root.join("big.bin"), plan.big, 1)?;
        let (mid, small_count) = match transfers {
            true => (plan.mid, plan.small_count),
            false => (0, 0),
        };
        fill_file(&root.join("mid.bin"), mid, 2)?;
        for i in 0..small_count {
            fill_file(
                &root.join(format!("small/f{i}")),
                plan.small_size,
                3 + i as u64,
            )?;
        }
        for (name, text) in [
            ("down.rhai", DOWNLOAD_SCRIPT),
            ("up.rhai", UPLOAD_SCRIPT),
            ("small.rhai", SMALL_FILES_SCRIPT),
            ("empty.rhai", ""),
        ] {
            fs::write(scripts.join(name), text)?;
        }
        let server = ServeChild::start(&root)?;
        Ok(Bench {
            plan,
            server,
            baseline_out: dir.path().join("baseline.out"),
            root,
            client,
            scripts,
            dir,
        })
    }

    fn measure(&self, r: &mut Results) -> Result<()> {
        let plan = self.plan;
        // one untimed pass of each kind warms caches and fails early
        self.baseline()?;
        self.download("big.bin", plan.big)?;
        self.upload("big.bin", plan.big)?;
        self.small_files("warm-up")?;
        for round in 0..plan.rounds {
            eprintln!("bench: round {} of {}", round + 1, plan.rounds);
            // the three 1 GiB figures take turns going first, so that none
            // always follows the same step
            for step in 0..3 {
                match (round + step) % 3 {
                    0 => r.baseline.push(mb_per_s(plan.big, self.baseline()?)),
                    1 => {
                        let down = self.download("big.bin", plan.big)?;
                        r.down_big.push(mb_per_s(plan.big, down.wall));
                        r.rss_down_big.push(down.peak_rss_mib);
                    }
                    _ => {
                        let up = self.upload("big.bin", plan.big)?;
                        r.up_big.push(mb_per_s(plan.big, up.wall));
                        r.rss_up_big.push(up.peak_rss_mib);
                    }
                }
            }
            let down = self.download("mid.bin", plan.mid)?;
            r.down_mid.push(mb_per_s(plan.mid, down.wall));
            r.rss_down_mid.push(down.peak_rss_mib);
            let up = self.upload("mid.bin", plan.mid)?;
            r.up_mid.push(mb_per_s(plan.mid, up.wall));
            r.rss_up_mid.push(up.peak_rss_mib);
            let (down, up) = self.small_files(&format!("r{round}"))?;
            r.small_down
                .push(plan.small_count as f64 / down.as_secs_f64());
            r.small_up.push(plan.small_count as f64 / up.as_secs_f64());
        }
        let empty = self.scripts.join("empty.rhai");
        for _ in 0..plan.empty_runs {
            let run = self.ioe_run(&empty, &[])?;
            r.empty_ms.push(run.wall.as_secs_f64() * 1000.0);
            r.rss_empty.push(run.peak_rss_mib);
        }
        Ok(())
    }

    /// The baseline: a plain socket copy of `big.bin` into a file through
    /// 256 KiB buffers on both sides, byte-checked. Returns the time from connect to the
    /// closed output file.
    fn baseline(&self) -> Result<Duration> {
        let source = self.root.join("big.bin");
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let start = Instant::now();
        let sender = {
            let source = source.clone();
            thread::spawn(move || -> io::Result<u64> {
                let mut file = File::open(source)?;
                let mut stream = TcpStream::connect(addr)?;
                stream.set_write_timeout(Some(STEP_LIMIT))?;
                copy_through_buffer(&mut file, &mut stream)
            })
        };
        let (mut stream, _) = listener.accept()?;
        stream.set_read_timeout(Some(STEP_LIMIT))?;
        let mut out = File::create(&self.baseline_out)?;
        let received = copy_through_buffer(&mut stream, &mut out)?;
        drop(out);
        let elapsed = start.elapsed();
        let sent = sender.join().expect("the sender thread does not panic")?;
        ensure!(
            sent == self.plan.big && received == sent,
            "baseline: sent {sent}, received {received} bytes"
        );
        check_same(&source, &self.baseline_out)?;
        fs::remove_file(&self.baseline_out)?;
        Ok(elapsed)
    }

    /// `ioe run down.rhai`: `name` from the server into the client folder.
    fn download(&self, name: &str, size: u64) -> Result<Run> {
        let local = self.client.join(name);
        let run = self.ioe_run(
            &self.scripts.join("down.rhai"),
            &[&self.server.addr, name, &local.to_string_lossy()],
        )?;
        check_size(&local, size)?;
        check_same(&self.root.join(name), &local)?;
        fs::remove_file(&local)?;
        Ok(run)
    }

    /// `ioe run up.rhai`: the server's own `name` uploaded again as `up/<name>`.
    fn upload(&self, name: &str, size: u64) -> Result<Run> {
        let source = self.root.join(name);
        let remote = format!("up/{name}");
        let run = self.ioe_run(
            &self.scripts.join("up.rhai"),
            &[&self.server.addr, &source.to_string_lossy(), &remote],
        )?;
        let arrived = self.root.join(&remote);
        check_size(&arrived, size)?;
        check_same(&source, &arrived)?;
        fs::remove_file(&arrived)?;
        Ok(run)
    }

    /// `ioe run small.rhai`: every small file down, then up again, over one
    /// session, into folders of their own (`round`), byte-checked. Returns
    /// the script's own timing of each phase.
    ///
    /// The copies stay until the end: on ext4 without a journal (this
    /// machine's disk) a new file skips every inode freed in the last
    /// minute or more, so deleting thousands of files between rounds would
    /// slow the next round's every file creation (see
    /// [`spread_new_folders`]).
    fn small_files(&self, round: &str) -> Result<(Duration, Duration)> {
        // unique to this run, so that ext4 does not hash the folder to the
        // block group the previous run used
        let run = self.dir.path().file_name().unwrap_or_default();
        let round = &format!("{round}{}", run.to_string_lossy());
        let count = self.plan.small_count.to_string();
        let run = self.ioe_run(
            &self.scripts.join("small.rhai"),
            &[&self.server.addr, &count, round],
        )?;
        let phase = |label: &str| -> Result<Duration> {
            let micros = run
                .stdout
                .lines()
                .find_map(|line| line.strip_prefix(label)?.trim().parse::<u64>().ok())
                .with_context(|| format!("no `{label}` line in {:?}", run.stdout))?;
            Ok(Duration::from_micros(micros.max(1)))
        };
        let (down, up) = (phase("down_us ")?, phase("up_us ")?);
        let got = self.client.join("got").join(round);
        let uploaded = self.root.join("up").join(round);
        for i in 0..self.plan.small_count {
            let original = self.root.join(format!("small/f{i}"));
            check_same(&original, &got.join(format!("f{i}")))?;
            check_same(&original, &uploaded.join(format!("f{i}")))?;
        }
        Ok((down, up))
    }

    /// The extension rows, over one session in this process, after one
    /// untimed pass of each step; in each round the steps take turns going
    /// first.
    fn measure_extensions(&self, r: &mut Results) -> Result<()> {
        let mut ext = Extensions::start(self)?;
        let mut warm_up = Results::default();
        for step in 0..EXTENSION_STEPS {
            ext.step(step, &mut warm_up)?;
        }
        for round in 0..self.plan.rounds {
            eprintln!(
                "bench: extensions, round {} of {}",
                round + 1,
                self.plan.rounds
            );
            for step in 0..EXTENSION_STEPS {
                ext.step((round + step) % EXTENSION_STEPS, r)?;
            }
        }
        ext.bye()
    }

    /// Runs `ioe run SCRIPT ARGS...` in the client folder and waits for it
    /// to succeed.
    fn ioe_run(&self, script: &Path, args: &[&str]) -> Result<Run> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command
            .arg("run")
            .arg(script)
            .args(args)
            .current_dir(&self.client)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let what = format!("ioe run {} {}", script.display(), args.join(" "));
        let (run, status) = run_measured(command).with_context(|| what.clone())?;
        if !status.success {
            bail!(
                "`{what}` failed ({}); its output: {}",
                status.describe(),
                run.stdout
            );
        }
        Ok(run)
    }
}

/// The steps of the extension rows on loopback; the capped-link steps
/// follow them.
const LOOPBACK_STEPS: usize = 6;
/// The steps of each capped link: plain, verified, resumed.
const LINK_STEPS: usize = 3;
/// The steps of the extension rows, which take turns going first.
const EXTENSION_STEPS: usize = LOOPBACK_STEPS + LINK_STEPS * LINKS.len();

/// The sessions of the extension rows, with what they check their results
/// against.
struct Extensions {
    /// `big.bin`, straight to the server.
    direct: Remote,
    /// `link.bin`, one session through each link of [`LINKS`]; each relay
    /// after its session, so that the session closes first.
    links: Vec<(Remote, Relay)>,
    /// `big.bin`'s digests, computed here once.
    digests: Vec<(Algorithm, String)>,
    /// How many times a source's mtime was changed.
    touches: u64,
}

/// One source file downloaded over one session.
struct Remote {
    session: Session,
    /// Its name on the server.
    name: &'static str,
    /// The file in the server's root.
    source: PathBuf,
    /// Where the downloads land.
    local: PathBuf,
    size: u64,
}

impl Extensions {
    fn start(bench: &Bench) -> Result<Extensions> {
        let source = bench.root.join("big.bin");
        let mut digests = Vec::new();
        for algorithm in Algorithm::ALL {
            let start = Instant::now();
            let hex = digest::hash_reader(algorithm, File::open(&source)?)?;
            eprintln!(
                "bench: {} of big.bin in this process, one pass: {:.0} MB/s",
                algorithm.name(),
                mb_per_s(bench.plan.big, start.elapsed())
            );
            digests.push((algorithm, hex));
        }
        let direct = Remote {
            session: Session::connect(&bench.server.addr)?,
            name: "big.bin",
            source,
            local: bench.client.join("ext.bin"),
            size: bench.plan.big,
        };
        let link_source = bench.root.join("link.bin");
        fill_file(&link_source, bench.plan.link, 4)?;
        let upstream: SocketAddr = bench.server.addr.parse()?;
        let mut links = Vec::new();
        for link in &LINKS {
            let relay = Relay::start(upstream, link.rate)?;
            let remote = Remote {
                session: Session::connect(&relay.addr.to_string())?,
                name: "link.bin",
                source: link_source.clone(),
                local: bench.client.join("link.bin"),
                size: bench.plan.link,
            };
            links.push((remote, relay));
        }
        Ok(Extensions {
            direct,
            links,
            digests,
            touches: 0,
        })
    }

    /// One step of the extension rows (`step` < [`EXTENSION_STEPS`]); a
    /// step that measures with the digest cache missed first changes the
    /// source's mtime, which the cache's key holds.
    fn step(&mut self, step: usize, r: &mut Results) -> Result<()> {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        if let Some(link_step) = step.checked_sub(LOOPBACK_STEPS) {
            let link = link_step / LINK_STEPS;
            let remote = &mut self.links[link].0;
            let times = &mut r.links[link];
            match link_step % LINK_STEPS {
                0 => times.plain_ms.push(ms(remote.download(false)?)),
                1 => {
                    touch(&remote.source, &mut self.touches)?;
                    times.verified_ms.push(ms(remote.download(true)?));
                }
                _ => {
                    touch(&remote.source, &mut self.touches)?;
                    times.resumed_ms.push(ms(remote.resumed()?));
                }
            }
            return Ok(());
        }
        let size = self.direct.size;
        match step {
            0 => r.read_once.push(mb_per_s(size, self.read_once()?)),
            1 => {
                touch(&self.direct.source, &mut self.touches)?;
                r.hash_blake3
                    .push(mb_per_s(size, self.hash(Algorithm::Blake3)?));
                r.hash_cached_ms.push(ms(self.hash(Algorithm::Blake3)?));
            }
            2 => {
                touch(&self.direct.source, &mut self.touches)?;
                r.hash_sha256
                    .push(mb_per_s(size, self.hash(Algorithm::Sha256)?));
            }
            3 => r.plain_ms.push(ms(self.direct.download(false)?)),
            4 => {
                touch(&self.direct.source, &mut self.touches)?;
                r.verified_ms.push(ms(self.direct.download(true)?));
                r.verified_cached_ms.push(ms(self.direct.download(true)?));
            }
            _ => {
                touch(&self.direct.source, &mut self.touches)?;
                r.resumed_ms.push(ms(self.direct.resumed()?));
                r.resumed_cached_ms.push(ms(self.direct.resumed()?));
            }
        }
        Ok(())
    }

    /// Ends every session politely.
    fn bye(mut self) -> Result<()> {
        self.direct.session.bye()?;
        for (remote, _) in &mut self.links {
            remote.session.bye()?;
        }
        Ok(())
    }

    /// Reads `big.bin` once into a 256 KiB buffer, as `cat > /dev/null`
    /// does.
    fn read_once(&self) -> Result<Duration> {
        let start = Instant::now();
        let read = copy_through_buffer(&mut File::open(&self.direct.source)?, &mut io::sink())?;
        let elapsed = start.elapsed();
        ensure!(read == self.direct.size, "read {read} bytes of big.bin");
        Ok(elapsed)
    }

    /// `HASH,<algorithm>,big.bin`, its digest checked.
    fn hash(&mut self, algorithm: Algorithm) -> Result<Duration> {
        let start = Instant::now();
        let (_, hex) = self.direct.session.hash("big.bin", Some(algorithm))?;
        let elapsed = start.elapsed();
        let expected = self.digests.iter().find(|(a, _)| *a == algorithm);
        ensure!(
            expected.is_some_and(|(_, known)| *known == hex),
            "HASH gave {} {hex}, not the digest computed here",
            algorithm.name()
        );
        Ok(elapsed)
    }
}

/// Gives `path` an mtime no source has had in this run, so that the
/// server's digest cache misses.
fn touch(path: &Path, touches: &mut u64) -> Result<()> {
    *touches += 1;
    let mtime = UNIX_EPOCH + Duration::from_secs(1_700_000_000 + *touches);
    let file = File::options().write(true).open(path)?;
    file.set_modified(mtime)?;
    Ok(())
}

impl Remote {
    /// `read_with` of the source, its mtime kept, verified or not;
    /// byte-checked.
    fn download(&mut self, verify: bool) -> Result<Duration> {
        let options = TransferOptions {
            mtime: true,
            verify,
            resume: false,
        };
        let (elapsed, done) = self.read_with(&options)?;
        ensure!(
            done.moved == self.size && done.digest.is_some() == verify,
            "download of {} (verify: {verify}): {done:?}",
            self.name
        );
        Ok(elapsed)
    }

    /// `read_with` `resume` of the source, from a part file holding the
    /// first [`CUT`] of it under the name the client gives it, copied
    /// here (untimed) rather than left by a real interruption; checks that
    /// only the rest moved and the part is gone.
    fn resumed(&mut self) -> Result<Duration> {
        let entry = self.session.stat(self.name)?;
        let part = ioe::session::part_path(&self.local, entry.size, entry.mtime);
        let cut = (self.size as f64 * CUT) as u64;
        let mut prefix = File::open(&self.source)?.take(cut);
        let copied = copy_through_buffer(&mut prefix, &mut File::create(&part)?)?;
        ensure!(
            copied == cut,
            "copied {copied} of {cut} bytes into the part"
        );
        let options = TransferOptions {
            mtime: true,
            verify: false,
            resume: true,
        };
        let (elapsed, done) = self.read_with(&options)?;
        ensure!(
            done.resumed_from == cut && done.moved == self.size - cut && done.digest.is_some(),
            "the download of {} did not resume at byte {cut}: {done:?}",
            self.name
        );
        ensure!(!part.exists(), "`{}` is left over", part.display());
        Ok(elapsed)
    }

    /// Times `read_with` of the source, checks the copy and removes it.
    fn read_with(&mut self, options: &TransferOptions) -> Result<(Duration, Transferred)> {
        let start = Instant::now();
        let done = self.session.read_with(self.name, &self.local, options)?;
        let elapsed = start.elapsed();
        check_size(&self.local, self.size)?;
        check_same(&self.source, &self.local)?;
        fs::remove_file(&self.local)?;
        Ok((elapsed, done))
    }
}

/// A relay on 127.0.0.1 to `upstream` that passes bytes on both ways as
/// they come, the server → client way capped at a rate ([`forward`]).
/// On drop it stops accepting, shuts every relayed connection down and
/// waits for its threads; a connection also ends with its peers, after
/// [`RELAY_IDLE`] without a byte, or after [`RELAY_LIFETIME`].
struct Relay {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accepting: Option<JoinHandle<()>>,
    relayed: Arc<Mutex<Relayed>>,
}

/// The relay's connections: their sockets (to shut down) and threads.
#[derive(Default)]
struct Relayed {
    sockets: Vec<TcpStream>,
    threads: Vec<JoinHandle<()>>,
}

impl Relay {
    fn start(upstream: SocketAddr, rate: u64) -> Result<Relay> {
        ensure!(
            upstream.ip().is_loopback(),
            "the relay is for 127.0.0.1 only"
        );
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let relayed = Arc::new(Mutex::new(Relayed::default()));
        let (stopping, adding) = (Arc::clone(&stop), Arc::clone(&relayed));
        let accepting = thread::spawn(move || {
            for client in listener.incoming() {
                if stopping.load(Ordering::Relaxed) {
                    return;
                }
                if let Ok(client) = client {
                    // a connection that cannot be set up is dropped, which
                    // its client sees as a failure
                    let _ = relay(client, upstream, rate, &adding);
                }
            }
        });
        Ok(Relay {
            addr,
            stop,
            accepting: Some(accepting),
            relayed,
        })
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // wakes the accepting thread, which then sees `stop`
        let _ = TcpStream::connect(self.addr);
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
        let relayed = std::mem::take(&mut *lock(&self.relayed));
        for socket in &relayed.sockets {
            let _ = socket.shutdown(Shutdown::Both);
        }
        for thread in relayed.threads {
            let _ = thread.join();
        }
    }
}

fn lock(relayed: &Mutex<Relayed>) -> std::sync::MutexGuard<'_, Relayed> {
    relayed
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Connects `client` to `upstream` through two threads: client → server
/// as it comes, server → client at `rate`.
fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    rate: u64,
    relayed: &Mutex<Relayed>,
) -> io::Result<()> {
    let server = TcpStream::connect_timeout(&upstream, Duration::from_secs(10))?;
    let deadline = Instant::now() + RELAY_LIFETIME;
    let mut relayed = lock(relayed);
    for socket in [&client, &server] {
        socket.set_nodelay(true)?;
        socket.set_read_timeout(Some(RELAY_IDLE))?;
        socket.set_write_timeout(Some(RELAY_IDLE))?;
        relayed.sockets.push(socket.try_clone()?);
    }
    let (from, to) = (client.try_clone()?, server.try_clone()?);
    relayed
        .threads
        .push(thread::spawn(move || forward(from, to, None, deadline)));
    relayed.threads.push(thread::spawn(move || {
        forward(server, client, Some(rate), deadline)
    }));
    Ok(())
}

/// Passes `from` → `to` in chunks of up to [`RELAY_CHUNK`] until `from`
/// ends, a write fails or `deadline` passes; the end is passed on as a
/// shutdown of `to`'s writing side. With a `rate` (bytes per second), a
/// token bucket one chunk deep paces it: a chunk of n bytes leaves once
/// n bytes of credit have accrued at `rate`, and an idle link keeps no
/// more than one chunk of credit, so it never runs faster than `rate`
/// for more than one chunk. The wait is one `sleep` to the instant the
/// credit is there, kept on an ideal clock so that late wake-ups do not
/// add up.
fn forward(mut from: TcpStream, mut to: TcpStream, rate: Option<u64>, deadline: Instant) {
    let mut buf = vec![0u8; RELAY_CHUNK];
    let seconds = |bytes: usize, rate: u64| Duration::from_secs_f64(bytes as f64 / rate as f64);
    // the instant the credit for every byte passed on so far has accrued
    let mut paid_until = Instant::now();
    while Instant::now() < deadline {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        };
        if let Some(rate) = rate {
            let now = Instant::now();
            let full = now.checked_sub(seconds(RELAY_CHUNK, rate)).unwrap_or(now);
            paid_until = paid_until.max(full) + seconds(n, rate);
            if paid_until > now {
                thread::sleep(paid_until - now);
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}

/// The script rows: the array and the map script, each run through
/// `ioe run -e` and through a stock Rhai engine, in turns (who goes first
/// alternates), after one untimed pass of each.
fn measure_scripts(plan: &Plan, r: &mut Results) -> Result<()> {
    let dir = TempDir::new().context("cannot create the temporary folder")?;
    let push = format!("const N = {};{PUSH_SCRIPT}", plan.pushes);
    let map = format!("const N = {};{MAP_SCRIPT}", plan.map_keys);
    for code in [&push, &map] {
        ioe_script_ms(dir.path(), code)?;
        stock_script_ms(code)?;
    }
    for round in 0..plan.rounds {
        eprintln!("bench: scripts, round {} of {}", round + 1, plan.rounds);
        for (code, stock, ioe) in [
            (&push, &mut r.push_stock_ms, &mut r.push_ms),
            (&map, &mut r.map_stock_ms, &mut r.map_ms),
        ] {
            if round % 2 == 0 {
                stock.push(stock_script_ms(code)?);
                ioe.push(ioe_script_ms(dir.path(), code)?);
            } else {
                ioe.push(ioe_script_ms(dir.path(), code)?);
                stock.push(stock_script_ms(code)?);
            }
        }
    }
    Ok(())
}

/// Runs `code` with `ioe run -e` in `dir`; returns the time the script
/// printed (`us N`), in milliseconds.
fn ioe_script_ms(dir: &Path, code: &str) -> Result<f64> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
    command
        .args(["run", "--no-progress", "-e", code])
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let what = format!("ioe run -e {code:?}");
    let (run, status) = run_measured(command).with_context(|| what.clone())?;
    if !status.success {
        bail!(
            "`{what}` failed ({}); its output: {}",
            status.describe(),
            run.stdout
        );
    }
    script_ms(&run.stdout).with_context(|| what.clone())
}

/// Runs `code` on a stock `rhai::Engine::new()` in this process; returns
/// the time the script printed (`us N`), in milliseconds.
fn stock_script_ms(code: &str) -> Result<f64> {
    let printed = Rc::new(RefCell::new(String::new()));
    let mut engine = rhai::Engine::new();
    let sink = Rc::clone(&printed);
    engine.on_print(move |text| {
        let mut sink = sink.borrow_mut();
        sink.push_str(text);
        sink.push('\n');
    });
    engine
        .run(code)
        .map_err(|e| anyhow!("stock Rhai failed: {e}"))?;
    let printed = printed.borrow();
    script_ms(&printed).context("stock Rhai")
}

/// The `us N` line a script printed, in milliseconds.
fn script_ms(stdout: &str) -> Result<f64> {
    let micros = stdout
        .lines()
        .find_map(|line| line.strip_prefix("us ")?.trim().parse::<u64>().ok())
        .with_context(|| format!("no `us` line in {stdout:?}"))?;
    Ok(micros as f64 / 1000.0)
}

/// One finished `ioe` process.
struct Run {
    /// From spawn to exit.
    wall: Duration,
    /// The kernel's high-water mark of its resident memory.
    peak_rss_mib: f64,
    /// Its CPU time, user and system.
    cpu: Duration,
    stdout: String,
}

/// How a process ended.
struct Ended {
    success: bool,
    raw: libc::c_int,
}

impl Ended {
    fn describe(&self) -> String {
        if libc::WIFEXITED(self.raw) {
            format!("exit status {}", libc::WEXITSTATUS(self.raw))
        } else if libc::WIFSIGNALED(self.raw) {
            format!("killed by signal {}", libc::WTERMSIG(self.raw))
        } else {
            format!("wait status {}", self.raw)
        }
    }
}

/// Spawns `command`, kills it after [`STEP_LIMIT`], and reaps it with
/// `wait4` to learn its peak RSS. Its stdout must be piped and small.
fn run_measured(mut command: Command) -> Result<(Run, Ended)> {
    let start = Instant::now();
    let mut child: Child = command.spawn().context("cannot start it")?;
    let pid = libc::pid_t::try_from(child.id()).context("pid out of range")?;
    let (stop_watchdog, stopped) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let expired = stopped.recv_timeout(STEP_LIMIT) == Err(mpsc::RecvTimeoutError::Timeout);
        if expired {
            // SAFETY: the child is not reaped before this thread is joined,
            // so `pid` still names it (at worst as a zombie)
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        expired
    });
    // wait for the exit without reaping, so that the pid stays ours while
    // the watchdog may still signal it
    loop {
        // SAFETY: a zeroed siginfo_t is a valid out-parameter
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: plain system call on our own child
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e).context("waitid");
        }
    }
    let wall = start.elapsed();
    drop(stop_watchdog);
    let expired = watchdog.join().expect("the watchdog does not panic");
    let mut raw = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: reaps our own exited child
    let rc = unsafe { libc::wait4(pid, &mut raw, 0, &mut usage) };
    if rc != pid {
        return Err(io::Error::last_os_error()).context("wait4");
    }
    if expired {
        bail!("still running after {} s; killed", STEP_LIMIT.as_secs());
    }
    let mut stdout = String::new();
    if let Some(mut pipe) = child.stdout.take() {
        pipe.read_to_string(&mut stdout)?;
    }
    let success = libc::WIFEXITED(raw) && libc::WEXITSTATUS(raw) == 0;
    let run = Run {
        wall,
        // Linux reports ru_maxrss in KiB
        peak_rss_mib: usage.ru_maxrss as f64 / 1024.0,
        cpu: [usage.ru_utime, usage.ru_stime]
            .iter()
            .map(|t| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64))
            .sum(),
        stdout,
    };
    Ok((run, Ended { success, raw }))
}

/// The plain copy of the baseline: `read` into a 256 KiB buffer, `write`
/// it all, until the end of the input.
fn copy_through_buffer(input: &mut impl Read, output: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0; BUFFER];
    let mut copied = 0;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return Ok(copied),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        output.write_all(&buf[..n])?;
        copied += n as u64;
    }
}

/// Writes `size` pseudo-random bytes (xorshift, seeded) to `path`.
fn fill_file(path: &Path, size: u64, seed: u64) -> io::Result<()> {
    let mut out = File::create(path)?;
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut buf = vec![0u8; BUFFER];
    let mut left = size;
    while left > 0 {
        for word in buf.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.copy_from_slice(&state.to_le_bytes());
        }
        let n = left.min(BUFFER as u64) as usize;
        out.write_all(&buf[..n])?;
        left -= n as u64;
    }
    // written back now, so that no writeback of the inputs disturbs timings
    out.sync_all()
}

fn check_size(path: &Path, size: u64) -> Result<()> {
    let found = fs::metadata(path)
        .with_context(|| format!("`{}` did not arrive", path.display()))?
        .len();
    ensure!(
        found == size,
        "`{}` has {found} bytes, not {size}",
        path.display()
    );
    Ok(())
}

fn mb_per_s(bytes: u64, time: Duration) -> f64 {
    bytes as f64 / time.as_secs_f64() / 1e6
}

/// The high-water mark of this process's resident memory (`VmHWM`). A
/// child reads it as the start of its own, so it is the floor of the
/// clients' RSS figures. (`getrusage` would not do: it also counts the peak
/// of whatever process started this one, such as cargo.)
fn own_peak_rss_mib() -> Result<f64> {
    let status = fs::read_to_string("/proc/self/status")?;
    let kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .context("no VmHWM in /proc/self/status")?;
    Ok(kib / 1024.0)
}

/// Makes the folders created in `dir` spread over the disk instead of
/// sitting beside it (ext4's top-directory flag, `chattr +T`); other file
/// systems refuse it, which changes nothing.
///
/// On ext4 without a journal, as on this machine, creating a file checks,
/// one by one, every inode freed in its block group in the last minute (five
/// if not yet written back) and skips them: files made beside the 24,000
/// that the previous run just deleted are created ten times slower. Spread
/// folders land in other groups.
fn spread_new_folders(dir: &Path) {
    use rustix::fs::{IFlags, ioctl_getflags, ioctl_setflags};
    let Ok(folder) = File::open(dir) else {
        return;
    };
    if let Ok(flags) = ioctl_getflags(&folder) {
        let _ = ioctl_setflags(&folder, flags | IFlags::TOPDIR);
    }
}

/// The kind of file system at `path`, which decides much of the
/// small-file rates.
fn file_system(path: &Path) -> String {
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return "unknown file system".into();
    };
    // SAFETY: a zeroed statfs is a valid out-parameter
    let mut info: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: a NUL-terminated path and a valid out-parameter
    if unsafe { libc::statfs(c_path.as_ptr(), &mut info) } != 0 {
        return "unknown file system".into();
    }
    match info.f_type {
        0xEF53 => "ext2/3/4".into(),
        0x0102_1994 => "tmpfs".into(),
        0x5846_5342 => "xfs".into(),
        0x9123_683E => "btrfs".into(),
        other => format!("file system type {other:#x}"),
    }
}

/// Median, min and max of some repetitions.
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

fn stats(values: &[f64]) -> Stats {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    };
    Stats {
        median,
        min: sorted[0],
        max: sorted[n - 1],
    }
}

/// One line of the table.
struct Row<'a> {
    what: String,
    values: &'a [f64],
    unit: &'static str,
    decimals: usize,
    /// How fast it was against its baseline's median (1.00: as fast), for
    /// the rows that have one; the baselines themselves show 1.00.
    vs: Option<f64>,
    /// Whether `vs` is a cost instead: its time over the baseline's
    /// (lower is better), shown as `1.20× time`.
    cost: bool,
    /// The key of its median in the JSON line.
    key: &'static str,
    /// The key of its `vs` in the JSON line (the baselines have none).
    ratio_key: Option<&'static str>,
}

/// The median of some repetitions; `None` if that row did not run.
fn median(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| stats(values).median)
}

impl Results {
    fn rows(&self, plan: &Plan) -> Vec<Row<'_>> {
        let big = size_label(plan.big);
        let mid = size_label(plan.mid);
        let small = format!("{} × {}", plan.small_count, size_label(plan.small_size));
        let pushes = count_label(plan.pushes);
        let keys = count_label(plan.map_keys);
        let row = |what: String, values, unit, key| Row {
            what,
            values,
            unit,
            decimals: if unit == "MiB" || unit == "ms" { 1 } else { 0 },
            vs: None,
            cost: false,
            key,
            ratio_key: None,
        };
        // throughput over the socket copy's; stock Rhai's time over ioe's
        let rate_vs = |values: &[f64]| Some(median(values)? / median(&self.baseline)?);
        let time_vs = |stock: &[f64], values: &[f64]| Some(median(stock)? / median(values)?);
        // digest rates over reading the file once; download times over the
        // plain download's
        let read_vs = |values: &[f64]| Some(median(values)? / median(&self.read_once)?);
        let cost_vs = |values: &[f64]| Some(median(values)? / median(&self.plain_ms)?);
        let cut = format!("{big} cut at {:.0} %", CUT * 100.0);
        let mut rows = vec![
            Row {
                vs: Some(1.0),
                ..row(
                    format!("baseline: socket → file, {big}"),
                    &self.baseline,
                    "MB/s",
                    "baseline_mb_s",
                )
            },
            Row {
                vs: rate_vs(&self.down_big),
                ratio_key: Some("download_ratio"),
                ..row(
                    format!("ioe download, {big}"),
                    &self.down_big,
                    "MB/s",
                    "download_mb_s",
                )
            },
            Row {
                vs: rate_vs(&self.up_big),
                ratio_key: Some("upload_ratio"),
                ..row(
                    format!("ioe upload, {big}"),
                    &self.up_big,
                    "MB/s",
                    "upload_mb_s",
                )
            },
            row(
                format!("ioe download, {mid}"),
                &self.down_mid,
                "MB/s",
                "download_mid_mb_s",
            ),
            row(
                format!("ioe upload, {mid}"),
                &self.up_mid,
                "MB/s",
                "upload_mid_mb_s",
            ),
            row(
                format!("ioe download, {small}, one session"),
                &self.small_down,
                "files/s",
                "small_download_files_s",
            ),
            row(
                format!("ioe upload, {small}, one session"),
                &self.small_up,
                "files/s",
                "small_upload_files_s",
            ),
            row(
                format!("client peak RSS, download {mid}"),
                &self.rss_down_mid,
                "MiB",
                "rss_download_mid_mib",
            ),
            row(
                format!("client peak RSS, upload {mid}"),
                &self.rss_up_mid,
                "MiB",
                "rss_upload_mid_mib",
            ),
            row(
                format!("client peak RSS, download {big}"),
                &self.rss_down_big,
                "MiB",
                "rss_download_big_mib",
            ),
            row(
                format!("client peak RSS, upload {big}"),
                &self.rss_up_big,
                "MiB",
                "rss_upload_big_mib",
            ),
            row(
                "client peak RSS, empty script".into(),
                &self.rss_empty,
                "MiB",
                "rss_empty_mib",
            ),
            row(
                "`ioe run` of an empty script".into(),
                &self.empty_ms,
                "ms",
                "empty_run_ms",
            ),
            Row {
                vs: Some(1.0),
                ..row(
                    format!("baseline: read the file once, {big}"),
                    &self.read_once,
                    "MB/s",
                    "read_once_mb_s",
                )
            },
            Row {
                vs: read_vs(&self.hash_blake3),
                ratio_key: Some("hash_blake3_ratio"),
                ..row(
                    format!("`HASH` blake3, {big}, not cached"),
                    &self.hash_blake3,
                    "MB/s",
                    "hash_blake3_mb_s",
                )
            },
            Row {
                vs: read_vs(&self.hash_sha256),
                ratio_key: Some("hash_sha256_ratio"),
                ..row(
                    format!("`HASH` sha256, {big}, not cached"),
                    &self.hash_sha256,
                    "MB/s",
                    "hash_sha256_mb_s",
                )
            },
            Row {
                decimals: 2,
                ..row(
                    format!("`HASH` blake3, {big}, cached"),
                    &self.hash_cached_ms,
                    "ms",
                    "hash_cached_ms",
                )
            },
            Row {
                vs: Some(1.0),
                cost: true,
                ..row(
                    format!("baseline: `read_with` download, {big}"),
                    &self.plain_ms,
                    "ms",
                    "plain_download_ms",
                )
            },
            Row {
                vs: cost_vs(&self.verified_ms),
                cost: true,
                ratio_key: Some("verified_cost"),
                ..row(
                    format!("verified download, {big}, digest not cached"),
                    &self.verified_ms,
                    "ms",
                    "verified_download_ms",
                )
            },
            Row {
                vs: cost_vs(&self.verified_cached_ms),
                cost: true,
                ratio_key: Some("verified_cached_cost"),
                ..row(
                    format!("verified download, {big}, digest cached"),
                    &self.verified_cached_ms,
                    "ms",
                    "verified_cached_download_ms",
                )
            },
            Row {
                vs: cost_vs(&self.resumed_ms),
                cost: true,
                ratio_key: Some("resumed_cost"),
                ..row(
                    format!("resumed download, {cut}, digest not cached"),
                    &self.resumed_ms,
                    "ms",
                    "resumed_download_ms",
                )
            },
            Row {
                vs: cost_vs(&self.resumed_cached_ms),
                cost: true,
                ratio_key: Some("resumed_cached_cost"),
                ..row(
                    format!("resumed download, {cut}, digest cached"),
                    &self.resumed_cached_ms,
                    "ms",
                    "resumed_cached_download_ms",
                )
            },
        ];
        rows.extend(self.link_rows(plan));
        rows.extend(self.tls.rows(plan));
        rows.extend([
            Row {
                vs: Some(1.0),
                ..row(
                    format!("stock Rhai: {pushes} pushes, then a sum"),
                    &self.push_stock_ms,
                    "ms",
                    "push_stock_ms",
                )
            },
            Row {
                vs: time_vs(&self.push_stock_ms, &self.push_ms),
                ratio_key: Some("push_ratio"),
                ..row(
                    format!("`ioe run -e`: {pushes} pushes, then a sum"),
                    &self.push_ms,
                    "ms",
                    "push_ms",
                )
            },
            Row {
                vs: Some(1.0),
                ..row(
                    format!("stock Rhai: a {keys}-key map, set and read back"),
                    &self.map_stock_ms,
                    "ms",
                    "map_stock_ms",
                )
            },
            Row {
                vs: time_vs(&self.map_stock_ms, &self.map_ms),
                ratio_key: Some("map_ratio"),
                ..row(
                    format!("`ioe run -e`: a {keys}-key map, set and read back"),
                    &self.map_ms,
                    "ms",
                    "map_ms",
                )
            },
        ]);
        // a run of one group leaves the other's rows empty
        rows.into_iter()
            .filter(|row| !row.values.is_empty())
            .collect()
    }

    /// The capped-link rows: per link, the plain download (their baseline),
    /// then the verified and the resumed one with their costs.
    fn link_rows(&self, plan: &Plan) -> Vec<Row<'_>> {
        let size = size_label(plan.link);
        let cut = format!("{size} cut at {:.0} %", CUT * 100.0);
        let mut rows = Vec::new();
        for (link, times) in LINKS.iter().zip(&self.links) {
            let cost_vs = |values: &[f64]| Some(median(values)? / median(&times.plain_ms)?);
            let row = |what: String, values, key, vs, ratio_key| Row {
                what,
                values,
                unit: "ms",
                decimals: 1,
                vs,
                cost: true,
                key,
                ratio_key,
            };
            rows.extend([
                row(
                    format!(
                        "baseline: `read_with` download, {size}, over {}",
                        link.label
                    ),
                    &times.plain_ms,
                    link.plain_key,
                    Some(1.0),
                    None,
                ),
                row(
                    format!(
                        "verified download, {size}, over {}, digest not cached",
                        link.label
                    ),
                    &times.verified_ms,
                    link.verified_key,
                    cost_vs(&times.verified_ms),
                    Some(link.verified_cost_key),
                ),
                row(
                    format!(
                        "resumed download, {cut}, over {}, digest not cached",
                        link.label
                    ),
                    &times.resumed_ms,
                    link.resumed_key,
                    cost_vs(&times.resumed_ms),
                    Some(link.resumed_cost_key),
                ),
            ]);
        }
        rows
    }

    /// Prints the table, then the JSON line of medians.
    fn print(&self, plan: &Plan) {
        let empty_runs = if self.empty_ms.is_empty() {
            String::new()
        } else {
            format!(" ({} for the empty script)", plan.empty_runs)
        };
        println!(
            "\n{} run: {} rounds{empty_runs}; median [min–max]\n",
            plan.name, plan.rounds
        );
        println!("| what | median | min–max | unit | vs baseline |");
        println!("| --- | ---: | ---: | --- | ---: |");
        let mut json = format!(
            "{{\"mode\":\"{}\",\"big_bytes\":{},\"mid_bytes\":{},\"small_files\":{},\
             \"small_file_bytes\":{},\"pushes\":{},\"map_keys\":{}",
            plan.name,
            plan.big,
            plan.mid,
            plan.small_count,
            plan.small_size,
            plan.pushes,
            plan.map_keys
        );
        for row in self.rows(plan) {
            let s = stats(row.values);
            let d = row.decimals;
            let vs = match (row.vs, row.cost) {
                (Some(v), false) => format!("{v:.2}"),
                (Some(v), true) => format!("{v:.2}× time"),
                (None, _) => String::new(),
            };
            println!(
                "| {} | {:.d$} | {:.d$}–{:.d$} | {} | {vs} |",
                row.what, s.median, s.min, s.max, row.unit
            );
            json.push_str(&format!(",\"{}\":{:.3}", row.key, s.median));
            if let (Some(key), Some(vs)) = (row.ratio_key, row.vs) {
                json.push_str(&format!(",\"{key}\":{vs:.3}"));
            }
        }
        println!("\n{json}}}");
    }
}

/// `1 M`, `100 k`, `10 k` (the plans use whole units).
fn count_label(count: u64) -> String {
    if count >= 1_000_000 {
        format!("{} M", count / 1_000_000)
    } else if count >= 1000 {
        format!("{} k", count / 1000)
    } else {
        count.to_string()
    }
}

/// `1 GiB`, `64 MiB`, `4 KiB` (the plans use whole units).
fn size_label(bytes: u64) -> String {
    if bytes >= GIB {
        format!("{} GiB", bytes / GIB)
    } else if bytes >= MIB {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{} KiB", bytes / KIB)
    }
}

// ---------------------------------------------------------------------------
// The `events` rows: what `ioe run --events FILE` costs the transfers.

/// Each row's times with `--events` off and on, and on ÷ off per round.
#[derive(Default)]
struct EventTimes {
    off: Vec<f64>,
    on: Vec<f64>,
    ratio: Vec<f64>,
}

impl EventTimes {
    fn add(&mut self, off: Duration, on: Duration) {
        let (off, on) = (off.as_secs_f64(), on.as_secs_f64());
        self.off.push(off * 1000.0);
        self.on.push(on * 1000.0);
        self.ratio.push(on / off);
    }
}

/// The script-level transfers of the `transfers` rows (the big file down
/// and up, the small files down and up over one session), each run with
/// `--events` off and on back to back, which of the two goes first
/// alternating by round; prints each row's median times and the median of
/// the per-round ratios (on ÷ off: 1.00 costs nothing).
fn measure_events(plan: &Plan) -> Result<()> {
    let bench = Bench::set_up(plan, true)?;
    let events = bench.dir.path().join("events.ndjson");
    let labels = [
        format!("download {} (`ioe run`)", size_label(plan.big)),
        format!("upload {} (`ioe run`)", size_label(plan.big)),
        format!(
            "download {} × {}",
            plan.small_count,
            size_label(plan.small_size)
        ),
        format!(
            "upload {} × {}",
            plan.small_count,
            size_label(plan.small_size)
        ),
    ];
    let mut rows: [EventTimes; 4] = Default::default();
    // untimed: warms caches, and checks that events are written
    bench.event_round(Some(&events), "ew")?;
    let lines = fs::read_to_string(&events)?.lines().count();
    // per job: its start, connect and end; one line per file
    let expected = 3 * 3 + 2 + 2 * plan.small_count;
    ensure!(
        lines == expected,
        "events: {lines} lines written, {expected} expected"
    );
    // the pairs differ by little, the machine's noise by much: more rounds
    let rounds = plan.rounds * EVENT_ROUNDS;
    for round in 0..rounds {
        eprintln!("bench: events, round {} of {rounds}", round + 1);
        fs::remove_file(&events)?;
        let (off, on) = if round % 2 == 0 {
            let off = bench.event_round(None, &format!("e{round}off"))?;
            (
                off,
                bench.event_round(Some(&events), &format!("e{round}on"))?,
            )
        } else {
            let on = bench.event_round(Some(&events), &format!("e{round}on"))?;
            (bench.event_round(None, &format!("e{round}off"))?, on)
        };
        for (row, (off, on)) in rows.iter_mut().zip(off.into_iter().zip(on)) {
            row.add(off, on);
        }
    }
    println!(
        "\n{} run: `--events` off and on, {rounds} rounds; median [min–max]\n",
        plan.name
    );
    println!("| what | off (ms) | on (ms) | on ÷ off | min–max |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (label, row) in labels.iter().zip(&rows) {
        let ratio = stats(&row.ratio);
        println!(
            "| {label} | {:.1} | {:.1} | {:.3} | {:.3}–{:.3} |",
            stats(&row.off).median,
            stats(&row.on).median,
            ratio.median,
            ratio.min,
            ratio.max
        );
    }
    // the cost itself, free of the transfers' noise
    let per_event = event_cost(&bench.dir.path().join("cost.ndjson"))?;
    let per_file = stats(&rows[2].off).median * 1000.0 / plan.small_count as f64;
    println!(
        "\nwriting one `transfer` event: {per_event:.2} µs (median of {EVENT_COST_REPEATS} × \
         {EVENT_COST_EVENTS} in this process); a {} download took {per_file:.1} µs without \
         events: {:.2} % of it",
        size_label(plan.small_size),
        100.0 * per_event / per_file
    );
    Ok(())
}

/// The `events` rows run this many times the plan's rounds.
const EVENT_ROUNDS: usize = 3;
/// Events written per timing of [`event_cost`], and timings.
const EVENT_COST_EVENTS: u32 = 20_000;
const EVENT_COST_REPEATS: usize = 5;

/// The median time, in µs, that [`ioe::events::Events::emit`] takes for
/// a small file's `transfer` event, written to `path` (removed after).
fn event_cost(path: &Path) -> Result<f64> {
    use ioe::events::{Event, Events, Op};
    let events = Events::open(path);
    let event = Event::Transfer {
        op: Op::Read,
        remote: "small/f1234".into(),
        local: "got/r1/f1234".into(),
        bytes: 4096,
        size: 4096,
        seconds: 0.000078,
        resumed_from: 0,
        digest: None,
    };
    let mut micros = Vec::new();
    for _ in 0..EVENT_COST_REPEATS {
        let start = Instant::now();
        for _ in 0..EVENT_COST_EVENTS {
            events.emit(&event);
        }
        micros.push(start.elapsed().as_secs_f64() * 1e6 / f64::from(EVENT_COST_EVENTS));
    }
    let written = fs::read_to_string(path)?.lines().count();
    ensure!(
        written == EVENT_COST_REPEATS * EVENT_COST_EVENTS as usize,
        "event cost: {written} lines written"
    );
    fs::remove_file(path)?;
    Ok(stats(&micros).median)
}

impl Bench<'_> {
    /// One pass of the transfers with `--events events` (or none): the
    /// big file down and up (the process's time), then the small files
    /// down and up (the script's own timing of each phase), byte-checked.
    fn event_round(&self, events: Option<&Path>, round: &str) -> Result<[Duration; 4]> {
        let plan = self.plan;
        let big = self.root.join("big.bin");
        let local = self.client.join("big.bin");
        let down = self.run_events(
            events,
            "down.rhai",
            &[&self.server.addr, "big.bin", &local.to_string_lossy()],
        )?;
        check_same(&big, &local)?;
        fs::remove_file(&local)?;
        let up = self.run_events(
            events,
            "up.rhai",
            &[&self.server.addr, &big.to_string_lossy(), "up/big.bin"],
        )?;
        check_same(&big, &self.root.join("up/big.bin"))?;
        fs::remove_file(self.root.join("up/big.bin"))?;
        let run_name = self.dir.path().file_name().unwrap_or_default();
        let round = format!("{round}{}", run_name.to_string_lossy());
        let count = plan.small_count.to_string();
        let small = self.run_events(events, "small.rhai", &[&self.server.addr, &count, &round])?;
        let phase = |label: &str| -> Result<Duration> {
            let micros = small
                .stdout
                .lines()
                .find_map(|line| line.strip_prefix(label)?.trim().parse::<u64>().ok())
                .with_context(|| format!("no `{label}` line in {:?}", small.stdout))?;
            Ok(Duration::from_micros(micros.max(1)))
        };
        for i in 0..plan.small_count {
            let original = self.root.join(format!("small/f{i}"));
            check_same(&original, &self.client.join(format!("got/{round}/f{i}")))?;
            check_same(&original, &self.root.join(format!("up/{round}/f{i}")))?;
        }
        Ok([down.wall, up.wall, phase("down_us ")?, phase("up_us ")?])
    }

    /// `ioe run [--events FILE] SCRIPT ARGS...` in the client folder.
    fn run_events(&self, events: Option<&Path>, script: &str, args: &[&str]) -> Result<Run> {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ioe"));
        command.arg("run");
        if let Some(events) = events {
            command.arg("--events").arg(events);
        }
        command
            .arg(self.scripts.join(script))
            .args(args)
            .current_dir(&self.client)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let what = format!("ioe run {script} {}", args.join(" "));
        let (run, status) = run_measured(command).with_context(|| what.clone())?;
        ensure!(status.success, "`{what}` failed ({})", status.describe());
        Ok(run)
    }
}
