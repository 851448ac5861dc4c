"""JWT attacks from RFC 8725 (JSON Web Token Best Current Practices) against the verifier.

Every forged token here is built by hand (``forge``), so the attack is exactly the bytes the
test says; ``test_the_forge_itself_makes_accepted_tokens`` proves the same helper makes tokens
the verifier accepts, so each refusal is the attack's doing and not a broken forge. The
verifier is exercised directly for every configured algorithm, and through the real gateway
(TLS, sample backend) where the answer on the wire or the backend's silence matters.
"""

from __future__ import annotations

import asyncio
import base64
import builtins
import datetime
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jwt.algorithms import Algorithm, get_default_algorithms

from gateway.config import ClientSettings, SigningKeySettings, TokenSettings
from gateway.config.hashes import parse_hash
from gateway.errors import InvalidTokenError
from gateway.oauth.clients import ClientRegistry
from gateway.oauth.keys import KeySet
from gateway.oauth.tokens import MAX_TOKEN_BYTES, TokenIssuer, TokenVerifier
from gateway.serve.server import RunningGateway

from adv_harness import (
    AUDIENCE,
    CLIENT_ID,
    ISSUER,
    SEED_PAYLOAD,
    assert_error_body,
    b64url,
    backend_count,
)

HS_SECRET = "an-hs256-secret-that-is-long-enough-0123456789"
ALGORITHMS = ("ES256", "RS256", "EdDSA", "HS256")
_ALGS: dict[str, Algorithm] = get_default_algorithms()  # type: ignore[assignment]


# -- the verifier under attack ---------------------------------------------------------------

class Target:
    """One configured verifier and what an honest issuer of it would use to sign."""

    def __init__(self, algorithm: str, signing_keys: dict[str, Path], tmp: Path,
                 clients: tuple[ClientSettings, ...]) -> None:
        self.algorithm = algorithm
        if algorithm == "HS256":
            keys = [SigningKeySettings(kid="h1", secret=HS_SECRET)]
            self.private: Any = HS_SECRET.encode()
        else:
            keys = [SigningKeySettings(kid="k1", private_key_file=signing_keys[algorithm])]
            self.private = _ALGS[algorithm].prepare_key(signing_keys[algorithm].read_bytes())
            if algorithm == "ES256":
                # A verify-only (rotated-out) key: confusion attacks must fail with it too.
                public = tmp / "old.pub.pem"
                other = serialization.load_pem_private_key(
                    signing_keys["ES256-2"].read_bytes(), None)
                public.write_bytes(other.public_key().public_bytes(
                    serialization.Encoding.PEM,
                    serialization.PublicFormat.SubjectPublicKeyInfo))
                keys.append(SigningKeySettings(kid="old-1", public_key_file=public))
        self.kid = keys[0].kid
        self.settings = TokenSettings(issuer=ISSUER, audience=AUDIENCE,
                                      algorithm=algorithm,  # type: ignore[arg-type]
                                      keys=tuple(keys), leeway_seconds=5, ttl_seconds=600)
        self.keyset = KeySet.from_settings(self.settings)
        self.registry = ClientRegistry.from_settings(clients)
        self.verifier = TokenVerifier(self.settings, self.keyset, self.registry)

    def header(self, **changes: Any) -> dict[str, Any]:
        return {"alg": self.algorithm, "typ": "at+jwt", "kid": self.kid, **changes}

    def sign(self, signing_input: bytes) -> bytes:
        return _ALGS[self.algorithm].sign(signing_input, self.private)

    def forge(self, header: dict[str, Any] | bytes | None = None,
              claims: dict[str, Any] | bytes | None = None) -> str:
        """A token signed by the real key over exactly the given header and claims."""
        return forge(self.header() if header is None else header,
                     valid_claims() if claims is None else claims, self.sign)

    def refuses(self, token: str) -> bool:
        try:
            self.verifier.verify(token)
        except InvalidTokenError:
            return True
        return False


def valid_claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": CLIENT_ID, "client_id": CLIENT_ID,
              "exp": now + 600, "iat": now, "jti": "jti-1", "scope": "segments:write"}
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _json(part: dict[str, Any] | bytes) -> bytes:
    return part if isinstance(part, bytes) else json.dumps(part).encode()


