//! `rancherctl state`: what became of the state partition at boot, from the status PID 1 wrote
//! ([`crate::state::STATUS_PATH`]): the device and where it is mounted, or that the system runs
//! from RAM. `--json` prints the status file as it is.

use crate::state::Status;

pub fn main(args: &[String]) -> anyhow::Result<()> {
    let st = Status::read()?;
    if args.iter().any(|a| a == "--json") {
        println!("{}", serde_json::to_string_pretty(&st)?);
        return Ok(());
    }
    print!("{}", render(&st));
    Ok(())
}

fn render(st: &Status) -> String {
    let mut out = String::new();
    if st.ram {
        out.push_str(&format!(
            "state: RAM (no state partition {}; nothing persists across reboots)\n",
            st.wanted
        ));
    } else {
        out.push_str(&format!(
            "state: {} mounted on {}\n",
            st.device.as_deref().unwrap_or("?"),
            st.root.as_deref().unwrap_or("?")
        ));
        out.push_str(&format!("formatted at this boot: {}\n", st.formatted));
        out.push_str(&format!("fsck: {}\n", st.fsck.as_deref().unwrap_or("-")));
        out.push_str(&format!("persistent: {}\n", st.persistent.join(" ")));
    }
    if let Some(e) = &st.error {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_and_mounted_read_plainly() {
        let ram = Status {
            wanted: "LABEL=RANCHER_STATE".into(),
            ram: true,
            ..Status::default()
        };
        assert_eq!(
            render(&ram),
            "state: RAM (no state partition LABEL=RANCHER_STATE; nothing persists across reboots)\n"
        );
        let disk = Status {
            wanted: "LABEL=RANCHER_STATE".into(),
            device: Some("/dev/vda".into()),
            mounted: true,
            fsck: Some("clean".into()),
            root: Some("/mnt/state".into()),
            persistent: vec!["/home".into(), "/opt".into()],
            ..Status::default()
        };
        assert!(render(&disk).starts_with("state: /dev/vda mounted on /mnt/state\n"));
        assert!(render(&disk).contains("persistent: /home /opt\n"));
    }
}
