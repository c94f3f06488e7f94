//! Just enough of Rust's syntax for the tidy checks: code without comments and literals,
//! the paths it names (`use` trees whole), and where each function starts and ends.

/// `text` with comments removed and the contents of string and character literals blanked
/// (line breaks kept, so that line numbers stay), so that neither a `//` nor a `{` inside
/// a literal is read as code.
pub fn code(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |out: &mut String, s: &[u8]| {
        out.extend(s.iter().map(|&c| if c == b'\n' { '\n' } else { ' ' }));
    };
    while i < b.len() {
        let rest = &b[i..];
        if rest.starts_with(b"//") {
            let end = rest.iter().position(|&c| c == b'\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(rest.len(), |e| e + 4);
            blank(&mut out, &rest[..end]);
            i += end;
        } else if let Some(len) = raw_string(rest).filter(|_| !prev_is_ident(b, i)) {
            out.push('"');
            blank(&mut out, &rest[1..len - 1]);
            out.push('"');
            i += len;
        } else if rest[0] == b'"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != b'"' {
                j += if rest[j] == b'\\' { 2 } else { 1 };
            }
            let len = (j + 1).min(rest.len());
            out.push('"');
            blank(&mut out, &rest[1..len.saturating_sub(1).max(1)]);
            out.push('"');
            i += len;
        } else if rest[0] == b'\''
            && let Some(len) = char_literal(rest)
        {
            out.push_str("' '");
            i += len;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn prev_is_ident(b: &[u8], i: usize) -> bool {
    i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')
}

/// The length of a raw string (`r"..."`, `r#"..."#`, also `br`) at the start of `s`.
fn raw_string(s: &[u8]) -> Option<usize> {
    let start = if s.starts_with(b"br") {
        2
    } else if s.starts_with(b"r") {
        1
    } else {
        return None;
    };
    let hashes = s[start..].iter().take_while(|&&c| c == b'#').count();
    if s.get(start + hashes) != Some(&b'"') {
        return None;
    }
    let close: Vec<u8> = std::iter::once(b'"')
        .chain(std::iter::repeat_n(b'#', hashes))
        .collect();
    let body = start + hashes + 1;
    let end = s[body..].windows(close.len()).position(|w| w == close)?;
    Some(body + end + close.len())
}

/// The length of a character literal at the start of `s` (`'{'`, `'\n'`, `'\''`); `None`
/// for a lifetime (`'a`).
fn char_literal(s: &[u8]) -> Option<usize> {
    if s.get(1) == Some(&b'\\') {
        let end = s[2..].iter().position(|&c| c == b'\'')?;
        return Some(end + 3);
    }
    let c = std::str::from_utf8(&s[1..s.len().min(5)])
        .ok()
        .or_else(|| {
            (1..4)
                .rev()
                .find_map(|n| std::str::from_utf8(&s[1..s.len().min(1 + n)]).ok())
        })?;
    let ch = c.chars().next()?;
    let len = 1 + ch.len_utf8();
    (s.get(len) == Some(&b'\'')).then_some(len + 1)
}

/// Every path of two segments or more in `code` (comments and literals already gone), as
/// segments: each `use` tree expanded (`use a::{b, c::{d}}` gives `a::b`, `a::c::d`), and
/// every other `x::y` in the code.
pub fn paths(code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut rest = code;
    let mut plain = String::new();
    while let Some(at) = find_word(rest, "use") {
        plain.push_str(&rest[..at]);
        let tail = &rest[at + 3..];
        let end = tail.find(';').unwrap_or(tail.len());
        // A re-export (`pub use`) is the module's face, not what it uses.
        let before = rest[..at].trim_end();
        if !(before.ends_with("pub") || before.ends_with(')') && before.contains("pub(")) {
            expand(&tail[..end], &[], &mut found);
        }
        rest = &tail[end..];
    }
    plain.push_str(rest);
    let chars: Vec<char> = plain.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let ident = |c: char| c.is_alphanumeric() || c == '_';
        if ident(chars[i]) && (i == 0 || !(ident(chars[i - 1]) || chars[i - 1] == ':')) {
            let mut segments = Vec::new();
            let mut j = i;
            loop {
                let start = j;
                while j < chars.len() && ident(chars[j]) {
                    j += 1;
                }
                segments.push(chars[start..j].iter().collect::<String>());
                if chars.get(j) == Some(&':')
                    && chars.get(j + 1) == Some(&':')
                    && chars.get(j + 2).is_some_and(|&c| ident(c))
                {
                    j += 2;
                } else {
                    break;
                }
            }
            if segments.len() > 1 {
                found.push(segments);
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    found
}

/// The position of `word` in `text` as a whole word.
fn find_word(text: &str, word: &str) -> Option<usize> {
    let ident = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut from = 0;
    while let Some(at) = text[from..].find(word) {
        let at = from + at;
        if !ident(text[..at].chars().last()) && !ident(text[at + word.len()..].chars().next()) {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Expands one `use` tree below `prefix`.
fn expand(tree: &str, prefix: &[String], out: &mut Vec<Vec<String>>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: Vec<String> = split_path(&tree[..open]);
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let base: Vec<String> = prefix.iter().cloned().chain(head).collect();
        let mut depth = 0;
        let mut start = 0;
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    expand(&inner[start..i], &base, out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        expand(&inner[start..], &base, out);
        return;
    }
    let tree = tree.split(" as ").next().unwrap_or("");
    let mut path: Vec<String> = prefix.to_vec();
    path.extend(
        split_path(tree)
            .into_iter()
            .filter(|s| s != "self" || prefix.is_empty()),
    );
    if !path.is_empty() && !tree.is_empty() {
        out.push(path);
    }
}

fn split_path(text: &str) -> Vec<String> {
    text.split("::")
        .map(|s| s.trim().trim_start_matches("pub ").to_string())
        .filter(|s| !s.is_empty() && s != "*")
        .collect()
}

/// Each function in `code`: its name, first line (1-based) and length in lines, from its
/// `fn` line to its closing brace.
pub fn functions(code: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = code.lines().collect();
    let mut found = Vec::new();
    for (n, line) in lines.iter().enumerate() {
        let Some(at) = find_word(line, "fn") else {
            continue;
        };
        let before = line[..at].trim();
        let qualifiers = before.split_whitespace().all(|w| {
            matches!(
                w,
                "pub" | "async" | "const" | "unsafe" | "extern" | "default"
            ) || w.starts_with("pub(")
        });
        if !qualifiers {
            continue;
        }
        let name: String = line[at + 2..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // The body: from the first `{` after the signature (a `;` first: no body).
        let mut depth = 0usize;
        let mut opened = false;
        'lines: for (m, text) in lines.iter().enumerate().skip(n) {
            let text = if m == n { &text[at..] } else { text };
            for c in text.chars() {
                match c {
                    ';' if !opened => break 'lines,
                    '{' => {
                        depth += 1;
                        opened = true;
                    }
                    '}' => {
                        depth -= 1;
                        if opened && depth == 0 {
                            found.push((name.clone(), n + 1, m - n + 1));
                            break 'lines;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    found
}

/// The line where an inline `#[cfg(test)] mod tests {` starts (1-based), if the file has one.
pub fn inline_tests(code: &str) -> Option<usize> {
    let lines: Vec<&str> = code.lines().collect();
    (0..lines.len().saturating_sub(1)).find_map(|i| {
        (lines[i].trim() == "#[cfg(test)]" && lines[i + 1].trim() == "mod tests {").then_some(i + 1)
    })
}
