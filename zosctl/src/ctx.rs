//! What every command gets: the endpoints, the home, the signing key, the output mode.

use std::path::PathBuf;

use anyhow::Context;
use serde_json::Value;
use subxt::transactions::Payload;
use zos_chain_client::{keys::UserKey, AccountId32, ChainClient, ChainError, TxOutcome};

use crate::{
    cli::{Cli, Output},
    exit::{coded, usage, Exit},
    home::Home,
};

/// The context of a command.
pub struct Ctx {
    urls: Vec<String>,
    /// The home directory.
    pub home: Home,
    key: Option<String>,
    /// The output mode.
    pub output: Output,
}

/// What a command prints: text for people, a JSON document for scripts.
pub struct Out {
    /// Text.
    pub human: String,
    /// JSON.
    pub json: Value,
}

impl Ctx {
    /// The context of `cli`.
    pub fn new(cli: &Cli) -> anyhow::Result<Ctx> {
        let home = match &cli.home {
            Some(h) => h.clone(),
            None => {
                let user = std::env::var_os("HOME")
                    .ok_or_else(|| usage("HOME is not set: pass --home or set ZOSCTL_HOME"))?;
                PathBuf::from(user).join(".zosctl")
            }
        };
        Ok(Ctx {
            urls: cli.urls.clone(),
            home: Home::new(home),
            key: cli.key.clone(),
            output: cli.output,
        })
    }

    /// A connection to the first endpoint that answers; exit 5 when none does.
    pub async fn client(&self) -> anyhow::Result<ChainClient> {
        ChainClient::connect(&self.urls).await.map_err(|e| match e {
            ChainError::NoEndpoint { tried, last } => coded(
                Exit::Unreachable,
                format!("cannot reach the chain at {tried}: {last}"),
            ),
            e => e.into(),
        })
    }

    /// The signing key (`--key`).
    pub fn key(&self) -> anyhow::Result<UserKey> {
        let spec = self.key.as_deref().ok_or_else(|| {
            usage("this command signs: pass --key NAME_OR_URI (or set ZOSCTL_KEY)")
        })?;
        self.home.key(spec).with_context(|| format!("key {spec}"))
    }

    /// The account `spec` names, or the signing key's.
    pub fn account_or_mine(&self, spec: Option<&str>) -> anyhow::Result<AccountId32> {
        match spec {
            Some(s) => self.home.account(s),
            None => Ok(self.key()?.account()),
        }
    }

    /// A progress line, on stderr, for people only.
    pub fn progress(&self, line: impl std::fmt::Display) {
        if self.output == Output::Human {
            eprintln!("{line}");
        }
    }
}

/// Signs `call` with `key`, submits it and waits until it is finalized.
pub async fn submit<C: Payload + Send + Sync>(
    client: &ChainClient,
    key: &UserKey,
    call: &C,
    what: impl Into<String>,
) -> anyhow::Result<TxOutcome> {
    let what = what.into();
    client
        .submitter(key.clone())
        .submit(call)
        .await
        .context(what)
}
