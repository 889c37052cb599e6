//! Rhai scripting: the [`Host`] owns one Rhai `Engine` and one `Scope` with
//! the `ioe` functions registered (see `docs/scripting.md`), evaluates
//! whole scripts (`ioe run`) or one entry at a time (the REPL), and turns
//! failures into [`Report`]s.
//!
//! - `functions`: the one declaration of every function (name, calls,
//!   side, doc), which registration is checked against and `help`,
//!   completion and the docs' list are made from;
//! - `api`: `connect`, `Session`, the transfer functions, `serve`;
//! - `import`: modules (`import "lib" as lib;`) beside the importing script;
//! - `push_pull`: `push` and `pull` of whole trees, their options and result;
//! - `local`: the local file helpers, `env` and `sleep`;
//! - `text`: helpers on values alone: sizes, path text, globs;
//! - `time`: `now`, `format_time`, `parse_time`;
//! - `report`: error maps for `catch`, and the report for uncaught errors;
//! - `run`: the `ioe run` command (sources, Ctrl-C, exit statuses).

mod api;
pub mod functions;
mod import;
mod local;
pub(crate) mod push_pull;
mod report;
mod run;
mod text;
mod time;

pub use api::{ScriptSession, ServerHandle};
pub(crate) use api::{folder_name, remote_folder};
pub use report::{
    BAD_ARGUMENT, EXIT_INTERRUPTED, EXIT_UNUSABLE, Exit, Location, Phase, Report, SCRIPT, Stop,
    kinds,
};
pub use run::{RunOptions, ScriptSource, run};

use crate::cancel::CancelToken;
use crate::events::Events;
use crate::server::RunningServer;
use rhai::{AST, Array, Dynamic, Engine, RhaiNativeFunc, Scope};
use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::Write;
use std::rc::Rc;
use std::sync::Arc;
use tempfile::TempDir;

/// Limits set explicitly so that debug and release builds behave alike
/// (Rhai's debug defaults are much lower).
///
/// There is no limit on the size of strings, arrays and maps: Rhai would
/// re-measure a whole container after every `push`, `+=` or `set`, which
/// makes building one quadratic (160,000 pushes took 6 s instead of
/// 0.03 s). The functions of ours that make big values bound them
/// themselves (`read_text`, `walk`).
mod limits {
    /// Nested calls of script functions.
    pub const CALL_LEVELS: usize = 64;
    /// Nesting of expressions at global level.
    pub const EXPR_DEPTH: usize = 64;
    /// Nesting of expressions inside functions.
    pub const FUNCTION_EXPR_DEPTH: usize = 64;
}

/// What the script functions share: the current session, what `serve` and
/// `temp_dir` made, and the settings every new session gets.
pub(crate) struct State {
    current: Option<ScriptSession>,
    servers: Vec<RunningServer>,
    temp_dirs: Vec<TempDir>,
    cancel: CancelToken,
    progress: bool,
    /// Asks the user whether to trust a TLS server met for the first time
    /// (the REPL at a terminal); scripts never ask.
    trust_prompt: Option<TrustPrompt>,
    /// The `--events` log, if any.
    events: Option<Arc<Events>>,
}

/// Asks whether to trust the TLS server at `addr` (`host:port`), met for
/// the first time, whose certificate has `fingerprint`; a yes records it in
/// the known-hosts file `known_hosts`.
pub type TrustPrompt = Rc<dyn Fn(&str, &str, &std::path::Path) -> bool>;

/// Registers functions and properties and remembers their names, to check
/// them against [`functions::API`] and [`functions::PROPERTIES`].
pub(crate) struct Registry<'a> {
    engine: &'a mut Engine,
    names: &'a mut Vec<&'static str>,
    properties: &'a mut Vec<&'static str>,
}

impl Registry<'_> {
    fn func<A: 'static, const N: usize, const X: bool, R: Any + Clone, const F: bool>(
        &mut self,
        name: &'static str,
        func: impl RhaiNativeFunc<A, N, X, R, F> + 'static,
    ) {
        debug_assert!(
            functions::find(name).is_some(),
            "`{name}` is registered but not declared in src/script/functions.rs"
        );
        self.engine.register_fn(name, func);
        self.names.push(name);
    }

    fn getter<T: Any + Clone, R: Any + Clone>(
        &mut self,
        name: &'static str,
        get: impl Fn(&mut T) -> R + 'static,
    ) {
        debug_assert!(
            functions::property_names().contains(&name),
            "property `{name}` is registered but not declared in src/script/functions.rs"
        );
        self.engine.register_get(name, get);
        self.properties.push(name);
    }
}

