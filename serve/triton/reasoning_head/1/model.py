"""Triton Python backend: the reasoning head of a sonoflow model, the whole
greedy generation in one request. The loop is serve/umind_head.py (the same
module the MLServer runtime uses), which serve/triton/fill.sh copies beside
this file; the model directory is at `<version>/<model_dir>` (config
parameter `model_dir`, default "model"). The contract (tensor names, dtypes,
shapes) is the one in config.pbtxt, checked against the model at load.
"""

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

import umind_head as uh


def _param(config: dict, key: str, default: str) -> str:
    return config.get("parameters", {}).get(key, {}).get("string_value", default)


def _error(message: str, invalid_argument: bool):
    code = getattr(pb_utils.TritonError, "INVALID_ARG" if invalid_argument else "INTERNAL", None)
    try:
        return pb_utils.TritonError(message, code) if code is not None else pb_utils.TritonError(message)
    except TypeError:  # Python backends before error codes
        return pb_utils.TritonError(message)


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        model = uh.ModelDir(version_dir / _param(config, "model_dir", "model"))
        self.head = uh.HeadGenerator(model, threads=int(_param(config, "threads", "1")))
        inputs, outputs = self.head.contract()
        served_in = {t["name"] for t in config.get("input", [])}
        served_out = {t["name"] for t in config.get("output", [])}
        want_in, want_out = {t.name for t in inputs}, {t.name for t in outputs}
        if served_in != want_in or served_out != want_out:
            raise pb_utils.TritonModelException(
                f"config.pbtxt serves inputs {sorted(served_in)} and outputs {sorted(served_out)}; "
                f"the model's head takes {sorted(want_in)} and gives {sorted(want_out)}"
            )
        self.input_names = sorted(want_in)
        self.identity = self.head.identity()

    def execute(self, requests):
        responses = []
        for request in requests:
            inputs = {}
            for name in self.input_names:
                t = pb_utils.get_input_tensor_by_name(request, name)
                if t is not None:
                    inputs[name] = t.as_numpy()
            try:
                outputs = self.head.serve(inputs)
            except uh.ContractError as e:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=_error(str(e), True)))
                continue
            except uh.ModelError as e:
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=_error(str(e), False)))
                continue
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(a)) for name, a in outputs.items()]
            try:
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors, parameters=self.identity))
            except TypeError:  # Python backends without response parameters
                responses.append(pb_utils.InferenceResponse(output_tensors=tensors))
        return responses

    def finalize(self):
        self.head = None
