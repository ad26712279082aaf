"""Sorting out what a partner sent: which certificate is ours, its chain, and the roots, whatever the files' order.

Partners put intermediates in the CA file, roots first, the leaf last, or the leaf in the CA file. The order of a
chain is mechanical (issuer name *and* signature), so we establish it instead of asking the user to. The result is
canonical, because clients differ: Go and Java send `tls.crt` exactly as it is, so it must be the leaf and every
intermediate; `ca.crt` holds the roots (and whatever other CA the partner gave for its servers).
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography import x509

from mtls_operator.pki.certificates import common_name_of, is_ca, is_self_signed, sorts_under
from mtls_operator.pki.keys import PrivateKey, PublicKey, public_key_fingerprint, same_public_key

TLS, CA = "tls.crt", "ca.crt"
# The longest path we build (leaf, intermediates, root). Real ones have 2 to 4; OpenSSL servers are often run with
# `-Verify 5` or nginx's default ssl_verify_depth 1. Past this the chain is refused by name, not walked.
MAX_PATH = 10


@dataclass(frozen=True)
class Found:
    """One distinct certificate and the files (with its position in each) it was found in."""

    cert: x509.Certificate
    places: tuple[tuple[str, int], ...]  # (file, 1-based position)

    def came_from(self, file: str) -> bool:
        return any(f == file for f, _ in self.places)

    def where(self) -> str:
        return " and ".join(f"number {n} in {f}" for f, n in self.places)


@dataclass(frozen=True)
class Sorted:
    chain: list[x509.Certificate]  # the leaf, then its intermediates in order (no self-signed root)
    roots: list[x509.Certificate]  # ca.crt: the chain's root first, then any other CA certificates given


@dataclass(frozen=True)
class Rejection:
    """Why a certificate cannot go into service: a stable condition reason and a message saying what to do."""

    reason: str  # InvalidCertificate, KeyMismatch, CommonNameMismatch, CACertificateOnly, InvalidChain, ...
    message: str


def pool(tls: list[x509.Certificate], ca: list[x509.Certificate]) -> list[Found]:
    """Every distinct certificate of both files, tls.crt's first, each with where it was found."""
    places: dict[x509.Certificate, list[tuple[str, int]]] = {}
    for file, certs in ((TLS, tls), (CA, ca)):
        for position, cert in enumerate(certs, 1):
            places.setdefault(cert, []).append((file, position))
    return [Found(cert, tuple(where)) for cert, where in places.items()]


def find_leaf(found: list[Found], key: PrivateKey | PublicKey) -> Found | Rejection:
    """The certificate for `key`, wherever it is; or why there is none, saying what the files hold instead."""
    ours = [f for f in found if same_public_key(f.cert.public_key(), key)]  # type: ignore[arg-type]
    if len(ours) > 1:
        listed = "; ".join(f"{_name(f.cert)} ({f.where()})" for f in ours)
        return Rejection(
            "InvalidChain",
            f"{len(ours)} different certificates are for the pending key ({listed}): keep only the one to use",
        )
    if ours:
        return ours[0]
    others = [f for f in found if not _plainly_ca(f.cert)]
    if not others:
        listed = "; ".join(f"{_name(f.cert)}{' (a self-signed root)' if is_self_signed(f.cert) else ''}"
                           for f in found)  # fmt: skip
        return Rejection(
            "CACertificateOnly",
            f"the files hold only CA certificates ({listed}): that is the partner's CA, not the certificate they "
            "signed for our CSR; put it in ca.crt and ask the partner for the signed client certificate",
        )
    other = others[0]
    return Rejection(
        "KeyMismatch",
        f"the certificate {_name(other.cert)} ({other.where()}) is for public key "
        f"{public_key_fingerprint(other.cert.public_key())}, but the pending key is "  # type: ignore[arg-type]
        f"{public_key_fingerprint(key)}: it was signed for a different CSR; send the partner the current one "
        "(kubectl mtls csr)",
    )


