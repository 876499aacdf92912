"""Sphinx configuration of the refseq docs site.

Build (warnings are errors, as in CI)::

    pip install ".[docs]"
    python -m sphinx -W --keep-going -b html docs docs/_build/html

Pages are MyST Markdown; the API reference (docs/api/) is generated from the docstrings by
autodoc + autosummary and rendered by numpydoc; math goes through MathJax (``.. math::`` in
docstrings, ``$...$``/``$$...$$`` in Markdown).
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # document the checkout, also when refseq is not installed

# The cuda tier imports numba.cuda lazily, so documenting it needs no GPU. Should a module touch
# numba.cuda at import time, the simulator keeps that from looking for a driver.
os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")

import refseq  # noqa: E402

# numpydoc also parses the docstrings of third-party objects a module imports (hypothesis's
# ``settings``) and reports their non-numpydoc sections as Python warnings; they are not ours.
warnings.filterwarnings("ignore", "Unknown section .* in .*site-packages", UserWarning)

project = "refseq"
author = "refseq contributors"
copyright = "refseq contributors"  # noqa: A001
version = release = refseq.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
templates_path = ["_templates"]
exclude_patterns = ["_build", "**/__pycache__"]

# MyST: $...$ and $$...$$ math, \begin{align} blocks; anchors for ## headings so that
# [text](page.md#a-heading) links resolve.
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3

# numpydoc renders the docstrings. Its style validation (GL01, SS05, ...) is off: the
# docstrings follow numpydoc's sections where they have them, but many are short prose, and the
# site is built with -W. Class member tables are off because autodoc already lists members.
numpydoc_validation_checks: set[str] = set()
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_attributes_as_param_list = False

# autodoc/autosummary: one page per public module (private ``_modules`` are skipped), members
# in source order; a package's ``__all__`` (its public re-exports) is respected.
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {"members": True, "member-order": "bysource"}
# A method without a docstring shows none, rather than its base class's: bases from pytest,
# numpy or the standard library refer to labels of their own docs (":ref:`non-python tests`").
autodoc_inherit_docstrings = False
autodoc_mock_imports: list[str] = []
try:  # the docs extra does not pull numba-cuda; mock it where it is missing
    import numba.cuda  # noqa: F401
except Exception:
    autodoc_mock_imports.append("numba.cuda")

html_theme = "alabaster"
html_title = f"refseq {release}"
html_static_path: list[str] = []


def _cache_numpydoc_template() -> None:
    """Compile numpydoc's docstring template once instead of once per object.

    numpydoc (1.6 to 1.11 at least) builds a Jinja environment and compiles its template in
    every ``get_doc_object`` call; with ~1900 documented objects that is most of the build time.
    Where numpydoc's internals differ from what is expected here, nothing is changed.
    """
    import numpydoc.numpydoc as nd
    from numpydoc import docscrape_sphinx as ds

    original = getattr(nd, "get_doc_object", None)
    needed = ("get_doc_object_orig", "SphinxClassDoc", "SphinxFunctionDoc", "SphinxObjDoc")
    if original is not ds.get_doc_object or not all(hasattr(ds, n) for n in needed):
        return
    template = []

    def get_doc_object(obj, what=None, doc=None, config=None, builder=None):
        if not template:  # the first call compiles it, as numpydoc would
            doc_object = original(obj, what=what, doc=doc, config=config, builder=builder)
            template.append((config or {}).get("template"))
            return doc_object
        config = {} if config is None else config
        config["template"] = template[0]
        return ds.get_doc_object_orig(
            obj,
            what=what,
            doc=doc,
            config=config,
            class_doc=ds.SphinxClassDoc,
            func_doc=ds.SphinxFunctionDoc,
            obj_doc=ds.SphinxObjDoc,
        )

    nd.get_doc_object = get_doc_object


def setup(app):
    _cache_numpydoc_template()
