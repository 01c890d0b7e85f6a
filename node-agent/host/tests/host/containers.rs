//! Containers: start, status, limits, stats, pause, exit codes, removal in every state.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use zos_host::container::{BindMount, ContainerError, RunState};

use crate::support::*;

const MIB: u64 = 1 << 20;

fn is_v1() -> bool {
    Path::new("/sys/fs/cgroup/memory").is_dir()
}

#[test]
fn runs_with_env_volume_limits_and_labels_then_removes() {
    let host = Host::new();
    let vol = host.id("data");
    let data = host.volumes.ensure(&vol, 16 * MIB).expect("volume");

    let mut spec = host.spec("app", "echo hello; echo $FOO > /data/out; sleep 1000");
    spec.env = vec![("FOO".into(), "bar-value".into())];
    spec.cpu_millis = 500;
    spec.memory = 64 * MIB;
    spec.mounts = vec![BindMount {
        source: data.clone(),
        target: "/data".into(),
        read_only: false,
    }];
    spec.labels = BTreeMap::from([("version".to_string(), "3".to_string())]);
    let id = spec.id.clone();
    let cid = id.container_id();

    let st = host.containers.start(&spec).expect("start");
    assert_eq!(st.state, RunState::Running);
    let pid = st.pid.expect("pid");
    assert!(is_live(pid), "process {pid} runs");
    assert_eq!(st.labels, spec.labels);
    assert_eq!(host.containers.list().unwrap(), vec![id.clone()]);

    // A second start of the same id is refused and harms nothing.
    assert!(matches!(
        host.containers.start(&spec),
        Err(ContainerError::Exists { .. })
    ));

    // Limits.
    if is_v1() {
        assert_eq!(
            read_trim(&v1_cgroup("memory", &cid).join("memory.limit_in_bytes")),
            (64 * MIB).to_string()
        );
        assert_eq!(
            read_trim(&v1_cgroup("cpu", &cid).join("cpu.cfs_quota_us")),
            "50000"
        );
        assert_eq!(
            read_trim(&v1_cgroup("cpu", &cid).join("cpu.cfs_period_us")),
            "100000"
        );
        assert_eq!(read_trim(&v1_cgroup("pids", &cid).join("pids.max")), "4096");
    } else {
        let d = Path::new("/sys/fs/cgroup/zos").join(&cid);
        assert_eq!(read_trim(&d.join("memory.max")), (64 * MIB).to_string());
        assert_eq!(read_trim(&d.join("cpu.max")), "50000 100000");
        assert_eq!(read_trim(&d.join("pids.max")), "4096");
    }

    // The environment reached the process, the volume its file, the output the log.
    wait_until("the volume file", Duration::from_secs(5), || {
        fs::read_to_string(data.join("out")).is_ok_and(|s| s == "bar-value\n")
    });
    wait_until("hello in log_tail", Duration::from_secs(5), || {
        host.containers
            .status(&id)
            .unwrap()
            .is_some_and(|s| s.log_tail.contains("hello"))
    });

    let stats = host.containers.stats(&id).expect("stats");
    assert!(stats.cpu_ns > 0, "{stats:?}");
    assert!(stats.memory_current > 0, "{stats:?}");
    assert!(stats.memory_peak >= stats.memory_current, "{stats:?}");
    assert_eq!((stats.net_rx, stats.net_tx), (0, 0), "only lo in its netns");

    // The volume is in use by the container: removing it is refused, clearly.
    let err = host.volumes.remove(&vol).expect_err("volume in use");
    assert!(err.to_string().contains("in use"), "{err}");

    // Pause and resume.
    host.containers.pause(&id).expect("pause");
    if is_v1() {
        assert_eq!(
            read_trim(&v1_cgroup("freezer", &cid).join("freezer.state")),
            "FROZEN"
        );
    }
    assert_eq!(
        host.containers.status(&id).unwrap().unwrap().state,
        RunState::Paused
    );
    host.containers.resume(&id).expect("resume");
    if is_v1() {
        assert_eq!(
            read_trim(&v1_cgroup("freezer", &cid).join("freezer.state")),
            "THAWED"
        );
    }
    assert_eq!(
        host.containers.status(&id).unwrap().unwrap().state,
        RunState::Running
    );

    // sh as pid 1 ignores SIGTERM: the grace passes, then SIGKILL.
    host.containers
        .remove(&id, Duration::from_millis(100))
        .expect("remove");
    assert_gone(&host, &id, Some(pid));
    host.containers
        .remove(&id, Duration::from_millis(100))
        .expect("remove again");

    // Same id again; the volume kept its data.
    let mut again = host.spec("app", "cat /data/out; sleep 1000");
    again.mounts = spec.mounts.clone();
    let st = host.containers.start(&again).expect("start again");
    assert_eq!(st.state, RunState::Running);
    assert!(st.labels.is_empty());
    wait_until(
        "the old data in the new container's log",
        Duration::from_secs(5),
        || {
            host.containers
                .status(&id)
                .unwrap()
                .is_some_and(|s| s.log_tail.contains("bar-value"))
        },
    );
    host.containers.remove(&id, Duration::ZERO).expect("remove");
    assert_gone(&host, &id, st.pid);
    host.volumes
        .remove(&vol)
        .expect("volume remove after the container");
}

