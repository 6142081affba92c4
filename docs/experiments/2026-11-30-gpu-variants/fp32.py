import sys, torch
c = torch.load(sys.argv[1], map_location="cpu")
c["model"] = {k: (v.float() if v.is_floating_point() else v) for k, v in c["model"].items()}
torch.save(c, sys.argv[2])
