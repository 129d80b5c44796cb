//! The program's output: relayed line by line to the workload's standard error (so the
//! host sees it as the instance's diagnostics), the last lines kept for failure messages,
//! and each line offered to an `output:` readiness pattern.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use workload::record::PREFIX;

/// Lines kept for failure messages.
const KEPT: usize = 5;
/// The longest line kept or relayed whole; longer ones are cut.
const LONGEST: usize = 4096;

/// The last lines of the program's output, from both streams.
#[derive(Clone, Default)]
pub struct Tail(Arc<Mutex<VecDeque<String>>>);

impl Tail {
    fn push(&self, line: String) {
        if let Ok(mut lines) = self.0.lock() {
            if lines.len() == KEPT {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }

    /// The lines kept, joined with ` | `; `(none)` when it wrote nothing.
    pub fn summary(&self) -> String {
        let lines = self.0.lock().map(|l| l.clone()).unwrap_or_default();
        if lines.is_empty() {
            return "(none)".to_owned();
        }
        lines
            .iter()
            .map(|l| l.chars().take(200).collect::<String>())
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

/// Relays `stream` on a thread of its own; a line matching `pattern` is sent on `matched`.
pub fn relay<R: Read + Send + 'static>(
    stream: R,
    tail: Tail,
    pattern: Option<(regex::Regex, Sender<()>)>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader
                .by_ref()
                .take(LONGEST as u64)
                .read_until(b'\n', &mut raw)
            {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let text = String::from_utf8_lossy(&raw);
            let line = text.trim_end_matches(['\n', '\r']);
            if let Some((re, matched)) = &pattern {
                if re.is_match(line) {
                    let _ = matched.send(());
                }
            }
            // The program's lines must never pass for the workload's records.
            let shown = line.replace(PREFIX.trim_end(), "@vcbench~");
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{shown}");
            drop(err);
            tail.push(shown);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_finds_the_pattern() {
        let tail = Tail::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let text: String = (0..8).map(|i| format!("line {i}\n")).collect();
        let input =
            format!("{text}@vcbench {{\"record\":\"result\"}}\nServing HTTP on port 8000\n");
        let re = regex::Regex::new("Serving HTTP").unwrap();
        relay(
            std::io::Cursor::new(input.into_bytes()),
            tail.clone(),
            Some((re, tx)),
        )
        .join()
        .unwrap();
        assert!(rx.try_recv().is_ok());
        let summary = tail.summary();
        assert!(summary.ends_with("Serving HTTP on port 8000"), "{summary}");
        assert!(!summary.contains("line 2"), "{summary}");
        assert!(!summary.contains(PREFIX), "{summary}");
    }
}
