//! The modules are layers (see the map in `src/lib.rs`): a module uses only
//! those below it, or beside it in the same layer. This reads the sources
//! and fails naming the import that goes up.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// The layers of `src/lib.rs`'s map, bottom first.
const LAYERS: &[&[&str]] = &[
    &[
        "input",
        "fsutil",
        "os",
        "output",
        "bounds",
        "diagnostic",
        "test_hooks",
    ],
    &[
        "protocol",
        "playbook",
        "agents",
        "gate_checks",
        "decision_rules",
        "commit_msg",
        "prices",
    ],
    &["engine"],
    &["config", "summary", "watch", "record", "git"],
    &["journal", "runner", "ingest", "service"],
    &["apply", "replay", "feed"],
    &["status", "explain", "check", "init", "background"],
    &["daemon", "client", "web"],
    &["cli"],
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn no_module_uses_one_above_it() {
    let layer: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, mods)| mods.iter().map(move |m| (*m, i)))
        .collect();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut ups = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let module = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if matches!(module, "lib" | "main") {
            continue;
        }
        let Some(&mine) = layer.get(module) else {
            panic!("src/{rel}: module {module} is on no layer of src/lib.rs's map; add it there and here");
        };
        // Tests may reach anywhere.
        let text = fs::read_to_string(&file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap();
        for (i, _) in code.match_indices("crate::") {
            let dep: String = code[i + 7..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if let Some(&theirs) = layer.get(dep.as_str()) {
                if theirs > mine {
                    ups.push(format!("src/{rel}: {module} uses {dep}, a layer above it"));
                }
            }
        }
    }
    ups.sort();
    ups.dedup();
    assert!(ups.is_empty(), "{}", ups.join("\n"));
}
