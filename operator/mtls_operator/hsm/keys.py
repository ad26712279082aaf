"""`cryptography` private-key objects whose signature is made by the token (pyca's way to plug in an external
signer: CertificateBuilder.sign calls the key's `sign`). Every other private-key operation refuses: the key is
not in this process."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, NoReturn, Self, TypeVar

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature

# (data or digest, PKCS#11 mechanism name) -> signature bytes as the token returns them
TokenSign = Callable[[bytes, str], bytes]

# PKCS#1 v1.5 with the token hashing: the mechanisms every HSM has.
RSA_MECHANISMS = {"sha256": "SHA256_RSA_PKCS", "sha384": "SHA384_RSA_PKCS", "sha512": "SHA512_RSA_PKCS"}
ECDSA_MECHANISM = "ECDSA"  # over a digest we compute: CKM_ECDSA_SHA384 and friends are optional in PKCS#11


def _not_here() -> NoReturn:
    raise TypeError("the private key is in the PKCS#11 token and cannot be exported or used here")


PublicKey = TypeVar("PublicKey", rsa.RSAPublicKey, ec.EllipticCurvePublicKey)


class _TokenKey(Generic[PublicKey]):
    """What both key types share: the public half, the token's signing call, and refusals of everything else. It
    comes first in each subclass's bases so its methods implement the cryptography ABC's abstract ones."""

    def __init__(self, public: PublicKey, token_sign: TokenSign, label: str) -> None:
        self._public: PublicKey = public
        self._sign = token_sign
        self.label = label  # where the key is, for messages

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> PublicKey:
        return self._public

    def private_numbers(self, *args: Any, **kwargs: Any) -> NoReturn:
        _not_here()

    def private_bytes(self, *args: Any, **kwargs: Any) -> NoReturn:
        _not_here()

    def __copy__(self) -> Self:
        return self  # one handle on one token key: a copy would be the same key

    def __deepcopy__(self, memo: dict[int, Any]) -> Self:
        return self


class TokenRSAPrivateKey(_TokenKey[rsa.RSAPublicKey], rsa.RSAPrivateKey):
    def sign(self, data: bytes, padding: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if not isinstance(padding, _PKCS1v15) or isinstance(algorithm, Prehashed):
            raise TypeError(f"{self.label}: only PKCS#1 v1.5 signatures over the data are supported")
        mechanism = RSA_MECHANISMS.get(algorithm.name)
        if mechanism is None:
            raise TypeError(f"{self.label}: no PKCS#11 mechanism for {algorithm.name} here")
        return self._sign(data, mechanism)

    def decrypt(self, *args: Any, **kwargs: Any) -> bytes:
        _not_here()


class TokenECPrivateKey(_TokenKey[ec.EllipticCurvePublicKey], ec.EllipticCurvePrivateKey):
    def sign(
        self, data: bytes | bytearray | memoryview, signature_algorithm: ec.EllipticCurveSignatureAlgorithm
    ) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise TypeError(f"{self.label}: only ECDSA signatures are supported")
        algorithm = signature_algorithm.algorithm
        if isinstance(algorithm, Prehashed):
            raise TypeError(f"{self.label}: pre-hashed data is not supported")
        digest = hashes.Hash(algorithm)
        digest.update(bytes(data))
        raw = self._sign(digest.finalize(), ECDSA_MECHANISM)
        # PKCS#11 returns r || s, each the curve's size; X.509 wants the DER SEQUENCE of two INTEGERs.
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    def exchange(self, *args: Any, **kwargs: Any) -> bytes:
        _not_here()


_PKCS1v15 = padding.PKCS1v15
