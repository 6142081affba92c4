"""umind-nano: a small unified ultrasound vision-language model in the shape
UMind-VL describes, split into the graphs of the sonoflow model contract.

- VisionEncoder: 1x256x256 grayscale -> dense features (32 x 64 x 64, 1/4
  resolution, FPN-fused) for the mask decoder, and 64 image tokens (8x8,
  d_model wide) that prefix the language model.
- TokenEmbedding + Decoder: a decoder-only transformer LM (pre-norm, learned
  positions, KV cache) over a word-level vocabulary with task tokens.
- KernelProjector: the hidden state of a task token ([SEG], [DET]) -> the
  parameters of a CondInst-style dynamic head (three 1x1 convolutions).
- MaskDecoder: applies those generated kernels to the dense features (plus two
  coordinate channels): mask logits per task token, and a score per task
  (sigmoid of the strongest logit).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

from . import report

FEATURES = 32  # dense feature channels
COORDS = 2
HEAD = 8  # dynamic head width
KERNEL_SIZE = (FEATURES + COORDS) * HEAD + HEAD + HEAD * HEAD + HEAD + HEAD + 1
D_MODEL, LAYERS, HEADS, FFN, MAX_POSITIONS = 192, 4, 6, 768, 160
GRID_TOKENS, ROI_TOKENS = 64, 4
IMAGE_TOKENS = GRID_TOKENS + ROI_TOKENS
DROPOUT = 0.1  # training only


def conv_bn(cin, cout, stride=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class Block(nn.Module):
    """Residual block of two 3x3 convolutions."""

    def __init__(self, c):
        super().__init__()
        self.a = conv_bn(c, c)
        self.b = nn.Sequential(nn.Conv2d(c, c, 3, 1, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return F.relu(x + self.b(self.a(x)))


class VisionEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(1, 16, 2), conv_bn(16, 24))  # 1/2
        self.s4 = conv_bn(24, 48, 2)  # 1/4
        self.s8 = nn.Sequential(conv_bn(48, 96, 2), Block(96))  # 1/8
        self.s16 = nn.Sequential(conv_bn(96, 128, 2), Block(128), Block(128))  # 1/16
        self.s32 = nn.Sequential(conv_bn(128, 160, 2), Block(160))  # 1/32
        self.lat32 = nn.Conv2d(160, 64, 1)
        self.lat16 = nn.Conv2d(128, 64, 1)
        self.lat8 = nn.Conv2d(96, 64, 1)
        self.lat4 = nn.Conv2d(48, 64, 1)
        self.fuse = nn.Sequential(conv_bn(64, FEATURES), nn.Conv2d(FEATURES, FEATURES, 1))
        self.token_proj = nn.Sequential(nn.Linear(128 * 4, D_MODEL), nn.GELU(), nn.Linear(D_MODEL, D_MODEL))
        # Region tokens: features pooled under a saliency map of the lesion
        # the report describes (trained against its mask), so the language
        # model reads the lesion's own features, not only a coarse grid.
        self.saliency = nn.Sequential(conv_bn(64, 32), nn.Conv2d(32, 1, 1))
        self.roi_proj = nn.Sequential(nn.Linear(128 + 96 + 64, D_MODEL), nn.GELU(), nn.Linear(D_MODEL, ROI_TOKENS * D_MODEL))
        self.token_pos = nn.Parameter(torch.zeros(1, IMAGE_TOKENS, D_MODEL))

    def forward(self, image):
        features, tokens, _ = self.forward_with_saliency(image)
        return features, tokens

    def forward_with_saliency(self, image):
        c4 = self.s4(self.stem(image))
        c8 = self.s8(c4)
        c16 = self.s16(c8)
        c32 = self.s32(c16)
        p = self.lat32(c32)
        p = self.lat16(c16) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.lat8(c8) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        p = self.lat4(c4) + F.interpolate(p, scale_factor=2.0, mode="nearest")
        features = self.fuse(p)
        # 16x16x128 -> 8x8 tokens of 2x2 patches.
        t = F.pixel_unshuffle(c16, 2).flatten(2).transpose(1, 2)
        saliency = self.saliency(p)  # [b, 1, 64, 64] logits
        w = torch.sigmoid(saliency)
        pooled = [pool(w, c16, 4), pool(w, c8, 2), pool(w, p, 1)]
        roi = self.roi_proj(torch.cat(pooled, 1)).reshape(-1, ROI_TOKENS, D_MODEL)
        tokens = torch.cat([self.token_proj(t), roi], 1) + self.token_pos
        return features, tokens, saliency


def pool(weights, x, factor):
    """Mean of `x` [b, c, h, w] weighted by `weights` [b, 1, h * factor, w * factor]."""
    w = F.avg_pool2d(weights, factor) if factor > 1 else weights
    return (x * w).sum((-1, -2)) / (w.sum((-1, -2)) + 1e-3)


class TokenEmbedding(nn.Module):
    def __init__(self, vocab):
        super().__init__()
        self.embed = nn.Embedding(vocab, D_MODEL)

    def forward(self, input_ids):
        return self.embed(input_ids)


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.out = nn.Linear(D_MODEL, D_MODEL)

    def forward(self, x, bias, past_k, past_v):
        b, s, _ = x.shape
        q, k, v = self.qkv(x).view(b, s, 3, HEADS, D_MODEL // HEADS).permute(2, 0, 3, 1, 4)
        k = torch.cat([past_k, k], dim=2)
        v = torch.cat([past_v, v], dim=2)
        att = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(D_MODEL // HEADS)) + bias
        y = F.dropout(torch.softmax(att, dim=-1), DROPOUT, self.training) @ v
        return self.out(y.transpose(1, 2).reshape(b, s, D_MODEL)), k, v


class Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.n1 = nn.LayerNorm(D_MODEL)
        self.att = Attention()
        self.n2 = nn.LayerNorm(D_MODEL)
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, FFN), nn.GELU(), nn.Linear(FFN, D_MODEL), nn.Dropout(DROPOUT))

    def forward(self, x, bias, past_k, past_v):
        a, k, v = self.att(self.n1(x), bias, past_k, past_v)
        x = x + F.dropout(a, DROPOUT, self.training)
        return x + self.mlp(self.n2(x)), k, v


class Decoder(nn.Module):
    """inputs_embeds, attention_mask (over past + new), position_ids, past
    keys/values -> logits, hidden_states (final norm), present keys/values."""

    def __init__(self, vocab):
        super().__init__()
        self.pos = nn.Embedding(MAX_POSITIONS, D_MODEL)
        self.layers = nn.ModuleList(Layer() for _ in range(LAYERS))
        self.norm = nn.LayerNorm(D_MODEL)
        self.lm_head = nn.Linear(D_MODEL, vocab, bias=False)

    def forward(self, inputs_embeds, attention_mask, position_ids, *past):
        s = inputs_embeds.shape[1]
        total = attention_mask.shape[1]
        x = inputs_embeds + self.pos(position_ids)
        # Causal over the new positions, which sit at the end of `total`;
        # masked-out (padding) keys excluded.
        key_pos = torch.arange(total, device=x.device)
        query_pos = key_pos[total - s :]
        causal = key_pos[None, :] <= query_pos[:, None]
        allowed = causal[None, None, :, :] & (attention_mask[:, None, None, :] > 0)
        bias = torch.where(allowed, 0.0, -1e9).to(x.dtype)
        presents = []
        for i, layer in enumerate(self.layers):
            x, k, v = layer(x, bias, past[2 * i], past[2 * i + 1])
            presents += [k, v]
        hidden = self.norm(x)
        return (self.lm_head(hidden), hidden, *presents)


class KernelProjector(nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(D_MODEL, 256), nn.GELU(), nn.Linear(256, KERNEL_SIZE))

    def forward(self, task_hidden_states):
        return self.mlp(task_hidden_states)


def split_kernels(kernels):
    """[b, t, KERNEL_SIZE] -> the weights and biases of the three 1x1 layers."""
    c = FEATURES + COORDS
    sizes = [c * HEAD, HEAD, HEAD * HEAD, HEAD, HEAD, 1]
    w1, b1, w2, b2, w3, b3 = torch.split(kernels, sizes, dim=-1)
    b, t = kernels.shape[0], kernels.shape[1]
    return (w1.reshape(b, t, HEAD, c), b1.unsqueeze(-1), w2.reshape(b, t, HEAD, HEAD), b2.unsqueeze(-1), w3.reshape(b, t, 1, HEAD), b3.unsqueeze(-1))


class MaskDecoder(nn.Module):
    """Einsum over 4-D features keeps the 64x64 spatial size static in the
    exported graph (a reshape would make it symbolic)."""

    def __init__(self):
        super().__init__()
        h = w = 64
        ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h * 2 - 1
        xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w * 2 - 1
        grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), 0).unsqueeze(0)  # [1, 2, h, w]
        self.register_buffer("coords", grid, persistent=False)

    def forward(self, image_features, kernels):
        b = image_features.shape[0]
        f = torch.cat([image_features, self.coords.expand(b, -1, -1, -1)], 1)  # [b, c+2, h, w]
        w1, b1, w2, b2, w3, b3 = split_kernels(kernels)
        x = torch.relu(torch.einsum("btkc,bchw->btkhw", w1, f) + b1.unsqueeze(-1))
        x = torch.relu(torch.einsum("btjk,btkhw->btjhw", w2, x) + b2.unsqueeze(-1))
        logits = (torch.einsum("btjk,btkhw->btjhw", w3, x) + b3.unsqueeze(-1)).squeeze(2)  # [b, t, h, w]
        scores = torch.sigmoid(logits.amax((-1, -2)))
        return logits, scores


class DescriptorHeads(nn.Module):
    """Training only (never exported): one linear classifier per report field
    over the region tokens, so that those tokens carry the described
    lesion's descriptors for the language model to read."""

    def __init__(self, fields):
        super().__init__()
        self.fields = list(fields)
        self.heads = nn.ModuleList(nn.Linear(ROI_TOKENS * D_MODEL, n) for n in fields.values())

    def forward(self, tokens):
        roi = tokens[:, GRID_TOKENS:].flatten(1)
        return {f: h(roi) for f, h in zip(self.fields, self.heads)}


