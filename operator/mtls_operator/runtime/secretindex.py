"""Which certificates reference a Secret: a Secret's change wakes exactly those.

Compact on purpose, it holds three or four entries per certificate: one certificate per Secret is stored as its key
alone, a set only when several share the Secret (a CA Secret); a set per entry cost about 200 bytes each.
"""

from __future__ import annotations

from collections.abc import Iterable

CertKey = tuple[str, str]  # (namespace, name) of an MtlsCertificate


class SecretIndex:
    def __init__(self) -> None:
        self._refs: dict[CertKey, tuple[str, ...]] = {}
        self._holders: dict[tuple[str, str], CertKey | set[CertKey]] = {}

    def __len__(self) -> int:
        return len(self._holders)

    def update(self, key: CertKey, secrets: Iterable[str]) -> None:
        """The Secrets (in the certificate's namespace) that `key` references now."""
        refs = tuple(sorted(set(secrets)))
        old = self._refs.get(key, ())
        if refs == old:
            return
        for secret in set(old) - set(refs):
            self._remove(key, secret)
        for secret in set(refs) - set(old):
            self._add(key, secret)
        if refs:
            self._refs[key] = refs
        else:
            self._refs.pop(key, None)

    def forget(self, key: CertKey) -> None:
        for secret in self._refs.pop(key, ()):
            self._remove(key, secret)

    def named(self, namespace: str, name: str) -> bool:
        """Whether a certificate names this Secret: one dict lookup, safe to ask from the informer's threads."""
        return (namespace, name) in self._holders

    def holders(self, namespace: str, name: str) -> tuple[CertKey, ...]:
        found = self._holders.get((namespace, name))
        if found is None:
            return ()
        return tuple(found) if isinstance(found, set) else (found,)

    def _add(self, key: CertKey, secret: str) -> None:
        slot = (key[0], secret)
        found = self._holders.get(slot)
        if found is None:
            self._holders[slot] = key
        elif isinstance(found, set):
            found.add(key)
        elif found != key:
            self._holders[slot] = {found, key}

    def _remove(self, key: CertKey, secret: str) -> None:
        slot = (key[0], secret)
        found = self._holders.get(slot)
        if isinstance(found, set):
            found.discard(key)
            if not found:
                del self._holders[slot]
        elif found == key:
            del self._holders[slot]
