"""The Signer interface: what the lifecycle asks of every way of getting a certificate signed.

As cert-manager separates issuers from the certificate lifecycle: the reconciler owns trigger, key policy,
verification, putting a certificate in service and status; a signer only turns "this certificate needs a new
signature" into a typed answer (Issued, Waiting or Rejected) and never calls back into the reconciler.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from mtls_operator.aio.offload import CpuPool
from mtls_operator.kube.client import KubeIO
from mtls_operator.lifecycle.accessreviews import AccessReviews
from mtls_operator.lifecycle.attempt import Attempt, Deferred, Issued, Rejected, SignResult
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.lifecycle.keystore import KeyStore
from mtls_operator.lifecycle.policy.trigger import Trigger


@dataclass(frozen=True)
class SignerContext:
    """What signers may use: the one Kubernetes I/O layer, the key store, the CPU pool, the clock and the issuers
    the operator watches (None: no issuer is known, every issuerRef is unresolved)."""

    kube: KubeIO
    keys: KeyStore
    cpu: CpuPool
    clock: Callable[[], datetime.datetime]
    issuers: IssuerDirectory | None = None
    kubernetes_signer_names: tuple[str, ...] = ()  # the allow-list of lifecycle.policy.signernames
    # RBAC's answers for requesters (None: nobody can be asked: cluster issuers refuse, named Secrets are read as
    # before; the Reconciler always gives one)
    access: AccessReviews | None = None


class Signer(Protocol):
    async def sign(self, a: Attempt, trigger: Trigger) -> SignResult:
        """A new certificate is needed (`trigger` says why): issue it, or say what it waits for."""
        ...

    async def replacement(self, a: Attempt) -> Issued | Rejected | Deferred | None:
        """While the certificate in service is good: a newer one to put in service, if any (Deferred: not yet);
        Rejected reports a problem while the certificate in service keeps serving."""
        ...


class SignerBase:
    """Default behaviour: no replacement of a certificate that is in service and good."""

    def __init__(self, ctx: SignerContext) -> None:
        self.ctx = ctx

    async def replacement(self, a: Attempt) -> Issued | Rejected | Deferred | None:
        return None
