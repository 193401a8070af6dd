"""Package discovery for setuptools (everything else is in setup.cfg).

``svg_pyro`` and every package under it are found, not listed; the Pyro model and guide code live
in the top-level folders ``models/`` and ``guides/`` and install as ``svg_pyro.models`` and
``svg_pyro.guides`` (``package_dir`` in setup.cfg), with every package under them found too.
"""

from setuptools import find_packages, setup

MAPPED = ("models", "guides")  # folder -> svg_pyro.<folder>

packages = find_packages(include=["svg_pyro", "svg_pyro.*"])
for folder in MAPPED:
    packages += [f"svg_pyro.{p}" for p in find_packages(include=[folder, f"{folder}.*"])]

setup(packages=packages)
