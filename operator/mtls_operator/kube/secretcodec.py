"""A compact, picklable form of a cached Secret (the Secret cache keeps thousands): one bytes object each.

Shared values (the CA bundle in every Secret it signed, see objects.shared_value) are written as their index in
the process-wide table, not as bytes.
"""

from __future__ import annotations

import io
import pickle
from typing import Any

from mtls_operator.kube.objects import SecretView, shared_index, shared_value_at


class _Packer(pickle.Pickler):
    def persistent_id(self, obj: Any) -> int | None:
        return shared_index(obj) if type(obj) is bytes else None  # a shared value: its index, not its bytes


class _Unpacker(pickle.Unpickler):
    def persistent_load(self, pid: Any) -> bytes:
        return shared_value_at(pid)


def pack_view(view: SecretView) -> bytes:
    """One bytes object for a cached Secret (the cache keeps thousands): see kube.secretcache.Entry."""
    out = io.BytesIO()
    _Packer(out, protocol=pickle.HIGHEST_PROTOCOL).dump(view)
    return out.getvalue()


def unpack_view(packed: bytes) -> SecretView:
    view: SecretView = _Unpacker(io.BytesIO(packed)).load()  # our own bytes, never input
    return view
