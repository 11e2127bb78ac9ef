"""One version for the Python core and the R package, and what install_ivis() installs.

The root ``DESCRIPTION`` is the R package's only description (``R-package/DESCRIPTION``
links to it); its Version must be the Python core's ``__version__``. The tests that run R
need the R library made by ``scripts/setup-r.sh``: they skip without it, unless the
environment variable ``IVIS_REQUIRE_R`` is 1 (as in CI).
"""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
R_LIB = Path(os.environ.get("IVIS_R_LIB", REPO / ".r-lib"))


def description_field(path, field):
    match = re.search(rf"^{field}:\s*(.+)$", Path(path).read_text(encoding="utf-8"), re.M)
    assert match, f"{path} has no {field} field"
    return match.group(1).strip()


def python_version():
    text = (REPO / "python" / "ivis" / "_version.py").read_text(encoding="utf-8")
    match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", text, re.M)
    assert match, "python/ivis/_version.py sets no __version__"
    return match.group(1)


def read_pins(path):
    pins = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_r_and_python_versions_agree():
    assert description_field(REPO / "DESCRIPTION", "Version") == python_version()
    assert description_field(REPO / "DESCRIPTION", "Package") == "ivis"


def test_r_package_description_is_the_root_one():
    link = REPO / "R-package" / "DESCRIPTION"
    assert link.is_symlink(), "R-package/DESCRIPTION must be a link to ../DESCRIPTION"
    assert os.readlink(link) == "../DESCRIPTION"
    assert link.resolve() == (REPO / "DESCRIPTION").resolve()


def test_r_package_vignettes_are_the_root_ones():
    link = REPO / "R-package" / "vignettes"
    assert link.is_symlink(), "R-package/vignettes must be a link to ../vignettes"
    assert link.resolve() == (REPO / "vignettes").resolve()
    assert (REPO / "vignettes" / "ivis.Rmd").is_file()


def test_install_code_takes_the_version_from_description_only():
    # No version number is written into the R code: install_ivis() derives it.
    version = python_version()
    for path in (REPO / "R-package" / "R").glob("*.R"):
        assert version not in path.read_text(encoding="utf-8"), f"{path.name} hard-codes {version}"


def test_dependency_pins():
    pins = read_pins(REPO / "R-package" / "inst" / "python" / "constraints.txt")
    assert "ivis" not in pins
    for name in ("numpy", "keras", "tensorflow-cpu", "tensorflow", "annoy", "scikit-learn"):
        assert re.fullmatch(r"[0-9][0-9A-Za-z.]*", pins.get(name, "")), f"{name} is not pinned"
    # A constraints file of the Python side, where there is one, must agree.
    python_side = REPO / "python" / "constraints.txt"
    if python_side.is_file():
        other = read_pins(python_side)
        for name in set(pins) & set(other):
            assert pins[name] == other[name], f"{name}: {pins[name]} (R) != {other[name]} (Python)"


def require_r(program, r_package, why):
    """The path of ``program``; skips (fails under IVIS_REQUIRE_R=1) without it or ``r_package``."""
    path = shutil.which(program)
    missing = None
    if path is None:
        missing = f"{program} is not installed"
    elif not (R_LIB / r_package / "DESCRIPTION").is_file():
        missing = f"{why} is not in {R_LIB}"
    if missing:
        if os.environ.get("IVIS_REQUIRE_R") == "1":
            pytest.fail(f"IVIS_REQUIRE_R=1 but {missing}; run scripts/setup-r.sh", pytrace=False)
        pytest.skip(f"{missing}; run scripts/setup-r.sh")
    return path


def run_r(code):
    rscript = require_r("Rscript", "ivis", "the ivis R package")
    env = dict(os.environ, R_LIBS=str(R_LIB))
    result = subprocess.run(
        [rscript, "--vanilla", "-e", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_installed_r_package_has_this_version():
    assert run_r('cat(as.character(packageVersion("ivis")))').strip() == python_version()


def test_r_package_carries_the_python_core_by_links():
    # inst/python/core is what install_ivis() installs: links to the repository's files, so
    # that R CMD build and R CMD INSTALL copy the very sources of python/ into the package.
    core = REPO / "R-package" / "inst" / "python" / "core"
    for name in ("pyproject.toml", "README.md", "python"):
        link = core / name
        assert link.is_symlink(), f"{link} must be a link into the repository"
        assert link.resolve() == (REPO / name).resolve()


def test_repository_root_refuses_r_cmd_install_naming_the_right_command(tmp_path):
    rcmd = require_r("R", "reticulate", "reticulate (a dependency, checked before configure runs)")
    env = dict(os.environ, R_LIBS=str(R_LIB))
    result = subprocess.run(
        [rcmd, "CMD", "INSTALL", f"--library={tmp_path}", str(REPO)],
        capture_output=True, text=True, env=env, timeout=120,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "R CMD INSTALL R-package" in output
    assert 'subdir = "R-package"' in output
    assert not (tmp_path / "ivis").exists()


def test_install_ivis_installs_the_carried_core_of_this_version():
    version = python_version()
    out = run_r(
        "p <- ivis:::install_plan(); cat(p$packages, p$version, p$constraints, sep = '\\n');"
        "cat(ivis:::install_plan(gpu = TRUE)$packages, '\\n');"
        f"cat(ivis:::install_plan(source = '{REPO}')$packages, '\\n');"
        "cat(system.file('python', 'core', package = 'ivis'), '\\n')"
    ).splitlines()
    core = Path(out[5].strip())
    assert out[0] == f"ivis[cpu] @ file://{core}"
    assert out[1] == version
    assert read_pins(out[2]) == read_pins(REPO / "R-package" / "inst" / "python" / "constraints.txt")
    assert out[3].strip() == f"ivis[gpu] @ file://{core}"
    assert out[4].strip() == f"ivis[cpu] @ file://{REPO}"
    # the installed package carries the core's sources as they are in python/
    sources = sorted(p.relative_to(REPO / "python") for p in (REPO / "python").rglob("*.py"))
    assert sources
    for relative in sources:
        carried = core / "python" / relative
        assert carried.read_bytes() == (REPO / "python" / relative).read_bytes(), relative
