"""`keycloak-monitor standalone` (no Kubernetes) and `keycloak-monitor run` (the operator)."""

import argparse
import asyncio
import dataclasses
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError
from .http_pool import DEFAULT_MAX_REQUESTS
from .logs import setup_logging
from .spec_policy import SpecPolicy
from .standalone import run_standalone
from .standalone_config import config_from_env, load_config_file
from .targets import TargetPolicy, parse_rules
from .web_config import load_web_config

log = logging.getLogger("keycloak_monitor")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=os.environ.get("KEYCLOAK_MONITOR_HOST", "0.0.0.0"), help="listen address")
    parser.add_argument("--log-format", choices=("text", "json"), default=os.environ.get("LOG_FORMAT", "text"))
    parser.add_argument("--log-level", default=os.environ.get("LOG_LEVEL", "INFO"))
    for verb, what in (("allow", "only these"), ("deny", "never these")):
        env = f"KEYCLOAK_MONITOR_{verb.upper()}_TARGETS"
        parser.add_argument(
            f"--{verb}-target",
            action="append",
            default=[os.environ[env]] if os.environ.get(env) else [],
            help=f"monitors may connect to {what} hosts or networks (name, *.domain, CIDR; repeatable, "
            f"comma-separated; env {env}); link-local is always denied",
        )
    env = "KEYCLOAK_MONITOR_MAX_REQUESTS_PER_KEYCLOAK"
    parser.add_argument(
        "--max-requests-per-keycloak",
        type=_at_least_one,
        default=os.environ.get(env) or None,  # a string default goes through `type` too
        help=f"requests in flight to one Keycloak from all monitors together (default {DEFAULT_MAX_REQUESTS}; "
        f"env {env}; standalone: overrides the file's maxRequestsPerKeycloak)",
    )


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keycloak-monitor", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    standalone = commands.add_parser("standalone", help="run monitors from a file or environment variables")
    standalone.add_argument("--config", type=Path, help="YAML file of monitors (default: KEYCLOAK_* variables)")
    standalone.add_argument("--port", type=int, help="overrides the file's port and EXPORTER_PORT")
    standalone.add_argument(
        "--state-dir",
        type=Path,
        help="event counts and notification outboxes, kept across restarts "
        "(overrides KEYCLOAK_MONITOR_STATE_DIR and the file's stateDir; default ./keycloak-monitor-state)",
    )
    _common(standalone)

    run = commands.add_parser("run", help="run the Kubernetes operator")
    scope = run.add_mutually_exclusive_group()
    scope.add_argument("--all-namespaces", "-A", action="store_true", help="watch every namespace (default)")
    scope.add_argument("--namespace", "-n", action="append", default=[], help="watch this namespace (repeatable)")
    run.add_argument("--selector", "-l", default="", help="only monitors with these labels (key=value,...)")
    run.add_argument("--port", type=int, default=int(os.environ.get("EXPORTER_PORT", "9091")))
    run.add_argument(
        "--watch-timeout",
        type=float,
        default=60.0,
        help="seconds one watch request lasts; a watch silent for 10s longer is reconnected",
    )
    run.add_argument(
        "--liveness-grace",
        type=float,
        default=120.0,
        help="/healthz fails when the apiserver has not answered for this many seconds",
    )
    run.add_argument(
        "--peering",
        default=os.environ.get("KEYCLOAK_MONITOR_PEERING", ""),
        help="KopfPeering name shared by the replicas of one release: one collects, the others stand by",
    )
    run.add_argument(
        "--metrics-auth",
        choices=("none", "kubernetes"),
        default=os.environ.get("KEYCLOAK_MONITOR_METRICS_AUTH", "none"),
        help="kubernetes: /metrics answers only bearer tokens allowed `get` on it (TokenReview, SubjectAccessReview)",
    )
    run.add_argument(
        "--restricted",
        action="store_true",
        default=os.environ.get("KEYCLOAK_MONITOR_RESTRICTED", "").lower() in ("1", "true", "yes"),
        help="refuse monitors asking for perUser, tls.insecureSkipVerify or a plain http:// URL",
    )
    run.add_argument("--tls-cert-file", type=Path, help="serve HTTPS with this certificate (PEM)")
    run.add_argument("--tls-key-file", type=Path, help="the key of --tls-cert-file (PEM)")
    run.add_argument("--tls-self-signed", action="store_true", help="serve HTTPS with a certificate made at start")
    _common(run)
    standalone.add_argument(
        "--web-config-file",
        type=Path,
        default=os.environ.get("KEYCLOAK_MONITOR_WEB_CONFIG_FILE") or None,
        help="Prometheus web-config file: tls_server_config and basic_auth_users (bcrypt)",
    )
    return parser


def _standalone(args: argparse.Namespace) -> int:
    try:
        config = load_config_file(args.config, os.environ) if args.config else config_from_env(os.environ)
        targets = _targets(args)
        web = load_web_config(args.web_config_file) if args.web_config_file else None
    except ConfigError as exc:
        log.error("invalid configuration: %s", exc)
        return 2
    if args.port:
        config = dataclasses.replace(config, port=args.port)
    if args.state_dir:
        config = dataclasses.replace(config, state_dir=args.state_dir)
    if args.max_requests_per_keycloak is not None:
        config = dataclasses.replace(config, max_requests_per_keycloak=args.max_requests_per_keycloak)
    asyncio.run(run_standalone(config, host=args.host, targets=targets, web=web))
    return 0


def _operator(args: argparse.Namespace) -> int:
    from .controller.main import OperatorOptions, run_operator  # kopf is only loaded for the operator

    try:
        return run_operator(
            OperatorOptions(
                namespaces=args.namespace,
                selector=args.selector,
                host=args.host,
                port=args.port,
                watch_timeout=args.watch_timeout,
                liveness_grace=args.liveness_grace,
                peering=args.peering,
                targets=_targets(args),
                max_requests_per_keycloak=args.max_requests_per_keycloak or DEFAULT_MAX_REQUESTS,
                spec_policy=SpecPolicy(restricted=args.restricted),
                metrics_auth=args.metrics_auth == "kubernetes",
                tls_cert_file=args.tls_cert_file,
                tls_key_file=args.tls_key_file,
                tls_self_signed=args.tls_self_signed,
            )
        )
    except ConfigError as exc:
        log.error("invalid option: %s", exc)
        return 2


def _targets(args: argparse.Namespace) -> TargetPolicy:
    try:
        return TargetPolicy(allow=parse_rules(args.allow_target), deny=parse_rules(args.deny_target))
    except ValueError as exc:
        raise ConfigError("--allow-target/--deny-target", str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.log_format, args.log_level)
    return _standalone(args) if args.command == "standalone" else _operator(args)


if __name__ == "__main__":
    sys.exit(main())
