"""/v1/batches: create, retrieve, list and cancel, with OpenAI's life cycle on a time scale.

A batch's status is a pure function of the time since it was created (and since a cancel):

    validating ─▶ in_progress ─▶ finalizing ─▶ completed
        └─▶ failed (the input file does not validate)
    in_progress ─▶ expired (metadata `simulator_fail: expire`: the window ran out half way)
    validating | in_progress ─cancel─▶ cancelling ─▶ cancelled

Phases last VALIDATING_SECONDS, IN_PROGRESS_SECONDS + LINE_SECONDS per line and
FINALIZING_SECONDS, each multiplied by the server's `batch_time_scale` (0.01 in tests, so a
batch completes in about a second). The output and error files are written when the batch
reaches its final status. Each line is answered as the live endpoint would answer it
(deterministic from the input); a line whose body carries `metadata.simulator_fail` of
`400`, `429` or `500` fails with that status and goes to the error file. Lines not done when
a batch expires or is cancelled get a `batch_expired` / `batch_cancelled` error line.
"""

from __future__ import annotations

import itertools
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from simulator.failures import SimulatorError, invalid_request
from simulator.files_api import FileStore

ENDPOINTS = frozenset({"/v1/responses", "/v1/chat/completions"})
VALIDATING_SECONDS = 10.0
IN_PROGRESS_SECONDS = 60.0
LINE_SECONDS = 0.5
FINALIZING_SECONDS = 10.0
WINDOW_SECONDS = 24 * 3600
MAX_LINES = 50_000

# (url, body) → (status code, response body): the live endpoint's answer to one line.
Answer = Callable[[str, dict[str, Any]], tuple[int, dict[str, Any]]]

_LINE_FAILURES = {
    "400": (400, "invalid_request_error", "simulated_bad_request"),
    "429": (429, "rate_limit_error", "rate_limit_exceeded"),
    "500": (500, "server_error", "server_error"),
}


@dataclass(frozen=True, slots=True)
class Phase:
    """Where a batch is at one moment: its status, the times it entered each status so
    far, and how many of its lines are done."""

    status: str
    times: dict[str, float]
    lines_done: int


def phase(
    *,
    created: float,
    now: float,
    lines: int,
    scale: float,
    valid: bool = True,
    expire: bool = False,
    cancelled_at: float | None = None,
) -> Phase:
    """The batch's phase at `now` (seconds since the epoch). Pure: the tests call it with
    made-up times."""
    validated = created + VALIDATING_SECONDS * scale
    running = (IN_PROGRESS_SECONDS + LINE_SECONDS * lines) * scale
    times = {"created": created}

    def done_at(moment: float) -> int:
        if moment <= validated:
            return 0
        fraction = 1.0 if running == 0 else min((moment - validated) / running, 1.0)
        return min(lines, math.floor(lines * fraction))

    if cancelled_at is not None and cancelled_at < validated + running:
        times["cancelling"] = cancelled_at
        if cancelled_at >= validated:
            times["in_progress"] = validated
        done = done_at(cancelled_at)
        over = cancelled_at + FINALIZING_SECONDS * scale
        if now < over:
            return Phase("cancelling", times, done)
        times["cancelled"] = over
        return Phase("cancelled", times, done)
    if now < validated:
        return Phase("validating", times, 0)
    if not valid:
        times["failed"] = validated
        return Phase("failed", times, 0)
    times["in_progress"] = validated
    if expire:
        expires = validated + running / 2
        if now < expires:
            return Phase("in_progress", times, done_at(now))
        times["expired"] = expires
        return Phase("expired", times, done_at(expires))
    finalizing = validated + running
    if now < finalizing:
        return Phase("in_progress", times, done_at(now))
    times["finalizing"] = finalizing
    completed = finalizing + FINALIZING_SECONDS * scale
    if now < completed:
        return Phase("finalizing", times, lines)
    times["completed"] = completed
    return Phase("completed", times, lines)


@dataclass(frozen=True, slots=True)
class LineError:
    line: int
    code: str
    message: str
    param: str | None = None


