"""Sessions with PKCS#11 tokens, and the token-held keys they sign with.

Everything here blocks (a device call): run it off the event loop. One logged-in session per token, its calls
serialised by a lock: PKCS#11 login state is per token and per process, and a session must not run two operations
at once. When a call fails the way a token that went away fails, the session is dropped and the library
re-initialised at the next use, so a token that comes back is used again without a restart.

PINs: a PIN the token refused is never tried again until it changes (real HSMs lock the user PIN after a few
failures; a retry loop would lock the CA out), and a token this process is logged in to is used only by callers
presenting the same PIN (login state is shared, so without this check a second issuer could sign with a key whose
PIN it does not know). Another issuer's different PIN is refused without a C_Login while the session works: trying
it would log the working issuer out and count a failure against the token's PIN.

Tokens are partitioned: a ClusterMtlsIssuer (made by cluster administrators) may use any token of an allowed
library; a namespaced MtlsIssuer only a token the operator's configuration gives to its namespace
(`namespaced_tokens`, by the label the token reports, so naming it by serial changes nothing). The check runs
before any login: a tenant cannot make the operator present a PIN to, or log out of, the cluster CA's token.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pkcs11
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11

from mtls_operator.hsm.keys import ECDSA_MECHANISM, TokenECPrivateKey, TokenRSAPrivateKey

# The errors of a token, slot or library that is no longer there (or no longer knows our session): drop the
# session, re-initialise the library next time.
GONE = (
    p11.DeviceRemoved,
    p11.DeviceError,
    p11.TokenNotPresent,
    p11.TokenNotRecognised,
    p11.SessionClosed,
    p11.SessionHandleInvalid,
    p11.ObjectHandleInvalid,
    p11.KeyHandleInvalid,
    p11.GeneralError,
    p11.SlotIDInvalid,
    p11.UserNotLoggedIn,
)


# C_Initialize says only "general error"; these are the causes seen (SoftHSM: its token directory unreadable by the
# operator's user, or moved away).
HINT = (
    "; check that the library's configuration is found (e.g. SOFTHSM2_CONF) and that it and the token files are "
    "readable by the operator's user"
)


@dataclass(frozen=True)
class TokenKeyRef:
    """Which key: the library, the token (label or serial) and the key on it (label or id)."""

    module: str
    token_label: str | None = None
    token_serial: str | None = None
    key_label: str | None = None
    key_id: bytes | None = None

    @property
    def token(self) -> str:
        return f"label {self.token_label!r}" if self.token_label else f"serial {self.token_serial!r}"

    @property
    def key(self) -> str:
        return f"label {self.key_label!r}" if self.key_label else f"id {self.key_id.hex() if self.key_id else ''}"

    def __str__(self) -> str:
        return f"PKCS#11 key {self.key} on token {self.token} ({self.module})"


@dataclass(frozen=True)
class TokenUser:
    """Who asks: the issuer (its name, for messages) and its namespace (None: a ClusterMtlsIssuer)."""

    issuer: str
    namespace: str | None


class HsmUnavailable(Exception):
    """The token cannot sign now; the message names why (never the PIN)."""


class PinRefused(HsmUnavailable):
    """The token refused this PIN: it is not presented again until it changes."""


class PinDiffers(HsmUnavailable):
    """Another PIN than the one the token is logged in with: not presented (a token has one user PIN). Not
    remembered beyond the process: after a PIN change on the token, the new PIN is the right one."""


class TokenNotAllowed(HsmUnavailable):
    """The token is not given to the issuer's namespace; nothing was presented to it."""


@dataclass
class _Session:
    session: Any
    pin_digest: bytes
    token_label: str  # as the token reports it: what the partition is decided by
    owner: str  # the issuer that logged in: only it may replace the PIN
    keys: dict[tuple[str | None, bytes | None], Any] = field(default_factory=dict)


