"""The action language: realistic model outputs, strictness, and property-based round trips."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llara_core.language.actions import ActionStep, parse_actions, render_actions, render_step

RELEASED = (
    "Step 1: Pick up the <p>red block</p> at <b>(0.301,  0.727)</b>, rotate <r>[0]</r> degrees, "
    "and drop it at <b>(0.500, 0.617)</b>."
)


def test_parses_llara_released_format_with_double_space():
    res = parse_actions(RELEASED)
    assert res.ok and res.errors == []
    (s,) = res.steps
    assert (s.kind, s.pick, s.place, s.rotation_deg, s.object, s.index) == (
        "pick_place",
        (0.301, 0.727),
        (0.5, 0.617),
        0.0,
        "red block",
        1,
    )


def test_render_reproduces_released_bytes():
    step = ActionStep((0.301, 0.727), (0.5, 0.617), 0.0, object="red block")
    assert render_step(step, 1) == RELEASED


def test_sweep_multistep_and_optional_parts():
    text = (
        "Sure, here is the plan:\n"
        "Step 1: Sweep the <p>dice</p> at <b>(0.212, 0.480)</b>, rotate <r>[-30]</r> degrees, and stop at <b>(0.640, 0.455)</b>.\n"
        "Pick up the object at <b>(0.1, 0.2)</b>, and drop it at <b>(0.3, 0.4)</b>\n"
        "Step 3: Pick up the <p>bowl</p> at <b>(1, 0)</b>, rotate <r>[45.5]</r> degrees, and drop it at <b>(0.000, 1.000)</b>."
    )
    res = parse_actions(text)
    assert res.ok, res.errors
    a, b, c = res.steps
    assert a.kind == "sweep" and a.rotation_deg == -30 and a.object == "dice"
    assert b.index is None and b.object is None and b.rotation_deg == 0.0  # rotation omitted -> 0 by definition
    assert c.pick == (1.0, 0.0) and c.rotation_deg == 45.5 and c.index == 3


def test_steps_run_together_on_one_line():
    text = RELEASED + " " + RELEASED.replace("Step 1", "Step 2").replace("0.301", "0.111")
    res = parse_actions(text)
    assert res.ok and [s.index for s in res.steps] == [1, 2] and res.steps[1].pick[0] == 0.111


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (RELEASED.replace("0.727", "1.727"), "out_of_range"),
        (RELEASED.replace("0.500", "-0.01"), "out_of_range"),
        (RELEASED.replace("0.727", "nan"), "not_finite"),
        (RELEASED.replace("0.727", "inf"), "not_finite"),
        (RELEASED.replace("[0]", "[360]"), "rotation_out_of_range"),
        (RELEASED[:-20], "truncated"),
        ("Step 1: Pick up the <p>red block</p> at <b>(0.301, 0.727)</b>, rotate <r>[0]</r> deg", "truncated"),
        ("Step 1: Pick up the <p>red", "truncated"),
        ("Step 1: Pick up the <p>red block</p> at <b>(0.301, 0.727)</b>.", "missing_place"),
        ("Step 1: Pick up at <b>(0.3, 0.7, 0.1)</b> and drop it at <b>(0.5, 0.6)</b>.", "malformed"),
        ("", "empty"),
        ("I cannot help with that.", "no_action"),
    ],
)
def test_rejects_bad_steps_with_typed_errors(text, code):
    res = parse_actions(text)
    assert not res.ok and res.steps == []
    assert [e.code for e in res.errors] == [code]


def test_truncated_last_step_keeps_complete_earlier_steps():
    text = RELEASED + "\nStep 2: Pick up the <p>blue block</p> at <b>(0.2,  0.3)</b>, rotate <r>[9"
    res = parse_actions(text)
    assert len(res.steps) == 1 and res.steps[0].index == 1
    assert [(e.code, e.line, e.index) for e in res.errors] == [("truncated", 2, 2)]
    assert not res.ok  # a consumer that moves hardware sees the partial answer explicitly


def test_step_constructor_refuses_invalid_values():
    with pytest.raises(ValueError):
        ActionStep((0.5, 1.2), (0.1, 0.1))
    with pytest.raises(ValueError):
        ActionStep((0.5, 0.5), (0.1, math.nan))
    with pytest.raises(ValueError):
        ActionStep((0.5, 0.5), (0.1, 0.1), rotation_deg=400)


coord = st.integers(0, 1000).map(lambda i: i / 1000)
names = (
    st.text(
        alphabet=st.characters(whitelist_categories=("L", "N"), whitelist_characters=" -_"), min_size=1, max_size=20
    )
    .map(str.strip)
    .filter(bool)
)
steps = st.builds(
    ActionStep,
    pick=st.tuples(coord, coord),
    place=st.tuples(coord, coord),
    rotation_deg=st.integers(-359_000, 359_000).map(lambda i: i / 1000),
    kind=st.sampled_from(["pick_place", "sweep"]),
    object=st.none() | names,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=1, max_size=6))
def test_render_then_parse_is_identity(seq):
    res = parse_actions(render_actions(seq))
    assert res.ok, res.errors
    expected = [ActionStep(s.pick, s.place, s.rotation_deg, s.kind, s.object, i) for i, s in enumerate(seq, 1)]
    assert res.steps == expected


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_never_raises_and_never_returns_invalid_values(text):
    res = parse_actions(text)
    for s in res.steps:
        assert all(0.0 <= v <= 1.0 for v in (*s.pick, *s.place))
        assert abs(s.rotation_deg) <= 359


@settings(max_examples=300, deadline=None)
@given(st.lists(steps, min_size=1, max_size=3), st.data())
def test_any_prefix_of_valid_output_never_yields_a_wrong_step(seq, data):
    text = render_actions(seq)
    cut = data.draw(st.integers(0, len(text)))
    res = parse_actions(text[:cut])
    full = parse_actions(text).steps
    for s in res.steps:  # a step parsed from a prefix is exactly one of the full steps
        assert s in full


def test_a_rounded_step_is_what_survives_a_render_parse_round_trip():
    from llara_core.language.actions import ActionStep, parse_actions, render_step

    step = ActionStep((0.12345, 0.98765), (0.5004999, 0.0), -12.3456, "sweep", "red block", 2)
    back = parse_actions(render_step(step, 2)).steps[0]
    r = step.rounded()
    assert r == back and r.pick == (0.123, 0.988) and r.rotation_deg == -12.346 and r.place == (0.5, 0.0)
    assert (r.kind, r.object, r.index) == ("sweep", "red block", 2)
    assert ActionStep((0.0004, 0.0), (0.0, 0.0), -0.0001).rounded().rotation_deg == 0.0  # no "-0"
