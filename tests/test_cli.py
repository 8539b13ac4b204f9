"""`voxwire serve` options: every option reads VOXWIRE_<NAME> and --help documents it."""

from __future__ import annotations

import pytest

from voxwire.cli import advertised, auth_mode, build_parser


def parse(argv, monkeypatch=None, **env):
    if monkeypatch is not None:
        for key, value in env.items():
            monkeypatch.setenv(key, value)
    return build_parser().parse_args(argv)


def test_defaults():
    opts = parse(["serve"])
    assert (opts.http_host, opts.http_port, opts.udp_host, opts.udp_port) == ("127.0.0.1", 8080, "127.0.0.1", 3478)
    assert opts.agent == "assistant" and opts.dtls_role == "active"


def test_environment_sets_every_option(monkeypatch):
    opts = parse(
        ["serve"],
        monkeypatch,
        VOXWIRE_HTTP_PORT="9000",
        VOXWIRE_UDP_PORT="40000",
        VOXWIRE_AGENT="echo",
        VOXWIRE_ADVERTISE_ADDRESS="203.0.113.5",
        VOXWIRE_DTLS_ROLE="passive",
        VOXWIRE_CONNECT_TIMEOUT="12.5",
    )
    assert (opts.http_port, opts.udp_port, opts.dtls_role, opts.connect_timeout) == (9000, 40000, "passive", 12.5)
    assert advertised(opts) == (("203.0.113.5", 40000),)
    # The command line wins over the environment.
    assert parse(["serve", "--http-port", "9100"], monkeypatch, VOXWIRE_HTTP_PORT="9000").http_port == 9100


def test_help_names_every_environment_variable(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    serve = build_parser()._subparsers._group_actions[0].choices["serve"]  # type: ignore[union-attr]
    for action in serve._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                env = "VOXWIRE_" + flag[2:].replace("-", "_").upper()
                assert env in text.replace("- ", "-").replace("_ ", "_"), env


def test_advertised_addresses():
    opts = parse(["serve", "--udp-host", "0.0.0.0", "--udp-port", "5000"])
    assert advertised(opts) == (("127.0.0.1", 5000),)
    opts = parse(["serve", "--advertise-address", "198.51.100.1,198.51.100.2:6000,2001:db8::1"])
    assert advertised(opts) == (("198.51.100.1", 3478), ("198.51.100.2", 6000), ("2001:db8::1", 3478))
    with pytest.raises(ValueError):
        advertised(parse(["serve", "--advertise-address", "not-an-ip"]))


def test_unauthenticated_serving_only_on_loopback_or_when_forced():
    assert auth_mode(parse(["serve"]), ()) == "development"
    assert auth_mode(parse(["serve", "--http-host", "0.0.0.0"]), ("sk-0123456789abcdef",)) == "keys"
    with pytest.raises(SystemExit, match="refusing"):
        auth_mode(parse(["serve", "--http-host", "0.0.0.0"]), ())
    assert auth_mode(parse(["serve", "--http-host", "0.0.0.0", "--insecure-no-auth"]), ()) == "insecure"


def test_opus_complexity_options_reach_the_transceiver_config(monkeypatch):
    from voxwire.cli import transceiver_config

    defaults = transceiver_config(parse(["serve"]), (("127.0.0.1", 3478),)).media
    assert (defaults.opus_complexity, defaults.opus_complexity_under_load) == (5, 1)
    opts = parse(["serve", "--opus-complexity", "7"], monkeypatch, VOXWIRE_OPUS_COMPLEXITY_UNDER_LOAD="2")
    media = transceiver_config(opts, advertised(opts)).media
    assert (media.opus_complexity, media.opus_complexity_under_load) == (7, 2)
    monkeypatch.delenv("VOXWIRE_OPUS_COMPLEXITY_UNDER_LOAD")
    with pytest.raises(SystemExit, match="complexity"):
        transceiver_config(parse(["serve", "--opus-complexity", "11"]), (("127.0.0.1", 3478),))
    with pytest.raises(SystemExit, match="under_load"):
        transceiver_config(parse(["serve", "--opus-complexity", "1", "--opus-complexity-under-load", "3"]),
                           (("127.0.0.1", 3478),))


def test_opus_mode_option_reaches_the_transceiver_config(monkeypatch):
    from voxwire.cli import transceiver_config

    assert transceiver_config(parse(["serve"]), (("127.0.0.1", 3478),)).media.opus_mode == "voip"
    opts = parse(["serve", "--opus-mode", "lowdelay"])
    assert transceiver_config(opts, advertised(opts)).media.opus_mode == "lowdelay"
    with pytest.raises(SystemExit):
        parse(["serve", "--opus-mode", "celt"])
    opts = parse(["serve"], monkeypatch, VOXWIRE_OPUS_MODE="celt")  # a bad environment value is named too
    with pytest.raises(SystemExit, match="opus_mode 'celt'"):
        transceiver_config(opts, advertised(opts))
