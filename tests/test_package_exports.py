"""Every public name of ``refseq.nn`` and ``refseq.train`` is the object its module defines.

Tests elsewhere use the package-level names; this ties each module to them, so that a
re-export can't silently point at a stale or shadowing definition.
"""

import importlib

import pytest

import refseq.nn.activations  # noqa: F401
import refseq.nn.attention  # noqa: F401
import refseq.nn.basic  # noqa: F401
import refseq.nn.conv1d  # noqa: F401
import refseq.nn.dropout  # noqa: F401
import refseq.nn.embedding  # noqa: F401
import refseq.nn.linear  # noqa: F401
import refseq.nn.mlp  # noqa: F401
import refseq.nn.norms  # noqa: F401
import refseq.nn.positions  # noqa: F401
import refseq.nn.softmax  # noqa: F401
import refseq.train.adam  # noqa: F401
import refseq.train.base  # noqa: F401
import refseq.train.clipping  # noqa: F401
import refseq.train.gradient_noise  # noqa: F401
import refseq.train.lm  # noqa: F401
import refseq.train.loop  # noqa: F401
import refseq.train.params  # noqa: F401
import refseq.train.schedules  # noqa: F401
import refseq.train.sgd  # noqa: F401

MODULES = [
    "refseq.nn.activations",
    "refseq.nn.attention",
    "refseq.nn.basic",
    "refseq.nn.conv1d",
    "refseq.nn.dropout",
    "refseq.nn.embedding",
    "refseq.nn.linear",
    "refseq.nn.mlp",
    "refseq.nn.norms",
    "refseq.nn.positions",
    "refseq.nn.softmax",
    "refseq.train.adam",
    "refseq.train.base",
    "refseq.train.clipping",
    "refseq.train.gradient_noise",
    "refseq.train.lm",
    "refseq.train.loop",
    "refseq.train.params",
    "refseq.train.schedules",
    "refseq.train.sgd",
]


@pytest.mark.parametrize("package", ["refseq.nn", "refseq.train"])
def test_package_names_are_the_modules_objects(package):
    pkg = importlib.import_module(package)
    owners = {}
    for name in MODULES:
        if name.startswith(package + "."):
            mod = importlib.import_module(name)
            for attr, obj in vars(mod).items():
                if not attr.startswith("_") and getattr(obj, "__module__", None) == name:
                    owners[attr] = obj
    exported = [n for n in getattr(pkg, "__all__", dir(pkg)) if not n.startswith("_")]
    checked = 0
    for n in exported:
        if n in owners:
            assert getattr(pkg, n) is owners[n], f"{package}.{n}"
            checked += 1
    assert checked >= 10, f"{package} re-exports only {checked} module definitions"