/// How a [`Host`] starts.
#[derive(Clone, Default)]
pub struct HostOptions {
    /// The script's command-line arguments, the `ARGS` array.
    pub args: Vec<String>,
    /// Whether sessions draw progress bars ([`crate::progress::ProgressMode::enabled`]).
    pub progress: bool,
    /// Cancels the transfer in flight and stops the script (Ctrl-C).
    pub cancel: CancelToken,
    /// Where connects, transfers and errors are written (`--events`).
    pub events: Option<Arc<Events>>,
}

/// One scripting session: an `Engine` with the `ioe` API, one `Scope`, and
/// the functions defined so far. Dropping it closes its sessions, then
/// stops the servers started by `serve` and removes `temp_dir` folders.
pub struct Host {
    scope: Scope<'static>,
    engine: Engine,
    /// Script functions defined by earlier entries (statements cleared).
    functions: AST,
    state: Rc<RefCell<State>>,
    /// Source text by name, to quote the offending line in reports.
    sources: HashMap<String, String>,
    /// Which source defined each script function (by name).
    fn_sources: HashMap<String, String>,
}

impl Host {
    /// A host with the whole API registered and `ARGS` in scope.
    pub fn new(options: HostOptions) -> Host {
        let state = Rc::new(RefCell::new(State {
            current: None,
            servers: Vec::new(),
            temp_dirs: Vec::new(),
            cancel: options.cancel.clone(),
            progress: options.progress,
            trust_prompt: None,
            events: options.events.clone(),
        }));
        let mut engine = configured_engine(options.cancel.clone());
        let (names, properties) = register_api(&mut engine, &state);
        debug_assert_eq!(names, functions::names(), "registered ≠ declared functions");
        debug_assert_eq!(properties, functions::property_names());

        let mut scope = Scope::new();
        let args: Array = options.args.into_iter().map(Dynamic::from).collect();
        scope.push("ARGS", args);
        Host {
            scope,
            engine,
            functions: AST::empty(),
            state,
            sources: HashMap::new(),
            fn_sources: HashMap::new(),
        }
    }

    /// Compiles `source` (named `name` in reports) against the current
    /// scope, keeps the functions it defines for later entries, and runs it.
    /// Variables it declares at top level stay in scope.
    ///
    /// Evaluating again under a name seen before keeps the earlier text on
    /// the lines the new source leaves blank: the REPL's batch mode pads
    /// each entry with blank lines to its place in the input, so reports
    /// can still quote a function an earlier entry defined.
    pub fn eval(&mut self, name: &str, source: &str) -> Result<Dynamic, Stop> {
        let kept = match self.sources.get(name) {
            Some(earlier) => overlay_lines(earlier, source),
            None => source.to_string(),
        };
        self.sources.insert(name.to_string(), kept);
        let ast = self
            .engine
            .compile_with_scope(&self.scope, source)
            .map_err(|e| Stop::Failed(Box::new(Report::compile(&e, name, &self.sources))))
            .inspect_err(|stop| self.report_event(stop))?;
        for function in ast.iter_functions() {
            self.fn_sources
                .insert(function.name.to_string(), name.to_string());
        }
        self.functions += ast;
        self.functions.set_source(name);
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.functions);
        self.functions.clear_statements();
        result
            .map_err(|e| Report::runtime(*e, name, &self.sources, &self.fn_sources))
            .inspect_err(|stop| self.report_event(stop))
    }

    /// The `--events` log, if any.
    pub fn events(&self) -> Option<Arc<Events>> {
        self.state.borrow().events.clone()
    }

    /// An `error` event for a failure (not for `exit(…)`).
    fn report_event(&self, stop: &Stop) {
        if let Stop::Failed(report) = stop {
            let events = self.state.borrow().events.clone();
            crate::events::emit(events.as_ref(), || report.event());
        }
    }

    /// Lets `connect` ask, with `prompt`, whether to trust a TLS server met
    /// for the first time, instead of failing.
    pub fn set_trust_prompt(&mut self, prompt: TrustPrompt) {
        self.state.borrow_mut().trust_prompt = Some(prompt);
    }

    /// The address of the current session, if it is open.
    pub fn current_addr(&self) -> Option<String> {
        let state = self.state.borrow();
        let session = state.current.as_ref()?;
        session.is_open().then(|| session.addr())
    }

    /// The connect options (TLS, token) of the open current session, so
    /// that a side connection to it speaks and authenticates as it does.
    pub fn current_options(&self) -> Option<crate::session::ConnectOptions> {
        let state = self.state.borrow();
        let session = state.current.as_ref()?;
        session.is_open().then(|| session.options())
    }

    /// The current session (open or closed), if `connect` made one: the
    /// REPL's command forms of the extensions call it directly.
    pub fn current_session(&self) -> Option<ScriptSession> {
        self.state.borrow().current.clone()
    }

    /// Every function name of the `ioe` API, sorted.
    pub fn function_names(&self) -> Vec<&'static str> {
        functions::names()
    }

    /// Every property name (`s.addr`, `server.root`, …) of the `ioe` API,
    /// sorted.
    pub fn property_names(&self) -> Vec<&'static str> {
        functions::property_names()
    }

    /// The functions earlier entries defined with `fn`, sorted (for the
    /// REPL's completion).
    pub fn script_function_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .functions
            .iter_functions()
            .map(|f| f.name.to_string())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }
}

