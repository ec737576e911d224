"""Where ``@monitored``'s numbers go besides ``rs.monitor.snapshot()``.

Each exporter is its own module, imported only when you ask for it, so that
``import resilience`` never imports prometheus_client or OpenTelemetry:

- ``resilience.exporters.prometheus`` (extra ``prometheus``): ``register(registry=None)``
  adds a collector to a prometheus_client registry; prometheus_client's multi-process
  mode is supported.
- ``resilience.exporters.otel`` (extra ``otel``): ``register(meter_provider=None)``
  creates OpenTelemetry instruments with the same meaning.
- ``resilience.exporters.server``: ``serve(port)`` answers ``/metrics`` and ``/health``
  for services without a web framework.

Your own sink: a :class:`resilience.monitor.Listener` given to
``rs.monitor.add_listener()``.
"""
