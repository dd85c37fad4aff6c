"""The optional C part of hermipy: hermipy._hostcall (see its source). Everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("hermipy._hostcall", ["hermipy/_hostcall.c"], optional=True)])
