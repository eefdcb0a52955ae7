"""Notebooks run under Papermill and render as HTML reports (real data, small stores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from virtuna.notebooks import (
    NOTEBOOK_DIR,
    NotebookRun,
    execute_notebook,
    notebook_path,
    render_html,
)


def _outputs_text(notebook: Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    texts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts.append(json.dumps(output.get("data", {})) + output.get("text", ""))
    return "\n".join(texts)


def test_every_notebook_is_parameterized_and_names_its_kernel() -> None:
    notebooks = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        assert nb.metadata["kernelspec"]["name"] == "python3", path.name
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, f"{path.name}: one parameters cell expected"
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), (
            f"{path.name}: commit notebooks without outputs"
        )


@pytest.mark.slow
def test_trends_notebook_on_the_bundled_data_shows_trending_sounds(
    bundled_copy: Path, tmp_path: Path
) -> None:
    from tests.conftest import END_OF_TRENDING_2025

    params = {"db_path": str(bundled_copy), "as_of": END_OF_TRENDING_2025.isoformat()}
    run = execute_notebook("trends", tmp_path / "out", params)
    assert run.succeeded, run.error
    text = _outputs_text(run.notebook)
    assert "ECE Marketing Airball" in text  # the 2025 scrape's most repeated named sound
    assert "image/png" in text  # the velocity chart
    html = run.html.read_text(encoding="utf-8") if run.html else ""
    assert "Trending sounds and hashtags" in html
    assert "trend_phase" in html and "declining" in html
    assert "calculate_trends(" not in html  # input cells are left out of the report


def test_a_failing_notebook_keeps_its_output_and_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    params = nbformat.v4.new_code_cell("divisor = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("1 / divisor")]
    nbformat.write(nb, notebooks / "broken.ipynb")
    monkeypatch.setattr("virtuna.notebooks.NOTEBOOK_DIR", notebooks)
    run = execute_notebook("broken", tmp_path / "out", {"divisor": 0})
    assert not run.succeeded
    assert "ZeroDivisionError" in (run.error or "")
    assert run.notebook.is_file() and run.html is not None and run.html.is_file()


def test_unknown_notebook_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match=r"no notebook nope\.ipynb"):
        notebook_path("nope")


def test_render_html_leaves_out_inputs(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("secret_input_code = 1")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="visible output")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    html = render_html(path).read_text(encoding="utf-8")
    assert "visible output" in html and "secret_input_code" not in html


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small store of real data: the Apify sample and the December 2020 trending feed."""
    from tests.conftest import RAW
    from virtuna.ingest import ingest_file

    path = tmp_path_factory.mktemp("small") / "small.duckdb"
    for name in ("tiktok_apify_2023_sample.jsonl", "tiktok_trending_dec2020.json"):
        ingest_file(RAW / name, db_path=path)
    return path


ALL_NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
# Historical data: the jobs run "as of" the newest post or outcome, as the demo does.
AS_OF_LATEST = {"trends", "calibration_audit", "validate_rules"}
# The full model comparison is the report's job; here one kind proves the notebook runs.
LIGHTER = {"tier_training": {"kinds": ["residual_boosting"], "splits": ["creator", "stratified"]}}


# Each execution mostly waits on its kernel (a subprocess), so two run at once on two cores.
PARALLEL = 2


def _run_on_small_store(name: str, small_store: Path, workdir: Path) -> NotebookRun:
    """notebooks/<name> executed on a private copy of the small store."""
    import shutil

    workdir.mkdir(parents=True)
    store = workdir / "store.duckdb"
    shutil.copy(small_store, store)
    parameters: dict[str, object] = {"db_path": str(store)}
    if name in AS_OF_LATEST:
        parameters["as_of"] = "latest"
    parameters.update(LIGHTER.get(name, {}))
    return execute_notebook(name, workdir / "out", parameters, timeout_s=600)


@pytest.fixture(scope="module")
def small_store_runs(
    request: pytest.FixtureRequest, small_store: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Future[NotebookRun]]]:
    """The selected notebooks' executions on the small store, started together (a pool of 2)."""
    selected = {
        item.callspec.params["name"]
        for item in request.session.items
        if item.originalname == "test_every_notebook_runs_on_a_small_store"
    }
    base = tmp_path_factory.mktemp("small-runs")
    with ThreadPoolExecutor(PARALLEL) as pool:
        runs = {
            name: pool.submit(_run_on_small_store, name, small_store, base / name)
            for name in sorted(selected)
        }
        yield runs
        for run in runs.values():  # a run no test waited for (e.g. after -x) is not started
            run.cancel()


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_NOTEBOOKS)
def test_every_notebook_runs_on_a_small_store(
    name: str, small_store_runs: dict[str, Future[NotebookRun]]
) -> None:
    run = small_store_runs[name].result()
    assert run.succeeded, run.error
    assert run.html is not None and run.html.stat().st_size > 0
