//! The house's layout rules, checked on the source itself: no import circle between files (a
//! file that uses another must not be used back, directly or round a loop), and no file far over
//! the ~600 lines a reader can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Past this a file must be split along its seams (the guideline is ~600).
const MAX_LINES: usize = 650;

/// Every `.rs` file under `src/`, by module path (`actors::olympics::frontend`).
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .map(|path| {
            let relative = path.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts
                .last()
                .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
            {
                parts.pop();
            }
            (parts.join("::"), path)
        })
        .collect()
}

/// The code of a file without comments and test modules, where imports may go anywhere.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("read a source file");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The longest module path in `modules` that `path` (`a::b::Type`) starts with.
fn owner<'m>(modules: &'m BTreeMap<String, PathBuf>, path: &str) -> Option<&'m str> {
    let mut parts: Vec<&str> = path.split("::").collect();
    while !parts.is_empty() {
        let candidate = parts.join("::");
        if let Some((name, _)) = modules.get_key_value(&candidate) {
            return Some(name);
        }
        parts.pop();
    }
    None
}

/// Module → the modules its code names through `crate::` (its own submodules and parents
/// excepted: a folder's `mod.rs` may use its files and they it).
fn uses(modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for (name, path) in modules {
        let code = code(path);
        let mut targets = BTreeSet::new();
        for (at, _) in code.match_indices("crate::") {
            let rest: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if let Some(target) = owner(modules, rest.trim_end_matches(':')) {
                let related = target.is_empty()
                    || target == name
                    || name.starts_with(&format!("{target}::"))
                    || target.starts_with(&format!("{name}::"));
                if !related {
                    targets.insert(target.to_owned());
                }
            }
        }
        graph.insert(name.clone(), targets);
    }
    graph
}

/// The circles of `graph` (strongly connected components of more than one module).
fn circles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    let reaches = |from: &str| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.to_owned()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> =
        graph.keys().map(|m| (m, reaches(m))).collect();
    let mut found: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, reached) in &reach {
        if reached.contains(*m) {
            let circle: Vec<String> = reached
                .iter()
                .filter(|other| reach[other].contains(*m))
                .cloned()
                .collect();
            found.insert(circle);
        }
    }
    found.into_iter().collect()
}

#[test]
fn no_two_source_files_import_each_other_round_a_circle() {
    let modules = modules();
    assert!(
        modules.contains_key("actors::server_group"),
        "found the source"
    );
    let circles = circles(&uses(&modules));
    assert!(
        circles.is_empty(),
        "import circles between files: {circles:?}"
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(m, to)| (m.to_owned(), to.into_iter().map(str::to_owned).collect()))
    .collect();
    assert_eq!(
        circles(&graph),
        vec![vec!["a".to_owned(), "b".into(), "c".into()]]
    );
}

#[test]
fn no_source_file_is_far_over_six_hundred_lines() {
    let long: Vec<(String, usize)> = modules()
        .into_values()
        .map(|path| {
            let lines = std::fs::read_to_string(&path).unwrap().lines().count();
            (path.display().to_string(), lines)
        })
        .filter(|(_, lines)| *lines > MAX_LINES)
        .collect();
    assert!(long.is_empty(), "split these along their seams: {long:?}");
}
