#!/usr/bin/env python3
"""Writes the tiny test model used by sonoflow's contract and inference tests.

It has the shape of a real sonoflow model (vision encoder -> dense features and
image tokens; a mask decoder that applies dynamic 1x1-conv kernels, CondInst
style; a kernel projector from task-token hidden states to kernels), with
deterministic random weights and a 64x64 grayscale input. It is for tests
only: its outputs mean nothing.

Usage: python onnx/make_test_models.py [OUT_DIR [--fp16]]   (needs `pip install onnx numpy`)
With no arguments it writes tests/fixtures/tiny-model and tests/fixtures/tiny-model-fp16
(the same graphs with float16 inputs and outputs, as an FP16 export has).
"""
import hashlib
import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
FEATURES, HIDDEN, TOKEN_DIM, SIZE = 8, 4, 16, 64
KERNEL = FEATURES * HIDDEN + HIDDEN + HIDDEN + 1  # W1, b1, W2, b2
rng = np.random.default_rng(1234)


def init(name, array):
    return numpy_helper.from_array(np.asarray(array, dtype=np.float32) if array.dtype != np.int64 else array, name)


def ints(name, values):
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def fp16_io(graph):
    """Makes a graph's inputs and outputs float16 (as an FP16 export has),
    with Cast nodes at the boundary so the float32 body runs unchanged."""
    casts_in, casts_out = [], []
    for vi in graph.input:
        inner = vi.name + "_f32"
        for node in graph.node:
            for i, name in enumerate(node.input):
                if name == vi.name:
                    node.input[i] = inner
        casts_in.append(helper.make_node("Cast", [vi.name], [inner], to=TensorProto.FLOAT))
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    for vi in graph.output:
        inner = vi.name + "_f32"
        for node in graph.node:
            for i, name in enumerate(node.output):
                if name == vi.name:
                    node.output[i] = inner
            for i, name in enumerate(node.input):
                if name == vi.name:
                    node.input[i] = inner
        casts_out.append(helper.make_node("Cast", [inner], [vi.name], to=TensorProto.FLOAT16))
        vi.type.tensor_type.elem_type = TensorProto.FLOAT16
    nodes = casts_in + list(graph.node) + casts_out
    del graph.node[:]
    graph.node.extend(nodes)
    return graph


FP16 = False


