"""The dashboard service's hub login, safe for many login flows started at once.

A browser logged in at the hub but not yet at the dashboard service (a notebook's tile map:
the service's tiles are its first requests there) sends a dozen tile requests in one go;
each is redirected through the hub's OAuth to the service's ``oauth_callback``. JupyterHub's
``HubOAuth`` keeps each flow's state in a cookie and names it uniquely only when the request
already carries one (jupyterhub/jupyterhub#1438): requests sent together carry none, so they
share one cookie name, overwrite each other's state, and every callback answers 403 ("oauth
state does not match") -- a map with no tiles. Here every flow has its own state cookie
(JupyterHub's own branch for concurrent logins, taken always); the first callback logs the
browser in, and those after it find the login cookie and go on to their tile.

:class:`MapsAuthenticated` (a handler mixin) and :class:`MapsOAuthCallback` share one
:class:`FlowStateHubOAuth`: the flows' states live in its memory.
"""

from __future__ import annotations

import logging
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado.log import app_log

__all__ = ["FlowStateHubOAuth", "MapsAuthenticated", "MapsOAuthCallback"]


class _CarriesAStateCookie:
    """``handler`` as :meth:`HubOAuth.set_state_cookie` sees it: already carrying a state
    cookie named ``name``, so the flow gets a state cookie of its own."""

    def __init__(self, handler: Any, name: str) -> None:
        self._handler = handler
        self._name = name

    def get_cookie(self, name: str, default: str | None = None) -> str | None:
        if name == self._name:
            return "another flow's"
        return self._handler.get_cookie(name, default)

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._handler, attr)


#: What ``HubOAuth`` logs on the branch every flow here takes: no news in this service's log.
_EVERY_FLOW = "Detected unused OAuth state cookies"


class _NotEveryFlow(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _EVERY_FLOW


class FlowStateHubOAuth(HubOAuth):
    """``HubOAuth`` whose every login flow keeps its state in a cookie of its own."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not any(isinstance(f, _NotEveryFlow) for f in app_log.filters):
            app_log.addFilter(_NotEveryFlow())

    def set_state_cookie(self, handler: Any, next_url: str | None = None, **kwargs: Any) -> str:
        """Store a new flow's state in a uniquely named cookie; return the state."""
        seen = _CarriesAStateCookie(handler, self.state_cookie_name)
        return super().set_state_cookie(seen, next_url, **kwargs)


class MapsAuthenticated(HubOAuthenticated):
    """Handler mixin: logged-in hub users only, through :class:`FlowStateHubOAuth`."""

    hub_auth_class = FlowStateHubOAuth


class MapsOAuthCallback(HubOAuthCallbackHandler):
    """The service's ``oauth_callback``, completing :class:`FlowStateHubOAuth`'s flows."""

    hub_auth_class = FlowStateHubOAuth
