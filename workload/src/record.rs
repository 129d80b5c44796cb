//! The line format of workload records.
//!
//! Every record is one line: [`PREFIX`], then a JSON object tagged by `"record"`:
//!
//! ```text
//! @vcbench {"record":"started","workload":"cpu","pid":1,"pid1":true}
//! @vcbench {"record":"result","workload":"cpu","metrics":[{"name":"throughput","value":812.4,"unit":"MiB/s"}]}
//! ```
//!
//! Lines without the prefix (a console's boot messages, a shell's noise) are not records
//! and are skipped by [`parse_line`]; a line with the prefix and bad JSON is an error,
//! because the workload never writes one.

use serde::{Deserialize, Serialize};

/// What starts every record line.
pub const PREFIX: &str = "@vcbench ";

/// Errors while reading a record line.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The line has the record prefix but its JSON is not a record.
    #[error("malformed workload record {line:?}")]
    Malformed {
        /// The offending line, cut to 200 bytes.
        line: String,
        /// Why it did not parse.
        #[source]
        source: serde_json::Error,
    },
}

/// One figure a workload measured about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    /// What was measured, e.g. `throughput` or `ns_per_call`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// The unit, e.g. `MiB/s`, `ns`, `ops/s`.
    pub unit: String,
}

impl Metric {
    /// A metric from its parts.
    pub fn new(name: &str, value: f64, unit: &str) -> Self {
        Metric {
            name: name.to_owned(),
            value,
            unit: unit.to_owned(),
        }
    }
}

/// One answer of the isolation probe: what the workload saw or could do from inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The check, e.g. `hostname`, `ns_pid`, `can_mount`.
    pub name: String,
    /// What it found, as text (`yes`, `no: EPERM`, a count, a name).
    pub value: String,
}

impl Fact {
    /// A fact from its parts.
    pub fn new(name: &str, value: impl Into<String>) -> Self {
        Fact {
            name: name.to_owned(),
            value: value.into(),
        }
    }
}

/// A record the workload writes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "snake_case")]
pub enum Record {
    /// Written as the workload's very first action.
    Started {
        /// The subcommand that runs.
        workload: String,
        /// The workload's PID as it sees it.
        pid: u32,
        /// Whether it runs as PID 1 (the init of a container or VM).
        pid1: bool,
    },
    /// The workload's figures, written when its work is done.
    Result {
        /// The subcommand that ran.
        workload: String,
        /// What it measured.
        metrics: Vec<Metric>,
        /// What it observed that is not a number (the isolation probe's answers).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        facts: Vec<Fact>,
    },
    /// The workload could not do its work.
    Error {
        /// The subcommand that failed.
        workload: String,
        /// What went wrong.
        message: String,
    },
}

impl Record {
    /// The record as one line, prefix and newline included.
    pub fn to_line(&self) -> String {
        // A record holds only strings, integers and floats; serialising it cannot fail
        // except for non-finite floats, which serde_json writes as null.
        let json = serde_json::to_string(self).unwrap_or_else(|e| {
            format!(r#"{{"record":"error","workload":"?","message":"unserialisable record: {e}"}}"#)
        });
        format!("{PREFIX}{json}\n")
    }
}

/// Parses one line of output: `Ok(None)` when it is not a record.
///
/// Leading bytes before the prefix (a serial console may put a carriage return or
/// stray text first) are tolerated; trailing `\r` and `\n` are ignored.
pub fn parse_line(line: &str) -> Result<Option<Record>, Error> {
    let Some(at) = line.find(PREFIX) else {
        return Ok(None);
    };
    let json = line[at + PREFIX.len()..].trim_end_matches(['\r', '\n']);
    serde_json::from_str(json)
        .map(Some)
        .map_err(|source| Error::Malformed {
            line: line.chars().take(200).collect(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_lines() {
        let records = [
            Record::Started {
                workload: "hello".into(),
                pid: 1,
                pid1: true,
            },
            Record::Result {
                workload: "cpu".into(),
                metrics: vec![Metric::new("throughput", 812.5, "MiB/s")],
                facts: Vec::new(),
            },
            Record::Result {
                workload: "probe".into(),
                metrics: Vec::new(),
                facts: vec![Fact::new("hostname", "vcbench")],
            },
            Record::Error {
                workload: "file".into(),
                message: "no space".into(),
            },
        ];
        for record in records {
            let line = record.to_line();
            assert!(line.starts_with(PREFIX) && line.ends_with('\n'));
            assert_eq!(parse_line(&line).unwrap(), Some(record));
        }
    }

    #[test]
    fn noise_is_not_a_record() {
        assert_eq!(
            parse_line("[    0.000000] Linux version 6.1").unwrap(),
            None
        );
        assert_eq!(parse_line("").unwrap(), None);
    }

    #[test]
    fn console_junk_before_the_prefix_is_tolerated() {
        let line = format!(
            "\r{}",
            Record::Started {
                workload: "x".into(),
                pid: 7,
                pid1: false
            }
            .to_line()
        );
        assert!(matches!(
            parse_line(&line).unwrap(),
            Some(Record::Started { pid: 7, .. })
        ));
    }

    #[test]
    fn bad_json_after_the_prefix_is_an_error() {
        assert!(parse_line("@vcbench {\"record\":\"nope\"}").is_err());
        assert!(parse_line("@vcbench {").is_err());
    }
}
