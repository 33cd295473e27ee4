//! Plain-text tables for `--output table`: a header row and data rows, every column as wide as
//! its widest cell (counted in characters), two spaces between columns, the last column not
//! padded (no trailing spaces). Cells are single lines: a newline or tab in a cell is shown
//! escaped so that a message body cannot break the layout.

use std::fmt::Write as _;

/// A table being built.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column titles.
    pub(crate) fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row (missing cells are empty, extra ones dropped).
    pub(crate) fn row(&mut self, cells: Vec<String>) {
        let mut cells: Vec<String> = cells.into_iter().map(|c| one_line(&c)).collect();
        cells.resize(self.header.len(), String::new());
        self.rows.push(cells);
    }

    /// The rendered table, one `\n`-terminated line per row.
    pub(crate) fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for r in &self.rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let mut line = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            line.clear();
            for (c, w) in r.iter().zip(&widths) {
                let _ = write!(line, "{c:<w$}  ");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// Key-value lines (`key: value`) with the keys aligned, for one object.
pub(crate) fn fields(pairs: &[(&str, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    let mut out = String::new();
    for (k, v) in pairs {
        let key = format!("{k}:");
        let _ = writeln!(out, "{key:<w$} {}", one_line(v));
    }
    out
}

/// A cell's text on one line.
pub(crate) fn one_line(s: &str) -> String {
    if s.contains(['\n', '\r', '\t']) {
        s.replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t")
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell_without_trailing_spaces() {
        let mut t = Table::new(&["TOPIC", "TYPE", "QUEUES"]);
        t.row(vec!["orders-eu".into(), "fifo".into(), "8".into()]);
        t.row(vec!["x".into(), "transaction".into(), "1024".into()]);
        assert_eq!(
            t.render(),
            "TOPIC      TYPE         QUEUES\n\
             orders-eu  fifo         8\n\
             x          transaction  1024\n"
        );
    }

    #[test]
    fn cells_stay_on_one_line() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["two\nlines".into()]);
        assert_eq!(t.render(), "A           B\ntwo\\nlines\n");
        assert_eq!(
            fields(&[("id", "1".into()), ("body", "a\tb".into())]),
            "id:   1\nbody: a\\tb\n"
        );
    }
}
