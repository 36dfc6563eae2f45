//! `docs/rules.md` lists every rule id with what it checks; this test fails when the document
//! and the code disagree. After changing a rule, run `PIXLAKE_BLESS=1 cargo test --test
//! rules_doc` to rewrite the table from the code, then review the diff.

use pixlake::pix::{HardRule, SoftRule};

const BEGIN: &str = "<!-- rules:begin (generated from src/pix/rules.rs; edit the descriptions there) -->";
const END: &str = "<!-- rules:end -->";

fn table() -> String {
    let mut t = String::from("| rule id | kind | what it checks |\n|---|---|---|\n");
    for r in HardRule::ALL {
        t.push_str(&format!("| `{}` | hard | {} |\n", r.id(), r.description()));
    }
    for r in SoftRule::ALL {
        t.push_str(&format!("| `{}` | soft | {} |\n", r.id(), r.description()));
    }
    t
}

#[test]
fn docs_rules_md_matches_the_code() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/rules.md");
    let doc = std::fs::read_to_string(path).expect("docs/rules.md exists");
    let (before, rest) = doc.split_once(BEGIN).expect("docs/rules.md has the begin marker");
    let (current, after) = rest.split_once(END).expect("docs/rules.md has the end marker");
    let expected = format!("\n{}", table());
    if current != expected {
        if std::env::var_os("PIXLAKE_BLESS").is_some() {
            std::fs::write(path, format!("{before}{BEGIN}{expected}{END}{after}")).unwrap();
            return;
        }
        // Name the rows that differ, then show the whole expected table.
        let have: Vec<&str> = current.lines().collect();
        let missing: Vec<&str> = expected.lines().filter(|l| !have.contains(l)).collect();
        panic!(
            "docs/rules.md disagrees with src/pix/rules.rs.\nRows missing or different in the document:\n{}\n\nRun PIXLAKE_BLESS=1 cargo test --test rules_doc to regenerate it.",
            missing.join("\n")
        );
    }
    // Every id in the document's table is a real rule (no stale rows).
    for line in current.lines().filter(|l| l.starts_with("| `")) {
        let id = line.split('`').nth(1).unwrap();
        assert!(HardRule::from_id(id).is_some() || SoftRule::from_id(id).is_some(), "stale row {id}");
    }
}
