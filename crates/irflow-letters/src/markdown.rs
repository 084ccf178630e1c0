//! The small Markdown subset letters are written in, rendered two ways: plain text
//! (SMS, plain email, `Accept: text/plain`) and an HTML fragment.
//!
//! Blocks: `#`, `##`, `###` headings; paragraphs (lines joined; a line ending in two
//! spaces or a backslash breaks the line); `- ` or `* ` bullet lists and `1. `
//! numbered lists (an item goes on over the following lines until a blank line);
//! `> ` callouts (for what matters most, e.g. when to go to the emergency
//! department); `---` a rule. Inline: `**strong**`, `*emphasis*`,
//! `[text](https://...)` links (http, https, mailto and tel only), bare http(s) URLs,
//! and `\` escapes for `\ * [ ] # > - +`. Raw HTML is never passed through: every
//! character of text is escaped in the HTML output.

use std::fmt::Write as _;

/// A rendered document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rendered {
    /// The first level-1 heading, as plain text (the letter's subject).
    pub subject: Option<String>,
    /// Plain text.
    pub text: String,
    /// An HTML fragment.
    pub html: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Heading(u8, String),
    Paragraph(Vec<String>),
    List { ordered: bool, items: Vec<String> },
    Callout(Vec<Block>),
    Rule,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Inline {
    Text(String),
    Strong(Vec<Inline>),
    Emphasis(Vec<Inline>),
    Link { text: Vec<Inline>, url: String },
    Break,
}

fn heading(line: &str) -> Option<(u8, &str)> {
    let hashes = line.bytes().take_while(|b| *b == b'#').count();
    if !(1..=3).contains(&hashes) {
        return None;
    }
    let rest = &line[hashes..];
    rest.strip_prefix(' ')
        .map(|t| (u8::try_from(hashes).unwrap_or(3), t.trim()))
}

fn bullet(line: &str) -> Option<&str> {
    line.strip_prefix("- ").or_else(|| line.strip_prefix("* "))
}

fn numbered(line: &str) -> Option<&str> {
    let digits = line.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 3 {
        return None;
    }
    line[digits..].strip_prefix(". ")
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    t.len() >= 3 && t.bytes().all(|b| b == b'-')
}

fn callout(line: &str) -> Option<&str> {
    line.strip_prefix("> ")
        .or_else(|| (line == ">").then_some(""))
}

fn starts_block(line: &str) -> bool {
    heading(line).is_some()
        || bullet(line).is_some()
        || numbered(line).is_some()
        || is_rule(line)
        || callout(line).is_some()
}

fn parse_blocks(lines: &[&str]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_end_matches(['\r']);
        let trimmed = line.trim_start();
        if trimmed.trim().is_empty() {
            i += 1;
            continue;
        }
        if let Some((level, text)) = heading(trimmed) {
            blocks.push(Block::Heading(level, text.to_owned()));
            i += 1;
        } else if is_rule(trimmed) {
            blocks.push(Block::Rule);
            i += 1;
        } else if callout(trimmed).is_some() {
            let mut inner = Vec::new();
            while i < lines.len() {
                match callout(lines[i].trim_start()) {
                    Some(rest) => inner.push(rest),
                    None => break,
                }
                i += 1;
            }
            blocks.push(Block::Callout(parse_blocks(&inner)));
        } else if bullet(trimmed).is_some() || numbered(trimmed).is_some() {
            let ordered = bullet(trimmed).is_none();
            let mut items: Vec<String> = Vec::new();
            while i < lines.len() {
                let l = lines[i].trim_end_matches(['\r']);
                let t = l.trim_start();
                if t.trim().is_empty() {
                    break;
                }
                let marker = if ordered { numbered(t) } else { bullet(t) };
                if let Some(rest) = marker {
                    items.push(rest.to_owned());
                } else if starts_block(t) {
                    break;
                } else if let Some(last) = items.last_mut() {
                    join_line(last, l);
                }
                i += 1;
            }
            blocks.push(Block::List { ordered, items });
        } else {
            let mut para = Vec::new();
            while i < lines.len() {
                let l = lines[i].trim_end_matches(['\r']);
                let t = l.trim_start();
                if t.trim().is_empty() || (!para.is_empty() && starts_block(t)) {
                    break;
                }
                para.push(t.to_owned());
                i += 1;
            }
            blocks.push(Block::Paragraph(para));
        }
    }
    blocks
}

