"""Every parser of untrusted input, fuzzed: only sovra's own errors ever come out.

Each target in :mod:`targets` gets random bytes, its seed corpus, and mutations of
it (hypothesis); structured strategies add JSON values and text close to the real
shapes, so the parsers' deeper checks are reached and not only their first refusal.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from targets import TARGETS, run, seeds

EXAMPLES = 500
SEED_EXAMPLES = 25  # the rest of the corpus is drawn from by the mutation strategy

JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6)
    ),
    max_leaves=30,
)


def _mutations(name: str) -> st.SearchStrategy[bytes]:
    """A seed with a few bytes flipped, cut or grown: near-valid inputs."""
    corpus = seeds(name)
    if not corpus:
        return st.binary(max_size=512)

    @st.composite
    def mutate(draw: st.DrawFn) -> bytes:
        data = bytearray(draw(st.sampled_from(corpus)))
        for _ in range(draw(st.integers(0, 4))):
            op = draw(st.integers(0, 2))
            at = draw(st.integers(0, len(data)))
            if op == 0 and at < len(data):
                data[at] = draw(st.integers(0, 255))
            elif op == 1:
                data[at:at] = draw(st.binary(min_size=1, max_size=8))
            else:
                del data[at : at + draw(st.integers(1, 8))]
        return bytes(data)

    return mutate()


def _json_of(obj: object) -> bytes:
    return json.dumps(obj).encode()


def _object_fields(name: str) -> list[str]:
    """The field names of the first seed that is a JSON object (the corpus also holds
    the broken inputs the coverage-guided fuzzer kept)."""
    for seed in seeds(name):
        try:
            value = json.loads(seed)
        except (ValueError, RecursionError):
            continue
        if isinstance(value, dict):
            return list(value)
    return []


def _inputs(name: str) -> st.SearchStrategy[bytes]:
    structured = JSON_VALUES.map(_json_of)
    fields = _object_fields(name)
    if fields:
        # Real field names with random values reach past the "unknown field" refusal.
        structured = st.fixed_dictionaries({}, optional=dict.fromkeys(fields, JSON_VALUES)).map(
            _json_of
        )
    return st.one_of(st.binary(max_size=2048), _mutations(name), structured)


@pytest.mark.parametrize("name", [n for n in TARGETS if n != "body"])
def test_parsers_raise_only_their_documented_errors(name):
    @given(data=_inputs(name))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(data: bytes) -> None:
        run(name, data)

    for seed in seeds(name)[:SEED_EXAMPLES]:
        fuzz = example(data=seed)(fuzz)
    fuzz()


def test_request_bodies_are_answered_below_500_in_sovras_format():
    @given(data=_inputs("body") | JSON_VALUES.map(lambda v: bytes([0]) + _json_of(v)))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    def fuzz(data: bytes) -> None:
        run("body", data)

    fuzz()


CRASHES = sorted((Path(__file__).parent / "crashes").glob("*"))


@pytest.mark.parametrize("crash", CRASHES, ids=[c.name for c in CRASHES])
def test_every_crash_the_fuzzers_found_stays_fixed(crash):
    # tests/fuzz/crashes/<target>-<what>: an input that once escaped its parser.
    target = next(name for name in TARGETS if crash.name.startswith(f"{name}-"))
    run(target, crash.read_bytes())
