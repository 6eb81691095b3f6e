"""``orch ui``: a live web dashboard of pools, jobs, task logs and sweeps, served from this machine.

Everything it shows comes through the core's pool and job verbs and the Backend contract
(``state.Dashboard``); it names no backend and imports no SDK. The server (Starlette + uvicorn,
the ``orch[ui]`` extra) is imported only by ``orch ui``.
"""
