"""schemathesis against the control plane's OpenAPI (issue 8 item 12): no request answers 5xx and
every answer is one the document declares. Bounded: MAX_EXAMPLES per operation (about a minute on a
loaded 2-core machine). The project registered here has a notebook whose file name is not UTF-8."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from tests.support import ControlPlane

MAX_EXAMPLES = 100


@pytest.fixture(scope="module")
def fuzz_cp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    import nbformat

    from labwork.project import init_project

    home = tmp_path_factory.mktemp("fuzz-home")
    cp = ControlPlane(home).start()
    root = init_project(tmp_path_factory.mktemp("fuzz") / "proj", "fuzzProj").root
    nbformat.write(nbformat.v4.new_notebook(), root / "fine.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), os.fsdecode(bytes(root) + b"/caf\xe9.ipynb"))
    with cp.client() as http:
        http.post("/api/projects", json={"path": str(root)}).raise_for_status()
    yield cp
    cp.stop()


SKIP = {("POST", "/api/projects/{ref}/server")}  # starts Jupyter servers; its input has its own tests


def fuzz_operation(operation, base_url: str, headers: dict, failures: dict) -> None:
    """Up to MAX_EXAMPLES generated requests for one operation; each problem is collected."""
    from hypothesis import given

    declared = {str(code) for code in operation.definition.raw.get("responses", {})}

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case) -> None:  # noqa: ANN001
        response = case.call(base_url=base_url, headers=headers, timeout=60)
        problem = None
        if response.status_code >= 500:
            problem = "server error"
        elif str(response.status_code) not in declared:
            problem = f"undeclared status (declared {sorted(declared)})"
        elif response.status_code >= 400:
            body = response.json()
            if not (set(body) >= {"error", "msg"} and set(body) <= {"error", "msg", "where", "hint", "details"}):
                problem = "not the error shape"
        if problem:
            failures.setdefault(f"{operation.method.upper()} {operation.path}: {problem}: {response.status_code}",
                                f"{response.text[:300]}\n    {case.as_curl_command()}")

    run()


def test_no_server_errors_and_only_declared_answers(fuzz_cp: ControlPlane) -> None:
    schema = schemathesis.openapi.from_url(fuzz_cp.url + "/api/openapi.json", headers=fuzz_cp.headers())
    failures: dict[str, str] = {}
    count = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue
        count += 1
        fuzz_operation(operation, fuzz_cp.url, fuzz_cp.headers(), failures)
    assert count >= 20
    assert not failures, f"{len(failures)} kinds of problem:\n" + "\n".join(
        f"{kind}\n    {example}" for kind, example in sorted(failures.items()))


def test_openapi_declares_the_error_answers(fuzz_cp: ControlPlane) -> None:
    import httpx

    spec = httpx.get(fuzz_cp.url + "/api/openapi.json", headers=fuzz_cp.headers()).json()
    assert "422" not in str(spec.get("paths")) and "HTTPValidationError" not in str(spec)
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "msg"} and {"where", "hint", "details"} <= set(error["properties"])
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert {"400", "401", "403", "404", "409", "503"} <= set(op["responses"]), (method, path)
            assert op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
