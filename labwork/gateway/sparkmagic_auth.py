"""sparkmagic's authenticator for the control plane's `/livy`: the user's own personal token.

The Jupyter server of a user and project gets that user's personal token as `LABWORK_TOKEN` in its
environment (its kernels inherit it); this authenticator sends it as a bearer token on every Livy
request, so sessions belong to that user and no token is ever written into a sparkmagic
`config.json`. Without `LABWORK_TOKEN` the kernel refuses clearly instead of falling back to a
shared credential. sparkmagic finds it by the name `AUTH_NAME` in its config's `authenticators`.
"""
from __future__ import annotations

import os

from sparkmagic.auth.customauth import Authenticator
from sparkmagic.livyclientlib.exceptions import BadUserConfigurationException

from labwork import envvars

AUTH_NAME = "Labwork_Token"
AUTH_CLASS = f"{__name__}.PersonalToken"

MISSING = ("This Spark kernel has no personal token: LABWORK_TOKEN is not set in its environment. "
           "labwork's Jupyter servers set it for the user who started them; start the server "
           "from labwork (labwork notebook start, or the dashboard's Jupyter page), or set "
           "LABWORK_TOKEN to a token of yours (labwork token create).")


def personal_token(environ: dict[str, str] | None = None) -> str:
    """The kernel's personal token (`LABWORK_TOKEN`); a clear error when there is none."""
    token = envvars.get(envvars.TOKEN, os.environ if environ is None else environ)
    if not token:
        raise BadUserConfigurationException(MISSING)
    return token


class PersonalToken(Authenticator):
    """Sends `Authorization: Bearer $LABWORK_TOKEN`. Without one, the first request (the session's
    creation) fails with `MISSING`, which sparkmagic shows in the cell; the kernel itself starts."""

    def __init__(self, parsed_attributes=None) -> None:  # noqa: ANN001 - sparkmagic's Namespace
        Authenticator.__init__(self, parsed_attributes)

    def __call__(self, request):  # noqa: ANN001, ANN204 - a requests PreparedRequest
        request.headers["Authorization"] = f"Bearer {personal_token()}"
        return request

    def __hash__(self) -> int:
        return hash((self.url, self.__class__.__name__))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PersonalToken) and self.url == other.url
