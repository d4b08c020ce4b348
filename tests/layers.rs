//! The library's layers, checked from its source: no module imports from a layer above its
//! own, and no two files import each other, directly or around a circle. `pub use`
//! re-exports are not imports, and test code is left out. Run with `--nocapture` to print the
//! files with their line counts and imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer, bottom (1) to top.
const LAYERS: &[(&str, usize)] = &[
    ("error", 1),
    ("rng", 1),
    ("io", 1),
    ("datasets", 1),
    ("images", 1),
    ("trajectory", 1),
    ("proposals", 1),
    ("training_log", 1),
    ("ranks", 1),
    ("kernels", 2),
    ("problems", 3),
    ("baselines", 3),
    ("learned", 4),
    ("meta", 5),
    ("evaluation", 5),
    ("inspection", 5),
    ("plotting", 6),
    ("report", 7),
    ("cli", 7),
];

fn layer(top: &str) -> usize {
    LAYERS
        .iter()
        .find(|(m, _)| *m == top)
        .unwrap_or_else(|| panic!("module {top} has no layer in tests/layers.rs"))
        .1
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `lib/learned/lstm/tape.rs` → [learned, lstm, tape].
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The source without test code (from a `#[cfg(test)]` line on) and without comments.
fn code(text: &str) -> Vec<String> {
    text.lines()
        .take_while(|l| l.trim() != "#[cfg(test)]")
        .map(|l| l.split("//").next().unwrap_or("").to_string())
        .collect()
}

/// Expands `a::{b, c::{d, e}}` into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        return vec![tree.to_string()];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap()];
    let (mut items, mut depth, mut start) = (Vec::new(), 0, 0);
    for (i, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .flat_map(|s| expand(s).into_iter().map(move |p| format!("{prefix}{p}")))
        .collect()
}

/// The module paths a file's code refers to: its `use` statements (not `pub use`) and the
/// `crate::…` paths written inline.
fn referenced(lines: &[String], own: &[String], is_mod_file: bool) -> Vec<Vec<String>> {
    let joined = lines.join("\n");
    let mut paths = Vec::new();
    let mut statement: Option<(bool, String)> = None;
    for line in lines {
        let t = line.trim_start();
        if statement.is_none() {
            let public = t.starts_with("pub");
            if let Some(at) = t
                .find("use ")
                .filter(|&at| at == 0 || (public && t[..at].trim_end().starts_with("pub")))
            {
                statement = Some((public, t[at + 4..].to_string()));
            }
        } else if let Some((_, text)) = &mut statement {
            text.push_str(t);
        }
        if let Some((public, text)) = statement.take() {
            if !text.contains(';') {
                statement = Some((public, text));
                continue;
            }
            let tree = text.split(';').next().unwrap_or("");
            if !public {
                paths.extend(expand(tree));
            }
        }
    }
    for (i, _) in joined.match_indices("crate::") {
        let rest: String = joined[i..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        paths.push(rest);
    }
    paths
        .into_iter()
        .filter_map(|p| {
            let segs: Vec<String> = p.split("::").map(|s| s.trim().to_string()).collect();
            let (mut base, rest) = match segs.first()?.as_str() {
                "crate" => (Vec::new(), &segs[1..]),
                "super" => (own[..own.len().saturating_sub(1)].to_vec(), &segs[1..]),
                // `use child::…` in a mod.rs names one of its own modules.
                _ if is_mod_file => (own.to_vec(), &segs[..]),
                _ => return None,
            };
            base.extend(rest.iter().filter(|s| !s.is_empty()).cloned());
            Some(base)
        })
        .collect()
}

#[test]
fn no_import_runs_up_a_layer_and_there_are_no_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib");
    let mut files = Vec::new();
    sources(&root, &mut files);
    files.sort();
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&root, f), f.clone()))
        .collect();
    // The longest module path that is a file of ours.
    let resolve = |path: &[String]| -> Option<Vec<String>> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|p| modules.contains_key(p))
    };
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, file) in &modules {
        if file.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod = file.file_stem().is_some_and(|s| s == "mod");
        let lines = code(&text);
        let targets = edges.entry(module.clone()).or_default();
        for path in referenced(&lines, module, is_mod) {
            let Some(target) = resolve(&path) else {
                continue;
            };
            if target == *module || target.is_empty() || module.is_empty() {
                continue;
            }
            if let (Some(from), Some(to)) = (module.first(), target.first()) {
                if layer(to) > layer(from) {
                    upward.push(format!(
                        "{} imports {}",
                        module.join("::"),
                        target.join("::")
                    ));
                }
            }
            targets.insert(target);
        }
        let imports: Vec<String> = targets.iter().map(|t| t.join("::")).collect();
        eprintln!(
            "{:>5} lines  {:<28} imports {}",
            text.lines().count(),
            if module.is_empty() {
                "lib".to_string()
            } else {
                module.join("::")
            },
            if imports.is_empty() {
                "-".to_string()
            } else {
                imports.join(", ")
            }
        );
    }
    assert!(
        upward.is_empty(),
        "imports running up a layer:\n{}",
        upward.join("\n")
    );

    // A circle is a path back to its start.
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        stack: &mut Vec<Vec<String>>,
        done: &mut BTreeSet<Vec<String>>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            return Some(stack[at..].iter().map(|n| n.join("::")).collect());
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(circle) = visit(next, edges, stack, done) {
                return Some(circle);
            }
        }
        stack.pop();
        done.insert(node.clone());
        None
    }
    let mut done = BTreeSet::new();
    for node in edges.keys() {
        if let Some(circle) = visit(node, &edges, &mut Vec::new(), &mut done) {
            panic!("an import circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn no_library_file_is_over_700_lines_before_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib");
    let mut files = Vec::new();
    sources(&root, &mut files);
    for f in files
        .iter()
        .filter(|f| f.file_stem().is_some_and(|s| s != "tests"))
    {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = code(&text).len();
        assert!(
            lines <= 700,
            "{} has {lines} lines of code before its tests",
            f.display()
        );
    }
}
