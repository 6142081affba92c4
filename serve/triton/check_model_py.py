"""Runs serve/triton/reasoning_head/1/model.py as Triton's Python backend
would call it (initialize, execute, finalize), with a stand-in for
`triton_python_backend_utils` (Triton cannot be installed here), on a
repository filled by fill.sh: its responses must equal umind_head's own, and
a malformed request must come back as an error response, not an exception.

  .venv-serve/bin/python serve/triton/check_model_py.py OUT   (after fill.sh OUT)
"""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
from google.protobuf import json_format, text_format
from tritonclient.grpc import model_config_pb2 as mc


def stand_in() -> types.ModuleType:
    pb = types.ModuleType("triton_python_backend_utils")

    class TritonError(Exception):
        INVALID_ARG, INTERNAL = 3, 13

        def __init__(self, message, code=13):
            super().__init__(message)
            self.code = code

        def message(self):
            return str(self)

    class TritonModelException(Exception):
        pass

    class Tensor:
        def __init__(self, name, array):
            self._name, self._array = name, array

        def name(self):
            return self._name

        def as_numpy(self):
            return self._array

    class InferenceResponse:
        def __init__(self, output_tensors, error=None, parameters=None):
            self.output_tensors, self.error, self.parameters = output_tensors, error, parameters

    class InferenceRequest:
        def __init__(self, tensors):
            self.tensors = {t.name(): t for t in tensors}

    pb.TritonError, pb.TritonModelException = TritonError, TritonModelException
    pb.Tensor, pb.InferenceResponse, pb.InferenceRequest = Tensor, InferenceResponse, InferenceRequest
    pb.get_input_tensor_by_name = lambda request, name: request.tensors.get(name)
    return pb


def main() -> int:
    repo = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    if repo is None or not (repo / "reasoning_head" / "1" / "model.py").exists():
        print("usage: check_model_py.py OUT (a repository filled by serve/triton/fill.sh)", file=sys.stderr)
        return 2
    pb = stand_in()
    sys.modules["triton_python_backend_utils"] = pb
    version_dir = repo / "reasoning_head" / "1"
    sys.path.append(str(version_dir))  # as the Python backend's stub does
    spec = importlib.util.spec_from_file_location("model", version_dir / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import umind_head as uh

    cfg = mc.ModelConfig()
    text_format.Parse((repo / "reasoning_head" / "config.pbtxt").read_text(), cfg)
    model = module.TritonPythonModel()
    model.initialize({
        "model_config": json.dumps(json_format.MessageToDict(cfg, preserving_proto_field_name=True)),
        "model_repository": str(repo / "reasoning_head"),
        "model_version": "1",
    })
    head = model.head
    rng = np.random.default_rng(1)
    # Image tokens from the encoder on a noise frame (real graph, made-up picture).
    enc = uh.GraphRunner(head.model.file("vision_encoder"))
    pixels = rng.normal(size=(1, 1, 256, 256)).astype(np.float32)
    tokens = enc.run({"pixel_values": pixels})[head.image_name]
    good = pb.InferenceRequest([pb.Tensor(head.image_name, tokens), pb.Tensor("prompt_ids", np.array([[3]], np.int64))])
    bad = pb.InferenceRequest([pb.Tensor(head.image_name, tokens[:, :3]), pb.Tensor("prompt_ids", np.array([[3]], np.int64))])
    r_good, r_bad = model.execute([good, bad])
    want = head.serve({head.image_name: tokens, "prompt_ids": np.array([[3]], np.int64)})
    problems = []
    if r_good.error is not None:
        problems.append(f"a good request failed: {r_good.error}")
    else:
        got = {t.name(): t.as_numpy() for t in r_good.output_tensors}
        for name in ("tokens", "truncated", "task_written", "task_hidden_states", "kernels"):
            if not np.array_equal(got[name], want[name]):
                problems.append(f"{name} differs")
        served = {t.name for t in cfg.output}
        if set(got) != served:
            problems.append(f"outputs {sorted(got)} are not config.pbtxt's {sorted(served)}")
        print(f"model.py: {got['tokens'].shape[1]} tokens, kernels {list(got['kernels'].shape)}, parameters {r_good.parameters}")
    if r_bad.error is None or getattr(r_bad.error, "code", None) != pb.TritonError.INVALID_ARG:
        problems.append(f"a malformed request gave {r_bad.error!r}, not an INVALID_ARG error")
    else:
        print(f"malformed request refused: {r_bad.error}")
    model.finalize()
    for p in problems:
        print("PROBLEM:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
