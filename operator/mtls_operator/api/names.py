"""The MtlsCertificate API's vocabulary, written once: group/version/kind, our labels and annotations, the keys of
the Secrets we write, and the naming rules for the Secrets a certificate uses. Everything else imports from here.
"""

from __future__ import annotations

GROUP = "mtls.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURAL = "mtlscertificates"
KIND = "MtlsCertificate"
# The issuers (one CA key in one place, a policy its owner sets): namespaced, and cluster-scoped with its CA Secret
# in the one namespace the operator is configured with (--cluster-issuer-namespace).
ISSUER_KIND = "MtlsIssuer"
ISSUER_PLURAL = "mtlsissuers"
CLUSTER_ISSUER_KIND = "ClusterMtlsIssuer"
CLUSTER_ISSUER_PLURAL = "clustermtlsissuers"
ISSUER_PLURALS = {ISSUER_KIND: ISSUER_PLURAL, CLUSTER_ISSUER_KIND: CLUSTER_ISSUER_PLURAL}
# Events about a cluster-scoped object must be in `default` (the apiserver rejects any other namespace for an
# involvedObject without one); `kubectl describe clustermtlsissuer` finds them there.
CLUSTER_EVENTS_NAMESPACE = "default"
USE_VERB = "use"  # the RBAC verb on clustermtlsissuers/<name> the admission policy requires
NAMESPACE_PLACEHOLDER = "{namespace}"  # in an issuer's name patterns: the requesting certificate's namespace

MANAGER = "mtls-operator"  # the managed-by label's value, the Events' source component
COMPONENT = MANAGER

# --- labels ---------------------------------------------------------------------------------------------------
MANAGED_BY = "app.kubernetes.io/managed-by"
CERTIFICATE_LABEL = "mtls.dev/certificate"  # on our Secrets and CertificateSigningRequests: which certificate
NAMESPACE_LABEL = "mtls.dev/namespace"  # on cluster-scoped objects (CertificateSigningRequests)

# --- annotations ----------------------------------------------------------------------------------------------
UID_ANNOTATION = "mtls.dev/certificate-uid"  # on our Secrets: which MtlsCertificate object last owned it
PUBLISHED_BY = "mtls.dev/published-by"  # on CA ConfigMaps: the certificates whose CAs it holds
# On the live Secret: what its keystore.p12/truststore.p12 were made from (pki.pkcs12.source_digest).
PKCS12_SOURCE_ANNOTATION = "mtls.dev/pkcs12-source"
# `kubectl mtls renew` sets it (a timestamp); a certificate put in service afterwards satisfies it (status records
# the value in lastRenewalRequest), so asking twice before that renews once.
RENEW_ANNOTATION = "mtls.dev/renew-requested-at"
# On a Deployment, StatefulSet or DaemonSet: the certificates (names in its namespace, comma-separated) whose
# rotation rolls it, for clients that read their certificate files once at start (--roll-workloads).
ROLLOUT_ANNOTATION = "mtls.dev/rollout-on-rotation"
# On that workload's pod template, written by the operator: "<certificate>=<serial>;..." of the certificates its
# Pods started with. Changing it is what rolls the workload (as `kubectl rollout restart` does with its own).
SERIALS_ANNOTATION = "mtls.dev/certificate-serials"

# On an MtlsCertificate: who asked for its spec, as the apiserver authenticated them (a username; a JSON list of
# groups). Written at admission (the chart's MutatingAdmissionPolicy, or by the user and checked equal to them by the
# ValidatingAdmissionPolicy); the operator asks RBAC, for that user, before it signs with a cluster issuer.
REQUESTED_BY_ANNOTATION = "mtls.dev/requested-by"
REQUESTED_BY_GROUPS_ANNOTATION = "mtls.dev/requested-by-groups"

# --- Secret keys and types ------------------------------------------------------------------------------------
TLS_CRT = "tls.crt"  # the leaf and its intermediates, in order
TLS_KEY = "tls.key"
CA_CRT = "ca.crt"  # the roots (and any other CA certificate the partner sent)
PIN_KEY = "pin"  # an issuer's PKCS#11 PIN Secret: the key its pinSecretRef reads by default
KEYSTORE_P12 = "keystore.p12"  # spec.keystores.pkcs12: key + chain for Java
TRUSTSTORE_P12 = "truststore.p12"
TLS_SECRET = "kubernetes.io/tls"
OPAQUE_SECRET = "Opaque"


def next_secret_name(secret_name: str) -> str:
    """Where the next key waits during a manual renewal, apart from the key in service."""
    return f"{secret_name}-next"


def signed_secret_name(certificate_name: str) -> str:
    """The default Secret a manual signer's certificate is uploaded to (spec.signer.manual.signedSecretName)."""
    return f"{certificate_name}-signed"


# --- revocation (MtlsRevocation; an issuer's CRL) ---------------------------------------------------------------
REVOCATION_KIND = "MtlsRevocation"
REVOCATION_PLURAL = "mtlsrevocations"
CA_CRL = "ca.crl"  # the CRLs (PEM) in an issuer's CRL ConfigMap and next to ca.crt in a publishCA ConfigMap
# On an MtlsRevocation, written by the operator once it resolved what is revoked: the serial (hex) and the issuer
# ("<kind>/<name>"). Metadata, not status: a restored or lost status must never make a revocation of a certificate
# by name point at the certificate that replaced it.
REVOKED_SERIAL_ANNOTATION = "mtls.dev/revoked-serial"
REVOKED_ISSUER_ANNOTATION = "mtls.dev/revoked-issuer"
# On an MtlsCertificate whose issuer has spec.revocation.revokeOnDelete: deleted only once its revocation exists.
REVOKE_ON_DELETE_FINALIZER = "mtls.dev/revoke-on-delete"


def crl_configmap_name(kind: str, name: str) -> str:
    """An issuer's CRL ConfigMap (in the issuer's CA namespace): the kind keeps an MtlsIssuer and a
    ClusterMtlsIssuer of one name apart in the cluster issuers' namespace."""
    return f"{kind.lower()}-{name}-crl"[:253]
