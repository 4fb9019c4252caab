"""The Prometheus text exposition with its constant parts rendered once.

prometheus_client's generate_latest rebuilds every line from scratch on each scrape:
the HELP/TYPE header of each metric and, per sample, the sorted, escaped label set
(`{le="0.005"}`), although only the values change between scrapes. This renders the
same bytes (tests/test_service.py compares them with generate_latest's), caching the
header of each metric and the `name{labels} ` prefix of each sample; a scrape only
formats the values. The service's label sets are fixed (histogram buckets, gc
generations), so the caches stop growing after the first scrape.
docs/service.md has the measurement."""

from prometheus_client.openmetrics import exposition as openmetrics
from prometheus_client.utils import floatToGoString

ESCAPING = openmetrics.UNDERSCORES            # generate_latest's default
OM_SUFFIXES = ("_created", "_gsum", "_gcount")  # OpenMetrics samples, moved to gauges


def _help_type(name, documentation, mtype):
    escaped = openmetrics.escape_metric_name(name, ESCAPING)
    doc = documentation.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {escaped} {doc}\n# TYPE {escaped} {mtype}\n"


def _sample_prefix(name, labels):
    """`name{k="v",...} ` as generate_latest writes it, for one sample's name and labels."""
    labelstr = ",".join(f'{openmetrics.escape_label_name(k, ESCAPING)}='
                        f'"{openmetrics._escape(v, openmetrics.ALLOWUTF8, False)}"'
                        for k, v in sorted(labels.items()))
    if openmetrics._is_valid_legacy_metric_name(name) or ESCAPING != openmetrics.ALLOWUTF8:
        return f"{openmetrics.escape_metric_name(name, ESCAPING)}{{{labelstr}}} " if labelstr \
            else f"{openmetrics.escape_metric_name(name, ESCAPING)} "
    comma = "," if labelstr else ""
    return f"{{{openmetrics.escape_metric_name(name, ESCAPING)}{comma}{labelstr}}} "


PROM_TYPES = {"counter": "counter", "info": "gauge", "stateset": "gauge",
              "gaugehistogram": "histogram", "unknown": "untyped"}


class CachedExposition:
    """generate_latest(registry), with headers and sample prefixes cached."""

    def __init__(self, registry):
        self.registry = registry
        self.headers = {}    # (name, type, documentation) -> (header, om headers by suffix)
        self.prefixes = {}   # (sample name, label items) -> 'name{labels} '

    def _header(self, metric):
        key = (metric.name, metric.type, metric.documentation)
        header = self.headers.get(key)
        if header is None:
            mname, mtype = metric.name, PROM_TYPES.get(metric.type, metric.type)
            if metric.type == "counter":
                mname += "_total"
            elif metric.type == "info":
                mname += "_info"
            header = self.headers[key] = (
                _help_type(mname, metric.documentation, mtype),
                {suffix: _help_type(metric.name + suffix, metric.documentation, "gauge")
                 for suffix in OM_SUFFIXES})
        return header

    def _line(self, sample):
        key = (sample.name, tuple(sample.labels.items()))
        prefix = self.prefixes.get(key)
        if prefix is None:
            prefix = self.prefixes[key] = _sample_prefix(sample.name, sample.labels)
        if sample.timestamp is None:
            return f"{prefix}{floatToGoString(sample.value)}\n"
        return f"{prefix}{floatToGoString(sample.value)} {int(float(sample.timestamp) * 1000):d}\n"

    def render(self) -> bytes:
        output = []
        for metric in self.registry.collect():
            header, om_headers = self._header(metric)
            output.append(header)
            om_lines = {}
            om_names = {metric.name + suffix: suffix for suffix in OM_SUFFIXES}
            for sample in metric.samples:
                suffix = om_names.get(sample.name)
                if suffix is None:
                    output.append(self._line(sample))
                else:
                    om_lines.setdefault(suffix, []).append(self._line(sample))
            for suffix, lines in sorted(om_lines.items()):
                output.append(om_headers[suffix])
                output.extend(lines)
        return "".join(output).encode("utf-8")
