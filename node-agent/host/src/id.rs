//! Workload identity and the deterministic host names derived from it.

use std::fmt;

/// A workload on this host: the contract that deploys it and its name in the deployment.
///
/// Names are DNS labels (`[a-z0-9-]`, 1 to 63 characters, no `-` at either end), the rule the
/// chain enforces (`zos_contracts` validation). Every host name is derived from
/// [`WorkloadId::container_id`], `zos-{contract}-{name}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WorkloadId {
    /// The deployment contract's id.
    pub contract: u64,
    /// The workload's name within the deployment.
    pub name: String,
}

/// A workload name that is not a DNS label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "workload name {name:?} of contract {contract} is not a DNS label ([a-z0-9-], 1 to 63 characters, no '-' at either end)"
)]
pub struct InvalidWorkloadId {
    /// The contract id.
    pub contract: u64,
    /// The rejected name.
    pub name: String,
}

const PREFIX: &str = "zos-";

impl WorkloadId {
    /// A checked id.
    pub fn new(contract: u64, name: impl Into<String>) -> Result<WorkloadId, InvalidWorkloadId> {
        let id = WorkloadId {
            contract,
            name: name.into(),
        };
        id.validate()?;
        Ok(id)
    }

    /// Checks the name (the fields are public, so every driver entry point checks again before
    /// it turns the id into a path).
    pub fn validate(&self) -> Result<(), InvalidWorkloadId> {
        if is_dns_label(&self.name) {
            Ok(())
        } else {
            Err(InvalidWorkloadId {
                contract: self.contract,
                name: self.name.clone(),
            })
        }
    }

    /// The host name of the workload: `zos-{contract}-{name}` (container id, cgroup leaf, state
    /// directory, volume file stem).
    pub fn container_id(&self) -> String {
        format!("{PREFIX}{}-{}", self.contract, self.name)
    }

    /// The inverse of [`WorkloadId::container_id`]; `None` for anything that
    /// `container_id` cannot have produced from a valid id.
    pub fn parse_container_id(s: &str) -> Option<WorkloadId> {
        let rest = s.strip_prefix(PREFIX)?;
        let (contract, name) = rest.split_once('-')?;
        if contract.is_empty() || !contract.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let contract: u64 = contract.parse().ok()?;
        let id = WorkloadId {
            contract,
            name: name.to_owned(),
        };
        // Canonical only: "zos-007-a" is not what container_id() writes.
        (id.validate().is_ok() && id.container_id() == s).then_some(id)
    }
}

impl fmt::Display for WorkloadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.contract, self.name)
    }
}

fn is_dns_label(s: &str) -> bool {
    let b = s.as_bytes();
    (1..=63).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_id_round_trips() {
        let id = WorkloadId::new(42, "web-1").unwrap();
        assert_eq!(id.container_id(), "zos-42-web-1");
        assert_eq!(WorkloadId::parse_container_id("zos-42-web-1"), Some(id));
        let long = "a".repeat(63);
        let id = WorkloadId::new(u64::MAX, long.clone()).unwrap();
        assert_eq!(WorkloadId::parse_container_id(&id.container_id()), Some(id));
    }

    #[test]
    fn rejects_what_container_id_cannot_produce() {
        for s in [
            "zos-42",
            "zos-42-",
            "zos--a",
            "zos-007-a",
            "zos-42-A",
            "zos-42--a",
            "zos-42-a-",
            "zos-42-a.img",
            "zos-x-a",
            "foo-42-a",
            "zos-18446744073709551616-a",
        ] {
            assert_eq!(WorkloadId::parse_container_id(s), None, "{s}");
        }
    }

    #[test]
    fn names_are_dns_labels() {
        assert!(WorkloadId::new(1, "").is_err());
        assert!(WorkloadId::new(1, "a".repeat(64)).is_err());
        assert!(WorkloadId::new(1, "../x").is_err());
        assert!(WorkloadId::new(1, "-a").is_err());
        assert!(WorkloadId::new(1, "a_b").is_err());
        assert!(WorkloadId::new(1, "0-a-9").is_ok());
    }
}
