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
    /// Maps `lib` to `folder/lib.rhai` as Rhai does.
    files: FileModuleResolver,
    loaded: RefCell<HashMap<PathBuf, Shared<Module>>>,
}

impl ModuleResolver for Modules {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let beside = source.and_then(|s| Path::new(s).parent());
        let file = self.files.get_file_path(path, beside);
        if let Some(module) = self.loaded.borrow().get(&file) {
            return Ok(module.clone());
        }
        if !file.is_file() {
            return Err(EvalAltResult::ErrorModuleNotFound(path.to_string(), pos).into());
        }
        let in_module = |e| EvalAltResult::ErrorInModule(path.to_string(), e, pos);
        let mut ast = engine.compile_file(file.clone()).map_err(in_module)?;
        ast.set_source(file.to_string_lossy().into_owned());
        let module: Shared<Module> = Module::eval_ast_as_new(Scope::new(), &ast, engine)
            .map_err(in_module)?
            .into();
        self.loaded.borrow_mut().insert(file, module.clone());
        Ok(module)
    }
}
