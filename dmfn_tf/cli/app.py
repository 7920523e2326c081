"""`dmfn app`: a local page to upload a photo, paint the hole with a brush and download the result.

Example:

```
dmfn app                              # the shipped model; then open http://127.0.0.1:7860/
dmfn app --model runs/demo             # at the trained size the run records (--trained-size overrides it)
dmfn app --allow-model runs/other --allow-model ref.pth   # more models the page may choose from
```

The page chooses among the models named here (and the shipped one) by their labels; it never types
a path (`dmfn_tf.app.models`). Each runs at the trained size it records; `--trained-size` overrides
that of the `--model` one.
"""

from __future__ import annotations

from dmfn_tf.cli import hd_options
from dmfn_tf.errors import UserError
from dmfn_tf.inpaint.budget import DEFAULT_MAX_PIXELS


def register(subparsers) -> None:
    from dmfn_tf.app.server import DEFAULT_HOST, DEFAULT_PORT

    parser = subparsers.add_parser(
        "app",
        help="a local web page to paint holes and inpaint photos",
        description="Serve a page where you upload a photo, paint the hole, inpaint it and download the PNG.",
    )
    parser.add_argument("--model", help="the model the page starts with (.keras generator, run directory, .pth or "
                                        "'shipped'; default: the shipped model); the page can name another")
    parser.add_argument("--allow-model", action="append", default=[], metavar="PATH",
                        help="another model the page may choose (repeat for more); the page offers the --model one, "
                             "the shipped one and these, by name")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to bind (default {DEFAULT_HOST}: this machine only)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT}; 0: any free port)")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help=f"pixel budget of every model input (default {DEFAULT_MAX_PIXELS:,})")
    hd_options.add_arguments(parser)
    parser.set_defaults(func=run)


def run(args) -> int:
    import logging

    from dmfn_tf.app.server import AppState, make_server
    from dmfn_tf.cli.model_option import model_or_shipped
    if args.max_pixels <= 0:
        raise UserError(f"--max-pixels must be positive, got {args.max_pixels}")
    hd = hd_options.options_from_args(args, args.model)
    model = model_or_shipped(args)
    # Every model is resolved and checked now (a wrong path or a FIFO fails here, not on the first click).
    state = AppState(model=model, hd=hd, max_pixels=args.max_pixels, allowed_models=args.allow_model)
    try:
        server = make_server(state, args.host, args.port)
    except OSError as err:
        raise UserError(f"cannot listen on {args.host}:{args.port} ({err.strerror or err})") from None
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    hd_options.announce_assumed_size(args, args.model)
    host, port = server.server_address[:2]
    print(f"dmfn app: open http://{host}:{port}/ (Ctrl+C stops it)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