#[test]
fn exit_code_is_recorded() {
    let host = Host::new();
    let spec = host.spec("exits", "echo bye; exit 3");
    let id = spec.id.clone();
    let st = host.containers.start(&spec).expect("start");
    let first_pid = st.pid;
    wait_until("exit", Duration::from_secs(5), || {
        matches!(
            host.containers.status(&id).unwrap().unwrap().state,
            RunState::Exited { .. }
        )
    });
    let st = host.containers.status(&id).unwrap().unwrap();
    assert!(
        matches!(
            st.state,
            RunState::Exited {
                code: Some(3),
                signal: None,
                ..
            }
        ),
        "{st:?}"
    );
    assert_eq!(st.pid, None);
    assert_eq!(st.log_tail, "bye");
    // An exited container still has its cgroup until removed.
    host.containers
        .stats(&id)
        .expect("stats of an exited container");
    host.containers
        .remove(&id, Duration::from_secs(1))
        .expect("remove");
    assert_gone(&host, &id, first_pid);
}

#[test]
fn killed_by_a_signal() {
    let host = Host::new();
    let spec = host.spec("killed", "sleep 1000");
    let id = spec.id.clone();
    let pid = host
        .containers
        .start(&spec)
        .expect("start")
        .pid
        .expect("pid");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill");
    wait_until("exit", Duration::from_secs(5), || {
        matches!(
            host.containers.status(&id).unwrap().unwrap().state,
            RunState::Exited { .. }
        )
    });
    let st = host.containers.status(&id).unwrap().unwrap();
    assert!(
        matches!(
            st.state,
            RunState::Exited {
                code: None,
                signal: Some(9),
                ..
            }
        ),
        "{st:?}"
    );
    host.containers.remove(&id, Duration::ZERO).expect("remove");
    assert_gone(&host, &id, Some(pid));
}

#[test]
fn start_failure_says_why_and_leaves_nothing() {
    let host = Host::new();
    let mut spec = host.spec("missing", "");
    spec.args = vec!["/no/such/program".into()];
    let id = spec.id.clone();
    let err = host.containers.start(&spec).expect_err("no such program");
    assert!(matches!(err, ContainerError::Start { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains(&id.container_id()) && text.contains("/no/such/program"),
        "{text}"
    );
    assert_gone(&host, &id, None);

    let mut spec = host.spec("badspec", "true");
    spec.args.clear();
    assert!(matches!(
        host.containers.start(&spec),
        Err(ContainerError::InvalidSpec { .. })
    ));
    assert_gone(&host, &spec.id, None);
}

#[test]
fn remove_while_paused() {
    let host = Host::new();
    let spec = host.spec("paused", "sleep 1000");
    let id = spec.id.clone();
    let st = host.containers.start(&spec).expect("start");
    host.containers.pause(&id).expect("pause");
    host.containers
        .remove(&id, Duration::from_millis(50))
        .expect("remove");
    assert_gone(&host, &id, st.pid);
}

#[test]
fn remove_after_the_shim_was_killed() {
    let host = Host::new();
    let spec = host.spec("orphan", "sleep 1000");
    let id = spec.id.clone();
    let st = host.containers.start(&spec).expect("start");
    let pid = st.pid.expect("pid");
    let shim: serde_json::Value = serde_json::from_slice(
        &fs::read(host.workload_dir(&id).join("shim.json")).expect("shim record"),
    )
    .expect("shim json");
    let shim_pid = shim["pid"].as_i64().expect("shim pid") as i32;
    assert!(is_live(shim_pid));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(shim_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill shim");
    wait_until("the shim to die", Duration::from_secs(5), || {
        !is_live(shim_pid)
    });

    // The container runs on without its monitor.
    assert!(is_live(pid));
    assert_eq!(
        host.containers.status(&id).unwrap().unwrap().state,
        RunState::Running
    );
    host.containers.remove(&id, Duration::ZERO).expect("remove");
    assert_gone(&host, &id, Some(pid));
}

#[test]
fn remove_a_half_created_container() {
    let host = Host::new();
    let id = host.id("half");
    let cid = id.container_id();
    // What a shim that died during create can leave: a workload dir, an empty libcontainer dir
    // and cgroup directories.
    fs::create_dir_all(host.workload_dir(&id)).unwrap();
    fs::create_dir_all(host.state_root.join("runtime").join(&cid)).unwrap();
    for c in ["memory", "cpu", "pids", "freezer"] {
        if let Ok(d) = fs::canonicalize(format!("/sys/fs/cgroup/{c}")) {
            fs::create_dir_all(d.join("zos").join(&cid)).unwrap();
        }
    }
    assert_eq!(host.containers.list().unwrap(), vec![id.clone()]);
    let st = host.containers.status(&id).unwrap().expect("found");
    assert!(
        matches!(st.state, RunState::Exited { code: None, .. }),
        "{st:?}"
    );
    host.containers.remove(&id, Duration::ZERO).expect("remove");
    assert_gone(&host, &id, None);
}

#[test]
fn missing_containers() {
    let host = Host::new();
    let id = host.id("nothing");
    assert_eq!(host.containers.status(&id).unwrap(), None);
    host.containers
        .remove(&id, Duration::ZERO)
        .expect("remove of nothing");
    assert!(matches!(
        host.containers.pause(&id),
        Err(ContainerError::NotFound { .. })
    ));
    assert!(matches!(
        host.containers.stats(&id),
        Err(ContainerError::NotFound { .. })
    ));
}

#[test]
fn the_process_inherits_no_ignored_or_blocked_signal() {
    let host = Host::new();
    let mut spec = host.spec("signals", "");
    spec.args = vec!["sleep".into(), "1000".into()];
    let id = spec.id.clone();
    let pid = host
        .containers
        .start(&spec)
        .expect("start")
        .pid
        .expect("pid");
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    for field in ["SigIgn:", "SigBlk:"] {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .expect(field)
            .trim();
        assert_eq!(v, "0000000000000000", "{field} of the container's init");
    }
    host.containers.remove(&id, Duration::ZERO).expect("remove");
}
