"""Build script; the metadata lives in setup.cfg.

The command-line package sits in the top-level ``cli/`` folder and is installed
under the import name ``mr2ct_cli`` (mapped in setup.cfg's ``package_dir``), so
it cannot shadow another distribution's ``cli`` package. ``find_packages`` does
not see renamed folders, hence the explicit addition here.
"""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["mr2ct", "mr2ct.*"]) + ["mr2ct_cli"])