def forge(header: dict[str, Any] | bytes, claims: dict[str, Any] | bytes,
          sign: Callable[[bytes], bytes]) -> str:
    signing_input = f"{b64url(_json(header))}.{b64url(_json(claims))}".encode()
    return f"{signing_input.decode()}.{b64url(sign(signing_input))}"


@pytest.fixture(scope="module")
def clients() -> tuple[ClientSettings, ...]:
    digest = hashlib.sha256(b"opaque-credential-" + b"x" * 40).hexdigest()
    return (ClientSettings(client_id=CLIENT_ID, scopes=("segments:write",),
                           credential_hashes=(parse_hash(f"sha256${digest}"),)),
            ClientSettings(client_id="reader", scopes=("read",),
                           credential_hashes=(parse_hash("sha256$" + "0" * 64),)))


@pytest.fixture(params=ALGORITHMS)
def target(request: pytest.FixtureRequest, signing_keys: dict[str, Path], tmp_path: Path,
           clients: tuple[ClientSettings, ...]) -> Target:
    return Target(request.param, signing_keys, tmp_path, clients)


@pytest.fixture
def es256(signing_keys: dict[str, Path], tmp_path: Path,
          clients: tuple[ClientSettings, ...]) -> Target:
    return Target("ES256", signing_keys, tmp_path, clients)


@pytest.fixture
def crypto_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every signature check any algorithm object makes, by algorithm class name."""
    calls: list[str] = []
    for algorithm in {type(a) for a in _ALGS.values()}:
        original = algorithm.verify

        def spy(self: Algorithm, msg: bytes, key: Any, sig: bytes,
                _original: Any = original) -> bool:
            calls.append(type(self).__name__)
            return bool(_original(self, msg, key, sig))

        monkeypatch.setattr(algorithm, "verify", spy)
    return calls


def test_the_forge_itself_makes_accepted_tokens(target: Target, crypto_calls: list[str]) -> None:
    verified = target.verifier.verify(target.forge())
    assert verified.client_id == CLIENT_ID
    assert crypto_calls, "the crypto spy must see the one real signature check"


# -- alg: none, and algorithm confusion -------------------------------------------------------

@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE", "", None, "HS256 ", "ES256\u0000",
                                 ["ES256"], {"alg": "ES256"}])
def test_alg_none_and_odd_algs_are_refused_before_crypto(
        target: Target, alg: Any, crypto_calls: list[str]) -> None:
    header = target.header(alg=alg)
    for signature in (b"", b"\x00", target.sign(b"whatever")):
        token = forge(header, valid_claims(), lambda _, s=signature: s)
        if not token.endswith("."):
            assert target.refuses(token), (alg, signature)
        # Unsigned JWS (RFC 7519 §6): an empty third segment is malformed, never "none".
        assert target.refuses(token.rsplit(".", 1)[0] + ".")
    assert crypto_calls == []


def _confusion_keys(target: Target) -> Iterator[tuple[str, bytes]]:
    """Every public form an attacker can learn of each configured key (RFC 8725 §2.1)."""
    jwks = target.keyset.jwks()["keys"]
    for kid, public in target.keyset.verification_keys.items():
        yield kid + "/spki-pem", public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        yield kid + "/spki-der", public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        yield kid + "/openssh", public.public_bytes(
            serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        if target.algorithm == "RS256":
            yield kid + "/pkcs1-pem", public.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
        served = next(jwk for jwk in jwks if jwk["kid"] == kid)
        yield kid + "/jwk", json.dumps(served).encode()
        yield kid + "/jwk-compact-sorted", json.dumps(
            served, separators=(",", ":"), sort_keys=True).encode()
        yield kid + "/jwk-pyjwt", _ALGS[target.algorithm].to_jwk(public).encode()


@pytest.mark.parametrize("algorithm", ["ES256", "RS256", "EdDSA"])
@pytest.mark.parametrize("hs", ["HS256", "HS384", "HS512"])
def test_hmac_keyed_with_each_public_key_is_refused(
        algorithm: str, hs: str, signing_keys: dict[str, Path], tmp_path: Path,
        clients: tuple[ClientSettings, ...], crypto_calls: list[str]) -> None:
    target = Target(algorithm, signing_keys, tmp_path, clients)
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[hs]
    forms = list(_confusion_keys(target))
    assert len(forms) >= 6
    for name, material in forms:
        kid = name.split("/")[0]

        def sign(data: bytes, key: bytes = material) -> bytes:
            return hmac.new(key, data, digest).digest()

        token = forge(target.header(alg=hs, kid=kid), valid_claims(), sign)
        assert target.refuses(token), name
    # Refused on the header alone: the configured algorithm never met an HMAC.
    assert crypto_calls == []


def test_asymmetric_token_against_an_hmac_configuration_is_refused(
        signing_keys: dict[str, Path], tmp_path: Path,
        clients: tuple[ClientSettings, ...]) -> None:
    hs = Target("HS256", signing_keys, tmp_path, clients)
    es = Target("ES256", signing_keys, tmp_path, clients)
    assert hs.refuses(es.forge(es.header(kid="h1")))
    # The HMAC secret used as "public key" by an attacker who guessed the JWKS is empty.
    assert hs.keyset.jwks() == {"keys": []}


# -- embedded and remote keys in the header ---------------------------------------------------

class _Listener:
    """A loopback TCP listener that counts connections: a jku/x5u fetch would show here."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def _attacker_material() -> tuple[Any, dict[str, Any], str]:
    key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(_ALGS["ES256"].to_jwk(key.public_key()))
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "attacker")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
    return key, jwk, x5c


