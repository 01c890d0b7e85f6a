//! Building an OCI image from directories (one layer each) and pushing it to a registry with the
//! distribution API's monolithic uploads. What `zos-image push` (later `zosctl image push`) does.
//!
//! Layers are reproducible: entries sorted by name, modification times zero, mode and owner kept,
//! files with several links in the directory stored once and hardlinked. A file named
//! `.wh.<name>` or `.wh..wh..opq` in a directory becomes a whiteout or opaque marker, which is how
//! a layer built from a directory deletes what lower layers put there.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Serialize;

use crate::digest::{Digest, DigestWriter};
use crate::fsutil::{FsError, IoContext};
pub use crate::media::Compression;
use crate::media::{
    DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR, OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD,
};
use crate::reference::ImageReference;
use crate::registry::{
    oci_architecture, Descriptor, RegistryClient, RegistryError, DOCKER_MANIFEST, OCI_MANIFEST,
};

const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The manifest and media types to push with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ManifestFormat {
    /// OCI image manifest and media types.
    #[default]
    Oci,
    /// Docker image manifest v2, schema 2 (no zstd).
    Docker,
}

/// Where and how to push.
#[derive(Debug, Clone)]
pub struct PushOptions {
    /// `host[:port]`; plain HTTP for loopback registries, HTTPS otherwise.
    pub registry: String,
    /// Repository name.
    pub repository: String,
    /// Tag the manifest is pushed under.
    pub tag: String,
    /// Layer compression.
    pub compression: Compression,
    /// Manifest format.
    pub format: ManifestFormat,
}

impl PushOptions {
    /// Options for `registry/repository:latest`, gzip layers, OCI manifest.
    pub fn new(registry: impl Into<String>, repository: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            tag: "latest".to_owned(),
            compression: Compression::Gzip,
            format: ManifestFormat::Oci,
        }
    }
}

/// A layer built from a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuiltLayer {
    /// The blob: media type, digest and compressed size.
    pub blob: Descriptor,
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Bytes of regular file content in the layer (hardlinks counted once).
    pub file_bytes: u64,
}

/// A pushed image.
#[derive(Debug, Clone)]
pub struct PushedImage {
    /// The image, pinned by its manifest digest.
    pub reference: ImageReference,
    /// Its layers, bottom first.
    pub layers: Vec<BuiltLayer>,
    /// The config blob.
    pub config: Descriptor,
    /// Length of the manifest.
    pub manifest_size: u64,
    /// Bytes sent: blobs the registry did not have yet, and the manifest.
    pub uploaded_bytes: u64,
}

impl PushedImage {
    /// The manifest digest.
    pub fn digest(&self) -> &Digest {
        self.reference.digest()
    }

    /// Bytes the registry holds for this image: layers, config and manifest.
    pub fn blob_bytes(&self) -> u64 {
        self.layers.iter().map(|l| l.blob.size).sum::<u64>() + self.config.size + self.manifest_size
    }
}

