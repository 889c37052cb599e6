//! The `ioe` command line: parses arguments, runs a subcommand, and maps
//! failures to exit codes in one place.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use ioe::progress::ProgressMode;
use ioe::script::{self, RunOptions, ScriptSource};
use ioe::server::{Config, Server};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// A scriptable client and server for the IOE/1 file-transfer protocol.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// With no command, `ioe` opens the REPL when stdin is a terminal.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve a folder over IOE/1.
    Serve(ServeArgs),
    /// Run a Rhai script (see docs/scripting.md).
    Run(RunArgs),
    /// Prompt for IOE/1 commands and Rhai code (see docs/repl.md); piped
    /// input runs as a batch.
    Repl(ReplArgs),
    /// Trust a TLS server's certificate by its fingerprint (a line of the
    /// known-hosts file), or forget a server with --forget.
    Trust(TrustArgs),
    /// Mint, revoke or list the tokens of a token file (`serve --auth`).
    #[command(subcommand)]
    Token(TokenCommand),
}

#[derive(clap::Args)]
struct TrustArgs {
    /// Remove the server's line instead (after its certificate was changed
    /// on purpose).
    #[arg(long)]
    forget: bool,
    /// The server: tls://host:port or host[:port] (port 7070 if none), or
    /// a name from the servers file.
    #[arg(value_name = "SERVER")]
    server: String,
    /// Its fingerprint, `SHA256:…` as `ioe serve --tls` prints it.
    #[arg(
        value_name = "FINGERPRINT",
        required_unless_present = "forget",
        conflicts_with = "forget"
    )]
    fingerprint: Option<String>,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Mint a token: add its line (label, access, digest, folder) to the
    /// file, created with mode 0600 if missing, and print the token once.
    New {
        /// The token file.
        #[arg(long, value_name = "FILE")]
        auth: PathBuf,
        /// Its name in the file and in the server's log: letters, digits,
        /// `.`, `_` or `-`.
        #[arg(long, value_name = "NAME")]
        label: String,
        /// Refuse this token's uploads and other changes.
        #[arg(long)]
        read_only: bool,
        /// Make this sub-folder of the served root the token's root.
        #[arg(long, value_name = "SUB")]
        folder: Option<String>,
    },
    /// Remove a token's line: servers refuse it from their next `AUTH` on.
    Revoke {
        /// The token file.
        #[arg(long, value_name = "FILE")]
        auth: PathBuf,
        /// The label of the token to remove.
        label: String,
    },
    /// List the labels, access and folders of a token file (never secrets).
    List {
        /// The token file.
        #[arg(long, value_name = "FILE")]
        auth: PathBuf,
    },
}

#[derive(clap::Args, Default)]
#[command(group = clap::ArgGroup::new("bars").multiple(false))]
struct ReplArgs {
    /// Connect to this server before the first line: HOST[:PORT] (port
    /// 7070 if none is given), tls://HOST[:PORT] for TLS, or a name from
    /// the servers file.
    #[arg(long, value_name = "SERVER", value_parser = ioe::repl::forms::connect_target)]
    connect: Option<String>,
    /// Keep no history file.
    #[arg(long)]
    no_history: bool,
    /// Always draw progress bars for long transfers.
    #[arg(long, group = "bars")]
    progress: bool,
    /// Never draw progress bars (by default: only when stderr is a terminal).
    #[arg(long, group = "bars")]
    no_progress: bool,
    /// With piped input, go on after a failing line (the exit status is
    /// then that of the last failing line, so still non-zero).
    #[arg(long)]
    keep_going: bool,
    /// Append what the session does to FILE, one JSON object per line
    /// (see docs/events.md); `-` is stdout.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
}