async def test_header_keys_are_ignored_and_never_fetched(es256: Target,
                                                         crypto_calls: list[str]) -> None:
    listener = _Listener()
    url = await listener.start()
    try:
        key, jwk, x5c = _attacker_material()

        def attacker_sign(data: bytes) -> bytes:
            return _ALGS["ES256"].sign(data, key)

        variants: list[dict[str, Any]] = [
            {"jwk": jwk}, {"jwk": {**jwk, "kid": "k1"}}, {"jku": url + "/jwks.json"},
            {"x5u": url + "/cert.pem"}, {"x5c": [x5c]},
            {"jwk": jwk, "jku": url + "/jwks.json", "x5u": url + "/c", "x5c": [x5c]},
        ]
        for extra in variants:
            for kid in ("k1", "attacker", None):
                header = es256.header(kid=kid, **extra)
                if kid is None:
                    del header["kid"]
                token = forge(header, valid_claims(), attacker_sign)
                assert es256.refuses(token), (extra.keys(), kid)
        # Let any fetch that was started in the background reach the listener.
        for _ in range(5):
            await asyncio.sleep(0)
        assert listener.connections == 0
        # The honest key with the same header parameters still verifies: they are ignored,
        # not a reason in themselves (so the refusals above came from the attacker's key).
        honest = es256.forge(es256.header(jku=url + "/jwks.json", x5c=[x5c], jwk=jwk))
        assert es256.verifier.verify(honest).client_id == CLIENT_ID
        # Six tokens named the real kid and failed its signature; the honest one passed.
        assert crypto_calls.count("ECAlgorithm") == 7
    finally:
        await listener.stop()


# -- kid injection -----------------------------------------------------------------------------

KID_ATTACKS = [
    "../../../../../../etc/passwd", "/dev/null", "..\\..\\windows\\win.ini", "file:///etc/passwd",
    "k1/../k1", "./k1", "k1' OR '1'='1", "' UNION SELECT 'secret' --", "k1\"; DROP TABLE keys;--",
    "k1; rm -rf /", "$(touch /tmp/pwned)", "`id`", "| cat /etc/shadow", "k1\u0000", "k1\r\nX: y",
    "K1", " k1", "k1 ", "", "\u212a1", "k" * 5000, None, 1, True, ["k1"], {"kid": "k1"},
]


def test_kid_injection_is_a_plain_unknown_key(es256: Target) -> None:
    opened: list[str] = []
    original_open = builtins.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return original_open(file, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(builtins, "open", spy_open)
        patch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}"))
        for kid in KID_ATTACKS:
            assert es256.refuses(es256.forge(es256.header(kid=kid))), kid
    assert opened == []
    # The verify-only key is a real key, but only with its own signature.
    assert es256.refuses(es256.forge(es256.header(kid="old-1")))