/// Errors building or pushing an image.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// Nothing to push.
    #[error("an image needs at least one layer directory")]
    NoLayers,
    /// Registry, repository or tag do not form a valid reference.
    #[error("invalid image name {0:?}")]
    InvalidName(String),
    /// Docker manifests have no zstd layer type.
    #[error("docker manifests cannot carry zstd layers")]
    ZstdInDocker,
    /// A source file could not be read.
    #[error("cannot read {}", path.display())]
    Source {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A socket (or other type a tar cannot hold) in a layer directory.
    #[error("{} is a socket, which a layer cannot hold", .0.display())]
    UnsupportedFile(PathBuf),
    /// A non-UTF-8 name, which image records cannot represent.
    #[error("{} has a name that is not UTF-8", .0.display())]
    NonUtf8Name(PathBuf),
    /// A file changed length while it was being archived.
    #[error("{} changed while it was being read", .0.display())]
    Changed(PathBuf),
    /// Writing the layer failed.
    #[error(transparent)]
    Fs(#[from] FsError),
    /// The registry refused or failed.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// The layer-building task panicked.
    #[error("layer build task failed")]
    Task(#[source] tokio::task::JoinError),
}

enum Encoder<W: Write> {
    Plain(W),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    fn new(inner: W, compression: Compression) -> io::Result<Self> {
        Ok(match compression {
            Compression::None => Self::Plain(inner),
            Compression::Gzip => Self::Gzip(flate2::write::GzEncoder::new(
                inner,
                flate2::Compression::default(),
            )),
            Compression::Zstd => Self::Zstd(zstd::stream::write::Encoder::new(inner, 3)?),
        })
    }

    fn finish(self) -> io::Result<W> {
        match self {
            Self::Plain(w) => Ok(w),
            Self::Gzip(e) => e.finish(),
            Self::Zstd(e) => e.finish(),
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Plain(w) => w.write(buf),
            Self::Gzip(e) => e.write(buf),
            Self::Zstd(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Plain(w) => w.flush(),
            Self::Gzip(e) => e.flush(),
            Self::Zstd(e) => e.flush(),
        }
    }
}

fn layer_media_type(
    format: ManifestFormat,
    compression: Compression,
) -> Result<&'static str, PushError> {
    Ok(match (format, compression) {
        (ManifestFormat::Oci, Compression::None) => OCI_LAYER_TAR,
        (ManifestFormat::Oci, Compression::Gzip) => OCI_LAYER_GZIP,
        (ManifestFormat::Oci, Compression::Zstd) => OCI_LAYER_ZSTD,
        (ManifestFormat::Docker, Compression::None) => DOCKER_LAYER_TAR,
        (ManifestFormat::Docker, Compression::Gzip) => DOCKER_LAYER_GZIP,
        (ManifestFormat::Docker, Compression::Zstd) => return Err(PushError::ZstdInDocker),
    })
}

/// Archives `src` into a layer blob at `out`.
pub fn build_layer(
    src: &Path,
    compression: Compression,
    media_type: &str,
    out: &Path,
) -> Result<BuiltLayer, PushError> {
    let file = File::create(out).fs("create", out)?;
    let compressed = DigestWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let encoder = Encoder::new(compressed, compression).fs("write", out)?;
    let mut builder = tar::Builder::new(DigestWriter::new(encoder));
    let mut archiver = Archiver {
        builder: &mut builder,
        links: HashMap::new(),
        file_bytes: 0,
    };
    archiver.dir(src, "")?;
    let file_bytes = archiver.file_bytes;
    let (encoder, diff_id, _) = builder.into_inner().fs("write", out)?.finish();
    let (buffered, digest, size) = encoder.finish().fs("write", out)?.finish();
    buffered
        .into_inner()
        .map_err(|e| FsError::new("write", out, e.into_error()))?
        .sync_all()
        .fs("sync", out)?;
    Ok(BuiltLayer {
        blob: Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
        },
        diff_id,
        file_bytes,
    })
}

struct Archiver<'a, W: Write> {
    builder: &'a mut tar::Builder<W>,
    /// First path of each multiply-linked file, by (device, inode).
    links: HashMap<(u64, u64), String>,
    file_bytes: u64,
}

/// Counts bytes read, to notice a file that shrank while being archived.
struct Counted<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}

impl<W: Write> Archiver<'_, W> {
    fn dir(&mut self, abs: &Path, rel: &str) -> Result<(), PushError> {
        let source = |source| PushError::Source {
            path: abs.to_owned(),
            source,
        };
        let mut entries: Vec<_> = fs::read_dir(abs)
            .map_err(source)?
            .collect::<Result<_, _>>()
            .map_err(source)?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let path = entry.path();
            let name = entry
                .file_name()
                .into_string()
                .map_err(|_| PushError::NonUtf8Name(path.clone()))?;
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let md = fs::symlink_metadata(&path).map_err(|source| PushError::Source {
                path: path.clone(),
                source,
            })?;
            self.entry(&path, &child, &md)?;
            if md.is_dir() {
                self.dir(&path, &child)?;
            }
        }
        Ok(())
    }

    fn entry(&mut self, abs: &Path, rel: &str, md: &fs::Metadata) -> Result<(), PushError> {
        let source = |source| PushError::Source {
            path: abs.to_owned(),
            source,
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        h.set_uid(md.uid().into());
        h.set_gid(md.gid().into());
        h.set_mtime(0);
        h.set_size(0);
        let ft = md.file_type();
        let empty = io::empty();
        let written = if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            self.builder.append_data(&mut h, format!("{rel}/"), empty)
        } else if ft.is_file() {
            if md.nlink() > 1 {
                if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                    h.set_entry_type(tar::EntryType::Link);
                    let first = first.clone();
                    return self.builder.append_link(&mut h, rel, first).map_err(source);
                }
                self.links.insert((md.dev(), md.ino()), rel.to_owned());
            }
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(md.len());
            let file = File::open(abs).map_err(source)?;
            let mut counted = Counted {
                inner: file.take(md.len()),
                n: 0,
            };
            self.builder
                .append_data(&mut h, rel, &mut counted)
                .map_err(source)?;
            if counted.n != md.len() {
                return Err(PushError::Changed(abs.to_owned()));
            }
            self.file_bytes += md.len();
            Ok(())
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target = fs::read_link(abs).map_err(source)?;
            self.builder.append_link(&mut h, rel, target)
        } else if ft.is_char_device() || ft.is_block_device() {
            h.set_entry_type(if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            });
            h.set_device_major(rustix::fs::major(md.rdev()))
                .map_err(source)?;
            h.set_device_minor(rustix::fs::minor(md.rdev()))
                .map_err(source)?;
            self.builder.append_data(&mut h, rel, empty)
        } else if ft.is_fifo() {
            h.set_entry_type(tar::EntryType::Fifo);
            self.builder.append_data(&mut h, rel, empty)
        } else {
            return Err(PushError::UnsupportedFile(abs.to_owned()));
        };
        written.map_err(source)
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ManifestOut<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: &'a Descriptor,
    layers: Vec<&'a Descriptor>,
}

