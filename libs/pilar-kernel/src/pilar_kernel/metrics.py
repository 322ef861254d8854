"""Prometheus metrics of the kernel's moving parts (one definition per process)."""

from prometheus_client import Counter, Gauge, Histogram

OUTBOX_BACKLOG = Gauge("pilar_outbox_backlog", "Outbox rows not yet acknowledged by Kafka", ["service"])
OUTBOX_PUBLISHED = Counter("pilar_outbox_published_total", "Outbox rows published and acknowledged", ["service"])
OUTBOX_ERRORS = Counter("pilar_outbox_publish_errors_total", "Failed outbox publish attempts", ["service"])
OUTBOX_LATENCY = Histogram(
    "pilar_outbox_publish_latency_seconds",
    "From the event's creation in the business transaction to Kafka's acknowledgement",
    ["service"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
CONSUMED = Counter(
    "pilar_consumer_messages_total",
    "Messages handled by consumers, by outcome (applied, duplicate, ignored, dead_lettered)",
    ["consumer", "outcome"],
)
CONSUMER_RETRIES = Counter("pilar_consumer_retries_total", "Handler attempts that failed and were retried", ["consumer"])
HTTP_REQUESTS = Counter("pilar_http_requests_total", "HTTP requests", ["service", "method", "route", "status"])
HTTP_LATENCY = Histogram("pilar_http_request_seconds", "HTTP request duration", ["service", "method", "route"])
