"""The error tree. The runner decides what to do by the branch an error belongs to::

    KurokoError
    ├── BusinessRuleError        the world is not as the procedure expects → hand to a person,
    │   │                        never retried by itself
    │   ├── UnreadableTicket     no (or more than one, or a malformed) order number in the ticket
    │   ├── NotPhysicalSim       eSIM or mixed order: this procedure ships physical SIMs only
    │   ├── OrderMismatch        the page shows another order than the ticket names
    │   ├── OrderNotInBoss       not on the BOSS list after the bounded wait
    │   ├── UnsafeLink           a link to a host that is not configured; never followed
    │   └── UnknownValue         a carrier code / tracking status / value we have no rule for
    ├── ApplicationError         something failed on the way → evidence, reset, retry with backoff,
    │   │                        then hand to a person
    │   ├── PageChanged          an element never appeared, a page looks different
    │   ├── SessionExpired       the site sent us to its login page
    │   ├── SiteUnavailable      5xx, timeouts, connection refused
    │   └── ApiError             Zendesk or SP-API refused (code and message kept)
    └── ConfigurationError       a setting is missing or wrong → stop and say which
        └── LoginBlocked         a login stopped at a page only a person can pass (expired
                                 password, confirmation code, locked account); never retried

Messages say what was found and what to do; they never carry a credential.
"""

from __future__ import annotations


class KurokoError(Exception):
    """Base of every error Kuroko raises on purpose."""

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BusinessRuleError(KurokoError):
    code = "business_rule"


class UnreadableTicket(BusinessRuleError):
    code = "unreadable_ticket"


class NotPhysicalSim(BusinessRuleError):
    code = "not_physical_sim"


class OrderMismatch(BusinessRuleError):
    code = "order_mismatch"


class OrderNotInBoss(BusinessRuleError):
    code = "order_not_in_boss"


class UnsafeLink(BusinessRuleError):
    code = "unsafe_link"


class UnknownValue(BusinessRuleError):
    code = "unknown_value"


class ApplicationError(KurokoError):
    code = "application"


class PageChanged(ApplicationError):
    code = "page_changed"


class SessionExpired(ApplicationError):
    code = "session_expired"


class SiteUnavailable(ApplicationError):
    code = "site_unavailable"


class ApiError(ApplicationError):
    code = "api_error"


class ConfigurationError(KurokoError):
    code = "configuration"


class LoginBlocked(ConfigurationError):
    code = "login_blocked"
