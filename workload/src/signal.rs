//! Signal names, for saying what ended a process.

/// The name of `signal`, `SIGSEGV`, or its number when it has none here.
pub fn name(signal: i32) -> String {
    const NAMES: [(libc::c_int, &str); 14] = [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGINT, "SIGINT"),
        (libc::SIGQUIT, "SIGQUIT"),
        (libc::SIGILL, "SIGILL"),
        (libc::SIGTRAP, "SIGTRAP"),
        (libc::SIGABRT, "SIGABRT"),
        (libc::SIGBUS, "SIGBUS"),
        (libc::SIGFPE, "SIGFPE"),
        (libc::SIGKILL, "SIGKILL"),
        (libc::SIGSEGV, "SIGSEGV"),
        (libc::SIGPIPE, "SIGPIPE"),
        (libc::SIGALRM, "SIGALRM"),
        (libc::SIGTERM, "SIGTERM"),
        (libc::SIGSYS, "SIGSYS"),
    ];
    NAMES
        .iter()
        .find(|(n, _)| *n == signal)
        .map_or_else(|| signal.to_string(), |(_, name)| (*name).to_owned())
}

/// The signal an exit status of 128 + N stands for, if it is one (N in 1..=64).
pub fn of_status(status: i32) -> Option<i32> {
    (129..=128 + 64).contains(&status).then(|| status - 128)
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_and_statuses() {
        assert_eq!(super::name(libc::SIGSEGV), "SIGSEGV");
        assert_eq!(super::name(40), "40");
        assert_eq!(super::of_status(139), Some(11));
        assert_eq!(super::of_status(3), None);
        assert_eq!(super::of_status(128), None);
    }
}
