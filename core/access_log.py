"""One structured access-log line per HTTP request, for `agent serve` and the gateway: time,
request id, person (control plane only), method, route, status and duration in ms, as text
or JSON (``--log-json``) on stderr. Callers pass only these fields: never a header, a token,
a query string or a body.
"""

from __future__ import annotations

import json
import logging
import sys
import time

FIELDS = ("request_id", "person", "method", "route", "status", "duration_ms")


class AccessFormatter(logging.Formatter):
    """Formats a record's access fields (given as ``extra``); other records as usual."""

    def __init__(self, as_json: bool = False) -> None:
        super().__init__("%(asctime)s %(name)s %(levelname)s %(message)s")
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "route"):
            return super().format(record)
        when = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        stamp = f"{when}.{int(record.msecs):03d}Z"
        values = {f: getattr(record, f, None) for f in FIELDS}
        if self.as_json:
            return json.dumps({"time": stamp, **values}, separators=(",", ":"))
        return (
            f"{stamp} {values['request_id']} {values['person'] or '-'} {values['method']} "
            f"{values['route']} {values['status']} {values['duration_ms']}ms"
        )


def configure(name: str, *, enabled: bool = True, as_json: bool = False) -> logging.Logger:
    """The access logger ``name`` writing to stderr (INFO when enabled, else silent)."""
    logger = logging.getLogger(name)
    for h in list(logger.handlers):
        logger.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(AccessFormatter(as_json))
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO if enabled else logging.WARNING)
    return logger
