#!/bin/bash
# Build an arm64 (aarch64) Python 3.11 + numpy + ai-edge-litert environment that runs under
# qemu-user on an x86-64 host, for the cross-architecture check (tests/arm64/check.py).
#
# Usage (as root, on Debian 12 bookworm amd64), from the repository root:
#     bash tests/arm64/setup.sh [DIR]            # DIR defaults to build/arm64 (git-ignored)
#
# What ends up in DIR:
#   python          wrapper: runs the sysroot's python3.11 under qemu-aarch64-static, with
#                   DIR/site on PYTHONPATH (after any PYTHONPATH the caller gives), on the
#                   emulated CPU $ARM64_CPU: cortex-a76 (default) or cortex-a72
#   sysroot/        Debian bookworm arm64 packages python3.11, python3-numpy (1.24),
#                   python3-threadpoolctl (aedge.hyper), libstdc++6 (the LiteRT wheel's C++
#                   runtime) and their dependency closure, unpacked
#   cpus/NAME/      per emulated CPU: the qemu -L prefix (an aarch64 /proc/cpuinfo for that
#                   CPU, links to the sysroot for the rest); see step 2b for why
#   site/           the ai-edge-litert aarch64 wheel, unpacked (numpy comes from the sysroot)
#   wheels/         the downloaded wheel(s)
#   packages.txt    the exact Debian package versions in the sysroot
#   apt/            a private apt instance (lists and .deb cache; deletable)
#
# Idempotent: each step is skipped when its result is already there (stamp files record what
# was built from what). FORCE=1 rebuilds everything.
#
# The host system is NOT modified except for installing qemu-user-static (if missing): no
# `dpkg --add-architecture`, no arm64 packages in the host dpkg database. arm64 packages are
# resolved by a private apt instance (own config, lists, cache and an empty dpkg status file)
# that treats arm64 as its native arch, and unpacked with dpkg-deb -x.
set -euo pipefail

REPO=$(CDPATH= cd -- "$(dirname -- "$(readlink -f -- "$0")")/../.." && pwd)
ARM64_DIR=${1:-$REPO/build/arm64}
mkdir -p "$ARM64_DIR"
ARM64_DIR=$(CDPATH= cd -- "$ARM64_DIR" && pwd)

