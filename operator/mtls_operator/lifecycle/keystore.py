"""Where private keys live: the live Secret, or `<secretName>-next` during a renewal with rotation.

A key is stored before any CSR derived from it is published, and a stored key is reused whenever it still fits
the spec (policy.keymanager decides): restarts, retries and lost status never cost a partner's signature.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Callable

from mtls_operator.aio.offload import CpuPool
from mtls_operator.api.names import CA_CRT, OPAQUE_SECRET, TLS_CRT, TLS_KEY, TLS_SECRET
from mtls_operator.api.spec import CertificateSpec
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.objects import SecretView
from mtls_operator.lifecycle.attempt import Attempt, PendingKey, ownership
from mtls_operator.lifecycle.policy.keymanager import LIVE, decide_pending_key
from mtls_operator.lifecycle.policy.ownership import FOREIGN
from mtls_operator.pki.certificates import common_name_of, first_certificate
from mtls_operator.pki.keys import (
    PrivateKey,
    generate_private_key,
    key_spec_of,
    load_private_key,
    private_key_to_pem,
    same_public_key,
)

log = logging.getLogger(__name__)

KEY_CACHE_SIZE = 2048  # parsed pending keys kept in memory (a renewal wave, not the whole fleet)


class SecretInTheWay(Exception):
    """A Secret we must write belongs to someone else: a condition for the user, not a race to retry at once."""


class KeyStore:
    def __init__(self, kube: KubeIO, cpu: CpuPool, on_key_generated: Callable[[], None] | None = None) -> None:
        self.kube = kube
        self.cpu = cpu
        self.on_key_generated = on_key_generated
        self._keys: OrderedDict[bytes, PrivateKey] = OrderedDict()

    async def stored_key(self, secret: SecretView | None) -> tuple[PrivateKey | None, bool]:
        """(key, unreadable); (None, False) when no key is stored.

        Loading a key costs a signature self-test (about a millisecond): off the loop, and remembered by a digest
        of its PEM, because a pending key is read again on every reconcile until its certificate arrives.
        """
        pem = secret.get(TLS_KEY) if secret else None
        if not pem:
            return None, False
        digest = hashlib.sha256(pem).digest()
        key = self._keys.get(digest)
        if key is None:
            try:
                key = await self.cpu.run(load_private_key, pem)
            except ValueError:
                return None, True
            self._keys[digest] = key
            while len(self._keys) > KEY_CACHE_SIZE:
                self._keys.popitem(last=False)
        else:
            self._keys.move_to_end(digest)
        return key, False

    async def adoption_problem(self, spec: CertificateSpec, secret: SecretView) -> str | None:
        """Why a retained Secret of an earlier object of this name does not fit this spec, or None when it does:
        its key is readable and of the wanted algorithm and size, and its certificate (if any) is for that key
        and this Common Name."""
        prefix = f"the retained Secret {secret.name} was made for an earlier MtlsCertificate {spec.name} and"
        fix = "; delete it or choose another secretName"
        leaf = first_certificate(secret.get(TLS_CRT))
        if leaf is not None and common_name_of(leaf) != spec.subject.common_name:
            return f"{prefix} holds a certificate for CN={common_name_of(leaf)}{fix}"
        if spec.outbound:
            return None  # the partner owns the key: nothing else to match
        key, _ = await self.stored_key(secret)
        if key is None:
            return f"{prefix} holds no readable key{fix}"
        if key_spec_of(key) != spec.key:
            return f"{prefix} holds a {key_spec_of(key)} key, the spec asks for {spec.key}{fix}"
        if leaf is not None and not same_public_key(leaf.public_key(), key):  # type: ignore[arg-type]
            return f"{prefix} holds a certificate that does not match its key{fix}"
        return None

    async def drop_next_key_in_service(self, a: Attempt) -> None:
        """Deletes `<secretName>-next` when its key is the one in service: the switch happened, the clean-up did
        not (a kill between the two writes). A next key that is not in service is kept: its CSR may be out."""
        spec, live = a.spec, a.live
        next_secret = await self.kube.get_secret(spec.namespace, spec.next_secret_name)
        if next_secret is None or live is None or ownership(next_secret, spec) == FOREIGN:
            return
        if next_secret.get(TLS_KEY) and next_secret.get(TLS_KEY) == live.get(TLS_KEY):
            log.info("removing %s/%s: its key is already in service", spec.namespace, spec.next_secret_name)
            await self.kube.delete_secret(spec.namespace, spec.next_secret_name)

    async def pending_key(self, a: Attempt, has_certificate: bool, *, persist: bool, fresh: bool = False) -> PendingKey:
        """The key the next certificate certifies.

        `fresh`: never the key in service, whatever spec.privateKey.rotationPolicy says (that key was compromised).

        `persist`: store a new key before returning (its CSR will be published and may be signed days later).
        An automatic signer issues at once, so its new key is written only together with its certificate.
        """
        spec, live = a.spec, a.live
        read_next = has_certificate and persist
        next_secret = await self.kube.get_secret(spec.namespace, spec.next_secret_name) if read_next else None
        foreign_next = next_secret is not None and ownership(next_secret, spec) == FOREIGN
        if foreign_next:
            next_secret = None  # never read or overwrite a key we did not store
        live_key, live_bad = await self.stored_key(live)
        next_key, next_bad = await self.stored_key(next_secret)
        decision = decide_pending_key(
            has_certificate=has_certificate,
            rotation_policy="Always" if fresh else spec.rotation_policy,
            wanted=spec.key,
            live_key=key_spec_of(live_key) if live_key else None,
            live_key_unreadable=live_bad,
            next_key=key_spec_of(next_key) if next_key else None,
            next_key_unreadable=next_bad,
        )
        stored = live if decision.location == LIVE else next_secret
        if foreign_next and decision.generate and decision.location != LIVE:
            # Creating it would conflict on every attempt, and each attempt would cost a new key: say so instead.
            raise SecretInTheWay(
                f"Secret {spec.next_secret_name} exists and is not managed by this MtlsCertificate, so the next key "
                f"cannot be stored; delete it (or rename spec.secretName): nothing is generated until then"
            )
        if not decision.generate:
            key = live_key if decision.location == LIVE else next_key
            assert key is not None and stored is not None
            return PendingKey(key, stored.data[TLS_KEY], decision.location)
        log.info(
            "generating %s key for %s/%s (%s, stored in the %s Secret)",
            spec.key, spec.namespace, spec.name, decision.reason, decision.location,
        )  # fmt: skip
        key = await self.cpu.run(generate_private_key, spec.key)
        if self.on_key_generated is not None:
            self.on_key_generated()
        pem = await self.cpu.run(private_key_to_pem, key)
        if not persist:
            return PendingKey(key, pem, decision.location, stored=False)
        await self._store(a, decision.location, stored, pem)
        return PendingKey(key, pem, decision.location)

    async def _store(self, a: Attempt, location: str, stored: SecretView | None, pem: bytes) -> None:
        """The key is stored before any CSR derived from it is published."""
        spec = a.spec
        if location == LIVE:
            if stored is None:
                empty = {"tls.key": pem, TLS_CRT: b"", CA_CRT: b""}
                await self.kube.create_secret(a.owner, spec.secret_name, TLS_SECRET, empty)
            else:
                await self.kube.replace_secret_data(stored, {**stored.data, TLS_KEY: pem}, owner=a.owner)
        elif stored is None:
            await self.kube.create_secret(a.owner, spec.next_secret_name, OPAQUE_SECRET, {"tls.key": pem})
        else:
            await self.kube.replace_secret_data(stored, {"tls.key": pem}, owner=a.owner)
