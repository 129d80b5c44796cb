//! Memory of host processes, read from `/proc/<pid>/smaps_rollup`.
//!
//! RSS counts every resident page a process maps; PSS divides shared pages among their
//! sharers; USS (private clean + private dirty) is what the process alone holds and what
//! would be freed if it exited. The three together tell an instance's own cost apart from
//! pages it shares with others (the C library, the workload binary's page cache).

pub use reports::document::Memory;

/// Reads a live process's memory; `None` if it has gone or cannot be read.
pub fn memory_of_pid(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    parse_smaps_rollup(&text)
}

/// Parses the text of a `smaps_rollup` file; `None` if it has no `Rss:` line (a
/// kernel thread, or a process that exited while being read).
pub fn parse_smaps_rollup(text: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    };
    Some(Memory {
        rss_kib: kib("Rss:")?,
        pss_kib: kib("Pss:").unwrap_or(0),
        uss_kib: kib("Private_Clean:").unwrap_or(0) + kib("Private_Dirty:").unwrap_or(0),
    })
}

/// The element-wise sum (for instances with several processes).
pub fn sum(a: Memory, b: Memory) -> Memory {
    Memory {
        rss_kib: a.rss_kib + b.rss_kib,
        pss_kib: a.pss_kib + b.pss_kib,
        uss_kib: a.uss_kib + b.uss_kib,
    }
}

/// The element-wise maximum (for a peak over samples).
pub fn peak(a: Memory, b: Memory) -> Memory {
    Memory {
        rss_kib: a.rss_kib.max(b.rss_kib),
        pss_kib: a.pss_kib.max(b.pss_kib),
        uss_kib: a.uss_kib.max(b.uss_kib),
    }
}

/// The summed memory of `pids`; `None` when none could be read.
pub fn memory_of(pids: &[u32]) -> Option<Memory> {
    pids.iter()
        .filter_map(|pid| memory_of_pid(*pid))
        .reduce(sum)
}

/// The resident KiB of the first mapping of `pid` that is exactly `size_kib` large (a
/// monitor's guest-RAM mapping), from /proc/PID/smaps.
pub fn mapping_rss_kib(pid: u32, size_kib: u64) -> Option<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let field = |line: &str, key: &str| -> Option<u64> {
        line.strip_prefix(key)?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let mut size_matches = false;
    for line in smaps.lines() {
        if let Some(size) = field(line, "Size:") {
            size_matches = size == size_kib;
        } else if size_matches {
            if let Some(rss) = field(line, "Rss:") {
                return Some(rss);
            }
        }
    }
    None
}

/// `pid` and every process descended from it, from /proc/PID/task/*/children.
pub fn with_descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", all[i]));
        for task in tasks.into_iter().flatten().flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            all.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<u32>().ok()),
            );
        }
        i += 1;
    }
    all.sort_unstable();
    all.dedup();
    all
}

/// The CPU time, ns, that `pids`, their threads and their descendants have run, from
/// /proc/PID/task/TID/schedstat (the first field: time on a CPU). Processes that are gone
/// count nothing.
pub fn cpu_ns(pids: &[u32]) -> u64 {
    let mut all: Vec<u32> = pids.iter().flat_map(|&p| with_descendants(p)).collect();
    all.sort_unstable();
    all.dedup();
    let mut total = 0u64;
    for pid in all {
        let tasks = std::fs::read_dir(format!("/proc/{pid}/task"));
        for task in tasks.into_iter().flatten().flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let ns: u64 = text
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            total = total.saturating_add(ns);
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaps_rollup_is_parsed() {
        let text = "55d0c-7ffd [rollup]\nRss:                1234 kB\nPss:                 600 kB\n\
                    Pss_Anon:            100 kB\nShared_Clean:        700 kB\nPrivate_Clean:        34 kB\n\
                    Private_Dirty:       500 kB\n";
        assert_eq!(
            parse_smaps_rollup(text),
            Some(Memory {
                rss_kib: 1234,
                pss_kib: 600,
                uss_kib: 534
            })
        );
        assert_eq!(parse_smaps_rollup(""), None);
    }

    #[test]
    fn own_process_is_readable() {
        let me = memory_of(&[std::process::id()]).expect("own smaps_rollup");
        assert!(me.rss_kib > 0 && me.uss_kib <= me.rss_kib);
    }
}
