//! The metadata clients are generated from is the runtime's own.

use std::path::PathBuf;

/// With the workspace's features: `zos-chain` builds the runtime with `runtime-benchmarks`, which
/// adds the benchmark runtime API to the metadata the node serves.
const REFRESH: &str = "ZOS_BLESS_METADATA=1 cargo test --workspace --test metadata";

/// The metadata version clients are generated from.
const VERSION: u32 = 15;

#[test]
fn checked_in_metadata_matches_the_runtime() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../chain-client/metadata/zos.scale");
    // The bytes of a `RuntimeMetadataPrefixed`, as `state_getMetadata` serves them.
    // Inside externalities: the storage-backed parameters are read when the metadata is built.
    let produced = sp_io::TestExternalities::default().execute_with(|| {
        zos_runtime::Runtime::metadata_at_version(VERSION)
            .expect("the runtime serves metadata v15")
            .to_vec()
    });
    assert_eq!(
        &produced[..4],
        b"meta",
        "metadata starts with its magic number"
    );
    if std::env::var_os("ZOS_BLESS_METADATA").is_some() {
        std::fs::write(&path, &produced).expect("writing the metadata");
        return;
    }
    let checked_in = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; create it with `{REFRESH}`", path.display()));
    assert!(
        checked_in == produced,
        "{} differs from the runtime's metadata: the runtime changed. Refresh it with `{REFRESH}` \
         and regenerate the client",
        path.display()
    );
}
