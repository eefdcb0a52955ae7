"""Execute a parameterized notebook with Papermill and render it as an HTML report.

Papermill writes each parameter into the notebook as `name = value` Python source, so a name
or value from outside is code unless it is checked: `check_parameters` accepts only the names
the notebook's `parameters` cell declares and values that are plain data of the declared type
(Papermill writes those as literals). `execute_notebook` checks every call.
"""

from __future__ import annotations

import ast
import contextlib
import ctypes
import keyword
import math
import os
import re
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import nbformat
import papermill
from jupyter_client.manager import AsyncKernelManager
from nbconvert import HTMLExporter
from nbconvert.preprocessors import TagRemovePreprocessor
from papermill.translators import papermill_translators
from papermill.utils import nb_kernel_name, nb_language

from virtuna.constants import PROJECT_ROOT
from virtuna.reports import RUN_DIR_ENV

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
KERNEL = "virtuna"  # registered in the venv by `make setup`
KERNEL_LOG = "kernel.log"  # the kernel process's own console output, in the run folder
# The report template: JupyterLab's, without the scripts it would fetch from a CDN.
TEMPLATES = Path(__file__).resolve().parent / "reports" / "templates"
# A cell tagged so runs (the runner's status cell, say) but is left out of the HTML report.
HIDDEN_TAG = "remove-cell"
MAX_TEXT = 2000  # characters in one string value
MAX_ITEMS = 1000  # items in one list value
MAX_INT = 2**63 - 1
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
KINDS = ("int", "float", "bool", "str", "list", "any")
_OPTIONAL = re.compile(r"^Optional\[(.+)\]$")
_LIST = re.compile(r"^(?:list|List)\[(.+)\]$")


class ParameterError(ValueError):
    """A notebook parameter that is not declared, or a value that is not plain data of its type."""

    def __init__(self, owner: str, parameter: object, message: str) -> None:
        self.owner = owner
        self.parameter = parameter if isinstance(parameter, str) else repr(parameter)
        super().__init__(f"{owner}: parameter {shown(self.parameter)} {message}")


def shown(name: str, limit: int = 60) -> str:
    """A name as it can be shown on one line: quoted, escaped and cut to `limit` characters."""
    return repr(name[:limit]) + (f" (cut, {len(name)} characters)" if len(name) > limit else "")


@dataclass(frozen=True)
class Declared:
    """A parameter that a notebook declares: its kind, whether None is allowed, list items."""

    name: str
    kind: str  # one of KINDS; "any" takes any scalar or a list of scalars
    nullable: bool
    items: str = "any"  # the kind of a list's items


