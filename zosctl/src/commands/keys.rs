//! `zosctl key generate|import|list`.

use serde_json::json;
use zos_chain_client::keys::{NodeKey, UserKey};

use crate::{
    cli::Scheme,
    ctx::{Ctx, Out},
    exit::invalid,
};

fn scheme_of(key: &UserKey) -> &'static str {
    match key {
        UserKey::Sr25519(_) => "sr25519",
        UserKey::Ed25519(_) => "ed25519",
    }
}

/// `key generate NAME [--scheme]`.
pub fn generate(ctx: &Ctx, name: &str, scheme: Scheme) -> anyhow::Result<Out> {
    ctx.home.key_path(name)?;
    let (key, contents, secret_name, secret) = match scheme {
        Scheme::Sr25519 => {
            let (key, phrase) = UserKey::generate_sr25519()?;
            (key, format!("sr25519:{phrase}"), "mnemonic", phrase)
        }
        Scheme::Ed25519 => {
            let node = NodeKey::generate();
            let seed = hex::encode(node.signing_key().to_bytes());
            (
                UserKey::Ed25519(node),
                format!("ed25519:{seed}"),
                "seed",
                format!("0x{seed}"),
            )
        }
    };
    let path = ctx.home.write_key(name, &contents)?;
    let address = key.account().to_string();
    Ok(Out {
        human: format!(
            "key {name} ({}) saved to {} (mode 600)\naddress: {address}\n{secret_name} (shown once, it IS the key: write it down): {secret}",
            scheme_of(&key),
            path.display()
        ),
        json: json!({
            "name": name,
            "scheme": scheme_of(&key),
            "address": address,
            "path": path,
            secret_name: secret,
        }),
    })
}

/// `key import NAME (--mnemonic M | --uri U | --seed HEX [--scheme])`.
pub fn import(
    ctx: &Ctx,
    name: &str,
    mnemonic: Option<String>,
    uri: Option<String>,
    seed: Option<String>,
    scheme: Scheme,
) -> anyhow::Result<Out> {
    let (key, contents) = match (mnemonic, uri, seed) {
        (Some(m), None, None) => {
            let m = m.split_whitespace().collect::<Vec<_>>().join(" ");
            if m.split(' ').count() < 12 {
                return Err(invalid("a mnemonic has 12 to 24 words"));
            }
            let key =
                UserKey::from_uri(&m).map_err(|e| invalid(format!("not a valid mnemonic: {e}")))?;
            (key, format!("sr25519:{m}"))
        }
        (None, Some(u), None) => {
            let key = UserKey::from_uri(&u)
                .map_err(|e| invalid(format!("not a valid secret URI: {e}")))?;
            (key, format!("sr25519:{u}"))
        }
        (None, None, Some(s)) => {
            let hex_seed = s.trim().trim_start_matches("0x").to_string();
            let mut bytes = [0u8; 32];
            hex::decode_to_slice(&hex_seed, &mut bytes)
                .map_err(|_| invalid("a seed is 32 bytes: 64 hex digits"))?;
            match scheme {
                Scheme::Ed25519 => (
                    UserKey::Ed25519(NodeKey::from_seed(bytes)),
                    format!("ed25519:{hex_seed}"),
                ),
                Scheme::Sr25519 => {
                    let uri = format!("0x{hex_seed}");
                    (UserKey::from_uri(&uri)?, format!("sr25519:{uri}"))
                }
            }
        }
        _ => {
            return Err(crate::exit::usage(
                "give exactly one of --mnemonic, --uri or --seed",
            ))
        }
    };
    let path = ctx.home.write_key(name, &contents)?;
    let address = key.account().to_string();
    Ok(Out {
        human: format!(
            "key {name} ({}) saved to {} (mode 600)\naddress: {address}",
            scheme_of(&key),
            path.display()
        ),
        json: json!({ "name": name, "scheme": scheme_of(&key), "address": address, "path": path }),
    })
}

/// `key list`.
pub fn list(ctx: &Ctx) -> anyhow::Result<Out> {
    let keys = ctx.home.keys()?;
    let mut human = String::new();
    let mut rows = Vec::new();
    if keys.is_empty() {
        human.push_str(&format!(
            "no keys in {} (zosctl key generate NAME)",
            ctx.home.root().join("keys").display()
        ));
    } else {
        human.push_str(&format!("{:<20} {:<8} ADDRESS\n", "NAME", "SCHEME"));
    }
    for k in keys {
        match &k.key {
            Ok(key) => {
                human.push_str(&format!(
                    "{:<20} {:<8} {}\n",
                    k.name,
                    scheme_of(key),
                    key.account()
                ));
                rows.push(json!({ "name": k.name, "scheme": scheme_of(key), "address": key.account().to_string() }));
            }
            Err(e) => {
                human.push_str(&format!("{:<20} {:<8} unreadable: {e:#}\n", k.name, "?"));
                rows.push(json!({ "name": k.name, "error": format!("{e:#}") }));
            }
        }
    }
    Ok(Out {
        human,
        json: json!(rows),
    })
}
