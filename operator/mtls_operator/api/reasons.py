"""Every reason the operator writes into a condition or an Event, with what it means and what to do.

The reasons are stable API: users alert and script on them. This catalogue is what the manual's reference page is
generated from (hack/gen_docs.py); tests/unit/test_api_reasons.py fails when the code uses a reason that is not here,
or this lists one the code no longer uses.
"""

from __future__ import annotations

from dataclasses import dataclass

CERTIFICATE = "MtlsCertificate"
ISSUER = "MtlsIssuer and ClusterMtlsIssuer"
REVOCATION = "MtlsRevocation"


@dataclass(frozen=True)
class Reason:
    appears_on: str
    where: str
    meaning: str


def _certificate(where: str, meaning: str) -> Reason:
    return Reason(CERTIFICATE, where, meaning)


def _issuer(where: str, meaning: str) -> Reason:
    return Reason(ISSUER, where, meaning)


def _revocation(where: str, meaning: str) -> Reason:
    return Reason(REVOCATION, where, meaning)


READY_FALSE = "Ready=False, Warning Event"
READY_WAITING = "Ready=False (waiting), Normal Event"
NORMAL_EVENT = "Normal Event"
WARNING_EVENT = "Warning Event"
UPLOAD = "Ready=False for the upload, Warning Event; the certificate in service keeps serving"

