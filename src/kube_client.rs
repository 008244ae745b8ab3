//! The Kubernetes API client every Kubernetes-mode part shares: in-cluster (the pod's service
//! account) when no kubeconfig or context is named, else a kubeconfig (`--kubeconfig`, else
//! `KUBECONFIG`, else `~/.kube/config`) and its `--context`.

use std::path::{Path, PathBuf};

use kube::config::{Config, KubeConfigOptions, Kubeconfig};

/// Why no client could be built; each message names the flag or file at fault and is complete
/// (no separate `source`), so it prints once.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--kubeconfig {}: {error}", path.display())]
    Kubeconfig {
        path: PathBuf,
        error: kube::config::KubeconfigError,
    },
    #[error("no in-cluster service account and no usable kubeconfig ({error}); pass --kubeconfig")]
    Infer { error: kube::config::KubeconfigError },
    #[error("cannot build the Kubernetes client: {0}")]
    Client(kube::Error),
}

/// A client: in-cluster when `kubeconfig` and `context` are both `None` and the process runs
/// in a pod, else from the kubeconfig.
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
            _ => Config::from_kubeconfig(&options)
                .await
                .map_err(|error| ClientError::Infer { error })?,
        },
    };
    kube::Client::try_from(config).map_err(ClientError::Client)
}