def _kind_of_value(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return "list" if isinstance(value, list) else "any"


def _declared(name: str, annotation: str, default: str) -> Declared:
    """The kind of a parameter from its annotation (`x: "Optional[str]" = ...`) or default."""
    nullable = False
    text = annotation.strip().strip("'\"")
    if text != "None":
        optional = _OPTIONAL.match(text)
        if optional:
            nullable, text = True, optional[1].strip()
        listed = _LIST.match(text)
        if listed:
            return Declared(name, "list", nullable, listed[1].strip())
        if text in KINDS:
            return Declared(name, text, nullable)
    try:
        value = ast.literal_eval(default)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return Declared(name, "any", nullable)
    if value is None:
        return Declared(name, "any", True)
    kind = _kind_of_value(value)
    items = {_kind_of_value(v) for v in value} if isinstance(value, list) else set()
    return Declared(name, kind, nullable, items.pop() if len(items) == 1 else "any")


@lru_cache(maxsize=64)
def _inspect(path: str, mtime_ns: int, size: int) -> dict[str, Declared]:
    # papermill.inspect_notebook without its "Input Notebook" log line on every check
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    if not cells:
        return {}
    translator = papermill_translators.find_translator(nb_kernel_name(nb), nb_language(nb))
    return {
        p.name: _declared(p.name, str(p.inferred_type_name), str(p.default))
        for p in translator.inspect(cells[0])
        if p.name.isidentifier() and not keyword.iskeyword(p.name)
    }


def notebook_parameters(name: str) -> dict[str, Declared]:
    """The parameters that a notebook's `parameters` cell declares, by name."""
    path = notebook_path(name)
    stat = path.stat()
    return _inspect(str(path), stat.st_mtime_ns, stat.st_size)


_SAID = {
    "int": "a whole number",
    "float": "a number",
    "bool": "true or false",
    "str": "text",
    "list": "a list",
    "any": "a number, text or true/false",
    "null": "null",
}


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    kind = _kind_of_value(value)
    return kind if kind != "any" else type(value).__name__


def _said(kind: str) -> str:
    return _SAID.get(kind, f"a {kind}")


def _check_scalar(kind: str, value: object) -> str | None:
    """Why `value` is not plain data of `kind` (None when it is)."""
    actual = _type_name(value)
    if actual not in ("bool", "int", "float", "str"):
        return f"must be {_said(kind)}, got {_said(actual)}"
    if not (kind == "any" or kind == actual or (kind == "float" and actual == "int")):
        return f"must be {_said(kind)}, got {_said(actual)}"
    if isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    if actual == "int" and abs(value) > MAX_INT:  # type: ignore[arg-type]
        return f"must be a whole number within +-{MAX_INT}"
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return f"must be text of at most {MAX_TEXT} characters, got {len(value)}"
    return None


def check_parameters(notebook: str, values: dict[str, Any], owner: str = "") -> dict[str, Any]:
    """The values, if each names a parameter the notebook declares with plain data of its kind."""
    owner = owner or f"notebook {notebook}"
    declared = notebook_parameters(notebook)
    for name, value in values.items():
        spec = declared.get(name) if isinstance(name, str) else None
        if spec is None:
            known = ", ".join(declared) or "none"
            raise ParameterError(owner, name, f"is not declared by the notebook (known: {known})")
        if value is None:
            if not spec.nullable:
                raise ParameterError(owner, name, f"must be {_said(spec.kind)}, got null")
            continue
        if isinstance(value, list) and spec.kind in ("list", "any"):
            if len(value) > MAX_ITEMS:
                raise ParameterError(owner, name, f"must hold at most {MAX_ITEMS} items")
            for item in value:
                problem = None if item is None else _check_scalar(spec.items, item)
                if problem:
                    raise ParameterError(owner, name, f"items {problem}")
            continue
        problem = _check_scalar(spec.kind, value)
        if problem:
            raise ParameterError(owner, name, problem)
    return dict(values)


@dataclass(frozen=True)
class NotebookRun:
    """The outputs of one notebook execution."""

    notebook: Path
    html: Path | None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        """True when every cell ran."""
        return self.error is None


def notebook_path(name: str) -> Path:
    """The input notebook called `name` (with or without .ipynb) in notebooks/."""
    path = NOTEBOOK_DIR / (name if name.endswith(".ipynb") else f"{name}.ipynb")
    if not path.is_file():
        raise FileNotFoundError(f"no notebook {path.name} in {NOTEBOOK_DIR}")
    return path


def render_html(notebook: Path, html: Path | None = None) -> Path:
    """An HTML rendering of an executed notebook for readers, viewable offline: no input
    cells, no cells tagged HIDDEN_TAG, no stderr output (log lines and warnings)."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
    exporter = HTMLExporter(
        template_name="offline",
        extra_template_basedirs=[str(TEMPLATES)],
        exclude_input=True,
        exclude_input_prompt=True,
        exclude_output_prompt=True,
    )
    exporter.register_preprocessor(
        TagRemovePreprocessor(remove_cell_tags={HIDDEN_TAG}, enabled=True), enabled=True
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": notebook.stem}})
    target = html or notebook.with_suffix(".html")
    target.write_text(body, encoding="utf-8")
    return target


class _KernelWatch:
    """One execution's kernel: killed with its process group when the whole-run deadline passes."""

    def __init__(self, timeout_s: float) -> None:
        self._lock = threading.Lock()
        self.pid: int | None = None
        self.expired = False
        self._timer = threading.Timer(timeout_s, self.expire)
        self._timer.daemon = True
        self._timer.start()

    def started(self, pid: int | None) -> None:
        """Called once the kernel process exists (it is killed at once if the deadline passed)."""
        with self._lock:
            self.pid = pid
            if self.expired:
                self._kill()

    def expire(self) -> None:
        """The deadline passed: stop the kernel; the execution then fails as a dead kernel."""
        with self._lock:
            self.expired = True
            self._kill()

    def cancel(self) -> None:
        """The execution ended in time."""
        self._timer.cancel()

    def _kill(self) -> None:
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            # The kernel leads its own session (jupyter_client starts it so); never our group.
            if os.getpgid(self.pid) == self.pid != os.getpgid(0):
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)


