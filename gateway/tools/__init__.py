"""The programs around the gateway: what a partner uses to try, test and load it.

Modules:

* ``backend``: a sample legacy backend that counts and records pushes.
* ``certs``: a development CA and server certificate.
* ``demo``, ``demo_spool``: ``gateway demo``, the whole flow on loopback.
* ``loadtest``, ``loadtest_cli``, ``loadtest_report``: the IRIS simulator under load.
* ``payloads``, ``seed``: IRIS-shaped pushes and Adobe's sample requests.
"""
