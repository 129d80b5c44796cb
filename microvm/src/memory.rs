//! Memory accounting from `/proc/self/smaps`: the guest-memory mapping apart from the
//! rest, the way Firecracker measures its monitor's overhead.

/// Resident KiB of the mapping that starts at host address `start`, if there is one.
pub fn resident_kib_of_mapping(start: usize) -> Option<u64> {
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    resident_in(&smaps, start)
}

/// The `Rss:` of the mapping starting at `start` in a smaps text.
pub fn resident_in(smaps: &str, start: usize) -> Option<u64> {
    let header = format!("{start:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&header));
    lines.next()?;
    lines
        .take_while(|l| !l.contains('-') || l.contains(':'))
        .find_map(|l| l.strip_prefix("Rss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_right_mapping_is_read() {
        let smaps =
            "7f0000000000-7f0008000000 rw-p 00000000 00:00 0\nSize: 131072 kB\nRss: 2048 kB\n\
                     7f0008000000-7f0008001000 r--p 00000000 00:00 0\nSize: 4 kB\nRss: 4 kB\n";
        assert_eq!(resident_in(smaps, 0x7f00_0000_0000), Some(2048));
        assert_eq!(resident_in(smaps, 0x7f00_0800_0000), Some(4));
        assert_eq!(resident_in(smaps, 0x1234), None);
    }
}
