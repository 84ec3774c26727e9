"""MaixPy file formats: my_classes.bin and faces.bin, byte for byte.

The reference writers below build files straight from the documented layout with ``struct``
(they share no code with agent.bank.maixpy), so a bug common to our writer and reader cannot
hide behind a round trip.
"""

from __future__ import annotations

import contextlib
import struct
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bank.maixpy import (
    FACES_TOLERATED_TAILS,
    MaixClasses,
    read_classes,
    read_faces,
    write_classes,
    write_faces,
)
from agent.errors import CommandError

# --------------------------------------------------------------------------- reference writers


def ref_classes(
    labels: list[str] | None,
    classes: list[list[float]],
    samples: list[list[float]],
    feat_len: int,
    version: int = 0,
) -> bytes:
    """my_classes.bin from the layout: u8 version; i32 C, S, D; u8 have_labels; labels; floats."""
    out = struct.pack("<B", version)
    out += struct.pack("<i", len(classes))
    out += struct.pack("<i", len(samples))
    out += struct.pack("<i", feat_len)
    out += struct.pack("<B", 1 if labels else 0)
    for label in labels or []:
        out += label.encode("utf-8") + b"\x00"
    for row in classes + samples:
        assert len(row) == feat_len
        out += struct.pack(f"<{feat_len}f", *row)
    return out


def ref_faces(records: list[tuple[str, list[float]]]) -> bytes:
    """faces.bin from the layout: per record label bytes, NUL, u16 len, len float32."""
    out = b""
    for label, vec in records:
        out += label.encode("utf-8") + b"\x00" + struct.pack("<H", len(vec))
        out += struct.pack(f"<{len(vec)}f", *vec)
    return out


# --------------------------------------------------------------------------- strategies

f32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
label_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)


@st.composite
def class_banks(
    draw: st.DrawFn,
) -> tuple[list[str] | None, list[list[float]], list[list[float]], int]:
    dim = draw(st.integers(1, 16))
    n_cls = draw(st.integers(1, 5))
    n_smp = draw(st.integers(0, 5))
    row = st.lists(f32, min_size=dim, max_size=dim)
    classes = draw(st.lists(row, min_size=n_cls, max_size=n_cls))
    samples = draw(st.lists(row, min_size=n_smp, max_size=n_smp))
    labels = draw(st.none() | st.lists(label_text, min_size=n_cls, max_size=n_cls))
    return labels, classes, samples, dim


@st.composite
def face_banks(draw: st.DrawFn) -> list[tuple[str, list[float]]]:
    dim = draw(st.integers(1, 16))
    vec = st.lists(f32, min_size=dim, max_size=dim)
    return draw(st.lists(st.tuples(label_text, vec), max_size=6))


def as_matrix(rows: list[list[float]], dim: int) -> np.ndarray:
    return np.array(rows, dtype=np.float32).reshape(len(rows), dim)


# --------------------------------------------------------------------------- my_classes.bin


