//! `rancherctl tls gen [--server-name NAME]…`: a new CA, server and client certificate for the
//! user engine's remote API (`rancher.docker.tls`), in /var/lib/docker/tls (the console binds
//! that directory, and only that one, of the engine's store). As RancherOS's `ros tls gen`.
//! The engine reads its certificates at start: the new ones are in force after
//! `sudo system-docker restart docker` (or the next boot), and every client needs the new
//! bundle, since the CA is new too.

use crate::dockerd::remote::certs::{self, Layout};

const USAGE: &str = "usage: rancherctl tls gen [--server-name NAME]… [--dir DIR]

Makes a new CA, a server certificate (for this machine's hostname, localhost, 127.0.0.1, its
IPv4 addresses and every NAME) and a client certificate, in DIR (/var/lib/docker/tls).";

pub fn main(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("gen") => gen(&args[1..]),
        Some("-h" | "--help" | "help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown verb {other:?}\n\n{USAGE}"),
    }
}

fn gen(args: &[String]) -> anyhow::Result<()> {
    let mut extra = Vec::new();
    let mut dir = certs::TLS_DIR.to_string();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || {
            it.next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--server-name" | "--hostname" => extra.push(value()?),
            "--dir" => dir = value()?,
            other => anyhow::bail!("unknown argument {other:?}\n\n{USAGE}"),
        }
    }
    let names = certs::machine_names(&extra);
    let set = certs::generate(&names)?;
    let layout = Layout::new(dir);
    layout.write(&set)?;
    println!("server certificate for: {}", names.join(", "));
    println!("written in {}", layout.dir.display());
    println!(
        "client bundle (ca.pem, cert.pem, key.pem): {}",
        layout.client_dir().display()
    );
    println!(
        "the user engine uses them from its next start: sudo system-docker restart docker \
         (with rancher.docker.tls: true)"
    );
    Ok(())
}
