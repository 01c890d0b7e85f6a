//! Exit codes, and which failure gets which.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | anything else (not found, timeout, I/O, an unexpected chain answer) |
//! | 2 | usage (clap's own errors, and a missing `--key` or `--node`) |
//! | 3 | invalid input: a deployment file, a deployment, a key or key file, an account, a group |
//! | 4 | refused: the chain refused the call (`Pallet::Error`), or pallet-multisig's rules do |
//! | 5 | the chain cannot be reached |

use zos_chain_client::{multisig::MultisigError, ChainError};
use zos_contracts::{file::FileError, ValidationError};

/// What kind of failure ended the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1.
    Other = 1,
    /// 2.
    Usage = 2,
    /// 3.
    Invalid = 3,
    /// 4.
    Refused = 4,
    /// 5.
    Unreachable = 5,
}

/// An error with its exit code chosen where it happened.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Coded {
    /// The exit code.
    pub exit: Exit,
    /// What to tell the user.
    pub message: String,
}

/// An error ending with exit `exit`.
pub fn coded(exit: Exit, message: impl Into<String>) -> anyhow::Error {
    Coded {
        exit,
        message: message.into(),
    }
    .into()
}

/// Exit 3.
pub fn invalid(message: impl Into<String>) -> anyhow::Error {
    coded(Exit::Invalid, message)
}

/// Exit 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    coded(Exit::Usage, message)
}

/// Exit 1.
pub fn other(message: impl Into<String>) -> anyhow::Error {
    coded(Exit::Other, message)
}

/// The exit code of `error`: the first cause in its chain that says.
pub fn classify(error: &anyhow::Error) -> Exit {
    for cause in error.chain() {
        if let Some(c) = cause.downcast_ref::<Coded>() {
            return c.exit;
        }
        if let Some(e) = cause.downcast_ref::<ChainError>() {
            return chain(e);
        }
        if let Some(e) = cause.downcast_ref::<MultisigError>() {
            return match e {
                MultisigError::Threshold { .. }
                | MultisigError::DuplicateMember(_)
                | MultisigError::NotMember { .. } => Exit::Invalid,
                MultisigError::AlreadyProposed { .. }
                | MultisigError::AlreadyApproved { .. }
                | MultisigError::NotProposer { .. } => Exit::Refused,
                MultisigError::NoProposal { .. } | MultisigError::CallUnavailable { .. } => {
                    Exit::Other
                }
                MultisigError::Chain(e) => chain(e),
            };
        }
        if cause.downcast_ref::<FileError>().is_some()
            || cause.downcast_ref::<ValidationError>().is_some()
        {
            return Exit::Invalid;
        }
    }
    Exit::Other
}

fn chain(e: &ChainError) -> Exit {
    match e {
        ChainError::Dispatch(_) => Exit::Refused,
        ChainError::NoEndpoint { .. } => Exit::Unreachable,
        ChainError::KeyFile { .. } | ChainError::InvalidKey(_) => Exit::Invalid,
        // The pool's verdict on a transaction it will never take (e.g. the fee cannot be paid).
        ChainError::Subxt(s) if s.to_string().to_lowercase().contains("invalid transaction") => {
            Exit::Refused
        }
        _ => Exit::Other,
    }
}

/// The message of a chain error: `Pallet::Error: docs` for what the chain refused.
pub fn describe(error: &anyhow::Error) -> String {
    for cause in error.chain() {
        let dispatch = match cause.downcast_ref::<ChainError>() {
            Some(ChainError::Dispatch(f)) => Some(f),
            _ => match cause.downcast_ref::<MultisigError>() {
                Some(MultisigError::Chain(ChainError::Dispatch(f))) => Some(f),
                _ => None,
            },
        };
        if let Some(f) = dispatch {
            // Keep the context added above the chain error, then the pallet error by name.
            let context: Vec<String> = error
                .chain()
                .take_while(|c| !std::ptr::eq(*c, cause))
                .map(|c| c.to_string())
                .collect();
            let refused = crate::fmt::failure(f);
            return if context.is_empty() {
                format!("refused by the chain: {refused}")
            } else {
                format!("{}: refused by the chain: {refused}", context.join(": "))
            };
        }
    }
    format!("{error:#}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;
    use zos_chain_client::DispatchFailure;

    #[test]
    fn causes_choose_the_code() {
        let refused = anyhow::Error::new(ChainError::Dispatch(DispatchFailure {
            pallet: "Deployments".into(),
            error: "InsufficientBalance".into(),
            docs: "The owner cannot pay.".into(),
        }))
        .context("creating the contract");
        assert_eq!(classify(&refused), Exit::Refused);
        assert_eq!(
            describe(&refused),
            "creating the contract: refused by the chain: Deployments::InsufficientBalance: The owner cannot pay."
        );
        let unreachable = anyhow::Error::new(ChainError::NoEndpoint {
            tried: "ws://127.0.0.1:1".into(),
            last: "refused".into(),
        });
        assert_eq!(classify(&unreachable), Exit::Unreachable);
        assert_eq!(classify(&invalid("bad").context("x")), Exit::Invalid);
        assert_eq!(classify(&anyhow::anyhow!("whatever")), Exit::Other);
        let e: anyhow::Result<()> = Err(ChainError::InvalidKey("no".into())).context("key");
        assert_eq!(classify(&e.unwrap_err()), Exit::Invalid);
    }
}
