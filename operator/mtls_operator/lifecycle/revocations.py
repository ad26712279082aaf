"""One reconcile of one MtlsRevocation: resolve what it revokes (once), and say whether the issuer's CRL lists it.

Resolution is recorded on the object's metadata (api.revocation.resolved_of), never re-done: a revocation of a
certificate by name revokes the certificate in service when the operator first saw the request, not the one that
replaced it (keyCompromise re-issues at once).

Who may revoke what: a revocation by certificateName revokes the serial the operator itself recorded in that
certificate's status.issuedBy when an issuer of ours signed it (status is written only by the operator; a Secret
could be written by anyone in the namespace). A revocation by serialNumber names an MtlsIssuer of its own namespace,
or a ClusterMtlsIssuer only from the cluster issuers' namespace, so no tenant can revoke another namespace's
certificate of a shared issuer by its serial.
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mtls_operator.api.names import CLUSTER_ISSUER_KIND, ISSUER_KIND, REVOCATION_KIND
from mtls_operator.api.refs import IssuerKey, IssuerRef
from mtls_operator.api.revocation import RevocationSpec, parse_revocation, resolution_annotations, resolved_of
from mtls_operator.api.status import ConditionType, format_time
from mtls_operator.kube.client import KubeIO
from mtls_operator.kube.objects import Owner
from mtls_operator.lifecycle.issuers import IssuerDirectory
from mtls_operator.lifecycle.policy.readiness import Condition, merge_conditions
from mtls_operator.pki.certificates import openssl_serial
from mtls_operator.pki.crl import parse_serial

log = logging.getLogger(__name__)

RETRY = datetime.timedelta(seconds=30)  # a certificate or issuer that may still appear (applied in one go)


@dataclass(frozen=True)
class Unresolved:
    reason: str
    message: str
    retry: bool  # may resolve by itself later (something not there yet)


# (issuer) -> (CRL number, the serials it lists) of the CRL in service, or None
CrlLookup = Callable[[IssuerKey], tuple[int, frozenset[int]] | None]


class RevocationReconciler:
    def __init__(
        self,
        kube: KubeIO,
        directory: IssuerDirectory,
        cluster_issuer_namespace: str,
        clock: Callable[[], datetime.datetime],
    ) -> None:
        self.kube = kube
        self.directory = directory
        self.cluster_issuer_namespace = cluster_issuer_namespace
        self.clock = clock

    async def reconcile(
        self, body: Mapping[str, Any], crls: CrlLookup
    ) -> tuple[dict[str, Any] | None, datetime.datetime | None]:
        """(the object after our writes, or None when nothing was written; when to look again)."""
        now = self.clock()
        try:
            spec = parse_revocation(body)
        except ValueError as exc:
            return await self._write(
                body, {}, Condition(ConditionType.PUBLISHED, "False", "InvalidSpec", str(exc))
            ), None
        written = None
        resolved = resolved_of(body)
        if resolved is None:
            found = await self._resolve(spec)
            if isinstance(found, Unresolved):
                condition = Condition(ConditionType.PUBLISHED, "False", found.reason, found.message)
                return await self._write(body, {}, condition), (now + RETRY if found.retry else None)
            issuer, serial = found
            written = await self.kube.annotate_revocation(
                spec.namespace, spec.name, spec.uid, resolution_annotations(issuer, openssl_serial(serial))
            )
            if written is None:
                return None, None  # gone, or a newer object of that name: its own event follows
            body = written
            log.info("%s/%s revokes serial %s of %s (%s)", *spec.key, openssl_serial(serial), issuer, spec.reason)
            resolved = resolved_of(body)
            assert resolved is not None
        status: dict[str, Any] = {
            "issuer": f"{resolved.issuer.kind}/{resolved.issuer.name}",
            "serialNumber": openssl_serial(resolved.serial_number),
            "revocationTime": format_time(spec.created) if spec.created else None,
        }
        crl = crls(resolved.issuer)
        if crl is not None and resolved.serial_number in crl[1]:
            old_number = (body.get("status") or {}).get("crlNumber")
            status["crlNumber"] = old_number or str(crl[0])
            message = f"listed in the CRL of {resolved.issuer} (number {status['crlNumber']} and every later one)"
            condition = Condition(ConditionType.PUBLISHED, "True", "InCRL", message)
        else:
            message = f"recorded; waiting for {resolved.issuer} to sign its next CRL (it must be Ready to sign)"
            condition = Condition(ConditionType.PUBLISHED, "False", "Pending", message)
        updated = await self._write(body, status, condition)
        return updated or written, None

    async def _resolve(self, spec: RevocationSpec) -> tuple[IssuerKey, int] | Unresolved:
        if spec.serial_number is not None:
            assert spec.issuer_ref is not None
            issuer = spec.issuer_ref.key(spec.namespace)
            if issuer.kind == CLUSTER_ISSUER_KIND and spec.namespace != self.cluster_issuer_namespace:
                return Unresolved(
                    "NotYourIssuer",
                    f"a serial number of {issuer} is revoked only from the cluster issuers' namespace "
                    f"{self.cluster_issuer_namespace} (the platform team's); from this namespace, revoke a "
                    "certificate of your own by spec.certificateName",
                    retry=False,
                )
            if self.directory.find(issuer) is None:
                return Unresolved("IssuerNotFound", f"{issuer} does not exist (spec.issuerRef)", retry=True)
            return issuer, spec.serial_number
        assert spec.certificate_name is not None
        certificate = await self.kube.get_certificate(spec.namespace, spec.certificate_name)
        if certificate is None:
            return Unresolved(
                "CertificateNotFound",
                f"MtlsCertificate {spec.namespace}/{spec.certificate_name} does not exist; to revoke a certificate "
                "whose object is gone, name spec.serialNumber and spec.issuerRef",
                retry=True,
            )
        issued = (certificate.get("status") or {}).get("issuedBy") or {}
        kind, _, name = str(issued.get("issuer") or "").partition("/")
        if kind not in (ISSUER_KIND, CLUSTER_ISSUER_KIND) or not name or not issued.get("serialNumber"):
            return Unresolved(
                "NotIssuedByIssuer",
                f"MtlsCertificate {spec.certificate_name} has no certificate in service signed by an MtlsIssuer or "
                "ClusterMtlsIssuer (status.issuedBy): only those issuers publish CRLs; a partner-signed "
                "certificate is revoked by the partner's CA",
                retry=True,
            )
        try:
            serial = parse_serial(str(issued["serialNumber"]))
        except ValueError as exc:
            return Unresolved("NotIssuedByIssuer", str(exc), retry=False)
        return IssuerRef(kind, name).key(spec.namespace), serial

    async def _write(
        self, body: Mapping[str, Any], status: dict[str, Any], condition: Condition
    ) -> dict[str, Any] | None:
        meta, old = body["metadata"], body.get("status") or {}
        conditions = merge_conditions(
            old.get("conditions") or [], [condition], int(meta.get("generation", 0)), self.clock()
        )
        wanted = {**status, "conditions": conditions}
        patch = {k: v for k, v in wanted.items() if old.get(k) != v and not (v is None and k not in old)}
        if not patch:
            return None
        previous: dict[str, Any] = next((c for c in old.get("conditions") or [] if c.get("type") == condition.type), {})
        updated = await self.kube.patch_revocation_status(meta["namespace"], meta["name"], patch)
        if (previous.get("status"), previous.get("reason")) != (condition.status, condition.reason):
            event_type = "Normal" if condition.status == "True" or condition.reason == "Pending" else "Warning"
            reason = "Revoked" if condition.status == "True" else condition.reason
            try:
                await self.kube.post_event(Owner.of(body, kind=REVOCATION_KIND), event_type, reason, condition.message)
            except Exception as exc:  # the status says it too
                log.warning("%s/%s: could not post Event %s: %s", meta["namespace"], meta["name"], reason, exc)
        return updated