# -- crit, b64 and other header parameters -----------------------------------------------------

@pytest.mark.parametrize("extra", [
    {"crit": ["exp-x"], "exp-x": 1},
    {"crit": ["b64"], "b64": False},
    {"b64": False},
    {"b64": True},
    {"crit": []},
    {"crit": ["kid"]},
    {"crit": "exp-x"},
])
def test_crit_and_b64_are_refused(es256: Target, extra: dict[str, Any]) -> None:
    assert es256.refuses(es256.forge(es256.header(**extra)))


def test_b64_false_with_an_unencoded_payload_is_refused(es256: Target) -> None:
    # RFC 7797 §3: with b64=false the signature covers the raw payload bytes.
    header = b64url(json.dumps(es256.header(b64=False, crit=["b64"])).encode())
    payload = json.dumps(valid_claims()).encode()
    signature = es256.sign(header.encode() + b"." + payload)
    assert es256.refuses(f"{header}.{b64url(payload)}.{b64url(signature)}")
    assert es256.refuses(f"{header}..{b64url(signature)}")


@pytest.mark.parametrize("typ", [None, "JWT", "jwt", "at+jwt ", "application/jwt", "JOSE",
                                 "id_token+jwt", 1])
def test_explicit_typing_refuses_other_token_kinds(es256: Target, typ: Any) -> None:
    # RFC 8725 §3.11 / RFC 9068 §4: an ID token or any other JWT from the same key is refused.
    header = es256.header(typ=typ)
    if typ is None:
        del header["typ"]
    assert es256.refuses(es256.forge(header))


# -- duplicate members -------------------------------------------------------------------------

def _dup(obj: dict[str, Any], name: str, first: Any) -> bytes:
    """``obj`` as JSON with ``name`` given twice: ``first`` and then obj's own value."""
    rest = json.dumps(obj)[1:]
    return b"{" + json.dumps(name).encode() + b":" + json.dumps(first).encode() + b"," + \
        rest.encode()


@pytest.mark.parametrize("name, first", [("alg", "none"), ("kid", "../etc/passwd"),
                                         ("typ", "JWT"), ("alg", "ES256")])
def test_duplicate_header_members_are_refused(es256: Target, name: str, first: Any) -> None:
    # Two parsers reading the same header may take different copies (RFC 7515 §4: "the
    # Header Parameter names within the JOSE Header MUST be unique; JWS parsers MUST either
    # reject JWSs with duplicate Header Parameter names or ..."). We reject.
    assert es256.refuses(es256.forge(_dup(es256.header(), name, first)))


@pytest.mark.parametrize("name, first", [("aud", "other-api"), ("iss", "https://evil.example"),
                                         ("client_id", "reader"), ("exp", 1),
                                         ("scope", "admin"), ("sub", CLIENT_ID)])
def test_duplicate_claims_are_refused(es256: Target, name: str, first: Any) -> None:
    # RFC 7519 §4: "the Claim Names within a JWT Claims Set MUST be unique; JWT parsers MUST
    # either reject JWTs with duplicate Claim Names or use a JSON parser that returns only
    # the lexically last duplicate member name". Rejecting leaves no room for a differential.
    assert es256.refuses(es256.forge(claims=_dup(valid_claims(), name, first)))


def test_nested_duplicates_are_refused_too(es256: Target) -> None:
    claims = json.dumps(valid_claims())[:-1].encode() + b', "cnf": {"a": 1, "a": 2}}'
    assert es256.refuses(es256.forge(claims=claims))


# -- encoding, size, shape ---------------------------------------------------------------------