/// Builds an image with one layer per directory (bottom first), pushes its blobs and manifest,
/// and returns it pinned by digest.
pub async fn push_dirs(dirs: &[PathBuf], options: &PushOptions) -> Result<PushedImage, PushError> {
    push_dirs_with(&RegistryClient::new(), dirs, options).await
}

/// [`push_dirs`] with a given client.
pub async fn push_dirs_with(
    registry: &RegistryClient,
    dirs: &[PathBuf],
    options: &PushOptions,
) -> Result<PushedImage, PushError> {
    if dirs.is_empty() {
        return Err(PushError::NoLayers);
    }
    let name = format!(
        "{}/{}:{}",
        options.registry, options.repository, options.tag
    );
    match oci_client::Reference::from_str(&name) {
        Ok(r) if r.registry() == options.registry && r.repository() == options.repository => {}
        _ => return Err(PushError::InvalidName(name)),
    }
    let media_type = layer_media_type(options.format, options.compression)?;
    let work = tempfile::Builder::new()
        .prefix("zos-image-push-")
        .tempdir()
        .fs("create temporary directory in", &std::env::temp_dir())?;

    let (sources, work_path, compression) =
        (dirs.to_vec(), work.path().to_owned(), options.compression);
    let layers = tokio::task::spawn_blocking(move || {
        sources
            .iter()
            .enumerate()
            .map(|(i, dir)| {
                build_layer(
                    dir,
                    compression,
                    media_type,
                    &work_path.join(format!("layer-{i}")),
                )
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(PushError::Task)??;

    let config_json = serde_json::json!({
        "architecture": oci_architecture(),
        "os": "linux",
        "config": {},
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.as_str()).collect::<Vec<_>>(),
        },
        "history": layers.iter().map(|_| serde_json::json!({"created_by": "zos-image push"})).collect::<Vec<_>>(),
    });
    let config_bytes =
        serde_json::to_vec(&config_json).expect("a JSON value built from strings serializes; qed");
    let (config_type, manifest_type) = match options.format {
        ManifestFormat::Oci => (OCI_CONFIG, OCI_MANIFEST),
        ManifestFormat::Docker => (DOCKER_CONFIG, DOCKER_MANIFEST),
    };
    let config = Descriptor {
        media_type: config_type.to_owned(),
        digest: Digest::of(&config_bytes),
        size: config_bytes.len() as u64,
    };
    let config_path = work.path().join("config");
    fs::write(&config_path, &config_bytes).fs("write", &config_path)?;

    let mut uploaded_bytes = 0;
    for (i, layer) in layers.iter().enumerate() {
        let path = work.path().join(format!("layer-{i}"));
        if registry
            .push_blob_file(&options.registry, &options.repository, &layer.blob, &path)
            .await?
        {
            uploaded_bytes += layer.blob.size;
        }
    }
    if registry
        .push_blob_file(
            &options.registry,
            &options.repository,
            &config,
            &config_path,
        )
        .await?
    {
        uploaded_bytes += config.size;
    }

    let manifest = serde_json::to_vec(&ManifestOut {
        schema_version: 2,
        media_type: manifest_type,
        config: &config,
        layers: layers.iter().map(|l| &l.blob).collect(),
    })
    .expect("manifests are plain structs; qed");
    let manifest_size = manifest.len() as u64;
    let digest = registry
        .push_manifest(
            &options.registry,
            &options.repository,
            &options.tag,
            manifest_type,
            manifest,
        )
        .await?;
    uploaded_bytes += manifest_size;

    Ok(PushedImage {
        reference: ImageReference::new(
            options.registry.clone(),
            options.repository.clone(),
            digest,
        ),
        layers,
        config,
        manifest_size,
        uploaded_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_format_refuses_zstd() {
        assert!(matches!(
            layer_media_type(ManifestFormat::Docker, Compression::Zstd),
            Err(PushError::ZstdInDocker)
        ));
        assert_eq!(
            layer_media_type(ManifestFormat::Docker, Compression::Gzip).unwrap(),
            DOCKER_LAYER_GZIP
        );
    }
}
