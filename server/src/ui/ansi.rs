//! ANSI colours in hook output, as HTML: SGR bold and the 16 foreground and background
//! colours become `<span class="…">`; every other escape sequence is dropped; text is escaped.
//! `assets/ui.js` does the same for live output (keep the two in step).

/// The classes a run of text carries.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct Style {
    bold: bool,
    fg: Option<u8>,
    bg: Option<u8>,
}

impl Style {
    fn apply(&mut self, params: &str) {
        let codes: Vec<u16> = if params.is_empty() {
            vec![0]
        } else {
            params.split(';').map(|p| p.parse().unwrap_or(0)).collect()
        };
        for c in codes {
            match c {
                0 => *self = Style::default(),
                1 => self.bold = true,
                22 => self.bold = false,
                30..=37 => self.fg = Some((c - 30) as u8),
                90..=97 => self.fg = Some((c - 90 + 8) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((c - 40) as u8),
                100..=107 => self.bg = Some((c - 100 + 8) as u8),
                49 => self.bg = None,
                _ => {}
            }
        }
    }

    fn classes(&self) -> String {
        let mut out = Vec::new();
        if self.bold {
            out.push("b".to_string());
        }
        if let Some(f) = self.fg {
            out.push(format!("f{f}"));
        }
        if let Some(b) = self.bg {
            out.push(format!("g{b}"));
        }
        out.join(" ")
    }
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        '"' => out.push_str("&quot;"),
        '\'' => out.push_str("&#39;"),
        c => out.push(c),
    }
}

/// `text` (hook output with ANSI escapes) as HTML for a `<pre>`.
pub fn to_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + text.len() / 8);
    let mut style = Style::default();
    let mut open = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            if c == '\r' && chars.peek() == Some(&'\n') {
                continue;
            }
            escape_into(&mut out, c);
            continue;
        }
        if chars.peek() != Some(&'[') {
            // A two-character escape (ESC c, ESC =, …): drop both.
            chars.next();
            continue;
        }
        chars.next();
        let mut params = String::new();
        let mut end = None;
        for d in chars.by_ref() {
            if ('@'..='~').contains(&d) {
                end = Some(d);
                break;
            }
            params.push(d);
        }
        if end != Some('m') {
            continue;
        }
        let before = style;
        style.apply(&params);
        if style != before {
            if open {
                out.push_str("</span>");
                open = false;
            }
            let classes = style.classes();
            if !classes.is_empty() {
                out.push_str(&format!("<span class=\"{classes}\">"));
                open = true;
            }
        }
    }
    if open {
        out.push_str("</span>");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn colours_become_spans_and_text_is_escaped() {
        assert_eq!(
            to_html("\u{1b}[1;31merror\u{1b}[0m: <b> & \"x\"\n"),
            "<span class=\"b f1\">error</span>: &lt;b&gt; &amp; &quot;x&quot;\n"
        );
        assert_eq!(
            to_html("\u{1b}[92mok\u{1b}[39m done"),
            "<span class=\"f10\">ok</span> done"
        );
    }

    #[test]
    fn other_escapes_are_dropped_and_unclosed_styles_closed() {
        assert_eq!(to_html("a\u{1b}[2Kb\u{1b}[?25lc"), "abc");
        assert_eq!(to_html("\u{1b}[33mwarn"), "<span class=\"f3\">warn</span>");
        assert_eq!(to_html("line\r\nnext"), "line\nnext");
        assert_eq!(to_html("\u{1b}[mplain"), "plain");
    }
}
