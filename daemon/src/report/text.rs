//! Plain-text tables for a terminal or an email: columns aligned by display width, so Chinese
//! characters (two columns each) line up with digits and Latin letters (one column each).

use unicode_width::UnicodeWidthStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table: a header row and data rows, each cell a string.
#[derive(Debug, Clone)]
pub struct Table {
    pub header: Vec<String>,
    pub align: Vec<Align>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns listed as (heading, alignment).
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Table {
            header: columns.iter().map(|(h, _)| h.to_string()).collect(),
            align: columns.iter().map(|(_, a)| *a).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as lines: header, a rule, the rows. Two spaces between columns; no trailing
    /// spaces, so a test (or `diff`) compares lines exactly.
    pub fn render(&self) -> String {
        let n = self.header.len();
        let mut widths = vec![0usize; n];
        for r in std::iter::once(&self.header).chain(&self.rows) {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(c.width());
            }
        }
        let mut out = String::new();
        let line = |out: &mut String, cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate().take(n) {
                if i > 0 {
                    s.push_str("  ");
                }
                let pad = " ".repeat(widths[i] - c.width());
                match self.align[i] {
                    Align::Left => {
                        s.push_str(c);
                        s.push_str(&pad);
                    }
                    Align::Right => {
                        s.push_str(&pad);
                        s.push_str(c);
                    }
                }
            }
            out.push_str(s.trim_end());
            out.push('\n');
        };
        line(&mut out, &self.header);
        let total: usize = widths.iter().sum::<usize>() + 2 * n.saturating_sub(1);
        out.push_str(&"─".repeat(total));
        out.push('\n');
        for r in &self.rows {
            line(&mut out, r);
        }
        out
    }
}

/// A section heading and its underline, sized by display width.
pub fn heading(title: &str) -> String {
    format!("{title}\n{}\n", "=".repeat(title.width()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chinese_and_latin_cells_line_up_by_display_width() {
        // A zh-CN report can hold Latin data (a fee type as the billing system wrote it).
        let mut t = Table::new(&[("服务", Align::Left), ("满意率", Align::Right)]);
        t.row(vec!["接待服务".into(), "75.0%".into()]);
        t.row(vec!["Repairs (x)".into(), "5%".into()]);
        assert_eq!(
            t.render(),
            "服务         满意率\n\
             ───────────────────\n\
             接待服务      75.0%\n\
             Repairs (x)      5%\n"
        );
        assert_eq!(heading("满意度报告"), "满意度报告\n==========\n");
    }
}
