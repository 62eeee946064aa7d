"""The access policy over HTTP (issue 14): every read route of the API and every portal page, for each
kind of caller, gets the expected answer and code; on SQLite and PostgreSQL.

The table (:data:`CASES`) is walked against ``app.routes``: a GET route (or a portal page) with no
case here, or with no entry in ``ledger_service.access.policy.ROUTES``, fails
:func:`test_every_read_route_has_a_policy_and_cases`. Each case names, for every caller, the status
and the code (None: an answer, not an error).

The world, one per database and built once for the module, is ``tests/helpers/access_world.py``'s: every
kind of caller (anonymous, the device, its owner, another factory, banks without consent, with a revoked
or expired one and with a standing one, a lot custodian, a named auditor, the operator), lot A (not
disclosed) and lot D (disclosed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from access_world import (
    ANON,
    AUDITOR,
    BANK_EXPIRED,
    BANK_NONE,
    BANK_OK,
    BANKS,
    CALLERS,
    CUSTODIAN,
    DEV,
    DEVICE,
    LINE,
    LOT_A,
    LOT_D,
    OPERATOR,
    OWNER,
    RIVAL,
    World,
    admit_parties,
    consents_and_receivable,
    lots_and_readings,
    profile_row,
    share,
    window_set_row,
)
from fastapi.testclient import TestClient
from support import TestConsortium, database_url

from contracts.chain import Chain, dev_accounts
from contracts.onboarding import Onboarding
from device_attestation.sdk import DeviceSigner
from ledger_service.access.policy import ROUTES
from ledger_service.api import create_app
from ledger_service.config import Settings
from ledger_service.service import LedgerService

#: (status, code): the code of an error envelope (or the portal's error page), None for an answer.
Expected = tuple[int, str | None]


# ---------------------------------------------------------------------------- the world


@pytest.fixture(
    scope="module",
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ],
)
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """The policy's world on each database, on the session's anvil and its suite (deployed once per
    session by dev account 0), rolled back afterwards.

    Both worlds are on anvil: an access decision reads the chain through the chain adapter (tested on
    both kinds of chain elsewhere); building the world (a suite of its own) and answering the table on
    the embedded chain (py-evm in this process) cost about 13 of this module's 49 CPU-s for the same
    answers."""
    urls = database_url(request.param, tmp_path_factory.mktemp("acl"))
    db_url = next(urls)
    session = request.getfixturevalue("anvil_session")  # tests/conftest.py AnvilSession
    node = session.node
    snapshot = node.snapshot()
    chain = Chain.connect(node.url)
    admin = dev_accounts(1)[0]
    deployment = session.deployment
    ob = Onboarding(chain, deployment, admin)
    ob.apply_policy()
    parties = admit_parties(ob, admin)
    settings = Settings(database_url=db_url, verify_workers=0, anchoring=False, registry_refresh_seconds=0)
    service = LedgerService.build(settings, chain=chain, deployment=deployment)
    service.pipeline.settings = service.pipeline.settings.model_copy(update={"max_future_skew_ms": 600_000})
    try:
        with TestClient(create_app(service=service)) as client:  # starts the service (its writer)
            profile_row(service, parties[OWNER].address)
            window_set_row(service, parties[OWNER].address)
            sensor, reading_a, reading_d = lots_and_readings(service, parties)
            rid = consents_and_receivable(service, parties)
            share(client, parties)
            yield World(service, client, parties, sensor, reading_a, reading_d, rid)
        service.stop()
        next(urls, None)
    finally:
        node.revert(snapshot)


# ---------------------------------------------------------------------------- the table


def _table(
    allowed: dict[str, int] | tuple[str, ...],
    refused: str,
    *,
    anon: Expected = (401, "access.anonymous"),
    device: Expected | None = None,
    status: int = 403,
    **special: Expected,
) -> dict[str, Expected]:
    """Every caller's expected answer: ``allowed`` (200, or the status given), the others refused with
    ``refused``; the anonymous caller and the device as given; ``special`` overrides by caller."""
    ok = dict.fromkeys(allowed, 200) if isinstance(allowed, tuple) else allowed
    out: dict[str, Expected] = {}
    for who in CALLERS:
        out[who] = (ok[who], None) if who in ok else (status, refused)
    out[ANON] = (200, None) if ANON in ok else anon
    if device is not None:
        out[DEV] = device
    for who, exp in special.items():
        out[who] = exp
    return out


EVERYONE = _table(CALLERS, "")
SIGNED_IN = tuple(c for c in CALLERS if c != ANON)


@dataclass(frozen=True)
class Case:
    """One request: the route template it exercises, its concrete path (``{...}`` filled from the
    world by :meth:`path_of`), the expected answer of each caller; portal pages use the session cookie."""

    template: str
    path: str
    expected: dict[str, Expected]
    method: str = "GET"

    @property
    def portal(self) -> bool:
        return self.path.startswith("/portal") or self.path == "/"

    def path_of(self, w: World) -> str:
        return self.path.format(
            a=w.reading_a, d=w.reading_d, factory=w.address(OWNER), rid=w.receivable_id, zero="0x" + "00" * 32
        )


READING_A = _table((OWNER, DEV, CUSTODIAN, AUDITOR), "access.not_owner")
LOT_A_EVIDENCE = _table((OWNER, CUSTODIAN, AUDITOR), "access.not_custodian")
NOT_FOUND_READING = _table((), "", **{w: (404, "reading.not_found") for w in SIGNED_IN})
CREDIT = _table(
    (BANK_OK,),
    "finance.not_a_bank",
    bank_none=(403, "finance.no_consent"),
    bank_revoked=(403, "finance.no_consent"),
    bank_expired=(403, "finance.consent_expired"),
)
RECEIVABLES_LIST = _table(
    (OWNER, RIVAL, *BANKS),
    "finance.not_admitted",
    device=(403, "access.not_a_party"),
)
PORTAL_READING_A = _table((OWNER, CUSTODIAN, AUDITOR), "access.not_owner", device=(401, "access.anonymous"))
PORTAL_LOT_A = _table((OWNER, CUSTODIAN, AUDITOR), "access.not_custodian", device=(401, "access.anonymous"))
PORTAL_EVERYONE = EVERYONE

CASES: tuple[Case, ...] = (
    *(
        Case(t, t, EVERYONE)
        for t in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/healthz", "/readyz")
    ),
    Case("/metrics", "/metrics", EVERYONE),
    Case("/v1/deployment", "/v1/deployment", EVERYONE),
    Case("/v1/auth/me", "/v1/auth/me", _table(SIGNED_IN, "", device=(401, "auth.party_required"))),
    Case("/v1/readings/{digest}", "/v1/readings/{a}", READING_A),
    Case("/v1/readings/{digest}", "/v1/readings/{d}", EVERYONE),
    Case("/v1/readings/{digest}", "/v1/readings/{zero}", NOT_FOUND_READING),
    Case("/v1/readings/{digest}/proof", "/v1/readings/{a}/proof", READING_A),
    Case("/v1/readings/{digest}/proof", "/v1/readings/{d}/proof", EVERYONE),
    Case(
        "/v1/devices/{device_id}/readings",
        f"/v1/devices/{DEVICE}/readings",
        _table((OWNER, DEV), "access.not_owner"),
    ),
    Case(
        "/v1/devices/{device_id}/proofs",
        f"/v1/devices/{DEVICE}/proofs",
        _table((OWNER, DEV), "access.not_owner"),
    ),
    Case(
        "/v1/devices/{device_id}", f"/v1/devices/{DEVICE}", _table((OWNER, DEV, OPERATOR), "access.not_owner")
    ),
    Case("/v1/lots/{lot_id}/proofs", f"/v1/lots/{LOT_A}/proofs", LOT_A_EVIDENCE),
    Case("/v1/lots/{lot_id}/proofs", f"/v1/lots/{LOT_D}/proofs?limit=5", EVERYONE),
    Case("/v1/lots/{lot_id}/history", f"/v1/lots/{LOT_A}/history", LOT_A_EVIDENCE),
    Case("/v1/lots/{lot_id}/history", f"/v1/lots/{LOT_D}/history", EVERYONE),
    Case("/v1/lots/{lot_id}/epcis", f"/v1/lots/{LOT_A}/epcis", LOT_A_EVIDENCE),
    Case("/v1/lots/{lot_id}/epcis", f"/v1/lots/{LOT_D}/epcis", EVERYONE),
    Case("/v1/lots/{lot_id}/trace", f"/v1/lots/{LOT_A}/trace?direction=downstream", LOT_A_EVIDENCE),
    Case("/v1/lots/{lot_id}/trace", f"/v1/lots/{LOT_A}/trace?direction=upstream", LOT_A_EVIDENCE),
    Case(
        "/v1/lots/{lot_id}/certification-package", f"/v1/lots/{LOT_A}/certification-package", LOT_A_EVIDENCE
    ),
    Case("/v1/lots/{lot_id}/certification-package", f"/v1/lots/{LOT_D}/certification-package", EVERYONE),
    Case("/v1/disclosures", "/v1/disclosures", EVERYONE),
    Case(
        "/v1/parties/{address}/admission",
        "/v1/parties/{factory}/admission",
        _table((OWNER, OPERATOR), "access.not_owner"),
    ),
    Case(
        "/v1/parties/{address}/recalls",
        "/v1/parties/{factory}/recalls",
        _table((OWNER,), "access.not_owner"),
    ),
    Case(
        "/v1/factories/{address}/consents",
        "/v1/factories/{factory}/consents",
        _table((OWNER,), "finance.not_the_factory"),
    ),
    Case(
        "/v1/factories/{address}/access-log",
        "/v1/factories/{factory}/access-log",
        _table((OWNER,), "finance.not_the_factory"),
    ),
    Case(
        "/v1/factories/{address}/lines/{line}/window-breaches",
        f"/v1/factories/{{factory}}/lines/{LINE}/window-breaches",
        {**CREDIT, OWNER: (200, None)},
    ),
    Case(
        "/v1/factories/{address}/lines/{line}/window-breaches",
        "/v1/factories/{factory}/lines/no-such-line/window-breaches",
        {**CREDIT, OWNER: (404, "windows.not_found"), BANK_OK: (404, "windows.not_found")},
    ),
    Case("/v1/bank/factories", "/v1/bank/factories", _table(BANKS, "finance.not_a_bank")),
    Case("/v1/bank/factories/{address}/credit", "/v1/bank/factories/{factory}/credit", CREDIT),
    Case("/v1/bank/factories/{address}/profile", "/v1/bank/factories/{factory}/profile", CREDIT),
    Case("/v1/bank/factories/{address}/grades", "/v1/bank/factories/{factory}/grades", CREDIT),
    Case("/v1/receivables", "/v1/receivables?holder={factory}", RECEIVABLES_LIST),
    Case(
        "/v1/receivables/{receivable_id}",
        "/v1/receivables/{rid}",
        _table((OWNER,), "access.not_a_party"),
    ),
    # the portal: the session cookie is the credential (a device has none: it is anonymous there)
    Case("/", "/", PORTAL_EVERYONE),
    Case("/portal", "/portal", PORTAL_EVERYONE),
    Case("/portal/login", "/portal/login", PORTAL_EVERYONE),
    Case("/portal/static/portal.css", "/portal/static/portal.css", PORTAL_EVERYONE),
    Case("/portal/static/wallet.js", "/portal/static/wallet.js", PORTAL_EVERYONE),
    Case("/portal/lots", "/portal/lots", PORTAL_EVERYONE),
    Case("/portal/lots", f"/portal/lots?lot_id={LOT_A}", PORTAL_LOT_A),
    Case("/portal/lots", f"/portal/lots?lot_id={LOT_D}", PORTAL_EVERYONE),
    Case("/portal/readings/{digest}/proof", "/portal/readings/{a}/proof", PORTAL_READING_A),
    Case("/portal/readings/{digest}/proof", "/portal/readings/{d}/proof", PORTAL_EVERYONE),
    Case(
        "/portal/readings/{digest}/check",
        "/portal/readings/{a}/check",
        # let through by the policy, the form is then refused for its missing CSRF token
        _table(
            dict.fromkeys((OWNER, CUSTODIAN, AUDITOR), 403),
            "access.not_owner",
            device=(401, "access.anonymous"),
            owner=(403, "portal.bad_csrf"),
            custodian=(403, "portal.bad_csrf"),
            auditor=(403, "portal.bad_csrf"),
        ),
        method="POST",
    ),
    Case(
        "/portal/factory",
        "/portal/factory",
        _table((OWNER, RIVAL), "portal.role_required", device=(401, "access.anonymous")),
    ),
    Case("/portal/recalls", "/portal/recalls", _table(SIGNED_IN, "", device=(401, "access.anonymous"))),
    Case(
        "/portal/bank", "/portal/bank", _table(BANKS, "finance.not_a_bank", device=(401, "access.anonymous"))
    ),
    Case(
        "/portal/bank/factories/{address}",
        "/portal/bank/factories/{factory}",
        {**CREDIT, DEV: (401, "access.anonymous")},
    ),
    Case(
        "/portal/bank/factories/{address}/profile.png",
        "/portal/bank/factories/{factory}/profile.png",
        {**CREDIT, DEV: (401, "access.anonymous")},
    ),
)


# ---------------------------------------------------------------------------- running a case


def _credentials(w: World, case: Case, who: str, path: str) -> dict[str, str]:
    if who == ANON:
        return {}
    if case.portal:
        return {} if who == DEV else {"Cookie": f"supet_session={w.token(who)}"}
    if who == DEV:
        return w.device.request_headers(case.method, path)
    return {"Authorization": f"Bearer {w.token(who)}"}


def _answer(response: Any) -> Expected:
    if response.status_code < 400:
        return response.status_code, None
    if "application/json" in response.headers.get("content-type", ""):
        return response.status_code, response.json()["error"]["code"]
    text = response.text
    start = text.find('id="error-code"')
    code = text[text.index(">", start) + 1 : text.index("<", start + 1)] if start >= 0 else None
    return response.status_code, code


def ask(w: World, case: Case, who: str) -> Expected:
    path = case.path_of(w)
    headers = _credentials(w, case, who, path)
    w.client.cookies.clear()
    if case.method == "POST":
        r = w.client.post(path, headers=headers, data={"csrf": "0" * 64})
    else:
        r = w.client.get(path, headers=headers)
    return _answer(r)


def _case_id(case: Case) -> str:
    return f"{case.method} {case.path}"


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_each_caller_gets_the_expected_answer(world: World, case: Case) -> None:
    got = {who: ask(world, case, who) for who in CALLERS}
    wrong = {who: (got[who], case.expected[who]) for who in CALLERS if got[who] != case.expected[who]}
    assert not wrong, "\n".join(f"{who}: got {g}, expected {e}" for who, (g, e) in wrong.items())


# ---------------------------------------------------------------------------- the walk


def read_routes(app: Any) -> dict[str, Any]:
    """Every GET route of the app (and the portal's reading POSTs), walking included routers."""
    found: dict[str, Any] = {}

    def walk(routes: list[Any], prefix: str) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes, prefix + route.include_context.prefix)
            elif "GET" in (getattr(route, "methods", None) or ()):
                found[prefix + route.path] = route

    walk(list(app.routes), "")
    return found


