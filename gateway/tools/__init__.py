"""The programs around the gateway: what a partner uses to try, test and load it.

Modules:

* ``backend``: a sample legacy backend that counts and records pushes.
* ``certs``: a development CA and server certificate.
* ``demo``: ``gateway demo``, the whole flow on loopback.
* ``demo_spool``: the demo's spool and fallback step, with the backend stopped.
* ``demo_aep``: the demo's Adobe Experience Platform push, after IRIS's.
* ``loadtest``: the IRIS simulator under load.
* ``loadtest_cli``: ``gateway loadtest``'s arguments.
* ``loadtest_options``: the load test's options, checked when built.
* ``loadtest_report``: the report printed at the end (and ``--json``).
* ``loadtest_bottleneck``: where a run's limit was: simulator, gateway or backend.
* ``loadtest_html``: ``--report FILE.html``, one self-contained page.
* ``loadtest_aep``: what each simulated caller sends, IRIS's or AEP's (``--profile``).
* ``payloads``: generated IRIS-shaped pushes.
* ``aep_payloads``: generated AEP profile batches, as Adobe's template examples render them.
* ``seed``: Adobe's sample requests, byte for byte.
"""
