//! Render vcbench results as Markdown, self-contained HTML with charts, and SVG/PNG charts.
//!
//! The renderers are pure functions from a results document to bytes; this crate knows
//! nothing of how the numbers were taken.

pub mod charts;
pub mod compare;
pub mod csv;
pub mod derived;
pub mod document;
pub mod family;
pub mod figure_text;
pub mod fleet;
pub mod html;
pub mod markdown;
pub mod matrix;
pub mod notes;
pub mod phases;
pub mod primer;
pub mod sections;
pub mod table;

pub use document::{Error, Results};

use std::path::{Path, PathBuf};

/// Writes every chart the document has data for as `DIR/<name>.svg` and `DIR/<name>.png`,
/// and returns the files written.
pub fn write_charts(doc: &Results, dir: &Path) -> Result<Vec<PathBuf>, ChartError> {
    std::fs::create_dir_all(dir).map_err(|source| ChartError::Io {
        path: dir.to_owned(),
        source,
    })?;
    let mut written = Vec::new();
    for chart in charts::Chart::ALL {
        let draw = |source| ChartError::Draw {
            chart: chart.name(),
            source,
        };
        if let Some(svg) = charts::svg(chart, doc).map_err(draw)? {
            let path = dir.join(format!("{}.svg", chart.name()));
            std::fs::write(&path, svg).map_err(|source| ChartError::Io {
                path: path.clone(),
                source,
            })?;
            written.push(path);
            let png = dir.join(format!("{}.png", chart.name()));
            if charts::png(chart, doc, &png).map_err(draw)? {
                written.push(png);
            }
        }
    }
    Ok(written)
}

/// Why charts could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// A file could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A chart could not be drawn.
    #[error("cannot draw the {chart} chart")]
    Draw {
        /// Its name.
        chart: &'static str,
        /// Why.
        #[source]
        source: charts::DrawError,
    },
}