def test_every_read_route_has_a_policy_and_cases() -> None:
    app = create_app()
    routes = read_routes(app)
    documented = {p for p, ops in app.openapi()["paths"].items() if "get" in ops}
    assert documented <= set(routes), f"routes the walk missed: {documented - set(routes)}"
    no_policy = sorted(set(routes) - set(ROUTES))
    assert not no_policy, f"GET routes with no entry in the access policy: {no_policy}"
    no_case = sorted(set(routes) - {c.template for c in CASES})
    assert not no_case, f"GET routes no case of this table exercises: {no_case}"
    stale = sorted(set(ROUTES) - set(routes) - {c.template for c in CASES if c.method == "POST"})
    assert not stale, f"policy entries for routes that do not exist: {stale}"


def _limit_maximum(route: Any) -> int | None:
    for param in route.dependant.query_params:
        if param.name == "limit":
            for meta in param.field_info.metadata:
                if getattr(meta, "le", None) is not None:
                    return int(meta.le)
    return None


def test_every_list_route_is_paged_with_a_bounded_limit(world: World) -> None:
    routes = read_routes(world.client.app)
    entitled = {
        c.template: c
        for c in CASES
        if c.expected.get(OWNER) == (200, None) or c.expected[BANK_OK] == (200, None)
    }
    checked = 0
    for template, rule in ROUTES.items():
        if not rule.paged:
            continue
        most = _limit_maximum(routes[template])
        assert most is not None, f"{template} is a list but has no `limit` with a maximum"
        case = entitled[template]
        who = OWNER if case.expected[OWNER] == (200, None) else BANK_OK
        sep = "&" if "?" in case.path else "?"
        over = Case(template, f"{case.path}{sep}limit={most + 1}", case.expected)
        assert ask(world, over, who) == (422, "request.page_too_large"), template
        checked += 1
    assert checked >= 8


