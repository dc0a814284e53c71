#!/usr/bin/env python3
"""Cross-architecture check: x86-64 <-> aarch64 (under qemu-user), both directions.

    bash tests/arm64/setup.sh                          # once: builds build/arm64 (~10-20 s)
    .venv-runtime/bin/python tests/arm64/check.py      # ~1 min on 2 cores

(A) x86 -> aarch64: tests/data/robin.aei (made on x86-64) is decoded to its latents on
    aarch64 (numpy only, no networks); they must equal tests/data/robin.latents.npz exactly.
(B) aarch64 -> x86: tests/data/robin.png is compressed on aarch64 with the real codec (the
    networks run in ai-edge-litert's aarch64 wheel); the file's latents are decoded on x86 and
    on aarch64 and must be identical. Both machines also decompress that file in full: the
    networks are float/int8 TFLite and need not agree bit for bit, so the pixels are compared
    by PSNR (a failure only below --min-psnr). As information, the same pixels are compressed
    on x86 too, and the two files compared.

The x86 side runs with --x86-python, else $X86_PYTHON, else the python running this script;
it needs numpy, pillow and ai-edge-litert (the .venv-runtime has them). The aarch64 side runs
with DIR/python from tests/arm64/setup.sh (--arm64-dir, else $ARM64_DIR, else build/arm64).
Both import aedge from the repository's runtime/ folder (through a symlink named aedge in a
scratch folder on PYTHONPATH), not from any installed copy.

Exit status: 0 when every latent comparison is equal and the PSNR is above --min-psnr;
1 on any latent mismatch (or a PSNR too low); 2 when a side cannot be run at all.

The same file is also the worker each side runs: `check.py worker MODEL VARIANT TASKS_JSON`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LATENT_NAMES = ("z_q", "index", "q")


# ---- worker: runs on either machine; needs numpy and aedge (and PIL for read_png only) ------

def worker(model, variant, tasks):
    import platform

    import numpy as np
    info = {"machine": platform.machine(), "python": platform.python_version(),
            "numpy": np.__version__, "seconds": {}}
    import aedge
    codec = aedge.load(model=model, variant=None if variant == "-" else variant)
    info["variant"] = codec.variant
    for op, src, dst in tasks:
        start = time.perf_counter()
        if op == "read_png":
            from PIL import Image
            np.save(dst, np.asarray(Image.open(src).convert("RGB")))
        elif op == "encode":
            Path(dst).write_bytes(codec.compress(np.load(src)))
        elif op == "latents":
            z_q, index, q = codec.latents(Path(src).read_bytes())
            np.savez(dst, z_q=z_q, index=index, q=q)
        elif op == "decode":
            np.save(dst, codec.decompress(Path(src).read_bytes()))
        else:
            raise SystemExit(f"unknown task {op}")
        info["seconds"][f"{op} {Path(src).name}"] = round(time.perf_counter() - start, 2)
    try:
        import ai_edge_litert
        info["ai_edge_litert"] = ai_edge_litert.__version__
    except ImportError:
        info["ai_edge_litert"] = None
    print("WORKER-INFO " + json.dumps(info))


# ---- orchestrator: runs on x86 -------------------------------------------------------------

class Side:
    def __init__(self, name, python, pythonpath, model, variant, timeout):
        self.name, self.python, self.model, self.variant = name, python, model, variant
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env["PYTHONPATH"] = str(pythonpath)
        self.timeout = timeout
        self.info = None
        self.wall = 0.0

    def run(self, *tasks):
        cmd = [str(self.python), str(Path(__file__).resolve()), "worker", str(self.model),
               self.variant or "-", json.dumps([[op, str(a), str(b)] for op, a, b in tasks])]
        start = time.perf_counter()
        try:
            done = subprocess.run(cmd, env=self.env, capture_output=True, text=True,
                                  timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise SystemExit(f"{self.name}: timed out after {self.timeout} s") from None
        except OSError as e:
            print(f"error: cannot run {self.name} python {self.python}: {e}", file=sys.stderr)
            sys.exit(2)
        self.wall += time.perf_counter() - start
        if done.returncode != 0:
            print(f"error: {self.name} worker failed (exit {done.returncode}):\n"
                  f"{done.stdout}{done.stderr}", file=sys.stderr)
            sys.exit(2)
        for line in done.stdout.splitlines():
            if line.startswith("WORKER-INFO "):
                info = json.loads(line[len("WORKER-INFO "):])
                if self.info:
                    info["seconds"] = {**self.info["seconds"], **info["seconds"]}
                self.info = info
        return self.info


def compare_latents(label, a, b, names=("a", "b")):
    """Prints one line per array; True when all are equal in shape and value."""
    import numpy as np
    ok = True
    for key in LATENT_NAMES:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape:
            print(f"  {label} {key:5s}: shape {x.shape} vs {y.shape}  MISMATCH")
            ok = False
            continue
        diff = int(np.count_nonzero(x.astype(np.int64) != y.astype(np.int64)))
        verdict = "equal" if diff == 0 else f"MISMATCH in {diff} of {x.size}"
        print(f"  {label} {key:5s}: shape {x.shape}, {x.size} values ({names[0]} {x.dtype}, "
              f"{names[1]} {y.dtype}): {verdict}")
        ok &= diff == 0
    return ok


def psnr(a, b):
    import numpy as np
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arm64-dir", type=Path,
                        default=Path(os.environ.get("ARM64_DIR", REPO / "build" / "arm64")),
                        help="the folder tests/arm64/setup.sh built (default build/arm64)")
    parser.add_argument("--x86-python", default=os.environ.get("X86_PYTHON", sys.executable),
                        help="python for the x86 side (default $X86_PYTHON, else this one)")
    parser.add_argument("--repo", type=Path, default=REPO,
                        help="tree with runtime/, models/ and tests/data/ (default: this repo)")
    parser.add_argument("--model", type=Path, help="default REPO/models/aedge.aem")
    parser.add_argument("--variant", help="network variant (default: the model's default)")
    parser.add_argument("--min-psnr", type=float, default=40.0,
                        help="fail when the aarch64 and x86 decodes of one file differ more "
                             "than this PSNR in dB (default 40)")
    parser.add_argument("--keep", type=Path, help="keep the files made here in this folder")
    parser.add_argument("--timeout", type=int, default=1200, help="seconds per worker run")
    args = parser.parse_args()

    import numpy as np

    repo = args.repo.resolve()
    model = (args.model or repo / "models" / "aedge.aem").resolve()
    data = repo / "tests" / "data"
    arm_python = args.arm64_dir.resolve() / "python"
    if not arm_python.is_file():
        print(f"error: {arm_python} missing: run bash tests/arm64/setup.sh first",
              file=sys.stderr)
        sys.exit(2)
    for path in (model, repo / "runtime" / "__init__.py", data / "robin.aei",
                 data / "robin.latents.npz", data / "robin.png"):
        if not path.is_file():
            print(f"error: {path} missing", file=sys.stderr)
            sys.exit(2)

    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="aedge-arm64-"))
    try:
        pkg = work / "pkg"
        pkg.mkdir(exist_ok=True)
        link = pkg / "aedge"
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(repo / "runtime", target_is_directory=True)

        x86 = Side("x86", args.x86_python, pkg, model, args.variant, args.timeout)
        arm = Side("aarch64", arm_python, pkg, model, args.variant, args.timeout)
        w = work
        t0 = time.perf_counter()
        # x86, first: the pixels as .npy (aarch64 has no Pillow), and an x86 encode of them.
        x86.run(("read_png", data / "robin.png", w / "pixels.npy"),
                ("encode", w / "pixels.npy", w / "x86.aei"),
                ("latents", w / "x86.aei", w / "x86.x86-latents.npz"))
        # aarch64: (A) the golden file's latents; (B) encode, own latents, full decode.
        arm.run(("latents", data / "robin.aei", w / "golden.arm-latents.npz"),
                ("encode", w / "pixels.npy", w / "arm.aei"),
                ("latents", w / "arm.aei", w / "arm.arm-latents.npz"),
                ("decode", w / "arm.aei", w / "arm.arm-decoded.npy"))
        # x86 again: (B) the aarch64 file's latents and full decode.
        x86.run(("latents", w / "arm.aei", w / "arm.x86-latents.npz"),
                ("decode", w / "arm.aei", w / "arm.x86-decoded.npy"))
        total = time.perf_counter() - t0

        ok = True
        for side in (x86, arm):
            i = side.info
            print(f"{side.name:7s}: {i['machine']}, python {i['python']}, numpy {i['numpy']}, "
                  f"ai-edge-litert {i['ai_edge_litert']}, variant {i['variant']}; "
                  f"{side.wall:.1f} s wall")
        print(f"model: {model}")

        print("(A) x86 -> aarch64: robin.aei decoded on aarch64 vs robin.latents.npz (x86)")
        golden = np.load(data / "robin.latents.npz")
        ok &= compare_latents("A", np.load(w / "golden.arm-latents.npz"), golden,
                              ("aarch64", "golden"))

        arm_file = (w / "arm.aei").read_bytes()
        x86_file = (w / "x86.aei").read_bytes()
        print(f"(B) aarch64 -> x86: robin.png encoded on aarch64 ({len(arm_file)} bytes), "
              "latents decoded on x86 vs on aarch64")
        arm_on_arm = np.load(w / "arm.arm-latents.npz")
        ok &= compare_latents("B", np.load(w / "arm.x86-latents.npz"), arm_on_arm,
                              ("x86", "aarch64"))

        original = np.load(w / "pixels.npy")
        dec_arm = np.load(w / "arm.arm-decoded.npy")
        dec_x86 = np.load(w / "arm.x86-decoded.npy")
        if dec_arm.shape != dec_x86.shape or dec_arm.shape != original.shape:
            print(f"  decoded shapes differ: aarch64 {dec_arm.shape}, x86 {dec_x86.shape}, "
                  f"original {original.shape}  MISMATCH")
            ok = False
        else:
            cross = psnr(dec_arm, dec_x86)
            diff = np.abs(dec_arm.astype(np.int16) - dec_x86.astype(np.int16))
            print(f"  pixels {dec_arm.shape}: aarch64 decode vs x86 decode PSNR {cross:.2f} dB "
                  f"(max |diff| {int(diff.max())}, {np.count_nonzero(diff)} of {diff.size} "
                  f"values differ)")
            print(f"  vs original: aarch64 decode {psnr(dec_arm, original):.3f} dB, "
                  f"x86 decode {psnr(dec_x86, original):.3f} dB")
            if cross < args.min_psnr:
                print(f"  PSNR {cross:.2f} dB below --min-psnr {args.min_psnr}  MISMATCH")
                ok = False

        # Information only: the encoders' networks may round differently on the two machines.
        x86_lat = np.load(w / "x86.x86-latents.npz")
        if x86_file == arm_file:
            print("  (info) x86 encode of the same pixels: byte-identical file")
        else:
            same = [k for k in LATENT_NAMES if x86_lat[k].shape == arm_on_arm[k].shape]
            counts = ", ".join(
                f"{k} {int(np.count_nonzero(x86_lat[k] != arm_on_arm[k]))}/{x86_lat[k].size}"
                for k in same)
            print(f"  (info) x86 encode of the same pixels: {len(x86_file)} bytes, differs "
                  f"from the aarch64 file; latents differing: {counts}")

        print(f"timings (s): x86 {x86.info['seconds']} | aarch64 {arm.info['seconds']}")
        print(f"total {total:.1f} s; {'OK' if ok else 'FAILED'}"
              + (f"; files kept in {work}" if args.keep else ""))
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "worker":
        worker(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]))
    else:
        sys.exit(main())
