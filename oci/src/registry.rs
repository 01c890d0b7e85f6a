//! The OCI distribution API: manifests and blobs checked against their digests, and the
//! monolithic uploads `push` needs.
//!
//! Pulls are plain `GET`s read chunk by chunk, so that a manifest is capped while it arrives, a
//! blob cannot run past its descriptor, and every wait (for an answer, for the next chunk) has the
//! stall timeout of [`Limits`]. They are anonymous; a registry that answers 401 gets the
//! bearer-token dance registries such as Docker Hub require (`oci-client`'s, whose client also
//! does the uploads). Loopback registries are spoken to over plain HTTP, every other one over
//! HTTPS. Foreign layer URLs in manifests are never followed: blobs come from the registry named
//! by the reference.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::TryStreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::digest::{Digest, DigestHasher};
use crate::limits::Limits;
use crate::reference::{is_loopback_registry, ImageReference};

/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// The `Accept` header of manifest requests.
const ACCEPTED_MANIFESTS: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// A content descriptor from a manifest (other fields, `urls` included, are ignored).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its length in bytes.
    pub size: u64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ManifestDoc {
    schema_version: u32,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<IndexEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry {
    digest: Digest,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// An image manifest, checked against its digest.
#[derive(Debug, Clone)]
pub struct ImageManifest {
    /// Digest of this image manifest (differs from the pinned one when that is an index).
    pub digest: Digest,
    /// Its media type (OCI or Docker).
    pub media_type: String,
    /// The image's config blob.
    pub config: Descriptor,
    /// Its layers, bottom first.
    pub layers: Vec<Descriptor>,
}

/// Errors talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The HTTP client could not be built.
    #[error("cannot create a registry client for {registry}")]
    Client {
        /// Registry.
        registry: String,
        /// The error.
        #[source]
        source: OciDistributionError,
    },
    /// The HTTP client for pulls could not be built.
    #[error("cannot create a registry client for {registry}")]
    HttpClient {
        /// Registry.
        registry: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// No connection to the registry (name resolution, refused, TLS handshake).
    #[error("cannot reach the registry for {what}")]
    Unreachable {
        /// What was requested.
        what: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// A pull request failed after connecting (connection reset, protocol error).
    #[error("request for {what} failed")]
    Http {
        /// What was requested.
        what: String,
        /// The error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry does not have it (HTTP 404).
    #[error("the registry has no {what}")]
    NotFound {
        /// What was requested.
        what: String,
    },
    /// The registry refuses anonymous pulls of it (HTTP 401 or 403, after the token dance).
    #[error("the registry refuses {what} (HTTP {status})")]
    Unauthorized {
        /// What was requested.
        what: String,
        /// HTTP status.
        status: u16,
    },
    /// The registry answered with another error status.
    #[error("the registry answered HTTP {status} for {what}")]
    Status {
        /// What was requested.
        what: String,
        /// HTTP status.
        status: u16,
    },
    /// The bearer-token dance failed.
    #[error("cannot get a pull token for {what}")]
    Token {
        /// What was requested.
        what: String,
        /// The error.
        #[source]
        source: OciDistributionError,
    },
    /// The registry sent nothing for longer than the stall timeout.
    #[error("the registry sent nothing for {after:?} while serving {what}")]
    Stalled {
        /// What was requested.
        what: String,
        /// The stall timeout.
        after: Duration,
    },
    /// An upload failed (network, HTTP status, registry error).
    #[error("registry request for {what} failed")]
    Request {
        /// What was requested.
        what: String,
        /// The error.
        #[source]
        source: OciDistributionError,
    },
    /// The manifest served is not the one pinned.
    #[error("manifest of {reference} has digest {actual}, not the pinned {expected}")]
    ManifestDigestMismatch {
        /// The reference pulled.
        reference: String,
        /// Pinned digest.
        expected: Digest,
        /// Digest of what was served.
        actual: String,
    },
    /// A blob's content does not match its digest.
    #[error("blob {expected} has digest {actual}")]
    BlobDigestMismatch {
        /// Digest in the manifest.
        expected: Digest,
        /// Digest of what was served.
        actual: String,
    },
    /// A blob's length does not match its descriptor.
    #[error("blob {digest} is {actual} bytes long, its descriptor says {expected}")]
    BlobSizeMismatch {
        /// Blob digest.
        digest: Digest,
        /// Size in the descriptor.
        expected: u64,
        /// Size served (or announced).
        actual: u64,
    },
    /// The manifest is not valid JSON of the expected shape.
    #[error("manifest {digest} is invalid")]
    InvalidManifest {
        /// Manifest digest.
        digest: Digest,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// A manifest larger than [`Limits::manifest_bytes`] (announced, or as it arrived).
    #[error("manifest {digest} is larger than the {limit} bytes accepted")]
    ManifestTooLarge {
        /// Manifest digest.
        digest: Digest,
        /// The limit.
        limit: u64,
    },
    /// A manifest of a type this store cannot run (schema 1, artifacts, nested indexes).
    #[error("manifest {digest} has unsupported type {media_type:?}")]
    UnsupportedManifest {
        /// Manifest digest.
        digest: Digest,
        /// Its media type (or schema version).
        media_type: String,
    },
    /// An image index without an image for this machine.
    #[error("image index {digest} has no image for {platform}")]
    NoImageForPlatform {
        /// Index digest.
        digest: Digest,
        /// `os/architecture` looked for.
        platform: String,
    },
    /// The local file a blob is written to failed.
    #[error("cannot write blob {digest}")]
    Write {
        /// Blob digest.
        digest: Digest,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// The OCI `architecture` of this machine.
pub fn oci_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// One registry: the HTTP client pulls go through, and `oci-client`'s for tokens and uploads.
#[derive(Clone)]
struct Endpoint {
    oci: oci_client::Client,
    http: reqwest::Client,
    scheme: &'static str,
}

/// A client for OCI registries; cheap to clone, keeps one connection pool per registry and the
/// pull tokens it was given.
#[derive(Clone)]
pub struct RegistryClient {
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    /// Bearer tokens for pulls, by `registry/repository`.
    tokens: Arc<Mutex<HashMap<String, String>>>,
}

impl Default for RegistryClient {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient").finish_non_exhaustive()
    }
}

/// `fut`, or [`RegistryError::Stalled`] when it takes longer than `stall`.
async fn within<T>(
    stall: Duration,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> Result<T, RegistryError> {
    tokio::time::timeout(stall, fut)
        .await
        .map_err(|_| RegistryError::Stalled {
            what: what.to_owned(),
            after: stall,
        })
}

fn http_error(what: &str, source: reqwest::Error) -> RegistryError {
    if source.is_connect() {
        RegistryError::Unreachable {
            what: what.to_owned(),
            source,
        }
    } else {
        RegistryError::Http {
            what: what.to_owned(),
            source,
        }
    }
}

/// The next chunk of a body, waiting at most `stall` for it.
async fn next_chunk(
    response: &mut reqwest::Response,
    what: &str,
    stall: Duration,
) -> Result<Option<impl AsRef<[u8]>>, RegistryError> {
    within(stall, what, response.chunk())
        .await?
        .map_err(|e| http_error(what, e))
}

impl RegistryClient {
    /// A client. Installs rustls' `ring` provider as the process default unless one is already
    /// installed (the HTTP client needs one even for plain HTTP).
    pub fn new() -> Self {
        // Fails only when another provider is already installed, which is then used.
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            endpoints: Arc::default(),
            tokens: Arc::default(),
        }
    }

    fn endpoint(&self, registry: &str) -> Result<Endpoint, RegistryError> {
        let mut endpoints = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = endpoints.get(registry) {
            return Ok(e.clone());
        }
        let loopback = is_loopback_registry(registry);
        let config = ClientConfig {
            protocol: if loopback {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            use_monolithic_push: true,
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(10)),
            read_timeout: Some(Duration::from_secs(60)),
            ..ClientConfig::default()
        };
        let oci = oci_client::Client::try_from(config).map_err(|source| RegistryError::Client {
            registry: registry.to_owned(),
            source,
        })?;
        // No overall timeout: pulls time each wait themselves (`Limits::stall`) and the whole
        // pull (`Limits::deadline`).
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("zos-image-store/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RegistryError::HttpClient {
                registry: registry.to_owned(),
                source,
            })?;
        let endpoint = Endpoint {
            oci,
            http,
            scheme: if loopback { "http" } else { "https" },
        };
        endpoints.insert(registry.to_owned(), endpoint.clone());
        Ok(endpoint)
    }

    fn client(&self, registry: &str) -> Result<oci_client::Client, RegistryError> {
        Ok(self.endpoint(registry)?.oci)
    }

    /// `GET /v2/<repository>/<path>`: a success response, its body unread. A 401 is answered
    /// once with the token dance.
    async fn get(
        &self,
        reference: &ImageReference,
        path: &str,
        accept: Option<&str>,
        what: &str,
        stall: Duration,
    ) -> Result<reqwest::Response, RegistryError> {
        let endpoint = self.endpoint(reference.registry())?;
        let oci_ref = reference.to_oci();
        let (host, repository) = (oci_ref.resolve_registry(), oci_ref.repository());
        let scope = format!("{host}/{repository}");
        let url = format!("{}://{host}/v2/{repository}/{path}", endpoint.scheme);
        let mut token_tried = false;
        loop {
            let mut request = endpoint.http.get(&url);
            if let Some(accept) = accept {
                request = request.header(http::header::ACCEPT, accept);
            }
            let token = self
                .tokens
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&scope)
                .cloned();
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            let response = within(stall, what, request.send())
                .await?
                .map_err(|e| http_error(what, e))?;
            let status = response.status();
            if status.is_success() {
                return Ok(response);
            }
            let refused = |status: http::StatusCode| RegistryError::Unauthorized {
                what: what.to_owned(),
                status: status.as_u16(),
            };
            match status {
                http::StatusCode::UNAUTHORIZED if !token_tried => {
                    token_tried = true;
                    let token = within(
                        stall,
                        what,
                        endpoint.oci.auth(
                            &oci_ref,
                            &RegistryAuth::Anonymous,
                            RegistryOperation::Pull,
                        ),
                    )
                    .await?
                    .map_err(|source| RegistryError::Token {
                        what: what.to_owned(),
                        source,
                    })?
                    .ok_or_else(|| refused(status))?;
                    self.tokens
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(scope.clone(), token);
                }
                http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN => {
                    return Err(refused(status))
                }
                http::StatusCode::NOT_FOUND => {
                    return Err(RegistryError::NotFound {
                        what: what.to_owned(),
                    })
                }
                _ => {
                    return Err(RegistryError::Status {
                        what: what.to_owned(),
                        status: status.as_u16(),
                    })
                }
            }
        }
    }

    /// Fetches the manifest `reference` pins, checked against the pinned digest; an image index
    /// is resolved to the image for this machine's platform, checked against the index's entry.
    pub async fn fetch_image_manifest(
        &self,
        reference: &ImageReference,
        limits: &Limits,
    ) -> Result<ImageManifest, RegistryError> {
        let (doc, media_type) = self.fetch_manifest(reference, limits).await?;
        if media_type != OCI_INDEX && media_type != DOCKER_MANIFEST_LIST {
            return image_manifest(reference.digest(), doc, media_type);
        }
        let arch = oci_architecture();
        let entry = doc
            .manifests
            .unwrap_or_default()
            .into_iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == "linux" && p.architecture == arch)
            })
            .ok_or_else(|| RegistryError::NoImageForPlatform {
                digest: reference.digest().clone(),
                platform: format!("linux/{arch}"),
            })?;
        let platform_ref = reference.with_digest(entry.digest);
        let (doc, media_type) = self.fetch_manifest(&platform_ref, limits).await?;
        image_manifest(platform_ref.digest(), doc, media_type)
    }

    async fn fetch_manifest(
        &self,
        reference: &ImageReference,
        limits: &Limits,
    ) -> Result<(ManifestDoc, String), RegistryError> {
        let expected = reference.digest();
        let what = format!("manifest {reference}");
        let mut response = self
            .get(
                reference,
                &format!("manifests/{expected}"),
                Some(ACCEPTED_MANIFESTS),
                &what,
                limits.stall,
            )
            .await?;
        let too_large = || RegistryError::ManifestTooLarge {
            digest: expected.clone(),
            limit: limits.manifest_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > limits.manifest_bytes)
        {
            return Err(too_large());
        }
        let mut body = Vec::new();
        while let Some(chunk) = next_chunk(&mut response, &what, limits.stall).await? {
            let chunk = chunk.as_ref();
            if (body.len() + chunk.len()) as u64 > limits.manifest_bytes {
                return Err(too_large());
            }
            body.extend_from_slice(chunk);
        }
        // The pin is what the contract trusts.
        let actual = Digest::of(&body);
        if actual != *expected {
            return Err(RegistryError::ManifestDigestMismatch {
                reference: reference.to_string(),
                expected: expected.clone(),
                actual: actual.to_string(),
            });
        }
        let doc: ManifestDoc =
            serde_json::from_slice(&body).map_err(|source| RegistryError::InvalidManifest {
                digest: expected.clone(),
                source,
            })?;
        if doc.schema_version != 2 {
            return Err(RegistryError::UnsupportedManifest {
                digest: expected.clone(),
                media_type: format!("schemaVersion {}", doc.schema_version),
            });
        }
        let media_type = match &doc.media_type {
            Some(m) => m.clone(),
            // The media type field is optional in OCI manifests and indexes.
            None if doc.manifests.is_some() => OCI_INDEX.to_owned(),
            None => OCI_MANIFEST.to_owned(),
        };
        Ok((doc, media_type))
    }

    /// Streams a blob into `out`, checking its length as it arrives and its digest at the end.
    pub async fn fetch_blob<W: AsyncWrite + Unpin>(
        &self,
        reference: &ImageReference,
        blob: &Descriptor,
        out: &mut W,
        stall: Duration,
    ) -> Result<(), RegistryError> {
        let digest = &blob.digest;
        let what = format!("blob {digest} of {reference}");
        // A digest, not the descriptor: a descriptor's foreign `urls` are not to be followed.
        let mut response = self
            .get(reference, &format!("blobs/{digest}"), None, &what, stall)
            .await?;
        let size_mismatch = |actual| RegistryError::BlobSizeMismatch {
            digest: digest.clone(),
            expected: blob.size,
            actual,
        };
        if let Some(announced) = response.content_length() {
            if announced != blob.size {
                return Err(size_mismatch(announced));
            }
        }
        let mut hasher = DigestHasher::default();
        let mut received = 0u64;
        while let Some(chunk) = next_chunk(&mut response, &what, stall).await? {
            let chunk = chunk.as_ref();
            received += chunk.len() as u64;
            if received > blob.size {
                return Err(size_mismatch(received));
            }
            hasher.update(chunk);
            out.write_all(chunk)
                .await
                .map_err(|source| RegistryError::Write {
                    digest: digest.clone(),
                    source,
                })?;
        }
        if received != blob.size {
            return Err(size_mismatch(received));
        }
        let actual = hasher.finish();
        if actual != *digest {
            return Err(RegistryError::BlobDigestMismatch {
                expected: digest.clone(),
                actual: actual.to_string(),
            });
        }
        out.flush().await.map_err(|source| RegistryError::Write {
            digest: digest.clone(),
            source,
        })
    }

    fn push_reference(registry: &str, repository: &str, tag: &str) -> oci_client::Reference {
        oci_client::Reference::with_tag(registry.to_owned(), repository.to_owned(), tag.to_owned())
    }

    /// Uploads a blob from a file in one `POST` + `PUT`, unless the repository has it already.
    /// Returns whether it was uploaded.
    pub async fn push_blob_file(
        &self,
        registry: &str,
        repository: &str,
        blob: &Descriptor,
        path: &Path,
    ) -> Result<bool, RegistryError> {
        let client = self.client(registry)?;
        let target = Self::push_reference(registry, repository, "latest");
        let request_err = |source| RegistryError::Request {
            what: format!("upload of blob {} to {registry}/{repository}", blob.digest),
            source,
        };
        client
            .store_auth_if_needed(target.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        if client
            .blob_exists(&target, blob.digest.as_str())
            .await
            .map_err(request_err)?
        {
            return Ok(false);
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|source| RegistryError::Write {
                digest: blob.digest.clone(),
                source,
            })?;
        let body = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map_err(OciDistributionError::from);
        client
            .push_blob_stream(&target, body, blob.digest.as_str(), Some(blob.size))
            .await
            .map_err(request_err)?;
        Ok(true)
    }

    /// Uploads a manifest under `tag`; returns its digest.
    pub async fn push_manifest(
        &self,
        registry: &str,
        repository: &str,
        tag: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<Digest, RegistryError> {
        let client = self.client(registry)?;
        let target = Self::push_reference(registry, repository, tag);
        let digest = Digest::of(&body);
        let content_type = http_header_value(media_type);
        client
            .store_auth_if_needed(target.resolve_registry(), &RegistryAuth::Anonymous)
            .await;
        client
            .push_manifest_raw(&target, body, content_type)
            .await
            .map_err(|source| RegistryError::Request {
                what: format!("upload of manifest {digest} to {registry}/{repository}:{tag}"),
                source,
            })?;
        Ok(digest)
    }
}

fn http_header_value(media_type: &str) -> http::HeaderValue {
    http::HeaderValue::from_str(media_type)
        .expect("media types are the crate's own ASCII constants; qed")
}

fn image_manifest(
    digest: &Digest,
    doc: ManifestDoc,
    media_type: String,
) -> Result<ImageManifest, RegistryError> {
    let unsupported = |media_type: String| RegistryError::UnsupportedManifest {
        digest: digest.clone(),
        media_type,
    };
    if media_type != OCI_MANIFEST && media_type != DOCKER_MANIFEST {
        return Err(unsupported(media_type));
    }
    match (doc.config, doc.layers) {
        (Some(config), Some(layers)) => Ok(ImageManifest {
            digest: digest.clone(),
            media_type,
            config,
            layers,
        }),
        _ => Err(unsupported(format!(
            "{media_type} without config or layers"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        Digest::of(&[n])
    }

    #[test]
    fn image_manifest_requires_image_media_type_and_parts() {
        let body = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"{}","digest":"{}","size":3,"urls":["http://example.com/x"]}}]}}"#,
            digest(1),
            crate::media::OCI_LAYER_GZIP,
            digest(2)
        );
        let doc: ManifestDoc = serde_json::from_str(&body).unwrap();
        let m = image_manifest(&digest(0), doc, OCI_MANIFEST.into()).unwrap();
        assert_eq!(m.layers[0].digest, digest(2));
        assert_eq!(m.config.size, 2);

        let doc: ManifestDoc = serde_json::from_str(&body).unwrap();
        assert!(matches!(
            image_manifest(&digest(0), doc, "application/vnd.example+json".into()),
            Err(RegistryError::UnsupportedManifest { .. })
        ));
        let doc: ManifestDoc = serde_json::from_str(r#"{"schemaVersion":2}"#).unwrap();
        assert!(image_manifest(&digest(0), doc, OCI_MANIFEST.into()).is_err());
    }

    #[test]
    fn manifest_requests_accept_every_manifest_type_read() {
        let accepted: Vec<&str> = ACCEPTED_MANIFESTS.split(", ").collect();
        assert_eq!(
            accepted,
            [
                OCI_MANIFEST,
                DOCKER_MANIFEST,
                OCI_INDEX,
                DOCKER_MANIFEST_LIST
            ]
        );
    }

    #[test]
    fn architecture_is_oci_spelling() {
        if cfg!(target_arch = "x86_64") {
            assert_eq!(oci_architecture(), "amd64");
        }
    }
}
