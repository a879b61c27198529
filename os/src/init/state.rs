//! The `state` boot step: PID 1's side of [`crate::state`]. It finds, checks and mounts the state
//! partition, binds the persistent directories, and then reads the configuration again, since
//! the user's layer (`/var/lib/rancher/conf`) lives on that partition and was not there when
//! `load-config` ran.

use super::Boot;
use crate::console::say;
use crate::state::{self, device::SysBlock, mount, tools, Settings, Status};
use std::path::Path;

pub fn run(boot: &mut Boot) -> anyhow::Result<()> {
    let mut status = Status {
        wanted: boot
            .config
            .rancher
            .state
            .dev
            .clone()
            .unwrap_or_else(|| state::DEFAULT_DEV.into()),
        ..Status::default()
    };
    let result = mount_state(boot, &mut status);
    if let Err(e) = &result {
        status.error = Some(format!("{e:#}"));
    }
    if !status.mounted {
        status.ram = true;
        say(format!(
            "state: no state partition ({}): running from RAM, nothing persists across reboots",
            status.wanted
        ));
    }
    let written = status.write();
    result.and(written)
}

fn mount_state(boot: &mut Boot, status: &mut Status) -> anyhow::Result<()> {
    let settings = Settings::from_config(&boot.config.rancher.state)?;
    let layers = boot
        .store
        .as_ref()
        .ok_or_else(|| anyhow::anyhow!("no image store (system-images failed)"))
        .and_then(|store| {
            let img = store
                .resolve(tools::IMAGE)
                .map_err(|e| anyhow::anyhow!("image {}: {e}", tools::IMAGE))?;
            Ok(store.lower_dirs(&img)?)
        });
    let tools: Box<dyn tools::FsTools> = match layers {
        Ok(layers) => Box::new(tools::ImageTools::new(layers)),
        Err(e) => {
            say(format!("state: no filesystem tools ({e:#})"));
            Box::new(NoTools)
        }
    };
    let Some(found) = state::locate(&settings, &SysBlock, tools.as_ref(), &mut |n| say(n))? else {
        return Ok(());
    };
    status.device = Some(found.device.display().to_string());
    status.formatted = found.formatted;
    match tools.fsck(&found.device) {
        Ok(f) => {
            match &f {
                tools::Fsck::Clean => {}
                tools::Fsck::Repaired(out) => say(format!(
                    "state: {} had errors, repaired by e2fsck: {}",
                    found.device.display(),
                    out.replace('\n', "; ")
                )),
                tools::Fsck::Uncorrected(code, out) => say(format!(
                    "state: e2fsck left errors on {} (exit {code}), mounting anyway: {}",
                    found.device.display(),
                    out.replace('\n', "; ")
                )),
            }
            status.fsck = Some(state::describe_fsck(&f));
        }
        Err(e) => {
            say(format!("state: fsck skipped: {e}"));
            status.fsck = Some(format!("skipped: {e}"));
        }
    }
    mount::mount_state(&found.device)?;
    status.mounted = true;
    let root = mount::state_root(Path::new(mount::MOUNT_POINT), settings.directory.as_deref())?;
    status.root = Some(root.display().to_string());
    mount::bind_persistent(&root)?;
    status.persistent = mount::PERSISTENT.iter().map(|p| format!("/{p}")).collect();
    tracing::info!(device = %found.device.display(), root = %root.display(), formatted = found.formatted, "state partition mounted");
    super::steps::reload_config(boot);
    Ok(())
}

/// When the e2fsprogs image is missing: nothing can be formatted or checked.
struct NoTools;

impl tools::FsTools for NoTools {
    fn mkfs(&self, _: &Path, _: &str) -> Result<(), tools::ToolError> {
        Err(tools::ToolError::Missing("mke2fs".into()))
    }
    fn fsck(&self, _: &Path) -> Result<tools::Fsck, tools::ToolError> {
        Err(tools::ToolError::Missing("e2fsck".into()))
    }
}