def test_classes_reference_file_is_read() -> None:
    data = ref_classes(["cat", "dög 🐕"], [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], [[0.5, -1, 2]], 3)
    got = read_classes(data, expect_dim=3)
    assert isinstance(got, MaixClasses)
    assert got.labels == ["cat", "dög 🐕"]
    np.testing.assert_array_equal(got.classes, [[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(got.samples, [[0.5, -1, 2]])
    assert got.classes.dtype == np.float32 and got.samples.dtype == np.float32
    assert got.samples.shape == (1, 3)


def test_classes_without_labels_and_samples() -> None:
    got = read_classes(ref_classes(None, [[1.0]], [], 1))
    assert got.labels is None
    assert got.samples.shape == (0, 1)


def test_classes_version_byte_is_ignored() -> None:
    got = read_classes(ref_classes(["a"], [[1.0, 2.0]], [], 2, version=7))
    assert got.labels == ["a"]


def test_classes_any_nonzero_have_labels_means_labels() -> None:
    data = bytearray(ref_classes(["a"], [[1.0]], [], 1))
    data[13] = 5
    assert read_classes(bytes(data)).labels == ["a"]


@settings(max_examples=150, deadline=None)
@given(class_banks())
def test_classes_writer_matches_reference_and_round_trips(
    bank: tuple[list[str] | None, list[list[float]], list[list[float]], int],
) -> None:
    labels, classes, samples, dim = bank
    expected = ref_classes(labels, classes, samples, dim)
    written = write_classes(labels, as_matrix(classes, dim), as_matrix(samples, dim))
    assert written == expected
    got = read_classes(written, expect_dim=dim)
    assert got.labels == (labels or None)
    np.testing.assert_array_equal(got.classes, as_matrix(classes, dim))
    np.testing.assert_array_equal(got.samples, as_matrix(samples, dim))


def test_classes_writer_empty_label_list_means_no_labels() -> None:
    data = write_classes([], np.ones((2, 3)), np.zeros((0, 3)))
    assert data == ref_classes(None, [[1, 1, 1], [1, 1, 1]], [], 3)


def test_classes_writer_accepts_float64_and_empty_1d_samples() -> None:
    data = write_classes(None, np.array([[0.25, 0.5]], dtype=np.float64), np.array([]))
    assert data == ref_classes(None, [[0.25, 0.5]], [], 2)


@pytest.mark.parametrize(
    ("labels", "classes", "samples"),
    [
        (None, np.zeros((0, 4)), np.zeros((0, 4))),  # no classes: MaixPy's save fails
        (["a"], np.zeros((2, 4)), np.zeros((0, 4))),  # label count mismatch
        (["a", "b", "c"], np.zeros((2, 4)), np.zeros((0, 4))),
        (["a\x00b", "c"], np.zeros((2, 4)), np.zeros((0, 4))),  # NUL in a label
        (None, np.zeros((2, 4)), np.zeros((1, 3))),  # sample dim differs
        (None, np.zeros(4), np.zeros((0, 4))),  # not 2-D
        (None, np.array([[np.nan, 1.0]]), np.zeros((0, 2))),
        (None, np.array([[1e39, 1.0]]), np.zeros((0, 2))),  # overflows float32
        (None, np.zeros((1, 0)), np.zeros((0, 0))),
    ],
)
def test_classes_writer_refuses(labels: list[str] | None, classes: np.ndarray, samples: np.ndarray) -> None:
    with pytest.raises(ValueError):
        write_classes(labels, classes, samples)


def test_classes_dim_mismatch_is_conflict_naming_both() -> None:
    data = ref_classes(["a"], [[1.0] * 8], [], 8)
    with pytest.raises(CommandError) as err:
        read_classes(data, expect_dim=1280)
    assert err.value.code == "conflict"
    assert "8" in err.value.message and "1280" in err.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00" * 13,
        struct.pack("<BiiiB", 0, 0, 0, 4, 0),  # no classes
        struct.pack("<BiiiB", 0, -1, 0, 4, 0),
        struct.pack("<BiiiB", 0, 1, -1, 4, 0) + b"\x00" * 16,
        struct.pack("<BiiiB", 0, 1, 0, 0, 0),  # zero feature length
        struct.pack("<BiiiB", 0, 1, 0, -4, 0),
        ref_classes(["a"], [[1.0]], [], 1) + b"\x00",  # trailing byte
        ref_classes(["ab"], [[1.0]], [], 1).replace(b"ab\x00", b"abc"),  # label not terminated
        ref_classes(["a"], [[1.0]], [], 1).replace(b"a\x00", b"\xff\x00"),  # bad UTF-8
        ref_classes(None, [[float("nan")]], [], 1),
        ref_classes(None, [[1.0]], [[float("inf")]], 1),
    ],
)
def test_classes_garbage_is_bad_request(data: bytes) -> None:
    with pytest.raises(CommandError) as err:
        read_classes(data)
    assert err.value.code == "bad_request"


def test_classes_every_truncation_is_a_command_error() -> None:
    data = ref_classes(["one", "twö"], [[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [1, 1, 1]], 3)
    for cut in range(len(data)):
        with pytest.raises(CommandError) as err:
            read_classes(data[:cut])
        assert err.value.code == "bad_request", cut
    assert read_classes(data).labels == ["one", "twö"]


@pytest.mark.parametrize(
    ("class_num", "sample_num", "feat_len", "have_labels"),
    [
        (2**31 - 1, 2**31 - 1, 2**31 - 1, 0),
        (2**31 - 1, 0, 1, 1),  # two billion labels promised, none present
        (1, 2**31 - 1, 1280, 0),
        (1000, 1000, 512, 0),
    ],
)
def test_classes_huge_counts_do_not_allocate(class_num: int, sample_num: int, feat_len: int, have_labels: int) -> None:
    data = struct.pack("<BiiiB", 0, class_num, sample_num, feat_len, have_labels) + b"\x00" * 64
    tracemalloc.start()
    try:
        with pytest.raises(CommandError) as err:
            read_classes(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert err.value.code == "bad_request"
    assert peak < 100_000


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_classes_random_bytes_only_raise_command_error(data: bytes) -> None:
    with contextlib.suppress(CommandError):
        read_classes(data, expect_dim=4)


# --------------------------------------------------------------------------- faces.bin


def test_faces_reference_file_is_read() -> None:
    data = ref_faces([("id_1", [0.1, 0.2]), ("Zoë 😀", [3.0, -4.0]), ("", [1.0, 1.0])])
    got = read_faces(data, expect_dim=2)
    assert [label for label, _ in got] == ["id_1", "Zoë 😀", ""]
    np.testing.assert_array_equal(got[1][1], np.array([3.0, -4.0], dtype=np.float32))
    assert all(vec.dtype == np.float32 and vec.shape == (2,) for _, vec in got)


def test_faces_empty_file_is_empty_bank() -> None:
    assert read_faces(b"", expect_dim=512) == []
    assert write_faces([]) == b""


@settings(max_examples=150, deadline=None)
@given(face_banks())
def test_faces_writer_matches_reference_and_round_trips(
    records: list[tuple[str, list[float]]],
) -> None:
    expected = ref_faces(records)
    written = write_faces([(label, np.array(vec, dtype=np.float32)) for label, vec in records])
    assert written == expected
    got = read_faces(written)
    assert [label for label, _ in got] == [label for label, _ in records]
    for (_, vec), (_, want) in zip(got, records, strict=True):
        np.testing.assert_array_equal(vec, np.array(want, dtype=np.float32))


@pytest.mark.parametrize("tail", sorted(FACES_TOLERATED_TAILS))
def test_faces_tolerates_maixpy_eof_residue(tail: bytes) -> None:
    data = ref_faces([("a", [1.0, 2.0]), ("b", [3.0, 4.0])])
    got = read_faces(data + tail, expect_dim=2)
    assert [label for label, _ in got] == ["a", "b"]
    assert read_faces(tail) == []


def test_faces_tolerated_tails_are_exactly_one_or_two_nuls() -> None:
    assert frozenset({b"\x00", b"\x00\x00"}) == FACES_TOLERATED_TAILS


@pytest.mark.parametrize(
    "tail",
    [
        b"c",  # label with no NUL
        b"carol",
        b"carol\x00",  # label, no length
        b"carol\x00\x02",  # half a length
        b"\x00\x02\x00",  # empty label, length 2, no floats
        b"\x00\x00\x00",  # empty label, length 0: MaixPy would load an empty feature
        b"c\x00\x02\x00" + struct.pack("<f", 1.0),  # one float of two
    ],
)
def test_faces_other_trailing_partial_records_are_bad_request(tail: bytes) -> None:
    data = ref_faces([("a", [1.0, 2.0])])
    with pytest.raises(CommandError) as err:
        read_faces(data + tail)
    assert err.value.code == "bad_request"


def test_faces_every_truncation_reads_or_raises_command_error() -> None:
    records = [("alice", [1.0, 2.0, 3.0]), ("bob", [4.0, 5.0, 6.0]), ("ç", [7.0, 8.0, 9.0])]
    data = ref_faces(records)
    boundaries = {len(ref_faces(records[:i])): i for i in range(len(records) + 1)}
    for cut in range(len(data) + 1):
        try:
            got = read_faces(data[:cut], expect_dim=3)
        except CommandError as err:
            assert err.code == "bad_request", cut
            assert cut not in boundaries, cut
        else:
            assert cut in boundaries, cut
            assert [label for label, _ in got] == [label for label, _ in records[: boundaries[cut]]]


def test_faces_dim_mismatch_is_conflict_naming_both() -> None:
    data = ref_faces([("a", [1.0] * 128)])
    with pytest.raises(CommandError) as err:
        read_faces(data, expect_dim=512)
    assert err.value.code == "conflict"
    assert "128" in err.value.message and "512" in err.value.message


@pytest.mark.parametrize(
    "data",
    [
        ref_faces([("a", [float("nan"), 1.0])]),
        ref_faces([("a", [float("-inf"), 1.0])]),
        ref_faces([("a", [1.0, 2.0]), ("b", [1.0, 2.0, 3.0])]),  # inconsistent dims
        b"\xff\xfe\x00" + struct.pack("<Hf", 1, 1.0),  # bad UTF-8
        b"a\x00" + struct.pack("<H", 0),  # zero-length feature
        b"a\x00" + struct.pack("<H", 65535) + b"\x00" * 16,  # declares more than present
    ],
)
def test_faces_garbage_is_bad_request(data: bytes) -> None:
    with pytest.raises(CommandError) as err:
        read_faces(data)
    assert err.value.code == "bad_request"


def test_faces_huge_length_does_not_allocate() -> None:
    data = b"x\x00" + struct.pack("<H", 65535) + b"\x00" * 8
    tracemalloc.start()
    try:
        with pytest.raises(CommandError):
            read_faces(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 100_000


@pytest.mark.parametrize(
    "records",
    [
        [("a\x00b", np.ones(2))],
        [("a", np.ones((2, 2)))],
        [("a", np.ones(0))],
        [("a", np.ones(65536))],
        [("a", np.array([np.nan, 1.0]))],
        [("a", np.ones(2)), ("b", np.ones(3))],
        [("\ud800", np.ones(2))],  # lone surrogate: not encodable
    ],
)
def test_faces_writer_refuses(records: list[tuple[str, np.ndarray]]) -> None:
    with pytest.raises(ValueError):
        write_faces(records)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_faces_random_bytes_only_raise_command_error(data: bytes) -> None:
    with contextlib.suppress(CommandError):
        read_faces(data, expect_dim=4)


def test_faces_large_bank_reads_linearly() -> None:
    records = [(f"id_{i}", np.full(512, i, dtype=np.float32)) for i in range(2000)]
    got = read_faces(write_faces(records), expect_dim=512)
    assert len(got) == 2000 and got[-1][0] == "id_1999" and got[-1][1][0] == 1999
