//! Render vcbench results as Markdown, self-contained HTML with charts, and SVG/PNG charts.
//!
//! The renderers are pure functions from a results document to bytes; this crate knows
//! nothing of how the numbers were taken.
