"""Will a real server accept this chain? OpenSSL decides; this module adds the clock and says why in plain words.

The decision is not ours (see `pki.handshake`): after `pki.chain` has put the partner's files in order, OpenSSL
judges the ordered chain in a real in-memory handshake. What stays here:

- **time**: every certificate of the path (leaf, intermediates, the root it ends at) must be valid at `now`, so the
  verdict holds under a fixed clock and can be asked for a moment in the future;
- **what Go refuses and OpenSSL accepts** (measured by the e2e table against a Go server): a negative serial number,
  an elliptic curve other than P-256/P-384/P-521, a critical name constraint of a type Go does not implement. We
  refuse those too: a partner's server may be written in Go;
- **the words**: OpenSSL says "invalid CA certificate"; a partner's support desk needs to hear which certificate,
  in which file, breaks which rule, and what to send instead.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from mtls_operator.pki.certificates import common_name_of, sorts_under
from mtls_operator.pki.csr import TLS_CURVES
from mtls_operator.pki.handshake import ServerVerdict, openssl_server_verdict
from mtls_operator.pki.keys import PrivateKey

Where = Callable[[x509.Certificate], str]  # "number 2 in tls.crt": where the user can find a certificate

GO_NAME_CONSTRAINT_TYPES = (x509.DNSName, x509.IPAddress, x509.RFC822Name, x509.UniformResourceIdentifier)
WEAK_DIGESTS = (hashes.SHA1, hashes.MD5)
MIN_RSA_BITS = 2048  # OpenSSL's security level 2, the default of Debian's and most distributions' OpenSSL


@dataclass(frozen=True)
class PathProblem:
    """Why a server refuses the chain: a condition reason and a message naming the certificate and the rule."""

    reason: str  # UntrustedChain (a CA or the path), WrongUsage (our certificate's purpose), Expired, NotYetValid
    message: str


def _fmt(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def describe(cert: x509.Certificate, where: Where) -> str:
    cn = common_name_of(cert)
    name = f"CN={cn}" if cn else repr(cert.subject.rfc4514_string())
    place = where(cert)
    return f"{name} ({place})" if place else name


def path_problem(
    chain: list[x509.Certificate],
    anchors: list[x509.Certificate],
    key: PrivateKey | None,
    now: datetime.datetime,
    where: Where,
) -> PathProblem | None:
    """Why a server that trusts `anchors` would refuse `chain` (leaf first) at `now`; None when it accepts.

    Without the private key (the kubectl plugin holds only the CSR's public key) OpenSSL cannot be asked: the time
    and Go rules still run, and the operator's verdict, with the key, is the final one.
    """
    path = chain + _anchor_of(chain[-1], anchors, now)
    problem = _time_problem(path, now, where) or _go_problem(path, where)
    if problem is not None or key is None:
        return problem
    verdict = openssl_server_verdict(chain, key, anchors or chain[-1:])
    return None if verdict.accepted else explain(verdict, path, where)


def _anchor_of(
    top: x509.Certificate, anchors: list[x509.Certificate], now: datetime.datetime
) -> list[x509.Certificate]:
    """The anchor the path ends at, unless the top is one itself: the one that signed it, and of several (a partner
    renewing its root under the same name sends both) one valid at `now`, as a server would pick."""
    if top in anchors:
        return []
    signers = [a for a in anchors if sorts_under(top, a)]
    valid = [a for a in signers if a.not_valid_before_utc <= now < a.not_valid_after_utc]
    return (valid or signers)[:1]


def _time_problem(path: list[x509.Certificate], now: datetime.datetime, where: Where) -> PathProblem | None:
    for depth, cert in enumerate(path):
        expired, early = now >= cert.not_valid_after_utc, now < cert.not_valid_before_utc
        if not (expired or early):
            continue
        when = f"expired at {_fmt(cert.not_valid_after_utc)}" if expired else (
            f"is not valid before {_fmt(cert.not_valid_before_utc)}")  # fmt: skip
        if depth == 0:
            return PathProblem("Expired" if expired else "NotYetValid", f"the certificate {when}")
        return PathProblem(
            "UntrustedChain",
            f"the partner's CA certificate {describe(cert, where)} {when}: servers refuse every certificate under "
            f"it, whatever the certificate's own dates say; ask the partner for the current certificate of that CA "
            f"(and a certificate signed by it if that CA was replaced)",
        )
    return None


def _go_problem(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in path:
        if cert.serial_number <= 0:
            return PathProblem(
                "UntrustedChain" if cert is not path[0] else "InvalidCertificate",
                f"certificate {describe(cert, where)} has a negative or zero serial number, which RFC 5280 forbids: "
                "Go's crypto/x509 refuses to read it, so Go servers refuse the chain; ask the partner to re-issue "
                "it with a positive serial number",
            )
        key = cert.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey) and not isinstance(key.curve, TLS_CURVES):
            return PathProblem(
                "UntrustedChain",
                f"certificate {describe(cert, where)} has a key on the elliptic curve {key.curve.name}, which TLS "
                "stacks do not accept in certificates (Go refuses it): only P-256, P-384 and P-521 work everywhere; "
                "ask the partner for a certificate with an RSA key or a key on one of those curves",
            )
        for constraint in _critical_name_constraints(cert):
            kinds = {type(n).__name__ for n in constraint if not isinstance(n, GO_NAME_CONSTRAINT_TYPES)}
            if kinds:
                return PathProblem(
                    "UntrustedChain",
                    f"CA certificate {describe(cert, where)} has a critical name constraint on "
                    f"{', '.join(sorted(kinds))}, which Go's crypto/x509 does not implement and so refuses the "
                    "chain; ask the partner for a CA certificate whose name constraints are non-critical or only "
                    "constrain DNS names, IP addresses, e-mail addresses or URIs",
                )
    return None


def _critical_name_constraints(cert: x509.Certificate) -> list[list[x509.GeneralName]]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return []
    if not ext.critical:
        return []
    return [list(ext.value.permitted_subtrees or []) + list(ext.value.excluded_subtrees or [])]


# --- OpenSSL's verdict in words -------------------------------------------------------------------------------

# X509_V_ERR_* numbers (openssl/x509_vfy.h, stable across OpenSSL 1.1 and 3.x)
UNABLE_TO_GET_ISSUER = {2, 20, 21}
SIGNATURE_FAILURE = {7}
INVALID_CA = {24, 79}
PATH_LENGTH_EXCEEDED = {25}
INVALID_PURPOSE = {26}
AKID_MISMATCH = {30, 31}
UNHANDLED_CRITICAL_EXTENSION = {34}
NAME_CONSTRAINTS = {47, 48, 49, 51, 53}
KEY_TOO_SMALL = {66, 67}
DIGEST_TOO_WEAK = {68}
ASK = "ask the partner to re-issue"


def explain(verdict: ServerVerdict, path: list[x509.Certificate], where: Where) -> PathProblem:
    """Names the certificate OpenSSL refused for, and the rule it breaks; OpenSSL's own words close the message."""
    said = f" (OpenSSL: {verdict.said})"
    code = verdict.code
    leaf, cas = path[0], path[1:]
    finders: list[tuple[set[int], Callable[[], PathProblem | None]]] = [
        (INVALID_CA, lambda: _not_an_issuer(cas, where)),
        (PATH_LENGTH_EXCEEDED, lambda: _path_length(path, where)),
        (INVALID_PURPOSE, lambda: _purpose(leaf, cas, where)),
        (UNHANDLED_CRITICAL_EXTENSION, lambda: _unknown_critical(path, where)),
        (NAME_CONSTRAINTS, lambda: _name_constraints(cas, where)),
        (KEY_TOO_SMALL, lambda: _weak_key(path, where)),
        (DIGEST_TOO_WEAK, lambda: _weak_digest(path, where)),
        (UNABLE_TO_GET_ISSUER | AKID_MISMATCH, lambda: _key_identifiers(path, where)),
    ]
    for codes, finder in finders:
        if code in codes and (problem := finder()) is not None:
            return PathProblem(problem.reason, problem.message + said)
    if code in UNABLE_TO_GET_ISSUER or code in SIGNATURE_FAILURE:
        return PathProblem(
            "UntrustedChain",
            f"servers cannot build a path from the certificate to the partner's root: the signature of "
            f"{describe(path[-1], where)} does not verify with the certificate named as its issuer; ask the partner "
            f"for the complete chain of the CA that signed it{said}",
        )
    return PathProblem("UntrustedChain", f"a TLS server refuses the chain{said}; send the partner this message")


def _is_v1_root(cert: x509.Certificate) -> bool:
    return cert.version == x509.Version.v1 and cert.subject == cert.issuer


def _not_an_issuer(cas: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in cas:
        if _is_v1_root(cert):
            continue
        if cert.version == x509.Version.v1:
            rule = ("is a version 1 certificate without extensions: servers accept such a certificate only as a "
                    "self-signed root, never as an intermediate that signs others")  # fmt: skip
        elif not _basic_constraints_ca(cert):
            rule = "is not a CA certificate (its basicConstraints extension is missing or says CA:FALSE)"
        elif (usage := _key_usage(cert)) is not None and not usage.key_cert_sign:
            rule = "is a CA certificate whose keyUsage does not allow signing certificates (keyCertSign is missing)"
        else:
            continue
        return PathProblem(
            "UntrustedChain",
            f"the certificate {describe(cert, where)} signs the next one down the chain but {rule}; {ASK} that CA "
            "certificate with basicConstraints CA:TRUE and keyUsage keyCertSign",
        )
    return None


def _path_length(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for depth, cert in enumerate(path[1:], 1):
        try:
            limit = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.path_length
        except x509.ExtensionNotFound:
            continue
        below = depth - 1  # intermediates between it and the leaf
        if limit is not None and below > limit:
            return PathProblem(
                "UntrustedChain",
                f"CA certificate {describe(cert, where)} allows at most {limit} intermediate CA(s) below it "
                f"(pathLenConstraint), but the chain has {below}; ask the partner for a certificate issued by a CA "
                "within that limit",
            )
    return None


def _purpose(leaf: x509.Certificate, cas: list[x509.Certificate], where: Where) -> PathProblem | None:
    usages = _eku(leaf)
    if usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        only_any = ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in usages
        what = "only anyExtendedKeyUsage, which OpenSSL does not take for clientAuth" if only_any else (
            f"{', '.join(_oid_names(usages))} but not clientAuth")  # fmt: skip
        return PathProblem(
            "WrongUsage",
            f"the certificate's extendedKeyUsage allows {what}; ask the partner to re-issue it with "
            "extendedKeyUsage clientAuth",
        )
    usage = _key_usage(leaf)
    if usage is not None and not (usage.digital_signature or usage.key_agreement):
        return PathProblem(
            "WrongUsage",
            "the certificate's keyUsage lacks digitalSignature, which a client needs to prove it holds the key in "
            "the handshake; ask the partner to re-issue it with keyUsage digitalSignature",
        )
    if _basic_constraints_ca(leaf):
        return PathProblem(
            "WrongUsage",
            "the certificate is marked as a CA (basicConstraints CA:TRUE); servers refuse a CA certificate as a "
            "client certificate; ask the partner to re-issue it as an end-entity certificate (CA:FALSE)",
        )
    for cert in cas:
        ca_usages = _eku(cert)
        if ca_usages is not None and not {ExtendedKeyUsageOID.CLIENT_AUTH,
                                          ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE} & set(ca_usages):  # fmt: skip
            return PathProblem(
                "UntrustedChain",
                f"CA certificate {describe(cert, where)} restricts what it may sign to "
                f"{', '.join(_oid_names(ca_usages))} (extendedKeyUsage), which excludes client certificates; ask the "
                "partner for a certificate from a CA whose extendedKeyUsage includes clientAuth (or has none)",
            )
    return None


def _unknown_critical(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in path:
        unknown = [e.oid.dotted_string for e in cert.extensions
                   if e.critical and isinstance(e.value, x509.UnrecognizedExtension)]  # fmt: skip
        if unknown:
            whose = "the certificate" if cert is path[0] else f"CA certificate {describe(cert, where)}"
            return PathProblem(
                "UntrustedChain",
                f"{whose} has an extension marked critical that TLS servers do not know ({', '.join(unknown)}): a "
                "server must refuse a certificate with a critical extension it does not understand; ask the "
                "partner to re-issue it without that extension or with it non-critical",
            )
    return None


def _name_constraints(cas: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in cas:
        try:
            constraints = cert.extensions.get_extension_for_class(x509.NameConstraints).value
        except x509.ExtensionNotFound:
            continue
        permitted = ", ".join(str(n.value) for n in constraints.permitted_subtrees or [])
        excluded = ", ".join(str(n.value) for n in constraints.excluded_subtrees or [])
        rules = "; ".join(
            part for part in (f"permits only {permitted}" if permitted else "",
                              f"excludes {excluded}" if excluded else "") if part)  # fmt: skip
        return PathProblem(
            "UntrustedChain",
            f"CA certificate {describe(cert, where)} has name constraints ({rules}) that the certificate's names "
            "break; ask the partner to issue it from a CA allowed to certify our name",
        )
    return None


def _weak_key(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in path:
        key = cert.public_key()
        if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            return PathProblem(
                "UntrustedChain",
                f"CA certificate {describe(cert, where)} has an RSA key of {key.key_size} bits: OpenSSL servers at "
                f"their default security level refuse keys under {MIN_RSA_BITS} bits (Go accepts it, so some "
                "servers do not refuse); ask the partner for a CA with an RSA key of 2048 bits or more",
            )
    return None


def _weak_digest(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert in path[:-1] if len(path) > 1 else path:  # a root's self-signature is never checked
        algorithm = cert.signature_hash_algorithm
        if isinstance(algorithm, WEAK_DIGESTS):
            whose = "the certificate" if cert is path[0] else f"certificate {describe(cert, where)}"
            return PathProblem(
                "UntrustedChain",
                f"{whose} is signed with {algorithm.name.upper()}, which TLS servers no longer accept (broken "
                "hash); ask the partner to re-sign it with SHA-256",
            )
    return None


def _key_identifiers(path: list[x509.Certificate], where: Where) -> PathProblem | None:
    for cert, issuer in itertools.pairwise(path):
        try:
            aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
            ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
        except x509.ExtensionNotFound:
            continue
        if aki is not None and aki != ski:
            whose = "the certificate" if cert is path[0] else f"certificate {describe(cert, where)}"
            return PathProblem(
                "UntrustedChain",
                f"{whose} names its issuer by a key identifier (authorityKeyIdentifier {aki.hex()}) that is not "
                f"the one of {describe(issuer, where)} (subjectKeyIdentifier {ski.hex()}): servers that look the "
                f"issuer up by key identifier cannot find it; {ASK} it with the correct authorityKeyIdentifier",
            )
    return None


def _basic_constraints_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _eku(cert: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def _oid_names(oids: list[x509.ObjectIdentifier]) -> list[str]:
    return [getattr(o, "_name", None) or o.dotted_string for o in oids]