/// Whether a line ends with a hard break (two spaces, or an unescaped backslash).
fn hard_break(line: &str) -> Option<&str> {
    if line.ends_with("  ") {
        return Some(line.trim_end());
    }
    let trailing = line.bytes().rev().take_while(|b| *b == b'\\').count();
    (trailing % 2 == 1).then(|| &line[..line.len() - 1])
}

/// Appends a continuation line to a list item (a hard break is kept as `\n`).
fn join_line(item: &mut String, line: &str) {
    let t = line.trim_start();
    item.push(' ');
    item.push_str(t);
}

/// Joins paragraph lines into one inline source, with `\n` for hard breaks.
fn paragraph_source(lines: &[String]) -> String {
    let mut out = String::new();
    for (k, line) in lines.iter().enumerate() {
        let last = k + 1 == lines.len();
        match hard_break(line) {
            Some(body) if !last => {
                out.push_str(body.trim_end());
                out.push('\n');
            }
            _ => {
                out.push_str(line.trim_end());
                if !last {
                    out.push(' ');
                }
            }
        }
    }
    out
}

const ESCAPABLE: &[char] = &[
    '\\', '*', '[', ']', '#', '>', '-', '+', '.', '(', ')', '_', '`',
];

fn find_closing(chars: &[char], from: usize, marker: &[char]) -> Option<usize> {
    let mut i = from;
    while i + marker.len() <= chars.len() {
        if chars[i] == '\\' {
            i += 2;
            continue;
        }
        if chars[i..i + marker.len()] == *marker {
            // A single `*` must not be half of a `**`.
            if marker.len() == 1 && chars.get(i + 1) == Some(&'*') {
                i += 2;
                continue;
            }
            return Some(i);
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&next) = chars.peek()
            && ESCAPABLE.contains(&next)
        {
            out.push(next);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

fn allowed_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    ["https://", "http://", "mailto:", "tel:"]
        .iter()
        .any(|p| lower.starts_with(p))
        && !url
            .chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '<' || c == '>')
}

fn parse_inline(src: &str) -> Vec<Inline> {
    let chars: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let mut text = String::new();
    let flush = |text: &mut String, out: &mut Vec<Inline>| {
        if !text.is_empty() {
            out.push(Inline::Text(std::mem::take(text)));
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            match chars.get(i + 1) {
                Some(n) if ESCAPABLE.contains(n) => {
                    text.push(*n);
                    i += 2;
                }
                _ => {
                    text.push('\\');
                    i += 1;
                }
            }
            continue;
        }
        if c == '\n' {
            flush(&mut text, &mut out);
            out.push(Inline::Break);
            i += 1;
            continue;
        }
        if c == '*' && chars.get(i + 1) == Some(&'*') {
            if let Some(end) = find_closing(&chars, i + 2, &['*', '*']) {
                flush(&mut text, &mut out);
                let inner: String = chars[i + 2..end].iter().collect();
                out.push(Inline::Strong(parse_inline(&inner)));
                i = end + 2;
                continue;
            }
        } else if c == '*'
            && let Some(end) = find_closing(&chars, i + 1, &['*'])
            && end > i + 1
        {
            flush(&mut text, &mut out);
            let inner: String = chars[i + 1..end].iter().collect();
            out.push(Inline::Emphasis(parse_inline(&inner)));
            i = end + 1;
            continue;
        }
        if c == '['
            && let Some(close) = find_closing(&chars, i + 1, &[']'])
            && chars.get(close + 1) == Some(&'(')
            && let Some(end) = find_closing(&chars, close + 2, &[')'])
        {
            let label: String = chars[i + 1..close].iter().collect();
            let url = unescape(&chars[close + 2..end].iter().collect::<String>());
            if allowed_url(&url) {
                flush(&mut text, &mut out);
                out.push(Inline::Link {
                    text: parse_inline(&label),
                    url,
                });
                i = end + 1;
                continue;
            }
        }
        let at_word_start = i == 0 || chars[i - 1].is_whitespace() || chars[i - 1] == '(';
        if at_word_start && (c == 'h' || c == 'H') {
            let rest: String = chars[i..].iter().take(8).collect();
            let lower = rest.to_ascii_lowercase();
            if lower.starts_with("https://") || lower.starts_with("http://") {
                let mut end = i;
                while end < chars.len() && !chars[end].is_whitespace() {
                    end += 1;
                }
                while end > i && matches!(chars[end - 1], '.' | ',' | ';' | ':' | '!' | '?' | ')') {
                    end -= 1;
                }
                let url = unescape(&chars[i..end].iter().collect::<String>());
                if allowed_url(&url) {
                    flush(&mut text, &mut out);
                    out.push(Inline::Link {
                        text: vec![Inline::Text(url.clone())],
                        url,
                    });
                    i = end;
                    continue;
                }
            }
        }
        text.push(c);
        i += 1;
    }
    flush(&mut text, &mut out);
    out
}

fn inline_text(nodes: &[Inline], out: &mut String) {
    for n in nodes {
        match n {
            Inline::Text(t) => out.push_str(t),
            Inline::Strong(inner) | Inline::Emphasis(inner) => inline_text(inner, out),
            Inline::Link { text, url } => {
                let mut label = String::new();
                inline_text(text, &mut label);
                let bare = url
                    .strip_prefix("mailto:")
                    .or_else(|| url.strip_prefix("tel:"))
                    .unwrap_or(url);
                if label == *url || label == bare {
                    out.push_str(&label);
                } else {
                    let _ = write!(out, "{label} ({bare})");
                }
            }
            Inline::Break => out.push('\n'),
        }
    }
}

/// Escapes text for HTML (element content and quoted attribute values).
pub(crate) fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn inline_html(nodes: &[Inline], out: &mut String) {
    for n in nodes {
        match n {
            Inline::Text(t) => out.push_str(&escape_html(t)),
            Inline::Strong(inner) => {
                out.push_str("<strong>");
                inline_html(inner, out);
                out.push_str("</strong>");
            }
            Inline::Emphasis(inner) => {
                out.push_str("<em>");
                inline_html(inner, out);
                out.push_str("</em>");
            }
            Inline::Link { text, url } => {
                let _ = write!(out, "<a href=\"{}\">", escape_html(url));
                inline_html(text, out);
                out.push_str("</a>");
            }
            Inline::Break => out.push_str("<br>\n"),
        }
    }
}

fn blocks_text(blocks: &[Block], out: &mut String) {
    for b in blocks {
        match b {
            Block::Heading(_, t) => {
                inline_text(&parse_inline(t), out);
                out.push_str("\n\n");
            }
            Block::Paragraph(lines) => {
                inline_text(&parse_inline(&paragraph_source(lines)), out);
                out.push_str("\n\n");
            }
            Block::List { ordered, items } => {
                for (k, item) in items.iter().enumerate() {
                    if *ordered {
                        let _ = write!(out, "{}. ", k + 1);
                    } else {
                        out.push_str("- ");
                    }
                    inline_text(&parse_inline(item), out);
                    out.push('\n');
                }
                out.push('\n');
            }
            Block::Callout(inner) => blocks_text(inner, out),
            Block::Rule => {}
        }
    }
}

fn blocks_html(blocks: &[Block], out: &mut String) {
    for b in blocks {
        match b {
            Block::Heading(level, t) => {
                let _ = write!(out, "<h{level}>");
                inline_html(&parse_inline(t), out);
                let _ = writeln!(out, "</h{level}>");
            }
            Block::Paragraph(lines) => {
                out.push_str("<p>");
                inline_html(&parse_inline(&paragraph_source(lines)), out);
                out.push_str("</p>\n");
            }
            Block::List { ordered, items } => {
                let tag = if *ordered { "ol" } else { "ul" };
                let _ = writeln!(out, "<{tag}>");
                for item in items {
                    out.push_str("<li>");
                    inline_html(&parse_inline(item), out);
                    out.push_str("</li>\n");
                }
                let _ = writeln!(out, "</{tag}>");
            }
            Block::Callout(inner) => {
                out.push_str("<div class=\"callout\">\n");
                blocks_html(inner, out);
                out.push_str("</div>\n");
            }
            Block::Rule => out.push_str("<hr>\n"),
        }
    }
}

fn first_subject(blocks: &[Block]) -> Option<String> {
    blocks.iter().find_map(|b| match b {
        Block::Heading(1, t) => {
            let mut s = String::new();
            inline_text(&parse_inline(t), &mut s);
            Some(s)
        }
        _ => None,
    })
}

/// Renders Markdown to plain text and an HTML fragment.
pub(crate) fn render(source: &str) -> Rendered {
    let lines: Vec<&str> = source.lines().collect();
    let blocks = parse_blocks(&lines);
    let mut text = String::new();
    blocks_text(&blocks, &mut text);
    let mut html = String::new();
    blocks_html(&blocks, &mut html);
    let text = text.trim_end().to_owned() + "\n";
    Rendered {
        subject: first_subject(&blocks),
        text,
        html,
    }
}

/// Escapes a value inserted into a template so that it reads as text, never as
/// Markdown: `\ * [ ]` anywhere, a leading `# > - +`, and the dot of a leading
/// number (`2.` would start a list). Line breaks become spaces.
pub(crate) fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let leading_digits = value.bytes().take_while(u8::is_ascii_digit).count();
    for (k, c) in value.chars().enumerate() {
        match c {
            '\r' | '\n' => out.push(' '),
            '\\' | '*' | '[' | ']' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '>' | '-' | '+' if k == 0 => {
                out.push('\\');
                out.push(c);
            }
            '.' if leading_digits > 0 && k == leading_digits => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_render_to_text_and_html() {
        let r = render(
            "# Your visit\n\nHello **Ana**,\nsee you *soon*.\n\n## Bring\n\n- your scan\n- a list of\n  your medicines\n\n1. First\n2. Second\n\n> Call 911\n\n---\nLine one  \nLine two\\\nLine three\n",
        );
        assert_eq!(r.subject.as_deref(), Some("Your visit"));
        assert_eq!(
            r.text,
            "Your visit\n\nHello Ana, see you soon.\n\nBring\n\n- your scan\n- a list of your medicines\n\n1. First\n2. Second\n\nCall 911\n\nLine one\nLine two\nLine three\n"
        );
        assert!(r.html.contains("<h1>Your visit</h1>"));
        assert!(
            r.html
                .contains("<p>Hello <strong>Ana</strong>, see you <em>soon</em>.</p>")
        );
        assert!(r.html.contains("<li>a list of your medicines</li>"));
        assert!(r.html.contains("<ol>\n<li>First</li>"));
        assert!(r.html.contains("<div class=\"callout\">\n<p>Call 911</p>"));
        assert!(r.html.contains("<hr>"));
        assert!(r.html.contains("Line one<br>\nLine two<br>\nLine three"));
    }

    #[test]
    fn links_are_limited_to_safe_schemes() {
        let r = render(
            "[Open](https://x.example/a_b?c=1), https://y.example/z. [bad](javascript:alert(1))",
        );
        assert!(
            r.html
                .contains("<a href=\"https://x.example/a_b?c=1\">Open</a>")
        );
        assert!(
            r.html
                .contains("<a href=\"https://y.example/z\">https://y.example/z</a>.")
        );
        assert!(!r.html.contains("href=\"javascript"));
        assert!(
            r.text
                .starts_with("Open (https://x.example/a_b?c=1), https://y.example/z.")
        );
        let tel = render("Call [617-726-6773](tel:617-726-6773).");
        assert_eq!(tel.text, "Call 617-726-6773.\n");
    }

    #[test]
    fn html_in_text_is_escaped_and_values_cannot_inject_markdown() {
        let value = escape_value("# <b>O'Connor</b> *x* [y](https://evil.example)\nnext");
        let r = render(&format!("Dear {value}."));
        assert!(r.html.contains("&lt;b&gt;O&#39;Connor&lt;/b&gt;"));
        assert!(!r.html.contains("<em>"));
        assert!(!r.html.contains("<h1>"));
        // A URL in a value is shown as itself, never behind other words.
        assert!(!r.html.contains(">y</a>"));
        assert!(
            r.html
                .contains("<a href=\"https://evil.example\">https://evil.example</a>")
        );
        assert_eq!(
            r.text,
            "Dear # <b>O'Connor</b> *x* [y](https://evil.example) next.\n"
        );
        assert_eq!(render(&escape_value("2. item")).text, "2. item\n");
        assert_eq!(render(&escape_value("- item")).text, "- item\n");
    }
}
