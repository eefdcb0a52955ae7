"""The notebooks as a data scientist meets them: executed as committed by nbval
(`make nbval`), with kernels started in notebooks/, on a store of real data."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from virtuna.notebooks import NOTEBOOK_DIR


@pytest.mark.slow
def test_every_notebook_passes_nbval_on_a_real_data_store(
    small_store: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store.duckdb"
    shutil.copy(small_store, store)
    before = sorted(p.name for p in NOTEBOOK_DIR.iterdir())
    env = {**os.environ, "VIRTUNA_DB_PATH": str(store), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-kernel-name", "virtuna",
         "-p", "no:cacheprovider", "-q", "--no-cov", "notebooks/"],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert " passed" in run.stdout and " failed" not in run.stdout
    # Nothing written beside the notebooks (no second store in notebooks/data/).
    assert sorted(p.name for p in NOTEBOOK_DIR.iterdir()) == before
