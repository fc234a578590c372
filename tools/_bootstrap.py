"""Make ``stan_mmaction`` importable from a clean clone and repair the
pinned stack before any config is parsed (``custom_imports`` runs too late
for ``pkg::`` base-config resolution).

In a clone the repository goes on the import path; the copy of the tools
an installed package carries (``stan_mmaction/.mim/tools``, run by
``stan-mmaction``) uses the installed package."""
import os.path as osp
import sys

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if osp.isdir(osp.join(REPO_ROOT, 'stan_mmaction')) and \
        REPO_ROOT not in sys.path:
    sys.path.insert(0, REPO_ROOT)

from stan_mmaction import compat  # noqa: E402

compat.apply_all()
