"""One source for defaults: the command line and the R package agree with ``Ivis``'s signature.

The estimator's signature is the source; the CLI's options and the R function ``ivis()``
repeat its defaults (the CLI so that ``ivis --help`` needs no scikit-learn, R for its help
pages), and these tests fail as soon as one of them drifts.
"""

import ast
import inspect
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def signature_defaults():
    from ivis import Ivis

    return {name: p.default for name, p in inspect.signature(Ivis.__init__).parameters.items() if name != "self"}


def test_the_cli_builds_the_estimator_of_the_signature_defaults():
    from ivis.cli import _estimator, build_parser

    # A data file as input: without one, the CLI embeds its small built-in data with k=15.
    params = _estimator(build_parser().parse_args(["data.csv"])).get_params(deep=False)
    assert params == signature_defaults()


def test_every_cli_model_option_is_an_estimator_parameter_with_its_default():
    from ivis.cli import build_parser

    defaults = signature_defaults()
    parser = build_parser()
    group = next(g for g in parser._action_groups if g.title.startswith("model parameters"))
    options = {action.dest: action.default for action in group._group_actions}
    assert options, "the CLI has no model options"
    # Options that are not constructor parameters, or are stored negated.
    options.pop("shuffle_mode")
    options["precompute"] = not options.pop("no_precompute")
    options.pop("k")  # None: chosen from the input (see the test above)
    assert set(options) <= set(defaults), f"not Ivis parameters: {set(options) - set(defaults)}"
    assert {name: defaults[name] for name in options} == options


def _r_value(text):
    """A literal R default (``2L``, ``-1L``, ``0.5``, ``"pn"``, ``TRUE``, ``NULL``) as Python."""
    text = text.strip()
    named = {"TRUE": True, "FALSE": False, "NULL": None}
    if text in named:
        return named[text]
    if re.fullmatch(r"-?\d+L", text):
        return int(text[:-1])
    return ast.literal_eval(text)


def r_ivis_formals():
    """The arguments of the R function ``ivis()`` and their defaults, read from its source."""
    source = (REPO / "R-package" / "R" / "ivis.R").read_text(encoding="utf-8")
    start = source.index("ivis <- function(") + len("ivis <- function(")
    depth, end = 1, start
    while depth:
        depth += {"(": 1, ")": -1}.get(source[end], 0)
        end += 1
    formals = {}
    for argument in source[start:end - 1].split(","):
        name, _, default = argument.partition("=")
        formals[name.strip()] = _r_value(default)
    return formals


def test_the_r_function_has_every_parameter_with_the_python_default():
    formals = r_ivis_formals()
    assert formals == signature_defaults()


@pytest.mark.parametrize(
    "text, value", [("2L", 2), ("-1L", -1), ("0.5", 0.5), ('"pn"', "pn"), ("TRUE", True), ("NULL", None)]
)
def test_r_defaults_are_read_as_python_values(text, value):
    assert _r_value(text) == value and type(_r_value(text)) is type(value)


def test_r_docs_describe_k_and_search_k_as_python_does():
    source = (REPO / "R-package" / "R" / "ivis.R").read_text(encoding="utf-8")
    docs = " ".join(line[3:].strip() for line in source.splitlines() if line.startswith("#'"))
    assert "`-1` means `n_trees * (k + 1)`" in docs
    assert "-1 means ``n_trees * (k + 1)``" in inspect.getdoc(__import__("ivis").Ivis)
    assert "must be below the number of rows" in docs
    assert "must be below the number of rows" in inspect.getdoc(__import__("ivis").Ivis)