def save(graph, path):
    if FP16:
        graph = fp16_io(graph)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="sonoflow-test")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def vision_encoder(path):
    s4 = SIZE // 4
    nodes = [
        helper.make_node("Conv", ["pixel_values", "w_conv", "b_conv"], ["conv"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Relu", ["conv"], ["image_features"]),
        helper.make_node("AveragePool", ["image_features"], ["pooled"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Reshape", ["pooled", "tok_shape"], ["flat"]),
        helper.make_node("Transpose", ["flat"], ["tokens_in"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["tokens_in", "w_tok"], ["image_tokens"]),
    ]
    graph = helper.make_graph(
        nodes,
        "vision_encoder",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 1, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("image_features", TensorProto.FLOAT, ["batch", FEATURES, s4, s4]),
            helper.make_tensor_value_info("image_tokens", TensorProto.FLOAT, ["batch", (s4 // 4) ** 2, TOKEN_DIM]),
        ],
        [
            init("w_conv", rng.normal(0, 0.3, (FEATURES, 1, 4, 4))),
            init("b_conv", rng.normal(0, 0.1, (FEATURES,))),
            ints("tok_shape", [0, FEATURES, -1]),
            init("w_tok", rng.normal(0, 0.3, (FEATURES, TOKEN_DIM))),
        ],
    )
    save(graph, path)


def mask_decoder(path):
    s4 = SIZE // 4
    w1_end, b1_end, w2_end = FEATURES * HIDDEN, FEATURES * HIDDEN + HIDDEN, FEATURES * HIDDEN + 2 * HIDDEN

    def part(name, start, end, shape):
        return [
            helper.make_node("Slice", ["kernels", f"{name}_s", f"{name}_e", "axis2"], [f"{name}_flat"]),
            helper.make_node("Reshape", [f"{name}_flat", f"{name}_shape"], [name]),
        ], [ints(f"{name}_s", [start]), ints(f"{name}_e", [end]), ints(f"{name}_shape", shape)]

    nodes = [helper.make_node("Reshape", ["image_features", "f_shape"], ["f"])]
    inits = [ints("f_shape", [0, 1, FEATURES, -1]), ints("axis2", [2]), ints("m_shape", [0, 0, s4, s4])]
    for name, start, end, shape in [
        ("w1", 0, w1_end, [0, 0, HIDDEN, FEATURES]),
        ("b1", w1_end, b1_end, [0, 0, HIDDEN, 1]),
        ("w2", b1_end, w2_end, [0, 0, 1, HIDDEN]),
        ("b2", w2_end, KERNEL, [0, 0, 1, 1]),
    ]:
        n, i = part(name, start, end, shape)
        nodes += n
        inits += i
    nodes += [
        helper.make_node("MatMul", ["w1", "f"], ["h0"]),
        helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["w2", "h"], ["m0"]),
        helper.make_node("Add", ["m0", "b2"], ["m"]),
        helper.make_node("Reshape", ["m", "m_shape"], ["mask_logits"]),
        helper.make_node("ReduceMax", ["mask_logits"], ["best"], axes=[2, 3], keepdims=0),
        helper.make_node("Sigmoid", ["best"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "mask_decoder",
        [
            helper.make_tensor_value_info("image_features", TensorProto.FLOAT, ["batch", FEATURES, s4, s4]),
            helper.make_tensor_value_info("kernels", TensorProto.FLOAT, ["batch", "tasks", KERNEL]),
        ],
        [
            helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["batch", "tasks", s4, s4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["batch", "tasks"]),
        ],
        inits,
    )
    save(graph, path)


def kernel_projector(path):
    nodes = [
        helper.make_node("MatMul", ["task_hidden", "w"], ["k0"]),
        helper.make_node("Add", ["k0", "b"], ["kernels"]),
    ]
    graph = helper.make_graph(
        nodes,
        "kernel_projector",
        [helper.make_tensor_value_info("task_hidden", TensorProto.FLOAT, ["batch", "tasks", TOKEN_DIM])],
        [helper.make_tensor_value_info("kernels", TensorProto.FLOAT, ["batch", "tasks", KERNEL])],
        [init("w", rng.normal(0, 0.3, (TOKEN_DIM, KERNEL))), init("b", rng.normal(0, 0.1, (KERNEL,)))],
    )
    save(graph, path)


def sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main(out, fp16=False):
    global FP16, rng
    FP16 = fp16
    rng = np.random.default_rng(1234)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vision_encoder(out / "vision_encoder.onnx")
    mask_decoder(out / "mask_decoder.onnx")
    kernel_projector(out / "kernel_projector.onnx")
    rng.normal(0, 0.5, (2, KERNEL)).astype("<f4").tofile(out / "default_kernels.f32")
    s4 = SIZE // 4
    dtype = "float16" if fp16 else "float32"
    manifest = f'''# A tiny model in the sonoflow contract, for tests only (random weights).
# Written by onnx/make_test_models.py; regenerate rather than edit.
format = 1
name = "{'tiny-test-model-fp16' if fp16 else 'tiny-test-model'}"
version = "0.1.0"
description = "Contract test model: 64x64 gray input, dynamic-kernel mask decoder, random weights."
labels = ["cyst", "mass"]

[license]
weights = "Apache-2.0"
provenance = "Deterministic random weights from onnx/make_test_models.py (numpy seed 1234). Not trained; outputs mean nothing."

[graphs.vision_encoder]
file = "vision_encoder.onnx"
sha256 = "{sha(out / 'vision_encoder.onnx')}"
inputs = [{{ name = "pixel_values", dtype = "{dtype}", shape = ["batch", 1, {SIZE}, {SIZE}] }}]
outputs = [
  {{ name = "image_features", dtype = "{dtype}", shape = ["batch", {FEATURES}, {s4}, {s4}] }},
  {{ name = "image_tokens", dtype = "{dtype}", shape = ["batch", {(s4 // 4) ** 2}, {TOKEN_DIM}] }},
]

[graphs.mask_decoder]
file = "mask_decoder.onnx"
sha256 = "{sha(out / 'mask_decoder.onnx')}"
inputs = [
  {{ name = "image_features", dtype = "{dtype}", shape = ["batch", {FEATURES}, {s4}, {s4}] }},
  {{ name = "kernels", dtype = "{dtype}", shape = ["batch", "tasks", {KERNEL}] }},
]
outputs = [
  {{ name = "mask_logits", dtype = "{dtype}", shape = ["batch", "tasks", {s4}, {s4}] }},
  {{ name = "scores", dtype = "{dtype}", shape = ["batch", "tasks"] }},
]

[graphs.kernel_projector]
file = "kernel_projector.onnx"
sha256 = "{sha(out / 'kernel_projector.onnx')}"
inputs = [{{ name = "task_hidden", dtype = "{dtype}", shape = ["batch", "tasks", {TOKEN_DIM}] }}]
outputs = [{{ name = "kernels", dtype = "{dtype}", shape = ["batch", "tasks", {KERNEL}] }}]

[preprocess]
input = "pixel_values"
width = {SIZE}
height = {SIZE}
channels = 1
layout = "nchw"
mean = [0.5]
std = [0.5]
crop = "image-region"
resize = "letterbox"

[decoder_io]
features = "image_features"
kernels = "kernels"
mask_logits = "mask_logits"
scores = "scores"

[[tasks]]
token = "[SEG]"
drives = "segmentation"
target = "lesion"

[[tasks]]
token = "[DET]"
drives = "detection"
target = "lesion"

[default_kernels]
file = "default_kernels.f32"
sha256 = "{sha(out / 'default_kernels.f32')}"
tokens = ["[SEG]", "[DET]"]
size = {KERNEL}
'''
    (out / "sonoflow-model.toml").write_text(manifest)
    print(f"wrote {out}")


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(sys.argv[1], fp16="--fp16" in sys.argv)
    else:
        main("tests/fixtures/tiny-model")
        main("tests/fixtures/tiny-model-fp16", fp16=True)
