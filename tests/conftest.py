"""Shared fixtures: tiny CodeGemma checkpoints in the real layout, made once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tutor.engine import load
from tutor.engine.tiny import make_tiny


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny")
    return {variant: make_tiny(root / f"codegemma-{variant}", variant) for variant in ("2b", "7b", "7b-it")}


@pytest.fixture(scope="session")
def tiny_2b_dir(tiny_dirs) -> Path:
    return tiny_dirs["2b"]


@pytest.fixture(scope="session")
def tiny_2b(tiny_2b_dir):
    return load(tiny_2b_dir, device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_7b(tiny_dirs):
    return load(tiny_dirs["7b"], device="cpu", dtype="float32")


@pytest.fixture(scope="session")
def tiny_it(tiny_dirs):
    return load(tiny_dirs["7b-it"], device="cpu", dtype="float32")


@pytest.fixture
def tiny_copy(tiny_2b_dir, tmp_path) -> Path:
    """A private copy of the tiny 2B folder that a test may break."""
    return Path(shutil.copytree(tiny_2b_dir, tmp_path / "codegemma-2b"))
