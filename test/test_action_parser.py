"""The strict action parser: what it accepts at the image's edge and how it refuses, step by step."""

from __future__ import annotations

from llara_core.language.actions import parse_actions


# -- the parser's bounds --------------------------------------------------------------------------
def test_the_parser_accepts_the_image_edge_and_nothing_beyond_it():
    edge = "Pick up the object at <b>(1.0, 0.0)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.0, 1.000)</b>."
    assert parse_actions(edge).ok
    for bad in ("1.001", "1.01", "1.04", "1.05", "-0.001"):
        text = edge.replace("(1.0, 0.0)", f"({bad}, 0.5)")
        res = parse_actions(text)
        assert not res.steps and res.errors[0].code == "out_of_range", bad
