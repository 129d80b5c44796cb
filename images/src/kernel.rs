//! The guest kernel: `vcbench kernel build`.
//!
//! A kernel source (Debian's `linux-source-6.1` tarball by default, or any kernel tree) is
//! configured with `make tinyconfig`, then the fragment `kernel/microvm.config` is applied
//! with `make olddefconfig`, and `vmlinux` is built out of tree in a temporary directory.
//! Every option of the fragment is checked in the final `.config`: one the tree drops is an
//! error. The result is cached under `<cache>/kernels/<key>/`, where the key is a hash of
//! the source's bytes, the fragment and this recipe, so a second build of the same source
//! and configuration costs nothing. Next to `vmlinux` lie its `System.map`, the final `config` and
//! `kernel.json`, the kernel's [`Identity`].

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The configuration fragment applied on top of `make tinyconfig`.
pub const FRAGMENT: &str = include_str!("../../kernel/microvm.config");
/// Debian's kernel source package's tarball, the default source.
pub const DEBIAN_SOURCE: &str = "/usr/src/linux-source-6.1.tar.xz";
/// What the cache key covers besides the source and the fragment: the steps of the build.
/// Changed whenever the steps change, so no stale kernel is reused.
const RECIPE: &str = "vcbench kernel recipe 1: tinyconfig, fragment, olddefconfig, vmlinux";
/// Roughly how many build steps (`CC`, `LD`, ... lines) `make vmlinux` prints for this
/// configuration, for the progress bar; the real count may differ a little.
pub const EXPECTED_STEPS: u64 = 1000;
/// The file in the cache that names the last kernel built from the default source.
const LATEST: &str = "latest";

/// Errors while building or finding a kernel.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The source is neither a tarball nor a kernel tree.
    #[error("{path} is not a kernel source: expected a .tar, .tar.xz or .tar.gz file or a directory with a Makefile and arch/x86")]
    NotASource {
        /// The path given.
        path: PathBuf,
    },
    /// The source could not be read.
    #[error("cannot read the kernel source {path}")]
    ReadSource {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The cache directory could not be written.
    #[error("cannot write the kernel cache in {dir}")]
    Cache {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A build tool could not be started.
    #[error("cannot run {tool} (install it: apt-get install {package})")]
    Spawn {
        /// The program.
        tool: String,
        /// The Debian package that has it.
        package: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A build step failed.
    #[error("{step} failed ({status}); its last output:\n{tail}")]
    Step {
        /// The step.
        step: String,
        /// Its exit status.
        status: String,
        /// The end of its output.
        tail: String,
    },
    /// The source tree does not have an option the fragment asks for.
    #[error("the configured kernel has {found:?} where kernel/microvm.config asks for {wanted:?}: does this source know the option?")]
    OptionDropped {
        /// The fragment's line.
        wanted: String,
        /// What the final .config has.
        found: String,
    },
    /// A cached kernel's description is unreadable.
    #[error("the cached kernel description {path} is damaged (remove its directory)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Where a kernel source is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A tarball (any compression `tar` understands) whose one top directory is the tree.
    Tarball(PathBuf),
    /// A kernel tree; it is not written to (the build is out of tree).
    Tree(PathBuf),
}

impl Source {
    /// The source at `path`: a directory is a tree, a `.tar*` file a tarball.
    pub fn at(path: &Path) -> Result<Self, Error> {
        let meta = std::fs::metadata(path).map_err(|source| Error::ReadSource {
            path: path.to_owned(),
            source,
        })?;
        if meta.is_dir() {
            if path.join("Makefile").is_file() && path.join("arch/x86").is_dir() {
                return Ok(Source::Tree(path.to_owned()));
            }
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.contains(".tar") || n.ends_with(".tgz"))
        {
            return Ok(Source::Tarball(path.to_owned()));
        }
        Err(Error::NotASource {
            path: path.to_owned(),
        })
    }

    /// The path.
    pub fn path(&self) -> &Path {
        match self {
            Source::Tarball(p) | Source::Tree(p) => p,
        }
    }
}

/// What identifies a built kernel: it goes into every result of a Linux guest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// The kernel release, e.g. `6.1.158`.
    pub version: String,
    /// SHA-256 of the final `.config`.
    pub config_sha256: String,
    /// The source it was built from.
    pub source: String,
    /// SHA-256 of the source (of the tarball's bytes, or of a tree's files).
    pub source_sha256: String,
    /// Seconds the build took.
    pub build_seconds: f64,
}

/// A kernel in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Built {
    /// The `vmlinux` ELF file.
    pub vmlinux: PathBuf,
    /// Its identity.
    pub identity: Identity,
    /// Whether it came from the cache rather than a build just now.
    pub cached: bool,
}