/// Registers the whole `ioe` API on `engine`; returns the names of the
/// functions and of the properties registered, sorted, without repeats.
fn register_api(
    engine: &mut Engine,
    state: &Rc<RefCell<State>>,
) -> (Vec<&'static str>, Vec<&'static str>) {
    let mut names = Vec::new();
    let mut properties = Vec::new();
    let mut registry = Registry {
        engine,
        names: &mut names,
        properties: &mut properties,
    };
    registry.func("exit", || -> Result<(), _> {
        Err(report::exit_request(Dynamic::UNIT))
    });
    registry.func("exit", |value: Dynamic| -> Result<(), _> {
        Err(report::exit_request(value))
    });
    api::register(&mut registry, state);
    push_pull::register(&mut registry, state);
    local::register(&mut registry, state);
    text::register(&mut registry);
    time::register(&mut registry);
    names.sort_unstable();
    names.dedup();
    properties.sort_unstable();
    properties.dedup();
    (names, properties)
}

/// An engine with the limits, the module resolver, Ctrl-C checks between
/// operations, and `print`/`debug` that survive a closed stdout or stderr;
/// nothing of the `ioe` API registered yet.
fn configured_engine(cancel: CancelToken) -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_call_levels(limits::CALL_LEVELS)
        .set_max_expr_depths(limits::EXPR_DEPTH, limits::FUNCTION_EXPR_DEPTH)
        // 0 is unlimited: see `limits` for why
        .set_max_string_size(0)
        .set_max_array_size(0)
        .set_max_map_size(0)
        .set_max_operations(0)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true)
        .set_module_resolver(import::Modules::default());
    // between operations: stop the script once Ctrl-C (or SIGTERM) came
    engine.on_progress(move |_| cancel.is_cancelled().then(|| Dynamic::from(cancel.cause())));
    engine.on_print(|text| {
        // a closed pipe (`ioe run job.rhai | head`) must not panic
        let _ = writeln!(std::io::stdout().lock(), "{text}");
    });
    engine.on_debug(|text, source, pos| {
        // nor must a closed stderr (`ioe run job.rhai 2>&1 | head`)
        let mut stderr = std::io::stderr().lock();
        let _ = match (source, pos.line()) {
            (Some(source), Some(line)) => writeln!(stderr, "{source}:{line}: {text}"),
            _ => writeln!(stderr, "{text}"),
        };
    });
    engine
}

/// `text` without the byte order mark some Windows editors start files
/// with (scripts and modules).
pub(crate) fn without_bom(text: &str) -> &str {
    text.strip_prefix('\u{feff}').unwrap_or(text)
}

/// `upper`'s lines, except where they are blank and `lower` has a line.
fn overlay_lines(lower: &str, upper: &str) -> String {
    let (mut lower, mut upper) = (lower.lines(), upper.lines());
    let mut merged = Vec::new();
    loop {
        match (lower.next(), upper.next()) {
            (None, None) => break,
            (Some(old), Some(new)) if new.trim().is_empty() => merged.push(old),
            (_, Some(new)) => merged.push(new),
            (Some(old), None) => merged.push(old),
        }
    }
    merged.join("\n")
}

