//! What a group member approves, shown in full: a deployment in its file form (sealed values as
//! markers, never opened), and the changes an update makes to the deployment on chain.
//!
//! Both come from `zos_contracts::file::DeploymentFile`, so they read like the files users
//! apply. The JSON form is the file form itself (sealed values as `{ "sealed": "<hex>" }`); the
//! text form shortens sealed values to their size and first bytes.

use serde_json::{json, Map, Value};
use zos_contracts::{
    file::{DeploymentFile, EnvFile, FileError},
    Deployment,
};

/// How many hex digits of a sealed value the text form shows.
const SEALED_PREFIX: usize = 8;

/// The deployment in its file form, as JSON; sealed values stay sealed, in full.
pub fn deployment_json(d: &Deployment) -> Result<Value, FileError> {
    let file = DeploymentFile::from_deployment(d)?;
    Ok(serde_json::to_value(&file).expect("the file types serialize to JSON; qed"))
}

/// The deployment in its file form, as YAML, with sealed values shortened to a marker.
pub fn deployment_yaml(d: &Deployment) -> Result<String, FileError> {
    let mut file = DeploymentFile::from_deployment(d)?;
    for w in &mut file.workloads {
        let envs = w
            .container
            .as_mut()
            .map(|c| &mut c.env)
            .into_iter()
            .chain(w.vm.as_mut().map(|vm| &mut vm.env));
        for env in envs {
            for value in env.values_mut() {
                if let EnvFile::Sealed { sealed } = value {
                    *sealed = sealed_marker(sealed);
                }
            }
        }
    }
    Ok(file.to_yaml())
}

/// `92 bytes 1a2b3c4d...` for the hex of a sealed value.
fn sealed_marker(hex: &str) -> String {
    let prefix: String = hex.chars().take(SEALED_PREFIX).collect();
    let ellipsis = if hex.len() > SEALED_PREFIX { "..." } else { "" };
    format!("{} bytes {prefix}{ellipsis}", hex.len() / 2)
}

/// One field that differs: its path inside the deployment or workload, e.g. `container.cpu`,
/// and its values (`None`: not set).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Dotted path in the file form.
    pub path: String,
    /// The value on chain.
    pub old: Option<Value>,
    /// The proposed value.
    pub new: Option<Value>,
}

/// What an update changes, workload by workload (matched by name).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Diff {
    /// The version on chain.
    pub from_version: u32,
    /// Changes outside the workloads: `version`, `description`.
    pub deployment: Vec<Change>,
    /// Workloads only in the proposal: name and file form.
    pub added: Vec<(String, Value)>,
    /// Workloads only on chain: name and file form.
    pub removed: Vec<(String, Value)>,
    /// Workloads in both that differ: name and field changes.
    pub changed: Vec<(String, Vec<Change>)>,
}

/// The changes from `old` (on chain) to `new` (proposed).
pub fn diff(old: &Deployment, new: &Deployment) -> Result<Diff, FileError> {
    let old_json = deployment_json(old)?;
    let new_json = deployment_json(new)?;
    let mut d = Diff {
        from_version: old.version,
        ..Diff::default()
    };
    for key in ["version", "description"] {
        compare(key, old_json.get(key), new_json.get(key), &mut d.deployment);
    }
    let old_w = workloads(&old_json);
    let new_w = workloads(&new_json);
    for (name, w) in &new_w {
        match old_w.iter().find(|(n, _)| n == name) {
            None => d.added.push((name.clone(), w.clone())),
            Some((_, before)) => {
                let mut changes = Vec::new();
                compare_objects("", before, w, &mut changes);
                if !changes.is_empty() {
                    d.changed.push((name.clone(), changes));
                }
            }
        }
    }
    for (name, w) in &old_w {
        if !new_w.iter().any(|(n, _)| n == name) {
            d.removed.push((name.clone(), w.clone()));
        }
    }
    Ok(d)
}

/// The workloads of a file form by name, without the name field.
fn workloads(file: &Value) -> Vec<(String, Value)> {
    file["workloads"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|w| {
            let mut w = w.clone();
            let name = w
                .as_object_mut()
                .and_then(|o| o.remove("name"))
                .and_then(|n| n.as_str().map(str::to_string))
                .unwrap_or_default();
            (name, w)
        })
        .collect()
}

