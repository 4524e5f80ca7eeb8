"""The ``llara`` command: thin argument handling over library functions, one subcommand per job.

Each subcommand is registered with :func:`subcommand` right above its
handler: the function adds the command's own arguments (most of them generated
from the job's configuration dataclass, see :mod:`llara_core.config`) and
returns the handler. Conventions: a usage problem (bad flag value, missing
file, unknown family) is a :class:`~llara_core.errors.LlaraError` that
:func:`main` prints as one line and turns into exit code 2; a check that ran
and failed (an invalid answer, a bad dataset record) exits with 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from llara_core.config import add_arguments, from_args
from llara_core.errors import LlaraError, UsageError
from llara_core.fileio import existing_path, expand_path

if TYPE_CHECKING:
    from llara_core.model.policy import PolicyConfig
    from llara_core.model.train import TrainConfig

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: list[tuple[str, str, str | None, Callable[[argparse.ArgumentParser], Handler]]] = []


def subcommand(
    name: str, help: str, description: str | None = None
) -> Callable[[Callable[[argparse.ArgumentParser], Handler]], Callable[[argparse.ArgumentParser], Handler]]:
    """Register ``llara <name>``: the decorated function adds its arguments and returns its handler."""

    def register(fn: Callable[[argparse.ArgumentParser], Handler]) -> Callable[[argparse.ArgumentParser], Handler]:
        _COMMANDS.append((name, help, description, fn))
        return fn

    return register


# -- action text -------------------------------------------------------------------------------
@subcommand("parse", "parse model output into action steps (JSON); exit 1 if any step is invalid")
def _parse(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("text", nargs="?", help="the model output; read from stdin when omitted")

    def run(args: argparse.Namespace) -> int:
        from llara_core.language.actions import parse_actions

        res = parse_actions(args.text if args.text is not None else sys.stdin.read())
        print(json.dumps(res.to_dict(), indent=2))
        return 0 if res.ok else 1

    return run


# -- datasets ------------------------------------------------------------------------------------
@subcommand(
    "validate-dataset",
    "check every record of a LLaVA-format dataset folder, content included; exit 1 at the first bad record",
    "Checks the structure of each record, that its image opens, that its task kind is known, and its answer's "
    "content per kind: action answers parse strictly (coordinates in [0, 1]), boxes lie in the image.",
)
def _validate(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("dataset", help="folder holding data.json (or *.jsonl shards) and images/, or a LLaVA JSON file")
    p.add_argument("--image-root", help="folder the image paths of a JSON file start from (default: its folder)")

    def run(args: argparse.Namespace) -> int:
        from collections import Counter

        from llara_core.datasets.reader import read_dataset
        from llara_core.datasets.records import DatasetError

        root = existing_path(args.dataset, "dataset")
        images = existing_path(args.image_root, "image root") if args.image_root else None
        try:
            records = read_dataset(root, check_content=True, image_root=images)
        except DatasetError as exc:
            print(f"invalid dataset {root}: {exc}", file=sys.stderr)
            return 1
        print(f"{root}: {len(records)} valid records")
        for kind, n in sorted(Counter(r.get("task", "unknown") for r in records).items()):
            print(f"  {kind:24s} {n}")
        return 0

    return run


@subcommand(
    "dataset",
    "pool datasets: 'dataset stats DATASET…' (records per kind, images, episodes, lengths) and 'dataset mix'",
    "DATASET is a folder written by this package or a LLaVA JSON/JSONL file as FILE[=IMAGE_ROOT]. 'mix A B … --out "
    "C [--mix inbc=1,localization=0.5]' writes a dataset folder combining them, re-weighted per task kind, with "
    "the images linked (one symlink per source), not copied; sources worded differently are refused.",
)
def _dataset(p: argparse.ArgumentParser) -> Handler:
    sub = p.add_subparsers(dest="action", required=True, help="stats or mix")
    st = sub.add_parser("stats", help="records per kind, images, episodes, prompt/answer lengths")
    st.add_argument("datasets", nargs="+", help="dataset folders or FILE.json[=IMAGE_ROOT]")
    st.add_argument("--model", help="model folder whose tokenizer counts the lengths (default: characters)")
    mx = sub.add_parser("mix", help="combine datasets into a new folder without copying images")
    mx.add_argument("datasets", nargs="+", help="dataset folders or FILE.json[=IMAGE_ROOT]")
    mx.add_argument("--out", required=True, help="new dataset folder")
    mx.add_argument("--mix", help="kind=ratio,… of the number of demonstration steps (default: keep everything)")
    mx.add_argument("--seed", type=int, default=0, help="seed of the re-weighting (default: 0)")

    def run(args: argparse.Namespace) -> int:
        from llara_core.datasets.mixing import parse_mix
        from llara_core.datasets.tools import dataset_stats, mix_datasets

        if args.action == "stats":
            tokenizer = None
            if args.model:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(
                    existing_path(args.model, "model folder"), local_files_only=True
                )
            print(json.dumps(dataset_stats(args.datasets, tokenizer), indent=1))
        else:
            manifest = mix_datasets(args.datasets, args.out, parse_mix(args.mix), args.seed)
            print(f"{args.out}: {manifest['total']} records {manifest['counts']}")
        return 0

    return run


@subcommand(
    "convert-bags",
    "convert rosbag2 episodes (mcap/sqlite3) into a LLaVA dataset; exit 2 if any bag was skipped",
    "One bag per episode (a folder of bag folders is expanded). Bags already in the dataset are skipped "
    "(resumable); bad bags are reported in OUT/report.json and skipped while the rest converts. Every key of "
    "the YAML config is also a flag (nested keys dotted: --bag.base-frame, --bag.topics.image); flags override "
    "the file.",
)
def _convert(p: argparse.ArgumentParser) -> Handler:
    from llara_core.datasets.convert import ConversionConfig, ConvertJob

    p.add_argument("bags", nargs="+", help="bag folders, or folders holding bag folders")
    add_arguments(p, ConvertJob, exclude=("bags",))
    add_arguments(p, ConversionConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.datasets.convert import convert_bags, expand_bags, print_report

        job = from_args(ConvertJob, args, bags=tuple(args.bags))
        cfg = from_args(ConversionConfig, args, job.config)
        return print_report(convert_bags(expand_bags(job.bags), job.out, cfg, force=job.force))

    return run


@subcommand(
    "inspect-bag",
    "show what a bag holds and whether the conversion config would convert it; exit 1 if it would not",
    "Topics with types and counts, the transforms in /tf_static, the value ranges of the gripper topic and of "
    "every joint, the camera's intrinsics, then the converter's own verdict: converts (steps, samples per kind) "
    "or the reason and what to set. Takes the same --config and flags as convert-bags. Never modifies the bag.",
)
def _inspect(p: argparse.ArgumentParser) -> Handler:
    from llara_core.datasets.convert import ConversionConfig

    p.add_argument("bag", help="one bag folder")
    p.add_argument("--config", default=None, help="YAML conversion config, as for convert-bags (default: none)")
    p.add_argument("--json", action="store_true", help="print the result as JSON (default: text)")
    add_arguments(p, ConversionConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.datasets.convert import format_inspection, inspect_bag

        cfg = from_args(ConversionConfig, args, args.config)
        res = inspect_bag(existing_path(args.bag, "bag"), cfg)
        verdict = res["verdict"]
        print(json.dumps(res, indent=2) if args.json else format_inspection(res))
        return 0 if verdict["converts"] else 1

    return run


# -- simulator -------------------------------------------------------------------------------------
@subcommand(
    "sim-demos",
    "scripted-expert demonstrations in the MuJoCo tabletop -> LLaVA dataset (and rosbag2 episodes)",
    "Runs the expert on --episodes seeds of each family (seeds S, S+1, ...), writes every successful "
    "demonstration into the dataset folder with the chosen task kinds, and with --bags also as one rosbag2 per "
    "episode with standard message types. Resumable; failed demonstrations are listed in OUT/report.json and "
    "make the exit code 1.",
)
def _sim_demos(p: argparse.ArgumentParser) -> Handler:
    from llara_core.sim.demonstrations import DemosConfig

    add_arguments(p, DemosConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.sim.demonstrations import generate_demos

        c = from_args(DemosConfig, args)
        report = generate_demos(c)
        print(
            f"written {len(report['written'])}, already there {len(report['already_written'])}, "
            f"expert failed {len(report['failed'])}; samples {report['samples']}"
            + (f"; bags in {c.bags}" if c.bags else "")
        )
        for f in report["failed"]:
            print(f"  FAILED {f['episode']}: {f['reason']}", file=sys.stderr)
        return 1 if report["failed"] else 0

    return run


@subcommand("sim-render", "render a scene with the expert's (and optionally a predicted) pick/place points as a PNG")
def _sim_render(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("--task-family", default="l1_placement", help="ONE task family (default: l1_placement)")
    p.add_argument("--seed", type=int, default=0, help="scene seed (default: 0)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--predicted", help="action text to draw next to the expert's actions (default: none)")
    p.add_argument("--image-size", type=int, nargs=2, default=(224, 224), metavar=("W", "H"),
                   help="camera image size (default: 224 224)")  # fmt: skip
    p.add_argument("--upscale", type=int, default=3, help="enlarge the picture for legibility (default: 3)")
    p.add_argument("--clean", action="store_true",
                   help="write the frame the model sees (camera size, nothing drawn): the input for llara predict (default: off)")  # fmt: skip

    def run(args: argparse.Namespace) -> int:
        from llara_core.fileio import atomic_write_bytes
        from llara_core.images import encode_png
        from llara_core.language.actions import parse_actions, render_actions
        from llara_core.language.annotate import draw_comparison
        from llara_core.sim.expert import expert_scene
        from llara_core.sim.tasks import check_families

        families = check_families(args.task_family)
        if len(families) != 1:
            raise UsageError(f"sim-render draws one scene: give one --task-family, not {list(families)}")
        if args.clean and args.predicted is not None:
            raise UsageError("--clean draws nothing: leave out --predicted")
        predicted = parse_actions(args.predicted) if args.predicted is not None else None
        if predicted is not None and not predicted.ok:
            raise UsageError(f"--predicted does not parse: {[e.message for e in predicted.errors]}")
        task, result = expert_scene(families[0], args.seed, *args.image_size)
        if result.episode is None:
            print(f"expert failed: {result.reason}", file=sys.stderr)
            return 1
        frame, truth = result.episode.frames[0].image, result.episode.action_steps()
        if args.clean:
            atomic_write_bytes(Path(args.out), encode_png(frame))
            print(f"{args.out}: {task.instruction!r} (the camera frame, {args.image_size[0]}x{args.image_size[1]})")
        else:
            img = draw_comparison(frame, truth, predicted.steps if predicted else (), args.upscale)
            atomic_write_bytes(Path(args.out), encode_png(img))
            print(f"{args.out}: {task.instruction!r} (green = expert, magenta = predicted)")
        print(render_actions(truth))
        return 0

    return run


# -- model ---------------------------------------------------------------------------------------------
@subcommand(
    "build-tiny-model",
    "build a tiny LLaVA (random weights) with a tokenizer trained on datasets' text; no download",
)
def _build_tiny(p: argparse.ArgumentParser) -> Handler:
    from llara_core.model.tiny import TinySpec

    p.add_argument(
        "--corpus", nargs="+", required=True, help="dataset folders whose prompts/answers train the tokenizer"
    )
    p.add_argument("--out", required=True, help="model folder to write")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    add_arguments(p, TinySpec)

    def run(args: argparse.Namespace) -> int:
        from llara_core.model.tiny import build_tiny_model, dataset_texts

        corpus = dataset_texts([existing_path(c, "corpus dataset") for c in args.corpus])
        if not corpus:
            raise UsageError("the corpus datasets hold no text")
        path = build_tiny_model(args.out, corpus, from_args(TinySpec, args), seed=args.seed)
        print(f"tiny LLaVA written to {path} (tokenizer trained on {len(corpus)} texts)")
        return 0

    return run


@subcommand(
    "pretrain-vision",
    "pretrain a tiny model's vision tower on the datasets' object boxes (in place), before `llara train`",
)
def _pretrain_vision(p: argparse.ArgumentParser) -> Handler:
    from llara_core.model.pretrain_vision import PretrainVisionConfig

    p.add_argument("--model", required=True, help="tiny model folder (updated in place)")
    p.add_argument("--data", nargs="*", default=[], help="dataset folders with 'detection' records (default: none)")
    add_arguments(p, PretrainVisionConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.datasets.reader import existing_specs
        from llara_core.model.folder import check_model_folder
        from llara_core.model.pretrain_vision import pretrain_vision_tower
        from llara_core.sim.demonstrations import scene_boxes
        from llara_core.sim.tasks import TRAIN_FAMILIES

        c = from_args(PretrainVisionConfig, args)
        model = check_model_folder(expand_path(args.model))
        data = existing_specs(args.data)
        scenes = scene_boxes(list(TRAIN_FAMILIES), c.scenes, seed=c.scene_seed, progress=True) if c.scenes else []
        m = pretrain_vision_tower(model, data, c, scenes)
        print(json.dumps(m))
        return 0

    return run


@subcommand(
    "train",
    "finetune a local image-text-to-text model on LLaVA-format datasets (transformers Trainer)",
    "Loss on assistant tokens only; task kinds mixed by --mix; train/val split by episode; checkpoints in "
    "OUT/checkpoints (--resume continues with the checkpoint's weights, optimizer and schedule); LoRA for "
    "pretrained bases, full finetuning for tiny models. --config takes the same keys as YAML. "
    "Multi-GPU: accelerate launch -m llara_core.apps.cli train ...",
)
def _train(p: argparse.ArgumentParser) -> Handler:
    from llara_core.model.train import TrainConfig

    p.add_argument("--data", nargs="+", required=True,
                   help="dataset folders, or LLaVA JSON files as FILE.json[=IMAGE_ROOT] (e.g. LLaRA's released data)")  # fmt: skip
    p.add_argument("--model", required=True, help="base model folder (local)")
    return _training(p, TrainConfig)


@subcommand(
    "finetune",
    "adapt a trained model (e.g. models/llara-tiny-sim) to your own recorded demonstrations",
    "The recipe of the model card for a few recorded episodes: vision tower frozen, the kinds the model acts "
    "from (inbc, d_inbc, localization), lr 2e-5, 100 steps; every default below. Same flags as llara train.",
)
def _finetune(p: argparse.ArgumentParser) -> Handler:
    from llara_core.model.train import FinetuneConfig

    p.add_argument("model", help="the trained model folder to start from (never written; see --out)")
    p.add_argument("data", nargs="+", help="dataset folders (llara convert-bags), or FILE.json[=IMAGE_ROOT]")
    return _training(p, FinetuneConfig)


def _training(p: argparse.ArgumentParser, cls: type[TrainConfig]) -> Handler:
    """The shared flags and handler of ``train`` and ``finetune`` (their configs differ in defaults only)."""
    p.add_argument("--out", required=True, help="output model folder (a new one: the base model is never overwritten)")
    p.add_argument(
        "--overwrite", action="store_true", help="allow --out to be the base model or a shipped model (default: off)"
    )
    p.add_argument("--config", help=f"YAML file with {cls.__name__} keys; flags override it (default: none)")
    add_arguments(p, cls)

    def run(args: argparse.Namespace) -> int:
        from llara_core.datasets.reader import existing_specs
        from llara_core.model.folder import check_model_folder
        from llara_core.model.train import check_output, metrics_summary, train

        cfg: TrainConfig = from_args(cls, args, args.config)
        model = check_model_folder(expand_path(args.model))
        check_output(model, expand_path(args.out), args.overwrite)
        data = existing_specs(args.data)
        metrics = train(data, model, expand_path(args.out), cfg.train_config())
        if os.environ.get("RANK", "0") == "0":  # torchrun / accelerate launch start one process per rank
            print(f"model written to {args.out}: {metrics_summary(metrics)}")
        return 0

    return run


def _backend_arguments(p: argparse.ArgumentParser) -> None:
    """The policy backend's flags (PolicyConfig; the server's by RemoteConfig's leaf names), for predict and eval."""
    from llara_core.model.policy import PolicyConfig, RemoteConfig

    add_arguments(p, PolicyConfig, exclude=("remote",))
    add_arguments(p, RemoteConfig)