REASONS: dict[str, Reason] = {
    # --- MtlsCertificate: in service
    "Ready": _certificate("Ready=True", "A certificate is in service and a real TLS stack accepts its chain."),
    "Issued": _certificate(NORMAL_EVENT, "The first certificate was put in service."),
    "Renewed": _certificate(NORMAL_EVENT, "A new certificate replaced the one in service."),
    "Adopted": _certificate(
        NORMAL_EVENT,
        "An existing Secret of ours (labelled for this certificate) was taken over "
        "after the object was re-created; its key was kept.",
    ),
    "NamesNotCovered": _certificate(
        WARNING_EVENT,
        "The signed certificate's subjectAltName DNS names do not include "
        "spec.commonName or spec.dnsNames: servers that check names may refuse it. Ask the "
        "partner to sign with the CSR's names.",
    ),
    "PrivateKeyIgnored": _certificate(
        WARNING_EVENT,
        "The uploaded file carried a private key; it was not used (our "
        "key never leaves the cluster, and a key sent with a certificate is not ours).",
    ),
    # --- MtlsCertificate: waiting
    "AwaitingSignature": _certificate(
        READY_WAITING,
        "signer manual: the CSR is published "
        "(`kubectl mtls csr NAME`); send it to the partner and import what they sign "
        "(`kubectl mtls import`). Alert: MtlsCertificateAwaitingSignature.",
    ),
    "CSRCreated": _certificate(
        NORMAL_EVENT, "A CSR was published (signer manual) or a CertificateSigningRequest created (signer kubernetes)."
    ),
    "AwaitingApproval": _certificate(
        READY_WAITING,
        "signer kubernetes: the CertificateSigningRequest waits for an approver (`kubectl certificate approve`).",
    ),
    "AwaitingCertificate": _certificate(
        READY_WAITING,
        "signer kubernetes: approved, waiting for the signer named in signerName to write the certificate.",
    ),
    "IssuanceRateLimited": _certificate(
        "Ready (unchanged status), delayed issuance",
        "Issuances came too close "
        "together (a duration near the floor, repeated renew requests): the next waits "
        "30 s doubling up to a quarter of the duration floor.",
    ),
    # --- MtlsCertificate: the spec or the platform refuses
    "InvalidSpec": _certificate(
        READY_FALSE,
        "The spec cannot be served as written (the message names the field). "
        "Fix the object; nothing is issued meanwhile.",
    ),
    "SecretConflict": _certificate(
        READY_FALSE,
        "spec.secretName (or a keystore Secret) exists and is not ours: the "
        "operator never overwrites a Secret it did not create. Pick another name or delete "
        "the Secret.",
    ),
    "PublishCAConflict": _certificate(
        WARNING_EVENT,
        "The ConfigMap named by spec.publishCA exists and was not written "
        "by the operator: nothing is published into it.",
    ),
    "SignerNotEnabled": _certificate(
        READY_FALSE, "The certificate asks for a signer this installation does not run (the chart's signers.*.enabled)."
    ),
    "DurationBelowFloor": _certificate(
        READY_FALSE, "spec.duration is below the installation's floor (--min-duration, chart certificates.minDuration)."
    ),
    "RenewBeforeBelowFloor": _certificate(
        READY_FALSE, "spec.renewBefore is below the installation's floor (--min-renew-before)."
    ),
    "KeystorePasswordNotFound": _certificate(
        "Ready=False (the PEM files serve), Warning Event",
        "The Secret or key "
        "named by spec.keystores.pkcs12.passwordSecretRef is missing: tls.crt "
        "and tls.key are in service, the PKCS#12 stores are not written.",
    ),
    # --- MtlsCertificate: an upload (manual signer, `kubectl mtls import`) refused
    "InvalidCertificate": _certificate(
        UPLOAD, "The uploaded file holds no readable certificate, or one with an unsupported key algorithm."
    ),
    "InvalidChain": _certificate(
        UPLOAD, "The files hold certificates that do not form a chain from our certificate (or too many of them)."
    ),
    "KeyMismatch": _certificate(
        UPLOAD,
        "No certificate in the upload is for our private key: the partner signed "
        "another CSR. Send the current one (`kubectl mtls csr`).",
    ),
    "CACertificateOnly": _certificate(
        UPLOAD, "The upload holds only CA certificates: the partner sent their CA, not our signed certificate."
    ),
    "UntrustedChain": _certificate(
        UPLOAD,
        "The chain does not verify to ca.crt the way a TLS server would verify "
        "it; the message says which link fails. Ask the partner for the CA that signed it.",
    ),
    "Expired": _certificate(
        "Ready=False, phase Expired; for an upload as above",
        "The certificate in service (or "
        "the uploaded one, or a CA of its chain) is past notAfter. Alert: "
        "MtlsCertificateExpired.",
    ),
    "NotYetValid": _certificate(
        UPLOAD,
        "The uploaded certificate (or a CA of its chain) is not valid yet: a clock or "
        "a wrong notBefore at the partner.",
    ),
    "WrongUsage": _certificate(
        UPLOAD,
        "The certificate's key usage or extended key usage does not allow TLS client "
        "authentication (clientAuth), or a CA may not sign certificates.",
    ),
    "CommonNameMismatch": _certificate(UPLOAD, "The signed certificate's CN is not spec.commonName."),
    "InvalidKey": _certificate(
        READY_FALSE, "Bring your own: tls.key in the uploaded Secret is not a readable unencrypted private key."
    ),
    "KeySpecMismatch": _certificate(
        READY_FALSE, "Bring your own: the uploaded key is not of spec.privateKey's algorithm or size."
    ),
    # --- MtlsCertificate: RenewalDue and ChainValid
    "NotDue": _certificate("RenewalDue=False", "No renewal in progress."),
    "RenewalDue": _certificate(
        "RenewalDue=True, Warning Event",
        "Inside the renewal window (spec.renewBefore, 30 days "
        "by default). For the manual signer, send the new CSR. Alert: "
        "MtlsCertificateRenewalDue.",
    ),
    "NoCertificate": _certificate("RenewalDue=True", "Nothing is in service yet: the first certificate is issued."),
    "RenewalRequested": _certificate("RenewalDue=True", "`kubectl mtls renew` asked for a renewal now."),
    "KeySpecChanged": _certificate("RenewalDue=True", "spec.privateKey changed: a new key and certificate are issued."),
    "CommonNameChanged": _certificate("RenewalDue=True", "spec.commonName changed: a new certificate is issued."),
    "CSRChanged": _certificate("RenewalDue=True", "Outbound: the partner sent a CSR for another key (spec.csr)."),
    "Replaced": _certificate(
        NORMAL_EVENT,
        "A certificate for the key in service was uploaded before renewal was due; it replaced the one in service.",
    ),
    "IssuerRotated": _certificate(
        "RenewalDue=True",
        "The issuer's CA keypair changed: re-issued by the new CA, spread over the issuer's rotation window.",
    ),
    "Revoked": _certificate(
        "Ready=False (phase Failed), or RenewalDue=True for keyCompromise",
        "The certificate in "
        "service was revoked (an MtlsRevocation). keyCompromise of ours: re-issued at once with a "
        "new key; other reasons: `kubectl mtls renew` issues a new one.",
    ),
    "ChainValid": _certificate("ChainValid=True", "The CAs the certificate depends on stay valid as long as it does."),
    "NoCACertificates": _certificate("ChainValid=True", "The Secret holds no CA certificate to judge."),
    "ChainExpiresFirst": _certificate(
        "ChainValid=False",
        "A CA of the chain expires before the certificate: "
        "connections fail from that day. Alert: MtlsCertificateChainExpiringSoon.",
    ),
    "ChainExpired": _certificate(
        "ChainValid=False", "A CA of the chain has expired. Alert: MtlsCertificateChainExpired."
    ),
    # --- MtlsCertificate: signer ca and the issuers
    "CANotFound": Reason(
        f"{CERTIFICATE}, {ISSUER}",
        READY_FALSE,
        "The CA Secret (signer.ca.secretName, an issuer's "
        "spec.ca.secretName) or its keys do not exist. Create it; the object retries.",
    ),
    "CAInvalid": Reason(
        f"{CERTIFICATE}, {ISSUER}",
        READY_FALSE,
        "The CA keypair is unusable: not a CA certificate, "
        "a key that does not match it, or it would sign certificates servers refuse.",
    ),
    "IssuerNotFound": Reason(
        f"{CERTIFICATE}, {REVOCATION}",
        READY_FALSE,
        "The issuer named by spec.signer.issuerRef (or the revocation's issuerRef) does not exist.",
    ),
    "IssuerNotReady": _certificate(READY_FALSE, "The issuer cannot sign now; its own Ready condition says why."),
    "UsePolicyMissing": _certificate(
        READY_FALSE,
        "The admission policy that enforces the `use` verb on cluster "
        "issuers is not in force, so the operator does not sign for cluster issuers "
        "(--cluster-issuer-use-policy).",
    ),
    "SecretNotReadable": _certificate(
        "Ready=False, Warning Event; a certificate in service keeps serving",
        "The certificate names a Secret (signer.ca.secretName, signer.manual.signedSecretName, caFrom, the keystores' "
        "passwordSecretRef) that its recorded requester may not get: the operator does not read it on their "
        "behalf. Name a Secret they may read, or grant them get on it (asked again every minute).",
    ),
    "RequesterUnknown": _certificate(
        "Ready=False, Warning Event; a certificate in service keeps serving",
        "A ClusterMtlsIssuer signs only for a requester who holds the RBAC verb use on it, and nobody is recorded "
        "as this certificate's requester (annotation mtls.dev/requested-by, written at admission). Re-apply the "
        "certificate (the chart's MutatingAdmissionPolicy records you), or the issuer's owner sets "
        "spec.policy.openToSelectedNamespaces.",
    ),
    "UseNotAllowed": _certificate(
        "Ready=False, Warning Event; a certificate in service keeps serving",
        "The certificate's recorded requester no longer holds the RBAC verb use on the ClusterMtlsIssuer (asked "
        "with a SubjectAccessReview at every issuance and renewal, remembered a minute): nothing is signed; the "
        "certificate in service serves until it expires.",
    ),
    "PolicyViolation": _certificate(
        READY_FALSE,
        "The issuer's policy (allowed names, subject, key, duration) refuses "
        "what the certificate asks for; the message names the rule and the value.",
    ),
    "CSRRejected": _certificate(
        READY_FALSE,
        "Outbound: the partner's CSR is unreadable, its signature does not "
        "verify, or its subject holds a repeated, multi-valued or unsupported attribute.",
    ),
    "KeyRevoked": _certificate(
        READY_FALSE, "Outbound: the partner's CSR is for a key revoked for keyCompromise; ask for a CSR with a new key."
    ),
    # --- MtlsCertificate: signer kubernetes
    "SignerNameNotAllowed": _certificate(
        READY_FALSE,
        "spec.signer.kubernetes.signerName is not in the "
        "installation's allowed signer names (signers.kubernetes.allowedSignerNames).",
    ),
    "CSRRefused": _certificate(
        READY_FALSE,
        "The apiserver refused to create the CertificateSigningRequest (for "
        "example its CertificateSubjectRestriction admission for O=system:masters).",
    ),
    "CSRDenied": _certificate(READY_FALSE, "An approver denied the CertificateSigningRequest."),
    "CSRFailed": _certificate(READY_FALSE, "The signer failed the CertificateSigningRequest."),
    "CABundleNotFound": _certificate(
        READY_FALSE, "The CA bundle named by signer.kubernetes.caFrom (or its key) does not exist."
    ),
    # --- MtlsCertificate: workloads
    "WorkloadRolled": _certificate(
        NORMAL_EVENT, "A workload annotated mtls.dev/rollout-on-rotation was restarted after a rotation."
    ),
    "WorkloadRolloutFailed": _certificate(
        WARNING_EVENT,
        "Restarting an annotated workload failed; the message says why (often RBAC: workloadRollout.enabled).",
    ),
    # --- issuers
    "CAReady": _issuer("Ready=True", "The CA keypair (Secret or PKCS#11 token) is loaded and can sign."),
    "HSMUnavailable": _issuer(
        "Ready=False or CRLPublished=False, Warning Event",
        "The PKCS#11 token does not answer or has no such key. The operator retries; nothing signed meanwhile.",
    ),
    "PINNotFound": _issuer(READY_FALSE, "The Secret or key named by spec.ca.pkcs11.pinSecretRef does not exist."),
    "PINRefused": _issuer(
        READY_FALSE,
        "The token refused the PIN (or another issuer logged in to it with a different "
        "one). The operator does not try the same PIN again until the Secret changes: a real HSM "
        "locks after a few wrong PINs.",
    ),
    "TokenNotAllowed": _issuer(
        READY_FALSE,
        "The token or module is not allowed for this issuer's namespace "
        "(chart hsm.namespacedTokens, --pkcs11-namespaced-token).",
    ),
    "CARotationStarted": _issuer(NORMAL_EVENT, "The CA keypair changed; certificates are re-issued by the new CA."),
    "CARotationCompleted": _issuer(NORMAL_EVENT, "Every certificate that uses the issuer is signed by the new CA."),
    "CRLSigned": _issuer("CRLPublished=True", "The CRL is signed and current."),
    "CRLFull": _issuer(
        "CRLPublished=False, Warning Event", "The CRL would list more entries than the limit (10,000); rotate the CA."
    ),
    "CRLConfigMapConflict": _issuer(
        "CRLPublished=False, Warning Event", "The ConfigMap the CRL is published in exists and is not ours."
    ),
    # --- revocations
    "InCRL": _revocation("Published=True", "The issuer's published CRL lists the serial."),
    "Pending": _revocation("Published=False, Normal Event", "Resolved; waiting for the issuer's next CRL."),
    "CertificateNotFound": _revocation(
        "Published=False, Warning Event",
        "certificateName names no MtlsCertificate of the namespace, or one with no certificate issued by an issuer.",
    ),
    "NotIssuedByIssuer": _revocation(
        "Published=False, Warning Event",
        "The serial was not issued by the named issuer (as far as its current CA goes).",
    ),
    "NotYourIssuer": _revocation(
        "Published=False, Warning Event",
        "A serial of a ClusterMtlsIssuer may be revoked only from the cluster issuers' namespace.",
    ),
}

# InvalidSpec appears on every kind; the catalogue keeps one entry and says so.
REASONS["InvalidSpec"] = Reason(
    f"{CERTIFICATE}, {ISSUER}, {REVOCATION}",
    READY_FALSE + " (Published=False on a revocation)",
    REASONS["InvalidSpec"].meaning,
)
