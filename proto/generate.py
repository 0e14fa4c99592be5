"""Regenerate the committed protobuf/gRPC Python modules from the .proto sources.

Usage: python proto/generate.py [OUTPUT_ROOT]  (default: the repository root)

The .proto files keep Tvix's import paths (tvix/castore/v1/...); the generated
imports are rewritten to our packages so the code needs no top-level `tvix` package.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from grpc_tools import protoc
import grpc_tools

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"
# proto package directory -> Python package that holds its generated code
TARGETS = {"tvix/castore/v1": "castore/proto", "tvix/store/v1": "store/proto",
           "cairn/castore/v1": "castore/proto", "cairn/store/v1": "store/proto"}


def generate(out_root: Path) -> list[Path]:
    """Run protoc for every target and return the files written."""
    include = str(Path(grpc_tools.__file__).parent / "_proto")
    written: list[Path] = []
    for src, dst in TARGETS.items():
        protos = sorted((PROTO / src).glob("*.proto"))
        if not protos:
            continue
        out = out_root / dst
        out.mkdir(parents=True, exist_ok=True)
        tmp = out_root / ".protogen"
        tmp.mkdir(exist_ok=True)
        args = ["protoc", f"-I{PROTO}", f"-I{include}", f"--python_out={tmp}",
                f"--pyi_out={tmp}", f"--grpc_python_out={tmp}"]
        if protoc.main(args + [str(p) for p in protos]) != 0:
            raise SystemExit(f"protoc failed for {src}")
        for gen in sorted((tmp / src).iterdir()):
            target = out / gen.name
            target.write_text(_rewrite_imports(gen.read_text()))
            written.append(target)
            gen.unlink()
        _rmtree_empty(tmp)
    return written


def _rewrite_imports(code: str) -> str:
    for src, dst in TARGETS.items():
        code = re.sub(rf"\bfrom {src.replace('/', '.')} import\b",
                      f"from {dst.replace('/', '.')} import", code)
    return code


def _rmtree_empty(path: Path) -> None:
    for child in sorted(path.rglob("*"), reverse=True):
        child.rmdir()
    path.rmdir()


if __name__ == "__main__":
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT
    for f in generate(root):
        print(f.relative_to(root))
