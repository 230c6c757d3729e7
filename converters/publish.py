"""Put a finished model_dir in place atomically, and clean up after killed exports.

An export is written into a staging folder beside its destination
(``.NAME.staging-PID-XXXX``) and only then published: on Linux the two folders are
swapped in one ``renameat2(RENAME_EXCHANGE)`` call, so at every instant ``NAME`` is
either the complete previous model_dir or the complete new one; elsewhere the old
folder is renamed aside first (``.NAME.old-PID-XXXX``) and removed after the new one is
in place. Staging and old folders left by a killed process (its PID no longer
running) are removed by the next export to the same destination.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import logging
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Iterator

from sdk.errors import ConfigError
from sdk.manifest import MANIFEST_NAME

log = logging.getLogger(__name__)

_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:staging|verifying|old)-(?P<pid>\d+)-")


@contextlib.contextmanager
def staging_dir(out: str | os.PathLike) -> Iterator[Path]:
    """A fresh folder beside ``out`` to export into; removed afterwards unless
    ``publish_model_dir`` moved it to ``out``. Leftovers of killed exports go first."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.staging-{os.getpid()}-"))
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove ``out``'s staging/old folders whose exporting process is gone; returns them."""
    removed = []
    if not out.parent.is_dir():
        return removed
    for entry in out.parent.iterdir():
        match = _LEFTOVER.match(entry.name)
        if match and match["name"] == out.name and entry.is_dir() and not _running(int(match["pid"])):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
            log.info("removed %s, left by an interrupted export", entry)
    return removed


def publish_model_dir(staging: str | os.PathLike, out: str | os.PathLike) -> Path:
    """Move the finished model_dir ``staging`` (beside ``out``) to ``out``, replacing a
    model_dir there atomically; ``ConfigError`` if ``out`` holds anything else."""
    staging, out = Path(staging), Path(out)
    _default_dir_mode(staging)
    if not out.exists():
        os.replace(staging, out)
        return out
    if not (out / MANIFEST_NAME).is_file() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} exists and is not a model_dir: choose another --out")
    if _exchange(staging, out):  # staging now holds the previous model_dir
        shutil.rmtree(staging, ignore_errors=True)
        return out
    old = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-{os.getpid()}-"))
    os.replace(out, old / "model_dir")
    os.replace(staging, out)
    shutil.rmtree(old, ignore_errors=True)
    return out


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):  # old kernel or a filesystem without it
        return False
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _default_dir_mode(path: Path) -> None:
    """A normal folder's mode (0777 less the umask); ``mkdtemp`` makes it 0700."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o777 & ~umask)
