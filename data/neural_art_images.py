#!/usr/bin/env python3
"""Build the neural-art photos and paintings from their unpacked sources (docs/neural_art.md, "Data").

Usage: python3 data/neural_art_images.py SOURCES DEST

SOURCES holds what data/neural_art_fetch.sh unpacked: deb/<package>/ (each Debian package's
files), skimage/ (scikit-image's sample images) and github/<repository>/ (the paintings fetched
from GitHub). DEST receives content/ and style/. A file of at most 1 MB whose shorter side is at
most 768 px is copied as it is (or, if it is not RGB, written again as 8-bit RGB in its own
format); a larger one is resized with Lanczos to a shorter side of 512 px and written as JPEG of
quality 92 with optimised Huffman tables. The bytes match data/neural_art.sha256 under Pillow
13.0.0, which the fetch script installs.
"""
import os
import shutil
import sys

LARGEST_COPIED_BYTES = 1_000_000
LARGEST_COPIED_SIDE = 768
RESIZED_SIDE = 512

MATE = "deb/mate-backgrounds/usr/share/backgrounds/mate/nature/"
PLASMA = "deb/plasma-workspace-wallpapers/usr/share/wallpapers/"
PLASMA_IMAGE = "/contents/images/2560x1600.jpg"


def plasma(name):
    return PLASMA + name + PLASMA_IMAGE


CONTENT = {
    "mate_aqua.jpg": MATE + "Aqua.jpg",
    "mate_blinds.jpg": MATE + "Blinds.jpg",
    "mate_dune.jpg": MATE + "Dune.jpg",
    "mate_freshflower.jpg": MATE + "FreshFlower.jpg",
    "mate_garden.jpg": MATE + "Garden.jpg",
    "mate_greenmeadow.jpg": MATE + "GreenMeadow.jpg",
    "mate_ladybird.jpg": MATE + "LadyBird.jpg",
    "mate_raindrops.jpg": MATE + "RainDrops.jpg",
    "mate_storm.jpg": MATE + "Storm.jpg",
    "mate_twowings.jpg": MATE + "TwoWings.jpg",
    "mate_wood.jpg": MATE + "Wood.jpg",
    "mate_yellowflower.jpg": MATE + "YellowFlower.jpg",
    "kde_bythewater.jpg": plasma("BytheWater"),
    "kde_coldripple.jpg": plasma("ColdRipple"),
    "kde_colorfulcups.jpg": plasma("ColorfulCups"),
    "kde_eveningglow.jpg": plasma("EveningGlow"),
    "kde_fallenleaf.jpg": plasma("FallenLeaf"),
    "kde_grey.jpg": plasma("Grey"),
    "kde_kite.jpg": plasma("Kite"),
    "kde_onestandsout.jpg": plasma("OneStandsOut"),
    "kde_path.jpg": plasma("Path"),
    "kde_summer_1am.jpg": plasma("summer_1am"),
    "lomiri_kleiber.jpg":
        "deb/lomiri-wallpapers-20.04/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
    "skimage_astronaut.png": "skimage/astronaut.png",
    "skimage_chelsea.png": "skimage/chelsea.png",
    "skimage_coffee.png": "skimage/coffee.png",
    "skimage_rocket.jpg": "skimage/rocket.jpg",
}
STYLE = {
    "starry_night.jpg": "github/neural-style/starry_night.jpg",
    "the_scream.jpg": "github/neural-style/the_scream.jpg",
    "shipwreck.jpg": "github/neural-style/shipwreck.jpg",
    "woman_with_hat_matisse.jpg": "github/neural-style/woman-with-hat-matisse.jpg",
    "great_wave_hokusai.jpg": "github/fast-style-transfer/wave.jpg",
    "udnie_picabia.jpg": "github/fast-style-transfer/udnie.jpg",
    "cork_texture.png": "deb/mypaint-data-extras/usr/share/mypaint/backgrounds/ramon/HR_Cork.png",
    "kde_autumn_painting.jpg": plasma("Autumn"),
}


def build(source, destination):
    """Writes destination from source; returns what was done."""
    from PIL import Image  # imported here so that the file lists can be read without Pillow

    Image.MAX_IMAGE_PIXELS = None  # the 2560x1600 wallpapers are trusted sources
    image = Image.open(source)
    width, height = image.size
    small = (os.path.getsize(source) <= LARGEST_COPIED_BYTES
             and min(width, height) <= LARGEST_COPIED_SIDE)
    if small and image.mode == "RGB":
        shutil.copyfile(source, destination)
        return "copied"
    if small:
        image.convert("RGB").save(destination)
        return "converted to RGB"
    scale = RESIZED_SIDE / min(width, height)
    size = (round(width * scale), round(height * scale))
    image.convert("RGB").resize(size, Image.LANCZOS).save(destination, quality=92, optimize=True)
    return "resized to %dx%d" % size


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().splitlines()[2])
    sources, destination = sys.argv[1], sys.argv[2]
    missing = []
    for folder, files in (("content", CONTENT), ("style", STYLE)):
        os.makedirs(os.path.join(destination, folder), exist_ok=True)
        for name, relative in files.items():
            source = os.path.join(sources, relative)
            if not os.path.exists(source):
                missing.append("%s/%s" % (folder, name))
                continue
            done = build(source, os.path.join(destination, folder, name))
            print("%s/%s: %s" % (folder, name, done), file=sys.stderr)
    if missing:
        print("missing sources for: " + " ".join(missing), file=sys.stderr)


if __name__ == "__main__":
    main()
