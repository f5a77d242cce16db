"""Every file baleen reads or writes line by line goes through here.

Three jobs, one place each:
  - opening input, plain or compressed (.gz, .zst/.zstd), where a truncated or corrupt
    archive becomes one UsageError that names the file instead of an EOFError deep in a reader;
  - reading JSON Lines: strictly (input files: a bad line is an error naming file:line) or
    leniently (our own append-only files, whose last line a kill may have cut short);
  - writing whole files atomically (temp file, fsync, rename), so a kill never leaves half a file.
"""
from __future__ import annotations

import errno
import gzip
import io
import json
import os
import re
import zlib
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable, Iterator

from generators.core.errors import FatalError, UsageError
from generators.core.text import repair_text

COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd")


# ---------------------------------------------------------------- opening input

class _Checked(io.RawIOBase):
    """A raw stream that turns decompression failures into one UsageError naming the file."""

    def __init__(self, inner: BinaryIO, path: Path) -> None:
        self._inner, self._path = inner, path
        self._read = getattr(inner, "read1", inner.read)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            # read1: what is decoded so far, at most one read below. read() would go on to
            # fill the buffer and lose up to 64 KiB of good data when it meets the damage.
            data = self._read(len(buffer))
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise corrupt(self._path, exc) from None
        except OSError as exc:
            if _is_zstd_error(exc) or exc.errno is None:
                raise corrupt(self._path, exc) from None
            raise
        except Exception as exc:  # zstandard.ZstdError and friends
            if _is_zstd_error(exc):
                raise corrupt(self._path, exc) from None
            raise
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            super().close()


class _ZstdFrames(io.RawIOBase):
    """A .zst stream decompressed frame by frame. zstandard's stream_reader ends quietly when
    the file stops inside a frame; this raises EOFError there, as gzip does, so a truncated
    file is an error rather than silently fewer lines."""

    def __init__(self, raw: BinaryIO, dctx: Any) -> None:
        self._raw, self._dctx = raw, dctx
        self._obj = dctx.decompressobj()
        self._in_frame = False  # input given to the current frame, whose end is not yet seen
        self._out = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        while not self._out:
            chunk = self._raw.read(1 << 14)  # small: a bad chunk loses what it decodes
            if not chunk:
                if self._in_frame:
                    raise EOFError("the file ends inside a zstd frame")
                return b""
            self._feed(chunk)
        size = len(self._out) if size is None or size < 0 else size
        data, self._out = self._out[:size], self._out[size:]
        return data

    def _feed(self, chunk: bytes) -> None:
        out = []
        while chunk:
            self._in_frame = True
            out.append(self._obj.decompress(chunk))
            if not self._obj.eof:
                break
            chunk, self._in_frame = self._obj.unused_data, False
            self._obj = self._dctx.decompressobj()
        self._out += b"".join(out)

    def close(self) -> None:
        try:
            self._raw.close()
        finally:
            super().close()


def _is_zstd_error(exc: BaseException) -> bool:
    return "zstd" in type(exc).__module__.lower() or "zstd" in type(exc).__name__.lower()


def corrupt(path: Path | str, exc: BaseException) -> UsageError:
    """The one message for a compressed file that cannot be read to its end."""
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return UsageError(f"{path}: truncated or corrupt compressed file ({detail}); "
                      "check or re-download it")


def open_binary(path: str | Path) -> BinaryIO:
    """Open `path` for reading bytes, decompressing .gz and .zst/.zstd on the fly."""
    path = Path(path)
    name = path.name.lower()
    try:
        raw = path.open("rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot open ({exc.strerror}); check the path") from None
    if name.endswith(".gz"):
        inner: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
    elif name.endswith((".zst", ".zstd")):
        try:
            import zstandard
        except ImportError:
            raw.close()
            raise UsageError(f"{path}: reading .zst files needs the zstandard package "
                             "(pip install zstandard)") from None
        inner = _ZstdFrames(raw, zstandard.ZstdDecompressor())  # type: ignore[assignment]
    else:
        return raw  # type: ignore[return-value]
    return io.BufferedReader(_Checked(inner, path), buffer_size=1 << 16)  # type: ignore[return-value]


