#!/usr/bin/env python3
"""Zeroes, in a shared library's CUDA fat binaries, every GPU code image that
is not SASS for one architecture, so that the library compresses to a size
the device machine accepts (ONNX Runtime's CUDA provider is 284 MB, of which
218 MB is kernels for seven architectures).

Each fat binary (magic 0xBA55ED50 in the .nv_fatbin section) keeps its
headers; only the payload of the other images becomes zeros. The CUDA runtime
picks the image that matches the device (exact SASS first), so on that
architecture the library behaves as before; on any other it fails with "no
kernel image", which is why the pruned copy only ever travels to the device
machine and is never installed. A fat binary that has no SASS for the kept
architecture is left whole.

  scripts/prune-fatbin.py IN OUT [--keep-arch 90]
"""
import argparse
import collections
import pathlib
import struct
import subprocess
import sys

FATBIN_MAGIC = 0xBA55ED50
KIND_SASS = 2


def fatbin_section(path):
    """(offset, size) of .nv_fatbin in the ELF file at `path`."""
    table = subprocess.run(["readelf", "-S", "-W", str(path)], check=True, capture_output=True, text=True).stdout
    for line in table.splitlines():
        if ".nv_fatbin" in line:
            fields = line.split("]", 1)[1].split()
            return int(fields[3], 16), int(fields[4], 16)
    sys.exit(f"{path}: no .nv_fatbin section (not a library with CUDA kernels)")


def entries(data, start, length):
    """(kind, arch, payload offset, payload size) of each image of one fat binary."""
    at, end = start, start + length
    while at < end:
        kind, _, header_size, size = struct.unpack_from("<HHIQ", data, at)
        arch = struct.unpack_from("<I", data, at + 28)[0]
        yield kind, arch, at + header_size, size
        at += header_size + size


def prune(data, section, keep_arch):
    offset, size = section
    at, end = offset, offset + size
    kept, zeroed, whole = collections.Counter(), 0, 0
    while at + 16 <= end:
        magic, _, header_size, length = struct.unpack_from("<IHHQ", data, at)
        if magic != FATBIN_MAGIC:
            at += 8  # fat binaries are 8-byte aligned
            continue
        images = list(entries(data, at + header_size, length))
        if any(kind == KIND_SASS and arch == keep_arch for kind, arch, _, _ in images):
            for kind, arch, payload, n in images:
                if kind == KIND_SASS and arch == keep_arch:
                    kept[arch] += n
                else:
                    data[payload:payload + n] = bytes(n)
                    zeroed += n
        else:
            whole += 1
        at += header_size + length
    return kept, zeroed, whole


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", type=pathlib.Path)
    parser.add_argument("output", type=pathlib.Path)
    parser.add_argument("--keep-arch", type=int, default=90, help="SASS architecture to keep (90: Hopper)")
    args = parser.parse_args()
    data = bytearray(args.input.read_bytes())
    kept, zeroed, whole = prune(data, fatbin_section(args.input), args.keep_arch)
    args.output.write_bytes(data)
    args.output.chmod(args.input.stat().st_mode)
    print(f"{args.input.name}: kept {sum(kept.values()) >> 20} MiB of sm_{args.keep_arch} SASS, zeroed {zeroed >> 20} MiB, "
          f"{whole} fat binaries without sm_{args.keep_arch} SASS left whole", file=sys.stderr)
