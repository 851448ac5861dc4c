"""What the gateway tells about itself.

Modules:

* ``metrics``: the counters and histograms, exposed in Prometheus text.
* ``accesslog``: one line per request, and the request metrics.
* ``logs``: logging setup, JSON or text lines.
"""