/// An environment value, a list or a scalar is compared whole; other objects field by field.
fn compare(path: &str, old: Option<&Value>, new: Option<&Value>, out: &mut Vec<Change>) {
    match (old, new) {
        (Some(o), Some(n)) if o == n => {}
        (Some(o), Some(n)) if is_record(o) && is_record(n) => compare_objects(path, o, n, out),
        (None, None) => {}
        _ => out.push(Change {
            path: path.to_string(),
            old: old.cloned(),
            new: new.cloned(),
        }),
    }
}

fn compare_objects(path: &str, old: &Value, new: &Value, out: &mut Vec<Change>) {
    let empty = Map::new();
    let old = old.as_object().unwrap_or(&empty);
    let new = new.as_object().unwrap_or(&empty);
    let keys = old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)));
    for key in keys {
        let sub = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        compare(&sub, old.get(key), new.get(key), out);
    }
}

/// An object whose fields are compared one by one: not a sealed environment value.
fn is_record(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| !(o.len() == 1 && o.contains_key("sealed")))
}

/// A value for people: strings bare, sealed values as markers, the rest as compact JSON.
pub fn value(v: Option<&Value>) -> String {
    match v.map(shorten_sealed) {
        None | Some(Value::Null) => "(not set)".into(),
        Some(Value::String(s)) => s,
        Some(v) => v.to_string(),
    }
}

fn shorten_sealed(v: &Value) -> Value {
    match v {
        Value::Object(o) if o.len() == 1 && o.contains_key("sealed") => Value::String(format!(
            "sealed {}",
            sealed_marker(o["sealed"].as_str().unwrap_or_default())
        )),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, v)| (k.clone(), shorten_sealed(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(shorten_sealed).collect()),
        v => v.clone(),
    }
}

/// The kind of a workload in its file form: the one kind field it sets.
fn kind(w: &Value) -> &str {
    ["container", "vm", "volume", "disk", "network"]
        .into_iter()
        .find(|k| w.get(*k).is_some())
        .unwrap_or("?")
}

impl Diff {
    /// Whether nothing but the version changes.
    pub fn is_empty(&self) -> bool {
        self.deployment.iter().all(|c| c.path == "version")
            && self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
    }

    /// Lines for people, each starting with `indent`.
    pub fn human(&self, indent: &str) -> String {
        let mut s = String::new();
        for c in &self.deployment {
            s.push_str(&format!(
                "{indent}{}: {} → {}\n",
                c.path,
                value(c.old.as_ref()),
                value(c.new.as_ref())
            ));
        }
        for (name, w) in &self.added {
            s.push_str(&format!("{indent}added {name} ({})\n", kind(w)));
        }
        for (name, w) in &self.removed {
            s.push_str(&format!("{indent}removed {name} ({})\n", kind(w)));
        }
        for (name, changes) in &self.changed {
            s.push_str(&format!("{indent}changed {name}\n"));
            for c in changes {
                s.push_str(&format!(
                    "{indent}  {}: {} → {}\n",
                    c.path,
                    value(c.old.as_ref()),
                    value(c.new.as_ref())
                ));
            }
        }
        if self.is_empty() {
            s.push_str(&format!("{indent}no workload changes\n"));
        }
        s
    }

