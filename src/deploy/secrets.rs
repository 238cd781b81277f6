//! Secrets made from .env files: read with the dotenv parser (later files override earlier
//! ones), and applied server-side as devenv's. Values never reach a log, the terminal or an
//! error: only keys and line numbers are ever shown.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret as K8sSecret;
use kube::Api;
use kube::api::{ObjectMeta, Patch, PatchParams};

use super::dotenv;
use crate::cluster::kube::{FIELD_MANAGER, KubeError, MANAGED_BY, Target};
use crate::config::{Config, Secret};

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// An .env file could not be read.
    #[error("cannot read {}: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// An .env line is malformed (the message never contains a value).
    #[error("{}:{line}: {message}", file.display())]
    Parse {
        file: PathBuf,
        line: usize,
        message: String,
    },
    /// A `keys` entry names a .env key the files do not have.
    #[error("Secret `{secret}` takes key `{key}` from `{env}`, which {files} does not have")]
    MissingKey {
        secret: String,
        key: String,
        env: String,
        files: String,
    },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// A Secret ready to apply, and what was noticed on the way (duplicate keys).
#[derive(Debug)]
pub struct Prepared {
    pub name: String,
    pub namespace: String,
    pub values: dotenv::Values,
    pub warnings: Vec<String>,
}

/// Reads the .env files of `secret`; `shown` names a file for messages.
pub fn prepare(secret: &Secret, shown: &dyn Fn(&Path) -> String) -> Result<Prepared, SecretError> {
    let mut values = BTreeMap::new();
    let mut warnings = Vec::new();
    for file in &secret.env_files {
        let bytes = dotenv::read_file(file).map_err(|source| SecretError::Read {
            file: PathBuf::from(shown(file)),
            source,
        })?;
        let parsed = dotenv::parse_bytes(&bytes).map_err(|p| SecretError::Parse {
            file: PathBuf::from(shown(file)),
            line: p.line,
            message: p.message,
        })?;
        warnings.extend(
            parsed
                .warnings
                .into_iter()
                .map(|w| format!("{}:{}: {}", shown(file), w.line, w.message)),
        );
        for (k, v) in parsed.values.0 {
            if values.contains_key(&k) && secret.env_files.len() > 1 {
                warnings.push(format!(
                    "{}: `{k}` overrides the value from an earlier file",
                    shown(file)
                ));
            }
            values.insert(k, v);
        }
    }
    // More keys, each with the value of a .env key (a chart that reads `database-url`).
    for (key, env) in &secret.keys {
        let Some(v) = values.get(env).cloned() else {
            return Err(SecretError::MissingKey {
                secret: secret.name.clone(),
                key: key.clone(),
                env: env.clone(),
                files: secret
                    .env_files
                    .iter()
                    .map(|f| shown(f))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        };
        values.insert(key.clone(), v);
    }
    Ok(Prepared {
        name: secret.name.clone(),
        namespace: secret.namespace.clone(),
        values: dotenv::Values(values),
        warnings,
    })
}

/// The Secret object devenv applies.
pub fn object(p: &Prepared, project: &str) -> K8sSecret {
    K8sSecret {
        metadata: ObjectMeta {
            name: Some(p.name.clone()),
            namespace: Some(p.namespace.clone()),
            labels: Some(BTreeMap::from([
                (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                ("devenv.dev/project".to_owned(), project.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(
            p.values
                .0
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..K8sSecret::default()
    }
}

/// Applies the Secret server-side (field manager `devenv`), replacing its keys.
pub async fn apply(t: &Target, cfg: &Config, p: &Prepared) -> Result<(), SecretError> {
    let api: Api<K8sSecret> = Api::namespaced(t.client.clone(), &p.namespace);
    let mut obj = object(p, &cfg.project);
    obj.metadata.managed_fields = None;
    let mut body = serde_json::to_value(&obj).map_err(|e| KubeError::Api {
        what: format!("secret `{}`", p.name),
        source: kube::Error::SerdeError(e).into(),
    })?;
    body["apiVersion"] = "v1".into();
    body["kind"] = "Secret".into();
    api.patch(
        &p.name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| KubeError::Api {
        // The error names the Secret, never its content.
        what: format!("applying secret `{}` in `{}`", p.name, p.namespace),
        source: e.into(),
    })?;
    Ok(())
}