def sort_chain(leaf: Found, found: list[Found]) -> Sorted | Rejection:
    """leaf → intermediates → root by issuer name and signature; strays in tls.crt are refused, not dropped."""
    path = _path(leaf, found)
    if isinstance(path, Rejection):
        return path
    on_path = {f.cert for f in path}
    top = path[-1]
    rooted = len(path) > 1 and is_self_signed(top.cert)
    strays = [f for f in found if f.cert not in on_path and f.came_from(TLS) and not f.came_from(CA)]
    stray = next((f for f in strays if not is_self_signed(f.cert)), None)
    if stray is not None:
        return Rejection(
            "InvalidChain",
            f"certificate {stray.where()} ({_name(stray.cert)}) is not part of the chain of the certificate for "
            f"the pending key ({_name(leaf.cert)}): it is neither one of its issuers nor a root; remove it",
        )
    problem = _anchor_problem(path, found)
    if problem is not None:
        return Rejection("UntrustedChain", f"the chain does not verify to ca.crt: {problem}")
    chain = [leaf.cert] + [f.cert for f in path[1:] if not is_self_signed(f.cert)]
    intermediates = set(chain[1:]) - ({top.cert} if not rooted else set())
    roots = ([top.cert] if rooted else []) + [
        f.cert
        for f in found
        if f.cert is not leaf.cert
        and f.cert not in intermediates
        and (f.came_from(CA) or is_self_signed(f.cert))
        and not (rooted and f.cert is top.cert)
    ]
    return Sorted(chain=chain, roots=roots)


def _path(leaf: Found, found: list[Found]) -> list[Found] | Rejection:
    """Walks up by issuer name through an index (never every pair): linear in the number of certificates."""
    by_subject: dict[x509.Name, list[Found]] = {}
    for f in found:
        by_subject.setdefault(f.cert.subject, []).append(f)
    path = [leaf]
    used = {leaf.cert}
    while not is_self_signed(path[-1].cert):
        if len(path) >= MAX_PATH:
            return Rejection(
                "InvalidChain",
                f"the chain is longer than {MAX_PATH} certificates, the limit: real chains have two to four; send "
                "only the certificate, its intermediates and the root",
            )
        current = path[-1].cert
        candidates = by_subject.get(current.issuer, [])
        issuers = [f for f in candidates if f.cert not in used and sorts_under(current, f.cert)]
        if not issuers:
            break
        issuer = next((f for f in issuers if is_ca(f.cert)), issuers[0])
        if not is_ca(issuer.cert):
            return Rejection(
                "UntrustedChain",
                f"the chain does not verify to ca.crt: issuer {issuer.cert.subject.rfc4514_string()!r} "
                f"({issuer.where()}) is not a CA certificate (basicConstraints CA:TRUE is missing), so servers refuse "
                "it as an issuer; ask the partner to re-issue that CA certificate with basicConstraints CA:TRUE and "
                "keyUsage keyCertSign",
            )
        path.append(issuer)
        used.add(issuer.cert)
    return path


def _anchor_problem(path: list[Found], found: list[Found]) -> str | None:
    """With a ca.crt given, the chain must reach one of its certificates (or a root the partner also sent)."""
    given = [f for f in found if f.came_from(CA) and f is not path[0]]
    if not given:
        return None  # nothing to verify against; a root sent in tls.crt alone moves to ca.crt as it is
    if any(f.came_from(CA) for f in path[1:]):
        return None
    top = path[-1].cert
    holds = ", ".join(repr(f.cert.subject.rfc4514_string()) for f in given)
    if len(path) > 1 and is_self_signed(top):
        root = top.subject.rfc4514_string()
        return (
            f"the chain ends at the root {root!r}, which is not in ca.crt (ca.crt holds {holds}); ask the partner "
            "which root signed it, and put that root in ca.crt"
        )
    return (
        f"certificate {top.subject.rfc4514_string()!r} is not signed by the given CA: its issuer "
        f"{top.issuer.rfc4514_string()!r} is in neither tls.crt nor ca.crt (ca.crt holds {holds}); if that is an "
        "intermediate CA of the partner, ask the partner for its certificate and add it to either file"
    )


def _plainly_ca(cert: x509.Certificate) -> bool:
    """A CA by its own say (basicConstraints CA:TRUE) or a self-signed root. `is_ca` also lets a v1 certificate
    without extensions issue (old hand-run CAs), but `openssl x509 -req` makes v1 client certificates too."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return is_self_signed(cert)


def _name(cert: x509.Certificate) -> str:
    cn = common_name_of(cert)
    return f"CN={cn}" if cn else repr(cert.subject.rfc4514_string())
