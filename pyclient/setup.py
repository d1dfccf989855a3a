# setuptools reads the metadata from pyproject.toml; cffi's build hook
# (cffi_modules) has no pyproject form yet, so it is named here.
from setuptools import setup

setup(cffi_modules=["chroma2/_build.py:ffibuilder"])