    /// In JSON: the same, with values in the file form.
    pub fn json(&self) -> Value {
        let change = |c: &Change| json!({ "path": c.path, "old": c.old, "new": c.new });
        let named = |(n, w): &(String, Value)| json!({ "name": n, "workload": w });
        json!({
            "from_version": self.from_version,
            "deployment": self.deployment.iter().map(change).collect::<Vec<_>>(),
            "added": self.added.iter().map(named).collect::<Vec<_>>(),
            "removed": self.removed.iter().map(named).collect::<Vec<_>>(),
            "changed": self.changed.iter().map(|(n, cs)| json!({
                "name": n,
                "changes": cs.iter().map(change).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zos_contracts::{BoundedVec, EnvValue, WorkloadSpec};

    fn parse(yaml: &str) -> Deployment {
        DeploymentFile::from_yaml(yaml)
            .unwrap()
            .into_deployment(None)
            .unwrap()
    }

    const IMAGE: &str =
        "127.0.0.1:5000/app@sha256:3fbc632167424a6d997e74f52b878d7cc478225cffac6bc977eedfe51c7f4e79";
    const KERNEL: &str =
        "127.0.0.1:5000/kernel@sha256:0000000000000000000000000000000000000000000000000000000000000001";

    fn everything_yaml() -> String {
        format!(
            "version: 2
description: all of it
workloads:
  - name: net
    network: {{ range: 10.20.0.0/16, subnet: 10.20.1.0/24 }}
  - name: data
    volume: {{ size: 1GiB }}
  - name: root
    disk: {{ size: 10GiB }}
  - name: web
    version: 3
    container:
      image: {IMAGE}
      entrypoint: [/bin/sh, -c]
      args: [exec httpd -f]
      env: {{ MODE: production }}
      workdir: /srv
      cpu: 0.5
      memory: 256MiB
      rootfs: 2GiB
      mounts: [{{ volume: data, path: /data, read_only: true }}]
      network: {{ name: net, ip: 10.20.1.5 }}
      restart: on-failure
  - name: box
    vm:
      image: {IMAGE}
      kernel: {KERNEL}
      vcpus: 2
      memory: 1GiB
      disks: [root]
      network: {{ name: net }}
      ssh_keys: [ssh-ed25519 AAAAC3Nz me@home]
      env: {{ ROLE: db }}
"
        )
    }

    fn everything() -> Deployment {
        parse(&everything_yaml())
    }

    /// `d` with the container `web`'s environment variable `key` sealed to `bytes`.
    fn with_sealed(mut d: Deployment, key: &str, bytes: Vec<u8>) -> Deployment {
        let mut workloads = d.workloads.into_inner();
        let web = workloads
            .iter_mut()
            .find(|w| &w.name[..] == b"web")
            .unwrap();
        let WorkloadSpec::Container(c) = &mut web.spec else {
            panic!("web is a container")
        };
        let mut env = c.env.clone().into_inner();
        env.push(zos_contracts::EnvVar {
            key: BoundedVec::try_from(key.as_bytes().to_vec()).unwrap(),
            value: EnvValue::Sealed(BoundedVec::try_from(bytes).unwrap()),
        });
        c.env = BoundedVec::try_from(env).unwrap();
        d.workloads = BoundedVec::try_from(workloads).unwrap();
        d
    }

    #[test]
    fn every_field_is_shown_and_sealed_values_only_as_markers() {
        let d = with_sealed(everything(), "TOKEN", vec![0xab; 92]);
        let yaml = deployment_yaml(&d).unwrap();
        for field in [
            "description: all of it",
            "range: 10.20.0.0/16",
            "subnet: 10.20.1.0/24",
            "size: 1GiB",
            "size: 10GiB",
            "version: 3",
            IMAGE,
            "- /bin/sh",
            "- exec httpd -f",
            "MODE: production",
            "workdir: /srv",
            "cpu: 500m",
            "memory: 256MiB",
            "rootfs: 2GiB",
            "path: /data",
            "read_only: true",
            "ip: 10.20.1.5",
            "restart: on-failure",
            KERNEL,
            "vcpus: 2",
            "memory: 1GiB",
            "- root",
            "name: net",
            "- ssh-ed25519 AAAAC3Nz me@home",
            "ROLE: db",
            "sealed: 92 bytes abababab...",
        ] {
            assert!(yaml.contains(field), "{field:?} is missing from\n{yaml}");
        }
        assert!(
            !yaml.contains(&"ab".repeat(9)),
            "the ciphertext is not printed whole:\n{yaml}"
        );
        let j = deployment_json(&d).unwrap();
        assert_eq!(
            j["workloads"][3]["container"]["env"]["TOKEN"]["sealed"],
            "ab".repeat(92),
            "JSON carries the sealed value whole"
        );
        assert_eq!(j["workloads"][3]["container"]["restart"], "on-failure");
        assert_eq!(j["workloads"][4]["vm"]["kernel"], KERNEL);
    }

    #[test]
    fn a_diff_names_added_removed_and_changed_fields() {
        let old = with_sealed(everything(), "TOKEN", vec![1; 80]);
        let yaml = everything_yaml()
            .replace("version: 2\ndescription", "version: 3\ndescription")
            .replace("cpu: 0.5", "cpu: 1")
            .replace("{ MODE: production }", "{ MODE: staging, DEBUG: '1' }")
            .replace("restart: on-failure", "restart: never")
            .replace("vcpus: 2", "vcpus: 4")
            .replace("rootfs: 2GiB", "rootfs: 1GiB")
            .replace("  - name: data\n", "  - name: cache\n")
            .replace(", read_only: true", "");
        let new = with_sealed(parse(&yaml), "TOKEN", vec![2; 80]);

        let d = diff(&old, &new).unwrap();
        assert_eq!(d.from_version, 2);
        assert_eq!(
            d.deployment,
            vec![Change {
                path: "version".into(),
                old: Some(json!(2)),
                new: Some(json!(3)),
            }]
        );
        assert_eq!(d.added.len(), 1);
        assert_eq!(d.added[0].0, "cache");
        assert_eq!(d.added[0].1["volume"]["size"], "1GiB");
        assert_eq!(d.removed.len(), 1);
        assert_eq!(d.removed[0].0, "data");
        let names: Vec<&str> = d.changed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["web", "box"]);
        let mut web: Vec<(&str, String, String)> = d.changed[0]
            .1
            .iter()
            .map(|c| {
                (
                    c.path.as_str(),
                    value(c.old.as_ref()),
                    value(c.new.as_ref()),
                )
            })
            .collect();
        web.sort();
        assert_eq!(
            web,
            [
                ("container.cpu", "500m".into(), "1".into()),
                ("container.env.DEBUG", "(not set)".into(), "1".into()),
                ("container.env.MODE", "production".into(), "staging".into()),
                (
                    "container.env.TOKEN",
                    "sealed 80 bytes 01010101...".into(),
                    "sealed 80 bytes 02020202...".into()
                ),
                ("container.mounts", web[4].1.clone(), web[4].2.clone()),
                ("container.restart", "on-failure".into(), "never".into()),
                ("container.rootfs", "2GiB".into(), "1GiB".into()),
            ]
        );
        assert!(web[4].1.contains("\"read_only\":true") && !web[4].2.contains("read_only"));
        assert_eq!(
            d.changed[1].1,
            vec![Change {
                path: "vm.vcpus".into(),
                old: Some(json!(2)),
                new: Some(json!(4)),
            }]
        );

        let text = d.human("  ");
        for line in [
            "  version: 2 → 3\n",
            "  added cache (volume)\n",
            "  removed data (volume)\n",
            "  changed web\n",
            "    container.cpu: 500m → 1\n",
            "    container.rootfs: 2GiB → 1GiB\n",
            "    container.env.TOKEN: sealed 80 bytes 01010101... → sealed 80 bytes 02020202...\n",
            "  changed box\n    vm.vcpus: 2 → 4\n",
        ] {
            assert!(text.contains(line), "{line:?} is missing from\n{text}");
        }
        let j = d.json();
        let token = j["changed"][0]["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["path"] == "container.env.TOKEN")
            .unwrap();
        assert_eq!(token["old"]["sealed"], "01".repeat(80));
        assert_eq!(token["new"]["sealed"], "02".repeat(80));
        assert_eq!(j["removed"][0]["workload"]["volume"]["size"], "1GiB");
        assert_eq!(j["added"][0]["name"], "cache");
    }

    #[test]
    fn a_workload_that_changes_kind_and_an_unchanged_deployment() {
        let old = parse("workloads:\n  - name: x\n    volume: { size: 1GiB }\n");
        let new = parse("version: 2\nworkloads:\n  - name: x\n    disk: { size: 1GiB }\n");
        let d = diff(&old, &new).unwrap();
        assert_eq!(
            d.changed[0].1,
            vec![
                Change {
                    path: "volume".into(),
                    old: Some(json!({ "size": "1GiB" })),
                    new: None,
                },
                Change {
                    path: "disk".into(),
                    old: None,
                    new: Some(json!({ "size": "1GiB" })),
                },
            ]
        );
        let same = diff(
            &old,
            &parse("version: 2\nworkloads:\n  - name: x\n    volume: { size: 1GiB }\n"),
        )
        .unwrap();
        assert!(same.is_empty());
        assert!(same.human("").contains("no workload changes"));
    }

    #[test]
    fn a_deployment_that_is_not_text_cannot_be_shown() {
        let mut d = everything();
        d.description = BoundedVec::try_from(vec![0xff, 0xfe]).unwrap();
        assert!(matches!(
            deployment_yaml(&d),
            Err(FileError::NotText { .. })
        ));
    }
}
