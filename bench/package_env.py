"""Where the bench scripts that drive the Python package find the build
and the package: imported before `import spr` (it sets SPR_LIBRARY and
SPR_LIBEXEC_DIR to the build's unless they are set, and puts python/ on
sys.path)."""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BUILD = os.path.abspath(os.environ.get("SPR_BUILD") or os.path.join(REPO, "build"))
RESULTS = os.path.join(HERE, "RESULTS.md")

os.environ.setdefault("SPR_LIBRARY", os.path.join(BUILD, "libspr.so"))
os.environ.setdefault("SPR_LIBEXEC_DIR", os.path.join(BUILD, "libexec", "spr"))
sys.path.insert(0, os.path.join(REPO, "python"))
