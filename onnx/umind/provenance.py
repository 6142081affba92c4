"""What a training run records about itself, so that the committed model can
be traced to the commands that made it: train-log.json lists every stage
onnx/train.sh ran (train, the exports, the fine-tunes) with its command line,
working folder, arguments, folders read and written, start time and seconds;
the data each stage saw is described from the exports' own manifest.json.

Plain Python (no torch, no numpy): card.py reads the same files.

    {"format": 2, "stages": [{"stage": "train", "command": "python -m umind.train ...", ...}, ...]}

Logs of format 1 (before stages: the train run's "args", "seconds", "log"
and its "finetune_runs") are read as stages without a command or start time.
"""
import datetime
import json
import os
import pathlib
import shlex
import sys
import time

FORMAT = 2
ROOT = pathlib.Path(__file__).resolve().parents[2]
# Written by onnx/train.sh beside each phantom export: the command and its seconds.
EXPORT_COMMAND = "export-command.json"


def command(module, argv=None):
    """The command line of `PYTHON -m umind.MODULE ARGS` as it was run (the
    interpreter relative to the working folder when it lies in the repository)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    python = pathlib.Path(sys.executable)
    try:
        python.absolute().relative_to(ROOT)
        python = os.path.relpath(python.absolute(), pathlib.Path.cwd())
    except ValueError:
        python = "python3"
    return " ".join([str(python), "-m", f"umind.{module}", shlex.join(argv)]).rstrip()


def working_folder():
    """The working folder relative to the repository (the paths in a command are relative to it)."""
    cwd = pathlib.Path.cwd().resolve()
    try:
        return str(cwd.relative_to(ROOT)) or "."
    except ValueError:
        return str(cwd)


def iso(seconds):
    """A time.time() value as an ISO 8601 UTC time to the second."""
    return datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat(timespec="seconds")


def stage(name, module, argv, args, started, **extra):
    """One stage's record; `started` is its time.time() at the start (`extra`
    may give its own "seconds": a run that stopped and went on)."""
    return {
        "stage": name,
        "command": command(module, argv),
        "cwd": working_folder(),
        "args": dict(vars(args)),
        "started": iso(started),
        "seconds": round(time.time() - started, 1),
        **extra,
    }


def split(export_dir, name=None):
    """A phantom export as its manifest describes it (None values where it does not say)."""
    export_dir = pathlib.Path(export_dir)
    manifest = json.loads((export_dir / "manifest.json").read_text())
    sequences = manifest.get("sequences", [])
    configs = [s.get("config", {}) for s in sequences]
    depths = {}
    for c in configs:
        if "probe" in c and "depth_cm" in c:
            lo, hi = depths.get(c["probe"], (c["depth_cm"], c["depth_cm"]))
            depths[c["probe"]] = (min(lo, c["depth_cm"]), max(hi, c["depth_cm"]))
    record = {
        "split": name or export_dir.name,
        "path": str(export_dir),
        "seed": manifest.get("seed"),
        "frames": manifest.get("frames"),
        "width": manifest.get("width"),
        "height": manifest.get("height"),
        # A randomised export draws each sequence's frame size.
        "frame_sizes": sorted({f"{c['width']}x{c['height']}" for c in configs if "width" in c and "height" in c}),
        "sequences": len(sequences),
        "sequence_frames": sorted({s.get("frames") for s in sequences if s.get("frames") is not None}),
        "lesions_per_scene": sorted({c["lesions"] for c in configs if "lesions" in c}),
        "depth_cm": {probe: list(r) for probe, r in sorted(depths.items())},
        "generator": manifest.get("generator"),
    }
    made = export_dir / EXPORT_COMMAND
    if made.exists():
        record["export"] = json.loads(made.read_text())
    return record


def upgrade(log):
    """A train log in the current format (format 1 logs become stages)."""
    if log.get("format", 1) >= 2:
        return log
    stages = []
    if "args" in log:
        args = log["args"]
        stages.append({"stage": "train", "command": None, "args": args, "out": args.get("out"),
                       "seconds": log.get("seconds"), "log": log.get("log", [])})
    for run in log.get("finetune_runs", []):
        args = run.get("args", {})
        stages.append({"stage": "finetune", "command": None, "args": args, "checkpoint": args.get("checkpoint"),
                       "out": args.get("out"), "seconds": run.get("seconds"), "log": run.get("log", [])})
    return {"format": FORMAT, "upgraded_from": log.get("format", 1), "stages": stages}


def read_log(path):
    return upgrade(json.loads(pathlib.Path(path).read_text()))


def write_log(path, log):
    pathlib.Path(path).write_text(json.dumps(log, indent=1) + "\n")


def merge(*logs):
    """The stages of several logs, each once, in the order they ran (a stage
    without a start time keeps its place before those that have one)."""
    seen, stages = set(), []
    for log in logs:
        for s in log["stages"]:
            key = (s["stage"], s.get("started"), s.get("command"), json.dumps(s.get("args"), sort_keys=True))
            if key not in seen:
                seen.add(key)
                stages.append(s)
    order = sorted(range(len(stages)), key=lambda i: (stages[i].get("started") is not None, stages[i].get("started") or "", i))
    return {"format": FORMAT, "stages": [stages[i] for i in order]}
