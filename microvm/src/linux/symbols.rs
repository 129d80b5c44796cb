//! Where in the kernel a vCPU was: its instruction pointer named against the kernel's
//! `System.map` (the one `vcbench kernel build` keeps beside `vmlinux`), as `function+0x1a`.

use std::path::Path;

/// The kernel's text symbols, sorted by address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    text: Vec<(u64, String)>,
}

impl Symbols {
    /// Reads `System.map` beside `kernel`; `None` when there is none or it is unreadable.
    pub fn beside(kernel: &Path) -> Option<Self> {
        let map = std::fs::read_to_string(kernel.parent()?.join("System.map")).ok()?;
        let symbols = Self::parse(&map);
        (!symbols.text.is_empty()).then_some(symbols)
    }

    /// Parses `System.map` lines (`ffffffff81000000 T _stext`), keeping text symbols.
    pub fn parse(map: &str) -> Self {
        let mut text: Vec<(u64, String)> = map
            .lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                let address = u64::from_str_radix(parts.next()?, 16).ok()?;
                let kind = parts.next()?;
                let name = parts.next()?;
                matches!(kind, "T" | "t" | "W" | "w").then(|| (address, name.to_owned()))
            })
            .collect();
        text.sort();
        Symbols { text }
    }

    /// `rip` as `function+0xoffset`, or `None` below the first symbol or far past the last
    /// (beyond 1 MiB: not kernel text).
    pub fn name(&self, rip: u64) -> Option<String> {
        let at = self.text.partition_point(|(address, _)| *address <= rip);
        let (address, name) = self.text.get(at.checked_sub(1)?)?;
        let offset = rip - address;
        (at < self.text.len() || offset < 1 << 20).then(|| format!("{name}+{offset:#x}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAP: &str = "\
ffffffff81000000 T _stext
ffffffff81000000 T startup_64
ffffffff81001000 t default_idle
ffffffff81001040 T native_safe_halt
ffffffff81200000 D some_data
ffffffff81300000 T _etext
";

    #[test]
    fn an_address_is_named_by_the_function_it_is_in() {
        let symbols = Symbols::parse(MAP);
        assert_eq!(
            symbols.name(0xffff_ffff_8100_1045).as_deref(),
            Some("native_safe_halt+0x5")
        );
        assert_eq!(
            symbols.name(0xffff_ffff_8100_1000).as_deref(),
            Some("default_idle+0x0")
        );
        // Data symbols are not functions.
        assert_eq!(
            symbols.name(0xffff_ffff_8120_0010).as_deref(),
            Some("native_safe_halt+0x1fefd0")
        );
        assert_eq!(symbols.name(0x1000), None);
        assert_eq!(symbols.name(0xffff_ffff_9000_0000), None);
    }
}
