//! `zos-image`: push directories as an OCI image, pull images into a store, inspect and collect it.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use zos_image_store::push::{push_dirs, ManifestFormat, PushOptions};
use zos_image_store::{Compression, ImageReference, Store};

#[derive(Parser)]
#[command(name = "zos-image", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an image with one layer per DIR (bottom first), push it, print its digest.
    ///
    /// Files named `.wh.<name>` and `.wh..wh..opq` become whiteouts and opaque markers.
    Push {
        /// Layer directories, bottom first.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Registry `host:port` (plain HTTP only for loopback addresses).
        #[arg(long)]
        registry: String,
        /// Repository name.
        #[arg(long)]
        repository: String,
        /// Tag to push the manifest under.
        #[arg(long, default_value = "latest")]
        tag: String,
        /// Layer compression.
        #[arg(long, value_enum, default_value_t = CompressionArg::Gzip)]
        compression: CompressionArg,
        /// Manifest format.
        #[arg(long, value_enum, default_value_t = FormatArg::Oci)]
        format: FormatArg,
    },
    /// Pull an image pinned by digest (`registry/repository@sha256:…`) into a store.
    Pull {
        /// The image reference.
        reference: String,
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// Print what a store holds.
    Stats {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
    },
    /// Remove images unused for the given time and contents no image needs.
    Gc {
        /// Store directory.
        #[arg(long)]
        store: PathBuf,
        /// Keep images used within this many seconds.
        #[arg(long, default_value_t = 86_400)]
        max_unused_secs: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum CompressionArg {
    None,
    Gzip,
    Zstd,
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Oci,
    Docker,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = tokio::runtime::Runtime::new()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(run(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The whole chain, once, on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Push {
            dirs,
            registry,
            repository,
            tag,
            compression,
            format,
        } => {
            let options = PushOptions {
                registry,
                repository,
                tag,
                compression: match compression {
                    CompressionArg::None => Compression::None,
                    CompressionArg::Gzip => Compression::Gzip,
                    CompressionArg::Zstd => Compression::Zstd,
                },
                format: match format {
                    FormatArg::Oci => ManifestFormat::Oci,
                    FormatArg::Docker => ManifestFormat::Docker,
                },
            };
            let pushed = push_dirs(&dirs, &options).await.context("push failed")?;
            println!("{}", pushed.digest());
        }
        Command::Pull { reference, store } => {
            let reference = ImageReference::parse(&reference)?;
            let store = Store::open(&store)?;
            let record = store.pull(&reference).await.context("pull failed")?;
            println!("{}", record.digest);
        }
        Command::Stats { store } => {
            let store = Store::open(&store)?;
            let s = tokio::task::spawn_blocking(move || store.stats()).await??;
            println!(
                "images {}\ncontents {}\nobjects {}\nbytes {}\ndisk_bytes {}",
                s.images, s.contents, s.objects, s.bytes, s.disk_bytes
            );
        }
        Command::Gc {
            store,
            max_unused_secs,
        } => {
            let store = Store::open(&store)?;
            let report =
                tokio::task::spawn_blocking(move || store.gc(Duration::from_secs(max_unused_secs)))
                    .await??;
            println!(
                "images_removed {}\ncontents_removed {}\nobjects_removed {}\nbytes_freed {}\ntemporaries_removed {}",
                report.images_removed.len(),
                report.contents_removed,
                report.objects_removed,
                report.bytes_freed,
                report.temporaries_removed
            );
        }
    }
    Ok(())
}