/// Hears how a build goes.
pub trait Progress {
    /// A new stage begins (`hashing the source`, `extracting`, `configuring`, `compiling`).
    fn stage(&self, what: &str);
    /// `make` printed build step number `count`, `line`.
    fn step(&self, count: u64, line: &str);
}

/// The kernels' directory in the cache.
pub fn kernels_dir(cache: &Path) -> PathBuf {
    cache.join("kernels")
}

/// Builds a kernel from `source` with `jobs` parallel jobs, or finds it in `cache`.
pub fn build(
    source: &Source,
    cache: &Path,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Built, Error> {
    progress.stage("hashing the source");
    let source_sha256 = hash_source(source)?;
    let key = cache_key(&source_sha256, FRAGMENT);
    let dir = kernels_dir(cache).join(&key);
    let default_source = source.path() == Path::new(DEBIAN_SOURCE);
    if let Some(mut built) = read_cached(&dir)? {
        built.cached = true;
        if default_source {
            mark_latest(cache, &key)?;
        }
        return Ok(built);
    }
    let started = Instant::now();
    let cache_error = |source| Error::Cache {
        dir: kernels_dir(cache),
        source,
    };
    std::fs::create_dir_all(kernels_dir(cache)).map_err(cache_error)?;
    // One build at a time per cache; the lock goes with the process, however it ends, so
    // a build directory found while holding it belongs to a build that was killed.
    let _lock = lock_builds(&kernels_dir(cache)).map_err(cache_error)?;
    remove_abandoned_builds(&kernels_dir(cache));
    // A build that held the lock while this one waited may have made this very kernel.
    if let Some(mut built) = read_cached(&dir)? {
        built.cached = true;
        if default_source {
            mark_latest(cache, &key)?;
        }
        return Ok(built);
    }
    // Everything temporary lives in one directory, removed on every path out.
    let work = tempfile::Builder::new()
        .prefix(".build-")
        .tempdir_in(kernels_dir(cache))
        .map_err(cache_error)?;
    let tree = match source {
        Source::Tree(path) => path.clone(),
        Source::Tarball(path) => {
            progress.stage("extracting the source");
            let tree = work.path().join("src");
            std::fs::create_dir(&tree).map_err(cache_error)?;
            let mut tar = Command::new("tar");
            tar.arg("-xf")
                .arg(path)
                .arg("-C")
                .arg(&tree)
                .arg("--strip-components=1");
            run_step("extracting the source", &mut tar, "tar", None)?;
            tree
        }
    };
    let out = work.path().join("build");
    std::fs::create_dir(&out).map_err(cache_error)?;
    let make = |args: &[&str]| {
        let mut command = Command::new("make");
        command
            .arg("-C")
            .arg(&tree)
            .arg(format!("O={}", out.display()))
            .arg("ARCH=x86_64")
            .args(args)
            .env("KBUILD_BUILD_USER", "vcbench")
            .env("KBUILD_BUILD_HOST", "vcbench")
            .env("KBUILD_BUILD_TIMESTAMP", "1970-01-01")
            .env_remove("MAKEFLAGS")
            .env_remove("MFLAGS");
        command
    };

    progress.stage("configuring (tinyconfig + kernel/microvm.config)");
    run_step("make tinyconfig", &mut make(&["tinyconfig"]), "make", None)?;
    let config_path = out.join(".config");
    let mut config = std::fs::read_to_string(&config_path).map_err(cache_error)?;
    config.push_str("\n# kernel/microvm.config\n");
    config.push_str(FRAGMENT);
    std::fs::write(&config_path, config).map_err(cache_error)?;
    run_step(
        "make olddefconfig",
        &mut make(&["olddefconfig"]),
        "make",
        None,
    )?;
    let config = std::fs::read_to_string(&config_path).map_err(cache_error)?;
    check_fragment(FRAGMENT, &config)?;
    let version = capture(&mut make(&["-s", "kernelrelease"]))?;

    progress.stage("compiling vmlinux");
    let jobs = format!("-j{}", jobs.max(1));
    run_step(
        "make vmlinux",
        &mut make(&[&jobs, "vmlinux"]),
        "make",
        Some(progress),
    )?;

    let identity = Identity {
        version,
        config_sha256: hex(&Sha256::digest(config.as_bytes())),
        source: source.path().display().to_string(),
        source_sha256,
        build_seconds: started.elapsed().as_secs_f64(),
    };
    // Assemble the cache entry beside its final place, then move it in at once.
    let staging = work.path().join("entry");
    std::fs::create_dir(&staging).map_err(cache_error)?;
    std::fs::rename(out.join("vmlinux"), staging.join("vmlinux")).map_err(cache_error)?;
    // The kernel's symbols, so a guest stopped at its timeout is told where it was.
    if out.join("System.map").is_file() {
        std::fs::rename(out.join("System.map"), staging.join("System.map")).map_err(cache_error)?;
    }
    std::fs::write(staging.join("config"), &config).map_err(cache_error)?;
    let json = serde_json::to_string_pretty(&identity).unwrap_or_default();
    std::fs::write(staging.join("kernel.json"), json).map_err(cache_error)?;
    match std::fs::rename(&staging, &dir) {
        Ok(()) => {}
        // Another build of the same key finished first: its kernel is as good.
        Err(_) if dir.join("kernel.json").is_file() => {}
        Err(e) => return Err(cache_error(e)),
    }
    if default_source {
        mark_latest(cache, &key)?;
    }
    Ok(Built {
        vmlinux: dir.join("vmlinux"),
        identity,
        cached: false,
    })
}

/// Takes the cache's build lock (`.lock` in `kernels`), waiting for another build to end.
fn lock_builds(kernels: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(kernels.join(".lock"))?;
    loop {
        // SAFETY: flock on a descriptor this function owns for as long as `file` lives;
        // it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0 {
            return Ok(file);
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error);
        }
    }
}

