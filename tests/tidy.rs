//! The shape of the code, enforced: the crate's modules import each other one way only.
//!
//! Every path in `src/` (comments and literals aside; `crate::`, `super::`, `self::` and
//! child modules, `use` trees whole) is resolved to the module it names (`rust.rs` reads
//! the code). The rules, as ARCHITECTURE.md draws them:
//! - no import cycle between modules (files), at any depth, the crate root included;
//! - a top-level module imports only modules of a lower layer (`LAYERS`, bottom first);
//! - no file in `src/` over 400 lines (tests aside) and no function over 80 lines, but
//!   for the few listed in `LONG`, each with its reason.
//!
//! A new top-level module must be given a layer here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules, bottom layer first; a module may import only from earlier layers.
const LAYERS: &[&[&str]] = &[
    &["api", "limits", "logging", "notify"],
    &["config"],
    &["engine", "metrics"],
    &["dns", "cluster"],
    &["checks"],
    &["vip", "admin"],
    &["server"],
    &["demo", "cli"],
    &["", "main"],
];

#[path = "tidy/rust.rs"]
mod rust;

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

/// The module graph of `src/`: each module and the modules it imports. Every path is
/// resolved: `crate::`, `super::` (at any depth), `self::` and a child module's name,
/// inside `use` trees and in code; an item of the crate root (`crate::Prepared`) is an
/// import of the root.
fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<Module, PathBuf> = files
        .iter()
        .map(|f| (module_of(&src, f).0, f.clone()))
        .collect();
    let is_test = |m: &Module| {
        m.last()
            .is_some_and(|n| n == "tests" || n.ends_with("_tests"))
    };
    let mut edges = BTreeMap::new();
    for (module, file) in &modules {
        // Tests may reach anywhere; main.rs is a crate of its own (it names the library
        // `hadns::`).
        if is_test(module) || module == &["main".to_string()] {
            continue;
        }
        let mut code = rust::code(&std::fs::read_to_string(file).unwrap());
        if let Some(line) = rust::inline_tests(&code) {
            code = code.lines().take(line - 1).collect::<Vec<_>>().join("\n");
        }
        let mut deps = BTreeSet::new();
        for segments in rust::paths(&code) {
            let Some(full) = absolute(module, &segments, &modules) else {
                continue;
            };
            let target = (0..=full.len())
                .rev()
                .map(|n| full[..n].to_vec())
                .find(|m| modules.contains_key(m))
                .expect("the root is a module");
            if &target != module && !is_test(&target) {
                if std::env::var("TIDY_WHY").is_ok_and(|w| w == show(module)) {
                    eprintln!(
                        "{} -> {}: {}",
                        show(module),
                        show(&target),
                        segments.join("::")
                    );
                }
                deps.insert(target);
            }
        }
        edges.insert(module.clone(), deps);
    }
    edges
}

/// A path as seen from `module`, from the crate root; `None` for a path that starts
/// outside the crate (another crate, a type's associated item, a local enum).
fn absolute(
    module: &Module,
    segments: &[String],
    modules: &BTreeMap<Module, PathBuf>,
) -> Option<Module> {
    let mut base = module.clone();
    let mut rest = segments;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        Some("super") => {
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest = &rest[1..];
            }
        }
        Some(first) => {
            let child: Module = module.iter().cloned().chain([first.to_string()]).collect();
            if !modules.contains_key(&child) {
                return None;
            }
        }
        None => return None,
    }
    Some(base.into_iter().chain(rest.iter().cloned()).collect())
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
    // Use trees whole, paths in code, comments and literals skipped.
    let code = rust::code(
        "use super::{fast, snapshot::{Snapshot, Builder as B}};\n\
         use crate::Prepared;\n\
         let x = crate::server::run(); // crate::admin\n\
         let s = \"crate::vip {\"; let c = '{';\n\
         child::go(super::super::api::id::X);",
    );
    let found: Vec<String> = rust::paths(&code).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        found,
        [
            "super::fast",
            "super::snapshot::Snapshot",
            "super::snapshot::Builder",
            "crate::Prepared",
            "crate::server::run",
            "child::go",
            "super::super::api::id::X",
        ]
    );
    // Resolved from `dns::fuzz`: the root's item is the root; a child only if it exists.
    let modules: BTreeMap<Module, PathBuf> = [
        vec![],
        vec!["dns".to_string()],
        vec!["dns".into(), "fuzz".into()],
        vec!["dns".into(), "fuzz".into(), "child".into()],
    ]
    .into_iter()
    .map(|m| (m, PathBuf::new()))
    .collect();
    let from: Module = vec!["dns".into(), "fuzz".into()];
    let path = |p: &str| p.split("::").map(String::from).collect::<Vec<_>>();
    assert_eq!(
        absolute(&from, &path("crate::Prepared"), &modules),
        Some(path("Prepared"))
    );
    assert_eq!(
        absolute(&from, &path("super::super::api"), &modules),
        Some(path("api"))
    );
    assert_eq!(
        absolute(&from, &path("child::go"), &modules),
        Some(path("dns::fuzz::child::go"))
    );
    assert_eq!(absolute(&from, &path("Answer::Nodes"), &modules), None);
    // Function lengths: braces in literals do not count.
    let f = rust::code("fn a() {\n    let s = \"}}}\";\n    if x { y('}') }\n}\nfn b();\n");
    assert_eq!(rust::functions(&f), [("a".to_string(), 1, 4)]);
}