#[derive(clap::Args)]
#[command(group = clap::ArgGroup::new("bars").multiple(false))]
struct RunArgs {
    /// Run CODE instead of a script file; every word after CODE goes to
    /// ARGS, even one that looks like an option.
    #[arg(short = 'e', long = "eval", value_name = "CODE")]
    eval: Option<String>,
    /// Always draw progress bars for long transfers.
    #[arg(long, group = "bars")]
    progress: bool,
    /// Never draw progress bars (by default: only when stderr is a terminal).
    #[arg(long, group = "bars")]
    no_progress: bool,
    /// Append what the job does to FILE, one JSON object per line (see
    /// docs/events.md); `-` is stdout.
    #[arg(long, value_name = "FILE")]
    events: Option<PathBuf>,
    /// The script file (`-` reads it from stdin), then the script's
    /// arguments (ARGS). Options for `ioe run` go before the script.
    #[arg(
        value_name = "SCRIPT [ARGS]",
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "eval"
    )]
    words: Vec<String>,
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Folder to serve.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Address to listen on (port 7070 if none is given, 0 for any free
    /// one); a non-loopback address exposes the folder to the network.
    #[arg(long, value_name = "HOST[:PORT]", default_value = "127.0.0.1:7070",
          value_parser = ioe::addr::listen_addr)]
    listen: String,
    /// Accept the original design's requests with no LF.
    #[arg(long)]
    legacy: bool,
    /// Refuse every upload.
    #[arg(long)]
    read_only: bool,
    /// Refuse uploads larger than this: bytes, or with a unit K, M, G, T,
    /// P or E (powers of 1024), such as 10M or 1.5G.
    #[arg(long, value_name = "SIZE", value_parser = ioe::units::parse_size)]
    max_size: Option<u64>,
    /// Connections served at once. When all are taken, a new client takes
    /// the slot of the one idle longest; only when every one is in a
    /// request does it get `ERROR: server busy`.
    #[arg(long, value_name = "N", default_value_t = 64,
          value_parser = at_least_one)]
    max_connections: u64,
    /// Close connections idle for this many seconds; a request line must
    /// also arrive whole within it.
    #[arg(long, value_name = "SECS", default_value_t = 300,
          value_parser = at_least_one)]
    idle_timeout: u64,
    /// Close a transfer (upload, download, listing) that averages fewer
    /// bytes per second than this over a rate window; 0 turns it off.
    #[arg(long, value_name = "BYTES_PER_SEC", default_value_t = ioe::server::DEFAULT_MIN_RATE)]
    min_rate: u64,
    /// How many seconds `--min-rate` is averaged over; 0 turns it off.
    #[arg(long, value_name = "SECS",
          default_value_t = ioe::server::DEFAULT_RATE_WINDOW.as_secs())]
    rate_window: u64,
    /// On SIGINT/SIGTERM, how many seconds requests in flight may still run
    /// (a second signal ends this at once).
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    grace: u64,
    /// No log line per request on stderr.
    #[arg(long, short)]
    quiet: bool,
    /// How log lines look: `text` (timestamp, peer, request -> outcome)
    /// or `json` (one object per line; see docs/events.md).
    #[arg(long, value_name = "FORMAT", default_value = "text",
          value_parser = ioe::server::LogFormat::parse)]
    log_format: ioe::server::LogFormat,
    /// Speak TLS: with --tls-cert/--tls-key, or else a self-signed
    /// certificate made on first start in $XDG_STATE_HOME/ioe (or
    /// ~/.local/state/ioe) and reused after. Its fingerprint is printed.
    #[arg(long)]
    tls: bool,
    /// The server's certificate (PEM, the chain in order) for --tls.
    #[arg(long, value_name = "FILE", requires = "tls", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The certificate's private key (PEM) for --tls.
    #[arg(long, value_name = "FILE", requires = "tls", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Require a token from this file (made with `ioe token new`); it is
    /// read again when it changes, so revoking needs no restart.
    #[arg(long, value_name = "FILE")]
    auth: Option<PathBuf>,
    /// Serve on a non-loopback address without --tls and --auth anyway
    /// (only on a network you trust).
    #[arg(long)]
    allow_unprotected: bool,
}

/// Parses a count or a number of seconds that must not be 0.
fn at_least_one(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("`{text}` is not a whole number")),
    }
}

