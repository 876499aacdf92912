"""Every public name a package re-exports is the object its module defines.

Tests elsewhere often use the package-level names; this ties each module to them, so that a
re-export can't silently point at a stale or shadowing definition.
"""

import importlib

import pytest

import refseq.attention.aaren  # noqa: F401
import refseq.attention.aaren_rnn  # noqa: F401
import refseq.attention.softmax  # noqa: F401
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
import refseq.rnn.analysis  # noqa: F401
import refseq.rnn.bidirectional  # noqa: F401
import refseq.rnn.bptt  # noqa: F401
import refseq.rnn.cells  # noqa: F401
import refseq.rnn.elman  # noqa: F401
import refseq.rnn.flashrnn  # noqa: F401
import refseq.rnn.flashrnn_checks  # noqa: F401
import refseq.rnn.jordan  # noqa: F401
import refseq.rnn.layouts  # noqa: F401
import refseq.rnn.lm  # noqa: F401
import refseq.rnn.lstm  # noqa: F401
import refseq.rnn.masking  # noqa: F401
import refseq.rnn.output  # noqa: F401
import refseq.rnn.sparsity.experiments  # noqa: F401
import refseq.rnn.sparsity.graph_properties  # noqa: F401
import refseq.rnn.sparsity.graphs  # noqa: F401
import refseq.rnn.sparsity.masked  # noqa: F401
import refseq.rnn.sparsity.models  # noqa: F401
import refseq.rnn.sparsity.predict  # noqa: F401
import refseq.rnn.sparsity.pruning  # noqa: F401
import refseq.rnn.stack  # noqa: F401
import refseq.train.adam  # noqa: F401
import refseq.train.base  # noqa: F401
import refseq.train.clipping  # noqa: F401
import refseq.train.gradient_noise  # noqa: F401
import refseq.train.lm  # noqa: F401
import refseq.train.loop  # noqa: F401
import refseq.train.params  # noqa: F401
import refseq.train.plateau  # noqa: F401
import refseq.train.schedules  # noqa: F401
import refseq.train.sgd  # noqa: F401

MODULES = [
    "refseq.attention.aaren",
    "refseq.attention.aaren_rnn",
    "refseq.attention.softmax",
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
    "refseq.train.plateau",
    "refseq.train.schedules",
    "refseq.train.sgd",
    "refseq.rnn.analysis",
    "refseq.rnn.bidirectional",
    "refseq.rnn.bptt",
    "refseq.rnn.cells",
    "refseq.rnn.elman",
    "refseq.rnn.flashrnn",
    "refseq.rnn.flashrnn_checks",
    "refseq.rnn.jordan",
    "refseq.rnn.layouts",
    "refseq.rnn.lm",
    "refseq.rnn.lstm",
    "refseq.rnn.masking",
    "refseq.rnn.output",
    "refseq.rnn.stack",
    "refseq.rnn.sparsity.experiments",
    "refseq.rnn.sparsity.graph_properties",
    "refseq.rnn.sparsity.graphs",
    "refseq.rnn.sparsity.masked",
    "refseq.rnn.sparsity.models",
    "refseq.rnn.sparsity.predict",
    "refseq.rnn.sparsity.pruning",
]


@pytest.mark.parametrize(
    "package",
    ["refseq.attention", "refseq.nn", "refseq.train", "refseq.rnn", "refseq.rnn.sparsity"],
)
def test_package_names_are_the_modules_objects(package):
    pkg = importlib.import_module(package)
    owners = {}
    for name in MODULES:
        if name.rpartition(".")[0] == package:
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
    assert checked >= 3, f"{package} re-exports only {checked} module definitions"
