//! `--events FILE` and `ioe serve --log-format json` end to end: the real
//! binary runs jobs against real servers on 127.0.0.1, and every line it
//! wrote is parsed as JSON and checked against what really happened (the
//! bytes that arrived, the names, the exit status). Also the `jq`
//! one-liner of docs/events.md, run as written there.

mod common;

use common::relay::Relay;
use common::{Child, Raw, Run, ServeProcess, TestServer, put, run_ioe, spawn_ioe};
use serde_json::Value;
use std::fs;
use std::path::Path;
use tempfile::TempDir;

/// Every line of an events file, parsed; each must be a whole JSON object
/// with `time` (RFC 3339, UTC, milliseconds) and `type`.
fn events(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).expect("read the events file");
    assert!(text.ends_with('\n'), "the last line is cut: {text:?}");
    text.lines().map(parse_line).collect()
}

fn parse_line(line: &str) -> Value {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line:?}"));
    let time = value["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time: {line}"));
    assert_eq!(time.len(), "2026-11-29T21:04:05.123Z".len(), "{line}");
    assert!(time.ends_with('Z'), "{line}");
    time.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("time is not RFC 3339 ({e}): {line}"));
    assert!(value["type"].is_string(), "no type: {line}");
    value
}

/// The events of type `kind`.
fn of_type<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// Runs `job.rhai` (holding `code`) with `--events events.ndjson` in `dir`.
fn run_job(dir: &Path, code: &str, args: &[&str]) -> Run {
    fs::write(dir.join("job.rhai"), code).expect("write the script");
    let mut all = vec![
        "run",
        "--no-progress",
        "--events",
        "events.ndjson",
        "job.rhai",
    ];
    all.extend_from_slice(args);
    run_ioe(dir, &all, "")
}