def test_non_utf8_and_non_json_segments_are_refused(es256: Target) -> None:
    header = json.dumps(es256.header()).encode()
    claims = json.dumps(valid_claims()).encode()
    for bad_header, bad_claims in [
        (b"\xff\xfe" + header, claims), (header, claims[:-1] + b'"\xc3\x28"}'),
        (header.replace(b'"at+jwt"', b'"at+jwt\xed\xa0\x80"'), claims),  # CESU surrogate
        (header, b"\xef\xbb\xbf" + claims),  # a byte-order mark is not JSON (RFC 8259 §8.1)
        (b"[" + header + b"]", claims), (header, b"null"), (header, b"1e999"),
        (b'{"alg":"ES256","typ":"at+jwt","kid":"k1"' + b" " * 10, claims),
        # json.loads(bytes) would detect these encodings; JOSE is UTF-8 only (RFC 7515 §2).
        (header.decode().encode("utf-16"), claims), (header, claims.decode().encode("utf-16-le")),
        (header.decode().encode("utf-32"), claims),
        (header, claims[:-1] + b', "x": "\xed\xa0\x80"}'),
    ]:
        assert es256.refuses(es256.forge(bad_header, bad_claims)), (bad_header, bad_claims)


def test_lone_surrogate_escapes_are_refused(es256: Target) -> None:
    claims = json.dumps(valid_claims(client_id="a\ud800", sub="a\ud800")).encode()
    assert b"\\ud800" in claims
    assert es256.refuses(es256.forge(claims=claims))


def test_oversized_tokens_are_refused_before_any_crypto(es256: Target,
                                                        crypto_calls: list[str]) -> None:
    honest = es256.forge()
    padded_claims = valid_claims(pad="x" * MAX_TOKEN_BYTES)
    big = es256.forge(claims=padded_claims)
    assert len(big) > MAX_TOKEN_BYTES
    for token in (big, honest + "A" * MAX_TOKEN_BYTES, "a." * 100_000 + "b",
                  "A" * 10_000_000):
        assert es256.refuses(token)
    assert crypto_calls == []
    # The spy works: a token under the bound with a bad signature does reach the crypto.
    assert es256.refuses(honest[:-2] + ("AA" if not honest.endswith("AA") else "BB"))
    assert crypto_calls == ["ECAlgorithm"]


@pytest.mark.parametrize("mangle", [
    lambda t: t + ".", lambda t: "." + t, lambda t: t.replace(".", "..", 1),
    lambda t: t + "=", lambda t: t.rsplit(".", 1)[0] + ".", lambda t: t.replace("-", "+"),
    lambda t: " " + t, lambda t: t + "\n", lambda t: t.upper(), lambda t: t.rsplit(".", 1)[0],
    lambda t: t + "." + t.split(".")[2],
])
def test_malformed_compact_forms_are_refused(es256: Target, mangle: Callable[[str], str],
                                             crypto_calls: list[str]) -> None:
    token = es256.forge()
    changed = mangle(token)
    if changed != token:
        assert es256.refuses(changed)


def test_zero_and_der_signatures_are_refused(es256: Target) -> None:
    token = es256.forge()
    signing_input = token.rsplit(".", 1)[0]
    # CVE-2022-21449 ("psychic signatures"): r = s = 0 must never verify.
    assert es256.refuses(signing_input + "." + b64url(b"\x00" * 64))
    raw = base64.urlsafe_b64decode(token.rsplit(".", 1)[1] + "==")
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    assert es256.refuses(signing_input + "." + b64url(encode_dss_signature(r, s)))
    # The high-s twin (s' = n - s) is also a valid ECDSA signature of the same message;
    # accepting it is fine (no state depends on the signature's bytes), refusing too.
    n = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    twin = r.to_bytes(32, "big") + (n - s).to_bytes(32, "big")
    verified = not es256.refuses(signing_input + "." + b64url(twin))
    assert verified in (True, False)


# -- claims: another issuer's, another audience's, odd types and times ------------------------

@pytest.mark.parametrize("changes", [
    {"iss": "https://evil.example"}, {"iss": ISSUER + "/"}, {"iss": ISSUER.upper()},
    {"iss": None}, {"iss": [ISSUER]},
    {"aud": "other-api"}, {"aud": [AUDIENCE, "other-api"]}, {"aud": [AUDIENCE]},
    {"aud": None}, {"aud": AUDIENCE + " "},
])
def test_a_valid_signature_over_another_issuers_or_audiences_claims_is_refused(
        target: Target, changes: dict[str, Any]) -> None:
    claims = valid_claims(**{k: v for k, v in changes.items() if v is not None})
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
    assert target.refuses(target.forge(claims=claims))