# ---------------------------------------------------------------------------- beyond the table


def _refusals_logged(w: World) -> list[tuple[str, str, str]]:
    from ledger_service.credit_desk.desk import desk_of

    rows = desk_of(w.service).book.page(w.address(OWNER), limit=200).entries
    return [(r.party, r.action, r.outcome) for r in rows]


def test_refusals_on_finance_data_are_written_to_the_access_log(world: World) -> None:
    w = world
    factory = w.address(OWNER)
    for who, path in (
        (BANK_NONE, f"/v1/bank/factories/{factory}/credit"),
        (BANK_EXPIRED, f"/v1/bank/factories/{factory}/profile"),
        (BANK_OK, f"/v1/factories/{factory}/access-log"),
    ):
        r = w.client.get(path, headers={"Authorization": f"Bearer {w.token(who)}"})
        assert r.status_code == 403
    logged = _refusals_logged(w)
    assert (w.address(BANK_NONE), "credit", "finance.no_consent") in logged
    assert (w.address(BANK_EXPIRED), "profile", "finance.consent_expired") in logged
    assert (w.address(BANK_OK), "access-log", "finance.not_the_factory") in logged
    # anyone not admitted as a bank (another factory, an anonymous caller) is counted, not anchored
    from ledger_service.credit_desk.desk import desk_of

    before = desk_of(w.service).tally.summary(factory).by_reason
    assert w.client.get(f"/v1/bank/factories/{factory}/credit").status_code == 401
    rival = {"Authorization": f"Bearer {w.token(RIVAL)}"}
    assert w.client.get(f"/v1/factories/{factory}/consents", headers=rival).status_code == 403
    after = desk_of(w.service).tally.summary(factory).by_reason
    assert after.get("access.anonymous", 0) == before.get("access.anonymous", 0) + 1
    assert after.get("finance.not_the_factory", 0) == before.get("finance.not_the_factory", 0) + 1


