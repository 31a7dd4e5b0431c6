"""``nextword web MODEL.onnx [--port N] [--trust KEY.pub]``: the browser client (clients/web) with a model, on 127.0.0.1.

    nextword web models/default/model.onnx
    # nextword web: serving clients/web with model.onnx at http://127.0.0.1:8000/?model=model/model.onnx

A quick try of the page, served by the standard library's HTTP server on the loopback address only. The
model file is checked here first (the same reader as every command), so a wrong file is one line in the
terminal, not a page that fails later; the page checks it again itself, as it does for a file a user picks.
"""

from __future__ import annotations

import functools
import http.server
import urllib.parse
from pathlib import Path

from nextword.errors import UsageError
from nextword.modelfile.reader import read_model_file

#: The client's folder in a checkout of the repository (this file is runtime/cli/web.py; clients/ sits beside runtime/).
CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "web"
ORT_DIST = Path("node_modules") / "onnxruntime-web" / "dist"
MODEL_ROUTE = "/model/"
#: Types the page needs that Python's mimetypes may lack or guess differently per platform.
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".html": "text/html",
         ".onnx": "application/octet-stream", ".json": "application/json", ".pub": "text/plain"}
#: Where the page finds the trusted public key of ``--trust`` (beside the model).
TRUST_NAME = "trusted.pub"


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("web", help="try a model in the browser: serve the web client on 127.0.0.1",
                              description="Serve the browser client (clients/web: a text box and a suggestion "
                                          "strip over ONNX Runtime Web) with MODEL on 127.0.0.1, and print the "
                                          "address to open. Ctrl-C stops it.")
    p.add_argument("model", metavar="MODEL.onnx", help="an .onnx file written by `nextword export`")
    p.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (default 8000; 0: any free port)")
    p.add_argument("--trust", metavar="KEY.pub",
                   help="an Ed25519 public key (`nextword keygen`): the page then loads only files signed with it, "
                        "this one and any it is given")
    p.add_argument("--client", metavar="DIR", default=None,
                   help=f"the web client's folder (default: clients/web of this checkout, {CLIENT_DIR})")
    p.set_defaults(run=run)


def client_dir(given: str | None) -> Path:
    folder = Path(given) if given else CLIENT_DIR
    if not (folder / "index.html").is_file() or not (folder / "nextword.js").is_file():
        raise UsageError(f"no web client in {folder} (index.html, nextword.js); run from a checkout of nextword "
                         "or give --client DIR")
    if not (folder / ORT_DIST).is_dir():
        raise UsageError(f"the web client's dependencies are not installed in {folder}; run "
                         f"`npm ci --prefix {folder}` once (it installs onnxruntime-web from the lockfile)")
    return folder


class Handler(http.server.SimpleHTTPRequestHandler):
    """Static files of the client folder, the models at /model/NAME; nothing else, and no directory listings."""

    models: dict[str, Path] = {}  # route -> file
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map, **TYPES}

    def translate_path(self, path: str) -> str:
        route = urllib.parse.unquote(urllib.parse.urlsplit(path).path)
        if route in self.models:
            return str(self.models[route])
        return super().translate_path(path)

    def list_directory(self, path):
        self.send_error(404, "no listing")
        return None

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")  # a re-exported model is read again, never a stale copy
        super().end_headers()

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass  # one line at start is what a user needs; requests are not news


def model_route(name: str) -> str:
    return MODEL_ROUTE + name


def serve(models: dict[str, Path], port: int, folder: Path) -> http.server.ThreadingHTTPServer:
    """A server on 127.0.0.1 (not started) for the client folder and ``models`` (name -> file, served at
    /model/NAME)."""
    routes = {model_route(name): Path(path).resolve() for name, path in models.items()}
    handler = functools.partial(type("ModelHandler", (Handler,), {"models": routes}), directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    except OSError as err:
        raise UsageError(f"cannot listen on 127.0.0.1:{port} ({err.strerror}); choose another --port "
                         "(0 picks a free one)") from None
    return server


def page_address(server, model_name: str, trust_name: str | None = None) -> str:
    """The page's address with ``?model=`` naming a served model (and ``&trust=`` a served public key)."""
    address = f"http://127.0.0.1:{server.server_address[1]}/?model={urllib.parse.quote(model_route(model_name)[1:])}"
    return address + (f"&trust={urllib.parse.quote(model_route(trust_name)[1:])}" if trust_name else "")


def run(args) -> int:
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port must be 0 to 65535, got {args.port}")
    model = Path(args.model)
    # One line for a missing, damaged, foreign or (with --trust) unsigned file, before any server.
    checked = read_model_file(model, trust=args.trust)
    if checked.format != "onnx":
        raise UsageError(f"{model} is a TFLite file; the browser client runs the ONNX file of the same export "
                         f"({model.with_suffix('.onnx').name}, or model.int8.onnx)")
    folder = client_dir(args.client)
    served = {model.name: model, **({TRUST_NAME: Path(args.trust)} if args.trust else {})}
    server = serve(served, args.port, folder)
    address = page_address(server, model.name, TRUST_NAME if args.trust else None)
    print(f"nextword web: serving {folder} with {model.name} at {address}", flush=True)
    print("open that address in a browser; Ctrl-C stops the server", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # Ctrl-C is how a server is stopped: not an error
        print("nextword web: stopped", flush=True)
    finally:
        server.server_close()
    return 0