/// Removes the work directories (`.build-*`) of builds that were killed before they could
/// clean up. Called with the build lock held, so none of them is in use.
fn remove_abandoned_builds(kernels: &Path) {
    let Ok(entries) = std::fs::read_dir(kernels) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(".build-") {
            // Best effort: what cannot be removed now is tried again by the next build.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The kernel last built from the default source ([`DEBIAN_SOURCE`]), if any.
pub fn latest(cache: &Path) -> Result<Option<Built>, Error> {
    let dir = kernels_dir(cache);
    let Ok(key) = std::fs::read_to_string(dir.join(LATEST)) else {
        return Ok(None);
    };
    read_cached(&dir.join(key.trim()))
}

/// The identity kept beside a cached `vmlinux` at `vmlinux`, if it is one.
pub fn identity_of(vmlinux: &Path) -> Option<Identity> {
    let dir = vmlinux.parent()?;
    read_cached(dir).ok().flatten().map(|b| b.identity)
}

fn mark_latest(cache: &Path, key: &str) -> Result<(), Error> {
    let dir = kernels_dir(cache);
    let write = || -> std::io::Result<()> {
        let mut file = tempfile::NamedTempFile::new_in(&dir)?;
        std::io::Write::write_all(&mut file, key.as_bytes())?;
        file.persist(dir.join(LATEST)).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|source| Error::Cache {
        dir: dir.clone(),
        source,
    })
}

fn read_cached(dir: &Path) -> Result<Option<Built>, Error> {
    let description = dir.join("kernel.json");
    let Ok(text) = std::fs::read_to_string(&description) else {
        return Ok(None);
    };
    let identity: Identity = serde_json::from_str(&text).map_err(|source| Error::Damaged {
        path: description,
        source,
    })?;
    let vmlinux = dir.join("vmlinux");
    Ok(vmlinux.is_file().then_some(Built {
        vmlinux,
        identity,
        cached: true,
    }))
}

/// The cache key: a hash of the recipe, the source's hash and the fragment.
pub fn cache_key(source_sha256: &str, fragment: &str) -> String {
    let mut hash = Sha256::new();
    for part in [RECIPE, source_sha256, fragment] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part.as_bytes());
    }
    hex(&hash.finalize()[..8])
}

