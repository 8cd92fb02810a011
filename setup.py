"""Builds the scanner's compiled digit-run pass; everything else is in pyproject.toml.

The extension is optional: where it cannot be compiled (no C compiler), the install
goes on and sovra uses the same pass written in Python.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "sovra.classify._native",
            ["src/sovra/classify/_native.c"],
            optional=True,
        )
    ]
)
