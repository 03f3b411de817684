"""Command line: ``python -m ecs_metrics_handler demo | report | replay | check | ...``.

``demo``
    Ships a few realistic metrics (timed calls, gauges, a counter, a failing call) to
    ``--hosts`` or ``$ELASTICSEARCH_URL``. With neither, it starts a local node with the
    project's ``scripts/nodes.py`` when run from a source checkout with Java available;
    otherwise the documents go to the failure folder. It always says where they are, and ends
    with their report when they reached a cluster (see ``_demo.py``).
``report``
    Per metric name, type and unit over a time range (``--since``, ``--from``/``--to``): count,
    rate, sum, average, p50/p95/p99 and a spark line of the rate, over raw and aggregated
    documents alike (see ``_metrics_report.py``).
``replay FOLDER``
    Sends the spooled segments of a failure folder to the cluster (see :func:`replay`): only
    the handler's own ``create`` lines into ``--index``/``--data-stream`` (or ``--allow-index``
    patterns); the rest is quarantined. Refuses a folder other users may write unless
    ``--allow-insecure-folder``.
``check``
    Connects with the handler's options and says whether delivery would work: reachable,
    product and version, TLS, authentication, write privileges, index template. Exits 1
    when something would stop delivery.
``install-template``
    Installs the component and index templates for an index prefix or data stream.
``template``
    Prints those template bodies as JSON, for review or for installing with ``curl``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.parse
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ._bulk_outcome import describe_error
from ._check import check_cluster
from ._config import HandlerOptions
from ._demo import run_demo
from ._handler import ElasticECSHandler
from ._metrics_report import DEFAULT_FETCH_LIMIT, ReportError, metrics_report, report_target
from ._replay import replay
from ._report_format import render_json, render_table, time_range
from ._tls import warn_if_plain_http
from .exceptions import ConfigurationError, EcsMetricsHandlerError

__all__ = ["main"]


def _connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts",
        nargs="+",
        default=None,
        help="cluster URLs (default: $ELASTICSEARCH_URL); https://user:password@host:9200 "
        "means Basic authentication unless --user or --api-key is given",
    )
    parser.add_argument("--user", help="user name for Basic authentication")
    parser.add_argument(
        "--password",
        default=os.environ.get("ELASTICSEARCH_PASSWORD"),
        help="password (default: $ELASTICSEARCH_PASSWORD)",
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("ELASTICSEARCH_API_KEY"),
        help="encoded API key (default: $ELASTICSEARCH_API_KEY)",
    )
    parser.add_argument(
        "--ca-certs", help="PEM file of the CA that signed the cluster's certificate"
    )
    parser.add_argument("--no-verify", action="store_true", help="do not verify TLS certificates")
    parser.add_argument("--opensearch", action="store_true", help="the cluster is OpenSearch")


def _split_userinfo(url: str) -> tuple[str, str | None, str]:
    """``("https://host:9200", user, password)`` from ``"https://user:password@host:9200"``.

    ``(url, None, "")`` when the URL carries no credentials. User and password are
    percent-decoded; everything up to the last ``@`` is the userinfo.
    """
    scheme, sep, rest = url.strip().partition("://")
    if not sep or "@" not in rest:
        return url, None, ""
    userinfo, _, host = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    return f"{scheme}://{host}", urllib.parse.unquote(user), urllib.parse.unquote(password)


def _connection_options(args: argparse.Namespace) -> dict[str, Any]:
    given = args.hosts or (
        [os.environ["ELASTICSEARCH_URL"]] if os.environ.get("ELASTICSEARCH_URL") else None
    )
    options: dict[str, Any] = {}
    hosts: list[str] = []
    for url in given or ():
        # A URL's credentials ("https://elastic:pw@host:9200", common in ELASTICSEARCH_URL)
        # become Basic authentication unless --user or --api-key says otherwise.
        bare, user, password = _split_userinfo(url)
        hosts.append(bare)
        if user and not args.user and not args.api_key:
            args.user, args.password = user, password
    if hosts:
        options["hosts"] = hosts
    if args.user:
        options["auth_type"] = "basic_auth"
        options["auth_details"] = (args.user, args.password or "")
    elif args.api_key:
        options["auth_type"] = "api_key"
        options["auth_details"] = args.api_key
    if args.ca_certs:
        options["ca_certs"] = args.ca_certs
    if args.no_verify:
        options["verify_ssl"] = False
    if args.opensearch:
        options["backend"] = "opensearch"
    return options


def _demo(args: argparse.Namespace) -> int:
    options = _connection_options(args)
    return run_demo(options, index=args.index, folder=args.folder, offline=args.offline)


def _replay(args: argparse.Namespace) -> int:
    options = _connection_options(args)
    options["es_index_name"] = args.index
    if args.data_stream:
        options["data_stream"] = args.data_stream
    if args.allow_insecure_folder:
        options["flush_failure_folder_allow_insecure"] = True
    result = replay(args.folder, allow_indices=args.allow_index, **options)
    print(
        f"replay: {result.segments} segment(s), {result.indexed} indexed, "
        f"{result.duplicates} already there, "
        f"{result.dead_lettered} dead-lettered, {result.quarantined} quarantined "
        f"({result.untrusted} not written by the handler), "
        f"{result.left} left for later"
    )
    for error in result.errors[:5]:
        print(f"replay: error: {error}", file=sys.stderr)
    return 0 if result.complete and not result.untrusted else 1


def _check(args: argparse.Namespace) -> int:
    options = _connection_options(args)
    if args.data_stream:
        options["data_stream"] = args.data_stream
    opts = HandlerOptions.from_kwargs(
        es_index_name=args.index, install_template=args.install_template, **options
    )
    warn_if_plain_http(opts)
    findings = check_cluster(opts)
    print(f"check: {', '.join(opts.hosts)}")
    width = max(len(f.topic) for f in findings)
    for finding in findings:
        mark = "!!" if finding.blocking else "  "
        print(f"{mark} {finding.topic.ljust(width)}  {finding.text}")
    if any(f.blocking for f in findings):
        print("check: delivery would FAIL (the lines marked !!)")
        return 1
    print("check: OK, nothing stops delivery")
    return 0


def _report(args: argparse.Namespace) -> int:
    options = _connection_options(args)
    if args.data_stream:
        options["data_stream"] = args.data_stream
    opts = HandlerOptions.from_kwargs(es_index_name=args.index, **options)
    window = time_range(
        since=args.since, start=args.start, end=args.end, now=datetime.now(timezone.utc)
    )
    if not 1 <= args.buckets <= 200:
        raise ConfigurationError("--buckets", "a number of buckets from 1 to 200", args.buckets)
    if not 1 <= args.fetch_limit <= DEFAULT_FETCH_LIMIT:
        raise ConfigurationError("--fetch-limit", "from 1 to 10000", args.fetch_limit)
    try:
        rows = metrics_report(
            opts, window, names=args.name, buckets=args.buckets, fetch_limit=args.fetch_limit
        )
    except ReportError as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    render = render_json if args.json else render_table
    print(render(rows, report_target(opts), window, args.buckets))
    return 0


def _template_handler(args: argparse.Namespace, **options: Any) -> ElasticECSHandler:
    if args.data_stream:
        options["data_stream"] = args.data_stream
    return ElasticECSHandler(es_index_name=args.index, **options)


def _install_template(args: argparse.Namespace) -> int:
    handler = _template_handler(args, **_connection_options(args))
    try:
        handler.install_template()
    finally:
        handler.close()
    names = handler.templates()
    print(
        f"installed component template {names['component_name']} "
        f"and index template {names['index_name']}"
    )
    return 0


def _print_template(args: argparse.Namespace) -> int:
    handler = _template_handler(args)
    handler.close()
    templates = handler.templates()
    body = templates if args.part == "all" else templates[args.part]
    print(json.dumps(body, indent=2, sort_keys=True))
    return 0


def _report_parser(sub: Any) -> None:
    rpt = sub.add_parser("report", help="per metric over a time range: count, rate, avg, p50/95/99")
    _connection_args(rpt)
    rpt.add_argument(
        "--index", default="python_metrics", help="index prefix (default: python_metrics)"
    )
    rpt.add_argument("--data-stream", help="a data stream name instead of an index prefix")
    rpt.add_argument("--since", help="the range ends at --to and lasts this long (default: 15m)")
    rpt.add_argument("--from", dest="start", help="the range's start, ISO 8601 (UTC if no offset)")
    rpt.add_argument("--to", dest="end", help="the range's end, ISO 8601 (default: now)")
    rpt.add_argument(
        "--name",
        action="append",
        default=[],
        help="only this metric name; * and ? are wildcards (repeatable)",
    )
    rpt.add_argument(
        "--buckets", type=int, default=30, help="time buckets of the spark line (default: 30)"
    )
    rpt.add_argument(
        "--fetch-limit",
        type=int,
        default=DEFAULT_FETCH_LIMIT,
        help="documents fetched per metric to merge sketches (default: 10000)",
    )
    rpt.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rpt.set_defaults(func=_report)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m ecs_metrics_handler`` and the ``ecs-metrics-handler`` script."""
    parser = argparse.ArgumentParser(
        prog="python -m ecs_metrics_handler", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="ship a few realistic metrics and say where they went")
    _connection_args(demo)
    demo.add_argument(
        "--index", default="ecs-metrics-demo", help="index prefix (default: ecs-metrics-demo)"
    )
    demo.add_argument("--folder", help="failure folder (default: a new temporary folder)")
    demo.add_argument(
        "--offline",
        action="store_true",
        help="don't start a local node; write to the failure folder",
    )
    demo.set_defaults(func=_demo)

    rep = sub.add_parser("replay", help="send a failure folder's spooled documents to the cluster")
    rep.add_argument("folder")
    _connection_args(rep)
    rep.add_argument(
        "--index",
        default="python_metrics",
        help="the handler's index prefix: only its indices are replayed (default: python_metrics)",
    )
    rep.add_argument("--data-stream", help="the handler's data stream, instead of --index")
    rep.add_argument(
        "--allow-index",
        action="append",
        default=[],
        metavar="PATTERN",
        help="also replay 'create' lines into indices matching PATTERN (fnmatch; repeatable)",
    )
    rep.add_argument(
        "--allow-insecure-folder",
        action="store_true",
        help="replay a folder that another user owns or others may write",
    )
    rep.set_defaults(func=_replay)

    chk = sub.add_parser("check", help="say whether the handler could deliver with these options")
    _connection_args(chk)
    chk.add_argument(
        "--index", default="python_metrics", help="index prefix (default: python_metrics)"
    )
    chk.add_argument("--data-stream", help="a data stream name instead of an index prefix")
    chk.add_argument(
        "--install-template",
        action="store_true",
        help="the handler will install the template (check that privilege too)",
    )
    chk.set_defaults(func=_check)

    _report_parser(sub)

    for name, func, helptext in (
        ("install-template", _install_template, "install the index templates"),
        ("template", _print_template, "print the index templates as JSON"),
    ):
        p = sub.add_parser(name, help=helptext)
        if name == "install-template":
            _connection_args(p)
        p.add_argument(
            "--index", default="python_metrics", help="index prefix (default: python_metrics)"
        )
        p.add_argument("--data-stream", help="a data stream name instead of an index prefix")
        if name == "template":
            p.add_argument(
                "--part",
                choices=("all", "component", "index"),
                default="all",
                help="print one body, ready for curl (default: all, with their names)",
            )
        p.set_defaults(func=func)

    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except EcsMetricsHandlerError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        # A client's error (the cluster refused, TLS failed): its cause, redacted, no traceback.
        print(f"error: {type(e).__name__}: {describe_error(e)}", file=sys.stderr)
        return 1
    return code
