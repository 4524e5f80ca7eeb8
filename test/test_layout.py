"""The library's layout: packages import in one direction only, the policy seam has one default per profile, the
model folder records how it is finetuned, and the one private transformers hook the trainer overrides still exists."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "llara_core"


def _package_imports() -> dict[str, set[str]]:
    """package -> the llara_core packages its modules import (top-level and lazy imports alike)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT).parts
        pkg = rel[0] if len(rel) > 1 else "(foundations)"
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else \
                [a.name for a in node.names] if isinstance(node, ast.Import) else []  # fmt: skip
            for name in names:
                parts = name.split(".")
                if parts[0] == "llara_core" and len(parts) > 1:
                    target = parts[1] if (ROOT / parts[1]).is_dir() else "(foundations)"
                    if target != pkg:
                        graph.setdefault(pkg, set()).add(target)
    return graph


def test_no_import_circle_between_the_packages():
    graph = _package_imports()
    assert "apps" in graph and "language" in graph.get("datasets", set())  # the walk sees real imports

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph.get(start, ()))
        while todo:
            n = todo.pop()
            if n not in seen:
                seen.add(n)
                todo += graph.get(n, ())
        return seen

    circles = sorted(p for p in graph if p in reach(p))
    assert circles == [], {p: sorted(graph[p]) for p in circles}
    assert graph.get("(foundations)", set()) <= set(), graph.get("(foundations)")  # foundations import no package
    assert "apps" not in set().union(*(v for k, v in graph.items() if k != "apps"))  # nothing imports the apps


def test_the_answer_length_comes_from_the_prompt_profile():
    from llara_core.language.prompts import PROFILES, PromptStyle
    from llara_core.model.policy import PolicyConfig, load_policy

    assert PROFILES["llara_ros"].max_new_tokens == 96 and PROFILES["llara"].max_new_tokens == 256
    assert PromptStyle("llara").max_new_tokens == 256
    shipped = load_policy(PolicyConfig())
    assert shipped.style.profile == "llara_ros" and shipped.max_new_tokens == 96
    assert load_policy(PolicyConfig(prompt_profile="llara")).max_new_tokens == 256
    assert load_policy(PolicyConfig(max_new_tokens=12)).max_new_tokens == 12
    with pytest.raises(ValueError, match="max_new_tokens"):
        PolicyConfig(max_new_tokens=-1)


def test_the_model_folder_records_how_it_is_finetuned(tmp_path):
    from llara_core.model.folder import MODEL_SETTINGS_FILE, TINY_SPEC_FILE, read_finetune, write_finetune
    from llara_core.resources import demo_model_path

    assert read_finetune(demo_model_path()) == "full"  # the shipped tiny model says so in llara_model.json
    assert (demo_model_path() / MODEL_SETTINGS_FILE).is_file()
    assert read_finetune(tmp_path) == "lora"  # a pretrained base records nothing: LoRA
    (tmp_path / TINY_SPEC_FILE).write_text("{}")
    assert read_finetune(tmp_path) == "full"  # a tiny model from before llara_model.json existed
    write_finetune(tmp_path, "lora")
    assert read_finetune(tmp_path) == "lora"  # the recorded setting wins over the spec's presence
    (tmp_path / MODEL_SETTINGS_FILE).write_text('{"finetune": "half"}')
    with pytest.raises(ValueError, match="'full' or 'lora'"):
        read_finetune(tmp_path)


def test_the_trainer_hook_the_checkpoint_loader_overrides_exists_in_the_installed_transformers():
    """llara train overrides Trainer._load_from_checkpoint (private) to load full-finetuning checkpoints of tied
    weights; a transformers release that renames or re-signs it must fail here, not in a user's --resume."""
    from transformers import Trainer

    params = list(inspect.signature(Trainer._load_from_checkpoint).parameters)
    assert params[:3] == ["self", "resume_from_checkpoint", "model"], params