PKGS=${PKGS:-"python3.11 python3-numpy python3-threadpoolctl libstdc++6"}
LITERT_VERSION=${LITERT_VERSION:-2.3.0}
WHEEL_PLATFORM=${WHEEL_PLATFORM:-manylinux_2_27_aarch64}
HOST_PYTHON=${HOST_PYTHON:-python3}      # any host python with pip: only downloads and unzips
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${SECURITY_MIRROR:-http://deb.debian.org/debian-security}
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
FORCE=${FORCE:-0}

APTROOT=$ARM64_DIR/apt
SYSROOT=$ARM64_DIR/sysroot
SITE=$ARM64_DIR/site
WHEELS=$ARM64_DIR/wheels
export DEBIAN_FRONTEND=noninteractive
echo "arm64 environment in $ARM64_DIR"

# ---- 1. qemu-user-static -------------------------------------------------
if ! command -v qemu-aarch64-static >/dev/null 2>&1 \
   && [ ! -x "$ARM64_DIR/qemu/usr/bin/qemu-aarch64-static" ]; then
    apt-get update -q
    if ! apt-get install -y -q --no-install-recommends qemu-user-static; then
        echo "apt-get install failed; unpacking qemu-user-static into $ARM64_DIR/qemu" >&2
        tmp=$(mktemp -d)
        (cd "$tmp" && apt-get download qemu-user-static)
        rm -rf "$ARM64_DIR/qemu"
        dpkg-deb -x "$tmp"/qemu-user-static_*.deb "$ARM64_DIR/qemu"
        rm -rf "$tmp"
    fi
fi
if command -v qemu-aarch64-static >/dev/null 2>&1; then
    QEMU=qemu-aarch64-static
else
    QEMU=$ARM64_DIR/qemu/usr/bin/qemu-aarch64-static
fi
"$QEMU" --version | head -1

# ---- 2. sysroot from Debian arm64 packages (private apt instance) ----------
SYSROOT_STAMP="packages: $PKGS"
if [ "$FORCE" != 1 ] && [ -x "$SYSROOT/usr/bin/python3.11" ] \
   && [ "$(cat "$SYSROOT/.stamp" 2>/dev/null)" = "$SYSROOT_STAMP" ]; then
    echo "sysroot: already built ($PKGS)"
else
    [ -r "$KEYRING" ] || apt-get install -y -q debian-archive-keyring
    mkdir -p "$APTROOT"/etc/apt/sources.list.d "$APTROOT"/etc/apt/preferences.d \
             "$APTROOT"/etc/apt/apt.conf.d "$APTROOT"/var/lib/apt/lists/partial \
             "$APTROOT"/var/cache/apt/archives/partial "$APTROOT"/var/lib/dpkg
    : > "$APTROOT/var/lib/dpkg/status"      # empty: nothing "installed"
    cat > "$APTROOT/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Architectures: arm64
Signed-By: $KEYRING

Types: deb
URIs: $SECURITY_MIRROR
Suites: bookworm-security
Components: main
Architectures: arm64
Signed-By: $KEYRING
EOF
    cat > "$APTROOT/apt.conf" <<EOF
Dir "$APTROOT/";
Dir::Etc "$APTROOT/etc/apt/";
Dir::State "$APTROOT/var/lib/apt/";
Dir::State::status "$APTROOT/var/lib/dpkg/status";
Dir::Cache "$APTROOT/var/cache/apt/";
APT::Architecture "arm64";
APT::Architectures { "arm64"; };
APT::Install-Recommends "false";
APT::Install-Suggests "false";
Acquire::Languages "none";
EOF
    export APT_CONFIG=$APTROOT/apt.conf
    apt-get update -q
    apt-get clean -q     # only the closure of $PKGS ends up in the cache, hence the sysroot
    # apt's real resolver computes the dependency closure (libc6, libpython3.11-stdlib,
    # libblas3, liblapack3, libgfortran5, libgcc-s1, ...).
    # shellcheck disable=SC2086
    apt-get install -y -q --download-only $PKGS
    mapfile -t DEBS < <(ls "$APTROOT"/var/cache/apt/archives/*.deb)
    unset APT_CONFIG

    rm -rf "$SYSROOT.new"
    mkdir -p "$SYSROOT.new"
    : > "$ARM64_DIR/packages.txt.new"
    for d in "${DEBS[@]}"; do
        dpkg-deb -x "$d" "$SYSROOT.new"
        dpkg-deb -W --showformat='${Package} ${Version} ${Architecture}\n' "$d" \
            >> "$ARM64_DIR/packages.txt.new"
    done
    # Maintainer scripts are not run by `dpkg-deb -x`; the only one that matters is
    # update-alternatives for libblas.so.3 / liblapack.so.3 (numpy needs them). Relative
    # links, so they resolve inside the sysroot under qemu -L.
    LIBDIR=$SYSROOT.new/usr/lib/aarch64-linux-gnu
    ln -sfn blas/libblas.so.3     "$LIBDIR/libblas.so.3"
    ln -sfn lapack/liblapack.so.3 "$LIBDIR/liblapack.so.3"
    echo "$SYSROOT_STAMP" > "$SYSROOT.new/.stamp"
    rm -rf "$SYSROOT"
    mv "$SYSROOT.new" "$SYSROOT"
    mv "$ARM64_DIR/packages.txt.new" "$ARM64_DIR/packages.txt"
    echo "sysroot: $(wc -l < "$ARM64_DIR/packages.txt") packages"
fi

# ---- 2b. CPU profiles: an emulated CPU model and a /proc/cpuinfo that matches it ---------
# qemu-user 7.2 shows an aarch64 guest the host's x86 /proc/cpuinfo. LiteRT's CPU detection
# (the cpuinfo library under XNNPACK and ruy) then finds no usable ARM cores and LiteRT
# segfaults (in allocate_tensors with the default XNNPACK delegate, in invoke without it).
# qemu -L serves a file that exists under its prefix in place of the host's, so each profile
# is a prefix cpus/NAME/ holding proc/cpuinfo plus links to the sysroot's top-level folders.
# The description must match the emulated CPU (qemu -cpu NAME): cpuinfo trusts the part
# number for some features, and a Cortex-A76 description on an emulated Cortex-A72 ends in
# SIGILL. qemu's default "max" CPU is not offered: it has SME, and with SME LiteRT's
# int8-dynamic networks compute wrong results under qemu 7.2 (29 dB off on robin's g_s; with
# max,sme=off they agree with x86 to 1e-7).
#   cortex-a72: ARMv8.0 (Raspberry Pi 4 class), cortex-a76: ARMv8.2 + dotprod/fp16 (Pi 5).
cpuinfo() {  # part variant revision features
    for n in 0 1; do
        printf 'processor\t: %s\nBogoMIPS\t: 108.00\nFeatures\t: %s\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: %s\nCPU part\t: %s\nCPU revision\t: %s\n\n' \
            "$n" "$4" "$2" "$1" "$3"
    done
}
make_profile() {  # name, then cpuinfo's arguments
    local dir=$ARM64_DIR/cpus/$1 top
    shift
    rm -rf "$dir"
    mkdir -p "$dir/proc"
    for top in "$SYSROOT"/*; do
        [ "$(basename "$top")" = proc ] || ln -s "../../sysroot/$(basename "$top")" "$dir/"
    done
    cpuinfo "$@" > "$dir/proc/cpuinfo"
}
make_profile cortex-a72 0xd08 0x0 3 "fp asimd evtstrm crc32 cpuid"
make_profile cortex-a76 0xd0b 0x4 1 \
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
echo "cpu profiles: $(ls "$ARM64_DIR/cpus" | tr '\n' ' ')"

# ---- 3. ai-edge-litert's aarch64 wheel, unpacked into site/ ----------------
# Its other declared dependencies (flatbuffers, tqdm, protobuf, ml_dtypes, typing-extensions,
# backports.strenum) are not imported by ai_edge_litert.interpreter, so they are left out;
# numpy (>=1.23.2 required) is Debian's 1.24 from the sysroot.
WHEEL=ai_edge_litert-$LITERT_VERSION-cp311-cp311-$WHEEL_PLATFORM.whl
if [ "$FORCE" = 1 ] || [ ! -f "$WHEELS/$WHEEL" ]; then
    mkdir -p "$WHEELS"
    "$HOST_PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
        --platform "$WHEEL_PLATFORM" -d "$WHEELS" "ai-edge-litert==$LITERT_VERSION"
fi
if [ "$FORCE" != 1 ] && [ "$(cat "$SITE/.stamp" 2>/dev/null)" = "$WHEEL" ]; then
    echo "site: already has $WHEEL"
else
    rm -rf "$SITE.new"
    mkdir -p "$SITE.new"
    "$HOST_PYTHON" -m zipfile -e "$WHEELS/$WHEEL" "$SITE.new"
    echo "$WHEEL" > "$SITE.new/.stamp"
    rm -rf "$SITE"
    mv "$SITE.new" "$SITE"
    echo "site: unpacked $WHEEL"
fi
(cd "$WHEELS" && sha256sum ./*.whl) > "$ARM64_DIR/wheels.txt"

# ---- 4. wrapper -------------------------------------------------------------
cat > "$ARM64_DIR/python.new" <<'EOF'
#!/bin/sh
# Run Debian bookworm's arm64 (aarch64) python3.11 + numpy (+ ai-edge-litert from site/)
# under qemu-user. Use it like python3; extra import paths can be given via PYTHONPATH
# (pure-python folders only: x86 extension modules cannot load here).
ARM64_DIR=$(CDPATH= cd -- "$(dirname -- "$(readlink -f -- "$0")")" && pwd)
SYSROOT="$ARM64_DIR/sysroot"
if command -v qemu-aarch64-static >/dev/null 2>&1; then
    QEMU=qemu-aarch64-static
else
    QEMU="$ARM64_DIR/qemu/usr/bin/qemu-aarch64-static"
fi
# Keep any host Python setup (pyenv, venv, ~/.local site-packages) out.
unset PYTHONHOME PYTHONEXECUTABLE __PYVENV_LAUNCHER__ VIRTUAL_ENV
export PYTHONNOUSERSITE=1
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$ARM64_DIR/site"
# The emulated CPU, with its /proc/cpuinfo (see setup.sh): ARM64_CPU=cortex-a72 or cortex-a76.
ARM64_CPU=${ARM64_CPU:-cortex-a76}
if [ ! -f "$ARM64_DIR/cpus/$ARM64_CPU/proc/cpuinfo" ]; then
    echo "ARM64_CPU=$ARM64_CPU: no such profile in $ARM64_DIR/cpus" >&2
    exit 2
fi
unset QEMU_CPU
exec "$QEMU" -cpu "$ARM64_CPU" -L "$ARM64_DIR/cpus/$ARM64_CPU" "$SYSROOT/usr/bin/python3.11" "$@"
EOF
chmod +x "$ARM64_DIR/python.new"
mv "$ARM64_DIR/python.new" "$ARM64_DIR/python"

# ---- 5. smoke test ---------------------------------------------------------
for cpu in $(ls "$ARM64_DIR/cpus"); do
ARM64_CPU=$cpu "$ARM64_DIR/python" -c "
import platform, numpy as np
assert platform.machine() == 'aarch64', platform.machine()
from ai_edge_litert.interpreter import Interpreter
import ai_edge_litert
print('$cpu:', platform.machine(), 'python', platform.python_version(), 'numpy',
      np.__version__, 'ai-edge-litert', ai_edge_litert.__version__)
assert 'CPU part' in open('/proc/cpuinfo').read()
import zlib, struct, hashlib, zipfile, json, dataclasses, io"
done
du -sh "$SYSROOT" "$SITE"
echo "OK: run $ARM64_DIR/python"
