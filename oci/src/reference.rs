//! Image references pinned by digest: `registry/repository@sha256:<hex>`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::digest::{Digest, InvalidDigest};

/// An image in a registry, pinned by the digest of its manifest (or image index).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    registry: String,
    repository: String,
    digest: Digest,
}

/// A reference that cannot be pulled.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    /// Not a well-formed reference.
    #[error("invalid image reference {input:?}")]
    Invalid {
        /// The input.
        input: String,
        /// Why.
        #[source]
        source: oci_client::ParseError,
    },
    /// A tag only: images are pulled by digest so that what runs is what the contract names.
    #[error("image reference {0:?} is not pinned by digest (expected …@sha256:<hex>)")]
    NotPinned(String),
    /// A digest other than `sha256:<hex>`.
    #[error(transparent)]
    Digest(#[from] InvalidDigest),
}

impl ImageReference {
    /// A reference from its parts (`registry` is `host[:port]`).
    pub fn new(registry: impl Into<String>, repository: impl Into<String>, digest: Digest) -> Self {
        Self {
            registry: registry.into(),
            repository: repository.into(),
            digest,
        }
    }

    /// Parses `[registry/]repository[:tag]@sha256:<hex>`; Docker Hub names are expanded
    /// (`busybox@…` is `docker.io/library/busybox@…`). A tag next to the digest is ignored.
    pub fn parse(s: &str) -> Result<Self, ReferenceError> {
        let parsed =
            oci_client::Reference::from_str(s).map_err(|source| ReferenceError::Invalid {
                input: s.to_owned(),
                source,
            })?;
        let digest = parsed
            .digest()
            .ok_or_else(|| ReferenceError::NotPinned(s.to_owned()))?;
        Ok(Self {
            digest: Digest::parse(digest)?,
            registry: parsed.registry().to_owned(),
            repository: parsed.repository().to_owned(),
        })
    }

    /// `host[:port]` of the registry.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// Repository within the registry.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The pinned digest.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The same repository at another digest (an image index's platform manifest).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest,
            ..self.clone()
        }
    }

    /// As `oci-client` spells it.
    pub fn to_oci(&self) -> oci_client::Reference {
        oci_client::Reference::with_digest(
            self.registry.clone(),
            self.repository.clone(),
            self.digest.to_string(),
        )
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}@{}", self.registry, self.repository, self.digest)
    }
}

impl fmt::Debug for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Whether `host[:port]` names this machine: `localhost`, `127.0.0.0/8` or `[::1]`. Only these
/// registries are spoken to over plain HTTP.
pub fn is_loopback_registry(registry: &str) -> bool {
    let host = if let Some(rest) = registry.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || port.starts_with(':') => host,
            _ => return false,
        }
    } else {
        match registry.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => registry,
        }
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn parses_pinned_references() {
        let r = ImageReference::parse(&format!("127.0.0.1:5000/team/app@sha256:{HEX}")).unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "team/app");
        assert_eq!(r.digest().hex(), HEX);
        assert_eq!(
            r.to_string(),
            format!("127.0.0.1:5000/team/app@sha256:{HEX}")
        );
        assert_eq!(ImageReference::parse(&r.to_string()).unwrap(), r);

        let hub = ImageReference::parse(&format!("busybox:1.36@sha256:{HEX}")).unwrap();
        assert_eq!(
            (hub.registry(), hub.repository()),
            ("docker.io", "library/busybox")
        );
    }

    #[test]
    fn refuses_tags_and_other_digests() {
        assert!(matches!(
            ImageReference::parse("127.0.0.1:5000/app:latest"),
            Err(ReferenceError::NotPinned(_))
        ));
        assert!(ImageReference::parse("127.0.0.1:5000/app@sha256:abc").is_err());
        assert!(ImageReference::parse(&format!("app@sha512:{HEX}{HEX}")).is_err());
    }

    #[test]
    fn loopback_registries() {
        for r in [
            "127.0.0.1:5000",
            "127.1.2.3",
            "localhost",
            "LOCALHOST:80",
            "[::1]:5000",
            "[::1]",
        ] {
            assert!(is_loopback_registry(r), "{r}");
        }
        for r in [
            "10.0.0.1:5000",
            "registry.example.com",
            "localhost.example.com:5000",
            "[::2]:5000",
            "[::1]x",
            "docker.io",
        ] {
            assert!(!is_loopback_registry(r), "{r}");
        }
    }
}
