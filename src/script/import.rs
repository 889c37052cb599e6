//! `import "lib" as lib;`: a module is the file `lib.rhai` beside the
//! script that imports it, loaded once. Its functions carry the file's path
//! as their source, so a report of an error inside one quotes that file
//! (Rhai's own resolver names them by the import string only).

use rhai::module_resolvers::FileModuleResolver;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Finds modules beside the importing script and keeps each one loaded.
#[derive(Default)]
pub(crate) struct Modules {
    loaded: RefCell<HashMap<PathBuf, Shared<Module>>>,
    /// The modules being loaded, outermost first: importing one of them
    /// again is a cycle, which would otherwise recurse until the stack
    /// overflows.
    loading: RefCell<Vec<PathBuf>>,
}

/// The file `import "path"` loads when run by the script named `importer`:
/// `path` plus `.rhai`, relative to the importer's folder.
pub(crate) fn module_file(path: &str, importer: &str) -> PathBuf {
    FileModuleResolver::new().get_file_path(path, Path::new(importer).parent())
}

impl ModuleResolver for Modules {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let file = module_file(path, source.unwrap_or_default());
        if let Some(module) = self.loaded.borrow().get(&file) {
            return Ok(module.clone());
        }
        if !file.is_file() {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        }
        if self.loading.borrow().contains(&file) {
            let mut cycle: Vec<String> = self
                .loading
                .borrow()
                .iter()
                .skip_while(|f| **f != file)
                .map(|f| format!("`{}`", f.display()))
                .collect();
            cycle.push(format!("`{}`", file.display()));
            let message = format!("modules import each other: {}", cycle.join(" imports "));
            return Err(EvalAltResult::ErrorRuntime(message.into(), pos).into());
        }
        self.loading.borrow_mut().push(file.clone());
        let loaded = load(engine, &file, pos);
        self.loading.borrow_mut().pop();
        let module = loaded?;
        self.loaded.borrow_mut().insert(file, module.clone());
        Ok(module)
    }
}

/// Compiles and runs the module in `file`, named by its path.
fn load(engine: &Engine, file: &Path, pos: Position) -> Result<Shared<Module>, Box<EvalAltResult>> {
    let name = file.to_string_lossy().into_owned();
    let in_module = |e| EvalAltResult::ErrorInModule(name.clone(), e, pos);
    let text = std::fs::read_to_string(file).map_err(|e| {
        in_module(EvalAltResult::ErrorSystem(format!("cannot read `{name}`"), e.into()).into())
    })?;
    let mut ast = engine
        .compile(super::without_bom(&text))
        .map_err(|e| in_module(e.into()))?;
    ast.set_source(name.clone());
    let module = Module::eval_ast_as_new(Scope::new(), &ast, engine).map_err(in_module)?;
    Ok(module.into())
}
