"""Reading and writing files the project does not control, safely: one place for each way.

Files from elsewhere are untrusted, and a crash can stop a write half-way. So:

* :func:`shorten` is how an error message shows a value it got: a repr of bounded length and
  nesting, so a 50 MB string or a list nested 100,000 deep gives a short message, not another
  problem (``repr`` would expand a YAML alias bomb or recurse until ``RecursionError``);
* :func:`read_yaml` reads YAML with the safe loader, refusing aliases (the "billion laughs":
  a few hundred bytes that expand to gigabytes), deep nesting and files beyond a size;
* :func:`safe_name` checks a name that becomes part of a path (a run name, a comparison
  label): never empty, no path separator, no ``..``, so a config cannot write outside its folder;
* :func:`read_jsonl` reads an append-only log (``metrics.jsonl``) whose last line a full disk or
  a ``kill -9`` may have torn: that line is dropped, and said so;
* :func:`remove_stale_temporaries` removes the temporary files that an interrupted atomic write
  (``.NAME.PID.tmp``) left behind, once the process that wrote them is gone;
* :func:`temporary_name` is the name those writes use.
"""
from __future__ import annotations

import json
import os
import re
import reprlib
import warnings
from pathlib import Path

import yaml

__all__ = ["shorten", "clip", "read_yaml", "safe_name", "read_jsonl", "remove_stale_temporaries",
           "temporary_name", "MAX_YAML_BYTES", "MAX_YAML_DEPTH"]

MAX_YAML_BYTES = 1 << 20  # a config is a few kilobytes; a megabyte is generous
MAX_YAML_DEPTH = 64  # nested mappings and lists; the composer recurses once per level

_repr = reprlib.Repr()
_repr.maxlevel, _repr.maxstring, _repr.maxother, _repr.maxlong = 3, 60, 60, 40
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 6


def shorten(value, limit: int = 80) -> str:
    """A repr of ``value`` of at most ``limit`` characters and three levels of nesting."""
    try:
        if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:
            text = f"<an int of {value.bit_length()} bits>"  # repr of a huge int raises ValueError
        else:
            text = _repr.repr(value)
    except Exception:  # a repr that fails must not hide the error being reported
        text = f"<a {type(value).__name__}>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def clip(text: str, limit: int = 80) -> str:
    """``text`` cut to ``limit`` characters (an exception's message inside another's)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


class _SafeLoader(yaml.SafeLoader):
    """PyYAML's safe loader, without aliases and with bounded nesting."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found the alias *{shorten(event.anchor, 40)}; aliases are not allowed "
                "(they can expand a small file to gigabytes): write the value out", event.start_mark)
        self._depth = getattr(self, "_depth", 0) + 1
        try:
            if self._depth > MAX_YAML_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_YAML_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def read_yaml(source, where: str | None = None, error: type[Exception] = ValueError):
    """The YAML document in ``source`` (a path, or text when ``where`` is given), read safely.

    Refuses, raising ``error`` with a message that names ``where`` (default: the path): files
    over :data:`MAX_YAML_BYTES`, aliases, nesting deeper than :data:`MAX_YAML_DEPTH`, and text
    that is not YAML. The message quotes at most a line of the file.
    """
    if where is None:
        path = Path(source)
        where = str(path)
        try:
            size = path.stat().st_size
            if size > MAX_YAML_BYTES:
                raise error(f"{where}: {size:,} bytes is too large for a config "
                            f"(at most {MAX_YAML_BYTES:,})")
            data = path.read_bytes()
        except OSError as exc:
            raise error(f"{where}: cannot read it ({exc.strerror or exc})") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise error(f"{where}: not UTF-8 text (byte {exc.start})") from None
    else:
        text = str(source)
        if len(text) > MAX_YAML_BYTES:
            raise error(f"{where}: {len(text):,} characters is too long for a config")
    try:
        return yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        raise error(f"{where}: not valid YAML: {clip(exc, 300)}") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply") from None


_SEPARATORS = re.compile(r"[/\\\x00]")


def safe_name(label, where: str = "name", error: type[Exception] = ValueError) -> str:
    """``label`` when it can name a file or folder inside an output folder, else ``error``:
    it must be a non-empty string without ``/``, ``\\`` or NUL, not ``.`` or ``..``, and at most
    200 characters."""
    if not isinstance(label, str) or not label.strip():
        raise error(f"{where} must be a non-empty name; got {shorten(label)}")
    if _SEPARATORS.search(label) or label in (".", "..") or len(label) > 200:
        raise error(f"{where} {shorten(label)} cannot name a file: it must not contain '/', '\\' "
                    "or NUL, be '.' or '..', or exceed 200 characters (it would write outside "
                    "the output folder)")
    return label


def read_jsonl(path, error: type[Exception] = ValueError) -> list[dict]:
    """The JSON objects of an append-only log, one per line.

    A last line that is not JSON (cut short, or without its newline) is what a crash or a full
    disk during an append leaves: it is dropped, with a warning that names the file. A bad line before the
    last is not a torn write, so it is an ``error`` naming the file and the line.
    """
    path = Path(path)
    raw = path.read_bytes()
    lines = raw.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with its newline
    records = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:  # JSONDecodeError and UnicodeDecodeError
            if n == len(lines) and not torn.strip():
                warnings.warn(f"{path}: dropped its last line {n}, which is not JSON (a write cut "
                              "short by a crash or a full disk)", stacklevel=2)
                continue
            raise error(f"{path}:{n}: not a JSON line ({shorten(line, 60)}); the log is damaged "
                        "before its end") from None
        if not isinstance(record, dict):
            raise error(f"{path}:{n}: expected a JSON object, got {shorten(record, 60)}")
        records.append(record)
    if torn.strip():
        try:  # whole but for its newline: keep it
            record = json.loads(torn)
        except ValueError:
            record = None
        if isinstance(record, dict):
            records.append(record)
            return records
        warnings.warn(f"{path}: dropped its last line {len(lines) + 1}, cut short without its newline "
                      "(a crash or a full disk during a write)", stacklevel=2)
    return records


def temporary_name(path: Path) -> Path:
    """Where an atomic write of ``path`` puts its bytes first: ``.NAME.PID.tmp`` beside it."""
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


_TEMPORARY = re.compile(r"\.(.+)\.(\d+)\.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # another user's process, or a system that cannot tell: keep its file
    return True


def remove_stale_temporaries(folder) -> list[Path]:
    """Remove ``folder``'s ``.NAME.PID.tmp`` files whose writer is no longer running (a
    ``kill -9`` or a power cut during an atomic write); returns what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMPORARY.fullmatch(entry.name)
        if match and entry.is_file() and not entry.is_symlink() and not _alive(int(match.group(2))):
            try:
                entry.unlink()
                removed.append(entry)
            except OSError:
                pass
    return removed
