"""C2SP tlog-checkpoint text: strict parsing, and round trips in both directions."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sovra.errors import BadRequest
from sovra_verify._merkle import leaf_hash
from sovra_verify.checkpoint import MAX_CHECKPOINT_BYTES, MAX_TREE_SIZE, Checkpoint

EXAMPLES: dict[str, Any] = json.loads(
    (Path(__file__).parents[1] / "vectors" / "signed_note_examples.json").read_text("utf-8")
)
ROOT = bytes(range(32))
ROOT_B64 = base64.b64encode(ROOT).decode()

_LINE = st.text(
    alphabet=st.characters(min_codepoint=0x20, exclude_categories=("Cs",)),
    min_size=1,
    max_size=40,
)
_SIZE = st.one_of(
    st.integers(min_value=0, max_value=1000),
    st.integers(min_value=0, max_value=MAX_TREE_SIZE),
)
_CHECKPOINTS = st.builds(
    Checkpoint,
    origin=_LINE,
    size=_SIZE,
    root_hash=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=4).map(tuple),
)


@settings(max_examples=100)
@given(_CHECKPOINTS)
def test_parse_of_to_text_is_identity(cp: Checkpoint) -> None:
    assert Checkpoint.parse(cp.to_text()) == cp


@settings(max_examples=100)
@given(
    origin=_LINE,
    size=_SIZE,
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(_LINE, max_size=4),
)
def test_to_text_of_parse_is_identity(
    origin: str, size: int, root: bytes, extensions: list[str]
) -> None:
    lines = [origin, str(size), base64.b64encode(root).decode(), *extensions]
    text = "".join(line + "\n" for line in lines)
    cp = Checkpoint.parse(text)
    assert cp.to_text() == text
    assert (cp.origin, cp.size, cp.root_hash, cp.extensions) == (
        origin,
        size,
        root,
        tuple(extensions),
    )


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A valid checkpoint text with one character inserted, deleted or replaced."""
    text = draw(_CHECKPOINTS).to_text()
    at = draw(st.integers(min_value=0, max_value=len(text) - 1))
    char = draw(st.sampled_from("0123456789+/=A\n -\x00\u2014") | st.characters())
    op = draw(st.sampled_from(["insert", "delete", "replace"]))
    if op == "insert":
        return text[:at] + char + text[at:]
    if op == "delete":
        return text[:at] + text[at + 1 :]
    return text[:at] + char + text[at + 1 :]


@settings(max_examples=150)
@given(st.text(max_size=120) | _mutated())
def test_anything_parse_accepts_serialises_back_unchanged(text: str) -> None:
    """Parse accepts only canonical spellings, so whatever it accepts round-trips."""
    try:
        cp = Checkpoint.parse(text)
    except BadRequest:
        return
    assert cp.to_text() == text


def test_go_tree_text_golden() -> None:
    ex = EXAMPLES["go_tlog_tree_text"]
    root = leaf_hash(ex["root_is_leaf_hash_of"].encode())
    cp = Checkpoint("go.sum database tree", ex["size"], root)
    assert cp.to_text() == ex["text"]
    assert Checkpoint.parse(ex["text"]) == cp
    for bad in ex["bad_texts"]:
        with pytest.raises(BadRequest):
            Checkpoint.parse(bad)


def test_c2sp_example_text() -> None:
    note = EXAMPLES["c2sp_checkpoint_example"]["note"]
    text = note[: note.rindex("\n\n") + 1]
    cp = Checkpoint.parse(text)
    assert (cp.origin, cp.size, cp.extensions) == ("example.com/behind-the-sofa", 20852163, ())
    assert cp.to_text() == text


def text_of(*lines: str) -> str:
    return "".join(line + "\n" for line in lines)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (text_of("log", "01", ROOT_B64), "canonical decimal"),
        (text_of("log", "00", ROOT_B64), "canonical decimal"),
        (text_of("log", "+1", ROOT_B64), "canonical decimal"),
        (text_of("log", "-1", ROOT_B64), "canonical decimal"),
        (text_of("log", " 1", ROOT_B64), "canonical decimal"),
        (text_of("log", "1 ", ROOT_B64), "canonical decimal"),
        (text_of("log", "", ROOT_B64), "canonical decimal"),
        (text_of("log", "0x10", ROOT_B64), "canonical decimal"),
        (text_of("log", "\u0661", ROOT_B64), "canonical decimal"),
        (text_of("log", "1_000", ROOT_B64), "canonical decimal"),
        (text_of("log", str(MAX_TREE_SIZE + 1), ROOT_B64), "outside"),
        (text_of("log", "1" * 21, ROOT_B64), "canonical decimal"),
        (text_of("log", "1", base64.b64encode(ROOT + b"!").decode()), "33 bytes, not 32"),
        (text_of("log", "1", base64.b64encode(ROOT[:31]).decode()), "31 bytes, not 32"),
        (text_of("log", "1", base64.b64encode(ROOT[:30]).decode()), "44 base64"),
        (text_of("log", "1", base64.b64encode(ROOT * 2).decode()), "44 base64"),
        (text_of("log", "1", ROOT_B64[:-2] + "B="), "canonical"),
        (text_of("log", "1", base64.urlsafe_b64encode(b"\xff" * 32).decode()), "valid base64"),
        (text_of("log", "1", ROOT_B64[:-1] + "A"), "33 bytes, not 32"),
        (text_of("log", "1", ROOT_B64[:-2] + "=A"), "valid base64"),
        (text_of("", "1", ROOT_B64), "origin"),
        (text_of("log", "1", ROOT_B64, ""), "extension"),
        (text_of("log", "1", ROOT_B64, "ext", ""), "extension"),
        (text_of("log", "1", ROOT_B64)[:-1], "newline"),
        (text_of("log", "1"), "at least 3"),
        ("", "newline"),
        (text_of("log\r", "1", ROOT_B64), "control character"),
        (text_of("log", "1", ROOT_B64, "a\tb"), "control character"),
        (text_of("log" * MAX_CHECKPOINT_BYTES, "1", ROOT_B64), "over"),
    ],
)
def test_strict_parse(text: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": -1}, "outside"),
        ({"size": MAX_TREE_SIZE + 1}, "outside"),
        ({"size": True}, "integer"),
        ({"size": "1"}, "integer"),
        ({"root_hash": ROOT[:31]}, "32 bytes"),
        ({"root_hash": ROOT_B64}, "32 bytes"),
        ({"origin": "a\nb"}, "control character"),
        ({"origin": ""}, "origin"),
        ({"extensions": ["x"]}, "tuple"),
        ({"extensions": ("x\ny",)}, "control character"),
        ({"extensions": ("x",) * 65}, "at most 64"),
        ({"extensions": ("x" * MAX_CHECKPOINT_BYTES,)}, "exceed"),
    ],
)
def test_constructor_validates(kwargs: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {"origin": "log", "size": 1, "root_hash": ROOT, **kwargs}
    with pytest.raises(BadRequest, match=message):
        Checkpoint(**args)


def test_parse_refuses_non_text() -> None:
    with pytest.raises(BadRequest, match="string"):
        Checkpoint.parse(text_of("log", "1", ROOT_B64).encode())  # type: ignore[arg-type]
