"""Adobe's two sample requests, byte for byte (CRLF), as IRIS sends them (docs/adobe.md).

Kept in the package so that ``gateway demo`` can replay them on any machine; the tests read
the same bytes from ``tests/vectors/``.
"""

from __future__ import annotations

__all__ = ["SEED_CREDENTIAL", "SEED_PAYLOAD", "SEGMENT_REQUEST", "TOKEN_REQUEST",
           "segment_request"]

# Adobe's sample credential: 77 characters, not valid base64 (the opaque Basic form).
SEED_CREDENTIAL = "zq2LOO1CcYGrODS5nXiNHpEz97eCpVHAoMF8pAgCntXAzxp5uRV7DTAE2qtPLjhMQwrEX3O6MHV4S"

TOKEN_REQUEST = (
    b'POST /oauth2/token HTTP/1.1\r\n'
    b'Host: api.partner.com\r\n'
    b'User-Agent: Adobe Audience Manager Iris\r\n'
    b'Authorization: Basic '
    b'zq2LOO1CcYGrODS5nXiNHpEz97eCpVHAoMF8pAgCntXAzxp5uRV7DTAE2qtPLjhMQwrEX3O6MHV4S\r\n'
    b'Content-Type: application/x-www-form-urlencoded;charset=UTF-8\r\n'
    b'Content-Length: 29\r\n'
    b'Accept-Encoding: gzip\r\n'
    b'\r\n'
    b'grant_type=client_credentials'
)

SEGMENT_REQUEST = (
    b'GET /segments/aam HTTP/1.1\r\n'
    b'Host: api.partner.com\r\n'
    b'User-Agent: Adobe Audience Manager Iris\r\n'
    b'Authorization: Bearer {TOKEN}\r\n'
    b'Content-Type: application/json\r\n'
    b'Accept-Encoding: gzip\r\n'
    b'Content-Length: 415\r\n'
    b'\r\n'
    b'{\n'
    b'"ProcessTime": "Wed Jul 27 16:17:42 UTC 2016",\n'
    b'"User_DPID": "12345",\n'
    b'"Client_ID": "74323",\n'
    b'"AAM_Destination_Id": "423",\n'
    b'"User_count": "2",\n'
    b'"Users": [{\n'
    b'   "AAM_UUID": "19393572368547369350319949416899715727",\n'
    b'   "DataPartner_UUID": "4250948725049857",\n'
    b'   "Segments": [{\n'
    b'            "Segment_ID": "14356",\n'
    b'            "Status": "1",\n'
    b'            "DateTime": "Wed Jul 27 16:17:22 UTC 2016"\n'
    b'         }\n'
    b'      ]\n'
    b'   }]\n'
    b'}\n'
)

SEED_PAYLOAD = SEGMENT_REQUEST.split(b"\r\n\r\n", 1)[1]


def segment_request(token: str) -> bytes:
    """Adobe's sample segment request (a GET with a JSON body) carrying ``token``."""
    return SEGMENT_REQUEST.replace(b"{TOKEN}", token.encode("ascii"))
