"""Gateway config: the documented example loads, and every invalid config is refused naming its key.

Each error case starts from ``configs/gateway.example.toml`` and changes one
thing, so the error can only come from that one key. Errors are
:class:`~protocol.errors.ConfigError` (``E_CONFIG``) whose message starts with,
or at least contains, the dotted key path (``hop.listen``, ``limits.max_batch``).
"""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gateway import config as config_mod
from gateway.config import HopConfig, load_config, parse_config
from gateway.forwarder import ForwarderConfig
from gateway.log_store import LogConfig
from gateway.policy import Policy
from gateway.tls import TLS_KEYS
from protocol.errors import ConfigError
from protocol.limits import Limits

EXAMPLE = Path(__file__).parents[2] / "configs" / "gateway.example.toml"
Doc = dict[str, Any]


def example() -> Doc:
    return tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))


def refused(doc: Doc) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, base=Path("/etc/heliograph"))
    assert info.value.code == "E_CONFIG" and info.value.http_status == 500
    return info.value


# -- the example ---------------------------------------------------------------------------


def test_the_example_config_loads() -> None:
    config = load_config(EXAMPLE)
    assert (config.member_id, config.host, config.port) == ("gw-eu", "127.0.0.1", 7100)
    # Relative paths are relative to the config file, not to the working directory.
    assert config.data_dir == EXAMPLE.parent / "state" / "gw-eu"
    assert config.roster_path == EXAMPLE.parent / "state" / "roster.bin"
    assert config.key_file == EXAMPLE.parent / "state" / "keys" / "gw-eu.key"
    assert config.db_path == config.data_dir / "hop.db"
    assert config.limits == Limits(max_envelope_bytes=1 << 20, max_recipients=512, max_clock_skew_ms=300_000)
    assert (config.max_batch, config.max_request_bytes) == (100, 16 << 20)
    assert config.queue == ForwarderConfig(batch_max=50, sweep_interval_s=1.0, backoff_base_ms=2_000, backoff_cap_ms=180_000, request_timeout_s=10.0)
    assert config.log == LogConfig(batch_max=1000, batch_wait_s=0.0, synchronous="FULL")
    policy = Policy.from_config(config.policy)
    assert policy.max_ttl_ms == 7 * 24 * 3_600_000 and len(policy.rules) == 2


def test_the_example_shows_every_key_with_its_default() -> None:
    """The file's header promises it: every section and key, each set to the default."""
    doc = example()
    for section, keys in config_mod._SECTIONS.items():
        if section in ("tls", "ops"):  # off by default: shown commented out, every key present
            text = EXAMPLE.read_text()
            assert f"# [{section}]" in text and all(f"# {key} = " in text for key in (TLS_KEYS if section == "tls" else keys or ()))
            continue
        assert section in doc, section
        if keys is not None:
            assert set(doc[section]) == keys, section
    minimal = {"hop": {k: doc["hop"][k] for k in ("id", "data_dir", "roster", "key_file")}, "policy": doc["policy"]}
    assert parse_config(minimal, base=EXAMPLE.parent) == load_config(EXAMPLE)


def test_absolute_paths_stay_absolute(tmp_path: Path) -> None:
    doc = example()
    doc["hop"]["data_dir"] = str(tmp_path / "data")
    config = parse_config(doc, base=Path("/elsewhere"))
    assert config.data_dir == tmp_path / "data" and config.roster_path == Path("/elsewhere/state/roster.bin")


def test_parsing_does_not_mutate_the_document() -> None:
    doc = example()
    snapshot = copy.deepcopy(doc)
    parse_config(doc, base=EXAMPLE.parent)
    assert doc == snapshot


def test_the_config_is_frozen() -> None:
    config = load_config(EXAMPLE)
    with pytest.raises(AttributeError):
        config.port = 1  # type: ignore[misc]
    assert isinstance(config, HopConfig)


# -- errors that name the key --------------------------------------------------------------


