//! A table for any output format: a caption, column names, which columns hold numbers
//! (right-aligned) and which hold verdicts (coloured in HTML), and rows of text.

/// A table, for any output format.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// What it shows, in a few words.
    pub caption: String,
    /// Column names.
    pub header: Vec<String>,
    /// Which columns hold numbers (right-aligned).
    pub numeric: Vec<bool>,
    /// Which columns hold verdicts (`isolated: ...`, `n/a ...`), coloured by their first
    /// word in HTML.
    pub verdicts: Vec<bool>,
    /// The rows, as text.
    pub rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with no verdict columns.
    pub fn new(
        caption: String,
        header: Vec<String>,
        numeric: Vec<bool>,
        rows: Vec<Vec<String>>,
    ) -> Table {
        Table {
            caption,
            verdicts: vec![false; header.len()],
            header,
            numeric,
            rows,
        }
    }
}
