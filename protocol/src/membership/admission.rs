//! Admission: identities that cost something.
//!
//! An identity is admitted when an issuer named in the node's config (a PDMS provider that
//! certifies its instances) signs a certificate for it. Each issuer has a quota `q`, enforced
//! without any global count: a certificate carries a serial number, serials must lie in
//! `0..q`, and two certificates of one issuer with the same serial for different identities
//! are an equivocation that removes both (and the pair is remembered). So one issuer can never
//! have more than `q` admitted identities at once, whoever counts. An admitted identity becomes
//! eligible for selection only `min_age_epochs` after the epoch its certificate names.

use crate::ids::{hash_parts, NodeId};
use crate::limits::{MAX_ISSUERS, MAX_ISSUER_QUOTA};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An issuer's ed25519 verifying key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct IssuerKey(pub [u8; 32]);

/// An issuer's statement: `node` is admitted under `serial`, from `epoch` on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    pub node: NodeId,
    pub issuer: IssuerKey,
    pub serial: u32,
    /// The membership epoch the certificate was issued in: the identity's age counts from it.
    pub epoch: u64,
    /// ed25519 over [`Certificate::signing_bytes`], 64 bytes.
    pub signature: Vec<u8>,
}

impl Certificate {
    pub fn signing_bytes(node: &NodeId, issuer: &IssuerKey, serial: u32, epoch: u64) -> [u8; 32] {
        hash_parts(
            "grove/admission/v1",
            &[
                &node.0,
                &issuer.0,
                &serial.to_be_bytes(),
                &epoch.to_be_bytes(),
            ],
        )
    }

    /// Signs a certificate (the issuer's tool, `grove init` and the demo use it).
    pub fn issue(issuer: &SigningKey, node: NodeId, serial: u32, epoch: u64) -> Certificate {
        let key = IssuerKey(issuer.verifying_key().to_bytes());
        let signature = issuer
            .sign(&Certificate::signing_bytes(&node, &key, serial, epoch))
            .to_bytes()
            .to_vec();
        Certificate {
            node,
            issuer: key,
            serial,
            epoch,
            signature,
        }
    }

    /// A 64-bit fingerprint of the whole certificate, for anti-entropy digests.
    pub fn fingerprint(&self) -> u64 {
        let h = hash_parts(
            "grove/admission-fingerprint",
            &[
                &self.node.0,
                &self.issuer.0,
                &self.serial.to_be_bytes(),
                &self.epoch.to_be_bytes(),
                &self.signature,
            ],
        );
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmissionError {
    #[error("issuer is not named in this node's admission policy")]
    UnknownIssuer,
    #[error("serial {serial} is outside the issuer's quota {quota}")]
    OverQuota { serial: u32, quota: u32 },
    #[error("certificate signature does not verify")]
    BadSignature,
    #[error("certificate is issued for epoch {epoch}, after the current epoch {current}")]
    FromTheFuture { epoch: u64, current: u64 },
    #[error("the issuer used serial {serial} for two identities: both are refused")]
    Equivocation { serial: u32 },
    #[error("the policy names more than the allowed number of issuers or too large a quota")]
    PolicyTooLarge,
}

/// Which issuers a node accepts, with their quotas, and how old an identity must be before it
/// can be selected. Every honest node of one deployment uses the same policy (it is part of
/// the network's config, like the beacon chain).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdmissionPolicy {
    pub issuers: BTreeMap<IssuerKey, u32>,
    pub min_age_epochs: u64,
}

impl AdmissionPolicy {
    pub fn new(
        issuers: BTreeMap<IssuerKey, u32>,
        min_age_epochs: u64,
    ) -> Result<Self, AdmissionError> {
        if issuers.len() > MAX_ISSUERS || issuers.values().any(|q| *q > MAX_ISSUER_QUOTA) {
            return Err(AdmissionError::PolicyTooLarge);
        }
        Ok(AdmissionPolicy {
            issuers,
            min_age_epochs,
        })
    }

    /// Checks issuer, quota, epoch and signature (the costly part last). Remote input.
    pub fn check(&self, cert: &Certificate, current_epoch: u64) -> Result<(), AdmissionError> {
        self.check_without_signature(cert, current_epoch)?;
        let key =
            VerifyingKey::from_bytes(&cert.issuer.0).map_err(|_| AdmissionError::BadSignature)?;
        let signature = ed25519_dalek::Signature::from_slice(&cert.signature)
            .map_err(|_| AdmissionError::BadSignature)?;
        key.verify_strict(
            &Certificate::signing_bytes(&cert.node, &cert.issuer, cert.serial, cert.epoch),
            &signature,
        )
        .map_err(|_| AdmissionError::BadSignature)
    }

    /// Issuer, quota and epoch: for a certificate whose exact bytes already verified.
    pub fn check_without_signature(
        &self,
        cert: &Certificate,
        current_epoch: u64,
    ) -> Result<(), AdmissionError> {
        let quota = *self
            .issuers
            .get(&cert.issuer)
            .ok_or(AdmissionError::UnknownIssuer)?;
        if cert.serial >= quota {
            return Err(AdmissionError::OverQuota {
                serial: cert.serial,
                quota,
            });
        }
        // One epoch of slack for clock skew between the issuer and this node.
        if cert.epoch > current_epoch.saturating_add(1) {
            return Err(AdmissionError::FromTheFuture {
                epoch: cert.epoch,
                current: current_epoch,
            });
        }
        Ok(())
    }

    /// Whether an admitted certificate's identity is old enough to be selected at `epoch`.
    pub fn eligible(&self, cert: &Certificate, epoch: u64) -> bool {
        self.eligible_from(cert.epoch, epoch)
    }

    /// [`AdmissionPolicy::eligible`] for an identity issued in `issued_epoch` (the view keeps
    /// identities without their certificates).
    pub fn eligible_from(&self, issued_epoch: u64, epoch: u64) -> bool {
        issued_epoch.saturating_add(self.min_age_epochs) <= epoch
    }
}
