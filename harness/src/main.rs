use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "harness", about = "Build and boot RancherOS-rs")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build (or fetch from the cache) the kernel only.
    Kernel,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Kernel => {
            let k = harness::kernel::ensure_kernel()?;
            println!("{}", k.bzimage.display());
        }
    }
    Ok(())
}
