"""The status page's figures (observe/status_history.py, status_model.py, metrics.py): what
the page computes from the summed metrics, without the request path counting anything more."""

from __future__ import annotations

import pytest

from gateway.observe.metrics import BUCKETS, Metrics, merge
from gateway.observe.status_history import History, histogram_quantile, sample_of


def test_histogram_quantile_interpolates_inside_the_bucket_as_prometheus_does() -> None:
    bounds = (0.1, 0.2, 0.4)
    counts = (10, 10, 0, 0)  # 10 at or below 0.1, 10 in (0.1, 0.2], none above
    assert histogram_quantile(0.5, bounds, counts) == pytest.approx(0.1)
    assert histogram_quantile(0.75, bounds, counts) == pytest.approx(0.15)
    assert histogram_quantile(0.25, bounds, counts) == pytest.approx(0.05)
    assert histogram_quantile(0.99, bounds, (0, 0, 0, 5)) == 0.4  # +Inf: the last bound
    assert histogram_quantile(0.5, bounds, (0, 0, 0, 0)) is None


def _metrics(requests: int, seconds: float = 0.003) -> Metrics:
    metrics = Metrics()
    for _ in range(requests):
        metrics.observe_request("/segments/aam", "POST", 200, seconds)
    metrics.observe_request("/segments/aam", "POST", 502, 0.2)
    return metrics


def test_two_workers_sum_and_rates_and_percentiles_come_from_two_samples() -> None:
    history = History()
    first = sample_of(merge([_metrics(10).snapshot(), _metrics(10).snapshot()]), 100.0)
    history.add(first)
    later = sample_of(merge([_metrics(30).snapshot(), _metrics(50).snapshot()]), 110.0)
    assert first.routes["/segments/aam"].requests == 22
    assert later.routes["/segments/aam"].requests == 82
    assert later.routes["/segments/aam"].by_class == {"2xx": 80, "5xx": 2}
    history.add(later)
    from gateway.observe.status_model import _history

    charted = _history(history)
    assert charted["requests_per_s"] == [6.0]  # (82 - 22) / 10 s
    assert charted["errors_5xx_per_s"] == [0.0]
    # The 60 new requests all took 3 ms: the interval's p99 is in the 2.5-5 ms bucket.
    assert BUCKETS[2] * 1000 < charted["p99_ms"][0] <= BUCKETS[3] * 1000


def test_points_in_time_merge_to_the_latest_and_a_reload_sets_its_time() -> None:
    one, two = Metrics(), Metrics()
    one.count("gateway_config_reloads_total", "ok")
    two.count("gateway_config_reloads_total", "ok")
    two.count("gateway_config_reloads_total", "error")
    merged = merge([one.snapshot(), two.snapshot()])
    when = merged["gateway_config_last_reload_timestamp_seconds"]
    assert when[("ok",)] == max(one.reloaded_at["ok"], two.reloaded_at["ok"])  # not the sum
    assert when[("error",)] == two.reloaded_at["error"]
    assert merged["gateway_config_reloads_total"][("ok",)] == 2  # counters still add up
