"""`kubectl mtls check`'s revocation check: is the certificate in service on the CRL its issuer names?

The CRL is fetched from the certificate's cRLDistributionPoints (http only, as RFC 5280 intends: a CRL is signed),
bounded in time and size, and believed only when one of the CA certificates beside the certificate signed it. A
CRL that cannot be fetched is a warning (offline, or a partner that publishes none), never a failure.
"""

from __future__ import annotations

import datetime
import urllib.request

from cryptography import x509

from mtls_operator.pki.crl import read_crl, revocation_in, signed_by

FETCH_TIMEOUT_SECONDS = 5.0
MAX_CRL_BYTES = 10 * 1024 * 1024

PASS, WARN, FAIL = "pass", "warn", "fail"


def distribution_points(leaf: x509.Certificate) -> list[str]:
    try:
        points = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    urls = []
    for point in points:
        for name in point.full_name or []:
            if isinstance(name, x509.UniformResourceIdentifier) and name.value.startswith("http://"):
                urls.append(name.value)
    return urls


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_SECONDS) as resp:
        data: bytes = resp.read(MAX_CRL_BYTES + 1)
    if len(data) > MAX_CRL_BYTES:
        raise ValueError(f"more than {MAX_CRL_BYTES // 2**20} MiB")
    return data


def revocation_status(
    leaf: x509.Certificate, issuers: list[x509.Certificate], moment: datetime.datetime
) -> tuple[str, str]:
    """(status, message) for the report."""
    urls = distribution_points(leaf)
    if not urls:
        return PASS, "the certificate names no CRL (no cRLDistributionPoints): nothing to check"
    problems = []
    for url in urls:
        try:
            crl = read_crl(fetch(url))
        except (OSError, ValueError) as exc:
            problems.append(f"{url}: {exc}")
            continue
        if not signed_by(crl, issuers):
            problems.append(f"{url}: the CRL is not signed by the certificate's CA (ignored)")
            continue
        revoked = revocation_in(crl, leaf.serial_number)
        if revoked is not None:
            when, reason = revoked
            return FAIL, f"REVOKED ({reason}) at {when:%Y-%m-%dT%H:%M:%SZ} according to {url}"
        next_update = crl.next_update_utc
        if next_update is not None and next_update < moment:
            return WARN, f"not on the CRL of {url}, but that CRL expired at {next_update:%Y-%m-%dT%H:%M:%SZ}"
        return PASS, f"not revoked according to {url} (CRL this update {crl.last_update_utc:%Y-%m-%dT%H:%M:%SZ})"
    return WARN, "the CRL could not be checked: " + "; ".join(problems)
