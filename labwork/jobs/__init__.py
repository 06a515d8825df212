"""Jobs: a notebook run with papermill through a run configuration's kernel, now or on a schedule.

`tables` (jobs, job runs), `params` (typed `k=v` parameters), `schedule` (cron + time zones through
croniter), `execution` (one run: a papermill subprocess, timeout, kernel death, retries),
`runner` (the code of that subprocess), `webhooks`, `library` (`Jobs`, the public functions),
`scheduler` (the control plane's cron loop) and `service` (the one wiring function, `attach`).
"""
