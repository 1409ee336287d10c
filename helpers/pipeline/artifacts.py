"""Artifacts between notebooks: atomic JSON/JSONL writes, reads and content hashes."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
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


class DamagedFile(ValueError):
    """An append-only file damaged somewhere a crash cannot reach (not just its last line)."""


def resume_jsonl(
    path: str | os.PathLike,
    check: Callable[[dict[str, Any]], str | None] | None = None,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """The records of an append-only JSON-lines file that a killed run may have left.

    Each record is written as one line ending in a newline, so a crash can only leave the
    last line cut short: that line is dropped (the file is truncated before it) with a message,
    and its work is done again. Anything else that is wrong (a bad line before the last, bytes
    that are not UTF-8, a record `check` refuses, with its reason) raises DamagedFile naming
    the line. A missing file holds nothing yet.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log(
            f"{rel(path)}: dropped a torn last line ({len(data) - end} bytes, the trace of a "
            "crash while it was written); its work is done again"
        )
        with path.open("r+b") as f:
            f.truncate(end)
        data = data[:end]
    rows = []
    for i, raw in enumerate(data.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise DamagedFile(f"{rel(path)}, line {i}: not UTF-8 text") from None
        except json.JSONDecodeError as exc:
            raise DamagedFile(f"{rel(path)}, line {i}: not valid JSON ({exc.msg})") from None
        why = "expected a JSON object" if not isinstance(row, dict) else (check and check(row))
        if why:
            raise DamagedFile(f"{rel(path)}, line {i}: {why}")
        rows.append(row)
    return rows


def set_aside(path: str | os.PathLike, why: str) -> Path:
    """Rename a file out of the way (kept for inspection); return its new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    dest = path.with_name(f"{path.stem}.{why}-{stamp}{path.suffix}")
    path.rename(dest)
    return dest


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Append records to a JSON-lines file (for resumable partial outputs), flushing each."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False, default=str) + "\n")
            f.flush()


def settings_hash(settings: Any) -> str:
    """A short stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[
        :16
    ]


def cached_jsonl(
    path: str | os.PathLike, settings: dict[str, Any], build: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Rows built once from settings and kept at path, rebuilt when the settings change.

    A sidecar `<name>.meta.json` records the settings, their hash and the file's hash, so a file
    built from other settings (or edited behind the cache's back) is never taken as this one.
    """
    path = Path(path)
    meta_path = path.with_name(path.stem + ".meta.json")
    fp = settings_hash(settings)
    if path.exists() and meta_path.exists():
        try:
            meta = read_json(meta_path)
        except ValueError:
            meta = {}
        if meta.get("fingerprint") == fp and meta.get("content") == hash_path(path):
            return read_jsonl(path)
    rows = build()
    write_jsonl(path, rows)
    write_json(meta_path, {"settings": settings, "fingerprint": fp, "content": hash_path(path)})
    return rows


def _files(path: Path) -> list[Path]:
    """The files a path stands for, temporary and hidden ones left out, in a stable order."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return [f for f in files if not (f.name.startswith(".") or ".tmp" in f.name)]


def _sha256(f: Path) -> str:
    h = hashlib.sha256()
    with f.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class Digests:
    """Content digests of files, recomputed only for files whose size or mtime changed.

    Model weights are hundreds of megabytes: hashing every checkpoint at every runner start
    would cost seconds each. A file whose size and modification time are those recorded when
    it was hashed keeps its digest; anything else is read again.
    """

    def __init__(self, store: str | os.PathLike | None = None) -> None:
        self.store = Path(store) if store else None
        self.known: dict[str, list] = {}
        if self.store and self.store.exists():
            try:
                self.known = json.loads(self.store.read_text())
            except (ValueError, OSError):
                self.known = {}

    def file(self, f: Path, trust_stat: bool = True) -> str:
        """The sha256 of one file; trust_stat=False reads it even when size and time match."""
        st = f.stat()
        key = str(f.resolve())
        seen = self.known.get(key)
        if trust_stat and seen and seen[0] == st.st_size and seen[1] == st.st_mtime_ns:
            return seen[2]
        digest = _sha256(f)
        self.known[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def path(self, path: str | os.PathLike, trust_stat: bool = True) -> str | None:
        """A digest of a file or a folder's files (names and contents); None when absent.

        trust_stat=False reads every byte (and corrects the cache): damage that kept a file's
        size and modification time is seen only this way.
        """
        path = Path(path)
        if not path.exists():
            return None
        h = hashlib.sha256()
        for f in _files(path):
            h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
            h.update(self.file(f, trust_stat).encode())
        return h.hexdigest()[:16]

    def save(self) -> None:
        """Keep the digests for the next run (best effort: a cache, not a record)."""
        if self.store is not None:
            with contextlib.suppress(OSError):
                atomic_write_text(self.store, json.dumps(self.known))


def hash_path(path: str | os.PathLike) -> str | None:
    """Hash a file or a folder's files (names and contents); None when it does not exist."""
    return Digests().path(path)