fn main() -> ExitCode {
    ignore_file_size_signal();
    let cli = Cli::parse_from(args_after_code_are_the_scripts(
        std::env::args_os().collect(),
    ));
    let result = match cli.command {
        Some(Command::Serve(args)) => serve(args),
        Some(Command::Run(args)) => Ok(run(args)),
        Some(Command::Repl(args)) => Ok(repl(args)),
        Some(Command::Trust(args)) => trust(args),
        Some(Command::Token(command)) => token(command),
        None if std::io::stdin().is_terminal() => Ok(repl(ReplArgs::default())),
        None => {
            complain(format_args!(
                "ioe: no command given; `ioe repl` runs commands from standard input, \
                 `ioe --help` lists the commands"
            ));
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            complain(format_args!("ioe: {e:#}"));
            ExitCode::FAILURE
        }
    }
}

/// `ioe run … -e CODE WORDS…` with a `--` put after CODE (unless one is
/// there already), so that every word after the code goes to the script's
/// ARGS, even `--progress`, `-e` or `--help`, as after a script path
/// (which `trailing_var_arg` does already). Only `run`'s own options are
/// looked at before `-e`; anything else (a script path, a misspelt option)
/// leaves the words as they are.
fn args_after_code_are_the_scripts(mut args: Vec<OsString>) -> Vec<OsString> {
    if args.get(1).is_none_or(|word| word != "run") {
        return args;
    }
    let mut i = 2;
    while let Some(word) = args.get(i).and_then(|w| w.to_str()) {
        match word {
            "--progress" | "--no-progress" => {
                i += 1;
                continue;
            }
            // its FILE is a word of its own, whatever it looks like
            "--events" => {
                i += 2;
                continue;
            }
            _ if word.starts_with("--events=") => {
                i += 1;
                continue;
            }
            "-e" | "--eval" => {}
            // `-eCODE`, `--eval=CODE`: the code as a word of its own (clap
            // would take `-eCODE` for the script, whose place takes words
            // starting with `-`)
            _ => match word.strip_prefix("--eval=").or(word.strip_prefix("-e")) {
                Some(code) => {
                    let code = OsString::from(code);
                    args.splice(i..=i, ["-e".into(), code]);
                }
                None => return args,
            },
        }
        let code_ends = i + 2;
        if code_ends <= args.len() && args.get(code_ends).is_none_or(|w| w != "--") {
            args.insert(code_ends, "--".into());
        }
        return args;
    }
    args
}

/// Writing past a file-size limit (`ulimit -f`) kills a process with
/// SIGXFSZ by default, leaving its temporary file behind; ignored, the
/// write fails with "File too large" instead, which is reported like a full
/// disk and cleaned up.
fn ignore_file_size_signal() {
    // SAFETY: setting a signal's disposition to "ignore" at start, before
    // any other thread exists, installs no handler code
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
}

