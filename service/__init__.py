"""The edgebench sensor service.

Two variants share one code base so a profiler can compare them line by line:
``baseline`` keeps the original bugs (a CPU burn and a 5 MB copy on every
/metrics scrape, Werkzeug's single-threaded dev server); ``optimized`` drops
both and runs as a plain WSGI app under a small threaded server
(service/lean_server.py). Start it with ``python -m service``.
"""

VARIANTS = ("baseline", "optimized")
