"""Notebooks run under Papermill and render as HTML reports (real data, small stores)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

from tests.conftest import external_references
from virtuna.notebooks import (
    HIDDEN_TAG,
    KERNEL_LOG,
    NOTEBOOK_DIR,
    NotebookRun,
    ParameterError,
    check_parameters,
    execute_notebook,
    notebook_parameters,
    notebook_path,
    render_html,
)
from virtuna.store import connect


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
        assert nb.metadata["kernelspec"]["name"] == "virtuna", path.name
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


def _scratch_notebook(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, cells: list
) -> None:
    """notebooks/<name>.ipynb of `cells` on the global python3 kernel, as the runner's folder."""
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    nb.cells = cells
    nbformat.write(nb, notebooks / f"{name}.ipynb")
    monkeypatch.setattr("virtuna.notebooks.NOTEBOOK_DIR", notebooks)


def test_a_failing_notebook_keeps_its_output_and_names_the_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = nbformat.v4.new_code_cell("divisor = 1")
    params.metadata["tags"] = ["parameters"]
    cells = [params, nbformat.v4.new_code_cell("1 / divisor")]
    _scratch_notebook(tmp_path, monkeypatch, "broken", cells)
    run = execute_notebook("broken", tmp_path / "out", {"divisor": 0})
    assert not run.succeeded
    assert "ZeroDivisionError" in (run.error or "")
    assert run.notebook.is_file() and run.html is not None and run.html.is_file()


def test_the_kernels_own_console_output_goes_to_its_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    # ipykernel's start-up warnings and an interrupt's message would land between the
    # runner's lines (the demo's, a scheduled run's log).
    _scratch_notebook(tmp_path, monkeypatch, "quiet", [nbformat.v4.new_code_cell("1 + 1")])
    capfd.readouterr()
    run = execute_notebook("quiet", tmp_path / "out", {})
    assert run.succeeded, run.error
    out, err = capfd.readouterr()
    assert "IPKernelApp" not in out + err
    assert (tmp_path / "out" / KERNEL_LOG).is_file()


def test_unknown_notebook_is_a_clear_error() -> None:
    with pytest.raises(FileNotFoundError, match=r"no notebook nope\.ipynb"):
        notebook_path("nope")


def test_render_html_leaves_out_inputs_stderr_and_hidden_cells_and_loads_nothing(
    tmp_path: Path,
) -> None:
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("secret_input_code = 1")
    cell.outputs = [
        nbformat.v4.new_output("stream", name="stdout", text="visible output"),
        nbformat.v4.new_output("stream", name="stderr", text="[warning] a log line"),
    ]
    hidden = nbformat.v4.new_code_cell("report_job_status(...)")
    hidden.metadata["tags"] = [HIDDEN_TAG]
    hidden.outputs = [nbformat.v4.new_output("stream", name="stdout", text="job_status: done")]
    maths = nbformat.v4.new_markdown_cell("# Title\n\nInline $x^2$ maths")
    nb.cells = [maths, cell, hidden]
    path = tmp_path / "n.ipynb"
    nbformat.write(nb, path)
    html = render_html(path).read_text(encoding="utf-8")
    assert "visible output" in html and "secret_input_code" not in html
    assert "a log line" not in html and "job_status" not in html
    assert external_references(html) == []  # no require.js, MathJax or fonts from a CDN
    assert "<title>n</title>" in html


def test_annotated_parameters_declare_their_types_and_stay_checked() -> None:
    trends = notebook_parameters("trends")
    assert (trends["window_hours"].kind, trends["dry_run"].kind) == ("int", "bool")
    assert trends["as_of"].kind == "str" and trends["as_of"].nullable
    retrain = notebook_parameters("retrain_ml")["schemes"]
    assert (retrain.kind, retrain.items) == ("list", "str")
    sources = notebook_parameters("tier_diagnosis")["sources"]
    assert (sources.kind, sources.items, sources.nullable) == ("list", "str", True)
    assert check_parameters("trends", {"dry_run": False, "as_of": None}) == {
        "dry_run": False,
        "as_of": None,
    }
    for hostile in ({"dry_run": "False\nimport os"}, {"window_hours": 1.5}, {"dry_run": None}):
        with pytest.raises(ParameterError):
            check_parameters("trends", hostile)


JOB_NOTEBOOKS = sorted(
    p.stem for p in NOTEBOOK_DIR.glob("*.ipynb") if "dry_run" in notebook_parameters(p.stem)
)


def test_every_job_notebook_is_a_dry_run_by_default_and_says_so_at_the_top() -> None:
    assert len(JOB_NOTEBOOKS) == 8  # every scheduled job; the three reports write nothing
    for name in JOB_NOTEBOOKS:
        nb = nbformat.read(notebook_path(name), as_version=4)
        assert "dry_run: bool = True" in nb.cells[1].source, name
        assert "Dry run unless `dry_run=False`" in nb.cells[0].source, name
        status = [c for c in nb.cells if "report_job_status(" in c.source]
        assert status and all(HIDDEN_TAG in c.metadata.get("tags", []) for c in status), name


ALL_NOTEBOOKS = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
# Historical data: the jobs run "as of" the newest post or outcome, as the demo does.
AS_OF_LATEST = {"trends", "calibration_audit", "validate_rules"}
# The full model comparison is the report's job; here one kind proves the notebook runs.
LIGHTER = {"tier_training": {"kinds": ["residual_boosting"], "splits": ["creator", "stratified"]}}


# Each execution mostly waits on its kernel (a subprocess), so two run at once on two cores.
PARALLEL = 2


# What a job may write: one fingerprint per table (its rows in a fixed order).
WRITTEN_TABLES = (
    "trending_sounds",
    "trending_hashtags",
    "calibration_params",
    "models",
    "rule_library",
    "analysis_results",
    "outcomes",
    "user_subscriptions",
    "users",
    "scrape_runs",
    "scraped_videos",
    "creators",
    "creator_snapshots",
)


def _fingerprint(store: Path) -> dict[str, object]:
    with connect(store) as con:
        return {
            table: con.execute(
                "SELECT count(*), md5(string_agg(t::VARCHAR, '|' ORDER BY t::VARCHAR)) "
                f"FROM {table} t"
            ).fetchall()
            for table in WRITTEN_TABLES
        }


def _run_on_small_store(name: str, small_store: Path, workdir: Path) -> NotebookRun:
    """notebooks/<name> executed on a private copy of the small store, as a person would run
    it: without dry_run."""
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
    name: str, small_store: Path, small_store_runs: dict[str, Future[NotebookRun]]
) -> None:
    run = small_store_runs[name].result()
    assert run.succeeded, run.error
    assert run.html is not None and run.html.stat().st_size > 0
    # Run by hand (no dry_run given), a notebook leaves the store as it found it.
    store = run.notebook.parent.parent / "store.duckdb"
    assert _fingerprint(store) == _fingerprint(small_store)
    assert not list(store.parent.glob("*models*/*")), "a dry run registered a model file"
    # The report reads offline and clean; every figure it shows is also a PNG in figures/.
    html = run.html.read_text(encoding="utf-8")
    assert external_references(html) == [], name
    assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html
    assert "job_status" not in html
    executed = nbformat.read(run.notebook, as_version=4)
    shown = sum(
        "image/png" in o.get("data", {}) for c in executed.cells for o in c.get("outputs", [])
    )
    assert len(list((run.notebook.parent / "figures").glob("*.png"))) == shown, name
