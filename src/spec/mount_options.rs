//! Mount options: the one table of every option moor knows (the runtime-spec's list plus
//! runc's `tmpcopyup`), which both the mount code and `moor features` read. An option not in the
//! table is filesystem data, passed to mount(2) as the spec says; nothing in the table ever is.

/// What one option does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Sets an MS_* flag (mount(2) semantics; bind mounts get the matching attribute).
    Set(libc::c_ulong),
    /// Clears an MS_* flag.
    Clear(libc::c_ulong),
    /// Sets a MOUNT_ATTR_* attribute on the mount and every mount below it.
    RecSet(u64),
    /// Clears a MOUNT_ATTR_* attribute on the mount and every mount below it.
    RecClear(u64),
    /// Recursive access-time mode: MOUNT_ATTR_RELATIME (0), _NOATIME or _STRICTATIME.
    RecAtime(u64),
    /// Propagation applied after the mount (MS_SHARED, MS_SLAVE, ... with MS_REC).
    Propagation(libc::c_ulong),
    /// A bind mount, recursive or not.
    Bind { recursive: bool },
    /// An idmapped bind mount (the mappings come from the mount's uidMappings/gidMappings).
    Idmap { recursive: bool },
    /// tmpfs over a directory, filled with a copy of what it covers.
    CopyUp,
    /// Nothing beyond the defaults.
    None,
}

use Effect::*;

/// Every option moor understands. Later options override earlier ones, as for mount(8).
pub const TABLE: &[(&str, Effect)] = &[
    ("async", Clear(libc::MS_SYNCHRONOUS)),
    ("atime", Clear(libc::MS_NOATIME)),
    ("bind", Bind { recursive: false }),
    ("defaults", None),
    ("dev", Clear(libc::MS_NODEV)),
    ("diratime", Clear(libc::MS_NODIRATIME)),
    ("dirsync", Set(libc::MS_DIRSYNC)),
    ("exec", Clear(libc::MS_NOEXEC)),
    ("idmap", Idmap { recursive: false }),
    ("iversion", Set(libc::MS_I_VERSION)),
    ("lazytime", Set(libc::MS_LAZYTIME)),
    ("loud", Clear(libc::MS_SILENT)),
    ("mand", Set(libc::MS_MANDLOCK)),
    ("noatime", Set(libc::MS_NOATIME)),
    ("nodev", Set(libc::MS_NODEV)),
    ("nodiratime", Set(libc::MS_NODIRATIME)),
    ("noexec", Set(libc::MS_NOEXEC)),
    ("noiversion", Clear(libc::MS_I_VERSION)),
    ("nolazytime", Clear(libc::MS_LAZYTIME)),
    ("nomand", Clear(libc::MS_MANDLOCK)),
    ("norelatime", Clear(libc::MS_RELATIME)),
    ("nostrictatime", Clear(libc::MS_STRICTATIME)),
    ("nosuid", Set(libc::MS_NOSUID)),
    ("nosymfollow", Set(libc::MS_NOSYMFOLLOW)),
    ("private", Propagation(libc::MS_PRIVATE)),
    ("ratime", RecAtime(libc::MOUNT_ATTR_RELATIME)),
    ("rbind", Bind { recursive: true }),
    ("rdev", RecClear(libc::MOUNT_ATTR_NODEV)),
    ("rdiratime", RecClear(libc::MOUNT_ATTR_NODIRATIME)),
    ("relatime", Set(libc::MS_RELATIME)),
    ("remount", None),
    ("rexec", RecClear(libc::MOUNT_ATTR_NOEXEC)),
    ("ridmap", Idmap { recursive: true }),
    ("rnoatime", RecAtime(libc::MOUNT_ATTR_NOATIME)),
    ("rnodev", RecSet(libc::MOUNT_ATTR_NODEV)),
    ("rnodiratime", RecSet(libc::MOUNT_ATTR_NODIRATIME)),
    ("rnoexec", RecSet(libc::MOUNT_ATTR_NOEXEC)),
    // Leaving relatime or strictatime means the kernel's default, relatime.
    ("rnorelatime", RecAtime(libc::MOUNT_ATTR_RELATIME)),
    ("rnostrictatime", RecAtime(libc::MOUNT_ATTR_RELATIME)),
    ("rnosuid", RecSet(libc::MOUNT_ATTR_NOSUID)),
    ("rnosymfollow", RecSet(libc::MOUNT_ATTR_NOSYMFOLLOW)),
    ("ro", Set(libc::MS_RDONLY)),
    ("rprivate", Propagation(libc::MS_PRIVATE | libc::MS_REC)),
    ("rrelatime", RecAtime(libc::MOUNT_ATTR_RELATIME)),
    ("rro", RecSet(libc::MOUNT_ATTR_RDONLY)),
    ("rrw", RecClear(libc::MOUNT_ATTR_RDONLY)),
    ("rshared", Propagation(libc::MS_SHARED | libc::MS_REC)),
    ("rslave", Propagation(libc::MS_SLAVE | libc::MS_REC)),
    ("rstrictatime", RecAtime(libc::MOUNT_ATTR_STRICTATIME)),
    ("rsuid", RecClear(libc::MOUNT_ATTR_NOSUID)),
    ("rsymfollow", RecClear(libc::MOUNT_ATTR_NOSYMFOLLOW)),
    ("runbindable", Propagation(libc::MS_UNBINDABLE | libc::MS_REC)),
    ("rw", Clear(libc::MS_RDONLY)),
    ("shared", Propagation(libc::MS_SHARED)),
    ("silent", Set(libc::MS_SILENT)),
    ("slave", Propagation(libc::MS_SLAVE)),
    ("strictatime", Set(libc::MS_STRICTATIME)),
    ("suid", Clear(libc::MS_NOSUID)),
    ("symfollow", Clear(libc::MS_NOSYMFOLLOW)),
    ("sync", Set(libc::MS_SYNCHRONOUS)),
    ("tmpcopyup", CopyUp),
    ("unbindable", Propagation(libc::MS_UNBINDABLE)),
];

pub fn lookup(name: &str) -> Option<Effect> {
    TABLE.iter().find(|(n, _)| *n == name).map(|(_, e)| *e)
}

/// The names of every known option, for `features`.
pub fn names() -> impl Iterator<Item = &'static str> {
    TABLE.iter().map(|(n, _)| *n)
}

/// The propagation flags of a propagation option name ("rslave" → MS_SLAVE | MS_REC).
pub fn propagation_flag(name: &str) -> Option<libc::c_ulong> {
    match lookup(name) {
        Some(Propagation(p)) => Some(p),
        _ => Option::None,
    }
}

/// One mount's options, parsed.
#[derive(Default, Debug, PartialEq, Eq)]
pub struct Options {
    /// MS_* flags for mount(2).
    pub flags: libc::c_ulong,
    /// MS_* flags an option cleared (and no later option set again).
    pub clear: libc::c_ulong,
    pub propagation: libc::c_ulong,
    /// mount_setattr attributes set and cleared recursively (the `r*` forms).
    pub rec_set: u64,
    pub rec_clear: u64,
    pub rec_atime: Option<u64>,
    pub bind: bool,
    pub recursive: bool,
    pub idmap: bool,
    pub recursive_idmap: bool,
    pub copy_up: bool,
    /// Filesystem-specific options, for mount(2)'s data.
    pub data: Vec<String>,
}

pub fn parse(opts: &[String]) -> Options {
    let mut o = Options::default();
    for opt in opts {
        match lookup(opt) {
            Some(Set(f)) => {
                o.flags |= f;
                o.clear &= !f;
            }
            Some(Clear(f)) => {
                o.flags &= !f;
                o.clear |= f;
            }
            Some(RecSet(a)) => {
                o.rec_set |= a;
                o.rec_clear &= !a;
            }
            Some(RecClear(a)) => {
                o.rec_clear |= a;
                o.rec_set &= !a;
            }
            Some(RecAtime(a)) => o.rec_atime = Some(a),
            Some(Propagation(p)) => o.propagation |= p,
            Some(Bind { recursive }) => {
                o.bind = true;
                o.recursive |= recursive;
            }
            Some(Idmap { recursive }) => {
                o.idmap = true;
                o.recursive_idmap |= recursive;
            }
            Some(CopyUp) => o.copy_up = true,
            Some(None) => {}
            Option::None => o.data.push(opt.clone()),
        }
    }
    o
}

/// Per-mount attributes without an access-time mode, by MS_* flag.
const ATTRS: [(libc::c_ulong, u64); 6] = [
    (libc::MS_RDONLY, libc::MOUNT_ATTR_RDONLY),
    (libc::MS_NOSUID, libc::MOUNT_ATTR_NOSUID),
    (libc::MS_NODEV, libc::MOUNT_ATTR_NODEV),
    (libc::MS_NOEXEC, libc::MOUNT_ATTR_NOEXEC),
    (libc::MS_NODIRATIME, libc::MOUNT_ATTR_NODIRATIME),
    (libc::MS_NOSYMFOLLOW, libc::MOUNT_ATTR_NOSYMFOLLOW),
];

