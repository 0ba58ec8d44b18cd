//! The crate's module layers, checked on its source: every `crate::` and `super::` path in the
//! code (not in comments or unit tests) must point to a lower layer, and the sub-modules of one
//! module must not import each other in a circle. `docs/architecture.md` draws the same layers;
//! this test keeps the drawing true.

#![allow(clippy::expect_used)] // test helpers may fail loudly

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may import modules of lower layers only: not its own
/// layer's (the services do not know each other) and never a higher one's.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "foundations",
        &["clock", "metrics", "outbound", "cors", "pages"],
    ),
    ("storage", &["store"]),
    ("outcomes and keys at rest", &["audit", "error", "protect"]),
    ("settings", &["config", "tls"]),
    ("shared rules", &["fhir", "limits"]),
    ("authorization", &["auth"]),
    ("HTTP toolkit", &["http"]),
    (
        "services",
        &[
            "context",
            "resources",
            "subscriptions",
            "asynchronous",
            "health",
        ],
    ),
    ("assembly", &["sofa"]),
];

/// One source file: its module path and its code without comments and unit tests.
struct SourceFile {
    module: Vec<String>,
    code: String,
}

fn source_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            source_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code a build sees, roughly: unit-test modules (by convention the last item, after
/// `#[cfg(test)]`) and comment lines removed, so doc links do not count as imports.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file
        .strip_prefix(src)
        .expect("under src")
        .with_extension("");
    let mut module: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(module.last().map(String::as_str), Some("mod" | "lib")) {
        module.pop();
    }
    module
}

fn load(src: &Path) -> Vec<SourceFile> {
    let mut paths = Vec::new();
    source_files(src, &mut paths);
    paths
        .iter()
        .map(|path| SourceFile {
            module: module_of(src, path),
            code: code_of(&std::fs::read_to_string(path).expect("a source file")),
        })
        .collect()
}

fn identifier_at(text: &str) -> Option<&str> {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    (end > 0).then(|| &text[..end])
}

/// The first segment after each `crate::`/`super::` prefix in `code`, resolved against
/// `module`: `crate::a::b` and `use crate::{a::b, c}` give `[a, b]` and `[c]`; in module
/// `x::y`, `super::z` gives `[x, z]`.
fn paths_in(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(['c', 's']) {
        let tail = &rest[at..];
        let preceded_by_word = at > 0
            && rest[..at]
                .chars()
                .next_back()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let (base, after) = if preceded_by_word {
            (None, &tail[1..])
        } else if let Some(after) = tail.strip_prefix("crate::") {
            (Some(Vec::new()), after)
        } else if tail.starts_with("super::") {
            let mut base = module.to_vec();
            let mut after = tail;
            while let Some(next) = after.strip_prefix("super::") {
                base.pop();
                after = next;
            }
            (Some(base), after)
        } else {
            (None, &tail[1..])
        };
        if let Some(base) = base {
            if let Some(group) = after.strip_prefix('{') {
                for item in top_level_items(group) {
                    if let Some(name) = identifier_at(item.trim()) {
                        found.push([base.clone(), vec![name.to_owned()]].concat());
                    }
                }
            } else if let Some(name) = identifier_at(after) {
                found.push([base, vec![name.to_owned()]].concat());
            }
        }
        rest = after;
    }
    found
}

/// The comma-separated items of a `{...}` group whose opening brace is already consumed.
fn top_level_items(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => {
                items.push(&group[start..i]);
                return items;
            }
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items
}

/// Import edges between top-level modules, and between sibling sub-modules of one module
/// (`a/b -> a/c`), each with one file that shows it.
struct Graph {
    top: BTreeMap<(String, String), String>,
    siblings: BTreeMap<String, BTreeMap<(String, String), String>>,
}

fn graph(files: &[SourceFile]) -> Graph {
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    let is_module = |path: &[String]| modules.contains(path);
    let mut graph = Graph {
        top: BTreeMap::new(),
        siblings: BTreeMap::new(),
    };
    for file in files {
        let Some(from) = file.module.first() else {
            continue;
        };
        let shown = file.module.join("::");
        for path in paths_in(&file.code, &file.module) {
            if let Some(to) = path.first()
                && to != from
                && is_module(&path[..1])
            {
                graph
                    .top
                    .entry((from.clone(), to.clone()))
                    .or_insert_with(|| shown.clone());
            }
            if file.module.len() >= 2
                && path.len() >= 2
                && path[0] == *from
                && path[1] != file.module[1]
                && is_module(&path[..2])
            {
                graph
                    .siblings
                    .entry(from.clone())
                    .or_default()
                    .entry((file.module[1].clone(), path[1].clone()))
                    .or_insert_with(|| shown.clone());
            }
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, members)| members.contains(&module))
}

