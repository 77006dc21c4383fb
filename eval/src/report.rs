//! Report writing shared by every evaluation: Markdown tables, and `report.json` + `report.md`
//! written side by side.

use std::path::Path;

use crate::error::Result;

/// A GitHub-flavoured Markdown table, built row by row.
#[derive(Debug, Clone)]
pub struct MarkdownTable {
    text: String,
}

impl MarkdownTable {
    pub fn new(headers: &[&str]) -> Self {
        let mut text = format!("| {} |\n", headers.join(" | "));
        text.push('|');
        text.push_str(&"---|".repeat(headers.len()));
        text.push('\n');
        Self { text }
    }

    pub fn row<S: AsRef<str>>(&mut self, cells: &[S]) {
        let cells: Vec<&str> = cells.iter().map(AsRef::as_ref).collect();
        self.text.push_str(&format!("| {} |\n", cells.join(" | ")));
    }

    pub fn render(&self) -> String {
        self.text.clone()
    }
}

/// Writes `report` as `dir/report.json` and `markdown` as `dir/report.md`.
pub fn write_report(dir: &Path, report: &impl serde::Serialize, markdown: &str) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| simforge_data::DataError::io(dir, e))?;
    simforge_data::fsutil::write_json(&dir.join("report.json"), report)?;
    simforge_data::fsutil::write_text(&dir.join("report.md"), markdown)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_render_as_markdown() {
        let mut t = MarkdownTable::new(&["a", "b"]);
        t.row(&["1", "x"]);
        t.row(&[String::from("2"), String::from("y")]);
        assert_eq!(t.render(), "| a | b |\n|---|---|\n| 1 | x |\n| 2 | y |\n");
    }
}
