"""Private keys: generation, PEM round trips and the algorithm/size a key has."""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey

_CURVES: dict[int, ec.EllipticCurve] = {256: ec.SECP256R1(), 384: ec.SECP384R1()}


@dataclass(frozen=True)
class KeySpec:
    algorithm: str  # "RSA" | "ECDSA"
    size: int  # RSA modulus bits, or the ECDSA curve size

    def __str__(self) -> str:
        return f"{self.algorithm}-{self.size}"


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """CPU-heavy for RSA (an RSA-4096 key takes seconds): call it off the event loop."""
    if spec.algorithm == "RSA":
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    if spec.algorithm == "ECDSA":
        return ec.generate_private_key(_CURVES[spec.size])
    raise ValueError(f"unsupported key algorithm {spec.algorithm!r}")


def private_key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def load_private_key(pem: bytes) -> PrivateKey:
    """Raises ValueError for anything that is not an unencrypted RSA or ECDSA PEM key.

    OpenSSL's full RSA key validation costs about 55 ms for RSA-2048 on a small machine, and a pending key is
    read on every reconcile. Our keys come from Secrets only we and cluster admins write, so instead of the
    full check a signature made with the key must verify with its public key: that catches a corrupted key
    at a fraction of the cost. The error message never contains key material.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError("not a readable unencrypted PEM private key") from exc
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError(f"unsupported private key type {type(key).__name__}")
    if not _signs_consistently(key):
        raise ValueError("the private key is inconsistent (a signature made with it does not verify)")
    return key


def _signs_consistently(key: PrivateKey) -> bool:
    message = b"mtls-operator key self-test"
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            key.public_key().verify(key.sign(message, padding.PKCS1v15(), hashes.SHA256()), message,
                                    padding.PKCS1v15(), hashes.SHA256())  # fmt: skip
        else:
            key.public_key().verify(key.sign(message, ec.ECDSA(hashes.SHA256())), message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def key_spec_of(key: PrivateKey | PublicKey) -> KeySpec:
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        return KeySpec("RSA", key.key_size)
    return KeySpec("ECDSA", key.curve.key_size)


def public_key_der(key: PrivateKey | PublicKey) -> bytes:
    """SubjectPublicKeyInfo DER: two keys are the same key exactly when these bytes are equal."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def is_private_key(key: PrivateKey | PublicKey) -> bool:
    return isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey)


def same_public_key(a: PrivateKey | PublicKey, b: PrivateKey | PublicKey) -> bool:
    return public_key_der(a) == public_key_der(b)


def public_key_fingerprint(key: PrivateKey | PublicKey) -> str:
    """SHA-256 of the SubjectPublicKeyInfo, as `openssl pkey -pubout -outform der | sha256sum` prints it: the one
    way to tell two keys apart in a message without showing either."""
    digest = hashes.Hash(hashes.SHA256())
    digest.update(public_key_der(key))
    return "sha256:" + digest.finalize().hex()
