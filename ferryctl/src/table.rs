//! Plain text tables for list commands.

/// A cell as a terminal may show it: control characters (escape sequences that would clear
/// the screen, write the clipboard or forge lines) escaped, since devices choose much of
/// what lists show.
pub fn printable(cell: &str) -> String {
    if !cell.chars().any(char::is_control) {
        return cell.to_string();
    }
    cell.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

pub fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| printable(c)).collect())
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_line_up() {
        let t = super::render(&["A", "LONGER"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    LONGER\nxyz  1\n");
    }

    #[test]
    fn control_characters_in_a_cell_are_shown_escaped() {
        let t = super::render(
            &["HOST"],
            &[vec!["evil\u{1b}]52;c;eA==\u{7}\r\nforged".into()]],
        );
        assert!(
            !t.contains('\u{1b}') && !t.contains('\u{7}') && !t.contains('\r'),
            "{t:?}"
        );
        assert!(
            t.contains("evil\\u{1b}]52;c;eA==\\u{7}\\r\\nforged"),
            "{t:?}"
        );
    }
}
