"""``qmra ui``: a local web app: draw boxes on any frame, see the masks, run, scrub, correct, export."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from qmra.commands.common import add_model_arguments, make_segmenter
from qmra.errors import QmraError


def add_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("ui", help="a local web app: draw boxes on the frames, watch the masks, export them")
    parser.add_argument("source", nargs="?",
                        help="a video file or frame folder to open (allowed even outside the current folder); without "
                             "it, pick one in the page")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860; 0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 lets other machines "
                             "in, and everything the page can do with them)")
    parser.add_argument("--no-browser", action="store_true", help="do not open a browser tab")
    parser.add_argument("--out", metavar="FOLDER",
                        help="an export folder the page may write into even outside the current folder (it is the "
                             "export box's default)")
    parser.add_argument("--max-upload", type=float, default=2048.0, metavar="MB",
                        help="largest video the page may upload, in MiB (default 2048)")
    parser.add_argument("--idle-minutes", type=float, default=15.0, metavar="MIN",
                        help="a page session idle this long (and every closed one) is freed with its files (default 15)")
    parser.add_argument("--adapt-preview", action="store_true",
                        help="adapt the network (--adapt STEPS) already for the mask shown when a box is drawn; by "
                             "default only runs adapt: on the box's own frame the mask hardly changes, and it takes "
                             "about ten times longer")
    add_model_arguments(parser)  # --weights, --device and the speed switches
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from qmra.data.frames import open_frames
    from qmra.ui.config import UiConfig
    from qmra.ui.server import create_server

    source = Path(args.source).resolve() if args.source else None
    if source is not None:
        open_frames(source)  # a missing or unsupported input stops here, before the weights load
    if not 0 <= args.port <= 65535:
        raise QmraError(f"--port must lie in 0..65535, got {args.port}")
    if not args.max_upload > 0 or not args.idle_minutes > 0:
        raise QmraError("--max-upload and --idle-minutes must be positive")
    out = Path(args.out).resolve() if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise QmraError(f"--out {args.out} is a file, not a folder")
    segmenter = make_segmenter(args, progress=False)
    config = UiConfig(root=Path.cwd(), source=source, out=out, host=args.host, port=args.port,
                      max_upload_mb=args.max_upload, idle_seconds=args.idle_minutes * 60,
                      adapt_previews=args.adapt_preview)
    server = create_server(config, segmenter)
    print(f"qmra ui: serving {server.url} (pages may open files under {config.root}"
          f"{' and ' + str(source) if source else ''}); Ctrl-C stops", file=sys.stderr, flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"qmra ui: warning: listening on {args.host}: other machines can reach the page", file=sys.stderr)
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    previous = signal.signal(signal.SIGTERM, _stop)  # a plain kill frees the sessions' files too
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        print("qmra ui: stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
    return 0


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt
