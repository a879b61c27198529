//! Whether any datasource could answer, told without starting anything: what cloud-init's
//! `ds-identify` does before cloud-init runs, and for the same reason. PID 1 asks it for a
//! service labelled `io.rancher.os.condition: datasource` (`cloud-init-save`): when nothing
//! could answer, that service's container, its run and the configuration's reload after it are
//! skipped: the first container of every boot without a datasource, on the boot's path to
//! `ready` (30 % of the guest's work from `/init` to `ready`, by `HARNESS_ICOUNT=1`).
//!
//! It looks where `save` would, the same way: the kernel command line for `cloud-config-url=`,
//! each block device's vfat/iso9660 label ([`label`](super::label)) for `cidata` and
//! `config-2`, a `configdrive:DIR` directory. Whatever it cannot tell from here (a URL, a
//! metadata service) counts as a datasource that may answer; a skipped `save` would have kept
//! the files of an earlier boot anyway (see [`save`](super::save)), which PID 1 has loaded.

use super::datasource::{cmdline_url, Source};
use super::label;
use std::path::{Path, PathBuf};

/// What [`identify`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Identified {
    /// A datasource may answer: which, and why.
    Found(String),
    /// None can: what was looked at, source by source.
    Nothing(String),
}

/// Look at `sources` in order, with the kernel command line `cmdline` and the block devices
/// `devices` (their labels are read once, and only when a disk source asks).
pub fn identify(sources: &[Source], cmdline: &str, devices: &[PathBuf]) -> Identified {
    let mut labels: Option<Vec<(PathBuf, String)>> = None;
    let mut labelled = |want: &str| -> Option<PathBuf> {
        let list = labels.get_or_insert_with(|| read_labels(devices));
        list.iter()
            .find(|(_, l)| l.eq_ignore_ascii_case(want))
            .map(|(p, _)| p.clone())
    };
    let mut looked = Vec::new();
    for s in sources {
        let name = s.name();
        match s {
            Source::Url(_) | Source::Ec2(_) => {
                return Identified::Found(format!("{name}: asked over the network"));
            }
            Source::Cmdline => match cmdline_url(cmdline) {
                Some(u) => return Identified::Found(format!("{name}: cloud-config-url={u}")),
                None => looked.push(format!("{name}: no cloud-config-url=")),
            },
            Source::NoCloud | Source::ConfigDrive(_) => {
                if let Source::ConfigDrive(Some(dir)) = s {
                    if dir.join("openstack").is_dir() {
                        return Identified::Found(format!("{name}: {} is there", dir.display()));
                    }
                }
                let want = if matches!(s, Source::NoCloud) {
                    "cidata"
                } else {
                    "config-2"
                };
                match labelled(want) {
                    Some(dev) => {
                        return Identified::Found(format!(
                            "{name}: {} is labelled {want}",
                            dev.display()
                        ))
                    }
                    None => looked.push(format!("{name}: no disk labelled {want}")),
                }
            }
        }
    }
    if looked.is_empty() {
        looked.push("no datasource is named".into());
    }
    Identified::Nothing(looked.join("; "))
}

/// Each device's label, for those that have one we read (vfat, iso9660).
fn read_labels(devices: &[PathBuf]) -> Vec<(PathBuf, String)> {
    devices
        .iter()
        .filter_map(|p| label::of(p).map(|(_, l)| (p.clone(), l)))
        .collect()
}

/// [`identify`] for this machine: the block devices the kernel knows, under `dev`.
pub fn here(sources: &[Source], cmdline: &str, dev: &Path) -> Identified {
    identify(sources, cmdline, &label::block_devices(dev))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(names: &[&str]) -> Vec<Source> {
        names.iter().map(|n| Source::parse(n).unwrap()).collect()
    }

    use crate::cloudinit::label::tests::fat;

    fn disks(dir: &Path, list: &[(&str, Vec<u8>)]) -> Vec<PathBuf> {
        list.iter()
            .map(|(n, data)| {
                let p = dir.join(n);
                std::fs::write(&p, data).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn nothing_without_a_labelled_disk_or_a_url() {
        let t = tempfile::tempdir().unwrap();
        let devs = disks(
            t.path(),
            &[
                ("vda", vec![0u8; 64 * 1024]),
                ("vdb", fat(false, b"DATA       ")),
            ],
        );
        let defaults = parse(crate::cloudinit::DEFAULT_SOURCES);
        assert_eq!(
            identify(&defaults, "console=ttyS0 -- cc.hostname=x", &devs),
            Identified::Nothing(
                "cmdline: no cloud-config-url=; nocloud: no disk labelled cidata; configdrive: no disk labelled config-2"
                    .into()
            )
        );
        // A device that cannot be opened is one without a label, as for `save`.
        let gone = vec![t.path().join("missing")];
        assert!(matches!(
            identify(&defaults, "", &gone),
            Identified::Nothing(_)
        ));
        assert!(
            matches!(identify(&[], "", &devs), Identified::Nothing(w) if w == "no datasource is named")
        );
    }

    #[test]
    fn found_by_label_url_or_network_source() {
        let t = tempfile::tempdir().unwrap();
        let devs = disks(
            t.path(),
            &[
                ("vda", vec![0u8; 4096]),
                ("vdb", fat(false, b"CIDATA     ")),
            ],
        );
        let defaults = parse(crate::cloudinit::DEFAULT_SOURCES);
        let vdb = t.path().join("vdb");
        assert_eq!(
            identify(&defaults, "console=ttyS0", &devs),
            Identified::Found(format!("nocloud: {} is labelled cidata", vdb.display()))
        );
        assert_eq!(
            identify(&parse(&["configdrive"]), "", &devs),
            Identified::Nothing("configdrive: no disk labelled config-2".into())
        );
        assert_eq!(
            identify(&defaults, "-- cloud-config-url=http://10.0.2.2/u", &[]),
            Identified::Found("cmdline: cloud-config-url=http://10.0.2.2/u".into())
        );
        for net in ["ec2", "url:http://10.0.2.2/x"] {
            assert!(
                matches!(identify(&parse(&["nocloud", net]), "", &[]), Identified::Found(w) if w.contains("over the network")),
                "{net}"
            );
        }
        // A configdrive directory that is there answers without a disk.
        std::fs::create_dir_all(t.path().join("cd/openstack")).unwrap();
        let dir = format!("configdrive:{}", t.path().join("cd").display());
        assert!(matches!(
            identify(&parse(&[&dir]), "", &[]),
            Identified::Found(_)
        ));
    }
}
