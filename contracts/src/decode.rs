//! Decoding deployments from untrusted bytes.

use codec::DecodeLimit;

use crate::{limits, model::Deployment};

/// Why bytes are not a deployment.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum DecodeError {
    /// More bytes than any deployment may have.
    TooLarge {
        /// Bytes given.
        len: usize,
    },
    /// Not a SCALE encoding of a deployment, or bytes left over after one.
    Malformed,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            DecodeError::TooLarge { len } => write!(
                f,
                "deployment is {len} bytes, more than the {} allowed",
                limits::MAX_ENCODED_LEN
            ),
            DecodeError::Malformed => f.write_str("bytes are not a SCALE-encoded deployment"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}

impl Deployment {
    /// Decodes untrusted bytes: at most [`limits::MAX_ENCODED_LEN`] bytes, nesting bounded,
    /// every collection bounded by its type, and no trailing bytes. Never panics.
    pub fn decode_bounded(bytes: &[u8]) -> Result<Deployment, DecodeError> {
        if bytes.len() > limits::MAX_ENCODED_LEN as usize {
            return Err(DecodeError::TooLarge { len: bytes.len() });
        }
        let mut input = bytes;
        Deployment::decode_all_with_depth_limit(limits::MAX_DECODE_DEPTH, &mut input)
            .map_err(|_| DecodeError::Malformed)
    }
}
