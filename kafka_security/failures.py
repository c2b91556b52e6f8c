"""Why Kafka refused a client, in one line for the person who configured it.

aiokafka reports every failed bootstrap as ``KafkaConnectionError("Unable to bootstrap from
...")`` and keeps the cause (a refused login, an untrusted certificate) for its log. After such a
failure, :func:`explain_refusal` opens one connection itself with the same options (TLS
handshake, SASL login, a metadata request) and names what went wrong; ``None`` when nothing
security-related did (the broker is down, or the probe got through), so the caller's own
"cannot reach Kafka" message stands.
"""

from __future__ import annotations

import asyncio
import ssl

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from kafka_security.config import KafkaSecurity

# OpenSSL's verify codes for a certificate that does not name the host that was asked for.
_NAME_MISMATCH = {62, 64}  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


async def explain_refusal(
    bootstrap: str, security: KafkaSecurity, timeout: float = 10.0
) -> str | None:
    """One line saying why ``bootstrap`` refuses a client with ``security``, or None."""
    for host, port, _ in collect_hosts(bootstrap, randomize=False):
        where = f"Kafka at {host}:{port}"
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host,
                    port,
                    client_id="fraud-detector-probe",
                    request_timeout_ms=int(timeout * 1000),
                    **security.client_options(),
                ),
                timeout,
            )
        except SaslAuthenticationFailed:
            user = security.username
            return f"{where} refused the login of user {user!r} (SASL authentication failed)"
        except UnsupportedSaslMechanismError:
            return (
                f"{where} does not offer SASL mechanism {security.mechanism}: set "
                "KAFKA_SASL_MECHANISM to one it offers"
            )
        except ssl.SSLCertVerificationError as exc:
            return _untrusted(where, host, exc)
        except (ssl.SSLError, ConnectionResetError, ConnectionAbortedError) as exc:
            if security.ssl_context is None:
                continue
            # a plaintext listener drops the TLS hello: reset, not an SSL error
            reason = exc.reason if isinstance(exc, ssl.SSLError) else None
            return (
                f"TLS handshake with {where} failed ({reason or 'connection reset'}): is that "
                f"port a TLS listener? (KAFKA_SECURITY_PROTOCOL={security.protocol})"
            )
        except KafkaConnectionError:
            if security.protocol == "PLAINTEXT":
                return (
                    f"{where} closed the connection of this plaintext client: if its listener "
                    "uses TLS, set KAFKA_SECURITY_PROTOCOL=SASL_SSL (or SSL)"
                )
            continue
        except (KafkaError, OSError, TimeoutError):
            continue  # not reachable: nothing to say about security
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
        except (KafkaError, OSError, TimeoutError):
            if security.protocol == "SSL":
                return (
                    f"{where} closed the connection after the TLS handshake: it may require a "
                    "login (KAFKA_SECURITY_PROTOCOL=SASL_SSL)"
                )
            continue
        finally:
            conn.close()
        return None
    return None


def _untrusted(where: str, host: str, exc: ssl.SSLCertVerificationError) -> str:
    reason = exc.verify_message or exc.reason or str(exc)
    if exc.verify_code in _NAME_MISMATCH:
        return (
            f"{where} presented a TLS certificate that does not name {host!r} ({reason}): "
            "connect by a name or address the certificate lists"
        )
    return (
        f"{where} presented a TLS certificate this client does not trust ({reason}): set "
        "KAFKA_SSL_CAFILE to the CA that signed it"
    )
