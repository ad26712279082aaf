"""The values the reconciler and the signers hand each other.

This module sits below both: signers return these types and never import the reconciler, and the reconciler
imports the signers only through their registry.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mtls_operator.api.spec import CertificateSpec
from mtls_operator.kube.objects import Owner, SecretView
from mtls_operator.lifecycle.policy.ownership import secret_ownership
from mtls_operator.lifecycle.policy.readiness import Condition
from mtls_operator.lifecycle.policy.trigger import Trigger
from mtls_operator.pki.keys import PrivateKey
from mtls_operator.pki.verify import Verified

EventTuple = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Attempt:
    """What one reconcile read about one certificate, handed to each step instead of five arguments."""

    body: Mapping[str, Any]
    spec: CertificateSpec
    status: Mapping[str, Any]
    live: SecretView | None
    now: datetime.datetime

    @property
    def owner(self) -> Owner:
        return owner_of(self.spec)


def owner_of(spec: CertificateSpec) -> Owner:
    """Whose objects we write; garbage-collected with it only when the user chose secretDeletionPolicy Delete."""
    return Owner(spec.name, spec.namespace, spec.uid, garbage_collected=spec.delete_secrets_with_certificate)


def ownership(secret: SecretView, spec: CertificateSpec) -> str:
    """policy.ownership: OWNED, ADOPTABLE (ours, for an earlier object of that name) or FOREIGN."""
    return secret_ownership(secret.labels, secret.annotations, secret.owner_uids, spec.name, spec.uid)


@dataclass
class Outcome:
    """What one reconcile decided; the reconciler's `apply` turns it into a status patch and Events."""

    phase: str
    ready: Condition
    status: dict[str, Any] = field(default_factory=dict)
    events: list[EventTuple] = field(default_factory=list)
    wake_at: datetime.datetime | None = None
    renewal_due: Condition | None = None
    chain_valid: Condition | None = None


@dataclass
class PendingKey:
    key: PrivateKey
    pem: bytes
    location: str  # policy.keymanager.LIVE | NEXT
    stored: bool = True  # False: generated for an automatic signer, written only with its certificate


# --- what a signer returns ------------------------------------------------------------------------------------


@dataclass
class Issued:
    """A certificate came back. Unless `verified` is set (our own CA code signed it), the reconciler verifies
    it against the pending key and the spec before anything is written."""

    key: PendingKey | None  # the key it certifies; None when the partner owns the key (outbound)
    source: str  # where it came from, for messages: "Secret x-signed", "CertificateSigningRequest y"
    certificate_pem: bytes | None = None
    ca_pem: bytes | None = None
    verified: Verified | None = None
    status: dict[str, Any] = field(default_factory=dict)  # request status kept if verification fails
    events: list[EventTuple] = field(default_factory=list)
    trigger: Trigger | None = None  # a replacement's own reason (IssuerRotated); default Replaced
    issuer: str | None = None  # "<kind>/<name>" when an issuer of ours signed it (status.issuedBy, revocations)


@dataclass
class Waiting:
    """Nothing to put in service yet; someone else (a person, a partner, a cluster signer) acts next."""

    reason: str
    message: str
    status: dict[str, Any] = field(default_factory=dict)
    events: list[EventTuple] = field(default_factory=list)


@dataclass
class Rejected:
    """The request cannot go on as it is; the condition names why. `phase` None: the lifecycle decides."""

    reason: str
    message: str
    phase: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    events: list[EventTuple] = field(default_factory=list)
    # When to ask again, for a refusal whose cause no watch event reports (RBAC: a binding given back)
    retry_at: datetime.datetime | None = None


@dataclass
class Deferred:
    """A replacement is coming but not yet (a CA rotation spreads its re-issues): look again at `at`."""

    at: datetime.datetime
    why: str = ""


SignResult = Issued | Waiting | Rejected
