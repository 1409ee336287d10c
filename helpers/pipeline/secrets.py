"""Secrets: read only from the environment variables a profile names, masked wherever shown."""

from __future__ import annotations

import os
from typing import Any

from .schema import Profile, ProfileError


def secret(env_name: str | None) -> str | None:
    """Read a secret from the environment variable a profile names (never from the profile)."""
    if not env_name:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise ProfileError(f"the environment variable {env_name} is not set (a profile names it)")
    return value


def secret_values(profile: Profile) -> list[str]:
    """The values of every environment variable a profile names as `api_key_env`."""
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "api_key_env" and isinstance(v, str):
                    names.add(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(profile.model_dump())
    return [os.environ[n] for n in sorted(names) if os.environ.get(n)]


def redact(text: str, values: list[str]) -> str:
    """Mask every secret value in a text (error bodies, tracebacks, notebook outputs)."""
    for v in sorted(values, key=len, reverse=True):
        if len(v) >= 4:
            text = text.replace(v, "***")
    return text
