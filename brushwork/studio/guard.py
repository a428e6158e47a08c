"""Who may drive the studio: Host, origin and token checks run before every request.

A server on 127.0.0.1 is reachable from every web page the user opens, so (as Jupyter does):

* a Host header that is not a loopback name, the bound host or an allowed name is refused
  (DNS rebinding: a page on ``evil.example`` whose name now points at 127.0.0.1);
* a state-changing request (POST, PUT, PATCH, DELETE) showing a foreign origin (Origin, Referer,
  ``Sec-Fetch-Site``) is refused unless it carries the token in ``Authorization: Bearer`` (a header
  a foreign page cannot add without a CORS preflight, which this server never grants). The token
  cookie does not count there: cookies ignore ports, so a page on another port of 127.0.0.1 sends it;
* with a session token (``serve`` makes one per run), a state-changing request must also prove
  it is from the studio's own page or carry the token;
* with ``config.token`` (beyond loopback, or ``BRUSHWORK_TOKEN``), every request needs the token.

``?token=`` on any page sets the token cookie and redirects to the URL without it.
"""

from __future__ import annotations

import hmac
import ipaddress
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from brushwork.studio.config import StudioConfig

COOKIE = "brushwork_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _same(given: str, token: str | None) -> bool:
    return bool(token and given) and hmac.compare_digest(given.encode(), token.encode())


def host_name(netloc: str) -> str:
    """The name of a Host header or URL authority without its port, lower case, no brackets or final dot."""
    try:
        name = urlsplit(f"//{netloc}").hostname or ""
    except ValueError:
        return ""
    return name.rstrip(".")


def host_allowed(name: str, allowed: tuple[str, ...]) -> bool:
    if not name:
        return False
    if "*" in allowed or name in allowed or name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _origin_of(url: str) -> str | None:
    """``host[:port]`` of an Origin or Referer (None for ``null`` or anything not http(s))."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return parts.netloc.lower()


def provenance(request: Request) -> str:
    """``same``, ``foreign`` or ``unknown`` (no browser header says: a script or curl) for a request."""
    host = request.headers.get("host", "").lower()
    origin = request.headers.get("origin")
    if origin is not None:
        return "same" if _origin_of(origin) == host else "foreign"
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "none":
        return "same" if site == "same-origin" else "foreign"
    referer = request.headers.get("referer")
    if referer:
        return "same" if _origin_of(referer) == host else "foreign"
    return "unknown"


def _refuse(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status, headers=headers or None)


def check(request: Request, config: StudioConfig) -> Response | None:
    """The response refusing ``request``, or None to let it through."""
    name = host_name(request.headers.get("host", ""))
    if not host_allowed(name, config.allowed_hosts):
        return _refuse(
            403,
            f"Host {name[:100]!r} is not this studio's (allowed: localhost, 127.0.0.1, [::1]"
            + "".join(f", {h}" for h in config.allowed_hosts)
            + "; add a name with 'brushwork serve --allow-host NAME')",
        )
    tokens = [t for t in (config.token, config.session_token) if t]
    given = request.query_params.get("token")
    if given is not None and request.method in SAFE_METHODS and any(_same(given, t) for t in tokens):
        response = RedirectResponse(request.url.remove_query_params("token"), 303)
        response.set_cookie(COOKIE, given, httponly=True, samesite="strict")
        return response
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else ""
    by_header = any(_same(bearer, t) for t in tokens)
    by_cookie = any(_same(request.cookies.get(COOKIE, ""), t) for t in tokens)
    if config.token and not (_same(bearer, config.token) or _same(request.cookies.get(COOKIE, ""), config.token)):
        return _refuse(401, "missing or wrong token", **{"WWW-Authenticate": "Bearer"})
    if request.method in SAFE_METHODS:
        return None
    seen = provenance(request)
    if seen == "foreign" and not by_header:
        return _refuse(403, "cross-origin request refused: use the studio's own page, or send the token "
                            "as 'Authorization: Bearer …'")  # fmt: skip
    if config.session_token and seen != "same" and not (by_header or by_cookie):
        return _refuse(403, "this request needs the studio's token (in the URL 'brushwork serve' prints): "
                            "send it as 'Authorization: Bearer …'", **{"WWW-Authenticate": "Bearer"})  # fmt: skip
    return None