fn attrs_of(flags: libc::c_ulong) -> u64 {
    ATTRS
        .iter()
        .filter(|(ms, _)| flags & ms != 0)
        .fold(0, |a, (_, attr)| a | attr)
}

impl Options {
    /// (set, clear) for mount_setattr on a bind mount itself. The access time is a mode, not a
    /// bit: setting one needs the whole MOUNT_ATTR__ATIME mask cleared, or the kernel says
    /// EINVAL. The mode follows mount(2): strictatime beats noatime beats relatime; with none
    /// of them the source's mode stays, as a bind remount in runc keeps it.
    pub fn bind_attrs(&self) -> (u64, u64) {
        let (mut set, mut clear) = (attrs_of(self.flags), attrs_of(self.clear));
        let atime = if self.flags & libc::MS_STRICTATIME != 0 {
            Some(libc::MOUNT_ATTR_STRICTATIME)
        } else if self.flags & libc::MS_NOATIME != 0 {
            Some(libc::MOUNT_ATTR_NOATIME)
        } else if self.flags & libc::MS_RELATIME != 0 {
            Some(libc::MOUNT_ATTR_RELATIME)
        } else {
            Option::None
        };
        if let Some(mode) = atime {
            set |= mode;
            clear |= libc::MOUNT_ATTR__ATIME;
        }
        (set, clear)
    }

    /// (set, clear) for mount_setattr with AT_RECURSIVE, from the `r*` options.
    pub fn rec_attrs(&self) -> (u64, u64) {
        match self.rec_atime {
            Some(mode) => (self.rec_set | mode, self.rec_clear | libc::MOUNT_ATTR__ATIME),
            Option::None => (self.rec_set, self.rec_clear),
        }
    }

    pub fn has_rec_attrs(&self) -> bool {
        self.rec_set != 0 || self.rec_clear != 0 || self.rec_atime.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(v: &[&str]) -> Options {
        parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn splits_flags_data_and_recursive_forms() {
        let p = o(&[
            "nosuid",
            "noexec",
            "mode=755",
            "size=65536k",
            "rbind",
            "rro",
            "rprivate",
        ]);
        assert_eq!(p.flags, libc::MS_NOSUID | libc::MS_NOEXEC);
        assert_eq!(p.data, vec!["mode=755", "size=65536k"]);
        assert!(p.bind && p.recursive);
        assert_eq!(p.rec_set, libc::MOUNT_ATTR_RDONLY);
        assert_eq!(p.propagation, libc::MS_PRIVATE | libc::MS_REC);
    }

    #[test]
    fn later_options_win() {
        assert_eq!(o(&["ro", "rw"]).flags & libc::MS_RDONLY, 0);
        assert_eq!(o(&["rw", "ro"]).flags & libc::MS_RDONLY, libc::MS_RDONLY);
        assert_eq!(o(&["rw", "ro"]).bind_attrs(), (libc::MOUNT_ATTR_RDONLY, 0));
        assert_eq!(o(&["rnosuid", "rsuid"]).rec_attrs(), (0, libc::MOUNT_ATTR_NOSUID));
        assert_eq!(
            o(&["rnoatime", "rrelatime"]).rec_attrs(),
            (libc::MOUNT_ATTR_RELATIME, libc::MOUNT_ATTR__ATIME)
        );
    }

    #[test]
    fn atime_modes_clear_the_whole_atime_mask() {
        for (opts, mode) in [
            (&["strictatime"][..], libc::MOUNT_ATTR_STRICTATIME),
            (&["noatime"][..], libc::MOUNT_ATTR_NOATIME),
            (&["relatime"][..], libc::MOUNT_ATTR_RELATIME),
            (&["noatime", "strictatime"][..], libc::MOUNT_ATTR_STRICTATIME),
        ] {
            let (set, clear) = o(opts).bind_attrs();
            assert_eq!(set & libc::MOUNT_ATTR__ATIME, mode, "{opts:?}");
            assert_eq!(clear & libc::MOUNT_ATTR__ATIME, libc::MOUNT_ATTR__ATIME, "{opts:?}");
        }
        assert_eq!(o(&["noatime", "atime"]).bind_attrs(), (0, 0));
        for opt in ["ratime", "rnorelatime", "rnostrictatime", "rrelatime"] {
            assert_eq!(
                o(&[opt]).rec_attrs(),
                (libc::MOUNT_ATTR_RELATIME, libc::MOUNT_ATTR__ATIME),
                "{opt}"
            );
        }
    }

    #[test]
    fn no_spec_option_is_filesystem_data() {
        for name in names() {
            assert!(o(&[name]).data.is_empty(), "{name} would reach mount(2) as data");
        }
    }
}