# ---------------------------------------------------------------- reading JSON Lines

MAX_LINE_BYTES = 64 << 20  # the longest line any reader takes; --max-line-bytes sets it (set_max_line_bytes)
_CHUNK = 1 << 20  # an over-long line is passed over this many bytes at a time, never held whole


def set_max_line_bytes(limit: int) -> None:
    """Set the longest line every reader takes (the --max-line-bytes flag, for this process)."""
    global MAX_LINE_BYTES
    MAX_LINE_BYTES = int(limit)


def too_long(where: str) -> UsageError:
    """The one message for a line over --max-line-bytes."""
    return UsageError(f"{where}: line longer than --max-line-bytes ({MAX_LINE_BYTES} bytes); "
                      "split the file, fix that line, or raise --max-line-bytes")


def bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Each line of `handle` (newline kept), None for a line longer than MAX_LINE_BYTES. A line is
    read at most MAX_LINE_BYTES + 1 bytes at a time, and an over-long one is skipped in chunks,
    so memory stays within the limit whatever the file holds (a 2 GB file without a newline)."""
    limit = MAX_LINE_BYTES
    while True:
        raw = handle.readline(limit + 1)
        if not raw:
            return
        if len(raw) <= limit or (len(raw) == limit + 1 and raw.endswith(b"\n")):
            yield raw
            continue
        del raw
        _skip_rest_of_line(handle)
        yield None


def _skip_rest_of_line(handle: BinaryIO) -> None:
    """Read past the rest of an over-long line, a chunk at a time, keeping none of it."""
    while True:
        rest = handle.readline(_CHUNK)
        if not rest or rest.endswith(b"\n"):
            return


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, object) for each non-blank line of an input file; any bad line (or one over
    --max-line-bytes), a missing file or a folder is a UsageError naming file:line. Lone surrogates
    are repaired (repaired_record)."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise UsageError(f"{path}: is a folder; give a .jsonl file")
    with open_binary(path) as handle:
        for number, raw in enumerate(bounded_lines(handle), start=1):
            if raw is None:
                raise too_long(f"{path}:{number}")
            if raw.strip():
                obj = parse_json_line(raw, f"{path}:{number}")
                yield number, repaired_record(obj) if may_hold_surrogate(raw) else obj


# A lone surrogate can reach a parsed line only through a JSON escape (\uD800-\uDFFF): raw UTF-8
# bytes cannot hold one. Lines without such an escape skip the walk through the object.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def may_hold_surrogate(raw: bytes) -> bool:
    return _SURROGATE_ESCAPE.search(raw) is not None


def repaired_record(obj: Any) -> Any:
    """A record read back with its lone surrogates made U+FFFD (generators.core.text.repair_text),
    the count added to its meta.repaired_text, so writing it again cannot fail."""
    obj, count = repair_text(obj)
    if count and isinstance(obj, dict) and isinstance(obj.get("meta", {}), dict):
        meta = obj["meta"] = dict(obj.get("meta") or {})
        meta["repaired_text"] = int(meta.get("repaired_text") or 0) + count
    return obj


def parse_json_line(raw: bytes, where: str) -> Any:
    """One line of an input file decoded; bad bytes or bad JSON are a UsageError naming `where`
    (file:line), and so is JSON nested too deeply for the parser (a RecursionError)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise UsageError(f"{where}: not valid UTF-8 (byte {exc.start}); re-encode the file as UTF-8") from None
    except json.JSONDecodeError as exc:
        raise UsageError(f"{where}: bad JSON ({exc.msg} at column {exc.colno}); fix or remove that line") from None
    except RecursionError:
        raise UsageError(f"{where}: JSON nested too deeply to read; fix or remove that line") from None


