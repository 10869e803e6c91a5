#!/usr/bin/env bash
# Real test images from the package registries into a cache (never
# committed): pydicom's and pydicom-data's DICOM test files (MIT; their
# README.txt and LICENSE files are kept beside them), and the MetaImage and
# NRRD files of ITK's examples (Debian's insighttoolkit5-examples, Apache-2.0;
# Debian's copyright file kept beside them) in itk-formats/.
# Usage: scripts/fetch_test_data.sh [CACHE]  (default ~/.cache/ume-data)
# Prints the cache folder. Safe to re-run: finished downloads are kept.
set -euo pipefail
cache="${1:-${UME_DATA:-$HOME/.cache/ume-data}}"
dicom="$cache/dicom"
mkdir -p "$cache"
if [ ! -f "$dicom/.done" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
        "pydicom==3.0.2" "pydicom-data==1.0.0" -d "$tmp" >&2
    mkdir -p "$dicom/pydicom" "$dicom/pydicom-data"
    python3 - "$tmp" "$dicom" <<'PY'
import sys, zipfile, glob, os
tmp, out = sys.argv[1], sys.argv[2]
for whl in glob.glob(os.path.join(tmp, "*.whl")):
    z = zipfile.ZipFile(whl)
    data = "pydicom-data" if "pydicom_data" in whl else "pydicom"
    for n in z.namelist():
        if "/test_files/" in n:
            rel = n.split("/test_files/", 1)[1]
        elif n.startswith("data_store/data/"):
            rel = n[len("data_store/data/"):]
        elif n.endswith("dist-info/LICENSE") or n.endswith("licenses/LICENSE"):
            rel = "LICENSE"
        else:
            continue
        if not rel or n.endswith("/"):
            continue
        dst = os.path.join(out, data, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with open(dst, "wb") as f:
            f.write(z.read(n))
PY
    touch "$dicom/.done"
fi

formats="$cache/itk-formats"
if [ ! -f "$formats/.done" ]; then
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
    opts=()
    # As root, apt cannot drop to _apt in a private temp dir.
    [ "$(id -u)" -eq 0 ] && opts=(-o APT::Sandbox::User=root)
    pkg=insighttoolkit5-examples
    if ! ( cd "$tmp" && apt-get download -qq "${opts[@]}" "$pkg" >&2 ); then
        sudo=""
        [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && sudo="sudo"
        $sudo apt-get update -qq >&2
        ( cd "$tmp" && apt-get download -qq "${opts[@]}" "$pkg" >&2 )
    fi
    dpkg-deb -x "$tmp"/"$pkg"_*.deb "$tmp/x"
    doc="$tmp/x/usr/share/doc/$pkg"
    rm -rf "$formats"
    mkdir -p "$formats"
    find "$doc/examples/Data" -maxdepth 1 -type f \
        \( -name '*.mha' -o -name '*.mhd' -o -name '*.nhdr' -o -name '*.nrrd' \
           -o -name '*.raw' -o -name '*.zraw' \) -exec cp {} "$formats/" \;
    cp "$doc/copyright" "$formats/copyright"
    touch "$formats/.done"
fi
echo "$cache"
