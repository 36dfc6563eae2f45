//! `PIXLAKE__SECTION__KEY=value` overrides, applied to the parsed YAML tree before it is typed.
//!
//! Path segments are lowercased; a numeric segment indexes a list (`PIXLAKE__PIPELINES__0__TOPIC`).
//! A value replacing a string stays a string; otherwise it is read as a JSON scalar when it is
//! one (`2048`, `true`) and as a string when not, so types are checked by the same serde pass
//! that checks the file.

use serde_json::Value;

/// The variable prefix.
pub const PREFIX: &str = "PIXLAKE__";

/// Applies every `PIXLAKE__…` pair to `tree`; returns the problems (bad paths).
pub fn apply_overrides(tree: &mut Value, env: impl IntoIterator<Item = (String, String)>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut vars: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with(PREFIX)).collect();
    vars.sort();
    for (name, value) in vars {
        let path: Vec<String> = name[PREFIX.len()..].split("__").map(str::to_ascii_lowercase).collect();
        if path.iter().any(String::is_empty) {
            problems.push(format!("{name}: empty path segment; write PIXLAKE__SECTION__KEY"));
            continue;
        }
        if let Err(why) = set(tree, &path, value) {
            problems.push(format!("{name}: {why}"));
        }
    }
    problems
}

fn set(node: &mut Value, path: &[String], value: String) -> Result<(), String> {
    let Some((head, rest)) = path.split_first() else {
        *node = match node {
            Value::String(_) => Value::String(value),
            _ => scalar(value),
        };
        return Ok(());
    };
    if node.is_null() {
        *node = Value::Object(Default::default());
    }
    match node {
        Value::Object(map) => set(map.entry(head.clone()).or_insert(Value::Null), rest, value),
        Value::Array(items) => {
            let i: usize = head.parse().map_err(|_| format!("`{head}` indexes a list: use a number"))?;
            let len = items.len();
            let item = items.get_mut(i).ok_or_else(|| format!("index {i} is past the end of a list of {len}"))?;
            set(item, rest, value)
        }
        _ => Err(format!("`{head}` is below a value that is not a section")),
    }
}

fn scalar(value: String) -> Value {
    match serde_json::from_str::<Value>(&value) {
        Ok(v @ (Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(value),
    }
}
