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
        let name = file.to_string_lossy().into_owned();
        let in_module = |e| EvalAltResult::ErrorInModule(name.clone(), e, pos);
        let text = std::fs::read_to_string(&file).map_err(|e| {
            in_module(EvalAltResult::ErrorSystem(format!("cannot read `{name}`"), e.into()).into())
        })?;
        let mut ast = engine
            .compile(super::without_bom(&text))
            .map_err(|e| in_module(e.into()))?;
        ast.set_source(name.clone());
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.loaded.borrow_mut().insert(file, module.clone());
        Ok(module)
    }
}
