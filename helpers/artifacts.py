"""Artifacts between notebooks: atomic JSON/JSONL writes, reads and content hashes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .paths import rel


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to a temporary file beside path, then rename, so no half file looks done."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write one JSON document atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read one JSON document, naming the file when it is not valid JSON."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{rel(path)}: not valid JSON ({exc})") from None


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> Path:
    """Write records as JSON lines atomically."""
    text = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    return atomic_write_text(path, text)


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield records from a JSON-lines file, naming file and line on a bad one."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{rel(path)}: missing (has the stage that writes it run?)")
    with path.open() as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{rel(path)}, line {i}: not valid JSON ({exc.msg})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read all records of a JSON-lines file."""
    return list(iter_jsonl(path))


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Append records to a JSON-lines file (for resumable partial outputs), flushing each."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
            f.flush()


def hash_path(path: str | os.PathLike) -> str | None:
    """Hash a file or a folder's files (names and contents); None when it does not exist."""
    path = Path(path)
    if not path.exists():
        return None
    h = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for f in files:
        if f.name.startswith(".") or f.name.endswith(".tmp"):
            continue
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with f.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]
