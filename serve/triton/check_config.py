"""Checks a Triton model repository for a sonoflow model without Triton
(which cannot be installed here): every config.pbtxt parses as Triton's
ModelConfig (the proto tritonclient ships, tritonclient.grpc.model_config_pb2),
its name is its folder's, and its tensors are the model's:

* onnxruntime models: names, dtypes and dims against the ONNX graph of the
  same role in the model directory (the batch dimension left out when
  max_batch_size > 0; a symbolic dimension must be -1);
* reasoning_head (python): against serve/umind_head.py's contract;
* ensembles: each step's model exists, its maps name that model's tensors
  with matching dtypes, every ensemble input is used and output produced.

  .venv-serve/bin/python serve/triton/check_config.py [REPOSITORY] [--model DIR]

REPOSITORY defaults to serve/triton (the templates) and also takes one that
serve/triton/fill.sh filled. Exit status 1 on any problem.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2 as mc

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
import umind_head as uh  # noqa: E402

KSERVE_TO_TRITON = {
    "FP32": "TYPE_FP32", "FP16": "TYPE_FP16", "FP64": "TYPE_FP64", "INT64": "TYPE_INT64",
    "INT32": "TYPE_INT32", "UINT8": "TYPE_UINT8", "BOOL": "TYPE_BOOL", "BYTES": "TYPE_STRING",
}


def dtype_name(t) -> str:
    return mc.DataType.Name(t)


def compare(problems, model, kind, served, expected, batched):
    """served: config tensors; expected: TensorSpec list with full shapes."""
    exp = {t.name: t for t in expected}
    got = {t.name: t for t in served}
    if set(exp) != set(got):
        problems.append(f"{model}: {kind} {sorted(got)} but the model has {sorted(exp)}")
        return
    for name, t in got.items():
        e = exp[name]
        if dtype_name(t.data_type) != KSERVE_TO_TRITON.get(e.datatype, e.datatype):
            problems.append(f"{model}: {kind} {name} is {dtype_name(t.data_type)}, the model's is {e.datatype}")
        shape = list(e.shape)
        if batched:
            if not shape or shape[0] not in (-1,):
                problems.append(f"{model}: {kind} {name}: max_batch_size > 0 but the graph's first dim is {shape[:1]}, not a batch")
                continue
            shape = shape[1:]
        if list(t.dims) != shape:
            problems.append(f"{model}: {kind} {name} dims {list(t.dims)}, the model's are {shape}")
        if kind == "input" and getattr(e, "optional", False) != t.optional:
            problems.append(f"{model}: input {name} optional is {t.optional}, the contract says {e.optional}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("repository", nargs="?", type=Path, default=HERE)
    ap.add_argument("--model", type=Path, default=HERE.parent.parent / "onnx" / "umind-nano")
    args = ap.parse_args()

    model = uh.ModelDir(args.model)
    configs, problems = {}, []
    for path in sorted(args.repository.glob("*/config.pbtxt")):
        cfg = mc.ModelConfig()
        try:
            text_format.Parse(path.read_text(), cfg)
        except text_format.ParseError as e:
            problems.append(f"{path}: {e}")
            continue
        if cfg.name != path.parent.name:
            problems.append(f"{path}: name {cfg.name!r} is not its folder's ({path.parent.name!r})")
        configs[cfg.name] = cfg
    if not configs:
        print(f"no */config.pbtxt under {args.repository}", file=sys.stderr)
        return 1

    contracts = {}
    for name, cfg in configs.items():
        if cfg.platform == "ensemble":
            continue
        batched = cfg.max_batch_size > 0
        if cfg.HasField("dynamic_batching") and not batched:
            problems.append(f"{name}: dynamic_batching needs max_batch_size > 0")
        if cfg.backend == "onnxruntime":
            runner = uh.GraphRunner(model.file(name))
            ins, outs = runner.contract()
        elif cfg.backend == "python" and name == "reasoning_head":
            ins, outs = uh.HeadGenerator(model).contract()
            if batched:
                problems.append(f"{name}: the head must not be batched (max_batch_size 0)")
        else:
            problems.append(f"{name}: backend {cfg.backend!r} is not one this check knows")
            continue
        compare(problems, name, "input", cfg.input, ins, batched)
        compare(problems, name, "output", cfg.output, outs, batched)
        contracts[name] = cfg

    for name, cfg in configs.items():
        if cfg.platform != "ensemble":
            continue
        tensors = {t.name: dtype_name(t.data_type) for t in cfg.input}
        used = set()
        for step in cfg.ensemble_scheduling.step:
            sub = configs.get(step.model_name)
            if sub is None:
                problems.append(f"{name}: step model {step.model_name!r} is not in the repository")
                continue
            sub_in = {t.name: dtype_name(t.data_type) for t in sub.input}
            sub_out = {t.name: dtype_name(t.data_type) for t in sub.output}
            if cfg.max_batch_size > sub.max_batch_size and sub.max_batch_size != 0:
                problems.append(f"{name}: max_batch_size {cfg.max_batch_size} above {step.model_name}'s")
            for key, value in step.input_map.items():
                if key not in sub_in:
                    problems.append(f"{name}: {step.model_name} has no input {key!r}")
                elif value not in tensors:
                    problems.append(f"{name}: tensor {value!r} is used before anything produces it")
                elif tensors[value] != sub_in[key]:
                    problems.append(f"{name}: {value!r} is {tensors[value]} but {step.model_name}.{key} takes {sub_in[key]}")
                used.add(value)
            missing = [t.name for t in sub.input if t.name not in step.input_map and not t.optional]
            if missing:
                problems.append(f"{name}: {step.model_name}'s inputs {missing} are not mapped")
            for key, value in step.output_map.items():
                if key not in sub_out:
                    problems.append(f"{name}: {step.model_name} has no output {key!r}")
                else:
                    tensors[value] = sub_out[key]
        for t in cfg.input:
            if t.name not in used:
                problems.append(f"{name}: input {t.name} is never used")
        for t in cfg.output:
            if t.name not in tensors:
                problems.append(f"{name}: output {t.name} is never produced")
            elif tensors[t.name] != dtype_name(t.data_type):
                problems.append(f"{name}: output {t.name} is {dtype_name(t.data_type)} but its step gives {tensors[t.name]}")

    for name, cfg in configs.items():
        kind = "ensemble" if cfg.platform == "ensemble" else cfg.backend
        print(f"{name}: {kind}, max_batch_size {cfg.max_batch_size}, "
              f"{len(cfg.input)} inputs, {len(cfg.output)} outputs")
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    print(f"{len(configs)} configs, {len(problems)} problems ({args.repository}, model {model.root})")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
