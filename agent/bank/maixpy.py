"""MaixPy's feature-bank files, byte for byte: ``my_classes.bin`` and ``faces.bin``.

MaixCAM writes raw values in native byte order, which is little-endian on every MaixCAM, so
both formats are read and written little-endian here regardless of the host.

``my_classes.bin`` (``SelfLearnClassifier.save``/``load``)::

    u8  version            (0; ignored on read, as MaixPy does)
    i32 class_num
    i32 sample_num
    i32 feat_len
    u8  have_labels        (MaixPy tests it as a boolean: any non-zero value means "labels follow")
    class_num x (UTF-8 label bytes, NUL)           only if have_labels
    class_num  x feat_len float32                  the class features
    sample_num x feat_len float32                  the sample features

``faces.bin`` (``FaceRecognizer.save_faces``/``load_faces``) has no header and no version; it is
a sequence of records, each::

    label bytes (UTF-8, no NUL), NUL, u16 len, len x float32

Readers never trust a declared count: every count is checked against the bytes actually present
before anything is allocated, so a crafted header cannot make us allocate more than the input's
own size. Malformed input raises :class:`~agent.errors.CommandError` with code ``bad_request``;
a well-formed file whose feature length differs from the model's raises code ``conflict``.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

import numpy as np

from agent.errors import CommandError

__all__ = [
    "FACES_TOLERATED_TAILS",
    "MaixClasses",
    "read_classes",
    "read_faces",
    "write_classes",
    "write_faces",
]

_F32 = np.dtype("<f4")
_CLASSES_HEADER = struct.Struct("<BiiiB")
_U16 = struct.Struct("<H")
_I32_MAX = 2**31 - 1
_U16_MAX = 2**16 - 1

FACES_TOLERATED_TAILS: frozenset[bytes] = frozenset({b"\0", b"\0\0"})
"""Residues after the last complete ``faces.bin`` record that :func:`read_faces` ignores.

