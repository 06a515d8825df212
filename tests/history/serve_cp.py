"""Run a control plane for tests: `python serve_cp.py HOME PORT [DB_URL]`.

Like `labwork serve`, it writes LABWORK_HOME/control.json; unlike it, it binds with uvicorn's
SO_REUSEADDR only, so a test can stop it and start it again on the same port at once.
"""
import json
import os
import sys
import time

import uvicorn

from labwork.server.app import create_app
from labwork.settings import load_settings


def main() -> None:
    home, port = sys.argv[1], int(sys.argv[2])
    flags = {"home": home, "port": port}
    if len(sys.argv) > 3:
        flags["db"] = sys.argv[3]
    settings = load_settings(flags=flags)
    url = f"http://127.0.0.1:{port}"
    app = create_app(settings, url=url)
    settings.control_file.write_text(json.dumps({"url": url, "pid": os.getpid(), "port": port,
                                                 "host": "127.0.0.1", "started": time.time()}))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