class UMindNano(nn.Module):
    """All graphs together, for training."""

    def __init__(self, vocab, descriptor_fields=None):
        super().__init__()
        self.encoder = VisionEncoder()
        self.embed = TokenEmbedding(vocab)
        self.decoder = Decoder(vocab)
        self.projector = KernelProjector()
        self.mask_decoder = MaskDecoder()
        self.descriptors = DescriptorHeads(descriptor_fields or report.descriptor_fields())

    def empty_past(self, batch, device=None):
        shape = (batch, HEADS, 0, D_MODEL // HEADS)
        return [torch.zeros(shape, device=device) for _ in range(2 * LAYERS)]

    def forward(self, image, input_ids, task_positions, with_descriptors=False):
        """image [b,1,256,256]; input_ids [b,s] (prompt + report, teacher
        forced); task_positions [b, tasks]: index in input_ids of each task
        token. Returns LM logits over input_ids, mask logits, scores, kernels,
        features, saliency, and with `with_descriptors` the descriptor heads'
        logits ({field: [b, classes]})."""
        features, tokens, saliency = self.encoder.forward_with_saliency(image)
        embeds = torch.cat([tokens, self.embed(input_ids)], 1)
        b, total = embeds.shape[0], embeds.shape[1]
        mask = torch.ones(b, total, dtype=torch.int64, device=image.device)
        positions = torch.arange(total, device=image.device).expand(b, -1)
        logits, hidden, *_ = self.decoder(embeds, mask, positions, *self.empty_past(b, image.device))
        idx = (task_positions + IMAGE_TOKENS).unsqueeze(-1).expand(-1, -1, D_MODEL)
        task_hidden = hidden.gather(1, idx)
        kernels = self.projector(task_hidden)
        mask_logits, scores = self.mask_decoder(features, kernels)
        out = (logits[:, IMAGE_TOKENS:], mask_logits, scores, kernels, features, saliency)
        return (*out, self.descriptors(tokens)) if with_descriptors else out