/// A cycle among `edges`, as the list of its nodes, if there is one.
fn cycle(edges: &BTreeMap<(String, String), String>) -> Option<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    // 0 unvisited, 1 on the current path, 2 done.
    let mut state: BTreeMap<&str, u8> = BTreeMap::new();
    fn visit<'a>(
        node: &'a str,
        next: &BTreeMap<&'a str, Vec<&'a str>>,
        state: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        state.insert(node, 1);
        path.push(node);
        for &to in next.get(node).into_iter().flatten() {
            match state.get(to).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|&n| n == to).unwrap_or(0);
                    let mut found: Vec<String> =
                        path[start..].iter().map(|s| s.to_string()).collect();
                    found.push(to.to_owned());
                    return Some(found);
                }
                0 => {
                    if let Some(found) = visit(to, next, state, path) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node, 2);
        None
    }
    let nodes: Vec<&str> = next.keys().copied().collect();
    for node in nodes {
        if state.get(node).copied().unwrap_or(0) == 0
            && let Some(found) = visit(node, &next, &mut state, &mut Vec::new())
        {
            return Some(found);
        }
    }
    None
}

fn crate_graph() -> (Vec<SourceFile>, Graph) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let files = load(&src);
    let graph = graph(&files);
    (files, graph)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let (files, _) = crate_graph();
    let unplaced: BTreeSet<&str> = files
        .iter()
        .filter(|f| f.module.len() == 1 && layer_of(&f.module[0]).is_none())
        .map(|f| f.module[0].as_str())
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in LAYERS (and docs/architecture.md): {unplaced:?}"
    );
}

#[test]
fn imports_point_down_the_layers() {
    let (_, graph) = crate_graph();
    let wrong: Vec<String> = graph
        .top
        .iter()
        .filter(|((from, to), _)| match (layer_of(from), layer_of(to)) {
            (Some(f), Some(t)) => t >= f,
            _ => false,
        })
        .map(|((from, to), file)| format!("{from} -> {to} (in {file})"))
        .collect();
    assert!(
        wrong.is_empty(),
        "imports of a module in the same or a higher layer:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn sibling_modules_import_each_other_one_way() {
    let (_, graph) = crate_graph();
    let cycles: Vec<String> = graph
        .siblings
        .iter()
        .filter_map(|(parent, edges)| cycle(edges).map(|c| format!("{parent}: {}", c.join(" -> "))))
        .collect();
    assert!(
        cycles.is_empty(),
        "sub-module cycles:\n{}",
        cycles.join("\n")
    );
}

#[test]
fn the_checks_see_imports_and_cycles() {
    // The parser finds every form of path the crate uses...
    let module = vec!["subscriptions".to_string(), "notifier".to_string()];
    let code = "use crate::{fhir::{A, B}, store};\nuse super::delivery::typed;\nlet x = crate::error::E;\nfn my_crate::x() {}";
    let paths = paths_in(&code_of(code), &module);
    let heads: Vec<String> = paths.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        heads,
        ["fhir", "store", "subscriptions::delivery", "error"],
        "{paths:?}"
    );
    // ...comments are not imports...
    assert!(paths_in(&code_of("// see crate::sofa::Sofa"), &module).is_empty());
    // ...and the real graph has the edges the assembly needs, and no upward one.
    let (_, graph) = crate_graph();
    assert!(graph.top.contains_key(&("sofa".into(), "resources".into())));
    assert!(graph.top.contains_key(&("resources".into(), "fhir".into())));
    let mut circle = BTreeMap::new();
    circle.insert(("a".to_string(), "b".to_string()), String::new());
    circle.insert(("b".to_string(), "a".to_string()), String::new());
    assert_eq!(
        cycle(&circle),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}

/// The authorization server's grant decisions (`src/auth/decide/`) do no I/O: no axum, no
/// store transaction, no HTTP client, no async, no clock of their own. They take plain values
/// and `now`, so their unit tests run with no network.
#[test]
fn the_authorization_decisions_do_no_io() {
    let mut files = Vec::new();
    source_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src/auth/decide"),
        &mut files,
    );
    assert!(files.len() >= 5, "{files:?}");
    for file in files {
        // Unit tests may take the time of day as their `now`.
        let code = code_of(&std::fs::read_to_string(&file).expect("a source file"));
        let code = code.split("#[cfg(test)]").next().unwrap_or_default();
        for forbidden in [
            "axum",
            "reqwest",
            "tokio",
            "async ",
            ".await",
            "dyn Store",
            "Transaction",
            "std::fs",
            "std::net",
            "Instant::now",
            "Utc::now()",
        ] {
            assert!(
                !code.contains(forbidden),
                "{} uses {forbidden}: decisions take plain values and `now`",
                file.display()
            );
        }
    }
}
