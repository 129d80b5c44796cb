//! The user a program runs as: `uid[:gid]`, or a name looked up in the root's
//! `/etc/passwd` (and a group name in its `/etc/group`).

use std::path::Path;

/// The user and group IDs `spec` names, looking names up under `root` (or `/`).
pub fn resolve(spec: &str, root: Option<&Path>) -> Result<(libc::uid_t, libc::gid_t), String> {
    let root = root.unwrap_or(Path::new("/"));
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let (uid, primary) = match user.parse::<libc::uid_t>() {
        Ok(uid) => (
            uid,
            lookup(root, "etc/passwd", |f| f[2] == user).and_then(|f| f[3].parse().ok()),
        ),
        Err(_) => {
            let fields = lookup(root, "etc/passwd", |f| f[0] == user)
                .ok_or_else(|| format!("user {user:?} is not in the image's /etc/passwd"))?;
            let uid = fields[2]
                .parse()
                .map_err(|_| format!("user {user:?} has a bad uid in /etc/passwd"))?;
            (uid, fields[3].parse().ok())
        }
    };
    let gid = match group {
        Some(g) => match g.parse::<libc::gid_t>() {
            Ok(gid) => gid,
            Err(_) => lookup(root, "etc/group", |f| f[0] == g)
                .and_then(|f| f[2].parse().ok())
                .ok_or_else(|| format!("group {g:?} is not in the image's /etc/group"))?,
        },
        None => primary.unwrap_or(uid),
    };
    Ok((uid, gid))
}

/// The fields of the first line of `root/file` (colon-separated, at least four) that `pick`
/// accepts.
fn lookup(root: &Path, file: &str, pick: impl Fn(&[&str]) -> bool) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(root.join(file)).ok()?;
    text.lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 4 && pick(f))
        .map(|f| f.into_iter().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_names() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nweb:x:33:34::/:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(root.path().join("etc/group"), "root:x:0:\nstaff:x:50:\n").unwrap();
        let r = Some(root.path());
        assert_eq!(resolve("1000:1000", r), Ok((1000, 1000)));
        assert_eq!(resolve("web", r), Ok((33, 34)));
        assert_eq!(resolve("33", r), Ok((33, 34)));
        assert_eq!(resolve("web:staff", r), Ok((33, 50)));
        assert!(resolve("nobody", r).unwrap_err().contains("nobody"));
        assert!(resolve("web:wheel", r).unwrap_err().contains("wheel"));
    }
}