/// Writes a line on stderr; a closed stderr must not turn the exit status
/// into a panic's.
fn complain(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// `--progress` / `--no-progress` (exclusive) → a [`ProgressMode`].
fn progress_mode(always: bool, never: bool) -> ProgressMode {
    if always {
        ProgressMode::Always
    } else if never {
        ProgressMode::Never
    } else {
        ProgressMode::Auto
    }
}

fn run(args: RunArgs) -> ExitCode {
    let progress = progress_mode(args.progress, args.no_progress);
    let mut words = args.words.into_iter();
    let source = match args.eval {
        Some(code) => ScriptSource::Inline(code),
        None => ScriptSource::File(words.next().unwrap_or_default().into()),
    };
    ExitCode::from(script::run(RunOptions {
        source,
        args: words.collect(),
        progress,
        events: args.events,
    }))
}

fn repl(args: ReplArgs) -> ExitCode {
    let progress = progress_mode(args.progress, args.no_progress);
    ExitCode::from(ioe::repl::run(ioe::repl::Options {
        connect: args.connect,
        no_history: args.no_history,
        progress,
        keep_going: args.keep_going,
        events: args.events,
    }))
}

/// `ioe trust SERVER FINGERPRINT` and `ioe trust --forget SERVER`: edits
/// the known-hosts file and says what it did.
fn trust(args: TrustArgs) -> Result<ExitCode> {
    use ioe::known_hosts::{self, Added};
    let named = match ioe::servers::path() {
        Some(file) if ioe::servers::could_be_name(&args.server) => {
            ioe::servers::find(&file, &args.server)?
        }
        _ => None,
    };
    let addr = match named {
        Some(named) => named.addr,
        None => {
            let bad = |e| anyhow::anyhow!("`{}`: {e}", args.server);
            let (text, _) = ioe::addr::split_scheme(&args.server).map_err(bad)?;
            ioe::addr::connect_addr(text).map_err(bad)?
        }
    };
    let addr = known_hosts::key(&addr);
    let file = known_hosts::path()?;
    let said = match args.fingerprint {
        Some(fingerprint) => match known_hosts::add(&file, &addr, &fingerprint)? {
            Added::New(known) => format!(
                "ioe: trusted {addr} {fingerprint} (added as line {} of {})",
                known.line,
                file.display()
            ),
            Added::Already(known) => format!(
                "ioe: {addr} {fingerprint} is trusted already (line {} of {})",
                known.line,
                file.display()
            ),
        },
        None => {
            let gone = known_hosts::forget(&file, &addr)?;
            if gone.is_empty() {
                anyhow::bail!(
                    "{addr} is not in the known-hosts file `{}`: nothing to forget",
                    file.display()
                );
            }
            let fingerprints: Vec<&str> = gone.iter().map(|k| k.fingerprint.as_str()).collect();
            format!(
                "ioe: forgot {addr} {} (removed from {})",
                fingerprints.join(" "),
                file.display()
            )
        }
    };
    writeln!(std::io::stdout(), "{said}").context("cannot print on stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Serves `args.root` on `args.listen` (already `host:port`) until a
/// signal, which lets requests in flight finish within `--grace`.
fn serve(args: ServeArgs) -> Result<ExitCode> {
    if args.auth.is_some() && args.legacy {
        anyhow::bail!(
            "--legacy and --auth cannot go together: the original design's clients \
             cannot send a token; drop one of them"
        );
    }
    if args.tls && args.legacy {
        anyhow::bail!(
            "--legacy and --tls cannot go together: the original design's clients \
             cannot speak TLS; drop one of them"
        );
    }
    let identity = if args.tls {
        let files = args.tls_cert.as_deref().zip(args.tls_key.as_deref());
        if let Some((_, key)) = files {
            ioe::tls::check_key_outside(key, &args.root).context("cannot set up --tls")?;
        }
        Some(ioe::tls::server_identity(files, &args.root).context("cannot set up --tls")?)
    } else {
        None
    };
    if let Some((path, root)) = args
        .auth
        .as_deref()
        .and_then(|path| ioe::root::lies_inside(path, &args.root))
    {
        anyhow::bail!(
            "--auth: the token file `{}` is inside the served folder `{}`, where clients \
             could read it or, with write access, replace it with tokens of their own; \
             move it elsewhere (such as /etc/ioe/tokens or beside the state folder)",
            path.display(),
            root.display()
        );
    }
    let auth = match &args.auth {
        Some(path) => Some(Arc::new(
            ioe::auth::TokenFile::load(path).map_err(|why| anyhow::anyhow!("--auth: {why}"))?,
        )),
        None => None,
    };
    let tokens = auth.clone();
    let config = Config {
        root: args.root,
        read_only: args.read_only,
        max_size: args.max_size,
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        idle_timeout: Duration::from_secs(args.idle_timeout),
        min_rate: args.min_rate,
        rate_window: Duration::from_secs(args.rate_window),
        legacy: args.legacy,
        quiet: args.quiet,
        log_format: args.log_format,
        grace: Duration::from_secs(args.grace),
        tls: identity
            .as_ref()
            .map(|identity| Arc::clone(&identity.config)),
        auth,
        ..Config::default()
    };
    let root = config.root.clone();
    let server = Server::bind(args.listen.as_str(), config).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            " (is another server running there? pick another port with --listen, \
             or --listen 127.0.0.1:0 for any free one)"
        } else {
            ""
        };
        anyhow::Error::new(e).context(format!(
            "cannot serve `{}` on {}{hint}",
            root.display(),
            args.listen
        ))
    })?;
    refuse_unprotected(
        &server,
        &args.listen,
        args.tls,
        args.auth.is_some(),
        args.allow_unprotected,
    )?;
    let handle = server.shutdown_handle()?;
    ioe::cancel::on_signals(move |_| handle.shutdown())
        .context("cannot install the signal handler")?;
    // the address line is how scripts and tests learn a port chosen by the OS;
    // the lines go out in one write, so a reader that takes the first and
    // leaves (`ioe serve | head -1`) cannot fail a later one and stop the server
    let mut started = format!(
        "ioe: serving {} on {}\n",
        root.display(),
        server.local_addr()?
    );
    if let Some(identity) = &identity {
        started += &format!(
            "ioe: TLS certificate {} fingerprint {}\n",
            identity.source.display(),
            identity.fingerprint
        );
    }
    if let Some(tokens) = &tokens {
        let count = tokens.len();
        let plural = if count == 1 { "" } else { "s" };
        started += &format!(
            "ioe: {count} token{plural} from {}, read again when it changes\n",
            tokens.path().display()
        );
    }
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(started.as_bytes())
        .and_then(|()| stdout.flush())
        .context("cannot print the address being served on stdout")?;
    drop(stdout);
    server.run()?;
    Ok(ExitCode::SUCCESS)
}

