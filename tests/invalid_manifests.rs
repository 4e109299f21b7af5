//! The corpus of invalid manifests in tests/invalid/: each file's first line says the one error
//! it must produce, as `# expect: LINE:COL: message`. Pure parsing; no engine.

use hawser::desired::{self, ManifestFile};

#[test]
fn every_invalid_manifest_reports_its_exact_position_and_message() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/invalid");
    let mut entries: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    assert!(entries.len() >= 30, "the corpus has at least 30 cases");
    let mut failures = Vec::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect = text
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("# expect: "))
            .unwrap_or_else(|| panic!("{name}: no expectation"));
        let files = [ManifestFile { path: name.clone(), text: text.clone() }];
        match desired::load("corpus", "rev", &files) {
            Ok(_) => failures.push(format!("{name}: accepted, expected `{expect}`")),
            Err(diags) => {
                let got: Vec<String> =
                    diags.0.iter().map(|d| format!("{}:{}: {}", d.pos.line, d.pos.col, d.message)).collect();
                if got != [expect.to_string()] {
                    failures.push(format!("{name}:\n  expected {expect}\n  got      {}", got.join("\n           ")));
                }
                assert!(diags.0.iter().all(|d| d.file == name));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_of_a_revision_are_reported_in_one_run() {
    let files = [
        ManifestFile {
            path: "a.yaml".into(),
            text: "kind: Container\nmetadata: {name: a}\nspec: {image: busybox, colour: red}\n".into(),
        },
        ManifestFile {
            path: "b.toml".into(),
            text: "kind = \"Volume\"\n[metadata]\nname = \"b\"\n[spec]\nsize = 1\n".into(),
        },
    ];
    let diags = desired::load("p", "r", &files).unwrap_err();
    let got: Vec<String> = diags.0.iter().map(|d| format!("{}:{}:{}", d.file, d.pos.line, d.pos.col)).collect();
    assert_eq!(got, ["a.yaml:3:24", "b.toml:5:1"]);
    let text = diags.to_string();
    assert!(text.contains("a.yaml:3:24: unknown field `colour` in Container spec"), "{text}");
    assert!(text.contains(" 3 | spec: {image: busybox, colour: red}"), "{text}");
}
