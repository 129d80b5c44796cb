//! The kernel command line: kernel parameters, then, after a lone `--`, the arguments
//! and environment handed to init. A parameter the monitor adds (a device it announces)
//! must go before that `--`, or init gets it as an argument and the kernel never sees it.

/// `cmdline` with `param` among the kernel's parameters: just before the first lone `--`
/// word (outside double quotes), or at the end when there is none.
pub fn with_kernel_param(cmdline: &str, param: &str) -> String {
    let bytes = cmdline.as_bytes();
    let mut quoted = false;
    let mut at = None;
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'-' if !quoted
                && (i == 0 || bytes[i - 1].is_ascii_whitespace())
                && bytes.get(i + 1) == Some(&b'-')
                && bytes.get(i + 2).is_none_or(u8::is_ascii_whitespace) =>
            {
                at = Some(i);
                break;
            }
            _ => {}
        }
    }
    match at {
        Some(i) => format!("{}{param} {}", &cmdline[..i], &cmdline[i..]),
        None if cmdline.trim().is_empty() => param.to_owned(),
        None => format!("{} {param}", cmdline.trim_end()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parameter_goes_before_inits_arguments() {
        let p = "virtio_mmio.device=4K@0xd0001000:5";
        assert_eq!(
            with_kernel_param("console=ttyS0 quiet A=1 -- file --count 2", p),
            format!("console=ttyS0 quiet A=1 {p} -- file --count 2")
        );
        assert_eq!(
            with_kernel_param("console=ttyS0", p),
            format!("console=ttyS0 {p}")
        );
        assert_eq!(with_kernel_param("", p), p);
        assert_eq!(with_kernel_param("-- hello", p), format!("{p} -- hello"));
        assert_eq!(with_kernel_param("quiet --", p), format!("quiet {p} --"));
        // `--count` and a quoted `--` are not the separator.
        assert_eq!(
            with_kernel_param("x=\"a -- b\" --count", p),
            format!("x=\"a -- b\" --count {p}")
        );
    }
}
