//! The command line of `workload exec`: how to run the user's program and when it counts
//! as ready.
//!
//! `workload exec [--ready WHEN] [--root DIR] [--workdir DIR] [--env NAME=value]...
//! [--user USER] -- PROGRAM [ARGS]...`

use std::ffi::OsString;
use std::path::PathBuf;

use lexopt::Arg;

/// A bad `exec` command line.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    /// No program after the options.
    #[error("exec needs a program to run: workload exec [OPTIONS] -- PROGRAM [ARGS]...")]
    NoProgram,
    /// An option `exec` does not take.
    #[error(
        "exec takes no option {0}; it takes --ready, --hold, --root, --workdir, --env, --user"
    )]
    UnknownOption(String),
    /// A `--ready` that is none of the four.
    #[error("--ready {0:?}: it must be exec, exit, output:REGEX or tcp:PORT")]
    Ready(String),
    /// A `--ready output:` with a bad regular expression.
    #[error("--ready output:{pattern}: not a regular expression: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// Why.
        reason: String,
    },
    /// An `--env` without `=`.
    #[error("--env {0:?}: it must be NAME=value")]
    Env(String),
    /// An option without its value, or a value lexopt could not read.
    #[error("{0}")]
    Lexopt(String),
}

impl From<lexopt::Error> for UsageError {
    fn from(e: lexopt::Error) -> Self {
        UsageError::Lexopt(e.to_string())
    }
}

/// When the program counts as ready.
#[derive(Debug, Clone)]
pub enum Ready {
    /// It was exec'ed (the exec succeeded).
    Exec,
    /// It exited with status 0.
    Exit,
    /// A line of its output matched.
    Output(regex::Regex),
    /// A TCP port accepted a connection on loopback (in the instance's own network).
    Tcp(u16),
}

impl Ready {
    /// Reads `exec`, `exit`, `output:REGEX` or `tcp:PORT`.
    pub fn parse(text: &str) -> Result<Ready, UsageError> {
        match text {
            "exec" => return Ok(Ready::Exec),
            "exit" => return Ok(Ready::Exit),
            _ => {}
        }
        if let Some(pattern) = text.strip_prefix("output:") {
            if pattern.is_empty() {
                return Err(UsageError::Ready(text.to_owned()));
            }
            return regex::Regex::new(pattern)
                .map(Ready::Output)
                .map_err(|e| UsageError::Regex {
                    pattern: pattern.to_owned(),
                    reason: e.to_string(),
                });
        }
        if let Some(port) = text.strip_prefix("tcp:") {
            return match port.parse::<u16>() {
                Ok(p) if p > 0 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(Ready::Tcp(p)),
                _ => Err(UsageError::Ready(text.to_owned())),
            };
        }
        Err(UsageError::Ready(text.to_owned()))
    }

    /// As written on the command line.
    pub fn describe(&self) -> String {
        match self {
            Ready::Exec => "exec".to_owned(),
            Ready::Exit => "exit".to_owned(),
            Ready::Output(re) => format!("output:{}", re.as_str()),
            Ready::Tcp(port) => format!("tcp:{port}"),
        }
    }
}

/// A parsed `exec` command line.
#[derive(Debug, Clone)]
pub struct ExecArgs {
    /// When the program is ready.
    pub ready: Ready,
    /// A root file system to chroot the program into (natively; a sandbox's root is
    /// already the image).
    pub root: Option<PathBuf>,
    /// The directory to start the program in, inside its root.
    pub workdir: Option<PathBuf>,
    /// The program's environment, `NAME=value`; a default `PATH` is added when missing.
    pub env: Vec<OsString>,
    /// The user to run it as: `uid[:gid]` or a name in the root's `/etc/passwd`.
    pub user: Option<String>,
    /// Once ready, keep a service running until a release signal (SIGTERM, SIGINT or
    /// SIGUSR1), so its memory can be taken while it serves.
    pub hold: bool,
    /// The program and its arguments.
    pub command: Vec<OsString>,
}

