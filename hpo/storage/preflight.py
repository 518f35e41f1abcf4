"""Pre-flight: before a sweep plans or runs anything, check that every input can be read.

`hpo plan` and `hpo run` call `run_preflight` with the resolved spec and its data keys (and the
workspace URI when results go to S3). It finds the credentials' source (the name only, never a value),
looks up every input (HEAD for objects, a listing for prefixes, stat for local paths) and, for an S3
workspace, writes and deletes a marker object to prove the credentials may write there. The result is a
table-ready report; `render_preflight` prints it with rich, and `PreflightReport.raise_for_problems`
turns problems into one `StorageError` naming each location and its cause.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.filesize import decimal
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hpo.storage.router import Storage
from hpo.storage.sources import describe_source
from hpo.storage.uri import display_endpoint, is_s3_uri, join, parse_s3_uri
from skillkit.errors import StorageError
from skillkit.redaction import redact
from skillkit.spec.dotted import get_dotted

WORKSPACE_KEY = "(workspace)"


@dataclass(frozen=True)
class PreflightRow:
    """One checked location. `size`/`objects` are None when it could not be read (`problem` says why)."""

    key: str
    location: str
    kind: str
    size: int | None
    objects: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "location": self.location, "kind": self.kind, "size": self.size,
            "objects": self.objects, "ok": self.ok, "problem": self.problem,
        }


@dataclass(frozen=True)
class PreflightReport:
    """Every checked location, plus where S3 credentials came from and which endpoint was used."""

    rows: tuple[PreflightRow, ...]
    credential_source: str | None
    endpoint: str
    uses_s3: bool

    @property
    def ok(self) -> bool:
        return all(row.ok for row in self.rows)

    @property
    def problems(self) -> tuple[PreflightRow, ...]:
        return tuple(row for row in self.rows if not row.ok)

    @property
    def total_bytes(self) -> int:
        return sum(row.size or 0 for row in self.rows if row.key != WORKSPACE_KEY)

    def table_rows(self) -> list[dict[str, Any]]:
        """Plain dicts (JSON-ready), one per location."""
        return [row.as_dict() for row in self.rows]

    def raise_for_problems(self) -> None:
        """One `StorageError` listing every unreadable input (nothing when all are fine)."""
        if self.ok:
            return
        lines = "; ".join(f"{row.key} = {row.location}: {row.problem}" for row in self.problems)
        count = "1 input" if len(self.problems) == 1 else f"{len(self.problems)} inputs"
        raise StorageError(redact(f"pre-flight found {count} that cannot be used, so nothing was started: {lines}"))


def _problem(error: Exception) -> str:
    """The cause part of a storage error message ('cannot read X: <cause>')."""
    text = str(error)
    head, sep, tail = text.partition(": ")
    return redact(tail if sep and head.startswith("cannot ") else text).rstrip(".")


def _check_workspace(uri: str, storage: Storage) -> PreflightRow:
    """Prove the credentials may write to the workspace prefix by writing and deleting a marker."""
    marker = join(uri, f".hpo-preflight-{uuid.uuid4().hex[:8]}")
    try:
        if is_s3_uri(uri):
            parse_s3_uri(uri)
            storage.s3.bucket_reachable(parse_s3_uri(uri).bucket)
        with tempfile.TemporaryDirectory() as folder:
            probe = Path(folder) / "probe"
            probe.write_text("hpo pre-flight write check\n")
            storage.upload(probe, marker)
        storage.delete(marker)
    except StorageError as error:
        return PreflightRow(WORKSPACE_KEY, uri, "workspace", None, None, _problem(error))
    return PreflightRow(WORKSPACE_KEY, uri, "workspace", None, None, None)


def run_preflight(
    spec: Mapping[str, Any] | None = None,
    *,
    data_paths: Sequence[str] = (),
    locations: Mapping[str, str] | None = None,
    workspace: str | None = None,
    storage: Storage | None = None,
) -> PreflightReport:
    """Check the inputs at `data_paths` of `spec` (plus `locations`, key -> URI/path) and the workspace.

    Empty values are skipped. Never raises for unreadable inputs: they are rows with a `problem`; call
    `raise_for_problems` to stop. A malformed URI is a problem row too.
    """
    storage = storage or Storage()
    targets: list[tuple[str, str]] = []
    for key in data_paths:
        value = get_dotted(spec or {}, key, None)
        values = value if isinstance(value, (list, tuple)) else [value]
        targets.extend((key, item) for item in values if isinstance(item, str) and item)
    targets.extend((locations or {}).items())
    uses_s3 = any(is_s3_uri(location) for _key, location in targets) or bool(workspace and is_s3_uri(workspace))
    credential_source = None
    credentials_problem = None
    if uses_s3:
        try:
            credential_source = storage.s3.credential_source()
        except StorageError as error:
            credentials_problem = _problem(error)
        else:
            if credential_source is None:
                credentials_problem = (
                    "no AWS credentials were found (looked for AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
                    "AWS_PROFILE and ~/.aws/credentials, ~/.aws/config, container and instance roles)"
                )
    rows: list[PreflightRow] = []
    for key, location in targets:
        if credentials_problem and is_s3_uri(location):
            rows.append(PreflightRow(key, location, "-", None, None, credentials_problem))
            continue
        try:
            info = describe_source(location, storage)
        except StorageError as error:
            rows.append(PreflightRow(key, location, "-", None, None, _problem(error)))
            continue
        rows.append(PreflightRow(key, location, info.kind, info.size, info.objects, None))
    if workspace:
        if credentials_problem and is_s3_uri(workspace):
            rows.append(PreflightRow(WORKSPACE_KEY, workspace, "workspace", None, None, credentials_problem))
        else:
            rows.append(_check_workspace(workspace, storage))
    return PreflightReport(
        rows=tuple(rows), credential_source=credential_source,
        endpoint=display_endpoint(storage.endpoint_url), uses_s3=uses_s3,
    )


def render_preflight(report: PreflightReport, console: Console | None = None) -> None:
    """Print the report as a table: one line per location, sizes in human units, problems in red."""
    console = console or Console()
    title = "Pre-flight: inputs"
    if report.uses_s3:  # titles are markup: escape what came from the environment
        title += escape(f" (S3 endpoint: {report.endpoint}; credentials: {report.credential_source or 'none found'})")
    table = Table(title=title, title_justify="left")
    table.add_column("Key")
    table.add_column("Location", overflow="fold")
    table.add_column("Kind")
    table.add_column("Size", justify="right")
    table.add_column("Objects", justify="right")
    table.add_column("Status")
    for row in report.rows:
        table.add_row(  # Text, not markup strings: locations and messages may contain '['
            Text(row.key),
            Text(row.location),
            Text(row.kind),
            decimal(row.size) if row.size is not None else "-",
            str(row.objects) if row.objects is not None else "-",
            Text("ok", style="green") if row.ok else Text(row.problem or "", style="red"),
        )
    console.print(table)
    summary = f"{len(report.rows)} locations, {decimal(report.total_bytes)} of input data"
    if report.ok:
        console.print(f"[green]pre-flight passed[/green]: {summary}")
    else:
        console.print(f"[red]pre-flight failed[/red]: {len(report.problems)} of {summary} cannot be used")
