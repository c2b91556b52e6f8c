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
import struct

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)
from aiokafka.protocol.metadata import MetadataRequest

from kafka_security.config import KafkaSecurity

# ApiVersions v0 (served by every broker version), request header v1, client id "probe": any
# request makes a broker that accepted the client answer, and one that did not send its alert.
_API_VERSIONS_REQUEST = (lambda body: struct.pack(">i", len(body)) + body)(
    struct.pack(">hhih", 18, 0, 7, 5) + b"probe"
)
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
            if security.token is not None:
                return (
                    f"{where} refused the OAUTHBEARER token of KAFKA_SASL_OAUTH_TOKEN_FILE="
                    f"{str(security.token.path)!r} (SASL authentication failed): is it expired, "
                    "or meant for another cluster?"
                )
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
            refusal = await _certificate_refusal(host, port, security, timeout)
            if refusal:
                return refusal
            continue
        except (KafkaError, OSError, TimeoutError):
            continue  # not reachable: nothing to say about security
        try:
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
        except (KafkaError, OSError, TimeoutError):
            refusal = await _certificate_refusal(host, port, security, timeout)
            if refusal:
                return refusal
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


async def _certificate_refusal(
    host: str, port: int, security: KafkaSecurity, timeout: float
) -> str | None:
    """Why a broker that asks for client certificates ended the TLS session, or None.

    With TLS 1.3 the client's handshake is over before the broker has checked the client's
    certificate: the broker's verdict is a TLS alert on the first read, which aiokafka reports
    as a closed connection. One request on a bare TLS connection shows the alert; on a loaded
    machine the connection can end without it being read, so the probe is made up to 3 times.
    """
    if security.ssl_context is None:
        return None
    for _ in range(3):
        refusal = await _certificate_verdict(host, port, security, timeout)
        if refusal is not _NO_VERDICT:
            return refusal
    return None


_NO_VERDICT = "no verdict"  # the connection ended without an answer or an alert


async def _certificate_verdict(
    host: str, port: int, security: KafkaSecurity, timeout: float
) -> str | None:
    """One probe of :func:`_certificate_refusal`: its refusal, None if the broker answered,
    or ``_NO_VERDICT``."""
    where = f"Kafka at {host}:{port}"
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, ssl=security.ssl_context), timeout
        )
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(_API_VERSIONS_REQUEST)
        await asyncio.wait_for(writer.drain(), timeout)
        if not await asyncio.wait_for(reader.read(4), timeout):
            return _NO_VERDICT  # closed before its verdict was read
    except ssl.SSLError as exc:
        if "ALERT" not in (exc.reason or ""):
            return None
        alert = (exc.reason or "").lower().replace("_", " ")
        if security.certfile is None:
            return (
                f"{where} refused this client without a certificate (TLS {alert}): it asks for "
                "one; set KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"
            )
        return (
            f"{where} refused the client certificate of KAFKA_SSL_CERTFILE="
            f"{str(security.certfile)!r} (TLS {alert}): it must be signed by a CA the broker "
            "trusts"
        )
    except TimeoutError:
        return None
    except OSError:
        return _NO_VERDICT  # reset before its verdict was read
    finally:
        writer.close()
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
