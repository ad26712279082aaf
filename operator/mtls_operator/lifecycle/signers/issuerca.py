"""An issuer's CA, wherever its key is: the keypair in a Secret (signers.ca.CALoader), or the key in a PKCS#11 token
with the CA certificate in a Secret or ConfigMap beside it (spec.ca.pkcs11).

A token-held key is proven before it is used: TokenKeys.signing_key signs random bytes and checks the signature
with the certificate's public key, so "Ready" means the token is there, the PIN works and the key belongs to the
certificate. The issuer's status reconcile probes it again each time (every settings.hsm.probe_seconds), so a token
that goes away turns the issuer NotReady without any Kubernetes event, and Ready again when it returns.

Token calls block on a device (and a network HSM can hang): they run in their own small pool, never in the key
generation pool, so a stuck token stalls only the issuers that use it.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.issuer import CertificateSource, IssuerSpec, Pkcs11Source
from mtls_operator.hsm.token import (
    HsmUnavailable,
    PinDiffers,
    PinRefused,
    TokenKeyRef,
    TokenKeys,
    TokenNotAllowed,
    TokenUser,
    pin_refused_message,
)
from mtls_operator.lifecycle.attempt import Rejected
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.signers.ca import CALoader
from mtls_operator.pki.bundle import UnreadableFile, read_certificates
from mtls_operator.pki.certificates import describe_certificate, is_ca, to_pem
from mtls_operator.pki.keys import PrivateKey
from mtls_operator.pki.signing import CertificateAuthority, ca_validity_problem, issuer_problem

HSM_UNAVAILABLE = "HSMUnavailable"
PIN_NOT_FOUND = "PINNotFound"
PIN_REFUSED = "PINRefused"
TOKEN_NOT_ALLOWED = "TokenNotAllowed"
TOKEN_KEY_CACHE_SIZE = 64
# Token calls at once: one library serialises its sessions anyway (hsm.token); two let a second module's issuers go
# on while one token hangs.
TOKEN_THREADS = 2
CONFIGMAP_REUSE = datetime.timedelta(seconds=5)


@dataclass(frozen=True)
class IssuerCA:
    ca: CertificateAuthority
    ca_pem: bytes
    key_location: str  # "CA Secret ns/name" or the token key (status.ca.key, messages)
    pool: CpuPool  # where signing with this CA's key runs
    in_token: bool = False


class IssuerCALoader:
    def __init__(self, cas: CALoader, tokens: TokenKeys) -> None:
        self.cas = cas
        self.ctx = cas.ctx
        self.tokens = tokens
        self.token_pool = CpuPool(TOKEN_THREADS, self.ctx.cpu.released_slot)
        self._keys: OrderedDict[tuple[TokenKeyRef, bytes, str, TokenUser], PrivateKey] = OrderedDict()
        self._configmaps: dict[tuple[str, str], tuple[datetime.datetime, Mapping[str, Any]]] = {}
        # (namespace, PIN Secret) -> the resourceVersion whose PIN the token refused (the issuer's status keeps it
        # across restarts: status.pinRefused)
        self._refused_pins: dict[tuple[str, str], str] = {}

    async def load(
        self,
        spec: IssuerSpec,
        namespace: str,
        now: datetime.datetime,
        *,
        probe: bool = False,
        refused_pin: Mapping[str, Any] | None = None,
    ) -> IssuerCA | Rejected:
        """The issuer's CA, usable at `now`; `probe`: prove a cached token key signs now (the status reconcile).
        `refused_pin`: the issuer's status.pinRefused: that version of the PIN Secret is not presented again."""
        if spec.pkcs11 is None:
            assert spec.ca_secret_name is not None
            where = f"CA Secret {namespace}/{spec.ca_secret_name}"
            loaded = await self.cas.load_from(namespace, spec.ca_secret_name, now, where)
            return loaded if isinstance(loaded, Rejected) else IssuerCA(*loaded, where, self.ctx.cpu)
        user = TokenUser(str(spec.key), spec.key.namespace or None)
        return await self._from_token(spec.pkcs11, namespace, now, probe, user, refused_pin or {})

    def refused_pin(self, namespace: str, token: Pkcs11Source) -> dict[str, str] | None:
        """What the issuer's status.pinRefused records: the PIN Secret and the version the token refused."""
        version = self._refused_pins.get((namespace, token.pin_secret_name))
        return None if version is None else {"secretName": token.pin_secret_name, "resourceVersion": version}

    async def _from_token(
        self,
        token: Pkcs11Source,
        namespace: str,
        now: datetime.datetime,
        probe: bool,
        user: TokenUser,
        refused_pin: Mapping[str, Any],
    ) -> IssuerCA | Rejected:
        source = f"CA certificate {token.certificate.describe(namespace)}"
        data = await self._certificate_bytes(namespace, token.certificate)
        if data is None:
            return Rejected(
                "CANotFound", f"{source} does not exist or has no key {token.certificate.key}", phases.PENDING
            )
        try:
            found = await self.ctx.cpu.run(read_certificates, data, source)
        except UnreadableFile as exc:
            return Rejected("CAInvalid", str(exc), phases.FAILED)
        if found.private_keys:
            return Rejected(
                "CAInvalid",
                f"{source} holds a private key as well: remove it (with pkcs11 the CA key stays in the token; "
                "the operator did not read it)",
                phases.FAILED,
            )
        certificate = found.certificates[0]
        if not is_ca(certificate):
            return Rejected("CAInvalid", f"{source} is not a CA certificate (basicConstraints CA:FALSE)", phases.FAILED)
        found_pin = await self._pin(namespace, token)
        if isinstance(found_pin, Rejected):
            return found_pin
        pin, pin_version = found_pin
        ref = token_key_ref(token)
        where = (namespace, token.pin_secret_name)
        if self._refused_pins.get(where, pin_version) != pin_version:
            del self._refused_pins[where]  # the Secret changed: its PIN is presented (once)
        if (refused_pin.get("secretName"), refused_pin.get("resourceVersion")) == (token.pin_secret_name, pin_version):
            # Refused by an earlier process (a restart, another leader): the token would count a second failure.
            self._refused_pins[where] = pin_version
            return Rejected(PIN_REFUSED, pin_refused_message(ref), phases.PENDING)
        # The user is part of the key: a key object signs as the issuer it was made for (the token's partition
        # check runs with it), so another issuer presenting the same PIN never borrows it.
        cache_key = (ref, hashlib.sha256(pin).digest(), describe_certificate(certificate).fingerprint_sha256, user)
        try:
            key = self._keys.get(cache_key)
            if key is None:
                key = await self.token_pool.run(self.tokens.signing_key, ref, pin, certificate.public_key(), user)
                # Held to the rules servers apply to an issuer before it signs anything (one token signature).
                refused = await self.token_pool.run(issuer_problem, CertificateAuthority(certificate, key))
                if refused is not None:
                    return Rejected("CAInvalid", f"{source}: {refused}", phases.FAILED)
                self._keys[cache_key] = key
                while len(self._keys) > TOKEN_KEY_CACHE_SIZE:
                    self._keys.popitem(last=False)
            elif probe:
                await self.token_pool.run(self.tokens.probe, key)
        except TokenNotAllowed as exc:
            return Rejected(TOKEN_NOT_ALLOWED, str(exc), phases.FAILED)
        except PinRefused as exc:
            self._refused_pins[where] = pin_version
            return Rejected(PIN_REFUSED, str(exc), phases.PENDING)
        except PinDiffers as exc:
            return Rejected(PIN_REFUSED, str(exc), phases.PENDING)
        except HsmUnavailable as exc:
            return Rejected(HSM_UNAVAILABLE, str(exc), phases.PENDING)
        ca = CertificateAuthority(certificate=certificate, key=key)
        problem = ca_validity_problem(ca, now)
        if problem is not None:
            return Rejected("CAInvalid", f"{source}: {problem}", phases.FAILED)
        return IssuerCA(ca, to_pem([certificate]), str(ref), self.token_pool, in_token=True)

    async def _certificate_bytes(self, namespace: str, where: CertificateSource) -> bytes | None:
        if where.secret_name:
            secret = await self.ctx.kube.get_secret(namespace, where.secret_name)
            return None if secret is None else secret.get(where.key)
        assert where.configmap_name is not None
        configmap = await self._configmap(namespace, where.configmap_name)
        text = (configmap.get("data") or {}).get(where.key)
        if text is not None:
            return str(text).encode()
        binary = (configmap.get("binaryData") or {}).get(where.key)  # a DER file: kubectl --from-file puts it here
        try:
            return base64.b64decode(binary, validate=True) if binary is not None else None
        except binascii.Error:
            return None

    async def _configmap(self, namespace: str, name: str) -> Mapping[str, Any]:
        """ConfigMaps are not in the Secret informer: a read is an API request. Every certificate of the issuer
        resolves it on each reconcile, so a renewal wave would send one per certificate; a few seconds' reuse makes
        it one per issuer, and a changed certificate is still seen within that time."""
        cached, now = self._configmaps.get((namespace, name)), self.ctx.clock()
        if cached is not None and datetime.timedelta(0) <= now - cached[0] < CONFIGMAP_REUSE:
            return cached[1]
        configmap = await self.ctx.kube.get_configmap(namespace, name) or {}
        self._configmaps[(namespace, name)] = (now, configmap)
        return configmap

    async def _pin(self, namespace: str, token: Pkcs11Source) -> tuple[bytes, str] | Rejected:
        where = f"PIN Secret {namespace}/{token.pin_secret_name}"
        secret = await self.ctx.kube.get_secret(namespace, token.pin_secret_name)
        pin = None if secret is None else secret.get(token.pin_secret_key)
        if not pin:
            what = "does not exist" if secret is None else f"has no key {token.pin_secret_key}"
            return Rejected(PIN_NOT_FOUND, f"{where} {what} (spec.ca.pkcs11.pinSecretRef)", phases.PENDING)
        assert secret is not None
        # `echo PIN > file` or a here-doc leaves a newline the token would refuse
        return pin.rstrip(b"\r\n"), secret.resource_version

    def close(self) -> None:
        self.token_pool.executor.shutdown(wait=False, cancel_futures=True)
        self.tokens.close()


def token_key_ref(token: Pkcs11Source) -> TokenKeyRef:
    return TokenKeyRef(
        module=token.module,
        token_label=token.token_label,
        token_serial=token.token_serial,
        key_label=token.key_label,
        key_id=token.key_id,
    )
