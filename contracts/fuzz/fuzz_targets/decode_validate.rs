//! Untrusted bytes, as the chain receives them: decoding and validating never panics, and what
//! decodes re-encodes to the same bytes (one canonical encoding).
#![no_main]

use libfuzzer_sys::fuzz_target;
use parity_scale_codec::Encode;
use zos_contracts::{file::DeploymentFile, validate, Deployment};

fuzz_target!(|bytes: &[u8]| {
    let Ok(deployment) = Deployment::decode_bounded(bytes) else { return };
    assert_eq!(deployment.encode(), bytes, "a deployment has exactly one encoding");
    let _ = deployment.capacity();
    if validate(&deployment).is_ok() {
        let _ = deployment.hash();
        // A valid deployment always has a user-facing form that converts back to it.
        let file = DeploymentFile::from_deployment(&deployment).expect("valid deployments are text");
        let back = DeploymentFile::from_yaml(&file.to_yaml()).expect("own YAML reads back");
        assert_eq!(back.into_deployment(None).expect("converts back"), deployment);
    }
});
