"""The error tree. The runner decides what to do by the branch an error belongs to::

    KurokoError
    ├── BusinessRuleError        the world is not as the procedure expects → hand to a person,
    │   │                        never retried by itself (procedures add their own below it)
    │   ├── OrderMismatch        the page shows another order than the item names
    │   ├── UnsafeLink           a link to a host that is not configured; never followed
    │   └── UnknownValue         a carrier code / tracking status / value we have no rule for
    ├── ApplicationError         something failed on the way → evidence, reset, retry by the step's
    │   │                        RetryPolicy (a ``retry_after`` the error carries wins), then a person
    │   ├── PageChanged          an element never appeared, a page looks different
    │   ├── SessionExpired       the site sent us to its login page
    │   ├── SiteUnavailable      5xx, timeouts, connection refused
    │   └── ApiError             Zendesk or SP-API refused (code and message kept)
    └── ConfigurationError       a setting is missing or wrong → the run stops and says which;
        │                        no item is held for it
        ├── LoginBlocked         a login stopped at a page only a person can pass (expired
        │                        password, confirmation code, locked account); never retried
        └── LoginRefused         a site refused the configured user or password; never retried
                                 (on a real account a few more tries would lock it)

Any other exception raised in a step counts as an application error.
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


class OrderMismatch(BusinessRuleError):
    code = "order_mismatch"


class UnsafeLink(BusinessRuleError):
    code = "unsafe_link"


class UnknownValue(BusinessRuleError):
    code = "unknown_value"


class ApplicationError(KurokoError):
    code = "application"
    retry_after: float | None = None
    """Seconds the other side asked us to wait (e.g. Retry-After); the retry waits that long."""


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


class LoginRefused(ConfigurationError):
    """The login form came back: the configured user or password is wrong. The run stops at the
    first refusal instead of trying again item after item (which would lock a real account)."""

    code = "login_refused"
