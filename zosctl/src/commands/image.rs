//! `zosctl image push`, through the image store's own push.

use std::path::PathBuf;

use serde_json::json;
use zos_oci::push::{push_dirs, PushOptions};

use crate::{ctx::Out, exit::invalid};

/// `image push DIR... --registry HOST:PORT --repository NAME [--tag T]`.
pub async fn push(
    dirs: Vec<PathBuf>,
    registry: String,
    repository: String,
    tag: String,
) -> anyhow::Result<Out> {
    for d in &dirs {
        if !d.is_dir() {
            return Err(invalid(format!("{} is not a directory", d.display())));
        }
    }
    let options = PushOptions {
        tag,
        ..PushOptions::new(registry.clone(), repository.clone())
    };
    let pushed = push_dirs(&dirs, &options)
        .await
        .map_err(|e| anyhow::anyhow!("pushing to {registry}: {e}"))?;
    let reference = format!("{registry}/{repository}@{}", pushed.digest());
    Ok(Out {
        human: reference.clone(),
        json: json!({
            "reference": reference,
            "digest": pushed.digest().to_string(),
            "layers": pushed.layers.len(),
            "uploaded_bytes": pushed.uploaded_bytes,
        }),
    })
}
