//! The library's layers, checked from its source: no module imports from a layer above its
//! own, and no two files import each other, directly or around a circle. A file's imports are
//! its `use` statements and every `crate::`, `super::` and `self::` path written inline; a name
//! imported through a `pub use` re-export is followed to the file that defines it (a re-export
//! alone is not an import). Test code is left out. Run with `--nocapture` to print the files
//! with their line counts and imports.

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
    ("bench", 7),
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
/// Every Rust file under `folder` of the repository.
fn sources_under(folder: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(folder),
        &mut files,
    );
    files
}

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

/// The source without comments and without test code: each item under `#[cfg(test)]` (a
/// `mod tests;` line, or a module or function to its closing brace) is left out, wherever it
/// stands in the file.
fn code(text: &str) -> Vec<String> {
    let mut kept = Vec::new();
    let mut lines = text.lines().map(|l| l.split("//").next().unwrap_or(""));
    while let Some(line) = lines.next() {
        if line.trim() != "#[cfg(test)]" {
            kept.push(line.to_string());
            continue;
        }
        // Skip the item: to its first `;` outside braces, or to the brace that closes it.
        let mut depth = 0i32;
        for item in lines.by_ref() {
            if item.trim_start().starts_with("#[") && depth == 0 {
                continue;
            }
            let mut opened = false;
            for ch in item.chars() {
                match ch {
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => depth -= 1,
                    _ => {}
                }
            }
            if depth == 0 && (opened || item.trim_end().ends_with(';') || item.contains('}')) {
                break;
            }
        }
    }
    kept
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

/// A path written in module `own` as an absolute module path: `crate::`, `super::` and
/// `self::` paths, and in a mod.rs (or lib.rs) a path that starts with one of its children.
fn absolute(path: &str, own: &[String], is_mod_file: bool) -> Option<Vec<String>> {
    let segs: Vec<String> = path.split("::").map(|s| s.trim().to_string()).collect();
    let parent = own[..own.len().saturating_sub(1)].to_vec();
    let (mut base, rest) = match segs.first()?.as_str() {
        "crate" => (Vec::new(), &segs[1..]),
        "super" => (parent, &segs[1..]),
        "self" => (own.to_vec(), &segs[1..]),
        // `use child::…` in a mod.rs names one of its own modules.
        _ if is_mod_file => (own.to_vec(), &segs[..]),
        _ => return None,
    };
    base.extend(rest.iter().filter(|s| !s.is_empty()).cloned());
    Some(base)
}

/// What a file's code refers to: the module paths it imports (its `use` statements and the
/// `crate::`, `super::` and `self::` paths written inline), and its `pub use` re-exports as
/// (name, path), `*` for a glob.
type References = (Vec<Vec<String>>, Vec<(String, Vec<String>)>);

fn referenced(lines: &[String], own: &[String], is_mod_file: bool) -> References {
    let mut private = Vec::new();
    let mut reexports = Vec::new();
    // The code without its `pub use` statements, scanned for inline paths.
    let mut inline = String::new();
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
        match statement.take() {
            Some((public, text)) if text.contains(';') => {
                let tree = text.split(';').next().unwrap_or("");
                for item in expand(tree) {
                    if public {
                        let (path, name) = match item.split_once(" as ") {
                            Some((path, alias)) => (path.trim().to_string(), alias.trim()),
                            None => (item.clone(), item.rsplit("::").next().unwrap_or("")),
                        };
                        if let Some(p) = absolute(&path, own, is_mod_file) {
                            reexports.push((name.trim().to_string(), p));
                        }
                    } else {
                        private.push(item.split(" as ").next().unwrap_or("").to_string());
                    }
                }
                if !public {
                    inline.push_str(line);
                    inline.push('\n');
                }
            }
            Some(open) => statement = Some(open),
            None => {
                inline.push_str(line);
                inline.push('\n');
            }
        }
    }
    for prefix in ["crate::", "super::", "self::"] {
        for (i, _) in inline.match_indices(prefix) {
            let before = inline[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest: String = inline[i..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            private.push(rest);
        }
    }
    let imports = private
        .iter()
        .filter_map(|p| absolute(p, own, is_mod_file))
        .collect();
    (imports, reexports)
}

#[test]
fn no_import_runs_up_a_layer_and_there_are_no_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("lib");
    let mut files = sources_under("lib");
    files.sort();
    let modules: BTreeMap<Vec<String>, PathBuf> = files
        .iter()
        .map(|f| (module_of(&root, f), f.clone()))
        .collect();
    // Every file's re-exports: (module, name) → the path it names.
    let mut aliases: BTreeMap<(Vec<String>, String), Vec<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let is_mod = file.file_stem().is_some_and(|s| s == "mod" || s == "lib");
        let (_, reexports) = referenced(
            &code(&std::fs::read_to_string(file).unwrap()),
            module,
            is_mod,
        );
        for (name, path) in reexports {
            aliases.insert((module.clone(), name), path);
        }
    }
    // The file that defines what a path names: the longest module path that is a file of ours,
    // followed through that file's re-exports (a glob re-export is tried last).
    fn resolve(
        path: &[String],
        modules: &BTreeMap<Vec<String>, PathBuf>,
        aliases: &BTreeMap<(Vec<String>, String), Vec<String>>,
        depth: usize,
    ) -> Option<Vec<String>> {
        let n = (1..=path.len())
            .rev()
            .find(|&n| modules.contains_key(&path[..n]))?;
        let file = path[..n].to_vec();
        if depth < 8 && n < path.len() {
            let through = |alias: &Vec<String>, skip: usize| {
                let mut next = alias.clone();
                next.extend(path[skip..].iter().cloned());
                resolve(&next, modules, aliases, depth + 1)
            };
            if let Some(alias) = aliases.get(&(file.clone(), path[n].clone())) {
                return through(alias, n + 1);
            }
            if let Some(glob) = aliases.get(&(file.clone(), "*".to_string())) {
                return through(glob, n);
            }
        }
        Some(file)
    }
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut upward = Vec::new();
    for (module, file) in &modules {
        if file.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let is_mod = file.file_stem().is_some_and(|s| s == "mod" || s == "lib");
        let lines = code(&text);
        let targets = edges.entry(module.clone()).or_default();
        for path in referenced(&lines, module, is_mod).0 {
            let Some(target) = resolve(&path, &modules, &aliases, 0) else {
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
fn no_library_file_is_over_600_lines_before_its_tests() {
    let files = sources_under("lib");
    for f in files
        .iter()
        .filter(|f| f.file_stem().is_some_and(|s| s != "tests"))
    {
        let text = std::fs::read_to_string(&f).unwrap();
        let lines = code(&text).len();
        assert!(
            lines <= 600,
            "{} has {lines} lines of code before its tests",
            f.display()
        );
    }
}

/// One layout of unit tests: inline (`mod tests { … }`) in a file module; `mod tests;` (a
/// `tests.rs`, or a `tests/` folder when they span several files) only beside a folder
/// module's `mod.rs`; no `#[path]`.
#[test]
fn unit_tests_have_one_layout() {
    let files = sources_under("lib");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains("#[path"), "{} uses #[path]", f.display());
        let folder_module = f.file_stem().is_some_and(|s| s == "mod" || s == "lib");
        assert!(
            folder_module || !text.lines().any(|l| l.trim() == "mod tests;"),
            "{} keeps its tests in another file; a file module keeps them inline",
            f.display()
        );
    }
}

/// The binaries stay thin: their flags and the calls into the library, no file over 400 lines.
#[test]
fn no_binary_file_is_over_400_lines() {
    let files = sources_under("bins");
    for f in &files {
        let lines = std::fs::read_to_string(f).unwrap().lines().count();
        assert!(lines <= 400, "{} has {lines} lines", f.display());
    }
}
