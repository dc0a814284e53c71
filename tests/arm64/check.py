#!/usr/bin/env python3
"""Cross-architecture check: x86-64 <-> aarch64 (under qemu-user), both directions.

    bash tests/arm64/setup.sh                          # once: builds build/arm64 (~10 s)
    .venv-runtime/bin/python tests/arm64/check.py      # ~20 s on 2 cores

The aarch64 side runs on each emulated CPU of --cpus (default cortex-a72 and cortex-a76:
Raspberry Pi 4 and 5 class); see setup.sh for why qemu's default "max" CPU is not used.

(A) x86 -> aarch64: tests/data/robin.aei (made on x86-64) is decoded to its latents on
    aarch64 (numpy only, no networks); they must equal tests/data/robin.latents.npz exactly.
(B) aarch64 -> x86: tests/data/robin.png is compressed on aarch64 with the real codec (the
    networks run in ai-edge-litert's aarch64 wheel); the file's latents are decoded on x86 and
    on aarch64 and must be identical. Both machines also decompress that file in full: the
    networks are float/int8 TFLite and need not agree bit for bit, so the pixels are compared
    by PSNR (a failure only below --min-psnr). As information, the same pixels are compressed
    on x86 too, and the two files compared (they need not be identical either).

The x86 side runs with --x86-python, else $X86_PYTHON, else the python running this script;
it needs numpy, pillow and ai-edge-litert (the .venv-runtime has them). The aarch64 side runs
with DIR/python from tests/arm64/setup.sh (--arm64-dir, else $ARM64_DIR, else build/arm64).
Both import aedge from the repository's runtime/ folder (through a symlink named aedge in a
scratch folder on PYTHONPATH), not from any installed copy.

Exit status: 0 when every latent comparison is equal and the PSNR is above --min-psnr;
1 on any latent mismatch, a decode or encode error, or a PSNR too low; 2 when a side cannot
be run at all (missing build folder, python crash).

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
    info["errors"] = {}
    for op, src, dst in tasks:
        start = time.perf_counter()
        try:
            run_task(codec, op, src, dst)
        except (aedge.AedgeError, OSError) as e:  # reported by the orchestrator as a failure
            info["errors"][f"{op} {Path(src).name}"] = f"{type(e).__name__}: {e}"
        info["seconds"][f"{op} {Path(src).name}"] = round(time.perf_counter() - start, 2)
    try:
        import ai_edge_litert
        info["ai_edge_litert"] = ai_edge_litert.__version__
    except ImportError:
        info["ai_edge_litert"] = None
    print("WORKER-INFO " + json.dumps(info))


def run_task(codec, op, src, dst):
    import numpy as np
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


# ---- orchestrator: runs on x86 -------------------------------------------------------------

class Side:
    def __init__(self, name, python, pythonpath, model, variant, timeout, **env):
        self.name, self.python, self.model, self.variant = name, python, model, variant
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
        self.env.update(env, PYTHONPATH=str(pythonpath))
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
            hint = ("\n(a signal under qemu: is the CPU profile's /proc/cpuinfo in place? "
                    "re-run tests/arm64/setup.sh)" if done.returncode < 0 else "")
            print(f"error: {self.name} worker failed (exit {done.returncode}):\n"
                  f"{done.stdout}{done.stderr}{hint}", file=sys.stderr)
            sys.exit(2)
        for line in done.stdout.splitlines():
            if line.startswith("WORKER-INFO "):
                info = json.loads(line[len("WORKER-INFO "):])
                if self.info:
                    info["seconds"] = {**self.info["seconds"], **info["seconds"]}
                    info["errors"] = {**self.info["errors"], **info["errors"]}
                self.info = info
        return self.info


def compare_latents(label, a, b, names=("a", "b")):
    """Prints one line per array; True when all are equal in shape and value."""
    import numpy as np
    if a is None or b is None:
        print(f"  {label}: no latents ({'first' if a is None else 'second'} decode failed)  "
              "MISMATCH")
        return False
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
    parser.add_argument("--cpus", default=os.environ.get("ARM64_CPUS", "cortex-a72,cortex-a76"),
                        help="emulated CPUs to run the aarch64 side on, comma-separated "
                             "(profiles made by setup.sh; default cortex-a72,cortex-a76)")
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
        arms = [Side(f"aarch64 {cpu}", arm_python, pkg, model, args.variant, args.timeout,
                     ARM64_CPU=cpu) for cpu in args.cpus.split(",")]
        w = work
        t0 = time.perf_counter()
        # x86, first: the pixels as .npy (aarch64 has no Pillow), and an x86 encode of them.
        x86.run(("read_png", data / "robin.png", w / "pixels.npy"),
                ("encode", w / "pixels.npy", w / "x86.aei"),
                ("latents", w / "x86.aei", w / "x86.x86-latents.npz"))
        for arm in arms:
            cpu = arm.env["ARM64_CPU"]
            # aarch64: (A) the golden file's latents; (B) encode, own latents, full decode.
            arm.run(("latents", data / "robin.aei", w / f"golden.{cpu}-latents.npz"),
                    ("encode", w / "pixels.npy", w / f"{cpu}.aei"),
                    ("latents", w / f"{cpu}.aei", w / f"{cpu}.{cpu}-latents.npz"),
                    ("decode", w / f"{cpu}.aei", w / f"{cpu}.{cpu}-decoded.npy"))
            # x86 again: (B) the aarch64 file's latents and full decode.
            x86.run(("latents", w / f"{cpu}.aei", w / f"{cpu}.x86-latents.npz"),
                    ("decode", w / f"{cpu}.aei", w / f"{cpu}.x86-decoded.npy"))
        total = time.perf_counter() - t0

        ok = True
        for side in [x86] + arms:
            i = side.info
            print(f"{side.name}: {i['machine']}, python {i['python']}, numpy {i['numpy']}, "
                  f"ai-edge-litert {i['ai_edge_litert']}, variant {i['variant']}; "
                  f"{side.wall:.1f} s wall")
        print(f"model: {model}")
        golden = np.load(data / "robin.latents.npz")
        original = np.load(w / "pixels.npy")

        def load(name):
            return np.load(w / name) if (w / name).is_file() else None

        x86_file = (w / "x86.aei").read_bytes() if (w / "x86.aei").is_file() else None
        x86_lat = load("x86.x86-latents.npz")
        for arm in arms:
            cpu = arm.env["ARM64_CPU"]
            print(f"(A) x86 -> aarch64 ({cpu}): robin.aei's latents decoded on aarch64 vs "
                  "robin.latents.npz")
            ok &= compare_latents("A", load(f"golden.{cpu}-latents.npz"), golden,
                                  ("aarch64", "golden"))

            if not (w / f"{cpu}.aei").is_file():
                print(f"(B) aarch64 ({cpu}) -> x86: the encode failed  MISMATCH")
                ok = False
                continue
            arm_file = (w / f"{cpu}.aei").read_bytes()
            print(f"(B) aarch64 ({cpu}) -> x86: robin.png encoded on aarch64 "
                  f"({len(arm_file)} bytes), latents decoded on x86 vs on aarch64")
            arm_lat = load(f"{cpu}.{cpu}-latents.npz")
            ok &= compare_latents("B", load(f"{cpu}.x86-latents.npz"), arm_lat,
                                  ("x86", "aarch64"))
            dec_arm, dec_x86 = load(f"{cpu}.{cpu}-decoded.npy"), load(f"{cpu}.x86-decoded.npy")
            if dec_arm is None or dec_x86 is None:
                print("  a full decode failed  MISMATCH")
                ok = False
            elif dec_arm.shape != dec_x86.shape or dec_arm.shape != original.shape:
                print(f"  decoded shapes differ: aarch64 {dec_arm.shape}, x86 {dec_x86.shape}, "
                      f"original {original.shape}  MISMATCH")
                ok = False
            else:
                cross = psnr(dec_arm, dec_x86)
                diff = np.abs(dec_arm.astype(np.int16) - dec_x86.astype(np.int16))
                print(f"  pixels {dec_arm.shape}: aarch64 decode vs x86 decode PSNR "
                      f"{cross:.2f} dB (max |diff| {int(diff.max())}, "
                      f"{np.count_nonzero(diff)} of {diff.size} values differ)")
                print(f"  vs original: aarch64 decode {psnr(dec_arm, original):.3f} dB, "
                      f"x86 decode {psnr(dec_x86, original):.3f} dB")
                if cross < args.min_psnr:
                    print(f"  PSNR {cross:.2f} dB below --min-psnr {args.min_psnr}  MISMATCH")
                    ok = False
            # Information only: the encoders' networks may round differently on two machines.
            if x86_file == arm_file:
                print("  (info) x86 encode of the same pixels: byte-identical file")
            elif x86_lat is not None and arm_lat is not None:
                counts = ", ".join(
                    f"{k} {int(np.count_nonzero(x86_lat[k] != arm_lat[k]))}/{x86_lat[k].size}"
                    for k in LATENT_NAMES if x86_lat[k].shape == arm_lat[k].shape)
                print(f"  (info) x86 encode of the same pixels: {len(x86_file)} bytes, not "
                      f"byte-identical; latents differing: {counts}")

        for side in [x86] + arms:
            for task, error in side.info["errors"].items():
                print(f"ERROR on {side.name}, {task}: {error}")
                ok = False
        print("timings (s): " + " | ".join(f"{side.name} {side.info['seconds']}"
                                            for side in [x86] + arms))
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
