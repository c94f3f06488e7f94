//! The shape of the code, enforced: the crate's modules import each other one way only.
//!
//! Every `crate::` and `super::` path in `src/` (comments aside) is resolved to the module it
//! names. Two rules, as ARCHITECTURE.md draws them:
//! - no import cycle between modules (files), at any depth;
//! - a top-level module imports only modules of a lower layer (`LAYERS`, bottom first).
//!
//! A new top-level module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, bottom layer first; a module may import only from earlier layers.
const LAYERS: &[&[&str]] = &[
    &["api", "limits", "notify"],
    &["config"],
    &["engine", "metrics"],
    &["dns", "cluster"],
    &["checks"],
    &["vip", "admin"],
    &["server"],
    &["demo"],
    &["", "main"],
];

type Module = Vec<String>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `src/dns/fast.rs` -> `dns::fast`; `src/dns/mod.rs` -> `dns`; `src/lib.rs` -> the root.
fn module_of(src: &Path, file: &Path) -> (Module, bool) {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Module = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let is_dir_module = matches!(parts.last().map(String::as_str), Some("mod" | "lib"));
    if is_dir_module {
        parts.pop();
    }
    (parts, is_dir_module || file.ends_with("main.rs"))
}

/// The code of `text` without comments (line comments and doc comments).
fn code(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string literal is rare in this code base; a URL in a string
            // would only cut the line short, never add an import.
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The paths after `crate::` or `super::` in `code`, as segments (`use super::{a, b}` gives
/// `a` and `b`).
fn paths(code: &str) -> Vec<(bool, Vec<String>)> {
    let mut found = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let before = code[..start].chars().last();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let is_crate = code[start..].starts_with("crate::");
        // Both prefixes are seven characters long.
        let rest = &code[start + 7..];
        if let Some(group) = rest.strip_prefix('{') {
            let inner = &group[..group.find('}').unwrap_or(group.len())];
            for item in inner.split(',') {
                let first = item.trim().split("::").next().unwrap_or("").trim();
                if !first.is_empty() {
                    found.push((is_crate, vec![first.to_string()]));
                }
            }
            continue;
        }
        let segments: Vec<String> = rest
            .split("::")
            .map(|s| {
                s.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .take_while(|s| !s.is_empty())
            .collect();
        if !segments.is_empty() {
            found.push((is_crate, segments));
        }
    }
    found
}

/// The module graph of `src/`: each module and the modules it imports.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Module, (PathBuf, bool)> = files
        .iter()
        .map(|f| {
            let (m, dir) = module_of(&src, f);
            (m, (f.clone(), dir))
        })
        .collect();
    let mut edges = BTreeMap::new();
    for (module, (file, _)) in &modules {
        // Tests may reach anywhere.
        let name = module.last().map(String::as_str).unwrap_or("");
        if name == "tests" || name.ends_with("_tests") {
            continue;
        }
        let text = code(&std::fs::read_to_string(file).unwrap());
        let mut deps = BTreeSet::new();
        for (is_crate, segments) in paths(&text) {
            let base: Module = if is_crate {
                Vec::new()
            } else {
                module[..module.len().saturating_sub(1)].to_vec()
            };
            let full: Module = base.into_iter().chain(segments).collect();
            let target = (1..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|m| modules.contains_key(m));
            if let Some(target) = target
                && &target != module
                && !target
                    .last()
                    .is_some_and(|n| n == "tests" || n.ends_with("_tests"))
            {
                deps.insert(target);
            }
        }
        edges.insert(module.clone(), deps);
    }
    edges
}

fn show(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

#[test]
fn no_module_imports_in_a_cycle() {
    let edges = graph();
    // Tarjan's strongly connected components; any with two modules or more is a cycle.
    struct Walk<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<Module, usize>,
        low: BTreeMap<Module, usize>,
        stack: Vec<Module>,
        cycles: Vec<Vec<String>>,
    }
    fn visit(w: &mut Walk, v: &Module) {
        let i = w.index.len();
        w.index.insert(v.clone(), i);
        w.low.insert(v.clone(), i);
        w.stack.push(v.clone());
        for next in w.edges.get(v).into_iter().flatten() {
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v.clone(), low);
            } else if w.stack.contains(next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v.clone(), low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            loop {
                let m = w.stack.pop().unwrap();
                let done = &m == v;
                component.push(show(&m));
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                w.cycles.push(component);
            }
        }
    }
    let mut walk = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        cycles: Vec::new(),
    };
    for module in edges.keys() {
        if !walk.index.contains_key(module) {
            visit(&mut walk, module);
        }
    }
    assert!(walk.cycles.is_empty(), "import cycles: {:?}", walk.cycles);
}

#[test]
fn modules_import_only_lower_layers() {
    let layer_of = |m: &Module| {
        let top = m.first().map(String::as_str).unwrap_or("");
        LAYERS.iter().position(|layer| layer.contains(&top))
    };
    let mut wrong = Vec::new();
    for (module, deps) in graph() {
        let Some(layer) = layer_of(&module) else {
            wrong.push(format!("{} has no layer in tests/tidy.rs", show(&module)));
            continue;
        };
        for dep in deps {
            let same_top = dep.first() == module.first() && !module.is_empty();
            if same_top {
                continue;
            }
            match layer_of(&dep) {
                Some(l) if l < layer => {}
                _ => wrong.push(format!("{} imports {}", show(&module), show(&dep))),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn the_checker_finds_what_it_looks_for() {
    // The parser itself: paths in code are found, grouped imports split, comments skipped.
    let code =
        "use super::{fast, snapshot::Snapshot};\nlet x = crate::server::run(); // crate::admin";
    let found = paths(&self::code(code));
    assert_eq!(
        found,
        vec![
            (true, vec!["server".to_string(), "run".to_string()]),
            (false, vec!["fast".to_string()]),
            (false, vec!["snapshot".to_string()]),
        ]
    );
}

/// Integration tests run side by side: two database servers of the same kind on one
/// loopback address collide on its port. Every literal address a test starts a
/// PostgreSQL or MariaDB server on is used once (a loop's computed addresses must keep to
/// a range no literal uses: 127.0.0.101 and up).
#[test]
fn database_addresses_of_the_integration_tests_are_unique() {
    let mut files = Vec::new();
    rust_files(Path::new("tests/integration"), &mut files);
    let mut seen: BTreeMap<(String, String), PathBuf> = BTreeMap::new();
    let mut clashes = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        for (kind, call) in [("postgres", "Pg::init_"), ("mariadb", "Maria::start")] {
            for (at, _) in text.match_indices(call) {
                let rest = &text[at..];
                let Some(open) = rest.find("(\"") else {
                    continue;
                };
                if open > 40 {
                    continue;
                }
                let address: String = rest[open + 2..].chars().take_while(|c| *c != '"').collect();
                if address.contains('{') {
                    continue;
                }
                let last: u8 = address.rsplit('.').next().unwrap().parse().unwrap_or(0);
                assert!(
                    last <= 100,
                    "{}: {address} is in the range kept for loops",
                    file.display()
                );
                if let Some(first) = seen.insert((kind.into(), address.clone()), file.clone()) {
                    clashes.push(format!(
                        "{kind} on {address}: {} and {}",
                        first.display(),
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(clashes.is_empty(), "{clashes:#?}");
}