def test_the_factory_page_shows_its_lines_windows_and_a_bank_read_is_logged(world: World) -> None:
    w = world
    page = w.client.get("/portal/factory", headers={"Cookie": f"supet_session={w.token(OWNER)}"})
    assert page.status_code == 200
    assert f'id="windows-table-{LINE}"' in page.text and "temp_c" in page.text
    assert "window set version 1" in page.text
    path = f"/v1/factories/{w.address(OWNER)}/lines/{LINE}/window-breaches"
    r = w.client.get(path, headers={"Authorization": f"Bearer {w.token(BANK_OK)}"})
    assert r.status_code == 200 and r.json()["parameters"][0]["name"] == "temp_c"
    assert (w.address(BANK_OK), "window_breaches", "answered") in _refusals_logged(w)


def test_a_device_request_cannot_be_replayed_nor_read_another_device(world: World) -> None:
    w = world
    path = f"/v1/readings/{w.reading_a}"
    headers = w.device.request_headers("GET", path)
    assert w.client.get(path, headers=headers).status_code == 200
    again = w.client.get(path, headers=headers)
    assert again.status_code == 401 and again.json()["error"]["code"] == "auth.replayed"
    # signed for another path: the signature does not verify here
    other = w.device.request_headers("GET", f"/v1/devices/{DEVICE}/readings")
    wrong = w.client.get(path, headers=other)
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "auth.bad_signature"
    # a device that is not enrolled
    stranger = TestConsortium(w.service.chain, w.service.deployment)
    fake = DeviceSigner(device_id="SN-NOBODY", key=w.device.key, domain=stranger.domain)
    r = w.client.get(path, headers=fake.request_headers("GET", path))
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.unknown_device"


