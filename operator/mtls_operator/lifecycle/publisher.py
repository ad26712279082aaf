"""spec.publishCA: the CA certificates a server must trust, published in a ConfigMap (never the CA's key).

A ConfigMap holds the union, for every MtlsCertificate naming it, of the CA of the certificate in service and the
CA that will sign its next one (the CA Secret's certificate for signer `ca` or the certificate's issuer). During a
CA rotation it therefore holds old and new CA together until every certificate in service chains to the new one;
then the old one drops.

A server trusts whatever lands here, so only verified CAs do: a certificate contributes only while it is Ready for
its current spec (a Failed one, or one whose spec changed since, contributes nothing), its `ca.crt` only when the
certificate in service chains to it, and its signing CA only because the operator has signed with that signer
(a Secret holding "any certificate at all" named by a failing certificate never reaches the bundle).

Beside `ca.crt`, `ca.crl` holds the CRL of every issuer of ours that signs one of these certificates (PEM, one
after another: nginx's ssl_crl, Node's `crl` and Java's CertStore read several), so a server mounts both.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from mtls_operator.api.names import CA_CRL, CA_CRT, MANAGED_BY, MANAGER, TLS_CRT
from mtls_operator.api.spec import CertificateSpec, parse_spec
from mtls_operator.api.status import find_condition
from mtls_operator.kube.client import KubeIO
from mtls_operator.lifecycle.crlpublisher import CrlPublisher
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.pki.certificates import chain_problem, load_pem_bundle, to_pem

log = logging.getLogger(__name__)

CA_KEY = CA_CRT  # the ConfigMap's key, as in a Secret of type kubernetes.io/tls


def trust_bundle(bundles: list[bytes]) -> bytes:
    """Every certificate of the given PEM bundles once (by fingerprint), oldest first; unreadable ones skipped."""
    seen: dict[bytes, x509.Certificate] = {}
    for data in bundles:
        try:
            certificates = load_pem_bundle(data)
        except ValueError:
            continue
        for cert in certificates:
            seen.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    ordered = sorted(seen.values(), key=lambda c: (c.not_valid_before_utc, c.serial_number))
    return to_pem(ordered)


class CAPublisher:
    def __init__(self, kube: KubeIO, issuers: IssuerDirectory | None = None, crls: CrlPublisher | None = None) -> None:
        self.kube = kube
        self.issuers = issuers
        self.crls = crls

    async def publish(self, namespace: str, name: str, sources: Sequence[Mapping[str, Any]]) -> str | None:
        """Writes the ConfigMap when its content changed. Returns a problem to report, or None."""
        bundles: list[bytes] = []
        crls: dict[str, bytes] = {}
        for spec in _parsed([body for body in sources if ready_for_its_spec(body)]):
            ref = spec.signer.issuer_ref
            if ref is not None and self.crls is not None and self.issuers is not None:
                key = ref.key(spec.namespace)
                crl = await self.crls.current(key, self.issuers.ca_namespace(key))
                if crl is not None:
                    crls[str(key)] = crl.pem
            live = await self.kube.get_secret(namespace, spec.secret_name)
            if live is not None and live.get(CA_CRT) and _chains_to(live.get(TLS_CRT), live.data[CA_CRT]):
                bundles.append(live.data[CA_CRT])
            signing_ca = self._signing_ca_secret(spec)
            if signing_ca is not None:
                ca = await self.kube.get_secret(*signing_ca)
                if ca is not None and ca.get(TLS_CRT):
                    bundles.append(ca.data[TLS_CRT])  # the certificate only; tls.key is never read here
        existing = await self.kube.get_configmap(namespace, name)
        if existing is not None and (existing["metadata"].get("labels") or {}).get(MANAGED_BY) != MANAGER:
            return f"ConfigMap {name} exists and was not created by mtls-operator; choose another publishCA name"
        pem = trust_bundle(bundles).decode()
        if not pem and existing is None:
            return None  # nothing in service yet: no empty ConfigMap
        sources_text = ",".join(sorted(body["metadata"]["name"] for body in sources))
        data: dict[str, str | None] = {CA_KEY: pem}
        if crls:
            data[CA_CRL] = b"".join(crls[k] for k in sorted(crls)).decode()
        current = (existing or {}).get("data") or {}
        if existing is not None and current.get(CA_KEY, "") == pem and current.get(CA_CRL) == data.get(CA_CRL):
            return None
        if CA_CRL in current and CA_CRL not in data:
            data[CA_CRL] = None  # a merge patch removes it
        await self.kube.write_configmap(namespace, name, data, existing, source=sources_text)
        log.info("published %d CA certificate(s) in ConfigMap %s/%s", pem.count("BEGIN CERTIFICATE"), namespace, name)
        return None

    def _signing_ca_secret(self, spec: CertificateSpec) -> tuple[str, str] | None:
        """(namespace, name) of the CA Secret that signs the certificate's next issuance, if we sign it."""
        if spec.signer.kind == "ca" and spec.signer.secret_name:
            return spec.namespace, spec.signer.secret_name
        ref = spec.signer.issuer_ref
        if ref is None or self.issuers is None:
            return None
        key = ref.key(spec.namespace)
        name = ((self.issuers.find(key) or {}).get("spec") or {}).get("ca", {}).get("secretName")
        return (self.issuers.ca_namespace(key), str(name)) if name else None


def ready_for_its_spec(body: Mapping[str, Any]) -> bool:
    """Ready=True, decided for the spec as it is now (not a Ready left over from before a spec change)."""
    ready = find_condition(body.get("status") or {})
    if ready.get("status") != "True":
        return False
    observed = ready.get("observedGeneration")
    return observed is None or int(observed) == int((body.get("metadata") or {}).get("generation") or 0)


def _chains_to(tls_crt: bytes | None, ca_crt: bytes) -> bool:
    """The certificate in service verifies to this ca.crt (issuer name, signature, CA flag)."""
    try:
        return chain_problem(load_pem_bundle(tls_crt or b""), load_pem_bundle(ca_crt)) is None
    except ValueError:
        return False


def _parsed(sources: Sequence[Mapping[str, Any]]) -> list[CertificateSpec]:
    """The sources whose spec can be read (an unusable one has its own condition; it contributes nothing)."""
    specs = []
    for body in sources:
        try:
            specs.append(parse_spec(body))
        except ValueError:
            continue
    return specs
