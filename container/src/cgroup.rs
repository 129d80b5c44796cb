//! Which cgroup hierarchies the host has mounted, found from `/proc/self/mountinfo`.
//!
//! Hosts come in three layouts: pure cgroup v2 (one unified hierarchy, usually at
//! `/sys/fs/cgroup`), pure v1 (one hierarchy per controller) and hybrid (v1 controller
//! hierarchies with a v2 hierarchy beside them that holds no controllers, as systemd's
//! "hybrid" mode sets up). The layout is read, never assumed.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The controllers a cgroup v1 hierarchy can carry (the other super options, such as
/// `rw`, `xattr` or `name=systemd`, are not controllers).
const V1_CONTROLLERS: [&str; 14] = [
    "cpu",
    "cpuacct",
    "cpuset",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "net_prio",
    "blkio",
    "perf_event",
    "hugetlb",
    "pids",
    "rdma",
    "misc",
];

/// Errors while reading the host's cgroup layout.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The mount table could not be read.
    #[error("cannot read the mount table {path}")]
    ReadMountinfo {
        /// The file that was read.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The cgroup layout of a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Version {
    /// Only cgroup v1 hierarchies are mounted.
    V1,
    /// Only the unified cgroup v2 hierarchy is mounted.
    V2,
    /// v1 controller hierarchies and a v2 hierarchy are both mounted.
    Hybrid,
    /// No cgroup file system is mounted.
    None,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::V1 => "v1",
            Version::V2 => "v2",
            Version::Hybrid => "hybrid",
            Version::None => "none",
        })
    }
}

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where the hierarchy is mounted.
    pub mount_point: PathBuf,
    /// `true` for the unified (v2) hierarchy.
    pub unified: bool,
    /// The v1 controllers bound to it (from the super options); empty for v2.
    pub controllers: Vec<String>,
}

/// The cgroup hierarchies mounted on the host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Layout {
    /// Every cgroup or cgroup2 mount, in mount-table order.
    pub hierarchies: Vec<Hierarchy>,
}

impl Layout {
    /// Reads the layout of the calling process's mount namespace.
    pub fn detect() -> Result<Self, Error> {
        Self::from_mountinfo_file(Path::new("/proc/self/mountinfo"))
    }

    /// Reads the layout from a mountinfo file.
    pub fn from_mountinfo_file(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadMountinfo {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self::parse_mountinfo(&text))
    }

    /// Parses the text of a `/proc/<pid>/mountinfo` file (see proc(5)).
    ///
    /// Lines that are not cgroup mounts, or that are malformed, are skipped.
    pub fn parse_mountinfo(text: &str) -> Self {
        let hierarchies = text.lines().filter_map(parse_cgroup_line).collect();
        Layout { hierarchies }
    }

    /// The overall layout: v1, v2, hybrid or none.
    pub fn version(&self) -> Version {
        let v1 = self.hierarchies.iter().any(|h| !h.unified);
        let v2 = self.hierarchies.iter().any(|h| h.unified);
        match (v1, v2) {
            (true, true) => Version::Hybrid,
            (true, false) => Version::V1,
            (false, true) => Version::V2,
            (false, false) => Version::None,
        }
    }

    /// Where the unified (v2) hierarchy is mounted, if it is.
    pub fn unified_mount(&self) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| h.unified)
            .map(|h| h.mount_point.as_path())
    }

    /// Where the v1 hierarchy that carries `controller` is mounted, if one does.
    pub fn v1_mount(&self, controller: &str) -> Option<&Path> {
        self.hierarchies
            .iter()
            .find(|h| !h.unified && h.controllers.iter().any(|c| c == controller))
            .map(|h| h.mount_point.as_path())
    }
}

/// Parses one mountinfo line if it describes a cgroup or cgroup2 mount.
///
/// Format: `id parent major:minor root mount-point options [optional...] - fstype source super-options`.
fn parse_cgroup_line(line: &str) -> Option<Hierarchy> {
    let (left, right) = line.split_once(" - ")?;
    let mount_point = left.split(' ').nth(4)?;
    let mut right = right.split(' ');
    let fstype = right.next()?;
    let _source = right.next()?;
    let super_options = right.next().unwrap_or("");
    let unified = match fstype {
        "cgroup2" => true,
        "cgroup" => false,
        _ => return None,
    };
    let controllers = if unified {
        Vec::new()
    } else {
        super_options
            .split(',')
            .filter(|o| V1_CONTROLLERS.contains(o))
            .map(str::to_owned)
            .collect()
    };
    Some(Hierarchy {
        mount_point: PathBuf::from(unescape_octal(mount_point)),
        unified,
        controllers,
    })
}

/// Undoes the `\ooo` escaping the kernel applies to spaces and other bytes in paths.
fn unescape_octal(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let digits = &bytes[i + 1..i + 4];
            let octal = std::str::from_utf8(digits).ok();
            if let Some(value) = octal.and_then(|d| u8::from_str_radix(d, 8).ok()) {
                out.push(value);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 31 0:23 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw,nsdelegate
32 30 0:28 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:11 - cgroup cgroup rw,xattr,name=systemd
35 30 0:31 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,cpu,cpuacct
";

    #[test]
    fn hybrid_layout_is_recognised() {
        let layout = Layout::parse_mountinfo(HYBRID);
        assert_eq!(layout.version(), Version::Hybrid);
        assert_eq!(
            layout.unified_mount(),
            Some(Path::new("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            layout.v1_mount("memory"),
            Some(Path::new("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            layout.v1_mount("cpuacct"),
            Some(Path::new("/sys/fs/cgroup/cpu,cpuacct"))
        );
        assert_eq!(layout.v1_mount("pids"), None);
        // The named systemd hierarchy carries no controller.
        assert!(layout.hierarchies[1].controllers.is_empty());
    }

    #[test]
    fn pure_v2_and_v1_and_none() {
        let v2 = "29 23 0:26 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n";
        assert_eq!(Layout::parse_mountinfo(v2).version(), Version::V2);
        let v1 = "35 30 0:31 / /sys/fs/cgroup/pids rw shared:15 - cgroup cgroup rw,pids\n";
        assert_eq!(Layout::parse_mountinfo(v1).version(), Version::V1);
        assert_eq!(
            Layout::parse_mountinfo("garbage\n\n").version(),
            Version::None
        );
    }

    #[test]
    fn escaped_mount_points_are_decoded() {
        let line = "40 30 0:40 / /mnt/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        let layout = Layout::parse_mountinfo(line);
        assert_eq!(layout.unified_mount(), Some(Path::new("/mnt/my cgroup")));
    }

    #[test]
    fn this_host_is_readable() {
        // Whatever the layout, reading it must succeed on Linux.
        Layout::detect().expect("mountinfo readable");
    }
}
