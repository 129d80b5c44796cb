//! What an image says about how to run it: its entry point, command, environment, working
//! directory and user (the `config` of an OCI image configuration).

/// How an image asks to be run. Empty for a plain root file system.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// The program and its first arguments, always run.
    pub entrypoint: Vec<String>,
    /// The default arguments (or program, with no entry point), replaced by the user's.
    pub cmd: Vec<String>,
    /// `NAME=value` pairs for the environment.
    pub env: Vec<String>,
    /// The directory to start in, when set.
    pub working_dir: Option<String>,
    /// The user to run as (`name`, `uid`, `uid:gid`), when set.
    pub user: Option<String>,
}

impl Config {
    /// The image's configuration from an OCI image configuration.
    pub fn from_oci(image: &oci_spec::image::ImageConfiguration) -> Config {
        let Some(config) = image.config() else {
            return Config::default();
        };
        let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        Config {
            entrypoint: config.entrypoint().clone().unwrap_or_default(),
            cmd: config.cmd().clone().unwrap_or_default(),
            env: config.env().clone().unwrap_or_default(),
            working_dir: non_empty(config.working_dir()),
            user: non_empty(config.user()),
        }
    }

    /// The command line to run: the entry point, then the user's arguments when there are
    /// any, else the image's command.
    pub fn command(&self, args: &[String]) -> Vec<String> {
        let mut line = self.entrypoint.clone();
        if args.is_empty() {
            line.extend(self.cmd.iter().cloned());
        } else {
            line.extend(args.iter().cloned());
        }
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_users_arguments_replace_the_command_not_the_entry_point() {
        let config = Config {
            entrypoint: vec!["/bin/sh".into(), "-c".into()],
            cmd: vec!["echo hi".into()],
            ..Config::default()
        };
        assert_eq!(config.command(&[]), ["/bin/sh", "-c", "echo hi"]);
        assert_eq!(config.command(&["true".into()]), ["/bin/sh", "-c", "true"]);
        assert!(Config::default().command(&[]).is_empty());
    }
}
