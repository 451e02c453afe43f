"""Each layer's errors have one root: BrokerError, StoreError, ToolError."""

import importlib
import pkgutil

import pytest

import worker.broker
import worker.store
import worker.tools
from worker.broker.errors import BrokerError
from worker.store import StoreError
from worker.tools.errors import ToolError


@pytest.mark.parametrize(
    ("package", "root"),
    [(worker.broker, BrokerError), (worker.store, StoreError), (worker.tools, ToolError)],
)
def test_every_error_a_layer_defines_has_the_layer_root(package: object, root: type) -> None:
    """Every exception class defined in the layer's modules subclasses the layer's root."""
    defined = []
    for module_info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):  # type: ignore[attr-defined]
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                defined.append(value)
    assert root in defined
    assert [error.__name__ for error in defined if not issubclass(error, root)] == []
    assert len(defined) > 2