def parse_input(content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[LineError]]:
    """The input file's request lines, or what is wrong with it, by line number (1-based)."""
    requests: list[dict[str, Any]] = []
    errors: list[LineError] = []
    seen: set[str] = set()
    lines = content.decode("utf-8", errors="replace").splitlines()
    if len([line for line in lines if line.strip()]) > MAX_LINES:
        return [], [LineError(0, "too_many_requests", f"More than {MAX_LINES} requests.")]
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            errors.append(LineError(number, "invalid_json_line", "This line is not JSON."))
            continue
        if not isinstance(line, dict):
            errors.append(LineError(number, "invalid_json_line", "A line must be a JSON object."))
            continue
        custom_id = line.get("custom_id")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(LineError(number, "missing_custom_id", "custom_id is required."))
        elif custom_id in seen:
            errors.append(
                LineError(number, "duplicate_custom_id", f"Duplicate custom_id {custom_id!r}.")
            )
        else:
            seen.add(custom_id)
        if line.get("method") != "POST":
            errors.append(LineError(number, "invalid_method", "method must be POST.", "method"))
        if line.get("url") != endpoint:
            errors.append(
                LineError(number, "mismatched_url", f"url must be the batch's {endpoint}.", "url")
            )
        body = line.get("body")
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            errors.append(
                LineError(number, "invalid_body", "body must be an object with a model.", "body")
            )
        requests.append(line)
    if not requests and not errors:
        errors.append(LineError(0, "empty_file", "The input file has no requests."))
    return requests, errors


@dataclass(slots=True)
class SimBatch:
    id: str
    endpoint: str
    input_file_id: str
    completion_window: str
    metadata: dict[str, Any]
    created: float
    requests: list[dict[str, Any]]
    errors: list[LineError]
    cancelled_at: float | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    written: bool = False
    counts: dict[str, int] = field(default_factory=lambda: {"completed": 0, "failed": 0})

    @property
    def expire(self) -> bool:
        return self.metadata.get("simulator_fail") == "expire"


