"""spec.keystores.pkcs12: keystore.p12 and truststore.p12 in the live Secret, never out of step with the PEM files.

A Java team otherwise converts by hand (`openssl pkcs12 -export`) at every renewal, and a forgotten conversion is an
expired certificate. The stores are computed from the very bytes that go into the Secret and written in the same
update; a store that cannot be made (no password) is removed rather than left behind for an older certificate, and
the PEM files are served regardless.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography import x509

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import CA_CRT, KEYSTORE_P12, PKCS12_SOURCE_ANNOTATION, TLS_CRT, TLS_KEY, TRUSTSTORE_P12
from mtls_operator.api.spec import CertificateSpec
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.objects import SecretView
from mtls_operator.lifecycle.accessreviews import AccessReviews
from mtls_operator.lifecycle.onbehalf import unreadable
from mtls_operator.pki import pkcs12
from mtls_operator.pki.bundle import certificates_in
from mtls_operator.pki.keys import load_private_key

KEYSTORE_KEY, TRUSTSTORE_KEY = KEYSTORE_P12, TRUSTSTORE_P12  # the Secret keys, named in api.names
PASSWORD_NOT_FOUND = "KeystorePasswordNotFound"


@dataclass
class StoreUpdate:
    """What to merge into the live Secret's data and annotations (None removes); empty when it is current."""

    data: dict[str, bytes | None] = field(default_factory=dict)
    annotations: dict[str, str | None] = field(default_factory=dict)
    problem: str | None = None  # why the stores could not be written (condition reason PASSWORD_NOT_FOUND)

    def __bool__(self) -> bool:
        return bool(self.data or self.annotations)


PASSWORD_FIELD = "spec.keystores.pkcs12.passwordSecretRef"


class JavaKeystores:
    def __init__(self, kube: KubeIO, cpu: CpuPool, access: AccessReviews | None = None) -> None:
        self.kube = kube
        self.cpu = cpu
        self.access = access  # the password Secret is read only if the certificate's requester may (onbehalf)

    async def update_for(self, spec: CertificateSpec, pem: dict[str, bytes], live: SecretView | None) -> StoreUpdate:
        """The change that makes the stores match `pem` (tls.key, tls.crt, ca.crt as they will be in service)."""
        had = live is not None and (
            KEYSTORE_KEY in live.data or TRUSTSTORE_KEY in live.data or PKCS12_SOURCE_ANNOTATION in live.annotations
        )
        removal = StoreUpdate(
            {KEYSTORE_KEY: None, TRUSTSTORE_KEY: None}, {PKCS12_SOURCE_ANNOTATION: None}
        ) if had else StoreUpdate()  # fmt: skip
        wanted = spec.pkcs12
        if wanted is None or not pem.get(TLS_KEY):
            return removal  # turned off, or outbound (the partner holds the key)
        password = await self._password(spec)
        if isinstance(password, str):
            removal.problem = await self._refusal(spec) or password
            return removal
        digest = pkcs12.source_digest(password, wanted.alias, pem[TLS_KEY], pem[TLS_CRT], pem.get(CA_CRT) or b"")
        if live is not None and live.annotations.get(PKCS12_SOURCE_ANNOTATION) == digest and KEYSTORE_KEY in live.data:
            return StoreUpdate()
        # The password is put to use (or talked about) only for a requester who may read it: asked here, when the
        # stores are (re)built, not at every look at certificates whose stores are current.
        refusal = await self._refusal(spec)
        if refusal is not None:
            removal.problem = refusal
            return removal
        stores = await self.cpu.run(_build, pem, wanted.alias, password)
        return StoreUpdate(stores, {PKCS12_SOURCE_ANNOTATION: digest})

    async def _refusal(self, spec: CertificateSpec) -> str | None:
        """Why the password Secret may not be used for this certificate's requester (lifecycle.onbehalf), or None."""
        assert spec.pkcs12 is not None
        access = self.access
        if access is None:
            return None
        refused = await unreadable(access, spec, spec.pkcs12.password_secret, PASSWORD_FIELD, access.clock())
        return None if refused is None else refused.message

    async def _password(self, spec: CertificateSpec) -> bytes | str:
        """The password, or a message naming what is missing."""
        assert spec.pkcs12 is not None
        ref = spec.pkcs12
        secret = await self.kube.get_secret(spec.namespace, ref.password_secret)
        where = f"Secret {ref.password_secret} ({PASSWORD_FIELD})"
        if secret is None:
            return f"{where} does not exist"
        value = secret.get(ref.password_key)
        if not value:
            # Not the Secret's other key names: whoever wrote this reference may not be allowed to know them.
            return f"{where} has no non-empty key {ref.password_key!r}"
        return value.rstrip(b"\r\n")  # `kubectl create secret --from-file` of an echoed file keeps the newline


def _build(pem: dict[str, bytes], alias: str, password: bytes) -> dict[str, bytes | None]:
    key = load_private_key(pem[TLS_KEY])
    chain: list[x509.Certificate] = certificates_in(pem[TLS_CRT])
    roots = certificates_in(pem.get(CA_CRT))
    return {
        KEYSTORE_KEY: pkcs12.keystore(key, chain, alias, password),
        TRUSTSTORE_KEY: pkcs12.truststore(roots, password) if roots else None,
    }
