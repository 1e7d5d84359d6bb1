"""Compare run folders: which activation / init / optimizer won, and by how much.

Library first, one module per step: ``rows`` reads a run folder into a ``Row``;
``values`` holds the metric table and formats values; ``selection`` says which rows and
columns (filters, keys, sorting, the fields that differ); ``comparison`` builds the
``Comparison`` (seed groups, --top, the best run and its rival);
``groups`` and ``stats`` make seed groups and test them against a baseline; ``render``
turns it into a table, JSON, CSV or markdown, with ``verdict``'s sentence; and
``show`` describes one run (``mlp-lab show``). The CLI only parses options, calls these
and prints.

Start-up matters (``mlp-lab compare runs/`` on 1,000 folders takes well under a second),
so nothing here imports torch, pydantic (the config modules) or matplotlib at module
level: defaults are looked up lazily and only when needed, plots live in ``plots.py``.
"""

from mlp_lab.results.comparison import (
    DATA_FIELDS,
    Comparison,
    build_comparison,
    data_differences,
    runs_of,
    warning_lines,
)
from mlp_lab.results.groups import Group
from mlp_lab.results.render import (
    FORMATS,
    cells,
    plot_labels,
    render,
    resolve_format,
    table_lines,
    table_renderable,
    table_width,
    to_csv,
    to_json,
    to_markdown,
    to_table,
    write_output,
)
from mlp_lab.results.rows import IDENTITY, Row, headline_metrics, read_row
from mlp_lab.results.selection import (
    QUIET_FIELDS,
    CompareError,
    Filter,
    defaults_for,
    differing_fields,
    parse_filter,
    split_keys,
)
from mlp_lab.results.show import RunDetails, describe_run, show_renderables, show_text
from mlp_lab.results.values import (
    METRICS,
    Varies,
    fmt_metric,
    fmt_seconds,
    fmt_value,
    parse_value,
    short_labels,
    shorten,
)
from mlp_lab.results.verdict import verdict

__all__ = [
    "DATA_FIELDS",
    "FORMATS",
    "cells",
    "Group",
    "Varies",
    "runs_of",
    "split_keys",
    "IDENTITY",
    "METRICS",
    "QUIET_FIELDS",
    "CompareError",
    "Comparison",
    "Filter",
    "Row",
    "RunDetails",
    "build_comparison",
    "data_differences",
    "defaults_for",
    "describe_run",
    "differing_fields",
    "fmt_metric",
    "fmt_seconds",
    "fmt_value",
    "headline_metrics",
    "parse_filter",
    "parse_value",
    "plot_labels",
    "read_row",
    "render",
    "resolve_format",
    "short_labels",
    "shorten",
    "show_renderables",
    "show_text",
    "table_lines",
    "table_renderable",
    "table_width",
    "to_csv",
    "to_json",
    "to_markdown",
    "to_table",
    "verdict",
    "warning_lines",
    "write_output",
]
