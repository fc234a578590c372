"""Make ``stan_mmaction`` importable from a clean clone and repair the
pinned stack before any config is parsed (``custom_imports`` runs too late
for ``mmaction::`` base-config resolution)."""
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from stan_mmaction import compat  # noqa: E402

compat.apply_all()