/// Checks that every option of `fragment` has its value in the final `config`: `=n` means
/// not set, anything else the exact line.
pub fn check_fragment(fragment: &str, config: &str) -> Result<(), Error> {
    for line in fragment.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let found = config
            .lines()
            .find(|l| l.starts_with(&format!("{name}=")))
            .unwrap_or("")
            .to_owned();
        let ok = if value == "n" {
            found.is_empty()
        } else {
            found == line
        };
        if !ok {
            let found = if found.is_empty() {
                format!("# {name} is not set")
            } else {
                found
            };
            return Err(Error::OptionDropped {
                wanted: line.to_owned(),
                found,
            });
        }
    }
    Ok(())
}

fn hash_source(source: &Source) -> Result<String, Error> {
    let read_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::ReadSource { path, source }
    };
    let mut hash = Sha256::new();
    match source {
        Source::Tarball(path) => {
            let mut file = std::fs::File::open(path).map_err(read_error(path))?;
            std::io::copy(&mut file, &mut hash).map_err(read_error(path))?;
        }
        Source::Tree(root) => {
            let mut files = Vec::new();
            list_files(root, root, &mut files).map_err(read_error(root))?;
            files.sort();
            let mut buf = Vec::new();
            for relative in files {
                buf.clear();
                let path = root.join(&relative);
                std::fs::File::open(&path)
                    .and_then(|mut f| f.read_to_end(&mut buf))
                    .map_err(read_error(&path))?;
                hash.update(relative.as_os_str().as_encoded_bytes());
                hash.update([0]);
                hash.update((buf.len() as u64).to_le_bytes());
                hash.update(&buf);
            }
        }
    }
    Ok(hex(&hash.finalize()))
}

/// Regular files under `dir`, relative to `root`, skipping `.git`.
fn list_files(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let path = entry.path();
        if kind.is_dir() {
            if entry.file_name() != ".git" {
                list_files(root, &path, out)?;
            }
        } else if kind.is_file() {
            out.push(path.strip_prefix(root).unwrap_or(&path).to_owned());
        }
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How many lines of a failed step's output are kept for its error.
const TAIL_LINES: usize = 30;

/// Runs one step, feeding its `make` step lines to `progress` when given; on failure the
/// error holds the last lines of its output.
fn run_step(
    step: &str,
    command: &mut Command,
    package: &'static str,
    progress: Option<&dyn Progress>,
) -> Result<(), Error> {
    let tool = command.get_program().to_string_lossy().into_owned();
    let (reader, writer) = std::io::pipe().map_err(|source| Error::Spawn {
        tool: tool.clone(),
        package,
        source,
    })?;
    let writer_err = writer.try_clone().map_err(|source| Error::Spawn {
        tool: tool.clone(),
        package,
        source,
    })?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(writer_err)
        .spawn()
        .map_err(|source| Error::Spawn {
            tool: tool.clone(),
            package,
            source,
        })?;
    // The command holds the only write ends now; drop ours so the pipe ends with it.
    drop(std::mem::replace(command, Command::new("true")));
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    let mut steps = 0;
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { break };
        if let Some(progress) = progress {
            if is_build_step(&line) {
                steps += 1;
                progress.step(steps, line.trim());
            }
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    let status = child.wait().map_err(|source| Error::Spawn {
        tool,
        package,
        source,
    })?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Step {
            step: step.to_owned(),
            status: status.to_string(),
            tail: Vec::from(tail).join("\n"),
        })
    }
}

