"""MLServer 1.7 runtimes for a sonoflow model directory (docs/scale-out.md).

* `ReasoningHead`: the reasoning head as one model; generation runs here,
  one request per keyframe (serve/umind_head.py holds the loop).
* `OnnxGraph`: one per-frame graph (vision_encoder, mask_decoder) as a plain
  onnxruntime model; MLServer 1.7 ships no ONNX runtime of its own.

Each model's `parameters.uri` in its model-settings.json is the model
directory (relative paths are from the model-settings.json); the
environment variable SONOFLOW_MODEL_DIR, when set, replaces it for every
model (serve/run.sh --model sets it). `parameters.extra`:
  graph    (OnnxGraph) the manifest's graph role to serve;
  threads  intra-op threads per session (default: SONOFLOW_SERVE_THREADS, else 1);
  verify   check the files' SHA-256 against the manifest at load (default true).
"""

from __future__ import annotations

import logging
import os

import numpy as np
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.errors import InferenceError, MLServerError
from mlserver.types import (
    InferenceRequest,
    InferenceResponse,
    MetadataTensor,
    Parameters,
    ResponseOutput,
)
from mlserver.utils import get_model_uri

import umind_head
from umind_head import ContractError, GraphRunner, HeadGenerator, ModelDir, ModelError

log = logging.getLogger("mlserver.sonoflow")

_DATATYPES = {
    np.dtype(np.float32): "FP32",
    np.dtype(np.float64): "FP64",
    np.dtype(np.int64): "INT64",
    np.dtype(np.int32): "INT32",
    np.dtype(np.uint8): "UINT8",
    np.dtype(np.bool_): "BOOL",
}


def _output(name: str, a: np.ndarray) -> ResponseOutput:
    """The array as it is: MLServer's NumpyCodec would turn [1] into [1, 1]."""
    return ResponseOutput(
        name=name,
        shape=list(a.shape),
        datatype=_DATATYPES[a.dtype],
        data=a.reshape(-1).tolist(),
    )


def _metadata(specs) -> list:
    return [MetadataTensor(name=s.name, datatype=s.datatype, shape=list(s.shape)) for s in specs]


class _SonoflowModel(MLModel):
    async def _model_dir(self) -> ModelDir:
        extra = (self.settings.parameters.extra if self.settings.parameters else None) or {}
        override = os.environ.get("SONOFLOW_MODEL_DIR")
        root = override or await get_model_uri(self.settings)
        self._threads = int(extra.get("threads", umind_head.env_threads()))
        self._extra = extra
        return ModelDir(root, verify=bool(extra.get("verify", True)))

    def _decode(self, payload: InferenceRequest) -> dict:
        return {i.name: NumpyCodec.decode_input(i) for i in payload.inputs}

    def _respond(self, outputs: dict, payload: InferenceRequest, parameters=None) -> InferenceResponse:
        wanted = [o.name for o in payload.outputs] if payload.outputs else list(outputs)
        missing = [n for n in wanted if n not in outputs]
        if missing:
            raise InferenceError(f"{self.name} has no outputs {missing}; it has {list(outputs)}")
        return InferenceResponse(
            model_name=self.name,
            model_version=self.version,
            id=payload.id,
            parameters=Parameters(**parameters) if parameters else None,
            outputs=[_output(n, outputs[n]) for n in wanted],
        )


class ReasoningHead(_SonoflowModel):
    """The head: image tokens + prompt ids in; tokens, task hidden states and
    kernels out. Not batched: one keyframe per request (see model-settings)."""

    async def load(self) -> bool:
        try:
            model = await self._model_dir()
            self._head = HeadGenerator(model, threads=self._threads)
        except ModelError as e:
            raise MLServerError(f"{self.name}: {e}", 500) from None
        inputs, outputs = self._head.contract()
        self.inputs = _metadata(inputs)
        self.outputs = _metadata(outputs)
        self._identity = self._head.identity()
        log.info(
            "%s: %s from %s, %d threads, max_positions %d, task tokens %s",
            self.name, self._identity["sonoflow_model"], model.root, self._threads,
            self._head.max_positions, self._head.task_tokens,
        )
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = self._decode(payload)
        try:
            outputs = self._head.serve(inputs)
        except ContractError as e:
            raise InferenceError(f"{self.name}: {e}") from None
        except ModelError as e:
            raise MLServerError(f"{self.name}: {e}", 500) from None
        return self._respond(outputs, payload, self._identity)


class OnnxGraph(_SonoflowModel):
    """One graph of the model directory, by role (`parameters.extra.graph`),
    served as onnxruntime runs it: inputs and outputs by name. Batches along
    the first axis when the model-settings enable adaptive batching."""

    async def load(self) -> bool:
        try:
            model = await self._model_dir()
            role = self._extra.get("graph") or self.name
            self._runner = GraphRunner(model.file(role), threads=self._threads)
        except ModelError as e:
            raise MLServerError(f"{self.name}: {e}", 500) from None
        inputs, outputs = self._runner.contract()
        self.inputs = _metadata(inputs)
        self.outputs = _metadata(outputs)
        self._identity = {"sonoflow_model": f"{model.name} {model.version}"}
        log.info("%s: %s of %s, %d threads", self.name, role, model.root, self._threads)
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        inputs = self._decode(payload)
        wanted = [o.name for o in payload.outputs] if payload.outputs else None
        try:
            outputs = self._runner.run(inputs, wanted)
        except ContractError as e:
            raise InferenceError(f"{self.name}: {e}") from None
        return self._respond(outputs, payload, self._identity)