def set_key(section: str, key: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc[section][key] = value

    return change


def drop(section: str, key: str | None = None) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        if key is None:
            del doc[section]
        else:
            del doc[section][key]

    return change


def set_rule(index: int, key: str, value: Any) -> Callable[[Doc], None]:
    def change(doc: Doc) -> None:
        doc["policy"]["rules"][index][key] = value

    return change


ERRORS: list[Any] = [
    # (id, change, the key path the message must name)
    pytest.param(lambda d: d.__setitem__("hops", {"id": "gw-eu"}), "hops", id="unknown-section"),
    pytest.param(lambda d: d.__setitem__("limits", 5), "limits", id="section-not-a-table"),
    pytest.param(set_key("hop", "idd", "gw-eu"), "hop.idd", id="unknown-key-hop"),
    pytest.param(set_key("limits", "max_envelope_byte", 1), "limits.max_envelope_byte", id="unknown-key-typo"),
    pytest.param(set_key("queue", "retries", 3), "queue.retries", id="unknown-key-queue"),
    pytest.param(set_key("log", "fsync", True), "log.fsync", id="unknown-key-log"),
    pytest.param(set_key("hop", "id", 5), "hop.id", id="wrong-type-id"),
    pytest.param(set_key("hop", "listen", 7100), "hop.listen", id="wrong-type-listen"),
    pytest.param(set_key("hop", "data_dir", ["state"]), "hop.data_dir", id="wrong-type-data-dir"),
    pytest.param(set_key("limits", "max_batch", "100"), "limits.max_batch", id="wrong-type-int-as-string"),
    pytest.param(set_key("limits", "max_batch", True), "limits.max_batch", id="wrong-type-bool-as-int"),
    pytest.param(set_key("limits", "max_envelope_bytes", 1.5), "limits.max_envelope_bytes", id="wrong-type-float-as-int"),
    pytest.param(set_key("queue", "sweep_interval_s", "1s"), "queue.sweep_interval_s", id="wrong-type-float"),
    pytest.param(set_key("log", "synchronous", 2), "log.synchronous", id="wrong-type-synchronous"),
    pytest.param(set_key("limits", "max_recipients", -1), "limits.max_recipients", id="negative"),
    pytest.param(drop("hop"), "hop", id="missing-hop"),
    pytest.param(drop("hop", "id"), "hop.id", id="missing-hop-id"),
    pytest.param(drop("hop", "data_dir"), "hop.data_dir", id="missing-data-dir"),
    pytest.param(drop("hop", "roster"), "hop.roster", id="missing-roster"),
    pytest.param(drop("hop", "key_file"), "hop.key_file", id="missing-key-file"),
    pytest.param(set_key("hop", "id", "GW EU"), "hop.id", id="invalid-member-id"),
    pytest.param(set_key("hop", "listen", "localhost"), "hop.listen", id="listen-no-port"),
    pytest.param(set_key("hop", "listen", ":7100"), "hop.listen", id="listen-no-host"),
    pytest.param(set_key("hop", "listen", "127.0.0.1:65536"), "hop.listen", id="listen-port-too-big"),
    pytest.param(set_key("hop", "listen", "127.0.0.1:http"), "hop.listen", id="listen-port-not-a-number"),
    pytest.param(set_key("hop", "listen", "127.0.0.1:-1"), "hop.listen", id="listen-negative-port"),
    pytest.param(
        set_key("hop", "listen", "127.0.0.1:\u0663"),
        "hop.listen",
        id="listen-non-ascii-digit",
    ),
    pytest.param(set_key("log", "synchronous", "OFF"), "log.synchronous", id="synchronous-off"),
    pytest.param(set_key("log", "synchronous", "full"), "log.synchronous", id="synchronous-lower-case"),
    pytest.param(set_key("queue", "batch_max", 0), "queue.batch_max", id="queue-batch-max-zero"),
    pytest.param(set_key("queue", "batch_max", 257), "queue.batch_max", id="queue-batch-max-too-big"),
    pytest.param(set_key("queue", "backoff_cap_ms", 1_000), "queue.backoff_cap_ms", id="backoff-cap-below-base"),
    pytest.param(
        set_key("queue", "backoff_base_ms", 0),
        "queue.backoff_base_ms",
        id="backoff-base-zero",
    ),
    pytest.param(drop("policy"), "policy", id="missing-policy"),
    pytest.param(lambda d: d.__setitem__("policy", "allow-all"), "policy", id="policy-not-a-table"),
    pytest.param(set_rule(0, "action", "permit"), "policy.rules[0].action", id="bad-rule-action"),
    pytest.param(set_rule(1, "origins", []), "policy.rules[1].origins", id="bad-rule-empty-matcher"),
    pytest.param(set_rule(0, "labels", ["TLP:BLUE"]), "policy.rules[0].labels[0]", id="bad-rule-label"),
    pytest.param(drop("policy", "max_ttl_ms"), "policy.max_ttl_ms", id="policy-missing-max-ttl"),
    pytest.param(set_key("policy", "default", "allow"), "policy.default", id="policy-default-allow"),
    pytest.param(set_key("limits", "max_recipients", 0), "limits.max_recipients", id="max-recipients-zero"),
    pytest.param(set_key("limits", "max_clock_skew_ms", 0), "limits.max_clock_skew_ms", id="max-skew-zero"),
    pytest.param(
        set_key("log", "batch_wait_s", 5.0),
        "log.batch_wait_s",
        id="log-batch-wait-too-long",
    ),
    pytest.param(
        set_key("limits", "max_batch", 0),
        "limits.max_batch",
        id="max-batch-zero",
    ),
    pytest.param(
        set_key("limits", "max_batch", 1000),
        "limits.max_batch",
        id="max-batch-over-protocol-limit",
    ),
    pytest.param(
        set_key("limits", "max_request_bytes", 0),
        "limits.max_request_bytes",
        id="max-request-bytes-zero",
    ),
    pytest.param(
        set_key("queue", "sweep_interval_s", 0.0),
        "queue.sweep_interval_s",
        id="sweep-interval-zero",
    ),
    pytest.param(
        set_key("queue", "sweep_interval_s", float("nan")),
        "queue.sweep_interval_s",
        id="sweep-interval-nan",
    ),
    pytest.param(
        set_key("queue", "request_timeout_s", 0.0),
        "queue.request_timeout_s",
        id="request-timeout-zero",
    ),
]


@pytest.mark.parametrize(("change", "key"), ERRORS)
def test_invalid_config_is_refused_naming_the_key(change: Callable[[Doc], None], key: str) -> None:
    doc = example()
    change(doc)
    error = refused(doc)
    assert error.message.startswith(key + ":") or f"{key}:" in error.message, error.message


def test_unknown_key_error_lists_what_is_expected() -> None:
    doc = example()
    doc["hop"]["listen_on"] = "127.0.0.1:7100"
    message = refused(doc).message
    assert message.startswith("hop.listen_on: unknown key") and "listen" in message and "data_dir" in message


def test_wrong_type_error_says_what_was_expected_and_got() -> None:
    doc = example()
    doc["limits"]["max_batch"] = "100"
    assert refused(doc).message == "limits.max_batch: expected int, got str '100'"


def test_integers_are_accepted_for_float_keys() -> None:
    doc = example()
    doc["queue"]["sweep_interval_s"] = 2
    config = parse_config(doc, base=EXAMPLE.parent)
    assert config.queue.sweep_interval_s == 2.0 and type(config.queue.sweep_interval_s) is float


# -- files ---------------------------------------------------------------------------------


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_config(path)
    assert info.value.code == "E_CONFIG" and str(path) in info.value.message


def test_a_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read") as info:
        load_config(tmp_path)
    assert info.value.code == "E_CONFIG"


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"[hop\nid = 'gw-eu'\n", id="unclosed-table"),
        pytest.param(b"[hop]\nid = gw-eu\n", id="bare-string"),
        pytest.param(b"[hop]\nid = 'a'\nid = 'b'\n", id="duplicate-key"),
        pytest.param(b"[hop]\n[hop]\n", id="duplicate-table"),
        pytest.param(b"[hop]\nid = '\xff\xfe'\n", id="not-utf8"),
        pytest.param(b"\x00", id="binary"),
    ],
)
def test_bad_toml_is_a_config_error(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "gateway.toml"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match="not valid TOML") as info:
        load_config(path)
    assert info.value.code == "E_CONFIG" and str(path) in info.value.message


def test_an_empty_file_is_refused_for_the_missing_hop_section(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^hop: required section$"):
        load_config(path)


def test_load_config_resolves_paths_against_the_files_directory(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "gateway.toml"
    path.parent.mkdir()
    path.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    config = load_config(path)
    assert config.data_dir == path.parent / "state" / "gw-eu" and config.key_file == path.parent / "state" / "keys" / "gw-eu.key"