class BatchStore:
    def __init__(self, files: FileStore, answer: Answer, scale: float) -> None:
        self.files = files
        self.answer = answer
        self.scale = scale
        self.batches: dict[str, SimBatch] = {}
        self._ids = itertools.count(1)

    def create(self, body: dict[str, Any]) -> SimBatch:
        endpoint = body.get("endpoint")
        if endpoint not in ENDPOINTS:
            raise invalid_request(
                f"endpoint must be one of {', '.join(sorted(ENDPOINTS))}.", param="endpoint"
            )
        if body.get("completion_window") != "24h":
            raise invalid_request("completion_window must be 24h.", param="completion_window")
        input_file = self.files.get(str(body.get("input_file_id")))
        metadata = body.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise invalid_request("metadata must be an object.", param="metadata")
        requests, errors = parse_input(input_file.content, endpoint)
        if metadata.get("simulator_fail") == "fail" and not errors:
            errors = [LineError(0, "simulated_failure", "The batch failed. (simulated)")]
        batch = SimBatch(
            id=f"batch_sim{next(self._ids):06d}",
            endpoint=endpoint,
            input_file_id=input_file.id,
            completion_window="24h",
            metadata=metadata,
            created=time.time(),
            requests=requests,
            errors=errors,
        )
        self.batches[batch.id] = batch
        return batch

    def get(self, batch_id: str) -> SimBatch:
        batch = self.batches.get(batch_id)
        if batch is None:
            raise SimulatorError(404, f"No batch found with id '{batch_id}'.", code="not_found")
        return batch

    def phase(self, batch: SimBatch, now: float | None = None) -> Phase:
        return phase(
            created=batch.created,
            now=time.time() if now is None else now,
            lines=len(batch.requests),
            scale=self.scale,
            valid=not batch.errors,
            expire=batch.expire,
            cancelled_at=batch.cancelled_at,
        )

    def cancel(self, batch: SimBatch) -> None:
        if batch.cancelled_at is None and self.phase(batch).status in ("validating", "in_progress"):
            batch.cancelled_at = time.time()

    def as_dict(self, batch: SimBatch) -> dict[str, Any]:
        now = self.phase(batch)
        if now.status in ("completed", "expired", "cancelled") and not batch.written:
            self._write_results(batch, now.lines_done, now.status)
        times = now.times
        total = len(batch.requests)
        if now.status in ("completed", "expired", "cancelled"):
            counts = dict(batch.counts)
        else:
            counts = {"completed": now.lines_done, "failed": 0}
        return {
            "id": batch.id,
            "object": "batch",
            "endpoint": batch.endpoint,
            "errors": _errors(batch.errors) if now.status == "failed" else None,
            "input_file_id": batch.input_file_id,
            "completion_window": batch.completion_window,
            "status": now.status,
            "output_file_id": batch.output_file_id,
            "error_file_id": batch.error_file_id,
            "created_at": int(times["created"]),
            "in_progress_at": _int(times.get("in_progress")),
            "expires_at": int(times["created"] + WINDOW_SECONDS),
            "finalizing_at": _int(times.get("finalizing")),
            "completed_at": _int(times.get("completed")),
            "failed_at": _int(times.get("failed")),
            "expired_at": _int(times.get("expired")),
            "cancelling_at": _int(times.get("cancelling")),
            "cancelled_at": _int(times.get("cancelled")),
            "request_counts": {"total": total, **counts},
            "metadata": batch.metadata,
        }

    def _write_results(self, batch: SimBatch, done: int, status: str) -> None:
        outputs: list[str] = []
        failures: list[str] = []
        for index, line in enumerate(batch.requests):
            custom_id = line["custom_id"]
            entry_id = f"batch_req_{batch.id[-6:]}{index:06d}"
            if index >= done:
                code = "batch_expired" if status == "expired" else "batch_cancelled"
                error = {"code": code, "message": f"This request was not run: the batch {status}."}
                failures.append(
                    json.dumps(
                        {"id": entry_id, "custom_id": custom_id, "response": None, "error": error}
                    )
                )
                continue
            status_code, body = self._answer(line)
            entry = {
                "id": entry_id,
                "custom_id": custom_id,
                "response": {
                    "status_code": status_code,
                    "request_id": f"req_{batch.id[-6:]}{index:06d}",
                    "body": body,
                },
                "error": None,
            }
            (outputs if status_code == 200 else failures).append(json.dumps(entry))
        batch.counts = {"completed": len(outputs), "failed": len(failures)}
        if outputs:
            batch.output_file_id = self.files.add(
                filename=f"{batch.id}_output.jsonl",
                purpose="batch_output",
                content=("\n".join(outputs) + "\n").encode(),
            ).id
        if failures:
            batch.error_file_id = self.files.add(
                filename=f"{batch.id}_error.jsonl",
                purpose="batch_output",
                content=("\n".join(failures) + "\n").encode(),
            ).id
        batch.written = True

    def _answer(self, line: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        body = line["body"]
        mode = str((body.get("metadata") or {}).get("simulator_fail", ""))
        if mode in _LINE_FAILURES:
            status, kind, code = _LINE_FAILURES[mode]
            message = f"The request failed with {status}. (simulated)"
            error = {"message": message, "type": kind, "code": code, "param": None}
            return status, {"error": error}
        try:
            return self.answer(line["url"], body)
        except SimulatorError as exc:
            return exc.status, exc.body()


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


def _errors(errors: list[LineError]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"code": e.code, "message": e.message, "param": e.param, "line": e.line or None}
            for e in errors
        ],
    }


def routes(store: BatchStore) -> list[tuple[str, Any, list[str]]]:
    """(path, endpoint, methods) for the app's routing table."""

    async def create(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise invalid_request("We could not parse the JSON body of your request.") from None
        if not isinstance(body, dict):
            raise invalid_request("The request body must be a JSON object.")
        return JSONResponse(store.as_dict(store.create(body)))

    async def listing(request: Request) -> Response:
        data = [store.as_dict(b) for b in reversed(store.batches.values())]
        first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
        return JSONResponse(
            {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": False}
        )

    async def detail(request: Request) -> Response:
        return JSONResponse(store.as_dict(store.get(request.path_params["batch_id"])))

    async def cancel(request: Request) -> Response:
        batch = store.get(request.path_params["batch_id"])
        store.cancel(batch)
        return JSONResponse(store.as_dict(batch))

    return [
        ("/v1/batches", create, ["POST"]),
        ("/v1/batches", listing, ["GET"]),
        ("/v1/batches/{batch_id}", detail, ["GET"]),
        ("/v1/batches/{batch_id}/cancel", cancel, ["POST"]),
    ]
