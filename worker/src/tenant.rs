//! Running a task as its tenant's operating-system user.
//!
//! The wrapper shell and the dead-man watchdog stay the worker's (root's):
//! they write the attempt's records (`exit_code`, …) in the attempt dir,
//! which stays the worker's, so a task can neither forge nor redirect
//! them; the attempt dirs (with every task's log and parameters) are made
//! the worker's alone (mode 0700). Only the task itself drops to the
//! tenant's user, through `setpriv` (util-linux), in a work dir of its
//! own, `<data_dir>/work/<tiid>_<attempt>` (owned by that user, mode
//! 0700: other tenants' tasks cannot look in; `work/` itself can be
//! traversed but not listed).

use std::ffi::{CStr, CString};
use std::os::unix::fs::{PermissionsExt, chown};
use std::path::{Path, PathBuf};

/// The user a task runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
    pub home: PathBuf,
}

/// Who a task asking for `user` runs as: `None` for the worker's own user
/// (nothing asked, or the worker already is that user). The error is the
/// task's failure message.
pub(crate) fn resolve(user: &str) -> Result<Option<RunAs>, String> {
    if user.is_empty() {
        return Ok(None);
    }
    let ra = lookup(user)
        .map_err(|e| format!("ORCA-WORKER-USER-LOOKUP: cannot look up user {user:?}: {e}"))?
        .ok_or_else(|| {
            format!(
                "ORCA-WORKER-NO-SUCH-USER: the tenant's operating-system user {user:?} does not exist on this worker; create it (useradd {user}) on every worker of the group, or change the tenant's os_user"
            )
        })?;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == ra.uid {
        return Ok(None);
    }
    if me != 0 {
        return Err(format!(
            "ORCA-WORKER-CANNOT-SWITCH-USER: this worker runs as uid {me}, not root, so it cannot run tasks as {user:?}; run the worker as root to use tenants"
        ));
    }
    if ra.uid == 0 {
        return Err(format!(
            "ORCA-WORKER-ROOT-TENANT: tenant user {user:?} is root; tasks never run as root through a tenant"
        ));
    }
    Ok(Some(ra))
}

fn lookup(user: &str) -> std::io::Result<Option<RunAs>> {
    let name = CString::new(user)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in user name"))?;
    let mut buf = vec![0u8; 16 * 1024];
    // SAFETY: an all-zero passwd is a valid out-parameter.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; buf outlives `pwd`'s
    // borrowed strings, which are copied before it is dropped.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::from_raw_os_error(rc));
    }
    if result.is_null() {
        return Ok(None);
    }
    // SAFETY: on success pw_dir points at a NUL-terminated string in buf.
    let home = unsafe { CStr::from_ptr(pwd.pw_dir) }
        .to_string_lossy()
        .into_owned();
    Ok(Some(RunAs {
        user: user.to_string(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home: PathBuf::from(home),
    }))
}

/// Whether `ra` may search (traverse) `dir`, by its mode bits.
fn can_search(dir: &Path, ra: &RunAs) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(dir)?;
    let mode = m.mode();
    Ok(if m.uid() == ra.uid {
        mode & 0o100 != 0
    } else if m.gid() == ra.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    })
}

/// Makes the task's work dir `<work_root>/<name>`, owned by the user, mode
/// 0700, under `work_root` (mode 0711: reachable, not listable), and
/// closes `attempts_root` to everyone but the worker. Directories above
/// `work_root` are not the worker's to change: when the user cannot
/// traverse one, the error says which.
pub(crate) fn prepare_work_dir(
    work_root: &Path,
    name: &str,
    attempts_root: &Path,
    ra: &RunAs,
) -> std::io::Result<PathBuf> {
    set_mode(attempts_root, 0o700)?;
    std::fs::create_dir_all(work_root)?;
    set_mode(work_root, 0o711)?;
    for dir in work_root.ancestors().skip(1) {
        if !can_search(dir, ra)? {
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "user {:?} cannot traverse {} (mode {:o}); keep the worker's data_dir under directories every user may traverse (e.g. /var/lib/orca)",
                    ra.user,
                    dir.display(),
                    std::fs::metadata(dir)?.permissions().mode() & 0o7777
                ),
            ));
        }
    }
    let work = work_root.join(name);
    match std::fs::create_dir(&work) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    chown(&work, Some(ra.uid), Some(ra.gid))?;
    set_mode(&work, 0o700)?;
    Ok(work)
}

fn set_mode(dir: &Path, mode: u32) -> std::io::Result<()> {
    if std::fs::metadata(dir)?.permissions().mode() & 0o7777 != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Hands a file the worker wrote to the user (its script), mode 0600.
pub(crate) fn give(path: &Path, ra: &RunAs) -> std::io::Result<()> {
    chown(path, Some(ra.uid), Some(ra.gid))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// The command prefix that runs the rest as the user, in `work`.
pub(crate) fn command_prefix(ra: &RunAs, work: &Path) -> Vec<String> {
    vec![
        "setpriv".into(),
        format!("--reuid={}", ra.uid),
        format!("--regid={}", ra.gid),
        "--init-groups".into(),
        "--".into(),
        "env".into(),
        format!("--chdir={}", work.display()),
        "--".into(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_asked_or_own_user_runs_as_the_worker() {
        assert_eq!(resolve("").unwrap(), None);
        let me = lookup("root").unwrap().expect("root exists");
        assert_eq!(me.uid, 0);
        if unsafe { libc::geteuid() } == 0 {
            assert_eq!(resolve("root").unwrap(), None, "already root: no switch");
        }
    }

    #[test]
    fn unknown_users_fail_with_a_message_naming_them() {
        let e = resolve("orca-no-such-user-x").unwrap_err();
        assert!(
            e.contains("ORCA-WORKER-NO-SUCH-USER") && e.contains("orca-no-such-user-x"),
            "{e}"
        );
    }
}
