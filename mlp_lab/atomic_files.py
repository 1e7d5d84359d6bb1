"""Files that are whole or absent: replaced atomically, appended a whole line at a time.

A writer puts the new content in a temporary file beside the old one and renames it over:
a reader (``compare``, a resumed run) sees the old file or the new, never half of either.
JSON-lines files (metrics, diagnostics, a sweep's journal) grow by whole records, fsync'd,
and a reader skips a line it cannot parse. An OSError is one line naming the file
(``write_error``): a full disk is ``DiskFull``. No torch here.
"""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from mlp_lab.errors import DISK_FULL, DiskFull, RunError


def write_error(e: OSError, path: Path) -> RunError:
    """An OSError from writing ``path`` as the one line a user reads: a full disk says so
    (DiskFull), a read-only or forbidden place says that, with the path either way."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"{DISK_FULL} writing {path}" + (" (disk quota exceeded)" if e.errno == errno.EDQUOT else ""))
    if e.errno == errno.EROFS:
        return RunError(f"cannot write {path}: read-only file system; choose a folder you can write to")
    if e.errno == errno.EACCES or e.errno == errno.EPERM:
        return RunError(f"cannot write {path}: permission denied; choose a folder you can write to")
    return RunError(f"cannot write {path}: {e.strerror or e}")


def _open_temp(path: Path) -> tuple[int, str]:
    """A temporary file beside ``path`` (the write layer's one way to open for writing;
    tests replace it to inject a full disk)."""
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def _open_append(path: Path) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def atomic_write(path: Path, write: Callable[[BinaryIO], Any]) -> None:
    """Replace ``path`` with what ``write(file)`` writes, all or nothing.

    The data goes to a temporary file in the same folder, which is then renamed over
    ``path``: a reader sees the old file or the new one, never half of either. An
    OSError (a full disk, a read-only folder) is a RunError naming ``path``; the old file
    stays as it was.
    """
    path = Path(path)
    try:
        fd, tmp = _open_temp(path)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results and caches are for reading
        os.replace(tmp, path)
    except BaseException as e:
        # Whatever happened (disk full, Ctrl-C), the old file stays and no temp is left.
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(e, OSError):
            raise write_error(e, path) from None
        raise


def atomic_write_bytes(path: Path, data: bytes | memoryview) -> None:
    atomic_write(path, lambda f: f.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, allow_nan=False, default=_json_default) + "\n")


def append_jsonl(path: Path, *records: dict[str, Any]) -> None:
    """Append one line per record and flush them (one fsync), so a finished epoch is on disk
    before the next starts. A failed write leaves none of them: the file ends with its last
    whole record."""
    if not records:
        return
    path = Path(path)
    data = "".join(json.dumps(r, allow_nan=True, default=_json_default) + "\n" for r in records).encode("utf-8")
    try:
        fd = _open_append(path)
    except OSError as e:
        raise write_error(e, path) from None
    try:
        size = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        except OSError as e:
            try:
                os.ftruncate(fd, size)  # no half line: the file ends with its last whole record
            except OSError:
                pass
            raise write_error(e, path) from None
    finally:
        os.close(fd)


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def read_jsonl(path: Path) -> tuple[list[dict[str, Any]], int]:
    """Records of a JSON-lines file and how many lines could not be parsed."""
    records: list[dict[str, Any]] = []
    bad = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                bad += 1
                continue
            if isinstance(rec, dict):
                records.append(rec)
            else:
                bad += 1
    return records, bad


def truncate_jsonl(path: Path, before_epoch: int) -> list[dict[str, Any]]:
    """Keep only the records of ``path`` whose ``epoch`` is below ``before_epoch`` (a
    resumed run redoes the later ones); return them. A missing file stays missing."""
    if not Path(path).exists():
        return []
    kept = [r for r in read_jsonl(path)[0] if isinstance(r.get("epoch"), int) and r["epoch"] < before_epoch]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))
    return kept
