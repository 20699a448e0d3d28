"""Which procedures this robot runs: every ``kuroko.procedures`` entry point of the installed
packages (pyproject.toml), plus any named in ``KUROKO_EXTRA_PROCEDURES`` (``module:attribute``,
comma-separated — a shop's own procedure without packaging it, or a test's). The engine never
imports a procedure by name: it finds them here, checks each declaration, and refuses a wrong one.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from kuroko.errors import ConfigurationError
from kuroko.procedure import Procedure, RegistrationError
from kuroko.settings import get_settings

GROUP = "kuroko.procedures"


def _load(target: str) -> Procedure:
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        found = getattr(module, attribute or "procedure")
    except (ImportError, AttributeError) as exc:
        raise ConfigurationError(f"procedure {target!r} could not be loaded ({exc}); check the entry point or "
                                 "KUROKO_EXTRA_PROCEDURES") from exc
    if not isinstance(found, Procedure):
        raise RegistrationError(f"{target} is a {type(found).__name__}, not a kuroko Procedure")
    return found


def load_procedures() -> dict[str, Procedure]:
    """Every registered procedure by name, each declaration checked."""
    found: dict[str, Procedure] = {}
    targets = [(ep.name, ep.value) for ep in entry_points(group=GROUP)]
    targets += [("", t.strip()) for t in get_settings().extra_procedures.split(",") if t.strip()]
    for name, target in targets:
        procedure = _load(target)
        if name and name != procedure.name:
            raise RegistrationError(f"entry point {name!r} points at procedure {procedure.name!r}; "
                                    "the names must agree")
        if procedure.name in found and found[procedure.name] is not procedure:
            raise RegistrationError(f"two procedures are named {procedure.name!r}")
        procedure.validate()
        found[procedure.name] = procedure
    return found


def select(procedures: dict[str, Procedure], names: list[str] | None) -> list[Procedure]:
    """The procedures named (all when none are), or a clear error naming the known ones."""
    if not names:
        return list(procedures.values())
    unknown = [n for n in names if n not in procedures]
    if unknown:
        raise ConfigurationError(f"no procedure named {', '.join(map(repr, unknown))}; "
                                 f"registered: {', '.join(procedures) or 'none'}")
    return [procedures[n] for n in names]
