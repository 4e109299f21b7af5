//! `secretEnv`: values read from files on the host when a revision is resolved for plan or apply.
//! The model keeps only the file and a digest of its content, so the digest (not the value)
//! reaches hashes, labels, plans and saved plans; the values travel beside the model in
//! [`SecretValues`], whose `Debug` shows nothing.

use super::diag::{Diagnostic, Diagnostics};
use super::model::DesiredState;
use sha2::{Digest, Sha256};

/// Reads every secret file, records its digest in the spec and its value in `d.secrets`.
pub fn resolve(d: &mut DesiredState) -> Result<(), Diagnostics> {
    let mut diags = Vec::new();
    for (name, c) in d.containers.iter_mut() {
        for (var, r) in c.spec.secret_env.iter_mut() {
            match std::fs::read_to_string(&r.file) {
                Ok(value) => {
                    let value = value.strip_suffix('\n').unwrap_or(&value).to_string();
                    r.sha256 = Some(hex::encode(&Sha256::digest(value.as_bytes())[..8]));
                    d.secrets.0.insert((name.clone(), var.clone()), value);
                }
                Err(e) => diags.push(Diagnostic {
                    file: c.origin.file.clone(),
                    pos: c.origin.pos,
                    message: format!("Container `{name}`: cannot read secretEnv.{var} from `{}`: {e}", r.file),
                    source_line: None,
                }),
            }
        }
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(Diagnostics(diags))
    }
}
