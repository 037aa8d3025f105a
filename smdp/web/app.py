"""The aiohttp application: ES9+ routes (SGP.22 section 6.5.2) over HTTPS with the DPtls certificate."""

from __future__ import annotations

from aiohttp import web

from smdp.services.download import DownloadService
from smdp.web.binding import json_function

ES9_PREFIX = "/gsma/rsp2/es9plus/"


def make_app(download: DownloadService) -> web.Application:
    app = web.Application(client_max_size=1024 * 1024)
    functions = {
        "initiateAuthentication": download.initiate_authentication,
        "authenticateClient": download.authenticate_client,
        "getBoundProfilePackage": download.get_bound_profile_package,
        "handleNotification": download.handle_notification,
        "cancelSession": download.cancel_session,
    }
    app.add_routes([web.post(ES9_PREFIX + name, json_function(fn)) for name, fn in functions.items()])
    return app