def _policy_config(args: argparse.Namespace) -> PolicyConfig:
    """The backend the flags name, checked now (model folders exist; the openai backend takes no model folder)."""
    import dataclasses

    from llara_core.model.folder import check_model_folder
    from llara_core.model.policy import PolicyConfig, RemoteConfig

    cfg = dataclasses.replace(from_args(PolicyConfig, args), remote=from_args(RemoteConfig, args))
    if cfg.backend == "openai":
        if cfg.model or cfg.adapter:
            raise UsageError("--model/--adapter are for --backend transformers; the server holds the model")
        return cfg
    if not cfg.model:
        raise UsageError("--model is required with --backend transformers")
    adapter = str(check_model_folder(cfg.adapter)) if cfg.adapter else None
    return dataclasses.replace(cfg, model=str(check_model_folder(cfg.model)), adapter=adapter)


@subcommand("predict", "ask a model about one image: the next action for an instruction, or any --question")
def _predict(p: argparse.ArgumentParser) -> Handler:
    _backend_arguments(p)
    p.add_argument("--image", required=True, help="image file (PNG, JPEG)")
    q = p.add_mutually_exclusive_group(required=True)
    q.add_argument("--instruction", help="task instruction: the inBC prompt is built around it")
    q.add_argument("--question", help="a raw LLaVA question (<image>\\n...) instead of the inBC prompt")

    def run(args: argparse.Namespace) -> int:
        import numpy as np
        from PIL import Image, UnidentifiedImageError

        from llara_core.model.policy import PolicyOutput, load_policy

        if args.instruction is not None and not args.instruction.strip():
            raise UsageError("--instruction is empty: give the task, e.g. 'put the red block into the bowl'")
        try:
            with Image.open(existing_path(args.image, "image")) as im:
                image = np.asarray(im.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:  # a folder, an unreadable or truncated file
            raise UsageError(f"{args.image} is not an image file ({exc})") from exc
        policy = load_policy(_policy_config(args))
        if args.question:  # a raw question (any task kind): answer, and parse it when it holds actions
            t0 = time.perf_counter()
            text = policy.generate([image], [args.question])[0]
            out = PolicyOutput.from_text(text, args.question, time.perf_counter() - t0)
        else:
            out = policy.act(image, args.instruction)
        print(out.text)
        print(json.dumps(out.to_dict(), indent=1))
        return 0 if out.ok else 1

    return run


@subcommand(
    "import-llava",
    "convert an original-format LLaVA-1.5 checkpoint (e.g. LLaRA's released policies) into a llava-hf model folder",
    "Offline: SRC is a local folder (config.json with model_type llava_llama, tokenizer, safetensors or .bin "
    "weights); --clip the local CLIP ViT-L/14-336 folder when SRC does not hold the vision tower. The result loads "
    "with llara predict/eval/serve and policy_node, and prompts with the llara profile (LLaRA's exact wording).",
)
def _import_llava(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("src", help="original LLaVA checkpoint folder")
    p.add_argument("--out", required=True, help="llava-hf model folder to write")
    p.add_argument("--clip", help="CLIP vision tower folder (default: the tower inside SRC)")

    def run(args: argparse.Namespace) -> int:
        from llara_core.model.import_llava import import_llava

        clip = existing_path(args.clip, "CLIP folder") if args.clip else None
        print(f"llava-hf model written to {import_llava(existing_path(args.src, 'checkpoint folder'), args.out, clip)}")
        return 0

    return run


@subcommand(
    "merge-lora",
    "merge a LoRA folder of llara train into a full model folder (for vLLM and other servers without PEFT)",
)
def _merge_lora(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("lora", help="LoRA folder written by llara train")
    p.add_argument("--out", required=True, help="the full model folder to write")

    def run(args: argparse.Namespace) -> int:
        from llara_core.model.train import merge_lora

        print(f"merged model written to {merge_lora(existing_path(args.lora, 'LoRA folder'), args.out)}")
        return 0

    return run


@subcommand(
    "serve",
    "serve a model over an OpenAI-compatible HTTP API (POST /v1/chat/completions, GET /v1/models, GET /health)",
    "For the policy on a GPU server and the nodes on the robot computer: policy_node with backend openai (or "
    "llara predict/eval --backend openai) sends each camera frame and LLaRA prompt here. Binds to 127.0.0.1 "
    "unless --host says otherwise; set --api-key-env to require a bearer key.",
)
def _serve(p: argparse.ArgumentParser) -> Handler:
    from llara_core.serving.server import ServeConfig

    add_arguments(p, ServeConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.serving.server import serve

        serve(from_args(ServeConfig, args))
        return 0

    return run


@subcommand("eval", "closed-loop evaluation of a model in the simulator (LLaRA's re-query loop)")
def _eval(p: argparse.ArgumentParser) -> Handler:
    from llara_core.apps.evaluate import EvalConfig

    _backend_arguments(p)
    p.add_argument("--out", help="folder for eval.json, eval.md, eval.png (default: print only)")
    p.add_argument(
        "--title", default="closed-loop success", help="title of the table and chart (default: closed-loop success)"
    )
    p.add_argument("--config", help="YAML file with EvalConfig keys; flags override it (default: none)")
    add_arguments(p, EvalConfig)

    def run(args: argparse.Namespace) -> int:
        import functools

        from llara_core.apps.evaluate import evaluate, markdown_table
        from llara_core.model.policy import load_policy

        c = from_args(EvalConfig, args, args.config)
        res = evaluate(functools.partial(load_policy, _policy_config(args)), c, args.out, title=args.title)
        print(markdown_table(res["summary"], args.title))
        print(f"inference latency p50: {1000 * (res['summary']['latency_p50_s'] or 0):.1f} ms")
        for r in res["episodes"]:
            if not r["success"] and r["reason"].startswith("unparseable"):
                print(f"  {r['family']} seed {r['seed']}: {r['reason'][:200]}", file=sys.stderr)
        return 0

    return run


# -- the robot side ----------------------------------------------------------------------------------
@subcommand(
    "plan",
    "action text -> the waypoints the action node would send (or why it would refuse); arm off, nothing moves",
    "Reads the action node's parameters (a ROS params file such as config/action.yaml, or a plain YAML of the same "
    "keys), loads the robot model, camera calibration and workspace once, and plans TEXT or every line of --jsonl "
    "(one JSON-encoded action text per line; '-' reads stdin) into one JSON line each: {ok, reason, steps: "
    "[{waypoints: [[x, y, z, qx, qy, qz, qw], ...], gripper: [...]}]}. Exit code 1 if any input was refused.",
)
def _plan(p: argparse.ArgumentParser) -> Handler:
    p.add_argument("text", nargs="?", help="one action text (or give --jsonl)")
    p.add_argument("--config", required=True, help="action node parameters (ROS params file or YAML)")
    p.add_argument("--node", default="action_node", help="node name in a ROS params file (default: action_node)")
    p.add_argument("--jsonl", help="file with one JSON-encoded action text per line, '-' for stdin (default: none)")
    p.add_argument("--image", help="camera image for the grasp refinement (default: none: points as given)")
    p.add_argument("--camera-info", help="calibration YAML overriding the config's camera_info_file (default: none)")
    p.add_argument("--no-ik", action="store_true", help="skip the IK check of every waypoint (faster; default: check)")

    def run(args: argparse.Namespace) -> int:
        import dataclasses

        import numpy as np

        from llara_core.config import load_node_config
        from llara_core.planning import Planner, RobotConfig, load_kinematics
        from llara_core.planning.planner import NODE_ONLY_KEYS

        cfg = load_node_config(RobotConfig, existing_path(args.config, "config"), args.node, ignore=NODE_ONLY_KEYS)
        if args.camera_info:
            cfg = dataclasses.replace(cfg, camera_info_file=str(existing_path(args.camera_info, "calibration file")))
        kin = None if args.no_ik or not cfg.urdf else load_kinematics(cfg)
        planner = Planner(cfg, kinematics=kin)
        image = None
        if args.image:
            from PIL import Image

            with Image.open(existing_path(args.image, "image")) as im:
                image = np.asarray(im.convert("RGB"))
        if (args.text is None) == (args.jsonl is None):
            raise UsageError("give one action TEXT or --jsonl FILE")
        if args.text is not None:
            out = planner.plan_json(args.text, image)
            print(json.dumps(out))
            return 0 if out["ok"] else 1
        refused = 0
        stream = sys.stdin if args.jsonl == "-" else open(existing_path(args.jsonl, "jsonl file"))
        with stream:
            for out in planner.plan_lines(stream, image):
                refused += not out["ok"]
                sys.stdout.write(json.dumps(out) + "\n")
        return 1 if refused else 0

    return run


# -- the demo ----------------------------------------------------------------------------------------
@subcommand(
    "demo",
    "every offline stage of LLaRA's loop against the simulator's ground truth (make demo runs it over ROS too)",
    "Runs the scripted expert in the MuJoCo tabletop, writes the demonstrations as a LLaVA dataset (all task kinds) "
    "and as rosbag2 episodes, converts the bags back and compares every record (prompt and answer) with the sim's, "
    "lifts every inBC answer to 3-D through the camera model and reports the error against the ground-truth "
    "gripper positions, draws the actions on a camera image (OUT/actions.png), and lets the shipped demo model "
    "drive the arm in closed loop on held-out seeds (OUT/eval, OUT/prediction.png).",
)
def _demo(p: argparse.ArgumentParser) -> Handler:
    from llara_core.apps.pipeline_check import DemoConfig

    add_arguments(p, DemoConfig)

    def run(args: argparse.Namespace) -> int:
        from llara_core.apps.pipeline_check import DemoError, run_demo

        try:
            run_demo(from_args(DemoConfig, args))
        except DemoError as exc:
            print(f"FAIL: {exc}", file=sys.stderr)
            return 1
        return 0

    return run


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="llara",
        description="LLaRA for ROS 2: action text, datasets, models and the end-to-end demo. "
        "Run 'llara <command> --help' for each command.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_text, description, add in _COMMANDS:
        sp = sub.add_parser(name, help=help_text, description=description or help_text)
        sp.set_defaults(func=add(sp))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (LlaraError, FileNotFoundError, NotADirectoryError) as exc:
        print(f"llara {args.command}: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `llara predict … | head -1`: the reader left; end quietly, as a C tool would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 141


if __name__ == "__main__":
    sys.exit(main())
