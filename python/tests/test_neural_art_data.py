"""data/neural_art_images.py builds exactly the photos and paintings data/neural_art.sha256 lists."""

import os
import sys
import unittest

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "data")
sys.path.insert(0, DATA)
import neural_art_images  # noqa: E402


class BuiltFiles(unittest.TestCase):
    def test_every_checked_image_has_a_source_and_no_other(self):
        with open(os.path.join(DATA, "neural_art.sha256")) as sums:
            checked = {line.split()[1] for line in sums if line.strip()}
        built = {"content/" + name for name in neural_art_images.CONTENT}
        built |= {"style/" + name for name in neural_art_images.STYLE}
        self.assertEqual(built, {path for path in checked if not path.startswith("mobilenet_v1/")})

    def test_every_source_comes_from_a_fetched_folder(self):
        for relative in list(neural_art_images.CONTENT.values()) + list(neural_art_images.STYLE.values()):
            self.assertIn(relative.split("/")[0], ("deb", "skimage", "github"), relative)


if __name__ == "__main__":
    unittest.main()
