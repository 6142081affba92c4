"""The reasoning head of a sonoflow model as one served model: image tokens
and a prompt in; generated tokens, the task tokens' hidden states and their
kernels out. Generation runs here, server-side, in one call.

Shared by the MLServer runtime (serve/mlserver/sonoflow_runtimes.py) and the Triton
Python backend (serve/triton/reasoning_head/1/model.py); it knows neither.
It needs numpy and onnxruntime only (and tomli below CPython 3.11).

The loop is the Rust generator's (crates/inference/src/generator.rs), step
for step, so that greedy decoding gives the same token ids on the same
inputs with the same onnxruntime (1.31.1, CPU, graph optimisation "all",
one intra-op thread, sequential execution, as the head's sessions):

* prefill: the image tokens, then embed_tokens(prompt), as one sequence;
  attention_mask all ones, position_ids 0.., an empty cache;
* then one token at a time: embed_tokens([next]), the cache fed back;
* the greedy pick is the *last* index of the largest logit (Rust's
  `Iterator::max_by` with `f32::total_cmp`); logits are checked finite;
* a task token's hidden state is the decoder's `hidden_states` row of the
  step that fed that token (the last such step wins); task tokens in the
  prompt do not count; checked finite;
* it stops at the end token (not returned), after `max_new_tokens`, or when
  the next token would take a position at or past the decoder's position
  table (`graphs.decoder.max_positions`): both `truncated`;
* kernels: the kernel projector on the hidden states, in the manifest's
  `[default_kernels] tokens` order, only when every task token was written.
  They are not checked finite here: the Rust head refuses non-finite
  kernels itself (`rejected_kernels`) and keeps the report.

The served contract (names, dtypes, shapes) is `HeadGenerator.contract()`;
docs/scale-out.md lists it for umind-nano.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import onnxruntime as ort

try:
    import tomllib
except ModuleNotFoundError:  # CPython 3.10 (e.g. older Triton containers): pip install tomli
    import tomli as tomllib

MANIFEST = "sonoflow-model.toml"
EOS = "[EOS]"
# The Rust head's default and limits for `reasoning.max_new_tokens`.
DEFAULT_MAX_NEW_TOKENS = 96
MAX_NEW_TOKENS_LIMIT = 1024

# Served tensor names of the head (the image tokens' name is the manifest's).
PROMPT_IDS = "prompt_ids"
MAX_NEW_TOKENS = "max_new_tokens"
TOKENS = "tokens"
TRUNCATED = "truncated"
TASK_WRITTEN = "task_written"
TASK_HIDDEN = "task_hidden_states"
KERNELS = "kernels"
TTFT_MS = "time_to_first_token_ms"
TOTAL_MS = "generation_ms"


class ContractError(ValueError):
    """A request that does not follow the served contract (the client's fault)."""


class ModelError(RuntimeError):
    """A model directory that cannot be served, or a graph output that is not
    a result (NaN or infinity): the server's side."""


@dataclass(frozen=True)
class TensorSpec:
    """One served tensor: KServe v2 datatype and shape (-1: any size)."""

    name: str
    datatype: str
    shape: tuple
    optional: bool = False

    def as_dict(self) -> dict:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


class ModelDir:
    """A sonoflow model directory, read from its manifest (docs/model-contract.md)."""

    def __init__(self, root, verify: bool = True):
        self.root = Path(root).resolve()
        path = self.root / MANIFEST
        try:
            with open(path, "rb") as f:
                self.manifest = tomllib.load(f)
        except FileNotFoundError:
            raise ModelError(f"{path}: no manifest; give a sonoflow model directory") from None
        except tomllib.TOMLDecodeError as e:
            raise ModelError(f"{path}: {e}") from None
        m = self.manifest
        if m.get("format") != 1:
            raise ModelError(f"{path}: format {m.get('format')!r}; this server reads format 1")
        self.name = m.get("name", "?")
        self.version = m.get("version", "?")
        self.graphs = m.get("graphs", {})
        self.verify = verify
        self._hashed: dict = {}

    def graph(self, role: str) -> dict:
        g = self.graphs.get(role)
        if g is None:
            raise ModelError(f"{self.root / MANIFEST}: no [graphs.{role}]")
        return g

    def file(self, role_or_table: str, table: Optional[dict] = None) -> Path:
        """The file of graph `role` (or of `table`), inside the directory, its
        SHA-256 checked against the manifest when `verify`."""
        t = table if table is not None else self.graph(role_or_table)
        p = (self.root / t["file"]).resolve()
        if self.root not in p.parents:
            raise ModelError(f"{role_or_table}: {t['file']} is outside {self.root}")
        if not p.is_file():
            raise ModelError(f"{role_or_table}: {p} is missing")
        want = t.get("sha256")
        if self.verify and want and p not in self._hashed:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
            if h.hexdigest() != want:
                raise ModelError(
                    f"{p}: SHA-256 {h.hexdigest()} but the manifest says {want}; "
                    "the file and the manifest are from different exports"
                )
            self._hashed[p] = True
        return p

    def image_tokens(self) -> dict:
        """The vision encoder's output that is not the mask decoder's features."""
        features = self.manifest.get("decoder_io", {}).get("features")
        for t in self.graph("vision_encoder")["outputs"]:
            if t["name"] != features:
                return t
        raise ModelError("the vision encoder has no image-token output besides the features")

    def max_positions(self) -> int:
        n = self.graph("decoder").get("max_positions")
        if not isinstance(n, int) or n <= 0:
            raise ModelError("graphs.decoder.max_positions is missing; the head needs it")
        return n

    def vocabulary(self) -> dict:
        """Token to id, from a word-level tokenizer.json (umind-nano's kind)."""
        t = self.manifest.get("tokenizer")
        if t is None:
            raise ModelError("the manifest names no [tokenizer]; the head needs one")
        with open(self.file("tokenizer", t), encoding="utf-8") as f:
            tok = json.load(f)
        vocab = dict(tok.get("model", {}).get("vocab", {}))
        for added in tok.get("added_tokens", []):
            vocab[added["content"]] = added["id"]
        if not vocab:
            raise ModelError("the tokenizer has no vocabulary")
        return vocab

    def task_tokens(self) -> list:
        return list(self.manifest.get("default_kernels", {}).get("tokens", []))


def session(path: Path, threads: int = 1, providers=None) -> ort.InferenceSession:
    """A session made as the Rust engine makes them (crates/inference/src/graph.rs)."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3
    return ort.InferenceSession(
        str(path), sess_options=so, providers=providers or ["CPUExecutionProvider"]
    )


def argmax(logits: np.ndarray) -> int:
    """The greedy choice as Rust makes it: the last index of the largest value
    under IEEE total order (`max_by(total_cmp)`)."""
    bits = np.ascontiguousarray(logits, dtype=np.float32).view(np.int32)
    key = bits ^ ((bits >> 31) & np.int32(0x7FFFFFFF))
    return int(len(key) - 1 - int(np.argmax(key[::-1])))


def _finite(graph: str, tensor: str, data: np.ndarray) -> None:
    if not np.isfinite(data).all():
        bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise ModelError(f"{graph}: {bad} of {np.size(data)} values of {tensor} are NaN or infinite")


@dataclass
class Generation:
    """What one generation produced (the Rust `Generation`, less `stopped`
    unless `on_token` stopped it)."""

    tokens: list = field(default_factory=list)
    task_hidden: list = field(default_factory=list)
    time_to_first_token: float = 0.0
    total: float = 0.0
    stopped: bool = False
    truncated: bool = False


class HeadGenerator:
    """embed_tokens + decoder + kernel_projector of one model, and the head's ids."""

    def __init__(self, model: ModelDir, threads: int = 1, providers=None):
        self.model = model
        open_ = lambda role: session(model.file(role), threads, providers)  # noqa: E731
        self.embed = open_("embed_tokens")
        self.decoder = open_("decoder")
        self.projector = open_("kernel_projector")
        self.max_positions = model.max_positions()
        past = [i for i in self.decoder.get_inputs() if i.name.startswith("past_key_values.")]
        if not past or len(past) % 2:
            raise ModelError("the decoder has no past_key_values.N.key/value inputs")
        self.layers = len(past) // 2
        shape = past[0].shape
        if not (isinstance(shape[1], int) and isinstance(shape[3], int)):
            raise ModelError(f"{past[0].name}: heads and head_dim must be fixed, got {shape}")
        self.heads, self.head_dim = shape[1], shape[3]
        width = {i.name: i.shape for i in self.decoder.get_inputs()}["inputs_embeds"][2]
        if not isinstance(width, int):
            raise ModelError("inputs_embeds: the width must be fixed")
        self.width = width
        names = lambda p: [f"{p}.{i // 2}.{('key', 'value')[i % 2]}" for i in range(2 * self.layers)]  # noqa: E731
        self.past_names = names("past_key_values")
        self.present_names = names("present")
        self.decoder_outputs = ["logits", "hidden_states"] + self.present_names
        self.projector_in = self.projector.get_inputs()[0].name
        self.projector_out = self.projector.get_outputs()[0].name
        kshape = self.projector.get_outputs()[0].shape
        self.kernel_size = kshape[2] if isinstance(kshape[2], int) else model.manifest.get(
            "default_kernels", {}
        ).get("size", -1)

        vocab = model.vocabulary()
        if EOS not in vocab:
            raise ModelError(f"the vocabulary has no {EOS}")
        self.eos = int(vocab[EOS])
        self.task_tokens = model.task_tokens()
        missing = [t for t in self.task_tokens if t not in vocab]
        if missing:
            raise ModelError(f"the vocabulary has no {missing}, which [default_kernels] names")
        self.task_ids = [int(vocab[t]) for t in self.task_tokens]
        self.vocab_size = max(vocab.values()) + 1
        img = model.image_tokens()
        self.image_name = img["name"]
        self.image_count = img["shape"][1] if isinstance(img["shape"][1], int) else -1
        if isinstance(img["shape"][2], int) and img["shape"][2] != self.width:
            raise ModelError(
                f"{img['name']} is {img['shape'][2]} wide but the decoder takes {self.width}"
            )
        self._ones = np.ones((1, self.max_positions), dtype=np.int64)
        self._positions = np.arange(self.max_positions, dtype=np.int64)[None, :]

    # ------------------------------------------------------------------ loop
    def _embed(self, ids: np.ndarray) -> np.ndarray:
        out = self.embed.run(["inputs_embeds"], {"input_ids": ids.reshape(1, -1)})[0]
        _finite("embed_tokens", "inputs_embeds", out)
        return out

    def generate(
        self,
        image_embeds: np.ndarray,
        prompt: np.ndarray,
        max_new: int,
        pick: Callable[[np.ndarray], int] = argmax,
        on_token: Optional[Callable[[int], bool]] = None,
    ) -> Generation:
        """`image_embeds`: [image_tokens, width] float32; `prompt`: int64 ids.
        `on_token` returning True stops it (`stopped`)."""
        started = time.perf_counter()
        image = np.ascontiguousarray(image_embeds, dtype=np.float32).reshape(-1, self.width)
        prompt = np.ascontiguousarray(prompt, dtype=np.int64).reshape(-1)
        g = Generation(task_hidden=[None] * len(self.task_ids))
        needed = image.shape[0] + prompt.shape[0]
        if needed > self.max_positions:
            raise ContractError(
                f"{image.shape[0]} image tokens and a {prompt.shape[0]}-token prompt need "
                f"{needed} positions; the decoder has {self.max_positions}"
            )
        if max_new == 0 or needed == 0:
            g.truncated = True
            g.total = time.perf_counter() - started
            return g
        parts = [image]
        if prompt.size:
            parts.append(self._embed(prompt)[0])
        embeds = np.concatenate(parts, axis=0)[None, :, :]
        past = [np.zeros((1, self.heads, 0, self.head_dim), dtype=np.float32)] * (2 * self.layers)
        total = 0
        first = None
        while True:
            s = embeds.shape[1]
            feed = {
                "inputs_embeds": embeds,
                "attention_mask": self._ones[:, : total + s],
                "position_ids": self._positions[:, total : total + s],
            }
            feed.update(zip(self.past_names, past))
            out = self.decoder.run(self.decoder_outputs, feed)
            logits, states = out[0], out[1]
            row = logits[0, s - 1]
            _finite("decoder", "logits", row)
            nxt = pick(row)
            if g.tokens and g.tokens[-1] in self.task_ids:
                k = self.task_ids.index(g.tokens[-1])
                hidden = states[0, s - 1]
                _finite("decoder", "hidden_states", hidden)
                g.task_hidden[k] = hidden.copy()
            past = out[2:]
            total += s
            if first is None:
                first = time.perf_counter() - started
            if nxt == self.eos:
                break
            g.tokens.append(nxt)
            if on_token is not None and on_token(nxt):
                g.stopped = True
                break
            if len(g.tokens) >= max_new or total >= self.max_positions:
                g.truncated = True
                break
            embeds = self._embed(np.array([nxt], dtype=np.int64))
        g.time_to_first_token = first or 0.0
        g.total = time.perf_counter() - started
        return g

    def kernels(self, hidden: list) -> np.ndarray:
        """[1, tasks, size] kernels for the task hidden states (each `width`)."""
        x = np.stack(hidden).astype(np.float32)[None, :, :]
        return self.projector.run([self.projector_out], {self.projector_in: x})[0]

    # -------------------------------------------------------------- contract
    def contract(self) -> tuple:
        """(inputs, outputs) of the served head: the contract clients follow."""
        t = len(self.task_ids)
        inputs = [
            TensorSpec(self.image_name, "FP32", (1, self.image_count, self.width)),
            TensorSpec(PROMPT_IDS, "INT64", (1, -1)),
            TensorSpec(MAX_NEW_TOKENS, "INT64", (1,), optional=True),
        ]
        outputs = [
            TensorSpec(TOKENS, "INT64", (1, -1)),
            TensorSpec(TRUNCATED, "BOOL", (1,)),
            TensorSpec(TASK_WRITTEN, "BOOL", (1, t)),
            TensorSpec(TASK_HIDDEN, "FP32", (1, t, self.width)),
            TensorSpec(KERNELS, "FP32", (1, -1, self.kernel_size)),
            TensorSpec(TTFT_MS, "FP64", (1,)),
            TensorSpec(TOTAL_MS, "FP64", (1,)),
        ]
        return inputs, outputs

    def identity(self) -> dict:
        """Which model this is, for response parameters: a cart checks that
        the server's head belongs to the encoder it runs."""
        return {
            "sonoflow_model": f"{self.model.name} {self.model.version}",
            "decoder_sha256": self.model.graph("decoder").get("sha256", ""),
        }

    def serve(self, inputs: dict) -> dict:
        """One served request: `inputs` name -> numpy array (as decoded by the
        server); returns every output of the contract, name -> numpy array."""
        image = inputs.get(self.image_name)
        if image is None:
            raise ContractError(f"input {self.image_name} (FP32 [1, {self.image_count}, {self.width}]) is missing")
        prompt = inputs.get(PROMPT_IDS)
        if prompt is None:
            raise ContractError(f"input {PROMPT_IDS} (INT64 [1, n]) is missing")
        unknown = sorted(set(inputs) - {self.image_name, PROMPT_IDS, MAX_NEW_TOKENS})
        if unknown:
            raise ContractError(f"unknown inputs {unknown}")
        image = np.asarray(image)
        if image.dtype != np.float32:
            raise ContractError(f"{self.image_name} must be FP32, got {image.dtype}")
        want = (1, self.image_count, self.width)
        fits = image.ndim == 3 and image.shape[0] == 1 and image.shape[2] == self.width
        if not fits or (self.image_count >= 0 and image.shape[1] != self.image_count):
            raise ContractError(
                f"{self.image_name} must be {list(want)}, got {list(image.shape)} (one keyframe per request)"
            )
        if not np.isfinite(image).all():
            raise ContractError(f"{self.image_name} has NaN or infinite values")
        prompt = np.asarray(prompt)
        if prompt.dtype != np.int64:
            raise ContractError(f"{PROMPT_IDS} must be INT64, got {prompt.dtype}")
        if prompt.ndim != 2 or prompt.shape[0] != 1 or prompt.shape[1] < 1:
            raise ContractError(f"{PROMPT_IDS} must be [1, n] with n >= 1, got {list(prompt.shape)}")
        if (prompt < 0).any() or (prompt >= self.vocab_size).any():
            raise ContractError(f"{PROMPT_IDS} holds ids outside the vocabulary (0..{self.vocab_size - 1})")
        max_new = DEFAULT_MAX_NEW_TOKENS
        if MAX_NEW_TOKENS in inputs:
            m = np.asarray(inputs[MAX_NEW_TOKENS]).reshape(-1)
            if m.size != 1 or m.dtype.kind not in "iu":
                raise ContractError(f"{MAX_NEW_TOKENS} must be one INT64, got {m.dtype} {list(m.shape)}")
            max_new = int(m[0])
            if not 1 <= max_new <= MAX_NEW_TOKENS_LIMIT:
                raise ContractError(f"{MAX_NEW_TOKENS} is {max_new}; use 1 to {MAX_NEW_TOKENS_LIMIT}")
        g = self.generate(image[0], prompt[0], max_new)
        written = [h is not None for h in g.task_hidden]
        hidden = np.zeros((1, len(written), self.width), dtype=np.float32)
        for k, h in enumerate(g.task_hidden):
            if h is not None:
                hidden[0, k] = h
        if written and all(written):
            kernels = self.kernels(g.task_hidden).astype(np.float32, copy=False)
        else:
            kernels = np.zeros((1, 0, self.kernel_size), dtype=np.float32)
        return {
            TOKENS: np.array([g.tokens], dtype=np.int64).reshape(1, -1),
            TRUNCATED: np.array([g.truncated], dtype=bool),
            TASK_WRITTEN: np.array([written], dtype=bool).reshape(1, -1),
            TASK_HIDDEN: hidden,
            KERNELS: kernels,
            TTFT_MS: np.array([g.time_to_first_token * 1e3], dtype=np.float64),
            TOTAL_MS: np.array([g.total * 1e3], dtype=np.float64),
        }


class GraphRunner:
    """One per-frame graph (vision_encoder, mask_decoder) as a plain model:
    inputs and outputs by name, as the ONNX file declares them."""

    def __init__(self, path: Path, threads: int = 1, providers=None):
        self.path = Path(path)
        self.session = session(self.path, threads, providers)
        self.inputs = {i.name: i for i in self.session.get_inputs()}
        self.outputs = [o.name for o in self.session.get_outputs()]

    @staticmethod
    def datatype(onnx_type: str) -> str:
        return {
            "tensor(float)": "FP32",
            "tensor(float16)": "FP16",
            "tensor(double)": "FP64",
            "tensor(int64)": "INT64",
            "tensor(int32)": "INT32",
            "tensor(uint8)": "UINT8",
            "tensor(bool)": "BOOL",
        }.get(onnx_type, onnx_type)

    def contract(self) -> tuple:
        def spec(t):
            return TensorSpec(t.name, self.datatype(t.type), tuple(d if isinstance(d, int) else -1 for d in t.shape))

        return [spec(t) for t in self.session.get_inputs()], [spec(t) for t in self.session.get_outputs()]

    def run(self, inputs: dict, wanted=None) -> dict:
        missing = sorted(set(self.inputs) - set(inputs))
        unknown = sorted(set(inputs) - set(self.inputs))
        if missing or unknown:
            raise ContractError(f"{self.path.name}: missing inputs {missing}, unknown inputs {unknown}")
        names = list(wanted) if wanted else self.outputs
        bad = sorted(set(names) - set(self.outputs))
        if bad:
            raise ContractError(f"{self.path.name}: no outputs {bad}; it has {self.outputs}")
        feed = {}
        for name, spec in self.inputs.items():
            a = np.asarray(inputs[name])
            want = {"FP32": np.float32, "INT64": np.int64}.get(self.datatype(spec.type))
            if want is not None and a.dtype != want:
                raise ContractError(f"{name} must be {self.datatype(spec.type)}, got {a.dtype}")
            dims = spec.shape
            if a.ndim != len(dims) or any(isinstance(d, int) and d != n for d, n in zip(dims, a.shape)):
                raise ContractError(f"{name} must be {list(dims)}, got {list(a.shape)}")
            feed[name] = np.ascontiguousarray(a)
        try:
            values = self.session.run(names, feed)
        except Exception as e:  # onnxruntime's own shape or type complaint
            raise ContractError(f"{self.path.name}: {e}") from None
        return dict(zip(names, values))


def env_threads(default: int = 1) -> int:
    """`SONOFLOW_SERVE_THREADS`: intra-op threads per session (1: the Rust head's default)."""
    try:
        return max(1, int(os.environ.get("SONOFLOW_SERVE_THREADS", default)))
    except ValueError:
        return default
