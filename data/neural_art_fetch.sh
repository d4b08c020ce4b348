#!/usr/bin/env bash
# Builds the neural-art folder (photos, paintings, feature network) in DEST from each file's
# source (docs/neural_art.md, "Data"); `make neural-art-data` runs it when NEURAL_ART is unset
# and then checks DEST against data/neural_art.sha256.
#
# Usage: data/neural_art_fetch.sh DEST
#
# Sources, kept in DEST.sources so that a second run fetches only what is missing:
#   Debian bookworm packages (apt-get download), checked against data/neural_art_sources.sha256;
#   scikit-image's wheel from PyPI, checked the same way;
#   six paintings from two GitHub repositories at fixed commits, checked after they are built;
#   MobileNet v1's weights, Coral's uint8 .tflite from GitHub at a fixed commit, checked, then
#   dequantised to mobilenet_v1.npz by data/mobilenet_tflite.py (numpy);
#   Pillow 13.0.0 from PyPI, which data/neural_art_images.py needs to give the same bytes.
# Where a source cannot be reached it says which, and how to supply it by hand.
set -euo pipefail

dest=${1:?usage: data/neural_art_fetch.sh DEST}
data=$(cd "$(dirname "$0")" && pwd)
sources=$dest.sources
python=${PYTHON:-python3}
sudo=${SUDO:-}
mkdir -p "$dest" "$sources"/{deb,skimage,python} "$sources/github/neural-style" \
  "$sources/github/fast-style-transfer" "$sources/github/test_data"

say() { echo "make: $*" >&2; }
check() { # check FILE: FILE's SHA-256 against data/neural_art_sources.sha256
  (cd "$(dirname "$1")" && grep " $(basename "$1")\$" "$data/neural_art_sources.sha256" |
    sha256sum --check --quiet) || { say "$1 does not match data/neural_art_sources.sha256; delete it and run make again"; exit 1; }
}

# Debian packages: the photos of MATE, KDE Plasma and Lomiri, and two paintings.
debs=(mate-backgrounds=1.26.0-1 plasma-workspace-wallpapers=4:5.27.5-2
  lomiri-wallpapers-20.04=20.04.0-2 mypaint-data-extras=2.0.1-9)
for pinned in "${debs[@]}"; do
  package=${pinned%%=*}
  [ -d "$sources/deb/$package" ] && continue
  command -v apt-get >/dev/null || { say "no apt-get: the photos come from Debian's $package; \
point NEURAL_ART at a neural-art folder instead"; exit 1; }
  say "fetching Debian's $pinned"
  (cd "$sources" && { apt-get download -qq "$pinned" 2>/dev/null ||
    { $sudo apt-get update -qq && apt-get download -qq "$pinned"; }; }) ||
    { say "apt-get could not download $pinned; point NEURAL_ART at a neural-art folder instead"; exit 1; }
  deb=$(ls "$sources/${package}"_*.deb)
  check "$deb"
  dpkg-deb -x "$deb" "$sources/deb/$package.tmp" && mv "$sources/deb/$package.tmp" "$sources/deb/$package"
  rm "$deb"
done

# PyPI: four sample photos inside scikit-image's wheel (one fixed wheel, whatever the machine).
if [ ! -e "$sources/skimage/rocket.jpg" ]; then
  say "fetching scikit-image 0.26.0's wheel from PyPI"
  wheel=scikit_image-0.26.0-cp311-cp311-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl
  "$python" -m pip download --quiet --no-deps --no-cache-dir --only-binary=:all: \
    --platform manylinux_2_28_x86_64 --python-version 3.11 scikit-image==0.26.0 -d "$sources" ||
    { say "pip could not download scikit-image 0.26.0; point NEURAL_ART at a neural-art folder instead"; exit 1; }
  check "$sources/$wheel"
  "$python" - "$sources/$wheel" "$sources/skimage" <<'EOF'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg"):
        with open(os.path.join(sys.argv[2], name), "wb") as out:
            out.write(wheel.read("skimage/data/" + name))
EOF
  rm "$sources/$wheel"
fi

# GitHub: six paintings. Their bytes are checked once built (data/neural_art.sha256).
unreached=()
fetch_github() { # fetch_github REPOSITORY COMMIT PATH NAME
  local to="$sources/github/${1#*/}/$4"
  [ -e "$to" ] && return 0
  local url="https://github.com/$1/raw/$2/$3"
  curl -fsSL --retry 2 --max-time 120 -o "$to.tmp" "$url" 2>/dev/null && mv "$to.tmp" "$to" ||
    { rm -f "$to.tmp"; unreached+=("$url -> $to"); }
}
for painting in starry_night.jpg the_scream.jpg shipwreck.jpg woman-with-hat-matisse.jpg; do
  fetch_github jcjohnson/neural-style 07c4b82 "examples/inputs/$painting" "$painting"
done
for painting in wave.jpg udnie.jpg; do
  fetch_github lengstrom/fast-style-transfer 0d3d981 "examples/style/$painting" "$painting"
done
tflite=mobilenet_v1_1.0_224_quant_embedding_extractor.tflite
fetch_github google-coral/test_data 104342d2d3480b3e66203073dac24f4e2dbb4c41 "$tflite" "$tflite"

# Pillow at the version whose resampling and JPEG encoder give data/neural_art.sha256's bytes.
if ! PYTHONPATH="$sources/python" "$python" -c "import PIL, sys; sys.exit(PIL.__version__ != '13.0.0')" 2>/dev/null; then
  say "fetching Pillow 13.0.0 from PyPI"
  rm -rf "$sources/python" && mkdir -p "$sources/python"
  "$python" -m pip download --quiet --no-deps --no-cache-dir --only-binary=:all: pillow==13.0.0 \
    -d "$sources/python" || { say "pip could not download Pillow 13.0.0 for $python"; exit 1; }
  "$python" -m zipfile -e "$sources"/python/pillow-13.0.0-*.whl "$sources/python"
fi
PYTHONPATH="$sources/python" "$python" "$data/neural_art_images.py" "$sources" "$dest"

# MobileNet v1's weights: the .tflite checked, then dequantised with a python that has numpy.
model=$sources/github/test_data/$tflite
if [ -e "$model" ] && [ ! -e "$dest/mobilenet_v1/mobilenet_v1.npz" ]; then
  check "$model"
  numpy_python=
  for p in "$python" /usr/bin/python3; do
    if "$p" -c "import numpy" 2>/dev/null; then numpy_python=$p; break; fi
  done
  if [ -z "$numpy_python" ]; then
    say "installing Debian's python3-numpy to convert MobileNet v1's weights"
    { $sudo apt-get install -y -qq python3-numpy || { $sudo apt-get update -qq &&
      $sudo apt-get install -y -qq python3-numpy; }; } >/dev/null ||
      { say "apt-get could not install python3-numpy; point NEURAL_ART at a neural-art folder instead"; exit 1; }
    numpy_python=/usr/bin/python3
  fi
  mkdir -p "$dest/mobilenet_v1"
  "$numpy_python" "$data/mobilenet_tflite.py" "$model" "$dest/mobilenet_v1/mobilenet_v1.npz"
fi

if [ ${#unreached[@]} -gt 0 ]; then
  say "could not fetch ${#unreached[@]} file(s) from GitHub; download each URL where the \
network allows, save it as the path after ->, and run make again, or point NEURAL_ART at a \
neural-art folder:"
  printf '  %s\n' "${unreached[@]}" >&2
  exit 1
fi
