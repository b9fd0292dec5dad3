"""The public API: dwsjax.__all__ resolves, is documented (Google style) and shows in help(dwsjax)."""

import inspect
import pydoc
import subprocess
import sys

import pytest

import dwsjax
import dwsjax.augment
import dwsjax.data
import dwsjax.models

# The names the README's example is written against.
README_NAMES = [
    "mlp_spec",
    "FitConfig",
    "fit_sirens",
    "image_coords",
    "render_image",
    "build_pipeline",
    "build_model",
    "TrainConfig",
    "train_recipe",
    "train_classifier",
    "InrBatch",
    "WeightSpace",
]

# The main method of each public class that has one beyond its fields.
MAIN_METHODS = {
    "FitConfig": ["from_recipe"],
    "InrDatasetConfig": ["fit_config"],
    "InrStore": ["open", "load"],
    "Pipeline": ["__call__"],
    "DWSClassifier": ["__call__", "features"],
    "DWSLayer": ["__call__"],
    "GNNClassifier": ["__call__"],
}


def public_functions():
    for name in dwsjax.__all__:
        obj = getattr(dwsjax, name)
        if inspect.isfunction(obj):
            yield name, obj
        for method in MAIN_METHODS.get(name, []):
            yield f"{name}.{method}", getattr(obj, method)


@pytest.mark.parametrize("package", [dwsjax, dwsjax.augment, dwsjax.data, dwsjax.models])
def test_all_resolves_without_duplicates(package):
    assert len(set(package.__all__)) == len(package.__all__)
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, missing


def test_the_readme_names_are_at_top_level():
    assert set(README_NAMES) <= set(dwsjax.__all__)


@pytest.mark.parametrize("name, fn", list(public_functions()), ids=[n for n, _ in public_functions()])
def test_public_functions_have_google_docstrings(name, fn):
    doc = inspect.getdoc(fn) or ""
    assert "Args:" in doc and "Returns:" in doc, f"{name} needs Args: and Returns: sections"


def test_public_classes_are_documented():
    undocumented = [
        name
        for name in dwsjax.__all__
        if inspect.isclass(getattr(dwsjax, name)) and not inspect.getdoc(getattr(dwsjax, name))
    ]
    assert not undocumented, undocumented


def test_help_lists_the_api():
    text = pydoc.render_doc(dwsjax, renderer=pydoc.plaintext)
    missing = [name for name in dwsjax.__all__ if name not in text]
    assert not missing, missing


def test_import_starts_no_jax_backend():
    code = "import dwsjax; from jax._src import xla_bridge; print(len(xla_bridge._backends))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0", "importing dwsjax must not initialise a JAX backend"
