"""Kafka client settings of conf (`[kafka.client]`: Java client property names) as
kafka-python's keywords, for every kafka-python client the project opens (the
publisher, its admin client, bronze's horizon consumer)."""

from __future__ import annotations

import logging
import re

from meterlake.core.errors import MeterlakeError

log = logging.getLogger(__name__)

# Kafka client property names (Java or librdkafka) -> kafka-python keyword.
CLIENT_ALIASES = {
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "sasl.mechanisms": "sasl_mechanism",
}
JAAS_OPTION = re.compile(r'(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"')


def _convert(value: str, default: object) -> object:
    if isinstance(default, bool):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return value


def client_settings(client: dict[str, str], known: dict[str, object]) -> dict[str, object]:
    """Kafka client properties (`security.protocol`, `sasl.jaas.config`, ...) as the
    kafka-python keywords among `known` (a client's DEFAULT_CONFIG). Settings with no
    equivalent are left out with a warning that names the setting, never its value."""
    settings: dict[str, object] = {}
    for name, value in client.items():
        if name == "sasl.jaas.config":
            options = dict(JAAS_OPTION.findall(value))
            for option, keyword in (("username", "sasl_plain_username"),
                                    ("password", "sasl_plain_password")):
                if option in options:
                    settings[keyword] = options[option]
            continue
        if name == "ssl.endpoint.identification.algorithm":
            settings["ssl_check_hostname"] = bool(value.strip())
            continue
        keyword = CLIENT_ALIASES.get(name, name.replace(".", "_"))
        if keyword not in known:
            log.warning("Kafka client setting %s has no kafka-python equivalent; ignored", name)
            continue
        if keyword == "acks":
            settings[keyword] = value if value == "all" else int(value)
            continue
        try:
            settings[keyword] = _convert(value, known[keyword])
        except ValueError:
            raise MeterlakeError(f"Kafka client setting {name}: not a valid value") from None
    return {k: v for k, v in settings.items() if k in known}