fn u64_of(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

#[test]
fn a_successful_job_logs_its_start_connect_each_transfer_and_its_end() {
    let server = TestServer::start();
    let one = common::pseudo_random(1, 300_000);
    put(server.root(), "in/one.bin", &one);
    let work = TempDir::new().unwrap();
    let two = common::pseudo_random(2, 12_345);
    put(work.path(), "two.bin", &two);
    let code = format!(
        "connect(\"{}\");\nread(\"in/one.bin\", \"got/one.bin\", #{{verify: true}});\n\
         write(\"two.bin\", \"up/two.bin\");\n",
        server.addr()
    );
    let run = run_job(work.path(), &code, &["--flag", "x"]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(fs::read(work.path().join("got/one.bin")).unwrap(), one);
    assert_eq!(fs::read(server.root().join("up/two.bin")).unwrap(), two);

    let events = events(&work.path().join("events.ndjson"));
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["job_start", "connect", "transfer", "transfer", "job_end"]
    );
    let start = &events[0];
    assert_eq!(start["command"], "run");
    assert_eq!(start["script"], "job.rhai");
    assert_eq!(start["args"], serde_json::json!(["--flag", "x"]));
    assert_eq!(start["version"], env!("CARGO_PKG_VERSION"));
    assert!(u64_of(&start["pid"]) > 0);
    assert_eq!(events[1]["address"], server.addr().to_string());
    assert_eq!(events[1]["tls"], false);
    assert!(events[1].get("fingerprint").is_none(), "{}", events[1]);

    let read = &events[2];
    assert_eq!(read["op"], "read");
    assert_eq!(read["remote"], "in/one.bin");
    assert_eq!(read["local"], "got/one.bin");
    assert_eq!(u64_of(&read["bytes"]), one.len() as u64);
    assert_eq!(u64_of(&read["size"]), one.len() as u64);
    assert_eq!(u64_of(&read["resumed_from"]), 0);
    assert!(read["seconds"].as_f64().is_some_and(|s| s >= 0.0));
    let digest = read["digest"]
        .as_str()
        .expect("a verified read has a digest");
    assert_eq!(
        digest,
        format!("blake3:{}", blake3::hash(&one).to_hex()),
        "the digest of the bytes that arrived"
    );
    let write = &events[3];
    assert_eq!(
        (&write["op"], &write["remote"], &write["local"]),
        (&"write".into(), &"up/two.bin".into(), &"two.bin".into())
    );
    assert_eq!(u64_of(&write["bytes"]), two.len() as u64);
    assert!(write.get("digest").is_none(), "not verified: {write}");

    let end = &events[4];
    assert_eq!(u64_of(&end["status"]), 0);
    assert_eq!(u64_of(&end["files"]), 2);
    assert_eq!(u64_of(&end["bytes"]), (one.len() + two.len()) as u64);
    assert_eq!(u64_of(&end["errors"]), 0);
    assert!(end["seconds"].as_f64().is_some_and(|s| s > 0.0));

    // the file is appended to: a second job adds its own lines
    let again = run_job(work.path(), "print(1);", &[]);
    assert_eq!(again.code, Some(0), "{again:#?}");
    let both = self::events(&work.path().join("events.ndjson"));
    assert_eq!(both.len(), 7);
    assert_eq!(&both[..5], &events[..]);
    assert_eq!(both[5]["type"], "job_start");
    assert_eq!(both[6]["type"], "job_end");
}

#[test]
fn a_failed_job_logs_the_error_with_its_kind_message_and_line_and_ends_non_zero() {
    let server = TestServer::start();
    put(server.root(), "here.txt", b"hello");
    let work = TempDir::new().unwrap();
    let code = format!(
        "connect(\"{}\");\nread(\"here.txt\");\n\n  read(\"missing.txt\");\nprint(\"not reached\");\n",
        server.addr()
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(!work.path().join("missing.txt").exists());

    let events = events(&work.path().join("events.ndjson"));
    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 1, "{events:#?}");
    let error = errors[0];
    assert_eq!(error["kind"], "not_found");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.starts_with("read `missing.txt`: ") && run.stderr.contains(message),
        "{message} / {}",
        run.stderr
    );
    assert_eq!(error["file"], "job.rhai");
    assert_eq!(u64_of(&error["line"]), 4);
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job_end");
    assert_eq!(u64_of(&end["status"]), 1);
    assert_eq!(u64_of(&end["errors"]), 1);
    assert_eq!(u64_of(&end["files"]), 1);
    assert_eq!(u64_of(&end["bytes"]), 5);

    // a script that does not compile: kind `script`, status 2
    let run = run_job(work.path(), "let x = ;", &[]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    let events = self::events(&work.path().join("events.ndjson"));
    let last_error = of_type(&events, "error").pop().unwrap().clone();
    assert_eq!(last_error["kind"], "script");
    assert_eq!(u64_of(&last_error["line"]), 1);
    assert_eq!(u64_of(&events.last().unwrap()["status"]), 2);
}

#[test]
fn a_pull_through_a_cutting_relay_logs_each_file_and_each_retry() {
    let server = TestServer::start();
    let mut total = 0;
    for i in 0..30 {
        let body = common::pseudo_random(i, 60_000 + i as usize);
        total += body.len() as u64;
        put(server.root(), &format!("t/f{i:02}"), &body);
    }
    let relay = Relay::start(server.addr());
    relay.cut_every(3, 100_000);
    let work = TempDir::new().unwrap();
    let code = format!(
        "let r = pull(connect(\"{}\"), \"t\", \"local\", \
         #{{parallel: 3, retries: 20, retry_delay: 0.005}});\nprint(r.retries);\n",
        relay.addr
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let retries: usize = run.stdout.trim().parse().unwrap();
    assert!(relay.cuts() > 0 && retries > 0, "no retries: {run:#?}");

    let events = events(&work.path().join("events.ndjson"));
    let files = of_type(&events, "transfer");
    assert_eq!(files.len(), 30);
    let mut names: Vec<&str> = files
        .iter()
        .map(|f| f["remote"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    let expected: Vec<String> = (0..30).map(|i| format!("t/f{i:02}")).collect();
    assert_eq!(names, expected);
    for file in &files {
        assert_eq!(file["op"], "pull-file");
        let name = file["remote"].as_str().unwrap().strip_prefix("t/").unwrap();
        assert_eq!(file["local"], format!("local/{name}"));
        let arrived = fs::metadata(work.path().join("local").join(name))
            .unwrap()
            .len();
        assert_eq!(u64_of(&file["bytes"]), arrived, "{file}");
    }
    let retried = of_type(&events, "retry");
    assert_eq!(retried.len(), retries, "one event per retry");
    for retry in &retried {
        assert_eq!(retry["sync"], "pull");
        assert!(u64_of(&retry["attempt"]) >= 1, "{retry}");
        assert_eq!(retry["kind"], "connection_lost", "{retry}");
        assert!(retry["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(retry["delay"].as_f64().is_some_and(|d| d >= 0.0), "{retry}");
        assert!(retry["name"].as_str().unwrap().starts_with('f'), "{retry}");
    }
    let end = events.last().unwrap();
    assert_eq!(end["type"], "job_end");
    assert_eq!(u64_of(&end["bytes"]), total);

    // a push of the same tree: every file is skipped as unchanged, and a
    // file only on the server goes with `delete`
    put(server.root(), "t/extra", b"gone soon");
    let code = format!(
        "push(connect(\"{}\"), \"local\", \"t\", #{{delete: true}});",
        server.addr()
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(!server.root().join("t/extra").exists());
    let events = self::events(&work.path().join("events.ndjson"));
    let this_job = &events[events
        .iter()
        .rposition(|e| e["type"] == "job_start")
        .unwrap()..];
    let skips = of_type(this_job, "skip");
    assert_eq!(skips.len(), 30, "{this_job:#?}");
    assert!(
        skips
            .iter()
            .all(|s| s["sync"] == "push" && s["reason"].is_string())
    );
    let deletes = of_type(this_job, "delete");
    assert_eq!(deletes.len(), 1);
    assert_eq!(
        (&deletes[0]["sync"], &deletes[0]["name"]),
        (&"push".into(), &"extra".into())
    );
}

fn interrupt(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -INT failed");
}

#[test]
fn ctrl_c_mid_transfer_still_ends_the_events_with_status_130_and_what_was_done() {
    let server = TestServer::start();
    put(server.root(), "small.txt", b"0123456789");
    put(
        server.root(),
        "big.bin",
        &common::pseudo_random(3, 16 * 1024 * 1024),
    );
    let relay = Relay::start(server.addr());
    // the small file and the start of the big one get through
    relay.hold_at(4 * 1024 * 1024);
    let work = TempDir::new().unwrap();
    let code = format!(
        "connect(\"{}\");\nread(\"small.txt\");\nread(\"big.bin\");\n",
        relay.addr
    );
    fs::write(work.path().join("job.rhai"), code).unwrap();
    let child = spawn_ioe(
        work.path(),
        &[
            "run",
            "--no-progress",
            "--events",
            "events.ndjson",
            "job.rhai",
        ],
    );
    relay.wait_held();
    interrupt(&child);
    let run = common::finish(child, std::thread::spawn(|| {}));
    relay.release();
    assert_eq!(run.code, Some(130), "{run:#?}");
    assert!(!work.path().join("big.bin").exists());

    let events = events(&work.path().join("events.ndjson"));
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["job_start", "connect", "transfer", "error", "job_end"],
        "{events:#?}"
    );
    assert_eq!(events[2]["remote"], "small.txt");
    assert_eq!(events[3]["kind"], "cancelled");
    let end = &events[4];
    assert_eq!(u64_of(&end["status"]), 130);
    assert_eq!(u64_of(&end["files"]), 1);
    assert_eq!(u64_of(&end["bytes"]), 10);
}

#[test]
fn an_events_file_that_cannot_be_written_is_reported_once_and_the_job_succeeds() {
    let server = TestServer::start();
    put(server.root(), "a.txt", b"abc");
    let work = TempDir::new().unwrap();
    let code = format!(
        "connect(\"{}\"); read(\"a.txt\"); read(\"a.txt\", \"b.txt\");",
        server.addr()
    );
    for target in ["/dev/full", "no/such/folder/events.ndjson"] {
        let run = run_ioe(
            work.path(),
            &["run", "--no-progress", "--events", target, "-e", &code],
            "",
        );
        assert_eq!(run.code, Some(0), "{target}: {run:#?}");
        assert_eq!(fs::read(work.path().join("b.txt")).unwrap(), b"abc");
        let lines: Vec<&str> = run.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{target}: {}", run.stderr);
        assert!(
            lines[0].starts_with(&format!(
                "ioe: warning: cannot write events to `{target}`: "
            )) && lines[0].ends_with("; the job goes on without them"),
            "{}",
            lines[0]
        );
        fs::remove_file(work.path().join("b.txt")).unwrap();
    }
    assert!(!work.path().join("no").exists());
}

#[test]
fn events_can_go_to_stdout_and_the_repl_writes_them_too() {
    let server = TestServer::start();
    put(server.root(), "r.txt", b"from the repl");
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &["repl", "--no-progress", "--events", "-"],
        &format!("CONNECT,{}\nREAD,r.txt\nREAD,nope\n", server.addr()),
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    let events: Vec<Value> = run
        .stdout
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(parse_line)
        .collect();
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["job_start", "connect", "transfer", "error", "job_end"],
        "{}",
        run.stdout
    );
    assert_eq!(events[0]["command"], "repl");
    assert!(events[0].get("script").is_none());
    assert_eq!(u64_of(&events[2]["bytes"]), 13);
    assert_eq!(events[3]["kind"], "not_found");
    assert_eq!(u64_of(&events[4]["status"]), 1);
}

/// The `jq` line of docs/events.md, the one after its marker comment.
fn documented_jq_line() -> String {
    let doc = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/events.md"))
        .expect("read docs/events.md");
    let after = doc
        .split("<!-- tests/events.rs runs the next line")
        .nth(1)
        .expect("the marker in docs/events.md");
    after
        .lines()
        .find(|line| line.starts_with("jq "))
        .expect("a jq line after the marker")
        .to_string()
}

#[test]
fn the_documented_jq_line_sums_the_bytes_that_arrived() {
    let line = documented_jq_line();
    if std::process::Command::new("jq")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: `jq` is not installed (.ci/run installs it); cannot run: {line}");
        return;
    }
    let server = TestServer::start();
    for (i, size) in [0usize, 1, 70_000, 1_000_001].into_iter().enumerate() {
        put(
            server.root(),
            &format!("d/f{i}"),
            &common::pseudo_random(i as u64, size),
        );
    }
    let work = TempDir::new().unwrap();
    put(work.path(), "up.bin", &common::pseudo_random(9, 4321));
    let code = format!(
        "connect(\"{}\"); pull(\"d\", \"pulled\"); read(\"d/f2\", \"one\"); write(\"up.bin\");",
        server.addr()
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let arrived: u64 = ["pulled/f0", "pulled/f1", "pulled/f2", "pulled/f3", "one"]
        .iter()
        .map(|name| fs::metadata(work.path().join(name)).unwrap().len())
        .sum::<u64>()
        + fs::metadata(server.root().join("up.bin")).unwrap().len();
    let out = std::process::Command::new("sh")
        .args(["-c", &line])
        .current_dir(work.path())
        .output()
        .expect("run jq");
    assert!(out.status.success(), "{line}: {out:?}");
    let sum: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{line} printed no number ({e}): {out:?}"));
    assert_eq!(sum, arrived);
    assert_eq!(sum, 1 + 70_000 + 1_000_001 + 70_000 + 4321);
}

#[test]
fn the_server_logs_one_json_object_per_request_and_timestamps_its_text_log() {
    let root = TempDir::new().unwrap();
    put(root.path(), "a.bin", &common::pseudo_random(5, 54_321));
    let work = TempDir::new().unwrap();
    put(work.path(), "w.bin", b"twelve bytes");
    let server = ServeProcess::start_logging(root.path(), &["--log-format", "json"]);
    let code = format!(
        "connect(\"{}\"); read(\"a.bin\"); write(\"w.bin\"); \
         try {{ read(\"nope\") }} catch {{}} bye();",
        server.addr()
    );
    let run = run_ioe(work.path(), &["run", "--no-progress", "-e", &code], "");
    assert_eq!(run.code, Some(0), "{run:#?}");
    server.wait_for_log(&["\"request\":\"BYE\""]);
    let log = server.log();
    let lines = json_lines(&log);
    let request = |name: &str| {
        lines
            .iter()
            .find(|l| l["request"] == name)
            .unwrap_or_else(|| panic!("no {name} in {log}"))
    };
    let read = request("READ a.bin");
    assert_eq!(read["result"], "ok");
    assert_eq!(u64_of(&read["bytes"]), 54_321);
    assert_eq!(read["message"], "54321 bytes");
    let write = request("WRITE w.bin");
    assert_eq!(
        (&write["result"], u64_of(&write["bytes"])),
        (&"ok".into(), 12)
    );
    let missing = request("READ nope");
    assert_eq!(missing["result"], "error");
    assert!(
        missing["message"]
            .as_str()
            .unwrap()
            .contains("no such file")
    );
    assert_eq!(u64_of(&missing["bytes"]), 0);
    for line in &lines {
        assert!(
            line["peer"].as_str().unwrap().starts_with("127.0.0.1:"),
            "{line}"
        );
        assert!(
            line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
            "{line}"
        );
        let time = line["time"].as_str().unwrap();
        assert!(
            time.parse::<jiff::Timestamp>().is_ok() && time.ends_with('Z'),
            "{line}"
        );
    }

    // the text log (the default): the time first, then what it said before
    let server = ServeProcess::start_logging(root.path(), &[]);
    let code = format!("connect(\"{}\"); read(\"a.bin\");", server.addr());
    let run = run_ioe(work.path(), &["run", "--no-progress", "-e", &code], "");
    assert_eq!(run.code, Some(0), "{run:#?}");
    let line = server.wait_for_log(&["READ a.bin -> 54321 bytes"]);
    let (time, rest) = line.split_once(' ').unwrap();
    assert_eq!(time.len(), "2026-11-29T21:04:05.123Z".len(), "{line}");
    assert!(time.parse::<jiff::Timestamp>().is_ok(), "{line}");
    assert!(rest.starts_with("127.0.0.1:") && rest.ends_with(" READ a.bin -> 54321 bytes"));
}

#[test]
fn a_tls_connect_names_the_certificate_it_was_shown() {
    let dirs = TempDir::new().unwrap();
    let (root, state) = (dirs.path().join("root"), dirs.path().join("state"));
    fs::create_dir_all(&root).unwrap();
    let mut server =
        ServeProcess::start_with_env(&root, &["--tls"], &[("XDG_STATE_HOME", state.as_os_str())]);
    let line = server.next_stdout_line();
    let fingerprint = line.rsplit(' ').next().unwrap().to_string();
    assert!(fingerprint.starts_with("SHA256:"), "{line}");
    let work = TempDir::new().unwrap();
    let code = format!(
        "connect(\"{}\", #{{tls: true, fingerprint: \"{fingerprint}\"}}); list();",
        server.addr()
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let events = events(&work.path().join("events.ndjson"));
    let connect = of_type(&events, "connect");
    assert_eq!(connect.len(), 1);
    assert_eq!(connect[0]["tls"], true);
    assert_eq!(connect[0]["fingerprint"], fingerprint.as_str());
}

#[test]
fn words_after_the_code_go_to_the_script_even_after_events() {
    let work = TempDir::new().unwrap();
    for events in [
        ["--events", "ev.ndjson"].as_slice(),
        ["--events=ev.ndjson"].as_slice(),
    ] {
        let mut args = vec!["run"];
        args.extend_from_slice(events);
        args.extend_from_slice(&["-e", "print(ARGS)", "--events", "x", "--help"]);
        let run = run_ioe(work.path(), &args, "");
        assert_eq!(run.code, Some(0), "{run:#?}");
        assert_eq!(run.stdout, "[\"--events\", \"x\", \"--help\"]\n");
    }
    let events = events(&work.path().join("ev.ndjson"));
    assert_eq!(events.len(), 4);
    assert_eq!(
        events[0]["args"],
        serde_json::json!(["--events", "x", "--help"])
    );
    assert!(!work.path().join("x").exists());
}

#[test]
fn a_resumed_read_says_where_it_started_and_counts_only_the_bytes_that_moved() {
    let server = TestServer::start();
    let body = common::pseudo_random(7, 3 * 1024 * 1024);
    let remote = put(server.root(), "r.bin", &body);
    common::set_mtime(&remote, 1_300_000_000);
    let work = TempDir::new().unwrap();
    let kept = 1024 * 1024;
    let part =
        ioe::session::part_path(&work.path().join("r.bin"), body.len() as u64, 1_300_000_000);
    fs::write(&part, &body[..kept]).unwrap();
    let code = format!(
        "connect(\"{}\");\nread(\"r.bin\", \"r.bin\", #{{resume: true}});\n",
        server.addr()
    );
    let run = run_job(work.path(), &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert_eq!(fs::read(work.path().join("r.bin")).unwrap(), body);
    let events = events(&work.path().join("events.ndjson"));
    let read = of_type(&events, "transfer")[0];
    assert_eq!(u64_of(&read["resumed_from"]), kept as u64, "{read}");
    assert_eq!(u64_of(&read["bytes"]), (body.len() - kept) as u64);
    assert_eq!(u64_of(&read["size"]), body.len() as u64);
    assert_eq!(
        u64_of(&events.last().unwrap()["bytes"]),
        (body.len() - kept) as u64
    );
}

#[test]
fn a_token_s_label_is_the_identity_in_the_connect_event_and_the_server_s_json_log() {
    let dirs = TempDir::new().unwrap();
    let (root, work) = (dirs.path().join("root"), dirs.path().join("work"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    put(&root, "a.bin", b"seven b");
    let tokens_file = work.join("tokens");
    let token = &common::mint(&work, &tokens_file, "nightly", &[]);
    let tokens = tokens_file.to_str().unwrap();
    let server = ServeProcess::start_logging(&root, &["--auth", tokens, "--log-format", "json"]);
    let code = format!(
        "connect(\"{}\", #{{token: \"{token}\"}}); read(\"a.bin\"); bye();",
        server.addr()
    );
    let run = run_job(&work, &code, &[]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let events = events(&work.join("events.ndjson"));
    let connect = of_type(&events, "connect");
    assert_eq!(connect.len(), 1);
    assert_eq!(connect[0]["identity"], "nightly");

    server.wait_for_log(&["\"request\":\"BYE\""]);
    let log = server.log();
    assert!(!log.contains(token), "the token is in the log: {log}");
    let lines = json_lines(&log);
    let read = lines
        .iter()
        .find(|l| l["request"] == "READ a.bin")
        .unwrap_or_else(|| panic!("no READ in {log}"));
    assert_eq!(read["identity"], "nightly", "{read}");
    assert_eq!(u64_of(&read["bytes"]), 7);
}

/// The server's JSON log so far, each line parsed.
fn json_lines(log: &str) -> Vec<Value> {
    log.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

#[test]
fn failed_logins_and_requests_before_auth_are_requests_with_result_error_in_the_json_log() {
    let dirs = TempDir::new().unwrap();
    let (root, work) = (dirs.path().join("root"), dirs.path().join("work"));
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(&work).unwrap();
    let tokens_file = work.join("tokens");
    let token = &common::mint(&work, &tokens_file, "nightly", &[]);
    let tokens = tokens_file.to_str().unwrap();
    let server = ServeProcess::start_logging(&root, &["--auth", tokens, "--log-format", "json"]);
    let wrong = "ioe_0000000000000000000000000000000000000000000000000";
    let mut raw = Raw::connect(server.addr());
    raw.send(b"LIST\n");
    assert_eq!(raw.line().trim_end(), "ERROR: authentication required");
    raw.send(format!("AUTH,{wrong}\n").as_bytes());
    assert_eq!(
        raw.line().trim_end(),
        "ERROR: authentication failed; closing"
    );
    raw.expect_closed();
    let mut raw = Raw::connect(server.addr());
    raw.send(format!("AUTH,{token}\nBYE\n").as_bytes());
    assert_eq!(raw.line().trim_end(), "OK nightly");
    server.wait_for_log(&["\"request\":\"BYE\""]);
    let log = server.log();
    assert!(
        !log.contains(token) && !log.contains(wrong),
        "a token is in the log: {log}"
    );
    let lines = json_lines(&log);
    let errors: Vec<&Value> = lines.iter().filter(|l| l["result"] == "error").collect();
    assert_eq!(errors.len(), 2, "{log}");
    assert_eq!(errors[0]["request"], "LIST", "{log}");
    assert_eq!(errors[0]["message"], "refused: authentication required");
    assert_eq!(errors[1]["request"], "AUTH", "{log}");
    assert_eq!(errors[1]["message"], "refused: no such token; closing");
    assert!(errors[1].get("identity").is_none(), "{log}");
    let ok = lines
        .iter()
        .find(|l| l["request"] == "AUTH" && l["result"] == "ok")
        .unwrap_or_else(|| panic!("no accepted AUTH in {log}"));
    assert_eq!(ok["identity"], "nightly", "{log}");
    for line in &lines {
        assert!(line["peer"].is_string(), "{line}");
    }
}

#[test]
fn lines_about_plain_text_sent_to_a_tls_server_have_their_peer_apart() {
    let dirs = TempDir::new().unwrap();
    let (root, state) = (dirs.path().join("root"), dirs.path().join("state"));
    fs::create_dir_all(&root).unwrap();
    let log_file = dirs.path().join("serve.log");
    let mut serve = std::process::Command::new(env!("CARGO_BIN_EXE_ioe"));
    serve
        .args([
            "serve",
            "--tls",
            "--log-format",
            "json",
            "--listen",
            "127.0.0.1:0",
            "--root",
        ])
        .arg(&root)
        .env("XDG_STATE_HOME", &state)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(fs::File::create(&log_file).unwrap());
    let mut child = Child(serve.spawn().expect("start ioe serve"));
    let mut stdout = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    let addr: std::net::SocketAddr = first
        .trim_end()
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let mut raw = Raw::connect(addr);
    let me = raw.stream().local_addr().unwrap().to_string();
    raw.send(b"LIST\n");
    assert!(raw.line().contains("TLS"));
    let mut found = None;
    common::wait_until(std::time::Duration::from_secs(10), || {
        let text = fs::read_to_string(&log_file).unwrap_or_default();
        found = text
            .lines()
            .find(|l| l.contains("plain text sent to a TLS server"))
            .map(str::to_string);
        found.is_some()
    });
    let line = found.expect("no log line about the plain text");
    let value: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(value["peer"], me.as_str(), "{line}");
    assert_eq!(
        value["message"], "closed: plain text sent to a TLS server",
        "{line}"
    );
    drop(stdout);
}

#[test]
fn a_repl_line_that_fails_by_itself_is_an_error_event_with_its_line() {
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &[
            "repl",
            "--no-progress",
            "--keep-going",
            "--events",
            "events.ndjson",
        ],
        "STAT\nlet x = [1,\n",
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(run.stderr.contains("usage: STAT,name"), "{run:#?}");
    let events = events(&work.path().join("events.ndjson"));
    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 2, "{events:#?}");
    assert_eq!(errors[0]["kind"], "script");
    assert_eq!(errors[0]["message"], "usage: STAT,name");
    assert_eq!(errors[0]["file"], "<stdin>");
    assert_eq!(u64_of(&errors[0]["line"]), 1);
    assert_eq!(errors[1]["kind"], "script");
    assert!(
        errors[1]["message"]
            .as_str()
            .unwrap()
            .contains("not finished"),
        "{events:#?}"
    );
    assert_eq!(u64_of(&errors[1]["line"]), 2);
    let end = of_type(&events, "job_end")[0];
    assert_eq!(u64_of(&end["errors"]), 2);
    assert_eq!(u64_of(&end["status"]), 1);
}

#[test]
fn a_failed_repl_command_form_names_its_line_in_the_input() {
    let server = TestServer::start();
    let work = TempDir::new().unwrap();
    let run = run_ioe(
        work.path(),
        &[
            "repl",
            "--no-progress",
            "--keep-going",
            "--events",
            "events.ndjson",
        ],
        &format!("CONNECT,{}\n\nREAD,nope\nSTAT,gone\n", server.addr()),
    );
    assert_eq!(run.code, Some(1), "{run:#?}");
    let events = events(&work.path().join("events.ndjson"));
    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 2, "{events:#?}");
    for (error, line) in errors.iter().zip([3, 4]) {
        assert_eq!(error["kind"], "not_found", "{error}");
        assert_eq!(error["file"], "<stdin>", "{error}");
        assert_eq!(u64_of(&error["line"]), line, "{error}");
    }
}

#[test]
fn a_repl_input_line_that_is_not_utf8_is_an_error_event() {
    let work = TempDir::new().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ioe"))
        .args(["repl", "--no-progress", "--events", "events.ndjson"])
        .current_dir(work.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start ioe repl");
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"let a = 1;\nprint(\"\xff\");\n").unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let events = events(&work.path().join("events.ndjson"));
    let errors = of_type(&events, "error");
    assert_eq!(errors.len(), 1, "{events:#?}");
    assert_eq!(errors[0]["kind"], "script");
    assert_eq!(errors[0]["file"], "<stdin>");
    assert_eq!(u64_of(&errors[0]["line"]), 2);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("not UTF-8"),
        "{events:#?}"
    );
    assert_eq!(u64_of(&of_type(&events, "job_end")[0]["errors"]), 1);
}
