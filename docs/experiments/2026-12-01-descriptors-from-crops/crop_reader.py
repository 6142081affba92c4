"""The crop model with pretrain_crop.py's descriptor-trained CNN and heads in
place, as visibility.py and window_eval.py read it (run beside them, from a
scratch onnx/ with the lesion-crop model.diff applied)."""
import torch, torch.nn as nn
from umind.model import UMindNano


def load_crop_reader(checkpoint, pretrained):
    """-> (model in eval mode, its crop module, descriptor heads, vocab, keys)."""
    ck = torch.load(checkpoint, map_location="cpu")
    pt = torch.load(pretrained, map_location="cpu")
    model = UMindNano(ck["vocab"]); model.load_state_dict(ck["model"]); model.eval()
    crop = model.encoder.crop
    crop.cnn.load_state_dict(pt["cnn"])
    vocab, keys = pt["vocab"], pt["keys"]
    heads = nn.ModuleList(nn.Linear(96, len(v)) for v in vocab); heads.load_state_dict(pt["heads"])
    return model, crop, heads, vocab, keys
