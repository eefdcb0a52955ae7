"""The two ways to install (pip with the lock, conda with environment.yml) give the same pins."""

from __future__ import annotations

import re
import tomllib

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        pins[canonicalize_name(match[1])] = match[2]
    return pins


def test_every_dependency_is_pinned_in_the_lock_within_its_range() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = _lock()
    wanted = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    for spec in wanted:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement.name} is not pinned in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"


def test_environment_yml_installs_python_311_and_the_same_pins() -> None:
    env = yaml.safe_load((REPO / "environment.yml").read_text(encoding="utf-8"))
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert "-r requirements.lock" in pip_section
    assert "-e ." in pip_section
    # Anything conda installs besides python and pip would bypass the lock.
    assert [d for d in deps if isinstance(d, str)] == ["python=3.11", "pip"]


def test_makefile_installs_from_the_lock() -> None:
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    assert "pip install --quiet -r requirements.lock" in makefile
    assert "--no-deps" in makefile  # the package itself adds nothing unpinned