/// Refuses to serve on a non-loopback address without both TLS and
/// tokens, unless `--allow-unprotected` says to.
fn refuse_unprotected(
    server: &Server,
    listen: &str,
    tls: bool,
    auth: bool,
    allowed: bool,
) -> Result<()> {
    let bound = server.local_addr()?;
    // `::ffff:127.0.0.1` takes only loopback clients too
    if allowed || bound.ip().to_canonical().is_loopback() || (tls && auth) {
        return Ok(());
    }
    let mint = "`ioe token new --auth FILE --label NAME` mints a token";
    let (missing, why, add) = match (tls, auth) {
        (false, false) => (
            "--tls and --auth FILE",
            "other machines could read and change the folder, and everything would \
             cross the network in clear text",
            format!("Add --tls and --auth FILE ({mint})"),
        ),
        (false, true) => (
            "--tls",
            "tokens and files would cross the network in clear text, for anyone on \
             the way to read",
            "Add --tls".to_string(),
        ),
        _ => (
            "--auth FILE",
            "anyone who reaches it could read and change the folder",
            format!("Add --auth FILE ({mint})"),
        ),
    };
    anyhow::bail!(
        "refusing to serve on {listen}, which is not a loopback address, without {missing}: \
         {why}. {add}, listen on 127.0.0.1, or pass --allow-unprotected to serve anyway on \
         a network you trust"
    )
}

/// `ioe token new|revoke|list`.
fn token(command: TokenCommand) -> Result<ExitCode> {
    match command {
        TokenCommand::New {
            auth,
            label,
            read_only,
            folder,
        } => {
            let access = if read_only {
                ioe::auth::Access::ReadOnly
            } else {
                ioe::auth::Access::ReadWrite
            };
            let grant = ioe::auth::Grant {
                label,
                access,
                folder,
            };
            let token = ioe::auth::add(&auth, &grant).map_err(anyhow::Error::msg)?;
            writeln!(std::io::stdout(), "{token}").context("cannot print the token")?;
            complain(format_args!(
                "ioe: token `{}` ({}) added to {}; it is shown only this once. A client \
                 uses it with IOE_TOKEN=<token> in its environment, or \
                 connect(\"tls://host\", #{{token: \"<token>\"}})",
                grant.label,
                grant.describe(),
                auth.display()
            ));
        }
        TokenCommand::Revoke { auth, label } => {
            ioe::auth::revoke(&auth, &label).map_err(anyhow::Error::msg)?;
            complain(format_args!(
                "ioe: token `{label}` removed from {}; servers refuse it from their next AUTH on",
                auth.display()
            ));
        }
        TokenCommand::List { auth } => {
            let mut out = std::io::stdout().lock();
            for grant in ioe::auth::list(&auth).map_err(anyhow::Error::msg)? {
                let folder = grant.folder.as_deref().unwrap_or("");
                writeln!(out, "{}\t{}\t{folder}", grant.label, grant.access.as_str())
                    .context("cannot print the list")?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
