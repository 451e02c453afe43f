"""docs/asyncapi.yaml is the published contract: generated from the code, valid for the official
AsyncAPI parser, with examples the models accept and headers the worker really writes."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from events import NotificationRequested, RenewalApproaching
from events.registry import INPUT_BY_TYPE
from worker.broker.publisher import encoded_size
from worker.messaging import Delivery
from worker.service.failures import DeadLetterHeaders, FailurePolicy
from worker.settings import Settings
from worker.tools.asyncapi import examples

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "docs" / "asyncapi.yaml"
VALIDATOR = ROOT / "contract" / "asyncapi-validator"
NPM_CI_TIMEOUT = 300  # seconds; a fresh `npm ci` (168 packages, 54 MB) took 8-10 s here


def _defaults_only() -> dict[str, str]:
    """The environment without RENEWALS_* variables: the contract is published with the defaults."""
    return {name: value for name, value in os.environ.items() if not name.startswith("RENEWALS_")}


@pytest.fixture(scope="session")
def asyncapi_validator() -> Path:
    """contract/asyncapi-validator/validate.mjs, its npm dependencies installed (once) if missing or older than the lock."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} not found: the contract test needs Node.js (20+) and npm", pytrace=False)
    installed = VALIDATOR / "node_modules" / ".package-lock.json"  # npm writes it once all is in place
    if (
        not installed.exists()
        or installed.stat().st_mtime < (VALIDATOR / "package-lock.json").stat().st_mtime
    ):
        command = ["npm", "ci", "--prefix", str(VALIDATOR), "--ignore-scripts", "--no-audit", "--no-fund"]
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=NPM_CI_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`{' '.join(command)}` took more than {NPM_CI_TIMEOUT}s", pytrace=False)
        if result.returncode != 0:
            pytest.fail(f"`{' '.join(command)}` failed:\n{result.stdout}{result.stderr}", pytrace=False)
    return VALIDATOR / "validate.mjs"


def test_checked_in_contract_is_what_the_code_generates(tmp_path: Path) -> None:
    """`renewals asyncapi` with the default settings writes exactly docs/asyncapi.yaml."""
    generated = tmp_path / "asyncapi.yaml"
    subprocess.run(
        [sys.executable, "-m", "worker", "asyncapi", "--out", str(generated)],
        cwd=ROOT, env=_defaults_only(), check=True, timeout=60,
    )  # fmt: skip
    assert generated.read_text() == CONTRACT.read_text(), (
        "docs/asyncapi.yaml is out of date with the code: run `renewals asyncapi --out docs/asyncapi.yaml`"
    )


def test_contract_is_valid_for_the_official_parser(asyncapi_validator: Path) -> None:
    """@asyncapi/parser (the pinned npm release) finds no error in docs/asyncapi.yaml."""
    result = subprocess.run(
        ["node", str(asyncapi_validator), str(CONTRACT)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    diagnostics = json.loads(result.stdout)
    assert [d for d in diagnostics if d["severity"] == "error"] == []


def test_examples_are_accepted_by_the_models() -> None:
    """Every message's example parses with its pydantic model, and the dead letter's headers too."""
    found = examples(Settings())
    for name in INPUT_BY_TYPE:
        INPUT_BY_TYPE[name].model.model_validate_json(json.dumps(found[name]["payload"]))
    NotificationRequested.model_validate_json(json.dumps(found["NotificationRequested"]["payload"]))
    RenewalApproaching.model_validate_json(json.dumps(found["DeadLetter"]["payload"]))
    DeadLetterHeaders.model_validate(found["DeadLetter"]["headers"])


@pytest.mark.parametrize("trace", [None, "Traceback (most recent call last): ..."])
def test_dead_letter_headers_are_the_documented_ones(trace: str | None) -> None:
    """The headers `dead_letter` writes are exactly those DeadLetterHeaders documents, and valid for it."""
    delivery = Delivery(b"{}", {"application_headers": {"x-replay-count": 1}}, "renewals.events",
                        "renewal.approaching", delivery_tag=1)  # fmt: skip
    failure = FailurePolicy(Settings(), encoded_size=encoded_size).dead_letter(
        delivery, "retries_exhausted", "boom", 5, trace
    )
    headers = failure.outgoing.properties["application_headers"]
    documented = {field.alias for field in DeadLetterHeaders.model_fields.values()}
    expected = documented if trace else documented - {"x-error-traceback"}
    assert set(headers) - {"x-replay-count"} == expected
    DeadLetterHeaders.model_validate(headers)
