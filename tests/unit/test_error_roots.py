"""Each layer's errors have one root: BrokerError, StoreError, ToolError."""

import importlib
import pkgutil

import pytest

import worker.broker
import worker.dead_letters
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
    defined = _defined(package)
    assert root in defined
    assert [error.__name__ for error in defined if not issubclass(error, root)] == []
    assert len(defined) > 1  # the root and at least one of its own


def test_dead_letter_errors_are_the_store_s_or_the_tools() -> None:
    """The dead-letters room raises the store's errors (records) and the tools' (replays)."""
    defined = _defined(worker.dead_letters)
    assert [error.__name__ for error in defined if not issubclass(error, (StoreError, ToolError))] == []
    assert {"UnknownOperation", "OperationBusy", "InvalidRate", "ReplayRefused"} <= {
        e.__name__ for e in defined
    }


def _defined(package: object) -> list[type]:
    """Every exception class defined in the package's modules."""
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
    return defined
