"""What an outcome says, as pure functions of the spec, the certificate and the trigger: the Ready and RenewalDue
conditions, the status fields of a certificate in service, and when to look again. The reconciler decides *which*
outcome; these say what it contains.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from mtls_operator.api.spec import CertificateSpec
from mtls_operator.api.status import ConditionType
from mtls_operator.api.status import format_time as timestamp
from mtls_operator.lifecycle.attempt import (
    Outcome,
)
from mtls_operator.lifecycle.javakeystores import PASSWORD_NOT_FOUND
from mtls_operator.lifecycle.policy import readiness as phases
from mtls_operator.lifecycle.policy.readiness import Condition
from mtls_operator.lifecycle.policy.trigger import (
    Trigger,
    TriggerReason,
    expiry_warning_threshold,
    next_wakeup,
)
from mtls_operator.pki.certificates import (
    CertificateInfo,
    dns_names_of,
    uncovered_names,
)
from mtls_operator.pki.expiry import ChainExpiry


def ready_condition(spec: CertificateSpec, leaf: x509.Certificate, info: CertificateInfo) -> Condition:
    message = f"certificate is valid until {timestamp(info.not_after)}"
    names = names_warning(spec, leaf)
    return Condition(ConditionType.READY, "True", "Ready", f"{message}; warning: {names}" if names else message)


def store_problem(problem: str) -> Condition:
    message = f"{problem}: tls.crt and tls.key are in service, keystore.p12 and truststore.p12 are not written"
    return Condition(ConditionType.READY, "False", PASSWORD_NOT_FOUND, message)


def names_warning(spec: CertificateSpec, leaf: x509.Certificate) -> str | None:
    """The certificate is usable, but a server that checks names may refuse it: say so, do not refuse it."""
    missing = uncovered_names(leaf, [spec.subject.common_name, *spec.dns_names])
    if not missing:
        return None
    present = ", ".join(dns_names_of(leaf)) or "none"
    return (
        f"the certificate's subjectAltName DNS names ({present}) do not include {', '.join(missing)} "
        "(spec.commonName / spec.dnsNames): servers that check names may refuse it; ask the partner to sign "
        "with the CSR's names (openssl x509 -req -copy_extensions copy)"
    )


def certificate_status(
    info: CertificateInfo, renew_at: datetime.datetime | None, chain: ChainExpiry | None = None
) -> dict[str, Any]:
    """The status of the certificate in service; `chain`: when the soonest CA it depends on expires."""
    return {
        "notBefore": timestamp(info.not_before),
        "notAfter": timestamp(info.not_after),
        "renewalTime": timestamp(renew_at) if renew_at else None,
        "serialNumber": info.serial_number,
        "issuer": info.issuer,
        "fingerprintSHA256": info.fingerprint_sha256,
        "chainNotAfter": timestamp(chain.not_after) if chain else None,
        "chainNotAfterSubject": chain.subject if chain else None,
    }


def waiting(spec: CertificateSpec, trigger: Trigger, ready: Condition, phase: str | None = None) -> Outcome:
    """The phase while a new certificate is not in service yet."""
    if phase is None:
        if trigger.reason == TriggerReason.NO_CERTIFICATE:
            phase = phases.AWAITING_SIGNATURE if spec.signer.kind == "manual" else phases.PENDING
        elif trigger.reason == TriggerReason.EXPIRED:
            phase = phases.EXPIRED
        else:
            phase = phases.RENEWING
    if trigger.reason == TriggerReason.EXPIRED:
        ready = Condition(ConditionType.READY, "False", "Expired", f"{trigger.message}; {ready.message}")
    return Outcome(phase, ready)


def after_issuance(
    spec: CertificateSpec, info: CertificateInfo, renew_at: datetime.datetime, now: datetime.datetime
) -> datetime.datetime | None:
    """When to look again after putting a certificate in service.

    A hand-signed certificate that arrives already inside its renewal window (the partner signed it for less than
    renewBefore) must start its renewal now, not at the next expiry threshold days later. An automatic signer is
    not woken at once: a CA that can only sign short certificates would otherwise re-issue in a loop.
    """
    if renew_at <= now and spec.signer.kind == "manual" and not spec.outbound:
        return now
    return next_wakeup(info, renew_at, now)


def acknowledge_renewal_request(
    outcome: Outcome, spec: CertificateSpec, status: Mapping[str, Any], trigger: Trigger | None
) -> None:
    """One Normal Event per `kubectl mtls renew`; status.renewalRequest shows it until a certificate satisfies it."""
    requested = spec.renewal_requested
    if not requested or requested == status.get("lastRenewalRequest"):
        return
    if trigger is None:
        # Satisfied by the certificate in service (issued after the request; its status write was lost).
        outcome.status.update({"lastRenewalRequest": requested, "renewalRequest": None})
        return
    if status.get("renewalRequest") == requested:
        return
    if trigger is not None and trigger.reason == TriggerReason.RENEWAL_REQUESTED:
        action = "re-issued" if outcome.phase == phases.READY else "renewal started; the current certificate serves"
    else:
        action = f"renewal already under way ({trigger.reason})"
    outcome.events.insert(0, ("Normal", "RenewalRequested", f"renewal requested at {requested}: {action}"))
    if outcome.status.get("lastRenewalRequest") != requested:
        outcome.status["renewalRequest"] = requested


def add_renewal_state(
    outcome: Outcome,
    status: Mapping[str, Any],
    trigger: Trigger | None,
    current: CertificateInfo | None,
    now: datetime.datetime,
) -> None:
    """RenewalDue condition, and one Warning per renewal start and per 14/7/3/1-days-left threshold."""
    if current is None or (outcome.phase == phases.READY and trigger is not None):
        outcome.renewal_due = Condition(ConditionType.RENEWAL_DUE, "False", "NotDue", "no renewal in progress")
        outcome.status["expiryWarningDays"] = None
        return
    due = trigger is not None and trigger.reason in (TriggerReason.RENEWAL_DUE, TriggerReason.EXPIRED)
    if not due:
        outcome.renewal_due = Condition(ConditionType.RENEWAL_DUE, "False", "NotDue", "no renewal in progress")
        outcome.status["expiryWarningDays"] = None
        return
    assert trigger is not None
    outcome.renewal_due = Condition(ConditionType.RENEWAL_DUE, "True", trigger.reason, trigger.message)
    threshold = expiry_warning_threshold(current.not_after, now)
    marker = threshold if threshold is not None else 30
    if trigger.reason == TriggerReason.EXPIRED:
        marker = 0
    if status.get("expiryWarningDays") != marker:
        action = "new CSR published" if outcome.status.get("csr") else "re-issuing"
        event_reason = "Expired" if marker == 0 else "RenewalDue"
        outcome.events.append(("Warning", event_reason, f"{trigger.message}; {action}"))
        outcome.status["expiryWarningDays"] = marker


def chain_validity(current: CertificateInfo, chain: ChainExpiry | None, now: datetime.datetime) -> Condition:
    """ChainValid: servers accept a certificate only while every CA under which it was verified is valid, so a
    partner's intermediate or root that expires before the certificate ends its service early, whatever the
    certificate's own dates say. Raised as soon as that is known, not when connections start failing."""
    if chain is None:
        return Condition(ConditionType.CHAIN_VALID, "True", "NoCACertificates",
                         "no CA certificate beside the certificate: nothing expires before it")  # fmt: skip
    subject, until = chain.subject, timestamp(chain.not_after)
    if chain.not_after <= now:
        return Condition(
            ConditionType.CHAIN_VALID, "False", "ChainExpired",
            f"the CA certificate {subject} expired at {until}: servers now refuse this certificate; ask the partner "
            "for a certificate issued under their current CA and its chain (runbook MtlsCertificateChainExpired)",
        )  # fmt: skip
    if chain.not_after < current.not_after:
        return Condition(
            ConditionType.CHAIN_VALID, "False", "ChainExpiresFirst",
            f"the CA certificate {subject} expires at {until}, before this certificate "
            f"({timestamp(current.not_after)}): from then servers refuse it; ask the partner now for the CA's "
            "renewed certificate, or a certificate issued under their new CA "
            "(runbook MtlsCertificateChainExpiresBeforeRenewal)",
        )  # fmt: skip
    message = f"every CA certificate beside it is valid until {until}, no earlier than the certificate"
    return Condition(ConditionType.CHAIN_VALID, "True", "ChainValid", message)
