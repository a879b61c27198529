//! `ros cloud-init execute`: `runcmd` and a `#!` user-data script, run once the console is up
//! (the `cloud-init-execute` system service, ordered after `console`), in the host's
//! namespaces with `/home`, `/opt` and the OS config directory of the host. Each command's
//! exit status is logged; a failing command does not stop the next one.

use crate::config::runcmd::Command;
use std::path::Path;
use std::process::Stdio;

/// Run one command; a line for the log.
pub fn run_one(label: &str, cmd: &Command) -> String {
    let mut c = match cmd {
        Command::Shell(line) => {
            let mut c = std::process::Command::new("/bin/sh");
            c.arg("-c").arg(line);
            c
        }
        Command::Argv(argv) if argv.is_empty() => return format!("{label}: empty, skipped"),
        Command::Argv(argv) => {
            let mut c = std::process::Command::new(&argv[0]);
            c.args(&argv[1..]);
            c
        }
    };
    c.stdin(Stdio::null());
    let shown = match cmd {
        Command::Shell(l) => l.clone(),
        Command::Argv(a) => a.join(" "),
    };
    match c.status() {
        Ok(s) => match s.code() {
            Some(code) => format!("{label}: `{shown}`: exit {code}"),
            None => format!("{label}: `{shown}`: killed by a signal"),
        },
        Err(e) => format!("{label}: `{shown}`: {e}"),
    }
}

/// Every `runcmd` entry in order, then the script at `script` if there is one.
pub fn run(runcmd: &[Command], script: &Path) -> Vec<String> {
    let mut notes: Vec<String> = runcmd
        .iter()
        .enumerate()
        .map(|(i, c)| run_one(&format!("runcmd[{i}]"), c))
        .collect();
    if script.exists() {
        notes.push(run_one(
            "user-data script",
            &Command::Argv(vec![script.display().to_string()]),
        ));
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_runs_and_failures_do_not_stop_the_rest() {
        let d = tempfile::tempdir().unwrap();
        let mark = d.path().join("mark");
        let cmds = vec![
            Command::Shell(format!("echo a > {}", mark.display())),
            Command::Shell("exit 3".into()),
            Command::Argv(vec![]),
            Command::Argv(vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("echo b >> {}", mark.display()),
            ]),
        ];
        let notes = run(&cmds, &d.path().join("no-script"));
        assert_eq!(std::fs::read_to_string(&mark).unwrap(), "a\nb\n");
        assert!(notes[1].ends_with("`exit 3`: exit 3"), "{notes:?}");
        assert_eq!(notes[2], "runcmd[2]: empty, skipped");
        assert_eq!(notes.len(), 4);
    }
}