impl Drop for Host {
    fn drop(&mut self) {
        // sessions first (they say BYE), then the servers they talk to
        self.scope.clear();
        self.functions = AST::empty();
        let mut state = self.state.borrow_mut();
        state.current = None;
        state.servers.clear();
        state.temp_dirs.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Host {
        Host::new(HostOptions::default())
    }

    fn failure(stop: Stop) -> Report {
        match stop {
            Stop::Failed(report) => *report,
            Stop::Exit(exit) => panic!("expected a failure, got {exit:?}"),
        }
    }

    #[test]
    fn variables_and_functions_survive_between_entries() {
        let mut host = host();
        let _ = host
            .eval("<1>", "let x = 40; fn add(a, b) { a + b }")
            .expect("defines x and add");
        let value = host.eval("<2>", "add(x, 2)").unwrap();
        assert_eq!(value.as_int(), Ok(42));
        // a failed entry keeps what earlier ones defined
        assert!(host.eval("<3>", "x +").is_err());
        assert_eq!(host.eval("<4>", "x").unwrap().as_int(), Ok(40));
    }

    #[test]
    fn an_error_inside_an_earlier_function_quotes_that_entry() {
        let mut host = host();
        let _ = host
            .eval("<1>", "fn boom() {\n    throw \"bang\";\n}")
            .expect("defines boom");
        let report = failure(host.eval("<2>", "let y = 1; boom()").unwrap_err());
        assert_eq!(report.message, "bang");
        let at = report.location.expect("a location");
        assert_eq!((at.file.as_str(), at.line, at.column), ("<1>", 2, 5));
        assert_eq!(at.text.as_deref(), Some("    throw \"bang\";"));
        assert_eq!(report.trace, ["in `boom`, called at <2>:1:12"]);
    }

    #[test]
    fn global_calls_without_a_session_say_connect_first() {
        let mut host = host();
        for call in [
            "list()",
            "list(\"d\")",
            "read(\"a\")",
            "read(\"a\", \"b\")",
            "write(\"a\")",
            "write(\"a\", \"b\")",
            "bye()",
        ] {
            let report = failure(host.eval("<t>", call).unwrap_err());
            assert_eq!(report.kind.as_deref(), Some("not_connected"), "{call}");
            assert!(
                report
                    .message
                    .ends_with("not connected; connect to a server first"),
                "{call}: {}",
                report.message
            );
        }
        assert_eq!(host.current_addr(), None);
    }

    #[test]
    fn a_padded_source_keeps_the_earlier_lines_it_leaves_blank() {
        let first = "\n\nfn f(v) {\n  v * 2\n}";
        let second = "\n\n\n\n\nlet y = f(\"a\");";
        assert_eq!(
            overlay_lines(first, second),
            "\n\nfn f(v) {\n  v * 2\n}\nlet y = f(\"a\");"
        );
        assert_eq!(overlay_lines("a\nb\nc", "x"), "x\nb\nc");
    }

    #[test]
    fn script_functions_are_listed_once_defined() {
        let mut host = host();
        assert_eq!(host.script_function_names(), Vec::<String>::new());
        let _ = host
            .eval("<1>", "fn twice(x) { x * 2 } fn twice(x, y) { x * y }")
            .unwrap();
        let _ = host.eval("<2>", "fn half(x) { x / 2 }").unwrap();
        assert_eq!(host.script_function_names(), ["half", "twice"]);
    }

    #[test]
    fn every_registered_function_is_declared_and_every_declared_one_registered() {
        let state = Rc::new(RefCell::new(State {
            current: None,
            servers: Vec::new(),
            temp_dirs: Vec::new(),
            cancel: CancelToken::new(),
            progress: false,
            trust_prompt: None,
            events: None,
        }));
        let mut engine = configured_engine(CancelToken::new());
        let (registered, properties) = register_api(&mut engine, &state);
        let declared = functions::names();
        let undeclared: Vec<_> = registered
            .iter()
            .filter(|n| !declared.contains(n))
            .collect();
        let unregistered: Vec<_> = declared
            .iter()
            .filter(|n| !registered.contains(n))
            .collect();
        assert!(
            undeclared.is_empty() && unregistered.is_empty(),
            "registered but not declared: {undeclared:?}; declared but not registered: \
             {unregistered:?}"
        );
        assert_eq!(properties, functions::property_names());
    }

    #[test]
    fn every_api_function_says_how_to_call_it() {
        let host = host();
        for name in host.function_names() {
            assert!(functions::usage(name).is_some(), "{name}");
        }
    }
}