/// Integration tests run side by side: two database servers of the same kind on one
/// loopback address collide on its port. Most take a fresh address from the harness
/// (`support::backends::loopback`); the few that need one in a given subnet (a site's)
/// write it, and every such literal address is used once (computed ones keep to
/// 127.0.0.101 and up, a range no literal uses).
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

/// Files and functions that stay long on purpose, each with its reason: (path under
/// `src/`, function name or `""` for the file, why).
const LONG: &[(&str, &str, &str)] = &[
    (
        "metrics/mod.rs",
        "new",
        "the table of every metric's name, help and labels",
    ),
    (
        "server/events.rs",
        "log_event",
        "the table of one log line per event kind",
    ),
    (
        "vip/actor.rs",
        "step",
        "the vip state machine's transition table, tested as one",
    ),
    (
        "admin/text.rs",
        "status",
        "the table `hadns status` prints, column by column",
    ),
    (
        "dns/fast.rs",
        "answer",
        "the UDP fast path, one function the compiler sees whole (bench/qps.sh)",
    ),
];

/// The most lines a file in `src/` has (an inline `mod tests` aside; test files aside).
const MAX_FILE: usize = 400;
/// The most lines a function has, from its `fn` line to its closing brace.
const MAX_FN: usize = 80;

#[test]
fn files_and_functions_stay_short() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut long = Vec::new();
    let mut sizes = BTreeMap::new();
    for file in files {
        let name = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let stem = file.file_stem().unwrap().to_string_lossy();
        if stem == "tests" || stem.ends_with("_tests") {
            continue;
        }
        let code = rust::code(&std::fs::read_to_string(&file).unwrap());
        let lines = rust::inline_tests(&code).map_or(code.lines().count(), |l| l - 1);
        let allowed = |f: &str| LONG.iter().any(|(p, n, _)| *p == name && *n == f);
        if lines > MAX_FILE && !allowed("") {
            long.push(format!("{name}: {lines} lines"));
        }
        for (function, line, length) in rust::functions(&code) {
            if length > MAX_FN && line < lines && !allowed(&function) {
                long.push(format!("{name}:{line} fn {function}: {length} lines"));
            }
            sizes.insert((name.clone(), function), length);
        }
        sizes.insert((name, String::new()), lines);
    }
    assert!(
        long.is_empty(),
        "over {MAX_FILE} lines a file or {MAX_FN} a function: {long:#?}"
    );
    // An allowance no longer needed (the table got short, or is gone) leaves the list.
    let stale: Vec<_> = (LONG.iter())
        .filter(|(p, n, _)| {
            let limit = if n.is_empty() { MAX_FILE } else { MAX_FN };
            sizes
                .get(&(p.to_string(), n.to_string()))
                .is_none_or(|&l| l <= limit)
        })
        .collect();
    assert!(
        stale.is_empty(),
        "no longer long; take them off LONG: {stale:?}"
    );
}
