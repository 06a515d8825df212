"""labwork's reverse proxy: the one origin a team opens (docs/proxy.md: how a request crosses,
the HTTP client, what it costs).

The control plane forwards `/user/<name>/<project>/…` to that user's Jupyter server for the
project and `/spark/<app>/…` to a Spark driver's UI, HTTP and websockets alike, after its
`AccessGuard` has found who calls. `Proxy` (labwork/proxy/app.py) is the ASGI app mounted there; it
asks a `Resolver` (given by whoever mounts it) for the `Upstream` of a request and forwards to it:
HTTP in labwork/proxy/http.py (over its own client, labwork/proxy/client.py), websockets in
labwork/proxy/sockets.py.
"""
