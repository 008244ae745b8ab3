//! The one place a Kubernetes API client is made: from a kubeconfig when one is named
//! (`--kubeconfig`, `--context`), else in-cluster (the Pod's service account), else the
//! kubeconfig `KUBECONFIG` or `~/.kube/config` points at.
//!
//! Owns configuration loading only; it watches and writes nothing.

use std::path::{Path, PathBuf};

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

/// Why no client could be made; each message names where the configuration was looked for and
/// is complete (the cause is part of it, not a separate `source`, so it prints once).
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--kubeconfig {}: {error}", path.display())]
    Kubeconfig {
        path: PathBuf,
        error: kube::config::KubeconfigError,
    },
    #[error("no in-cluster service account and no usable kubeconfig (KUBECONFIG or ~/.kube/config): {0}")]
    Infer(kube::config::KubeconfigError),
    #[error("--context {context}: {error}")]
    Context {
        context: String,
        error: kube::config::KubeconfigError,
    },
    #[error("cannot build the Kubernetes client: {0}")]
    Client(kube::Error),
}

/// A client for the API server: `kubeconfig` (with `context`, else its current context) when
/// given; else in-cluster; else the default kubeconfig (with `context` when given).
pub async fn client(kubeconfig: Option<&Path>, context: Option<&str>) -> Result<kube::Client, ClientError> {
    let options = KubeConfigOptions {
        context: context.map(str::to_string),
        ..KubeConfigOptions::default()
    };
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|error| ClientError::Kubeconfig {
                path: path.to_path_buf(),
                error,
            })?;
            Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|error| ClientError::Kubeconfig {
                    path: path.to_path_buf(),
                    error,
                })?
        }
        None => match (context, Config::incluster()) {
            (None, Ok(config)) => config,
            (Some(context), _) => Config::from_kubeconfig(&options)
                .await
                .map_err(|error| ClientError::Context {
                    context: context.to_string(),
                    error,
                })?,
            (None, Err(_)) => Config::from_kubeconfig(&options).await.map_err(ClientError::Infer)?,
        },
    };
    kube::Client::try_from(config).map_err(ClientError::Client)
}