impl ExecArgs {
    /// Parses the arguments after `exec`; `Ok(None)` means help was asked for.
    pub fn parse<I>(argv: I) -> Result<Option<ExecArgs>, UsageError>
    where
        I: IntoIterator,
        I::Item: Into<OsString>,
    {
        let mut parser = lexopt::Parser::from_args(argv);
        let mut args = ExecArgs {
            ready: Ready::Exit,
            root: None,
            workdir: None,
            env: Vec::new(),
            user: None,
            hold: false,
            command: Vec::new(),
        };
        while let Some(arg) = parser.next()? {
            match arg {
                Arg::Short('h') | Arg::Long("help") => return Ok(None),
                Arg::Long("ready") => {
                    let value = parser.value()?;
                    args.ready = Ready::parse(&value.to_string_lossy())?;
                }
                Arg::Long("root") => args.root = Some(parser.value()?.into()),
                Arg::Long("workdir") => args.workdir = Some(parser.value()?.into()),
                Arg::Long("user") => {
                    args.user = Some(parser.value()?.to_string_lossy().into_owned())
                }
                Arg::Long("hold") => args.hold = true,
                Arg::Long("env") => {
                    let value = parser.value()?;
                    let text = value.to_string_lossy();
                    if !text.contains('=') || text.starts_with('=') {
                        return Err(UsageError::Env(text.into_owned()));
                    }
                    args.env.push(value);
                }
                Arg::Long(other) => return Err(UsageError::UnknownOption(format!("--{other}"))),
                Arg::Short(other) => return Err(UsageError::UnknownOption(format!("-{other}"))),
                Arg::Value(program) => {
                    args.command.push(program);
                    args.command.extend(parser.raw_args()?);
                }
            }
        }
        if args.command.is_empty() {
            return Err(UsageError::NoProgram);
        }
        Ok(Some(args))
    }
}

/// The help text of `exec`.
pub const USAGE: &str = "\
usage: workload exec [OPTIONS] -- PROGRAM [ARGS]...

Runs PROGRAM as the workload: writes `started`, runs it (in a child, with its output
relayed to standard error), writes `result` once it is ready, and ends with its status.
  --ready WHEN      exec (it was exec'ed), exit (it exited with status 0; the default),
                    output:REGEX (a line of its output matched) or tcp:PORT (a connection
                    to PORT on loopback was accepted); with output: and tcp: the program
                    is a service, stopped (SIGTERM, then SIGKILL after 2 s) once ready
  --hold            with output: and tcp:, keep the service running once ready until a
                    SIGTERM, SIGINT or SIGUSR1 (so its memory can be taken), then stop it
  --root DIR        chroot the program into DIR (needs root)
  --workdir DIR     start it in DIR (inside its root)
  --env NAME=value  its environment (repeatable; PATH gets a default when not given)
  --user USER       run it as uid[:gid], or a name in the root's /etc/passwd (needs root)
";

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<ExecArgs>, UsageError> {
        ExecArgs::parse(args.iter().copied())
    }

    #[test]
    fn the_command_follows_the_options() {
        let args = parse(&[
            "--ready", "tcp:8000", "--env", "A=1", "--", "python3", "-m", "x",
        ])
        .unwrap()
        .unwrap();
        assert!(matches!(args.ready, Ready::Tcp(8000)));
        assert_eq!(args.env, ["A=1"]);
        assert_eq!(args.command, ["python3", "-m", "x"]);
        // The program's own options are its own, even without `--`.
        let args = parse(&["ls", "--ready", "-l"]).unwrap().unwrap();
        assert!(matches!(args.ready, Ready::Exit));
        assert_eq!(args.command, ["ls", "--ready", "-l"]);
    }

    #[test]
    fn bad_lines_are_refused() {
        assert!(matches!(parse(&[]), Err(UsageError::NoProgram)));
        assert!(matches!(
            parse(&["--ready", "soon", "x"]),
            Err(UsageError::Ready(_))
        ));
        assert!(matches!(
            parse(&["--ready", "tcp:0", "x"]),
            Err(UsageError::Ready(_))
        ));
        assert!(matches!(
            parse(&["--ready", "tcp:70000", "x"]),
            Err(UsageError::Ready(_))
        ));
        assert!(matches!(
            parse(&["--ready", "output:(", "x"]),
            Err(UsageError::Regex { .. })
        ));
        assert!(matches!(
            parse(&["--env", "NOEQ", "x"]),
            Err(UsageError::Env(_))
        ));
        assert!(matches!(
            parse(&["--nope", "x"]),
            Err(UsageError::UnknownOption(_))
        ));
        assert!(matches!(parse(&["--help"]), Ok(None)));
        assert!(parse(&["--hold", "x"]).unwrap().unwrap().hold);
    }
}
