"""What operators see: Prometheus metrics, structured logs, call traces, and the call monitor that
feeds the dashboard.

* :mod:`voxwire.observability.logging`: one line per event, the call id on every line, secrets
  redacted before anything is written.
* :mod:`voxwire.observability.metrics`: the Prometheus registry of one server (bounded labels, no
  per-call labels) and the traffic counter in front of the media socket's core.
* :mod:`voxwire.observability.tracing`: one trace per call (signaling, ICE, DTLS, data channel, turns);
  the exporter is off by default.
* :mod:`voxwire.observability.calls`: follows every call of a transceiver (state, RTCP figures, voice
  activity, turn latencies) and keeps a bounded history of each for the dashboard's charts.

Nothing here touches the protocol cores: it reads their public state and counters, and listens to
each call's server events (``Call.observers``).
"""
