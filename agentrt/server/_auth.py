"""API keys: who may call the server, and which KV-cache partition each tenant gets.

Each key carries a ``cache_salt``. The engine mixes the salt into the hash of every
cached block, so two tenants with different salts can never hit each other's prefix
cache (a timing side channel otherwise reveals what others asked). By default each key
gets its own salt, derived from the key; a keys file can give several keys one salt
(one tenant), or none (share the unsalted cache).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ENV_KEYS = "AGENTRT_API_KEYS"


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One accepted key. ``name`` identifies the tenant (runs and sessions belong to it)."""

    key: str = field(repr=False)
    name: str
    cache_salt: str | None

    def __post_init__(self) -> None:
        if not self.key or any(c.isspace() for c in self.key):
            raise ValueError(f"API key {self.name!r} must be non-empty and contain no whitespace")


def derived_salt(key: str) -> str:
    """A salt private to ``key`` that does not reveal it (salts travel to remote engines)."""
    return "tenant-" + hashlib.sha256(b"agentrt-cache-salt:" + key.encode()).hexdigest()[:24]


def make_key(key: str, name: str | None = None) -> ApiKey:
    """A key with its own derived salt, named after a short fingerprint unless named."""
    return ApiKey(
        key, name or "key-" + hashlib.sha256(key.encode()).hexdigest()[:8], derived_salt(key)
    )


class KeyRing:
    """The accepted keys; an empty ring means authentication is off."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._keys = tuple(keys)
        seen = [k.key for k in self._keys]
        if len(set(seen)) != len(seen):
            raise ValueError("the same API key is listed twice")

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def check(self, authorization: str | None) -> ApiKey | None:
        """The key a ``Authorization: Bearer <key>`` header names, or None if not accepted."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        given = token.strip().encode()
        found = None
        # Compare against every key in constant time: timing must not reveal a prefix.
        for k in self._keys:
            if hmac.compare_digest(given, k.key.encode()):
                found = k
        return found


def load_keys(
    cli_keys: Sequence[str] = (), env: str | None = None, file: str | os.PathLike[str] | None = None
) -> KeyRing:
    """Keys from the command line, the ``AGENTRT_API_KEYS`` value (comma-separated) and a file.

    The file is JSON (``[{"key": ..., "name": ..., "cache_salt": ...}, ...]``; a missing
    ``cache_salt`` means a derived one, ``null`` means none) or text with one
    ``KEY [NAME]`` per line (``#`` starts a comment).

    Raises:
        ValueError: naming the file entry that is malformed.
    """
    keys = [make_key(k.strip()) for k in cli_keys if k.strip()]
    keys += [make_key(k.strip()) for k in (env or "").split(",") if k.strip()]
    if file is not None:
        keys += _keys_from_file(Path(file))
    return KeyRing(keys)


def _keys_from_file(path: Path) -> list[ApiKey]:
    text = path.read_text("utf-8")
    if path.suffix == ".json":
        entries = orjson.loads(text)
        if not isinstance(entries, list):
            raise ValueError(f"{path}: expected a JSON list of key objects")
        out = []
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or not isinstance(e.get("key"), str):
                raise ValueError(f"{path}: entry [{i}] needs a string 'key'")
            base = make_key(e["key"], e.get("name"))
            salt = e.get("cache_salt", base.cache_salt)
            if salt is not None and not isinstance(salt, str):
                raise ValueError(f"{path}: entry [{i}].cache_salt must be a string or null")
            out.append(ApiKey(base.key, base.name, salt))
        return out
    out = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if words:
            out.append(make_key(words[0], words[1] if len(words) > 1 else None))
    return out
