//! The state of each ACME certificate (issued, pending, failed, not issuable; expiry, last
//! error). Written by the ACME task (`src/acme.rs`), read by `/metrics`
//! (`vestibule_acme_certificate_expiry_seconds`, `vestibule_acme_certificate_ready`,
//! `vestibule_acme_order_failures_total`) and `/api/status` (`acme`).
//!
//! The task replaces the whole list at once; readers copy it. Never touched by the data plane.

use std::sync::Mutex;

use serde::Serialize;

use super::{header, lock, sample};

/// One host's certificate, as `/api/status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AcmeCertificate {
    pub host: String,
    /// `namespace/name` of the Ingress that asks for it.
    pub ingress: String,
    /// `issued`, `ordering`, `failed` (retried; see `lastError`, `nextAttemptAt`) or `notIssuable`.
    pub state: String,
    /// Seconds since the Unix epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// Failed orders since the last success.
    pub failures: u64,
    /// Orders placed for this host since start (successful or not).
    pub orders: u64,
}

/// Every ACME host's certificate state.
#[derive(Debug, Default)]
pub struct AcmeCertificates {
    all: Mutex<Vec<AcmeCertificate>>,
}

impl AcmeCertificates {
    /// Replaces the whole list (sorted by host).
    pub fn set(&self, mut certificates: Vec<AcmeCertificate>) {
        certificates.sort_by(|a, b| a.host.cmp(&b.host));
        *lock(&self.all) = certificates;
    }

    pub fn all(&self) -> Vec<AcmeCertificate> {
        lock(&self.all).clone()
    }

    pub(super) fn encode(&self, out: &mut String) {
        let all = self.all();
        if all.is_empty() {
            return;
        }
        header(
            out,
            "vestibule_acme_certificate_ready",
            "gauge",
            "1 while the host is served with a certificate the ACME CA issued.",
        );
        for cert in &all {
            let ready = u64::from(cert.not_after.is_some());
            sample(out, "vestibule_acme_certificate_ready", &[("host", &cert.host)], ready);
        }
        header(
            out,
            "vestibule_acme_certificate_expiry_seconds",
            "gauge",
            "The notAfter of the host's ACME certificate, in seconds since the Unix epoch.",
        );
        for cert in &all {
            if let Some(not_after) = cert.not_after {
                sample(
                    out,
                    "vestibule_acme_certificate_expiry_seconds",
                    &[("host", &cert.host)],
                    not_after,
                );
            }
        }
        header(
            out,
            "vestibule_acme_order_failures_total",
            "counter",
            "Failed ACME orders of the host since its last success.",
        );
        for cert in &all {
            sample(
                out,
                "vestibule_acme_order_failures_total",
                &[("host", &cert.host)],
                cert.failures,
            );
        }
    }
}
