//! The filesystem tools (`mke2fs`, `e2fsck`): Debian's e2fsprogs, shipped as the system image
//! `ros/e2fsprogs` (a glibc base layer shared with the console image, and an e2fsprogs layer).
//!
//! Why they run straight from the image's unpacked layers through its own dynamic loader
//! (`ld-linux-x86-64.so.2 --library-path <layers' lib dirs> <layer>/sbin/e2fsck …`) rather than
//! as a privileged run-to-completion container:
//! - they must write the raw disk, which a container would need bind-mounted from the host's
//!   `/dev` and all capabilities for anyway: a container isolates nothing here;
//! - every container start is a re-exec'd helper process and an overlay mount (about 250 ms
//!   under TCG), and `e2fsck` runs at every boot, before anything else can start;
//! - the loader takes the libraries from the image, never from the host (which has none), so
//!   the binaries run exactly as Debian built them.
//!
//! [`FsTools`] is the seam: tests record calls instead of formatting disks.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The image the tools come from.
pub const IMAGE: &str = "ros/e2fsprogs:latest";
const LOADER: &str = "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2";
const LIB_DIRS: &[&str] = &["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"];

#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0} is not in the {IMAGE} image's layers")]
    Missing(String),
    #[error("running {tool}: {source}")]
    Spawn {
        tool: String,
        source: std::io::Error,
    },
    #[error("{tool} {args} failed ({status}): {output}")]
    Failed {
        tool: String,
        args: String,
        status: String,
        output: String,
    },
}

/// How `e2fsck -p` left the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fsck {
    Clean,
    /// Errors were found and corrected (exit 1 or 2); the output says what.
    Repaired(String),
    /// Errors left uncorrected (exit 4 and up): mounted anyway, reported loudly.
    Uncorrected(i32, String),
}

/// What the state step needs from e2fsprogs.
pub trait FsTools {
    /// `mke2fs -t ext4 -L <label> -F <dev>`.
    fn mkfs(&self, dev: &Path, label: &str) -> Result<(), ToolError>;
    /// `e2fsck -p <dev>` (preen: fix what is safe, without questions).
    fn fsck(&self, dev: &Path) -> Result<Fsck, ToolError>;
}

/// The tools in the unpacked layers of [`IMAGE`] (top-most first, as the store lists them).
pub struct ImageTools {
    layers: Vec<PathBuf>,
}

impl ImageTools {
    pub fn new(layers: Vec<PathBuf>) -> ImageTools {
        ImageTools { layers }
    }

    /// The first layer that has `rel` (a real file: an absolute symlink would point at the host).
    fn locate(&self, rel: &str) -> Result<PathBuf, ToolError> {
        self.layers
            .iter()
            .map(|l| l.join(rel))
            .find(|p| p.is_file())
            .ok_or_else(|| ToolError::Missing(rel.to_string()))
    }

    fn command(&self, tool: &str) -> Result<Command, ToolError> {
        let loader = self.locate(LOADER)?;
        let bin = self.locate(&format!("sbin/{tool}"))?;
        let libs: Vec<String> = self
            .layers
            .iter()
            .flat_map(|l| LIB_DIRS.iter().map(move |d| l.join(d)))
            .filter(|p| p.is_dir())
            .map(|p| p.display().to_string())
            .collect();
        let mut cmd = Command::new(loader);
        cmd.arg("--library-path").arg(libs.join(":"));
        // argv[0] as the tool's own name, for its messages.
        cmd.arg("--argv0").arg(tool).arg(bin);
        if let Ok(conf) = self.locate("etc/mke2fs.conf") {
            cmd.env("MKE2FS_CONFIG", conf);
        }
        Ok(cmd)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Result<(i32, String), ToolError> {
        let out = self
            .command(tool)?
            .args(args)
            .output()
            .map_err(|source| ToolError::Spawn {
                tool: tool.into(),
                source,
            })?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text.trim().to_string()))
    }
}

impl FsTools for ImageTools {
    fn mkfs(&self, dev: &Path, label: &str) -> Result<(), ToolError> {
        let dev = dev.display().to_string();
        let args = ["-q", "-t", "ext4", "-L", label, "-F", &dev];
        let (code, output) = self.run("mke2fs", &args)?;
        if code != 0 {
            return Err(ToolError::Failed {
                tool: "mke2fs".into(),
                args: args.join(" "),
                status: format!("exit {code}"),
                output,
            });
        }
        Ok(())
    }

    fn fsck(&self, dev: &Path) -> Result<Fsck, ToolError> {
        let dev = dev.display().to_string();
        let (code, output) = self.run("e2fsck", &["-p", &dev])?;
        Ok(fsck_outcome(code, output))
    }
}

/// e2fsck's exit code, as fsck(8) defines it: 0 clean, 1 corrected, 2 corrected (reboot
/// advised: only for a mounted root), 4 and up left uncorrected or failed.
pub fn fsck_outcome(code: i32, output: String) -> Fsck {
    match code {
        0 => Fsck::Clean,
        1 | 2 => Fsck::Repaired(output),
        c => Fsck::Uncorrected(c, output),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsck_exit_codes() {
        assert_eq!(fsck_outcome(0, String::new()), Fsck::Clean);
        assert_eq!(fsck_outcome(1, "x".into()), Fsck::Repaired("x".into()));
        assert_eq!(fsck_outcome(2, "x".into()), Fsck::Repaired("x".into()));
        assert_eq!(
            fsck_outcome(4, "x".into()),
            Fsck::Uncorrected(4, "x".into())
        );
    }

    #[test]
    fn a_tool_missing_from_the_layers_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let t = ImageTools::new(vec![dir.path().to_path_buf()]);
        let e = t.fsck(Path::new("/dev/vda")).unwrap_err();
        assert!(e.to_string().contains("ld-linux-x86-64.so.2"), "{e}");
    }
}
