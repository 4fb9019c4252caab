"""`python -m service`: parse settings, fail fast on bad ones, then serve."""

import sys

from service.config import ConfigError, parse_config


def main(argv=None) -> int:
    try:
        config = parse_config(argv)
        from service import server
        server.check_bindable(config.host, config.port)
    except ConfigError as exc:
        print(f"sensor-service: {exc}", file=sys.stderr, flush=True)
        return 2
    if config.variant == "baseline":
        from service.app import create_app
    else:   # no Flask in the optimized process (docs/service.md)
        from service.wsgi import create_app
    app = create_app(config)
    server.log_start(config)
    try:
        return server.serve(app, config)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
