"""Who may call the control plane, without the web app: the token file (`token`), the dashboard's
log-in sessions (`sessions`, table in `tables`) and a request's identity with the API routes'
dependency (`identity`). A base layer: parts (dashboard, history, gateway) import it; the ASGI
`AccessGuard` that decides the identity is composition and stays in `labwork.server.auth`."""