class TokenKeys:
    def __init__(
        self, allowed_modules: tuple[str, ...], namespaced_tokens: Mapping[str, Iterable[str]] | None = None
    ) -> None:
        self.allowed_modules = frozenset(allowed_modules)
        # token label -> the namespaces whose MtlsIssuers may use it (settings.hsm.namespaced_tokens)
        self.namespaced_tokens = {label: frozenset(ns) for label, ns in (namespaced_tokens or {}).items()}
        self._lock = threading.Lock()  # the maps below
        self._module_locks: dict[str, threading.Lock] = {}
        self._sessions: dict[tuple[str, str], _Session] = {}
        self._refused_pins: set[tuple[str, str, bytes]] = set()
        self._stale_modules: set[str] = set()
        self._salt = secrets.token_bytes(16)  # PIN digests are compared, never stored beyond this process

    def signing_key(
        self, ref: TokenKeyRef, pin: bytes, public_key: Any, user: TokenUser
    ) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
        """The token-held key matching `public_key` (the CA certificate's), proven by a signature it makes now.
        Raises HsmUnavailable naming the problem."""
        if isinstance(public_key, rsa.RSAPublicKey):
            key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = TokenRSAPrivateKey(
                public_key, lambda data, mech: self._sign(ref, pin, data, mech, user), str(ref)
            )
        elif isinstance(public_key, ec.EllipticCurvePublicKey):
            key = TokenECPrivateKey(public_key, lambda data, mech: self._sign(ref, pin, data, mech, user), str(ref))
        else:
            raise HsmUnavailable(f"{ref}: the CA certificate's key is neither RSA nor ECDSA")
        self.probe(key)
        return key

    def probe(self, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
        """A signature over random bytes, verified with the certificate's public key: the token is there, the PIN
        works and the key belongs to the certificate."""
        challenge = os.urandom(32)
        try:
            if isinstance(key, rsa.RSAPrivateKey):
                signature = key.sign(challenge, padding.PKCS1v15(), hashes.SHA256())
                key.public_key().verify(signature, challenge, padding.PKCS1v15(), hashes.SHA256())
            else:
                signature = key.sign(challenge, ec.ECDSA(hashes.SHA256()))
                key.public_key().verify(signature, challenge, ec.ECDSA(hashes.SHA256()))
        except InvalidSignature:
            raise HsmUnavailable(
                f"{getattr(key, 'label', 'the token key')} does not belong to the CA certificate "
                "(its signature does not verify with the certificate's public key)"
            ) from None

    def _sign(self, ref: TokenKeyRef, pin: bytes, data: bytes, mechanism: str, user: TokenUser) -> bytes:
        where = (ref.module, ref.token)
        with self._module_lock(ref.module):
            session = self._session(ref, pin, user)
            try:
                key = session.keys.get((ref.key_label, ref.key_id))
                if key is None:
                    key = self._find_key(session.session, ref)
                    session.keys[(ref.key_label, ref.key_id)] = key
                token_type = "ECDSA" if key.key_type == KeyType.EC else "RSA" if key.key_type == KeyType.RSA else "?"
                wanted = "ECDSA" if mechanism == ECDSA_MECHANISM else "RSA"
                if token_type != wanted:  # a token would answer with a generic error, read as "gone"
                    raise HsmUnavailable(
                        f"{ref} is an {token_type} key and the CA certificate's key is {wanted}: they do not belong "
                        "together"
                    )
                return bytes(key.sign(data, mechanism=getattr(Mechanism, mechanism)))
            except GONE as exc:
                self._drop(where, ref.module)
                raise HsmUnavailable(f"{ref}: the token stopped answering ({_name(exc)}); retrying later") from None
            except p11.PKCS11Error as exc:
                raise HsmUnavailable(f"{ref}: signing failed ({_name(exc)})") from None

    def _module_lock(self, module: str) -> threading.Lock:
        """One lock per library: re-initialising it ends every session it has, so its tokens share the lock."""
        with self._lock:
            return self._module_locks.setdefault(module, threading.Lock())

    def _session(self, ref: TokenKeyRef, pin: bytes, user: TokenUser) -> _Session:
        where = (ref.module, ref.token)
        digest = hashlib.sha256(self._salt + pin).digest()
        current = self._sessions.get(where)
        if current is not None:
            self._check_partition(ref, current.token_label, user)
            if current.pin_digest == digest:
                return current
            if current.owner != user.issuer:
                raise PinDiffers(
                    f"{ref}: the PIN differs from the one the token is logged in with (for {current.owner}); a "
                    "token has one user PIN, so this one is not presented while that session works (it would log "
                    "that issuer out, and the token counts every refused PIN)"
                )
        if (ref.module, ref.token, digest) in self._refused_pins:
            raise PinRefused(pin_refused_message(ref))
        if current is not None:  # its own issuer's PIN changed: log out, try the new one once
            self._drop(where, None)
        lib = self._library(ref)
        try:
            token = lib.get_token(
                token_label=ref.token_label or None,
                token_serial=ref.token_serial.encode() if ref.token_serial else None,
            )
        except p11.NoSuchToken:
            raise HsmUnavailable(f"{ref}: no token with {ref.token} in {ref.module}") from None
        except p11.MultipleTokensReturned:
            raise HsmUnavailable(f"{ref}: more than one token with {ref.token}; name it by serial") from None
        except GONE as exc:
            self._stale_modules.add(ref.module)
            raise HsmUnavailable(f"{ref}: the library cannot list its tokens ({_name(exc)})") from None
        label = str(token.label or "").strip()  # PKCS#11 pads labels with blanks
        self._check_partition(ref, label, user)  # before any PIN reaches the token
        try:
            session = token.open(user_pin=pin.decode())
        except (p11.PinIncorrect, p11.PinInvalid, p11.PinLenRange, UnicodeDecodeError):
            self._refused_pins.add((ref.module, ref.token, digest))
            raise PinRefused(pin_refused_message(ref)) from None
        except (p11.PinLocked, p11.PinExpired) as exc:
            raise HsmUnavailable(
                f"{ref}: the user PIN is {_name(exc)}; the token's security officer must reset it"
            ) from None
        except p11.PKCS11Error as exc:
            self._stale_modules.add(ref.module)
            raise HsmUnavailable(f"{ref}: cannot open a session ({_name(exc)})") from None
        opened = _Session(session, digest, label, user.issuer)
        self._sessions[where] = opened
        return opened

    def _check_partition(self, ref: TokenKeyRef, label: str, user: TokenUser) -> None:
        if user.namespace is None or user.namespace in self.namespaced_tokens.get(label, ()):
            return
        raise TokenNotAllowed(
            f"{ref}: token {label!r} is not given to namespace {user.namespace}; an MtlsIssuer may use a token only "
            "when the operator's configuration gives it to the issuer's namespace (chart value "
            "hsm.namespacedTokens, flag --pkcs11-namespaced-token LABEL=NAMESPACE); nothing was presented to it"
        )

    def _library(self, ref: TokenKeyRef) -> Any:
        if ref.module not in self.allowed_modules:
            allowed = ", ".join(sorted(self.allowed_modules)) or "none (--pkcs11-module)"
            raise HsmUnavailable(f"{ref}: the operator does not load {ref.module}; allowed modules: {allowed}")
        try:
            lib = pkcs11.lib(ref.module)  # loads it, and initialises it when it is not yet
        except p11.PKCS11Error as exc:
            if os.path.exists(ref.module):  # loaded, but C_Initialize failed: its tokens or configuration are away
                self._stale_modules.add(ref.module)
                raise HsmUnavailable(f"{ref}: the PKCS#11 module does not initialise ({_name(exc)}){HINT}") from None
            raise HsmUnavailable(f"{ref}: the PKCS#11 module cannot be loaded ({_name(exc)})") from None
        try:
            if ref.module in self._stale_modules or not lib.initialized:
                for where in [w for w in self._sessions if w[0] == ref.module]:
                    self._drop(where, None)
                if lib.initialized:
                    lib.finalize()
                lib.initialize()
                self._stale_modules.discard(ref.module)
        except p11.PKCS11Error as exc:
            raise HsmUnavailable(f"{ref}: the PKCS#11 module does not initialise ({_name(exc)}){HINT}") from None
        return lib

    @staticmethod
    def _find_key(session: Any, ref: TokenKeyRef) -> Any:
        try:
            key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=ref.key_label, id=ref.key_id)
        except p11.NoSuchKey:
            raise HsmUnavailable(f"{ref}: the token holds no private key with {ref.key}") from None
        except p11.MultipleObjectsReturned:
            raise HsmUnavailable(f"{ref}: more than one private key with {ref.key}; name it by id") from None
        if key[Attribute.EXTRACTABLE] or not key[Attribute.SENSITIVE]:
            raise HsmUnavailable(
                f"{ref}: the key is extractable or not sensitive; create it with CKA_EXTRACTABLE=false and "
                "CKA_SENSITIVE=true (a CA key in an HSM must never leave it)"
            )
        return key

    def _drop(self, where: tuple[str, str], module: str | None) -> None:
        session = self._sessions.pop(where, None)
        if session is not None:
            with contextlib.suppress(p11.PKCS11Error):  # a session of a token that went away cannot close cleanly
                session.session.close()
        if module is not None:
            self._stale_modules.add(module)

    def close(self) -> None:
        for where in list(self._sessions):
            self._drop(where, None)


def pin_refused_message(ref: TokenKeyRef) -> str:
    """The same words at the refusal and at each later check, so the issuer's condition stays put."""
    return (
        f"{ref}: the token refused the PIN; it is not tried again until the PIN Secret changes "
        "(an HSM locks the user PIN after a few failures)"
    )


def _name(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
