//! The native target's default seccomp filter: the system calls that Docker's default profile
//! (moby's `profiles/seccomp/default.json`) keeps from containers, refused with EPERM unless
//! the container holds the capability that Docker's profile lets them through with. Docker's
//! profile is an allow-list of the ~350 calls it knows; this is the same boundary written as a
//! deny-list, so a call newer than the list is allowed rather than broken. `privileged` and
//! `securityOpt: [seccomp=unconfined]` (the host policy decides) run without it.

use oci_spec::runtime as oci;

/// Calls refused by default, each with the capability that lets it through (None: never).
const DENIED: &[(&str, Option<&str>)] = &[
    ("acct", Some("SYS_PACCT")),
    ("add_key", None),
    ("bpf", Some("SYS_ADMIN")),
    ("clock_adjtime", Some("SYS_TIME")),
    ("clock_adjtime64", Some("SYS_TIME")),
    ("clock_settime", Some("SYS_TIME")),
    ("clock_settime64", Some("SYS_TIME")),
    ("create_module", Some("SYS_MODULE")),
    ("delete_module", Some("SYS_MODULE")),
    ("finit_module", Some("SYS_MODULE")),
    ("init_module", Some("SYS_MODULE")),
    ("fsconfig", Some("SYS_ADMIN")),
    ("fsmount", Some("SYS_ADMIN")),
    ("fsopen", Some("SYS_ADMIN")),
    ("fspick", Some("SYS_ADMIN")),
    ("get_kernel_syms", None),
    ("get_mempolicy", Some("SYS_NICE")),
    ("mbind", Some("SYS_NICE")),
    ("set_mempolicy", Some("SYS_NICE")),
    ("move_pages", Some("SYS_NICE")),
    ("ioperm", Some("SYS_RAWIO")),
    ("iopl", Some("SYS_RAWIO")),
    ("kcmp", Some("SYS_PTRACE")),
    ("process_vm_readv", Some("SYS_PTRACE")),
    ("process_vm_writev", Some("SYS_PTRACE")),
    ("ptrace", Some("SYS_PTRACE")),
    ("kexec_file_load", Some("SYS_BOOT")),
    ("kexec_load", Some("SYS_BOOT")),
    ("reboot", Some("SYS_BOOT")),
    ("keyctl", None),
    ("request_key", None),
    ("lookup_dcookie", Some("SYS_ADMIN")),
    ("mount", Some("SYS_ADMIN")),
    ("mount_setattr", Some("SYS_ADMIN")),
    ("move_mount", Some("SYS_ADMIN")),
    ("open_tree", Some("SYS_ADMIN")),
    ("umount", Some("SYS_ADMIN")),
    ("umount2", Some("SYS_ADMIN")),
    ("pivot_root", Some("SYS_ADMIN")),
    ("setns", Some("SYS_ADMIN")),
    ("unshare", Some("SYS_ADMIN")),
    ("quotactl", Some("SYS_ADMIN")),
    ("quotactl_fd", Some("SYS_ADMIN")),
    ("name_to_handle_at", Some("SYS_ADMIN")),
    ("open_by_handle_at", Some("DAC_READ_SEARCH")),
    ("nfsservctl", None),
    ("perf_event_open", Some("PERFMON")),
    ("swapon", Some("SYS_ADMIN")),
    ("swapoff", Some("SYS_ADMIN")),
    ("sysfs", None),
    ("_sysctl", None),
    ("syslog", Some("SYSLOG")),
    ("uselib", None),
    ("userfaultfd", None),
    ("ustat", None),
    ("vm86", None),
    ("vm86old", None),
    ("settimeofday", Some("SYS_TIME")),
    ("stime", Some("SYS_TIME")),
];

/// The filter for a container holding `caps` (Docker's names, `NET_ADMIN`).
pub fn default_filter(caps: &[&str]) -> Result<oci::LinuxSeccomp, oci_spec::OciSpecError> {
    let names: Vec<String> = DENIED
        .iter()
        .filter(|(_, unlock)| unlock.is_none_or(|c| !caps.contains(&c)))
        .map(|(n, _)| n.to_string())
        .collect();
    let denied = oci::LinuxSyscallBuilder::default()
        .names(names)
        .action(oci::LinuxSeccompAction::ScmpActErrno)
        .errno_ret(libc::EPERM as u32)
        .build()?;
    oci::LinuxSeccompBuilder::default()
        .default_action(oci::LinuxSeccompAction::ScmpActAllow)
        .syscalls(vec![denied])
        .build()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_capability_lets_its_calls_through_and_no_other() {
        let names = |caps: &[&str]| -> Vec<String> {
            let f = super::default_filter(caps).unwrap();
            f.syscalls().as_ref().unwrap()[0].names().clone()
        };
        let plain = names(&[]);
        assert!(plain.contains(&"mount".to_string()) && plain.contains(&"ptrace".to_string()));
        let admin = names(&["SYS_ADMIN"]);
        assert!(!admin.contains(&"mount".to_string()) && admin.contains(&"ptrace".to_string()));
        assert!(admin.contains(&"keyctl".to_string()), "no capability unlocks keyctl");
    }
}
