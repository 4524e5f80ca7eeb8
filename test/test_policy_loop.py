"""The policy side of the closed loop: what it refuses to execute and when it stops."""

from __future__ import annotations

import pytest

from llara_core.language.actions import ActionStep, parse_actions, render_step
from llara_core.model.policy import PolicyOutput


# -- the closed loop's refusals ------------------------------------------------------------------------------
class ScriptedPolicy:
    """Answers from a list, one per query (then repeats the last): a model whose answers we choose."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls = 0

    def act(self, image, instruction, objects=None, history=()):
        text = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        res = parse_actions(text)
        return PolicyOutput(text, res.steps, res.errors, 0.0)


def _expert_steps(family: str, seed: int) -> list[ActionStep]:
    from llara_core.sim.env import TabletopEnv
    from llara_core.sim.expert import run_expert
    from llara_core.sim.tasks import make_task

    task = make_task(family, seed)
    with TabletopEnv(task.scene) as env:
        return run_expert(task, env).episode.action_steps()


@pytest.mark.sim
def test_an_unparseable_answer_ends_the_episode_even_if_a_requery_would_succeed():
    from llara_core.apps.evaluate import run_episode

    good = render_step(_expert_steps("l1_placement", 6)[0], 1)
    policy = ScriptedPolicy(["I would rather not.", good])
    row = run_episode(policy, "l1_placement", 6, extra_steps=3)
    assert not row["success"] and row["steps"] == 0 and policy.calls == 1
    assert row["reason"].startswith("unparseable")


@pytest.mark.sim
def test_a_text_whose_first_step_is_invalid_is_not_executed_even_when_a_later_step_parses():
    from llara_core.apps.evaluate import run_episode
    from llara_core.planning import select_step

    good = render_step(_expert_steps("l1_placement", 6)[0], 2)
    text = "Step 1: Pick up the object at <b>(0.4, 1.3)</b>, rotate <r>[0]</r> degrees, and drop it at <b>(0.5, 0.5)</b>.\n"
    text += good
    assert select_step(text, "first_step").code == "out_of_range"
    assert select_step(text, "refuse").code == "out_of_range"
    row = run_episode(ScriptedPolicy([text]), "l1_placement", 6)
    assert not row["success"] and row["steps"] == 0


def test_stage_times_report_the_window_not_the_whole_run():
    from llara_core.timing import StageTimes

    st = StageTimes(window=3)
    for s in (9.0, 0.001, 0.002, 0.003):  # the 9 s outlier has left the window
        st.add("model", s)
    st.add("frame_age", 0.5)
    out = st.summary()
    assert out["model_p50_ms"] == "2.0" and out["model_max_ms"] == "3.0" and out["frame_age_max_ms"] == "500.0"
    assert set(out) == {f"{s}_{q}_ms" for s in ("model", "frame_age") for q in ("p50", "p95", "max")}
    assert st.percentile_ms("publish", 50) is None
