//! `${VAR}` expansion over config text, and finding the line of a key path for errors.

/// A `${VAR}` that is referenced but not set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsetVar {
    /// The variable name.
    pub var: String,
    /// 1-based line of the reference.
    pub line: usize,
}

/// Replaces `${VAR}` (and `${VAR:-default}`) with values from `lookup`, line by line.
/// Comments (from a `#` at line start or after whitespace) are left alone, so a commented-out
/// reference is never an error. `$${` stays a literal `${`.
pub fn expand_env(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, UnsetVar> {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let (code, comment) = split_comment(line);
        out.push_str(&expand_line(code, i + 1, &lookup)?);
        out.push_str(comment);
    }
    Ok(out)
}

fn split_comment(line: &str) -> (&str, &str) {
    let bytes = line.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        if *b == b'#' && (i == 0 || bytes[i - 1].is_ascii_whitespace()) {
            return line.split_at(i);
        }
    }
    (line, "")
}

fn expand_line(
    line: &str,
    lineno: usize,
    lookup: &impl Fn(&str) -> Option<String>,
) -> Result<String, UnsetVar> {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('$') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let Some(end) = after.find('}') else {
            out.push_str(&rest[pos..]);
            return Ok(out);
        };
        let inner = &after[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        match lookup(name).or_else(|| default.map(str::to_string)) {
            Some(v) => out.push_str(&v),
            None => {
                return Err(UnsetVar {
                    var: name.to_string(),
                    line: lineno,
                });
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Best-effort line (1-based) of a key path such as `deployments[1].base_url` in block-style
/// YAML text. Returns `None` when the text is not laid out in the usual block style.
pub fn line_of_path(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut end = lines.len();
    let mut min_indent: Option<usize> = None;
    for segment in path.split('.') {
        let (key, index) = match segment.split_once('[') {
            Some((k, idx)) => (k, idx.trim_end_matches(']').parse::<usize>().ok()),
            None => (segment, None),
        };
        let (found, indent) = find_key(&lines, start, end, key, min_indent)?;
        start = found;
        end = block_end(&lines, found, indent);
        min_indent = Some(indent + 1);
        if let Some(idx) = index {
            let Some(item) = nth_item(&lines, found + 1, end, idx) else {
                // A flow sequence (`[a, b]`) or too few items: the key's line is the best guess.
                return Some(found + 1);
            };
            let item_indent = indent_of(lines[item]);
            start = item;
            end = block_end_item(&lines, item, item_indent);
            min_indent = Some(item_indent);
        }
    }
    Some(start + 1)
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

fn find_key(
    lines: &[&str],
    start: usize,
    end: usize,
    key: &str,
    min_indent: Option<usize>,
) -> Option<(usize, usize)> {
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        let trimmed = line.trim_start().trim_start_matches("- ");
        let indent = line.len() - trimmed.len();
        if min_indent.is_some_and(|m| indent < m) {
            continue;
        }
        if trimmed.starts_with(&format!("{key}:")) {
            return Some((i, indent));
        }
    }
    None
}

fn block_end(lines: &[&str], key_line: usize, indent: usize) -> usize {
    for (i, line) in lines.iter().enumerate().skip(key_line + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let ind = indent_of(line);
        if ind < indent || (ind == indent && !line.trim_start().starts_with("- ")) {
            return i;
        }
    }
    lines.len()
}

fn block_end_item(lines: &[&str], item_line: usize, indent: usize) -> usize {
    for (i, line) in lines.iter().enumerate().skip(item_line + 1) {
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent_of(line) <= indent {
            return i;
        }
    }
    lines.len()
}

fn nth_item(lines: &[&str], start: usize, end: usize, n: usize) -> Option<usize> {
    let mut count = 0;
    let mut item_indent: Option<usize> = None;
    for (i, line) in lines.iter().enumerate().take(end).skip(start) {
        if !line.trim_start().starts_with("- ") && line.trim() != "-" {
            continue;
        }
        let ind = indent_of(line);
        if item_indent.is_some_and(|x| x != ind) {
            continue;
        }
        item_indent = Some(ind);
        if count == n {
            return Some(i);
        }
        count += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "A" => Some("alpha".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_defaults_escapes_and_skips_comments() {
        let t = "x: ${A}\ny: ${B:-dflt}\nz: $${A}\n# ${UNSET} in a comment\nw: v # ${UNSET}\n";
        assert_eq!(
            expand_env(t, env).unwrap(),
            "x: alpha\ny: dflt\nz: ${A}\n# ${UNSET} in a comment\nw: v # ${UNSET}\n"
        );
    }

    #[test]
    fn unset_names_var_and_line() {
        let e = expand_env("a: 1\nb: ${NOPE}\n", env).unwrap_err();
        assert_eq!(
            e,
            UnsetVar {
                var: "NOPE".into(),
                line: 2
            }
        );
    }

    #[test]
    fn finds_lines_of_paths() {
        let t = "server:\n  listen: x\ndeployments:\n  - name: a\n    base_url: u\n  - name: b\n    base_url: v\nmodels:\n  - name: m\n    deployments: [a]\n";
        assert_eq!(line_of_path(t, "server.listen"), Some(2));
        assert_eq!(line_of_path(t, "deployments[1].base_url"), Some(7));
        assert_eq!(line_of_path(t, "deployments[0].name"), Some(4));
        assert_eq!(line_of_path(t, "models[0].name"), Some(9));
        assert_eq!(line_of_path(t, "models[0].deployments[0]"), Some(10));
    }
}
