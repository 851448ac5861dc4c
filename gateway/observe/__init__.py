"""What the gateway tells about itself.

Modules:

* ``metrics``: the counters and histograms, exposed in Prometheus text.
* ``accesslog``: one line per request, and the request metrics.
* ``logs``: logging setup, JSON or text lines.
* ``trace``: the W3C trace context a request carries, and its request id.
* ``status_history``: the status page's samples of the last minutes.
* ``status_model``: ``/status.json``, the status page's one document.
* ``status_html``: the status page's HTML, rendered from that document.
* ``status_assets``: the status page's inline style and script.
"""