def _die_with_parent() -> Callable[[], None] | None:
    """A hook run in the kernel's process before exec: SIGKILL it when its starter dies (Linux).

    The kernel's parent (the runner) may be killed with SIGKILL, which no handler sees; the
    kernel would live on holding the store. PR_SET_PDEATHSIG has the kernel killed with it.
    """
    if not sys.platform.startswith("linux"):
        return None  # elsewhere ipykernel's own parent poller (JPY_PARENT_PID) is all there is
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before fork: the hook only calls it
    parent = os.getpid()

    def hook() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the starter died before the signal was armed
            os._exit(1)

    return hook


def _kernel_manager_for(watch: _KernelWatch, run_dir: Path) -> type[AsyncKernelManager]:
    """A kernel manager whose kernel dies with this process, reports its pid to `watch`, knows
    its run folder (RUN_DIR_ENV) and writes its own console output (ipykernel's start-up
    warnings, an interrupt's message) to KERNEL_LOG there, not to the runner's terminal."""

    class RunKernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def start_kernel(self, **kw: Any) -> None:
            hook = _die_with_parent()
            if hook is not None:
                kw.setdefault("preexec_fn", hook)
            kw["env"] = {**kw.get("env", os.environ), RUN_DIR_ENV: str(run_dir)}
            # The kernel process holds its own copy of the file's descriptor.
            with (run_dir / KERNEL_LOG).open("ab") as console:
                kw.setdefault("stdout", console)
                kw.setdefault("stderr", console)
                await super().start_kernel(**kw)
            watch.started(getattr(self.provisioner, "pid", None))

    return RunKernelManager


def execute_notebook(
    name: str,
    output_dir: Path,
    parameters: dict[str, Any] | None = None,
    *,
    timeout_s: int = 900,
    progress: bool = False,
) -> NotebookRun:
    """Run notebooks/<name>.ipynb with checked parameters into output_dir, within timeout_s.

    The kernel finds output_dir in RUN_DIR_ENV: its log file and figures go there.

    `timeout_s` bounds the whole run (kernel start to last cell), not only each cell: when it
    passes, the kernel is killed and the run fails saying so. The output is kept on failure.
    """
    source = notebook_path(name)
    parameters = check_parameters(name, parameters or {})
    output_dir.mkdir(parents=True, exist_ok=True)
    target = output_dir / source.name
    error: str | None = None
    watch = _KernelWatch(timeout_s)
    try:
        papermill.execute_notebook(
            str(source),
            str(target),
            parameters=parameters,
            kernel_name=KERNEL,
            cwd=str(PROJECT_ROOT),
            execution_timeout=timeout_s,
            progress_bar=progress,
            kernel_manager_class=_kernel_manager_for(watch, output_dir.resolve()),
        )
    except papermill.PapermillExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
    except Exception:
        if not watch.expired:
            raise
    finally:
        watch.cancel()
    if watch.expired:
        error = f"the whole-run timeout of {timeout_s:g} s passed; the kernel was stopped"
    html = render_html(target) if target.is_file() else None
    return NotebookRun(notebook=target, html=html, error=error)