MaixPy's ``load_faces`` loops ``while (!feof)``: it reads a label up to NUL (or EOF), then a u16
length, and gives up with ``ERR_IO`` when that u16 read comes up short, keeping every record
already loaded. A residue of one or two NUL bytes is exactly what that loop reads as an empty
label followed by a short length read; it carries no data, so it is skipped. (The zero-length
residue, i.e. a file that ends right after a record, is of course accepted too; that is the case
MaixPy itself reports as ``ERR_IO``.) Any other incomplete trailing record — label bytes with no
NUL, a label with a partial length, a length with fewer floats than it announces — is reported
as ``bad_request``: it means a truncated or corrupt file, and silently dropping a face would hide
that.
"""


class MaixClasses(NamedTuple):
    """The content of a ``my_classes.bin``: optional labels, class and sample features."""

    labels: list[str] | None
    """One label per class, or ``None`` when the file has none (``have_labels == 0``)."""
    classes: np.ndarray
    """float32, shape ``(class_num, feat_len)``."""
    samples: np.ndarray
    """float32, shape ``(sample_num, feat_len)``."""


def _bad(message: str) -> CommandError:
    return CommandError("bad_request", message)


def _dim_conflict(what: str, found: int, expected: int) -> CommandError:
    return CommandError(
        "conflict",
        f"{what} holds {found}-dimensional features but the loaded model produces "
        f"{expected}-dimensional ones; it was made with a different feature model",
    )


def _as_matrix(name: str, array: np.ndarray) -> np.ndarray:
    arr = np.asarray(array)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, refused below
        out = arr.astype(_F32)
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values (or values beyond float32)")
    return out


def _encode_label(label: str) -> bytes:
    if not isinstance(label, str):
        raise ValueError(f"label must be a str, got {type(label).__name__}")
    raw = label.encode("utf-8")  # UnicodeEncodeError (a ValueError) for lone surrogates
    if b"\0" in raw:
        raise ValueError(f"label {label!r} contains a NUL character")
    return raw


def _decode_label(raw: bytes, where: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _bad(f"{where}: label is not valid UTF-8 ({exc.reason})") from None


def _floats(data: bytes, offset: int, count: int) -> np.ndarray:
    """``count`` little-endian float32 at ``offset`` as a native, writable float32 array.

    The caller has already checked that the bytes are there.
    """
    return np.frombuffer(data, dtype=_F32, count=count, offset=offset).astype(np.float32)


# --------------------------------------------------------------------------- my_classes.bin


def write_classes(labels: list[str] | None, classes: np.ndarray, samples: np.ndarray) -> bytes:
    """Serialise a classifier bank exactly as ``SelfLearnClassifier.save`` does.

    ``labels`` ``None`` or ``[]`` means "no labels" (MaixPy's ``save(path, labels=[])``), and
    ``have_labels`` is written 0. ``samples`` may be empty (any array of size 0).

    Raises ``ValueError`` where MaixPy's ``save`` fails (no classes, label count differing from
    the class count) and for input MaixPy could not round-trip: mismatched feature lengths, a
    label containing NUL, non-finite values, counts beyond ``i32``.
    """
    cls = _as_matrix("classes", classes)
    class_num, feat_len = cls.shape
    if class_num == 0:
        raise ValueError("cannot save a classifier with no classes")
    if feat_len == 0:
        raise ValueError("feature length must be at least 1")
    smp_in = np.asarray(samples)
    smp = np.zeros((0, feat_len), dtype=_F32) if smp_in.size == 0 else _as_matrix("samples", smp_in)
    if smp.shape[1] != feat_len:
        raise ValueError(f"samples have {smp.shape[1]} features per row but classes have {feat_len}")
    sample_num = smp.shape[0]
    if max(class_num, sample_num, feat_len) > _I32_MAX:
        raise ValueError("class, sample or feature count does not fit in an i32")
    have_labels = bool(labels)
    parts = [_CLASSES_HEADER.pack(0, class_num, sample_num, feat_len, 1 if have_labels else 0)]
    if labels:
        if len(labels) != class_num:
            raise ValueError(f"{len(labels)} labels given for {class_num} classes")
        for label in labels:
            parts.append(_encode_label(label))
            parts.append(b"\0")
    parts.append(cls.tobytes())
    parts.append(smp.tobytes())
    return b"".join(parts)


def read_classes(data: bytes, expect_dim: int | None = None) -> MaixClasses:
    """Parse a ``my_classes.bin`` (see the module docstring for the layout).

    The version byte is ignored, as MaixPy does; any non-zero ``have_labels`` means labels
    follow. Bytes after the sample features are rejected.

    Raises :class:`~agent.errors.CommandError`: ``conflict`` if the file is well formed but its
    ``feat_len`` differs from ``expect_dim``; ``bad_request`` for anything malformed (truncated,
    negative or impossible counts, invalid UTF-8 labels, NaN/inf features, trailing bytes, no
    classes, zero feature length).
    """
    data = bytes(data)
    size = len(data)
    if size < _CLASSES_HEADER.size:
        raise _bad(f"my_classes.bin is {size} bytes, shorter than its {_CLASSES_HEADER.size}-byte header")
    _version, class_num, sample_num, feat_len, have_labels = _CLASSES_HEADER.unpack_from(data, 0)
    if class_num < 1:
        raise _bad(f"my_classes.bin declares {class_num} classes (MaixPy never saves fewer than 1)")
    if sample_num < 0:
        raise _bad(f"my_classes.bin declares a negative sample count ({sample_num})")
    if feat_len < 1:
        raise _bad(f"my_classes.bin declares a feature length of {feat_len}")
    pos = _CLASSES_HEADER.size
    # Cheap bound before scanning: each label needs at least its NUL, each feature 4 bytes.
    floats_needed = (class_num + sample_num) * feat_len * _F32.itemsize
    minimum = pos + (class_num if have_labels else 0) + floats_needed
    if minimum > size:
        raise _bad(
            f"my_classes.bin declares {class_num} classes and {sample_num} samples of "
            f"{feat_len} floats, which needs at least {minimum} bytes; the file has {size}"
        )
    labels: list[str] | None = None
    if have_labels:
        labels = []
        for i in range(class_num):
            end = data.find(b"\0", pos, size - floats_needed)
            if end < 0:
                raise _bad(f"my_classes.bin: label {i} is not NUL-terminated before the features")
            labels.append(_decode_label(data[pos:end], f"my_classes.bin label {i}"))
            pos = end + 1
    if pos + floats_needed != size:
        raise _bad(
            f"my_classes.bin has {size - pos - floats_needed} bytes more than its labels and features account for"
        )
    classes = _floats(data, pos, class_num * feat_len).reshape(class_num, feat_len)
    pos += class_num * feat_len * _F32.itemsize
    samples = _floats(data, pos, sample_num * feat_len).reshape(sample_num, feat_len)
    if not (np.isfinite(classes).all() and np.isfinite(samples).all()):
        raise _bad("my_classes.bin contains NaN or infinite feature values")
    if expect_dim is not None and feat_len != expect_dim:
        raise _dim_conflict("my_classes.bin", feat_len, expect_dim)
    return MaixClasses(labels, classes, samples)


# --------------------------------------------------------------------------- faces.bin


def write_faces(records: list[tuple[str, np.ndarray]]) -> bytes:
    """Serialise enrolled faces exactly as ``FaceRecognizer.save_faces`` does.

    One record per ``(label, feature)``; an empty list gives an empty file, as MaixPy writes.
    Raises ``ValueError`` for a label containing NUL, a feature that is not 1-D, empty, longer
    than 65535 (the u16 length) or non-finite, and for features of differing lengths.
    """
    parts: list[bytes] = []
    dim: int | None = None
    for index, (label, feature) in enumerate(records):
        raw = _encode_label(label)
        vec = np.asarray(feature)
        if vec.ndim != 1:
            raise ValueError(f"face {index} ({label!r}): feature must be 1-D, got {vec.shape}")
        vec32 = _as_matrix(f"face {index} ({label!r}) feature", vec.reshape(1, -1))[0]
        n = vec32.shape[0]
        if not 1 <= n <= _U16_MAX:
            raise ValueError(f"face {index} ({label!r}): feature length {n} is not in 1..65535")
        if dim is None:
            dim = n
        elif n != dim:
            raise ValueError(f"face {index} ({label!r}): feature length {n}, others have {dim}")
        parts += [raw, b"\0", _U16.pack(n), vec32.tobytes()]
    return b"".join(parts)


def read_faces(data: bytes, expect_dim: int | None = None) -> list[tuple[str, np.ndarray]]:
    """Parse a ``faces.bin`` into ``(label, float32 feature)`` pairs in file order.

    Empty labels are allowed (MaixPy writes whatever label it was given). A file that ends right
    after a record is complete; the only trailing residues tolerated are those in
    :data:`FACES_TOLERATED_TAILS` (one or two NUL bytes). An empty file is an empty bank.

    Raises :class:`~agent.errors.CommandError`: ``conflict`` if a well-formed record's length
    differs from ``expect_dim``; ``bad_request`` for a truncated record, a zero length, invalid
    UTF-8, NaN/inf values, or records of differing lengths within the file.
    """
    data = bytes(data)
    size = len(data)
    out: list[tuple[str, np.ndarray]] = []
    dim: int | None = None
    pos = 0
    while pos < size:
        if size - pos <= 2 and data[pos:] in FACES_TOLERATED_TAILS:
            break
        index = len(out)
        nul = data.find(b"\0", pos)
        if nul < 0:
            raise _bad(f"faces.bin record {index} at byte {pos}: label has no NUL terminator")
        if nul + 1 + _U16.size > size:
            raise _bad(f"faces.bin record {index} at byte {pos}: truncated length field")
        (n,) = _U16.unpack_from(data, nul + 1)
        start = nul + 1 + _U16.size
        if n == 0:
            raise _bad(f"faces.bin record {index} at byte {pos}: zero-length feature")
        end = start + n * _F32.itemsize
        if end > size:
            raise _bad(
                f"faces.bin record {index} at byte {pos}: declares {n} floats "
                f"({n * _F32.itemsize} bytes) but only {size - start} bytes remain"
            )
        label = _decode_label(data[pos:nul], f"faces.bin record {index}")
        vec = _floats(data, start, n)
        if not np.isfinite(vec).all():
            raise _bad(f"faces.bin record {index} ({label!r}) has NaN or infinite values")
        if dim is None:
            dim = n
        elif n != dim:
            raise _bad(f"faces.bin record {index} ({label!r}) has {n} floats, earlier records {dim}")
        out.append((label, vec))
        pos = end
    if expect_dim is not None and dim is not None and dim != expect_dim:
        raise _dim_conflict("faces.bin", dim, expect_dim)
    return out
