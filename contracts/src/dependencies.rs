//! What a workload needs before it can run, stated once: a container needs its volumes and its
//! network, a VM its disks and its network. The node orders and waits on any kinds from this alone.

use alloc::vec::Vec;

use crate::{Deployment, RestartPolicy, Workload, WorkloadKind, WorkloadSpec};

impl WorkloadKind {
    /// The kinds a workload of this kind can depend on. A node removes workloads of a kind before
    /// those of the kinds it depends on, also when it no longer knows their deployment.
    pub fn depends_on_kinds(self) -> &'static [WorkloadKind] {
        match self {
            WorkloadKind::Container => &[WorkloadKind::Volume, WorkloadKind::Network],
            WorkloadKind::VirtualMachine => &[WorkloadKind::Disk, WorkloadKind::Network],
            WorkloadKind::Volume | WorkloadKind::Disk | WorkloadKind::Network => &[],
        }
    }

    /// Whether a workload of this kind runs (has a process that can exit), rather than exists.
    pub fn runs(self) -> bool {
        matches!(self, WorkloadKind::Container | WorkloadKind::VirtualMachine)
    }
}

impl Workload {
    /// What the node does when this workload's process ends; `None` for workloads that do not
    /// run. A VM is always restarted: a guest that powers off or crashes comes back (with
    /// backoff); canceling the contract is how it ends.
    pub fn restart_policy(&self) -> Option<RestartPolicy> {
        match &self.spec {
            WorkloadSpec::Container(c) => Some(c.restart),
            WorkloadSpec::VirtualMachine(_) => Some(RestartPolicy::Always),
            WorkloadSpec::Volume(_) | WorkloadSpec::Disk(_) | WorkloadSpec::Network(_) => None,
        }
    }

    /// The names of the workloads of the same deployment that must be ready before this one, in
    /// the order the workload names them, each once.
    pub fn depends_on(&self) -> Vec<&[u8]> {
        let mut names: Vec<&[u8]> = Vec::new();
        let (volumes, network): (Vec<&[u8]>, _) = match &self.spec {
            WorkloadSpec::Container(c) => (
                c.mounts.iter().map(|m| &m.volume[..]).collect(),
                c.network.as_ref(),
            ),
            WorkloadSpec::VirtualMachine(vm) => (
                vm.disks.iter().map(|d| &d[..]).collect(),
                vm.network.as_ref(),
            ),
            WorkloadSpec::Volume(_) | WorkloadSpec::Disk(_) | WorkloadSpec::Network(_) => {
                (Vec::new(), None)
            }
        };
        for name in volumes.into_iter().chain(network.map(|n| &n.network[..])) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }
}

impl Deployment {
    /// The workloads, each after every workload of this deployment it depends on, and otherwise
    /// in the deployment's order as far as that allows. A name that no workload has is no dependency here (validation
    /// refuses it); a cycle cannot be written with today's kinds, and would keep the deployment's
    /// order for the workloads in it.
    pub fn in_dependency_order(&self) -> Vec<&Workload> {
        let all: Vec<&Workload> = self.workloads.iter().collect();
        let mut placed = alloc::vec![false; all.len()];
        let mut order = Vec::with_capacity(all.len());
        while order.len() < all.len() {
            let before = order.len();
            for (i, w) in all.iter().enumerate() {
                if placed[i] {
                    continue;
                }
                let ready = w.depends_on().iter().all(|dep| {
                    all.iter()
                        .position(|o| &o.name[..] == *dep)
                        .is_none_or(|j| placed[j] || j == i)
                });
                if ready {
                    placed[i] = true;
                    order.push(*w);
                }
            }
            if order.len() == before {
                // A cycle: the rest in the deployment's order.
                for (i, w) in all.iter().enumerate() {
                    if !placed[i] {
                        placed[i] = true;
                        order.push(*w);
                    }
                }
            }
        }
        order
    }
}
