"""Logging through loguru: the order number bound to every line, readable on a terminal, JSON
lines in ``{data_dir}/logs/kuroko.jsonl``, and every configured secret redacted everywhere."""

from __future__ import annotations

import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loguru import logger

if TYPE_CHECKING:
    from loguru import Record

    from kuroko.settings import Settings

REDACTED = "[REDACTED]"
_secrets: list[str] = []
_secrets_seen = [-1]
_BASIC_AUTH = re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?)(basic|bearer)\s+[A-Za-z0-9+/=._|-]+")


def _known_secrets() -> list[str]:
    """Every secret of every settings model read so far (longest first); read again whenever
    another model has been read (a procedure's or a site's settings come in as they are used)."""
    from kuroko.settings import generation, secret_values

    if _secrets_seen[0] != generation():
        _secrets[:] = sorted(set(secret_values()), key=len, reverse=True)
        _secrets_seen[0] = generation()
    return _secrets


def redact(text: str) -> str:
    """The text with every configured secret, and any Authorization header value, blanked out."""
    for secret in _known_secrets():
        if secret:
            text = text.replace(secret, REDACTED)
    return _BASIC_AUTH.sub(r"\1\2 " + REDACTED, text)


def _patch(record: Record) -> None:
    record["message"] = redact(record["message"])
    record["extra"].setdefault("order", "-")
    for key, value in list(record["extra"].items()):
        if isinstance(value, str):
            record["extra"][key] = redact(value)
    if record["exception"] is not None and record["exception"].value is not None:
        exc = record["exception"].value
        exc.args = tuple(redact(a) if isinstance(a, str) else a for a in exc.args)


class _ToLoguru(logging.Handler):
    """Warnings of the libraries that log through ``logging`` (zenpy waiting out a 429, the SP-API
    client) go to the same places as Kuroko's own lines, redacted like them."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.bind(library=record.name).opt(exception=record.exc_info).log(level, "{}: {}", record.name,
                                                                              record.getMessage())


def setup_logging(settings: Settings, *, verbose: bool = False, console: bool = True) -> Path:
    """Configure loguru once per process; returns the JSON log file's path."""
    _secrets_seen[0] = -1
    log_dir = settings.data_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / "kuroko.jsonl"
    logger.remove()
    logger.configure(patcher=_patch, extra={"order": "-"})
    if console:
        logger.add(sys.stderr, level="DEBUG" if verbose else "INFO", colorize=None,
                   format="<green>{time:HH:mm:ss}</green> <level>{level: <7}</level> "
                          "<cyan>{extra[order]}</cyan> {message}")
    logger.add(path, level="DEBUG", serialize=True, enqueue=False, backtrace=False, diagnose=False)
    library_logs = logging.getLogger()
    library_logs.handlers = [h for h in library_logs.handlers if not isinstance(h, _ToLoguru)]
    library_logs.addHandler(_ToLoguru(level=logging.WARNING))
    return path


def order_logger(order_number: str, **extra: Any) -> Any:
    return logger.bind(order=order_number, **extra)