_UNREADABLE = object()  # a line of our own files that read_lines passes over


def read_lines(path: str | Path, on_bad: Callable[[], None] | None = None
               ) -> Iterator[tuple[int, dict[str, Any]]]:
    """(byte offset, object) for each complete JSON line of one of our own files; a missing file
    has none. A line that cannot be read (cut by a kill, over --max-line-bytes, or JSON nested too
    deeply) is passed over and told to `on_bad`, so one bad line never stops a resume or the viewer.
    Lone surrogates are repaired (repaired_record)."""
    path = Path(path)
    if not path.is_file():
        return
    with path.open("rb") as handle:
        end = 0
        for raw in bounded_lines(handle):
            start, end = end, handle.tell()
            if raw is not None and not raw.strip():
                continue
            try:
                obj = json.loads(raw) if raw is not None else _UNREADABLE
            except (ValueError, RecursionError):
                obj = _UNREADABLE
            if obj is _UNREADABLE:
                if on_bad is not None:
                    on_bad()
                continue
            if isinstance(obj, dict):
                yield start, repaired_record(obj) if may_hold_surrogate(raw) else obj


def read_json(path: str | Path, *, what: str = "file") -> dict[str, Any] | None:
    """A JSON object we wrote earlier; None when the file does not exist. A file that exists but
    cannot be read is a UsageError: treating it as absent would silently start over."""
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read this {what} ({exc}); fix or delete it") from None
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{path}: this {what} is not valid JSON ({exc}); "
                         "fix or delete it, or use a new --out") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path}: this {what} is not a JSON object; fix or delete it")
    return obj


_LINE_BREAKS = {0x2028: "\\u2028", 0x2029: "\\u2029"}  # JSON allows them raw; str.splitlines() splits there


def dumps(obj: Any) -> str:
    """One JSONL line (no trailing newline), UTF-8 kept readable, with U+2028/U+2029 escaped so
    that readers that split lines with str.splitlines() still see one record per line. A lone
    surrogate that got past the boundaries (an error message, say) becomes U+FFFD here, so that
    no line fails to be written."""
    text, _ = repair_text(json.dumps(obj, ensure_ascii=False, separators=(",", ":")))
    return text.translate(_LINE_BREAKS) if "\u2028" in text or "\u2029" in text else text


# ---------------------------------------------------------------- writing

def atomic_lines(path: str | Path, lines: Iterable[str]) -> int:
    """Write `lines` to `path` through a synced temp file; returns how many were written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    count = 0
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            for line in lines:
                handle.write(line if line.endswith("\n") else line + "\n")
                count += 1
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return count


def write_json(path: str | Path, obj: Any) -> None:
    """Atomically (re)write a JSON file, indented for people."""
    atomic_lines(path, [json.dumps(obj, indent=2, ensure_ascii=False)])


def describe_os_error(exc: OSError, path: str | Path | None = None) -> str:
    """One line for a write that the system refused (read-only, full disk, not a folder)."""
    where = path or exc.filename or "a file"
    hints = {errno.ENOSPC: "the disk is full; free space and rerun the same command",
             errno.EDQUOT: "the disk quota is spent; free space and rerun the same command",
             errno.EROFS: "the file system is read-only; choose another --out",
             errno.EACCES: "permission denied; choose another --out or fix the permissions",
             errno.EPERM: "permission denied; choose another --out or fix the permissions",
             errno.ENOTDIR: "a part of the path is a file, not a folder; choose another --out"}
    return f"cannot write {where}: {hints.get(exc.errno or 0, exc.strerror or str(exc))}"


def os_error(exc: OSError, path: str | Path | None = None) -> FatalError | UsageError:
    """A refused write as a BaleenError: a full disk cannot go on (1); a bad --out is usage (2)."""
    message = describe_os_error(exc, path)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
        return FatalError(message)
    return UsageError(message)