/// Whether a line of `make` output announces a build step (`  CC      kernel/fork.o`).
pub fn is_build_step(line: &str) -> bool {
    let Some(rest) = line.strip_prefix("  ") else {
        return false;
    };
    let word: String = rest.chars().take_while(|c| !c.is_whitespace()).collect();
    !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Runs a command and returns its trimmed standard output.
fn capture(command: &mut Command) -> Result<String, Error> {
    let tool = command.get_program().to_string_lossy().into_owned();
    let out = command
        .stderr(Stdio::piped())
        .output()
        .map_err(|source| Error::Spawn {
            tool,
            package: "make",
            source,
        })?;
    if !out.status.success() {
        return Err(Error::Step {
            step: "make kernelrelease".to_owned(),
            status: out.status.to_string(),
            tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fragment_is_checked_option_by_option() {
        let fragment = "# comment\nCONFIG_SMP=y\nCONFIG_ACPI=n\nCONFIG_NR_CPUS=32\n";
        let good = "CONFIG_SMP=y\n# CONFIG_ACPI is not set\nCONFIG_NR_CPUS=32\n";
        check_fragment(fragment, good).unwrap();
        let dropped = "# CONFIG_SMP is not set\nCONFIG_NR_CPUS=32\n";
        match check_fragment(fragment, dropped) {
            Err(Error::OptionDropped { wanted, found }) => {
                assert_eq!(wanted, "CONFIG_SMP=y");
                assert_eq!(found, "# CONFIG_SMP is not set");
            }
            other => panic!("expected a dropped option, got {other:?}"),
        }
        let acpi_on = "CONFIG_SMP=y\nCONFIG_ACPI=y\nCONFIG_NR_CPUS=32\n";
        assert!(check_fragment(fragment, acpi_on).is_err());
        let other_value = "CONFIG_SMP=y\nCONFIG_NR_CPUS=64\n";
        assert!(check_fragment(fragment, other_value).is_err());
    }

    #[test]
    fn a_killed_builds_directory_is_removed_under_the_lock_and_kernels_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let abandoned = dir.path().join(".build-x1Yz");
        std::fs::create_dir_all(abandoned.join("build/arch")).unwrap();
        std::fs::write(abandoned.join("build/vmlinux.o"), b"half").unwrap();
        let kept = dir.path().join("0123456789abcdef");
        std::fs::create_dir(&kept).unwrap();
        std::fs::write(kept.join("vmlinux"), b"\x7fELF").unwrap();
        let lock = lock_builds(dir.path()).unwrap();
        remove_abandoned_builds(dir.path());
        drop(lock);
        assert!(!abandoned.exists());
        assert!(kept.join("vmlinux").is_file());
        assert!(dir.path().join(".lock").is_file());
        // The lock is taken again once released.
        drop(lock_builds(dir.path()).unwrap());
    }

    #[test]
    fn the_key_changes_with_source_and_fragment() {
        let a = cache_key("aa", "CONFIG_SMP=y\n");
        assert_eq!(a.len(), 16);
        assert_eq!(a, cache_key("aa", "CONFIG_SMP=y\n"));
        assert_ne!(a, cache_key("ab", "CONFIG_SMP=y\n"));
        assert_ne!(a, cache_key("aa", "CONFIG_SMP=n\n"));
    }

    #[test]
    fn build_steps_are_recognised_in_make_output() {
        assert!(is_build_step("  CC      kernel/fork.o"));
        assert!(is_build_step("  LD      vmlinux.o"));
        assert!(is_build_step("  HOSTCC  scripts/basic/fixdep"));
        assert!(!is_build_step("make[1]: Entering directory"));
        assert!(!is_build_step("  "));
        assert!(!is_build_step("warning: something"));
    }

    #[test]
    fn sources_are_told_apart_and_bad_ones_named() {
        let dir = tempfile::tempdir().unwrap();
        let tarball = dir.path().join("linux.tar.xz");
        std::fs::write(&tarball, b"x").unwrap();
        assert_eq!(Source::at(&tarball).unwrap(), Source::Tarball(tarball));
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, b"x").unwrap();
        assert!(matches!(Source::at(&other), Err(Error::NotASource { .. })));
        assert!(matches!(
            Source::at(dir.path()),
            Err(Error::NotASource { .. })
        ));
        std::fs::write(dir.path().join("Makefile"), b"").unwrap();
        std::fs::create_dir_all(dir.path().join("arch/x86")).unwrap();
        assert_eq!(
            Source::at(dir.path()).unwrap(),
            Source::Tree(dir.path().to_owned())
        );
        assert!(matches!(
            Source::at(&dir.path().join("missing")),
            Err(Error::ReadSource { .. })
        ));
    }

    #[test]
    fn a_tree_hashes_by_content() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a"), b"one").unwrap();
        std::fs::create_dir(dir.path().join(".git")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), b"x").unwrap();
        let tree = Source::Tree(dir.path().to_owned());
        let first = hash_source(&tree).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), b"y").unwrap();
        assert_eq!(hash_source(&tree).unwrap(), first, ".git is not the source");
        std::fs::write(dir.path().join("a"), b"two").unwrap();
        assert_ne!(hash_source(&tree).unwrap(), first);
    }
}
