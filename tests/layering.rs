//! The module layering of `docs/architecture.md` ("Layers"): a top-level module of `src/`
//! imports (`crate::<module>`) only from its own layer or the layers below it, so the module
//! graph has no cycle, and nothing but `main.rs` imports from `cli/`. Test code (after
//! `#[cfg(test)]`) and comments are left out: they do not make a module depend on another.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The layers, lowest first (as listed in `docs/architecture.md`).
const LAYERS: &[&[&str]] = &[
    &["payload", "history", "wall"],
    &["process"],
    &["scenario"],
    &["sim"],
    &["family"],
    &["check"],
    &["families"],
    &["report", "outcome"],
    &["api", "shrink", "sweep"],
    &["cli"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::<module>` a file's non-test, non-comment code names.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = Vec::new();
    for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
        for (i, _) in line.match_indices("crate::") {
            let rest = &line[i + "crate::".len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            let preceded = line[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$');
            if !name.is_empty() && !preceded {
                out.push(name);
            }
        }
    }
    out
}

/// (module, imported module, file) for every import that goes up a layer.
fn upward_imports() -> Vec<(String, String, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let mut bad = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).expect("under src/");
        let first = rel.iter().next().expect("a path").to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "main" || module == "lib" {
            continue;
        }
        let own = layer(&module)
            .unwrap_or_else(|| panic!("src/{module} is in no layer of docs/architecture.md"));
        let text = std::fs::read_to_string(&file).expect("a readable source file");
        for target in imports(&text) {
            if target == module {
                continue;
            }
            if let Some(theirs) = layer(&target)
                && theirs > own
            {
                bad.push((module.clone(), target, rel.display().to_string()));
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

#[test]
fn no_module_imports_from_a_higher_layer() {
    let bad = upward_imports();
    let mut by_edge: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for (from, to, file) in bad {
        by_edge.entry((from, to)).or_default().push(file);
    }
    assert!(
        by_edge.is_empty(),
        "imports that go up a layer (module -> module: files): {by_edge:?}"
    );
}

#[test]
fn the_import_scan_sees_crate_paths_and_skips_comments_and_tests() {
    let text = "use crate::sim::RunRecord;\n// crate::cli::x\nfn f() { crate::family::g(); }\n#[cfg(test)]\nuse crate::api::Runner;\n";
    assert_eq!(imports(text), vec!["sim".to_string(), "family".to_string()]);
    assert_eq!(layer("cli"), Some(LAYERS.len() - 1));
    assert!(layer("scenario") < layer("family"));
}