def test_only_the_holder_names_auditors_and_only_holder_or_buyer_discloses(world: World) -> None:
    w = world

    def post(who: str, path: str, body: dict[str, Any]) -> Expected:
        r = w.client.post(path, json=body, headers={"Authorization": f"Bearer {w.token(who)}"})
        return r.status_code, (r.json().get("error") or {}).get("code")

    # lot A is held by the buyer: its issuer (the factory) no longer names auditors for it
    auditor = {"auditor": w.address(RIVAL)}
    assert post(OWNER, f"/v1/lots/{LOT_A}/auditors", auditor) == (403, "access.not_holder")
    assert post(AUDITOR, f"/v1/lots/{LOT_A}/disclosure", {}) == (403, "access.not_holder")
    assert post(OWNER, f"/v1/lots/{LOT_A}/disclosure", {}) == (403, "access.not_holder")
    assert post(CUSTODIAN, "/v1/lots/LOT-NOWHERE/disclosure", {}) == (404, "lot.not_found")
    # the auditor the buyer named reads lot A; once withdrawn, no longer
    history = f"/v1/lots/{LOT_A}/history"
    as_auditor = {"Authorization": f"Bearer {w.token(AUDITOR)}"}
    assert w.client.get(history, headers=as_auditor).status_code == 200
    assert post(CUSTODIAN, f"/v1/lots/{LOT_A}/auditors/withdraw", {"auditor": w.address(AUDITOR)})[0] == 200
    assert w.client.get(history, headers=as_auditor).json()["error"]["code"] == "access.not_custodian"
    assert post(CUSTODIAN, f"/v1/lots/{LOT_A}/auditors", {"auditor": w.address(AUDITOR)})[0] == 200
    assert w.client.get(history, headers=as_auditor).status_code == 200
    listed = w.client.get("/v1/disclosures").json()["lots"]
    assert [d["lot_id"] for d in listed] == [LOT_D]


def test_the_caller_needs_one_kind_of_credential(world: World) -> None:
    w = world
    path = f"/v1/readings/{w.reading_a}"
    both = {**w.device.request_headers("GET", path), "Authorization": f"Bearer {w.token(OWNER)}"}
    r = w.client.get(path, headers=both)
    assert r.status_code == 401 and r.json()["error"]["code"] == "auth.ambiguous"
    bad = w.client.get(path, headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "auth.bad_token"