def test_a_token_minted_by_another_issuer_with_the_same_key_is_refused(
        es256: Target, clients: tuple[ClientSettings, ...]) -> None:
    # Two gateways sharing a key (a copy-pasted config): each refuses the other's tokens.
    from dataclasses import replace

    for changes in ({"issuer": "https://other.example"}, {"audience": "other-api"}):
        issuer = TokenIssuer(replace(es256.settings, **changes), es256.keyset)
        token, _ = issuer.mint(clients[0], ("segments:write",))
        assert es256.refuses(token)
    token, _ = TokenIssuer(es256.settings, es256.keyset).mint(clients[0], ("segments:write",))
    assert not es256.refuses(token)


@pytest.mark.parametrize("changes", [
    {"exp": -1}, {"exp": 0}, {"exp": "9999999999"}, {"exp": 9999999999.5}, {"exp": True},
    {"exp": None}, {"iat": None}, {"iat": 10**12}, {"nbf": 10**12}, {"exp": 10**400},
    {"jti": ""}, {"jti": None}, {"jti": 1}, {"client_id": "reader"}, {"client_id": "ghost",
                                                                     "sub": "ghost"},
    {"sub": "reader"}, {"scope": ["segments:write"]}, {"client_id": None},
])
def test_bad_claim_values_are_refused(es256: Target, changes: dict[str, Any]) -> None:
    claims = valid_claims(**{k: v for k, v in changes.items() if v is not None})
    for name, value in changes.items():
        if value is None:
            claims.pop(name)
    if changes == {"exp": 10**400}:
        # Far future is not an attack on its own, but a 400-digit integer must not crash.
        es256.verifier.verify(es256.forge(claims=claims))
        return
    assert es256.refuses(es256.forge(claims=claims))


# -- through the real gateway: the wire answer and the backend's silence ----------------------

async def test_forged_tokens_on_the_wire_are_401_and_never_reach_the_backend(
        adv_gateway: RunningGateway, backend: tuple[str, Any], session: aiohttp.ClientSession,
        signing_keys: dict[str, Path]) -> None:
    key = _ALGS["ES256"].prepare_key(signing_keys["ES256"].read_bytes())
    attacker, jwk, _ = _attacker_material()

    def real(data: bytes) -> bytes:
        return _ALGS["ES256"].sign(data, key)

    def fake(data: bytes) -> bytes:
        return _ALGS["ES256"].sign(data, attacker)

    header = {"alg": "ES256", "typ": "at+jwt", "kid": "k1"}
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                              serialization.PublicFormat.SubjectPublicKeyInfo)
    forged = [
        forge({**header, "alg": "none"}, valid_claims(), lambda _: b"x"),
        forge({**header, "alg": "HS256"}, valid_claims(),
              lambda d: hmac.new(public_pem, d, hashlib.sha256).digest()),
        forge({**header, "jwk": jwk}, valid_claims(), fake),
        forge({**header, "kid": "../../etc/passwd"}, valid_claims(), real),
        forge({**header, "crit": ["x"], "x": 1}, valid_claims(), real),
        forge(_dup(header, "alg", "none"), valid_claims(), real),
        forge(header, _dup(valid_claims(), "aud", "other-api"), real),
        forge(header, valid_claims(iss="https://evil.example"), real),
        forge(header, valid_claims(client_id="ghost", sub="ghost"), real),
    ]
    before = await backend_count(backend[0])
    url = f"https://localhost:{adv_gateway.ports['https']}/segments/aam"
    for token in forged:
        async with session.post(url, data=SEED_PAYLOAD, headers={
                "Authorization": f"Bearer {token}", "Content-Type": "application/json"}) as r:
            body = await r.read()
            assert r.status == 401, (token, body)
            assert assert_error_body((r.status, body))["error"] == "invalid_token"
            assert r.headers["WWW-Authenticate"].startswith('Bearer realm="')
            assert 'error="invalid_token"' in r.headers["WWW-Authenticate"]
    # The honest token signed by the same forge passes, so the refusals are the attacks'.
    async with session.post(url, data=SEED_PAYLOAD, headers={
            "Authorization": f"Bearer {forge(header, valid_claims(), real)}",
            "Content-Type": "application/json"}) as r:
        assert r.status == 200, await r.read()
    assert await backend_count(backend[0]) == before + 1
