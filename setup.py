"""The tools in programs/ install as the package pybpf_programs (found by `pybpf run
NAME`); everything else is in pyproject.toml."""
from setuptools import find_packages, setup

setup(
    packages=find_packages(include=["pybpf", "pybpf.*"]) + ["pybpf_programs",
                                                           "pybpf_programs.tutorial"],
    package_dir={"pybpf_programs": "programs"},
    package_data={"pybpf": ["py.typed"], "pybpf_programs": ["README.md"]},
)
